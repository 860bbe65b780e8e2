/*
 * isp-registrar: a SIP registrar (RFC 3261 §10) that publishes every
 * binding into ispd's table SIP_REGISTRATION.
 *
 * sofia-sip's nta is the transaction layer: it parses each message,
 * absorbs retransmissions (a retransmitted REGISTER gets the stored
 * answer and never reaches us twice), answers what it cannot parse, and
 * adds received/rport to the Via (RFC 3581). This file turns its
 * requests into reg_handle() calls and the results into replies and
 * libisp requests.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* First: it sets the typed callback arguments sofia-sip reads. */
#include "sipsvc.h"

#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su_tag.h>

#include "registrar.h"
#include "sip_metrics.h"

#define PROG		"isp-registrar"
#define ALLOW		"REGISTER, OPTIONS"
#define MAX_DOMAINS	32

struct rmain {
	struct svc		 svc;
	struct registrar	 reg;
	nta_agent_t		*agent;
	nta_leg_t		*leg;
	su_timer_t		*tick;
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
	    "       [--min-expires S] [--max-expires S] [--default-expires S] "
	    "[--max-contacts N]\n"
	    "       [--domain HOST]... [--realm REALM --credentials FILE "
	    "[--auth-algorithms LIST]\n"
	    "       [--nonce-ttl S]] [--log-level LEVEL] [--metrics HOST:PORT] "
	    "[-h] [-V]\n");
	if (!full)
		return;
	fprintf(f,
	    "\n"
	    "  --listen SIP-URL       UDP and TCP address (default "
	    "sip:127.0.0.1:5060; port 0 picks one)\n"
	    "  --port-file PATH       write the SIP port there once bound\n"
	    "  --id NAME              this registrar's id: reg_server, "
	    "INSTANCES key,\n"
	    "                         client name and identity (default "
	    "registrar@ADDRESS)\n"
	    "  --min-expires S        shorter expiries get 423 (default 60)\n"
	    "  --max-expires S        longer expiries are lowered (default "
	    "3600)\n"
	    "  --default-expires S    when the REGISTER names none "
	    "(default 3600)\n"
	    "  --max-contacts N       bindings per AOR, 0 for no limit "
	    "(default 10)\n"
	    "  --domain HOST          serve only AORs of these hosts "
	    "(repeatable; default any)\n"
	    "  --realm REALM          turn on digest authentication\n"
	    "  --credentials FILE     USER:PASSWORD lines\n"
	    "  --auth-algorithms L    challenge order, e.g. SHA-256,MD5 "
	    "(the default)\n"
	    "  --nonce-ttl S          nonce lifetime (default 300)\n"
	    "  --log-level LEVEL      error, warn, info or debug "
	    "(default info)\n"
	    "  --metrics HOST:PORT    serve Prometheus metrics at /metrics "
	    "(default off)\n"
	    SVC_CONN_USAGE);
}

#define usage_error(...)	svc_usage_error(PROG, usage, __VA_ARGS__)

static unsigned
parse_uint(const char *opt, const char *s, unsigned max)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
		usage_error("invalid %s \"%s\" (a whole number up to %u)", opt,
		    s, max);
	return (unsigned)v;
}

/* The publish hooks: libisp requests. Before the first connect they do
 * nothing (reg_replay() catches up then); after it, libisp keeps what was
 * announced while a session is down and replays it on reconnect. */
static void
rm_announce(struct registrar *r, const struct binding *b, unsigned ttl_s,
    void *arg)
{
	struct rmain		*rm = arg;
	struct reg_fields	 f;
	int			 rc;

	if (rm->svc.isp == NULL)
		return;
	reg_fields(r, b, &f);
	rc = isp_announce(rm->svc.isp, SIP_REG_TABLE, b->key, b->key_len, f.f,
	    REG_NFIELDS, ttl_s);
	if (rc != ISP_OK)
		svc_log(SVC_LOG_WARN, "cannot publish %s: %s", b->key,
		    isp_errmsg(rm->svc.isp));
}

