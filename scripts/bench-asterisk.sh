#!/bin/bash
# make bench-asterisk: res_pjsip_isp in figures, all on 127.0.0.1, in
# one run (figures, not pass/fail; the exit status says only whether the
# bench could run):
#
#   a. REGISTER at isp-registrar -> contact present on a remote Asterisk
#      (module loaded, accounts 3000..3999): p50/p99/max at 1,000/s;
#   b. 100,000 bindings (ispctl publish, the registrar's schema, over the
#      1,000 accounts) loaded by `module load res_pjsip_isp.so`: seconds
#      until ISPStatus says Contacts 100000, taskprocessor warnings
#      (at the default load_pace, or BENCH_AST_PACE);
#   c. Asterisk's CPU holding 100,000 phones that refresh every 60 s
#      through isp-registrar (1,667 REGISTER/s) beside idle, with the
#      registrar's and ispd's;
#   d. REGISTER/s answered 200 by Asterisk as its own registrar
#      (res_pjsip_registrar, a second, plain Asterisk) and by isp-registrar
#      with the Asterisk mirroring it.
#
# Every process it starts is stopped at exit (tests/asterisk/lib.sh),
# every loop is bounded in count and time, and the whole run in
# BENCH_AST_LIMIT seconds (900). About 3 minutes.
#
# Usage: scripts/bench-asterisk.sh BUILD_DIR
#   BENCH_AST_LAT_N (5000)	REGISTERs of (a), at BENCH_AST_LAT_RATE (1000)/s
#   BENCH_AST_LOAD_N (100000)	bindings of (b)
#   BENCH_AST_PHONES (100000)	phones of (c), refreshing every 60 s
#   BENCH_AST_CPU_S (30)	seconds of each CPU window of (c)
#   BENCH_AST_RATE_N (10000)	REGISTERs of (d), to each system
#   BENCH_AST_PACE (unset)	the module's load_pace (isp.conf; unset: its default)
#   KEEP=1			keep the temporary directory (logs, traces)
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SC=$ROOT/tests/asterisk/bench/reg.xml
LAT_N=${BENCH_AST_LAT_N:-5000}
LAT_RATE=${BENCH_AST_LAT_RATE:-1000}
LOAD_N=${BENCH_AST_LOAD_N:-100000}
PHONES=${BENCH_AST_PHONES:-100000}
CPU_S=${BENCH_AST_CPU_S:-30}
RATE_N=${BENCH_AST_RATE_N:-10000}
PACE=${BENCH_AST_PACE:-}
ACCOUNTS=1000
DOM=example.com

# shellcheck source=../tests/asterisk/lib.sh
. "$ROOT/tests/asterisk/lib.sh"

fail() { echo "bench-asterisk: $*" >&2; exit 1; }
say() { echo "bench-asterisk: $*"; }
[ -x "$ASTERISK" ] || fail "$ASTERISK is missing (scripts/asterisk.sh)"
for p in "$ISPD" "$ISPCTL" "$REG" "$ISP_MODULE" "$WIZ_MODULE"; do [ -e "$p" ] || fail "$p is not built (make all asterisk-module)"; done
command -v sipp >/dev/null || fail "sipp is missing (scripts/deps.sh)"

# The whole run is bounded: past the limit the bench stops itself (the
# EXIT trap of lib.sh stops everything).
( sleep "${BENCH_AST_LIMIT:-900}"; echo "bench-asterisk: over ${BENCH_AST_LIMIT:-900} s, giving up" >&2; kill -TERM $$ ) &
pid[watchdog]=$!
T_START=$EPOCHREALTIME

