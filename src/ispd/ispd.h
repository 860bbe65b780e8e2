/*
 * ispd: the reflector daemon's shared header.
 *
 * Structures first, then the interface of each file, in the order a
 * frame travels: loop -> listen -> tls -> limit -> session -> auth ->
 * acl -> table -> graceful -> subscr -> feed -> outq; conf (the
 * configuration file) last. Only what more than one file uses is here:
 * a structure one file keeps to itself is declared in that file (tls.c's
 * struct tls_conn, feed.c's struct dirty), and state one file keeps in
 * a shared structure is a member of its own type (struct feed_state in
 * a subscription, struct acl_cache in a session). The interfaces of
 * feed.c, tls.c and acl.c, which only some files call, are in feed.h,
 * tls.h and acl.h.
 */
#ifndef ISPD_H
#define ISPD_H

#include <sys/queue.h>
#include <sys/types.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "buf.h"
#include "hash.h"
#include "isp.h"		/* the wire's error codes, ISP_E_* */
#include "proto.h"
#include "version.h"	/* ISP_RELEASE */

/* Owner name of the records ispd keeps itself (ispd.sessions). */
#define ISPD_OWNER_NAME		"ispd"

/* Bytes read from one session per readiness event, so that one fast
 * writer cannot starve the others (Redis reads 16 KiB; our frames are
 * small and batching matters more for throughput). */
#define SESSION_READ_BYTES	(64 * 1024)
/* How long a closing session may take to flush its last frames. */
#define SESSION_LINGER_MS	1000
/* Period of the sessions-table refresh. */
#define TICK_MS			1000
/* A client name (HELLO text) is 1..64 printable ASCII bytes. */
#define SESSION_NAME_MAX	64
/* Records withdrawn per loop turn for ended owners, sessions and
 * released held sets (see table.c): a million records go in about a
 * hundred turns, and every other session is served between two
 * slices. */
#define TABLE_WITHDRAW_SLICE	10000

/* The identity of a session that did not authenticate (docs/SECURITY.md). */
#define ISPD_ANONYMOUS		"anonymous"

struct ssl_ctx_st;
struct tls_conn;
struct acl;
struct conf;
struct creds;
struct setting;

struct owner;
struct session;
struct held_set;
struct subscr;
struct table;
struct record;
struct dirty;

TAILQ_HEAD(owner_list, owner);
TAILQ_HEAD(session_list, session);
TAILQ_HEAD(record_list, record);
TAILQ_HEAD(subscr_list, subscr);
TAILQ_HEAD(dirty_list, dirty);

/* The settings in use: each is described, with its default, by a row of
 * settings[] (settings.c), which stores it here; limits (the max_*
 * members) are documented in docs/LIMITS.md. */
struct ispd_conf {
	uint64_t	 hold_ms;
	const char	*server_id;
	uint64_t	 max_queue_bytes;	/* per session, see feed.c */
	uint64_t	 max_frame_bytes;	/* frame length, <= 1 MiB */
	uint64_t	 max_key_bytes;
	uint64_t	 max_value_bytes;
	uint64_t	 max_fields;
	uint64_t	 max_records_per_session;
	uint64_t	 max_tables;		/* created by clients */
	uint64_t	 max_subscriptions;	/* per session */
	uint64_t	 max_sessions_per_ip;
	uint64_t	 max_sessions;
	uint64_t	 max_table_creates_per_sec;	/* per session */
	uint64_t	 graceful_ms;	/* --graceful-seconds, in ms */
	uint64_t	 drain_ms;	/* --drain-seconds, in ms */
	uint64_t	 log_level;	/* LOG_LEVEL_* */
};

