#!/bin/bash
# The ispd module in Debian's own Kamailio 5.6, end to end on loopback:
# ispd, two Kamailio nodes (bgw-a, bgw-b) running
# examples/kamailio/kamailio.cfg with build/kamailio/ispd.so, SIPp
# phones and callers, and SIPp answering as Asterisk instances announced
# in INSTANCES. Prints TAP. About 30 seconds.
#
# Usage: tests/cli/test_kamailio.sh BUILD_DIR
#   Skipped (one SKIP line, and a note on stderr) when kamailio or
#   BUILD_DIR/kamailio/ispd.so is missing, unless ISP_REQUIRE_KAMAILIO=1:
#   then that is a failure. KEEP=1 keeps the temporary directory.
# Every wait is bounded; every sipp has -timeout and -m.
set -u
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/asterisk/lib.sh"

KMOD=$BUILD/kamailio/ispd.so
CFG=$ROOT/examples/kamailio/kamailio.cfg
CALL=$ROOT/tests/kamailio/call.xml
PHONES=${ISP_KAM_PHONES:-10000}

skip_all() { skip_whole kamailio ISP_REQUIRE_KAMAILIO "$1"; }
# The sanitizer build makes no module: Debian's Kamailio loads no ASan
# code. The plain build's run is the test.
case $BUILD in */asan) echo "1..1"; echo "ok 1 - kamailio # SKIP not in the sanitizer build"; exit 0 ;; esac
command -v kamailio >/dev/null || skip_all "kamailio is not installed (scripts/deps.sh)"
[ -f "$KMOD" ] || skip_all "$KMOD is not built (make kamailio-module; scripts/kamailio.sh needs the Kamailio sources)"
for p in "$ISPD" "$ISPCTL"; do [ -x "$p" ] || bail "$p is not built"; done
command -v sipp >/dev/null && command -v kamcmd >/dev/null || bail "sipp and kamcmd are needed (scripts/deps.sh)"

. "$ROOT/tests/kamailio/lib.sh"

records() { "$ISPCTL" -s "127.0.0.1:$port_r1" dump $T --json 2>/dev/null; }

start_ispd r1
kam_start bgw-a
kam_start bgw-b

# --- 1. REGISTER at A: published in the registrar's schema, in B's usrloc --
PHONE_S=60 phone_start p1 alice "127.0.0.1:${kport[bgw-a]}"
pa=${phone_port[p1]}
rec=$(wait_for sh -c "'$ISPCTL' -s 127.0.0.1:$port_r1 dump $T --json | grep -F '\"key\":\"sip:alice@$D|'"; records | grep -F "\"key\":\"sip:alice@$D|")
names=$(grep -o '"[a-z_]*":' <<<"${rec#*\"fields\":}" | tr -d '":' | tr '\n' ' ')
want_names="aor contact q received transport path instance reg_id user_agent expires reg_server call_id cseq owner seq "
if [ "$names" = "$want_names" ] &&
    grep -qF "\"key\":\"sip:alice@$D|sip:alice@127.0.0.1:$pa\"" <<<"$rec" &&
    grep -qF "\"aor\":\"sip:alice@$D\"" <<<"$rec" &&
    grep -qF "\"received\":\"127.0.0.1:$pa\"" <<<"$rec" &&
    grep -qF "\"path\":\"<sip:127.0.0.1:${kport[bgw-a]};lr;received=sip:127.0.0.1:$pa>\"" <<<"$rec" &&
    grep -qF '"reg_server":"bgw-a"' <<<"$rec" && grep -qF '"owner":"bgw-a"' <<<"$rec"; then
	ok "1: REGISTER at bgw-a: one record in SIP_REGISTRATION, every field of isp-registrar's schema in its order, the Path through bgw-a, owner bgw-a"
else
	not_ok "1: the published record" "$rec" "fields: $names"
fi
if wait_for prints 1 contacts bgw-b "alice@$D" && [ "$(records | grep -c '"key"')" = 1 ] &&
    [ "$(kam_stat bgw-b remote)" = 1 ] && [ "$(kam_stat bgw-b published)" = 0 ]; then
	ok "1: bgw-b's usrloc holds alice's contact (lookup finds it), and bgw-b publishes nothing of it again"
else
	not_ok "1: contact on bgw-b" "$(kam_rpc bgw-b ul.dump)" "$(kam_rpc bgw-b ispd.status)"
fi
if caller c1 bgw-b alice bob && phone_got p1 "^INVITE sip:alice@127.0.0.1:$pa"; then
	ok "1: a call to alice sent to bgw-b reaches the phone (through bgw-a, the Path)"
