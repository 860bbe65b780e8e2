/*
 * State sync, tested through the daemon's own objects (as test_table.c):
 * the snapshot cursor, dirty keys and catch-up of feed.c, the input
 * bounds and pause of session.c, and the sliced withdrawal of an ended
 * session's records in table.c. Each client (harness/tc.h) is one end
 * of a socketpair whose other end is a real session driven by
 * loop_once(0); the session's send buffer is made small, so that a
 * client that does not read fills the session's queue quickly.
 *
 * A client keeps a view (key -> fields, seq) built from the events it
 * reads, and checks each event against it: EV_ANNOUNCE only of a key it
 * does not hold, EV_REPLACE and EV_WITHDRAW only of one it holds, and a
 * key's seq only grows. The view is then compared with the table.
 * A client that subscribes with PROTO_SUB_OWNER_GONE also applies
 * EV_OWNER_GONE (every key it holds of that owner goes, and there must
 * be count of them) and keeps each key's owner, which must then be the
 * table's exactly.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "isp.h"
#include "ispd.h"
#include "tc.h"

#define VIEW_SLOTS	65536	/* more than any test's keys */

struct vrec {
	int		 used;
	int		 present;
	char		 key[64];
	uint64_t	 seq;
	uint64_t	 owner;		/* owner_session */
	uint8_t		 fields[256];
	size_t		 fields_len;
};

/* A client's view (c->view): its keys, and what it read of them. */
struct tc_view {
	size_t		 held;		/* keys present */
	int		 ended;		/* EV_END read */
	uint64_t	 end_seq;
	uint64_t	 end_count;
	size_t		 events;	/* record events applied */
	size_t		 withdrawals;	/* of them EV_WITHDRAW */
	size_t		 gone_events;	/* EV_OWNER_GONE applied */
	size_t		 gone_keys;	/* keys they withdrew */
	uint64_t	 last_seq;	/* the highest seq since END */
	int		 owners_exact;	/* subscribed with OWNER_GONE */
	struct vrec	 slots[VIEW_SLOTS];	/* open addressing */
};

/* A welcomed client with an empty view. When small, its session sends
 * through a small socket buffer (4096 bytes). */
static struct tc *
viewer(const char *name, int small)
{
	struct tc	*c = tc_connect(small ? 4096 : 0);

	assert_non_null(c->view = calloc(1, sizeof(*c->view)));
	return tc_welcome(c, name);
}

static struct vrec *
view_slot(struct tc *c, const uint8_t *key, size_t len)
{
	struct vrec	*vs = c->view->slots;
	size_t		 i = hash_bytes(key, len) % VIEW_SLOTS, n;

	assert_true(len < sizeof(vs[0].key));
	for (n = 0; n < VIEW_SLOTS; n++, i = (i + 1) % VIEW_SLOTS) {
		if (!vs[i].used) {
			vs[i].used = 1;
			memcpy(vs[i].key, key, len);
			vs[i].key[len] = '\0';
			return &vs[i];
		}
		if (strlen(vs[i].key) == len &&
		    memcmp(vs[i].key, key, len) == 0)
			return &vs[i];
	}
	fail_msg("view full");
	return NULL;
}

