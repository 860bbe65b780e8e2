/*
 * proto: the ispd wire codec. See proto.h and docs/PROTOCOL.md.
 *
 * Decoding never allocates: every length is checked against the bytes
 * left and against its limit before anything points at it, and a frame
 * with bytes left over after its last member is malformed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "isp.h"
#include "proto.h"

/* A cursor over the payload of one frame. Any read past the end sets
 * bad and yields zeros, so decoders read a whole message and check once. */
struct rd {
	const uint8_t	*p;
	const uint8_t	*end;
	int		 bad;
	int		 trusted;	/* names checked for length only */
};

static int
rd_need(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = 1;
		return 0;
	}
	return 1;
}

static uint8_t
rd_u8(struct rd *r)
{
	if (!rd_need(r, 1))
		return 0;
	return *r->p++;
}

static uint16_t
rd_u16(struct rd *r)
{
	uint16_t	 v;

	if (!rd_need(r, 2))
		return 0;
	v = get_be16(r->p);
	r->p += 2;
	return v;
}

static uint32_t
rd_u32(struct rd *r)
{
	uint32_t	 v;

	if (!rd_need(r, 4))
		return 0;
	v = get_be32(r->p);
	r->p += 4;
	return v;
}

static uint64_t
rd_u64(struct rd *r)
{
	uint64_t	 v;

	if (!rd_need(r, 8))
		return 0;
	v = get_be64(r->p);
	r->p += 8;
	return v;
}

static struct proto_bytes
rd_bytes(struct rd *r, size_t n)
{
	struct proto_bytes	 b = { NULL, 0 };

	if (!rd_need(r, n))
		return b;
	b.p = r->p;
	b.len = n;
	r->p += n;
	return b;
}

int
proto_table_valid(const void *p, size_t len)
{
	const uint8_t	*s = p;
	size_t		 i;

	if (len < 1 || len > PROTO_MAX_TABLE_BYTES)
		return 0;
	for (i = 0; i < len; i++) {
		if ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' ||
		    s[i] == ':' || s[i] == '-')
			continue;
		return 0;
	}
	return 1;
}

int
proto_fname_valid(const void *p, size_t len)
{
	const uint8_t	*s = p;
	size_t		 i;

	if (len < 1 || len > PROTO_MAX_FNAME_BYTES)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '=')
			return 0;
	return 1;
}

int
proto_frame_check(const uint8_t *p, size_t n, uint32_t max_frame_bytes,
    size_t *frame_bytes)
{
	uint32_t	 len;

	if (n < 4)
		return 0;
	len = get_be32(p);
	if (len == 0 || len > max_frame_bytes)
		return -1;
	if (n - 4 < len)
		return 0;
	*frame_bytes = (size_t)len + 4;
	return 1;
}

/* Members that several frames share. Each returns 0 or an ISP_E_* code. */

static int
rd_table(struct rd *r, struct proto_msg *m, const char **why)
{
	size_t	 len = rd_u8(r);

	m->table = rd_bytes(r, len);
	if (r->bad)
		return ISP_E_PROTOCOL;
	if (r->trusted ? len < 1 || len > PROTO_MAX_TABLE_BYTES :
	    !proto_table_valid(m->table.p, m->table.len)) {
		*why = "table name must be 1 to 64 bytes of A-Z a-z 0-9 _ . : -";
		return ISP_E_BAD_TABLE;
	}
	return 0;
}

static int
rd_key(struct rd *r, struct proto_bytes *k, int empty_ok, const char **why)
{
	size_t	 len = rd_u16(r);

	*k = rd_bytes(r, len);
	if (r->bad)
		return ISP_E_PROTOCOL;
	if ((len == 0 && !empty_ok) || len > PROTO_MAX_KEY_BYTES) {
		*why = empty_ok ? "prefix longer than 1024 bytes" :
		    "key must be 1 to 1024 bytes";
		return ISP_E_BAD_KEY;
	}
	return 0;
}

static int
rd_str(struct rd *r, struct proto_bytes *s, const char **why)
{
	size_t	 len = rd_u16(r);

	*s = rd_bytes(r, len);
	if (r->bad)
		return ISP_E_PROTOCOL;
	if (len > PROTO_MAX_STR_BYTES) {
		*why = "text longer than 1024 bytes";
		return ISP_E_PROTOCOL;
	}
	return 0;
}

