/*
 * Client wire tests: a client talks to a scripted fake server over a
 * socketpair (client_handshake() takes the client's end), so every
 * frame the library sends is decoded and checked, and every frame it
 * receives, good or bad, is chosen by the test. Covers the handshake,
 * requests, events and subscriptions, server errors, the end of a
 * session, keepalives, isp_sync, queries and the library thread.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "isp.h"
#include "lib.h"

#define PB(s)	proto_bytes((s), strlen(s))

/* The server's end: its socket and what it has read. */
struct fake {
	int		 fd;
	struct buf	 in;
	struct buf	 out;
	uint8_t		 frame[PROTO_MAX_FRAME_BYTES + 8];
};

/* What the client's callbacks saw. */
struct seen {
	int		 nev;
	int		 type[32];
	char		 key[32][64];
	char		 fields[32][128];
	int		 snapshot[32];
	uint64_t	 seq[32];
	uint64_t	 count;
	int		 reason;
	char		 owner[64];
	int		 nerr;
	uint32_t	 err_req;
	int		 err_code;
	char		 err_reason[256];
	int		 nclosed;
	int		 closed_err;
	char		 closed_why[512];
	pthread_t	 cb_thread;
	isp_client	*c;
	int		 unsub_in_cb;	/* unsubscribe from the callback */
};

static struct fake	 srv;
static struct seen	 seen;

static void
fake_send(struct fake *f)
{
	size_t	 off = 0;
	ssize_t	 n;

	assert_false(buf_failed(&f->out));
	while (off < f->out.len) {
		n = write(f->fd, f->out.data + off, f->out.len - off);
		if (n == -1 && errno == EINTR)
			continue;
		assert_true(n > 0);
		off += (size_t)n;
	}
	f->out.len = 0;
}

/* Sends more than a socket buffer holds: runs the client meanwhile. */
static void
fake_send_pumping(struct fake *f, isp_client *c)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < f->out.len) {
		n = send(f->fd, f->out.data + off, f->out.len - off,
		    MSG_DONTWAIT);
		if (n > 0)
			off += (size_t)n;
		else if (n == -1 && (errno == EAGAIN || errno == EINTR))
			assert_int_equal(isp_run(c, 10), ISP_OK);
		else
			fail_msg("send: %s", strerror(errno));
	}
	f->out.len = 0;
}

/* Reads one frame within timeout_ms. Returns 1 and decodes it into m
 * (pointing into f->frame), 0 on timeout or EOF. */
static int
fake_recv(struct fake *f, struct proto_msg *m, int timeout_ms)
{
	struct pollfd	 pfd;
	const char	*why;
	size_t		 n;
	ssize_t		 r;
	int		 rc;

	for (;;) {
		rc = proto_frame_check(f->in.data, f->in.len,
		    PROTO_MAX_FRAME_BYTES, &n);
		assert_int_not_equal(rc, -1);
		if (rc == 1) {
			memcpy(f->frame, f->in.data, n);
			buf_consume(&f->in, n);
			assert_int_equal(proto_decode(f->frame, n, m, &why), 0);
			return 1;
		}
		pfd.fd = f->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return 0;
		assert_int_equal(buf_reserve(&f->in, 65536), 0);
		r = read(f->fd, f->in.data + f->in.len, 65536);
		if (r <= 0)
			return 0;
		f->in.len += (size_t)r;
	}
}

/* Reads frames until one of type arrives, skipping keepalive PINGs. */
static void
fake_expect(struct fake *f, uint8_t type, struct proto_msg *m)
{
	for (;;) {
		if (!fake_recv(f, m, 2000))
			fail_msg("no %s frame from the client",
			    proto_type_name(type));
		if (m->type == type)
			return;
		if (m->type != PROTO_PING)
			fail_msg("got %s, expected %s",
			    proto_type_name(m->type), proto_type_name(type));
	}
}

/* A request of c reaches the server: c writes its queue (requests wait
 * for the end of a pass, isp.h), then the frame is read. */
static void
sent_expect(isp_client *c, uint8_t type, struct proto_msg *m)
{
	assert_int_equal(isp_flush(c), ISP_OK);
	fake_expect(&srv, type, m);
}

static void
on_event(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct seen	*s = arg;
	size_t		 i, len;
	char		*p;
	int		 k = s->nev++;

	assert_true(k < 32);
	s->cb_thread = pthread_self();
	s->type[k] = ev->type;
	s->snapshot[k] = ev->snapshot;
	s->seq[k] = ev->seq;
	assert_string_equal(ev->table, "T");
	if (ev->type == ISP_EV_END) {
		s->count = ev->count;
	} else {
		/* NUL one past the end of the key and of each value. */
		assert_int_equal(((const char *)ev->rec.key)[ev->rec.key_len],
		    '\0');
		snprintf(s->key[k], sizeof(s->key[k]), "%s",
		    (const char *)ev->rec.key);
		snprintf(s->owner, sizeof(s->owner), "%s", ev->rec.owner);
		s->reason = ev->reason;
		p = s->fields[k];
		for (i = 0; i < ev->rec.nfields; i++) {
			const struct isp_field	*f = &ev->rec.fields[i];

			assert_int_equal(((const char *)f->value)[f->value_len],
			    '\0');
			len = strlen(p);
			snprintf(p + len, sizeof(s->fields[k]) - len, "%s%s=%s",
			    i ? "," : "", ev->rec.fields[i].name,
			    (const char *)ev->rec.fields[i].value);
		}
	}
	if (s->unsub_in_cb)
		assert_int_equal(isp_unsubscribe(c, "T"), ISP_OK);
}

static void
on_error(isp_client *c, uint32_t req_id, int code, const char *reason,
    void *arg)
{
	struct seen	*s = arg;

	s->nerr++;
	s->err_req = req_id;
	s->err_code = code;
	snprintf(s->err_reason, sizeof(s->err_reason), "%s", reason);
}

