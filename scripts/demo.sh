#!/bin/bash
# make demo: two real ispd reflectors on loopback, two border gateways
# publishing SIP registrations to both, two Asterisk-like watchers
# mirroring them from both. Shows both watchers hold the same table, kills
# one gateway and shows its records withdrawn everywhere once the grace
# time of graceful restart is over, freezes the other past the hold time
# and shows no phone flaps when it comes back, then kills a reflector and
# shows no phone disappears. Stops everything it started.
set -u
BUILD=${1:-build}
ISPD=$BUILD/ispd
ISPCTL=$BUILD/ispctl
T=SIP_REGISTRATION
PER_GATEWAY=${DEMO_PHONES:-150}
GRACE=4		# --graceful-seconds

tmp=$(mktemp -d /tmp/ispd-demo.XXXXXX)
pids=()
cleanup() {
	exec 3>&- 4>&- 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then bold=$'\033[1m'; plain=$'\033[0m'; else bold=; plain=; fi
say()  { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
fail() { echo "demo: $*" >&2; exit 1; }
wait_for() {	# bounded: 15 s
	local i
	for i in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}

# The table a watcher holds, folded from its event stream: one key per
# line, sorted.
view() {
	awk -F'"' '
	    { ev = ""; key = "" }
	    { for (i = 1; i < NF; i++) { if ($i == "event") ev = $(i+2); if ($i == "key") key = $(i+2) } }
	    ev == "announce" || ev == "replace" { have[key] = 1 }
	    ev == "withdraw" { delete have[key] }
	    END { for (k in have) print k }' "$1" | sort
}
count() { view "$1" | wc -l; }
# holds FILE N: the watcher of FILE holds N records (for wait_for, which
# must run the count each time, not once).
holds() { test "$(count "$1")" -eq "$2"; }

# start_ispd NAME [PORT]: a reflector on loopback (PORT 0: any free one).
start_ispd() {
	rm -f "$tmp/$1.port"
	"$ISPD" --listen 127.0.0.1:${2:-0} --port-file "$tmp/$1.port" --hold 3 \
	    --graceful-table $T --graceful-seconds $GRACE \
	    --server-id "$1" 2>>"$tmp/$1.log" &
	eval "pid_$1=$!"
	pids+=($!)
	wait_for test -s "$tmp/$1.port" || fail "ispd $1 did not start: $(cat "$tmp/$1.log")"
	eval "port_$1=$(head -1 "$tmp/$1.port")"
}

# DEMO_TLS=1: the same demo with TLS on every reflector, every client
# authenticated by its own shared secret and held to rules
# (docs/SECURITY.md). The certificates and secrets are made here, in
# $tmp; ispd and ispctl are wrapped to use them.
if [ "${DEMO_TLS:-0}" = 1 ]; then
	(cd "$tmp" &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout ca.key -out ca.crt -days 1 -subj "/CN=ispd demo CA" &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout server.key -out server.csr -subj "/CN=localhost" &&
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext &&
	openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key \
	    -CAcreateserial -days 1 -extfile server.ext -out server.crt &&
	chmod 600 ca.key server.key) >"$tmp/openssl.log" 2>&1 ||
	    fail "cannot make the demo's certificates: $(cat "$tmp/openssl.log")"
	for n in bgw-1 bgw-2 asterisk-1 asterisk-2 demo; do
		s=$(openssl rand -hex 16)
		(umask 077; echo "$n $s" >>"$tmp/secrets"; echo "$s" >"$tmp/$n.secret")
	done
	cat >"$tmp/ispd.conf" <<-EOF
	tls-cert server.crt
	tls-key server.key
	credentials secrets
	default deny
	allow bgw-* announce,create $T
	allow asterisk-* subscribe,create $T
	allow demo subscribe *
	EOF
	ispd_bin=$(realpath "$ISPD") ispctl_bin=$(realpath "$ISPCTL")
	cat >"$tmp/ispd" <<-EOF
	#!/bin/sh
	# ispd on TLS: --listen becomes --listen-tls, with the configuration.
	[ "\$1" = --listen ] && shift && set -- --listen-tls "\$@"
	exec "$ispd_bin" --config "$tmp/ispd.conf" "\$@"
	EOF
	cat >"$tmp/ispctl" <<-EOF
	#!/bin/sh
	# ispctl on TLS, with the secret of its --name.
	name=ispctl prev=
	for a in "\$@"; do [ "\$prev" = --name ] && name=\$a; prev=\$a; done
	exec "$ispctl_bin" --tls-ca "$tmp/ca.crt" --secret-file "$tmp/\$name.secret" "\$@"
	EOF
	chmod 755 "$tmp/ispd" "$tmp/ispctl"
	ISPD=$tmp/ispd ISPCTL=$tmp/ispctl
	say "DEMO_TLS=1: TLS, a shared secret per client, and these rules:"
	grep -E '^(default|allow|deny)' "$tmp/ispd.conf"
fi

say "starting two ispd reflectors on loopback"
start_ispd A
start_ispd B
# Every client below is homed on both (ispctl -s A -s B, or this list).
export ISPD_SERVER=127.0.0.1:$port_A,127.0.0.1:$port_B
echo "reflector A on 127.0.0.1:$port_A, reflector B on 127.0.0.1:$port_B"

say "two Asterisk instances subscribe to $T"
for a in asterisk-1 asterisk-2; do
	"$ISPCTL" --name $a watch $T --json >"$tmp/$a.events" 2>"$tmp/$a.err" &
	pids+=($!)
done
wait_for grep -q '"event":"end"' "$tmp/asterisk-1.events" || fail "watcher did not start"
wait_for grep -q '"event":"end"' "$tmp/asterisk-2.events" || fail "watcher did not start"
echo "both got their (empty) snapshot and the end marker"

say "two border gateways publish $PER_GATEWAY registrations each"
fd=3
for g in 1 2; do
	mkfifo "$tmp/bgw-$g"
	"$ISPCTL" --name bgw-$g publish $T <"$tmp/bgw-$g" 2>"$tmp/bgw-$g.err" &
	eval "pid_bgw_$g=$!"
	pids+=($!)
	eval "exec $fd>\"$tmp/bgw-$g\""
	for i in $(seq 1 "$PER_GATEWAY"); do
		n=$(( g * 1000 + i ))	# bgw-1: 1001..., bgw-2: 2001...
		printf 'announce sip:%d@voip.example.com|1 contact=sip:%d@198.51.100.%d:5060 received=198.51.100.%d:5060 transport=udp expires=%d reg_server=bgw-%d\n' \
		    "$n" "$n" $((i % 250)) $((i % 250)) $(( $(date +%s) + 3600 )) "$g"
	done >&$fd
	fd=$((fd + 1))
done
total=$((2 * PER_GATEWAY))
for a in asterisk-1 asterisk-2; do
	wait_for holds "$tmp/$a.events" $total || fail "$a holds $(count "$tmp/$a.events") of $total"
done
# The sessions table refreshes its record counts once a second.
wait_for sh -c "'$ISPCTL' --name demo sessions | grep -q ' bgw-2 .* $PER_GATEWAY\$'"

"$ISPCTL" --name demo tables
echo
"$ISPCTL" --name demo sessions
echo
echo "one phone, as any Asterisk would look it up:"
"$ISPCTL" --name demo get $T 'sip:2001@voip.example.com|1'
echo
view "$tmp/asterisk-1.events" >"$tmp/a1.view"
view "$tmp/asterisk-2.events" >"$tmp/a2.view"
echo "asterisk-1 holds $(wc -l <"$tmp/a1.view") registrations, asterisk-2 holds $(wc -l <"$tmp/a2.view")"
cmp -s "$tmp/a1.view" "$tmp/a2.view" || fail "the watchers differ"
echo "their tables are identical (sha256 $(sha256sum <"$tmp/a1.view" | cut -c1-16))"

say "bgw-1 dies (SIGKILL): its registrations are held ${GRACE} s for it (graceful restart), then withdrawn everywhere"
{ kill -KILL "$pid_bgw_1"; wait "$pid_bgw_1"; } 2>/dev/null
sleep 1
"$ISPCTL" --name demo stats | grep -E '^held_(records|clients) '
echo "asterisk-1 still holds $(count "$tmp/asterisk-1.events"): bgw-1 could be back any moment"
for a in asterisk-1 asterisk-2; do
	wait_for holds "$tmp/$a.events" "$PER_GATEWAY" || fail "$a still holds $(count "$tmp/$a.events")"
done
for a in asterisk-1 asterisk-2; do
	echo "$a: $(count "$tmp/$a.events") registrations left," \
	    "$(grep -c '"reason":"session ended"' "$tmp/$a.events") withdrawn (session ended)," \
	    "$(view "$tmp/$a.events" | grep -c '^sip:1[0-9][0-9][0-9]@') of bgw-1's left"
done
view "$tmp/asterisk-1.events" >"$tmp/a1.view"
view "$tmp/asterisk-2.events" >"$tmp/a2.view"
cmp -s "$tmp/a1.view" "$tmp/a2.view" || fail "the watchers differ"
echo "both watchers still agree; bgw-2's phones are untouched:"
"$ISPCTL" --name demo tables | grep -v '^ispd.sessions'
echo
echo "the last events asterisk-2 saw:"
tail -n 2 "$tmp/asterisk-2.events"

say "bgw-2 freezes (SIGSTOP) past the hold time, then thaws: no phone flaps"
lines1=$(wc -l <"$tmp/asterisk-1.events"); lines2=$(wc -l <"$tmp/asterisk-2.events")
kill -STOP "$pid_bgw_2"
# Both reflectors end its sessions after the hold time (3 s) and hold
# its registrations.
wait_for sh -c "'$ISPCTL' -s 127.0.0.1:$port_A --name demo stats | grep -q '^held_records  *$PER_GATEWAY\$'" ||
    fail "A did not hold bgw-2's registrations"
wait_for sh -c "'$ISPCTL' -s 127.0.0.1:$port_B --name demo stats | grep -q '^held_records  *$PER_GATEWAY\$'" ||
    fail "B did not hold bgw-2's registrations"
echo "both reflectors lost bgw-2's sessions; each holds its $PER_GATEWAY registrations"
kill -CONT "$pid_bgw_2"
# It reconnects, announces again and says END_OF_REPLAY: nothing held.
for r in A B; do
	eval "p=\$port_$r"
	wait_for sh -c "'$ISPCTL' -s 127.0.0.1:$p --name demo stats | grep -q '^held_records  *0\$'" ||
	    fail "$r still holds bgw-2's registrations"
done
"$ISPCTL" --name demo sessions | grep bgw-2
e1=$(tail -n +$((lines1 + 1)) "$tmp/asterisk-1.events" | grep -c '"event":"\(withdraw\|announce\|replace\)"')
e2=$(tail -n +$((lines2 + 1)) "$tmp/asterisk-2.events" | grep -c '"event":"\(withdraw\|announce\|replace\)"')
echo "bgw-2 is back; record events the watchers saw meanwhile: asterisk-1 $e1, asterisk-2 $e2"
[ "$e1" -eq 0 ] && [ "$e2" -eq 0 ] || fail "a watcher saw phones flap"
echo "what reflector A logged:"
grep -E 'held for|end of replay' "$tmp/A.log" | tail -n 2

say "reflector A dies (SIGKILL): no phone disappears from any watcher"
before1=$(count "$tmp/asterisk-1.events"); before2=$(count "$tmp/asterisk-2.events")
lines1=$(wc -l <"$tmp/asterisk-1.events"); lines2=$(wc -l <"$tmp/asterisk-2.events")
{ kill -KILL "$pid_A"; wait "$pid_A"; } 2>/dev/null
sleep 2
echo "asterisk-1 holds $(count "$tmp/asterisk-1.events") (had $before1), asterisk-2 holds $(count "$tmp/asterisk-2.events") (had $before2)"
w1=$(tail -n +$((lines1 + 1)) "$tmp/asterisk-1.events" | grep -c '"event":"withdraw"')
w2=$(tail -n +$((lines2 + 1)) "$tmp/asterisk-2.events" | grep -c '"event":"withdraw"')
echo "withdrawals seen since the kill: asterisk-1 $w1, asterisk-2 $w2"
[ "$w1" -eq 0 ] && [ "$w2" -eq 0 ] || fail "a watcher saw phones disappear"
echo "reflector B alone still serves the table:"
"$ISPCTL" -s 127.0.0.1:$port_B --name demo tables | grep -v '^ispd.sessions'

say "reflector A comes back on its port: the gateway replays into it"
start_ispd A "$port_A"
# Back when both gateways replayed and both watchers resubscribed.
wait_for sh -c "'$ISPCTL' -s 127.0.0.1:$port_A --name demo tables | grep -q '^$T  *$PER_GATEWAY  *[0-9]*  *2\$'" ||
    fail "A did not get the registrations and the watchers back"
"$ISPCTL" -s 127.0.0.1:$port_A --name demo tables | grep -v '^ispd.sessions'
w1=$(tail -n +$((lines1 + 1)) "$tmp/asterisk-1.events" | grep -c '"event":"withdraw"')
echo "watchers: asterisk-1 holds $(count "$tmp/asterisk-1.events"), asterisk-2 holds $(count "$tmp/asterisk-2.events"); withdrawals since the kill: $w1"

echo
echo "what reflector B logged last:"
grep -v ' debug: ' "$tmp/B.log" | tail -n 3

say "done: stopping everything"
