#!/bin/sh
# test_docs.sh BUILD - the docs' code blocks run as written.
#
# Runs every block of README.md and docs/*.md (ALGORITHM.md has its own
# test) that a reader is told to run
# (tests/cli/doc_blocks.py says how blocks are marked), then the same
# runner on a document of broken examples, which must fail block by block,
# checks that CI (.ci/run) runs the README's test command, and that the
# option lists of docs/CHECKING.md and docs/CLI.md name exactly the options
# of stem check --help and stem run --help.
# Ends with "docs: N passed, M failed"; exits 1 if any failed.
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL $*"
}
if [ ! -x /usr/bin/python3 ]; then
    echo "docs: /usr/bin/python3 missing (tools/install-deps.sh)"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/stem_docs_test.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM

# 1. the real documents
if /usr/bin/python3 tests/cli/doc_blocks.py "$BUILD" >"$T/real.log" 2>&1; then
    ok
    tail -n 1 "$T/real.log"
else
    bad "a code block of the docs does not run as written"
    grep -v '^ok ' "$T/real.log"
fi

# 2. broken examples are caught, each one where it is
cat >"$T/broken.md" <<'DOC'
A shell example whose command fails:

```sh
stem info >/dev/null
stem run no-such-file.safetensors -o x.safetensors
```

A C example that calls the library wrongly:

```c
#include <stem.h>
int main(void)
{
    stem_params p;
    stem_params_init(&p, STEM_PROFILE_ANGELSLIM);
    p.alpha = 2.0;
    return stem_params_validate(&p) == STEM_OK ? 0 : 1;
}
```

A C example that does not compile:

```c
int main(void) { return stem_no_such_function(); }
```

A Python example that raises:

```python
import stem_attn
stem_attn.budget(0)
```

A block with no info string:

```
stem info
```

A link to [a missing page](docs/NO_SUCH_PAGE.md).

A block that is not run:

```sh no-run
exit 1
```
DOC
/usr/bin/python3 tests/cli/doc_blocks.py "$BUILD" "$T/broken.md" >"$T/broken.log" 2>&1
rc=$?
if [ "$rc" -eq 1 ]; then ok; else bad "broken examples: exit $rc, expected 1"; fi
# (python blocks are skipped for a sanitizer build)
py='broken.md:29 python'
nm -D "$BUILD/libstem.so" 2>/dev/null | grep -q '__asan_init\|__tsan_init' && py='broken.md:29 .python with a sanitizer'
for where in 'broken.md:3 sh' 'broken.md:10 c' 'broken.md:23 c' "$py" \
             'broken.md:36: code block without' \
             'link to missing file docs/NO_SUCH_PAGE.md'; do
    if grep -Eq "^(FAIL|SKIP) .*$where" "$T/broken.log"; then
        ok
    else
        bad "broken example not reported: $where"
    fi
done
if grep -q 'broken.md:4[4-9]' "$T/broken.log"; then
    bad "a no-run block was run"
else
    ok
fi
[ "$fail" -eq 0 ] || sed 's/^/    /' "$T/broken.log"

# 3. CI runs the README's test command
cmd='sh tools/install-deps.sh \&\& make test'
if grep -q "^$cmd" README.md && grep -q "^$cmd" .ci/run; then
    ok
else
    bad "README.md and .ci/run do not both run '$cmd'"
fi

# 4. the option lists of the docs are the tools' own: the names in
# CHECKING.md's and CLI.md's option blocks equal those of --help
opts() {    # option names at the start of lines, before the description
    sed -n 's/^ *\(--.*\)/\1/p' | sed 's/   *.*//' | grep -oE -- '--[a-z0-9-]+' | sort -u
}
section() { # the lines of section "## $2" of file $1
    awk -v h="## $2" '$0 == h { on = 1; next } /^## / { on = 0 } on' "$1"
}
if [ -x "$BUILD/stem" ]; then
    section docs/CLI.md "Parameter options" | opts >"$T/param.doc"
    "$BUILD/stem" run --help 2>&1 | sed -n '/^Parameter options/,$p' | opts >"$T/param.help"
    if [ -s "$T/param.help" ] && cmp -s "$T/param.doc" "$T/param.help"; then
        ok
    else
        bad "docs/CLI.md's parameter options differ from stem run --help:"
        diff "$T/param.doc" "$T/param.help" | sed -n 's/^\([<>]\)/    \1/p'
    fi
    { section docs/CHECKING.md "Options"; cat "$T/param.doc"; } | opts | sort -u >"$T/check.doc"
    "$BUILD/stem" check --help 2>&1 | opts >"$T/check.help"
    if [ -s "$T/check.help" ] && cmp -s "$T/check.doc" "$T/check.help"; then
        ok
    else
        bad "docs/CHECKING.md's options differ from stem check --help (< docs, > help):"
        diff "$T/check.doc" "$T/check.help" | sed -n 's/^\([<>]\)/    \1/p'
    fi
fi

echo "docs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
