/*
 * Graceful restart for publishers (ispd --graceful-table, docs/HA.md),
 * against real ispd processes. A publisher whose session is lost (its
 * process killed, or silent past the hold time) leaves its records in
 * graceful tables held for its client's next session; that session
 * takes back what it announces again without an event, and its
 * END_OF_REPLAY (or the end of the grace time) withdraws the rest, once.
 * A BYE is no loss, other tables are not graceful, and ispd.sessions
 * never is. A live session's records are no held ones: a session of the
 * same client announcing them gets an EV_REPLACE. A client of the same
 * name that never announced (a watcher) ends no replay, and
 * isp_replay_done() ends it at servers that come up later too.
 *
 * The observer is a plain subscription (isp_subscribe), not a mirror:
 * a mirror would hide a withdraw-and-announce flap, a subscription shows
 * every event ispd sends, and the tests count them exactly. Publishers
 * that get killed run in processes of their own: a fork of this test
 * running a libisp client (pub_fork), or `ispctl publish`. Every wait is
 * bounded; a waited-for absence of events is the only plain wait.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "faults.h"
#include "proto.h"
#include "rawsock.h"
#include "testutil.h"

#define T		"SIP_REGISTRATION"	/* graceful in most tests */
#define D		"DIALOGS"		/* not graceful, unless a test says */
#define S		ISP_SESSIONS_TABLE
#define PROMPT_MS	2000	/* "at once": a withdraw that waits for
				 * nothing comes well within this */
#define WAIT_MS		5000	/* bound of every other wait */
/* ispd's options that make T graceful, for secs seconds. */
#define GRACE(secs)	"--graceful-table", T, "--graceful-seconds", (secs)

/* What the observer was told, and when. */
struct obs {
	struct evlog	 l;
	int64_t		*at;	/* arrival of l.ev[i] */
	size_t		 atcap;
};

/* The running test's daemon, clients and processes. Each test keeps its
 * own in static storage: after a failed assertion the teardown cleans
 * up, and the test's stack frame is gone by then. */
struct gw {
	struct ispd_proc d;
	struct ispd_proc d2;		/* a second reflector, or pid 0 */
	isp_client	*c[8];		/* c[0]: the observer */
	size_t		 nc;
	struct obs	 o;
	struct obs	 o2;		/* an observer of d2 */
	pid_t		 pub[4];	/* forked publishers, 0: none */
	struct child	 ch;		/* an ispctl publisher */
};

static struct gw	*cur;
/* A configuration file a test wrote, removed by the teardown. */
static char		 conf_path[64];

/* Frees what w holds; returns ispd's exit status (0: clean). */
static int
gw_release(struct gw *w)
{
	size_t	 i;
	int	 rc = 0;

	for (i = 0; i < sizeof(w->pub) / sizeof(w->pub[0]); i++)
		if (w->pub[i] > 0) {
			kill(w->pub[i], SIGKILL);
			waitpid(w->pub[i], NULL, 0);
			w->pub[i] = 0;
		}
	if (w->ch.pid > 0) {
		kill(w->ch.pid, SIGCONT);
		child_kill(&w->ch);
	}
	for (i = 0; i < w->nc; i++)
		isp_free(w->c[i]);
	w->nc = 0;
	evlog_free(&w->o.l);
	free(w->o.at);
	w->o.at = NULL;
	evlog_free(&w->o2.l);
	free(w->o2.at);
	w->o2.at = NULL;
	if (w->d.pid > 0)
		rc = ispd_stop(&w->d);
	if (w->d2.pid > 0) {
		kill(w->d2.pid, SIGCONT);	/* a test may have frozen it */
		if (ispd_stop(&w->d2) != 0 && rc == 0)
			rc = -1;
	}
	cur = NULL;
	return rc;
}

static int
teardown(void **state)
{
	if (cur != NULL)
		(void)gw_release(cur);
	if (conf_path[0] != '\0')
		unlink(conf_path);
	conf_path[0] = '\0';
	return 0;
}

/* Starts ispd with the arguments (NULL-terminated). */
static void
gw_start(struct gw *w, ...)
{
	va_list	 ap;

	memset(w, 0, sizeof(*w));
	w->ch.in = -1;
	cur = w;
	va_start(ap, w);
	ispd_vstart(&w->d, ap);
	va_end(ap);
}

static void
gw_stop(struct gw *w)
{
	assert_int_equal(gw_release(w), 0);
}

/* Makes c a client of the test: pumped with the others, freed by the
 * teardown. */
static isp_client *
gw_add(struct gw *w, isp_client *c)
{
	assert_true(w->nc < sizeof(w->c) / sizeof(w->c[0]));
	w->c[w->nc++] = c;
	return c;
}

static void
obs_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct obs	*o = arg;

	evlog_cb(c, ev, &o->l);
	if (o->atcap < o->l.cap) {
		o->atcap = o->l.cap;
		o->at = realloc(o->at, o->atcap * sizeof(*o->at));
		assert_non_null(o->at);
	}
	o->at[o->l.n - 1] = now_ms();
}

/* Record events (0: any of ANNOUNCE, REPLACE, WITHDRAW) of table (NULL:
 * any) on key (NULL: any) since from. */
static size_t
ev_count(struct evlog *l, size_t from, int type, const char *table,
    const char *key)
{
	size_t	 i, n = 0;

	for (i = from; i < l->n; i++) {
		if (type == 0 ? (l->ev[i].type < ISP_EV_ANNOUNCE ||
		    l->ev[i].type > ISP_EV_WITHDRAW) : l->ev[i].type != type)
			continue;
		if (table != NULL && strcmp(l->ev[i].table, table) != 0)
			continue;
		if (key != NULL && strcmp(l->ev[i].key, key) != 0)
			continue;
		n++;
	}
	return n;
}

static void
ev_dump(struct evlog *l, size_t from, const char *what)
{
	size_t	 i;

	fprintf(stderr, "events %s:\n", what);
	for (i = from; i < l->n; i++)
		fprintf(stderr, "  type %d table %s key %s fields %s owner %s/"
		    "%llu reason %d\n", l->ev[i].type, l->ev[i].table,
		    l->ev[i].key, l->ev[i].fields, l->ev[i].owner,
		    (unsigned long long)l->ev[i].owner_session,
		    l->ev[i].reason);
}

/* Exactly n events of type on table/key since from. */
static void
expect_n(struct evlog *l, size_t from, int type, const char *table,
    const char *key, size_t n)
{
	size_t	 got = ev_count(l, from, type, table, key);

	if (got != n) {
		ev_dump(l, from, "seen");
		fail_msg("%zu events of type %d on %s %s, want %zu", got, type,
		    table ? table : "any table", key ? key : "any key", n);
	}
}

/* The first event of type on table's key since from exists, with the
 * value (NULL: not checked) in its field contact, and owner (NULL: not
 * checked) and session for its owner. */
static void
expect_ev(struct evlog *l, size_t from, int type, const char *table,
    const char *key, const char *value, const char *owner, uint64_t session)
{
	struct rec_event	*e = NULL;
	char			 want[128];
	size_t			 i;

	for (i = from; i < l->n && e == NULL; i++)
		if (l->ev[i].type == type &&
		    strcmp(l->ev[i].table, table) == 0 &&
		    strcmp(l->ev[i].key, key) == 0)
			e = &l->ev[i];
	if (e == NULL) {
		ev_dump(l, from, "seen");
		fail_msg("no event of type %d on %s %s", type, table, key);
	}
	if (value != NULL) {
		snprintf(want, sizeof(want), "contact=%s", value);
		assert_string_equal(e->fields, want);
	}
	if (owner != NULL)
		assert_string_equal(e->owner, owner);
	assert_int_equal(e->owner_session, session);
}

/* Every event of type since from on table has reason. */
static void
expect_reasons(struct evlog *l, size_t from, int type, const char *table,
    int reason)
{
	size_t	 i;

	for (i = from; i < l->n; i++)
		if (l->ev[i].type == type &&
		    strcmp(l->ev[i].table, table) == 0 &&
		    l->ev[i].reason != reason) {
			ev_dump(l, from, "seen");
			fail_msg("%s %s withdrawn with reason %d, want %d",
			    table, l->ev[i].key, l->ev[i].reason, reason);
		}
}

/* Every event of type (0: any) on table since from reached the observer
 * lo ms after t0 (what t0 was) or later, and hi ms after it at the
 * latest (hi 0: no bound). */
static void
expect_times(struct gw *w, size_t from, int type, const char *table,
    int64_t t0, int lo, int hi, const char *what)
{
	struct evlog	*l = &w->o.l;
	long long	 dt;
	size_t		 i;

	for (i = from; i < l->n; i++) {
		if (strcmp(l->ev[i].table, table) != 0 ||
		    (type != 0 && l->ev[i].type != type))
			continue;
		dt = w->o.at[i] - t0;
		if (dt < lo)
			fail_msg("%s withdrawn %lld ms after %s, before %d ms",
			    l->ev[i].key, dt, what, lo);
		if (hi > 0 && dt > hi)
			fail_msg("%s withdrawn %lld ms after %s, after %d ms",
			    l->ev[i].key, dt, what, hi);
	}
}

struct want {
	struct evlog	*l;
	size_t		 from;
	int		 type;
	const char	*table;
	const char	*key;
	size_t		 n;
	pid_t		 pid;	/* a publisher that must stay alive, or 0 */
	int		 died;
};

static int
want_met(void *arg)
{
	struct want	*wt = arg;
	int		 status;

	if (wt->pid > 0 && waitpid(wt->pid, &status, WNOHANG) == wt->pid) {
		wt->died = WIFEXITED(status) ? WEXITSTATUS(status) : 128 +
		    WTERMSIG(status);
		wt->pid = 0;
		return 1;
	}
	return ev_count(wt->l, wt->from, wt->type, wt->table, wt->key) >=
	    wt->n;
}

/* Pumps the test's clients until n such events arrived in l since
 * from, at most ms; fails the test otherwise. */
