/*
 * Writes the seed corpus of fuzz_session into the directory given: whole
 * client sessions, realistic ones (a gateway registering, refreshing and
 * withdrawing; a watcher subscribing; an operator querying; a gateway
 * lost and back, replaying for graceful restart) and broken ones
 * (requests before HELLO, wrong versions, garbage, malformed and
 * truncated frames). Each file is one flag byte (see fuzz_session.c)
 * followed by the bytes the client sends, RECONNECT between the
 * sessions of a client that comes back. Run by `make fuzz-seeds`; the
 * output is committed in tests/fuzz/corpus/session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* The flags of fuzz_session.c. */
#define F_HELLO		0x01
#define F_PEER		0x02
#define F_CHUNKS	0x04
#define F_SLOW		0x08
#define F_EXPIRE	0x10
#define F_BIGCHUNK	0x20
#define END_HOLD	(1 << 6)
#define END_ABORT	(2 << 6)
#define END_SHUTDOWN	(3 << 6)

#define PB(s)		proto_bytes((s), strlen(s))
#define T		PB("SIP_REGISTRATION")
#define SESSIONS	PB("ispd.sessions")
/* The key fuzz_session's watching peer owns, its fields' one field, and
 * its name. */
#define PEER_KEY	PB("alice@example.com|1")
#define PEER_CONTACT	"sip:alice@192.0.2.9:5060"
#define PEER_NAME	"watcher"
/* Graceful tables besides T (fuzz_session's GRACE_PREFIX), and one that
 * is not. */
#define GT		PB("graceful.presence")
#define OTHER		PB("OTHER")
/* Between the sessions of a client that is lost and comes back. */
#define RECONNECT	"~RECONNECT~"

static const char	*dir;
static struct buf	 b;
static struct buf	 contact1, contact2, empty;

