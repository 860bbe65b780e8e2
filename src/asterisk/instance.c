/*
 * instance: this Asterisk in table INSTANCES, and placement.
 *
 * The record (key: the client name) has the fields every instance has
 * (docs/SIP.md: role, sip, version, started) and status, up or
 * draining. It is owned by our session, so it goes when Asterisk does,
 * however it goes; libisp announces it again after a reconnect.
 * Placement is isp_place() over our mirror of INSTANCES: every node of
 * the pool, registrar and Kamailio alike, computes the same answer, and
 * isp_place() passes over draining instances, so `isp drain` moves this
 * instance's accounts to where they would go if it were gone.
 */
#include "asterisk.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "asterisk/ast_version.h"
#include "asterisk/logger.h"

#include "isp_asterisk.h"
#include "isp_place.h"

/* Under ispa_lock, held for reading at least. */
int
instance_announce(void)
{
	struct isp_field	 f[5];
	char			 started[32];
	const char		*status;
	int			 err;

	if (ispa.client == NULL)
		return -1;
	status = ispa.draining ? "draining" : "up";
	snprintf(started, sizeof(started), "%lld", (long long)ispa.started);
	f[0].name = "role";
	f[0].value = ISPA_ROLE;
	f[1].name = "uri";
	f[1].value = ispa.conf->uri;
	f[2].name = "status";
	f[2].value = status;
	f[3].name = "version";
	f[3].value = ast_get_version();
	f[4].name = "started";
	f[4].value = started;
	for (size_t i = 0; i < 5; i++)
		f[i].value_len = strlen(f[i].value);
	err = isp_announce(ispa.client, ISP_INSTANCES_TABLE, ispa.conf->name,
	    strlen(ispa.conf->name), f, 5, 0);
	if (err != ISP_OK) {
		ast_log(LOG_ERROR, "cannot announce %s in %s: %s\n",
		    ispa.conf->name, ISP_INSTANCES_TABLE,
		    isp_errmsg(ispa.client));
		return -1;
	}
	return 0;
}

void
instance_withdraw(void)
{
	if (ispa.client != NULL)
		(void)isp_withdraw(ispa.client, ISP_INSTANCES_TABLE,
		    ispa.conf->name, strlen(ispa.conf->name));
}

int
instance_place(const char *role, const char *account, char *buf,
    size_t size)
{
	struct isp_record	*r;

	if (ispa.instances == NULL || isp_place(ispa.instances, role, account,
	    strlen(account), &r) != ISP_OK)
		return -1;
	snprintf(buf, size, "%.*s", (int)r->key_len, (const char *)r->key);
	isp_record_free(r);
	return 0;
}

int
instance_serves(const char *account)
{
	char	 id[256];
	int	 serves;

	ispa_rdlock();
	serves = ispa.conf != NULL &&
	    instance_place(ISPA_ROLE, account, id, sizeof(id)) == 0 &&
	    strcmp(id, ispa.conf->name) == 0;
	ispa_unlock();
	return serves;
}