static void
wait_ev_in(struct gw *w, struct evlog *l, size_t from, int type,
    const char *table, const char *key, size_t n, int ms)
{
	struct want	 wt = { l, from, type, table, key, n, 0, 0 };

	if (!pump(w->c, w->nc, want_met, &wt, ms)) {
		ev_dump(l, from, "seen");
		fail_msg("no %zu events of type %d on %s %s within %d ms", n,
		    type, table ? table : "any table", key ? key : "any key",
		    ms);
	}
}

/* wait_ev_in() for the observer's events. */
static void
wait_ev(struct gw *w, size_t from, int type, const char *table,
    const char *key, size_t n, int ms)
{
	wait_ev_in(w, &w->o.l, from, type, table, key, n, ms);
}

/* No event of table since from reaches the observer within ms of t0,
 * the kill. */
static void
expect_none_for(struct gw *w, size_t from, const char *table, int64_t t0,
    int ms)
{
	struct want	 wt = { &w->o.l, from, 0, table, NULL, 1, 0, 0 };
	int64_t		 left = t0 + ms - now_ms();

	if (left > 0 && pump(w->c, w->nc, want_met, &wt, (int)left)) {
		ev_dump(&w->o.l, from, "seen");
		fail_msg("an event of %s within %d ms of the kill", table, ms);
	}
	expect_n(&w->o.l, from, 0, table, NULL, 0);
}

/* Runs only the observer, so that the test's other clients fall silent,
 * until ispd ends whose session (row in ispd.sessions): its withdraw
 * since from, at most WAIT_MS. */
static void
wait_silent_end(struct gw *w, size_t from, const char *row,
    const char *whose)
{
	struct want	 wt = { &w->o.l, from, ISP_EV_WITHDRAW, S, row, 1, 0,
			    0 };

	if (!pump(w->c, 1, want_met, &wt, WAIT_MS))
		fail_msg("ispd did not end %s session", whose);
}

/* The observer: a plain subscription to each table (NULL-terminated),
 * snapshots done. */
static void
observe(struct gw *w, ...)
{
	const char	*t;
	va_list		 ap;
	isp_client	*c;
	size_t		 n = 0;

	c = gw_add(w, client_new(&w->d, "observer"));
	va_start(ap, w);
	while ((t = va_arg(ap, const char *)) != NULL) {
		assert_int_equal(isp_subscribe(c, t, NULL, 0, 0, obs_cb,
		    &w->o), ISP_OK);
		n++;
	}
	va_end(ap);
	wait_ev(w, 0, ISP_EV_END, NULL, NULL, n, WAIT_MS);
}

static int
snap_ended(void *arg)
{
	return ((struct evlog *)arg)->ended;
}

static int
obs_ended(void *arg)
{
	return ((struct obs *)arg)->l.ended;
}

/* Subscribes c, a client of the test, to T with cb and arg, and runs
 * the test's clients until done(arg) says its snapshot ended. */
static void
subscribe_t(struct gw *w, isp_client *c, isp_event_cb *cb, void *arg,
    int (*done)(void *))
{
	assert_int_equal(isp_subscribe(c, T, NULL, 0, 0, cb, arg), ISP_OK);
	if (!pump(w->c, w->nc, done, arg, WAIT_MS))
		fail_msg("no end of the snapshot of %s", T);
}

/* One record a forked publisher announces: contact=value. */
struct prec {
	const char	*table;
	const char	*key;
	const char	*value;
};

/* The records of most publishers: k1..k4 of T; and d1 of D. */
static const struct prec	 K[] = {
	{ T, "k1", "sip:1@10.0.0.1" },
	{ T, "k2", "sip:2@10.0.0.1" },
	{ T, "k3", "sip:3@10.0.0.1" },
	{ T, "k4", "sip:4@10.0.0.1" },
};
static const struct prec	 D1 = { D, "d1", "call-1" };

/*
 * A publisher in a process of its own: a fork of this test running a
 * libisp client named name (reconnect off) homed on the servers given
 * (nservers addresses; NULL: the test's ispd) that announces the
 * records, then runs until it is killed. The fork is made while this
 * process runs no thread; the child closes every descriptor it
 * inherited (the parent's sessions are not its to end) and dies with
 * the test.
 */
static pid_t
pub_spawn_at(struct gw *w, const char *name, const struct prec *r, size_t n,
    const char *const *servers, size_t nservers)
{
	size_t	 i, slot;
	pid_t	 pid;

	for (slot = 0; slot < sizeof(w->pub) / sizeof(w->pub[0]); slot++)
		if (w->pub[slot] == 0)
			break;
	assert_true(slot < sizeof(w->pub) / sizeof(w->pub[0]));
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct isp_options	 o;
		struct isp_field	 f;
		isp_client		*c;
		int			 fd;

		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (fd = 3; fd < 1024; fd++)
			close(fd);
		isp_options_init(&o);
		if (servers == NULL || nservers <= 1)
			o.server = servers != NULL ? servers[0] : w->d.addr;
		else {
			o.servers = servers;
			o.nservers = nservers;
		}
		o.name = name;
		if ((c = isp_new(&o)) == NULL || isp_connect(c) != ISP_OK)
			_exit(10);
		if (isp_servers_up(c) != (nservers > 1 ? nservers : 1))
			_exit(14);
		for (i = 0; i < n; i++) {
			f.name = "contact";
			f.value = r[i].value;
			f.value_len = strlen(r[i].value);
			if (isp_announce(c, r[i].table, r[i].key,
			    strlen(r[i].key), &f, 1, 0) != ISP_OK)
				_exit(11);
		}
		if (isp_sync(c, 5000) != ISP_OK)
			_exit(12);
		for (;;)
			if (isp_run(c, 1000) != ISP_OK)
				_exit(13);
	}
	w->pub[slot] = pid;
	return pid;
}

static pid_t
pub_spawn(struct gw *w, const char *name, const struct prec *r, size_t n)
{
	return pub_spawn_at(w, name, r, n, NULL, 0);
}

/* Waits until l (since from) has every record of the publisher pid
 * announced; fails the test when it does not, or when the publisher
 * exits. */
static void
pub_wait(struct gw *w, struct evlog *l, size_t from, pid_t pid,
    const struct prec *r, size_t n)
{
	size_t		 i, j;

	for (i = 0; i < n; i++) {
		struct want	 wt = { l, from, ISP_EV_ANNOUNCE, r[i].table,
				    r[i].key, 1, pid, 0 };

		if (!pump(w->c, w->nc, want_met, &wt, WAIT_MS))
			fail_msg("the publisher's %s %s did not show",
			    r[i].table, r[i].key);
		if (wt.died) {
			for (j = 0; j < sizeof(w->pub) / sizeof(w->pub[0]);
			    j++)
				if (w->pub[j] == pid)
					w->pub[j] = 0;	/* reaped */
			fail_msg("the publisher process exited (%d)",
			    wt.died);
		}
	}
}

/* pub_spawn(), then waits until the observer saw every record
 * announced. */
static void
pub_fork(struct gw *w, const char *name, const struct prec *r, size_t n)
{
	size_t	 from = w->o.l.n;

	pub_wait(w, &w->o.l, from, pub_spawn(w, name, r, n), r, n);
}

/* SIGKILL for every forked publisher, at once. Returns when. */
static int64_t
pub_kill(struct gw *w)
{
	int64_t	 t = now_ms();
	size_t	 i, n = 0;

	for (i = 0; i < sizeof(w->pub) / sizeof(w->pub[0]); i++)
		if (w->pub[i] > 0) {
			assert_int_equal(kill(w->pub[i], SIGKILL), 0);
			n++;
		}
	assert_true(n > 0);
	for (i = 0; i < sizeof(w->pub) / sizeof(w->pub[0]); i++)
		if (w->pub[i] > 0) {
			waitpid(w->pub[i], NULL, 0);
			w->pub[i] = 0;
		}
	return t;
}

/* pub_kill(), the loss the test is about: the observer's events since
 * are those from *mark on. Returns when. */
static int64_t
pub_lose(struct gw *w, size_t *mark)
{
	*mark = w->o.l.n;
	return pub_kill(w);
}

/* The key (session id) of the last row of ispd.sessions named name
 * announced since from, in key; 0 when none. */
static int
row_of(struct evlog *l, size_t from, const char *name, char *key,
    size_t len)
{
	char	 want[96];
	size_t	 i;

	snprintf(want, sizeof(want), "name=%s,", name);
	for (i = l->n; i > from; i--)
		if (l->ev[i - 1].type == ISP_EV_ANNOUNCE &&
		    strcmp(l->ev[i - 1].table, S) == 0 &&
		    strncmp(l->ev[i - 1].fields, want, strlen(want)) == 0) {
			snprintf(key, len, "%.*s", (int)len - 1,
			    l->ev[i - 1].key);
			return 1;
		}
	return 0;
}

struct rowwant {
	struct evlog	*l;
	size_t		 from;
	const char	*name;
	char		 key[32];
};

static int
row_seen(void *arg)
{
	struct rowwant	*rw = arg;

	return row_of(rw->l, rw->from, rw->name, rw->key, sizeof(rw->key));
}

/* Waits for a row named name announced since from; its key in key. */
static void
wait_row(struct gw *w, size_t from, const char *name, char *key,
    size_t len)
{
	struct rowwant	 rw = { &w->o.l, from, name, "" };

	if (!pump(w->c, w->nc, row_seen, &rw, WAIT_MS)) {
		ev_dump(&w->o.l, from, "seen");
		fail_msg("no row of %s in %s", name, S);
	}
	snprintf(key, len, "%s", rw.key);
}

/* wait_row(), for the session id. */
static uint64_t
wait_row_id(struct gw *w, size_t from, const char *name)
{
	char	 row[32];

	wait_row(w, from, name, row, sizeof(row));
	return strtoull(row, NULL, 10);
}

/*
 * pub_fork() of the publisher "pub" announcing the first nk records of
 * K, then D1 when with_d. When row is not NULL (the observer watches
 * ispd.sessions), waits for the publisher's row too: its key in row.
 */
