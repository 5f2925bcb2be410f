"""Finding and loading libstem.so.

Order: $STEM_LIBRARY (a file, or a directory holding libstem.so); the build
tree when the package is used from the repository (python/stem_attn/ ->
build/libstem.so); the prefix the package was installed under by
`make install` (PREFIX/lib/pythonX.Y/dist-packages/stem/ -> PREFIX/lib);
then the system's loader search (ctypes.util.find_library("stem")).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from typing import Any, List, Optional, Tuple

from . import _abi

_HERE = os.path.dirname(os.path.abspath(__file__))
_NAMES = ("libstem.so", "libstem.so.0")


class StemLibraryNotFound(OSError):
    """libstem.so could not be found or loaded."""


def _candidates() -> Tuple[List[Tuple[str, str]], bool]:
    env = os.environ.get("STEM_LIBRARY")
    if env:
        if os.path.isdir(env):
            return [("STEM_LIBRARY", os.path.join(env, n)) for n in _NAMES], True
        return [("STEM_LIBRARY", env)], True
    out = []
    repo = os.path.dirname(os.path.dirname(_HERE))  # python/stem_attn -> repo
    if os.path.isfile(os.path.join(repo, "include", "stem.h")):
        for n in _NAMES:
            out.append(("build tree", os.path.join(repo, "build", n)))
    # PREFIX/lib/pythonX.Y/dist-packages/stem or PREFIX/lib/python3/dist-packages/stem
    libdir = os.path.normpath(os.path.join(_HERE, "..", "..", ".."))
    for n in _NAMES:
        out.append(("installed prefix", os.path.join(libdir, n)))
    return out, False


def load() -> ctypes.CDLL:
    """The loaded library with its prototypes bound (functions absent from
    an older library are left unbound; calling them raises)."""
    tried = []
    cands, explicit = _candidates()
    for where, path in cands:
        if os.path.exists(path):
            try:
                return _bind(ctypes.CDLL(path), path)
            except OSError as e:
                tried.append("%s %s: %s" % (where, path, e))
                if explicit:
                    break
        else:
            tried.append("%s %s: no such file" % (where, path))
    if not explicit:
        found = ctypes.util.find_library("stem")
        if found:
            try:
                return _bind(ctypes.CDLL(found), found)
            except OSError as e:
                tried.append("system %s: %s" % (found, e))
        else:
            tried.append("system loader: find_library('stem') found nothing")
    raise StemLibraryNotFound(
        "stem: cannot load libstem.so; tried:\n  " + "\n  ".join(tried) +
        "\nBuild it (make lib) or set STEM_LIBRARY to the path of "
        "libstem.so (or to its directory).")


def _bind(lib: ctypes.CDLL, path: str) -> ctypes.CDLL:
    for name, (res, args) in _abi.PROTOTYPES.items():
        try:
            f = getattr(lib, name)
        except AttributeError:
            continue
        f.restype = res
        f.argtypes = args
    lib._stem_path = path
    return lib


_LIB: Optional[ctypes.CDLL] = None


def lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        _LIB = load()
    return _LIB


def func(name: str) -> Any:
    """A bound library function, or a clear error if this library lacks it."""
    try:
        return getattr(lib(), name)
    except AttributeError:
        raise RuntimeError("stem: %s lacks %s (an older libstem.so?)"
                           % (lib()._stem_path, name)) from None


@functools.lru_cache(maxsize=None)
def dtype_code(name: str) -> int:
    """The stem_dtype value of a dtype name ("F32", "BF16", "F16", "F64",
    "U8", ...), from the library's one table (stem_dtype_from_name)."""
    code = _abi.c_enum()
    if func("stem_dtype_from_name")(name.encode(),
                                    ctypes.byref(code)) != _abi.STEM_OK:
        raise ValueError("stem: libstem knows no dtype %r" % (name,))
    return code.value
