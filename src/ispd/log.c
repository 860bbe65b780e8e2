/*
 * log: one line per message on stderr, with a UTC timestamp, so that a
 * supervisor (systemd, runit, a test harness) can keep or forward it.
 *
 *	2026-11-26T06:00:00.123Z ispd[PID]: warn: message
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ispd.h"

static int	 log_level = LOG_LEVEL_INFO;

static const char *const log_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void
log_init(int level)
{
	log_level = level;
}

/* Returns the level named, or -1. */
int
log_level_parse(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(name, log_names[i]) == 0)
			return (int)i;
	return -1;
}

/* The whole line goes out in one write(2), so that lines of concurrent
 * writers to the same stderr (several test daemons) do not interleave. */
static void __attribute__((format(printf, 3, 0)))
log_vwrite(int level, int errnum, const char *fmt, va_list ap)
{
	char		 line[2048], stamp[32];
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n;
	int		 r;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line, sizeof(line), "%s.%03ldZ ispd[%ld]: %s: ", stamp,
	    ts.tv_nsec / 1000000, (long)getpid(), log_names[level]);
	n = (size_t)r;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (errnum != 0) {
		r = snprintf(line + n, sizeof(line) - n, ": %s",
		    strerror(errnum));
		if (r > 0)
			n += (size_t)r;
		if (n > sizeof(line) - 2)
			n = sizeof(line) - 2;
	}
	line[n++] = '\n';
	/* A failed write of the log has nowhere to be reported. (A cast to
	 * void does not silence glibc's warn_unused_result, which
	 * _FORTIFY_SOURCE, as Debian builds, turns on.) */
	if (write(STDERR_FILENO, line, n) == -1)
		return;
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, 0, fmt, ap);
	va_end(ap);
}

/* Appends strerror(errno). */
void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARN, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARN, 0, fmt, ap);
	va_end(ap);
}

/* For what cannot be survived: a system call that must not fail. */
void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

/* For a broken invariant. */
void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

/*
 * Keys and names come from peers and may hold any byte. This makes them
 * safe for a log line or an ERROR reason: printable ASCII stays, the rest
 * becomes \xNN, and a long value is cut with "...". Returns dst.
 */
const char *
log_escape(char *dst, size_t dstsz, const void *p, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const uint8_t		*s = p;
	size_t			 i, n = 0;

	if (dstsz < 8)
		fatalx("log_escape: buffer of %zu bytes", dstsz);
	for (i = 0; i < len; i++) {
		if (n + 4 + 4 >= dstsz) {
			memcpy(dst + n, "...", 3);
			n += 3;
			break;
		}
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
			dst[n++] = (char)s[i];
			continue;
		}
		dst[n++] = '\\';
		dst[n++] = 'x';
		dst[n++] = hex[s[i] >> 4];
		dst[n++] = hex[s[i] & 0xf];
	}
	dst[n] = '\0';
	return dst;
}

/*
 * 1 when a message of the kind rate counts may be logged now (the first
 * one, or a second after the last logged), with *unlogged set to how
 * many were not logged since; else 0, counting this one.
 */
int
log_rate_ok(struct log_rate *rate, uint64_t *unlogged)
{
	uint64_t	 now = loop_now_ms();

	if (rate->last_ms != 0 && now - rate->last_ms < 1000) {
		rate->unlogged++;
		return 0;
	}
	*unlogged = rate->unlogged;
	rate->last_ms = now != 0 ? now : 1;
	rate->unlogged = 0;
	return 1;
}

/* " (N more WHAT since the last such message)", or "" for none. The
 * text lives until the next call. */
const char *
log_unlogged(uint64_t unlogged, const char *what)
{
	static char	 text[96];

	if (unlogged == 0)
		return "";
	snprintf(text, sizeof(text), " (%llu more %s since the last such "
	    "message)", (unsigned long long)unlogged, what);
	return text;
}
