/*
 * wire: the wire side of a client. Frames in (checked, decoded,
 * dispatched to subscriptions, queries and callbacks), frames out (a
 * queue written as far as the socket takes it), keepalives, and the one
 * place where a session ends.
 */
#include <sys/socket.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"

static int
wire_live(const struct isp_client *c)
{
	return c->state == CLIENT_HANDSHAKE || c->state == CLIENT_READY;
}

void
wire_end(struct isp_client *c, int err, const char *fmt, ...)
{
	va_list	 ap;

	if (!wire_live(c))
		return;
	va_start(ap, fmt);
	vsnprintf(c->end_why, sizeof(c->end_why), fmt, ap);
	va_end(ap);
	c->end_err = err;
	snprintf(c->errmsg, sizeof(c->errmsg), "%s", c->end_why);
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->out.len = c->out_off = 0;
	c->in.len = 0;
	if (c->state == CLIENT_HANDSHAKE) {
		/* No session was ever up: isp_connect() reports it. */
		c->state = CLIENT_FAILED;
		return;
	}
	c->state = CLIENT_ENDED;
	/* Threads waiting in isp_sync() or a query see the end. */
	pthread_cond_broadcast(&c->cond);
	if (c->on_closed != NULL) {
		c->cb_depth++;
		c->on_closed(c, err, c->end_why, c->arg);
		c->cb_depth--;
	}
}

size_t
wire_pending(const struct isp_client *c)
{
	return c->out.len - c->out_off;
}

