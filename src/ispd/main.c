/*
 * main: options, the configuration and its reload (SIGHUP), signals,
 * startup, dropping privileges, and shutdown of ispd.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "ispd.h"

/* getopt_long() values of the limit options: OPT_LIMIT + their index in
 * limit_defs. */
#define OPT_LIMIT	1000
/* File descriptors ispd uses besides sessions: stdio, epoll, signalfd,
 * listeners, and the metrics endpoint (its listener, its epoll and at
 * most 16 connections, prom.c). */
#define NOFILE_RESERVED	(8 + CONF_MAX_LISTEN + 18)

enum {
	OPT_CONFIG = 256,
	OPT_CHECK_CONFIG,
	OPT_LISTEN_TLS,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CA,
	OPT_TLS_REQUIRE,
	OPT_CREDENTIALS,
	OPT_AUTH,
	OPT_USER,
	OPT_DRAIN_SECONDS,
	OPT_GRACEFUL_TABLE,
	OPT_GRACEFUL_SECONDS,
	OPT_METRICS,
};

/* The command line's settings, laid over the file's (conf.c). */
static struct conf	 cli;
/* The settings ispd started with. A reload applies the rules,
 * credentials, TLS files and limits it reads, and compares what takes a
 * restart with these. */
static struct conf	 running;
static const char	*config_file;
static int		 check_only;
static const char	*port_file;
static uint64_t		 limit_defaults[CONF_MAX_LIMITS];
static int		 signal_fd = -1;
static struct loop_io	 signal_io;
static char		 hostname[256];
static char		 server_id[PROTO_MAX_STR_BYTES + 1];
/* Drain (SIGUSR1): the notice given before the sessions are closed, and
 * the timer that ends the loop then. */
#define DRAIN_SECONDS_DEFAULT	5
#define DRAIN_SECONDS_MAX	3600
static unsigned		 drain_seconds = DRAIN_SECONDS_DEFAULT;
static int		 drain_fd = -1;
static struct loop_io	 drain_io;

/* The limits, with their defaults as they stand before parsing. */
static void
usage_limits(FILE *f)
{
	const struct limit_def	*d;
	char			 opt[64];
	size_t			 i;

	fprintf(f, "\nlimits (docs/LIMITS.md; ERROR LIMIT names the option "
	    "hit; in the configuration\nfile: limit NAME N):\n");
	for (i = 0; i < limit_ndefs; i++) {
		d = &limit_defs[i];
		snprintf(opt, sizeof(opt), "--%s N", d->option);
		fprintf(f, "  %-32s default %" PRIu64 ", %" PRIu64 " to %"
		    PRIu64 "\n        %s\n", opt, limit_defaults[i], d->min,
		    d->max, d->help);
	}
}

