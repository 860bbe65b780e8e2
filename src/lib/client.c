/*
 * client: creating a client, connecting it (address, socket,
 * handshake), freeing it, and what it tells about itself.
 */
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
client_check_ready(struct isp_client *c, const char *fn)
{
	switch (c->state) {
	case CLIENT_NEW:
	case CLIENT_HANDSHAKE:
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
	if (c->dead_err != 0)
		return client_seterr(c, ISP_E_STATE, "%s: the session has "
		    "ended (%s); make a new client", fn, c->dead_why);
	return ISP_OK;
}

void
isp_options_init(struct isp_options *o)
{
	memset(o, 0, sizeof(*o));
	o->server = ISP_DEFAULT_SERVER;
	o->name = CLIENT_DEFAULT_NAME;
	o->connect_timeout_ms = CLIENT_CONNECT_TIMEOUT_MS;
}

isp_client *
isp_new(const struct isp_options *opt)
{
	struct isp_options	 def;
	pthread_mutexattr_t	 ma;
	pthread_condattr_t	 ca;
	struct isp_client	*c;

	if (opt == NULL) {
		isp_options_init(&def);
		opt = &def;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->server = strdup(opt->server != NULL ? opt->server :
	    ISP_DEFAULT_SERVER);
	c->name = strdup(opt->name != NULL ? opt->name : CLIENT_DEFAULT_NAME);
	if (c->server == NULL || c->name == NULL)
		goto fail;
	c->connect_timeout_ms = opt->connect_timeout_ms > 0 ?
	    opt->connect_timeout_ms : CLIENT_CONNECT_TIMEOUT_MS;
	c->on_error = opt->on_error;
	c->on_closed = opt->on_closed;
	c->arg = opt->arg;

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
	c->fd = -1;
	c->evfd = -1;
	c->next_req_id = 1;
	c->next_token = 1;
	buf_init(&c->in);
	buf_init(&c->out);
	buf_init(&c->scratch);
	snprintf(c->addr, sizeof(c->addr), "%s", c->server);
	snprintf(c->errmsg, sizeof(c->errmsg), "no error");
	return c;

fail_mutex:
	pthread_mutex_destroy(&c->lock);
fail:
	free(c->server);
	free(c->name);
	free(c);
	return NULL;
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

/*
 * Tries each address in turn until one accepts, all bounded by
 * deadline_ms. Returns the connected socket, or -1 with the error set:
 * ISP_E_TIMEOUT when the time ran out, else ISP_E_CONNECT.
 */
static int
client_dial(struct isp_client *c, const char *host, const char *port,
    uint64_t deadline_ms, int *errp)
{
	struct addrinfo	 hints, *res, *ai;
	struct pollfd	 pfd;
	socklen_t	 sl;
	uint64_t	 now;
	int		 fd, rc, soerr, lasterr = ECONNREFUSED, timedout = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		*errp = client_seterr(c, ISP_E_CONNECT,
		    "cannot resolve host \"%s\": %s", host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			lasterr = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			goto connected;
		if (errno != EINPROGRESS) {
			lasterr = errno;
			close(fd);
			continue;
		}
		for (;;) {
			now = client_now_ms();
			pfd.fd = fd;
			pfd.events = POLLOUT;
			pfd.revents = 0;
			rc = poll(&pfd, 1, now >= deadline_ms ? 0 :
			    (int)(deadline_ms - now));
			if (rc == -1 && errno == EINTR)
				continue;
			break;
		}
		if (rc == 0) {
			timedout = 1;
			close(fd);
			break;
		}
		soerr = 0;
		sl = sizeof(soerr);
		if (rc == -1)
			soerr = errno;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
		    &sl) == -1)
			soerr = errno;
		if (soerr == 0)
			goto connected;
		lasterr = soerr;
		close(fd);
	}
	freeaddrinfo(res);
	if (timedout)
		*errp = client_seterr(c, ISP_E_TIMEOUT,
		    "cannot connect to %s: no answer within %d ms "
		    "(is the address right and reachable?)", c->addr,
		    c->connect_timeout_ms);
	else
		*errp = client_seterr(c, ISP_E_CONNECT,
		    "cannot connect to %s: %s%s", c->addr, strerror(lasterr),
		    lasterr == ECONNREFUSED ? " (is ispd running?)" : "");
	return -1;

connected:
	freeaddrinfo(res);
	return fd;
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

int
isp_connect(isp_client *c)
{
	char		 host[CLIENT_HOST_BYTES], port[CLIENT_PORT_BYTES];
	uint64_t	 deadline_ms;
	int		 fd, err, one = 1;

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
		goto out;
	}
	if (client_parse_addr(c->server, host, sizeof(host), port,
	    sizeof(port)) == -1) {
		err = client_seterr(c, ISP_E_INVALID, "invalid server address "
		    "\"%s\" (use HOST:PORT or [IPV6]:PORT)", c->server);
		goto out;
	}
	snprintf(c->addr, sizeof(c->addr), strchr(host, ':') != NULL ?
	    "[%s]:%s" : "%s:%s", host, port);
	deadline_ms = client_now_ms() + (uint64_t)c->connect_timeout_ms;
	if ((fd = client_dial(c, host, port, deadline_ms, &err)) == -1)
		goto out;
	/* Requests are small and latency matters more than packet count;
	 * the output queue already coalesces what is written together. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	err = client_handshake(c, fd, deadline_ms);
out:
	if (err != ISP_OK) {
		c->state = CLIENT_FAILED;
		c->end_err = err;
		snprintf(c->end_why, sizeof(c->end_why), "%s", c->errmsg);
	}
	client_unlock(c);
	return err;
}

int
client_handshake(struct isp_client *c, int fd, uint64_t deadline_ms)
{
	struct pollfd	 pfd;
	uint64_t	 now;
	size_t		 mark;
	int		 flags, rc;

	flags = fcntl(fd, F_GETFL);
	c->fd = fd;
	c->state = CLIENT_HANDSHAKE;
	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		wire_end(c, ISP_E_SYS, "cannot set up the socket to %s: %s",
		    c->addr, strerror(errno));
		return c->end_err;
	}
	c->last_recv_ms = c->last_send_ms = client_now_ms();

	mark = c->out.len;
	proto_put_hello(&c->out, PROTO_VERSION, PROTO_CAPS, c->name);
	if (wire_queued(c, mark) != ISP_OK) {
		wire_end(c, ISP_E_NOMEM, "out of memory");
		return c->end_err;
	}
	while (c->state == CLIENT_HANDSHAKE) {
		if (c->dead_err != 0) {
			wire_end(c, c->dead_err, "%s", c->dead_why);
			break;
		}
		now = client_now_ms();
		if (now >= deadline_ms) {
			wire_end(c, ISP_E_TIMEOUT, "connected to %s but got "
			    "no answer to HELLO within %d ms (is it ispd?)",
			    c->addr, c->connect_timeout_ms);
			break;
		}
		pfd.fd = c->fd;
		pfd.events = POLLIN | (wire_pending(c) ? POLLOUT : 0);
		pfd.revents = 0;
		rc = poll(&pfd, 1, (int)(deadline_ms - now));
		if (rc == -1 && errno != EINTR) {
			wire_end(c, ISP_E_SYS, "poll: %s", strerror(errno));
			break;
		}
		if (rc <= 0)
			continue;
		if (pfd.revents & POLLOUT)
			wire_flush(c);
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
			wire_read(c);
	}
	if (c->state != CLIENT_READY)
		return c->end_err;
	wire_flush(c);
	client_seterr(c, ISP_OK, "no error");
	return ISP_OK;
}

void
isp_free(isp_client *c)
{
	struct isp_mirror	*m, *mnext;
	struct sub		*s, *snext;

	if (c == NULL)
		return;
	isp_stop(c);
	client_lock(c);
	if (c->state == CLIENT_READY && c->dead_err == 0) {
		/* Best effort: tell ispd this is an orderly close. What the
		 * socket does not take now is lost; isp_sync() first when
		 * it matters. */
		proto_put_bye(&c->out, ISP_OK, "client closing");
		if (!buf_failed(&c->out))
			wire_flush(c);
	}
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	for (m = c->mirrors; m != NULL; m = mnext) {
		mnext = m->next;
		mirror_destroy(m);
	}
	for (s = c->subs; s != NULL; s = snext) {
		snext = s->next;
		free(s);
	}
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->scratch);
	client_unlock(c);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->server);
	free(c->name);
	free(c);
}

/*
 * The pointer stays valid until the client is freed; in mode 3 another
 * thread's failure may overwrite the text, so read it right after the
 * call that failed.
 */
const char *
isp_errmsg(const isp_client *c)
{
	if (c == NULL)
		return "no client (isp_new() returned NULL: out of memory)";
	return c->errmsg;
}

uint64_t
isp_session_id(const isp_client *c)
{
	uint64_t	 id;

	if (c == NULL)
		return 0;
	client_lock(c);
	id = c->session_id;
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
	hold = c->hold_ms;
	client_unlock(c);
	return hold;
}
