"""stem_attn.check: judge a GPU kernel's logits, mask, out and lse against the
reference, in process (stem_check of include/stem_check.h)."""
import collections
import ctypes as C
import json
from typing import Any, Dict, List, NamedTuple

import numpy as np

from . import _abi, _lib, _params, _tensors
from ._errors import error_for
from ._tensors import dims as _dims, qkv as _qkv

# stem_check_options fields settable as keyword arguments of check()
_OPT_NUM = ("tau", "logit_tol", "out_tol", "lse_tol", "sigmas", "max_items",
            "head_begin", "head_count")
_OPT_PREC = ("score_prec", "logit_store", "attn_prec", "attn_score_prec",
             "out_store", "lse_store")
OPTION_KEYS = _OPT_NUM + _OPT_PREC + ("dense_test", "heads")

class Item(NamedTuple):
    """One offender (or tie) of a stage; -1 where a position does not apply."""
    stage: str
    kind: str
    fault: bool
    head: int
    qblock: int
    kblock: int
    row: int
    col: int
    gpu: float
    ref: float
    err: float
    limit: float
    ref_logit: float
    threshold: float

    def __str__(self) -> str:
        it = self
        # the kind alone when it names its stage ("out row", not "out out row")
        kind = (it.kind if any(w.startswith(it.stage[:5])
                               for w in it.kind.split())
                else "%s %s" % (it.stage, it.kind))
        return "%s at head %d%s%s%s%s: gpu %.6g ref %.6g err %.3g limit " \
            "%.3g" % (kind, it.head,
                      " qblock %d" % it.qblock if it.qblock >= 0 else "",
                      " kblock %d" % it.kblock if it.kblock >= 0 else "",
                      " row %d" % it.row if it.row >= 0 else "",
                      " col %d" % it.col if it.col >= 0 else "",
                      it.gpu, it.ref, it.err, it.limit)
Stage = collections.namedtuple(
    "Stage", "name verdict checked faults worst_ratio max_err units undecided "
             "items")

_SCALARS = ("logit_nonfinite", "logit_pattern", "logit_scale", "mask_diffs",
            "mask_ties", "mask_unread", "rows_count_off", "gpu_kept",
            "ref_kept", "causal_blocks", "max_tie_gap", "select_ties",
            "out_under_ref_mask", "diag_added", "out_rel_l2", "lse_max_abs",
            "lse_base2_hint", "rows_failed", "qblocks_failed", "head_begin",
            "head_end", "logit_zmax", "arith_chosen", "strict_failed")


def _struct_dict(s: C.Structure) -> Dict[str, Any]:
    return {n: getattr(s, n) for n, _ in s._fields_}


def _kind_name(k: int) -> str:
    return _lib.func("stem_check_kind_name")(k).decode()


def _items(ptr: Any, n: int, stage: str) -> List[Item]:
    out = []
    is_fault = _lib.func("stem_check_kind_is_fault")
    for i in range(n):
        it = ptr[i]
        out.append(Item(stage, _kind_name(it.kind), bool(is_fault(it.kind)),
                        it.head, it.qblock, it.kblock, it.row, it.col,
                        it.gpu, it.ref, it.err, it.limit, it.ref_logit,
                        it.threshold))
    return out


def _render(fn: Any, rep: _abi.stem_check_report, *args: Any) -> str:
    n = fn(C.byref(rep), *args, None, 0)
    buf = C.create_string_buffer(n + 1)
    fn(C.byref(rep), *args, buf, n + 1)
    return buf.value.decode("utf-8", "replace")


