#!/bin/sh
# test_failalloc.sh BUILD - allocation failure at every allocation point of
# the stem commands.
#
# BUILD/tests/fault/libfailalloc.so (tests/fault/failalloc.c), preloaded,
# numbers the allocation calls of the process (malloc, calloc, realloc,
# posix_memalign, aligned_alloc, memalign, valloc; those made inside the
# OpenMP runtime and the dynamic loader excepted) and fails the n-th.  Each
# command runs once to count its allocation points N, then once per n:
# every n when N is at most the sample size, else that many values of n
# spread evenly over 1..N, the first and the last included.  The sample is
# MAXPOINTS (100) for `stem run`, `stem check` and `stem mask` (425, 895
# and 295 points here) and SMALLPOINTS (30) for gen, compare, explain and
# budget, so that the script stays well under a minute on two cores;
# `make check-full` sweeps every point (FAILALLOC_MAXPOINTS and
# FAILALLOC_SMALLPOINTS set the sizes).
#
# Each run must end cleanly: exit 3 (an internal failure: out of memory)
# with a "stem: " message and its earlier output file byte-identical, or
# exit 0 with the same result as an unhindered run (some failures are
# absorbed, e.g. stdio's buffer); never a signal, a hang, exit 1 (a
# verdict), exit 2 (bad input: a misread failure), a temporary file left
# behind, or a sanitizer report.  Prints per command the points, the runs
# and the exits seen.  Skipped in sanitizer builds, whose runtime owns
# malloc.  Ends with "failalloc: N passed, M failed".
LABEL=failalloc
. "$(dirname "$0")/../common/cli_lib.sh"
LIB="$BUILD/tests/fault/libfailalloc.so"
MAXPOINTS=${FAILALLOC_MAXPOINTS:-100}
SMALLPOINTS=${FAILALLOC_SMALLPOINTS:-30}
if nm "$STEM" 2>/dev/null | grep -q -e '__asan_init' -e '__tsan_init'; then
    echo "SKIP test_failalloc ($STEM is a sanitizer build: its runtime owns malloc)"
    exit 0
fi
if [ ! -f "$LIB" ]; then
    echo "test_failalloc: $LIB not built (make BUILD=$BUILD tests)" >&2
    echo "failalloc: 0 passed, 1 failed"
    exit 1
