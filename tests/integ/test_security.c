/*
 * Security end to end (docs/SECURITY.md): the configuration file and its
 * check, shared-secret authentication, the rules (ACLs) before and after
 * a reload, TLS and mutual TLS, and the safe defaults, against real ispd
 * processes on loopback.
 *
 * Certificates are made here, with OpenSSL's library, into a scratch
 * directory: a CA, the server's certificate, a client certificate per
 * case (valid, expired, signed by a CA ispd does not trust). The clients
 * are raw: frames from the shared codec over a socket or an OpenSSL
 * session, and the MAC of AUTH computed here from the specification.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proto.h"
#include "testutil.h"

#define E_AUTH		18
#define E_DENIED	19
#define WAIT_MS		5000

/* The scratch directory and what is in it. */
static char	 dir[64];
static char	 ca_crt[128], srv_crt[128], srv_key[128];
static char	 cli_crt[128], cli_key[128];		/* CN bgw-1 */
static char	 exp_crt[128], exp_key[128];		/* CN bgw-1, expired */
static char	 rogue_crt[128], rogue_key[128];	/* another CA's */
static char	 secrets[128];
static int	 serial = 1;
static char	 lib_err[1024];	/* the last refusal lib_connect() saw */

/* Secrets of the credentials file. */
#define SECRET_BGW1	"bgw-1-0123456789abcdef"
#define SECRET_BGW2	"bgw-2-0123456789abcdef"
#define SECRET_AST1	"ast-1-0123456789abcdef"
#define SECRET_AST2	"ast-2-0123456789abcdef"

/* --- certificates ------------------------------------------------- */

static void
ext_add(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION	*e;

	assert_non_null(e = X509V3_EXT_conf_nid(NULL, ctx, nid, value));
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for key, valid from now + from_s to now + to_s, signed
 * by issuer (NULL: self-signed). */
static X509 *
cert_make(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey,
    long from_s, long to_s, int ca, const char *san)
{
	X509		*x;
	X509_NAME	*n;
	X509V3_CTX	 ctx;

	assert_non_null(x = X509_new());
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from_s);
	X509_gmtime_adj(X509_getm_notAfter(x), to_s);
	X509_set_pubkey(x, key);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
	    (const unsigned char *)"ispd tests", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer)
	    : n);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	ext_add(x, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" :
	    "critical,CA:FALSE");
	ext_add(x, &ctx, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" :
	    "critical,digitalSignature");
	ext_add(x, &ctx, NID_subject_key_identifier, "hash");
	if (san != NULL)
		ext_add(x, &ctx, NID_subject_alt_name, san);
	assert_true(X509_sign(x, ikey != NULL ? ikey : key, EVP_sha256()) > 0);
	return x;
}

static void
pem_write(const char *crt, X509 *x, const char *keyp, EVP_PKEY *key)
{
	FILE	*f;

	assert_non_null(f = fopen(crt, "w"));
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	if (keyp == NULL)
		return;
	assert_non_null(f = fopen(keyp, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL,
	    NULL), 1);
	fclose(f);
	assert_int_equal(chmod(keyp, 0600), 0);
}

static void
file_write(const char *path, int mode, const char *text)
{
	FILE	*f;

	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
}

/* The credentials file every test starts with. */
static void
secrets_reset(void)
{
	file_write(secrets, 0600,
	    "# name secret\n"
	    "bgw-1 " SECRET_BGW1 "\n"
	    "bgw-2 " SECRET_BGW2 "\n"
	    "asterisk-1 " SECRET_AST1 "\n"
	    "asterisk-2 " SECRET_AST2 "\n");
}

static int
setup_pki(void **state)
{
	EVP_PKEY	*cak, *rk, *k;
	X509		*ca, *rca, *x;

	snprintf(dir, sizeof(dir), "/tmp/ispd-sec.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", dir);
	snprintf(srv_crt, sizeof(srv_crt), "%s/server.crt", dir);
	snprintf(srv_key, sizeof(srv_key), "%s/server.key", dir);
	snprintf(cli_crt, sizeof(cli_crt), "%s/bgw-1.crt", dir);
	snprintf(cli_key, sizeof(cli_key), "%s/bgw-1.key", dir);
	snprintf(exp_crt, sizeof(exp_crt), "%s/expired.crt", dir);
	snprintf(exp_key, sizeof(exp_key), "%s/expired.key", dir);
	snprintf(rogue_crt, sizeof(rogue_crt), "%s/rogue.crt", dir);
	snprintf(rogue_key, sizeof(rogue_key), "%s/rogue.key", dir);
	snprintf(secrets, sizeof(secrets), "%s/secrets", dir);

	assert_non_null(cak = EVP_EC_gen("P-256"));
	ca = cert_make("ispd test CA", cak, NULL, NULL, -3600, 86400, 1, NULL);
	pem_write(ca_crt, ca, NULL, NULL);
	assert_non_null(k = EVP_EC_gen("P-256"));
	x = cert_make("localhost", k, ca, cak, -3600, 86400, 0,
	    "DNS:localhost,IP:127.0.0.1");
	pem_write(srv_crt, x, srv_key, k);
	X509_free(x);
	EVP_PKEY_free(k);
	assert_non_null(k = EVP_EC_gen("P-256"));
	x = cert_make("bgw-1", k, ca, cak, -3600, 86400, 0, NULL);
	pem_write(cli_crt, x, cli_key, k);
	X509_free(x);
	EVP_PKEY_free(k);
	assert_non_null(k = EVP_EC_gen("P-256"));
	x = cert_make("bgw-1", k, ca, cak, -2 * 86400, -86400, 0, NULL);
	pem_write(exp_crt, x, exp_key, k);
	X509_free(x);
	EVP_PKEY_free(k);
	/* Same client name, another CA. */
	assert_non_null(rk = EVP_EC_gen("P-256"));
	rca = cert_make("rogue CA", rk, NULL, NULL, -3600, 86400, 1, NULL);
	assert_non_null(k = EVP_EC_gen("P-256"));
	x = cert_make("bgw-1", k, rca, rk, -3600, 86400, 0, NULL);
	pem_write(rogue_crt, x, rogue_key, k);
	X509_free(x);
	EVP_PKEY_free(k);
	X509_free(rca);
	EVP_PKEY_free(rk);
	X509_free(ca);
	EVP_PKEY_free(cak);

	secrets_reset();
	return 0;
}

