/*
 * The merge rule of a mirror fed by several servers (docs/HA.md), on a
 * mirror without a client: events are applied per server with
 * mirror_apply_from(), sessions are lost with mirror_server_lost(), and
 * time is given explicitly, so every line of the rule is checked
 * without a network or a clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "isp.h"
#include "lib.h"

#define A	0		/* server indexes */
#define B	1
#define GRACE	1000

/* What on_change was told, in order. */
struct told {
	int		 n;
	int		 type[64];
	char		 key[64][32];
	char		 value[64][32];	/* field "c" */
	char		 owner[64][32];
	int		 reason[64];
	uint64_t	 count[64];
	int		 snapshot[64];
	const char	*server[64];
};

static void
on_change(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct told	*t = arg;
	int		 k = t->n++;

	assert_true(k < 64);
	t->type[k] = ev->type;
	t->reason[k] = ev->reason;
	t->count[k] = ev->count;
	t->snapshot[k] = ev->snapshot;
	t->server[k] = ev->server;
	t->key[k][0] = t->value[k][0] = t->owner[k][0] = '\0';
	if (ev->type >= ISP_EV_ANNOUNCE && ev->type <= ISP_EV_WITHDRAW) {
		snprintf(t->key[k], sizeof(t->key[k]), "%.*s",
		    (int)ev->rec.key_len, (const char *)ev->rec.key);
		snprintf(t->owner[k], sizeof(t->owner[k]), "%s",
		    ev->rec.owner);
		if (ev->rec.nfields > 0)
			snprintf(t->value[k], sizeof(t->value[k]), "%s",
			    (const char *)ev->rec.fields[0].value);
	}
}

static struct isp_mirror *
merged(struct told *t)
{
	struct isp_mirror	*m;

	memset(t, 0, sizeof(*t));
	m = mirror_create("T", NULL, 0, on_change, t);
	assert_non_null(m);
	m->ext_events = 1;
	m->grace_ms = GRACE;
	return m;
}

static const char *srvname[] = { "A:1", "B:1" };

/* Server s says key has c=value, owned by owner (session sess). */
static void
put(struct isp_mirror *m, unsigned s, const char *key, const char *value,
    const char *owner, uint64_t sess, uint64_t now)
{
	struct isp_field	 f = { "c", value, strlen(value) };
	struct isp_event	 ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = ISP_EV_ANNOUNCE;
	ev.table = "T";
	ev.rec.key = key;
	ev.rec.key_len = strlen(key);
	ev.rec.fields = &f;
	ev.rec.nfields = 1;
	ev.rec.owner = owner;
	ev.rec.owner_session = sess;
	ev.server = srvname[s];
	ev.server_index = s;
	assert_int_equal(mirror_apply_from(m, s, &ev, now), ISP_OK);
}

static void
del(struct isp_mirror *m, unsigned s, const char *key, int reason,
    uint64_t now)
{
	struct isp_event	 ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = ISP_EV_WITHDRAW;
	ev.table = "T";
	ev.rec.key = key;
	ev.rec.key_len = strlen(key);
	ev.rec.owner = "";
	ev.reason = reason;
	ev.server = srvname[s];
	assert_int_equal(mirror_apply_from(m, s, &ev, now), ISP_OK);
}

static void
end(struct isp_mirror *m, unsigned s, uint64_t now)
{
	struct isp_event	 ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = ISP_EV_END;
	ev.table = "T";
	ev.server = srvname[s];
	assert_int_equal(mirror_apply_from(m, s, &ev, now), ISP_OK);
}

/* The value of key's field c as the mirror shows it, "-" when absent,
 * with a trailing "*" when stale. */
static const char *
shown(struct isp_mirror *m, const char *key)
{
	static char		 out[64];
	struct isp_record	*r;

	if ((r = isp_mirror_get(m, key, strlen(key))) == NULL)
		return "-";
	snprintf(out, sizeof(out), "%s%s", (const char *)r->fields[0].value,
	    isp_record_stale(r) ? "*" : "");
	isp_record_free(r);
	return out;
}

