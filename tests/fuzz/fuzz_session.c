/*
 * Fuzz target for the daemon's session state machine: the input is the
 * byte stream a client sends, delivered over a socketpair to a real
 * session (session_new) and handled by the real loop (loop_once(0)), with
 * the daemon's own table, subscription, TTL and output code behind it.
 *
 * The first byte chooses how the stream is delivered and how the
 * session ends (the flags below); the rest is the stream. The seeds
 * (tests/fuzz/seeds_session.c) are whole realistic sessions, so the
 * fuzzer mutates sequences of frames, not single frames.
 *
 * RECONNECT in the stream splits it (up to MAX_PARTS times): the
 * session sending the part before it is lost (its peer closes the
 * connection) and a new session sends the part after it, as a
 * publisher that restarts and replays does. The table T and the
 * tables named GRACE_PREFIX... are graceful (docs/HA.md): a lost
 * session's records there are held for its client, taken back by its
 * next session, withdrawn at END_OF_REPLAY or after the grace time.
 *
 * Beyond "no crash, no sanitizer finding, no leak", after each input:
 *  - every frame the daemon wrote decodes, and is one a server may send;
 *    a session that began with a valid HELLO got WELCOME first;
 *  - the watching session (F_PEER) keeps a view of its tables from its
 *    events, as a client mirror does, and the events keep the promises
 *    of docs/PROTOCOL.md: no EV_ANNOUNCE of a key held, no EV_REPLACE or
 *    EV_WITHDRAW of a key not held, a key's seq only grows, EV_END's
 *    count is the keys held and later events have a greater seq; once
 *    all output is read, the view equals the tables (keys, fields,
 *    owners, seqs; in a graceful table a record a session took back
 *    without an event from a lost session of its client may name that
 *    one). When the input's length is odd the watcher subscribes to T
 *    with PROTO_SUB_OWNER_GONE: an EV_OWNER_GONE then withdraws every
 *    key it holds of that owner, exactly its count of them, and the
 *    owners of its view must be the table's with no exception;
 *  - ownership adds up: every record is owned by a READY session, by an
 *    ended one whose records are being withdrawn (a ghost), by a held
 *    set (found through the records: it is on no session list) and
 *    then in a graceful table, or is a row of ispd.sessions; each
 *    owner's owned list, its nrecords and the records naming it as
 *    owner agree; their sum plus one row per READY session or session
 *    ghost is table_record_count(); the held sets' records are
 *    graceful_held_records(), the ghosts' table_withdraw_backlog();
 *    subscriptions likewise;
 *  - a session lost after it read all its input leaves each record it
 *    had in a graceful table (without TTL) as it was, held for its
 *    client;
 *  - once the peers hang up (after reading all output, or with output
 *    unread, or after hold-time expiry), every session is freed through
 *    the normal close path within a bounded number of loop turns; or, on
 *    the shutdown path, at once, each open one sent BYE SHUTDOWN last.
 *    With the watcher, on the first path, the other sessions go first
 *    and the grace time ends while it still reads: its view must follow.
 *    Then the grace time ends: what is held is withdrawn in slices, and
 *    no record, held set, subscription or live session is left.
 * The daemon's global state (tables, TTL heap) is then freed and made
 * anew, as at exit and start, so one input cannot affect the next.
 *
 * Whether a struct session is still allocated is asked of ASan (the
 * target is always built with it): freed memory stays poisoned in its
 * quarantine (256 MiB) far longer than one input runs.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sanitizer/asan_interface.h>

#include "isp.h"
#include "ispd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Flags in the first input byte. */
#define F_HELLO		0x01	/* a valid HELLO goes before the stream */
#define F_PEER		0x02	/* a second session owns a record of T and
				 * watches T and ispd.sessions */
#define F_CHUNKS	0x04	/* the stream in small writes, a loop turn
				 * after each: partial frames, input buffer */
#define F_SLOW		0x08	/* small socket buffers, output read only at
				 * the end: EPOLLOUT, queued output, and
				 * readers behind (coalescing, catch-up) */
#define F_EXPIRE	0x10	/* afterwards, TTLs of up to EXPIRE_S run out */
#define F_BIGCHUNK	0x20	/* with F_CHUNKS: 509-byte writes, not 1
				 * (longer when the input is over 512) */
#define F_END_SHIFT	6	/* bits 6-7: how it ends, one of END_* */
#define END_HANGUP	0	/* output read, then the peers hang up */
#define END_HOLD	1	/* silence: hold-time expiry, BYE */
#define END_ABORT	2	/* the peers hang up with output unread */
#define END_SHUTDOWN	3	/* the daemon shuts down (SIGTERM's path) */

#define T		"SIP_REGISTRATION"
#define PEER_KEY	"alice@example.com|1"
#define EXPIRE_S	120
/* Graceful tables: T and those named with this prefix. The grace time
 * is well beyond what one input runs for, so that only the harness ends
 * it (grace_over), never the clock. */
#define GRACE_PREFIX	"graceful."
#define GRACE_MS	10000
/* Splits the stream between sessions; see the top comment. */
#define RECONNECT	"~RECONNECT~"
#define MAX_PARTS	4
/* The peer, then one session per part. */
#define MAX_FZ		(1 + MAX_PARTS)
/* Held sets and ghosts of them, as found through the records. */
#define MAX_HELD	(2 * MAX_FZ)
/* Loop turns allowed for a session to go once its peer hung up. */
#define CLOSE_TURNS	16
/* Loop turns without any progress before the writer gives up. */
#define STALL_TURNS	8
#define MAX_TABLES	64
#define MAX_CHUNKS	512
/* Loop turns for every queue to drain once the output is read. */
#define SETTLE_TURNS	64