static void
usage(FILE *f, int full)
{
	fprintf(f,
	    "usage: ispd [--config FILE] [--listen HOST:PORT]... "
	    "[--listen-tls HOST:PORT]...\n"
	    "            [--tls-cert FILE --tls-key FILE] [--tls-ca FILE] "
	    "[--tls-require-client-cert]\n"
	    "            [--credentials FILE] [--auth required|optional] "
	    "[--user NAME]\n"
	    "            [--hold SECONDS] [--port-file PATH] "
	    "[--log-level LEVEL] [--server-id NAME]\n"
	    "            [--drain-seconds N] [--graceful-table PATTERN]... "
	    "[--graceful-seconds N]\n"
	    "            [--metrics HOST:PORT] [--max-LIMIT N]... [-h|--help] "
	    "[-V|--version]\n"
	    "       ispd --check-config FILE\n");
	if (!full)
		return;
	fprintf(f,
	    "\n"
	    "  --config FILE        read settings, TLS, credentials and rules "
	    "from FILE\n"
	    "                       (docs/CONFIG.md); options given here win; "
	    "SIGHUP reloads it\n"
	    "  --check-config FILE  check FILE and the files it names, report "
	    "every error\n"
	    "                       with its line, exit 0 when there is none\n"
	    "  --listen HOST:PORT   plain TCP listener, repeatable; "
	    "[IPV6]:PORT for IPv6;\n"
	    "                       port 0 picks a free port "
	    "(default " ISPD_DEFAULT_LISTEN ")\n"
	    "  --listen-tls HOST:PORT  TLS listener, repeatable (needs "
	    "--tls-cert, --tls-key)\n"
	    "  --tls-cert FILE      certificate chain (PEM) of the TLS "
	    "listeners\n"
	    "  --tls-key FILE       its private key (PEM, not readable by "
	    "every user)\n"
	    "  --tls-ca FILE        CA certificates that sign client "
	    "certificates\n"
	    "  --tls-require-client-cert  refuse TLS clients without a "
	    "valid certificate\n"
	    "  --credentials FILE   shared secrets, one 'NAME SECRET' a line "
	    "(mode 600)\n"
	    "  --auth MODE          required (default with credentials or "
	    "client certificates)\n"
	    "                       or optional (unauthenticated clients are "
	    "'anonymous')\n"
	    "  --user NAME          run as this user once the listeners are "
	    "bound\n"
	    "  --hold SECONDS       end a session silent this long "
	    "(default 9; decimals ok)\n"
	    "  --port-file PATH     write the bound ports there, one a line\n"
	    "  --log-level LEVEL    error, warn, info or debug "
	    "(default info)\n"
	    "  --server-id NAME     name sent to clients (default: the "
	    "hostname)\n"
	    "  --drain-seconds N    on SIGUSR1, tell clients ispd goes down, "
	    "close the\n"
	    "                       sessions N seconds later and exit "
	    "(default 5, 0 to 3600)\n"
	    "  --graceful-table PATTERN  a table (or a prefix, with '*') "
	    "whose records a lost\n"
	    "                       session leaves held for its client's "
	    "next session to take\n"
	    "                       back (docs/HA.md); repeatable; "
	    "default: none\n"
	    "  --graceful-seconds N how long they are held (default %d, 1 "
	    "to %d)\n"
	    "  --metrics HOST:PORT  serve Prometheus metrics at /metrics and "
	    "health at /healthz\n"
	    "                       over HTTP there (docs/OPERATIONS.md); "
	    "default: off\n", ISPD_DEFAULT_GRACEFUL_S, CONF_MAX_GRACEFUL_S);
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
	case OPT_CONFIG:
		return "--config";
	case OPT_CHECK_CONFIG:
		return "--check-config";
	case OPT_LISTEN_TLS:
		return "--listen-tls";
	case OPT_TLS_CERT:
		return "--tls-cert";
	case OPT_TLS_KEY:
		return "--tls-key";
	case OPT_TLS_CA:
		return "--tls-ca";
	case OPT_CREDENTIALS:
		return "--credentials";
	case OPT_AUTH:
		return "--auth";
	case OPT_USER:
		return "--user";
	case OPT_DRAIN_SECONDS:
		return "--drain-seconds";
	case OPT_GRACEFUL_TABLE:
		return "--graceful-table";
	case OPT_GRACEFUL_SECONDS:
		return "--graceful-seconds";
	case OPT_METRICS:
		return "--metrics";
	default:
		if (c >= OPT_LIMIT && (size_t)(c - OPT_LIMIT) < limit_ndefs)
			return limit_defs[c - OPT_LIMIT].option;
		return "option";
	}
}

/* An option that is also a directive of the file: checked by conf.c. */
static void
cli_set(const char *key, const char *arg)
{
	if (conf_set(&cli, key, arg, 0) == -1) {
		usage(stderr, 0);
		exit(2);
	}
}

