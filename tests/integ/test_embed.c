/*
 * libisp as an embedder meets it (include/isp.h): the error text read
 * from another thread, request ids per client, isp_record_stale() on
 * every record the library hands out, and isp_free() / isp_mirror_free()
 * called from inside a callback, in each run mode. Against a real ispd
 * on loopback. The sanitizer build and valgrind turn a use after free
 * here into a failure; the leak checkers, a client that was never freed.
 */
#include <sys/types.h>

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

#define T	"EMBED"

static void
put(isp_client *c, const char *key, const char *value)
{
	struct isp_field	 f = { "v", value, strlen(value) };

	assert_int_equal(isp_announce(c, T, key, strlen(key), &f, 1, 0),
	    ISP_OK);
}

/* Threads of this process, from /proc/self/task. */
static int
threads_now(void)
{
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	assert_non_null(d = opendir("/proc/self/task"));
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* --- isp_errmsg() from another thread ----------------------------------- */

#define LONG_TABLE	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!"
#define SHORT_TABLE	"B!"

struct failer {
	isp_client	*c;
	int		 stop;		/* atomic */
	long		 calls;
};

/* Fails request after request, each with a sentence of its own length. */
static void *
failer_main(void *arg)
{
	struct failer	*f = arg;

	while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
		(void)isp_announce(f->c, (f->calls & 1) ? SHORT_TABLE :
		    LONG_TABLE, "k", 1, NULL, 0, 0);
		f->calls++;
	}
	return NULL;
}

/*
 * Mode 3: one thread's calls keep failing while another reads
 * isp_errmsg(); every text it reads is one whole sentence, never half of
 * one and half of the next.
 */
