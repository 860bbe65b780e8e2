#!/bin/bash
# ispctl against a real ispd: each command's output is compared with a
# golden file in tests/cli/golden (regenerate them with `make golden`
# after a deliberate change, and read the diff). Prints TAP.
#
# Usage: tests/cli/test_ispctl.sh BUILD_DIR
set -u
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
GOLDEN=$HERE/golden
ISPCTL=$BUILD/ispctl
ISPD=$BUILD/ispd
T=SIP_REGISTRATION

tmp=$(mktemp -d /tmp/ispctl-test.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "${ispd_pid:-}" ] && kill "$ispd_pid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

n=0
failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }

# Bounded wait: until "$@" succeeds, at most 10 s.
wait_for() {
	local i
	for i in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}

# golden NAME EXPECTED_EXIT CMD...: stdout must equal golden/NAME.out.
golden() {
	local name=$1 want=$2 rc
	shift 2
	"$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	rc=$?
	if [ -n "${ISP_GOLDEN_UPDATE:-}" ]; then
		cp "$tmp/$name.out" "$GOLDEN/$name.out"
	fi
	if [ "$rc" -ne "$want" ]; then
		not_ok "$name" "exit $rc, want $want" "$(cat "$tmp/$name.err")"
	elif ! diff -u "$GOLDEN/$name.out" "$tmp/$name.out" >"$tmp/$name.diff"; then
		not_ok "$name" "output differs from golden/$name.out:" "$(cat "$tmp/$name.diff")"
	else
		ok "$name"
	fi
}

# expect NAME WANT_EXIT STDERR_TEXT CMD...: exit code and a stderr text.
expect() {
	local name=$1 want=$2 text=$3 rc
	shift 3
	"$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		not_ok "$name" "exit $rc, want $want" "$(cat "$tmp/$name.err")"
	elif ! grep -qF -- "$text" "$tmp/$name.err"; then
		not_ok "$name" "stderr lacks \"$text\":" "$(cat "$tmp/$name.err")"
	else
		ok "$name"
	fi
}

"$ISPD" --listen 127.0.0.1:0 --port-file "$tmp/port" 2>"$tmp/ispd.log" &
ispd_pid=$!
wait_for test -s "$tmp/port" || { echo "Bail out! ispd did not start"; cat "$tmp/ispd.log"; exit 1; }
export ISPD_SERVER=127.0.0.1:$(head -1 "$tmp/port")
C() { "$ISPCTL" "$@"; }

# Usage and connection errors. A usage error is one line and a hint,
# not the whole help.
expect usage 2 "no command given" C
expect unknown-command 2 'unknown command "frobnicate"' C frobnicate
if [ "$(wc -l <"$tmp/unknown-command.err")" -eq 2 ] &&
   grep -q "^Try 'ispctl --help'" "$tmp/unknown-command.err"; then
	ok usage-one-line
else
	not_ok usage-one-line "$(cat "$tmp/unknown-command.err")"
fi
expect unknown-option 2 "unrecognized option '--frob'" C --frob tables
expect bad-field 2 '"novalue" is not a field: fields are NAME=VALUE' C announce $T k novalue
expect dup-field 2 'field "a" is given twice' C announce $T k a=1 b=2 a=3
expect bad-ttl 2 'invalid --ttl "soon"' C announce $T k a=1 --ttl soon
expect bad-table 2 "invalid table name" C dump "no such"
expect bad-table-watch 2 "invalid table name" C watch "no such"
# get and announce judge an empty or long key alike, in the user's terms.
expect get-empty-key 2 "the key is empty: a key is 1 to 1024 bytes" C get $T ''
expect announce-empty-key 2 "the key is empty: a key is 1 to 1024 bytes" C announce $T ''
long=$(head -c 1100 /dev/zero | tr '\0' k)
expect get-long-key 2 "the key is 1100 bytes long" C get $T "$long"
grep -q "isp_\|prefix" "$tmp/get-long-key.err" && not_ok get-long-key-words "$(cat "$tmp/get-long-key.err")" ||
    ok get-long-key-words
