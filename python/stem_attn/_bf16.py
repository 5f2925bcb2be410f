"""float32 <-> bfloat16 bit patterns (NumPy uint16), the package's form of
bf16 data where NumPy has no bfloat16 type."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_bf16", "from_bf16"]


def to_bf16(x: Any) -> np.ndarray:
    """The bfloat16 bits (uint16, same shape) of x rounded to the nearest
    bfloat16, ties to even: what torch's .to(torch.bfloat16) gives and how
    the library rounds q, k, v and P in its bf16 compute mode (which also
    makes magnitudes below 2^-56 a signed zero there).  Infinities stay
    infinite, values past the largest bf16 round to infinity, and a NaN
    becomes the quiet NaN 0x7fc0 with its sign.  x: anything
    np.asarray takes (a torch tensor: .numpy() first); float64 values are
    first rounded to float32."""
    f = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    u = f.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        sign = ((u >> 16) & 0x8000).astype(np.uint16)
        r = np.where(nan, sign | np.uint16(0x7FC0), r)
    return r


def from_bf16(bits: Any) -> np.ndarray:
    """float32 values (same shape) of bfloat16 bit patterns: uint16 (or
    int16) arrays, exactly (the bits become a float's upper half)."""
    b = np.asarray(bits)
    if b.dtype not in (np.uint16, np.int16):
        raise TypeError("stem_attn.from_bf16: uint16 bit patterns expected, "
                        "not %s (stem_attn.to_bf16 makes them)" % b.dtype)
    return (b.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