static void
test_errmsg_whole_across_threads(void **state)
{
	struct ispd_proc	 d;
	struct failer		 f;
	pthread_t		 t;
	char			 want_long[512], want_short[512];
	const char		*m;
	int64_t			 end;
	long			 reads = 0, torn = 0;
	char			 bad[512] = "";

	(void)state;
	ispd_start(&d, NULL);
	memset(&f, 0, sizeof(f));
	f.c = client_new(&d, "errmsg");
	assert_int_equal(isp_announce(f.c, LONG_TABLE, "k", 1, NULL, 0, 0),
	    ISP_E_INVALID);
	snprintf(want_long, sizeof(want_long), "%s", isp_errmsg(f.c));
	assert_int_equal(isp_announce(f.c, SHORT_TABLE, "k", 1, NULL, 0, 0),
	    ISP_E_INVALID);
	snprintf(want_short, sizeof(want_short), "%s", isp_errmsg(f.c));
	assert_non_null(strstr(want_long, LONG_TABLE));
	assert_non_null(strstr(want_short, SHORT_TABLE));

	assert_int_equal(isp_start(f.c), ISP_OK);
	assert_int_equal(pthread_create(&t, NULL, failer_main, &f), 0);
	/* Bounded: 400,000 reads or 4 s. */
	end = now_ms() + 4000;
	while (reads < 400000 && now_ms() < end) {
		m = isp_errmsg(f.c);
		if (strcmp(m, want_long) != 0 && strcmp(m, want_short) != 0) {
			if (torn++ == 0)
				snprintf(bad, sizeof(bad), "%s", m);
		}
		reads++;
	}
	__atomic_store_n(&f.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	if (torn > 0)
		fail_msg("%ld of %ld texts read while another thread failed "
		    "calls were neither sentence, e.g. \"%s\"", torn, reads, bad);
	assert_true(f.calls > 100);
	isp_free(f.c);
	assert_int_equal(ispd_stop(&d), 0);
}

/* --- isp_last_req_id() per client --------------------------------------- */

/*
 * The id is of the last request this thread queued, on *that* client:
 * never another client's. ispd's refusal of a request on a names the id
 * isp_last_req_id(a) gave right after it; once this thread queued on b,
 * a has none to name (0), b its own.
 */
static void
test_last_req_id_per_client(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 la;
	struct isp_options	 o;
	isp_client		*a, *b;
	uint32_t		 ida, idb;
	int			 i;

	(void)state;
	ispd_start(&d, NULL);
	memset(&la, 0, sizeof(la));
	isp_options_init(&o);
	o.server = d.addr;
	o.name = "ids-a";
	o.on_error = evlog_error_cb;
	o.arg = &la;
	assert_non_null(a = isp_new(&o));
	assert_int_equal(isp_connect(a), ISP_OK);
	b = client_new(&d, "ids-b");
	assert_int_equal(isp_last_req_id(a), 0);

	for (i = 0; i < 5; i++)
		put(a, "a", "1");
	/* ispd keeps ispd.sessions itself: it refuses this one. */
	assert_int_equal(isp_announce(a, ISP_SESSIONS_TABLE, "x", 1, NULL, 0,
	    0), ISP_OK);
	ida = isp_last_req_id(a);
	put(b, "b", "1");
	idb = isp_last_req_id(b);
	assert_int_not_equal(ida, idb);
	assert_int_equal(isp_last_req_id(a), 0);
	assert_int_equal(isp_last_req_id(b), idb);

	assert_int_equal(isp_sync(a, 5000), ISP_OK);
	assert_int_equal(la.nerrors, 1);
	assert_int_equal(la.err_code, ISP_E_READONLY);
	assert_int_equal(la.err_req, ida);

	isp_free(a);
	isp_free(b);
	evlog_free(&la);
	assert_int_equal(ispd_stop(&d), 0);
}

/* --- isp_record_stale() on what the library hands out ------------------- */

struct stalecheck {
	int	 events;
	int	 stale;		/* events whose record said stale */
};

static void
stale_of_event(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct stalecheck	*s = arg;

	if (ev->type != ISP_EV_ANNOUNCE && ev->type != ISP_EV_REPLACE)
		return;
	s->events++;
	s->stale += isp_record_stale(&ev->rec);
}

static int
stale_of_visit(const struct isp_record *r, void *arg)
{
	*(int *)arg += 1 + isp_record_stale(r) * 1000;
	return 0;
}

static int
events_at_least(void *arg)
{
	return ((struct stalecheck *)arg)->events >= 6;
}

/*
 * A fresh record is not stale however it reaches the application: in a
 * subscription's event, in a mirror's on_change event, as a copy, or
 * under isp_mirror_foreach().
 */
static void
test_record_stale_any_record(void **state)
{
	struct ispd_proc	 d;
	struct stalecheck	 sub = { 0, 0 }, mir = { 0, 0 };
	struct isp_record	*r;
	isp_client		*c[3];
	isp_mirror		*m;
	int			 visited = 0;

	(void)state;
	ispd_start(&d, NULL);
	c[0] = client_new(&d, "pub");
	c[1] = client_new(&d, "sub");
	c[2] = client_new(&d, "mirror");
	assert_int_equal(isp_subscribe(c[1], T, NULL, 0, 0, stale_of_event,
	    &sub), ISP_OK);
	assert_non_null(m = isp_mirror_new(c[2], T, NULL, 0, stale_of_event,
	    &mir));
	/* Both subscribed before the first announce: six live events. */
	assert_int_equal(isp_sync(c[1], 5000), ISP_OK);
	assert_int_equal(isp_sync(c[2], 5000), ISP_OK);
	put(c[0], "k1", "1");
	put(c[0], "k2", "1");
	put(c[0], "k3", "1");
	put(c[0], "k1", "2");
	put(c[0], "k2", "2");
	put(c[0], "k3", "2");
	assert_true(pump(c, 3, events_at_least, &sub, 5000));
	assert_true(pump(c, 3, events_at_least, &mir, 5000));
	assert_int_equal(sub.stale, 0);
	assert_int_equal(mir.stale, 0);

	assert_non_null(r = isp_mirror_get(m, "k1", 2));
	assert_int_equal(isp_record_stale(r), 0);
	isp_record_free(r);
	assert_int_equal(isp_mirror_foreach(m, NULL, 0, stale_of_visit,
	    &visited), 0);
	assert_int_equal(visited, 3);	/* three records, none stale */

	isp_mirror_free(m);
	isp_free(c[0]);
	isp_free(c[1]);
	isp_free(c[2]);
	assert_int_equal(ispd_stop(&d), 0);
}

/* --- isp_free() and isp_mirror_free() inside a callback ------------------ */

struct freer {
	isp_client	*c;
	isp_mirror	*m;
	int		 calls;		/* live ANNOUNCEs seen; atomic */
	int		 free_mirror;	/* 1: isp_mirror_free(m), else isp_free(c) */
	int		 done;		/* atomic */
};

static void
free_in_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct freer	*f = arg;

	if (ev->type != ISP_EV_ANNOUNCE || ev->snapshot)
		return;
	if (__atomic_add_fetch(&f->calls, 1, __ATOMIC_SEQ_CST) > 1)
		return;
	if (f->free_mirror)
		isp_mirror_free(f->m);
	else
		isp_free(c);
	__atomic_store_n(&f->done, 1, __ATOMIC_SEQ_CST);
}

/* Ten announces the subscriber will read in one pass or a few. */
static void
burst(isp_client *pub)
{
	char	 key[16];
	int	 i;

	for (i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		put(pub, key, "x");
	}
	assert_int_equal(isp_sync(pub, 5000), ISP_OK);
}

/* ispd, a publisher (returned), and f->c subscribed with free_in_cb. */
static isp_client *
victim_stage(struct ispd_proc *d, struct freer *f)
{
	isp_client	*pub;

	ispd_start(d, NULL);
	memset(f, 0, sizeof(*f));
	pub = client_new(d, "pub");
	f->c = client_new(d, "victim");
	assert_int_equal(isp_subscribe(f->c, T, NULL, 0, 0, free_in_cb, f),
	    ISP_OK);
	assert_int_equal(isp_sync(f->c, 5000), ISP_OK);
	return pub;
}

/*
 * Modes 1 and 2: the callback frees its own client on the first of ten
 * events; the call that delivered it returns ISP_E_CLOSED and the
 * callback is not called again. The client is freed (the leak checkers
 * of the sanitizer and valgrind runs would say otherwise).
 */
