"""stem.check on the conformance captures (genuine GPU outputs must pass),
its report against the CLI's, the nhd layout and doctored outputs."""
import os
import subprocess

import numpy as np
import pytest

import stem_attn as stem
from stio import CONF, bf16_to_f32, conformance, stem_binary


def meta_params(m):
    return {"alpha": float(m["alpha"]), "keep_ratio": float(m["keep_ratio"])}


@pytest.mark.parametrize("case", ["s2", "r1", "s6"])
def test_angelslim_captures_pass(case):
    i, g, m = conformance(case)
    heads = {"heads": (3, 1)} if case == "s6" else {}  # s6: its last head
    r = stem.check(i["q"], i["k"], i["v"], logits=g["block_logits"],
                   mask=g["mask"], out=g["out"], dtype=m["dtype"],
                   **meta_params(m), **heads)
    assert r, str(r)
    assert [s.verdict for s in r.stages.values()] == ["PASS"] * 4 + ["ABSENT"]
    assert r.faults == [] and r.hint == ""
    assert r.options["gpu_dtype"] == {"bf16": 1, "fp16": 2}[m["dtype"]]
    assert r.stages["out"].checked == (1 if case == "s6" else
                                       i["q"].shape[0]) * i["q"].shape[1]
    assert (r.head_begin, r.head_end) == ((3, 4) if case == "s6" else
                                          (0, i["q"].shape[0]))
    assert str(r).startswith("PASS")
    assert r.data and isinstance(r.data, dict)


@pytest.mark.parametrize("case", ["s2", "r1"])
def test_flex_attention_captures_pass(case):
    i, g, m = conformance(case, "flex")
    r = stem.check(i["q"], i["k"], i["v"], mask=g["mask"], out=g["out"],
                   lse=g["lse"], dtype=m["dtype"], **meta_params(m))
    assert r, str(r)
    assert r.stages["lse"].verdict == "PASS"
    assert r.stages["out"].checked == r.stages["lse"].checked


def test_hpcops_capture_passes():
    i, g, m = conformance("r1", "hpcops")
    r = stem.check(i["q"], i["k"], i["v"], logits=g["block_logits"],
                   mask=g["mask"], out=g["out"], profile="hpc-ops",
                   alpha=0.7, dtype="fp8")
    assert r, str(r)
    pos = np.arange(64)
    above = g["mask"][0][pos[None, :] > pos[:, None]]
    assert above.sum() == 6  # its unclipped sinks: never read, no fault


def test_report_text_is_the_clis():
    exe = stem_binary()
    if not os.access(exe, os.X_OK):
        pytest.skip("no stem binary at %s" % exe)
    i, g, m = conformance("r1")
    r = stem.check(i["q"], i["k"], i["v"], logits=g["block_logits"],
                   mask=g["mask"], out=g["out"], dtype=m["dtype"],
                   **meta_params(m))
    cli = subprocess.run([exe, "check", os.path.join(CONF, "r1.in.safetensors"),
                          os.path.join(CONF, "r1.angelslim.safetensors")],
                         stdout=subprocess.PIPE, universal_newlines=True)
    assert cli.returncode == 0
    assert str(r) in cli.stdout, (str(r), cli.stdout)


def test_nhd_layout_and_lse_either_way():
    i, g, m = conformance("s2", "flex")
    ref = stem.check(i["q"], i["k"], i["v"], out=g["out"], lse=g["lse"],
                     dtype="bf16", dense_test=False, heads=1)
    t = [x.transpose(1, 0, 2) for x in (i["q"], i["k"], i["v"], g["out"])]
    for lse in (g["lse"], np.ascontiguousarray(g["lse"].T)):  # [H,N], [N,H]
        r = stem.check(*t[:3], out=t[3], lse=lse, layout="nhd", dtype="bf16",
                       dense_test=False, heads=1)
        assert r and str(r) == str(ref)
    with pytest.raises(ValueError, match="lse"):
        stem.check(*i.values(), lse=g["lse"].T, dtype="bf16")


def test_doctored_outputs_fail_with_positions():
    i, g, m = conformance("s2")
    q, k, v = i["q"], i["k"], i["v"]
    mask = g["mask"].copy()
    mask[1, 40, 2] = 0  # a sink dropped
    r = stem.check(q, k, v, mask=mask, **meta_params(m))
    assert not r
    it = r.stages["mask"].items[0]
    assert (it.kind, it.head, it.qblock, it.kblock) == ("sink dropped", 1,
                                                         40, 2)
    assert "sink dropped" in str(r) and "head 1 qblock 40 kblock 2" in str(r)
    logits = g["block_logits"].copy()
    logits[0, 70, 10] = np.nan
    r = stem.check(q, k, v, logits=logits, **meta_params(m))
    assert not r and any(it.kind == "non-finite logit" and
                         (it.head, it.qblock, it.kblock) == (0, 70, 10)
                         for it in r.faults)
    out = bf16_to_f32(g["out"]).copy()
    out[0] = out[1]  # a head swapped with another
    r = stem.check(q, k, v, mask=g["mask"], out=out, dtype="bf16",
                   **meta_params(m))
    assert not r and r.stages["out"].verdict == "FAIL"
    assert any(h["status"] != "ok" for h in r.heads) or r.rows_failed > 0


def test_systematic_tests_in_the_report():
    """The flash capture passes every systematic test; its lse shifted by
    4e-6 in one head (the size of its own lse errors) and its out scaled by
    1.01 in one query block fail them, named in report.bias and in the
    items with their heads and query blocks."""
    i, g, m = conformance("r1", "flex")
    kw = dict(mask=g["mask"], dtype=m["dtype"], **meta_params(m))
    r = stem.check(i["q"], i["k"], i["v"], out=g["out"], lse=g["lse"], **kw)
    assert r, str(r)
    for name in ("out scale", "out temperature", "lse offset"):
        b = r.bias[name]
        assert b["groups"] > 0 and b["faults"] == 0 and b["worst"] < 1
    lse = np.array(g["lse"], dtype=np.float32)
    lse[0] += np.float32(4e-6)
    out = bf16_to_f32(g["out"]).copy()
    out[0, 128:256] *= 1.01
    r = stem.check(i["q"], i["k"], i["v"], out=out, lse=lse, **kw)
    assert not r
    kinds = {(f.stage, f.kind, f.head, f.qblock) for f in r.faults}
    assert ("out", "scale bias", 0, 1) in kinds, str(r)
    assert {(f.stage, f.kind, f.head) for f in r.faults
            if f.kind == "lse offset"} == {("lse", "lse offset", 0)}, str(r)
    assert r.bias["lse offset"]["faults"] >= 1
    assert r.bias["out scale"]["worst"] > 1
