/*
 * run: run modes 1 and 2. Mode 1 (isp_run) polls the client's epoll
 * descriptor (every server's socket) itself; mode 2 hands the
 * application isp_fd(), isp_want() and isp_timeout_ms() for its own loop
 * and expects isp_process() back. Both end in wire_process(). Waiting
 * for an answer (isp_sync, queries) runs the same loop, or, in mode 3,
 * sleeps until the library thread has read the answer.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib.h"

int
run_check(struct isp_client *c, const char *fn)
{
	if (c->cb_depth > 0)
		return client_seterr(c, ISP_E_STATE, "%s: cannot be called "
		    "from a callback of the same client", fn);
	if (c->threaded)
		return client_seterr(c, ISP_E_STATE, "%s: the library thread "
		    "runs this client (isp_start()); call isp_stop() first",
		    fn);
	if (c->state == CLIENT_ENDED)
		return client_seterr(c, c->end_err, "%s", c->end_why);
	/* A session whose write failed is ended by the pass itself. */
	if (c->state == CLIENT_READY)
		return ISP_OK;
	return client_check_ready(c, fn);
}

/* Waits up to wait_ms (-1: no limit) for any socket, then processes.
 * *input tells whether a socket had something. */
static int
run_once(struct isp_client *c, int wait_ms, int *input)
{
	struct pollfd	 pfd;
	int		 n;

	pfd.fd = c->epfd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	n = poll(&pfd, 1, wait_ms);
	if (n == -1 && errno != EINTR) {
		client_seterr(c, ISP_E_SYS, "poll: %s", strerror(errno));
		return ISP_E_SYS;
	}
	*input = n > 0 && (pfd.revents & POLLIN);
	return wire_process(c);
}

/* The wait for one pass: until the next keepalive duty, but no later
 * than timeout_ms after start. */
static int
run_budget(const struct isp_client *c, uint64_t start, int timeout_ms)
{
	uint64_t	 elapsed;
	int		 duty, left;

	duty = client_timeout_ms(c);
	if (timeout_ms < 0)
		return duty;
	elapsed = client_now_ms() - start;
	left = elapsed >= (uint64_t)timeout_ms ? 0 :
	    timeout_ms - (int)elapsed;
	return duty < 0 || duty > left ? left : duty;
}

int
isp_run(isp_client *c, int timeout_ms)
{
	uint64_t	 start;
	int		 rc, input;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if ((rc = run_check(c, "isp_run")) != ISP_OK)
		goto out;
	start = client_now_ms();
	for (;;) {
		rc = run_once(c, run_budget(c, start, timeout_ms), &input);
		if (rc != ISP_OK || input)
			break;
		if (timeout_ms >= 0 &&
		    client_now_ms() - start >= (uint64_t)timeout_ms)
			break;
	}
out:
	return client_leave(c, rc);
}

int
isp_process(isp_client *c)
{
	int	 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if ((rc = run_check(c, "isp_process")) == ISP_OK)
		rc = wire_process(c);
	return client_leave(c, rc);
}

int
isp_flush(isp_client *c)
{
	struct conn	*cn;
	unsigned	 i;
	int		 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if ((rc = client_check_ready(c, "isp_flush")) == ISP_OK) {
		for (i = 0; i < c->nconns; i++) {
			cn = &c->conns[i];
			if (cn->state != CONN_READY || wire_pending(cn) == 0)
				continue;
			wire_flush(cn);
			/* What the socket did not take, and a failure, are
			 * the next pass's: wake the thread for it. */
			if (wire_due(cn) || cn->out_full)
				thread_wake_other(c);
		}
	}
	client_unlock(c);
	return rc;
}

int
isp_fd(const isp_client *c)
{
	int	 fd;

	if (c == NULL)
		return -1;
	client_lock(c);
	if (c->state != CLIENT_READY)
		fd = -1;
	else if (c->legacy)
		fd = c->conns[0].fd;
	else
		fd = c->epfd;
	client_unlock(c);
	return fd;
}

int
isp_want(const isp_client *c)
{
	int	 want = 0;

	if (c == NULL)
		return 0;
	client_lock(c);
	if (c->state == CLIENT_READY) {
		want = ISP_WANT_READ;
		/* A failed write is reported by the next isp_process(),
		 * which an always-writable wait brings about at once. The
		 * epoll descriptor carries each socket's own interest. */
		if (c->legacy && (wire_pending(&c->conns[0]) > 0 ||
		    c->conns[0].dead_err != 0))
			want |= ISP_WANT_WRITE;
	}
	client_unlock(c);
	return want;
}

int
isp_timeout_ms(const isp_client *c)
{
	int	 ms;

	if (c == NULL)
		return -1;
	client_lock(c);
	ms = client_timeout_ms(c);
	client_unlock(c);
	return ms;
}

/* The servers still owing an answer, for the message. */
static const char *
waiter_addr(const struct isp_client *c, const struct waiter *w)
{
	unsigned	 i;

	for (i = 0; i < c->nconns; i++)
		if (w->pending & (1u << i))
			return c->conns[i].addr;
	return c->conns[0].addr;
}

int
run_wait(struct isp_client *c, struct waiter *w, int timeout_ms)
{
	struct timespec	 ts;
	uint64_t	 start, deadline;
	int		 input;

	start = client_now_ms();
	deadline = timeout_ms < 0 ? 0 : start + (uint64_t)timeout_ms;
	while (!w->done && c->state == CLIENT_READY && !c->freeing) {
		if (timeout_ms >= 0 && client_now_ms() >= deadline)
			break;
		if (c->threaded) {
			/* The library thread reads the answer and
			 * broadcasts; our one level of the recursive mutex
			 * is released while we sleep. */
			if (timeout_ms < 0) {
				pthread_cond_wait(&c->cond, &c->lock);
			} else {
				ts.tv_sec = (time_t)(deadline / 1000);
				ts.tv_nsec = (long)(deadline % 1000) * 1000000;
				pthread_cond_timedwait(&c->cond, &c->lock,
				    &ts);
			}
		} else
			(void)run_once(c, run_budget(c, start, timeout_ms),
			    &input);
	}
	if (c->freeing)
		return client_seterr(c, ISP_E_CLOSED, "the client was freed "
		    "inside a callback");
	if (w->done) {
		if (w->err != ISP_OK && w->why[0] != '\0')
			client_seterr(c, w->err, "%s", w->why);
		return w->err;
	}
	if (c->state != CLIENT_READY)
		return client_seterr(c, c->end_err, "%s", c->end_why);
	return client_seterr(c, ISP_E_TIMEOUT, "no answer from ispd at %s "
	    "within %d ms", waiter_addr(c, w), timeout_ms);
}
