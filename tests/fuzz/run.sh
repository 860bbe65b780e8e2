#!/bin/bash
# Runs every fuzz target of build/fuzz: first it replays the committed
# corpus (every input that ever mattered, crashes turned regressions
# included), then fuzzes for a bounded time. Prints TAP.
#
# Usage: tests/fuzz/run.sh SECONDS_PER_TARGET [FUZZ_DIR]
set -u
secs=${1:-15}
dir=${2:-build/fuzz}
cd "$(dirname "$0")/../.."
n=0
failed=0
for bin in "$dir"/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin" | sed 's/^fuzz_//')
	corpus=tests/fuzz/corpus/$name
	work=$dir/work-$name
	mkdir -p "$work"
	n=$((n + 1))
	if "$bin" -runs=0 -detect_leaks=1 "$corpus" >"$dir/$name-replay.log" 2>&1; then
		echo "ok $n - $name: corpus replays clean ($(ls "$corpus" | wc -l) inputs)"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name: corpus replay failed, see $dir/$name-replay.log"
	fi
	n=$((n + 1))
	if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 \
	    -artifact_prefix="$dir/$name-" "$work" "$corpus" >"$dir/$name-fuzz.log" 2>&1; then
		echo "ok $n - $name: ${secs}s of fuzzing, no finding"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name: finding, see $dir/$name-fuzz.log and $dir/$name-crash-*"
		grep -m5 -E 'ERROR|SUMMARY' "$dir/$name-fuzz.log" | sed 's/^/# /'
	fi
done
echo "1..$n"
[ "$failed" -eq 0 ] && [ "$n" -gt 0 ]