# --- helpers ---------------------------------------------------------------
tck=$(getconf CLK_TCK)
# cpu_ms PID...: user+system CPU milliseconds of these processes, every
# thread (from /proc/PID/stat, clock ticks).
cpu_ms() {
	local p t=0
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
	done
	echo $((t * 1000 / tck))
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# s_of MS: "1.23" seconds.
s_of() { awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }

# ami_cat_start NAME EVENTS: every event of those classes, as Asterisk
# sends them, into $tmp/NAME.ami.log (LF line ends). Read in blocks by tr
# (a line at a time out, so the login shows at once),
# not line by line by bash: at 1,000 events/s a bash reader would take
# a core of this machine from the systems it measures.
ami_cat_start() {
	local name=$1 ev=$2
	(
		exec {fd}<>"/dev/tcp/127.0.0.1/${ami_port[$name]}" || exit 1
		printf 'Action: Login\r\nUsername: test\r\nSecret: test\r\nEvents: %s\r\n\r\n' "$ev" >&$fd
		exec stdbuf -oL tr -d '\r' <&$fd
	) >"$tmp/$name.ami.log" 2>&1 &
	pid[ami-$name]=$!
	wait_for grep -q '^Message: Authentication accepted' "$tmp/$name.ami.log"
}
st() { ami_field "$1" ISPStatus "$2"; }
# settled NAME CONTACTS: ISPStatus says that many contacts, none pending.
settled() { [ "$(st "$1" Contacts)" = "$2" ] && [ "$(st "$1" Pending)" = 0 ]; }
tp_warnings() { grep -c "Taskprocessor '.*' queue reached" "$tmp/$1/log/full" 2>/dev/null; }

# users COUNT FILE: SIPp's injection file, account 3000 + (i-1) % 1000
# for call i.
users() {
	awk -v n="$1" -v a="$ACCOUNTS" -v d="$DOM" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) printf "%d;%s\n", 3000 + i % a, d }' >"$2"
}
# load NAME PORT COUNT RATE LIMIT RUN [SIPP-ARGS...]: COUNT REGISTERs of
# reg.xml to 127.0.0.1:PORT at RATE/s, at most LIMIT outstanding, bounded
# to 240 s; the time of each 200 in NAME.log, SIPp's screen in NAME.out.
load() {
	local name=$1 port=$2 count=$3 rate=$4 limit=$5 run=$6
	shift 6
	users "$count" "$tmp/$name.csv"
	(cd "$tmp" && timeout 300 sipp -sf "$SC" -inf "$tmp/$name.csv" -r "$rate" -l "$limit" -m "$count" \
	    -key run "$run" -base_cseq 1 -timeout 240s -nostdin -i 127.0.0.1 -trace_logs -log_file "$tmp/$name.log" \
	    "$@" "127.0.0.1:$port" </dev/null >"$tmp/$name.out" 2>&1)
}
# stat NAME COUNTER: SIPp's cumulative counter ("Successful call").
sipp_stat() { awk -F'|' -v c="$2" '$1 ~ "^ *" c " *$" { gsub(/ /, "", $3); v = $3 } END { print v + 0 }' "$tmp/$1.out"; }
retrans() { awk '/REGISTER ---------->/ { r = $4 } END { print r + 0 }' "$tmp/$1.out"; }
# rate NAME: 200 OKs per second over the middle 90% of them (the first
# and last 5% are SIPp ramping up and stragglers of retransmissions).
rate() {
	awk 'NF >= 2 { print $NF }' "$tmp/$1.log" | sort -g | awk '{ t[NR] = $1 } END {
	    lo = int(NR * 0.05) + 1; hi = int(NR * 0.95)
	    if (hi > lo && t[hi] > t[lo]) printf "%.0f", (hi - lo) / (t[hi] - t[lo]); else print "?" }'
}
last_ok() { awk 'NF >= 2 { print $NF }' "$tmp/$1.log" | sort -g | tail -1; }
# pct FILE: "p50 p99 max" in ms of the seconds in FILE, one a line.
pct() {
	sort -g "$1" | awk '{ a[NR] = $1 } END {
	    if (NR == 0) { print "? ? ?"; exit }
	    i50 = int(0.50 * NR + 0.5); if (i50 < 1) i50 = 1
	    i99 = int(0.99 * NR + 0.5); if (i99 < 1) i99 = 1
	    printf "%.1f %.1f %.1f\n", a[i50] * 1000, a[i99] * 1000, a[NR] * 1000 }'
}

# --- the stage -----------------------------------------------------------------
say "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); Asterisk $("$ASTERISK" -V | sed 's/^Asterisk //'), $(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -1)"
start_ispd r1
start_registrar reg r1 --max-contacts 0 --log-level warn
PA=$(free_port)
PP=$(free_port)
# Two private Asterisks laid out by lib.sh with accounts 3000..3999: a
# with res_pjsip_isp (reflector r1), p plain.
AST_ACCOUNTS=$ACCOUNTS start_asterisk a "$PA" "server = 127.0.0.1:$port_r1" "name = a" \
    "uri = sip:127.0.0.1:$PA" ${PACE:+"load_pace = $PACE"} || fail "Asterisk a did not boot: $(tail -n 5 "$tmp/a.out")"
