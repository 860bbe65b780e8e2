#!/bin/sh
# Installs the Debian packages that only `make bench` needs, when one is
# missing: the peers' own servers and official C clients, and gnuplot for
# the plot in docs/BENCHMARKS.md. Kept apart from scripts/deps.sh so that
# `make check` stays lean. Run as root (or with sudo available).
set -e

# redis-server, libhiredis-dev: Redis pub/sub and its C client.
# nats-server, libnats-dev: NATS core and its C client (cnats).
# gnuplot-nox: draws docs/bench-fanout.png (no X needed).
pkgs="redis-server libhiredis-dev nats-server libnats-dev gnuplot-nox"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps-bench: installing$missing"
if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1; then
	sudo="sudo"
else
	echo "deps-bench: missing packages:$missing; install them as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d: Debian starts a package's service on install; the bench
# starts its own servers on ephemeral loopback ports and wants no system
# instance running beside them.
prc=/usr/sbin/policy-rc.d
made_prc=0
if [ ! -e $prc ] && [ -z "$sudo" ]; then
	printf '#!/bin/sh\nexit 101\n' >$prc && chmod 755 $prc && made_prc=1
fi
$sudo apt-get install -y -qq --no-install-recommends $missing
[ $made_prc -eq 1 ] && rm -f $prc
exit 0
