/*
 * libisp's run mode 3 (isp_start: a library thread per client) against
 * a real ispd, with the library's public calls made from other threads
 * at the same time: readers of a mirror (isp_mirror_get,
 * isp_mirror_foreach, isp_mirror_count) while its client's thread
 * applies events, and writers (isp_announce, isp_withdraw, isp_sync)
 * on clients whose thread is reading. Built as a normal integration test
 * (plain and ASan) and, by `make check`, with ThreadSanitizer in
 * build/tsan, which is where a missing lock shows.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

#define T		"SIP_REGISTRATION"
/* Records each writer announces; every third is replaced, every fifth
 * withdrawn. Under TSan a round trip costs ~10x, so this stays small. */
#define NKEYS		1500
#define NWRITERS	2
#define NREADERS	2

struct shared {
	isp_client	*w[NWRITERS];	/* writer i announces through w[i] */
	isp_mirror	*m;
	atomic_int	 writers_done;
	atomic_int	 stop_readers;
	atomic_long	 changes;	/* on_change calls */
	atomic_long	 bad_changes;
	atomic_long	 reads;
	atomic_long	 bad_reads;
};

struct writer {
	struct shared	*sh;
	int		 idx;
	int		 rc;		/* first failure, or ISP_OK */
};

static void
key_of(char *key, size_t len, int writer, int i)
{
	snprintf(key, len, "w%d-user%05d@example.com|1", writer, i);
}

/* A record's fields say which key and version they belong to, so a
 * reader can tell a torn or mixed-up copy. */
static int
announce(isp_client *c, const char *key, int version)
{
	struct isp_field	 f[3];
	char			 ver[16], contact[96];

	snprintf(ver, sizeof(ver), "%d", version);
	snprintf(contact, sizeof(contact), "sip:%s", key);
	f[0].name = "key";
	f[0].value = key;
	f[0].value_len = strlen(key);
	f[1].name = "contact";
	f[1].value = contact;
	f[1].value_len = strlen(contact);
	f[2].name = "version";
	f[2].value = ver;
	f[2].value_len = strlen(ver);
	return isp_announce(c, T, key, strlen(key), f, 3, 0);
}

/* 1 when r is whole: its key field and contact match its key. */
static int
record_consistent(const struct isp_record *r)
{
	char	 contact[96];

	if (r->nfields != 3 || strcmp(r->fields[0].name, "key") != 0 ||
	    r->fields[0].value_len != r->key_len ||
	    memcmp(r->fields[0].value, r->key, r->key_len) != 0)
		return 0;
	snprintf(contact, sizeof(contact), "sip:%.*s", (int)r->key_len,
	    (const char *)r->key);
	return r->fields[1].value_len == strlen(contact) &&
	    memcmp(r->fields[1].value, contact, strlen(contact)) == 0;
}

/* Runs on the mirror client's library thread. */
static void
on_change(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct shared	*sh = arg;

	atomic_fetch_add(&sh->changes, 1);
	if (strcmp(ev->table, T) != 0 || (ev->type != ISP_EV_END &&
	    (ev->rec.key_len == 0 || ev->rec.owner == NULL)))
		atomic_fetch_add(&sh->bad_changes, 1);
	if ((ev->type == ISP_EV_ANNOUNCE || ev->type == ISP_EV_REPLACE) &&
	    !record_consistent(&ev->rec))
		atomic_fetch_add(&sh->bad_changes, 1);
}

static void *
writer_main(void *arg)
{
	struct writer	*w = arg;
	isp_client	*c = w->sh->w[w->idx];
	char		 key[96];
	int		 i, rc;

	w->rc = ISP_OK;
	for (i = 0; i < NKEYS; i++) {
		key_of(key, sizeof(key), w->idx, i);
		if ((rc = announce(c, key, 1)) != ISP_OK)
			goto fail;
		if (i % 3 == 0 && (rc = announce(c, key, 2)) != ISP_OK)
			goto fail;
		if (i % 5 == 0 && (rc = isp_withdraw(c, T, key,
		    strlen(key))) != ISP_OK)
			goto fail;
		/* Now and then a barrier from this thread while the
		 * library thread reads: the PONG wakes us through it. */
		if (i % 500 == 499 && (rc = isp_sync(c, 10000)) != ISP_OK)
			goto fail;
	}
	rc = isp_sync(c, 10000);
fail:
	w->rc = rc;
	atomic_fetch_add(&w->sh->writers_done, 1);
	return NULL;
}

static int
count_cb(const struct isp_record *r, void *arg)
{
	struct shared	*sh = arg;

	if (!record_consistent(r))
		atomic_fetch_add(&sh->bad_reads, 1);
	return 0;
}

