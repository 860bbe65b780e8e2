/*
 * reg_core: one REGISTER, in the steps of RFC 3261 §10.3.
 *
 * A REGISTER is checked whole before anything changes (malformed
 * headers, Require, AOR and domain, authentication, each Contact's
 * expiry, Call-ID/CSeq ordering, the contact limit), so a refused request
 * leaves the bindings exactly as they were. Then each Contact is applied:
 * expiry 0 removes its binding, any other adds or refreshes it, and the
 * reply lists every binding of the AOR with its remaining expiry.
 *
 * Binding identity: with +sip.instance the instance identifies the
 * binding (RFC 5626 §4.1; with a reg-id the flow, when the UA supports
 * outbound), so a phone that comes back from another address replaces
 * its own binding instead of adding one; without it, the contact URI.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* First: it sets the typed callback arguments sofia-sip reads. */
#include "sipsvc.h"

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_util.h>

#include "registrar.h"

/* More Contacts than this in one REGISTER is abuse, not a phone. */
#define REG_MAX_CONTACTS_PER_REQUEST	32

/* One Contact of the request, checked and ready to apply. */
struct plan {
	const sip_contact_t	*c;
	char			*id;
	char			*uri;
	char			*hdr;		/* without expires */
	const char		*instance;	/* unquoted, or NULL */
	const char		*reg_id;	/* when outbound applies */
	unsigned		 expires;
	struct binding		*b;		/* existing binding, or NULL */
	int			 skip;		/* superseded by a later one */
};

int
reg_init(struct registrar *r, const struct reg_config *cfg,
    const struct reg_hooks *hooks, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->cfg = *cfg;
	if (hooks != NULL)
		r->hooks = *hooks;
	hash_init(&r->aors);
	if (r->cfg.id == NULL)
		r->cfg.id = "isp-registrar";
	if (r->cfg.default_expires == 0)
		r->cfg.default_expires = 3600;
	if (r->cfg.max_expires == 0)
		r->cfg.max_expires = 86400;
	if (r->cfg.min_expires > r->cfg.max_expires) {
		snprintf(err, errlen, "the minimum expiry (%u s) is above the "
		    "maximum (%u s)", r->cfg.min_expires, r->cfg.max_expires);
		return -1;
	}
	if (r->cfg.realm != NULL &&
	    (r->auth = auth_new(&r->cfg, err, errlen)) == NULL)
		return -1;
	return 0;
}

void
reg_free(struct registrar *r)
{
	store_free_all(r);
	auth_free(r->auth);
	r->auth = NULL;
}

static int
fail(struct reg_reply *rep, int status, const char *phrase, const char *why)
{
	rep->status = status;
	rep->phrase = phrase;
	rep->why = why;
	return -1;
}

static int
domain_served(const struct registrar *r, const char *host)
{
	size_t	 i;

	if (r->cfg.ndomains == 0)
		return 1;
	for (i = 0; i < r->cfg.ndomains; i++)
		if (strcasecmp(r->cfg.domains[i], host) == 0)
			return 1;
	return 0;
}

/* A parameter's value without its quotes, in home. */
static const char *
param_value(su_home_t *home, const msg_param_t *params, const char *name)
{
	const char	*v;
	size_t		 n;

	if ((v = msg_params_find(params, name)) == NULL)
		return NULL;
	n = strlen(v);
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
		return su_strndup(home, v + 1, n - 2);
	return v;
}

/* The Contact as it will be echoed: this one header, without expires. */
static char *
contact_text(su_home_t *home, const sip_contact_t *c)
{
	sip_contact_t	 one, *d;

	one = *c;
	one.m_next = NULL;
	if ((d = sip_contact_dup(home, &one)) == NULL)
		return NULL;
	msg_header_remove_param(d->m_common, "expires");
	return svc_header_text(home, d);
}

/* Path values joined by "," as they would appear in one header. */
static char *
path_text(su_home_t *home, const sip_path_t *p)
{
	char	*s = NULL, *one;

	for (; p != NULL; p = p->r_next) {
		sip_path_t	 x = *p;

		x.r_next = NULL;
		if ((one = svc_header_text(home, &x)) == NULL)
			return NULL;
		s = s == NULL ? one : su_sprintf(home, "%s,%s", s, one);
		if (s == NULL)
			return NULL;
	}
	return s != NULL ? s : su_strdup(home, "");
}