AST_ACCOUNTS=$ACCOUNTS start_asterisk p "$PP" || fail "Asterisk p did not boot: $(tail -n 5 "$tmp/p.out")"
wait_for settled a 0 || fail "res_pjsip_isp is not up on a: $(ami a ISPStatus | tr '\n' ' ')"
ami_cat_start a system || fail "no AMI event session on a"
say "ispd, isp-registrar (--max-contacts 0), Asterisk a (res_pjsip_isp, load_pace ${PACE:-default}, contacts in isp_memory) and Asterisk p (plain), $ACCOUNTS accounts each"

# --- a. REGISTER -> contact on the remote Asterisk ---------------------------
say "a. $LAT_N REGISTERs at ${LAT_RATE}/s to isp-registrar, each a new binding; Asterisk a's ContactStatus events stamped"
users "$LAT_N" "$tmp/lat.csv"
(cd "$tmp" && timeout 120 sipp -sf "$SC" -inf "$tmp/lat.csv" -r "$LAT_RATE" -l 1000 -m "$LAT_N" \
    -key run lat -base_cseq 1 -timeout 60s -nostdin -i 127.0.0.1 -trace_msg -message_file "$tmp/lat.msg" \
    "127.0.0.1:$port_reg" </dev/null >"$tmp/lat.out" 2>&1)
lat_ok=$(sipp_stat lat "Successful call")
WAIT_S=60 wait_for settled a "$LAT_N"
sleep 1	# the last events reach the AMI log
# The first send of each REGISTER (SIPp's trace: a dashed line with the
# local time, then the message), by n; the first ContactStatus of its
# contact on Asterisk (Created, or NonQualified for an AOR that does not
# qualify: Asterisk 22 raises only that one), by n; the difference.
awk '/^-+ [0-9]+-[0-9]+-[0-9]+ [0-9:.]+$/ { split($2, d, "-"); split($3, t, ":")
	    ts = mktime(d[1] " " d[2] " " d[3] " " t[1] " " t[2] " 0") + t[3]; next }
    /message sent/ { sent = 1; next }
    /message received/ { sent = 0; next }
    sent && /^Contact:.*;b=lat;n=/ { n = $0; sub(/.*;n=/, "", n); sub(/[^0-9].*/, "", n); if (!(n in s)) { s[n] = ts; printf "S %s %.6f\n", n, ts }; sent = 0 }' \
    "$tmp/lat.msg" >"$tmp/lat.join"
awk 'BEGIN { RS = ""; FS = "\n" } /^Event: ContactStatus\n/ {
	ts = uri = st = ""
	for (i = 1; i <= NF; i++) { if ($i ~ /^Timestamp: /) ts = substr($i, 12); else if ($i ~ /^URI: /) uri = substr($i, 6)
	    else if ($i ~ /^ContactStatus: /) st = substr($i, 16) }
	if (uri !~ /;b=lat;n=/ || (st != "Created" && st != "NonQualified")) next
	n = uri; sub(/.*;n=/, "", n); sub(/[^0-9].*/, "", n)
	if (!(n in c)) { c[n] = 1; printf "C %s %s\n", n, ts } }' "$tmp/a.ami.log" >>"$tmp/lat.join"
awk '$1 == "S" { s[$2] = $3 } $1 == "C" { c[$2] = $3 } END { for (n in c) if (n in s) printf "%.6f\n", c[n] - s[n] }' \
    "$tmp/lat.join" >"$tmp/lat.s"
lat_seen=$(wc -l <"$tmp/lat.s")
read -r lat_p50 lat_p99 lat_max < <(pct "$tmp/lat.s")
say "   $lat_ok answered 200, $lat_seen contacts seen on a: p50 $lat_p50 ms, p99 $lat_p99 ms, max $lat_max ms"

