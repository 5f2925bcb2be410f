"""NumPy arrays and torch tensors as stem_tensor views.

Contiguous inputs (any layout whose last axis has stride 1) are passed to
the library in place, without a copy; others are copied once.  torch is
never imported here: a tensor is recognised by its type's module.
"""
from __future__ import annotations

import ctypes as C
from typing import Any, Optional, Tuple

import numpy as np

from . import _abi, _lib
from ._errors import STEM_ERR_DTYPE, StemInputError, error_for

_NP_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
              np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8",
              np.dtype(np.bool_): "U8"}
_TORCH_DTYPES = {"torch.float32": "F32", "torch.float64": "F64",
                 "torch.float16": "F16", "torch.bfloat16": "BF16",
                 "torch.uint8": "U8", "torch.bool": "U8"}
_PREC_NAMES = {"bfloat16": "bf16", "bf16": "bf16", "float16": "fp16",
               "half": "fp16", "fp16": "fp16", "f16": "fp16",
               "float32": "fp32", "float": "fp32", "fp32": "fp32",
               "f32": "fp32", "float64": "fp32", "double": "fp32",
               "fp64": "fp32", "f64": "fp32", "float8_e4m3fn": "fp8",
               "float8_e4m3fnuz": "fp8", "e4m3": "fp8", "fp8": "fp8",
               "fp8_e4m3": "fp8"}
# least precise first
PREC_ORDER = ("fp8", "bf16", "fp16", "fp32")


def is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def prec_name(dtype: Any) -> Optional[str]:
    """'bf16', 'fp16', 'fp32' or 'fp8' for a dtype given as a string, a
    NumPy dtype or a torch dtype; None for None."""
    if dtype is None:
        return None
    name = str(dtype).lower()
    if name.startswith("torch."):
        name = name[6:]
    if name not in _PREC_NAMES:
        raise ValueError("stem: unknown dtype %r (bf16, fp16, fp32 or fp8)"
                         % (dtype,))
    return _PREC_NAMES[name]


def storage_prec(x: Any, bf16_bits: bool = False) -> Optional[str]:
    """The precision an array or tensor is stored in, or None."""
    if x is None:
        return None
    dt = str(x.dtype)
    if is_torch(x):
        dt = dt[6:]
    if dt == "uint16" and bf16_bits:
        return "bf16"
    return _PREC_NAMES.get(dt)


class View:
    """A stem_tensor over an array, holding the array alive."""
    __slots__ = ("t", "keep", "shape")

    def __init__(self, t: _abi.stem_tensor, keep: Any,
                 shape: Tuple[int, ...]) -> None:
        self.t, self.keep, self.shape = t, keep, shape


def _squeeze_batch(shape: Tuple[int, ...], want: int) -> int:
    """Drop leading batch axes of size 1 down to `want` axes."""
    drop = 0
    while len(shape) - drop > want and shape[drop] == 1:
        drop += 1
    return drop


def _strip(x: Any, want: int) -> Any:
    drop = _squeeze_batch(tuple(x.shape), want)
    for _ in range(drop):
        x = x[0]
    return x


def _refuse_int(name: str, dtype: Any) -> None:
    raise StemInputError(STEM_ERR_DTYPE, name,
                         "%s has dtype %s; q, k and v must be floating point "
                         "(float32, float16, float64, bfloat16): convert "
                         "explicitly if the integers are meant as values"
                         % (name, dtype))


