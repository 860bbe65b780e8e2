/*
 * Table semantics, tested through the daemon's own objects: each test
 * client (harness/tc.h) is one end of a socketpair whose other end is a
 * real ispd session, driven by the real loop (loop_once(0)). A client
 * writes encoded frames and decodes what the session wrote back with
 * proto_decode(), so the whole path is exercised: framing, dispatch,
 * table.c, subscr.c, outq.c.
 *
 * "Nothing was sent" is checked by a PING: its PONG must be the very
 * next frame, since a session answers in order.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "isp.h"
#include "ispd.h"
#include "tc.h"

static void
assert_pb(struct proto_bytes got, const char *want)
{
	if (got.len != strlen(want) || memcmp(got.p, want, got.len) != 0)
		fail_msg("expected '%s', got '%.*s'", want, (int)got.len,
		    (const char *)got.p);
}

/* The value of field name in a fields block, as a C string. */
static const char *
field(struct proto_bytes fields, const char *name)
{
	static char		 v[256];
	struct proto_field_iter	 it;
	struct proto_field	 f;

	proto_fields_iter(&it, fields);
	while (proto_fields_next(&it, &f)) {
		if (f.name.len == strlen(name) &&
		    memcmp(f.name.p, name, f.name.len) == 0) {
			snprintf(v, sizeof(v), "%.*s", (int)f.value.len,
			    (const char *)f.value.p);
			return v;
		}
	}
	fail_msg("no field %s", name);
	return NULL;
}

/* Checks an EV_ANNOUNCE/EV_REPLACE/EV_WITHDRAW from c. */
static void
expect_event(struct tc *c, uint8_t type, const char *key, uint64_t seq,
    const struct tc *owner, const char *owner_name, const char *contact)
{
	const struct proto_msg	*m = tc_expect(c, type);

	assert_pb(m->key, key);
	assert_int_equal(m->seq, seq);
	assert_int_equal(m->owner_session, owner->id);
	assert_pb(m->owner, owner_name);
	if (contact != NULL)
		assert_string_equal(field(m->fields, "contact"), contact);
}

static void
expect_end(struct tc *c, uint64_t seq, uint64_t count)
{
	const struct proto_msg	*m = tc_expect(c, PROTO_EV_END);

	assert_int_equal(m->seq, seq);
	assert_int_equal(m->count, count);
}

static struct record *
lookup(const char *table, const char *key)
{
	struct table		*t;
	struct hash_node	*n = NULL;
	struct record		*r;
	size_t			 pos = 0;

	if ((t = table_find(PB(table))) == NULL)
		return NULL;
	while ((n = hash_next(&t->records, &pos, n)) != NULL) {
		r = (struct record *)((char *)n -
		    offsetof(struct record, node));
		if (r->key_len == strlen(key) &&
		    memcmp(r->key, key, r->key_len) == 0)
			return r;
	}
	return NULL;
}

/* A new key: EV_ANNOUNCE with seq 1, the announcer as owner. */
static void
test_announce(void **state)
{
	struct tc	*w = tc_new("watcher"), *a = tc_new("alice");

	tc_subscribe(w, "SIP_REGISTRATION", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "SIP_REGISTRATION", "sip:100@x", "sip:100@10.0.0.1", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "sip:100@x", 1, a, "alice",
	    "sip:100@10.0.0.1");
	assert_ptr_equal(lookup("SIP_REGISTRATION", "sip:100@x")->owner,
	    &a->s->owner);
	tc_expect_nothing(a);
	tc_expect_nothing(w);
}

/* Another session announcing the key takes it: EV_REPLACE, new owner. */
static void
test_replace_moves_ownership(void **state)
{
	struct tc	*w = tc_new("watcher"), *a = tc_new("alice");
	struct tc	*b = tc_new("bob");
	uint32_t	 req;

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "T", "k", "one", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k", 1, a, "alice", "one");
	tc_announce(b, "T", "k", "two", 0);
	expect_event(w, PROTO_EV_REPLACE, "k", 2, b, "bob", "two");
	assert_ptr_equal(lookup("T", "k")->owner, &b->s->owner);
	assert_int_equal(a->s->owner.nrecords, 0);
	assert_int_equal(b->s->owner.nrecords, 1);

	/* The former owner may not withdraw it any more. */
	req = tc_withdraw(a, "T", "k");
	tc_expect_error(a, req, ISP_E_NOT_OWNER);
	assert_non_null(memmem(a->msg.text.p, a->msg.text.len, "(bob)", 5));
	assert_ptr_equal(lookup("T", "k")->owner, &b->s->owner);
	tc_expect_nothing(w);
}

/* The owner announcing the same fields again: no event, TTL refreshed. */
static void
test_identical_reannounce_refreshes_ttl(void **state)
{
	struct tc	*w = tc_new("watcher"), *a = tc_new("alice");
	struct record	*r;
	uint64_t	 first;

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "T", "k", "one", 5);
	expect_event(w, PROTO_EV_ANNOUNCE, "k", 1, a, "alice", "one");
	r = lookup("T", "k");
	first = r->expire_ms;
	assert_true(first != 0);

	tc_announce(a, "T", "k", "one", 60);
	tc_expect_nothing(a);
	tc_expect_nothing(w);
	r = lookup("T", "k");
	assert_int_equal(r->seq, 1);
	assert_true(r->expire_ms >= first + 55000);
	assert_int_equal(table_find(PB("T"))->seq, 1);

	/* The refresh did not move the heap entry: it comes due at the
	 * first expiry, and is then re-pushed at the real one. */
	assert_true(ttl_next_ms() == first);

	/* Past the first TTL, the record is still there. */
	assert_int_equal(ttl_expire(first + 1), 0);
	assert_non_null(lookup("T", "k"));
	assert_true(ttl_next_ms() == r->expire_ms);
	tc_expect_nothing(w);

	/* TTL 0 clears the TTL, still without an event. */
	tc_announce(a, "T", "k", "one", 0);
	tc_expect_nothing(w);
	assert_int_equal(lookup("T", "k")->expire_ms, 0);
	assert_true(ttl_next_ms() == UINT64_MAX);
}

