# The ispd module for Kamailio 5.6 (src/kamailio, docs/KAMAILIO.md).
# Included by the top Makefile; uses its BUILD, WARN and CFLAGS.
#
#	make kamailio-module	build/kamailio/ispd.so, against the Kamailio
#				5.6.3 sources scripts/kamailio.sh prepares
#				(or KAMAILIO_SRC=/path/to/kamailio-5.6.x)
#	make install-kamailio-module
#				into Kamailio's module directory
#	make demo-pool		the whole pool: a phone, two Kamailio BGW
#				nodes, two Asterisks (scripts/demo-pool.sh)
#
# The module is loaded by Debian 12's own kamailio package: it is
# compiled with the definitions of that build (scripts/kamailio.sh writes
# them to ispd-cdefs), and the core checks them. Every symbol but the
# four the core looks up stays inside the module (the version script),
# libisp's included.

KAMAILIO_SRC	?= $(or $(ISP_CACHE_DIR),/var/cache/ispd)/kamailio-5.6.3
KAMAILIO_MODDIR	?= /usr/lib/x86_64-linux-gnu/kamailio/modules
KAM_SRC		:= $(wildcard src/kamailio/*.c)
KAM_OBJ		:= $(patsubst %.c,$(BUILD)/obj/%.o,$(KAM_SRC))
KAM_MODULE	 = $(BUILD)/kamailio/ispd.so
KAM_CDEFS	 = $(shell cat $(KAMAILIO_SRC)/ispd-cdefs 2>/dev/null)
# Kamailio's headers are gnu99 and not ours to hold to -Werror.
KAM_CFLAGS	 = -std=gnu11 -D_GNU_SOURCE -fPIC -pthread $(WARN) \
		   -Wno-missing-prototypes -Wno-strict-prototypes $(CFLAGS) \
		   $(KAM_CDEFS) -DMOD_NAME=\"ispd\" \
		   -isystem $(KAMAILIO_SRC)/src -Iinclude -Isrc/common \
		   -Isrc/kamailio

.PHONY: kamailio-module install-kamailio-module demo-pool

# Built with the suite when the sources are prepared (make check runs
# scripts/kamailio.sh first); not in the sanitizer build: Debian's
# Kamailio loads no ASan module.
ifneq ($(wildcard $(KAMAILIO_SRC)/ispd-cdefs),)
ifeq ($(SAN),)
tests: $(KAM_MODULE)
endif
endif

$(BUILD)/obj/src/kamailio/%.o: src/kamailio/%.c $(KAMAILIO_SRC)/ispd-cdefs
	@mkdir -p $(dir $@)
	$(CC) $(KAM_CFLAGS) -MMD -MP -c $< -o $@

$(KAM_MODULE): $(KAM_OBJ) $(BUILD)/libisp.a src/kamailio/ispd.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,--version-script=src/kamailio/ispd.map \
	    -Wl,--exclude-libs,ALL \
	    $(KAM_OBJ) $(BUILD)/libisp.a $(ALL_LDFLAGS) -lssl -lcrypto -o $@

kamailio-module:
	@src=$$(scripts/kamailio.sh) && \
	    $(MAKE) --no-print-directory KAMAILIO_SRC=$$src $(KAM_MODULE)

# Builds Asterisk first when it is not there (once per machine).
demo-pool: deps all
	@$(MAKE) --no-print-directory asterisk kamailio-module
	@scripts/demo-pool.sh $(BUILD)

install-kamailio-module: kamailio-module
	install -d $(DESTDIR)$(KAMAILIO_MODDIR)
	install -m 644 $(KAM_MODULE) $(DESTDIR)$(KAMAILIO_MODDIR)/ispd.so
