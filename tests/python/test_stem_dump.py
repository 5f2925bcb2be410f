"""tools/stem_dump.py writes what `stem check` reads (NumPy only, no torch).

Run either way:
    /usr/bin/python3 -m pytest tests/python/test_stem_dump.py
        (the stem binary from $STEM, else build/stem; tests that need it
        are skipped when it is missing)
    /usr/bin/python3 tests/python/test_stem_dump.py STEM_BINARY
        (no pytest needed; exit 0 when every test passes)

The safetensors package is not in Debian: its branch is tested through a
stand-in module that writes the format with the same save_file signature.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import types
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import stem_dump  # noqa: E402

STEM = os.environ.get("STEM") or os.path.join(ROOT, "build", "stem")
H, N, D = 2, 1024, 32


class Skip(Exception):
    """A test that cannot run here (no stem binary)."""


def need_stem():
    if not os.access(STEM, os.X_OK):
        skip("no stem binary at %s" % STEM)


def stem(*args):
    p = subprocess.run([STEM] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    return p.returncode, p.stdout


def read_st(path):
    """Tensors and metadata of a safetensors file (F32, F16, U8 only)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    dt = {"F32": np.float32, "F16": np.float16, "U8": np.uint8}
    out = {}
    for name, e in head.items():
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b],
                                  dtype=dt[e["dtype"]]).reshape(e["shape"])
    return out, meta


def qkv_nhd(seed=3):
    """q, k, v as a flash-attention user holds them: [batch 1, N, H, d]."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, N, H, D)).astype(np.float32)
            for _ in range(3)]


def meta_of(directory):
    with open(os.path.join(directory, "metadata.json")) as f:
        return json.load(f)


def dump_quiet(*args, **kw):
    """stem_dump.dump with its warnings recorded: (path, warnings)."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        path = stem_dump.dump(*args, **kw)
    return path, [str(x.message) for x in w]


def skip(why):
    """Skip the calling test, under pytest or in script mode."""
    try:
        import pytest
    except ImportError:
        raise Skip(why)
    pytest.skip(why)


def test_safetensors_name_without_package_is_a_directory_of_that_name():
    if stem_dump._have_safetensors():
        skip("the safetensors package is installed here")
    q, k, v = qkv_nhd()
    with tempfile.TemporaryDirectory() as tmp:
        want = os.path.join(tmp, "in.safetensors")
        a, warned = dump_quiet(want, q=q, k=k, v=v, layout="nhd")
        assert a == want and os.path.isdir(a), a
        assert len(warned) == 1 and "directory of .npy files" in warned[0] \
            and ("stem check %s" % want) in warned[0], warned
        assert "torch" not in sys.modules
        qs = np.load(os.path.join(a, "q.npy"))
        assert qs.shape == (H, N, D)
        assert np.array_equal(qs, q[0].transpose(1, 0, 2))
        assert meta_of(a) == {"dtype": "fp32"}
        # any other name: a directory too, and no warning
        b, warned = dump_quiet(os.path.join(tmp, "plain") + os.sep, q=q,
                               layout="nhd")
        assert b == os.path.join(tmp, "plain") and os.path.isdir(b)
        assert warned == []


def test_round_trip_through_stem_run_and_check():
    need_stem()
    q, k, v = qkv_nhd()
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as tmp:
        a, _ = dump_quiet(os.path.join(tmp, "in.safetensors"), q=q, k=k,
                          v=v, layout="nhd")
        # The "kernel": stem run on the dump, read under the name given.
        rc, log = stem("run", a, "-o", os.path.join(tmp, "run.safetensors"))
        assert rc == 0, log
        r, _ = read_st(os.path.join(tmp, "run.safetensors"))
        out_nhd = r["out"].transpose(1, 0, 2)[None]       # [1, N, H, d]
        b = stem_dump.dump(os.path.join(tmp, "case"), q=q, k=k, v=v,
                           out=out_nhd, mask=r["mask"].astype(bool),
                           lse=r["lse"][None], block_logits=r["block_logits"],
                           layout="nhd")
        assert np.load(os.path.join(b, "mask.npy")).dtype == np.uint8
        rc, log = stem("check", b)
        assert rc == 0 and "GPU dtype fp32 (from GPU metadata)" in log, log

        bad = out_nhd + 0.05 * rng.standard_normal(out_nhd.shape).astype(
            np.float32)
        c = stem_dump.dump(os.path.join(tmp, "bad"), q=q, k=k, v=v, out=bad,
                           mask=r["mask"], layout="nhd")
        rc, log = stem("check", c)
        assert rc == 1 and "FAIL" in log, log


