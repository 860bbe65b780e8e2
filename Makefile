# ispd: plain GNU make, no generator. `make` builds into build/;
# `make SAN=1 BUILD=build/asan` builds the same tree with ASan+UBSan.

BUILD	?= build
PREFIX	?= /usr/local
DESTDIR	?=
# Where `make install` puts things; the Debian build sets LIBDIR to the
# multiarch directory (debian/rules).
BINDIR	?= $(PREFIX)/bin
SBINDIR	?= $(PREFIX)/sbin
LIBDIR	?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR	?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CC	?= cc
SAN	?=

WARN	 = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
	   -Wmissing-prototypes -Wno-unused-parameter -Wformat=2
CFLAGS	?= -O2 -g
ifeq ($(SAN),1)
CFLAGS	 = -O1 -g -fno-omit-frame-pointer \
	   -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS	+= -fsanitize=address,undefined
endif
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -pthread $(WARN) $(CPPFLAGS) \
	   $(CFLAGS) -Iinclude -Isrc/common -Isrc/metrics
ALL_LDFLAGS = -pthread $(LDFLAGS)

COMMON_SRC	:= $(wildcard src/common/*.c)
# The Prometheus endpoint of ispd and the SIP services (not of libisp).
PROM_SRC	:= $(wildcard src/metrics/*.c)
PROM_LIBS	 = -lmicrohttpd
ISPD_SRC	:= $(wildcard src/ispd/*.c)
LIB_SRC		:= $(wildcard src/lib/*.c)
ISPCTL_SRC	:= $(wildcard src/ispctl/*.c)
TESTLIB_SRC	:= $(wildcard tests/lib/*.c)
UNITLIB_SRC	:= $(wildcard tests/unit/harness/*.c)
UNIT_SRC	:= $(wildcard tests/unit/test_*.c)
INTEG_SRC	:= $(wildcard tests/integ/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
# clientconf.c is the command line of the programs built on libisp
# (ispctl, the SIP services): neither ispd nor libisp holds it.
CLIENTCONF_OBJ	:= $(call obj,src/common/clientconf.c)
COMMON_OBJ	:= $(filter-out $(CLIENTCONF_OBJ),$(call obj,$(COMMON_SRC)))
PROM_OBJ	:= $(call obj,$(PROM_SRC))
ISPD_OBJ	:= $(call obj,$(ISPD_SRC))
ISPD_CORE_OBJ	:= $(filter-out %/main.o,$(ISPD_OBJ))
LIB_OBJ		:= $(call obj,$(LIB_SRC))
ISPCTL_OBJ	:= $(call obj,$(ISPCTL_SRC))
TESTLIB_OBJ	:= $(call obj,$(TESTLIB_SRC))
UNITLIB_OBJ	:= $(call obj,$(UNITLIB_SRC))

FUZZ_SRC	:= $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN	:= $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
ISPD_CORE_SRC	:= $(filter-out %/main.c,$(ISPD_SRC))

UNIT_BIN	:= $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEG_BIN	:= $(patsubst tests/integ/%.c,$(BUILD)/tests/%,$(INTEG_SRC))

PROGS	 = $(BUILD)/ispd $(BUILD)/ispctl $(BUILD)/libisp.a $(BUILD)/libisp.so

.PHONY: all deps check check-plain demo install clean tests golden \
	fuzz fuzz-build fuzz-seeds

all: $(PROGS)

tests: $(PROGS) $(UNIT_BIN) $(INTEG_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/ispd: $(ISPD_OBJ) $(PROM_OBJ) $(COMMON_OBJ)
	$(CC) $^ $(ALL_LDFLAGS) $(PROM_LIBS) -o $@

$(BUILD)/libisp.a: $(LIB_OBJ) $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The shared library exports the public isp_* API and nothing else.
$(BUILD)/libisp.so: $(LIB_OBJ) $(COMMON_OBJ) src/lib/libisp.map
	$(CC) -shared -Wl,-soname,libisp.so.1 -Wl,--version-script=src/lib/libisp.map \
	    $(filter %.o,$^) $(ALL_LDFLAGS) -o $@

$(BUILD)/ispctl: $(ISPCTL_OBJ) $(CLIENTCONF_OBJ) $(BUILD)/libisp.a
	$(CC) $^ $(ALL_LDFLAGS) -o $@

# Unit tests link the daemon's own objects (all but main.o), their
# harness (tests/unit/harness: test clients on real sessions) and the
# library; integration tests link the library and the test helpers.
# Objects come before the archive so the linker resolves their calls.
UNIT_CFLAGS	 = -Isrc/ispd -Isrc/lib -Itests/unit/harness
$(UNITLIB_OBJ): ALL_CFLAGS += $(UNIT_CFLAGS)
# The harness's objects are prerequisites of a pattern rule only, which
# could make them intermediate files, deleted after each build.
.SECONDARY: $(UNITLIB_OBJ)

$(BUILD)/tests/%: tests/unit/%.c $(ISPD_CORE_OBJ) $(PROM_OBJ) $(UNITLIB_OBJ) \
    $(TESTLIB_OBJ) $(BUILD)/libisp.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(UNIT_CFLAGS) -Itests/lib $^ $(ALL_LDFLAGS) \
	    $(PROM_LIBS) -lcmocka -o $@

$(BUILD)/tests/%: tests/integ/%.c $(TESTLIB_OBJ) $(BUILD)/libisp.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/lib $^ $(ALL_LDFLAGS) -lcmocka -o $@

# Fuzz targets: libFuzzer (clang), with ASan and UBSan. They link the
# codec and the daemon's own objects, compiled anew by clang.
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
	   -Wall -Wextra -Werror -Wno-unused-parameter \
	   -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	   -Iinclude -Isrc/common -Isrc/metrics -Isrc/ispd
FUZZ_SECONDS ?= 600

build/fuzz/fuzz_proto: tests/fuzz/fuzz_proto.c $(COMMON_SRC) \
    $(wildcard src/common/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(filter %.c,$^) -o $@

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(COMMON_SRC) $(ISPD_CORE_SRC) \
    $(PROM_SRC) $(wildcard src/common/*.h src/ispd/*.h src/metrics/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(filter %.c,$^) $(PROM_LIBS) -o $@

fuzz-build: $(FUZZ_BIN)

# Each target for FUZZ_SECONDS (10 minutes by default).
fuzz: deps fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

# Regenerates the seed corpus of the codec target.
fuzz-seeds: $(COMMON_OBJ)
	@mkdir -p build/fuzz tests/fuzz/corpus/proto
	$(CC) $(ALL_CFLAGS) tests/fuzz/seeds.c $(COMMON_OBJ) -o build/fuzz/seeds
	build/fuzz/seeds tests/fuzz/corpus/proto

deps:
	@scripts/deps.sh

# The suite twice: a plain build, then ASan+UBSan. The runner prints
# "N passed, N failed" for each and the sum last.
check: deps
	@scripts/asterisk.sh --if-sources
	@scripts/kamailio.sh --if-sources >/dev/null
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory SAN=1 BUILD=build/asan tests
	@$(MAKE) --no-print-directory fuzz-build
	@tests/run.sh build build/asan

check-plain: deps
	@$(MAKE) --no-print-directory tests
	@tests/run.sh build

# Rewrites tests/cli/golden from the current ispctl output; review the
# diff before committing it.
golden: all
	@ISP_GOLDEN_UPDATE=1 bash tests/cli/test_ispctl.sh $(BUILD) >/dev/null || true
	@git --no-pager diff --stat -- tests/cli/golden 2>/dev/null || true

# Last, the Asterisk pool (scripts/demo-asterisk.sh), and the whole pool
# behind a Kamailio BGW (scripts/demo-pool.sh), when Asterisk is
# installed or its sources are there to build it (once per machine), and
# the Kamailio sources are there.
demo: deps all
	@scripts/demo.sh $(BUILD)
	@scripts/demo-sip.sh $(BUILD)
	@scripts/asterisk.sh --if-sources
	@if scripts/asterisk.sh --check; then \
	    $(MAKE) --no-print-directory asterisk-module && \
	    scripts/demo-asterisk.sh $(BUILD) && \
	    if src=$$(scripts/kamailio.sh --if-sources) && [ -n "$$src" ]; then \
		$(MAKE) --no-print-directory kamailio-module && \
		scripts/demo-pool.sh $(BUILD); \
	    else echo "demo: no Kamailio sources: the BGW demo is skipped"; fi; \
	else echo "demo: no Asterisk 22: the pool demos are skipped"; fi

# The shared library's file is named after the library's version
# (ISP_VERSION in isp.h, which follows its ABI): libisp.so.1.5.0, with
# libisp.so.1 (the soname) and libisp.so (for -lisp) linking to it.
LIB_VERSION	:= $(shell sed -n 's/^\#define ISP_VERSION[[:space:]]*"\(.*\)"$$/\1/p' include/isp.h)
LIB_SONAME	 = libisp.so.1
LIB_REAL	 = libisp.so.$(LIB_VERSION)

# pkg-config's file, for the directories of this install: made anew by
# every make that asks for it, since PREFIX and LIBDIR may differ.
.PHONY: $(BUILD)/libisp.pc
$(BUILD)/libisp.pc: src/lib/libisp.pc.in include/isp.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(LIB_VERSION)|' \
	    src/lib/libisp.pc.in >$@

# The daemon goes to sbin (the units of examples/systemd run
# /usr/sbin/ispd), ispctl to bin. mk/sip.mk adds the SIP services.
install: all $(BUILD)/libisp.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
	    $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BUILD)/ispd $(DESTDIR)$(SBINDIR)/
	install -m 755 $(BUILD)/ispctl $(DESTDIR)$(BINDIR)/
	install -m 644 $(BUILD)/libisp.a $(DESTDIR)$(LIBDIR)/
	install -m 644 $(BUILD)/libisp.so $(DESTDIR)$(LIBDIR)/$(LIB_REAL)
	ln -sf $(LIB_REAL) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libisp.so
	install -m 644 include/isp.h include/isp_place.h \
	    $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(BUILD)/libisp.pc $(DESTDIR)$(PKGCONFIGDIR)/
	install -m 644 man/ispctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/libisp.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 man/ispd.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 man/ispd.8 $(DESTDIR)$(MANDIR)/man8/

clean:
	rm -rf build

# Optional parts (benchmarks, extra checks) keep their rules in mk/*.mk.
-include $(wildcard mk/*.mk)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
