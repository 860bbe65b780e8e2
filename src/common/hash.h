/*
 * hash: an intrusive chained hash table keyed by byte strings, used for
 * the daemon's tables and records and for the library's mirrors.
 *
 * The caller embeds a struct hash_node in its object and keeps the key
 * in the object; lookups compare keys through a callback. Growth doubles
 * the slot array when the load passes 1, so a lookup is O(1) on average.
 */
#ifndef ISP_HASH_H
#define ISP_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hash_node {
	struct hash_node	*next;
	uint64_t		 hv;
};

struct hash {
	struct hash_node	**slots;
	size_t			  nslots;	/* 0 or a power of two */
	size_t			  count;
};

/* Returns 1 when node's key equals (key, len). */
typedef int hash_eq_fn(const struct hash_node *, const void *key, size_t len);

uint64_t	 hash_bytes(const void *, size_t);
void		 hash_init(struct hash *);
/* Frees the slot array only; the nodes belong to the caller. */
void		 hash_free(struct hash *);
struct hash_node *hash_find(const struct hash *, uint64_t hv, const void *key,
		    size_t len, hash_eq_fn *);
/* Inserts a node whose key is not present yet. Returns 0, or -1 when the
 * table could not grow and was left as it was. */
int		 hash_insert(struct hash *, struct hash_node *, uint64_t hv);
void		 hash_remove(struct hash *, struct hash_node *);
/* nw takes old's place (and hash value); old is out of the table. */
void		 hash_replace(struct hash *, struct hash_node *old,
		    struct hash_node *nw);

/* Iteration: start with *pos = 0 and n = NULL; do not insert while
 * iterating. Removing the node just returned is allowed if the caller
 * fetched the next one first. */
struct hash_node *hash_next(const struct hash *, size_t *pos,
		    struct hash_node *n);

#endif
