#!/bin/bash
# The Prometheus endpoints of ispd, isp-registrar and isp-locator
# (--metrics): the exposition passes promtool, a real Prometheus server
# scrapes ispd and its HTTP API sees the records of a table come and go,
# /healthz turns 503 when ispd drains, other paths and methods are
# refused, a bad address stops the start. Prints TAP.
#
# Usage: tests/cli/test_metrics.sh BUILD_DIR
# Needs curl; promtool and prometheus (Debian's prometheus, installed by
# scripts/deps.sh) for the checks that use them, sipp for the SIP ones:
# without them those checks are skipped, and say so. Every wait is
# bounded; Prometheus and every daemon are stopped by the trap.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SC=$ROOT/tests/sip
ISPD=$BUILD/ispd
ISPCTL=$BUILD/ispctl
REG=$BUILD/isp-registrar
LOC=$BUILD/isp-locator
DASH=$ROOT/examples/grafana/ispd.json
T=metrics.test
D=example.com

n=0
failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
skip()   { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
# check NAME CMD...: ok when CMD succeeds.
check() { local name=$1; shift; if "$@" >"$tmp/check.out" 2>&1; then ok "$name"; else not_ok "$name" "$(tail -n 15 "$tmp/check.out")"; fi; }

command -v curl >/dev/null || { echo "Bail out! curl is missing (run scripts/deps.sh)"; exit 1; }
for p in "$ISPD" "$ISPCTL" "$REG" "$LOC"; do
	[ -x "$p" ] || { echo "Bail out! $p is not built"; exit 1; }
done
have_prom=1
why_no_prom=
for p in promtool prometheus; do
	if ! command -v $p >/dev/null; then
		have_prom=0
		why_no_prom="$p is missing: scripts/deps.sh installs Debian's prometheus"
		echo "# WARNING: $why_no_prom; the checks that need it are skipped" >&2
	fi
done
have_sipp=1
command -v sipp >/dev/null || have_sipp=0

tmp=$(mktemp -d /tmp/isp-metrics-test.XXXXXX)
declare -A pid=()
cleanup() {
	local p
	exec 3>&- 2>/dev/null
	for p in "${pid[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
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
wait_long() { WAIT_S=30 wait_for "$@"; }
prints() { [ "$("${@:2}")" = "$1" ]; }

# The address a daemon logged for its metrics ("metrics on http://A/metrics").
metrics_addr() { sed -n 's|.*metrics on http://\([^/]*\)/metrics.*|\1|p' "$tmp/$1.log" | head -1; }

# start NAME CMD...: starts a daemon with --metrics 127.0.0.1:0 and
# sets maddr_NAME (its metrics address) and port_NAME (from --port-file).
start() {
	local name=$1
	shift
	rm -f "$tmp/$name.port"
	"$@" --metrics 127.0.0.1:0 --port-file "$tmp/$name.port" 2>>"$tmp/$name.log" &
	pid[$name]=$!
	if ! wait_for test -s "$tmp/$name.port" || ! wait_for grep -q 'metrics on http://' "$tmp/$name.log"; then
		echo "Bail out! $name did not start"; cat "$tmp/$name.log"; exit 1
	fi
	eval "port_$name=$(head -1 "$tmp/$name.port")"
	eval "maddr_$name=$(metrics_addr "$name")"
}

# stop NAME: SIGTERM, and the exit status (0 is a clean exit, and under
# ASan one without leaks).
stop() {
	local p=${pid[$1]} i
	kill "$p" 2>/dev/null
	for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	wait "$p"
	local rc=$?
	unset "pid[$1]"
	return $rc
}

# scrape ADDR [PATH]: the body; code ADDR PATH [CURL-ARGS]: the status.
scrape() { curl -sf --max-time 5 "http://$1${2:-/metrics}"; }
code() { local a=$1 p=$2; shift 2; curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "http://$a$p"; }
# sample ADDR SERIES: the value of one series, e.g. 'ispd_records{table="x"}'.
sample() { scrape "$1" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { exit !found }'; }
lint() { scrape "$1" >"$tmp/lint.txt" && promtool check metrics <"$tmp/lint.txt"; }

# --- a bad address is refused at start --------------------------------
out=$("$ISPD" --listen 127.0.0.1:0 --metrics nonsense 2>&1)
rc=$?
if [ $rc -eq 2 ] && grep -q "invalid metrics 'nonsense': expected HOST:PORT" <<<"$out"; then
	ok "ispd --metrics nonsense: refused at start (exit 2) with what is expected"
else
	not_ok "ispd --metrics nonsense refused" "exit $rc" "$out"
fi
out=$("$ISPD" --listen 127.0.0.1:0 --metrics 127.0.0.1:70000 2>&1)
rc=$?
check_port_range() { [ $rc -eq 2 ] && grep -q "invalid metrics '127.0.0.1:70000'" <<<"$out"; }
check "ispd --metrics 127.0.0.1:70000: refused (exit 2)" check_port_range
printf 'listen 127.0.0.1:0\nmetrics 127.0.0.1:\n' >"$tmp/bad.conf"
out=$("$ISPD" --check-config "$tmp/bad.conf" 2>&1)
rc=$?
check_conf() { [ $rc -ne 0 ] && grep -q "bad.conf:2: invalid metrics '127.0.0.1:'" <<<"$out"; }
check "a bad 'metrics' line is reported with its line by --check-config" check_conf

# --- beyond loopback: a warning; on loopback none ----------------------
# In a network namespace of the test's own, where 192.0.2.10 is an
# address of its lo: nothing listens where another host could reach it.
ns_metrics() {
	unshare -n bash -c '
		ip link set lo up && ip addr add 192.0.2.10/32 dev lo || exit 3
		for a in 192.0.2.10 127.0.0.1; do
			"$0" --listen 127.0.0.1:0 --metrics $a:0 2>"$1-$a.log" &
			p=$!
			for i in $(seq 1 200); do
				grep -q "metrics on http" "$1-$a.log" && break
				sleep 0.05
			done
			kill $p
			wait $p
		done' "$ISPD" "$tmp/ns"
}
if unshare -n true 2>/dev/null; then
	ns_metrics
	warned() { grep -q "metrics on 192.0.2.10:[0-9]* are reachable from other hosts, in clear and without authentication" "$tmp/ns-192.0.2.10.log"; }
	check "metrics bound beyond loopback: ispd warns that other hosts can read them" warned
	quiet() { grep -q "metrics on http://127.0.0.1:" "$tmp/ns-127.0.0.1.log" && ! grep -q "reachable from other hosts" "$tmp/ns-127.0.0.1.log"; }
	check "metrics on loopback: no such warning" quiet
else
	not_ok "a network namespace for the beyond-loopback check" "unshare -n failed (not root?)"
fi

# --- ispd --------------------------------------------------------------
start ispd "$ISPD" --listen 127.0.0.1:0 --drain-seconds 60 --max-key-bytes 100
M=$maddr_ispd
export ISPD_SERVER=127.0.0.1:$port_ispd

# The port is taken now: a second ispd cannot serve metrics there.
out=$("$ISPD" --listen 127.0.0.1:0 --metrics "$M" 2>&1)
rc=$?
check_busy() { [ $rc -eq 1 ] && grep -q "ispd: cannot serve metrics on $M: Address already in use" <<<"$out"; }
check "a metrics port in use stops the start (exit 1) and says why" check_busy

check "GET /healthz: 200 while serving" prints 200 code "$M" /healthz
check "GET /other: 404" prints 404 code "$M" /other
check "POST /metrics: 405" prints 405 code "$M" /metrics -X POST -d x=1
keepalive() { curl -sv --max-time 5 -o /dev/null -o /dev/null "http://$M/healthz" "http://$M/metrics" 2>&1 |
    grep -q 'Re-using existing connection'; }
check "two requests on one connection: the next scrape need not connect again" keepalive
check "GET /metrics: Content-Type of the text format 0.0.4" \
    grep -qi '^content-type: text/plain; version=0.0.4' <(curl -sI --max-time 5 "http://$M/metrics")

# A publisher that stays: ispctl publish reading a FIFO, held open on
# fd 3 (closed for every process started while it is open, so that
# closing it ends the publisher).
mkfifo "$tmp/pub"
"$ISPCTL" --name metrics-pub publish "$T" <"$tmp/pub" >"$tmp/pub.out" 2>&1 &
pid[pub]=$!
exec 3>"$tmp/pub"
for k in 1 2 3; do echo "announce key-$k n=$k" >&3; done
check "ispd_records of the table filled: 3" wait_for prints 3 sample "$M" "ispd_records{table=\"$T\"}"

if [ $have_prom = 1 ]; then
	check "ispd's /metrics passes promtool check metrics" lint "$M"
else
	skip "ispd's /metrics passes promtool check metrics" "$why_no_prom"
fi

# Every family has HELP and TYPE; the names the brief of each gives.
fam_ok() {
	local f
	scrape "$M" >"$tmp/ispd.txt" || return 1
	for f in ispd_build_info ispd_sessions ispd_records ispd_subscribers ispd_events_sent_total \
	    ispd_received_bytes_total ispd_sent_bytes_total ispd_subscriber_queue_max_bytes \
	    ispd_subscriber_queue_bytes ispd_coalesced_keys ispd_coalesced_events_total \
	    ispd_withdraw_backlog_records ispd_held_records ispd_held_clients ispd_limit_refusals_total \
	    ispd_auth_failures_total ispd_reloads_total; do
		grep -q "^# HELP $f " "$tmp/ispd.txt" && grep -q "^# TYPE $f " "$tmp/ispd.txt" ||
		    { echo "no HELP/TYPE for $f"; return 1; }
	done
	grep -q '^ispd_build_info{version="[^"]*"} 1$' "$tmp/ispd.txt" &&
	    grep -q '^ispd_sessions{state="ready"} [1-9]' "$tmp/ispd.txt"
}
check "HELP and TYPE for every family; build_info; a ready session" fam_ok

# A dump is a subscription that ends: its records and END are counted.
ev0=$(sample "$M" 'ispd_events_sent_total{type="end"}')
"$ISPCTL" dump "$T" >/dev/null 2>&1
ev_ok() { [ "$(sample "$M" 'ispd_events_sent_total{type="end"}')" -gt "$ev0" ] &&
    [ "$(sample "$M" 'ispd_events_sent_total{type="announce"}')" -ge 3 ]; }
check "events sent by type: a dump's announces and its end" ev_ok

"$ISPCTL" announce "$T" key-$(printf 'x%.0s' $(seq 1 100)) n=1 >/dev/null 2>&1
check "a refusal by a limit is counted under its option" \
    prints 1 sample "$M" 'ispd_limit_refusals_total{limit="max-key-bytes"}'
kill -HUP "${pid[ispd]}"
check "a reload is counted: ispd_reloads_total{result=\"ok\"} 1" \
    wait_for prints 1 sample "$M" 'ispd_reloads_total{result="ok"}'

# --- a real Prometheus scrapes ispd -------------------------------------
free_port() {
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		(exec 9<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return 0; }
	done
	return 1
}
# prom_value QUERY: the value of the first series the instant query gives.
prom_value() {
	curl -sf --max-time 5 --get --data-urlencode "query=$1" "http://$PROM/api/v1/query" |
	    sed -n 's/.*"result":\[{"metric":{[^}]*},"value":\[[^,]*,"\([^"]*\)"\]}.*/\1/p'
}
prom_start() {
	local try
	cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ispd
    static_configs:
      - targets: ['$M']
EOF
	for try in 1 2 3 4 5; do
		PROM=127.0.0.1:$(free_port) || return 1
		rm -rf "$tmp/prom-data"
		prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom-data" \
		    --web.listen-address="$PROM" >"$tmp/prometheus.log" 2>&1 3>&- &
		pid[prometheus]=$!
		wait_long prints 200 code "$PROM" /-/ready && return 0
		kill "${pid[prometheus]}" 2>/dev/null; wait "${pid[prometheus]}" 2>/dev/null
		unset "pid[prometheus]"
	done
	return 1
}
Q="ispd_records{table=\"$T\"}"
if [ $have_prom = 0 ]; then
	for c in "Prometheus starts" "Prometheus scrapes ispd: 3 records" "5 records" "4 records" "0 records"; do
		skip "$c" "$why_no_prom"
	done
elif ! prom_start; then
	not_ok "Prometheus starts" "$(tail -n 10 "$tmp/prometheus.log")"
else
	ok "Prometheus starts (its own configuration and storage, scrape interval 1 s)"
	check "Prometheus scrapes ispd: its API returns the 3 records of the table" wait_long prints 3 prom_value "$Q"
	for k in 4 5; do echo "announce key-$k n=$k" >&3; done
	check "two more announced: Prometheus sees 5" wait_long prints 5 prom_value "$Q"
	echo "withdraw key-1" >&3
	check "one withdrawn: Prometheus sees 4" wait_long prints 4 prom_value "$Q"
	exec 3>&-
	check "the publisher ends: its records go, Prometheus sees 0" wait_long prints 0 prom_value "$Q"
	kill "${pid[prometheus]}"; wait "${pid[prometheus]}" 2>/dev/null; unset "pid[prometheus]"
fi
exec 3>&- 2>/dev/null

# --- the SIP services -------------------------------------------------
S() {
	local name=$1 port=$2 sc=$3
	shift 3
	(cd "$tmp" && timeout 20 sipp -sf "$SC/$sc" -m 1 -timeout 10s -timeout_error \
	    -trace_msg -message_file "$tmp/$name.msg" -i 127.0.0.1 -p 0 "$@" \
	    "127.0.0.1:$port" </dev/null >"$tmp/$name.out" 2>&1)
}
start reg "$REG" --listen sip:127.0.0.1:0 --id reg-m --domain $D
start loc "$LOC" --listen sip:127.0.0.1:0 --id loc-m
out=$("$REG" --listen sip:127.0.0.1:0 --metrics bogus 2>&1)
rc=$?
check_reg_bad() { [ $rc -ne 0 ] && grep -q "cannot serve metrics on bogus: expected HOST:PORT" <<<"$out"; }
check "isp-registrar --metrics bogus: refused at start, with why" check_reg_bad
check "isp-locator /healthz: 200 once it has its snapshot" wait_for prints 200 code "$maddr_loc" /healthz
if [ $have_sipp = 1 ]; then
	if S reg-alice "$port_reg" reg_200.xml -key user alice -key domain $D \
	    -key contact '<sip:alice@10.0.0.1:5060>' -key expires 60 -cid_str cid-m -key seq 1 \
	    -key extra 'X-Test: 1' -key extra2 'X-Test: 2'; then
		ok "SIPp REGISTER: 200"
	else
		not_ok "SIPp REGISTER" "$(tail -n 5 "$tmp/reg-alice.out")"
	fi
	S reg-other "$port_reg" reg_404.xml -key user bob -key domain other.example \
	    -key contact '<sip:bob@10.0.0.2:5060>' -key expires 60 -cid_str cid-m2 -key seq 1 \
	    -key extra 'X-Test: 1' -key extra2 'X-Test: 2' >/dev/null
	check "the REGISTER is counted by code: isp_registrar_registers_total{code=\"200\"} 1" \
	    prints 1 sample "$maddr_reg" 'isp_registrar_registers_total{code="200"}'
	check "a REGISTER for a domain not served: code=\"404\" 1" \
	    prints 1 sample "$maddr_reg" 'isp_registrar_registers_total{code="404"}'
	check "isp_registrar_bindings 1" prints 1 sample "$maddr_reg" isp_registrar_bindings
	check "the locator learns the binding: isp_locator_bindings 1" \
	    wait_for prints 1 sample "$maddr_loc" isp_locator_bindings
	S inv-alice "$port_loc" inv_302.xml -key user alice -key domain $D >/dev/null
	S inv-nobody "$port_loc" inv_480.xml -key user nobody -key domain $D >/dev/null
	check "lookups by answer: found 1" prints 1 sample "$maddr_loc" 'isp_locator_lookups_total{answer="found"}'
	check "lookups by answer: not_found 1" prints 1 sample "$maddr_loc" 'isp_locator_lookups_total{answer="not_found"}'
else
	for c in "SIPp REGISTER" "REGISTER by code 200" "by code 404" "registrar bindings" "locator bindings" \
	    "lookups found" "lookups not_found"; do
		skip "$c" "sipp is missing (scripts/deps.sh installs sip-tester)"
	done
fi
if [ $have_prom = 1 ]; then
	check "isp-registrar's /metrics passes promtool check metrics" lint "$maddr_reg"
	check "isp-locator's /metrics passes promtool check metrics" lint "$maddr_loc"
else
	skip "isp-registrar promtool" "$why_no_prom"
	skip "isp-locator promtool" "$why_no_prom"
fi
build_ok() {
	[ "$(sample "$maddr_reg" "isp_registrar_build_info{version=\"$("$REG" -V | cut -d' ' -f2)\"}")" = 1 ] &&
	    [ "$(sample "$maddr_loc" "isp_locator_build_info{version=\"$("$LOC" -V | cut -d' ' -f2)\"}")" = 1 ]
}
check "isp_registrar_build_info and isp_locator_build_info carry the version" build_ok

# --- the Grafana dashboard uses only names that exist --------------------
dash_ok() {
	local name missing=
	{ scrape "$M"; scrape "$maddr_reg"; scrape "$maddr_loc"; } >"$tmp/all.txt" || return 1
	jq -e . "$DASH" >/dev/null || { echo "$DASH is not JSON"; return 1; }
	for name in $(jq -r '.. | objects | .expr? // empty' "$DASH" |
	    grep -oE '\b(ispd|isp_registrar|isp_locator)_[a-z_]+' | sort -u); do
		grep -qE "^$name(\{| )" "$tmp/all.txt" || missing="$missing $name"
	done
	[ -z "$missing" ] || { echo "not in any /metrics:$missing"; return 1; }
	[ "$(jq -r '.. | objects | .expr? // empty' "$DASH" | wc -l)" -ge 10 ]
}
# Each query parses as PromQL: promtool checks them as recording rules,
# with Grafana's variables given values.
dash_promql() {
	local i=0
	echo "groups:" >"$tmp/dash-rules.yml"
	echo "  - name: dashboard" >>"$tmp/dash-rules.yml"
	echo "    rules:" >>"$tmp/dash-rules.yml"
	while IFS= read -r e; do
		i=$((i + 1))
		e=${e//\$__rate_interval/1m}
		e=${e//\$__range/1h}
		e=${e//\$instance/.*}
		printf "      - record: dashboard:query_%d\n        expr: '%s'\n" $i "${e//\'/\'\'}" >>"$tmp/dash-rules.yml"
	done < <(jq -r '.. | objects | .expr? // empty' "$DASH")
	promtool check rules "$tmp/dash-rules.yml"
}
if command -v jq >/dev/null; then
	check "every metric the Grafana dashboard queries exists in the /metrics output" dash_ok
	if [ $have_prom = 1 ]; then
		check "every query of the Grafana dashboard is valid PromQL (promtool check rules)" dash_promql
	else
		skip "Grafana dashboard PromQL" "$why_no_prom"
	fi
else
	skip "Grafana dashboard names" "jq is missing"
	skip "Grafana dashboard PromQL" "jq is missing"
fi

# --- drain: /healthz 503 ----------------------------------------------
kill -USR1 "${pid[ispd]}"
check "after SIGUSR1 (drain): /healthz answers 503" wait_for prints 503 code "$M" /healthz
check "and ispd_draining 1" prints 1 sample "$M" ispd_draining

check "isp-registrar stops cleanly" stop reg
check "isp-locator stops cleanly" stop loc
check "ispd stops cleanly" stop ispd

echo "1..$n"
[ $failed -eq 0 ]
