#!/bin/bash
# make check-package: the Debian packages built, checked and used as an
# operator would. In a temporary directory (so that nothing lands beside
# the repository) it copies the files git tracks, as they are in the
# working tree, runs `dpkg-buildpackage -b -us -uc`, runs lintian (an
# error fails), installs ispd, libisp1, libisp-dev and isp-sip on this
# machine with apt-get, and then checks the installed files: every
# program's --version, the configuration, an ispd started on loopback
# with ispctl announcing, dumping and watching, a C program built with
# `pkg-config --cflags --libs libisp` (shared and static) announcing and
# reading back, and every man page found by man -w. The packages are
# purged again whatever happens. Prints TAP, then "N passed, N failed".
#
# Needs root (it installs packages) and scripts/deps.sh package.
# KEEP=1 keeps the temporary directory (build log, lintian's output).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKGS="ispd libisp1 libisp-dev isp-sip"
VERSION=$(sed -n 's/^#define ISP_RELEASE[[:space:]]*"\(.*\)"$/\1/p' "$ROOT/src/common/version.h")
LIBVERSION=$(sed -n 's/^#define ISP_VERSION[[:space:]]*"\(.*\)"$/\1/p' "$ROOT/include/isp.h")

n=0 failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check()  { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
finish() { echo "1..$n"; echo "$((n - failed)) passed, $failed failed"; [ "$failed" -eq 0 ] && [ "$n" -gt 0 ]; exit $?; }
bail()   { not_ok "$1" "${@:2}"; finish; }

[ "$(id -u)" -eq 0 ] || bail "check-package installs packages: run it as root"
for p in $PKGS; do
	if dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'installed$'; then
		bail "package $p is installed already" \
		    "this test installs and purges it; purge it first: apt-get purge $PKGS"
	fi
done

tmp=$(mktemp -d /tmp/isp-package.XXXXXX)
pids=""
made_prc=0
prc=/usr/sbin/policy-rc.d
apt() {
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"
}
cleanup() {
	local p
	for p in $pids; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	# Every package this test installed goes, in every case.
	for p in $PKGS; do
		if dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'installed$'; then
			apt purge $PKGS >>"$tmp/purge.log" 2>&1
			break
		fi
	done
	[ "$made_prc" -eq 1 ] && rm -f "$prc"
	if [ "${KEEP:-0}" = 1 ]; then
		echo "# kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The tree: what git tracks, as the working tree has it.
mkdir -p "$tmp/src/ispd"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$ROOT" && git ls-files -z | while IFS= read -r -d '' f; do
		[ -e "$f" ] || [ -L "$f" ] || continue	# deleted, not committed
		printf '%s\0' "$f"
	done | xargs -0 cp -P --parents -t "$tmp/src/ispd")
else
	(cd "$ROOT" && tar cf - --exclude=./build --exclude=./.git .) |
	    tar xf - -C "$tmp/src/ispd"
fi

# Build.
if (cd "$tmp/src/ispd" && dpkg-buildpackage -b -us -uc) >"$tmp/build.log" 2>&1; then
	ok "dpkg-buildpackage -b -us -uc builds the packages"
else
	bail "dpkg-buildpackage -b -us -uc" "log: $tmp/build.log (KEEP=1 keeps it)" \
	    "$(tail -n 15 "$tmp/build.log")"
fi
changes=$(ls "$tmp"/src/ispd_*.changes 2>/dev/null | head -n 1)
debs=""
for p in $PKGS; do
	d=$(ls "$tmp/src/${p}_${VERSION}_"*.deb 2>/dev/null | head -n 1)
	check "package $p $VERSION is built" test -n "$d"
	debs="$debs $d"
done

# make install on its own, into a DESTDIR with another prefix, from the
# objects the package build left in build/deb.
dest=$tmp/destdir
if make -C "$tmp/src/ispd" --no-print-directory BUILD=build/deb PREFIX=/opt/isp \
    DESTDIR="$dest" install >"$tmp/install-make.log" 2>&1; then
	ok "make install PREFIX=/opt/isp DESTDIR=..."
	missing=""
	for f in sbin/ispd sbin/isp-registrar sbin/isp-locator bin/ispctl \
	    "lib/libisp.so.$LIBVERSION" lib/libisp.a include/isp.h include/isp_place.h \
	    lib/pkgconfig/libisp.pc share/man/man8/ispd.8 share/man/man5/ispd.conf.5 \
	    share/man/man1/ispctl.1 share/man/man3/libisp.3 \
	    share/man/man8/isp-registrar.8 share/man/man8/isp-locator.8; do
		[ -f "$dest/opt/isp/$f" ] || missing="$missing $f"
	done
	check "it installs every program, library, header and page${missing:+; missing:$missing}" \
	    test -z "$missing"
	check "libisp.so -> libisp.so.1 -> libisp.so.$LIBVERSION" \
	    test "$(readlink "$dest/opt/isp/lib/libisp.so")" = libisp.so.1 -a \
	    "$(readlink "$dest/opt/isp/lib/libisp.so.1")" = "libisp.so.$LIBVERSION"
	out=$(PKG_CONFIG_PATH=$dest/opt/isp/lib/pkgconfig pkg-config --cflags --libs libisp 2>&1 |
	    sed 's/ *$//')
	check "its libisp.pc says the prefix: $out" \
	    test "$out" = "-I/opt/isp/include -L/opt/isp/lib -lisp"
else
	not_ok "make install PREFIX=/opt/isp DESTDIR=..." "$(tail -n 15 "$tmp/install-make.log")"
fi

# lintian: errors fail; warnings are listed.
lintian --fail-on error --tag-display-limit 0 "$changes" >"$tmp/lintian.log" 2>&1
rc=$?
grep -v 'running with root privileges' "$tmp/lintian.log" >"$tmp/lintian.tags"
if [ "$rc" -eq 0 ] && ! grep -q '^E: ' "$tmp/lintian.tags"; then
	ok "lintian reports no error ($(grep -c '^W: ' "$tmp/lintian.tags") warnings)"
	sed -n 's/^W: /# lintian warning: /p' "$tmp/lintian.tags"
else
	not_ok "lintian reports no error" "exit $rc" "$(grep -v '^[IP]: ' "$tmp/lintian.tags")"
fi

# Install. No service starts: deb-systemd-invoke asks policy-rc.d, which
# says no (101) for as long as this test installs (and there is no
# systemd running as PID 1 on a test machine anyway).
if [ ! -e "$prc" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod 755 "$prc" && made_prc=1
fi
# shellcheck disable=SC2086
if apt install --no-install-recommends $debs >"$tmp/install.log" 2>&1; then
	ok "apt-get install of the four packages"
else
	bail "apt-get install of the four packages" "$(tail -n 15 "$tmp/install.log")"
fi
[ "$made_prc" -eq 1 ] && rm -f "$prc" && made_prc=0
check "no ispd started with the install" test -z "$(pgrep -x ispd -u ispd 2>/dev/null)"

# What the packages put where.
for prog in /usr/sbin/ispd /usr/bin/ispctl /usr/sbin/isp-registrar /usr/sbin/isp-locator; do
	out=$("$prog" --version 2>&1)
	case $(basename "$prog") in
	ispctl)	want="ispctl $VERSION (libisp $LIBVERSION)" ;;
	*)	want="$(basename "$prog") $VERSION" ;;
	esac
	if [ "$out" = "$want" ]; then
		ok "$prog --version: $out"
	else
		not_ok "$prog --version" "got: $out" "want: $want"
	fi
