"""Stem as an attention backend for PyTorch models, in particular Hugging
Face transformers (attn_implementation="stem").

    import stem_attn.torch                     # registers "stem", "stem_dense"
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="stem")

attention_forward() takes and returns what transformers' own SDPA attention
function does:

    attention_forward(module, query, key, value, attention_mask,
                      dropout=0.0, scaling=None, is_causal=None, **kwargs)
        -> (attn_output [B, Lq, Hq, d] contiguous, in query's dtype, None)

    query [B, Hq, Lq, d]; key, value [B, Hkv, Lk, d] (Hq a multiple of Hkv:
    grouped-query attention); the queries are the last Lq positions of the
    Lk keys (a prefill chunk after Lk - Lq cached tokens, or a decode step).

What runs:
  - Stem (stem_prefill: scoring, selection, block-sparse attention) when the
    call is a prefill: Lq >= the block (128 by default) and the causal
    offset Lk - Lq a multiple of the block (0 for a one-shot prompt);
  - exact causal attention (stem_attention_dense) for every other call:
    decode steps, short queries, chunks at an offset inside a block;
  - the dense variant ("stem_dense") always runs exact attention.
Each sequence of a batch is its own library call.  bf16 tensors run in the
bf16 compute mode (operands bf16, products summed in float32), float32
and float16 tensors in the float32 mode; the library uses the best
bit-exact ISA of the CPU, or AMX when the process sets STEM_ISA=amx before
the first call (faster, not bit-exact).  The GIL is released during each
library call (ctypes releases it for every CDLL function).

Parameters, first found wins: keyword arguments of the call named stem_*
(stem_profile, stem_alpha, stem_keep_ratio, stem_threads, stem_block, ...:
any stem_params field or alias with the prefix), then the same attributes
of the model's config (config.stem_alpha = 0.5, ...), then the profile's
preset.  stem_threads defaults to torch.get_num_threads().

What it cannot honour raises UnsupportedAttention naming it, never a
silent change of what is computed: a padding or any other non-causal mask,
non-causal attention, dropout > 0, gradients (inputs that require grad
with autograd on), a sliding window, logit softcapping, attention sinks,
a scaling other than 1/sqrt(d), non-CPU tensors.  A 4-d
mask equal to the plain causal mask (as older transformers pass it) is
recognised and honoured; the check runs once per mask tensor.
"""
from __future__ import annotations

import ctypes as C
import math
import threading
import weakref
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from . import _abi, _lib, _params, _tensors
from ._errors import StemError

__all__ = ["attention_forward", "dense_attention_forward", "mask_function",
           "register", "release_workspace", "resolve_params",
           "UnsupportedAttention"]

_OUT_DTYPES = (torch.bfloat16, torch.float16, torch.float32, torch.float64)


class UnsupportedAttention(ValueError):
    """The call asks for attention the stem backend cannot compute."""

    def __init__(self, what: str) -> None:
        super().__init__("stem attention backend: %s is not supported "
                         "(use attn_implementation='sdpa' for this model "
                         "or call)" % what)


# ------------------------------------------------------------- parameters
def _setting_names() -> Dict[str, str]:
    """'stem_<name>' -> <name> for every stem_params field and alias."""
    names = {"stem_" + f: f for f in _params.FIELDS if f != "profile"}
    names.update({"stem_" + a: a for a in _params.ALIASES})
    return names


_SETTINGS = _setting_names()
_PARAMS_CACHE: Dict[Tuple[Any, ...], _abi.stem_params] = {}


