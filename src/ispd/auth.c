/*
 * auth: who a session is. Shared secrets per client name, from the
 * credentials file, proved by a challenge-response in the handshake
 * (docs/PROTOCOL.md "Authentication"):
 *
 *	C: HELLO     caps AUTH, name
 *	S: CHALLENGE 32 random bytes
 *	C: AUTH      32 random bytes of its own, HMAC-SHA256(secret, input)
 *	S: WELCOME, or ERROR AUTH and the end of the session
 *
 * The secret never crosses the wire. Both nonces make every exchange
 * different (a recorded AUTH is worth nothing later), and on TLS the MAC
 * also covers keying material exported from the TLS session (RFC 5705
 * "channel binding"), so an AUTH cannot be relayed into another
 * connection. The MAC is compared in constant time (CRYPTO_memcmp), and
 * an unknown name costs the same work as a wrong secret, so neither
 * timing nor the answer tells a prober which names exist; the log does
 * tell the operator which it was.
 *
 * A session with a verified client certificate (tls.c) is not
 * challenged: its identity is the certificate's name. One that does not
 * authenticate is "anonymous", which `auth required` (the default once
 * credentials or client certificates are configured) refuses.
 *
 * The HMAC is OpenSSL's; nothing here is hand-written crypto.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ispd.h"
#include "tls.h"

/* A secret shorter than this could be guessed offline from one recorded
 * plain-TCP exchange; 16 characters of `openssl rand -hex 16` are 128
 * bits. */
#define CRED_SECRET_MIN	16
#define CRED_SECRET_MAX	1024
#define CRED_LINE_MAX	4096

static struct creds	*running;
static int		 required;
static struct buf	 input;
static struct log_rate	 fail_rate;

/*
 * A key or secrets file must not be readable by every user: ispd refuses
 * to use one that is (world-readable, -writable or -executable), as ssh
 * refuses a private key. Group access is allowed, for the Debian way of
 * sharing keys with a group (ssl-cert). Returns 0, or -1 with err
 * saying what is wrong and what to do.
 */
static int
mode_check(const struct stat *st, const char *path, const char *what,
    char *err, size_t errsz)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errsz, "%s %s is not a regular file", what, path);
		return -1;
	}
	if (st->st_mode & S_IRWXO) {
		snprintf(err, errsz, "%s %s is accessible to every user (mode "
		    "%04o); ispd refuses to use it: chmod o-rwx %s", what,
		    path, (unsigned)(st->st_mode & 07777), path);
		return -1;
	}
	return 0;
}

