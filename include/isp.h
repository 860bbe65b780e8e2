/*
 * libisp: the C client library of ispd.
 *
 * A client (isp_client) is one session with one ispd. Through it an
 * application announces and withdraws records it owns, subscribes to
 * tables, and keeps in-memory mirrors of tables.
 *
 * Three ways to run a client, as with hiredis and libmosquitto:
 *   1. blocking: call isp_run() from your own thread whenever you want
 *      events delivered and keepalives sent;
 *   2. your event loop: watch isp_fd() for the events isp_want() names,
 *      and call isp_process() when it is ready or isp_timeout_ms() has
 *      passed;
 *   3. a library thread: isp_start() runs the client on a thread of its
 *      own; callbacks then come from that thread, and every isp_* call is
 *      safe from any thread.
 * In modes 1 and 2 callbacks run on the thread inside isp_run(),
 * isp_process(), isp_sync() or a query, never inside a request call.
 *
 * Errors: functions return ISP_OK (0) or an isp_err code; isp_errmsg()
 * holds a sentence about the last failure of that client. Codes below
 * 100 are also the codes of the wire protocol's ERROR frame.
 *
 * Memory: the library copies every argument it keeps. Pointers handed to
 * callbacks are valid only during the callback.
 */
#ifndef ISP_H
#define ISP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ISP_DEFAULT_SERVER	"127.0.0.1:7460"
#define ISP_SESSIONS_TABLE	"ispd.sessions"

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
	/* Local to the library. */
	ISP_E_SYS = 100,		/* system call failed; see errno */
	ISP_E_CONNECT = 101,		/* cannot connect */
	ISP_E_CLOSED = 102,		/* session ended */
	ISP_E_TIMEOUT = 103,		/* no answer in time */
	ISP_E_INVALID = 104,		/* invalid argument */
	ISP_E_NOMEM = 105,		/* out of memory */
	ISP_E_STATE = 106,		/* not allowed in this state */
} isp_err;

/* A short English text for the code; never NULL. */
const char	*isp_strerror(int err);

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
};

enum isp_withdraw_reason {
	ISP_WD_OWNER = 1,	/* withdrawn by its owner */
	ISP_WD_EXPIRED = 2,	/* TTL ran out */
	ISP_WD_SESSION = 3,	/* owner's session ended */
};

/* A record, as the server sent it. key is NUL-terminated one byte past
 * key_len. */
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
	uint64_t		 count;		/* END: records in the snapshot */
	int			 reason;	/* WITHDRAW: isp_withdraw_reason */
	int			 snapshot;	/* 1 while the snapshot lasts;
						 * 0 for END and after */
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
/* Called once when the session ends: err says why (ISP_E_CLOSED when the
 * server closed it, ISP_E_HOLD_EXPIRED, ISP_E_SHUTDOWN, ...). Not called
 * when isp_connect() fails, nor by isp_free(). */
typedef void isp_closed_cb(isp_client *, int err, const char *why,
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
	void		*arg;		/* handed to on_error, on_closed */
};

void		 isp_options_init(struct isp_options *);

/*
 * Creates a client. Returns NULL only when out of memory. The client is
 * not connected yet.
 */
isp_client	*isp_new(const struct isp_options *);

/*
 * Connects and completes the handshake, blocking up to
 * connect_timeout_ms. Returns ISP_OK, or ISP_E_CONNECT, ISP_E_VERSION,
 * ISP_E_TIMEOUT, ISP_E_PROTOCOL... with isp_errmsg() saying what to do.
 * A client connects once; make a new one to connect again.
 */
int		 isp_connect(isp_client *);

/* Closes the session (if any) and frees the client, its subscriptions
 * and mirrors. Stops the library thread first if one runs. Must not be
 * called from a callback of this client. */
void		 isp_free(isp_client *);

/* The last error's sentence; never NULL. */
const char	*isp_errmsg(const isp_client *);
/* The session id ispd gave us, or 0 before the handshake. */
uint64_t	 isp_session_id(const isp_client *);
/* The hold time ispd announced, in milliseconds. */
uint32_t	 isp_hold_ms(const isp_client *);

/*
 * Requests. Each is queued and sent as soon as the socket takes it; it
 * returns ISP_OK once queued, or ISP_E_INVALID for arguments out of the
 * protocol's limits, ISP_E_STATE when not connected, ISP_E_NOMEM. ispd
 * answers only failures, through on_error, with the request's id.
 */

