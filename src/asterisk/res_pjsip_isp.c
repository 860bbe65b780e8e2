/*
 * res_pjsip_isp: every Asterisk of a pool holds every registration.
 *
 * The module keeps a libisp client with a session on every configured
 * reflector (reconnect on, mirrors merged: docs/HA.md), a mirror of
 * SIP_REGISTRATION whose records become PJSIP contacts (contacts.c), a
 * mirror of INSTANCES for placement, and this Asterisk's own INSTANCES
 * record (instance.c). docs/ASTERISK.md is the operator's guide.
 *
 * Loading never waits for ispd: a thread of ours connects, and retries
 * with a backoff until a reflector answers (libisp reconnects sessions
 * that were up once; a client whose first connect failed is made anew).
 * Asterisk serves calls meanwhile, with no mirrored contacts yet.
 *
 * Unloading (also at shutdown) closes the session, so ispd withdraws
 * the INSTANCES record, and deletes the contacts this module made, and
 * only those.
 */
#include "asterisk.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "asterisk/lock.h"
#include "asterisk/logger.h"
#include "asterisk/module.h"
#include "asterisk/res_pjsip.h"
#include "asterisk/sorcery.h"

#include "isp_asterisk.h"
#include "isp_place.h"

#define CONNECT_RETRY_MIN_MS	1000
#define CONNECT_RETRY_MAX_MS	5000

struct ispa ispa = {
	.lock = PTHREAD_RWLOCK_INITIALIZER,
};

/* The connecting thread, and what stops it. */
static pthread_t	 connector = AST_PTHREADT_NULL;
static ast_mutex_t	 connector_lock;
static ast_cond_t	 connector_cond;
static int		 connector_stop;

void
ispa_rdlock(void)
{
	pthread_rwlock_rdlock(&ispa.lock);
}

void
ispa_wrlock(void)
{
	pthread_rwlock_wrlock(&ispa.lock);
}

void
ispa_unlock(void)
{
	pthread_rwlock_unlock(&ispa.lock);
}

unsigned
ispa_servers_up(void)
{
	unsigned	 n;

	ispa_rdlock();
	n = ispa.client != NULL ? isp_servers_up(ispa.client) : 0;
	ispa_unlock();
	return n;
}

/* libisp's thread: a change of the merged view of SIP_REGISTRATION. */
static void
on_registration(isp_client *c, const struct isp_event *ev, void *arg)
{
	switch (ev->type) {
	case ISP_EV_ANNOUNCE:
	case ISP_EV_REPLACE:
	case ISP_EV_WITHDRAW:
		contacts_changed(ev->rec.key, ev->rec.key_len);
		break;
	case ISP_EV_END:
		/* This client's first snapshot: what it lacks goes. */
		contacts_resync();
		break;
	case ISP_EV_STALE:
		/* The mirror keeps the records: no contact changes. */
		ast_log(LOG_WARNING, "session with %s lost: %llu of %s's "
		    "records kept as stale until it resyncs\n",
		    S_OR(ev->server, "?"), (unsigned long long)ev->count,
		    ev->table);
		break;
	case ISP_EV_FRESH:
		ast_log(LOG_NOTICE, "%s resynced with %s: %llu records still "
		    "stale\n", ev->table, S_OR(ev->server, "?"),
		    (unsigned long long)ev->count);
		break;
	}
}

static void
on_state(isp_client *c, const struct isp_server_event *e, void *arg)
{
	if (e->up)
		ast_log(LOG_NOTICE, "session with ispd %s is up\n", e->server);
	else if (e->attempt == 0)
		ast_log(LOG_WARNING, "lost the session with ispd %s (%s); "
		    "reconnecting\n", e->server, e->why);
}

static void
on_error(isp_client *c, uint32_t req_id, int code, const char *reason,
    void *arg)
{
	ast_log(LOG_WARNING, "ispd refused a request: %s (%s)\n", reason,
	    isp_strerror(code));
}

/* A connected, started client with its mirrors in place, or NULL with
 * the reason in why. Runs on the connecting thread. */
