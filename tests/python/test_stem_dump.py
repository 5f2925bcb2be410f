"""tools/stem_dump.py writes what `stem check` reads (NumPy only, no torch).

Usage: /usr/bin/python3 tests/python/test_stem_dump.py STEM_BINARY
Exit 0 when every check passes.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import stem_dump  # noqa: E402

STEM = sys.argv[1] if len(sys.argv) > 1 else "build/stem"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    dt = {"F32": np.float32, "U8": np.uint8}
    out = {}
    for name, e in head.items():
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b],
                                  dtype=dt[e["dtype"]]).reshape(e["shape"])
    return out


def stem(*args):
    p = subprocess.run([STEM] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    return p.returncode, p.stdout


def main():
    rng = np.random.default_rng(3)
    H, N, d = 2, 1024, 32
    # As a flash-attention user holds them: [batch 1, N, H, d]
    q = rng.standard_normal((1, N, H, d)).astype(np.float32)
    k = rng.standard_normal((1, N, H, d)).astype(np.float32)
    v = rng.standard_normal((1, N, H, d)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        a = stem_dump.dump(os.path.join(tmp, "in.safetensors"), q=q, k=k,
                           v=v, layout="nhd")
        check(a == os.path.join(tmp, "in") and os.path.isdir(a),
              "no safetensors package: a directory of .npy files")
        check("torch" not in sys.modules, "torch not imported for numpy")
        qs = np.load(os.path.join(a, "q.npy"))
        check(qs.shape == (H, N, d) and np.array_equal(qs, q[0].transpose(1, 0, 2)),
              "nhd with batch 1 written as [H, N, d]")
        with open(os.path.join(a, "metadata.json")) as f:
            check(json.load(f).get("dtype") == "fp32", "dtype fp32 recorded")

        # The "kernel": stem run on the dumped input.
        rc, log = stem("run", a, "-o", os.path.join(tmp, "run.safetensors"))
        check(rc == 0, "stem run reads the dump (%s)" % log.strip()[-200:])
        r = read_st(os.path.join(tmp, "run.safetensors"))
        out_nhd = r["out"].transpose(1, 0, 2)[None]       # back to [1, N, H, d]
        b = stem_dump.dump(os.path.join(tmp, "case"), q=q, k=k, v=v,
                           out=out_nhd, mask=r["mask"].astype(bool),
                           lse=r["lse"][None], block_logits=r["block_logits"],
                           layout="nhd")
        check(np.load(os.path.join(b, "mask.npy")).dtype == np.uint8,
              "bool mask stored as uint8")
        rc, log = stem("check", b)
        check(rc == 0 and "GPU dtype fp32 (from GPU metadata)" in log,
              "stem check passes the dump (exit %d)" % rc)
        if rc != 0:
            print(log)

        bad = out_nhd + 0.05 * rng.standard_normal(out_nhd.shape).astype(np.float32)
        c = stem_dump.dump(os.path.join(tmp, "bad"), q=q, k=k, v=v, out=bad,
                           mask=r["mask"], layout="nhd")
        rc, log = stem("check", c)
        check(rc == 1 and "out     FAIL" in log,
              "stem check fails a perturbed output (exit %d)" % rc)

        h = stem_dump.dump(os.path.join(tmp, "half"), q=q.astype(np.float16),
                           k=k.astype(np.float16), v=v.astype(np.float16),
                           layout="nhd", meta={"kernel": "test"})
        with open(os.path.join(h, "metadata.json")) as f:
            m = json.load(f)
        check(m == {"dtype": "fp16", "kernel": "test"},
              "fp16 inputs record dtype fp16 and extra metadata")
        try:
            stem_dump.dump(os.path.join(tmp, "x"), q=q, layout="thd")
            check(False, "bad layout rejected")
        except ValueError:
            check(True, "bad layout rejected")
        try:
            stem_dump.dump(os.path.join(tmp, "y"), q=q[0, 0])
            check(False, "wrong rank rejected")
        except ValueError:
            check(True, "wrong rank rejected")
    print("stem_dump: %d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
