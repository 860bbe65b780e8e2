#!/bin/sh
# Prepares the Kamailio 5.6.3 sources the ispd module is built against:
# unpacked from $ISP_VENDOR_DIR (default ../shared/vendor beside the
# repository), checked against its SHA256SUMS, configured once (make cfg)
# into $ISP_CACHE_DIR/kamailio-5.6.3 (default /var/cache/ispd), and the
# compile definitions of that configuration written to
# kamailio-5.6.3/ispd-cdefs. Debian 12's kamailio package is 5.6.3 and
# was built with the same definitions (kamailio -V shows them); the core
# refuses a module whose version or flags differ.
#
#	scripts/kamailio.sh		prepare when needed; prints the
#					source directory
#	scripts/kamailio.sh --if-sources
#					the same, but without the sources say
#					so and print nothing (exit 0), unless
#					ISP_REQUIRE_KAMAILIO=1 (CI)
set -eu

KAM_VERSION=5.6.3
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${ISP_CACHE_DIR:-/var/cache/ispd}
if [ -z "${ISP_VENDOR_DIR:-}" ] && [ -d "$top/../shared/vendor" ]; then
	ISP_VENDOR_DIR=$top/../shared/vendor
fi
src=$cache/kamailio-$KAM_VERSION
tarball=kamailio-$KAM_VERSION.tar.gz

say() { echo "kamailio.sh: $*" >&2; }

if [ -f "$src/ispd-cdefs" ]; then
	echo "$src"
	exit 0
fi
if [ -z "${ISP_VENDOR_DIR:-}" ] || [ ! -f "$ISP_VENDOR_DIR/$tarball" ]; then
	if [ "${1:-}" = --if-sources ] && [ "${ISP_REQUIRE_KAMAILIO:-0}" != 1 ]; then
		say "no $tarball (set ISP_VENDOR_DIR): the Kamailio module is not built"
		exit 0
	fi
	say "no $tarball in ${ISP_VENDOR_DIR:-\$ISP_VENDOR_DIR (unset)}"
	exit 1
fi
say "verifying $tarball in $ISP_VENDOR_DIR"
(cd "$ISP_VENDOR_DIR" && grep " $tarball\$" SHA256SUMS | sha256sum -c --quiet -) || {
	say "$tarball does not match SHA256SUMS"; exit 1; }
mkdir -p "$cache"
rm -rf "$src.tmp"
mkdir -p "$src.tmp"
tar -C "$src.tmp" -xzf "$ISP_VENDOR_DIR/$tarball"
say "make cfg (log: $cache/kamailio-cfg.log)"
# Debian's flags (kamailio -V): the defaults of 5.6.3 and TLS_HOOKS.
if ! make -C "$src.tmp/kamailio-$KAM_VERSION" cfg TLS_HOOKS=1 >"$cache/kamailio-cfg.log" 2>&1 ||
    ! make -s -C "$src.tmp/kamailio-$KAM_VERSION/src" printcdefs \
    >"$src.tmp/cdefs" 2>>"$cache/kamailio-cfg.log"; then
	say "make cfg failed: $(tail -n 3 "$cache/kamailio-cfg.log")"
	exit 1
fi
rm -rf "$src"
mv "$src.tmp/kamailio-$KAM_VERSION" "$src"
# Quoted for the shell that make runs: '-DCOMPILER="gcc 12.2.0"'.
grep -- '-DNAME=' "$src.tmp/cdefs" | tail -n 1 |
    sed "s/\(-D[A-Za-z0-9_]*\)=\"\([^\"]*\)\"/'\1=\"\2\"'/g" >"$src/ispd-cdefs"
# And the one that comes through CFLAGS (TLS_PTHREAD_MUTEX_SHARED).
make -s -C "$src/src" printvar v=CC_PMUTEX_OPTS 2>/dev/null |
    grep -o -- '-D[A-Z_]*' >>"$src/ispd-cdefs" || true
rm -rf "$src.tmp"
echo "$src"