static void
pub_k(struct gw *w, size_t nk, int with_d, char *row, size_t len)
{
	struct prec	 r[sizeof(K) / sizeof(K[0]) + 1];
	size_t		 from = w->o.l.n, n = nk;

	assert_true(nk <= sizeof(K) / sizeof(K[0]));
	memcpy(r, K, nk * sizeof(r[0]));
	if (with_d)
		r[n++] = D1;
	pub_fork(w, "pub", r, n);
	if (row != NULL)
		wait_row(w, from, "pub", row, len);
}

/* Some counters of one QUERY STATS: the value of each name given, -1
 * when absent. */
struct stats {
	const char	*name[2];
	long long	 value[2];
};

static void
stats_row(const struct isp_field *f, size_t n, void *arg)
{
	struct stats	*st = arg;
	size_t		 i, j;

	for (i = 0; i < n; i++)
		for (j = 0; j < 2; j++)
			if (st->name[j] != NULL &&
			    strcmp(f[i].name, st->name[j]) == 0)
				st->value[j] = atoll(f[i].value);
}

/* Asks the reflector the client q is connected to for st's counters. */
static void
stats_of(isp_client *q, struct stats *st)
{
	st->value[0] = st->value[1] = -1;
	assert_int_equal(isp_query_stats(q, stats_row, st, 10000), ISP_OK);
}

/* Waits until held_records and held_clients (as q sees them) are these,
 * at most ms (0: they are, now). */
static void
wait_held_of(struct gw *w, isp_client *q, long long records,
    long long clients, int ms)
{
	struct stats	 st = { { "held_records", "held_clients" },
			    { -1, -1 } };
	int64_t		 end = now_ms() + ms;

	for (;;) {
		stats_of(q, &st);
		if (st.value[0] == records && st.value[1] == clients)
			return;
		if (now_ms() >= end)
			fail_msg("held_records %lld, held_clients %lld (waited "
			    "%d ms); want %lld and %lld", st.value[0],
			    st.value[1], ms, records, clients);
		pump_for(w->c, w->nc, 50);
	}
}

static void
wait_held(struct gw *w, long long records, long long clients, int ms)
{
	wait_held_of(w, w->c[0], records, clients, ms);
}

/* The test's ispd holds these, now. */
static void
expect_held(struct gw *w, long long records, long long clients)
{
	wait_held(w, records, clients, 0);
}

/* A connected client of the test, pumped with the others. */
static isp_client *
gw_client(struct gw *w, const char *name, int reconnect, struct evlog *errs)
{
	struct isp_options	 o;
	isp_client		*c;

	isp_options_init(&o);
	o.server = w->d.addr;
	o.name = name;
	o.reconnect = reconnect;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 200;
	if (errs != NULL) {
		o.on_error = evlog_error_cb;
		o.arg = errs;
	}
	assert_non_null(c = isp_new(&o));
	if (isp_connect(c) != ISP_OK)
		fail_msg("connect %s: %s", name, isp_errmsg(c));
	return gw_add(w, c);
}

/* Frees a client of the test (isp_free: BYE). */
static void
gw_client_free(struct gw *w, isp_client *c)
{
	size_t	 i;

	for (i = 0; i < w->nc; i++)
		if (w->c[i] == c) {
			isp_free(c);
			w->c[i] = w->c[--w->nc];
			return;
		}
	fail_msg("not a client of the test");
}

static void
announce(isp_client *c, const char *table, const char *key,
    const char *value)
{
	struct isp_field	 f = { "contact", value, strlen(value) };

	assert_int_equal(isp_announce(c, table, key, strlen(key), &f, 1, 0),
	    ISP_OK);
}

/* announce() of each record, in order. */
static void
announce_recs(isp_client *c, const struct prec *r, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		announce(c, r[i].table, r[i].key, r[i].value);
}

/* What c sent is through (isp_sync()), within WAIT_MS. */
static void
sync_ok(isp_client *c)
{
	assert_int_equal(isp_sync(c, WAIT_MS), ISP_OK);
}

/*
 * The barrier after which what has not come will not: a sync of each of
 * the test's clients that has a session. ispd answers it after every
 * event it queued to that session before, and each caller has waited
 * for a fact (an event, a count of held records, a sync of the cause's
 * client) that says the cause is behind ispd.
 */
static void
quiet(struct gw *w)
{
	size_t	 i;

	for (i = 0; i < w->nc; i++)
		if (w->c[i] != NULL && isp_servers_up(w->c[i]) > 0)
			sync_ok(w->c[i]);
}

/* The client c ends its replay (isp_replay_done()), and that is
 * through. */
static void
end_replay(isp_client *c)
{
	assert_int_equal(isp_replay_done(c), ISP_OK);
	sync_ok(c);
}

/*
 * A new subscription's snapshot of r[0]'s table at the reflector d holds
 * exactly the n records r (key and value), each with owner (name and
 * session; session 0: not checked).
 */
static void
expect_table(struct ispd_proc *d, const struct prec *r, size_t n,
    const char *owner, uint64_t session)
{
	struct evlog		 l;
	struct rec_event	*e;
	isp_client		*c = client_new(d, "dumper");
	char			 want[128];
	size_t			 i;

	memset(&l, 0, sizeof(l));
	assert_int_equal(isp_subscribe(c, r[0].table, NULL, 0, ISP_SUB_ONCE,
	    evlog_cb, &l), ISP_OK);
	if (!pump(&c, 1, snap_ended, &l, WAIT_MS))
		fail_msg("no end of the snapshot of %s", r[0].table);
	isp_free(c);
	if (ev_count(&l, 0, 0, NULL, NULL) != n ||
	    ev_count(&l, 0, ISP_EV_ANNOUNCE, NULL, NULL) != n) {
		ev_dump(&l, 0, "in the snapshot");
		fail_msg("the snapshot has %zu events, want %zu records",
		    ev_count(&l, 0, 0, NULL, NULL), n);
	}
	for (i = 0; i < n; i++) {
		if ((e = evlog_last(&l, r[i].key)) == NULL) {
			ev_dump(&l, 0, "in the snapshot");
			fail_msg("%s is not in the snapshot", r[i].key);
		}
		snprintf(want, sizeof(want), "contact=%s", r[i].value);
		assert_string_equal(e->fields, want);
		assert_string_equal(e->owner, owner);
		if (session != 0)
			assert_int_equal(e->owner_session, session);
	}
	evlog_free(&l);
}

/* Writes text to a new file /tmp/ispd-graceful.XXXXXX; its name in
 * path. */
static void
conf_write(char *path, size_t len, const char *text)
{
	int	 fd;

	snprintf(path, len, "/tmp/ispd-graceful.XXXXXX");
	assert_true((fd = mkstemp(path)) != -1);
	assert_int_equal(write(fd, text, strlen(text)),
	    (ssize_t)strlen(text));
	close(fd);
}

/*
 * The observer watches T and D; the publisher of k1 (T) and d1 (D) is
 * forked and killed. The record of the table that is not graceful
 * (gone: T or D) is withdrawn at once, the other one is held. Returns
 * when the publisher was killed; the observer's events since from
 * *mark on.
 */
static int64_t
lose_k1_d1(struct gw *w, const char *gone, size_t *mark)
{
	int64_t	 t_kill;

	observe(w, T, D, NULL);
	pub_k(w, 1, 1, NULL, 0);
	t_kill = pub_lose(w, mark);
	wait_ev(w, *mark, ISP_EV_WITHDRAW, gone,
	    strcmp(gone, T) == 0 ? "k1" : "d1", 1, PROMPT_MS);
	wait_held(w, 1, 1, PROMPT_MS);
	return t_kill;
}

/*
 * The publisher's process is killed: its record in the non-graceful
 * table and its row in ispd.sessions go at once, its four records in the
 * graceful table stay, without an event. Its next run (a client of the
 * same name) announces one of them again unchanged (nothing), one
 * changed (one REPLACE), and ends its replay: the two it did not
 * announce are withdrawn, once each, and nothing else happens.
 */
static void
test_killed_publisher_same_client_replays(void **state)
{
	static const struct prec	 again[] = {
		{ T, "k1", "sip:1@10.0.0.1" },
		{ T, "k2", "sip:2@10.9.9.9" },
	};
	static struct gw	 w;
	isp_client		*c;
	char			 row[32], row2[32];
	size_t			 mark;
	int64_t			 t_kill;

	gw_start(&w, GRACE("10"), NULL);
	observe(&w, T, D, S, NULL);
	pub_k(&w, 4, 1, row, sizeof(row));
	expect_held(&w, 0, 0);

	t_kill = pub_lose(&w, &mark);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, D, "d1", 1, PROMPT_MS);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, S, row, 1, PROMPT_MS);
	assert_true(now_ms() - t_kill < PROMPT_MS);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, D, ISP_WD_SESSION);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, S, ISP_WD_SESSION);
	wait_held(&w, 4, 1, PROMPT_MS);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, NULL, 0);
	expect_n(&w.o.l, mark, 0, D, NULL, 1);

	/* Its next run. */
	mark = w.o.l.n;
	c = gw_client(&w, "pub", 0, NULL);
	announce_recs(c, again, 2);
	sync_ok(c);
	wait_ev(&w, mark, ISP_EV_REPLACE, T, "k2", 1, PROMPT_MS);
	/* k3 and k4 are still held, until the end of the replay. */
	expect_held(&w, 2, 1);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, NULL, 1);

	end_replay(c);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "k3", 1, PROMPT_MS);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "k4", 1, PROMPT_MS);
	quiet(&w);

	expect_n(&w.o.l, mark, 0, T, "k1", 0);
	expect_n(&w.o.l, mark, 0, T, "k2", 1);
	expect_n(&w.o.l, mark, ISP_EV_REPLACE, T, "k2", 1);
	expect_n(&w.o.l, mark, 0, T, "k3", 1);
	expect_n(&w.o.l, mark, 0, T, "k4", 1);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, T, NULL, 2);
	expect_n(&w.o.l, mark, 0, T, NULL, 3);
	expect_n(&w.o.l, mark, 0, D, NULL, 0);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	expect_ev(&w.o.l, mark, ISP_EV_REPLACE, T, "k2", again[1].value,
	    "pub", isp_session_id(c));
	/* The new session has its row; the old one's went once. */
	wait_row(&w, mark, "pub", row2, sizeof(row2));
	assert_int_equal(strtoull(row2, NULL, 10), isp_session_id(c));
	expect_n(&w.o.l, 0, ISP_EV_WITHDRAW, S, row, 1);
	expect_held(&w, 0, 0);
	expect_table(&w.d, again, 2, "pub", isp_session_id(c));
	gw_stop(&w);
}

