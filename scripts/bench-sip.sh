#!/bin/bash
# make bench-sip: REGISTERs per second through isp-registrar driven by
# SIPp, and the time from the 200 OK to the binding being visible in a
# remote mirror, side by side with Kamailio 5.6 (Debian) as a registrar
# with usrloc in memory, with two Kamailio nodes replicating with
# dmq_usrloc, and with two Kamailio nodes sharing usrloc through ispd
# (the ispd module, build/kamailio/ispd.so, when it is built). Everything
# on loopback in this one run; every process it starts is stopped at the
# end.
#
# Usage: scripts/bench-sip.sh BUILD_DIR
# BENCH_SIP_N (20000) REGISTERs for the rate, sent as fast as SIPp can
# (-r BENCH_SIP_RATE, 30000/s, at most 400 outstanding);
# BENCH_SIP_ROUNDS (3) rounds of that, the median reported;
# BENCH_SIP_LAT_N (10000) REGISTERs at 1,000/s for the latency.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SC=$ROOT/tests/sip/reg_bench.xml
N=${BENCH_SIP_N:-20000}
LN=${BENCH_SIP_LAT_N:-10000}
RATE=${BENCH_SIP_RATE:-30000}
ROUNDS=${BENCH_SIP_ROUNDS:-3}
KMOD=/usr/lib/x86_64-linux-gnu/kamailio/modules/
ISPMOD=$BUILD/kamailio/ispd.so
case $ISPMOD in /*) ;; *) ISPMOD=$(pwd)/$ISPMOD ;; esac

tmp=$(mktemp -d /tmp/isp-bench-sip.XXXXXX)
declare -A pid=()
cleanup() {
	local p
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null; done
	for p in "$tmp"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE
fail() { echo "bench-sip: $*" >&2; exit 1; }
wait_for() {
	local i
	for i in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}
# at_least N CMD...: CMD prints N or more, run at each try of wait_for.
at_least() { local v; v=$("${@:2}"); [ "${v:-0}" -ge "$1" ] 2>/dev/null; }
for p in sipp kamailio kamcmd "$BUILD/isp-registrar" "$BUILD/isp-sip-watch"; do
	command -v "$p" >/dev/null || fail "$p is missing (scripts/deps.sh bench-sip; make)"
done

# users PREFIX COUNT: a SIPp injection file of new AORs.
users() {
	{ echo SEQUENTIAL; seq -f "$1%.0f;bench.example.com" 1 "$2"; } >"$tmp/$1.csv"
}
# load NAME PORT PREFIX COUNT RATE: SIPp REGISTERs, one new AOR each; the
# time of every 200 OK lands in NAME.ok as "USER EPOCH".
load() {
	local name=$1 port=$2 prefix=$3 count=$4 rate=$5
	users "$prefix" "$count"
	(cd "$tmp" && timeout 300 sipp -sf "$SC" -inf "$tmp/$prefix.csv" -r "$rate" -l 400 \
	    -m "$count" -timeout 240s -i 127.0.0.1 -trace_logs -log_file "$tmp/$name.log" \
	    "127.0.0.1:$port" </dev/null >"$tmp/$name.out" 2>&1) ||
	    fail "$name: sipp failed: $(grep -E 'Failed call|Aborting' "$tmp/$name.out" | head -3)"
	awk 'NF >= 4 { print $1, $4 }' "$tmp/$name.log" >"$tmp/$name.ok"
	[ "$(wc -l <"$tmp/$name.ok")" -eq "$count" ] || fail "$name: $(wc -l <"$tmp/$name.ok") of $count answered 200"
}
# rate NAME: 200 OKs per second in the steady part of the run: the middle
# 90% of the answers over the time they took. (The first and last 5% are
# SIPp ramping up, and the stragglers a lost UDP datagram leaves for
# SIPp's 500 ms retransmission timer.)
rate() {
	awk '{ print $2 }' "$tmp/$1.ok" | sort -g | awk '{ t[NR] = $1 } END {
	    lo = int(NR * 0.05) + 1; hi = int(NR * 0.95)
	    if (hi > lo && t[hi] > t[lo]) printf "%.0f", (hi - lo) / (t[hi] - t[lo]); else print "?" }'
}
# cpu PID...: user+system CPU milliseconds used so far by these processes
# and their children's threads (from /proc, clock ticks).
tck=$(getconf CLK_TCK)
cpu() {
	local p t=0
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
	done
	echo $((t * 1000 / tck))
}
# kpids NAME: a Kamailio's main process and its workers.
kpids() { local m; m=$(cat "$tmp/$1.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }
# per1k BEFORE AFTER COUNT: CPU ms per 1,000 REGISTERs.
per1k() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (b - a) * 1000 / n }'; }
retrans() { awk '/REGISTER ---------->/ { r = $4 } END { print r + 0 }' "$tmp/$1.out"; }
# pct FILE: p50 and p99 (ms) of the latencies in FILE (seconds, one a line).
pct() {
	sort -g "$1" | awk '{ a[NR] = $1 } END {
	    if (NR == 0) { print "? ?"; exit }
	    i50 = int(0.50 * NR); if (i50 < 1) i50 = 1
	    i99 = int(0.99 * NR); if (i99 < 1) i99 = 1
	    printf "%.3f %.3f\n", a[i50] * 1000, a[i99] * 1000 }'
}

# --- ispd + isp-registrar ----------------------------------------------
"$BUILD/ispd" --listen 127.0.0.1:0 --port-file "$tmp/ispd.port" 2>"$tmp/ispd.err" &
pid[ispd]=$!
wait_for test -s "$tmp/ispd.port" || fail "ispd did not start"
export ISPD_SERVER=127.0.0.1:$(head -1 "$tmp/ispd.port")
"$BUILD/isp-registrar" --listen sip:127.0.0.1:0 --port-file "$tmp/reg.port" \
    --log-level warn 2>"$tmp/reg.err" &
pid[reg]=$!
wait_for test -s "$tmp/reg.port" || fail "isp-registrar did not start"
rport=$(cat "$tmp/reg.port")

# --- Kamailio ----------------------------------------------------------
# kam NAME SIP-PORT [DMQ-PORT PEER-DMQ-PORT | isp]: a registrar, usrloc
# in memory (db_mode 0), two worker processes (one per core), 1 GiB of
# shared memory (256 MiB runs out in the dmq pair after ~60,000 AORs);
# with dmq_usrloc, or with the ispd module ("isp": its session to this
# run's ispd, the node named NAME).
kam() {
	local name=$1 sp=$2 dp=${3:-} op=${4:-} isp=
	[ "$dp" = isp ] && { isp=1; dp=; }
	{
		echo '#!KAMAILIO'
		echo 'debug=1'
		echo 'log_stderror=yes'
		echo 'children=2'
		echo 'auto_aliases=no'
		echo "listen=udp:127.0.0.1:$sp"
		[ -n "$dp" ] && echo "listen=udp:127.0.0.1:$dp"
		echo "mpath=\"$KMOD\""
		for m in tm sl pv maxfwd textops usrloc registrar ctl kex; do echo "loadmodule \"$m.so\""; done
		[ -n "$dp" ] && echo 'loadmodule "dmq.so"' && echo 'loadmodule "dmq_usrloc.so"'
		[ -n "$isp" ] && echo "loadmodule \"$ISPMOD\""
		echo 'modparam("usrloc", "db_mode", 0)'
		if [ -n "$isp" ]; then
			echo "modparam(\"ispd\", \"server\", \"$ISPD_SERVER\")"
			echo "modparam(\"ispd\", \"name\", \"$name\")"
			echo 'modparam("ispd", "aor_domain", "bench.example.com")'
			# Its own table: the registrar's bindings are not theirs.
			echo 'modparam("ispd", "table", "SIP_REGISTRATION_KAM")'
		fi
		echo "modparam(\"ctl\", \"binrpc\", \"unix:$tmp/$name.sock\")"
		if [ -n "$dp" ]; then
			echo "modparam(\"dmq\", \"server_address\", \"sip:127.0.0.1:$dp\")"
			echo "modparam(\"dmq\", \"notification_address\", \"sip:127.0.0.1:$op\")"
			echo 'modparam("dmq_usrloc", "enable", 1)'
		fi
		echo 'request_route {'
		[ -n "$dp" ] && echo "	if (is_method(\"KDMQ\") && \$Rp == $dp) { dmq_handle_message(); exit; }"
		echo '	if (is_method("REGISTER")) { save("location"); exit; }'
		echo '	sl_send_reply("405", "Method Not Allowed");'
		echo '}'
	} >"$tmp/$name.cfg"
	kamailio -f "$tmp/$name.cfg" -DD -E -Y "$tmp" -P "$tmp/$name.pid" -m 1024 -M 16 \
	    >"$tmp/$name.err" 2>&1 &
	wait_for kamcmd -s "unix:$tmp/$name.sock" core.version ||
	    fail "kamailio $name did not start: $(tail -n 3 "$tmp/$name.err")"
}
kstop() { kill "$(cat "$tmp/$1.pid")" 2>/dev/null; wait_for sh -c "! kill -0 $(cat "$tmp/$1.pid") 2>/dev/null"; rm -f "$tmp/$1.pid"; }
contacts() { kamcmd -s "unix:$tmp/$1.sock" stats.get_statistics location_contacts | sed 's/.*= *//'; }
# Free UDP ports near a random base.
base=$((20000 + RANDOM % 20000))

