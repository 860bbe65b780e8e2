/*
 * lib.h: what the files of libisp share. Not installed.
 *
 *	client.c	isp_new, isp_connect, isp_free, accessors, the
 *			error sentence, the 1.0 ABI of the options
 *	conn.c		one server's session: dialing without blocking,
 *			the handshake, loss, the reconnect backoff, and
 *			what is sent again when a session comes back
 *	wire.c		the wire: input framing, dispatch of what ispd
 *			sends, the output queues, keepalives
 *	request.c	announce, withdraw, subscribe, queries, sync:
 *			argument checks against the protocol's limits
 *	intent.c	the records this client holds, kept for replay
 *	run.c		run modes 1 (isp_run) and 2 (isp_fd, isp_process)
 *	thread.c	run mode 3 (isp_start, isp_stop)
 *	mirror.c	in-memory copies of tables: the merge of several
 *			servers, stale records and their sweep
 *	errors.c	isp_strerror
 *	tls.c		TLS with the servers, and the answer to their
 *			authentication challenge
 *
 * A client owns one struct conn per server (one, unless the options list
 * several). Requests are queued on every conn that is up; events from
 * each conn carry its index, and mirrors merge them per server.
 *
 * Locking: every public call takes the client's recursive mutex, so a
 * callback (run with the mutex held) may call back into the library. A
 * mirror's records have their own rwlock so that readers never wait on
 * the client, and the client never waits on readers longer than one
 * change. Order: client mutex, then mirror rwlock; never the reverse.
 */
#ifndef ISP_LIB_H
#define ISP_LIB_H

#include <sys/types.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "isp.h"
#include "buf.h"
#include "hash.h"
#include "proto.h"

/*
 * Binds a compatibility function to an older symbol version of libisp.so
 * (libisp.map). GCC has the attribute; clang 14, which builds only the
 * fuzz targets (no shared library, so no versions), does not.
 */
#if defined(__has_attribute)
#if __has_attribute(symver)
#define LIB_SYMVER(s)	__attribute__((symver(s)))
#endif
#endif
#ifndef LIB_SYMVER
#define LIB_SYMVER(s)
#endif

#define CLIENT_DEFAULT_PORT		"7460"
#define CLIENT_DEFAULT_NAME		"isp-client"
#define CLIENT_CONNECT_TIMEOUT_MS	5000
#define CLIENT_ERRMSG_BYTES		1024
/* HELLO name: 1 to 64 bytes of 0x20..0x7e (docs/PROTOCOL.md). */
#define CLIENT_NAME_MAX_BYTES		64
#define CLIENT_HOST_BYTES		256
#define CLIENT_PORT_BYTES		8
#define CLIENT_ADDR_BYTES		(CLIENT_HOST_BYTES + CLIENT_PORT_BYTES + 4)
/* The least the read buffer grows by: a typical burst of small events
 * in one read(2), without reserving a whole maximal frame up front. */
#define CLIENT_READ_CHUNK_BYTES		16384
/* Reads per isp_process() and server before the output and the
 * keepalives get a turn, so a flood of events cannot starve them. */
#define CLIENT_READS_PER_PASS		16
/* Requests wait in a session's queue until the pass of the loop that
 * runs the client ends (isp.h, "When a request leaves"), or until this
 * much is queued: one send(2) per batch, not per request. */
#define CLIENT_FLUSH_BYTES		(64 * 1024)

enum client_state {
	CLIENT_NEW,		/* isp_new() done, not connected */
	CLIENT_READY,		/* isp_connect() succeeded; while reconnect
				 * is set, the client stays here even with
				 * no session up */
	CLIENT_ENDED,		/* every session ended, no reconnect;
				 * on_closed was called */
	CLIENT_FAILED,		/* isp_connect() failed; no session ever */
};

enum conn_state {
	CONN_IDLE,		/* no socket: before isp_connect(), or
				 * waiting for retry_at_ms */
	CONN_DIALING,		/* non-blocking connect(2) in progress */
	CONN_HANDSHAKE,		/* HELLO sent, waiting for WELCOME */
	CONN_READY,		/* session up */
	CONN_DOWN,		/* given up for good (reconnect off) */
};

struct isp_client;
struct ssl_st;
struct ssl_ctx_st;