static void
on_closed(isp_client *c, int err, const char *why, void *arg)
{
	struct seen	*s = arg;

	s->nclosed++;
	s->closed_err = err;
	snprintf(s->closed_why, sizeof(s->closed_why), "%s", why);
	/* Requests from on_closed are refused, not crashed on. */
	assert_int_equal(isp_withdraw(c, "T", "k", 1), ISP_E_STATE);
}

static isp_client *
new_client(void)
{
	struct isp_options	 o;
	isp_client		*c;

	isp_options_init(&o);
	o.name = "test-client";
	o.on_error = on_error;
	o.on_closed = on_closed;
	o.arg = &seen;
	c = isp_new(&o);
	assert_non_null(c);
	seen.c = c;
	return c;
}

/* A connected client; the server has answered HELLO with WELCOME. */
static isp_client *
connect_fake(uint32_t hold_ms)
{
	struct proto_msg	 m;
	isp_client		*c = new_client();
	int			 sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	srv.fd = sv[1];
	srv.in.len = 0;
	proto_put_welcome(&srv.out, PROTO_VERSION, 0, hold_ms, 77, "fake");
	fake_send(&srv);
	assert_int_equal(client_handshake(c, sv[0], client_now_ms() + 2000),
	    ISP_OK);
	fake_expect(&srv, PROTO_HELLO, &m);
	assert_int_equal(m.version, PROTO_VERSION);
	assert_int_equal(m.text.len, strlen("test-client"));
	assert_memory_equal(m.text.p, "test-client", m.text.len);
	assert_true(isp_session_id(c) == 77);
	assert_int_equal(isp_hold_ms(c), hold_ms);
	return c;
}

static int
setup(void **state)
{
	memset(&seen, 0, sizeof(seen));
	buf_init(&srv.in);
	buf_init(&srv.out);
	srv.fd = -1;
	return 0;
}

static int
teardown(void **state)
{
	if (srv.fd != -1)
		close(srv.fd);
	buf_free(&srv.in);
	buf_free(&srv.out);
	return 0;
}

/* Runs the client until n events were seen or 2 s passed. */
static void
run_until_events(isp_client *c, int n)
{
	uint64_t	 end = client_now_ms() + 2000;

	while (seen.nev < n && client_now_ms() < end)
		assert_int_equal(isp_run(c, 50), ISP_OK);
	assert_int_equal(seen.nev, n);
}

/* Runs the client until the session ends; returns what isp_run said. */
static int
run_until_end(isp_client *c)
{
	uint64_t	 end = client_now_ms() + 3000;
	int		 rc;

	while ((rc = isp_run(c, 50)) == ISP_OK && client_now_ms() < end)
		;
	return rc;
}

static void
test_parse_addr(void **state)
{
	char	 h[CLIENT_HOST_BYTES], p[CLIENT_PORT_BYTES];

	assert_int_equal(client_parse_addr("127.0.0.1:7000", h, sizeof(h), p,
	    sizeof(p)), 0);
	assert_string_equal(h, "127.0.0.1");
	assert_string_equal(p, "7000");
	assert_int_equal(client_parse_addr("ispd.example.net", h, sizeof(h),
	    p, sizeof(p)), 0);
	assert_string_equal(h, "ispd.example.net");
	assert_string_equal(p, "7460");
	assert_int_equal(client_parse_addr("[::1]:65535", h, sizeof(h), p,
	    sizeof(p)), 0);
	assert_string_equal(h, "::1");
	assert_string_equal(p, "65535");
	assert_int_equal(client_parse_addr("[fe80::1%eth0]", h, sizeof(h), p,
	    sizeof(p)), 0);
	assert_string_equal(h, "fe80::1%eth0");
	assert_string_equal(p, "7460");
	assert_int_equal(client_parse_addr("::1", h, sizeof(h), p,
	    sizeof(p)), -1);
	assert_int_equal(client_parse_addr("h:-1", h, sizeof(h), p,
	    sizeof(p)), -1);
	assert_int_equal(client_parse_addr("h:+80", h, sizeof(h), p,
	    sizeof(p)), -1);
	assert_int_equal(client_parse_addr("h:99999999999999999999", h,
	    sizeof(h), p, sizeof(p)), -1);
	assert_int_equal(client_parse_addr(NULL, h, sizeof(h), p,
	    sizeof(p)), -1);
}

static void
test_connect_refused(void **state)
{
	struct sockaddr_storage	 ss;
	struct isp_options	 o;
	socklen_t		 sl = sizeof(ss);
	isp_client		*c;
	char			 addr[64];
	int			 fd;

	/* A port nobody listens on: bind one, note it, close it. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&ss, 0, sizeof(ss));
	((struct sockaddr *)&ss)->sa_family = AF_INET;
	((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, sizeof(struct
	    sockaddr_in)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u",
	    ntohs(((struct sockaddr_in *)&ss)->sin_port));
	close(fd);

	isp_options_init(&o);
	o.server = addr;
	c = isp_new(&o);
	assert_int_equal(isp_connect(c), ISP_E_CONNECT);
	if (strstr(isp_errmsg(c), "cannot connect to 127.0.0.1:") == NULL ||
	    strstr(isp_errmsg(c), "(is ispd running?)") == NULL)
		fail_msg("errmsg: %s", isp_errmsg(c));
	assert_int_equal(isp_announce(c, "T", "k", 1, NULL, 0, 0),
	    ISP_E_STATE);
	assert_non_null(strstr(isp_errmsg(c), "isp_connect() failed"));
	isp_free(c);

	o.server = "no-such-host.invalid:7460";
	c = isp_new(&o);
	assert_int_equal(isp_connect(c), ISP_E_CONNECT);
	if (strstr(isp_errmsg(c), "cannot resolve host "
	    "\"no-such-host.invalid\"") == NULL)
		fail_msg("errmsg: %s", isp_errmsg(c));
	isp_free(c);
}

static void
test_handshake(void **state)
{
	isp_client	*c = connect_fake(30000);

	assert_true(isp_fd(c) >= 0);
	assert_int_equal(isp_want(c) & ISP_WANT_READ, ISP_WANT_READ);
	assert_true(isp_timeout_ms(c) > 0 && isp_timeout_ms(c) <= 10000);
	assert_int_equal(seen.nclosed, 0);
	isp_free(c);
	/* isp_free says goodbye. */
	{
		struct proto_msg	 m;

		fake_expect(&srv, PROTO_BYE, &m);
		assert_false(fake_recv(&srv, &m, 100));
	}
}

