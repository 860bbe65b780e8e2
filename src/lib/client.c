/*
 * client: creating a client, connecting it to every server at once,
 * freeing it, and what it tells about itself. Also the older ABIs of
 * struct isp_options: binaries built against 1.0 call
 * isp_options_init@LIBISP_1 and isp_new@LIBISP_1, those built against
 * 1.1 the @LIBISP_1.1 pair (libisp.map), which read and write only the
 * layout they were built with.
 */
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib.h"

uint64_t
client_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
client_seterr(struct isp_client *c, int err, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

/* The mutex is not part of the client's logical state, so even the
 * const accessors take it. */
void
client_lock(const struct isp_client *c)
{
	pthread_mutex_lock((pthread_mutex_t *)&c->lock);
}

void
client_unlock(const struct isp_client *c)
{
	pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
}

int
client_conn_usable(const struct conn *cn)
{
	return cn->state == CONN_READY && cn->dead_err == 0;
}

unsigned
client_nup(const struct isp_client *c)
{
	unsigned	 i, n = 0;

	for (i = 0; i < c->nconns; i++)
		n += c->conns[i].state == CONN_READY;
	return n;
}

int
client_check_ready(struct isp_client *c, const char *fn)
{
	unsigned	 i;

	switch (c->state) {
	case CLIENT_NEW:
		return client_seterr(c, ISP_E_STATE, "%s: not connected; call "
		    "isp_connect() first", fn);
	case CLIENT_FAILED:
		return client_seterr(c, ISP_E_STATE, "%s: not connected "
		    "(isp_connect() failed: %s); make a new client", fn,
		    c->end_why);
	case CLIENT_ENDED:
		return client_seterr(c, ISP_E_STATE, "%s: the session has "
		    "ended (%s); make a new client", fn, c->end_why);
	case CLIENT_READY:
		break;
	}
	/* With reconnect, a request made while no session is up takes
	 * effect when one is back. */
	if (c->reconnect)
		return ISP_OK;
	for (i = 0; i < c->nconns; i++)
		if (client_conn_usable(&c->conns[i]))
			return ISP_OK;
	for (i = 0; i < c->nconns; i++)
		if (c->conns[i].dead_err != 0)
			return client_seterr(c, ISP_E_STATE, "%s: the session "
			    "has ended (%s); make a new client", fn,
			    c->conns[i].dead_why);
	return client_seterr(c, ISP_E_STATE, "%s: no session is up", fn);
}

/* The 1.0 layout of struct isp_options, for binaries built against it
 * (see the ABI note in isp.h and libisp.map). */
struct isp_options_v1 {
	const char	*server;
	const char	*name;
	int		 connect_timeout_ms;
	isp_error_cb	*on_error;
	isp_closed_cb	*on_closed;
	void		*arg;
};

/* The 1.1 layout: 1.0's, then reconnect and several servers, up to
 * on_state. */
struct isp_options_v11 {
	const char	*server;
	const char	*name;
	int		 connect_timeout_ms;
	isp_error_cb	*on_error;
	isp_closed_cb	*on_closed;
	void		*arg;
	const char *const *servers;
	size_t		 nservers;
	int		 reconnect;
	int		 backoff_min_ms;
	int		 backoff_max_ms;
	int		 stale_grace_ms;
	isp_state_cb	*on_state;
};

static void
options_defaults(struct isp_options *o)
{
	memset(o, 0, sizeof(*o));
	o->server = ISP_DEFAULT_SERVER;
	o->name = CLIENT_DEFAULT_NAME;
	o->connect_timeout_ms = CLIENT_CONNECT_TIMEOUT_MS;
}

/* The default version (LIBISP_1.2 in libisp.map). */
void
isp_options_init(struct isp_options *o)
{
	options_defaults(o);
}

LIB_SYMVER("isp_options_init@LIBISP_1")
void
options_init_v1(struct isp_options_v1 *o);
void
options_init_v1(struct isp_options_v1 *o)
{
	struct isp_options	 d;

	options_defaults(&d);
	memset(o, 0, sizeof(*o));
	o->server = d.server;
	o->name = d.name;
	o->connect_timeout_ms = d.connect_timeout_ms;
}

LIB_SYMVER("isp_options_init@LIBISP_1.1")
void
options_init_v11(struct isp_options_v11 *o);
void
options_init_v11(struct isp_options_v11 *o)
{
	struct isp_options	 d;

	options_defaults(&d);
	memset(o, 0, sizeof(*o));
	o->server = d.server;
	o->name = d.name;
	o->connect_timeout_ms = d.connect_timeout_ms;
}

/* A copy of an optional string option: 0, or -1 when out of memory. */
static int
option_dup(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	return (*dst = strdup(src)) == NULL ? -1 : 0;
}

static void
options_free(struct isp_client *c)
{
	free(c->tls_ca_file);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->tls_server_name);
	if (c->secret != NULL) {
		explicit_bzero(c->secret, c->secret_len);
		free(c->secret);
	}
	ctls_free(c);
}

