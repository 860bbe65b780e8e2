/*
 * table: tables of records, and what ANNOUNCE and WITHDRAW do to them.
 *
 * Tables live in a hash by name. Only an operator deletes one (ADMIN
 * DROP); one created again under that name starts above the highest seq
 * any dropped table reached, so a name's seq never goes back. Records
 * live in a hash by key within their table.
 * Each record is on its owner's list (struct owner owned), so a dead
 * session's records are withdrawn in O(records it owns), and moving
 * ownership is an unlink and a relink. Each is also on its table's list
 * in creation order, which snapshot cursors walk (feed.c): unlike the
 * hash, that order survives inserts and removals.
 *
 * A session that ends owning many records must not stall the loop while
 * they are withdrawn (one owner's mass expiry must not overwhelm
 * everyone else). Its struct stays behind as a "ghost" that still
 * owns them (so does a released held set: graceful.c frees it in
 * graceful_ghost_done()), and table_withdraw_run() withdraws them in slices, at most
 * TABLE_WITHDRAW_SLICE per loop turn over all ghosts. Until then they are
 * ordinary records: an ANNOUNCE of one by another session replaces it and
 * takes it over, as always (an EV_ANNOUNCE to whoever was told by one
 * EV_OWNER_GONE that the ghost's records are gone: gone.c). A lost
 * session's records in graceful tables are held for its client's next
 * session instead: graceful.c.
 *
 * Fields are stored as the encoded block the announcer sent: comparing
 * for a no-op refresh is one memcmp, and an event copies the block as is.
 *
 * The built-in table ispd.sessions has a row per welcomed session, owned
 * by ispd itself (owner NULL here, "ispd" and session 0 on the wire).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isp.h"
#include "ispd.h"
#include "acl.h"
#include "feed.h"

#define TABLE_OF(n)	((struct table *)((char *)(n) - \
			    offsetof(struct table, node)))
#define RECORD_OF(n)	((struct record *)((char *)(n) - \
			    offsetof(struct record, node)))

/* Records a ghost gives up per pass before the next ghost's turn, so
 * that a small session ending behind a large one is not kept waiting. */
#define GHOST_PASS_RECORDS	1000

static struct hash		 tables;
static struct table		*sessions_table;
static size_t			 nrecords_total;
/* The highest seq of a dropped table: where new tables start. */
static uint64_t			 dropped_seq;
/* Ended sessions and held sets whose records are being withdrawn. */
static struct owner_list	 ghosts = TAILQ_HEAD_INITIALIZER(ghosts);
/* Withdrawals left in this loop turn. */
static size_t			 withdraw_budget = TABLE_WITHDRAW_SLICE;
/* Sessions whose row's records field may be stale; see table_tick(). */
static struct session_list	 rows_stale =
    TAILQ_HEAD_INITIALIZER(rows_stale);
/* Where a row's fields are built. Not shared with other files: building
 * a row calls into subscr.c, which encodes into its own buffer. */
static struct buf		 row_buf;

static int
table_eq(const struct hash_node *n, const void *name, size_t len)
{
	const struct table	*t = TABLE_OF(n);

	return t->name_len == len && memcmp(t->name, name, len) == 0;
}

static int
record_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct record	*r = RECORD_OF(n);

	return r->key_len == len && memcmp(r->key, key, len) == 0;
}

struct proto_bytes
record_key(const struct record *r)
{
	return proto_bytes(r->key, r->key_len);
}

struct proto_bytes
record_fields(const struct record *r)
{
	return proto_bytes(r->key + r->key_len, r->fields_len);
}

struct proto_bytes
record_owner(const struct record *r)
{
	if (r->owner == NULL)
		return proto_bytes(ISPD_OWNER_NAME, strlen(ISPD_OWNER_NAME));
	return proto_bytes(r->owner->name, r->owner->name_len);
}

uint64_t
record_owner_id(const struct record *r)
{
	return r->owner == NULL ? 0 : r->owner->id;
}

