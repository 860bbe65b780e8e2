/*
 * High availability without flapping (docs/HA.md), against real ispd
 * processes: reflectors killed and restarted on the same port, one of two
 * reflectors killed or frozen (a partition), a publisher killed while a
 * reflector is down, the reconnect backoff measured, and `ispctl watch`
 * reporting stale and fresh. Subscribers are mirrors; what their
 * on_change is told is the application-visible history, and the tests
 * assert on it: no withdraw of a record whose publisher stayed alive, no
 * change at all when one of two reflectors goes, every view equal to
 * the table the publishers hold once the dust settles.
 *
 * Reflectors run with --hold 1 so a frozen one is noticed within a
 * second; clients retry after 50 ms doubling to 400 ms, and mirrors keep
 * stale records for GRACE_MS. Every wait is bounded.
 */
#include <sys/wait.h>

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "faults.h"
#include "testutil.h"

#define T		"SIP_REGISTRATION"
#define HOLD		"1"
#define NREC		40		/* records per publisher */
#define GRACE_MS	2500
#define NVIEWS		3
#define WAIT_MS		20000		/* bound of every convergence */

/* One thing a mirror told its application. */
struct told {
	int		 type;
	int		 reason;
	char		 key[48];
	char		 value[48];
	unsigned	 server;
	uint64_t	 count;
	int64_t		 at;
};

/* A subscriber: its client, its mirror, and what it was told. */
struct view {
	isp_client	*c;
	isp_mirror	*m;
	struct told	*ev;
	size_t		 n;
	size_t		 cap;
};

/* What every view must show once recovered. */
struct model {
	char		 key[2 * NREC + 8][48];
	char		 value[2 * NREC + 8][48];
	size_t		 n;
};

struct world {
	struct ispd_proc d[2];
	size_t		 nd;
	struct view	 v[NVIEWS];
	isp_client	*pub[2];
	isp_client	*all[NVIEWS + 2];
	size_t		 nall;
	struct child	 ch;		/* a publisher process */
	struct model	 md;
};

/* The world of the running test, for the teardown to clean up after a
 * failure (a failed assertion leaves the test at once). */
static struct world	*cur;

static void
world_init(struct world *w)
{
	memset(w, 0, sizeof(*w));
	w->ch.in = -1;
	cur = w;
}

/* Frees clients and mirrors, stops reflectors and the publisher
 * process. Returns 0 when every reflector exited cleanly. */
static int
world_release(struct world *w)
{
	size_t	 i;
	int	 rc = 0;

	if (w->ch.pid > 0)
		child_kill(&w->ch);
	for (i = 0; i < NVIEWS; i++) {
		isp_mirror_free(w->v[i].m);
		w->v[i].m = NULL;
		free(w->v[i].ev);
		w->v[i].ev = NULL;
	}
	for (i = 0; i < w->nall; i++)
		isp_free(w->all[i]);
	w->nall = 0;
	for (i = 0; i < 2; i++)
		if (w->d[i].pid > 0 && ispd_stop(&w->d[i]) != 0)
			rc = -1;
	cur = NULL;
	return rc;
}

static int
teardown(void **state)
{
	if (cur != NULL)
		(void)world_release(cur);
	return 0;
}

static void
view_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct view	*v = arg;
	struct told	*t;

	if (v->n == v->cap) {
		v->cap = v->cap ? 2 * v->cap : 256;
		v->ev = realloc(v->ev, v->cap * sizeof(*v->ev));
		assert_non_null(v->ev);
	}
	t = &v->ev[v->n++];
	memset(t, 0, sizeof(*t));
	t->type = ev->type;
	t->reason = ev->reason;
	t->server = ev->server_index;
	t->count = ev->count;
	t->at = now_ms();
	if (ev->type >= ISP_EV_ANNOUNCE && ev->type <= ISP_EV_WITHDRAW) {
		snprintf(t->key, sizeof(t->key), "%.*s", (int)ev->rec.key_len,
		    (const char *)ev->rec.key);
		if (ev->rec.nfields > 0)
			snprintf(t->value, sizeof(t->value), "%.*s",
			    (int)ev->rec.fields[0].value_len,
			    (const char *)ev->rec.fields[0].value);
	}
}

/* A client with a session on every reflector of the world,
 * reconnecting, first retry after backoff_ms. */
