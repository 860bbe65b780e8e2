/*
 * sessions: N idle sessions that only keep themselves alive, and what
 * they cost the server in CPU and memory.
 *
 * ispd's sessions are libisp clients run in mode 2 (one epoll loop for
 * all of them in one process), each sending its PING every hold/3 = 3 s
 * as the library does. The peers get the same: N connections that each
 * send a PING every 3 s (Redis inline PING, NATS PING after CONNECT),
 * written with plain sockets because one process cannot hold ten
 * thousand cnats connections (each has threads of its own).
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isp.h"
#include "bench.h"

#define PEER_PING_NS	3000000000ULL
#define SWEEP_SLICES	100		/* a sweep of all takes 1 s */
/* Sessions per client process: far below any descriptor limit, even
 * when a libisp client holds more than its socket. */
#define SESS_PER_CHILD	2000
#define SESS_MAX_CHILDREN	64

struct sess_shm {
	_Atomic long	 connected;
	_Atomic int	 failed;
	_Atomic int	 stop;
	char		 err[200];
};

struct sess_job {
	struct server	*srv;
	struct sess_shm	*shm;
	long		 n;		/* this child's sessions */
	long		 first;		/* index of its first, for messages */
};

static int
sess_isp(struct sess_job *job)
{
	struct epoll_event	 ev, evs[256];
	struct isp_options	 o;
	isp_client		**cl;
	long			 i, k, next = 0, per;
	int			 epfd, nev;

	if ((cl = calloc((size_t)job->n, sizeof(*cl))) == NULL ||
	    (epfd = epoll_create1(0)) == -1)
		return 1;
	for (i = 0; i < job->n; i++) {
		isp_options_init(&o);
		o.server = job->srv->addr;
		o.name = "bench-idle";
		if ((cl[i] = isp_new(&o)) == NULL ||
		    isp_connect(cl[i]) != ISP_OK) {
			snprintf(job->shm->err, sizeof(job->shm->err),
			    "session %ld: %s", job->first + i,
			    isp_errmsg(cl[i]));
			atomic_store(&job->shm->failed, 1);
			return 1;
		}
		ev.events = EPOLLIN;
		ev.data.u64 = (uint64_t)i;
		epoll_ctl(epfd, EPOLL_CTL_ADD, isp_fd(cl[i]), &ev);
		atomic_fetch_add(&job->shm->connected, 1);
	}
	per = job->n / SWEEP_SLICES + 1;
	while (!atomic_load(&job->shm->stop)) {
		nev = epoll_wait(epfd, evs, 256, 10);
		for (k = 0; k < nev; k++)
			if (isp_process(cl[evs[k].data.u64]) != ISP_OK) {
				snprintf(job->shm->err, sizeof(job->shm->err),
				    "%s", isp_errmsg(cl[evs[k].data.u64]));
				atomic_store(&job->shm->failed, 1);
				return 1;
			}
		/* Keepalive duties: every client once a second. */
		for (k = 0; k < per; k++, next = (next + 1) % job->n)
			(void)isp_process(cl[next]);
	}
	return 0;
}

static int
sess_peer_connect(struct sess_job *job)
{
	struct sockaddr_in	 sin;
	int			 fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)job->srv->port);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
sess_peer(struct sess_job *job)
{
	static const char	 nats_hello[] = "CONNECT {\"verbose\":false,"
	    "\"pedantic\":false,\"name\":\"bench-idle\"}\r\nPING\r\n";
	struct epoll_event	 ev, evs[256];
	char			 buf[4096];
	int			*fds, epfd, nev, fd;
	uint64_t		*due, now;
	const char		*ping = "PING\r\n";
	long			 i, k, next = 0, per;
	ssize_t			 n;

	if ((fds = calloc((size_t)job->n, sizeof(*fds))) == NULL ||
	    (due = calloc((size_t)job->n, sizeof(*due))) == NULL ||
	    (epfd = epoll_create1(0)) == -1)
		return 1;
	for (i = 0; i < job->n; i++) {
		if ((fds[i] = sess_peer_connect(job)) == -1) {
			snprintf(job->shm->err, sizeof(job->shm->err),
			    "connection %ld: %s", job->first + i,
			    strerror(errno));
			atomic_store(&job->shm->failed, 1);
			return 1;
		}
		if (job->srv->kind == SYS_NATS)
			(void)write(fds[i], nats_hello, strlen(nats_hello));
		due[i] = now_ns() + PEER_PING_NS;
		ev.events = EPOLLIN;
		ev.data.u64 = (uint64_t)i;
		epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev);
		atomic_fetch_add(&job->shm->connected, 1);
	}
	per = job->n / SWEEP_SLICES + 1;
	while (!atomic_load(&job->shm->stop)) {
		nev = epoll_wait(epfd, evs, 256, 10);
		for (k = 0; k < nev; k++) {
			fd = fds[evs[k].data.u64];
			if ((n = read(fd, buf, sizeof(buf) - 1)) <= 0) {
				if (n == -1 && errno == EAGAIN)
					continue;
				snprintf(job->shm->err, sizeof(job->shm->err),
				    "%s closed a connection",
				    sys_name(job->srv->kind));
				atomic_store(&job->shm->failed, 1);
				return 1;
			}
			buf[n] = '\0';
			/* nats-server pings idle clients too. */
			if (job->srv->kind == SYS_NATS &&
			    strstr(buf, "PING\r\n") != NULL)
				(void)write(fd, "PONG\r\n", 6);
		}
		now = now_ns();
		for (k = 0; k < per; k++, next = (next + 1) % job->n)
			if (due[next] <= now) {
				(void)write(fds[next], ping, strlen(ping));
				due[next] = now + PEER_PING_NS;
			}
	}
	return 0;
}

