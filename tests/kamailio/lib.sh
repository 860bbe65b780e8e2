# Bash helpers of the Kamailio stage (tests/cli/test_kamailio.sh,
# scripts/demo-pool.sh), on top of tests/asterisk/lib.sh: Kamailio nodes
# running examples/kamailio/kamailio.cfg with the ispd module, kamcmd,
# a SIPp caller. Source it after tests/asterisk/lib.sh, with ROOT, KMOD
# (the module), CFG (the configuration) and CALL (tests/kamailio/call.xml)
# set and a reflector r1 started.

declare -A kport=()
# kam_start NAME [-A DEFINE...]: a node on its own UDP port, the example
# configuration with this stage's addresses; waits for its ispd session.
kam_start() {
	local name=$1 port
	shift
	port=${kport[$name]:-$(free_port)}
	kport[$name]=$port
	kamailio -f "$CFG" -DD -E -Y "$tmp" -P "$tmp/$name.pid" -m 64 -M 8 \
	    -A "LISTEN=udp:127.0.0.1:$port" -A "NODE=\"$name\"" \
	    -A "ISPD_1=\"127.0.0.1:$port_r1\"" -A "CTL=\"unix:$tmp/$name.ctl\"" \
	    -A "JSONRPC_FIFO=\"$tmp/$name.rpc\"" -A "JSONRPC_DIR=\"$tmp/\"" \
	    -A "ISPD_MODULE=\"$KMOD\"" "$@" >>"$tmp/$name.log" 2>&1 &
	pid[$name]=$!
	wait_for kam_up "$name"
}
kam_rpc() { kamcmd -s "unix:$tmp/$1.ctl" "${@:2}" 2>/dev/null; }
# kam_kill NAME: the node dies at once, every process of it (SIGKILL of
# the main process alone would leave its children serving, and running
# after the test).
kam_kill() {
	local p=${pid[$1]} kids
	kids=$(pgrep -P "$p")
	# shellcheck disable=SC2086 # the children's pids, one word each
	kill -KILL "$p" $kids 2>/dev/null
	wait "$p" 2>/dev/null
}
# jsonrpc NAME METHOD: the JSON-RPC answer of node NAME (jsonrpcs over
# its FIFO; the reply FIFO's name may hold no dot), bounded to 5 s.
jsonrpc() {
	local r=reply_$RANDOM
	mkfifo "$tmp/$r" || return 1
	printf '{"jsonrpc": "2.0", "method": "%s", "reply_name": "%s", "id": 1}\n' "$2" "$r" |
	    timeout 5 tee "$tmp/$1.rpc" >/dev/null && timeout 5 cat "$tmp/$r"
	rm -f "$tmp/$r"
}
kam_stat() { kam_rpc "$1" ispd.status | awk -v k="$2:" '$1 == k { print $2 }'; }
kam_up() { [ "$(kam_stat "$1" up)" = 1 ]; }
# contacts NAME AOR: the contacts node NAME's usrloc holds for AOR.
contacts() { kam_rpc "$1" ul.lookup location "$2" | grep -c 'Address:'; }
instances() { kam_rpc "$1" ispd.instances | grep -c 'role: asterisk'; }
# caller NAME NODE USER FROM [PORT]: one call to USER@example.com from
# FROM through NODE, from 127.0.0.1:PORT (a free one by default);
# succeeds on a 200.
caller() {
	(cd "$tmp" && timeout 30 sipp -sf "$CALL" -key user "$3" -key from "$4" -key domain "$D" \
	    -m 1 -timeout 20s -nostdin -i 127.0.0.1 -p "${5:-$(free_port)}" -mp "$(free_port)" \
	    -trace_err -error_file "$tmp/$1.err" "127.0.0.1:${kport[$2]}" </dev/null >"$tmp/$1.out" 2>&1)
}
# invites_via PHONE PORT: INVITEs the phone received that passed through
# 127.0.0.1:PORT (a Via of theirs).
invites_via() {
	awk -v hop="127.0.0.1:$2" '/^(UDP|TCP) message (received|sent)/ { if (inv && hit) n++; inv = hit = 0; rcv = ($0 ~ /received/); next }
	    rcv && /^INVITE / { inv = 1 } rcv && tolower($0) ~ /^via:/ && index($0, hop) { hit = 1 }
	    END { if (inv && hit) n++; print n + 0 }' "$tmp/$1.msg"
}