expect unreachable 3 "cannot connect to 127.0.0.1:1" C -s 127.0.0.1:1 tables
expect unreachable-hint 3 "is ispd running?" C -s 127.0.0.1:1 tables

# One version for every program of the tree.
v=$(C --version) || not_ok version "ispctl --version failed"
case "$v" in
"ispctl "[0-9]*" (libisp "[0-9]*")")
	want=$(echo "$v" | cut -d' ' -f2)
	bad=""
	for prog in ispd isp-registrar isp-locator; do
		[ -x "$BUILD/$prog" ] || continue
		got=$("$BUILD/$prog" --version 2>&1)
		[ "$got" = "$prog $want" ] || bad="$bad [$got]"
	done
	[ -z "$bad" ] && ok version || not_ok version "ispctl says $want, the others:$bad"
	;;
*)	not_ok version "$v" ;;
esac

# A watcher started before anything exists sees everything live.
# Background clients run $ISPCTL itself (not through a function), so $!
# is the client's own pid.
"$ISPCTL" watch $T --json >"$tmp/watch.json" 2>"$tmp/watch.err" &
pids+=($!)
wait_for grep -q '"event":"end"' "$tmp/watch.json" || not_ok "watch-started"

# A publisher on a FIFO, so its session lives while we look.
mkfifo "$tmp/pub"
"$ISPCTL" --name bgw-1 publish $T <"$tmp/pub" 2>"$tmp/pub.err" &
pub_pid=$!
pids+=($pub_pid)
exec 3>"$tmp/pub"
cat >&3 <<'LINES'
# phones registering through bgw-1
announce alice@example.com|1 contact=sip:alice@192.0.2.10:5060 expires=1790000000
announce bob@example.com|1 contact=sip:bob@192.0.2.11:5060 user_agent="Acme Phone 2.0" expires=1790000000
announce carol@example.com|1 contact=sip:carol@192.0.2.12:5060 expires=1790000000
announce alice@example.com|2 contact=sip:alice@192.0.2.20:5060 expires=1790000000
withdraw alice@example.com|2
LINES
# The golden files name the publisher's session (3): let it connect
# before anything else does (a slow start under ASan lost that race).
# The watcher, up already, sees its last line applied: no new session
# asks before the publisher's.
wait_for grep -qF '"key":"alice@example.com|2","owner":"bgw-1","seq":5,' "$tmp/watch.json" || not_ok "publisher-connected" "$(cat "$tmp/watch.json")"
wait_for sh -c "'$ISPCTL' get $T carol@example.com\|1" || not_ok "publish-visible"

golden dump 0 C dump $T
golden dump-json 0 C dump $T --json
golden dump-prefix 0 C dump $T --prefix bob
golden get 0 C get $T 'bob@example.com|1'
golden get-json 0 C get $T 'alice@example.com|1' --json
expect get-missing 1 "nobody|1 not found in $T" C get $T 'nobody|1'
# A table that does not exist is not an empty one, and asking creates
# none.
expect dump-missing 1 "table NO_SUCH_TABLE does not exist" C dump NO_SUCH_TABLE
expect get-missing-table 1 "table NO_SUCH_TABLE does not exist" C get NO_SUCH_TABLE k
expect place-missing 1 "ispd has no INSTANCES table" C place registrar sip:a@example.com --json
C tables | grep -q "NO_SUCH_TABLE\|INSTANCES" && not_ok no-table-created "$(C tables)" ||
    ok no-table-created
# --json anywhere: before the command, after it, between its words.
for form in "--json get $T alice@example.com|1" "get --json $T alice@example.com|1" \
    "get $T --json alice@example.com|1"; do
	# shellcheck disable=SC2086 # the words of $form, as a user types them
	(IFS=' '; C $form) >"$tmp/json-anywhere.out" 2>&1
	if ! diff -q "$GOLDEN/get-json.out" "$tmp/json-anywhere.out" >/dev/null; then
		not_ok "json-anywhere ($form)" "$(cat "$tmp/json-anywhere.out")"
		continue
	fi
	ok "json-anywhere ($form)"