echo "isp-registrar: $LN REGISTERs at 1,000/s, a remote mirror watching..."
"$BUILD/isp-sip-watch" >"$tmp/watch.out" 2>"$tmp/watch.err" &
pid[watch]=$!
sleep 0.5
load isp-lat "$rport" l "$LN" 1000
sleep 0.5
kill "${pid[watch]}"; wait "${pid[watch]}" 2>/dev/null; unset "pid[watch]"
# Latency per AOR: mirror time minus 200 OK time (negative when the
# event arrived first: the registrar announces before it answers).
awk 'NR == FNR { ok[$1] = $2; next } ($1 in ok) { printf "%.6f\n", $2 - ok[$1] }' \
    "$tmp/isp-lat.ok" "$tmp/watch.out" >"$tmp/isp-lat.ms"
seen=$(wc -l <"$tmp/isp-lat.ms")
[ "$seen" -eq "$LN" ] || fail "the mirror saw $seen of $LN bindings"
read -r isp_p50 isp_p99 < <(pct "$tmp/isp-lat.ms")

kam k1 $base
kam kA $((base + 1)) $((base + 11)) $((base + 12))
kam kB $((base + 2)) $((base + 12)) $((base + 11))
ipair=0
if [ -f "$ISPMOD" ]; then
	ipair=1
	kam iA $((base + 3)) isp
	kam iB $((base + 4)) isp
