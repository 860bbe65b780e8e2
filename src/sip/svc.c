/*
 * svc: the event loop and the ispd session of the SIP services.
 *
 * One thread: su_root (sofia-sip's loop) owns the SIP sockets and timers,
 * and the libisp client is driven in its application-loop mode: its
 * socket is registered in the same root, and isp_process() runs when it
 * is readable or when isp_timeout_ms() says it is due. Requests such as
 * isp_announce() wait in libisp's queue until that isp_process(), which
 * runs right after the SIP handlers of the same loop iteration: a
 * REGISTER's announce leaves with its 200 OK, and the announces of every
 * REGISTER handled in one iteration leave in one write.
 *
 * The client holds a session with each reflector it was given, with
 * libisp's reconnect: when a session ends the service keeps answering
 * SIP, and libisp reconnects with its backoff (include/isp.h), announces
 * again every record the service holds (its INSTANCES record, the
 * registrar's bindings), subscribes again and says END_OF_REPLAY. The
 * service has no reconnect loop of its own; it only retries the first
 * connect, every second, since a client whose isp_connect() failed is
 * done. At that first connect, a refusal that retrying cannot mend (the
 * secret or the certificate refused, an invalid address) ends the
 * program; later ones are logged and libisp goes on trying.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

/* First: it sets the typed callback arguments sofia-sip reads. */
#include "sipsvc.h"

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>


#define SVC_RETRY_MS		1000	/* the first connect only */
#define SVC_CONNECT_MS		1000
/* The loop wakes at least this often to look at signals and retries. */
#define SVC_MAX_SLEEP_MS	500

/* sofia-sip's module logs; exported by libsofia-sip-ua, not declared in
 * its installed headers. */
extern su_log_t	 nta_log[];
extern su_log_t	 tport_log[];

volatile sig_atomic_t	 svc_stop;

static const char	*log_prog = "isp-sip";
static int		 log_level = SVC_LOG_INFO;

static const char *const log_names[] = {
	[SVC_LOG_ERROR] = "error",
	[SVC_LOG_WARN] = "warn",
	[SVC_LOG_INFO] = "info",
	[SVC_LOG_DEBUG] = "debug",
};

void
svc_log_init(const char *prog, int level)
{
	log_prog = prog;
	log_level = level;
}

int
svc_log_level_parse(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(name, log_names[i]) == 0)
			return (int)i;
	return -1;
}

int
svc_log_enabled(int level)
{
	return level <= log_level;
}

/* One line, one write(2), in the format of ispd's log:
 *	2026-11-26T06:00:00.123Z isp-registrar[PID]: warn: message */
static void __attribute__((format(printf, 2, 0)))
svc_vlog(int level, const char *fmt, va_list ap)
{
	char		 line[2048], stamp[32];
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n;
	int		 r;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld]: %s: ", stamp,
	    ts.tv_nsec / 1000000, log_prog, (long)getpid(), log_names[level]);
	n = r > 0 ? (size_t)r : 0;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void
svc_log(int level, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	svc_vlog(level, fmt, ap);
	va_end(ap);
}

void
svc_fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	svc_vlog(SVC_LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

void
svc_usage_error(const char *prog, void (*usage)(FILE *, int),
    const char *fmt, ...)
{
	va_list	 ap;

	/* An option from --config's file: its line. */
	fprintf(stderr, "%s: %s", prog, clientconf_where(optind));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr, 0);
	exit(2);
}

int
svc_conn_option(const char *prog, void (*usage)(FILE *, int),
    struct clientconf *cc, int ch, const char *arg)
{
	static int	 servers_from_cmdline;
	char		 err[512];

	switch (clientconf_option(cc, ch, arg, err, sizeof(err))) {
	case 1:
		return 1;
	case -1:
		svc_usage_error(prog, usage, "%s", err);
	}
	switch (ch) {
	case SVC_O_ISPD:
		/* The command line's --ispd replace the file's. */
		if (!clientconf_from_file(optind) && !servers_from_cmdline) {
			clientconf_clear_servers(cc);
			servers_from_cmdline = 1;
		}
		if (clientconf_add_servers(cc, arg, err, sizeof(err)) != 0)
			svc_usage_error(prog, usage, "--ispd: %s", err);
		return 1;
	case SVC_O_CONFIG:
		return 1;	/* read before the loop: svc_config_args() */
	default:
		return 0;
	}
}