done

# Another client takes bob over; bgw-1 can no longer withdraw him.
# (3>&-: the publisher's FIFO must not stay open in other children.)
"$ISPCTL" --name bgw-2 announce $T 'bob@example.com|1' contact=sip:bob@198.51.100.7:5060 \
    2>"$tmp/ann.err" 3>&- &
ann_pid=$!
pids+=($ann_pid)
wait_for grep -q 'holding' "$tmp/ann.err" || not_ok "announce-holding" "$(cat "$tmp/ann.err")"
echo 'withdraw bob@example.com|1' >&3
echo 'this is not a command' >&3
wait_for grep -q 'line 8' "$tmp/pub.err"
if grep -q 'line 7: .*owned by' "$tmp/pub.err" && grep -q 'line 8: expected' "$tmp/pub.err"; then
	ok publish-errors
else
	not_ok publish-errors "$(cat "$tmp/pub.err")"
fi

# The sessions table names the live clients.
C sessions >"$tmp/sessions.out" 2>&1
if head -1 "$tmp/sessions.out" | grep -q '^SESSION  *NAME  *PEER  *SINCE  *RECORDS' &&
   grep -q ' bgw-1  *127\.0\.0\.1:[0-9]*  *[0-9]* *[0-9]' "$tmp/sessions.out" &&
   grep -q ' bgw-2 ' "$tmp/sessions.out"; then
	ok sessions
else
	not_ok sessions "$(cat "$tmp/sessions.out")"
fi
C sessions --json >"$tmp/sessions.json" 2>&1
if grep -q '^{"session":[0-9]*,"name":"bgw-1","peer":"127.0.0.1:[0-9]*","since":[0-9]*,"records":[0-9]*}$' "$tmp/sessions.json"; then
	ok sessions-json
else
	not_ok sessions-json "$(cat "$tmp/sessions.json")"
fi

golden tables 0 sh -c "'$ISPCTL' tables | grep -v '^ispd.sessions'"
C tables --json | grep -q "^{\"table\":\"$T\",\"records\":3,\"seq\":6,\"subscribers\":1}$" &&
    ok tables-json || not_ok tables-json "$(C tables --json)"
C stats --json >"$tmp/stats.json"
if grep -q '"sessions":[0-9]*' "$tmp/stats.json" && grep -q '"records":[0-9]*' "$tmp/stats.json" &&
   grep -q '"version":"' "$tmp/stats.json"; then
	ok stats-json
else
	not_ok stats-json "$(cat "$tmp/stats.json")"
fi
C stats | grep -q '^events  *[0-9][0-9]*$' && ok stats || not_ok stats "$(C stats)"

# Killing bgw-2 withdraws bob everywhere; ending the publisher (EOF)
# withdraws the rest. The watcher saw it all, in order.
{ kill -KILL $ann_pid; wait $ann_pid; } 2>/dev/null
wait_for sh -c "! '$ISPCTL' get $T 'bob@example.com|1'" && ok killed-withdrawn || not_ok killed-withdrawn
exec 3>&-
wait $pub_pid
rc=$?
[ "$rc" -eq 4 ] && ok publish-exit || not_ok publish-exit "exit $rc, want 4 (a line refused by ispd)"
wait_for sh -c "'$ISPCTL' dump $T | grep -q '^0 records'" && ok publisher-eof || not_ok publisher-eof "$(C dump $T)"
golden dump-empty 0 C dump $T
# The watcher is a mirror: each session's end came as one EV_OWNER_GONE,
# told as a withdrawal per record, each with that event's seq.
wait_for grep -q '"key":"alice@example.com|1","owner":"bgw-1","seq":[0-9]*,"reason":"session ended"' "$tmp/watch.json"
golden watch-json 0 cat "$tmp/watch.json"

