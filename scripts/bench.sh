#!/bin/bash
# make bench, make bench-quick, make bench-docs: runs ispd-bench (which
# starts and stops every server it needs, on loopback), then draws the
# fan-out plot from its fanout.dat with gnuplot.
#	scripts/bench.sh BUILD [ispd-bench options...]
# BENCH_PLOT=PATH also writes the plot there (make bench-docs:
# docs/bench-fanout.png).
set -u
BUILD=${1:-build}
shift || true
OUT=$BUILD/bench
mkdir -p "$OUT"

"$BUILD/ispd-bench" --build "$BUILD" --out "$OUT" "$@"
rc=$?
[ $rc -eq 0 ] || exit $rc

plot() {	# plot DAT PNG
	gnuplot <<GP
set terminal pngcairo size 1100,460 font ",10"
set output "$2"
set multiplot layout 1,2 title "ispd fan-out, 1 publisher: $(grep -m1 '^cores' "$OUT/results.txt" | sed 's/"//g')"
set logscale x
set xlabel "subscribers"
set xtics (1, 10, 100)
set key top left
set grid
set title "deliveries per second (peak)"
set logscale y
set format y "%.0s%c"
plot "$1" using 1:2 with linespoints lw 2 lc 1 title "ispd", \
     "" using 1:3 with linespoints lw 2 lc 2 title "Redis pub/sub", \
     "" using 1:4 with linespoints lw 2 lc 3 title "NATS core", \
     "" using 1:5 with linespoints lw 1 dt 2 lc 4 title "TCP loopback limit"
set title "p99 latency (us): solid at 50% of each one's peak, dashed at the same load"
set format y "%g"
plot "$1" using 1:6 with linespoints lw 2 lc 1 title "ispd", \
     "" using 1:7 with linespoints lw 2 lc 2 title "Redis pub/sub", \
     "" using 1:8 with linespoints lw 2 lc 3 title "NATS core", \
     "" using 1:9 with linespoints lw 1 dt 2 lc 1 notitle, \
     "" using 1:10 with linespoints lw 1 dt 2 lc 2 notitle, \
     "" using 1:11 with linespoints lw 1 dt 2 lc 3 notitle, \
     1000 with lines dt 3 lc "gray" title "target: 1 ms"
unset multiplot
GP
}

if [ -s "$OUT/fanout.dat" ] && command -v gnuplot >/dev/null 2>&1; then
	if plot "$OUT/fanout.dat" "$OUT/bench-fanout.png" 2>"$OUT/gnuplot.log"; then
		echo "plot: $OUT/bench-fanout.png"
		if [ -n "${BENCH_PLOT:-}" ]; then
			cp "$OUT/bench-fanout.png" "$BENCH_PLOT" && echo "plot: $BENCH_PLOT"
		fi
	else
		echo "bench: gnuplot failed, see $OUT/gnuplot.log" >&2
	fi
fi
exit 0