else
	not_ok "1: call through bgw-b" "$(tail -n 5 "$tmp/c1.out")" "$(tail -n 5 "$tmp/c1.err" 2>/dev/null)"
fi

j=$(jsonrpc bgw-b ispd.status | tr -d ' \n\t')
if [[ "$j" == *'"name":"bgw-b"'* && "$j" == *'"remote":1'* && "$j" == *'"up":1'* ]]; then
	ok "1: ispd.status over JSON-RPC (jsonrpcs): bgw-b, a session up, one remote contact"
else
	not_ok "1: ispd.status over jsonrpcs" "$j"
fi

# --- 2. a phone moves; A killed: its contacts gone from B at once --------
# reg NAME NODE USER PORT CSEQ: one REGISTER of USER from 127.0.0.1:PORT
# (Contact sip:USER@127.0.0.1:PORT, Call-ID cid-USER) at NODE.
reg() {
	(cd "$tmp" && timeout 20 sipp -sf "$ROOT/tests/sip/reg_200.xml" -key user "$3" -key domain "$D" \
	    -key contact "<sip:$3@127.0.0.1:$4>" -key expires 300 -key seq "$5" -key extra "X-Test: 1" \
	    -key extra2 "X-Test: 2" -cid_str "cid-$3" -m 1 -timeout 10s -nostdin -i 127.0.0.1 -p "$4" \
	    "127.0.0.1:${kport[$2]}" </dev/null >"$tmp/$1.out" 2>&1)
}
owner_of() { records | grep -F "\"key\":\"sip:$1@$D|" | sed -n 's/.*"owner":"\([^"]*\)".*/\1/p'; }
bp=$(free_port)
reg bob-a bgw-a bob "$bp" 1
wait_for prints 1 contacts bgw-b "bob@$D"
reg bob-b bgw-b bob "$bp" 2
if wait_for prints bgw-b owner_of bob && wait_for prints 1 contacts bgw-a "bob@$D" &&
    [ "$(contacts bgw-b "bob@$D")" = 1 ]; then
	ok "2: bob registered at bgw-a, then at bgw-b: the binding is bgw-b's, and each node holds one contact of it"
else
	not_ok "2: a phone that moves" "owner $(owner_of bob)" "bgw-a: $(contacts bgw-a "bob@$D"), bgw-b: $(contacts bgw-b "bob@$D")"
fi
kam_kill bgw-a
t0=$(date +%s%N)
if wait_for prints 0 contacts bgw-b "alice@$D" && [ -z "$(owner_of alice)" ]; then
	ok "2: bgw-a killed: alice's contact is gone from bgw-b after $((($(date +%s%N) - t0) / 1000000)) ms (not at expiry), and from ispd"
else
	not_ok "2: bgw-a killed" "$(kam_rpc bgw-b ul.dump)" "$(records)"
fi
if [ "$(contacts bgw-b "bob@$D")" = 1 ] && [ "$(owner_of bob)" = bgw-b ]; then
	ok "2: bob, who moved to bgw-b, stays"
else
	not_ok "2: bob after bgw-a's death" "$(contacts bgw-b "bob@$D") contacts" "owner $(owner_of bob)"
fi
phone_stop p1
PHONE_S=60 phone_start p2 alice "127.0.0.1:${kport[bgw-b]}"
if wait_for sh -c "'$ISPCTL' -s 127.0.0.1:$port_r1 dump $T --json | grep -F '\"key\":\"sip:alice@$D|' | grep -qF '\"owner\":\"bgw-b\"'"; then
	ok "2: REGISTER again at bgw-b works: the binding is bgw-b's"
else
	not_ok "2: REGISTER at bgw-b" "$(records)"
fi
# A back: it gets bgw-b's binding from ispd.
kam_start bgw-a
if wait_for prints 1 contacts bgw-a "alice@$D"; then
	ok "2: bgw-a restarted: alice's contact (bgw-b's) is in its usrloc again"
else
	not_ok "2: bgw-a restarted" "contacts: $(contacts bgw-a "alice@$D")" "$(kam_rpc bgw-a ul.lookup location "alice@$D")"
fi