static isp_client *
ha_client(struct world *w, const char *name, int backoff_ms)
{
	struct isp_options	 o;
	const char		*srv[2];
	isp_client		*c;
	size_t			 i;

	for (i = 0; i < w->nd; i++)
		srv[i] = w->d[i].addr;
	isp_options_init(&o);
	o.servers = srv;
	o.nservers = w->nd;
	o.name = name;
	o.reconnect = 1;
	o.backoff_min_ms = backoff_ms;
	o.backoff_max_ms = 400;
	o.stale_grace_ms = GRACE_MS;
	o.connect_timeout_ms = 800;
	assert_non_null(c = isp_new(&o));
	if (isp_connect(c) != ISP_OK)
		fail_msg("connect %s: %s", name, isp_errmsg(c));
	assert_int_equal(isp_servers_up(c), w->nd);
	w->all[w->nall++] = c;
	return c;
}

static void
model_set(struct model *md, const char *key, const char *value)
{
	size_t	 i;

	for (i = 0; i < md->n; i++)
		if (strcmp(md->key[i], key) == 0)
			break;
	if (i == md->n) {
		assert_true(md->n < sizeof(md->key) / sizeof(md->key[0]));
		snprintf(md->key[md->n++], sizeof(md->key[0]), "%s", key);
	}
	snprintf(md->value[i], sizeof(md->value[0]), "%s", value);
}

static void
model_del(struct model *md, const char *key)
{
	size_t	 i;

	for (i = 0; i < md->n; i++)
		if (strcmp(md->key[i], key) == 0) {
			md->n--;
			memcpy(md->key[i], md->key[md->n], sizeof(md->key[0]));
			memcpy(md->value[i], md->value[md->n],
			    sizeof(md->value[0]));
			return;
		}
}

/* Publisher c (in this process) announces key with c=value. */
static void
pub_set(struct world *w, isp_client *c, const char *key, const char *value)
{
	struct isp_field	 f = { "contact", value, strlen(value) };

	assert_int_equal(isp_announce(c, T, key, strlen(key), &f, 1, 0),
	    ISP_OK);
	model_set(&w->md, key, value);
}

static void
pub_del(struct world *w, isp_client *c, const char *key)
{
	assert_int_equal(isp_withdraw(c, T, key, strlen(key)), ISP_OK);
	model_del(&w->md, key);
}

/* Starts nd reflectors, NVIEWS mirrors and npub publishers (in this
 * process) each holding NREC records "pN-i". Publishers retry after
 * pub_backoff_ms, mirrors after 50 ms. */
static void
world_start_opt(struct world *w, size_t nd, size_t npub, int pub_backoff_ms,
    const char *opt, const char *val)
{
	char	 key[48], value[48], name[32];
	size_t	 i, j;

	world_init(w);
	w->nd = nd;
	for (i = 0; i < nd; i++)
		ispd_start(&w->d[i], "--hold", HOLD, opt, val, NULL);
	for (i = 0; i < NVIEWS; i++) {
		snprintf(name, sizeof(name), "asterisk-%zu", i + 1);
		w->v[i].c = ha_client(w, name, 50);
		w->v[i].m = isp_mirror_new(w->v[i].c, T, NULL, 0, view_cb,
		    &w->v[i]);
		assert_non_null(w->v[i].m);
	}
	for (i = 0; i < npub; i++) {
		snprintf(name, sizeof(name), "bgw-%zu", i + 1);
		w->pub[i] = ha_client(w, name, pub_backoff_ms);
		for (j = 0; j < NREC; j++) {
			snprintf(key, sizeof(key), "p%zu-%zu", i + 1, j);
			snprintf(value, sizeof(value), "sip:%zu@10.0.%zu.1",
			    j, i + 1);
			pub_set(w, w->pub[i], key, value);
		}
	}
}

static void
world_start(struct world *w, size_t nd, size_t npub, int pub_backoff_ms)
{
	world_start_opt(w, nd, npub, pub_backoff_ms, NULL, NULL);
}

static void
world_stop(struct world *w)
{
	assert_int_equal(world_release(w), 0);
}

/* Every view shows exactly the model, nothing stale, and every client
 * has a session with every reflector. */
static int
world_settled(void *arg)
{
	struct world		*w = arg;
	struct isp_record	*r;
	size_t			 i, k;
	int			 ok;

	for (i = 0; i < w->nall; i++)
		if (isp_servers_up(w->all[i]) != w->nd)
			return 0;
	for (i = 0; i < NVIEWS; i++) {
		if (isp_mirror_stale_count(w->v[i].m) != 0 ||
		    isp_mirror_count(w->v[i].m) != w->md.n)
			return 0;
		for (k = 0; k < w->md.n; k++) {
			r = isp_mirror_get(w->v[i].m, w->md.key[k],
			    strlen(w->md.key[k]));
			ok = r != NULL && r->nfields == 1 &&
			    strcmp(r->fields[0].value, w->md.value[k]) == 0 &&
			    !isp_record_stale(r);
			isp_record_free(r);
			if (!ok)
				return 0;
		}
	}
	return 1;
}

