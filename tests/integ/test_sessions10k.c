/*
 * Ten thousand concurrent sessions with keepalives, against one real
 * ispd on loopback (--hold 2), from one thread: raw TCP sockets speaking
 * the wire codec (src/common/proto.h), far cheaper than 10,000
 * isp_client objects. Each session says HELLO, then only PINGs, every
 * PING_MS (a quarter of the hold time), and reads what comes back.
 *
 * One more raw session, the observer, subscribes to ispd.sessions and
 * asks QUERY STATS: it sees a row appear for every session and go again
 * when it ends, and reads the `sessions` and `hold_expired` counters.
 *
 * What must hold:
 *  - every session is welcomed, and none is ended (no BYE, no EOF) while
 *    it keeps its keepalives, over three hold periods;
 *  - `sessions` is 10,000 plus the observer, `hold_expired` stays 0;
 *  - ispd's resident memory (VmRSS) is under RSS_BOUND_KIB with 10,000
 *    sessions, and does not grow by more than RSS_GROWTH_KIB between a
 *    sample after the first hold period and one two hold periods later:
 *    keepalives cost no memory that stays;
 *  - after every session disconnects (a third with BYE, a third with a
 *    FIN, a third with a TCP reset) `sessions` is back to the baseline
 *    and every row is withdrawn.
 * Bounded in time: every wait has a deadline; the whole test takes
 * about 7 s, plain or under ASan (connecting takes about 0.5 s).
 *
 * File descriptors: the test raises its soft RLIMIT_NOFILE to the hard
 * limit (and, as root, the hard limit itself when it is too low); ispd,
 * its child, inherits the raised limit.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto.h"
#include "testutil.h"

#define NSESSIONS	10000
#define HOLD_ARG	"2"
#define HOLD_MS		2000
#define PING_MS		(HOLD_MS / 4)
/* Sessions connected but not welcomed yet, at most: well under the
 * listen backlog (SOMAXCONN, 4096), so no SYN is ever dropped. */
#define MAX_INFLIGHT	512
/* File descriptors needed: the sessions, the observer, epoll, slack. */
#define NOFILE_NEEDED	(NSESSIONS + 256)

/*
 * Memory bounds, from measurements on Debian 12 x86-64 (glibc malloc):
 * ispd holds 10,000 idle sessions in about 14 MiB of RSS plain (≈1.05
 * KiB a session: struct session, its ispd.sessions row, hash and epoll
 * entries; 3.5 MiB before they come) and about 32 MiB under ASan
 * (shadow memory, redzones, and a quarantine this test caps at 8 MiB
 * through ASAN_OPTIONS). The bounds leave room for allocator and kernel
 * differences, not for a leak: 1 KiB more per session crosses the
 * plain bound. Between the two samples ispd answers about 80,000 PINGs,
 * so a leak of 14 bytes per PING crosses the plain growth margin (the
 * measured growth is under 64 KiB).
 */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_BOUND_KIB	(64 * 1024)
#define RSS_GROWTH_KIB	(4 * 1024)
#else
#define RSS_BOUND_KIB	(24 * 1024)
#define RSS_GROWTH_KIB	(1024)
#endif

struct conn {
	int		 fd;
	int		 welcomed;
	int		 ended;		/* BYE, ERROR or EOF seen */
	struct buf	 in;
};

static struct conn	*conns;		/* NSESSIONS sessions, then the observer */
static int		 ep = -1;
static int		 nwelcomed, nended, inflight;
static uint64_t		 ping_token;

/* What the observer learnt. */
static struct {
	int		 rows_added;	/* EV_ANNOUNCE of ispd.sessions */
	int		 rows_removed;	/* EV_WITHDRAW of ispd.sessions */
	int		 ended;		/* its EV_END */
	int		 have_stats;
	uint64_t	 sessions;
	uint64_t	 hold_expired;
	char		 why[256];	/* an unexpected frame */
} obs;

#define OBSERVER	(&conns[NSESSIONS])