class Report:
    """The verdict of stem_attn.check.

    bool(report): True on PASS.  str(report): the text `stem check` prints
    (report.text(verbose=True) for every stage's figures).  report.data:
    the JSON rendering (stem_check_report_json) as a dict, also read as
    report["key"].  report.stages[name] (logits, selection, mask, out,
    lse): verdict, checked, faults, worst_ratio, max_err, items (the
    offenders, worst first: Item(stage, kind, fault, head, qblock, kblock,
    row, col, gpu, ref, err, limit, ref_logit, threshold)).
    report.faults: every faulty item; report.ties; report.heads (per
    query head: out_rel_l2, dense_t, status, ...); report.hint.
    report.arithmetic: the arithmetic judged by; report.arith_note: which
    other one the errors fit, or "".  report.undecided: per stage, the
    rows (mask: sparse rows) it could not decide; stages[name].units the
    rows it counts them among.  report.bias: the systematic tests by name
    ("out scale", "lse offset", ...): groups, faults, threshold, worst
    (largest min(|z| / threshold, |component| / floor): above 1 a fault),
    worst_z, worst_component, worst_head, worst_qblock, worst_zratio
    (largest |z| / threshold, the floor aside)."""

    def __init__(self, rep, verbose=False):
        self.verdict = _abi.VERDICT.get(rep.verdict, "?")
        self.verbose = bool(verbose)
        self._text = {v: _render(_lib.func("stem_check_report_text"), rep, v)
                      for v in (0, 1)}
        raw = _render(_lib.func("stem_check_report_json"), rep)
        try:
            self.data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            self.data = {"unparsed": raw}
        self.stages = collections.OrderedDict()
        for i, name in enumerate(_abi.STAGES):
            s = rep.stage[i]
            self.stages[name] = Stage(name, _abi.VERDICT.get(s.verdict, "?"),
                                      s.checked, s.faults, s.worst_ratio,
                                      s.max_err, s.units, s.undecided,
                                      _items(s.items, s.n_items, name))
        self.ties = _items(rep.ties, rep.n_ties, "mask")
        for n in _SCALARS:
            setattr(self, n, getattr(rep, n))
        self.hint = rep.hint.decode("utf-8", "replace")
        # the arithmetic judged by ("flash", "angelslim + scores fp32", ...),
        # and a note when the errors fit another one
        self.arithmetic = self.data.get("arithmetic", {}).get("name", "?")
        self.arith_note = rep.arith_note.decode("utf-8", "replace")
        # the systematic tests: per test (out scale, out temperature, ...)
        # the groups tested, the faults, the threshold and the worst |z| as
        # a fraction of its group's threshold, and where
        self.bias = {b["test"]: b for b in
                     self.data.get("bias", {}).get("tests", [])}
        # per stage: rows (mask: sparse rows) the check could not decide
        self.undecided = {n: s.undecided for n, s in self.stages.items()
                          if s.verdict != "ABSENT"}
        self.dims = _struct_dict(rep.dims)
        self.params = _params.as_dict(rep.params)
        self.options = _struct_dict(rep.options)
        self.heads = []
        for i in range(rep.n_heads):
            h = _struct_dict(rep.heads[i])
            h["status"] = _kind_name(h["status"]) if h["status"] else "ok"
            self.heads.append(h)
        qb = rep.dims.qb
        if rep.qblock_rows_failed and rep.n_heads and qb:
            self.qblock_rows_failed = np.ctypeslib.as_array(
                rep.qblock_rows_failed, (rep.n_heads * qb,)).reshape(
                    rep.n_heads, qb).copy()
        else:
            self.qblock_rows_failed = None

    def __bool__(self):
        return self.verdict == "PASS"

    @property
    def passed(self):
        return bool(self)

    @property
    def faults(self):
        return [it for s in self.stages.values() for it in s.items
                if it.fault]

    def text(self, verbose=None):
        return self._text[int(self.verbose if verbose is None else verbose)]

    def __str__(self):
        return self.text()

    def __repr__(self):
        return "<stem_attn.Report %s: %s>" % (self.verdict, ", ".join(
            "%s %s" % (s.name, s.verdict) for s in self.stages.values()
            if s.verdict != "ABSENT"))

    def __getitem__(self, key):
        return self.data[key]


def _prec(name, what):
    v = C.c_int()
    s = name if isinstance(name, str) else str(name)
    if _lib.func("stem_prec_from_name")(s.encode(), C.byref(v)) != 0:
        raise ValueError("stem_attn.check: %s=%r: not fp32, bf16, fp16 or fp8"
                         % (what, name))
    return v.value


def gpu_dtype(dtype, q, out, bf16_bits):
    """dtype= when given, else the less precise of out's and q's dtypes."""
    if dtype is not None:
        return _tensors.prec_name(dtype)
    found = [_tensors.storage_prec(x, bf16_bits) for x in (out, q)]
    found = [f for f in found if f]
    if not found:
        return "fp32"
    return min(found, key=_tensors.PREC_ORDER.index)


