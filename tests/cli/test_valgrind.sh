#!/bin/sh
# test_valgrind.sh BUILD - valgrind memcheck on the stem tool: `stem gen`
# and `stem run` (sparse and --dense) of a small generated workload, and
# failing runs (missing input, truncated input, bad option, an output in a
# directory that does not exist).  Any memcheck error or definitely /
# indirectly lost block fails (--error-exitcode).  Run once with the
# detected instruction set and once with STEM_ISA=scalar.
# Skips (exit 0, with a message) when valgrind is absent or BUILD is built
# with sanitizers.  Ends with "valgrind: N passed, M failed".
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind: SKIPPED: valgrind is not installed (tools/install-deps.sh installs it)"
    exit 0
fi
LABEL=valgrind
. "$(dirname "$0")/../common/cli_lib.sh"
if nm "$STEM" 2>/dev/null | grep -q -e '__asan_init' -e '__tsan_init'; then
    echo "valgrind: SKIPPED: $STEM is built with a sanitizer"
    exit 0
fi
VG="valgrind --tool=memcheck --error-exitcode=99 --leak-check=full
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
    --track-origins=yes -q"

# vg NAME WANT_RC CMD...: under memcheck, CMD must exit WANT_RC (99 means a
# memcheck error).
vg() {
    name=$1
    want=$2
    shift 2
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=2 $VG "$@" >"$T/out.log" 2>"$T/err.log"
    got=$?
    if [ "$got" -eq "$want" ]; then
        pass=$((pass + 1))
        echo "ok   $name (exit $got)"
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $got, expected $want: $*"
        sed 's/^/    /' "$T/err.log" | head -n 40
    fi
}

vg "gen" 0 "$STEM" gen -o "$T/in.safetensors" --tokens 640 --heads 2 \
    --kv-heads 1 --dim 32 --seed 3
for isa in "" scalar; do
    tag=${isa:-detected}
    export STEM_ISA="$isa"
    [ -n "$isa" ] || unset STEM_ISA
    vg "run ($tag)" 0 "$STEM" run "$T/in.safetensors" -o "$T/out-$tag.safetensors"
    vg "run --dense ($tag)" 0 "$STEM" run "$T/in.safetensors" --dense \
        -o "$T/dense-$tag.safetensors"
    vg "run --f64 --threads 1 ($tag)" 0 "$STEM" run "$T/in.safetensors" --f64 \
        --threads 1 -o "$T/f64-$tag.safetensors"
done
unset STEM_ISA
# the data sections (the headers differ in their isa and seconds metadata)
data_of() {
    python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; sys.stdout.buffer.write(b[8+n:])' "$1"
}
if [ -s "$T/out-detected.safetensors" ] && [ -s "$T/out-scalar.safetensors" ] &&
    data_of "$T/out-detected.safetensors" >"$T/d1" && data_of "$T/out-scalar.safetensors" >"$T/d2" &&
    [ -s "$T/d1" ] && cmp -s "$T/d1" "$T/d2"; then
    pass=$((pass + 1))
    echo "ok   detected ISA and scalar give identical data under valgrind"
else
    fail=$((fail + 1))
    echo "FAIL detected ISA and scalar outputs differ or are missing"
fi

# failing runs: bad input is exit 2 (docs/CLI.md), whatever the cause
vg "run: missing input" 2 "$STEM" run "$T/nope.safetensors" -o "$T/x.safetensors"
head -c 700 "$T/in.safetensors" >"$T/trunc.safetensors"
vg "run: truncated input" 2 "$STEM" run "$T/trunc.safetensors" -o "$T/x.safetensors"
vg "run: bad option" 2 "$STEM" run "$T/in.safetensors" --alpha 7 -o "$T/x.safetensors"
vg "run: output directory missing" 2 "$STEM" run "$T/in.safetensors" -o "$T/no/dir/x.safetensors"
vg "run: q longer than k (wrong --layout)" 2 "$STEM" run "$T/in.safetensors" --layout nhd -o "$T/x.safetensors"

finish
