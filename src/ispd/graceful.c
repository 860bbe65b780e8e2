/*
 * graceful: graceful restart for publishers (--graceful-table, docs/HA.md).
 *
 * When a session is lost (no BYE: a reset, a silence, a killed process),
 * its records in graceful tables are not withdrawn but move to a held
 * set (struct held_set: an owner with the lost session's id, name and
 * identity, and no connection) for --graceful-seconds. A session of
 * that client (name and identity) announcing one again with the same
 * fields takes it back without an event (table.c asks
 * graceful_takes()); END_OF_REPLAY from it, or the end of the grace
 * time, withdraws what is left, as table.c withdraws an ended session's
 * records (table_ghost_add()): the held set is then a ghost, and
 * graceful_ghost_done() frees it after its last record. Held sets
 * sit on a list in deadline order (the grace time is fixed, so
 * appending keeps it sorted); the first of each client's is in a hash by
 * client, and the others (lost sessions of the client while records are
 * held) hang from it with its deadline. ADMIN HELD lists them
 * (graceful_list()).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isp.h"
#include "ispd.h"
#include "acl.h"

#define HELD_OF(n)	((struct held_set *)((char *)(n) - \
			    offsetof(struct held_set, node)))
/* A client's name, a NUL, its identity: the key of a held set. */
#define CLIENT_KEY_MAX	(2 * SESSION_NAME_MAX + 1)
/* A page of ADMIN HELD's answer ends after this many bytes of rows. */
#define HELD_PAGE_BYTES		(256 * 1024)

TAILQ_HEAD(held_list, held_set);

/* Held sets, earliest deadline first, and by client. */
static struct held_list		 held = TAILQ_HEAD_INITIALIZER(held);
static struct hash		 held_by_client;
/* The --graceful-table patterns: a name, or a prefix written with '*'. */
static struct {
	char	 s[PROTO_MAX_TABLE_BYTES + 1];
	size_t	 len;
	int	 prefix;
}				 graceful[CONF_MAX_GRACEFUL];
static size_t			 ngraceful;
/* Where a page of ADMIN HELD's answer is built. */
static struct buf		 page_buf;

/* The key of o's client in held_by_client, in k; returns its length. */
static size_t
client_key(const struct owner *o, char k[CLIENT_KEY_MAX])
{
	memcpy(k, o->name, o->name_len);
	k[o->name_len] = '\0';
	memcpy(k + o->name_len + 1, o->ident, o->ident_len);
	return o->name_len + 1 + o->ident_len;
}

static int
held_eq(const struct hash_node *n, const void *key, size_t len)
{
	char	 k[CLIENT_KEY_MAX];

	return client_key(&HELD_OF(n)->owner, k) == len &&
	    memcmp(k, key, len) == 0;
}

/* 1 when a and b are owners of one client: same name, same identity. */
static int
same_client(const struct owner *a, const struct owner *b)
{
	return a->name_len == b->name_len && a->ident_len == b->ident_len &&
	    memcmp(a->name, b->name, a->name_len) == 0 &&
	    memcmp(a->ident, b->ident, a->ident_len) == 0;
}

/* The first held set of o's client, or NULL. */
static struct held_set *
held_find(const struct owner *o)
{
	struct hash_node	*n;
	char			 k[CLIENT_KEY_MAX];
	size_t			 len = client_key(o, k);

	if (held_by_client.count == 0)
		return NULL;
	n = hash_find(&held_by_client, hash_bytes(k, len), k, len, held_eq);
	return n == NULL ? NULL : HELD_OF(n);
}

/*
 * Adds a --graceful-table pattern, checked by conf.c: a table name, or a
 * prefix followed by '*' ("*" alone: every table). Tables created from
 * then on that match are graceful. Returns 0, or -1 when there are too
 * many.
 */
