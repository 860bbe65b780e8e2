/*
 * The contract (docs/PROTOCOL.md), line by line,
 * against real ispd processes on loopback, through libisp.
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

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

#define T	"SIP_REGISTRATION"

/* Announces key with fields given as "a=1,b=2" ("" for none). */
static int
announce(isp_client *c, const char *table, const char *key,
    const char *fields, unsigned ttl)
{
	struct isp_field	 f[16];
	char			 copy[512], *p, *save = NULL, *eq;
	size_t			 n = 0;

	snprintf(copy, sizeof(copy), "%s", fields);
	for (p = strtok_r(copy, ",", &save); p != NULL && n < 16;
	    p = strtok_r(NULL, ",", &save)) {
		eq = strchr(p, '=');
		assert_non_null(eq);
		*eq = '\0';
		f[n].name = p;
		f[n].value = eq + 1;
		f[n].value_len = strlen(eq + 1);
		n++;
	}
	return isp_announce(c, table, key, strlen(key), f, n, ttl);
}

struct waitn {
	struct evlog	*l;
	size_t		 n;
};

static int
has_n(void *arg)
{
	struct waitn	*w = arg;

	return w->l->n >= w->n;
}

/* Runs the clients until l holds n events (fails after 5 s). */
static void
wait_events(isp_client **c, size_t nc, struct evlog *l, size_t n)
{
	struct waitn	 w = { l, n };

	if (!pump(c, nc, has_n, &w, 5000))
		fail_msg("expected %zu events, got %zu", n, l->n);
}

static int
ended(void *arg)
{
	return ((struct evlog *)arg)->ended;
}

static isp_client *
subscriber(struct ispd_proc *d, const char *name, const char *table,
    const char *prefix, struct evlog *l)
{
	isp_client	*c = client_new(d, name);

	assert_int_equal(isp_subscribe(c, table, prefix,
	    prefix ? strlen(prefix) : 0, 0, evlog_cb, l), ISP_OK);
	if (!pump(&c, 1, ended, l, 5000))
		fail_msg("no end of snapshot for %s", table);
	return c;
}

static void
sync_ok(isp_client *c)
{
	assert_int_equal(isp_sync(c, 5000), ISP_OK);
}

/* A barrier on each client (NULL: none): once the cause is through
 * (its client synced), an event that has not come by then was not
 * sent, since ispd answers a sync after what it queued before. */
static void
sync_all(isp_client **c, size_t nc)
{
	size_t	 i;

	for (i = 0; i < nc; i++)
		if (c[i] != NULL)
			sync_ok(c[i]);
}

/* A client with an error callback that records into l. */
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

static void
test_announce_replace_refresh(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 l = { 0 };
	struct rec_event	*e;
	isp_client		*c[3];

	ispd_start(&d, NULL);
	c[0] = subscriber(&d, "asterisk-1", T, NULL, &l);
	c[1] = client_new(&d, "bgw-1");
	c[2] = client_new(&d, "bgw-2");
	assert_int_equal(l.n, 1);	/* END of an empty table */
	assert_int_equal(l.ev[0].count, 0);

	/* New key: announce, owned by bgw-1. */
	assert_int_equal(announce(c[1], T, "alice|1", "contact=sip:a@1",
	    0), ISP_OK);
	sync_ok(c[1]);
	wait_events(c, 3, &l, 2);
	e = &l.ev[1];
	assert_int_equal(e->type, ISP_EV_ANNOUNCE);
	assert_string_equal(e->key, "alice|1");
	assert_string_equal(e->fields, "contact=sip:a@1");
	assert_string_equal(e->owner, "bgw-1");
	assert_true(e->owner_session == isp_session_id(c[1]));
	assert_int_equal(e->snapshot, 0);

	/* Identical re-announce by the owner: no event at all. */
	assert_int_equal(announce(c[1], T, "alice|1", "contact=sip:a@1",
	    0), ISP_OK);
	sync_ok(c[1]);
	/* Changed re-announce by the owner: replace. */
	assert_int_equal(announce(c[1], T, "alice|1", "contact=sip:a@2",
	    0), ISP_OK);
	sync_ok(c[1]);
	wait_events(c, 3, &l, 3);
	sync_all(c, 3);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.ev[2].type, ISP_EV_REPLACE);
	assert_string_equal(l.ev[2].fields, "contact=sip:a@2");
	assert_true(l.ev[2].seq == l.ev[1].seq + 1);

	/* Same fields from another session: replace, ownership moves. */
	assert_int_equal(announce(c[2], T, "alice|1", "contact=sip:a@2",
	    0), ISP_OK);
	sync_ok(c[2]);
	wait_events(c, 3, &l, 4);
	assert_int_equal(l.ev[3].type, ISP_EV_REPLACE);
	assert_string_equal(l.ev[3].owner, "bgw-2");
	assert_true(l.ev[3].owner_session == isp_session_id(c[2]));

	isp_free(c[0]);
	isp_free(c[1]);
	isp_free(c[2]);
	evlog_free(&l);
	assert_int_equal(ispd_stop(&d), 0);
}

