#!/bin/sh
# stem explain and stem budget: what they print agrees with itself and with
# the library (the mask rows with the kept counts, the budget column with
# stem budget, one row's online softmax steps with the library's lse), and
# bad arguments give exit 2 (1 for an unwritable picture) with a message.
BUILD=${1:-build}
STEM=$(cd "$BUILD" && pwd)/stem
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# exit status $1 and a stderr line matching $2 from the rest of the command
expect() {
    want=$1 pat=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" -eq "$want" ] && grep -q -- "$pat" "$T/err"; then
        ok "exit $want: $*"
    else
        bad "exit $rc (want $want, '$pat'): $*"
        cat "$T/err"
    fi
}

"$STEM" gen -o "$T/w.safetensors" --tokens 8192 --heads 2 --kv-heads 1 \
    --dim 16 --seed 3 || { echo "FAIL gen"; exit 1; }

# the head overview: 64 query blocks, each mask row as many '#' as kept
"$STEM" explain "$T/w.safetensors" --head 1 >"$T/head" || bad "explain --head 1"
awk '/^ +I +p +b +cands/ { on = 1; next }
     on && NF == 8 { rows++; n = gsub(/#/, "#", $8);
                     if (n != $6) { print "row " $1 ": " n " # but kept " $6; e++ }
                     if (length($8) != 64) { print "row " $1 ": width " length($8); e++ } }
     END { if (rows != 64) { print rows " rows"; e++ } exit e != 0 }' "$T/head" \
    && ok "explain: 64 mask rows, '#' counts equal the kept column" \
    || bad "explain: mask rows against the kept column"
# rows that drop blocks exist (the budget rule bites at 64 blocks)
awk '/^ +I +p +b +cands/ { on = 1; next } on && NF == 8 && $8 ~ /\./ { d++ }
     END { exit d == 0 }' "$T/head" && ok "explain: some rows drop blocks" \
    || bad "explain: no row drops a block"

# the b column is stem budget's angelslim column
"$STEM" budget --blocks 64 >"$T/budget" || bad "budget --blocks 64"
awk 'NR == FNR { if ($1 ~ /^[0-9]+$/ && NF == 5) b[$1] = $2; next }
     /^ +I +p +b +cands/ { on = 1; next }
     on && NF == 8 { if (b[$2] != $3) { print "p " $2 ": " $3 " vs " b[$2]; e++ } n++ }
     END { exit e != 0 || n != 64 }' "$T/budget" "$T/head" \
    && ok "explain's budgets equal stem budget's" \
    || bad "explain's budgets against stem budget"

# one row's steps end at the library's lse (first row, block edges, last row)
for r in 0 127 128 5000 8191; do
    "$STEM" explain "$T/w.safetensors" --head 1 --steps $r >"$T/steps" ||
        bad "explain --steps $r"
    if awk -F'[=;:] *' '/^lse = m \+ ln l/ { a = $3; b = $5; found = 1 }
            END { exit !(found && a == b) }' "$T/steps"; then
        ok "steps of row $r end at the library's lse"
    else
        bad "steps of row $r"; tail -n 2 "$T/steps"
    fi
done

# a row table lists every causal block once, ranks 1 .. p + 1
"$STEM" explain "$T/w.safetensors" --head 0 --qblock 40 --sort rank >"$T/row" ||
    bad "explain --qblock 40"
awk '$1 ~ /^[0-9]+$/ && NF >= 8 { n++; if ($5 != n) e++ }
     END { exit e != 0 || n != 41 }' "$T/row" \
    && ok "explain --qblock 40 --sort rank: ranks 1 .. 41" \
    || bad "explain --qblock 40 ranks"

# pictures
"$STEM" budget --tokens 32768 --png "$T/b.png" >/dev/null &&
    [ "$(head -c 8 "$T/b.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
    && ok "budget --png writes a PNG" || bad "budget --png"

expect 2 "give one of --blocks and --tokens" "$STEM" budget
expect 2 "give one of --blocks and --tokens" "$STEM" budget --blocks 4 --tokens 9
expect 2 "outside" "$STEM" budget --blocks 0
expect 2 "prompt_blocks" "$STEM" budget --blocks 16 --prompt-blocks 8
expect 2 "x.png" "$STEM" budget --blocks 16 --png "$T/no/such/dir/x.png"
expect 2 "has 2 query heads" "$STEM" explain "$T/w.safetensors" --head 2
expect 2 "has 64 query blocks" "$STEM" explain "$T/w.safetensors" --head 0 --qblock 64
expect 2 "has 8192 query rows" "$STEM" explain "$T/w.safetensors" --head 0 --steps 8192
expect 2 "exclude each other" "$STEM" explain "$T/w.safetensors" --head 0 --steps 1 --qblock 0
expect 2 "outside" "$STEM" explain "$T/w.safetensors" --head 0 --paper-min-k0 0
expect 2 "required" "$STEM" explain "$T/w.safetensors"

echo "explain/budget: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