static int
client_open(const struct ispa_conf *conf, char *why, size_t size)
{
	struct isp_options	 o;
	isp_client		*c;
	isp_mirror		*regs = NULL, *inst = NULL;

	isp_options_init(&o);
	o.servers = (const char *const *)conf->servers;
	o.nservers = conf->nservers;
	o.name = conf->name;
	o.reconnect = 1;
	o.stale_grace_ms = conf->stale_grace_s * 1000;
	o.on_error = on_error;
	o.on_state = on_state;
	o.tls = conf->tls;
	o.tls_ca_file = conf->tls_ca_file;
	o.tls_cert_file = conf->tls_cert_file;
	o.tls_key_file = conf->tls_key_file;
	o.tls_server_name = conf->tls_server_name;
	o.secret = conf->secret;
	if ((c = isp_new(&o)) == NULL) {
		snprintf(why, size, "out of memory");
		return -1;
	}
	if (isp_connect(c) != ISP_OK) {
		snprintf(why, size, "%s", isp_errmsg(c));
		isp_free(c);
		return -1;
	}
	regs = isp_mirror_new(c, conf->table, NULL, 0, on_registration, NULL);
	inst = isp_mirror_new(c, ISP_INSTANCES_TABLE, NULL, 0, NULL, NULL);
	if (regs == NULL || inst == NULL) {
		snprintf(why, size, "%s", isp_errmsg(c));
		isp_free(c);
		return -1;
	}
	/* In place before the thread delivers the first event. */
	ispa_wrlock();
	ispa.client = c;
	ispa.registrations = regs;
	ispa.instances = inst;
	instance_announce();
	ispa_unlock();
	if (isp_start(c) != ISP_OK) {
		snprintf(why, size, "%s", isp_errmsg(c));
		ispa_wrlock();
		ispa.client = NULL;
		ispa.registrations = ispa.instances = NULL;
		ispa_unlock();
		isp_free(c);
		return -1;
	}
	return 0;
}

