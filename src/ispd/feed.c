/*
 * feed: what each subscription is sent, so that its subscriber's view
 * stays equal to its table, in bounded memory, however slowly it reads.
 *
 * A subscription is state sync, not an event log (docs/LIMITS.md, "Slow
 * subscribers": an unbounded event log grows without end behind a slow
 * watcher, a bounded one loses changes). Three mechanisms, all per
 * subscription:
 *
 * The snapshot cursor. SUBSCRIBE does not encode the table at once: a
 * cursor walks the table's records in creation order (table->order) and
 * feed_fill() encodes the next ones whenever the session's queue is
 * below the low-water mark, so a snapshot of millions of records costs
 * at most a low-water mark of queue. Records created meanwhile go to the
 * tail of the order, so the cursor reaches them. A change to a record
 * the cursor has not reached needs nothing: the cursor sends the record
 * as it is then (or never, if it is gone by then). A change to a record
 * it has passed marks the key dirty.
 *
 * Dirty keys. An event is not queued but marks its key dirty when the
 * subscription is in its snapshot (until END), when it already has dirty
 * keys (so that a key is never sent out of order), or when the session's
 * queue holds --max-queue-bytes or more. A key is dirty at most once: a
 * hash of key copies plus a FIFO. An entry remembers whether the
 * subscriber holds the key (catch-up then sends EV_REPLACE rather than
 * EV_ANNOUNCE, and a key born and gone while behind is forgotten) and,
 * when the key is gone, its last EV_WITHDRAW (encoded once by the
 * fan-out and shared). So a slow subscription costs one entry per key
 * that is in the table or that the subscriber holds, never one per
 * event.
 *
 * Catch-up. feed_fill() then sends each dirty key's current state,
 * oldest first, again only while the queue is below the low-water mark:
 * EV_REPLACE (held) or EV_ANNOUNCE (not held) with the record's current
 * seq, or the stored EV_WITHDRAW. Intermediate values are skipped; the
 * final state always arrives; a key's events keep their order. Before
 * END this also covers what changed during the snapshot, so END comes
 * when the subscriber holds exactly the table as of END's seq.
 *
 * Nothing here writes to a socket: frames are queued and the session
 * writes them (session.c calls feed_fill() after each write).
 *
 * The per-subscription state of all this is struct feed_state, the
 * member feed of struct subscr, which no other file touches. (Not to be
 * taken for isp_sync(), libisp's barrier: a PING that session.c answers
 * with PONG, like any other.)
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ispd.h"
#include "feed.h"

/* Records the cursor and the dirty list may visit per feed_fill(): the
 * work done for one session in one loop turn stays small whatever the
 * table's size or a prefix's selectivity. */
#define FEED_FILL_VISITS	8192
/* Frames are encoded into chunks of about this size before they are
 * queued: few iovecs, no allocation much larger than a frame. */
#define FEED_CHUNK_BYTES	(64 * 1024)

/* A key whose change a subscriber has not been sent yet: an entry of a
 * subscription's feed.dirty hash and feed.dirty_list. */
struct dirty {
	struct hash_node	 node;
	TAILQ_ENTRY(dirty)	 entry;
	struct obuf		*withdraw;	/* gone: its last EV_WITHDRAW */
	uint8_t			 known;		/* the subscriber has the key */
	uint16_t		 key_len;
	uint8_t			 key[];
};

#define DIRTY_OF(n)	((struct dirty *)((char *)(n) - \
			    offsetof(struct dirty, node)))

/* Subscriptions that hold dirty keys, for the stats. */
static struct subscr_list	 slow_list = TAILQ_HEAD_INITIALIZER(slow_list);
static size_t			 nslow;
static size_t			 ndirty;
static size_t			 ncursors;
/* Where feed_fill() encodes. */
static struct buf		 sbuf;

static int
dirty_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct dirty	*d = DIRTY_OF(n);

	return d->key_len == len && memcmp(d->key, key, len) == 0;
}

