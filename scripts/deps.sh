#!/bin/sh
# Installs the Debian packages that building and testing ispd need, when
# one is missing. Run as root (or with sudo available); does nothing when
# everything is there.
set -e

# build-essential: gcc and make. libcmocka-dev: the test framework.
# clang, libclang-rt-14-dev: libFuzzer for the fuzz targets.
pkgs="build-essential libcmocka-dev clang libclang-rt-14-dev"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1; then
	sudo="sudo"
else
	echo "deps: missing packages:$missing; install them as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends $missing