def resolve_params(config: Any = None, kwargs: Optional[Dict[str, Any]] = None,
                   compute: Optional[str] = None) -> _abi.stem_params:
    """The stem_params of one call: stem_* keyword arguments, then stem_*
    attributes of config, then the profile's preset; compute ('bf16' or
    'f32') unless a setting names it; threads torch.get_num_threads()
    unless a setting names them.  Validated; cached (do not modify)."""
    found: Dict[str, Any] = {}
    profile: Any = "angelslim"
    sources = [kwargs or {}]
    if config is not None:
        sources.append({k: getattr(config, k) for k in
                        list(_SETTINGS) + ["stem_profile"]
                        if getattr(config, k, None) is not None})
    for src in reversed(sources):  # the call's own settings last (win)
        for key, val in src.items():
            if key == "stem_profile":
                profile = val
            elif key in _SETTINGS:
                found[_params.ALIASES.get(_SETTINGS[key], _SETTINGS[key])] = val
            elif key.startswith("stem_"):
                raise TypeError("stem attention backend: unknown setting %r "
                                "(stem_profile or stem_<stem_params field>: "
                                "%s)" % (key, ", ".join(sorted(_SETTINGS))))
    if compute is not None:
        found.setdefault("compute", compute)
    found.setdefault("threads", torch.get_num_threads())
    key = (str(profile),) + tuple(sorted((k, repr(v)) for k, v in
                                         found.items()))
    p = _PARAMS_CACHE.get(key)
    if p is None:
        p = _params.make(profile, **found)
        if len(_PARAMS_CACHE) > 64:
            _PARAMS_CACHE.clear()
        _PARAMS_CACHE[key] = p
    return p


# ------------------------------------------------------------------ masks
# the last masks checked: id -> (a weak reference to the very tensor, its
# version counter when checked, the verdict); a new tensor at a freed one's
# address is not the same object, and an in-place change bumps the version
_CAUSAL_SEEN: Dict[int, Tuple[Any, int, bool]] = {}


def _is_plain_causal(m: torch.Tensor, lq: int, lk: int) -> bool:
    """True if the 4-d mask m [b, h, Lq, Lk] (bool: True = attend; float:
    0 = attend, the dtype's minimum or -inf = not) lets every query row i
    see exactly the keys j <= i + Lk - Lq."""
    if m.dim() != 4 or tuple(m.shape[-2:]) != (lq, lk):
        return False
    hit = _CAUSAL_SEEN.get(id(m))
    if hit is not None and hit[0]() is m and hit[1] == m._version:
        return hit[2]
    off = lk - lq
    m3 = m.flatten(0, 1)
    cols = torch.arange(lk, device=m.device).unsqueeze(0)
    ok = True
    for i0 in range(0, lq, 256):
        i1 = min(i0 + 256, lq)
        rows = torch.arange(i0, i1, device=m.device).unsqueeze(1)
        allowed = (cols <= rows + off).unsqueeze(0).expand(m3.shape[0], -1, -1)
        sl = m3[:, i0:i1]
        if m.dtype == torch.bool:
            ok = torch.equal(sl, allowed)
        else:
            floor = torch.finfo(m.dtype).min
            ok = (torch.equal(sl == 0, allowed) and
                  bool((sl.masked_fill(allowed, floor) <= floor).all()))
        if not ok:
            break
    if len(_CAUSAL_SEEN) > 16:
        _CAUSAL_SEEN.clear()
    _CAUSAL_SEEN[id(m)] = (weakref.ref(m), m._version, ok)
    return ok


def _check_mask(mask: Any, lq: int, lk: int) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise UnsupportedAttention("an attention mask of type %s"
                                   % type(mask).__name__)
    if mask.dim() == 2:  # the model's raw [B, Lk] padding mask
        if bool(mask.to(torch.bool).all()):
            return
        raise UnsupportedAttention("a padding mask (masked tokens in the "
                                   "[batch, keys] attention_mask)")
    if mask.dim() == 4 and _is_plain_causal(mask, lq, lk):
        return
    raise UnsupportedAttention(
        "an attention mask other than the plain causal one (shape %s: "
        "padding, a sliding window, packed sequences or a custom pattern)"
        % (tuple(mask.shape),))