/* Expiry of one Contact: its expires parameter, else the Expires header,
 * else the default (RFC 3261 §10.3 step 6). -1 when the value is not a
 * number. */
static long long
contact_expires(const struct registrar *r, const sip_t *sip,
    const sip_contact_t *c)
{
	const char		*p;
	unsigned long long	 v = 0;

	if (c->m_expires != NULL) {
		p = c->m_expires;
		if (*p == '\0')
			return -1;
		for (; *p != '\0'; p++) {
			if (!isdigit((unsigned char)*p))
				return -1;
			if (v < 1000000000ULL)
				v = v * 10 + (unsigned)(*p - '0');
		}
		return (long long)v;
	}
	if (sip->sip_expires != NULL)
		return (long long)sip->sip_expires->ex_delta;
	return r->cfg.default_expires;
}

static void
received_text(const struct reg_src *src, char *out, size_t len)
{
	if (strchr(src->ip, ':') != NULL)
		snprintf(out, len, "[%s]:%u", src->ip, src->port);
	else
		snprintf(out, len, "%s:%u", src->ip, src->port);
}

/* Removes every binding of a (Contact: * with Expires: 0). */
static int
reg_remove_all(struct registrar *r, struct aor_entry *a, const sip_t *sip,
    struct reg_reply *rep)
{
	struct binding	*b;
	const char	*callid = sip->sip_call_id->i_id;
	uint32_t	 cseq = sip->sip_cseq->cs_seq;

	if (a == NULL)
		return 0;
	for (b = a->bindings; b != NULL; b = b->next)
		if (strcmp(b->call_id, callid) == 0 && cseq <= b->cseq)
			return fail(rep, 400, "Out of Order Request",
			    "Contact: * with a CSeq not above a binding's");
	while (a->bindings != NULL) {
		b = a->bindings;
		if (r->hooks.withdraw != NULL)
			r->hooks.withdraw(r, b, REG_GONE_REMOVED,
			    r->hooks.arg);
		store_binding_free(r, b);
	}
	store_aor_maybe_free(r, a);
	return 0;
}

