/*
 * Mirror tests: events fed through mirror_apply() to a mirror built
 * without a server; lookups, deep copies, prefix iteration, readers in
 * another thread while events are applied; plus argument checks of the
 * request calls on a client that is not connected, and isp_strerror().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "isp.h"
#include "lib.h"

/* What on_change saw. */
struct changes {
	int	 n;
	int	 last_type;
	char	 last_key[64];
	size_t	 count_at_change;	/* isp_mirror_count() inside it */
	struct isp_mirror *m;
};

static void
on_change(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct changes	*ch = arg;

	assert_null(c);
	ch->n++;
	ch->last_type = ev->type;
	if (ev->type != ISP_EV_END)
		snprintf(ch->last_key, sizeof(ch->last_key), "%.*s",
		    (int)ev->rec.key_len, (const char *)ev->rec.key);
	/* The change is applied and the lock released before the call. */
	if (ch->m != NULL)
		ch->count_at_change = isp_mirror_count(ch->m);
}

static struct isp_event
ev_record(int type, const char *key, const struct isp_field *f, size_t n,
    uint64_t seq)
{
	struct isp_event	 ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.table = "SIP_REGISTRATION";
	ev.rec.key = key;
	ev.rec.key_len = strlen(key);
	ev.rec.fields = f;
	ev.rec.nfields = n;
	ev.rec.owner = "bgw-1";
	ev.rec.owner_session = 42;
	ev.rec.seq = seq;
	ev.seq = seq;
	return ev;
}

static void
apply(struct isp_mirror *m, int type, const char *key,
    const struct isp_field *f, size_t n)
{
	static uint64_t		 seq;
	struct isp_event	 ev = ev_record(type, key, f, n, ++seq);

	assert_int_equal(mirror_apply(m, &ev), ISP_OK);
}

static void
apply_end(struct isp_mirror *m, uint64_t count)
{
	struct isp_event	 ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = ISP_EV_END;
	ev.table = "SIP_REGISTRATION";
	ev.count = count;
	assert_int_equal(mirror_apply(m, &ev), ISP_OK);
}

static void
assert_field(const struct isp_record *r, size_t i, const char *name,
    const char *value)
{
	assert_true(i < r->nfields);
	assert_string_equal(r->fields[i].name, name);
	assert_int_equal(r->fields[i].value_len, strlen(value));
	assert_memory_equal(r->fields[i].value, value, strlen(value) + 1);
}