/* One session and our end of its socketpair. */
struct fz {
	const char	*name;
	struct session	*s;
	int		 fd;		/* ours; -1 once closed */
	struct buf	 out;		/* bytes read, not yet decoded */
	int		 nframes;	/* frames decoded so far */
	uint8_t		 last_type;	/* of the last frame decoded */
	uint16_t	 last_code;	/* its code, for ERROR and BYE */
	int		 want_welcome;	/* the first frame must be WELCOME */
	int		 watch;		/* keep and check a view (below) */
	int		 gone;		/* T with PROTO_SUB_OWNER_GONE */
	struct hash	 view;		/* struct vrec by table and key */
	struct {
		uint8_t		 name[PROTO_MAX_TABLE_BYTES];
		size_t		 len;
		uint64_t	 end_seq;	/* of its EV_END */
		int		 ended;
		int		 dropped;	/* ended by ADMIN DROP */
	}		 subs[MAX_TABLES];
	size_t		 nsubs;
};

static void
die(const char *what, const struct fz *c)
{
	fprintf(stderr, "fuzz_session: %s (session %s)\n", what,
	    c != NULL ? c->name : "-");
	abort();
}

static int
fz_alive(const struct fz *c)
{
	return c->s != NULL && !__asan_address_is_poisoned(c->s);
}

/*
 * The watcher's view: what applying its events by key gives (the way a
 * client mirror does), with what docs/PROTOCOL.md promises about them:
 * no EV_ANNOUNCE of a key held, no EV_REPLACE or EV_WITHDRAW of a key
 * not held; a key's seq only grows; EV_END's count is the keys held
 * then, and every later event has a seq above EV_END's. At the end the
 * view must equal the table (view_check).
 */
struct vrec {
	struct hash_node	 node;
	int			 present;	/* 0: withdrawn, seq kept */
	uint64_t		 seq;
	uint64_t		 owner;
	char			 owner_name[PROTO_MAX_STR_BYTES + 1];
	uint8_t			*fields;
	size_t			 fields_len;
	size_t			 len;
	uint8_t			 k[];		/* u8 table length, table, key */
};

static int
vrec_eq(const struct hash_node *n, const void *k, size_t len)
{
	const struct vrec	*v = (const struct vrec *)n;

	return v->len == len && memcmp(v->k, k, len) == 0;
}

static size_t
view_key(uint8_t *k, struct proto_bytes table, struct proto_bytes key)
{
	k[0] = (uint8_t)table.len;
	memcpy(k + 1, table.p, table.len);
	memcpy(k + 1 + table.len, key.p, key.len);
	return 1 + table.len + key.len;
}

static struct vrec *
view_find(struct fz *c, struct proto_bytes table, struct proto_bytes key)
{
	uint8_t	 k[1 + PROTO_MAX_TABLE_BYTES + PROTO_MAX_KEY_BYTES];
	size_t	 len = view_key(k, table, key);

	return (struct vrec *)hash_find(&c->view, hash_bytes(k, len), k, len,
	    vrec_eq);
}

static size_t
view_count(struct fz *c, struct proto_bytes table)
{
	struct hash_node	*n = NULL;
	struct vrec		*v;
	size_t			 pos = 0, count = 0;

	while ((n = hash_next(&c->view, &pos, n)) != NULL) {
		v = (struct vrec *)n;
		count += v->present && v->k[0] == table.len &&
		    memcmp(v->k + 1, table.p, table.len) == 0;
	}
	return count;
}

static void
view_free(struct fz *c)
{
	struct hash_node	*n, *next;
	size_t			 pos = 0;

	for (n = hash_next(&c->view, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&c->view, &pos, n);
		free(((struct vrec *)n)->fields);
		free(n);
	}
	hash_free(&c->view);
}

/* EV_OWNER_GONE: every key of the table the view holds of that owner
 * goes, and there must be m->count of them. */
static void
view_owner_gone(struct fz *c, const struct proto_msg *m)
{
	struct hash_node	*n = NULL;
	struct vrec		*v;
	size_t			 pos = 0;
	uint64_t		 count = 0;

	while ((n = hash_next(&c->view, &pos, n)) != NULL) {
		v = (struct vrec *)n;
		if (!v->present || v->owner != m->owner_session ||
		    v->k[0] != m->table.len ||
		    memcmp(v->k + 1, m->table.p, m->table.len) != 0)
			continue;
		v->present = 0;
		count++;
	}
	if (count != m->count || count == 0)
		die("EV_OWNER_GONE's count is not the keys of that owner "
		    "held", c);
}