/* Checks every Contact and fills plans; nothing changes yet. */
static int
reg_plan(struct registrar *r, su_home_t *home, const sip_t *sip,
    const char *aor, struct aor_entry *a, struct plan *plans, size_t nplans,
    int outbound, int *used_outbound, struct reg_reply *rep)
{
	const sip_contact_t	*c;
	struct plan		*p;
	long long		 e;
	size_t			 i, j, nregid = 0;
	unsigned		 after, removed = 0, added = 0;

	for (i = 0, c = sip->sip_contact; i < nplans; i++, c = c->m_next) {
		p = &plans[i];
		p->c = c;
		if (c->m_url->url_type != url_sip &&
		    c->m_url->url_type != url_sips)
			return fail(rep, 400, "Unsupported Contact URI",
			    "a Contact that is not a sip: or sips: URI");
		if ((e = contact_expires(r, sip, c)) < 0)
			return fail(rep, 400, "Bad Contact expires",
			    "a Contact's expires is not a number");
		if (e > 0 && e < r->cfg.min_expires) {
			rep->min_expires = r->cfg.min_expires;
			return fail(rep, 423, NULL, "expiry below the minimum");
		}
		if (e > r->cfg.max_expires)
			e = r->cfg.max_expires;
		p->expires = (unsigned)e;
		p->instance = param_value(home, c->m_params, "+sip.instance");
		if (p->instance != NULL && p->instance[0] == '\0')
			p->instance = NULL;
		p->reg_id = NULL;
		if (p->instance != NULL && outbound)
			p->reg_id = msg_params_find(c->m_params, "reg-id");
		if (p->reg_id != NULL) {
			/* RFC 5626 §6: one flow per REGISTER. */
			if (++nregid > 1)
				return fail(rep, 400, "Multiple reg-id",
				    "more than one Contact with reg-id");
			*used_outbound = 1;
		}
		p->uri = url_as_string(home, c->m_url);
		p->hdr = contact_text(home, c);
		if (p->instance != NULL && p->reg_id != NULL)
			p->id = su_sprintf(home, "%s;reg-id=%s", p->instance,
			    p->reg_id);
		else
			p->id = su_strdup(home, p->instance != NULL ?
			    p->instance : p->uri);
		if (p->uri == NULL || p->hdr == NULL || p->id == NULL)
			return fail(rep, 500, NULL, "out of memory");
		if (strlen(aor) + 1 + strlen(p->id) >
		    SIP_KEY_MAX)
			return fail(rep, 400, "Contact Too Long",
			    "binding key over 1024 bytes");
		/* A later Contact for the same binding wins. */
		for (j = 0; j < i; j++)
			if (!plans[j].skip && strcmp(plans[j].id, p->id) == 0)
				plans[j].skip = 1;
		p->b = a != NULL ? store_binding_find(a, p->id) : NULL;
		/* Step 7: same Call-ID needs a higher CSeq. */
		if (p->b != NULL &&
		    strcmp(p->b->call_id, sip->sip_call_id->i_id) == 0 &&
		    sip->sip_cseq->cs_seq <= p->b->cseq)
			return fail(rep, 400, "Out of Order Request",
			    "CSeq not above the binding's for the same Call-ID");
	}
	for (i = 0; i < nplans; i++) {
		p = &plans[i];
		if (p->skip)
			continue;
		if (p->b != NULL && p->expires == 0)
			removed++;
		else if (p->b == NULL && p->expires > 0)
			added++;
	}
	after = (a != NULL ? a->nbindings : 0) - removed + added;
	if (r->cfg.max_contacts > 0 && added > 0 &&
	    after > r->cfg.max_contacts)
		return fail(rep, 503, "Too Many Registered Contacts",
		    "the AOR would exceed its contact limit");
	return 0;
}

/* Applies one checked Contact. Returns 0 or -1 (out of memory). */
static int
reg_apply(struct registrar *r, struct aor_entry *a, const struct plan *p,
    const sip_t *sip, const struct reg_src *src, const char *path,
    time_t now)
{
	struct binding	*b = p->b;
	char		 recv[96];
	const char	*ua, *q;
	int		 changed = 0, isnew = 0, rc = 0;

	if (p->expires == 0) {
		if (b != NULL) {
			if (r->hooks.withdraw != NULL)
				r->hooks.withdraw(r, b, REG_GONE_REMOVED,
				    r->hooks.arg);
			store_binding_free(r, b);
		}
		return 0;
	}
	if (b == NULL) {
		if ((b = store_binding_new(r, a, p->id)) == NULL)
			return -1;
		isnew = changed = 1;
	}
	received_text(src, recv, sizeof(recv));
	ua = sip->sip_user_agent != NULL && sip->sip_user_agent->g_string ?
	    sip->sip_user_agent->g_string : "";
	q = p->c->m_q != NULL ? p->c->m_q : "";
#define SET(field, value) do {						\
		if (b->field == NULL || strcmp(b->field, (value)) != 0) {	\
			changed = 1;					\
			rc |= store_set(&b->field, (value));		\
		}							\
	} while (0)
	SET(contact, p->uri);
	SET(q, q);
	SET(received, recv);
	SET(transport, src->transport);
	SET(path, path);
	SET(instance, p->instance != NULL ? p->instance : "");
	SET(reg_id, p->reg_id != NULL ? p->reg_id : "");
	SET(user_agent, ua);
	SET(call_id, sip->sip_call_id->i_id);