def as_array(x: Any, name: str, bf16_bits: bool = False, mask: bool = False,
             ints: bool = True
             ) -> Tuple[Any, str, Tuple[int, ...], Tuple[int, ...], int]:
    """(object, dtype name, shape, strides in elements, data pointer) for a
    NumPy array or a CPU torch tensor, copying only when the last axis is
    not contiguous or the dtype needs converting.  ints=False refuses
    integer and boolean dtypes (StemInputError) instead of converting
    them."""
    if is_torch(x):
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        key = str(t.dtype)
        if mask and key not in ("torch.uint8", "torch.bool"):
            t = (t != 0).to(dtype=__import__("torch").uint8)
            key = "torch.uint8"
        elif not ints and (key.startswith("torch.int") or
                           key.startswith("torch.uint") or
                           key == "torch.bool"):
            _refuse_int(name, t.dtype)
        elif key not in _TORCH_DTYPES:
            if "float8" in key or key.startswith("torch.int") or \
                    key.startswith("torch.uint"):
                t = t.to(dtype=__import__("torch").float32)  # exact for fp8
                key = "torch.float32"
            else:
                raise TypeError("stem: %s: unsupported torch dtype %s"
                                % (name, t.dtype))
        if t.dim() > 0 and t.stride(-1) != 1 or any(s < 0 for s in t.stride()):
            t = t.contiguous()
        return (t, _TORCH_DTYPES[key], tuple(t.shape), tuple(t.stride()),
                t.data_ptr())
    a = np.asarray(x)
    if mask:
        if a.dtype not in (np.uint8, np.bool_):
            a = (a != 0).astype(np.uint8)
    elif not ints and a.dtype.kind in "iub" and a.dtype != np.uint16:
        _refuse_int(name, a.dtype)      # uint16: bf16 bits, below
    elif a.dtype == np.uint16:
        if not bf16_bits:
            raise TypeError("stem: %s is uint16: pass storage='bf16' if it "
                            "holds bfloat16 bits" % name)
        dt = "BF16"
    elif a.dtype.name == "bfloat16":  # ml_dtypes / jax bfloat16
        a = a.view(np.uint16)
    elif a.dtype not in _NP_DTYPES or a.dtype == np.bool_:
        if a.dtype.kind not in "fiub":
            raise TypeError("stem: %s: unsupported dtype %s" % (name, a.dtype))
        a = a.astype(np.float32)
    if a.dtype == np.uint16:
        dt = "BF16"
    else:
        dt = _NP_DTYPES[a.dtype]
    isz = a.dtype.itemsize
    if a.ndim > 0 and (a.strides[-1] != isz or
                       any(s < 0 or s % isz for s in a.strides)):
        a = np.ascontiguousarray(a)
    return (a, dt, a.shape, tuple(s // isz for s in a.strides),
            a.ctypes.data)


def view3(x: Any, name: str, layout: str = "hnd",
          bf16_bits: bool = False) -> View:
    """A [heads, tokens, dim] view of x stored [H, N, d] (layout 'hnd') or
    [N, H, d] ('nhd'); leading batch axes of size 1 are dropped."""
    obj, dt, shape, strides, ptr = as_array(_strip(x, 3), name, bf16_bits,
                                            ints=name not in ("q", "k", "v"))
    if len(shape) != 3:
        raise ValueError("stem: %s must be 3-d (%s), got shape %s"
                         % (name, "[H, N, d]" if layout == "hnd"
                            else "[N, H, d]", shape))
    if layout == "hnd":
        h, n, d = shape
        hs, ts = strides[0], strides[1]
    else:
        n, h, d = shape
        ts, hs = strides[0], strides[1]
    t = _abi.stem_tensor(ptr, _lib.dtype_code(dt), h, n, d, hs, ts)
    return View(t, obj, shape)


def qkv(q: Any, k: Any, v: Any, layout: str,
        storage: Any) -> Tuple[View, View, View]:
    """Views of q, k, v stored as layout says; storage 'bf16' (or 'fp8')
    reads uint16 arrays as bfloat16 bits."""
    if layout not in ("hnd", "nhd"):
        raise ValueError("stem: layout must be 'hnd' or 'nhd', not %r"
                         % (layout,))
    b = prec_name(storage) in ("bf16", "fp8") if storage else False
    return (view3(q, "q", layout, b), view3(k, "k", layout, b),
            view3(v, "v", layout, b))


def dims(p: _abi.stem_params, vq: View, vk: View, vv: View,
         sparse: bool) -> _abi.stem_dims:
    """stem_dims_get of the views (sparse: the offset a multiple of the
    block), or the library's error raised."""
    d = _abi.stem_dims()
    st = _lib.func("stem_dims_get")(C.byref(p), C.byref(vq.t), C.byref(vk.t),
                                    C.byref(vv.t), int(sparse), C.byref(d))
    if st != _abi.STEM_OK:
        raise error_for(st, "shapes")
    return d


def view_blocks(x: Any, name: str, hq: int, qb: int, kb: int,
                mask: bool = False) -> View:
    """A view of block logits or a block mask [Hq, Qb, Kb]."""
    obj, dt, shape, strides, ptr = as_array(_strip(x, 3), name, mask=mask)
    if shape != (hq, qb, kb):
        raise ValueError("stem: %s must be [Hq, Qb, Kb] = [%d, %d, %d], got "
                         "shape %s" % (name, hq, qb, kb, shape))
    t = _abi.stem_tensor(ptr, _lib.dtype_code(dt), hq, qb, kb, strides[0],
                         strides[1])
    return View(t, obj, shape)


def view_lse(x: Any, hq: int, lq: int, layout: str) -> View:
    """A view [Hq, Lq, 1] of lse given as [Hq, Lq] (or [Hq, Lq, 1]), or,
    with layout 'nhd', also as [Lq, Hq] (flash-attention stores [H, N])."""
    x = _strip(x, 2)
    obj, dt, shape, strides, ptr = as_array(x, "lse")
    if len(shape) == 3 and shape[2] == 1:
        shape, strides = shape[:2], strides[:2]
    if shape == (hq, lq):
        hs, ts = strides
    elif layout == "nhd" and shape == (lq, hq):
        ts, hs = strides
    else:
        raise ValueError("stem: lse must be [Hq, Lq] = [%d, %d]%s, got shape "
                         "%s" % (hq, lq, " or [Lq, Hq]" if layout == "nhd"
                                 else "", shape))
    t = _abi.stem_tensor(ptr, _lib.dtype_code(dt), hq, lq, 1, hs, ts)
    return View(t, obj, shape)