/* Applies c->msg to the view, checking it against what c holds. */
static void
view_apply(struct tc *c)
{
	const struct proto_msg	*m = &c->msg;
	struct vrec		*v;
	size_t			 i, n = 0;

	if (m->type == PROTO_EV_END) {
		assert_false(c->view->ended);
		c->view->ended = 1;
		c->view->end_seq = m->seq;
		c->view->last_seq = m->seq;
		c->view->end_count = m->count;
		assert_int_equal(m->count, c->view->held);
		return;
	}
	if (m->type == PROTO_EV_OWNER_GONE) {
		/* Only live subscriptions are told: after END, in seq
		 * order with the other events. */
		assert_true(c->view->ended);
		assert_true(m->seq > c->view->last_seq);
		c->view->last_seq = m->seq;
		for (i = 0; i < VIEW_SLOTS; i++) {
			v = &c->view->slots[i];
			if (!v->used || !v->present ||
			    v->owner != m->owner_session)
				continue;
			v->present = 0;
			c->view->held--;
			n++;
		}
		assert_int_equal(n, m->count);
		c->view->gone_events++;
		c->view->gone_keys += n;
		return;
	}
	if (c->view->ended && m->seq > c->view->last_seq)
		c->view->last_seq = m->seq;
	v = view_slot(c, m->key.p, m->key.len);
	if (v->present && m->seq <= v->seq)
		fail_msg("key %s: seq %" PRIu64 " after %" PRIu64, v->key,
		    m->seq, v->seq);
	switch (m->type) {
	case PROTO_EV_ANNOUNCE:
		if (v->present)
			fail_msg("EV_ANNOUNCE of %s, which is held", v->key);
		v->present = 1;
		c->view->held++;
		break;
	case PROTO_EV_REPLACE:
		if (!v->present)
			fail_msg("EV_REPLACE of %s, which is not held", v->key);
		break;
	case PROTO_EV_WITHDRAW:
		if (!v->present)
			fail_msg("EV_WITHDRAW of %s, which is not held",
			    v->key);
		v->present = 0;
		c->view->held--;
		c->view->withdrawals++;
		break;
	default:
		fail_msg("unexpected %s", proto_type_name(m->type));
	}
	v->seq = m->seq;
	v->owner = m->owner_session;
	if (m->type != PROTO_EV_WITHDRAW) {
		assert_true(m->fields.len <= sizeof(v->fields));
		memcpy(v->fields, m->fields.p, m->fields.len);
		v->fields_len = m->fields.len;
	}
	c->view->events++;
}

/* Reads and applies events until a PING's PONG: everything queued before
 * it has been read. */
static void
view_sync(struct tc *c)
{
	uint64_t	 token = tc_ping(c);
	int		 i;

	for (i = 0; i < 1000000; i++) {
		assert_true(tc_next(c));
		if (c->msg.type == PROTO_PONG && c->msg.token == token)
			return;
		view_apply(c);
	}
	fail_msg("no PONG");
}

/* The view holds exactly the records of table t, as they are. */
static void
view_equals_table(struct tc *c, const char *table)
{
	struct table		*t = table_find(PB(table));
	struct hash_node	*n = NULL;
	struct record		*r;
	struct vrec		*v;
	size_t			 pos = 0, present = 0, i;

	assert_non_null(t);
	while ((n = hash_next(&t->records, &pos, n)) != NULL) {
		r = (struct record *)((char *)n - offsetof(struct record,
		    node));
		v = view_slot(c, r->key, r->key_len);
		if (!v->present)
			fail_msg("key %s is in the table, not in the view",
			    v->key);
		if (v->seq != r->seq)
			fail_msg("key %s: seq %" PRIu64 " in the view, %"
			    PRIu64 " in the table", v->key, v->seq, r->seq);
		if (c->view->owners_exact && v->owner != record_owner_id(r))
			fail_msg("key %s: owner %" PRIu64 " in the view, %"
			    PRIu64 " in the table", v->key, v->owner,
			    record_owner_id(r));
		assert_int_equal(v->fields_len, r->fields_len);
		assert_memory_equal(v->fields, record_fields(r).p,
		    r->fields_len);
	}
	for (i = 0; i < VIEW_SLOTS; i++)
		present += c->view->slots[i].used &&
		    c->view->slots[i].present;
	assert_int_equal(present, t->records.count);
	assert_int_equal(c->view->held, t->records.count);
}

/* The records of these tests have one field, v. Queues an ANNOUNCE from
 * c into b (written by the caller). */
static void
put_announce(struct tc *c, struct buf *b, const char *table,
    const char *key, const char *value)
{
	tc_put_announce(c, b, table, key, 0, "v", value);
}

static void
announce(struct tc *c, const char *table, const char *key,
    const char *value)
{
	tc_announce_field(c, table, key, 0, "v", value);
}

/* The publisher's requests are all handled: its PONG came back. */
static void
barrier(struct tc *c)
{
	uint64_t	 token = tc_ping(c);

	do
		assert_true(tc_next(c));
	while (c->msg.type != PROTO_PONG || c->msg.token != token);
}

/* The harness's setup and teardown, with a small queue bound and the
 * per-address counts of limit.c freed at the end. */