static struct table *
table_new(struct proto_bytes name)
{
	struct table	*t;

	if (!proto_table_valid(name.p, name.len))
		fatalx("table_new: invalid table name of %zu bytes", name.len);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	hash_init(&t->records);
	TAILQ_INIT(&t->order);
	TAILQ_INIT(&t->subs);
	TAILQ_INIT(&t->cursors);
	memcpy(t->name, name.p, name.len);
	t->name_len = (uint8_t)name.len;
	t->seq = dropped_seq;
	t->graceful = graceful_match(t->name, t->name_len);
	if (hash_insert(&tables, &t->node, hash_bytes(name.p, name.len)) ==
	    -1) {
		free(t);
		return NULL;
	}
	log_debug("table %s created", t->name);
	return t;
}

void
table_init(void)
{
	hash_init(&tables);
	graceful_init();
	buf_init(&row_buf);
	sessions_table = table_new(proto_bytes(PROTO_SESSIONS_TABLE,
	    strlen(PROTO_SESSIONS_TABLE)));
	if (sessions_table == NULL)
		fatal("table_init");
	/* Discovery: a row goes with its session, whatever the patterns. */
	sessions_table->readonly = 1;
	sessions_table->graceful = 0;
}

struct table *
table_find(struct proto_bytes name)
{
	struct hash_node	*n;

	n = hash_find(&tables, hash_bytes(name.p, name.len), name.p, name.len,
	    table_eq);
	return n == NULL ? NULL : TABLE_OF(n);
}

/*
 * Creates the table of that (valid, absent) name for s, within
 * --max-tables and s's --max-table-creates-per-sec. Returns 0 with *tp
 * set; ISP_E_LIMIT with why filled; or -1 when out of memory.
 */
int
table_create(struct session *s, struct proto_bytes name, struct table **tp,
    char *why, size_t whysz)
{
	char	 tname[PROTO_MAX_TABLE_BYTES + 1];
	size_t	 n = tables.count - 1;	/* ispd.sessions is not counted */
	int	 rc;

	log_escape(tname, sizeof(tname), name.p, name.len);
	if (n >= ispd_conf.max_tables) {
		limit_hit(CONF_MAX_TABLES);
		snprintf(why, whysz, "table %s not created: ispd holds %zu "
		    "tables, the limit (--max-tables %" PRIu64 ")", tname, n,
		    ispd_conf.max_tables);
		return ISP_E_LIMIT;
	}
	if ((rc = limit_table_create(s, why, whysz)) != 0)
		return rc;
	if ((*tp = table_new(name)) == NULL)
		return -1;
	return 0;
}

static struct record *
record_find(const struct table *t, uint64_t hv, struct proto_bytes key)
{
	struct hash_node	*n;

	n = hash_find(&t->records, hv, key.p, key.len, record_eq);
	return n == NULL ? NULL : RECORD_OF(n);
}

/* The record of key in t, or NULL. */
struct record *
table_lookup(const struct table *t, struct proto_bytes key)
{
	return record_find(t, hash_bytes(key.p, key.len), key);
}

/* The session's row records field is refreshed by the next tick rather
 * than now, so an announce does not cost a second fan-out. */
static void
table_row_stale(struct session *s)
{
	if (s->row == NULL || s->row_stale)
		return;
	s->row_stale = 1;
	TAILQ_INSERT_TAIL(&rows_stale, s, stale_entry);
}

/* A session's row counts its records; a held set has no row. */
static void
table_owner_changed(struct owner *o)
{
	if (o->kind == OWNER_SESSION)
		table_row_stale(owner_session(o));
}

static void
record_own(struct record *r, struct owner *o)
{
	r->owner = o;
	if (o == NULL)
		return;
	TAILQ_INSERT_TAIL(&o->owned, r, owned);
	o->nrecords++;
	table_owner_changed(o);
}

static void
record_unown(struct record *r)
{
	struct owner	*o = r->owner;

	if (o == NULL)
		return;
	if (o->nrecords == 0)
		fatalx("record_unown: owner %" PRIu64 " owns no record",
		    o->id);
	TAILQ_REMOVE(&o->owned, r, owned);
	o->nrecords--;
	r->owner = NULL;
	table_owner_changed(o);
}

static void
record_free(struct record *r)
{
	free(r);
}

/*
 * A replace whose fields have another size: nw, allocated for them,
 * takes r's header and key and r's place everywhere a record is linked
 * (the table's hash and order, the TTL heap, snapshot cursors, a
 * session's row). r must be unowned; the caller owns nw. Frees r.
 */