static void
raise_nofile(void)
{
	struct rlimit	 rl;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < NOFILE_NEEDED) {
		/* Root may raise the hard limit, up to fs.nr_open. */
		rl.rlim_max = NOFILE_NEEDED;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	if (rl.rlim_max < NOFILE_NEEDED) {
		print_message("# hard RLIMIT_NOFILE is %llu, below %d: cannot "
		    "hold %d sessions here (raise it, e.g. ulimit -Hn)\n",
		    (unsigned long long)rl.rlim_max, NOFILE_NEEDED,
		    NSESSIONS);
		skip();
	}
	rl.rlim_cur = rl.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* VmRSS of pid in KiB, or -1. */
static long
rss_kib(pid_t pid)
{
	char	 path[64], line[256];
	long	 kib = -1;
	FILE	*f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void
conn_send(struct conn *c, struct buf *b)
{
	ssize_t	 n;

	assert_false(buf_failed(b));
	n = send(c->fd, b->data, b->len, MSG_NOSIGNAL);
	/* A few dozen bytes into an empty loopback socket buffer: anything
	 * short of all of them means the session is gone. */
	if (n != (ssize_t)b->len && !c->ended) {
		c->ended = 1;
		nended++;
	}
	b->len = 0;
}

static void
observer_rows(const struct proto_msg *m)
{
	struct proto_bytes	 rows = m->rows, row;
	struct proto_field_iter	 it;
	struct proto_field	 f;
	char			 v[32];

	while (proto_rows_next(&rows, &row)) {
		proto_fields_iter(&it, row);
		while (proto_fields_next(&it, &f)) {
			if (f.value.len >= sizeof(v))
				continue;
			memcpy(v, f.value.p, f.value.len);
			v[f.value.len] = '\0';
			if (f.name.len == 8 && memcmp(f.name.p, "sessions",
			    8) == 0)
				obs.sessions = strtoull(v, NULL, 10);
			else if (f.name.len == 12 && memcmp(f.name.p,
			    "hold_expired", 12) == 0)
				obs.hold_expired = strtoull(v, NULL, 10);
		}
	}
	obs.have_stats = 1;
}

static void
conn_frame(struct conn *c, const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_WELCOME:
		if (!c->welcomed) {
			c->welcomed = 1;
			nwelcomed++;
			if (c != OBSERVER)
				inflight--;
		}
		return;
	case PROTO_PONG:
		return;
	case PROTO_EV_ANNOUNCE:
		if (c == OBSERVER) {
			obs.rows_added++;
			return;
		}
		break;
	case PROTO_EV_WITHDRAW:
		if (c == OBSERVER) {
			obs.rows_removed++;
			return;
		}
		break;
	case PROTO_EV_END:
		if (c == OBSERVER) {
			obs.ended = 1;
			return;
		}
		break;
	case PROTO_ROWS:
		if (c == OBSERVER) {
			observer_rows(m);
			return;
		}
		break;
	default:
		break;
	}
	/* BYE, ERROR, or a frame this session never asked for. */
	snprintf(obs.why, sizeof(obs.why), "session %d got %s (type 0x%02x)",
	    (int)(c - conns), proto_type_name(m->type), m->type);
	if (!c->ended) {
		c->ended = 1;
		nended++;
	}
}

static void
conn_read(struct conn *c)
{
	uint8_t			 tmp[65536];
	struct proto_msg	 m;
	const char		*why;
	ssize_t			 n;
	size_t			 len, off;

	for (;;) {
		n = read(c->fd, tmp, sizeof(tmp));
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			if (!c->ended) {
				snprintf(obs.why, sizeof(obs.why), "session "
				    "%d: %s", (int)(c - conns), n == 0 ?
				    "EOF" : strerror(errno));
				c->ended = 1;
				nended++;
			}
			(void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			return;
		}
		buf_put(&c->in, tmp, (size_t)n);
		assert_false(buf_failed(&c->in));
		off = 0;
		while (proto_frame_check(c->in.data + off, c->in.len - off,
		    PROTO_MAX_FRAME_BYTES, &len) == 1) {
			assert_int_equal(proto_decode(c->in.data + off, len,
			    &m, &why), 0);
			conn_frame(c, &m);
			off += len;
		}
		buf_consume(&c->in, off);
		if (c->in.len == 0)
			buf_free(&c->in);	/* 10,000 idle buffers: none */
	}
}

static int
conn_open(struct conn *c, int port, const char *name)
{
	struct sockaddr_in	 sin;
	struct epoll_event	 ev;
	struct buf		 b;
	int			 one = 1;

	memset(c, 0, sizeof(*c));
	buf_init(&c->in);
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Blocking: on loopback the kernel completes the handshake at
	 * once while the backlog has room, which MAX_INFLIGHT ensures. */
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    fcntl(c->fd, F_SETFL, O_NONBLOCK) == -1) {
		close(c->fd);
		return -1;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev), 0);
	buf_init(&b);
	proto_put_hello(&b, PROTO_VERSION, 0, name);
	conn_send(c, &b);
	buf_free(&b);
	return 0;
}

