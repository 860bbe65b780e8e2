/*
 * mirror: an in-memory copy of a table (or of the keys under a prefix),
 * kept in step by a subscription on every server of its client, merged.
 *
 * The merge rule (docs/HA.md). Per key the mirror keeps the distinct
 * values the servers hold, each with the set of servers that hold it
 * (a bit per server), and the value shown is the one received last.
 * Servers that agree share one copy, so two reflectors cost one copy of
 * the table, not two. When a server's session is lost, its holdings
 * turn unconfirmed: still counted, but no longer proof. A key whose
 * holders are all unconfirmed is stale; it stays in the view (a
 * reflector restarting, or a publisher reconnecting, is the normal
 * case) until a server confirms it by announcing it again, or a live
 * server withdraws it (a live server's word beats stale memory), or it
 * has been stale for grace_ms (ISP_WD_STALE). A server coming back is
 * not trusted to have everything at its end of snapshot: a restarted
 * reflector's table fills up as publishers replay, so what it lacks at
 * END is left to the grace time.
 *
 * Owners. Per key and server the mirror keeps which owner that server
 * says the key has (struct mhold, an array in the key, one per server),
 * on a list per server and owner (struct mown, in a hash by both), so
 * that an EV_OWNER_GONE ("every record of session N is gone") withdraws
 * exactly that server's holdings of that owner, walking them alone.
 * Owner numbers are each server's own, and a restarted server starts
 * them again: a server's session that is lost takes its owner lists
 * with it (its holdings stay, unconfirmed), and its next snapshot
 * builds them again.
 *
 * Locking: the thread that delivers events (the application's in modes
 * 1 and 2, the library's in mode 3) changes the mirror under the
 * rwlock, one change at a time; lookups from any thread take it shared,
 * so they never wait on the network, only on one change. on_change runs
 * after the lock is released.
 */
#include <sys/queue.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lib.h"

/* One distinct value of a key and the servers holding it. The record
 * comes first: mirror_record_dup() lays it out that way, and readers
 * get it as a struct rec_hdr. */
struct mval {
	struct rec_hdr		 h;
	struct mval		*next;
	uint32_t		 servers;	/* holders of this value */
	uint64_t		 recv;		/* when last received */
};

/* A server's holding of a key, on its owner's list; owner NULL when the
 * server holds no value of the key, or its session was lost. */
struct mhold {
	struct mown		*owner;
	LIST_ENTRY(mhold)	 entry;		/* on the owner's list */
};

struct mkey {
	struct hash_node	 node;
	struct mval		*vals;		/* usually one */
	struct mval		*shown;		/* the one received last */
	uint32_t		 unconfirmed;	/* holders lost since */
	int			 stale;		/* on the stale list */
	uint64_t		 stale_since;
	struct mkey		*stale_prev;
	struct mkey		*stale_next;
	struct mhold		 hold[];	/* one per server, m->nsrv */
};

/* The keys one server says one owner (its session number) has. */
struct mown {
	struct hash_node	 node;
	uint64_t		 session;
	unsigned		 server;
	LIST_HEAD(, mhold)	 holds;		/* the newest first */
	size_t			 n;
};

/* What a change means to the application, made under the lock and told
 * after it. Values to free wait in garbage until then. */
struct mchange {
	int			 type;		/* 0: nothing to tell */
	const struct isp_record	*rec;
	int			 reason;
	uint64_t		 count;
	struct mval		*garbage[3];
	struct mkey		*key_garbage;
	int			 all_fresh;	/* the last stale key went:
						 * ISP_EV_FRESH, count 0 */
};

static struct mkey *
node_key(const struct hash_node *n)
{
	return (struct mkey *)((char *)(uintptr_t)n -
	    offsetof(struct mkey, node));
}

static int
key_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct isp_record	*r = &node_key(n)->shown->h.rec;

	return r->key_len == len && memcmp(r->key, key, len) == 0;
}