static void	expect_withdraw(struct tc *, const char *, uint64_t, uint64_t,
		    uint8_t);

/*
 * A replace with fields of another size moves the record into an
 * allocation of that size (record, key and fields are one allocation):
 * the table's hash, its creation order, the TTL heap and the session's
 * row in ispd.sessions follow it. (ASan sees any pointer left behind.)
 */
static void
test_replace_other_size(void **state)
{
	struct tc	*w = tc_new("watcher"), *a = tc_new("alice");
	struct table	*t;
	struct record	*r, *row;
	char		 key[24];
	int		 i;

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "T", "k1", "short", 5);
	expect_event(w, PROTO_EV_ANNOUNCE, "k1", 1, a, "alice", "short");
	tc_announce(a, "T", "k2", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k2", 2, a, "alice", "x");
	tc_announce(a, "T", "k1", "a contact longer than before", 5);
	expect_event(w, PROTO_EV_REPLACE, "k1", 3, a, "alice",
	    "a contact longer than before");
	tc_announce(a, "T", "k1", "s", 5);
	expect_event(w, PROTO_EV_REPLACE, "k1", 4, a, "alice", "s");
	r = lookup("T", "k1");
	assert_ptr_equal(r->owner, &a->s->owner);
	assert_ptr_equal(record_fields(r).p, r->key + r->key_len);
	/* Still first in creation order, before k2. */
	t = table_find(PB("T"));
	assert_ptr_equal(TAILQ_FIRST(&t->order), r);
	assert_ptr_equal(TAILQ_NEXT(r, order_entry), lookup("T", "k2"));
	/* The TTL heap holds the moved record: it expires, once, at its
	 * last announce's expiry (the heap may still say an earlier one:
	 * later expiries are re-pushed lazily). */
	assert_int_equal(ttl_expire(r->expire_ms), 1);
	expect_withdraw(w, "k1", 5, a->id, PROTO_WD_EXPIRED);
	assert_null(lookup("T", "k1"));
	assert_true(ttl_next_ms() == UINT64_MAX);
	tc_expect_nothing(w);

	/* The row's records field goes from 1 to 12 digits' worth: the
	 * row moves, and the session's pointer with it. */
	for (i = 0; i < 12; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		tc_announce(a, "U", key, "v", 0);
	}
	tc_expect_nothing(a);	/* ispd has read them */
	assert_int_equal(a->s->owner.nrecords, 13);
	table_tick();
	snprintf(key, sizeof(key), "%" PRIu64, a->id);
	row = lookup(PROTO_SESSIONS_TABLE, key);
	assert_non_null(row);
	assert_ptr_equal(a->s->row, row);
	assert_string_equal(field(record_fields(row), "records"), "13");
}

/* The owner changing its record: EV_REPLACE. */
static void
test_changed_reannounce_replaces(void **state)
{
	struct tc	*w = tc_new("watcher"), *a = tc_new("alice");

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "T", "k", "one", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k", 1, a, "alice", "one");
	tc_announce(a, "T", "k", "two", 0);
	expect_event(w, PROTO_EV_REPLACE, "k", 2, a, "alice", "two");
	assert_int_equal(a->s->owner.nrecords, 1);

	/* A TTL comes and goes with the announce that changes it. */
	tc_announce(a, "T", "k", "three", 5);
	expect_event(w, PROTO_EV_REPLACE, "k", 3, a, "alice", "three");
	assert_true(lookup("T", "k")->expire_ms != 0);
	tc_announce(a, "T", "k", "four", 0);
	expect_event(w, PROTO_EV_REPLACE, "k", 4, a, "alice", "four");
	assert_int_equal(lookup("T", "k")->expire_ms, 0);
	assert_true(ttl_next_ms() == UINT64_MAX);
}

static void
test_withdraw(void **state)
{
	struct tc		*w = tc_new("watcher"), *a = tc_new("alice");
	struct tc		*b = tc_new("bob");
	const struct proto_msg	*m;
	uint32_t		 req;

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "T", "k", "one", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k", 1, a, "alice", "one");

	/* Not the owner: an error naming the owner, nothing changes. */
	req = tc_withdraw(b, "T", "k");
	m = tc_expect(b, PROTO_ERROR);
	assert_int_equal(m->code, ISP_E_NOT_OWNER);
	assert_int_equal(m->req_id, req);
	{
		char	 want[128];

		snprintf(want, sizeof(want), "record k in T is owned by "
		    "session %" PRIu64 " (alice)", a->id);
		assert_pb(m->text, want);
	}
	assert_non_null(lookup("T", "k"));
	tc_expect_nothing(w);

	/* Absent key, absent table. */
	req = tc_withdraw(a, "T", "nope");
	tc_expect_error(a, req, ISP_E_NOT_FOUND);
	req = tc_withdraw(a, "NOPE", "k");
	tc_expect_error(a, req, ISP_E_NOT_FOUND);
	assert_null(table_find(PB("NOPE")));

	/* ispd.sessions is read-only. */
	req = tc_withdraw(a, PROTO_SESSIONS_TABLE, "1");
	tc_expect_error(a, req, ISP_E_READONLY);
	req = tc_announce(a, PROTO_SESSIONS_TABLE, "1", "x", 0);
	tc_expect_error(a, req, ISP_E_READONLY);

	/* The owner. */
	tc_withdraw(a, "T", "k");
	m = tc_expect(w, PROTO_EV_WITHDRAW);
	assert_pb(m->key, "k");
	assert_int_equal(m->seq, 2);
	assert_int_equal(m->reason, PROTO_WD_OWNER);
	assert_int_equal(m->owner_session, a->id);
	assert_pb(m->owner, "alice");
	assert_null(lookup("T", "k"));
	assert_int_equal(a->s->owner.nrecords, 0);
	tc_expect_nothing(a);
}

