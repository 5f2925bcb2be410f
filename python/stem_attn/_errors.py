"""The package's error for a failed library call (its own module, so that
every other module can raise it without importing the package)."""
from . import _lib


class StemError(RuntimeError):
    """A libstem call returned an error status."""

    def __init__(self, status: int, what: str = "") -> None:
        self.status = int(status)
        msg = _lib.func("stem_strerror")(self.status).decode()
        super().__init__("stem: %s%s (status %d)" % (
            what + ": " if what else "", msg, self.status))
