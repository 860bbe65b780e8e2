/*
 * session: one client connection, from accept to close.
 *
 * Input: at most SESSION_READ_BYTES per readiness event into a buffer
 * shared by all sessions; whole frames are handled straight from it and
 * only a trailing partial frame is copied into the session (so ten
 * thousand idle sessions hold no input buffer). Every frame's length is
 * checked against the limits (the protocol's, then --max-frame-bytes)
 * as soon as its four length bytes are in, before any byte of it is
 * kept; a partial frame is then completed by reading only the bytes it
 * lacks into a buffer of exactly its size, so a session never makes
 * ispd hold more input than one frame of at most --max-frame-bytes.
 *
 * Output: queued (outq.c) and written by session_flush_all() just before
 * the loop sleeps, or on EPOLLOUT when a queue did not drain. After each
 * write the queue is topped up with what feed.c owes the subscriber
 * (snapshot, catch-up), so those are produced as fast as the peer reads
 * and no faster. Replies are not coalesced: a client that sends requests
 * and does not read the answers (QUERY is a 10-byte request for a reply
 * of up to a frame) would grow its queue without bound, so its input is
 * paused while its queue holds twice --max-queue-bytes, and resumed at
 * the low-water mark. TCP then pushes back on the client.
 *
 * Session limits (limit.c) are checked at accept: a connection over one
 * gets ERROR LIMIT and is closed (on a TLS port it is closed without a
 * word: a connection flood must not cost a TLS handshake each).
 *
 * TLS (tls.c): a session accepted on a TLS listener does its handshake
 * first, driven by readiness like everything else; then it reads
 * through tls_read() and writes through tls_flush(). The plain path is
 * untouched: one test of s->tls. OpenSSL can hold decrypted bytes that
 * epoll does not announce, so a TLS session that filled its read buffer
 * is read again in the next loop turn (rx_list).
 *
 * Identity: after HELLO, auth.c decides whether the session proves who
 * it is (CHALLENGE and AUTH with a shared secret), unless its TLS client
 * certificate did; acl.c applies the rules to that identity.
 *
 * Closing is in two steps, so that nothing is freed under a caller that
 * is walking a list (a fan-out, a flush):
 *	session_close()	marks the session ENDING and logs why; input stops
 *			(session_lost() when the peer went away without
 *			BYE: graceful tables then keep its records, table.c);
 *	session_reap()	(before the loop sleeps) drops its subscriptions,
 *			has its records withdrawn (table.c: at once, or in
 *			slices while the struct stays as a "ghost" owning
 *			them), then either frees it or, when its last frames
 *			(an ERROR, a BYE) must reach the peer, lets it
 *			LINGER: flush, shutdown(SHUT_WR), wait for the
 *			peer's EOF, at most SESSION_LINGER_MS.
 *
 * Hold timer: sessions sit on hold_list in the order of their last
 * received frame, so a frame moves one to the tail in O(1) and the timer
 * only looks at the head. It runs from the connect, so a peer that
 * connects and sends nothing, or half a frame, is closed after the hold
 * time like any silent one (the handshake timeout).
 */
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isp.h"
#include "ispd.h"
#include "acl.h"
#include "feed.h"
#include "tls.h"

struct ispd_stats	 ispd_stats;

/* Every session, whatever its state. */
static struct session_list	 sessions = TAILQ_HEAD_INITIALIZER(sessions);
/* NEW and READY sessions, oldest last frame first. */
static struct session_list	 hold_list = TAILQ_HEAD_INITIALIZER(hold_list);
/* LINGER sessions, earliest deadline first (all get the same delay). */
static struct session_list	 linger_list =
    TAILQ_HEAD_INITIALIZER(linger_list);
/* Sessions with queued output and no EPOLLOUT armed. */
static struct session_list	 pending_list =
    TAILQ_HEAD_INITIALIZER(pending_list);
/* ENDING sessions, waiting for session_reap(). */
static struct session_list	 ending_list =
    TAILQ_HEAD_INITIALIZER(ending_list);
/* Sessions whose input was resumed with whole frames buffered. */
static struct session_list	 resume_list =
    TAILQ_HEAD_INITIALIZER(resume_list);
/* TLS sessions with bytes left inside OpenSSL, to read next turn. */
static struct session_list	 rx_list = TAILQ_HEAD_INITIALIZER(rx_list);

static size_t		 nlive;		/* NEW and READY sessions */
static size_t		 npaused;	/* sessions with input paused */
static uint64_t		 next_session_id = 1;
static struct buf	 reply;		/* where private replies are built */
static uint8_t		 rbuf[SESSION_READ_BYTES];

static void	session_io(void *, uint32_t);
static void	session_want_flush(struct session *);
static void	session_touch(struct session *, uint64_t);
static void	session_refuse(struct session *, const char *, int);
static void	session_rx_later(struct session *);
static int	session_kick(struct session *, const struct proto_msg *,
		    char *, size_t);
