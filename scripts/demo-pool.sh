#!/bin/bash
# make demo-pool: the whole pool on loopback. ispd; a border gateway of
# two Debian Kamailio nodes (bgw-a, bgw-b) with the ispd module and
# examples/kamailio/kamailio.cfg; two private Asterisk 22 instances
# (ast-x, ast-y) with res_pjsip_isp. A SIPp phone registers once, at
# bgw-a; bgw-b and both Asterisks hold it; a call from account 2001 sent
# to bgw-b lands on the Asterisk placement names, which reaches the phone
# back through bgw-a (the Path); that Asterisk drains and the next call
# lands on the other, with no new REGISTER; bgw-a is killed and the
# phone's contact goes everywhere at once. Every process it starts is
# stopped at exit, every wait is bounded. About 20 seconds.
#
# Usage: scripts/demo-pool.sh BUILD_DIR
#   KEEP=1 keeps the temporary directory (logs, SIPp traces).
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
# shellcheck source=../tests/asterisk/lib.sh
. "$ROOT/tests/asterisk/lib.sh"
KMOD=$BUILD/kamailio/ispd.so
CFG=$ROOT/examples/kamailio/kamailio.cfg
CALL=$ROOT/tests/kamailio/call.xml

if [ -t 1 ]; then bold=$'\033[1m'; plain=$'\033[0m'; else bold=; plain=; fi
say()  { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
fail() { echo "demo-pool: $*" >&2; exit 1; }
ind()  { sed '/^$/d; s/^/    /'; }

[ -x "$ASTERISK" ] || fail "$ASTERISK is missing (make asterisk)"
for p in "$ISPD" "$ISPCTL" "$ISP_MODULE" "$WIZ_MODULE" "$KMOD"; do
	[ -e "$p" ] || fail "$p is not built (make all asterisk-module kamailio-module)"
done
for p in sipp kamailio kamcmd; do command -v $p >/dev/null || fail "$p is missing (scripts/deps.sh)"; done

say "ispd, two BGW nodes (Kamailio: bgw-a, bgw-b) and two Asterisks (ast-x, ast-y)"
start_ispd r1
# shellcheck source=../tests/kamailio/lib.sh
. "$ROOT/tests/kamailio/lib.sh"
kam_start bgw-a || fail "bgw-a did not start: $(tail -n 5 "$tmp/bgw-a.log")"
kam_start bgw-b || fail "bgw-b did not start: $(tail -n 5 "$tmp/bgw-b.log")"
for a in ast-x ast-y; do
	p=$(free_port)
	start_asterisk "$a" "$p" "server = 127.0.0.1:$port_r1" "name = $a" "uri = sip:127.0.0.1:$p" ||
	    fail "$a did not boot: $(tail -n 5 "$tmp/$a.out")"
done
echo "  ispd on 127.0.0.1:$port_r1; bgw-a on 127.0.0.1:${kport[bgw-a]}, bgw-b on 127.0.0.1:${kport[bgw-b]} (UDP)"
echo "  ast-x on 127.0.0.1:${sip_port[ast-x]}, ast-y on 127.0.0.1:${sip_port[ast-y]}; accounts 2001..2005 on each"
wait_for prints 2 instances bgw-b || fail "bgw-b does not see both Asterisks"
echo "  \$ kamcmd ispd.instances   (on bgw-b: what isp_route chooses from)"
kam_rpc bgw-b ispd.instances | grep -E 'id:|uri:|status:' | paste - - - | ind

say "a phone registers 2002 once, at bgw-a"
PHONE_S=60 phone_start phone 2002 "127.0.0.1:${kport[bgw-a]}" || fail "the phone's REGISTER got no 200"
echo "  phone 2002 at sip:2002@127.0.0.1:${phone_port[phone]}: REGISTER -> 200 OK (bgw-a)"
reached() { [ "$(ami_field "$1" ISPStatus Contacts)" -ge 1 ] 2>/dev/null && devstate_is "$1" 2002 NOT_INUSE; }
wait_for prints 1 contacts bgw-b "2002@$D" || fail "bgw-b has no contact for 2002"
for a in ast-x ast-y; do wait_for reached $a || fail "$a has no contact for 2002"; done
echo "  \$ ispctl dump SIP_REGISTRATION   (published by bgw-a's module, isp-registrar's schema)"
"$ISPCTL" -s "127.0.0.1:$port_r1" dump $T | cut -c1-160 | ind
echo "  bgw-b: kamcmd ul.lookup location 2002@$D"
kam_rpc bgw-b ul.lookup location "2002@$D" | grep -E 'Address:|Path:|Ruid:' | ind
for a in ast-x ast-y; do echo "  $a: DEVICE_STATE(PJSIP/2002) = $(devstate $a 2002)"; done

say "account 2001 calls 2002 through bgw-b: the call goes to the Asterisk that serves 2001"
X=$("$ISPCTL" -s "127.0.0.1:$port_r1" place asterisk 2001 | cut -d' ' -f1)
[ "$X" = ast-x ] && Y=ast-y || Y=ast-x
echo "  \$ ispctl place asterisk 2001  ->  $X"
caller c1 bgw-b 2002 2001 || fail "the call got no 200: $(tail -n 5 "$tmp/c1.out")"
[ "$(invites_via phone "${sip_port[$X]}")" = 1 ] || fail "the call did not pass through $X"
echo "  2001 -> bgw-b -> isp_route -> $X -> Dial(PJSIP/2002) -> bgw-a (Path) -> phone: answered"

say "$X drains: the next call from 2001 lands on $Y, with no new REGISTER"
echo "  $X*CLI> isp drain"
ast_rx "$X" "isp drain" | ind
drained() { kam_rpc bgw-b ispd.instances | grep -A 3 "id: $X" | grep -q 'status: draining'; }
wait_for drained || fail "bgw-b does not see $X draining"
caller c2 bgw-b 2002 2001 || fail "the second call got no 200: $(tail -n 5 "$tmp/c2.out")"
[ "$(invites_via phone "${sip_port[$Y]}")" = 1 ] || fail "the second call did not pass through $Y"
nreg=$(phone_count phone sent '^REGISTER')
echo "  2001 -> bgw-b -> isp_route -> $Y -> bgw-a -> phone: answered; REGISTERs the phone ever sent: $nreg"
[ "$nreg" -eq 1 ] || fail "the phone sent $nreg REGISTERs"

say "bgw-a is killed: ispd withdraws its bindings, the phone's contact goes everywhere"
kam_kill bgw-a
wait_for prints 0 contacts bgw-b "2002@$D" || fail "bgw-b still has 2002"
for a in ast-x ast-y; do
	wait_for devstate_is $a 2002 UNAVAILABLE || fail "device state of 2002 on $a: $(devstate $a 2002)"
	echo "  $a: DEVICE_STATE(PJSIP/2002) = $(devstate $a 2002)"
done
echo "  bgw-b: contacts of 2002: $(contacts bgw-b "2002@$D"); ispd: $("$ISPCTL" -s "127.0.0.1:$port_r1" dump $T | tail -n 1)"

say "done: one REGISTER at one BGW node, the call placed on the pool, a drain, and the node's death seen everywhere"
