/*
 * wire: the wire side of a client's sessions. Frames in (checked,
 * decoded, dispatched to subscriptions, queries and callbacks), frames
 * out (a queue per server, written as far as its socket takes it),
 * keepalives, and the pass over every server that each run mode calls.
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

int
conn_live(const struct conn *cn)
{
	return cn->state == CONN_DIALING || cn->state == CONN_HANDSHAKE ||
	    cn->state == CONN_READY;
}

size_t
wire_pending(const struct conn *cn)
{
	return cn->out.len - cn->out_off;
}

/* send(2), through TLS when the session has it. */
static ssize_t
wire_send(struct conn *cn, const void *p, size_t n)
{
	if (cn->ssl != NULL)
		return ctls_write(cn, p, n);
	return send(cn->fd, p, n, MSG_NOSIGNAL);
}

void
wire_flush(struct conn *cn)
{
	ssize_t	 n;

	/* Nothing goes out before the TLS handshake: it goes first.
	 * Its failure ends the session in the next pass (wire_read()). */
	if (cn->ssl != NULL && !cn->tls_done && cn->dead_err == 0 &&
	    cn->state == CONN_HANDSHAKE) {
		switch (ctls_handshake(cn)) {
		case -1:
			cn->dead_err = ISP_E_TLS;
			snprintf(cn->dead_why, sizeof(cn->dead_why), "%s",
			    cn->tls_why);
			return;
		case 0:
			return;
		}
	}
	while (cn->fd != -1 && cn->state != CONN_DIALING &&
	    cn->dead_err == 0 && wire_pending(cn) > 0) {
		n = wire_send(cn, cn->out.data + cn->out_off,
		    wire_pending(cn));
		if (n > 0) {
			cn->out_off += (size_t)n;
			cn->last_send_ms = client_now_ms();
			if (cn->out_full) {
				cn->out_full = 0;
				cn->last_taken_ms = cn->last_send_ms;
			}
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			cn->out_full = 1;
			break;
		}
		/* Ended by the next pass through the loop, which may first
		 * read a better reason (BYE, ERROR) from the socket. */
		if (cn->ssl != NULL && n == -1 && errno == EPROTO) {
			cn->dead_err = ISP_E_TLS;
			snprintf(cn->dead_why, sizeof(cn->dead_why), "%s",
			    cn->tls_why);
			break;
		}
		/* After a session-fatal ERROR the close is ispd's answer:
		 * the ERROR is the reason, not the failed write. */
		if (cn->fatal_err != 0) {
			cn->dead_err = cn->fatal_err;
			snprintf(cn->dead_why, sizeof(cn->dead_why), "%s",
			    cn->fatal_why);
			break;
		}
		cn->dead_err = ISP_E_CLOSED;
		snprintf(cn->dead_why, sizeof(cn->dead_why),
		    "connection to ispd at %s lost: %s", cn->addr,
		    n == 0 ? "nothing written" : strerror(errno));
	}
	if (cn->out_off == cn->out.len) {
		cn->out.len = cn->out_off = 0;
	} else if (cn->out_off > cn->out.len / 2) {
		/* Compact only when the sent part dominates, so a slow
		 * socket costs O(1) amortised per byte. */
		buf_consume(&cn->out, cn->out_off);
		cn->out_off = 0;
	}
	conn_update_events(cn);
}

int
wire_due(const struct conn *cn)
{
	return cn->state == CONN_READY && (cn->dead_err != 0 ||
	    (wire_pending(cn) > 0 && !cn->out_full));
}

int
wire_queued(struct conn *cn, size_t mark)
{
	struct isp_client	*c = cn->c;
	int			 was_empty = mark == cn->out_off;

	if (buf_failed(&cn->out)) {
		cn->out.len = mark;
		buf_clear_failed(&cn->out);
		return client_seterr(c, ISP_E_NOMEM,
		    "out of memory queuing a request");
	}
	/*
	 * Batching: a READY session's requests wait for the end of the
	 * pass that runs the client, so a burst costs one send(2). Before
	 * READY (HELLO, the handshake) and past CLIENT_FLUSH_BYTES they go
	 * at once. A socket that said EAGAIN is written when epoll says it
	 * can take more.
	 */
	if (cn->state != CONN_READY ||
	    wire_pending(cn) >= CLIENT_FLUSH_BYTES) {
		wire_flush(cn);
		if (wire_pending(cn) > 0 || cn->dead_err != 0)
			thread_wake_other(c);
		return ISP_OK;
	}
	/* Mode 3: the library thread ends its pass with a flush; another
	 * thread wakes it once, when the queue stops being empty. */
	if (was_empty && !cn->out_full)
		thread_wake_other(c);
	return ISP_OK;
}