int
graceful_add(const char *pattern)
{
	size_t	 len = strlen(pattern);

	if (ngraceful == CONF_MAX_GRACEFUL || len == 0)
		return -1;
	graceful[ngraceful].prefix = pattern[len - 1] == '*';
	if (graceful[ngraceful].prefix)
		len--;
	if (len > PROTO_MAX_TABLE_BYTES)
		return -1;
	memcpy(graceful[ngraceful].s, pattern, len);
	graceful[ngraceful].s[len] = '\0';
	graceful[ngraceful].len = len;
	ngraceful++;
	return 0;
}

int
graceful_match(const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < ngraceful; i++) {
		if (graceful[i].prefix ? len >= graceful[i].len :
		    len == graceful[i].len) {
			if (memcmp(name, graceful[i].s, graceful[i].len) == 0)
				return 1;
		}
	}
	return 0;
}

/*
 * 1 when holder, a record's owner, is a held set of o's client, still
 * held: what a lost session of o's client left is o's to take back or
 * withdraw. A held set whose time is over (a ghost) is not.
 */
int
graceful_takes(const struct owner *holder, const struct owner *o)
{
	return holder != NULL && holder->kind == OWNER_HELD &&
	    !holder->ghost && same_client(holder, o);
}

/*
 * A held set for the lost session s, empty: the first of its client's
 * (in the hash, deadline now + the grace time, at the list's tail), or
 * one more after head, with head's deadline, right after it in the list
 * so that the list stays in deadline order. NULL when out of memory.
 */
static struct held_set *
held_new(const struct session *s, struct held_set *head)
{
	struct held_set	*h;
	struct owner	*o;
	char		 k[CLIENT_KEY_MAX];
	size_t		 len;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	o = &h->owner;
	o->kind = OWNER_HELD;
	o->id = s->owner.id;
	memcpy(o->peer, s->owner.peer, sizeof(o->peer));
	memcpy(o->name, s->owner.name, s->owner.name_len + 1);
	o->name_len = s->owner.name_len;
	memcpy(o->ident, s->owner.ident, s->owner.ident_len + 1);
	o->ident_len = s->owner.ident_len;
	TAILQ_INIT(&o->owned);
	if (head != NULL) {
		h->until_ms = head->until_ms;
		h->next = head->next;
		head->next = h;
		TAILQ_INSERT_AFTER(&held, head, h, entry);
		return h;
	}
	len = client_key(o, k);
	if (hash_insert(&held_by_client, &h->node, hash_bytes(k, len)) == -1) {
		free(h);
		return NULL;
	}
	h->until_ms = loop_now_ms() + ispd_conf.graceful_ms;
	TAILQ_INSERT_TAIL(&held, h, entry);
	return h;
}

/* Records held for the client of the held sets from head on. */
static size_t
held_chain_records(const struct held_set *head)
{
	size_t	 n = 0;

	for (; head != NULL; head = head->next)
		n += head->owner.nrecords;
	return n;
}

static void held_release(struct held_set *, const char *);

/*
 * The lost session s gives its records in graceful tables to a held set
 * of its own (so that they keep their owner, s's id). When a lost
 * session of the same client left records that are still held, the new
 * set joins those under their deadline: a client that keeps losing its
 * sessions does not keep its records longer than the grace time after
 * the first loss. When everything was taken back, the grace time starts
 * again. The rest of s's records is withdrawn as usual.
 */
void
graceful_hold(struct session *s)
{
	struct held_set	*head, *h = NULL;
	struct record	*r, *next;
	size_t		 n = 0;

	if (ngraceful == 0)
		return;
	head = held_find(&s->owner);
	for (r = TAILQ_FIRST(&s->owner.owned); r != NULL; r = next) {
		next = TAILQ_NEXT(r, owned);
		if (!r->table->graceful)
			continue;
		if (h == NULL) {
			if (head != NULL && held_chain_records(head) == 0) {
				held_release(head, "held again");
				head = NULL;
			}
			if ((h = held_new(s, head)) == NULL) {
				log_warnx("session %" PRIu64 " (%s): out of "
				    "memory holding its records; withdrawing "
				    "them", s->owner.id, s->owner.peer);
				return;
			}
		}
		table_give(r, &h->owner);
		n++;
	}
	if (n > 0)
		log_info("session %" PRIu64 " (%s): lost; client %s's %zu "
		    "records in graceful tables are held for %" PRIu64
		    " ms", s->owner.id, s->owner.peer, s->owner.name, n,
		    (h->until_ms - loop_now_ms()));
}