static void
rm_withdraw(struct registrar *r, const struct binding *b, enum reg_gone why,
    void *arg)
{
	struct rmain	*rm = arg;

	svc_log(SVC_LOG_DEBUG, "binding %s %s", b->key,
	    why == REG_GONE_EXPIRED ? "expired" : "removed");
	if (rm->svc.isp == NULL)
		return;
	if (isp_withdraw(rm->svc.isp, SIP_REG_TABLE, b->key, b->key_len) !=
	    ISP_OK)
		svc_log(SVC_LOG_WARN, "cannot withdraw %s: %s", b->key,
		    isp_errmsg(rm->svc.isp));
}

static int
rm_on_connect(struct svc *s, void *arg)
{
	struct rmain	*rm = arg;

	/* A new client holds nothing: announce what was registered before
	 * it. Not END_OF_REPLAY: the bindings a previous run published
	 * (if it died) are still right until they expire, and ispd keeps
	 * them for the grace time (docs/HA.md). After a reconnect libisp
	 * has announced every binding again and says END_OF_REPLAY itself,
	 * so what ispd held for the lost session and is gone meanwhile
	 * goes at once. */
	if (s->fresh) {
		reg_replay(&rm->reg, time(NULL));
		if (rm->reg.nbindings > 0)
			svc_log(SVC_LOG_INFO, "published %zu bindings",
			    rm->reg.nbindings);
	} else if (rm->reg.nbindings > 0)
		svc_log(SVC_LOG_INFO, "republished %zu bindings",
		    rm->reg.nbindings);
	return 0;
}

static void
rm_tick(struct svc *s, su_timer_t *t, struct svc *arg)
{
	struct rmain	*rm = (struct rmain *)s;

	reg_expire(&rm->reg, time(NULL));
}

static void
rm_reply_register(struct rmain *rm, nta_incoming_t *irq, const sip_t *sip)
{
	su_home_t		 home[1] = { SU_HOME_INIT(home) };
	struct reg_src		 src;
	struct reg_reply	 rep;
	char			 minexp[16];
	const char		*phrase;
	int			 level;

	memset(&src, 0, sizeof(src));
	if (svc_sip_source(rm->agent, irq, src.ip, sizeof(src.ip), &src.port,
	    &src.transport) != 0) {
		snprintf(src.ip, sizeof(src.ip), "0.0.0.0");
		src.port = 0;
	}
	reg_handle(&rm->reg, home, sip, &src, time(NULL), &rep);
	phrase = rep.phrase != NULL ? rep.phrase : sip_status_phrase(rep.status);
	if (phrase == NULL)
		phrase = "";
	snprintf(minexp, sizeof(minexp), "%u", rep.min_expires);
	nta_incoming_treply(irq, rep.status, phrase,
	    TAG_IF(rep.contacts != NULL, SIPTAG_CONTACT(rep.contacts)),
	    TAG_IF(rep.path != NULL, SIPTAG_PATH(rep.path)),
	    TAG_IF(rep.require_outbound, SIPTAG_REQUIRE_STR("outbound")),
	    TAG_IF(rep.require_outbound, SIPTAG_SUPPORTED_STR("outbound")),
	    TAG_IF(rep.status == 423, SIPTAG_MIN_EXPIRES_STR(minexp)),
	    TAG_IF(rep.challenges != NULL,
	    SIPTAG_WWW_AUTHENTICATE(rep.challenges)),
	    TAG_IF(rep.unsupported != NULL,
	    SIPTAG_UNSUPPORTED_STR(rep.unsupported)),
	    TAG_IF(rep.status == 200, SIPTAG_DATE(sip_date_create(home,
	    sip_now()))),
	    SIPTAG_SERVER_STR(PROG "/" ISP_RELEASE),
	    TAG_END());
	/* A refused REGISTER is worth a line; a malformed one a warning. */
	level = rep.status == 200 || rep.status == 401 ? SVC_LOG_DEBUG :
	    rep.status == 400 ? SVC_LOG_WARN : SVC_LOG_INFO;
	if (svc_log_enabled(level))
		svc_log(level, "REGISTER for %s from %s:%u/%s: %d %s%s%s",
		    sip->sip_to != NULL && sip->sip_to->a_url->url_host ?
		    url_as_string(home, sip->sip_to->a_url) : "?", src.ip,
		    src.port, src.transport, rep.status, phrase,
		    rep.why ? ": " : "", rep.why ? rep.why : "");
	su_home_deinit(home);
}