def test_dtype_recorded():
    q, k, v = qkv_nhd()
    with tempfile.TemporaryDirectory() as tmp:
        h = stem_dump.dump(os.path.join(tmp, "half"), q=q.astype(np.float16),
                           k=k.astype(np.float16), v=v.astype(np.float16),
                           layout="nhd", meta={"kernel": "test"})
        assert meta_of(h) == {"dtype": "fp16", "kernel": "test"}
        # out in fp16, q in fp32: the less precise one
        o = stem_dump.dump(os.path.join(tmp, "o16"), q=q,
                           out=q.astype(np.float16), layout="nhd")
        assert meta_of(o)["dtype"] == "fp16"
        # a bf16 output widened to float32: the caller says so
        w = stem_dump.dump(os.path.join(tmp, "widened"), q=q, out=q,
                           layout="nhd", dtype="torch.bfloat16")
        assert meta_of(w)["dtype"] == "bf16"
        e = stem_dump.dump(os.path.join(tmp, "e4m3"), q=q, out=q,
                           layout="nhd", dtype="float8_e4m3fn")
        assert meta_of(e)["dtype"] == "fp8"
        for bad in ("int8", "fp4"):
            try:
                stem_dump.dump(os.path.join(tmp, "x"), q=q, dtype=bad)
            except ValueError as err:
                assert "dtype" in str(err)
            else:
                raise AssertionError("dtype %s accepted" % bad)
        assert not os.path.exists(os.path.join(tmp, "x"))


def test_widened_bf16_judged_as_bf16_by_stem_check():
    need_stem()
    q, k, v = qkv_nhd()
    with tempfile.TemporaryDirectory() as tmp:
        a = stem_dump.dump(os.path.join(tmp, "in"), q=q, k=k, v=v,
                           layout="nhd")
        rc, log = stem("run", a, "-o", os.path.join(tmp, "run.safetensors"))
        assert rc == 0, log
        r, _ = read_st(os.path.join(tmp, "run.safetensors"))
        # out as stem run wrote it, [H, N, d]: q, k, v in the same layout
        b = stem_dump.dump(os.path.join(tmp, "case"),
                           q=q[0].transpose(1, 0, 2),
                           k=k[0].transpose(1, 0, 2),
                           v=v[0].transpose(1, 0, 2), out=r["out"],
                           mask=r["mask"], dtype="bf16")
        rc, log = stem("check", b)
        assert rc == 0 and "GPU dtype bf16 (from GPU metadata)" in log, log


def test_existing_targets():
    q, k, v = qkv_nhd()
    with tempfile.TemporaryDirectory() as tmp:
        # a file where a directory would go: refused, untouched
        f = os.path.join(tmp, "taken")
        with open(f, "w") as fp:
            fp.write("mine")
        try:
            stem_dump.dump(f, q=q, layout="nhd")
        except FileExistsError as err:
            assert "not a directory" in str(err)
        else:
            raise AssertionError("a file was replaced by a directory")
        with open(f) as fp:
            assert fp.read() == "mine"
        # a directory holding other things: refused, untouched
        d = os.path.join(tmp, "project")
        os.mkdir(d)
        with open(os.path.join(d, "notes.txt"), "w") as fp:
            fp.write("keep")
        try:
            stem_dump.dump(d, q=q, layout="nhd")
        except FileExistsError as err:
            assert "not replacing" in str(err)
        else:
            raise AssertionError("a foreign directory was replaced")
        assert sorted(os.listdir(d)) == ["notes.txt"]
        # an earlier dump: replaced whole, no stale tensor left behind
        e = stem_dump.dump(os.path.join(tmp, "case"), q=q, k=k, v=v,
                           block_logits=np.zeros((H, 8, 8), np.float32),
                           layout="nhd")
        e = stem_dump.dump(e, q=q, k=k, v=v, layout="nhd", dtype="fp16")
        assert sorted(os.listdir(e)) == ["k.npy", "metadata.json", "q.npy",
                                         "v.npy"]
        assert meta_of(e)["dtype"] == "fp16"
        leftovers = [x for x in os.listdir(tmp) if x.endswith((".tmp",
                                                                ".old"))]
        assert leftovers == [], leftovers