/* Two servers saying the same thing: one record, told once. */
static void
test_agreeing_servers(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);

	put(m, A, "k", "1", "bgw", 10, 0);
	end(m, A, 0);
	put(m, B, "k", "1", "bgw", 77, 0);	/* its own session id */
	end(m, B, 0);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.type[0], ISP_EV_ANNOUNCE);
	assert_int_equal(t.snapshot[0], 1);
	assert_int_equal(t.type[1], ISP_EV_END);
	assert_int_equal(t.count[1], 1);
	assert_int_equal(isp_mirror_count(m), 1);

	/* A withdraws: B still holds it, nothing changes. */
	del(m, A, "k", ISP_WD_SESSION, 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(shown(m, "k"), "1");
	/* B withdraws too: gone everywhere it was seen, told once. */
	del(m, B, "k", ISP_WD_OWNER, 0);
	assert_int_equal(t.n, 3);
	assert_int_equal(t.type[2], ISP_EV_WITHDRAW);
	assert_int_equal(t.reason[2], ISP_WD_OWNER);
	assert_string_equal(t.server[2], "B:1");
	assert_int_equal(isp_mirror_count(m), 0);
	mirror_destroy(m);
}

/* Disagreement: the value received last is shown; when its holder
 * withdraws, the other server's value comes back as one REPLACE. */
static void
test_latest_value_wins(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);

	put(m, A, "k", "x", "bgw-1", 1, 0);
	put(m, B, "k", "y", "bgw-2", 2, 0);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.type[1], ISP_EV_REPLACE);
	assert_string_equal(t.value[1], "y");
	assert_string_equal(shown(m, "k"), "y");

	/* A re-announces x: now x is the latest. */
	put(m, A, "k", "x", "bgw-1", 1, 0);
	assert_int_equal(t.n, 3);
	assert_string_equal(t.value[2], "x");

	/* A withdraws x: B's y is what is left. */
	del(m, A, "k", ISP_WD_OWNER, 0);
	assert_int_equal(t.n, 4);
	assert_int_equal(t.type[3], ISP_EV_REPLACE);
	assert_string_equal(t.value[3], "y");
	assert_string_equal(t.owner[3], "bgw-2");

	/* B moves to A's value: no change of the view. */
	put(m, A, "k", "y", "bgw-2", 5, 0);
	assert_int_equal(t.n, 4);
	mirror_destroy(m);
}

/* A change of owner_session alone (a publisher that reconnected) is
 * applied silently; a change of the owner's name is told. */
static void
test_owner_session_silent(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);
	struct isp_record	*r;

	put(m, A, "k", "1", "bgw", 10, 0);
	put(m, A, "k", "1", "bgw", 11, 0);
	assert_int_equal(t.n, 1);
	r = isp_mirror_get(m, "k", 1);
	assert_non_null(r);
	assert_true(r->owner_session == 11);
	isp_record_free(r);
	put(m, A, "k", "1", "bgw-2", 12, 0);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.type[1], ISP_EV_REPLACE);
	mirror_destroy(m);
}

/* A drained server (GOING_DOWN, another server up) is lost quietly:
 * nothing said while every key it held has another confirmed holder,
 * and no FRESH when it is back; a key only it held still turns stale,
 * and then STALE is said. */
static void
test_drained_server_quiet(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);

	put(m, A, "both", "1", "bgw", 1, 0);
	put(m, B, "both", "1", "bgw", 1, 0);
	end(m, A, 0);
	end(m, B, 0);
	assert_int_equal(t.n, 2);		/* ANNOUNCE, END */

	mirror_server_lost(m, A, 100, 1);
	assert_int_equal(t.n, 2);
	assert_int_equal(isp_mirror_stale_count(m), 0);
	end(m, A, 200);
	assert_int_equal(t.n, 2);

	put(m, A, "only-a", "2", "bgw", 1, 300);
	assert_int_equal(t.n, 3);
	mirror_server_lost(m, A, 400, 1);
	assert_int_equal(t.n, 4);
	assert_int_equal(t.type[3], ISP_EV_STALE);
	assert_int_equal(t.count[3], 1);
	end(m, A, 500);
	assert_int_equal(t.n, 5);
	assert_int_equal(t.type[4], ISP_EV_FRESH);
	mirror_destroy(m);
}

/* The only server is lost: records stay, stale, readable; after the
 * reconnect they are confirmed silently (or with one REPLACE when they
 * changed), and what nobody announced again is swept after the grace
 * time. */