/* Handles what is readable, waiting up to wait_ms. */
static void
poll_once(int wait_ms)
{
	struct epoll_event	 evs[512];
	int			 i, n;

	n = epoll_wait(ep, evs, 512, wait_ms);
	assert_true(n >= 0 || errno == EINTR);
	for (i = 0; i < n; i++)
		conn_read(evs[i].data.ptr);
}

/* The keepalive duty: PING every welcomed session every PING_MS, spread
 * over the period (a slice of them at each call). */
static void
ping_due(int64_t now)
{
	static int64_t	 round_start;
	static int	 next;
	struct buf	 b;
	int		 upto;

	if (round_start == 0)
		round_start = now;
	if (now - round_start >= PING_MS) {
		/* A round that did not finish (a slow turn) finishes now. */
		upto = NSESSIONS + 1;
	} else
		upto = (int)((NSESSIONS + 1) * (now - round_start) / PING_MS);
	buf_init(&b);
	for (; next < upto; next++) {
		struct conn	*c = &conns[next];

		if (c->fd <= 0 || !c->welcomed || c->ended)
			continue;
		proto_put_ping(&b, PROTO_PING, ++ping_token);
		conn_send(c, &b);
	}
	buf_free(&b);
	if (next >= NSESSIONS + 1) {
		next = 0;
		round_start = now;
	}
}

/* Runs the loop (reads, keepalives) for ms milliseconds. */
static void
run_for(int ms)
{
	int64_t	 end = now_ms() + ms;

	while (now_ms() < end) {
		poll_once(10);
		ping_due(now_ms());
	}
}

/* Runs the loop until cond() or timeout_ms; returns cond(). */
static int
run_until(int (*cond)(void), int timeout_ms)
{
	int64_t	 end = now_ms() + timeout_ms;

	while (!cond() && now_ms() < end) {
		poll_once(10);
		ping_due(now_ms());
	}
	return cond();
}

static int
have_stats(void)
{
	return obs.have_stats;
}

/* QUERY STATS through the observer; fills obs.sessions. */
static void
query_stats(void)
{
	struct buf	 b;

	obs.have_stats = 0;
	buf_init(&b);
	proto_put_query(&b, 1, PROTO_QUERY_STATS);
	conn_send(OBSERVER, &b);
	buf_free(&b);
	if (!run_until(have_stats, 10000))
		fail_msg("no answer to QUERY STATS within 10 s");
}

static int
observer_ready(void)
{
	return OBSERVER->welcomed && obs.ended;
}

static int
all_welcomed(void)
{
	return nwelcomed == NSESSIONS + 1;
}

static int
rows_gone(void)
{
	return obs.rows_removed >= NSESSIONS;
}

