/*
 * lib.h: what the files of libisp share. Not installed.
 *
 *	client.c	isp_new, isp_connect (address, socket, handshake),
 *			isp_free, accessors, the error sentence
 *	wire.c		the wire: input framing, dispatch of what ispd
 *			sends, the output queue, keepalives, session end
 *	request.c	announce, withdraw, subscribe, queries, sync:
 *			argument checks against the protocol's limits
 *	run.c		run modes 1 (isp_run) and 2 (isp_fd, isp_process)
 *	thread.c	run mode 3 (isp_start, isp_stop)
 *	mirror.c	in-memory copies of tables
 *	errors.c	isp_strerror
 *
 * Locking: every public call takes the client's recursive mutex, so a
 * callback (run with the mutex held) may call back into the library. A
 * mirror's records have their own rwlock so that readers never wait on
 * the client, and the client never waits on readers longer than one
 * lookup. Order: client mutex, then mirror rwlock; never the reverse.
 */
#ifndef ISP_LIB_H
#define ISP_LIB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "isp.h"
#include "buf.h"
#include "hash.h"
#include "proto.h"

#define CLIENT_DEFAULT_PORT		"7460"
#define CLIENT_DEFAULT_NAME		"isp-client"
#define CLIENT_CONNECT_TIMEOUT_MS	5000
#define CLIENT_ERRMSG_BYTES		1024
/* HELLO name: 1 to 64 bytes of 0x20..0x7e (docs/PROTOCOL.md). */
#define CLIENT_NAME_MAX_BYTES		64
#define CLIENT_HOST_BYTES		256
#define CLIENT_PORT_BYTES		8
/* The least the read buffer grows by: a typical burst of small events
 * in one read(2), without reserving a whole maximal frame up front. */
#define CLIENT_READ_CHUNK_BYTES		16384
/* Reads per isp_process() before the output and the keepalives get a
 * turn, so a flood of events cannot starve them. */
#define CLIENT_READS_PER_PASS		16

enum client_state {
	CLIENT_NEW,		/* isp_new() done, not connected */
	CLIENT_HANDSHAKE,	/* HELLO sent, waiting for WELCOME */
	CLIENT_READY,		/* session up */
	CLIENT_ENDED,		/* session ended; on_closed was called */
	CLIENT_FAILED,		/* isp_connect() failed; no session ever */
};

/* A local subscription: one per table and client. */
struct sub {
	struct sub		*next;
	char			 table[PROTO_MAX_TABLE_BYTES + 1];
	size_t			 table_len;
	unsigned		 flags;		/* ISP_SUB_* */
	uint32_t		 req_id;	/* of the SUBSCRIBE */
	int			 ended;		/* END seen: snapshot over */
	int			 removed;	/* freed when no callback
						 * runs */
	/*
	 * After UNSUBSCRIBE, events already queued by ispd still come.
	 * The library sends a PING right after it: a removed
	 * subscription stays (drain_token) until that PONG, and a new
	 * subscription to the same table drops events until it
	 * (wait_token), so it never takes the old one's events for its
	 * snapshot.
	 */
	uint64_t		 drain_token;
	uint64_t		 wait_token;
	isp_event_cb		*cb;
	void			*arg;
	struct isp_mirror	*mirror;	/* when a mirror owns it */
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
	isp_row_cb		*row_cb;
	void			*arg;
	int			 done;
	int			 err;		/* ERROR code for the request */
};

struct isp_client {
	pthread_mutex_t		 lock;		/* recursive */
	pthread_cond_t		 cond;		/* mode 3: answers arrived */

	/* Options, copied. */
	char			*server;
	char			*name;
	int			 connect_timeout_ms;
	isp_error_cb		*on_error;
	isp_closed_cb		*on_closed;
	void			*arg;

	enum client_state	 state;
	int			 fd;
	/* "HOST:PORT" as connected to, for messages. */
	char			 addr[CLIENT_HOST_BYTES + CLIENT_PORT_BYTES +
				    4];
	uint64_t		 session_id;
	uint32_t		 hold_ms;
	uint32_t		 caps;

	struct buf		 in;
	struct buf		 out;
	size_t			 out_off;	/* bytes of out already sent */
	/* An event or a row as handed to callbacks: its strings, copied
	 * and NUL-terminated, and its fields. */
	struct buf		 scratch;
	struct isp_field	 sfields[PROTO_MAX_FIELDS];

	uint32_t		 next_req_id;
	uint64_t		 next_token;
	uint64_t		 last_send_ms;
	uint64_t		 last_recv_ms;

	/* A session-fatal ERROR (req_id 0): why ispd is about to close. */
	int			 fatal_err;
	char			 fatal_why[CLIENT_ERRMSG_BYTES];
	/* A write failed where the session could not be ended at once
	 * (inside a request); the next pass through the loop ends it. */
	int			 dead_err;
	char			 dead_why[CLIENT_ERRMSG_BYTES];
	/* Why the session ended. */
	int			 end_err;
	char			 end_why[CLIENT_ERRMSG_BYTES];