static void
save(const char *name, uint8_t flags)
{
	char	 path[512];
	FILE	*f;

	if (buf_failed(&b)) {
		fprintf(stderr, "seeds_session: out of memory\n");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL || fputc(flags, f) == EOF ||
	    fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	b.len = 0;
}

static void
fields(struct buf *f, const char *contact, const char *expires)
{
	size_t	 s;

	buf_init(f);
	s = proto_fields_begin(f);
	proto_put_field(f, "contact", 7, contact, strlen(contact));
	proto_put_field(f, "expires", 7, expires, strlen(expires));
	proto_put_field(f, "path", 4, "<sip:edge-1;lr>", 15);
	proto_fields_end(f, s, 3);
}

static void
announce(uint32_t req, struct proto_bytes table, const char *key,
    uint32_t ttl, const struct buf *f)
{
	proto_put_announce(&b, req, table, ttl, PB(key),
	    proto_bytes(f->data, f->len));
}

/* A frame of a type with a raw payload, for what the encoders refuse to
 * make. */
static void
raw(uint8_t type, const void *payload, size_t len)
{
	size_t	 s = proto_begin(&b, type);

	buf_put(&b, payload, len);
	proto_end(&b, s);
}

static void
good(void)
{
	char	 key[64];
	int	 i;

	/* A gateway registers three users, one without TTL, and pings. */
	proto_put_hello(&b, PROTO_VERSION, 0, "bgw-1");
	announce(1, T, "alice@example.com|1", 3600, &contact1);
	announce(2, T, "bob@example.com|1", 60, &contact1);
	announce(3, T, "carol@example.com|1", 0, &contact2);
	proto_put_ping(&b, PROTO_PING, 1);
	save("register", 0);

	/* Replace, identical refresh, withdraw, withdraw again. */
	proto_put_hello(&b, PROTO_VERSION, 0, "bgw-1");
	announce(1, T, "alice@example.com|1", 3600, &contact1);
	announce(2, T, "alice@example.com|1", 3600, &contact2);
	announce(3, T, "alice@example.com|1", 3600, &contact2);
	announce(4, T, "alice@example.com|1", 0, &contact2);
	proto_put_withdraw(&b, 5, T, PB("alice@example.com|1"));
	proto_put_withdraw(&b, 6, T, PB("alice@example.com|1"));
	proto_put_withdraw(&b, 7, PB("NO_SUCH_TABLE"), PB("x"));
	proto_put_ping(&b, PROTO_PING, 2);
	save("replace-withdraw", 0);

	/* A watcher: subscribe, twice, see its own announce, unsubscribe. */
	proto_put_subscribe(&b, 1, T, 0, PB(""));
	proto_put_subscribe(&b, 2, T, 0, PB("alice"));
	announce(3, T, "alice@example.com|2", 0, &contact1);
	announce(4, T, "zed@example.com|1", 0, &contact1);
	proto_put_unsubscribe(&b, 5, T);
	proto_put_unsubscribe(&b, 6, T);
	proto_put_subscribe(&b, 7, T, 0, PB("alice"));
	proto_put_withdraw(&b, 8, T, PB("alice@example.com|2"));
	proto_put_ping(&b, PROTO_PING, 3);
	save("subscribe", F_HELLO);

	/* An operator: one-shot reads and queries. */
	proto_put_hello(&b, PROTO_VERSION, 0, "ispctl");
	proto_put_subscribe(&b, 1, SESSIONS, PROTO_SUB_ONCE, PB(""));
	proto_put_subscribe(&b, 2, PB("NOT_THERE"), PROTO_SUB_ONCE, PB(""));
	proto_put_subscribe(&b, 3, T, PROTO_SUB_ONCE, PB("alice"));
	proto_put_query(&b, 4, PROTO_QUERY_TABLES);
	proto_put_query(&b, 5, PROTO_QUERY_STATS);
	proto_put_query(&b, 6, 9);
	proto_put_ping(&b, PROTO_PONG, 4);
	proto_put_ping(&b, PROTO_PING, 5);
	proto_put_bye(&b, 0, "done");
	save("operator", 0);

	/* Operator controls: evict the peer's record and a missing one,
	 * kick the peer, an unknown session, and this one itself. */
	proto_put_admin_evict(&b, 1, T, PB("alice@example.com|1"));
	proto_put_admin_evict(&b, 2, T, PB("nobody"));
	proto_put_admin_evict(&b, 3, SESSIONS, PB("1"));
	proto_put_admin_kick(&b, 4, 1);
	proto_put_admin_kick(&b, 5, 999);
	announce(6, T, "alice@example.com|1", 0, &contact1);
	proto_put_admin_kick(&b, 7, 2);
	save("admin", F_HELLO);

	/* Drop a table with a subscriber, a missing one and ispd.sessions;
	 * list what is held, from the start and after a row. */
	proto_put_subscribe(&b, 1, T, 0, PB(""));
	announce(2, T, "alice@example.com|1", 0, &contact1);
	proto_put_admin_held(&b, 3, 0, PB(""));
	proto_put_admin_held(&b, 4, 1, T);
	proto_put_admin_drop(&b, 5, T);
	proto_put_admin_drop(&b, 6, T);
	proto_put_admin_drop(&b, 7, SESSIONS);
	announce(8, T, "alice@example.com|2", 0, &contact1);
	save("admin-drop", F_HELLO);

	/* Against the peer's record: not the owner, then take it over. */
	proto_put_hello(&b, PROTO_VERSION, 0, "bgw-2");
	proto_put_withdraw(&b, 1, T, PEER_KEY);
	proto_put_announce(&b, 2, T, 0, PEER_KEY,
	    proto_bytes(contact2.data, contact2.len));
	proto_put_withdraw(&b, 3, T, PEER_KEY);
	announce(4, T, "bob@example.com|1", 0, &contact1);
	proto_put_bye(&b, 0, "bye");
	save("takeover", F_PEER);

	/* TTLs, some of which run out (fuzz_session expires up to 120 s). */
	proto_put_hello(&b, PROTO_VERSION, 0, "bgw-3");
	announce(1, T, "a|1", 1, &contact1);
	announce(2, T, "b|1", 60, &contact1);
	announce(3, T, "c|1", 600, &contact1);
	announce(4, T, "a|1", 1, &contact1);
	announce(5, T, "c|1", 0, &contact1);
	announce(6, T, "d|1", 30, &empty);
	proto_put_announce(&b, 7, T, 5, PEER_KEY,
	    proto_bytes(contact1.data, contact1.len));
	proto_put_ping(&b, PROTO_PING, 6);
	save("ttl", F_PEER | F_EXPIRE);

	/* Silent after its requests: ended by the hold time. */
	proto_put_hello(&b, PROTO_VERSION, 0, "bgw-4");
	announce(1, T, "e|1", 0, &contact1);
	proto_put_subscribe(&b, 2, T, 0, PB(""));
	save("hold", F_PEER | END_HOLD);

	/* Byte by byte, then in odd pieces: frames split anywhere. */
	announce(1, T, "f|1", 0, &contact1);
	proto_put_ping(&b, PROTO_PING, 7);
	announce(2, T, "f|1", 0, &contact2);
	save("bytewise", F_HELLO | F_CHUNKS);
	announce(1, T, "g|1", 0, &contact1);
	proto_put_subscribe(&b, 2, T, 0, PB("g"));
	proto_put_withdraw(&b, 3, T, PB("g|1"));
	save("pieces", F_HELLO | F_CHUNKS | F_BIGCHUNK | F_EXPIRE);

	/* A slow reader of a busy table: output queues up. */
	proto_put_hello(&b, PROTO_VERSION, 0, "slow");
	proto_put_subscribe(&b, 1, T, 0, PB(""));
	for (i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "user%03d@example.com|1", i);
		announce((uint32_t)(i + 2), T, key, 0, &contact1);
	}
	proto_put_query(&b, 300, PROTO_QUERY_TABLES);
	save("slow", F_PEER | F_SLOW | F_CHUNKS | F_BIGCHUNK);
	/* A watcher behind while keys are created, changed, withdrawn and
	 * created again: its catch-up must end on the table's state. */
	proto_put_hello(&b, PROTO_VERSION, 0, "churn");
	for (i = 0; i < 150; i++) {
		snprintf(key, sizeof(key), "churn%03d|1", i);
		announce((uint32_t)i, T, key, 0, &contact1);
	}
	for (i = 0; i < 150; i += 2) {
		snprintf(key, sizeof(key), "churn%03d|1", i);
		announce((uint32_t)(200 + i), T, key, 60, &contact2);
	}
	for (i = 0; i < 150; i += 3) {
		snprintf(key, sizeof(key), "churn%03d|1", i);
		proto_put_withdraw(&b, (uint32_t)(400 + i), T, PB(key));
	}
	for (i = 0; i < 150; i += 9) {
		snprintf(key, sizeof(key), "churn%03d|1", i);
		announce((uint32_t)(600 + i), T, key, 0, &contact1);
	}
	proto_put_withdraw(&b, 999, T, PEER_KEY);
	proto_put_announce(&b, 1000, T, 0, PEER_KEY,
	    proto_bytes(contact2.data, contact2.len));
	save("slow-churn", F_PEER | F_SLOW | F_EXPIRE);
	/* The same reader gone with its output unread; and the daemon
	 * shutting down under it. */
	proto_put_hello(&b, PROTO_VERSION, 0, "slow");
	proto_put_subscribe(&b, 1, T, 0, PB(""));
	for (i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "user%03d@example.com|1", i);
		announce((uint32_t)(i + 2), T, key, 0, &contact1);
	}
	save("slow-abort", F_PEER | F_SLOW | END_ABORT);
	proto_put_hello(&b, PROTO_VERSION, 0, "bgw-5");
	announce(1, T, "s|1", 0, &contact1);
	proto_put_subscribe(&b, 2, T, 0, PB(""));
	proto_put_ping(&b, PROTO_PING, 10);
	save("shutdown", F_PEER | END_SHUTDOWN);
	announce(1, T, "s|2", 0, &contact1);
	save("shutdown-new", END_SHUTDOWN);
}

