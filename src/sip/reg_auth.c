/*
 * reg_auth: digest authentication of REGISTER (RFC 3261 §22, RFC 7616,
 * RFC 8760 for SHA-256 in SIP).
 *
 * sofia-sip parses the Authorization header (auth_digest_response_get);
 * this file computes and compares digests with OpenSSL, because sofia's
 * own digest code knows MD5 only.
 *
 * Nonces are stateless until used: hex of a timestamp, 8 random bytes and
 * an HMAC-SHA-256 over both under a per-process secret, so any nonce can
 * be checked without having been stored, and a forged or foreign nonce is
 * refused. A nonce older than nonce_ttl_s is stale (401, stale=true: the
 * phone retries at once without asking its user). Replay protection
 * (RFC 7616 §3.3, §5.12): once a response has been accepted, its nonce is
 * remembered with the highest nonce-count seen; a response with qop must
 * carry a higher nc, one without qop may use its nonce once. The table of
 * used nonces is bounded (nonces live nonce_ttl_s) and swept each second.
 *
 * Outcomes, as the issue and RFC 3261 §22.3 want them: no credentials for
 * our realm → 401 with a challenge per algorithm, most preferred first
 * (RFC 8760 §2.4); unknown user, wrong password, or a user that is not the
 * AOR's → 403; stale or replayed nonce → 401 stale=true.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* First: it sets the typed callback arguments sofia-sip reads. */
#include "sipsvc.h"

#include <sofia-sip/auth_digest.h>
#include <sofia-sip/sip_header.h>

#include "registrar.h"

#define AUTH_MAX_USED		200000	/* used nonces remembered */
#define AUTH_SECRET_BYTES	32
#define NONCE_MAC_BYTES		16
#define NONCE_BYTES		(8 + 8 + NONCE_MAC_BYTES)

struct cred {
	struct hash_node	 node;
	char			*user;
	size_t			 user_len;
	char			*password;
};

struct used_nonce {
	struct hash_node	 node;
	char			 nonce[2 * NONCE_BYTES + 1];
	time_t			 expires_at;
	unsigned long		 nc;		/* highest nc seen; 0: no qop */
	struct used_nonce	*older, *newer;	/* by expiry (= use order) */
};

struct reg_auth {
	char			 realm[256];
	const char		*algs[REG_MAX_ALGS];
	size_t			 nalgs;
	unsigned		 nonce_ttl_s;
	unsigned char		 secret[AUTH_SECRET_BYTES];
	struct hash		 creds;
	struct hash		 used;
	size_t			 nused;
	struct used_nonce	*oldest, *newest;
};

static void	 used_unlink(struct reg_auth *, struct used_nonce *);

static int
cred_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct cred	*c = (const struct cred *)n;

	return c->user_len == len && memcmp(c->user, key, len) == 0;
}

static int
used_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct used_nonce	*u = (const struct used_nonce *)n;

	return strlen(u->nonce) == len && memcmp(u->nonce, key, len) == 0;
}

