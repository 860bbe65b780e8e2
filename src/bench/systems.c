/*
 * systems: the one publisher and the subscribers of a fan-out or refresh
 * run, for each system, through its official C client: libisp for ispd,
 * hiredis for Redis PUBLISH/SUBSCRIBE, cnats for NATS core.
 *
 * Every record carries a stamp, "INDEX:SEND_NS", so a subscriber knows
 * how far it got (the publisher keeps at most `window` updates ahead of
 * the slowest subscriber, so no system is pushed into dropping or
 * disconnecting) and how late each delivery was (CLOCK_MONOTONIC is
 * shared by every process of the machine).
 *
 * Each function here runs in a forked child and returns its exit status.
 */
#include <sys/prctl.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <nats/nats.h>

#include "isp.h"
#include "buf.h"
#include "proto.h"
#include "bench.h"

#define CONNECT_TIMEOUT_MS	10000
/* Redis answers every PUBLISH: the publisher keeps this many answers
 * outstanding at most, so the pipeline never waits a round trip. */
#define REDIS_PIPELINE		1024
/* How often (in updates) the publisher looks at the subscribers'
 * progress and at its own socket. */
#define PUB_CHECK_EVERY		64

/* The batching publisher writes this much at a time. */
#define RAW_BATCH_BYTES		(64 * 1024)

struct pub {
	enum sys_kind	 kind;
	isp_client	*isp;
	/* job->batch: ANNOUNCE frames from libisp's own codec, written
	 * RAW_BATCH_BYTES at a time by the bench itself */
	int		 raw_fd;
	struct buf	 raw_out;
	struct buf	 raw_fields;
	uint32_t	 raw_req;
	redisContext	*redis;
	long		 outstanding;
	natsConnection	*nats;
	char		 subject[64];
};

/* What a subscriber child keeps. */
struct subctx {
	struct fan_job	*job;
	struct sub_slot	*slot;
	uint32_t	*lat;
	int		 ended;		/* ispd: END of the snapshot seen */
};

static void __attribute__((format(printf, 2, 3)))
pub_seterr(struct fan_job *job, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(job->shm->pub_err, sizeof(job->shm->pub_err), fmt, ap);
	va_end(ap);
}

