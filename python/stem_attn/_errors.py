"""The package's error for a failed library call (its own module, so that
every other module can raise it without importing the package)."""
from __future__ import annotations

from typing import Optional

from . import _lib


# stem_status values (include/stem.h) used here
STEM_ERR_DTYPE: int = 6
STEM_ERR_PARAM: int = 9
STEM_ERR_NOMEM: int = 10
STEM_ERR_ISA: int = 11


class StemError(RuntimeError):
    """A libstem call returned an error status, or an argument was refused
    before the call.  status: the stem_status; detail: what
    stem_last_error() said (the tensor and its dims, the parameter and its
    range), or the refusal's own text."""

    def __init__(self, status: int, what: str = "",
                 detail: Optional[str] = None) -> None:
        self.status = int(status)
        if detail is None:
            detail = _last_error()
        self.detail = detail
        msg = _lib.func("stem_strerror")(self.status).decode()
        super().__init__("stem: %s%s%s (status %d)" % (
            what + ": " if what else "", msg,
            ": " + detail if detail else "", self.status))


class StemInputError(StemError, ValueError):
    """The arguments are at fault: a shape, a dtype, a parameter out of its
    range, NaN or Inf in an input, a mask row without a block."""


class StemMemoryError(StemError, MemoryError):
    """The library ran out of memory."""


class StemISAError(StemError, OSError):
    """STEM_ISA names an instruction set this CPU or build cannot run."""


def _last_error() -> str:
    try:
        f = _lib.func("stem_last_error")
    except RuntimeError:        # an older library without it
        return ""
    return f().decode(errors="replace")


def error_for(status: int, what: str = "",
              detail: Optional[str] = None) -> StemError:
    """The StemError subclass for a status, its detail read right away
    (stem_last_error is per thread and per call)."""
    cls = (StemMemoryError if status == STEM_ERR_NOMEM else
           StemISAError if status == STEM_ERR_ISA else StemInputError)
    return cls(status, what, detail)
