/*
 * binding: what a SIP_REGISTRATION record says, checked before PJSIP
 * sees any of it.
 *
 * Records come from the network (any publisher the reflector lets write
 * the table), so every field the contact takes is checked here: present
 * where it must be, text (no NUL), at most ISPA_MAX_FIELD_BYTES, the aor
 * a sip:USER@HOST URI that names a PJSIP AOR, received an address. The
 * contact URI itself is parsed by PJSIP (contacts.c). This file uses no
 * Asterisk header, so tests/unit/test_binding.c and
 * tests/fuzz/fuzz_binding.c run it alone.
 */
#include <stdlib.h>
#include <string.h>

#include "isp_asterisk.h"

int
binding_aor_name(enum ispa_aor_map m, const char *aor, char *buf,
    size_t size)
{
	const char	*user, *at, *end;
	size_t		 len;

	if (m == ISPA_AOR_FULL) {
		user = aor;
		end = aor + strlen(aor);
	} else {
		/* The canonical AOR is sip:user@host[:port] (docs/SIP.md). */
		if (strncmp(aor, "sip:", 4) == 0)
			user = aor + 4;
		else if (strncmp(aor, "sips:", 5) == 0)
			user = aor + 5;
		else
			return -1;
		if ((at = strchr(user, '@')) == NULL || at == user ||
		    at[1] == '\0')
			return -1;
		end = m == ISPA_AOR_USER ? at : user + strlen(user);
	}
	len = (size_t)(end - user);
	if (len == 0 || len >= size)
		return -1;
	memcpy(buf, user, len);
	buf[len] = '\0';
	return 0;
}

int
binding_hostport(const char *s, char *host, size_t size, int *port)
{
	const char	*colon, *h = s, *he;
	char		*end;
	long		 p;

	if (*s == '[') {
		h = s + 1;
		if ((he = strchr(h, ']')) == NULL || he[1] != ':')
			return -1;
		colon = he + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		he = colon;
	}
	if (colon[1] < '0' || colon[1] > '9')
		return -1;
	p = strtol(colon + 1, &end, 10);
	if (he == h || (size_t)(he - h) >= size || *end != '\0' || p < 1 ||
	    p > 65535)
		return -1;
	/* A host is a name or an address: nothing that could break out of
	 * a URI. */
	if (strcspn(h, " \t\r\n<>\"@;?,") < (size_t)(he - h))
		return -1;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	*port = (int)p;
	return 0;
}

static const struct isp_field *
field(const struct isp_record *r, const char *name)
{
	size_t	 i;

	for (i = 0; i < r->nfields; i++)
		if (strcmp(r->fields[i].name, name) == 0)
			return &r->fields[i];
	return NULL;
}

/* A field as a C string: NULL when absent. Values the library hands out
 * are NUL-terminated one byte past value_len; one with a NUL inside is
 * not text. */
static const char *
text(const struct isp_record *r, const char *name, const char **why)
{
	const struct isp_field	*f = field(r, name);

	if (f == NULL)
		return NULL;
	if (f->value_len > ISPA_MAX_FIELD_BYTES)
		*why = "a field is longer than 2048 bytes";
	else if (memchr(f->value, '\0', f->value_len) != NULL)
		*why = "a field holds a NUL byte";
	else
		return f->value;
	return NULL;
}

const char *
binding_parse(const struct isp_record *r, enum ispa_aor_map map,
    struct binding_fields *f)
{
	const char	*received, *why = NULL;

	memset(f, 0, sizeof(*f));
	f->aor = text(r, "aor", &why);
	f->contact = text(r, "contact", &why);
	received = text(r, "received", &why);
	f->path = text(r, "path", &why);
	f->user_agent = text(r, "user_agent", &why);
	f->call_id = text(r, "call_id", &why);
	if (why != NULL)
		return why;
	if (f->aor == NULL || f->aor[0] == '\0')
		return "it has no aor";
	if (f->contact == NULL || f->contact[0] == '\0')
		return "it has no contact";
	f->contact_len = strlen(f->contact);
	if (binding_aor_name(map, f->aor, f->aor_name,
	    sizeof(f->aor_name)) == -1)
		return map == ISPA_AOR_FULL ? "its aor is too long" :
		    "its aor is not sip:USER@HOST";
	if (received != NULL && received[0] != '\0' &&
	    binding_hostport(received, f->received_host,
	    sizeof(f->received_host), &f->received_port) == -1)
		return "its received is not IP:PORT";
	return NULL;
}