static int
setup(void **state)
{
	tc_setup(state);
	ispd_conf.max_queue_bytes = 16384;
	ispd_conf.max_frame_bytes = PROTO_MAX_FRAME_BYTES;
	return 0;
}

static int
teardown(void **state)
{
	tc_teardown(state);
	limit_free();
	ispd_conf.max_queue_bytes = 8 * 1024 * 1024;
	return 0;
}

static struct subscr *
first_sub(struct tc *c)
{
	assert_non_null(TAILQ_FIRST(&c->s->subs));
	return TAILQ_FIRST(&c->s->subs);
}

/*
 * A subscriber that stops reading: its queue stays within the bound, its
 * dirty set within the keys, publishers are not slowed; when it reads
 * again it gets each key's final state and converges to the table.
 */
static void
test_slow_subscriber_coalesces(void **state)
{
	struct tc	*w = viewer("slow", 1), *a = viewer("pub", 0);
	struct buf	 b;
	struct subscr	*sub;
	char		 key[32], val[64];
	size_t		 max_bytes = 0;
	int		 i;

	tc_subscribe(w, "T", "", 0);
	assert_true(tc_next(w));
	view_apply(w);
	assert_true(w->view->ended);

	buf_init(&b);
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "k%02d", i % 50);
		snprintf(val, sizeof(val), "value %d, padded to a useful "
		    "size", i);
		/* Withdraw some keys now and then: a key gone for good and
		 * one born and gone while behind must be right too. */
		if (i % 997 == 0 && i > 0)
			proto_put_withdraw(&b, ++a->next_req, PB("T"),
			    PB(key));
		else
			put_announce(a, &b, "T", key, val);
		if (i == 15000)
			put_announce(a, &b, "T", "ephemeral", "x");
		if (i == 15001)
			proto_put_withdraw(&b, ++a->next_req, PB("T"),
			    PB("ephemeral"));
		if (b.len > 16384) {
			tc_write(a, &b);
			tc_pump();
		}
		if (w->s->out.bytes > max_bytes)
			max_bytes = w->s->out.bytes;
	}
	tc_withdraw(a, "T", "k07");
	tc_write(a, &b);
	barrier(a);
	buf_free(&b);

	/* The bound held, the key set is bounded by the keys, and events
	 * were coalesced rather than queued. */
	assert_true(max_bytes <= ispd_conf.max_queue_bytes + 1024);
	sub = first_sub(w);
	assert_true(sub->feed.dirty.count > 0 && sub->feed.dirty.count <= 51);
	assert_true(ispd_stats.coalesced_events > 0);
	assert_true(w->s->in_paused == 0);

	view_sync(w);
	/* view_sync()'s PONG may overtake the catch-up: read on until the
	 * dirty set is empty and the queue drained. */
	for (i = 0; i < 1000 && (sub->feed.dirty.count > 0 ||
	    w->s->out.bytes > 0); i++)
		view_sync(w);
	assert_int_equal(sub->feed.dirty.count, 0);
	/* The last frames may still sit in the socket, behind that PONG. */
	view_sync(w);
	view_equals_table(w, "T");
	/* Far fewer events than were published. */
	assert_true(w->view->events < 20000);
	assert_true(ispd_stats.catchup_events > 0);
}

/*
 * A snapshot walked by a cursor while the table changes on both sides of
 * it: END comes when the subscriber holds exactly the table, with END's
 * seq the table's and END's count the records held.
 */