/* The held sets of head's client go: what they still hold is withdrawn
 * like a ghost's records, in slices. */
static void
held_release(struct held_set *head, const char *why)
{
	struct held_set	*h, *next;
	size_t		 n = held_chain_records(head);

	if (n == 0)
		log_info("client %s: %s, every held record taken back",
		    head->owner.name, why);
	else
		log_info("client %s: %s; withdrawing the %zu records its lost "
		    "sessions left and no session announced again",
		    head->owner.name, why, n);
	hash_remove(&held_by_client, &head->node);
	for (h = head; h != NULL; h = next) {
		next = h->next;
		h->next = NULL;
		TAILQ_REMOVE(&held, h, entry);
		if (TAILQ_EMPTY(&h->owner.owned)) {
			free(h);
			continue;
		}
		table_ghost_add(&h->owner, PROTO_WD_HELD);
	}
}

/* table.c withdrew the last record of h, a held set whose time was
 * over. */
void
graceful_ghost_done(struct held_set *h)
{
	/* Logged as a session's end is, as it always was. */
	log_debug("session %" PRIu64 " (%s): freed", h->owner.id,
	    h->owner.peer);
	free(h);
}

/* END_OF_REPLAY from s: its client announced again all it holds, so
 * what lost sessions of it left and it did not take back goes now. */
void
graceful_end_of_replay(struct session *s)
{
	struct held_set	*head;

	if ((head = held_find(&s->owner)) == NULL) {
		log_debug("session %" PRIu64 " (%s): end of replay, nothing "
		    "held for client %s", s->owner.id, s->owner.peer,
		    s->owner.name);
		return;
	}
	held_release(head, "end of replay");
}

/* When the first held set's grace time ends; UINT64_MAX without one. */
uint64_t
graceful_next_ms(void)
{
	struct held_set	*h = TAILQ_FIRST(&held);

	return h == NULL ? UINT64_MAX : h->until_ms;
}

void
graceful_expire(uint64_t now_ms)
{
	struct held_set	*h;

	/* A client's held sets share a deadline and follow its first one
	 * (the one in the hash) in the list. */
	while ((h = TAILQ_FIRST(&held)) != NULL && h->until_ms <= now_ms) {
		if ((h = held_find(&h->owner)) == NULL)
			fatalx("graceful_expire: a held set out of the hash");
		held_release(h, "grace time over");
	}
}

/* Records held for graceful restart, and (in *nclients) for how many
 * clients. A held set whose records were all taken back stays until its
 * deadline (so that a new loss restarts it) but counts for nothing. */
size_t
graceful_held_records(size_t *nclients)
{
	struct held_set	*h;
	size_t		 n = 0;

	*nclients = 0;
	TAILQ_FOREACH(h, &held, entry) {
		n += h->owner.nrecords;
		if (held_find(&h->owner) == h && held_chain_records(h) > 0)
			(*nclients)++;
	}
	return n;
}

static int
held_cmp(const void *a, const void *b)
{
	const struct owner	*ha = &(*(struct held_set *const *)a)->owner;
	const struct owner	*hb = &(*(struct held_set *const *)b)->owner;

	return ha->id < hb->id ? -1 : ha->id > hb->id;
}

/* 1 when the table name a (of alen bytes) sorts after b. */
static int
name_after(const char *a, size_t alen, const void *b, size_t blen)
{
	int	 c = memcmp(a, b, alen < blen ? alen : blen);

	return c > 0 || (c == 0 && alen > blen);
}

/*
 * The rows of held set h, a row per table it holds records of, in name
 * order, after the table named after (empty: all), into b. Returns -1
 * when out of memory.
 */