/* The dirty entry of r's key. Records and dirty entries hash the key the
 * same way, so the record's hash value is reused. */
static struct dirty *
dirty_find(const struct subscr *sub, const struct record *r)
{
	struct hash_node	*n;

	if (sub->feed.dirty.count == 0)
		return NULL;
	n = hash_find(&sub->feed.dirty, r->node.hv, r->key, r->key_len,
	    dirty_eq);
	return n == NULL ? NULL : DIRTY_OF(n);
}

/* A subscription has work for feed_fill() until its END is queued and
 * while it holds dirty keys; the session counts such subscriptions to
 * know whether to keep asking for EPOLLOUT. */
static void
feed_account(struct subscr *sub)
{
	uint8_t	 working = !sub->feed.ended || sub->feed.dirty.count > 0;

	if (working == sub->feed.working)
		return;
	sub->feed.working = working;
	if (working)
		sub->session->nfeed++;
	else
		sub->session->nfeed--;
}

static struct dirty *
dirty_add(struct subscr *sub, const struct record *r, int known)
{
	struct session	*s = sub->session;
	struct dirty	*d;

	if ((d = malloc(sizeof(*d) + r->key_len)) == NULL)
		return NULL;
	d->withdraw = NULL;
	d->known = known != 0;
	d->key_len = r->key_len;
	memcpy(d->key, r->key, r->key_len);
	if (hash_insert(&sub->feed.dirty, &d->node, r->node.hv) == -1) {
		free(d);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&sub->feed.dirty_list, d, entry);
	ndirty++;
	if (sub->feed.dirty.count == 1) {
		TAILQ_INSERT_TAIL(&slow_list, sub, feed.slow_entry);
		nslow++;
		sub->feed.behind_ms = loop_now_ms();
		sub->feed.coalesced = 0;
		/* During the snapshot this is ordinary; after END it means
		 * the subscriber does not keep up. */
		if (sub->feed.ended)
			log_info("session %" PRIu64 " (%s): subscription to %s "
			    "fell behind with %zu bytes queued "
			    "(--max-queue-bytes %" PRIu64 "): changes are "
			    "coalesced per key until it catches up",
			    s->owner.id, s->owner.peer, sub->table->name,
			    s->out.bytes, ispd_conf.max_queue_bytes);
		feed_account(sub);
	}
	return d;
}

static void
dirty_remove(struct subscr *sub, struct dirty *d)
{
	hash_remove(&sub->feed.dirty, &d->node);
	TAILQ_REMOVE(&sub->feed.dirty_list, d, entry);
	if (d->withdraw != NULL)
		obuf_unref(d->withdraw);
	free(d);
	ndirty--;
	if (sub->feed.dirty.count == 0) {
		TAILQ_REMOVE(&slow_list, sub, feed.slow_entry);
		nslow--;
		/* A burst of a million dirty keys leaves a large slot
		 * array: give it back. */
		hash_free(&sub->feed.dirty);
		feed_account(sub);
	}
}

/* Keeps the stored withdrawal of d: the latest one is what the
 * subscriber must be told. */
static void
dirty_set_withdraw(struct dirty *d, struct obuf *ob)
{
	if (d->withdraw != NULL)
		obuf_unref(d->withdraw);
	d->withdraw = ob;
	if (ob != NULL)
		ob->refcnt++;
}

static void
cursor_stop(struct subscr *sub)
{
	if (sub->feed.cursor == NULL)
		return;
	TAILQ_REMOVE(&sub->table->cursors, sub, feed.cursor_entry);
	sub->feed.cursor = NULL;
	ncursors--;
}

/* Moves the cursor to next; past the last record the snapshot walk is
 * over. */
static void
cursor_move(struct subscr *sub, struct record *next)
{
	if (next != NULL)
		sub->feed.cursor = next;
	else
		cursor_stop(sub);
}