static void
test_snapshot_cursor_end_exact(void **state)
{
	struct tc	*w = viewer("watcher", 1), *a = viewer("pub", 0);
	struct tc	*b2 = viewer("other", 0);
	struct buf	 b;
	struct subscr	*sub;
	struct table	*t;
	char		 key[32];
	uint64_t	 at;
	int		 i, n = 3000, k;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%04d", i);
		put_announce(a, &b, "T", key, "v0");
		if (b.len > 16384)
			tc_write(a, &b);
	}
	tc_write(a, &b);
	barrier(a);
	t = table_find(PB("T"));
	assert_int_equal(t->records.count, n);

	/* Subscribe, read a little: the cursor stops partway. */
	tc_subscribe(w, "T", "", 0);
	tc_pump();
	tc_fill(w, 8192);
	tc_pump();
	sub = first_sub(w);
	assert_non_null(sub->feed.cursor);
	at = sub->feed.cursor->order;
	assert_true(at > 10 && at < (uint64_t)n - 10);

	/* Changes behind the cursor, ahead of it, and new keys. */
	snprintf(key, sizeof(key), "k%04d", 1);
	announce(a, "T", key, "behind-replaced");
	snprintf(key, sizeof(key), "k%04d", (int)at + 5);
	announce(a, "T", key, "ahead-replaced");
	snprintf(key, sizeof(key), "k%04d", 2);
	tc_withdraw(a, "T", key);
	snprintf(key, sizeof(key), "k%04d", (int)at + 6);
	tc_withdraw(a, "T", key);
	snprintf(key, sizeof(key), "k%04d", 3);
	tc_withdraw(a, "T", key);
	announce(b2, "T", key, "back-by-another");	/* behind, reborn */
	announce(a, "T", "new-1", "n");
	announce(a, "T", "new-2", "n");
	tc_withdraw(a, "T", "new-2");
	snprintf(key, sizeof(key), "k%04d", 4);
	announce(b2, "T", key, "taken-over");		/* behind, replaced */
	barrier(a);
	barrier(b2);

	/* Read to END, applying and checking every event. */
	for (k = 0; k < 100000 && !w->view->ended; k++) {
		assert_true(tc_next(w));
		view_apply(w);
	}
	assert_true(w->view->ended);
	assert_int_equal(w->view->end_seq, t->seq);
	assert_int_equal(w->view->end_count, t->records.count);
	view_equals_table(w, "T");

	/* Live from here, in seq order. */
	announce(a, "T", "after", "x");
	barrier(a);
	assert_true(tc_next(w));
	assert_int_equal(w->msg.type, PROTO_EV_ANNOUNCE);
	assert_true(w->msg.seq > w->view->end_seq);
	view_apply(w);
	view_equals_table(w, "T");
	assert_null(TAILQ_FIRST(&t->cursors));
	buf_free(&b);
}

/* ONCE reads go through the cursor too and leave nothing behind. */
static void
test_once_cursor(void **state)
{
	struct tc	*w = viewer("dump", 1), *a = viewer("pub", 0);
	struct buf	 b;
	char		 key[32];
	int		 i, k;

	buf_init(&b);
	for (i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "k%04d", i);
		put_announce(a, &b, "T", key, "v");
		if (b.len > 16384)
			tc_write(a, &b);
	}
	tc_write(a, &b);
	barrier(a);
	proto_put_subscribe(&b, 5, PB("T"), PROTO_SUB_ONCE, PB(""));
	tc_write(w, &b);
	for (k = 0; k < 10000 && !w->view->ended; k++) {
		assert_true(tc_next(w));
		view_apply(w);
	}
	assert_true(w->view->ended);
	assert_int_equal(w->view->end_count, 2000);
	assert_int_equal(w->s->nsubs, 0);
	assert_int_equal(table_find(PB("T"))->nsubs, 0);
	buf_free(&b);
}

/*
 * Input: a frame is read into a buffer of its own size, never more; a
 * frame over --max-frame-bytes is refused by its length alone; a client
 * that sends requests without reading the answers is paused, and
 * resumed when it reads.
 */