static void	session_end(struct session *, int, const char *, int);
static void	session_lost(struct session *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	session_vend(struct session *, int, int, const char *, va_list)
		    __attribute__((format(printf, 4, 0)));

/* Every reply is built in reply from scratch, whatever became of the
 * last one (an encoder that ran out of memory marks the buffer). */
static void
reply_begin(void)
{
	reply.len = 0;
	buf_clear_failed(&reply);
}

/* A plain-TCP session: session_open() without TLS. */
struct session *
session_new(int fd, const char *peer)
{
	return session_open(fd, peer, 0);
}

/*
 * A session for an accepted, non-blocking socket, with TLS when tls is
 * set. peer is its address as text. Returns NULL when out of memory or
 * when epoll refuses the fd; the caller closes the fd then.
 */
struct session *
session_open(int fd, const char *peer, int tls)
{
	struct session	*s;
	char		 why[PROTO_MAX_STR_BYTES + 1];

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("session from %s", peer);
		return NULL;
	}
	s->owner.kind = OWNER_SESSION;
	s->owner.id = next_session_id;
	s->fd = fd;
	s->state = SESSION_NEW;
	snprintf(s->owner.peer, sizeof(s->owner.peer), "%s", peer);
	s->last_rx_ms = loop_now_ms();
	s->create_ms = loop_now_ms();
	s->create_tokens = ispd_conf.max_table_creates_per_sec * 1000;
	buf_init(&s->in);
	outq_init(&s->out);
	TAILQ_INIT(&s->owner.owned);
	TAILQ_INIT(&s->subs);
	if (loop_add(&s->io, fd, EPOLLIN, session_io, s) == -1) {
		log_warn("session from %s: epoll_ctl", peer);
		free(s);
		return NULL;
	}
	next_session_id++;
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	TAILQ_INSERT_TAIL(&hold_list, s, timer_entry);
	nlive++;
	ispd_stats.sessions_total++;
	log_debug("session %" PRIu64 " (%s): connected", s->owner.id,
	    s->owner.peer);
	switch (limit_session_open(s, why, sizeof(why))) {
	case 0:
		if (tls && tls_session_start(s) == -1)
			session_close(s, SESSION_CLOSE_NOW, "out of memory "
			    "starting TLS");
		break;
	case -1:
		session_close(s, SESSION_CLOSE_NOW, "out of memory");
		break;
	default:
		session_refuse(s, why, tls);
		break;
	}
	return s;
}

/* A session over a limit of sessions: ERROR LIMIT, then closed once that
 * is written. Logged at most once a second with the number left
 * unlogged, so that a connection flood does not become a log flood. */
static void
session_refuse(struct session *s, const char *why, int tls)
{
	static struct log_rate	 rate;
	uint64_t		 unlogged;

	ispd_stats.sessions_refused++;
	if (!tls)
		session_error(s, 0, ISP_E_LIMIT, "%s", why);
	if (log_rate_ok(&rate, &unlogged))
		log_warnx("refusing a connection from %s: %s (%" PRIu64
		    " more refused since the last such message)", s->owner.peer,
		    why, unlogged);
	session_end(s, tls ? SESSION_CLOSE_NOW : SESSION_CLOSE_FLUSH, why, 0);
}

/* The bytes of queue above which snapshots and catch-ups are not
 * produced, and below which paused input resumes. A quarter: the peer
 * has plenty queued to read while ispd produces the next slice. */
size_t
session_low_water(void)
{
	return ispd_conf.max_queue_bytes / 4;
}

/* Watches what s waits for now. */
void
session_update_io(struct session *s)
{
	uint32_t	 events = s->in_paused ? 0 : EPOLLIN;

	/* Feed work with an empty queue: EPOLLOUT fires at once, and the
	 * flush it runs produces the next slice. One slice per session
	 * per turn, so the loop stays fair. */
	if (s->out.count > 0 || (s->state == SESSION_READY && s->nfeed > 0))
		events |= EPOLLOUT;
	if (s->tls != NULL)
		events = tls_watch(s, events);
	loop_set(&s->io, events);
}

/* tls.c finished the handshake of s. */
void
session_tls_ready(struct session *s)
{
	session_update_io(s);
}

static void
session_pause(struct session *s)
{
	if (s->in_paused)
		return;
	s->in_paused = 1;
	npaused++;
	log_debug("session %" PRIu64 " (%s): %zu bytes queued, input paused "
	    "until the client reads", s->owner.id, s->owner.peer, s->out.bytes);
	session_update_io(s);
}

static void
session_resume(struct session *s)
{
	if (!s->in_paused)
		return;
	s->in_paused = 0;
	npaused--;
	/* Whole frames may wait in s->in with no byte left in the socket
	 * to wake us: the timers handle them in the next turn. */
	if (s->in.len > 0 && !s->resuming) {
		s->resuming = 1;
		TAILQ_INSERT_TAIL(&resume_list, s, resume_entry);
	}
	/* So may bytes inside OpenSSL. */
	if (s->tls != NULL)
		session_rx_later(s);
}

/* s is read again in the next loop turn. */
static void
session_rx_later(struct session *s)
{
	if (s->rx_more)
		return;
	s->rx_more = 1;
	TAILQ_INSERT_TAIL(&rx_list, s, rx_entry);
}

/* s has output to write or feed work to do: flush it before sleeping. */
void
session_wake(struct session *s)
{
	session_want_flush(s);
}

static void
session_want_flush(struct session *s)
{
	/* With EPOLLOUT armed the socket is full: the EPOLLOUT handler
	 * writes when it can, there is no point trying before. */
	if (s->pending || (s->io.events & EPOLLOUT))
		return;
	s->pending = 1;
	TAILQ_INSERT_TAIL(&pending_list, s, pending_entry);
}

/*
 * Queues a private copy of b's nframes frames to s. Returns 0, or -1
 * when b failed to encode or the queue is out of memory: s is then
 * closing, and the caller stops serving it.
 */
int
session_send(struct session *s, const struct buf *b, uint32_t nframes)
{
	if (buf_failed(b) || outq_append(&s->out, b->data, b->len) == -1) {
		session_close(s, SESSION_CLOSE_NOW, "out of memory queueing "
		    "output");
		return -1;
	}
	ispd_stats.frames_out += nframes;
	session_want_flush(s);
	return 0;
}

/* Queues one shared, encoded event. */
void
session_push(struct session *s, struct obuf *ob)
{
	if (outq_push(&s->out, ob) == -1) {
		session_close(s, SESSION_CLOSE_NOW, "out of memory queueing an "
		    "event");
		return;
	}
	ispd_stats.frames_out++;
	session_want_flush(s);
}

