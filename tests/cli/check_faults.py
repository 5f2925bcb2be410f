"""Faults a GPU Stem kernel really has, doctored into genuine GPU captures,
and what `stem check` says about them (docs/ALGORITHM.md section 5).

Every fault is applied as a float64 delta on the capture's own output
(the fault's exact result minus the exact reference, both computed here in
float64), so the kernel's genuine rounding noise stays in.  Each doctored
copy must FAIL naming the stage, the kind and the place; every genuine
capture, and flash-style emulations of it in bf16 and fp16 (float32
scores, P and out rounded to the dtype, float32 lse), must PASS.

usage: check_faults.py STEM [--full] [--only NAME] [--capture NAME]
                       [--measure]
  STEM       the stem binary
  --full     every capture at its full length (minutes); default: the last
             query blocks of AngelSlim s2 and FlexAttention s2 (seconds)
  --only N   faults whose name contains N
  --capture N  captures whose name contains N (ang_s2, hpc_r1, flex_s2...)
  --measure  per capture, the smallest out scale error, softmax-scale
             error, lse offset and value-term change that fail (bisection)
Ends with the line "faults: N passed, M failed"; exits 1 on a failure.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_doctor import (as_f32, f32_to_bf16, read_st,  # noqa: E402
                          write_st)

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                 "conformance")
BLOCK = 128


def rnd(x, dtype):
    """x rounded to dtype ('bf16', 'fp16', 'fp32'), as float64."""
    x = np.asarray(x, dtype=np.float64)
    if dtype == "bf16":
        return as_f32(("BF16", f32_to_bf16(x.astype(np.float32)))).astype(
            np.float64)
    if dtype == "fp16":
        return x.astype(np.float16).astype(np.float64)
    return x.astype(np.float32).astype(np.float64)


def store_out(x, like):
    """x in the dtype of the capture's out tensor (dtype name, array)."""
    dt = like[0]
    if dt == "BF16":
        return ("BF16", f32_to_bf16(x.astype(np.float32)))
    if dt == "F16":
        return ("F16", x.astype(np.float16))
    return ("F32", x.astype(np.float32))