static void
test_graceful_restart(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);

	put(m, A, "same", "1", "bgw", 1, 0);
	put(m, A, "changed", "1", "bgw", 1, 0);
	put(m, A, "gone", "1", "bgw", 1, 0);
	end(m, A, 0);
	assert_int_equal(t.n, 4);

	mirror_server_lost(m, A, 100, 0);
	assert_int_equal(t.n, 5);
	assert_int_equal(t.type[4], ISP_EV_STALE);
	assert_int_equal(t.count[4], 3);
	assert_int_equal(isp_mirror_stale_count(m), 3);
	assert_int_equal(isp_mirror_count(m), 3);
	assert_string_equal(shown(m, "same"), "1*");
	assert_int_equal(mirror_sweep_due_ms(m, 100), GRACE);

	/* A is back, restarted and empty: its snapshot ends before the
	 * publishers replayed. Nothing is withdrawn at END. */
	end(m, A, 300);
	assert_int_equal(t.n, 6);
	assert_int_equal(t.type[5], ISP_EV_FRESH);
	assert_int_equal(t.count[5], 3);
	assert_int_equal(isp_mirror_count(m), 3);

	/* The publisher replays: same fields are confirmed silently,
	 * changed ones are one REPLACE. */
	put(m, A, "same", "1", "bgw", 9, 400);
	assert_int_equal(t.n, 6);
	assert_string_equal(shown(m, "same"), "1");
	put(m, A, "changed", "2", "bgw", 9, 400);
	assert_int_equal(t.n, 7);
	assert_int_equal(t.type[6], ISP_EV_REPLACE);
	assert_string_equal(shown(m, "changed"), "2");
	assert_int_equal(isp_mirror_stale_count(m), 1);

	/* Not yet: the grace runs from when the record became stale. */
	mirror_sweep(m, 100 + GRACE - 1);
	assert_int_equal(t.n, 7);
	mirror_sweep(m, 100 + GRACE);
	assert_int_equal(t.n, 9);
	assert_int_equal(t.type[7], ISP_EV_WITHDRAW);
	assert_string_equal(t.key[7], "gone");
	assert_int_equal(t.reason[7], ISP_WD_STALE);
	assert_null(t.server[7]);
	assert_int_equal(t.type[8], ISP_EV_FRESH);	/* all clear */
	assert_int_equal(t.count[8], 0);
	assert_int_equal(isp_mirror_stale_count(m), 0);
	assert_int_equal(mirror_sweep_due_ms(m, 5000), -1);
	mirror_destroy(m);
}

/* Two servers, one lost: nothing held by the other turns stale, and a
 * live server's withdraw is not held back by the lost one's memory. */
static void
test_one_server_lost(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);
	struct isp_record	*r;

	put(m, A, "both", "1", "bgw", 1, 0);
	put(m, B, "both", "1", "bgw", 1, 0);
	put(m, A, "onlyA", "1", "bgw", 1, 0);	/* publisher cut from B */
	put(m, A, "dies", "1", "bgw-9", 1, 0);
	put(m, B, "dies", "1", "bgw-9", 1, 0);
	end(m, A, 0);
	end(m, B, 0);
	t.n = 0;

	mirror_server_lost(m, A, 50, 0);
	assert_int_equal(t.n, 1);
	assert_int_equal(t.type[0], ISP_EV_STALE);
	assert_int_equal(t.count[0], 1);		/* onlyA */
	assert_string_equal(shown(m, "both"), "1");
	assert_string_equal(shown(m, "onlyA"), "1*");

	/* bgw-9 dies: B withdraws; A, which still had it, cannot answer.
	 * Withdrawn now, not after the grace time. */
	del(m, B, "dies", ISP_WD_SESSION, 60);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.type[1], ISP_EV_WITHDRAW);
	assert_int_equal(t.reason[1], ISP_WD_SESSION);

	/* A live change through B while A is away: one REPLACE. */
	put(m, B, "both", "2", "bgw", 1, 70);
	assert_int_equal(t.n, 3);
	assert_int_equal(t.type[2], ISP_EV_REPLACE);

	/* A comes back: its snapshot has the new value and onlyA. */
	put(m, A, "both", "2", "bgw", 3, 80);
	put(m, A, "onlyA", "1", "bgw", 3, 80);
	assert_int_equal(t.n, 4);
	assert_int_equal(t.type[3], ISP_EV_FRESH);	/* onlyA confirmed */
	end(m, A, 90);
	assert_int_equal(t.n, 5);
	assert_int_equal(t.type[4], ISP_EV_FRESH);
	assert_int_equal(t.count[4], 0);
	assert_int_equal(isp_mirror_count(m), 2);

	/* foreach sees the stale flag too. */
	mirror_server_lost(m, A, 100, 0);
	r = isp_mirror_get(m, "onlyA", 5);
	assert_true(isp_record_stale(r));
	isp_record_free(r);
	r = isp_mirror_get(m, "both", 4);
	assert_false(isp_record_stale(r));
	isp_record_free(r);
	mirror_destroy(m);
}

