#!/bin/sh
# check-races.sh [BUILD] - race check of the threaded code (`make test-tsan`).
#
# gcc's ThreadSanitizer does not understand libgomp's synchronisation, so the
# library and the threaded tests are built with clang -fsanitize=thread
# against LLVM's OpenMP runtime (libomp), and run with the Archer tool
# (libarcher.so, shipped by Debian's libomp-14-dev) loaded through
# OMP_TOOL_LIBRARIES: Archer tells TSan about OpenMP's barriers, tasks and
# reductions, so what TSan reports is a real race in our code.
#
# Programs: test_determinism (prefill and dense attention at 1, 2, 3 and 8
# threads, byte-compared) under OMP_NUM_THREADS = 1, 2, 4 and 8, and
# test_stages once with 8 threads.  Any TSan report fails the run.
# With these settings a deliberate race (an unsynchronised `shared += i` in
# an omp parallel for) is reported and its reduction-based fix is not.
# Takes about 7 minutes on two cores; not part of CI.
set -eu
cd "$(dirname "$0")/.."
B=${1:-build-tsan}
CC=${TSAN_CC:-clang}
ARCHER=${ARCHER:-$(ls /usr/lib/llvm-*/lib/libarcher.so 2>/dev/null | tail -n 1)}
if ! command -v "$CC" >/dev/null 2>&1 || [ -z "$ARCHER" ]; then
    echo "test-tsan: needs clang and libarcher.so (Debian: clang libomp-dev)" >&2
    exit 1
fi
mkdir -p "$B"
make --no-print-directory -j2 CC="$CC" BUILD="$B" OPT=-O1 \
    SAN="-fsanitize=thread -fno-omit-frame-pointer" \
    "$B/tests/test_determinism" "$B/tests/test_stages" >"$B/build.log" 2>&1 ||
    { cat "$B/build.log" >&2; echo "test-tsan: build failed" >&2; exit 1; }

export OMP_TOOL_LIBRARIES="$ARCHER"
# libomp itself is not instrumented: its internal locking is invisible to
# TSan, so only accesses from instrumented code (ours) are checked.
# The same holds for the interceptors (memset, mutexes) libomp calls on its
# own memory, which called_from_lib suppresses.
printf 'called_from_lib:libomp.so.5\ncalled_from_lib:libomp.so\n' >"$B/tsan.supp"
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ignore_noninstrumented_modules=1 suppressions=$(pwd)/$B/tsan.supp"
export ARCHER_OPTIONS="verbose=1"
fail=0
run() {
    threads=$1
    shift
    log="$B/race-$(basename "$1")-$threads.log"
    if OMP_NUM_THREADS=$threads "$@" >"$log" 2>&1 &&
        ! grep -q 'WARNING: ThreadSanitizer' "$log"; then
        echo "PASS race check $(basename "$1") OMP_NUM_THREADS=$threads"
    else
        fail=1
        grep -A 40 'WARNING: ThreadSanitizer' "$log" | head -60 >&2 || tail -n 30 "$log" >&2
        echo "FAIL race check $(basename "$1") OMP_NUM_THREADS=$threads (log $log)" >&2
    fi
    grep -q 'Archer detected OpenMP application with TSan' "$log" ||
        { echo "test-tsan: Archer was not loaded ($log)" >&2; fail=1; }
}
for t in 1 2 4 8; do
    run "$t" "$B/tests/test_determinism"
done
run 8 "$B/tests/test_stages"
exit $fail