/* A session's end withdraws what it owns, and only that. */
static void
test_session_end_withdraws_owned(void **state)
{
	struct tc		*w = tc_new("watcher"), *a = tc_new("alice");
	struct tc		*b = tc_new("bob");
	const struct proto_msg	*m;

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "T", "k1", "a1", 0);
	tc_announce(a, "T", "k2", "a2", 0);
	tc_announce(a, "U", "k3", "a3", 30);
	tc_expect_nothing(a);
	tc_announce(b, "T", "k2", "b2", 0);	/* b takes k2 */
	expect_event(w, PROTO_EV_ANNOUNCE, "k1", 1, a, "alice", "a1");
	expect_event(w, PROTO_EV_ANNOUNCE, "k2", 2, a, "alice", "a2");
	expect_event(w, PROTO_EV_REPLACE, "k2", 3, b, "bob", "b2");

	tc_hangup(a);
	m = tc_expect(w, PROTO_EV_WITHDRAW);
	assert_pb(m->key, "k1");
	assert_int_equal(m->seq, 4);
	assert_int_equal(m->reason, PROTO_WD_SESSION);
	assert_int_equal(m->owner_session, a->id);
	assert_pb(m->owner, "alice");
	tc_expect_nothing(w);

	assert_null(lookup("T", "k1"));
	assert_null(lookup("U", "k3"));
	assert_non_null(lookup("T", "k2"));
	assert_ptr_equal(lookup("T", "k2")->owner, &b->s->owner);
	assert_true(ttl_next_ms() == UINT64_MAX);
}

static void
test_ttl_expiry(void **state)
{
	struct tc		*w = tc_new("watcher"), *a = tc_new("alice");
	const struct proto_msg	*m;
	struct record		*r;
	uint64_t		 at;

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "T", "short", "s", 1);
	tc_announce(a, "T", "long", "l", 100);
	tc_announce(a, "T", "none", "n", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "short", 1, a, "alice", "s");
	expect_event(w, PROTO_EV_ANNOUNCE, "long", 2, a, "alice", "l");
	expect_event(w, PROTO_EV_ANNOUNCE, "none", 3, a, "alice", "n");
	r = lookup("T", "short");
	at = r->expire_ms;
	assert_true(ttl_next_ms() == at);

	assert_int_equal(ttl_expire(at - 1), 0);
	tc_expect_nothing(w);
	assert_int_equal(ttl_expire(at), 1);
	m = tc_expect(w, PROTO_EV_WITHDRAW);
	assert_pb(m->key, "short");
	assert_int_equal(m->seq, 4);
	assert_int_equal(m->reason, PROTO_WD_EXPIRED);
	assert_int_equal(m->owner_session, a->id);
	assert_null(lookup("T", "short"));
	assert_int_equal(a->s->owner.nrecords, 2);

	assert_int_equal(ttl_expire(at + 200000), 1);
	m = tc_expect(w, PROTO_EV_WITHDRAW);
	assert_pb(m->key, "long");
	assert_non_null(lookup("T", "none"));
	tc_expect_nothing(w);
}

/* The earliest expiry among the records of table, by a full scan. */
static uint64_t
earliest(const char *table)
{
	struct table		*t = table_find(PB(table));
	struct hash_node	*n = NULL;
	struct record		*r;
	uint64_t		 min = UINT64_MAX;
	size_t			 pos = 0;

	while ((n = hash_next(&t->records, &pos, n)) != NULL) {
		r = (struct record *)((char *)n -
		    offsetof(struct record, node));
		if (r->expire_ms != 0 && r->expire_ms < min)
			min = r->expire_ms;
	}
	return min;
}

/* The heap keeps order through many sets, moves and removals: its head
 * is always the earliest expiry, and an expiry pass leaves nothing due. */
/* How many records of table have expired at t, by a full scan. */
static int
expired_by(const char *table, uint64_t t)
{
	struct table		*tb = table_find(PB(table));
	struct hash_node	*n = NULL;
	struct record		*r;
	size_t			 pos = 0;
	int			 count = 0;

	while ((n = hash_next(&tb->records, &pos, n)) != NULL) {
		r = (struct record *)((char *)n -
		    offsetof(struct record, node));
		if (r->expire_ms != 0 && r->expire_ms <= t)
			count++;
	}
	return count;
}

static void
test_ttl_heap_order(void **state)
{
	struct tc	*a = tc_new("alice");
	char		 key[16];
	uint64_t	 last = 0, t;
	int		 i, n = 0, due;

	for (i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		tc_announce(a, "T", key, "v", (uint32_t)(1 + (i * 37) % 50));
	}
	/* Move half of them, withdraw a quarter. */
	for (i = 0; i < 200; i += 2) {
		snprintf(key, sizeof(key), "k%d", i);
		tc_announce(a, "T", key, "v", (uint32_t)(1 + (i * 11) % 70));
	}
	for (i = 1; i < 200; i += 4) {
		snprintf(key, sizeof(key), "k%d", i);
		tc_withdraw(a, "T", key);
	}
	tc_expect_nothing(a);
	/* Moved later, an entry keeps its earlier key (a refresh costs no
	 * sift): the head may come due before the earliest expiry, never
	 * after it, and a due head that has not expired is re-pushed. */
	while ((t = ttl_next_ms()) != UINT64_MAX) {
		assert_true(t <= earliest("T"));
		assert_true(t >= last);
		last = t;
		/* Exactly the expired ones go; the rest of the due keys
		 * are re-pushed past t. */
		due = expired_by("T", t);
		assert_int_equal(ttl_expire(t), due);
		assert_true(earliest("T") > t);
		assert_true(ttl_next_ms() > t);
		n += due;
	}
	assert_int_equal(n, 150);
	assert_int_equal(table_find(PB("T"))->records.count, 0);
	assert_int_equal(a->s->owner.nrecords, 0);
}