/* The publisher never comes back: what it held goes at the end of the
 * grace time, not before, once each. */
static void
test_no_return(void **state)
{
	static struct gw	 w;
	size_t		 mark, i;
	int64_t		 t_kill;

	gw_start(&w, GRACE("2"), NULL);
	observe(&w, T, D, NULL);
	pub_k(&w, 4, 1, NULL, 0);

	t_kill = pub_lose(&w, &mark);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, D, "d1", 1, PROMPT_MS);
	wait_held(&w, 4, 1, PROMPT_MS);
	/* Nothing of T for the first second (and more, see below). */
	expect_none_for(&w, mark, T, t_kill, 1000);
	expect_held(&w, 4, 1);

	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, NULL, 4,
	    (int)(t_kill + WAIT_MS - now_ms()));
	quiet(&w);
	for (i = 0; i < 4; i++)
		expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, T, K[i].key, 1);
	expect_n(&w.o.l, mark, 0, T, NULL, 4);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	/* Not before the grace time (2 s from when ispd saw the loss,
	 * which is after the kill), not long after it. */
	expect_times(&w, mark, 0, T, t_kill, 1900, 4000, "the kill");
	expect_held(&w, 0, 0);
	gw_stop(&w);
}

struct exited {
	pid_t	 pid;
	int	 status;
};

static int
child_gone(void *arg)
{
	struct exited	*e = arg;

	return waitpid(e->pid, &e->status, WNOHANG) == e->pid;
}

/*
 * The session that announced key (NULL: the n records) of T ended at
 * t0 with no loss: the observer sees its n withdraws within PROMPT_MS,
 * for the end of the session, then nothing more: total events of T
 * since from. Nothing is held.
 */
static void
expect_gone_at_once(struct gw *w, size_t from, int64_t t0, const char *key,
    size_t n, size_t total)
{
	wait_ev(w, from, ISP_EV_WITHDRAW, T, key, n, PROMPT_MS);
	assert_true(now_ms() - t0 < PROMPT_MS);
	expect_reasons(&w->o.l, from, ISP_EV_WITHDRAW, T, ISP_WD_SESSION);
	quiet(w);
	expect_n(&w->o.l, from, 0, T, NULL, total);
	expect_held(w, 0, 0);
}

/* A session that ends with BYE is no loss: its records in a graceful
 * table go at once, from libisp (isp_free) and from `ispctl publish`
 * reaching the end of its input. */
static void
test_bye_is_not_a_loss(void **state)
{
	static struct gw	 w;
	struct exited	 e;
	isp_client	*c;
	size_t		 mark;
	int64_t		 t0;

	gw_start(&w, GRACE("10"), NULL);
	observe(&w, T, NULL);
	c = gw_client(&w, "pub", 0, NULL);
	announce_recs(c, K, 3);
	sync_ok(c);
	wait_ev(&w, 0, ISP_EV_ANNOUNCE, T, NULL, 3, WAIT_MS);

	mark = w.o.l.n;
	t0 = now_ms();
	gw_client_free(&w, c);
	expect_gone_at_once(&w, mark, t0, NULL, 3, 3);

	/* ispctl publish, to the end of its input. */
	mark = w.o.l.n;
	child_start(&w.ch, "-s", w.d.addr, "--name", "pub", "publish", T,
	    NULL);
	child_line(&w.ch, "announce k9 contact=sip:9@10.0.0.1");
	wait_ev(&w, mark, ISP_EV_ANNOUNCE, T, "k9", 1, WAIT_MS);
	close(w.ch.in);
	w.ch.in = -1;
	t0 = now_ms();
	e.pid = w.ch.pid;
	e.status = -1;
	if (!pump(w.c, w.nc, child_gone, &e, WAIT_MS))
		fail_msg("ispctl publish did not exit at the end of its input");
	w.ch.pid = 0;
	if (!WIFEXITED(e.status) || WEXITSTATUS(e.status) != 0)
		fail_msg("ispctl publish exited with status %#x; see %s",
		    e.status, w.ch.err);
	unlink(w.ch.err);
	unlink(w.ch.out);
	expect_gone_at_once(&w, mark, t0, "k9", 1, 2);
	gw_stop(&w);
}

static int
err_has_back(void *arg)
{
	char		 line[512];
	struct child	*ch = arg;
	FILE		*f;
	int		 found = 0;

	if ((f = fopen(ch->err, "r")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, "is back") != NULL;
	fclose(f);
	return found;
}

/*
 * `ispctl publish` (libisp with reconnect) is frozen past the hold
 * time: ispd ends its session as lost and holds its records. Thawed,
 * the library reconnects, announces them again and ends its replay by
 * itself: no subscriber sees anything of them, and the held set is
 * gone at once, not at the end of the (long) grace time.
 */
static void
test_reconnect_replays_without_flap(void **state)
{
	static struct gw	 w;
	size_t		 from, mark, i;
	char		 row[32], row2[32];
	int64_t		 t_cont;

	gw_start(&w, GRACE("20"), "--hold", "1", "--log-level", "debug",
	    NULL);
	observe(&w, T, S, NULL);
	from = w.o.l.n;
	child_start(&w.ch, "-s", w.d.addr, "--name", "pub", "publish", T,
	    NULL);
	for (i = 0; i < 4; i++)
		child_line(&w.ch, "announce %s contact=%s", K[i].key,
		    K[i].value);
	wait_ev(&w, from, ISP_EV_ANNOUNCE, T, NULL, 4, WAIT_MS);
	wait_row(&w, from, "pub", row, sizeof(row));

	mark = w.o.l.n;
	assert_int_equal(kill(w.ch.pid, SIGSTOP), 0);
	/* ispd ends the silent session after the hold time (1 s). */
	wait_ev(&w, mark, ISP_EV_WITHDRAW, S, row, 1, WAIT_MS);
	wait_held(&w, 4, 1, PROMPT_MS);
	pump_for(w.c, w.nc, 300);
	expect_n(&w.o.l, mark, 0, T, NULL, 0);

	t_cont = now_ms();
	assert_int_equal(kill(w.ch.pid, SIGCONT), 0);
	wait_row(&w, mark, "pub", row2, sizeof(row2));
	assert_string_not_equal(row, row2);
	wait_held(&w, 0, 0, WAIT_MS);
	/* By END_OF_REPLAY, not by the end of the 20 s grace time. */
	assert_true(now_ms() - t_cont < WAIT_MS);
	if (!pump(w.c, w.nc, err_has_back, &w.ch, WAIT_MS))
		fail_msg("ispctl did not say its session is back");
	quiet(&w);

	expect_n(&w.o.l, mark, 0, T, NULL, 0);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, S, row, 1);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, S, row2, 0);
	expect_table(&w.d, K, 4, "pub", strtoull(row2, NULL, 10));
	gw_stop(&w);
}

/*
 * A client of another name announces a held key: one REPLACE, and the
 * record is its own from then on; neither the publisher's END_OF_REPLAY
 * (by_expiry 0) nor the end of the grace time (1) withdraws it, while
 * the other held key goes.
 */
static void
takeover(int by_expiry)
{
	const struct prec	 k1 = { T, "k1", by_expiry ?
				    "sip:1@10.0.0.1" : "sip:1@10.7.7.7" };
	static struct gw	 w;
	static struct evlog	 errs;
	isp_client		*other, *pub;
	size_t			 mark;
	int64_t			 t_kill;

	memset(&errs, 0, sizeof(errs));
	gw_start(&w, GRACE(by_expiry ? "2" : "10"), NULL);
	observe(&w, T, NULL);
	pub_k(&w, 2, 0, NULL, 0);
	t_kill = pub_lose(&w, &mark);
	wait_held(&w, 2, 1, PROMPT_MS);

	other = gw_client(&w, "other", 0, NULL);
	announce_recs(other, &k1, 1);
	sync_ok(other);
	wait_ev(&w, mark, ISP_EV_REPLACE, T, "k1", 1, PROMPT_MS);
	expect_ev(&w.o.l, mark, ISP_EV_REPLACE, T, "k1", NULL, "other",
	    isp_session_id(other));
	expect_held(&w, 1, 1);

	if (by_expiry) {
		wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "k2", 1,
		    (int)(t_kill + WAIT_MS - now_ms()));
	} else {
		pub = gw_client(&w, "pub", 0, &errs);
		/* k1 is not pub's any more. */
		assert_int_equal(isp_withdraw(pub, T, "k1", 2), ISP_OK);
		end_replay(pub);
		assert_int_equal(errs.nerrors, 1);
		assert_int_equal(errs.err_code, ISP_E_NOT_OWNER);
		wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "k2", 1, PROMPT_MS);
	}
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, "k1", 1);
	expect_n(&w.o.l, mark, ISP_EV_REPLACE, T, "k1", 1);
	expect_n(&w.o.l, mark, 0, T, "k2", 1);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, T, "k2", 1);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	expect_held(&w, 0, 0);
	expect_table(&w.d, &k1, 1, "other", isp_session_id(other));
	gw_stop(&w);
}

static void
test_other_client_takes_over_end_of_replay(void **state)
{
	takeover(0);
}

static void
test_other_client_takes_over_expiry(void **state)
{
	takeover(1);
}

/*
 * The client is back before ispd noticed its old session was lost (a
 * half-open connection): the old session is still live, so the new one
 * takes over what it announces again with an EV_REPLACE each (same
 * fields, the new owner), as any other announcer would, and its
 * END_OF_REPLAY finds nothing held yet. When the old session ends as
 * lost, what the client no longer announced is held (its owner still
 * the old session) and goes at the end of the grace time, once, not at
 * the END_OF_REPLAY that came before (docs/HA.md, caveats).
 */