static struct mown *
node_own(const struct hash_node *n)
{
	return (struct mown *)((char *)(uintptr_t)n -
	    offsetof(struct mown, node));
}

/* An owner's key: (server, session) as bytes. */
struct own_key {
	uint64_t	 session;
	unsigned	 server;
};

static uint64_t
own_hash(unsigned server, uint64_t session)
{
	struct own_key	 k;

	memset(&k, 0, sizeof(k));
	k.session = session;
	k.server = server;
	return hash_bytes(&k, sizeof(k));
}

static int
own_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct own_key	*k = key;
	const struct mown	*o = node_own(n);

	return o->session == k->session && o->server == k->server;
}

static struct mown *
own_find(const struct isp_mirror *m, unsigned server, uint64_t session)
{
	struct own_key		 k;
	struct hash_node	*n;

	memset(&k, 0, sizeof(k));
	k.session = session;
	k.server = server;
	n = hash_find(&m->owners, own_hash(server, session), &k, sizeof(k),
	    own_eq);
	return n != NULL ? node_own(n) : NULL;
}

/* The key a holding is in: holdings are the array at the key's end. */
static struct mkey *
hold_key(struct mhold *h, unsigned server)
{
	return (struct mkey *)((char *)(h - server) -
	    offsetof(struct mkey, hold));
}

/* The server no longer holds k by any owner. */
static void
hold_clear(struct isp_mirror *m, struct mkey *k, unsigned server)
{
	struct mhold	*h = &k->hold[server];
	struct mown	*o = h->owner;

	if (o == NULL)
		return;
	LIST_REMOVE(h, entry);
	h->owner = NULL;
	if (--o->n == 0) {
		if (m->last_own == o)
			m->last_own = NULL;
		hash_remove(&m->owners, &o->node);
		free(o);
	}
}

/* The server says session owns k. Returns 0, or -1 when a new owner
 * needed memory that m->spare_own did not hold (k is then held by no
 * owner of that server). */
static int
hold_set(struct isp_mirror *m, struct mkey *k, unsigned server,
    uint64_t session)
{
	struct mhold	*h = &k->hold[server];
	struct mown	*o;

	if (h->owner != NULL && h->owner->session == session)
		return 0;
	hold_clear(m, k, server);
	/* A snapshot's records come owner after owner: the last one found
	 * is asked first. */
	if ((o = m->last_own) == NULL || o->session != session ||
	    o->server != server)
		o = own_find(m, server, session);
	if (o == NULL) {
		if ((o = m->spare_own) == NULL)
			return -1;
		memset(o, 0, sizeof(*o));
		o->session = session;
		o->server = server;
		LIST_INIT(&o->holds);
		if (hash_insert(&m->owners, &o->node,
		    own_hash(server, session)) == -1)
			return -1;
		m->spare_own = NULL;
	}
	/* Newest first: an EV_OWNER_GONE frees them in the reverse order
	 * of their allocation, which malloc does in half the time of the
	 * other order. */
	m->last_own = o;
	h->owner = o;
	LIST_INSERT_HEAD(&o->holds, h, entry);
	o->n++;
	return 0;
}

/* Every holding of k goes (k leaves the mirror). */
static void
hold_clear_all(struct isp_mirror *m, struct mkey *k)
{
	unsigned	 i;

	for (i = 0; i < m->nsrv; i++)
		hold_clear(m, k, i);
}