static void
view_apply(struct fz *c, const struct proto_msg *m)
{
	uint8_t		 k[1 + PROTO_MAX_TABLE_BYTES + PROTO_MAX_KEY_BYTES];
	struct vrec	*v;
	size_t		 i, len;

	for (i = 0; i < c->nsubs; i++)
		if (c->subs[i].len == m->table.len &&
		    memcmp(c->subs[i].name, m->table.p, m->table.len) == 0)
			break;
	if (i == c->nsubs) {
		if (c->nsubs == MAX_TABLES)
			die("events of too many tables", c);
		memcpy(c->subs[i].name, m->table.p, m->table.len);
		c->subs[i].len = m->table.len;
		c->nsubs++;
	}
	if (m->type == PROTO_EV_OWNER_GONE) {
		if (!c->gone)
			die("EV_OWNER_GONE to a subscription without the flag",
			    c);
		if (!c->subs[i].ended || m->seq <= c->subs[i].end_seq)
			die("EV_OWNER_GONE before EV_END, or with a seq not "
			    "above it", c);
		view_owner_gone(c, m);
		return;
	}
	if (m->type == PROTO_EV_END) {
		if (c->subs[i].ended)
			die("a second EV_END for one subscription", c);
		if (m->count != view_count(c, m->table))
			die("EV_END count is not the keys held", c);
		c->subs[i].ended = 1;
		c->subs[i].end_seq = m->seq;
		return;
	}
	if (c->subs[i].ended && m->seq <= c->subs[i].end_seq)
		die("event after EV_END with a seq not above it", c);
	if ((v = view_find(c, m->table, m->key)) != NULL && m->seq <= v->seq)
		die("a key's seq did not grow", c);
	if (m->type == PROTO_EV_ANNOUNCE && v != NULL && v->present)
		die("EV_ANNOUNCE of a key held", c);
	if (m->type != PROTO_EV_ANNOUNCE && (v == NULL || !v->present))
		die("EV_REPLACE or EV_WITHDRAW of a key not held", c);
	if (v == NULL) {
		len = view_key(k, m->table, m->key);
		if ((v = calloc(1, sizeof(*v) + len)) == NULL)
			die("out of memory", c);
		memcpy(v->k, k, len);
		v->len = len;
		if (hash_insert(&c->view, &v->node, hash_bytes(k, len)) == -1)
			die("out of memory", c);
	}
	free(v->fields);
	v->fields = NULL;
	v->fields_len = 0;
	v->seq = m->seq;
	v->owner = m->owner_session;
	if (m->owner.len >= sizeof(v->owner_name))
		die("an owner name too long", c);
	memcpy(v->owner_name, m->owner.p, m->owner.len);
	v->owner_name[m->owner.len] = '\0';
	v->present = m->type != PROTO_EV_WITHDRAW;
	if (v->present) {
		if ((v->fields = malloc(m->fields.len + 1)) == NULL)
			die("out of memory", c);
		memcpy(v->fields, m->fields.p, m->fields.len);
		v->fields_len = m->fields.len;
	}
}

/*
 * An ERROR to the watcher. The one that ends its subscription to T
 * (ADMIN DROP of T: NOT_FOUND to its SUBSCRIBE, request 2) must come
 * after the withdrawal of every key it held there.
 */
static void
view_error(struct fz *c, const struct proto_msg *m)
{
	size_t	 i;

	if (m->req_id != 2 || m->code != ISP_E_NOT_FOUND)
		return;
	for (i = 0; i < c->nsubs; i++) {
		if (c->subs[i].len != strlen(T) ||
		    memcmp(c->subs[i].name, T, strlen(T)) != 0)
			continue;
		if (view_count(c, proto_bytes(T, strlen(T))) != 0)
			die("a dropped table's subscription ended with keys "
			    "held", c);
		c->subs[i].dropped = 1;
	}
}

/* The view equals every table the watcher subscribed to, but those an
 * operator dropped. */
static void
view_check(struct fz *c)
{
	struct proto_bytes	 tname;
	struct table		*t;
	struct hash_node	*n;
	struct record		*r;
	struct vrec		*v;
	size_t			 i, pos;
	int			 silent;

	for (i = 0; i < c->nsubs; i++) {
		if (c->subs[i].dropped)
			continue;
		tname = proto_bytes(c->subs[i].name, c->subs[i].len);
		if (!c->subs[i].ended)
			die("no EV_END after everything was read", c);
		if ((t = table_find(tname)) == NULL)
			die("a subscribed table is gone", c);
		pos = 0;
		n = NULL;
		while ((n = hash_next(&t->records, &pos, n)) != NULL) {
			r = (struct record *)((char *)n -
			    offsetof(struct record, node));
			v = view_find(c, tname, record_key(r));
			if (v == NULL || !v->present)
				die("the view lacks a record of the table", c);
			/* Taken back without an event (an identical
			 * announce of a record held for the client of
			 * the announcer): the owner the view has is
			 * the lost session of that client, and when
			 * the table has a subscription with the
			 * OWNER_GONE flag (told of it by an EV_REPLACE)
			 * the record's seq moved on. Not so for a
			 * watcher with the flag. */
			silent = !c->gone && t->graceful && r->owner != NULL &&
			    strcmp(v->owner_name, r->owner->name) == 0;
			if ((v->seq != r->seq && !(silent && v->seq < r->seq &&
			    v->owner != record_owner_id(r))) ||
			    v->fields_len != record_fields(r).len ||
			    memcmp(v->fields, record_fields(r).p,
			    v->fields_len) != 0)
				die("the view holds another version of a "
				    "record", c);
			if (v->owner != record_owner_id(r) && !silent)
				die("the view has another owner for a "
				    "record", c);
		}
		if (view_count(c, tname) != t->records.count)
			die("the view holds records the table does not", c);
	}
}

