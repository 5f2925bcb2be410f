"""Helpers of the stem package tests: a tiny safetensors reader/writer
(NumPy only; BF16 kept as uint16 bits), bf16 conversions, paths."""
import json
import os
import struct

import numpy as np

from stem_attn import from_bf16, to_bf16

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CONF = os.path.join(ROOT, "tests", "data", "conformance")
DT = {"F32": np.float32, "F64": np.float64, "F16": np.float16,
      "U8": np.uint8, "BF16": np.uint16}


def read_st(path):
    """({name: array}, metadata); BF16 tensors as uint16 bits."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    out = {}
    for name, e in head.items():
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b],
                                  dtype=DT[e["dtype"]]).reshape(e["shape"])
    return out, meta


def write_st(path, tensors, dtypes=None, meta=None):
    dtypes = dtypes or {}
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
             np.dtype(np.uint8): "U8", np.dtype(np.uint16): "BF16",
             np.dtype(np.float64): "F64"}
    head, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        head[name] = {"dtype": dtypes.get(name, names[arr.dtype]),
                      "shape": list(arr.shape),
                      "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        head["__metadata__"] = meta
    h = json.dumps(head).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# the package's conversions (tests/python/test_stem_bf16.py tests them)
bf16_to_f32 = from_bf16
f32_to_bf16 = to_bf16


def library():
    return os.environ.get("STEM_LIBRARY") or os.path.join(ROOT, "build",
                                                          "libstem.so")


def stem_binary():
    """The stem CLI: $STEM, else next to the library, else build/stem."""
    if os.environ.get("STEM"):
        return os.environ["STEM"]
    lib = library()
    d = lib if os.path.isdir(lib) else os.path.dirname(lib)
    cand = os.path.join(d, "stem")
    if os.access(cand, os.X_OK):
        return cand
    return os.path.join(ROOT, "build", "stem")


def conformance(case, gpu="angelslim"):
    """(inputs, gpu tensors, gpu metadata) of a conformance case; gpu
    'angelslim', 'flex' or 'hpcops'."""
    sub = {"angelslim": "", "flex": "flex", "hpcops": "hpcops"}[gpu]
    ind = os.path.join(CONF, "hpcops") if gpu == "hpcops" else CONF
    paths = (os.path.join(ind, case + ".in.safetensors"),
             os.path.join(CONF, sub, "%s.%s.safetensors" % (case, gpu)))
    if not all(os.path.exists(p) for p in paths):
        import pytest
        pytest.skip("conformance capture missing: %s" % " ".join(paths))
    i, _ = read_st(paths[0])
    g, m = read_st(paths[1])
    return i, g, m
