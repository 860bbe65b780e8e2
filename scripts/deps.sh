#!/bin/sh
# Installs the Debian packages a part of ispd needs, when one is missing;
# does nothing when everything is there. Run as root, or with sudo.
#
#	scripts/deps.sh			what `make`, `make check` and
#					`make demo` need
#	scripts/deps.sh bench		and the peers of `make bench`
#	scripts/deps.sh bench-sip, kamailio
#					the same (Kamailio, for the SIP
#					benchmark and the Kamailio module's
#					tests, is in the default set)
#	scripts/deps.sh asterisk	and what building Asterisk 22 needs
#					(scripts/asterisk.sh)
#	scripts/deps.sh package		and what building, checking and
#					installing the Debian packages needs
#					(make check-package)
#
# docs/DEPENDENCIES.md says why each package is there.
set -e

# Build and tests. build-essential: gcc and make (its libgcc-12-dev
# brings the ASan and TSan runtimes). libcmocka-dev: the test framework.
# clang, libclang-rt-14-dev: libFuzzer. valgrind: memcheck over ispd.
# libssl-dev, openssl: TLS and digests, test certificates.
# libsofia-sip-ua-dev, pkg-config: the SIP stack of isp-registrar and
# isp-locator. sip-tester (SIPp), baresip-core: the SIP peers of the tests.
# kamailio: the Kamailio that loads the ispd module in its tests (and
# kamcmd to ask it). systemd: systemd-analyze, which checks the units of
# examples/systemd. mandoc: checks the man pages (tests/cli/test_man.sh).
# libmicrohttpd-dev (and its runtime, libmicrohttpd12):
# the HTTP of the --metrics endpoints. prometheus (promtool with it), curl,
# jq: the metrics test scrapes, checks and queries them.
pkgs="build-essential libcmocka-dev clang libclang-rt-14-dev valgrind
    libssl-dev openssl libsofia-sip-ua-dev pkg-config sip-tester
    baresip-core kamailio systemd libmicrohttpd-dev libmicrohttpd12
    prometheus curl jq mandoc"
case "${1:-check}" in
check)		;;
bench)		pkgs="$pkgs redis-server libhiredis-dev nats-server libnats-dev
		    gnuplot-nox" ;;
bench-sip|kamailio)	;;
# Asterisk's own build needs: libedit (its console), jansson, libxml2,
# sqlite3 (astdb), uuid, OpenSSL; bzip2 and patch unpack and patch its
# bundled pjproject.
# The Debian packages: debhelper and dpkg-dev build them (fakeroot for
# dpkg-buildpackage), lintian checks them, man-db's man finds their
# pages once installed.
package)	pkgs="$pkgs debhelper dpkg-dev fakeroot lintian man-db" ;;
asterisk)	pkgs="$pkgs libedit-dev libjansson-dev libxml2-dev libsqlite3-dev
		    uuid-dev bzip2 patch" ;;
*)		echo "usage: scripts/deps.sh [check|bench|bench-sip|kamailio|asterisk|package]" >&2
		exit 2 ;;
esac

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
	    grep -q '^install ok installed$' || missing="$missing $p"
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
# Servers among the packages (redis, nats, kamailio) must not start as
# system services on install: the benchmarks start their own, on
# loopback. policy-rc.d answering 101 tells Debian's scripts so.
prc=/usr/sbin/policy-rc.d
made_prc=0
if [ -z "$sudo" ] && [ ! -e $prc ]; then
	printf '#!/bin/sh\nexit 101\n' >$prc && chmod 755 $prc && made_prc=1
fi
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing || {
	[ $made_prc -eq 1 ] && rm -f $prc
	exit 1
}
[ $made_prc -eq 1 ] && rm -f $prc
exit 0