static struct record *
record_move(struct record *r, struct record *nw)
{
	struct table	*t = r->table;

	memcpy(nw, r, RECORD_HEAD + r->key_len);
	hash_replace(&t->records, &r->node, &nw->node);
	TAILQ_INSERT_BEFORE(r, nw, order_entry);
	TAILQ_REMOVE(&t->order, r, order_entry);
	ttl_moved(r, nw);
	feed_record_moved(t, r, nw);
	free(r);
	return nw;
}

/*
 * Stores key with fields in t, owned by owner, expiring at expire_ms (0:
 * never). Emits EV_ANNOUNCE for a new key, EV_REPLACE for a changed one;
 * the same owner announcing the same fields only moves the expiry.
 * Returns 0 with *rp (when set) pointing at the record, which a replace
 * of another size moves; or -1 when out of memory, with nothing changed:
 * everything that can fail is allocated before the table is touched.
 */
static int
table_store(struct table *t, struct proto_bytes key, struct proto_bytes fields,
    struct owner *owner, uint64_t expire_ms, struct record **rp)
{
	struct record	*r, *nw = NULL;
	struct owner	*was = NULL;
	uint64_t	 hv = hash_bytes(key.p, key.len);
	uint8_t		 type;

	r = record_find(t, hv, key);
	if (r != NULL && r->fields_len == fields.len &&
	    memcmp(r->key + r->key_len, fields.p, fields.len) == 0 &&
	    (r->owner == owner || (owner != NULL &&
	    graceful_takes(r->owner, owner)))) {
		/* A refresh (SIP re-REGISTER), or a client's new session
		 * announcing again what a lost one of it left held: no
		 * event, no fan-out, only the owner may move. */
		if (expire_ms != 0 && r->ttl_idx == TTL_NONE &&
		    ttl_reserve() == -1)
			return -1;
		if (r->owner != owner) {
			record_unown(r);
			record_own(r, owner);
			if (t->ngone_subs > 0) {
				/* Silent only to subscriptions that do
				 * not take EV_OWNER_GONE. */
				r->seq = ++t->seq;
				ispd_stats.events++;
				subscr_owner_moved(t, r);
			}
		}
		if (expire_ms == 0)
			ttl_clear(r);
		else
			ttl_set(r, expire_ms);
		if (rp != NULL)
			*rp = r;
		return 0;
	}

	/* Record, key and fields in one allocation; a replace of the same
	 * size keeps it. */
	if ((r == NULL || r->fields_len != fields.len) &&
	    (nw = malloc(RECORD_HEAD + key.len + fields.len)) == NULL)
		return -1;
	if (expire_ms != 0 && (r == NULL || r->ttl_idx == TTL_NONE) &&
	    ttl_reserve() == -1) {
		free(nw);
		return -1;
	}
	if (r == NULL) {
		r = nw;
		memset(r, 0, RECORD_HEAD);
		r->table = t;
		r->ttl_idx = TTL_NONE;
		r->key_len = (uint16_t)key.len;
		memcpy(r->key, key.p, key.len);
		if (hash_insert(&t->records, &r->node, hv) == -1) {
			free(r);
			return -1;
		}
		r->order = t->next_order++;
		TAILQ_INSERT_TAIL(&t->order, r, order_entry);
		nrecords_total++;
		type = PROTO_EV_ANNOUNCE;
	} else {
		/* An ended owner's record is a new key to whom it told so
		 * (subscr_event()). */
		was = r->owner;
		record_unown(r);
		if (nw != NULL)
			r = record_move(r, nw);
		type = PROTO_EV_REPLACE;
	}
	memcpy(r->key + r->key_len, fields.p, fields.len);
	r->fields_len = (uint32_t)fields.len;
	record_own(r, owner);
	if (expire_ms == 0)
		ttl_clear(r);
	else
		ttl_set(r, expire_ms);
	r->seq = ++t->seq;
	ispd_stats.events++;
	subscr_event(t, type, r, 0, was);
	if (rp != NULL)
		*rp = r;
	return 0;
}

/* Withdraws r, telling the subscribers why, and frees it. */
static void
record_remove(struct record *r, uint8_t reason)
{
	struct table	*t = r->table;

	r->seq = ++t->seq;
	ispd_stats.events++;
	subscr_event(t, PROTO_EV_WITHDRAW, r, reason, r->owner);
	feed_record_removed(t, r);
	TAILQ_REMOVE(&t->order, r, order_entry);
	record_unown(r);
	ttl_clear(r);
	hash_remove(&t->records, &r->node);
	nrecords_total--;
	record_free(r);
}