static int
count_stale(const struct isp_record *r, void *arg)
{
	*(int *)arg += isp_record_stale(r);
	return 0;
}

/* Both servers lost: everything stale; the first to come back
 * confirms what it has; a withdraw from it removes a stale key at once
 * even though the other (still lost) server had it. */
static void
test_both_lost(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);
	int			 n = 0;

	put(m, A, "k1", "1", "bgw", 1, 0);
	put(m, B, "k1", "1", "bgw", 1, 0);
	put(m, A, "k2", "1", "bgw", 1, 0);
	put(m, B, "k2", "1", "bgw", 1, 0);
	end(m, A, 0);
	end(m, B, 0);
	mirror_server_lost(m, A, 10, 0);
	mirror_server_lost(m, B, 20, 0);
	assert_int_equal(isp_mirror_stale_count(m), 2);
	assert_int_equal(isp_mirror_foreach(m, NULL, 0, count_stale, &n), 0);
	assert_int_equal(n, 2);
	t.n = 0;

	put(m, B, "k1", "1", "bgw", 5, 30);
	assert_int_equal(t.n, 0);
	assert_int_equal(isp_mirror_stale_count(m), 1);
	/* B said k2 exists (confirmed), then withdraws it: A's memory
	 * does not keep it. */
	put(m, B, "k2", "1", "bgw", 5, 30);
	del(m, B, "k2", ISP_WD_OWNER, 40);
	assert_int_equal(t.type[0], ISP_EV_FRESH);
	assert_int_equal(t.type[1], ISP_EV_WITHDRAW);
	assert_int_equal(isp_mirror_count(m), 1);
	mirror_destroy(m);
}

/* grace_ms < 0 keeps stale records until a server speaks; without the
 * extended events (a libisp 1.0 client) no STALE/FRESH is told. */
static void
test_options(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);

	m->grace_ms = -1;
	m->ext_events = 0;
	put(m, A, "k", "1", "bgw", 1, 0);
	end(m, A, 0);
	mirror_server_lost(m, A, 0, 0);
	mirror_sweep(m, 1000000000);
	assert_int_equal(isp_mirror_count(m), 1);
	assert_int_equal(mirror_sweep_due_ms(m, 0), -1);
	assert_int_equal(isp_mirror_stale_count(m), 1);
	end(m, A, 10);
	assert_int_equal(t.n, 2);		/* ANNOUNCE, END */
	/* Server indexes past the limit are refused. */
	{
		struct isp_event	 ev;

		memset(&ev, 0, sizeof(ev));
		ev.type = ISP_EV_END;
		assert_int_equal(mirror_apply_from(m, ISP_MAX_SERVERS, &ev,
		    0), ISP_E_INVALID);
	}
	mirror_destroy(m);
}

/* A stale key that is confirmed, lost again and swept: the grace
 * restarts from the second loss, and records stay ordered for the
 * sweep. */
static void
test_stale_order(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);

	put(m, A, "a", "1", "bgw", 1, 0);
	put(m, B, "b", "1", "bgw", 1, 0);
	end(m, A, 0);
	mirror_server_lost(m, A, 100, 0);		/* a stale since 100 */
	put(m, A, "a", "1", "bgw", 2, 200);	/* confirmed */
	mirror_server_lost(m, B, 300, 0);		/* b stale since 300 */
	mirror_server_lost(m, A, 400, 0);		/* a stale since 400 */
	t.n = 0;
	mirror_sweep(m, 300 + GRACE);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.key[0], "b");
	mirror_sweep(m, 400 + GRACE);
	assert_int_equal(t.n, 3);
	assert_string_equal(t.key[1], "a");
	assert_int_equal(t.type[2], ISP_EV_FRESH);
	mirror_destroy(m);
}