int
file_check_private(const char *path, const char *what, char *err,
    size_t errsz)
{
	struct stat	 st;

	if (stat(path, &st) == -1) {
		snprintf(err, errsz, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	return mode_check(&st, path, what, err, errsz);
}

static int
cred_cmp(const void *a, const void *b)
{
	const struct cred	*x = a, *y = b;
	size_t			 n = x->name_len < y->name_len ? x->name_len :
				    y->name_len;
	int			 c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

void
creds_free(struct creds *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++) {
		OPENSSL_cleanse(c->v[i].secret, c->v[i].secret_len);
		free(c->v[i].secret);
		free(c->v[i].name);
	}
	free(c->v);
	free(c->file);
	free(c);
}

static int
cred_name_ok(const char *s, size_t len)
{
	size_t	 i;

	if (len < 1 || len > SESSION_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((uint8_t)s[i] <= 0x20 || (uint8_t)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* Parses one line "NAME SECRET" into c. Returns 0 (added, or a blank or
 * comment line), or -1 with msg filled. */
static int
creds_line(struct creds *c, char *p, int line, char *msg, size_t msgsz)
{
	struct cred	*v, cr;
	char		*name, *secret, *end;
	size_t		 i;

	p[strcspn(p, "\r\n")] = '\0';
	p += strspn(p, " \t");
	if (*p == '\0' || *p == '#')
		return 0;
	name = p;
	p += strcspn(p, " \t");
	if (*p == '\0') {
		snprintf(msg, msgsz, "expected NAME SECRET, found only a "
		    "name");
		return -1;
	}
	*p++ = '\0';
	secret = p + strspn(p, " \t");
	end = secret + strlen(secret);
	while (end > secret && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (!cred_name_ok(name, strlen(name))) {
		snprintf(msg, msgsz, "client name must be 1 to %d printable "
		    "characters", SESSION_NAME_MAX);
		return -1;
	}
	if (strcmp(name, ISPD_ANONYMOUS) == 0) {
		snprintf(msg, msgsz, "the name %s is reserved for sessions "
		    "that do not authenticate", ISPD_ANONYMOUS);
		return -1;
	}
	if (strcspn(secret, " \t") != strlen(secret)) {
		snprintf(msg, msgsz, "the secret of %s has a blank in it; "
		    "one line is NAME SECRET", name);
		return -1;
	}
	if (strlen(secret) < CRED_SECRET_MIN ||
	    strlen(secret) > CRED_SECRET_MAX) {
		snprintf(msg, msgsz, "the secret of %s is %zu characters; use "
		    "%d to %d (e.g. `openssl rand -hex 16`)", name,
		    strlen(secret), CRED_SECRET_MIN, CRED_SECRET_MAX);
		return -1;
	}
	for (i = 0; i < c->n; i++)
		if (strcmp(c->v[i].name, name) == 0) {
			snprintf(msg, msgsz, "%s is given twice (first on "
			    "line %d)", name, c->v[i].line);
			return -1;
		}
	memset(&cr, 0, sizeof(cr));
	cr.line = line;
	cr.name_len = strlen(name);
	cr.secret_len = strlen(secret);
	if ((cr.name = strdup(name)) == NULL ||
	    (cr.secret = malloc(cr.secret_len)) == NULL ||
	    (v = realloc(c->v, (c->n + 1) * sizeof(*v))) == NULL) {
		free(cr.name);
		free(cr.secret);
		snprintf(msg, msgsz, "out of memory");
		return -1;
	}
	memcpy(cr.secret, secret, cr.secret_len);
	c->v = v;
	c->v[c->n++] = cr;
	return 0;
}

/*
 * Reads the credentials file: one "NAME SECRET" a line, '#' comments.
 * A file others can read is refused. Each bad line goes to report (with
 * its line number); a problem with the file as a whole goes to err.
 * Returns the credentials, or NULL after reporting every error.
 */
struct creds *
creds_load(const char *path, void (*report)(void *, int, const char *),
    void *arg, char *err, size_t errsz)
{
	struct creds	*c;
	struct stat	 st;
	char		 line[CRED_LINE_MAX], msg[512];
	FILE		*f;
	int		 fd, n = 0, bad = 0;

	err[0] = '\0';
	/* Checked on the open file, so the file read is the one checked. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errsz, "cannot read credentials file %s: %s",
		    path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 ||
	    mode_check(&st, path, "credentials file", err, errsz) == -1) {
		if (err[0] == '\0')
			snprintf(err, errsz, "credentials file %s: %s", path,
			    strerror(errno));
		close(fd);
		return NULL;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		snprintf(err, errsz, "credentials file %s: %s", path,
		    strerror(errno));
		close(fd);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->file = strdup(path)) == NULL) {
		snprintf(err, errsz, "credentials file %s: out of memory",
		    path);
		creds_free(c);
		fclose(f);
		return NULL;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		n++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			report(arg, n, "line longer than 4095 characters");
			bad++;
			while (fgets(line, sizeof(line), f) != NULL &&
			    strchr(line, '\n') == NULL)
				;
			continue;
		}
		if (creds_line(c, line, n, msg, sizeof(msg)) == -1) {
			report(arg, n, msg);
			bad++;
		}
	}
	OPENSSL_cleanse(line, sizeof(line));
	if (ferror(f)) {
		snprintf(err, errsz, "cannot read credentials file %s: %s",
		    path, strerror(errno));
		bad++;
	}
	fclose(f);
	if (bad) {
		creds_free(c);
		return NULL;
	}
	if (c->n > 0)
		qsort(c->v, c->n, sizeof(*c->v), cred_cmp);
	return c;
}

const struct cred *
creds_find(const struct creds *c, const void *name, size_t len)
{
	struct cred	 key;

	if (c == NULL || c->n == 0)
		return NULL;
	key.name = (char *)(uintptr_t)name;
	key.name_len = len;
	return bsearch(&key, c->v, c->n, sizeof(*c->v), cred_cmp);
}

/* Puts credentials to use (NULL: none); takes them. Sessions that
 * authenticated with a secret that is gone or changed are ended. */
void
auth_set_creds(struct creds *c)
{
	struct creds	*old = running;

	running = c;
	session_creds_changed(old, c);
	creds_free(old);
}

void
auth_set_mode(int req)
{
	required = req;
}

static void
auth_anonymous(struct session *s)
{
	s->auth = SESSION_AUTH_NONE;
	s->owner.ident_len = strlen(ISPD_ANONYMOUS);
	memcpy(s->owner.ident, ISPD_ANONYMOUS, s->owner.ident_len + 1);
}

/*
 * The HELLO of s was valid: decides whether it must authenticate.
 * Returns 0 (WELCOME it now: its identity is set), 1 (a CHALLENGE is
 * queued; AUTH must come next), ISP_E_AUTH with why filled (refuse
 * it), or -1 (out of memory).
 */
int
auth_hello(struct session *s, uint32_t caps, char *why, size_t whysz)
{
	struct buf	 b;

	if (s->auth == SESSION_AUTH_CERT)
		return 0;
	if (running != NULL && (caps & PROTO_CAP_AUTH)) {
		if (RAND_bytes(s->nonce, sizeof(s->nonce)) != 1) {
			snprintf(why, whysz, "ispd cannot make a challenge "
			    "(no randomness)");
			log_warnx("RAND_bytes failed");
			return ISP_E_AUTH;
		}
		buf_init(&b);
		proto_put_challenge(&b, PROTO_AUTH_HMAC_SHA256, s->nonce);
		if (buf_failed(&b) || session_send(s, &b, 1) == -1) {
			buf_free(&b);
			return -1;
		}
		buf_free(&b);
		s->auth_wait = 1;
		return 1;
	}
	if (!required) {
		auth_anonymous(s);
		return 0;
	}
	ispd_stats.auth_failures++;
	if (running == NULL)
		snprintf(why, whysz, "ispd requires authentication by a TLS "
		    "client certificate; connect to its TLS port with one");
	else
		snprintf(why, whysz, "ispd requires authentication: give "
		    "client %s its shared secret (ispctl --secret-file) or a "
		    "TLS client certificate", s->owner.name);
	return ISP_E_AUTH;
}

/*
 * AUTH from s, which was sent a CHALLENGE. Returns 0 (its identity is
 * now its client name) or ISP_E_AUTH with why filled.
 */
int
auth_verify(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	static uint8_t		 dummy[CRED_SECRET_MIN];
	static int		 dummy_made;
	const struct cred	*c;
	uint8_t			 binding[PROTO_BINDING_BYTES];
	uint8_t			 mac[EVP_MAX_MD_SIZE];
	unsigned int		 maclen = 0;
	size_t			 blen = 0;
	uint64_t		 unlogged;
	int			 ok;

	s->auth_wait = 0;
	if (m->mech != PROTO_AUTH_HMAC_SHA256) {
		ispd_stats.auth_failures++;
		snprintf(why, whysz, "unknown authentication mechanism %u "
		    "(ispd knows %d, HMAC-SHA256)", m->mech,
		    PROTO_AUTH_HMAC_SHA256);
		return ISP_E_AUTH;
	}
	/* An unknown name costs what a wrong secret costs. */
	if (!dummy_made) {
		if (RAND_bytes(dummy, sizeof(dummy)) != 1)
			memset(dummy, 0x5a, sizeof(dummy));
		dummy_made = 1;
	}
	c = creds_find(running, s->owner.name, s->owner.name_len);
	if (s->tls != NULL) {
		if (tls_binding(s, binding, sizeof(binding)) == -1) {
			snprintf(why, whysz, "ispd cannot bind the "
			    "authentication to the TLS session");
			return ISP_E_AUTH;
		}
		blen = sizeof(binding);
	}
	input.len = 0;
	buf_clear_failed(&input);
	proto_auth_input(&input, s->nonce, m->nonce.p, s->owner.name,
	    s->owner.name_len, binding, blen);
	ok = !buf_failed(&input) && HMAC(EVP_sha256(),
	    c != NULL ? c->secret : dummy,
	    (int)(c != NULL ? c->secret_len : sizeof(dummy)), input.data,
	    input.len, mac, &maclen) != NULL && maclen == PROTO_MAC_BYTES;
	ok = ok && CRYPTO_memcmp(mac, m->mac.p, PROTO_MAC_BYTES) == 0 &&
	    c != NULL;
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(s->nonce, sizeof(s->nonce));
	if (!ok) {
		ispd_stats.auth_failures++;
		if (log_rate_ok(&fail_rate, &unlogged))
			log_warnx("session %" PRIu64 " (%s): authentication "
			    "of client %s failed: %s%s", s->owner.id,
			    s->owner.peer, s->owner.name, c == NULL ?
			    "no credentials for that name" : "wrong secret",
			    log_unlogged(unlogged, "failed"));
		snprintf(why, whysz, "authentication failed for client %s: "
		    "wrong name or secret", s->owner.name);
		return ISP_E_AUTH;
	}
	s->auth = SESSION_AUTH_SECRET;
	memcpy(s->owner.ident, s->owner.name, s->owner.name_len + 1);
	s->owner.ident_len = s->owner.name_len;
	return 0;
}

void
auth_free(void)
{
	creds_free(running);
	running = NULL;
	buf_free(&input);
}