static int
held_rows(struct buf *b, const struct held_set *h, struct proto_bytes after,
    uint32_t *nrows)
{
	const struct owner *o = &h->owner;
	struct table	**v;
	struct record	 *r;
	size_t		  i, n = 0, fstart;
	uint64_t	  now = loop_now_ms(), left;

	if ((v = calloc(table_count(), sizeof(*v))) == NULL)
		return -1;
	TAILQ_FOREACH(r, &o->owned, owned)
		if (r->table->nlisted++ == 0)
			v[n++] = r->table;
	qsort(v, n, sizeof(*v), table_cmp);
	left = h->until_ms > now ? h->until_ms - now : 0;
	for (i = 0; i < n; i++) {
		if (name_after(v[i]->name, v[i]->name_len, after.p, after.len)) {
			fstart = proto_fields_begin(b);
			proto_put_field_u64(b, "session", o->id);
			proto_put_field(b, "client", 6, o->name, o->name_len);
			proto_put_field(b, "identity", 8, o->ident,
			    o->ident_len);
			proto_put_field(b, "table", 5, v[i]->name,
			    v[i]->name_len);
			proto_put_field_u64(b, "records", v[i]->nlisted);
			proto_put_field_u64(b, "expires_ms", left);
			proto_fields_end(b, fstart, 6);
			(*nrows)++;
		}
		v[i]->nlisted = 0;
	}
	free(v);
	return 0;
}

/*
 * ADMIN HELD from s: a page of what graceful restart holds, a row per
 * held set and table (session, client, identity, table, records,
 * expires_ms), in order of session id then table name, starting after
 * the session and table the request names (0 and empty: the first
 * page, which is logged). A page ends after HELD_PAGE_BYTES, so that a
 * million held records of thousands of clients never make one frame too
 * large; an empty page is the last. Returns as table_announce() does.
 */
int
graceful_list(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	struct held_set	**v, *h;
	size_t		  i, n = 0, start, nrec, nclients;
	uint32_t	  nrows = 0;
	int		  rc;

	if ((rc = acl_admin_check(s, ACL_HELD, proto_bytes("*", 1),
	    m->req_id, why, whysz)) != 0)
		return rc;
	TAILQ_FOREACH(h, &held, entry)
		n++;
	if (m->session_id == 0 && m->key.len == 0) {
		nrec = graceful_held_records(&nclients);
		log_info("session %" PRIu64 " (%s, client %s, identity %s): "
		    "listed the held records: %zu of %zu clients",
		    s->owner.id, s->owner.peer, s->owner.name, s->owner.ident,
		    nrec, nclients);
	}
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return -1;
	n = 0;
	TAILQ_FOREACH(h, &held, entry)
		if (h->owner.nrecords > 0 && h->owner.id >= m->session_id)
			v[n++] = h;
	qsort(v, n, sizeof(*v), held_cmp);
	page_buf.len = 0;
	start = proto_rows_begin(&page_buf, m->req_id);
	for (i = 0, rc = 0; i < n && rc == 0 &&
	    page_buf.len - start < HELD_PAGE_BYTES; i++)
		rc = held_rows(&page_buf, v[i], v[i]->owner.id ==
		    m->session_id ? m->key : proto_bytes("", 0), &nrows);
	free(v);
	proto_rows_end(&page_buf, start, nrows);
	if (rc == 0)
		rc = session_send(s, &page_buf, 1);
	page_buf.len = 0;
	buf_clear_failed(&page_buf);
	return rc;
}

void
graceful_init(void)
{
	hash_init(&held_by_client);
	buf_init(&page_buf);
}

/* At exit: every held set goes, its records withdrawn as a ghost's. */
void
graceful_free_all(void)
{
	struct held_set	*h;

	while ((h = TAILQ_FIRST(&held)) != NULL)
		held_release(held_find(&h->owner), "ispd shutting down");
	hash_free(&held_by_client);
	buf_free(&page_buf);
}
