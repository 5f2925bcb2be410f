#!/bin/sh
# test_threads.sh BUILD - thread counts the OpenMP runtime cannot honour.
#
# libgomp ends the process when it cannot start a thread (and crashed on
# OMP_NUM_THREADS=100000); the library caps what it asks for (stem.h,
# stem_threads).  Asserts: an absurd OMP_NUM_THREADS runs, with the same
# bytes as one thread; `stem info` shows the cap and its reason; under a
# process limit (prlimit --nproc, as an unprivileged user: the kernel
# exempts root) --threads 256 and 16 run, or end with exit 3, never exit 1;
# OMP_THREAD_LIMIT is honoured.  Ends with "threads: N passed, M failed".
LABEL=threads
. "$(dirname "$0")/../common/cli_lib.sh"

"$STEM" gen -o "$T/in.safetensors" --tokens 512 --heads 4 --kv-heads 2 \
    --dim 32 --seed 9 >/dev/null 2>&1 || { echo "threads: 0 passed, 1 failed"; exit 1; }
chmod 755 "$T"
chmod 644 "$T/in.safetensors"
expect "run, one thread" 0 "$STEM" run "$T/in.safetensors" -o "$T/one.safetensors" --threads 1

same() {
    "$STEM" compare "$1" "$T/one.safetensors" --tensor out --tensor lse \
        --tensor mask --tensor block_logits --max-rel-l2 0 >/dev/null 2>&1
}
for n in 100000 50000 4096; do
    expect "run, OMP_NUM_THREADS=$n" 0 env OMP_NUM_THREADS=$n "$STEM" run \
        "$T/in.safetensors" -o "$T/omp$n.safetensors"
    ok "run, OMP_NUM_THREADS=$n: the bytes of one thread" same "$T/omp$n.safetensors"
done
expect "check, OMP_NUM_THREADS=100000" 0 env OMP_NUM_THREADS=100000 "$STEM" \
    check "$T/in.safetensors" "$T/one.safetensors"
expect "run --threads 4096" 0 "$STEM" run "$T/in.safetensors" -o "$T/t4096.safetensors" --threads 4096
ok "run --threads 4096: the bytes of one thread" same "$T/t4096.safetensors"

expect "info, OMP_NUM_THREADS=100000" 0 env OMP_NUM_THREADS=100000 "$STEM" info
used=$(sed -n 's/^threads: \([0-9]*\) of 100000 requested, capped by .*/\1/p' "$T/stdout")
ok "info shows the capped count and the reason" test -n "$used"
ok "info: the cap is at most the hard cap" test "${used:-99999}" -le 1024
expect "info, OMP_THREAD_LIMIT=3" 0 env OMP_THREAD_LIMIT=3 "$STEM" info --threads 64
ok "info: OMP_THREAD_LIMIT caps" grep -q '^threads: 3 of 64 requested, capped by OMP_THREAD_LIMIT' "$T/stdout"

# The process limit binds unprivileged users only: as root, run as nobody.
AS=""
if [ "$(id -u)" -eq 0 ]; then
    if command -v setpriv >/dev/null 2>&1 && id nobody >/dev/null 2>&1; then
        AS="setpriv --reuid=$(id -u nobody) --regid=$(id -g nobody) --clear-groups"
        chmod 777 "$T"
    else
        AS=none
    fi
fi
if ! command -v prlimit >/dev/null 2>&1 || [ "$AS" = none ]; then
    echo "SKIP the process-limit cases (need prlimit, and setpriv when root)"
else
    for case in "64 256" "4 16"; do
        set -- $case
        # LeakSanitizer's exit-time check starts a thread of its own: off
        $AS env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
            prlimit --nproc="$1" "$STEM" run "$T/in.safetensors" \
            -o "$T/np$1.safetensors" --threads "$2" >"$T/stdout" 2>"$T/stderr"
        rc=$?
        if [ "$rc" -eq 0 ]; then
            ok "nproc $1, --threads $2: the bytes of one thread" same "$T/np$1.safetensors"
        elif [ "$rc" -eq 3 ] && [ -s "$T/stderr" ]; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1))
            echo "FAIL nproc $1, --threads $2: exit $rc (0, or 3 with a message)"
            sed 's/^/    /' "$T/stderr" | head -n 4
        fi
    done
    $AS env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        prlimit --nproc=4 "$STEM" info --threads 16 >"$T/stdout" 2>&1
    ok "info under nproc 4 shows RLIMIT_NPROC" grep -q 'RLIMIT_NPROC 4 ' "$T/stdout"
fi

finish