class Capture:
    """A genuine capture, optionally cut to its last query blocks (a chunk:
    Lq < Lk, the cut at a block boundary of the keys)."""

    def __init__(self, name, inp, gpu, args, last_blocks=None):
        self.name, self.args = name, args
        t, self.in_meta = read_st(inp)
        g, self.meta = read_st(gpu)
        self.q = as_f32(t["q"]).astype(np.float64)
        self.k = as_f32(t["k"]).astype(np.float64)
        self.v = as_f32(t["v"]).astype(np.float64)
        self.g = dict(g)
        hq, n, d = self.q.shape
        self.hq, self.n, self.d = hq, n, d
        self.hpg = hq // self.k.shape[0]
        if last_blocks:
            qb = (n + BLOCK - 1) // BLOCK
            lq = n - (qb - last_blocks) * BLOCK
            self.q = self.q[:, n - lq:]
            for name_, (dt, a) in list(self.g.items()):
                if name_ in ("block_logits", "mask", "x_mask_alpha1"):
                    self.g[name_] = (dt, np.ascontiguousarray(a[:, -last_blocks:]))
                elif name_ in ("out", "lse"):
                    self.g[name_] = (dt, np.ascontiguousarray(a[:, n - lq:]))
        self.lq = self.q.shape[1]
        self.off = n - self.lq
        self.raw_in = {k_: (dt, a) for k_, (dt, a) in t.items()}
        if last_blocks:
            dt, a = self.raw_in["q"]
            self.raw_in["q"] = (dt, np.ascontiguousarray(a[:, n - self.lq:]))
        self.mask = self.g["mask"][1].astype(bool)
        self._ref = {}

    def keys(self, h, r, mask=None, causal_extra=0):
        pos = r + self.off
        keys = np.arange(min(pos + 1 + causal_extra, self.n))
        m = self.mask if mask is None else mask
        qbl = r // BLOCK
        return keys[m[h, qbl, keys // BLOCK]]

    def attend(self, h, rows, scale_mul=1.0, mask=None, causal_extra=0,
               lse=False, kv=None, twice=None, clamp=None):
        """Exact float64 attention of rows of head h (softmax scale
        scale_mul / sqrt(d)), a query block at a time; out [len(rows), d]
        and lse.  kv: the kv head to read (default h's own); twice: a key
        block whose keys count twice in the softmax; clamp: q.k clamped to
        [-clamp, clamp] before the scale."""
        g = h // self.hpg if kv is None else kv
        rows = np.asarray(list(rows))
        out = np.zeros((len(rows), self.d))
        ls = np.zeros(len(rows))
        c = scale_mul / math.sqrt(self.d)
        m = self.mask if mask is None else mask
        for qb in np.unique(rows // BLOCK):
            sel = np.nonzero(rows // BLOCK == qb)[0]
            pos = rows[sel] + self.off
            kend = min(int(pos.max()) + 1 + causal_extra, self.n)
            keys = np.arange(kend)
            allowed = m[h, qb, keys // BLOCK][None, :] & \
                (keys[None, :] <= pos[:, None] + causal_extra)
            s = self.q[h, rows[sel]] @ self.k[g, :kend].T
            if clamp is not None:
                s = np.clip(s, -clamp, clamp)
            s = np.where(allowed, s * c, -np.inf)
            mx = s.max(axis=1, keepdims=True)
            w = np.exp(s - mx)
            if twice is not None:
                w[:, keys // BLOCK == twice] *= 2
            tot = w.sum(axis=1)
            out[sel] = (w @ self.v[g, :kend]) / tot[:, None]
            ls[sel] = mx[:, 0] + np.log(tot)
        return (out, ls) if lse else out

    def ref(self, h):
        """Exact reference out and lse of every row of head h (cached)."""
        if h not in self._ref:
            self._ref[h] = self.attend(h, range(self.lq), lse=True)
        return self._ref[h]

    def params(self, tmp, stem):
        """The parameters stem check applies to this capture (its JSON
        report of the genuine mask alone)."""
        if getattr(self, "_params", None) is None:
            argv = self.files(tmp, {"mask": self.g["mask"]}, "params")
            self._params = run_check(stem, argv, tmp)[2]["params"]
        return self._params

    def rows_of(self, qblock):
        return list(range(qblock * BLOCK, min((qblock + 1) * BLOCK, self.lq)))

    def files(self, tmp, tensors, tag):
        """Write the input and a GPU file holding tensors; return the
        stem check arguments."""
        fin = os.path.join(tmp, "%s.in.safetensors" % self.name)
        if not os.path.exists(fin):
            write_st(fin, self.raw_in, self.in_meta)
        fg = os.path.join(tmp, "%s.%s.safetensors" % (self.name, tag))
        write_st(fg, tensors, self.meta)
        return [fin, fg] + self.args


def run_check(stem, argv, tmp):
    js = os.path.join(tmp, "report.json")
    p = subprocess.run([stem, "check"] + argv + ["--json", js],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    try:
        with open(js) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        rep = None
    return p.returncode, p.stdout, rep


def failing(rep):
    """(stage, kind, head, qblock) of every listed fault."""
    out = []
    for st, s in rep["stages"].items():
        for it in s["items"]:
            if it["fault"]:
                out.append((st, it["kind"], it["head"], it["qblock"]))
    return out


# ------------------------------------------------------------- the faults
# Each returns (tensors of the doctored GPU file, expectation), where the
# expectation is a list of (stage, kinds, head or None, qblock or None):
# some listed fault must match one of them.

def with_out(c, o):
    """The capture's tensors with out replaced by o."""
    t = dict(c.g)
    t["out"] = store_out(o, c.g["out"])
    return t


def gpu_out(c):
    return as_f32(c.g["out"]).astype(np.float64)


def f_out_scale_block(c, factor=1.01, h=None, qblock=None):
    h = c.hq - 1 if h is None else h
    qblock = 1 if qblock is None else qblock
    o = gpu_out(c)
    rows = c.rows_of(qblock)
    ref = c.ref(h)[0]
    o[h, rows] += (factor - 1) * ref[rows]
    return with_out(c, o), [("out", ("scale bias", "out row"), h, qblock)]


def f_out_scale_head(c, factor=1.05, h=0):
    o = gpu_out(c)
    o[h] += (factor - 1) * c.ref(h)[0]
    return with_out(c, o), [("out", ("scale bias", "out row"), h, None)]


def softmax_scale(c, mul):
    o = gpu_out(c)
    for h in range(c.hq):
        o[h] += c.attend(h, range(c.lq), scale_mul=mul) - c.ref(h)[0]
    return with_out(c, o), [("out", ("temperature bias", "out row"), None,
                              None)]


def f_temp_d1(c):
    return softmax_scale(c, math.sqrt(c.d / (c.d + 1.0)))


def f_temp_3pct(c, mul=0.97):
    return softmax_scale(c, mul)


def f_neighbour_row(c, h=0, qblock=1):
    o = gpu_out(c)
    ref = c.ref(h)[0]
    rows = c.rows_of(qblock)
    for r in rows:
        if r + 1 < c.lq:
            o[h, r] += ref[r + 1] - ref[r]
    return with_out(c, o), [("out", ("neighbour row", "out row"), h, qblock)]


def f_no_rescale(c, h=0, qblock=2):
    """Flash attention whose accumulator is not rescaled when a key block
    raises the running maximum, in the rows of one query block."""
    o = gpu_out(c)
    g = h // c.hpg
    cs = 1 / math.sqrt(c.d)
    ref = c.ref(h)[0]
    rows = c.rows_of(qblock)
    for r in rows:
        kk = c.keys(h, r)
        s = (c.k[g, kk] @ c.q[h, r]) * cs
        m, l, acc = -np.inf, 0.0, np.zeros(c.d)
        for J in np.unique(kk // BLOCK):
            sel = kk // BLOCK == J
            mj = max(m, s[sel].max())
            p = np.exp(s[sel] - mj)
            a = math.exp(m - mj) if m > -np.inf else 0.0
            l = l * a + p.sum()
            acc = acc + p @ c.v[g, kk[sel]]     # the fault: acc not * a
            m = mj
        o[h, r] += acc / l - ref[r]
    return with_out(c, o), [("out", None, h, qblock)]


def f_causal_offset(c, h=0, qblock=1, extra=1):
    """The causal limit off by extra keys (the rows read extra keys past
    their own), in the rows of one query block."""
    o = gpu_out(c)
    rows = c.rows_of(qblock)
    o[h, rows] += c.attend(h, rows, causal_extra=extra) - c.ref(h)[0][rows]
    return with_out(c, o), [("out", None, h, qblock)]


def f_diag_unmasked(c, h=0, qblock=1):
    """The diagonal block without its causal mask: every row of one query
    block reads the whole block."""
    return f_causal_offset(c, h, qblock, BLOCK)


def f_neighbour_head(c, h=0, qblock=1):
    """The next query head's output written into head h's rows of one
    query block (a head index off by one in the store)."""
    if c.hq < 2:
        return None
    o = gpu_out(c)
    rows = c.rows_of(qblock)
    o[h, rows] += c.ref(h + 1)[0][rows] - c.ref(h)[0][rows]
    return with_out(c, o), [("out", ("neighbour head",), h, qblock)]


def f_wrong_kv(c, h=0):
    """Head h reading the k and v of the next kv head (of the previous
    for the last): a kv head index off by one."""
    hkv = c.k.shape[0]
    if hkv < 2:
        return None
    g = h // c.hpg
    g2 = g + 1 if g + 1 < hkv else g - 1
    o = gpu_out(c)
    o[h] += c.attend(h, range(c.lq), kv=g2) - c.ref(h)[0]
    return with_out(c, o), [("out", ("wrong kv head",), h, None)]


def f_chunk_offset(c):
    """A chunk (Lq < Lk) whose causal offset is one token short: every
    row of every head misses its own key."""
    if c.off == 0:
        return None
    o = gpu_out(c)
    for h in range(c.hq):
        o[h] += c.attend(h, range(c.lq), causal_extra=-1) - c.ref(h)[0]
    return with_out(c, o), [("out", ("out row",), None, None)]


def f_block_twice(c, h=0, qblock=2):
    """The last kept key block before the diagonal visited twice by the
    rows of one query block (a block list padded with its last entry)."""
    rows = c.rows_of(qblock)
    diag = c.off // BLOCK + qblock
    kept = [J for J in np.nonzero(c.mask[h, qblock])[0] if J < diag]
    if not kept:
        return None
    o = gpu_out(c)
    o[h, rows] += c.attend(h, rows, twice=kept[-1]) - c.ref(h)[0][rows]
    return with_out(c, o), [("out", ("out row",), h, qblock)]


def f_fp16_clamp(c):
    """q.k saturating instead of growing (an fp16 score tile clamped at its
    largest finite value; the clamp is put where it bites on this data:
    the 99.9th percentile of |q.k| over the last query block's rows and
    their causal keys), every head."""
    rows = c.rows_of((c.lq - 1) // BLOCK)
    vals = []
    for h in range(c.hq):
        g = h // c.hpg
        s = c.q[h, rows] @ c.k[g, :c.off + rows[-1] + 1].T
        vals.append(np.abs(s).ravel())
    clamp = float(np.quantile(np.concatenate(vals), 0.999))
    o = gpu_out(c)
    for h in range(c.hq):
        o[h] += c.attend(h, range(c.lq), clamp=clamp) - c.ref(h)[0]
    return with_out(c, o), [("out", None, None, None)]


def lse_tensors(c, lse):
    t = dict(c.g)
    t["lse"] = ("F32", lse.astype(np.float32))
    return t


def f_lse_offset(c, delta=1e-3, h=None):
    h = c.hq - 1 if h is None else h
    lse = as_f32(c.g["lse"]).astype(np.float64).copy()
    lse[h] += delta
    return lse_tensors(c, lse), [("lse", ("lse offset", "lse row"), h, None)]


def f_lse_base2(c, h=0):
    lse = as_f32(c.g["lse"]).astype(np.float64).copy()
    ref = c.ref(h)[1]
    lse[h] += ref / math.log(2) - ref
    return lse_tensors(c, lse), [("lse", ("lse row",), h, None)]


def logits_delta(c, tmp, stem, extra, tag):
    """Reference logits with the capture's parameters changed by extra,
    minus those without, both from `stem run --f64`."""
    fin = os.path.join(tmp, "%s.in.safetensors" % c.name)
    if not os.path.exists(fin):
        write_st(fin, c.raw_in, c.in_meta)
    outs = []
    base = [a for a in c.args]
    for e, t in ((extra, tag), ([], "base")):
        f = os.path.join(tmp, "%s.run_%s.safetensors" % (c.name, t))
        if not os.path.exists(f):
            subprocess.run([stem, "run", fin, "-o", f, "--f64"] + run_params(c)
                           + base + e, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        outs.append(as_f32(read_st(f)[0]["block_logits"]).astype(np.float64))
    a, b = outs
    c.lref = b
    fin = np.isfinite(a) & np.isfinite(b)
    return np.where(fin, np.where(fin, a, 0) - np.where(fin, b, 0), 0.0)


def run_params(c):
    m = c.meta
    out = []
    for key, opt in (("alpha", "--alpha"), ("keep_ratio", "--keep-ratio"),
                     ("block_size", "--block"), ("stride", "--stride"),
                     ("lambda_mag", "--lambda")):
        if key in m:
            out += [opt, str(m[key])]
    return out


def with_logits(c, dl):
    """The capture's logits plus dl, alone; rounded to bf16 where the
    capture stores bf16 values in its F32 logits (AngelSlim, hpc-ops)."""
    g = as_f32(c.g["block_logits"])
    fin = np.isfinite(g)
    lg = g.astype(np.float64) + dl
    if np.array_equal(rnd(g[fin], "bf16"), g[fin].astype(np.float64)):
        lg = np.where(fin, rnd(np.where(fin, lg, 0), "bf16"), g)
    return {"block_logits": ("F32", lg.astype(np.float32))}


def f_value_weight(c, tmp, stem):
    """The value-norm weight 1.5 times the profile's (0.3 for 0.2)."""
    lam = 1.5 * float(c.meta.get("lambda_mag", 0.2))
    dl = logits_delta(c, tmp, stem, ["--lambda", "%g" % lam], "lam%g" % lam)
    return with_logits(c, dl), [("logits", ("value-term bias", "logit error"),
                                 None, None)]


def f_stride16(c, tmp, stem):
    """Twice the profile's stride (16 for 8)."""
    s2 = 2 * int(c.meta.get("stride", 8))
    dl = logits_delta(c, tmp, stem, ["--stride", str(s2)], "s%d" % s2)
    return with_logits(c, dl), [("logits", ("stride bias", "logit error",
                                            "logit scale bias"), None, None)]


def f_main_diagonal(c, tmp, stem):
    """Scoring pairs on the main diagonal of each group pair (q offset j
    with k offset j) instead of the anti-diagonal (s - 1 - j with j)."""
    s = int(c.meta.get("stride", 8))
    base = logits_delta(c, tmp, stem, ["--lambda", "0"], "lam0")
    # the QK term of the reference: -(base) is T, L - T the QK part
    lg_ref = read_st(os.path.join(tmp, "%s.run_base.safetensors" % c.name))[0]
    lref = as_f32(lg_ref["block_logits"]).astype(np.float64)
    qk = np.where(np.isfinite(lref), lref + base, 0.0)
    hq, qb, kb = lref.shape
    full_q = np.concatenate([np.zeros((hq, c.off, c.d)), c.q], axis=1)

    def gsums(x, nblk):
        n = x.shape[1]
        pad = nblk * BLOCK - n
        x = np.concatenate([x, np.zeros((x.shape[0], pad, c.d))], axis=1)
        x = x.reshape(x.shape[0], nblk, BLOCK // s, s, c.d)
        return x.sum(axis=2)                        # [H, blk, s, d]
    qs = gsums(full_q, kb)[:, kb - qb:]
    ks = gsums(c.k, kb)
    anti = np.zeros((hq, qb, kb))
    main = np.zeros((hq, qb, kb))
    for h in range(hq):
        g = h // c.hpg
        for j in range(s):
            anti[h] += qs[h, :, s - 1 - j] @ ks[g, :, j].T
            main[h] += qs[h, :, j] @ ks[g, :, j].T
    fin = np.isfinite(lref)
    cfit = (anti[fin] @ qk[fin]) / (anti[fin] @ anti[fin])
    dl = np.where(fin, cfit * (main - anti), 0.0)
    return with_logits(c, dl), [("logits", None, None, None)]


def f_drop_topk(c, tmp, stem):
    """Mask only: in one sparse row, the kept top-k block of the highest
    reference logit dropped and the best dropped block kept instead (a
    sort that loses its first entry).  On random data the two lie within
    rounding of each other: then the report must say the row is
    undecided, and --strict must fail it."""
    logits_delta(c, tmp, stem, ["--lambda", "0"], "lam0")     # c.lref
    par = c.params(tmp, stem)
    m = c.g["mask"][1].copy()
    nb = m.shape[2]
    best = None
    for I in range(m.shape[1]):
        diag = c.off // BLOCK + I
        forced = set(range(min(par["sinks"], diag + 1))) | \
            set(range(max(0, diag - par["window"] + 1), diag + 1))
        cand = [J for J in range(diag + 1) if J not in forced]
        kept = [J for J in cand if m[0, I, J]]
        drop = [J for J in cand if not m[0, I, J]]
        if kept and drop and (best is None or len(cand) > best[0]):
            a = max(kept, key=lambda J: c.lref[0, I, J])
            b = max(drop, key=lambda J: c.lref[0, I, J])
            best = (len(cand), I, a, b)
    if best is None or nb < 8:
        return None
    _, I, a, b = best
    m[0, I, a], m[0, I, b] = 0, 1
    return {"mask": (c.g["mask"][0], m)}, [("mask", ("mask gap",), 0, I)]


def value_term(c, g, agg):
    """The value term of kv head g per key block, in float64: per group of
    s tokens the max (agg np.max) or mean (np.mean) of ||v_t||, its log,
    z-scored over the full groups (angelslim) or every group of the
    block-padded length (hpc-ops), ReLU, times lambda, averaged over the
    block's groups."""
    s = int(c.meta.get("stride", 8))
    lam = float(c.meta.get("lambda_mag", 0.2))
    n = c.k.shape[1]
    kb = (n + BLOCK - 1) // BLOCK
    norms = np.sqrt(np.sum(c.v[g] ** 2, axis=1))
    pad = np.full(kb * BLOCK, np.nan)
    pad[:n] = norms
    grp = pad.reshape(kb * BLOCK // s, s)
    have = ~np.isnan(grp)
    if agg is np.max:
        gv = np.where(have, grp, 0).max(axis=1)
    else:
        cnt = have.sum(axis=1)
        gv = np.where(cnt > 0, np.where(have, grp, 0).sum(axis=1) /
                      np.maximum(cnt, 1), 0)
    lg = np.log(gv + 1e-6)
    full = n // s if "hpc" not in c.name else len(lg)
    mean, sd = lg[:full].mean(), lg[:full].std(ddof=1)
    z = np.maximum((lg - mean) / (sd + 1e-6), 0)
    return lam * z.reshape(kb, BLOCK // s).mean(axis=1)


def f_group_mean(c, tmp, stem):
    """The group value norm taken as the mean of the group's norms instead
    of their maximum."""
    g0 = as_f32(c.g["block_logits"])
    dl = np.zeros(g0.shape)
    for h in range(c.hq):
        t = value_term(c, h // c.hpg, np.mean) - value_term(c, h // c.hpg, np.max)
        dl[h] = np.where(np.isfinite(g0[h]), t[None, :], 0.0)
    logits_delta(c, tmp, stem, ["--lambda", "0"], "lam0")   # c.lref
    return with_logits(c, dl), [("logits", None, None, None)]


def emulate(c, dtype):
    """A flash kernel in dtype: float32 scores, P rounded to dtype before
    P.V, float32 row sums, out rounded to dtype, float32 lse."""
    o = np.zeros((c.hq, c.lq, c.d))
    lse = np.zeros((c.hq, c.lq))
    cs = np.float32(1 / math.sqrt(c.d))
    for h in range(c.hq):
        g = h // c.hpg
        qd, kd, vd = (rnd(x, dtype) for x in (c.q[h], c.k[g], c.v[g]))
        for r in range(c.lq):
            kk = c.keys(h, r)
            s = rnd((kd[kk] @ qd[r]).astype(np.float32) * cs, "fp32")
            m = s.max()
            p = rnd(np.exp(s - m), "fp32")
            ll = float(np.float32(p.sum()))
            o[h, r] = rnd((rnd(p, dtype) @ vd[kk]) / ll, "fp32")
            lse[h, r] = float(np.float32(m + math.log(ll)))
    t = {"mask": c.g["mask"],
         "out": ("BF16", f32_to_bf16(o.astype(np.float32))) if dtype == "bf16"
         else ("F16", o.astype(np.float16)),
         "lse": ("F32", lse.astype(np.float32))}
    return t


# --------------------------------------------------------------- the cases

def captures(full):
    """(capture, which faults apply) for the run."""
    ang = ["--profile", "angelslim"]
    hpc = ["--profile", "hpc-ops", "--alpha", "0.7"]
    out = []
    if full:
        for n in ("s2", "r1", "s6"):
            out.append((Capture("ang_" + n, os.path.join(D, n + ".in.safetensors"),
                                os.path.join(D, n + ".angelslim.safetensors"), ang),
                        "logits out mask"))
        for n in ("s2", "r1"):
            p = os.path.join(D, "hpcops", n)
            if os.path.exists(p + ".hpcops.safetensors"):
                out.append((Capture("hpc_" + n, p + ".in.safetensors",
                                    p + ".hpcops.safetensors", hpc), "logits out"))
            f = os.path.join(D, "flex", n + ".flex.safetensors")
            if os.path.exists(f):
                out.append((Capture("flex_" + n, os.path.join(D, n + ".in.safetensors"),
                                    f, []), "out lse emulate mask"))
    else:
        out.append((Capture("ang_s2", os.path.join(D, "s2.in.safetensors"),
                            os.path.join(D, "s2.angelslim.safetensors"), ang, 6),
                    "logits out emulate"))
        out.append((Capture("ang_r1", os.path.join(D, "r1.in.safetensors"),
                            os.path.join(D, "r1.angelslim.safetensors"), ang, 6),
                    "mask"))
        f = os.path.join(D, "flex", "s2.flex.safetensors")
        if os.path.exists(f):
            out.append((Capture("flex_s2", os.path.join(D, "s2.in.safetensors"),
                                f, [], 6), "lse"))
    return out


# faults that may pass while they are under 3 times the kernel's own
# error (their size depends on where the data puts weight, or on the
# size of the logits: hpc-ops stores logits up to 1064 in bf16, whose
# rounding is larger than its whole value term)
LENIENT = ("causal limit one key late", "value-norm weight x1.5 (0.3 for 0.2)",
           "stride x2 (16 for 8)", "main diagonal scoring",
           "group value norm the mean, not the max")


def faults_for(what):
    fs = []
    if "out" in what:
        fs += [("out x1.01 on one query block", f_out_scale_block),
               ("out x1.10 on one query block",
                lambda c: f_out_scale_block(c, 1.10)),
               ("out x1.05 on a head", f_out_scale_head),
               ("softmax scale 1/sqrt(d+1)", f_temp_d1),
               ("softmax scale 3% off", f_temp_3pct),
               ("rows written one place off", f_neighbour_row),
               ("next head's rows in one query block", f_neighbour_head),
               ("k and v of the next kv head", f_wrong_kv),
               ("P not rescaled on a new maximum", f_no_rescale),
               ("causal limit one key late", f_causal_offset),
               ("diagonal block without its causal mask", f_diag_unmasked),
               ("chunk's causal offset one token short", f_chunk_offset),
               ("a key block visited twice", f_block_twice),
               ("q.k clamped (fp16 saturation)", f_fp16_clamp)]
    if "lse" in what:
        fs += [("lse +1e-3 in one head", f_lse_offset),
               ("lse +3e-3 in one head", lambda c: f_lse_offset(c, 3e-3)),
               ("lse in base 2 in one head", f_lse_base2)]
    if "logits" in what:
        fs += [("value-norm weight x1.5 (0.3 for 0.2)", f_value_weight),
               ("stride x2 (16 for 8)", f_stride16),
               ("main diagonal scoring", f_main_diagonal),
               ("group value norm the mean, not the max", f_group_mean)]
    if "mask" in what:
        fs += [("one top-k block exchanged, mask only", f_drop_topk)]
    return fs


NEEDS_RUN = (f_value_weight, f_stride16, f_main_diagonal, f_group_mean,
             f_drop_topk)


def make(c, fn, tmp, stem):
    """The fault's (tensors, expectation), or None where it does not
    apply to the capture."""
    return fn(c, tmp, stem) if fn in NEEDS_RUN else fn(c)


def fault_size(c, t):
    """||doctored - genuine|| / ||genuine - reference|| over the out rows
    (or lse values, or logits) the fault changed."""
    if "block_logits" in t and t["block_logits"] is not c.g["block_logits"] \
            and getattr(c, "lref", None) is not None:
        new = as_f32(t["block_logits"]).astype(np.float64)
        old = as_f32(c.g["block_logits"]).astype(np.float64)
        fin = np.isfinite(old) & np.isfinite(c.lref)
        den = np.sum((old[fin] - c.lref[fin]) ** 2)
        return math.sqrt(np.sum((new[fin] - old[fin]) ** 2) / den) if den else None
    for name in ("out", "lse"):
        if name not in t or t[name] is c.g[name]:
            continue
        new = as_f32(t[name]).astype(np.float64)
        old = as_f32(c.g[name]).astype(np.float64)
        num = den = 0.0
        for h in range(c.hq):
            diff = new[h] - old[h]
            rows = np.nonzero(diff.reshape(c.lq, -1).any(axis=1))[0]
            if not len(rows):
                continue
            ref = c.ref(h)[0 if name == "out" else 1][rows]
            num += np.sum(diff[rows] ** 2)
            den += np.sum((old[h][rows] - ref) ** 2)
        return math.sqrt(num / den) if den > 0 else None
    return None


def matches(found, want):
    for st, kinds, h, qb in want:
        for fst, fk, fh, fq in found:
            if fst == st and (kinds is None or fk in kinds) and \
               (h is None or fh == h) and (qb is None or fq in (qb, -1)):
                return True
    return False


# ------------------------------------------------------------ measurement

def smallest_failing(stem, c, tmp, build, lo, hi, steps=5):
    """The smallest magnitude x in [lo, hi] (geometric bisection) for which
    build(x) -> tensors makes stem check fail; None if hi passes."""
    def fails(x):
        rc, _, _ = run_check(stem, c.files(tmp, build(x), "measure"), tmp)
        return rc == 1
    if not fails(hi):
        return None
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        if fails(mid):
            hi = mid
        else:
            lo = mid
    return hi


def measure(stem, c, what, tmp):
    """Print the smallest failing out scale (one query block), softmax
    scale (every row), lse offset (one head) and value-term change, each
    also as a multiple of the capture's own error there."""
    o = gpu_out(c) if "out" in what or "lse" in what else None
    lines = []
    if o is not None and "out" in c.g:
        h, qb = 0, 1
        rows = c.rows_of(qb)
        ref = c.ref(h)[0]
        own = np.linalg.norm(o[h, rows] - ref[rows])

        def scale_block(x):
            oo = o.copy()
            oo[h, rows] += x * ref[rows]
            return with_out(c, oo)
        x = smallest_failing(stem, c, tmp, scale_block, 1e-5, 0.1)
        if x:
            lines.append("out scale on one query block: %.3g (%.3gx its own "
                         "error)" % (x, x * np.linalg.norm(ref[rows]) / own))
        eps = 1e-3
        dirs = [(c.attend(hh, range(c.lq), scale_mul=1 + eps)
                 - c.attend(hh, range(c.lq), scale_mul=1 - eps)) / (2 * eps)
                for hh in range(c.hq)]
        own_all = np.linalg.norm(o - np.stack([c.ref(hh)[0] for hh in range(c.hq)]))

        def temp(x):
            oo = o.copy()
            for hh in range(c.hq):
                oo[hh] += x * dirs[hh]
            return with_out(c, oo)
        x = smallest_failing(stem, c, tmp, temp, 1e-5, 0.1)
        if x:
            lines.append("softmax scale: %.3g relative (%.3gx its own error)" %
                         (x, x * np.linalg.norm(np.stack(dirs)) / own_all))
    if "lse" in what and "lse" in c.g:
        h = c.hq - 1
        lse = as_f32(c.g["lse"]).astype(np.float64)
        own = np.sqrt(np.mean((lse[h] - c.ref(h)[1]) ** 2))

        def off(x):
            ll = lse.copy()
            ll[h] += x
            return lse_tensors(c, ll)
        x = smallest_failing(stem, c, tmp, off, 1e-8, 1e-2)
        if x:
            lines.append("lse offset in one head: %.3g (%.3gx its own rms "
                         "error)" % (x, x / own))
    if "logits" in what:
        dl = logits_delta(c, tmp, stem, ["--lambda", "0"], "lam0")
        ref = read_st(os.path.join(tmp, "%s.run_base.safetensors" % c.name))[0]
        lref = as_f32(ref["block_logits"]).astype(np.float64)
        g = as_f32(c.g["block_logits"]).astype(np.float64)
        fin = np.isfinite(lref) & np.isfinite(g)
        own = np.sqrt(np.mean((g[fin] - lref[fin]) ** 2))
        x = smallest_failing(stem, c, tmp, lambda x: with_logits(c, -x * dl),
                             1e-4, 1.0)
        if x:
            ch = np.sqrt(np.mean((x * dl[fin]) ** 2))
            lines.append("value term x(1 + %.3g): rms logit change %.3g (%.3gx "
                         "its own rms error %.3g)" % (x, ch, ch / own, own))
    for ln in lines:
        print("measure %s: %s" % (c.name, ln))


# kinds that must not be named unless the fault is of that kind: a FAIL
# that names the wrong cause misleads the kernel's author
MISLEADING = ("ignores the mask",)

# faults a mask-only check may leave undecided where the data cannot tell
# them from a tie: the report must say so, and --strict must fail them
UNDECIDABLE = ("one top-k block exchanged, mask only",)


# easier twins of faults run by default, for --full only
FULL_ONLY = ("out x1.10 on one query block", "lse +3e-3 in one head")


def judge(stem, c, name, t, want, tmp):
    """(outcome, line) of one doctored capture: outcome 'FAIL' (failed,
    naming stage, kind and place), 'undecided' (passed, saying so, and
    --strict fails it), 'small' (passed under 3 times the kernel's own
    error, a LENIENT fault), or 'MISSED'."""
    argv = c.files(tmp, t, "fault")
    rc, text, rep = run_check(stem, argv, tmp)
    found = failing(rep) if rep else []
    wanted = set(k for _, ks, _, _ in want for k in (ks or ()))
    wrong = [f for f in found if f[1] in MISLEADING and f[1] not in wanted]
    size = fault_size(c, t)
    desc = "; ".join("%s %s h%d qb%d" % f for f in found[:3]) or "no fault"
    if size is not None:
        desc += "; %.3gx the kernel's own error there" % size
    if rc == 1 and matches(found, want) and not wrong:
        return "FAIL", desc, text
    if rc == 0 and name in UNDECIDABLE and rep:
        st = want[0][0]
        und = rep["stages"][st]["undecided"]
        rc2, _, _ = run_check(stem, argv + ["--strict"], tmp)
        if und > 0 and "undecided" in text and rc2 == 1:
            return "undecided", desc + "; %s: %d undecided, --strict fails" % (
                st, und), text
    if rc == 0 and name in LENIENT and size is not None and size < 3:
        return "small", desc, text
    return "MISSED", desc + ("; names %s" % wrong[0][1] if wrong else ""), text


def main(argv):
    stem = argv[1]
    full = "--full" in argv
    only = argv[argv.index("--only") + 1] if "--only" in argv else ""
    cap = argv[argv.index("--capture") + 1] if "--capture" in argv else ""
    npass = nfail = 0
    matrix = {}          # fault -> capture -> outcome
    names = []
    with tempfile.TemporaryDirectory() as tmp:
        for c, what in captures(full):
            if cap and cap not in c.name:
                continue
            names.append(c.name)
            if "--measure" in argv:
                measure(stem, c, what, tmp)
                continue

            def report(name, ok, text):
                nonlocal npass, nfail
                npass, nfail = npass + ok, nfail + (not ok)
                print("%s %s: %s" % ("ok  " if ok else "FAIL", c.name, name))
                if not ok:
                    print("     | " + text.replace("\n", "\n     | "))

            def worst(rep):
                if rep:
                    print("     worst |z| / threshold (and of both limits): " + ", ".join(
                        "%s %.2f (%.2f)" % (b["test"], b["worst_zratio"], b["worst"])
                        for b in rep["bias"]["tests"] if b["groups"]))
            if not only:
                rc, text, rep = run_check(stem, c.files(tmp, c.g, "genuine"), tmp)
                report("genuine capture passes", rc == 0, text)
                worst(rep)
                if "emulate" in what:
                    for dt in ("bf16", "fp16"):
                        t = emulate(c, dt)
                        meta = dict(c.meta)
                        c.meta, saved = dict(meta, dtype=dt), c.meta
                        rc, text, rep = run_check(stem, c.files(tmp, t, "emu_" + dt), tmp)
                        c.meta = saved
                        report("flash-style %s emulation passes" % dt, rc == 0, text)
                        worst(rep)
            for name, fn in faults_for(what):
                if only and only not in name or (not full and name in FULL_ONLY):
                    continue
                matrix.setdefault(name, {})
                made = make(c, fn, tmp, stem)
                if made is None:
                    matrix[name][c.name] = "n/a"
                    continue
                t, want = made
                outcome, desc, text = judge(stem, c, name, t, want, tmp)
                matrix[name][c.name] = outcome
                report("%s: %s (%s)" % (name, outcome, desc),
                       outcome != "MISSED", text)
    if matrix:
        w = max(len(n) for n in matrix)
        print("\n%-*s  %s" % (w, "fault \\ capture",
                              "  ".join("%-9s" % n for n in names)))
        for name, row in matrix.items():
            print("%-*s  %s" % (w, name, "  ".join(
                "%-9s" % row.get(n, "") for n in names)))
    print("faults: %d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
