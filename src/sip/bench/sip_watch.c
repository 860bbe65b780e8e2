/*
 * isp-sip-watch: the "remote mirror" of `make bench-sip`. It mirrors
 * SIP_REGISTRATION from ispd (isp_mirror, as an Asterisk would) and, for
 * every binding that appears after the snapshot, prints the AOR's user
 * and the wall-clock time the mirror had applied it:
 *	USER SECONDS.MICROSECONDS
 * The benchmark joins these lines with SIPp's log of when each 200 OK
 * arrived. Runs until SIGINT/SIGTERM or --seconds.
 *
 * Usage: isp-sip-watch [-s HOST:PORT] [--seconds N]
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "isp.h"

static volatile sig_atomic_t	 stop;

static void
on_signal(int sig)
{
	stop = 1;
}

static void
on_change(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct timespec	 ts;
	const char	*k, *at, *colon;

	if (ev->type != ISP_EV_ANNOUNCE || ev->snapshot)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Key "sip:USER@DOMAIN|...": print USER. */
	k = ev->rec.key;
	colon = memchr(k, ':', ev->rec.key_len);
	at = memchr(k, '@', ev->rec.key_len);
	if (colon == NULL || at == NULL || at < colon)
		return;
	printf("%.*s %lld.%06ld\n", (int)(at - colon - 1), colon + 1,
	    (long long)ts.tv_sec, ts.tv_nsec / 1000);
}

int
main(int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct isp_options	 o;
	struct sigaction	 sa;
	isp_client		*c;
	isp_mirror		*m;
	const char		*server = getenv("ISPD_SERVER");
	time_t			 end = 0;
	int			 ch;

	while ((ch = getopt_long(argc, argv, "s:t:", opts, NULL)) != -1) {
		if (ch == 's')
			server = optarg;
		else if (ch == 't')
			end = time(NULL) + atoi(optarg);
		else {
			fprintf(stderr, "usage: isp-sip-watch [-s HOST:PORT] "
			    "[--seconds N]\n");
			return 2;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	isp_options_init(&o);
	o.server = server;
	o.name = "isp-sip-watch";
	if ((c = isp_new(&o)) == NULL || isp_connect(c) != ISP_OK) {
		fprintf(stderr, "isp-sip-watch: %s\n", c ? isp_errmsg(c) :
		    "out of memory");
		return 3;
	}
	if ((m = isp_mirror_new(c, "SIP_REGISTRATION", NULL, 0, on_change,
	    NULL)) == NULL) {
		fprintf(stderr, "isp-sip-watch: %s\n", isp_errmsg(c));
		return 3;
	}
	while (!stop && (end == 0 || time(NULL) < end))
		if (isp_run(c, 200) != ISP_OK) {
			fprintf(stderr, "isp-sip-watch: %s\n", isp_errmsg(c));
			break;
		}
	fflush(stdout);
	isp_free(c);
	return 0;
}
