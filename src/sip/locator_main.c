/*
 * isp-locator: a SIP redirect server (RFC 3261 §8.3) answering "where is
 * this AOR now" from its copy of SIP_REGISTRATION, for any SIP element:
 * an INVITE, MESSAGE or OPTIONS for an AOR gets 302 Moved Temporarily
 * with every current contact, or 480 Temporarily Unavailable when it has
 * none. It never registers anything: a REGISTER gets 405.
 *
 * Its index follows a mirror of SIP_REGISTRATION, so a binding announced
 * by any registrar is found here as soon as ispd fans it out. The mirror
 * is libisp's merge over every reflector given (docs/HA.md): a reflector
 * lost changes nothing while another holds the same bindings, and with
 * none left the bindings stay (stale) for the mirror's grace time while
 * libisp reconnects. Until the first snapshot has arrived it answers 503
 * (it cannot yet say "not registered").
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First: it sets the typed callback arguments sofia-sip reads. */
#include "sipsvc.h"

#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su_tag.h>

#include "locator.h"
#include "sip_metrics.h"

#define PROG	"isp-locator"
#define ALLOW	"INVITE, MESSAGE, OPTIONS, ACK, CANCEL"

struct lmain {
	struct svc	 svc;
	struct locator	 loc;
	isp_mirror	*mirror;	/* of SIP_REGISTRATION, merged */
	nta_agent_t	*agent;
	nta_leg_t	*leg;
};

static void
usage(FILE *f, int full)
{
	fprintf(f,
	    "usage: " PROG " [--config FILE] [--listen SIP-URL] "
	    "[--port-file PATH]\n"
	    "       [--ispd HOST:PORT[,HOST:PORT...]]... [--id NAME] "
	    "[--tls] [--tls-ca FILE]\n"
	    "       [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME] "
	    "[--secret-file FILE]\n"
	    "       [--log-level LEVEL] [--metrics HOST:PORT] [-h] [-V]\n");
	if (!full)
		return;
	fprintf(f,
	    "\n"
	    "  --listen SIP-URL       UDP and TCP address (default "
	    "sip:127.0.0.1:5070; port 0 picks one)\n"
	    "  --port-file PATH       write the SIP port there once bound\n"
	    "  --id NAME              INSTANCES key, client name and "
	    "identity\n"
	    "                         (default locator@ADDRESS)\n"
	    "  --log-level LEVEL      error, warn, info or debug "
	    "(default info)\n"
	    "  --metrics HOST:PORT    serve Prometheus metrics at /metrics "
	    "(default off)\n"
	    SVC_CONN_USAGE);
}

#define usage_error(...)	svc_usage_error(PROG, usage, __VA_ARGS__)

/* The mirror's changes of its merged view: each key new to it, changed,
 * or gone (from every reflector, or stale past the grace time), and END
 * once, when the first reflector's snapshot ended. */
static void
lm_event(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct lmain	*lm = arg;
	int		 was_ready = lm->loc.ready;

	switch (ev->type) {
	case ISP_EV_STALE:
		if (ev->count > 0)
			svc_log(SVC_LOG_WARN, "%llu bindings are known from "
			    "no live reflector now; answering from them for "
			    "up to %d s", (unsigned long long)ev->count,
			    ISP_STALE_GRACE_MS / 1000);
		return;
	case ISP_EV_FRESH:
		return;
	default:
		break;
	}
	loc_event(&lm->loc, ev);
	if (ev->type == ISP_EV_END && !was_ready)
		svc_log(SVC_LOG_INFO, "snapshot of %s: %zu bindings; answering",
		    SIP_REG_TABLE, lm->loc.nbindings);
}

static int
lm_on_connect(struct svc *s, void *arg)
{
	struct lmain	*lm = arg;

	/* Once per client: libisp subscribes the mirror again on every
	 * reconnect and to every reflector. */
	if (!s->fresh)
		return 0;
	if ((lm->mirror = isp_mirror_new(s->isp, SIP_REG_TABLE, NULL, 0,
	    lm_event, lm)) == NULL) {
		svc_log(SVC_LOG_ERROR, "cannot subscribe to %s: %s",
		    SIP_REG_TABLE, isp_errmsg(s->isp));
		return -1;
	}
	return 0;
}

static void
lm_on_disconnect(struct svc *s, void *arg)
{
	struct lmain	*lm = arg;

	/* Only when the client itself ended (svc.c makes a new one): its
	 * mirror went with it. */
	if (s->isp == NULL) {
		lm->mirror = NULL;
		loc_mark_stale(&lm->loc);
	}
}

static void
lm_locate(struct lmain *lm, nta_incoming_t *irq, const sip_t *sip)
{
	su_home_t	 home[1] = { SU_HOME_INIT(home) };
	sip_contact_t	*contacts = NULL;
	const url_t	*ruri = sip->sip_request->rq_url;
	int		 n;

	if (!lm->loc.ready) {
		lm->loc.not_ready++;
		nta_incoming_treply(irq, SIP_503_SERVICE_UNAVAILABLE,
		    SIPTAG_RETRY_AFTER_STR("1"), TAG_END());
		return;
	}
	n = loc_lookup(&lm->loc, home, ruri, &contacts);
	if (n < 0)
		nta_incoming_treply(irq, SIP_416_UNSUPPORTED_URI, TAG_END());
	else if (n == 0)
		nta_incoming_treply(irq, SIP_480_TEMPORARILY_UNAVAILABLE,
		    SIPTAG_SERVER_STR(PROG "/" ISP_RELEASE), TAG_END());
	else
		nta_incoming_treply(irq, SIP_302_MOVED_TEMPORARILY,
		    SIPTAG_CONTACT(contacts),
		    SIPTAG_SERVER_STR(PROG "/" ISP_RELEASE), TAG_END());
	if (svc_log_enabled(SVC_LOG_DEBUG))
		svc_log(SVC_LOG_DEBUG, "%s %s: %d contact%s",
		    sip->sip_request->rq_method_name, url_as_string(home, ruri),
		    n, n == 1 ? "" : "s");
	su_home_deinit(home);
}

