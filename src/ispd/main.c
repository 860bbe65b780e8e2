/*
 * main: options, signals, startup and shutdown of ispd.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ispd.h"

#define MAX_LISTEN	16
/* A hold time above this is a typo, not a configuration. */
#define MAX_HOLD_S	86400.0
/* getopt_long() values of the limit options: OPT_LIMIT + their index in
 * limit_defs. */
#define OPT_LIMIT	1000
/* File descriptors ispd uses besides sessions: stdio, epoll, signalfd,
 * listeners. */
#define NOFILE_RESERVED	(8 + MAX_LISTEN)

static const char	*listen_specs[MAX_LISTEN];
static int		 nlisten;
static const char	*port_file;
static int		 signal_fd = -1;
static struct loop_io	 signal_io;
static char		 hostname[256];

/* The limits, with their defaults as they stand before parsing (--help
 * exits as soon as it is seen, so they are the defaults unless a limit
 * came before it). */
static void
usage_limits(FILE *f)
{
	const struct limit_def	*d;
	char			 opt[64];
	size_t			 i;

	fprintf(f, "\nlimits (docs/LIMITS.md; ERROR LIMIT names the option "
	    "hit):\n");
	for (i = 0; i < limit_ndefs; i++) {
		d = &limit_defs[i];
		snprintf(opt, sizeof(opt), "--%s N", d->option);
		fprintf(f, "  %-32s default %" PRIu64 ", %" PRIu64 " to %"
		    PRIu64 "\n        %s\n", opt, *d->value, d->min, d->max,
		    d->help);
	}
}

static void
usage(FILE *f, int full)
{
	fprintf(f,
	    "usage: ispd [--listen HOST:PORT]... [--hold SECONDS] "
	    "[--port-file PATH]\n"
	    "            [--log-level error|warn|info|debug] "
	    "[--server-id NAME]\n"
	    "            [--max-LIMIT N]... [-h|--help] [-V|--version]\n");
	if (!full)
		return;
	fprintf(f,
	    "\n"
	    "  --listen HOST:PORT   address to listen on, repeatable; "
	    "[IPV6]:PORT for IPv6;\n"
	    "                       port 0 picks a free port "
	    "(default " ISPD_DEFAULT_LISTEN ")\n"
	    "  --hold SECONDS       end a session silent this long "
	    "(default 9; decimals ok)\n"
	    "  --port-file PATH     write the bound ports there, one a line\n"
	    "  --log-level LEVEL    error, warn, info or debug "
	    "(default info)\n"
	    "  --server-id NAME     name sent to clients (default: the "
	    "hostname)\n");
	usage_limits(f);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list	 ap;

	fputs("ispd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	usage(stderr, 0);
	exit(2);
}

static const char *
option_name(int c)
{
	switch (c) {
	case 'l':
		return "--listen";
	case 'H':
		return "--hold";
	case 'p':
		return "--port-file";
	case 'L':
		return "--log-level";
	case 's':
		return "--server-id";
	default:
		if (c >= OPT_LIMIT && (size_t)(c - OPT_LIMIT) < limit_ndefs)
			return limit_defs[c - OPT_LIMIT].option;
		return "option";
	}
}

static uint32_t
parse_hold(const char *arg)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno != 0 || end == arg || *end != '\0' || !isfinite(v) ||
	    v <= 0 || v > MAX_HOLD_S || v * 1000 < 1)
		usage_error("invalid --hold '%s': expected seconds, more than "
		    "0 and at most %.0f (decimals such as 0.5 are fine)", arg,
		    MAX_HOLD_S);
	return (uint32_t)(v * 1000 + 0.5);
}

