"""Save a Stem kernel's inputs and outputs in the layout `stem check` reads.

Import this on the GPU machine, next to the kernel under test:

    import stem_dump
    stem_dump.dump("case.safetensors", q=q, k=k, v=v,
                   mask=block_mask, out=out, lse=lse, block_logits=logits)

then, on any machine with stem:

    stem check case.safetensors

The name given is the name written, whatever the format: the same command
works whether the safetensors package was installed or not.

Tensors may be PyTorch tensors (any device; torch is imported only when a
torch tensor is given) or NumPy arrays, in bfloat16 (torch.bfloat16; in
NumPy as uint16 bit patterns, the package stem_attn's bf16 form, or an
ml_dtypes bfloat16 array), float16, float32 or float64.  q is [H, N, d] (or [1, H, N, d]);
with layout="nhd" q, k, v and out are [N, H, d] (or [1, N, H, d]) and are
written transposed to [H, N, d].  mask (bool or uint8) and block_logits are
[Hq, Qb, Kb]; lse is [Hq, N]; out is [Hq, N, d].  Batch dimensions of 1 are
dropped.

Formats.  A path ending in ".safetensors" (or format="safetensors")
becomes one safetensors file, written here without the `safetensors`
package, BF16 kept as BF16.  Any other path, or format="npy", becomes a
*directory* of .npy files plus metadata.json, under exactly the name given;
BF16 tensors are widened to float32 there (exactly), since .npy has no
bfloat16.  FP8 tensors are widened to float32 in both forms (stem reads no
FP8).  `stem check` reads both forms under the same name.  Files and
directories get the modes the user's umask gives new files (as open()
would), not those of temporary files.  An existing file is replaced only by
a file, an existing directory only when it holds nothing but .npy files and
metadata.json (an earlier dump); anything else is refused (FileExistsError)
and left alone.

The metadata records "dtype", the GPU's precision, which sets the
tolerances of `stem check`: dtype= when given (bf16, fp16, fp32 or fp8,
torch and NumPy names accepted), else the less precise of the dtypes of out
and q.  A bf16 output widened to float32 before the dump is still a bf16
result: pass dtype="bf16" then (or keep q in bf16).  Extra string metadata
may be passed in meta.
"""
import json
import os
import shutil
import struct
import tempfile

__all__ = ["dump"]

_NAMES = ("q", "k", "v", "block_logits", "mask", "out", "lse")
_DTYPE_NAMES = {"bfloat16": "bf16", "bf16": "bf16",
                "float16": "fp16", "half": "fp16", "fp16": "fp16",
                "float32": "fp32", "float": "fp32", "fp32": "fp32",
                "float64": "fp32", "double": "fp32",
                "float8_e4m3fn": "fp8", "float8_e4m3fnuz": "fp8",
                "e4m3": "fp8", "fp8": "fp8"}
# Least precise first: the dtype recorded when out and q disagree.
_PRECISION_ORDER = ("fp8", "bf16", "fp16", "fp32")


def _is_torch(x):
    return type(x).__module__.split(".")[0] == "torch"


def _dtype_name(x):
    """bf16, fp16, fp32, fp8 (or None for other dtypes) of a tensor/array;
    NumPy uint16 arrays are bfloat16 bit patterns."""
    name = str(x.dtype).replace("torch.", "")
    if name == "uint16":
        return "bf16"
    return _DTYPE_NAMES.get(name)


def _canonical_dtype(dtype):
    """The canonical name of a dtype given by the caller, or ValueError."""
    name = str(dtype).replace("torch.", "").lower()
    canon = _DTYPE_NAMES.get(name)
    if canon is None:
        raise ValueError("dtype must be bf16, fp16, fp32 or fp8 (got %r)"
                         % (dtype,))
    return canon


def _gpu_dtype(dtype, out, q):
    """dtype= when given, else the least precise of out's and q's dtypes."""
    if dtype is not None:
        return _canonical_dtype(dtype)
    found = [_dtype_name(x) for x in (out, q) if x is not None]
    found = [d for d in found if d is not None]
    if not found:
        return None
    return min(found, key=_PRECISION_ORDER.index)


def _squeeze_batch(x, ndim):
    while len(x.shape) > ndim and x.shape[0] == 1:
        x = x[0]
    if len(x.shape) != ndim:
        raise ValueError("expected %d dimensions (plus batch 1), got shape %s"
                         % (ndim, tuple(x.shape)))
    return x


def _raw(x):
    """(C-ordered NumPy array, safetensors dtype name) holding x's values
    as stem reads them: bfloat16 as its uint16 bits ("BF16"), float8
    widened to float32 (exact), bool as uint8."""
    import numpy as np
    if _is_torch(x):
        import torch
        x = x.detach().cpu()
        if x.dtype == torch.bool:
            x = x.to(torch.uint8)
        elif "float8" in str(x.dtype):
            x = x.float()
        if x.dtype == torch.bfloat16:
            return (np.ascontiguousarray(
                x.contiguous().view(torch.int16).numpy().view(np.uint16)),
                "BF16")
        x = x.contiguous().numpy()
    x = np.asarray(x)
    if x.dtype.name == "bfloat16":  # ml_dtypes
        x = x.view(np.uint16)
    elif x.dtype.name.startswith("float8"):
        x = x.astype(np.float32)
    elif x.dtype == np.bool_:
        x = x.astype(np.uint8)
    x = np.ascontiguousarray(x)
    names = {"uint16": "BF16", "float16": "F16", "float32": "F32",
             "float64": "F64", "uint8": "U8"}
    if x.dtype.name not in names:
        raise ValueError("cannot dump dtype %s (bf16, fp16, fp32, fp64, "
                         "fp8, uint8 or bool)" % x.dtype)
    return x.astype(x.dtype.newbyteorder("<"), copy=False), names[x.dtype.name]