/* Bytes of the EV_ANNOUNCE frame this record would make. */
static size_t
table_event_bytes(const struct proto_msg *m, size_t owner_len)
{
	return PROTO_HEADER_BYTES + 1 + m->table.len + 8 + 2 + m->key.len +
	    8 + 2 + owner_len + m->fields.len;
}

/*
 * ANNOUNCE from s. Returns 0; an ISP_E_* code with why filled for the
 * ERROR reply; or -1 when out of memory (the caller closes s).
 */
int
table_announce(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	struct table	*t;
	struct record	*r;
	uint64_t	 expire_ms = 0;
	size_t		 n;
	int		 rc;

	t = table_find(m->table);
	if (t != NULL && t->readonly) {
		snprintf(why, whysz, "table %s is kept by ispd and is "
		    "read-only", t->name);
		return ISP_E_READONLY;
	}
	if ((rc = acl_check(s, t == NULL ? ACL_ANNOUNCE | ACL_CREATE :
	    ACL_ANNOUNCE, t, m->table, m->req_id, why, whysz)) != 0)
		return rc;
	/* The event frame carries the owner's name and more integers than
	 * the ANNOUNCE did: a record whose event would not fit the frame
	 * limit would make every subscriber drop the session. */
	if ((n = table_event_bytes(m, s->owner.name_len)) >
	    PROTO_MAX_FRAME_BYTES) {
		snprintf(why, whysz, "record too large: its event would be a "
		    "frame of %zu bytes, over the limit of %u", n,
		    PROTO_MAX_FRAME_BYTES);
		return ISP_E_LIMIT;
	}
	if ((rc = limit_record(m, why, whysz)) != 0)
		return rc;
	/* Only a record this session does not own yet counts: a refresh
	 * or a change of its own is always allowed. */
	if (s->owner.nrecords >= ispd_conf.max_records_per_session &&
	    (t == NULL || (r = table_lookup(t, m->key)) == NULL ||
	    r->owner != &s->owner)) {
		limit_hit(CONF_MAX_RECORDS_PER_SESSION);
		snprintf(why, whysz, "this session owns %zu records, the limit "
		    "(--max-records-per-session %" PRIu64 ")",
		    s->owner.nrecords, ispd_conf.max_records_per_session);
		return ISP_E_LIMIT;
	}
	if (t == NULL && (rc = table_create(s, m->table, &t, why,
	    whysz)) != 0)
		return rc;
	if (m->ttl_s > 0)
		expire_ms = loop_now_ms() + (uint64_t)m->ttl_s * 1000;
	return table_store(t, m->key, m->fields, &s->owner, expire_ms, NULL);
}

/*
 * The record a WITHDRAW or an ADMIN EVICT names, in a table clients may
 * change, its key printable in key; NULL with why and *rc (NOT_FOUND,
 * READONLY) when there is none.
 */
static struct record *
table_request_record(const struct proto_msg *m, char *key, size_t keysz,
    char *why, size_t whysz, int *rc)
{
	char		 tname[PROTO_MAX_TABLE_BYTES + 1];
	struct table	*t;
	struct record	*r;

	log_escape(tname, sizeof(tname), m->table.p, m->table.len);
	*rc = ISP_E_NOT_FOUND;
	if ((t = table_find(m->table)) == NULL) {
		snprintf(why, whysz, "no table %s", tname);
		return NULL;
	}
	if (t->readonly) {
		snprintf(why, whysz, "table %s is kept by ispd and is "
		    "read-only", t->name);
		*rc = ISP_E_READONLY;
		return NULL;
	}
	log_escape(key, keysz, m->key.p, m->key.len);
	r = record_find(t, hash_bytes(m->key.p, m->key.len), m->key);
	if (r == NULL)
		snprintf(why, whysz, "no record %s in table %s", key, t->name);
	return r;
}