/* Counters for QUERY STATS; each is bumped where the thing happens. */
struct ispd_stats {
	uint64_t	 start_ms;	/* monotonic, for uptime */
	uint64_t	 sessions_total;
	uint64_t	 events;	/* events applied to tables */
	uint64_t	 frames_in;
	uint64_t	 frames_out;	/* frames queued to sessions */
	uint64_t	 bytes_in;
	uint64_t	 bytes_out;	/* bytes written to sockets */
	uint64_t	 errors_sent;
	uint64_t	 hold_expired;
	uint64_t	 coalesced_events;	/* folded into a dirty key */
	uint64_t	 catchup_events;	/* sent from a dirty key */
	uint64_t	 limit_errors;		/* LIMIT errors sent */
	uint64_t	 sessions_refused;	/* by a session limit */
	uint64_t	 auth_failures;		/* AUTH or certificate refused */
	uint64_t	 denied;		/* requests a rule refused */
	uint64_t	 owner_gone_events;	/* EV_OWNER_GONE queued */
	uint64_t	 owner_gone_withdrawals;	/* not sent: an
						 * EV_OWNER_GONE told them */
	/* Events queued to subscribers, by type: PROTO_EV_ANNOUNCE,
	 * _REPLACE, _WITHDRAW, _END, less PROTO_EV_ANNOUNCE. */
	uint64_t	 events_sent[4];
	uint64_t	 reloads_ok;		/* SIGHUP applied */
	uint64_t	 reloads_failed;	/* SIGHUP with errors */
	int		 last_reload_failed;
	int		 draining;		/* SIGUSR1 received */
};

#define STATS_EVENT_SENT(type)	\
	(ispd_stats.events_sent[((type) - PROTO_EV_ANNOUNCE) & 3]++)

extern struct ispd_conf		 ispd_conf;
extern struct ispd_stats	 ispd_stats;

/* loop.c */
typedef void	loop_cb(void *arg, uint32_t events);

struct loop_io {
	int		 fd;
	uint32_t	 events;	/* EPOLLIN/EPOLLOUT currently asked */
	loop_cb		*cb;
	void		*arg;
};

void		 loop_init(void);
void		 loop_free(void);
int		 loop_add(struct loop_io *, int fd, uint32_t events, loop_cb *,
		    void *arg);
void		 loop_set(struct loop_io *, uint32_t events);
void		 loop_del(struct loop_io *);
void		 loop_once(int max_wait_ms);
void		 loop_run(void);
void		 loop_stop(void);
uint64_t	 loop_now_ms(void);
void		 loop_update_time(void);
void		 loop_clock_advance(uint64_t ms);

