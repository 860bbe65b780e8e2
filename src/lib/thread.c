/*
 * thread: run mode 3. A library thread polls the client's epoll
 * descriptor (every server's socket) and an eventfd;
 * other threads write the eventfd when their request makes the queue of
 * a session non-empty (the thread's pass ends with a flush), or to ask
 * the thread to stop. The thread holds the
 * client's mutex while it processes input and calls callbacks, so every
 * callback of a client in mode 3 runs on this thread, and other threads'
 * calls wait at most for one pass.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"

void
thread_wake(struct isp_client *c)
{
	uint64_t	 one = 1;
	ssize_t		 n;

	if (c->evfd == -1)
		return;
	/* EAGAIN means the counter is full: the thread wakes anyway. */
	do {
		n = write(c->evfd, &one, sizeof(one));
	} while (n == -1 && errno == EINTR);
}

void
thread_wake_other(struct isp_client *c)
{
	/* The library thread ends every pass with a flush. */
	if (c->evfd == -1 || pthread_equal(c->thread, pthread_self()))
		return;
	thread_wake(c);
}

static void *
thread_main(void *arg)
{
	struct isp_client	*c = arg;
	struct pollfd		 pfd[2];
	sigset_t		 all;
	uint64_t		 count;
	ssize_t			 n;

	/* Signals belong to the application's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	client_lock(c);
	while (!c->stop && c->state == CLIENT_READY) {
		pfd[0].fd = c->epfd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		pfd[1].fd = c->evfd;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		n = client_timeout_ms(c);
		client_unlock(c);
		(void)poll(pfd, 2, (int)n);
		client_lock(c);
		if (pfd[1].revents & POLLIN) {
			do {
				n = read(c->evfd, &count, sizeof(count));
			} while (n == -1 && errno == EINTR);
		}
		if (c->stop)
			break;
		(void)wire_process(c);
		if (c->freeing)
			break;
	}
	if (!c->freeing || c->stop) {
		client_unlock(c);
		return NULL;
	}
	/* A callback freed the client: nobody joins this thread now. An
	 * isp_stop() under way (c->stop) joins it and frees it itself. */
	pthread_detach(pthread_self());
	client_unlock(c);
	client_destroy(c);
	return NULL;
}

int
isp_start(isp_client *c)
{
	int	 rc;

	if (c == NULL)
		return ISP_E_INVALID;
	client_lock(c);
	if (c->threaded) {
		rc = client_seterr(c, ISP_E_STATE, "isp_start: the library "
		    "thread runs already");
		goto out;
	}
	if ((rc = client_check_ready(c, "isp_start")) != ISP_OK)
		goto out;
	c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->evfd == -1) {
		rc = client_seterr(c, ISP_E_SYS, "isp_start: eventfd: %s",
		    strerror(errno));
		goto out;
	}
	c->stop = 0;
	if ((rc = pthread_create(&c->thread, NULL, thread_main, c)) != 0) {
		close(c->evfd);
		c->evfd = -1;
		rc = client_seterr(c, ISP_E_SYS, "isp_start: cannot create "
		    "a thread: %s", strerror(rc));
		goto out;
	}
	c->threaded = 1;
out:
	client_unlock(c);
	return rc;
}

void
isp_stop(isp_client *c)
{
	pthread_t	 t;

	if (c == NULL)
		return;
	client_lock(c);
	/* From the library thread itself (a callback) it would join
	 * itself; refuse quietly. */
	if (!c->threaded || c->stop ||
	    pthread_equal(c->thread, pthread_self())) {
		client_unlock(c);
		return;
	}
	c->stop = 1;
	t = c->thread;
	thread_wake(c);
	client_unlock(c);

	pthread_join(t, NULL);

	client_lock(c);
	close(c->evfd);
	c->evfd = -1;
	c->threaded = 0;
	c->stop = 0;
	/* Threads waiting for an answer now run the loop themselves. */
	pthread_cond_broadcast(&c->cond);
	client_unlock(c);
}
