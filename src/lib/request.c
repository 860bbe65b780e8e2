/*
 * request: what an application asks of ispd. Every argument is checked
 * against the protocol's limits (proto.h) before anything is encoded, so
 * a mistake is reported here, naming the argument and the limit, rather
 * than as an ERROR from ispd later. Arguments are checked before the
 * session's state, so a bad call is found even on a client that is not
 * connected yet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib.h"

/* The id of the last request the calling thread queued, and the client
 * (by serial: an address may be reused) it queued it on. Threads sharing
 * a client in mode 3 each see their own. */
static _Thread_local struct {
	uint64_t	 serial;
	uint32_t	 id;
} last_req;

static void
req_remember(const struct isp_client *c, uint32_t id)
{
	last_req.serial = c->serial;
	last_req.id = id;
}

static uint32_t
req_id_next(struct isp_client *c)
{
	uint32_t	 id = c->next_req_id++;

	if (c->next_req_id == 0)	/* 0 means "the whole session" */
		c->next_req_id = 1;
	return id;
}

uint32_t
isp_last_req_id(const isp_client *c)
{
	return c != NULL && last_req.serial == c->serial ? last_req.id : 0;
}

static int
check_table(struct isp_client *c, const char *fn, const char *table,
    size_t *lenp)
{
	size_t	 len;

	if (table == NULL)
		return client_seterr(c, ISP_E_INVALID, "%s: table is NULL",
		    fn);
	len = strnlen(table, PROTO_MAX_TABLE_BYTES + 1);
	if (!proto_table_valid(table, len))
		return client_seterr(c, ISP_E_INVALID, "%s: invalid table name "
		    "\"%.*s%s\" (1 to %d characters of A-Z a-z 0-9 _ . : -)",
		    fn, (int)len, table, len > PROTO_MAX_TABLE_BYTES ? "..." :
		    "", PROTO_MAX_TABLE_BYTES);
	*lenp = len;
	return ISP_OK;
}

static int
check_key(struct isp_client *c, const char *fn, const void *key,
    size_t key_len)
{
	if (key_len == 0 || key_len > PROTO_MAX_KEY_BYTES)
		return client_seterr(c, ISP_E_INVALID, "%s: key is %zu bytes "
		    "long, it must be 1 to %d", fn, key_len,
		    PROTO_MAX_KEY_BYTES);
	if (key == NULL)
		return client_seterr(c, ISP_E_INVALID, "%s: key is NULL", fn);
	return ISP_OK;
}

/* Sets *bytes to the size of the encoded fields block. */
static int
check_fields(struct isp_client *c, const char *fn,
    const struct isp_field *fields, size_t nfields, size_t *bytes)
{
	const struct isp_field	*f;
	size_t			 i, nlen;

	if (nfields > PROTO_MAX_FIELDS)
		return client_seterr(c, ISP_E_INVALID, "%s: %zu fields, at "
		    "most %d are allowed", fn, nfields, PROTO_MAX_FIELDS);
	if (nfields > 0 && fields == NULL)
		return client_seterr(c, ISP_E_INVALID, "%s: fields is NULL but "
		    "nfields is %zu", fn, nfields);
	*bytes = 2;
	for (i = 0; i < nfields; i++) {
		f = &fields[i];
		if (f->name == NULL)
			return client_seterr(c, ISP_E_INVALID, "%s: field %zu "
			    "has a NULL name", fn, i);
		nlen = strnlen(f->name, PROTO_MAX_FNAME_BYTES + 1);
		if (!proto_fname_valid(f->name, nlen))
			return client_seterr(c, ISP_E_INVALID, "%s: field %zu "
			    "has an invalid name \"%.*s%s\" (1 to %d printable "
			    "ASCII characters, no space or '=')", fn, i,
			    (int)(nlen > 64 ? 64 : nlen), f->name,
			    nlen > 64 ? "..." : "", PROTO_MAX_FNAME_BYTES);
		if (f->value_len > PROTO_MAX_VALUE_BYTES)
			return client_seterr(c, ISP_E_INVALID, "%s: field "
			    "\"%s\" has a value of %zu bytes, at most %d are "
			    "allowed", fn, f->name, f->value_len,
			    PROTO_MAX_VALUE_BYTES);
		if (f->value == NULL && f->value_len > 0)
			return client_seterr(c, ISP_E_INVALID, "%s: field "
			    "\"%s\" has a NULL value of length %zu", fn,
			    f->name, f->value_len);
		*bytes += 1 + nlen + 4 + f->value_len;
	}
	return ISP_OK;
}