static void *
reader_main(void *arg)
{
	struct shared		*sh = arg;
	struct isp_record	*r;
	char			 key[96];
	unsigned		 seed = (unsigned)(uintptr_t)&key;
	int			 n = 0;

	while (!atomic_load(&sh->stop_readers)) {
		key_of(key, sizeof(key), (int)(rand_r(&seed) % NWRITERS),
		    (int)(rand_r(&seed) % NKEYS));
		if ((r = isp_mirror_get(sh->m, key, strlen(key))) != NULL) {
			if (!record_consistent(r) ||
			    strcmp((const char *)r->key, key) != 0)
				atomic_fetch_add(&sh->bad_reads, 1);
			isp_record_free(r);
		}
		if (++n % 64 == 0) {
			(void)isp_mirror_foreach(sh->m, "w1-", 3, count_cb,
			    sh);
			(void)isp_mirror_count(sh->m);
			(void)isp_mirror_ready(sh->m);
		}
		atomic_fetch_add(&sh->reads, 1);
	}
	return NULL;
}

static int
mirror_complete(void *arg)
{
	struct shared	*sh = arg;
	size_t		 want = 0;
	int		 i;

	for (i = 0; i < NKEYS; i++)
		want += i % 5 != 0;
	return isp_mirror_count(sh->m) == want * NWRITERS;
}

/*
 * Two threaded writers (one of them the mirror's own client) and two
 * readers of the mirror, all at once; then the mirror must hold exactly
 * what was announced and not withdrawn, in its last version.
 */
static void
test_mirror_readers_and_writers(void **state)
{
	struct ispd_proc	 d;
	struct shared		 sh;
	struct writer		 wr[NWRITERS];
	pthread_t		 wt[NWRITERS], rt[NREADERS];
	struct isp_record	*r;
	isp_client		*mc;
	char			 key[96];
	int64_t			 deadline;
	int			 i, j;

	memset(&sh, 0, sizeof(sh));
	ispd_start(&d, NULL);
	mc = client_new(&d, "mirror");
	assert_non_null(sh.m = isp_mirror_new(mc, T, NULL, 0, on_change,
	    &sh));
	assert_int_equal(isp_start(mc), ISP_OK);
	deadline = now_ms() + 10000;
	while (!isp_mirror_ready(sh.m) && now_ms() < deadline)
		usleep(1000);
	assert_true(isp_mirror_ready(sh.m));

	sh.w[0] = client_new(&d, "writer");
	assert_int_equal(isp_start(sh.w[0]), ISP_OK);
	sh.w[1] = mc;	/* announces while its own thread applies events */

	for (i = 0; i < NREADERS; i++)
		assert_int_equal(pthread_create(&rt[i], NULL, reader_main,
		    &sh), 0);
	for (i = 0; i < NWRITERS; i++) {
		wr[i].sh = &sh;
		wr[i].idx = i;
		assert_int_equal(pthread_create(&wt[i], NULL, writer_main,
		    &wr[i]), 0);
	}
	for (i = 0; i < NWRITERS; i++) {
		pthread_join(wt[i], NULL);
		if (wr[i].rc != ISP_OK)
			fail_msg("writer %d: %s: %s", i,
			    isp_strerror(wr[i].rc), isp_errmsg(sh.w[i]));
	}
	/* The writers' syncs returned: ispd has applied everything; the
	 * mirror converges as its thread reads the events. */
	deadline = now_ms() + 20000;
	while (!mirror_complete(&sh) && now_ms() < deadline)
		usleep(2000);
	atomic_store(&sh.stop_readers, 1);
	for (i = 0; i < NREADERS; i++)
		pthread_join(rt[i], NULL);
	if (!mirror_complete(&sh))
		fail_msg("mirror holds %zu records, expected %d",
		    isp_mirror_count(sh.m), 2 * (NKEYS - NKEYS / 5));

	for (j = 0; j < NWRITERS; j++)
		for (i = 0; i < NKEYS; i++) {
			key_of(key, sizeof(key), j, i);
			r = isp_mirror_get(sh.m, key, strlen(key));
			if (i % 5 == 0) {
				assert_null(r);
				continue;
			}
			assert_non_null(r);
			assert_true(record_consistent(r));
			assert_int_equal(r->fields[2].value_len, 1);
			assert_int_equal(((const char *)r->fields[2].value)[0],
			    i % 3 == 0 ? '2' : '1');
			isp_record_free(r);
		}
	assert_int_equal(atomic_load(&sh.bad_reads), 0);
	assert_int_equal(atomic_load(&sh.bad_changes), 0);
	assert_true(atomic_load(&sh.reads) > 0);
	print_message("# %ld mirror reads, %ld changes applied\n",
	    (long)atomic_load(&sh.reads), (long)atomic_load(&sh.changes));

	/* Stop the threads, then free; the records go with the sessions. */
	isp_stop(sh.w[0]);
	isp_stop(mc);
	isp_free(sh.w[0]);
	isp_mirror_free(sh.m);
	isp_free(mc);
	assert_int_equal(ispd_stop(&d), 0);
}

/* The announcer stops at this many, so that the subscriber can keep a
 * mark per announce. */
#define CHURN_MAX	(1 << 17)

struct sub_count {
	atomic_long	 events;
	atomic_long	 bad;		/* an event no announce made */
	atomic_int	 ended;
	/* Times the announce of each version was received. */
	atomic_uchar	 seen[CHURN_MAX];
};