/* Decodes every whole frame read so far. */
static void
fz_decode(struct fz *c)
{
	struct proto_msg	 m;
	const char		*why;
	size_t			 n, off = 0;
	int			 rc;

	while ((rc = proto_frame_check(c->out.data + off, c->out.len - off,
	    PROTO_MAX_FRAME_BYTES, &n)) == 1) {
		if (proto_decode(c->out.data + off, n, &m, &why) != 0) {
			fprintf(stderr, "fuzz_session: undecodable frame from "
			    "ispd: %s\n", why);
			die("ispd sent a malformed frame", c);
		}
		switch (m.type) {
		case PROTO_ERROR:
			if (c->watch)
				view_error(c, &m);
			break;
		case PROTO_WELCOME:
		case PROTO_PING:
		case PROTO_PONG:
		case PROTO_BYE:
		case PROTO_GOING_DOWN:
		case PROTO_ROWS:
			break;
		case PROTO_EV_ANNOUNCE:
		case PROTO_EV_REPLACE:
		case PROTO_EV_WITHDRAW:
		case PROTO_EV_END:
		case PROTO_EV_OWNER_GONE:
			if (c->watch)
				view_apply(c, &m);
			break;
		default:
			die("ispd sent a frame only clients send", c);
		}
		if (c->nframes++ == 0 && c->want_welcome &&
		    m.type != PROTO_WELCOME)
			die("a valid HELLO was not answered by WELCOME", c);
		c->last_type = m.type;
		c->last_code = m.code;
		off += n;
	}
	if (rc == -1)
		die("ispd sent a frame of a bad length", c);
	buf_consume(&c->out, off);
}

/* Reads what the session wrote. Returns the number of bytes. */
static size_t
fz_drain(struct fz *c)
{
	uint8_t	 tmp[65536];
	ssize_t	 n;
	size_t	 total = 0;

	if (c->fd == -1)
		return 0;
	while ((n = read(c->fd, tmp, sizeof(tmp))) > 0) {
		total += (size_t)n;
		buf_put(&c->out, tmp, (size_t)n);
		if (buf_failed(&c->out))
			die("out of memory reading", c);
		fz_decode(c);
	}
	return total;
}

static int
fz_open(struct fz *c, const char *name, int slow)
{
	int	 sv[2], sz = 4096;

	memset(c, 0, sizeof(*c));
	c->name = name;
	c->fd = -1;
	buf_init(&c->out);
	hash_init(&c->view);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1)
		return -1;
	if (slow) {
		(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz,
		    sizeof(sz));
		(void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz,
		    sizeof(sz));
	}
	if ((c->s = session_new(sv[0], name)) == NULL) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	c->fd = sv[1];
	return 0;
}

/*
 * Writes len bytes of p to c, chunk bytes at a time with a loop turn
 * after each, reading the output unless slow. Stops early when the
 * session stops taking input (closed, or not reading).
 */
static void
fz_send(struct fz *c, const uint8_t *p, size_t len, size_t chunk,
    struct fz *all, int nall, int slow)
{
	size_t	 off = 0, want;
	ssize_t	 n;
	int	 stalled = 0, i;

	while (off < len && c->fd != -1 && stalled < STALL_TURNS) {
		want = len - off < chunk ? len - off : chunk;
		n = send(c->fd, p + off, want, MSG_NOSIGNAL);
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			break;	/* the session is gone */
		if (n > 0) {
			off += (size_t)n;
			stalled = 0;
		} else
			stalled++;
		loop_once(0);
		for (i = 0; i < nall && !slow; i++)
			fz_drain(&all[i]);
	}
}

/* Runs the loop and reads until two turns in a row bring no byte: every
 * queue, deferred write and catch-up is then done. Returns 0 when that
 * does not happen within SETTLE_TURNS. */
static int
settle(struct fz *all, int nall)
{
	size_t	 got;
	int	 turn, quiet = 0, k;

	for (turn = 0; turn < SETTLE_TURNS && quiet < 2; turn++) {
		session_before_sleep();
		got = 0;
		for (k = 0; k < nall; k++)
			got += fz_drain(&all[k]);
		loop_once(0);
		for (k = 0; k < nall; k++)
			got += fz_drain(&all[k]);
		quiet = got == 0 ? quiet + 1 : 0;
	}
	return quiet >= 2;
}

static void
turns(struct fz *all, int nall, int n, int drain)
{
	int	 i;

	while (n-- > 0) {
		loop_once(0);
		for (i = 0; i < nall && drain; i++)
			fz_drain(&all[i]);
	}
}

/*
 * An owner that is no session of ours: a held set, or a held set whose
 * grace time ended, now a ghost. It is on no session list, so it is
 * found through the records that name it.
 */
struct extra {
	struct owner	*o;
	size_t		 owned;		/* records naming it */
};

static void
check_held(struct owner *o)
{
	if (__asan_address_is_poisoned(o))
		die("record owned by a freed session or held set", NULL);
	if (o->kind != OWNER_HELD)
		die("record owned by something neither a session of ours "
		    "nor a held set", NULL);
	if (!o->ghost && owner_held(o)->until_ms > loop_now_ms() + GRACE_MS)
		die("held set with a deadline past the grace time", NULL);
}

/*
 * Ownership and subscriptions add up; see the top comment. Runs after
 * session_before_sleep(), so no session is ENDING.
 */
