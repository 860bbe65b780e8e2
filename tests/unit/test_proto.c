/*
 * Codec tests: every frame type round-trips through the encoder and the
 * decoder; truncated, oversized, over-long and unknown frames are
 * rejected with the right code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "isp.h"
#include "proto.h"

#define PB(s)	proto_bytes((s), sizeof(s) - 1)

static struct buf	 b;

static int
setup(void **state)
{
	buf_init(&b);
	return 0;
}

static int
teardown(void **state)
{
	buf_free(&b);
	return 0;
}

/* Decodes b as one whole frame, asserting the framing first. */
static int
decode(struct proto_msg *m, const char **why)
{
	size_t	 n = 0;

	assert_false(buf_failed(&b));
	assert_int_equal(proto_frame_check(b.data, b.len, PROTO_MAX_FRAME_BYTES,
	    &n), 1);
	assert_int_equal(n, b.len);
	return proto_decode(b.data, b.len, m, why);
}

static void
assert_bytes(struct proto_bytes got, const char *want)
{
	assert_int_equal(got.len, strlen(want));
	assert_memory_equal(got.p, want, got.len);
}

/* A fields block: sip=alice, binary value with a NUL, empty value. */
static struct proto_bytes
make_fields(struct buf *fb)
{
	size_t	 s;

	buf_init(fb);
	s = proto_fields_begin(fb);
	proto_put_field(fb, "contact", 7, "sip:a@10.0.0.1", 14);
	proto_put_field(fb, "bin", 3, "a\0b", 3);
	proto_put_field(fb, "empty", 5, "", 0);
	proto_fields_end(fb, s, 3);
	return proto_bytes(fb->data, fb->len);
}

static void
test_hello_welcome(void **state)
{
	struct proto_msg	 m;
	const char		*why;

	proto_put_hello(&b, PROTO_VERSION, 7, "bgw-1");
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_HELLO);
	assert_int_equal(m.version, PROTO_VERSION);
	assert_int_equal(m.caps, 7);
	assert_bytes(m.text, "bgw-1");

	b.len = 0;
	proto_put_welcome(&b, 1, 0, 9000, 0x1122334455667788ULL, "ispd-a");
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_WELCOME);
	assert_int_equal(m.hold_ms, 9000);
	assert_true(m.session_id == 0x1122334455667788ULL);
	assert_bytes(m.text, "ispd-a");
}

static void
test_error_ping_bye(void **state)
{
	struct proto_msg	 m;
	const char		*why;

	proto_put_error(&b, 42, ISP_E_NOT_OWNER, "owned by session 3");
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_ERROR);
	assert_int_equal(m.req_id, 42);
	assert_int_equal(m.code, ISP_E_NOT_OWNER);
	assert_bytes(m.text, "owned by session 3");

	b.len = 0;
	proto_put_ping(&b, PROTO_PING, 99);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_PING);
	assert_int_equal(m.token, 99);

	b.len = 0;
	proto_put_ping(&b, PROTO_PONG, 100);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_PONG);
	assert_int_equal(m.token, 100);

	b.len = 0;
	proto_put_bye(&b, ISP_E_SHUTDOWN, "going down");
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_BYE);
	assert_int_equal(m.code, ISP_E_SHUTDOWN);
	assert_bytes(m.text, "going down");

	b.len = 0;
	proto_put_going_down(&b, 5000, "maintenance");
	assert_int_equal(b.len, 4 + 1 + 4 + 2 + 11);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_GOING_DOWN);
	assert_int_equal(m.delay_ms, 5000);
	assert_bytes(m.text, "maintenance");
	assert_string_equal(proto_type_name(PROTO_GOING_DOWN), "GOING_DOWN");

	/* Truncated: the delay alone, no reason length. */
	b.len = 0;
	proto_put_going_down(&b, 1, "");
	b.len -= 2;
	b.data[3] -= 2;
	assert_int_equal(decode(&m, &why), ISP_E_PROTOCOL);
}

/* CHALLENGE and AUTH (docs/PROTOCOL.md "Authentication"), and the bytes
 * the MAC covers, laid out as the specification says. */
