/*
 * ispd-bench: options, machine facts, the scenarios in order, and the
 * summary of the targets.
 *
 *	build/ispd-bench [--quick] [--runs N] [--only fanout,snapshot,...]
 *
 * Every server is started here on a loopback port and stopped at the
 * end, on ^C or on a failure (atexit); children never run the exit
 * handlers.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

struct bench_conf	 conf;

#define MAX_TARGETS	16

static struct {
	char	 what[96];
	char	 measured[96];
	int	 met;
} targets[MAX_TARGETS];
static int	 ntargets;
static pid_t	 main_pid;

void
target(const char *what, const char *measured, int met)
{
	if (ntargets == MAX_TARGETS)
		return;
	snprintf(targets[ntargets].what, sizeof(targets[0].what), "%s", what);
	snprintf(targets[ntargets].measured, sizeof(targets[0].measured), "%s",
	    measured);
	targets[ntargets].met = met;
	ntargets++;
}

static void
defaults(int quick)
{
	conf.quick = quick;
	conf.runs = quick ? 1 : 3;
	conf.nnsubs = 3;
	conf.nsubs[0] = 1;
	conf.nsubs[1] = 10;
	conf.nsubs[2] = 100;
	conf.updates = 100000;
	conf.keys = 10000;
	conf.window = 10000;
	conf.lat_fraction = 0.5;
	conf.lat_seconds = 3;
	conf.snap_records = 1000000;
	conf.wd_records = 1000000;
	conf.wd_subs = 10;
	conf.refresh_regs = 200000;
	conf.refresh_subs = 50;
	conf.refresh_period = 60;
	conf.refresh_window = 10;
	conf.sessions = 10000;
	conf.sessions_window = 10;
	conf.run_timeout = 300;
	if (quick) {
		conf.nnsubs = 2;
		conf.nsubs[1] = 4;
		conf.updates = 5000;
		conf.keys = 1000;
		conf.window = 1000;
		conf.lat_seconds = 0.3;
		conf.snap_records = 20000;
		conf.wd_records = 20000;
		conf.wd_subs = 2;
		conf.refresh_regs = 6000;
		conf.refresh_subs = 4;
		conf.refresh_window = 1;
		conf.sessions = 200;
		conf.sessions_window = 1;
		conf.run_timeout = 30;
	}
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: ispd-bench [options]\n"
	    "  --quick               small sizes, one run (CI smoke)\n"
	    "  --runs N              runs per figure (default 3)\n"
	    "  --only LIST           fanout,snapshot,withdraw,refresh,sessions\n"
	    "  --subs LIST           fan-out subscriber counts (1,10,100)\n"
	    "  --updates N           fan-out updates (100000)\n"
	    "  --keys N              fan-out distinct keys (10000)\n"
	    "  --window N            updates in flight at most (10000)\n"
	    "  --lat-fraction F      latency at F of the peak rate (0.5)\n"
	    "  --lat-seconds S       a latency run lasts at most S (3)\n"
	    "  --snapshot-records N  (1000000)\n"
	    "  --withdraw-records N  (1000000)\n"
	    "  --withdraw-subs N     (10)\n"
	    "  --refresh-regs N      registrations of the refresh load "
	    "(200000)\n"
	    "  --refresh-subs N      (50)\n"
	    "  --refresh-period S    each refreshed every S seconds (60)\n"
	    "  --refresh-window S    seconds measured (10)\n"
	    "  --sessions N          idle sessions (10000)\n"
	    "  --sessions-window S   seconds measured (10)\n"
	    "  --timeout S           give up a run after S seconds (300)\n"
	    "  --max-queue-bytes N   passed to ispd when it knows the option "
	    "(1 GiB;\n"
	    "                        0: ispd's default)\n"
	    "  --no-redis, --no-nats leave a peer out\n"
	    "  --wait-quiet S        wait up to S seconds for other processes "
	    "to use\n"
	    "                        under 5%% of the machine before starting\n"
	    "  --nice N              run the bench and the servers at this "
	    "priority\n"
	    "                        when allowed (-10), so that background "
	    "jobs\n"
	    "                        disturb every system less\n"
	    "  --build DIR           where ispd is (build)\n"
	    "  --out DIR             results.txt and fanout.dat "
	    "(DIR/bench of --build)\n");
}

static long
num(const char *opt, const char *arg, double min)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno != 0 || end == arg || *end != '\0' || v < min) {
		fprintf(stderr, "ispd-bench: invalid %s '%s'\n", opt, arg);
		exit(2);
	}
	return (long)v;
}

static double
fnum(const char *opt, const char *arg)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno != 0 || end == arg || *end != '\0' || v <= 0) {
		fprintf(stderr, "ispd-bench: invalid %s '%s'\n", opt, arg);
		exit(2);
	}
	return v;
}

static void
parse_subs(const char *arg)
{
	char	 copy[256], *p, *save = NULL;

	snprintf(copy, sizeof(copy), "%s", arg);
	conf.nnsubs = 0;
	for (p = strtok_r(copy, ",", &save); p != NULL && conf.nnsubs < 8;
	    p = strtok_r(NULL, ",", &save)) {
		conf.nsubs[conf.nnsubs] = (int)num("--subs", p, 1);
		if (conf.nsubs[conf.nnsubs] > BENCH_MAX_SUBS) {
			fprintf(stderr, "ispd-bench: at most %d subscribers\n",
			    BENCH_MAX_SUBS);
			exit(2);
		}
		conf.nnsubs++;
	}
}

static void
parse_options(int argc, char **argv)
{
	enum { O_RUNS = 256, O_ONLY, O_SUBS, O_UPDATES, O_KEYS, O_WINDOW,
	    O_LATF, O_LATS, O_SNAP, O_WDR, O_WDS, O_RREGS, O_RSUBS, O_RPER,
	    O_RWIN, O_SESS, O_SWIN, O_TIMEOUT, O_MQ, O_NOREDIS, O_NONATS,
	    O_BUILD, O_OUT, O_QUICK, O_QUIET, O_NICE };
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, O_QUICK },
		{ "runs", required_argument, NULL, O_RUNS },
		{ "only", required_argument, NULL, O_ONLY },
		{ "subs", required_argument, NULL, O_SUBS },
		{ "updates", required_argument, NULL, O_UPDATES },
		{ "keys", required_argument, NULL, O_KEYS },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "lat-fraction", required_argument, NULL, O_LATF },
		{ "lat-seconds", required_argument, NULL, O_LATS },
		{ "snapshot-records", required_argument, NULL, O_SNAP },
		{ "withdraw-records", required_argument, NULL, O_WDR },
		{ "withdraw-subs", required_argument, NULL, O_WDS },
		{ "refresh-regs", required_argument, NULL, O_RREGS },
		{ "refresh-subs", required_argument, NULL, O_RSUBS },
		{ "refresh-period", required_argument, NULL, O_RPER },
		{ "refresh-window", required_argument, NULL, O_RWIN },
		{ "sessions", required_argument, NULL, O_SESS },
		{ "sessions-window", required_argument, NULL, O_SWIN },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "max-queue-bytes", required_argument, NULL, O_MQ },
		{ "no-redis", no_argument, NULL, O_NOREDIS },
		{ "no-nats", no_argument, NULL, O_NONATS },
		{ "wait-quiet", required_argument, NULL, O_QUIET },
		{ "nice", required_argument, NULL, O_NICE },
		{ "build", required_argument, NULL, O_BUILD },
		{ "out", required_argument, NULL, O_OUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int	 c, i;

	/* --quick sets the defaults every other option then overrides. */
	defaults(0);
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--quick") == 0)
			defaults(1);
	conf.build = "build";
	conf.with_redis = conf.with_nats = 1;
	conf.max_queue_bytes = 1L << 30;
	conf.nice = -10;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_QUICK:
			break;
		case O_RUNS:
			conf.runs = (int)num("--runs", optarg, 1);
			if (conf.runs > 64)
				conf.runs = 64;
			break;
		case O_ONLY:
			conf.only = optarg;
			break;
		case O_SUBS:
			parse_subs(optarg);
			break;
		case O_UPDATES:
			conf.updates = num("--updates", optarg, 1);
			break;
		case O_KEYS:
			conf.keys = num("--keys", optarg, 1);
			break;
		case O_WINDOW:
			conf.window = num("--window", optarg, 1);
			break;
		case O_LATF:
			conf.lat_fraction = fnum("--lat-fraction", optarg);
			break;
		case O_LATS:
			conf.lat_seconds = fnum("--lat-seconds", optarg);
			break;
		case O_SNAP:
			conf.snap_records = num("--snapshot-records", optarg,
			    1);
			break;
		case O_WDR:
			conf.wd_records = num("--withdraw-records", optarg, 1);
			break;
		case O_WDS:
			conf.wd_subs = (int)num("--withdraw-subs", optarg, 1);
			break;
		case O_RREGS:
			conf.refresh_regs = num("--refresh-regs", optarg, 100);
			break;
		case O_RSUBS:
			conf.refresh_subs = (int)num("--refresh-subs", optarg,
			    1);
			break;
		case O_RPER:
			conf.refresh_period = fnum("--refresh-period", optarg);
			break;
		case O_RWIN:
			conf.refresh_window = fnum("--refresh-window", optarg);
			break;
		case O_SESS:
			conf.sessions = num("--sessions", optarg, 1);
			break;
		case O_SWIN:
			conf.sessions_window = fnum("--sessions-window",
			    optarg);
			break;
		case O_TIMEOUT:
			conf.run_timeout = fnum("--timeout", optarg);
			break;
		case O_MQ:
			conf.max_queue_bytes = num("--max-queue-bytes", optarg,
			    0);
			break;
		case O_NOREDIS:
			conf.with_redis = 0;
			break;
		case O_NONATS:
			conf.with_nats = 0;
			break;
		case O_NICE:
			conf.nice = atoi(optarg);
			break;
		case O_QUIET:
			conf.wait_quiet = fnum("--wait-quiet", optarg);
			break;
		case O_BUILD:
			conf.build = optarg;
			break;
		case O_OUT:
			conf.outdir = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ispd-bench: unexpected argument '%s'\n",
		    argv[optind]);
		exit(2);
	}
	if (conf.refresh_subs > BENCH_MAX_SUBS)
		conf.refresh_subs = BENCH_MAX_SUBS;
	if (conf.window > conf.updates)
		conf.window = conf.updates;
}

