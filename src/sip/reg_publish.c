/*
 * reg_publish: a binding as a SIP_REGISTRATION record.
 *
 * The field list is the contract with every consumer (docs/SIP.md). Its
 * bytes depend only on what identifies and locates the binding, plus
 * `expires` and `cseq` as of the last *change*: a refresh that changes
 * nothing else re-announces byte-identical fields with a new TTL, which
 * ispd takes as a TTL restart and fans out to nobody. The live expiry is
 * the record's TTL in ispd.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sipsvc.h"
#include "registrar.h"

static void
field(struct isp_field *f, const char *name, const char *value)
{
	f->name = name;
	f->value = value != NULL ? value : "";
	f->value_len = strlen(f->value);
}

void
reg_fields(const struct registrar *r, const struct binding *b,
    struct reg_fields *out)
{
	struct isp_field	*f = out->f;

	snprintf(out->expires, sizeof(out->expires), "%lld",
	    (long long)b->pub_expires);
	snprintf(out->cseq, sizeof(out->cseq), "%" PRIu32, b->pub_cseq);
	field(f++, "aor", b->aor->aor);
	field(f++, "contact", b->contact);
	field(f++, "q", b->q);
	field(f++, "received", b->received);
	field(f++, "transport", b->transport);
	field(f++, "path", b->path);
	field(f++, "instance", b->instance);
	field(f++, "reg_id", b->reg_id);
	field(f++, "user_agent", b->user_agent);
	field(f++, "expires", out->expires);
	field(f++, "reg_server", r->cfg.id);
	field(f++, "call_id", b->call_id);
	field(f++, "cseq", out->cseq);
}