static void
test_auth_frames(void **state)
{
	struct proto_msg	 m;
	const char		*why;
	uint8_t			 sn[PROTO_NONCE_BYTES], cn[PROTO_NONCE_BYTES];
	uint8_t			 mac[PROTO_MAC_BYTES], bind[PROTO_BINDING_BYTES];
	size_t			 off;

	memset(sn, 0xa5, sizeof(sn));
	memset(cn, 0x5a, sizeof(cn));
	memset(mac, 0x3c, sizeof(mac));
	memset(bind, 0xc3, sizeof(bind));
	proto_put_challenge(&b, PROTO_AUTH_HMAC_SHA256, sn);
	assert_int_equal(b.len, 4 + 1 + 2 + 32);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_CHALLENGE);
	assert_int_equal(m.mech, PROTO_AUTH_HMAC_SHA256);
	assert_int_equal(m.nonce.len, PROTO_NONCE_BYTES);
	assert_memory_equal(m.nonce.p, sn, sizeof(sn));
	assert_string_equal(proto_type_name(PROTO_CHALLENGE), "CHALLENGE");

	b.len = 0;
	proto_put_auth(&b, PROTO_AUTH_HMAC_SHA256, cn, mac);
	assert_int_equal(b.len, 4 + 1 + 2 + 32 + 32);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_AUTH);
	assert_int_equal(m.mech, PROTO_AUTH_HMAC_SHA256);
	assert_memory_equal(m.nonce.p, cn, sizeof(cn));
	assert_memory_equal(m.mac.p, mac, sizeof(mac));
	assert_string_equal(proto_type_name(PROTO_AUTH), "AUTH");

	/* Short or long by a byte: malformed. */
	b.len--;
	put_be32(b.data, (uint32_t)b.len - 4);
	assert_int_equal(decode(&m, &why), ISP_E_PROTOCOL);
	b.len = 0;
	proto_put_challenge(&b, 1, sn);
	buf_put_u8(&b, 0);
	put_be32(b.data, (uint32_t)b.len - 4);
	assert_int_equal(decode(&m, &why), ISP_E_PROTOCOL);

	/* "ispd-auth-v1" | server nonce | client nonce | u8 len, name |
	 * u8 len, binding. */
	b.len = 0;
	proto_auth_input(&b, sn, cn, "bgw-1", 5, bind, sizeof(bind));
	assert_int_equal(b.len, 12 + 32 + 32 + 1 + 5 + 1 + 32);
	assert_memory_equal(b.data, "ispd-auth-v1", 12);
	off = 12;
	assert_memory_equal(b.data + off, sn, 32);
	off += 32;
	assert_memory_equal(b.data + off, cn, 32);
	off += 32;
	assert_int_equal(b.data[off], 5);
	assert_memory_equal(b.data + off + 1, "bgw-1", 5);
	off += 6;
	assert_int_equal(b.data[off], 32);
	assert_memory_equal(b.data + off + 1, bind, 32);
	b.len = 0;
	proto_auth_input(&b, sn, cn, "bgw-1", 5, NULL, 0);
	assert_int_equal(b.len, 12 + 32 + 32 + 1 + 5 + 1);
	assert_int_equal(b.data[b.len - 1], 0);
}