static void
test_input_bounds(void **state)
{
	struct tc		*c = viewer("big", 0), *d, *p;
	struct buf		 b;
	uint8_t			 hdr[5];
	static uint8_t		 junk[200000];
	const struct proto_msg	*m;
	size_t			 frame = 4 + 300000;
	uint64_t		 tok;
	int			 i;

	/* The first 200,000 bytes of a 300,000-byte frame. */
	put_be32(hdr, (uint32_t)(frame - 4));
	hdr[4] = PROTO_ANNOUNCE;
	assert_int_equal(write(c->fd, hdr, 5), 5);
	tc_pump();
	buf_init(&b);
	buf_put(&b, junk, sizeof(junk));
	tc_write(c, &b);
	for (i = 0; i < 20; i++)
		tc_pump();
	assert_int_equal(c->s->in.len, 5 + sizeof(junk));
	assert_true(c->s->in.cap <= frame);

	/* Over the configured limit: ERROR LIMIT naming it, closed. */
	ispd_conf.max_frame_bytes = 4096;
	d = viewer("small", 0);
	put_be32(hdr, 5000);
	assert_int_equal(write(d->fd, hdr, 5), 5);
	m = tc_expect(d, PROTO_ERROR);
	assert_int_equal(m->code, ISP_E_LIMIT);
	assert_non_null(memmem(m->text.p, m->text.len, "--max-frame-bytes",
	    17));
	ispd_conf.max_frame_bytes = PROTO_MAX_FRAME_BYTES;

	/* 20,000 PINGs, no reading: paused within twice the queue bound. */
	p = viewer("pinger", 1);
	for (i = 0; i < 20000; i++) {
		proto_put_ping(&b, PROTO_PING, (uint64_t)i + 1);
		if (b.len > 4096) {
			ssize_t	 n = write(p->fd, b.data, b.len);

			if (n > 0)
				buf_consume(&b, (size_t)n);
			tc_pump();
			assert_true(p->s->out.bytes <=
			    2 * ispd_conf.max_queue_bytes + 64);
			assert_true(p->s->in.cap <= SESSION_READ_BYTES);
		}
	}
	assert_int_equal(p->s->in_paused, 1);
	assert_true(session_paused_count() >= 1);
	/* Reading resumes it; every PONG comes, in order. */
	for (tok = 1; tok <= 20000; tok++) {
		if (b.len > 0) {
			ssize_t	 n = write(p->fd, b.data, b.len);

			if (n > 0)
				buf_consume(&b, (size_t)n);
		}
		m = tc_expect(p, PROTO_PONG);
		assert_int_equal(m->token, tok);
	}
	assert_int_equal(p->s->in_paused, 0);
	buf_free(&b);
}

/*
 * An ended session's records go in slices, a ghost owning them until
 * then; other sessions are served between slices; an announce of a
 * ghost's key takes it over; its row goes after its last record.
 */
static void
test_ghost_withdraw(void **state)
{
	struct tc	*w = viewer("watcher", 0), *a = viewer("big", 0);
	struct tc	*o = viewer("other", 0);
	struct buf	 b;
	struct session	*ghost;
	struct table	*t;
	char		 key[32];
	int		 i, n = 3 * TABLE_WITHDRAW_SLICE + 5, turns = 0;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%06d", i);
		put_announce(a, &b, "BIG", key, "v");
		if (b.len > 65536)
			tc_write(a, &b);
	}
	tc_write(a, &b);
	barrier(a);
	buf_free(&b);
	t = table_find(PB("BIG"));
	assert_int_equal(t->records.count, n);
	tc_subscribe(w, PROTO_SESSIONS_TABLE, "", 0);
	view_sync(w);

	ghost = a->s;
	close(a->fd);
	a->fd = -1;
	loop_once(0);			/* EOF read: closing */
	loop_once(0);			/* reaped: the first slice */
	assert_true(t->records.count > 0 && t->records.count < (size_t)n);
	assert_int_equal(ghost->owner.ghost, 1);
	assert_int_equal(ghost->released, 1);
	assert_true(table_withdraw_pending());

	/* The other session takes over a record the ghost still holds. */
	snprintf(key, sizeof(key), "k%06d", n - 1);
	announce(o, "BIG", key, "mine");
	barrier(o);
	assert_ptr_equal(table_lookup(t, PB(key))->owner, &o->s->owner);

	for (turns = 0; table_withdraw_pending() && turns < 100; turns++)
		loop_once(0);
	assert_false(table_withdraw_pending());
	assert_int_equal(t->records.count, 1);
	assert_non_null(table_lookup(t, PB(key)));
	assert_int_equal(table_withdraw_backlog(), 0);

	/* The watcher saw the row go (after every record). */
	view_sync(w);
	view_equals_table(w, PROTO_SESSIONS_TABLE);
	assert_int_equal(w->view->held, 2);	/* watcher and other */
}

/* A viewer whose subscriptions take EV_OWNER_GONE: its view keeps
 * owners, which must be the table's. */