static void
test_withdraw_owner_only(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 l = { 0 }, errs = { 0 };
	isp_client		*c[3];
	uint32_t		 req;

	ispd_start(&d, NULL);
	c[0] = subscriber(&d, "watch", T, NULL, &l);
	c[1] = client_new(&d, "owner");
	c[2] = client_errs(&d, "thief", &errs);
	assert_int_equal(announce(c[1], T, "bob|1", "contact=x", 0), ISP_OK);
	sync_ok(c[1]);
	wait_events(c, 3, &l, 2);

	/* A non-owner gets an error naming the owner; nothing changes. */
	assert_int_equal(isp_withdraw(c[2], T, "bob|1", 5), ISP_OK);
	req = isp_last_req_id(c[2]);
	sync_ok(c[2]);
	assert_int_equal(errs.nerrors, 1);
	assert_int_equal(errs.err_code, ISP_E_NOT_OWNER);
	assert_int_equal(errs.err_req, req);
	assert_non_null(strstr(errs.err_reason, "owner"));
	sync_all(c, 3);
	assert_int_equal(l.n, 2);

	/* Withdrawing an absent key: NOT_FOUND. */
	assert_int_equal(isp_withdraw(c[2], T, "nobody", 6), ISP_OK);
	sync_ok(c[2]);
	assert_int_equal(errs.nerrors, 2);
	assert_int_equal(errs.err_code, ISP_E_NOT_FOUND);

	/* The owner withdraws: withdraw event, reason owner. */
	assert_int_equal(isp_withdraw(c[1], T, "bob|1", 5), ISP_OK);
	sync_ok(c[1]);
	wait_events(c, 3, &l, 3);
	assert_int_equal(l.ev[2].type, ISP_EV_WITHDRAW);
	assert_int_equal(l.ev[2].reason, ISP_WD_OWNER);
	assert_string_equal(l.ev[2].key, "bob|1");
	assert_string_equal(l.ev[2].owner, "owner");

	isp_free(c[0]);
	isp_free(c[1]);
	isp_free(c[2]);
	evlog_free(&l);
	assert_int_equal(ispd_stop(&d), 0);
}

static void
test_ttl(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 l = { 0 };
	isp_client		*c[2];
	int64_t			 t0;
	int			 i;

	ispd_start(&d, NULL);
	c[0] = subscriber(&d, "watch", T, NULL, &l);
	c[1] = client_new(&d, "bgw");
	t0 = now_ms();
	assert_int_equal(announce(c[1], T, "short", "a=1", 1), ISP_OK);
	assert_int_equal(announce(c[1], T, "kept", "a=1", 1), ISP_OK);
	assert_int_equal(announce(c[1], T, "forever", "a=1", 0), ISP_OK);
	sync_ok(c[1]);
	/* Refresh "kept" by identical re-announces while "short" expires. */
	for (i = 0; i < 6; i++) {
		pump_for(c, 2, 300);
		assert_int_equal(announce(c[1], T, "kept", "a=1", 1), ISP_OK);
	}
	wait_events(c, 2, &l, 5);
	assert_true(now_ms() - t0 >= 1000);
	assert_int_equal(l.n, 5);	/* END, 3 announces, 1 withdraw */
	assert_int_equal(l.ev[4].type, ISP_EV_WITHDRAW);
	assert_string_equal(l.ev[4].key, "short");
	assert_int_equal(l.ev[4].reason, ISP_WD_EXPIRED);

	/* Stop refreshing: "kept" expires too; "forever" stays. */
	wait_events(c, 2, &l, 6);
	assert_string_equal(l.ev[5].key, "kept");
	assert_int_equal(l.ev[5].reason, ISP_WD_EXPIRED);
	pump_for(c, 2, 1200);
	assert_int_equal(l.n, 6);

	isp_free(c[0]);
	isp_free(c[1]);
	evlog_free(&l);
	assert_int_equal(ispd_stop(&d), 0);
}

