"""stem_attn: Stem sparse attention prefill on the CPU, and a checker for GPU
Stem kernels, from Python.

A thin ctypes layer over libstem.so (no compiled extension).  Inputs are
NumPy arrays or CPU torch tensors (others are copied to the CPU), F32, F16,
F64 or BF16 (torch.bfloat16, or NumPy uint16 bit patterns with
storage="bf16"), stored [H, N, d] (layout="hnd", the default) or [N, H, d]
(layout="nhd"); a leading batch axis of size 1 is dropped.  Arrays whose
last axis is contiguous are read in place.

    stem_attn.prefill(q, k, v, profile="angelslim", **overrides)
        -> Prefill(logits, mask, out, lse)          NumPy arrays
    stem_attn.dense(q, k, v, **overrides)  -> Dense(out, lse)
    stem_attn.sparse(q, k, v, mask, **overrides) -> Sparse(out, lse)
    stem_attn.to_bf16(x) -> uint16 bits;  stem_attn.from_bf16(bits) -> float32
    stem_attn.budget(kb, profile=..., **overrides)       int32 per position
    stem_attn.explain(q, k, v, head=0, qblock=0)         one query block's table
    stem_attn.check(q, k, v, mask=, out=, lse=, logits=, dtype=, ...) -> Report
    stem_attn.testing.assert_matches_reference(...)      for a kernel's pytest

overrides are stem_params fields (alpha, keep_ratio, block, stride, sinks,
window, value_weight, prompt_blocks, threads, use_f64, ...; also lambda,
initial_blocks, window_size).  The library is found through STEM_LIBRARY,
the repository's build/, the installation prefix, then the system loader.
"""
from __future__ import annotations

import ctypes as C
import math
from typing import Any, Dict, NamedTuple, Optional, Union

import numpy as np

from . import _abi, _errors, _lib, _params, _tensors
from . import testing
from ._bf16 import from_bf16, to_bf16
from ._check import Report, check
from ._errors import (StemError, StemInputError, StemISAError,
                      StemMemoryError, error_for)
from ._lib import StemLibraryNotFound

__all__ = ["prefill", "dense", "sparse", "budget", "explain", "check",
           "params", "to_bf16", "from_bf16", "testing",
           "Prefill", "Dense", "Sparse", "Report", "Explanation", "StemError",
           "StemInputError", "StemMemoryError", "StemISAError",
           "StemLibraryNotFound", "Profile", "version", "library_path"]


class Prefill(NamedTuple):
    """prefill's results: logits and mask [Hq, Qb, Kb], out, lse [Hq, Lq]."""
    logits: np.ndarray
    mask: np.ndarray
    out: np.ndarray
    lse: np.ndarray


class Dense(NamedTuple):
    """dense's results: out and lse [Hq, Lq]."""
    out: np.ndarray
    lse: np.ndarray


class Sparse(NamedTuple):
    """sparse's results (attention under a given mask): out and lse."""
    out: np.ndarray
    lse: np.ndarray


def _ok(st: int, what: str) -> None:
    if st != _abi.STEM_OK:
        raise error_for(st, what)


Profile = Union[str, int]  # "angelslim", "paper", "hpc-ops" or its number


def version() -> str:
    """The library's version string."""
    return _lib.func("stem_version")().decode()


def library_path() -> str:
    """The path of the libstem.so in use."""
    return _lib.lib()._stem_path


def params(profile: Profile = "angelslim", **overrides: Any) -> Dict[str, Any]:
    """The resolved stem_params as a dict (profile preset + overrides)."""
    return _params.as_dict(_params.make(profile, **overrides))


def _split_kwargs(kw, extra=()):
    p, rest = {}, {}
    for k, v in kw.items():
        (p if _params.is_param(k) else rest)[k] = v
    bad = [k for k in rest if k not in extra]
    if bad:
        raise TypeError("stem: unknown argument(s) %s (stem_params fields: "
                        "%s)" % (", ".join(bad), ", ".join(_params.FIELDS[1:])))
    return p, rest


_qkv = _tensors.qkv
_dims = _tensors.dims


def _out_array(p, d, layout):
    dt = np.float64 if p.use_f64 else np.float32
    shape = (d.hq, d.lq, d.d) if layout == "hnd" else (d.lq, d.hq, d.d)
    out = np.empty(shape, dtype=dt)
    hs, ts = (d.lq * d.d, d.d) if layout == "hnd" else (d.d, d.hq * d.d)
    t = _abi.stem_tensor(out.ctypes.data,
                         _lib.dtype_code("F64" if p.use_f64 else "F32"),
                         d.hq, d.lq, d.d, hs, ts)
    return out, t


def _ptr(a):
    return None if a is None else C.c_void_p(a.ctypes.data)