/* WITHDRAW from s. Returns as table_announce() does. */
int
table_withdraw(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	char		 key[128];
	struct record	*r;
	int		 rc;

	if ((r = table_request_record(m, key, sizeof(key), why, whysz,
	    &rc)) == NULL)
		return rc;
	/* What a lost session of this client left held is this client's
	 * to withdraw too. */
	if (r->owner != &s->owner && !graceful_takes(r->owner, &s->owner)) {
		snprintf(why, whysz, "record %s in %s is owned by session %"
		    PRIu64 " (%s)", key, r->table->name, record_owner_id(r),
		    r->owner != NULL ? r->owner->name : ISPD_OWNER_NAME);
		return ISP_E_NOT_OWNER;
	}
	record_remove(r, PROTO_WD_OWNER);
	return 0;
}

/*
 * ADMIN EVICT from s: the record goes whoever owns it, a held one too,
 * with reason EVICTED. Its owner may announce it again. Returns as
 * table_announce() does.
 */
int
table_evict(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	char		 key[128], owner[SESSION_NAME_MAX + 32];
	struct record	*r;
	int		 rc;

	if ((rc = acl_admin_check(s, ACL_EVICT, m->table, m->req_id, why,
	    whysz)) != 0)
		return rc;
	if ((r = table_request_record(m, key, sizeof(key), why, whysz,
	    &rc)) == NULL)
		return rc;
	snprintf(owner, sizeof(owner), "%s (session %" PRIu64 ")",
	    r->owner != NULL ? r->owner->name : ISPD_OWNER_NAME,
	    record_owner_id(r));
	log_info("session %" PRIu64 " (%s, client %s, identity %s): evicted "
	    "record %s of table %s, owned by %s", s->owner.id, s->owner.peer,
	    s->owner.name, s->owner.ident, key, r->table->name, owner);
	record_remove(r, PROTO_WD_EVICTED);
	return subscr_reply_done(s, m->req_id, owner);
}

/*
 * ADMIN DROP from s: the table goes. Its records are withdrawn with
 * reason EVICTED whoever owns them, held ones too; then each
 * subscription to it ends with an ERROR after what its subscriber is
 * owed (subscr_table_dropped()), and the table is freed: QUERY TABLES
 * no longer lists it and it no longer counts in --max-tables. A client
 * announcing into that name or subscribing to it later creates it
 * again. Done at once, so it costs what withdrawing its records costs:
 * the table of a typo holds few. Returns as table_announce() does.
 */
int
table_drop(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	char		 tname[PROTO_MAX_TABLE_BYTES + 1], done[200];
	char		 reason[PROTO_MAX_TABLE_BYTES + 2 * SESSION_NAME_MAX +
			    80];
	struct table	*t;
	struct record	*r;
	size_t		 nrec, nsubs;
	int		 rc;

	if ((rc = acl_admin_check(s, ACL_DROP, m->table, m->req_id, why,
	    whysz)) != 0)
		return rc;
	if ((t = table_find(m->table)) == NULL) {
		snprintf(why, whysz, "no table %s", log_escape(tname,
		    sizeof(tname), m->table.p, m->table.len));
		return ISP_E_NOT_FOUND;
	}
	if (t->readonly) {
		snprintf(why, whysz, "table %s is kept by ispd and cannot be "
		    "dropped", t->name);
		return ISP_E_READONLY;
	}
	nrec = t->records.count;
	while ((r = TAILQ_FIRST(&t->order)) != NULL)
		record_remove(r, PROTO_WD_EVICTED);
	snprintf(reason, sizeof(reason), "table %s was dropped by an "
	    "operator (client %s, identity %s)", t->name, s->owner.name,
	    s->owner.ident);
	nsubs = subscr_table_dropped(t, reason);
	snprintf(done, sizeof(done), "table %s: %zu records withdrawn, %zu "
	    "subscriptions ended", t->name, nrec, nsubs);
	log_info("session %" PRIu64 " (%s, client %s, identity %s): dropped "
	    "%s", s->owner.id, s->owner.peer, s->owner.name, s->owner.ident,
	    done);
	if (t->seq > dropped_seq)
		dropped_seq = t->seq;
	hash_remove(&tables, &t->node);
	hash_free(&t->records);
	free(t);
	acl_table_dropped();
	return subscr_reply_done(s, m->req_id, done);
}

/* Called by ttl.c for a record whose TTL ran out. */
void
table_expire(struct record *r)
{
	record_remove(r, PROTO_WD_EXPIRED);
}