/* A new subscription: its snapshot starts at the table's oldest record. */
void
feed_start(struct subscr *sub)
{
	struct table	*t = sub->table;

	hash_init(&sub->feed.dirty);
	TAILQ_INIT(&sub->feed.dirty_list);
	sub->feed.held = 0;
	sub->feed.behind_ms = 0;
	sub->feed.coalesced = 0;
	sub->feed.ended = 0;
	sub->feed.working = 0;
	sub->feed.cursor = TAILQ_FIRST(&t->order);
	if (sub->feed.cursor != NULL) {
		TAILQ_INSERT_TAIL(&t->cursors, sub, feed.cursor_entry);
		ncursors++;
	}
	feed_account(sub);
}

/* The subscription ends: drops its cursor and dirty keys. */
void
feed_stop(struct subscr *sub)
{
	struct dirty	*d;

	cursor_stop(sub);
	while ((d = TAILQ_FIRST(&sub->feed.dirty_list)) != NULL)
		dirty_remove(sub, d);
	sub->feed.ended = 1;
	feed_account(sub);
}

/* 1 when an event for sub is queued at once: its snapshot is over
 * (END queued), it owes no key, its session's queue is under the bound.
 * Then what the subscriber holds once it read its queue is exactly the
 * table, as gone.c needs to tell it by one frame that an owner's
 * records are gone. */
int
feed_live(const struct subscr *sub)
{
	return sub->feed.ended && sub->feed.dirty.count == 0 &&
	    sub->session->out.bytes < ispd_conf.max_queue_bytes;
}

/*
 * Event type on record r (for a withdrawal, r is still in its table) for
 * a subscription whose prefix matches. Queues the event, marks the key
 * dirty, or does nothing when the snapshot cursor will send r anyway.
 * *ob is the event encoded once for every subscriber (subscr.c); it is
 * encoded here on first need. Out of memory closes the session: its view
 * would be wrong from then on.
 */
void
feed_event(struct subscr *sub, uint8_t type, const struct record *r,
    uint8_t reason, struct obuf **ob)
{
	struct session	*s = sub->session;
	struct table	*t = sub->table;
	struct dirty	*d;

	if ((d = dirty_find(sub, r)) != NULL) {
		/* Owed already: only the key's final state matters. */
		sub->feed.coalesced++;
		ispd_stats.coalesced_events++;
		if (type != PROTO_EV_WITHDRAW) {
			dirty_set_withdraw(d, NULL);
			return;
		}
		if (!d->known) {
			/* Born and gone while behind: the subscriber
			 * never needs to hear of it. */
			dirty_remove(sub, d);
			return;
		}
		if (subscr_event_obuf(ob, t, type, r, reason) == NULL)
			goto nomem;
		dirty_set_withdraw(d, *ob);
		return;
	}
	if (sub->feed.cursor != NULL && r->order >= sub->feed.cursor->order)
		return;
	if (!feed_live(sub)) {
		/* An ANNOUNCE is of a key absent until now, so one the
		 * subscriber does not hold; any other event is of a key it
		 * holds, since every earlier event of it was sent. */
		if ((d = dirty_add(sub, r, type != PROTO_EV_ANNOUNCE)) == NULL)
			goto nomem;
		sub->feed.coalesced++;
		ispd_stats.coalesced_events++;
		if (type == PROTO_EV_WITHDRAW) {
			if (subscr_event_obuf(ob, t, type, r, reason) == NULL)
				goto nomem;
			dirty_set_withdraw(d, *ob);
		}
		session_wake(s);
		return;
	}
	if (subscr_event_obuf(ob, t, type, r, reason) == NULL)
		goto nomem;
	session_push(s, *ob);
	STATS_EVENT_SENT(type);
	return;

nomem:
	session_close(s, SESSION_CLOSE_NOW, "out of memory for an event of "
	    "table %s", t->name);
}

/* Queues what sbuf holds. Returns 0, or -1 when out of memory (s is
 * closing then). */
static int
feed_flush_chunk(struct session *s, uint32_t *nframes)
{
	int	 rc = 0;

	if (*nframes > 0 || buf_failed(&sbuf))
		rc = session_send(s, &sbuf, *nframes);
	sbuf.len = 0;
	buf_clear_failed(&sbuf);
	*nframes = 0;
	return rc;
}

