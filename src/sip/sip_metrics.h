/*
 * sip_metrics: the Prometheus endpoint of isp-registrar and isp-locator
 * (--metrics HOST:PORT; src/metrics/prom.c serves it). It hooks itself
 * into the service's su_root: a registered descriptor and a timer, so
 * the service's own loop (svc.c) needs nothing else.
 */
#ifndef ISP_SIP_METRICS_H
#define ISP_SIP_METRICS_H

#include "sipsvc.h"

struct registrar;
struct locator;

/* Serve the figures of the registrar r or the locator l on spec (NULL:
 * do nothing). Exits with a message when spec is bad or cannot be
 * bound. */
void		 sip_metrics_registrar(struct svc *, const char *spec,
		    const struct registrar *r);
void		 sip_metrics_locator(struct svc *, const char *spec,
		    const struct locator *l);
/* Stops serving; before svc_close(). */
void		 sip_metrics_close(void);

#endif
