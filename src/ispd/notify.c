/*
 * notify: tells the service manager what ispd is doing, by the
 * notification protocol of sd_notify(3): one datagram of VAR=VALUE lines
 * to the AF_UNIX socket that $NOTIFY_SOCKET names (a path, or one
 * starting with '@' in the abstract namespace).
 *
 *	READY=1		once every listener is bound (systemd's
 *			Type=notify starts what depends on ispd then)
 *	RELOADING=1	when a SIGHUP reload begins, READY=1 when it ends
 *	STOPPING=1	when ispd begins to stop
 *	WATCHDOG=1	every half of $WATCHDOG_USEC while the loop turns
 *			(WatchdogSec=), from the loop's own timers, so a
 *			loop that hangs stops sending it
 *	STATUS=...	a line for `systemctl status`
 *
 * Without $NOTIFY_SOCKET every call does nothing. Not libsystemd: the
 * protocol is one sendto() of a line, documented as stable, and the
 * library would be one more dependency for it (docs/DEPENDENCIES.md).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ispd.h"

static int			 notify_fd = -1;
static struct sockaddr_un	 notify_addr;
static socklen_t		 notify_len;
static uint64_t			 watchdog_every_ms;	/* 0: none */
static uint64_t			 watchdog_next_ms;

/* Reads the environment. A bad $NOTIFY_SOCKET is reported and ignored:
 * ispd serves without a manager as well. */
void
notify_init(void)
{
	const char	*path = getenv("NOTIFY_SOCKET");
	const char	*wd = getenv("WATCHDOG_USEC");
	const char	*wpid = getenv("WATCHDOG_PID");
	size_t		 len;
	char		*end;
	unsigned long long usec;

	if (path == NULL || *path == '\0')
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof(notify_addr.sun_path)) {
		log_warnx("NOTIFY_SOCKET %s: not a socket path; not notifying "
		    "the service manager", path);
		return;
	}
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, len);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0';
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if ((notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("socket for NOTIFY_SOCKET");
		return;
	}
	if (wd == NULL || (wpid != NULL && strtol(wpid, NULL, 10) != getpid()))
		return;
	errno = 0;
	usec = strtoull(wd, &end, 10);
	if (errno != 0 || *end != '\0' || usec == 0) {
		log_warnx("WATCHDOG_USEC %s: not a number of microseconds; "
		    "no watchdog", wd);
		return;
	}
	/* Twice per period, as sd_watchdog_enabled(3) advises. */
	watchdog_every_ms = usec / 2000 > 0 ? usec / 2000 : 1;
	watchdog_next_ms = 0;
}

/* Sends one notification; a manager that went away costs a debug line. */
static void
notify_send(const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;
	int	 n;

	if (notify_fd == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		fatalx("notify_send: a notification of %d bytes", n);
	if (sendto(notify_fd, msg, (size_t)n, MSG_NOSIGNAL,
	    (struct sockaddr *)&notify_addr, notify_len) == -1)
		log_debug("notify: sendto %s: %s", notify_addr.sun_path[0] ?
		    notify_addr.sun_path : "(abstract)", strerror(errno));
}

void
notify_ready(const char *status)
{
	notify_send("READY=1\nMAINPID=%ld\nSTATUS=%s", (long)getpid(),
	    status);
}

/* RELOADING=1 wants the monotonic time in microseconds beside it. */
void
notify_reloading(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	notify_send("RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading "
	    "the configuration", (uint64_t)ts.tv_sec * 1000000 +
	    (uint64_t)ts.tv_nsec / 1000);
}

void
notify_status(const char *status)
{
	notify_send("STATUS=%s", status);
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=stopping");
}

/* When the next WATCHDOG=1 is due; UINT64_MAX without a watchdog. */
uint64_t
notify_next_ms(void)
{
	return watchdog_every_ms == 0 ? UINT64_MAX : watchdog_next_ms;
}

void
notify_timers(uint64_t now_ms)
{
	if (watchdog_every_ms == 0 || now_ms < watchdog_next_ms)
		return;
	notify_send("WATCHDOG=1");
	watchdog_next_ms = now_ms + watchdog_every_ms;
}

void
notify_free(void)
{
	if (notify_fd != -1)
		close(notify_fd);
	notify_fd = -1;
	watchdog_every_ms = 0;
}