static struct tc *
gone_viewer(const char *name, int small)
{
	struct tc	*c = viewer(name, small);

	c->view->owners_exact = 1;
	return c;
}

/* Reads until c's subscriptions owe nothing and its queue is empty:
 * view_sync()'s PONG may overtake a catch-up. */
static void
view_settle(struct tc *c)
{
	struct subscr	*sub;
	int		 i, owed = 1;

	for (i = 0; i < 1000 && owed; i++) {
		view_sync(c);
		owed = c->s->out.bytes > 0;
		TAILQ_FOREACH(sub, &c->s->subs, session_entry)
			owed |= sub->feed.dirty.count > 0 ||
			    sub->feed.cursor != NULL;
	}
	assert_false(owed);
	view_sync(c);
}

/* n records k00000... of one field into table, from c. */
static void
announce_many(struct tc *c, const char *table, int n, const char *value)
{
	struct buf	 b;
	char		 key[32];
	int		 i;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%05d", i);
		put_announce(c, &b, table, key, value);
		if (b.len > 65536)
			tc_write(c, &b);
	}
	tc_write(c, &b);
	barrier(c);
	buf_free(&b);
}

/* Turns the loop until every ghost's records are withdrawn. */
static void
ghosts_done(void)
{
	int	 turns;

	for (turns = 0; table_withdraw_pending() && turns < 1000; turns++)
		loop_once(0);
	assert_false(table_withdraw_pending());
}

/*
 * Two sessions end at once: a live subscription with the flag gets one
 * EV_OWNER_GONE for each, naming it and the count of its records, and
 * none of the withdrawals; one without the flag gets them all, and one
 * with a prefix is told only of the owner that has keys under it, with
 * their count. While the ghost still holds records, another session's
 * announce of one is a new key to the told views and a REPLACE to the
 * other, and an operator's evict of one reaches only the other: no view
 * is ever told of a key it does not hold.
 */
static void
test_owner_gone_live(void **state)
{
	struct tc	*w = gone_viewer("told", 0), *l = viewer("legacy", 0);
	struct tc	*pw = gone_viewer("prefixed", 0);
	struct tc	*a = viewer("big", 0), *a2 = viewer("small", 0);
	struct tc	*o = viewer("other", 0);
	struct buf	 b;
	struct table	*t;
	uint64_t	 ev0 = ispd_stats.owner_gone_events;
	uint64_t	 wd0 = ispd_stats.owner_gone_withdrawals;
	char		 key[32];
	int		 i, n = 3 * TABLE_WITHDRAW_SLICE + 5;

	tc_subscribe(w, "T", "", PROTO_SUB_OWNER_GONE);
	tc_subscribe(l, "T", "", 0);
	tc_subscribe(pw, "T", "k0000", PROTO_SUB_OWNER_GONE);
	announce_many(a, "T", n, "v");
	for (i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "j%05d", i);
		announce(a2, "T", key, "v");
	}
	barrier(a2);
	announce(o, "T", "o1", "w");
	announce(o, "T", "o2", "w");
	barrier(o);
	view_settle(w);
	view_settle(l);
	view_settle(pw);
	t = table_find(PB("T"));
	assert_int_equal(t->records.count, n + 52);

	close(a->fd);
	a->fd = -1;
	close(a2->fd);
	a2->fd = -1;
	loop_once(0);			/* EOF read: closing */
	loop_once(0);			/* reaped: told, the first slice */
	assert_true(table_withdraw_pending());
	/* The other session announces a key the ghost still holds, and an
	 * operator evicts another. */
	snprintf(key, sizeof(key), "k%05d", n - 1);
	assert_true(table_lookup(t, PB(key))->owner->ghost);
	announce(o, "T", key, "mine");
	snprintf(key, sizeof(key), "k%05d", n - 2);
	assert_true(table_lookup(t, PB(key))->owner->ghost);
	buf_init(&b);
	proto_put_admin_evict(&b, ++o->next_req, PB("T"), PB(key));
	tc_write(o, &b);
	buf_free(&b);
	barrier(o);
	assert_null(table_lookup(t, PB(key)));
	ghosts_done();

	view_settle(w);
	view_settle(l);
	view_settle(pw);
	view_equals_table(w, "T");
	view_equals_table(l, "T");
	assert_int_equal(t->records.count, 3);
	assert_int_equal(w->view->gone_events, 2);
	assert_int_equal(w->view->gone_keys, n + 50);
	assert_int_equal(w->view->withdrawals, 0);
	assert_int_equal(l->view->gone_events, 0);
	/* The key the other session took over was replaced, not
	 * withdrawn: a REPLACE for l, a new key for the told ones. */
	assert_int_equal(l->view->withdrawals, n - 1 + 50);
	/* k00000 to k00009: ten keys under the prefix, none of a2. */
	assert_int_equal(pw->view->gone_events, 1);
	assert_int_equal(pw->view->gone_keys, 10);
	assert_int_equal(pw->view->withdrawals, 0);
	assert_int_equal(pw->view->held, 0);
	assert_int_equal(ispd_stats.owner_gone_events - ev0, 3);
	assert_int_equal(ispd_stats.owner_gone_withdrawals - wd0,
	    (uint64_t)n - 1 + 50 + 10);
}