/* Announces a record into table, owned by this session. ttl_s 0 means no
 * TTL. Fields are kept in the given order. */
int		 isp_announce(isp_client *, const char *table, const void *key,
		    size_t key_len, const struct isp_field *fields,
		    size_t nfields, unsigned ttl_s);
/* Withdraws a record this session owns. */
int		 isp_withdraw(isp_client *, const char *table, const void *key,
		    size_t key_len);
/* The request id of the last request this thread queued. */
uint32_t	 isp_last_req_id(const isp_client *);

#define ISP_SUB_ONCE	0x01	/* snapshot and end marker only */

/* Subscribes to table, to keys starting with prefix (prefix_len 0 for
 * all). cb gets each record of the snapshot, then ISP_EV_END, then live
 * events. One subscription per table and client. */
int		 isp_subscribe(isp_client *, const char *table,
		    const void *prefix, size_t prefix_len, unsigned flags,
		    isp_event_cb *cb, void *arg);
/* ISP_E_STATE also when the table is not subscribed, or is kept by a
 * mirror (free the mirror instead). */
int		 isp_unsubscribe(isp_client *, const char *table);

/* Queries: each blocks until the answer (or timeout_ms), delivering
 * other events meanwhile, so call them in blocking mode only. rows is
 * called per row (per table, or once for stats). */
typedef void isp_row_cb(const struct isp_field *, size_t nfields,
    void *arg);
int		 isp_query_tables(isp_client *, isp_row_cb *, void *arg,
		    int timeout_ms);
int		 isp_query_stats(isp_client *, isp_row_cb *, void *arg,
		    int timeout_ms);

/* Blocks until ispd has processed every request sent before the call
 * (a PING/PONG round trip), delivering events and errors meanwhile.
 * ISP_OK, ISP_E_TIMEOUT or the session's error. */
int		 isp_sync(isp_client *, int timeout_ms);

/* Mode 1: blocking. Waits up to timeout_ms (-1 forever, 0 not at all)
 * for input, delivers it, sends keepalives. Returns ISP_OK, or the error
 * that ended the session. */
int		 isp_run(isp_client *, int timeout_ms);

/* Mode 2: your loop. */
#define ISP_WANT_READ	0x1
#define ISP_WANT_WRITE	0x2
int		 isp_fd(const isp_client *);
/* Which readiness to wait for on isp_fd(). */
int		 isp_want(const isp_client *);
/* Milliseconds until isp_process() must run again for keepalives. */
int		 isp_timeout_ms(const isp_client *);
/* Reads what is there without blocking, delivers it, writes what is
 * queued, sends keepalives. ISP_OK or the error that ended the session. */
int		 isp_process(isp_client *);

/* Mode 3: a library thread. Returns ISP_OK, ISP_E_STATE (not connected,
 * or started already) or ISP_E_SYS. After it, every call is thread-safe
 * and callbacks run on the library's thread. */
int		 isp_start(isp_client *);
/* Stops and joins the thread. */
void		 isp_stop(isp_client *);

/*
 * Mirror: an in-memory copy of a table (or the part under a prefix),
 * kept in step by a subscription. on_change is called after each change
 * was applied, from the thread that delivers events. Lookups may come
 * from any thread.
 */
/* NULL on failure (invalid arguments, not connected, table subscribed
 * already, out of memory), with isp_errmsg() saying why. */
isp_mirror	*isp_mirror_new(isp_client *, const char *table,
		    const void *prefix, size_t prefix_len,
		    isp_event_cb *on_change, void *arg);
/* Unsubscribes and frees. Not from a callback. */
void		 isp_mirror_free(isp_mirror *);
/* 1 after the end of the snapshot was received. */
int		 isp_mirror_ready(isp_mirror *);
size_t		 isp_mirror_count(isp_mirror *);
/* A copy of the record with that key, or NULL when absent (or out of
 * memory). Free it with isp_record_free(). */
struct isp_record	*isp_mirror_get(isp_mirror *, const void *key,
			    size_t key_len);
void		 isp_record_free(struct isp_record *);
/* Calls fn for each record whose key starts with prefix, under the
 * mirror's read lock: fn must not call into this mirror nor into its
 * client (a change waiting for the lock would deadlock). fn returns 0 to
 * go on, anything else to stop; that value is returned. Order is not
 * defined. */
int		 isp_mirror_foreach(isp_mirror *, const void *prefix,
		    size_t prefix_len,
		    int (*fn)(const struct isp_record *, void *), void *arg);

#ifdef __cplusplus
}
#endif

#endif