static void
reconnect(void)
{
	buf_put(&b, RECONNECT, strlen(RECONNECT));
}

/* A gateway's records in graceful tables (T, GT) and one not (OTHER). */
static void
gateway(const char *name)
{
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, name);
	announce(1, T, "a|1", 0, &contact1);
	announce(2, T, "b|1", 0, &contact1);
	announce(3, T, "c|1", 0, &contact1);
	announce(4, T, "d|1", 600, &contact1);
	announce(5, GT, "p|1", 0, &contact2);
	announce(6, OTHER, "o|1", 0, &contact1);
	proto_put_ping(&b, PROTO_PING, 1);
}

/*
 * Graceful restart: a session that ends without BYE is lost, and its
 * records in graceful tables are held for its client; the client's next
 * session (after RECONNECT) takes them back by announcing them again,
 * withdraws them, or has the rest withdrawn by END_OF_REPLAY, else the
 * grace time ends them.
 */
static void
graceful(void)
{
	struct buf	 peer;
	size_t		 s;
	char		 key[64];
	int		 i;

	/* Lost at the end: the watcher sees OTHER's record go and the
	 * held ones stay, then go when the grace time ends. */
	gateway("bgw-1");
	save("lost", F_PEER);
	gateway("bgw-1");
	save("lost-abort", F_PEER | END_ABORT);
	gateway("bgw-1");
	save("lost-hold", F_PEER | END_HOLD);
	gateway("bgw-1");
	proto_put_bye(&b, 0, "bye");
	save("bye-not-lost", F_PEER);

	/* Back: identical (no event), changed (EV_REPLACE), withdrawn
	 * while held, the rest withdrawn by END_OF_REPLAY; a second
	 * END_OF_REPLAY finds nothing held. */
	gateway("bgw-1");
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	proto_put_subscribe(&b, 1, T, 0, PB(""));
	announce(2, T, "a|1", 0, &contact1);
	announce(3, T, "b|1", 0, &contact2);
	proto_put_withdraw(&b, 4, T, PB("c|1"));
	announce(5, T, "d|1", 600, &contact1);
	announce(6, OTHER, "o|1", 0, &contact1);
	proto_put_end_of_replay(&b, 7);
	announce(8, T, "e|1", 0, &contact1);
	proto_put_end_of_replay(&b, 9);
	proto_put_query(&b, 10, PROTO_QUERY_STATS);
	proto_put_ping(&b, PROTO_PING, 2);
	save("replay", F_PEER);

	/* Back, without END_OF_REPLAY: the grace time ends with the new
	 * session and the watcher there. */
	gateway("bgw-1");
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "a|1", 0, &contact1);
	announce(2, GT, "p|1", 60, &contact2);
	proto_put_query(&b, 3, PROTO_QUERY_STATS);
	save("replay-expire", F_PEER | F_EXPIRE);

	/* Held records with TTLs that run out while held. */
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "t|1", 1, &contact1);
	announce(2, T, "t|2", 30, &contact1);
	announce(3, T, "t|3", 0, &contact1);
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "t|3", 5, &contact1);
	proto_put_withdraw(&b, 2, T, PB("t|2"));
	save("replay-ttl", F_PEER | F_EXPIRE);

	/* Another client: no takeover (EV_REPLACE), not the owner of
	 * what is held, nothing held for it at END_OF_REPLAY. */
	gateway("bgw-1");
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-9");
	announce(1, T, "a|1", 0, &contact1);
	proto_put_withdraw(&b, 2, T, PB("b|1"));
	proto_put_end_of_replay(&b, 3);
	proto_put_ping(&b, PROTO_PING, 3);
	save("replay-other-client", F_PEER);

	/* Lost twice: the second lost session's records join the held
	 * set the first left (it keeps its deadline); the third session
	 * ends it. */
	gateway("bgw-1");
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "a|1", 0, &contact1);
	announce(2, T, "x|1", 0, &contact1);
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "x|1", 0, &contact1);
	proto_put_end_of_replay(&b, 2);
	proto_put_ping(&b, PROTO_PING, 4);
	save("replay-lost-twice", F_PEER);

	/* All taken back, then lost again: the empty held set starts
	 * again; the last session ends by the hold time. */
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "a|1", 0, &contact1);
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "a|1", 0, &contact1);
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "a|1", 0, &contact2);
	save("replay-refill", F_PEER | END_HOLD);

	/* With fuzz_session's HELLO (bgw-1) before each part, in pieces;
	 * the first session said BYE, so nothing was held. */
	announce(1, T, "g|1", 0, &contact1);
	announce(2, T, "h|1", 0, &contact1);
	reconnect();
	announce(1, T, "g|1", 0, &contact1);
	proto_put_end_of_replay(&b, 2);
	reconnect();
	announce(1, T, "h|1", 0, &contact1);
	proto_put_bye(&b, 0, "bye");
	reconnect();
	announce(1, T, "h|1", 0, &contact1);
	proto_put_end_of_replay(&b, 2);
	save("replay-pieces", F_HELLO | F_PEER | F_CHUNKS | F_BIGCHUNK);

	/* Many held, a slow watcher, half taken back; then shutdown. */
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "r%03d|1", i);
		announce((uint32_t)i, T, key, 0, &contact1);
	}
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	for (i = 0; i < 100; i += 2) {
		snprintf(key, sizeof(key), "r%03d|1", i);
		announce((uint32_t)i, T, key, 0, i % 4 ? &contact2 :
		    &contact1);
	}
	proto_put_end_of_replay(&b, 999);
	save("replay-slow", F_PEER | F_SLOW);
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "s|1", 0, &contact1);
	announce(2, GT, "s|1", 0, &contact1);
	reconnect();
	proto_put_hello(&b, PROTO_VERSION, PROTO_CAP_REPLAY, "bgw-1");
	announce(1, T, "s|1", 0, &contact1);
	save("replay-shutdown", F_PEER | END_SHUTDOWN);

	/* A session of the watcher's client: in a graceful table it takes
	 * the watcher's record over without an event. */
	buf_init(&peer);
	s = proto_fields_begin(&peer);
	proto_put_field(&peer, "contact", 7, PEER_CONTACT,
	    strlen(PEER_CONTACT));
	proto_fields_end(&peer, s, 1);
	proto_put_hello(&b, PROTO_VERSION, 0, PEER_NAME);
	proto_put_announce(&b, 1, T, 0, PEER_KEY,
	    proto_bytes(peer.data, peer.len));
	proto_put_ping(&b, PROTO_PING, 5);
	save("same-client", F_PEER);
	buf_free(&peer);

	/* END_OF_REPLAY with nothing held, malformed, before HELLO. */
	proto_put_end_of_replay(&b, 1);
	raw(PROTO_END_OF_REPLAY, "\0\0\0\2\0", 5);
	proto_put_ping(&b, PROTO_PING, 6);
	raw(PROTO_END_OF_REPLAY, "\0\0", 2);
	save("end-of-replay", F_HELLO);
	proto_put_end_of_replay(&b, 1);
	save("end-of-replay-first", 0);
}