static void
check_tables(struct fz *all, int nall)
{
	struct table		**tv, *t;
	struct hash_node	 *n;
	struct record		 *r;
	struct subscr		 *sub;
	struct extra		  ex[MAX_HELD];
	size_t			  nt, i, j, pos, nrec = 0, nrows = 0, nsubs;
	size_t			  owned[MAX_FZ], expect = 0, subs = 0;
	size_t			  nrowed = 0, nex = 0, held_n = 0, ghost_n = 0;
	size_t			  nheld = 0, hclients;
	int			  k;

	memset(owned, 0, sizeof(owned));
	if ((tv = table_sorted(&nt)) == NULL)
		die("out of memory listing tables", NULL);
	for (i = 0; i < nt; i++) {
		t = tv[i];
		pos = 0;
		n = NULL;
		while ((n = hash_next(&t->records, &pos, n)) != NULL) {
			r = (struct record *)((char *)n -
			    offsetof(struct record, node));
			nrec++;
			if (r->table != t || r->seq > t->seq || r->seq == 0)
				die("record with a wrong table or seq", NULL);
			if ((r->expire_ms == 0) != (r->ttl_idx == TTL_NONE))
				die("record TTL and heap index disagree",
				    NULL);
			if (r->owner == NULL) {
				if (!t->readonly)
					die("ownerless record outside "
					    "ispd.sessions", NULL);
				nrows++;
				continue;
			}
			for (k = 0; k < nall; k++)
				if (fz_alive(&all[k]) &&
				    &all[k].s->owner == r->owner)
					break;
			if (k < nall) {
				if (all[k].s->state != SESSION_READY &&
				    !r->owner->ghost)
					die("record owned by a session "
					    "neither READY nor a ghost",
					    &all[k]);
				owned[k]++;
				continue;
			}
			for (j = 0; j < nex && ex[j].o != r->owner; j++)
				;
			if (j == nex) {
				if (nex == MAX_HELD)
					die("more held sets than sessions",
					    NULL);
				check_held(r->owner);
				ex[nex].o = r->owner;
				ex[nex].owned = 0;
				nex++;
			}
			ex[j].owned++;
			if (!r->owner->ghost && !t->graceful)
				die("held record in a table not graceful",
				    NULL);
		}
		nsubs = 0;
		TAILQ_FOREACH(sub, &t->subs, table_entry) {
			if (sub->table != t)
				die("subscription on the wrong table", NULL);
			nsubs++;
		}
		if (nsubs != t->nsubs)
			die("table subscriber count is wrong", NULL);
	}
	free(tv);
	if (nrec != table_record_count())
		die("table_record_count() is not the records in tables",
		    NULL);
	for (k = 0; k < nall; k++) {
		struct session	*s = all[k].s;
		size_t		 listed = 0;

		if (!fz_alive(&all[k]))
			continue;
		if (s->owner.kind != OWNER_SESSION)
			die("a session is marked as a held set", &all[k]);
		if (s->released && !s->owner.ghost)
			die("released session not freed", &all[k]);
		/* A ghost whose socket was closed at once keeps the state
		 * it had then. */
		if (s->state == SESSION_ENDING && !s->released)
			die("ENDING session after session_before_sleep()",
			    &all[k]);
		if (s->lost && s->state <= SESSION_READY)
			die("lost session still open", &all[k]);
		TAILQ_FOREACH(r, &s->owner.owned, owned) {
			if (r->owner != &s->owner)
				die("owned list holds another's record",
				    &all[k]);
			listed++;
		}
		if (listed != s->owner.nrecords ||
		    owned[k] != s->owner.nrecords)
			die("owned list, nrecords and records disagree",
			    &all[k]);
		TAILQ_FOREACH(sub, &s->subs, session_entry) {
			if (sub->session != s)
				die("subscription of another session",
				    &all[k]);
			subs++;
		}
		if (s->state == SESSION_READY) {
			if (s->row == NULL)
				die("READY session without a row", &all[k]);
		} else if (!TAILQ_EMPTY(&s->subs))
			die("session not READY still subscribed", &all[k]);
		else if (!s->owner.ghost && (s->row != NULL ||
		    s->owner.nrecords != 0))
			die("session neither READY nor a ghost holds a row "
			    "or records", &all[k]);
		else if (s->owner.ghost && (s->row == NULL ||
		    s->owner.nrecords == 0))
			die("ghost without a row or records", &all[k]);
		nrowed += s->row != NULL;
		expect += s->owner.nrecords;
		if (s->owner.ghost)
			ghost_n += s->owner.nrecords;
	}
	for (j = 0; j < nex; j++) {
		struct owner	*h = ex[j].o;
		size_t		 listed = 0;

		TAILQ_FOREACH(r, &h->owned, owned) {
			if (r->owner != h)
				die("a held set's owned list holds another's "
				    "record", NULL);
			listed++;
		}
		if (listed != h->nrecords || ex[j].owned != h->nrecords)
			die("a held set's owned list, nrecords and records "
			    "disagree", NULL);
		expect += h->nrecords;
		if (!h->ghost) {
			held_n += h->nrecords;
			/* A client's held sets (one per lost session) share
			 * one deadline; nheld counts clients. */
			for (i = 0; i < j; i++)
				if (!ex[i].o->ghost &&
				    ex[i].o->name_len == h->name_len &&
				    ex[i].o->ident_len == h->ident_len &&
				    memcmp(ex[i].o->name, h->name,
				    h->name_len) == 0 &&
				    memcmp(ex[i].o->ident, h->ident,
				    h->ident_len) == 0)
					break;
			if (i == j)
				nheld++;
			else if (owner_held(ex[i].o)->until_ms !=
			    owner_held(h)->until_ms)
				die("held sets of one client with two "
				    "deadlines", NULL);
		} else
			ghost_n += h->nrecords;
	}
	/* A ghost keeps its row until its last record is withdrawn; a
	 * held set has none. */
	if (nrows != nrowed)
		die("ispd.sessions rows are not the READY sessions and the "
		    "ghosts", NULL);
	if (expect + nrows != table_record_count())
		die("records are not the sum of owned records and rows", NULL);
	if (graceful_held_records(&hclients) != held_n || hclients != nheld)
		die("graceful_held_records() is not the held sets' records",
		    NULL);
	if (table_withdraw_backlog() != ghost_n)
		die("table_withdraw_backlog() is not the ghosts' records",
		    NULL);
	if (subs != subscr_count())
		die("subscr_count() is not the sessions' subscriptions",
		    NULL);
}