int
wire_put_frame(struct conn *cn, const struct buf *frame)
{
	size_t	 mark = cn->out.len;

	buf_put(&cn->out, frame->data, frame->len);
	return wire_queued(cn, mark);
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
	unsigned	 i;
	int		 draining;

	pp = &c->subs;
	while ((s = *pp) != NULL) {
		for (i = 0, draining = 0; s->removed && i < c->nconns; i++)
			draining |= s->sc[i].drain_token != 0;
		if (s->removed && !draining) {
			*pp = s->next;
			free(s->prefix);
			free(s);
		} else
			pp = &s->next;
	}
}

void
client_sub_drained(struct conn *cn, uint64_t token)
{
	struct sub	*s;

	for (s = cn->c->subs; s != NULL; s = s->next) {
		if (s->sc[cn->idx].drain_token == token)
			s->sc[cn->idx].drain_token = 0;
		if (s->sc[cn->idx].wait_token == token)
			s->sc[cn->idx].wait_token = 0;
	}
}

void
client_sub_deliver(struct isp_client *c, struct sub *s,
    const struct isp_event *ev)
{
	c->cb_depth++;
	s->cb(c, ev, s->arg);
	c->cb_depth--;
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

void
client_waiter_done(struct isp_client *c, struct waiter *w, int err,
    const char *why)
{
	w->done = 1;
	w->err = err;
	if (why != NULL)
		snprintf(w->why, sizeof(w->why), "%s", why);
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
scratch_reserve(struct conn *cn, size_t bytes, size_t nstr)
{
	struct isp_client	*c = cn->c;

	c->scratch.len = 0;
	if (buf_reserve(&c->scratch, bytes + nstr) == -1) {
		conn_end(cn, ISP_E_NOMEM, "out of memory for a frame of %zu "
		    "bytes from ispd at %s", bytes, cn->addr);
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

/*
 * An event's strings, NUL-terminated where they lie in the input buffer
 * instead of copied. The byte after each one is a length the decoder
 * has read already (a name's value length, a key's owner_session, the
 * owner's field count, a value's next field), or the first byte after
 * the frame, which the caller saves and puts back (wire_read() keeps a
 * spare byte past the input for it). So the walk of the fields comes
 * first, and the NULs after it.
 */
static size_t
fields_in_place(struct isp_client *c, struct proto_bytes block)
{
	struct proto_field_iter	 it;
	struct proto_field	 f;
	size_t			 n = 0, i;

	proto_fields_iter(&it, block);
	while (n < PROTO_MAX_FIELDS && proto_fields_next(&it, &f)) {
		c->sfields[n].name = (const char *)f.name.p;
		c->sfields[n].value = (const char *)f.value.p;
		c->sfields[n].value_len = f.value.len;
		c->sfields_name_len[n] = (uint8_t)f.name.len;
		n++;
	}
	for (i = 0; i < n; i++) {
		((char *)c->sfields[i].name)[c->sfields_name_len[i]] = '\0';
		((char *)c->sfields[i].value)[c->sfields[i].value_len] = '\0';
	}
	return n;
}

static const char *
nul_in_place(struct proto_bytes b)
{
	((char *)b.p)[b.len] = '\0';
	return (const char *)b.p;
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
on_welcome(struct conn *cn, const struct proto_msg *m)
{
	if (m->version != PROTO_VERSION) {
		conn_end(cn, ISP_E_VERSION, "ispd at %s speaks protocol "
		    "version %u, this library speaks %d (upgrade the older "
		    "one)", cn->addr, m->version, PROTO_VERSION);
		return;
	}
	cn->hold_ms = m->hold_ms;
	cn->session_id = m->session_id;
	cn->caps = m->caps;
	conn_up(cn);
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
	case ISP_E_AUTH:
		return 1;
	default:
		return 0;
	}
}

/* A refused SUBSCRIBE leaves no subscription on that server; once every
 * server refused, ours goes too, so the table can be subscribed again. */
static void
sub_refused(struct conn *cn, uint32_t req_id)
{
	struct isp_client	*c = cn->c;
	struct sub		*s;
	unsigned		 i;
	int			 all;

	for (s = c->subs; s != NULL; s = s->next) {
		if (s->removed || !s->sc[cn->idx].active ||
		    s->sc[cn->idx].req_id != req_id)
			continue;
		s->sc[cn->idx].active = 0;
		s->sc[cn->idx].refused = 1;
		if (s->mirror != NULL)
			mirror_forget_owners(s->mirror, cn->idx);
		for (i = 0, all = 1; i < c->nconns; i++)
			all &= s->sc[i].refused;
		if (all)
			client_sub_remove(c, s);
		return;
	}
}

static void
on_error(struct conn *cn, const struct proto_msg *m)
{
	struct isp_client	*c = cn->c;
	char			 reason[PROTO_MAX_STR_BYTES + 1];
	struct waiter		*w;
	int			 code = m->code != 0 ? m->code : ISP_E_PROTOCOL;

	text_copy(reason, sizeof(reason), m->text);
	if (cn->state == CONN_HANDSHAKE) {
		conn_end(cn, code, "ispd at %s refused the session: %s (%s)",
		    cn->addr, reason, isp_strerror(code));
		return;
	}
	if (m->req_id != 0) {
		/* A query waits for it: its caller gets the code. */
		if ((w = waiter_find(c, WAIT_ROWS, m->req_id)) != NULL &&
		    (w->pending & (1u << cn->idx))) {
			client_seterr(c, code, "ispd refused the request: %s",
			    reason);
			w->pending = 0;
			client_waiter_done(c, w, code, c->errmsg);
			return;
		}
		sub_refused(cn, m->req_id);
	} else if (error_fatal(code)) {
		cn->fatal_err = code;
		snprintf(cn->fatal_why, sizeof(cn->fatal_why),
		    "ispd at %s ended the session: %.300s (%s)", cn->addr,
		    reason, isp_strerror(code));
	}
	if (c->on_error != NULL) {
		c->cb_depth++;
		c->on_error(c, m->req_id, code, reason, c->arg);
		c->cb_depth--;
	}
}

/* ispd asks who we are: answer with the secret, when we have one. */
static void
on_challenge(struct conn *cn, const struct proto_msg *m)
{
	struct isp_client	*c = cn->c;
	int			 err;

	if (c->secret == NULL) {
		conn_end(cn, ISP_E_AUTH, "ispd at %s asks client %s to "
		    "authenticate, and no secret is set (isp_options.secret, "
		    "ispctl --secret-file)", cn->addr, c->name);
		return;
	}
	if ((err = ctls_answer(cn, m)) != ISP_OK)
		conn_end(cn, err, "%s", c->errmsg);
}

static void
on_bye(struct conn *cn, const struct proto_msg *m)
{
	char	 reason[PROTO_MAX_STR_BYTES + 1];
	int	 code = m->code != 0 ? m->code : ISP_E_CLOSED;

	text_copy(reason, sizeof(reason), m->text);
	conn_end(cn, code, "ispd at %s ended the session: %s (%s)", cn->addr,
	    reason[0] != '\0' ? reason : "no reason given",
	    isp_strerror(code));
}

/* GOING_DOWN: the server closes the session in delay_ms (drain). With
 * another server up, nothing new goes there and its close is silent;
 * alone, the session is used until the close, then retried as usual. */
static void
on_going_down(struct conn *cn, const struct proto_msg *m)
{
	cn->draining = 1;
}

/* The subscription an event of cn is for, or NULL when it is to be
 * dropped: unsubscribed meanwhile, the previous subscription's, or one
 * this server refused or ended. */
static struct sub *
event_sub(struct conn *cn, const struct proto_msg *m)
{
	struct sub	*s;
	struct sub_conn	*sc;

	if ((s = client_sub_find(cn->c, m->table.p, m->table.len)) == NULL)
		return NULL;
	sc = &s->sc[cn->idx];
	return sc->wait_token != 0 || !sc->active ? NULL : s;
}

static void
on_event(struct conn *cn, const struct proto_msg *m, uint8_t *end)
{
	struct isp_client	*c = cn->c;
	struct isp_event	 ev;
	struct sub		*s;
	struct sub_conn		*sc;
	unsigned		 i;
	int			 any;
	uint8_t			 after = *end;

	if ((s = event_sub(cn, m)) == NULL)
		return;
	sc = &s->sc[cn->idx];
	memset(&ev, 0, sizeof(ev));
	ev.table = s->table;
	ev.seq = m->seq;
	ev.server = cn->server;
	ev.server_index = cn->idx;
	switch (m->type) {
	case PROTO_EV_ANNOUNCE:
	case PROTO_EV_REPLACE:
		ev.type = m->type == PROTO_EV_ANNOUNCE ? ISP_EV_ANNOUNCE :
		    ISP_EV_REPLACE;
		ev.rec.nfields = fields_in_place(c, m->fields);
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
		ev.rec.key = nul_in_place(m->key);
		ev.rec.key_len = m->key.len;
		ev.rec.owner = nul_in_place(m->owner);
		ev.rec.owner_session = m->owner_session;
		ev.rec.seq = m->seq;
		ev.snapshot = !sc->ended;
	} else {
		sc->ended = 1;
		/* With ISP_SUB_ONCE ispd ends the subscription after END
		 * itself. */
		if (s->flags & ISP_SUB_ONCE)
			sc->active = 0;
	}

	client_sub_deliver(c, s, &ev);
	*end = after;
	if (ev.type == ISP_EV_END && (s->flags & ISP_SUB_ONCE)) {
		for (i = 0, any = 0; i < c->nconns; i++)
			any |= s->sc[i].active;
		if (!any)
			client_sub_remove(c, s);
	}
}

/* EV_OWNER_GONE: every record of an owner this subscription holds is
 * gone. Only a mirror's subscriptions ask for it (client_sub_send()),
 * and the mirror withdraws them, telling on_change of each. */
static void
on_owner_gone(struct conn *cn, const struct proto_msg *m)
{
	struct isp_client	*c = cn->c;
	struct sub		*s;

	if ((s = event_sub(cn, m)) == NULL)
		return;
	if (s->mirror == NULL) {
		conn_end(cn, ISP_E_PROTOCOL, "ispd at %s sent EV_OWNER_GONE "
		    "for table %s, which was not subscribed for it", cn->addr,
		    s->table);
		return;
	}
	c->cb_depth++;
	(void)mirror_owner_gone(s->mirror, cn->idx, m->owner_session,
	    m->reason, m->seq, cn->server, client_now_ms());
	c->cb_depth--;
}

static void
on_rows(struct conn *cn, const struct proto_msg *m)
{
	struct isp_client	*c = cn->c;
	struct proto_bytes	 rows = m->rows, row;
	struct waiter		*w;
	size_t			 n;

	if ((w = waiter_find(c, WAIT_ROWS, m->req_id)) == NULL ||
	    !(w->pending & (1u << cn->idx)))
		return;		/* its caller gave up waiting */
	while (proto_rows_next(&rows, &row)) {
		if (scratch_reserve(cn, row.len, 2 * PROTO_MAX_FIELDS) == -1)
			return;
		n = fields_copy(c, row);
		if (w->row_cb != NULL) {
			c->cb_depth++;
			w->row_cb(n > 0 ? c->sfields : NULL, n, w->arg);
			c->cb_depth--;
		}
	}
	w->pending = 0;
	client_waiter_done(c, w, ISP_OK, NULL);
}

static void
on_pong(struct conn *cn, uint64_t token)
{
	struct isp_client	*c = cn->c;
	struct waiter		*w;
	uint32_t		 bit = 1u << cn->idx;

	if ((w = waiter_find(c, WAIT_PONG, token)) != NULL &&
	    (w->pending & bit)) {
		w->pending &= ~bit;
		w->answered++;
		if (w->pending == 0)
			client_waiter_done(c, w, ISP_OK, NULL);
	}
	client_sub_drained(cn, token);
}

static void
send_pong(struct conn *cn, uint64_t token)
{
	size_t	 mark = cn->out.len;

	proto_put_ping(&cn->out, PROTO_PONG, token);
	if (wire_queued(cn, mark) != ISP_OK)
		conn_end(cn, ISP_E_NOMEM, "out of memory answering a PING");
}

static void
wire_dispatch(struct conn *cn, const uint8_t *frame, size_t len)
{
	struct proto_msg	 m;
	const char		*why;
	int			 rc;

	rc = proto_decode_trusted(frame, len, &m, &why);
	/* A type this version does not know: the framing is intact, so
	 * skipping it is safe, and a newer ispd may add informational
	 * frames without breaking old clients. */
	if (rc == ISP_E_UNKNOWN_TYPE)
		return;
	if (rc != 0) {
		conn_end(cn, ISP_E_PROTOCOL, "ispd at %s sent a malformed "
		    "%s frame (%s)", cn->addr, proto_type_name(frame[4]),
		    why);
		return;
	}
	if (cn->state == CONN_HANDSHAKE) {
		switch (m.type) {
		case PROTO_WELCOME:
			on_welcome(cn, &m);
			break;
		case PROTO_ERROR:
			on_error(cn, &m);
			break;
		case PROTO_BYE:
			on_bye(cn, &m);
			break;
		case PROTO_PING:
			send_pong(cn, m.token);
			break;
		case PROTO_CHALLENGE:
			on_challenge(cn, &m);
			break;
		default:
			conn_end(cn, ISP_E_PROTOCOL, "%s sent %s before "
			    "WELCOME (is it ispd?)", cn->addr,
			    proto_type_name(m.type));
			break;
		}
		return;
	}
	switch (m.type) {
	case PROTO_PING:
		send_pong(cn, m.token);
		break;
	case PROTO_PONG:
		on_pong(cn, m.token);
		break;
	case PROTO_ERROR:
		on_error(cn, &m);
		break;
	case PROTO_BYE:
		on_bye(cn, &m);
		break;
	case PROTO_GOING_DOWN:
		on_going_down(cn, &m);
		break;
	case PROTO_EV_ANNOUNCE:
	case PROTO_EV_REPLACE:
	case PROTO_EV_WITHDRAW:
	case PROTO_EV_END:
		/* The frame lies in cn->in, which is ours to write. */
		on_event(cn, &m, (uint8_t *)frame + len);
		break;
	case PROTO_EV_OWNER_GONE:
		on_owner_gone(cn, &m);
		break;
	case PROTO_ROWS:
		on_rows(cn, &m);
		break;
	default:
		conn_end(cn, ISP_E_PROTOCOL, "ispd at %s sent a %s frame, "
		    "which only clients send", cn->addr,
		    proto_type_name(m.type));
		break;
	}
	if (cn->c->cb_depth == 0)
		client_sub_reap(cn->c);
}

/* A session's input is read while the handshake runs and while it is
 * up. */
static int
wire_reading(const struct conn *cn)
{
	return cn->state == CONN_HANDSHAKE || cn->state == CONN_READY;
}

/* Delivers every whole frame in the input buffer. */
static void
wire_input(struct conn *cn)
{
	size_t		 off = 0, n;
	uint32_t	 len;
	int		 r;

	while (wire_reading(cn)) {
		r = proto_frame_check(cn->in.data + off, cn->in.len - off,
		    PROTO_MAX_FRAME_BYTES, &n);
		if (r == 0)
			break;
		if (r == -1) {
			len = get_be32(cn->in.data + off);
			if (len == 0)
				conn_end(cn, ISP_E_PROTOCOL, "ispd at %s "
				    "sent a frame of length 0", cn->addr);
			else
				conn_end(cn, ISP_E_FRAME_TOO_LARGE, "ispd "
				    "at %s sent a frame of %u bytes, over the "
				    "limit of %u", cn->addr, len,
				    PROTO_MAX_FRAME_BYTES);
			return;
		}
		wire_dispatch(cn, cn->in.data + off, n);
		off += n;
	}
	if (wire_reading(cn))
		buf_consume(&cn->in, off);
}

static void
wire_eof(struct conn *cn, int err)
{
	if (cn->fatal_err != 0)
		conn_end(cn, cn->fatal_err, "%s", cn->fatal_why);
	else if (cn->ssl != NULL && err == EPROTO)
		conn_end(cn, ISP_E_TLS, "%s", cn->tls_why);
	else if (cn->state == CONN_HANDSHAKE)
		conn_end(cn, ISP_E_CLOSED, "%s closed the connection during "
		    "the handshake%s%s (is it ispd?)", cn->addr,
		    err ? ": " : "", err ? strerror(err) : "");
	else if (err != 0)
		conn_end(cn, ISP_E_CLOSED, "connection to ispd at %s lost: "
		    "%s", cn->addr, strerror(err));
	else
		conn_end(cn, ISP_E_CLOSED, "ispd at %s closed the "
		    "connection", cn->addr);
}

void
wire_read(struct conn *cn)
{
	size_t	 need, room;
	ssize_t	 n;
	int	 i;

	/* The TLS handshake first; then the HELLO queued behind it. */
	if (cn->ssl != NULL && !cn->tls_done && wire_reading(cn)) {
		if (cn->dead_err != 0) {
			conn_end(cn, cn->dead_err, "%s", cn->dead_why);
			return;
		}
		switch (ctls_handshake(cn)) {
		case -1:
			conn_end(cn, ISP_E_TLS, "%s", cn->tls_why);
			return;
		case 0:
			return;
		}
		wire_flush(cn);
	}
	for (i = 0; i < CLIENT_READS_PER_PASS && wire_reading(cn); i++) {
		/* What is left is part of a frame whose header
		 * wire_input() checked against the limit already. */
		need = CLIENT_READ_CHUNK_BYTES;
		if (cn->in.len >= 4 &&
		    get_be32(cn->in.data) + 4 - cn->in.len > need)
			need = get_be32(cn->in.data) + 4 - cn->in.len;
		/* One spare byte past what is read: on_event() writes the
		 * NUL after a frame's last string there. */
		if (buf_reserve(&cn->in, need + 1) == -1) {
			conn_end(cn, ISP_E_NOMEM, "out of memory reading "
			    "from ispd at %s", cn->addr);
			return;
		}
		room = cn->in.cap - cn->in.len - 1;
		n = cn->ssl != NULL ? ctls_read(cn, cn->in.data + cn->in.len,
		    room) : recv(cn->fd, cn->in.data + cn->in.len, room, 0);
		if (n > 0) {
			cn->in.len += (size_t)n;
			cn->last_recv_ms = client_now_ms();
			wire_input(cn);
			/* A TLS read returns a record at a time: only
			 * EAGAIN says that everything was read. */
			if ((size_t)n < room && cn->ssl == NULL)
				return;		/* the socket is drained */
			continue;
		}
		if (n == 0) {
			wire_eof(cn, 0);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		wire_eof(cn, errno);
		return;
	}
}

/*
 * When the next PING is due. Two reasons to send one, each at most every
 * hold/3: ispd has had nothing from us (it would end the session), or we
 * have had nothing from ispd (it answers a PING, and silence past the
 * hold time means it is gone). The second matters for a publisher that
 * sends without pause: ispd never answers an announce, so without a PING
 * the publisher would hear nothing and give up on a live server. A PING
 * is queued even behind pending output; it is answered after it.
 */
static uint64_t
wire_ping_due(const struct conn *cn)
{
	uint64_t	 every, idle_tx, idle_rx;

	every = cn->hold_ms / 3 > 0 ? cn->hold_ms / 3 : 1;
	idle_tx = cn->last_send_ms + every;
	idle_rx = (cn->last_recv_ms > cn->last_ping_ms ? cn->last_recv_ms :
	    cn->last_ping_ms) + every;
	if (wire_pending(cn) > 0)	/* queued bytes will reach ispd */
		return idle_rx;
	return idle_tx < idle_rx ? idle_tx : idle_rx;
}

/*
 * The last sign of life from ispd: bytes from it, or room it made by
 * reading ours. A publisher far ahead of ispd waits long for the answer
 * to its PING, which is queued behind its backlog, though ispd reads on;
 * a stopped ispd reads nothing, so the socket stays full and its hold
 * time runs out as it should.
 */
static uint64_t
wire_heard_ms(const struct conn *cn)
{
	return cn->last_taken_ms > cn->last_recv_ms ? cn->last_taken_ms :
	    cn->last_recv_ms;
}

void
wire_keepalive(struct conn *cn)
{
	uint64_t	 now;
	size_t		 mark;

	if (cn->state != CONN_READY || cn->hold_ms == 0)
		return;
	now = client_now_ms();
	if (now - wire_heard_ms(cn) >= cn->hold_ms) {
		conn_end(cn, ISP_E_TIMEOUT, "no answer from ispd at %s for "
		    "%u ms", cn->addr, cn->hold_ms);
		return;
	}
	if (now >= wire_ping_due(cn)) {
		mark = cn->out.len;
		proto_put_ping(&cn->out, PROTO_PING, wire_token(cn->c));
		cn->last_ping_ms = now;
		if (wire_queued(cn, mark) != ISP_OK)
			conn_end(cn, ISP_E_NOMEM, "out of memory for a "
			    "keepalive");
	}
}

static int
ms_until(uint64_t due, uint64_t now)
{
	if (due <= now)
		return 0;
	return due - now > INT_MAX ? INT_MAX : (int)(due - now);
}

int
wire_timeout_ms(const struct conn *cn, uint64_t now)
{
	const struct isp_client	*c = cn->c;
	uint64_t		 due;

	/* Bytes inside OpenSSL wake no poll(2): process them now. */
	if (ctls_pending(cn))
		return 0;
	switch (cn->state) {
	case CONN_DIALING:
	case CONN_HANDSHAKE:
		return ms_until(cn->deadline_ms, now);
	case CONN_IDLE:
		if (!c->reconnect || c->state != CLIENT_READY)
			return -1;
		return ms_until(cn->retry_at_ms, now);
	case CONN_DOWN:
		return -1;
	case CONN_READY:
		break;
	}
	if (cn->dead_err != 0)
		return 0;
	if (cn->hold_ms == 0)
		return -1;
	due = wire_heard_ms(cn) + cn->hold_ms;
	if (wire_ping_due(cn) < due)
		due = wire_ping_due(cn);
	return ms_until(due, now);
}

int
client_timeout_ms(const struct isp_client *c)
{
	const struct isp_mirror	*m;
	uint64_t		 now = client_now_ms();
	unsigned		 i;
	int			 ms = -1, t;

	for (i = 0; i < c->nconns; i++) {
		if (wire_due(&c->conns[i]))
			return 0;
		t = wire_timeout_ms(&c->conns[i], now);
		if (t >= 0 && (ms < 0 || t < ms))
			ms = t;
	}
	for (m = c->mirrors; m != NULL; m = m->next) {
		t = mirror_sweep_due_ms(m, now);
		if (t >= 0 && (ms < 0 || t < ms))
			ms = t;
	}
	return ms;
}

int
wire_process(struct isp_client *c)
{
	struct isp_mirror	*m;
	struct conn		*cn;
	uint64_t		 now;
	unsigned		 i;

	for (i = 0; i < c->nconns; i++) {
		cn = &c->conns[i];
		if (cn->state == CONN_DIALING)
			conn_dial_check(cn);
		if (wire_reading(cn))
			wire_read(cn);
		if (cn->state == CONN_READY && cn->dead_err != 0)
			conn_end(cn, cn->dead_err, "%s", cn->dead_why);
		conn_timers(cn, client_now_ms());
	}
	if (c->state == CLIENT_READY) {
		now = client_now_ms();
		for (m = c->mirrors; m != NULL; m = m->next)
			mirror_sweep(m, now);
		if (c->reconnect)
			intent_prune(c, now);
	}
	/* The pass ends with its one write per session: what it queued
	 * (answers, PINGs, a replay, requests made by callbacks, which a
	 * callback of one server's events makes for every server) and
	 * what a full socket held back (out_full: tried again, as epoll
	 * may have said it has room). A failure ends the session in the
	 * next pass, which wire_due() makes immediate. */
	for (i = 0; i < c->nconns; i++) {
		cn = &c->conns[i];
		if (cn->state == CONN_READY && cn->dead_err == 0 &&
		    wire_pending(cn) > 0)
			wire_flush(cn);
	}
	if (c->cb_depth == 0) {
		client_sub_reap(c);
		client_reap_mirrors(c);
	}
	if (c->freeing)
		return client_seterr(c, ISP_E_CLOSED, "the client was freed "
		    "inside a callback");
	return c->state == CLIENT_READY ? ISP_OK : c->end_err;
}
