/*
 * ispd and its service manager (src/ispd/notify.c): the test plays
 * systemd, with a datagram socket of its own as $NOTIFY_SOCKET, and a
 * real ispd. READY=1 comes once the port takes connections, WATCHDOG=1
 * twice per $WATCHDOG_USEC, RELOADING=1 then READY=1 around a SIGHUP,
 * STOPPING=1 on SIGTERM; without $NOTIFY_SOCKET nothing is sent.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

struct manager {
	int	 fd;
	char	 path[108];
	char	 dir[64];
};

static void
manager_open(struct manager *m)
{
	struct sockaddr_un	 sun;

	snprintf(m->dir, sizeof(m->dir), "/tmp/ispd-notify.XXXXXX");
	assert_non_null(mkdtemp(m->dir));
	snprintf(m->path, sizeof(m->path), "%s/notify", m->dir);
	assert_true((m->fd = socket(AF_UNIX, SOCK_DGRAM, 0)) != -1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", m->path);
	assert_int_equal(bind(m->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", m->path, 1), 0);
}

static void
manager_close(struct manager *m)
{
	close(m->fd);
	unlink(m->path);
	rmdir(m->dir);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
}

/* The next notification within ms, into buf; 0 when none came. */
static int
manager_recv(struct manager *m, char *buf, size_t len, int ms)
{
	struct pollfd	 pfd = { m->fd, POLLIN, 0 };
	ssize_t		 n;

	if (poll(&pfd, 1, ms) != 1)
		return 0;
	assert_true((n = recv(m->fd, buf, len - 1, 0)) >= 0);
	buf[n] = '\0';
	return 1;
}

/* The next notification that holds want, skipping WATCHDOG=1 ones; fails
 * the test on any other before it, or on none within 10 s. */
static void
manager_expect(struct manager *m, const char *want, char *buf, size_t len)
{
	int64_t	 deadline = now_ms() + 10000;

	while (now_ms() < deadline) {
		if (!manager_recv(m, buf, len, 100))
			continue;
		if (strcmp(buf, "WATCHDOG=1") == 0)
			continue;
		if (strstr(buf, want) == NULL)
			fail_msg("the manager was told \"%s\", want \"%s\"",
			    buf, want);
		return;
	}
	fail_msg("the manager was never told \"%s\"", want);
}

/* 1 when 127.0.0.1:port takes a connection now. */
static int
port_accepts(int port)
{
	struct sockaddr_in	 sin;
	int			 fd, ok;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) != -1);
	ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

static void
test_ready_reload_stop(void **state)
{
	struct manager		 m;
	struct ispd_proc	 d;
	char			 buf[1024];
	int			 n, port;
	int64_t			 t0;
	FILE			*f;
	char			 pf[160];

	manager_open(&m);
	assert_int_equal(setenv("WATCHDOG_USEC", "200000", 1), 0);
	ispd_start(&d, NULL);
	manager_expect(&m, "READY=1", buf, sizeof(buf));
	/* READY=1 came after the listener was bound: the port ispd wrote
	 * takes connections. */
	snprintf(pf, sizeof(pf), "%s/port", d.dir);
	assert_non_null(f = fopen(pf, "r"));
	assert_int_equal(fscanf(f, "%d", &port), 1);
	fclose(f);
	assert_true(port_accepts(port));
	if (strstr(buf, "STATUS=") == NULL)
		fail_msg("READY without a STATUS: \"%s\"", buf);

	/* The watchdog: every 100 ms, about five in 600 ms. */
	t0 = now_ms();
	n = 0;
	while (now_ms() - t0 < 600)
		if (manager_recv(&m, buf, sizeof(buf), 100) &&
		    strcmp(buf, "WATCHDOG=1") == 0)
			n++;
	if (n < 3 || n > 8)
		fail_msg("%d WATCHDOG=1 in 600 ms with WATCHDOG_USEC 200000",
		    n);

	ispd_signal(&d, SIGHUP);
	manager_expect(&m, "RELOADING=1", buf, sizeof(buf));
	if (strstr(buf, "MONOTONIC_USEC=") == NULL)
		fail_msg("RELOADING=1 without MONOTONIC_USEC: \"%s\"", buf);
	manager_expect(&m, "READY=1", buf, sizeof(buf));

	ispd_signal(&d, SIGTERM);
	manager_expect(&m, "STOPPING=1", buf, sizeof(buf));
	assert_int_equal(ispd_stop(&d), 0);
	manager_close(&m);
}

/* Without NOTIFY_SOCKET ispd sends nothing: a socket left in the
 * environment of another name hears nothing. */
static void
test_no_manager(void **state)
{
	struct manager		 m;
	struct ispd_proc	 d;
	char			 buf[256];

	manager_open(&m);
	unsetenv("NOTIFY_SOCKET");
	ispd_start(&d, NULL);
	assert_true(port_accepts(d.port));
	ispd_signal(&d, SIGHUP);
	assert_int_equal(ispd_stop(&d), 0);
	assert_int_equal(manager_recv(&m, buf, sizeof(buf), 0), 0);
	manager_close(&m);
}

/* A NOTIFY_SOCKET that is no path is reported, and ispd serves. */
static void
test_bad_socket(void **state)
{
	struct ispd_proc	 d;

	assert_int_equal(setenv("NOTIFY_SOCKET", "not-a-path", 1), 0);
	ispd_start(&d, NULL);
	unsetenv("NOTIFY_SOCKET");
	assert_true(port_accepts(d.port));
	assert_true(ispd_log_has(&d, "NOTIFY_SOCKET not-a-path: not a socket "
	    "path"));
	assert_int_equal(ispd_stop(&d), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_reload_stop),
		cmocka_unit_test(test_no_manager),
		cmocka_unit_test(test_bad_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