static void
parse_options(int argc, char **argv)
{
	static const struct option fixed[] = {
		{ "listen",	required_argument,	NULL, 'l' },
		{ "hold",	required_argument,	NULL, 'H' },
		{ "port-file",	required_argument,	NULL, 'p' },
		{ "log-level",	required_argument,	NULL, 'L' },
		{ "server-id",	required_argument,	NULL, 's' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
		{ "config",	required_argument,	NULL, OPT_CONFIG },
		{ "check-config", required_argument,	NULL, OPT_CHECK_CONFIG },
		{ "listen-tls",	required_argument,	NULL, OPT_LISTEN_TLS },
		{ "tls-cert",	required_argument,	NULL, OPT_TLS_CERT },
		{ "tls-key",	required_argument,	NULL, OPT_TLS_KEY },
		{ "tls-ca",	required_argument,	NULL, OPT_TLS_CA },
		{ "tls-require-client-cert", no_argument, NULL,
		    OPT_TLS_REQUIRE },
		{ "credentials", required_argument,	NULL, OPT_CREDENTIALS },
		{ "auth",	required_argument,	NULL, OPT_AUTH },
		{ "user",	required_argument,	NULL, OPT_USER },
		{ "drain-seconds", required_argument,	NULL,
		    OPT_DRAIN_SECONDS },
		{ "graceful-table", required_argument,	NULL,
		    OPT_GRACEFUL_TABLE },
		{ "graceful-seconds", required_argument, NULL,
		    OPT_GRACEFUL_SECONDS },
		{ "metrics",	required_argument,	NULL, OPT_METRICS },
	};
	struct option	 longopts[sizeof(fixed) / sizeof(fixed[0]) + 32];
	const struct limit_def *d;
	char		 host[256], port[8];
	size_t		 i, n = sizeof(fixed) / sizeof(fixed[0]);
	uint64_t	 v;
	char		*end;
	unsigned long	 ul;
	int		 c;

	if (limit_ndefs + n + 1 > sizeof(longopts) / sizeof(longopts[0]) ||
	    limit_ndefs > CONF_MAX_LIMITS)
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
		case OPT_LISTEN_TLS:
			if (addr_split(optarg, "0.0.0.0", host, sizeof(host),
			    port, sizeof(port)) == -1)
				usage_error("invalid %s '%s': expected "
				    "HOST:PORT or [IPV6]:PORT with a port of "
				    "0 to 65535", option_name(c), optarg);
			if (conf_add_listen(&cli, optarg, c == OPT_LISTEN_TLS,
			    0) == -1) {
				usage(stderr, 0);
				exit(2);
			}
			break;
		case 'H':
			cli_set("hold", optarg);
			break;
		case 'p':
			if (*optarg == '\0')
				usage_error("invalid --port-file: empty path");
			port_file = optarg;
			break;
		case 'L':
			if (log_level_parse(optarg) == -1)
				usage_error("invalid --log-level '%s': "
				    "expected error, warn, info or debug",
				    optarg);
			cli_set("log-level", optarg);
			break;
		case 's':
			if (*optarg == '\0' ||
			    strlen(optarg) > PROTO_MAX_STR_BYTES)
				usage_error("invalid --server-id: expected 1 "
				    "to %d bytes", PROTO_MAX_STR_BYTES);
			cli_set("server-id", optarg);
			break;
		case OPT_CONFIG:
		case OPT_CHECK_CONFIG:
			if (*optarg == '\0')
				usage_error("invalid %s: empty path",
				    option_name(c));
			config_file = optarg;
			check_only |= c == OPT_CHECK_CONFIG;
			break;
		case OPT_TLS_CERT:
			cli_set("tls-cert", optarg);
			break;
		case OPT_TLS_KEY:
			cli_set("tls-key", optarg);
			break;
		case OPT_TLS_CA:
			cli_set("tls-ca", optarg);
			break;
		case OPT_TLS_REQUIRE:
			cli_set("tls-require-client-cert", "yes");
			break;
		case OPT_CREDENTIALS:
			cli_set("credentials", optarg);
			break;
		case OPT_AUTH:
			cli_set("auth", optarg);
			break;
		case OPT_USER:
			cli_set("user", optarg);
			break;
		case OPT_DRAIN_SECONDS:
			errno = 0;
			ul = strtoul(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end != '\0' ||
			    errno != 0 || ul > DRAIN_SECONDS_MAX)
				usage_error("invalid --drain-seconds '%s': "
				    "expected a whole number from 0 to %d",
				    optarg, DRAIN_SECONDS_MAX);
			drain_seconds = (unsigned)ul;
			break;
		case OPT_GRACEFUL_TABLE:
			if (conf_add_graceful(&cli, optarg, 0) == -1) {
				usage(stderr, 0);
				exit(2);
			}
			break;
		case OPT_GRACEFUL_SECONDS:
			cli_set("graceful-seconds", optarg);
			break;
		case OPT_METRICS:
			cli_set("metrics", optarg);
			break;
		case 'h':
			usage(stdout, 1);
			exit(0);
		case 'V':
			printf("ispd %s\n", ISP_RELEASE);
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
				if (limit_parse_value(d, optarg, &v) == -1)
					usage_error("invalid --%s '%s': "
					    "expected a whole number from %"
					    PRIu64 " to %" PRIu64 "%s",
					    d->option, optarg, d->min, d->max,
					    strstr(d->option, "-bytes") ?
					    " (K, M or G suffix allowed)" :
					    "");
				cli.limit[c - OPT_LIMIT].set = 1;
				cli.limit[c - OPT_LIMIT].num = v;
				break;
			}
			if (optopt != 0 && optopt != '?')
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
}