static int
handshake_with(const char *what, int *closed)
{
	isp_client	*c = new_client();
	int		 sv[2], rc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	srv.fd = sv[1];
	if (strcmp(what, "version") == 0)
		proto_put_welcome(&srv.out, 2, 0, 1000, 1, "future");
	else if (strcmp(what, "error") == 0)
		proto_put_error(&srv.out, 0, ISP_E_LIMIT, "too many sessions");
	else if (strcmp(what, "event") == 0)
		proto_put_ev_end(&srv.out, PB("T"), 1, 0);
	if (srv.out.len > 0)
		fake_send(&srv);
	if (strcmp(what, "eof") == 0)
		shutdown(srv.fd, SHUT_WR);
	rc = client_handshake(c, sv[0], client_now_ms() + 300);
	/* No session was up: on_closed is not called, requests fail. */
	*closed = seen.nclosed;
	assert_int_equal(isp_sync(c, 10), ISP_E_STATE);
	assert_int_equal(isp_fd(c), -1);
	snprintf(seen.closed_why, sizeof(seen.closed_why), "%s",
	    isp_errmsg(c));
	isp_free(c);
	close(srv.fd);
	srv.fd = -1;
	return rc;
}

static void
test_handshake_failures(void **state)
{
	int	 closed;

	assert_int_equal(handshake_with("version", &closed), ISP_E_VERSION);
	assert_non_null(strstr(seen.closed_why, "speaks protocol version 2, "
	    "this library speaks 1"));
	assert_int_equal(handshake_with("error", &closed), ISP_E_LIMIT);
	assert_non_null(strstr(seen.closed_why, "too many sessions"));
	assert_int_equal(handshake_with("silent", &closed), ISP_E_TIMEOUT);
	assert_non_null(strstr(seen.closed_why, "no answer to HELLO"));
	assert_int_equal(handshake_with("eof", &closed), ISP_E_CLOSED);
	assert_int_equal(handshake_with("event", &closed), ISP_E_PROTOCOL);
	assert_non_null(strstr(seen.closed_why, "EV_END before WELCOME"));
	assert_int_equal(closed, 0);
}

static void
test_announce_frames(void **state)
{
	const char		 bin[] = { 'x', '\0', 'y' };
	struct isp_field	 f[] = {
		{ "contact", "sip:a@10.0.0.1", 14 },
		{ "bin", bin, sizeof(bin) },
		{ "empty", NULL, 0 },
	};
	struct proto_field_iter	 it;
	struct proto_field	 pf;
	struct proto_msg	 m;
	isp_client		*c = connect_fake(30000);
	uint32_t		 id;

	assert_int_equal(isp_announce(c, "SIP_REGISTRATION", "alice\0x", 7, f,
	    3, 3600), ISP_OK);
	id = isp_last_req_id(c);
	assert_int_equal(id, 1);
	sent_expect(c, PROTO_ANNOUNCE, &m);
	assert_int_equal(m.req_id, id);
	assert_int_equal(m.ttl_s, 3600);
	assert_int_equal(m.table.len, 16);
	assert_memory_equal(m.table.p, "SIP_REGISTRATION", 16);
	assert_int_equal(m.key.len, 7);
	assert_memory_equal(m.key.p, "alice\0x", 7);
	assert_int_equal(m.nfields, 3);
	proto_fields_iter(&it, m.fields);
	assert_true(proto_fields_next(&it, &pf));
	assert_memory_equal(pf.name.p, "contact", 7);
	assert_true(proto_fields_next(&it, &pf));
	assert_int_equal(pf.value.len, 3);
	assert_memory_equal(pf.value.p, bin, 3);
	assert_true(proto_fields_next(&it, &pf));
	assert_int_equal(pf.value.len, 0);
	assert_false(proto_fields_next(&it, &pf));

	assert_int_equal(isp_withdraw(c, "SIP_REGISTRATION", "alice\0x", 7),
	    ISP_OK);
	assert_int_equal(isp_last_req_id(c), 2);
	sent_expect(c, PROTO_WITHDRAW, &m);
	assert_int_equal(m.req_id, 2);
	assert_int_equal(m.key.len, 7);

	/* A failed call leaves the last id alone. */
	assert_int_equal(isp_withdraw(c, "", "k", 1), ISP_E_INVALID);
	assert_int_equal(isp_last_req_id(c), 2);
	isp_free(c);
}

static void
send_record(uint8_t type, const char *table, uint64_t seq, const char *key,
    const char *fname, const char *fvalue)
{
	struct buf	 fb;
	size_t		 s;

	buf_init(&fb);
	s = proto_fields_begin(&fb);
	if (fname != NULL)
		proto_put_field(&fb, fname, strlen(fname), fvalue,
		    strlen(fvalue));
	proto_fields_end(&fb, s, fname != NULL ? 1 : 0);
	proto_put_ev_record(&srv.out, type, PB(table), seq, PB(key), 9,
	    PB("bgw-1"), proto_bytes(fb.data, fb.len));
	buf_free(&fb);
	fake_send(&srv);
}