static void *
connector_main(void *arg)
{
	struct ispa_conf	*conf;
	struct timespec		 ts;
	char			 why[512], last[512] = "";
	int			 wait_ms = CONNECT_RETRY_MIN_MS, stop;

	for (;;) {
		ispa_rdlock();
		conf = ispa.conf;
		ispa_unlock();
		/* conf changes only while this thread is stopped. */
		if (client_open(conf, why, sizeof(why)) == 0) {
			ast_log(LOG_NOTICE, "mirroring %s from ispd as %s\n",
			    conf->table, conf->name);
			return NULL;
		}
		if (strcmp(why, last) != 0) {
			ast_log(LOG_WARNING, "cannot reach ispd: %s; retrying "
			    "until it answers\n", why);
			ast_copy_string(last, why, sizeof(last));
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		ast_mutex_lock(&connector_lock);
		while (!connector_stop &&
		    ast_cond_timedwait(&connector_cond, &connector_lock, &ts) == 0)
			;
		stop = connector_stop;
		ast_mutex_unlock(&connector_lock);
		if (stop)
			return NULL;
		wait_ms = wait_ms * 2 > CONNECT_RETRY_MAX_MS ?
		    CONNECT_RETRY_MAX_MS : wait_ms * 2;
	}
}

static int
client_start(void)
{
	connector_stop = 0;
	if (ast_pthread_create(&connector, NULL, connector_main, NULL) != 0) {
		connector = AST_PTHREADT_NULL;
		ast_log(LOG_ERROR, "cannot start the ispd connecting thread\n");
		return -1;
	}
	return 0;
}

/* Ends the client: its session says BYE, so ispd withdraws what it
 * owned (this instance's INSTANCES record). Contacts stay. */
static void
client_stop(void)
{
	isp_client	*c;

	if (connector != AST_PTHREADT_NULL) {
		ast_mutex_lock(&connector_lock);
		connector_stop = 1;
		ast_cond_signal(&connector_cond);
		ast_mutex_unlock(&connector_lock);
		pthread_join(connector, NULL);
		connector = AST_PTHREADT_NULL;
	}
	ispa_wrlock();
	instance_withdraw();
	c = ispa.client;
	ispa.client = NULL;
	ispa.registrations = ispa.instances = NULL;
	ispa_unlock();
	if (c != NULL) {
		isp_stop(c);
		isp_free(c);
	}
}

/* Mirrored contacts live in memory only: with the default wizard
 * (astdb) every contact of every phone of the pool would be written to
 * every Asterisk's disk, and brought back at boot without its record.
 * isp_memory (res_sorcery_isp_memory) is memory with an index by AOR,
 * for pools of many phones; Asterisk's memory works, more slowly. */
static int
contacts_in_memory(void)
{
	struct ast_sorcery	*sorcery = ast_sip_get_sorcery();
	struct ast_sorcery_wizard *wizard;
	int			 i, n;

	n = ast_sorcery_get_wizard_mapping_count(sorcery, "contact");
	for (i = 0; i < n; i++) {
		if (ast_sorcery_get_wizard_mapping(sorcery, "contact", i,
		    &wizard, NULL) != 0)
			return 0;
		if (strcmp(wizard->name, "isp_memory") != 0 &&
		    strcmp(wizard->name, "memory") != 0) {
			ast_log(LOG_ERROR, "PJSIP contacts are kept by sorcery "
			    "wizard '%s'; res_pjsip_isp needs them in memory: "
			    "put 'contact=isp_memory' (res_sorcery_isp_memory)"
			    " or 'contact=memory' in section [res_pjsip] of "
			    "sorcery.conf and restart Asterisk\n", wizard->name);
			return 0;
		}
		ast_log(LOG_NOTICE, "PJSIP contacts are kept by sorcery "
		    "wizard '%s'\n", wizard->name);
	}
	if (n == 0)
		ast_log(LOG_ERROR, "PJSIP contacts have no sorcery wizard; "
		    "put 'contact=isp_memory' in [res_pjsip] of "
		    "sorcery.conf\n");
	return n > 0;
}

static int
unload_module(void)
{
	/* Outside in: nothing asks the contacts' indexes (the gate, the
	 * CLI) or feeds them (the client) once they go. */
	cli_shutdown();
	gate_shutdown();
	client_stop();
	contacts_shutdown();
	ispa_wrlock();
	conf_free(ispa.conf);
	ispa.conf = NULL;
	ispa_unlock();
	ast_cond_destroy(&connector_cond);
	ast_mutex_destroy(&connector_lock);
	return 0;
}

static int
load_module(void)
{
	struct ispa_conf	*conf;

	if (!contacts_in_memory())
		return AST_MODULE_LOAD_DECLINE;
	if ((conf = conf_load()) == NULL)
		return AST_MODULE_LOAD_DECLINE;
	ast_mutex_init(&connector_lock);
	ast_cond_init(&connector_cond, NULL);
	ispa_wrlock();
	ispa.conf = conf;
	ispa.draining = 0;
	ispa.started = time(NULL);
	ispa_unlock();
	if (contacts_init() == -1 || gate_init() == -1 || cli_init() == -1 ||
	    client_start() == -1) {
		unload_module();
		return AST_MODULE_LOAD_DECLINE;
	}
	return AST_MODULE_LOAD_SUCCESS;
}

/* A changed isp.conf makes a new client; its snapshot then replaces the
 * mirror, and contacts change only where records differ. A file with an
 * error changes nothing. */
static int
reload_module(void)
{
	struct ispa_conf	*conf, *old;

	if ((conf = conf_load()) == NULL)
		return -1;
	ispa_rdlock();
	old = ispa.conf;
	ispa_unlock();
	if (!conf_differs(old, conf)) {
		conf_free(conf);
		return 0;
	}
	client_stop();
	ispa_wrlock();
	ispa.conf = conf;
	ispa_unlock();
	conf_free(old);
	ast_log(LOG_NOTICE, "isp.conf changed: reconnecting to ispd\n");
	return client_start() == 0 ? 0 : -1;
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER,
	"PJSIP contacts from the ispd reflector",
	.support_level = AST_MODULE_SUPPORT_EXTENDED,
	.load = load_module,
	.unload = unload_module,
	.reload = reload_module,
	.load_pri = AST_MODPRI_APP_DEPEND,
	.requires = "res_pjsip",
);