/* A whole frame must fit the limit every ispd accepts. frame_bytes
 * counts the type byte and the payload, as the length prefix does. */
static int
check_frame(struct isp_client *c, const char *fn, size_t frame_bytes)
{
	if (frame_bytes > PROTO_MAX_FRAME_BYTES)
		return client_seterr(c, ISP_E_INVALID, "%s: the record encodes "
		    "to %zu bytes, over the protocol's frame limit of %u; "
		    "make the values smaller", fn, frame_bytes,
		    PROTO_MAX_FRAME_BYTES);
	return ISP_OK;
}

/* Queues the frame in c->frame on every server with a session up whose
 * WELCOME has the capability bits caps (0: every one). Returns ISP_OK,
 * or the first failure (the others still got it). */
static int
queue_everywhere(struct isp_client *c, uint32_t caps)
{
	unsigned	 i;
	int		 rc = ISP_OK, r;

	if (buf_failed(&c->frame)) {
		c->frame.len = 0;
		buf_clear_failed(&c->frame);
		return client_seterr(c, ISP_E_NOMEM, "out of memory queuing a "
		    "request");
	}
	for (i = 0; i < c->nconns; i++) {
		if (!client_conn_usable(&c->conns[i]) ||
		    (c->conns[i].caps & caps) != caps)
			continue;
		if ((r = wire_put_frame(&c->conns[i], &c->frame)) != ISP_OK &&
		    rc == ISP_OK)
			rc = r;
	}
	return rc;
}

int
isp_announce(isp_client *c, const char *table, const void *key,
    size_t key_len, const struct isp_field *fields, size_t nfields,
    unsigned ttl_s)
{
	const char	*fn = "isp_announce";
	size_t		 tlen = 0, fbytes = 0, start, fstart, i;
	uint32_t	 id;
	int		 rc, r;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if ((rc = check_table(c, fn, table, &tlen)) != ISP_OK ||
	    (rc = check_key(c, fn, key, key_len)) != ISP_OK ||
	    (rc = check_fields(c, fn, fields, nfields, &fbytes)) != ISP_OK ||
	    (rc = check_frame(c, fn, 1 + 4 + 1 + tlen + 4 + 2 + key_len +
	    fbytes)) != ISP_OK ||
	    (rc = client_check_ready(c, fn)) != ISP_OK)
		goto out;

	/* Encoded once, copied to each server's queue. */
	id = req_id_next(c);
	c->frame.len = 0;
	start = proto_begin(&c->frame, PROTO_ANNOUNCE);
	buf_put_u32(&c->frame, id);
	proto_put_name(&c->frame, table, tlen);
	buf_put_u32(&c->frame, ttl_s);
	proto_put_key(&c->frame, key, key_len);
	fstart = proto_fields_begin(&c->frame);
	for (i = 0; i < nfields; i++)
		proto_put_field(&c->frame, fields[i].name,
		    strlen(fields[i].name), fields[i].value,
		    fields[i].value_len);
	proto_fields_end(&c->frame, fstart, (uint16_t)nfields);
	proto_end(&c->frame, start);
	if (c->reconnect && !buf_failed(&c->frame) &&
	    (r = intent_put(c, table, tlen, key, key_len,
	    c->frame.data + fstart, c->frame.len - fstart, ttl_s, id)) !=
	    ISP_OK) {
		rc = client_seterr(c, r, "%s: out of memory keeping the "
		    "record for a reconnect", fn);
		goto out;
	}
	c->announced = 1;
	if ((rc = queue_everywhere(c, 0)) == ISP_OK)
		req_remember(c, id);
out:
	client_unlock(c);
	return rc;
}

int
isp_withdraw(isp_client *c, const char *table, const void *key,
    size_t key_len)
{
	const char	*fn = "isp_withdraw";
	size_t		 tlen;
	uint32_t	 id;
	int		 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if ((rc = check_table(c, fn, table, &tlen)) != ISP_OK ||
	    (rc = check_key(c, fn, key, key_len)) != ISP_OK ||
	    (rc = client_check_ready(c, fn)) != ISP_OK)
		goto out;
	id = req_id_next(c);
	c->frame.len = 0;
	proto_put_withdraw(&c->frame, id, proto_bytes(table, tlen),
	    proto_bytes(key, key_len));
	/* A server without a session now has ended the old one and with it
	 * the record, or holds it for a graceful restart and withdraws it
	 * at the END_OF_REPLAY that follows the replay: either way,
	 * forgetting the intent keeps it from coming back. */
	if (c->reconnect)
		intent_del(c, table, tlen, key, key_len);
	if ((rc = queue_everywhere(c, 0)) == ISP_OK)
		req_remember(c, id);
out:
	client_unlock(c);
	return rc;
}