# TTL: the record expires unless refreshed.
"$ISPCTL" --name ttl announce $T 'dave@example.com|1' contact=sip:dave@h --ttl 1 2>/dev/null &
pids+=($!)
wait_for C get $T 'dave@example.com|1' && ok ttl-present || not_ok ttl-present
wait_for sh -c "! '$ISPCTL' get $T 'dave@example.com|1'" && ok ttl-expired || not_ok ttl-expired

# A line longer than any frame is refused and skipped; the next works.
expect long-line 2 "line 1: longer than" sh -c "(head -c 3000000 /dev/zero | tr '\\0' a; echo;
    echo 'announce longline|1 a=1') | '$ISPCTL' publish $T"
grep -q "line 2" "$tmp/long-line.err" && not_ok long-line-next "$(cat "$tmp/long-line.err")" || ok long-line-next

# Graceful restart (--graceful-table): a killed publisher's record stays,
# held for its client, and stats counts it; the client's next run takes
# it back and ends with BYE, which withdraws it at once.
"$ISPD" --listen 127.0.0.1:0 --port-file "$tmp/gport" --graceful-table $T \
    --graceful-seconds 60 2>"$tmp/gispd.log" 3>&- &
pids+=($!)
if wait_for test -s "$tmp/gport"; then
	G=127.0.0.1:$(head -1 "$tmp/gport")
	mkfifo "$tmp/gpub"
	"$ISPCTL" -s $G --name gpub publish $T <"$tmp/gpub" 2>/dev/null 3>&- &
	gpub_pid=$!
	pids+=($gpub_pid)
	exec 4>"$tmp/gpub"
	echo 'announce held|1 contact=sip:held@192.0.2.30' >&4
	wait_for sh -c "'$ISPCTL' -s $G get $T 'held|1'" 4>&- || not_ok graceful-published
	{ kill -KILL $gpub_pid; wait $gpub_pid; } 2>/dev/null
	exec 4>&-
	if wait_for sh -c "'$ISPCTL' -s $G stats --json | grep -q '\"held_records\":1,\"held_clients\":1,'"; then
		ok graceful-held-stats
	else
		not_ok graceful-held-stats "$("$ISPCTL" -s $G stats --json 2>&1)"
	fi
	"$ISPCTL" -s $G stats 2>&1 | grep -q '^held_records  *1$' && ok graceful-held-stats-text ||
	    not_ok graceful-held-stats-text "$("$ISPCTL" -s $G stats 2>&1)"
	"$ISPCTL" -s $G get $T 'held|1' >/dev/null 2>&1 && ok graceful-kept || not_ok graceful-kept
	echo 'announce held|1 contact=sip:held@192.0.2.30' |
	    "$ISPCTL" -s $G --name gpub publish $T 2>"$tmp/gpub2.err"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		not_ok graceful-bye "publish exit $rc" "$(cat "$tmp/gpub2.err")"
	elif ! wait_for sh -c "! '$ISPCTL' -s $G get $T 'held|1'"; then
		not_ok graceful-bye "held|1 stayed after the BYE" "$("$ISPCTL" -s $G dump $T 2>&1)"
	elif ! "$ISPCTL" -s $G stats --json | grep -q '"held_records":0,'; then
		not_ok graceful-bye "$("$ISPCTL" -s $G stats --json 2>&1)"
	else
		ok graceful-bye
	fi
else
	not_ok graceful-ispd "$(cat "$tmp/gispd.log")"
fi

# announce --json confirms on stdout; publish takes --json too.
timeout 2 "$ISPCTL" announce JSONT 'k|1' a=1 --json >"$tmp/ann-json.out" 2>"$tmp/ann-json.err"
if grep -q '^{"event":"announced","table":"JSONT","key":"k|1","session":[0-9]*}$' "$tmp/ann-json.out"; then
	ok announce-json
else
	not_ok announce-json "$(cat "$tmp/ann-json.out" "$tmp/ann-json.err")"