void
svc_conn_finish(const char *prog, void (*usage)(FILE *, int),
    struct clientconf *cc)
{
	char	 err[512];

	if (clientconf_finish(cc, err, sizeof(err)) != 0 ||
	    clientconf_check(cc, err, sizeof(err)) != 0)
		svc_usage_error(prog, usage, "%s", err);
}

int
svc_config_args(const char *prog, int argc, char **argv,
    const struct option *opts, const char *const *paths,
    const char *const *repeatable, char ***out)
{
	int	 n;

	if ((n = clientconf_args(prog, argc, argv, opts, paths, repeatable,
	    out)) < 0)
		exit(SVC_EXIT_USAGE);
	return n;
}

/* sofia-sip logs in fragments that end with a newline; keep them until
 * the line is whole. */
static void
svc_sofia_logger(void *stream, const char *fmt, va_list ap)
{
	static char	 pending[1024];
	static size_t	 npending;
	int		 r;

	r = vsnprintf(pending + npending, sizeof(pending) - npending, fmt,
	    ap);
	if (r > 0)
		npending += (size_t)r;
	if (npending >= sizeof(pending))
		npending = sizeof(pending) - 1;
	if (npending > 0 && pending[npending - 1] != '\n' &&
	    npending < sizeof(pending) - 1)
		return;
	svc_log(SVC_LOG_WARN, "sofia-sip: %.*s", (int)npending, pending);
	npending = 0;
}

void
svc_log_sofia(void)
{
	su_log_redirect(su_log_default, svc_sofia_logger, NULL);
	su_log_redirect(nta_log, svc_sofia_logger, NULL);
	su_log_redirect(tport_log, svc_sofia_logger, NULL);
}

uint64_t
svc_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
svc_on_signal(int sig)
{
	svc_stop = 1;
}

void
svc_init(struct svc *s, const char *prog, const char *role)
{
	struct sigaction	 sa;

	memset(s, 0, sizeof(*s));
	s->prog = prog;
	s->role = role;
	s->isp_index = -1;
	s->isp_fd = -1;
	s->started = time(NULL);
	clientconf_init(&s->conn);
	su_home_init(s->home);
	if (su_init() != 0)
		svc_fatalx("cannot initialise sofia-sip");
	if ((s->root = su_root_create(s)) == NULL)
		svc_fatalx("cannot create the sofia-sip event loop");
	/* No SA_RESTART: a signal ends the loop's wait at once. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = svc_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void
svc_on_error(isp_client *c, uint32_t req_id, int code, const char *reason,
    void *arg)
{
	struct svc	*s = arg;

	/* A rule that forbids a request is the operator's to fix: say it
	 * as an error, with ispd's reason (it names the rule). */
	svc_log(code == ISP_E_DENIED || code == ISP_E_AUTH ? SVC_LOG_ERROR :
	    SVC_LOG_WARN, "ispd (%s) refused request %u of %s: %s (%s)",
	    s->conn.names, req_id, s->id, reason, isp_strerror(code));
}

static int
svc_isp_ready(struct svc *s, su_wait_t *w, struct svc *arg)
{
	(void)su_wait_events(w, s->isp_fd);
	s->isp_ready = 1;
	return 0;
}

/* isp_fd() of a client with reconnect is an epoll descriptor over every
 * server's socket, the same for the client's life: registered once. */
static int
svc_watch(struct svc *s, int fd)
{
	s->isp_fd = fd;
	if (su_wait_create(s->isp_wait, s->isp_fd, SU_WAIT_IN) != 0 ||
	    (s->isp_index = su_root_register(s->root, s->isp_wait,
	    svc_isp_ready, s, 0)) < 0) {
		s->isp_index = -1;
		s->isp_fd = -1;
		return -1;
	}
	return 0;
}

