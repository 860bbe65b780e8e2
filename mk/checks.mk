# Checks beyond the plain and ASan suites (docs/TESTING.md):
#   - the seed corpus of the session fuzz target (make fuzz-seeds);
#   - build/tsan: libisp, test_threaded and test_embed built with
#     ThreadSanitizer;
#   - valgrind over ispd, driven by the plain build's integration tests;
# `make check` builds them before the suite runs (checks-build, added
# to check's prerequisites below), and tests/run.sh runs and counts them.

.PHONY: checks-build fuzz-seeds-session tsan check-tsan check-valgrind

# Seeds of fuzz_session: whole client sessions, one flag byte first.
fuzz-seeds: fuzz-seeds-session
fuzz-seeds-session: $(COMMON_OBJ)
	@mkdir -p build/fuzz tests/fuzz/corpus/session
	$(CC) $(ALL_CFLAGS) tests/fuzz/seeds_session.c $(COMMON_OBJ) \
	    -o build/fuzz/seeds_session
	build/fuzz/seeds_session tests/fuzz/corpus/session

# ThreadSanitizer: the library and the tests of its threads only. ispd is
# single-threaded, so build/tsan/ispd is the plain build's binary (the
# test finds the daemon next to its build directory). A sub-make with
# its own BUILD and flags keeps TSan objects apart from the others.
TSAN_CFLAGS	= -O1 -g -fno-omit-frame-pointer -fsanitize=thread
TSAN_BUILD	= build/tsan

tsan: deps
	@$(MAKE) --no-print-directory BUILD=build all
	@$(MAKE) --no-print-directory BUILD=$(TSAN_BUILD) \
	    CFLAGS="$(TSAN_CFLAGS)" LDFLAGS="-fsanitize=thread" \
	    $(TSAN_BUILD)/tests/test_threaded $(TSAN_BUILD)/tests/test_embed
	@ln -sf ../ispd $(TSAN_BUILD)/ispd

# The test helpers are prerequisites of a pattern rule only, which would
# make them intermediate files, deleted after each TSan build.
.SECONDARY: $(TESTLIB_OBJ)

checks-build: deps
	@$(MAKE) --no-print-directory tsan

# `make check` builds these before its recipe runs the suite.
check: checks-build

# Each on its own, counted by the runner like the rest.
check-tsan: tsan
	@ISP_TEST_FILTER='^tsan:' tests/run.sh build

check-valgrind: deps
	@$(MAKE) --no-print-directory tests
	@ISP_TEST_FILTER='^valgrind:' tests/run.sh build
