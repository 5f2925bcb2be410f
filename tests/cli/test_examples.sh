#!/bin/sh
# The programs of examples/ build and run: each exits 0 and prints its
# report (the README's chunked-prefill example among them).
BUILD=${1:-build}
pass=0; fail=0
for exe in "$BUILD"/examples/*; do
    [ -x "$exe" ] || continue
    name=$(basename "$exe")
    if out=$("$exe" 2>&1) && [ -n "$out" ]; then
        echo "ok   $name"; pass=$((pass + 1))
    else
        echo "FAIL $name"; echo "$out"; fail=$((fail + 1))
    fi
done
# the chunked example reports both chunks, the second over the whole history
if "$BUILD"/examples/chunked_prefill 2>/dev/null | grep -q "1024 queries over 2048 keys"; then
    echo "ok   chunked_prefill attends the second chunk to the whole history"; pass=$((pass + 1))
else
    echo "FAIL chunked_prefill second chunk"; fail=$((fail + 1))
fi
echo "examples: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