static void
test_announce_replace_withdraw_end(void **state)
{
	struct isp_field	 f1[] = {
		{ "contact", "sip:alice@10.0.0.1", 18 },
		{ "expires", "3600", 4 },
	};
	struct isp_field	 f2[] = {
		{ "contact", "sip:alice@10.0.0.2", 18 },
	};
	struct changes		 ch;
	struct isp_mirror	*m;
	struct isp_record	*r;

	memset(&ch, 0, sizeof(ch));
	m = mirror_create("SIP_REGISTRATION", NULL, 0, on_change, &ch);
	assert_non_null(m);
	ch.m = m;
	assert_int_equal(isp_mirror_count(m), 0);
	assert_int_equal(isp_mirror_ready(m), 0);

	apply(m, ISP_EV_ANNOUNCE, "alice", f1, 2);
	apply(m, ISP_EV_ANNOUNCE, "bob", f2, 1);
	assert_int_equal(isp_mirror_count(m), 2);
	assert_int_equal(ch.n, 2);
	assert_int_equal(ch.last_type, ISP_EV_ANNOUNCE);
	assert_string_equal(ch.last_key, "bob");
	assert_int_equal(ch.count_at_change, 2);

	r = isp_mirror_get(m, "alice", 5);
	assert_non_null(r);
	assert_int_equal(r->nfields, 2);
	assert_field(r, 0, "contact", "sip:alice@10.0.0.1");
	assert_field(r, 1, "expires", "3600");
	isp_record_free(r);

	/* REPLACE swaps the whole record: one field now. */
	apply(m, ISP_EV_REPLACE, "alice", f2, 1);
	assert_int_equal(isp_mirror_count(m), 2);
	assert_int_equal(ch.last_type, ISP_EV_REPLACE);
	r = isp_mirror_get(m, "alice", 5);
	assert_non_null(r);
	assert_int_equal(r->nfields, 1);
	assert_field(r, 0, "contact", "sip:alice@10.0.0.2");
	isp_record_free(r);

	/* An ANNOUNCE of a present key (a replayed snapshot) replaces
	 * too, never duplicates. */
	apply(m, ISP_EV_ANNOUNCE, "alice", f1, 2);
	assert_int_equal(isp_mirror_count(m), 2);

	apply(m, ISP_EV_WITHDRAW, "bob", NULL, 0);
	assert_int_equal(isp_mirror_count(m), 1);
	assert_int_equal(ch.count_at_change, 1);
	assert_null(isp_mirror_get(m, "bob", 3));
	assert_int_equal(ch.last_type, ISP_EV_WITHDRAW);

	/* Withdrawing what is not there changes nothing, and on_change,
	 * which reports changes of the view, is not called. */
	apply(m, ISP_EV_WITHDRAW, "carol", NULL, 0);
	assert_int_equal(isp_mirror_count(m), 1);
	assert_int_equal(ch.n, 5);

	assert_int_equal(isp_mirror_ready(m), 0);
	apply_end(m, 1);
	assert_int_equal(isp_mirror_ready(m), 1);
	assert_int_equal(ch.last_type, ISP_EV_END);
	assert_int_equal(ch.n, 6);

	/* Records after END are applied like any. */
	apply(m, ISP_EV_ANNOUNCE, "dave", f2, 1);
	assert_int_equal(isp_mirror_count(m), 2);
	assert_int_equal(isp_mirror_ready(m), 1);

	/* A key that differs only after a common prefix is another key. */
	assert_null(isp_mirror_get(m, "alic", 4));
	assert_null(isp_mirror_get(m, "alice2", 6));
	assert_null(isp_mirror_get(m, NULL, 0));
	mirror_destroy(m);
}

