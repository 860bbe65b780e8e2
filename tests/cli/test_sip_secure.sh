#!/bin/bash
# isp-registrar and isp-locator in the setup of docs/HA.md and
# docs/SECURITY.md: two reflectors given as a list (libisp reconnects and
# merges), one of them killed and restarted; then a TLS reflector with
# secrets, a client certificate and rules; then --config files. SIPp
# registers and calls, ispctl reads what reached each ispd. Prints TAP.
#
# Usage: tests/cli/test_sip_secure.sh BUILD_DIR
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
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }

command -v sipp >/dev/null || { echo "Bail out! sipp is missing (run scripts/deps.sh)"; exit 1; }
command -v openssl >/dev/null || { echo "Bail out! openssl is missing"; exit 1; }
for p in "$ISPD" "$ISPCTL" "$REG" "$LOC"; do
	[ -x "$p" ] || { echo "Bail out! $p is not built"; exit 1; }
done

tmp=$(mktemp -d /tmp/isp-sip-secure.XXXXXX)
declare -A pid=()
cleanup() {
	local p
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null; done
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
# start NAME CMD...: a daemon whose port file is $tmp/NAME.port.
start() {
	local name=$1
	shift
	rm -f "$tmp/$name.port"
	"$@" --port-file "$tmp/$name.port" 2>>"$tmp/$name.log" &
	pid[$name]=$!
	wait_for test -s "$tmp/$name.port" || { echo "Bail out! $name did not start"; cat "$tmp/$name.log"; exit 1; }
	eval "port_$name=$(head -1 "$tmp/$name.port")"
}
# stop NAME: SIGTERM; the exit status (0: clean, and leak-free under ASan).
stop() {
	local p=${pid[$1]} i
	kill "$p" 2>/dev/null
	for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	wait "$p"
	local rc=$?
	unset "pid[$1]"
	return $rc
}
# exits NAME: the exit status of a daemon that ends by itself, waited for
# at most 10 s (124 when it did not end).
exits() {
	local p=${pid[$1]} i
	for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$p" 2>/dev/null; then kill "$p"; wait "$p"; unset "pid[$1]"; return 124; fi
	wait "$p"
	local rc=$?
	unset "pid[$1]"
	return $rc
}
# sipp NAME PORT SCENARIO [ARGS...]: one call, trace in $tmp/NAME.msg.
S() {
	local name=$1 port=$2 sc=$3
	shift 3
	(cd "$tmp" && timeout 20 sipp -sf "$SC/$sc" -m 1 -timeout 10s -timeout_error \
	    -trace_msg -message_file "$tmp/$name.msg" -i 127.0.0.1 -p 0 "$@" \
	    "127.0.0.1:$port" </dev/null >"$tmp/$name.out" 2>&1)
}
# reg NAME PORT USER CONTACT: a REGISTER for 300 s.
reg() {
	S "$1" "$2" reg_200.xml -key user "$3" -key domain $D -key contact "$4" \
	    -key expires 300 -cid_str "cid-$1" -key seq 1 -key extra 'X-Test: 1' -key extra2 'X-Test: 2'
}
# inv NAME PORT USER: an INVITE answered 302.
inv() { S "$1" "$2" inv_302.xml -key user "$3" -key domain $D; }
answer() { awk '/message received/ { buf = ""; on = 1; next } /message sent/ { on = 0 } on { buf = buf $0 "\n" } END { printf "%s", buf }' "$tmp/$1.msg"; }
has() { answer "$1" | grep -qiE -- "$2"; }
# at HOSTPORT KEY: ispd at HOSTPORT holds the binding KEY.
at() { "$ISPCTL" -s "$1" get $T "$2" >/dev/null 2>&1; }
not_at() { ! at "$@"; }

# --- two reflectors -----------------------------------------------------
start A "$ISPD" --listen 127.0.0.1:0 --hold 3
start B "$ISPD" --listen 127.0.0.1:0 --hold 3
AB=127.0.0.1:$port_A,127.0.0.1:$port_B
start r1 "$REG" --listen sip:127.0.0.1:0 --id reg-1 --ispd "$AB"
start l1 "$LOC" --listen sip:127.0.0.1:0 --id loc-1 --ispd 127.0.0.1:$port_A --ispd 127.0.0.1:$port_B
ISPD_SERVER=$AB start l2 "$LOC" --listen sip:127.0.0.1:0 --id loc-2

instances() {	# HOSTPORT: every service announced itself there
	local d
	d=$("$ISPCTL" -s "$1" dump INSTANCES --json) || return 1
	for k in reg-1 loc-1 loc-2; do grep -q "\"key\":\"$k\"" <<<"$d" || return 1; done
}
if wait_for instances 127.0.0.1:$port_A && wait_for instances 127.0.0.1:$port_B; then
	ok "--ispd A,B, repeated --ispd and ISPD_SERVER=A,B: the registrar and both locators are in INSTANCES on both reflectors"
else
	not_ok "instances on both reflectors" "$("$ISPCTL" -s 127.0.0.1:$port_A dump INSTANCES 2>&1)" \
	    "$("$ISPCTL" -s 127.0.0.1:$port_B dump INSTANCES 2>&1)" "$(tail -n 3 "$tmp/r1.log")"
fi

K1="sip:alice@$D|sip:alice@10.0.0.1:5060"
if reg alice $port_r1 alice '<sip:alice@10.0.0.1:5060>' &&
    wait_for at 127.0.0.1:$port_A "$K1" && wait_for at 127.0.0.1:$port_B "$K1"; then
	ok "a REGISTER at the registrar is published into both reflectors"
else
	not_ok "REGISTER in both" "$(answer alice | head -1)" "$(tail -n 3 "$tmp/r1.log")"
fi
if wait_for inv l1-alice $port_l1 alice && has l1-alice '^Contact: <sip:alice@10\.0\.0\.1:5060>' &&
    wait_for inv l2-alice $port_l2 alice && has l2-alice '^Contact: <sip:alice@10\.0\.0\.1:5060>'; then
	ok "both locators answer 302 with the contact (one view merged over both reflectors)"
else
	not_ok "locators before the kill" "$(answer l1-alice)" "$(answer l2-alice)"
fi

{ kill -KILL "${pid[A]}"; wait "${pid[A]}"; } 2>/dev/null
unset "pid[A]"
K2="sip:bob@$D|sip:bob@10.0.0.2:5060"
if wait_for grep -q "session to ispd at 127.0.0.1:$port_A ended" "$tmp/r1.log" &&
    kill -0 "${pid[r1]}" && reg bob $port_r1 bob '<sip:bob@10.0.0.2:5060>' &&
    wait_for at 127.0.0.1:$port_B "$K2"; then
	ok "reflector A killed: the registrar stays up, says so, and publishes a new REGISTER through B"
else
	not_ok "registrar after the kill" "$(tail -n 4 "$tmp/r1.log")"
fi
if inv l1-bob $port_l1 bob && has l1-bob '^Contact: <sip:bob@10\.0\.0\.2:5060>' &&
    inv l1-alice2 $port_l1 alice && has l1-alice2 '^Contact: <sip:alice@10\.0\.0\.1:5060>' &&
    inv l2-bob $port_l2 bob && has l2-bob '^Contact: <sip:bob@10\.0\.0\.2:5060>'; then
	ok "with A dead the locators still answer: the new binding and the old one (held by B)"
else
	not_ok "locators after the kill" "$(answer l1-bob)" "$(answer l1-alice2)" "$(answer l2-bob)"
fi
# A restarted on its port: libisp reconnects and replays into it.
start A "$ISPD" --listen 127.0.0.1:$port_A --hold 3
if WAIT_S=15 wait_for at 127.0.0.1:$port_A "$K1" && wait_for at 127.0.0.1:$port_A "$K2" &&
    wait_for instances 127.0.0.1:$port_A; then
	ok "A restarted: the registrar's bindings and every instance are back in it (libisp's replay)"
else
	not_ok "replay into the restarted reflector" "$("$ISPCTL" -s 127.0.0.1:$port_A dump $T 2>&1)" \
	    "$(tail -n 3 "$tmp/r1.log")"
fi
rc_all=0
for d in r1 l1 l2; do stop $d || { rc_all=1; echo "# $d exited $?"; tail -n 3 "$tmp/$d.log" | sed 's/^/# /'; }; done
if [ $rc_all -eq 0 ]; then ok "registrar and locators on two reflectors exit 0 on SIGTERM"; else not_ok "clean exit"; fi

# --- TLS, secrets, a client certificate, rules ------------------------
(cd "$tmp" &&
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.crt -days 1 -subj "/CN=test CA" &&
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout other-ca.key -out other-ca.crt -days 1 -subj "/CN=other CA" &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout server.key -out server.csr -subj "/CN=localhost" &&
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext &&
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days 1 -extfile server.ext -out server.crt &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout loc.key -out loc.csr -subj "/CN=loc-tls" &&
openssl x509 -req -in loc.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days 1 -out loc.crt &&
chmod 600 ca.key other-ca.key server.key loc.key) >"$tmp/openssl.log" 2>&1 ||
    { echo "Bail out! cannot make certificates: $(tail -n 3 "$tmp/openssl.log")"; exit 1; }
for who in reg-tls reg-cf loc-ex watcher; do
	s=$(openssl rand -hex 16)
	(umask 077; echo "$who $s" >>"$tmp/secrets"; echo "$s" >"$tmp/$who.secret")
done
(umask 077; openssl rand -hex 16 >"$tmp/wrong.secret")
cat >"$tmp/ispd.conf" <<EOF
tls-cert server.crt
tls-key server.key
tls-ca ca.crt
credentials secrets
default deny
allow reg-* announce,create $T
allow loc-* subscribe,create $T
allow watcher subscribe *
EOF
start S "$ISPD" --config "$tmp/ispd.conf" --listen-tls 127.0.0.1:0
SP=127.0.0.1:$port_S
sctl() { "$ISPCTL" -s $SP --tls-ca "$tmp/ca.crt" --name watcher --secret-file "$tmp/watcher.secret" "$@"; }
sat() { sctl get $T "$1" >/dev/null 2>&1; }
owner() { sctl get $T "$1" --json 2>/dev/null | sed -n 's/.*"owner":"\([^"]*\)".*/\1/p'; }

start rt "$REG" --listen sip:127.0.0.1:0 --id reg-tls --ispd $SP --tls-ca "$tmp/ca.crt" \
    --secret-file "$tmp/reg-tls.secret"
start lt "$LOC" --listen sip:127.0.0.1:0 --id loc-tls --ispd $SP --tls-ca "$tmp/ca.crt" \
    --tls-cert "$tmp/loc.crt" --tls-key "$tmp/loc.key"
K3="sip:carol@$D|sip:carol@10.0.0.3:5060"
if wait_for grep -q "connected to ispd at $SP as reg-tls .*over TLS" "$tmp/rt.log" &&
    reg carol $port_rt carol '<sip:carol@10.0.0.3:5060>' && wait_for sat "$K3" &&
    [ "$(owner "$K3")" = reg-tls ]; then
	ok "TLS and a secret: the registrar publishes a REGISTER as reg-tls (default deny, reg-* may announce,create $T)"
else
	not_ok "registrar over TLS" "$(tail -n 4 "$tmp/rt.log")" "$(tail -n 4 "$tmp/S.log")"
fi
if wait_for inv lt-carol $port_lt carol && has lt-carol '^Contact: <sip:carol@10\.0\.0\.3:5060>' &&
    grep -q "connected to ispd at $SP as loc-tls .*over TLS" "$tmp/lt.log"; then
	ok "TLS and a client certificate: the locator subscribes as loc-tls and answers 302"
else
	not_ok "locator over TLS" "$(answer lt-carol)" "$(tail -n 4 "$tmp/lt.log")" "$(tail -n 4 "$tmp/S.log")"
fi
# Neither may announce into INSTANCES: the refusal is an error naming
# the rule, and the service goes on.
if wait_for grep -q "error: ispd .* refused request .* of reg-tls: .*INSTANCES.*default" "$tmp/rt.log" &&
    kill -0 "${pid[rt]}"; then
	ok "a request the rules forbid (INSTANCES) is logged as an error naming the rule; the registrar goes on"
else
	not_ok "denied INSTANCES" "$(grep -i refused "$tmp/rt.log")"
fi

start wrong "$REG" --listen sip:127.0.0.1:0 --id reg-tls --ispd $SP --tls-ca "$tmp/ca.crt" \
    --secret-file "$tmp/wrong.secret"
exits wrong
rc=$?
if [ $rc -eq 4 ] && grep -q "error: .*authentication.*check --secret-file.*not retrying" "$tmp/wrong.log"; then
	ok "a wrong secret: the registrar says so with a hint and exits 4 (no retry loop)"
else
	not_ok "wrong secret" "exit $rc" "$(tail -n 3 "$tmp/wrong.log")"
fi
start wrongca "$LOC" --listen sip:127.0.0.1:0 --id loc-tls --ispd $SP --tls-ca "$tmp/other-ca.crt" \
    --tls-cert "$tmp/loc.crt" --tls-key "$tmp/loc.key"
exits wrongca
rc=$?
if [ $rc -eq 4 ] && grep -q "error: the certificate of ispd at $SP is not trusted: .*--tls-ca.*not retrying" "$tmp/wrongca.log"; then
	ok "ispd's certificate from another CA: the locator says so and exits 4"
else
	not_ok "wrong CA" "exit $rc" "$(tail -n 3 "$tmp/wrongca.log")"
fi
(umask 022; cp "$tmp/reg-tls.secret" "$tmp/open.secret"; chmod 644 "$tmp/open.secret")
out=$("$REG" --listen sip:127.0.0.1:0 --id reg-tls --ispd $SP --secret-file "$tmp/open.secret" 2>&1)
rc=$?
if [ $rc -eq 2 ] && grep -q "the secret file .*open.secret is readable by every user (mode 0644); chmod 600" <<<"$out"; then
	ok "a secret file every user can read is refused at start (exit 2), as ispctl refuses it"
else
	not_ok "open secret file" "exit $rc" "$out"
fi
out=$("$LOC" --ispd 127.0.0.1:1 --tls-cert "$tmp/loc.crt" 2>&1)
rc=$?
out2=$("$LOC" --ispd 127.0.0.1:1 --tls-ca "$tmp/nonexistent.crt" 2>&1)
rc2=$?
out4=$(ISPD_SERVER=" , " "$REG" 2>&1)
rc4=$?
if [ $rc -eq 2 ] && grep -q "tls-cert and --tls-key go together" <<<"$out" &&
    [ $rc2 -eq 2 ] && grep -q "cannot read the CA file (--tls-ca) .*nonexistent.crt" <<<"$out2" &&
    [ $rc4 -eq 2 ] && grep -q 'no server in " , " .* in \$ISPD_SERVER' <<<"$out4"; then
	ok "a certificate without its key, a missing CA file, an empty \$ISPD_SERVER: refused at start (exit 2)"
else
	not_ok "bad TLS options" "$rc $out" "$rc2 $out2" "$rc4 $out4"
fi

# --- configuration files ----------------------------------------------
mkdir -p "$tmp/etc"
cp "$tmp/ca.crt" "$tmp/loc.crt" "$tmp/loc.key" "$tmp/reg-cf.secret" "$tmp/etc/"
printf '# test users\ndave:d4ve\n' >"$tmp/etc/sip-users"
# Every option of the registrar; relative paths from the file's directory.
cat >"$tmp/etc/isp-registrar.conf" <<EOF
# the registrar of test_sip_secure
listen sip:127.0.0.1:0
port-file reg-cf.port     # written next to this file
ispd 127.0.0.1:1
ispd $SP
id reg-cf
min-expires 30
max-expires 600
default-expires 120
max-contacts 5
domain $D
domain example.org
realm $D
credentials sip-users
auth-algorithms MD5
nonce-ttl 60
log-level debug
tls yes
tls-ca ca.crt
tls-server-name localhost
secret-file reg-cf.secret
EOF
"$REG" --config "$tmp/etc/isp-registrar.conf" 2>"$tmp/rcf.log" &
pid[rcf]=$!
if wait_for test -s "$tmp/etc/reg-cf.port" &&
    wait_for grep -q "connected to ispd at 127.0.0.1:1, $SP as reg-cf .*1 of 2 up).* over TLS" "$tmp/rcf.log" &&
    grep -q "registrar reg-cf: expiries 30..600 s (default 120), 5 contacts per AOR, authentication on" "$tmp/rcf.log" &&
    S cf-401 "$(head -1 "$tmp/etc/reg-cf.port")" reg_401.xml -key user dave -key domain $D \
	-key contact '<sip:dave@10.0.0.4>' -key expires 60 -cid_str cf -key seq 1 \
	-key extra 'X-Test: 1' -key extra2 'X-Test: 2'; then
	ok "a configuration file with every option of the registrar: TLS, secret, two reflectors, digest on (401), paths from its directory"
else
	not_ok "registrar --config" "$(tail -n 5 "$tmp/rcf.log")" "$(answer cf-401 | head -1)"
fi
stop rcf || not_ok "registrar --config exits 0" "$(tail -n 3 "$tmp/rcf.log")"
# The command line wins: --max-contacts, --log-level, and --ispd, which
# replaces the file's two.
"$REG" --config "$tmp/etc/isp-registrar.conf" --max-contacts 7 --ispd $SP --log-level info \
    --port-file "$tmp/rcf2.port" 2>"$tmp/rcf2.log" &
pid[rcf2]=$!
if wait_for test -s "$tmp/rcf2.port" &&
    wait_for grep -q "connected to ispd at $SP as reg-cf (session [0-9]*, 1 of 1 up) over TLS" "$tmp/rcf2.log" &&
    grep -q "7 contacts per AOR" "$tmp/rcf2.log" && ! grep -q ' debug: ' "$tmp/rcf2.log"; then
	ok "the command line wins over the file (--max-contacts, --log-level, --ispd replacing the file's list, --port-file)"
else
	not_ok "command line over file" "$(tail -n 5 "$tmp/rcf2.log")"
fi
stop rcf2 || not_ok "registrar --config exits 0 (2)"
cat >"$tmp/etc/isp-locator.conf" <<EOF
listen sip:127.0.0.1:0
port-file loc-cf.port
ispd $SP
id loc-tls
log-level info
tls-ca ca.crt
tls-cert loc.crt
tls-key loc.key
tls-server-name localhost
EOF
"$LOC" --config "$tmp/etc/isp-locator.conf" 2>"$tmp/lcf.log" &
pid[lcf]=$!
if wait_for test -s "$tmp/etc/loc-cf.port" &&
    wait_for inv lcf-carol "$(head -1 "$tmp/etc/loc-cf.port")" carol && has lcf-carol '^Contact: <sip:carol@10\.0\.0\.3:5060>'; then
	ok "a configuration file with every option of the locator (TLS with a client certificate)"
else
	not_ok "locator --config" "$(tail -n 5 "$tmp/lcf.log")"
fi
stop lcf || not_ok "locator --config exits 0" "$(tail -n 3 "$tmp/lcf.log")"
printf 'listen sip:127.0.0.1:0\n\nmax-contacts lots\n' >"$tmp/bad1.conf"
printf '# ok\nlisen sip:127.0.0.1:0\nid a b\nid c\nid d\ntls maybe\nconfig x\n' >"$tmp/bad2.conf"
out1=$("$REG" --config "$tmp/bad1.conf" 2>&1)
rc1=$?
out2=$("$LOC" --config "$tmp/bad2.conf" 2>&1)
rc2=$?
out3=$("$LOC" --config "$tmp/missing.conf" 2>&1)
rc3=$?
if [ $rc1 -eq 2 ] && grep -q "^isp-registrar: $tmp/bad1.conf:3: invalid --max-contacts \"lots\"" <<<"$out1" &&
    [ $rc2 -eq 2 ] && grep -q "^$tmp/bad2.conf:2: unknown keyword 'lisen' (expected listen, port-file, ispd," <<<"$out2" &&
    grep -q "^$tmp/bad2.conf:3: id takes one value" <<<"$out2" &&
    grep -q "^$tmp/bad2.conf:5: id given twice (first at line 4)" <<<"$out2" &&
    grep -q "^$tmp/bad2.conf:6: tls takes yes or no, not 'maybe'" <<<"$out2" &&
    grep -q "^$tmp/bad2.conf:7: unknown keyword 'config'" <<<"$out2" &&
    grep -q "^isp-locator: 5 errors in $tmp/bad2.conf" <<<"$out2" &&
    [ $rc3 -eq 2 ] && grep -q "missing.conf: cannot read it: No such file" <<<"$out3"; then
	ok "bad configuration lines are named FILE:LINE, all of them, and refused (exit 2); so is a missing file"
else
	not_ok "bad configuration" "$rc1 $out1" "$rc2 $out2" "$rc3 $out3"
fi

# The examples stay valid: with the test's addresses, files and names
# in place of theirs, each starts and connects over TLS.
ex() {	# NAME PROGRAM ID SECRET
	sed -e "s|^listen .*|listen sip:127.0.0.1:0|" -e "s|^ispd 10.1.0.1:7461|ispd $SP|" \
	    -e "/^ispd 10.1.0.2:7461/d" -e "s|^id .*|id $3|" -e "s|^secret-file .*|secret-file $4|" \
	    "$ROOT/examples/$2.conf" >"$tmp/etc/$1.conf"
	cp "$tmp/$4" "$tmp/etc/"
	"$BUILD/$2" --config "$tmp/etc/$1.conf" --port-file "$tmp/$1.port" 2>"$tmp/$1.log" &
	pid[$1]=$!
	wait_for grep -q "connected to ispd at $SP as $3 .* over TLS" "$tmp/$1.log"
}
if ex exreg isp-registrar reg-cf reg-cf.secret && ex exloc isp-locator loc-ex loc-ex.secret &&
    stop exreg && stop exloc; then
	ok "examples/isp-registrar.conf and examples/isp-locator.conf are valid (their addresses and files replaced)"
else
	not_ok "example configurations" "$(tail -n 3 "$tmp/exreg.log")" "$(tail -n 3 "$tmp/exloc.log")"
fi

rc_all=0
for d in rt lt; do stop $d || { rc_all=1; echo "# $d exited $?"; tail -n 3 "$tmp/$d.log" | sed 's/^/# /'; }; done
if [ $rc_all -eq 0 ]; then ok "the TLS registrar and locator exit 0 on SIGTERM"; else not_ok "clean exit (TLS)"; fi

echo "1..$n"
[ "$failed" -eq 0 ]
