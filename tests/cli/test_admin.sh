#!/bin/bash
# Operator controls against real ispd processes: ispctl kick, evict,
# drop and held (the ADMIN request), what subscribers see of them, and
# the rules' kick, evict, drop and held rights (neither "all" nor
# "default allow" grants them; without a configuration file they are
# allowed). Prints TAP.
#
# Usage: tests/cli/test_admin.sh BUILD_DIR
set -u
BUILD=${1:-build}
ISPCTL=$BUILD/ispctl
ISPD=$BUILD/ispd
T=ADMIN_T

tmp=$(mktemp -d /tmp/admin-test.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

n=0
failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check()  { local name=$1; shift; if "$@" >/dev/null 2>&1; then ok "$name"; else not_ok "$name" "failed: $*"; fi; }

# Bounded wait: until "$@" succeeds, at most 10 s.
wait_for() {
	local i
	for i in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}

# expect NAME WANT_EXIT TEXT CMD...: exit code, and TEXT in stdout+stderr.
expect() {
	local name=$1 want=$2 text=$3 rc
	shift 3
	"$@" >"$tmp/$name.out" 2>&1 </dev/null
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		not_ok "$name" "exit $rc, want $want" "$(cat "$tmp/$name.out")"
	elif ! grep -qF -- "$text" "$tmp/$name.out"; then
		not_ok "$name" "output lacks \"$text\":" "$(cat "$tmp/$name.out")"
	else
		ok "$name"
	fi
}

# start_ispd DIR ARGS...: an ispd on an ephemeral port; sets ISPD_SERVER.
start_ispd() {
	local d=$1
	shift
	mkdir -p "$d"
	"$ISPD" --listen 127.0.0.1:0 --port-file "$d/port" "$@" 2>"$d/ispd.log" &
	pids+=($!)
	wait_for test -s "$d/port" || { echo "Bail out! ispd did not start"; cat "$d/ispd.log"; exit 1; }
	export ISPD_SERVER=127.0.0.1:$(head -1 "$d/port")
}

# The session id of the live session of client NAME, from ispd.sessions.
session_of() { "$ISPCTL" sessions | awk -v n="$1" '$2 == n { print $1 }' | tail -n 1; }
has_record() { "$ISPCTL" get "$1" "$2" >/dev/null 2>&1; }
gone() { ! "$ISPCTL" sessions | awk '{ print $1 }' | grep -qx "$1"; }

echo "1..43"

# --- No configuration file: every request is allowed, these too.
start_ispd "$tmp/open"
"$ISPCTL" --name watcher watch $T >"$tmp/watch" 2>&1 &
pids+=($!)
"$ISPCTL" --name pub-1 announce $T k1 a=1 >"$tmp/pub1" 2>&1 &
pids+=($!)
pub1=$!
wait_for grep -q "^end" "$tmp/watch" || echo "# the watch never began"
wait_for has_record $T k1 || echo "# pub-1's record never arrived"

expect evict 0 "evicted, owned by pub-1 (session" "$ISPCTL" evict $T k1
check "the evicted record is gone" bash -c "! '$ISPCTL' get $T k1"
check "the subscriber saw it withdrawn, reason evicted" \
    wait_for grep -q "^withdraw .* k1 .*owner=pub-1 (evicted)" "$tmp/watch"
expect evict-missing 1 "no record k1 in table $T" "$ISPCTL" evict $T k1
expect evict-no-table 1 "no table NO_SUCH" "$ISPCTL" evict NO_SUCH k1
expect evict-readonly 4 "read-only" "$ISPCTL" evict ispd.sessions 1
expect evict-json 1 "no record" "$ISPCTL" --json evict $T nope

# The owner announces it again: it is there once more.
"$ISPCTL" --name pub-1 announce $T k2 b=2 >"$tmp/pub1b" 2>&1 &
pids+=($!)
check "the owner's later announce creates a record again" wait_for has_record $T k2

# Kick the session that owns k2: BYE, its record withdrawn (reason
# session ended, not held), and libisp's reconnect announces it again.
id=$(session_of pub-1)
"$ISPCTL" --json kick "$id" >"$tmp/kick.json" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "^{\"done\":\"session $id of client pub-1 (identity anonymous)\"}\$" "$tmp/kick.json"; then
	ok "kick --json names the session and its client"
else
	not_ok "kick --json" "exit $rc" "$(cat "$tmp/kick.json")"
fi
check "the kicked session is gone from ispd.sessions" wait_for gone "$id"
check "its records were withdrawn (session ended)" \
    wait_for grep -q "^withdraw .* k2 .*owner=pub-1 (session ended)" "$tmp/watch"
check "the kicked client connected again and announced again" \
    wait_for bash -c "[ \$(grep -c '^announce .* k2 .*owner=pub-1' '$tmp/watch') -ge 2 ]"
expect kick-unknown 1 "no live session 987654321" "$ISPCTL" kick 987654321
expect kick-usage 2 "is not a session id" "$ISPCTL" kick abc
check "each action is in ispd's log" bash -c "grep -q 'evicted record k1 of table $T, owned by pub-1' '$tmp/open/ispd.log' &&
    grep -q 'kicked session $id of client pub-1' '$tmp/open/ispd.log'"

# Drop: a table made by a typo goes, its records withdrawn (reason
# evicted) and its watch ended with a message; it is no longer listed.
"$ISPCTL" --name watcher-t watch TYPO >"$tmp/twatch" 2>&1 &
twatch=$!
pids+=($!)
wait_for grep -q "^end" "$tmp/twatch" || echo "# the watch of TYPO never began"
"$ISPCTL" --name pub-t announce TYPO t1 x=1 >"$tmp/pubt" 2>&1 &
pids+=($!)
wait_for has_record TYPO t1 || echo "# pub-t's record never arrived"
expect drop 0 "dropped table TYPO: 1 records withdrawn, 1 subscriptions ended" "$ISPCTL" drop TYPO
check "the watcher saw the record withdrawn, reason evicted" \
    grep -q "^withdraw .* t1 .*owner=pub-t (evicted)" "$tmp/twatch"
wait_for bash -c "! kill -0 $twatch"
wait $twatch
rc=$?
if [ $rc -eq 1 ] && grep -q "watch TYPO: table TYPO was dropped by an operator (client ispctl, identity anonymous)" "$tmp/twatch"; then
	ok "the watch ends, exit 1, saying who dropped the table"
else
	not_ok "the watch ends" "exit $rc" "$(cat "$tmp/twatch")"
fi
check "tables no longer lists it" bash -c "'$ISPCTL' tables | grep -q '^$T ' && ! '$ISPCTL' tables | grep -q '^TYPO '"
expect drop-missing 1 "no table TYPO" "$ISPCTL" drop TYPO
expect drop-readonly 4 "cannot be dropped" "$ISPCTL" drop ispd.sessions
expect drop-usage 2 "invalid table name" "$ISPCTL" drop 'bad name'
expect drop-json 0 '{"done":"table ' "$ISPCTL" --json drop $T
check "dropped in ispd's log" grep -q "dropped table TYPO: 1 records withdrawn" "$tmp/open/ispd.log"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
pids=()

# --- A graceful table: a kicked session's records are not held for its
# client (held, its reconnect would take them back without a withdraw).
start_ispd "$tmp/graceful" --graceful-table G
"$ISPCTL" --name watcher watch G >"$tmp/gwatch" 2>&1 &
pids+=($!)
wait_for grep -q "^end" "$tmp/gwatch" || echo "# the watch of G never began"
"$ISPCTL" --name pub-g announce G kg d=4 >"$tmp/pubg" 2>&1 &
pids+=($!)
wait_for grep -q "^announce .* kg " "$tmp/gwatch" || echo "# pub-g's record never arrived"
"$ISPCTL" kick "$(session_of pub-g)" >/dev/null 2>&1
check "a kicked session's graceful record is withdrawn, not held" \
    wait_for grep -q "^withdraw .* kg .*owner=pub-g (session ended)" "$tmp/gwatch"
check "and announced again by its client's next session" \
    wait_for bash -c "[ \$(grep -c '^announce .* kg ' '$tmp/gwatch') -ge 2 ]"

# Held: a killed client's record is listed until its next session takes
# it back or the grace time ends.
expect held-none 0 "SESSION  CLIENT  IDENTITY  TABLE  RECORDS  EXPIRES_MS" "$ISPCTL" held
check "nothing held: the heading alone" bash -c "[ \$('$ISPCTL' held | wc -l) -eq 1 ]"
"$ISPCTL" --name pub-h announce G kh e=5 >"$tmp/pubh" 2>&1 &
pubh=$!
pids+=($!)
wait_for grep -q "^announce .* kh " "$tmp/gwatch" || echo "# pub-h's record never arrived"
hid=$(session_of pub-h)
{ kill -9 $pubh && wait $pubh; } 2>/dev/null
check "the killed client's record is held" wait_for bash -c "'$ISPCTL' held | grep -q pub-h"
"$ISPCTL" held >"$tmp/held" 2>&1
if awk -v id="$hid" '$1 == id && $2 == "pub-h" && $3 == "anonymous" && $4 == "G" && $5 == 1 && $6 > 0 && $6 <= 30000 { f = 1 } END { exit !f }' "$tmp/held"; then
	ok "held lists session, client, identity, table, records and the time left"
else
	not_ok "held's row" "$(cat "$tmp/held")"
fi
expect held-json 0 "{\"session\":$hid,\"client\":\"pub-h\",\"identity\":\"anonymous\",\"table\":\"G\",\"records\":1,\"expires_ms\":" "$ISPCTL" held --json
expect held-usage 2 "held takes no argument" "$ISPCTL" held G
check "the listing is in ispd's log" grep -q "client ispctl, identity anonymous): listed the held records: 1 of 1 clients" "$tmp/graceful/ispd.log"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
pids=()

# --- With a configuration file: only an allow rule naming the right
# grants it; "all" and "default allow" do not.
umask 077
printf 'ops-1 0123456789abcdef0123\nuser-1 fedcba9876543210fedc\n' >"$tmp/secrets"
printf '0123456789abcdef0123\n' >"$tmp/ops.secret"
printf 'fedcba9876543210fedc\n' >"$tmp/user.secret"
cat >"$tmp/ispd.conf" <<CONF
credentials $tmp/secrets
auth optional
deny user-1 evict $T
allow ops-* kick *
allow ops-* evict $T
allow ops-* drop DROPME
allow ops-* held *
allow * all *
default allow
CONF
start_ispd "$tmp/rules" --config "$tmp/ispd.conf"
OPS=("$ISPCTL" --name ops-1 --secret-file "$tmp/ops.secret")
USR=("$ISPCTL" --name user-1 --secret-file "$tmp/user.secret")
"$ISPCTL" --name pub-2 announce $T k3 c=3 >"$tmp/pub2" 2>&1 &
pids+=($!)
wait_for has_record $T k3 || echo "# pub-2's record never arrived"
id=$(session_of pub-2)

expect deny-evict-rule 4 "user-1 may not evict from table $T: denied by rule $tmp/ispd.conf:3 (deny user-1 evict $T)" "${USR[@]}" evict $T k3
expect deny-kick-all 4 "user-1 may not kick sessions: no rule allows it" "${USR[@]}" kick "$id"
expect deny-anonymous 4 "anonymous may not evict" "$ISPCTL" evict $T k3
expect allow-evict 0 "evicted, owned by pub-2" "${OPS[@]}" evict $T k3
expect allow-kick 0 "kicked session $id of client pub-2" "${OPS[@]}" kick "$id"

"$ISPCTL" --name pub-3 announce DROPME z q=1 >"$tmp/pub3" 2>&1 &
pids+=($!)
wait_for has_record DROPME z || echo "# pub-3's record never arrived"
expect deny-drop 4 "user-1 may not drop table DROPME: no rule allows it (drop needs an allow rule naming it)" "${USR[@]}" drop DROPME
expect deny-drop-other 4 "ops-1 may not drop table $T" "${OPS[@]}" drop $T
expect deny-held 4 "user-1 may not list held records: no rule allows it" "${USR[@]}" held
expect allow-drop 0 "dropped table DROPME: 1 records withdrawn" "${OPS[@]}" drop DROPME
expect allow-held 0 "SESSION" "${OPS[@]}" held

if [ $failed -eq 0 ]; then exit 0; fi
exit 1