done
libdir=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)
check "$libdir/libisp.so.1 links to the real file libisp.so.$LIBVERSION" \
    test "$(readlink "$libdir/libisp.so.1")" = "libisp.so.$LIBVERSION" -a -f "$libdir/libisp.so.$LIBVERSION"
check "libisp-dev: libisp.so links to libisp.so.1, libisp.a, isp.h, isp_place.h" \
    test "$(readlink "$libdir/libisp.so")" = libisp.so.1 -a -f "$libdir/libisp.a" \
    -a -f /usr/include/isp.h -a -f /usr/include/isp_place.h
check "pkg-config --modversion libisp is $LIBVERSION" \
    test "$(pkg-config --modversion libisp 2>&1)" = "$LIBVERSION"
check "the postinst made the system user ispd" getent passwd ispd >/dev/null
for u in ispd isp-registrar isp-locator; do
	check "the unit $u.service is installed" test -f "/lib/systemd/system/$u.service"
done
if command -v systemd-analyze >/dev/null 2>&1; then
	out=$(systemd-analyze verify /lib/systemd/system/ispd.service \
	    /lib/systemd/system/isp-registrar.service /lib/systemd/system/isp-locator.service 2>&1)
	if [ -z "$out" ]; then
		ok "systemd-analyze verify: the installed units and their programs"
	else
		not_ok "systemd-analyze verify the installed units" "$out"
	fi