static void __attribute__((format(printf, 4, 0)))
session_verror(struct session *s, uint32_t req_id, int code, const char *fmt,
    va_list ap)
{
	char	 reason[PROTO_MAX_STR_BYTES + 1];

	vsnprintf(reason, sizeof(reason), fmt, ap);
	log_debug("session %" PRIu64 " (%s): error %d to request %" PRIu32
	    ": %s", s->owner.id, s->owner.peer, code, req_id, reason);
	reply_begin();
	proto_put_error(&reply, req_id, (uint16_t)code, reason);
	ispd_stats.errors_sent++;
	if (code == ISP_E_LIMIT)
		ispd_stats.limit_errors++;
	(void)session_send(s, &reply, 1);
}

/* Queues ERROR(req_id, code, reason). */
void
session_error(struct session *s, uint32_t req_id, int code, const char *fmt,
    ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	session_verror(s, req_id, code, fmt, ap);
	va_end(ap);
}

/* Queues ERROR(req_id, code, reason), then closes the session once the
 * error is written: the reason goes both to the peer and to the log. */
static void __attribute__((format(printf, 4, 5)))
session_fail(struct session *s, uint32_t req_id, int code, const char *fmt,
    ...)
{
	char	 reason[PROTO_MAX_STR_BYTES + 1];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	session_error(s, req_id, code, "%s", reason);
	session_close(s, SESSION_CLOSE_FLUSH, "%s", reason);
}

/*
 * Decides that s ends, and why (logged). The teardown runs later, in
 * session_reap(), so this is safe from anywhere, a fan-out included.
 * how is SESSION_CLOSE_NOW (the peer is gone or broken: drop its output)
 * or SESSION_CLOSE_FLUSH (write what is queued first). Idempotent.
 */
void
session_close(struct session *s, int how, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	session_vend(s, how, 0, fmt, ap);
	va_end(ap);
}

/*
 * session_close() for a peer that went away without BYE: the connection
 * closed or broke, or fell silent for the hold time. The session is
 * lost, not ended: table.c holds its records in graceful tables for the
 * client's next session (docs/HA.md). Idempotent, like session_close():
 * a session whose end was decided already (a BYE) is not lost.
 */
static void
session_lost(struct session *s, int how, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	session_vend(s, how, 1, fmt, ap);
	va_end(ap);
}

static void
session_vend(struct session *s, int how, int lost, const char *fmt,
    va_list ap)
{
	char	 reason[PROTO_MAX_STR_BYTES + 1];

	if (s->state >= SESSION_ENDING)
		return;
	vsnprintf(reason, sizeof(reason), fmt, ap);
	s->lost = lost;
	session_end(s, how, reason, 1);
}

/* session_close() without the formatting; loud logs at info, else at
 * debug (refusals and shutdown have their own messages). */
static void
session_end(struct session *s, int how, const char *reason, int loud)
{
	if (s->state >= SESSION_ENDING)
		return;
	if (loud)
		log_info("session %" PRIu64 " (%s): closing: %s", s->owner.id,
		    s->owner.peer, reason);
	else
		log_debug("session %" PRIu64 " (%s): closing: %s", s->owner.id,
		    s->owner.peer, reason);
	TAILQ_REMOVE(&hold_list, s, timer_entry);
	if (s->resuming) {
		TAILQ_REMOVE(&resume_list, s, resume_entry);
		s->resuming = 0;
	}
	if (s->rx_more) {
		TAILQ_REMOVE(&rx_list, s, rx_entry);
		s->rx_more = 0;
	}
	/* A lingering session reads until the peer's EOF. */
	if (s->in_paused) {
		s->in_paused = 0;
		npaused--;
	}
	s->state = SESSION_ENDING;
	s->flush_on_close = how == SESSION_CLOSE_FLUSH;
	TAILQ_INSERT_TAIL(&ending_list, s, end_entry);
	nlive--;
	limit_session_close(s);
}

/* Closes s's socket and drops its queues. The struct goes too, unless s
 * is a ghost whose records table.c is still withdrawing: then
 * session_ghost_done() frees it. */
static void
session_free(struct session *s)
{
	if (s->state != SESSION_LINGER && s->state != SESSION_ENDING)
		fatalx("session_free: session %" PRIu64 " in state %d",
		    s->owner.id, s->state);
	if (s->state == SESSION_LINGER)
		TAILQ_REMOVE(&linger_list, s, timer_entry);
	if (s->pending)
		TAILQ_REMOVE(&pending_list, s, pending_entry);
	s->pending = 0;
	TAILQ_REMOVE(&sessions, s, entry);
	loop_del(&s->io);
	tls_session_free(s);
	close(s->fd);
	s->fd = -1;
	outq_free(&s->out);
	buf_free(&s->in);
	s->released = 1;
	if (s->owner.ghost) {
		log_debug("session %" PRIu64 " (%s): closed, %zu records left "
		    "to withdraw", s->owner.id, s->owner.peer,
		    s->owner.nrecords);
		return;
	}
	log_debug("session %" PRIu64 " (%s): freed", s->owner.id,
	    s->owner.peer);
	free(s);
}

/* table.c withdrew the last record of the ghost s. */
void
session_ghost_done(struct session *s)
{
	if (s->released) {
		log_debug("session %" PRIu64 " (%s): freed", s->owner.id,
		    s->owner.peer);
		free(s);
	}
}

/* Runs the teardown of every session session_close() marked: its records
 * are withdrawn and its subscriptions dropped now. */
void
session_reap(void)
{
	struct session	*s;

	while ((s = TAILQ_FIRST(&ending_list)) != NULL) {
		TAILQ_REMOVE(&ending_list, s, end_entry);
		subscr_session_end(s);
		table_session_end(s);
		if (!s->flush_on_close) {
			session_free(s);
			continue;
		}
		s->state = SESSION_LINGER;
		s->linger_until_ms = loop_now_ms() + SESSION_LINGER_MS;
		TAILQ_INSERT_TAIL(&linger_list, s, timer_entry);
		session_want_flush(s);
	}
}

/* outq_flush(), through TLS when s has it. */
static int
session_write(struct session *s, size_t *written)
{
	if (s->tls != NULL)
		return tls_flush(s, written);
	return outq_flush(&s->out, s->fd, written);
}