/* log.c */
enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void		 log_init(int level);
int		 log_level_parse(const char *);
void		 log_debug(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_info(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_warn(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_warnx(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 fatal(const char *, ...)
		    __attribute__((noreturn, format(printf, 1, 2)));
void		 fatalx(const char *, ...)
		    __attribute__((noreturn, format(printf, 1, 2)));
const char	*log_escape(char *dst, size_t dstsz, const void *, size_t);

/* At most one message a second about one kind of thing, so that a flood
 * of refusals does not become a flood of log lines. */
struct log_rate {
	uint64_t	 last_ms;
	uint64_t	 unlogged;
};

int		 log_rate_ok(struct log_rate *, uint64_t *unlogged);
const char	*log_unlogged(uint64_t unlogged, const char *what);

/* listen.c */
int		 listen_open(const char *spec, int tls);
int		 listen_write_ports(const char *path);
void		 listen_close_all(void);
uint64_t	 listen_next_ms(void);
void		 listen_timers(uint64_t now_ms);

/* outq.c */
struct obuf {
	uint32_t	 refcnt;
	uint32_t	 len;
	uint32_t	 cap;
	uint8_t		 data[];
};

struct outq {
	struct obuf	**ring;
	uint32_t	  size;		/* slots, 0 or a power of two */
	uint32_t	  head;
	uint32_t	  count;
	uint32_t	  off;		/* bytes of the head already written */
	size_t		  bytes;	/* bytes queued, not yet written */
};

struct obuf	*obuf_new(const void *, size_t len);
void		 obuf_unref(struct obuf *);
void		 outq_init(struct outq *);
void		 outq_free(struct outq *);
int		 outq_push(struct outq *, struct obuf *);
int		 outq_append(struct outq *, const void *, size_t);
int		 outq_flush(struct outq *, int fd, size_t *written);
size_t		 outq_peek(const struct outq *, uint8_t *dst, size_t max);
void		 outq_consume(struct outq *, size_t n);
size_t		 outq_total_bytes(void);

/* session.c */
enum session_state {
	SESSION_NEW,		/* waiting for HELLO */
	SESSION_READY,		/* welcomed */
	SESSION_ENDING,		/* close decided, teardown not run yet */
	SESSION_LINGER,		/* torn down; flushing its last frames */
};

/* How a session proved who it is (auth.c, tls.c). */
enum session_auth {
	SESSION_AUTH_NONE,	/* identity ISPD_ANONYMOUS */
	SESSION_AUTH_SECRET,	/* CHALLENGE/AUTH with a shared secret */
	SESSION_AUTH_CERT,	/* a verified TLS client certificate */
};

/*
 * What owns records: a live session, or a held set (graceful.c) that
 * keeps a lost session's records for its client. Records point at this,
 * so code that needs the session behind a record's owner must ask for
 * it (owner_session()), and a held set is never taken for a session.
 * An owner whose records are being withdrawn in slices (an ended
 * session, a held set whose time is over) is a "ghost" (table.c).
 */
enum owner_kind {
	OWNER_SESSION,		/* embedded in a struct session */
	OWNER_HELD,		/* embedded in a struct held_set */
};

struct owner {
	enum owner_kind		 kind;
	uint64_t		 id;		/* of the session; a held set
						 * keeps its lost session's */
	char			 peer[64];	/* the session's address */
	char			 name[SESSION_NAME_MAX + 1];	/* client */
	size_t			 name_len;
	char			 ident[SESSION_NAME_MAX + 1];
	size_t			 ident_len;
	struct record_list	 owned;		/* records it owns */
	size_t			 nrecords;
	int			 ghost;		/* records being withdrawn */
	uint8_t			 ghost_reason;	/* with this PROTO_WD_* */
	uint64_t		*told;		/* gone.c: the serials of the
						 * subscriptions told of its
						 * end, sorted */
	size_t			 ntold;
	TAILQ_ENTRY(owner)	 ghost_entry;	/* table.c withdrawal list */
};

/* acl.c's memory of a session's rights on the table it asked about
 * last, until the rules change. Only acl.c reads or writes it. */
struct acl_cache {
	const struct table	*table;
	uint64_t		 gen;		/* of the rules it came from */
	uint8_t			 rights;	/* ACL_* */
};

struct session {
	struct owner		 owner;		/* who, and its records */
	int			 fd;
	enum session_state	 state;
	int			 flush_on_close;
	int			 write_shut;	/* shutdown(SHUT_WR) done */
	int			 pending;	/* on the pending-write list */
	int			 row_stale;	/* on table.c's list of stale rows */
	int			 in_paused;	/* input not read: see session.c */
	int			 resuming;	/* on the resume list */
	int			 lost;		/* ended without BYE: the peer
						 * went away (graceful.c holds
						 * its graceful records) */
	int			 released;	/* fd closed, only records left */
	int			 ip_counted;	/* counted in limit.c per address */
	struct loop_io		 io;
	time_t			 since;		/* wall clock of the HELLO */
	uint64_t		 last_rx_ms;
	uint64_t		 linger_until_ms;
	struct buf		 in;		/* a partial frame */
	struct outq		 out;
	struct subscr_list	 subs;
	size_t			 nsubs;
	size_t			 nfeed;		/* subscriptions with feed work */
	uint64_t		 create_tokens;	/* table creations, in 1/1000 */
	uint64_t		 create_ms;	/* when they were last counted */
	struct record		*row;		/* its ispd.sessions record */
	size_t			 row_nrecords;	/* records field in the row */
	/* Who the rules apply to: owner.ident (auth.c, tls.c, acl.c). */
	enum session_auth	 auth;
	int			 auth_wait;	/* CHALLENGE sent, AUTH due */
	uint32_t		 hello_caps;	/* as the HELLO had them */
	uint8_t			 nonce[PROTO_NONCE_BYTES];	/* of it */
	struct acl_cache	 acl;		/* acl.c's */
	struct tls_conn		*tls;		/* tls.c's; NULL on plain TCP */
	uint8_t			 rx_more;	/* on the rx list */
	TAILQ_ENTRY(session)	 entry;		/* every session */
	TAILQ_ENTRY(session)	 timer_entry;	/* hold or linger list */
	TAILQ_ENTRY(session)	 pending_entry;
	TAILQ_ENTRY(session)	 end_entry;
	TAILQ_ENTRY(session)	 stale_entry;	/* table.c's stale rows */
	TAILQ_ENTRY(session)	 resume_entry;
	TAILQ_ENTRY(session)	 rx_entry;	/* TLS data left to read */
};

/*
 * The records a lost client left behind for graceful restart
 * (graceful.c): an owner with no connection, under a deadline. The
 * first held set of a client is in graceful.c's hash by client; the
 * others (lost sessions of the client while records are held) hang from
 * it by next, with its deadline. Released (END_OF_REPLAY, the grace
 * time over), it leaves graceful.c's list and becomes a ghost: table.c
 * withdraws what it still holds, then graceful_ghost_done() frees it.
 */
struct held_set {
	struct owner		 owner;
	uint64_t		 until_ms;	/* the end of the grace time */
	struct hash_node	 node;		/* by client: the first one */
	struct held_set		*next;		/* the client's next one */
	TAILQ_ENTRY(held_set)	 entry;		/* deadline order, while held */
};

/* The session that owner o is; o must be one. */
static inline struct session *
owner_session(struct owner *o)
{
	if (o->kind != OWNER_SESSION)
		fatalx("owner_session: owner %" PRIu64 " is a held set",
		    o->id);
	return (struct session *)((char *)o - offsetof(struct session,
	    owner));
}

/* The held set that owner o is; o must be one. */
static inline struct held_set *
owner_held(struct owner *o)
{
	if (o->kind != OWNER_HELD)
		fatalx("owner_held: owner %" PRIu64 " is a session", o->id);
	return (struct held_set *)((char *)o - offsetof(struct held_set,
	    owner));
}

/* How session_close() ends a session. */
#define SESSION_CLOSE_NOW	0	/* drop queued output */
#define SESSION_CLOSE_FLUSH	1	/* write queued output first */

struct session	*session_new(int fd, const char *peer);
struct session	*session_open(int fd, const char *peer, int tls);
void		 session_close(struct session *, int how, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
void		 session_reap(void);
void		 session_flush_all(void);
void		 session_before_sleep(void);
uint64_t	 session_next_ms(void);
void		 session_timers(uint64_t now_ms);
void		 session_shutdown_all(void);
void		 session_going_down(uint64_t deadline_ms, const char *reason);
int		 session_send(struct session *, const struct buf *,
		    uint32_t nframes);
void		 session_push(struct session *, struct obuf *);
void		 session_wake(struct session *);
void		 session_error(struct session *, uint32_t req_id, int code,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
size_t		 session_count(void);
size_t		 session_paused_count(void);
size_t		 session_low_water(void);
void		 session_ghost_done(struct session *);
void		 session_tls_ready(struct session *);
void		 session_update_io(struct session *);
void		 session_rules_changed(void);
void		 session_creds_changed(const struct creds *old,
		    const struct creds *new);
void		 session_foreach(void (*)(const struct session *, void *),
		    void *arg);

/* limit.c */
int		 limit_parse_value(const struct setting *, const char *arg,
		    uint64_t *);
int		 limit_session_open(struct session *, char *why, size_t whysz);
void		 limit_session_close(struct session *);
int		 limit_table_create(struct session *, char *why, size_t whysz);
int		 limit_record(const struct proto_msg *, char *why,
		    size_t whysz);
void		 limit_hit(size_t key);	/* a CONF_MAX_* */
uint64_t	 limit_hits(size_t key);	/* a CONF_MAX_* */
void		 limit_free(void);

/* table.c */
struct table {
	struct hash_node	 node;
	struct hash		 records;
	struct record_list	 order;		/* every record, oldest first */
	uint64_t		 next_order;
	struct subscr_list	 subs;
	struct subscr_list	 cursors;	/* snapshots walking order */
	uint32_t		 nsubs;
	uint32_t		 ngone_subs;	/* with PROTO_SUB_OWNER_GONE */
	uint64_t		 gone_walk;	/* gone.c's mark, */
	size_t			 gone_walk_idx;	/* and index */
	uint64_t		 seq;		/* of the last event applied */
	int			 readonly;	/* kept by ispd itself */
	int			 graceful;	/* matches --graceful-table */
	uint64_t		 nlisted;	/* graceful_list()'s count */
	uint8_t			 name_len;
	char			 name[PROTO_MAX_TABLE_BYTES + 1];
};

#define TTL_NONE	UINT32_MAX

struct record {
	struct hash_node	 node;
	TAILQ_ENTRY(record)	 owned;		/* in the owner's list */
	TAILQ_ENTRY(record)	 order_entry;	/* in its table's order */
	uint64_t		 order;		/* creation rank in the table */
	struct table		*table;
	struct owner		*owner;		/* NULL: ispd itself */
	uint64_t		 seq;		/* table seq of last change */
	uint64_t		 expire_ms;	/* 0: no TTL */
	uint32_t		 ttl_idx;	/* heap index, or TTL_NONE */
	uint32_t		 fields_len;
	uint16_t		 key_len;
	uint8_t			 key[];		/* the key, then the encoded
						 * fields block: one
						 * allocation per record */
};
#define RECORD_HEAD	offsetof(struct record, key)

void		 table_init(void);
void		 table_free_all(void);
struct table	*table_find(struct proto_bytes name);
int		 table_create(struct session *, struct proto_bytes name,
		    struct table **, char *why, size_t whysz);
struct record	*table_lookup(const struct table *, struct proto_bytes key);
int		 table_announce(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
int		 table_evict(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
int		 table_drop(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
int		 table_withdraw(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
void		 table_expire(struct record *);
int		 table_session_welcome(struct session *);
void		 table_session_end(struct session *);
void		 table_tick(void);
void		 table_withdraw_run(void);
int		 table_withdraw_pending(void);
size_t		 table_withdraw_backlog(void);
struct table	**table_sorted(size_t *n);
int		 table_cmp(const void *, const void *);
void		 table_give(struct record *, struct owner *);
void		 table_ghost_add(struct owner *, uint8_t reason);
size_t		 table_count(void);
size_t		 table_record_count(void);
struct proto_bytes record_key(const struct record *);
struct proto_bytes record_fields(const struct record *);
struct proto_bytes record_owner(const struct record *);
uint64_t	 record_owner_id(const struct record *);

/* graceful.c */
void		 graceful_init(void);
void		 graceful_free_all(void);
int		 graceful_add(const char *pattern);
int		 graceful_match(const char *name, size_t len);
int		 graceful_takes(const struct owner *holder,
		    const struct owner *);
void		 graceful_hold(struct session *);
void		 graceful_end_of_replay(struct session *);
void		 graceful_ghost_done(struct held_set *);
uint64_t	 graceful_next_ms(void);
void		 graceful_expire(uint64_t now_ms);
size_t		 graceful_held_records(size_t *nclients);
int		 graceful_list(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);

/* gone.c */
void		 gone_tell(struct owner *);
int		 gone_told(const struct subscr *, const struct owner *);
void		 gone_done(struct owner *);
void		 gone_free(void);

/* subscr.c */
/* What feed.c keeps per subscription to bring and keep its subscriber
 * in step with the table. Embedded in struct subscr; only feed.c (and
 * its tests) read or write it. */
struct feed_state {
	struct record		*cursor;	/* next record of the snapshot */
	TAILQ_ENTRY(subscr)	 cursor_entry;	/* on its table's cursors */
	struct hash		 dirty;		/* keys not told yet, by key */
	struct dirty_list	 dirty_list;	/* the same, oldest first */
	TAILQ_ENTRY(subscr)	 slow_entry;	/* on feed.c's slow list */
	uint64_t		 held;		/* records the subscriber holds */
	uint64_t		 behind_ms;	/* since the dirty set filled */
	uint64_t		 coalesced;	/* events folded since then */
	uint8_t			 ended;		/* END queued */
	uint8_t			 working;	/* counted in session->nfeed */
};

struct subscr {
	TAILQ_ENTRY(subscr)	 table_entry;
	TAILQ_ENTRY(subscr)	 session_entry;
	struct table		*table;
	struct session		*session;
	struct feed_state	 feed;		/* feed.c's */
	uint64_t		 serial;	/* unique for ispd's life */
	uint8_t			 owner_gone;	/* PROTO_SUB_OWNER_GONE */
	uint8_t			 once;		/* ends after END */
	uint32_t		 req_id;	/* of its SUBSCRIBE */
	uint16_t		 prefix_len;
	uint8_t			 prefix[];
};

int		 subscr_subscribe(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
int		 subscr_unsubscribe(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
int		 subscr_reply_done(struct session *, uint32_t req_id,
		    const char *done);
size_t		 subscr_table_dropped(struct table *, const char *why);
void		 subscr_event(struct table *, uint8_t type,
		    const struct record *, uint8_t reason,
		    const struct owner *was);
void		 subscr_owner_moved(struct table *, const struct record *);
void		 subscr_session_end(struct session *);
void		 subscr_remove(struct subscr *);
int		 subscr_match(const struct subscr *, const struct record *);
struct obuf	*subscr_event_obuf(struct obuf **, const struct table *,
		    uint8_t type, const struct record *, uint8_t reason);
size_t		 subscr_count(void);
void		 subscr_free_all(void);

/* stats.c */
int		 stats_query(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
void		 stats_free(void);

/* notify.c */
void		 notify_init(void);
void		 notify_ready(const char *status);
void		 notify_reloading(void);
void		 notify_status(const char *status);
void		 notify_stopping(void);
uint64_t	 notify_next_ms(void);
void		 notify_timers(uint64_t now_ms);
void		 notify_free(void);

/* auth.c */
/* A name and its shared secret, from the credentials file. */
struct cred {
	char		*name;
	size_t		 name_len;
	uint8_t		*secret;
	size_t		 secret_len;
	int		 line;
};

struct creds {
	char		*file;
	struct cred	*v;		/* sorted by name */
	size_t		 n;
};

int		 file_check_private(const char *path, const char *what,
		    char *err, size_t errsz);
struct creds	*creds_load(const char *path,
		    void (*report)(void *, int, const char *), void *arg,
		    char *err, size_t errsz);
void		 creds_free(struct creds *);
const struct cred *creds_find(const struct creds *, const void *name,
		    size_t len);
void		 auth_set_creds(struct creds *);
void		 auth_set_mode(int required);
int		 auth_hello(struct session *, uint32_t caps, char *why,
		    size_t whysz);
int		 auth_verify(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
void		 auth_free(void);

/* settings.c: every setting of ispd, described once. The option
 * parser, the file's parser, the reload, --help and docs/CONFIG.md's
 * table (--help-config-markdown) all read this. */
enum setting_type {
	SET_PATH,	/* a file; relative to the configuration file */
	SET_TEXT,	/* 1 to PROTO_MAX_STR_BYTES bytes */
	SET_BOOL,	/* yes or no; the option alone says yes */
	SET_AUTH,	/* required or optional: CONF_AUTH_* */
	SET_HOLD,	/* seconds, decimals allowed; in ms */
	SET_LEVEL,	/* a log level: LOG_LEVEL_* */
	SET_SECONDS,	/* whole seconds, min to max; in ms */
	SET_ADDR,	/* HOST:PORT of an HTTP listener (prom.c) */
	SET_LIMIT,	/* a limit: a whole number from min to max, with K,
			 * M or G for -bytes; `limit NAME N` in the file */
	SET_LISTEN,	/* a listener, repeatable: conf_add_listen() */
	SET_PATTERN,	/* a graceful-table pattern: conf_add_graceful() */
	SET_RULE,	/* default, allow, deny: acl.c parses them */
	SET_RUN,	/* how to run, not a setting: main.c's */
};

#define SET_RESTART	0x01	/* a reload keeps what ispd started with */
#define SET_NOFILE	0x02	/* the command line only */
#define SET_NOCLI	0x04	/* the file only */
#define SET_REPEAT	0x08	/* may be given several times */

/* The settings, in the order of settings[], --help and docs/CONFIG.md. */
enum conf_key {
	CONF_CONFIG,
	CONF_CHECK_CONFIG,
	CONF_LISTEN,
	CONF_LISTEN_TLS,
	CONF_TLS_CERT,
	CONF_TLS_KEY,
	CONF_TLS_CA,
	CONF_TLS_REQUIRE,	/* tls-require-client-cert: num 0 or 1 */
	CONF_CREDENTIALS,
	CONF_AUTH,		/* num: CONF_AUTH_* */
	CONF_USER,
	CONF_HOLD,		/* num: milliseconds */
	CONF_PORT_FILE,
	CONF_METRICS,		/* str: HOST:PORT of the metrics */
	CONF_LOG_LEVEL,		/* num: LOG_LEVEL_* */
	CONF_SERVER_ID,
	CONF_DRAIN_SECONDS,	/* num: milliseconds */
	CONF_GRACEFUL_TABLE,
	CONF_GRACEFUL_SECONDS,	/* num: milliseconds */
	CONF_DEFAULT,
	CONF_ALLOW,
	CONF_DENY,
	CONF_MAX_QUEUE_BYTES,	/* the limits, to the end */
	CONF_MAX_FRAME_BYTES,
	CONF_MAX_KEY_BYTES,
	CONF_MAX_VALUE_BYTES,
	CONF_MAX_FIELDS,
	CONF_MAX_RECORDS_PER_SESSION,
	CONF_MAX_TABLES,
	CONF_MAX_SUBSCRIPTIONS,
	CONF_MAX_SESSIONS_PER_IP,
	CONF_MAX_SESSIONS,
	CONF_MAX_TABLE_CREATES_PER_SEC,
	CONF_NKEYS
};

struct setting {
	const char		*name;	/* directive; option without "--" */
	enum setting_type	 type;
	int			 flags;	/* SET_* */
	const char		*arg;	/* what the value is: FILE, N */
	uint64_t		 min;	/* SET_SECONDS, SET_LIMIT */
	uint64_t		 max;
	const char		*def;	/* the default, parsed as a value;
					 * NULL: none, or def_doc's */
	const char		*def_doc;	/* a default no value says */
	const char		*help;	/* one line */
	uint64_t		*value;	/* where a number is put to use;
					 * NULL: main.c or conf_load() */
};

extern const struct setting	 settings[CONF_NKEYS];

int		 setting_find(const char *name);
void		 settings_defaults(void);
void		 settings_apply(const struct conf *, int reload);
void		 settings_usage(FILE *, int full);
void		 settings_markdown(FILE *);

/* conf.c */
#define CONF_MAX_LISTEN		16
#define CONF_MAX_GRACEFUL	64	/* graceful-table patterns */

#define CONF_AUTH_OPTIONAL	1
#define CONF_AUTH_REQUIRED	2

/* A setting: where it was given (line 0: the command line). */
struct conf_item {
	int		 set;
	int		 line;
	char		*str;
	uint64_t	 num;
};

struct conf_listen {
	char		*spec;
	int		 tls;
	int		 line;
};

struct conf {
	char			*file;		/* NULL: no configuration file */
	char			*dir;		/* relative paths start here */
	struct conf_listen	 listen[CONF_MAX_LISTEN];
	int			 nlisten;
	struct conf_item	 item[CONF_NKEYS];	/* by settings[] */
	char			*graceful[CONF_MAX_GRACEFUL];	/* patterns */
	int			 graceful_line[CONF_MAX_GRACEFUL];
	int			 ngraceful;
	struct acl		*acl;		/* rules, NULL when none */
	int			 nerrors;
	int			 to_log;	/* errors to the log (reload) */
};

/* What conf_load() made of a configuration, ready to be put to use. */
struct conf_loaded {
	struct ssl_ctx_st	*tls;
	struct creds		*creds;
	struct acl		*acl;
	int			 auth_required;
};

void		 conf_init(struct conf *);
void		 conf_free(struct conf *);
void		 conf_error(struct conf *, int line, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
int		 conf_set(struct conf *, enum conf_key, const char *value,
		    int line);
int		 conf_add_listen(struct conf *, const char *spec, int tls,
		    int line);
int		 conf_add_graceful(struct conf *, const char *pattern,
		    int line);
int		 conf_parse_file(struct conf *, const char *path);
void		 conf_merge(struct conf *, const struct conf *over);
int		 conf_load(struct conf *, struct conf_loaded *);
void		 conf_loaded_free(struct conf_loaded *);
const char	*conf_where(const struct conf *, int line, char *buf,
		    size_t bufsz);

/* metrics.c */
int		 metrics_open(const char *spec);
uint64_t	 metrics_next_ms(void);
void		 metrics_timers(uint64_t now_ms);
void		 metrics_close(void);

/* ttl.c */
int		 ttl_reserve(void);
void		 ttl_set(struct record *, uint64_t expire_ms);
void		 ttl_clear(struct record *);
void		 ttl_moved(const struct record *, struct record *);
uint64_t	 ttl_next_ms(void);
int		 ttl_expire(uint64_t now_ms);
void		 ttl_free(void);

#endif
