/*
 * locator: the AOR index of isp-locator, fed by SIP_REGISTRATION events.
 *
 * Keys are "AOR|binding-id"; an AOR never holds a raw '|' (aor.c keeps
 * it escaped), so the first '|' ends it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* First: it sets the typed callback arguments sofia-sip reads. */
#include "sipsvc.h"

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>

#include "locator.h"

void
loc_init(struct locator *l)
{
	memset(l, 0, sizeof(*l));
	hash_init(&l->aors);
}

static void
binding_free(struct loc_binding *b)
{
	free(b->key);
	free(b->contact);
	free(b->q);
	free(b->received);
	free(b->transport);
	free(b->path);
	free(b);
}

static void
aor_free(struct locator *l, struct loc_aor *a)
{
	struct loc_binding	*b;

	while ((b = a->bindings) != NULL) {
		a->bindings = b->next;
		binding_free(b);
		l->nbindings--;
	}
	hash_remove(&l->aors, &a->node);
	free(a->aor);
	free(a);
}

void
loc_free(struct locator *l)
{
	struct hash_node	*n, *next;
	size_t			 pos = 0;

	for (n = hash_next(&l->aors, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&l->aors, &pos, n);
		aor_free(l, (struct loc_aor *)n);
	}
	hash_free(&l->aors);
}

static int
aor_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct loc_aor	*a = (const struct loc_aor *)n;

	return a->aor_len == len && memcmp(a->aor, key, len) == 0;
}

static struct loc_aor *
aor_find(struct locator *l, const char *aor, size_t len)
{
	return (struct loc_aor *)hash_find(&l->aors, hash_bytes(aor, len), aor,
	    len, aor_eq);
}

static const char *
fieldv(const struct isp_record *r, const char *name)
{
	size_t	 i;

	for (i = 0; i < r->nfields; i++)
		if (strcmp(r->fields[i].name, name) == 0)
			return r->fields[i].value;	/* NUL-terminated */
	return "";
}

static struct loc_binding *
binding_find(struct loc_aor *a, const void *key, size_t len,
    struct loc_binding ***pp)
{
	struct loc_binding	**p;

	for (p = &a->bindings; *p != NULL; p = &(*p)->next)
		if (strlen((*p)->key) == len && memcmp((*p)->key, key, len) == 0) {
			if (pp != NULL)
				*pp = p;
			return *p;
		}
	return NULL;
}

static void
loc_put(struct locator *l, const struct isp_record *r, size_t aor_len)
{
	struct loc_aor		*a;
	struct loc_binding	*b, nb;

	memset(&nb, 0, sizeof(nb));
	nb.contact = strdup(fieldv(r, "contact"));
	nb.q = strdup(fieldv(r, "q"));
	nb.received = strdup(fieldv(r, "received"));
	nb.transport = strdup(fieldv(r, "transport"));
	nb.path = strdup(fieldv(r, "path"));
	if (nb.contact == NULL || nb.q == NULL || nb.received == NULL ||
	    nb.transport == NULL || nb.path == NULL)
		goto nomem;
	if ((a = aor_find(l, r->key, aor_len)) == NULL) {
		if ((a = calloc(1, sizeof(*a))) == NULL ||
		    (a->aor = strndup(r->key, aor_len)) == NULL) {
			free(a);
			goto nomem;
		}
		a->aor_len = aor_len;
		if (hash_insert(&l->aors, &a->node,
		    hash_bytes(a->aor, aor_len)) != 0) {
			free(a->aor);
			free(a);
			goto nomem;
		}
	}
	if ((b = binding_find(a, r->key, r->key_len, NULL)) != NULL) {
		free(b->contact);
		free(b->q);
		free(b->received);
		free(b->transport);
		free(b->path);
		nb.key = b->key;
		nb.next = b->next;
		*b = nb;
		return;
	}
	if ((b = malloc(sizeof(*b))) == NULL ||
	    (nb.key = strndup(r->key, r->key_len)) == NULL) {
		free(b);
		if (a->bindings == NULL)
			aor_free(l, a);
		goto nomem;
	}
	*b = nb;
	b->next = a->bindings;
	a->bindings = b;
	l->nbindings++;
	return;
nomem:
	free(nb.contact);
	free(nb.q);
	free(nb.received);
	free(nb.transport);
	free(nb.path);
	svc_log(SVC_LOG_ERROR, "out of memory indexing %s", (char *)r->key);
}

