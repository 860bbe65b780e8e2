/*
 * servers: ispd, redis-server and nats-server, each started on a
 * loopback port of its own with a temporary directory of its own, and
 * stopped at the end (or at exit, whatever happens). Nothing here
 * touches an address other than 127.0.0.1.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <nats/nats.h>

#include "isp.h"
#include "bench.h"

#define MAX_SERVERS	16

static struct server	*running[MAX_SERVERS];

const char *
sys_name(enum sys_kind k)
{
	switch (k) {
	case SYS_ISPD:
		return "ispd";
	case SYS_REDIS:
		return "redis";
	case SYS_NATS:
		return "nats";
	case SYS_TCP:
		return "tcp-limit";
	default:
		return "?";
	}
}

/* A free loopback port, for the servers that cannot report the one they
 * picked. The kernel could hand it to someone else before the server
 * binds it; the start then fails and says so. */
static int
free_port(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 sl = sizeof(sin);
	int			 fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int
port_open(int port)
{
	struct sockaddr_in	 sin;
	int			 fd, ok;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return 0;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

int
ispd_has_option(const char *opt)
{
	char	 cmd[600], line[512];
	FILE	*f;
	int	 found = 0;

	snprintf(cmd, sizeof(cmd), "%s/ispd --help 2>&1", conf.build);
	if ((f = popen(cmd, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, opt) != NULL)
			found = 1;
	pclose(f);
	return found;
}

static void
version_of(const char *cmd, char *dst, size_t len)
{
	FILE	*f;

	dst[0] = '\0';
	if ((f = popen(cmd, "r")) == NULL)
		return;
	if (fgets(dst, (int)len, f) == NULL)
		dst[0] = '\0';
	dst[strcspn(dst, "\n")] = '\0';
	pclose(f);
}

void
server_versions(char *dst, size_t len)
{
	char	 a[256], b[256], c[256], cmd[600];

	snprintf(cmd, sizeof(cmd), "%s/ispd --version 2>&1", conf.build);
	version_of(cmd, a, sizeof(a));
	version_of("redis-server --version 2>&1", b, sizeof(b));
	version_of("nats-server --version 2>&1", c, sizeof(c));
	snprintf(dst, len, "servers: %s; %.60s; %s\n"
	    "clients: libisp (this tree), hiredis %d.%d.%d, cnats %s",
	    a, b, c, HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
	    NATS_VERSION_STRING);
}

static void
server_register(struct server *s)
{
	int	 i;

	for (i = 0; i < MAX_SERVERS; i++)
		if (running[i] == NULL) {
			running[i] = s;
			return;
		}
}

static void
server_exec(struct server *s, char **argv)
{
	int	 fd;

	if ((s->pid = fork()) == -1) {
		s->pid = 0;
		return;
	}
	if (s->pid == 0) {
		if ((fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC |
		    O_APPEND, 0644)) != -1) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		if ((fd = open("/dev/null", O_RDONLY)) != -1) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		/* Its own process group: a ^C reaches the bench, which
		 * stops the servers in order. */
		setpgid(0, 0);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
}

static int
server_wait_ready(struct server *s, const char *portfile)
{
	FILE	*f;
	int	 i;

	for (i = 0; i < 1000; i++) {
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			return -1;
		}
		if (portfile != NULL && s->port <= 0 &&
		    (f = fopen(portfile, "r")) != NULL) {
			if (fscanf(f, "%d", &s->port) != 1)
				s->port = 0;
			fclose(f);
		}
		if (s->port > 0 && port_open(s->port))
			return 0;
		sleep_ns(10000000);
	}
	return -1;
}

/*
 * Starts a server of that kind on loopback. Returns 0, or -1 with the
 * reason on stderr.
 */
int
server_start(struct server *s, enum sys_kind kind)
{
	char	 exe[512], portfile[128], port[16], mq[32], *argv[40];
	int	 argc = 0;

	memset(s, 0, sizeof(*s));
	s->kind = kind;
	snprintf(s->dir, sizeof(s->dir), "/tmp/ispd-bench.XXXXXX");
	if (mkdtemp(s->dir) == NULL) {
		fprintf(stderr, "ispd-bench: mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	snprintf(s->log, sizeof(s->log), "%s/log", s->dir);
	snprintf(portfile, sizeof(portfile), "%s/port", s->dir);
	switch (kind) {
	case SYS_ISPD:
		snprintf(exe, sizeof(exe), "%s/ispd", conf.build);
		argv[argc++] = exe;
		argv[argc++] = "--listen";
		argv[argc++] = "127.0.0.1:0";
		argv[argc++] = "--port-file";
		argv[argc++] = portfile;
		argv[argc++] = "--log-level";
		argv[argc++] = "warn";
		if (conf.max_queue_bytes > 0 &&
		    ispd_has_option("--max-queue-bytes")) {
			snprintf(mq, sizeof(mq), "%ld", conf.max_queue_bytes);
			argv[argc++] = "--max-queue-bytes";
			argv[argc++] = mq;
		}
		break;
	case SYS_REDIS:
		s->port = free_port();
		snprintf(port, sizeof(port), "%d", s->port);
		argv[argc++] = "redis-server";
		argv[argc++] = "--bind";
		argv[argc++] = "127.0.0.1";
		argv[argc++] = "--port";
		argv[argc++] = port;
		argv[argc++] = "--dir";
		argv[argc++] = s->dir;
		/* No persistence: the data is a benchmark's, and a fork
		 * for a snapshot would disturb the figures. */
		argv[argc++] = "--save";
		argv[argc++] = "";
		argv[argc++] = "--appendonly";
		argv[argc++] = "no";
		argv[argc++] = "--daemonize";
		argv[argc++] = "no";
		argv[argc++] = "--maxclients";
		argv[argc++] = "20000";
		break;
	case SYS_NATS:
		s->port = free_port();
		snprintf(port, sizeof(port), "%d", s->port);
		argv[argc++] = "nats-server";
		argv[argc++] = "-a";
		argv[argc++] = "127.0.0.1";
		argv[argc++] = "-p";
		argv[argc++] = port;
		break;
	default:
		return -1;
	}
	argv[argc] = NULL;
	server_exec(s, argv);
	if (s->pid <= 0 || server_wait_ready(s, kind == SYS_ISPD ? portfile :
	    NULL) == -1) {
		fprintf(stderr, "ispd-bench: %s did not start; its log: %s\n",
		    sys_name(kind), s->log);
		if (s->pid > 0)
			child_kill(s->pid);
		s->pid = 0;
		return -1;
	}
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
	server_register(s);
	return 0;
}

void
server_stop(struct server *s)
{
	char	 path[160];
	int	 i;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		for (i = 0; i < 500; i++) {
			if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
				break;
			sleep_ns(10000000);
		}
		if (i == 500)
			child_kill(s->pid);
		s->pid = 0;
	}
	for (i = 0; i < MAX_SERVERS; i++)
		if (running[i] == s)
			running[i] = NULL;
	if (s->dir[0] != '\0') {
		snprintf(path, sizeof(path), "%s/port", s->dir);
		unlink(path);
		unlink(s->log);
		snprintf(path, sizeof(path), "%s/dump.rdb", s->dir);
		unlink(path);
		rmdir(s->dir);
		s->dir[0] = '\0';
	}
}

/* At exit: whatever is still running. */
void
server_stop_all(void)
{
	int	 i;

	for (i = 0; i < MAX_SERVERS; i++)
		if (running[i] != NULL)
			server_stop(running[i]);
}