static int
fields_check(const uint8_t *p, size_t len, uint16_t *nfields,
    const char **why, int trusted)
{
	struct rd	 r = { p, p + len, 0, trusted };
	size_t		 nlen, vlen;
	uint16_t	 count, i;

	count = rd_u16(&r);
	if (r.bad) {
		*why = "truncated field count";
		return ISP_E_PROTOCOL;
	}
	if (count > PROTO_MAX_FIELDS) {
		*why = "more than 256 fields";
		return ISP_E_BAD_FIELDS;
	}
	for (i = 0; i < count; i++) {
		nlen = rd_u8(&r);
		if (!rd_need(&r, nlen)) {
			*why = "truncated field name";
			return ISP_E_PROTOCOL;
		}
		if (trusted ? nlen < 1 : !proto_fname_valid(r.p, nlen)) {
			*why = "field name must be 1 to 255 printable bytes "
			    "without '=' or space";
			return ISP_E_BAD_FIELDS;
		}
		r.p += nlen;
		vlen = rd_u32(&r);
		if (r.bad) {
			*why = "truncated field value length";
			return ISP_E_PROTOCOL;
		}
		if (vlen > PROTO_MAX_VALUE_BYTES) {
			*why = "field value longer than 65536 bytes";
			return ISP_E_BAD_FIELDS;
		}
		if (!rd_need(&r, vlen)) {
			*why = "truncated field value";
			return ISP_E_PROTOCOL;
		}
		r.p += vlen;
	}
	if (r.p != r.end) {
		*why = "bytes after the last field";
		return ISP_E_PROTOCOL;
	}
	*nfields = count;
	return 0;
}

int
proto_fields_check(const uint8_t *p, size_t len, uint16_t *nfields,
    const char **why)
{
	return fields_check(p, len, nfields, why, 0);
}

/* Reads a fields block that runs to the end of the frame. */
static int
rd_fields(struct rd *r, struct proto_bytes *f, uint16_t *nfields,
    const char **why)
{
	int	 rc;

	if (r->bad)
		return ISP_E_PROTOCOL;
	f->p = r->p;
	f->len = (size_t)(r->end - r->p);
	if ((rc = fields_check(f->p, f->len, nfields, why, r->trusted)) != 0)
		return rc;
	r->p = r->end;
	return 0;
}

/* Reads a fields block followed by more members: walks it to find its
 * end, then checks it. */
static int
rd_fields_inner(struct rd *r, struct proto_bytes *f, uint16_t *nfields,
    const char **why)
{
	const uint8_t	*start = r->p;
	uint16_t	 count, i;
	size_t		 nlen, vlen;

	count = rd_u16(r);
	for (i = 0; i < count && !r->bad; i++) {
		nlen = rd_u8(r);
		(void)rd_bytes(r, nlen);
		vlen = rd_u32(r);
		(void)rd_bytes(r, vlen);
	}
	if (r->bad) {
		*why = "truncated fields";
		return ISP_E_PROTOCOL;
	}
	f->p = start;
	f->len = (size_t)(r->p - start);
	return fields_check(f->p, f->len, nfields, why, r->trusted);
}

static int
decode(const uint8_t *frame, size_t len, struct proto_msg *m,
    const char **why, int trusted);

int
proto_decode(const uint8_t *frame, size_t len, struct proto_msg *m,
    const char **why)
{
	return decode(frame, len, m, why, 0);
}

int
proto_decode_trusted(const uint8_t *frame, size_t len, struct proto_msg *m,
    const char **why)
{
	return decode(frame, len, m, why, 1);
}