/* The views show the model (sessions may still be down). */
static int
views_match(void *arg)
{
	struct world		*w = arg;
	struct isp_record	*r;
	size_t			 i, k;
	int			 ok;

	for (i = 0; i < NVIEWS; i++) {
		if (isp_mirror_count(w->v[i].m) != w->md.n)
			return 0;
		for (k = 0; k < w->md.n; k++) {
			r = isp_mirror_get(w->v[i].m, w->md.key[k],
			    strlen(w->md.key[k]));
			ok = r != NULL &&
			    strcmp(r->fields[0].value, w->md.value[k]) == 0;
			isp_record_free(r);
			if (!ok)
				return 0;
		}
	}
	return 1;
}

static void
settle(struct world *w, const char *when)
{
	if (!pump(w->all, w->nall, world_settled, w, WAIT_MS))
		fail_msg("views did not settle %s (view 1: %zu records, %zu "
		    "stale, %u servers up; want %zu)", when,
		    isp_mirror_count(w->v[0].m),
		    isp_mirror_stale_count(w->v[0].m),
		    isp_servers_up(w->v[0].c), w->md.n);
}

struct up_want {
	struct world	*w;
	unsigned	 n;
};

static int
all_up_n(void *arg)
{
	struct up_want	*u = arg;
	size_t		 i;

	for (i = 0; i < u->w->nall; i++)
		if (isp_servers_up(u->w->all[i]) != u->n)
			return 0;
	return 1;
}

/* Runs the clients until each has n servers up: a killed reflector's
 * loss noticed by every one, rather than given some time to be. */
static void
wait_servers_up(struct world *w, unsigned n)
{
	struct up_want	 u = { w, n };

	if (!pump(w->all, w->nall, all_up_n, &u, WAIT_MS))
		fail_msg("not every client has %u servers up", n);
}

/*
 * The barrier after which nothing is still on its way: each in-test
 * publisher's sync (what it sent, a replay included, is through every
 * reflector up), then every client's (what the reflectors queued to it
 * is delivered).
 */
static void
barrier(struct world *w)
{
	size_t	 i;

	for (i = 0; i < 2; i++)
		if (w->pub[i] != NULL)
			assert_int_equal(isp_sync(w->pub[i], WAIT_MS), ISP_OK);
	for (i = 0; i < w->nall; i++)
		assert_int_equal(isp_sync(w->all[i], WAIT_MS), ISP_OK);
}

/* Marks where each view's history is looked at from. */
static void
mark(struct world *w, size_t *from)
{
	size_t	 i;

	for (i = 0; i < NVIEWS; i++)
		from[i] = w->v[i].n;
}

/* How many events of type (0: any record event) on key (NULL: any)
 * view i was told since from. */
static size_t
told_count(struct view *v, size_t from, int type, const char *key)
{
	size_t	 i, n = 0;

	for (i = from; i < v->n; i++) {
		if (type == 0 ? v->ev[i].type > ISP_EV_WITHDRAW :
		    v->ev[i].type != type)
			continue;
		if (key != NULL && strcmp(v->ev[i].key, key) != 0)
			continue;
		n++;
	}
	return n;
}

static void
dump_told(struct view *v, size_t from)
{
	size_t	 i;

	for (i = from; i < v->n; i++)
		fprintf(stderr, "  told: type %d key %s value %s reason %d "
		    "server %u count %llu\n", v->ev[i].type, v->ev[i].key,
		    v->ev[i].value, v->ev[i].reason, v->ev[i].server,
		    (unsigned long long)v->ev[i].count);
}

/* Every view was told exactly n events of type on key since from. */
static void
assert_told(struct world *w, const size_t *from, int type, const char *key,
    size_t n)
{
	size_t	 i, got;

	for (i = 0; i < NVIEWS; i++) {
		got = told_count(&w->v[i], from[i], type, key);
		if (got != n) {
			dump_told(&w->v[i], from[i]);
			fail_msg("view %zu: %zu events of type %d on %s, want "
			    "%zu", i + 1, got, type, key ? key : "any key", n);
		}
	}
}

/* The only reflector is killed and restarted on its port, while two
 * publishers and three mirrors run. The publishers retry later than the
 * mirrors, so the mirrors resync with a reflector that is still empty,
 * the hard case: no record of a live publisher is ever withdrawn; a
 * record changed while the reflector was down is one REPLACE; one
 * withdrawn while it was down goes after the grace time. */
