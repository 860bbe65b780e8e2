/*
 * conn: one server and the session with it. Dialing never blocks (the
 * application's loop, or the library thread, drives it like any other
 * socket), so a dead reflector costs a client nothing but a timer. When
 * a session is lost, what depended on it is told (waiters,
 * subscriptions, mirrors), and with reconnect the next attempt is
 * scheduled by the backoff of isp.h; when a session comes up, the
 * records the client holds and its subscriptions are sent again.
 */
#include <sys/epoll.h>
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
#include <unistd.h>

#include "lib.h"

/* splitmix64 (Steele, Lea, Flood 2014): a tiny generator that is good
 * enough for jitter and needs no global state. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t	 z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int
backoff_delay_ms(unsigned n, int min_ms, int max_ms, uint64_t *rng)
{
	int64_t		 b, spread, j;

	if (min_ms < 1)
		min_ms = 1;
	if (max_ms < min_ms)
		max_ms = min_ms;
	b = min_ms;
	while (n-- > 0 && b < max_ms)
		b *= 2;
	if (b > max_ms)
		b = max_ms;
	spread = b * ISP_BACKOFF_JITTER_PCT / 100;
	j = (int64_t)(rng_next(rng) % (uint64_t)(2 * spread + 1)) - spread;
	return (int)(b + j);
}

void
conn_update_events(struct conn *cn)
{
	struct epoll_event	 ev;
	uint32_t		 want;
	int			 op;

	if (cn->fd == -1)
		return;
	want = cn->state == CONN_DIALING ? EPOLLOUT :
	    EPOLLIN | (wire_pending(cn) > 0 ? EPOLLOUT : 0);
	/* A TLS handshake waits for one direction only. */
	if (cn->ssl != NULL && !cn->tls_done && cn->state != CONN_DIALING)
		want = cn->tls_want_write ? EPOLLOUT : EPOLLIN;
	if (want == cn->ep_events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.u32 = cn->idx;
	op = cn->ep_events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	/* Failing here only costs a wakeup: every pass also reads each
	 * socket and the timeouts bound every wait. */
	if (epoll_ctl(cn->c->epfd, op, cn->fd, &ev) == 0)
		cn->ep_events = want;
}

/* Closes the socket and forgets the attempt; buffers are emptied. */
static void
conn_close(struct conn *cn)
{
	ctls_close(cn);
	if (cn->fd != -1) {
		if (cn->ep_events != 0)
			(void)epoll_ctl(cn->c->epfd, EPOLL_CTL_DEL, cn->fd,
			    NULL);
		close(cn->fd);
	}
	cn->fd = -1;
	cn->ep_events = 0;
	if (cn->ai_list != NULL)
		freeaddrinfo(cn->ai_list);
	cn->ai_list = cn->ai_next = NULL;
	cn->out.len = cn->out_off = 0;
	cn->in.len = 0;
	cn->dead_err = 0;
	cn->fatal_err = 0;
}

void
conn_release(struct conn *cn)
{
	conn_close(cn);
	buf_free(&cn->in);
	buf_free(&cn->out);
}

void
conn_attach(struct conn *cn, int fd)
{
	int	 flags;
	size_t	 mark;

	cn->fd = fd;
	cn->state = CONN_HANDSHAKE;
	if (cn->ai_list != NULL)
		freeaddrinfo(cn->ai_list);
	cn->ai_list = cn->ai_next = NULL;
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		conn_end(cn, ISP_E_SYS, "cannot set up the socket to %s: %s",
		    cn->addr, strerror(errno));
		return;
	}
	cn->last_recv_ms = cn->last_send_ms = client_now_ms();
	cn->last_ping_ms = cn->last_recv_ms;
	cn->last_taken_ms = 0;
	cn->out_full = 0;
	/* The HELLO waits behind the TLS handshake. */
	if (cn->c->tls && ctls_start(cn) != ISP_OK) {
		conn_end(cn, ISP_E_NOMEM, "out of memory starting TLS with %s",
		    cn->addr);
		return;
	}
	mark = cn->out.len;
	/* Every client may say END_OF_REPLAY (isp_replay_done()); the
	 * server's WELCOME tells whether it understands it. */
	proto_put_hello(&cn->out, PROTO_VERSION, PROTO_CAP_REPLAY |
	    PROTO_CAP_OWNER_GONE |
	    (cn->c->secret != NULL ? PROTO_CAP_AUTH : PROTO_CAPS),
	    cn->c->name);
	if (wire_queued(cn, mark) != ISP_OK) {
		conn_end(cn, ISP_E_NOMEM, "out of memory");
		return;
	}
	conn_update_events(cn);
}

