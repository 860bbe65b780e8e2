#!/bin/bash
# The test runner: runs every test program of each build directory given
# (unit and integration tests, in C with cmocka, and the ispctl tests in
# tests/cli), reads their TAP output, and ends with one line:
#   N passed, N failed
# It exits non-zero when anything failed. A program that dies before
# reporting every test counts as one more failure.
#
# Usage: tests/run.sh BUILD_DIR...      (e.g. build build/asan)
# ISP_TEST_FILTER=REGEX runs only the programs whose name matches.
#
# After the build directories, the checks that `make check` prepares
# (mk/checks.mk), each counted like the rest:
#   tsan:test_threaded, tsan:test_embed	when build/tsan has them;
#   valgrind:test_*	when valgrind is installed and the plain build
#			(ISP_VALGRIND_BUILD, default build) is among the
#			directories given: ispd runs under memcheck while
#			that build's integration tests drive it;
#   fuzz		when build/fuzz exists: corpus replay and a short
#			run of every fuzz target (ISP_FUZZ_SECONDS each).
set -u
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()

# Each test program gets 10 minutes at most; the whole suite is far
# below that, so hitting it means a hang.
limit=600

run_one() {	# build name command...
	local build=$1 name=$2 out rc ok notok planned
	shift 2
	out=$(ISP_BUILD=$build CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 5 $limit "$@" 2>"$build/tests/$name.log")
	rc=$?
	ok=$(grep -c '^ok ' <<<"$out")
	notok=$(grep -c '^not ok ' <<<"$out")
	planned=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' <<<"$out" | head -1)
	planned=${planned:-0}
	if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
		notok=1
	elif [ $((ok + notok)) -lt "$planned" ]; then
		notok=$((notok + planned - ok - notok))
	fi
	passed=$((passed + ok))
	failed=$((failed + notok))
	if [ "$notok" -gt 0 ]; then
		printf 'FAIL %-28s %s: %d passed, %d failed (exit %d; log %s)\n' \
		    "$name" "$build" "$ok" "$notok" "$rc" "$build/tests/$name.log"
		grep '^not ok' <<<"$out" | sed 's/^/     /'
		tail -n 20 "$build/tests/$name.log" | sed 's/^/     | /'
		failures+=("$build/$name")
	else
		printf 'ok   %-28s %s: %d passed\n' "$name" "$build" "$ok"
	fi
}

for build in "$@"; do
	[ -d "$build/tests" ] || { echo "run.sh: no tests in $build (make tests first)" >&2; exit 2; }
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		[[ "$name" =~ ${ISP_TEST_FILTER:-.} ]] || continue
		run_one "$build" "$name" "$t"
	done
	for t in tests/cli/test_*.sh; do
		[ -f "$t" ] || continue
		name=$(basename "$t" .sh)
		[[ "$name" =~ ${ISP_TEST_FILTER:-.} ]] || continue
		run_one "$build" "$name" bash "$t" "$build"
	done
done

# ThreadSanitizer: the library thread, mirror readers and writers on
# other threads (tests/integ/test_threaded.c), the error text and frees
# across threads (test_embed.c), built with -fsanitize=thread; the
# daemon is the plain build's (build/tsan/ispd links to it). TSan exits
# 66 when it reported a race. No suppressions.
for t in test_threaded test_embed; do
	if [ -x "build/tsan/tests/$t" ] &&
	    [[ "tsan:$t" =~ ${ISP_TEST_FILTER:-.} ]]; then
		run_one build/tsan "tsan:$t" \
		    env TSAN_OPTIONS="second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
		    "build/tsan/tests/$t"
	fi
done

# Valgrind: every ispd those tests start runs under memcheck; a leak or a
# memory error makes it exit 97, which fails the test that stops it.
# Not under valgrind, with the reasons:
#   test_200k_* (in test_contract): 200,000 announces, a 200,000-record
#	snapshot and a mass withdrawal take minutes at memcheck's ~30x
#	slowdown; the same code paths run, smaller, in the other tests.
#   test_sessions10k: under memcheck ispd welcomed only 8,982 of the
#	10,000 sessions in the test's 40 s (measured): it would test
#	valgrind's speed; the plain and ASan runs cover it.
vg_build=${ISP_VALGRIND_BUILD:-build}
vg_tests="test_wire test_contract test_threaded test_operator"
vg_cmd="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible"
vg_cmd="$vg_cmd --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=97"
if command -v valgrind >/dev/null 2>&1 && [[ " $* " == *" $vg_build "* ]]; then
	for t in $vg_tests; do
		[ -x "$vg_build/tests/$t" ] || continue
		[[ "valgrind:$t" =~ ${ISP_TEST_FILTER:-.} ]] || continue
		run_one "$vg_build" "valgrind:$t" env ISP_ISPD_WRAPPER="$vg_cmd" \
		    ISP_TEST_SKIP='test_200k_*' "$vg_build/tests/$t"
	done
fi

# The fuzz targets, once: replay the corpus, then a short bounded run.
if [ -d build/fuzz ] && [[ "fuzz" =~ ${ISP_TEST_FILTER:-.} ]]; then
	mkdir -p build/fuzz/tests
	run_one build/fuzz fuzz bash tests/fuzz/run.sh "${ISP_FUZZ_SECONDS:-15}" build/fuzz
fi

if [ ${#failures[@]} -gt 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