static void
test_snapshot_prefix_order(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 all = { 0 }, pre = { 0 };
	isp_client		*c[3];
	size_t			 i;
	char			 key[32];

	ispd_start(&d, NULL);
	c[0] = client_new(&d, "bgw");
	for (i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "%s|%zu", i < 4 ? "alice" : "bob",
		    i);
		assert_int_equal(announce(c[0], T, key, "n=1", 0), ISP_OK);
	}
	sync_ok(c[0]);
	c[1] = subscriber(&d, "all", T, NULL, &all);
	c[2] = subscriber(&d, "pre", T, "alice", &pre);
	/* Snapshot, then END with the count, then live events. */
	assert_int_equal(all.n, 11);
	assert_int_equal(all.ev[10].type, ISP_EV_END);
	assert_int_equal(all.ev[10].count, 10);
	assert_int_equal(all.ev[10].seq, 10);
	for (i = 0; i < 10; i++) {
		assert_int_equal(all.ev[i].type, ISP_EV_ANNOUNCE);
		assert_int_equal(all.ev[i].snapshot, 1);
		assert_true(all.ev[i].seq >= 1 && all.ev[i].seq <= 10);
	}
	assert_int_equal(pre.n, 5);
	assert_int_equal(pre.ev[4].count, 4);
	for (i = 0; i < 4; i++)
		assert_memory_equal(pre.ev[i].key, "alice|", 6);

	/* Live: 20 changes; the prefix subscriber sees only its keys, both
	 * in table order with strictly increasing seq. */
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "%s|%zu", i % 2 ? "alice" : "bob",
		    i % 5);
		assert_int_equal(announce(c[0], T, key, i % 3 ? "n=2" : "n=3",
		    0), ISP_OK);
	}
	sync_ok(c[0]);
	sync_all(c, 3);
	for (i = 11; i < all.n; i++) {
		assert_true(all.ev[i].seq == all.ev[i - 1].seq + 1);
		assert_int_equal(all.ev[i].snapshot, 0);
	}
	assert_true(all.n > 11);
	assert_true(pre.n > 5);
	for (i = 5; i < pre.n; i++) {
		assert_memory_equal(pre.ev[i].key, "alice|", 6);
		assert_true(pre.ev[i].seq > pre.ev[i - 1].seq);
	}
	assert_true(pre.n < all.n);

	isp_free(c[0]);
	isp_free(c[1]);
	isp_free(c[2]);
	evlog_free(&all);
	evlog_free(&pre);
	assert_int_equal(ispd_stop(&d), 0);
}

static void
test_limits_answered(void **state)
{
	struct ispd_proc	 d;
	struct isp_field	 f = { "v", "x", 1 };
	isp_client		*c;
	char			 key[1100];
	static char		 big[70000];

	ispd_start(&d, NULL);
	c = client_new(&d, "bgw");
	memset(key, 'k', sizeof(key));
	/* The library refuses what the protocol cannot carry, before
	 * sending, and says which limit. */
	assert_int_equal(isp_announce(c, "bad table", "k", 1, &f, 1, 0),
	    ISP_E_INVALID);
	assert_non_null(strstr(isp_errmsg(c), "table"));
	assert_int_equal(isp_announce(c, T, key, 1025, &f, 1, 0),
	    ISP_E_INVALID);
	assert_non_null(strstr(isp_errmsg(c), "key"));
	assert_int_equal(isp_announce(c, T, key, 0, &f, 1, 0), ISP_E_INVALID);
	f.value = big;
	f.value_len = sizeof(big);
	assert_int_equal(isp_announce(c, T, "k", 1, &f, 1, 0), ISP_E_INVALID);
	assert_non_null(strstr(isp_errmsg(c), "value"));
	/* The limits themselves are fine, and values are binary-safe. */
	memset(big, 0, sizeof(big));
	big[1] = '\n';
	f.value_len = 65536;
	assert_int_equal(isp_announce(c, T, key, 1024, &f, 1, 0), ISP_OK);
	sync_ok(c);
	{
		struct evlog	 l = { 0 };
		isp_client	*s = subscriber(&d, "w", T, NULL, &l);
		isp_mirror	*m;
		struct isp_record *r;

		assert_int_equal(l.n, 2);
		isp_free(s);
		evlog_free(&l);
		s = client_new(&d, "m");
		m = isp_mirror_new(s, T, NULL, 0, NULL, NULL);
		assert_non_null(m);
		while (!isp_mirror_ready(m))
			assert_int_equal(isp_run(s, 100), ISP_OK);
		r = isp_mirror_get(m, key, 1024);
		assert_non_null(r);
		assert_int_equal(r->fields[0].value_len, 65536);
		assert_memory_equal(r->fields[0].value, big, 65536);
		isp_record_free(r);
		isp_mirror_free(m);
		isp_free(s);
	}
	isp_free(c);
	assert_int_equal(ispd_stop(&d), 0);
}

