/*
 * ttl: one binary min-heap of every record that has a TTL. Each entry
 * holds its own sort key beside the record, so sifting compares keys in
 * the array without touching the records, and each record keeps its
 * index in the heap, so a removal is O(log n) without a search.
 *
 * A refresh (a SIP re-REGISTER, the common case) costs nothing here: it
 * only moves the record's expire_ms later, and the entry keeps its
 * earlier key. When that key comes due, ttl_expire() finds the record
 * not expired and re-pushes it at its real expiry: one sift per TTL
 * period at most, not one per refresh. So an entry's key is never later
 * than its record's expiry, and the head is never later than the
 * earliest expiry: the loop may wake early, never late.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "ispd.h"

/* Records expired or re-pushed per loop turn: a mass expiry (one
 * owner's million registrations timing out together) is cut into
 * slices so that the sessions' input is still served in between. */
#define TTL_EXPIRE_SLICE	10000

struct ttl_entry {
	uint64_t	 key;		/* <= rec->expire_ms */
	struct record	*rec;
};

static struct ttl_entry	 *ttl_heap;
static size_t		  ttl_n;
static size_t		  ttl_cap;

static void
ttl_place(size_t i, struct ttl_entry e)
{
	ttl_heap[i] = e;
	e.rec->ttl_idx = (uint32_t)i;
}

static void
ttl_up(size_t i)
{
	struct ttl_entry	 e = ttl_heap[i];
	size_t			 parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (ttl_heap[parent].key <= e.key)
			break;
		ttl_place(i, ttl_heap[parent]);
		i = parent;
	}
	ttl_place(i, e);
}

static void
ttl_down(size_t i)
{
	struct ttl_entry	 e = ttl_heap[i];
	size_t			 child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= ttl_n)
			break;
		if (child + 1 < ttl_n &&
		    ttl_heap[child + 1].key < ttl_heap[child].key)
			child++;
		if (e.key <= ttl_heap[child].key)
			break;
		ttl_place(i, ttl_heap[child]);
		i = child;
	}
	ttl_place(i, e);
}

/* Makes room for one more record, so that the caller can change a record
 * only once nothing can fail any more. Returns 0 or -1 (out of memory). */
int
ttl_reserve(void)
{
	struct ttl_entry	*heap;
	size_t		  cap;

	if (ttl_n < ttl_cap)
		return 0;
	/* Indexes are 32-bit, TTL_NONE the largest. */
	if (ttl_cap >= TTL_NONE / 2)
		return -1;
	cap = ttl_cap ? ttl_cap * 2 : 64;
	if ((heap = reallocarray(ttl_heap, cap, sizeof(*heap))) == NULL)
		return -1;
	ttl_heap = heap;
	ttl_cap = cap;
	return 0;
}

/* Sets or moves the record's expiry. A new entry needs ttl_reserve()
 * first; the heap having no room then is a bug. A later expiry leaves
 * the heap alone (see above); an earlier one moves the entry up. */
void
ttl_set(struct record *r, uint64_t expire_ms)
{
	struct ttl_entry	 e = { expire_ms, r };

	r->expire_ms = expire_ms;
	if (r->ttl_idx == TTL_NONE) {
		if (ttl_n >= ttl_cap)
			fatalx("ttl_set: heap full, ttl_reserve() not called");
		ttl_place(ttl_n++, e);
		ttl_up(r->ttl_idx);
	} else if (expire_ms < ttl_heap[r->ttl_idx].key) {
		ttl_heap[r->ttl_idx].key = expire_ms;
		ttl_up(r->ttl_idx);
	}
}

/* The record at old is now at nw (table.c moved it): its heap entry
 * follows. */
void
ttl_moved(const struct record *old, struct record *nw)
{
	if (nw->ttl_idx == TTL_NONE)
		return;
	if (ttl_heap[nw->ttl_idx].rec != old)
		fatalx("ttl_moved: record not at its heap index %" PRIu32,
		    nw->ttl_idx);
	ttl_heap[nw->ttl_idx].rec = nw;
}

void
ttl_clear(struct record *r)
{
	size_t			 i = r->ttl_idx;
	struct ttl_entry	 last;

	if (i == TTL_NONE)
		return;
	if (i >= ttl_n || ttl_heap[i].rec != r)
		fatalx("ttl_clear: record not at its heap index %zu", i);
	r->ttl_idx = TTL_NONE;
	r->expire_ms = 0;
	last = ttl_heap[--ttl_n];
	if (i == ttl_n)
		return;
	ttl_place(i, last);
	if (i > 0 && ttl_heap[(i - 1) / 2].key > last.key)
		ttl_up(i);
	else
		ttl_down(i);
}

/* When the head is due: the earliest expiry, or earlier when refreshes
 * moved the head's record later (ttl_expire() then re-pushes it);
 * UINT64_MAX when no record has a TTL. */
uint64_t
ttl_next_ms(void)
{
	return ttl_n > 0 ? ttl_heap[0].key : UINT64_MAX;
}

/* Withdraws the records expired at now_ms, and re-pushes at their real
 * expiry the refreshed ones whose keys came due; at most a slice of
 * both. Returns how many records it withdrew. */
int
ttl_expire(uint64_t now_ms)
{
	struct record	*r;
	int		 n = 0, moved = 0;

	while (ttl_n > 0 && ttl_heap[0].key <= now_ms &&
	    n + moved < TTL_EXPIRE_SLICE) {
		r = ttl_heap[0].rec;
		if (r->expire_ms > now_ms) {
			ttl_heap[0].key = r->expire_ms;
			ttl_down(0);
			moved++;
			continue;
		}
		table_expire(r);
		n++;
	}
	return n;
}

void
ttl_free(void)
{
	free(ttl_heap);
	ttl_heap = NULL;
	ttl_n = ttl_cap = 0;
}