/* Runs on the subscriber's library thread. Announce number i is key
 * churn<i % 300>|1 with version i: each event names the one it is. */
static void
sub_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct sub_count	*sc = arg;
	char			 key[64], ver[8];
	long			 v;

	if (ev->type == ISP_EV_END) {
		atomic_store(&sc->ended, 1);
		return;
	}
	atomic_fetch_add(&sc->events, 1);
	if (ev->rec.nfields != 3 || ev->rec.fields[2].value_len == 0 ||
	    ev->rec.fields[2].value_len > 6) {
		atomic_fetch_add(&sc->bad, 1);
		return;
	}
	memcpy(ver, ev->rec.fields[2].value, ev->rec.fields[2].value_len);
	ver[ev->rec.fields[2].value_len] = '\0';
	v = strtol(ver, NULL, 10);
	snprintf(key, sizeof(key), "churn%ld|1", v % 300);
	if (v < 0 || v >= CHURN_MAX || ev->rec.key_len != strlen(key) ||
	    memcmp(ev->rec.key, key, ev->rec.key_len) != 0) {
		atomic_fetch_add(&sc->bad, 1);
		return;
	}
	atomic_fetch_add(&sc->seen[v], 1);
}

struct stopper {
	isp_client	*c;
	atomic_int	 go;
	int		 made;		/* announces the library took */
};

static void *
announcer_main(void *arg)
{
	struct stopper	*st = arg;
	char		 key[64];
	int		 i;

	for (i = 0; atomic_load(&st->go) && i < CHURN_MAX; i++) {
		snprintf(key, sizeof(key), "churn%d|1", i % 300);
		if (announce(st->c, key, i) != ISP_OK)
			break;
		st->made++;
		if (i % 100 == 99)
			usleep(1000);
	}
	return NULL;
}

/*
 * The library thread stopped and started again while another thread
 * keeps announcing through the same client, and a subscriber in mode 3
 * receives: isp_stop() and isp_start() race with requests; every
 * announce made must still reach ispd. Each carries a new version, so
 * each is one change: the table's seq counts them, and the subscriber
 * sees each one exactly once (its version names it), none lost and none
 * twice.
 */
static void
test_stop_start_while_writing(void **state)
{
	struct ispd_proc	 d;
	struct sub_count	*sc;
	struct stopper		 st;
	pthread_t		 t;
	isp_client		*sub, *c;
	int			 i, missing = 0, twice = 0;

	assert_non_null(sc = calloc(1, sizeof(*sc)));
	memset(&st, 0, sizeof(st));
	ispd_start(&d, NULL);
	sub = client_new(&d, "subscriber");
	assert_int_equal(isp_subscribe(sub, T, "churn", 5, 0, sub_cb, sc),
	    ISP_OK);
	/* Subscribed (END of the empty table) before the first announce:
	 * each is an event, none part of a snapshot. */
	assert_int_equal(isp_sync(sub, 10000), ISP_OK);
	assert_true(atomic_load(&sc->ended));
	assert_int_equal(isp_start(sub), ISP_OK);
	c = client_new(&d, "churner");
	assert_int_equal(isp_start(c), ISP_OK);

	st.c = c;
	atomic_store(&st.go, 1);
	assert_int_equal(pthread_create(&t, NULL, announcer_main, &st), 0);
	for (i = 0; i < 10; i++) {
		usleep(20000);
		isp_stop(c);
		usleep(5000);
		assert_int_equal(isp_start(c), ISP_OK);
	}
	atomic_store(&st.go, 0);
	pthread_join(t, NULL);
	assert_int_equal(isp_sync(c, 10000), ISP_OK);
	assert_true(st.made >= 300);

	/* No announce was lost between the threads' stops and starts. */
	assert_int_equal(table_column(c, T, "seq"), st.made);
	/* ispd queued every event to the subscriber before it answered
	 * the churner's sync; the subscriber's own sync comes back after
	 * them, its thread having run sub_cb for each. */
	assert_int_equal(isp_sync(sub, 10000), ISP_OK);
	assert_true(atomic_load(&sc->ended));
	for (i = 0; i < st.made; i++) {
		missing += atomic_load(&sc->seen[i]) == 0;
		twice += atomic_load(&sc->seen[i]) > 1;
	}
	if (missing != 0 || twice != 0 || atomic_load(&sc->bad) != 0)
		fail_msg("of %d announces, %d not received, %d received more "
		    "than once; %ld events that no announce made", st.made,
		    missing, twice, (long)atomic_load(&sc->bad));
	assert_int_equal(atomic_load(&sc->events), st.made);

	isp_free(c);	/* stops its thread first */
	isp_free(sub);
	free(sc);
	assert_int_equal(ispd_stop(&d), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mirror_readers_and_writers),
		cmocka_unit_test(test_stop_start_while_writing),
	};

	return cmocka_run_group_tests_name("threaded", tests, NULL, NULL);
}
