#!/bin/bash
# The SIP story of `make demo`, on loopback: SIPp phones register through
# isp-registrar, two isp-locators on other ports answer INVITEs for them
# with 302, the registrar is killed and the bindings disappear
# everywhere, a phone re-registers through a new registrar and is found
# again. Starts its own ispd and stops everything it started.
#
# Usage: scripts/demo-sip.sh BUILD_DIR
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SC=$ROOT/tests/sip
ISPD=$BUILD/ispd
ISPCTL=$BUILD/ispctl
T=SIP_REGISTRATION
D=voip.example.com
PHONES="2001 2002 2003"

tmp=$(mktemp -d /tmp/ispd-demo-sip.XXXXXX)
declare -A pid=()
cleanup() {
	local p
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

if [ -t 1 ]; then bold=$'\033[1m'; plain=$'\033[0m'; else bold=; plain=; fi
say()  { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
fail() { echo "demo-sip: $*" >&2; exit 1; }
wait_for() {	# bounded: 10 s
	local i
	for i in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}
for p in sipp "$BUILD/isp-registrar" "$BUILD/isp-locator"; do
	command -v "$p" >/dev/null || fail "$p is missing (scripts/deps.sh, make)"
done
start() {	# NAME CMD...: a daemon with --port-file; sets port_NAME
	local name=$1
	shift
	rm -f "$tmp/$name.port"
	"$@" --port-file "$tmp/$name.port" 2>>"$tmp/$name.log" &
	pid[$name]=$!
	wait_for test -s "$tmp/$name.port" || fail "$name did not start: $(tail -n 3 "$tmp/$name.log")"
	eval "port_$name=$(head -1 "$tmp/$name.port")"
}
# sipp NAME PORT SCENARIO KEYS...: one call, bounded; trace in NAME.msg.
sipp_call() {
	local name=$1 port=$2 sc=$3
	shift 3
	(cd "$tmp" && timeout 20 sipp -sf "$SC/$sc" -m 1 -timeout 10s -timeout_error \
	    -trace_msg -message_file "$tmp/$name.msg" -i 127.0.0.1 -p 0 "$@" \
	    "127.0.0.1:$port" </dev/null >"$tmp/$name.out" 2>&1)
}
# The final answer sipp received: status line and Contacts.
answer() {
	awk '/message received/ { buf = ""; on = 1; next } /message sent/ { on = 0 }
	    on { buf = buf $0 "\n" } END { printf "%s", buf }' "$tmp/$1.msg" |
	    tr -d '\r' | grep -E '^(SIP/2.0|Contact:)' | sed 's/^/    /'
}
register() {	# PHONE CALLID
	sipp_call "reg-$1" "$port_reg" reg_200.xml -key user "$1" -key domain $D \
	    -key contact "<sip:$1@192.168.1.$(( ${1: -1} + 10 )):5060>" -key expires 300 \
	    -cid_str "$2" -key seq 1 -key extra 'X-Demo: 1' -key extra2 'X-Demo: 2'
}
invite() {	# NAME LOCATOR-PORT PHONE SCENARIO
	sipp_call "$1" "$2" "$4" -key user "$3" -key domain $D
}

REG=$BUILD/isp-registrar LOC=$BUILD/isp-locator
ISPD_LISTEN=--listen
# DEMO_TLS=1: as scripts/demo.sh does for its part, ispd on TLS with a
# shared secret per client and rules (docs/SECURITY.md); the registrars
# and locators reach it over TLS with their own secrets
# (--tls-ca, --secret-file: docs/SIP.md).
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
	for n in bgw-registrar-1 bgw-registrar-2 locator-1 locator-2 demo ispctl; do
		s=$(openssl rand -hex 16)
		(umask 077; echo "$n $s" >>"$tmp/secrets"; echo "$s" >"$tmp/$n.secret")
	done
	cat >"$tmp/ispd.conf" <<-EOF
	tls-cert server.crt
	tls-key server.key
	credentials secrets
	default deny
	allow bgw-registrar-* announce,create $T INSTANCES
	allow locator-* subscribe,create $T
	allow locator-* announce,create INSTANCES
	allow demo subscribe *
	allow ispctl subscribe *
	EOF
	ISPD="$ISPD --config $tmp/ispd.conf" ISPD_LISTEN=--listen-tls
	ispctl_bin=$(realpath "$ISPCTL")
	cat >"$tmp/ispctl" <<-EOF
	#!/bin/sh
	# ispctl on TLS, with the secret of its --name.
	name=ispctl prev=
	for a in "\$@"; do [ "\$prev" = --name ] && name=\$a; prev=\$a; done
	exec "$ispctl_bin" --tls-ca "$tmp/ca.crt" --secret-file "$tmp/\$name.secret" "\$@"
	EOF
	chmod 755 "$tmp/ispctl"
	ISPCTL=$tmp/ispctl
	say "DEMO_TLS=1: TLS, a shared secret per client, and these rules:"
	grep -E '^(default|allow|deny)' "$tmp/ispd.conf"
fi
# The SIP services with the TLS options (DEMO_TLS=1): --id ID first.
sipsvc() {	# PROGRAM ID ARGS...
	local prog=$1 id=$2
	shift 2
	if [ "${DEMO_TLS:-0}" = 1 ]; then
		set -- --tls-ca "$tmp/ca.crt" --secret-file "$tmp/$id.secret" "$@"
	fi
	exec "$prog" --id "$id" "$@"
}

say "ispd, one registrar, two locators (loopback, ephemeral ports)"
start ispd $ISPD $ISPD_LISTEN 127.0.0.1:0
export ISPD_SERVER=127.0.0.1:$port_ispd
start reg sipsvc "$REG" bgw-registrar-1 --listen sip:127.0.0.1:0 --domain $D
start loc1 sipsvc "$LOC" locator-1 --listen sip:127.0.0.1:0
start loc2 sipsvc "$LOC" locator-2 --listen sip:127.0.0.1:0
wait_for sh -c "'$ISPCTL' dump INSTANCES | grep -q '^3 records'" || fail "instances missing"
"$ISPCTL" --name demo dump INSTANCES
[ "${DEMO_TLS:-0}" = 1 ] && grep -ho 'connected to ispd at .*' "$tmp/reg.log" "$tmp/loc1.log" | sed 's/^/  /'

say "three SIPp phones REGISTER through the registrar (udp 127.0.0.1:$port_reg)"
for p in $PHONES; do
	register "$p" "demo-$p" || fail "phone $p could not register: $(tail -n 5 "$tmp/reg-$p.out")"
	echo "  phone $p: $(answer "reg-$p" | head -1 | sed 's/^ *//')"
done
wait_for sh -c "'$ISPCTL' dump $T | grep -q '^3 records'" || fail "bindings missing in ispd"
echo
"$ISPCTL" --name demo dump $T

say "a caller INVITEs sip:2002@$D at locator-1 (port $port_loc1) and locator-2 (port $port_loc2)"
invite inv1 "$port_loc1" 2002 inv_302.xml || fail "locator-1 did not redirect"
echo "  locator-1 answers:"; answer inv1
invite inv2 "$port_loc2" 2002 inv_302.xml || fail "locator-2 did not redirect"
echo "  locator-2 answers:"; answer inv2
echo "  the same, programmatically:"
"$ISPCTL" --name demo get $T "sip:2002@$D|sip:2002@192.168.1.12:5060" | sed 's/^/    /'
echo "  which registrar serves 2002, by rendezvous hashing over INSTANCES:"
if "$ISPCTL" place registrar "sip:2002@$D" >"$tmp/place" 2>&1; then
	sed 's/^/    /' "$tmp/place"
else
	echo "    (this ispctl has no place command)"
fi

say "the registrar dies (SIGKILL): ispd withdraws its bindings everywhere"
kill -KILL "${pid[reg]}"; wait "${pid[reg]}" 2>/dev/null; unset "pid[reg]"
wait_for sh -c "'$ISPCTL' dump $T | grep -q '^0 records'" || fail "bindings still there"
"$ISPCTL" --name demo dump $T
invite gone1 "$port_loc1" 2002 inv_480.xml || fail "locator-1 still redirects"
echo "  locator-1 answers:"; answer gone1
invite gone2 "$port_loc2" 2002 inv_480.xml || fail "locator-2 still redirects"
echo "  locator-2 answers:"; answer gone2

say "a new registrar starts; phone 2002 re-registers and is found again"
start reg sipsvc "$REG" bgw-registrar-2 --listen sip:127.0.0.1:0 --domain $D
register 2002 demo-2002-again || fail "phone 2002 could not re-register"
wait_for sh -c "'$ISPCTL' dump $T | grep -q '^1 record'" || fail "binding missing"
invite back "$port_loc2" 2002 inv_302.xml || fail "locator-2 did not find 2002 again"
echo "  locator-2 answers:"; answer back
"$ISPCTL" --name demo dump $T

say "done: stopping everything"
