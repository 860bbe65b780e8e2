/*
 * Operator controls that need more than ispctl can show
 * (tests/cli/test_admin.sh covers the command line): ADMIN DROP with a
 * subscriber that reads nothing while the table goes, a live mirror and
 * an error callback, and a table created again under the dropped name;
 * ADMIN HELD listing thousands of held sets and tables, more than one
 * ROWS frame could carry, page by page. Real ispd, raw sockets where a
 * test must see every frame.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "isp.h"
#include "proto.h"
#include "rawsock.h"
#include "testutil.h"

#define T		"OPS_DROP"
/* Enough for a snapshot that a 4 KiB receive buffer and a 64 KiB queue
 * keep from finishing while nobody reads. */
#define NKEYS		20000
#define VALUE_BYTES	200
#define SUB_REQ		7

/* Held sets and tables of the listing test: 8 x 1500 rows of about 140
 * bytes, more than the 1 MiB a frame may have. */
#define NLOST		8
#define NTABLES		1500

static void
announce_i(isp_client *c, int i)
{
	struct isp_field	 f;
	char			 key[16], value[VALUE_BYTES];

	snprintf(key, sizeof(key), "k%05d", i);
	memset(value, 'a' + i % 26, sizeof(value));
	f.name = "v";
	f.value = value;
	f.value_len = sizeof(value);
	assert_int_equal(isp_announce(c, T, key, strlen(key), &f, 1, 0),
	    ISP_OK);
}

static int
key_index(struct proto_bytes key)
{
	char	 k[32];
	int	 i;

	snprintf(k, sizeof(k), "%.*s", (int)key.len, (const char *)key.p);
	if (sscanf(k, "k%d", &i) != 1 || i < 0 || i >= NKEYS)
		fail_msg("unexpected key %s", k);
	return i;
}

struct done_row {
	char	 done[256];
};

static void
done_cb(const struct isp_field *f, size_t n, void *arg)
{
	struct done_row	*d = arg;

	if (n == 1 && strcmp(f[0].name, "done") == 0)
		snprintf(d->done, sizeof(d->done), "%.*s", (int)f[0].value_len,
		    (const char *)f[0].value);
}

static isp_client *
client_errs(struct ispd_proc *d, const char *name, struct evlog *l)
{
	struct isp_options	 o;
	isp_client		*c;

	isp_options_init(&o);
	o.server = d->addr;
	o.name = name;
	o.on_error = evlog_error_cb;
	o.arg = l;
	assert_non_null(c = isp_new(&o));
	assert_int_equal(isp_connect(c), ISP_OK);
	return c;
}

struct mirror_wait {
	isp_mirror	*m;
	size_t		 want;
	struct evlog	*errs;
};

static int
mirror_has(void *arg)
{
	struct mirror_wait	*w = arg;

	return isp_mirror_count(w->m) == w->want &&
	    (w->errs == NULL || w->errs->nerrors > 0);
}

/*
 * A subscriber in the middle of its snapshot, one whose mirror holds the
 * table, and the table dropped: the slow one reads every record it was
 * sent withdrawn again, then an ERROR NOT_FOUND to its SUBSCRIBE and
 * nothing owed; the mirror ends empty and its client hears of the end.
 * The table is gone from QUERY TABLES; announced into again, it is new,
 * with a seq above the old one's.
 */
