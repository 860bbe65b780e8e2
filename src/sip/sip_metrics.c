/*
 * sip_metrics: the figures of isp-registrar and isp-locator for
 * Prometheus (see sip_metrics.h; names in docs/OPERATIONS.md).
 *
 * One endpoint per process. Its epoll descriptor is registered with the
 * su_root like the socket to ispd, and a timer runs it when
 * libmicrohttpd has a deadline (a connection timing out); both run on
 * the service's one thread, so the figures are read without a lock.
 */
#include <stdlib.h>
#include <string.h>

#include "sip_metrics.h"

#include <sofia-sip/su_wait.h>

#include "locator.h"
#include "prom.h"
#include "registrar.h"

static struct prom		*sm_prom;
static struct svc		*sm_svc;
static su_wait_t		 sm_wait[1];
static int			 sm_index = -1;
static su_timer_t		*sm_timer;
static const struct registrar	*sm_reg;
static const struct locator	*sm_loc;

static void
sm_counter(struct buf *b, const char *name, const char *help, uint64_t v)
{
	prom_family(b, name, "counter", help);
	prom_u64(b, name, v);
}

static void
sm_gauge(struct buf *b, const char *name, const char *help, uint64_t v)
{
	prom_family(b, name, "gauge", help);
	prom_u64(b, name, v);
}

/* What both services tell: build and the session to ispd. pfx is
 * "isp_registrar" or "isp_locator". */
static void
sm_common(struct buf *b, const char *pfx)
{
	char	 name[64];

	snprintf(name, sizeof(name), "%s_build_info", pfx);
	prom_family(b, name, "gauge", "Always 1; the version in its label.");
	prom_u64_label(b, name, "version", ISP_RELEASE, strlen(ISP_RELEASE),
	    1);
	snprintf(name, sizeof(name), "%s_ispd_connected", pfx);
	sm_gauge(b, name, "Reflectors (--ispd) whose session is up.",
	    sm_svc->isp != NULL ? isp_servers_up(sm_svc->isp) : 0);
	snprintf(name, sizeof(name), "%s_ispd_connects_total", pfx);
	sm_counter(b, name, "Sessions made to ispd (the first and every "
	    "reconnect).", sm_svc->connects);
}

static void
sm_write_registrar(struct buf *b, void *arg)
{
	const struct registrar	*r = sm_reg;
	char			 code[16];
	size_t			 i;

	sm_common(b, "isp_registrar");
	prom_family(b, "isp_registrar_registers_total", "counter",
	    "REGISTERs answered, by answer code (other: any code not "
	    "listed).");
	for (i = 0; i <= REG_NCODES; i++) {
		if (i < REG_NCODES)
			snprintf(code, sizeof(code), "%d", reg_codes[i]);
		else
			snprintf(code, sizeof(code), "other");
		prom_u64_label(b, "isp_registrar_registers_total", "code",
		    code, strlen(code), r->stats.by_code[i]);
	}
	sm_gauge(b, "isp_registrar_bindings", "Bindings this registrar holds.",
	    r->nbindings);
	sm_gauge(b, "isp_registrar_aors",
	    "Addresses of record with a binding here.", r->aors.count);
	sm_counter(b, "isp_registrar_binding_changes_total",
	    "Bindings announced to ispd with a change.", r->stats.changes);
	sm_counter(b, "isp_registrar_binding_refreshes_total",
	    "Refreshes that only restarted a binding's TTL.",
	    r->stats.refreshes);
	sm_counter(b, "isp_registrar_bindings_expired_total",
	    "Bindings dropped because they were not refreshed in time.",
	    r->stats.expired);
}

