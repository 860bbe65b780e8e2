/*
 * graceful: graceful restart for publishers (--graceful-table, docs/HA.md).
 *
 * When a session is lost (no BYE: a reset, a silence, a killed process),
 * its records in graceful tables are not withdrawn but move to a "held"
 * struct session (a held set: same id, name and identity, no
 * connection) for --graceful-seconds. A session of that client (name and
 * identity) announcing one again with the same fields takes it back
 * without an event (table.c asks graceful_takes()); END_OF_REPLAY from
 * it, or the end of the grace time, withdraws what is left, as table.c
 * withdraws an ended session's records (table_ghost_add()). Held sets
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

#define HELD_OF(n)	((struct session *)((char *)(n) - \
			    offsetof(struct session, held_node)))
/* A client's name, a NUL, its identity: the key of a held set. */
#define CLIENT_KEY_MAX	(2 * SESSION_NAME_MAX + 1)
/* A page of ADMIN HELD's answer ends after this many bytes of rows. */
#define HELD_PAGE_BYTES		(256 * 1024)

/* Held sets, earliest deadline first, and by client. */
static struct session_list	 held = TAILQ_HEAD_INITIALIZER(held);
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

/* The key of s's client in held_by_client, in k; returns its length. */
static size_t
client_key(const struct session *s, char k[CLIENT_KEY_MAX])
{
	memcpy(k, s->name, s->name_len);
	k[s->name_len] = '\0';
	memcpy(k + s->name_len + 1, s->ident, s->ident_len);
	return s->name_len + 1 + s->ident_len;
}

static int
held_eq(const struct hash_node *n, const void *key, size_t len)
{
	char	 k[CLIENT_KEY_MAX];

	return client_key(HELD_OF(n), k) == len && memcmp(k, key, len) == 0;
}

/* 1 when a and b are sessions of one client: same name, same identity. */
static int
same_client(const struct session *a, const struct session *b)
{
	return a->name_len == b->name_len && a->ident_len == b->ident_len &&
	    memcmp(a->name, b->name, a->name_len) == 0 &&
	    memcmp(a->ident, b->ident, a->ident_len) == 0;
}

/* The held set of s's client, or NULL. */
static struct session *
held_find(const struct session *s)
{
	struct hash_node	*n;
	char			 k[CLIENT_KEY_MAX];
	size_t			 len = client_key(s, k);

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
 * 1 when holder, a record's owner, is a held set of s's client: what a
 * lost session of s's client left is s's to take back or withdraw.
 */
int
graceful_takes(const struct session *holder, const struct session *s)
{
	return holder != NULL && holder->held && same_client(holder, s);
}

/*
 * A held set for the lost session s, empty: the first of its client's
 * (in the hash, deadline now + the grace time, at the list's tail), or
 * one more after head, with head's deadline, right after it in the list
 * so that the list stays in deadline order. NULL when out of memory.
 */
static struct session *
held_new(const struct session *s, struct session *head)
{
	struct session	*h;
	char		 k[CLIENT_KEY_MAX];
	size_t		 len;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->id = s->id;
	h->fd = -1;
	h->state = SESSION_LINGER;
	h->held = 1;
	h->released = 1;
	memcpy(h->peer, s->peer, sizeof(h->peer));
	memcpy(h->name, s->name, s->name_len + 1);
	h->name_len = s->name_len;
	memcpy(h->ident, s->ident, s->ident_len + 1);
	h->ident_len = s->ident_len;
	h->auth = s->auth;
	h->since = s->since;
	TAILQ_INIT(&h->owned);
	TAILQ_INIT(&h->subs);
	if (head != NULL) {
		h->held_until_ms = head->held_until_ms;
		h->held_next = head->held_next;
		head->held_next = h;
		TAILQ_INSERT_AFTER(&held, head, h, ghost_entry);
		return h;
	}
	len = client_key(h, k);
	if (hash_insert(&held_by_client, &h->held_node, hash_bytes(k, len))
	    == -1) {
		free(h);
		return NULL;
	}
	h->held_until_ms = loop_now_ms() + ispd_conf.graceful_ms;
	TAILQ_INSERT_TAIL(&held, h, ghost_entry);
	return h;
}

/* Records held for the client of the held sets from head on. */
static size_t
held_chain_records(const struct session *head)
{
	size_t	 n = 0;

	for (; head != NULL; head = head->held_next)
		n += head->nrecords;
	return n;
}

static void held_release(struct session *, const char *);

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
	struct session	*head, *h = NULL;
	struct record	*r, *next;
	size_t		 n = 0;

	if (ngraceful == 0)
		return;
	head = held_find(s);
	for (r = TAILQ_FIRST(&s->owned); r != NULL; r = next) {
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
				    "them", s->id, s->peer);
				return;
			}
		}
		table_give(r, h);
		n++;
	}
	if (n > 0)
		log_info("session %" PRIu64 " (%s): lost; client %s's %zu "
		    "records in graceful tables are held for %" PRIu64
		    " ms", s->id, s->peer, s->name, n,
		    (h->held_until_ms - loop_now_ms()));
}

/* The held sets of head's client go: what they still hold is withdrawn
 * like a ghost's records, in slices. */