/* Stores s's row in ispd.sessions: name, peer, since, records. */
static int
table_row_store(struct session *s)
{
	char	 key[24];
	size_t	 start;

	snprintf(key, sizeof(key), "%" PRIu64, s->owner.id);
	row_buf.len = 0;
	start = proto_fields_begin(&row_buf);
	proto_put_field(&row_buf, "name", 4, s->owner.name,
	    s->owner.name_len);
	proto_put_field(&row_buf, "peer", 4, s->owner.peer,
	    strlen(s->owner.peer));
	proto_put_field_u64(&row_buf, "since", (uint64_t)s->since);
	proto_put_field_u64(&row_buf, "records", s->owner.nrecords);
	proto_fields_end(&row_buf, start, 4);
	if (buf_failed(&row_buf)) {
		buf_clear_failed(&row_buf);
		return -1;
	}
	if (table_store(sessions_table, proto_bytes(key, strlen(key)),
	    proto_bytes(row_buf.data, row_buf.len), NULL, 0, &s->row) == -1)
		return -1;
	s->row_nrecords = s->owner.nrecords;
	return 0;
}

/* A session was welcomed: announce its row. Returns 0 or -1 (out of
 * memory; the caller closes the session). */
int
table_session_welcome(struct session *s)
{
	return table_row_store(s);	/* sets s->row */
}

/* s's row leaves ispd.sessions. */
static void
table_row_remove(struct session *s)
{
	if (s->row_stale) {
		TAILQ_REMOVE(&rows_stale, s, stale_entry);
		s->row_stale = 0;
	}
	if (s->row != NULL) {
		record_remove(s->row, PROTO_WD_SESSION);
		s->row = NULL;
	}
}

/*
 * Withdraws records of ghosts, as long as this turn's budget lasts: each
 * ghost in turn gives up to GHOST_PASS_RECORDS. A ghost left with no
 * record is done: a session's row goes, then the struct (session.c's or
 * graceful.c's).
 */
static void
table_ghost_step(void)
{
	struct owner	*o;
	struct record	*r;
	struct session	*s;
	size_t		 n;

	while (withdraw_budget > 0 && (o = TAILQ_FIRST(&ghosts)) != NULL) {
		for (n = 0; n < GHOST_PASS_RECORDS && withdraw_budget > 0 &&
		    (r = TAILQ_FIRST(&o->owned)) != NULL; n++) {
			record_remove(r, o->ghost_reason);
			withdraw_budget--;
		}
		TAILQ_REMOVE(&ghosts, o, ghost_entry);
		if (!TAILQ_EMPTY(&o->owned)) {
			TAILQ_INSERT_TAIL(&ghosts, o, ghost_entry);
			continue;
		}
		o->ghost = 0;
		gone_done(o);
		log_debug("session %" PRIu64 " (%s): every record withdrawn",
		    o->id, o->peer);
		if (o->kind == OWNER_SESSION) {
			s = owner_session(o);
			table_row_remove(s);
			session_ghost_done(s);
		} else
			graceful_ghost_done(owner_held(o));
	}
}

/*
 * A session ended: the records it still owns are withdrawn, now if this
 * turn's budget allows, else over the next turns while s stays as a
 * ghost (s->owner.ghost; session_ghost_done() is called when it is
 * over). Its
 * row leaves ispd.sessions after its records, so that a row gone means
 * every record of that session is gone; until then the row's records
 * field counts down.
 */
void
table_session_end(struct session *s)
{
	if (s->lost)
		graceful_hold(s);
	if (TAILQ_EMPTY(&s->owner.owned)) {
		table_row_remove(s);
		return;
	}
	if (s->owner.nrecords > TABLE_WITHDRAW_SLICE)
		log_info("session %" PRIu64 " (%s): withdrawing its %zu "
		    "records, %d per loop turn", s->owner.id, s->owner.peer,
		    s->owner.nrecords, TABLE_WITHDRAW_SLICE);
	table_ghost_add(&s->owner, PROTO_WD_SESSION);
}

/*
 * o (an ended session, or a held set whose time is over) gives up its
 * records with reason: now if this turn's budget allows, else over the
 * next turns (table_ghost_step()).
 */
void
table_ghost_add(struct owner *o, uint8_t reason)
{
	o->ghost = 1;
	o->ghost_reason = reason;
	gone_tell(o);
	TAILQ_INSERT_TAIL(&ghosts, o, ghost_entry);
	table_ghost_step();
}