static void
feed_put_record(struct subscr *sub, uint8_t type, const struct record *r)
{
	const struct table	*t = sub->table;

	STATS_EVENT_SENT(type);
	proto_put_ev_record(&sbuf, type, proto_bytes(t->name, t->name_len),
	    r->seq, record_key(r), record_owner_id(r), record_owner(r),
	    record_fields(r));
}

/*
 * Works for one subscription until the queue reaches low bytes or the
 * budget of visits is spent: the snapshot first, then dirty keys, then
 * END. Returns 0, or -1 when out of memory (the session is closing).
 */
static int
feed_fill_one(struct subscr *sub, size_t low, unsigned *budget)
{
	struct session	*s = sub->session;
	struct table	*t = sub->table;
	struct record	*r;
	struct dirty	*d;
	uint32_t	 nframes = 0;
	int		 behind = sub->feed.ended && sub->feed.dirty.count > 0;

	sbuf.len = 0;
	buf_clear_failed(&sbuf);
	while (sub->feed.cursor != NULL && *budget > 0 &&
	    s->out.bytes + sbuf.len < low) {
		r = sub->feed.cursor;
		cursor_move(sub, TAILQ_NEXT(r, order_entry));
		(*budget)--;
		/* A dirty key was sent already and changed since (it was
		 * withdrawn and announced again): catch-up sends it. */
		if (!subscr_match(sub, r) || dirty_find(sub, r) != NULL)
			continue;
		feed_put_record(sub, PROTO_EV_ANNOUNCE, r);
		sub->feed.held++;
		nframes++;
		if (sbuf.len >= FEED_CHUNK_BYTES &&
		    feed_flush_chunk(s, &nframes) == -1)
			return -1;
	}

	while (sub->feed.cursor == NULL && *budget > 0 &&
	    (d = TAILQ_FIRST(&sub->feed.dirty_list)) != NULL &&
	    s->out.bytes + sbuf.len < low) {
		(*budget)--;
		if (d->withdraw != NULL) {
			/* The shared frame goes after what sbuf holds. */
			if (feed_flush_chunk(s, &nframes) == -1)
				return -1;
			session_push(s, d->withdraw);
			STATS_EVENT_SENT(PROTO_EV_WITHDRAW);
			if (s->state != SESSION_READY)
				return -1;
			sub->feed.held--;
		} else {
			r = table_lookup(t, proto_bytes(d->key, d->key_len));
			if (r == NULL)
				fatalx("feed: a dirty key of table %s has "
				    "neither a record nor a withdrawal",
				    t->name);
			feed_put_record(sub, d->known ? PROTO_EV_REPLACE :
			    PROTO_EV_ANNOUNCE, r);
			sub->feed.held += !d->known;
			nframes++;
		}
		ispd_stats.catchup_events++;
		dirty_remove(sub, d);
		if (sbuf.len >= FEED_CHUNK_BYTES &&
		    feed_flush_chunk(s, &nframes) == -1)
			return -1;
	}

	if (!sub->feed.ended && sub->feed.cursor == NULL &&
	    sub->feed.dirty.count == 0) {
		/* Everything sent before it is now in the subscriber's
		 * view, and nothing since t->seq is owed. */
		proto_put_ev_end(&sbuf, proto_bytes(t->name, t->name_len),
		    t->seq, sub->feed.held);
		STATS_EVENT_SENT(PROTO_EV_END);
		nframes++;
		sub->feed.ended = 1;
		feed_account(sub);
	}
	if (feed_flush_chunk(s, &nframes) == -1)
		return -1;
	if (behind && sub->feed.dirty.count == 0)
		log_info("session %" PRIu64 " (%s): subscription to %s caught "
		    "up after %" PRIu64 " ms; %" PRIu64 " events were "
		    "coalesced", s->owner.id, s->owner.peer, t->name,
		    loop_now_ms() - sub->feed.behind_ms, sub->feed.coalesced);
	if (sub->once && sub->feed.ended)
		subscr_remove(sub);
	return 0;
}