def prefill(q: Any, k: Any, v: Any, profile: Profile = "angelslim",
            layout: str = "hnd", storage: Optional[str] = None,
            **overrides: Any) -> Prefill:
    """One layer's Stem prefill (stem_prefill).

    Returns Prefill(logits [Hq, Qb, Kb] float32 (-inf above the diagonal),
    mask [Hq, Qb, Kb] uint8, out (float32, or float64 with use_f64=1;
    [Hq, Lq, d] or, with layout='nhd', [Lq, Hq, d]), lse [Hq, Lq] float32).
    storage='bf16' reads uint16 arrays as bfloat16 bits (the inputs'
    storage; check's dtype= is the GPU's precision)."""
    p = _params.make(profile, **overrides)
    vq, vk, vv = _qkv(q, k, v, layout, storage)
    d = _dims(p, vq, vk, vv, True)
    out, to = _out_array(p, d, layout)
    lse = np.empty((d.hq, d.lq), dtype=np.float32)
    logits = np.empty((d.hq, d.qb, d.kb), dtype=np.float32)
    mask = np.empty((d.hq, d.qb, d.kb), dtype=np.uint8)
    _ok(_lib.func("stem_prefill")(C.byref(p), C.byref(vq.t), C.byref(vk.t),
                                  C.byref(vv.t), C.byref(to), _ptr(lse),
                                  _ptr(logits), _ptr(mask)), "stem_prefill")
    return Prefill(logits, mask, out, lse)


def dense(q: Any, k: Any, v: Any, profile: Profile = "angelslim",
          layout: str = "hnd", storage: Optional[str] = None,
          **overrides: Any) -> Dense:
    """Dense causal attention (stem_attention_dense): Dense(out, lse)."""
    p = _params.make(profile, **overrides)
    vq, vk, vv = _qkv(q, k, v, layout, storage)
    d = _dims(p, vq, vk, vv, False)
    out, to = _out_array(p, d, layout)
    lse = np.empty((d.hq, d.lq), dtype=np.float32)
    _ok(_lib.func("stem_attention_dense")(C.byref(p), C.byref(vq.t),
                                          C.byref(vk.t), C.byref(vv.t),
                                          C.byref(to), _ptr(lse)),
        "stem_attention_dense")
    return Dense(out, lse)


def sparse(q: Any, k: Any, v: Any, mask: Any, profile: Profile = "angelslim",
           layout: str = "hnd", storage: Optional[str] = None,
           **overrides: Any) -> Sparse:
    """Block-sparse attention under a given mask [Hq, Qb, Kb]
    (stem_attention_sparse): Sparse(out, lse)."""
    p = _params.make(profile, **overrides)
    vq, vk, vv = _qkv(q, k, v, layout, storage)
    d = _dims(p, vq, vk, vv, True)
    m = mask.detach().cpu().numpy() if _tensors.is_torch(mask) else mask
    m = np.asarray(m)
    m = np.ascontiguousarray(m if m.dtype == np.uint8 else m != 0,
                             dtype=np.uint8).reshape(-1)
    if m.size != d.hq * d.qb * d.kb:
        raise ValueError("stem: mask must be [Hq, Qb, Kb] = [%d, %d, %d]"
                         % (d.hq, d.qb, d.kb))
    out, to = _out_array(p, d, layout)
    lse = np.empty((d.hq, d.lq), dtype=np.float32)
    _ok(_lib.func("stem_attention_sparse")(C.byref(p), C.byref(vq.t),
                                           C.byref(vk.t), C.byref(vv.t),
                                           _ptr(m), C.byref(to), _ptr(lse)),
        "stem_attention_sparse")
    return Sparse(out, lse)