static void
test_restart_single_reflector(void **state)
{
	struct world	 w;
	size_t		 from[NVIEWS], i, k;
	int64_t		 t_kill;
	int		 first_fresh;

	world_start(&w, 1, 2, 400);
	settle(&w, "at start");
	mark(&w, from);

	t_kill = now_ms();
	ispd_signal(&w.d[0], SIGKILL);
	pump_for(w.all, w.nall, 100);
	for (i = 0; i < NVIEWS; i++) {
		assert_int_equal(isp_mirror_count(w.v[i].m), 2 * NREC);
		assert_int_equal(isp_mirror_stale_count(w.v[i].m), 2 * NREC);
	}
	/* Made while no session is up: applied after the reconnect. */
	pub_set(&w, w.pub[0], "p1-0", "sip:moved@10.9.9.9");
	pub_del(&w, w.pub[1], "p2-0");
	ispd_restart(&w.d[0], "--hold", HOLD, NULL);
	settle(&w, "after the restart");

	assert_told(&w, from, ISP_EV_ANNOUNCE, NULL, 0);
	assert_told(&w, from, ISP_EV_REPLACE, NULL, 1);
	assert_told(&w, from, ISP_EV_REPLACE, "p1-0", 1);
	assert_told(&w, from, ISP_EV_WITHDRAW, NULL, 1);
	assert_told(&w, from, ISP_EV_WITHDRAW, "p2-0", 1);
	for (i = 0; i < NVIEWS; i++) {
		assert_true(told_count(&w.v[i], from[i], ISP_EV_STALE, NULL)
		    >= 1);
		assert_true(told_count(&w.v[i], from[i], ISP_EV_FRESH, NULL)
		    >= 1);
		first_fresh = 1;
		for (k = from[i]; k < w.v[i].n; k++) {
			if (w.v[i].ev[k].type == ISP_EV_STALE)
				assert_int_equal(w.v[i].ev[k].count,
				    2 * NREC);
			/* Resynced before the publishers replayed. */
			if (w.v[i].ev[k].type == ISP_EV_FRESH &&
			    first_fresh) {
				assert_true(w.v[i].ev[k].count > 0);
				first_fresh = 0;
			}
			if (w.v[i].ev[k].type == ISP_EV_WITHDRAW) {
				assert_int_equal(w.v[i].ev[k].reason,
				    ISP_WD_STALE);
				assert_true(w.v[i].ev[k].at - t_kill >=
				    GRACE_MS);
			}
		}
	}
	world_stop(&w);
}

/* Two reflectors, one killed and restarted: the application sees
 * nothing of it. Changes made meanwhile arrive once, through the
 * other. */
static void
test_one_of_two_killed(void **state)
{
	struct world	 w;
	size_t		 from[NVIEWS], i, k;

	world_start(&w, 2, 2, 50);
	settle(&w, "at start");
	mark(&w, from);

	ispd_signal(&w.d[0], SIGKILL);
	wait_servers_up(&w, 1);
	pub_set(&w, w.pub[0], "p1-1", "sip:moved@10.9.9.9");
	pub_del(&w, w.pub[1], "p2-1");
	if (!pump(w.all, w.nall, views_match, &w, WAIT_MS))
		fail_msg("changes did not arrive through the other "
		    "reflector");
	ispd_restart(&w.d[0], "--hold", HOLD, NULL);
	settle(&w, "after the restart");
	barrier(&w);	/* late replays change nothing */

	assert_told(&w, from, ISP_EV_ANNOUNCE, NULL, 0);
	assert_told(&w, from, ISP_EV_REPLACE, NULL, 1);
	assert_told(&w, from, ISP_EV_REPLACE, "p1-1", 1);
	assert_told(&w, from, ISP_EV_WITHDRAW, NULL, 1);
	assert_told(&w, from, ISP_EV_WITHDRAW, "p2-1", 1);
	for (i = 0; i < NVIEWS; i++)
		for (k = from[i]; k < w.v[i].n; k++) {
			if (w.v[i].ev[k].type == ISP_EV_WITHDRAW)
				assert_int_equal(w.v[i].ev[k].reason,
				    ISP_WD_OWNER);
			/* Nothing ever turned stale: B held it all. */
			if (w.v[i].ev[k].type == ISP_EV_STALE)
				assert_int_equal(w.v[i].ev[k].count, 0);
		}
	world_stop(&w);
}

/* A reflector that exited by itself: its exit status, once. */
struct exited {
	struct ispd_proc	*d;
	int			 status;
};

static int
reflector_exited(void *arg)
{
	struct exited	*e = arg;

	if (waitpid(e->d->pid, &e->status, WNOHANG) != e->d->pid)
		return 0;
	e->d->pid = 0;
	return 1;
}

/* Drain (SIGUSR1) of one of two reflectors: every client is told
 * GOING_DOWN, then the sessions close after --drain-seconds and ispd
 * exits 0. The other reflector holds everything, so the application
 * sees nothing at all: no record event, not even ISP_EV_STALE with a
 * count of 0. */
