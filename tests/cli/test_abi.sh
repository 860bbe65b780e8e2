#!/bin/bash
# libisp's ABI as include/isp.h states it, read off the built shared
# library with readelf: every public function exported exactly once,
# under a version of src/lib/libisp.map, except isp_options_init() and
# isp_new(), exported three times (LIBISP_1, LIBISP_1.1, and LIBISP_1.2
# as the default); nothing else exported; the newest version node is
# the one ISP_VERSION_MAJOR.ISP_VERSION_MINOR of isp.h names, and
# isp_version() is in it. Prints TAP.
#
# Usage: tests/cli/test_abi.sh BUILD_DIR
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SO=$BUILD/libisp.so
AR=$BUILD/libisp.a
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }

if [ ! -f "$SO" ] || [ ! -f "$AR" ]; then
	# The sanitizer build makes no shared library.
	echo "1..1"
	echo "ok 1 - abi # SKIP $SO or $AR is not built"
	exit 0
fi
command -v readelf >/dev/null && command -v nm >/dev/null || { echo "Bail out! readelf and nm (binutils) are needed"; exit 1; }

# NAME@VERSION or NAME@@VERSION per exported function of the library.
dyn=$(readelf --dyn-syms -W "$SO" | awk '$4 == "FUNC" && $5 == "GLOBAL" && $7 != "UND" { print $8 }' | sort)
# The public functions: those the static library defines with a name
# starting isp_ (its other globals are private, hidden from the .so).
# (Its compatibility versions, isp_new@LIBISP_1 and such, are named so
# there too.)
api=$(nm -g --defined-only "$AR" 2>/dev/null | awk '$2 == "T" && $3 ~ /^isp_[a-z0-9_]*$/ { print $3 }' | sort -u)

missing= twice= versions=
for f in $api; do
	v=$(grep -c "^$f@" <<<"$dyn")
	case $f in
	isp_new|isp_options_init)
		[ "$(grep -E "^$f@" <<<"$dyn" | tr '\n' ' ')" = "$(printf '%s\n' "$f@LIBISP_1" "$f@LIBISP_1.1" "$f@@LIBISP_1.2" | sort | tr '\n' ' ')" ] ||
		    versions="$versions $f:$(grep -E "^$f@" <<<"$dyn" | tr '\n' ',')" ;;
	*)
		[ "$v" -eq 0 ] && missing="$missing $f"
		[ "$v" -gt 1 ] && twice="$twice $f" ;;
	esac
done
if [ -n "$api" ] && [ -z "$missing$twice" ]; then
	ok "each of the $(wc -w <<<"$api") public functions is exported once"
else
	not_ok "public functions exported once" "missing:${missing:- none}" "more than once:${twice:- none}"
fi
if [ -z "$versions" ]; then
	ok "isp_new and isp_options_init are exported under LIBISP_1, LIBISP_1.1 and, as the default, LIBISP_1.2"
else
	not_ok "isp_new and isp_options_init versions" "$versions"
fi

other=$(grep -v '^isp_' <<<"$dyn" | tr '\n' ' ')
if [ -z "$other" ]; then
	ok "nothing but isp_* is exported"
else
	not_ok "nothing but isp_* is exported" "also: $other"
fi

major=$(sed -n 's/^#define ISP_VERSION_MAJOR[[:space:]]*\([0-9]*\)$/\1/p' "$ROOT/include/isp.h")
minor=$(sed -n 's/^#define ISP_VERSION_MINOR[[:space:]]*\([0-9]*\)$/\1/p' "$ROOT/include/isp.h")
newest=$(grep -oE '^LIBISP_[0-9.]+' "$ROOT/src/lib/libisp.map" | tail -n 1)
if [ -n "$major" ] && [ "$newest" = "LIBISP_$major.$minor" ] && grep -q "@@$newest\$" <<<"$dyn"; then
	ok "the newest version node, $newest, is isp.h's ISP_VERSION_MAJOR.MINOR, and exports a function"
else
	not_ok "version node and header agree" "isp.h: $major.$minor" "libisp.map newest: $newest" "exported: $(grep "@@$newest" <<<"$dyn")"
fi
# Each function added since 1.3 lives under the version that added it.
for fv in isp_version@@LIBISP_1.4 isp_flush@@LIBISP_1.5 isp_kick@@LIBISP_1.6 \
    isp_evict@@LIBISP_1.6 isp_drop@@LIBISP_1.6 isp_held@@LIBISP_1.6; do
	if grep -qx "$fv" <<<"$dyn"; then
		ok "$fv"
	else
		not_ok "$fv" "exported: $(grep "^${fv%@@*}@" <<<"$dyn")"
	fi
done

echo "1..$n"
[ "$failed" -eq 0 ]
