/*
 * rawsock: the wire protocol spoken by a test over a plain socket
 * (rawsock.h).
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rawsock.h"
#include "testutil.h"

int
raw_connect_rcvbuf(int port, int rcvbuf)
{
	struct sockaddr_in	 sin;
	int			 fd;

	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) != -1);
	if (rcvbuf > 0)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf)), 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

int
raw_connect(int port)
{
	return raw_connect_rcvbuf(port, 0);
}

void
raw_send_bytes(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

void
raw_send(int fd, struct buf *b)
{
	size_t	 off = 0;
	ssize_t	 n;

	assert_false(buf_failed(b));
	while (off < b->len) {
		n = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);
		assert_true(n > 0);
		off += (size_t)n;
	}
	b->len = 0;
}

int
raw_recv(int fd, struct buf *rb, struct proto_msg *m, int timeout_ms)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	const char	*why;
	int64_t		 end = now_ms() + timeout_ms;
	size_t		 n;
	ssize_t		 r;
	int		 left;

	for (;;) {
		if (rb->len > 0 && proto_frame_check(rb->data, rb->len,
		    PROTO_MAX_FRAME_BYTES, &n) == 1) {
			if (proto_decode(rb->data, n, m, &why) != 0)
				fail_msg("ispd sent a frame that does not "
				    "decode: %s", why);
			return 1;
		}
		if ((left = (int)(end - now_ms())) <= 0)
			return -1;
		if (poll(&pfd, 1, left) != 1)
			return -1;
		assert_int_equal(buf_reserve(rb, 65536), 0);
		r = recv(fd, rb->data + rb->len, 65536, 0);
		if (r == 0 || (r == -1 && errno == ECONNRESET))
			return 0;
		assert_true(r > 0);
		rb->len += (size_t)r;
	}
}

void
raw_next(struct buf *rb)
{
	size_t	 n;

	if (proto_frame_check(rb->data, rb->len, PROTO_MAX_FRAME_BYTES,
	    &n) == 1)
		buf_consume(rb, n);
}

void
raw_hello(int fd, struct buf *b, uint32_t caps, const char *name)
{
	proto_put_hello(b, PROTO_VERSION, caps, name);
	raw_send(fd, b);
}

uint64_t
raw_welcome(int fd, struct buf *b, struct buf *rb, uint32_t caps,
    const char *name)
{
	struct proto_msg	 m;
	uint64_t		 id;

	raw_hello(fd, b, caps, name);
	if (raw_recv(fd, rb, &m, 5000) != 1)
		fail_msg("no WELCOME for the raw session %s", name);
	if (m.type != PROTO_WELCOME)
		fail_msg("expected WELCOME, got %s", proto_type_name(m.type));
	id = m.session_id;
	raw_next(rb);
	return id;
}

long long
raw_stat(int fd, struct buf *b, struct buf *rb, const char *name)
{
	struct proto_msg	 m;
	struct proto_bytes	 rows, row;
	struct proto_field_iter	 it;
	struct proto_field	 f;
	char			 v[32];
	long long		 value = -1;

	proto_put_query(b, 0, PROTO_QUERY_STATS);
	raw_send(fd, b);
	assert_int_equal(raw_recv(fd, rb, &m, 5000), 1);
	if (m.type != PROTO_ROWS)
		fail_msg("QUERY STATS answered %s", proto_type_name(m.type));
	rows = m.rows;
	while (proto_rows_next(&rows, &row)) {
		proto_fields_iter(&it, row);
		while (proto_fields_next(&it, &f))
			if (f.name.len == strlen(name) &&
			    memcmp(f.name.p, name, f.name.len) == 0 &&
			    f.value.len < sizeof(v)) {
				memcpy(v, f.value.p, f.value.len);
				v[f.value.len] = '\0';
				value = atoll(v);
			}
	}
	raw_next(rb);
	return value;
}
