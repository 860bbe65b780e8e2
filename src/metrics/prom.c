/*
 * prom: the Prometheus endpoint (see prom.h).
 *
 * HTTP is libmicrohttpd's (docs/DEPENDENCIES.md): a parser of requests
 * from the network is exactly what this project should not write again.
 * It runs in its epoll mode without a thread of its own: its epoll
 * descriptor joins the program's loop, which calls MHD_run() when that
 * descriptor is readable and when MHD_get_timeout() says so. So the
 * handlers read the program's figures on the program's thread.
 *
 * The endpoint answers two paths and nothing else, keeps few and short
 * connections (PROM_MAX_CONNS, PROM_TIMEOUT_S) and little memory per
 * connection: a scraper is one or two Prometheus servers, not a crowd.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "addr.h"
#include "prom.h"

#define PROM_MAX_CONNS		16
#define PROM_MAX_CONNS_PER_IP	8
#define PROM_TIMEOUT_S		10	/* an idle or slow connection */
#define PROM_CONN_MEMORY	(32 * 1024)	/* request head per conn */
/* Version 0.0.4 of the text format. */
#define PROM_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"

struct prom {
	struct MHD_Daemon	*mhd;
	prom_write_fn		*write;
	prom_health_fn		*health;
	void			*arg;
	prom_log_fn		*log;
	int			 epoll_fd;
	char			 name[80];
};

/* Splits spec into host and port text (see prom_addr_check()). */
static int
prom_addr_split(const char *spec, char *host, size_t hostsz, char *port,
    size_t portsz, char *err, size_t errsz)
{
	if (addr_split(spec, "127.0.0.1", host, hostsz, port, portsz) == 0)
		return 0;
	snprintf(err, errsz, "expected HOST:PORT or [IPV6]:PORT with a port "
	    "of 0 to 65535, e.g. 127.0.0.1:9464");
	return -1;
}

int
prom_addr_check(const char *spec, char *err, size_t errsz)
{
	char	 host[256], port[8];

	return prom_addr_split(spec, host, sizeof(host), port, sizeof(port),
	    err, errsz);
}

/* The bound, listening, non-blocking socket of spec, or -1 with err. */
static int
prom_bind(const char *spec, struct sockaddr_storage *ss, char *err,
    size_t errsz)
{
	struct addrinfo	 hints, *res;
	socklen_t	 sslen = sizeof(*ss);
	char		 host[256], port[8];
	int		 fd, rc, one = 1;

	if (prom_addr_split(spec, host, sizeof(host), port, sizeof(port), err,
	    errsz) == -1)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = spec[0] == '[' ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errsz, "%s", gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    (res->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 16) == -1 ||
	    getsockname(fd, (struct sockaddr *)ss, &sslen) == -1) {
		snprintf(err, errsz, "%s", strerror(errno));
		if (fd != -1)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

static void
prom_logf(struct prom *p, int level, const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->log(level, msg);
}

/* libmicrohttpd's own messages (a peer that went away, a request too
 * large): about one connection each, so at debug level. */
static void
prom_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct prom	*p = cls;
	char		 msg[512];
	size_t		 n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	prom_logf(p, PROM_LOG_DEBUG, "metrics: %s", msg);
}

static enum MHD_Result
prom_reply(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response	*r;
	enum MHD_Result		 rc;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; charset=utf-8") != MHD_YES ||
	    (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") !=
	    MHD_YES)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
prom_metrics(struct prom *p, struct MHD_Connection *conn)
{
	struct MHD_Response	*r;
	struct buf		 b;
	enum MHD_Result		 rc;

	buf_init(&b);
	p->write(&b, p->arg);
	if (buf_failed(&b) || b.len == 0) {
		buf_free(&b);
		return prom_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "out of memory writing the metrics\n");
	}
	/* MUST_FREE: the response takes b's bytes and free()s them. */
	if ((r = MHD_create_response_from_buffer(b.len, b.data,
	    MHD_RESPMEM_MUST_FREE)) == NULL) {
		buf_free(&b);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    PROM_CONTENT_TYPE) != MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

/*
 * One request. libmicrohttpd calls this once the head is read, then for
 * each piece of a body, then once more at its end. Another method is
 * refused at the first call (libmicrohttpd then closes the connection
 * rather than read its body); GET and HEAD are answered at the last, so
 * that the connection may be kept for the next scrape. A body sent with
 * them is read and dropped, within the connection's memory limit.
 */
static enum MHD_Result
prom_answer(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static int	 seen;
	struct prom	*p = cls;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return prom_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "only GET /metrics and GET /healthz are served\n");
	if (*con_cls == NULL) {
		*con_cls = &seen;	/* the head is read */
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") == 0)
		return prom_metrics(p, conn);
	if (strcmp(url, "/healthz") == 0) {
		if (p->health != NULL && !p->health(p->arg))
			return prom_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "unavailable\n");
		return prom_reply(conn, MHD_HTTP_OK, "ok\n");
	}
	return prom_reply(conn, MHD_HTTP_NOT_FOUND,
	    "not found: the paths are /metrics and /healthz\n");
}

