#!/bin/sh
# Cross-build stem for 64-bit Arm and run the NEON kernel and determinism
# tests under qemu-user.
#
#   sh tools/cross-test.sh            install what is missing, build, run
#   BUILD=build-aarch64 sh tools/cross-test.sh
#
# Installs (when missing, as root or through sudo): gcc-aarch64-linux-gnu,
# qemu-user and the arm64 multiarch development packages stem links
# against.  Exits non-zero if the build or any test fails.
set -e
BUILD=${BUILD:-build-aarch64}
CROSS=aarch64-linux-gnu-
SYSROOT=/usr/aarch64-linux-gnu
TESTS=${TESTS:-"test_kernels test_determinism"}

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=""
for p in gcc-aarch64-linux-gnu qemu-user; do
    installed "$p" || missing="$missing $p"
done
ARM_PKGS="libc6-dev:arm64 libsleef-dev:arm64 libcmocka-dev:arm64 libcjson-dev:arm64 libpng-dev:arm64 libgomp1:arm64"
for p in $ARM_PKGS; do
    installed "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "cross-test: installing:$missing" >&2
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $SUDO dpkg --add-architecture arm64
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# The test programs run here (all of them with TESTS="$(cd tests && ls
# test_*.c | sed 's/\.c$//')"); `make ... tests` would also build the CLI.
bins=""
for t in $TESTS; do bins="$bins $BUILD/tests/$t"; done
make --no-print-directory -j"$(nproc)" CROSS=$CROSS BUILD="$BUILD" $bins

# Loader and libraries both from the arm64 multiarch packages (-L /): the
# cross sysroot's loader ($SYSROOT, libc6-arm64-cross) may be another glibc
# build than the multiarch libc6:arm64, and that mix hangs in pthread_create.
QEMU="qemu-aarch64 -L /"
export QEMU_LD_PREFIX=/
# full size by default (about 4 minutes on 2 cores); STEM_TEST_QUICK=1
# runs the determinism test on a third of its tokens
export STEM_TEST_QUICK=${STEM_TEST_QUICK:-0}
fail=0
for t in $TESTS; do
    bin="$BUILD/tests/$t"
    echo "== $t (aarch64, qemu)"
    if STEM_TEST_RUNNER="$QEMU" $QEMU "$bin"; then
        echo "== $t: PASS"
    else
        echo "== $t: FAIL"
        fail=1
    fi
done
exit $fail
