#!/bin/bash
# res_pjsip_isp end to end, against real processes on loopback: two ispd
# reflectors, isp-registrar, two private Asterisk 22 instances with the
# module (tests/asterisk/lib.sh lays them out), SIPp phones
# (tests/asterisk/*.xml) and ispctl publishing bindings in the
# registrar's schema. The numbered cases (1..7) follow the module's
# contract; case 0 proves the harness itself on Asterisk's own
# registrar. Prints TAP. About 2 minutes.
#
# Usage: tests/cli/test_asterisk.sh BUILD_DIR
#   Skipped (one SKIP line, and a note on stderr) when Asterisk or
#   BUILD_DIR/asterisk/res_pjsip_isp.so is missing, unless
#   ISP_REQUIRE_ASTERISK=1: then that is a failure.
#   ISP_AST_HARNESS=1: case 0 only, on plain Asterisk (no module needed).
#   KEEP=1 keeps the temporary directory (Asterisk logs, AMI logs, traces).
# Every wait is bounded; every sipp has -timeout and -m 1.
set -u
BUILD=${1:-build}
. "$(dirname "$0")/../asterisk/lib.sh"

HARNESS=${ISP_AST_HARNESS:-0}
skip_all() { skip_whole asterisk ISP_REQUIRE_ASTERISK "$1"; }
[ -x "$ASTERISK" ] || skip_all "$ASTERISK is not installed (scripts/asterisk.sh)"
[ "$HARNESS" = 1 ] || [ -f "$ISP_MODULE" ] || skip_all "$ISP_MODULE is not built (make asterisk-module)"
[ "$HARNESS" = 1 ] || [ -f "$WIZ_MODULE" ] || skip_all "$WIZ_MODULE is not built (make asterisk-module)"
for p in "$ISPD" "$ISPCTL" "$REG"; do [ -x "$p" ] || bail "$p is not built"; done
command -v sipp >/dev/null || bail "sipp is missing (scripts/deps.sh)"

