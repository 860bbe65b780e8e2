/*
 * The wire protocol from outside libisp: raw frames (built with the
 * shared codec) and raw bytes sent to a real ispd, and a fake server that
 * answers libisp with another protocol version.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto.h"
#include "rawsock.h"
#include "testutil.h"

static void
hello(int fd, struct buf *b, struct buf *rb, uint16_t version)
{
	struct proto_msg	 m;

	proto_put_hello(b, version, 0, "raw");
	raw_send(fd, b);
	if (version != PROTO_VERSION)
		return;
	assert_int_equal(raw_recv(fd, rb, &m, 5000), 1);
	assert_int_equal(m.type, PROTO_WELCOME);
	assert_int_equal(m.version, PROTO_VERSION);
	assert_true(m.hold_ms > 0);
	assert_true(m.session_id > 0);
	raw_next(rb);
}

/* Expects an ERROR with code (and req_id), then, when closes, EOF. */
static void
expect_error(int fd, struct buf *rb, uint32_t req_id, int code, int closes,
    const char *text)
{
	struct proto_msg	 m;
	char			 reason[1100];

	assert_int_equal(raw_recv(fd, rb, &m, 5000), 1);
	assert_int_equal(m.type, PROTO_ERROR);
	assert_int_equal(m.code, code);
	assert_int_equal(m.req_id, req_id);
	snprintf(reason, sizeof(reason), "%.*s", (int)m.text.len,
	    (const char *)m.text.p);
	if (text != NULL && strstr(reason, text) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", reason, text);
	raw_next(rb);
	if (closes)
		assert_int_equal(raw_recv(fd, rb, &m, 5000), 0);
}

/* A session that keeps working: PING gets PONG. */
static void
expect_alive(int fd, struct buf *b, struct buf *rb)
{
	struct proto_msg	 m;

	proto_put_ping(b, PROTO_PING, 4242);
	raw_send(fd, b);
	assert_int_equal(raw_recv(fd, rb, &m, 5000), 1);
	assert_int_equal(m.type, PROTO_PONG);
	assert_int_equal(m.token, 4242);
	raw_next(rb);
}

static void
test_version_mismatch_server(void **state)
{
	struct ispd_proc	 d;
	struct buf		 b, rb;
	int			 fd;

	buf_init(&b);
	buf_init(&rb);
	ispd_start(&d, NULL);
	fd = raw_connect(d.port);
	hello(fd, &b, &rb, 2);
	expect_error(fd, &rb, 0, ISP_E_VERSION, 1, "version 1");
	close(fd);
	/* The operator is told why, in the line of the session's close,
	 * written in the loop turn that queued the ERROR, before it was
	 * sent. */
	assert_true(ispd_log_has(&d, "closing: ispd speaks protocol "
	    "version 1, the client sent version 2"));
	buf_free(&b);
	buf_free(&rb);
	assert_int_equal(ispd_stop(&d), 0);
}

/* A fake server that answers HELLO with a WELCOME of version 9. */
static void *
fake_server(void *arg)
{
	int		 lfd = *(int *)arg, fd;
	struct buf	 b;
	char		 junk[256];

	if ((fd = accept(lfd, NULL, NULL)) == -1)
		return NULL;
	(void)recv(fd, junk, sizeof(junk), 0);
	buf_init(&b);
	proto_put_welcome(&b, 9, 0, 9000, 1, "future");
	(void)send(fd, b.data, b.len, MSG_NOSIGNAL);
	buf_free(&b);
	(void)recv(fd, junk, sizeof(junk), 0);
	close(fd);
	return NULL;
}

static void
test_version_mismatch_client(void **state)
{
	struct sockaddr_in	 sin;
	struct isp_options	 o;
	socklen_t		 len = sizeof(sin);
	pthread_t		 t;
	isp_client		*c;
	char			 addr[64];
	int			 lfd;

	assert_true((lfd = socket(AF_INET, SOCK_STREAM, 0)) != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
	assert_int_equal(pthread_create(&t, NULL, fake_server, &lfd), 0);

	isp_options_init(&o);
	o.server = addr;
	assert_non_null(c = isp_new(&o));
	assert_int_equal(isp_connect(c), ISP_E_VERSION);
	assert_non_null(strstr(isp_errmsg(c), "9"));
	assert_non_null(strstr(isp_errmsg(c), "1"));
	isp_free(c);
	pthread_join(t, NULL);
	close(lfd);
}

static void
test_request_before_hello(void **state)
{
	struct ispd_proc	 d;
	struct buf		 b, rb;
	int			 fd;

	buf_init(&b);
	buf_init(&rb);
	ispd_start(&d, NULL);
	fd = raw_connect(d.port);
	proto_put_withdraw(&b, 1, proto_bytes("T", 1), proto_bytes("k", 1));
	raw_send(fd, &b);
	expect_error(fd, &rb, 0, ISP_E_NOT_READY, 1, NULL);
	close(fd);
	buf_free(&b);
	buf_free(&rb);
	assert_int_equal(ispd_stop(&d), 0);
}

/* Garbage of each kind closes the offending session with a logged
 * reason; a session beside it notices nothing. */
static void
test_garbage(void **state)
{
	static const char	 http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	static const uint8_t	 tls[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
				    0x00, 0x01, 0xfc, 0x03, 0x03 };
	struct ispd_proc	 d;
	struct buf		 b, rb, gb;
	uint8_t			 huge[5];
	int			 good, fd, i;

	buf_init(&b);
	buf_init(&rb);
	buf_init(&gb);
	ispd_start(&d, NULL);
	good = raw_connect(d.port);
	hello(good, &b, &gb, PROTO_VERSION);

	for (i = 0; i < 3; i++) {
		fd = raw_connect(d.port);
		if (i == 0)
			raw_send_bytes(fd, http, sizeof(http) - 1);
		else if (i == 1)
			raw_send_bytes(fd, tls, sizeof(tls));
		else {
			put_be32(huge, 0x7fffffff);
			huge[4] = PROTO_HELLO;
			raw_send_bytes(fd, huge, sizeof(huge));
		}
		/* HTTP and TLS are named as such (and logged at warn); a
		 * frame length past the limit is only that. */
		if (i == 0)
			expect_error(fd, &rb, 0, ISP_E_PROTOCOL, 1,
			    "an HTTP request, not the ispd protocol");
		else if (i == 1)
			expect_error(fd, &rb, 0, ISP_E_PROTOCOL, 1,
			    "a TLS ClientHello, not the ispd protocol");
		else
			expect_error(fd, &rb, 0, ISP_E_FRAME_TOO_LARGE, 1,
			    NULL);
		close(fd);
		rb.len = 0;
		expect_alive(good, &b, &gb);
	}

	/* A malformed frame after the handshake: closed. */
	fd = raw_connect(d.port);
	hello(fd, &b, &rb, PROTO_VERSION);
	{
		uint8_t	 bad[] = { 0, 0, 0, 3, PROTO_WITHDRAW, 0, 0 };

		raw_send_bytes(fd, bad, sizeof(bad));
	}
	expect_error(fd, &rb, 0, ISP_E_PROTOCOL, 1, NULL);
	close(fd);
	expect_alive(good, &b, &gb);
	assert_true(ispd_log_has(&d, "): closing: "));

	/* A truncated frame then silence is only a slow peer: it is the hold
	 * timer's business, and the good session is unaffected. */
	fd = raw_connect(d.port);
	hello(fd, &b, &rb, PROTO_VERSION);
	{
		uint8_t	 part[] = { 0, 0, 0, 40, PROTO_ANNOUNCE, 0 };

		raw_send_bytes(fd, part, sizeof(part));
	}
	expect_alive(good, &b, &gb);
	close(fd);

	close(good);
	buf_free(&b);
	buf_free(&rb);
	buf_free(&gb);
	assert_int_equal(ispd_stop(&d), 0);
}

static void
test_unknown_type_and_bad_members(void **state)
{
	struct ispd_proc	 d;
	struct buf		 b, rb;
	struct proto_msg	 m;
	int			 fd;

	buf_init(&b);
	buf_init(&rb);
	ispd_start(&d, NULL);
	fd = raw_connect(d.port);
	hello(fd, &b, &rb, PROTO_VERSION);

	/* Unknown type: an error, and the session goes on. */
	proto_put_ping(&b, 0x7e, 1);
	raw_send(fd, &b);
	expect_error(fd, &rb, 0, ISP_E_UNKNOWN_TYPE, 0, NULL);
	expect_alive(fd, &b, &rb);

	/* Members out of their limits: an error for that request id. */
	proto_put_withdraw(&b, 31, proto_bytes("no spaces", 9),
	    proto_bytes("k", 1));
	raw_send(fd, &b);
	expect_error(fd, &rb, 31, ISP_E_BAD_TABLE, 0, "table");
	proto_put_withdraw(&b, 32, proto_bytes("T", 1), proto_bytes("", 0));
	raw_send(fd, &b);
	expect_error(fd, &rb, 32, ISP_E_BAD_KEY, 0, "key");
	proto_put_subscribe(&b, 33, proto_bytes("T", 1), 0, proto_bytes("", 0));
	proto_put_subscribe(&b, 34, proto_bytes("T", 1), 0, proto_bytes("", 0));
	raw_send(fd, &b);
	assert_int_equal(raw_recv(fd, &rb, &m, 5000), 1);
	assert_int_equal(m.type, PROTO_EV_END);
	raw_next(&rb);
	expect_error(fd, &rb, 34, ISP_E_ALREADY_SUBSCRIBED, 0, NULL);
	proto_put_unsubscribe(&b, 35, proto_bytes("U", 1));
	raw_send(fd, &b);
	expect_error(fd, &rb, 35, ISP_E_NOT_SUBSCRIBED, 0, NULL);
	proto_put_query(&b, 36, 99);
	raw_send(fd, &b);
	expect_error(fd, &rb, 36, ISP_E_BAD_REQUEST, 0, NULL);

	/* Frames only a server sends are a protocol error. */
	proto_put_ev_end(&b, proto_bytes("T", 1), 1, 1);
	raw_send(fd, &b);
	expect_error(fd, &rb, 0, ISP_E_PROTOCOL, 1, NULL);
	close(fd);
	buf_free(&b);
	buf_free(&rb);
	assert_int_equal(ispd_stop(&d), 0);
}

/* SIGTERM: clients get BYE SHUTDOWN, the daemon exits 0. */
static void
test_shutdown_bye(void **state)
{
	struct ispd_proc	 d;
	struct buf		 b, rb;
	struct proto_msg	 m;
	int			 fd;

	buf_init(&b);
	buf_init(&rb);
	ispd_start(&d, NULL);
	fd = raw_connect(d.port);
	hello(fd, &b, &rb, PROTO_VERSION);
	kill(d.pid, SIGTERM);
	assert_int_equal(raw_recv(fd, &rb, &m, 5000), 1);
	assert_int_equal(m.type, PROTO_BYE);
	assert_int_equal(m.code, ISP_E_SHUTDOWN);
	raw_next(&rb);
	close(fd);
	assert_int_equal(ispd_stop(&d), 0);
	buf_free(&b);
	buf_free(&rb);
}

/* Several listeners, IPv6 among them. */
static void
test_listen_v6(void **state)
{
	struct ispd_proc	 d;
	struct isp_options	 o;
	isp_client		*c;
	char			 path[160], addr[64];
	int			 p1 = 0, p2 = 0;
	FILE			*f;

	ispd_start(&d, "--listen", "[::1]:0", NULL);
	snprintf(path, sizeof(path), "%s/port", d.dir);
	assert_non_null(f = fopen(path, "r"));
	assert_int_equal(fscanf(f, "%d %d", &p1, &p2), 2);
	fclose(f);
	assert_true(p2 > 0);
	snprintf(addr, sizeof(addr), "[::1]:%d", p2);
	isp_options_init(&o);
	o.server = addr;
	assert_non_null(c = isp_new(&o));
	assert_int_equal(isp_connect(c), ISP_OK);
	assert_int_equal(isp_sync(c, 5000), ISP_OK);
	isp_free(c);
	assert_int_equal(ispd_stop(&d), 0);
}

static void
test_connect_refused_message(void **state)
{
	struct isp_options	 o;
	isp_client		*c;

	isp_options_init(&o);
	o.server = "127.0.0.1:1";
	assert_non_null(c = isp_new(&o));
	assert_int_equal(isp_connect(c), ISP_E_CONNECT);
	assert_non_null(strstr(isp_errmsg(c), "127.0.0.1:1"));
	assert_non_null(strstr(isp_errmsg(c), "is ispd running"));
	isp_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_mismatch_server),
		cmocka_unit_test(test_version_mismatch_client),
		cmocka_unit_test(test_request_before_hello),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_unknown_type_and_bad_members),
		cmocka_unit_test(test_shutdown_bye),
		cmocka_unit_test(test_listen_v6),
		cmocka_unit_test(test_connect_refused_message),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