static void
loc_del(struct locator *l, const struct isp_record *r, size_t aor_len)
{
	struct loc_aor		*a;
	struct loc_binding	*b, **pp;

	if ((a = aor_find(l, r->key, aor_len)) == NULL ||
	    (b = binding_find(a, r->key, r->key_len, &pp)) == NULL)
		return;
	*pp = b->next;
	binding_free(b);
	l->nbindings--;
	if (a->bindings == NULL)
		aor_free(l, a);
}

static void
loc_sweep(struct locator *l)
{
	struct hash_node	*n, *next;
	struct loc_aor		*a;
	struct loc_binding	*b, **pp;
	size_t			 pos = 0;

	for (n = hash_next(&l->aors, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&l->aors, &pos, n);
		a = (struct loc_aor *)n;
		for (pp = &a->bindings; (b = *pp) != NULL;) {
			if (b->stale) {
				*pp = b->next;
				binding_free(b);
				l->nbindings--;
			} else
				pp = &b->next;
		}
		if (a->bindings == NULL)
			aor_free(l, a);
	}
}

void
loc_mark_stale(struct locator *l)
{
	struct hash_node	*n = NULL;
	struct loc_binding	*b;
	size_t			 pos = 0;

	while ((n = hash_next(&l->aors, &pos, n)) != NULL)
		for (b = ((struct loc_aor *)n)->bindings; b != NULL;
		    b = b->next)
			b->stale = 1;
}

void
loc_event(struct locator *l, const struct isp_event *ev)
{
	const char	*sep;

	if (ev->type == ISP_EV_END) {
		loc_sweep(l);
		l->ready = 1;
		return;
	}
	if (ev->rec.key == NULL ||
	    (sep = memchr(ev->rec.key, SIP_KEY_SEP, ev->rec.key_len)) == NULL)
		return;		/* not a binding key; not ours to judge */
	switch (ev->type) {
	case ISP_EV_ANNOUNCE:
	case ISP_EV_REPLACE:
		loc_put(l, &ev->rec, (size_t)(sep - (const char *)ev->rec.key));
		break;
	case ISP_EV_WITHDRAW:
		loc_del(l, &ev->rec, (size_t)(sep - (const char *)ev->rec.key));
		break;
	default:
		break;
	}
}

/* 1 when received ("ip:port") is not where the contact URI points: the
 * phone is behind NAT and only the received address reaches it. */
static int
behind_nat(su_home_t *home, const struct loc_binding *b)
{
	url_t		*u;
	char		*hp;
	const char	*port;

	if (b->received[0] == '\0' || (u = url_make(home, b->contact)) == NULL)
		return 0;
	port = u->url_port != NULL && u->url_port[0] != '\0' ? u->url_port :
	    (u->url_type == url_sips ? "5061" : "5060");
	if (strchr(u->url_host, ':') != NULL && u->url_host[0] != '[')
		hp = su_sprintf(home, "[%s]:%s", u->url_host, port);
	else
		hp = su_sprintf(home, "%s:%s", u->url_host, port);
	return hp == NULL || strcasecmp(hp, b->received) != 0;
}

int
loc_lookup(struct locator *l, su_home_t *home, const url_t *uri,
    sip_contact_t **out)
{
	struct loc_aor		*a;
	struct loc_binding	*b;
	sip_contact_t		*c, **tail = out;
	char			 aor[SIP_AOR_MAX];
	int			 len, n = 0;

	*out = NULL;
	l->lookups++;
	if ((len = aor_canon(uri, aor, sizeof(aor))) < 0) {
		l->bad_uri++;
		return -1;
	}
	if ((a = aor_find(l, aor, (size_t)len)) == NULL)
		return 0;
	for (b = a->bindings; b != NULL; b = b->next) {
		if (behind_nat(home, b))
			c = sip_contact_format(home,
			    "<%s>%s%s;received=\"sip:%s\"", b->contact,
			    b->q[0] ? ";q=" : "", b->q, b->received);
		else
			c = sip_contact_format(home, "<%s>%s%s", b->contact,
			    b->q[0] ? ";q=" : "", b->q);
		if (c == NULL)
			continue;
		*tail = c;
		tail = &c->m_next;
		n++;
	}
	if (n > 0)
		l->found++;
	return n;
}