static void
svc_unwatch(struct svc *s)
{
	if (s->isp_index >= 0)
		su_root_deregister(s->root, s->isp_index);
	s->isp_index = -1;
	s->isp_fd = -1;
}

/* A refusal that no retry mends: the secret or the certificate, the
 * protocol version, a name or address libisp rejects. */
static int
svc_refusal(int err)
{
	return err == ISP_E_AUTH || err == ISP_E_TLS || err == ISP_E_DENIED ||
	    err == ISP_E_VERSION || err == ISP_E_INVALID;
}

static const char *
svc_hint(int err)
{
	/* libisp's TLS messages carry their own hint. */
	return err == ISP_E_AUTH ? " (check --secret-file against the line "
	    "of --id in ispd's credentials file)" : "";
}

static void
svc_on_state(isp_client *c, const struct isp_server_event *e, void *arg)
{
	struct svc	*s = arg;

	if (e->up) {
		s->connects++;
		s->refused[e->index] = 0;
		svc_log(SVC_LOG_INFO, "connected to ispd at %s as %s (session "
		    "%llu, %u of %zu up)", e->server, s->id,
		    (unsigned long long)e->session_id, e->nup,
		    s->conn.nservers);
		s->fresh = 0;
		if (s->on_connect != NULL && s->on_connect(s, s->arg) != 0)
			svc_stop = 1;
		return;
	}
	if (e->attempt == 0) {
		svc_log(SVC_LOG_WARN, "session to ispd at %s ended: %s; %u of "
		    "%zu up, serving SIP on, reconnecting", e->server, e->why,
		    e->nup, s->conn.nservers);
		if (s->on_disconnect != NULL)
			s->on_disconnect(s, s->arg);
	} else if (svc_refusal(e->err) && !s->refused[e->index]) {
		/* Loud once per server until it works again. */
		s->refused[e->index] = 1;
		svc_log(SVC_LOG_ERROR, "ispd at %s refuses %s: %s%s; retrying "
		    "every %d ms or so", e->server, s->id, e->why,
		    svc_hint(e->err), e->retry_ms);
	} else
		svc_log(SVC_LOG_DEBUG, "ispd at %s: %s; next attempt in %d ms",
		    e->server, e->why, e->retry_ms);
}

static void
svc_connect(struct svc *s)
{
	struct isp_options	 o;
	isp_client		*c;
	int			 rc;

	isp_options_init(&o);
	clientconf_apply(&s->conn, &o);
	o.name = s->id;
	o.connect_timeout_ms = SVC_CONNECT_MS;
	o.reconnect = 1;
	o.on_error = svc_on_error;
	o.on_state = svc_on_state;
	o.arg = s;
	s->next_connect_ms = svc_now_ms() + SVC_RETRY_MS;
	if ((c = isp_new(&o)) == NULL) {
		svc_log(SVC_LOG_ERROR, "out of memory creating the ispd client");
		return;
	}
	if ((rc = isp_connect(c)) != ISP_OK) {
		if (svc_refusal(rc)) {
			svc_log(SVC_LOG_ERROR, "%s%s; not retrying: that will "
			    "not change by itself", isp_errmsg(c), svc_hint(rc));
			s->exit_code = rc == ISP_E_INVALID ? SVC_EXIT_USAGE :
			    SVC_EXIT_REFUSED;
			svc_stop = 1;
		} else
			/* Loud once, then quiet until it works. */
			svc_log(s->connect_failures++ == 0 ? SVC_LOG_WARN :
			    SVC_LOG_DEBUG, "%s; retrying every %d ms",
			    isp_errmsg(c), SVC_RETRY_MS);
		isp_free(c);
		return;
	}
	s->connect_failures = 0;
	if (svc_watch(s, isp_fd(c)) != 0) {
		svc_log(SVC_LOG_ERROR, "cannot watch the sockets to ispd: %s",
		    strerror(errno));
		isp_free(c);
		return;
	}
	s->isp = c;
	s->connects++;
	svc_log(SVC_LOG_INFO, "connected to ispd at %s as %s (session %llu, "
	    "%u of %zu up)%s", s->conn.names, s->id,
	    (unsigned long long)isp_session_id(c), isp_servers_up(c),
	    s->conn.nservers, s->conn.tls ? " over TLS" : "");
	if (isp_servers_up(c) < s->conn.nservers)
		svc_log(SVC_LOG_WARN, "%s; retrying in the background",
		    isp_errmsg(c));
	s->fresh = 1;
	if (svc_announce_instance(s) != ISP_OK ||
	    (s->on_connect != NULL && s->on_connect(s, s->arg) != 0)) {
		svc_log(SVC_LOG_ERROR, "cannot start on the session to ispd: "
		    "%s", isp_errmsg(c));
		s->exit_code = 1;
		svc_stop = 1;
	}
	s->fresh = 0;
}

