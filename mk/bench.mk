# ispd-bench: ispd side by side with Redis pub/sub, NATS core and the
# TCP loopback limit (docs/BENCHMARKS.md). Not part of `make` or `make
# check`: it needs the peers' servers and clients, which
# `scripts/deps.sh bench` installs.
#
#	make bench		the full run (about 15 minutes), tables on
#				stdout, results in $(BUILD)/bench/
#	make bench-quick	the same code on small sizes (CI smoke)
#	make bench-docs		the full run, then docs/bench-fanout.png
#	BENCH_ARGS=...		more options for ispd-bench (--help)

BENCH_SRC	:= $(wildcard src/bench/*.c)
BENCH_OBJ	:= $(patsubst %.c,$(BUILD)/obj/%.o,$(BENCH_SRC))
BENCH_LIBS	 = -lhiredis -lnats
BENCH_ARGS	?=

.PHONY: bench bench-quick bench-docs bench-deps

bench-deps:
	@scripts/deps.sh bench

# The objects need the peers' headers: build them after bench-deps.
$(BENCH_OBJ): | bench-deps

$(BUILD)/ispd-bench: $(BENCH_OBJ) $(BUILD)/libisp.a
	$(CC) $^ $(ALL_LDFLAGS) $(BENCH_LIBS) -o $@

bench: bench-deps all $(BUILD)/ispd-bench
	@scripts/bench.sh $(BUILD) $(BENCH_ARGS)

bench-quick: bench-deps all $(BUILD)/ispd-bench
	@scripts/bench.sh $(BUILD) --quick $(BENCH_ARGS)

bench-docs: bench-deps all $(BUILD)/ispd-bench
	@BENCH_PLOT=docs/bench-fanout.png scripts/bench.sh $(BUILD) $(BENCH_ARGS)