fi
out=$(/usr/sbin/ispd --check-config /etc/ispd/ispd.conf 2>&1)
check "the installed /etc/ispd/ispd.conf passes ispd --check-config" \
    test $? -eq 0
echo "# $out"

# The installed ispd on loopback, and the installed ispctl.
/usr/sbin/ispd --listen 127.0.0.1:0 --port-file "$tmp/port" 2>"$tmp/ispd.log" &
pids="$pids $!"
port=""
for _ in $(seq 100); do
	port=$(head -n 1 "$tmp/port" 2>/dev/null)
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || bail "the installed ispd listens" "$(cat "$tmp/ispd.log")"
ok "the installed ispd listens on 127.0.0.1:$port"
srv=127.0.0.1:$port
ispctl -s "$srv" --name pkg-check announce package.check k1 a=1 2>"$tmp/announce.log" &
pids="$pids $!"
dump=""
for _ in $(seq 100); do
	dump=$(ispctl -s "$srv" dump package.check 2>/dev/null)
	grep -q k1 <<<"$dump" && break
	sleep 0.05
done
check "ispctl announce, then ispctl dump shows the record" grep -q 'k1.*a=1' <<<"$dump"
ispctl -s "$srv" watch package.check >"$tmp/watch.out" 2>&1 &
wpid=$!
pids="$pids $wpid"
for _ in $(seq 100); do
	grep -q 'k1' "$tmp/watch.out" && break
	sleep 0.05
done
check "ispctl watch prints the snapshot" grep -q 'k1' "$tmp/watch.out"

# A program built against the installed libisp-dev, shared and static.
cp "$ROOT/tests/package/probe.c" "$tmp/probe.c"
# shellcheck disable=SC2046
if cc -Wall -Werror -o "$tmp/probe" "$tmp/probe.c" $(pkg-config --cflags --libs libisp) 2>"$tmp/cc.log"; then
	ok "cc \$(pkg-config --cflags --libs libisp) builds a program"
	# ldd may name it through /lib (usrmerge): compare the files.
	so=$(ldd "$tmp/probe" | awk '$1 == "libisp.so.1" { print $3 }')
	if [ -n "$so" ] && [ "$(readlink -f "$so")" = "$(readlink -f "$libdir/libisp.so.1")" ]; then
		ok "it runs on the installed libisp.so.1 ($so)"
	else
		not_ok "it runs on the installed libisp.so.1" "$(ldd "$tmp/probe")"
	fi
	out=$("$tmp/probe" "$srv" 2>&1)
	check "it announces into the installed ispd and reads it back" test $? -eq 0
	echo "# $out"
else
	not_ok "cc \$(pkg-config --cflags --libs libisp) builds a program" "$(cat "$tmp/cc.log")"
fi
# shellcheck disable=SC2046
if cc -Wall -Werror -static -o "$tmp/probe-static" "$tmp/probe.c" \
    $(pkg-config --static --cflags --libs libisp) 2>"$tmp/cc-static.log"; then
	ok "cc -static \$(pkg-config --static --cflags --libs libisp) builds a program"
	check "it is linked statically" \
	    grep -q 'not a dynamic executable' <<<"$(ldd "$tmp/probe-static" 2>&1)"
	out=$("$tmp/probe-static" "$srv" 2>&1)
	check "it announces into the installed ispd and reads it back" test $? -eq 0
	echo "# $out"
else
	not_ok "cc -static with pkg-config --static builds a program" "$(cat "$tmp/cc-static.log")"
fi

# Every page where man finds it.
for page in 8:ispd 5:ispd.conf 1:ispctl 3:libisp 8:isp-registrar 8:isp-locator; do
	sec=${page%%:*} name=${page#*:}
	path=$(man -w "$sec" "$name" 2>&1)
	check "man -w $sec $name finds $path" test "$path" = "/usr/share/man/man$sec/$name.$sec.gz"
done

# Stop what was started, purge, and see that nothing is left.
for p in $pids; do
	kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
done
pids=""
# shellcheck disable=SC2086
if apt purge $PKGS >"$tmp/purge.log" 2>&1; then
	ok "apt-get purge of the four packages"
else
	not_ok "apt-get purge of the four packages" "$(tail -n 15 "$tmp/purge.log")"
fi
left=""
for f in /usr/sbin/ispd /usr/bin/ispctl /usr/sbin/isp-registrar /etc/ispd \
    "$libdir/libisp.so.1" /usr/include/isp.h /lib/systemd/system/ispd.service; do
	[ -e "$f" ] && left="$left $f"
done
check "nothing of them is left${left:+:$left}" test -z "$left"

finish
