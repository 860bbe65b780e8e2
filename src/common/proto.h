/*
 * proto: the ispd wire codec, shared by the daemon and libisp.
 *
 * docs/PROTOCOL.md is the specification; this header is its C form.
 *
 * A frame is
 *	u32 length	bytes that follow (type + payload), big-endian,
 *			1 <= length <= max_frame_bytes
 *	u8  type
 *	    payload	depends on type, all integers big-endian
 *
 * Payload building blocks:
 *	name	u8 len (1..64), then len bytes of [A-Za-z0-9_.:-]	(table)
 *	key	u16 len (1..1024), then len bytes, any value
 *	prefix	u16 len (0..1024), then len bytes, any value
 *	str	u16 len (0..1024), then len bytes of UTF-8 text	(names, reasons)
 *	fields	u16 count (0..256), then count times:
 *		    u8 len (1..255) + field name bytes (printable ASCII, no '=')
 *		    u32 len (0..65536) + value bytes (any value)
 *
 * The decoder checks every length against the bytes present and against
 * these limits before the caller sees anything, and checks that nothing
 * is left over. A decoded message points into the frame; nothing is
 * allocated.
 */
#ifndef ISP_PROTO_H
#define ISP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PROTO_VERSION		1
#define PROTO_HEADER_BYTES	5		/* u32 length + u8 type */
#define PROTO_MAX_FRAME_BYTES	(1u << 20)	/* default and hard limit */
#define PROTO_MIN_FRAME_BYTES	1024		/* smallest limit allowed */

#define PROTO_MAX_TABLE_BYTES	64
#define PROTO_MAX_KEY_BYTES	1024
#define PROTO_MAX_STR_BYTES	1024
#define PROTO_MAX_FIELDS	256
#define PROTO_MAX_FNAME_BYTES	255
#define PROTO_MAX_VALUE_BYTES	65536

/* Frame types. 0x0_: session, 0x1_: requests, 0x2_: events and replies. */
enum proto_type {
	PROTO_HELLO		= 0x01,	/* C->S  u16 version, u32 caps, str name */
	PROTO_WELCOME		= 0x02,	/* S->C  u16 version, u32 caps, u32 hold_ms,
					 *       u64 session_id, str server */
	PROTO_ERROR		= 0x03,	/* S->C  u32 req_id, u16 code, str reason */
	PROTO_PING		= 0x04,	/* both  u64 token */
	PROTO_PONG		= 0x05,	/* both  u64 token */
	PROTO_BYE		= 0x06,	/* both  u16 code, str reason */
	PROTO_CHALLENGE		= 0x07,	/* S->C  u16 mech, 32 bytes nonce */
	PROTO_AUTH		= 0x08,	/* C->S  u16 mech, 32 bytes client
					 *       nonce, 32 bytes mac */
	PROTO_GOING_DOWN	= 0x09,	/* S->C  u32 delay_ms, str reason */

	PROTO_ANNOUNCE		= 0x10,	/* C->S  u32 req_id, name table, u32 ttl_s,
					 *       key, fields */
	PROTO_WITHDRAW		= 0x11,	/* C->S  u32 req_id, name table, key */
	PROTO_SUBSCRIBE		= 0x12,	/* C->S  u32 req_id, name table, u8 flags,
					 *       prefix */
	PROTO_UNSUBSCRIBE	= 0x13,	/* C->S  u32 req_id, name table */
	PROTO_QUERY		= 0x14,	/* C->S  u32 req_id, u8 what */
	PROTO_END_OF_REPLAY	= 0x15,	/* C->S  u32 req_id */
	PROTO_ADMIN		= 0x16,	/* C->S  u32 req_id, u8 op, then per op
					 *       (PROTO_ADMIN_*) */

	PROTO_EV_ANNOUNCE	= 0x20,	/* S->C  name table, u64 seq, key,
					 *       u64 owner_session, str owner, fields */
	PROTO_EV_REPLACE	= 0x21,	/* S->C  same as EV_ANNOUNCE */
	PROTO_EV_WITHDRAW	= 0x22,	/* S->C  name table, u64 seq, key,
					 *       u64 owner_session, str owner,
					 *       u8 reason */
	PROTO_EV_END		= 0x23,	/* S->C  name table, u64 seq, u64 count */
	PROTO_ROWS		= 0x24,	/* S->C  u32 req_id, u32 nrows, then nrows
					 *       times fields */
	PROTO_EV_OWNER_GONE	= 0x25,	/* S->C  name table, u64 seq,
					 *       u64 owner_session, str owner,
					 *       u8 reason, u64 count */
};