/* One server and the session with it. */
struct conn {
	struct isp_client	*c;
	unsigned		 idx;		/* in c->conns, bit in masks */
	char			*server;	/* as given in the options */
	char			 host[CLIENT_HOST_BYTES];
	char			 port[CLIENT_PORT_BYTES];
	/* "HOST:PORT" as connected to, for messages. */
	char			 addr[CLIENT_ADDR_BYTES];

	enum conn_state		 state;
	int			 fd;
	uint32_t		 ep_events;	/* registered in c->epfd */
	struct addrinfo		*ai_list;	/* while dialing */
	struct addrinfo		*ai_next;
	int			 ai_err;	/* errno of the last address */
	uint64_t		 deadline_ms;	/* of the dial and handshake */
	uint64_t		 retry_at_ms;	/* IDLE: next attempt */
	unsigned		 attempt;	/* failed in a row since up */

	uint64_t		 session_id;
	uint32_t		 hold_ms;
	/* The server said GOING_DOWN (drain): no new work goes there while
	 * another server is up, and its close makes nothing stale that
	 * another server holds. Cleared when a session is up again. */
	int			 draining;
	uint32_t		 caps;		/* the WELCOME's */
	int			 was_up;	/* a session was up before */

	struct buf		 in;
	struct buf		 out;
	size_t			 out_off;	/* bytes of out already sent */
	uint64_t		 last_send_ms;
	uint64_t		 last_recv_ms;
	uint64_t		 last_ping_ms;	/* last PING queued */
	/* ispd took bytes from a socket that had been full: it is reading,
	 * so it is alive though its answers wait behind our backlog. */
	int			 out_full;	/* the last send said EAGAIN */
	uint64_t		 last_taken_ms;

	/* A session-fatal ERROR (req_id 0): why ispd is about to close. */
	int			 fatal_err;
	char			 fatal_why[CLIENT_ERRMSG_BYTES];
	/* A write failed where the session could not be ended at once
	 * (inside a request); the next pass through the loop ends it. */
	int			 dead_err;
	char			 dead_why[CLIENT_ERRMSG_BYTES];
	/* Why the last session or attempt ended. */
	int			 end_err;
	char			 end_why[CLIENT_ERRMSG_BYTES];

	/* TLS (tls.c); ssl is NULL on plain TCP. */
	struct ssl_st		*ssl;
	int			 tls_done;	/* handshake over */
	int			 tls_want_write; /* handshake waits to write */
	int			 tls_failed;	/* no close_notify then */
	char			 tls_why[CLIENT_ERRMSG_BYTES];
};

/* A subscription's state on one server's current session. */
struct sub_conn {
	uint32_t		 req_id;	/* of its SUBSCRIBE there */
	int			 active;	/* SUBSCRIBE sent, not ended */
	int			 ended;		/* END seen: snapshot over */
	int			 refused;	/* the server said no */
	/*
	 * After UNSUBSCRIBE, events already queued by ispd still come.
	 * The library sends a PING right after it: a removed
	 * subscription stays (drain_token) until that PONG, and a new
	 * subscription to the same table drops events until it
	 * (wait_token), so it never takes the old one's events for its
	 * snapshot. A lost session clears both: nothing more comes.
	 */
	uint64_t		 drain_token;
	uint64_t		 wait_token;
};

/* A local subscription: one per table and client. */
struct sub {
	struct sub		*next;
	char			 table[PROTO_MAX_TABLE_BYTES + 1];
	size_t			 table_len;
	uint8_t			*prefix;	/* kept to subscribe again */
	size_t			 prefix_len;
	unsigned		 flags;		/* ISP_SUB_* */
	uint32_t		 next_req;	/* id of its next SUBSCRIBE */
	int			 sent;		/* SUBSCRIBE sent somewhere */
	int			 removed;	/* freed when no callback
						 * runs and drains are over */
	isp_event_cb		*cb;
	void			*arg;
	struct isp_mirror	*mirror;	/* when a mirror owns it */
	struct sub_conn		 sc[];		/* one per conn */
};

/* A thread blocked in isp_sync() or a query, waiting for its answer.
 * Lives on that thread's stack. */
enum waiter_kind {
	WAIT_PONG,
	WAIT_ROWS,
};

struct waiter {
	struct waiter		*next;
	enum waiter_kind	 kind;
	uint64_t		 id;		/* PING token or request id */
	uint32_t		 pending;	/* conns yet to answer */
	int			 answered;	/* conns that answered */
	isp_row_cb		*row_cb;
	void			*arg;
	int			 done;
	int			 err;		/* ERROR code for the request,
						 * or why a session ended */
	char			 why[CLIENT_ERRMSG_BYTES];
};