# --- 3. refreshes at A: nothing reaches B ------------------------------
users() { awk -v n="$1" -v d="$D" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) printf "u%d;%s\n", i, d }' >"$tmp/users.csv"; }
users "$PHONES"
# reg_many NAME CSEQ: every phone of users.csv REGISTERs at bgw-a. The
# same source port, Contact and Call-ID each round: the second round is
# a refresh (only the expiry and the CSeq move).
REG_PORT=$(free_port)
reg_many() {
	(cd "$tmp" && timeout 120 sipp -sf "$ROOT/tests/asterisk/bench/reg.xml" -inf "$tmp/users.csv" \
	    -r 5000 -l 500 -m "$PHONES" -base_cseq "$2" -timeout 100s -nostdin -i 127.0.0.1 \
	    -p "$REG_PORT" -key run k -cid_str "ref-%u@k" \
	    "127.0.0.1:${kport[bgw-a]}" </dev/null >"$tmp/$1.out" 2>&1)
}
ok_calls() { awk -F'|' '$1 ~ /^ *Successful call *$/ { gsub(/ /, "", $3); v = $3 } END { print v + 0 }' "$tmp/$1.out"; }
reg_many round1 1
wait_for at_least "$PHONES" kam_stat bgw-b remote
e0=$(kam_stat bgw-b events)
reg_many round2 2
# The barrier: one new binding after the refreshes; once bgw-b has it,
# ispd has handled every refresh before it.
PHONE_S=20 phone_start p3 marker "127.0.0.1:${kport[bgw-a]}"
wait_for prints 1 contacts bgw-b "marker@$D"
e1=$(kam_stat bgw-b events)
if [ "$(ok_calls round1)" = "$PHONES" ] && [ "$(ok_calls round2)" = "$PHONES" ] && [ $((e1 - e0)) = 1 ]; then
	ok "3: $PHONES phones registered at bgw-a and refreshed: bgw-b received nothing for the refreshes (1 event: the marker after them)"
else
	not_ok "3: refreshes" "round1 $(ok_calls round1), round2 $(ok_calls round2) of $PHONES; events at bgw-b $e0 -> $e1"
fi

# --- isp_route: the Asterisk that placement names -----------------------
# Two SIPp answering as Asterisk instances, announced in INSTANCES.
PHONE_S=60 phone_start ast-1 none none
PHONE_S=60 phone_start ast-2 none none
inst() {
	"$ISPCTL" -s "127.0.0.1:$port_r1" --name "$1-$3" announce INSTANCES "$1" role=asterisk \
	    "uri=sip:127.0.0.1:${phone_port[$1]}" "status=$2" >/dev/null 2>&1 &
	pid[inst-$1-$3]=$!
}
inst ast-1 up 1
inst ast-2 up 1
wait_for prints 2 instances bgw-b
owner=$("$ISPCTL" -s "127.0.0.1:$port_r1" place asterisk 2001 2>/dev/null | cut -d' ' -f1)
other=ast-1; [ "$owner" = ast-1 ] && other=ast-2
if [ -n "$owner" ] && caller c2 bgw-b 9999 2001 && phone_got "$owner" '^INVITE sip:9999@' &&
    ! phone_got "$other" '^INVITE sip:9999@'; then
	ok "isp_route: a call from 2001 through bgw-b reaches $owner, the instance ispctl place names"
else
	not_ok "isp_route" "owner '$owner'" "$(tail -n 5 "$tmp/c2.out")" "$(kam_rpc bgw-b ispd.instances)"
fi
# A call from the pool itself (an instance's address) to a registered
# phone goes to the phone (isp_from), not back into the pool.
cp=$(free_port)
"$ISPCTL" -s "127.0.0.1:$port_r1" --name ast-c announce INSTANCES ast-c role=asterisk \
    "uri=sip:127.0.0.1:$cp" status=up >/dev/null 2>&1 &
pid[inst-ast-c]=$!
wait_for prints 3 instances bgw-b
if caller c7 bgw-b alice 2001 "$cp" && phone_got p2 '^INVITE sip:alice@'; then
	ok "isp_from: a call from an Asterisk of the pool to alice reaches her phone, not another Asterisk"
else
	not_ok "isp_from" "$(tail -n 5 "$tmp/c7.out")" "$(kam_rpc bgw-b ispd.instances)"
fi
stop inst-ast-c
wait_for prints 2 instances bgw-b
# Drained: the next call goes to the other instance.
stop "inst-$owner-1"
inst "$owner" draining 2
wait_for sh -c "kamcmd -s unix:$tmp/bgw-b.ctl ispd.instances | grep -q draining"
if caller c3 bgw-b 9998 2001 && phone_got "$other" '^INVITE sip:9998@'; then
	ok "isp_route: $owner drained, the next call from 2001 reaches $other"