/* The text of a failed read or write's errno. */
static const char *
session_strerror(const struct session *s, int err)
{
	if (s->tls != NULL && err == EPROTO)
		return tls_last_error();
	return strerror(err);
}

/*
 * Writes what s has queued; when the queue fell below the low-water mark
 * and feed.c owes s something, produces the next slice and writes again.
 * Returns -1 when s was freed.
 */
static int
session_flush(struct session *s)
{
	size_t	 written = 0;
	int	 rc;

	rc = session_write(s, &written);
	if (rc != -1 && s->state == SESSION_READY && s->nfeed > 0 &&
	    s->out.bytes < session_low_water() && feed_fill(s) == 0 &&
	    rc == 1)
		rc = session_write(s, &written);
	ispd_stats.bytes_out += written;
	if (rc == -1) {
		if (s->state == SESSION_LINGER) {
			session_free(s);
			return -1;
		}
		session_lost(s, SESSION_CLOSE_NOW, "write failed: %s",
		    session_strerror(s, errno));
		loop_set(&s->io, EPOLLIN);
		return 0;
	}
	if (s->in_paused) {
		/* A client that reads is alive, though ispd does not read
		 * its frames meanwhile. */
		if (written > 0)
			session_touch(s, loop_now_ms());
		if (s->out.bytes < session_low_water())
			session_resume(s);
	}
	session_update_io(s);
	if (rc == 1 && s->state == SESSION_LINGER && !s->write_shut) {
		/* Our FIN after the last frame; the peer's EOF (or the
		 * linger deadline) ends it. Closing right away with unread
		 * input would send a RST that can destroy the frame. */
		tls_shutdown(s);
		(void)shutdown(s->fd, SHUT_WR);
		s->write_shut = 1;
	}
	return 0;
}

void
session_flush_all(void)
{
	struct session	*s;

	while ((s = TAILQ_FIRST(&pending_list)) != NULL) {
		TAILQ_REMOVE(&pending_list, s, pending_entry);
		s->pending = 0;
		(void)session_flush(s);
	}
}

/* Redis's beforeSleep: tear down what was closed, write what was queued.
 * A teardown queues events, a failed write closes a session: repeat
 * until both are settled (each session ends once, so this stops). */
void
session_before_sleep(void)
{
	do {
		session_reap();
		session_flush_all();
	} while (!TAILQ_EMPTY(&ending_list));
}

/* A frame arrived: restart the hold timer. */
static void
session_touch(struct session *s, uint64_t now_ms)
{
	s->last_rx_ms = now_ms;
	if (TAILQ_LAST(&hold_list, session_list) != s) {
		TAILQ_REMOVE(&hold_list, s, timer_entry);
		TAILQ_INSERT_TAIL(&hold_list, s, timer_entry);
	}
}

static int
session_name_valid(struct proto_bytes name)
{
	size_t	 i;

	if (name.len < 1 || name.len > SESSION_NAME_MAX)
		return 0;
	for (i = 0; i < name.len; i++)
		if (name.p[i] < 0x20 || name.p[i] > 0x7e)
			return 0;
	return 1;
}

/* Drain (SIGUSR1): when the daemon closes every session, and why; 0
 * while it is not draining. */
static uint64_t		 going_down_at;
static char		 going_down_why[PROTO_MAX_STR_BYTES + 1];

/* GOING_DOWN to one welcomed session, with the time left. */
static void
session_tell_going_down(struct session *s)
{
	uint64_t	 now = loop_now_ms(), left;

	left = going_down_at > now ? going_down_at - now : 0;
	if (left > UINT32_MAX)
		left = UINT32_MAX;
	reply_begin();
	proto_put_going_down(&reply, (uint32_t)left, going_down_why);
	(void)session_send(s, &reply, 1);
}

/*
 * Drain: every welcomed session, and every one welcomed from now on, is
 * told that the daemon closes its sessions at deadline_ms (main.c stops
 * the loop then, and the usual shutdown sends BYE SHUTDOWN).
 */
void
session_going_down(uint64_t deadline_ms, const char *reason)
{
	struct session	*s;

	going_down_at = deadline_ms != 0 ? deadline_ms : 1;
	snprintf(going_down_why, sizeof(going_down_why), "%s", reason);
	TAILQ_FOREACH(s, &sessions, entry)
		if (s->state == SESSION_READY)
			session_tell_going_down(s);
}

/* The handshake is over: WELCOME, and s is in the sessions table. */
static void
session_welcome(struct session *s)
{
	uint32_t	 caps;

	/* Shared caps; AUTH says the session is authenticated. */
	caps = s->hello_caps & PROTO_CAPS_KNOWN & ~PROTO_CAP_AUTH;
	if (s->auth != SESSION_AUTH_NONE)
		caps |= PROTO_CAP_AUTH;
	reply_begin();
	proto_put_welcome(&reply, PROTO_VERSION, caps, ispd_conf.hold_ms,
	    s->owner.id, ispd_conf.server_id);
	if (session_send(s, &reply, 1) == -1)
		return;
	s->state = SESSION_READY;
	if (table_session_welcome(s) == -1) {
		session_close(s, SESSION_CLOSE_NOW, "out of memory");
		return;
	}
	if (s->auth == SESSION_AUTH_NONE)
		log_info("session %" PRIu64 " (%s): welcome, client %s",
		    s->owner.id, s->owner.peer, s->owner.name);
	else
		log_info("session %" PRIu64 " (%s): welcome, client %s, "
		    "identity %s (%s)", s->owner.id, s->owner.peer,
		    s->owner.name, s->owner.ident,
		    s->auth == SESSION_AUTH_CERT ? "certificate" :
		    "shared secret");
	if (going_down_at != 0 && s->state == SESSION_READY)
		session_tell_going_down(s);
}