static int
decode(const uint8_t *frame, size_t len, struct proto_msg *m,
    const char **why, int trusted)
{
	struct rd	 r;
	uint32_t	 i;
	uint16_t	 n;
	int		 rc = 0;

	memset(m, 0, sizeof(*m));
	*why = "malformed frame";
	if (len < PROTO_HEADER_BYTES || get_be32(frame) != len - 4) {
		*why = "frame length does not match";
		return ISP_E_PROTOCOL;
	}
	m->type = frame[4];
	r.p = frame + PROTO_HEADER_BYTES;
	r.end = frame + len;
	r.bad = 0;
	r.trusted = trusted;

	switch (m->type) {
	case PROTO_HELLO:
		m->version = rd_u16(&r);
		m->caps = rd_u32(&r);
		rc = rd_str(&r, &m->text, why);
		break;
	case PROTO_WELCOME:
		m->version = rd_u16(&r);
		m->caps = rd_u32(&r);
		m->hold_ms = rd_u32(&r);
		m->session_id = rd_u64(&r);
		rc = rd_str(&r, &m->text, why);
		break;
	case PROTO_ERROR:
		m->req_id = rd_u32(&r);
		m->code = rd_u16(&r);
		rc = rd_str(&r, &m->text, why);
		break;
	case PROTO_PING:
	case PROTO_PONG:
		m->token = rd_u64(&r);
		break;
	case PROTO_BYE:
		m->code = rd_u16(&r);
		rc = rd_str(&r, &m->text, why);
		break;
	case PROTO_GOING_DOWN:
		m->delay_ms = rd_u32(&r);
		rc = rd_str(&r, &m->text, why);
		break;
	case PROTO_CHALLENGE:
		m->mech = rd_u16(&r);
		m->nonce = rd_bytes(&r, PROTO_NONCE_BYTES);
		break;
	case PROTO_AUTH:
		m->mech = rd_u16(&r);
		m->nonce = rd_bytes(&r, PROTO_NONCE_BYTES);
		m->mac = rd_bytes(&r, PROTO_MAC_BYTES);
		break;
	case PROTO_ANNOUNCE:
		m->req_id = rd_u32(&r);
		if ((rc = rd_table(&r, m, why)) != 0)
			break;
		m->ttl_s = rd_u32(&r);
		if ((rc = rd_key(&r, &m->key, 0, why)) != 0)
			break;
		rc = rd_fields(&r, &m->fields, &m->nfields, why);
		break;
	case PROTO_WITHDRAW:
		m->req_id = rd_u32(&r);
		if ((rc = rd_table(&r, m, why)) != 0)
			break;
		rc = rd_key(&r, &m->key, 0, why);
		break;
	case PROTO_SUBSCRIBE:
		m->req_id = rd_u32(&r);
		if ((rc = rd_table(&r, m, why)) != 0)
			break;
		m->flags = rd_u8(&r);
		if ((rc = rd_key(&r, &m->key, 1, why)) != 0)
			break;
		if (m->flags & ~PROTO_SUB_FLAGS) {
			*why = "unknown subscribe flags";
			rc = ISP_E_BAD_REQUEST;
		}
		break;
	case PROTO_UNSUBSCRIBE:
		m->req_id = rd_u32(&r);
		rc = rd_table(&r, m, why);
		break;
	case PROTO_QUERY:
		m->req_id = rd_u32(&r);
		m->what = rd_u8(&r);
		break;
	case PROTO_END_OF_REPLAY:
		m->req_id = rd_u32(&r);
		break;
	case PROTO_ADMIN:
		m->req_id = rd_u32(&r);
		m->what = rd_u8(&r);
		if (r.bad)
			break;
		if (m->what == PROTO_ADMIN_KICK)
			m->session_id = rd_u64(&r);
		else if (m->what == PROTO_ADMIN_EVICT) {
			if ((rc = rd_table(&r, m, why)) != 0)
				break;
			rc = rd_key(&r, &m->key, 0, why);
		} else if (m->what == PROTO_ADMIN_DROP)
			rc = rd_table(&r, m, why);
		else if (m->what == PROTO_ADMIN_HELD) {
			m->session_id = rd_u64(&r);
			rc = rd_key(&r, &m->key, 1, why);
		} else {
			*why = "unknown admin operation";
			rc = ISP_E_BAD_REQUEST;
		}
		break;
	case PROTO_EV_ANNOUNCE:
	case PROTO_EV_REPLACE:
	case PROTO_EV_WITHDRAW:
		if ((rc = rd_table(&r, m, why)) != 0)
			break;
		m->seq = rd_u64(&r);
		if ((rc = rd_key(&r, &m->key, 0, why)) != 0)
			break;
		m->owner_session = rd_u64(&r);
		if ((rc = rd_str(&r, &m->owner, why)) != 0)
			break;
		if (m->type == PROTO_EV_WITHDRAW)
			m->reason = rd_u8(&r);
		else
			rc = rd_fields(&r, &m->fields, &m->nfields, why);
		break;
	case PROTO_EV_END:
		if ((rc = rd_table(&r, m, why)) != 0)
			break;
		m->seq = rd_u64(&r);
		m->count = rd_u64(&r);
		break;
	case PROTO_EV_OWNER_GONE:
		if ((rc = rd_table(&r, m, why)) != 0)
			break;
		m->seq = rd_u64(&r);
		m->owner_session = rd_u64(&r);
		if ((rc = rd_str(&r, &m->owner, why)) != 0)
			break;
		m->reason = rd_u8(&r);
		m->count = rd_u64(&r);
		break;
	case PROTO_ROWS:
		m->req_id = rd_u32(&r);
		m->nrows = rd_u32(&r);
		m->rows.p = r.p;
		for (i = 0; i < m->nrows && !r.bad && rc == 0; i++) {
			struct proto_bytes	 f;

			rc = rd_fields_inner(&r, &f, &n, why);
		}
		m->rows.len = r.bad ? 0 : (size_t)(r.p - m->rows.p);
		break;
	default:
		*why = "unknown frame type";
		return ISP_E_UNKNOWN_TYPE;
	}
	if (rc != 0)
		return rc;
	if (r.bad) {
		*why = "frame shorter than its members";
		return ISP_E_PROTOCOL;
	}
	if (r.p != r.end) {
		*why = "bytes after the last member";
		return ISP_E_PROTOCOL;
	}
	return 0;
}