static void
check_rows_fresh(struct fz *all, int nall)
{
	int	 k;

	for (k = 0; k < nall; k++)
		if (fz_alive(&all[k]) && all[k].s->row != NULL &&
		    all[k].s->row_nrecords != all[k].s->owner.nrecords)
			die("ispd.sessions row stale after a tick", &all[k]);
}

/* The watching session: owns PEER_KEY, subscribes to T and to the
 * sessions table, so that the stream's announces, replaces, withdraws
 * and session changes fan out to it. */
static void
peer_script(struct buf *b, int gone)
{
	struct buf	 f;
	size_t		 s;

	buf_init(&f);
	s = proto_fields_begin(&f);
	proto_put_field(&f, "contact", 7, "sip:alice@192.0.2.9:5060", 24);
	proto_fields_end(&f, s, 1);
	proto_put_hello(b, PROTO_VERSION, 0, "watcher");
	proto_put_announce(b, 1, proto_bytes(T, strlen(T)), 0,
	    proto_bytes(PEER_KEY, strlen(PEER_KEY)),
	    proto_bytes(f.data, f.len));
	proto_put_subscribe(b, 2, proto_bytes(T, strlen(T)),
	    gone ? PROTO_SUB_OWNER_GONE : 0, proto_bytes("", 0));
	proto_put_subscribe(b, 3, proto_bytes(PROTO_SESSIONS_TABLE,
	    strlen(PROTO_SESSIONS_TABLE)), 0, proto_bytes("", 0));
	buf_free(&f);
}

static void
init_once(void)
{
	static int	 done;

	if (done)
		return;
	done = 1;
	signal(SIGPIPE, SIG_IGN);
	log_init(getenv("FUZZ_SESSION_LOG") != NULL ? LOG_LEVEL_DEBUG :
	    LOG_LEVEL_ERROR);
	settings_defaults();
	ispd_conf.server_id = "fuzz";
	/* The smallest queue allowed (16 KiB, see limit.c), so that a
	 * reader that falls behind (F_SLOW) soon has its changes coalesced
	 * and caught up (feed.c) rather than queued. */
	ispd_conf.max_queue_bytes = 16 * 1024;
	/* Graceful restart. The patterns outlive table_free_all() and
	 * table_init() (as over a reload), so they are added once, here;
	 * a table is graceful or not from its creation. */
	ispd_conf.graceful_ms = GRACE_MS;
	if (graceful_add(T) == -1 ||
	    graceful_add(GRACE_PREFIX "*") == -1)
		die("cannot add the graceful table patterns", NULL);
	loop_init();
	table_init();
}

/*
 * What a session had in graceful tables, to check once it is lost that
 * each record is still there, unchanged, held for its client. Taken
 * only when the outcome is sure: the session is READY and has read and
 * handled all its input (none in the socket, none buffered behind a
 * pause), so the peer's close makes it lost (EOF, or a failed write,
 * or the hold time), whatever its last frames were. Records with a TTL
 * are left out: the clock runs during the close.
 */
struct lost {
	int		 on;
	char		 name[SESSION_NAME_MAX + 1];
	struct record	**r;
	uint64_t	*seq;
	size_t		 n;
};

static void
lost_begin(struct fz *c, struct lost *l)
{
	struct session	*s = c->s;
	struct record	*r;
	int		 unread = -1;

	memset(l, 0, sizeof(*l));
	if (!fz_alive(c) || s->state != SESSION_READY ||
	    s->owner.nrecords == 0 ||
	    s->in_paused || s->resuming ||
	    ioctl(s->fd, FIONREAD, &unread) == -1 || unread != 0)
		return;
	l->r = calloc(s->owner.nrecords, sizeof(*l->r));
	l->seq = calloc(s->owner.nrecords, sizeof(*l->seq));
	if (l->r == NULL || l->seq == NULL)
		die("out of memory", c);
	TAILQ_FOREACH(r, &s->owner.owned, owned) {
		if (!r->table->graceful || r->expire_ms != 0)
			continue;
		l->r[l->n] = r;
		l->seq[l->n++] = r->seq;
	}
	memcpy(l->name, s->owner.name, sizeof(l->name));
	l->on = 1;
}