else
	not_ok "isp_route after a drain" "$(tail -n 5 "$tmp/c3.out")" "$(kam_rpc bgw-b ispd.instances)"
fi
# None live: 503.
stop "inst-$owner-2"
stop "inst-$other-1"
wait_for prints 0 instances bgw-b
caller c4 bgw-b 9997 2001
if grep -q '503 No Asterisk serves' "$tmp/c4.err" 2>/dev/null || grep -q 'Unexpected.*503' "$tmp/c4.out"; then
	ok "isp_route: no instance live: 503"
else
	not_ok "isp_route with no instance" "$(tail -n 8 "$tmp/c4.out")"
fi

# --- 4. the pool: phone, BGW, Asterisk with res_pjsip_isp ----------------
# Needs Asterisk and the module (test_asterisk's stage); without them
# this part is skipped, unless ISP_REQUIRE_ASTERISK=1.
if [ -x "$ASTERISK" ] && [ -f "$ISP_MODULE" ] && [ -f "$WIZ_MODULE" ]; then
	for a in ast-x ast-y; do
		p=$(free_port)
		start_asterisk "$a" "$p" "server = 127.0.0.1:$port_r1" "name = $a" "uri = sip:127.0.0.1:$p" ||
		    bail "Asterisk $a did not boot: $(tail -n 5 "$tmp/$a.out")"
	done
	PHONE_S=60 phone_start ph2002 2002 "127.0.0.1:${kport[bgw-a]}"
	reached() { [ "$(ami_field "$1" ISPStatus Contacts)" -ge 1 ] 2>/dev/null && devstate_is "$1" 2002 NOT_INUSE; }
	X=$("$ISPCTL" -s "127.0.0.1:$port_r1" place asterisk 2001 2>/dev/null | cut -d' ' -f1)
	Y=ast-y; [ "$X" = ast-y ] && Y=ast-x
	if wait_for reached ast-x && wait_for reached ast-y && wait_for prints 2 instances bgw-b &&
	    caller c5 bgw-b 2002 2001 && [ "$(invites_via ph2002 "${sip_port[$X]}")" = 1 ] &&
	    [ "$(invites_via ph2002 "${sip_port[$Y]}")" = 0 ]; then
		ok "4: 2002 registered at bgw-a is a contact on both Asterisks; 2001 calls it through bgw-b, which places the call on $X (as placement names), and $X reaches 2002 through bgw-a (the Path)"
	else
		not_ok "4: a call through the pool" "X=$X" "$(tail -n 5 "$tmp/c5.out")" "$(kam_rpc bgw-b ispd.instances)" "via $X: $(invites_via ph2002 "${sip_port[$X]}"), via $Y: $(invites_via ph2002 "${sip_port[$Y]}")"
	fi
	ast_rx "$X" "isp drain" >/dev/null 2>&1
	drained() { kam_rpc bgw-b ispd.instances | grep -A 3 "id: $X" | grep -q 'status: draining'; }
	if wait_for drained && caller c6 bgw-b 2002 2001 && [ "$(invites_via ph2002 "${sip_port[$Y]}")" = 1 ] &&
	    [ "$(phone_count ph2002 sent '^REGISTER')" = 1 ]; then
		ok "4: $X drained: the next call from 2001 lands on $Y, which reaches 2002; the phone sent no REGISTER in between"
	else
		not_ok "4: after the drain" "$(tail -n 5 "$tmp/c6.out")" "via $Y: $(invites_via ph2002 "${sip_port[$Y]}")" "REGISTERs sent: $(phone_count ph2002 sent '^REGISTER')"
	fi
elif [ "${ISP_REQUIRE_ASTERISK:-0}" = 1 ]; then
	not_ok "4: the pool" "Asterisk or the module is not built ($ASTERISK, $ISP_MODULE)"
else
	skip "4: the pool" "no Asterisk with res_pjsip_isp (scripts/asterisk.sh, make asterisk-module)"
fi

# --- bad module parameters ----------------------------------------------
bad=$(kamailio -c -f "$CFG" -A "ISPD_1=\"nonsense\"" -A "ISPD_MODULE=\"$KMOD\"" -A "CTL=\"unix:$tmp/x.ctl\"" 2>&1)
if [ $? -ne 0 ] && grep -q 'modparam server "nonsense": not HOST:PORT' <<<"$bad"; then
	ok "a bad server parameter: Kamailio refuses the configuration, naming it"
else
	not_ok "bad server parameter" "$(tail -n 3 <<<"$bad")"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