static void
free_client_blocking(int mode)
{
	struct ispd_proc	 d;
	struct freer		 f;
	isp_client		*pub;
	struct pollfd		 pfd;
	int64_t			 end;
	int			 rc = ISP_OK;

	pub = victim_stage(&d, &f);
	burst(pub);
	/* Not pump(): the client must not be touched once freed. */
	end = now_ms() + 5000;
	while (rc == ISP_OK && now_ms() < end) {
		if (mode == 1) {
			rc = isp_run(f.c, 100);
		} else {
			pfd.fd = isp_fd(f.c);
			pfd.events = POLLIN;
			(void)poll(&pfd, 1, 100);
			rc = isp_process(f.c);
		}
	}
	assert_int_equal(rc, ISP_E_CLOSED);
	assert_int_equal(__atomic_load_n(&f.done, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(__atomic_load_n(&f.calls, __ATOMIC_SEQ_CST), 1);
	isp_free(pub);
	assert_int_equal(ispd_stop(&d), 0);
}

static void
test_free_client_in_callback_run(void **state)
{
	(void)state;
	free_client_blocking(1);
}

static void
test_free_client_in_callback_process(void **state)
{
	(void)state;
	free_client_blocking(2);
}

/* Mode 3: the library thread's callback frees the client; the thread
 * frees it and ends. */
static void
test_free_client_in_callback_thread(void **state)
{
	struct ispd_proc	 d;
	struct freer		 f;
	isp_client		*pub;
	int64_t			 end;
	int			 before;

	(void)state;
	pub = victim_stage(&d, &f);
	before = threads_now();
	assert_int_equal(isp_start(f.c), ISP_OK);
	assert_int_equal(threads_now(), before + 1);
	burst(pub);
	end = now_ms() + 5000;
	while ((!__atomic_load_n(&f.done, __ATOMIC_SEQ_CST) ||
	    threads_now() != before) && now_ms() < end)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&f.done, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(threads_now(), before);
	assert_int_equal(__atomic_load_n(&f.calls, __ATOMIC_SEQ_CST), 1);
	isp_free(pub);
	assert_int_equal(ispd_stop(&d), 0);
}

/*
 * A mirror's on_change frees the mirror on the first of ten changes: no
 * further on_change, the client goes on (it syncs, and a new mirror of
 * the same table works: the old subscription is gone).
 */
static void
test_free_mirror_in_callback(void **state)
{
	struct ispd_proc	 d;
	struct freer		 f;
	isp_client		*c[2];
	isp_mirror		*m2;
	int64_t			 end;

	(void)state;
	ispd_start(&d, NULL);
	memset(&f, 0, sizeof(f));
	c[0] = client_new(&d, "pub");
	c[1] = f.c = client_new(&d, "holder");
	f.free_mirror = 1;
	assert_non_null(f.m = isp_mirror_new(f.c, T, NULL, 0, free_in_cb,
	    &f));
	assert_int_equal(isp_sync(f.c, 5000), ISP_OK);
	burst(c[0]);
	end = now_ms() + 5000;
	while (!__atomic_load_n(&f.done, __ATOMIC_SEQ_CST) && now_ms() < end)
		assert_int_equal(isp_run(f.c, 100), ISP_OK);
	assert_int_equal(__atomic_load_n(&f.done, __ATOMIC_SEQ_CST), 1);
	/* A barrier: ispd sent every change before its answer. */
	assert_int_equal(isp_sync(f.c, 5000), ISP_OK);
	assert_int_equal(__atomic_load_n(&f.calls, __ATOMIC_SEQ_CST), 1);
	assert_non_null(m2 = isp_mirror_new(f.c, T, NULL, 0, NULL, NULL));
	end = now_ms() + 5000;
	while (isp_mirror_count(m2) < 10 && now_ms() < end)
		assert_int_equal(isp_run(f.c, 100), ISP_OK);
	assert_int_equal(isp_mirror_count(m2), 10);
	isp_mirror_free(m2);
	isp_free(c[0]);
	isp_free(c[1]);
	assert_int_equal(ispd_stop(&d), 0);
}

/* --- the version ---------------------------------------------------------- */

static void
test_version(void **state)
{
	char	 v[32];

	(void)state;
	snprintf(v, sizeof(v), "%d.%d.%d", ISP_VERSION_MAJOR,
	    ISP_VERSION_MINOR, ISP_VERSION_PATCH);
	assert_string_equal(isp_version(), ISP_VERSION);
	assert_string_equal(ISP_VERSION, v);
	assert_int_equal(ISP_VERSION_NUMBER, ISP_VERSION_MAJOR * 10000 +
	    ISP_VERSION_MINOR * 100 + ISP_VERSION_PATCH);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errmsg_whole_across_threads),
		cmocka_unit_test(test_last_req_id_per_client),
		cmocka_unit_test(test_record_stale_any_record),
		cmocka_unit_test(test_free_client_in_callback_run),
		cmocka_unit_test(test_free_client_in_callback_process),
		cmocka_unit_test(test_free_client_in_callback_thread),
		cmocka_unit_test(test_free_mirror_in_callback),
		cmocka_unit_test(test_version),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("embed", tests, NULL, NULL);
}