# --- d. REGISTER/s: Asterisk as its own registrar, isp-registrar -----------
say "d. $RATE_N new bindings as fast as each answers (SIPp -r 20000, 200 outstanding): Asterisk p's res_pjsip_registrar"
c0=$(cpu_ms "${ast_pid[p]}")
load rate-p "$PP" "$RATE_N" 20000 200 rp
p_cpu=$(( $(cpu_ms "${ast_pid[p]}") - c0 ))
p_ok=$(sipp_stat rate-p "Successful call") p_fail=$(sipp_stat rate-p "Failed call") p_rate=$(rate rate-p)
p_contacts=$(ast_rx p "pjsip show contacts" | sed -n 's/^Objects found: //p')
say "   p: $p_ok answered 200, $p_fail failed, $p_rate/s; Asterisk p holds ${p_contacts:-?} contacts"
stop_asterisk p
say "d. the same to isp-registrar, Asterisk a mirroring it"
c0=$(cpu_ms "${pid[reg]}" "${pid[r1]}")
ca0=$(cpu_ms "${ast_pid[a]}")
load rate-r "$port_reg" "$RATE_N" 20000 200 rr
r_cpu=$(( $(cpu_ms "${pid[reg]}" "${pid[r1]}") - c0 ))
r_ok=$(sipp_stat rate-r "Successful call") r_fail=$(sipp_stat rate-r "Failed call") r_rate=$(rate rate-r)
WAIT_S=120 wait_for settled a $((LAT_N + RATE_N))
r_lag=$(secs "$(last_ok rate-r)" "$EPOCHREALTIME")
r_acpu=$(( $(cpu_ms "${ast_pid[a]}") - ca0 ))
r_contacts=$(st a Contacts)
say "   isp-registrar: $r_ok answered 200, $r_fail failed, $r_rate/s; a holds $r_contacts contacts, all of them ${r_lag} s after the last 200"

# The registrar stops: ispd withdraws its bindings, a deletes them.
t0=$EPOCHREALTIME
stop reg
WAIT_S=120 wait_for settled a 0 || say "   (a still holds $(st a Contacts) contacts)"
say "   isp-registrar stopped: a deleted its $((LAT_N + RATE_N)) contacts in $(secs "$t0" "$EPOCHREALTIME") s"

# --- b. 100,000 bindings into one Asterisk -----------------------------------------
say "b. $LOAD_N bindings published with ispctl publish (the registrar's schema, $((LOAD_N / ACCOUNTS)) per account), then module load on a"
ast_rx a "module unload res_pjsip_isp.so" >"$tmp/unload.out" 2>&1
ast_module_running a res_pjsip_isp && fail "res_pjsip_isp did not unload: $(cat "$tmp/unload.out")"
awk -v now="$(date +%s)" -v d=$DOM -v n="$LOAD_N" -v na="$ACCOUNTS" 'BEGIN { for (i = 0; i < n; i++) {
	a = 3000 + i % na; c = "sip:" a "-" i "@10.1." int(i / 250) % 250 "." i % 250 ":5060"
	printf "announce sip:%s@%s|%s aor=sip:%s@%s contact=%s q= received=%s transport=udp path= instance= reg_id= user_agent=bulk expires=%d reg_server=bulk call_id=bulk-%d cseq=1\n",
	    a, d, c, a, d, c, substr(c, index(c, "@") + 1), now + 7200, i } }' >"$tmp/bulk.txt"
pub_start bulk r1
cat "$tmp/bulk.txt" >&"${pub_fd[bulk]}"
in_ispd() { "$ISPCTL" -s "127.0.0.1:$port_r1" tables | awk -v t=$T -v n="$1" '$1 == t && $2 == n { f = 1 } END { exit !f }'; }
WAIT_S=60 wait_for in_ispd "$LOAD_N" || fail "ispd does not hold the $LOAD_N bindings: $("$ISPCTL" -s "127.0.0.1:$port_r1" tables 2>&1)"
w0=$(tp_warnings a)
l0=$(wc -l <"$tmp/a/log/full")
t0=$EPOCHREALTIME
ca0=$(cpu_ms "${ast_pid[a]}")
ast_rx a "module load res_pjsip_isp.so" >"$tmp/load.out" 2>&1
load_s=timeout
for i in $(seq 1 3000); do	# every 100 ms, at most 300 s
	c=$(st a Contacts)
	[ "${c:-0}" -ge "$LOAD_N" ] 2>/dev/null && { load_s=$(secs "$t0" "$EPOCHREALTIME"); break; }
	[ $((i % 50)) -eq 0 ] && say "   ... $(secs "$t0" "$EPOCHREALTIME") s: ${c:-?} contacts"
	sleep 0.1
