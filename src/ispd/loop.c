/*
 * loop: the daemon's event loop, on epoll.
 *
 * Why our own and not libevent or libuv: ispd has one kind of fd (a
 * stream socket) plus a listener and a signalfd, and its throughput rests
 * on controlling when bytes are written. Replies and events are only
 * queued while input is handled; every queue is flushed in one pass just
 * before the loop sleeps (Redis's beforeSleep), and EPOLLOUT is armed only
 * for a session whose queue did not drain. A generic library would hide
 * that point or add a layer of callbacks around it, for no gain: what we
 * need from it fits in this one small file.
 *
 * Timers are few and each is the head of an ordered structure (the TTL
 * heap, the hold list, the linger list, a paused listener) plus the 1 s
 * tick of the sessions table, so the loop asks each for its next
 * deadline instead of keeping a timer wheel. Work cut into slices (a
 * mass expiry, the records of ended sessions, input resumed after a
 * pause) makes the next deadline "now", so the loop polls without
 * sleeping until it is done, serving every ready fd between two slices.
 */
#include <sys/epoll.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ispd.h"

#define LOOP_MAX_EVENTS	256

static int		 loop_fd = -1;
static int		 loop_stopped;
static uint64_t		 loop_now;
static uint64_t		 loop_skew;	/* loop_clock_advance() */
static uint64_t		 loop_next_tick;

void
loop_update_time(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	loop_now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
	    loop_skew;
}

/* Moves the loop's clock forward by ms, at once: how the unit tests let
 * time pass between two events. ispd itself never calls it. */
void
loop_clock_advance(uint64_t ms)
{
	loop_skew += ms;
	loop_update_time();
}

/* The time at the last wakeup: every deadline set while handling one
 * batch of events is measured from the same instant. */
uint64_t
loop_now_ms(void)
{
	return loop_now;
}

void
loop_init(void)
{
	if ((loop_fd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	loop_stopped = 0;
	loop_update_time();
	loop_next_tick = loop_now + TICK_MS;
	ispd_stats.start_ms = loop_now;
}

void
loop_free(void)
{
	if (loop_fd != -1)
		close(loop_fd);
	loop_fd = -1;
}

/*
 * Watches fd for events, calling cb(arg, events) when ready. Returns 0,
 * or -1 with errno set when the kernel refuses (ENOMEM, ENOSPC: too many
 * watches); the caller then closes the fd.
 */
int
loop_add(struct loop_io *io, int fd, uint32_t events, loop_cb *cb, void *arg)
{
	struct epoll_event	 ev;

	io->fd = fd;
	io->events = events;
	io->cb = cb;
	io->arg = arg;
	ev.events = events;
	ev.data.ptr = io;
	if (epoll_ctl(loop_fd, EPOLL_CTL_ADD, fd, &ev) == -1)
		return -1;
	return 0;
}

/* Changes the events watched. The fd is registered, so failing here
 * means our bookkeeping is wrong. */
void
loop_set(struct loop_io *io, uint32_t events)
{
	struct epoll_event	 ev;

	if (io->events == events)
		return;
	io->events = events;
	ev.events = events;
	ev.data.ptr = io;
	if (epoll_ctl(loop_fd, EPOLL_CTL_MOD, io->fd, &ev) == -1)
		fatal("epoll_ctl mod fd %d", io->fd);
}

void
loop_del(struct loop_io *io)
{
	if (epoll_ctl(loop_fd, EPOLL_CTL_DEL, io->fd, NULL) == -1)
		fatal("epoll_ctl del fd %d", io->fd);
}

void
loop_stop(void)
{
	loop_stopped = 1;
}

static void
loop_timers(void)
{
	/* A mass expiry is cut into slices (see ttl.c); what is left keeps
	 * the heap head in the past, so loop_timeout() returns 0. */
	(void)ttl_expire(loop_now);
	graceful_expire(loop_now);
	table_withdraw_run();
	session_timers(loop_now);
	listen_timers(loop_now);
	notify_timers(loop_now);
	metrics_timers(loop_now);
	if (loop_now >= loop_next_tick) {
		table_tick();
		loop_next_tick = loop_now + TICK_MS;
	}
}

/* Milliseconds until the earliest deadline, at most max_wait_ms when that
 * is not negative. */
static int
loop_timeout(int max_wait_ms)
{
	uint64_t	 next = loop_next_tick, t;

	if ((t = ttl_next_ms()) < next)
		next = t;
	if ((t = session_next_ms()) < next)
		next = t;
	if ((t = listen_next_ms()) < next)
		next = t;
	if ((t = graceful_next_ms()) < next)
		next = t;
	if ((t = notify_next_ms()) < next)
		next = t;
	if ((t = metrics_next_ms()) < next)
		next = t;
	if (table_withdraw_pending())
		next = loop_now;
	if (next <= loop_now)
		t = 0;
	else
		t = next - loop_now;
	if (t > INT_MAX)
		t = INT_MAX;
	if (max_wait_ms >= 0 && t > (uint64_t)max_wait_ms)
		t = (uint64_t)max_wait_ms;
	return (int)t;
}

/*
 * One turn: run due timers, flush what was queued (the only place besides
 * EPOLLOUT where sessions write), sleep until an fd is ready or the next
 * deadline, handle the ready fds. Tests call it with max_wait_ms 0.
 */
void
loop_once(int max_wait_ms)
{
	struct epoll_event	 evs[LOOP_MAX_EVENTS];
	struct loop_io		*io;
	int			 i, n;

	loop_update_time();
	loop_timers();
	session_before_sleep();
	n = epoll_wait(loop_fd, evs, LOOP_MAX_EVENTS,
	    loop_timeout(max_wait_ms));
	if (n == -1) {
		if (errno == EINTR)
			return;
		fatal("epoll_wait");
	}
	loop_update_time();
	/*
	 * A callback never frees another session's loop_io: closes are
	 * deferred to session_reap() in session_before_sleep(), so every
	 * pointer in evs stays valid during this pass.
	 */
	for (i = 0; i < n; i++) {
		io = evs[i].data.ptr;
		io->cb(io->arg, evs[i].events);
	}
}

void
loop_run(void)
{
	while (!loop_stopped)
		loop_once(-1);
}
