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

#include "ispd.h"
#include "acl.h"
#include "tls.h"

/* getopt_long() values of the options: OPT_SETTING + their index in
 * settings[]. */
#define OPT_SETTING	1000
#define OPT_MARKDOWN	999	/* --help-config-markdown */
/* File descriptors ispd uses besides sessions: stdio, epoll, signalfd,
 * listeners, and the metrics endpoint (its listener, its epoll and at
 * most 16 connections, prom.c). */
#define NOFILE_RESERVED	(8 + CONF_MAX_LISTEN + 18)

/* The command line's settings, laid over the file's (conf.c). */
static struct conf	 cli;
/* The settings ispd started with. A reload applies the rules,
 * credentials, TLS files and limits it reads, and compares what takes a
 * restart with these. */
static struct conf	 running;
static const char	*config_file;
static int		 check_only;
static const char	*port_file;
static int		 signal_fd = -1;
static struct loop_io	 signal_io;
static char		 hostname[256];
static char		 server_id[PROTO_MAX_STR_BYTES + 1];
/* Drain (SIGUSR1): the timer that ends the loop once the sessions were
 * told they close. */
static int		 drain_fd = -1;
static struct loop_io	 drain_io;

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list	 ap;

	fputs("ispd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	settings_usage(stderr, 0);
	exit(2);
}

/* "--name" of the option getopt_long() returned as c. */
static const char *
option_name(int c, char *buf, size_t bufsz)
{
	if (c >= OPT_SETTING && c < OPT_SETTING + CONF_NKEYS)
		snprintf(buf, bufsz, "--%s", settings[c - OPT_SETTING].name);
	else if (c == OPT_MARKDOWN)
		snprintf(buf, bufsz, "--help-config-markdown");
	else
		snprintf(buf, bufsz, "-%c", c);
	return buf;
}

/* The options are the settings the command line may give (settings.c),
 * --help and --version; those that are also directives of the file are
 * checked by conf.c, into cli. */
static void
parse_options(int argc, char **argv)
{
	struct option		 longopts[CONF_NKEYS + 4];
	const struct setting	*s;
	char			 name[64];
	size_t			 n = 0;
	int			 c, key, bad = 0;

	for (key = 0; key < CONF_NKEYS; key++) {
		if (settings[key].flags & SET_NOCLI)
			continue;
		longopts[n].name = settings[key].name;
		longopts[n].has_arg = settings[key].type == SET_BOOL ?
		    no_argument : required_argument;
		longopts[n].flag = NULL;
		longopts[n].val = OPT_SETTING + key;
		n++;
	}
	longopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[n++] = (struct option){ "version", no_argument, NULL, 'V' };
	longopts[n++] = (struct option){ "help-config-markdown", no_argument,
	    NULL, OPT_MARKDOWN };
	memset(&longopts[n], 0, sizeof(longopts[n]));

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			settings_usage(stdout, 1);
			exit(0);
		case 'V':
			printf("ispd %s\n", ISP_RELEASE);
			exit(0);
		case OPT_MARKDOWN:
			settings_markdown(stdout);
			exit(0);
		case ':':
			usage_error("option %s needs a value",
			    option_name(optopt, name, sizeof(name)));
		case '?':
			if (optopt >= OPT_MARKDOWN)
				usage_error("option %s takes no value",
				    option_name(optopt, name, sizeof(name)));
			if (optopt != 0 && optopt != '?')
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
		key = c - OPT_SETTING;
		s = &settings[key];
		switch (s->type) {
		case SET_RUN:
			if (*optarg == '\0')
				usage_error("invalid --%s: empty path", s->name);
			if (key == CONF_PORT_FILE)
				port_file = optarg;
			else
				config_file = optarg;
			check_only |= key == CONF_CHECK_CONFIG;
			break;
		case SET_LISTEN:
			bad = conf_add_listen(&cli, optarg,
			    key == CONF_LISTEN_TLS, 0);
			break;
		case SET_PATTERN:
			bad = conf_add_graceful(&cli, optarg, 0);
			break;
		default:
			bad = conf_set(&cli, key, s->type == SET_BOOL ? "yes" :
			    optarg, 0);
			break;
		}
		/* conf.c said why. */
		if (bad == -1) {
			settings_usage(stderr, 0);
			exit(2);
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
	if (c->nlisten == 0 && conf_add_listen(c, settings[CONF_LISTEN].def,
	    0, 0) == -1)
		fatalx("config_read: default listener");
	return conf_load(c, ld);
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
	struct conf		 c;
	struct conf_loaded	 ld;
	size_t			 i, nrules, ncreds;
	int			 key, same;

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
	for (key = 0; key < CONF_NKEYS; key++) {
		if (!(settings[key].flags & SET_RESTART))
			continue;
		switch (settings[key].type) {
		case SET_LISTEN:	/* listen and listen-tls, once */
			if (key != CONF_LISTEN)
				continue;
			same = c.nlisten == running.nlisten;
			for (i = 0; same && i < (size_t)c.nlisten; i++)
				same = c.listen[i].tls ==
				    running.listen[i].tls &&
				    strcmp(c.listen[i].spec,
				    running.listen[i].spec) == 0;
			if (!same)
				log_warnx("reload: the listeners changed; that "
				    "takes a restart");
			continue;
		case SET_PATTERN:
			same = c.ngraceful == running.ngraceful;
			for (i = 0; same && i < (size_t)c.ngraceful; i++)
				same = strcmp(c.graceful[i],
				    running.graceful[i]) == 0;
			break;
		default:
			same = item_same(&c.item[key], &running.item[key]);
			break;
		}
		if (!same)
			log_warnx("reload: %s changed; that takes a restart",
			    settings[key].name);
	}
	nrules = acl_nrules(ld.acl);
	ncreds = ld.creds != NULL ? ld.creds->n : 0;
	settings_apply(&c, 1);
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
 * --drain-seconds, so that it relies on its other reflectors before; then
 * the loop stops and the usual shutdown sends BYE SHUTDOWN. Clients that
 * connect meanwhile are told too. A second SIGUSR1 changes nothing.
 */
static void
drain_start(void)
{
	struct itimerspec	 its;

	if (drain_fd != -1)
		return;
	log_info("received SIGUSR1, draining: closing the sessions in %"
	    PRIu64 " s", ispd_conf.drain_ms / 1000);
	ispd_stats.draining = 1;	/* /healthz answers 503 from now on */
	notify_status("draining: the sessions close soon");
	session_going_down(loop_now_ms() + ispd_conf.drain_ms,
	    "ispd going down for maintenance");
	if (ispd_conf.drain_ms == 0) {
		loop_stop();
		return;
	}
	if ((drain_fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) == -1)
		fatal("timerfd_create");
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(ispd_conf.drain_ms / 1000);
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
	int			 nerr;

	settings_defaults();
	if (gethostname(hostname, sizeof(hostname) - 1) == 0 &&
	    hostname[0] != '\0')
		ispd_conf.server_id = hostname;
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
	settings_apply(&running, 0);
	if (running.item[CONF_SERVER_ID].set) {
		snprintf(server_id, sizeof(server_id), "%s",
		    running.item[CONF_SERVER_ID].str);
		ispd_conf.server_id = server_id;
	}
	log_init((int)ispd_conf.log_level);
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
	log_info("ispd %s started, hold %" PRIu64 " ms, server id %s",
	    ISP_RELEASE,
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