static void
test_get_deep_copy(void **state)
{
	/* Binary key and values: NULs inside, an empty value. */
	char			 key[] = { 'k', '\0', 'x', (char)0xff };
	char			 val[] = { 'a', '\0', 'b', '\0', (char)0x80 };
	char			 name[] = "bin";
	struct isp_field	 f[] = {
		{ name, val, sizeof(val) },
		{ "empty", "", 0 },
	};
	struct isp_event	 ev;
	struct isp_mirror	*m;
	struct isp_record	*r, *r2;

	m = mirror_create("T", NULL, 0, NULL, NULL);
	assert_non_null(m);
	memset(&ev, 0, sizeof(ev));
	ev.type = ISP_EV_ANNOUNCE;
	ev.table = "T";
	ev.rec.key = key;
	ev.rec.key_len = sizeof(key);
	ev.rec.fields = f;
	ev.rec.nfields = 2;
	ev.rec.owner = "asterisk-7";
	ev.rec.owner_session = 0x1122334455667788ULL;
	ev.rec.seq = 99;
	ev.seq = 99;
	assert_int_equal(mirror_apply(m, &ev), ISP_OK);

	/* The mirror copied: scribbling over the event's memory changes
	 * nothing. */
	memset(val, 'z', sizeof(val));
	name[0] = 'X';

	r = isp_mirror_get(m, key, sizeof(key));
	assert_non_null(r);
	assert_int_equal(r->key_len, sizeof(key));
	assert_memory_equal(r->key, "k\0x\xff", 4);
	assert_int_equal(((const char *)r->key)[4], '\0');
	assert_string_equal(r->owner, "asterisk-7");
	assert_true(r->owner_session == 0x1122334455667788ULL);
	assert_int_equal(r->seq, 99);
	assert_int_equal(r->nfields, 2);
	assert_string_equal(r->fields[0].name, "bin");
	assert_int_equal(r->fields[0].value_len, 5);
	assert_memory_equal(r->fields[0].value, "a\0b\0\x80", 5);
	assert_int_equal(((const char *)r->fields[0].value)[5], '\0');
	assert_string_equal(r->fields[1].name, "empty");
	assert_int_equal(r->fields[1].value_len, 0);
	assert_non_null(r->fields[1].value);
	assert_int_equal(((const char *)r->fields[1].value)[0], '\0');

	/* Two copies are independent of each other and of the mirror. */
	r2 = isp_mirror_get(m, key, sizeof(key));
	assert_non_null(r2);
	assert_ptr_not_equal(r2, r);
	assert_ptr_not_equal(r2->fields, r->fields);
	ev.type = ISP_EV_WITHDRAW;
	ev.rec.fields = NULL;
	ev.rec.nfields = 0;
	assert_int_equal(mirror_apply(m, &ev), ISP_OK);
	assert_null(isp_mirror_get(m, key, sizeof(key)));
	assert_memory_equal(r->fields[0].value, "a\0b\0\x80", 5);
	isp_record_free(r);
	assert_string_equal(r2->owner, "asterisk-7");
	isp_record_free(r2);
	isp_record_free(NULL);

	/* A record without fields. */
	ev.type = ISP_EV_ANNOUNCE;
	ev.rec.owner = NULL;
	assert_int_equal(mirror_apply(m, &ev), ISP_OK);
	r = isp_mirror_get(m, key, sizeof(key));
	assert_non_null(r);
	assert_int_equal(r->nfields, 0);
	assert_string_equal(r->owner, "");
	isp_record_free(r);
	mirror_destroy(m);
}

struct visit {
	char	 keys[16][32];
	int	 n;
	int	 stop_after;	/* 0: never */
	int	 stop_value;
};

static int
visit_fn(const struct isp_record *r, void *arg)
{
	struct visit	*v = arg;

	assert_true(v->n < 16);
	assert_int_equal(((const char *)r->key)[r->key_len], '\0');
	snprintf(v->keys[v->n], sizeof(v->keys[0]), "%s",
	    (const char *)r->key);
	v->n++;
	if (v->stop_after != 0 && v->n == v->stop_after)
		return v->stop_value;
	return 0;
}

static int
visited(const struct visit *v, const char *key)
{
	int	 i, n = 0;

	for (i = 0; i < v->n; i++)
		if (strcmp(v->keys[i], key) == 0)
			n++;
	return n;
}

static struct isp_mirror *
mirror_of(const char **keys, size_t n)
{
	struct isp_field	 f = { "a", "1", 1 };
	struct isp_mirror	*m;
	size_t			 i;

	m = mirror_create("T", NULL, 0, NULL, NULL);
	assert_non_null(m);
	for (i = 0; i < n; i++)
		apply(m, ISP_EV_ANNOUNCE, keys[i], &f, 1);
	return m;
}

