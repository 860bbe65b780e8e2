/*
 * libisp: the C client library of ispd.
 *
 * A client (isp_client) holds one session with each ispd it was given:
 * one server by default, or several redundant reflectors
 * (isp_options.servers). Through it an application announces and
 * withdraws records it owns, subscribes to tables, and keeps in-memory
 * mirrors of tables. Requests go to every server; a mirror merges what
 * the servers send (docs/HA.md has the exact rule).
 *
 * With isp_options.reconnect set, a lost session is not the end: the
 * library reconnects with a documented backoff (see ISP_BACKOFF_*),
 * announces again every record the application still holds, subscribes
 * again, and mirrors keep their records (marked stale) meanwhile, so the
 * application sees no withdraw-and-announce flap. Without it (the
 * default, as in libisp 1.0), a client connects once and its session
 * ends for good.
 *
 * Three ways to run a client, as with hiredis and libmosquitto:
 *   1. blocking: call isp_run() from your own thread whenever you want
 *      events delivered and keepalives sent;
 *   2. your event loop: watch isp_fd() for the events isp_want() names,
 *      and call isp_process() when it is ready or isp_timeout_ms() has
 *      passed;
 *   3. a library thread: isp_start() runs the client on a thread of its
 *      own; callbacks then come from that thread, and every isp_* call is
 *      safe from any thread (isp_free() and isp_mirror_free() excepted:
 *      no other thread may be using what they free).
 * In modes 1 and 2 callbacks run on the thread inside isp_run(),
 * isp_process(), isp_sync() or a query, never inside a request call.
 *
 * Callbacks run holding the client's mutex. It is recursive, so a
 * callback may call any isp_* function of its own client (those that
 * wait for an answer refuse with ISP_E_STATE). In mode 3 every other
 * thread's call on that client waits while a callback runs: keep them
 * short, and never make a callback wait for a thread that is calling
 * into the same client. isp_free() and isp_mirror_free() may be called
 * from a callback: the client (or mirror) is then freed once the
 * callback has returned, before the call that delivered it returns (in
 * modes 1 and 2 that call returns ISP_E_CLOSED; in mode 3 the library
 * thread frees the client and ends). No callback of what was freed runs
 * after the one that freed it.
 *
 * Errors: functions return ISP_OK (0) or an isp_err code; isp_errmsg()
 * gives a sentence about the last failure of that client. Codes below
 * 100 are also the codes of the wire protocol's ERROR frame.
 *
 * Memory: the library copies every argument it keeps. Pointers handed to
 * callbacks are valid only during the callback.
 *
 * ABI: structs the application allocates (isp_options) or reads
 * (isp_event, isp_server_event) only ever grow at the end. Binaries
 * built against an older libisp keep working with this library: the
 * shared library exports isp_options_init() and isp_new() three times,
 * under symbol versions LIBISP_1 (the 1.0 layout of isp_options),
 * LIBISP_1.1 (1.1's, before TLS and the secret) and LIBISP_1.2 (this
 * one); every other function exists once, under the version that added
 * it (src/lib/libisp.map). New event types and withdraw reasons
 * (ISP_EV_STALE, ISP_EV_FRESH, ISP_WD_STALE) are only delivered to
 * clients that set an option added with them (reconnect, or more than
 * one server).
 */
#ifndef ISP_H
#define ISP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* This header's version of libisp; isp_version() gives the library's,
 * which may be newer than the header a program was built with. */
#define ISP_VERSION_MAJOR	1
#define ISP_VERSION_MINOR	6
#define ISP_VERSION_PATCH	1
#define ISP_VERSION		"1.6.1"
/* major * 10000 + minor * 100 + patch, for #if. */
#define ISP_VERSION_NUMBER	(ISP_VERSION_MAJOR * 10000 + \
				 ISP_VERSION_MINOR * 100 + ISP_VERSION_PATCH)

#define ISP_DEFAULT_SERVER	"127.0.0.1:7460"
#define ISP_SESSIONS_TABLE	"ispd.sessions"