static void
test_subscribe_events(void **state)
{
	struct proto_msg	 m;
	isp_client		*c = connect_fake(30000);

	assert_int_equal(isp_subscribe(c, "T", "sip:", 4, 0, on_event,
	    &seen), ISP_OK);
	sent_expect(c, PROTO_SUBSCRIBE, &m);
	assert_int_equal(m.req_id, isp_last_req_id(c));
	assert_int_equal(m.flags, 0);
	assert_int_equal(m.key.len, 4);
	assert_memory_equal(m.key.p, "sip:", 4);
	/* One subscription per table and client. */
	assert_int_equal(isp_subscribe(c, "T", NULL, 0, 0, on_event, &seen),
	    ISP_E_STATE);
	assert_non_null(strstr(isp_errmsg(c), "already subscribed"));

	send_record(PROTO_EV_ANNOUNCE, "T", 1, "sip:a", "c", "1");
	send_record(PROTO_EV_ANNOUNCE, "OTHER", 1, "x", "c", "1");
	send_record(PROTO_EV_ANNOUNCE, "T", 2, "sip:b", "c", "2");
	proto_put_ev_end(&srv.out, PB("T"), 2, 2);
	fake_send(&srv);
	send_record(PROTO_EV_REPLACE, "T", 3, "sip:a", "c", "3");
	proto_put_ev_withdraw(&srv.out, PB("T"), 4, PB("sip:b"), 9,
	    PB("bgw-1"), PROTO_WD_SESSION);
	fake_send(&srv);
	run_until_events(c, 5);

	assert_int_equal(seen.type[0], ISP_EV_ANNOUNCE);
	assert_string_equal(seen.key[0], "sip:a");
	assert_string_equal(seen.fields[0], "c=1");
	assert_int_equal(seen.snapshot[0], 1);
	assert_int_equal(seen.snapshot[1], 1);
	assert_string_equal(seen.key[1], "sip:b");
	assert_int_equal(seen.type[2], ISP_EV_END);
	assert_int_equal(seen.snapshot[2], 0);
	assert_int_equal(seen.count, 2);
	assert_int_equal(seen.type[3], ISP_EV_REPLACE);
	assert_int_equal(seen.snapshot[3], 0);
	assert_string_equal(seen.fields[3], "c=3");
	assert_int_equal(seen.type[4], ISP_EV_WITHDRAW);
	assert_int_equal(seen.reason, ISP_WD_SESSION);
	assert_string_equal(seen.owner, "bgw-1");
	assert_int_equal(seen.seq[4], 4);
	assert_true(pthread_equal(seen.cb_thread, pthread_self()));

	/* Unsubscribed: later events for the table are dropped. */
	assert_int_equal(isp_unsubscribe(c, "T"), ISP_OK);
	sent_expect(c, PROTO_UNSUBSCRIBE, &m);
	assert_int_equal(isp_unsubscribe(c, "T"), ISP_E_STATE);
	send_record(PROTO_EV_ANNOUNCE, "T", 5, "sip:c", "c", "1");
	assert_int_equal(isp_run(c, 100), ISP_OK);
	assert_int_equal(seen.nev, 5);
	isp_free(c);
}

static void
test_subscribe_once_and_unsub_in_callback(void **state)
{
	struct proto_msg	 m;
	isp_client		*c = connect_fake(30000);

	assert_int_equal(isp_subscribe(c, "T", NULL, 0, ISP_SUB_ONCE,
	    on_event, &seen), ISP_OK);
	sent_expect(c, PROTO_SUBSCRIBE, &m);
	assert_int_equal(m.flags, PROTO_SUB_ONCE);
	send_record(PROTO_EV_ANNOUNCE, "T", 1, "a", "c", "1");
	proto_put_ev_end(&srv.out, PB("T"), 1, 1);
	fake_send(&srv);
	send_record(PROTO_EV_ANNOUNCE, "T", 2, "b", "c", "1");
	run_until_events(c, 2);
	assert_int_equal(isp_run(c, 100), ISP_OK);
	assert_int_equal(seen.nev, 2);		/* dropped after END */

	/* The table can be subscribed again; unsubscribing from inside
	 * the subscription's own callback is safe. */
	assert_int_equal(isp_subscribe(c, "T", NULL, 0, 0, on_event, &seen),
	    ISP_OK);
	sent_expect(c, PROTO_SUBSCRIBE, &m);
	seen.unsub_in_cb = 1;
	send_record(PROTO_EV_ANNOUNCE, "T", 3, "c", "c", "1");
	send_record(PROTO_EV_ANNOUNCE, "T", 4, "d", "c", "1");
	run_until_events(c, 3);
	assert_int_equal(isp_run(c, 100), ISP_OK);
	assert_int_equal(seen.nev, 3);
	sent_expect(c, PROTO_UNSUBSCRIBE, &m);
	isp_free(c);
}

/* Resubscribing right after an unsubscribe: events ispd had queued for
 * the old subscription must not reach the new one as its snapshot. */
/*
 * An event's strings are NUL-terminated where they lie in the input
 * (isp.h promises NUL-terminated values): the NULs overwrite lengths
 * already read, and the byte after the frame, which belongs to the next
 * frame, is put back. Three frames in one write, the last value of each
 * at its frame's end.
 */
static void
test_event_strings_in_place(void **state)
{
	struct proto_msg	 m;
	struct buf		 fb;
	isp_client		*c = connect_fake(30000);
	size_t			 s;

	assert_int_equal(isp_subscribe(c, "T", NULL, 0, 0, on_event, &seen),
	    ISP_OK);
	sent_expect(c, PROTO_SUBSCRIBE, &m);
	buf_init(&fb);
	s = proto_fields_begin(&fb);
	proto_put_field(&fb, "contact", 7, "sip:a@h", 7);
	proto_put_field(&fb, "e", 1, "", 0);
	proto_put_field(&fb, "last", 4, "zz", 2);
	proto_fields_end(&fb, s, 3);
	proto_put_ev_record(&srv.out, PROTO_EV_ANNOUNCE, PB("T"), 1,
	    PB("k1"), 9, PB("bgw-1"), proto_bytes(fb.data, fb.len));
	proto_put_ev_record(&srv.out, PROTO_EV_ANNOUNCE, PB("T"), 2,
	    PB("k2"), 9, PB("bgw-2"), proto_bytes(fb.data, fb.len));
	proto_put_ev_withdraw(&srv.out, PB("T"), 3, PB("k1"), 9, PB("bgw-1"),
	    PROTO_WD_OWNER);
	fake_send(&srv);
	buf_free(&fb);
	run_until_events(c, 3);
	assert_string_equal(seen.key[0], "k1");
	assert_string_equal(seen.fields[0], "contact=sip:a@h,e=,last=zz");
	assert_string_equal(seen.key[1], "k2");
	assert_string_equal(seen.fields[1], "contact=sip:a@h,e=,last=zz");
	assert_int_equal(seen.type[2], ISP_EV_WITHDRAW);
	assert_string_equal(seen.key[2], "k1");
	assert_string_equal(seen.owner, "bgw-1");
	assert_int_equal(seen.seq[2], 3);
	isp_free(c);
}