/* A new owner may be needed under the lock: it is allocated before. */
static void
own_spare(struct isp_mirror *m)
{
	if (m->spare_own == NULL)
		m->spare_own = malloc(sizeof(*m->spare_own));
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
	((struct rec_hdr *)p)->self = r;
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

int
isp_record_stale(const struct isp_record *r)
{
	const struct rec_hdr	*h = (const struct rec_hdr *)r;

	return r != NULL && h->self == r && h->stale;
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
	m->grace_ms = ISP_STALE_GRACE_MS;
	m->nsrv = ISP_MAX_SERVERS;
	hash_init(&m->keys);
	hash_init(&m->owners);

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

static void
key_free(struct mkey *k)
{
	struct mval	*v, *next;

	for (v = k->vals; v != NULL; v = next) {
		next = v->next;
		free(v);
	}
	free(k);
}

void
mirror_destroy(struct isp_mirror *m)
{
	struct hash_node	*n, *next;
	size_t			 pos = 0;

	if (m == NULL)
		return;
	for (n = hash_next(&m->keys, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&m->keys, &pos, n);
		hash_remove(&m->keys, n);
		key_free(node_key(n));
	}
	hash_free(&m->keys);
	pos = 0;
	for (n = hash_next(&m->owners, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&m->owners, &pos, n);
		hash_remove(&m->owners, n);
		free(node_own(n));
	}
	hash_free(&m->owners);
	free(m->spare_own);
	pthread_rwlock_destroy(&m->lock);
	free(m->prefix);
	free(m);
}

/* Two values are the same to the application when the fields and the
 * owner's name are: owner_session and seq are each server's own
 * numbers, and differ between reflectors holding the same record. */
static int
rec_same(const struct isp_record *a, const struct isp_record *b)
{
	size_t	 i;

	if (a->nfields != b->nfields || strcmp(a->owner, b->owner) != 0)
		return 0;
	for (i = 0; i < a->nfields; i++)
		if (a->fields[i].value_len != b->fields[i].value_len ||
		    strcmp(a->fields[i].name, b->fields[i].name) != 0 ||
		    memcmp(a->fields[i].value, b->fields[i].value,
		    a->fields[i].value_len) != 0)
			return 0;
	return 1;
}

static uint32_t
key_holders(const struct mkey *k)
{
	const struct mval	*v;
	uint32_t		 h = 0;

	for (v = k->vals; v != NULL; v = v->next)
		h |= v->servers;
	return h;
}

static void
stale_unlink(struct isp_mirror *m, struct mkey *k)
{
	if (k->stale_prev != NULL)
		k->stale_prev->stale_next = k->stale_next;
	else
		m->stale_head = k->stale_next;
	if (k->stale_next != NULL)
		k->stale_next->stale_prev = k->stale_prev;
	else
		m->stale_tail = k->stale_prev;
	k->stale_prev = k->stale_next = NULL;
	k->stale = 0;
	m->nstale--;
}

/* Puts the key on or off the stale list after its holders changed. */
static void
key_restale(struct isp_mirror *m, struct mkey *k, uint64_t now)
{
	uint32_t	 holders = key_holders(k);
	int		 stale = holders != 0 && (holders & ~k->unconfirmed) == 0;

	if (stale && !k->stale) {
		k->stale = 1;
		k->stale_since = now;
		k->stale_prev = m->stale_tail;
		k->stale_next = NULL;
		if (m->stale_tail != NULL)
			m->stale_tail->stale_next = k;
		else
			m->stale_head = k;
		m->stale_tail = k;
		m->nstale++;
	} else if (!stale && k->stale)
		stale_unlink(m, k);
	k->shown->h.stale = k->stale;
}

/* The value received last is the one shown. */
static void
key_show_latest(struct mkey *k)
{
	struct mval	*v;

	k->shown = k->vals;
	for (v = k->vals; v != NULL; v = v->next)
		if (v->recv > k->shown->recv)
			k->shown = v;
}

/* Called under the lock at the end of a change that began with before
 * stale keys. */
static void
check_all_fresh(const struct isp_mirror *m, size_t before,
    struct mchange *ch)
{
	if (before > 0 && m->nstale == 0)
		ch->all_fresh = 1;
}

static void
garbage_add(struct mchange *ch, struct mval *v)
{
	size_t	 i;

	for (i = 0; i < sizeof(ch->garbage) / sizeof(ch->garbage[0]); i++)
		if (ch->garbage[i] == NULL || ch->garbage[i] == v) {
			ch->garbage[i] = v;
			return;
		}
}

/* Unlinks values no server holds any more. */
static void
key_drop_empty(struct mkey *k, struct mchange *ch)
{
	struct mval	**pp, *v;

	pp = &k->vals;
	while ((v = *pp) != NULL) {
		if (v->servers == 0) {
			*pp = v->next;
			garbage_add(ch, v);
		} else
			pp = &v->next;
	}
}

/* Takes the key out of the view; its memory goes after the callback. */
static void
key_remove(struct isp_mirror *m, struct mkey *k, struct mchange *ch,
    int reason)
{
	if (k->stale)
		stale_unlink(m, k);
	hold_clear_all(m, k);
	hash_remove(&m->keys, &k->node);
	ch->type = ISP_EV_WITHDRAW;
	ch->rec = &k->shown->h.rec;
	ch->reason = reason;
	ch->key_garbage = k;
}

static void
change_free(struct mchange *ch)
{
	size_t	 i;

	for (i = 0; i < sizeof(ch->garbage) / sizeof(ch->garbage[0]); i++)
		free(ch->garbage[i]);
	if (ch->key_garbage != NULL)
		key_free(ch->key_garbage);
}

static void	change_tell_one(struct isp_mirror *, const struct mchange *,
		    const struct isp_event *, unsigned);

/* Tells on_change, the lock released. ev is what the server sent (NULL
 * for a change the mirror made itself). */
static void
change_tell(struct isp_mirror *m, const struct mchange *ch,
    const struct isp_event *ev, unsigned server)
{
	struct isp_event	 out;

	if (m->on_change == NULL)
		return;
	if (ch->type != 0)
		change_tell_one(m, ch, ev, server);
	if (ch->all_fresh && m->ext_events) {
		memset(&out, 0, sizeof(out));
		out.type = ISP_EV_FRESH;
		out.table = m->table;
		if (ev != NULL) {
			out.server = ev->server;
			out.server_index = server;
		}
		m->on_change(m->client, &out, m->arg);
	}
}

static void
change_tell_one(struct isp_mirror *m, const struct mchange *ch,
    const struct isp_event *ev, unsigned server)
{
	struct isp_event	 out;

	memset(&out, 0, sizeof(out));
	out.type = ch->type;
	out.table = m->table;
	if (ch->rec != NULL) {
		out.rec = *ch->rec;
		out.seq = ch->rec->seq;
	}
	out.reason = ch->reason;
	out.count = ch->count;
	if (ev != NULL) {
		out.seq = ev->seq;
		out.server = ev->server;
		out.server_index = server;
		if (ch->type != ISP_EV_END)
			out.snapshot = !m->ready;
	}
	m->on_change(m->client, &out, m->arg);
}

/* The server holds k no more; returns the servers that still do. */
static uint32_t
key_unhold(struct isp_mirror *m, struct mkey *k, unsigned server)
{
	struct mval	*v;
	uint32_t	 bit = 1u << server;

	for (v = k->vals; v != NULL; v = v->next)
		v->servers &= ~bit;
	k->unconfirmed &= ~bit;
	hold_clear(m, k, server);
	return key_holders(k);
}

/* A holder of k went and others remain: the value shown may change. */
static void
key_reshow(struct isp_mirror *m, struct mkey *k, uint64_t now,
    struct mchange *ch)
{
	struct mval	*old = k->shown;

	key_drop_empty(k, ch);
	key_show_latest(k);
	key_restale(m, k, now);
	if (!rec_same(&old->h.rec, &k->shown->h.rec)) {
		ch->type = ISP_EV_REPLACE;
		ch->rec = &k->shown->h.rec;
	}
}

/* Without memory this server's copy of k is dropped rather than left
 * as it was: a mirror must not claim what the server no longer says. */
static void
merge_drop_server(struct isp_mirror *m, struct mkey *k, unsigned server,
    uint64_t now, struct mchange *ch)
{
	m->nomem++;
	if (k == NULL)
		return;
	if (key_unhold(m, k, server) == 0)
		key_remove(m, k, ch, ISP_WD_OWNER);
	else
		key_reshow(m, k, now, ch);
}

static int
merge_put(struct isp_mirror *m, unsigned server, const struct isp_event *ev,
    uint64_t now, struct mchange *ch)
{
	struct hash_node	*n;
	struct mval		*nv, *v, **pp, *old;
	struct mkey		*k;
	uint32_t		 bit = 1u << server;
	uint64_t		 hv = hash_bytes(ev->rec.key, ev->rec.key_len);
	size_t			 before;

	nv = (struct mval *)mirror_record_dup(&ev->rec, sizeof(struct mval));
	own_spare(m);
	pthread_rwlock_wrlock(&m->lock);
	before = m->nstale;
	n = hash_find(&m->keys, hv, ev->rec.key, ev->rec.key_len, key_eq);
	k = n != NULL ? node_key(n) : NULL;
	if (nv == NULL || (k != NULL &&
	    hold_set(m, k, server, ev->rec.owner_session) == -1)) {
		merge_drop_server(m, k, server, now, ch);
		check_all_fresh(m, before, ch);
		pthread_rwlock_unlock(&m->lock);
		free(nv);
		return ISP_E_NOMEM;
	}
	nv->next = NULL;
	nv->servers = bit;
	nv->recv = ++m->recv;
	nv->h.stale = 0;
	if (k == NULL) {
		if ((k = calloc(1, sizeof(*k) + m->nsrv *
		    sizeof(k->hold[0]))) == NULL)
			goto nomem;
		k->vals = k->shown = nv;
		if (hash_insert(&m->keys, &k->node, hv) == -1) {
			free(k);
			goto nomem;
		}
		if (hold_set(m, k, server, ev->rec.owner_session) == -1) {
			hash_remove(&m->keys, &k->node);
			free(k);
			goto nomem;
		}
		ch->type = ISP_EV_ANNOUNCE;
		ch->rec = &nv->h.rec;
		pthread_rwlock_unlock(&m->lock);
		return ISP_OK;
	}
	old = k->shown;
	for (v = k->vals; v != NULL; v = v->next)
		v->servers &= ~bit;
	/* The same value from another server: one copy, shared. The newer
	 * copy replaces it, so owner_session and seq are those received
	 * last. */
	for (pp = &k->vals; (v = *pp) != NULL; pp = &v->next)
		if (rec_same(&v->h.rec, &nv->h.rec))
			break;
	if (v != NULL) {
		nv->servers |= v->servers;
		nv->next = v->next;
		*pp = nv;
		garbage_add(ch, v);
	} else {
		nv->next = k->vals;
		k->vals = nv;
	}
	k->unconfirmed &= ~bit;
	key_drop_empty(k, ch);
	k->shown = nv;
	key_restale(m, k, now);
	if (!rec_same(&old->h.rec, &nv->h.rec)) {
		ch->type = ISP_EV_REPLACE;
		ch->rec = &nv->h.rec;
	}
	check_all_fresh(m, before, ch);
	pthread_rwlock_unlock(&m->lock);
	return ISP_OK;
nomem:
	m->nomem++;
	pthread_rwlock_unlock(&m->lock);
	free(nv);
	return ISP_E_NOMEM;
}

/* The server no longer holds k (under the lock). */
static void
merge_withdraw_key(struct isp_mirror *m, struct mkey *k, unsigned server,
    int reason, uint64_t now, struct mchange *ch)
{
	uint32_t	 holders = key_unhold(m, k, server);

	/* Gone everywhere it was seen, or only servers that do not answer
	 * now still had it: a live server's word beats stale memory. */
	if (holders == 0 || (holders & ~k->unconfirmed) == 0)
		key_remove(m, k, ch, reason);
	else
		key_reshow(m, k, now, ch);
}

static void
merge_withdraw(struct isp_mirror *m, unsigned server,
    const struct isp_event *ev, uint64_t now, struct mchange *ch)
{
	struct hash_node	*n;
	struct mkey		*k;
	size_t			 before;

	pthread_rwlock_wrlock(&m->lock);
	before = m->nstale;
	n = hash_find(&m->keys, hash_bytes(ev->rec.key, ev->rec.key_len),
	    ev->rec.key, ev->rec.key_len, key_eq);
	if (n != NULL && (key_holders(k = node_key(n)) & (1u << server)))
		merge_withdraw_key(m, k, server, ev->reason, now, ch);
	check_all_fresh(m, before, ch);
	pthread_rwlock_unlock(&m->lock);
}

/* Keys an EV_OWNER_GONE withdraws per hold of the lock: few enough
 * that a reader waits little, many enough that the lock costs little. */
#define GONE_BATCH	64

size_t
mirror_owner_gone(struct isp_mirror *m, unsigned server,
    uint64_t owner_session, int reason, uint64_t seq,
    const char *server_name, uint64_t now)
{
	struct isp_event	 ev;
	struct mchange		 ch[GONE_BATCH];
	struct mown		*o;
	struct mkey		*k;
	size_t			 before, i, nb, n = 0;
	int			 last = 0;

	if (server >= m->nsrv)
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.type = ISP_EV_WITHDRAW;
	ev.table = m->table;
	ev.seq = seq;
	ev.reason = reason;
	ev.server = server_name;
	ev.server_index = server;
	/* A batch of keys under the lock, each told after it as its
	 * EV_WITHDRAW would have been: only that owner's list is walked,
	 * and the owner goes with its last key. */
	while (!last) {
		pthread_rwlock_wrlock(&m->lock);
		if ((o = own_find(m, server, owner_session)) == NULL) {
			pthread_rwlock_unlock(&m->lock);
			break;
		}
		for (nb = 0; nb < GONE_BATCH && !last; nb++) {
			memset(&ch[nb], 0, sizeof(ch[nb]));
			before = m->nstale;
			last = o->n == 1;
			k = hold_key(LIST_FIRST(&o->holds), server);
			merge_withdraw_key(m, k, server, reason, now, &ch[nb]);
			check_all_fresh(m, before, &ch[nb]);
		}
		pthread_rwlock_unlock(&m->lock);
		for (i = 0; i < nb; i++) {
			change_tell(m, &ch[i], &ev, server);
			change_free(&ch[i]);
		}
		n += nb;
	}
	return n;
}

static void
merge_end(struct isp_mirror *m, unsigned server, struct mchange *ch)
{
	uint32_t	 bit = 1u << server;

	pthread_rwlock_wrlock(&m->lock);
	m->synced |= bit;
	if (!m->ready) {
		m->ready = 1;
		ch->type = ISP_EV_END;
		ch->count = m->keys.count;
	} else if ((m->resyncing & bit) && m->ext_events) {
		ch->type = ISP_EV_FRESH;
		ch->count = m->nstale;
	}
	m->resyncing &= ~bit;
	pthread_rwlock_unlock(&m->lock);
}

int
mirror_apply_from(struct isp_mirror *m, unsigned server,
    const struct isp_event *ev, uint64_t now)
{
	struct mchange	 ch;
	int		 rc = ISP_OK;

	if (server >= m->nsrv)
		return ISP_E_INVALID;
	memset(&ch, 0, sizeof(ch));
	switch (ev->type) {
	case ISP_EV_ANNOUNCE:
	case ISP_EV_REPLACE:
		if (ev->rec.key_len == 0)
			return ISP_E_INVALID;
		rc = merge_put(m, server, ev, now, &ch);
		break;
	case ISP_EV_WITHDRAW:
		merge_withdraw(m, server, ev, now, &ch);
		break;
	case ISP_EV_END:
		merge_end(m, server, &ch);
		break;
	default:
		return ISP_E_INVALID;
	}
	change_tell(m, &ch, ev, server);
	change_free(&ch);
	return rc;
}

int
mirror_apply(struct isp_mirror *m, const struct isp_event *ev)
{
	return mirror_apply_from(m, 0, ev, client_now_ms());
}

void
mirror_server_lost(struct isp_mirror *m, unsigned server, uint64_t now,
    int quiet)
{
	struct hash_node	*n = NULL;
	struct isp_event	 ev;
	struct mkey		*k;
	uint32_t		 bit = 1u << server;
	size_t			 pos = 0, nstale;

	if (server >= m->nsrv)
		return;
	/* One pass over the keys, once per lost session: cheaper than a
	 * mark per key and server on every event. */
	pthread_rwlock_wrlock(&m->lock);
	m->synced &= ~bit;
	nstale = m->nstale;
	while ((n = hash_next(&m->keys, &pos, n)) != NULL) {
		k = node_key(n);
		hold_clear(m, k, server);
		if (!(key_holders(k) & bit))
			continue;
		k->unconfirmed |= bit;
		key_restale(m, k, now);
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = ISP_EV_STALE;
	ev.table = m->table;
	ev.count = m->nstale;
	/* A drained server whose keys all have a confirmed holder left:
	 * nothing the application sees changed. */
	quiet = quiet && m->nstale == nstale;
	if (!quiet)
		m->resyncing |= bit;
	pthread_rwlock_unlock(&m->lock);
	if (!quiet && m->ext_events && m->on_change != NULL) {
		if (m->client != NULL && server < m->client->nconns) {
			ev.server = m->client->conns[server].server;
			ev.server_index = server;
		}
		m->on_change(m->client, &ev, m->arg);
	}
}

void
mirror_forget_owners(struct isp_mirror *m, unsigned server)
{
	struct hash_node	*n = NULL;
	size_t			 pos = 0;

	if (server >= m->nsrv)
		return;
	pthread_rwlock_wrlock(&m->lock);
	while ((n = hash_next(&m->keys, &pos, n)) != NULL)
		hold_clear(m, node_key(n), server);
	pthread_rwlock_unlock(&m->lock);
}

void
mirror_sweep(struct isp_mirror *m, uint64_t now)
{
	struct mchange	 ch;
	struct mkey	*k;

	if (m->grace_ms < 0)
		return;
	/* The stale list changes only on this thread (the one that applies
	 * events, under the client's mutex), so it is read without the
	 * rwlock, which is taken only when there is something to sweep:
	 * every pass of the loop comes here. */
	while ((k = m->stale_head) != NULL &&
	    k->stale_since + (uint64_t)m->grace_ms <= now) {
		memset(&ch, 0, sizeof(ch));
		pthread_rwlock_wrlock(&m->lock);
		key_remove(m, k, &ch, ISP_WD_STALE);
		check_all_fresh(m, 1, &ch);
		pthread_rwlock_unlock(&m->lock);
		change_tell(m, &ch, NULL, 0);
		change_free(&ch);
	}
}

int
mirror_sweep_due_ms(const struct isp_mirror *m, uint64_t now)
{
	uint64_t	 due;

	if (m->grace_ms < 0 || m->stale_head == NULL)
		return -1;
	due = m->stale_head->stale_since + (uint64_t)m->grace_ms;
	if (due <= now)
		return 0;
	return due - now > INT32_MAX ? INT32_MAX : (int)(due - now);
}

void
mirror_event_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	(void)mirror_apply_from(arg, ev->server_index, ev, client_now_ms());
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
	m->nsrv = c->nconns;
	m->ext_events = !c->legacy;
	m->grace_ms = c->stale_grace_ms;
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

/* A mirror freed inside a callback tells nothing more. */
static void
mirror_told_nothing(isp_client *c, const struct isp_event *ev, void *arg)
{
}

void
mirror_silence(struct isp_mirror *m)
{
	m->on_change = mirror_told_nothing;
}

/*
 * Inside a callback of its client the mirror may be in use further up
 * the stack (the change being told): it is unsubscribed and unlinked at
 * once, and destroyed when the pass ends (client_reap_mirrors()).
 */
void
isp_mirror_free(isp_mirror *m)
{
	struct isp_client	*c;
	struct isp_mirror	**pp;
	struct sub		*s;
	int			 later = 0;

	if (m == NULL)
		return;
	if ((c = m->client) != NULL) {
		client_lock(c);
		later = c->cb_depth > 0;
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
		if (later) {
			mirror_silence(m);
			m->next = c->doomed;
			c->doomed = m;
		}
		client_unlock(c);
	}
	if (!later)
		mirror_destroy(m);
}

/* Readers take the lock shared; it is not part of the mirror's logical
 * state, so the const accessors take it too. */
static void
mirror_rdlock(const struct isp_mirror *m)
{
	pthread_rwlock_rdlock((pthread_rwlock_t *)&m->lock);
}

static void
mirror_rdunlock(const struct isp_mirror *m)
{
	pthread_rwlock_unlock((pthread_rwlock_t *)&m->lock);
}

size_t
mirror_owner_count(const struct isp_mirror *m, unsigned server,
    uint64_t owner_session)
{
	struct mown	*o;
	size_t		 n;

	mirror_rdlock(m);
	o = own_find(m, server, owner_session);
	n = o != NULL ? o->n : 0;
	mirror_rdunlock(m);
	return n;
}

int
isp_mirror_ready(const isp_mirror *m)
{
	int	 ready;

	if (m == NULL)
		return 0;
	mirror_rdlock(m);
	ready = m->ready;
	mirror_rdunlock(m);
	return ready;
}

size_t
isp_mirror_stale_count(const isp_mirror *m)
{
	size_t	 n;

	if (m == NULL)
		return 0;
	mirror_rdlock(m);
	n = m->nstale;
	mirror_rdunlock(m);
	return n;
}

size_t
isp_mirror_count(const isp_mirror *m)
{
	size_t	 n;

	if (m == NULL)
		return 0;
	mirror_rdlock(m);
	n = m->keys.count;
	mirror_rdunlock(m);
	return n;
}

struct isp_record *
isp_mirror_get(const isp_mirror *m, const void *key, size_t key_len)
{
	struct isp_record	*r = NULL;
	struct hash_node	*n;
	uint64_t		 hv;

	if (m == NULL || key == NULL || key_len == 0)
		return NULL;
	hv = hash_bytes(key, key_len);
	mirror_rdlock(m);
	if ((n = hash_find(&m->keys, hv, key, key_len, key_eq)) != NULL &&
	    (r = mirror_record_dup(&node_key(n)->shown->h.rec,
	    sizeof(struct rec_hdr))) != NULL)
		((struct rec_hdr *)r)->stale = node_key(n)->stale;
	mirror_rdunlock(m);
	return r;
}

int
isp_mirror_foreach(const isp_mirror *m, const void *prefix, size_t prefix_len,
    int (*fn)(const struct isp_record *, void *), void *arg)
{
	struct hash_node	*n = NULL;
	const struct isp_record	*r;
	size_t			 pos = 0;
	int			 rc = 0;

	if (m == NULL || fn == NULL)
		return 0;
	if (prefix == NULL)
		prefix_len = 0;
	mirror_rdlock(m);
	while ((n = hash_next(&m->keys, &pos, n)) != NULL) {
		r = &node_key(n)->shown->h.rec;
		if (r->key_len < prefix_len || (prefix_len > 0 &&
		    memcmp(r->key, prefix, prefix_len) != 0))
			continue;
		if ((rc = fn(r, arg)) != 0)
			break;
	}
	mirror_rdunlock(m);
	return rc;
}