static void
bad(void)
{
	static const uint8_t	 tls[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
	    0x00, 0x01, 0xfc, 0x03, 0x03 };
	static const uint8_t	 zero[] = { 0, 0, 0, 0, 0x04 };
	uint8_t			 p[64];

	announce(1, T, "x|1", 0, &contact1);
	save("before-hello", 0);

	proto_put_hello(&b, 2, 0, "future");
	save("version", 0);

	proto_put_hello(&b, PROTO_VERSION, 0, "");
	save("empty-name", 0);
	proto_put_hello(&b, PROTO_VERSION, 0, "tab\there");
	save("bad-name", 0);

	proto_put_hello(&b, PROTO_VERSION, 0, "again");
	save("hello-twice", F_HELLO);

	buf_put(&b, zero, sizeof(zero));
	save("length-zero", F_HELLO);

	buf_put(&b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	save("http", 0);
	buf_put(&b, tls, sizeof(tls));
	save("tls", F_HELLO);

	/* Unknown type: answered, and the session goes on. */
	raw(0x7f, "??", 2);
	proto_put_ping(&b, PROTO_PING, 8);
	save("unknown-type", F_HELLO);

	/* A server-only frame from a client. */
	proto_put_ev_end(&b, T, 1, 0);
	save("server-frame", F_HELLO);

	/* Members out of their limits: answered, the session goes on. */
	announce(1, PB("bad table!"), "k", 0, &contact1);
	proto_put_announce(&b, 2, T, 0, PB(""),
	    proto_bytes(contact1.data, contact1.len));
	announce(3, SESSIONS, "1", 0, &contact1);
	proto_put_withdraw(&b, 4, SESSIONS, PB("1"));
	proto_put_subscribe(&b, 5, T, 0x80, PB(""));
	/* A field name with '=' in it. */
	p[0] = 0;
	p[1] = 1;
	p[2] = 3;
	memcpy(p + 3, "a=b", 3);
	memset(p + 6, 0, 4);
	proto_put_announce(&b, 6, T, 0, PB("k"), proto_bytes(p, 10));
	proto_put_ping(&b, PROTO_PING, 9);
	save("bad-members", F_HELLO);

	/* A PING one byte short, then one with a byte left over. */
	raw(PROTO_PING, "\0\0\0\0\0\0\0", 7);
	save("short-ping", F_HELLO);
	raw(PROTO_PING, "\0\0\0\0\0\0\0\0\0", 9);
	save("long-ping", F_HELLO);

	/* An ANNOUNCE whose key runs past the frame. */
	memcpy(p, "\0\0\0\1\4TEST\0\0\0\0\0\x20k", 16);
	raw(PROTO_ANNOUNCE, p, 16);
	save("truncated-announce", F_HELLO);

	/* The connection ends in the middle of a frame. */
	announce(1, T, "h|1", 0, &contact1);
	b.len -= 5;
	save("partial", F_HELLO);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seeds_session DIR\n");
		return 2;
	}
	dir = argv[1];
	buf_init(&b);
	fields(&contact1, "sip:alice@192.0.2.1:5060", "1790000000");
	fields(&contact2, "sip:alice@198.51.100.7:5060;transport=tcp",
	    "1790000600");
	buf_init(&empty);
	proto_fields_end(&empty, proto_fields_begin(&empty), 0);
	good();
	graceful();
	bad();
	buf_free(&b);
	buf_free(&contact1);
	buf_free(&contact2);
	buf_free(&empty);
	return 0;
}
