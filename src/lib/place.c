/*
 * place: rendezvous hashing over the live instances of a role
 * (include/isp_place.h says why and specifies the weight).
 *
 * Only public libisp calls are used, so the file knows nothing of the
 * client's internals: the mirror is walked under its read lock by
 * isp_mirror_foreach(), the winner's id is kept, and its record is
 * fetched with isp_mirror_get(). If the winner is withdrawn between the
 * two (it just died), the walk is done again.
 */
#include <stdlib.h>
#include <string.h>

#include "isp_place.h"

#define PLACE_RETRIES	4

uint64_t
isp_place_weight(const void *instance, size_t instance_len,
    const void *account, size_t account_len)
{
	const unsigned char	*p;
	uint64_t		 h = 0xcbf29ce484222325ULL;
	size_t			 i;

	for (p = instance, i = 0; i < instance_len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h *= 0x100000001b3ULL;	/* the 0x00 separator (xor with 0 is a no-op) */
	for (p = account, i = 0; i < account_len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* 1 when (a, alen) sorts after (b, blen): the tie-break. */
static int
place_after(const void *a, size_t alen, const void *b, size_t blen)
{
	int	 c = memcmp(a, b, alen < blen ? alen : blen);

	return c > 0 || (c == 0 && alen > blen);
}

long
isp_place_pick(const char *const *ids, const size_t *lens, size_t n,
    const void *account, size_t account_len)
{
	uint64_t	 w, best_w = 0;
	size_t		 i, len, best_len = 0;
	long		 best = -1;

	if (ids == NULL || (account == NULL && account_len > 0))
		return -1;
	for (i = 0; i < n; i++) {
		len = lens != NULL ? lens[i] : strlen(ids[i]);
		w = isp_place_weight(ids[i], len, account, account_len);
		if (best < 0 || w > best_w || (w == best_w &&
		    place_after(ids[i], len, ids[best], best_len))) {
			best = (long)i;
			best_w = w;
			best_len = len;
		}
	}
	return best;
}

/* 1 when the record has a field name whose value is (value, len). */
static int
place_field_is(const struct isp_record *r, const char *name,
    const void *value, size_t len)
{
	size_t	 i;

	for (i = 0; i < r->nfields; i++)
		if (strcmp(r->fields[i].name, name) == 0)
			return r->fields[i].value_len == len &&
			    memcmp(r->fields[i].value, value, len) == 0;
	return 0;
}

struct place_walk {
	const char	*role;
	size_t		 role_len;
	const void	*account;
	size_t		 account_len;
	uint64_t	 best_w;
	void		*best;		/* copy of the winner's id */
	size_t		 best_len;
	int		 found;
	int		 nomem;
};

static int
place_visit(const struct isp_record *r, void *arg)
{
	struct place_walk	*pw = arg;
	uint64_t		 w;
	void			*copy;

	if (!place_field_is(r, "role", pw->role, pw->role_len) ||
	    place_field_is(r, "status", "draining", 8))
		return 0;
	w = isp_place_weight(r->key, r->key_len, pw->account,
	    pw->account_len);
	if (pw->found && (w < pw->best_w || (w == pw->best_w &&
	    !place_after(r->key, r->key_len, pw->best, pw->best_len))))
		return 0;
	if ((copy = malloc(r->key_len > 0 ? r->key_len : 1)) == NULL) {
		pw->nomem = 1;
		return 1;
	}
	memcpy(copy, r->key, r->key_len);
	free(pw->best);
	pw->best = copy;
	pw->best_len = r->key_len;
	pw->best_w = w;
	pw->found = 1;
	return 0;
}

int
isp_place(const isp_mirror *instances, const char *role, const void *account,
    size_t account_len, struct isp_record **out)
{
	struct place_walk	 pw;
	int			 try;

	if (out != NULL)
		*out = NULL;
	if (instances == NULL || role == NULL || out == NULL ||
	    (account == NULL && account_len > 0))
		return ISP_E_INVALID;
	if (!isp_mirror_ready(instances))
		return ISP_E_STATE;
	for (try = 0; try < PLACE_RETRIES; try++) {
		memset(&pw, 0, sizeof(pw));
		pw.role = role;
		pw.role_len = strlen(role);
		pw.account = account;
		pw.account_len = account_len;
		(void)isp_mirror_foreach(instances, NULL, 0, place_visit, &pw);
		if (pw.nomem) {
			free(pw.best);
			return ISP_E_NOMEM;
		}
		if (!pw.found)
			return ISP_E_NOT_FOUND;
		*out = isp_mirror_get(instances, pw.best, pw.best_len);
		free(pw.best);
		if (*out != NULL)
			return ISP_OK;
		/* Withdrawn since the walk (or out of memory): again. */
	}
	return ISP_E_NOT_FOUND;
}
