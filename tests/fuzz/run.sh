#!/bin/sh
# run.sh [SECONDS] - build the libFuzzer harnesses of tests/fuzz with clang
# (-fsanitize=fuzzer,address,undefined) and run each for SECONDS (default
# $FUZZ_SECONDS or 60) on a copy of its seed corpus.  `make fuzz` runs this.
#
#   fuzz_safetensors  tools/io safetensors reader (header, offsets, data)
#   fuzz_npy          tools/io .npy reader (magic, version, dict header)
#   fuzz_cli_args     the stem command line's argument parsing
#   fuzz_prefill      the library: random parameters, shapes, dtypes, data
#
# The library, tools/io and tools/cli (tools/io reads dtype names through
# the library, so every harness links libstem.a) are built with clang into
# $FUZZ_BUILD (default build-fuzz) with the same sanitizers.  A crash, leak,
# sanitizer report or timeout stops the run: the input that caused it is
# saved as $FUZZ_BUILD/crash-* (re-run it with `$FUZZ_BUILD/fuzz_NAME FILE`).
# Exit status 0 only if every harness ran clean.  FUZZ_SEED=N fixes
# libFuzzer's random seed, so that a run can be repeated (CI sets it).
set -eu
SECONDS_EACH=${1:-${FUZZ_SECONDS:-60}}
cd "$(dirname "$0")/../.."
B=${FUZZ_BUILD:-build-fuzz}
CC=${FUZZ_CC:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

mkdir -p "$B"
command -v "$CC" >/dev/null 2>&1 || { echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

# The library and the tool objects, instrumented for coverage.
make --no-print-directory -j2 CC="$CC" BUILD="$B" OPT=-O1 \
    SAN="$SAN -fsanitize=fuzzer-no-link" lib "$B/stem" >"$B/build.log" 2>&1 ||
    { cat "$B/build.log" >&2; echo "fuzz: building the instrumented library failed" >&2; exit 1; }

CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -Itools/io -Itools/cli -Itests/fuzz $SAN"
IO_OBJ=$(ls "$B"/obj/tools/io/*.o)
CLI_OBJ=$(ls "$B"/obj/tools/cli/*.o | grep -v '/main\.o$')
LIBS="-lcjson -lpng -lsleef -lm -fopenmp"

build() {
    name=$1
    shift
    echo "fuzz: building $B/$name"
    $CC $CFLAGS -fsanitize=fuzzer -o "$B/$name" "tests/fuzz/$name.c" \
        tests/fuzz/fuzz_common.c "$@" $LIBS
}

$CC $CFLAGS -fsanitize=fuzzer-no-link -fopenmp -Dmain=stem_cli_main \
    -c tools/cli/main.c -o "$B/cli_main_renamed.o"
build fuzz_safetensors $IO_OBJ "$B/libstem.a"
build fuzz_npy $IO_OBJ "$B/libstem.a"
build fuzz_cli_args "$B/cli_main_renamed.o" $CLI_OBJ $IO_OBJ "$B/libstem.a"
build fuzz_prefill "$B/libstem.a"

seed=""
[ -n "${FUZZ_SEED:-}" ] && seed="-seed=$FUZZ_SEED"
status=0
for name in fuzz_safetensors fuzz_npy fuzz_cli_args fuzz_prefill; do
    dict=""
    case $name in
    fuzz_safetensors) seeds=tests/fuzz/corpus/safetensors
        dict="-dict=$(pwd)/tests/fuzz/safetensors.dict" ;;
    fuzz_npy) seeds=tests/fuzz/corpus/npy
        dict="-dict=$(pwd)/tests/fuzz/npy.dict" ;;
    fuzz_cli_args) seeds=tests/fuzz/corpus/cli_args ;;
    fuzz_prefill) seeds=tests/fuzz/corpus/prefill ;;
    esac
    work="$(pwd)/$B/corpus-$name"
    mkdir -p "$work"
    cp "$seeds"/* "$work"/
    echo "fuzz: $name for ${SECONDS_EACH}s"
    if ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
        OMP_NUM_THREADS=1 \
        "$B/$name" -max_total_time="$SECONDS_EACH" -timeout=30 $seed \
        -rss_limit_mb=2048 -max_len=8192 -close_fd_mask=3 $dict \
        -artifact_prefix="$(pwd)/$B/crash-$name-" -print_final_stats=1 \
        "$work" >"$B/$name.log" 2>&1; then
        tail -n 12 "$B/$name.log" | grep -E 'stat::number_of_executed_units|stat::new_units_added|Done' || true
        echo "fuzz: $name clean"
    else
        status=1
        grep -E -A 30 'ERROR|runtime error|deadly signal|Timeout|out-of-memory' "$B/$name.log" | head -60 >&2 || tail -n 40 "$B/$name.log" >&2
        echo "fuzz: $name FAILED (log $B/$name.log)" >&2
    fi
done
exit $status