struct isp_client {
	pthread_mutex_t		 lock;		/* recursive */
	pthread_cond_t		 cond;		/* mode 3: answers arrived */

	/* Options, copied. */
	char			*name;
	int			 connect_timeout_ms;
	isp_error_cb		*on_error;
	isp_closed_cb		*on_closed;
	isp_state_cb		*on_state;
	void			*arg;
	int			 reconnect;
	int			 backoff_min_ms;
	int			 backoff_max_ms;
	int			 stale_grace_ms;	/* < 0: never */
	/* One server, no reconnect: every behaviour of libisp 1.0,
	 * isp_fd() the socket itself included. */
	int			 legacy;
	/* TLS and authentication (tls.c). */
	int			 tls;
	char			*tls_ca_file;
	char			*tls_cert_file;
	char			*tls_key_file;
	char			*tls_server_name;
	struct ssl_ctx_st	*tls_ctx;	/* made by isp_connect() */
	char			*secret;
	size_t			 secret_len;

	enum client_state	 state;
	struct conn		*conns;
	unsigned		 nconns;
	int			 epfd;		/* every conn's socket */
	int			 connecting;	/* inside isp_connect() */
	uint64_t		 rng;		/* backoff jitter */

	/* An event or a row as handed to callbacks: its strings, copied
	 * and NUL-terminated, and its fields. */
	struct buf		 scratch;
	struct isp_field	 sfields[PROTO_MAX_FIELDS];
	uint8_t			 sfields_name_len[PROTO_MAX_FIELDS];
	/* A request frame, encoded once and copied to every conn. */
	struct buf		 frame;

	uint32_t		 next_req_id;
	uint64_t		 next_token;

	struct hash		 intents;	/* reconnect only */
	size_t			 intents_prune_at;
	/* Graceful restart (docs/HA.md): END_OF_REPLAY is sent after a
	 * replay only by a client that announced something (a watcher of
	 * the same name must not sweep a publisher's held records), and to
	 * every server coming up once isp_replay_done() was called. */
	int			 announced;
	int			 replay_done;

	struct sub		*subs;
	struct isp_mirror	*mirrors;
	struct waiter		*waiters;
	int			 cb_depth;	/* callbacks running now */
	/* Freed by the application inside a callback: destroyed once no
	 * callback runs (client_reap()). */
	struct isp_mirror	*doomed;	/* mirrors, unlinked */
	int			 freeing;	/* the client itself */
	uint64_t		 serial;	/* unique per client in the
						 * process: per-thread state
						 * names its client by it */

	/* Why the client ended (CLIENT_ENDED, CLIENT_FAILED). */
	int			 end_err;
	char			 end_why[CLIENT_ERRMSG_BYTES];

	/* Mode 3. */
	int			 threaded;
	int			 stop;
	int			 evfd;
	pthread_t		 thread;

	char			 errmsg[CLIENT_ERRMSG_BYTES];
};

/*
 * A record as a mirror keeps it and hands it out (isp_mirror_get(),
 * isp_mirror_foreach(), isp_place()). isp_record_stale() believes stale
 * only when self points back at the record: for a record inside an
 * isp_event the same bytes are the event's seq and count, in bounds, and
 * seq would have to equal the record's own address.
 */
struct rec_hdr {
	struct isp_record	 rec;		/* first */
	const struct isp_record	*self;		/* &rec */
	int			 stale;
};

struct mkey;

struct isp_mirror {
	struct isp_client	*client;	/* NULL: fed by
						 * mirror_apply*() only */
	struct isp_mirror	*next;		/* in client->mirrors */
	char			 table[PROTO_MAX_TABLE_BYTES + 1];
	uint8_t			*prefix;
	size_t			 prefix_len;
	isp_event_cb		*on_change;
	void			*arg;
	int			 ext_events;	/* STALE, FRESH, WD_STALE */
	int			 grace_ms;	/* < 0: never sweep */

