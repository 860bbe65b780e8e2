/*
 * Fuzz target for the wire codec: any bytes, split into frames the way
 * the daemon and the library split their input. Beyond "no crash, no
 * sanitizer finding", a frame that decodes must re-encode to exactly the
 * same bytes (the encoding is canonical), and its fields and rows must
 * walk to their ends; the client's decoder (proto_decode_trusted(),
 * names checked for length only) is held to the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_fields(struct proto_bytes f, uint16_t nfields)
{
	struct proto_field_iter	 it;
	struct proto_field	 fld;
	uint16_t		 n = 0;

	proto_fields_iter(&it, f);
	while (proto_fields_next(&it, &fld))
		n++;
	if (n != nfields || it.p != it.end)
		abort();
}

static void
reencode(const uint8_t *frame, size_t len, const struct proto_msg *m)
{
	struct buf	 b;
	size_t		 s;

	buf_init(&b);
	switch (m->type) {
	case PROTO_GOING_DOWN:
		/* The reason may hold any UTF-8, NUL included: built from
		 * its parts rather than by proto_put_going_down(). */
		s = proto_begin(&b, PROTO_GOING_DOWN);
		buf_put_u32(&b, m->delay_ms);
		proto_put_str(&b, m->text.p, m->text.len);
		proto_end(&b, s);
		break;
	case PROTO_PING:
	case PROTO_PONG:
		proto_put_ping(&b, m->type, m->token);
		break;
	case PROTO_CHALLENGE:
		proto_put_challenge(&b, m->mech, m->nonce.p);
		break;
	case PROTO_AUTH:
		proto_put_auth(&b, m->mech, m->nonce.p, m->mac.p);
		break;
	case PROTO_ANNOUNCE:
		proto_put_announce(&b, m->req_id, m->table, m->ttl_s, m->key,
		    m->fields);
		break;
	case PROTO_WITHDRAW:
		proto_put_withdraw(&b, m->req_id, m->table, m->key);
		break;
	case PROTO_SUBSCRIBE:
		proto_put_subscribe(&b, m->req_id, m->table, m->flags, m->key);
		break;
	case PROTO_UNSUBSCRIBE:
		proto_put_unsubscribe(&b, m->req_id, m->table);
		break;
	case PROTO_QUERY:
		proto_put_query(&b, m->req_id, m->what);
		break;
	case PROTO_END_OF_REPLAY:
		proto_put_end_of_replay(&b, m->req_id);
		break;
	case PROTO_ADMIN:
		if (m->what == PROTO_ADMIN_KICK)
			proto_put_admin_kick(&b, m->req_id, m->session_id);
		else if (m->what == PROTO_ADMIN_EVICT)
			proto_put_admin_evict(&b, m->req_id, m->table, m->key);
		else if (m->what == PROTO_ADMIN_DROP)
			proto_put_admin_drop(&b, m->req_id, m->table);
		else
			proto_put_admin_held(&b, m->req_id, m->session_id,
			    m->key);
		break;
	case PROTO_EV_ANNOUNCE:
	case PROTO_EV_REPLACE:
		proto_put_ev_record(&b, m->type, m->table, m->seq, m->key,
		    m->owner_session, m->owner, m->fields);
		break;
	case PROTO_EV_WITHDRAW:
		proto_put_ev_withdraw(&b, m->table, m->seq, m->key,
		    m->owner_session, m->owner, m->reason);
		break;
	case PROTO_EV_END:
		proto_put_ev_end(&b, m->table, m->seq, m->count);
		break;
	case PROTO_EV_OWNER_GONE:
		proto_put_ev_owner_gone(&b, m->table, m->seq, m->owner_session,
		    m->owner, m->reason, m->count);
		break;
	default:
		buf_free(&b);
		return;
	}
	if (buf_failed(&b) || b.len != len || memcmp(b.data, frame, len) != 0)
		abort();
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_msg	 m;
	struct proto_bytes	 rows, row;
	const char		*why;
	size_t			 n;
	uint16_t		 nf;
	int			 strict;

	while (size > 0) {
		/* A small limit too, so the fuzzer reaches the limit path. */
		if (proto_frame_check(data, size, size > 64 ? 4096 : 64,
		    &n) != 1)
			break;
		strict = proto_decode(data, n, &m, &why);
		if (strict == 0) {
			if (m.fields.p != NULL)
				check_fields(m.fields, m.nfields);
			rows = m.rows;
			while (proto_rows_next(&rows, &row))
				if (proto_fields_check(row.p, row.len, &nf,
				    &why) != 0)
					abort();
			reencode(data, n, &m);
		} else if (why == NULL)
			abort();
		/* The client's decoder: accepts all the strict one does
		 * (and names it does not check), and what it accepts lies
		 * inside the frame and walks to its ends just the same. */
		if (proto_decode_trusted(data, n, &m, &why) == 0) {
			if (m.fields.p != NULL)
				check_fields(m.fields, m.nfields);
			reencode(data, n, &m);
		} else if (strict == 0 || why == NULL)
			abort();
		data += n;
		size -= n;
	}
	return 0;
}