def budget(kb: Optional[int] = None, profile: Profile = "angelslim",
           tokens: Optional[int] = None, **overrides: Any) -> np.ndarray:
    """The Token Position-Decay budget (stem_budget): int32 array, entry p
    the top-k count of a query block at key-block position p, for
    p < prompt_blocks (if set) else kb.  Give kb (key blocks) or tokens."""
    p = _params.make(profile, **overrides)
    if kb is None:
        if tokens is None:
            raise TypeError("stem_attn.budget: give kb or tokens")
        kb = -(-int(tokens) // p.block)
    if not 1 <= int(kb) <= 2**31 - 1:     # before ctypes can wrap it
        raise StemInputError(_errors.STEM_ERR_PARAM, "stem_budget",
                             "kb = %d: must be in 1..2147483647" % int(kb))
    nb = C.c_int64()
    _ok(_lib.func("stem_budget_length")(C.byref(p), int(kb), C.byref(nb)),
        "stem_budget")
    n = nb.value
    out = np.empty(n, dtype=np.int32)
    _ok(_lib.func("stem_budget")(C.byref(p), int(kb), _ptr(out)),
        "stem_budget")
    return out[:n]


# ------------------------------------------------------------------ explain
class Explanation:
    """One query block's selection, block by block (as `stem explain
    --qblock`), from the library's stem_explain_row.

    rows: list of dicts with kblock, qk (logit without the value term),
    value (logit - qk), logit, rank (1 = largest; ties: lower index
    first), gap (logit - threshold), kept (bool), why (the reasons in
    words) and why_bits (stem_explain_block.why).  budget, n, candidates,
    topk, kept, threshold and position describe the row."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __str__(self):
        thr = ("%.5f" % self.threshold if math.isfinite(self.threshold)
               else "-inf")
        lines = [
            "head %d (kv head %d), query block %d" % (
                self.head, self.kv_head, self.qblock),
            "profile %s: alpha %g, keep ratio %g, block %d, stride %d, "
            "lambda %g, sinks %d, window %d" % (
                self.params["profile_name"], self.params["alpha"],
                self.params["keep_ratio"], self.params["block"],
                self.params["stride"], self.params["value_weight"],
                self.params["sinks"], self.params["window"]),
            "query block %d at key-block position p = %d: budget b(p) = %d "
            "(n = %d), %d candidates;" % (self.qblock, self.position,
                                          self.budget, self.n,
                                          self.candidates),
            "threshold (rank %d logit) %s; kept %d blocks: %d by the top-k, "
            "the rest sinks, window and diagonal" % (
                self.budget, thr, self.kept, self.topk),
            "%6s %10s %10s %10s %6s %10s  %-4s  %s" % (
                "kblock", "qk", "value", "logit", "rank", "gap", "kept",
                "why")]
        for r in self.rows:
            gap = ("%+10.5f" % r["gap"] if math.isfinite(r["gap"])
                   else "%10s" % "+inf")
            lines.append("%6d %10.5f %10.5f %10.5f %6d %s  %-4s  %s" % (
                r["kblock"], r["qk"], r["value"], r["logit"], r["rank"], gap,
                "yes" if r["kept"] else "no", r["why"]))
        return "\n".join(lines)

    __repr__ = __str__


def _why_text(bits, rank, budget):
    if not bits:
        return "dropped: rank %d > budget %d" % (rank, budget)
    return " + ".join(w for w, b in _abi.WHY if bits & b)


def explain(q: Any, k: Any, v: Any, head: int = 0, qblock: int = 0,
            profile: Profile = "angelslim", layout: str = "hnd",
            storage: Optional[str] = None, sort: str = "block",
            **overrides: Any) -> Explanation:
    """Why query block `qblock` of query head `head` keeps each key block:
    its QK term, value term, logit, rank, gap to the row threshold and the
    reason (sink, window, diagonal, top-k, tie, dropped), as the library's
    stem_explain_row gives them.  Returns an Explanation (rows + str()).
    sort='rank' orders the rows by rank."""
    p = _params.make(profile, **overrides)
    pq = _params.make(profile, **overrides)
    pq.value_rule = _abi.VALUE_RULE["none"]
    vq, vk, vv = _qkv(q, k, v, layout, storage)
    d = _dims(p, vq, vk, vv, True)
    if not (0 <= head < d.hq and 0 <= qblock < d.qb):
        raise IndexError("stem_attn.explain: head %d, qblock %d outside %d "
                         "heads x %d query blocks" % (head, qblock, d.hq,
                                                      d.qb))
    shape = (d.hq, d.qb, d.kb)
    lg = np.empty(shape, np.float32)
    lq = np.empty(shape, np.float32)
    args = (C.byref(vq.t), C.byref(vk.t), C.byref(vv.t))
    _ok(_lib.func("stem_block_logits")(C.byref(p), *args, _ptr(lg)),
        "stem_block_logits")
    _ok(_lib.func("stem_block_logits")(C.byref(pq), *args, _ptr(lq)),
        "stem_block_logits")
    s = _abi.stem_explain_summary()
    blocks = (_abi.stem_explain_block * d.kb)()
    _ok(_lib.func("stem_explain_row")(C.byref(p), C.byref(d), _ptr(lg), head,
                                      qblock, C.byref(s), blocks),
        "stem_explain_row")
    thr = float(s.threshold)
    rows = []
    for j in range(min(s.position, d.kb - 1) + 1):
        b = blocks[j]
        lj, qj = float(b.logit), float(lq[head, qblock, j])
        rows.append({"kblock": j, "qk": qj, "value": lj - qj, "logit": lj,
                     "rank": int(b.rank), "gap": lj - thr,
                     "kept": bool(b.kept), "why_bits": int(b.why),
                     "why": _why_text(b.why, b.rank, s.budget)})
    if sort == "rank":
        rows.sort(key=lambda r: r["rank"])
    pd = _params.as_dict(p)
    pd["profile_name"] = _lib.func("stem_profile_name")(p.profile).decode()
    return Explanation(head=head, kv_head=head // (d.hq // d.hkv),
                       qblock=qblock, position=int(s.position),
                       budget=int(s.budget), n=int(s.n),
                       candidates=int(s.candidates), topk=int(s.topk),
                       threshold=thr, kept=int(s.kept), rows=rows, params=pd)
