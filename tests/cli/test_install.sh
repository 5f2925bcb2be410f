#!/bin/sh
# test_install.sh BUILD - `make install PREFIX=...` of a build, then a small
# program compiled with `pkg-config --cflags --libs stem` against the
# installed tree, linked once to the shared library (soname libstem.so.N)
# and once statically, and run -- without LD_LIBRARY_PATH: stem.pc carries
# an rpath for a prefix other than /usr, and none for /usr (checked with a
# DESTDIR install).  Also checks the installed files, the
# soname, the pkg-config version against STEM_VERSION_STRING, and the
# exported symbols (tools/check-symbols.sh), and that the installed Python
# package loads the installed library.  Ends with
# "install: N passed, M failed"; exits 1 if any failed.
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
T=$(mktemp -d "${TMPDIR:-/tmp}/stem_install.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
P="$T/prefix"
CC=${CC:-cc}
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL $*"
}
finish() {
    echo "install: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}

for tool in pkg-config readelf "$CC"; do
    command -v "$tool" >/dev/null 2>&1 || { bad "$tool not found (tools/install-deps.sh)"; finish; }
done

if make --no-print-directory install BUILD="$BUILD" PREFIX="$P" >"$T/install.log" 2>&1; then
    ok
else
    bad "make install BUILD=$BUILD PREFIX=$P"
    sed 's/^/    /' "$T/install.log" | tail -n 10
    finish
fi

major=$(sed -n 's/^#define STEM_VERSION_MAJOR \([0-9]*\)/\1/p' include/stem.h)
version=$(sed -n 's/^#define STEM_VERSION_STRING "\(.*\)"/\1/p' include/stem.h)
for f in include/stem.h include/stem_check.h lib/libstem.a "lib/libstem.so.$major" lib/libstem.so \
         lib/pkgconfig/stem.pc bin/stem; do
    if [ -e "$P/$f" ]; then ok; else bad "installed file $f missing"; fi
done
soname=$(readelf -d "$P/lib/libstem.so.$major" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" = "libstem.so.$major" ]; then ok; else bad "soname '$soname', expected libstem.so.$major"; fi
if [ "$(readlink "$P/lib/libstem.so")" = "libstem.so.$major" ]; then ok; else bad "lib/libstem.so is not a link to libstem.so.$major"; fi

export PKG_CONFIG_PATH="$P/lib/pkgconfig"
pcver=$(pkg-config --modversion stem 2>&1)
if [ "$pcver" = "$version" ]; then ok; else bad "pkg-config --modversion stem: '$pcver', expected '$version'"; fi
for h in include/stem.h include/stem_check.h; do
    if sh tools/check-symbols.sh "$P/lib/libstem.so.$major" "$h" >"$T/sym.log" 2>&1; then
        ok
    else
        bad "exported symbols ($h)"
        sed 's/^/    /' "$T/sym.log"
    fi
done

# A build under sanitizers needs their runtime in the program too.
SANFLAGS=""
if nm -D "$P/lib/libstem.so.$major" 2>/dev/null | grep -q '__asan_init'; then
    SANFLAGS="-fsanitize=address,undefined"
fi

cat >"$T/tiny.c" <<'PROG'
#include <stdio.h>
#include <string.h>
#include <stem.h>

#if !defined(STEM_VERSION_MAJOR) || !defined(STEM_VERSION_MINOR) || \
    !defined(STEM_VERSION_PATCH) || !defined(STEM_VERSION_STRING)
#error "version macros missing"
#endif

int main(void)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", STEM_VERSION_MAJOR,
             STEM_VERSION_MINOR, STEM_VERSION_PATCH);
    if (strcmp(stem_version(), STEM_VERSION_STRING) != 0 ||
        strcmp(want, STEM_VERSION_STRING) != 0) {
        fprintf(stderr, "version %s, header %s (%s)\n", stem_version(),
                STEM_VERSION_STRING, want);
        return 1;
    }
    enum { N = 300, D = 4 };
    static float q[2 * N * D], k[N * D], v[N * D], out[2 * N * D];
    for (int i = 0; i < 2 * N * D; i++)
        q[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    for (int i = 0; i < N * D; i++) {
        k[i] = (float)((i * 53) % 13) / 13.0f - 0.5f;
        v[i] = (float)(i % D);
    }
    stem_params p;
    if (stem_params_init(&p, STEM_PROFILE_ANGELSLIM) != STEM_OK)
        return 2;
    stem_tensor tq = stem_tensor_hnd(q, STEM_F32, 2, N, D);
    stem_tensor tk = stem_tensor_hnd(k, STEM_F32, 1, N, D);
    stem_tensor tv = stem_tensor_hnd(v, STEM_F32, 1, N, D);
    stem_tensor to = stem_tensor_hnd(out, STEM_F32, 2, N, D);
    stem_status st = stem_prefill(&p, &tq, &tk, &tv, &to, NULL, NULL, NULL);
    if (st != STEM_OK) {
        fprintf(stderr, "stem_prefill: %s\n", stem_strerror(st));
        return 3;
    }
    /* every v row is (0, 1, 2, 3): any convex combination is too */
    for (int i = 0; i < 2 * N * D; i++)
        if (out[i] < (float)(i % D) - 1e-5f || out[i] > (float)(i % D) + 1e-5f) {
            fprintf(stderr, "out[%d] = %g\n", i, out[i]);
            return 4;
        }
    printf("stem %s ok\n", stem_version());
    return 0;
}
PROG

# shellcheck disable=SC2046
if $CC -std=c11 $SANFLAGS -o "$T/tiny" "$T/tiny.c" $(pkg-config --cflags --libs stem) >"$T/cc.log" 2>&1; then
    ok
    if env -u LD_LIBRARY_PATH "$T/tiny" >"$T/run.log" 2>&1 &&
        grep -qx "stem $version ok" "$T/run.log"; then
        ok
    else
        bad "program linked to the shared library failed without LD_LIBRARY_PATH"
        sed 's/^/    /' "$T/run.log"
    fi
    if readelf -d "$T/tiny" | grep -E '\((RUNPATH|RPATH)\)' | grep -qF "[$P/lib]"; then
        ok
    else
        bad "program has no run path to $P/lib"
    fi
    if env -u LD_LIBRARY_PATH ldd "$T/tiny" 2>/dev/null | grep -q "libstem.so.$major => $P/lib/libstem.so.$major"; then
        ok
    else
        bad "the loader does not find $P/lib/libstem.so.$major"
    fi
    needed=$(readelf -d "$T/tiny" | sed -n 's/.*(NEEDED).*\[\(libstem[^]]*\)\]/\1/p')
    if [ "$needed" = "libstem.so.$major" ]; then ok; else bad "program NEEDED '$needed'"; fi
else
    bad "cc tiny.c \$(pkg-config --cflags --libs stem)"
    sed 's/^/    /' "$T/cc.log" | head -n 10
fi

# PREFIX=/usr: the loader's own directory, no rpath in stem.pc.
if make --no-print-directory install BUILD="$BUILD" PREFIX=/usr DESTDIR="$T/dest" >"$T/install_usr.log" 2>&1; then
    if grep -q '^Libs: -L${libdir} -lstem$' "$T/dest/usr/lib/pkgconfig/stem.pc"; then
        ok
    else
        bad "stem.pc for PREFIX=/usr: $(grep '^Libs:' "$T/dest/usr/lib/pkgconfig/stem.pc")"
    fi
else
    bad "make install PREFIX=/usr DESTDIR=$T/dest"
    sed 's/^/    /' "$T/install_usr.log" | tail -n 10
fi

# The Python package in PYTHONDIR (PREFIX/lib/python3/dist-packages) finds
# PREFIX/lib/libstem.so with no environment; stem_dump.py beside it.  Not
# for a sanitizer build: python3 lacks the sanitizer's runtime.
if [ -z "$SANFLAGS" ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    got=$(cd "$T" && env -u STEM_LIBRARY PYTHONPATH="$P/lib/python3/dist-packages" \
        /usr/bin/python3 -c 'import stem_attn, stem_dump; print(stem_attn.library_path())' 2>&1)
    case "$got" in
    "$P/lib/libstem.so"*) ok ;;
    *) bad "installed stem_attn does not load $P/lib/libstem.so: $got" ;;
    esac
fi

# Static: the archive plus the private libraries of the .pc file.
# shellcheck disable=SC2046
if $CC -std=c11 $SANFLAGS -o "$T/tiny_static" "$T/tiny.c" $(pkg-config --cflags stem) \
    "$P/lib/libstem.a" $(pkg-config --libs-only-other --libs-only-l --static stem | sed 's/-lstem//') \
    >"$T/cc_static.log" 2>&1; then
    ok
    if "$T/tiny_static" >"$T/run_static.log" 2>&1 && grep -qx "stem $version ok" "$T/run_static.log"; then
        ok
    else
        bad "statically linked program failed"
        sed 's/^/    /' "$T/run_static.log"
    fi
else
    bad "static link against libstem.a with pkg-config --static"
    sed 's/^/    /' "$T/cc_static.log" | head -n 10
fi
finish