static void
session_hello(struct session *s, const struct proto_msg *m)
{
	char	 why[PROTO_MAX_STR_BYTES + 1];

	if (s->state != SESSION_NEW || s->owner.name_len > 0) {
		session_fail(s, 0, ISP_E_PROTOCOL, "HELLO sent twice");
		return;
	}
	if (m->version != PROTO_VERSION) {
		session_fail(s, 0, ISP_E_VERSION, "ispd speaks protocol "
		    "version %d, the client sent version %u", PROTO_VERSION,
		    m->version);
		return;
	}
	if (!session_name_valid(m->text)) {
		session_fail(s, 0, ISP_E_BAD_REQUEST, "client name must be 1 "
		    "to %d printable ASCII characters", SESSION_NAME_MAX);
		return;
	}
	memcpy(s->owner.name, m->text.p, m->text.len);
	s->owner.name[m->text.len] = '\0';
	s->owner.name_len = m->text.len;
	s->since = time(NULL);
	s->hello_caps = m->caps;
	switch (auth_hello(s, m->caps, why, sizeof(why))) {
	case 0:
		session_welcome(s);
		return;
	case 1:
		return;		/* CHALLENGE sent */
	case -1:
		session_close(s, SESSION_CLOSE_NOW, "out of memory");
		return;
	default:
		session_fail(s, 0, ISP_E_AUTH, "%s", why);
		return;
	}
}

/* AUTH, the answer to our CHALLENGE. */
static void
session_auth(struct session *s, const struct proto_msg *m)
{
	char	 why[PROTO_MAX_STR_BYTES + 1];

	if (!s->auth_wait) {
		session_fail(s, 0, ISP_E_PROTOCOL, "AUTH without a CHALLENGE");
		return;
	}
	if (auth_verify(s, m, why, sizeof(why)) != 0) {
		session_fail(s, 0, ISP_E_AUTH, "%s", why);
		return;
	}
	session_welcome(s);
}

static void
session_ping(struct session *s, uint64_t token)
{
	reply_begin();
	proto_put_ping(&reply, PROTO_PONG, token);
	(void)session_send(s, &reply, 1);
}

/* Handles one whole frame of len bytes, header included. */
static void
session_frame(struct session *s, const uint8_t *f, size_t len)
{
	struct proto_msg	 m;
	const char		*why;
	char			 reason[PROTO_MAX_STR_BYTES + 1];
	uint8_t			 type = f[4];
	int			 rc;

	ispd_stats.frames_in++;
	session_touch(s, loop_now_ms());
	if (s->state == SESSION_NEW && s->auth_wait && type != PROTO_AUTH) {
		session_fail(s, 0, ISP_E_NOT_READY, "the frame after "
		    "CHALLENGE must be AUTH, not %s (type 0x%02x)",
		    proto_type_name(type), type);
		return;
	}
	if (s->state == SESSION_NEW && type != PROTO_HELLO &&
	    type != PROTO_AUTH) {
		session_fail(s, 0, ISP_E_NOT_READY, "the first frame must be "
		    "HELLO, not %s (type 0x%02x)", proto_type_name(type), type);
		return;
	}
	if ((rc = proto_decode(f, len, &m, &why)) == ISP_E_UNKNOWN_TYPE) {
		/* Its length is known: skip it and go on, so that a newer
		 * client can probe for what we do not speak. */
		session_error(s, 0, ISP_E_UNKNOWN_TYPE, "frame type 0x%02x is "
		    "not defined in protocol version %d", type, PROTO_VERSION);
		return;
	}
	if (rc != 0) {
		if (type >= PROTO_ANNOUNCE && type <= PROTO_ADMIN &&
		    len >= PROTO_HEADER_BYTES + 4) {
			session_error(s, get_be32(f + PROTO_HEADER_BYTES), rc,
			    "bad %s: %s", proto_type_name(type), why);
			return;
		}
		session_fail(s, 0, ISP_E_PROTOCOL, "malformed %s frame: %s",
		    proto_type_name(type), why);
		return;
	}

	reason[0] = '\0';
	switch (type) {
	case PROTO_HELLO:
		session_hello(s, &m);
		return;
	case PROTO_AUTH:
		session_auth(s, &m);
		return;
	case PROTO_PING:
		session_ping(s, m.token);
		return;
	case PROTO_PONG:
		return;
	case PROTO_BYE:
		session_close(s, SESSION_CLOSE_FLUSH, "client said BYE");
		return;
	case PROTO_ANNOUNCE:
		rc = table_announce(s, &m, reason, sizeof(reason));
		break;
	case PROTO_WITHDRAW:
		rc = table_withdraw(s, &m, reason, sizeof(reason));
		break;
	case PROTO_SUBSCRIBE:
		rc = subscr_subscribe(s, &m, reason, sizeof(reason));
		break;
	case PROTO_UNSUBSCRIBE:
		rc = subscr_unsubscribe(s, &m, reason, sizeof(reason));
		break;
	case PROTO_QUERY:
		rc = stats_query(s, &m, reason, sizeof(reason));
		break;
	case PROTO_END_OF_REPLAY:
		graceful_end_of_replay(s);
		return;
	case PROTO_ADMIN:
		if (m.what == PROTO_ADMIN_KICK)
			rc = session_kick(s, &m, reason, sizeof(reason));
		else if (m.what == PROTO_ADMIN_EVICT)
			rc = table_evict(s, &m, reason, sizeof(reason));
		else if (m.what == PROTO_ADMIN_DROP)
			rc = table_drop(s, &m, reason, sizeof(reason));
		else
			rc = graceful_list(s, &m, reason, sizeof(reason));
		break;
	default:
		session_fail(s, 0, ISP_E_PROTOCOL, "%s is sent by servers, "
		    "never by clients", proto_type_name(type));
		return;
	}
	if (rc == -1)
		session_close(s, SESSION_CLOSE_NOW, "out of memory serving %s",
		    proto_type_name(type));
	else if (rc != 0)
		session_error(s, m.req_id, rc, "%s", reason);
}

/*
 * ADMIN KICK from s: the session of that id gets BYE naming who ended
 * it and ends. It is not lost but ended: its records are withdrawn at
 * once (reason SESSION), graceful tables included, since holding them
 * for the client's next session would undo the operator's decision. The
 * client may connect again. Returns as table_announce() does.
 */