def mask_function(*args: Any, **kwargs: Any) -> None:
    """The mask function transformers' create_causal_mask calls for the
    "stem" implementations (AttentionMaskInterface): no 4-d mask is built.
    Returns None for the plain causal mask without padding (the attention
    applies it itself); raises UnsupportedAttention for anything else
    (padding, sliding windows, chunked or packed-sequence masks, overlays)."""
    mf = kwargs.get("mask_function")
    try:
        from transformers.masking_utils import causal_mask_function
    except ImportError:  # pragma: no cover - only called by transformers
        causal_mask_function = None
    if mf is not None and mf is not causal_mask_function:
        raise UnsupportedAttention(
            "the mask %s (only the plain causal mask is: no sliding window, "
            "chunked attention, packed sequences or mask overlays)"
            % getattr(mf, "__name__", repr(mf)))
    if kwargs.get("local_size") is not None:
        raise UnsupportedAttention("a local (sliding window) mask")
    pad = kwargs.get("attention_mask")
    if pad is not None and not bool(pad.to(torch.bool).all()):
        raise UnsupportedAttention("a padding mask (masked tokens in the "
                                   "[batch, keys] attention_mask)")
    return None


# ------------------------------------------------------------- the calls
_WORK = threading.local()


def _workspace(shape: Tuple[int, ...]) -> torch.Tensor:
    """A float32 tensor of this shape in this thread's reused buffer (the
    library's output before its conversion to bf16 or fp16): pages already
    touched, so a call does not pay for mapping a fresh output.  Grows to
    the largest call seen; release_workspace() frees it."""
    n = 1
    for s in shape:
        n *= s
    buf = getattr(_WORK, "buf", None)
    if buf is None or buf.numel() < n:
        _WORK.buf = None
        buf = _WORK.buf = torch.empty(n, dtype=torch.float32)
    return buf[:n].view(shape)


def release_workspace() -> None:
    """Free this thread's output workspace (it is made again when needed)."""
    _WORK.buf = None


def _view(x: torch.Tensor, name: str) -> _tensors.View:
    """A stem_tensor over one sequence's [H, L, d] tensor, in place when its
    last axis is contiguous."""
    return _tensors.view3(x, name)


def _refuse(module: Any, query: torch.Tensor, key: torch.Tensor,
            value: torch.Tensor, attention_mask: Any, dropout: float,
            scaling: Optional[float], is_causal: Optional[bool],
            kwargs: Dict[str, Any]) -> None:
    """Raise UnsupportedAttention (or ValueError for malformed shapes) for
    anything the backend cannot compute exactly as asked."""
    for n, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError("stem attention backend: %s must be a 4-d "
                             "tensor [batch, heads, tokens, dim]" % n)
        if t.device.type != "cpu":
            raise UnsupportedAttention("%s on device %s (the library runs "
                                       "on the CPU)" % (n, t.device))
        if t.dtype not in _OUT_DTYPES:
            raise UnsupportedAttention("%s of dtype %s" % (n, t.dtype))
    b, hq, lq, d = query.shape
    if key.shape != value.shape or key.shape[0] != b or key.shape[3] != d:
        raise ValueError("stem attention backend: key %s and value %s must "
                         "be [batch %d, kv heads, keys, dim %d]"
                         % (tuple(key.shape), tuple(value.shape), b, d))
    lk = key.shape[2]
    if lk < lq:
        raise UnsupportedAttention("fewer keys (%d) than queries (%d)"
                                   % (lk, lq))
    if dropout and dropout > 0.0:
        raise UnsupportedAttention("dropout %g (training)" % dropout)
    if torch.is_grad_enabled() and any(
            t.requires_grad for t in (query, key, value)):
        raise UnsupportedAttention("backpropagation (inputs that require "
                                   "grad; run under torch.no_grad() or "
                                   "torch.inference_mode())")
    if scaling is not None and \
            np.float32(scaling) != np.float32(1.0 / math.sqrt(d)):
        raise UnsupportedAttention(
            "scaling %r (the library scales by 1/sqrt(d) = %r)"
            % (scaling, 1.0 / math.sqrt(d)))
    causal = is_causal if is_causal is not None else \
        getattr(module, "is_causal", True)
    if not causal and lq > 1:
        raise UnsupportedAttention("non-causal (bidirectional) attention")
    for name in ("sliding_window", "softcap", "s_aux", "sinks"):
        if kwargs.get(name) is not None:
            raise UnsupportedAttention(
                {"sliding_window": "a sliding window",
                 "softcap": "logit softcapping",
                 "s_aux": "attention sinks (s_aux)",
                 "sinks": "attention sinks"}[name] +
                " (%s=%r)" % (name, kwargs[name]))
    _check_mask(attention_mask, lq, lk)