int
svc_announce_instance(struct svc *s)
{
	char			 started[32];
	struct isp_field	 f[4];

	snprintf(started, sizeof(started), "%lld", (long long)s->started);
	f[0].name = "role";
	f[0].value = s->role;
	f[0].value_len = strlen(s->role);
	f[1].name = "uri";
	f[1].value = s->sip_addr;
	f[1].value_len = strlen(s->sip_addr);
	f[2].name = "version";
	f[2].value = ISP_RELEASE;
	f[2].value_len = strlen(ISP_RELEASE);
	f[3].name = "started";
	f[3].value = started;
	f[3].value_len = strlen(started);
	return isp_announce(s->isp, SIP_INSTANCES_TABLE, s->id, strlen(s->id),
	    f, 4, 0);
}

static void
svc_process(struct svc *s)
{
	if (s->isp == NULL)
		return;
	/* With reconnect, isp_process() fails only when the client cannot
	 * go on at all (out of memory); make a new one. */
	if (isp_process(s->isp) != ISP_OK) {
		svc_log(SVC_LOG_ERROR, "the ispd client ended: %s; starting "
		    "a new one", isp_errmsg(s->isp));
		svc_unwatch(s);
		isp_free(s->isp);
		s->isp = NULL;
		if (s->on_disconnect != NULL)
			s->on_disconnect(s, s->arg);
	}
}

void
svc_run(struct svc *s)
{
	long	 wait;
	int	 t;

	while (!svc_stop) {
		if (s->isp == NULL && svc_now_ms() >= s->next_connect_ms)
			svc_connect(s);
		wait = SVC_MAX_SLEEP_MS;
		if (s->isp != NULL) {
			if ((t = isp_timeout_ms(s->isp)) >= 0 && t < wait)
				wait = t;
			/* Requests queued (libisp writes them at the end
			 * of isp_process()): no wait before the pass. */
			if (isp_want(s->isp) & ISP_WANT_WRITE)
				wait = 0;
		}
		su_root_step(s->root, wait);
		if (svc_stop)
			break;
		/* After the SIP handlers ran: read ispd's input, flush what
		 * they queued, send keepalives; only when one of those is
		 * due, so a REGISTER costs no extra system call. */
		if (s->isp != NULL && (s->isp_ready ||
		    isp_timeout_ms(s->isp) == 0 ||
		    (isp_want(s->isp) & ISP_WANT_WRITE))) {
			s->isp_ready = 0;
			svc_process(s);
		}
	}
}

void
svc_quiet_sofia(void)
{
	/* At shutdown nta reports every transaction it tears down. */
	su_log_set_level(nta_log, 1);
	su_log_set_level(tport_log, 1);
}

void
svc_close(struct svc *s)
{
	if (s->isp != NULL) {
		svc_unwatch(s);
		isp_free(s->isp);
		s->isp = NULL;
	}
	clientconf_free(&s->conn);
	clientconf_args_free();
	su_root_destroy(s->root);
	s->root = NULL;
	su_home_deinit(s->home);
	su_deinit();
}