#undef SET
	/* Not published: the echo in 200 OK may change freely. */
	rc |= store_set(&b->contact_hdr, p->hdr);
	if (rc != 0) {
		if (isnew)
			store_binding_free(r, b);
		return -1;
	}
	b->cseq = sip->sip_cseq->cs_seq;
	b->expires_at = now + (time_t)p->expires;
	store_binding_rescheduled(r, b);
	if (changed) {
		b->pub_expires = b->expires_at;
		b->pub_cseq = b->cseq;
		r->stats.changes++;
	} else
		r->stats.refreshes++;
	/* One second of grace: the registrar withdraws at expiry itself;
	 * ispd's TTL is the safety net when it cannot. */
	if (r->hooks.announce != NULL)
		r->hooks.announce(r, b, p->expires + 1, r->hooks.arg);
	return 0;
}

/* The 200 OK's Contacts: every binding with its remaining expiry. */
static void
reg_list(struct registrar *r, su_home_t *home, struct aor_entry *a,
    time_t now, struct reg_reply *rep)
{
	sip_contact_t	**tail = &rep->contacts, *c;
	struct binding	*b;
	long long	 left;
	char		*param;

	if (a == NULL)
		return;
	for (b = a->bindings; b != NULL; b = b->next) {
		if ((c = sip_contact_make(home, b->contact_hdr)) == NULL)
			continue;
		left = (long long)(b->expires_at - now);
		/* The header keeps a pointer to the parameter: home. */
		if ((param = su_sprintf(home, "expires=%lld",
		    left > 0 ? left : 0)) == NULL)
			continue;
		msg_header_replace_param(home, c->m_common, param);
		*tail = c;
		tail = &c->m_next;
	}
}

static int
reg_process(struct registrar *r, su_home_t *home, const sip_t *sip,
    const struct reg_src *src, time_t now, struct reg_reply *rep)
{
	struct aor_entry	*a;
	struct plan		*plans;
	const sip_contact_t	*c;
	const msg_list_t	*req;
	char			 aor[SIP_AOR_MAX], user[256];
	const char		*path;
	size_t			 i, n = 0;
	int			 len, star = 0, outbound, used_ob = 0;

	if (sip == NULL || sip->sip_request == NULL)
		return fail(rep, 400, NULL, "not a request");
	if (sip->sip_error != NULL)
		return fail(rep, 400, "Malformed Header",
		    "a header could not be parsed");
	if (sip->sip_to == NULL || sip->sip_from == NULL ||
	    sip->sip_call_id == NULL || sip->sip_cseq == NULL ||
	    sip->sip_via == NULL)
		return fail(rep, 400, "Missing Mandatory Header",
		    "To, From, Call-ID, CSeq or Via missing");
	if (sip->sip_cseq->cs_method != sip_method_register)
		return fail(rep, 400, "CSeq Method Mismatch",
		    "CSeq method is not REGISTER");
	/* Step 2: we understand path and outbound only. */
	for (req = sip->sip_require; req != NULL; req = req->k_next)
		for (i = 0; req->k_items != NULL && req->k_items[i]; i++)
			if (strcasecmp(req->k_items[i], "path") != 0 &&
			    strcasecmp(req->k_items[i], "outbound") != 0) {
				rep->unsupported = su_strdup(home,
				    req->k_items[i]);
				return fail(rep, 420, NULL,
				    "Require names an extension we lack");
			}
	/* Step 5 (before authentication, which needs the AOR's user). */
	if ((len = aor_canon(sip->sip_to->a_url, aor, sizeof(aor))) < 0)
		return fail(rep, 404, NULL, "To is not a sip: AOR we serve");
	if (!domain_served(r, sip->sip_to->a_url->url_host))
		return fail(rep, 404, NULL, "AOR domain not served here");
	/* Steps 3-4: authentication; the user must be the AOR's. */
	if (r->auth != NULL) {
		user[0] = '\0';
		if (sip->sip_to->a_url->url_user != NULL &&
		    strlen(sip->sip_to->a_url->url_user) < sizeof(user))
			url_unescape(user, sip->sip_to->a_url->url_user);
		if (auth_check(r->auth, home, sip, user, now, rep) != 0)
			return -1;
	}
	a = store_aor_find(r, aor, (size_t)len);

	for (c = sip->sip_contact; c != NULL; c = c->m_next) {
		n++;
		if (c->m_url->url_type == url_any)
			star = 1;
	}
	if (star) {
		/* Step 6: "*" alone, with Expires: 0. */
		if (n != 1 || sip->sip_expires == NULL ||
		    sip->sip_expires->ex_delta != 0)
			return fail(rep, 400, "Invalid Contact: *",
			    "Contact: * needs Expires: 0 and no other Contact");
		return reg_remove_all(r, a, sip, rep);
	}
	if (n == 0) {
		reg_list(r, home, a, now, rep);	/* a query */
		return 0;
	}
	if (n > REG_MAX_CONTACTS_PER_REQUEST)
		return fail(rep, 400, "Too Many Contacts",
		    "more Contacts in one REGISTER than we take");
	if ((plans = su_zalloc(home, n * sizeof(*plans))) == NULL)
		return fail(rep, 500, NULL, "out of memory");
	outbound = sip->sip_supported != NULL &&
	    sip_has_feature(sip->sip_supported, "outbound");
	if (reg_plan(r, home, sip, aor, a, plans, n, outbound, &used_ob,
	    rep) != 0)
		return -1;
	if ((path = path_text(home, sip->sip_path)) == NULL)
		return fail(rep, 500, NULL, "out of memory");

	for (i = 0; i < n; i++)
		if (!plans[i].skip && plans[i].expires > 0)
			break;
	if (i < n && a == NULL &&
	    (a = store_aor_get(r, aor, (size_t)len)) == NULL)
		return fail(rep, 500, NULL, "out of memory");
	for (i = 0; i < n; i++) {
		if (plans[i].skip)
			continue;
		if (reg_apply(r, a, &plans[i], sip, src, path, now) != 0) {
			store_aor_maybe_free(r, a);
			return fail(rep, 500, NULL, "out of memory");
		}
	}
	reg_list(r, home, a, now, rep);
	store_aor_maybe_free(r, a);
	/* RFC 3327 §5.3: echo Path to a UA that supports it. */
	if (sip->sip_path != NULL && sip->sip_supported != NULL &&
	    sip_has_feature(sip->sip_supported, "path"))
		rep->path = sip_path_dup(home, sip->sip_path);
	rep->require_outbound = used_ob;
	return 0;
}