/* Session end in each of its forms withdraws exactly what the session
 * still owns. */

static void
expect_withdrawn(isp_client **c, size_t nc, struct evlog *l, size_t before,
    const char *key)
{
	struct rec_event	*e;

	wait_events(c, nc, l, before + 1);
	e = &l->ev[before];
	assert_int_equal(e->type, ISP_EV_WITHDRAW);
	assert_string_equal(e->key, key);
	assert_int_equal(e->reason, ISP_WD_SESSION);
}

static void
test_session_close_keeps_replaced(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 l = { 0 };
	isp_client		*c[3];

	ispd_start(&d, NULL);
	c[0] = subscriber(&d, "watch", T, NULL, &l);
	c[1] = client_new(&d, "old");
	c[2] = client_new(&d, "new");
	assert_int_equal(announce(c[1], T, "a", "x=1", 0), ISP_OK);
	assert_int_equal(announce(c[1], T, "b", "x=1", 0), ISP_OK);
	sync_ok(c[1]);
	assert_int_equal(announce(c[2], T, "b", "x=2", 0), ISP_OK);
	sync_ok(c[2]);
	wait_events(c, 3, &l, 4);
	/* Orderly close of "old": only "a" goes; "b" is owned by "new". */
	isp_free(c[1]);
	c[1] = NULL;
	expect_withdrawn(c, 3, &l, 4, "a");
	sync_all(c, 3);
	assert_int_equal(l.n, 5);

	isp_free(c[0]);
	isp_free(c[2]);
	evlog_free(&l);
	assert_int_equal(ispd_stop(&d), 0);
}

static void
test_session_reset(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 l = { 0 };
	struct linger		 lg = { 1, 0 };
	isp_client		*c[2];

	ispd_start(&d, NULL);
	c[0] = subscriber(&d, "watch", T, NULL, &l);
	c[1] = client_new(&d, "reset");
	assert_int_equal(announce(c[1], T, "r", "x=1", 0), ISP_OK);
	sync_ok(c[1]);
	wait_events(c, 1, &l, 2);
	/* Linger 0 turns close() into a TCP reset. */
	assert_int_equal(setsockopt(isp_fd(c[1]), SOL_SOCKET, SO_LINGER, &lg,
	    sizeof(lg)), 0);
	close(isp_fd(c[1]));
	expect_withdrawn(c, 1, &l, 2, "r");
	isp_free(c[1]);
	isp_free(c[0]);
	evlog_free(&l);
	assert_int_equal(ispd_stop(&d), 0);
}

/* Starts `ispctl announce` as a real separate client process and waits
 * until its record is seen. */
static pid_t
spawn_announcer(struct ispd_proc *d, const char *key, isp_client **c,
    struct evlog *l)
{
	size_t	 before = l->n;
	pid_t	 pid;

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		execl(test_bin("ispctl"), "ispctl", "-s", d->addr, "--name",
		    "victim", "announce", T, key, "contact=sip:x", (char *)NULL);
		_exit(127);
	}
	wait_events(c, 1, l, before + 1);
	assert_string_equal(l->ev[before].key, key);
	assert_string_equal(l->ev[before].owner, "victim");
	return pid;
}

static void
test_session_killed(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 l = { 0 };
	isp_client		*c;
	pid_t			 pid;

	ispd_start(&d, NULL);
	c = subscriber(&d, "watch", T, NULL, &l);
	pid = spawn_announcer(&d, "killed|1", &c, &l);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	expect_withdrawn(&c, 1, &l, 2, "killed|1");
	isp_free(c);
	evlog_free(&l);
	assert_int_equal(ispd_stop(&d), 0);
}

