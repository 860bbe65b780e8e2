/*
 * faults: restarting, freezing and killing what integration tests run.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "faults.h"

void
ispd_restart(struct ispd_proc *p, ...)
{
	char		 listen[64];
	va_list		 ap;

	assert_true(p->port > 0);
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
	/* ispd sets SO_REUSEADDR, so the port is free again at once even
	 * with the old sessions' sockets in TIME_WAIT. */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", p->port);
	va_start(ap, p);
	assert_int_equal(ispd_vspawn(p, listen, 1, ap), p->port);
	va_end(ap);
}

void
ispd_freeze(struct ispd_proc *p)
{
	assert_int_equal(kill(p->pid, SIGSTOP), 0);
}

void
ispd_thaw(struct ispd_proc *p)
{
	assert_int_equal(kill(p->pid, SIGCONT), 0);
}

void
child_start(struct child *ch, ...)
{
	char		*argv[64];
	const char	*a;
	va_list		 ap;
	int		 argc = 0, pfd[2], fd, ofd;

	memset(ch, 0, sizeof(*ch));
	snprintf(ch->err, sizeof(ch->err), "/tmp/ispctl-child.%d.XXXXXX",
	    (int)getpid());
	assert_true((fd = mkstemp(ch->err)) != -1);
	snprintf(ch->out, sizeof(ch->out), "/tmp/ispctl-child.%d.XXXXXX",
	    (int)getpid());
	assert_true((ofd = mkstemp(ch->out)) != -1);
	argv[argc++] = (char *)test_bin("ispctl");
	va_start(ap, ch);
	while ((a = va_arg(ap, const char *)) != NULL && argc < 62)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	ch->pid = fork();
	assert_true(ch->pid != -1);
	if (ch->pid == 0) {
		dup2(pfd[0], STDIN_FILENO);
		dup2(ofd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[0]);
	close(fd);
	close(ofd);
	ch->in = pfd[1];
}

void
child_line(struct child *ch, const char *fmt, ...)
{
	char	 line[4096];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && n < (int)sizeof(line) - 1);
	line[n++] = '\n';
	assert_int_equal(write(ch->in, line, (size_t)n), n);
}

int
child_out_has(struct child *ch, const char *text)
{
	char	 line[4096];
	FILE	*f;
	int	 found = 0;

	if ((f = fopen(ch->out, "r")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

static void
child_cleanup(struct child *ch)
{
	if (ch->in != -1)
		close(ch->in);
	ch->in = -1;
	ch->pid = 0;
	unlink(ch->err);
	unlink(ch->out);
}

void
child_kill(struct child *ch)
{
	if (ch->pid > 0) {
		kill(ch->pid, SIGKILL);
		waitpid(ch->pid, NULL, 0);
	}
	child_cleanup(ch);
}

int
child_wait(struct child *ch)
{
	int	 status, i;

	if (ch->in != -1)
		close(ch->in);
	ch->in = -1;
	for (i = 0; i < 1000; i++) {
		if (waitpid(ch->pid, &status, WNOHANG) == ch->pid) {
			child_cleanup(ch);
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		usleep(10000);
	}
	child_kill(ch);
	return -1;
}
