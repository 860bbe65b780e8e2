# Shared bash helpers of tests/cli/test_asterisk.sh: TAP, bounded waits,
# the processes of the stage (ispd reflectors, isp-registrar, private
# Asterisk instances, SIPp phones, ispctl publishers) and how to talk to
# them (Asterisk CLI, AMI in pure bash over /dev/tcp, SIPp traces).
#
# Source it after setting BUILD. Everything lives in $tmp, removed at
# exit unless KEEP=1; every process started is in pid[] and killed then.
# All on 127.0.0.1.

AST_PREFIX=${ASTERISK_PREFIX:-/opt/asterisk-22}
ASTERISK=$AST_PREFIX/sbin/asterisk
AST_MODULES=$AST_PREFIX/lib/asterisk/modules
AST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ISPD=$BUILD/ispd
ISPCTL=$BUILD/ispctl
REG=$BUILD/isp-registrar
ISP_MODULE=$BUILD/asterisk/res_pjsip_isp.so
WIZ_MODULE=$BUILD/asterisk/res_sorcery_isp_memory.so
T=SIP_REGISTRATION
D=example.com

# --- TAP ----------------------------------------------------------------
n=0
failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
skip()   { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; local l; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/# /'; done; }
# check NAME CMD...: ok when CMD succeeds, else its last output lines.
check() { local name=$1; shift; if "$@" >"$tmp/check.out" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -n 15 "$tmp/check.out")"; fi; }
bail() { echo "Bail out! $*"; exit 1; }
# skip_whole NAME REQUIRE REASON: the whole test as one skipped case,
# and a note on stderr; a failure instead when the variable named
# REQUIRE is 1 (CI).
skip_whole() {
	echo "1..1"
	if [ "${!2:-0}" = 1 ]; then echo "not ok 1 - $1: $3"; exit 1; fi
	echo "ok 1 - $1 # SKIP $3"
	echo "*** test_$1 SKIPPED: $3 ***" >&2
	exit 0
}

# --- the stage ------------------------------------------------------------
tmp=$(mktemp -d /tmp/isp-ast-test.XXXXXX)
declare -A pid=()		# name -> pid, everything we started
declare -A ast_pid=()		# Asterisk name -> pid of its daemon
declare -A ami_port=()		# Asterisk name -> AMI port
declare -A sip_port=()		# Asterisk name -> SIP port
cleanup() {
	local p i alive
	for p in "${ast_pid[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	for p in "${pid[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	# Asterisk exits on SIGTERM in well under a second; the rest at once.
	for i in $(seq 1 40); do
		alive=0
		for p in "${ast_pid[@]}" "${pid[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && break
		sleep 0.05
	done
	for p in "${ast_pid[@]}" "${pid[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP:-}" ] && echo "# kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# Bounded wait: until "$@" succeeds, at most $WAIT_S seconds (10).
wait_for() {
	local i
	for i in $(seq 1 $((${WAIT_S:-10} * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}
# prints VALUE CMD...: CMD prints VALUE; at_least N CMD...: N or more. For
# wait_for, which runs them at each try (wait_for test "$(CMD)" = V would
# test the one value CMD printed before the wait).
prints() { [ "$("${@:2}")" = "$1" ]; }
at_least() { local v; v=$("${@:2}"); [ "${v:-0}" -ge "$1" ] 2>/dev/null; }

# A free port, TCP and UDP both, never handed out before by this test:
# random in 20000-59999 and absent from ss's listening and bound sockets.
declare -A ports_given=()
free_port() {
	local p i used
	used=$(ss -Htuan 2>/dev/null | awk '{ n = split($5, a, ":"); print a[n] }')
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		[ -n "${ports_given[$p]:-}" ] && continue
		grep -qx "$p" <<<"$used" && continue
		ports_given[$p]=1
		echo "$p"
		return 0
	done
	return 1
}

# start NAME CMD...: a daemon that writes its port to --port-file;
# port_NAME is set from it; stderr to $tmp/NAME.log.
start() {
	local name=$1
	shift
	rm -f "$tmp/$name.port"
	"$@" --port-file "$tmp/$name.port" 2>>"$tmp/$name.log" &
	pid[$name]=$!
	wait_for test -s "$tmp/$name.port" || { cat "$tmp/$name.log"; bail "$name did not start"; }
	eval "port_$name=$(head -1 "$tmp/$name.port")"
}

# stop NAME [SIGNAL]: signal (TERM), wait at most 10 s, its exit status.
stop() {
	local p=${pid[$1]:-} i rc
	[ -n "$p" ] || return 0
	kill -"${2:-TERM}" "$p" 2>/dev/null
	for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	rc=$?
	unset "pid[$1]"
	return $rc
}

# start_ispd NAME [ARGS...]: a reflector; a restart reuses its port (an
# Asterisk's isp.conf names it), else port 0 picks one.
start_ispd() {
	local name=$1 port
	shift
	eval "port=\${port_$name:-0}"
	start "$name" "$ISPD" --listen "127.0.0.1:$port" "$@"
}

# start_registrar NAME ISPD-NAME [ARGS...]: isp-registrar publishing into
# that reflector, its id NAME.
start_registrar() {
	local name=$1 ispd=$2 port
	shift 2
	eval "port=\$port_$ispd"
	start "$name" "$REG" --listen sip:127.0.0.1:0 --ispd "127.0.0.1:$port" --id "$name" "$@"
}

# pub_start NAME ISPD-NAME...: an `ispctl --name NAME publish` session
# with every reflector named, fed through a fifo: pub NAME LINE... writes
# lines (announce KEY F=V..., withdraw KEY); pub_stop ends its input.
declare -A pub_fd=()
pub_start() {
	local name=$1 s=() r port fd
	shift
	for r in "$@"; do eval "port=\$port_$r"; s+=(-s "127.0.0.1:$port"); done
	mkfifo "$tmp/$name.fifo"
	"$ISPCTL" "${s[@]}" --name "$name" publish $T <"$tmp/$name.fifo" >"$tmp/$name.log" 2>&1 &
	pid[$name]=$!
	exec {fd}>"$tmp/$name.fifo"
	pub_fd[$name]=$fd
}
pub() { local name=$1; shift; printf '%s\n' "$@" >&"${pub_fd[$name]}"; }
pub_stop() { local fd=${pub_fd[$1]}; exec {fd}>&-; unset "pub_fd[$1]"; stop "$1"; }

# binding_line USER CONTACT [FIELD=VALUE...]: the announce line of a
# binding in isp-registrar's exact schema (docs/SIP.md: every field, in
# order), AOR sip:USER@example.com; FIELD=VALUE replaces a field.
binding_line() {
	local user=$1 contact=$2 f k line
	shift 2
	local hp=${contact#*@}
	hp=${hp%%;*}
	[[ "$hp" == *:* ]] || hp+=:5060
	local -A v=([aor]="sip:$user@$D" [contact]="$contact" [q]= [received]="$hp"
	    [transport]=udp [path]= [instance]= [reg_id]= [user_agent]=sipp-isp-phone
	    [expires]=$(($(date +%s) + 3600)) [reg_server]=bgw [call_id]="cid-$user" [cseq]=1)
	for f in "$@"; do v[${f%%=*}]=${f#*=}; done
	line="announce sip:$user@$D|$contact"
	for k in aor contact q received transport path instance reg_id user_agent expires reg_server call_id cseq; do
		line+=" $k=${v[$k]}"
	done
	printf '%s\n' "$line"
}
# The md5 hex of an ispd key: the module's contact id is AOR;@MD5.
key_md5() { printf '%s' "$1" | md5sum | cut -d' ' -f1; }

# --- Asterisk ---------------------------------------------------------------
# Under ASan (a build dir whose path says asan) the module needs the
# sanitizer runtimes loaded first into the uninstrumented Asterisk.
AST_ENV=()
if [[ "$BUILD" == *asan* ]]; then
	AST_ENV=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
	    "ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}")
fi

# Asterisk's own modules of the stage, in no order (the loader resolves
# dependencies), each when installed: res_mwi_external and its AMI
# actions (MWIUpdate) are not in scripts/asterisk.sh's build today.
# res_pjsip_isp.so is added when asked for.
AST_LOAD="res_pjproject res_sorcery_config res_sorcery_memory res_sorcery_isp_memory res_sorcery_memory_cache
    res_sorcery_astdb res_pjsip chan_pjsip pbx_config app_dial app_echo func_devstate
    func_strings codec_ulaw bridge_simple res_rtp_asterisk res_timing_timerfd
    res_manager_devicestate res_pjsip_mwi res_pjsip_mwi_body_generator res_pjsip_registrar
    res_pjsip_path res_pjsip_pubsub res_pjsip_session res_pjsip_sdp_rtp res_pjsip_nat
    res_pjsip_endpoint_identifier_user res_pjsip_endpoint_identifier_ip
    res_pjsip_authenticator_digest res_pjsip_outbound_authenticator_digest
    res_http_websocket res_crypto res_mwi_external res_mwi_external_ami"

# ast_isp_conf NAME LINE...: writes $tmp/NAME/etc/isp.conf, [general]
# then the lines as given.
ast_isp_conf() {
	local name=$1
	shift
	{ echo '[general]'; printf '%s\n' "$@"; } >"$tmp/$name/etc/isp.conf"
}

# ast_layout NAME SIPPORT: a private instance under $tmp/NAME: every
# directory its own (astdatadir, read only, is the installed one), the
# modules a directory of symlinks, AMI on a free port (user test, all
# permissions), the full log in $tmp/NAME/log/full.
#   AST_ACCOUNTS=N	also accounts 3000..(3000+N-1) (the bulk test),
#			their AORs with max_contacts=200
#   AST_CONTACT_WIZARD=W	contacts kept by sorcery wizard W: isp_memory
#			(res_sorcery_isp_memory, the default when built),
#			memory, or none (no line: Asterisk's astdb)
#   AST_ISP=1		load res_pjsip_isp.so at boot
ast_layout() {
	local name=$1 sport=$2 dir=$tmp/$1 d m
	mkdir -p "$dir"/{etc,modules,lib/keys,db,spool,run,log}
	for m in "$AST_MODULES"/*.so; do ln -sf "$m" "$dir/modules/"; done
	for m in "$ISP_MODULE" "$WIZ_MODULE"; do
		[ -f "$m" ] && ln -sf "$(cd "$(dirname "$m")" && pwd)/$(basename "$m")" "$dir/modules/"
	done
	sip_port[$name]=$sport
	[ -n "${ami_port[$name]:-}" ] || ami_port[$name]=$(free_port)
	cat >"$dir/etc/asterisk.conf" <<-EOF
	[directories]
	astetcdir => $dir/etc
	astmoddir => $dir/modules
	astvarlibdir => $dir/lib
	astdbdir => $dir/db
	astkeydir => $dir/lib
	astdatadir => $AST_PREFIX/var/lib/asterisk
	astagidir => $dir/lib
	astspooldir => $dir/spool
	astrundir => $dir/run
	astlogdir => $dir/log
	astsbindir => $AST_PREFIX/sbin
	[options]
	systemname = $name
	EOF
	{
		echo '[modules]'
		echo 'autoload = no'
		for m in $AST_LOAD; do [ -e "$dir/modules/$m.so" ] && echo "load = $m.so"; done
		[ "${AST_ISP:-0}" = 1 ] && echo 'load = res_pjsip_isp.so'
	} >"$dir/etc/modules.conf"
	cat >"$dir/etc/manager.conf" <<-EOF
	[general]
	timestampevents = yes
	enabled = yes
	bindaddr = 127.0.0.1
	port = ${ami_port[$name]}
	[test]
	secret = test
	read = all
	write = all
	EOF
	cat >"$dir/etc/logger.conf" <<-EOF
	[general]
	dateformat = %F %T.%3q
	[logfiles]
	full => notice,warning,error,verbose,debug
	EOF
	local wiz=${AST_CONTACT_WIZARD:-}
	[ -n "$wiz" ] || { [ -f "$WIZ_MODULE" ] && wiz=isp_memory || wiz=memory; }
	if [ "$wiz" != none ]; then
		printf '[res_pjsip]\ncontact = %s\n' "$wiz" >"$dir/etc/sorcery.conf"
	else
		printf '[res_pjsip]\n' >"$dir/etc/sorcery.conf"
	fi
	{
		cat <<-EOF
		[udp]
		type = transport
		protocol = udp
		bind = 127.0.0.1:$sport
		[aor-t](!)
		type = aor
		max_contacts = 10
		qualify_frequency = 0
		support_path = yes
		remove_existing = no
		[ep-t](!)
		type = endpoint
		context = from-pool
		disallow = all
		allow = ulaw
		direct_media = no
		; a voicemail system: its NOTIFY sets mailbox 2005@default
		[vmsrc](ep-t)
		incoming_mwi_mailbox = 2005@default
		EOF
		for a in 2001 2002 2003 2004 2005; do
			printf '[%s](aor-t)\n' $a
			[ $a = 2004 ] && echo 'qualify_frequency = 2'
			printf '[%s](ep-t)\naors = %s\n' $a $a
			[ $a = 2005 ] && echo 'mailboxes = 2005@default'
		done
		if [ "${AST_ACCOUNTS:-0}" -gt 0 ]; then
			echo '[bulk-aor](!)'
			echo 'type = aor'
			echo 'max_contacts = 200'
			echo 'qualify_frequency = 0'
			for a in $(seq 3000 $((3000 + AST_ACCOUNTS - 1))); do
				printf '[%s](bulk-aor)\n[%s](ep-t)\naors = %s\n' $a $a $a
			done
		fi
	} >"$dir/etc/pjsip.conf"
	cat >"$dir/etc/extensions.conf" <<-'EOF'
	[general]
	static = yes
	[pool]
	exten => _X.,1,Dial(PJSIP/${EXTEN},10)
	[from-pool]
	include => pool
	[default]
	EOF
}

# start_asterisk NAME SIPPORT [ISP-CONF-LINE...]: lays out the instance
# (isp.conf from the lines, when given; then res_pjsip_isp.so is loaded
# at boot) and runs it in the foreground (-f: no fork, no console, so no
# tty needed; -n no colours; -g core dumps) until fully booted.
start_asterisk() {
	local name=$1 sport=$2 i
	shift 2
	if [ $# -gt 0 ]; then AST_ISP=1 ast_layout "$name" "$sport"; ast_isp_conf "$name" "$@"
	else ast_layout "$name" "$sport"; fi
	"${AST_ENV[@]}" "$ASTERISK" -C "$tmp/$name/etc/asterisk.conf" -f -n -g \
	    </dev/null >>"$tmp/$name.out" 2>&1 &
	ast_pid[$name]=$!
	for i in $(seq 1 150); do
		kill -0 "${ast_pid[$name]}" 2>/dev/null || break
		ast_rx "$name" "core waitfullybooted" 2>/dev/null | grep -q 'fully booted' && return 0
		sleep 0.2
	done
	return 1
}

# stop_asterisk NAME: `core stop now`, SIGKILL after 10 s; its status.
stop_asterisk() {
	local name=$1 p=${ast_pid[$1]:-} i rc
	[ -n "$p" ] || return 0
	ast_rx "$name" "core stop now" >/dev/null 2>&1 || kill "$p" 2>/dev/null
	for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	rc=$?
	unset "ast_pid[$name]"
	return $rc
}
ast_running() { [ -n "${ast_pid[$1]:-}" ] && kill -0 "${ast_pid[$1]}" 2>/dev/null; }

# ast_rx NAME COMMAND: one CLI command through the control socket.
ast_rx() { timeout 20 "$ASTERISK" -C "$tmp/$1/etc/asterisk.conf" -rx "$2"; }
ast_log() { cat "$tmp/$1/log/full" 2>/dev/null; }
# ast_module_running NAME MODULE: `module show like` says Running.
ast_module_running() { ast_rx "$1" "module show like $2" | grep -E "^$2(\.so)? " | grep -qv 'Not Running'; }

# --- AMI, in pure bash ---------------------------------------------------------
# A message is "Key: Value" lines ending with an empty line, CRLF on the
# wire; printed here with LF. AMI_T: seconds a read may wait (20).
# ami_read FD: one message into $ami_msg; fails at EOF or timeout.
ami_read() {
	local line
	ami_msg=
	while IFS= read -r -t "${AMI_T:-20}" -u "$1" line; do
		line=${line%$'\r'}
		[ -z "$line" ] && { [ -n "$ami_msg" ] && return 0; continue; }
		ami_msg+=$line$'\n'
	done
	return 1
}

# ami_login NAME EVENTS: opens a session on fd $ami_fd, logged in.
ami_login() {
	local line
	exec {ami_fd}<>"/dev/tcp/127.0.0.1/${ami_port[$1]}" || return 1
	IFS= read -r -t 5 -u $ami_fd line || return 1		# the banner
	printf 'Action: Login\r\nUsername: test\r\nSecret: test\r\nEvents: %s\r\nActionID: login\r\n\r\n' "$2" >&$ami_fd
	while ami_read $ami_fd; do
		[[ "$ami_msg" == *"ActionID: login"* ]] || continue
		[[ "$ami_msg" == *"Response: Success"* ]] && return 0
		break
	done
	exec {ami_fd}>&-
	return 1
}

# ami NAME ACTION [Key: Value]...: one action in its own session; prints
# the response, and for a list action (EventList: start) every event of
# the list up to its ...Complete event. Exit 1 when the response is not
# Success (or Follows), 3 when AMI could not be reached or did not answer.
ami() {
	local name=$1 action=$2 id=a$$-$RANDOM kv rc=3 list=0 ami_fd ami_msg
	shift 2
	ami_login "$name" off || return 3
	{
		printf 'Action: %s\r\nActionID: %s\r\n' "$action" "$id"
		for kv; do printf '%s\r\n' "$kv"; done
		printf '\r\n'
	} >&$ami_fd
	while ami_read $ami_fd; do
		[[ "$ami_msg" == *"ActionID: $id"$'\n'* ]] || continue
		printf '%s\n' "$ami_msg"
		if [ $list -eq 0 ]; then
			[[ "$ami_msg" =~ Response:\ (Success|Follows) ]] && rc=0 || rc=1
			[[ "$ami_msg" == *"EventList: start"* ]] && list=1 && rc=3 && continue
			break
		fi
		[[ "$ami_msg" == *"EventList: Complete"* ]] && { rc=0; break; }
	done
	printf 'Action: Logoff\r\n\r\n' >&$ami_fd 2>/dev/null
	exec {ami_fd}>&-
	return $rc
}

# ami_get NAME EXPRESSION: the value of a variable or dialplan function,
# evaluated by AMI Getvar without a channel (Asterisk then reads the
# function on a dummy channel), e.g. ami_get a 'DEVICE_STATE(PJSIP/2001)'.
ami_get() { ami "$1" Getvar "Variable: $2" | sed -n 's/^Value: //p'; }
devstate() { ami_get "$1" "DEVICE_STATE(PJSIP/$2)"; }
devstate_is() { [ "$(devstate "$1" "$2")" = "$3" ]; }

# ami_field NAME ACTION FIELD [Key: Value]...: FIELD of the response.
ami_field() { local name=$1 action=$2 f=$3; shift 3; ami "$name" "$action" "$@" | sed -n "s/^$f: //p" | head -1; }

# ami_contacts NAME: one line per PJSIP contact, "ID URI REG_SERVER"
# (from PJSIPShowContacts' ContactList events).
ami_contacts() {
	ami "$1" PJSIPShowContacts | awk 'BEGIN { RS = ""; FS = "\n" }
	    /^Event: ContactList\n/ { id = uri = rs = "-"
		for (i = 1; i <= NF; i++) { split($i, kv, ": "); if (kv[1] == "ObjectName") id = kv[2]
		    else if (kv[1] == "Uri") uri = kv[2]; else if (kv[1] == "RegServer" && kv[2] != "") rs = kv[2] }
		print id, uri, rs }'
}
# has_contact NAME REGEX: a contact line matches (extended regex).
has_contact() { ami_contacts "$1" | grep -qE -- "$2"; }
no_contact() { local c; c=$(ami_contacts "$1") || return 1; ! grep -qE -- "$2" <<<"$c"; }

# ami_originate NAME CHANNEL [TIMEOUT-MS]: a synchronous Originate to
# Wait(1): Success once the channel answered. The phone gets a BYE after.
ami_originate() {
	AMI_T=$(( ${3:-8000} / 1000 + 10 )) ami "$1" Originate "Channel: $2" \
	    "Application: Wait" "Data: 1" "Timeout: ${3:-8000}" "Async: false" | grep -q '^Response: Success'
}

# ami_log_start NAME: a background AMI session with every event on,
# written to $tmp/NAME.ami.log (LF line ends); returns once logged in.
ami_log_start() {
	local name=$1
	(
		ami_login "$name" on || exit 1
		echo "# logged in"
		while IFS= read -r -u $ami_fd line; do printf '%s\n' "${line%$'\r'}"; done
	) >"$tmp/$name.ami.log" 2>&1 &
	pid[ami-$name]=$!
	wait_for grep -qx "# logged in" "$tmp/$name.ami.log"
}
# ami_events NAME [REGEX]: how many events in the log match (each event
# as one record: Event: TYPE, fields; REGEX on the whole record).
ami_events() { awk -v re="${2:-.}" 'BEGIN { RS = "" } /^Event: / && $0 ~ re { c++ } END { print c + 0 }' "$tmp/$1.ami.log"; }
# ami_devstate_events NAME DEVICE: DeviceStateChange events of a device.
ami_devstate_events() { awk -v dev="Device: $2" 'BEGIN { RS = ""; FS = "\n" } /^Event: DeviceStateChange\n/ { for (i = 1; i <= NF; i++) if ($i == dev) c++ } END { print c + 0 }' "$tmp/$1.ami.log"; }
# ami_barrier NAME: a custom device state change that reaches the AMI
# log: every event Asterisk raised before it is in the log by then.
barrier_n=0
ami_barrier() {
	barrier_n=$((barrier_n + 1))
	ast_rx "$1" "devstate change Custom:barrier$barrier_n INUSE" >/dev/null &&
	    wait_for grep -qx "Device: Custom:barrier$barrier_n" "$tmp/$1.ami.log"
}

# --- SIPp phones ----------------------------------------------------------------
# phone_start NAME USER TARGET [DOMAIN]: a phone on its own UDP port
# (phone_port[NAME]): sends one REGISTER for USER@DOMAIN (example.com)
# to TARGET (host:port) and then answers for $PHONE_S seconds (90)
# whatever arrives (phone_uas.xml as the out-of-call scenario: sipp in
# client mode drops requests of unknown calls otherwise). TARGET "none":
# no REGISTER (its binding is published with ispctl), sipp in server
# mode with phone_uas.xml alone. Its trace: $tmp/NAME.msg. Waits until
# the REGISTER got its 200, or the socket is bound.
declare -A phone_port=()
phone_start() {
	local name=$1 user=$2 target=$3 domain=${4:-$D} port dur=${PHONE_S:-90} mode
	port=$(free_port)
	phone_port[$name]=$port
	if [ "$target" = none ]; then
		mode=(-sf "$AST_DIR/phone_uas.xml" -m 10000)
	else
		mode=(-sf "$AST_DIR/phone.xml" -oocsf "$AST_DIR/phone_uas.xml" -m 1 "$target")
	fi
	(cd "$tmp" && exec timeout $((dur + 10)) sipp "${mode[@]}" \
	    -d $((dur * 1000)) -timeout $((dur + 5))s -key user "$user" -key domain "$domain" \
	    -key expires 600 -i 127.0.0.1 -p "$port" -mp "$(free_port)" -nostdin \
	    -trace_msg -message_file "$tmp/$name.msg" -trace_err -error_file "$tmp/$name.err" \
	    </dev/null >"$tmp/$name.out" 2>&1) &
	pid[$name]=$!
	[ "$target" = none ] && { wait_for eval "ss -Hlun \"sport = :$port\" | grep -q ."; return; }
	wait_for phone_got "$name" 'SIP/2.0 200'
}
phone_stop() { stop "$1" INT; }

# phone_msgs NAME DIR [REGEX]: the first line of every message the phone
# received (DIR=received) or sent (DIR=sent), and "via" its top Via's
# sent-by (for a request received: which Asterisk sent it); only the
# messages whose whole text matches REGEX (awk), when given.
phone_msgs() {
	awk -v dir="$2" -v re="${3:-}" '
	    function flush() { if (want && first != "" && (re == "" || msg ~ re)) print first " via " via }
	    /^(UDP|TCP) message (received|sent)/ { flush(); want = ($0 ~ ("message " dir)); first = via = msg = ""; next }
	    { sub(/\r$/, ""); msg = msg $0 "\n" }
	    first == "" && NF { first = $0 }
	    via == "" && tolower($0) ~ /^(via|v):/ { via = $0; sub(/^[^ ]* SIP\/2\.0\/[A-Za-z]* */, "", via); sub(/;.*/, "", via) }
	    END { flush() }
	' "$tmp/$1.msg" 2>/dev/null
}
# phone_got NAME REGEX: a received message's first line matches.
phone_got() { phone_msgs "$1" received | grep -qE -- "$2"; }
# phone_count NAME DIR REGEX: how many messages match.
phone_count() { phone_msgs "$1" "$2" | grep -cE -- "$3"; }

# S NAME PORT SCENARIO [ARGS...]: one sipp call from tests/asterisk to
# 127.0.0.1:PORT, bounded; trace in $tmp/NAME.msg.
S() {
	local name=$1 port=$2 sc=$3
	shift 3
	(cd "$tmp" && timeout 20 sipp -sf "$AST_DIR/$sc" -m 1 -timeout 10s -timeout_error -nostdin \
	    -trace_msg -message_file "$tmp/$name.msg" -trace_err -error_file "$tmp/$name.err" \
	    -i 127.0.0.1 -p "$(free_port)" "$@" "127.0.0.1:$port" </dev/null >"$tmp/$name.out" 2>&1)
}

# mwi_set NAME NEW OLD: mailbox 2005@default on Asterisk NAME gets NEW
# and OLD messages: AMI MWIUpdate when res_mwi_external_ami is loaded,
# else an unsolicited NOTIFY from the voicemail endpoint vmsrc.
mwi_set() {
	if ami "$1" ListCommands | grep -q '^MWIUpdate:'; then
		ami "$1" MWIUpdate "Mailbox: 2005@default" "NewMessages: $2" "OldMessages: $3" >/dev/null
	else
		S "mwi-$1-$2" "${sip_port[$1]}" mwi_notify.xml -key new "$2" -key old "$3"
	fi
}