def _forward(module: Any, query: torch.Tensor, key: torch.Tensor,
             value: torch.Tensor, attention_mask: Any, dropout: float,
             scaling: Optional[float], is_causal: Optional[bool],
             kwargs: Dict[str, Any],
             sparse: bool) -> Tuple[torch.Tensor, None]:
    _refuse(module, query, key, value, attention_mask, dropout, scaling,
            is_causal, kwargs)
    settings = {k: v for k, v in kwargs.items() if k.startswith("stem_")}
    compute = "bf16" if query.dtype == torch.bfloat16 else "f32"
    p = resolve_params(getattr(module, "config", None), settings, compute)
    b, hq, lq, d = query.shape
    lk = key.shape[2]
    use_sparse = sparse and lq >= p.block and (lk - lq) % p.block == 0
    if query.dtype == torch.float32:  # the result itself
        out = torch.empty((b, lq, hq, d), dtype=torch.float32)
    else:  # converted once below
        out = _workspace((b, lq, hq, d))
    f_prefill = _lib.func("stem_prefill")
    f_dense = _lib.func("stem_attention_dense")
    with torch.no_grad():
        for i in range(b):
            vq = _view(query[i], "query")
            vk = _view(key[i], "key")
            vv = _view(value[i], "value")
            # out[i] as [Hq, Lq, d]: head stride d, token stride Hq * d
            to = _abi.stem_tensor(out[i].data_ptr(), _lib.dtype_code("F32"), hq,
                                  lq, d, d, hq * d)
            if use_sparse:
                st = f_prefill(C.byref(p), C.byref(vq.t), C.byref(vk.t),
                               C.byref(vv.t), C.byref(to), None, None, None)
                what = "stem_prefill"
            else:
                st = f_dense(C.byref(p), C.byref(vq.t), C.byref(vk.t),
                             C.byref(vv.t), C.byref(to), None)
                what = "stem_attention_dense"
            if st != _abi.STEM_OK:
                raise StemError(st, what)
    if query.dtype != torch.float32:
        out = out.to(query.dtype)
    return out, None


def attention_forward(module: Any, query: torch.Tensor, key: torch.Tensor,
                      value: torch.Tensor, attention_mask: Any,
                      dropout: float = 0.0, scaling: Optional[float] = None,
                      is_causal: Optional[bool] = None,
                      **kwargs: Any) -> Tuple[torch.Tensor, None]:
    """Stem for prefill calls, exact attention for the others (see the
    module's text); the signature and result of transformers'
    sdpa_attention_forward."""
    return _forward(module, query, key, value, attention_mask, dropout,
                    scaling, is_causal, kwargs, True)


def dense_attention_forward(module: Any, query: torch.Tensor,
                            key: torch.Tensor, value: torch.Tensor,
                            attention_mask: Any, dropout: float = 0.0,
                            scaling: Optional[float] = None,
                            is_causal: Optional[bool] = None,
                            **kwargs: Any) -> Tuple[torch.Tensor, None]:
    """Exact causal attention through the library for every call (the A/B
    twin of attention_forward)."""
    return _forward(module, query, key, value, attention_mask, dropout,
                    scaling, is_causal, kwargs, False)


def register(sparse_name: str = "stem",
             dense_name: str = "stem_dense") -> bool:
    """Register both functions with transformers' AttentionInterface (and
    mask_function with its AttentionMaskInterface, where it has one).
    Returns False, registering nothing, where transformers is not
    installed."""
    try:
        from transformers import AttentionInterface
    except ImportError:
        return False
    AttentionInterface.register(sparse_name, attention_forward)
    AttentionInterface.register(dense_name, dense_attention_forward)
    try:
        from transformers.masking_utils import AttentionMaskInterface
    except ImportError:
        return True
    AttentionMaskInterface.register(sparse_name, mask_function)
    AttentionMaskInterface.register(dense_name, mask_function)
    return True


register()