void
proto_fields_iter(struct proto_field_iter *it, struct proto_bytes fields)
{
	if (fields.len < 2) {
		it->p = it->end = NULL;
		return;
	}
	it->p = fields.p + 2;
	it->end = fields.p + fields.len;
}

int
proto_fields_next(struct proto_field_iter *it, struct proto_field *f)
{
	size_t	 len;

	if (it->p >= it->end)
		return 0;
	len = *it->p++;
	f->name.p = it->p;
	f->name.len = len;
	it->p += len;
	len = get_be32(it->p);
	it->p += 4;
	f->value.p = it->p;
	f->value.len = len;
	it->p += len;
	return 1;
}

int
proto_rows_next(struct proto_bytes *rows, struct proto_bytes *row)
{
	struct rd	 r;
	uint16_t	 count, i;

	if (rows->len == 0)
		return 0;
	r.p = rows->p;
	r.end = rows->p + rows->len;
	r.bad = 0;
	r.trusted = 0;
	count = rd_u16(&r);
	for (i = 0; i < count && !r.bad; i++) {
		(void)rd_bytes(&r, rd_u8(&r));
		(void)rd_bytes(&r, rd_u32(&r));
	}
	if (r.bad)
		return 0;
	row->p = rows->p;
	row->len = (size_t)(r.p - rows->p);
	rows->p = r.p;
	rows->len -= row->len;
	return 1;
}

/* Encoders. */

size_t
proto_begin(struct buf *b, uint8_t type)
{
	size_t	 start = b->len;

	buf_put_u32(b, 0);	/* patched by proto_end() */
	buf_put_u8(b, type);
	return start;
}

void
proto_end(struct buf *b, size_t start)
{
	if (buf_failed(b))
		return;
	put_be32(b->data + start, (uint32_t)(b->len - start - 4));
}

void
proto_put_name(struct buf *b, const void *p, size_t len)
{
	buf_put_u8(b, (uint8_t)len);
	buf_put(b, p, len);
}

void
proto_put_key(struct buf *b, const void *p, size_t len)
{
	buf_put_u16(b, (uint16_t)len);
	buf_put(b, p, len);
}

void
proto_put_str(struct buf *b, const void *p, size_t len)
{
	if (len > PROTO_MAX_STR_BYTES)
		len = PROTO_MAX_STR_BYTES;
	buf_put_u16(b, (uint16_t)len);
	buf_put(b, p, len);
}

