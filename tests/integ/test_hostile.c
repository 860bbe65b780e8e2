/*
 * Hostile and unlucky peers against a real ispd (docs/LIMITS.md):
 *
 *  - a subscriber that stops reading while a publisher writes 500,000
 *    updates over 1,000 keys: ispd's memory stays bounded, a second
 *    subscriber keeps converging, and the slow one, reading again, ends
 *    with exactly the table;
 *  - a session owning 1,000,000 records is killed: another session's
 *    round trips stay short while the records are withdrawn in slices;
 *  - every configured limit, hit, answered ERROR LIMIT naming its option;
 *  - half-open connections (nothing sent, half a frame) closed by the
 *    hold timer before any HELLO;
 *  - running out of file descriptors pauses accepting, and ispd raises
 *    its soft limit on open files at startup.
 *
 * Every wait has a deadline; the file takes about 15 s plain and 60 s
 * under ASan on two cores. The bounds are stated where they are checked,
 * and in docs/LIMITS.md.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto.h"
#include "rawsock.h"
#include "testutil.h"

#define T	"SIP_REGISTRATION"

/*
 * The slow-subscriber test. 500,000 updates of about 250 bytes make a
 * 125 MB event stream: queued for a subscriber that does not read, that
 * is what ispd would hold without a bound. With --max-queue-bytes 64 KiB
 * it holds at most twice that per session plus the dirty set (about 100
 * bytes per key). The bound asserted on ispd's VmRSS, above what it had
 * once the keys existed, leaves room for the allocator and, under ASan,
 * for its quarantine (cut to 16 MiB for this daemon).
 */
#define SLOW_KEYS		1000
#define SLOW_UPDATES		(500000 / slowdown())
#define SLOW_BATCH		5000
#define SLOW_VALUE_BYTES	200
#define SLOW_RSS_GROWTH_KIB	(48 * 1024)
#define SLOW_CONVERGE_MS	5000	/* the live subscriber's bound */

/* The mass withdrawal: records, and the round trip bound while they go. */
#define MASS_RECORDS		(1000000 / slowdown())
#define MASS_RTT_MS		(200 * slowdown())

/* Under a wrapper such as valgrind (ISP_ISPD_WRAPPER, tests/lib), ispd
 * runs tens of times slower: a tenth of the work, ten times the time. */
static int
slowdown(void)
{
	return getenv("ISP_ISPD_WRAPPER") != NULL ? 10 : 1;
}

/* The daemon of the running test, and the mass test's child: a failed
 * assertion leaves them, and teardown() kills them (a daemon left alive
 * would hold the runner's output pipe open). */
static struct ispd_proc	 d;
static pid_t		 child = -1;

/* ------------------------------------------------------------------ */
/* Raw sessions (tests/lib/rawsock.h). */

/* The next frame is ERROR LIMIT naming option; with closes, then EOF. */
static void
expect_limit(int fd, struct buf *rb, const char *option, int closes)
{
	struct proto_msg	 m;
	char			 reason[1100];

	assert_int_equal(raw_recv(fd, rb, &m, 5000), 1);
	if (m.type != PROTO_ERROR || m.code != ISP_E_LIMIT)
		fail_msg("expected ERROR LIMIT, got %s code %u",
		    proto_type_name(m.type), m.code);
	snprintf(reason, sizeof(reason), "%.*s", (int)m.text.len,
	    (const char *)m.text.p);
	if (strstr(reason, option) == NULL)
		fail_msg("reason \"%s\" does not name %s", reason, option);
	raw_next(rb);
	if (closes)
		assert_int_equal(raw_recv(fd, rb, &m, 5000), 0);
}

/* ------------------------------------------------------------------ */
/* Helpers on the daemon. */

/* ispd's resident memory in KiB, or -1 (under a wrapper, the pid is the
 * wrapper's, and the number means nothing). */
