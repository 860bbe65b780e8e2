#!/bin/bash
# make demo-asterisk: the Asterisk pool on loopback. ispd, isp-registrar
# and two private Asterisk 22 instances with res_pjsip_isp; a SIPp phone
# registers once, at the registrar, and both Asterisks hold it as a PJSIP
# contact (device state NOT_INUSE) and call it; placement names one of
# them, which drains, and the other serves the account with no new
# REGISTER; the registrar is killed and the contact goes from both
# (UNAVAILABLE). Every process it starts is stopped at exit
# (tests/asterisk/lib.sh), every wait is bounded. About 30 seconds.
#
# Usage: scripts/demo-asterisk.sh BUILD_DIR
#   KEEP=1 keeps the temporary directory (Asterisk logs, SIPp traces).
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
# shellcheck source=../tests/asterisk/lib.sh
. "$ROOT/tests/asterisk/lib.sh"

if [ -t 1 ]; then bold=$'\033[1m'; plain=$'\033[0m'; else bold=; plain=; fi
say()  { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
fail() { echo "demo-asterisk: $*" >&2; exit 1; }
# show NAME COMMAND: an Asterisk CLI command and its output, indented.
show() { echo "  $1*CLI> $2"; ast_rx "$1" "$2" | sed '/^$/d; s/^/    /'; }
# contacts NAME: `pjsip show contacts`, its contact lines and count only
# (a mirrored contact is never qualified: its RTT column says nan).
contacts() {
	echo "  $1*CLI> pjsip show contacts"
	ast_rx "$1" "pjsip show contacts" | grep -E '^ *Contact: |Objects found|No objects' |
	    grep -v '<Aor/ContactUri' | sed 's/ *nan *$//; s/^ */    /'
}

# both_views: what each Asterisk holds for 2001, contact and device state.
both_views() {
	local n
	for n in ast-a ast-b; do
		contacts $n
		echo "  $n: DEVICE_STATE(PJSIP/2001) = $(devstate $n 2001)"
	done
}

[ -x "$ASTERISK" ] || fail "$ASTERISK is missing (make asterisk)"
for p in "$ISPD" "$ISPCTL" "$REG" "$ISP_MODULE" "$WIZ_MODULE"; do
	[ -e "$p" ] || fail "$p is not built (make all asterisk-module)"
done
command -v sipp >/dev/null || fail "sipp is missing (scripts/deps.sh)"

say "ispd, isp-registrar, and two Asterisks (ast-a, ast-b) with res_pjsip_isp"
start_ispd r1
start_registrar reg r1
PA=$(free_port)
PB=$(free_port)
for n in ast-a ast-b; do
	[ $n = ast-a ] && p=$PA || p=$PB
	start_asterisk $n "$p" "server = 127.0.0.1:$port_r1" "name = $n" "uri = sip:127.0.0.1:$p" ||
	    fail "$n did not boot: $(tail -n 5 "$tmp/$n.out")"
	WAIT_S=10 wait_for prints 1 ami_field $n ISPStatus Ready ||
	    fail "res_pjsip_isp is not up on $n: $(ami $n ISPStatus | tr '\n' ' ')"
done
echo "  ispd on 127.0.0.1:$port_r1, isp-registrar on 127.0.0.1:$port_reg (UDP)"
echo "  ast-a on 127.0.0.1:$PA, ast-b on 127.0.0.1:$PB; each has account 2001 in pjsip.conf, no contact"
show ast-a "isp show instances"

say "a phone registers 2001 once, at isp-registrar (not at any Asterisk)"
PHONE_S=120 phone_start phone 2001 "127.0.0.1:$port_reg" || fail "the phone's REGISTER got no 200: $(tail -n 5 "$tmp/phone.out")"
U="sip:2001@127.0.0.1:${phone_port[phone]}"
echo "  phone 2001 at $U: REGISTER -> 200 OK"
for n in ast-a ast-b; do
	wait_for has_contact $n "^2001;@.* $U" || fail "no contact for 2001 on $n: $(ami_contacts $n)"
	wait_for devstate_is $n 2001 NOT_INUSE || fail "device state of 2001 on $n: $(devstate $n 2001)"
done
both_views

say "both Asterisks call the phone"
for n in ast-a ast-b; do
	[ $n = ast-a ] && p=$PA || p=$PB
	ami_originate $n PJSIP/2001 && phone_got phone "^INVITE sip:2001@.* via 127.0.0.1:$p\$" ||
	    fail "$n did not reach the phone: $(phone_msgs phone received | tail -n 3)"
	echo "  $n: Originate PJSIP/2001 -> the phone answered an INVITE from 127.0.0.1:$p"
done

say "placement: which Asterisk serves account 2001 (the same answer everywhere)"
X=$(ami_get ast-a 'ISP_PLACE(asterisk,2001)')
[ "$X" = ast-a ] && Y=ast-b || Y=ast-a
echo "  ast-a: ISP_PLACE(asterisk,2001) = $X; ast-b: ISP_PLACE(asterisk,2001) = $(ami_get ast-b 'ISP_PLACE(asterisk,2001)')"
echo "  \$ ispctl place asterisk 2001"
"$ISPCTL" -s "127.0.0.1:$port_r1" place asterisk 2001 | sed 's/^/    /'

say "$X drains: account 2001 moves to $Y, with no new REGISTER"
show "$X" "isp drain"
moved() { [ "$(ami_get ast-a 'ISP_PLACE(asterisk,2001)')" = "$Y" ] && [ "$(ami_get ast-b 'ISP_PLACE(asterisk,2001)')" = "$Y" ]; }
wait_for moved || fail "placement did not move to $Y"
show "$Y" "isp show instances"
echo "  ISP_PLACE(asterisk,2001) = $Y on both; ISP_SERVES(2001) on $Y = $(ami_get "$Y" 'ISP_SERVES(2001)')"
[ "$Y" = ast-a ] && p=$PA || p=$PB
ami_originate "$Y" PJSIP/2001 && phone_got phone "^INVITE sip:2001@.* via 127.0.0.1:$p\$" ||
    fail "$Y did not reach the phone after the drain"
nreg=$(phone_count phone sent '^REGISTER')
echo "  $Y: Originate PJSIP/2001 -> the phone answered; REGISTERs the phone ever sent: $nreg"
[ "$nreg" -eq 1 ] || fail "the phone sent $nreg REGISTERs"

say "isp-registrar is killed: ispd withdraws its bindings, the contact goes from both"
stop reg KILL
for n in ast-a ast-b; do
	WAIT_S=15 wait_for no_contact $n '^2001;' || fail "2001's contact is still on $n"
	wait_for devstate_is $n 2001 UNAVAILABLE || fail "device state of 2001 on $n: $(devstate $n 2001)"
done
both_views

say "done: one REGISTER, two Asterisks serving the account, a drain, and the owner's death seen everywhere"