else
	echo "bench-sip: $ISPMOD is not built (make kamailio-module): no row for the ispd pair" >&2
fi
sleep 1	# the pairs find each other

# The rate, in ROUNDS rounds, the three systems in turn in each, so a
# disturbance on this machine hits all of them alike; the median counts.
# median VALUES...: the middle one.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
isp_rates=() isp_cpus=() k1_rates=() k1_cpus=() kA_rates=() kA_cpus=() iA_rates=() iA_cpus=()
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r of $ROUNDS: $N REGISTERs as fast as SIPp sends them, to each system..."
	c0=$(cpu "${pid[reg]}" "${pid[ispd]}")
	load isp-rate-$r "$rport" "r${r}x" "$N" "$RATE"
	isp_rates+=("$(rate isp-rate-$r)")
	isp_cpus+=("$(per1k "$c0" "$(cpu "${pid[reg]}" "${pid[ispd]}")" "$N")")
	c0=$(cpu $(kpids k1))
	load k1-rate-$r $base "r${r}x" "$N" "$RATE"
	k1_rates+=("$(rate k1-rate-$r)")
	k1_cpus+=("$(per1k "$c0" "$(cpu $(kpids k1))" "$N")")
	c0=$(cpu $(kpids kA) $(kpids kB))
	n0=$(contacts kB)
	load kA-rate-$r $((base + 1)) "r${r}x" "$N" "$RATE"
	kA_rates+=("$(rate kA-rate-$r)")
	wait_for at_least $((n0 + N)) contacts kB ||
	    echo "bench-sip: node B holds $(contacts kB) of $((n0 + N))" >&2
	kA_cpus+=("$(per1k "$c0" "$(cpu $(kpids kA) $(kpids kB))" "$N")")
	[ $ipair = 1 ] || continue
	c0=$(cpu $(kpids iA) $(kpids iB) "${pid[ispd]}")
	n0=$(contacts iB)
	load iA-rate-$r $((base + 3)) "r${r}x" "$N" "$RATE"
	iA_rates+=("$(rate iA-rate-$r)")
	wait_for at_least $((n0 + N)) contacts iB ||
	    echo "bench-sip: node B of the ispd pair holds $(contacts iB) of $((n0 + N))" >&2
	iA_cpus+=("$(per1k "$c0" "$(cpu $(kpids iA) $(kpids iB) "${pid[ispd]}")" "$N")")
done
isp_rate=$(median "${isp_rates[@]}") isp_cpu=$(median "${isp_cpus[@]}")
k1_rate=$(median "${k1_rates[@]}") k1_cpu=$(median "${k1_cpus[@]}")
kA_rate=$(median "${kA_rates[@]}") kA_cpu=$(median "${kA_cpus[@]}")
if [ $ipair = 1 ]; then
	iA_rate=$(median "${iA_rates[@]}") iA_cpu=$(median "${iA_cpus[@]}")
