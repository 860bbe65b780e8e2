/*
 * mirror: an in-memory copy of a table (or of the keys under a prefix),
 * kept in step by a subscription.
 *
 * Records live in a hash under a rwlock. The thread that delivers events
 * (the application's in modes 1 and 2, the library's in mode 3) takes it
 * exclusively for the few pointer moves of one change; lookups from any
 * thread take it shared, so they never wait on the network, only on one
 * change at a time. Each record is one allocation, built before the
 * lock is taken and freed after it is released.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lib.h"

struct mirror_rec {
	struct isp_record	 rec;	/* first, as mirror_record_dup()
					 * lays it out */
	struct hash_node	 node;
};

static struct mirror_rec *
node_rec(const struct hash_node *n)
{
	return (struct mirror_rec *)((char *)(uintptr_t)n -
	    offsetof(struct mirror_rec, node));
}

static int
rec_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct mirror_rec	*r = node_rec(n);

	return r->rec.key_len == len && memcmp(r->rec.key, key, len) == 0;
}

static char *
put_str(char *d, const void *p, size_t len)
{
	if (len > 0)
		memcpy(d, p, len);
	d[len] = '\0';
	return d + len + 1;
}

struct isp_record *
mirror_record_dup(const struct isp_record *src, size_t head)
{
	const char		*owner = src->owner != NULL ? src->owner : "";
	const size_t		 align = _Alignof(struct isp_field);
	struct isp_record	*r;
	struct isp_field	*f;
	size_t			 foff, size, i;
	char			*p, *d;

	foff = (head + align - 1) / align * align;
	size = foff + src->nfields * sizeof(*f) + src->key_len + 1 +
	    strlen(owner) + 1;
	for (i = 0; i < src->nfields; i++)
		size += strlen(src->fields[i].name) + 1 +
		    src->fields[i].value_len + 1;
	if ((p = malloc(size)) == NULL)
		return NULL;
	memset(p, 0, head);
	r = (struct isp_record *)p;
	f = (struct isp_field *)(p + foff);
	d = (char *)(f + src->nfields);
	r->key = d;
	r->key_len = src->key_len;
	d = put_str(d, src->key, src->key_len);
	r->owner = d;
	d = put_str(d, owner, strlen(owner));
	for (i = 0; i < src->nfields; i++) {
		f[i].name = d;
		d = put_str(d, src->fields[i].name,
		    strlen(src->fields[i].name));
		f[i].value = d;
		f[i].value_len = src->fields[i].value_len;
		d = put_str(d, src->fields[i].value,
		    src->fields[i].value_len);
	}
	r->fields = src->nfields > 0 ? f : NULL;
	r->nfields = src->nfields;
	r->owner_session = src->owner_session;
	r->seq = src->seq;
	return r;
}

void
isp_record_free(struct isp_record *r)
{
	free(r);
}