static void
test_requests(void **state)
{
	struct proto_msg	 m;
	struct proto_field_iter	 it;
	struct proto_field	 f;
	struct buf		 fb;
	const char		*why;

	proto_put_announce(&b, 5, PB("SIP_REGISTRATION"), 60, PB("alice|1"),
	    make_fields(&fb));
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_ANNOUNCE);
	assert_int_equal(m.req_id, 5);
	assert_int_equal(m.ttl_s, 60);
	assert_bytes(m.table, "SIP_REGISTRATION");
	assert_bytes(m.key, "alice|1");
	assert_int_equal(m.nfields, 3);
	assert_int_equal(m.fields.len, fb.len);
	assert_memory_equal(m.fields.p, fb.data, fb.len);
	proto_fields_iter(&it, m.fields);
	assert_int_equal(proto_fields_next(&it, &f), 1);
	assert_bytes(f.name, "contact");
	assert_bytes(f.value, "sip:a@10.0.0.1");
	assert_int_equal(proto_fields_next(&it, &f), 1);
	assert_int_equal(f.value.len, 3);
	assert_memory_equal(f.value.p, "a\0b", 3);
	assert_int_equal(proto_fields_next(&it, &f), 1);
	assert_bytes(f.name, "empty");
	assert_int_equal(f.value.len, 0);
	assert_int_equal(proto_fields_next(&it, &f), 0);
	buf_free(&fb);

	b.len = 0;
	proto_put_withdraw(&b, 6, PB("T"), PB("k"));
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_WITHDRAW);
	assert_int_equal(m.req_id, 6);
	assert_bytes(m.table, "T");
	assert_bytes(m.key, "k");

	b.len = 0;
	proto_put_subscribe(&b, 7, PB("T"), PROTO_SUB_ONCE, PB("ali"));
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_SUBSCRIBE);
	assert_int_equal(m.flags, PROTO_SUB_ONCE);
	assert_bytes(m.key, "ali");

	b.len = 0;
	proto_put_subscribe(&b, 8, PB("T"), 0, proto_bytes("", 0));
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.key.len, 0);

	b.len = 0;
	proto_put_unsubscribe(&b, 9, PB("T"));
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_UNSUBSCRIBE);
	assert_int_equal(m.req_id, 9);

	b.len = 0;
	proto_put_query(&b, 10, PROTO_QUERY_STATS);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_QUERY);
	assert_int_equal(m.what, PROTO_QUERY_STATS);

	b.len = 0;
	proto_put_end_of_replay(&b, 11);
	assert_int_equal(b.len, PROTO_HEADER_BYTES + 4);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_END_OF_REPLAY);
	assert_int_equal(m.req_id, 11);
	assert_string_equal(proto_type_name(m.type), "END_OF_REPLAY");
}

/* ADMIN: each op with its members; an unknown op, a member missing or
 * left over, a bad table or key refused. */
static void
test_admin(void **state)
{
	struct proto_msg	 m;
	const char		*why;
	size_t			 len;

	proto_put_admin_kick(&b, 12, 0x0102030405060708ull);
	assert_int_equal(b.len, PROTO_HEADER_BYTES + 4 + 1 + 8);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_ADMIN);
	assert_int_equal(m.req_id, 12);
	assert_int_equal(m.what, PROTO_ADMIN_KICK);
	assert_true(m.session_id == 0x0102030405060708ull);
	assert_string_equal(proto_type_name(m.type), "ADMIN");

	b.len = 0;
	proto_put_admin_evict(&b, 13, PB("T"), PB("alice"));
	assert_int_equal(b.len, PROTO_HEADER_BYTES + 4 + 1 + 2 + 2 + 5);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.what, PROTO_ADMIN_EVICT);
	assert_int_equal(m.req_id, 13);
	assert_memory_equal(m.table.p, "T", 1);
	assert_int_equal(m.key.len, 5);
	assert_memory_equal(m.key.p, "alice", 5);

	/* An op not defined: BAD_REQUEST, with the request id. */
	b.len = 0;
	proto_put_admin_kick(&b, 14, 1);
	b.data[PROTO_HEADER_BYTES + 4] = 9;
	assert_int_equal(proto_decode(b.data, b.len, &m, &why),
	    ISP_E_BAD_REQUEST);
	assert_int_equal(m.req_id, 14);

	/* KICK cut short, and with a byte too many. */
	b.len = 0;
	proto_put_admin_kick(&b, 15, 1);
	len = b.len - 1;
	put_be32(b.data, (uint32_t)(len - 4));
	assert_int_equal(proto_decode(b.data, len, &m, &why), ISP_E_PROTOCOL);
	b.len = 0;
	proto_put_admin_kick(&b, 15, 1);
	buf_put_u8(&b, 0);
	put_be32(b.data, (uint32_t)(b.len - 4));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why), ISP_E_PROTOCOL);
	/* No op at all. */
	b.len = 0;
	proto_put_end_of_replay(&b, 16);
	b.data[4] = PROTO_ADMIN;
	assert_int_equal(proto_decode(b.data, b.len, &m, &why), ISP_E_PROTOCOL);

	/* EVICT with a bad table, with an empty key. */
	b.len = 0;
	proto_put_admin_evict(&b, 17, PB("bad name"), PB("k"));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why),
	    ISP_E_BAD_TABLE);
	b.len = 0;
	proto_put_admin_evict(&b, 18, PB("T"), proto_bytes("", 0));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why), ISP_E_BAD_KEY);
}