/* At most this many servers per client (isp_options.nservers). Two per
 * site is the deployment docs/HA.md describes. */
#define ISP_MAX_SERVERS		16

/*
 * The reconnect backoff (isp_options.reconnect), tested as documented
 * here (tests/unit/test_backoff.c, tests/integ/test_noflap.c):
 *
 *	delay(n) = b + j,  b = min(backoff_max_ms, backoff_min_ms * 2^n),
 *	                   j a uniform random integer in [-b/5, +b/5]
 *
 * where n is the number of attempts at that server that have failed
 * since its last session was up: 0 right after a session is lost, 1
 * after the first failed attempt, and so on. With the defaults the waits
 * are 100, 200, 400, 800, 1600, 3200, 5000, 5000... ms, each +-20%.
 * The jitter keeps a thousand clients of a restarted reflector from
 * coming back in one burst. n returns to 0 when a handshake completes.
 */
#define ISP_BACKOFF_MIN_MS	100
#define ISP_BACKOFF_MAX_MS	5000
#define ISP_BACKOFF_JITTER_PCT	20
/* How long a mirror keeps a stale record that no server confirms (see
 * isp_options.stale_grace_ms and docs/HA.md for why 30 s). */
#define ISP_STALE_GRACE_MS	30000

typedef enum isp_err {
	ISP_OK = 0,
	/* Sent by ispd in ERROR frames; the same numbers on the wire. */
	ISP_E_PROTOCOL = 1,		/* malformed frame */
	ISP_E_VERSION = 2,		/* protocol versions differ */
	ISP_E_FRAME_TOO_LARGE = 3,	/* frame over the size limit */
	ISP_E_UNKNOWN_TYPE = 4,		/* frame type not known */
	ISP_E_NOT_READY = 5,		/* request before HELLO/WELCOME */
	ISP_E_BAD_TABLE = 6,		/* table name invalid */
	ISP_E_BAD_KEY = 7,		/* key empty or too long */
	ISP_E_BAD_FIELDS = 8,		/* field name, value or count invalid */
	ISP_E_NOT_OWNER = 9,		/* withdraw of a record owned by
					 * another session */
	ISP_E_NOT_FOUND = 10,		/* no such record or table */
	ISP_E_READONLY = 11,		/* table kept by ispd itself */
	ISP_E_ALREADY_SUBSCRIBED = 12,	/* one subscription per table */
	ISP_E_NOT_SUBSCRIBED = 13,
	ISP_E_HOLD_EXPIRED = 14,	/* silence past the hold time */
	ISP_E_SHUTDOWN = 15,		/* server going down */
	ISP_E_LIMIT = 16,		/* a configured limit was hit */
	ISP_E_BAD_REQUEST = 17,		/* other invalid request */
	ISP_E_AUTH = 18,		/* authentication failed or is
					 * required (ends the session) */
	ISP_E_DENIED = 19,		/* a rule of ispd forbids the request;
					 * the reason names the rule */
	/* Local to the library. */
	ISP_E_SYS = 100,		/* system call failed; see errno */
	ISP_E_CONNECT = 101,		/* cannot connect */
	ISP_E_CLOSED = 102,		/* session ended */
	ISP_E_TIMEOUT = 103,		/* no answer in time */
	ISP_E_INVALID = 104,		/* invalid argument */
	ISP_E_NOMEM = 105,		/* out of memory */
	ISP_E_STATE = 106,		/* not allowed in this state */
	ISP_E_TLS = 107,		/* TLS failed: certificate, handshake,
					 * or files given in the options */
} isp_err;

/* A short English text for the code; never NULL. */
const char	*isp_strerror(int err);
/* The library's version, "MAJOR.MINOR.PATCH"; never NULL. Since 1.4. */
const char	*isp_version(void);

/* One name=value field. name is NUL-terminated; value is binary-safe,
 * and when handed out by the library it is also NUL-terminated one byte
 * past value_len, for convenience. */