static void
test_resubscribe_drains(void **state)
{
	struct proto_msg	 m;
	isp_client		*c = connect_fake(30000);
	uint64_t		 token;

	assert_int_equal(isp_subscribe(c, "T", NULL, 0, 0, on_event, &seen),
	    ISP_OK);
	sent_expect(c, PROTO_SUBSCRIBE, &m);
	assert_int_equal(isp_unsubscribe(c, "T"), ISP_OK);
	sent_expect(c, PROTO_UNSUBSCRIBE, &m);
	assert_true(fake_recv(&srv, &m, 1000));
	assert_int_equal(m.type, PROTO_PING);
	token = m.token;
	assert_int_equal(isp_subscribe(c, "T", NULL, 0, 0, on_event, &seen),
	    ISP_OK);
	sent_expect(c, PROTO_SUBSCRIBE, &m);

	send_record(PROTO_EV_ANNOUNCE, "T", 7, "stale", "c", "1");
	proto_put_ev_withdraw(&srv.out, PB("T"), 8, PB("stale"), 9,
	    PB("bgw-1"), PROTO_WD_OWNER);
	proto_put_ping(&srv.out, PROTO_PONG, token);
	fake_send(&srv);
	send_record(PROTO_EV_ANNOUNCE, "T", 8, "fresh", "c", "2");
	proto_put_ev_end(&srv.out, PB("T"), 8, 1);
	fake_send(&srv);
	run_until_events(c, 2);
	assert_int_equal(isp_run(c, 50), ISP_OK);
	assert_int_equal(seen.nev, 2);
	assert_string_equal(seen.key[0], "fresh");
	assert_int_equal(seen.snapshot[0], 1);
	assert_int_equal(seen.type[1], ISP_EV_END);
	isp_free(c);
}

static void
test_server_errors(void **state)
{
	struct proto_msg	 m;
	isp_client		*c = connect_fake(30000);
	uint32_t		 id;

	assert_int_equal(isp_withdraw(c, "T", "k", 1), ISP_OK);
	id = isp_last_req_id(c);
	sent_expect(c, PROTO_WITHDRAW, &m);
	proto_put_error(&srv.out, id, ISP_E_NOT_OWNER, "k is owned by bgw-2");
	fake_send(&srv);
	while (seen.nerr == 0)
		assert_int_equal(isp_run(c, 1000), ISP_OK);
	assert_int_equal(seen.err_req, id);
	assert_int_equal(seen.err_code, ISP_E_NOT_OWNER);
	assert_string_equal(seen.err_reason, "k is owned by bgw-2");

	/* A refused SUBSCRIBE leaves no local subscription. */
	assert_int_equal(isp_subscribe(c, "ispd.sessions", NULL, 0, 0,
	    on_event, &seen), ISP_OK);
	id = isp_last_req_id(c);
	sent_expect(c, PROTO_SUBSCRIBE, &m);
	proto_put_error(&srv.out, id, ISP_E_LIMIT, "too many subscriptions");
	fake_send(&srv);
	while (seen.nerr == 1)
		assert_int_equal(isp_run(c, 1000), ISP_OK);
	assert_int_equal(seen.err_code, ISP_E_LIMIT);
	assert_int_equal(isp_subscribe(c, "ispd.sessions", NULL, 0, 0,
	    on_event, &seen), ISP_OK);

	/* A session-fatal error, then the close: the session ends with
	 * the error's code, not a bare "closed". */
	proto_put_error(&srv.out, 0, ISP_E_BAD_REQUEST, "you did wrong");
	fake_send(&srv);
	close(srv.fd);
	srv.fd = -1;
	assert_int_equal(run_until_end(c), ISP_E_BAD_REQUEST);
	assert_int_equal(seen.nerr, 3);
	assert_int_equal(seen.err_req, 0);
	assert_int_equal(seen.nclosed, 1);
	assert_int_equal(seen.closed_err, ISP_E_BAD_REQUEST);
	assert_non_null(strstr(seen.closed_why, "you did wrong"));
	/* Ended for good, reported the same way every time. */
	assert_int_equal(isp_run(c, 10), ISP_E_BAD_REQUEST);
	assert_int_equal(isp_process(c), ISP_E_BAD_REQUEST);
	assert_int_equal(isp_announce(c, "T", "k", 1, NULL, 0, 0),
	    ISP_E_STATE);
	assert_non_null(strstr(isp_errmsg(c), "the session has ended"));
	assert_int_equal(isp_fd(c), -1);
	assert_int_equal(isp_want(c), 0);
	assert_int_equal(seen.nclosed, 1);
	isp_free(c);
}

static void
test_bye_and_eof(void **state)
{
	isp_client	*c = connect_fake(30000);

	proto_put_bye(&srv.out, ISP_E_SHUTDOWN, "ispd stopping");
	fake_send(&srv);
	assert_int_equal(run_until_end(c), ISP_E_SHUTDOWN);
	assert_int_equal(seen.nclosed, 1);
	assert_int_equal(seen.closed_err, ISP_E_SHUTDOWN);
	assert_non_null(strstr(seen.closed_why, "ispd stopping"));
	isp_free(c);
	close(srv.fd);

	memset(&seen, 0, sizeof(seen));
	c = connect_fake(30000);
	close(srv.fd);
	srv.fd = -1;
	assert_int_equal(run_until_end(c), ISP_E_CLOSED);
	assert_int_equal(seen.closed_err, ISP_E_CLOSED);
	assert_non_null(strstr(seen.closed_why, "closed the connection"));
	assert_int_equal(seen.nclosed, 1);
	isp_free(c);
}

