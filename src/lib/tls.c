/*
 * tls: TLS and authentication of a client's sessions (docs/SECURITY.md,
 * docs/PROTOCOL.md "TLS" and "Authentication"), with OpenSSL.
 *
 * TLS: one context per client, made by isp_connect() from the options,
 * and one SSL per session, created when the socket connects. The
 * handshake runs without blocking, driven by wire.c like any other
 * input or output, before the HELLO queued behind it can go out. The
 * server's certificate is always verified, against the CA file given
 * or the system's, and must name the server: tls_server_name, else the
 * host of its address (an IP address is matched against the
 * certificate's IP addresses). TLS 1.2 at least; OpenSSL prefers 1.3.
 *
 * Authentication: when the options give a secret, HELLO says the client
 * can authenticate, and a CHALLENGE is answered with AUTH: a nonce of
 * our own and HMAC-SHA256(secret, input) over the exact bytes the
 * protocol names, bound on TLS to the session's exported keying
 * material. The secret itself never leaves the process.
 *
 * Errors are sentences that say what failed and what to look at: the
 * usual TLS failures (an unknown CA, an expired or missing client
 * certificate, a plain port) each get a hint.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib.h"

/* An encrypted key would make OpenSSL ask on the terminal. */
static int
ctls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return -1;
}

/* OpenSSL's latest reason, or fallback; clears its error queue. */
static void
ctls_reason(char *dst, size_t dstsz, const char *fallback)
{
	unsigned long	 e = ERR_peek_last_error();
	const char	*r;

	if (e == 0)
		snprintf(dst, dstsz, "%s", fallback);
	else if ((r = ERR_reason_error_string(e)) != NULL)
		snprintf(dst, dstsz, "%s", r);
	else
		ERR_error_string_n(e, dst, dstsz);
	ERR_clear_error();
}

/* OpenSSL says "system lib" for a file it cannot open: say why. */
static int
ctls_readable(struct isp_client *c, const char *path, const char *what)
{
	FILE	*f;

	if (path == NULL)
		return ISP_OK;
	if ((f = fopen(path, "r")) == NULL)
		return client_seterr(c, ISP_E_TLS, "cannot read the %s %s: %s",
		    what, path, strerror(errno));
	fclose(f);
	return ISP_OK;
}

/*
 * The client's TLS context from its options. ISP_OK, or ISP_E_TLS with
 * the error sentence naming the file that cannot be used.
 */
int
ctls_init(struct isp_client *c)
{
	SSL_CTX	*ctx;
	char	 why[256];
	int	 err;

	if (!c->tls || c->tls_ctx != NULL)
		return ISP_OK;
	if ((err = ctls_readable(c, c->tls_ca_file, "CA file")) != ISP_OK ||
	    (err = ctls_readable(c, c->tls_cert_file, "certificate")) !=
	    ISP_OK ||
	    (err = ctls_readable(c, c->tls_key_file, "key")) != ISP_OK)
		return err;
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		ctls_reason(why, sizeof(why), "out of memory");
		return client_seterr(c, ISP_E_TLS, "cannot set up TLS: %s",
		    why);
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* wire.c retries a write with its queue's head, which may have
	 * moved and grown meanwhile; one record per call is fine. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_default_passwd_cb(ctx, ctls_no_passphrase);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (c->tls_ca_file != NULL ?
	    SSL_CTX_load_verify_locations(ctx, c->tls_ca_file, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ctls_reason(why, sizeof(why), "no certificate in it");
		SSL_CTX_free(ctx);
		return client_seterr(c, ISP_E_TLS, "cannot load the CA "
		    "certificates %s: %s", c->tls_ca_file != NULL ?
		    c->tls_ca_file : "of the system", why);
	}
	if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL)) {
		SSL_CTX_free(ctx);
		return client_seterr(c, ISP_E_INVALID, "a client certificate "
		    "needs both tls_cert_file and tls_key_file");
	}
	if (c->tls_cert_file != NULL &&
	    SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file) != 1) {
		ctls_reason(why, sizeof(why), "unknown error");
		SSL_CTX_free(ctx);
		return client_seterr(c, ISP_E_TLS, "cannot load the client "
		    "certificate %s: %s", c->tls_cert_file, why);
	}
	if (c->tls_key_file != NULL && (SSL_CTX_use_PrivateKey_file(ctx,
	    c->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)) {
		ctls_reason(why, sizeof(why), "it does not belong to the "
		    "certificate");
		SSL_CTX_free(ctx);
		return client_seterr(c, ISP_E_TLS, "cannot use the private key "
		    "%s: %s (an unencrypted PEM key of the certificate is "
		    "needed)", c->tls_key_file, why);
	}
	c->tls_ctx = ctx;
	return ISP_OK;
}