int
isp_replay_done(isp_client *c)
{
	uint32_t	 id;
	int		 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if ((rc = client_check_ready(c, "isp_replay_done")) != ISP_OK)
		goto out;
	/* A server that comes up later gets it after its replay. */
	c->replay_done = 1;
	id = req_id_next(c);
	c->frame.len = 0;
	proto_put_end_of_replay(&c->frame, id);
	if ((rc = queue_everywhere(c, PROTO_CAP_REPLAY)) == ISP_OK)
		req_remember(c, id);
out:
	client_unlock(c);
	return rc;
}

int
client_sub_check_args(struct isp_client *c, const char *fn, const char *table,
    const void *prefix, size_t prefix_len, unsigned flags, isp_event_cb *cb)
{
	size_t	 tlen;
	int	 rc;

	if ((rc = check_table(c, fn, table, &tlen)) != ISP_OK)
		return rc;
	if (prefix_len > PROTO_MAX_KEY_BYTES)
		return client_seterr(c, ISP_E_INVALID, "%s: prefix is %zu "
		    "bytes long, at most %d are allowed", fn, prefix_len,
		    PROTO_MAX_KEY_BYTES);
	if (prefix == NULL && prefix_len > 0)
		return client_seterr(c, ISP_E_INVALID, "%s: prefix is NULL but "
		    "prefix_len is %zu", fn, prefix_len);
	if (flags & ~(unsigned)ISP_SUB_ONCE)
		return client_seterr(c, ISP_E_INVALID, "%s: unknown flags 0x%x "
		    "(only ISP_SUB_ONCE is defined)", fn,
		    flags & ~(unsigned)ISP_SUB_ONCE);
	if (cb == NULL)
		return client_seterr(c, ISP_E_INVALID, "%s: the event "
		    "callback is NULL", fn);
	return ISP_OK;
}

int
client_sub_send(struct conn *cn, struct sub *s)
{
	struct sub_conn	*sc = &s->sc[cn->idx];
	size_t		 mark = cn->out.len;
	uint8_t		 flags = 0;
	int		 rc;

	if (s->flags & ISP_SUB_ONCE)
		flags |= PROTO_SUB_ONCE;
	/* A mirror knows each record's owner, so it takes an owner's end
	 * as one event, from a server that offers it. */
	if (s->mirror != NULL && (cn->caps & PROTO_CAP_OWNER_GONE))
		flags |= PROTO_SUB_OWNER_GONE;
	proto_put_subscribe(&cn->out, s->next_req, proto_bytes(s->table,
	    s->table_len), flags, proto_bytes(s->prefix, s->prefix_len));
	if ((rc = wire_queued(cn, mark)) != ISP_OK)
		return rc;
	sc->req_id = s->next_req;
	sc->active = 1;
	sc->ended = 0;
	sc->refused = 0;
	/* A new id for the next session's SUBSCRIBE. */
	s->next_req = req_id_next(cn->c);
	return ISP_OK;
}