static void
test_events(void **state)
{
	struct proto_msg	 m;
	struct buf		 fb;
	const char		*why;

	proto_put_ev_record(&b, PROTO_EV_REPLACE, PB("T"), 12, PB("key"), 3,
	    PB("bgw-2"), make_fields(&fb));
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_EV_REPLACE);
	assert_int_equal(m.seq, 12);
	assert_int_equal(m.owner_session, 3);
	assert_bytes(m.owner, "bgw-2");
	assert_bytes(m.key, "key");
	assert_int_equal(m.nfields, 3);
	buf_free(&fb);

	b.len = 0;
	proto_put_ev_withdraw(&b, PB("T"), 13, PB("key"), 3, PB("bgw-2"),
	    PROTO_WD_SESSION);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_EV_WITHDRAW);
	assert_int_equal(m.reason, PROTO_WD_SESSION);
	assert_int_equal(m.seq, 13);

	b.len = 0;
	proto_put_ev_end(&b, PB("T"), 13, 200000);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_EV_END);
	assert_int_equal(m.count, 200000);
}

static void
test_rows(void **state)
{
	struct proto_msg	 m;
	struct proto_bytes	 rows, row;
	const char		*why;
	size_t			 s, f;
	uint16_t		 n;
	int			 i;

	s = proto_rows_begin(&b, 77);
	for (i = 0; i < 3; i++) {
		f = proto_fields_begin(&b);
		proto_put_field(&b, "name", 4, "T", 1);
		proto_put_field(&b, "records", 7, "5", 1);
		proto_fields_end(&b, f, 2);
	}
	proto_rows_end(&b, s, 3);
	assert_int_equal(decode(&m, &why), 0);
	assert_int_equal(m.type, PROTO_ROWS);
	assert_int_equal(m.req_id, 77);
	assert_int_equal(m.nrows, 3);
	rows = m.rows;
	for (i = 0; i < 3; i++) {
		assert_int_equal(proto_rows_next(&rows, &row), 1);
		assert_int_equal(proto_fields_check(row.p, row.len, &n, &why), 0);
		assert_int_equal(n, 2);
	}
	assert_int_equal(proto_rows_next(&rows, &row), 0);
}

static void
test_framing(void **state)
{
	uint8_t		 hdr[4];
	size_t		 n = 0;

	proto_put_ping(&b, PROTO_PING, 1);
	/* Every truncation asks for more bytes. */
	for (size_t i = 0; i < b.len; i++)
		assert_int_equal(proto_frame_check(b.data, i,
		    PROTO_MAX_FRAME_BYTES, &n), 0);
	/* Over the limit, zero, and "GET " as a length: refused before any
	 * payload arrives. */
	put_be32(hdr, PROTO_MAX_FRAME_BYTES + 1);
	assert_int_equal(proto_frame_check(hdr, 4, PROTO_MAX_FRAME_BYTES, &n),
	    -1);
	put_be32(hdr, 0);
	assert_int_equal(proto_frame_check(hdr, 4, PROTO_MAX_FRAME_BYTES, &n),
	    -1);
	assert_int_equal(proto_frame_check((const uint8_t *)"GET / HTTP/1.1",
	    14, PROTO_MAX_FRAME_BYTES, &n), -1);
	/* A smaller configured limit is honoured. */
	put_be32(hdr, 2000);
	assert_int_equal(proto_frame_check(hdr, 4, 1024, &n), -1);
}

/* The client's decoder checks names for length only, and everything
 * else as strictly as proto_decode(). */
