/*
 * tc: test clients on socketpairs, the other end a real ispd session
 * (tc.h).
 */
#include <sys/socket.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ispd.h"
#include "tc.h"

static struct tc	 clients[TC_MAX_CLIENTS];
static int		 nclients;

int
tc_setup(void **state)
{
	log_init(LOG_LEVEL_WARN);
	settings_defaults();
	loop_init();
	table_init();
	/* Tests take far less; the hold test moves time itself. */
	ispd_conf.hold_ms = 600000;
	nclients = 0;
	return 0;
}

int
tc_teardown(void **state)
{
	int	 i;

	session_shutdown_all();
	table_free_all();
	subscr_free_all();
	stats_free();
	loop_free();
	for (i = 0; i < nclients; i++) {
		if (clients[i].fd != -1)
			close(clients[i].fd);
		buf_free(&clients[i].in);
		free(clients[i].frame);
		free(clients[i].view);
	}
	nclients = 0;
	return 0;
}

void
tc_pump(void)
{
	int	 i;

	for (i = 0; i < 3; i++)
		loop_once(0);
}

struct tc *
tc_connect(int sndbuf)
{
	struct tc	*c;
	int		 sv[2];

	assert_true(nclients < TC_MAX_CLIENTS);
	c = &clients[nclients++];
	memset(c, 0, sizeof(*c));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
	if (sndbuf > 0)
		assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF,
		    &sndbuf, sizeof(sndbuf)), 0);
	c->s = session_new(sv[0], "unix:test");
	assert_non_null(c->s);
	c->id = c->s->owner.id;
	c->fd = sv[1];
	buf_init(&c->in);
	return c;
}

struct tc *
tc_welcome(struct tc *c, const char *name)
{
	struct buf	 b;

	buf_init(&b);
	proto_put_hello(&b, PROTO_VERSION, 0, name);
	tc_write(c, &b);
	buf_free(&b);
	tc_expect(c, PROTO_WELCOME);
	assert_int_equal(c->msg.version, PROTO_VERSION);
	assert_true(c->msg.session_id == c->id);
	assert_int_equal(c->msg.hold_ms, ispd_conf.hold_ms);
	return c;
}

struct tc *
tc_new(const char *name)
{
	return tc_welcome(tc_connect(0), name);
}

void
tc_hangup(struct tc *c)
{
	close(c->fd);
	c->fd = -1;
	tc_pump();
}

void
tc_write(struct tc *c, struct buf *b)
{
	size_t	 off = 0;
	ssize_t	 n;

	assert_false(buf_failed(b));
	while (off < b->len) {
		n = write(c->fd, b->data + off, b->len - off);
		if (n == -1 && errno == EAGAIN) {
			tc_pump();
			continue;
		}
		assert_true(n > 0);
		off += (size_t)n;
	}
	b->len = 0;
}

int
tc_fill(struct tc *c, size_t max)
{
	uint8_t	 tmp[65536];
	size_t	 got = 0, want;
	ssize_t	 n;

	for (;;) {
		want = sizeof(tmp);
		if (max > 0 && max - got < want)
			want = max - got;
		if (want == 0)
			return 1;
		n = read(c->fd, tmp, want);
		if (n > 0) {
			buf_put(&c->in, tmp, (size_t)n);
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			return 0;
		assert_true(errno == EAGAIN);
		return 1;
	}
}

int
tc_next(struct tc *c)
{
	const char	*why;
	size_t		 n;
	int		 round, open = 1;

	for (round = 0; round < 100; round++) {
		if (proto_frame_check(c->in.data, c->in.len,
		    PROTO_MAX_FRAME_BYTES, &n) == 1) {
			free(c->frame);
			c->frame = malloc(n);
			assert_non_null(c->frame);
			memcpy(c->frame, c->in.data, n);
			buf_consume(&c->in, n);
			assert_int_equal(proto_decode(c->frame, n, &c->msg,
			    &why), 0);
			return 1;
		}
		if (!open)
			return 0;
		tc_pump();
		open = tc_fill(c, 0);
	}
	return 0;
}

const struct proto_msg *
tc_expect(struct tc *c, uint8_t type)
{
	assert_true(tc_next(c));
	if (c->msg.type != type)
		fail_msg("expected %s, got %s", proto_type_name(type),
		    proto_type_name(c->msg.type));
	return &c->msg;
}

uint64_t
tc_ping(struct tc *c)
{
	struct buf	 b;
	uint64_t	 token = ++c->next_token;

	buf_init(&b);
	proto_put_ping(&b, PROTO_PING, token);
	tc_write(c, &b);
	buf_free(&b);
	return token;
}

void
tc_expect_nothing(struct tc *c)
{
	uint64_t	 token = tc_ping(c);

	tc_expect(c, PROTO_PONG);
	assert_int_equal(c->msg.token, token);
}

void
tc_expect_eof(struct tc *c)
{
	int	 i;

	for (i = 0; i < 50; i++) {
		tc_pump();
		if (tc_fill(c, 0) == 0) {
			assert_int_equal(c->in.len, 0);
			return;
		}
	}
	fail_msg("the session did not close");
}

void
tc_expect_error(struct tc *c, uint32_t req_id, int code)
{
	tc_expect(c, PROTO_ERROR);
	if (c->msg.code != code)
		fail_msg("expected error %d, got %d: %.*s", code, c->msg.code,
		    (int)c->msg.text.len, (const char *)c->msg.text.p);
	assert_int_equal(c->msg.req_id, req_id);
}

struct proto_bytes
tc_fields1(struct buf *fb, const char *name, const char *value)
{
	size_t	 s;

	buf_init(fb);
	s = proto_fields_begin(fb);
	proto_put_field(fb, name, strlen(name), value, strlen(value));
	proto_fields_end(fb, s, 1);
	return proto_bytes(fb->data, fb->len);
}

uint32_t
tc_put_announce(struct tc *c, struct buf *b, const char *table,
    const char *key, uint32_t ttl_s, const char *name, const char *value)
{
	struct buf	 fb;
	uint32_t	 req = ++c->next_req;

	proto_put_announce(b, req, PB(table), ttl_s, PB(key),
	    tc_fields1(&fb, name, value));
	buf_free(&fb);
	return req;
}

uint32_t
tc_announce_field(struct tc *c, const char *table, const char *key,
    uint32_t ttl_s, const char *name, const char *value)
{
	struct buf	 b;
	uint32_t	 req;

	buf_init(&b);
	req = tc_put_announce(c, &b, table, key, ttl_s, name, value);
	tc_write(c, &b);
	buf_free(&b);
	return req;
}

uint32_t
tc_announce(struct tc *c, const char *table, const char *key,
    const char *contact, uint32_t ttl_s)
{
	return tc_announce_field(c, table, key, ttl_s, "contact", contact);
}

uint32_t
tc_withdraw(struct tc *c, const char *table, const char *key)
{
	struct buf	 b;
	uint32_t	 req = ++c->next_req;

	buf_init(&b);
	proto_put_withdraw(&b, req, PB(table), PB(key));
	tc_write(c, &b);
	buf_free(&b);
	return req;
}

uint32_t
tc_subscribe(struct tc *c, const char *table, const char *prefix,
    uint8_t flags)
{
	struct buf	 b;
	uint32_t	 req = ++c->next_req;

	buf_init(&b);
	proto_put_subscribe(&b, req, PB(table), flags, PB(prefix));
	tc_write(c, &b);
	buf_free(&b);
	return req;
}