struct isp_field {
	const char	*name;
	const void	*value;
	size_t		 value_len;
};

enum isp_event_type {
	ISP_EV_ANNOUNCE = 1,	/* new key (or a record of the snapshot) */
	ISP_EV_REPLACE = 2,	/* existing key announced again, changed */
	ISP_EV_WITHDRAW = 3,	/* key gone */
	ISP_EV_END = 4,		/* end of snapshot; count is set */
	/*
	 * Only for clients with reconnect set or several servers:
	 * STALE: the session with ev->server was lost. For a mirror, count
	 * is the number of its records now stale (no live server holds
	 * them); they stay readable. For a plain subscription, count is 0
	 * and a new snapshot follows when the session is back.
	 * FRESH: a mirror's subscription on ev->server is back and its new
	 * snapshot has ended; count is the number of records still stale
	 * (a restarted reflector fills up as publishers replay). Also, with
	 * count 0, when the last stale record was confirmed or withdrawn.
	 */
	ISP_EV_STALE = 5,
	ISP_EV_FRESH = 6,
};

enum isp_withdraw_reason {
	ISP_WD_OWNER = 1,	/* withdrawn by its owner */
	ISP_WD_EXPIRED = 2,	/* TTL ran out */
	ISP_WD_SESSION = 3,	/* owner's session ended */
	ISP_WD_STALE = 4,	/* mirror only: stale for stale_grace_ms and
				 * no server announced it again */
	ISP_WD_HELD = 5,	/* since 1.5: held for its client's graceful
				 * restart (its session was lost), and not
				 * announced again before the grace time
				 * ended or the client's END_OF_REPLAY
				 * (older servers said ISP_WD_SESSION).
				 * Treat a reason not listed here as a
				 * withdrawal all the same. */
	ISP_WD_EVICTED = 6,	/* since 1.6: an operator removed it
				 * (isp_evict(), ispctl evict) */
};

/* A record, as the server sent it. key is NUL-terminated one byte past
 * key_len. This struct does not grow: it is embedded in struct
 * isp_event, so a new member would move the event's later members under
 * compiled applications. See isp_record_stale() instead. */
struct isp_record {
	const void		*key;
	size_t			 key_len;
	const struct isp_field	*fields;
	size_t			 nfields;
	const char		*owner;		/* client name of the owner */
	uint64_t		 owner_session;	/* its session id */
	uint64_t		 seq;		/* table sequence of last change */
};

struct isp_event {
	enum isp_event_type	 type;
	const char		*table;
	struct isp_record	 rec;		/* ANNOUNCE, REPLACE, WITHDRAW
						 * (no fields) */
	uint64_t		 seq;		/* per-table sequence number */
	uint64_t		 count;		/* END: records the subscriber holds
						 * once it applied every event
						 * before END, by key */
	int			 reason;	/* WITHDRAW: isp_withdraw_reason */
	int			 snapshot;	/* 1 while the snapshot lasts;
						 * 0 for END and after */
	/* Added in 1.1. The server the event came from, as given in the
	 * options, and its index there. With several servers, seq and
	 * owner_session are that server's numbers. NULL and 0 for events
	 * a mirror makes itself (ISP_WD_STALE withdraws). */
	const char		*server;
	unsigned		 server_index;
};

typedef struct isp_client isp_client;
typedef struct isp_mirror isp_mirror;

/* Called for each event of a subscription. */
typedef void isp_event_cb(isp_client *, const struct isp_event *, void *arg);
/* Called when ispd answers a request with an error. req_id is what
 * isp_last_req_id() returned after the request, or 0 for an error about
 * the whole session. */
typedef void isp_error_cb(isp_client *, uint32_t req_id, int code,
    const char *reason, void *arg);
/* Called once when the client can do nothing more: every server's
 * session has ended and the library will not reconnect (reconnect off).
 * With one server that is when its session ends. err says why
 * (ISP_E_CLOSED when the server closed it, ISP_E_HOLD_EXPIRED,
 * ISP_E_SHUTDOWN, ...), for the session that ended last. Never called
 * with reconnect set; not called when isp_connect() fails, nor by
 * isp_free(). */