/* A seed for the backoff jitter that differs per client and process,
 * so clients of one reflector do not retry in step. */
static uint64_t
client_seed(const struct isp_client *c)
{
	uint64_t	 seed = 0;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(seed))
		seed = client_now_ms() ^ ((uint64_t)getpid() << 32) ^
		    (uint64_t)(uintptr_t)c;
	return seed;
}

static int
client_conns_init(struct isp_client *c, const struct isp_options *opt)
{
	const char	*one = opt->server != NULL ? opt->server :
			    ISP_DEFAULT_SERVER;
	const char	*srv;
	struct conn	*cn;
	unsigned	 i, n;

	n = opt->nservers > 0 && opt->servers != NULL ?
	    (unsigned)(opt->nservers > ISP_MAX_SERVERS ? ISP_MAX_SERVERS + 1 :
	    opt->nservers) : 1;
	if ((c->conns = calloc(n, sizeof(*c->conns))) == NULL)
		return -1;
	c->nconns = n;
	for (i = 0; i < n; i++) {
		cn = &c->conns[i];
		cn->c = c;
		cn->idx = i;
		cn->fd = -1;
		cn->state = CONN_IDLE;
		buf_init(&cn->in);
		buf_init(&cn->out);
		srv = n > 1 || (opt->nservers > 0 && opt->servers != NULL) ?
		    opt->servers[i < opt->nservers ? i : 0] : one;
		if (srv == NULL)
			srv = "";
		if ((cn->server = strdup(srv)) == NULL)
			return -1;
		snprintf(cn->addr, sizeof(cn->addr), "%s", cn->server);
	}
	return 0;
}

static uint64_t	 client_serials;