static void
held_release(struct session *head, const char *why)
{
	struct session	*h, *next;
	size_t		 n = held_chain_records(head);

	if (n == 0)
		log_info("client %s: %s, every held record taken back",
		    head->name, why);
	else
		log_info("client %s: %s; withdrawing the %zu records its lost "
		    "sessions left and no session announced again", head->name,
		    why, n);
	hash_remove(&held_by_client, &head->held_node);
	for (h = head; h != NULL; h = next) {
		next = h->held_next;
		h->held_next = NULL;
		TAILQ_REMOVE(&held, h, ghost_entry);
		h->held = 0;
		if (TAILQ_EMPTY(&h->owned)) {
			free(h);
			continue;
		}
		table_ghost_add(h, PROTO_WD_HELD);
	}
}

/* END_OF_REPLAY from s: its client announced again all it holds, so
 * what lost sessions of it left and it did not take back goes now. */
void
graceful_end_of_replay(struct session *s)
{
	struct session	*head;

	if ((head = held_find(s)) == NULL) {
		log_debug("session %" PRIu64 " (%s): end of replay, nothing "
		    "held for client %s", s->id, s->peer, s->name);
		return;
	}
	held_release(head, "end of replay");
}

/* When the first held set's grace time ends; UINT64_MAX without one. */
uint64_t
graceful_next_ms(void)
{
	struct session	*h = TAILQ_FIRST(&held);

	return h == NULL ? UINT64_MAX : h->held_until_ms;
}

void
graceful_expire(uint64_t now_ms)
{
	struct session	*h;

	/* A client's held sets share a deadline and follow its first one
	 * (the one in the hash) in the list. */
	while ((h = TAILQ_FIRST(&held)) != NULL && h->held_until_ms <= now_ms) {
		if ((h = held_find(h)) == NULL)
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
	struct session	*h;
	size_t		 n = 0;

	*nclients = 0;
	TAILQ_FOREACH(h, &held, ghost_entry) {
		n += h->nrecords;
		if (held_find(h) == h && held_chain_records(h) > 0)
			(*nclients)++;
	}
	return n;
}

static int
held_cmp(const void *a, const void *b)
{
	const struct session	*ha = *(struct session *const *)a;
	const struct session	*hb = *(struct session *const *)b;

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
held_rows(struct buf *b, const struct session *h, struct proto_bytes after,
    uint32_t *nrows)
{
	struct table	**v;
	struct record	 *r;
	char		  num[24];
	size_t		  i, n = 0, fstart;
	uint64_t	  now = loop_now_ms(), left;

	if ((v = calloc(table_count(), sizeof(*v))) == NULL)
		return -1;
	TAILQ_FOREACH(r, &h->owned, owned)
		if (r->table->nlisted++ == 0)
			v[n++] = r->table;
	qsort(v, n, sizeof(*v), table_cmp);
	left = h->held_until_ms > now ? h->held_until_ms - now : 0;
	for (i = 0; i < n; i++) {
		if (name_after(v[i]->name, v[i]->name_len, after.p, after.len)) {
			fstart = proto_fields_begin(b);
			snprintf(num, sizeof(num), "%" PRIu64, h->id);
			proto_put_field(b, "session", 7, num, strlen(num));
			proto_put_field(b, "client", 6, h->name, h->name_len);
			proto_put_field(b, "identity", 8, h->ident,
			    h->ident_len);
			proto_put_field(b, "table", 5, v[i]->name,
			    v[i]->name_len);
			snprintf(num, sizeof(num), "%" PRIu64, v[i]->nlisted);
			proto_put_field(b, "records", 7, num, strlen(num));
			snprintf(num, sizeof(num), "%" PRIu64, left);
			proto_put_field(b, "expires_ms", 10, num, strlen(num));
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
	struct session	**v, *h;
	size_t		  i, n = 0, start, nrec, nclients;
	uint32_t	  nrows = 0;
	int		  rc;

	if ((rc = acl_admin_check(s, ACL_HELD, proto_bytes("*", 1),
	    m->req_id, why, whysz)) != 0)
		return rc;
	TAILQ_FOREACH(h, &held, ghost_entry)
		n++;
	if (m->session_id == 0 && m->key.len == 0) {
		nrec = graceful_held_records(&nclients);
		log_info("session %" PRIu64 " (%s, client %s, identity %s): "
		    "listed the held records: %zu of %zu clients", s->id,
		    s->peer, s->name, s->ident, nrec, nclients);
	}
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return -1;
	n = 0;
	TAILQ_FOREACH(h, &held, ghost_entry)
		if (h->nrecords > 0 && h->id >= m->session_id)
			v[n++] = h;
	qsort(v, n, sizeof(*v), held_cmp);
	page_buf.len = 0;
	start = proto_rows_begin(&page_buf, m->req_id);
	for (i = 0, rc = 0; i < n && rc == 0 &&
	    page_buf.len - start < HELD_PAGE_BYTES; i++)
		rc = held_rows(&page_buf, v[i], v[i]->id == m->session_id ?
		    m->key : proto_bytes("", 0), &nrows);
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
	struct session	*h;

	while ((h = TAILQ_FIRST(&held)) != NULL)
		held_release(held_find(h), "ispd shutting down");
	hash_free(&held_by_client);
	buf_free(&page_buf);
}
