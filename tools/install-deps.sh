#!/bin/sh
# Install the Debian packages stem needs, if any are missing; with the
# argument `test`, also those only its tests need.
# Runs apt-get as root, or through sudo when not root.
set -e
PKGS="make gcc libc6-dev libsleef-dev libcjson-dev libcmocka-dev libopenblas-dev libpng-dev pkg-config valgrind clang libclang-rt-14-dev libomp-14-dev binutils python3 python3-numpy python3-pytest python3-venv python3-pip python3-setuptools libopenmpi-dev openmpi-bin"
missing=""
# `make test` (install-deps.sh test) also installs Debian's PyTorch, so that
# the Python package's torch paths are tested: python3-torch 1.13 and its
# libraries (168 packages), about 48 MB to download and 605 MB installed,
# 90 s on a Debian 12 machine with the other packages already there.
if [ "${1:-}" = test ]; then
    PKGS="$PKGS python3-torch"
fi
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "stem: installing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
