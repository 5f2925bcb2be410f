"""Doctored copies of GPU result files for tests/cli/test_cli_check.sh.

Reads and writes safetensors by hand with numpy only (BF16 kept as raw
uint16 bits).  Usage: check_doctor.py ACTION ARGS...; see ACTIONS below.
"""
import json
import os
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F64": np.float64, "F16": np.float16,
      "U8": np.uint8, "BOOL": np.bool_, "I32": np.int32, "I64": np.int64,
      "BF16": np.uint16}


def read_st(path):
    """Tensors (name -> (dtype name, array)) and metadata of a file."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    out = {}
    for name, e in head.items():
        a, b = e["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=DT[e["dtype"]])
        out[name] = (e["dtype"], arr.reshape(e["shape"]).copy())
    return out, meta


def write_st(path, tensors, meta):
    head, blobs, off = {}, [], 0
    for name, (dt, arr) in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        head[name] = {"dtype": dt, "shape": list(arr.shape),
                      "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        head["__metadata__"] = meta
    h = json.dumps(head).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def bf16_to_f32(u):
    return (u.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def as_f32(t):
    dt, a = t
    return bf16_to_f32(a) if dt == "BF16" else a.astype(np.float32)


def mask_geometry(mask):
    hq, qb, kb = mask.shape
    return hq, qb, kb, kb - qb


def add_block(gpu, out):
    """Keep, in head 0 of the last query block, the causal block with the
    lowest logit that is neither sink nor window: not a tie."""
    t, meta = read_st(gpu)
    logits = t["block_logits"][1]
    mask = t["mask"][1].copy()
    hq, qb, kb, pb = mask_geometry(mask)
    i = qb - 1
    p = i + pb
    cands = [j for j in range(4, p - 3) if not mask[0, i, j]]
    j = min(cands, key=lambda c: logits[0, i, c])
    mask[0, i, j] = 1
    write_st(out, {"block_logits": t["block_logits"], "mask": ("U8", mask)},
             meta)
    print("added head 0 qblock %d kblock %d" % (i, j))


def drop_sink(gpu, out):
    t, meta = read_st(gpu)
    mask = t["mask"][1].copy()
    hq, qb, kb, pb = mask_geometry(mask)
    mask[0, qb - 1, 0] = 0
    write_st(out, {"block_logits": t["block_logits"], "mask": ("U8", mask)},
             meta)


def noisy(base, rel, seed):
    rng = np.random.default_rng(seed)
    rms = float(np.sqrt(np.mean(base.astype(np.float64) ** 2)))
    return base + (rel * rms * rng.standard_normal(base.shape)).astype(
        np.float32)


def perturb(gpu, out):
    """out + noise of 10% of its RMS: well past the 3e-2 bf16 limit."""
    t, meta = read_st(gpu)
    o = noisy(as_f32(t["out"]), 0.10, 5)
    write_st(out, {"mask": t["mask"], "out": ("BF16", f32_to_bf16(o))}, meta)


def dense(gpu, dense_run, out, heads=None):
    """The dense output (no mask) with bf16-sized noise, under the GPU's
    mask, in the heads listed (comma-separated; default all), the GPU's
    output in the others."""
    t, meta = read_st(gpu)
    d, _ = read_st(dense_run)
    o = as_f32(t["out"]).copy()
    dn = noisy(as_f32(d["out"]), 0.015, 7)
    sel = range(o.shape[0]) if heads is None else [int(h) for h in
                                                     heads.split(",")]
    for h in sel:
        o[h] = dn[h]
    write_st(out, {"block_logits": t["block_logits"], "mask": t["mask"],
                   "out": ("BF16", f32_to_bf16(o))}, meta)


def nhd(inp, gpu, out_in, out_gpu):
    """q/k/v as [1, N, H, d], out as [N, H, d]."""
    t, meta = read_st(inp)
    g, gmeta = read_st(gpu)
    tt = {k: (dt, np.ascontiguousarray(a.transpose(1, 0, 2))[None])
          for k, (dt, a) in t.items()}
    write_st(out_in, tt, meta)
    dt, o = g["out"]
    write_st(out_gpu, {"mask": g["mask"],
                       "out": (dt, np.ascontiguousarray(o.transpose(1, 0, 2)))},
             gmeta)


def npydir(inp, gpu, outdir):
    """A directory of .npy files (BF16 widened to float32) and a
    metadata.json naming the GPU dtype."""
    t, _ = read_st(inp)
    g, gmeta = read_st(gpu)
    os.makedirs(outdir, exist_ok=True)
    for k in ("q", "k", "v"):
        np.save(os.path.join(outdir, k + ".npy"), as_f32(t[k]))
    np.save(os.path.join(outdir, "mask.npy"), g["mask"][1].astype(np.bool_))
    np.save(os.path.join(outdir, "out.npy"), as_f32(g["out"]))
    np.save(os.path.join(outdir, "block_logits.npy"), as_f32(g["block_logits"]))
    with open(os.path.join(outdir, "metadata.json"), "w") as f:
        json.dump({"dtype": gmeta.get("dtype", "bf16")}, f)


def lse_shift(run, out):
    t, meta = read_st(run)
    lse = t["lse"][1].copy()
    lse[0, 100] += 0.5
    write_st(out, {"lse": ("F32", lse), "mask": t["mask"]}, meta)


def bad_shape(gpu, out):
    t, meta = read_st(gpu)
    write_st(out, {"mask": ("U8", t["mask"][1][:, :-1, :].copy())}, meta)


def keep(gpu, out, *names):
    t, meta = read_st(gpu)
    write_st(out, {n: t[n] for n in names}, meta)


def meta_only_dtype(meta):
    """The GPU metadata reduced to its dtype: a kernel whose parameters
    the checker must not take from the file."""
    return {"dtype": meta["dtype"]} if "dtype" in meta else {}


def forced(J, pos, sinks=4, window=4):
    return J < sinks or J > pos - window or J == pos


def budget(gpu, out, delta):
    """In every row that drops a causal block, drop the kept non-forced
    block of lowest GPU logit (delta -1) or keep the dropped one of highest
    logit (delta +1): a budget one short / one over.  Writes the mask only;
    prints the first changed (head, qblock, kblock) of head 0."""
    delta = int(delta)
    t, meta = read_st(gpu)
    logits = as_f32(t["block_logits"])
    mask = t["mask"][1].copy()
    hq, qb, kb, pb = mask_geometry(mask)
    first = None
    for h in range(hq):
        for i in range(qb):
            pos = i + pb
            row = mask[h, i, :pos + 1]
            if row.all():
                continue
            cand = [j for j in range(pos + 1) if not forced(j, pos)
                    and bool(row[j]) == (delta < 0)]
            if not cand:
                continue
            pick = (min if delta < 0 else max)(cand,
                                               key=lambda j: logits[h, i, j])
            mask[h, i, pick] = 1 if delta > 0 else 0
            if first is None and h == 0:
                first = (h, i, pick)
    write_st(out, {"mask": ("U8", mask)}, meta)
    print("%d %d %d" % first)


def attend_rows(q, k, v, mask, h, rows, block, hpg):
    """Exact float64 attention of query rows `rows` of head h under mask
    (block-level, causal inside the diagonal block); q is [Hq, Lq, d],
    k and v [Hkv, Lk, d]."""
    lq, lk = q.shape[1], k.shape[1]
    off = lk - lq
    g = h // hpg
    d = q.shape[2]
    out = np.zeros((len(rows), d))
    for n, r in enumerate(rows):
        pos = r + off
        keys = np.arange(pos + 1)
        keep = mask[h, r // block, keys // block].astype(bool)
        keys = keys[keep]
        s = k[g, keys].astype(np.float64) @ q[h, r].astype(np.float64)
        s /= np.sqrt(d)
        w = np.exp(s - s.max())
        out[n] = (w @ v[g, keys].astype(np.float64)) / w.sum()
    return out


def skip_block(inp, gpu, out, head, qblock):
    """P.V skips, for the rows of one query block of one head, the kept
    block of highest GPU logit that is not forced; the mask stays intact."""
    h, i = int(head), int(qblock)
    t, _ = read_st(inp)
    g, meta = read_st(gpu)
    q, k, v = (as_f32(t[n]) for n in ("q", "k", "v"))
    mask = g["mask"][1]
    logits = as_f32(g["block_logits"])
    hq, qb, kb, pb = mask_geometry(mask)
    block = q.shape[1] // qb if q.shape[1] % qb == 0 else 128
    block = int(meta.get("block_size", block))
    pos = i + pb
    cand = [j for j in range(pos + 1) if mask[h, i, j] and not forced(j, pos)]
    j = max(cand, key=lambda c: logits[h, i, c])
    m2 = mask.copy()
    m2[h, i, j] = 0
    rows = list(range(i * block, min((i + 1) * block, q.shape[1])))
    o = as_f32(g["out"]).copy()
    o[h, rows] = attend_rows(q, k, v, m2, h, rows, block,
                             q.shape[0] // k.shape[0])
    write_st(out, {"mask": g["mask"], "out": ("BF16", f32_to_bf16(o))}, meta)
    print("head %d qblock %d kblock %d skipped" % (h, i, j))


def set_out(gpu, out, head, row=None):
    """out of one row (or, without row, of the whole head) set to zero."""
    g, meta = read_st(gpu)
    o = as_f32(g["out"]).copy()
    if row is None:
        o[int(head)] = 0
    else:
        o[int(head), int(row)] = 0
    write_st(out, {"mask": g["mask"], "out": ("BF16", f32_to_bf16(o))}, meta)


def swap_heads(gpu, out, a, b):
    g, meta = read_st(gpu)
    o = as_f32(g["out"]).copy()
    a, b = int(a), int(b)
    o[[a, b]] = o[[b, a]]
    write_st(out, {"mask": g["mask"], "out": ("BF16", f32_to_bf16(o))}, meta)


def nan_at(gpu, out, name, *idx):
    """A NaN at one position of tensor name (float32 copies of the
    floating tensors)."""
    g, meta = read_st(gpu)
    tt = {}
    for n, (dt, a) in g.items():
        if n == name:
            a = as_f32((dt, a)).copy()
            a[tuple(int(x) for x in idx)] = np.nan
            dt = "F32"
        tt[n] = (dt, a)
    write_st(out, tt, meta)


def truncate_q(inp, out, lq):
    """The last lq queries of an input: a chunk with Lq < Lk."""
    t, meta = read_st(inp)
    dt, q = t["q"]
    t["q"] = (dt, np.ascontiguousarray(q[:, -int(lq):]))
    write_st(out, t, meta)


def shift(run, out):
    """Logits and mask shifted left by one key block (the causal offset one
    block short): block J holds what block J + 1 held."""
    g, meta = read_st(run)
    lg = as_f32(g["block_logits"]).copy()
    m = g["mask"][1].copy()
    lg[:, :, :-1] = lg[:, :, 1:]
    lg[:, :, -1] = -np.inf
    m[:, :, :-1] = m[:, :, 1:]
    m[:, :, -1] = 0
    write_st(out, {"block_logits": ("F32", lg), "mask": ("U8", m)},
             meta_only_dtype(meta))


def strip(gpu, out, *names):
    """Only the tensors named, metadata reduced to the dtype."""
    g, meta = read_st(gpu)
    write_st(out, {n: g[n] for n in names}, meta_only_dtype(meta))


def round_bf16(run, out):
    """out rounded to bf16 (genuine bf16 noise), dtype bf16."""
    g, meta = read_st(run)
    meta = dict(meta)
    meta["dtype"] = "bf16"
    o = f32_to_bf16(as_f32(g["out"]))
    write_st(out, {"block_logits": g["block_logits"], "mask": g["mask"],
                   "out": ("BF16", o), "lse": g["lse"]}, meta)


def nhd_lse(inp, gpu, out_in, out_gpu, lse_layout):
    """q/k/v and out as [N, H, d]; lse as [H, N] (lse_layout hn) or
    [N, H] (nh)."""
    t, meta = read_st(inp)
    g, gmeta = read_st(gpu)
    tt = {k: (dt, np.ascontiguousarray(a.transpose(1, 0, 2)))
          for k, (dt, a) in t.items()}
    write_st(out_in, tt, meta)
    dt, o = g["out"]
    ldt, lse = g["lse"]
    if lse_layout == "nh":
        lse = np.ascontiguousarray(lse.T)
    write_st(out_gpu, {"mask": g["mask"],
                       "out": (dt, np.ascontiguousarray(o.transpose(1, 0, 2))),
                       "lse": (ldt, lse)}, gmeta)


ACTIONS = {"add_block": add_block, "drop_sink": drop_sink,
           "perturb": perturb, "dense": dense, "nhd": nhd,
           "npydir": npydir, "lse_shift": lse_shift, "bad_shape": bad_shape,
           "keep": keep, "budget": budget, "skip_block": skip_block,
           "set_out": set_out, "swap_heads": swap_heads, "nan_at": nan_at,
           "truncate_q": truncate_q, "shift": shift, "strip": strip,
           "round_bf16": round_bf16, "nhd_lse": nhd_lse}

if __name__ == "__main__":
    ACTIONS[sys.argv[1]](*sys.argv[2:])