int
client_subscribe(struct isp_client *c, const char *fn, const char *table,
    const void *prefix, size_t prefix_len, unsigned flags, isp_event_cb *cb,
    void *arg, struct isp_mirror *m)
{
	struct sub	*s, *old;
	size_t		 tlen;
	unsigned	 i;
	uint32_t	 id;
	int		 rc, sent = 0;

	if ((rc = client_sub_check_args(c, fn, table, prefix, prefix_len, flags,
	    cb)) != ISP_OK || (rc = client_check_ready(c, fn)) != ISP_OK)
		return rc;
	tlen = strlen(table);
	if (client_sub_find(c, table, tlen) != NULL)
		return client_seterr(c, ISP_E_STATE, "%s: already subscribed "
		    "to table \"%s\" (one subscription per table and client; "
		    "unsubscribe first)", fn, table);
	if ((s = calloc(1, sizeof(*s) + c->nconns * sizeof(s->sc[0]))) ==
	    NULL || (prefix_len > 0 && (s->prefix = malloc(prefix_len)) ==
	    NULL)) {
		free(s);
		return client_seterr(c, ISP_E_NOMEM, "%s: out of memory", fn);
	}
	for (old = c->subs; old != NULL; old = old->next)
		if (old->removed && old->table_len == tlen &&
		    memcmp(old->table, table, tlen) == 0)
			for (i = 0; i < c->nconns; i++)
				if (old->sc[i].drain_token != 0)
					s->sc[i].wait_token =
					    old->sc[i].drain_token;
	memcpy(s->table, table, tlen + 1);
	s->table_len = tlen;
	if (prefix_len > 0)
		memcpy(s->prefix, prefix, prefix_len);
	s->prefix_len = prefix_len;
	s->flags = flags;
	s->cb = cb;
	s->arg = arg;
	s->mirror = m;
	/* One id for the SUBSCRIBE on every server now up, so an ERROR
	 * for it names what isp_last_req_id() said. */
	id = s->next_req = req_id_next(c);

	for (i = 0; i < c->nconns; i++) {
		if (!client_conn_usable(&c->conns[i]))
			continue;
		s->next_req = id;
		if ((rc = client_sub_send(&c->conns[i], s)) != ISP_OK)
			break;
		sent = 1;
	}
	if (rc != ISP_OK && !sent) {
		free(s->prefix);
		free(s);
		return rc;
	}
	s->sent = sent;
	s->next = c->subs;
	c->subs = s;
	req_remember(c, id);
	return ISP_OK;
}

int
isp_subscribe(isp_client *c, const char *table, const void *prefix,
    size_t prefix_len, unsigned flags, isp_event_cb *cb, void *arg)
{
	int	 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	rc = client_subscribe(c, "isp_subscribe", table, prefix, prefix_len,
	    flags, cb, arg, NULL);
	client_unlock(c);
	return rc;
}

int
client_unsubscribe(struct isp_client *c, struct sub *s)
{
	struct conn	*cn;
	uint64_t	 token;
	size_t		 mark;
	unsigned	 i;
	uint32_t	 id;
	int		 rc = ISP_OK, r;

	id = req_id_next(c);
	for (i = 0; i < c->nconns; i++) {
		cn = &c->conns[i];
		if (!s->sc[i].active || !client_conn_usable(cn))
			continue;
		mark = cn->out.len;
		token = wire_token(c);
		proto_put_unsubscribe(&cn->out, id, proto_bytes(s->table,
		    s->table_len));
		proto_put_ping(&cn->out, PROTO_PING, token);
		if ((r = wire_queued(cn, mark)) == ISP_OK) {
			req_remember(c, id);
			s->sc[i].drain_token = token;
		} else if (rc == ISP_OK)
			rc = r;
		s->sc[i].active = 0;
	}
	client_sub_remove(c, s);	/* may free s */
	return rc;
}

int
isp_unsubscribe(isp_client *c, const char *table)
{
	const char	*fn = "isp_unsubscribe";
	struct sub	*s;
	size_t		 tlen;
	int		 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if ((rc = check_table(c, fn, table, &tlen)) != ISP_OK ||
	    (rc = client_check_ready(c, fn)) != ISP_OK)
		goto out;
	if ((s = client_sub_find(c, table, tlen)) == NULL)
		rc = client_seterr(c, ISP_E_STATE, "%s: not subscribed to "
		    "table \"%s\"", fn, table);
	else if (s->mirror != NULL)
		rc = client_seterr(c, ISP_E_STATE, "%s: table \"%s\" is kept "
		    "by a mirror; free the mirror with isp_mirror_free() "
		    "instead", fn, table);
	else
		rc = client_unsubscribe(c, s);
out:
	client_unlock(c);
	return rc;
}

static void
waiter_link(struct isp_client *c, struct waiter *w)
{
	w->next = c->waiters;
	c->waiters = w;
}

static void
waiter_unlink(struct isp_client *c, struct waiter *w)
{
	struct waiter	**pp;

	for (pp = &c->waiters; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			return;
		}
	}
}

/* Callers wait for the answer, so they must not be callbacks of this
 * client (the answer would have to be read by the code they are
 * called from). */
static int
check_may_wait(struct isp_client *c, const char *fn)
{
	if (c->cb_depth > 0)
		return client_seterr(c, ISP_E_STATE, "%s: cannot wait for an "
		    "answer inside a callback of the same client", fn);
	return client_check_ready(c, fn);
}

/* The first server in the list that can answer now, one that is not
 * going down first. */