static void
sm_write_locator(struct buf *b, void *arg)
{
	const struct locator	*l = sm_loc;
	uint64_t		 not_found;

	sm_common(b, "isp_locator");
	prom_family(b, "isp_locator_lookups_total", "counter",
	    "Requests to locate an AOR, by answer: found (302), not_found "
	    "(480), bad_uri (416), not_ready (503, before the first "
	    "snapshot).");
	not_found = l->lookups - l->found - l->bad_uri;
	prom_u64_label(b, "isp_locator_lookups_total", "answer", "found", 5,
	    l->found);
	prom_u64_label(b, "isp_locator_lookups_total", "answer", "not_found",
	    9, not_found);
	prom_u64_label(b, "isp_locator_lookups_total", "answer", "bad_uri", 7,
	    l->bad_uri);
	prom_u64_label(b, "isp_locator_lookups_total", "answer", "not_ready",
	    9, l->not_ready);
	sm_gauge(b, "isp_locator_bindings",
	    "Bindings known from SIP_REGISTRATION.", l->nbindings);
	sm_gauge(b, "isp_locator_ready",
	    "1 once a snapshot of SIP_REGISTRATION has ended.", l->ready != 0);
}

/* The locator is healthy once it can answer; the registrar always. */
static int
sm_health(void *arg)
{
	return sm_loc == NULL || sm_loc->ready;
}

static void
sm_log(int level, const char *msg)
{
	svc_log(level == PROM_LOG_ERROR ? SVC_LOG_ERROR :
	    level == PROM_LOG_WARN ? SVC_LOG_WARN :
	    level == PROM_LOG_INFO ? SVC_LOG_INFO : SVC_LOG_DEBUG, "%s", msg);
}

static void	sm_due(struct svc *, su_timer_t *, struct svc *);

/* Runs the endpoint and sets the timer to its next deadline. */
static void
sm_run(void)
{
	int	 t;

	prom_run(sm_prom);
	su_timer_reset(sm_timer);
	if ((t = prom_timeout_ms(sm_prom)) >= 0 &&
	    su_timer_set_interval(sm_timer, sm_due, sm_svc,
	    (su_duration_t)(t > 0 ? t : 1)) != 0)
		svc_log(SVC_LOG_WARN, "metrics: cannot set the timer");
}

static void
sm_due(struct svc *s, su_timer_t *t, struct svc *arg)
{
	sm_run();
}

static int
sm_ready(struct svc *s, su_wait_t *w, struct svc *arg)
{
	(void)su_wait_events(w, prom_fd(sm_prom));
	sm_run();
	return 0;
}

static void
sm_open(struct svc *s, const char *spec, prom_write_fn *write)
{
	char	 err[256];

	sm_svc = s;
	if ((sm_prom = prom_open(spec, write, sm_health, NULL, sm_log, err,
	    sizeof(err))) == NULL)
		svc_fatalx("cannot serve metrics on %s: %s", spec, err);
	if ((sm_timer = su_timer_create(su_root_task(s->root), 1000)) ==
	    NULL ||
	    su_wait_create(sm_wait, prom_fd(sm_prom), SU_WAIT_IN) != 0 ||
	    (sm_index = su_root_register(s->root, sm_wait, sm_ready, s, 0)) <
	    0)
		svc_fatalx("cannot serve metrics on %s: the event loop refused "
		    "its descriptor", spec);
	sm_run();
}

void
sip_metrics_registrar(struct svc *s, const char *spec,
    const struct registrar *r)
{
	if (spec == NULL)
		return;
	sm_reg = r;
	sm_open(s, spec, sm_write_registrar);
}

void
sip_metrics_locator(struct svc *s, const char *spec, const struct locator *l)
{
	if (spec == NULL)
		return;
	sm_loc = l;
	sm_open(s, spec, sm_write_locator);
}

void
sip_metrics_close(void)
{
	if (sm_prom == NULL)
		return;
	if (sm_index >= 0)
		su_root_deregister(sm_svc->root, sm_index);
	sm_index = -1;
	su_timer_destroy(sm_timer);
	sm_timer = NULL;
	prom_close(sm_prom);
	sm_prom = NULL;
}