static int
wanted(const char *name)
{
	char	 copy[256], *p, *save = NULL;

	if (conf.only == NULL)
		return 1;
	snprintf(copy, sizeof(copy), "%s", conf.only);
	for (p = strtok_r(copy, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save))
		if (strcmp(p, name) == 0)
			return 1;
	return 0;
}

/* Ten thousand sessions need as many descriptors in the process that
 * holds them and in the server, which inherits the limit. */
static void
raise_fd_limit(void)
{
	struct rlimit	 rl;
	rlim_t		 want = (rlim_t)conf.sessions + 4096;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want) {
		rl.rlim_max = want;
		if (setrlimit(RLIMIT_NOFILE, &(struct rlimit){ want, want }) ==
		    0)
			return;
		getrlimit(RLIMIT_NOFILE, &rl);
		want = rl.rlim_max;
	}
	rl.rlim_cur = want;
	setrlimit(RLIMIT_NOFILE, &rl);
	if ((rlim_t)conf.sessions + 100 > want) {
		conf.sessions = (long)(want - 100);
		say("only %ld sessions: the descriptor limit is %lu",
		    conf.sessions, (unsigned long)want);
	}
}

static void
on_signal(int sig)
{
	/* Children exit at once; the coordinator stops the servers. */
	if (getpid() != main_pid)
		_exit(128 + sig);
	exit(128 + sig);
}