	struct sub		*subs;
	struct isp_mirror	*mirrors;
	struct waiter		*waiters;
	int			 cb_depth;	/* callbacks running now */

	/* Mode 3. */
	int			 threaded;
	int			 stop;
	int			 evfd;
	pthread_t		 thread;

	char			 errmsg[CLIENT_ERRMSG_BYTES];
};

struct isp_mirror {
	struct isp_client	*client;	/* NULL: fed by
						 * mirror_apply() only */
	struct isp_mirror	*next;		/* in client->mirrors */
	char			 table[PROTO_MAX_TABLE_BYTES + 1];
	uint8_t			*prefix;
	size_t			 prefix_len;
	isp_event_cb		*on_change;
	void			*arg;

	pthread_rwlock_t	 lock;		/* guards what follows */
	struct hash		 records;
	int			 ready;
	uint64_t		 seq;		/* of the last event applied */
	uint64_t		 nomem;		/* records lost to lack
						 * of memory */
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
/*
 * Splits "HOST:PORT", "[V6]:PORT", "HOST" or "[V6]" (port 7460) into
 * host and port. Returns 0, or -1 when the text is none of those or the
 * port is not 1..65535.
 */
int		 client_parse_addr(const char *, char *host, size_t hostsz,
		    char *port, size_t portsz);
/*
 * Runs the handshake over fd, a connected stream socket the client then
 * owns, until deadline_ms (client_now_ms() time). isp_connect() uses it
 * after connecting; tests hand it one end of a socketpair. Returns
 * ISP_OK or why it failed (the client is then CLIENT_FAILED).
 */
int		 client_handshake(struct isp_client *, int fd,
		    uint64_t deadline_ms);

/* wire.c */
/* Ends the session once: closes the socket, wakes waiters, calls
 * on_closed. During the handshake it only marks the client failed. */
void		 wire_end(struct isp_client *, int err, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
/* Reads what the socket has (bounded), delivers it, writes what is
 * queued, does the keepalive duties. Returns ISP_OK while the session
 * lives, else the error that ended it. */
int		 wire_process(struct isp_client *);
/* Reads and delivers what the socket has, bounded. */
void		 wire_read(struct isp_client *);
/* Writes what the socket takes. A failure is kept in dead_err. */
void		 wire_flush(struct isp_client *);
size_t		 wire_pending(const struct isp_client *);
/* After encoding a frame at c->out from mark on: undoes it when memory
 * ran out (ISP_E_NOMEM), else sends what the socket takes and wakes the
 * library thread if bytes are left. */
int		 wire_queued(struct isp_client *, size_t mark);
int		 wire_timeout_ms(const struct isp_client *);
void		 wire_keepalive(struct isp_client *);
/* The next PING token. */
uint64_t	 wire_token(struct isp_client *);
struct sub	*client_sub_find(struct isp_client *, const void *table,
		    size_t);
/* Marks a subscription removed; frees it now unless a callback runs. */
void		 client_sub_remove(struct isp_client *, struct sub *);
/* Frees removed subscriptions; no callback may be running. */
void		 client_sub_reap(struct isp_client *);
/* The PONG for token arrived: ends the drains waiting for it. */
void		 client_sub_drained(struct isp_client *, uint64_t token);

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
/* Drops the local subscription and, while connected, sends
 * UNSUBSCRIBE. Returns what queuing it returned. */
int		 client_unsubscribe(struct isp_client *, struct sub *);

/* run.c */
/* ISP_OK when the calling thread may run the loop now (modes 1, 2),
 * else the code to return, with the error sentence set. */
int		 run_check(struct isp_client *, const char *what);
/* Delivers input until w is answered, the session ends, or timeout_ms
 * (-1: no limit) passes. Returns w->err, the session's error, or
 * ISP_E_TIMEOUT. */
int		 run_wait(struct isp_client *, struct waiter *,
		    int timeout_ms);

/* thread.c */
/* Wakes the library thread, if one runs, to look at its work again. */
void		 thread_wake(struct isp_client *);

/* mirror.c */
/* A mirror not tied to a client, fed by mirror_apply() only: what
 * isp_mirror_new() builds on, and what unit tests use. NULL when out of
 * memory or when the table or prefix are over the protocol's limits. */
struct isp_mirror *mirror_create(const char *table, const void *prefix,
		    size_t prefix_len, isp_event_cb *on_change, void *arg);
/* Applies one event to the mirror, then calls on_change (without the
 * rwlock held). Returns ISP_OK, or ISP_E_NOMEM when the record could not
 * be stored (the mirror then lacks it and counts it in nomem). */
int		 mirror_apply(struct isp_mirror *, const struct isp_event *);
/* Frees records and the mirror; the caller unlinked it. */
void		 mirror_destroy(struct isp_mirror *);
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