/* SUBSCRIBE flags. */
#define PROTO_SUB_ONCE		0x01	/* snapshot and END only, then the
					 * subscription ends by itself */
#define PROTO_SUB_OWNER_GONE	0x02	/* the end of an owner may come as
					 * one EV_OWNER_GONE in place of a
					 * withdrawal per record */
#define PROTO_SUB_FLAGS		0x03	/* every flag defined */

/* QUERY what. */
#define PROTO_QUERY_TABLES	1	/* a row per table: name, records, seq,
					 * subscribers */
#define PROTO_QUERY_STATS	2	/* one row of counters */

/* ADMIN op, and what follows it. */
#define PROTO_ADMIN_KICK	1	/* u64 session_id: ends that session */
#define PROTO_ADMIN_EVICT	2	/* name table, key: withdraws that
					 * record, whoever owns it */
#define PROTO_ADMIN_DROP	3	/* name table: withdraws its records,
					 * ends its subscriptions, removes
					 * it */
#define PROTO_ADMIN_HELD	4	/* u64 after_session, key after_table
					 * (may be empty): a page of held
					 * records, a row per held set and
					 * table, after that pair */

/* EV_WITHDRAW reason. */
#define PROTO_WD_OWNER		1	/* the owner withdrew it */
#define PROTO_WD_EXPIRED	2	/* its TTL ran out */
#define PROTO_WD_SESSION	3	/* its owner's session ended */
/* 4 is not sent: libisp's ISP_WD_STALE, a mirror's own withdrawal. */
#define PROTO_WD_HELD		5	/* held for a graceful restart, and
					 * not announced again in time */
#define PROTO_WD_EVICTED	6	/* an operator removed it (ADMIN) */

/* Capability bits in HELLO/WELCOME; a server answers with the bits it
 * shares with the client. PROTO_CAPS is what a client sends unless it
 * opts into one; PROTO_CAPS_KNOWN every bit defined. */
#define PROTO_CAPS		0u
#define PROTO_CAP_AUTH		0x00000001u	/* the client can answer a
						 * CHALLENGE with AUTH */
#define PROTO_CAP_REPLAY	0x00000002u	/* the client sends
						 * END_OF_REPLAY after it
						 * announced again what it
						 * holds (graceful restart) */
#define PROTO_CAP_OWNER_GONE	0x00000004u	/* the client understands
						 * EV_OWNER_GONE; in WELCOME:
						 * SUBSCRIBE takes
						 * PROTO_SUB_OWNER_GONE */
#define PROTO_CAPS_KNOWN	(PROTO_CAP_AUTH | PROTO_CAP_REPLAY | \
				 PROTO_CAP_OWNER_GONE)

/* Authentication by a shared secret (CHALLENGE, AUTH; docs/PROTOCOL.md
 * "Authentication"). mac = HMAC-SHA256(secret, proto_auth_input()). */
#define PROTO_AUTH_HMAC_SHA256	1		/* the one mech defined */
#define PROTO_NONCE_BYTES	32
#define PROTO_MAC_BYTES		32
#define PROTO_AUTH_LABEL	"ispd-auth-v1"	/* first bytes of the input */
/* Channel binding on TLS: this many bytes of keying material exported
 * (RFC 5705, RFC 8446 7.5) with this label and no context. */
#define PROTO_BINDING_BYTES	32
#define PROTO_BINDING_LABEL	"EXPORTER-ispd-auth-v1"

/* The built-in table of live sessions, kept by the daemon itself. */
#define PROTO_SESSIONS_TABLE	"ispd.sessions"

struct proto_bytes {
	const uint8_t	*p;
	size_t		 len;
};

static inline struct proto_bytes
proto_bytes(const void *p, size_t len)
{
	struct proto_bytes	 b = { (const uint8_t *)p, len };

	return b;
}

/*
 * A decoded frame. Which members are set depends on type (see enum
 * proto_type); the others are zero. Every pointer points into the frame
 * that was decoded.
 */
