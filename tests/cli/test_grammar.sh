#!/bin/sh
# test_grammar.sh BUILD - stem and stem-mpi share one option grammar: the
# commands both have (run, check) list the same options in --help (the
# lists come from the tables that read the command line), stem-mpi check
# adding only --pair and --list; and an option outside the grammar is
# refused by both with exit 2.  Skipped when BUILD/stem-mpi is missing.
# Ends with "grammar: N passed, M failed"; exits 1 if any failed.
BUILD=${1:-build}
STEM=$BUILD/stem
MPI=$BUILD/stem-mpi
if [ ! -x "$MPI" ]; then
    echo "SKIP test_grammar.sh: $MPI missing (install libopenmpi-dev, then make)"
    exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
if nm "$MPI" 2>/dev/null | grep -q '__asan_init'; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/stem_grammar.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

# options TOOL CMD: the --long options TOOL CMD --help names, one a line
options() {
    "$1" "$2" --help 2>&1 | grep -o -e '--[a-z][a-z0-9-]*' | sort -u
}

same() {
    name=$1
    if cmp -s "$2" "$3"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: the option lists differ (< stem, > stem-mpi):"
        diff "$2" "$3" | grep '^[<>]' | sed 's/^/    /'
    fi
}

options "$STEM" run >"$T/run.stem"
options "$MPI" run >"$T/run.mpi"
same "run: stem and stem-mpi" "$T/run.stem" "$T/run.mpi"
# stem check's help names every option of its table; stem-mpi check lists
# that table and adds its own --pair and --list (and says --help)
options "$STEM" check | grep -v -x -e '--help' >"$T/check.stem"
options "$MPI" check | grep -v -x -e '--pair' -e '--list' -e '--help' >"$T/check.mpi"
same "check: stem and stem-mpi" "$T/check.stem" "$T/check.mpi"
for f in "$T/run.stem" "$T/check.stem"; do
    n=$(wc -l <"$f")
    if [ "$n" -ge 15 ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $(basename "$f"): only $n options found in --help"
    fi
done

# an option outside the grammar: exit 2 and its name, from both tools
for cmd in run check; do
    for tool in "$STEM" "$MPI"; do
        "$tool" "$cmd" x --no-such-option >"$T/out" 2>&1
        rc=$?
        if [ "$rc" -eq 2 ] && grep -q -e "--no-such-option" "$T/out"; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1))
            echo "FAIL $(basename "$tool") $cmd --no-such-option: exit $rc"
            sed 's/^/    /' "$T/out" | head -n 4
        fi
    done
done
echo "grammar: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