static void
test_drain_one_of_two(void **state)
{
	struct world	 w;
	struct exited	 e;
	size_t		 from[NVIEWS], i;
	int64_t		 t0;

	world_start_opt(&w, 2, 2, 50, "--drain-seconds", "1");
	settle(&w, "at start");
	mark(&w, from);

	t0 = now_ms();
	ispd_signal(&w.d[0], SIGUSR1);
	pump_for(w.all, w.nall, 300);
	/* Told, not closed yet: every session is still up. */
	for (i = 0; i < w.nall; i++)
		assert_int_equal(isp_servers_up(w.all[i]), 2);
	e.d = &w.d[0];
	e.status = -1;
	if (!pump(w.all, w.nall, reflector_exited, &e, WAIT_MS))
		fail_msg("the drained reflector did not exit");
	assert_true(now_ms() - t0 >= 900);
	assert_true(WIFEXITED(e.status));
	assert_int_equal(WEXITSTATUS(e.status), 0);
	pump_for(w.all, w.nall, 300);

	for (i = 0; i < w.nall; i++)
		assert_int_equal(isp_servers_up(w.all[i]), 1);
	for (i = 0; i < NVIEWS; i++) {
		if (w.v[i].n != from[i]) {
			dump_told(&w.v[i], from[i]);
			fail_msg("view %zu was told something", i + 1);
		}
		assert_int_equal(isp_mirror_count(w.v[i].m), w.md.n);
		assert_int_equal(isp_mirror_stale_count(w.v[i].m), 0);
	}
	/* Changes still arrive, through the other reflector. */
	pub_set(&w, w.pub[0], "p1-1", "sip:moved@10.9.9.9");
	if (!pump(w.all, w.nall, views_match, &w, WAIT_MS))
		fail_msg("a change did not arrive after the drain");
	assert_told(&w, from, ISP_EV_REPLACE, NULL, 1);
	world_stop(&w);
}

/* A publisher in its own process (ispctl publish), NREC records "k-i",
 * on every reflector of the world. */
static void
spawn_publisher(struct world *w, struct child *ch)
{
	size_t	 i;

	if (w->nd == 2)
		child_start(ch, "-s", w->d[0].addr, "-s", w->d[1].addr,
		    "--name", "bgw-9", "publish", T, NULL);
	else
		child_start(ch, "-s", w->d[0].addr, "--name", "bgw-9",
		    "publish", T, NULL);
	for (i = 0; i < NREC; i++) {
		char	 key[48], value[48];

		snprintf(key, sizeof(key), "k-%zu", i);
		snprintf(value, sizeof(value), "sip:%zu@10.0.9.1", i);
		child_line(ch, "announce %s contact=%s", key, value);
		model_set(&w->md, key, value);
	}
}

static void
model_del_children(struct world *w)
{
	char	 key[48];
	size_t	 i;

	for (i = 0; i < NREC; i++) {
		snprintf(key, sizeof(key), "k-%zu", i);
		model_del(&w->md, key);
	}
}

/* Two reflectors; one is down when a publisher dies: the other
 * withdraws its records and the views follow at once, once each; the
 * reflector's return brings nothing back. */
static void
test_publisher_killed_one_reflector_down(void **state)
{
	struct world	 w;
	size_t		 from[NVIEWS], i, k;
	int64_t		 t_kill;

	world_start(&w, 2, 1, 50);
	spawn_publisher(&w, &w.ch);
	settle(&w, "at start");
	mark(&w, from);

	ispd_signal(&w.d[0], SIGKILL);
	wait_servers_up(&w, 1);
	t_kill = now_ms();
	child_kill(&w.ch);
	model_del_children(&w);
	if (!pump(w.all, w.nall, views_match, &w, WAIT_MS))
		fail_msg("the dead publisher's records stayed");
	/* A live reflector's word beats stale memory: no grace wait. */
	assert_true(now_ms() - t_kill < GRACE_MS);
	ispd_restart(&w.d[0], "--hold", HOLD, NULL);
	settle(&w, "after the restart");
	barrier(&w);

	assert_told(&w, from, ISP_EV_ANNOUNCE, NULL, 0);
	assert_told(&w, from, ISP_EV_REPLACE, NULL, 0);
	assert_told(&w, from, ISP_EV_WITHDRAW, NULL, NREC);
	for (i = 0; i < NREC; i++) {
		char	 key[48];

		snprintf(key, sizeof(key), "k-%zu", i);
		assert_told(&w, from, ISP_EV_WITHDRAW, key, 1);
	}
	for (i = 0; i < NVIEWS; i++)
		for (k = from[i]; k < w.v[i].n; k++)
			if (w.v[i].ev[k].type == ISP_EV_WITHDRAW)
				assert_int_equal(w.v[i].ev[k].reason,
				    ISP_WD_SESSION);
	world_stop(&w);
}