struct isp_mirror *
mirror_create(const char *table, const void *prefix, size_t prefix_len,
    isp_event_cb *on_change, void *arg)
{
	pthread_rwlockattr_t	 ra;
	struct isp_mirror	*m;
	size_t			 tlen;
	int			 rc;

	if (table == NULL)
		return NULL;
	tlen = strnlen(table, PROTO_MAX_TABLE_BYTES + 1);
	if (!proto_table_valid(table, tlen) ||
	    prefix_len > PROTO_MAX_KEY_BYTES ||
	    (prefix == NULL && prefix_len > 0))
		return NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	memcpy(m->table, table, tlen + 1);
	if (prefix_len > 0) {
		if ((m->prefix = malloc(prefix_len)) == NULL) {
			free(m);
			return NULL;
		}
		memcpy(m->prefix, prefix, prefix_len);
	}
	m->prefix_len = prefix_len;
	m->on_change = on_change;
	m->arg = arg;
	hash_init(&m->records);

	/* glibc's default prefers readers: a reader that never pauses
	 * would hold back every change. Preferring the writer bounds how
	 * stale a mirror gets; it forbids read-lock recursion, which is
	 * why isp_mirror_foreach()'s callback must not call into it. */
	if (pthread_rwlockattr_init(&ra) != 0) {
		free(m->prefix);
		free(m);
		return NULL;
	}
	pthread_rwlockattr_setkind_np(&ra,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(&m->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	if (rc != 0) {
		free(m->prefix);
		free(m);
		return NULL;
	}
	return m;
}

void
mirror_destroy(struct isp_mirror *m)
{
	struct hash_node	*n, *next;
	size_t			 pos = 0;

	if (m == NULL)
		return;
	for (n = hash_next(&m->records, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&m->records, &pos, n);
		hash_remove(&m->records, n);
		free(node_rec(n));
	}
	hash_free(&m->records);
	pthread_rwlock_destroy(&m->lock);
	free(m->prefix);
	free(m);
}

int
mirror_apply(struct isp_mirror *m, const struct isp_event *ev)
{
	struct mirror_rec	*nr = NULL, *old = NULL;
	struct hash_node	*n;
	uint64_t		 hv = 0;
	int			 rc = ISP_OK;

	switch (ev->type) {
	case ISP_EV_ANNOUNCE:
	case ISP_EV_REPLACE:
		nr = (struct mirror_rec *)mirror_record_dup(&ev->rec,
		    sizeof(struct mirror_rec));
		/* FALLTHROUGH */
	case ISP_EV_WITHDRAW:
		hv = hash_bytes(ev->rec.key, ev->rec.key_len);
		break;
	case ISP_EV_END:
		break;
	default:
		return ISP_E_INVALID;
	}

	pthread_rwlock_wrlock(&m->lock);
	if (ev->type != ISP_EV_END && ev->rec.key_len > 0 &&
	    (n = hash_find(&m->records, hv, ev->rec.key, ev->rec.key_len,
	    rec_eq)) != NULL) {
		old = node_rec(n);
		hash_remove(&m->records, n);
	}
	if (ev->type == ISP_EV_ANNOUNCE || ev->type == ISP_EV_REPLACE) {
		/* Without memory the record is dropped rather than left
		 * stale: a mirror must not claim what the table no longer
		 * says. */
		if (nr == NULL || hash_insert(&m->records, &nr->node,
		    hv) == -1) {
			m->nomem++;
			rc = ISP_E_NOMEM;
		} else
			nr = NULL;
	}
	if (ev->type == ISP_EV_END)
		m->ready = 1;
	if (ev->seq > m->seq)
		m->seq = ev->seq;
	pthread_rwlock_unlock(&m->lock);

	free(nr);
	free(old);
	if (m->on_change != NULL)
		m->on_change(m->client, ev, m->arg);
	return rc;
}

void
mirror_event_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	(void)mirror_apply(arg, ev);
}

isp_mirror *
isp_mirror_new(isp_client *c, const char *table, const void *prefix,
    size_t prefix_len, isp_event_cb *on_change, void *arg)
{
	const char		*fn = "isp_mirror_new";
	struct isp_mirror	*m = NULL;

	if (c == NULL)
		return NULL;
	client_lock(c);
	if (client_sub_check_args(c, fn, table, prefix, prefix_len, 0,
	    mirror_event_cb) != ISP_OK ||
	    client_check_ready(c, fn) != ISP_OK)
		goto out;
	if ((m = mirror_create(table, prefix, prefix_len, on_change,
	    arg)) == NULL) {
		client_seterr(c, ISP_E_NOMEM, "%s: out of memory", fn);
		goto out;
	}
	m->client = c;
	if (client_subscribe(c, fn, table, prefix, prefix_len, 0,
	    mirror_event_cb, m, m) != ISP_OK) {
		mirror_destroy(m);
		m = NULL;
		goto out;
	}
	m->next = c->mirrors;
	c->mirrors = m;
out:
	client_unlock(c);
	return m;
}

void
isp_mirror_free(isp_mirror *m)
{
	struct isp_client	*c;
	struct isp_mirror	**pp;
	struct sub		*s;

	if (m == NULL)
		return;
	if ((c = m->client) != NULL) {
		client_lock(c);
		for (s = c->subs; s != NULL; s = s->next) {
			if (s->mirror == m && !s->removed) {
				(void)client_unsubscribe(c, s);
				break;
			}
		}
		for (pp = &c->mirrors; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == m) {
				*pp = m->next;
				break;
			}
		}
		client_unlock(c);
	}
	mirror_destroy(m);
}

int
isp_mirror_ready(isp_mirror *m)
{
	int	 ready;

	if (m == NULL)
		return 0;
	pthread_rwlock_rdlock(&m->lock);
	ready = m->ready;
	pthread_rwlock_unlock(&m->lock);
	return ready;
}

size_t
isp_mirror_count(isp_mirror *m)
{
	size_t	 n;

	if (m == NULL)
		return 0;
	pthread_rwlock_rdlock(&m->lock);
	n = m->records.count;
	pthread_rwlock_unlock(&m->lock);
	return n;
}

struct isp_record *
isp_mirror_get(isp_mirror *m, const void *key, size_t key_len)
{
	struct isp_record	*r = NULL;
	struct hash_node	*n;
	uint64_t		 hv;

	if (m == NULL || key == NULL || key_len == 0)
		return NULL;
	hv = hash_bytes(key, key_len);
	pthread_rwlock_rdlock(&m->lock);
	if ((n = hash_find(&m->records, hv, key, key_len, rec_eq)) != NULL)
		r = mirror_record_dup(&node_rec(n)->rec,
		    sizeof(struct isp_record));
	pthread_rwlock_unlock(&m->lock);
	return r;
}

int
isp_mirror_foreach(isp_mirror *m, const void *prefix, size_t prefix_len,
    int (*fn)(const struct isp_record *, void *), void *arg)
{
	struct hash_node	*n = NULL;
	struct mirror_rec	*r;
	size_t			 pos = 0;
	int			 rc = 0;

	if (m == NULL || fn == NULL)
		return 0;
	if (prefix == NULL)
		prefix_len = 0;
	pthread_rwlock_rdlock(&m->lock);
	while ((n = hash_next(&m->records, &pos, n)) != NULL) {
		r = node_rec(n);
		if (r->rec.key_len < prefix_len || (prefix_len > 0 &&
		    memcmp(r->rec.key, prefix, prefix_len) != 0))
			continue;
		if ((rc = fn(&r->rec, arg)) != 0)
			break;
	}
	pthread_rwlock_unlock(&m->lock);
	return rc;
}