static void
test_decode_trusted(void **state)
{
	struct proto_msg	 m;
	struct buf		 fb;
	const char		*why;
	size_t			 s, len;

	/* Names ispd would never send: refused by the strict decoder,
	 * taken as they are by the trusted one. */
	buf_init(&fb);
	s = proto_fields_begin(&fb);
	proto_put_field(&fb, "a b", 3, "v", 1);
	proto_fields_end(&fb, s, 1);
	proto_put_ev_record(&b, PROTO_EV_ANNOUNCE, PB("bad table"), 1,
	    PB("k"), 9, PB("o"), proto_bytes(fb.data, fb.len));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why),
	    ISP_E_BAD_TABLE);
	assert_int_equal(proto_decode_trusted(b.data, b.len, &m, &why), 0);
	assert_bytes(m.table, "bad table");
	assert_int_equal(m.nfields, 1);

	b.len = 0;
	proto_put_ev_record(&b, PROTO_EV_ANNOUNCE, PB("T"), 1, PB("k"), 9,
	    PB("o"), proto_bytes(fb.data, fb.len));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why),
	    ISP_E_BAD_FIELDS);
	assert_int_equal(proto_decode_trusted(b.data, b.len, &m, &why), 0);

	/* Lengths are still checked: an empty table name, an empty field
	 * name, a value running past the frame. */
	b.len = 0;
	proto_put_ev_end(&b, PB(""), 1, 0);
	assert_int_equal(proto_decode_trusted(b.data, b.len, &m, &why),
	    ISP_E_BAD_TABLE);
	fb.len = 0;
	s = proto_fields_begin(&fb);
	proto_put_field(&fb, "", 0, "v", 1);
	proto_fields_end(&fb, s, 1);
	b.len = 0;
	proto_put_ev_record(&b, PROTO_EV_ANNOUNCE, PB("T"), 1, PB("k"), 9,
	    PB("o"), proto_bytes(fb.data, fb.len));
	assert_int_equal(proto_decode_trusted(b.data, b.len, &m, &why),
	    ISP_E_BAD_FIELDS);
	fb.len = 0;
	s = proto_fields_begin(&fb);
	proto_put_field(&fb, "n", 1, "value", 5);
	proto_fields_end(&fb, s, 1);
	b.len = 0;
	proto_put_ev_record(&b, PROTO_EV_ANNOUNCE, PB("T"), 1, PB("k"), 9,
	    PB("o"), proto_bytes(fb.data, fb.len));
	len = b.len - 2;
	put_be32(b.data, (uint32_t)(len - 4));
	assert_int_equal(proto_decode_trusted(b.data, len, &m, &why),
	    ISP_E_PROTOCOL);
	buf_free(&fb);
}

static void
test_malformed(void **state)
{
	struct proto_msg	 m;
	struct buf		 fb;
	const char		*why;
	size_t			 len;

	/* Unknown type. */
	proto_put_ping(&b, 0x7f, 1);
	assert_int_equal(proto_decode(b.data, b.len, &m, &why),
	    ISP_E_UNKNOWN_TYPE);

	/* A frame cut short: the length header says less than the members. */
	b.len = 0;
	proto_put_withdraw(&b, 1, PB("T"), PB("key"));
	len = b.len - 1;
	put_be32(b.data, (uint32_t)(len - 4));
	assert_int_equal(proto_decode(b.data, len, &m, &why), ISP_E_PROTOCOL);

	/* Trailing bytes. */
	b.len = 0;
	proto_put_ping(&b, PROTO_PING, 1);
	buf_put_u8(&b, 0);
	put_be32(b.data, (uint32_t)(b.len - 4));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why), ISP_E_PROTOCOL);

	/* Bad table names. */
	b.len = 0;
	proto_put_withdraw(&b, 1, PB("bad name"), PB("k"));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why), ISP_E_BAD_TABLE);
	assert_int_equal(m.req_id, 1);
	b.len = 0;
	proto_put_withdraw(&b, 1, proto_bytes("", 0), PB("k"));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why), ISP_E_BAD_TABLE);

	/* Empty key; key over 1024 bytes. */
	b.len = 0;
	proto_put_withdraw(&b, 2, PB("T"), proto_bytes("", 0));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why), ISP_E_BAD_KEY);
	{
		static char	 big[PROTO_MAX_KEY_BYTES + 1];

		memset(big, 'k', sizeof(big));
		b.len = 0;
		proto_put_withdraw(&b, 2, PB("T"), proto_bytes(big,
		    sizeof(big)));
		assert_int_equal(proto_decode(b.data, b.len, &m, &why),
		    ISP_E_BAD_KEY);
		b.len = 0;
		proto_put_withdraw(&b, 2, PB("T"), proto_bytes(big,
		    sizeof(big) - 1));
		assert_int_equal(proto_decode(b.data, b.len, &m, &why), 0);
	}

	/* A field name with '=' and a field count that lies. */
	buf_init(&fb);
	len = proto_fields_begin(&fb);
	proto_put_field(&fb, "a=b", 3, "v", 1);
	proto_fields_end(&fb, len, 1);
	b.len = 0;
	proto_put_announce(&b, 3, PB("T"), 0, PB("k"), proto_bytes(fb.data,
	    fb.len));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why),
	    ISP_E_BAD_FIELDS);
	fb.len = 0;
	len = proto_fields_begin(&fb);
	proto_put_field(&fb, "a", 1, "v", 1);
	proto_fields_end(&fb, len, 2);
	b.len = 0;
	proto_put_announce(&b, 3, PB("T"), 0, PB("k"), proto_bytes(fb.data,
	    fb.len));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why), ISP_E_PROTOCOL);
	buf_free(&fb);

	/* Unknown subscribe flag. */
	b.len = 0;
	proto_put_subscribe(&b, 4, PB("T"), 0x80, proto_bytes("", 0));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why),
	    ISP_E_BAD_REQUEST);
}

