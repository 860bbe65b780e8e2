/*
 * gone: the end of an owner told as one event per subscription.
 *
 * When a session ends (or a held set's grace is over), table.c
 * withdraws its records in slices, one EV_WITHDRAW per record and
 * subscriber. A subscription made with PROTO_SUB_OWNER_GONE is instead
 * sent one EV_OWNER_GONE per owner that ends ("every record of session
 * N you hold is gone, M of them"), and then none of those withdrawals.
 * A mirror drops them in one walk (libisp keeps its records by owner).
 *
 * The frame is only exact for a subscriber that holds exactly the table
 * at that moment: one that is live (feed_live(): its snapshot over, no
 * key owed, its queue under the bound). So at the end of an owner,
 * gone_tell() walks the owner's records once, counts for each live
 * subscription with the flag how many it holds, queues the frame to
 * each that holds some, and keeps on the owner the serials of the
 * subscriptions it told (sorted: a withdrawal asks gone_told(), a
 * binary search). Subscriptions in their snapshot or behind get the
 * per-record withdrawals as always: feed.c orders them with the keys
 * they are owed.
 *
 * What makes it safe while the records are still being withdrawn:
 * another session's ANNOUNCE of a key the ghost still owns is an
 * EV_ANNOUNCE to the subscriptions it told, which no longer hold the
 * key, and an EV_REPLACE to the others (subscr_event()); and a record
 * taken back silently after a graceful restart is an EV_REPLACE for
 * subscriptions with the flag (subscr_owner_moved()), so their copies
 * always name the owner the server has. The frame takes a seq of its
 * own in each table it is sent for: a table's seq only grows, as each
 * subscriber sees it.
 */
#include <stdlib.h>

#include "ispd.h"
#include "feed.h"

/* A table a walk met: its candidates are walk_subs[first..first+n). */
struct walk_table {
	struct table	*t;
	size_t		 first;
	size_t		 n;
};

/* A candidate, and how many of the owner's records it holds. */
struct walk_sub {
	struct subscr	*sub;
	uint64_t	 count;
};

/* What gone_tell() builds, kept between calls. */
static struct walk_table	*walk_tables;
static size_t			 walk_ntables, walk_tcap;
static struct walk_sub		*walk_subs;
static size_t			 walk_nsubs, walk_scap;
static uint64_t			 walk_serial;
static struct buf		 gone_buf;

static int
serial_cmp(const void *a, const void *b)
{
	uint64_t	 x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Room for one more element of an array of size sz; -1 when out of
 * memory. */
static int
grow(void **v, size_t n, size_t *cap, size_t sz)
{
	void	*nv;
	size_t	 ncap;

	if (n < *cap)
		return 0;
	ncap = *cap == 0 ? 8 : *cap * 2;
	if ((nv = reallocarray(*v, ncap, sz)) == NULL)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

/*
 * A table the walk meets for the first time: its live subscriptions
 * with the flag are its candidates, none counted yet. Its index in
 * walk_tables goes in t->gone_walk_idx. Out of memory it has none, and
 * its subscribers get the withdrawals.
 */
static void
walk_table(struct table *t)
{
	struct walk_table	*w;
	struct subscr		*sub;

	t->gone_walk = walk_serial;
	t->gone_walk_idx = SIZE_MAX;
	if (grow((void **)&walk_tables, walk_ntables, &walk_tcap,
	    sizeof(*walk_tables)) == -1)
		return;
	w = &walk_tables[walk_ntables];
	w->t = t;
	w->first = walk_nsubs;
	w->n = 0;
	TAILQ_FOREACH(sub, &t->subs, table_entry) {
		if (!sub->owner_gone || sub->session->state != SESSION_READY ||
		    !feed_live(sub))
			continue;
		if (grow((void **)&walk_subs, walk_nsubs, &walk_scap,
		    sizeof(*walk_subs)) == -1) {
			walk_nsubs = w->first;
			return;
		}
		walk_subs[walk_nsubs].sub = sub;
		walk_subs[walk_nsubs++].count = 0;
		w->n++;
	}
	t->gone_walk_idx = walk_ntables++;
}

/* Queues EV_OWNER_GONE to each candidate of w that holds records of o,
 * and keeps its serial on o. */
static void
tell_table(const struct walk_table *w, struct owner *o)
{
	struct table		*t = w->t;
	const struct walk_sub	*ws;
	size_t			 i;
	int			 seq_taken = 0;

	for (i = w->first; i < w->first + w->n; i++) {
		ws = &walk_subs[i];
		if (ws->count == 0)
			continue;
		if (!seq_taken) {
			t->seq++;
			ispd_stats.events++;
			seq_taken = 1;
		}
		gone_buf.len = 0;
		buf_clear_failed(&gone_buf);
		proto_put_ev_owner_gone(&gone_buf,
		    proto_bytes(t->name, t->name_len), t->seq, o->id,
		    proto_bytes(o->name, o->name_len), o->ghost_reason,
		    ws->count);
		/* On failure the session is closing: nothing more is sent
		 * to it, so counting it as told changes nothing. */
		if (session_send(ws->sub->session, &gone_buf, 1) == 0)
			ispd_stats.owner_gone_events++;
		o->told[o->ntold++] = ws->sub->serial;
	}
}

/*
 * o has ended (o->ghost is set, o->ghost_reason says why) and still owns
 * records: tells every live subscription with the flag that holds some
 * of them, by one frame, before table.c withdraws the first. Costs one
 * walk over o's records, in this loop turn, when some table of them has
 * a subscription with the flag (and for each record, its table's live
 * ones), and nothing otherwise. Out of memory, nobody is told: every
 * subscriber gets the withdrawals.
 */
void
gone_tell(struct owner *o)
{
	const struct walk_table	*w;
	struct walk_sub		*ws;
	struct record		*r;
	struct table		*t;
	size_t			 i, n = 0;

	walk_serial++;
	walk_ntables = walk_nsubs = 0;
	TAILQ_FOREACH(r, &o->owned, owned) {
		t = r->table;
		if (t->ngone_subs == 0)
			continue;
		if (t->gone_walk != walk_serial)
			walk_table(t);
		if (t->gone_walk_idx == SIZE_MAX)
			continue;
		w = &walk_tables[t->gone_walk_idx];
		for (i = w->first; i < w->first + w->n; i++) {
			ws = &walk_subs[i];
			if (ws->sub->prefix_len == 0 || subscr_match(ws->sub, r))
				ws->count++;
		}
	}
	for (i = 0; i < walk_nsubs; i++)
		n += walk_subs[i].count > 0;
	if (n == 0 || (o->told = calloc(n, sizeof(*o->told))) == NULL)
		return;
	for (i = 0; i < walk_ntables; i++)
		tell_table(&walk_tables[i], o);
	qsort(o->told, o->ntold, sizeof(*o->told), serial_cmp);
}

/* 1 when sub was told of the end of o, an ended owner (subscr_event()
 * asks only of one that told some). */
int
gone_told(const struct subscr *sub, const struct owner *o)
{
	return bsearch(&sub->serial, o->told, o->ntold, sizeof(*o->told),
	    serial_cmp) != NULL;
}

/* o's records are all withdrawn. */
void
gone_done(struct owner *o)
{
	free(o->told);
	o->told = NULL;
	o->ntold = 0;
}

/* At exit. */
void
gone_free(void)
{
	free(walk_tables);
	free(walk_subs);
	walk_tables = NULL;
	walk_subs = NULL;
	walk_ntables = walk_tcap = walk_nsubs = walk_scap = 0;
	buf_free(&gone_buf);
}