/* The only reflector is down when a publisher dies: its records cannot
 * be confirmed by anyone and go after the grace time, once; the live
 * publisher's stay. */
static void
test_publisher_killed_only_reflector_down(void **state)
{
	struct world	 w;
	size_t		 from[NVIEWS], i, k;
	int64_t		 t_kill;

	world_start(&w, 1, 1, 50);
	spawn_publisher(&w, &w.ch);
	settle(&w, "at start");
	mark(&w, from);

	t_kill = now_ms();
	ispd_signal(&w.d[0], SIGKILL);
	wait_servers_up(&w, 0);
	child_kill(&w.ch);
	model_del_children(&w);
	ispd_restart(&w.d[0], "--hold", HOLD, NULL);
	settle(&w, "after the grace time");

	assert_told(&w, from, ISP_EV_ANNOUNCE, NULL, 0);
	assert_told(&w, from, ISP_EV_REPLACE, NULL, 0);
	assert_told(&w, from, ISP_EV_WITHDRAW, NULL, NREC);
	assert_told(&w, from, ISP_EV_WITHDRAW, "k-0", 1);
	assert_told(&w, from, ISP_EV_WITHDRAW, "p1-0", 0);
	for (i = 0; i < NVIEWS; i++)
		for (k = from[i]; k < w.v[i].n; k++)
			if (w.v[i].ev[k].type == ISP_EV_WITHDRAW) {
				assert_int_equal(w.v[i].ev[k].reason,
				    ISP_WD_STALE);
				assert_true(w.v[i].ev[k].at - t_kill >=
				    GRACE_MS);
			}
	world_stop(&w);
}

/* Two reflectors; one is frozen (SIGSTOP) for longer than the hold
 * time, as a partition would look, then thawed: the application sees
 * only the changes made meanwhile, once each. */
static void
test_partition_one_reflector(void **state)
{
	struct world	 w;
	size_t		 from[NVIEWS], i;

	world_start(&w, 2, 2, 50);
	settle(&w, "at start");
	mark(&w, from);

	ispd_freeze(&w.d[0]);
	pump_for(w.all, w.nall, 1500);
	/* Past the hold time: every session with the frozen one is gone. */
	for (i = 0; i < w.nall; i++)
		assert_int_equal(isp_servers_up(w.all[i]), 1);
	pub_set(&w, w.pub[0], "p1-2", "sip:moved@10.9.9.9");
	pub_set(&w, w.pub[1], "p2-new", "sip:new@10.9.9.9");
	if (!pump(w.all, w.nall, views_match, &w, WAIT_MS))
		fail_msg("changes did not arrive through the other "
		    "reflector");
	pump_for(w.all, w.nall, 500);
	ispd_thaw(&w.d[0]);
	settle(&w, "after the thaw");
	pump_for(w.all, w.nall, 500);

	assert_told(&w, from, ISP_EV_ANNOUNCE, NULL, 1);
	assert_told(&w, from, ISP_EV_ANNOUNCE, "p2-new", 1);
	assert_told(&w, from, ISP_EV_REPLACE, NULL, 1);
	assert_told(&w, from, ISP_EV_REPLACE, "p1-2", 1);
	assert_told(&w, from, ISP_EV_WITHDRAW, NULL, 0);
	for (i = 0; i < NVIEWS; i++)
		assert_true(told_count(&w.v[i], from[i], ISP_EV_STALE, NULL)
		    >= 1);
	world_stop(&w);
}

/* A reader on its own thread, looking records up while the library
 * thread applies what the reflectors send. */
struct reader {
	isp_mirror	*m;
	atomic_int	 stop;
	atomic_long	 lookups;
	atomic_long	 misses;	/* a live publisher's record absent */
	atomic_long	 stale_seen;	/* lookups that found it stale */
};

