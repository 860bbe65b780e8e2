/*
 * Writes the seed corpus of fuzz_proto: one valid frame of each type,
 * into the directory given. Run by `make fuzz-seeds`; the output is
 * committed in tests/fuzz/corpus/proto.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static const char	*dir;
static int		 n;

static void
save(struct buf *b)
{
	char	 path[512];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/seed-%02d", dir, n++);
	if ((f = fopen(path, "wb")) == NULL ||
	    fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	b->len = 0;
}

int
main(int argc, char **argv)
{
	struct proto_bytes	 t = proto_bytes("SIP_REGISTRATION", 16);
	struct proto_bytes	 k = proto_bytes("alice@example.com|1", 19);
	struct proto_bytes	 o = proto_bytes("bgw-1", 5);
	struct buf		 b, f;
	uint8_t			 nonce[PROTO_NONCE_BYTES];
	size_t			 s;

	if (argc != 2) {
		fprintf(stderr, "usage: seeds DIR\n");
		return 2;
	}
	dir = argv[1];
	buf_init(&b);
	buf_init(&f);
	s = proto_fields_begin(&f);
	proto_put_field(&f, "contact", 7, "sip:alice@192.0.2.1:5060", 24);
	proto_put_field(&f, "expires", 7, "1790000000", 10);
	proto_fields_end(&f, s, 2);

	proto_put_hello(&b, PROTO_VERSION, 0, "bgw-1");
	save(&b);
	proto_put_welcome(&b, PROTO_VERSION, 0, 9000, 1, "ispd");
	save(&b);
	proto_put_error(&b, 3, 9, "record is owned by session 2 (bgw-2)");
	save(&b);
	proto_put_ping(&b, PROTO_PING, 1);
	save(&b);
	proto_put_ping(&b, PROTO_PONG, 1);
	save(&b);
	proto_put_bye(&b, 15, "ispd shutting down");
	save(&b);
	proto_put_announce(&b, 1, t, 60, k, proto_bytes(f.data, f.len));
	save(&b);
	proto_put_withdraw(&b, 2, t, k);
	save(&b);
	proto_put_subscribe(&b, 3, t, 0, proto_bytes("alice", 5));
	save(&b);
	proto_put_unsubscribe(&b, 4, t);
	save(&b);
	proto_put_query(&b, 5, PROTO_QUERY_TABLES);
	save(&b);
	proto_put_end_of_replay(&b, 6);
	save(&b);
	proto_put_ev_record(&b, PROTO_EV_ANNOUNCE, t, 7, k, 1, o,
	    proto_bytes(f.data, f.len));
	save(&b);
	proto_put_ev_record(&b, PROTO_EV_REPLACE, t, 8, k, 2, o,
	    proto_bytes(f.data, f.len));
	save(&b);
	proto_put_ev_withdraw(&b, t, 9, k, 2, o, PROTO_WD_SESSION);
	save(&b);
	proto_put_ev_end(&b, t, 9, 1);
	save(&b);
	s = proto_rows_begin(&b, 6);
	buf_put(&b, f.data, f.len);
	buf_put(&b, f.data, f.len);
	proto_rows_end(&b, s, 2);
	save(&b);
	/* Several frames in one input, as a socket delivers them. */
	proto_put_hello(&b, PROTO_VERSION, 0, "bgw-1");
	proto_put_announce(&b, 1, t, 0, k, proto_bytes(f.data, f.len));
	proto_put_ping(&b, PROTO_PING, 2);
	save(&b);
	/* Authentication (added after the others, so their files keep
	 * their names). */
	memset(nonce, 0x42, sizeof(nonce));
	proto_put_challenge(&b, PROTO_AUTH_HMAC_SHA256, nonce);
	save(&b);
	proto_put_auth(&b, PROTO_AUTH_HMAC_SHA256, nonce, nonce);
	save(&b);
	/* ADMIN, the operator controls. */
	proto_put_admin_kick(&b, 7, 42);
	save(&b);
	proto_put_admin_evict(&b, 8, t, k);
	save(&b);
	proto_put_admin_drop(&b, 9, t);
	save(&b);
	proto_put_admin_held(&b, 10, 0, proto_bytes("", 0));
	save(&b);
	proto_put_admin_held(&b, 11, 42, t);
	save(&b);
	/* An owner's end as one event, and the flag that asks for it. */
	proto_put_ev_owner_gone(&b, t, 10, 2, o, PROTO_WD_SESSION, 1);
	save(&b);
	proto_put_subscribe(&b, 7, t, PROTO_SUB_OWNER_GONE, proto_bytes("", 0));
	save(&b);
	buf_free(&b);
	buf_free(&f);
	return 0;
}