/* Every answer reg_handle() gives (the metrics count them by code). */
const int	 reg_codes[REG_NCODES] = {
	200, 400, 401, 403, 404, 420, 423, 500, 503
};

void
reg_handle(struct registrar *r, su_home_t *home, const sip_t *sip,
    const struct reg_src *src, time_t now, struct reg_reply *rep)
{
	size_t	 i;

	memset(rep, 0, sizeof(*rep));
	r->stats.registers++;
	if (reg_process(r, home, sip, src, now, rep) == 0) {
		rep->status = 200;
		rep->phrase = NULL;
		r->stats.ok++;
	} else
		r->stats.refused++;
	for (i = 0; i < REG_NCODES && reg_codes[i] != rep->status; i++)
		;
	r->stats.by_code[i]++;
}

size_t
reg_expire(struct registrar *r, time_t now)
{
	struct binding		*b;
	struct aor_entry	*a;
	size_t			 n = 0;

	while ((b = store_next_expiry(r)) != NULL && b->expires_at <= now) {
		a = b->aor;
		if (r->hooks.withdraw != NULL)
			r->hooks.withdraw(r, b, REG_GONE_EXPIRED, r->hooks.arg);
		store_binding_free(r, b);
		store_aor_maybe_free(r, a);
		r->stats.expired++;
		n++;
	}
	if (r->auth != NULL)
		auth_expire(r->auth, now);
	return n;
}

void
reg_replay(struct registrar *r, time_t now)
{
	struct hash_node	*n = NULL;
	struct aor_entry	*a;
	struct binding		*b;
	size_t			 pos = 0;

	if (r->hooks.announce == NULL)
		return;
	while ((n = hash_next(&r->aors, &pos, n)) != NULL) {
		a = (struct aor_entry *)n;
		for (b = a->bindings; b != NULL; b = b->next)
			if (b->expires_at > now)
				r->hooks.announce(r, b,
				    (unsigned)(b->expires_at - now) + 1,
				    r->hooks.arg);
	}
}