static void
test_bad_frames(void **state)
{
	uint8_t		 hdr[5];
	struct proto_msg m;
	isp_client	*c;

	/* A length over the limit ends the session before any buffer
	 * grows for it. */
	c = connect_fake(30000);
	put_be32(hdr, PROTO_MAX_FRAME_BYTES + 1);
	hdr[4] = PROTO_EV_END;
	assert_int_equal(write(srv.fd, hdr, 5), 5);
	assert_int_equal(run_until_end(c), ISP_E_FRAME_TOO_LARGE);
	assert_true(c->conns[0].in.cap < PROTO_MAX_FRAME_BYTES);
	isp_free(c);
	close(srv.fd);

	/* A malformed frame: EV_END with a byte too many. */
	memset(&seen, 0, sizeof(seen));
	c = connect_fake(30000);
	proto_put_ev_end(&srv.out, PB("T"), 1, 0);
	buf_put_u8(&srv.out, 0);
	put_be32(srv.out.data, (uint32_t)srv.out.len - 4);
	fake_send(&srv);
	assert_int_equal(run_until_end(c), ISP_E_PROTOCOL);
	assert_non_null(strstr(seen.closed_why, "malformed EV_END"));
	isp_free(c);
	close(srv.fd);

	/* An unknown type is skipped; the session goes on, and a PING
	 * from the server is answered with its token. */
	memset(&seen, 0, sizeof(seen));
	c = connect_fake(30000);
	put_be32(hdr, 1);
	hdr[4] = 0x7e;
	assert_int_equal(write(srv.fd, hdr, 5), 5);
	proto_put_ping(&srv.out, PROTO_PING, 0xabcdef);
	fake_send(&srv);
	assert_int_equal(isp_run(c, 200), ISP_OK);
	fake_expect(&srv, PROTO_PONG, &m);
	assert_true(m.token == 0xabcdef);

	/* A frame trickling in a byte at a time is delivered once. */
	assert_int_equal(isp_subscribe(c, "T", NULL, 0, 0, on_event, &seen),
	    ISP_OK);
	proto_put_ev_end(&srv.out, PB("T"), 1, 42);
	{
		size_t	 i;

		for (i = 0; i < srv.out.len; i++) {
			assert_int_equal(write(srv.fd, srv.out.data + i, 1),
			    1);
			assert_int_equal(isp_process(c), ISP_OK);
		}
		srv.out.len = 0;
	}
	assert_int_equal(seen.nev, 1);
	assert_int_equal(seen.count, 42);
	isp_free(c);
}

static void
test_big_event(void **state)
{
	static char		 big[PROTO_MAX_VALUE_BYTES];
	struct buf		 fb;
	size_t			 s, i;
	isp_client		*c = connect_fake(30000);

	assert_int_equal(isp_subscribe(c, "T", NULL, 0, 0, on_event, &seen),
	    ISP_OK);
	/* Fifteen maximal values: a frame near the 1 MiB limit. */
	memset(big, 'v', sizeof(big));
	buf_init(&fb);
	s = proto_fields_begin(&fb);
	for (i = 0; i < 15; i++) {
		char	 name[8];

		snprintf(name, sizeof(name), "f%zu", i);
		proto_put_field(&fb, name, strlen(name), big, sizeof(big));
	}
	proto_fields_end(&fb, s, 15);
	proto_put_ev_record(&srv.out, PROTO_EV_ANNOUNCE, PB("T"), 1, PB("k"),
	    1, PB("o"), proto_bytes(fb.data, fb.len));
	buf_free(&fb);
	assert_true(srv.out.len > 900000);
	fake_send_pumping(&srv, c);
	run_until_events(c, 1);
	assert_string_equal(seen.key[0], "k");
	isp_free(c);
}

static void
test_keepalive(void **state)
{
	struct proto_msg	 m;
	isp_client		*c = connect_fake(300);
	uint64_t		 t0 = client_now_ms();

	/* Idle: a PING within hold/3. */
	assert_true(isp_timeout_ms(c) <= 100);
	while (client_now_ms() - t0 < 150)
		assert_int_equal(isp_run(c, 20), ISP_OK);
	assert_true(fake_recv(&srv, &m, 0));
	assert_int_equal(m.type, PROTO_PING);
	proto_put_ping(&srv.out, PROTO_PONG, m.token);
	fake_send(&srv);

	/* Then the server falls silent: the session ends after hold_ms
	 * without input, never much later. */
	t0 = client_now_ms();
	assert_int_equal(run_until_end(c), ISP_E_TIMEOUT);
	assert_true(client_now_ms() - t0 < 1500);
	assert_non_null(strstr(seen.closed_why, "no answer from ispd at"));
	assert_non_null(strstr(seen.closed_why, "for 300 ms"));
	assert_int_equal(seen.nclosed, 1);
	isp_free(c);
}

/* A server on its own thread: answers PING, QUERY, SUBSCRIBE, and
 * reflects ANNOUNCE to the subscriber, like a tiny ispd. */
struct echo {
	pthread_t	 t;
	atomic_int	 stop;
	atomic_int	 mute;		/* stop answering */
	atomic_int	 pings;
};

static void *
echo_main(void *arg)
{
	struct echo		*e = arg;
	struct proto_msg	 m;
	size_t			 s, f;

	while (!atomic_load(&e->stop)) {
		if (!fake_recv(&srv, &m, 20))
			continue;
		if (atomic_load(&e->mute))
			continue;
		switch (m.type) {
		case PROTO_PING:
			atomic_fetch_add(&e->pings, 1);
			proto_put_ping(&srv.out, PROTO_PONG, m.token);
			break;
		case PROTO_QUERY:
			if (m.what != PROTO_QUERY_TABLES) {
				proto_put_error(&srv.out, m.req_id,
				    ISP_E_BAD_REQUEST, "no stats here");
				break;
			}
			s = proto_rows_begin(&srv.out, m.req_id);
			f = proto_fields_begin(&srv.out);
			proto_put_field(&srv.out, "name", 4, "T", 1);
			proto_put_field(&srv.out, "records", 7, "3", 1);
			proto_fields_end(&srv.out, f, 2);
			f = proto_fields_begin(&srv.out);
			proto_put_field(&srv.out, "name", 4, "U", 1);
			proto_fields_end(&srv.out, f, 1);
			proto_rows_end(&srv.out, s, 2);
			break;
		case PROTO_SUBSCRIBE:
			proto_put_ev_end(&srv.out, m.table, 0, 0);
			break;
		case PROTO_ANNOUNCE:
			proto_put_ev_record(&srv.out, PROTO_EV_ANNOUNCE,
			    m.table, 1, m.key, 1, PB("me"), m.fields);
			break;
		case PROTO_WITHDRAW:
			proto_put_ev_withdraw(&srv.out, m.table, 2, m.key, 1,
			    PB("me"), PROTO_WD_OWNER);
			break;
		default:
			break;
		}
		if (srv.out.len > 0)
			fake_send(&srv);
	}
	return NULL;
}