fi
echo 'announce k|2 a=1' | "$ISPCTL" publish --json JSONT >"$tmp/pub-json.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && ok publish-json || not_ok publish-json "exit $rc" "$(cat "$tmp/pub-json.out")"
# Refused by ispd is not "cannot reach": exit 4.
expect refused-readonly 4 "read-only" C announce ispd.sessions k a=1

# Text is printed as text: UTF-8 as it is, other bytes escaped (in JSON,
# which must be UTF-8, as U+FFFD).
"$ISPCTL" announce TEXT 'utf|1' name=Müller city=Zürich bad=$'\xff' 'quoted=a "b" ü' \
    2>/dev/null &
pids+=($!)
if wait_for C get TEXT 'utf|1'; then
	C get TEXT 'utf|1' >"$tmp/utf.out" 2>&1
	C get TEXT 'utf|1' --json >"$tmp/utf.json" 2>&1
	C dump TEXT >"$tmp/utf.dump" 2>&1
	if grep -q '^name  *Müller$' "$tmp/utf.out" && grep -q '^bad  *\\xff$' "$tmp/utf.out" &&
	   grep -qF '"name":"Müller","city":"Zürich","bad":"\ufffd","quoted":"a \"b\" ü"' "$tmp/utf.json" &&
	   grep -qF 'name=Müller city=Zürich bad=\xff quoted="a \"b\" ü"' "$tmp/utf.dump"; then
		ok utf8-text
	else
		not_ok utf8-text "$(cat "$tmp/utf.out" "$tmp/utf.json" "$tmp/utf.dump")"
	fi
else
	not_ok utf8-text "the record did not arrive"
fi

# watch --timestamps: each line starts with the time it was printed.
timeout 1 "$ISPCTL" watch TEXT --timestamps >"$tmp/ts.out" 2>/dev/null
timeout 1 "$ISPCTL" watch TEXT --timestamps --json >"$tmp/ts.json" 2>/dev/null
ts='20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9][0-9][0-9]Z'
if grep -q "^$ts announce  seq=" "$tmp/ts.out" && grep -q "^$ts end " "$tmp/ts.out" &&
   grep -q "^{\"time\":\"$ts\",\"event\":\"announce\"" "$tmp/ts.json" &&
   grep -q "^{\"time\":\"$ts\",\"event\":\"end\"" "$tmp/ts.json"; then
	ok watch-timestamps
else
	not_ok watch-timestamps "$(cat "$tmp/ts.out" "$tmp/ts.json")"
fi
expect timestamps-watch-only 2 "--timestamps is an option of watch" C dump TEXT --timestamps
# Watching a table that does not exist says so (the watch creates it).
timeout 1 "$ISPCTL" watch WATCH_TYPO >/dev/null 2>"$tmp/typo.err"
grep -q "table WATCH_TYPO does not exist yet" "$tmp/typo.err" && ok watch-typo ||
    not_ok watch-typo "$(cat "$tmp/typo.err")"

# Another protocol at ispd's port: one line at warn that says which,
# not a frame of a billion bytes.
port=$(head -1 "$tmp/port")
# Succeeds when ispd closed the connection (cat saw the end), which it
# does after writing the line: the log is then read, not waited for.
foreign() {
	local rc
	exec 5<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf "$1" >&5
	timeout 5 cat <&5 >/dev/null
	rc=$?
	exec 5>&-
	return $rc
}
if foreign 'GET /metrics HTTP/1.1\r\nHost: ispd\r\n\r\n' &&
   foreign '\026\003\001\000\200\001\000\000\174\003\003' &&
   grep -q "warn: session [0-9]* (127.0.0.1:[0-9]*): an HTTP request, not the ispd protocol; closing" "$tmp/ispd.log" &&
   grep -q "warn: session [0-9]* (127.0.0.1:[0-9]*): a TLS ClientHello, not the ispd protocol: TLS clients connect to a --listen-tls port; closing" "$tmp/ispd.log" &&
   ! grep -q "bytes is over the limit" "$tmp/ispd.log"; then
	ok foreign-protocols
else
	not_ok foreign-protocols "$(grep -i "http\|tls\|limit" "$tmp/ispd.log")"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