static int
rm_request(void *magic, nta_leg_t *leg, nta_incoming_t *irq,
    const sip_t *sip)
{
	struct rmain	*rm = magic;

	switch (sip->sip_request->rq_method) {
	case sip_method_register:
		rm_reply_register(rm, irq, sip);
		return 0;
	case sip_method_options:
		/* RFC 3261 §11: what we can do; proxies use it as a ping. */
		nta_incoming_treply(irq, SIP_200_OK, SIPTAG_ALLOW_STR(ALLOW),
		    SIPTAG_ACCEPT_STR(""), SIPTAG_SUPPORTED_STR("path, outbound"),
		    SIPTAG_SERVER_STR(PROG "/" ISP_RELEASE), TAG_END());
		return 0;
	case sip_method_ack:
		return 0;	/* never answered */
	case sip_method_unknown:
		svc_log(SVC_LOG_INFO, "method %s not implemented",
		    sip->sip_request->rq_method_name);
		nta_incoming_treply(irq, SIP_501_NOT_IMPLEMENTED,
		    SIPTAG_ALLOW_STR(ALLOW), TAG_END());
		return 0;
	default:
		/* A method SIP defines but a registrar does not serve. */
		svc_log(SVC_LOG_DEBUG, "method %s not allowed",
		    sip->sip_request->rq_method_name);
		nta_incoming_treply(irq, SIP_405_METHOD_NOT_ALLOWED,
		    SIPTAG_ALLOW_STR(ALLOW), TAG_END());
		return 0;
	}
}