static int
sess_child(void *arg)
{
	struct sess_job	*job = arg;

	return job->srv->kind == SYS_ISPD ? sess_isp(job) : sess_peer(job);
}

void
scen_sessions(void)
{
	struct sess_job	 job;
	struct server	 srv;
	struct stat3	 s_cpu, s_rss, s_per;
	struct tab	 t;
	char		 title[256], a[64], b[64], c[64];
	double		 cpu[64], rss[64], per[64], deadline, c0, t0;
	long		 rss0, left;
	pid_t		 pids[SESS_MAX_CHILDREN];
	enum sys_kind	 k;
	int		 run, np;

	snprintf(title, sizeof(title), "sessions: %ld idle sessions, each "
	    "pinging every 3 s; %.0f s measured, median [min..max] of %d runs",
	    conf.sessions, conf.sessions_window, conf.runs);
	if (conf.sessions > (long)SESS_PER_CHILD * SESS_MAX_CHILDREN)
		conf.sessions = (long)SESS_PER_CHILD * SESS_MAX_CHILDREN;
	tab_init(&t, title, 5, "system", "server CPU, % of a core",
	    "server RSS", "RSS per session", "clients");
	for (k = SYS_ISPD; k < SYS_TCP; k++) {
		if ((k == SYS_REDIS && !conf.with_redis) ||
		    (k == SYS_NATS && !conf.with_nats))
			continue;
		for (run = 0; run < conf.runs; run++) {
			cpu[run] = rss[run] = per[run] = -1;
			if (server_start(&srv, k) == -1)
				continue;
			memset(&job, 0, sizeof(job));
			job.srv = &srv;
			job.shm = shm_alloc(sizeof(*job.shm));
			sleep_ns(200000000);
			rss0 = proc_rss(srv.pid);
			for (np = 0, left = conf.sessions; left > 0 &&
			    np < SESS_MAX_CHILDREN; np++) {
				job.n = left < SESS_PER_CHILD ? left :
				    SESS_PER_CHILD;
				pids[np] = child_start(sess_child, &job);
				job.first += job.n;
				left -= job.n;
			}
			job.n = conf.sessions - left;
			deadline = now_s() + 120;
			while (atomic_load(&job.shm->connected) < job.n &&
			    !atomic_load(&job.shm->failed) && now_s() < deadline)
				sleep_ns(10000000);
			if (atomic_load(&job.shm->connected) == job.n) {
				/* Past the connection storm. */
				sleep_ns(1000000000);
				c0 = proc_cpu_s(srv.pid);
				t0 = now_s();
				sleep_ns((uint64_t)(conf.sessions_window * 1e9));
				if (!atomic_load(&job.shm->failed)) {
					cpu[run] = 100 * (proc_cpu_s(srv.pid) -
					    c0) / (now_s() - t0);
					rss[run] = (double)proc_rss(srv.pid);
					per[run] = (rss[run] - (double)rss0) /
					    job.n;
				}
			}
			if (job.shm->err[0] != '\0')
				tab_note(&t, "%s: %s", sys_name(k),
				    job.shm->err);
			say("%s sessions run %d: CPU %.2f%%, RSS %.0f MB",
			    sys_name(k), run + 1, cpu[run], rss[run] / 1e6);
			atomic_store(&job.shm->stop, 1);
			(void)children_wait(pids, np, now_s() + 30);
			shm_free(job.shm, sizeof(*job.shm));
			server_stop(&srv);
		}
		stat3_of(&s_cpu, cpu, conf.runs);
		stat3_of(&s_rss, rss, conf.runs);
		stat3_of(&s_per, per, conf.runs);
		s_rss.med /= 1e6;
		s_rss.min /= 1e6;
		s_rss.max /= 1e6;
		tab_row(&t, sys_name(k), fmt_stat(a, sizeof(a), &s_cpu, "%"),
		    fmt_stat(b, sizeof(b), &s_rss, " MB"),
		    fmt_stat(c, sizeof(c), &s_per, " B"), k == SYS_ISPD ?
		    "libisp, mode 2" : "plain sockets");
		if (k == SYS_ISPD) {
			snprintf(a, sizeof(a), "%.2f%% of a core, %.0f B RSS "
			    "per session", s_cpu.med, s_per.med);
			target("10,000 idle sessions: ispd CPU and RSS "
			    "(reported)", a, -1);
		}
	}
	tab_note(&t, "RSS per session: server RSS with the sessions minus "
	    "its RSS before them, divided by their number.");
	tab_print(&t);
	tab_free(&t);
}