void
ctls_free(struct isp_client *c)
{
	if (c->tls_ctx != NULL)
		SSL_CTX_free(c->tls_ctx);
	c->tls_ctx = NULL;
}

/* A TLS session on cn's new socket, verifying the server's name. ISP_OK
 * or ISP_E_NOMEM. */
int
ctls_start(struct conn *cn)
{
	struct isp_client	*c = cn->c;
	const char		*name = c->tls_server_name != NULL ?
				    c->tls_server_name : cn->host;
	unsigned char		 ip[16];
	int			 is_ip;

	ERR_clear_error();
	cn->tls_done = 0;
	cn->tls_want_write = 0;
	cn->tls_failed = 0;
	if ((cn->ssl = SSL_new(c->tls_ctx)) == NULL ||
	    SSL_set_fd(cn->ssl, cn->fd) != 1)
		goto fail;
	is_ip = inet_pton(AF_INET, name, ip) == 1 ||
	    inet_pton(AF_INET6, name, ip) == 1;
	if (is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(cn->ssl),
		    name) != 1)
			goto fail;
	} else if (SSL_set_tlsext_host_name(cn->ssl, name) != 1 ||
	    SSL_set1_host(cn->ssl, name) != 1)
		goto fail;
	SSL_set_connect_state(cn->ssl);
	return ISP_OK;
fail:
	ERR_clear_error();
	ctls_close(cn);
	return ISP_E_NOMEM;
}

void
ctls_close(struct conn *cn)
{
	if (cn->ssl == NULL)
		return;
	/* Our close_notify, best effort, on a session that worked. */
	if (cn->tls_done && !cn->tls_failed)
		(void)SSL_shutdown(cn->ssl);
	SSL_free(cn->ssl);
	ERR_clear_error();
	cn->ssl = NULL;
	cn->tls_done = 0;
}

/* A sentence about a failed TLS session with cn, with a hint for the
 * failures people meet. */