static void
conn_connected(struct conn *cn, int fd)
{
	int	 one = 1;

	/* Requests are small and latency matters more than packet count;
	 * the output queue already coalesces what is written together. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn_attach(cn, fd);
}

/* Tries the remaining addresses in turn; each connect(2) either
 * completes, is in progress (DIALING), or fails at once. */
static void
conn_dial_next(struct conn *cn)
{
	struct addrinfo	*ai;
	int		 fd, lasterr;

	while ((ai = cn->ai_next) != NULL) {
		cn->ai_next = ai->ai_next;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			cn->ai_err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			conn_connected(cn, fd);
			return;
		}
		if (errno != EINPROGRESS) {
			cn->ai_err = errno;
			close(fd);
			continue;
		}
		cn->fd = fd;
		cn->state = CONN_DIALING;
		conn_update_events(cn);
		return;
	}
	lasterr = cn->ai_err;
	conn_end(cn, ISP_E_CONNECT, "cannot connect to %s: %s%s", cn->addr,
	    strerror(lasterr), lasterr == ECONNREFUSED ?
	    " (is ispd running?)" : "");
}

void
conn_dial(struct conn *cn)
{
	struct addrinfo	 hints, *res;
	int		 rc;

	cn->state = CONN_DIALING;	/* live, so conn_end() applies */
	cn->fd = -1;
	cn->deadline_ms = client_now_ms() +
	    (uint64_t)cn->c->connect_timeout_ms;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	/* A host name is resolved again at each attempt, so a changed DNS
	 * record takes effect; getaddrinfo() may block meanwhile. */
	if ((rc = getaddrinfo(cn->host, cn->port, &hints, &res)) != 0) {
		conn_end(cn, ISP_E_CONNECT, "cannot resolve host \"%s\": %s",
		    cn->host, rc == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(rc));
		return;
	}
	cn->ai_list = cn->ai_next = res;
	cn->ai_err = ECONNREFUSED;
	conn_dial_next(cn);
}