static void
test_limits(void **state)
{
	struct proto_msg	 m;
	struct buf		 fb;
	const char		*why;
	static char		 val[PROTO_MAX_VALUE_BYTES + 1];
	size_t			 s;
	int			 i;

	/* 257 fields. */
	buf_init(&fb);
	s = proto_fields_begin(&fb);
	for (i = 0; i < PROTO_MAX_FIELDS + 1; i++)
		proto_put_field(&fb, "f", 1, "v", 1);
	proto_fields_end(&fb, s, PROTO_MAX_FIELDS + 1);
	proto_put_announce(&b, 1, PB("T"), 0, PB("k"), proto_bytes(fb.data,
	    fb.len));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why),
	    ISP_E_BAD_FIELDS);

	/* A value one byte over. */
	fb.len = 0;
	s = proto_fields_begin(&fb);
	proto_put_field(&fb, "f", 1, val, sizeof(val));
	proto_fields_end(&fb, s, 1);
	b.len = 0;
	proto_put_announce(&b, 1, PB("T"), 0, PB("k"), proto_bytes(fb.data,
	    fb.len));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why),
	    ISP_E_BAD_FIELDS);

	/* The limit itself is fine. */
	fb.len = 0;
	s = proto_fields_begin(&fb);
	proto_put_field(&fb, "f", 1, val, sizeof(val) - 1);
	proto_fields_end(&fb, s, 1);
	b.len = 0;
	proto_put_announce(&b, 1, PB("T"), 0, PB("k"), proto_bytes(fb.data,
	    fb.len));
	assert_int_equal(proto_decode(b.data, b.len, &m, &why), 0);
	buf_free(&fb);

	assert_true(proto_table_valid("a.b:c-d_E9", 10));
	assert_false(proto_table_valid("a/b", 3));
	assert_true(proto_table_valid(val, 0) == 0);
	memset(val, 'x', 65);
	assert_true(proto_table_valid(val, 64));
	assert_false(proto_table_valid(val, 65));
}

/* The example in docs/PROTOCOL.md, byte for byte. */
static void
test_doc_example(void **state)
{
	static const uint8_t	 want[] = {
		0x00, 0x00, 0x00, 0x38, 0x10, 0x00, 0x00, 0x00, 0x01,
		0x10, 'S', 'I', 'P', '_', 'R', 'E', 'G', 'I', 'S', 'T', 'R',
		'A', 'T', 'I', 'O', 'N',
		0x00, 0x00, 0x00, 0x00,
		0x00, 0x07, 'a', 'l', 'i', 'c', 'e', '|', '1',
		0x00, 0x01,
		0x07, 'c', 'o', 'n', 't', 'a', 'c', 't',
		0x00, 0x00, 0x00, 0x07, 's', 'i', 'p', ':', 'a', '@', 'h',
	};
	struct buf	 fb;
	size_t		 s;

	buf_init(&fb);
	s = proto_fields_begin(&fb);
	proto_put_field(&fb, "contact", 7, "sip:a@h", 7);
	proto_fields_end(&fb, s, 1);
	proto_put_announce(&b, 1, PB("SIP_REGISTRATION"), 0, PB("alice|1"),
	    proto_bytes(fb.data, fb.len));
	buf_free(&fb);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_welcome, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_frames, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_error_ping_bye, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_framing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_trusted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_doc_example, setup,
		    teardown),
	};

	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