size_t
proto_fields_begin(struct buf *b)
{
	size_t	 start = b->len;

	buf_put_u16(b, 0);	/* patched by proto_fields_end() */
	return start;
}

void
proto_put_field(struct buf *b, const void *name, size_t name_len,
    const void *value, size_t value_len)
{
	buf_put_u8(b, (uint8_t)name_len);
	buf_put(b, name, name_len);
	buf_put_u32(b, (uint32_t)value_len);
	buf_put(b, value, value_len);
}

void
proto_put_field_u64(struct buf *b, const char *name, uint64_t v)
{
	char	 s[24];
	int	 n = snprintf(s, sizeof(s), "%" PRIu64, v);

	proto_put_field(b, name, strlen(name), s, (size_t)n);
}

void
proto_fields_end(struct buf *b, size_t start, uint16_t count)
{
	if (buf_failed(b))
		return;
	put_be16(b->data + start, count);
}

static void
put_text(struct buf *b, const char *s)
{
	proto_put_str(b, s, s == NULL ? 0 : strlen(s));
}

void
proto_put_hello(struct buf *b, uint16_t version, uint32_t caps,
    const char *name)
{
	size_t	 s = proto_begin(b, PROTO_HELLO);

	buf_put_u16(b, version);
	buf_put_u32(b, caps);
	put_text(b, name);
	proto_end(b, s);
}

void
proto_put_welcome(struct buf *b, uint16_t version, uint32_t caps,
    uint32_t hold_ms, uint64_t session_id, const char *server)
{
	size_t	 s = proto_begin(b, PROTO_WELCOME);

	buf_put_u16(b, version);
	buf_put_u32(b, caps);
	buf_put_u32(b, hold_ms);
	buf_put_u64(b, session_id);
	put_text(b, server);
	proto_end(b, s);
}

void
proto_put_error(struct buf *b, uint32_t req_id, uint16_t code,
    const char *reason)
{
	size_t	 s = proto_begin(b, PROTO_ERROR);

	buf_put_u32(b, req_id);
	buf_put_u16(b, code);
	put_text(b, reason);
	proto_end(b, s);
}

void
proto_put_ping(struct buf *b, uint8_t type, uint64_t token)
{
	size_t	 s = proto_begin(b, type);

	buf_put_u64(b, token);
	proto_end(b, s);
}

void
proto_put_bye(struct buf *b, uint16_t code, const char *reason)
{
	size_t	 s = proto_begin(b, PROTO_BYE);

	buf_put_u16(b, code);
	put_text(b, reason);
	proto_end(b, s);
}

void
proto_put_going_down(struct buf *b, uint32_t delay_ms, const char *reason)
{
	size_t	 s = proto_begin(b, PROTO_GOING_DOWN);

	buf_put_u32(b, delay_ms);
	put_text(b, reason);
	proto_end(b, s);
}

void
proto_put_challenge(struct buf *b, uint16_t mech,
    const uint8_t nonce[PROTO_NONCE_BYTES])
{
	size_t	 s = proto_begin(b, PROTO_CHALLENGE);

	buf_put_u16(b, mech);
	buf_put(b, nonce, PROTO_NONCE_BYTES);
	proto_end(b, s);
}

void
proto_put_auth(struct buf *b, uint16_t mech,
    const uint8_t client_nonce[PROTO_NONCE_BYTES],
    const uint8_t mac[PROTO_MAC_BYTES])
{
	size_t	 s = proto_begin(b, PROTO_AUTH);

	buf_put_u16(b, mech);
	buf_put(b, client_nonce, PROTO_NONCE_BYTES);
	buf_put(b, mac, PROTO_MAC_BYTES);
	proto_end(b, s);
}

void
proto_auth_input(struct buf *b, const uint8_t server_nonce[PROTO_NONCE_BYTES],
    const uint8_t client_nonce[PROTO_NONCE_BYTES], const void *name,
    size_t name_len, const void *binding, size_t binding_len)
{
	buf_put(b, PROTO_AUTH_LABEL, sizeof(PROTO_AUTH_LABEL) - 1);
	buf_put(b, server_nonce, PROTO_NONCE_BYTES);
	buf_put(b, client_nonce, PROTO_NONCE_BYTES);
	buf_put_u8(b, (uint8_t)name_len);
	buf_put(b, name, name_len);
	buf_put_u8(b, (uint8_t)binding_len);
	buf_put(b, binding, binding_len);
}