static void
print_targets(void)
{
	struct tab	 t;
	int		 i, missed = 0;

	tab_init(&t, "targets (measured by this run, not asserted)", 3,
	    "target", "measured", "");
	for (i = 0; i < ntargets; i++) {
		tab_row(&t, targets[i].what, targets[i].measured,
		    targets[i].met < 0 ? "" : targets[i].met ?
		    "met" : "MISSED");
		missed += targets[i].met == 0;
	}
	if (conf.quick)
		tab_note(&t, "--quick: small sizes; the targets are about the "
		    "full sizes, so these verdicts mean little.");
	else if (missed > 0)
		tab_note(&t, "%d missed: docs/BENCHMARKS.md says what limits "
		    "each, from the profile.", missed);
	tab_print(&t);
	tab_free(&t);
}

int
main(int argc, char **argv)
{
	char		 facts[1024], vers[1024], when[64], dir[512];
	struct sigaction sa;
	time_t		 now = time(NULL);
	double		 t0 = now_s(), busy, niced;

	parse_options(argc, argv);
	main_pid = getpid();
	if (conf.outdir == NULL) {
		snprintf(dir, sizeof(dir), "%s/bench", conf.build);
		conf.outdir = dir;
	}
	mkdir(conf.outdir, 0755);
	raise_fd_limit();
	atexit(server_stop_all);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	out_open();
	if (conf.nice != 0 && setpriority(PRIO_PROCESS, 0, conf.nice) == -1)
		conf.nice = getpriority(PRIO_PROCESS, 0);
	busy = machine_busy(1, &niced);
	while (busy > 0.05 && now_s() - t0 < conf.wait_quiet) {
		say("other processes use %.0f%% of the machine; waiting for "
		    "quiet (--wait-quiet)", busy * 100);
		busy = machine_busy(5, &niced);
	}
	machine_facts(facts, sizeof(facts));
	server_versions(vers, sizeof(vers));
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
	out_printf("ispd-bench %s, %s\n%s\n%s\n", conf.quick ? "--quick" :
	    "full run", when, facts, vers);
	out_printf("every server and client on this machine, over TCP "
	    "loopback; %d run%s per figure\n", conf.runs, conf.runs > 1 ?
	    "s" : "");
	out_printf("other processes used %.0f%% of all cores just before the "
	    "start, and niced ones %.0f%% (the bench runs at nice %d)%s\n",
	    busy * 100, niced * 100, conf.nice, busy > 0.05 ?
	    ": WARNING, the figures are disturbed by them" : "");
	if (conf.max_queue_bytes > 0 && ispd_has_option("--max-queue-bytes"))
		out_printf("ispd runs with --max-queue-bytes %ld\n",
		    conf.max_queue_bytes);

	if (wanted("fanout"))
		scen_fanout();
	if (wanted("snapshot") || wanted("memory"))
		scen_snapshot_memory();
	if (wanted("withdraw"))
		scen_withdraw();
	if (wanted("refresh"))
		scen_refresh();
	if (wanted("sessions"))
		scen_sessions();
	print_targets();
	out_printf("\nispd-bench: done in %.0f s; results in %s/results.txt\n",
	    now_s() - t0, conf.outdir);
	out_close();
	return 0;
}