static void
parse_options(int argc, char **argv, int *level)
{
	static const struct option fixed[] = {
		{ "listen",	required_argument,	NULL, 'l' },
		{ "hold",	required_argument,	NULL, 'H' },
		{ "port-file",	required_argument,	NULL, 'p' },
		{ "log-level",	required_argument,	NULL, 'L' },
		{ "server-id",	required_argument,	NULL, 's' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
	};
	struct option	 longopts[sizeof(fixed) / sizeof(fixed[0]) + 32];
	const struct limit_def *d;
	char		 host[256], port[8];
	size_t		 i, n = sizeof(fixed) / sizeof(fixed[0]);
	int		 c;

	if (limit_ndefs + n + 1 > sizeof(longopts) / sizeof(longopts[0]))
		fatalx("parse_options: too many limits");
	memcpy(longopts, fixed, sizeof(fixed));
	for (i = 0; i < limit_ndefs; i++) {
		longopts[n].name = limit_defs[i].option;
		longopts[n].has_arg = required_argument;
		longopts[n].flag = NULL;
		longopts[n].val = OPT_LIMIT + (int)i;
		n++;
	}
	memset(&longopts[n], 0, sizeof(longopts[n]));

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (listen_parse(optarg, host, sizeof(host), port,
			    sizeof(port)) == -1)
				usage_error("invalid --listen '%s': expected "
				    "HOST:PORT or [IPV6]:PORT with a port of "
				    "0 to 65535", optarg);
			if (nlisten == MAX_LISTEN)
				usage_error("too many --listen: at most %d",
				    MAX_LISTEN);
			listen_specs[nlisten++] = optarg;
			break;
		case 'H':
			ispd_conf.hold_ms = parse_hold(optarg);
			break;
		case 'p':
			if (*optarg == '\0')
				usage_error("invalid --port-file: empty path");
			port_file = optarg;
			break;
		case 'L':
			if ((*level = log_level_parse(optarg)) == -1)
				usage_error("invalid --log-level '%s': "
				    "expected error, warn, info or debug",
				    optarg);
			break;
		case 's':
			if (*optarg == '\0' ||
			    strlen(optarg) > PROTO_MAX_STR_BYTES)
				usage_error("invalid --server-id: expected 1 "
				    "to %d bytes", PROTO_MAX_STR_BYTES);
			ispd_conf.server_id = optarg;
			break;
		case 'h':
			usage(stdout, 1);
			exit(0);
		case 'V':
			printf("ispd %s\n", ISPD_VERSION);
			exit(0);
		case ':':
			if (optopt >= OPT_LIMIT)
				usage_error("option --%s needs a value",
				    option_name(optopt));
			usage_error("option %s needs a value",
			    option_name(optopt));
		default:
			if (c >= OPT_LIMIT && (size_t)(c - OPT_LIMIT) <
			    limit_ndefs) {
				d = &limit_defs[c - OPT_LIMIT];
				if (limit_parse(d, optarg) == -1)
					usage_error("invalid --%s '%s': "
					    "expected a whole number from %"
					    PRIu64 " to %" PRIu64 "%s",
					    d->option, optarg, d->min, d->max,
					    strstr(d->option, "-bytes") ?
					    " (K, M or G suffix allowed)" :
					    "");
				break;
			}
			if (optopt != 0 && optopt != '?')
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (nlisten == 0)
		listen_specs[nlisten++] = ISPD_DEFAULT_LISTEN;
}

/*
 * Every session costs a file descriptor, and the usual soft limit (1024)
 * is far below the tens of thousands of sessions ispd is built for: take
 * the hard limit, which needs no privilege. A limit still too low for
 * --max-sessions is reported; accept() then pauses on EMFILE (listen.c).
 */
static void
nofile_raise(void)
{
	struct rlimit	 rl;
	rlim_t		 old;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit RLIMIT_NOFILE");
		return;
	}
	old = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("cannot raise the limit on open files from "
			    "%llu to %llu", (unsigned long long)old,
			    (unsigned long long)rl.rlim_max);
			rl.rlim_cur = old;
		} else
			log_info("raised the limit on open files from %llu "
			    "to the hard limit, %llu", (unsigned long long)old,
			    (unsigned long long)rl.rlim_cur);
	}
	if (rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < ispd_conf.max_sessions + NOFILE_RESERVED)
		log_warnx("the limit on open files, %llu, allows about %llu "
		    "sessions, fewer than --max-sessions %" PRIu64 "; raise "
		    "the hard limit (ulimit -Hn, LimitNOFILE=) for more",
		    (unsigned long long)rl.rlim_cur,
		    rl.rlim_cur > NOFILE_RESERVED ?
		    (unsigned long long)(rl.rlim_cur - NOFILE_RESERVED) : 0ULL,
		    ispd_conf.max_sessions);
}

static void
signal_read(void *arg, uint32_t events)
{
	struct signalfd_siginfo	 si;
	ssize_t			 n;

	n = read(signal_fd, &si, sizeof(si));
	if (n != (ssize_t)sizeof(si)) {
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		fatal("read signalfd");
	}
	log_info("received %s, shutting down", strsignal((int)si.ssi_signo));
	loop_stop();
}

/* SIGTERM and SIGINT arrive through a signalfd, as input like any other,
 * so that no handler runs in the middle of the loop. SIGPIPE is ignored:
 * writes use MSG_NOSIGNAL, and a dead peer must not kill the daemon. */
static void
signal_setup(void)
{
	sigset_t	 set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		fatal("sigprocmask");
	if ((signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	if (loop_add(&signal_io, signal_fd, EPOLLIN, signal_read, NULL) == -1)
		fatal("epoll_ctl signalfd");
}

int
main(int argc, char **argv)
{
	int	 level = LOG_LEVEL_INFO, i;

	if (gethostname(hostname, sizeof(hostname) - 1) == 0 &&
	    hostname[0] != '\0')
		ispd_conf.server_id = hostname;
	parse_options(argc, argv, &level);
	log_init(level);
	nofile_raise();

	loop_init();
	signal_setup();
	table_init();
	for (i = 0; i < nlisten; i++)
		if (listen_open(listen_specs[i]) == -1)
			exit(1);
	if (port_file != NULL && listen_write_ports(port_file) == -1)
		exit(1);
	log_info("ispd %s started, hold %u ms, server id %s", ISPD_VERSION,
	    ispd_conf.hold_ms, ispd_conf.server_id);

	loop_run();

	listen_close_all();
	session_shutdown_all();
	table_free_all();
	subscr_free_all();
	limit_free();
	loop_del(&signal_io);
	close(signal_fd);
	loop_free();
	log_info("exiting");
	return 0;
}