/*
 * The configuration file (if any) with the command line over it, checked
 * and with its files loaded, into *c and *ld. Returns the number of
 * errors, each reported: on stderr, or to the log for a reload.
 */
static int
config_read(struct conf *c, struct conf_loaded *ld, int to_log)
{
	conf_init(c);
	c->to_log = to_log;
	if (config_file != NULL)
		conf_parse_file(c, config_file);
	conf_merge(c, &cli);
	if (c->nlisten == 0 && conf_add_listen(c, ISPD_DEFAULT_LISTEN, 0, 0)
	    == -1)
		fatalx("config_read: default listener");
	return conf_load(c, ld);
}

static void
limits_apply(const struct conf *c)
{
	size_t	 i;

	for (i = 0; i < limit_ndefs; i++)
		*limit_defs[i].value = c->limit[i].set ? c->limit[i].num :
		    limit_defaults[i];
}

/* Puts what conf_load() made to use: TLS, credentials, rules. Takes
 * them. */
static void
config_apply(struct conf_loaded *ld)
{
	if (ld->tls != NULL)
		tls_ctx_set(ld->tls);
	auth_set_mode(ld->auth_required);
	auth_set_creds(ld->creds);
	acl_set(ld->acl);
	acl_admin_open(config_file == NULL);
	memset(ld, 0, sizeof(*ld));
}

static int
item_same(const struct conf_item *a, const struct conf_item *b)
{
	if (a->set != b->set)
		return 0;
	if (!a->set)
		return 1;
	if ((a->str == NULL) != (b->str == NULL))
		return 0;
	return a->num == b->num && (a->str == NULL ||
	    strcmp(a->str, b->str) == 0);
}

/* SIGHUP: read the configuration again and apply the rules, the
 * credentials, TLS and the limits; with any error, change nothing. */
