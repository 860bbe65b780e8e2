/*
 * outq: output buffers and the per-session output queue.
 *
 * An event is encoded once into an obuf and every subscriber's queue
 * holds a reference to it, so fanning an event out to N subscribers costs
 * N pointer pushes, not N encodings or copies. Replies meant for one
 * session (errors, pongs, snapshots) are copied into the queue's tail
 * obuf when that one is private (refcnt 1) and has room, else into a new
 * 16 KiB obuf, so many small replies go out in one iovec.
 *
 * The queue is a ring of obuf pointers plus the offset already written
 * into the head one. A flush hands up to IOV_MAX obufs to one sendmsg().
 *
 * The queue itself has no limit: the bound on what a session may have
 * queued is a policy of the callers. Events stop being queued at
 * --max-queue-bytes (feed.c coalesces them per key instead), snapshots
 * and catch-ups are produced only below the low-water mark, and a
 * session's input is paused while replies hold more than twice the
 * limit (session.c).
 */
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ispd.h"

/* Size of a new obuf for private replies: large enough that a burst of
 * small replies fills few iovecs, small enough that ten thousand idle
 * sessions holding one cost little. */
#define OBUF_BYTES	(16 * 1024)
/* A ring larger than this is freed when it empties, to give memory back
 * after a burst. */
#define OUTQ_KEEP_SLOTS	64

/* Bytes queued in every session, for the stats. */
static size_t	 outq_total;

static struct obuf *
obuf_alloc(size_t cap)
{
	struct obuf	*ob;

	if (cap > UINT32_MAX - sizeof(*ob))
		return NULL;
	if ((ob = malloc(sizeof(*ob) + cap)) == NULL)
		return NULL;
	ob->refcnt = 1;
	ob->len = 0;
	ob->cap = (uint32_t)cap;
	return ob;
}

/* A new obuf holding a copy of the bytes, with one reference owned by the
 * caller. NULL when out of memory. */
struct obuf *
obuf_new(const void *p, size_t len)
{
	struct obuf	*ob;

	if ((ob = obuf_alloc(len)) == NULL)
		return NULL;
	memcpy(ob->data, p, len);
	ob->len = (uint32_t)len;
	return ob;
}

void
obuf_unref(struct obuf *ob)
{
	if (ob->refcnt == 0)
		fatalx("obuf_unref: obuf %p has no reference", (void *)ob);
	if (--ob->refcnt == 0)
		free(ob);
}

void
outq_init(struct outq *q)
{
	memset(q, 0, sizeof(*q));
}

static struct obuf *
outq_at(const struct outq *q, uint32_t i)
{
	return q->ring[(q->head + i) & (q->size - 1)];
}

static void
outq_pop(struct outq *q)
{
	obuf_unref(q->ring[q->head]);
	q->head = (q->head + 1) & (q->size - 1);
	q->count--;
	q->off = 0;
	if (q->count == 0 && q->size > OUTQ_KEEP_SLOTS) {
		free(q->ring);
		q->ring = NULL;
		q->size = 0;
		q->head = 0;
	}
}

void
outq_free(struct outq *q)
{
	outq_total -= q->bytes;
	while (q->count > 0)
		outq_pop(q);
	free(q->ring);
	outq_init(q);
}

static int
outq_grow(struct outq *q)
{
	struct obuf	**ring;
	uint32_t	  size, i;

	if (q->size >= UINT32_MAX / 2)
		return -1;
	size = q->size ? q->size * 2 : 8;
	if ((ring = calloc(size, sizeof(*ring))) == NULL)
		return -1;
	for (i = 0; i < q->count; i++)
		ring[i] = outq_at(q, i);
	free(q->ring);
	q->ring = ring;
	q->size = size;
	q->head = 0;
	return 0;
}

/* Queues a reference to ob (taking one more reference). Returns 0, or -1
 * when out of memory; the caller then closes the session, whose view of
 * the table would be wrong otherwise. */
int
outq_push(struct outq *q, struct obuf *ob)
{
	if (q->count == q->size && outq_grow(q) == -1)
		return -1;
	q->ring[(q->head + q->count) & (q->size - 1)] = ob;
	q->count++;
	q->bytes += ob->len;
	outq_total += ob->len;
	ob->refcnt++;
	return 0;
}

/* Queues a private copy of the bytes. Returns 0 or -1 (out of memory). */
int
outq_append(struct outq *q, const void *p, size_t len)
{
	struct obuf	*ob;

	if (len == 0)
		return 0;
	if (q->count > 0) {
		ob = outq_at(q, q->count - 1);
		if (ob->refcnt == 1 && ob->cap - ob->len >= len) {
			memcpy(ob->data + ob->len, p, len);
			ob->len += (uint32_t)len;
			q->bytes += len;
			outq_total += len;
			return 0;
		}
	}
	if ((ob = obuf_alloc(len > OBUF_BYTES ? len : OBUF_BYTES)) == NULL)
		return -1;
	memcpy(ob->data, p, len);
	ob->len = (uint32_t)len;
	if (outq_push(q, ob) == -1) {
		obuf_unref(ob);
		return -1;
	}
	obuf_unref(ob);
	return 0;
}

/* Copies up to max bytes from the head of the queue, without taking
 * them off it (tls.c writes them through OpenSSL). Returns the bytes
 * copied. */
size_t
outq_peek(const struct outq *q, uint8_t *dst, size_t max)
{
	const struct obuf	*ob;
	size_t			 n = 0, len, off = q->off;
	uint32_t		 i;

	for (i = 0; i < q->count && n < max; i++, off = 0) {
		ob = outq_at(q, i);
		len = ob->len - off;
		if (len > max - n)
			len = max - n;
		memcpy(dst + n, ob->data + off, len);
		n += len;
	}
	return n;
}

/* Takes n written bytes (at most q->bytes) off the head of the queue. */
void
outq_consume(struct outq *q, size_t n)
{
	struct obuf	*ob;

	q->bytes -= n;
	outq_total -= n;
	while (n > 0) {
		ob = outq_at(q, 0);
		if (n < ob->len - q->off) {
			q->off += (uint32_t)n;
			break;
		}
		n -= ob->len - q->off;
		outq_pop(q);
	}
}

/*
 * Writes as much as the socket takes. Returns 1 when the queue is empty,
 * 0 when the socket is full (arm EPOLLOUT), -1 on a write error with
 * errno set (close the session). Adds the bytes written to *written.
 * sendmsg() with MSG_NOSIGNAL rather than writev(): a peer that reset the
 * connection gives EPIPE here, never SIGPIPE.
 */
int
outq_flush(struct outq *q, int fd, size_t *written)
{
	struct iovec	 iov[IOV_MAX];
	struct msghdr	 msg;
	struct obuf	*ob;
	size_t		 want;
	ssize_t		 r;
	uint32_t	 i, n;

	while (q->count > 0) {
		n = q->count < IOV_MAX ? q->count : IOV_MAX;
		want = 0;
		for (i = 0; i < n; i++) {
			ob = outq_at(q, i);
			iov[i].iov_base = ob->data + (i == 0 ? q->off : 0);
			iov[i].iov_len = ob->len - (i == 0 ? q->off : 0);
			want += iov[i].iov_len;
		}
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = n;
		if ((r = sendmsg(fd, &msg, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		*written += (size_t)r;
		outq_consume(q, (size_t)r);
		/* A short write means the socket buffer is full; asking
		 * again would only return EAGAIN. */
		if ((size_t)r < want)
			return 0;
	}
	return 1;
}

/* Bytes queued and not yet written, in every session. */
size_t
outq_total_bytes(void)
{
	return outq_total;
}