static void
test_session_hold_expired(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 l = { 0 };
	isp_client		*c;
	int64_t			 t0;
	pid_t			 pid;

	ispd_start(&d, "--hold", "1", NULL);
	c = subscriber(&d, "watch", T, NULL, &l);
	pid = spawn_announcer(&d, "stopped|1", &c, &l);
	/* Alive and keeping its session: still there after 2 hold times. */
	pump_for(&c, 1, 2000);
	assert_int_equal(l.n, 2);
	assert_int_equal(stat_counter(c, "hold_expired"), 0);
	/* Frozen: silence past the hold time ends its session. */
	kill(pid, SIGSTOP);
	t0 = now_ms();
	expect_withdrawn(&c, 1, &l, 2, "stopped|1");
	/* The client pinged at most hold/3 before it froze. */
	assert_true(now_ms() - t0 >= 600);
	/* Ended by the hold timer, not by anything the client did. */
	assert_int_equal(stat_counter(c, "hold_expired"), 1);
	kill(pid, SIGKILL);
	kill(pid, SIGCONT);
	waitpid(pid, NULL, 0);
	isp_free(c);
	evlog_free(&l);
	assert_int_equal(ispd_stop(&d), 0);
}

struct want {
	struct evlog	*l;
	int		 type;
	const char	*key;
};

static int
has_event(void *arg)
{
	struct want	*w = arg;
	size_t		 i;

	for (i = 0; i < w->l->n; i++)
		if (w->l->ev[i].type == w->type &&
		    strcmp(w->l->ev[i].key, w->key) == 0)
			return 1;
	return 0;
}

/* A publisher that never pauses still hears from ispd within the hold
 * time (its keepalive asks for an answer), so it keeps its session. */
static void
test_busy_publisher_keeps_session(void **state)
{
	struct ispd_proc	 d;
	isp_client		*c;
	int64_t			 end;
	char			 key[32];
	unsigned		 i = 0;

	ispd_start(&d, "--hold", "1", NULL);
	c = client_new(&d, "busy");
	end = now_ms() + 2500;
	while (now_ms() < end) {
		snprintf(key, sizeof(key), "k%u", i++ % 1000);
		assert_int_equal(announce(c, T, key, i % 2 ? "a=1" : "a=2", 0),
		    ISP_OK);
		assert_int_equal(isp_run(c, 0), ISP_OK);
	}
	/* Under valgrind ispd is ~30 times slower: the backlog a flood of
	 * 2.5 s leaves takes seconds to read (3.4 s measured). */
	assert_int_equal(isp_sync(c, 30000), ISP_OK);
	isp_free(c);
	assert_int_equal(ispd_stop(&d), 0);
}

/* A publisher far ahead of ispd waits for the answer to its PING behind
 * its own backlog; ispd reading that backlog is a sign of life, so the
 * publisher keeps its session though no answer comes within the hold
 * time. ispd is made slow here: it runs 20 ms of every 920, and the
 * publisher floods on, so its first PING is answered only after seconds. */
static void
test_publisher_ahead_keeps_session(void **state)
{
	struct ispd_proc	 d;
	isp_client		*c;
	int64_t			 t0, now, next;
	char			 key[32];
	unsigned		 i = 0;
	int			 frozen = 0;

	ispd_start(&d, "--hold", "2", NULL);
	c = client_new(&d, "ahead");
	t0 = next = now_ms();
	while ((now = now_ms()) < t0 + 4000) {
		if (now >= next) {
			assert_int_equal(kill(d.pid, frozen ? SIGCONT :
			    SIGSTOP), 0);
			frozen = !frozen;
			next = now + (frozen ? 900 : 20);
		}
		snprintf(key, sizeof(key), "k%u", i++ % 1000);
		assert_int_equal(announce(c, T, key, i % 2 ? "a=1" : "a=2", 0),
		    ISP_OK);
		assert_int_equal(isp_run(c, 0), ISP_OK);
	}
	if (frozen)
		assert_int_equal(kill(d.pid, SIGCONT), 0);
	/* The backlog is read within seconds (30 s under valgrind). */
	assert_int_equal(isp_sync(c, 30000), ISP_OK);
	isp_free(c);
	assert_int_equal(ispd_stop(&d), 0);
}

/* The built-in table lists live sessions, with their names, peers and
 * record counts. */
static int
count_field(void *arg)
{
	struct evlog	*l = arg;
	size_t		 i;

	for (i = 0; i < l->n; i++)
		if (strstr(l->ev[i].fields, "records=2") != NULL)
			return 1;
	return 0;
}

