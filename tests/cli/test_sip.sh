#!/bin/bash
# isp-registrar and isp-locator against real peers on loopback: SIPp
# (Debian's sip-tester) runs the scenarios in tests/sip, baresip registers
# as a real phone, ispctl reads what reached ispd. Prints TAP.
#
# Usage: tests/cli/test_sip.sh BUILD_DIR
# Every wait is bounded; every sipp call has -timeout and -m 1.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SC=$ROOT/tests/sip
ISPD=$BUILD/ispd
ISPCTL=$BUILD/ispctl
REG=$BUILD/isp-registrar
LOC=$BUILD/isp-locator
T=SIP_REGISTRATION
D=example.com

n=0
failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
skip()   { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
# check NAME CMD...: ok when CMD succeeds.
check() { local name=$1; shift; if "$@" >"$tmp/check.out" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -n 15 "$tmp/check.out")"; fi; }

for p in sipp baresip; do
	command -v $p >/dev/null || { echo "Bail out! $p is missing (run scripts/deps.sh)"; exit 1; }
done
for p in "$ISPD" "$ISPCTL" "$REG" "$LOC"; do
	[ -x "$p" ] || { echo "Bail out! $p is not built"; exit 1; }
done

tmp=$(mktemp -d /tmp/isp-sip-test.XXXXXX)
declare -A pid=()
cleanup() {
	local p
	for p in "${pid[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# Bounded wait: until "$@" succeeds, at most $WAIT_S seconds (10).
wait_for() {
	local i
	for i in $(seq 1 $((${WAIT_S:-10} * 20))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}
# prints VALUE CMD...: CMD prints VALUE, run at each try of wait_for.
prints() { [ "$("${@:2}")" = "$1" ]; }

# start NAME CMD...: starts a daemon whose port file is $tmp/NAME.port.
start() {
	local name=$1
	shift
	rm -f "$tmp/$name.port"
	"$@" --port-file "$tmp/$name.port" 2>>"$tmp/$name.log" &
	pid[$name]=$!
	wait_for test -s "$tmp/$name.port" || { echo "Bail out! $name did not start"; cat "$tmp/$name.log"; exit 1; }
	eval "port_$name=$(head -1 "$tmp/$name.port")"
}

# stop NAME: SIGTERM, and the exit status (0 is a clean exit, and under
# ASan one without leaks).
stop() {
	local p=${pid[$1]} i
	kill "$p" 2>/dev/null
	for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	wait "$p"
	local rc=$?
	unset "pid[$1]"
	return $rc
}

# sipp NAME PORT SCENARIO [ARGS...]: one call, trace in $tmp/NAME.msg.
# Keys are given as ARGS (-key user alice ...).
S() {
	local name=$1 port=$2 sc=$3
	shift 3
	(cd "$tmp" && timeout 20 sipp -sf "$SC/$sc" -m 1 -timeout 10s -timeout_error \
	    -trace_msg -message_file "$tmp/$name.msg" -trace_err -error_file "$tmp/$name.err" \
	    -i 127.0.0.1 -p 0 "$@" "127.0.0.1:$port" </dev/null >"$tmp/$name.out" 2>&1)
}

# reg NAME PORT SCENARIO USER CONTACT EXPIRES CALLID SEQ [EXTRA [EXTRA2]] [-- SIPP-ARGS]
reg() {
	local name=$1 port=$2 sc=$3 user=$4 contact=$5 exp=$6 cid=$7 seq=$8
	local extra='X-Test: 1' extra2='X-Test: 2'
	shift 8
	if [ $# -gt 0 ] && [ "$1" != "--" ]; then extra=$1; shift; fi
	if [ $# -gt 0 ] && [ "$1" != "--" ]; then extra2=$1; shift; fi
	[ "${1:-}" = "--" ] && shift
	S "$name" "$port" "$sc" -key user "$user" -key domain "${DOMAIN:-$D}" -key contact "$contact" \
	    -key expires "$exp" -cid_str "$cid" -key seq "$seq" -key extra "$extra" \
	    -key extra2 "$extra2" "$@"
}

# The answer sipp received (the last message it logged as received).
answer() { awk '/message received/ { buf = ""; on = 1; next } /message sent/ { on = 0 } on { buf = buf $0 "\n" } END { printf "%s", buf }' "$tmp/$1.msg"; }
has()    { answer "$1" | grep -qiE -- "$2"; }

get()    { "$ISPCTL" get $T "$1" --json 2>/dev/null; }
field()  { get "$1" | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"; }
present() { get "$1" >/dev/null; }
absent() { ! get "$1" >/dev/null; }
count_prefix() { "$ISPCTL" dump $T --prefix "$1" --json 2>/dev/null | grep -c '"key"'; }
# Events the watcher saw for one key.
events() { grep -cF "\"key\":\"$1\"" "$tmp/watch.json"; }

# The stage: one ispd (hold 20 s, so a stopped registrar keeps its
# session while the TTL test runs), registrar r1 (no authentication,
# short minimum expiry for the expiry tests, three contacts per AOR),
# registrar r2 (digest authentication), two locators.
start ispd "$ISPD" --listen 127.0.0.1:0 --hold 20
export ISPD_SERVER=127.0.0.1:$port_ispd
"$ISPCTL" --name watcher watch $T --json >"$tmp/watch.json" 2>"$tmp/watch.err" &
pid[watch]=$!
wait_for grep -q '"event":"end"' "$tmp/watch.json" || { echo "Bail out! watcher did not start"; exit 1; }

start r1 "$REG" --listen sip:127.0.0.1:0 --id reg-1 --min-expires 2 --max-expires 3600 \
    --max-contacts 3 --domain $D --log-level debug
printf '# test users\nalice:secret\nbob:b0b\n' >"$tmp/creds"
start r2 "$REG" --listen sip:127.0.0.1:0 --id reg-2 --realm $D --credentials "$tmp/creds" \
    --auth-algorithms MD5
start l1 "$LOC" --listen sip:127.0.0.1:0 --id loc-1
start l2 "$LOC" --listen sip:127.0.0.1:0 --id loc-2

# INSTANCES: every service announced itself.
inst_ok() {
	local d
	d=$("$ISPCTL" dump INSTANCES --json) || return 1
	for k in reg-1 reg-2 loc-1 loc-2; do grep -q "\"key\":\"$k\"" <<<"$d" || return 1; done
	grep -q '"key":"reg-1","fields":{"role":"registrar","uri":"sip:127.0.0.1:'"$port_r1"'","version":"[^"]*","started":"[0-9]*"}' <<<"$d" &&
	    grep -q '"key":"loc-2","fields":{"role":"locator"' <<<"$d"
}
check "INSTANCES lists both registrars and both locators with role, uri, version, started" wait_for inst_ok

# --- registering ------------------------------------------------------
A="sip:alice@$D|sip:alice@10.0.0.1:5060"
if reg reg-alice $port_r1 reg_200.xml alice '<sip:alice@10.0.0.1:5060>;q=0.7' 60 cid-alice 1 &&
    has reg-alice '^Contact: <sip:alice@10\.0\.0\.1:5060>;q=0\.7;expires=(59|60)'; then
	ok "REGISTER adds a binding; 200 OK lists it with q and its remaining expiry"
else
	not_ok "REGISTER adds a binding" "$(cat "$tmp/reg-alice.out")" "$(answer reg-alice)"
fi
now=$(date +%s)
al_ok() {
	[ "$(field "$A" aor)" = "sip:alice@$D" ] && [ "$(field "$A" contact)" = "sip:alice@10.0.0.1:5060" ] &&
	    [ "$(field "$A" q)" = "0.7" ] && [ "$(field "$A" transport)" = udp ] &&
	    [[ "$(field "$A" received)" =~ ^127\.0\.0\.1:[0-9]+$ ]] &&
	    [ "$(field "$A" reg_server)" = reg-1 ] && [ "$(field "$A" call_id)" = cid-alice ] &&
	    [ "$(field "$A" cseq)" = 1 ] && [ "$(field "$A" user_agent)" = sipp-isp-test ] &&
	    [ "$(field "$A" path)" = "" ] && [ "$(field "$A" instance)" = "" ] &&
	    e=$(field "$A" expires) && [ "$e" -ge $((now + 58)) ] && [ "$e" -le $((now + 61)) ]
}
check "the binding is in $T with aor, contact, q, received, transport, reg_server, call_id, cseq, user_agent, expires" wait_for al_ok

# A barrier for "nothing happened": register a marker binding and wait
# until the watcher has its event; ispd applies requests in order, so any
# event for an earlier request would be there by then.
marker_n=0
barrier() {
	marker_n=$((marker_n + 1))
	reg marker-$marker_n $port_r1 reg_200.xml marker$marker_n "<sip:m@10.9.9.9>" 60 cid-marker 1 &&
	    wait_for grep -qF "\"key\":\"sip:marker$marker_n@$D|sip:m@10.9.9.9\"" "$tmp/watch.json"
}
barrier
before=$(events "$A")
if reg refresh $port_r1 reg_200.xml alice '<sip:alice@10.0.0.1:5060>;q=0.7' 60 cid-alice 2 && barrier &&
    [ "$(events "$A")" -eq "$before" ] && [ "$(field "$A" cseq)" = 1 ]; then
	ok "a refresh that changes nothing but the expiry emits no event (fields byte-identical, TTL restarted)"
else
	not_ok "a pure refresh is silent" "events before $before, after $(events "$A")" "$(answer refresh)"
fi
if reg refresh-q $port_r1 reg_200.xml alice '<sip:alice@10.0.0.1:5060>;q=0.9' 60 cid-alice 3 &&
    wait_for prints $((before + 1)) events "$A" && [ "$(field "$A" q)" = 0.9 ] && [ "$(field "$A" cseq)" = 3 ]; then
	ok "a refresh that changes a field (q) is one replace event"
else
	not_ok "a changing refresh is an event" "events $(events "$A"), q $(field "$A" q)"
fi
if reg stale $port_r1 reg_400.xml alice '<sip:alice@10.0.0.1:5060>;q=0.5' 60 cid-alice 2 &&
    [ "$(field "$A" q)" = 0.9 ]; then
	ok "an out-of-order CSeq for the same Call-ID is refused (400) and changes nothing"
else
	not_ok "out-of-order CSeq refused" "$(cat "$tmp/stale.out")" "$(answer stale)"
fi
if reg brief $port_r1 reg_423.xml alice '<sip:alice@10.0.0.1:5060>' 1 cid-alice 10 && has brief '^Min-Expires: 2'; then
	ok "an expiry below the minimum gets 423 Interval Too Brief with Min-Expires"
else
	not_ok "423 with Min-Expires" "$(cat "$tmp/brief.out")" "$(answer brief)"
fi
if reg capped $port_r1 reg_200.xml alice '<sip:alice@10.0.0.1:5060>;q=0.9;expires=99999' 0 cid-alice 11 &&
    has capped 'expires=(3599|3600)'; then
	ok "the Contact's expires parameter wins over Expires, and is lowered to the maximum"
else
	not_ok "expires parameter and maximum" "$(answer capped)"
fi

# --- several contacts, the limit, removal, Contact: * -----------------
B1="sip:bob@$D|sip:bob@10.0.0.2"
B2="sip:bob@$D|sip:bob@10.0.0.3"
if reg bob $port_r1 reg_200.xml bob '<sip:bob@10.0.0.2>, <sip:bob@10.0.0.3>;q=0.5' 120 cid-bob 1 &&
    has bob 'sip:bob@10\.0\.0\.2' && has bob 'sip:bob@10\.0\.0\.3>;q=0\.5;expires=' &&
    wait_for present "$B1" && present "$B2"; then
	ok "one REGISTER with two Contacts makes two bindings, both in the 200 OK"
else
	not_ok "two contacts" "$(answer bob)"
fi
if reg bob-max $port_r1 reg_503.xml bob '<sip:bob@10.0.0.4>, <sip:bob@10.0.0.5>' 120 cid-bob 2 &&
    barrier && [ "$(count_prefix "sip:bob@$D|")" -eq 2 ]; then
	ok "bindings beyond --max-contacts are refused (503) and none is added"
else
	not_ok "contact limit" "$(answer bob-max)" "bob has $(count_prefix "sip:bob@$D|")"
fi
if reg bob-rm $port_r1 reg_200.xml bob '<sip:bob@10.0.0.2>;expires=0' 120 cid-bob 3 &&
    ! has bob-rm 'sip:bob@10\.0\.0\.2' && has bob-rm 'sip:bob@10\.0\.0\.3' &&
    wait_for absent "$B1" && present "$B2" &&
    grep -qF "{\"event\":\"withdraw\",\"table\":\"$T\",\"key\":\"$B1\"" "$tmp/watch.json"; then
	ok "expires=0 removes one binding (withdrawn everywhere); the 200 OK lists the rest"
else
	not_ok "unregister one contact" "$(answer bob-rm)"
fi
if reg star-bad $port_r1 reg_400.xml bob '*' 60 cid-bob 4 && present "$B2"; then
	ok "Contact: * without Expires: 0 is refused (400)"
else
	not_ok "Contact: * with Expires 60" "$(answer star-bad)"
fi
if reg star $port_r1 reg_200.xml bob '*' 0 cid-bob 5 && ! has star '^Contact:' &&
    wait_for absent "$B2" && [ "$(count_prefix "sip:bob@$D|")" -eq 0 ]; then
	ok "Contact: * with Expires: 0 removes every binding of the AOR"
else
	not_ok "Contact: *" "$(answer star)"
fi

# --- NAT, Path, +sip.instance, TCP ------------------------------------
C="sip:carol@$D|sip:carol@192.168.1.50:5060"
if reg carol $port_r1 reg_nat.xml carol '<sip:carol@192.168.1.50:5060>' 300 cid-carol 1 \
    'X-Test: 1' 'X-Test: 2' -- -key via 192.168.1.50:5060 &&
    has carol '^Via: .*(rport=[0-9]+.*received=127\.0\.0\.1|received=127\.0\.0\.1.*rport=[0-9]+)' &&
    wait_for present "$C"; then
	ok "NAT: the 200 OK's Via carries received and rport (RFC 3581)"
else
	not_ok "received/rport in Via" "$(answer carol)"
fi
cport=$(sed -n 's/.*rport=\([0-9]*\).*/\1/p' <(answer carol | grep '^Via:') | head -1)
if [ -n "$cport" ] && [ "$(field "$C" received)" = "127.0.0.1:$cport" ] &&
    S carol-inv $port_l1 inv_302.xml -key user carol -key domain $D &&
    has carol-inv "^Contact: <sip:carol@192\.168\.1\.50:5060>;received=\"sip:127\.0\.0\.1:$cport\""; then
	ok "NAT: received is the phone's public ip:port, and the locator's 302 carries it"
else
	not_ok "received field and locator" "received $(field "$C" received), rport $cport" "$(answer carol-inv)"
fi
P="sip:dave@$D|sip:dave@10.0.0.6"
if reg dave $port_r1 reg_200.xml dave '<sip:dave@10.0.0.6>' 300 cid-dave 1 \
    'Path: <sip:edge.example.com;lr>' 'Supported: path' &&
    has dave '^Path: <sip:edge\.example\.com;lr>' && wait_for present "$P" &&
    [ "$(field "$P" path)" = "<sip:edge.example.com;lr>" ]; then
	ok "Path (RFC 3327) is stored in the path field and echoed to a UA that supports it"
else
	not_ok "Path" "path field '$(field "$P" path)'" "$(answer dave)"
fi
IN='<urn:uuid:00000000-0000-1000-8000-000A95A0E128>'
E="sip:erin@$D|$IN"
if reg erin1 $port_r1 reg_200.xml erin "<sip:erin@10.0.0.7>;+sip.instance=\"$IN\"" 300 cid-erin-1 1 &&
    wait_for present "$E" && [ "$(field "$E" instance)" = "$IN" ] &&
    reg erin2 $port_r1 reg_200.xml erin "<sip:erin@10.0.0.8>;+sip.instance=\"$IN\"" 300 cid-erin-2 1 &&
    wait_for prints "sip:erin@10.0.0.8" field "$E" contact &&
    [ "$(count_prefix "sip:erin@$D|")" -eq 1 ] && [ "$(field "$E" call_id)" = cid-erin-2 ]; then
	ok "+sip.instance identifies the binding: a new contact and Call-ID replace it (RFC 5626)"
else
	not_ok "+sip.instance" "erin has $(count_prefix "sip:erin@$D|"); contact $(field "$E" contact)" "$(answer erin2)"
fi
F="sip:frank@$D|sip:frank@10.0.0.9;transport=tcp"
if reg frank $port_r1 reg_200.xml frank '<sip:frank@10.0.0.9;transport=tcp>' 300 cid-frank 1 -- -t t1 &&
    wait_for present "$F" && [ "$(field "$F" transport)" = tcp ]; then
	ok "REGISTER over TCP: transport=tcp"
else
	not_ok "TCP" "$(cat "$tmp/frank.out")" "$(answer frank)"
fi

# --- refusals and other methods ---------------------------------------
if DOMAIN=other.org reg other-domain $port_r1 reg_404.xml mallory '<sip:m@10.0.0.66>' 60 cid-m 1; then
	ok "an AOR outside --domain gets 404"
else
	not_ok "404 for another domain" "$(answer other-domain)"
fi
if reg require $port_r1 reg_420.xml alice '<sip:alice@10.0.0.1:5060>' 60 cid-req 1 'Require: foo' &&
    has require '^Unsupported: foo'; then
	ok "Require with an unknown extension gets 420 with Unsupported"
else
	not_ok "420" "$(answer require)"
fi
if reg broken $port_r1 reg_400.xml alice '<sip:alice@10.0.0.1' 60 cid-broken 1 &&
    grep -q 'warn: REGISTER .*: 400' "$tmp/r1.log"; then
	ok "a REGISTER with a malformed Contact is answered 400 and logged"
else
	not_ok "malformed Contact" "$(answer broken)" "$(tail -n 3 "$tmp/r1.log")"
fi
printf 'garbage\r\n\r\n' >/dev/udp/127.0.0.1/$port_r1
printf 'REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nCSeq: bad\r\n\r\n' >/dev/udp/127.0.0.1/$port_r1
if wait_for grep -q 'sofia-sip: .*garbage' "$tmp/r1.log" &&
    S opt-r1 $port_r1 options_200.xml && has opt-r1 '^SIP/2.0 200' && has opt-r1 '^Allow: REGISTER, OPTIONS'; then
	ok "garbage is dropped and logged; the registrar answers on (OPTIONS 200 with Allow)"
else
	not_ok "garbage" "$(tail -n 3 "$tmp/r1.log")" "$(answer opt-r1)"
fi
if S inv-r1 $port_r1 inv_405.xml -key user alice -key domain $D && has inv-r1 '^Allow: REGISTER, OPTIONS' &&
    S foo-r1 $port_r1 foo_501.xml && has foo-r1 '^SIP/2.0 501'; then
	ok "the registrar answers INVITE with 405 (Allow) and an unknown method with 501"
else
	not_ok "405/501 at the registrar" "$(answer inv-r1)" "$(answer foo-r1)"
fi
if reg reg-l1 $port_l1 reg_405.xml alice '<sip:alice@10.0.0.1:5060>' 60 cid-l1 1 &&
    grep -q 'REGISTER .*reached the locator' "$tmp/l1.log"; then
	ok "the locator never registers: REGISTER gets 405"
else
	not_ok "REGISTER at the locator" "$(answer reg-l1)"
fi

# --- authentication ---------------------------------------------------
G="sip:alice@$D|sip:alice@10.1.0.1"
if reg noauth $port_r2 reg_401.xml alice '<sip:alice@10.1.0.1>' 60 x 1 &&
    has noauth '^WWW-Authenticate: Digest realm="example\.com", nonce="[0-9a-f]{64}", algorithm=MD5, qop="auth"' &&
    barrier && absent "$G"; then
	ok "missing credentials: 401 with a digest challenge (realm, nonce, algorithm, qop)"
else
	not_ok "401" "$(answer noauth)"
fi
if reg badauth $port_r2 reg_auth_403.xml alice '<sip:alice@10.1.0.1>' 60 x 1 -- -au alice -ap wrong -auth_uri $D &&
    barrier && absent "$G"; then
	ok "wrong credentials: 403, nothing registered"
else
	not_ok "403" "$(cat "$tmp/badauth.out")" "$(answer badauth)"
fi
if reg otheruser $port_r2 reg_auth_403.xml alice '<sip:alice@10.1.0.1>' 60 x 1 -- -au bob -ap b0b -auth_uri $D; then
	ok "right password of another user: 403 (a user registers only its own AOR)"
else
	not_ok "403 for another user's credentials" "$(answer otheruser)"
fi
if reg goodauth $port_r2 reg_auth_200.xml alice '<sip:alice@10.1.0.1>' 60 x 1 -- -au alice -ap secret -auth_uri $D &&
    wait_for present "$G" && [ "$(field "$G" reg_server)" = reg-2 ]; then
	ok "right credentials (MD5, qop=auth): 200 and the binding is published"
else
	not_ok "digest 200" "$(cat "$tmp/goodauth.out")" "$(answer goodauth)"
fi

# --- the locator ------------------------------------------------------
if S inv-l1 $port_l1 inv_302.xml -key user alice -key domain $D &&
    has inv-l1 '^Contact: <sip:alice@10\.0\.0\.1:5060>;q=0\.9' && has inv-l1 '^Contact: .*<sip:alice@10\.1\.0\.1>' &&
    S inv-l2 $port_l2 inv_302.xml -key user alice -key domain $D &&
    has inv-l2 '^Contact: <sip:alice@10\.0\.0\.1:5060>;q=0\.9'; then
	ok "a SIPp caller's INVITE to either locator gets 302 with every contact (q kept), from both registrars"
else
	not_ok "302 from the locators" "$(answer inv-l1)" "$(answer inv-l2)"
fi
if S msg-l2 $port_l2 msg_302.xml -key user erin -key domain $D && has msg-l2 '^Contact: <sip:erin@10\.0\.0\.8>'; then
	ok "a MESSAGE gets 302 too"
else
	not_ok "MESSAGE 302" "$(answer msg-l2)"
fi
if S nobody $port_l1 inv_480.xml -key user nobody -key domain $D; then
	ok "an AOR without bindings gets 480 Temporarily Unavailable"
else
	not_ok "480" "$(answer nobody)"
fi

# --- baresip, a real phone --------------------------------------------
mkdir -p "$tmp/bs"
cat >"$tmp/bs/config" <<EOF
sip_listen 127.0.0.1:0
dns_server 127.0.0.1:53
module_path /usr/lib/baresip/modules
module account.so
audio_player nil
audio_source nil
audio_alert nil
EOF
echo "<sip:zoe@$D>;regint=600;outbound=\"sip:127.0.0.1:$port_r1\"" >"$tmp/bs/accounts"
timeout 60 baresip -4 -f "$tmp/bs" -t 40 </dev/null >"$tmp/baresip.out" 2>&1 &
pid[baresip]=$!
zoe() { "$ISPCTL" dump $T --prefix "sip:zoe@$D|" --json | grep -q '"user_agent":"baresip'; }
if wait_for zoe && S zoe $port_l2 inv_302.xml -key user zoe -key domain $D &&
    has zoe '^Contact: <sip:zoe-[^@]*@127\.0\.0\.1:[0-9]+'; then
	ok "baresip registers through the registrar and is found through the locator (302 to its contact)"
else
	not_ok "baresip" "$(tail -n 5 "$tmp/baresip.out")" "$(answer zoe)"
fi
kill -INT "${pid[baresip]}" 2>/dev/null
if WAIT_S=15 wait_for sh -c "! '$ISPCTL' dump $T --prefix 'sip:zoe@$D|' --json | grep -q key"; then
	ok "baresip unregisters on exit and its binding is withdrawn"
else
	not_ok "baresip unregister" "$(tail -n 5 "$tmp/baresip.out")"
fi
wait "${pid[baresip]}" 2>/dev/null; unset "pid[baresip]"

# --- expiry -----------------------------------------------------------
X="sip:gina@$D|sip:gina@10.0.0.10"
if reg gina $port_r1 reg_200.xml gina '<sip:gina@10.0.0.10>' 2 cid-gina 1 && wait_for present "$X" &&
    S gina-inv $port_l1 inv_302.xml -key user gina -key domain $D &&
    wait_for absent "$X" && S gina-gone $port_l1 inv_480.xml -key user gina -key domain $D &&
    grep -qF "{\"event\":\"withdraw\",\"table\":\"$T\",\"key\":\"$X\",\"owner\":\"reg-1\"" "$tmp/watch.json" &&
    grep -F "\"key\":\"$X\"" "$tmp/watch.json" | tail -1 | grep -q '"reason":"withdrawn"'; then
	ok "expiry removes the binding everywhere: withdrawn by the registrar itself (not by ispd's TTL), 480 at the locator"
else
	not_ok "expiry" "$(answer gina-gone)"
fi
# The registrar cannot withdraw (stopped): ispd's TTL, which follows the
# binding's expiry, withdraws it itself.
H="sip:hank@$D|sip:hank@10.0.0.11"
if reg hank $port_r1 reg_200.xml hank '<sip:hank@10.0.0.11>' 2 cid-hank 1 && wait_for present "$H" &&
    kill -STOP "${pid[r1]}" && wait_for absent "$H" &&
    grep -qF "\"key\":\"$H\",\"owner\":\"reg-1\",\"seq\"" "$tmp/watch.json" &&
    grep -F "\"key\":\"$H\"" "$tmp/watch.json" | tail -1 | grep -q '"reason":"expired"'; then
	ok "a binding the registrar fails to remove is withdrawn by ispd's TTL (reason expired)"
else
	not_ok "TTL safety net" "$(grep -F "$H" "$tmp/watch.json")"
fi
kill -CONT "${pid[r1]}"

# --- the registrar dies -----------------------------------------------
kill -KILL "${pid[r1]}"; wait "${pid[r1]}" 2>/dev/null; unset "pid[r1]"
gone() { [ "$("$ISPCTL" dump $T --json | grep -c '"owner":"reg-1"')" -eq 0 ]; }
if wait_for gone && wait_for absent "$A" && present "$G" &&
    S dead-l1 $port_l1 inv_302.xml -key user alice -key domain $D && ! has dead-l1 '10\.0\.0\.1:5060' &&
    S dead-l2 $port_l2 inv_480.xml -key user carol -key domain $D &&
    ! "$ISPCTL" dump INSTANCES --json | grep -q '"key":"reg-1"'; then
	ok "killing a registrar withdraws its bindings and its instance everywhere; the other registrar's stay"
else
	not_ok "registrar killed" "$("$ISPCTL" dump $T)" "$(answer dead-l1)"
fi
start r1 "$REG" --listen sip:127.0.0.1:0 --id reg-1 --min-expires 2
if reg again $port_r1 reg_200.xml carol '<sip:carol@192.168.1.50:5060>' 300 cid-carol-2 1 &&
    S again-inv $port_l2 inv_302.xml -key user carol -key domain $D &&
    has again-inv '^Contact: <sip:carol@192\.168\.1\.50:5060>'; then
	ok "a phone re-registers through a new registrar and is found again"
else
	not_ok "re-register" "$(answer again-inv)"
fi

# --- placement --------------------------------------------------------
if "$ISPCTL" place 2>&1 | grep -q 'unknown command'; then
	skip "ispctl place" "not registered in this ispctl"
else
	p1=$("$ISPCTL" place registrar "sip:alice@$D" 2>&1)
	p2=$("$ISPCTL" place registrar "sip:alice@$D" 2>&1)
	if [[ "$p1" =~ ^reg-[12]\  ]] && [ "$p1" = "$p2" ] &&
	    "$ISPCTL" place locator "sip:alice@$D" | grep -qE '^loc-[12] sip:127\.0\.0\.1:'; then
		ok "ispctl place picks a live instance of the role, the same every time"
	else
		not_ok "ispctl place" "$p1" "$p2"
	fi
	# --json before or after the arguments: the same record.
	j1=$("$ISPCTL" place --json registrar "sip:alice@$D" 2>&1)
	j2=$("$ISPCTL" place registrar "sip:alice@$D" --json 2>&1)
	if [[ "$j1" == '{"instance":"'"${p1%% *}"'","account":"sip:alice@'"$D"'","fields":{"role":"registrar","uri":"'* ]] && [ "$j1" = "$j2" ]; then
		ok "ispctl place --json, before or after ROLE ACCOUNT, prints the instance's record"
	else
		not_ok "ispctl place --json in either place" "$j1" "$j2"
	fi
fi

# --- placement passes over a draining instance (an Asterisk told
# `isp drain`): its accounts go where they would go if it were gone.
for i in 1 2 3; do
	"$ISPCTL" --name "pool-$i" announce INSTANCES "pool-$i" role=pool \
	    uri=sip:127.0.0.1:500$i status=up 2>/dev/null &
	pid[pool$i]=$!
done
pools() { "$ISPCTL" dump INSTANCES --json 2>/dev/null | grep -c '"role":"pool"'; }
wait_for prints 3 pools
owner=$("$ISPCTL" place pool sip:2001@$D 2>/dev/null | cut -d' ' -f1)
pn=${owner#pool-}
"$ISPCTL" --name "pool-$pn-drained" announce INSTANCES "$owner" role=pool \
    uri=sip:127.0.0.1:500$pn status=draining 2>/dev/null &
pid[drain]=$!
# The pipe inside the wait: ispctl succeeding is not the record draining.
seen_draining=yes
wait_for sh -c "'$ISPCTL' dump INSTANCES --json --prefix '$owner' | grep -q '\"status\":\"draining\"'" ||
    seen_draining=no
drained=$("$ISPCTL" place pool sip:2001@$D 2>/dev/null | cut -d' ' -f1)
kill "${pid[drain]}" "${pid[pool$pn]}" 2>/dev/null
unset "pid[drain]" "pid[pool$pn]"
wait_for sh -c "! '$ISPCTL' dump INSTANCES --prefix '$owner' 2>/dev/null | grep -q ."
gone=$("$ISPCTL" place pool sip:2001@$D 2>/dev/null | cut -d' ' -f1)
if [[ "$owner" =~ ^pool-[123]$ ]] && [ $seen_draining = yes ] && [ -n "$drained" ] && [ "$drained" != "$owner" ] &&
    [ "$drained" = "$gone" ]; then
	ok "placement passes over a draining instance, as if it were gone"
else
	not_ok "placement and draining" "owner=$owner (seen draining: $seen_draining) drained=$drained gone=$gone"
fi
for i in 1 2 3; do [ -n "${pid[pool$i]:-}" ] && kill "${pid[pool$i]}" 2>/dev/null; unset "pid[pool$i]"; done

# --- graceful restart: the registrar's session is lost -----------------
# A second ispd keeps SIP_REGISTRATION for a lost session (docs/HA.md,
# "Graceful restart for publishers"), with a 1 s hold so that a stopped
# registrar loses its session quickly; registrar r3 publishes into it.
# r3 is stopped past the hold time: ispd holds its three bindings. One is
# removed (a REGISTER with expires=0, queued at the stopped registrar's
# socket) before r3 runs again: r3 notices the lost session, reconnects,
# republishes the two it has and says END_OF_REPLAY, so ispd withdraws
# the third then (reason session) and holds nothing, within seconds, not
# at the end of the 30 s grace time; the two others see no event.
start ispd_g "$ISPD" --listen 127.0.0.1:0 --hold 1 --graceful-table $T --graceful-seconds 30
G=127.0.0.1:$port_ispd_g
gctl() { "$ISPCTL" -s "$G" "$@"; }
gget() { gctl get $T "$1" --json 2>/dev/null; }
gpresent() { gget "$1" >/dev/null; }
gfield() { gget "$1" | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"; }
gevents() { grep -cF "\"key\":\"$1\"" "$tmp/gwatch.json"; }
held() { gctl stats --json 2>/dev/null | sed -n 's/.*"held_records":\([0-9]*\).*/\1/p'; }
held_is() { [ "$(held)" = "$1" ]; }
# The watcher saw K3 withdrawn by ispd for the session (not by its owner).
k3_swept() { grep -F "\"key\":\"$K3\"" "$tmp/gwatch.json" | grep '"event":"withdraw"' | grep -q '"reason":"held, not taken back"'; }
# Datagrams waiting in the registrar's UDP socket.
r3_queued() { [ "$(ss -Hnua "sport = :$port_r3" | awk '{ n += $2 } END { print n + 0 }')" -gt 0 ]; }
# Not through gctl: $! must be ispctl's own pid, for cleanup.
"$ISPCTL" -s "$G" --name gwatcher watch $T --json >"$tmp/gwatch.json" 2>"$tmp/gwatch.err" &
pid[gwatch]=$!
wait_for grep -q '"event":"end"' "$tmp/gwatch.json" || { echo "Bail out! the second watcher did not start"; exit 1; }
start r3 "$REG" --listen sip:127.0.0.1:0 --ispd "$G" --id reg-3 --min-expires 2 --domain $D --log-level debug
K1="sip:ivy@$D|sip:ivy@10.0.2.1"
K2="sip:jay@$D|sip:jay@10.0.2.2"
K3="sip:kim@$D|sip:kim@10.0.2.3"
if reg ivy $port_r3 reg_200.xml ivy '<sip:ivy@10.0.2.1>' 300 cid-ivy 1 &&
    reg jay $port_r3 reg_200.xml jay '<sip:jay@10.0.2.2>' 300 cid-jay 1 &&
    reg kim $port_r3 reg_200.xml kim '<sip:kim@10.0.2.3>' 300 cid-kim 1 &&
    wait_for gpresent "$K1" && wait_for gpresent "$K2" && wait_for gpresent "$K3" &&
    [ "$(gfield "$K1" reg_server)" = reg-3 ] &&
    held_is 0 && [ "$(grep -c 'connected to ispd' "$tmp/r3.log")" -eq 1 ]; then
	ok "graceful ispd: three phones registered through registrar reg-3, nothing held"
else
	not_ok "graceful ispd: three phones registered" "$(gctl dump $T 2>&1)" "held $(held)" \
	    "$(grep 'connected to ispd' "$tmp/r3.log")"
fi
ev1=$(gevents "$K1")
ev2=$(gevents "$K2")
kill -STOP "${pid[r3]}"
if wait_for held_is 3; then
	ok "the stopped registrar's session ends as lost after the 1 s hold: ispd holds its 3 bindings"
else
	not_ok "bindings held for the stopped registrar" "held $(held)" \
	    "$(grep -e reg-3 -e held "$tmp/ispd_g.log" | tail -n 5)"
fi
# kim unregisters meanwhile: the REGISTER waits in r3's socket.
reg kim-rm $port_r3 reg_200.xml kim '<sip:kim@10.0.2.3>;expires=0' 300 cid-kim 2 &
rm_job=$!
# Waiting in r3's socket is the point: r3 reads it once it runs again.
queued=yes
wait_for r3_queued || queued=no
t_cont=$(date +%s%N)
kill -CONT "${pid[r3]}"
wait $rm_job
rm_rc=$?
if WAIT_S=10 wait_for held_is 0; then
	back_ms=$((($(date +%s%N) - t_cont) / 1000000))
	wait_for k3_swept
	withdraws=$(grep -F "\"key\":\"$K3\"" "$tmp/gwatch.json" | grep -c '"event":"withdraw"')
	# Nothing held within 10 s of a 30 s grace time: ispd took the
	# END_OF_REPLAY, which is what released K3 (the watcher saw why).
	if [ $queued = yes ] && [ $rm_rc -eq 0 ] && gpresent "$K1" && gpresent "$K2" && ! gpresent "$K3" &&
	    k3_swept && [ "$withdraws" -eq 1 ] &&
	    [ "$(gevents "$K1")" -eq "$ev1" ] && [ "$(gevents "$K2")" -eq "$ev2" ] &&
	    grep -q 'republished 2 bindings' "$tmp/r3.log" &&
	    [ "$(grep -c 'connected to ispd' "$tmp/r3.log")" -eq 2 ]; then
		ok "the registrar reconnects, republishes and ends its replay: nothing held ${back_ms} ms after it runs again (grace 30 s), the unregistered binding withdrawn (reason held), the others unchanged without an event"
	else
		not_ok "graceful reconnect of the registrar" "kim-rm queued at r3: $queued; sipp exit $rm_rc; kim withdraws $withdraws" \
		    "$(gctl dump $T 2>&1)" "$(grep -F -e "$K1" -e "$K2" -e "$K3" "$tmp/gwatch.json")" \
		    "$(grep -e 'connected to ispd' -e republished -e 'end the replay' "$tmp/r3.log")" \
		    "$(grep -e 'reg-3' "$tmp/ispd_g.log" | tail -n 5)"
	fi
else
	not_ok "graceful reconnect of the registrar: held_records back to 0 within 10 s" "held $(held)" \
	    "$(grep -e 'connected to ispd' -e republished -e 'end the replay' "$tmp/r3.log")" \
	    "$(grep -e reg-3 -e held -e replay "$tmp/ispd_g.log" | tail -n 5)"
fi

# --- orderly shutdown (under ASan: no leaks) --------------------------
rc_all=0
for d in l1 l2 r1 r2 r3; do stop $d || { rc_all=1; echo "# $d exited $?"; tail -n 5 "$tmp/$d.log" | sed 's/^/# /'; }; done
if [ $rc_all -eq 0 ] && grep -q 'stopping: .* REGISTERs' "$tmp/r2.log"; then
	ok "registrars and locators exit 0 on SIGTERM"
else
	not_ok "clean exit"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
