/*
 * prom: the Prometheus endpoint that ispd, isp-registrar and isp-locator
 * share. An HTTP listener of its own (libmicrohttpd, driven by the
 * program's own event loop: no thread) answering GET /metrics with the
 * text exposition format 0.0.4 and GET /healthz with 200 or 503, and
 * the helpers that write that format.
 *
 * The program watches prom_fd() for input and calls prom_run() when it
 * is readable or when prom_timeout_ms() has passed. The handlers run
 * inside prom_run(), on the program's thread, so the figures are read
 * without a lock.
 */
#ifndef ISP_PROM_H
#define ISP_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Log levels of prom_log_fn. */
#define PROM_LOG_ERROR	0
#define PROM_LOG_WARN	1
#define PROM_LOG_INFO	2
#define PROM_LOG_DEBUG	3

struct prom;

/* Appends the exposition to b (prom_family() and prom_u64() and the
 * like); a failed append is seen in b and answered 500. */
typedef void	 prom_write_fn(struct buf *b, void *arg);
/* 1 while serving, 0 while going down: /healthz answers 200 or 503. */
typedef int	 prom_health_fn(void *arg);
typedef void	 prom_log_fn(int level, const char *msg);

/*
 * Checks spec, "HOST:PORT" or "[IPV6]:PORT": an empty host means
 * 127.0.0.1 (loopback unless told otherwise), "*" every IPv4 address,
 * port 0 a free port. Returns 0, or -1 with a sentence in err.
 */
int		 prom_addr_check(const char *spec, char *err, size_t errsz);
/*
 * Binds spec and starts serving. Logs the address (and a warning when
 * it is beyond loopback) through log. Returns the endpoint, or NULL
 * with a sentence in err (bad address, bind refused, out of memory).
 */
struct prom	*prom_open(const char *spec, prom_write_fn *, prom_health_fn *,
		    void *arg, prom_log_fn *log, char *err, size_t errsz);
/* The descriptor to watch for input (an epoll descriptor). */
int		 prom_fd(const struct prom *);
/* Milliseconds until prom_run() is due without input, or -1. */
int		 prom_timeout_ms(struct prom *);
/* Accepts, reads, answers and times out connections; never blocks. */
void		 prom_run(struct prom *);
/* "127.0.0.1:9464" */
const char	*prom_name(const struct prom *);
/* Closes the listener and every connection, and frees. NULL is fine. */
void		 prom_close(struct prom *);

/* The exposition. Names are the caller's constants; label values may
 * be anything (they are escaped). */
void		 prom_family(struct buf *, const char *name, const char *type,
		    const char *help);
void		 prom_u64(struct buf *, const char *name, uint64_t);
void		 prom_double(struct buf *, const char *name, double);
/* name{label="value"} v */
void		 prom_u64_label(struct buf *, const char *name,
		    const char *label, const void *value, size_t len,
		    uint64_t);
/* A histogram's buckets, sum and count; counts are per bucket (not
 * cumulative), bounds[n] upper bounds, counts[n] above the last. */
void		 prom_histogram(struct buf *, const char *name,
		    const uint64_t *bounds, const uint64_t *counts, size_t n,
		    uint64_t sum);
void		 prom_printf(struct buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

#endif
