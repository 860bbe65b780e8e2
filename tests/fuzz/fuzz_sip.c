/*
 * fuzz_sip: bytes from the network, as isp-registrar and isp-locator see
 * them. sofia-sip parses them (the system library; not instrumented, but
 * every pointer it hands over is read by instrumented code), then a
 * request goes through the registrar core twice (without and with digest
 * authentication), its bindings are fed to a locator index the way
 * ispd's events would be, and its Request-URI is looked up there.
 *
 * The clock moves forward with every input and expired bindings are
 * dropped, so state builds up across inputs like in a long-running
 * registrar without growing without bound.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* First: it sets the typed callback arguments sofia-sip reads. */
#include "sipsvc.h"

#include <sofia-sip/msg.h>
#include <sofia-sip/sip_header.h>

#include "locator.h"
#include "registrar.h"

int	 LLVMFuzzerInitialize(int *, char ***);
int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct registrar	 plain, authed;
static struct locator	 loc;
static time_t		 clock_s = 1800000000;

/* Publishing, as the locator would receive it from ispd. */
static void
fz_announce(struct registrar *r, const struct binding *b, unsigned ttl,
    void *arg)
{
	struct reg_fields	 f;
	struct isp_event	 ev;

	reg_fields(r, b, &f);
	memset(&ev, 0, sizeof(ev));
	ev.type = ISP_EV_ANNOUNCE;
	ev.table = SIP_REG_TABLE;
	ev.rec.key = b->key;
	ev.rec.key_len = b->key_len;
	ev.rec.fields = f.f;
	ev.rec.nfields = REG_NFIELDS;
	loc_event(&loc, &ev);
}

static void
fz_withdraw(struct registrar *r, const struct binding *b, enum reg_gone why,
    void *arg)
{
	struct isp_event	 ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = ISP_EV_WITHDRAW;
	ev.table = SIP_REG_TABLE;
	ev.rec.key = b->key;
	ev.rec.key_len = b->key_len;
	loc_event(&loc, &ev);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct reg_config	 cfg;
	struct reg_hooks	 hooks;
	struct isp_event	 end;
	char			 path[] = "/tmp/fuzz_sip_creds.XXXXXX", err[256];
	FILE			*f;
	int			 fd;

	svc_log_init("fuzz_sip", SVC_LOG_ERROR);
	su_init();
	memset(&cfg, 0, sizeof(cfg));
	cfg.id = "fuzz";
	cfg.min_expires = 10;
	cfg.max_expires = 600;
	cfg.default_expires = 300;
	cfg.max_contacts = 5;
	hooks.announce = fz_announce;
	hooks.withdraw = fz_withdraw;
	hooks.arg = NULL;
	if (reg_init(&plain, &cfg, &hooks, err, sizeof(err)) != 0)
		abort();
	if ((fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL)
		abort();
	fprintf(f, "alice:secret\nbob:b0b\n");
	fclose(f);
	cfg.realm = "example.com";
	cfg.credentials = path;
	cfg.algs[0] = "SHA-256";
	cfg.algs[1] = "MD5";
	cfg.nalgs = 2;
	cfg.nonce_ttl_s = 60;
	if (reg_init(&authed, &cfg, NULL, err, sizeof(err)) != 0)
		abort();
	unlink(path);
	loc_init(&loc);
	memset(&end, 0, sizeof(end));
	end.type = ISP_EV_END;
	loc_event(&loc, &end);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	su_home_t		 home[1] = { SU_HOME_INIT(home) };
	struct reg_src		 src;
	struct reg_reply	 rep;
	sip_contact_t		*c;
	msg_t			*msg;
	sip_t			*sip;
	char			*copy;

	if (size > 65536)
		return 0;
	/* msg_make() parses in place and wants a NUL after the bytes. */
	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	msg = msg_make(sip_default_mclass(), 0, copy, (isize_t)size);
	clock_s += 7;
	if (msg != NULL && (sip = sip_object(msg)) != NULL &&
	    sip->sip_request != NULL) {
		memset(&src, 0, sizeof(src));
		snprintf(src.ip, sizeof(src.ip), "198.51.100.%u",
		    size > 0 ? data[0] : 1);
		src.port = 5060;
		src.transport = size & 1 ? "tcp" : "udp";
		if (sip->sip_request->rq_method == sip_method_register) {
			reg_handle(&plain, home, sip, &src, clock_s, &rep);
			reg_handle(&authed, home, sip, &src, clock_s, &rep);
		} else
			(void)loc_lookup(&loc, home, sip->sip_request->rq_url,
			    &c);
	}
	(void)reg_expire(&plain, clock_s);
	(void)reg_expire(&authed, clock_s);
	if (msg != NULL)
		msg_destroy(msg);
	free(copy);
	su_home_deinit(home);
	return 0;
}