static void
test_10k_sessions(void **state)
{
	struct ispd_proc	 d;
	struct linger		 lg = { 1, 0 };
	struct buf		 b;
	char			 name[32];
	long			 rss_idle, rss_full, rss_later, rss_after;
	int64_t			 t0, t_connected;
	int			 i, opened = 0;

	raise_nofile();
	/* ASan's quarantine keeps freed memory (up to 256 MiB) from
	 * reuse: RSS would rise with every PONG buffer freed, a growth
	 * that is ASan's and not ispd's. 8 MiB keeps the check honest. */
	{
		const char	*o = getenv("ASAN_OPTIONS");
		char		 opts[512];

		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=8",
		    o != NULL ? o : "", o != NULL && *o != '\0' ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
	assert_non_null(conns = calloc(NSESSIONS + 1, sizeof(*conns)));
	assert_true((ep = epoll_create1(EPOLL_CLOEXEC)) != -1);
	ispd_start(&d, "--hold", HOLD_ARG, "--log-level", "warn", NULL);
	t0 = now_ms();

	/* The observer first: baseline, and the rows of all to come. */
	assert_int_equal(conn_open(OBSERVER, d.port, "observer"), 0);
	buf_init(&b);
	proto_put_subscribe(&b, 1, proto_bytes(PROTO_SESSIONS_TABLE,
	    strlen(PROTO_SESSIONS_TABLE)), 0, proto_bytes("", 0));
	conn_send(OBSERVER, &b);
	buf_free(&b);
	if (!run_until(observer_ready, 10000))
		fail_msg("observer not welcomed with its snapshot in 10 s");
	query_stats();
	assert_int_equal(obs.sessions, 1);
	rss_idle = rss_kib(d.pid);

	/* Connect, at most MAX_INFLIGHT not yet welcomed. */
	while (opened < NSESSIONS) {
		while (opened < NSESSIONS && inflight < MAX_INFLIGHT) {
			snprintf(name, sizeof(name), "gw-%d", opened);
			if (conn_open(&conns[opened], d.port, name) == -1)
				fail_msg("connect of session %d: %s", opened,
				    strerror(errno));
			opened++;
			inflight++;
		}
		poll_once(1);
		ping_due(now_ms());
		if (now_ms() - t0 > 40000)
			fail_msg("only %d of %d sessions connected in 40 s",
			    nwelcomed, NSESSIONS);
		if (nended > 0)
			fail_msg("%d sessions ended while connecting: %s",
			    nended, obs.why);
	}
	if (!run_until(all_welcomed, 10000))
		fail_msg("%d of %d sessions welcomed", nwelcomed,
		    NSESSIONS + 1);
	t_connected = now_ms();

	/* One hold period, then the first sample; two more, the second. */
	run_for(HOLD_MS);
	query_stats();
	assert_int_equal(obs.sessions, NSESSIONS + 1);
	rss_full = rss_kib(d.pid);
	run_for(2 * HOLD_MS);
	query_stats();
	rss_later = rss_kib(d.pid);
	if (nended > 0)
		fail_msg("%d sessions ended while keeping their keepalives: "
		    "%s", nended, obs.why);
	assert_int_equal(obs.sessions, NSESSIONS + 1);
	assert_int_equal(obs.hold_expired, 0);
	assert_int_equal(obs.rows_added, NSESSIONS + 1);
	assert_int_equal(obs.rows_removed, 0);

	print_message("# %d sessions connected in %" PRId64 " ms; ispd RSS "
	    "%ld KiB idle, %ld KiB with them, %ld KiB %d ms later (bound "
	    "%d KiB, growth allowed %d KiB)\n", NSESSIONS, t_connected - t0,
	    rss_idle, rss_full, rss_later, 2 * HOLD_MS, RSS_BOUND_KIB,
	    RSS_GROWTH_KIB);
	assert_true(rss_full > 0 && rss_later > 0);
	assert_true(rss_full < RSS_BOUND_KIB);
	assert_true(rss_later < RSS_BOUND_KIB);
	assert_true(rss_later <= rss_full + RSS_GROWTH_KIB);

	/* Everyone leaves, three ways. */
	buf_init(&b);
	for (i = 0; i < NSESSIONS; i++) {
		struct conn	*c = &conns[i];

		switch (i % 3) {
		case 0:
			proto_put_bye(&b, 0, "leaving");
			conn_send(c, &b);
			break;
		case 2:
			(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg,
			    sizeof(lg));
			break;
		}
		(void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
		c->ended = 1;
		buf_free(&c->in);
	}
	buf_free(&b);
	if (!run_until(rows_gone, 20000))
		fail_msg("%d of %d sessions rows withdrawn within 20 s",
		    obs.rows_removed, NSESSIONS);
	query_stats();
	assert_int_equal(obs.sessions, 1);
	rss_after = rss_kib(d.pid);
	print_message("# all gone after %" PRId64 " ms in all; ispd RSS "
	    "%ld KiB\n", now_ms() - t0, rss_after);

	close(OBSERVER->fd);
	buf_free(&OBSERVER->in);
	close(ep);
	ep = -1;
	free(conns);
	conns = NULL;
	assert_int_equal(ispd_stop(&d), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_10k_sessions),
	};

	return cmocka_run_group_tests_name("sessions10k", tests, NULL, NULL);
}