typedef void isp_closed_cb(isp_client *, int err, const char *why,
    void *arg);

/* A change of one server's session, for on_state. */
struct isp_server_event {
	const char	*server;	/* as given in the options */
	unsigned	 index;		/* its index there */
	int		 up;		/* 1: a session is up now (new
					 * session_id; records and
					 * subscriptions are being sent
					 * again); 0: the session was lost or
					 * an attempt failed */
	int		 err;		/* !up: why, an isp_err */
	const char	*why;		/* !up: a sentence; up: "" */
	uint64_t	 session_id;	/* up: the new session's id */
	unsigned	 attempt;	/* !up: attempts failed in a row (0:
					 * a session was just lost) */
	int		 retry_ms;	/* !up: wait before the next attempt,
					 * delay(attempt) of ISP_BACKOFF_*;
					 * -1: none (reconnect off) */
	unsigned	 nup;		/* servers with a session up now */
};
/* Called after isp_connect() returned, on the thread that delivers
 * events, for every session that comes up, is lost, or fails to come
 * up. isp_connect() itself reports the first attempt at each server. */
typedef void isp_state_cb(isp_client *, const struct isp_server_event *,
    void *arg);

/*
 * Options. Initialise with isp_options_init() and set what you need;
 * new members are only ever added at the end, so old code keeps working.
 */
struct isp_options {
	const char	*server;	/* "HOST:PORT" or "[V6]:PORT";
					 * default ISP_DEFAULT_SERVER */
	const char	*name;		/* client name, shown as owner;
					 * default "isp-client" */
	int		 connect_timeout_ms;	/* default 5000 */
	isp_error_cb	*on_error;	/* default: none */
	isp_closed_cb	*on_closed;	/* default: none */
	void		*arg;		/* handed to on_error, on_closed,
					 * on_state */
	/* Added in 1.1. */
	const char *const *servers;	/* nservers "HOST:PORT" strings,
					 * copied; when nservers > 0 they
					 * replace server. The client holds a
					 * session with each (docs/HA.md) */
	size_t		 nservers;	/* 0..ISP_MAX_SERVERS; default 0 */
	int		 reconnect;	/* 1: reconnect lost sessions, replay
					 * the records this client holds,
					 * subscribe again, keep mirrors stale
					 * meanwhile. Default 0, libisp 1.0's
					 * behaviour: applications written for
					 * it free the client when on_closed
					 * says the session ended */
	int		 backoff_min_ms;	/* <= 0: ISP_BACKOFF_MIN_MS */
	int		 backoff_max_ms;	/* <= 0: ISP_BACKOFF_MAX_MS */
	int		 stale_grace_ms;	/* 0: ISP_STALE_GRACE_MS; < 0:
						 * keep stale records until a
						 * server confirms or withdraws
						 * them */
	isp_state_cb	*on_state;	/* default: none */
	/*
	 * Added with TLS and authentication (docs/SECURITY.md). With tls
	 * set, every session runs over TLS 1.2 or later (1.3 preferred);
	 * the server's certificate must chain to tls_ca_file (NULL: the
	 * system's CAs) and name tls_server_name (NULL: the host of the
	 * server's address, a DNS name or an IP address). There is no
	 * option to skip that check. tls_cert_file and tls_key_file give
	 * a client certificate, for servers that require one.
	 */
	int		 tls;		/* default 0: plain TCP */
	const char	*tls_ca_file;
	const char	*tls_cert_file;	/* PEM, with its chain */
	const char	*tls_key_file;	/* PEM, unencrypted */
	const char	*tls_server_name;
	/* The shared secret of this client's name (its line in ispd's
	 * credentials file): answers ispd's challenge; never sent. */
	const char	*secret;	/* default NULL: none */
};

void		 isp_options_init(struct isp_options *);