int
main(int argc, char **argv)
{
	enum { O_MINEXP = 256, O_MAXEXP, O_DEFEXP, O_MAXCONT, O_DOMAIN,
	    O_REALM, O_CREDS, O_ALGS, O_NONCE, O_LOG, O_ID, O_LISTEN,
	    O_PORTFILE, O_METRICS };
	static const struct option	 opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "port-file", required_argument, NULL, O_PORTFILE },
		SVC_CONN_OPTIONS,
		{ "id", required_argument, NULL, O_ID },
		{ "min-expires", required_argument, NULL, O_MINEXP },
		{ "max-expires", required_argument, NULL, O_MAXEXP },
		{ "default-expires", required_argument, NULL, O_DEFEXP },
		{ "max-contacts", required_argument, NULL, O_MAXCONT },
		{ "domain", required_argument, NULL, O_DOMAIN },
		{ "realm", required_argument, NULL, O_REALM },
		{ "credentials", required_argument, NULL, O_CREDS },
		{ "auth-algorithms", required_argument, NULL, O_ALGS },
		{ "nonce-ttl", required_argument, NULL, O_NONCE },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const	 paths[] = { SVC_CONN_PATHS,
	    "credentials", NULL };
	static const char *const	 repeatable[] = { "ispd", "domain",
	    NULL };
	static struct rmain	 rm;
	static struct clientconf conn;
	static const char	*domains[MAX_DOMAINS];
	struct reg_config	 cfg;
	struct reg_hooks	 hooks;
	const char		*listen = "sip:127.0.0.1:5060";
	const char		*port_file = NULL, *id = NULL;
	const char		*metrics = NULL;
	char			*algs = NULL, *tok, *save, err[512];
	int			 ch, level = SVC_LOG_INFO, domains_cmdline = 0;

	memset(&cfg, 0, sizeof(cfg));
	cfg.min_expires = 60;
	cfg.max_expires = 3600;
	cfg.default_expires = 3600;
	cfg.max_contacts = 10;
	cfg.nonce_ttl_s = 300;
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
		case O_MINEXP:
			cfg.min_expires = parse_uint("--min-expires", optarg,
			    86400 * 365);
			break;
		case O_MAXEXP:
			cfg.max_expires = parse_uint("--max-expires", optarg,
			    86400 * 365);
			break;
		case O_DEFEXP:
			cfg.default_expires = parse_uint("--default-expires",
			    optarg, 86400 * 365);
			break;
		case O_MAXCONT:
			cfg.max_contacts = parse_uint("--max-contacts", optarg,
			    10000);
			break;
		case O_DOMAIN:
			/* The command line's replace the file's. */
			if (!clientconf_from_file(optind) && !domains_cmdline) {
				cfg.ndomains = 0;
				domains_cmdline = 1;
			}
			if (cfg.ndomains == MAX_DOMAINS)
				usage_error("at most %d --domain", MAX_DOMAINS);
			domains[cfg.ndomains++] = optarg;
			break;
		case O_REALM:	cfg.realm = optarg; break;
		case O_CREDS:	cfg.credentials = optarg; break;
		case O_ALGS:	algs = optarg; break;
		case O_NONCE:
			cfg.nonce_ttl_s = parse_uint("--nonce-ttl", optarg,
			    86400);
			if (cfg.nonce_ttl_s == 0)
				usage_error("--nonce-ttl must be above 0");
			break;
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
	if (cfg.min_expires > cfg.max_expires)
		usage_error("--min-expires %u is above --max-expires %u",
		    cfg.min_expires, cfg.max_expires);
	if (cfg.default_expires > cfg.max_expires)
		cfg.default_expires = cfg.max_expires;
	if (cfg.credentials != NULL && cfg.realm == NULL)
		usage_error("--credentials needs --realm");
	for (tok = algs ? strtok_r(algs, ",", &save) : NULL; tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (cfg.nalgs == REG_MAX_ALGS)
			usage_error("--auth-algorithms takes at most %d names",
			    REG_MAX_ALGS);
		cfg.algs[cfg.nalgs++] = tok;
	}
	cfg.domains = domains;

	svc_log_init(PROG, level);
	svc_init(&rm.svc, PROG, "registrar");
	svc_log_sofia();
	rm.svc.conn = conn;
	explicit_bzero(&conn, sizeof(conn));	/* svc holds it now */
	rm.agent = svc_sip_listen(&rm.svc, listen, rm_request, &rm, port_file,
	    &rm.leg);
	if (svc_set_id(&rm.svc, id) != 0)
		usage_error("--id must be 1 to 64 printable characters");
	cfg.id = rm.svc.id;
	hooks.announce = rm_announce;
	hooks.withdraw = rm_withdraw;
	hooks.arg = &rm;
	if (reg_init(&rm.reg, &cfg, &hooks, err, sizeof(err)) != 0)
		svc_fatalx("%s", err);
	rm.svc.on_connect = rm_on_connect;
	rm.svc.arg = &rm;
	/* Every second: su_timer_run() repeats (su_timer_set_interval()
	 * would fire once). */
	rm.tick = su_timer_create(su_root_task(rm.svc.root), 1000);
	if (rm.tick == NULL || su_timer_run(rm.tick, rm_tick, &rm.svc) != 0)
		svc_fatalx("cannot start the expiry timer");
	svc_log(SVC_LOG_INFO, "registrar %s: expiries %u..%u s (default %u), "
	    "%u contacts per AOR, authentication %s", rm.svc.id,
	    cfg.min_expires, cfg.max_expires, cfg.default_expires,
	    cfg.max_contacts, cfg.realm ? "on" : "off");

	sip_metrics_registrar(&rm.svc, metrics, &rm.reg);
	svc_run(&rm.svc);

	svc_log(SVC_LOG_INFO, "stopping: %llu REGISTERs, %llu accepted, "
	    "%llu refused, %llu changes published, %llu pure refreshes, "
	    "%llu expired",
	    (unsigned long long)rm.reg.stats.registers,
	    (unsigned long long)rm.reg.stats.ok,
	    (unsigned long long)rm.reg.stats.refused,
	    (unsigned long long)rm.reg.stats.changes,
	    (unsigned long long)rm.reg.stats.refreshes,
	    (unsigned long long)rm.reg.stats.expired);
	su_timer_destroy(rm.tick);
	sip_metrics_close();
	svc_quiet_sofia();
	nta_leg_destroy(rm.leg);
	nta_agent_destroy(rm.agent);
	reg_free(&rm.reg);
	svc_close(&rm.svc);
	return rm.svc.exit_code;
}