static void
lost_end(struct lost *l)
{
	struct record	*r;
	size_t		 i;

	for (i = 0; l->on && i < l->n; i++) {
		r = l->r[i];
		if (__asan_address_is_poisoned(r) ||
		    table_lookup(r->table, record_key(r)) != r)
			die("a lost session's record in a graceful table was "
			    "withdrawn", NULL);
		if (r->seq != l->seq[i])
			die("a lost session's record in a graceful table "
			    "changed", NULL);
		if (r->owner == NULL || r->owner->kind != OWNER_HELD ||
		    r->owner->ghost ||
		    strcmp(r->owner->name, l->name) != 0)
			die("a lost session's record in a graceful table is "
			    "not held for its client", NULL);
	}
	free(l->r);
	free(l->seq);
	memset(l, 0, sizeof(*l));
}

static void
lost_begin_all(struct fz *all, int from, int nall, struct lost *l)
{
	int	 k;

	for (k = from; k < nall; k++)
		lost_begin(&all[k], &l[k]);
}

static void
lost_end_all(int from, int nall, struct lost *l)
{
	int	 k;

	for (k = from; k < nall; k++)
		lost_end(&l[k]);
}

/* The peers of all[from] and after hang up; every one of those sessions
 * must then go by the normal path within a bounded number of loop
 * turns. The output of the others is read meanwhile, when drain. */
static void
hang_up(struct fz *all, int nall, int from, size_t size, int drain)
{
	int	 k, turn;

	for (k = from; k < nall; k++) {
		if (all[k].fd != -1)
			close(all[k].fd);
		all[k].fd = -1;
	}
	for (turn = 0; turn < CLOSE_TURNS + (int)(size / SESSION_READ_BYTES);
	    turn++) {
		for (k = from; k < nall && !fz_alive(&all[k]); k++)
			;
		if (k == nall)
			break;
		loop_once(0);
		for (k = 0; k < from && drain; k++)
			fz_drain(&all[k]);
	}
	for (k = from; k < nall; k++)
		if (fz_alive(&all[k]))
			die("session not freed after its peer hung up",
			    &all[k]);
}

/* The grace time ends (the clock is moved past it): every held set goes,
 * and what it still held is withdrawn, a slice per loop turn, the output
 * read meanwhile when drain. */
static void
grace_over(struct fz *all, int nall, int drain)
{
	size_t	 nclients;
	int	 k, turn, bound;

	bound = CLOSE_TURNS + (int)(table_record_count() /
	    TABLE_WITHDRAW_SLICE);
	graceful_expire(loop_now_ms() + ispd_conf.graceful_ms);
	if (graceful_held_records(&nclients) != 0 || nclients != 0)
		die("held sets left after the grace time", NULL);
	for (turn = 0; turn < bound && table_withdraw_pending(); turn++) {
		loop_once(0);
		for (k = 0; k < nall && drain; k++)
			fz_drain(&all[k]);
	}
	if (table_withdraw_pending())
		die("held records still being withdrawn long after the grace "
		    "time", NULL);
	session_before_sleep();
}

/* The daemon's SIGTERM path: every session gets BYE SHUTDOWN (written
 * best-effort, so checked only where output was being read) and is
 * freed at once. */
static void
shut_down(struct fz *all, int nall, int slow)
{
	int	 k, open[MAX_FZ];

	for (k = 0; k < nall; k++)
		open[k] = fz_alive(&all[k]) &&
		    all[k].s->state <= SESSION_READY;
	session_shutdown_all();
	for (k = 0; k < nall; k++) {
		if (fz_alive(&all[k]))
			die("session not freed by session_shutdown_all()",
			    &all[k]);
		if (slow)
			continue;
		fz_drain(&all[k]);
		if (open[k] && (all[k].last_type != PROTO_BYE ||
		    all[k].last_code != ISP_E_SHUTDOWN))
			die("no BYE SHUTDOWN as the last frame", &all[k]);
	}
	for (k = 0; k < nall; k++) {
		if (all[k].fd != -1)
			close(all[k].fd);
		all[k].fd = -1;
	}
}

