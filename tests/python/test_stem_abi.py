"""The ctypes mirror of the C structs (python/stem_attn/_abi.py) matches the
headers: sizes and offsets measured by the C compiler, the field names of
stem_params read from include/stem.h, and stem_params_init's values read
back through the mirror with a guard after it."""
import ctypes as C
import os
import re
import shutil
import subprocess
import sys

import pytest

import stem_attn as stem
from stem_attn import _abi, _lib
from stio import ROOT


def test_offsets_match_the_c_compiler(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    lines = ['#include "stem.h"', '#include "stem_check.h"',
             "#include <stdio.h>", "#include <stddef.h>", "int main(void) {"]
    want = []
    for s in _abi.STRUCTS:
        name = s.__name__
        lines.append('printf("%%zu\\n", sizeof(%s));' % name)
        want.append(("sizeof", name, C.sizeof(s)))
        for f, _ in s._fields_:
            lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (name, f))
            want.append((name, f, getattr(s, f).offset))
    lines.append("return 0; }")
    src = tmp_path / "abi.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "abi"
    subprocess.run([cc, "-std=c11", "-I" + os.path.join(ROOT, "include"),
                    str(src), "-o", str(exe)], check=True)
    got = subprocess.run([str(exe)], check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout.split()
    bad = [(w, int(g)) for w, g in zip(want, got) if w[2] != int(g)]
    assert len(got) == len(want) and not bad, bad


def _c_fields(header, struct):
    text = open(os.path.join(ROOT, "include", header)).read()
    body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (struct, struct),
                     text, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    names = []
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        ids = [re.sub(r"\[.*\]", "", x).strip(" *") for x in decl.split(",")]
        first = ids[0].split()[-1].lstrip("*")
        names += [first] + ids[1:]
    return names


@pytest.mark.parametrize("header,struct", [
    ("stem.h", "stem_params"), ("stem.h", "stem_tensor"),
    ("stem.h", "stem_dims"), ("stem_check.h", "stem_check_options"),
    ("stem_check.h", "stem_check_item"), ("stem_check.h", "stem_check_report"),
    ("stem_check.h", "stem_check_head"),
    ("stem_check.h", "stem_check_stage_result"),
    ("stem.h", "stem_explain_block"), ("stem.h", "stem_explain_summary")])
def test_field_names_follow_the_header(header, struct):
    mirror = [f for f, _ in getattr(_abi, struct)._fields_]
    assert mirror == _c_fields(header, struct)


@pytest.mark.parametrize("profile", ["angelslim", "paper", "hpc-ops"])
def test_params_init_round_trip(profile):
    """stem_params_init writes exactly sizeof(stem_params) bytes (a guard
    after the mirror stays intact) and the values land in the right
    fields."""
    class Guarded(C.Structure):
        _fields_ = [("p", _abi.stem_params), ("guard", C.c_ubyte * 64)]
    g = Guarded()
    C.memset(C.addressof(g.guard), 0xA5, 64)
    assert _lib.func("stem_params_init")(C.byref(g.p),
                                         _abi.PROFILE[profile]) == 0
    assert bytes(g.guard) == b"\xa5" * 64
    p = g.p
    assert (p.profile, p.block, p.sinks, p.window) == (
        _abi.PROFILE[profile], 128, 4, 4)
    assert p.stride == (16 if profile == "hpc-ops" else 8)
    assert p.norm == 1.0 and p.paper_long_tokens == 16384
    assert p.paper_min_k0 == 54 and p.alpha == 0.7
    assert p.value_weight == (0.3 if profile == "hpc-ops" else 0.2)
    assert p.ties_keep_all == (profile == "hpc-ops")
    assert p.sinks_unclipped == (profile == "hpc-ops")
    assert p.prompt_blocks == 0 and p.use_f64 == 0 and p.threads == 0
    assert p.compute == _abi.COMPUTE["f32"]
    assert _lib.func("stem_params_validate")(C.byref(p)) == 0


def test_check_options_init_round_trip():
    o = _abi.stem_check_options()
    assert _lib.func("stem_check_options_init")(C.byref(o),
                                                _abi.PREC["bf16"]) == 0
    assert o.gpu_dtype == _abi.PREC["bf16"] and o.sigmas == 4
    assert o.dense_test == 1 and o.max_items == 20 and o.head_count == 0
    assert o.tau < 0 and o.out_tol < 0


def test_library_lookup_error_is_clear(tmp_path):
    env = dict(os.environ, STEM_LIBRARY=str(tmp_path / "nope.so"),
               PYTHONPATH=os.path.join(ROOT, "python"))
    p = subprocess.run([sys.executable, "-c",
                        "import stem_attn as stem; stem.version()"], env=env,
                       stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode != 0
    assert "cannot load libstem.so" in p.stderr
    assert "STEM_LIBRARY" in p.stderr and "nope.so" in p.stderr


def test_library_found():
    assert stem.version().count(".") == 2
    assert os.path.exists(stem.library_path())