def _to_numpy(x):
    """A C-ordered NumPy array for a .npy file: bfloat16 widened to float32
    (exact: the bits shifted up), float8 too, bool as uint8."""
    import numpy as np
    a, dt = _raw(x)
    if dt == "BF16":
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def _is_earlier_dump(path):
    """True when directory path holds only .npy files and metadata.json."""
    for e in os.listdir(path):
        full = os.path.join(path, e)
        if not os.path.isfile(full) or not (
                e.endswith(".npy") or e == "metadata.json"):
            return False
    return True


def _check_target(path, want_dir):
    """Refuse to replace what is not ours to replace (see the module text)."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        if not want_dir:
            raise FileExistsError(
                "%s is a directory; not replacing it with a safetensors file "
                "(remove it or choose another name)" % path)
        if not _is_earlier_dump(path):
            raise FileExistsError(
                "%s exists and holds more than .npy files and metadata.json; "
                "not replacing it (remove it or choose another name)" % path)
    elif want_dir:
        raise FileExistsError(
            "%s exists and is not a directory; not replacing it with a "
            "directory of .npy files (remove it or choose another name)"
            % path)


def _safetensors_bytes(tensors, meta):
    """The safetensors format: an 8-byte little-endian header length, the
    JSON header (name -> dtype, shape, data_offsets; "__metadata__" the
    string metadata) padded with spaces to a multiple of 8, the data."""
    head, blobs, at = {}, [], 0
    if meta:
        head["__metadata__"] = meta
    for name, x in tensors.items():
        a, dt = _raw(x)
        b = a.tobytes()
        head[name] = {"dtype": dt, "shape": list(a.shape),
                      "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    js = json.dumps(head, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    return struct.pack("<Q", len(js)) + js + b"".join(blobs)


def _write_safetensors(path, tensors, meta):
    """One safetensors file, written to a temporary name and renamed."""
    data = _safetensors_bytes(tensors, meta)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".",
                               suffix=".tmp",
                               dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_npy_dir(path, tensors, meta):
    """A directory of .npy files plus metadata.json, built next to path and
    moved into place whole (an earlier dump there is replaced)."""
    import numpy as np
    parent = os.path.dirname(os.path.abspath(path))
    tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                           dir=parent)
    old = None
    try:
        for name, x in tensors.items():
            np.save(os.path.join(tmp, name + ".npy"), _to_numpy(x))
        with open(os.path.join(tmp, "metadata.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp made it 0700
        if os.path.isdir(path):
            old = tempfile.mkdtemp(prefix=os.path.basename(path) + ".",
                                   suffix=".old", dir=parent)
            os.rmdir(old)
            os.rename(path, old)
        os.rename(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None and not os.path.exists(path):
                os.rename(old, path)
                old = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def dump(path, q=None, k=None, v=None, out=None, mask=None, lse=None,
         block_logits=None, layout="hnd", dtype=None, meta=None,
         format=None):
    """Write the given tensors for `stem check` under path; returns path.

    format: None (a ".safetensors" path: one file; anything else: a
    directory of .npy files; see the module text), "safetensors" or "npy".  dtype: the GPU's precision for the metadata
    (default: the less precise of out's and q's dtypes).  Raises ValueError
    on bad arguments and FileExistsError rather than replace something that
    is not an earlier dump of the same kind.
    """
    path = os.fspath(path)
    if layout not in ("hnd", "nhd"):
        raise ValueError("layout must be 'hnd' or 'nhd'")
    if format not in (None, "safetensors", "npy"):
        raise ValueError("format must be None, 'safetensors' or 'npy'")
    if path.endswith(os.sep) and path.strip(os.sep):
        path = path.rstrip(os.sep)          # "case/": the directory case
    if not path or path == os.sep:
        raise ValueError("path must name a file or directory, got %r" % path)
    given = {"q": q, "k": k, "v": v, "block_logits": block_logits,
             "mask": mask, "out": out, "lse": lse}
    tensors = {n: given[n] for n in _NAMES if given[n] is not None}
    if not tensors:
        raise ValueError("no tensors to dump")
    md = {str(a): str(b) for a, b in (meta or {}).items()}
    gpu_dtype = _gpu_dtype(dtype, out, q)
    if gpu_dtype is not None:
        md["dtype"] = gpu_dtype
    tensors = _prepare(tensors, layout)
    use_st = format == "safetensors" or (
        format is None and path.endswith(".safetensors"))
    _check_target(path, not use_st)
    if use_st:
        _write_safetensors(path, tensors, md)
        return path
    _write_npy_dir(path, tensors, md)
    return path
