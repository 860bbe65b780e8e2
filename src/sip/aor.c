/*
 * aor: the canonical address-of-record and the SIP_REGISTRATION keys.
 *
 * RFC 3261 §10.3 step 5 makes the To URI, stripped of parameters and with
 * escapes undone, the index of the bindings. Two escapes stay: "%25" ('%')
 * so that the result can be parsed back, and "%7C" ('|') because '|'
 * separates the AOR from the binding id in a key. The host is compared
 * case-insensitively (§19.1.4), so it is lower-cased; the user part is
 * case-sensitive and kept.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sipsvc.h"

#include <sofia-sip/msg_header.h>

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Appends s to out[*n...] undoing escapes, except those that must stay
 * (see above) and control characters, which are re-escaped in upper
 * case. Returns 0, or -1 when out is full. */
static int
put_unescaped(char *out, size_t outlen, size_t *n, const char *s)
{
	int	 hi, lo, c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (c == '%' && (hi = hexval(s[1])) >= 0 &&
		    (lo = hexval(s[2])) >= 0) {
			c = hi * 16 + lo;
			s += 2;
		}
		if (c == '%' || c == '|' || c <= 0x20 || c >= 0x7f) {
			if (*n + 3 >= outlen)
				return -1;
			*n += (size_t)snprintf(out + *n, outlen - *n, "%%%02X",
			    c);
			continue;
		}
		if (*n + 1 >= outlen)
			return -1;
		out[(*n)++] = (char)c;
	}
	out[*n] = '\0';
	return 0;
}

int
aor_canon(const url_t *u, char *out, size_t outlen)
{
	size_t		 n = 0;
	const char	*p;
	int		 r;

	if (u == NULL || outlen == 0 || u->url_host == NULL ||
	    u->url_host[0] == '\0' ||
	    (u->url_type != url_sip && u->url_type != url_sips))
		return -1;
	r = snprintf(out, outlen, "%s:", u->url_type == url_sips ? "sips" :
	    "sip");
	if (r < 0 || (size_t)r >= outlen)
		return -1;
	n = (size_t)r;
	if (u->url_user != NULL && u->url_user[0] != '\0') {
		if (put_unescaped(out, outlen, &n, u->url_user) != 0 ||
		    n + 1 >= outlen)
			return -1;
		out[n++] = '@';
	}
	for (p = u->url_host; *p != '\0'; p++) {
		if (n + 1 >= outlen || *p == '|' || (unsigned char)*p <= 0x20)
			return -1;
		out[n++] = (char)tolower((unsigned char)*p);
	}
	if (u->url_port != NULL && u->url_port[0] != '\0') {
		r = snprintf(out + n, outlen - n, ":%s", u->url_port);
		if (r < 0 || (size_t)r >= outlen - n)
			return -1;
		n += (size_t)r;
	}
	out[n] = '\0';
	return (int)n;
}

int
aor_key(const char *aor, const char *id, char *out, size_t outlen)
{
	int	 r;

	if (outlen > SIP_KEY_MAX + 1)
		outlen = SIP_KEY_MAX + 1;
	r = snprintf(out, outlen, "%s%c%s", aor, SIP_KEY_SEP, id);
	if (r < 0 || (size_t)r >= outlen)
		return -1;
	return r;
}

/* sofia-sip's sip_header_as_string() drops the last parameter of some
 * headers near its first buffer size (seen with WWW-Authenticate of 140
 * bytes), so encode into a buffer that is known to be large enough. */
char *
svc_header_text(su_home_t *home, const void *h)
{
	char		 buf[1024], *big;
	issize_t	 n;

	n = msg_header_field_e(buf, sizeof(buf), (const msg_header_t *)h, 0);
	if (n < 0)
		return NULL;
	if ((size_t)n < sizeof(buf))
		return su_strndup(home, buf, (size_t)n);
	if ((big = su_alloc(home, (size_t)n + 1)) == NULL)
		return NULL;
	if (msg_header_field_e(big, (size_t)n + 1, (const msg_header_t *)h,
	    0) != n) {
		su_free(home, big);
		return NULL;
	}
	big[n] = '\0';
	return big;
}