static struct conn *
first_usable(struct isp_client *c)
{
	unsigned	 i;

	for (i = 0; i < c->nconns; i++)
		if (client_conn_usable(&c->conns[i]) &&
		    !c->conns[i].draining)
			return &c->conns[i];
	for (i = 0; i < c->nconns; i++)
		if (client_conn_usable(&c->conns[i]))
			return &c->conns[i];
	return NULL;
}

static int
no_session(struct isp_client *c, const char *fn)
{
	return client_seterr(c, ISP_E_STATE, "%s: no session is up now (the "
	    "library is reconnecting)", fn);
}

/* What a request answered by ROWS asks: a QUERY, or an ADMIN op. */
struct rows_req {
	uint8_t		 type;		/* PROTO_QUERY, PROTO_ADMIN */
	uint8_t		 what;		/* QUERY what, ADMIN op */
	uint64_t	 session_id;	/* ADMIN KICK; HELD: after it */
	const char	*table;		/* ADMIN EVICT, DROP */
	const void	*key;		/* ADMIN EVICT; HELD: after it */
	size_t		 key_len;
};

static int
client_rows(struct isp_client *c, const char *fn, const struct rows_req *rq,
    isp_row_cb *cb, void *arg, int timeout_ms)
{
	struct waiter	 w;
	struct conn	*cn;
	size_t		 mark;
	int		 rc;

	if ((rc = check_may_wait(c, fn)) != ISP_OK)
		return rc;
	if ((cn = first_usable(c)) == NULL)
		return no_session(c, fn);
	memset(&w, 0, sizeof(w));
	w.kind = WAIT_ROWS;
	w.id = req_id_next(c);
	w.row_cb = cb;
	w.arg = arg;
	w.pending = 1u << cn->idx;
	mark = cn->out.len;
	if (rq->type == PROTO_QUERY)
		proto_put_query(&cn->out, (uint32_t)w.id, rq->what);
	else if (rq->what == PROTO_ADMIN_KICK)
		proto_put_admin_kick(&cn->out, (uint32_t)w.id, rq->session_id);
	else if (rq->what == PROTO_ADMIN_DROP)
		proto_put_admin_drop(&cn->out, (uint32_t)w.id,
		    proto_bytes(rq->table, strlen(rq->table)));
	else if (rq->what == PROTO_ADMIN_HELD)
		proto_put_admin_held(&cn->out, (uint32_t)w.id, rq->session_id,
		    proto_bytes(rq->key, rq->key_len));
	else
		proto_put_admin_evict(&cn->out, (uint32_t)w.id,
		    proto_bytes(rq->table, strlen(rq->table)),
		    proto_bytes(rq->key, rq->key_len));
	if ((rc = wire_queued(cn, mark)) != ISP_OK)
		return rc;
	req_remember(c, (uint32_t)w.id);
	waiter_link(c, &w);
	rc = run_wait(c, &w, timeout_ms);
	waiter_unlink(c, &w);
	return rc;
}

static int
client_query(struct isp_client *c, const char *fn, uint8_t what,
    isp_row_cb *cb, void *arg, int timeout_ms)
{
	struct rows_req	 rq;

	memset(&rq, 0, sizeof(rq));
	rq.type = PROTO_QUERY;
	rq.what = what;
	return client_rows(c, fn, &rq, cb, arg, timeout_ms);
}

int
isp_query_tables(isp_client *c, isp_row_cb *cb, void *arg, int timeout_ms)
{
	int	 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	rc = client_query(c, "isp_query_tables", PROTO_QUERY_TABLES, cb, arg,
	    timeout_ms);
	return client_leave(c, rc);
}

int
isp_query_stats(isp_client *c, isp_row_cb *cb, void *arg, int timeout_ms)
{
	int	 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	rc = client_query(c, "isp_query_stats", PROTO_QUERY_STATS, cb, arg,
	    timeout_ms);
	return client_leave(c, rc);
}

int
isp_kick(isp_client *c, uint64_t session_id, isp_row_cb *cb, void *arg,
    int timeout_ms)
{
	struct rows_req	 rq;
	int		 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	memset(&rq, 0, sizeof(rq));
	rq.type = PROTO_ADMIN;
	rq.what = PROTO_ADMIN_KICK;
	rq.session_id = session_id;
	client_lock(c);
	rc = client_rows(c, "isp_kick", &rq, cb, arg, timeout_ms);
	return client_leave(c, rc);
}