/*
 * Creates a client. Returns NULL when out of memory or when the system
 * refuses what a client needs (an epoll descriptor: EMFILE, ENFILE; a
 * mutex), with errno set. The client is not connected yet. Bad options
 * (a server address, a name) are reported by isp_connect().
 */
isp_client	*isp_new(const struct isp_options *);

/*
 * Connects to every server at once and completes the handshakes,
 * blocking until each has succeeded or failed, at most
 * connect_timeout_ms. Returns ISP_OK when at least one session is up,
 * else the first server's ISP_E_CONNECT, ISP_E_VERSION, ISP_E_TIMEOUT,
 * ISP_E_PROTOCOL... with isp_errmsg() saying what to do (naming each
 * server when there are several). ISP_E_INVALID for a bad name or
 * server address. Servers that failed are retried in the background
 * when reconnect is set, and are given up otherwise. Calls no callback.
 * A client connects once (reconnects are the library's business); make
 * a new one to connect again after a failure.
 */
int		 isp_connect(isp_client *);

/* Closes the sessions (saying BYE to each server, best effort: what the
 * socket does not take at once is not waited for; isp_sync() first when
 * it matters) and frees the client, its subscriptions and mirrors. Stops
 * the library thread first if one runs. From a callback of this client,
 * the client is freed once the callback returned (see above). */
void		 isp_free(isp_client *);

/* The sentence about the client's last failure (of a call on any
 * thread, or of a session), copied under the client's lock into a
 * buffer of the calling thread: safe from any thread, and valid until
 * this thread calls isp_errmsg() again. Never NULL. */
const char	*isp_errmsg(const isp_client *);
/* The session id ispd gave us, or 0 before the handshake. With several
 * servers, that of the first server in the list with a session up (else
 * the last one known). */
uint64_t	 isp_session_id(const isp_client *);
/* The hold time ispd announced, in milliseconds; same choice of server. */
uint32_t	 isp_hold_ms(const isp_client *);
/* How many servers have a session up now. */
unsigned	 isp_servers_up(const isp_client *);

/*
 * Requests. Each is queued for every server with a session up; it
 * returns ISP_OK once queued, or ISP_E_INVALID for arguments out of the
 * protocol's limits, ISP_E_STATE when not connected, ISP_E_NOMEM. ispd
 * answers only failures, through on_error, with the request's id; with
 * several servers each may refuse the same request, and on_error is
 * called for each refusal.
 *
 * When a request leaves (since 1.5; before, each went out at once, one
 * send(2) apiece). Requests are written in batches, with no timer:
 *   - a session's queue is written at the end of every pass of the loop
 *     that runs the client: isp_run(), isp_process(), isp_sync(), a
 *     query, and in mode 3 each pass of the library thread;
 *   - in mode 3 a request from another thread that finds the queue
 *     empty wakes the library thread, which writes what has been queued
 *     by the time it runs (requests made meanwhile join the batch);
 *   - in modes 1 and 2, isp_timeout_ms() is 0 while requests wait, so a
 *     loop that waits as isp_timeout_ms() says writes them at once (in
 *     mode 2 with isp_fd() a session's socket, isp_want() also says
 *     ISP_WANT_WRITE); requests made from a callback leave when the
 *     call that ran the callback returns;
 *   - whenever 64 KiB are queued for a server, they are written at once
 *     (within the request call), whatever the mode;
 *   - isp_flush() writes them now, and isp_free() before its BYE.
 * "Written" is as far as the socket takes it; the rest goes when it can
 * take more. That ispd has processed them is what isp_sync() waits for.
 *
 * With reconnect set, the library keeps the latest intent per (table,
 * key) this client announced: fields, ttl and request id, until
 * withdrawn or, with a TTL, until the TTL runs out without a new
 * announce. Memory is bounded by the records the application holds.
 * Whenever a session comes up again, every kept record is announced
 * (with the TTL it has left, under its original request id), so calls
 * made while no session is up are not lost: they return ISP_OK and take
 * effect on reconnect.
 */