void
wire_flush(struct isp_client *c)
{
	ssize_t	 n;

	while (c->fd != -1 && c->dead_err == 0 && wire_pending(c) > 0) {
		n = send(c->fd, c->out.data + c->out_off, wire_pending(c),
		    MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			c->last_send_ms = client_now_ms();
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* Ended by the next pass through the loop, which may first
		 * read a better reason (BYE, ERROR) from the socket. */
		c->dead_err = ISP_E_CLOSED;
		snprintf(c->dead_why, sizeof(c->dead_why),
		    "connection to ispd at %s lost: %s", c->addr,
		    n == 0 ? "nothing written" : strerror(errno));
	}
	if (c->out_off == c->out.len) {
		c->out.len = c->out_off = 0;
	} else if (c->out_off > c->out.len / 2) {
		/* Compact only when the sent part dominates, so a slow
		 * socket costs O(1) amortised per byte. */
		buf_consume(&c->out, c->out_off);
		c->out_off = 0;
	}
}

int
wire_queued(struct isp_client *c, size_t mark)
{
	if (buf_failed(&c->out)) {
		c->out.len = mark;
		buf_clear_failed(&c->out);
		return client_seterr(c, ISP_E_NOMEM,
		    "out of memory queuing a request");
	}
	wire_flush(c);
	if (wire_pending(c) > 0 || c->dead_err != 0)
		thread_wake(c);
	return ISP_OK;
}

uint64_t
wire_token(struct isp_client *c)
{
	return c->next_token++;
}

struct sub *
client_sub_find(struct isp_client *c, const void *table, size_t len)
{
	struct sub	*s;

	for (s = c->subs; s != NULL; s = s->next)
		if (!s->removed && s->table_len == len &&
		    memcmp(s->table, table, len) == 0)
			return s;
	return NULL;
}

void
client_sub_remove(struct isp_client *c, struct sub *s)
{
	s->removed = 1;
	if (c->cb_depth == 0)
		client_sub_reap(c);
}

void
client_sub_reap(struct isp_client *c)
{
	struct sub	**pp, *s;

	pp = &c->subs;
	while ((s = *pp) != NULL) {
		if (s->removed && s->drain_token == 0) {
			*pp = s->next;
			free(s);
		} else
			pp = &s->next;
	}
}

void
client_sub_drained(struct isp_client *c, uint64_t token)
{
	struct sub	*s;

	for (s = c->subs; s != NULL; s = s->next) {
		if (s->drain_token == token)
			s->drain_token = 0;
		if (s->wait_token == token)
			s->wait_token = 0;
	}
}

static struct waiter *
waiter_find(struct isp_client *c, enum waiter_kind kind, uint64_t id)
{
	struct waiter	*w;

	for (w = c->waiters; w != NULL; w = w->next)
		if (w->kind == kind && w->id == id && !w->done)
			return w;
	return NULL;
}

static void
waiter_done(struct isp_client *c, struct waiter *w, int err)
{
	w->done = 1;
	w->err = err;
	pthread_cond_broadcast(&c->cond);
}

/* Copies len bytes and a NUL into the scratch area, which the caller
 * reserved room in beforehand so that earlier pointers stay valid. */
static char *
scratch_put(struct buf *s, const void *p, size_t len)
{
	char	*d = (char *)s->data + s->len;

	if (len > 0)
		memcpy(d, p, len);
	d[len] = '\0';
	s->len += len + 1;
	return d;
}

/* Makes room for a frame's strings: every byte of block plus a NUL per
 * string, for up to nstr strings. */
static int
scratch_reserve(struct isp_client *c, size_t bytes, size_t nstr)
{
	c->scratch.len = 0;
	if (buf_reserve(&c->scratch, bytes + nstr) == -1) {
		wire_end(c, ISP_E_NOMEM, "out of memory for a frame of %zu "
		    "bytes from ispd at %s", bytes, c->addr);
		return -1;
	}
	return 0;
}

/* Fills c->sfields from an encoded fields block the decoder accepted. */
static size_t
fields_copy(struct isp_client *c, struct proto_bytes block)
{
	struct proto_field_iter	 it;
	struct proto_field	 f;
	size_t			 n = 0;

	proto_fields_iter(&it, block);
	while (n < PROTO_MAX_FIELDS && proto_fields_next(&it, &f)) {
		c->sfields[n].name = scratch_put(&c->scratch, f.name.p,
		    f.name.len);
		c->sfields[n].value = scratch_put(&c->scratch, f.value.p,
		    f.value.len);
		c->sfields[n].value_len = f.value.len;
		n++;
	}
	return n;
}

static void
text_copy(char *dst, size_t dstsz, struct proto_bytes t)
{
	size_t	 n = t.len < dstsz - 1 ? t.len : dstsz - 1;

	if (n > 0)
		memcpy(dst, t.p, n);
	dst[n] = '\0';
}

static void
on_welcome(struct isp_client *c, const struct proto_msg *m)
{
	if (m->version != PROTO_VERSION) {
		wire_end(c, ISP_E_VERSION, "ispd at %s speaks protocol "
		    "version %u, this library speaks %d (upgrade the older "
		    "one)", c->addr, m->version, PROTO_VERSION);
		return;
	}
	c->hold_ms = m->hold_ms;
	c->session_id = m->session_id;
	c->caps = m->caps;
	c->state = CLIENT_READY;
}

/* Codes after which ispd closes the session (see isp.h). */
static int
error_fatal(int code)
{
	switch (code) {
	case ISP_E_PROTOCOL:
	case ISP_E_VERSION:
	case ISP_E_FRAME_TOO_LARGE:
	case ISP_E_NOT_READY:
	case ISP_E_BAD_REQUEST:
		return 1;
	default:
		return 0;
	}
}

static void
on_error(struct isp_client *c, const struct proto_msg *m)
{
	char		 reason[PROTO_MAX_STR_BYTES + 1];
	struct waiter	*w;
	struct sub	*s;
	int		 code = m->code != 0 ? m->code : ISP_E_PROTOCOL;

	text_copy(reason, sizeof(reason), m->text);
	if (c->state == CLIENT_HANDSHAKE) {
		wire_end(c, code, "ispd at %s refused the session: %s (%s)",
		    c->addr, reason, isp_strerror(code));
		return;
	}
	if (m->req_id != 0) {
		/* A query waits for it: its caller gets the code. */
		if ((w = waiter_find(c, WAIT_ROWS, m->req_id)) != NULL) {
			client_seterr(c, code, "ispd refused the query: %s",
			    reason);
			waiter_done(c, w, code);
			return;
		}
		/* A refused SUBSCRIBE leaves no subscription on the server;
		 * drop ours so the table can be subscribed again. */
		for (s = c->subs; s != NULL; s = s->next) {
			if (!s->removed && s->req_id == m->req_id) {
				client_sub_remove(c, s);
				break;
			}
		}
	} else if (error_fatal(code)) {
		c->fatal_err = code;
		snprintf(c->fatal_why, sizeof(c->fatal_why),
		    "ispd at %s ended the session: %.300s (%s)", c->addr,
		    reason, isp_strerror(code));
	}
	if (c->on_error != NULL) {
		c->cb_depth++;
		c->on_error(c, m->req_id, code, reason, c->arg);
		c->cb_depth--;
	}
}

static void
on_bye(struct isp_client *c, const struct proto_msg *m)
{
	char	 reason[PROTO_MAX_STR_BYTES + 1];
	int	 code = m->code != 0 ? m->code : ISP_E_CLOSED;

	text_copy(reason, sizeof(reason), m->text);
	wire_end(c, code, "ispd at %s ended the session: %s (%s)", c->addr,
	    reason[0] != '\0' ? reason : "no reason given",
	    isp_strerror(code));
}

static void
on_event(struct isp_client *c, const struct proto_msg *m)
{
	struct isp_event	 ev;
	struct sub		*s;

	if ((s = client_sub_find(c, m->table.p, m->table.len)) == NULL)
		return;		/* unsubscribed meanwhile */
	if (s->wait_token != 0)
		return;		/* the previous subscription's */
	if (scratch_reserve(c, m->table.len + m->key.len + m->owner.len +
	    m->fields.len, 3 + 2 * (size_t)m->nfields) == -1)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.table = scratch_put(&c->scratch, m->table.p, m->table.len);
	ev.seq = m->seq;
	switch (m->type) {
	case PROTO_EV_ANNOUNCE:
	case PROTO_EV_REPLACE:
		ev.type = m->type == PROTO_EV_ANNOUNCE ? ISP_EV_ANNOUNCE :
		    ISP_EV_REPLACE;
		ev.rec.nfields = fields_copy(c, m->fields);
		ev.rec.fields = ev.rec.nfields > 0 ? c->sfields : NULL;
		break;
	case PROTO_EV_WITHDRAW:
		ev.type = ISP_EV_WITHDRAW;
		ev.reason = m->reason;
		break;
	case PROTO_EV_END:
		ev.type = ISP_EV_END;
		ev.count = m->count;
		break;
	}
	if (ev.type != ISP_EV_END) {
		ev.rec.key = scratch_put(&c->scratch, m->key.p, m->key.len);
		ev.rec.key_len = m->key.len;
		ev.rec.owner = scratch_put(&c->scratch, m->owner.p,
		    m->owner.len);
		ev.rec.owner_session = m->owner_session;
		ev.rec.seq = m->seq;
		ev.snapshot = !s->ended;
	} else
		s->ended = 1;

	c->cb_depth++;
	s->cb(c, &ev, s->arg);
	c->cb_depth--;
	/* With ISP_SUB_ONCE ispd ends the subscription after END itself. */
	if (ev.type == ISP_EV_END && (s->flags & ISP_SUB_ONCE))
		client_sub_remove(c, s);
}

static void
on_rows(struct isp_client *c, const struct proto_msg *m)
{
	struct proto_bytes	 rows = m->rows, row;
	struct waiter		*w;
	size_t			 n;

	if ((w = waiter_find(c, WAIT_ROWS, m->req_id)) == NULL)
		return;		/* its caller gave up waiting */
	while (proto_rows_next(&rows, &row)) {
		if (scratch_reserve(c, row.len, 2 * PROTO_MAX_FIELDS) == -1)
			return;
		n = fields_copy(c, row);
		if (w->row_cb != NULL) {
			c->cb_depth++;
			w->row_cb(n > 0 ? c->sfields : NULL, n, w->arg);
			c->cb_depth--;
		}
	}
	waiter_done(c, w, ISP_OK);
}

static void
send_pong(struct isp_client *c, uint64_t token)
{
	size_t	 mark = c->out.len;

	proto_put_ping(&c->out, PROTO_PONG, token);
	if (wire_queued(c, mark) != ISP_OK)
		wire_end(c, ISP_E_NOMEM, "out of memory answering a PING");
}

static void
wire_dispatch(struct isp_client *c, const uint8_t *frame, size_t len)
{
	struct proto_msg	 m;
	struct waiter		*w;
	const char		*why;
	int			 rc;

	rc = proto_decode(frame, len, &m, &why);
	/* A type this version does not know: the framing is intact, so
	 * skipping it is safe, and a newer ispd may add informational
	 * frames without breaking old clients. */
	if (rc == ISP_E_UNKNOWN_TYPE)
		return;
	if (rc != 0) {
		wire_end(c, ISP_E_PROTOCOL, "ispd at %s sent a malformed "
		    "%s frame (%s)", c->addr, proto_type_name(frame[4]), why);
		return;
	}
	if (c->state == CLIENT_HANDSHAKE) {
		switch (m.type) {
		case PROTO_WELCOME:
			on_welcome(c, &m);
			break;
		case PROTO_ERROR:
			on_error(c, &m);
			break;
		case PROTO_BYE:
			on_bye(c, &m);
			break;
		case PROTO_PING:
			send_pong(c, m.token);
			break;
		default:
			wire_end(c, ISP_E_PROTOCOL, "%s sent %s before "
			    "WELCOME (is it ispd?)", c->addr,
			    proto_type_name(m.type));
			break;
		}
		return;
	}
	switch (m.type) {
	case PROTO_PING:
		send_pong(c, m.token);
		break;
	case PROTO_PONG:
		if ((w = waiter_find(c, WAIT_PONG, m.token)) != NULL)
			waiter_done(c, w, ISP_OK);
		client_sub_drained(c, m.token);
		break;
	case PROTO_ERROR:
		on_error(c, &m);
		break;
	case PROTO_BYE:
		on_bye(c, &m);
		break;
	case PROTO_EV_ANNOUNCE:
	case PROTO_EV_REPLACE:
	case PROTO_EV_WITHDRAW:
	case PROTO_EV_END:
		on_event(c, &m);
		break;
	case PROTO_ROWS:
		on_rows(c, &m);
		break;
	default:
		wire_end(c, ISP_E_PROTOCOL, "ispd at %s sent a %s frame, "
		    "which only clients send", c->addr,
		    proto_type_name(m.type));
		break;
	}
	if (c->cb_depth == 0)
		client_sub_reap(c);
}

/* Delivers every whole frame in the input buffer. */
static void
wire_input(struct isp_client *c)
{
	size_t		 off = 0, n;
	uint32_t	 len;
	int		 r;

	while (wire_live(c)) {
		r = proto_frame_check(c->in.data + off, c->in.len - off,
		    PROTO_MAX_FRAME_BYTES, &n);
		if (r == 0)
			break;
		if (r == -1) {
			len = get_be32(c->in.data + off);
			if (len == 0)
				wire_end(c, ISP_E_PROTOCOL, "ispd at %s "
				    "sent a frame of length 0", c->addr);
			else
				wire_end(c, ISP_E_FRAME_TOO_LARGE, "ispd "
				    "at %s sent a frame of %u bytes, over the "
				    "limit of %u", c->addr, len,
				    PROTO_MAX_FRAME_BYTES);
			return;
		}
		wire_dispatch(c, c->in.data + off, n);
		off += n;
	}
	if (wire_live(c))
		buf_consume(&c->in, off);
}

static void
wire_eof(struct isp_client *c, int err)
{
	if (c->fatal_err != 0)
		wire_end(c, c->fatal_err, "%s", c->fatal_why);
	else if (c->state == CLIENT_HANDSHAKE)
		wire_end(c, ISP_E_CLOSED, "%s closed the connection during "
		    "the handshake%s%s (is it ispd?)", c->addr,
		    err ? ": " : "", err ? strerror(err) : "");
	else if (err != 0)
		wire_end(c, ISP_E_CLOSED, "connection to ispd at %s lost: "
		    "%s", c->addr, strerror(err));
	else
		wire_end(c, ISP_E_CLOSED, "ispd at %s closed the "
		    "connection", c->addr);
}

void
wire_read(struct isp_client *c)
{
	size_t	 need, room;
	ssize_t	 n;
	int	 i;

	for (i = 0; i < CLIENT_READS_PER_PASS && wire_live(c); i++) {
		/* What is left is part of a frame whose header
		 * wire_input() checked against the limit already. */
		need = CLIENT_READ_CHUNK_BYTES;
		if (c->in.len >= 4 &&
		    get_be32(c->in.data) + 4 - c->in.len > need)
			need = get_be32(c->in.data) + 4 - c->in.len;
		if (buf_reserve(&c->in, need) == -1) {
			wire_end(c, ISP_E_NOMEM, "out of memory reading "
			    "from ispd at %s", c->addr);
			return;
		}
		room = c->in.cap - c->in.len;
		n = recv(c->fd, c->in.data + c->in.len, room, 0);
		if (n > 0) {
			c->in.len += (size_t)n;
			c->last_recv_ms = client_now_ms();
			wire_input(c);
			if ((size_t)n < room)
				return;		/* the socket is drained */
			continue;
		}
		if (n == 0) {
			wire_eof(c, 0);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		wire_eof(c, errno);
		return;
	}
}

void
wire_keepalive(struct isp_client *c)
{
	uint64_t	 now, every;
	size_t		 mark;

	if (c->state != CLIENT_READY || c->hold_ms == 0)
		return;
	now = client_now_ms();
	if (now - c->last_recv_ms >= c->hold_ms) {
		wire_end(c, ISP_E_TIMEOUT, "no answer from ispd at %s for "
		    "%u ms", c->addr, c->hold_ms);
		return;
	}
	/* Bytes still queued will reach ispd before a PING would. */
	every = c->hold_ms / 3 > 0 ? c->hold_ms / 3 : 1;
	if (wire_pending(c) == 0 && now - c->last_send_ms >= every) {
		mark = c->out.len;
		proto_put_ping(&c->out, PROTO_PING, wire_token(c));
		if (wire_queued(c, mark) != ISP_OK)
			wire_end(c, ISP_E_NOMEM, "out of memory for a "
			    "keepalive");
	}
}

int
wire_timeout_ms(const struct isp_client *c)
{
	uint64_t	 now, due, every;

	if (c->state != CLIENT_READY)
		return -1;
	if (c->dead_err != 0)
		return 0;
	if (c->hold_ms == 0)
		return -1;
	now = client_now_ms();
	due = c->last_recv_ms + c->hold_ms;
	every = c->hold_ms / 3 > 0 ? c->hold_ms / 3 : 1;
	if (wire_pending(c) == 0 && c->last_send_ms + every < due)
		due = c->last_send_ms + every;
	if (due <= now)
		return 0;
	return due - now > INT_MAX ? INT_MAX : (int)(due - now);
}

int
wire_process(struct isp_client *c)
{
	if (wire_live(c))
		wire_read(c);
	if (c->state == CLIENT_READY) {
		wire_flush(c);
		if (c->dead_err != 0)
			wire_end(c, c->dead_err, "%s", c->dead_why);
	}
	wire_keepalive(c);
	if (c->cb_depth == 0)
		client_sub_reap(c);
	return c->state == CLIENT_READY ? ISP_OK : c->end_err;
}
