#!/bin/sh
# run-tests.sh BUILD - run every test program of a build.
#
# Runs each $BUILD/tests/test_* binary, then each tests/cli/*.sh with BUILD as
# its argument, prints one line per program, and ends with the line
#     N passed, M failed
# (N, M = numbers of test programs).  Exits non-zero if any program failed or
# if no program ran at all.
BUILD=${1:-build}
if [ ! -d "$BUILD" ]; then
    echo "run-tests.sh: build directory '$BUILD' not found" >&2
    echo "0 passed, 0 failed"
    exit 2
fi
BUILD=$(cd "$BUILD" && pwd) || exit 2
cd "$(dirname "$0")/.." || exit 2

passed=0
failed=0
failed_names=""

run_one() {
    name=$1
    shift
    start=$(date +%s)
    "$@"
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $name (${secs}s)"
    else
        failed=$((failed + 1))
        failed_names="$failed_names $name"
        echo "FAIL $name (exit $rc, ${secs}s)"
    fi
}

for t in "$BUILD"/tests/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    echo "== $t"
    run_one "$t" "$t"
done

for s in tests/cli/*.sh; do
    [ -f "$s" ] || continue
    echo "== $s"
    run_one "$s" sh "$s" "$BUILD"
done

# the Python package's tests (tests/python) against this build's library;
# a sanitizer build's library needs its runtime in the process, which an
# ordinary python3 lacks: those builds test the library through C alone
if nm -D "$BUILD/libstem.so" 2>/dev/null | grep -q '__asan_init\|__tsan_init'; then
    echo "SKIP tests/python ($BUILD/libstem.so is a sanitizer build)"
elif /usr/bin/python3 -c 'import pytest, numpy' 2>/dev/null; then
    echo "== tests/python"
    run_one tests/python env STEM_LIBRARY="$BUILD/libstem.so" STEM="$BUILD/stem" \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python
else
    echo "SKIP tests/python (python3-pytest or python3-numpy missing)"
fi

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ $((passed + failed)) -eq 0 ]; then
    exit 1
fi
exit 0