static void
test_back_before_loss_noticed(void **state)
{
	static struct gw	 w;
	isp_client		*c;
	char			 row[32];
	size_t			 from, mark;
	uint64_t		 old_id;
	int64_t			 t_kill;

	gw_start(&w, GRACE("2"), NULL);
	observe(&w, T, S, NULL);
	from = w.o.l.n;
	pub_k(&w, 2, 0, row, sizeof(row));
	old_id = strtoull(row, NULL, 10);
	assert_true(old_id > 0);
	expect_ev(&w.o.l, from, ISP_EV_ANNOUNCE, T, "k2", NULL, NULL, old_id);

	mark = w.o.l.n;
	c = gw_client(&w, "pub", 0, NULL);
	assert_true(isp_session_id(c) != old_id);
	announce_recs(c, K, 1);
	end_replay(c);
	wait_ev(&w, mark, ISP_EV_REPLACE, T, "k1", 1, PROMPT_MS);
	quiet(&w);
	/* One REPLACE, same fields, the new owner; k2 untouched by the
	 * END_OF_REPLAY (nothing is held while the old session lives). */
	expect_n(&w.o.l, mark, 0, T, NULL, 1);
	expect_ev(&w.o.l, mark, ISP_EV_REPLACE, T, "k1", K[0].value, "pub",
	    isp_session_id(c));
	expect_held(&w, 0, 0);

	t_kill = pub_lose(&w, &mark);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, S, row, 1, PROMPT_MS);
	wait_held(&w, 1, 1, PROMPT_MS);
	/* Still held a second after the loss: no event. */
	expect_none_for(&w, mark, T, t_kill, 1000);
	expect_held(&w, 1, 1);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "k2", 1,
	    (int)(t_kill + WAIT_MS - now_ms()));
	assert_true(now_ms() - t_kill >= 1900);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, NULL, 1);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	/* The held record kept its owner: the lost session. */
	expect_ev(&w.o.l, mark, ISP_EV_WITHDRAW, T, "k2", NULL, "pub", old_id);
	expect_held(&w, 0, 0);
	expect_table(&w.d, K, 1, "pub", isp_session_id(c));
	gw_stop(&w);
}

struct held_and_key {
	struct gw	*w;
	long long	 held;
	const char	*key;		/* announced since from */
	size_t		 from;
};

static int
held_and_key(void *arg)
{
	struct held_and_key	*h = arg;

	return ev_count(&h->w->o.l, h->from, ISP_EV_ANNOUNCE, T, h->key) >=
	    1 && stat_counter(h->w->c[0], "held_records") == h->held;
}

/*
 * A client's next session is lost too, while records of its client are
 * held: they are held under the first deadline (client x), unless that
 * session had taken everything back (client y): then the grace time
 * starts again from the second loss (docs/HA.md, caveats). Each held
 * record keeps the owner_session of the session that lost it: x2 the
 * first session of x's, x1 (taken back) and x3 the second
 * (docs/PROTOCOL.md).
 */
static void
test_lost_again(void **state)
{
	static const struct prec	 first_x[] = {
		{ T, "x1", "sip:x1@10.0.0.1" },
		{ T, "x2", "sip:x2@10.0.0.1" },
	};
	static const struct prec	 first_y[] = {
		{ T, "y1", "sip:y1@10.0.0.1" },
	};
	static const struct prec	 second_x[] = {
		{ T, "x1", "sip:x1@10.0.0.1" },
		{ T, "x3", "sip:x3@10.0.0.1" },
	};
	static struct gw		 w;
	struct held_and_key		 hk;
	size_t				 mark, mark2;
	int64_t				 t_first, t_second, t;
	uint64_t			 x_first, x_second, y_first, y_second;

	gw_start(&w, GRACE("4"), NULL);
	observe(&w, T, S, NULL);
	mark = w.o.l.n;
	pub_fork(&w, "x", first_x, 2);
	pub_fork(&w, "y", first_y, 1);
	x_first = wait_row_id(&w, mark, "x");
	y_first = wait_row_id(&w, mark, "y");
	t_first = pub_lose(&w, &mark);
	wait_held(&w, 3, 2, PROMPT_MS);
	pump_for(w.c, w.nc, 1500);

	/* Their next runs: x takes x1 back and adds x3; y takes y1 back. */
	(void)pub_spawn(&w, "x", second_x, 2);
	(void)pub_spawn(&w, "y", first_y, 1);
	hk.w = &w;
	hk.held = 1;		/* x2 */
	hk.key = "x3";
	hk.from = mark;
	mark2 = w.o.l.n;
	if (!pump(w.c, w.nc, held_and_key, &hk, WAIT_MS))
		fail_msg("the second runs did not take their records back");
	x_second = wait_row_id(&w, mark2, "x");
	y_second = wait_row_id(&w, mark2, "y");
	assert_true(x_second != x_first && y_second != y_first);
	expect_ev(&w.o.l, mark, ISP_EV_ANNOUNCE, T, "x3", NULL, NULL,
	    x_second);
	t_second = pub_kill(&w);
	wait_held(&w, 4, 2, PROMPT_MS);

	/* x: x1, x2, x3 at the first deadline. */
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, NULL, 3,
	    (int)(t_first + 4000 + 2000 - now_ms()));
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, T, "y1", 0);
	expect_times(&w, mark, ISP_EV_WITHDRAW, T, t_first, 3900, 5500,
	    "the first loss (x's deadline is at 4000 ms)");
	/* y: y1 at the second loss's deadline. */
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "y1", 1,
	    (int)(t_second + 4000 + 2000 - now_ms()));
	t = now_ms();
	if (t - t_second < 3900)
		fail_msg("y1 withdrawn %lld ms after the second loss, before "
		    "its grace time", (long long)(t - t_second));
	quiet(&w);
	expect_n(&w.o.l, mark, ISP_EV_ANNOUNCE, T, NULL, 1);	/* x3 */
	expect_n(&w.o.l, mark, ISP_EV_REPLACE, T, NULL, 0);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, T, NULL, 4);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, T, "x1", 1);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, T, "x2", 1);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, T, "x3", 1);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	/* Each withdrawn with the owner that lost it. */
	expect_ev(&w.o.l, mark, ISP_EV_WITHDRAW, T, "x2", NULL, "x", x_first);
	expect_ev(&w.o.l, mark, ISP_EV_WITHDRAW, T, "x1", NULL, "x",
	    x_second);
	expect_ev(&w.o.l, mark, ISP_EV_WITHDRAW, T, "x3", NULL, "x",
	    x_second);
	expect_ev(&w.o.l, mark, ISP_EV_WITHDRAW, T, "y1", NULL, "y",
	    y_second);
	expect_held(&w, 0, 0);
	gw_stop(&w);
}

/* The keys of up to max rows of ispd.sessions named name announced
 * since from, in order, in keys; returns how many. */
static size_t
rows_named(struct evlog *l, size_t from, const char *name, char keys[][32],
    size_t max)
{
	char	 want[96];
	size_t	 i, n = 0;

	snprintf(want, sizeof(want), "name=%s,", name);
	for (i = from; i < l->n && n < max; i++)
		if (l->ev[i].type == ISP_EV_ANNOUNCE &&
		    strcmp(l->ev[i].table, S) == 0 &&
		    strncmp(l->ev[i].fields, want, strlen(want)) == 0)
			snprintf(keys[n++], 32, "%.31s", l->ev[i].key);
	return n;
}

struct rows_want {
	struct evlog	*l;
	size_t		 from;
	const char	*name;
	size_t		 n;
};

static int
rows_seen(void *arg)
{
	struct rows_want	*rw = arg;
	char			 keys[8][32];

	return rows_named(rw->l, rw->from, rw->name, keys, 8) >= rw->n;
}

/* Waits until the observer saw n rows of ispd.sessions named name
 * announced since from; fails the test, saying why, otherwise. */
static void
wait_rows(struct gw *w, size_t from, const char *name, size_t n,
    const char *why)
{
	struct rows_want	 rw = { &w->o.l, from, name, n };

	if (!pump(w->c, w->nc, rows_seen, &rw, WAIT_MS)) {
		ev_dump(&w->o.l, from, "seen");
		fail_msg("%s", why);
	}
}

static int
child_out_has_k1(void *arg)
{
	return child_out_has(arg, "k1");
}

/*
 * A client that never announced anything (a watcher) is not the
 * publisher of its name and does not end a replay: a publisher "pub" is
 * killed and its records held; two watchers also named "pub", both with
 * reconnect (`ispctl --name pub watch`, frozen past the hold time, and
 * an in-test client not run for as long), lose their sessions and come
 * back. The held records stay held, with no event, and go only at the
 * end of the grace time, once each (docs/HA.md).
 */