static int
auth_load(struct reg_auth *a, const char *path, char *err, size_t errlen)
{
	FILE		*f;
	char		*line = NULL, *colon, *end;
	size_t		 cap = 0, lineno = 0;
	ssize_t		 n;
	struct cred	*c;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "cannot read the credentials file %s: %s",
		    path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, f)) != -1) {
		lineno++;
		end = line + n;
		while (end > line && (end[-1] == '\n' || end[-1] == '\r'))
			*--end = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if ((colon = strchr(line, ':')) == NULL || colon == line) {
			snprintf(err, errlen, "%s:%zu: expected USER:PASSWORD",
			    path, lineno);
			goto fail;
		}
		*colon = '\0';
		if (hash_find(&a->creds, hash_bytes(line, strlen(line)), line,
		    strlen(line), cred_eq) != NULL) {
			snprintf(err, errlen, "%s:%zu: user %s appears twice",
			    path, lineno, line);
			goto fail;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL ||
		    (c->user = strdup(line)) == NULL ||
		    (c->password = strdup(colon + 1)) == NULL) {
			if (c != NULL) {
				free(c->user);
				free(c);
			}
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		c->user_len = strlen(c->user);
		if (hash_insert(&a->creds, &c->node,
		    hash_bytes(c->user, c->user_len)) != 0) {
			free(c->user);
			free(c->password);
			free(c);
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	free(line);
	fclose(f);
	return 0;
fail:
	free(line);
	fclose(f);
	return -1;
}

struct reg_auth *
auth_new(const struct reg_config *cfg, char *err, size_t errlen)
{
	struct reg_auth	*a;
	size_t		 i;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	hash_init(&a->creds);
	hash_init(&a->used);
	snprintf(a->realm, sizeof(a->realm), "%s", cfg->realm);
	a->nonce_ttl_s = cfg->nonce_ttl_s ? cfg->nonce_ttl_s : 300;
	for (i = 0; i < cfg->nalgs && i < REG_MAX_ALGS; i++) {
		if (strcasecmp(cfg->algs[i], "MD5") != 0 &&
		    strcasecmp(cfg->algs[i], "SHA-256") != 0) {
			snprintf(err, errlen, "unknown digest algorithm \"%s\" "
			    "(MD5 or SHA-256)", cfg->algs[i]);
			auth_free(a);
			return NULL;
		}
		a->algs[a->nalgs++] = strcasecmp(cfg->algs[i], "MD5") == 0 ?
		    "MD5" : "SHA-256";
	}
	if (a->nalgs == 0) {
		a->algs[0] = "SHA-256";
		a->algs[1] = "MD5";
		a->nalgs = 2;
	}
	if (getrandom(a->secret, sizeof(a->secret), 0) !=
	    (ssize_t)sizeof(a->secret)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		auth_free(a);
		return NULL;
	}
	if (cfg->credentials == NULL) {
		snprintf(err, errlen, "a realm needs a credentials file "
		    "(--credentials)");
		auth_free(a);
		return NULL;
	}
	if (auth_load(a, cfg->credentials, err, errlen) != 0) {
		auth_free(a);
		return NULL;
	}
	return a;
}

void
auth_free(struct reg_auth *a)
{
	struct hash_node	*n, *next;
	struct cred		*c;
	size_t			 pos = 0;

	if (a == NULL)
		return;
	for (n = hash_next(&a->creds, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&a->creds, &pos, n);
		c = (struct cred *)n;
		hash_remove(&a->creds, n);
		free(c->user);
		free(c->password);
		free(c);
	}
	hash_free(&a->creds);
	while (a->oldest != NULL)
		used_unlink(a, a->oldest);
	hash_free(&a->used);
	OPENSSL_cleanse(a->secret, sizeof(a->secret));
	free(a);
}

/* Digests. */

static void
hex(const unsigned char *p, size_t n, char *out)
{
	static const char	 digits[] = "0123456789abcdef";
	size_t			 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* H(s) of RFC 7616 §3.4.1, in lower-case hex. */
static int
hash_hex(const EVP_MD *md, const char *s, char out[65])
{
	unsigned char	 d[EVP_MAX_MD_SIZE];
	unsigned int	 dn = 0;

	if (EVP_Digest(s, strlen(s), d, &dn, md, NULL) != 1 || dn > 32)
		return -1;
	hex(d, dn, out);
	return 0;
}

int
auth_digest(const char *alg, const char *user, const char *realm,
    const char *password, const char *method, const char *uri,
    const char *nonce, const char *nc, const char *cnonce, const char *qop,
    char out[65])
{
	const EVP_MD	*md;
	char		 ha1[65], ha2[65], *buf;
	size_t		 len;
	int		 rc;

	if (alg == NULL || strcasecmp(alg, "MD5") == 0)
		md = EVP_md5();
	else if (strcasecmp(alg, "SHA-256") == 0)
		md = EVP_sha256();
	else
		return -1;
	len = strlen(user) + strlen(realm) + strlen(password) +
	    strlen(method) + strlen(uri) + strlen(nonce) +
	    (nc ? strlen(nc) : 0) + (cnonce ? strlen(cnonce) : 0) +
	    (qop ? strlen(qop) : 0) + 2 * 65 + 16;
	if ((buf = malloc(len)) == NULL)
		return -1;
	snprintf(buf, len, "%s:%s:%s", user, realm, password);
	rc = hash_hex(md, buf, ha1);
	snprintf(buf, len, "%s:%s", method, uri);
	rc |= hash_hex(md, buf, ha2);
	if (qop != NULL && *qop != '\0')
		snprintf(buf, len, "%s:%s:%s:%s:%s:%s", ha1, nonce,
		    nc ? nc : "", cnonce ? cnonce : "", qop, ha2);
	else
		snprintf(buf, len, "%s:%s:%s", ha1, nonce, ha2);
	rc |= hash_hex(md, buf, out);
	OPENSSL_cleanse(buf, len);
	free(buf);
	OPENSSL_cleanse(ha1, sizeof(ha1));
	return rc == 0 ? 0 : -1;
}

/* Nonces. */

static int
nonce_mac(struct reg_auth *a, const unsigned char *body, size_t n,
    unsigned char mac[NONCE_MAC_BYTES])
{
	unsigned char	 full[EVP_MAX_MD_SIZE];
	size_t		 outlen = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, a->secret,
	    sizeof(a->secret), body, n, full, sizeof(full), &outlen) == NULL ||
	    outlen < NONCE_MAC_BYTES)
		return -1;
	memcpy(mac, full, NONCE_MAC_BYTES);
	return 0;
}

static int
nonce_make(struct reg_auth *a, time_t now, char out[2 * NONCE_BYTES + 1])
{
	unsigned char	 b[NONCE_BYTES];
	uint64_t	 t = (uint64_t)now;
	int		 i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(t >> (56 - 8 * i));
	if (getrandom(b + 8, 8, 0) != 8 || nonce_mac(a, b, 16, b + 16) != 0)
		return -1;
	hex(b, sizeof(b), out);
	return 0;
}

/* 1: ours and fresh; 0: ours but stale; -1: not ours. */
static int
nonce_check(struct reg_auth *a, const char *nonce, time_t now)
{
	unsigned char	 b[NONCE_BYTES], mac[NONCE_MAC_BYTES];
	uint64_t	 t = 0;
	int		 i, hi, lo;

	if (strlen(nonce) != 2 * NONCE_BYTES)
		return -1;
	for (i = 0; i < NONCE_BYTES; i++) {
		hi = isxdigit((unsigned char)nonce[2 * i]) ?
		    (isdigit((unsigned char)nonce[2 * i]) ? nonce[2 * i] - '0' :
		    tolower((unsigned char)nonce[2 * i]) - 'a' + 10) : -1;
		lo = isxdigit((unsigned char)nonce[2 * i + 1]) ?
		    (isdigit((unsigned char)nonce[2 * i + 1]) ?
		    nonce[2 * i + 1] - '0' :
		    tolower((unsigned char)nonce[2 * i + 1]) - 'a' + 10) : -1;
		if (hi < 0 || lo < 0)
			return -1;
		b[i] = (unsigned char)(hi * 16 + lo);
	}
	if (nonce_mac(a, b, 16, mac) != 0 ||
	    CRYPTO_memcmp(mac, b + 16, NONCE_MAC_BYTES) != 0)
		return -1;
	for (i = 0; i < 8; i++)
		t = (t << 8) | b[i];
	if ((int64_t)t > (int64_t)now + 5 ||
	    (int64_t)t + (int64_t)a->nonce_ttl_s < (int64_t)now)
		return 0;
	return 1;
}

static void
used_unlink(struct reg_auth *a, struct used_nonce *u)
{
	if (u->older != NULL)
		u->older->newer = u->newer;
	else
		a->oldest = u->newer;
	if (u->newer != NULL)
		u->newer->older = u->older;
	else
		a->newest = u->older;
	hash_remove(&a->used, &u->node);
	a->nused--;
	free(u);
}

void
auth_expire(struct reg_auth *a, time_t now)
{
	/* Nonces are used in time order and all live nonce_ttl_s, so the
	 * list is in expiry order too. */
	while (a->oldest != NULL && a->oldest->expires_at <= now)
		used_unlink(a, a->oldest);
}

/* Records a use of nonce with nc (0 for no qop). Returns 1 when fresh,
 * 0 for a replay, -1 when the table is full (answered as stale: the
 * phone gets a new nonce, and the table drains as nonces age). */
static int
nonce_use(struct reg_auth *a, const char *nonce, unsigned long nc, int qop,
    time_t now)
{
	struct used_nonce	*u;
	size_t			 len = strlen(nonce);
	uint64_t		 hv = hash_bytes(nonce, len);

	u = (struct used_nonce *)hash_find(&a->used, hv, nonce, len, used_eq);
	if (u != NULL) {
		if (!qop || nc <= u->nc)
			return 0;
		u->nc = nc;
		return 1;
	}
	if (a->nused >= AUTH_MAX_USED || (u = calloc(1, sizeof(*u))) == NULL)
		return -1;
	memcpy(u->nonce, nonce, len + 1);
	u->nc = qop ? nc : 0;
	u->expires_at = now + (time_t)a->nonce_ttl_s + 5;
	if (hash_insert(&a->used, &u->node, hv) != 0) {
		free(u);
		return -1;
	}
	u->older = a->newest;
	if (a->newest != NULL)
		a->newest->newer = u;
	else
		a->oldest = u;
	a->newest = u;
	a->nused++;
	return 1;
}

/* Replies. */

static int
challenge(struct reg_auth *a, su_home_t *home, time_t now, int stale,
    struct reg_reply *rep, const char *why)
{
	char			 nonce[2 * NONCE_BYTES + 1];
	sip_www_authenticate_t	*h, **tail = &rep->challenges;
	size_t			 i;

	rep->status = 401;
	rep->phrase = NULL;
	rep->why = why;
	if (nonce_make(a, now, nonce) != 0) {
		rep->status = 500;
		rep->why = "cannot make a nonce";
		return -1;
	}
	for (i = 0; i < a->nalgs; i++) {
		h = sip_www_authenticate_format(home, "Digest realm=\"%s\", "
		    "nonce=\"%s\", algorithm=%s, qop=\"auth\"%s", a->realm,
		    nonce, a->algs[i], stale ? ", stale=true" : "");
		if (h == NULL)
			continue;
		*tail = h;
		tail = &h->au_next;
	}
	return -1;
}

static int
refuse(struct reg_reply *rep, int status, const char *phrase,
    const char *why)
{
	rep->status = status;
	rep->phrase = phrase;
	rep->why = why;
	return -1;
}

/* sofia-sip leaves quoted values quoted in some versions; take them out
 * into home. */
static const char *
unq(su_home_t *home, const char *s)
{
	size_t	 n;
	char	*p;

	if (s == NULL || s[0] != '"')
		return s;
	n = strlen(s);
	if (n < 2 || s[n - 1] != '"')
		return s;
	if ((p = su_strndup(home, s + 1, n - 2)) == NULL)
		return s;
	return p;
}

int
auth_check(struct reg_auth *a, su_home_t *home, const sip_t *sip,
    const char *aor_user, time_t now, struct reg_reply *rep)
{
	const sip_authorization_t	*au;
	auth_response_t			 ar;
	const struct cred		*c;
	const char			*alg, *realm, *nonce, *user, *uri;
	const char			*resp, *qop, *nc, *cnonce;
	char				 want[65];
	unsigned long			 ncv = 0;
	size_t				 i;
	int				 st, used;
	url_t				*du;

	for (au = sip->sip_authorization; au != NULL; au = au->au_next) {
		if (au->au_scheme == NULL ||
		    strcasecmp(au->au_scheme, "Digest") != 0)
			continue;
		memset(&ar, 0, sizeof(ar));
		ar.ar_size = sizeof(ar);
		if (auth_digest_response_get(home, &ar, au->au_params) < 0)
			continue;
		realm = unq(home, ar.ar_realm);
		if (realm != NULL && strcmp(realm, a->realm) == 0)
			break;
	}
	if (au == NULL)
		return challenge(a, home, now, 0, rep,
		    "no credentials for our realm");

	user = unq(home, ar.ar_username);
	nonce = unq(home, ar.ar_nonce);
	uri = unq(home, ar.ar_uri);
	resp = unq(home, ar.ar_response);
	qop = unq(home, ar.ar_qop);
	nc = unq(home, ar.ar_nc);
	cnonce = unq(home, ar.ar_cnonce);
	alg = unq(home, ar.ar_algorithm);
	if (alg == NULL)
		alg = "MD5";	/* RFC 7616 §3.3: the default */
	if (user == NULL || nonce == NULL || uri == NULL || resp == NULL)
		return refuse(rep, 400,
		    "Incomplete Authorization", "Authorization lacks "
		    "username, nonce, uri or response");
	for (i = 0; i < a->nalgs; i++)
		if (strcasecmp(alg, a->algs[i]) == 0)
			break;
	if (i == a->nalgs)
		return challenge(a, home, now, 0, rep,
		    "digest algorithm not offered");
	if (qop != NULL && strcasecmp(qop, "auth") != 0)
		return challenge(a, home, now, 0, rep, "qop other than auth");
	if (qop != NULL && (nc == NULL || cnonce == NULL ||
	    strlen(nc) != 8 || (ncv = strtoul(nc, NULL, 16)) == 0))
		return refuse(rep, 400, "Bad nonce-count",
		    "qop=auth without a valid nc and cnonce");
	/* The digest covers uri, so it must be this request's (RFC 7616
	 * §3.4.6): else a response could be replayed to another URI. */
	du = url_make(home, uri);
	if (du == NULL || url_cmp(du, sip->sip_request->rq_url) != 0)
		return refuse(rep, 400, "Digest URI Mismatch",
		    "digest uri differs from the Request-URI");
	if ((st = nonce_check(a, nonce, now)) < 0)
		return challenge(a, home, now, 0, rep, "nonce not ours");
	c = (const struct cred *)hash_find(&a->creds,
	    hash_bytes(user, strlen(user)), user, strlen(user), cred_eq);
	if (c == NULL)
		return refuse(rep, 403, NULL, "unknown user");
	if (auth_digest(alg, user, a->realm, c->password,
	    sip->sip_request->rq_method_name, uri, nonce, nc, cnonce, qop,
	    want) != 0)
		return refuse(rep, 500, NULL,
		    "cannot compute the digest");
	if (strlen(resp) != strlen(want) ||
	    CRYPTO_memcmp(want, resp, strlen(want)) != 0) {
		/* Case of hex digits is not significant. */
		for (i = 0; resp[i] != '\0' && want[i] != '\0' &&
		    tolower((unsigned char)resp[i]) == want[i]; i++)
			;
		if (resp[i] != '\0' || want[i] != '\0')
			return refuse(rep, 403, NULL,
			    "wrong credentials");
	}
	if (st == 0)
		return challenge(a, home, now, 1, rep, "stale nonce");
	if (aor_user == NULL || strcmp(user, aor_user) != 0)
		return refuse(rep, 403, NULL,
		    "user may not register this AOR");
	if ((used = nonce_use(a, nonce, ncv, qop != NULL, now)) <= 0)
		return challenge(a, home, now, 1, rep, used == 0 ?
		    "replayed nonce" : "too many nonces in use");
	return 0;
}