/*
 * EV_OWNER_GONE (mirror_owner_gone()): a server's "owner N is gone"
 * withdraws what that server said N owns, and nothing else: a key
 * another server still holds stays (by the merge rule, a withdrawal from
 * one of two), a key N no longer owns (taken over) stays, each key that
 * leaves is told as a withdrawal of the event's reason, and owner
 * numbers are per server. A lost session forgets that server's owners:
 * its next session's numbers may be new ones, and so does a
 * subscription the server ended.
 */
static void
test_owner_gone(void **state)
{
	struct told		 t;
	struct isp_mirror	*m = merged(&t);

	put(m, A, "k1", "x", "pub", 7, 0);
	put(m, A, "k2", "x", "pub", 7, 0);
	put(m, A, "k3", "x", "pub", 7, 0);
	put(m, A, "k4", "x", "other", 8, 0);
	put(m, B, "k1", "x", "pub", 3, 0);	/* B's number for pub */
	put(m, A, "k3", "y", "other", 8, 0);	/* taken over */
	assert_int_equal(mirror_owner_count(m, A, 7), 2);
	assert_int_equal(mirror_owner_count(m, B, 3), 1);
	assert_int_equal(mirror_owner_count(m, B, 7), 0);
	t.n = 0;

	/* Server B has no owner 7: nothing happens. */
	assert_int_equal(mirror_owner_gone(m, B, 7, ISP_WD_SESSION, 10,
	    "B:1", 0), 0);
	assert_int_equal(t.n, 0);
	/* A's 7 is gone: k2 leaves, k1 stays (B holds it), k3 and k4 are
	 * other's. */
	assert_int_equal(mirror_owner_gone(m, A, 7, ISP_WD_SESSION, 11,
	    "A:1", 0), 2);
	assert_int_equal(t.n, 1);
	assert_int_equal(t.type[0], ISP_EV_WITHDRAW);
	assert_string_equal(t.key[0], "k2");
	assert_int_equal(t.reason[0], ISP_WD_SESSION);
	assert_string_equal(t.server[0], "A:1");
	assert_string_equal(shown(m, "k1"), "x");
	assert_string_equal(shown(m, "k2"), "-");
	assert_string_equal(shown(m, "k3"), "y");
	assert_int_equal(isp_mirror_count(m), 3);
	assert_int_equal(mirror_owner_count(m, A, 7), 0);
	/* B's 3 is gone: k1 leaves. */
	assert_int_equal(mirror_owner_gone(m, B, 3, ISP_WD_HELD, 12, "B:1",
	    0), 1);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.key[1], "k1");
	assert_int_equal(t.reason[1], ISP_WD_HELD);
	assert_int_equal(isp_mirror_count(m), 2);

	/* A's session is lost: its owners go with it, its keys stay (stale)
	 * until its next session says who owns them. */
	mirror_server_lost(m, A, 20, 0);
	assert_int_equal(mirror_owner_count(m, A, 8), 0);
	assert_int_equal(mirror_owner_gone(m, A, 8, ISP_WD_SESSION, 13,
	    "A:1", 20), 0);
	assert_int_equal(isp_mirror_count(m), 2);
	put(m, A, "k3", "y", "other", 9, 30);
	put(m, A, "k4", "x", "other", 9, 30);
	assert_int_equal(mirror_owner_count(m, A, 9), 2);
	assert_int_equal(mirror_owner_gone(m, A, 9, ISP_WD_SESSION, 14,
	    "A:1", 40), 2);
	assert_int_equal(isp_mirror_count(m), 0);
	assert_int_equal(isp_mirror_stale_count(m), 0);

	/* A server that ended (or refused) the subscription: what it said
	 * about owners is forgotten, its keys stay. */
	put(m, A, "k5", "x", "pub", 10, 50);
	mirror_forget_owners(m, A);
	assert_int_equal(mirror_owner_count(m, A, 10), 0);
	assert_int_equal(mirror_owner_gone(m, A, 10, ISP_WD_SESSION, 15,
	    "A:1", 60), 0);
	assert_string_equal(shown(m, "k5"), "x");
	mirror_destroy(m);
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test(test_agreeing_servers),
		cmocka_unit_test(test_drained_server_quiet),
		cmocka_unit_test(test_latest_value_wins),
		cmocka_unit_test(test_owner_session_silent),
		cmocka_unit_test(test_graceful_restart),
		cmocka_unit_test(test_one_server_lost),
		cmocka_unit_test(test_both_lost),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_stale_order),
		cmocka_unit_test(test_owner_gone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