static void
test_watcher_of_same_name_sweeps_nothing(void **state)
{
	static struct gw	 w;
	static struct evlog	 wl;
	isp_client		*wc;
	char			 keys[8][32], prow[32], ctl_row[32],
				 wc_row[32];
	size_t			 from, mark, i, n;
	int64_t			 t_kill, t_back;

	memset(&wl, 0, sizeof(wl));
	gw_start(&w, GRACE("6"), "--hold", "1", NULL);
	observe(&w, T, S, NULL);
	pub_k(&w, 3, 0, prow, sizeof(prow));

	/* The watchers, c[1] and the ispctl process. */
	from = w.o.l.n;
	wc = gw_client(&w, "pub", 1, NULL);
	assert_true(w.c[1] == wc);
	subscribe_t(&w, wc, evlog_cb, &wl, snap_ended);
	assert_int_equal(ev_count(&wl, 0, ISP_EV_ANNOUNCE, T, NULL), 3);
	child_start(&w.ch, "-s", w.d.addr, "--name", "pub", "watch", T, NULL);
	if (!pump(w.c, w.nc, child_out_has_k1, &w.ch, WAIT_MS))
		fail_msg("ispctl watch printed no snapshot; see %s", w.ch.err);
	wait_rows(&w, from, "pub", 2, "no rows of the two watchers in " S);
	n = rows_named(&w.o.l, from, "pub", keys, 8);
	assert_int_equal(n, 2);
	snprintf(wc_row, sizeof(wc_row), "%llu",
	    (unsigned long long)isp_session_id(wc));
	i = strcmp(keys[0], wc_row) == 0 ? 1 : 0;
	assert_string_equal(keys[1 - i], wc_row);
	snprintf(ctl_row, sizeof(ctl_row), "%s", keys[i]);

	t_kill = pub_lose(&w, &mark);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, S, prow, 1, PROMPT_MS);
	wait_held(&w, 3, 1, PROMPT_MS);

	/* Both watchers fall silent: ispctl frozen, the in-test one not
	 * run (only the observer is). */
	assert_int_equal(kill(w.ch.pid, SIGSTOP), 0);
	wait_silent_end(&w, mark, ctl_row, "the frozen ispctl's");
	wait_silent_end(&w, mark, wc_row, "the silent watcher's");
	expect_held(&w, 3, 1);

	/* Back: both reconnect and subscribe again. */
	from = w.o.l.n;
	assert_int_equal(kill(w.ch.pid, SIGCONT), 0);
	wait_rows(&w, from, "pub", 2, "the two watchers did not reconnect");
	if (!pump(w.c, w.nc, err_has_back, &w.ch, WAIT_MS))
		fail_msg("ispctl did not say its session is back");
	sync_ok(wc);
	quiet(&w);
	t_back = now_ms();
	expect_n(&w.o.l, mark, 0, T, NULL, 0);
	expect_held(&w, 3, 1);
	/* Nor later, by a watcher's END_OF_REPLAY still on its way: the
	 * records go at the end of the grace time (expect_times below). */
	/* Else the end of the grace time could hide a sweep. */
	if (t_back - t_kill > 5500)
		fail_msg("the watchers were back %lld ms after the kill: too "
		    "late to tell within the 6 s grace time",
		    (long long)(t_back - t_kill));

	/* The grace time ends: k1..k3 go then, once each, with the owner
	 * that lost them. */
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, NULL, 3,
	    (int)(t_kill + 6000 + 2000 - now_ms()));
	quiet(&w);
	expect_times(&w, mark, 0, T, t_kill, 5900, 0,
	    "the kill (the grace time is 6 s)");
	for (i = 0; i < 3; i++) {
		expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, T, K[i].key, 1);
		expect_ev(&w.o.l, mark, ISP_EV_WITHDRAW, T, K[i].key, NULL,
		    NULL, strtoull(prow, NULL, 10));
	}
	expect_n(&w.o.l, mark, 0, T, NULL, 3);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	expect_held(&w, 0, 0);
	/* The in-test watcher saw them go too, once. */
	assert_int_equal(ev_count(&wl, 0, ISP_EV_WITHDRAW, T, NULL), 3);
	evlog_free(&wl);
	gw_stop(&w);
}

struct nup_want {
	isp_client	*c;
	unsigned	 n;
};

static int
nup_met(void *arg)
{
	struct nup_want	*nw = arg;

	return isp_servers_up(nw->c) >= nw->n;
}

/*
 * isp_replay_done() holds for the servers that come up later: reflectors
 * A and B hold the records k1..k3 of a killed publisher "pub" homed on
 * both. B is frozen; the publisher's next run (reconnect, homed on both)
 * reaches only A, announces k1 again and ends its replay: A withdraws k2
 * and k3 at once. B is thawed: the client's first session with B replays
 * k1 and ends the replay too, so B withdraws k2 and k3 at once, not at
 * the end of its 30 s grace time, and takes k1 over without an event.
 */
static void
test_replay_done_reaches_later_server(void **state)
{
	static struct gw	 w;
	const char		*both[2];
	struct isp_options	 o;
	struct nup_want		 nw;
	isp_client		*ob, *c;
	size_t			 from_a, from_b, mark_a, mark_b;
	pid_t			 pid;
	int64_t			 t_thaw;

	gw_start(&w, GRACE("30"), NULL);
	ispd_start(&w.d2, GRACE("30"), NULL);
	observe(&w, T, NULL);
	ob = gw_add(&w, client_new(&w.d2, "observer-b"));
	subscribe_t(&w, ob, obs_cb, &w.o2, obs_ended);

	both[0] = w.d.addr;
	both[1] = w.d2.addr;
	from_a = w.o.l.n;
	from_b = w.o2.l.n;
	pid = pub_spawn_at(&w, "pub", K, 3, both, 2);
	pub_wait(&w, &w.o.l, from_a, pid, K, 3);
	pub_wait(&w, &w.o2.l, from_b, pid, K, 3);
	mark_a = w.o.l.n;
	mark_b = w.o2.l.n;
	(void)pub_kill(&w);
	wait_held(&w, 3, 1, PROMPT_MS);
	wait_held_of(&w, ob, 3, 1, PROMPT_MS);

	/* B stops answering; the next run reaches only A. */
	ispd_freeze(&w.d2);
	isp_options_init(&o);
	o.servers = both;
	o.nservers = 2;
	o.name = "pub";
	o.reconnect = 1;
	o.connect_timeout_ms = 1000;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 200;
	assert_non_null(c = isp_new(&o));
	assert_int_equal(isp_connect(c), ISP_OK);
	(void)gw_add(&w, c);
	assert_int_equal(isp_servers_up(c), 1);
	announce_recs(c, K, 1);
	end_replay(c);
	wait_ev(&w, mark_a, ISP_EV_WITHDRAW, T, "k2", 1, PROMPT_MS);
	wait_ev(&w, mark_a, ISP_EV_WITHDRAW, T, "k3", 1, PROMPT_MS);
	/* Not quiet(): B, frozen, answers no sync; A's observer is the
	 * one these claims are about. */
	sync_ok(w.c[0]);
	expect_n(&w.o.l, mark_a, 0, T, NULL, 2);
	expect_reasons(&w.o.l, mark_a, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	expect_held(&w, 0, 0);
	/* B was frozen all along: no session with it yet. */
	assert_int_equal(isp_servers_up(c), 1);
	assert_int_equal(w.o2.l.n, mark_b);

	/* B runs again: the client's first session with it. */
	t_thaw = now_ms();
	ispd_thaw(&w.d2);
	nw.c = c;
	nw.n = 2;
	if (!pump(w.c, w.nc, nup_met, &nw, WAIT_MS))
		fail_msg("no session with B within %d ms of its thaw",
		    WAIT_MS);
	wait_ev_in(&w, &w.o2.l, mark_b, ISP_EV_WITHDRAW, T, "k2", 1,
	    WAIT_MS);
	wait_ev_in(&w, &w.o2.l, mark_b, ISP_EV_WITHDRAW, T, "k3", 1,
	    WAIT_MS);
	/* By the END_OF_REPLAY, far from B's 30 s grace time. */
	if (now_ms() - t_thaw > WAIT_MS)
		fail_msg("B withdrew k2 and k3 %lld ms after its thaw",
		    (long long)(now_ms() - t_thaw));
	quiet(&w);
	expect_n(&w.o2.l, mark_b, 0, T, NULL, 2);
	expect_n(&w.o2.l, mark_b, 0, T, "k1", 0);
	expect_reasons(&w.o2.l, mark_b, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	wait_held_of(&w, ob, 0, 0, 0);
	/* Nothing more at A. */
	expect_n(&w.o.l, mark_a, 0, T, NULL, 2);
	/* B has k1 only, the client's now. */
	expect_table(&w.d2, K, 1, "pub", 0);
	gw_stop(&w);
}

/* Without --graceful-table, nothing changed: a killed publisher's
 * records go at once, every table. */
static void
test_not_graceful_unchanged(void **state)
{
	static struct gw	 w;
	char		 row[32];
	size_t		 mark;
	int64_t		 t_kill;

	gw_start(&w, NULL);
	observe(&w, T, D, S, NULL);
	pub_k(&w, 3, 1, row, sizeof(row));
	t_kill = pub_lose(&w, &mark);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, NULL, 3, PROMPT_MS);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, D, "d1", 1, PROMPT_MS);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, S, row, 1, PROMPT_MS);
	assert_true(now_ms() - t_kill < PROMPT_MS);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, NULL, 3);
	expect_n(&w.o.l, mark, 0, D, NULL, 1);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_SESSION);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, D, ISP_WD_SESSION);
	/* The counters exist, at 0. */
	expect_held(&w, 0, 0);
	gw_stop(&w);
}

/*
 * The publisher's next run connects with reconnect set: its first
 * connect ends no replay (a restarted program announces after it), so
 * what it did not announce yet stays held. It withdraws one held key
 * (reason owner) and takes one back; its own isp_replay_done() then
 * withdraws the last.
 */
static void
test_first_connect_keeps_held(void **state)
{
	static struct gw	 w;
	static struct evlog	 errs;
	isp_client	*c;
	size_t		 mark;

	memset(&errs, 0, sizeof(errs));
	gw_start(&w, GRACE("10"), NULL);
	observe(&w, T, NULL);
	pub_k(&w, 3, 0, NULL, 0);
	(void)pub_lose(&w, &mark);
	wait_held(&w, 3, 1, PROMPT_MS);

	c = gw_client(&w, "pub", 1, &errs);
	assert_int_equal(isp_withdraw(c, T, "k1", 2), ISP_OK);
	announce_recs(c, &K[1], 1);
	sync_ok(c);
	assert_int_equal(errs.nerrors, 0);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "k1", 1, PROMPT_MS);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, NULL, 1);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_OWNER);
	expect_held(&w, 1, 1);

	mark = w.o.l.n;
	end_replay(c);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "k3", 1, PROMPT_MS);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, NULL, 1);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	expect_held(&w, 0, 0);
	/* A second END_OF_REPLAY finds nothing and changes nothing. */
	end_replay(c);
	pump_for(w.c, w.nc, 200);
	expect_n(&w.o.l, mark, 0, T, NULL, 1);
	assert_int_equal(errs.nerrors, 0);
	expect_table(&w.d, &K[1], 1, "pub", isp_session_id(c));
	gw_stop(&w);
}

/*
 * Patterns: a prefix ("sip.*") matches the tables that start with it,
 * a name only that table. What no pattern matches goes at once.
 */