done
load_cpu=$(( $(cpu_ms "${ast_pid[a]}") - ca0 ))
load_w=$(( $(tp_warnings a) - w0 ))
load_wnames=$(tail -n +"$((l0 + 1))" "$tmp/a/log/full" | sed -n "s/.*Taskprocessor '\([^']*\)' queue reached \([0-9]*\).*/\1 (\2)/p" | sort -u | head -3 | tr '\n' ' ')
say "   $(st a Contacts) contacts after $load_s s (Asterisk CPU $(s_of "$load_cpu") s); taskprocessor high-water warnings: $load_w ${load_wnames:+($load_wnames)}"

# --- c. 100,000 phones refreshing every 60 s, beside idle ----------------------------
ref_rate=$((PHONES / 60))
ref_n=$((ref_rate * CPU_S))
say "c. the bulk publisher stops; $PHONES phones register through a new isp-registrar instead"
t0=$EPOCHREALTIME
w0=$(tp_warnings a)
pub_stop bulk
WAIT_S=180 wait_for settled a 0 || say "   (a still holds $(st a Contacts) contacts)"
rm_s=$(secs "$t0" "$EPOCHREALTIME")
rm_w=$(( $(tp_warnings a) - w0 ))
say "   a deleted the $LOAD_N published contacts in $rm_s s; taskprocessor high-water warnings: $rm_w"
start_registrar reg2 r1 --max-contacts 0 --log-level warn
# One SIPp port and one Call-ID pattern for the phones' registration and
# their refreshes: the refresh of phone n is the same Contact from the
# same address with the same Call-ID and CSeq 2, a byte-identical
# binding for the registrar, so it only restarts the record's TTL.
PH_PORT=$(free_port)
t0=$EPOCHREALTIME
load phones "$port_reg2" "$PHONES" 5000 1000 ph -p "$PH_PORT" -cid_str 'ph-%u@bench'
ph_ok=$(sipp_stat phones "Successful call")
reg_s=$(secs "$t0" "$EPOCHREALTIME")
WAIT_S=240 wait_for settled a "$PHONES"
ph_s=$(secs "$t0" "$EPOCHREALTIME")
ph_contacts=$(st a Contacts)
say "   $ph_ok phones answered 200 in $reg_s s; a holds $ph_contacts contacts after $ph_s s"
# isp-registrar's SIP stack keeps each transaction 32 s (Timer J): the
# idle window starts after the last of the registrations' are gone.
sleep 34
# window NAME: CPU ms of a, the registrar and ispd over the next CPU_S s,
# or over the command given.
applied0=$(st a Applied)
i0a=$(cpu_ms "${ast_pid[a]}") i0r=$(cpu_ms "${pid[reg2]}") i0d=$(cpu_ms "${pid[r1]}")
say "   idle: $CPU_S s with $ph_contacts phones registered and nothing happening"
sleep "$CPU_S"
idle_a=$(( $(cpu_ms "${ast_pid[a]}") - i0a )) idle_r=$(( $(cpu_ms "${pid[reg2]}") - i0r )) idle_d=$(( $(cpu_ms "${pid[r1]}") - i0d ))
say "   refreshing: $ref_n refreshes at ${ref_rate}/s ($PHONES phones every 60 s) for $CPU_S s"
i0a=$(cpu_ms "${ast_pid[a]}") i0r=$(cpu_ms "${pid[reg2]}") i0d=$(cpu_ms "${pid[r1]}")
tr0=$EPOCHREALTIME
users "$ref_n" "$tmp/refresh.csv"
(cd "$tmp" && timeout $((CPU_S + 60)) sipp -sf "$SC" -inf "$tmp/refresh.csv" -r "$ref_rate" -l 1000 -m "$ref_n" \
    -key run ph -base_cseq 2 -timeout $((CPU_S + 40))s -nostdin -i 127.0.0.1 -p "$PH_PORT" -cid_str 'ph-%u@bench' \
    -trace_logs -log_file "$tmp/refresh.log" "127.0.0.1:$port_reg2" </dev/null >"$tmp/refresh.out" 2>&1)
