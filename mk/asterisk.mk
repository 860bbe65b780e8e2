# res_pjsip_isp, the Asterisk 22 module (src/asterisk, docs/ASTERISK.md).
# Included by the top Makefile; uses its BUILD, SAN, WARN and CFLAGS.
#
#	make asterisk		builds Asterisk into /opt/asterisk-22 once
#				(scripts/asterisk.sh), then the module
#	make asterisk-module	the module, against ASTERISK_PREFIX
#	make install-asterisk-module
#				into Asterisk's module directory
#	make demo-asterisk	two Asterisks, one phone, a drain
#				(scripts/demo-asterisk.sh)
#	make bench-asterisk	the module in figures
#				(scripts/bench-asterisk.sh)
#
# ASTERISK_PREFIX is where Asterisk's headers are (include/asterisk.h);
# the bundled pjproject's headers are looked for in
# $(ASTERISK_PREFIX)/include/pjproject (scripts/asterisk.sh puts them
# there), or given with PJPROJECT_CFLAGS (for an Asterisk built against a
# system pjproject: `pkg-config --cflags libpjproject`). pkg-config's
# `asterisk` package, when it exists, gives the prefix too.

ASTERISK_PREFIX	?= $(or $(shell pkg-config --variable=prefix asterisk 2>/dev/null),/opt/asterisk-22)
ASTERISK_MODDIR	?= $(or $(shell pkg-config --variable=moddir asterisk 2>/dev/null),$(ASTERISK_PREFIX)/lib/asterisk/modules)
PJPROJECT_CFLAGS ?= -isystem $(ASTERISK_PREFIX)/include/pjproject \
		   $(shell cat $(ASTERISK_PREFIX)/include/pjproject/cflags 2>/dev/null)

# Two modules: res_pjsip_isp (every file but the wizard's) and
# res_sorcery_isp_memory (the sorcery wizard for contacts, one file, no
# libisp: it loads before res_pjsip).
AST_WIZ_SRC	:= src/asterisk/res_sorcery_isp_memory.c
AST_SRC		:= $(filter-out $(AST_WIZ_SRC),$(wildcard src/asterisk/*.c))
AST_OBJ		:= $(patsubst %.c,$(BUILD)/obj/%.o,$(AST_SRC))
AST_MODULE	 = $(BUILD)/asterisk/res_pjsip_isp.so
AST_WIZ_MODULE	 = $(BUILD)/asterisk/res_sorcery_isp_memory.so

# Asterisk's headers are not ours to hold to -Werror (-isystem), and they
# are gnu11, not c11. Every symbol stays inside the module (the version
# script), libisp's included: an Asterisk loads many modules into one
# namespace. $(call AST_CFLAGS,NAME): the flags of module NAME.
AST_CFLAGS	 = -std=gnu11 -D_GNU_SOURCE -fPIC -pthread $(WARN) \
		   -Wno-missing-prototypes -Wno-strict-prototypes $(CFLAGS) \
		   -isystem $(ASTERISK_PREFIX)/include $(PJPROJECT_CFLAGS) \
		   -Iinclude -Isrc/asterisk \
		   -DAST_MODULE=\"$(1)\" \
		   -DAST_MODULE_SELF_SYM=__internal_$(1)_self

.PHONY: asterisk asterisk-module install-asterisk-module asterisk-check \
	demo-asterisk bench-asterisk

$(BUILD)/obj/src/asterisk/%.o: src/asterisk/%.c
	@mkdir -p $(dir $@)
	$(CC) $(call AST_CFLAGS,res_pjsip_isp) -MMD -MP -c $< -o $@

$(AST_WIZ_MODULE): $(AST_WIZ_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(call AST_CFLAGS,res_sorcery_isp_memory) -shared $< -o $@

$(AST_MODULE): $(AST_OBJ) $(BUILD)/libisp.a src/asterisk/res_pjsip_isp.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,--version-script=src/asterisk/res_pjsip_isp.map \
	    -Wl,--exclude-libs,ALL \
	    $(AST_OBJ) $(BUILD)/libisp.a $(ALL_LDFLAGS) -lssl -lcrypto -o $@

# Built when Asterisk's headers are there; `make check` builds Asterisk
# first (scripts/asterisk.sh), so there they always are.
ifneq ($(wildcard $(ASTERISK_PREFIX)/include/asterisk.h),)
tests: $(AST_MODULE) $(AST_WIZ_MODULE)
endif

asterisk-module:
	@test -f $(ASTERISK_PREFIX)/include/asterisk.h || { echo "no Asterisk headers in \
$(ASTERISK_PREFIX)/include: run scripts/asterisk.sh, or give ASTERISK_PREFIX=" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(AST_MODULE) $(AST_WIZ_MODULE)

asterisk:
	@scripts/asterisk.sh
	@$(MAKE) --no-print-directory asterisk-module

# Both build Asterisk first when it is not there (once per machine).
demo-asterisk: deps all
	@$(MAKE) --no-print-directory asterisk
	@scripts/demo-asterisk.sh $(BUILD)

bench-asterisk: deps all
	@$(MAKE) --no-print-directory asterisk
	@scripts/bench-asterisk.sh $(BUILD)

install-asterisk-module: asterisk-module
	install -d $(DESTDIR)$(ASTERISK_MODDIR)
	install -m 755 $(AST_MODULE) $(AST_WIZ_MODULE) $(DESTDIR)$(ASTERISK_MODDIR)/

# binding.c holds no Asterisk: its unit test and fuzz target build on
# any machine, with the tree's own flags.
$(BUILD)/tests/test_binding: tests/unit/test_binding.c src/asterisk/binding.c \
    src/asterisk/isp_asterisk.h include/isp.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc/asterisk $(filter %.c,$^) $(ALL_LDFLAGS) \
	    -lcmocka -o $@

build/fuzz/fuzz_binding: tests/fuzz/fuzz_binding.c src/asterisk/binding.c \
    src/asterisk/isp_asterisk.h include/isp.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -Isrc/asterisk $(filter %.c,$^) -o $@