static void
test_patterns(void **state)
{
	static const struct prec	 recs[] = {
		{ "sip.reg", "a", "1" },
		{ "sip.x", "b", "1" },
		{ "sipx", "c", "1" },
		{ "OTHER", "d", "1" },
		{ "OTHERX", "e", "1" },
	};
	static struct gw	 w;
	isp_client	*c;
	size_t		 mark;

	gw_start(&w, "--graceful-table", "sip.*", "--graceful-table",
	    "OTHER", "--graceful-seconds", "10", NULL);
	observe(&w, "sip.reg", "sip.x", "sipx", "OTHER", "OTHERX", NULL);
	pub_fork(&w, "pub", recs, 5);
	(void)pub_lose(&w, &mark);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, "sipx", "c", 1, PROMPT_MS);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, "OTHERX", "e", 1, PROMPT_MS);
	wait_held(&w, 3, 1, PROMPT_MS);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, NULL, NULL, 2);

	mark = w.o.l.n;
	c = gw_client(&w, "pub", 0, NULL);
	end_replay(c);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, NULL, NULL, 3, PROMPT_MS);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, NULL, NULL, 3);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, "sip.reg", "a", 1);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, "sip.x", "b", 1);
	expect_n(&w.o.l, mark, ISP_EV_WITHDRAW, "OTHER", "d", 1);
	expect_held(&w, 0, 0);
	gw_stop(&w);
}

/* "*": every table is graceful, but ispd.sessions: the row of a lost
 * session goes at once. ispd stops with records held (what a leak
 * checker of ispd's would see). */
static void
test_star_but_sessions(void **state)
{
	static struct gw	 w;
	char		 row[32];
	size_t		 mark;

	gw_start(&w, "--graceful-table", "*", NULL);
	observe(&w, T, D, S, NULL);
	pub_k(&w, 1, 1, row, sizeof(row));
	(void)pub_lose(&w, &mark);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, S, row, 1, PROMPT_MS);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, S, ISP_WD_SESSION);
	wait_held(&w, 2, 1, PROMPT_MS);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, NULL, 0);
	expect_n(&w.o.l, mark, 0, D, NULL, 0);
	gw_stop(&w);
}

/* The configuration file's directives work as the options do; the
 * command line's --graceful-table replaces the file's patterns. */
static void
test_config_file(void **state)
{
	static struct gw	 w;
	size_t		 mark;
	int64_t		 t_kill;

	conf_write(conf_path, sizeof(conf_path), "graceful-table " D "\n"
	    "graceful-seconds 2\n");

	/* The file's pattern and grace time. */
	gw_start(&w, "--config", conf_path, NULL);
	t_kill = lose_k1_d1(&w, T, &mark);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, D, "d1", 1,
	    (int)(t_kill + WAIT_MS - now_ms()));
	assert_true(now_ms() - t_kill >= 1900);
	gw_stop(&w);

	/* The command line's pattern instead. */
	gw_start(&w, "--config", conf_path, "--graceful-table", T, NULL);
	(void)lose_k1_d1(&w, D, &mark);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, NULL, 0);
	gw_stop(&w);
}

/* How many lines of ispd's log hold text: what a reload tells the
 * operator is not applied, which nothing but the log says. */
static int
log_count(const struct ispd_proc *p, const char *text)
{
	char	 line[4096];
	FILE	*f;
	int	 n = 0;

	if ((f = fopen(p->log, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/* Rewrites the configuration file at conf_path, SIGHUPs w's ispd and
 * waits (at most WAIT_MS) until QUERY STATS counts reload number nth
 * done, none failed. */
static void
reload_with(struct gw *w, const char *text, int nth)
{
	struct stats	 st = { { "reloads_ok", "reloads_failed" },
			    { -1, -1 } };
	int64_t		 end = now_ms() + WAIT_MS;
	isp_client	*q;
	FILE		*f;

	assert_non_null(f = fopen(conf_path, "w"));
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	ispd_signal(&w->d, SIGHUP);
	/* A session of its own: the test's clients come later. */
	q = client_new(&w->d, "reloads");
	for (;;) {
		stats_of(q, &st);
		if (st.value[0] == nth || now_ms() >= end)
			break;
		usleep(10000);
	}
	isp_free(q);
	assert_int_equal(st.value[0], nth);
	assert_int_equal(st.value[1], 0);
}

/*
 * graceful-table and graceful-seconds take a restart: a reload that
 * changes them says so and changes nothing; it is compared with what is
 * in effect, so the same change is reported again at the next reload,
 * and a file back to what runs is not reported.
 */
static void
test_reload_takes_restart(void **state)
{
	static const char	 was[] = "graceful-table " D "\n"
	    "graceful-seconds 20\n";
	static const char	 changed[] = "graceful-table " T "\n"
	    "graceful-seconds 2\n";
	static const char	 tw[] = "graceful-table changed; that takes a "
	    "restart";
	static const char	 sw[] = "graceful-seconds changed; that takes "
	    "a restart";
	static struct gw	 w;
	size_t			 mark;

	conf_write(conf_path, sizeof(conf_path), was);
	gw_start(&w, "--config", conf_path, NULL);

	reload_with(&w, changed, 1);
	assert_int_equal(log_count(&w.d, tw), 1);
	assert_int_equal(log_count(&w.d, sw), 1);
	reload_with(&w, changed, 2);
	assert_int_equal(log_count(&w.d, tw), 2);
	assert_int_equal(log_count(&w.d, sw), 2);
	reload_with(&w, was, 3);
	assert_int_equal(log_count(&w.d, tw), 2);
	assert_int_equal(log_count(&w.d, sw), 2);
	reload_with(&w, changed, 4);
	assert_int_equal(log_count(&w.d, tw), 3);

	/* What runs is still the start's: D held, T withdrawn at once. */
	(void)lose_k1_d1(&w, T, &mark);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, D, NULL, 0);
	gw_stop(&w);
}

/*
 * An in-test client with reconnect, not run for longer than the hold
 * time: ispd ends its session as lost. Meanwhile the application
 * withdraws one record and changes another (the library keeps them for
 * the reconnect). Run again, it reconnects, replays and ends its replay:
 * the subscriber sees the change (one REPLACE) and the withdraw (one
 * WITHDRAW), nothing of the two records that stayed the same.
 */
static void
test_reconnect_changes_while_lost(void **state)
{
	static const struct prec	 after[] = {
		{ T, "k1", "sip:1@10.0.0.1" },
		{ T, "k3", "sip:3@10.9.9.9" },
		{ T, "k4", "sip:4@10.0.0.1" },
	};
	static struct gw	 w;
	isp_client		*c;
	size_t			 from, mark;
	char			 row[32], row2[32];

	gw_start(&w, GRACE("20"), "--hold", "1", NULL);
	observe(&w, T, S, NULL);
	from = w.o.l.n;
	c = gw_client(&w, "pub", 1, NULL);
	announce_recs(c, K, 4);
	sync_ok(c);
	wait_ev(&w, from, ISP_EV_ANNOUNCE, T, NULL, 4, WAIT_MS);
	wait_row(&w, from, "pub", row, sizeof(row));

	/* Only the observer runs: the publisher falls silent. */
	mark = w.o.l.n;
	wait_silent_end(&w, mark, row, "the silent");
	expect_held(&w, 4, 1);
	/* Made while the library does not know yet. */
	assert_int_equal(isp_withdraw(c, T, "k2", 2), ISP_OK);
	announce_recs(c, &after[1], 1);

	wait_row(&w, mark, "pub", row2, sizeof(row2));
	wait_held(&w, 0, 0, WAIT_MS);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "k2", 1, PROMPT_MS);
	wait_ev(&w, mark, ISP_EV_REPLACE, T, "k3", 1, PROMPT_MS);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, "k1", 0);
	expect_n(&w.o.l, mark, 0, T, "k2", 1);
	expect_n(&w.o.l, mark, 0, T, "k3", 1);
	expect_n(&w.o.l, mark, 0, T, "k4", 0);
	/* The withdraw went to the dead session: END_OF_REPLAY did it. */
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_HELD);
	expect_ev(&w.o.l, mark, ISP_EV_REPLACE, T, "k3", NULL, NULL,
	    strtoull(row2, NULL, 10));
	assert_int_equal(isp_session_id(c), strtoull(row2, NULL, 10));
	expect_table(&w.d, after, 3, "pub", isp_session_id(c));
	gw_stop(&w);
}

/* A raw session (this test speaking the protocol itself), with the
 * REPLAY capability. */
static int
raw_open(struct gw *w, const char *name, struct buf *b, struct buf *rb)
{
	int	 fd = raw_connect(w->d.port);

	raw_welcome(fd, b, rb, PROTO_CAP_REPLAY, name);
	return fd;
}

static void
raw_announce(int fd, struct buf *b, const char *table, const char *key)
{
	struct buf	 fb;
	size_t		 start;

	buf_init(&fb);
	start = proto_fields_begin(&fb);
	proto_put_field(&fb, "contact", 7, "raw", 3);
	proto_fields_end(&fb, start, 1);
	proto_put_announce(b, 1, proto_bytes(table, strlen(table)), 0,
	    proto_bytes(key, strlen(key)), proto_bytes(fb.data, fb.len));
	raw_send(fd, b);
	buf_free(&fb);
}

/*
 * ispd ends a session for a protocol error: no loss, its graceful
 * records go at once. A raw session that only closes its socket is lost:
 * its record is held.
 */