static int
teardown_pki(void **state)
{
	char	 cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* --- raw clients -------------------------------------------------- */

struct peer {
	int		 fd;
	SSL_CTX		*ctx;
	SSL		*ssl;
	struct buf	 in;
	struct buf	 out;
	struct proto_msg m;		/* the last frame received */
	size_t		 mlen;
	char		 err[256];	/* why the TLS session failed */
};

static int
tcp_connect(int port)
{
	struct sockaddr_in	 sin;
	struct timeval		 tv = { 5, 0 };
	int			 fd;

	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	/* Bounds every blocking read, TLS included. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void
peer_plain(struct peer *p, int port)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->in);
	buf_init(&p->out);
	p->fd = tcp_connect(port);
}

static void
ssl_err(struct peer *p)
{
	unsigned long	 e = ERR_peek_last_error();

	if (e != 0)
		ERR_error_string_n(e, p->err, sizeof(p->err));
	else if (p->err[0] == '\0')
		snprintf(p->err, sizeof(p->err), "%s", errno ?
		    strerror(errno) : "closed");
	ERR_clear_error();
}

/* A TLS session with the server at port, which must show a certificate
 * for "localhost" from our CA. Returns 0, or -1 with p->err set. */
static int
peer_tls(struct peer *p, int port, const char *crt, const char *key)
{
	peer_plain(p, port);
	assert_non_null(p->ctx = SSL_CTX_new(TLS_client_method()));
	SSL_CTX_set_min_proto_version(p->ctx, TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_load_verify_locations(p->ctx, ca_crt, NULL),
	    1);
	SSL_CTX_set_verify(p->ctx, SSL_VERIFY_PEER, NULL);
	if (crt != NULL) {
		assert_int_equal(SSL_CTX_use_certificate_chain_file(p->ctx,
		    crt), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(p->ctx, key,
		    SSL_FILETYPE_PEM), 1);
	}
	assert_non_null(p->ssl = SSL_new(p->ctx));
	SSL_set_fd(p->ssl, p->fd);
	SSL_set_tlsext_host_name(p->ssl, "localhost");
	assert_int_equal(SSL_set1_host(p->ssl, "localhost"), 1);
	if (SSL_connect(p->ssl) != 1) {
		ssl_err(p);
		return -1;
	}
	return 0;
}

static void
peer_close(struct peer *p)
{
	if (p->ssl != NULL)
		SSL_free(p->ssl);
	if (p->ctx != NULL)
		SSL_CTX_free(p->ctx);
	if (p->fd != -1)
		close(p->fd);
	buf_free(&p->in);
	buf_free(&p->out);
	p->fd = -1;
	p->ssl = NULL;
	p->ctx = NULL;
}

/* Sends what p->out holds. Returns 0, or -1 when the peer is gone. */
static int
peer_flush(struct peer *p)
{
	int	 r;

	if (p->ssl != NULL) {
		r = SSL_write(p->ssl, p->out.data, (int)p->out.len);
		p->out.len = 0;
		if (r <= 0) {
			ssl_err(p);
			return -1;
		}
		return 0;
	}
	r = (int)send(p->fd, p->out.data, p->out.len, MSG_NOSIGNAL);
	p->out.len = 0;
	return r < 0 ? -1 : 0;
}

/*
 * The next frame into p->m. Returns 1; 0 when the connection ended
 * (p->err says why, for TLS); -1 after WAIT_MS of silence.
 */
static int
peer_recv(struct peer *p)
{
	struct pollfd	 pfd = { p->fd, POLLIN, 0 };
	const char	*why;
	size_t		 n;
	ssize_t		 r;

	if (p->mlen > 0) {
		buf_consume(&p->in, p->mlen);
		p->mlen = 0;
	}
	for (;;) {
		if (proto_frame_check(p->in.data, p->in.len,
		    PROTO_MAX_FRAME_BYTES, &n) == 1) {
			assert_int_equal(proto_decode(p->in.data, n, &p->m,
			    &why), 0);
			p->mlen = n;
			return 1;
		}
		if ((p->ssl == NULL || SSL_pending(p->ssl) == 0) &&
		    poll(&pfd, 1, WAIT_MS) != 1)
			return -1;
		assert_int_equal(buf_reserve(&p->in, 65536), 0);
		if (p->ssl != NULL) {
			r = SSL_read(p->ssl, p->in.data + p->in.len, 65536);
			if (r <= 0) {
				ssl_err(p);
				return 0;
			}
		} else {
			r = recv(p->fd, p->in.data + p->in.len, 65536, 0);
			if (r == 0 || (r == -1 && errno == ECONNRESET))
				return 0;
			assert_true(r > 0);
		}
		p->in.len += (size_t)r;
	}
}

/* The next frame, of type. */
static const struct proto_msg *
peer_expect(struct peer *p, int type)
{
	int	 r = peer_recv(p);

	if (r != 1)
		fail_msg("expected %s, got %s (%s)", proto_type_name(type),
		    r == 0 ? "the end of the connection" : "nothing", p->err);
	if (p->m.type != type)
		fail_msg("expected %s, got %s: %.*s", proto_type_name(type),
		    proto_type_name(p->m.type), (int)p->m.text.len,
		    (const char *)p->m.text.p);
	return &p->m;
}

static int
text_has(struct proto_bytes t, const char *s)
{
	return memmem(t.p, t.len, s, strlen(s)) != NULL;
}

/* An ERROR with code, for req_id, whose reason contains text. */
static void
peer_expect_error(struct peer *p, uint32_t req_id, int code, const char *text)
{
	const struct proto_msg	*m = peer_expect(p, PROTO_ERROR);

	if (m->code != code || m->req_id != req_id || (text != NULL &&
	    !text_has(m->text, text)))
		fail_msg("expected ERROR %d for %u with \"%s\", got %u for %u: "
		    "%.*s", code, req_id, text ? text : "", m->code, m->req_id,
		    (int)m->text.len, (const char *)m->text.p);
}

static void
peer_expect_eof(struct peer *p)
{
	int	 r = peer_recv(p);

	if (r != 0)
		fail_msg("expected the end of the connection, got %s",
		    r == 1 ? proto_type_name(p->m.type) : "silence");
}

/* PING gets its PONG: the session is alive and has handled everything
 * sent before. */
static void
peer_sync(struct peer *p)
{
	proto_put_ping(&p->out, PROTO_PING, 77);
	assert_int_equal(peer_flush(p), 0);
	assert_int_equal(peer_expect(p, PROTO_PONG)->token, 77);
}

static void
peer_hello(struct peer *p, const char *name, uint32_t caps)
{
	proto_put_hello(&p->out, PROTO_VERSION, caps, name);
	assert_int_equal(peer_flush(p), 0);
}

/* Answers a CHALLENGE for name with secret (binding: on TLS, bind the
 * MAC to the session as the protocol says, unless nobind). */
static void
peer_answer(struct peer *p, const char *name, const char *secret, int nobind)
{
	const struct proto_msg	*m = peer_expect(p, PROTO_CHALLENGE);
	uint8_t			 cnonce[PROTO_NONCE_BYTES], snonce[32];
	uint8_t			 binding[PROTO_BINDING_BYTES];
	uint8_t			 mac[EVP_MAX_MD_SIZE];
	unsigned int		 maclen;
	size_t			 blen = 0;
	struct buf		 in;

	assert_int_equal(m->mech, PROTO_AUTH_HMAC_SHA256);
	memcpy(snonce, m->nonce.p, sizeof(snonce));
	assert_int_equal(RAND_bytes(cnonce, sizeof(cnonce)), 1);
	if (p->ssl != NULL && !nobind) {
		assert_int_equal(SSL_export_keying_material(p->ssl, binding,
		    sizeof(binding), PROTO_BINDING_LABEL,
		    strlen(PROTO_BINDING_LABEL), NULL, 0, 0), 1);
		blen = sizeof(binding);
	}
	buf_init(&in);
	proto_auth_input(&in, snonce, cnonce, name, strlen(name), binding,
	    blen);
	assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    in.data, in.len, mac, &maclen));
	buf_free(&in);
	proto_put_auth(&p->out, PROTO_AUTH_HMAC_SHA256, cnonce, mac);
	assert_int_equal(peer_flush(p), 0);
}

/* A session as name, authenticated by secret when it is not NULL. */
static void
peer_login(struct peer *p, int port, const char *name, const char *secret)
{
	const struct proto_msg	*m;

	peer_plain(p, port);
	peer_hello(p, name, secret != NULL ? PROTO_CAP_AUTH : 0);
	if (secret != NULL)
		peer_answer(p, name, secret, 0);
	m = peer_expect(p, PROTO_WELCOME);
	assert_int_equal(m->caps & PROTO_CAP_AUTH, secret != NULL ?
	    PROTO_CAP_AUTH : 0);
}

static void
peer_announce(struct peer *p, uint32_t req, const char *table, const char *key)
{
	struct buf	 f;
	size_t		 s;

	buf_init(&f);
	s = proto_fields_begin(&f);
	proto_put_field(&f, "contact", 7, "sip:a@h", 7);
	proto_fields_end(&f, s, 1);
	proto_put_announce(&p->out, req, proto_bytes(table, strlen(table)), 0,
	    proto_bytes(key, strlen(key)), proto_bytes(f.data, f.len));
	buf_free(&f);
	assert_int_equal(peer_flush(p), 0);
}

