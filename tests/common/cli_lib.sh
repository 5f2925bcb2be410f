# cli_lib.sh - what the shell tests of tests/cli share.  A script sets LABEL
# (the name its summary line starts with) and sources this file, its own
# first argument being the build folder:
#     LABEL=cli
#     . "$(dirname "$0")/../common/cli_lib.sh"
# which sets BUILD, STEM ($BUILD/stem, made absolute; a script whose STEM
# is missing ends there as one failure) and T (a temporary folder, removed
# at exit), zeroes the counters pass and fail, and defines:
#   expect NAME RC CMD...   CMD exits RC, else a FAIL line and its stderr
#   ok NAME CMD...          CMD succeeds, else a FAIL line
#   stderr_has PATTERN, stdout_has PATTERN: the last expect's output
#   finish                  the summary "LABEL: N passed, M failed", and
#                           the status: 1 if any failed
BUILD=${1:-build}
STEM="$BUILD/stem"
if [ ! -x "$STEM" ]; then
    echo "$(basename "$0"): $STEM not found" >&2
    echo "$LABEL: 0 passed, 1 failed"
    exit 1
fi
case "$STEM" in /*) ;; *) STEM="$(pwd)/$STEM" ;; esac
T=$(mktemp -d "${TMPDIR:-/tmp}/stem_$LABEL.XXXXXX") || exit 1
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT INT TERM
pass=0
fail=0

expect() {
    name=$1
    want=$2
    shift 2
    "$@" >"$T/stdout" 2>"$T/stderr"
    got=$?
    if [ "$got" -eq "$want" ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $got, expected $want: $*"
        sed 's/^/    /' "$T/stderr" | head -n 5
    fi
}

ok() {
    name=$1
    shift
    if "$@"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name"
    fi
}

stderr_has() { grep -q "$1" "$T/stderr"; }
stdout_has() { grep -q "$1" "$T/stdout"; }

finish() {
    echo "$LABEL: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
