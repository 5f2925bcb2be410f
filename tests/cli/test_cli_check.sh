#!/bin/sh
# test_cli_check.sh BUILD - `stem check`, `stem explain`, `stem mask` and
# tools/stem_dump.py from the command line.
#
# stem check must pass every GPU conformance case (exit 0, every mask
# difference a tie) and fail (exit 1) on doctored copies: a non-tie block
# added, a sink dropped, an output perturbed past tolerance, an output
# computed without the mask.  Bad input exits 2.  Doctored copies are made
# with /usr/bin/python3 + numpy (tests/cli/check_doctor.py); those cases are
# skipped, with a message, when numpy is missing.
# Ends with the line "check: N passed, M failed".
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd) || exit 2
cd "$(dirname "$0")/../.." || exit 2
STEM="$BUILD/stem"
D=tests/data/conformance
PY=/usr/bin/python3
T=$(mktemp -d) || exit 2
trap 'rm -rf "$T"' EXIT INT TERM

pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/     | /' "$T/log" | tail -n 25; }

# expect RC NAME [PATTERN] -- CMD...: CMD exits RC and, if PATTERN is not
# empty, its output matches PATTERN (grep -E).
expect() {
    want=$1 name=$2 pat=$3
    shift 4
    "$@" >"$T/log" 2>&1
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "     (exit $rc, expected $want)" >>"$T/log"
        bad "$name"
    elif [ -n "$pat" ] && ! grep -Eq "$pat" "$T/log"; then
        echo "     (output lacks /$pat/)" >>"$T/log"
        bad "$name"
    else
        ok "$name"
    fi
}

if [ ! -x "$STEM" ]; then
    echo "test_cli_check: $STEM not built" >&2
    echo "check: 0 passed, 1 failed"
    exit 1
fi

# ---- the conformance cases pass, every mask difference a tie
for c in s2 r1 s6; do
    expect 0 "conformance $c passes" "mask +ok +[0-9]+ differences: ([0-9]+) ties .* 0 faults" -- \
        "$STEM" check "$D/$c.in.safetensors" "$D/$c.angelslim.safetensors" --json "$T/$c.json"
    # the number of differences equals the number of ties
    if grep -Eq "mask +ok +([0-9]+) differences: ([0-9]+) ties" "$T/log" &&
       [ "$(sed -nE 's/.*mask +ok +([0-9]+) differences: ([0-9]+) ties.*/\1 \2/p' "$T/log" |
            awk '{print ($1 == $2 && $1 > 0)}')" = 1 ]; then
        ok "conformance $c: every mask difference is a tie"
    else
        bad "conformance $c: every mask difference is a tie"
    fi
done

# ---- bad input and usage: exit 2
expect 2 "missing input file" "" -- "$STEM" check "$T/nope.safetensors" "$D/s2.angelslim.safetensors"
expect 2 "GPU file without results" "none of block_logits" -- \
    "$STEM" check "$D/s2.in.safetensors" "$D/s2.in.safetensors"
expect 2 "input without q/k/v" "no tensor 'q'" -- \
    "$STEM" check "$D/s2.angelslim.safetensors" "$D/s2.angelslim.safetensors"
expect 2 "unknown option" "unknown option" -- "$STEM" check --bogus "$D/s2.in.safetensors"
expect 2 "bad --dtype" "dtype" -- "$STEM" check --dtype int8 "$D/s2.in.safetensors" "$D/s2.angelslim.safetensors"
expect 2 "GPU shapes of another case" "shape" -- \
    "$STEM" check "$D/r1.in.safetensors" "$D/s6.angelslim.safetensors"
expect 0 "check --help" "ignored-mask|ignore" -- "$STEM" check --help

# ---- a stem run result checks exactly (fp32), lse included
"$STEM" run "$D/s2.in.safetensors" -o "$T/run.safetensors" >"$T/log" 2>&1 || bad "stem run s2"
expect 0 "own fp32 result passes, lse included" "lse +ok +max \|diff\| 0 " -- \
    "$STEM" check "$D/s2.in.safetensors" "$T/run.safetensors" --dtype fp32

if ! $PY -c 'import numpy' 2>/dev/null; then
    echo "SKIP doctored copies, layouts, .npy directories and stem_dump.py: $PY lacks numpy"