fi
kstop k1

# pair_latency A B PORT-OF-A: LN REGISTERs at 1,000/s to node A; node
# B has no hook for replicated contacts, so its contact count is polled
# over RPC (about every 3 ms); the k-th 200 OK at A is visible at B when
# B's count first reaches b0 + k. Prints p50 and p99 (ms).
pair_latency() {
	local a=$1 b=$2 port=$3 b0
	b0=$(contacts "$b")
	(while :; do echo "$EPOCHREALTIME $(contacts "$b")"; done) >"$tmp/$b.poll" 2>/dev/null &
	pid[poll]=$!
	load "$a-lat" "$port" "l$a" "$LN" 1000
	wait_for at_least $((b0 + LN)) contacts "$b"
	sleep 0.2
	kill "${pid[poll]}"; wait "${pid[poll]}" 2>/dev/null; unset "pid[poll]"
	sort -k2,2n "$tmp/$a-lat.ok" | awk -v b0="$b0" '
    NR == FNR { if ($2 != "") { pt[++np] = $1; pc[np] = $2 - b0 }; next }
    { ok[++n] = $2 }
    END {
	j = 1
	for (k = 1; k <= n; k++) {
		while (j <= np && pc[j] < k) j++
		if (j > np) break
		printf "%.6f\n", pt[j] - ok[k]
	}
	    }' "$tmp/$b.poll" - >"$tmp/$a-lat.ms"
	pct "$tmp/$a-lat.ms"
}
echo "kamailio pair (dmq_usrloc): $LN REGISTERs at 1,000/s to node A, node B polled..."
read -r kd_p50 kd_p99 < <(pair_latency kA kB $((base + 1)))
kstop kA
kstop kB
if [ $ipair = 1 ]; then
	echo "kamailio pair (ispd): $LN REGISTERs at 1,000/s to node A, node B polled..."
	read -r ki_p50 ki_p99 < <(pair_latency iA iB $((base + 3)))
	kstop iA
	kstop iB
fi
kill "${pid[reg]}" "${pid[ispd]}"; wait "${pid[reg]}" "${pid[ispd]}" 2>/dev/null
unset "pid[reg]" "pid[ispd]"

echo
echo "SIP registration, $(nproc) cores, all on loopback, SIPp $(sipp -v 2>/dev/null | sed -n 's/.*SIPp \(v[0-9.]*\).*/\1/p' | head -1)"
row() { printf '| %-44s | %10s | %11s | %7s | %21s | %21s |\n' "$@"; }
row "system" "REGISTER/s" "CPU ms/1k" "retrans" "200 OK->remote p50 ms" "200 OK->remote p99 ms"
row "---" "---:" "---:" "---:" "---:" "---:"
row "isp-registrar + ispd (+ remote mirror)" "$isp_rate" "$isp_cpu" "$(retrans isp-rate-1)" "$isp_p50" "$isp_p99"
row "Kamailio $(kamailio -v | sed -n 's/^version: kamailio \([0-9.]*\).*/\1/p'), usrloc in memory" "$k1_rate" "$k1_cpu" "$(retrans k1-rate-1)" "-" "-"
row "Kamailio pair, dmq_usrloc (B polled ~3 ms)" "$kA_rate" "$kA_cpu" "$(retrans kA-rate-1)" "$kd_p50" "$kd_p99"
[ $ipair = 1 ] &&
    row "Kamailio pair, ispd module (B polled ~3 ms)" "$iA_rate" "$iA_cpu" "$(retrans iA-rate-1)" "$ki_p50" "$ki_p99"
echo
echo "REGISTER/s: $N new AORs per round, SIPp at up to ${RATE}/s with 400 outstanding; the middle 90% of the 200 OKs"
echo "over their time span; median of $ROUNDS rounds (each: isp $(echo "${isp_rates[@]}"); kamailio $(echo "${k1_rates[@]}"); dmq pair $(echo "${kA_rates[@]}"); ispd pair $(echo "${iA_rates[@]:-}")). retrans: round 1."
echo "CPU ms/1k: CPU time of the server processes (registrar and ispd; every Kamailio process; the ispd pair's and ispd) per 1,000 REGISTERs."
echo "Latency: $LN new AORs at 1,000/s; negative when the mirror had the binding before SIPp had the 200 OK."