isp_client *
isp_new(const struct isp_options *opt)
{
	struct isp_options	 def;
	pthread_mutexattr_t	 ma;
	pthread_condattr_t	 ca;
	struct isp_client	*c;
	unsigned		 i;

	if (opt == NULL) {
		options_defaults(&def);
		opt = &def;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->epfd = -1;
	c->evfd = -1;
	c->name = strdup(opt->name != NULL ? opt->name : CLIENT_DEFAULT_NAME);
	if (c->name == NULL || client_conns_init(c, opt) == -1)
		goto fail;
	c->connect_timeout_ms = opt->connect_timeout_ms > 0 ?
	    opt->connect_timeout_ms : CLIENT_CONNECT_TIMEOUT_MS;
	c->on_error = opt->on_error;
	c->on_closed = opt->on_closed;
	c->on_state = opt->on_state;
	c->arg = opt->arg;
	c->reconnect = opt->reconnect != 0;
	c->backoff_min_ms = opt->backoff_min_ms > 0 ? opt->backoff_min_ms :
	    ISP_BACKOFF_MIN_MS;
	c->backoff_max_ms = opt->backoff_max_ms > 0 ? opt->backoff_max_ms :
	    ISP_BACKOFF_MAX_MS;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	c->stale_grace_ms = opt->stale_grace_ms == 0 ? ISP_STALE_GRACE_MS :
	    opt->stale_grace_ms < 0 ? -1 : opt->stale_grace_ms;
	c->legacy = c->nconns == 1 && !c->reconnect;
	c->tls = opt->tls != 0;
	if (option_dup(&c->tls_ca_file, opt->tls_ca_file) == -1 ||
	    option_dup(&c->tls_cert_file, opt->tls_cert_file) == -1 ||
	    option_dup(&c->tls_key_file, opt->tls_key_file) == -1 ||
	    option_dup(&c->tls_server_name, opt->tls_server_name) == -1 ||
	    option_dup(&c->secret, opt->secret) == -1)
		goto fail;
	c->secret_len = c->secret != NULL ? strlen(c->secret) : 0;
	c->rng = client_seed(c);
	if ((c->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		goto fail;

	/* Recursive: callbacks run with the mutex held and may call any
	 * isp_* function of the same client. */
	if (pthread_mutexattr_init(&ma) != 0)
		goto fail;
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	if (pthread_mutex_init(&c->lock, &ma) != 0) {
		pthread_mutexattr_destroy(&ma);
		goto fail;
	}
	pthread_mutexattr_destroy(&ma);
	/* Waits have deadlines on the monotonic clock, like the loop. */
	if (pthread_condattr_init(&ca) != 0)
		goto fail_mutex;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&c->cond, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		goto fail_mutex;
	}
	pthread_condattr_destroy(&ca);

	c->state = CLIENT_NEW;
	c->serial = __atomic_add_fetch(&client_serials, 1, __ATOMIC_RELAXED);
	c->next_req_id = 1;
	c->next_token = 1;
	buf_init(&c->scratch);
	buf_init(&c->frame);
	hash_init(&c->intents);
	snprintf(c->errmsg, sizeof(c->errmsg), "no error");
	return c;

fail_mutex:
	pthread_mutex_destroy(&c->lock);
fail:
	if (c->epfd != -1)
		close(c->epfd);
	options_free(c);
	for (i = 0; c->conns != NULL && i < c->nconns; i++)
		free(c->conns[i].server);
	free(c->conns);
	free(c->name);
	free(c);
	return NULL;
}

LIB_SYMVER("isp_new@LIBISP_1")
isp_client *
new_v1(const struct isp_options_v1 *o);
isp_client *
new_v1(const struct isp_options_v1 *o)
{
	struct isp_options	 full;

	if (o == NULL)
		return isp_new(NULL);
	options_defaults(&full);
	full.server = o->server;
	full.name = o->name;
	full.connect_timeout_ms = o->connect_timeout_ms;
	full.on_error = o->on_error;
	full.on_closed = o->on_closed;
	full.arg = o->arg;
	return isp_new(&full);
}

LIB_SYMVER("isp_new@LIBISP_1.1")
isp_client *
new_v11(const struct isp_options_v11 *o);
isp_client *
new_v11(const struct isp_options_v11 *o)
{
	struct isp_options	 full;

	if (o == NULL)
		return isp_new(NULL);
	options_defaults(&full);
	memcpy(&full, o, sizeof(*o));
	return isp_new(&full);
}

int
client_parse_addr(const char *s, char *host, size_t hostsz, char *port,
    size_t portsz)
{
	const char	*h, *p, *end;
	size_t		 hlen;
	unsigned long	 n;
	char		*ep;

	if (s == NULL || *s == '\0')
		return -1;
	if (*s == '[') {
		h = s + 1;
		if ((end = strchr(h, ']')) == NULL)
			return -1;
		hlen = (size_t)(end - h);
		if (end[1] == '\0')
			p = NULL;
		else if (end[1] == ':')
			p = end + 2;
		else
			return -1;
	} else {
		h = s;
		if ((end = strchr(s, ':')) == NULL) {
			hlen = strlen(s);
			p = NULL;
		} else {
			/* Two colons without brackets: an IPv6 address whose
			 * port cannot be told apart. */
			if (strchr(end + 1, ':') != NULL)
				return -1;
			hlen = (size_t)(end - s);
			p = end + 1;
		}
	}
	if (hlen == 0 || hlen >= hostsz || memchr(h, '[', hlen) != NULL ||
	    memchr(h, ']', hlen) != NULL)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (p == NULL)
		p = CLIENT_DEFAULT_PORT;
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	n = strtoul(p, &ep, 10);
	if (errno != 0 || *ep != '\0' || n < 1 || n > 65535)
		return -1;
	snprintf(port, portsz, "%lu", n);
	return 0;
}

static int
client_name_valid(const char *name)
{
	size_t	 i, len = strlen(name);

	if (len < 1 || len > CLIENT_NAME_MAX_BYTES)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 ||
		    (unsigned char)name[i] > 0x7e)
			return 0;
	return 1;
}

static int
client_pending(const struct isp_client *c)
{
	unsigned	 i;

	for (i = 0; i < c->nconns; i++)
		if (c->conns[i].state == CONN_DIALING ||
		    c->conns[i].state == CONN_HANDSHAKE)
			return 1;
	return 0;
}

/*
 * Runs every conn being dialed or in its handshake until each is up or
 * has failed; each has its own deadline. Then the client is READY when
 * one session is up, else FAILED with the first server's error (and
 * every server's sentence when there are several).
 */
static int
client_connect_wait(struct isp_client *c)
{
	struct pollfd	 pfd[ISP_MAX_SERVERS];
	struct conn	*cn;
	uint64_t	 now, due;
	unsigned	 i, n;
	size_t		 off;
	int		 wait, rc;

	c->connecting = 1;
	while (client_pending(c)) {
		now = client_now_ms();
		due = UINT64_MAX;
		for (i = n = 0; i < c->nconns; i++) {
			cn = &c->conns[i];
			pfd[i].fd = -1;
			pfd[i].events = pfd[i].revents = 0;
			if (cn->state != CONN_DIALING &&
			    cn->state != CONN_HANDSHAKE)
				continue;
			if (cn->deadline_ms < due)
				due = cn->deadline_ms;
			pfd[i].fd = cn->fd;
			pfd[i].events = cn->state == CONN_DIALING ? POLLOUT :
			    POLLIN | (wire_pending(cn) > 0 ? POLLOUT : 0);
			/* A TLS handshake waits for one direction only. */
			if (cn->ssl != NULL && !cn->tls_done)
				pfd[i].events = cn->tls_want_write ? POLLOUT :
				    POLLIN;
			n++;
		}
		wait = due <= now ? 0 : (int)(due - now);
		rc = poll(pfd, c->nconns, wait);
		if (rc == -1 && errno != EINTR) {
			for (i = 0; i < c->nconns; i++)
				conn_end(&c->conns[i], ISP_E_SYS, "poll: %s",
				    strerror(errno));
			break;
		}
		now = client_now_ms();
		for (i = 0; i < c->nconns; i++) {
			cn = &c->conns[i];
			if (cn->state == CONN_DIALING) {
				if (pfd[i].revents != 0)
					conn_dial_check(cn);
			} else if (cn->state == CONN_HANDSHAKE) {
				if (pfd[i].revents & POLLOUT)
					wire_flush(cn);
				if (pfd[i].revents & (POLLIN | POLLHUP |
				    POLLERR))
					wire_read(cn);
				if (cn->state == CONN_HANDSHAKE &&
				    cn->dead_err != 0)
					conn_end(cn, cn->dead_err, "%s",
					    cn->dead_why);
			}
			conn_timers(cn, now);
		}
	}
	c->connecting = 0;

	if (client_nup(c) > 0) {
		for (i = 0; i < c->nconns; i++)
			if (c->conns[i].state == CONN_READY)
				wire_flush(&c->conns[i]);
		c->state = CLIENT_READY;
		client_seterr(c, ISP_OK, "no error");
		return ISP_OK;
	}
	c->state = CLIENT_FAILED;
	c->end_err = c->conns[0].end_err;
	if (c->nconns == 1) {
		snprintf(c->end_why, sizeof(c->end_why), "%s",
		    c->conns[0].end_why);
	} else {
		off = (size_t)snprintf(c->end_why, sizeof(c->end_why),
		    "cannot connect to any of %u servers:", c->nconns);
		for (i = 0; i < c->nconns && off < sizeof(c->end_why); i++)
			off += (size_t)snprintf(c->end_why + off,
			    sizeof(c->end_why) - off, "%s %s",
			    i ? ";" : "", c->conns[i].end_why);
	}
	client_seterr(c, c->end_err, "%s", c->end_why);
	return c->end_err;
}

int
isp_connect(isp_client *c)
{
	struct conn	*cn;
	unsigned	 i;
	int		 err;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if (c->state != CLIENT_NEW) {
		err = client_seterr(c, ISP_E_STATE, "isp_connect: this client "
		    "connected already; a client connects once, make a new one "
		    "to connect again");
		client_unlock(c);
		return err;
	}
	if (!client_name_valid(c->name)) {
		err = client_seterr(c, ISP_E_INVALID, "invalid client name "
		    "\"%.*s%s\" (1 to %d printable ASCII characters)",
		    CLIENT_NAME_MAX_BYTES, c->name,
		    strlen(c->name) > CLIENT_NAME_MAX_BYTES ? "..." : "",
		    CLIENT_NAME_MAX_BYTES);
		goto fail;
	}
	if (c->nconns > ISP_MAX_SERVERS) {
		err = client_seterr(c, ISP_E_INVALID, "too many servers: at "
		    "most %d", ISP_MAX_SERVERS);
		goto fail;
	}
	if (c->secret != NULL && c->secret_len == 0) {
		err = client_seterr(c, ISP_E_INVALID, "empty secret");
		goto fail;
	}
	if ((err = ctls_init(c)) != ISP_OK)
		goto fail;
	for (i = 0; i < c->nconns; i++) {
		cn = &c->conns[i];
		if (client_parse_addr(cn->server, cn->host, sizeof(cn->host),
		    cn->port, sizeof(cn->port)) == -1) {
			err = client_seterr(c, ISP_E_INVALID, "invalid server "
			    "address \"%s\" (use HOST:PORT or [IPV6]:PORT)",
			    cn->server);
			goto fail;
		}
		snprintf(cn->addr, sizeof(cn->addr), strchr(cn->host, ':') !=
		    NULL ? "[%s]:%s" : "%s:%s", cn->host, cn->port);
	}
	/* All at once: a dead server costs its timeout once, not once per
	 * server before it. */
	c->connecting = 1;
	for (i = 0; i < c->nconns; i++)
		conn_dial(&c->conns[i]);
	err = client_connect_wait(c);
	client_unlock(c);
	return err;
fail:
	c->state = CLIENT_FAILED;
	c->end_err = err;
	snprintf(c->end_why, sizeof(c->end_why), "%s", c->errmsg);
	client_unlock(c);
	return err;
}

int
client_handshake(struct isp_client *c, int fd, uint64_t deadline_ms)
{
	struct conn	*cn = &c->conns[0];

	snprintf(cn->addr, sizeof(cn->addr), "%s", cn->server);
	c->connecting = 1;
	cn->state = CONN_DIALING;	/* conn_attach() takes it from here */
	conn_attach(cn, fd);
	cn->deadline_ms = deadline_ms;
	return client_connect_wait(c);
}

void
client_reap_mirrors(struct isp_client *c)
{
	struct isp_mirror	*m;

	if (c->cb_depth > 0)
		return;
	while ((m = c->doomed) != NULL) {
		c->doomed = m->next;
		mirror_destroy(m);
	}
}

int
client_leave(struct isp_client *c, int rc)
{
	/* In mode 3 only the library thread runs callbacks, and it frees
	 * the client itself (thread.c). */
	int	 gone = c->freeing && c->cb_depth == 0 && !c->threaded;

	client_unlock(c);
	if (!gone)
		return rc;
	client_destroy(c);
	return ISP_E_CLOSED;
}

/*
 * Inside a callback the client is in use further up this thread's
 * stack (the pass that called it, in mode 3 the library thread itself):
 * it is only marked, and the pass frees it once the callback returned.
 * The lock tells: a callback runs with the client's mutex held, so a
 * thread that takes it while cb_depth > 0 is that callback's.
 */
void
isp_free(isp_client *c)
{
	struct isp_mirror	*m;
	struct sub		*s;

	if (c == NULL)
		return;
	client_lock(c);
	if (c->cb_depth > 0) {
		/* From now on no callback: the application is done. */
		c->freeing = 1;
		for (s = c->subs; s != NULL; s = s->next)
			s->removed = 1;
		for (m = c->mirrors; m != NULL; m = m->next)
			mirror_silence(m);
		c->on_error = NULL;
		c->on_state = NULL;
		c->on_closed = NULL;
		client_unlock(c);
		return;
	}
	client_unlock(c);
	isp_stop(c);
	client_destroy(c);
}

void
client_destroy(struct isp_client *c)
{
	struct isp_mirror	*m, *mnext;
	struct sub		*s, *snext;
	struct conn		*cn;
	unsigned		 i;

	client_lock(c);
	for (i = 0; i < c->nconns; i++) {
		cn = &c->conns[i];
		if (client_conn_usable(cn)) {
			/* Best effort: tell ispd this is an orderly close.
			 * What the socket does not take now is lost;
			 * isp_sync() first when it matters. */
			proto_put_bye(&cn->out, ISP_OK, "client closing");
			if (!buf_failed(&cn->out))
				wire_flush(cn);
		}
		conn_release(cn);
		free(cn->server);
	}
	for (m = c->mirrors; m != NULL; m = mnext) {
		mnext = m->next;
		mirror_destroy(m);
	}
	for (m = c->doomed; m != NULL; m = mnext) {
		mnext = m->next;
		mirror_destroy(m);
	}
	if (c->evfd != -1)
		close(c->evfd);
	for (s = c->subs; s != NULL; s = snext) {
		snext = s->next;
		free(s->prefix);
		free(s);
	}
	intent_free_all(c);
	buf_free(&c->scratch);
	buf_free(&c->frame);
	if (c->epfd != -1)
		close(c->epfd);
	options_free(c);
	client_unlock(c);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->conns);
	free(c->name);
	free(c);
}