/* Announces a record into table, owned by this session. ttl_s 0 means no
 * TTL. Fields are kept in the given order. */
int		 isp_announce(isp_client *, const char *table, const void *key,
		    size_t key_len, const struct isp_field *fields,
		    size_t nfields, unsigned ttl_s);
/* Withdraws a record this session owns. */
int		 isp_withdraw(isp_client *, const char *table, const void *key,
		    size_t key_len);
/*
 * Says to every server that this client has announced everything it
 * holds. In tables ispd keeps for graceful restart (ispd
 * --graceful-table, docs/HA.md), what a lost session of a client of the
 * same name and identity left held, and this client did not announce
 * again, is then withdrawn at once rather than at the end of the grace
 * time. With reconnect the library says it by itself after its replay
 * on every reconnect (if it announced anything); a program that died,
 * restarted and announced again what its previous run held calls it
 * once done (a run that ended with isp_free() said BYE, so nothing of it
 * is held, unless that BYE was lost: isp_free() does not wait for it).
 * Servers that come up later are told after their replay. A server too
 * old to know it is not told. ISP_OK, or as the requests above. Since
 * libisp 1.3.
 */
int		 isp_replay_done(isp_client *);
/* The request id of the last request this thread queued, when it was
 * queued on this client (what on_error names if ispd refuses it): call
 * it right after the request. 0 when this thread's last request went to
 * another client, or it made none. */
uint32_t	 isp_last_req_id(const isp_client *);

/* Writes what this client queued (see "When a request leaves") as far
 * as each socket takes it now, without waiting; the rest goes in the
 * next pass. Any mode, any thread, also from a callback. ISP_OK, or
 * ISP_E_STATE when not connected or the session has ended. Since 1.5. */
int		 isp_flush(isp_client *);

#define ISP_SUB_ONCE	0x01	/* snapshot and end marker only */

/* Subscribes to table, to keys starting with prefix (prefix_len 0 for
 * all). cb gets each record of the snapshot, then ISP_EV_END, then live
 * events. One subscription per table and client. With several servers,
 * cb sees each server's stream as it comes (ev->server tells which);
 * use a mirror for one merged view. With reconnect, a lost session is
 * reported by ISP_EV_STALE and a new snapshot and END follow when it is
 * back. ISP_SUB_ONCE subscriptions are sent to the servers up at the
 * time, and are not renewed. */
int		 isp_subscribe(isp_client *, const char *table,
		    const void *prefix, size_t prefix_len, unsigned flags,
		    isp_event_cb *cb, void *arg);
/* ISP_E_STATE also when the table is not subscribed, or is kept by a
 * mirror (free the mirror instead). */
int		 isp_unsubscribe(isp_client *, const char *table);

/* Queries: each blocks until the answer (or timeout_ms). In modes 1 and
 * 2 the call delivers other events meanwhile, on the calling thread; in
 * mode 3 the library thread delivers them, and the call waits. Never
 * from a callback of the same client (ISP_E_STATE). rows is called per
 * row (per table, or once for stats), on the thread that reads the
 * answer. With several servers the first one up in the list answers. */
typedef void isp_row_cb(const struct isp_field *, size_t nfields,
    void *arg);
int		 isp_query_tables(isp_client *, isp_row_cb *, void *arg,
		    int timeout_ms);
int		 isp_query_stats(isp_client *, isp_row_cb *, void *arg,
		    int timeout_ms);

/* Operator controls, since 1.6 (docs/OPERATIONS.md "Operator controls").
 * Shaped like the queries: each blocks until the answer (or timeout_ms),
 * never from a callback of the same client (ISP_E_STATE), and rows is
 * called once with one field, "done", saying what was done (isp_held()
 * aside: its rows are the list). Each needs its own right in ispd's
 * rules (kick, evict, drop, held); a refusal is
 * ISP_E_DENIED naming the rule, and what does not exist ISP_E_NOT_FOUND,
 * with isp_errmsg() saying why.
 *
 * isp_kick() ends the live session of that id (ispd.sessions lists
 * them): it gets BYE, its records are withdrawn at once (reason
 * ISP_WD_SESSION, not held for a graceful restart); its client may
 * connect again. done names the session and its client.
 *
 * isp_evict() withdraws one record whoever owns it: subscribers see
 * ISP_WD_EVICTED. Its owner may announce it again. done names the owner
 * and its session. ISP_E_INVALID for a bad table name or key,
 * ISP_E_READONLY for a table kept by ispd. */