static int
foreach_count(const struct isp_record *r, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

static void *
reader_main(void *arg)
{
	struct reader		*rd = arg;
	struct isp_record	*r;
	char			 key[48];
	size_t			 n;
	long			 i = 0;

	while (!atomic_load(&rd->stop)) {
		snprintf(key, sizeof(key), "p1-%ld", i++ % NREC);
		if ((r = isp_mirror_get(rd->m, key, strlen(key))) == NULL)
			atomic_fetch_add(&rd->misses, 1);
		else if (isp_record_stale(r))
			atomic_fetch_add(&rd->stale_seen, 1);
		isp_record_free(r);
		n = 0;
		(void)isp_mirror_foreach(rd->m, "p1-", 3, foreach_count, &n);
		if (n != NREC)
			atomic_fetch_add(&rd->misses, 1);
		(void)isp_mirror_stale_count(rd->m);
		atomic_fetch_add(&rd->lookups, 1);
	}
	return NULL;
}

static int
reader_mirror_settled(void *arg)
{
	struct reader	*rd = arg;

	return isp_mirror_count(rd->m) == NREC &&
	    isp_mirror_stale_count(rd->m) == 0;
}

/* A mirror run by the library thread (isp_start) and read from another
 * thread while its only reflector is killed and restarted: no lookup
 * ever misses a record whose publisher lives; some see it stale. */
static void
test_threaded_mirror_restart(void **state)
{
	struct world	 w;
	struct reader	 rd;
	pthread_t	 t;
	isp_client	*c;

	world_start(&w, 1, 1, 300);
	c = ha_client(&w, "asterisk-threaded", 50);
	memset(&rd, 0, sizeof(rd));
	assert_non_null(rd.m = isp_mirror_new(c, T, NULL, 0, NULL, NULL));
	assert_int_equal(isp_start(c), ISP_OK);
	settle(&w, "at start");
	if (!pump(w.all, w.nall, reader_mirror_settled, &rd, WAIT_MS))
		fail_msg("the threaded mirror did not fill");
	atomic_init(&rd.stop, 0);
	assert_int_equal(pthread_create(&t, NULL, reader_main, &rd), 0);

	pump_for(w.all, w.nall, 100);
	ispd_signal(&w.d[0], SIGKILL);
	pump_for(w.all, w.nall, 300);
	ispd_restart(&w.d[0], "--hold", HOLD, NULL);
	settle(&w, "after the restart");
	if (!pump(w.all, w.nall, reader_mirror_settled, &rd, WAIT_MS))
		fail_msg("the threaded mirror did not settle");
	pump_for(w.all, w.nall, 100);
	atomic_store(&rd.stop, 1);
	pthread_join(t, NULL);

	assert_true(atomic_load(&rd.lookups) > 0);
	assert_int_equal(atomic_load(&rd.misses), 0);
	assert_true(atomic_load(&rd.stale_seen) > 0);
	isp_mirror_free(rd.m);
	world_stop(&w);
}

/* What on_state reported, with when. */
struct attempts {
	int		 n;
	int64_t		 at[64];
	int		 up[64];
	unsigned	 attempt[64];
	int		 retry_ms[64];
};

static void
on_state(isp_client *c, const struct isp_server_event *e, void *arg)
{
	struct attempts	*a = arg;

	if (a->n == 64)
		return;
	a->at[a->n] = now_ms();
	a->up[a->n] = e->up;
	a->attempt[a->n] = e->attempt;
	a->retry_ms[a->n] = e->retry_ms;
	a->n++;
}

static int
came_up(void *arg)
{
	struct attempts	*a = arg;

	return a->n > 0 && a->up[a->n - 1];
}

/*
 * The backoff as documented, measured: the gap between two failed
 * attempts at a stopped reflector is the delay announced for it, and
 * each delay is min(max, min * 2^n) +- 20%. Restarted, the reflector
 * is reached at the next scheduled attempt.
 */
static void
test_reconnect_timing(void **state)
{
	/* An attempt is never early; it may be late by the time the
	 * process waits for a CPU: a few ms when idle, a few hundred on a
	 * loaded 2-core machine running ASan builds and benchmarks. A
	 * refused connect itself takes microseconds. */
	const int		 slack = 300;
	/* The times are taken in the callbacks, which run a little after
	 * libisp scheduled the retry: a gap may look early by that much
	 * (1 ms seen under ASan). */
	const int		 early = 5;
	struct isp_options	 o;
	struct world		 w;
	struct ispd_proc	*d = &w.d[0];
	struct attempts		 a;
	isp_client		*c;
	int64_t			 t_restart;
	int			 i, base;

	memset(&a, 0, sizeof(a));
	world_init(&w);
	ispd_start(d, NULL);
	isp_options_init(&o);
	o.server = d->addr;
	o.name = "timed";
	o.reconnect = 1;
	o.backoff_min_ms = 100;
	o.backoff_max_ms = 800;
	o.on_state = on_state;
	o.arg = &a;
	assert_non_null(c = isp_new(&o));
	w.all[w.nall++] = c;
	assert_int_equal(isp_connect(c), ISP_OK);
	assert_int_equal(a.n, 0);	/* isp_connect() calls no callback */

	ispd_signal(d, SIGKILL);
	pump_for(&c, 1, 3300);
	/* Lost, then attempts 1..5 failed: 100, 200, 400, 800, 800. */
	if (a.n < 5)
		fail_msg("%d state changes in 3.3 s", a.n);
	for (i = 0; i < a.n; i++) {
		assert_int_equal(a.up[i], 0);
		assert_int_equal(a.attempt[i], i);
		base = 100 << (i < 3 ? i : 3);
		if (a.retry_ms[i] < base - base / 5 ||
		    a.retry_ms[i] > base + base / 5)
			fail_msg("attempt %d: retry in %d ms, not %d +- 20%%",
			    i, a.retry_ms[i], base);
		if (i == 0)
			continue;
		if (a.at[i] - a.at[i - 1] < a.retry_ms[i - 1] - early ||
		    a.at[i] - a.at[i - 1] > a.retry_ms[i - 1] + slack)
			fail_msg("attempt %d came %lld ms after the previous, "
			    "%d ms were announced", i,
			    (long long)(a.at[i] - a.at[i - 1]),
			    a.retry_ms[i - 1]);
	}
	assert_int_equal(isp_servers_up(c), 0);
	/* Still alive: requests are kept for the reconnect. */
	assert_int_equal(isp_process(c), ISP_OK);

	t_restart = now_ms();
	ispd_restart(d, NULL);
	if (!pump(&c, 1, came_up, &a, 3000))
		fail_msg("no reconnect within 3 s of the restart");
	/* Reached at the attempt that was due, not later. */
	assert_true(a.at[a.n - 1] - t_restart <= 800 + 800 / 5 + slack);
	assert_true(a.at[a.n - 1] - a.at[a.n - 2] >= a.retry_ms[a.n - 2] - early);
	assert_int_equal(isp_servers_up(c), 1);
	world_stop(&w);
}

static int
watch_has_b(void *arg)
{
	return child_out_has(arg, "\"key\":\"b\"");
}

static int
watch_fresh(void *arg)
{
	return child_out_has(arg, "\"event\":\"fresh\"");
}

/* `ispctl watch --json` reports a lost session (stale, with the count
 * of records kept) and the resync (fresh), and withdraws nothing. */
static void
test_ispctl_watch_stale_fresh(void **state)
{
	struct world		 w;
	struct ispd_proc	*d = &w.d[0];
	struct child		*ch = &w.ch;
	struct isp_field	 f = { "contact", "sip:a@h", 7 };
	struct isp_options	 o;
	isp_client		*c;
	char			 want[256];

	world_init(&w);
	ispd_start(d, "--hold", HOLD, NULL);
	child_start(ch, "-s", d->addr, "watch", T, "--json", NULL);
	isp_options_init(&o);
	o.server = d->addr;
	o.name = "bgw-1";
	o.reconnect = 1;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 200;
	assert_non_null(c = isp_new(&o));
	w.all[w.nall++] = c;
	assert_int_equal(isp_connect(c), ISP_OK);
	assert_int_equal(isp_announce(c, T, "a", 1, &f, 1, 0), ISP_OK);
	assert_int_equal(isp_announce(c, T, "b", 1, &f, 1, 0), ISP_OK);
	assert_int_equal(isp_sync(c, 5000), ISP_OK);
	if (!pump(&c, 1, watch_has_b, ch, 5000))
		fail_msg("watch did not show the records");

	ispd_signal(d, SIGKILL);
	ispd_restart(d, "--hold", HOLD, NULL);
	if (!pump(&c, 1, watch_fresh, ch, WAIT_MS))
		fail_msg("watch printed no fresh line");
	snprintf(want, sizeof(want), "{\"event\":\"stale\",\"table\":\"%s\","
	    "\"server\":\"%s\",\"stale\":2}", T, d->addr);
	assert_true(child_out_has(ch, want));
	assert_false(child_out_has(ch, "\"event\":\"withdraw\""));
	world_stop(&w);
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test_teardown(test_restart_single_reflector,
		    teardown),
		cmocka_unit_test_teardown(test_one_of_two_killed, teardown),
		cmocka_unit_test_teardown(test_drain_one_of_two, teardown),
		cmocka_unit_test_teardown(
		    test_publisher_killed_one_reflector_down, teardown),
		cmocka_unit_test_teardown(
		    test_publisher_killed_only_reflector_down, teardown),
		cmocka_unit_test_teardown(test_partition_one_reflector,
		    teardown),
		cmocka_unit_test_teardown(test_threaded_mirror_restart,
		    teardown),
		cmocka_unit_test_teardown(test_reconnect_timing, teardown),
		cmocka_unit_test_teardown(test_ispctl_watch_stale_fresh,
		    teardown),
	};

	/* A killed ispctl must not take the test with it. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