def _fake_safetensors():
    """Modules safetensors and safetensors.numpy whose save_file writes the
    safetensors format (F32, F16, U8), as the real package does."""
    pkg = types.ModuleType("safetensors")
    sub = types.ModuleType("safetensors.numpy")
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
             np.dtype(np.uint8): "U8"}

    def save_file(tensors, filename, metadata=None):
        head, blobs, off = {}, [], 0
        if metadata:
            head["__metadata__"] = metadata
        for name in sorted(tensors):
            a = np.ascontiguousarray(tensors[name])
            raw = a.tobytes()
            head[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                          "data_offsets": [off, off + len(raw)]}
            blobs.append(raw)
            off += len(raw)
        h = json.dumps(head).encode()
        h += b" " * (-len(h) % 8)
        with open(filename, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

    sub.save_file = save_file
    pkg.numpy = sub
    return {"safetensors": pkg, "safetensors.numpy": sub}


def test_safetensors_branch():
    q, k, v = qkv_nhd()
    saved = {m: sys.modules.get(m) for m in ("safetensors",
                                             "safetensors.numpy")}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sys.modules.update(_fake_safetensors())
            want = os.path.join(tmp, "in.safetensors")
            a, warned = dump_quiet(want, q=q.astype(np.float16),
                                   k=k.astype(np.float16),
                                   v=v.astype(np.float16), layout="nhd")
            assert a == want and os.path.isfile(a) and warned == []
            t, meta = read_st(a)
            assert meta == {"dtype": "fp16"}
            assert t["q"].shape == (H, N, D) and t["q"].dtype == np.float16
            # a name without the suffix is still a directory
            b = stem_dump.dump(os.path.join(tmp, "dir"), q=q, layout="nhd")
            assert os.path.isdir(b)
            # a directory in the way of the file: refused
            os.mkdir(os.path.join(tmp, "e.safetensors"))
            try:
                stem_dump.dump(os.path.join(tmp, "e.safetensors"), q=q)
            except FileExistsError as err:
                assert "is a directory" in str(err)
            else:
                raise AssertionError("a directory was replaced by a file")
            if os.access(STEM, os.X_OK):
                rc, log = stem("run", a, "-o",
                               os.path.join(tmp, "run.safetensors"))
                assert rc == 0, log
        finally:
            for m, mod in saved.items():
                if mod is None:
                    sys.modules.pop(m, None)
                else:
                    sys.modules[m] = mod
    # without the package, format="safetensors" is an error, not a directory
    with tempfile.TemporaryDirectory() as tmp:
        if stem_dump._have_safetensors():
            return
        try:
            stem_dump.dump(os.path.join(tmp, "x.safetensors"), q=q,
                           format="safetensors")
        except ImportError as err:
            assert "safetensors package" in str(err)
        else:
            raise AssertionError("format='safetensors' without the package")
        assert os.listdir(tmp) == []


def test_bad_arguments():
    q, _, _ = qkv_nhd()
    with tempfile.TemporaryDirectory() as tmp:
        for kw in ({"layout": "thd"}, {"format": "zip"}):
            try:
                stem_dump.dump(os.path.join(tmp, "x"), q=q, **kw)
            except ValueError:
                pass
            else:
                raise AssertionError("accepted %s" % kw)
        try:
            stem_dump.dump(os.path.join(tmp, "y"), q=q[0, 0])
        except ValueError as err:
            assert "dimensions" in str(err)
        else:
            raise AssertionError("wrong rank accepted")
        try:
            stem_dump.dump(os.path.join(tmp, "z"))
        except ValueError:
            pass
        else:
            raise AssertionError("no tensors accepted")
        assert os.listdir(tmp) == []


def main():
    """Run every test_* function without pytest; 0 when all pass."""
    global STEM
    if len(sys.argv) > 1:
        STEM = sys.argv[1]
    failed = 0
    for name, fn in sorted(globals().items()):
        if not name.startswith("test_") or not callable(fn):
            continue
        try:
            fn()
            print("ok   " + name)
        except Skip as why:
            print("skip %s (%s)" % (name, why))
        except Exception as err:  # noqa: BLE001 - report every failure
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(err).__name__, err))
    print("stem_dump: %d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