# Under ASan the runtimes are preloaded into Asterisk (lib.sh): first
# prove plain Asterisk boots and stops that way.
if [ ${#AST_ENV[@]} -gt 0 ]; then
	if ! start_asterisk probe "$(free_port)" || ! stop_asterisk probe; then
		skip_all "Asterisk does not run with the ASan runtime preloaded: $(grep -m1 -i -e error -e sanitizer "$tmp/probe.out")"
	fi
fi

PA=$(free_port)
PB=$(free_port)
# isp_conf NAME SIPPORT: the isp.conf lines of an instance of the pool.
isp_conf() { printf "%s\n" "server = 127.0.0.1:$port_r1" "server = 127.0.0.1:$port_r2" "name = $1" "uri = sip:127.0.0.1:$2"; }
conf_a=() conf_b=()
port_r1=0 port_r2=0

if [ "$HARNESS" = 1 ]; then
	start_asterisk ast-a "$PA" || bail "ast-a did not boot: $(tail -n 5 "$tmp/ast-a.out")"
	start_asterisk ast-b "$PB" || bail "ast-b did not boot"
else
	# Reflectors r1, r2 (short hold, so a hung peer is noticed soon); the
	# registrar publishes into r2 only, so killing r1 (case 4) leaves
	# its bindings alone.
	start_ispd r1 --hold 3
	start_ispd r2 --hold 3
	export ISPD_SERVER=127.0.0.1:$port_r2
	start_registrar reg r2
	mapfile -t conf_a < <(isp_conf ast-a "$PA")
	mapfile -t conf_b < <(isp_conf ast-b "$PB")
	start_asterisk ast-a "$PA" "${conf_a[@]}" || bail "ast-a did not boot: $(tail -n 5 "$tmp/ast-a.out")"
	start_asterisk ast-b "$PB" "${conf_b[@]}" || bail "ast-b did not boot: $(tail -n 5 "$tmp/ast-b.out")"
fi
ami_log_start ast-a || bail "no AMI event session on ast-a"
ami_log_start ast-b || bail "no AMI event session on ast-b"
REGS=127.0.0.1:${port_reg:-0}
declare -A port_of=([ast-a]=$PA [ast-b]=$PB)
other() { [ "$1" = ast-a ] && echo ast-b || echo ast-a; }
# via NAME: a received request came from that Asterisk (its Via).
via() { echo "via 127.0.0.1:${port_of[$1]}\$"; }

# ========================================================================
# 0. The harness on Asterisk's own registrar (AOR 2003 is never in
#    SIP_REGISTRATION): a phone registered straight at ast-a is a
#    contact, its device state NOT_INUSE, Originate rings it; the AMI
#    event log and its barrier work; the mailbox NOTIFY path works.
# ========================================================================
if [ "$(ami_field ast-a Ping Ping)" = Pong ] && [ "$(ami_field ast-b Ping Ping)" = Pong ]; then
	ok "0: two private Asterisk instances are up, AMI answers on both"
else
	not_ok "0: AMI Ping" "$(ami ast-a Ping 2>&1)" "$(tail -n 5 "$tmp/ast-a.out")"
fi
PHONE_S=300 phone_start p0 2003 "127.0.0.1:$PA" 127.0.0.1
C0="2003;@$(printf 'sip:2003@127.0.0.1:%s' "${phone_port[p0]}" | md5sum | cut -d' ' -f1)"
if has_contact ast-a "^$C0 sip:2003@127\.0\.0\.1:${phone_port[p0]} ast-a\$" && wait_for devstate_is ast-a 2003 NOT_INUSE &&
    no_contact ast-b '^2003;'; then
	ok "0: a phone REGISTERed straight at ast-a is its contact (id AOR;@md5(uri), reg_server ast-a), device state NOT_INUSE"
else
	not_ok "0: direct registration" "$(ami_contacts ast-a)" "devstate $(devstate ast-a 2003)" "$(tail -n 3 "$tmp/p0.out")"
fi
if ami_originate ast-a PJSIP/2003 && phone_got p0 "^INVITE sip:2003@.* $(via ast-a)" &&
    wait_for phone_got p0 "^BYE .* $(via ast-a)"; then
	ok "0: AMI Originate from ast-a rings the phone; it answers, Asterisk hangs up"
else
	not_ok "0: Originate to the direct phone" "$(phone_msgs p0 received)"
fi
if ami_barrier ast-a && [ "$(ami_devstate_events ast-a PJSIP/2003)" -ge 3 ] &&
    grep -qx 'State: RINGING' "$tmp/ast-a.ami.log"; then
	ok "0: the AMI event log has the phone's DeviceStateChange events (NOT_INUSE, RINGING, INUSE...) before the barrier"
else
	not_ok "0: AMI event log" "$(ami_devstate_events ast-a PJSIP/2003) events for PJSIP/2003"
fi
# mwi_notifies PHONE: the NOTIFYs it received that say 3 new, 1 old.
mwi_notifies() { phone_msgs "$1" received 'Voice-Message: 3\/1' | grep -c NOTIFY; }
if [ "$HARNESS" = 1 ]; then
	PHONE_S=60 phone_start p0m 2005 "127.0.0.1:$PA" 127.0.0.1
	if mwi_set ast-a 3 1 && wait_for phone_got p0m "^NOTIFY sip:2005@.* $(via ast-a)" &&
	    wait_for at_least 1 mwi_notifies p0m; then
		ok "0: a mailbox change of 2005@default reaches the phone as an unsolicited NOTIFY (3/1)"
	else
		not_ok "0: MWI" "$(phone_msgs p0m received)"
	fi
	phone_stop p0m
	if [ "$(phone_count p0 received '^OPTIONS')" -eq 0 ] && [ "$(phone_count p0 sent '^REGISTER')" -eq 1 ]; then
		ok "0: the phone's trace counts requests: no OPTIONS, one REGISTER sent"
	else
		not_ok "0: phone trace" "$(phone_msgs p0 received)"
	fi
	rc=0
	for a in ast-a ast-b; do stop_asterisk $a || { rc=1; echo "# $a exited $?"; }; done
	check "0: both Asterisk instances stop cleanly" test $rc -eq 0
	echo "1..$n"
	[ "$failed" -eq 0 ]
	exit
fi

# The pool: each Asterisk announced itself in INSTANCES.
inst() { "$ISPCTL" dump INSTANCES --json 2>/dev/null | grep -F "\"key\":\"$1\""; }
inst_field() { inst "$1" | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"; }
inst_is() { [ "$(inst_field "$1" status)" = "$2" ]; }
inst_ok() {
	[ "$(inst_field "$1" role)" = asterisk ] && [ "$(inst_field "$1" uri)" = "sip:127.0.0.1:${port_of[$1]}" ] &&
	    inst_is "$1" up && [ -n "$(inst_field "$1" version)" ] && [[ "$(inst_field "$1" started)" =~ ^[0-9]+$ ]]
}
if ast_module_running ast-a res_pjsip_isp && ast_module_running ast-b res_pjsip_isp &&
    wait_for inst_ok ast-a && wait_for inst_ok ast-b; then
	ok "the module runs on both; INSTANCES has ast-a and ast-b: role asterisk, their SIP URI, status up, version, started"
else
	not_ok "module loaded, INSTANCES" "$("$ISPCTL" dump INSTANCES 2>&1)" "$(grep -i isp "$tmp/ast-a/log/full" | tail -n 5)"
fi

# st NAME FIELD: a field of AMI ISPStatus.
st() { ami_field "$1" ISPStatus "$2"; }
st_is() { [ "$(st "$1" "$2")" = "$3" ]; }
# contact_of ACCOUNT KEY URI NAME: the regex of the module's contact of a binding
# in ami_contacts: id AOR;@md5(key), the URI, reg_server the name.
contact_of() { echo "^$1;@$(key_md5 "$2") $3 $4\$"; }
# keys_of ACCOUNT: the record keys of SIP_REGISTRATION for an AOR.
keys_of() { "$ISPCTL" dump $T --prefix "sip:$1@$D|" --json | sed -n 's/.*"key":"\([^"]*\)".*/\1/p'; }

# ========================================================================
# 1. One REGISTER at the registrar: a contact on both Asterisks, device
#    state NOT_INUSE on both; each Asterisk's Originate reaches the phone.
# ========================================================================
PHONE_S=300 phone_start p1 2001 "$REGS"
K1="sip:2001@$D|sip:2001@127.0.0.1:${phone_port[p1]}"
U1="sip:2001@127.0.0.1:${phone_port[p1]}"
if WAIT_S=10 wait_for has_contact ast-a "$(contact_of 2001 "$K1" "$U1" ast-a)" &&
    WAIT_S=5 wait_for has_contact ast-b "$(contact_of 2001 "$K1" "$U1" ast-b)"; then
	ok "1: one REGISTER at the registrar is a contact on both Asterisks: id 2001;@md5(key), the binding's URI, reg_server the Asterisk's name"
else
	not_ok "1: contact on both" "key $K1" "$(ami_contacts ast-a)" "$(ami_contacts ast-b)" "$(keys_of 2001)"
fi
if wait_for devstate_is ast-a 2001 NOT_INUSE && wait_for devstate_is ast-b 2001 NOT_INUSE &&
    [ "$(ami_devstate_events ast-a PJSIP/2001)" -ge 1 ]; then
	ok "1: device state PJSIP/2001 NOT_INUSE on both (and a DeviceStateChange on AMI)"
else
	not_ok "1: device state" "a $(devstate ast-a 2001), b $(devstate ast-b 2001)"
fi
if ami_originate ast-a PJSIP/2001 && phone_got p1 "^INVITE sip:2001@.* $(via ast-a)" &&
    ami_originate ast-b PJSIP/2001 && phone_got p1 "^INVITE sip:2001@.* $(via ast-b)"; then
	ok "1: AMI Originate to PJSIP/2001 from each Asterisk rings the phone and it answers"
else
	not_ok "1: Originate from both" "$(phone_msgs p1 received)"
fi
before=$(ami_contacts ast-a)
if S direct-2001 "$PA" reg_403.xml -key user 2001 -key domain 127.0.0.1 -key contact '<sip:2001@10.0.0.99:5060>' &&
    [ "$(ami_contacts ast-a)" = "$before" ]; then
	ok "1: a REGISTER straight to ast-a for the mirrored AOR 2001 gets 403 and changes no contact"
else
	not_ok "1: direct REGISTER for a mirrored AOR" "$(tail -n 3 "$tmp/direct-2001.out")" "$(ami_contacts ast-a)"
fi

# ========================================================================
# 2. The registrar killed: ispd withdraws its bindings, the contacts go
#    on both, device state UNAVAILABLE.
# ========================================================================
stop reg KILL
if WAIT_S=10 wait_for no_contact ast-a '^2001;' && WAIT_S=5 wait_for no_contact ast-b '^2001;' &&
    wait_for devstate_is ast-a 2001 UNAVAILABLE && wait_for devstate_is ast-b 2001 UNAVAILABLE &&
    has_contact ast-a "^$C0 "; then
	ok "2: registrar killed: the contact is gone on both, PJSIP/2001 UNAVAILABLE (the direct phone's contact stays)"
else
	not_ok "2: registrar killed" "$(ami_contacts ast-a)" "$(ami_contacts ast-b)" "a $(devstate ast-a 2001) b $(devstate ast-b 2001)"
fi
phone_stop p1

# ========================================================================
# 3. Migration: account 2001 is placed on X; X drains; Y serves it now
#    and reaches the phone, which registered once, before the drain.
# ========================================================================
start_registrar reg r2
REGS=127.0.0.1:$port_reg
PHONE_S=300 phone_start p3 2001 "$REGS"
K3="sip:2001@$D|sip:2001@127.0.0.1:${phone_port[p3]}"
U3="sip:2001@127.0.0.1:${phone_port[p3]}"
WAIT_S=10 wait_for has_contact ast-a "$(contact_of 2001 "$K3" "$U3" ast-a)"
WAIT_S=5 wait_for has_contact ast-b "$(contact_of 2001 "$K3" "$U3" ast-b)"
place() { ami_get "$1" "ISP_PLACE(asterisk,$2)"; }
serves() { ami_get "$1" "ISP_SERVES($2)"; }
X=$(place ast-a 2001)
Y=$(other "$X")
if [[ "$X" =~ ^ast-[ab]$ ]] && [ "$(place ast-b 2001)" = "$X" ] &&
    [ "$("$ISPCTL" place asterisk 2001 | cut -d' ' -f1)" = "$X" ] &&
    [ "$(serves "$X" 2001)" = 1 ] && [ "$(serves "$Y" 2001)" = 0 ]; then
	ok "3: ISP_PLACE(asterisk,2001) is $X on both Asterisks and for ispctl place; ISP_SERVES(2001) is 1 on $X, 0 on $Y"
else
	not_ok "3: placement" "a: $(place ast-a 2001), b: $(place ast-b 2001), ispctl: $("$ISPCTL" place asterisk 2001 2>&1)" \
	    "serves $X: $(serves "$X" 2001), $Y: $(serves "$Y" 2001)"
fi
ast_rx "$X" "isp drain" >"$tmp/drain.out" 2>&1
moved() { [ "$(place ast-a 2001)" = "$Y" ] && [ "$(place ast-b 2001)" = "$Y" ]; }
if wait_for inst_is "$X" draining && inst_is "$Y" up && wait_for moved &&
    [ "$("$ISPCTL" place asterisk 2001 | cut -d' ' -f1)" = "$Y" ] &&
    [ "$(serves "$Y" 2001)" = 1 ] && [ "$(serves "$X" 2001)" = 0 ]; then
	ok "3: isp drain on $X: INSTANCES says draining, ISP_PLACE and ispctl place name $Y, which ISP_SERVES 2001"
else
	not_ok "3: drain" "$(cat "$tmp/drain.out")" "$(inst "$X")" "$(inst "$Y")" "place: a $(place ast-a 2001) b $(place ast-b 2001), ispctl $("$ISPCTL" place asterisk 2001 2>&1)" \
	    "serves $X: $(serves "$X" 2001), $Y: $(serves "$Y" 2001)"
fi
if ami_originate "$Y" PJSIP/2001 && phone_got p3 "^INVITE sip:2001@.* $(via "$Y")" &&
    [ "$(phone_count p3 sent '^REGISTER')" -eq 1 ]; then
	ok "3: $Y originates to 2001 and the phone answers; the phone sent exactly one REGISTER, before the drain"
else
	not_ok "3: call after the migration" "$(phone_msgs p3 sent | grep REGISTER)" "$(phone_msgs p3 received)"
fi
ast_rx "$X" "isp undrain" >/dev/null 2>&1
if wait_for inst_is "$X" up && wait_for prints "$X" place "$Y" 2001; then
	ok "3: isp undrain: $X is up again and serves 2001 again"
else
	not_ok "3: undrain" "$(inst "$X")"
fi

# ========================================================================
# 4. Reflectors: the binding of 2002 is in both r1 and r2 (ispctl
#    publish, the registrar's schema); killing r1, then restarting it,
#    removes no contact and raises no DeviceStateChange.
# ========================================================================
PHONE_S=300 phone_start p4 2002 none
U4="sip:2002@127.0.0.1:${phone_port[p4]}"
K4="sip:2002@$D|$U4"
pub_start bgw r1 r2
pub bgw "$(binding_line 2002 "$U4")"
# isp_barrier: a marker binding (an AOR no Asterisk has) through both
# reflectors, seen by both modules: they processed every earlier event.
marker_n=0
isp_barrier() {
	marker_n=$((marker_n + 1))
	pub bgw "$(binding_line "marker$marker_n" "sip:m@10.9.9.$marker_n")"
	local a
	for a in ast-a ast-b; do
		WAIT_S=10 wait_for eval "ast_rx $a 'isp show registrations like marker$marker_n' | grep -q 'marker$marker_n@'" || return 1
		ami_barrier $a || return 1
	done
}
both4() { has_contact ast-a "$(contact_of 2002 "$K4" "$U4" ast-a)" && has_contact ast-b "$(contact_of 2002 "$K4" "$U4" ast-b)"; }
if WAIT_S=10 wait_for both4 && wait_for st_is ast-a ServersUp 2 && wait_for st_is ast-b ServersUp 2 && isp_barrier; then
	ok "4: a binding published into both reflectors is a contact on both Asterisks; ServersUp 2"
else
	not_ok "4: published binding" "$(ami_contacts ast-a)" "$(ami ast-a ISPStatus)"
fi
if [ "$(st ast-a NoAor)" -ge 1 ] && ast_rx ast-a "isp show registrations like marker1" | grep -q "marker1@" && no_contact ast-a "^marker"; then
	ok "4: a binding whose AOR is not configured (the barrier's marker) is listed and counted as no AOR here, no contact"
else
	not_ok "4: no AOR here" "$(ast_rx ast-a "isp show registrations like marker1")" "$(ami ast-a ISPStatus)"
fi
ev_a=$(ami_devstate_events ast-a PJSIP/2002)
ev_b=$(ami_devstate_events ast-b PJSIP/2002)
quiet4() { both4 && [ "$(ami_devstate_events ast-a PJSIP/2002)" -eq "$ev_a" ] && [ "$(ami_devstate_events ast-b PJSIP/2002)" -eq "$ev_b" ]; }
stop r1 KILL
# Let a wrong module act on the loss (it would at once), then the barrier.
if wait_for st_is ast-a ServersUp 1 && wait_for st_is ast-b ServersUp 1 && sleep 2 && isp_barrier && quiet4 &&
    devstate_is ast-a 2002 NOT_INUSE; then
	ok "4: r1 killed: no contact removed, no DeviceStateChange for PJSIP/2002 on either Asterisk"
else
	not_ok "4: r1 killed" "events a $ev_a→$(ami_devstate_events ast-a PJSIP/2002) b $ev_b→$(ami_devstate_events ast-b PJSIP/2002)" \
	    "$(ami_contacts ast-a)" "$(ami ast-a ISPStatus)"
fi
start_ispd r1 --hold 3
if WAIT_S=15 wait_for st_is ast-a ServersUp 2 && WAIT_S=5 wait_for st_is ast-b ServersUp 2 && sleep 1 && isp_barrier && quiet4 &&
    ami_originate ast-a PJSIP/2002 && phone_got p4 "^INVITE sip:2002@.* $(via ast-a)"; then
	ok "4: r1 restarted: both resync with it (ServersUp 2), still no contact removed, no DeviceStateChange; a call reaches the phone"
else
	not_ok "4: r1 restarted" "$(ami ast-a ISPStatus)" "events a $ev_a→$(ami_devstate_events ast-a PJSIP/2002)" "$(phone_msgs p4 received)"
fi

# ========================================================================
# 5. ast-b restarted (now with 1,000 more accounts, for case 7) resyncs
#    every contact; module unload on ast-a removes only its contacts.
# ========================================================================
mirrored() { ami_contacts "$1" | grep -E ' [^ ]+ '"$1"'$' | grep -vF "$C0" | awk '{ print $1, $2 }' | sort; }
want=$(mirrored ast-a)
stop_asterisk ast-b
rc_b=$?
AST_ACCOUNTS=1000 start_asterisk ast-b "$PB" "${conf_b[@]}" || bail "ast-b did not boot again"
ami_log_start ast-b
same() { [ "$(mirrored ast-b)" = "$want" ]; }
if [ $rc_b -eq 0 ] && [ "$(wc -l <<<"$want")" -ge 2 ] && WAIT_S=15 wait_for same && wait_for inst_ok ast-b &&
    wait_for devstate_is ast-b 2001 NOT_INUSE; then
	ok "5: ast-b stopped cleanly and restarted: it has every mirrored contact again ($(wc -l <<<"$want")), INSTANCES up, PJSIP/2001 NOT_INUSE"
else
	not_ok "5: restart resync" "stop exit $rc_b" "want: $want" "have: $(mirrored ast-b)"
fi
ast_rx ast-a "module unload res_pjsip_isp.so" >"$tmp/unload.out" 2>&1
if wait_for no_contact ast-a '^200[12];' && has_contact ast-a "^$C0 " && ! ast_module_running ast-a res_pjsip_isp &&
    wait_for eval '[ -z "$(inst ast-a)" ]'; then
	ok "5: module unload on ast-a removes its contacts only (the phone registered straight at ast-a stays) and its INSTANCES record"
else
	not_ok "5: unload" "$(cat "$tmp/unload.out")" "$(ami_contacts ast-a)"
fi
ast_rx ast-a "module load res_pjsip_isp.so" >"$tmp/load.out" 2>&1
if wait_for eval '[ "$(mirrored ast-a)" = "$want" ]' && wait_for inst_ok ast-a && has_contact ast-a "^$C0 "; then
	ok "5: module load again: every contact back, INSTANCES up"
else
	not_ok "5: load again" "$(cat "$tmp/load.out")" "$(ami_contacts ast-a)"
fi

# A reload: a changed isp.conf makes a new client whose snapshot leaves
# every contact as it was (no DeviceStateChange); a file with an error
# changes nothing and says why.
ev_a=$(ami_devstate_events ast-a PJSIP/2002)
ast_isp_conf ast-a "${conf_a[@]}" "load_pace = 7000"
ast_rx ast-a "module reload res_pjsip_isp.so" >"$tmp/reload.out" 2>&1
if WAIT_S=15 wait_for eval 'ast_log ast-a | grep -q "isp.conf changed: reconnecting"' &&
    WAIT_S=15 wait_for st_is ast-a ServersUp 2 && sleep 1 && isp_barrier &&
    [ "$(mirrored ast-a)" = "$want" ] && [ "$(ami_devstate_events ast-a PJSIP/2002)" -eq "$ev_a" ]; then
	ok "5: module reload with a changed isp.conf reconnects; every contact stays, no DeviceStateChange"
else
	not_ok "5: reload" "$(cat "$tmp/reload.out")" "$(ami ast-a ISPStatus)" "events $ev_a→$(ami_devstate_events ast-a PJSIP/2002)"
fi
ast_isp_conf ast-a "${conf_a[@]}" "load_pace = many"
ast_rx ast-a "module reload res_pjsip_isp.so" >"$tmp/reload.out" 2>&1
if wait_for eval 'ast_log ast-a | grep -q "isp.conf:6: load_pace = many"' && ast_module_running ast-a res_pjsip_isp &&
    st_is ast-a ServersUp 2 && [ "$(mirrored ast-a)" = "$want" ]; then
	ok "5: module reload with an error in isp.conf changes nothing and names the line"
else
	not_ok "5: bad reload" "$(cat "$tmp/reload.out")" "$(ast_log ast-a | tail -n 5)"
fi
ast_isp_conf ast-a "${conf_a[@]}"

# ========================================================================
# 6. Only the serving instance talks to the phone: mailbox 2005@default
#    changed on both Asterisks, its NOTIFY comes from the one that
#    ISP_SERVES 2005 only; no OPTIONS ever. AOR 2004 qualifies
#    (qualify_frequency=2): its binding becomes no contact, no OPTIONS.
# ========================================================================
declare -A held0=([ast-a]=$(st ast-a NotifiesHeldBack) [ast-b]=$(st ast-b NotifiesHeldBack))
PHONE_S=200 phone_start p6 2005 "$REGS"
PHONE_S=200 phone_start p7 2004 "$REGS"
t7=$(date +%s)
K6="sip:2005@$D|sip:2005@127.0.0.1:${phone_port[p6]}"
WAIT_S=10 wait_for has_contact ast-a "^2005;@$(key_md5 "$K6") "
WAIT_S=5 wait_for has_contact ast-b "^2005;@$(key_md5 "$K6") "
SV=$(place ast-a 2005)
NS=$(other "$SV")
for a in ast-a ast-b; do mwi_set $a 3 1 || echo "# MWI update on $a failed"; done
mwi_from() { phone_msgs p6 received 'Voice-Message: 3\/1' | grep -c "^NOTIFY .* $(via "$1")"; }
# $NS's gate held back two NOTIFYs at least: the one res_pjsip_mwi sends
# as soon as the contact exists (the gate must know the contact by then)
# and the 3/1. A gate that learnt of the contact only after creating it
# fails this only when res_pjsip_mwi wins the race, as on a slow machine.
held_ns() { echo $(($(st "$NS" NotifiesHeldBack) - ${held0[$NS]})); }
if [ "$(serves "$SV" 2005)" = 1 ] && wait_for at_least 1 mwi_from "$SV" && sleep 2 &&
    [ "$(phone_count p6 received "^NOTIFY .* $(via "$NS")")" -eq 0 ] && [ "$(held_ns)" -ge 2 ]; then
	ok "6: mailbox 2005@default changed on both: the NOTIFY (3/1) reaches the phone from $SV, which serves 2005, none ever from $NS (its gate held back $(held_ns), the new contact's first one too)"
else
	not_ok "6: MWI from the serving instance only" "serving $SV ($(serves "$SV" 2005)), held back on $NS: $(held_ns)" "$(phone_msgs p6 received)"
fi
# Two qualify periods of 2004 have passed by now.
sleep $((t7 + 5 - $(date +%s) > 0 ? t7 + 5 - $(date +%s) : 0))
if no_contact ast-a '^2004;' && no_contact ast-b '^2004;' &&
    ast_rx ast-a "isp show registrations like 2004" | grep -q '2004@' &&
    [ "$(phone_count p7 received '^OPTIONS')" -eq 0 ]; then
	ok "6: AOR 2004 qualifies: its binding is listed but is no contact, and its phone gets no OPTIONS"
else
	not_ok "6: qualifying AOR skipped" "$(ami_contacts ast-a | grep 2004)" "$(ast_rx ast-a 'isp show registrations like 2004')" \
	    "$(phone_msgs p7 received)"
fi
opts=0
for p in p0 p3 p4 p6 p7; do opts=$((opts + $(phone_count $p received '^OPTIONS'))); done
if [ "$opts" -eq 0 ]; then
	ok "6: no phone received an OPTIONS from any Asterisk (mirrored contacts are never qualified)"
else
	not_ok "6: OPTIONS seen" "$opts OPTIONS"
fi

# ========================================================================
# 7. Bad input: bad records skipped and counted; bad isp.conf and
#    sorcery.conf refuse to load; 100,000 bindings load without
#    overloading Asterisk.
# ========================================================================
sk_a=$(st ast-a Skipped)
sk_b=$(st ast-b Skipped)
n_a=$(ami_contacts ast-a | wc -l)
big=$(head -c 61440 /dev/zero | tr '\0' x)
pub bgw "announce sip:2001@$D|sip:2001@10.0.7.1 contact=sip:2001@10.0.7.1 transport=udp received=10.0.7.1:5060 reg_server=bgw" \
    "$(binding_line 2001 'sip:2001@10.0.7.2' 'contact=sip:@@:x;;<>')" \
    "$(binding_line 2001 'sip:2001@10.0.7.3' "user_agent=$big")"
skipped3() { [ "$(st ast-a Skipped)" -eq $((sk_a + 3)) ] && [ "$(st ast-b Skipped)" -eq $((sk_b + 3)) ]; }
if [[ "$sk_a$sk_b" =~ ^[0-9]+$ ]] && wait_for skipped3 &&
    ast_rx ast-a "isp show status" | grep -qE "^Skipped: +$((sk_a + 3))\$" && isp_barrier &&
    [ "$(ami_contacts ast-a | wc -l)" -eq "$n_a" ] && ast_running ast-a && ast_running ast-b; then
	ok "7: bad records (no aor, an unparseable contact, a 60 KiB user_agent) are skipped and counted (ISPStatus, isp show status); no contact, Asterisk runs"
else
	not_ok "7: bad records" "skipped a $sk_a→$(st ast-a Skipped), b $sk_b→$(st ast-b Skipped)" "$(ast_rx ast-a 'isp show status' 2>&1)"
fi

# bad_conf NAME LINE-REGEX LINE...: an Asterisk whose isp.conf is the
# lines: the module does not run and the log has an error matching.
bad_conf() {
	local name=$1 re=$2
	shift 2
	start_asterisk "$name" "$(free_port)" "$@" || return 1
	local r=0
	ast_module_running "$name" res_pjsip_isp && r=1
	grep -E 'ERROR|WARNING' "$tmp/$name/log/full" | grep -qE -- "$re" || r=1
	bad_why=$(grep -E "ERROR|WARNING" "$tmp/$name/log/full" | grep -v "Unable to load config file" | tail -n 4)
	stop_asterisk "$name"
	return $r
}
good=("server = 127.0.0.1:$port_r1" "name = ast-c" "uri = sip:127.0.0.1:5999")
if bad_conf ast-c1 'isp\.conf:5([^0-9]|$)' "${good[@]}" "load_pace = abc"; then
	ok "7: isp.conf load_pace = abc: the module declines to load, the log names isp.conf:5"
else
	not_ok "7: bad load_pace" "$bad_why"
fi
if bad_conf ast-c2 'uri' "server = 127.0.0.1:$port_r1" "name = ast-c"; then
	ok "7: isp.conf without uri: the module declines to load, the log says uri"
else
	not_ok "7: no uri" "$bad_why"
fi
if bad_conf ast-c3 'isp\.conf:4([^0-9]|$)' "${good[@]:0:2}" "colour = blue" "${good[2]}"; then
	ok "7: isp.conf with an unknown option: the module declines to load, the log names isp.conf:4"
else
	not_ok "7: unknown option" "$bad_why"
fi
if AST_CONTACT_WIZARD=none bad_conf ast-c4 'sorcery\.conf' "${good[@]}"; then
	ok "7: sorcery.conf with no contact wizard (astdb): the module declines to load, the log says sorcery.conf"
else
	not_ok "7: sorcery.conf" "$bad_why"
fi
# Asterisk's own memory wizard works too (isp_memory is the suite's).
pub_start c5 r1
K5="sip:2001@$D|sip:2001@127.0.0.1:5998"
pub c5 "$(binding_line 2001 sip:2001@127.0.0.1:5998)"
if AST_CONTACT_WIZARD=memory start_asterisk ast-c5 "$(free_port)" "${good[@]}" &&
    grep -q "kept by sorcery wizard 'memory'" "$tmp/ast-c5/log/full" &&
    grep -q "kept by sorcery wizard 'isp_memory'" "$tmp/ast-a/log/full" &&
    WAIT_S=10 wait_for has_contact ast-c5 "^2001;@$(key_md5 "$K5") sip:2001@127\.0\.0\.1:5998 ast-c\$"; then
	ok "7: with contact=memory (Asterisk's wizard) the module loads and mirrors too; the pool's instances use isp_memory"
else
	not_ok "7: contact=memory" "$(grep 'sorcery wizard' "$tmp/ast-c5/log/full" "$tmp/ast-a/log/full")" "$(ami_contacts ast-c5)"
fi
stop_asterisk ast-c5
pub_stop c5

# 100,000 bindings, 100 each for accounts 3000..3999 (only ast-b has
# them: on ast-a they are "no AOR here"), through r1; a call on ast-b
# meanwhile. Counted by ISPStatus and checked in PJSIP itself on
# samples: `pjsip list contacts` over 100,000 contacts does not end
# within a minute (and holds Asterisk meanwhile).
awk -v now="$(date +%s)" -v d=$D 'BEGIN { for (i = 0; i < 100000; i++) { a = 3000 + i % 1000; c = "sip:" a "-" i "@10.1." int(i / 250) % 250 "." i % 250 ":5060"
	printf "announce sip:%s@%s|%s aor=sip:%s@%s contact=%s q= received=%s transport=udp path= instance= reg_id= user_agent=bulk expires=%d reg_server=bulk call_id=bulk-%d cseq=1\n",
	    a, d, c, a, d, c, substr(c, index(c, "@") + 1), now + 3600, i } }' >"$tmp/bulk.txt"
c_a=$(st ast-a Contacts)
c_b=$(st ast-b Contacts)
na_a=$(st ast-a NoAor)
# aor_contacts NAME ACCOUNT: the contacts PJSIP lists for an AOR.
aor_contacts() { ast_rx "$1" "pjsip show aor $2" | grep -cE "^ *Contact: +$2/sip:"; }
# Warnings from here on only: booting 1,000 endpoints alone fills the
# devicestate taskprocessor (plain Asterisk does that too).
log_a=$(wc -l <"$tmp/ast-a/log/full")
log_b=$(wc -l <"$tmp/ast-b/log/full")
load_warnings() { { tail -n +$((log_a + 1)) "$tmp/ast-a/log/full"; tail -n +$((log_b + 1)) "$tmp/ast-b/log/full"; } | grep -i "taskprocessor.*queue reached"; }
pub_start bulk r1
t0=$(date +%s%N)
cat "$tmp/bulk.txt" >&"${pub_fd[bulk]}"
sleep 1
call_ok=0
ami_originate ast-b PJSIP/2002 && phone_got p4 "^INVITE sip:2002@.* $(via ast-b)" && call_ok=1
loaded() { [ "$(st ast-b Contacts)" -eq $((c_b + 100000)) ] && st_is ast-b Pending 0; }
WAIT_S=120 wait_for loaded
load_ms=$((($(date +%s%N) - t0) / 1000000))
got=$(st ast-b Contacts)
s3000=$(aor_contacts ast-b 3000)
s3999=$(aor_contacts ast-b 3999)
tp_warn=$(load_warnings | wc -l)
if [ "$got" -eq $((c_b + 100000)) ] && [ "$s3000" -eq 100 ] && [ "$s3999" -eq 100 ] &&
    devstate_is ast-b 3500 NOT_INUSE && [ $call_ok -eq 1 ] && ast_running ast-a && ast_running ast-b; then
	ok "7: 100,000 bindings: all 100,000 contacts on ast-b in $load_ms ms (100 on each AOR sampled, PJSIP/3500 NOT_INUSE), a call meanwhile reached the phone"
else
	not_ok "7: 100,000 bindings" "contacts $c_b→$got in $load_ms ms, AOR 3000: $s3000, AOR 3999: $s3999, call $call_ok" "$(ami ast-b ISPStatus)"
fi
watched=$(st ast-b Watched)
if [ "$tp_warn" -eq 0 ] && [ "${watched:-0}" -ge 1 ]; then
	ok "7: no taskprocessor queue warning in either Asterisk's log during the load (pacing watched $watched subscribers' queues, held back $(st ast-b Waits) windows)"
elif [ "$tp_warn" -eq 0 ]; then
	not_ok "7: pacing found no subscriber of the endpoint topics to watch (AMI's is one)" "$(ami ast-b ISPStatus)"
else
	not_ok "7: taskprocessor warnings: $tp_warn: $(load_warnings | sed -n "s/.*Taskprocessor .\([^']*\). queue reached.*/\1/p" | sort -u | tr "\n" " ")" "$(load_warnings | head -n 3)"
fi
if wait_for st_is ast-a NoAor $((na_a + 100000)) && st_is ast-a Contacts "$c_a" &&
    ast_rx ast-a "isp show registrations like 3999" | grep -q '3999@'; then
	ok "7: on ast-a, which has none of those AORs, the 100,000 are counted and listed as no AOR here, no contact made"
else
	not_ok "7: no AOR here" "$(ami ast-a ISPStatus)"
fi
t0=$(date +%s%N)
pub_stop bulk
removed() { st_is ast-b Contacts "$c_b" && st_is ast-a NoAor "$na_a"; }
if WAIT_S=120 wait_for removed && [ "$(aor_contacts ast-b 3000)" -eq 0 ]; then
	ok "7: the publisher gone, its 100,000 contacts are removed again, in $((($(date +%s%N) - t0) / 1000000)) ms"
else
	not_ok "7: mass removal" "$(ami ast-b ISPStatus)" "ast-a: NoAor $na_a→$(st ast-a NoAor)"
fi

# --- orderly shutdown (under ASan: no report) -------------------------------
pub_stop bgw
rc=0
for a in ast-a ast-b; do
	stop_asterisk $a || { rc=1; echo "# $a exited $?"; }
done
# Every Asterisk of the test, the refused configurations included.
if grep -qE "AddressSanitizer|runtime error:" "$tmp"/ast-*.out; then
	rc=1
	grep -m3 -E "AddressSanitizer|runtime error:" "$tmp"/ast-*.out | sed "s/^/# /"
fi
check "both Asterisks stop cleanly with the module loaded (no sanitizer report from any Asterisk)" test $rc -eq 0

echo "1..$n"
[ "$failed" -eq 0 ]
