#!/bin/sh
# Install the Debian packages stem needs, if any are missing.
# Runs apt-get as root, or through sudo when not root.
set -e
PKGS="make gcc libc6-dev libsleef-dev libcjson-dev libcmocka-dev libopenblas-dev libpng-dev pkg-config valgrind clang libclang-rt-14-dev libomp-14-dev binutils python3 python3-numpy python3-pytest python3-venv python3-pip python3-setuptools libopenmpi-dev openmpi-bin"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "stem: installing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