static void
test_sessions_table(void **state)
{
	struct ispd_proc	 d;
	struct evlog		 l = { 0 }, errs = { 0 };
	struct rec_event	*e;
	isp_client		*c[2];
	char			 key[32];

	ispd_start(&d, NULL);
	c[0] = subscriber(&d, "asterisk-7", ISP_SESSIONS_TABLE, NULL, &l);
	/* The snapshot holds ourselves. */
	assert_int_equal(l.n, 2);
	snprintf(key, sizeof(key), "%llu",
	    (unsigned long long)isp_session_id(c[0]));
	assert_string_equal(l.ev[0].key, key);
	assert_non_null(strstr(l.ev[0].fields, "name=asterisk-7"));
	assert_non_null(strstr(l.ev[0].fields, "peer=127.0.0.1:"));
	assert_non_null(strstr(l.ev[0].fields, "since="));
	assert_string_equal(l.ev[0].owner, "ispd");

	c[1] = client_errs(&d, "bgw-9", &errs);
	wait_events(c, 2, &l, 3);
	e = &l.ev[2];
	assert_int_equal(e->type, ISP_EV_ANNOUNCE);
	assert_non_null(strstr(e->fields, "name=bgw-9"));
	snprintf(key, sizeof(key), "%llu",
	    (unsigned long long)isp_session_id(c[1]));
	assert_string_equal(e->key, key);

	/* Its record count follows (refreshed within about a second). */
	assert_int_equal(announce(c[1], T, "a", "x=1", 0), ISP_OK);
	assert_int_equal(announce(c[1], T, "b", "x=1", 0), ISP_OK);
	sync_ok(c[1]);
	if (!pump(c, 2, count_field, &l, 3000))
		fail_msg("records=2 never showed in the sessions table");

	/* Nobody writes into it. */
	assert_int_equal(announce(c[1], ISP_SESSIONS_TABLE, "1", "x=1", 0),
	    ISP_OK);
	sync_ok(c[1]);
	assert_int_equal(errs.err_code, ISP_E_READONLY);

	/* It leaves the table when it goes. */
	isp_free(c[1]);
	c[1] = NULL;
	{
		struct want	 w = { &l, ISP_EV_WITHDRAW, key };

		if (!pump(c, 1, has_event, &w, 5000))
			fail_msg("session %s never left the table", key);
	}
	isp_free(c[0]);
	evlog_free(&l);
	assert_int_equal(ispd_stop(&d), 0);
}

/* 200,000 SIP-sized records: a new subscriber dumps all of them; killing
 * their owner withdraws all of them at that subscriber. */
struct big {
	isp_mirror	*m;
	size_t		 withdrawn;
};

static void
big_change(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct big	*b = arg;

	if (ev->type == ISP_EV_WITHDRAW)
		b->withdrawn++;
}

static void
test_200k_snapshot_and_kill(void **state)
{
	struct ispd_proc	 d;
	struct big		 b = { 0 };
	isp_client		*c[1];
	pid_t			 pid;
	int			 p[2];
	int64_t			 end;
	size_t			 i;
	FILE			*f;

	ispd_start(&d, NULL);
	/* The owner is a separate process (ispctl publish) fed on a pipe, so
	 * it can be killed. */
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		dup2(p[0], STDIN_FILENO);
		close(p[0]);
		close(p[1]);
		execl(test_bin("ispctl"), "ispctl", "-s", d.addr, "--name",
		    "bgw-big", "publish", T, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	assert_non_null(f = fdopen(p[1], "w"));
	for (i = 0; i < 200000; i++)
		fprintf(f, "announce sip:user%06zu@voip.example.com|"
		    "<urn:uuid:00000000-0000-1000-8000-%012zu> "
		    "contact=sip:user%06zu@198.51.100.%zu:5060;transport=udp "
		    "received=198.51.100.%zu:5060 transport=udp "
		    "expires=1790000000 reg_server=bgw-big\n",
		    i, i, i, i % 250, i % 250);
	fflush(f);

	/* Wait until the table holds them all... */
	c[0] = client_new(&d, "counter");
	end = now_ms() + 120000;
	while (table_column(c[0], T, "records") < 200000 && now_ms() < end)
		usleep(100000);
	assert_int_equal(table_column(c[0], T, "records"), 200000);

	/* ...then a new subscriber dumps it completely. */
	b.m = isp_mirror_new(c[0], T, NULL, 0, big_change, &b);
	assert_non_null(b.m);
	while (!isp_mirror_ready(b.m) && now_ms() < end)
		assert_int_equal(isp_run(c[0], 100), ISP_OK);
	assert_true(isp_mirror_ready(b.m));
	assert_int_equal(isp_mirror_count(b.m), 200000);
	{
		struct isp_record	*r;
		const char		*k = "sip:user123456@voip.example.com|"
		    "<urn:uuid:00000000-0000-1000-8000-000000123456>";

		r = isp_mirror_get(b.m, k, strlen(k));
		assert_non_null(r);
		assert_string_equal(r->owner, "bgw-big");
		assert_int_equal(r->nfields, 5);
		assert_string_equal(r->fields[1].value, "198.51.100.206:5060");
		isp_record_free(r);
	}

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fclose(f);
	end = now_ms() + 60000;
	while (isp_mirror_count(b.m) > 0 && now_ms() < end)
		assert_int_equal(isp_run(c[0], 100), ISP_OK);
	assert_int_equal(isp_mirror_count(b.m), 0);
	assert_int_equal(b.withdrawn, 200000);
	isp_mirror_free(b.m);
	isp_free(c[0]);
	assert_int_equal(ispd_stop(&d), 0);
}

/* What a mirror told its application. */
struct gone_told {
	size_t		 announced;
	size_t		 withdrawn;
	size_t		 not_session;	/* withdrawals of another reason */
	size_t		 fresh;
};

static void
gone_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct gone_told	*t = arg;

	if (ev->type == ISP_EV_ANNOUNCE)
		t->announced++;
	else if (ev->type == ISP_EV_WITHDRAW) {
		t->withdrawn++;
		t->not_session += ev->reason != ISP_WD_SESSION;
	} else if (ev->type == ISP_EV_FRESH)
		t->fresh++;
}