struct proto_msg {
	uint8_t			type;
	uint32_t		req_id;
	uint16_t		version;
	uint16_t		code;		/* ERROR, BYE */
	uint32_t		caps;
	uint32_t		hold_ms;
	uint32_t		delay_ms;	/* GOING_DOWN */
	uint32_t		ttl_s;
	uint64_t		session_id;	/* WELCOME, ADMIN KICK and
						 * HELD */
	uint64_t		token;		/* PING, PONG */
	uint64_t		seq;
	uint64_t		count;		/* EV_END, EV_OWNER_GONE */
	uint64_t		owner_session;
	uint8_t			flags;		/* SUBSCRIBE */
	uint8_t			reason;		/* EV_WITHDRAW,
						 * EV_OWNER_GONE */
	uint8_t			what;		/* QUERY; ADMIN op */
	uint16_t		mech;		/* CHALLENGE, AUTH */
	struct proto_bytes	nonce;		/* CHALLENGE: the server's,
						 * AUTH: the client's */
	struct proto_bytes	mac;		/* AUTH */
	struct proto_bytes	text;		/* HELLO name, WELCOME server,
						 * ERROR/BYE/GOING_DOWN
						 * reason */
	struct proto_bytes	table;
	struct proto_bytes	key;		/* key, or SUBSCRIBE prefix */
	struct proto_bytes	owner;
	struct proto_bytes	fields;		/* the whole encoded fields
						 * block, count included */
	uint16_t		nfields;
	uint32_t		nrows;		/* ROWS */
	struct proto_bytes	rows;		/* ROWS: nrows fields blocks */
};

struct proto_field {
	struct proto_bytes	name;
	struct proto_bytes	value;
};

/* Walks an encoded fields block that proto_decode() or
 * proto_fields_check() accepted. */
struct proto_field_iter {
	const uint8_t	*p;
	const uint8_t	*end;
};

/*
 * Looks at the start of an input buffer. Returns 1 and sets *frame_bytes
 * (header included) when a whole frame is there, 0 when more bytes are
 * needed, -1 when the length is 0 or larger than max_frame_bytes: the
 * caller must not allocate for it and should close the session with
 * ISP_E_FRAME_TOO_LARGE (or ISP_E_PROTOCOL for 0).
 */
int	proto_frame_check(const uint8_t *, size_t, uint32_t max_frame_bytes,
	    size_t *frame_bytes);

/*
 * Decodes one whole frame (header included). Returns 0, or an ISP_E_*
 * code from isp.h with *why set to a static text naming what is wrong:
 * ISP_E_UNKNOWN_TYPE for a type this version does not define,
 * ISP_E_BAD_TABLE, ISP_E_BAD_KEY, ISP_E_BAD_FIELDS for a member out of
 * its limits, ISP_E_PROTOCOL for anything else malformed.
 */
int	proto_decode(const uint8_t *, size_t, struct proto_msg *,
	    const char **why);
/* The same for a frame from ispd, which checked every table and field
 * name on its way in: those are checked for their length only (the
 * client's decoder). Every length and bound is still checked, so a
 * frame either decodes into members inside it or is refused. */
int	proto_decode_trusted(const uint8_t *, size_t, struct proto_msg *,
	    const char **why);

/* Checks an encoded fields block on its own; same return as
 * proto_decode(). Sets *nfields. */
int	proto_fields_check(const uint8_t *, size_t, uint16_t *nfields,
	    const char **why);
void	proto_fields_iter(struct proto_field_iter *, struct proto_bytes);
/* Returns 1 and fills *f, or 0 at the end. */
int	proto_fields_next(struct proto_field_iter *, struct proto_field *);

/* Walks the rows of a decoded ROWS frame (start with m.rows): returns 1
 * with the next row's fields block in *row, advancing *rows, or 0 when
 * no row is left. */
int	proto_rows_next(struct proto_bytes *rows, struct proto_bytes *row);

/* 1 when the bytes are a valid table name. */
int	proto_table_valid(const void *, size_t);
/* 1 when the bytes are a valid field name. */
int	proto_fname_valid(const void *, size_t);

/*
 * Encoders: each appends one whole frame to the buffer. Check
 * buf_failed() once afterwards for out of memory. They trust their
 * arguments to be within the limits above; the callers validate input
 * from people (libisp does, for every public call).
 */
size_t	proto_begin(struct buf *, uint8_t type);
void	proto_end(struct buf *, size_t start);

void	proto_put_name(struct buf *, const void *, size_t);
void	proto_put_key(struct buf *, const void *, size_t);
void	proto_put_str(struct buf *, const void *, size_t);
/* A fields block is built by proto_fields_begin(), proto_put_field()
 * for each field, then proto_fields_end(). */