static void
test_protocol_error_is_not_a_loss(void **state)
{
	static struct gw	 w;
	struct buf		 b, rb;
	size_t			 mark;
	int			 fd;

	buf_init(&b);
	buf_init(&rb);
	gw_start(&w, GRACE("10"), NULL);
	observe(&w, T, NULL);

	fd = raw_open(&w, "pub", &b, &rb);
	raw_announce(fd, &b, T, "k1");
	wait_ev(&w, 0, ISP_EV_ANNOUNCE, T, "k1", 1, WAIT_MS);
	mark = w.o.l.n;
	/* WELCOME is the server's to send. */
	proto_put_welcome(&b, PROTO_VERSION, 0, 1000, 1, "x");
	raw_send(fd, &b);
	wait_ev(&w, mark, ISP_EV_WITHDRAW, T, "k1", 1, PROMPT_MS);
	expect_reasons(&w.o.l, mark, ISP_EV_WITHDRAW, T, ISP_WD_SESSION);
	close(fd);
	expect_held(&w, 0, 0);

	rb.len = 0;
	fd = raw_open(&w, "pub", &b, &rb);
	raw_announce(fd, &b, T, "k2");
	wait_ev(&w, mark, ISP_EV_ANNOUNCE, T, "k2", 1, WAIT_MS);
	mark = w.o.l.n;
	close(fd);
	wait_held(&w, 1, 1, PROMPT_MS);
	quiet(&w);
	expect_n(&w.o.l, mark, 0, T, NULL, 0);
	buf_free(&b);
	buf_free(&rb);
	gw_stop(&w);
}

/* Many records: more than ispd withdraws in one loop turn (10,000). */
#define NBULK		12000

/* What a bulk observer was told, per key "bNNNNN". */
struct bulk {
	unsigned char	 announced[NBULK];
	unsigned char	 replaced[NBULK];
	unsigned char	 withdrawn[NBULK];
	size_t		 nannounced, nreplaced, nwithdrawn;
	size_t		 bad_reason, other;
	int		 ended;
};

static void
bulk_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct bulk	*b = arg;
	char		 key[16];
	unsigned	 i;

	if (ev->type == ISP_EV_END) {
		b->ended = 1;
		return;
	}
	snprintf(key, sizeof(key), "%.*s", (int)ev->rec.key_len,
	    (const char *)ev->rec.key);
	if (sscanf(key, "b%u", &i) != 1 || i >= NBULK) {
		b->other++;
		return;
	}
	switch (ev->type) {
	case ISP_EV_ANNOUNCE:
		b->announced[i]++;
		b->nannounced++;
		break;
	case ISP_EV_REPLACE:
		b->replaced[i]++;
		b->nreplaced++;
		break;
	case ISP_EV_WITHDRAW:
		b->withdrawn[i]++;
		b->nwithdrawn++;
		if (ev->reason != ISP_WD_HELD)
			b->bad_reason++;
		break;
	default:
		b->other++;
	}
}

static int
snap_ended_bulk(void *arg)
{
	return ((struct bulk *)arg)->ended;
}

static int
bulk_announced(void *arg)
{
	return ((struct bulk *)arg)->nannounced >= NBULK;
}

static int
bulk_half_withdrawn(void *arg)
{
	return ((struct bulk *)arg)->nwithdrawn >= NBULK / 2;
}

/*
 * A publisher holding NBULK records is killed; its next run takes back
 * the first half and ends its replay: the second half is withdrawn, each
 * key exactly once, across several loop turns of ispd; the first half
 * sees nothing.
 */
static void
test_many_held_records(void **state)
{
	static struct gw	 w;
	static struct bulk	 b;
	static char		 keys[NBULK][8];
	static struct prec	 recs[NBULK];
	isp_client		*obs, *c;
	size_t			 i;

	memset(&b, 0, sizeof(b));
	for (i = 0; i < NBULK; i++) {
		snprintf(keys[i], sizeof(keys[i]), "b%05zu", i);
		recs[i].table = T;
		recs[i].key = keys[i];
		recs[i].value = "sip:bulk@10.0.0.1";
	}
	gw_start(&w, GRACE("20"), NULL);
	obs = gw_add(&w, client_new(&w.d, "observer"));
	subscribe_t(&w, obs, bulk_cb, &b, snap_ended_bulk);
	pub_spawn(&w, "pub", recs, NBULK);
	if (!pump(w.c, w.nc, bulk_announced, &b, 4 * WAIT_MS))
		fail_msg("%zu of %d records announced", b.nannounced, NBULK);
	(void)pub_kill(&w);
	wait_held(&w, NBULK, 1, WAIT_MS);

	c = gw_client(&w, "pub", 0, NULL);
	for (i = 0; i < NBULK / 2; i++)
		announce(c, T, keys[i], "sip:bulk@10.0.0.1");
	assert_int_equal(isp_sync(c, 4 * WAIT_MS), ISP_OK);
	assert_int_equal(stat_counter(w.c[0], "held_records"), NBULK - NBULK / 2);
	assert_int_equal(isp_replay_done(c), ISP_OK);
	assert_int_equal(isp_sync(c, 4 * WAIT_MS), ISP_OK);
	if (!pump(w.c, w.nc, bulk_half_withdrawn, &b, 4 * WAIT_MS))
		fail_msg("%zu of %d records withdrawn", b.nwithdrawn,
		    NBULK / 2);
	quiet(&w);
	for (i = 0; i < NBULK; i++) {
		if (b.announced[i] != 1 || b.replaced[i] != 0 ||
		    b.withdrawn[i] != (i < NBULK / 2 ? 0 : 1))
			fail_msg("%s: %u announces, %u replaces, %u withdraws",
			    keys[i], b.announced[i], b.replaced[i],
			    b.withdrawn[i]);
	}
	assert_int_equal(b.nwithdrawn, NBULK / 2);
	assert_int_equal(b.bad_reason, 0);
	assert_int_equal(b.other, 0);
	expect_held(&w, 0, 0);
	assert_int_equal(stat_counter(w.c[0], "withdraw_backlog"), 0);
	/* What c took back, and the rows of ispd.sessions of the two
	 * sessions left. */
	assert_int_equal(stat_counter(w.c[0], "records"), NBULK / 2 + 2);
	gw_stop(&w);
}

/* Runs ispd with the arguments (NULL-terminated), at most 10 s; its
 * stdout and stderr in out. Returns its exit status, -1 for a signal or
 * a daemon that did not exit. */
static int
ispd_run(char *out, size_t len, ...)
{
	char		*argv[32], path[] = "/tmp/ispd-graceful-out.XXXXXX";
	const char	*a;
	va_list		 ap;
	pid_t		 pid;
	ssize_t		 n;
	int		 argc = 0, fd, status = 0, i, rc = -1;

	argv[argc++] = (char *)test_bin("ispd");
	va_start(ap, len);
	while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	assert_true((fd = mkstemp(path)) != -1);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	for (i = 0; i < 1000; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			break;
		}
		usleep(10000);
	}
	if (i == 1000) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return rc;
}

static void
expect_run(int want, const char *text, const char *out, int rc)
{
	if (rc != want || strstr(out, text) == NULL)
		fail_msg("ispd exited %d (want %d), output lacks \"%s\":\n%s",
		    rc, want, text, out);
}

/* The options and directives are checked: exit 2 naming the option on
 * the command line; --check-config reports a good file OK (0) and each
 * bad line of a bad one (1). */
static void
test_options_checked(void **state)
{
	static const struct {
		const char	*option;
		const char	*value;
		const char	*says;
	} bad_opts[] = {
		{ "--graceful-seconds", "0", "graceful-seconds '0'" },
		{ "--graceful-seconds", "3601", "graceful-seconds '3601'" },
		{ "--graceful-seconds", "5s", "graceful-seconds '5s'" },
		{ "--graceful-table", "bad name!",
		    "graceful-table 'bad name!'" },
		{ "--graceful-table", "a*b", "graceful-table 'a*b'" },
		{ "--graceful-table", "", "graceful-table ''" },
	};
	char		 out[8192], good[32], bad[32];
	size_t		 i;
	int		 rc;

	for (i = 0; i < sizeof(bad_opts) / sizeof(bad_opts[0]); i++) {
		rc = ispd_run(out, sizeof(out), "--listen", "127.0.0.1:0",
		    bad_opts[i].option, bad_opts[i].value, NULL);
		expect_run(2, bad_opts[i].says, out, rc);
	}

	conf_write(good, sizeof(good), "graceful-table SIP_REGISTRATION "
	    "sip.*\ngraceful-seconds 20\n");
	rc = ispd_run(out, sizeof(out), "--check-config", good, NULL);
	expect_run(0, ": OK", out, rc);

	conf_write(bad, sizeof(bad), "graceful-table bad!\n"
	    "graceful-seconds 0\ngraceful-table\n");
	rc = ispd_run(out, sizeof(out), "--check-config", bad, NULL);
	expect_run(1, ":1: graceful-table 'bad!'", out, rc);
	expect_run(1, ":2: graceful-seconds '0'", out, rc);
	expect_run(1, ":3: graceful-table takes", out, rc);
	unlink(good);
	unlink(bad);
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test_teardown(
		    test_killed_publisher_same_client_replays, teardown),
		cmocka_unit_test_teardown(test_no_return, teardown),
		cmocka_unit_test_teardown(test_bye_is_not_a_loss, teardown),
		cmocka_unit_test_teardown(test_reconnect_replays_without_flap,
		    teardown),
		cmocka_unit_test_teardown(test_reconnect_changes_while_lost,
		    teardown),
		cmocka_unit_test_teardown(test_protocol_error_is_not_a_loss,
		    teardown),
		cmocka_unit_test_teardown(
		    test_other_client_takes_over_end_of_replay, teardown),
		cmocka_unit_test_teardown(test_other_client_takes_over_expiry,
		    teardown),
		cmocka_unit_test_teardown(test_back_before_loss_noticed,
		    teardown),
		cmocka_unit_test_teardown(test_lost_again, teardown),
		cmocka_unit_test_teardown(
		    test_watcher_of_same_name_sweeps_nothing, teardown),
		cmocka_unit_test_teardown(
		    test_replay_done_reaches_later_server, teardown),
		cmocka_unit_test_teardown(test_not_graceful_unchanged,
		    teardown),
		cmocka_unit_test_teardown(test_first_connect_keeps_held,
		    teardown),
		cmocka_unit_test_teardown(test_patterns, teardown),
		cmocka_unit_test_teardown(test_star_but_sessions, teardown),
		cmocka_unit_test_teardown(test_config_file, teardown),
		cmocka_unit_test_teardown(test_reload_takes_restart,
		    teardown),
		cmocka_unit_test_teardown(test_many_held_records, teardown),
		cmocka_unit_test(test_options_checked),
	};

	/* A killed publisher must not take the test with it. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