int		 isp_kick(isp_client *, uint64_t session_id, isp_row_cb *,
		    void *arg, int timeout_ms);
int		 isp_evict(isp_client *, const char *table, const void *key,
		    size_t key_len, isp_row_cb *, void *arg, int timeout_ms);
/* isp_drop() removes a table: its records are withdrawn (ISP_WD_EVICTED)
 * whoever owns them, then every subscription to it ends: its subscriber
 * gets an error (ISP_E_NOT_FOUND, to the on_error callback, with the
 * subscription's request id) and the subscription is gone, as if the
 * server had refused it. A client that announces into that name later
 * creates the table again. done says how many records and
 * subscriptions went. ISP_E_READONLY for a table kept by ispd.
 *
 * isp_held() lists what ispd holds for graceful restart (docs/HA.md):
 * rows is called per held set and table, with fields session (of the
 * lost session), client, identity, table, records (held in that table)
 * and expires_ms (until the grace time ends), in order of session and
 * table. The answer comes in pages that the call asks for one after
 * the other, each within timeout_ms; none held is ISP_OK with no row. */
int		 isp_drop(isp_client *, const char *table, isp_row_cb *,
		    void *arg, int timeout_ms);
int		 isp_held(isp_client *, isp_row_cb *, void *arg,
		    int timeout_ms);

/* Blocks until ispd has processed every request sent before the call
 * (a PING/PONG round trip), delivering events and errors meanwhile (in
 * mode 3 the library thread delivers them). Never from a callback of
 * the same client (ISP_E_STATE).
 * With several servers it waits for each server up at the call; one
 * whose session is lost meanwhile no longer counts. ISP_OK when at least
 * one answered, ISP_E_TIMEOUT, or the session's error (ISP_E_STATE when
 * no session is up). */
int		 isp_sync(isp_client *, int timeout_ms);

/* Mode 1: blocking. Waits up to timeout_ms (-1 forever, 0 not at all)
 * for input, delivers it, sends keepalives. Returns ISP_OK, or the error
 * that ended the session. */
int		 isp_run(isp_client *, int timeout_ms);

/* Mode 2: your loop. With one server and reconnect off, isp_fd() is
 * the session's socket, as in libisp 1.0. Otherwise it is an epoll
 * descriptor over every server's socket that stays the same for the
 * client's life, so register it once; it is readable whenever
 * isp_process() has work, and isp_want() is then ISP_WANT_READ only.
 * -1 when the client has ended. */
#define ISP_WANT_READ	0x1
#define ISP_WANT_WRITE	0x2
int		 isp_fd(const isp_client *);
/* Which readiness to wait for on isp_fd(). */
int		 isp_want(const isp_client *);
/* Milliseconds until isp_process() must run again for keepalives,
 * reconnect attempts and stale sweeps; 0 while requests wait to be
 * written; -1 when nothing is due. */
int		 isp_timeout_ms(const isp_client *);
/* Reads what is there without blocking, delivers it, writes what is
 * queued, sends keepalives, reconnects, sweeps stale mirror records.
 * ISP_OK while the client lives (also while reconnecting), or the error
 * that ended it. */
int		 isp_process(isp_client *);

/* Mode 3: a library thread. Returns ISP_OK, ISP_E_STATE (not connected,
 * or started already) or ISP_E_SYS. After it, every call is thread-safe
 * and callbacks run on the library's thread. */
int		 isp_start(isp_client *);
/* Stops and joins the thread. */
void		 isp_stop(isp_client *);

