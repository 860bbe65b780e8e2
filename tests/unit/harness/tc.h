/*
 * tc: the test clients of the unit tests that drive the daemon's own
 * objects (test_table.c, test_feed.c). Each client is one end of a
 * socketpair whose other end is a real ispd session, made by
 * session_new() and driven by the real loop (loop_once(0)). A client
 * writes encoded frames and decodes what the session wrote back with
 * proto_decode(), so the whole path is exercised: framing, dispatch,
 * the tables, subscriptions and queues.
 *
 * "Nothing was sent" is checked by a PING: its PONG must be the very
 * next frame, since a session answers in order.
 *
 * Every function fails the running cmocka test on anything unexpected.
 * The clients live from tc_setup() to tc_teardown(), cmocka's setup and
 * teardown of each test, TC_MAX_CLIENTS at the most.
 */
#ifndef ISP_TC_H
#define ISP_TC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "proto.h"

/* A C string as the codec's bytes. */
#define PB(s)		proto_bytes((s), strlen(s))
#define TC_MAX_CLIENTS	8

struct session;
struct tc_view;

/* One test client: our end of the socket, and the session at the other. */
struct tc {
	int		 fd;		/* -1 once hung up */
	struct session	*s;
	uint64_t	 id;		/* the session's id */
	struct buf	 in;		/* bytes read, not yet decoded */
	uint8_t		*frame;	/* the frame last decoded; msg points here */
	struct proto_msg msg;
	uint32_t	 next_req;	/* the req_id last used */
	uint64_t	 next_token;	/* the PING token last used */
	/* What a test keeps of the events the client read, defined by that
	 * test (test_feed.c): NULL, or one block that tc_teardown() frees. */
	struct tc_view	*view;
};

/* cmocka's setup of a test: the loop, the tables, a hold time far
 * longer than any test (those about it move time themselves), no
 * clients. */
int		 tc_setup(void **);
/* cmocka's teardown: every session, table and subscription freed, then
 * the loop, then the clients' ends and buffers. */
int		 tc_teardown(void **);

/* Three turns of the loop, none of them waiting. */
void		 tc_pump(void);

/* A client whose session has had no HELLO yet. With sndbuf > 0, the
 * session's socket sends through a buffer of that many bytes, so that a
 * client that does not read fills the session's queue quickly. */
struct tc	*tc_connect(int sndbuf);
/* Says HELLO as name and checks the WELCOME; returns c. */
struct tc	*tc_welcome(struct tc *c, const char *name);
/* A welcomed client named name. */
struct tc	*tc_new(const char *name);
/* The client hangs up; the session ends at the next loop turn. */
void		 tc_hangup(struct tc *);

/* Writes b whole, turning the loop while the socket is full, and
 * empties b. */
void		 tc_write(struct tc *, struct buf *b);
/* Reads what is there, at most max bytes (0: all). Returns 0 at EOF,
 * else 1. */
int		 tc_fill(struct tc *, size_t max);
/* Decodes the next frame the session sent into c->msg, turning the loop
 * while none is there (tc_pump(), 100 times at the most). Returns 1, or
 * 0 when none came (or EOF). */
int		 tc_next(struct tc *c);
/* The next frame, of type type. */
const struct proto_msg *tc_expect(struct tc *, uint8_t type);
/* Sends a PING of the next token; returns the token. */
uint64_t	 tc_ping(struct tc *);
/* The session sent nothing more: a PING's PONG comes next. */
void		 tc_expect_nothing(struct tc *);
/* The session closes (within 50 tc_pump()s), leaving no bytes that were
 * not decoded. */
void		 tc_expect_eof(struct tc *);
/* The next frame is an ERROR of code for req_id. */
void		 tc_expect_error(struct tc *, uint32_t req_id, int code);

/* A fields block of one field, name=value, built in fb (initialized
 * here, freed by the caller). */
struct proto_bytes tc_fields1(struct buf *fb, const char *name,
		    const char *value);
/* Queues in b an ANNOUNCE from c of one field, name=value; returns its
 * req_id. The caller writes b. */
uint32_t	 tc_put_announce(struct tc *c, struct buf *b, const char *table,
		    const char *key, uint32_t ttl_s, const char *name,
		    const char *value);
/* Sends an ANNOUNCE of one field, name=value; returns its req_id. */
uint32_t	 tc_announce_field(struct tc *, const char *table,
		    const char *key, uint32_t ttl_s, const char *name,
		    const char *value);
/* The same of the field contact, as a SIP registration has. */
uint32_t	 tc_announce(struct tc *, const char *table, const char *key,
		    const char *contact, uint32_t ttl_s);
/* Sends a WITHDRAW; returns its req_id. */
uint32_t	 tc_withdraw(struct tc *, const char *table, const char *key);
/* Sends a SUBSCRIBE; returns its req_id. */
uint32_t	 tc_subscribe(struct tc *, const char *table,
		    const char *prefix, uint8_t flags);

#endif