static int
raw_write(struct pub *p)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < p->raw_out.len) {
		n = send(p->raw_fd, p->raw_out.data + off, p->raw_out.len - off,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	p->raw_out.len = 0;
	return 0;
}

/* Reads frames until one of type `want`; ERROR or BYE fail. */
static int
raw_wait(struct pub *p, uint8_t want)
{
	uint8_t		 buf[65536];
	size_t		 have = 0, fb;
	ssize_t		 n;
	int		 rc;

	for (;;) {
		while ((rc = proto_frame_check(buf, have, sizeof(buf),
		    &fb)) == 1) {
			if (buf[4] == want)
				return 0;
			if (buf[4] == PROTO_ERROR || buf[4] == PROTO_BYE)
				return -1;
			memmove(buf, buf + fb, have - fb);
			have -= fb;
		}
		if (rc == -1 || have == sizeof(buf))
			return -1;
		if ((n = recv(p->raw_fd, buf + have, sizeof(buf) - have,
		    0)) <= 0)
			return -1;
		have += (size_t)n;
	}
}

static int
raw_connect(struct pub *p, struct fan_job *job)
{
	struct sockaddr_in	 sin;
	struct timeval		 tv = { 30, 0 };
	int			 one = 1;

	if ((p->raw_fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)job->srv->port);
	if (connect(p->raw_fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		return -1;
	setsockopt(p->raw_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(p->raw_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	buf_init(&p->raw_out);
	buf_init(&p->raw_fields);
	proto_put_hello(&p->raw_out, PROTO_VERSION, PROTO_CAPS,
	    "bench-publisher");
	if (raw_write(p) == -1 || raw_wait(p, PROTO_WELCOME) == -1)
		return -1;
	p->raw_req = 1;
	return 0;
}

static int
raw_announce(struct pub *p, struct rec *r, unsigned ttl_s)
{
	size_t	 start;

	p->raw_fields.len = 0;
	start = proto_fields_begin(&p->raw_fields);
	proto_put_field(&p->raw_fields, "stamp", 5, r->stamp, REC_STAMP_BYTES);
	proto_put_field(&p->raw_fields, "contact", 7, r->contact,
	    r->contact_len);
	proto_put_field(&p->raw_fields, "expires", 7, r->expires,
	    strlen(r->expires));
	proto_put_field(&p->raw_fields, "server", 6, r->server,
	    strlen(r->server));
	proto_fields_end(&p->raw_fields, start, 4);
	proto_put_announce(&p->raw_out, p->raw_req++,
	    proto_bytes(BENCH_TABLE, strlen(BENCH_TABLE)), ttl_s,
	    proto_bytes(r->key, r->key_len),
	    proto_bytes(p->raw_fields.data, p->raw_fields.len));
	if (buf_failed(&p->raw_out) || buf_failed(&p->raw_fields))
		return -1;
	return p->raw_out.len >= RAW_BATCH_BYTES ? raw_write(p) : 0;
}

/* Everything written, then a PING answered: ispd has processed it all. */
static int
raw_finish(struct pub *p)
{
	proto_put_ping(&p->raw_out, PROTO_PING, 42);
	if (raw_write(p) == -1)
		return -1;
	return raw_wait(p, PROTO_PONG);
}

static int
pub_connect(struct pub *p, struct fan_job *job)
{
	struct isp_options	 o;
	struct timeval		 tv = { CONNECT_TIMEOUT_MS / 1000, 0 };
	natsOptions		*no = NULL;
	char			 url[96];

	memset(p, 0, sizeof(*p));
	p->kind = job->srv->kind;
	p->raw_fd = -1;
	if (job->batch) {
		if (raw_connect(p, job) == -1) {
			pub_seterr(job, "ispd: batching publisher cannot "
			    "connect: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	switch (p->kind) {
	case SYS_ISPD:
		isp_options_init(&o);
		o.server = job->srv->addr;
		o.name = "bench-publisher";
		if ((p->isp = isp_new(&o)) == NULL ||
		    isp_connect(p->isp) != ISP_OK) {
			pub_seterr(job, "ispd: %s", p->isp ?
			    isp_errmsg(p->isp) : "out of memory");
			return -1;
		}
		return 0;
	case SYS_REDIS:
		p->redis = redisConnectWithTimeout("127.0.0.1", job->srv->port,
		    tv);
		if (p->redis == NULL || p->redis->err) {
			pub_seterr(job, "redis: %s", p->redis ?
			    p->redis->errstr : "out of memory");
			return -1;
		}
		return 0;
	case SYS_NATS:
		snprintf(url, sizeof(url), "nats://%s", job->srv->addr);
		snprintf(p->subject, sizeof(p->subject), "%s", BENCH_CHANNEL);
		if (natsOptions_Create(&no) != NATS_OK ||
		    natsOptions_SetURL(no, url) != NATS_OK ||
		    natsOptions_SetAllowReconnect(no, false) != NATS_OK ||
		    natsConnection_Connect(&p->nats, no) != NATS_OK) {
			pub_seterr(job, "nats: %s", nats_GetLastError(NULL));
			return -1;
		}
		natsOptions_Destroy(no);
		return 0;
	default:
		return -1;
	}
}

static int
redis_drain(struct pub *p, long down_to)
{
	redisReply	*r;

	while (p->outstanding > down_to) {
		if (redisGetReply(p->redis, (void **)&r) != REDIS_OK)
			return -1;
		freeReplyObject(r);
		p->outstanding--;
	}
	return 0;
}

static int
pub_send(struct pub *p, struct rec *r, unsigned ttl_s)
{
	struct isp_field	 f[4];

	if (p->raw_fd != -1)
		return raw_announce(p, r, ttl_s);
	switch (p->kind) {
	case SYS_ISPD:
		f[0].name = "stamp";
		f[0].value = r->stamp;
		f[0].value_len = REC_STAMP_BYTES;
		f[1].name = "contact";
		f[1].value = r->contact;
		f[1].value_len = r->contact_len;
		f[2].name = "expires";
		f[2].value = r->expires;
		f[2].value_len = strlen(r->expires);
		f[3].name = "server";
		f[3].value = r->server;
		f[3].value_len = strlen(r->server);
		return isp_announce(p->isp, BENCH_TABLE, r->key, r->key_len, f,
		    4, ttl_s) == ISP_OK ? 0 : -1;
	case SYS_REDIS:
		if (redisAppendCommand(p->redis, "PUBLISH %s %b",
		    BENCH_CHANNEL, r->text, r->text_len) != REDIS_OK)
			return -1;
		p->outstanding++;
		if (p->outstanding >= REDIS_PIPELINE)
			return redis_drain(p, REDIS_PIPELINE / 2);
		return 0;
	case SYS_NATS:
		return natsConnection_Publish(p->nats, p->subject, r->text,
		    (int)r->text_len) == NATS_OK ? 0 : -1;
	default:
		return -1;
	}
}

/* Pushes out what is queued, without waiting for the server. */
static int
pub_poll(struct pub *p)
{
	int	 done;

	if (p->raw_fd != -1)
		return raw_write(p);
	switch (p->kind) {
	case SYS_ISPD:
		return isp_process(p->isp) == ISP_OK ? 0 : -1;
	case SYS_REDIS:
		if (redisBufferWrite(p->redis, &done) != REDIS_OK)
			return -1;
		return redis_drain(p, 0);
	default:
		return 0;
	}
}

/* Returns once the server has taken every update sent. */
static int
pub_finish(struct pub *p)
{
	if (p->raw_fd != -1)
		return raw_finish(p);
	switch (p->kind) {
	case SYS_ISPD:
		return isp_sync(p->isp, 120000) == ISP_OK ? 0 : -1;
	case SYS_REDIS:
		return redis_drain(p, 0);
	case SYS_NATS:
		return natsConnection_FlushTimeout(p->nats, 120000) ==
		    NATS_OK ? 0 : -1;
	default:
		return -1;
	}
}

static uint64_t
min_progress(struct fan_job *job)
{
	uint64_t	 m = UINT64_MAX, v;
	int		 i;

	for (i = 0; i < job->nsubs; i++) {
		v = atomic_load_explicit(&job->shm->subs[i].progress,
		    memory_order_relaxed);
		if (v < m)
			m = v;
	}
	return m;
}

/* Announces the records of the refresh load before it starts, and waits
 * until ispd has them all. */
static int
pub_preload(struct pub *p, struct fan_job *job, struct rec *recs,
    unsigned ttl_s)
{
	long	 i;

	for (i = 0; i < job->preload; i++) {
		if (pub_send(p, &recs[i], ttl_s) == -1)
			return -1;
		if (i % 1024 == 0 && pub_poll(p) == -1)
			return -1;
		/* See ispd_loader() in state.c: a round trip now and then
		 * keeps libisp from giving up on a silent ispd. */
		if (i % 65536 == 65535 && pub_finish(p) == -1)
			return -1;
	}
	return pub_finish(p);
}

int
sys_publisher(void *arg)
{
	struct fan_job	*job = arg;
	struct fan_shm	*shm = job->shm;
	struct rec	*recs, *r;
	struct pub	 p;
	uint64_t	 i, start, due, t, n = (uint64_t)job->updates;
	unsigned	 ttl_s = 0;
	double		 cpu0;
	long		 k;

	/* Sleeps of a paced run end when asked, not 50 us later. */
	prctl(PR_SET_TIMERSLACK, 1UL);
	if ((recs = calloc((size_t)job->keys, sizeof(*recs))) == NULL)
		return 1;
	for (k = 0; k < job->keys; k++)
		rec_make(&recs[k], (uint64_t)k, 0);
	if (pub_connect(&p, job) == -1)
		return 1;
	if (job->refresh) {
		/* Registrations expire unless refreshed: three periods. */
		ttl_s = (unsigned)(conf.refresh_period * 3 + 1);
		if (p.kind == SYS_ISPD && pub_preload(&p, job, recs,
		    ttl_s) == -1) {
			pub_seterr(job, "preload failed");
			return 1;
		}
	}
	atomic_store(&shm->pub_ready, 1);
	while (!atomic_load(&shm->go) && !atomic_load(&shm->stop))
		sleep_ns(100000);
	cpu0 = self_cpu_s();
	start = now_ns();
	shm->pub_start_ns = start;
	for (i = 0; (n == 0 || i < n) && !atomic_load_explicit(&shm->stop,
	    memory_order_relaxed); i++) {
		if (job->rate > 0) {
			due = start + (uint64_t)((double)i * 1e9 / job->rate);
			if ((t = now_ns()) < due) {
				if (pub_poll(&p) == -1)
					break;
				if ((t = now_ns()) < due)
					sleep_ns(due - t);
			}
		}
		if (job->window > 0 && i % PUB_CHECK_EVERY == 0) {
			while (i >= min_progress(job) + (uint64_t)job->window &&
			    !atomic_load(&shm->stop)) {
				if (pub_poll(&p) == -1)
					goto out;
				sleep_ns(20000);
			}
		} else if (i % 1024 == 0 && job->rate <= 0 &&
		    pub_poll(&p) == -1)
			break;
		r = &recs[i % (uint64_t)job->keys];
		if (!job->refresh) {
			rec_stamp(r, i, now_ns());
		} else if (i % (uint64_t)job->change_every == 0) {
			/* 1 in change_every: the phone moved (another
			 * contact). The others re-send what they sent. */
			rec_make(r, i % (uint64_t)job->keys, i);
			rec_stamp(r, i, now_ns());
		}
		if (pub_send(&p, r, ttl_s) == -1) {
			pub_seterr(job, "%s: publish failed", sys_name(p.kind));
			break;
		}
	}
out:
	shm->published = i;
	if (pub_finish(&p) == -1 && shm->pub_err[0] == '\0')
		pub_seterr(job, "%s: final flush failed", sys_name(p.kind));
	shm->pub_cpu_s = self_cpu_s() - cpu0;
	shm->pub_end_ns = now_ns();
	/* Subscribers still count what is in flight; a publisher that left
	 * now would make ispd withdraw its records meanwhile. */
	for (t = now_ns(); !atomic_load(&shm->stop); sleep_ns(1000000))
		if (p.raw_fd != -1 && now_ns() - t > 2000000000ULL) {
			/* the hold time is 9 s: keep the session */
			proto_put_ping(&p.raw_out, PROTO_PING, 43);
			(void)raw_write(&p);
			t = now_ns();
		}
	return shm->pub_err[0] == '\0' ? 0 : 1;
}

/* One delivery, whatever the system. */
static void
sub_deliver(struct subctx *x, const void *stamp, size_t len)
{
	struct sub_slot	*s = x->slot;
	uint64_t	 idx, ns, t = now_ns(), d;
	uint64_t	 c;

	if (rec_parse_stamp(stamp, len, &idx, &ns) == -1)
		return;
	c = atomic_load_explicit(&s->count, memory_order_relaxed) + 1;
	atomic_store_explicit(&s->count, c, memory_order_relaxed);
	if (c == 1)
		s->first_ns = t;
	s->last_ns = t;
	if (idx + 1 > atomic_load_explicit(&s->progress, memory_order_relaxed))
		atomic_store_explicit(&s->progress, idx + 1,
		    memory_order_release);
	if (x->lat != NULL && s->nlat < x->job->lat_cap && !x->job->refresh) {
		d = t > ns ? t - ns : 0;
		x->lat[s->nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	}
	if (x->job->updates > 0 && idx + 1 == (uint64_t)x->job->updates)
		s->done = 1;
}

static void
sub_ready(struct subctx *x)
{
	x->slot->ready = 1;
	atomic_fetch_add(&x->job->shm->ready, 1);
}

static int
sub_running(struct subctx *x)
{
	return !x->slot->done && !atomic_load_explicit(&x->job->shm->stop,
	    memory_order_relaxed);
}

static void
ispd_event(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct subctx	*x = arg;

	if (ev->type == ISP_EV_END) {
		x->ended = 1;
		return;
	}
	if (ev->snapshot || (ev->type != ISP_EV_ANNOUNCE &&
	    ev->type != ISP_EV_REPLACE) || ev->rec.nfields == 0)
		return;
	sub_deliver(x, ev->rec.fields[0].value, ev->rec.fields[0].value_len);
}

static int
sub_ispd(struct subctx *x)
{
	struct isp_options	 o;
	isp_client		*c;
	/* The snapshot of a refresh run's preloaded records included. */
	double			 deadline = now_s() + 300;

	isp_options_init(&o);
	o.server = x->job->srv->addr;
	o.name = "bench-subscriber";
	if ((c = isp_new(&o)) == NULL || isp_connect(c) != ISP_OK ||
	    isp_subscribe(c, BENCH_TABLE, NULL, 0, 0, ispd_event, x) !=
	    ISP_OK) {
		snprintf(x->slot->err, sizeof(x->slot->err), "ispd: %.100s",
		    c ? isp_errmsg(c) : "out of memory");
		return 1;
	}
	/* Ready once the snapshot (the preloaded records of a refresh run)
	 * is in. */
	while (!x->ended && now_s() < deadline &&
	    !atomic_load(&x->job->shm->stop))
		if (isp_run(c, 50) != ISP_OK)
			goto fail;
	sub_ready(x);
	while (sub_running(x))
		if (isp_run(c, 20) != ISP_OK)
			goto fail;
	isp_free(c);
	return 0;
fail:
	snprintf(x->slot->err, sizeof(x->slot->err), "ispd: %.100s",
	    isp_errmsg(c));
	return 1;
}

static int
redis_message(struct subctx *x, redisReply *r)
{
	int	 n = 0;

	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(r->element[0]->str, "message") == 0) {
		sub_deliver(x, r->element[2]->str, r->element[2]->len);
		n = 1;
	}
	freeReplyObject(r);
	return n;
}

static int
sub_redis(struct subctx *x)
{
	struct timeval	 tv = { CONNECT_TIMEOUT_MS / 1000, 0 };
	struct pollfd	 pfd;
	redisContext	*c;
	redisReply	*r;
	void		*v;

	c = redisConnectWithTimeout("127.0.0.1", x->job->srv->port, tv);
	if (c == NULL || c->err ||
	    (r = redisCommand(c, "SUBSCRIBE %s", BENCH_CHANNEL)) == NULL) {
		snprintf(x->slot->err, sizeof(x->slot->err), "redis: %.100s",
		    c ? c->errstr : "out of memory");
		return 1;
	}
	freeReplyObject(r);
	sub_ready(x);
	/* hiredis's own reader, fed from our poll, so that the loop can
	 * notice the coordinator's stop flag. */
	while (sub_running(x)) {
		while (redisGetReplyFromReader(c, &v) == REDIS_OK && v != NULL)
			(void)redis_message(x, v);
		if (!sub_running(x))
			break;
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if (redisBufferRead(c) != REDIS_OK) {
			snprintf(x->slot->err, sizeof(x->slot->err),
			    "redis: %.100s", c->errstr);
			return 1;
		}
	}
	redisFree(c);
	return 0;
}

static int
sub_nats(struct subctx *x)
{
	natsOptions		*no = NULL;
	natsConnection		*nc = NULL;
	natsSubscription	*sub = NULL;
	natsMsg			*m;
	natsStatus		 s;
	char			 url[96];

	snprintf(url, sizeof(url), "nats://%s", x->job->srv->addr);
	if (natsOptions_Create(&no) != NATS_OK ||
	    natsOptions_SetURL(no, url) != NATS_OK ||
	    natsOptions_SetAllowReconnect(no, false) != NATS_OK ||
	    natsConnection_Connect(&nc, no) != NATS_OK ||
	    natsConnection_SubscribeSync(&sub, nc, BENCH_CHANNEL) != NATS_OK ||
	    /* No client-side limit: a drop would be the library's, not
	     * the server's; the publisher's window bounds the backlog. */
	    natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK ||
	    natsConnection_FlushTimeout(nc, CONNECT_TIMEOUT_MS) != NATS_OK) {
		snprintf(x->slot->err, sizeof(x->slot->err), "nats: %.100s",
		    nats_GetLastError(NULL));
		return 1;
	}
	sub_ready(x);
	while (sub_running(x)) {
		s = natsSubscription_NextMsg(&m, sub, 20);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK) {
			snprintf(x->slot->err, sizeof(x->slot->err),
			    "nats: %.100s", natsStatus_GetText(s));
			return 1;
		}
		sub_deliver(x, natsMsg_GetData(m),
		    (size_t)natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
	}
	/* Exits without the library's teardown: the process ends. */
	return 0;
}

int
sys_subscriber(void *arg)
{
	struct fan_job	*job = arg;
	struct subctx	 x;

	memset(&x, 0, sizeof(x));
	x.job = job;
	x.slot = &job->shm->subs[job->sub_index];
	int		 rc;

	if (job->lat != NULL)
		x.lat = job->lat + (size_t)job->sub_index * job->lat_cap;
	switch (job->srv->kind) {
	case SYS_ISPD:
		rc = sub_ispd(&x);
		break;
	case SYS_REDIS:
		rc = sub_redis(&x);
		break;
	case SYS_NATS:
		rc = sub_nats(&x);
		break;
	default:
		rc = 1;
	}
	x.slot->cpu_s = self_cpu_s();
	return rc;
}