static long
rss_kib(pid_t pid)
{
	char	 path[64], line[256];
	long	 kib = -1;
	FILE	*f;

	if (getenv("ISP_ISPD_WRAPPER") != NULL)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/*
 * Starts ispd like ispd_start(), but with RLIMIT_NOFILE set to soft and
 * hard first (as `prlimit --nofile=soft:hard ispd` would), so that the
 * test's own limit is left alone.
 */
static void
ispd_start_nofile(struct ispd_proc *p, rlim_t soft, rlim_t hard, ...)
{
	va_list	 ap;

	memset(p, 0, sizeof(*p));
	p->nofile_soft = soft;
	p->nofile_hard = hard;
	va_start(ap, hard);
	ispd_vstart(p, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The slow subscriber. */

struct view {
	int		 present[SLOW_KEYS];
	uint64_t	 seq[SLOW_KEYS];
	char		 value[SLOW_KEYS][SLOW_VALUE_BYTES + 1];
	size_t		 held;
	size_t		 events;
	int		 ended;
};

static int
key_index(struct proto_bytes key)
{
	char	 k[32];
	int	 i;

	snprintf(k, sizeof(k), "%.*s", (int)key.len, (const char *)key.p);
	if (sscanf(k, "key%d", &i) != 1 || i < 0 || i >= SLOW_KEYS)
		fail_msg("unexpected key %s", k);
	return i;
}

/* Applies an event read by the raw subscriber, checking that it fits
 * what the subscriber holds and that a key's seq only grows. */
static void
view_apply(struct view *v, const struct proto_msg *m)
{
	struct proto_field_iter	 it;
	struct proto_field	 f;
	int			 k;

	if (m->type == PROTO_EV_END) {
		v->ended = 1;
		assert_int_equal(m->count, v->held);
		return;
	}
	if (m->type == PROTO_PONG)
		return;
	k = key_index(m->key);
	if (v->present[k] && m->seq <= v->seq[k])
		fail_msg("key%04d: seq %" PRIu64 " after %" PRIu64, k, m->seq,
		    v->seq[k]);
	switch (m->type) {
	case PROTO_EV_ANNOUNCE:
		assert_false(v->present[k]);
		v->present[k] = 1;
		v->held++;
		break;
	case PROTO_EV_REPLACE:
		assert_true(v->present[k]);
		break;
	case PROTO_EV_WITHDRAW:
		assert_true(v->present[k]);
		v->present[k] = 0;
		v->held--;
		break;
	default:
		fail_msg("unexpected %s", proto_type_name(m->type));
	}
	v->seq[k] = m->seq;
	if (m->type != PROTO_EV_WITHDRAW) {
		proto_fields_iter(&it, m->fields);
		assert_true(proto_fields_next(&it, &f));
		assert_true(f.value.len <= SLOW_VALUE_BYTES);
		memcpy(v->value[k], f.value.p, f.value.len);
		v->value[k][f.value.len] = '\0';
	}
	v->events++;
}

static void
slow_value(char *dst, int i)
{
	int	 n;

	n = snprintf(dst, SLOW_VALUE_BYTES + 1, "sip:user%d@198.51.100.%d:5060;"
	    "update=%d;", i % SLOW_KEYS, i % 250, i);
	memset(dst + n, 'x', (size_t)(SLOW_VALUE_BYTES - n));
	dst[SLOW_VALUE_BYTES] = '\0';
}

static void
slow_announce(isp_client *c, int i)
{
	struct isp_field	 f;
	char			 key[16], value[SLOW_VALUE_BYTES + 1];

	snprintf(key, sizeof(key), "key%04d", i % SLOW_KEYS);
	slow_value(value, i);
	f.name = "contact";
	f.value = value;
	f.value_len = SLOW_VALUE_BYTES;
	assert_int_equal(isp_announce(c, T, key, strlen(key), &f, 1, 0),
	    ISP_OK);
}

/* Waits until the mirror holds update i of its key. Returns the ms it
 * took, or -1 after SLOW_CONVERGE_MS. */
static int
mirror_wait(isp_mirror *m, int i)
{
	struct isp_record	*r;
	char			 key[16], want[SLOW_VALUE_BYTES + 1];
	int64_t			 start = now_ms();
	int			 ok;

	snprintf(key, sizeof(key), "key%04d", i % SLOW_KEYS);
	slow_value(want, i);
	for (;;) {
		ok = 0;
		if ((r = isp_mirror_get(m, key, strlen(key))) != NULL) {
			ok = r->nfields == 1 && strcmp(r->fields[0].value,
			    want) == 0;
			isp_record_free(r);
		}
		if (ok)
			return (int)(now_ms() - start);
		if (now_ms() - start > SLOW_CONVERGE_MS)
			return -1;
		usleep(1000);
	}
}

/* The ASan quarantine keeps up to 256 MiB of freed memory resident;
 * that is not what this test measures. */
static void
asan_small_quarantine(char *saved, size_t savedsz)
{
	const char	*old = getenv("ASAN_OPTIONS");
	char		 opts[1100];

	snprintf(saved, savedsz, "%s", old != NULL ? old : "");
	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=16",
	    saved, saved[0] != '\0' ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
}

static void
asan_restore(const char *saved)
{
	if (saved[0] != '\0')
		setenv("ASAN_OPTIONS", saved, 1);
	else
		unsetenv("ASAN_OPTIONS");
}

static void
test_slow_subscriber(void **state)
{
	struct view		*v;
	struct buf		 b, rb;
	struct proto_msg	 m;
	isp_client		*pub, *fast;
	isp_mirror		*fm;
	struct isp_record	*r;
	char			 saved[1024], key[16], want[SLOW_VALUE_BYTES + 1];
	long			 rss0, rss, rss_max = 0;
	int64_t			 end;
	int			 slow, i, k, lag, lag_max = 0, rc;

	assert_non_null(v = calloc(1, sizeof(*v)));
	buf_init(&b);
	buf_init(&rb);
	asan_small_quarantine(saved, sizeof(saved));
	ispd_start(&d, "--max-queue-bytes", "65536", "--hold", "300", NULL);
	asan_restore(saved);

	/* The keys exist; the slow subscriber reads its snapshot. */
	pub = client_new(&d, "pub");
	for (i = 0; i < SLOW_KEYS; i++)
		slow_announce(pub, i);
	assert_int_equal(isp_sync(pub, 10000), ISP_OK);
	slow = raw_connect_rcvbuf(d.port, 4096);
	raw_welcome(slow, &b, &rb, 0, "raw");
	proto_put_subscribe(&b, 1, proto_bytes(T, strlen(T)), 0,
	    proto_bytes("", 0));
	raw_send(slow, &b);
	while (!v->ended) {
		assert_int_equal(raw_recv(slow, &rb, &m, 10000), 1);
		view_apply(v, &m);
		raw_next(&rb);
	}
	assert_int_equal(v->held, SLOW_KEYS);

	/* A live subscriber, on a thread of its own. */
	fast = client_new(&d, "fast");
	assert_non_null(fm = isp_mirror_new(fast, T, NULL, 0, NULL, NULL));
	assert_int_equal(isp_start(fast), ISP_OK);
	assert_true(mirror_wait(fm, SLOW_KEYS - 1) >= 0);
	rss0 = rss_kib(d.pid);

	/* 500,000 updates while the slow one reads nothing. */
	for (i = SLOW_KEYS; i < SLOW_UPDATES; i++) {
		slow_announce(pub, i);
		if ((i + 1) % SLOW_BATCH != 0)
			continue;
		assert_int_equal(isp_sync(pub, 30000), ISP_OK);
		if ((rss = rss_kib(d.pid)) > rss_max)
			rss_max = rss;
		if ((i + 1) % (10 * SLOW_BATCH) == 0) {
			if ((lag = mirror_wait(fm, i)) < 0)
				fail_msg("the live subscriber did not see "
				    "update %d within %d ms", i,
				    SLOW_CONVERGE_MS);
			if (lag > lag_max)
				lag_max = lag;
		}
	}
	assert_int_equal(isp_sync(pub, 30000), ISP_OK);
	fprintf(stderr, "slow subscriber: ispd VmRSS %ld KiB after the keys, "
	    "at most %ld KiB during %d updates; live mirror lag at most %d "
	    "ms\n", rss0, rss_max, SLOW_UPDATES, lag_max);
	if (rss0 > 0 && rss_max - rss0 > SLOW_RSS_GROWTH_KIB)
		fail_msg("ispd grew by %ld KiB with a stalled subscriber, "
		    "over the bound of %d KiB", rss_max - rss0,
		    SLOW_RSS_GROWTH_KIB);
	assert_true(stat_counter(pub, "slow_subscribers") >= 1);
	assert_true(stat_counter(pub, "coalesced_events") > 0);
	assert_true(stat_counter(pub, "dirty_keys") <= SLOW_KEYS);
	assert_true(stat_counter(pub, "max_lag_keys") > 0);

	/* Reading again: the slow one converges to exactly the table. */
	end = now_ms() + 60000;
	for (;;) {
		for (k = 0; k < SLOW_KEYS; k++) {
			slow_value(want, SLOW_UPDATES - SLOW_KEYS + k);
			if (!v->present[k] || strcmp(v->value[k], want) != 0)
				break;
		}
		if (k == SLOW_KEYS)
			break;
		rc = raw_recv(slow, &rb, &m, (int)(end - now_ms()));
		if (rc != 1)
			fail_msg("the slow subscriber did not converge: key%04d "
			    "is not at its last value", k);
		view_apply(v, &m);
		raw_next(&rb);
	}
	assert_true(v->events < (size_t)SLOW_UPDATES / 2);
	for (k = 0; k < SLOW_KEYS; k++) {
		snprintf(key, sizeof(key), "key%04d", k);
		assert_non_null(r = isp_mirror_get(fm, key, strlen(key)));
		assert_int_equal(r->seq, v->seq[k]);
		assert_string_equal(r->fields[0].value, v->value[k]);
		assert_string_equal(r->owner, "pub");
		isp_record_free(r);
	}
	assert_int_equal(v->held, isp_mirror_count(fm));
	end = now_ms() + 10000;
	while (stat_counter(pub, "slow_subscribers") != 0 && now_ms() < end)
		usleep(10000);
	assert_int_equal(stat_counter(pub, "slow_subscribers"), 0);
	assert_true(ispd_log_has(&d, "fell behind"));
	assert_true(ispd_log_has(&d, "caught up"));

	close(slow);
	isp_mirror_free(fm);
	isp_free(fast);
	isp_free(pub);
	buf_free(&b);
	buf_free(&rb);
	free(v);
	assert_int_equal(ispd_stop(&d), 0);
}

/* ------------------------------------------------------------------ */
/* Mass withdrawal. */

/* The child: owns MASS_RECORDS records, says so on fd, then keeps its
 * session alive until killed. No cmocka here. */
static void __attribute__((noreturn))
mass_owner(const char *addr, int fd)
{
	struct isp_options	 o;
	struct isp_field	 f = { "contact", NULL, 0 };
	isp_client		*c;
	char			 key[64], val[64];
	int			 i;

	isp_options_init(&o);
	o.server = addr;
	o.name = "bgw-huge";
	if ((c = isp_new(&o)) == NULL || isp_connect(c) != ISP_OK)
		_exit(1);
	for (i = 0; i < MASS_RECORDS; i++) {
		snprintf(key, sizeof(key), "sip:%07d@voip.example.com", i);
		snprintf(val, sizeof(val), "sip:%07d@198.51.100.%d:5060", i,
		    i % 250);
		f.value = val;
		f.value_len = strlen(val);
		if (isp_announce(c, T, key, strlen(key), &f, 1, 0) != ISP_OK)
			_exit(2);
		if (i % 50000 == 49999 && isp_sync(c, 60000) != ISP_OK)
			_exit(3);
	}
	if (isp_sync(c, 60000) != ISP_OK)
		_exit(4);
	if (write(fd, "r", 1) != 1)
		_exit(6);
	for (;;)
		if (isp_run(c, 1000) != ISP_OK)
			_exit(5);
}

static void
test_mass_withdraw(void **state)
{
	struct pollfd		 pfd;
	isp_client		*probe;
	char			 ch;
	int64_t			 t0, end, rtt, rtt_max = 0, started, took;
	long long		 n;
	int			 p[2], during = 0, probes = 0;

	ispd_start(&d, NULL);
	assert_int_equal(pipe(p), 0);
	child = fork();
	assert_true(child != -1);
	if (child == 0) {
		close(p[0]);
		mass_owner(d.addr, p[1]);
	}
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 150000 * slowdown()) != 1 ||
	    read(p[0], &ch, 1) != 1)
		fail_msg("the owner did not announce %d records in time",
		    MASS_RECORDS);
	close(p[0]);

	probe = client_new(&d, "probe");
	assert_int_equal(table_column(probe, T, "records"), MASS_RECORDS);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	child = -1;

	/* Round trips while the records go: each is a PING the loop must
	 * answer between two slices. */
	started = now_ms();
	end = started + 60000;
	for (;;) {
		t0 = now_ms();
		assert_int_equal(isp_sync(probe, 10000), ISP_OK);
		if ((rtt = now_ms() - t0) > rtt_max)
			rtt_max = rtt;
		t0 = now_ms();
		n = table_column(probe, T, "records");
		if ((rtt = now_ms() - t0) > rtt_max)
			rtt_max = rtt;
		probes++;
		if (n > 0 && n < MASS_RECORDS)
			during++;
		if (n == 0 || now_ms() > end)
			break;
	}
	took = now_ms() - started;
	fprintf(stderr, "mass withdrawal: %d records gone in %" PRId64 " ms; "
	    "%d probes, %d while it went on; longest round trip %" PRId64
	    " ms\n", MASS_RECORDS, took, probes, during, rtt_max);
	assert_int_equal(n, 0);
	/* Served throughout: many round trips completed in the middle of
	 * it, none slower than the bound. Withdrawn in one piece, it would
	 * show no round trip in the middle and one as long as all of it. */
	assert_true(during >= 5);
	if (rtt_max > MASS_RTT_MS)
		fail_msg("a round trip took %" PRId64 " ms during the "
		    "withdrawal, over the bound of %d ms", rtt_max,
		    MASS_RTT_MS);
	{
		char	 text[64];

		snprintf(text, sizeof(text), "withdrawing its %d records",
		    MASS_RECORDS);
		assert_true(ispd_log_has(&d, text));
	}
	isp_free(probe);
	assert_int_equal(ispd_stop(&d), 0);
}

/* ------------------------------------------------------------------ */
/* Limits. */

static isp_client *
client_errs(struct ispd_proc *p, const char *name, struct evlog *l)
{
	struct isp_options	 o;
	isp_client		*c;

	isp_options_init(&o);
	o.server = p->addr;
	o.name = name;
	o.on_error = evlog_error_cb;
	o.arg = l;
	assert_non_null(c = isp_new(&o));
	assert_int_equal(isp_connect(c), ISP_OK);
	return c;
}

/* The last request of c was answered ERROR LIMIT naming option. */
static void
expect_client_limit(isp_client *c, struct evlog *l, const char *option)
{
	uint32_t	 req = isp_last_req_id(c);

	assert_int_equal(isp_sync(c, 5000), ISP_OK);
	if (l->nerrors == 0)
		fail_msg("no error for the request that should hit %s",
		    option);
	assert_int_equal(l->err_req, req);
	assert_int_equal(l->err_code, ISP_E_LIMIT);
	if (strstr(l->err_reason, option) == NULL)
		fail_msg("reason \"%s\" does not name %s", l->err_reason,
		    option);
	l->nerrors = 0;
}

static void
expect_client_ok(isp_client *c, struct evlog *l)
{
	assert_int_equal(isp_sync(c, 5000), ISP_OK);
	if (l->nerrors != 0)
		fail_msg("unexpected error: %s", l->err_reason);
}

static int
announce1(isp_client *c, const char *table, const char *key,
    const char *value)
{
	struct isp_field	 f = { "v", value, strlen(value) };

	return isp_announce(c, table, key, strlen(key), &f, 1, 0);
}

static void
test_request_limits(void **state)
{
	struct evlog		 l = { 0 };
	struct isp_field	 f[5];
	struct buf		 b, rb;
	isp_client		*c;
	uint8_t			 hdr[5];
	char			 key[32], big[40];
	int			 i, fd;

	ispd_start(&d, "--max-key-bytes", "16", "--max-value-bytes", "32",
	    "--max-fields", "4", "--max-records-per-session", "10",
	    "--max-tables", "6", "--max-subscriptions", "2",
	    "--max-table-creates-per-sec", "3", "--max-frame-bytes", "4096",
	    NULL);

	/* Key, value, fields. */
	c = client_errs(&d, "rec", &l);
	assert_int_equal(announce1(c, "A", "0123456789abcdefX", "v"), ISP_OK);
	expect_client_limit(c, &l, "--max-key-bytes");
	memset(big, 'v', sizeof(big));
	big[33] = '\0';
	assert_int_equal(announce1(c, "A", "k", big), ISP_OK);
	expect_client_limit(c, &l, "--max-value-bytes");
	for (i = 0; i < 5; i++) {
		f[i].name = "f";
		f[i].value = "1";
		f[i].value_len = 1;
	}
	assert_int_equal(isp_announce(c, "A", "k", 1, f, 5, 0), ISP_OK);
	expect_client_limit(c, &l, "--max-fields");
	assert_int_equal(isp_announce(c, "A", "k", 1, f, 4, 0), ISP_OK);
	expect_client_ok(c, &l);

	/* Records per session: the eleventh is refused, changing one of
	 * its own is not. */
	for (i = 1; i < 10; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(announce1(c, "A", key, "v"), ISP_OK);
	}
	expect_client_ok(c, &l);
	assert_int_equal(announce1(c, "A", "k10", "v"), ISP_OK);
	expect_client_limit(c, &l, "--max-records-per-session");
	assert_int_equal(announce1(c, "A", "k1", "changed"), ISP_OK);
	expect_client_ok(c, &l);
	isp_free(c);

	/* Table creation: three at once, the fourth too fast; a second
	 * later two more; then the tables are all there may be (A and
	 * five). */
	c = client_errs(&d, "tables", &l);
	assert_int_equal(announce1(c, "T1", "k", "v"), ISP_OK);
	assert_int_equal(announce1(c, "T2", "k", "v"), ISP_OK);
	assert_int_equal(announce1(c, "T3", "k", "v"), ISP_OK);
	expect_client_ok(c, &l);
	assert_int_equal(announce1(c, "T4", "k", "v"), ISP_OK);
	expect_client_limit(c, &l, "--max-table-creates-per-sec");
	usleep(1100000);
	assert_int_equal(announce1(c, "T4", "k", "v"), ISP_OK);
	assert_int_equal(announce1(c, "T5", "k", "v"), ISP_OK);
	expect_client_ok(c, &l);
	assert_int_equal(announce1(c, "T6", "k", "v"), ISP_OK);
	expect_client_limit(c, &l, "--max-tables");
	/* Subscriptions: two, then the limit. */
	assert_int_equal(isp_subscribe(c, "T1", NULL, 0, 0, evlog_cb, &l),
	    ISP_OK);
	assert_int_equal(isp_subscribe(c, "T2", NULL, 0, 0, evlog_cb, &l),
	    ISP_OK);
	expect_client_ok(c, &l);
	assert_int_equal(isp_subscribe(c, "T3", NULL, 0, 0, evlog_cb, &l),
	    ISP_OK);
	expect_client_limit(c, &l, "--max-subscriptions");
	isp_free(c);
	evlog_free(&l);

	/* A frame over --max-frame-bytes (under the protocol's maximum):
	 * refused by its length alone, the session closed. */
	buf_init(&b);
	buf_init(&rb);
	fd = raw_connect(d.port);
	raw_welcome(fd, &b, &rb, 0, "raw");
	put_be32(hdr, 5000);
	hdr[4] = PROTO_ANNOUNCE;
	buf_put(&b, hdr, sizeof(hdr));
	raw_send(fd, &b);
	expect_limit(fd, &rb, "--max-frame-bytes", 1);
	close(fd);
	buf_free(&b);
	buf_free(&rb);
	assert_true(ispd_log_has(&d, "--max-frame-bytes"));
	assert_int_equal(ispd_stop(&d), 0);
}

/*
 * Once ispd has seen one of an address's sessions go, the address may
 * open another: connects until welcomed, refused with ERROR LIMIT
 * meanwhile, for 5 s at most. Returns the welcomed session's socket;
 * adds the refusals to *nrefused.
 */
static int
welcome_once_gone(int port, struct buf *b, struct buf *rb, int *nrefused)
{
	struct proto_msg	 m;
	int64_t			 end = now_ms() + 5000;
	int			 fd;

	for (;;) {
		fd = raw_connect(port);
		raw_hello(fd, b, 0, "raw");
		assert_int_equal(raw_recv(fd, rb, &m, 5000), 1);
		if (m.type == PROTO_WELCOME) {
			raw_next(rb);
			return fd;
		}
		if (m.type != PROTO_ERROR || m.code != ISP_E_LIMIT)
			fail_msg("expected WELCOME or ERROR LIMIT, got %s",
			    proto_type_name(m.type));
		(*nrefused)++;
		close(fd);
		rb->len = 0;
		if (now_ms() >= end)
			fail_msg("the address is still at its limit 5 s "
			    "after one of its sessions closed");
		usleep(10000);
	}
}

static void
test_session_limits(void **state)
{
	struct buf		 b, rb;
	isp_client		*c;
	int			 fd[4], i, nrefused = 0;

	buf_init(&b);
	buf_init(&rb);

	/* Per source address: three, the fourth refused; once one goes,
	 * a new one is welcome. */
	ispd_start(&d, "--max-sessions-per-ip", "3", NULL);
	for (i = 0; i < 3; i++) {
		fd[i] = raw_connect(d.port);
		raw_welcome(fd[i], &b, &rb, 0, "raw");
	}
	fd[3] = raw_connect(d.port);
	expect_limit(fd[3], &rb, "--max-sessions-per-ip", 1);
	close(fd[3]);
	/* Counted, as an operator watching for such clients sees it. */
	assert_int_equal(raw_stat(fd[1], &b, &rb, "sessions_refused"), 1);
	close(fd[0]);
	fd[0] = welcome_once_gone(d.port, &b, &rb, &nrefused);
	/* libisp says which limit it hit. */
	{
		struct isp_options	 o;

		isp_options_init(&o);
		o.server = d.addr;
		assert_non_null(c = isp_new(&o));
		assert_true(isp_connect(c) != ISP_OK);
		if (strstr(isp_errmsg(c), "--max-sessions-per-ip") == NULL)
			fail_msg("libisp says \"%s\"", isp_errmsg(c));
		isp_free(c);
	}
	assert_int_equal(raw_stat(fd[1], &b, &rb, "sessions_refused"),
	    2 + nrefused);
	for (i = 0; i < 3; i++)
		close(fd[i]);
	assert_int_equal(ispd_stop(&d), 0);

	/* In all. */
	ispd_start(&d, "--max-sessions", "3", NULL);
	for (i = 0; i < 3; i++) {
		fd[i] = raw_connect(d.port);
		raw_welcome(fd[i], &b, &rb, 0, "raw");
	}
	fd[3] = raw_connect(d.port);
	expect_limit(fd[3], &rb, "--max-sessions", 1);
	close(fd[3]);
	assert_int_equal(raw_stat(fd[0], &b, &rb, "sessions_refused"), 1);
	for (i = 0; i < 3; i++)
		close(fd[i]);
	buf_free(&b);
	buf_free(&rb);
	assert_int_equal(ispd_stop(&d), 0);
}

/* ------------------------------------------------------------------ */
/* Half-open connections. */

/* fd gets BYE HOLD_EXPIRED, then EOF, within ms. */
static void
expect_hold_close(int fd, struct buf *rb, int ms)
{
	struct proto_msg	 m;

	assert_int_equal(raw_recv(fd, rb, &m, ms), 1);
	assert_int_equal(m.type, PROTO_BYE);
	assert_int_equal(m.code, ISP_E_HOLD_EXPIRED);
	raw_next(rb);
	assert_int_equal(raw_recv(fd, rb, &m, ms), 0);
}

static void
test_half_open(void **state)
{
	static const uint8_t	 part_hello[] = { 0, 0, 0 };
	static const uint8_t	 part_frame[] = { 0, 0, 3, 232, PROTO_ANNOUNCE,
				    0, 0, 0, 1, 1 };
	struct buf		 b, rb[4];
	struct proto_msg	 m;
	int			 fd[4], good, i;
	int64_t			 start;

	ispd_start(&d, "--hold", "1", NULL);
	buf_init(&b);
	for (i = 0; i < 4; i++)
		buf_init(&rb[i]);
	good = raw_connect(d.port);
	raw_welcome(good, &b, &rb[3], 0, "raw");

	start = now_ms();
	fd[0] = raw_connect(d.port);		/* nothing at all */
	fd[1] = raw_connect(d.port);		/* half a length */
	buf_put(&b, part_hello, sizeof(part_hello));
	raw_send(fd[1], &b);
	fd[2] = raw_connect(d.port);		/* a frame's start */
	buf_put(&b, part_frame, sizeof(part_frame));
	raw_send(fd[2], &b);

	/* The good session keeps pinging and stays. */
	for (i = 0; i < 3; i++) {
		usleep(400000);
		proto_put_ping(&b, PROTO_PING, (uint64_t)i);
		raw_send(good, &b);
		assert_int_equal(raw_recv(good, &rb[3], &m, 2000), 1);
		assert_int_equal(m.type, PROTO_PONG);
		raw_next(&rb[3]);
	}
	for (i = 0; i < 3; i++) {
		expect_hold_close(fd[i], &rb[i], 3000);
		close(fd[i]);
	}
	assert_true(now_ms() - start < 4000);
	/* The three, counted; the good session was not one of them. */
	assert_int_equal(raw_stat(good, &b, &rb[3], "hold_expired"), 3);
	close(good);
	buf_free(&b);
	for (i = 0; i < 4; i++)
		buf_free(&rb[i]);
	assert_int_equal(ispd_stop(&d), 0);
}

/* ------------------------------------------------------------------ */
/* File descriptors. */

#define NOFILE_LOW	32
#define NOFILE_CONNS	36

static void
test_nofile(void **state)
{
	struct rlimit		 rl;
	struct buf		 b, rb[NOFILE_CONNS];
	struct proto_msg	 m;
	int			 fd[NOFILE_CONNS], welcomed[NOFILE_CONNS];
	int			 i, n = 0, first = -1;
	int64_t			 end;

	/* A soft limit under the hard one is raised, and that is logged. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max > 512 && rl.rlim_max != RLIM_INFINITY) {
		ispd_start_nofile(&d, 256, rl.rlim_max, NULL);
		assert_true(ispd_log_has(&d, "raised the limit on open files "
		    "from 256"));
		assert_int_equal(ispd_stop(&d), 0);
	}

	/* 32 descriptors: some sessions are welcomed, accepting pauses
	 * (logged), a welcomed session is still served, and when sessions
	 * go the waiting connections are accepted. */
	ispd_start_nofile(&d, NOFILE_LOW, NOFILE_LOW, "--hold", "60", NULL);
	assert_true(ispd_log_has(&d, "allows about"));
	buf_init(&b);
	for (i = 0; i < NOFILE_CONNS; i++) {
		buf_init(&rb[i]);
		fd[i] = raw_connect(d.port);
		raw_hello(fd[i], &b, 0, "raw");
		welcomed[i] = 0;
	}
	end = now_ms() + 2000;
	for (i = 0; i < NOFILE_CONNS; i++) {
		if (raw_recv(fd[i], &rb[i], &m, end - now_ms() > 50 ?
		    (int)(end - now_ms()) : 50) != 1)
			continue;
		assert_int_equal(m.type, PROTO_WELCOME);
		raw_next(&rb[i]);
		welcomed[i] = 1;
		n++;
	}
	fprintf(stderr, "nofile: %d of %d sessions welcomed with %d "
	    "descriptors\n", n, NOFILE_CONNS, NOFILE_LOW);
	assert_true(n >= NOFILE_CONNS / 2 && n < NOFILE_CONNS);
	assert_true(ispd_log_has(&d, "pausing"));
	for (i = 0; i < NOFILE_CONNS && !welcomed[i]; i++)
		;
	first = i;
	proto_put_ping(&b, PROTO_PING, 7);
	raw_send(fd[first], &b);
	assert_int_equal(raw_recv(fd[first], &rb[first], &m, 2000), 1);
	assert_int_equal(m.type, PROTO_PONG);
	raw_next(&rb[first]);

	/* Free descriptors: every welcomed session but the first goes. */
	for (i = first + 1; i < NOFILE_CONNS; i++)
		if (welcomed[i]) {
			close(fd[i]);
			fd[i] = -1;
		}
	for (i = 0; i < NOFILE_CONNS; i++) {
		if (welcomed[i])
			continue;
		if (raw_recv(fd[i], &rb[i], &m, 5000) != 1)
			fail_msg("connection %d not accepted after "
			    "descriptors were freed", i);
		assert_int_equal(m.type, PROTO_WELCOME);
		raw_next(&rb[i]);
	}
	assert_true(ispd_log_has(&d, "accepting on"));
	for (i = 0; i < NOFILE_CONNS; i++) {
		if (fd[i] != -1)
			close(fd[i]);
		buf_free(&rb[i]);
	}
	buf_free(&b);
	assert_int_equal(ispd_stop(&d), 0);
}

static int
teardown(void **state)
{
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
	if (d.pid > 0)
		ispd_signal(&d, SIGKILL);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_request_limits, teardown),
		cmocka_unit_test_teardown(test_session_limits, teardown),
		cmocka_unit_test_teardown(test_half_open, teardown),
		cmocka_unit_test_teardown(test_nofile, teardown),
		cmocka_unit_test_teardown(test_slow_subscriber, teardown),
		cmocka_unit_test_teardown(test_mass_withdraw, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}