def check(q, k, v, mask=None, out=None, lse=None, logits=None,
          profile="angelslim", layout="hnd", dtype=None, verbose=False,
          arith=None, strict=False, **overrides):
    """Judge what a GPU Stem kernel produced on q, k, v.

    mask [Hq, Qb, Kb] (bool or uint8), logits [Hq, Qb, Kb], out (the
    layout of q), lse [Hq, Lq] (or [Lq, Hq] with layout='nhd'): any subset,
    at least one.  dtype: the GPU's working precision (bf16, fp16, fp32,
    fp8; torch dtypes accepted), default the less precise of out's and q's
    dtypes; it sets the tolerances.  arith: where the kernel rounds,
    "flash" (float32 scores and lse, P and out in dtype: FlashAttention,
    FlexAttention, Triton), "angelslim" (scoring, stored logits and scores
    in dtype too) or "hpc-ops" (FP8 P); default: the library's choice
    (hpc-ops for that profile or fp8, angelslim when every logit is a
    value of dtype, else flash); the precisions below override places of
    it.  strict: rows and systematic tests the check could not decide fail.  NumPy uint16
    arrays are read as
    bfloat16 bits.  Keyword overrides: stem_params fields
    (alpha, keep_ratio, ...) and check options: tau, logit_tol, out_tol,
    lse_tol, sigmas, max_items, dense_test (bool), heads (a count, or
    (begin, count)), head_begin, head_count, and the precisions
    score_prec, logit_store, attn_prec, attn_score_prec, out_store,
    lse_store.  Returns a Report; raises StemError on bad arguments."""
    if mask is None and out is None and lse is None and logits is None:
        raise TypeError("stem_attn.check: give at least one of mask, out, lse, "
                        "logits")
    popts = {k_: v_ for k_, v_ in overrides.items() if k_ in OPTION_KEYS}
    pkw = {k_: v_ for k_, v_ in overrides.items() if k_ not in OPTION_KEYS}
    for k_ in pkw:
        if not _params.is_param(k_):
            raise TypeError("stem_attn.check: unknown argument %r (stem_params "
                            "fields or %s)" % (k_, ", ".join(OPTION_KEYS)))
    p = _params.make(profile, **pkw)
    bits = True  # uint16 arrays hold bfloat16 bits: no other reading
    vq, vk, vv = _qkv(q, k, v, layout, "bf16" if bits else None)
    d = _dims(p, vq, vk, vv, True)
    g = _abi.stem_check_gpu()
    keep = []
    if logits is not None:
        keep.append(_tensors.view_blocks(logits, "logits", d.hq, d.qb, d.kb))
        g.logits = C.pointer(keep[-1].t)
    if mask is not None:
        keep.append(_tensors.view_blocks(mask, "mask", d.hq, d.qb, d.kb,
                                         mask=True))
        g.mask = C.pointer(keep[-1].t)
    if out is not None:
        keep.append(_tensors.view3(out, "out", layout, bits))
        t = keep[-1].t
        if (t.heads, t.tokens, t.dim) != (d.hq, d.lq, d.d):
            raise ValueError("stem_attn.check: out must hold [Hq, Lq, d] = [%d, "
                             "%d, %d] (layout %s), got shape %s" % (
                                 d.hq, d.lq, d.d, layout, keep[-1].shape))
        g.out = C.pointer(t)
    if lse is not None:
        keep.append(_tensors.view_lse(lse, d.hq, d.lq, layout))
        g.lse = C.pointer(keep[-1].t)

    opt = _abi.stem_check_options()
    gd = gpu_dtype(dtype, q, out, bits)
    st = _lib.func("stem_check_options_init")(C.byref(opt), _abi.PREC[gd])
    if st != 0:
        raise error_for(st, "stem_check_options_init")
    if arith is not None:
        a = C.c_int()
        if _lib.func("stem_arith_from_name")(str(arith).encode(),
                                             C.byref(a)) != 0:
            raise ValueError("stem_attn.check: arith=%r: not flash, "
                             "angelslim or hpc-ops" % (arith,))
        _lib.func("stem_check_options_arith")(C.byref(opt), a.value)
    opt.strict = int(bool(strict))
    heads = popts.pop("heads", None)
    if heads is not None:
        if isinstance(heads, int):
            opt.head_begin, opt.head_count = 0, heads
        elif isinstance(heads, range):
            opt.head_begin, opt.head_count = heads.start, len(heads)
        else:
            opt.head_begin, opt.head_count = heads
    for key, val in popts.items():
        if key in _OPT_PREC:
            setattr(opt, key, _prec(val, key))
            opt.arith_auto = 0
        elif key == "dense_test":
            opt.dense_test = int(bool(val))
        else:
            setattr(opt, key, val)
    rep = _abi.stem_check_report()
    st = _lib.func("stem_check")(C.byref(p), C.byref(vq.t), C.byref(vk.t),
                                 C.byref(vv.t), C.byref(g), C.byref(opt),
                                 C.byref(rep))
    if st != 0:
        raise error_for(st, "stem_check")
    try:
        return Report(rep, verbose)
    finally:
        _lib.func("stem_check_report_free")(C.byref(rep))