static int
session_kick(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	struct session	*k;
	char		 done[SESSION_NAME_MAX * 2 + 64];
	int		 rc;

	if ((rc = acl_admin_check(s, ACL_KICK, proto_bytes("*", 1),
	    m->req_id, why, whysz)) != 0)
		return rc;
	TAILQ_FOREACH(k, &sessions, entry)
		if (k->owner.id == m->session_id && k->state <= SESSION_READY)
			break;
	if (k == NULL) {
		snprintf(why, whysz, "no live session %" PRIu64,
		    m->session_id);
		return ISP_E_NOT_FOUND;
	}
	snprintf(done, sizeof(done), "session %" PRIu64 " of client %s "
	    "(identity %s)", k->owner.id, k->owner.name[0] != '\0' ?
	    k->owner.name : "(no HELLO yet)", k->owner.ident);
	log_info("session %" PRIu64 " (%s, client %s, identity %s): kicked %s",
	    s->owner.id, s->owner.peer, s->owner.name, s->owner.ident, done);
	if ((rc = subscr_reply_done(s, m->req_id, done)) != 0)
		return rc;
	snprintf(why, whysz, "session ended by an operator: client %s, "
	    "identity %s (session %" PRIu64 ")", s->owner.name, s->owner.ident,
	    s->owner.id);
	reply_begin();
	proto_put_bye(&reply, ISP_E_DENIED, why);
	(void)session_send(k, &reply, 1);
	session_close(k, SESSION_CLOSE_FLUSH, "%s", why);
	why[0] = '\0';
	return 0;
}

/*
 * The first bytes of a session that is not HELLO but another protocol
 * pointed at an ispd port by mistake: a web client (or an HTTP health
 * check), or a TLS client at a plain port. Either would otherwise read
 * as a frame of a billion bytes. Says which in one line at warn and
 * closes s; returns 1 then. Needs 4 bytes, as the length check does.
 */
static int
session_foreign(struct session *s, const uint8_t *p, size_t len)
{
	static const char	*methods[] = { "GET ", "HEAD ", "POST ",
				    "PUT ", "DELETE ", "OPTIONS ", "PATCH ",
				    "CONNECT ", "TRACE ", "PRI * HTTP/2" };
	const char		*what = NULL, *hint = "";
	size_t			 i, n;

	if (s->state != SESSION_NEW || len < 4)
		return 0;
	if (p[0] == 0x16 && p[1] == 0x03 && p[2] <= 0x04 && s->tls == NULL) {
		/* A TLS record of type handshake, version 3.x. */
		what = "a TLS ClientHello";
		hint = ": TLS clients connect to a --listen-tls port";
	}
	for (i = 0; what == NULL && i < sizeof(methods) / sizeof(methods[0]);
	    i++) {
		n = strlen(methods[i]) < len ? strlen(methods[i]) : len;
		if (memcmp(p, methods[i], n) == 0)
			what = "an HTTP request";
	}
	if (what == NULL)
		return 0;
	log_warnx("session %" PRIu64 " (%s): %s, not the ispd protocol%s; "
	    "closing", s->owner.id, s->owner.peer, what, hint);
	/* A TLS client reads the plain ERROR as a record it cannot parse,
	 * which libisp explains ("is it a TLS port of ispd?"). */
	session_error(s, 0, ISP_E_PROTOCOL, "%s, not the ispd protocol%s",
	    what, hint);
	session_end(s, SESSION_CLOSE_FLUSH, what, 0);
	return 1;
}

/*
 * Handles the whole frames at the start of p. Returns the bytes used;
 * stops early when the session is closing or at a partial frame, whose
 * length has then been checked.
 */
static size_t
session_parse(struct session *s, const uint8_t *p, size_t len)
{
	size_t		 off = 0, frame_bytes;
	uint32_t	 n;

	while (off < len && s->state <= SESSION_READY && !s->in_paused) {
		if (len - off >= 4) {
			if (off == 0 && session_foreign(s, p, len))
				break;
			n = get_be32(p + off);
			if (n == 0) {
				session_fail(s, 0, ISP_E_PROTOCOL,
				    "frame of length 0");
				break;
			}
			if (n > PROTO_MAX_FRAME_BYTES) {
				session_fail(s, 0, ISP_E_FRAME_TOO_LARGE,
				    "frame of %" PRIu32 " bytes is over the "
				    "limit of %u bytes", n,
				    PROTO_MAX_FRAME_BYTES);
				break;
			}
			/* Its bytes cannot be skipped without reading
			 * them, so the session ends. */
			if (n > ispd_conf.max_frame_bytes) {
				limit_hit(CONF_MAX_FRAME_BYTES);
				session_fail(s, 0, ISP_E_LIMIT, "frame of %"
				    PRIu32 " bytes is over the limit of %"
				    PRIu64 " bytes (--max-frame-bytes)", n,
				    ispd_conf.max_frame_bytes);
				break;
			}
		}
		if (proto_frame_check(p + off, len - off,
		    PROTO_MAX_FRAME_BYTES, &frame_bytes) != 1)
			break;
		session_frame(s, p + off, frame_bytes);
		off += frame_bytes;
		if (s->out.bytes >= 2 * ispd_conf.max_queue_bytes)
			session_pause(s);
	}
	return off;
}

/* Handles the whole frames buffered in s->in. */
static void
session_input(struct session *s)
{
	buf_consume(&s->in, session_parse(s, s->in.data, s->in.len));
	/* Give back the room a large frame took. */
	if (s->in.len == 0 && s->in.cap > SESSION_READ_BYTES)
		buf_free(&s->in);
}

/* Makes s->in exactly total bytes large, if it is smaller. */
static int
session_in_reserve(struct session *s, size_t total)
{
	uint8_t	*p;

	if (total <= s->in.cap)
		return 0;
	if ((p = realloc(s->in.data, total)) == NULL)
		return -1;
	s->in.data = p;
	s->in.cap = total;
	return 0;
}