struct gone_wait {
	isp_mirror	*m;
	size_t		 count;
	struct evlog	*l;	/* and l's withdrawals, when set */
	size_t		 withdrawn;
	struct gone_told *t;	/* and FRESH, when set */
};

static int
gone_reached(void *arg)
{
	struct gone_wait	*w = arg;

	return isp_mirror_count(w->m) == w->count &&
	    (w->l == NULL || evlog_count(w->l, ISP_EV_WITHDRAW) ==
	    w->withdrawn) && (w->t == NULL || w->t->fresh > 0);
}

static void
announce_n(isp_client *c, const char *prefix, int n)
{
	char	 key[64];
	int	 i;

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s%04d", prefix, i);
		assert_int_equal(announce(c, T, key, "contact=sip:x@h", 0),
		    ISP_OK);
	}
	assert_int_equal(isp_sync(c, 5000), ISP_OK);
}

/*
 * A mirror takes an owner's end as one EV_OWNER_GONE (docs/PROTOCOL.md
 * "Session end"), and still tells its application of each record
 * withdrawn; a plain subscription is sent the withdrawals one by one.
 * After the mirror's own session is lost and back, the owners it knows
 * come from the new snapshot: an owner that ends later, one that was
 * there before the reconnect included, goes exactly.
 */