size_t	proto_fields_begin(struct buf *);
/* A field whose value is v in decimal, as ROWS and ispd.sessions have
 * numbers. */
void	proto_put_field_u64(struct buf *, const char *name, uint64_t v);
void	proto_put_field(struct buf *, const void *name, size_t name_len,
	    const void *value, size_t value_len);
void	proto_fields_end(struct buf *, size_t start, uint16_t count);

void	proto_put_hello(struct buf *, uint16_t version, uint32_t caps,
	    const char *name);
void	proto_put_welcome(struct buf *, uint16_t version, uint32_t caps,
	    uint32_t hold_ms, uint64_t session_id, const char *server);
void	proto_put_error(struct buf *, uint32_t req_id, uint16_t code,
	    const char *reason);
void	proto_put_ping(struct buf *, uint8_t type, uint64_t token);
void	proto_put_bye(struct buf *, uint16_t code, const char *reason);
void	proto_put_challenge(struct buf *, uint16_t mech,
	    const uint8_t nonce[PROTO_NONCE_BYTES]);
void	proto_put_auth(struct buf *, uint16_t mech,
	    const uint8_t client_nonce[PROTO_NONCE_BYTES],
	    const uint8_t mac[PROTO_MAC_BYTES]);
void	proto_put_going_down(struct buf *, uint32_t delay_ms,
	    const char *reason);
/*
 * Appends to b (not a frame) the bytes an AUTH's mac covers:
 * PROTO_AUTH_LABEL, the server's nonce, the client's nonce, u8 length
 * and the client name of the HELLO, u8 length and the channel binding
 * (PROTO_BINDING_BYTES on TLS, none on plain TCP).
 */
void	proto_auth_input(struct buf *,
	    const uint8_t server_nonce[PROTO_NONCE_BYTES],
	    const uint8_t client_nonce[PROTO_NONCE_BYTES], const void *name,
	    size_t name_len, const void *binding, size_t binding_len);
/* fields is a whole encoded fields block (count included). */
void	proto_put_announce(struct buf *, uint32_t req_id,
	    struct proto_bytes table, uint32_t ttl_s, struct proto_bytes key,
	    struct proto_bytes fields);
void	proto_put_withdraw(struct buf *, uint32_t req_id,
	    struct proto_bytes table, struct proto_bytes key);
void	proto_put_subscribe(struct buf *, uint32_t req_id,
	    struct proto_bytes table, uint8_t flags, struct proto_bytes prefix);
void	proto_put_unsubscribe(struct buf *, uint32_t req_id,
	    struct proto_bytes table);
void	proto_put_query(struct buf *, uint32_t req_id, uint8_t what);
void	proto_put_admin_kick(struct buf *, uint32_t req_id,
	    uint64_t session_id);
void	proto_put_admin_drop(struct buf *, uint32_t req_id,
	    struct proto_bytes table);
void	proto_put_admin_held(struct buf *, uint32_t req_id,
	    uint64_t after_session, struct proto_bytes after_table);
void	proto_put_admin_evict(struct buf *, uint32_t req_id,
	    struct proto_bytes table, struct proto_bytes key);
void	proto_put_end_of_replay(struct buf *, uint32_t req_id);
/* type is PROTO_EV_ANNOUNCE or PROTO_EV_REPLACE. */
void	proto_put_ev_record(struct buf *, uint8_t type,
	    struct proto_bytes table, uint64_t seq, struct proto_bytes key,
	    uint64_t owner_session, struct proto_bytes owner,
	    struct proto_bytes fields);
void	proto_put_ev_withdraw(struct buf *, struct proto_bytes table,
	    uint64_t seq, struct proto_bytes key, uint64_t owner_session,
	    struct proto_bytes owner, uint8_t reason);
void	proto_put_ev_owner_gone(struct buf *, struct proto_bytes table,
	    uint64_t seq, uint64_t owner_session, struct proto_bytes owner,
	    uint8_t reason, uint64_t count);
void	proto_put_ev_end(struct buf *, struct proto_bytes table, uint64_t seq,
	    uint64_t count);
/* A ROWS frame: proto_rows_begin(), then a fields block per row, then
 * proto_rows_end() with the number of rows. */
size_t	proto_rows_begin(struct buf *, uint32_t req_id);
void	proto_rows_end(struct buf *, size_t start, uint32_t nrows);

const char	*proto_type_name(uint8_t);

#endif
