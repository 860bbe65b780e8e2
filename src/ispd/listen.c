/*
 * listen: the listening sockets, and accepting connections into sessions.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "ispd.h"

/* Connections accepted per readiness event: a connection storm must not
 * keep the loop from serving the sessions it already has. */
#define LISTEN_ACCEPT_BATCH	64
/* A listener that ran out of file descriptors rests this long instead of
 * waking the loop again at once for the same pending connection. */
#define LISTEN_PAUSE_MS		1000

struct listener {
	TAILQ_ENTRY(listener)	 entry;
	struct loop_io		 io;
	int			 fd;
	int			 port;		/* the bound port */
	int			 tls;		/* --listen-tls */
	uint64_t		 paused_until;	/* 0: accepting */
	char			 name[80];	/* the bound address */
};

static TAILQ_HEAD(, listener)	 listeners = TAILQ_HEAD_INITIALIZER(listeners);

static void
listen_pause(struct listener *l)
{
	loop_set(&l->io, 0);
	l->paused_until = loop_now_ms() + LISTEN_PAUSE_MS;
}

static void
listen_accept(void *arg, uint32_t events)
{
	struct listener		*l = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 peer[64];
	int			 fd, i, one = 1;

	for (i = 0; i < LISTEN_ACCEPT_BATCH; i++) {
		sslen = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			switch (errno) {
			case EAGAIN:
				return;
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
			case EPERM:
				continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				log_warn("accept on %s, pausing for %d ms",
				    l->name, LISTEN_PAUSE_MS);
				listen_pause(l);
				return;
			default:
				log_warn("accept on %s", l->name);
				return;
			}
		}
		/* Events are small frames that must go out at once. */
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one)) == -1)
			log_warn("setsockopt TCP_NODELAY");
		addr_format(&ss, peer, sizeof(peer));
		if (session_open(fd, peer, l->tls) == NULL)
			close(fd);
	}
}

static int
listen_fail(const char *spec, const char *why)
{
	fprintf(stderr, "ispd: cannot listen on %s: %s\n", spec, why);
	return -1;
}

/*
 * Binds and listens on spec (already checked by addr_split()), with
 * TLS when tls is set. On failure prints "ispd: cannot listen on SPEC:
 * reason" to stderr and returns -1: that ends startup.
 */
int
listen_open(const char *spec, int tls)
{
	struct addrinfo		 hints, *res;
	struct sockaddr_storage	 ss;
	struct listener		*l;
	socklen_t		 sslen = sizeof(ss);
	char			 host[256], port[8];
	int			 fd, rc, one = 1;

	if (addr_split(spec, "0.0.0.0", host, sizeof(host), port,
	    sizeof(port)) == -1)
		return listen_fail(spec, "not HOST:PORT or [IPV6]:PORT");
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = spec[0] == '[' ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		return listen_fail(spec, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		freeaddrinfo(res);
		return listen_fail(spec, strerror(errno));
	}
	/* A restarted ispd must bind while old connections sit in
	 * TIME_WAIT; a v6 listener must not take the v4 port as well. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    (res->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, SOMAXCONN) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		rc = errno;
		freeaddrinfo(res);
		close(fd);
		return listen_fail(spec, strerror(rc));
	}
	freeaddrinfo(res);
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		close(fd);
		return listen_fail(spec, strerror(errno));
	}
	l->fd = fd;
	l->port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	addr_format(&ss, l->name, sizeof(l->name));
	if (loop_add(&l->io, fd, EPOLLIN, listen_accept, l) == -1) {
		rc = errno;
		close(fd);
		free(l);
		return listen_fail(spec, strerror(rc));
	}
	l->tls = tls;
	TAILQ_INSERT_TAIL(&listeners, l, entry);
	log_info("listening on %s%s", l->name, tls ? " (TLS)" : "");
	/* Plain TCP beyond this host is allowed, since asked for, but not
	 * without a word (docs/SECURITY.md). */
	if (!tls && !addr_is_loopback(&ss))
		log_warnx("plain TCP on %s is reachable from other hosts: "
		    "records travel in clear and a session can be taken over "
		    "on the path; prefer listen-tls", l->name);
	return 0;
}

/*
 * Writes the bound port of each listener, one a line in --listen order,
 * to path.tmp and renames it to path, so that a reader never sees half a
 * file. Returns 0, or -1 after printing why.
 */
int
listen_write_ports(const char *path)
{
	struct listener	*l;
	char		 tmp[4096];
	FILE		*f;
	int		 bad = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		fprintf(stderr, "ispd: port file path too long: %s\n", path);
		return -1;
	}
	if ((f = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "ispd: cannot write port file %s: %s\n", tmp,
		    strerror(errno));
		return -1;
	}
	TAILQ_FOREACH(l, &listeners, entry)
		if (fprintf(f, "%d\n", l->port) < 0)
			bad = 1;
	if (fclose(f) == EOF)
		bad = 1;
	if (bad || rename(tmp, path) == -1) {
		fprintf(stderr, "ispd: cannot write port file %s: %s\n", path,
		    strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

void
listen_close_all(void)
{
	struct listener	*l;

	while ((l = TAILQ_FIRST(&listeners)) != NULL) {
		TAILQ_REMOVE(&listeners, l, entry);
		loop_del(&l->io);
		close(l->fd);
		free(l);
	}
}

/* When the earliest paused listener resumes, or UINT64_MAX. */
uint64_t
listen_next_ms(void)
{
	struct listener	*l;
	uint64_t	 next = UINT64_MAX;

	TAILQ_FOREACH(l, &listeners, entry)
		if (l->paused_until != 0 && l->paused_until < next)
			next = l->paused_until;
	return next;
}

void
listen_timers(uint64_t now_ms)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &listeners, entry) {
		if (l->paused_until == 0 || l->paused_until > now_ms)
			continue;
		l->paused_until = 0;
		loop_set(&l->io, EPOLLIN);
		log_info("accepting on %s again", l->name);
	}
}