static void
echo_start(struct echo *e)
{
	atomic_init(&e->stop, 0);
	atomic_init(&e->mute, 0);
	atomic_init(&e->pings, 0);
	assert_int_equal(pthread_create(&e->t, NULL, echo_main, e), 0);
}

static void
echo_stop(struct echo *e)
{
	atomic_store(&e->stop, 1);
	pthread_join(e->t, NULL);
}

struct rows {
	int	 n;
	char	 text[256];
};

static void
row_cb(const struct isp_field *f, size_t n, void *arg)
{
	struct rows	*r = arg;
	size_t		 i, len;

	for (i = 0; i < n; i++) {
		len = strlen(r->text);
		snprintf(r->text + len, sizeof(r->text) - len, "%s=%s%s",
		    f[i].name, (const char *)f[i].value, i + 1 < n ? "," :
		    ";");
	}
	r->n++;
}

static void
test_sync_and_queries(void **state)
{
	struct echo	 e;
	struct rows	 r;
	isp_client	*c = connect_fake(30000);

	echo_start(&e);
	assert_int_equal(isp_sync(c, 2000), ISP_OK);
	assert_int_equal(isp_sync(c, 2000), ISP_OK);

	memset(&r, 0, sizeof(r));
	assert_int_equal(isp_query_tables(c, row_cb, &r, 2000), ISP_OK);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.text, "name=T,records=3;name=U;");
	assert_int_equal(isp_query_stats(c, row_cb, &r, 2000),
	    ISP_E_BAD_REQUEST);
	assert_non_null(strstr(isp_errmsg(c), "no stats here"));
	assert_int_equal(seen.nerr, 0);		/* the caller got it */

	atomic_store(&e.mute, 1);
	assert_int_equal(isp_sync(c, 100), ISP_E_TIMEOUT);
	assert_non_null(strstr(isp_errmsg(c), "within 100 ms"));
	echo_stop(&e);
	isp_free(c);
}

/* Answers each live event with an announce of its own. */
static void
echo_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct isp_field	 f = { "re", "1", 1 };

	(void)arg;
	if (ev->type == ISP_EV_ANNOUNCE)
		assert_int_equal(isp_announce(c, "R", ev->rec.key,
		    ev->rec.key_len, &f, 1, 0), ISP_OK);
}

/* The socket holds nothing from the client: the client made no
 * send(2) since the last read (a socketpair delivers at once). */
static void
assert_nothing_sent(void)
{
	struct proto_msg	 m;

	assert_int_equal(srv.in.len, 0);
	assert_false(fake_recv(&srv, &m, 0));
}

/*
 * When a request leaves (isp.h): at the end of the pass, at
 * isp_flush(), at once past 64 KiB, when the call that ran a callback
 * returns, and in mode 3 without any call of the application.
 */
static void
test_flush_rule(void **state)
{
	char			 big[1000];
	struct isp_field	 f = { "v", "1", 1 };
	struct isp_field	 fb = { "v", big, sizeof(big) };
	struct proto_msg	 m;
	isp_client		*c = connect_fake(30000);
	char			 key[16];
	int			 i, n;

	/* Queued, not written; the loop is told to run at once. */
	assert_int_equal(isp_announce(c, "T", "a", 1, &f, 1, 0), ISP_OK);
	assert_int_equal(isp_announce(c, "T", "b", 1, &f, 1, 0), ISP_OK);
	assert_int_equal(isp_withdraw(c, "T", "a", 1), ISP_OK);
	assert_nothing_sent();
	assert_int_equal(isp_timeout_ms(c), 0);
	assert_int_equal(isp_want(c), ISP_WANT_READ | ISP_WANT_WRITE);
	/* The pass writes all three, in order. */
	assert_int_equal(isp_process(c), ISP_OK);
	assert_true(fake_recv(&srv, &m, 0));
	assert_int_equal(m.type, PROTO_ANNOUNCE);
	assert_true(fake_recv(&srv, &m, 0));
	assert_int_equal(m.type, PROTO_ANNOUNCE);
	assert_true(fake_recv(&srv, &m, 0));
	assert_int_equal(m.type, PROTO_WITHDRAW);
	assert_nothing_sent();
	assert_true(isp_timeout_ms(c) > 1000);
	assert_int_equal(isp_want(c), ISP_WANT_READ);

	/* isp_flush() writes now; so does isp_run(c, 0). */
	assert_int_equal(isp_announce(c, "T", "c", 1, &f, 1, 0), ISP_OK);
	assert_nothing_sent();
	assert_int_equal(isp_flush(c), ISP_OK);
	assert_true(fake_recv(&srv, &m, 0));
	assert_int_equal(m.type, PROTO_ANNOUNCE);
	assert_int_equal(isp_flush(c), ISP_OK);		/* nothing queued */
	assert_int_equal(isp_announce(c, "T", "d", 1, &f, 1, 0), ISP_OK);
	assert_int_equal(isp_run(c, 0), ISP_OK);
	assert_true(fake_recv(&srv, &m, 0));
	assert_nothing_sent();

	/* 64 KiB queued go within the request call that reached it. */
	memset(big, 'x', sizeof(big));
	for (n = 1; n <= 100; n++) {
		snprintf(key, sizeof(key), "big%d", n);
		assert_int_equal(isp_announce(c, "T", key, strlen(key), &fb, 1,
		    0), ISP_OK);
		if (fake_recv(&srv, &m, 0))
			break;
	}
	/* Frames of about 1,030 bytes: the 64th crossed 64 KiB. */
	assert_true(n * 1030 >= 64 * 1024 && (n - 1) * 1000 < 64 * 1024);
	for (i = 1; i < n; i++) {
		assert_true(fake_recv(&srv, &m, 0));
		assert_int_equal(m.type, PROTO_ANNOUNCE);
	}
	assert_nothing_sent();

	/* A request made by a callback leaves when the call returns. */
	assert_int_equal(isp_subscribe(c, "T", NULL, 0, 0, echo_cb, NULL),
	    ISP_OK);
	sent_expect(c, PROTO_SUBSCRIBE, &m);
	proto_put_ev_end(&srv.out, PB("T"), 0, 0);
	fake_send(&srv);
	send_record(PROTO_EV_ANNOUNCE, "T", 1, "k", "c", "1");
	for (i = 0; i < 100 && !fake_recv(&srv, &m, 0); i++)
		assert_int_equal(isp_run(c, 20), ISP_OK);
	assert_int_equal(m.type, PROTO_ANNOUNCE);
	assert_memory_equal(m.table.p, "R", 1);
	assert_nothing_sent();

	/* Mode 3: the library thread writes it; no call of ours. */
	assert_int_equal(isp_start(c), ISP_OK);
	assert_int_equal(isp_announce(c, "T", "e", 1, &f, 1, 0), ISP_OK);
	fake_expect(&srv, PROTO_ANNOUNCE, &m);
	assert_memory_equal(m.key.p, "e", 1);
	isp_free(c);
}