/*
 * Mirror: an in-memory copy of a table (or the part under a prefix),
 * kept in step by a subscription on every server. on_change is called
 * after each change of the merged view was applied, from the thread
 * that delivers events: ISP_EV_ANNOUNCE for a key new to the view,
 * ISP_EV_REPLACE when the fields or the owner's name changed (a change
 * of owner_session or seq alone is applied silently), ISP_EV_WITHDRAW
 * when the key left the view, ISP_EV_END once, when the first server's
 * snapshot ended; and, for clients with reconnect or several servers,
 * ISP_EV_STALE and ISP_EV_FRESH. Lookups may come from any thread.
 *
 * Merge rule (docs/HA.md): per key, the mirror keeps which servers hold
 * it and each distinct value they hold; the value shown is the one
 * received last. When a server's session is lost, what it held turns
 * unconfirmed; a key whose holders are all unconfirmed is stale: still
 * shown, counted by isp_mirror_stale_count(). A server's announce
 * confirms the key (one REPLACE if its value differs from the one shown,
 * else nothing). A key leaves the view when its last holder withdraws
 * it, when a live server withdraws it and only unconfirmed holders
 * remain, or when it has stayed stale for stale_grace_ms
 * (ISP_WD_STALE).
 *
 * The end of an owner (since 1.6.1). A mirror keeps each record under the
 * owner (owner_session) each server says it has, and subscribes so that
 * a server that offers it sends the end of an owner as one event
 * (docs/PROTOCOL.md, "Session end"): the mirror then drops that owner's
 * records in one walk of them, with no lookup per record. on_change is
 * still called once per record that leaves the view, ISP_EV_WITHDRAW
 * with the reason (ISP_WD_SESSION, ISP_WD_HELD), as for a withdrawal
 * per record, with three differences: ev->seq is that one event's for
 * all of them; they come newest first; and the mirror drops them in
 * batches, so when on_change runs for one, some of the next ones may
 * already be gone from the view. A plain subscription (isp_subscribe())
 * is always sent a withdrawal per record.
 */
/* NULL on failure (invalid arguments, not connected, table subscribed
 * already, out of memory), with isp_errmsg() saying why. */
isp_mirror	*isp_mirror_new(isp_client *, const char *table,
		    const void *prefix, size_t prefix_len,
		    isp_event_cb *on_change, void *arg);
/* Unsubscribes and frees. From a callback of its client, the mirror is
 * unsubscribed at once and freed once the callback returned; its
 * on_change is not called again. */
void		 isp_mirror_free(isp_mirror *);
/* 1 after the end of the snapshot was received (from any server). */
int		 isp_mirror_ready(const isp_mirror *);
size_t		 isp_mirror_count(const isp_mirror *);
/* How many of the records are stale now. Any thread. */
size_t		 isp_mirror_stale_count(const isp_mirror *);
/* A copy of the record with that key, or NULL when absent (or out of
 * memory). Free it with isp_record_free(). */
struct isp_record	*isp_mirror_get(const isp_mirror *, const void *key,
			    size_t key_len);
void		 isp_record_free(struct isp_record *);
/* 1 when the record, as copied by isp_mirror_get() or isp_place() or
 * handed to isp_mirror_foreach()'s fn, was stale at that moment; else 0.
 * 0 for an event's record (&ev->rec): safe on any record the library
 * hands out; not for records of your own, which it never saw. */
int		 isp_record_stale(const struct isp_record *);
/* Calls fn for each record whose key starts with prefix, under the
 * mirror's read lock: fn must not call into this mirror nor into its
 * client (a change waiting for the lock would deadlock). fn returns 0 to
 * go on, anything else to stop; that value is returned. Order is not
 * defined. */
int		 isp_mirror_foreach(const isp_mirror *, const void *prefix,
		    size_t prefix_len,
		    int (*fn)(const struct isp_record *, void *), void *arg);

#ifdef __cplusplus
}
#endif

#endif
