/*
 * ttl: one binary min-heap of every record that has a TTL, ordered by
 * expiry. Each record keeps its index in the heap, so a refresh (a SIP
 * re-REGISTER, the common case) or a removal is O(log n) without a
 * search, and the loop finds the next expiry at the head in O(1).
 */
#include <stdlib.h>

#include "ispd.h"

/* Records expired per loop turn: a mass expiry (one owner's million
 * registrations timing out together) is cut into slices so that the
 * sessions' input is still served in between. */
#define TTL_EXPIRE_SLICE	10000

static struct record	**ttl_heap;
static size_t		  ttl_n;
static size_t		  ttl_cap;

static void
ttl_place(size_t i, struct record *r)
{
	ttl_heap[i] = r;
	r->ttl_idx = i;
}

static void
ttl_up(size_t i)
{
	struct record	*r = ttl_heap[i];
	size_t		 parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (ttl_heap[parent]->expire_ms <= r->expire_ms)
			break;
		ttl_place(i, ttl_heap[parent]);
		i = parent;
	}
	ttl_place(i, r);
}

static void
ttl_down(size_t i)
{
	struct record	*r = ttl_heap[i];
	size_t		 child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= ttl_n)
			break;
		if (child + 1 < ttl_n &&
		    ttl_heap[child + 1]->expire_ms < ttl_heap[child]->expire_ms)
			child++;
		if (r->expire_ms <= ttl_heap[child]->expire_ms)
			break;
		ttl_place(i, ttl_heap[child]);
		i = child;
	}
	ttl_place(i, r);
}

/* Makes room for one more record, so that the caller can change a record
 * only once nothing can fail any more. Returns 0 or -1 (out of memory). */
int
ttl_reserve(void)
{
	struct record	**heap;
	size_t		  cap;

	if (ttl_n < ttl_cap)
		return 0;
	cap = ttl_cap ? ttl_cap * 2 : 64;
	if ((heap = reallocarray(ttl_heap, cap, sizeof(*heap))) == NULL)
		return -1;
	ttl_heap = heap;
	ttl_cap = cap;
	return 0;
}

/* Sets or moves the record's expiry. A new entry needs ttl_reserve()
 * first; the heap having no room then is a bug. */
void
ttl_set(struct record *r, uint64_t expire_ms)
{
	uint64_t	 old = r->expire_ms;

	r->expire_ms = expire_ms;
	if (r->ttl_idx == TTL_NONE) {
		if (ttl_n >= ttl_cap)
			fatalx("ttl_set: heap full, ttl_reserve() not called");
		ttl_place(ttl_n++, r);
		ttl_up(r->ttl_idx);
	} else if (expire_ms < old)
		ttl_up(r->ttl_idx);
	else
		ttl_down(r->ttl_idx);
}

void
ttl_clear(struct record *r)
{
	size_t		 i = r->ttl_idx;
	struct record	*last;

	if (i == TTL_NONE)
		return;
	if (i >= ttl_n || ttl_heap[i] != r)
		fatalx("ttl_clear: record not at its heap index %zu", i);
	r->ttl_idx = TTL_NONE;
	r->expire_ms = 0;
	last = ttl_heap[--ttl_n];
	if (i == ttl_n)
		return;
	ttl_place(i, last);
	if (i > 0 && ttl_heap[(i - 1) / 2]->expire_ms > last->expire_ms)
		ttl_up(i);
	else
		ttl_down(i);
}

/* The earliest expiry, or UINT64_MAX when no record has a TTL. */
uint64_t
ttl_next_ms(void)
{
	return ttl_n > 0 ? ttl_heap[0]->expire_ms : UINT64_MAX;
}

/* Withdraws the records expired at now_ms, at most a slice of them.
 * Returns how many. */
int
ttl_expire(uint64_t now_ms)
{
	int	 n = 0;

	while (ttl_n > 0 && ttl_heap[0]->expire_ms <= now_ms &&
	    n < TTL_EXPIRE_SLICE) {
		table_expire(ttl_heap[0]);
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
