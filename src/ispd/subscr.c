/*
 * subscr: subscriptions, the fan-out of events, and the answers to QUERY
 * (the STATS row itself is stats.c's).
 *
 * A subscription is on two lists: its table's (for fan-out) and its
 * session's (to drop them all when the session ends). Fan-out walks only
 * the table's list, so an event costs the same whatever the number of
 * tables, and it is encoded once, the first time a subscriber needs it,
 * into one obuf that every subscriber's queue shares. Whether a given
 * subscriber gets the event now, later as part of a catch-up, or through
 * its snapshot is feed.c's decision; so is the snapshot itself.
 *
 * Nothing here writes to a socket or frees a session: output is queued,
 * and a session that cannot take it is closed later (session_close()
 * only marks it), so the lists walked here never change under us.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isp.h"
#include "ispd.h"
#include "acl.h"
#include "feed.h"

/* Where events, snapshots and rows are encoded. */
static struct buf	 enc;
static size_t		 nsubs_total;
static uint64_t		 last_serial;

/* Every encoding starts from an empty, unmarked buffer. */
static void
enc_begin(void)
{
	enc.len = 0;
	buf_clear_failed(&enc);
}

int
subscr_match(const struct subscr *sub, const struct record *r)
{
	return r->key_len >= sub->prefix_len &&
	    memcmp(r->key, sub->prefix, sub->prefix_len) == 0;
}

static struct subscr *
subscr_find(const struct session *s, const struct table *t)
{
	struct subscr	*sub;

	/* A ONCE read in progress is not a subscription the client can
	 * name: it ends by itself. */
	TAILQ_FOREACH(sub, &s->subs, session_entry)
		if (sub->table == t && !sub->once)
			return sub;
	return NULL;
}

static void
subscr_encode(struct buf *b, uint8_t type, const struct table *t,
    const struct record *r, uint8_t reason)
{
	struct proto_bytes	 tname = proto_bytes(t->name, t->name_len);

	if (type == PROTO_EV_WITHDRAW)
		proto_put_ev_withdraw(b, tname, r->seq, record_key(r),
		    record_owner_id(r), record_owner(r), reason);
	else
		proto_put_ev_record(b, type, tname, r->seq, record_key(r),
		    record_owner_id(r), record_owner(r), record_fields(r));
}

/* The event encoded into *ob, encoded now if it was not yet. NULL when
 * out of memory. */
struct obuf *
subscr_event_obuf(struct obuf **ob, const struct table *t, uint8_t type,
    const struct record *r, uint8_t reason)
{
	if (*ob != NULL)
		return *ob;
	enc_begin();
	subscr_encode(&enc, type, t, r, reason);
	if (!buf_failed(&enc))
		*ob = obuf_new(enc.data, enc.len);
	enc_begin();
	return *ob;
}

/*
 * Tells every subscriber of t whose prefix matches r that r changed.
 * Called by table.c after the change (before freeing r for a withdraw).
 * was is r's owner before the change (for a withdrawal, its owner):
 * when that is an ended owner, the subscriptions it told of its end by
 * one EV_OWNER_GONE (gone.c) no longer hold r, so they are not sent its
 * withdrawal, and a replace is a new key to them.
 */
void
subscr_event(struct table *t, uint8_t type, const struct record *r,
    uint8_t reason, const struct owner *was)
{
	struct subscr	*sub;
	struct obuf	*ob = NULL, *ob_new = NULL;

	if (was != NULL && (!was->ghost || was->ntold == 0))
		was = NULL;
	TAILQ_FOREACH(sub, &t->subs, table_entry) {
		if (sub->session->state != SESSION_READY ||
		    !subscr_match(sub, r))
			continue;
		if (was == NULL || !gone_told(sub, was))
			feed_event(sub, type, r, reason, &ob);
		else if (type == PROTO_EV_REPLACE)
			feed_event(sub, PROTO_EV_ANNOUNCE, r, 0, &ob_new);
		else
			ispd_stats.owner_gone_withdrawals++;
	}
	if (ob != NULL)
		obuf_unref(ob);
	if (ob_new != NULL)
		obuf_unref(ob_new);
}

/*
 * r was taken back without an event (a client's new session announcing
 * again what a lost one left held): subscriptions with
 * PROTO_SUB_OWNER_GONE are told, by an EV_REPLACE naming the new owner,
 * so that the end of the old one later drops none of it (gone.c).
 */
void
subscr_owner_moved(struct table *t, const struct record *r)
{
	struct subscr	*sub;
	struct obuf	*ob = NULL;

	TAILQ_FOREACH(sub, &t->subs, table_entry) {
		if (sub->session->state != SESSION_READY || !sub->owner_gone ||
		    !subscr_match(sub, r))
			continue;
		feed_event(sub, PROTO_EV_REPLACE, r, 0, &ob);
	}
	if (ob != NULL)
		obuf_unref(ob);
}

/* Queues what enc holds (nframes frames) to s. Returns 0 or -1 (out of
 * memory; s is closing). */
static int
subscr_send(struct session *s, uint32_t nframes)
{
	int	 rc;

	if (buf_failed(&enc)) {
		enc_begin();
		return -1;
	}
	rc = session_send(s, &enc, nframes);
	enc_begin();
	return rc;
}

/*
 * SUBSCRIBE from s. Returns 0; an ISP_E_* code with why filled; or -1
 * when out of memory (the caller closes s).
 */