/*
 * A subscription with the flag that is in its snapshot, or behind, when
 * an owner ends is not told by EV_OWNER_GONE: it gets the per-record
 * withdrawals, in order with what it is owed, and ends exactly at the
 * table.
 */
static void
test_owner_gone_not_live(void **state)
{
	struct tc	*s = gone_viewer("in-snapshot", 1);
	struct tc	*b = gone_viewer("behind", 1);
	struct tc	*a = viewer("pub", 0), *o = viewer("other", 0);
	struct buf	 bb;
	char		 key[32], val[64];
	uint64_t	 ev0 = ispd_stats.owner_gone_events;
	int		 i, n = 3000;

	tc_subscribe(b, "T", "", PROTO_SUB_OWNER_GONE);
	view_sync(b);
	announce_many(a, "T", n, "v0");
	announce(o, "T", "o1", "w");
	barrier(o);

	/* s: subscribed, read a little: its cursor stops partway. */
	tc_subscribe(s, "T", "", PROTO_SUB_OWNER_GONE);
	tc_pump();
	tc_fill(s, 8192);
	tc_pump();
	assert_non_null(first_sub(s)->feed.cursor);
	/* b: did not read, so its queue is full and keys are owed. */
	buf_init(&bb);
	for (i = 0; i < 2000 && first_sub(b)->feed.dirty.count == 0; i++) {
		snprintf(val, sizeof(val), "value %d, padded to a useful "
		    "size", i);
		put_announce(o, &bb, "T", "o1", val);
		tc_write(o, &bb);
		tc_pump();
	}
	buf_free(&bb);
	assert_true(first_sub(b)->feed.dirty.count > 0);

	tc_hangup(a);
	loop_once(0);
	loop_once(0);
	snprintf(key, sizeof(key), "k%05d", n - 1);
	announce(o, "T", key, "mine");
	barrier(o);
	ghosts_done();
	assert_int_equal(ispd_stats.owner_gone_events, ev0);

	view_settle(s);
	view_settle(b);
	assert_true(s->view->ended);
	view_equals_table(s, "T");
	view_equals_table(b, "T");
	/* The per-record path: the withdrawals came one by one. */
	assert_int_equal(s->view->gone_events, 0);
	assert_int_equal(b->view->gone_events, 0);
	assert_true(b->view->withdrawals > 0);
	assert_int_equal(table_find(PB("T"))->records.count, 2);
}

/* Tables named G... are graceful; the patterns are kept for the
 * process. */
static void
graceful_tables(void)
{
	static int	 added;

	if (!added)
		assert_int_equal(graceful_add("G*"), 0);
	added = 1;
	ispd_conf.graceful_ms = 30000;
}

/*
 * Graceful restart with the flag: a record the client's next session
 * takes back unchanged is an EV_REPLACE naming the new owner for a
 * subscription with the flag (nothing for one without), so that the
 * held set's end, one EV_OWNER_GONE of reason HELD, drops only what was
 * not taken back.
 */