static void
test_foreach_prefix(void **state)
{
	const char		*keys[] = { "sip:alice", "sip:bob", "sip:carol",
				    "tel:123", "si", "sip" };
	struct isp_mirror	*m = mirror_of(keys, 6);
	struct visit		 v;

	memset(&v, 0, sizeof(v));
	assert_int_equal(isp_mirror_foreach(m, "sip:", 4, visit_fn, &v), 0);
	assert_int_equal(v.n, 3);
	assert_int_equal(visited(&v, "sip:alice"), 1);
	assert_int_equal(visited(&v, "sip:bob"), 1);
	assert_int_equal(visited(&v, "sip:carol"), 1);

	/* "sip" matches itself and the three longer keys, not "si". */
	memset(&v, 0, sizeof(v));
	assert_int_equal(isp_mirror_foreach(m, "sip", 3, visit_fn, &v), 0);
	assert_int_equal(v.n, 4);
	assert_int_equal(visited(&v, "sip"), 1);
	assert_int_equal(visited(&v, "si"), 0);

	memset(&v, 0, sizeof(v));
	assert_int_equal(isp_mirror_foreach(m, NULL, 0, visit_fn, &v), 0);
	assert_int_equal(v.n, 6);
	memset(&v, 0, sizeof(v));
	assert_int_equal(isp_mirror_foreach(m, "", 0, visit_fn, &v), 0);
	assert_int_equal(v.n, 6);

	memset(&v, 0, sizeof(v));
	assert_int_equal(isp_mirror_foreach(m, "sip:alice-and-more", 18,
	    visit_fn, &v), 0);
	assert_int_equal(v.n, 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(isp_mirror_foreach(m, "x", 1, visit_fn, &v), 0);
	assert_int_equal(v.n, 0);

	/* After a withdraw, the key is no longer visited. */
	apply(m, ISP_EV_WITHDRAW, "sip:bob", NULL, 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(isp_mirror_foreach(m, "sip:", 4, visit_fn, &v), 0);
	assert_int_equal(v.n, 2);
	assert_int_equal(visited(&v, "sip:bob"), 0);
	mirror_destroy(m);
}

static void
test_foreach_stop(void **state)
{
	const char		*keys[] = { "a1", "a2", "a3", "a4", "a5" };
	struct isp_mirror	*m = mirror_of(keys, 5);
	struct visit		 v;

	memset(&v, 0, sizeof(v));
	v.stop_after = 2;
	v.stop_value = 7;
	assert_int_equal(isp_mirror_foreach(m, "a", 1, visit_fn, &v), 7);
	assert_int_equal(v.n, 2);

	memset(&v, 0, sizeof(v));
	v.stop_after = 1;
	v.stop_value = -1;
	assert_int_equal(isp_mirror_foreach(m, NULL, 0, visit_fn, &v), -1);
	assert_int_equal(v.n, 1);

	/* The read lock is released after a stop: a change goes through. */
	apply(m, ISP_EV_WITHDRAW, "a1", NULL, 0);
	assert_int_equal(isp_mirror_count(m), 4);
	mirror_destroy(m);
}

/* A reader thread hammers the mirror while the main thread applies
 * events; every copy it gets must be whole and consistent. */
#define RACE_KEYS	512
#define RACE_EVENTS	100000

struct race {
	struct isp_mirror	*m;
	atomic_int		 stop;
	atomic_long		 gets;
	long			 found;
	atomic_long		 walks;
};

static int
race_visit(const struct isp_record *r, void *arg)
{
	long	*n = arg;

	/* Each record carries its own key as its value. */
	if (r->nfields != 1 || r->fields[0].value_len != r->key_len ||
	    memcmp(r->fields[0].value, r->key, r->key_len) != 0)
		return -1;
	(*n)++;
	return 0;
}

static void *
race_reader(void *arg)
{
	struct race		*rc = arg;
	struct isp_record	*r;
	char			 key[32];
	long			 n;
	unsigned		 i = 0;

	while (!atomic_load(&rc->stop)) {
		snprintf(key, sizeof(key), "key-%u", i++ % RACE_KEYS);
		r = isp_mirror_get(rc->m, key, strlen(key));
		rc->gets++;
		if (r != NULL) {
			rc->found++;
			if (r->nfields != 1 ||
			    strcmp(r->fields[0].value, key) != 0 ||
			    strcmp(r->key, key) != 0)
				return (void *)1;
			isp_record_free(r);
		}
		if (i % 64 == 0) {
			n = 0;
			if (isp_mirror_foreach(rc->m, "key-1", 5, race_visit,
			    &n) != 0)
				return (void *)2;
			if (isp_mirror_count(rc->m) > RACE_KEYS)
				return (void *)3;
			rc->walks++;
		}
	}
	return NULL;
}

static void
test_readers_while_applying(void **state)
{
	static char		 present[RACE_KEYS];
	struct race		 rc;
	struct isp_field	 f;
	struct isp_event	 ev;
	pthread_t		 t;
	void			*res;
	char			 key[32];
	size_t			 expect = 0;
	unsigned		 i, k, x = 12345;

	memset(&rc, 0, sizeof(rc));
	memset(present, 0, sizeof(present));
	rc.m = mirror_create("T", NULL, 0, NULL, NULL);
	assert_non_null(rc.m);
	atomic_init(&rc.stop, 0);
	atomic_init(&rc.gets, 0);
	atomic_init(&rc.walks, 0);
	assert_int_equal(pthread_create(&t, NULL, race_reader, &rc), 0);
	/* Let the reader get going first, so the two really overlap. */
	for (i = 0; i < 5000 && atomic_load(&rc.gets) == 0; i++)
		usleep(1000);

	for (i = 0; i < RACE_EVENTS; i++) {
		x = x * 1103515245 + 12345;
		k = (x >> 8) % RACE_KEYS;
		snprintf(key, sizeof(key), "key-%u", k);
		f.name = "v";
		f.value = key;
		f.value_len = strlen(key);
		if ((x >> 20) % 3 == 0) {
			ev = ev_record(ISP_EV_WITHDRAW, key, NULL, 0, i + 1);
			if (present[k])
				expect--;
			present[k] = 0;
		} else {
			ev = ev_record(present[k] ? ISP_EV_REPLACE :
			    ISP_EV_ANNOUNCE, key, &f, 1, i + 1);
			if (!present[k])
				expect++;
			present[k] = 1;
		}
		assert_int_equal(mirror_apply(rc.m, &ev), ISP_OK);
	}
	apply_end(rc.m, expect);
	/* A fast build may finish applying before the reader walked once. */
	for (i = 0; i < 5000 && atomic_load(&rc.walks) == 0; i++)
		usleep(1000);
	atomic_store(&rc.stop, 1);
	assert_int_equal(pthread_join(t, &res), 0);
	assert_null(res);
	assert_true(rc.gets > 0);
	assert_true(rc.walks > 0);

	assert_int_equal(isp_mirror_count(rc.m), expect);
	assert_int_equal(isp_mirror_ready(rc.m), 1);
	for (k = 0; k < RACE_KEYS; k++) {
		struct isp_record	*r;

		snprintf(key, sizeof(key), "key-%u", k);
		r = isp_mirror_get(rc.m, key, strlen(key));
		assert_int_equal(r != NULL, present[k]);
		isp_record_free(r);
	}
	mirror_destroy(rc.m);
}

static void
test_mirror_create_limits(void **state)
{
	char	 big[PROTO_MAX_KEY_BYTES + 1];

	memset(big, 'k', sizeof(big));
	assert_null(mirror_create(NULL, NULL, 0, NULL, NULL));
	assert_null(mirror_create("", NULL, 0, NULL, NULL));
	assert_null(mirror_create("bad table", NULL, 0, NULL, NULL));
	assert_null(mirror_create("T", NULL, 3, NULL, NULL));
	assert_null(mirror_create("T", big, sizeof(big), NULL, NULL));
	mirror_destroy(mirror_create("T", big, sizeof(big) - 1, NULL, NULL));
}

static void
dummy_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
}

/* Arguments are checked before the state: a bad call says what is
 * wrong with it even on a client that never connected. */
static void
test_validation_unconnected(void **state)
{
	static char		 bigval[PROTO_MAX_VALUE_BYTES + 1];
	struct isp_field	 fields[PROTO_MAX_FIELDS + 1];
	struct isp_field	 ok = { "contact", "sip:a@b", 7 };
	char			 longname[300];
	char			 key[PROTO_MAX_KEY_BYTES + 1];
	isp_client		*c;
	size_t			 i;

	c = isp_new(NULL);
	assert_non_null(c);
	memset(key, 'k', sizeof(key));
	for (i = 0; i <= PROTO_MAX_FIELDS; i++)
		fields[i] = ok;

#define EXPECT(call, code, text) do {					\
	assert_int_equal((call), (code));				\
	if (strstr(isp_errmsg(c), (text)) == NULL)			\
		fail_msg("errmsg \"%s\" lacks \"%s\"", isp_errmsg(c),	\
		    (text));						\
} while (0)

	EXPECT(isp_announce(c, NULL, "k", 1, &ok, 1, 0), ISP_E_INVALID,
	    "table is NULL");
	EXPECT(isp_announce(c, "", "k", 1, &ok, 1, 0), ISP_E_INVALID,
	    "invalid table name");
	EXPECT(isp_announce(c, "SIP REG", "k", 1, &ok, 1, 0), ISP_E_INVALID,
	    "invalid table name \"SIP REG\"");
	memset(longname, 'T', 65);
	longname[65] = '\0';
	EXPECT(isp_announce(c, longname, "k", 1, &ok, 1, 0), ISP_E_INVALID,
	    "1 to 64 characters");
	EXPECT(isp_announce(c, "T", "k", 0, &ok, 1, 0), ISP_E_INVALID,
	    "key is 0 bytes");
	EXPECT(isp_announce(c, "T", key, sizeof(key), &ok, 1, 0),
	    ISP_E_INVALID, "key is 1025 bytes long, it must be 1 to 1024");
	EXPECT(isp_announce(c, "T", NULL, 3, &ok, 1, 0), ISP_E_INVALID,
	    "key is NULL");
	EXPECT(isp_announce(c, "T", "k", 1, fields, PROTO_MAX_FIELDS + 1, 0),
	    ISP_E_INVALID, "257 fields, at most 256");
	EXPECT(isp_announce(c, "T", "k", 1, NULL, 2, 0), ISP_E_INVALID,
	    "fields is NULL");

	fields[3].name = "a=b";
	EXPECT(isp_announce(c, "T", "k", 1, fields, 5, 0), ISP_E_INVALID,
	    "field 3 has an invalid name \"a=b\"");
	fields[3].name = "";
	EXPECT(isp_announce(c, "T", "k", 1, fields, 5, 0), ISP_E_INVALID,
	    "field 3 has an invalid name");
	fields[3].name = "with space";
	EXPECT(isp_announce(c, "T", "k", 1, fields, 5, 0), ISP_E_INVALID,
	    "no space or '='");
	memset(longname, 'n', 256);
	longname[256] = '\0';
	fields[3].name = longname;
	EXPECT(isp_announce(c, "T", "k", 1, fields, 5, 0), ISP_E_INVALID,
	    "1 to 255 printable");
	fields[3].name = NULL;
	EXPECT(isp_announce(c, "T", "k", 1, fields, 5, 0), ISP_E_INVALID,
	    "field 3 has a NULL name");
	fields[3] = ok;
	fields[3].value = bigval;
	fields[3].value_len = sizeof(bigval);
	EXPECT(isp_announce(c, "T", "k", 1, fields, 5, 0), ISP_E_INVALID,
	    "value of 65537 bytes, at most 65536");
	fields[3].value = NULL;
	fields[3].value_len = 2;
	EXPECT(isp_announce(c, "T", "k", 1, fields, 5, 0), ISP_E_INVALID,
	    "NULL value");

	/* Each field within its limit, the whole over the frame limit. */
	for (i = 0; i < 17; i++) {
		fields[i].value = bigval;
		fields[i].value_len = PROTO_MAX_VALUE_BYTES;
	}
	EXPECT(isp_announce(c, "T", "k", 1, fields, 17, 0), ISP_E_INVALID,
	    "over the protocol's frame limit");
	/* Fifteen such fields fit. */
	EXPECT(isp_announce(c, "T", "k", 1, fields, 15, 0), ISP_E_STATE,
	    "not connected");

	/* Valid arguments: now the state is what is wrong. */
	EXPECT(isp_announce(c, "SIP_REGISTRATION", "sip:alice@example.com",
	    21, &ok, 1, 3600), ISP_E_STATE, "call isp_connect() first");
	EXPECT(isp_announce(c, "T", key, PROTO_MAX_KEY_BYTES, NULL, 0, 0),
	    ISP_E_STATE, "isp_announce: not connected");

	EXPECT(isp_withdraw(c, "bad/table", "k", 1), ISP_E_INVALID,
	    "isp_withdraw: invalid table name");
	EXPECT(isp_withdraw(c, "T", "", 0), ISP_E_INVALID, "key is 0 bytes");
	EXPECT(isp_withdraw(c, "T", "k", 1), ISP_E_STATE, "not connected");

	EXPECT(isp_subscribe(c, "bad table", NULL, 0, 0, dummy_cb, NULL),
	    ISP_E_INVALID, "isp_subscribe: invalid table name");
	EXPECT(isp_subscribe(c, "T", key, sizeof(key), 0, dummy_cb, NULL),
	    ISP_E_INVALID, "prefix is 1025 bytes long, at most 1024");
	EXPECT(isp_subscribe(c, "T", NULL, 4, 0, dummy_cb, NULL),
	    ISP_E_INVALID, "prefix is NULL");
	EXPECT(isp_subscribe(c, "T", NULL, 0, 0x80, dummy_cb, NULL),
	    ISP_E_INVALID, "unknown flags 0x80");
	EXPECT(isp_subscribe(c, "T", NULL, 0, 0, NULL, NULL), ISP_E_INVALID,
	    "callback is NULL");
	EXPECT(isp_subscribe(c, "T", "sip:", 4, ISP_SUB_ONCE, dummy_cb, NULL),
	    ISP_E_STATE, "not connected");
	EXPECT(isp_subscribe(c, ISP_SESSIONS_TABLE, NULL, 0, 0, dummy_cb,
	    NULL), ISP_E_STATE, "not connected");
	EXPECT(isp_unsubscribe(c, ""), ISP_E_INVALID, "invalid table name");
	EXPECT(isp_unsubscribe(c, "T"), ISP_E_STATE, "not connected");

	assert_null(isp_mirror_new(c, "bad table", NULL, 0, NULL, NULL));
	assert_non_null(strstr(isp_errmsg(c), "isp_mirror_new: invalid table"));
	assert_null(isp_mirror_new(c, "T", NULL, 0, NULL, NULL));
	assert_non_null(strstr(isp_errmsg(c), "not connected"));

	EXPECT(isp_sync(c, 10), ISP_E_STATE, "not connected");
	EXPECT(isp_query_tables(c, NULL, NULL, 10), ISP_E_STATE,
	    "not connected");
	EXPECT(isp_run(c, 0), ISP_E_STATE, "not connected");
	EXPECT(isp_process(c), ISP_E_STATE, "not connected");
	EXPECT(isp_start(c), ISP_E_STATE, "not connected");
	assert_int_equal(isp_fd(c), -1);
	assert_int_equal(isp_want(c), 0);
	assert_int_equal(isp_timeout_ms(c), -1);
	assert_int_equal(isp_session_id(c), 0);
	isp_stop(c);		/* no thread: nothing to do */
#undef EXPECT

	/* NULL clients are refused, not crashed on. */
	assert_int_equal(isp_announce(NULL, "T", "k", 1, NULL, 0, 0),
	    ISP_E_INVALID);
	assert_int_equal(isp_run(NULL, 0), ISP_E_INVALID);
	assert_non_null(isp_errmsg(NULL));
	isp_free(NULL);
	isp_mirror_free(NULL);
	isp_free(c);
}

