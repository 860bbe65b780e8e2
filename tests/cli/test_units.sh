#!/bin/bash
# The systemd units of examples/systemd: `systemd-analyze verify` finds
# nothing to say about any of them (their programs taken from the build
# directory, the pages of their Documentation= from man/), and they say
# what a network daemon's unit should. Prints TAP.
#
# Usage: tests/cli/test_units.sh BUILD_DIR
set -u
BUILD=$(cd "${1:-build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
UNITS=$HERE/../../examples/systemd

n=0
failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }

tmp=$(mktemp -d /tmp/isp-units.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The installed paths become the build's, so that verify finds them.
for u in "$UNITS"/*.service; do
	sed -e "s#/usr/sbin/ispd#$BUILD/ispd#g" -e "s#/usr/sbin/isp-#$BUILD/isp-#g" \
	    "$u" >"$tmp/$(basename "$u")"
done

# verify runs man for each page of Documentation=: the tree's pages
# (man/) are what it finds.
for p in "$HERE"/../../man/*.[1-8]; do
	mkdir -p "$tmp/man/man${p##*.}"
	ln -s "$p" "$tmp/man/man${p##*.}/"
done
export MANPATH=$tmp/man

if ! command -v systemd-analyze >/dev/null 2>&1; then
	not_ok "systemd-analyze verify" "no systemd-analyze: scripts/deps.sh installs systemd"
else
	# verify exits 0 on an unknown key, but says so: any word is a
	# finding. A unit with a typo proves that this check sees one.
	sed 's/^Type=notify/Tpye=notify/' "$tmp/ispd.service" >"$tmp/typo.service"
	out=$(systemd-analyze verify "$tmp/typo.service" 2>&1)
	[ -n "$out" ] && ok "systemd-analyze verify reports a typo" ||
	    not_ok "systemd-analyze verify reports a typo" "it said nothing"
	rm "$tmp/typo.service"
	for u in "$tmp"/*.service; do
		out=$(systemd-analyze verify "$u" 2>&1)
		rc=$?
		if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
			ok "systemd-analyze verify $(basename "$u")"
		else
			not_ok "systemd-analyze verify $(basename "$u")" "exit $rc" "$out"
		fi
	done
fi

# What each unit must say.
has() {
	local unit=$1 line
	shift
	for line in "$@"; do
		grep -qx -- "$line" "$UNITS/$unit" || { echo "$line"; return 1; }
	done
}
if miss=$(has ispd.service Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' \
    WatchdogSec=30s User=ispd NoNewPrivileges=yes ProtectSystem=strict \
    CapabilityBoundingSet=); then
	ok "ispd.service: notify, reload, watchdog, its own user, sandboxed"
else
	not_ok "ispd.service lacks a line" "$miss"
fi
for svc in isp-registrar isp-locator; do
	if miss=$(has $svc.service User=ispd NoNewPrivileges=yes ProtectSystem=strict \
	    CapabilityBoundingSet=) && grep -q "^ExecStart=/usr/sbin/$svc " "$UNITS/$svc.service"; then
		ok "$svc.service: its program, its own user, sandboxed"
	else
		not_ok "$svc.service lacks a line" "${miss:-ExecStart}"
	fi
done

echo "1..$n"
[ "$failed" -eq 0 ]