/*
 * Tops up s's queue to the low-water mark with snapshot records, catch-up
 * events and END markers, visiting at most FEED_FILL_VISITS records.
 * Subscriptions take turns, so a hot table that keeps one of them behind
 * does not starve the others. Returns 0, or -1 when out of memory (s is
 * closing; the caller stops serving it).
 */
int
feed_fill(struct session *s)
{
	struct subscr	*sub;
	size_t		 low = session_low_water(), n = s->nsubs;
	unsigned	 budget = FEED_FILL_VISITS;

	while (n-- > 0 && budget > 0 && s->nfeed > 0 && s->out.bytes < low &&
	    s->state == SESSION_READY) {
		sub = TAILQ_FIRST(&s->subs);
		TAILQ_REMOVE(&s->subs, sub, session_entry);
		TAILQ_INSERT_TAIL(&s->subs, sub, session_entry);
		if (sub->feed.working && feed_fill_one(sub, low, &budget) == -1)
			return -1;
	}
	return 0;
}

/*
 * sub ends because its table is dropped (ADMIN DROP), after every record
 * of it was withdrawn: what the subscriber is still owed is the stored
 * withdrawal of each key it holds and was not told of yet. They are
 * queued now, whatever the queue holds (one per key the subscriber
 * holds, which the dirty set bounded already), so that its view ends
 * empty before the ERROR that ends the subscription. Returns 0, or -1
 * when the session is closing.
 */
int
feed_drain(struct subscr *sub)
{
	struct session	*s = sub->session;
	struct dirty	*d;

	cursor_stop(sub);
	while ((d = TAILQ_FIRST(&sub->feed.dirty_list)) != NULL &&
	    s->state == SESSION_READY) {
		if (d->withdraw != NULL) {
			session_push(s, d->withdraw);
			STATS_EVENT_SENT(PROTO_EV_WITHDRAW);
			ispd_stats.catchup_events++;
			sub->feed.held--;
		}
		dirty_remove(sub, d);
	}
	return s->state == SESSION_READY ? 0 : -1;
}

/* r is leaving t: cursors standing on it move to the next record. */
void
feed_record_removed(struct table *t, struct record *r)
{
	struct subscr	*sub, *next;

	for (sub = TAILQ_FIRST(&t->cursors); sub != NULL; sub = next) {
		next = TAILQ_NEXT(sub, feed.cursor_entry);
		if (sub->feed.cursor == r)
			cursor_move(sub, TAILQ_NEXT(r, order_entry));
	}
}

/* r moved to nw (table.c: a replace with fields of another size):
 * cursors standing on it follow. */
void
feed_record_moved(struct table *t, const struct record *r, struct record *nw)
{
	struct subscr	*sub;

	TAILQ_FOREACH(sub, &t->cursors, feed.cursor_entry)
		if (sub->feed.cursor == r)
			sub->feed.cursor = nw;
}

void
feed_stats(struct feed_stats *st)
{
	struct subscr	*sub;
	uint64_t	 now = loop_now_ms();

	memset(st, 0, sizeof(*st));
	st->slow = nslow;
	st->dirty_keys = ndirty;
	st->snapshots = ncursors;
	TAILQ_FOREACH(sub, &slow_list, feed.slow_entry) {
		if (sub->feed.dirty.count > st->max_lag_keys)
			st->max_lag_keys = sub->feed.dirty.count;
		if (now - sub->feed.behind_ms > st->max_lag_ms)
			st->max_lag_ms = now - sub->feed.behind_ms;
	}
}

/* At exit, after every subscription ended. */
void
feed_free(void)
{
	if (nslow != 0 || ndirty != 0 || ncursors != 0)
		fatalx("feed_free: %zu slow subscriptions, %zu dirty keys, "
		    "%zu cursors left", nslow, ndirty, ncursors);
	buf_free(&sbuf);
}