static void
test_mirror_owner_gone(void **state)
{
	struct ispd_proc	 d;
	struct isp_options	 o;
	struct gone_told	 t;
	struct gone_wait	 w;
	struct evlog		 l;
	isp_client		*mc, *ls, *p, *q, *c[2];
	isp_mirror		*m;
	long long		 ev0, wd0;

	memset(&t, 0, sizeof(t));
	memset(&l, 0, sizeof(l));
	ispd_start(&d, NULL);
	isp_options_init(&o);
	o.server = d.addr;
	o.name = "mirror";
	o.reconnect = 1;
	o.backoff_min_ms = 20;
	o.backoff_max_ms = 100;
	assert_non_null(mc = isp_new(&o));
	assert_int_equal(isp_connect(mc), ISP_OK);
	assert_non_null(m = isp_mirror_new(mc, T, NULL, 0, gone_cb, &t));
	ls = client_new(&d, "legacy");
	assert_int_equal(isp_subscribe(ls, T, NULL, 0, 0, evlog_cb, &l),
	    ISP_OK);
	p = client_new(&d, "pub");
	q = client_new(&d, "other");
	announce_n(p, "p", 500);
	announce_n(q, "q", 5);
	c[0] = mc;
	c[1] = ls;
	w = (struct gone_wait){ m, 505, &l, 0, NULL };
	assert_true(pump(c, 2, gone_reached, &w, 10000));
	ev0 = stat_counter(ls, "owner_gone_events");
	wd0 = stat_counter(ls, "owner_gone_withdrawals");

	isp_free(p);
	w = (struct gone_wait){ m, 5, &l, 500, NULL };
	assert_true(pump(c, 2, gone_reached, &w, 10000));
	assert_int_equal(t.withdrawn, 500);
	assert_int_equal(t.not_session, 0);
	assert_int_equal(stat_counter(ls, "owner_gone_events") - ev0, 1);
	assert_int_equal(stat_counter(ls, "owner_gone_withdrawals") - wd0,
	    500);

	/* The mirror's session ends; it comes back and syncs again. */
	assert_int_equal(isp_kick(ls, isp_session_id(mc), NULL, NULL, 5000),
	    ISP_OK);
	w = (struct gone_wait){ m, 5, NULL, 0, &t };
	assert_true(pump(c, 2, gone_reached, &w, 10000));
	p = client_new(&d, "pub2");
	announce_n(p, "r", 300);
	w = (struct gone_wait){ m, 305, NULL, 0, NULL };
	assert_true(pump(c, 2, gone_reached, &w, 10000));
	isp_free(p);
	w = (struct gone_wait){ m, 5, NULL, 0, NULL };
	assert_true(pump(c, 2, gone_reached, &w, 10000));
	isp_free(q);
	w = (struct gone_wait){ m, 0, &l, 805, NULL };
	assert_true(pump(c, 2, gone_reached, &w, 10000));
	assert_int_equal(t.withdrawn, 805);
	assert_int_equal(t.not_session, 0);
	assert_int_equal(stat_counter(ls, "owner_gone_events") - ev0, 3);
	assert_int_equal(stat_counter(ls, "owner_gone_withdrawals") - wd0,
	    805);

	isp_mirror_free(m);
	isp_free(mc);
	isp_free(ls);
	evlog_free(&l);
	assert_int_equal(ispd_stop(&d), 0);
}


/* A mirror's application frees the mirror from on_change, amid the
 * withdrawals of one EV_OWNER_GONE. */
struct gone_free {
	isp_mirror	*m;
	size_t		 withdrawn;
	size_t		 announced;
};

static void
gone_free_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct gone_free	*g = arg;

	if (ev->type == ISP_EV_ANNOUNCE)
		g->announced++;
	if (ev->type == ISP_EV_WITHDRAW && ++g->withdrawn == 10)
		isp_mirror_free(g->m);
}

static int
gone_free_loaded(void *arg)
{
	return ((struct gone_free *)arg)->announced == 300;
}

static int
gone_free_done(void *arg)
{
	return ((struct gone_free *)arg)->withdrawn >= 10;
}

/*
 * isp_mirror_free() from on_change while the mirror withdraws an ended
 * owner's records in batches: no callback after it, nothing touched
 * after the free (the sanitizer build would see it), and the client
 * goes on.
 */
static void
test_mirror_freed_in_owner_gone(void **state)
{
	struct ispd_proc	 d;
	struct gone_free	 g;
	isp_client		*mc, *p;

	memset(&g, 0, sizeof(g));
	ispd_start(&d, NULL);
	mc = client_new(&d, "mirror");
	assert_non_null(g.m = isp_mirror_new(mc, T, NULL, 0, gone_free_cb,
	    &g));
	p = client_new(&d, "pub");
	announce_n(p, "p", 300);
	assert_true(pump(&mc, 1, gone_free_loaded, &g, 10000));
	isp_free(p);
	assert_true(pump(&mc, 1, gone_free_done, &g, 10000));
	pump_for(&mc, 1, 200);
	assert_int_equal(g.withdrawn, 10);
	assert_int_equal(isp_sync(mc, 5000), ISP_OK);
	assert_true(stat_counter(mc, "owner_gone_events") >= 1);
	isp_free(mc);
	assert_int_equal(ispd_stop(&d), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_announce_replace_refresh),
		cmocka_unit_test(test_withdraw_owner_only),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_snapshot_prefix_order),
		cmocka_unit_test(test_limits_answered),
		cmocka_unit_test(test_session_close_keeps_replaced),
		cmocka_unit_test(test_session_reset),
		cmocka_unit_test(test_session_killed),
		cmocka_unit_test(test_session_hold_expired),
		cmocka_unit_test(test_busy_publisher_keeps_session),
		cmocka_unit_test(test_publisher_ahead_keeps_session),
		cmocka_unit_test(test_sessions_table),
		cmocka_unit_test(test_mirror_owner_gone),
		cmocka_unit_test(test_mirror_freed_in_owner_gone),
		cmocka_unit_test(test_200k_snapshot_and_kill),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("contract", tests, NULL, NULL);
}