static void
test_connect_errors(void **state)
{
	struct isp_options	 o;
	const char		*bad[] = { "x:y:z", "", "host:", "host:0",
				    "host:65536", "host:12ab", "[::1", "[::1]x",
				    "[]:7460", ":7460", "::1" };
	const char		*badname[] = { "", "tab\there", "caf\xc3\xa9",
				    "12345678901234567890123456789012345678901"
				    "234567890123456789012345" };
	isp_client		*c;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		isp_options_init(&o);
		o.server = bad[i];
		c = isp_new(&o);
		assert_non_null(c);
		assert_int_equal(isp_connect(c), ISP_E_INVALID);
		assert_non_null(strstr(isp_errmsg(c),
		    "invalid server address"));
		assert_non_null(strstr(isp_errmsg(c), "use HOST:PORT or "
		    "[IPV6]:PORT"));
		/* A client connects once. */
		assert_int_equal(isp_connect(c), ISP_E_STATE);
		isp_free(c);
	}
	for (i = 0; i < sizeof(badname) / sizeof(badname[0]); i++) {
		isp_options_init(&o);
		o.name = badname[i];
		c = isp_new(&o);
		assert_non_null(c);
		assert_int_equal(isp_connect(c), ISP_E_INVALID);
		assert_non_null(strstr(isp_errmsg(c), "invalid client name"));
		isp_free(c);
	}
}