static void
config_reload(void)
{
	static const struct {
		enum conf_key	 key;
		const char	*name;
	} restart[] = {
		{ CONF_HOLD, "hold" },
		{ CONF_SERVER_ID, "server-id" },
		{ CONF_LOG_LEVEL, "log-level" },
		{ CONF_USER, "user" },
		{ CONF_GRACEFUL_SECONDS, "graceful-seconds" },
		{ CONF_METRICS, "metrics" },
	};
	struct conf		 c;
	struct conf_loaded	 ld;
	size_t			 i, nrules, ncreds;
	int			 same;

	log_info("received SIGHUP, reloading the configuration%s%s",
	    config_file != NULL ? " from " : "", config_file != NULL ?
	    config_file : "");
	notify_reloading();
	if (config_read(&c, &ld, 1) != 0) {
		log_warnx("reload failed with %d errors; the running "
		    "configuration is kept", c.nerrors);
		ispd_stats.reloads_failed++;
		ispd_stats.last_reload_failed = 1;
		conf_loaded_free(&ld);
		conf_free(&c);
		notify_ready("serving; the last reload failed, the running "
		    "configuration is kept");
		return;
	}
	same = c.nlisten == running.nlisten;
	for (i = 0; same && i < (size_t)c.nlisten; i++)
		same = c.listen[i].tls == running.listen[i].tls &&
		    strcmp(c.listen[i].spec, running.listen[i].spec) == 0;
	if (!same)
		log_warnx("reload: the listeners changed; that takes a "
		    "restart");
	same = c.ngraceful == running.ngraceful;
	for (i = 0; same && i < (size_t)c.ngraceful; i++)
		same = strcmp(c.graceful[i], running.graceful[i]) == 0;
	if (!same)
		log_warnx("reload: graceful-table changed; that takes a "
		    "restart");
	for (i = 0; i < sizeof(restart) / sizeof(restart[0]); i++)
		if (!item_same(&c.item[restart[i].key],
		    &running.item[restart[i].key]))
			log_warnx("reload: %s changed; that takes a restart",
			    restart[i].name);
	nrules = acl_nrules(ld.acl);
	ncreds = ld.creds != NULL ? ld.creds->n : 0;
	limits_apply(&c);
	config_apply(&ld);
	/* running stays what ispd started with: what takes a restart is
	 * compared with that at the next reload too. */
	conf_free(&c);
	ispd_stats.reloads_ok++;
	ispd_stats.last_reload_failed = 0;
	log_info("reload done: %zu rules, %zu credentials", nrules, ncreds);
	notify_ready("serving; configuration reloaded");
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
drain_done(void *arg, uint32_t events)
{
	uint64_t	 n;

	if (read(drain_fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	log_info("drain time over, closing the sessions");
	loop_stop();
}

/*
 * SIGUSR1: every client is told (GOING_DOWN) that the sessions close in
 * drain_seconds, so that it relies on its other reflectors before; then
 * the loop stops and the usual shutdown sends BYE SHUTDOWN. Clients that
 * connect meanwhile are told too. A second SIGUSR1 changes nothing.
 */
static void
drain_start(void)
{
	struct itimerspec	 its;

	if (drain_fd != -1)
		return;
	log_info("received SIGUSR1, draining: closing the sessions in %u s",
	    drain_seconds);
	ispd_stats.draining = 1;	/* /healthz answers 503 from now on */
	notify_status("draining: the sessions close soon");
	session_going_down(loop_now_ms() + (uint64_t)drain_seconds * 1000,
	    "ispd going down for maintenance");
	if (drain_seconds == 0) {
		loop_stop();
		return;
	}
	if ((drain_fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) == -1)
		fatal("timerfd_create");
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)drain_seconds;
	if (timerfd_settime(drain_fd, 0, &its, NULL) == -1)
		fatal("timerfd_settime");
	if (loop_add(&drain_io, drain_fd, EPOLLIN, drain_done, NULL) == -1)
		fatal("epoll_ctl timerfd");
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
	if (si.ssi_signo == SIGHUP) {
		config_reload();
		return;
	}
	if (si.ssi_signo == SIGUSR1) {
		drain_start();
		return;
	}
	log_info("received %s, shutting down", strsignal((int)si.ssi_signo));
	loop_stop();
}

/* SIGTERM and SIGINT (stop), SIGHUP (reload) and SIGUSR1 (drain) arrive through a
 * signalfd, as input like any other, so that no handler runs in the
 * middle of the loop: a reload happens between two events, never inside
 * a fan-out. SIGPIPE is ignored: writes use MSG_NOSIGNAL, and a dead
 * peer must not kill the daemon. */
static void
signal_setup(void)
{
	sigset_t	 set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		fatal("sigprocmask");
	if ((signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	if (loop_add(&signal_io, signal_fd, EPOLLIN, signal_read, NULL) == -1)
		fatal("epoll_ctl signalfd");
}

/*
 * --user: once the listeners are bound (ports below 1024 need root),
 * ispd needs no privilege. A reload then reads the files as that user.
 */
static void
privileges_drop(const char *user)
{
	struct passwd	*pw;

	if ((pw = getpwnam(user)) == NULL)
		fatalx("user %s: no such user", user);
	if (geteuid() != 0) {
		if (pw->pw_uid == geteuid())
			return;
		fatalx("cannot become user %s: ispd must be started as root "
		    "for --user", user);
	}
	if (setgroups(1, &pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		fatal("cannot become user %s", user);
	if (pw->pw_uid != 0 && (setuid(0) != -1 || seteuid(0) != -1))
		fatalx("could become root again after becoming %s", user);
	log_info("running as user %s (uid %u, gid %u)", user,
	    (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
}

/* The listeners, and whether the settings ask for no authentication on
 * a TLS port (worth a word). */
static int
listeners_open(void)
{
	int	 i;

	for (i = 0; i < running.nlisten; i++)
		if (listen_open(running.listen[i].spec,
		    running.listen[i].tls) == -1)
			return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct conf_loaded	 ld;
	size_t			 i;
	int			 level = LOG_LEVEL_INFO, nerr;

	if (gethostname(hostname, sizeof(hostname) - 1) == 0 &&
	    hostname[0] != '\0')
		ispd_conf.server_id = hostname;
	for (i = 0; i < limit_ndefs && i < CONF_MAX_LIMITS; i++)
		limit_defaults[i] = *limit_defs[i].value;
	conf_init(&cli);
	parse_options(argc, argv);
	if ((nerr = config_read(&running, &ld, 0)) != 0) {
		fprintf(stderr, "ispd: %d error%s in the configuration%s%s\n",
		    nerr, nerr > 1 ? "s" : "", check_only ? "" : "; not "
		    "started", "");
		exit(1);
	}
	if (check_only) {
		printf("%s: OK (%d listener%s, %zu rule%s, %zu credential%s)\n",
		    config_file, running.nlisten, running.nlisten != 1 ? "s" :
		    "", acl_nrules(ld.acl), acl_nrules(ld.acl) != 1 ? "s" : "",
		    ld.creds != NULL ? ld.creds->n : 0,
		    ld.creds != NULL && ld.creds->n == 1 ? "" : "s");
		conf_loaded_free(&ld);
		conf_free(&running);
		conf_free(&cli);
		exit(0);
	}
	if (running.item[CONF_HOLD].set)
		ispd_conf.hold_ms = (uint32_t)running.item[CONF_HOLD].num;
	if (running.item[CONF_SERVER_ID].set) {
		snprintf(server_id, sizeof(server_id), "%s",
		    running.item[CONF_SERVER_ID].str);
		ispd_conf.server_id = server_id;
	}
	if (running.item[CONF_LOG_LEVEL].set)
		level = (int)running.item[CONF_LOG_LEVEL].num;
	if (running.item[CONF_GRACEFUL_SECONDS].set)
		ispd_conf.graceful_ms =
		    running.item[CONF_GRACEFUL_SECONDS].num * 1000;
	limits_apply(&running);
	log_init(level);
	nofile_raise();

	loop_init();
	signal_setup();
	notify_init();
	table_init();
	for (i = 0; i < (size_t)running.ngraceful; i++)
		if (graceful_add(running.graceful[i]) == -1)
			fatalx("graceful_add %s", running.graceful[i]);
	if (running.ngraceful > 0)
		log_info("graceful restart for %d table pattern%s, %" PRIu64
		    " s", running.ngraceful, running.ngraceful != 1 ? "s" :
		    "", ispd_conf.graceful_ms / 1000);
	config_apply(&ld);
	if (listeners_open() == -1)
		exit(1);
	if (running.item[CONF_METRICS].set &&
	    metrics_open(running.item[CONF_METRICS].str) == -1)
		exit(1);
	if (port_file != NULL && listen_write_ports(port_file) == -1)
		exit(1);
	if (running.item[CONF_USER].set)
		privileges_drop(running.item[CONF_USER].str);
	log_info("ispd %s started, hold %u ms, server id %s", ISP_RELEASE,
	    ispd_conf.hold_ms, ispd_conf.server_id);
	/* Every listener is bound: clients can connect from now on. */
	notify_ready("serving");

	loop_run();

	notify_stopping();
	metrics_close();
	listen_close_all();
	session_shutdown_all();
	table_free_all();
	subscr_free_all();
	stats_free();
	limit_free();
	acl_free_all();
	auth_free();
	tls_free();
	loop_del(&signal_io);
	close(signal_fd);
	if (drain_fd != -1) {
		loop_del(&drain_io);
		close(drain_fd);
	}
	loop_free();
	notify_free();
	conf_free(&running);
	conf_free(&cli);
	log_info("exiting");
	return 0;
}