/* Ownership of r moves to o (a held set taking a lost session's record,
 * in graceful.c). */
void
table_give(struct record *r, struct owner *o)
{
	record_unown(r);
	record_own(r, o);
}

/* Once per loop turn: a new budget, and the ghosts' next slice. */
void
table_withdraw_run(void)
{
	withdraw_budget = TABLE_WITHDRAW_SLICE;
	table_ghost_step();
}

/* 1 while ghosts hold records: the loop must not sleep. */
int
table_withdraw_pending(void)
{
	return !TAILQ_EMPTY(&ghosts);
}

/* Records still owned by ghosts. */
size_t
table_withdraw_backlog(void)
{
	struct owner	*o;
	size_t		 n = 0;

	TAILQ_FOREACH(o, &ghosts, ghost_entry)
		n += o->nrecords;
	return n;
}

/* Every second: refresh the records field of the rows that changed. */
void
table_tick(void)
{
	struct session	*s;

	while ((s = TAILQ_FIRST(&rows_stale)) != NULL) {
		TAILQ_REMOVE(&rows_stale, s, stale_entry);
		s->row_stale = 0;
		if (s->owner.nrecords == s->row_nrecords)
			continue;
		if (table_row_store(s) == -1) {
			/* Out of memory: the row stays stale and we try
			 * again at the next tick. */
			log_warnx("out of memory refreshing the row of "
			    "session %" PRIu64, s->owner.id);
			table_row_stale(s);
			break;
		}
	}
}

/* Orders tables (an array of pointers) by name, for qsort(). */
int
table_cmp(const void *a, const void *b)
{
	const struct table	*ta = *(struct table *const *)a;
	const struct table	*tb = *(struct table *const *)b;
	size_t			 n;
	int			 c;

	n = ta->name_len < tb->name_len ? ta->name_len : tb->name_len;
	if ((c = memcmp(ta->name, tb->name, n)) != 0)
		return c;
	return (int)ta->name_len - (int)tb->name_len;
}

/* Every table, in name order, in an array the caller frees. NULL when
 * out of memory. */
struct table **
table_sorted(size_t *n)
{
	struct table		**v;
	struct hash_node	 *node = NULL;
	size_t			  pos = 0, i = 0;

	if ((v = calloc(tables.count, sizeof(*v))) == NULL)
		return NULL;
	while ((node = hash_next(&tables, &pos, node)) != NULL)
		v[i++] = TABLE_OF(node);
	qsort(v, i, sizeof(*v), table_cmp);
	*n = i;
	return v;
}

size_t
table_count(void)
{
	return tables.count;
}

size_t
table_record_count(void)
{
	return nrecords_total;
}

/* At exit, after every session ended: frees tables and what records are
 * left (TTL'd ones of sessions long gone, for instance). */
void
table_free_all(void)
{
	struct hash_node	*tn, *tnext, *rn, *rnext;
	struct table		*t;
	struct record		*r;
	size_t			 tpos = 0, rpos;

	/* Held sets and ghosts first, whole: nobody subscribes any more. */
	graceful_free_all();
	while (!TAILQ_EMPTY(&ghosts)) {
		withdraw_budget = SIZE_MAX;
		table_ghost_step();
	}
	withdraw_budget = TABLE_WITHDRAW_SLICE;
	for (tn = hash_next(&tables, &tpos, NULL); tn != NULL; tn = tnext) {
		tnext = hash_next(&tables, &tpos, tn);
		t = TABLE_OF(tn);
		if (!TAILQ_EMPTY(&t->subs))
			fatalx("table_free_all: table %s has subscribers",
			    t->name);
		rpos = 0;
		for (rn = hash_next(&t->records, &rpos, NULL); rn != NULL;
		    rn = rnext) {
			rnext = hash_next(&t->records, &rpos, rn);
			r = RECORD_OF(rn);
			record_unown(r);
			ttl_clear(r);
			record_free(r);
		}
		hash_free(&t->records);
		free(t);
	}
	hash_free(&tables);
	ttl_free();
	buf_free(&row_buf);
	sessions_table = NULL;
	nrecords_total = 0;
	TAILQ_INIT(&rows_stale);
}