int
isp_evict(isp_client *c, const char *table, const void *key, size_t key_len,
    isp_row_cb *cb, void *arg, int timeout_ms)
{
	struct rows_req	 rq;
	int		 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if (table == NULL || !proto_table_valid(table, strlen(table)) ||
	    key == NULL || key_len == 0 || key_len > PROTO_MAX_KEY_BYTES) {
		rc = client_seterr(c, ISP_E_INVALID, "isp_evict: a table name "
		    "of 1 to %d characters [A-Za-z0-9_.:-] and a key of 1 to "
		    "%d bytes", PROTO_MAX_TABLE_BYTES, PROTO_MAX_KEY_BYTES);
		return client_leave(c, rc);
	}
	memset(&rq, 0, sizeof(rq));
	rq.type = PROTO_ADMIN;
	rq.what = PROTO_ADMIN_EVICT;
	rq.table = table;
	rq.key = key;
	rq.key_len = key_len;
	rc = client_rows(c, "isp_evict", &rq, cb, arg, timeout_ms);
	return client_leave(c, rc);
}

int
isp_drop(isp_client *c, const char *table, isp_row_cb *cb, void *arg,
    int timeout_ms)
{
	struct rows_req	 rq;
	int		 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if (table == NULL || !proto_table_valid(table, strlen(table))) {
		rc = client_seterr(c, ISP_E_INVALID, "isp_drop: a table name "
		    "of 1 to %d characters [A-Za-z0-9_.:-]",
		    PROTO_MAX_TABLE_BYTES);
		return client_leave(c, rc);
	}
	memset(&rq, 0, sizeof(rq));
	rq.type = PROTO_ADMIN;
	rq.what = PROTO_ADMIN_DROP;
	rq.table = table;
	rc = client_rows(c, "isp_drop", &rq, cb, arg, timeout_ms);
	return client_leave(c, rc);
}

/* isp_held()'s pages: the caller's callback, and the last row seen,
 * where the next page starts. */
struct held_pages {
	isp_row_cb	*cb;
	void		*arg;
	uint64_t	 session;
	char		 table[PROTO_MAX_TABLE_BYTES + 1];
	size_t		 table_len;
	size_t		 rows;
};

static void
held_row(const struct isp_field *f, size_t n, void *arg)
{
	struct held_pages	*hp = arg;
	size_t			 i;

	for (i = 0; i < n; i++) {
		if (strcmp(f[i].name, "session") == 0)
			hp->session = strtoull(f[i].value, NULL, 10);
		else if (strcmp(f[i].name, "table") == 0 &&
		    f[i].value_len < sizeof(hp->table)) {
			memcpy(hp->table, f[i].value, f[i].value_len);
			hp->table_len = f[i].value_len;
		}
	}
	hp->rows++;
	if (hp->cb != NULL)
		hp->cb(f, n, hp->arg);
}

int
isp_held(isp_client *c, isp_row_cb *cb, void *arg, int timeout_ms)
{
	struct held_pages	 hp;
	struct rows_req		 rq;
	int			 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	memset(&hp, 0, sizeof(hp));
	hp.cb = cb;
	hp.arg = arg;
	client_lock(c);
	do {
		memset(&rq, 0, sizeof(rq));
		rq.type = PROTO_ADMIN;
		rq.what = PROTO_ADMIN_HELD;
		rq.session_id = hp.session;
		rq.key = hp.table;
		rq.key_len = hp.table_len;
		hp.rows = 0;
		rc = client_rows(c, "isp_held", &rq, held_row, &hp,
		    timeout_ms);
	} while (rc == ISP_OK && hp.rows > 0);
	return client_leave(c, rc);
}

int
isp_sync(isp_client *c, int timeout_ms)
{
	struct waiter	 w;
	struct conn	*cn;
	size_t		 mark;
	unsigned	 i;
	int		 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if ((rc = check_may_wait(c, "isp_sync")) != ISP_OK)
		goto out;
	memset(&w, 0, sizeof(w));
	w.kind = WAIT_PONG;
	w.id = wire_token(c);
	for (i = 0; i < c->nconns; i++) {
		cn = &c->conns[i];
		if (!client_conn_usable(cn))
			continue;
		mark = cn->out.len;
		proto_put_ping(&cn->out, PROTO_PING, w.id);
		if ((rc = wire_queued(cn, mark)) != ISP_OK)
			goto out;
		w.pending |= 1u << i;
	}
	if (w.pending == 0) {
		rc = no_session(c, "isp_sync");
		goto out;
	}
	waiter_link(c, &w);
	rc = run_wait(c, &w, timeout_ms);
	waiter_unlink(c, &w);
out:
	return client_leave(c, rc);
}
