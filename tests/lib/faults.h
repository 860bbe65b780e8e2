/*
 * faults: what the high-availability tests do to reflectors and
 * clients. A reflector is killed and restarted on the same port (the
 * address clients know), frozen and thawed (a partition, as its peers
 * see it: the kernel still accepts connections, nothing answers), and a
 * client process is started to be killed.
 */
#ifndef ISP_FAULTS_H
#define ISP_FAULTS_H

#include <sys/types.h>

#include "testutil.h"

/* Starts ispd again on the port it had (p->port), with the given extra
 * arguments (a NULL-terminated list), after ispd_signal(p, SIGKILL) or
 * a crash. Its log is appended to p->log. Fails the test when it does
 * not listen within 10 s. ispd_stop() then stops it as usual. */
void		 ispd_restart(struct ispd_proc *, ...);
/* SIGSTOP: the reflector stops answering; sessions with it time out
 * after the hold time on the clients' side. */
void		 ispd_freeze(struct ispd_proc *);
/* SIGCONT: it runs again, and finds every session silent. */
void		 ispd_thaw(struct ispd_proc *);

/* A running ispctl (test_bin("ispctl")), its standard input a pipe. */
struct child {
	pid_t	 pid;
	int	 in;		/* write end of its stdin, or -1 */
	char	 out[128];	/* its stdout, a file */
	char	 err[128];	/* its stderr, a file */
};

/* Starts ispctl with the arguments (NULL-terminated), stdin a pipe,
 * stdout and stderr to files in /tmp (removed by child_kill() and
 * child_wait()). */
void		 child_start(struct child *, ...);
/* Writes a line (a newline is added) to its standard input. */
void		 child_line(struct child *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* 1 when its stdout has a line containing text. */
int		 child_out_has(struct child *, const char *text);
/* SIGKILL and reap. */
void		 child_kill(struct child *);
/* Closes its stdin and waits up to 10 s; returns its exit status, or
 * -1 (killed after the wait). */
int		 child_wait(struct child *);

#endif
