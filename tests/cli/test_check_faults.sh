#!/bin/sh
# test_check_faults.sh BUILD - faults a GPU kernel really has, doctored as
# float64 deltas into the last query blocks of genuine captures
# (tests/cli/check_faults.py): each must make `stem check` fail naming the
# stage, the kind and the place; the genuine outputs and flash-style bf16
# and fp16 emulations must pass.  `make check-full` runs every capture at
# full length.  Skipped, with a message, without /usr/bin/python3 + numpy.
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd) || exit 2
cd "$(dirname "$0")/../.." || exit 2
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    echo "SKIP doctored faults: /usr/bin/python3 lacks numpy"
    exit 0
fi
if [ ! -x "$BUILD/stem" ]; then
    echo "test_check_faults: $BUILD/stem not built" >&2
    exit 1
fi
exec /usr/bin/python3 tests/cli/check_faults.py "$BUILD/stem"