static int
lm_request(void *magic, nta_leg_t *leg, nta_incoming_t *irq,
    const sip_t *sip)
{
	struct lmain	*lm = magic;
	const url_t	*ruri = sip->sip_request->rq_url;

	switch (sip->sip_request->rq_method) {
	case sip_method_options:
		if (ruri->url_user == NULL || ruri->url_user[0] == '\0') {
			/* To us, not to an AOR: a keepalive. */
			nta_incoming_treply(irq, SIP_200_OK,
			    SIPTAG_ALLOW_STR(ALLOW), SIPTAG_ACCEPT_STR(""),
			    SIPTAG_SERVER_STR(PROG "/" ISP_RELEASE),
			    TAG_END());
			return 0;
		}
		/* FALLTHROUGH */
	case sip_method_invite:
	case sip_method_message:
		lm_locate(lm, irq, sip);
		return 0;
	case sip_method_ack:
		return 0;
	case sip_method_register:
		svc_log(SVC_LOG_WARN, "REGISTER for %s reached the locator; "
		    "send it to a registrar", sip->sip_to ?
		    (sip->sip_to->a_url->url_user ?
		    sip->sip_to->a_url->url_user : "?") : "?");
		nta_incoming_treply(irq, SIP_405_METHOD_NOT_ALLOWED,
		    SIPTAG_ALLOW_STR(ALLOW), TAG_END());
		return 0;
	case sip_method_unknown:
		nta_incoming_treply(irq, SIP_501_NOT_IMPLEMENTED,
		    SIPTAG_ALLOW_STR(ALLOW), TAG_END());
		return 0;
	default:
		nta_incoming_treply(irq, SIP_405_METHOD_NOT_ALLOWED,
		    SIPTAG_ALLOW_STR(ALLOW), TAG_END());
		return 0;
	}
}

int
main(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_PORTFILE, O_ID, O_LOG, O_METRICS };
	static const struct option	 opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "port-file", required_argument, NULL, O_PORTFILE },
		SVC_CONN_OPTIONS,
		{ "id", required_argument, NULL, O_ID },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const	 paths[] = { SVC_CONN_PATHS, NULL };
	static const char *const	 repeatable[] = { "ispd", NULL };
	static struct lmain	 lm;
	static struct clientconf conn;
	const char		*listen = "sip:127.0.0.1:5070";
	const char		*port_file = NULL, *id = NULL;
	const char		*metrics = NULL;
	int			 ch, level = SVC_LOG_INFO;

	/* --config FILE: its settings come first, so the command line
	 * wins (src/common/clientconf.h). */
	argc = svc_config_args(PROG, argc, argv, opts, paths, repeatable,
	    &argv);
	while ((ch = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		if (svc_conn_option(PROG, usage, &conn, ch, optarg))
			continue;
		switch (ch) {
		case O_LISTEN:	listen = optarg; break;
		case O_PORTFILE: port_file = optarg; break;
		case O_ID:	id = optarg; break;
		case O_METRICS:	metrics = optarg; break;
		case O_LOG:
			if ((level = svc_log_level_parse(optarg)) < 0)
				usage_error("invalid --log-level \"%s\"", optarg);
			break;
		case 'h':
			usage(stdout, 1);
			return 0;
		case 'V':
			printf(PROG " " ISP_RELEASE "\n");
			return 0;
		default:
			usage(stderr, 0);
			return 2;
		}
	}
	if (optind != argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	svc_conn_finish(PROG, usage, &conn);

	svc_log_init(PROG, level);
	svc_init(&lm.svc, PROG, "locator");
	svc_log_sofia();
	loc_init(&lm.loc);
	lm.svc.conn = conn;
	explicit_bzero(&conn, sizeof(conn));	/* svc holds it now */
	lm.agent = svc_sip_listen(&lm.svc, listen, lm_request, &lm, port_file,
	    &lm.leg);
	if (svc_set_id(&lm.svc, id) != 0)
		usage_error("--id must be 1 to 64 printable characters");
	lm.svc.on_connect = lm_on_connect;
	lm.svc.on_disconnect = lm_on_disconnect;
	lm.svc.arg = &lm;
	sip_metrics_locator(&lm.svc, metrics, &lm.loc);

	svc_run(&lm.svc);

	svc_log(SVC_LOG_INFO, "stopping: %llu lookups, %llu found, %zu "
	    "bindings known", (unsigned long long)lm.loc.lookups,
	    (unsigned long long)lm.loc.found, lm.loc.nbindings);
	sip_metrics_close();
	svc_quiet_sofia();
	nta_leg_destroy(lm.leg);
	nta_agent_destroy(lm.agent);
	svc_close(&lm.svc);	/* frees the mirror with the client */
	loc_free(&lm.loc);
	return lm.svc.exit_code;
}