void
proto_put_announce(struct buf *b, uint32_t req_id, struct proto_bytes table,
    uint32_t ttl_s, struct proto_bytes key, struct proto_bytes fields)
{
	size_t	 s = proto_begin(b, PROTO_ANNOUNCE);

	buf_put_u32(b, req_id);
	proto_put_name(b, table.p, table.len);
	buf_put_u32(b, ttl_s);
	proto_put_key(b, key.p, key.len);
	buf_put(b, fields.p, fields.len);
	proto_end(b, s);
}

void
proto_put_withdraw(struct buf *b, uint32_t req_id, struct proto_bytes table,
    struct proto_bytes key)
{
	size_t	 s = proto_begin(b, PROTO_WITHDRAW);

	buf_put_u32(b, req_id);
	proto_put_name(b, table.p, table.len);
	proto_put_key(b, key.p, key.len);
	proto_end(b, s);
}

void
proto_put_subscribe(struct buf *b, uint32_t req_id, struct proto_bytes table,
    uint8_t flags, struct proto_bytes prefix)
{
	size_t	 s = proto_begin(b, PROTO_SUBSCRIBE);

	buf_put_u32(b, req_id);
	proto_put_name(b, table.p, table.len);
	buf_put_u8(b, flags);
	proto_put_key(b, prefix.p, prefix.len);
	proto_end(b, s);
}

void
proto_put_unsubscribe(struct buf *b, uint32_t req_id, struct proto_bytes table)
{
	size_t	 s = proto_begin(b, PROTO_UNSUBSCRIBE);

	buf_put_u32(b, req_id);
	proto_put_name(b, table.p, table.len);
	proto_end(b, s);
}

void
proto_put_query(struct buf *b, uint32_t req_id, uint8_t what)
{
	size_t	 s = proto_begin(b, PROTO_QUERY);

	buf_put_u32(b, req_id);
	buf_put_u8(b, what);
	proto_end(b, s);
}

void
proto_put_admin_kick(struct buf *b, uint32_t req_id, uint64_t session_id)
{
	size_t	 s = proto_begin(b, PROTO_ADMIN);

	buf_put_u32(b, req_id);
	buf_put_u8(b, PROTO_ADMIN_KICK);
	buf_put_u64(b, session_id);
	proto_end(b, s);
}

void
proto_put_admin_evict(struct buf *b, uint32_t req_id, struct proto_bytes table,
    struct proto_bytes key)
{
	size_t	 s = proto_begin(b, PROTO_ADMIN);

	buf_put_u32(b, req_id);
	buf_put_u8(b, PROTO_ADMIN_EVICT);
	proto_put_name(b, table.p, table.len);
	proto_put_key(b, key.p, key.len);
	proto_end(b, s);
}

void
proto_put_admin_drop(struct buf *b, uint32_t req_id, struct proto_bytes table)
{
	size_t	 s = proto_begin(b, PROTO_ADMIN);

	buf_put_u32(b, req_id);
	buf_put_u8(b, PROTO_ADMIN_DROP);
	proto_put_name(b, table.p, table.len);
	proto_end(b, s);
}

void
proto_put_admin_held(struct buf *b, uint32_t req_id, uint64_t after_session,
    struct proto_bytes after_table)
{
	size_t	 s = proto_begin(b, PROTO_ADMIN);

	buf_put_u32(b, req_id);
	buf_put_u8(b, PROTO_ADMIN_HELD);
	buf_put_u64(b, after_session);
	proto_put_key(b, after_table.p, after_table.len);
	proto_end(b, s);
}

void
proto_put_end_of_replay(struct buf *b, uint32_t req_id)
{
	size_t	 s = proto_begin(b, PROTO_END_OF_REPLAY);

	buf_put_u32(b, req_id);
	proto_end(b, s);
}