static void
test_thread_mode(void **state)
{
	struct isp_field	 f = { "contact", "sip:x", 5 };
	struct isp_mirror	*m;
	struct isp_record	*r;
	struct echo		 e;
	isp_client		*c = connect_fake(30000);
	uint64_t		 end;

	echo_start(&e);
	assert_int_equal(isp_start(c), ISP_OK);
	assert_int_equal(isp_start(c), ISP_E_STATE);
	assert_int_equal(isp_run(c, 0), ISP_E_STATE);
	assert_non_null(strstr(isp_errmsg(c), "library thread"));

	m = isp_mirror_new(c, "T", NULL, 0, on_event, &seen);
	assert_non_null(m);
	/* One subscription per table, mirrors included. */
	assert_int_equal(isp_subscribe(c, "T", NULL, 0, 0, on_event, &seen),
	    ISP_E_STATE);
	assert_int_equal(isp_unsubscribe(c, "T"), ISP_E_STATE);
	assert_non_null(strstr(isp_errmsg(c), "isp_mirror_free"));

	assert_int_equal(isp_announce(c, "T", "alice", 5, &f, 1, 0), ISP_OK);
	assert_int_equal(isp_announce(c, "T", "bob", 3, &f, 1, 0), ISP_OK);
	/* Waits on the library thread's reading. */
	assert_int_equal(isp_sync(c, 2000), ISP_OK);
	end = client_now_ms() + 2000;
	while (isp_mirror_count(m) < 2 && client_now_ms() < end)
		usleep(1000);
	assert_int_equal(isp_mirror_ready(m), 1);
	assert_int_equal(isp_mirror_count(m), 2);
	r = isp_mirror_get(m, "alice", 5);
	assert_non_null(r);
	assert_string_equal(r->fields[0].value, "sip:x");
	isp_record_free(r);
	/* Callbacks came from the library thread. */
	assert_false(pthread_equal(seen.cb_thread, pthread_self()));

	assert_int_equal(isp_withdraw(c, "T", "bob", 3), ISP_OK);
	assert_int_equal(isp_sync(c, 2000), ISP_OK);
	end = client_now_ms() + 2000;
	while (isp_mirror_count(m) != 1 && client_now_ms() < end)
		usleep(1000);
	assert_int_equal(isp_mirror_count(m), 1);

	isp_stop(c);
	/* Back in mode 1. */
	assert_int_equal(isp_run(c, 0), ISP_OK);
	assert_int_equal(isp_sync(c, 2000), ISP_OK);
	isp_mirror_free(m);
	/* Restart, then free with the thread running. */
	assert_int_equal(isp_start(c), ISP_OK);
	echo_stop(&e);
	isp_free(c);
}

static void
test_mirror_outlives_session(void **state)
{
	struct isp_mirror	*m, *m2;
	isp_client		*c = connect_fake(30000);

	m = isp_mirror_new(c, "T", "a", 1, NULL, NULL);
	assert_non_null(m);
	/* Left for isp_free() to free. */
	m2 = isp_mirror_new(c, "U", NULL, 0, NULL, NULL);
	assert_non_null(m2);
	assert_null(isp_mirror_new(c, "U", NULL, 0, NULL, NULL));
	assert_non_null(strstr(isp_errmsg(c), "already subscribed"));
	send_record(PROTO_EV_ANNOUNCE, "T", 1, "a1", "c", "1");
	proto_put_ev_end(&srv.out, PB("T"), 1, 1);
	fake_send(&srv);
	while (!isp_mirror_ready(m))
		assert_int_equal(isp_run(c, 1000), ISP_OK);
	close(srv.fd);
	srv.fd = -1;
	assert_int_equal(run_until_end(c), ISP_E_CLOSED);
	/* The copy stays readable after the session ended. */
	assert_int_equal(isp_mirror_count(m), 1);
	isp_mirror_free(m);
	assert_null(isp_mirror_new(c, "V", NULL, 0, NULL, NULL));
	assert_non_null(strstr(isp_errmsg(c), "the session has ended"));
	isp_free(c);
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test_setup_teardown(test_handshake, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_handshake_failures,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_announce_frames, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_events, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_subscribe_once_and_unsub_in_callback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_event_strings_in_place,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_resubscribe_drains, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_server_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bye_and_eof, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_frames, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_big_event, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_keepalive, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sync_and_queries, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_flush_rule, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_thread_mode, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mirror_outlives_session,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
