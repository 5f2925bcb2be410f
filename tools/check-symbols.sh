#!/bin/sh
# check-symbols.sh LIB.so [HEADER] - every symbol the shared library exports
# (nm -D, defined symbols) must start with stem_, and every function HEADER
# (default include/stem.h) declares STEM_API must be exported.  Prints the
# offenders and exits 1 if there is any; exits 2 if the library cannot be
# read.
set -u
lib=${1:-build/libstem.so}
header=${2:-$(dirname "$0")/../include/stem.h}
if [ ! -r "$lib" ]; then
    echo "check-symbols: cannot read '$lib'" >&2
    exit 2
fi
syms=$(nm -D --defined-only "$lib") || { echo "check-symbols: nm failed on $lib" >&2; exit 2; }
# symbol type letters of code and data; the names alone, without versions
exported=$(printf '%s\n' "$syms" | awk 'NF >= 3 && $2 ~ /^[TtDdBbRrVvWwiu]$/ { print $3 }' | sed 's/@.*//')
count=$(printf '%s\n' "$exported" | grep -c . || true)
bad=$(printf '%s\n' "$exported" | grep -v '^stem_' | grep . || true)
if [ "$count" -eq 0 ]; then
    echo "check-symbols: $lib exports nothing" >&2
    exit 1
fi
if [ -n "$bad" ]; then
    echo "check-symbols: $lib exports symbols without the stem_ prefix:" >&2
    printf '  %s\n' $bad >&2
    exit 1
fi
missing=""
for f in $(sed -n 's/^STEM_API[^(]*[ *]\(stem_[a-z0-9_]*\)(.*/\1/p' "$header"); do
    printf '%s\n' "$exported" | grep -qx "$f" || missing="$missing $f"
done
if [ -n "$missing" ]; then
    echo "check-symbols: $lib does not export:$missing" >&2
    exit 1
fi
echo "check-symbols: $lib: $count exported symbols, all stem_*, every STEM_API function among them"
exit 0