static void
test_drop(void **state)
{
	static uint8_t		 held[NKEYS];
	struct ispd_proc	 d;
	struct evlog		 errs;
	struct done_row		 dr;
	struct mirror_wait	 mw;
	struct proto_msg	 m;
	struct buf		 b, rb;
	isp_client		*pub, *fast, *ops;
	isp_mirror		*fm;
	long long		 seq;
	size_t			 nheld = 0, withdrawn = 0;
	int			 slow, i, k, r, got_error = 0;

	memset(held, 0, sizeof(held));
	memset(&errs, 0, sizeof(errs));
	buf_init(&b);
	buf_init(&rb);
	ispd_start(&d, "--max-queue-bytes", "65536", NULL);
	pub = client_new(&d, "pub");
	for (i = 0; i < NKEYS; i++)
		announce_i(pub, i);
	assert_int_equal(isp_sync(pub, 20000), ISP_OK);

	fast = client_errs(&d, "fast", &errs);
	assert_non_null(fm = isp_mirror_new(fast, T, NULL, 0, NULL, NULL));
	mw.m = fm;
	mw.want = NKEYS;
	mw.errs = NULL;
	assert_true(pump(&fast, 1, mirror_has, &mw, 20000));

	slow = raw_connect_rcvbuf(d.port, 4096);
	raw_welcome(slow, &b, &rb, 0, "slow");
	proto_put_subscribe(&b, SUB_REQ, proto_bytes(T, strlen(T)), 0,
	    proto_bytes("", 0));
	raw_send(slow, &b);
	ops = client_new(&d, "ops");
	/* The snapshot cannot be done: nobody reads it. */
	for (i = 0; i < 200 && stat_counter(ops, "snapshots_active") != 1;
	    i++)
		usleep(50 * 1000);
	assert_int_equal(stat_counter(ops, "snapshots_active"), 1);
	seq = table_column(ops, T, "seq");
	assert_true(seq >= NKEYS);

	memset(&dr, 0, sizeof(dr));
	assert_int_equal(isp_drop(ops, T, done_cb, &dr, 10000), ISP_OK);
	assert_string_equal(dr.done, "table " T ": 20000 records withdrawn, "
	    "2 subscriptions ended");
	assert_int_equal(table_column(ops, T, "records"), -1);
	assert_int_equal(isp_drop(ops, T, done_cb, &dr, 10000),
	    ISP_E_NOT_FOUND);
	assert_non_null(strstr(isp_errmsg(ops), "no table " T));
	assert_int_equal(isp_drop(ops, ISP_SESSIONS_TABLE, done_cb, &dr,
	    10000), ISP_E_READONLY);

	/* The slow subscriber reads now: every record it got goes again
	 * before the ERROR, which is the last word on the table. */
	while (!got_error) {
		r = raw_recv(slow, &rb, &m, 20000);
		assert_int_equal(r, 1);
		switch (m.type) {
		case PROTO_EV_ANNOUNCE:
			k = key_index(m.key);
			assert_false(held[k]);
			held[k] = 1;
			nheld++;
			break;
		case PROTO_EV_WITHDRAW:
			k = key_index(m.key);
			assert_true(held[k]);
			assert_int_equal(m.reason, PROTO_WD_EVICTED);
			held[k] = 0;
			nheld--;
			withdrawn++;
			break;
		case PROTO_ERROR:
			assert_int_equal(m.req_id, SUB_REQ);
			assert_int_equal(m.code, ISP_E_NOT_FOUND);
			got_error = 1;
			break;
		default:
			fail_msg("unexpected %s", proto_type_name(m.type));
		}
		raw_next(&rb);
	}
	assert_int_equal(nheld, 0);
	assert_true(withdrawn > 0 && withdrawn < NKEYS);
	/* Nothing of the table follows: a PING's PONG comes next. */
	proto_put_ping(&b, PROTO_PING, 99);
	raw_send(slow, &b);
	assert_int_equal(raw_recv(slow, &rb, &m, 10000), 1);
	assert_int_equal(m.type, PROTO_PONG);
	raw_next(&rb);

	/* The mirror is empty, and its client was told the end. */
	mw.want = 0;
	mw.errs = &errs;
	assert_true(pump(&fast, 1, mirror_has, &mw, 10000));
	assert_int_equal(errs.err_code, ISP_E_NOT_FOUND);
	assert_non_null(strstr(errs.err_reason, "table " T " was dropped by "
	    "an operator (client ops, identity anonymous)"));

	/* The name again: a new table, its seq above the dropped one's. */
	announce_i(pub, 1);
	assert_int_equal(isp_sync(pub, 10000), ISP_OK);
	assert_int_equal(table_column(ops, T, "records"), 1);
	assert_true(table_column(ops, T, "seq") > seq);
	assert_true(ispd_log_has(&d, "client ops, identity anonymous): "
	    "dropped table " T ": 20000 records withdrawn"));

	close(slow);
	buf_free(&b);
	buf_free(&rb);
	isp_mirror_free(fm);
	isp_free(fast);
	isp_free(pub);
	isp_free(ops);
	evlog_free(&errs);
	assert_int_equal(ispd_stop(&d), 0);
}

/* The rows of isp_held(), checked as they come. */
struct held_list {
	uint64_t	 session[NLOST];
	size_t		 nrows;
	uint64_t	 last_session;
	char		 last_table[80];
	int		 bad;
	char		 why[200];
};

static const char *
field(const struct isp_field *f, size_t n, const char *name, char *v,
    size_t len)
{
	size_t	 i;

	v[0] = '\0';
	for (i = 0; i < n; i++)
		if (strcmp(f[i].name, name) == 0)
			snprintf(v, len, "%.*s", (int)f[i].value_len,
			    (const char *)f[i].value);
	return v;
}