static void
peer_subscribe(struct peer *p, uint32_t req, const char *table, int flags)
{
	proto_put_subscribe(&p->out, req, proto_bytes(table, strlen(table)),
	    (uint8_t)flags, proto_bytes("", 0));
	assert_int_equal(peer_flush(p), 0);
}

/* --- daemons ------------------------------------------------------ */

/* Writes a configuration file into the scratch directory. */
static const char *
conf_write(const char *name, const char *text)
{
	static char	 path[8][160];
	static int	 next;
	char		*p = path[next++ % 8];

	snprintf(p, 160, "%s/%s", dir, name);
	file_write(p, 0644, text);
	return p;
}

/* The port of the nth listener (0: the test's plain one). */
static int
ispd_port(struct ispd_proc *d, int nth)
{
	char	 path[160];
	int	 port = 0, i;
	FILE	*f;

	snprintf(path, sizeof(path), "%s/port", d->dir);
	assert_non_null(f = fopen(path, "r"));
	for (i = 0; i <= nth; i++)
		assert_int_equal(fscanf(f, "%d", &port), 1);
	fclose(f);
	return port;
}

/*
 * The line an operator reads, checked once a fact (an answer, a
 * counter) proved that what it tells of is past: ispd writes each line
 * with one write(2) before it answers or counts, so there is nothing to
 * wait for.
 */
static void
log_has(struct ispd_proc *d, const char *text)
{
	if (!ispd_log_has(d, text))
		fail_msg("ispd's log (%s) lacks \"%s\"", d->log, text);
}

/* A counter of QUERY STATS asked through p, -1 when ispd has none. */
static long long
peer_stat(struct peer *p, const char *name)
{
	const struct proto_msg	*m;
	struct proto_bytes	 rows, row;
	struct proto_field_iter	 it;
	struct proto_field	 f;
	char			 v[32];
	long long		 value = -1;

	proto_put_query(&p->out, 99, PROTO_QUERY_STATS);
	assert_int_equal(peer_flush(p), 0);
	m = peer_expect(p, PROTO_ROWS);
	rows = m->rows;
	while (proto_rows_next(&rows, &row)) {
		proto_fields_iter(&it, row);
		while (proto_fields_next(&it, &f))
			if (f.name.len == strlen(name) &&
			    memcmp(f.name.p, name, f.name.len) == 0 &&
			    f.value.len < sizeof(v)) {
				memcpy(v, f.value.p, f.value.len);
				v[f.value.len] = '\0';
				value = atoll(v);
			}
	}
	return value;
}

/* Asks p for a counter until it is want: for what no answer to p tells
 * (a signal, another connection's handshake). Fails after WAIT_MS. */
static void
peer_wait_stat(struct peer *p, const char *name, long long want)
{
	int64_t		 end = now_ms() + WAIT_MS;
	long long	 v;

	while ((v = peer_stat(p, name)) != want) {
		if (now_ms() > end)
			fail_msg("QUERY STATS %s is %lld, not %lld", name, v,
			    want);
		usleep(10000);
	}
}