static void
test_owner_gone_graceful(void **state)
{
	struct tc	*w = gone_viewer("told", 0), *l = viewer("legacy", 0);
	struct tc	*a = viewer("alice", 0), *a2;
	const struct proto_msg *m;
	struct buf	 bb;
	uint64_t	 a_id = a->id;
	size_t		 nheld, before;

	graceful_tables();
	tc_subscribe(w, "GR", "", PROTO_SUB_OWNER_GONE);
	tc_subscribe(l, "GR", "", 0);
	announce_many(a, "GR", 5, "x");
	view_sync(w);
	view_sync(l);

	tc_hangup(a);			/* lost: held, no event */
	tc_pump();
	assert_int_equal(graceful_held_records(&nheld), 5);
	a2 = viewer("alice", 0);
	announce(a2, "GR", "k00000", "x");
	announce(a2, "GR", "k00001", "x");
	announce(a2, "GR", "k00002", "changed");
	barrier(a2);
	m = tc_expect(w, PROTO_EV_REPLACE);
	assert_int_equal(m->owner_session, a2->id);
	view_apply(w);
	m = tc_expect(w, PROTO_EV_REPLACE);
	assert_int_equal(m->owner_session, a2->id);
	view_apply(w);
	view_sync(w);
	before = l->view->events;
	view_sync(l);
	assert_int_equal(l->view->events - before, 1);	/* the change */

	buf_init(&bb);
	proto_put_end_of_replay(&bb, 9);
	tc_write(a2, &bb);
	buf_free(&bb);
	ghosts_done();
	m = tc_expect(w, PROTO_EV_OWNER_GONE);
	assert_int_equal(m->owner_session, a_id);
	assert_int_equal(m->reason, PROTO_WD_HELD);
	assert_int_equal(m->count, 2);
	view_apply(w);
	view_settle(w);
	view_settle(l);
	view_equals_table(w, "GR");
	/* l's copies of what was taken back keep the old owner and seq. */
	assert_int_equal(w->view->held, 3);
	assert_int_equal(l->view->held, 3);
	assert_int_equal(l->view->withdrawals, 2);
}


/*
 * A held set released by END_OF_REPLAY is withdrawn in slices like an
 * ended session: meanwhile its client's session announcing one of its
 * records again takes it over with an event (not silently, as from a
 * held set still held), so neither the told view nor the other is left
 * with a record that differs from the table's; the record survives the
 * slices, owned by that session.
 */
static void
test_released_held_set_taken_over(void **state)
{
	struct tc	*w = gone_viewer("told", 0), *l = viewer("legacy", 0);
	struct tc	*a = viewer("alice", 0), *a2;
	struct buf	 bb;
	struct record	*r;
	char		 key[32];
	int		 n = 3 * TABLE_WITHDRAW_SLICE + 5;

	graceful_tables();
	tc_subscribe(w, "GBIG", "", PROTO_SUB_OWNER_GONE);
	tc_subscribe(l, "GBIG", "", 0);
	announce_many(a, "GBIG", n, "v");
	view_settle(w);
	view_settle(l);
	tc_hangup(a);			/* lost: held */
	/* END_OF_REPLAY releases the held set, whose first slice goes at
	 * once; the announce, read with it, finds the last record still
	 * owned by the released set. */
	a2 = viewer("alice", 0);
	snprintf(key, sizeof(key), "k%05d", n - 1);
	buf_init(&bb);
	proto_put_end_of_replay(&bb, 9);
	put_announce(a2, &bb, "GBIG", key, "v");
	tc_write(a2, &bb);
	buf_free(&bb);
	barrier(a2);
	ghosts_done();

	view_settle(w);
	view_settle(l);
	view_equals_table(w, "GBIG");
	view_equals_table(l, "GBIG");
	r = table_lookup(table_find(PB("GBIG")), PB(key));
	assert_non_null(r);
	assert_ptr_equal(r->owner, &a2->s->owner);
	assert_int_equal(table_find(PB("GBIG"))->records.count, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slow_subscriber_coalesces,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_cursor_end_exact,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_once_cursor, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_input_bounds, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_owner_gone_live, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_owner_gone_not_live,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_gone_graceful,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_released_held_set_taken_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ghost_withdraw, setup,
		    teardown),
	};

	return cmocka_run_group_tests_name("feed", tests, NULL, NULL);
}
