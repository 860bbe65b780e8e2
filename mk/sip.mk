# The SIP services: isp-registrar and isp-locator (src/sip), their unit
# test, their fuzz target and the SIP benchmark. Included by the top
# Makefile; uses its BUILD, SAN, ALL_CFLAGS and ALL_LDFLAGS, so
# `make SAN=1 BUILD=build/asan` builds these too.
#
# They need sofia-sip and OpenSSL's libcrypto (scripts/deps.sh).

SIP_PKG_CFLAGS	:= $(shell pkg-config --cflags sofia-sip-ua 2>/dev/null || \
		     echo -I/usr/include/sofia-sip-1.12)
# -isystem: sofia-sip's headers are not ours to hold to -Werror.
SIP_CFLAGS	 = $(patsubst -I%,-isystem %,$(SIP_PKG_CFLAGS)) -Isrc/sip
SIP_LIBS	 = -lsofia-sip-ua -lcrypto

SIP_SRC		:= $(wildcard src/sip/*.c)
SIP_BENCH_SRC	:= $(wildcard src/sip/bench/*.c)
SIP_OBJ		:= $(call obj,$(SIP_SRC))
SIP_MAIN_OBJ	:= $(call obj,src/sip/registrar_main.c src/sip/locator_main.c)
SIP_CORE_OBJ	:= $(filter-out $(SIP_MAIN_OBJ),$(SIP_OBJ))
SIP_PROGS	 = $(BUILD)/isp-registrar $(BUILD)/isp-locator
SIP_TEST_BIN	 = $(BUILD)/tests/test_sip_core

$(SIP_OBJ): ALL_CFLAGS += $(SIP_CFLAGS)

.PHONY: sip bench-sip install-sip

all: $(SIP_PROGS)
tests: $(SIP_PROGS) $(SIP_TEST_BIN)
fuzz-build: build/fuzz/fuzz_sip

sip: $(SIP_PROGS)

$(BUILD)/isp-registrar: $(call obj,src/sip/registrar_main.c) $(SIP_CORE_OBJ) \
    $(CLIENTCONF_OBJ) $(PROM_OBJ) $(BUILD)/libisp.a
	$(CC) $^ $(ALL_LDFLAGS) $(SIP_LIBS) $(PROM_LIBS) -o $@

$(BUILD)/isp-locator: $(call obj,src/sip/locator_main.c) $(SIP_CORE_OBJ) \
    $(CLIENTCONF_OBJ) $(PROM_OBJ) $(BUILD)/libisp.a
	$(CC) $^ $(ALL_LDFLAGS) $(SIP_LIBS) $(PROM_LIBS) -o $@

# The registrar core against parsed REGISTERs, no sockets (cmocka, TAP);
# tests/run.sh runs every $(BUILD)/tests/test_* it finds.
$(SIP_TEST_BIN): tests/sip/test_sip_core.c $(SIP_CORE_OBJ) $(CLIENTCONF_OBJ) $(PROM_OBJ) \
    $(BUILD)/libisp.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SIP_CFLAGS) -Itests/lib $^ $(ALL_LDFLAGS) \
	    $(SIP_LIBS) $(PROM_LIBS) -lcmocka -o $@

# The fuzz target: sofia-sip's parser (the system library, not
# instrumented) feeding the registrar and locator cores (instrumented).
build/fuzz/fuzz_sip: tests/fuzz/fuzz_sip.c $(filter-out %_main.c,$(SIP_SRC)) \
    $(COMMON_SRC) $(LIB_SRC) $(PROM_SRC) \
    $(wildcard src/sip/*.h src/common/*.h src/metrics/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(SIP_CFLAGS) -Isrc/lib $(filter %.c,$^) \
	    -pthread $(SIP_LIBS) $(PROM_LIBS) -o $@

# `make install` installs the SIP services too, with their pages; they
# are daemons like ispd, so into sbin (examples/systemd's units run
# /usr/sbin/isp-registrar and /usr/sbin/isp-locator).
install: install-sip
install-sip: $(SIP_PROGS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(SIP_PROGS) $(DESTDIR)$(SBINDIR)/
	install -m 644 man/isp-registrar.8 man/isp-locator.8 \
	    $(DESTDIR)$(MANDIR)/man8/

# The benchmark's remote mirror (libisp only).
$(BUILD)/isp-sip-watch: $(call obj,$(SIP_BENCH_SRC)) $(BUILD)/libisp.a
	$(CC) $^ $(ALL_LDFLAGS) -o $@

# REGISTER rate and registration-to-remote-visibility, next to Kamailio
# (one node, and two nodes replicating with dmq_usrloc).
bench-sip: all $(BUILD)/isp-sip-watch
	@scripts/deps.sh bench-sip
	@scripts/bench-sip.sh $(BUILD)
