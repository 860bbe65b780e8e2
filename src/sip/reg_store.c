/*
 * reg_store: the registrar's bindings. AORs live in a hash (the
 * project's intrusive one); each holds a short list of bindings (at most
 * max_contacts, ten by default, so a list beats a second hash). Every
 * binding sits in a binary min-heap by expiry, so reg_expire() costs
 * O(log n) per expired binding and nothing per live one.
 *
 * AORs come from the network, so their hash is seeded per process: a
 * phone cannot precompute names that land in one chain.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sipsvc.h"
#include "registrar.h"

static uint64_t	 store_seed;

static uint64_t
store_hash(const char *s, size_t len)
{
	uint64_t	 h;

	if (store_seed == 0 &&
	    getrandom(&store_seed, sizeof(store_seed), 0) !=
	    (ssize_t)sizeof(store_seed))
		store_seed = (uint64_t)(uintptr_t)&store_seed ^ 0x9e3779b97f4a7c15ULL;
	h = hash_bytes(s, len) ^ store_seed;
	/* A finaliser (murmur3's fmix64) spreads the seed over all bits. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static int
aor_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct aor_entry	*a = (const struct aor_entry *)n;

	return a->aor_len == len && memcmp(a->aor, key, len) == 0;
}

struct aor_entry *
store_aor_find(struct registrar *r, const char *aor, size_t len)
{
	return (struct aor_entry *)hash_find(&r->aors, store_hash(aor, len),
	    aor, len, aor_eq);
}

struct aor_entry *
store_aor_get(struct registrar *r, const char *aor, size_t len)
{
	struct aor_entry	*a;

	if ((a = store_aor_find(r, aor, len)) != NULL)
		return a;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	if ((a->aor = malloc(len + 1)) == NULL) {
		free(a);
		return NULL;
	}
	memcpy(a->aor, aor, len);
	a->aor[len] = '\0';
	a->aor_len = len;
	if (hash_insert(&r->aors, &a->node, store_hash(aor, len)) != 0) {
		free(a->aor);
		free(a);
		return NULL;
	}
	return a;
}

void
store_aor_maybe_free(struct registrar *r, struct aor_entry *a)
{
	if (a == NULL || a->bindings != NULL)
		return;
	hash_remove(&r->aors, &a->node);
	free(a->aor);
	free(a);
}

struct binding *
store_binding_find(struct aor_entry *a, const char *id)
{
	struct binding	*b;

	for (b = a->bindings; b != NULL; b = b->next)
		if (strcmp(b->id, id) == 0)
			return b;
	return NULL;
}

int
store_set(char **dst, const char *src)
{
	char	*p;

	if (src == NULL)
		src = "";
	if (*dst != NULL && strcmp(*dst, src) == 0)
		return 0;
	if ((p = strdup(src)) == NULL)
		return -1;
	free(*dst);
	*dst = p;
	return 0;
}

/* The heap. */

static void
heap_swap(struct registrar *r, size_t i, size_t j)
{
	struct binding	*t = r->heap[i];

	r->heap[i] = r->heap[j];
	r->heap[j] = t;
	r->heap[i]->heap_idx = i;
	r->heap[j]->heap_idx = j;
}

static void
heap_up(struct registrar *r, size_t i)
{
	while (i > 0 && r->heap[(i - 1) / 2]->expires_at >
	    r->heap[i]->expires_at) {
		heap_swap(r, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct registrar *r, size_t i)
{
	size_t	 l, m;

	for (;;) {
		l = 2 * i + 1;
		m = i;
		if (l < r->heap_len &&
		    r->heap[l]->expires_at < r->heap[m]->expires_at)
			m = l;
		if (l + 1 < r->heap_len &&
		    r->heap[l + 1]->expires_at < r->heap[m]->expires_at)
			m = l + 1;
		if (m == i)
			return;
		heap_swap(r, i, m);
		i = m;
	}
}

static int
heap_push(struct registrar *r, struct binding *b)
{
	struct binding	**h;
	size_t		  cap;

	if (r->heap_len == r->heap_cap) {
		cap = r->heap_cap ? r->heap_cap * 2 : 64;
		if ((h = realloc(r->heap, cap * sizeof(*h))) == NULL)
			return -1;
		r->heap = h;
		r->heap_cap = cap;
	}
	b->heap_idx = r->heap_len;
	r->heap[r->heap_len++] = b;
	heap_up(r, b->heap_idx);
	return 0;
}

static void
heap_remove(struct registrar *r, struct binding *b)
{
	size_t	 i = b->heap_idx;

	if (i >= r->heap_len || r->heap[i] != b)
		return;
	r->heap_len--;
	if (i != r->heap_len) {
		r->heap[i] = r->heap[r->heap_len];
		r->heap[i]->heap_idx = i;
		heap_down(r, i);
		heap_up(r, i);
	}
	b->heap_idx = (size_t)-1;
}

void
store_binding_rescheduled(struct registrar *r, struct binding *b)
{
	heap_down(r, b->heap_idx);
	heap_up(r, b->heap_idx);
}

struct binding *
store_next_expiry(struct registrar *r)
{
	return r->heap_len > 0 ? r->heap[0] : NULL;
}

/* Bindings. */

struct binding *
store_binding_new(struct registrar *r, struct aor_entry *a, const char *id)
{
	struct binding	*b;
	char		 key[SIP_KEY_MAX + 1];
	int		 n;

	if ((n = aor_key(a->aor, id, key, sizeof(key))) < 0)
		return NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->aor = a;
	b->key_len = (size_t)n;
	if ((b->key = strdup(key)) == NULL || (b->id = strdup(id)) == NULL ||
	    heap_push(r, b) != 0) {
		free(b->key);
		free(b->id);
		free(b);
		return NULL;
	}
	b->next = a->bindings;
	a->bindings = b;
	a->nbindings++;
	r->nbindings++;
	return b;
}

void
store_binding_free(struct registrar *r, struct binding *b)
{
	struct binding	**pp;

	for (pp = &b->aor->bindings; *pp != NULL; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	b->aor->nbindings--;
	r->nbindings--;
	heap_remove(r, b);
	free(b->key);
	free(b->id);
	free(b->contact);
	free(b->contact_hdr);
	free(b->q);
	free(b->received);
	free(b->transport);
	free(b->path);
	free(b->instance);
	free(b->reg_id);
	free(b->user_agent);
	free(b->call_id);
	free(b);
}

void
store_free_all(struct registrar *r)
{
	struct hash_node	*n, *next;
	struct aor_entry	*a;
	size_t			 pos = 0;

	for (n = hash_next(&r->aors, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&r->aors, &pos, n);
		a = (struct aor_entry *)n;
		while (a->bindings != NULL)
			store_binding_free(r, a->bindings);
		hash_remove(&r->aors, n);
		free(a->aor);
		free(a);
	}
	hash_free(&r->aors);
	free(r->heap);
	r->heap = NULL;
	r->heap_len = r->heap_cap = 0;
}