void
conn_dial_check(struct conn *cn)
{
	struct pollfd	 pfd;
	socklen_t	 sl;
	int		 soerr = 0, rc;

	if (cn->state != CONN_DIALING || cn->fd == -1)
		return;
	pfd.fd = cn->fd;
	pfd.events = POLLOUT;
	pfd.revents = 0;
	do {
		rc = poll(&pfd, 1, 0);
	} while (rc == -1 && errno == EINTR);
	if (rc == 0)
		return;
	sl = sizeof(soerr);
	if (rc == -1)
		soerr = errno;
	else if (getsockopt(cn->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		soerr = errno;
	if (soerr == 0) {
		if (cn->ep_events != 0)
			(void)epoll_ctl(cn->c->epfd, EPOLL_CTL_DEL, cn->fd,
			    NULL);
		cn->ep_events = 0;
		conn_connected(cn, cn->fd);
		return;
	}
	cn->ai_err = soerr;
	if (cn->ep_events != 0)
		(void)epoll_ctl(cn->c->epfd, EPOLL_CTL_DEL, cn->fd, NULL);
	close(cn->fd);
	cn->fd = -1;
	cn->ep_events = 0;
	conn_dial_next(cn);
}

static void
conn_tell_state(struct conn *cn, int up, int retry_ms)
{
	struct isp_client	*c = cn->c;
	struct isp_server_event	 e;

	if (c->on_state == NULL || c->connecting)
		return;
	memset(&e, 0, sizeof(e));
	e.server = cn->server;
	e.index = cn->idx;
	e.up = up;
	e.err = up ? ISP_OK : cn->end_err;
	e.why = up ? "" : cn->end_why;
	e.session_id = up ? cn->session_id : 0;
	e.attempt = cn->attempt;
	e.retry_ms = up ? 0 : retry_ms;
	e.nup = client_nup(c);
	c->cb_depth++;
	c->on_state(c, &e, c->arg);
	c->cb_depth--;
}

/* Queues END_OF_REPLAY on cn. ISP_OK or ISP_E_NOMEM. */
static int
conn_end_of_replay(struct conn *cn, uint32_t req_id)
{
	size_t	 mark = cn->out.len;

	proto_put_end_of_replay(&cn->out, req_id);
	return wire_queued(cn, mark);
}

void
conn_up(struct conn *cn)
{
	struct isp_client	*c = cn->c;
	struct sub		*s;

	cn->state = CONN_READY;
	cn->attempt = 0;
	cn->draining = 0;
	/* What this client holds and watches, again: a restarted
	 * reflector has forgotten it, and a reflector that kept running
	 * ended the old session and withdrew its records. */
	if (c->reconnect && intent_replay(cn) != ISP_OK) {
		conn_end(cn, ISP_E_NOMEM, "out of memory announcing the "
		    "records again to %s", cn->addr);
		return;
	}
	/* After a reconnect, the replay is all this client holds: what the
	 * lost session left held and was not announced again can go
	 * (graceful restart, docs/HA.md). Not after the first connect (a
	 * restarted program announces its records after it) unless the
	 * program said so already, and not from a client that never
	 * announced: it is not the publisher of that name. */
	if (c->reconnect && (cn->caps & PROTO_CAP_REPLAY) &&
	    ((cn->was_up && c->announced) || c->replay_done) &&
	    conn_end_of_replay(cn, 0) != ISP_OK) {
		conn_end(cn, ISP_E_NOMEM, "out of memory");
		return;
	}
	cn->was_up = 1;
	for (s = c->subs; s != NULL && cn->state == CONN_READY; s = s->next) {
		if (s->removed || ((s->flags & ISP_SUB_ONCE) && s->sent))
			continue;
		(void)client_sub_send(cn, s);
	}
	/* Subscriptions made with ISP_SUB_ONCE while no session was up are
	 * sent to the first one that comes, and only there. */
	for (s = c->subs; s != NULL; s = s->next)
		if (s->sc[cn->idx].active)
			s->sent = 1;
	if (cn->state != CONN_READY)
		return;
	conn_update_events(cn);
	conn_tell_state(cn, 1, 0);
}

/* What depended on a session that is gone: waiters, subscriptions and
 * the mirrors they feed. */
static void
conn_lost(struct conn *cn, uint64_t now)
{
	struct isp_client	*c = cn->c;
	struct isp_event	 ev;
	struct waiter		*w;
	struct sub		*s;
	struct sub_conn		*sc;
	uint32_t		 bit = 1u << cn->idx;
	int			 active, i, any, quiet;

	for (w = c->waiters; w != NULL; w = w->next) {
		if (w->done || !(w->pending & bit))
			continue;
		w->pending &= ~bit;
		if (w->kind == WAIT_ROWS || (w->pending == 0 &&
		    w->answered == 0))
			client_waiter_done(c, w, cn->end_err, cn->end_why);
		else if (w->pending == 0)
			client_waiter_done(c, w, ISP_OK, NULL);
	}
	/* A server that said GOING_DOWN while another is up: the others
	 * hold what it held, so its close is no news to the application. */
	for (i = 0, quiet = 0; cn->draining && i < (int)c->nconns; i++)
		quiet |= &c->conns[i] != cn &&
		    client_conn_usable(&c->conns[i]) && !c->conns[i].draining;
	for (s = c->subs; s != NULL; s = s->next) {
		sc = &s->sc[cn->idx];
		active = sc->active && !s->removed;
		sc->active = sc->ended = 0;
		sc->drain_token = sc->wait_token = 0;
		if (!active)
			continue;
		if (s->mirror != NULL) {
			mirror_server_lost(s->mirror, cn->idx, now, quiet);
		} else if (!c->legacy && !(s->flags & ISP_SUB_ONCE) &&
		    !quiet) {
			memset(&ev, 0, sizeof(ev));
			ev.type = ISP_EV_STALE;
			ev.table = s->table;
			ev.server = cn->server;
			ev.server_index = cn->idx;
			client_sub_deliver(c, s, &ev);
		}
		if (s->flags & ISP_SUB_ONCE) {
			for (i = 0, any = 0; i < (int)c->nconns; i++)
				any |= s->sc[i].active;
			if (!any)
				client_sub_remove(c, s);
		}
	}
}

void
conn_end(struct conn *cn, int err, const char *fmt, ...)
{
	struct isp_client	*c = cn->c;
	va_list			 ap;
	uint64_t		 now;
	unsigned		 i;
	int			 was_up, retry_ms, alive;

	if (!conn_live(cn))
		return;
	va_start(ap, fmt);
	vsnprintf(cn->end_why, sizeof(cn->end_why), fmt, ap);
	va_end(ap);
	cn->end_err = err;
	snprintf(c->errmsg, sizeof(c->errmsg), "%s", cn->end_why);
	was_up = cn->state == CONN_READY;
	conn_close(cn);
	now = client_now_ms();
	if (was_up)
		cn->attempt = 0;
	else
		cn->attempt++;
	if (c->reconnect) {
		retry_ms = backoff_delay_ms(cn->attempt, c->backoff_min_ms,
		    c->backoff_max_ms, &c->rng);
		cn->retry_at_ms = now + (uint64_t)retry_ms;
		cn->state = CONN_IDLE;
	} else {
		retry_ms = -1;
		cn->state = CONN_DOWN;
	}
	/* Threads waiting in isp_sync() or a query look again. */
	pthread_cond_broadcast(&c->cond);
	if (was_up)
		conn_lost(cn, now);
	cn->draining = 0;
	conn_tell_state(cn, 0, retry_ms);
	if (c->connecting || c->reconnect || c->state != CLIENT_READY)
		return;
	for (i = 0, alive = 0; i < c->nconns; i++)
		alive |= conn_live(&c->conns[i]);
	if (alive)
		return;
	c->state = CLIENT_ENDED;
	c->end_err = err;
	snprintf(c->end_why, sizeof(c->end_why), "%s", cn->end_why);
	if (c->on_closed != NULL) {
		c->cb_depth++;
		c->on_closed(c, err, c->end_why, c->arg);
		c->cb_depth--;
	}
}

void
conn_timers(struct conn *cn, uint64_t now)
{
	struct isp_client	*c = cn->c;

	switch (cn->state) {
	case CONN_DIALING:
		if (now >= cn->deadline_ms)
			conn_end(cn, ISP_E_TIMEOUT, "cannot connect to %s: no "
			    "answer within %d ms (is the address right and "
			    "reachable?)", cn->addr, c->connect_timeout_ms);
		break;
	case CONN_HANDSHAKE:
		if (now >= cn->deadline_ms)
			conn_end(cn, ISP_E_TIMEOUT, "connected to %s but got "
			    "no answer to HELLO within %d ms (is it ispd?)",
			    cn->addr, c->connect_timeout_ms);
		break;
	case CONN_READY:
		wire_keepalive(cn);
		break;
	case CONN_IDLE:
		if (c->reconnect && c->state == CLIENT_READY &&
		    !c->connecting && now >= cn->retry_at_ms)
			conn_dial(cn);
		break;
	case CONN_DOWN:
		break;
	}
}
