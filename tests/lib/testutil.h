/*
 * testutil: what integration tests share. Starts real ispd processes on
 * ephemeral loopback ports, connects real libisp clients, and records
 * the events they receive so tests can assert on them.
 */
#ifndef ISP_TESTUTIL_H
#define ISP_TESTUTIL_H

#include <sys/resource.h>
#include <sys/types.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "isp.h"

struct ispd_proc {
	pid_t	 pid;
	int	 port;
	char	 addr[64];	/* "127.0.0.1:PORT" */
	char	 dir[64];	/* scratch directory: port file, log */
	char	 log[128];	/* its stderr */
	/* RLIMIT_NOFILE for the daemon; 0: the test's own. */
	rlim_t	 nofile_soft;
	rlim_t	 nofile_hard;
};

/* Path of a program the build made, e.g. test_bin("ispd"). The build
 * directory is $ISP_BUILD, else the parent of the test's own directory. */
const char	*test_bin(const char *name);

/* Starts ispd on 127.0.0.1:0 with the given extra arguments (a
 * NULL-terminated list) and waits until it listens. Fails the test when
 * it does not within 10 s. With ISP_ISPD_WRAPPER set (for instance to
 * "valgrind --leak-check=full --error-exitcode=97"), ispd runs under
 * that command, in the same process, so ispd_stop() sees its verdict.
 * The child inherits the test's resource limits (RLIMIT_NOFILE); its
 * stdout and stderr go to p->log; it gets SIGTERM when the thread that
 * started it ends, so a failed test leaves no daemon behind. */
void		 ispd_start(struct ispd_proc *, ...);
/* ispd_start() on a struct the caller has filled beyond zeroes (e.g.
 * nofile_soft and nofile_hard). */
void		 ispd_vstart(struct ispd_proc *, va_list);
/* Starts ispd listening on listen, with the extra arguments in ap (a
 * NULL-terminated list), its log in p->log (appended to when append),
 * and waits until it listens. Returns the port it wrote; fails the test
 * when it does not listen within 10 s. p->dir must exist. Used by
 * ispd_start() and by faults.c's restart. */
int		 ispd_vspawn(struct ispd_proc *, const char *listen,
		    int append, va_list);
/* SIGTERM, then waits up to 10 s. Returns the exit status (0 for a
 * clean exit), or -1 when it died by a signal or did not stop. */
int		 ispd_stop(struct ispd_proc *);
/* Sends a signal (SIGKILL waits for the process). */
void		 ispd_signal(struct ispd_proc *, int sig);
/* 1 when the daemon's log contains the text. */
int		 ispd_log_has(struct ispd_proc *, const char *text);

/* A connected client named name; fails the test on error. */
isp_client	*client_new(struct ispd_proc *, const char *name);

/* One recorded event. */
struct rec_event {
	int		 type;
	char		 table[80];
	char		 key[1100];
	char		 fields[2048];	/* "a=1,b=2" */
	char		 owner[80];
	uint64_t	 owner_session;
	uint64_t	 seq;
	uint64_t	 count;
	int		 reason;
	int		 snapshot;
};

struct evlog {
	struct rec_event	*ev;
	size_t			 n;
	size_t			 cap;
	int			 ended;	/* END seen */
	uint32_t		 err_req;	/* last error: request id */
	int			 err_code;	/* and code */
	char			 err_reason[256];
	int			 nerrors;
};

/* An isp_event_cb that appends to the struct evlog in arg. */
void		 evlog_cb(isp_client *, const struct isp_event *, void *);
/* An isp_error_cb that records into the struct evlog in arg. */
void		 evlog_error_cb(isp_client *, uint32_t, int, const char *,
		    void *);
void		 evlog_free(struct evlog *);
/* The last event for key, or NULL. */
struct rec_event *evlog_last(struct evlog *, const char *key);
size_t		 evlog_count(struct evlog *, int type);

/* Runs the clients (blocking mode) until cond(arg) is true or timeout_ms
 * has passed. Returns 1 when cond became true. */
int		 pump(isp_client **, size_t n, int (*cond)(void *), void *arg,
		    int timeout_ms);
/* Runs the clients for ms milliseconds. */
void		 pump_for(isp_client **, size_t n, int ms);

int64_t		 now_ms(void);
/* A number of table's row in QUERY TABLES (column "records", "seq" or
 * "subscribers"), -1 when ispd has no such table; fails the test when
 * the query fails. */
long long	 table_column(isp_client *, const char *table,
		    const char *column);
/* A counter of one QUERY STATS, -1 when ispd has no such counter;
 * fails the test when the query fails. */
long long	 stat_counter(isp_client *, const char *name);

#endif