/* The stream, cut at each RECONNECT (at most MAX_PARTS parts). */
static int
split(const uint8_t *data, size_t size, const uint8_t **part, size_t *plen)
{
	const uint8_t	*sep;
	size_t		 seplen = strlen(RECONNECT);
	int		 n = 0;

	while (n < MAX_PARTS - 1 &&
	    (sep = memmem(data, size, RECONNECT, seplen)) != NULL) {
		part[n] = data;
		plen[n++] = (size_t)(sep - data);
		size -= (size_t)(sep - data) + seplen;
		data = sep + seplen;
	}
	part[n] = data;
	plen[n++] = size;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[MAX_PARTS] = {
		"fuzz", "fuzz-2", "fuzz-3", "fuzz-4"
	};
	struct fz	 all[MAX_FZ];
	struct lost	 lost[MAX_FZ];
	struct buf	 b;
	const uint8_t	*part[MAX_PARTS];
	size_t		 plen[MAX_PARTS], chunk, nclients;
	uint8_t		 flags;
	int		 nall = 0, nparts, i, slow, k, end, peer;
	uint64_t	 horizon;

	if (size < 1)
		return 0;
	init_once();
	flags = data[0];
	data++;
	size--;
	slow = (flags & F_SLOW) != 0;
	peer = (flags & F_PEER) != 0;
	end = flags >> F_END_SHIFT;
	chunk = SIZE_MAX;
	if (flags & F_CHUNKS) {
		chunk = (flags & F_BIGCHUNK) ? 509 : 1;
		/* At most MAX_CHUNKS loop turns, or a long input would
		 * run for seconds. */
		if (chunk < size / MAX_CHUNKS + 1)
			chunk = size / MAX_CHUNKS + 1;
	}
	nparts = split(data, size, part, plen);
	memset(lost, 0, sizeof(lost));
	buf_init(&b);

	if (peer) {
		if (fz_open(&all[nall], "peer", slow) == -1)
			die("cannot make the peer session", NULL);
		all[nall].want_welcome = 1;
		all[nall].watch = 1;
		all[nall].gone = size % 2 == 1;
		peer_script(&b, all[nall].gone);
		fz_send(&all[nall], b.data, b.len, SIZE_MAX, all, nall + 1, 0);
		b.len = 0;
		nall++;
	}
	for (i = 0; i < nparts; i++) {
		if (i > 0) {
			/* The last session is lost (its peer went away
			 * without BYE); the next one is the client back. */
			fz_drain(&all[nall - 1]);
			lost_begin(&all[nall - 1], &lost[nall - 1]);
			hang_up(all, nall, nall - 1, size, !slow);
			session_before_sleep();
			lost_end(&lost[nall - 1]);
			check_tables(all, nall);
		}
		if (fz_open(&all[nall], names[i], slow) == -1)
			die("cannot make the fuzzed session", NULL);
		nall++;
		if (flags & F_HELLO) {
			all[nall - 1].want_welcome = 1;
			proto_put_hello(&b, PROTO_VERSION, 0, "bgw-1");
			fz_send(&all[nall - 1], b.data, b.len, SIZE_MAX, all,
			    nall, slow);
			b.len = 0;
		}
		fz_send(&all[nall - 1], part[i], plen[i], chunk, all, nall,
		    slow);
	}
	if (peer) {
		/* A frame from the older session moves it in the hold
		 * list. */
		proto_put_ping(&b, PROTO_PING, 1);
		fz_send(&all[0], b.data, b.len, SIZE_MAX, all, nall, slow);
	}
	buf_free(&b);
	turns(all, nall, 2, !slow);

	if (flags & F_EXPIRE) {
		horizon = loop_now_ms() + EXPIRE_S * 1000;
		while (ttl_expire(horizon) > 0)
			;
		/* What the sessions of the earlier parts left held too:
		 * withdrawn over the next turns. */
		graceful_expire(horizon);
	}
	table_tick();
	session_before_sleep();
	check_rows_fresh(all, nall);
	check_tables(all, nall);

	switch (end) {
	case END_HANGUP:
		/* Read everything: queues that waited for EPOLLOUT drain,
		 * and the watcher's view must then be the tables. */
		if (!settle(all, nall))
			die("output still coming after SETTLE_TURNS turns",
			    NULL);
		check_tables(all, nall);
		for (k = 0; k < nall; k++)
			if (all[k].watch && fz_alive(&all[k]) &&
			    all[k].s->state == SESSION_READY)
				view_check(&all[k]);
		if (peer && fz_alive(&all[0]) &&
		    all[0].s->state == SESSION_READY) {
			/* The others first: the watcher sees their
			 * records go, or stay held, then the grace time
			 * end. */
			lost_begin_all(all, 1, nall, lost);
			hang_up(all, nall, 1, size, 1);
			session_before_sleep();
			lost_end_all(1, nall, lost);
			check_tables(all, nall);
			grace_over(all, nall, 1);
			if (!settle(all, nall))
				die("output still coming after SETTLE_TURNS "
				    "turns", NULL);
			check_tables(all, nall);
			if (fz_alive(&all[0]) &&
			    all[0].s->state == SESSION_READY)
				view_check(&all[0]);
		}
		lost_begin_all(all, 0, nall, lost);
		hang_up(all, nall, 0, size, 0);
		break;
	case END_HOLD:
		for (k = 0; k < nall; k++)
			fz_drain(&all[k]);
		lost_begin_all(all, 0, nall, lost);
		session_timers(loop_now_ms() + ispd_conf.hold_ms);
		turns(all, nall, 2, 1);
		session_before_sleep();
		check_tables(all, nall);
		hang_up(all, nall, 0, size, 0);
		break;
	case END_ABORT:
		lost_begin_all(all, 0, nall, lost);
		hang_up(all, nall, 0, size, 0);
		break;
	default:
		shut_down(all, nall, slow);
		break;
	}
	session_before_sleep();
	lost_end_all(0, nall, lost);
	/* No session left: what remains is held, or being withdrawn. */
	check_tables(all, nall);
	grace_over(all, nall, 0);
	for (k = 0; k < nall; k++)
		if (fz_alive(&all[k]))
			die("session not freed after its peer hung up",
			    &all[k]);
	if (session_count() != 0 || subscr_count() != 0 ||
	    table_record_count() != 0 || graceful_held_records(&nclients) != 0 ||
	    nclients != 0)
		die("sessions, subscriptions, records or held sets left "
		    "after every session ended and the grace time", NULL);
	for (k = 0; k < nall; k++) {
		buf_free(&all[k].out);
		view_free(&all[k]);
	}

	/* As at exit and start: nothing of this input reaches the next. */
	table_free_all();
	subscr_free_all();
	stats_free();
	table_init();
	return 0;
}
