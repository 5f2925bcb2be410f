"""pytest setup for tests/python: the `stem` package from python/ of this
repository, the library from $STEM_LIBRARY (make test sets it to
$(BUILD)/libstem.so; default build/libstem.so through the package's own
lookup) and the CLI from $STEM (default: next to the library, else
build/stem)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
if os.path.join(ROOT, "python") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "python"))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
