"""Save a Stem kernel's inputs and outputs in the layout `stem check` reads.

Import this on the GPU machine, next to the kernel under test:

    import stem_dump
    stem_dump.dump("case.safetensors", q=q, k=k, v=v,
                   mask=block_mask, out=out, lse=lse, block_logits=logits)

then, on any machine with stem:

    stem check case.safetensors          (or: stem check case/  for .npy)

Tensors may be PyTorch tensors (any device; torch is imported only when a
torch tensor is given) or NumPy arrays.  q is [H, N, d] (or [1, H, N, d]);
with layout="nhd" q, k, v and out are [N, H, d] (or [1, N, H, d]) and are
written transposed to [H, N, d].  mask (bool or uint8) and block_logits are
[Hq, Qb, Kb]; lse is [Hq, N]; out is [Hq, N, d].  Batch dimensions of 1 are
dropped.

Where the `safetensors` package is installed and path ends in
".safetensors", one safetensors file is written, BF16 kept as BF16.
Otherwise path (without a ".safetensors" suffix) becomes a directory of
.npy files plus metadata.json; BF16 tensors are widened to float32 there
(exactly), since .npy has no bfloat16.  Either way the metadata records
"dtype" (bf16, fp16 or fp32: the dtype of q unless given), which sets the
tolerances of `stem check`, plus any extra string metadata passed in meta.
"""
import json
import os

__all__ = ["dump"]

_NAMES = ("q", "k", "v", "block_logits", "mask", "out", "lse")
_DTYPE_NAMES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32",
                "float64": "fp32"}


def _is_torch(x):
    return type(x).__module__.split(".")[0] == "torch"


def _dtype_name(x):
    """bf16, fp16, fp32 (or None for other dtypes) of a tensor or array."""
    name = str(x.dtype).replace("torch.", "")
    return _DTYPE_NAMES.get(name)


def _squeeze_batch(x, ndim):
    while len(x.shape) > ndim and x.shape[0] == 1:
        x = x[0]
    if len(x.shape) != ndim:
        raise ValueError("expected %d dimensions (plus batch 1), got shape %s"
                         % (ndim, tuple(x.shape)))
    return x


def _to_numpy(x):
    """A C-ordered NumPy array; torch bfloat16 becomes float32 (exact)."""
    import numpy as np
    if _is_torch(x):
        import torch
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        elif x.dtype == torch.bool:
            x = x.to(torch.uint8)
        x = x.contiguous().numpy()
    x = np.ascontiguousarray(x)
    if x.dtype == np.bool_:
        x = x.astype(np.uint8)
    return x


def _prepare(tensors, layout):
    """Batch dims dropped, [N, H, ...] transposed for layout nhd."""
    out = {}
    for name, x in tensors.items():
        ndim = 2 if name == "lse" else 3
        x = _squeeze_batch(x, ndim)
        if layout == "nhd" and name in ("q", "k", "v", "out"):
            x = x.permute(1, 0, 2) if _is_torch(x) else x.transpose(1, 0, 2)
        if name == "mask":
            x = x.to(dtype=__import__("torch").uint8) if _is_torch(x) else (
                x.astype("uint8"))
        out[name] = x.contiguous() if _is_torch(x) else x
    return out


def _write_safetensors(path, tensors, meta):
    if all(_is_torch(x) for x in tensors.values()):
        from safetensors.torch import save_file
        save_file({k: x.detach().cpu().contiguous()
                   for k, x in tensors.items()}, path, metadata=meta)
    else:
        from safetensors.numpy import save_file
        save_file({k: _to_numpy(x) for k, x in tensors.items()}, path,
                  metadata=meta)


def _write_npy_dir(path, tensors, meta):
    import numpy as np
    os.makedirs(path, exist_ok=True)
    for name, x in tensors.items():
        np.save(os.path.join(path, name + ".npy"), _to_numpy(x))
    tmp = os.path.join(path, "metadata.json.tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(path, "metadata.json"))


def _have_safetensors():
    try:
        import safetensors  # noqa: F401
    except ImportError:
        return False
    return True


def dump(path, q=None, k=None, v=None, out=None, mask=None, lse=None,
         block_logits=None, layout="hnd", dtype=None, meta=None,
         format=None):
    """Write the given tensors for `stem check`; returns the path written.

    format: None (safetensors when possible, see the module text),
    "safetensors" (requires the package) or "npy".
    """
    if layout not in ("hnd", "nhd"):
        raise ValueError("layout must be 'hnd' or 'nhd'")
    if format not in (None, "safetensors", "npy"):
        raise ValueError("format must be None, 'safetensors' or 'npy'")
    given = {"q": q, "k": k, "v": v, "block_logits": block_logits,
             "mask": mask, "out": out, "lse": lse}
    tensors = {n: given[n] for n in _NAMES if given[n] is not None}
    if not tensors:
        raise ValueError("no tensors to dump")
    md = {str(a): str(b) for a, b in (meta or {}).items()}
    if dtype is None and q is not None:
        dtype = _dtype_name(q)
    if dtype is not None:
        canon = _DTYPE_NAMES.get(str(dtype).replace("torch.", ""), dtype)
        if canon not in ("bf16", "fp16", "fp32"):
            raise ValueError("dtype must be bf16, fp16 or fp32")
        md["dtype"] = canon
    tensors = _prepare(tensors, layout)
    use_st = format == "safetensors" or (
        format is None and path.endswith(".safetensors") and
        _have_safetensors())
    if use_st:
        _write_safetensors(path, tensors, md)
        return path
    if path.endswith(".safetensors"):
        path = path[:-len(".safetensors")]
    _write_npy_dir(path, tensors, md)
    return path