/* read(2), through TLS when s has it. */
static ssize_t
session_recv(struct session *s, void *p, size_t n)
{
	if (s->tls != NULL)
		return tls_read(s, p, n);
	return read(s->fd, p, n);
}

/* A read returned n <= 0: nothing to read now, or the end. Returns 1
 * when s is closing. */
static int
session_read_end(struct session *s, ssize_t n)
{
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			/* OpenSSL wants to write first: EPOLLOUT. */
			if (tls_read_wants_write(s))
				session_update_io(s);
			return 0;
		}
		session_lost(s, SESSION_CLOSE_NOW, "read failed: %s",
		    session_strerror(s, errno));
		return 1;
	}
	session_lost(s, SESSION_CLOSE_NOW, "%s", s->in.len > 0 ?
	    "connection closed by peer in the middle of a frame" :
	    "connection closed by peer");
	return 1;
}

static void
session_read(struct session *s)
{
	size_t	 want, used, max = SESSION_READ_BYTES;
	ssize_t	 n;

	/*
	 * First the frame begun in s->in, whose length session_parse()
	 * checked once its four bytes were in: only the bytes it lacks
	 * are read, into a buffer of exactly its size.
	 */
	if (s->in.len > 0)
		session_input(s);
	while (s->in.len > 0 && s->state <= SESSION_READY && !s->in_paused) {
		if (s->in.len < 4)
			want = 4 - s->in.len;
		else
			want = 4 + (size_t)get_be32(s->in.data) - s->in.len;
		if (session_in_reserve(s, s->in.len + want) == -1) {
			session_close(s, SESSION_CLOSE_NOW, "out of memory for "
			    "input");
			return;
		}
		if ((n = session_recv(s, s->in.data + s->in.len, want)) <= 0) {
			(void)session_read_end(s, n);
			return;
		}
		ispd_stats.bytes_in += (size_t)n;
		s->in.len += (size_t)n;
		if ((size_t)n < want)
			return;
		session_input(s);
	}
	if (s->state > SESSION_READY || s->in_paused)
		return;

	/* A small frame limit reads less, so that what a pause leaves
	 * unparsed is no more than a frame either. */
	if (ispd_conf.max_frame_bytes + 4 < max)
		max = ispd_conf.max_frame_bytes + 4;
	if ((n = session_recv(s, rbuf, max)) <= 0) {
		(void)session_read_end(s, n);
		return;
	}
	ispd_stats.bytes_in += (size_t)n;
	/* A full buffer: OpenSSL may hold more that epoll will not tell. */
	if (s->tls != NULL && (size_t)n == max && tls_pending(s))
		session_rx_later(s);
	used = session_parse(s, rbuf, (size_t)n);
	if (s->state > SESSION_READY || used == (size_t)n)
		return;
	if (session_in_reserve(s, (size_t)n - used) == -1) {
		session_close(s, SESSION_CLOSE_NOW, "out of memory for input");
		return;
	}
	memcpy(s->in.data, rbuf + used, (size_t)n - used);
	s->in.len = (size_t)n - used;
}

/* A lingering session: discard input until the peer's EOF. Returns -1
 * when s was freed. */
static int
session_linger_read(struct session *s)
{
	ssize_t	 n;

	n = read(s->fd, rbuf, sizeof(rbuf));
	if (n > 0 || (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR)))
		return 0;
	session_free(s);
	return -1;
}

static void
session_io(void *arg, uint32_t events)
{
	struct session	*s = arg;

	if (s->tls != NULL) {
		if (!tls_ready(s) && s->state <= SESSION_READY) {
			if (tls_handshake(s) != 1)
				return;
			/* Frames may have come with the handshake. */
			events |= EPOLLIN;
		}
		events = tls_fired(s, events);
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		if (s->state == SESSION_LINGER) {
			if (session_linger_read(s) == -1)
				return;
		} else if (s->state <= SESSION_READY && !s->in_paused)
			session_read(s);
		else if (s->state <= SESSION_READY &&
		    (events & (EPOLLERR | EPOLLHUP)))
			session_lost(s, SESSION_CLOSE_NOW, "connection lost "
			    "while its input was paused");
	}
	if ((events & EPOLLOUT) && s->state != SESSION_ENDING)
		(void)session_flush(s);
}

/* The next hold or linger deadline, or UINT64_MAX. */
uint64_t
session_next_ms(void)
{
	struct session	*s;
	uint64_t	 next = UINT64_MAX;

	if (!TAILQ_EMPTY(&resume_list) || !TAILQ_EMPTY(&rx_list))
		return 0;
	if ((s = TAILQ_FIRST(&hold_list)) != NULL)
		next = s->last_rx_ms + ispd_conf.hold_ms;
	if ((s = TAILQ_FIRST(&linger_list)) != NULL &&
	    s->linger_until_ms < next)
		next = s->linger_until_ms;
	return next;
}