fi
case "$LIB" in /*) ;; *) LIB="$(pwd)/$LIB" ;; esac
TO=""
command -v timeout >/dev/null 2>&1 && TO="timeout 60"

# The workload and the unhindered results.
"$STEM" gen -o "$T/in.safetensors" --tokens 384 --heads 2 --kv-heads 1 \
    --dim 16 --seed 5 >/dev/null 2>&1 &&
    "$STEM" run "$T/in.safetensors" -o "$T/ref.safetensors" --threads 2 \
        >/dev/null 2>&1 &&
    "$STEM" mask "$T/ref.safetensors" -o "$T/ref.png" >/dev/null 2>&1 &&
    "$STEM" check "$T/in.safetensors" "$T/ref.safetensors" --threads 2 \
        --json "$T/ref.json" >/dev/null 2>&1 &&
    "$STEM" gen -o "$T/refgen.safetensors" --tokens 256 --heads 2 \
        --kv-heads 1 --dim 16 --seed 6 >/dev/null 2>&1 &&
    "$STEM" compare "$T/ref.safetensors" "$T/ref.safetensors" >"$T/ref.compare" 2>&1 &&
    "$STEM" explain "$T/in.safetensors" --head 1 --qblock 2 --threads 2 \
        >"$T/ref.explain" 2>&1 &&
    "$STEM" budget --blocks 40 --png "$T/ref.budget.png" >/dev/null 2>&1 || {
    echo "test_failalloc: the unhindered runs failed" >&2
    echo "failalloc: 0 passed, 1 failed"
    exit 1
}
printf 'an earlier output that a failed run must leave as it is\n' >"$T/precious"

# same_result CMD OUT: OUT, written by a run that exited 0, is what the
# unhindered run of CMD wrote.
same_result() {
    case $1 in
    run) "$STEM" compare "$2" "$T/ref.safetensors" --tensor out --tensor lse \
             --tensor mask --tensor block_logits --max-rel-l2 0 >/dev/null 2>&1 ;;
    mask) cmp -s "$2" "$T/ref.png" ;;
    check) cmp -s "$2" "$T/ref.json" ;;
    gen) cmp -s "$2" "$T/refgen.safetensors" ;;
    compare) cmp -s "$T/stdout" "$T/ref.compare" ;;
    explain) cmp -s "$T/stdout" "$T/ref.explain" ;;
    budget) cmp -s "$2" "$T/ref.budget.png" ;;
    esac
}

# sweep CMD MAX OUT ARGS...: the sweep of one command writing OUT (a file
# it never writes when its result goes to standard output), over at most
# MAX points.
sweep() {
    cmd=$1
    max=$2
    out=$3
    shift 3
    rm -f "$T/count"
    FAILALLOC_COUNT="$T/count" LD_PRELOAD="$LIB" "$STEM" "$@" >/dev/null 2>&1
    n=$(cat "$T/count" 2>/dev/null)
    if [ -z "$n" ] || [ "$n" -lt 1 ]; then
        fail=$((fail + 1))
        echo "FAIL $cmd: no allocation counted"
        return
    fi
    runs=$n
    [ "$n" -gt "$max" ] && runs=$max
    e0=0 e2=0 e3=0 bad=0
    i=0
    while [ "$i" -lt "$runs" ]; do
        if [ "$runs" -eq "$n" ]; then
            at=$((i + 1))
        else
            at=$((1 + i * (n - 1) / (runs - 1)))
        fi
        i=$((i + 1))
        cp "$T/precious" "$out"
        FAILALLOC_AT=$at LD_PRELOAD="$LIB" $TO "$STEM" "$@" \
            >"$T/stdout" 2>"$T/stderr"
        rc=$?
        why=""
        case $rc in
        0)
            e0=$((e0 + 1))
            same_result "$cmd" "$out" || why="exit 0 with a result unlike the unhindered run's"
            ;;
        3)
            e3=$((e3 + 1))
            grep -q '^stem: ' "$T/stderr" || why="exit $rc without a message"
            cmp -s "$out" "$T/precious" || why="exit $rc, earlier output changed"
            ;;
        *)
            [ "$rc" -eq 2 ] && e2=$((e2 + 1))
            why="exit $rc (1: a verdict; 2: bad input; 124: a hang; > 128: a signal)"
            ;;
        esac
        grep -q -i -e 'sanitizer' -e 'runtime error' "$T/stderr" && why="sanitizer report"
        ls "$T" | grep -q '\.tmp\.' && why="${why:-a temporary file left behind}"
        if [ -n "$why" ]; then
            bad=$((bad + 1))
            echo "FAIL $cmd, allocation $at of $n failed: $why"
            sed 's/^/    /' "$T/stderr" | head -n 4
            rm -rf "$T"/*.tmp.*
        fi
    done
    echo "$cmd: $n allocation points, $runs failed one at a time" \
         "(exit 0: $e0, exit 2: $e2, exit 3: $e3), $bad wrong"
    if [ "$bad" -eq 0 ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
    fi
}

sweep run "$MAXPOINTS" "$T/out.safetensors" run "$T/in.safetensors" -o "$T/out.safetensors" --threads 2
sweep check "$MAXPOINTS" "$T/out.json" check "$T/in.safetensors" "$T/ref.safetensors" --threads 2 --json "$T/out.json"
sweep mask "$MAXPOINTS" "$T/out.png" mask "$T/ref.safetensors" -o "$T/out.png"
sweep gen "$SMALLPOINTS" "$T/out.gen" gen -o "$T/out.gen" --tokens 256 --heads 2 --kv-heads 1 --dim 16 --seed 6
sweep compare "$SMALLPOINTS" "$T/untouched" compare "$T/ref.safetensors" "$T/ref.safetensors"
sweep explain "$SMALLPOINTS" "$T/untouched" explain "$T/in.safetensors" --head 1 --qblock 2 --threads 2
sweep budget "$SMALLPOINTS" "$T/out.budget.png" budget --blocks 40 --png "$T/out.budget.png"

finish