static void
held_cb(const struct isp_field *f, size_t n, void *arg)
{
	struct held_list	*h = arg;
	char			 v[80], table[80], want[32];
	uint64_t		 session;
	size_t			 lost;

	session = strtoull(field(f, n, "session", v, sizeof(v)), NULL, 10);
	field(f, n, "table", table, sizeof(table));
	for (lost = 0; lost < NLOST && h->session[lost] != session; lost++)
		;
	snprintf(want, sizeof(want), "lost-%zu", lost);
	if (h->bad)
		return;
	h->bad = 1;
	if (lost == NLOST)
		snprintf(h->why, sizeof(h->why), "row of session %" PRIu64,
		    session);
	else if (strcmp(field(f, n, "client", v, sizeof(v)), want) != 0)
		snprintf(h->why, sizeof(h->why), "client %s, not %s", v, want);
	else if (strcmp(field(f, n, "identity", v, sizeof(v)),
	    "anonymous") != 0)
		snprintf(h->why, sizeof(h->why), "identity %s", v);
	else if (strcmp(field(f, n, "records", v, sizeof(v)), "1") != 0)
		snprintf(h->why, sizeof(h->why), "records %s", v);
	else if (strtoull(field(f, n, "expires_ms", v, sizeof(v)), NULL,
	    10) > 60000 || v[0] == '\0')
		snprintf(h->why, sizeof(h->why), "expires_ms %s", v);
	else if (session < h->last_session || (session == h->last_session &&
	    strcmp(table, h->last_table) <= 0))
		snprintf(h->why, sizeof(h->why), "%" PRIu64 " %s after %"
		    PRIu64 " %s", session, table, h->last_session,
		    h->last_table);
	else
		h->bad = 0;
	h->last_session = session;
	snprintf(h->last_table, sizeof(h->last_table), "%s", table);
	h->nrows++;
}

/* Table i of the listing test: a long name, so that rows are large. */
static void
held_table(char *t, size_t len, int i)
{
	snprintf(t, len, "HELD.%04d.%s", i, "padded-to-make-every-row-"
	    "longer-than-most-xx");
}

/*
 * NLOST sessions of distinct clients each announce a record into each
 * of NTABLES graceful tables and are lost (a close without BYE): ADMIN
 * HELD answers a row per held set and table, in order, every one once,
 * in pages (all at once would be a frame over the limit).
 */
static void
test_held_pages(void **state)
{
	static struct held_list	 h;
	struct ispd_proc	 d;
	struct proto_msg	 m;
	struct buf		 b, rb, fb;
	char			 t[80], name[24];
	isp_client		*ops;
	size_t			 start;
	int			 fd[NLOST], i, j;

	memset(&h, 0, sizeof(h));
	buf_init(&b);
	buf_init(&rb);
	buf_init(&fb);
	ispd_start(&d, "--graceful-table", "HELD.*", "--graceful-seconds",
	    "60", "--max-table-creates-per-sec", "100000", NULL);
	start = proto_fields_begin(&fb);
	proto_put_field(&fb, "v", 1, "1", 1);
	proto_fields_end(&fb, start, 1);
	for (i = 0; i < NLOST; i++) {
		snprintf(name, sizeof(name), "lost-%d", i);
		fd[i] = raw_connect(d.port);
		h.session[i] = raw_welcome(fd[i], &b, &rb, 0, name);
		for (j = 0; j < NTABLES; j++) {
			held_table(t, sizeof(t), j);
			proto_put_announce(&b, 1, proto_bytes(t, strlen(t)),
			    0, proto_bytes(name, strlen(name)),
			    proto_bytes(fb.data,
			    fb.len));
		}
		proto_put_ping(&b, PROTO_PING, 1);
		raw_send(fd[i], &b);
		/* Everything before the PING was taken. */
		do {
			assert_int_equal(raw_recv(fd[i], &rb, &m, 20000), 1);
			if (m.type == PROTO_ERROR)
				fail_msg("announce refused: %.*s",
				    (int)m.text.len, (const char *)m.text.p);
			raw_next(&rb);
		} while (m.type != PROTO_PONG);
	}
	ops = client_new(&d, "ops");
	h.nrows = 0;
	assert_int_equal(isp_held(ops, held_cb, &h, 10000), ISP_OK);
	assert_int_equal(h.nrows, 0);	/* nothing is lost yet */

	for (i = 0; i < NLOST; i++)
		close(fd[i]);
	for (i = 0; i < 200 && stat_counter(ops, "held_records") <
	    NLOST * NTABLES; i++)
		usleep(50 * 1000);
	assert_int_equal(stat_counter(ops, "held_records"), NLOST * NTABLES);

	h.last_session = 0;
	h.last_table[0] = '\0';
	assert_int_equal(isp_held(ops, held_cb, &h, 10000), ISP_OK);
	if (h.bad)
		fail_msg("row %zu: %s", h.nrows, h.why);
	assert_int_equal(h.nrows, NLOST * NTABLES);

	buf_free(&b);
	buf_free(&rb);
	buf_free(&fb);
	isp_free(ops);
	assert_int_equal(ispd_stop(&d), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_held_pages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