/*
 * Copied under the client's lock, which every writer of errmsg holds:
 * in mode 3 the library thread and other threads write it, and a
 * reader of the buffer itself could see half of one sentence and half
 * of the next.
 */
const char *
isp_errmsg(const isp_client *c)
{
	static _Thread_local char	 copy[CLIENT_ERRMSG_BYTES];

	if (c == NULL)
		return "no client (isp_new() returned NULL)";
	client_lock(c);
	memcpy(copy, c->errmsg, sizeof(copy));
	client_unlock(c);
	return copy;
}

/* The first server in the list with a session up, else the first that
 * had one. */
static const struct conn *
client_main_conn(const struct isp_client *c)
{
	unsigned	 i;

	for (i = 0; i < c->nconns; i++)
		if (c->conns[i].state == CONN_READY)
			return &c->conns[i];
	for (i = 0; i < c->nconns; i++)
		if (c->conns[i].session_id != 0)
			return &c->conns[i];
	return &c->conns[0];
}

uint64_t
isp_session_id(const isp_client *c)
{
	uint64_t	 id;

	if (c == NULL)
		return 0;
	client_lock(c);
	id = client_main_conn(c)->session_id;
	client_unlock(c);
	return id;
}

uint32_t
isp_hold_ms(const isp_client *c)
{
	uint32_t	 hold;

	if (c == NULL)
		return 0;
	client_lock(c);
	hold = client_main_conn(c)->hold_ms;
	client_unlock(c);
	return hold;
}

unsigned
isp_servers_up(const isp_client *c)
{
	unsigned	 n;

	if (c == NULL)
		return 0;
	client_lock(c);
	n = client_nup(c);
	client_unlock(c);
	return n;
}
