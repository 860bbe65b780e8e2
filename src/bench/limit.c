/*
 * limit: what the machine's TCP loopback carries when nothing but a
 * minimal sender and receivers move the bytes: one process writes 64 KiB
 * chunks to N connections (poll, non-blocking), N processes read 64 KiB
 * at a time and count. No framing, no parsing, no per-message system
 * call: an upper bound for any server on this machine, not a target.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define LIMIT_CHUNK	(64 * 1024)

struct limit_shm {
	_Atomic int	 ready;
	_Atomic int	 go;
	_Atomic int	 stop;
	uint64_t	 start_ns;
	uint64_t	 done_ns[BENCH_MAX_SUBS];
	int		 ok[BENCH_MAX_SUBS];
};

struct limit_job {
	struct limit_shm	*shm;
	int			 port;
	int			 listen_fd;
	int			 nsubs;
	int			 index;
	size_t			 bytes;
};

static int
limit_receiver(void *arg)
{
	struct limit_job	*job = arg;
	struct sockaddr_in	 sin;
	static char		 buf[LIMIT_CHUNK];
	size_t			 got = 0;
	ssize_t			 n;
	int			 fd;

	close(job->listen_fd);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return 1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)job->port);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		return 1;
	atomic_fetch_add(&job->shm->ready, 1);
	while (got < job->bytes) {
		if ((n = read(fd, buf, sizeof(buf))) <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			return 1;
		}
		got += (size_t)n;
	}
	job->shm->done_ns[job->index] = now_ns();
	job->shm->ok[job->index] = 1;
	return 0;
}

static int
limit_sender(void *arg)
{
	struct limit_job	*job = arg;
	struct pollfd		 pfd[BENCH_MAX_SUBS];
	size_t			 left[BENCH_MAX_SUBS], want;
	static char		 buf[LIMIT_CHUNK];
	ssize_t			 n;
	int			 i, fd, active;

	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < job->nsubs; i++) {
		if ((fd = accept(job->listen_fd, NULL, NULL)) == -1)
			return 1;
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		pfd[i].fd = fd;
		pfd[i].events = POLLOUT;
		left[i] = job->bytes;
	}
	while (!atomic_load(&job->shm->go) && !atomic_load(&job->shm->stop))
		sleep_ns(100000);
	job->shm->start_ns = now_ns();
	for (active = job->nsubs; active > 0 && !atomic_load(&job->shm->stop);) {
		if (poll(pfd, (nfds_t)job->nsubs, 1000) <= 0)
			continue;
		for (i = 0; i < job->nsubs; i++) {
			if (pfd[i].fd < 0 || !(pfd[i].revents & POLLOUT))
				continue;
			want = left[i] < LIMIT_CHUNK ? left[i] : LIMIT_CHUNK;
			if ((n = write(pfd[i].fd, buf, want)) == -1) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				return 1;
			}
			left[i] -= (size_t)n;
			if (left[i] == 0) {
				pfd[i].fd = -pfd[i].fd - 1;
				active--;
			}
		}
	}
	/* The readers close first; our close then sends no RST. */
	while (!atomic_load(&job->shm->stop))
		sleep_ns(1000000);
	return 0;
}

/*
 * Seconds until each of nsubs readers got bytes_per_sub bytes, from the
 * sender's first write; -1 on failure.
 */
double
limit_fanout(int nsubs, size_t bytes_per_sub)
{
	struct sockaddr_in	 sin;
	struct limit_job	 job;
	struct limit_shm	*shm;
	socklen_t		 sl = sizeof(sin);
	pid_t			 pids[BENCH_MAX_SUBS + 1];
	uint64_t		 last = 0;
	double			 deadline, sec = -1;
	int			 i, np = 0, done;

	memset(&job, 0, sizeof(job));
	shm = shm_alloc(sizeof(*shm));
	job.shm = shm;
	job.nsubs = nsubs;
	job.bytes = bytes_per_sub;
	if ((job.listen_fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		goto out;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(job.listen_fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(job.listen_fd, BENCH_MAX_SUBS) == -1 ||
	    getsockname(job.listen_fd, (struct sockaddr *)&sin, &sl) == -1)
		goto out;
	job.port = ntohs(sin.sin_port);
	if ((pids[np] = child_start(limit_sender, &job)) > 0)
		np++;
	for (i = 0; i < nsubs; i++) {
		job.index = i;
		if ((pids[np] = child_start(limit_receiver, &job)) > 0)
			np++;
	}
	deadline = now_s() + 30;
	while (atomic_load(&shm->ready) < nsubs && now_s() < deadline)
		sleep_ns(1000000);
	atomic_store(&shm->go, 1);
	deadline = now_s() + conf.run_timeout;
	do {
		sleep_ns(1000000);
		for (i = 0, done = 0; i < nsubs; i++)
			done += shm->ok[i];
	} while (done < nsubs && now_s() < deadline);
	if (done == nsubs) {
		for (i = 0; i < nsubs; i++)
			if (shm->done_ns[i] > last)
				last = shm->done_ns[i];
		sec = (double)(last - shm->start_ns) / 1e9;
	}
out:
	atomic_store(&shm->stop, 1);
	(void)children_wait(pids, np, now_s() + 10);
	if (job.listen_fd > 0)
		close(job.listen_fd);
	shm_free(shm, sizeof(*shm));
	return sec;
}

double
limit_stream(size_t bytes)
{
	return limit_fanout(1, bytes);
}
