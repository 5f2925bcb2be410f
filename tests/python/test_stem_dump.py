"""tools/stem_dump.py writes what `stem check` reads (NumPy only, no torch).

Run either way:
    /usr/bin/python3 -m pytest tests/python/test_stem_dump.py
        (the stem binary from $STEM, else build/stem; tests that need it
        are skipped when it is missing)
    /usr/bin/python3 tests/python/test_stem_dump.py STEM_BINARY
        (no pytest needed; exit 0 when every test passes)

stem_dump writes safetensors itself: the tests read the files with their
own small reader (read_st) and with the stem binary.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
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
    # one thread: these cases are small, and the results the same bytes
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([STEM] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       env=env)
    return p.returncode, p.stdout


def read_st(path):
    """Tensors and metadata of a safetensors file (F32, F16, U8; BF16 as
    uint16 bits)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    dt = {"F32": np.float32, "F16": np.float16, "U8": np.uint8,
          "BF16": np.uint16}
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


def test_safetensors_name_is_one_file_without_the_package():
    q, k, v = qkv_nhd()
    with tempfile.TemporaryDirectory() as tmp:
        want = os.path.join(tmp, "in.safetensors")
        a, warned = dump_quiet(want, q=q, k=k, v=v, layout="nhd")
        assert a == want and os.path.isfile(a) and warned == []
        # NumPy inputs: neither torch nor the safetensors module is loaded
        code = ("import sys, numpy as np, stem_dump; "
                "stem_dump.dump(sys.argv[1], q=np.zeros((1, 4, 2), "
                "np.float32)); print(sorted({'torch', 'safetensors'} & "
                "set(sys.modules)))")
        p = subprocess.run([sys.executable, "-c", code,
                            os.path.join(tmp, "x.safetensors")],
                           stdout=subprocess.PIPE, universal_newlines=True,
                           env=dict(os.environ, PYTHONPATH=os.path.join(
                               ROOT, "tools")))
        assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout
        t, meta = read_st(a)
        assert meta == {"dtype": "fp32"}
        assert t["q"].shape == (H, N, D)
        assert np.array_equal(t["q"], q[0].transpose(1, 0, 2))
        # any other name: a directory of .npy files
        b, warned = dump_quiet(os.path.join(tmp, "plain") + os.sep, q=q,
                               layout="nhd")
        assert b == os.path.join(tmp, "plain") and os.path.isdir(b)
        assert warned == []
        assert np.array_equal(np.load(os.path.join(b, "q.npy")),
                              q[0].transpose(1, 0, 2))
        # a directory in the way of the file: refused
        os.mkdir(os.path.join(tmp, "e.safetensors"))
        try:
            stem_dump.dump(os.path.join(tmp, "e.safetensors"), q=q)
        except FileExistsError as err:
            assert "is a directory" in str(err)
        else:
            raise AssertionError("a directory was replaced by a file")


def bf16_bits(x):
    """float32 -> bfloat16 bits (uint16), round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def inputs_in(kind, seed=3, n=N):
    """q, k, v [H, n, D] of one storage kind, and their float32 values:
    numpy-bf16 (uint16 bits), numpy-fp16, numpy-fp32, torch-bf16,
    torch-fp16, torch-fp32 (torch kinds skip where torch is missing)."""
    rng = np.random.default_rng(seed)
    f = [rng.standard_normal((H, n, D)).astype(np.float32) for _ in "qkv"]
    lib, dt = kind.split("-")
    if dt == "bf16":
        arrs = [bf16_bits(x) for x in f]
        vals = [(a.astype(np.uint32) << 16).view(np.float32) for a in arrs]
    elif dt == "fp16":
        arrs = [x.astype(np.float16) for x in f]
        vals = [a.astype(np.float32) for a in arrs]
    else:
        arrs, vals = f, f
    if lib == "torch":
        try:
            import torch
        except ImportError:
            skip("torch is not installed")
        arrs = [torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
                if dt == "bf16" else torch.from_numpy(a) for a in arrs]
    return arrs, vals


KINDS = ("numpy-bf16", "numpy-fp16", "numpy-fp32", "torch-bf16",
         "torch-fp16", "torch-fp32")


def test_every_dtype_round_trips_into_stem_check():
    """Each storage kind, as a .safetensors file and as a .npy directory:
    the values read back are the values given (bf16 bits kept in
    safetensors, widened exactly in .npy), stem run reads the file, and its
    outputs dumped beside the same inputs pass stem check in both forms,
    with the dtype recorded."""
    need_stem()
    for kind in KINDS:
        try:
            arrs, vals = inputs_in(kind, n=256)
        except Skip:
            continue
        except BaseException as e:  # pytest's skip
            if type(e).__name__ == "Skipped":
                continue
            raise
        want = kind.split("-")[1]
        with tempfile.TemporaryDirectory() as tmp:
            a = stem_dump.dump(os.path.join(tmp, "in.safetensors"),
                               q=arrs[0], k=arrs[1], v=arrs[2])
            t, meta = read_st(a)
            assert meta == {"dtype": want}, (kind, meta)
            got = t["q"]
            if want == "bf16":
                assert got.dtype == np.uint16, kind
                got = (got.astype(np.uint32) << 16).view(np.float32)
            assert np.array_equal(got.astype(np.float32), vals[0]), kind
            b = stem_dump.dump(os.path.join(tmp, "in_dir"), q=arrs[0])
            got = np.load(os.path.join(b, "q.npy"))
            assert got.dtype in (np.float32, np.float16), (kind, got.dtype)
            assert np.array_equal(got.astype(np.float32), vals[0]), kind
            assert meta_of(b) == {"dtype": want}, kind
            run = os.path.join(tmp, "run.safetensors")
            rc, log = stem("run", a, "-o", run)
            assert rc == 0, (kind, log)
            r, _ = read_st(run)
            for name in ("case.safetensors", "case_dir"):
                c = stem_dump.dump(os.path.join(tmp, name), q=arrs[0],
                                   k=arrs[1], v=arrs[2], out=r["out"],
                                   mask=r["mask"], lse=r["lse"], dtype=want)
                rc, log = stem("check", c)
                assert rc == 0 and ("GPU dtype %s" % want) in log, \
                    (kind, name, log)


def test_modes_follow_the_umask():
    q, _, _ = qkv_nhd()
    old = os.umask(0o022)
    try:
        for mask, fmode, dmode in ((0o022, 0o644, 0o755),
                                   (0o077, 0o600, 0o700),
                                   (0o002, 0o664, 0o775)):
            os.umask(mask)
            with tempfile.TemporaryDirectory() as tmp:
                f = stem_dump.dump(os.path.join(tmp, "a.safetensors"), q=q)
                d = stem_dump.dump(os.path.join(tmp, "a_dir"), q=q)
                assert os.stat(f).st_mode & 0o777 == fmode, oct(mask)
                assert os.stat(d).st_mode & 0o777 == dmode, oct(mask)
                for e in os.listdir(d):
                    assert os.stat(os.path.join(d, e)).st_mode & 0o777 == \
                        fmode, (e, oct(mask))
    finally:
        os.umask(old)


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
