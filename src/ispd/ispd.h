/*
 * ispd: the reflector daemon's shared header.
 *
 * Structures first, then the interface of each file, in the order a
 * frame travels: loop -> listen -> session -> table -> subscr -> outq.
 */
#ifndef ISPD_H
#define ISPD_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "hash.h"
#include "proto.h"

#define ISPD_VERSION		"0.1.0"
#define ISPD_DEFAULT_LISTEN	"127.0.0.1:7460"
#define ISPD_DEFAULT_HOLD_MS	9000
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

struct session;
struct subscr;
struct table;
struct record;

TAILQ_HEAD(session_list, session);
TAILQ_HEAD(record_list, record);
TAILQ_HEAD(subscr_list, subscr);

/* Set by main.c from the options; defaults in session.c. */
struct ispd_conf {
	uint32_t	 hold_ms;
	const char	*server_id;
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
};

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

/* listen.c */
int		 listen_parse(const char *spec, char *host, size_t hostsz,
		    char *port, size_t portsz);
int		 listen_open(const char *spec);
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

/* session.c */
enum session_state {
	SESSION_NEW,		/* waiting for HELLO */
	SESSION_READY,		/* welcomed */
	SESSION_ENDING,		/* close decided, teardown not run yet */
	SESSION_LINGER,		/* torn down; flushing its last frames */
};

struct session {
	uint64_t		 id;
	int			 fd;
	enum session_state	 state;
	int			 flush_on_close;
	int			 write_shut;	/* shutdown(SHUT_WR) done */
	int			 pending;	/* on the pending-write list */
	int			 row_dirty;	/* on the table.c dirty list */
	struct loop_io		 io;
	char			 peer[64];
	char			 name[SESSION_NAME_MAX + 1];
	size_t			 name_len;
	time_t			 since;		/* wall clock of the HELLO */
	uint64_t		 last_rx_ms;
	uint64_t		 linger_until_ms;
	struct buf		 in;		/* a partial frame */
	struct outq		 out;
	struct record_list	 owned;		/* records this session owns */
	size_t			 nrecords;
	struct subscr_list	 subs;
	struct record		*row;		/* its ispd.sessions record */
	size_t			 row_nrecords;	/* records field in the row */
	TAILQ_ENTRY(session)	 entry;		/* every session */
	TAILQ_ENTRY(session)	 timer_entry;	/* hold or linger list */
	TAILQ_ENTRY(session)	 pending_entry;
	TAILQ_ENTRY(session)	 end_entry;
	TAILQ_ENTRY(session)	 dirty_entry;
};

/* How session_close() ends a session. */
#define SESSION_CLOSE_NOW	0	/* drop queued output */
#define SESSION_CLOSE_FLUSH	1	/* write queued output first */

struct session	*session_new(int fd, const char *peer);
void		 session_close(struct session *, int how, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
void		 session_reap(void);
void		 session_flush_all(void);
void		 session_before_sleep(void);
uint64_t	 session_next_ms(void);
void		 session_timers(uint64_t now_ms);
void		 session_shutdown_all(void);
int		 session_send(struct session *, const struct buf *,
		    uint32_t nframes);
void		 session_push(struct session *, struct obuf *);
void		 session_error(struct session *, uint32_t req_id, int code,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
size_t		 session_count(void);

/* table.c */
struct table {
	struct hash_node	 node;
	struct hash		 records;
	struct subscr_list	 subs;
	uint32_t		 nsubs;
	uint64_t		 seq;		/* of the last event applied */
	int			 readonly;	/* kept by ispd itself */
	uint8_t			 name_len;
	char			 name[PROTO_MAX_TABLE_BYTES + 1];
};

#define TTL_NONE	SIZE_MAX

struct record {
	struct hash_node	 node;
	TAILQ_ENTRY(record)	 owned;		/* in the owner's list */
	struct table		*table;
	struct session		*owner;		/* NULL: ispd itself */
	uint64_t		 seq;		/* table seq of last change */
	uint64_t		 expire_ms;	/* 0: no TTL */
	size_t			 ttl_idx;	/* heap index, or TTL_NONE */
	uint8_t			*fields;	/* the encoded block */
	uint32_t		 fields_len;
	uint16_t		 key_len;
	uint8_t			 key[];
};

void		 table_init(void);
void		 table_free_all(void);
struct table	*table_find(struct proto_bytes name);
struct table	*table_get(struct proto_bytes name);
int		 table_announce(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
int		 table_withdraw(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
void		 table_expire(struct record *);
int		 table_session_welcome(struct session *);
void		 table_session_end(struct session *);
void		 table_tick(void);
struct table	**table_sorted(size_t *n);
size_t		 table_count(void);
size_t		 table_record_count(void);
struct proto_bytes record_key(const struct record *);
struct proto_bytes record_fields(const struct record *);
struct proto_bytes record_owner(const struct record *);
uint64_t	 record_owner_id(const struct record *);

/* subscr.c */
struct subscr {
	TAILQ_ENTRY(subscr)	 table_entry;
	TAILQ_ENTRY(subscr)	 session_entry;
	struct table		*table;
	struct session		*session;
	uint16_t		 prefix_len;
	uint8_t			 prefix[];
};

int		 subscr_subscribe(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
int		 subscr_unsubscribe(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
int		 subscr_query(struct session *, const struct proto_msg *,
		    char *why, size_t whysz);
void		 subscr_event(struct table *, uint8_t type,
		    const struct record *, uint8_t reason);
void		 subscr_session_end(struct session *);
size_t		 subscr_count(void);
void		 subscr_free_all(void);

/* ttl.c */
int		 ttl_reserve(void);
void		 ttl_set(struct record *, uint64_t expire_ms);
void		 ttl_clear(struct record *);
uint64_t	 ttl_next_ms(void);
int		 ttl_expire(uint64_t now_ms);
void		 ttl_free(void);

#endif
