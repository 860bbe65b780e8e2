# ispd: plain GNU make, no generator. `make` builds into build/;
# `make SAN=1 BUILD=build/asan` builds the same tree with ASan+UBSan.

BUILD	?= build
PREFIX	?= /usr/local
DESTDIR	?=
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
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -pthread $(WARN) $(CFLAGS) \
	   -Iinclude -Isrc/common
ALL_LDFLAGS = -pthread $(LDFLAGS)

COMMON_SRC	:= $(wildcard src/common/*.c)
ISPD_SRC	:= $(wildcard src/ispd/*.c)
LIB_SRC		:= $(wildcard src/lib/*.c)
ISPCTL_SRC	:= $(wildcard src/ispctl/*.c)
TESTLIB_SRC	:= $(wildcard tests/lib/*.c)
UNIT_SRC	:= $(wildcard tests/unit/test_*.c)
INTEG_SRC	:= $(wildcard tests/integ/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJ	:= $(call obj,$(COMMON_SRC))
ISPD_OBJ	:= $(call obj,$(ISPD_SRC))
ISPD_CORE_OBJ	:= $(filter-out %/main.o,$(ISPD_OBJ))
LIB_OBJ		:= $(call obj,$(LIB_SRC))
ISPCTL_OBJ	:= $(call obj,$(ISPCTL_SRC))
TESTLIB_OBJ	:= $(call obj,$(TESTLIB_SRC))

UNIT_BIN	:= $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEG_BIN	:= $(patsubst tests/integ/%.c,$(BUILD)/tests/%,$(INTEG_SRC))

PROGS	 = $(BUILD)/ispd $(BUILD)/ispctl $(BUILD)/libisp.a $(BUILD)/libisp.so

.PHONY: all deps check check-plain check-asan demo install clean tests

all: $(PROGS)

tests: $(PROGS) $(UNIT_BIN) $(INTEG_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/ispd: $(ISPD_OBJ) $(COMMON_OBJ)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

$(BUILD)/libisp.a: $(LIB_OBJ) $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libisp.so: $(LIB_OBJ) $(COMMON_OBJ)
	$(CC) -shared -Wl,-soname,libisp.so.1 $^ $(ALL_LDFLAGS) -o $@

$(BUILD)/ispctl: $(ISPCTL_OBJ) $(BUILD)/libisp.a
	$(CC) $^ $(ALL_LDFLAGS) -o $@

# Unit tests link the daemon's own objects (all but main.o) and the
# library; integration tests link the library and the test helpers.
$(BUILD)/tests/%: tests/unit/%.c $(ISPD_CORE_OBJ) $(BUILD)/libisp.a $(TESTLIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc/ispd -Isrc/lib -Itests/lib $^ $(ALL_LDFLAGS) -lcmocka -o $@

$(BUILD)/tests/%: tests/integ/%.c $(BUILD)/libisp.a $(TESTLIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/lib $^ $(ALL_LDFLAGS) -lcmocka -o $@

deps:
	@scripts/deps.sh

# The suite twice: a plain build, then ASan+UBSan. The runner prints
# "N passed, N failed" for each and the sum last.
check: deps
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory SAN=1 BUILD=build/asan tests
	@tests/run.sh build build/asan

check-plain: deps
	@$(MAKE) --no-print-directory tests
	@tests/run.sh build

demo: deps all
	@scripts/demo.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	    $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/ispd $(BUILD)/ispctl $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libisp.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libisp.so $(DESTDIR)$(PREFIX)/lib/libisp.so.1
	ln -sf libisp.so.1 $(DESTDIR)$(PREFIX)/lib/libisp.so
	install -m 644 include/isp.h $(DESTDIR)$(PREFIX)/include/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