static void
test_strerror(void **state)
{
	static const int	 codes[] = {
		ISP_OK, ISP_E_PROTOCOL, ISP_E_VERSION, ISP_E_FRAME_TOO_LARGE,
		ISP_E_UNKNOWN_TYPE, ISP_E_NOT_READY, ISP_E_BAD_TABLE,
		ISP_E_BAD_KEY, ISP_E_BAD_FIELDS, ISP_E_NOT_OWNER,
		ISP_E_NOT_FOUND, ISP_E_READONLY, ISP_E_ALREADY_SUBSCRIBED,
		ISP_E_NOT_SUBSCRIBED, ISP_E_HOLD_EXPIRED, ISP_E_SHUTDOWN,
		ISP_E_LIMIT, ISP_E_BAD_REQUEST, ISP_E_AUTH, ISP_E_DENIED,
		ISP_E_SYS, ISP_E_CONNECT, ISP_E_CLOSED, ISP_E_TIMEOUT,
		ISP_E_INVALID, ISP_E_NOMEM, ISP_E_STATE, ISP_E_TLS,
	};
	static const int	 unknown[] = { -1, 20, 99, 108, 1000, 65535 };
	const size_t		 n = sizeof(codes) / sizeof(codes[0]);
	const char		*s, *t;
	size_t			 i, j;

	for (i = 0; i < n; i++) {
		s = isp_strerror(codes[i]);
		assert_non_null(s);
		assert_true(strlen(s) > 3);
		if (strcmp(s, "unknown error") == 0)
			fail_msg("code %d has no text", codes[i]);
		for (j = 0; j < i; j++) {
			t = isp_strerror(codes[j]);
			if (strcmp(s, t) == 0)
				fail_msg("codes %d and %d share \"%s\"",
				    codes[i], codes[j], s);
		}
	}
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		s = isp_strerror(unknown[i]);
		assert_non_null(s);
		assert_string_equal(s, "unknown error");
	}
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test(test_announce_replace_withdraw_end),
		cmocka_unit_test(test_get_deep_copy),
		cmocka_unit_test(test_foreach_prefix),
		cmocka_unit_test(test_foreach_stop),
		cmocka_unit_test(test_readers_while_applying),
		cmocka_unit_test(test_mirror_create_limits),
		cmocka_unit_test(test_validation_unconnected),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