void
session_timers(uint64_t now_ms)
{
	struct session	*s;
	char		 reason[64];
	size_t		 n;
	int		 unread;

	while ((s = TAILQ_FIRST(&resume_list)) != NULL) {
		TAILQ_REMOVE(&resume_list, s, resume_entry);
		s->resuming = 0;
		session_input(s);
	}
	/* Those there now; a read that fills its buffer again puts its
	 * session back for the next turn. */
	for (n = 0, s = TAILQ_FIRST(&rx_list); s != NULL;
	    s = TAILQ_NEXT(s, rx_entry))
		n++;
	while (n-- > 0 && (s = TAILQ_FIRST(&rx_list)) != NULL) {
		TAILQ_REMOVE(&rx_list, s, rx_entry);
		s->rx_more = 0;
		if (s->state <= SESSION_READY && !s->in_paused)
			session_read(s);
	}
	while ((s = TAILQ_FIRST(&hold_list)) != NULL &&
	    s->last_rx_ms + ispd_conf.hold_ms <= now_ms) {
		/*
		 * Bytes that arrived but that we did not read yet are not
		 * silence: after the daemon was stalled (SIGSTOP, a swap
		 * storm, a mass withdrawal) every peer would look silent,
		 * though their keepalives sit in the socket buffers. Not
		 * for a session whose input is paused: those bytes wait
		 * for it to read, and reading renews it (session_flush()).
		 */
		if (!s->in_paused && ioctl(s->fd, FIONREAD, &unread) == 0 &&
		    unread > 0) {
			session_touch(s, now_ms);
			continue;
		}
		ispd_stats.hold_expired++;
		if (s->tls != NULL && !tls_ready(s)) {
			session_close(s, SESSION_CLOSE_NOW, "no TLS handshake "
			    "within the hold time, %" PRIu64 " ms",
			    ispd_conf.hold_ms);
			continue;
		}
		snprintf(reason, sizeof(reason), "no frame for %" PRIu64
		    " ms, hold time exceeded", ispd_conf.hold_ms);
		reply_begin();
		proto_put_bye(&reply, ISP_E_HOLD_EXPIRED, reason);
		(void)session_send(s, &reply, 1);
		session_lost(s, SESSION_CLOSE_FLUSH, "%s", reason);
	}
	while ((s = TAILQ_FIRST(&linger_list)) != NULL &&
	    s->linger_until_ms <= now_ms) {
		log_debug("session %" PRIu64 " (%s): linger time over",
		    s->owner.id, s->owner.peer);
		session_free(s);
	}
}

/*
 * Server shutdown: BYE to every session, one best-effort write, then
 * everything is freed. Subscriptions go first, so the withdrawals of the
 * teardown encode no event for anyone.
 */
void
session_shutdown_all(void)
{
	struct session	*s;
	size_t		 written = 0;
	int		 i;

	log_info("closing %zu sessions", nlive);
	TAILQ_FOREACH(s, &sessions, entry)
		subscr_session_end(s);
	reply_begin();
	proto_put_bye(&reply, ISP_E_SHUTDOWN, "ispd shutting down");
	TAILQ_FOREACH(s, &sessions, entry) {
		if (s->state > SESSION_READY)
			continue;
		(void)session_send(s, &reply, 1);
		if (s->state > SESSION_READY)
			continue;	/* out of memory: closing already */
		session_end(s, SESSION_CLOSE_FLUSH, "ispd shutting down", 0);
	}
	while ((s = TAILQ_FIRST(&ending_list)) != NULL) {
		TAILQ_REMOVE(&ending_list, s, end_entry);
		table_session_end(s);
	}
	while ((s = TAILQ_FIRST(&sessions)) != NULL) {
		if (s->state == SESSION_ENDING || s->state == SESSION_LINGER) {
			(void)session_write(s, &written);
			tls_shutdown(s);
			(void)shutdown(s->fd, SHUT_WR);
			/* Unread input would turn our close into a RST,
			 * which can destroy the BYE at the peer. */
			for (i = 0; i < 16; i++)
				if (read(s->fd, rbuf, sizeof(rbuf)) <= 0)
					break;
		}
		session_free(s);
	}
	ispd_stats.bytes_out += written;
	buf_free(&reply);
}

size_t
session_count(void)
{
	return nlive;
}

size_t
session_paused_count(void)
{
	return npaused;
}

/* Calls fn for every session with a connection, whatever its state
 * (metrics.c). fn must not close one. */
void
session_foreach(void (*fn)(const struct session *, void *), void *arg)
{
	const struct session	*s;

	TAILQ_FOREACH(s, &sessions, entry)
		fn(s, arg);
}

/*
 * The rules changed (a reload): a subscription its session may no longer
 * have ends, with an ERROR DENIED carrying the SUBSCRIBE's request id
 * and the rule that decided. The sessions themselves go on.
 */
void
session_rules_changed(void)
{
	struct session	*s;
	struct subscr	*sub, *next;
	char		 why[PROTO_MAX_STR_BYTES + 1];
	size_t		 ended = 0;

	TAILQ_FOREACH(s, &sessions, entry) {
		if (s->state != SESSION_READY)
			continue;
		for (sub = TAILQ_FIRST(&s->subs); sub != NULL &&
		    s->state == SESSION_READY; sub = next) {
			next = TAILQ_NEXT(sub, session_entry);
			if (acl_may(s, ACL_SUBSCRIBE, sub->table))
				continue;
			(void)acl_check(s, ACL_SUBSCRIBE, sub->table,
			    proto_bytes(sub->table->name, sub->table->name_len),
			    sub->req_id, why, sizeof(why));
			session_error(s, sub->req_id, ISP_E_DENIED,
			    "subscription ended by new rules: %s", why);
			subscr_remove(sub);
			ended++;
		}
	}
	if (ended > 0)
		log_info("the new rules ended %zu subscriptions", ended);
}

static int
session_cred_same(const struct cred *a, const struct cred *b)
{
	return a != NULL && b != NULL && a->secret_len == b->secret_len &&
	    memcmp(a->secret, b->secret, a->secret_len) == 0;
}

/*
 * The credentials changed (a reload): a session that authenticated with
 * a secret that is gone or different is ended with ERROR AUTH, so
 * revoking a client's secret cuts it off at once (and withdraws its
 * records).
 */
void
session_creds_changed(const struct creds *old, const struct creds *new)
{
	struct session	*s;

	TAILQ_FOREACH(s, &sessions, entry) {
		if (s->state > SESSION_READY || s->auth != SESSION_AUTH_SECRET)
			continue;
		if (session_cred_same(creds_find(old, s->owner.ident,
		    s->owner.ident_len), creds_find(new, s->owner.ident,
		    s->owner.ident_len)))
			continue;
		ispd_stats.auth_failures++;
		session_fail(s, 0, ISP_E_AUTH, "the credentials of client %s "
		    "were revoked or changed", s->owner.ident);
	}
}