int
svc_write_port_file(const char *path, unsigned port)
{
	char	 tmp[4096];
	FILE	*f;
	int	 r;

	r = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (r < 0 || (size_t)r >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int
svc_sip_stray(void *magic, nta_agent_t *agent, msg_t *msg, sip_t *sip)
{
	/* Responses to nothing we sent, mostly: drop them. */
	msg_destroy(msg);
	return 0;
}

nta_agent_t *
svc_sip_listen(struct svc *s, const char *url, nta_request_f *cb,
    void *magic, const char *port_file, nta_leg_t **leg)
{
	nta_agent_t	*a;
	sip_via_t	*v;
	unsigned	 port;

	a = nta_agent_create(s->root, URL_STRING_MAKE(url), svc_sip_stray,
	    NULL,
	    /* RFC 3581: answer to the source port when asked (rport). */
	    NTATAG_SERVER_RPORT(1),
	    /* A SIP message over 64 KiB is an attack, not a REGISTER. */
	    NTATAG_MAXSIZE(65536),
	    /* Room for a burst of REGISTERs (a border gateway coming back
	     * replays thousands at once); the kernel caps it at
	     * net.core.rmem_max. */
	    TPTAG_UDP_RMEM(4 << 20),
	    TAG_END());
	if (a == NULL)
		svc_fatalx("cannot listen for SIP on %s: %s (is the address "
		    "local and the port free?)", url, strerror(errno));
	*leg = nta_leg_tcreate(a, cb, magic, NTATAG_NO_DIALOG(1), TAG_END());
	if (*leg == NULL)
		svc_fatalx("cannot create the default SIP leg");
	if ((v = nta_agent_via(a)) == NULL || v->v_port == NULL)
		svc_fatalx("sofia-sip bound %s but reports no port", url);
	port = (unsigned)strtoul(v->v_port, NULL, 10);
	if (strchr(v->v_host, ':') != NULL && v->v_host[0] != '[')
		snprintf(s->sip_addr, sizeof(s->sip_addr), "sip:[%s]:%u",
		    v->v_host, port);
	else
		snprintf(s->sip_addr, sizeof(s->sip_addr), "sip:%s:%u",
		    v->v_host, port);
	for (; v != NULL; v = v->v_next)
		svc_log(SVC_LOG_INFO, "listening for SIP on %s %s:%s",
		    v->v_protocol, v->v_host, v->v_port);
	if (port_file != NULL && svc_write_port_file(port_file, port) != 0)
		svc_fatalx("cannot write the port file %s: %s", port_file,
		    strerror(errno));
	return a;
}

int
svc_sip_source(nta_agent_t *agent, nta_incoming_t *irq, char *ip,
    size_t iplen, unsigned *port, const char **transport)
{
	msg_t		*msg;
	su_addrinfo_t	*ai;
	su_sockaddr_t	*sa;
	tport_t		*tp;
	int		 rc = -1;

	*transport = "udp";
	if ((msg = nta_incoming_getrequest(irq)) == NULL)
		return -1;
	ai = msg_addrinfo(msg);
	if (ai != NULL && ai->ai_addr != NULL) {
		sa = (su_sockaddr_t *)ai->ai_addr;
		if (su_inet_ntop(sa->su_family, SU_ADDR(sa), ip, iplen) !=
		    NULL) {
			*port = ntohs(sa->su_port);
			rc = 0;
		}
	}
	if ((tp = nta_incoming_transport(agent, irq, msg)) != NULL) {
		if (tport_name(tp)->tpn_proto != NULL &&
		    strcasecmp(tport_name(tp)->tpn_proto, "tcp") == 0)
			*transport = "tcp";
		else if (tport_name(tp)->tpn_proto != NULL &&
		    strcasecmp(tport_name(tp)->tpn_proto, "tls") == 0)
			*transport = "tls";
		tport_decref(&tp);
	}
	msg_destroy(msg);
	return rc;
}

int
svc_set_id(struct svc *s, const char *id)
{
	const char	*p;
	int		 n;

	if (id != NULL)
		n = snprintf(s->id, sizeof(s->id), "%s", id);
	else
		n = snprintf(s->id, sizeof(s->id), "%s@%s", s->role,
		    strncmp(s->sip_addr, "sip:", 4) == 0 ? s->sip_addr + 4 :
		    s->sip_addr);
	if (n <= 0 || n > 64)
		return -1;
	for (p = s->id; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return -1;
	return 0;
}