static void
test_seq(void **state)
{
	struct tc		*a = tc_new("alice"), *w;
	const struct proto_msg	*m;

	tc_announce(a, "T", "k", "1", 0);	/* 1 */
	tc_announce(a, "T", "k", "2", 0);	/* 2 */
	tc_announce(a, "T", "j", "1", 0);	/* 3 */
	tc_withdraw(a, "T", "k");		/* 4 */
	tc_announce(a, "T", "j", "1", 0);	/* refresh: no seq */
	tc_announce(a, "O", "k", "1", 0);	/* another table */
	tc_expect_nothing(a);
	assert_int_equal(table_find(PB("T"))->seq, 4);
	assert_int_equal(table_find(PB("O"))->seq, 1);

	w = tc_new("watcher");
	tc_subscribe(w, "T", "", 0);
	m = tc_expect(w, PROTO_EV_ANNOUNCE);
	assert_pb(m->key, "j");
	assert_int_equal(m->seq, 3);	/* the record's own seq */
	expect_end(w, 4, 1);
	tc_announce(a, "T", "k", "3", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k", 5, a, "alice", "3");
}

static void
test_prefix_subscription(void **state)
{
	struct tc	*w = tc_new("watcher"), *a = tc_new("alice");

	tc_subscribe(w, "T", "sip:alice", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "T", "sip:bob@x", "b", 0);
	tc_announce(a, "T", "sip:alice@x", "a", 0);
	tc_announce(a, "T", "sip:ali", "short", 0);
	tc_announce(a, "T", "sip:alice", "exact", 0);
	tc_withdraw(a, "T", "sip:bob@x");
	tc_withdraw(a, "T", "sip:alice@x");
	expect_event(w, PROTO_EV_ANNOUNCE, "sip:alice@x", 2, a, "alice", "a");
	expect_event(w, PROTO_EV_ANNOUNCE, "sip:alice", 4, a, "alice",
	    "exact");
	tc_expect(w, PROTO_EV_WITHDRAW);
	assert_pb(w->msg.key, "sip:alice@x");
	assert_int_equal(w->msg.seq, 6);
	tc_expect_nothing(w);
}

/* Snapshot under a prefix, END with the table's seq and the count, then
 * live events; ONCE ends after END and creates no table. */
static void
test_snapshot_then_end(void **state)
{
	struct tc		*w = tc_new("watcher"), *a = tc_new("alice");
	struct tc		*b = tc_new("bob");
	const struct proto_msg	*m;
	int			 i, seen[3] = { 0, 0, 0 };
	uint32_t		 req;

	tc_announce(a, "T", "p:0", "v0", 0);	/* seq 1 */
	tc_announce(a, "T", "q:0", "x", 0);	/* 2 */
	tc_expect_nothing(a);
	tc_announce(b, "T", "p:1", "v1", 0);	/* 3 */
	tc_expect_nothing(b);
	tc_announce(a, "T", "p:2", "v2", 0);	/* 4 */
	tc_announce(a, "T", "q:1", "x", 0);	/* 5 */
	tc_expect_nothing(a);
	tc_expect_nothing(b);

	tc_subscribe(w, "T", "p:", 0);
	for (i = 0; i < 3; i++) {
		m = tc_expect(w, PROTO_EV_ANNOUNCE);
		assert_int_equal(m->key.len, 3);
		assert_memory_equal(m->key.p, "p:", 2);
		seen[m->key.p[2] - '0']++;
		switch (m->key.p[2]) {
		case '0':
			assert_int_equal(m->seq, 1);
			assert_int_equal(m->owner_session, a->id);
			break;
		case '1':
			assert_int_equal(m->seq, 3);
			assert_int_equal(m->owner_session, b->id);
			assert_pb(m->owner, "bob");
			break;
		case '2':
			assert_int_equal(m->seq, 4);
			break;
		}
	}
	assert_int_equal(seen[0] + seen[1] + seen[2], 3);
	assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
	expect_end(w, 5, 3);
	tc_announce(b, "T", "p:3", "v3", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "p:3", 6, b, "bob", "v3");

	/* One subscription per table and session. */
	req = tc_subscribe(w, "T", "", 0);
	tc_expect_error(w, req, ISP_E_ALREADY_SUBSCRIBED);

	/* ONCE: snapshot and END, no live events after. */
	tc_subscribe(b, "T", "q:", PROTO_SUB_ONCE);
	tc_expect(b, PROTO_EV_ANNOUNCE);
	tc_expect(b, PROTO_EV_ANNOUNCE);
	expect_end(b, 6, 2);
	tc_announce(a, "T", "q:2", "x", 0);
	tc_expect_nothing(b);
	assert_int_equal(table_find(PB("T"))->nsubs, 1);

	/* ONCE of a table that does not exist: END 0 0, still absent. */
	tc_subscribe(b, "NOWHERE", "", PROTO_SUB_ONCE);
	m = tc_expect(b, PROTO_EV_END);
	assert_pb(m->table, "NOWHERE");
	assert_int_equal(m->seq, 0);
	assert_int_equal(m->count, 0);
	assert_null(table_find(PB("NOWHERE")));

	/* A plain SUBSCRIBE creates it. */
	tc_subscribe(b, "NEW", "", 0);
	expect_end(b, 0, 0);
	assert_non_null(table_find(PB("NEW")));

	/* UNSUBSCRIBE, then events stop. */
	{
		struct buf	 ub;

		buf_init(&ub);
		proto_put_unsubscribe(&ub, 77, PB("T"));
		tc_write(w, &ub);
		proto_put_unsubscribe(&ub, 78, PB("T"));
		tc_write(w, &ub);
		buf_free(&ub);
		tc_expect_error(w, 78, ISP_E_NOT_SUBSCRIBED);
		tc_announce(a, "T", "p:4", "x", 0);
		tc_expect_nothing(w);
	}
}

/* A large snapshot arrives whole and in one piece of work. */
static void
test_big_snapshot(void **state)
{
	struct tc	*w = tc_new("watcher"), *a = tc_new("alice");
	struct buf	 b, fb;
	char		 key[32];
	uint64_t	 n = 0;
	int		 i, nrec = 20000;

	buf_init(&b);
	tc_fields1(&fb, "contact", "sip:someone@192.0.2.1:5060;transport=tcp");
	for (i = 0; i < nrec; i++) {
		snprintf(key, sizeof(key), "sip:%06d@example.com", i);
		proto_put_announce(&b, (uint32_t)i + 1, PB("BIG"), 0, PB(key),
		    proto_bytes(fb.data, fb.len));
		if (b.len > 32768)
			tc_write(a, &b);
	}
	tc_write(a, &b);
	buf_free(&b);
	buf_free(&fb);
	tc_expect_nothing(a);
	assert_int_equal(table_find(PB("BIG"))->records.count, nrec);

	tc_subscribe(w, "BIG", "", 0);
	while (tc_next(w) && w->msg.type == PROTO_EV_ANNOUNCE)
		n++;
	assert_int_equal(w->msg.type, PROTO_EV_END);
	assert_int_equal(w->msg.count, nrec);
	assert_int_equal(n, nrec);
}

/* ispd.sessions: a row per welcomed session, refreshed by the tick. */
static void
test_sessions_table(void **state)
{
	struct tc		*w = tc_new("watcher"), *a = tc_new("alice");
	const struct proto_msg	*m;
	char			 key[24];
	int			 i;

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_subscribe(w, PROTO_SESSIONS_TABLE, "", 0);
	for (i = 0; i < 2; i++) {
		m = tc_expect(w, PROTO_EV_ANNOUNCE);
		assert_int_equal(m->owner_session, 0);
		assert_pb(m->owner, "ispd");
		assert_string_equal(field(m->fields, "peer"), "unix:test");
		assert_string_equal(field(m->fields, "records"), "0");
		assert_true(strtoll(field(m->fields, "since"), NULL, 10) > 0);
	}
	expect_end(w, 2, 2);

	tc_announce(a, "T", "k1", "x", 0);
	tc_announce(a, "T", "k2", "x", 0);
	tc_expect_nothing(a);
	tc_expect(w, PROTO_EV_ANNOUNCE);
	tc_expect(w, PROTO_EV_ANNOUNCE);
	tc_expect_nothing(w);	/* no second fan-out per announce */
	table_tick();
	m = tc_expect(w, PROTO_EV_REPLACE);
	snprintf(key, sizeof(key), "%" PRIu64, a->id);
	assert_pb(m->key, key);
	assert_string_equal(field(m->fields, "name"), "alice");
	assert_string_equal(field(m->fields, "records"), "2");
	table_tick();		/* unchanged: nothing */
	tc_expect_nothing(w);

	/* A late session appears; a session that ends disappears, after
	 * its records. */
	tc_hangup(a);
	m = tc_expect(w, PROTO_EV_WITHDRAW);
	assert_pb(m->key, "k1");
	m = tc_expect(w, PROTO_EV_WITHDRAW);
	assert_pb(m->key, "k2");
	m = tc_expect(w, PROTO_EV_WITHDRAW);
	assert_pb(m->table, PROTO_SESSIONS_TABLE);
	assert_pb(m->key, key);
	assert_int_equal(m->reason, PROTO_WD_SESSION);
	assert_int_equal(m->owner_session, 0);
}

static void
test_handshake_errors(void **state)
{
	struct tc		*c;
	struct buf		 b;
	const struct proto_msg	*m;

	buf_init(&b);
	/* Not HELLO first. */
	c = tc_connect(0);
	proto_put_ping(&b, PROTO_PING, 1);
	tc_write(c, &b);
	tc_expect_error(c, 0, ISP_E_NOT_READY);
	tc_expect_eof(c);

	/* Another version. */
	c = tc_connect(0);
	proto_put_hello(&b, 7, 0, "future");
	tc_write(c, &b);
	m = tc_expect(c, PROTO_ERROR);
	assert_int_equal(m->code, ISP_E_VERSION);
	assert_pb(m->text, "ispd speaks protocol version 1, the client sent "
	    "version 7");
	tc_expect_eof(c);

	/* A bad name. */
	c = tc_connect(0);
	proto_put_hello(&b, PROTO_VERSION, 0, "tab\there");
	tc_write(c, &b);
	tc_expect_error(c, 0, ISP_E_BAD_REQUEST);
	tc_expect_eof(c);

	/* Caps are the shared ones: REPLAY and OWNER_GONE, not AUTH (which
	 * in WELCOME says the session is authenticated), nor bits not
	 * defined. */
	c = tc_connect(0);
	proto_put_hello(&b, PROTO_VERSION, 0xff, "caps");
	tc_write(c, &b);
	m = tc_expect(c, PROTO_WELCOME);
	assert_int_equal(m->caps, PROTO_CAP_REPLAY | PROTO_CAP_OWNER_GONE);
	buf_free(&b);
	/* Only the welcomed session has a row. */
	assert_int_equal(table_find(PB(PROTO_SESSIONS_TABLE))->records.count,
	    1);
}

static void
test_frame_errors(void **state)
{
	struct tc		*c = tc_new("client"), *d;
	struct buf		 b;
	uint8_t			 raw[16];
	const struct proto_msg	*m;

	/* An unknown type is answered and skipped. */
	put_be32(raw, 3);
	raw[4] = 0x7e;
	raw[5] = raw[6] = 0;
	buf_init(&b);
	buf_put(&b, raw, 7);
	tc_write(c, &b);
	tc_expect_error(c, 0, ISP_E_UNKNOWN_TYPE);
	tc_expect_nothing(c);

	/* A bad table name in a request: ERROR with its req_id, go on. */
	proto_put_announce(&b, 9, PB("bad name"), 0, PB("k"),
	    proto_bytes("\0\0", 2));
	tc_write(c, &b);
	tc_expect_error(c, 9, ISP_E_BAD_TABLE);
	tc_expect_nothing(c);

	/* A server frame from a client: closed. */
	proto_put_ev_end(&b, PB("T"), 1, 1);
	tc_write(c, &b);
	tc_expect_error(c, 0, ISP_E_PROTOCOL);
	tc_expect_eof(c);

	/* A frame over the limit: closed before its body is read. */
	d = tc_new("big");
	put_be32(raw, PROTO_MAX_FRAME_BYTES + 1);
	raw[4] = PROTO_ANNOUNCE;
	buf_put(&b, raw, 5);
	tc_write(d, &b);
	m = tc_expect(d, PROTO_ERROR);
	assert_int_equal(m->code, ISP_E_FRAME_TOO_LARGE);
	tc_expect_eof(d);
	buf_free(&b);
}

/* Frames cut anywhere, down to single bytes, and a frame of the maximum
 * size: the session reassembles them. */
static void
test_partial_frames(void **state)
{
	struct tc		*w = tc_new("watcher"), *a = tc_new("alice");
	struct buf		 b, fb, one;
	const struct proto_msg	*m;
	static uint8_t		 big[60000];
	size_t			 i, start;
	int			 f;

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	buf_init(&b);
	buf_init(&one);
	proto_put_announce(&b, 1, PB("T"), 0, PB("k1"),
	    tc_fields1(&fb, "contact", "x"));
	proto_put_announce(&b, 2, PB("T"), 0, PB("k2"),
	    proto_bytes(fb.data, fb.len));
	for (i = 0; i < b.len; i++) {
		buf_put(&one, b.data + i, 1);
		tc_write(a, &one);
		tc_pump();
	}
	b.len = 0;
	expect_event(w, PROTO_EV_ANNOUNCE, "k1", 1, a, "alice", "x");
	expect_event(w, PROTO_EV_ANNOUNCE, "k2", 2, a, "alice", "x");

	/* Fields that make the ANNOUNCE exactly as large as a frame may
	 * be: the codec takes it, but its event (owner name, seq) would not
	 * fit in a frame, so ispd refuses it with ISP_E_LIMIT. */
	memset(big, 'v', sizeof(big));
	for (i = 0; i < 2; i++) {
		size_t	 pad;

		fb.len = 0;
		start = proto_fields_begin(&fb);
		for (f = 0; f < 17; f++) {
			char	 name[16];

			snprintf(name, sizeof(name), "f%d", f);
			proto_put_field(&fb, name, strlen(name), big,
			    sizeof(big));
		}
		/* frame = 4 + 1 + req 4 + table 2 + ttl 4 + key 5 + fields */
		pad = PROTO_MAX_FRAME_BYTES - 16 - fb.len - (1 + 3 + 4);
		if (i == 1)
			pad -= 100;	/* room for the event's extra bytes */
		proto_put_field(&fb, "pad", 3, big, pad);
		proto_fields_end(&fb, start, 18);
		proto_put_announce(&b, 3, PB("T"), 0, PB("big"),
		    proto_bytes(fb.data, fb.len));
		assert_int_equal(b.len, PROTO_MAX_FRAME_BYTES + 4 -
		    (i == 1 ? 100 : 0));
		tc_write(a, &b);
	}
	m = tc_expect(a, PROTO_ERROR);
	assert_int_equal(m->req_id, 3);
	assert_int_equal(m->code, ISP_E_LIMIT);
	m = tc_expect(w, PROTO_EV_ANNOUNCE);
	assert_pb(m->key, "big");
	assert_int_equal(m->nfields, 18);
	tc_expect_nothing(a);
	tc_expect_nothing(w);
	buf_free(&fb);
	buf_free(&one);
	buf_free(&b);
}

static void
test_hold_expiry(void **state)
{
	struct tc		*w = tc_new("watcher"), *a = tc_new("alice");
	const struct proto_msg	*m;

	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "T", "k", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k", 1, a, "alice", "x");
	/* w's last frame comes later than a's. */
	loop_clock_advance(5);
	tc_expect_nothing(w);
	assert_true(w->s->last_rx_ms > a->s->last_rx_ms);

	session_timers(a->s->last_rx_ms + ispd_conf.hold_ms - 1);
	assert_int_equal(a->s->state, SESSION_READY);
	session_timers(a->s->last_rx_ms + ispd_conf.hold_ms);
	assert_int_equal(w->s->state, SESSION_READY);
	m = tc_expect(a, PROTO_BYE);
	assert_int_equal(m->code, ISP_E_HOLD_EXPIRED);
	tc_expect_eof(a);
	m = tc_expect(w, PROTO_EV_WITHDRAW);
	assert_int_equal(m->reason, PROTO_WD_SESSION);
}

static void
test_query(void **state)
{
	struct tc		*a = tc_new("alice");
	struct buf		 b;
	const struct proto_msg	*m;
	struct proto_bytes	 rows, row;

	tc_announce(a, "zeta", "k", "x", 0);
	tc_announce(a, "alpha", "k", "x", 0);
	tc_announce(a, "alpha", "j", "x", 0);
	buf_init(&b);
	proto_put_query(&b, 5, PROTO_QUERY_TABLES);
	tc_write(a, &b);
	m = tc_expect(a, PROTO_ROWS);
	assert_int_equal(m->req_id, 5);
	assert_int_equal(m->nrows, 3);
	rows = m->rows;
	assert_true(proto_rows_next(&rows, &row));
	assert_string_equal(field(row, "name"), "alpha");
	assert_string_equal(field(row, "records"), "2");
	assert_string_equal(field(row, "seq"), "2");
	assert_string_equal(field(row, "subscribers"), "0");
	assert_true(proto_rows_next(&rows, &row));
	assert_string_equal(field(row, "name"), PROTO_SESSIONS_TABLE);
	assert_string_equal(field(row, "records"), "1");
	assert_true(proto_rows_next(&rows, &row));
	assert_string_equal(field(row, "name"), "zeta");
	assert_false(proto_rows_next(&rows, &row));

	proto_put_query(&b, 6, PROTO_QUERY_STATS);
	tc_write(a, &b);
	m = tc_expect(a, PROTO_ROWS);
	assert_int_equal(m->nrows, 1);
	rows = m->rows;
	assert_true(proto_rows_next(&rows, &row));
	assert_string_equal(field(row, "version"), ISP_RELEASE);
	assert_string_equal(field(row, "sessions"), "1");
	assert_string_equal(field(row, "tables"), "3");
	assert_string_equal(field(row, "records"), "4");

	proto_put_query(&b, 7, 99);
	tc_write(a, &b);
	tc_expect_error(a, 7, ISP_E_BAD_REQUEST);
	buf_free(&b);
}

/* The graceful table of these tests; patterns are kept for the process. */
static void
graceful_table(void)
{
	static int	 added;

	if (!added)
		assert_int_equal(graceful_add("G*"), 0);
	added = 1;
	ispd_conf.graceful_ms = 30000;
}

static void
expect_withdraw(struct tc *c, const char *key, uint64_t seq, uint64_t owner,
    uint8_t reason)
{
	const struct proto_msg	*m = tc_expect(c, PROTO_EV_WITHDRAW);

	assert_pb(m->key, key);
	assert_int_equal(m->seq, seq);
	assert_int_equal(m->owner_session, owner);
	assert_int_equal(m->reason, reason);
}

/*
 * Graceful restart: a lost session's records in a graceful table are
 * held for its client, the others withdrawn; the client's next session
 * takes back what it announces again, silently when unchanged; its
 * END_OF_REPLAY withdraws the rest; what a client that does not come
 * back left goes when the grace time ends. A BYE, or a session ispd
 * ends for a protocol violation, is no loss.
 */
static void
test_graceful_restart(void **state)
{
	struct tc		*w = tc_new("watcher"), *a = tc_new("alice");
	struct tc		*a2, *b, *c;
	struct buf		 bb;
	size_t			 nheld;
	uint64_t		 a_id = a->id;

	graceful_table();
	tc_subscribe(w, "GR", "", 0);
	expect_end(w, 0, 0);
	tc_subscribe(w, "T", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "GR", "k1", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k1", 1, a, "alice", "x");
	tc_announce(a, "GR", "k2", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k2", 2, a, "alice", "x");
	tc_announce(a, "GR", "k3", "x", 60);
	expect_event(w, PROTO_EV_ANNOUNCE, "k3", 3, a, "alice", "x");
	tc_announce(a, "T", "t1", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "t1", 1, a, "alice", "x");
	assert_true(table_find(PB("GR"))->graceful);
	assert_false(table_find(PB("T"))->graceful);

	/* Lost: T's record goes, GR's are held. */
	tc_hangup(a);
	expect_withdraw(w, "t1", 2, a_id, PROTO_WD_SESSION);
	tc_expect_nothing(w);
	assert_int_equal(graceful_held_records(&nheld), 3);
	assert_int_equal(nheld, 1);
	assert_true(lookup("GR", "k1")->owner->kind == OWNER_HELD);

	/* Back: unchanged, nothing; changed, one REPLACE; held ones are
	 * its own to withdraw. A client of another name counts for nothing. */
	b = tc_new("bob");
	tc_withdraw(b, "GR", "k1");
	tc_expect_error(b, b->next_req, ISP_E_NOT_OWNER);
	a2 = tc_new("alice");
	tc_announce(a2, "GR", "k1", "x", 0);
	tc_announce(a2, "GR", "k2", "y", 0);
	expect_event(w, PROTO_EV_REPLACE, "k2", 4, a2, "alice", "y");
	tc_expect_nothing(w);
	assert_ptr_equal(lookup("GR", "k1")->owner, &a2->s->owner);
	assert_int_equal(graceful_held_records(&nheld), 1);

	/* END_OF_REPLAY: what was not announced again goes, once; no
	 * answer. */
	buf_init(&bb);
	proto_put_end_of_replay(&bb, 9);
	tc_write(a2, &bb);
	expect_withdraw(w, "k3", 5, a_id, PROTO_WD_HELD);
	tc_expect_nothing(w);
	tc_expect_nothing(a2);
	assert_int_equal(graceful_held_records(&nheld), 0);
	assert_int_equal(nheld, 0);
	/* A second one changes nothing. */
	tc_write(a2, &bb);
	tc_expect_nothing(a2);
	tc_expect_nothing(w);

	/* Lost again and not back: held for the grace time, then gone. */
	tc_hangup(a2);
	tc_expect_nothing(w);
	assert_int_equal(graceful_held_records(&nheld), 2);
	assert_true(graceful_next_ms() > loop_now_ms());
	graceful_expire(graceful_next_ms() - 1);
	tc_expect_nothing(w);
	graceful_expire(graceful_next_ms());
	expect_withdraw(w, "k1", 6, a2->id, PROTO_WD_HELD);
	expect_withdraw(w, "k2", 7, a2->id, PROTO_WD_HELD);
	tc_expect_nothing(w);
	assert_int_equal(graceful_held_records(&nheld), 0);
	assert_int_equal(graceful_next_ms(), UINT64_MAX);

	/* BYE: withdrawn at once. */
	tc_announce(b, "GR", "b1", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "b1", 8, b, "bob", "x");
	proto_put_bye(&bb, 0, "done");
	tc_write(b, &bb);
	expect_withdraw(w, "b1", 9, b->id, PROTO_WD_SESSION);
	/* A protocol violation: withdrawn at once too. */
	c = tc_new("carol");
	tc_announce(c, "GR", "c1", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "c1", 10, c, "carol", "x");
	bb.len = 0;
	proto_put_ev_end(&bb, PB("GR"), 1, 1);
	tc_write(c, &bb);
	expect_withdraw(w, "c1", 11, c->id, PROTO_WD_SESSION);
	tc_expect_nothing(w);
	assert_int_equal(graceful_held_records(&nheld), 0);
	buf_free(&bb);
}

/*
 * A client's sessions and held sets: a record its other, live session
 * owns is taken over with a REPLACE, as from anyone; a second lost
 * session's records are held with their own owner, under the deadline
 * of the first's, and each is withdrawn with its owner at the end.
 */
static void
test_graceful_lost_twice(void **state)
{
	struct tc		*w = tc_new("watcher"), *a = tc_new("alice");
	struct tc		*a2 = tc_new("alice"), *d, *d2;
	struct record		*r1, *r2;
	size_t			 nheld;
	uint64_t		 deadline;

	graceful_table();
	tc_subscribe(w, "GR", "", 0);
	expect_end(w, 0, 0);
	tc_announce(a, "GR", "k1", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k1", 1, a, "alice", "x");
	/* Both sessions live: no silent move. */
	tc_announce(a2, "GR", "k1", "x", 0);
	expect_event(w, PROTO_EV_REPLACE, "k1", 2, a2, "alice", "x");
	tc_announce(a, "GR", "k2", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "k2", 3, a, "alice", "x");

	tc_hangup(a);
	tc_expect_nothing(w);
	assert_int_equal(graceful_held_records(&nheld), 1);
	deadline = graceful_next_ms();
	/* Later, the other session is lost too: held on its own. */
	loop_clock_advance(20);
	tc_hangup(a2);
	tc_expect_nothing(w);
	assert_int_equal(graceful_held_records(&nheld), 2);
	assert_int_equal(nheld, 1);
	r1 = lookup("GR", "k1");
	r2 = lookup("GR", "k2");
	assert_true(r1->owner->kind == OWNER_HELD &&
	    r2->owner->kind == OWNER_HELD);
	assert_ptr_not_equal(r1->owner, r2->owner);
	assert_int_equal(r1->owner->id, a2->id);
	assert_int_equal(r2->owner->id, a->id);
	assert_int_equal(owner_held(r1->owner)->until_ms, deadline);
	assert_int_equal(owner_held(r2->owner)->until_ms, deadline);

	graceful_expire(deadline - 1);
	tc_expect_nothing(w);
	graceful_expire(deadline);
	expect_withdraw(w, "k2", 4, a->id, PROTO_WD_HELD);
	expect_withdraw(w, "k1", 5, a2->id, PROTO_WD_HELD);
	tc_expect_nothing(w);
	assert_int_equal(graceful_held_records(&nheld), 0);
	assert_int_equal(nheld, 0);

	/* Everything taken back: nothing counts as held, though the empty
	 * set waits for its deadline (or an END_OF_REPLAY). */
	d = tc_new("dave");
	tc_announce(d, "GR", "d1", "x", 0);
	expect_event(w, PROTO_EV_ANNOUNCE, "d1", 6, d, "dave", "x");
	tc_hangup(d);
	assert_int_equal(graceful_held_records(&nheld), 1);
	assert_int_equal(nheld, 1);
	d2 = tc_new("dave");
	tc_announce(d2, "GR", "d1", "x", 0);
	tc_expect_nothing(w);
	assert_int_equal(graceful_held_records(&nheld), 0);
	assert_int_equal(nheld, 0);
	assert_true(graceful_next_ms() != UINT64_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_announce, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_replace_moves_ownership,
		    tc_setup, tc_teardown),
		cmocka_unit_test_setup_teardown(
		    test_identical_reannounce_refreshes_ttl, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(
		    test_changed_reannounce_replaces, tc_setup, tc_teardown),
		cmocka_unit_test_setup_teardown(test_replace_other_size,
		    tc_setup, tc_teardown),
		cmocka_unit_test_setup_teardown(test_withdraw, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(
		    test_session_end_withdraws_owned, tc_setup, tc_teardown),
		cmocka_unit_test_setup_teardown(test_ttl_expiry, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_ttl_heap_order, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_seq, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_prefix_subscription,
		    tc_setup, tc_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_then_end,
		    tc_setup, tc_teardown),
		cmocka_unit_test_setup_teardown(test_big_snapshot, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_sessions_table, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_handshake_errors, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_frame_errors, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_partial_frames, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_hold_expiry, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_query, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_graceful_restart, tc_setup,
		    tc_teardown),
		cmocka_unit_test_setup_teardown(test_graceful_lost_twice,
		    tc_setup, tc_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