	pthread_rwlock_t	 lock;		/* guards what follows */
	struct hash		 keys;		/* struct mkey */
	int			 ready;
	size_t			 nstale;
	/* Stale keys, oldest first: they became stale in time order. */
	struct mkey		*stale_head;
	struct mkey		*stale_tail;
	uint32_t		 synced;	/* servers whose snapshot
						 * ended on this session */
	uint32_t		 resyncing;	/* lost since their last END */
	uint64_t		 recv;		/* receipt counter */
	uint64_t		 nomem;		/* records lost to lack
						 * of memory */
	/* Who owns what, per server (EV_OWNER_GONE): struct mown by
	 * server and owner_session, each with the keys that server says
	 * that owner has. A key has a struct mhold per server. */
	struct hash		 owners;
	unsigned		 nsrv;		/* holds per key */
	struct mown		*last_own;	/* the owner hold_set() found
						 * last */
	struct mown		*spare_own;	/* allocated ahead, outside
						 * the lock */
};

/* client.c */
uint64_t	 client_now_ms(void);
/* Sets the client's error sentence; returns err. */
int		 client_seterr(struct isp_client *, int err, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
/* ISP_OK when requests may be queued now, else ISP_E_STATE with a
 * sentence, starting with fn, saying why and what to do. */
int		 client_check_ready(struct isp_client *, const char *fn);
void		 client_lock(const struct isp_client *);
void		 client_unlock(const struct isp_client *);
/* With no callback running: destroys the mirrors the application freed
 * inside a callback. */
void		 client_reap_mirrors(struct isp_client *);
/*
 * The way out of a call that ran callbacks (modes 1 and 2), holding one
 * level of the lock: unlocks, and when the application freed the client
 * inside one of those callbacks, frees it and returns ISP_E_CLOSED;
 * else returns rc.
 */
int		 client_leave(struct isp_client *, int rc);
/* Frees everything; the library thread is stopped or is the caller. */
void		 client_destroy(struct isp_client *);
/*
 * Splits "HOST:PORT", "[V6]:PORT", "HOST" or "[V6]" (port 7460) into
 * host and port. Returns 0, or -1 when the text is none of those or the
 * port is not 1..65535.
 */
int		 client_parse_addr(const char *, char *host, size_t hostsz,
		    char *port, size_t portsz);
/*
 * Runs the handshake over fd, a connected stream socket the client's
 * first conn then owns, until deadline_ms (client_now_ms() time). Tests
 * hand it one end of a socketpair. Returns ISP_OK or why it failed (the
 * client is then CLIENT_FAILED).
 */
int		 client_handshake(struct isp_client *, int fd,
		    uint64_t deadline_ms);
/* A conn with a session that can take requests now, or 0. */
int		 client_conn_usable(const struct conn *);
/* The number of conns with a session up. */
unsigned	 client_nup(const struct isp_client *);
/* Milliseconds until the client must be processed again (keepalives,
 * deadlines, reconnects, sweeps), or -1. */
int		 client_timeout_ms(const struct isp_client *);

/* conn.c */
/* The reconnect delay of ISP_BACKOFF_* for n failed attempts, drawing
 * the jitter from *rng (splitmix64). Pure but for *rng. */
int		 backoff_delay_ms(unsigned n, int min_ms, int max_ms,
		    uint64_t *rng);
/* Starts an attempt: resolves, starts a non-blocking connect. A
 * failure is handled (retry scheduled or given up) before it returns. */
void		 conn_dial(struct conn *);
/* Looks at a conn being dialed: completes the connect, tries the next
 * address, or fails it. */
void		 conn_dial_check(struct conn *);
/* Takes over a connected socket and sends HELLO. */
void		 conn_attach(struct conn *, int fd);
/* WELCOME arrived: the session is up; sends the kept records and the
 * subscriptions again, tells on_state. */
void		 conn_up(struct conn *);
/* Ends the session or attempt once: closes the socket, wakes waiters,
 * tells subscriptions and mirrors, schedules the next attempt or gives
 * the server up, tells on_state, and calls on_closed when the client
 * can do nothing more. */
void		 conn_end(struct conn *, int err, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
/* Deadlines and due reconnects. */
void		 conn_timers(struct conn *, uint64_t now);
/* Keeps the epoll registration in step with the conn's state. */
void		 conn_update_events(struct conn *);
/* Frees a conn's socket and buffers (isp_free). */
void		 conn_release(struct conn *);

/* wire.c */
int		 conn_live(const struct conn *);
/* Reads what the socket has (bounded), delivers it. */
void		 wire_read(struct conn *);
/* Writes what the socket takes. A failure is kept in dead_err. */
void		 wire_flush(struct conn *);
size_t		 wire_pending(const struct conn *);
/* After encoding a frame at cn->out from mark on: undoes it when memory
 * ran out (ISP_E_NOMEM). Else the frame waits for the end of the pass
 * (wire_process()), or is sent now when the session is not READY yet
 * or CLIENT_FLUSH_BYTES are queued; the library thread is woken when
 * the queue was empty. */
int		 wire_queued(struct conn *, size_t mark);
/* 1 when a READY session has bytes queued that its socket would take:
 * the next pass must come at once (client_timeout_ms() 0). */
int		 wire_due(const struct conn *);
/* Appends an encoded frame (c->frame) to the conn's queue and sends. */
int		 wire_put_frame(struct conn *, const struct buf *);
int		 wire_timeout_ms(const struct conn *, uint64_t now);
void		 wire_keepalive(struct conn *);
/* Processes every conn once: input, output, timers, sweeps. Returns
 * ISP_OK while the client lives, else the error that ended it. */
int		 wire_process(struct isp_client *);
/* The next PING token. */
uint64_t	 wire_token(struct isp_client *);
struct sub	*client_sub_find(struct isp_client *, const void *table,
		    size_t);
/* Marks a subscription removed; frees it now unless a callback runs. */
void		 client_sub_remove(struct isp_client *, struct sub *);
/* Frees removed subscriptions; no callback may be running. */
void		 client_sub_reap(struct isp_client *);
/* The PONG for token arrived on a conn: ends the drains waiting for
 * it. */
void		 client_sub_drained(struct conn *, uint64_t token);
/* Calls a subscription's callback, as the event thread does. */
void		 client_sub_deliver(struct isp_client *, struct sub *,
		    const struct isp_event *);
void		 client_waiter_done(struct isp_client *, struct waiter *,
		    int err, const char *why);

/* request.c */
/* Checks isp_subscribe()'s arguments; fn names the public call in the
 * error sentence. ISP_OK or ISP_E_INVALID. */
int		 client_sub_check_args(struct isp_client *, const char *fn,
		    const char *table, const void *prefix, size_t prefix_len,
		    unsigned flags, isp_event_cb *);
/* isp_subscribe() with the mirror that owns the subscription (or
 * NULL). Same returns. */
int		 client_subscribe(struct isp_client *, const char *fn,
		    const char *table, const void *prefix, size_t prefix_len,
		    unsigned flags, isp_event_cb *, void *arg,
		    struct isp_mirror *);
/* Sends a subscription's SUBSCRIBE on one conn's session. */
int		 client_sub_send(struct conn *, struct sub *);
/* Drops the local subscription and, on each session it is on, sends
 * UNSUBSCRIBE. Returns what queuing it returned. */
int		 client_unsubscribe(struct isp_client *, struct sub *);

/* intent.c */
/* Keeps (or replaces) the latest announce of (table, key): the encoded
 * fields block, the ttl, the request id. ISP_OK or ISP_E_NOMEM. */
int		 intent_put(struct isp_client *, const char *table,
		    size_t table_len, const void *key, size_t key_len,
		    const uint8_t *fields, size_t fields_len, uint32_t ttl_s,
		    uint32_t req_id);
void		 intent_del(struct isp_client *, const char *table,
		    size_t table_len, const void *key, size_t key_len);
/* Queues an ANNOUNCE of every kept record on the conn, with the TTL it
 * has left; drops those whose TTL ran out. */
int		 intent_replay(struct conn *);
/* Drops records whose TTL ran out, when there are many. */
void		 intent_prune(struct isp_client *, uint64_t now);
void		 intent_free_all(struct isp_client *);

/* tls.c */
/* The TLS context from the options (isp_connect()). ISP_OK, or
 * ISP_E_TLS/ISP_E_INVALID with the sentence set. */
int		 ctls_init(struct isp_client *);
void		 ctls_free(struct isp_client *);
/* A TLS session on a conn's connected socket. ISP_OK or ISP_E_NOMEM. */
int		 ctls_start(struct conn *);
void		 ctls_close(struct conn *);
/* Drives the handshake: 1 done, 0 going on, -1 failed (tls_why). */
int		 ctls_handshake(struct conn *);
/* recv(2) and send(2) through TLS: -1 with errno EAGAIN, or EPROTO
 * with cn->tls_why set. */
ssize_t		 ctls_read(struct conn *, void *, size_t);
ssize_t		 ctls_write(struct conn *, const void *, size_t);
int		 ctls_pending(const struct conn *);
/* Queues the AUTH answering the CHALLENGE. */
int		 ctls_answer(struct conn *, const struct proto_msg *);

/* run.c */
/* ISP_OK when the calling thread may run the loop now (modes 1, 2),
 * else the code to return, with the error sentence set. */
int		 run_check(struct isp_client *, const char *what);
/* Delivers input until w is answered, the client ends, or timeout_ms
 * (-1: no limit) passes. Returns w->err, the client's error, or
 * ISP_E_TIMEOUT. */
int		 run_wait(struct isp_client *, struct waiter *,
		    int timeout_ms);

/* thread.c */
/* Wakes the library thread, if one runs, to look at its work again. */
void		 thread_wake(struct isp_client *);
/* thread_wake() unless called on the library thread itself. */
void		 thread_wake_other(struct isp_client *);

/* mirror.c */
/* A mirror not tied to a client, fed by mirror_apply*() only: what
 * isp_mirror_new() builds on, and what unit tests use. NULL when out of
 * memory or when the table or prefix are over the protocol's limits.
 * It keeps stale records for ISP_STALE_GRACE_MS and makes no
 * ISP_EV_STALE/FRESH events until told otherwise (grace_ms,
 * ext_events). */
struct isp_mirror *mirror_create(const char *table, const void *prefix,
		    size_t prefix_len, isp_event_cb *on_change, void *arg);
/* Applies one event from server (an index below ISP_MAX_SERVERS) at
 * time now (client_now_ms() clock) to the merged view, then calls
 * on_change for what changed (without the rwlock held). Returns ISP_OK,
 * or ISP_E_NOMEM when the record could not be stored (that server's
 * copy is then dropped and counted in nomem). */
int		 mirror_apply_from(struct isp_mirror *, unsigned server,
		    const struct isp_event *, uint64_t now);
/* Server says every record of owner_session it sent this mirror is
 * gone (EV_OWNER_GONE): each is withdrawn as by mirror_apply_from(),
 * on_change told per record, walking that owner's keys only. seq is the
 * event's. Returns the number of keys withdrawn from that server. */
size_t		 mirror_owner_gone(struct isp_mirror *, unsigned server,
		    uint64_t owner_session, int reason, uint64_t seq,
		    const char *server_name, uint64_t now);
/* The server ended or refused the mirror's subscription: what it said
 * about owners is forgotten (its numbers may mean others by the next
 * subscription, after a restart of it). */
void		 mirror_forget_owners(struct isp_mirror *, unsigned server);
/* Records of owner_session that server holds in the mirror. */
size_t		 mirror_owner_count(const struct isp_mirror *,
		    unsigned server, uint64_t owner_session);
/* mirror_apply_from() for server 0, now. */
int		 mirror_apply(struct isp_mirror *, const struct isp_event *);
/* Server's session was lost at now: what it holds turns unconfirmed,
 * keys with no confirmed holder left turn stale. ISP_EV_STALE; with
 * quiet (a drained server, another one up), only when a key turned
 * stale, and then no ISP_EV_FRESH either when it is back. */
void		 mirror_server_lost(struct isp_mirror *, unsigned server,
		    uint64_t now, int quiet);
/* Withdraws (ISP_WD_STALE) the keys stale for grace_ms at now. */
void		 mirror_sweep(struct isp_mirror *, uint64_t now);
/* Milliseconds from now until the next sweep is due, or -1. Only from
 * the thread that changes the mirror. */
int		 mirror_sweep_due_ms(const struct isp_mirror *, uint64_t now);
/* Frees records and the mirror; the caller unlinked it. */
void		 mirror_destroy(struct isp_mirror *);
/* on_change is never called again. */
void		 mirror_silence(struct isp_mirror *);
/* The isp_event_cb of a mirror's subscription. */
void		 mirror_event_cb(isp_client *, const struct isp_event *,
		    void *);
/*
 * Copies a record into one allocation: head bytes (the struct
 * isp_record first, then whatever the caller keeps), then the fields
 * array, the key, the owner, each name and value, all NUL-terminated.
 * free() frees it. NULL when out of memory.
 */
struct isp_record *mirror_record_dup(const struct isp_record *, size_t head);

#endif