/* Runs a shell command; its exit status, its output in out. */
static int
system_out(const char *cmd, char *out, size_t outsz)
{
	char	 line[512];
	size_t	 n = 0;
	FILE	*f;
	int	 st;

	assert_non_null(f = popen(cmd, "r"));
	out[0] = '\0';
	while (fgets(line, sizeof(line), f) != NULL && n + strlen(line) <
	    outsz) {
		strcat(out, line);
		n += strlen(line);
	}
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs ispd with args (NULL-terminated); its exit status and, in out,
 * what it wrote. */
static int
ispd_run(char *out, size_t outsz, ...)
{
	char		 cmd[2048];
	const char	*a;
	va_list		 ap;

	snprintf(cmd, sizeof(cmd), "%s", test_bin("ispd"));
	va_start(ap, outsz);
	while ((a = va_arg(ap, const char *)) != NULL) {
		strncat(cmd, " ", sizeof(cmd) - strlen(cmd) - 1);
		strncat(cmd, a, sizeof(cmd) - strlen(cmd) - 1);
	}
	va_end(ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	return system_out(cmd, out, outsz);
}

static void
out_has(const char *out, const char *text)
{
	if (strstr(out, text) == NULL)
		fail_msg("output lacks \"%s\":\n%s", text, out);
}

/* --- the configuration file --------------------------------------- */

/* examples/ispd.conf of the source tree the build directory is in
 * (build/ or build/asan/), or of the current directory. */
static const char *
example_path(void)
{
	static char	 path[PATH_MAX + 64];
	const char	*up[] = { "..", "../..", NULL };
	int		 i;

	for (i = 0; up[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s/examples/ispd.conf",
		    test_bin(""), up[i]);
		if (access(path, R_OK) == 0)
			return path;
	}
	return "examples/ispd.conf";
}

static void
test_check_config(void **state)
{
	const char	*bad, *good;
	char		 out[8192], line[256], cmd[8192];
	char		 open_key[160], bad_file[160];
	int		 rc;

	bad = conf_write("bad.conf",
	    "# a comment\n"
	    "listen 127.0.0.1:7460\n"
	    "lisen 127.0.0.1:7461\n"			/* 3 */
	    "hold soon\n"				/* 4 */
	    "limit max-sessions 0\n"			/* 5 */
	    "limit max-nothing 3\n"			/* 6 */
	    "listen-tls 127.0.0.1:7462\n"		/* 7: no cert */
	    "tls-require-client-cert yes\n"		/* 8: no CA */
	    "default perhaps\n"				/* 9 */
	    "allow bgw-* announce,fly SIP_REGISTRATION\n"	/* 10 */
	    "allow * subscribe BAD*NAME\n"		/* 11 */
	    "deny bgw-*\n"				/* 12 */
	    "hold 9\n"					/* 13 */
	    "hold 10\n");				/* 14 */
	rc = ispd_run(out, sizeof(out), "--check-config", bad, NULL);
	assert_int_equal(rc, 1);
	snprintf(line, sizeof(line), "%s:3: unknown directive 'lisen'", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:4: hold 'soon'", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:5: limit max-sessions '0'", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:6: unknown limit 'max-nothing'", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:7: listen-tls needs a certificate",
	    bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:8: tls-require-client-cert needs",
	    bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:9: default takes allow or deny", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:10: unknown operation 'fly'", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:11: table pattern 'BAD*NAME'", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:12: deny needs an identity", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:14: hold is given twice (first on "
	    "line 13)", bad);
	out_has(out, line);
	out_has(out, "ispd: 11 errors in the configuration");

	/* Errors in a file it names, with that file's lines. */
	file_write(secrets, 0600, "bgw-1 " SECRET_BGW1 "\n"
	    "bgw-2 short\n"
	    "bgw-1 " SECRET_BGW2 "\n"
	    "anonymous " SECRET_AST1 "\n");
	snprintf(line, sizeof(line), "credentials %s\n", secrets);
	bad = conf_write("creds.conf", line);
	rc = ispd_run(out, sizeof(out), "--check-config", bad, NULL);
	assert_int_equal(rc, 1);
	snprintf(line, sizeof(line), "%s:2: the secret of bgw-2 is 5 "
	    "characters", secrets);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:3: bgw-1 is given twice", secrets);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:4: the name anonymous is reserved",
	    secrets);
	out_has(out, line);
	secrets_reset();

	/* Every bad TLS file at the line that names it, in one run. */
	snprintf(open_key, sizeof(open_key), "%s/open.key", dir);
	file_write(open_key, 0644, "not a key\n");
	snprintf(bad_file, sizeof(bad_file), "%s/garbage.pem", dir);
	file_write(bad_file, 0600, "not a certificate, not a key\n");
	snprintf(out, sizeof(out),
	    "listen-tls 127.0.0.1:0\n"
	    "tls-cert %s/missing.crt\n"		/* 2: missing */
	    "tls-key %s\n"				/* 3: every user reads it */
	    "tls-ca %s\n",				/* 4: no certificate */
	    dir, open_key, bad_file);
	bad = conf_write("tls-files.conf", out);
	rc = ispd_run(out, sizeof(out), "--check-config", bad, NULL);
	assert_int_equal(rc, 1);
	snprintf(line, sizeof(line), "%s:2: cannot read the certificate", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:3: TLS key", bad);
	out_has(out, line);
	out_has(out, "is accessible to every user");
	snprintf(line, sizeof(line), "%s:4: cannot load the CA certificates",
	    bad);
	out_has(out, line);
	out_has(out, "ispd: 3 errors in the configuration");
	/* A certificate that is none, and a key that is none, each at its
	 * own line too. */
	snprintf(out, sizeof(out),
	    "listen-tls 127.0.0.1:0\n"
	    "tls-cert %s\n"				/* 2: no certificate */
	    "tls-key %s\n",				/* 3: no key */
	    bad_file, bad_file);
	bad = conf_write("tls-files2.conf", out);
	rc = ispd_run(out, sizeof(out), "--check-config", bad, NULL);
	assert_int_equal(rc, 1);
	snprintf(line, sizeof(line), "%s:2: cannot load the certificate", bad);
	out_has(out, line);
	snprintf(line, sizeof(line), "%s:3: cannot load the private key", bad);
	out_has(out, line);
	out_has(out, "ispd: 2 errors in the configuration");

	snprintf(out, sizeof(out),
	    "listen 127.0.0.1:0\n"
	    "listen-tls 127.0.0.1:0\n"
	    "tls-cert %s\n"
	    "tls-key %s\n"
	    "tls-ca %s\n"
	    "tls-require-client-cert yes\n"
	    "credentials secrets\n"		/* relative to the file */
	    "hold 3.5\n"
	    "limit max-sessions 100\n"
	    "default deny\n"
	    "allow bgw-* announce,create SIP_REGISTRATION\n"
	    "allow * subscribe ispd.sessions\n",
	    srv_crt, srv_key, ca_crt);
	good = conf_write("good.conf", out);
	rc = ispd_run(out, sizeof(out), "--check-config", good, NULL);
	if (rc != 0)
		fail_msg("--check-config of a good file: %s", out);
	out_has(out, "OK (2 listeners, 2 rules, 4 credentials)");

	/* The annotated example of the documentation is valid, with its
	 * files here. */
	snprintf(cmd, sizeof(cmd), "sed -e 's#/etc/ispd/server#%s/server#' "
	    "-e 's#/etc/ispd/clients-ca.crt#%s#' -e 's#/etc/ispd/secrets#%s#' "
	    "-e 's/^user ispd/user root/' %s > %s/example.conf", dir, ca_crt,
	    secrets, example_path(), dir);
	assert_int_equal(system(cmd), 0);
	snprintf(line, sizeof(line), "%s/example.conf", dir);
	rc = ispd_run(out, sizeof(out), "--check-config", line, NULL);
	if (rc != 0)
		fail_msg("--check-config of examples/ispd.conf: %s", out);
	out_has(out, "OK (2 listeners, 5 rules, 4 credentials)");
}

/* ispd refuses keys and secrets every user can read. */
static void
test_refuse_world_readable(void **state)
{
	char	 out[4096];
	int	 rc;

	assert_int_equal(chmod(secrets, 0644), 0);
	rc = ispd_run(out, sizeof(out), "--listen", "127.0.0.1:0",
	    "--credentials", secrets, NULL);
	assert_int_equal(chmod(secrets, 0600), 0);
	assert_int_equal(rc, 1);
	out_has(out, "is accessible to every user (mode 0644)");
	out_has(out, "not started");

	assert_int_equal(chmod(srv_key, 0604), 0);
	rc = ispd_run(out, sizeof(out), "--listen-tls", "127.0.0.1:0",
	    "--tls-cert", srv_crt, "--tls-key", srv_key, NULL);
	assert_int_equal(chmod(srv_key, 0600), 0);
	assert_int_equal(rc, 1);
	out_has(out, "TLS key");
	out_has(out, "is accessible to every user (mode 0604)");
}

/* --- authentication ----------------------------------------------- */

static void
test_auth_secret(void **state)
{
	struct ispd_proc	 d;
	struct peer		 p, q;
	struct isp_options	 o;
	isp_client		*c;

	ispd_start(&d, "--credentials", secrets, NULL);

	/* The right secret. */
	peer_login(&p, d.port, "bgw-1", SECRET_BGW1);
	peer_announce(&p, 1, "SIP_REGISTRATION", "alice");
	peer_sync(&p);
	log_has(&d, "identity bgw-1 (shared secret)");

	/* A wrong secret, and an unknown name: the same answer. */
	peer_plain(&q, d.port);
	peer_hello(&q, "bgw-2", PROTO_CAP_AUTH);
	peer_answer(&q, "bgw-2", SECRET_BGW1, 0);
	peer_expect_error(&q, 0, E_AUTH, "authentication failed for client "
	    "bgw-2: wrong name or secret");
	peer_expect_eof(&q);
	peer_close(&q);
	/* Counted; the log tells the operator what the client is not
	 * told: which of the two was wrong. */
	assert_int_equal(peer_stat(&p, "auth_failures"), 1);
	log_has(&d, "authentication of client bgw-2 failed: wrong secret");
	peer_plain(&q, d.port);
	peer_hello(&q, "bgw-9", PROTO_CAP_AUTH);
	peer_answer(&q, "bgw-9", SECRET_BGW1, 0);
	peer_expect_error(&q, 0, E_AUTH, "authentication failed for client "
	    "bgw-9: wrong name or secret");
	peer_expect_eof(&q);
	peer_close(&q);

	/* A client that cannot authenticate, and a request instead of
	 * AUTH. */
	peer_plain(&q, d.port);
	peer_hello(&q, "bgw-1", 0);
	peer_expect_error(&q, 0, E_AUTH, "ispd requires authentication");
	peer_expect_eof(&q);
	peer_close(&q);
	peer_plain(&q, d.port);
	peer_hello(&q, "bgw-1", PROTO_CAP_AUTH);
	peer_expect(&q, PROTO_CHALLENGE);
	peer_announce(&q, 5, "SIP_REGISTRATION", "bob");
	peer_expect_error(&q, 0, ISP_E_NOT_READY, "must be AUTH");
	peer_expect_eof(&q);
	peer_close(&q);

	/* libisp without a secret: refused, with the reason. */
	isp_options_init(&o);
	o.server = d.addr;
	o.name = "asterisk-1";
	assert_non_null(c = isp_new(&o));
	assert_int_equal(isp_connect(c), E_AUTH);
	if (strstr(isp_errmsg(c), "requires authentication") == NULL)
		fail_msg("isp_errmsg: %s", isp_errmsg(c));
	isp_free(c);

	/* The first session was not disturbed; each refusal was counted
	 * (a request instead of AUTH is a protocol error, not one). */
	peer_sync(&p);
	assert_int_equal(peer_stat(&p, "auth_failures"), 4);
	peer_close(&p);
	assert_int_equal(ispd_stop(&d), 0);
}

/* auth optional: a client without a secret is "anonymous". */
static void
test_auth_optional(void **state)
{
	struct ispd_proc	 d;
	struct peer		 p, q;
	const char		*conf;
	char			 text[512];

	snprintf(text, sizeof(text),
	    "credentials %s\n"
	    "auth optional\n"
	    "default deny\n"
	    "allow anonymous subscribe PUBLIC\n"
	    "allow bgw-* all *\n", secrets);
	conf = conf_write("optional.conf", text);
	ispd_start(&d, "--config", conf, NULL);
	peer_login(&p, d.port, "anyone", NULL);
	/* Subscribing would create it, and anonymous may not create. */
	peer_subscribe(&p, 1, "PUBLIC", 0);
	peer_expect_error(&p, 1, E_DENIED, "anonymous may not create table "
	    "PUBLIC: no rule allows it (default deny");
	peer_login(&q, d.port, "bgw-2", SECRET_BGW2);
	peer_announce(&q, 1, "PUBLIC", "k");
	peer_sync(&q);
	peer_subscribe(&p, 2, "PUBLIC", 0);
	assert_int_equal(peer_expect(&p, PROTO_EV_ANNOUNCE)->seq, 1);
	peer_expect(&p, PROTO_EV_END);
	peer_announce(&p, 3, "PUBLIC", "k");
	peer_expect_error(&p, 3, E_DENIED, "anonymous may not announce into "
	    "table PUBLIC: no rule allows it (default deny");
	peer_close(&p);
	peer_close(&q);
	assert_int_equal(ispd_stop(&d), 0);
}

/* --- authorization ------------------------------------------------ */

static const char *acl_rules =
    "default deny\n"					/* line 2 */
    "allow bgw-* announce,create SIP_REGISTRATION\n"	/* 3 */
    "deny asterisk-2 subscribe INSTANCES-private\n"	/* 4 */
    "allow asterisk-* subscribe SIP_REGISTRATION INSTANCES*\n"	/* 5 */
    "allow asterisk-* announce,create INSTANCES*\n"	/* 6 */
    "allow * subscribe ispd.sessions\n";		/* 7 */

static void
acl_conf(char *text, size_t sz, const char *rules)
{
	snprintf(text, sz, "credentials %s\n%s", secrets, rules);
}

static void
test_acl(void **state)
{
	struct ispd_proc	 d;
	struct peer		 bgw, a1, a2;
	const struct proto_msg	*m;
	const char		*conf;
	char			 text[1024], rule[512];
	struct proto_bytes	 rows, row;
	int			 nrows;

	acl_conf(text, sizeof(text), acl_rules);
	conf = conf_write("acl.conf", text);
	ispd_start(&d, "--config", conf, NULL);
	peer_login(&bgw, d.port, "bgw-1", SECRET_BGW1);
	peer_login(&a1, d.port, "asterisk-1", SECRET_AST1);
	peer_login(&a2, d.port, "asterisk-2", SECRET_AST2);

	/* Line 3: bgw-* may announce into (and create) SIP_REGISTRATION,
	 * and nothing else. */
	peer_announce(&bgw, 1, "SIP_REGISTRATION", "alice");
	peer_sync(&bgw);
	peer_announce(&bgw, 2, "INSTANCES-1", "x");
	snprintf(rule, sizeof(rule), "bgw-1 may not announce into table "
	    "INSTANCES-1: no rule allows it (default deny, %s:2)", conf);
	peer_expect_error(&bgw, 2, E_DENIED, rule);
	peer_subscribe(&bgw, 3, "SIP_REGISTRATION", 0);
	peer_expect_error(&bgw, 3, E_DENIED, "bgw-1 may not subscribe to "
	    "table SIP_REGISTRATION");
	peer_sync(&bgw);

	/* Line 5: asterisk-* subscribe to SIP_REGISTRATION, not announce. */
	peer_subscribe(&a1, 1, "SIP_REGISTRATION", 0);
	m = peer_expect(&a1, PROTO_EV_ANNOUNCE);
	assert_true(text_has(m->key, "alice"));
	peer_expect(&a1, PROTO_EV_END);
	peer_announce(&a1, 2, "SIP_REGISTRATION", "mallory");
	peer_expect_error(&a1, 2, E_DENIED, "asterisk-1 may not announce "
	    "into table SIP_REGISTRATION");

	/* Line 4 comes first: asterisk-2 may not read INSTANCES-private,
	 * though line 5 would allow it. */
	peer_announce(&a1, 3, "INSTANCES-private", "i1");
	peer_sync(&a1);
	peer_subscribe(&a2, 1, "INSTANCES-private", 0);
	snprintf(rule, sizeof(rule), "asterisk-2 may not subscribe to table "
	    "INSTANCES-private: denied by rule %s:4 (deny asterisk-2 "
	    "subscribe INSTANCES-private)", conf);
	peer_expect_error(&a2, 1, E_DENIED, rule);
	/* A prefix rule (line 5) and the ONCE read. */
	peer_subscribe(&a2, 2, "INSTANCES-1", PROTO_SUB_ONCE);
	assert_int_equal(peer_expect(&a2, PROTO_EV_END)->count, 0);

	/* Creating a table is a right of its own: line 5 lets asterisk-*
	 * subscribe to INSTANCES*, but only line 6 lets it create. A
	 * bgw-* may not create INSTANCES-new by subscribing. */
	peer_subscribe(&bgw, 4, "INSTANCES-new", 0);
	peer_expect_error(&bgw, 4, E_DENIED, "may not subscribe to");
	peer_subscribe(&a2, 3, "INSTANCES-new", 0);
	peer_expect(&a2, PROTO_EV_END);

	/* The tables a session may see, and only those. */
	proto_put_query(&bgw.out, 9, PROTO_QUERY_TABLES);
	assert_int_equal(peer_flush(&bgw), 0);
	m = peer_expect(&bgw, PROTO_ROWS);
	rows = m->rows;
	for (nrows = 0; proto_rows_next(&rows, &row); nrows++)
		assert_true(text_has(row, "SIP_REGISTRATION") ||
		    text_has(row, "ispd.sessions"));
	assert_int_equal(nrows, 2);

	/* Counted (the five refusals above), and logged with the rule. */
	assert_int_equal(peer_stat(&bgw, "denied"), 5);
	log_has(&d, "refused: bgw-1 may not announce into table INSTANCES-1");

	peer_close(&bgw);
	peer_close(&a1);
	peer_close(&a2);
	assert_int_equal(ispd_stop(&d), 0);
}

/* SIGHUP: new rules apply to sessions up, which are not dropped; a
 * subscription no longer allowed ends with a clear reason; revoked
 * credentials end their sessions; a broken file changes nothing. */
static void
test_acl_reload(void **state)
{
	struct ispd_proc	 d;
	struct peer		 bgw, bgw2, a1;
	const struct proto_msg	*m;
	const char		*conf;
	char			 text[1024], rule[512];

	acl_conf(text, sizeof(text), acl_rules);
	conf = conf_write("reload.conf", text);
	ispd_start(&d, "--config", conf, NULL);
	peer_login(&bgw, d.port, "bgw-1", SECRET_BGW1);
	peer_login(&bgw2, d.port, "bgw-2", SECRET_BGW2);
	peer_login(&a1, d.port, "asterisk-1", SECRET_AST1);
	peer_announce(&bgw, 1, "SIP_REGISTRATION", "alice");
	peer_sync(&bgw);
	peer_subscribe(&a1, 7, "SIP_REGISTRATION", 0);
	peer_expect(&a1, PROTO_EV_ANNOUNCE);
	peer_expect(&a1, PROTO_EV_END);
	peer_announce(&bgw, 2, "INSTANCES-1", "x");
	peer_expect_error(&bgw, 2, E_DENIED, NULL);

	/* asterisk-* loses SIP_REGISTRATION (the deny comes first);
	 * bgw-* gains INSTANCES*. */
	acl_conf(text, sizeof(text),
	    "default deny\n"					/* 2 */
	    "deny asterisk-* subscribe SIP_REGISTRATION\n"	/* 3 */
	    "allow bgw-* announce,create SIP_REGISTRATION INSTANCES*\n"
	    "allow asterisk-* subscribe SIP_REGISTRATION INSTANCES*\n");
	file_write(conf, 0644, text);
	ispd_signal(&d, SIGHUP);
	snprintf(rule, sizeof(rule), "subscription ended by new rules: "
	    "asterisk-1 may not subscribe to table SIP_REGISTRATION: denied by "
	    "rule %s:3 (deny asterisk-* subscribe SIP_REGISTRATION)", conf);
	peer_expect_error(&a1, 7, E_DENIED, rule);
	/* The ERROR is sent as the reload applies the rules: by the time
	 * a1 asks, the reload is done and counted. */
	assert_int_equal(peer_stat(&a1, "reloads_ok"), 1);
	assert_int_equal(peer_stat(&a1, "reloads_failed"), 0);
	log_has(&d, "reload done: 3 rules, 4 credentials");
	/* Still up, and no longer sent SIP_REGISTRATION's events. */
	peer_sync(&a1);
	peer_announce(&bgw, 3, "SIP_REGISTRATION", "bob");
	peer_announce(&bgw, 4, "INSTANCES-1", "x");
	peer_sync(&bgw);
	peer_sync(&a1);
	peer_subscribe(&a1, 8, "SIP_REGISTRATION", 0);
	peer_expect_error(&a1, 8, E_DENIED, "denied by rule");
	peer_subscribe(&a1, 9, "INSTANCES-1", 0);
	m = peer_expect(&a1, PROTO_EV_ANNOUNCE);
	assert_true(text_has(m->key, "x"));
	peer_expect(&a1, PROTO_EV_END);

	/* A broken file: the running configuration stays. */
	file_write(conf, 0644, "default deny\nallow bgw-* fly *\n");
	ispd_signal(&d, SIGHUP);
	peer_wait_stat(&bgw, "reloads_failed", 1);
	assert_int_equal(peer_stat(&bgw, "reloads_ok"), 1);
	peer_announce(&bgw, 5, "SIP_REGISTRATION", "carol");
	peer_sync(&bgw);

	/* bgw-2's secret is revoked: its session ends. */
	acl_conf(text, sizeof(text), "allow * all *\n");
	file_write(conf, 0644, text);
	file_write(secrets, 0600, "bgw-1 " SECRET_BGW1 "\n"
	    "asterisk-1 " SECRET_AST1 "\n");
	ispd_signal(&d, SIGHUP);
	peer_expect_error(&bgw2, 0, E_AUTH, "the credentials of client bgw-2 "
	    "were revoked or changed");
	peer_expect_eof(&bgw2);
	peer_sync(&bgw);
	peer_sync(&a1);
	assert_int_equal(peer_stat(&bgw, "reloads_ok"), 2);
	assert_int_equal(peer_stat(&bgw, "reloads_failed"), 1);
	secrets_reset();

	peer_close(&bgw);
	peer_close(&bgw2);
	peer_close(&a1);
	assert_int_equal(ispd_stop(&d), 0);
}

/* --- TLS ---------------------------------------------------------- */

static void
test_tls(void **state)
{
	struct ispd_proc	 d;
	struct peer		 p, q;
	char			 key[32];
	int			 port, i, n;

	ispd_start(&d, "--listen-tls", "127.0.0.1:0", "--tls-cert", srv_crt,
	    "--tls-key", srv_key, NULL);
	port = ispd_port(&d, 1);
	if (peer_tls(&p, port, NULL, NULL) == -1)
		fail_msg("TLS handshake: %s", p.err);
	assert_string_equal(SSL_get_version(p.ssl), "TLSv1.3");
	peer_hello(&p, "bgw-1", 0);
	peer_expect(&p, PROTO_WELCOME);
	/* Enough for many records each way, and a snapshot in slices. */
	for (i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "user-%d", i);
		peer_announce(&p, (uint32_t)i + 1, "SIP_REGISTRATION", key);
	}
	peer_sync(&p);
	if (peer_tls(&q, port, NULL, NULL) == -1)
		fail_msg("TLS handshake: %s", q.err);
	peer_hello(&q, "asterisk-1", 0);
	peer_expect(&q, PROTO_WELCOME);
	peer_subscribe(&q, 1, "SIP_REGISTRATION", 0);
	for (n = 0; peer_recv(&q) == 1 && q.m.type == PROTO_EV_ANNOUNCE; n++)
		;
	assert_int_equal(q.m.type, PROTO_EV_END);
	assert_int_equal(n, 3000);
	assert_int_equal(q.m.count, 3000);
	peer_announce(&p, 9999, "SIP_REGISTRATION", "live");
	assert_true(text_has(peer_expect(&q, PROTO_EV_ANNOUNCE)->key, "live"));

	/* TLS 1.2 is the least accepted. */
	peer_close(&q);
	peer_plain(&q, port);
	assert_non_null(q.ctx = SSL_CTX_new(TLS_client_method()));
	SSL_CTX_set_max_proto_version(q.ctx, TLS1_2_VERSION);
	assert_non_null(q.ssl = SSL_new(q.ctx));
	SSL_set_fd(q.ssl, q.fd);
	assert_int_equal(SSL_connect(q.ssl), 1);
	assert_string_equal(SSL_get_version(q.ssl), "TLSv1.2");
	peer_hello(&q, "tls12", 0);
	peer_expect(&q, PROTO_WELCOME);

	/* TLS 1.1 is refused. */
	peer_close(&q);
	peer_plain(&q, port);
	assert_non_null(q.ctx = SSL_CTX_new(TLS_client_method()));
	SSL_CTX_set_max_proto_version(q.ctx, TLS1_1_VERSION);
	SSL_CTX_set_security_level(q.ctx, 0);
	assert_non_null(q.ssl = SSL_new(q.ctx));
	SSL_set_fd(q.ssl, q.fd);
	assert_int_not_equal(SSL_connect(q.ssl), 1);
	peer_close(&q);
	ERR_clear_error();

	/* A plain client at the TLS port: told so, in plain. */
	peer_plain(&q, port);
	peer_hello(&q, "plain", 0);
	peer_expect_error(&q, 0, ISP_E_PROTOCOL, "this port of ispd speaks "
	    "TLS");
	peer_expect_eof(&q);
	peer_close(&q);
	/* Garbage at the TLS port, and a TLS session that stalls in the
	 * middle of its handshake, harm no one. */
	peer_plain(&q, port);
	assert_int_equal(send(q.fd, "\x16\x03\x01\x00\x05hello", 10, 0), 10);
	peer_expect_eof(&q);
	peer_close(&q);
	peer_sync(&p);
	log_has(&d, "plain TCP client on a TLS port");

	peer_close(&p);
	assert_int_equal(ispd_stop(&d), 0);
}

/* The MAC of AUTH is bound to the TLS session: one computed without the
 * binding (as a relay in the middle would have it) is refused. */
static void
test_tls_secret(void **state)
{
	struct ispd_proc	 d;
	struct peer		 p;
	int			 port;

	ispd_start(&d, "--listen-tls", "127.0.0.1:0", "--tls-cert", srv_crt,
	    "--tls-key", srv_key, "--credentials", secrets, NULL);
	port = ispd_port(&d, 1);
	if (peer_tls(&p, port, NULL, NULL) == -1)
		fail_msg("TLS handshake: %s", p.err);
	peer_hello(&p, "bgw-1", PROTO_CAP_AUTH);
	peer_answer(&p, "bgw-1", SECRET_BGW1, 0);
	assert_int_equal(peer_expect(&p, PROTO_WELCOME)->caps &
	    PROTO_CAP_AUTH, PROTO_CAP_AUTH);
	peer_close(&p);

	if (peer_tls(&p, port, NULL, NULL) == -1)
		fail_msg("TLS handshake: %s", p.err);
	peer_hello(&p, "bgw-1", PROTO_CAP_AUTH);
	peer_answer(&p, "bgw-1", SECRET_BGW1, 1);
	peer_expect_error(&p, 0, E_AUTH, "authentication failed");
	peer_close(&p);
	assert_int_equal(ispd_stop(&d), 0);
}

/* Mutual TLS: a valid client certificate is the identity the rules see;
 * an untrusted one, an expired one or none is refused, with a message
 * naming why on both sides. */
static void
test_mtls(void **state)
{
	struct ispd_proc	 d;
	struct peer		 p, q;
	const char		*conf;
	char			 text[1024];
	int			 port;

	snprintf(text, sizeof(text),
	    "listen-tls 127.0.0.1:0\n"
	    "tls-cert %s\ntls-key %s\ntls-ca %s\n"
	    "tls-require-client-cert yes\n"
	    "auth optional\n"
	    "default deny\n"
	    "allow bgw-1 announce,create SIP_REGISTRATION\n",
	    srv_crt, srv_key, ca_crt);
	conf = conf_write("mtls.conf", text);
	/* The configuration's listeners, plus the test's plain one. */
	ispd_start(&d, "--listen-tls", "127.0.0.1:0", "--config", conf, NULL);
	port = ispd_port(&d, 1);

	if (peer_tls(&p, port, cli_crt, cli_key) == -1)
		fail_msg("TLS handshake with a valid certificate: %s", p.err);
	/* The name in HELLO is not the identity; the certificate is. */
	peer_hello(&p, "some-name", 0);
	assert_int_equal(peer_expect(&p, PROTO_WELCOME)->caps &
	    PROTO_CAP_AUTH, PROTO_CAP_AUTH);
	peer_announce(&p, 1, "SIP_REGISTRATION", "alice");
	peer_sync(&p);
	log_has(&d, "client certificate bgw-1");
	log_has(&d, "identity bgw-1 (certificate)");

	/* Anonymous on the plain port: the rules give it nothing. */
	peer_login(&q, d.port, "bgw-1", NULL);
	peer_announce(&q, 1, "SIP_REGISTRATION", "bob");
	peer_expect_error(&q, 1, E_DENIED, "anonymous may not announce");
	peer_close(&q);

	/* Signed by a CA ispd does not trust. TLS 1.3 clients finish
	 * their side first: the refusal arrives as an alert on read. */
	if (peer_tls(&q, port, rogue_crt, rogue_key) == 0) {
		peer_hello(&q, "bgw-1", 0);
		assert_int_equal(peer_recv(&q), 0);
	}
	if (strstr(q.err, "unknown ca") == NULL)
		fail_msg("untrusted certificate: %s", q.err);
	peer_close(&q);
	/* The client has its alert before ispd is done with the
	 * handshake: wait for the refusal to be counted. */
	peer_wait_stat(&p, "auth_failures", 1);
	log_has(&d, "TLS handshake failed: client certificate refused: "
	    "unable to get local issuer certificate");

	if (peer_tls(&q, port, exp_crt, exp_key) == 0) {
		peer_hello(&q, "bgw-1", 0);
		assert_int_equal(peer_recv(&q), 0);
	}
	if (strstr(q.err, "certificate expired") == NULL)
		fail_msg("expired certificate: %s", q.err);
	peer_close(&q);
	peer_wait_stat(&p, "auth_failures", 2);
	log_has(&d, "client certificate refused: certificate has expired");

	if (peer_tls(&q, port, NULL, NULL) == 0) {
		peer_hello(&q, "bgw-1", 0);
		assert_int_equal(peer_recv(&q), 0);
	}
	if (strstr(q.err, "certificate required") == NULL)
		fail_msg("no certificate: %s", q.err);
	peer_close(&q);
	peer_wait_stat(&p, "auth_failures", 3);
	log_has(&d, "the client sent no certificate");

	/* None of it touched the session that is up. */
	peer_sync(&p);
	peer_close(&p);
	assert_int_equal(ispd_stop(&d), 0);
}

/* --- libisp and ispctl -------------------------------------------- */

/* A libisp client of the TLS port with these options; returns what
 * isp_connect() returned, the client in *cp (freed when it failed). */
static int
lib_connect(isp_client **cp, const char *addr, const char *name,
    const char *secret, const char *ca, const char *crt, const char *key,
    const char *server_name, int reconnect)
{
	struct isp_options	 o;
	isp_client		*c;
	int			 rc;

	isp_options_init(&o);
	o.server = addr;
	o.name = name;
	o.tls = 1;
	o.tls_ca_file = ca;
	o.tls_cert_file = crt;
	o.tls_key_file = key;
	o.tls_server_name = server_name;
	o.secret = secret;
	o.reconnect = reconnect;
	assert_non_null(c = isp_new(&o));
	if ((rc = isp_connect(c)) != ISP_OK) {
		*cp = NULL;
		fprintf(stderr, "# %s\n", isp_errmsg(c));
		if (strlen(isp_errmsg(c)) > 0)
			strncpy(lib_err, isp_errmsg(c), sizeof(lib_err) - 1);
		isp_free(c);
		return rc;
	}
	*cp = c;
	return ISP_OK;
}

static void
lib_err_has(const char *text)
{
	if (strstr(lib_err, text) == NULL)
		fail_msg("libisp's error \"%s\" lacks \"%s\"", lib_err, text);
}

static int
mirror_has_alice(void *arg)
{
	struct isp_record	*r;

	if ((r = isp_mirror_get(arg, "alice", 5)) == NULL)
		return 0;
	isp_record_free(r);
	return 1;
}

static void
test_lib_tls(void **state)
{
	struct ispd_proc	 d;
	struct isp_field	 f = { "contact", "sip:a@h", 7 };
	isp_client		*pub, *sub, *c;
	isp_mirror		*m;
	isp_client		*both[2];
	char			 addr[64], plain[64], text[1024], out[4096];
	char			 cmd[1024], sfile[160];
	const char		*conf;
	int			 port, rc;

	snprintf(text, sizeof(text),
	    "listen-tls 127.0.0.1:0\n"
	    "tls-cert %s\ntls-key %s\n"
	    "credentials %s\n"
	    "default deny\n"
	    "allow bgw-* announce,create SIP_REGISTRATION\n"
	    "allow asterisk-* subscribe SIP_REGISTRATION\n",
	    srv_crt, srv_key, secrets);
	conf = conf_write("lib.conf", text);
	ispd_start(&d, "--listen-tls", "127.0.0.1:0", "--config", conf, NULL);
	port = ispd_port(&d, 1);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	snprintf(plain, sizeof(plain), "127.0.0.1:%d", d.port);

	/* TLS, the server's name checked against its IP address, and a
	 * secret; the publisher in the library's legacy mode, the mirror
	 * with reconnect (its epoll descriptor). */
	assert_int_equal(lib_connect(&pub, addr, "bgw-1", SECRET_BGW1, ca_crt,
	    NULL, NULL, NULL, 0), ISP_OK);
	assert_int_equal(lib_connect(&sub, addr, "asterisk-1", SECRET_AST1,
	    ca_crt, NULL, NULL, NULL, 1), ISP_OK);
	assert_int_equal(isp_announce(pub, "SIP_REGISTRATION", "alice", 5, &f,
	    1, 0), ISP_OK);
	assert_int_equal(isp_sync(pub, WAIT_MS), ISP_OK);
	assert_non_null(m = isp_mirror_new(sub, "SIP_REGISTRATION", NULL, 0,
	    NULL, NULL));
	both[0] = pub;
	both[1] = sub;
	assert_true(pump(both, 2, mirror_has_alice, m, WAIT_MS));
	/* A denied request reaches on_error with its code. */
	assert_int_equal(isp_announce(sub, "SIP_REGISTRATION", "x", 1, &f, 1,
	    0), ISP_OK);
	assert_int_equal(isp_sync(sub, WAIT_MS), ISP_OK);
	isp_mirror_free(m);
	isp_free(sub);

	/* Refusals, each with its reason. */
	assert_int_equal(lib_connect(&c, addr, "bgw-1", SECRET_BGW2, ca_crt,
	    NULL, NULL, NULL, 0), ISP_E_AUTH);
	lib_err_has("authentication failed for client bgw-1");
	assert_int_equal(lib_connect(&c, addr, "bgw-1", NULL, ca_crt, NULL,
	    NULL, NULL, 0), ISP_E_AUTH);
	lib_err_has("ispd requires authentication");
	assert_int_equal(lib_connect(&c, addr, "bgw-1", SECRET_BGW1, ca_crt,
	    NULL, NULL, "ispd.example.net", 0), ISP_E_TLS);
	lib_err_has("is not trusted: hostname mismatch");
	assert_int_equal(lib_connect(&c, addr, "bgw-1", SECRET_BGW1, NULL,
	    NULL, NULL, NULL, 0), ISP_E_TLS);
	lib_err_has("is not trusted: unable to get local issuer certificate");
	assert_int_equal(lib_connect(&c, plain, "bgw-1", SECRET_BGW1, ca_crt,
	    NULL, NULL, NULL, 0), ISP_E_TLS);
	lib_err_has("is it a TLS port of ispd?");
	snprintf(text, sizeof(text), "%s/nothing.crt", dir);
	assert_int_equal(lib_connect(&c, addr, "bgw-1", SECRET_BGW1, text,
	    NULL, NULL, NULL, 0), ISP_E_TLS);
	lib_err_has("cannot read the CA file");
	lib_err_has("No such file or directory");

	/* ispctl: --tls-ca, --secret-file; a secret file others can read
	 * is refused. */
	snprintf(sfile, sizeof(sfile), "%s/bgw-1.secret", dir);
	file_write(sfile, 0600, SECRET_BGW1 "\n");
	snprintf(cmd, sizeof(cmd), "%s -s %s --tls-ca %s --name bgw-1 "
	    "--secret-file %s tables 2>&1", test_bin("ispctl"), addr, ca_crt,
	    sfile);
	rc = system_out(cmd, out, sizeof(out));
	if (rc != 0 || strstr(out, "SIP_REGISTRATION") == NULL)
		fail_msg("ispctl tables over TLS: exit %d: %s", rc, out);
	/* Stopped once it said so (bounded: 10 s), not after a guess. */
	snprintf(cmd, sizeof(cmd), "%s -s %s --tls-ca %s --name bgw-1 "
	    "--secret-file %s announce SIP_REGISTRATION bob a=1 >%s/ann.out "
	    "2>&1 & p=$!; for i in $(seq 1 200); do grep -q 'announced bob' "
	    "%s/ann.out && break; sleep 0.05; done; kill $p; cat %s/ann.out",
	    test_bin("ispctl"), addr, ca_crt, sfile, dir, dir, dir);
	rc = system_out(cmd, out, sizeof(out));
	if (strstr(out, "announced bob") == NULL)
		fail_msg("ispctl announce over TLS: %s", out);
	assert_int_equal(chmod(sfile, 0644), 0);
	snprintf(cmd, sizeof(cmd), "%s -s %s --tls-ca %s --name bgw-1 "
	    "--secret-file %s tables 2>&1", test_bin("ispctl"), addr, ca_crt,
	    sfile);
	rc = system_out(cmd, out, sizeof(out));
	assert_int_equal(rc, 2);
	out_has(out, "is readable by every user");
	snprintf(cmd, sizeof(cmd), "%s -s %s dump SIP_REGISTRATION 2>&1",
	    test_bin("ispctl"), addr);
	rc = system_out(cmd, out, sizeof(out));
	assert_int_equal(rc, 3);
	out_has(out, "this port of ispd speaks TLS: connect with TLS");

	isp_free(pub);
	assert_int_equal(ispd_stop(&d), 0);
}

/* libisp under mutual TLS. */
static void
test_lib_mtls(void **state)
{
	struct ispd_proc	 d;
	isp_client		*c;
	char			 addr[64];

	ispd_start(&d, "--listen-tls", "127.0.0.1:0", "--tls-cert", srv_crt,
	    "--tls-key", srv_key, "--tls-ca", ca_crt,
	    "--tls-require-client-cert", NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ispd_port(&d, 1));
	assert_int_equal(lib_connect(&c, addr, "bgw-1", NULL, ca_crt, cli_crt,
	    cli_key, NULL, 0), ISP_OK);
	assert_int_equal(isp_sync(c, WAIT_MS), ISP_OK);
	isp_free(c);
	assert_int_equal(lib_connect(&c, addr, "bgw-1", NULL, ca_crt, exp_crt,
	    exp_key, NULL, 0), ISP_E_TLS);
	lib_err_has("certificate expired");
	lib_err_has("renew it");
	assert_int_equal(lib_connect(&c, addr, "bgw-1", NULL, ca_crt,
	    rogue_crt, rogue_key, NULL, 0), ISP_E_TLS);
	lib_err_has("unknown ca");
	assert_int_equal(lib_connect(&c, addr, "bgw-1", NULL, ca_crt, NULL,
	    NULL, NULL, 0), ISP_E_TLS);
	lib_err_has("certificate required");
	lib_err_has("--tls-cert");
	assert_int_equal(ispd_stop(&d), 0);
}

/* --- safe defaults ------------------------------------------------ */

static void
test_defaults(void **state)
{
	struct ispd_proc	 d;
	struct passwd		*pw;
	struct peer		 p;
	char			 path[64], line[256];
	unsigned		 uid = 0;
	FILE			*f;

	/* Plain TCP beyond loopback only when asked, and with a warning. */
	ispd_start(&d, "--listen", "0.0.0.0:0", NULL);
	/* Said when binding, before the port file ispd_start() waited
	 * for. */
	log_has(&d, "is reachable from other hosts");
	assert_int_equal(ispd_stop(&d), 0);

	/* --user: root is dropped once the listeners are bound. */
	if (geteuid() != 0 || (pw = getpwnam("nobody")) == NULL) {
		skip();
		return;
	}
	ispd_start(&d, "--user", "nobody", NULL);
	/* Root is dropped after the port file is written and before the
	 * loop serves: a session answered proves it is past. */
	peer_login(&p, d.port, "after-drop", NULL);
	peer_sync(&p);
	log_has(&d, "running as user nobody");
	snprintf(path, sizeof(path), "/proc/%d/status", (int)d.pid);
	if (getenv("ISP_ISPD_WRAPPER") == NULL) {
		assert_non_null(f = fopen(path, "r"));
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "Uid: %u", &uid) == 1)
				break;
		fclose(f);
		assert_int_equal(uid, (unsigned)pw->pw_uid);
	}
	peer_sync(&p);
	peer_close(&p);
	assert_int_equal(ispd_stop(&d), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_config),
		cmocka_unit_test(test_refuse_world_readable),
		cmocka_unit_test(test_auth_secret),
		cmocka_unit_test(test_auth_optional),
		cmocka_unit_test(test_acl),
		cmocka_unit_test(test_acl_reload),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_tls_secret),
		cmocka_unit_test(test_mtls),
		cmocka_unit_test(test_lib_tls),
		cmocka_unit_test(test_lib_mtls),
		cmocka_unit_test(test_defaults),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("security", tests, setup_pki,
	    teardown_pki);
}