struct prom *
prom_open(const char *spec, prom_write_fn *write, prom_health_fn *health,
    void *arg, prom_log_fn *log, char *err, size_t errsz)
{
	const union MHD_DaemonInfo	*info;
	struct sockaddr_storage		 ss;
	struct prom			*p;
	int				 fd;

	if ((fd = prom_bind(spec, &ss, err, errsz)) == -1)
		return NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errsz, "out of memory");
		close(fd);
		return NULL;
	}
	p->write = write;
	p->health = health;
	p->arg = arg;
	p->log = log;
	addr_format(&ss, p->name, sizeof(p->name));
	/* No MHD_USE_INTERNAL_POLLING_THREAD: the caller's loop runs it. */
	p->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0,
	    NULL, NULL, prom_answer, p,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)PROM_MAX_CONNS,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned int)PROM_MAX_CONNS_PER_IP,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)PROM_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)PROM_CONN_MEMORY,
	    MHD_OPTION_EXTERNAL_LOGGER, prom_mhd_log, p,
	    MHD_OPTION_END);
	if (p->mhd == NULL) {
		snprintf(err, errsz, "libmicrohttpd would not start");
		close(fd);
		free(p);
		return NULL;
	}
	if ((info = MHD_get_daemon_info(p->mhd, MHD_DAEMON_INFO_EPOLL_FD)) ==
	    NULL || info->epoll_fd < 0) {
		snprintf(err, errsz, "libmicrohttpd has no epoll descriptor");
		prom_close(p);
		return NULL;
	}
	p->epoll_fd = info->epoll_fd;
	prom_logf(p, PROM_LOG_INFO, "metrics on http://%s/metrics", p->name);
	/* The figures name tables and count clients: worth a word when any
	 * host can read them (docs/SECURITY.md). */
	if (!addr_is_loopback(&ss))
		prom_logf(p, PROM_LOG_WARN, "metrics on %s are reachable from "
		    "other hosts, in clear and without authentication: they "
		    "name the tables and count the clients; bind them to "
		    "loopback or let only the scraper reach the port",
		    p->name);
	return p;
}

int
prom_fd(const struct prom *p)
{
	return p->epoll_fd;
}

int
prom_timeout_ms(struct prom *p)
{
	MHD_UNSIGNED_LONG_LONG	 t;

	if (MHD_get_timeout(p->mhd, &t) != MHD_YES)
		return -1;
	return t > INT_MAX ? INT_MAX : (int)t;
}

void
prom_run(struct prom *p)
{
	(void)MHD_run(p->mhd);
}

const char *
prom_name(const struct prom *p)
{
	return p->name;
}

void
prom_close(struct prom *p)
{
	if (p == NULL)
		return;
	/* Closes the listening socket and every connection too. */
	if (p->mhd != NULL)
		MHD_stop_daemon(p->mhd);
	free(p);
}

/* The text exposition format, version 0.0.4; docs/OPERATIONS.md lists
 * the names. */

void
prom_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n + 1) == -1) {
		b->failed = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
prom_family(struct buf *b, const char *name, const char *type,
    const char *help)
{
	prom_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
prom_u64(struct buf *b, const char *name, uint64_t v)
{
	prom_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void
prom_double(struct buf *b, const char *name, double v)
{
	prom_printf(b, "%s %.3f\n", name, v);
}

/* A label value: backslash, double quote and line feed escaped as the
 * format wants; other control bytes and bytes above ASCII (a value must
 * be UTF-8, and table names are ASCII anyway) become '?'. */
static void
prom_put_value(struct buf *b, const uint8_t *v, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (v[i] == '\\' || v[i] == '"')
			buf_put_u8(b, '\\');
		if (v[i] == '\n') {
			buf_put(b, "\\n", 2);
			continue;
		}
		buf_put_u8(b, v[i] < 0x20 || v[i] >= 0x7f ? '?' : v[i]);
	}
}

void
prom_u64_label(struct buf *b, const char *name, const char *label,
    const void *value, size_t len, uint64_t v)
{
	prom_printf(b, "%s{%s=\"", name, label);
	prom_put_value(b, value, len);
	prom_printf(b, "\"} %llu\n", (unsigned long long)v);
}

void
prom_histogram(struct buf *b, const char *name, const uint64_t *bounds,
    const uint64_t *counts, size_t n, uint64_t sum)
{
	uint64_t	 cum = 0;
	size_t		 i;

	for (i = 0; i < n; i++) {
		cum += counts[i];
		prom_printf(b, "%s_bucket{le=\"%llu\"} %llu\n", name,
		    (unsigned long long)bounds[i], (unsigned long long)cum);
	}
	cum += counts[n];
	prom_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
	    (unsigned long long)cum);
	prom_printf(b, "%s_sum %llu\n%s_count %llu\n", name,
	    (unsigned long long)sum, name, (unsigned long long)cum);
}