ref_wall=$(secs "$tr0" "$EPOCHREALTIME")
ref_a=$(( $(cpu_ms "${ast_pid[a]}") - i0a )) ref_r=$(( $(cpu_ms "${pid[reg2]}") - i0r )) ref_d=$(( $(cpu_ms "${pid[r1]}") - i0d ))
ref_ok=$(sipp_stat refresh "Successful call") ref_fail=$(sipp_stat refresh "Failed call")
applied1=$(st a Applied)
# per30 MS: CPU ms over the window scaled to 30 s.
per30() { awk -v m="$1" -v w="$2" 'BEGIN { printf "%.2f", m / 1000 * 30 / w }'; }
say "   $ref_ok refreshes answered 200 ($ref_fail failed) in $ref_wall s; contacts changed on a meanwhile: $((applied1 - applied0))"
say "   CPU s per 30 s, idle / refreshing: Asterisk $(per30 "$idle_a" "$CPU_S") / $(per30 "$ref_a" "$ref_wall"), isp-registrar $(per30 "$idle_r" "$CPU_S") / $(per30 "$ref_r" "$ref_wall"), ispd $(per30 "$idle_d" "$CPU_S") / $(per30 "$ref_d" "$ref_wall")"

# --- the table -------------------------------------------------------------------
ast_v=$("$ASTERISK" -V | sed 's/^Asterisk //')
echo
echo "res_pjsip_isp, $(nproc) cores, all on loopback, Asterisk $ast_v, one run ($(secs "$T_START" "$EPOCHREALTIME") s)"
echo
row() { printf '| %-62s | %-46s | %-28s |\n' "$@"; }
row "figure" "value" "goal"
row "---" "---" "---"
row "a. REGISTER at isp-registrar → contact on remote Asterisk" "p50 $lat_p50 ms, p99 $lat_p99 ms, max $lat_max ms ($lat_seen of $LAT_N seen)" "p99 < 10 ms"
row "b. $LOAD_N bindings loaded (module load → ISPStatus Contacts)" "$load_s s, Asterisk CPU $(s_of "$load_cpu") s, $load_w taskprocessor warnings" "< 5 s"
row "c. Asterisk CPU, $ph_contacts phones registered, idle" "$(per30 "$idle_a" "$CPU_S") s per 30 s" "–"
row "c. Asterisk CPU, the same refreshing every 60 s (${ref_rate}/s)" "$(per30 "$ref_a" "$ref_wall") s per 30 s ($((applied1 - applied0)) contacts changed)" "as idle"
row "c. isp-registrar CPU, idle / refreshing" "$(per30 "$idle_r" "$CPU_S") / $(per30 "$ref_r" "$ref_wall") s per 30 s" "–"
row "c. ispd CPU, idle / refreshing" "$(per30 "$idle_d" "$CPU_S") / $(per30 "$ref_d" "$ref_wall") s per 30 s" "–"
row "d. Asterisk's own registrar (res_pjsip_registrar), REGISTER/s" "$p_rate/s, $p_ok × 200, $p_fail failed (CPU $(s_of "$p_cpu") s)" "–"
row "d. isp-registrar + ispd, Asterisk mirroring, REGISTER/s" "$r_rate/s, $r_ok × 200, $r_fail failed (CPU $(s_of "$r_cpu") s)" "–"
echo
echo "a: $LAT_N new bindings (accounts 3000..3999) at ${LAT_RATE}/s; from SIPp's send of the REGISTER (-trace_msg) to the"
echo "   Timestamp of Asterisk's first ContactStatus event for its contact (AMI, timestampevents=yes); $lat_ok answered 200."
echo "b: $LOAD_N records in ispd before \`module load res_pjsip_isp.so\`; ISPStatus polled every 100 ms; load_pace ${PACE:-default}."
echo "   Warnings: \"Taskprocessor '...' queue reached\" in Asterisk's log during the load${load_wnames:+: $load_wnames}."
echo "c: $ph_ok phones registered through isp-registrar (a held them after $ph_s s; the $LOAD_N of b deleted first, in $rm_s s, $rm_w taskprocessor warnings);"
echo "   $ref_ok refreshes (same Call-ID, CSeq 2) in $ref_wall s; CPU = utime+stime from /proc/PID/stat, scaled to 30 s."
echo "d: $RATE_N new bindings to each, SIPp -r 20000 -l 200, no authentication; rate = the middle 90% of the 200s over their span."
echo "   Asterisk p: contacts in sorcery wizard isp_memory, max_contacts 200; retransmissions p $(retrans rate-p), isp-registrar $(retrans rate-r)."
echo "   Asterisk a had every binding ${r_lag} s after the registrar's last 200 (Asterisk CPU meanwhile $(s_of "$r_acpu") s)."