else
    DOC="$PY tests/cli/check_doctor.py"
    # ---- doctored copies fail
    $DOC add_block "$D/s2.angelslim.safetensors" "$T/add.safetensors" >/dev/null
    expect 1 "non-tie block added is a fault" "^ +fault +head 0 qblock 78 .*GPU kept" -- \
        "$STEM" check "$D/s2.in.safetensors" "$T/add.safetensors"
    $DOC add_block "$D/r1.angelslim.safetensors" "$T/add_r1.safetensors" >/dev/null
    expect 1 "non-tie block added is a fault (fp16)" "mask +FAIL" -- \
        "$STEM" check "$D/r1.in.safetensors" "$T/add_r1.safetensors"
    $DOC drop_sink "$D/s6.angelslim.safetensors" "$T/sink.safetensors"
    expect 1 "dropped sink is a fault" "sink fault +head 0 qblock 63 kblock 0" -- \
        "$STEM" check "$D/s6.in.safetensors" "$T/sink.safetensors"
    $DOC perturb "$D/s2.angelslim.safetensors" "$T/pert.safetensors"
    expect 1 "perturbed output is a fault" "out +FAIL +rel L2 0\.1" -- \
        "$STEM" check "$D/s2.in.safetensors" "$T/pert.safetensors"
    "$STEM" run --dense "$D/s2.in.safetensors" -o "$T/dense_run.safetensors" >/dev/null 2>&1
    $DOC dense "$D/s2.angelslim.safetensors" "$T/dense_run.safetensors" "$T/dense.safetensors"
    expect 1 "dense output (mask ignored) is a fault" "head 0 IGNORES THE MASK" -- \
        "$STEM" check "$D/s2.in.safetensors" "$T/dense.safetensors"
    # Head 1 alone dense: in s2 its dense and masked outputs differ by
    # less than the bf16 limit, so only the ignored-mask test sees it.
    $DOC dense "$D/s2.angelslim.safetensors" "$T/dense_run.safetensors" "$T/dense1.safetensors" 1
    expect 1 "one dense head (mask ignored) is a fault" "head 1 IGNORES THE MASK" -- \
        "$STEM" check "$D/s2.in.safetensors" "$T/dense1.safetensors" --json "$T/dense.json"
    if $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))["out"]
h = r["heads"]
ok = (all(x["rel_l2"] <= 3e-2 for x in h) and h[1]["ignores_mask"]
      and not h[0]["ignores_mask"] and r["verdict"] == "fault")
sys.exit(0 if ok else 1)' "$T/dense.json"; then
        ok "dense output: within the rel L2 limit, caught by the ignored-mask test"
    else
        echo "dense report: $(cat "$T/dense.json")" >"$T/log"
        bad "dense output: within the rel L2 limit, caught by the ignored-mask test"
    fi
    $DOC lse_shift "$T/run.safetensors" "$T/lse.safetensors"
    expect 1 "shifted lse is a fault" "lse +FAIL +max \|diff\| 0\.5 at head 0 row 100" -- \
        "$STEM" check "$D/s2.in.safetensors" "$T/lse.safetensors" --dtype fp32
    $DOC bad_shape "$D/s2.angelslim.safetensors" "$T/shape.safetensors"
    expect 2 "mask of the wrong shape" "shape" -- \
        "$STEM" check "$D/s2.in.safetensors" "$T/shape.safetensors"

    # ---- the JSON report carries the same verdicts
    if $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))
m = r["mask"]
ok = (r["result"] == "pass" and m["faults"] == 0 and m["ties"] == m["differences"]
      and len(m["diffs"]) == m["differences"]
      and all(d["kind"] == "tie" and abs(d["gap"]) <= 0.05 for d in m["diffs"])
      and r["dtype"] == "bf16" and r["out"]["verdict"] == "ok")
sys.exit(0 if ok else 1)' "$T/s2.json"; then
        ok "JSON report of s2"
    else
        cp "$T/s2.json" "$T/log"
        bad "JSON report of s2"
    fi

    # ---- [N, H, d] layout with a batch dimension, and .npy directories
    $DOC nhd "$D/s6.in.safetensors" "$D/s6.angelslim.safetensors" "$T/nhd_in.safetensors" "$T/nhd_gpu.safetensors"
    expect 0 "--layout nhd with batch 1 passes" "RESULT: PASS" -- \
        "$STEM" check --layout nhd "$T/nhd_in.safetensors" "$T/nhd_gpu.safetensors"
    expect 2 "nhd files read as hnd are bad input" "" -- \
        "$STEM" check "$T/nhd_in.safetensors" "$T/nhd_gpu.safetensors"
    $DOC npydir "$D/s2.in.safetensors" "$D/s2.angelslim.safetensors" "$T/npy"
    expect 0 ".npy directory (one path) passes, dtype from metadata.json" \
        "GPU dtype bf16 \(from GPU metadata\)" -- "$STEM" check "$T/npy"

    # ---- tools/stem_dump.py writes what stem check reads
    expect 0 "tools/stem_dump.py round trip" "" -- \
        $PY tests/python/test_stem_dump.py "$STEM"
fi

# ---- stem explain
expect 0 "explain s2 head 1 qblock 67" "budget" -- \
    "$STEM" explain "$D/s2.in.safetensors" --head 1 --qblock 67
expect 2 "explain: head out of range" "head" -- \
    "$STEM" explain "$D/s2.in.safetensors" --head 9 --qblock 0

# ---- stem mask
expect 0 "mask picture" "" -- "$STEM" mask "$D/s2.angelslim.safetensors" -o "$T/m.png" --head 1
expect 0 "mask diff picture" "" -- \
    "$STEM" mask "$D/s2.angelslim.safetensors" --diff "$D/s2.in.safetensors" -o "$T/d.png" --head 1
expect 0 "logit heat map" "" -- "$STEM" mask "$D/s2.angelslim.safetensors" --logits -o "$T/l.png"
expect 2 "mask: file without a mask" "mask" -- "$STEM" mask "$D/s2.in.safetensors" -o "$T/x.png"
[ ! -e "$T/x.png" ] && ok "no picture written on error" || bad "no picture written on error"

echo "check: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