void
proto_put_ev_record(struct buf *b, uint8_t type, struct proto_bytes table,
    uint64_t seq, struct proto_bytes key, uint64_t owner_session,
    struct proto_bytes owner, struct proto_bytes fields)
{
	size_t	 s = proto_begin(b, type);

	proto_put_name(b, table.p, table.len);
	buf_put_u64(b, seq);
	proto_put_key(b, key.p, key.len);
	buf_put_u64(b, owner_session);
	proto_put_str(b, owner.p, owner.len);
	buf_put(b, fields.p, fields.len);
	proto_end(b, s);
}

void
proto_put_ev_withdraw(struct buf *b, struct proto_bytes table, uint64_t seq,
    struct proto_bytes key, uint64_t owner_session, struct proto_bytes owner,
    uint8_t reason)
{
	size_t	 s = proto_begin(b, PROTO_EV_WITHDRAW);

	proto_put_name(b, table.p, table.len);
	buf_put_u64(b, seq);
	proto_put_key(b, key.p, key.len);
	buf_put_u64(b, owner_session);
	proto_put_str(b, owner.p, owner.len);
	buf_put_u8(b, reason);
	proto_end(b, s);
}

void
proto_put_ev_owner_gone(struct buf *b, struct proto_bytes table, uint64_t seq,
    uint64_t owner_session, struct proto_bytes owner, uint8_t reason,
    uint64_t count)
{
	size_t	 s = proto_begin(b, PROTO_EV_OWNER_GONE);

	proto_put_name(b, table.p, table.len);
	buf_put_u64(b, seq);
	buf_put_u64(b, owner_session);
	proto_put_str(b, owner.p, owner.len);
	buf_put_u8(b, reason);
	buf_put_u64(b, count);
	proto_end(b, s);
}

void
proto_put_ev_end(struct buf *b, struct proto_bytes table, uint64_t seq,
    uint64_t count)
{
	size_t	 s = proto_begin(b, PROTO_EV_END);

	proto_put_name(b, table.p, table.len);
	buf_put_u64(b, seq);
	buf_put_u64(b, count);
	proto_end(b, s);
}

size_t
proto_rows_begin(struct buf *b, uint32_t req_id)
{
	size_t	 s = proto_begin(b, PROTO_ROWS);

	buf_put_u32(b, req_id);
	buf_put_u32(b, 0);	/* patched by proto_rows_end() */
	return s;
}

void
proto_rows_end(struct buf *b, size_t start, uint32_t nrows)
{
	if (buf_failed(b))
		return;
	put_be32(b->data + start + PROTO_HEADER_BYTES + 4, nrows);
	proto_end(b, start);
}

const char *
proto_type_name(uint8_t type)
{
	switch (type) {
	case PROTO_HELLO:	return "HELLO";
	case PROTO_WELCOME:	return "WELCOME";
	case PROTO_ERROR:	return "ERROR";
	case PROTO_PING:	return "PING";
	case PROTO_PONG:	return "PONG";
	case PROTO_BYE:		return "BYE";
	case PROTO_CHALLENGE:	return "CHALLENGE";
	case PROTO_AUTH:	return "AUTH";
	case PROTO_GOING_DOWN:	return "GOING_DOWN";
	case PROTO_ANNOUNCE:	return "ANNOUNCE";
	case PROTO_WITHDRAW:	return "WITHDRAW";
	case PROTO_SUBSCRIBE:	return "SUBSCRIBE";
	case PROTO_UNSUBSCRIBE:	return "UNSUBSCRIBE";
	case PROTO_QUERY:	return "QUERY";
	case PROTO_END_OF_REPLAY: return "END_OF_REPLAY";
	case PROTO_ADMIN:	return "ADMIN";
	case PROTO_EV_ANNOUNCE:	return "EV_ANNOUNCE";
	case PROTO_EV_REPLACE:	return "EV_REPLACE";
	case PROTO_EV_WITHDRAW:	return "EV_WITHDRAW";
	case PROTO_EV_END:	return "EV_END";
	case PROTO_ROWS:	return "ROWS";
	case PROTO_EV_OWNER_GONE: return "EV_OWNER_GONE";
	default:		return "unknown";
	}
}