static void
ctls_why(struct conn *cn, int handshake)
{
	unsigned long	 e = ERR_peek_last_error();
	long		 vr = cn->ssl != NULL ? SSL_get_verify_result(cn->ssl) :
			    X509_V_OK;
	const char	*hint = "";
	char		 reason[256];

	if (e != 0 && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
	    vr != X509_V_OK) {
		snprintf(cn->tls_why, sizeof(cn->tls_why), "the certificate of "
		    "ispd at %s is not trusted: %s (check the CA file, "
		    "--tls-ca, and the name, --tls-server-name)", cn->addr,
		    X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return;
	}
	ctls_reason(reason, sizeof(reason), errno != 0 ? strerror(errno) :
	    "connection closed");
	if (strstr(reason, "wrong version number") != NULL ||
	    strstr(reason, "packet length too long") != NULL ||
	    strstr(reason, "record layer failure") != NULL)
		hint = " (is it a TLS port of ispd? plain ports need no --tls)";
	else if (strstr(reason, "unknown ca") != NULL ||
	    strstr(reason, "bad certificate") != NULL ||
	    strstr(reason, "decrypt error") != NULL)
		hint = " (ispd does not trust our client certificate: is it "
		    "signed by the CA in ispd's tls-ca?)";
	else if (strstr(reason, "certificate expired") != NULL)
		hint = " (our client certificate has expired: renew it)";
	else if (strstr(reason, "certificate required") != NULL ||
	    strstr(reason, "handshake failure") != NULL)
		hint = " (ispd requires a client certificate: --tls-cert and "
		    "--tls-key)";
	snprintf(cn->tls_why, sizeof(cn->tls_why), "TLS with ispd at %s "
	    "failed%s: %s%s", cn->addr, handshake ? " in the handshake" : "",
	    reason, hint);
}

/*
 * Drives cn's TLS handshake. Returns 1 when it is done, 0 while it goes
 * on (cn->tls_want_write says which way), -1 when it failed, with
 * cn->tls_why saying why: the caller ends the session with ISP_E_TLS.
 */
int
ctls_handshake(struct conn *cn)
{
	int	 r, e;

	if (cn->ssl == NULL || cn->tls_done)
		return 1;
	ERR_clear_error();
	errno = 0;
	r = SSL_connect(cn->ssl);
	if (r == 1) {
		cn->tls_done = 1;
		cn->tls_want_write = 0;
		conn_update_events(cn);
		return 1;
	}
	e = SSL_get_error(cn->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		cn->tls_want_write = e == SSL_ERROR_WANT_WRITE;
		conn_update_events(cn);
		return 0;
	}
	cn->tls_failed = 1;
	ctls_why(cn, 1);
	return -1;
}

/*
 * recv(2) through TLS: bytes read; 0 at the end of the stream; -1 with
 * errno EAGAIN when nothing is there now, or EPROTO with cn->tls_why
 * set when the session failed.
 */
ssize_t
ctls_read(struct conn *cn, void *p, size_t n)
{
	int	 r, e;

	ERR_clear_error();
	errno = 0;
	r = SSL_read(cn->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	e = SSL_get_error(cn->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN ||
	    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0))
		return 0;
	cn->tls_failed = 1;
	ctls_why(cn, 0);
	errno = EPROTO;
	return -1;
}

/* send(2) through TLS; same returns. A retry after EAGAIN passes the
 * same bytes (the output queue only grows at its end). */
ssize_t
ctls_write(struct conn *cn, const void *p, size_t n)
{
	int	 r, e;

	ERR_clear_error();
	errno = 0;
	r = SSL_write(cn->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	e = SSL_get_error(cn->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	cn->tls_failed = 1;
	ctls_why(cn, 0);
	errno = EPROTO;
	return -1;
}

/* 1 when OpenSSL holds bytes of cn that poll(2) will not announce. */
int
ctls_pending(const struct conn *cn)
{
	return cn->ssl != NULL && cn->tls_done && SSL_pending(cn->ssl) > 0;
}

/*
 * The AUTH answering the CHALLENGE m, queued on cn. ISP_OK, or an error
 * after which the caller ends the session (with the sentence set).
 */
int
ctls_answer(struct conn *cn, const struct proto_msg *m)
{
	struct isp_client	*c = cn->c;
	uint8_t			 cnonce[PROTO_NONCE_BYTES];
	uint8_t			 binding[PROTO_BINDING_BYTES];
	uint8_t			 mac[EVP_MAX_MD_SIZE];
	unsigned int		 maclen = 0;
	size_t			 blen = 0, mark;
	struct buf		 in;
	int			 ok;

	if (m->mech != PROTO_AUTH_HMAC_SHA256)
		return client_seterr(c, ISP_E_AUTH, "ispd at %s asks for "
		    "authentication mechanism %u, which this library does not "
		    "know", cn->addr, m->mech);
	if (RAND_bytes(cnonce, sizeof(cnonce)) != 1)
		return client_seterr(c, ISP_E_AUTH, "no randomness for the "
		    "answer to ispd at %s", cn->addr);
	if (cn->ssl != NULL) {
		if (SSL_export_keying_material(cn->ssl, binding,
		    sizeof(binding), PROTO_BINDING_LABEL,
		    sizeof(PROTO_BINDING_LABEL) - 1, NULL, 0, 0) != 1) {
			ERR_clear_error();
			return client_seterr(c, ISP_E_TLS, "cannot bind the "
			    "authentication to the TLS session with %s",
			    cn->addr);
		}
		blen = sizeof(binding);
	}
	buf_init(&in);
	proto_auth_input(&in, m->nonce.p, cnonce, c->name, strlen(c->name),
	    binding, blen);
	ok = !buf_failed(&in) && HMAC(EVP_sha256(), c->secret,
	    (int)c->secret_len, in.data, in.len, mac, &maclen) != NULL &&
	    maclen == PROTO_MAC_BYTES;
	buf_free(&in);
	if (!ok)
		return client_seterr(c, ISP_E_NOMEM, "out of memory answering "
		    "ispd at %s", cn->addr);
	mark = cn->out.len;
	proto_put_auth(&cn->out, PROTO_AUTH_HMAC_SHA256, cnonce, mac);
	OPENSSL_cleanse(mac, sizeof(mac));
	return wire_queued(cn, mark);
}
