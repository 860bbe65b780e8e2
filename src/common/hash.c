/*
 * hash: an intrusive chained hash table keyed by byte strings.
 */
#include <stdlib.h>

#include "hash.h"

/* FNV-1a, 64 bit: simple, and the keys are not chosen by an attacker who
 * sees the table (a session can only slow its own lookups). */
uint64_t
hash_bytes(const void *p, size_t len)
{
	const uint8_t	*s = p;
	uint64_t	 h = 0xcbf29ce484222325ULL;
	size_t		 i;

	for (i = 0; i < len; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

void
hash_init(struct hash *h)
{
	h->slots = NULL;
	h->nslots = 0;
	h->count = 0;
}

void
hash_free(struct hash *h)
{
	free(h->slots);
	hash_init(h);
}

struct hash_node *
hash_find(const struct hash *h, uint64_t hv, const void *key, size_t len,
    hash_eq_fn *eq)
{
	struct hash_node	*n;

	if (h->nslots == 0)
		return NULL;
	for (n = h->slots[hv & (h->nslots - 1)]; n != NULL; n = n->next)
		if (n->hv == hv && eq(n, key, len))
			return n;
	return NULL;
}

static int
hash_grow(struct hash *h)
{
	struct hash_node	**slots, *n, *next;
	size_t			  nslots, i;

	nslots = h->nslots ? h->nslots * 2 : 16;
	if ((slots = calloc(nslots, sizeof(*slots))) == NULL)
		return -1;
	for (i = 0; i < h->nslots; i++) {
		for (n = h->slots[i]; n != NULL; n = next) {
			next = n->next;
			n->next = slots[n->hv & (nslots - 1)];
			slots[n->hv & (nslots - 1)] = n;
		}
	}
	free(h->slots);
	h->slots = slots;
	h->nslots = nslots;
	return 0;
}

int
hash_insert(struct hash *h, struct hash_node *n, uint64_t hv)
{
	size_t	 i;

	if (h->count >= h->nslots && hash_grow(h) == -1 && h->nslots == 0)
		return -1;
	n->hv = hv;
	i = hv & (h->nslots - 1);
	n->next = h->slots[i];
	h->slots[i] = n;
	h->count++;
	return 0;
}

void
hash_remove(struct hash *h, struct hash_node *n)
{
	struct hash_node	**pp;

	for (pp = &h->slots[n->hv & (h->nslots - 1)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			h->count--;
			return;
		}
	}
}

void
hash_replace(struct hash *h, struct hash_node *old, struct hash_node *nw)
{
	struct hash_node	**pp;

	for (pp = &h->slots[old->hv & (h->nslots - 1)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == old) {
			nw->hv = old->hv;
			nw->next = old->next;
			*pp = nw;
			old->next = NULL;
			return;
		}
	}
}

struct hash_node *
hash_next(const struct hash *h, size_t *pos, struct hash_node *n)
{
	if (n != NULL && n->next != NULL)
		return n->next;
	if (n != NULL)
		(*pos)++;
	for (; *pos < h->nslots; (*pos)++)
		if (h->slots[*pos] != NULL)
			return h->slots[*pos];
	return NULL;
}