int
subscr_subscribe(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	struct subscr	*sub;
	struct table	*t;
	int		 once = (m->flags & PROTO_SUB_ONCE) != 0, rc;

	if (m->flags & ~PROTO_SUB_FLAGS) {
		snprintf(why, whysz, "unknown SUBSCRIBE flags 0x%02x",
		    m->flags);
		return ISP_E_BAD_REQUEST;
	}
	t = table_find(m->table);
	if ((rc = acl_check(s, t == NULL && !once ? ACL_SUBSCRIBE |
	    ACL_CREATE : ACL_SUBSCRIBE, t, m->table, m->req_id, why,
	    whysz)) != 0)
		return rc;
	if (t == NULL && once) {
		/* ONCE only reads: it does not create a table. */
		enc_begin();
		proto_put_ev_end(&enc, m->table, 0, 0);
		STATS_EVENT_SENT(PROTO_EV_END);
		return subscr_send(s, 1);
	}
	if (t != NULL && !once && subscr_find(s, t) != NULL) {
		snprintf(why, whysz, "already subscribed to table %s",
		    t->name);
		return ISP_E_ALREADY_SUBSCRIBED;
	}
	/* ONCE reads count too: each holds a cursor and dirty keys. */
	if (s->nsubs >= ispd_conf.max_subscriptions) {
		limit_hit(CONF_MAX_SUBSCRIPTIONS);
		snprintf(why, whysz, "this session has %zu subscriptions, the "
		    "limit (--max-subscriptions %" PRIu64 ")", s->nsubs,
		    ispd_conf.max_subscriptions);
		return ISP_E_LIMIT;
	}
	if (t == NULL && (rc = table_create(s, m->table, &t, why,
	    whysz)) != 0)
		return rc;
	if ((sub = calloc(1, sizeof(*sub) + m->key.len)) == NULL)
		return -1;
	sub->table = t;
	sub->session = s;
	sub->once = once;
	sub->owner_gone = (m->flags & PROTO_SUB_OWNER_GONE) != 0;
	sub->serial = ++last_serial;
	sub->req_id = m->req_id;
	sub->prefix_len = (uint16_t)m->key.len;
	memcpy(sub->prefix, m->key.p, m->key.len);
	TAILQ_INSERT_TAIL(&t->subs, sub, table_entry);
	TAILQ_INSERT_TAIL(&s->subs, sub, session_entry);
	t->nsubs++;
	t->ngone_subs += sub->owner_gone;
	s->nsubs++;
	nsubs_total++;
	feed_start(sub);
	/* A small table's snapshot and END are queued right now, before
	 * any later event of the table; a large one's as the socket
	 * drains. */
	return feed_fill(s);
}

void
subscr_remove(struct subscr *sub)
{
	feed_stop(sub);
	TAILQ_REMOVE(&sub->table->subs, sub, table_entry);
	TAILQ_REMOVE(&sub->session->subs, sub, session_entry);
	sub->table->nsubs--;
	sub->table->ngone_subs -= sub->owner_gone;
	sub->session->nsubs--;
	nsubs_total--;
	free(sub);
}

/* UNSUBSCRIBE from s. Returns 0 or an ISP_E_* code with why filled. */
int
subscr_unsubscribe(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	struct table	*t;
	struct subscr	*sub = NULL;
	char		 tname[PROTO_MAX_TABLE_BYTES + 1];

	if ((t = table_find(m->table)) != NULL)
		sub = subscr_find(s, t);
	if (sub == NULL) {
		snprintf(why, whysz, "not subscribed to table %s",
		    log_escape(tname, sizeof(tname), m->table.p,
		    m->table.len));
		return ISP_E_NOT_SUBSCRIBED;
	}
	subscr_remove(sub);
	return 0;
}

/*
 * Table t is dropped (ADMIN DROP) and its records were withdrawn: each
 * subscription to it ends with an ERROR NOT_FOUND to its SUBSCRIBE,
 * saying why, after the withdrawals its subscriber is owed. Returns how
 * many ended.
 */
size_t
subscr_table_dropped(struct table *t, const char *why)
{
	struct subscr	*sub;
	size_t		 n = 0;

	while ((sub = TAILQ_FIRST(&t->subs)) != NULL) {
		if (sub->session->state == SESSION_READY &&
		    feed_drain(sub) == 0)
			session_error(sub->session, sub->req_id,
			    ISP_E_NOT_FOUND, "%s", why);
		subscr_remove(sub);
		n++;
	}
	return n;
}

void
subscr_session_end(struct session *s)
{
	struct subscr	*sub;

	while ((sub = TAILQ_FIRST(&s->subs)) != NULL)
		subscr_remove(sub);
}

size_t
subscr_count(void)
{
	return nsubs_total;
}

/* The answer to an ADMIN request: one ROWS row of one field, done. */
int
subscr_reply_done(struct session *s, uint32_t req_id, const char *done)
{
	size_t	 start, fstart;

	enc_begin();
	start = proto_rows_begin(&enc, req_id);
	fstart = proto_fields_begin(&enc);
	proto_put_field(&enc, "done", 4, done, strlen(done));
	proto_fields_end(&enc, fstart, 1);
	proto_rows_end(&enc, start, 1);
	return subscr_send(s, 1);
}

/* At exit, after every session ended. */
void
subscr_free_all(void)
{
	if (nsubs_total != 0)
		fatalx("subscr_free_all: %zu subscriptions left", nsubs_total);
	buf_free(&enc);
	feed_free();
	gone_free();
}
