/*
 * tls: TLS on the listeners given by --listen-tls / listen-tls, with
 * OpenSSL, inside the one epoll loop.
 *
 * Everything is non-blocking. The handshake is driven by readiness
 * (SSL_accept until it stops asking for reads or writes); afterwards
 * session.c reads through tls_read() and writes through tls_flush()
 * instead of read(2) and sendmsg(2). A plain-TCP session never reaches
 * this file: its path is the same as before TLS existed.
 *
 * Writes: OpenSSL wants a retried SSL_write to carry the same bytes.
 * The output queue only grows at its tail, so its first N bytes stay
 * the same until written; tls_flush() copies up to one record's worth
 * (16 KiB) into a staging buffer shared by all sessions, and after
 * WANT_WRITE retries with exactly the same length (with
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER the copy may live anywhere).
 *
 * Reads: OpenSSL may hold decrypted bytes that no longer wake epoll.
 * tls_read() fills what it is asked for across records; when it filled
 * all of it and OpenSSL still holds bytes, session.c reads again in the
 * next loop turn (its rx list).
 *
 * Policy (docs/SECURITY.md): TLS 1.2 at least, 1.3 preferred (OpenSSL
 * picks the highest both speak); for 1.2 only ECDHE with AEAD ciphers;
 * no renegotiation, no compression, no session tickets or cache (a
 * reflector's sessions live for days; resumption buys nothing). Client
 * certificates are requested when a CA is configured and required with
 * tls-require-client-cert; the identity is then the certificate's
 * common name (else its first DNS name).
 *
 * A connection to a TLS port whose first byte is not a TLS handshake
 * record (0x16) is a plain client at the wrong port: it gets a plain
 * ERROR saying so, instead of bytes it cannot read.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "isp.h"
#include "ispd.h"
#include "tls.h"

/* Plaintext bytes per SSL_write: one TLS record. */
#define TLS_RECORD_BYTES	16384
/* The first byte of a TLS record carrying a handshake (RFC 8446 5.1). */
#define TLS_HANDSHAKE_BYTE	0x16

/* The TLS side of a session (its member tls; NULL on plain TCP). Only
 * this file sees inside: session.c asks tls_ready(), tls_watch(),
 * tls_fired() and tls_read_wants_write(). */
struct tls_conn {
	SSL		*ssl;
	uint8_t		 ready;		/* handshake done */
	uint8_t		 peeked;	/* first byte looked at */
	uint8_t		 failed;	/* fatal TLS error: no close_notify */
	uint8_t		 want_write;	/* handshake wants EPOLLOUT */
	uint8_t		 rd_wants_wr;	/* SSL_read wants EPOLLOUT */
	uint8_t		 wr_wants_rd;	/* SSL_write wants EPOLLIN */
	uint32_t	 wlen;		/* bytes of a write to retry */
};

static SSL_CTX		*running;
static uint8_t		 stage[TLS_RECORD_BYTES];
static char		 last_error[256];

/* The reason of OpenSSL's latest error, or fallback. Clears the queue. */
static const char *
tls_reason(const char *fallback)
{
	unsigned long	 e = ERR_peek_last_error();
	const char	*r;

	if (e == 0)
		snprintf(last_error, sizeof(last_error), "%s", fallback);
	else if ((r = ERR_reason_error_string(e)) != NULL)
		snprintf(last_error, sizeof(last_error), "%s", r);
	else
		ERR_error_string_n(e, last_error, sizeof(last_error));
	ERR_clear_error();
	return last_error;
}

/* Why the last tls_read()/tls_flush() failed. */
const char *
tls_last_error(void)
{
	return last_error;
}

/* An encrypted key would make OpenSSL ask for a passphrase on the
 * terminal of a daemon: refuse instead. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return -1;
}

/* OpenSSL says "system lib" for a file it cannot open: say why. */
static int
tls_readable(const char *path, const char *what, char *err, size_t errsz)
{
	FILE	*f;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errsz, "cannot read the %s %s: %s", what, path,
		    strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/*
 * A server context from the certificate chain, key and (for client
 * certificates) CA files. Returns NULL when one cannot be used, after
 * telling report about every problem, each with its file: one run of
 * --check-config shows them all. The key file must not be accessible to
 * every user.
 */
SSL_CTX *
tls_ctx_new(const char *cert, const char *key, const char *ca,
    int require_cert, tls_report_fn *report, void *arg)
{
	SSL_CTX			*ctx;
	STACK_OF(X509_NAME)	*names;
	char			 err[1024];
	int			 nerr = 0, cert_ok = 0, key_ok = 0;
	int			 cert_read = 1, key_read = 1, ca_read = 1;

	ERR_clear_error();
	/* Each file is read even when another failed. */
	if (tls_readable(cert, "certificate", err, sizeof(err)) == -1) {
		report(TLS_FILE_CERT, err, arg);
		cert_read = 0;
		nerr++;
	}
	if (file_check_private(key, "TLS key", err, sizeof(err)) == -1 ||
	    tls_readable(key, "TLS key", err, sizeof(err)) == -1) {
		report(TLS_FILE_KEY, err, arg);
		key_read = 0;
		nerr++;
	}
	if (ca != NULL && tls_readable(ca, "CA file", err, sizeof(err)) == -1) {
		report(TLS_FILE_CA, err, arg);
		ca_read = 0;
		nerr++;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, sizeof(err), "cannot set up TLS: %s",
		    tls_reason("SSL_CTX_new failed"));
		report(TLS_FILE_CERT, err, arg);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
	if (SSL_CTX_set_cipher_list(ctx,
	    "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL") != 1) {
		snprintf(err, sizeof(err), "cannot set the TLS 1.2 ciphers: %s",
		    tls_reason("no cipher"));
		report(TLS_FILE_CERT, err, arg);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (cert_read && SSL_CTX_use_certificate_chain_file(ctx, cert) == 1)
		cert_ok = 1;
	else if (cert_read) {
		snprintf(err, sizeof(err), "cannot load the certificate %s: %s",
		    cert, tls_reason("unknown error"));
		report(TLS_FILE_CERT, err, arg);
		nerr++;
	}
	/* Without a certificate OpenSSL loads the key alone (it checks the
	 * pair when both are there). */
	if (key_read && SSL_CTX_use_PrivateKey_file(ctx, key,
	    SSL_FILETYPE_PEM) == 1)
		key_ok = 1;
	else if (key_read) {
		snprintf(err, sizeof(err), "cannot load the private key %s: %s "
		    "(an unencrypted PEM key is needed)", key,
		    tls_reason("unknown error"));
		/* A key that parses but does not match the certificate
		 * says "key values mismatch" here. */
		report(TLS_FILE_KEY, err, arg);
		nerr++;
	}
	if (cert_ok && key_ok && SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, sizeof(err), "the private key %s does not belong "
		    "to the certificate %s", key, cert);
		ERR_clear_error();
		report(TLS_FILE_KEY, err, arg);
		nerr++;
	}
	if (ca != NULL && ca_read) {
		if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(ca)) == NULL) {
			snprintf(err, sizeof(err), "cannot load the CA "
			    "certificates %s: %s", ca,
			    tls_reason("no certificate in it"));
			report(TLS_FILE_CA, err, arg);
			nerr++;
		} else {
			SSL_CTX_set_client_CA_list(ctx, names);
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
			    (require_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT :
			    0), NULL);
		}
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (nerr > 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void
tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

/* The context new TLS sessions use (takes it). Sessions up keep theirs:
 * each SSL holds a reference to its context. */
void
tls_ctx_set(SSL_CTX *ctx)
{
	SSL_CTX_free(running);
	running = ctx;
}

/* s came in on a TLS listener. Returns 0, or -1 (out of memory). */
int
tls_session_start(struct session *s)
{
	if (running == NULL)
		fatalx("tls_session_start: no TLS context");
	ERR_clear_error();
	if ((s->tls = calloc(1, sizeof(*s->tls))) == NULL ||
	    (s->tls->ssl = SSL_new(running)) == NULL ||
	    SSL_set_fd(s->tls->ssl, s->fd) != 1) {
		log_warnx("session %" PRIu64 " (%s): cannot start TLS: %s",
		    s->owner.id, s->owner.peer, tls_reason("out of memory"));
		tls_session_free(s);
		return -1;
	}
	SSL_set_accept_state(s->tls->ssl);
	return 0;
}

void
tls_session_free(struct session *s)
{
	if (s->tls == NULL)
		return;
	if (s->tls->ssl != NULL)
		SSL_free(s->tls->ssl);
	free(s->tls);
	s->tls = NULL;
}

/* 1 when s is a TLS session whose handshake is done. */
int
tls_ready(const struct session *s)
{
	return s->tls != NULL && s->tls->ready;
}

/*
 * The epoll events the TLS session s must watch for session.c's wish
 * (EPOLLIN, EPOLLOUT): during the handshake, what SSL_accept() waits
 * for; then the wish, with the other direction OpenSSL waits for.
 */
uint32_t
tls_watch(const struct session *s, uint32_t events)
{
	if (!s->tls->ready)
		return s->tls->want_write ? EPOLLOUT : EPOLLIN;
	/* OpenSSL, mid-write, waits for input (and not for room). */
	if (s->tls->wr_wants_rd)
		events = (events & ~(uint32_t)EPOLLOUT) | EPOLLIN;
	if (s->tls->rd_wants_wr)
		events |= EPOLLOUT;
	return events;
}

/* The events that fired on the TLS session s, as session.c must take
 * them: readiness OpenSSL waited for serves the other direction. */
uint32_t
tls_fired(const struct session *s, uint32_t events)
{
	if (s->tls->rd_wants_wr && (events & EPOLLOUT))
		events |= EPOLLIN;
	if (s->tls->wr_wants_rd && (events & EPOLLIN))
		events |= EPOLLOUT;
	return events;
}

/* 1 when the last read of s stopped because OpenSSL must write first. */
int
tls_read_wants_write(const struct session *s)
{
	return s->tls != NULL && s->tls->rd_wants_wr;
}

/* The certificate's name for the rules: its common name, else its first
 * DNS name; printable ASCII without blanks, as client names in the
 * rules are. Returns 0, or -1 when it has no such name. */
static int
tls_cert_name(X509 *cert, char *out, size_t outsz)
{
	X509_NAME		*subj = X509_get_subject_name(cert);
	GENERAL_NAMES		*sans;
	const GENERAL_NAME	*gn;
	unsigned char		*u = NULL;
	const unsigned char	*p = NULL;
	int			 i, idx, n = -1;

	idx = subj == NULL ? -1 :
	    X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (idx >= 0) {
		n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(subj, idx)));
		p = u;
	} else if ((sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL,
	    NULL)) != NULL) {
		for (i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
			gn = sk_GENERAL_NAME_value(sans, i);
			if (gn->type != GEN_DNS)
				continue;
			if ((u = OPENSSL_malloc((size_t)ASN1_STRING_length(
			    gn->d.dNSName) + 1)) != NULL) {
				n = ASN1_STRING_length(gn->d.dNSName);
				memcpy(u, ASN1_STRING_get0_data(gn->d.dNSName),
				    (size_t)n);
				p = u;
			}
			break;
		}
		GENERAL_NAMES_free(sans);
	}
	if (n < 1 || (size_t)n >= outsz || n > SESSION_NAME_MAX) {
		OPENSSL_free(u);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f) {
			OPENSSL_free(u);
			return -1;
		}
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
	OPENSSL_free(u);
	return 0;
}

/* The handshake is done: the client certificate, if verified, gives s
 * its identity. */
static int
tls_accepted(struct session *s)
{
	X509	*cert;
	char	 name[SESSION_NAME_MAX + 1];

	s->tls->ready = 1;
	cert = SSL_get0_peer_certificate(s->tls->ssl);
	if (cert != NULL && SSL_get_verify_result(s->tls->ssl) == X509_V_OK &&
	    SSL_get_verify_mode(s->tls->ssl) != SSL_VERIFY_NONE) {
		if (tls_cert_name(cert, name, sizeof(name)) == -1) {
			ispd_stats.auth_failures++;
			session_error(s, 0, ISP_E_AUTH, "the client "
			    "certificate has no usable name (a common name or "
			    "DNS name of 1 to %d printable characters without "
			    "blanks)", SESSION_NAME_MAX);
			session_close(s, SESSION_CLOSE_FLUSH, "client "
			    "certificate without a usable name");
			return -1;
		}
		s->auth = SESSION_AUTH_CERT;
		s->owner.ident_len = strlen(name);
		memcpy(s->owner.ident, name, s->owner.ident_len + 1);
	}
	log_info("session %" PRIu64 " (%s): %s %s%s%s", s->owner.id,
	    s->owner.peer, SSL_get_version(s->tls->ssl),
	    SSL_get_cipher_name(s->tls->ssl),
	    s->auth == SESSION_AUTH_CERT ? ", client certificate " : "",
	    s->auth == SESSION_AUTH_CERT ? s->owner.ident : "");
	session_tls_ready(s);
	return 1;
}

/* Why the handshake failed, in words for the log. */
static void
tls_handshake_error(struct session *s, int e, char *why, size_t whysz)
{
	unsigned long	 err = ERR_peek_last_error();
	long		 vr = SSL_get_verify_result(s->tls->ssl);

	if (err != 0 && ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED
	    && vr != X509_V_OK) {
		ispd_stats.auth_failures++;
		snprintf(why, whysz, "client certificate refused: %s",
		    X509_verify_cert_error_string(vr));
	} else if (err != 0 && ERR_GET_REASON(err) ==
	    SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		ispd_stats.auth_failures++;
		snprintf(why, whysz, "the client sent no certificate "
		    "(tls-require-client-cert)");
	} else if (e == SSL_ERROR_SYSCALL && err == 0)
		snprintf(why, whysz, "%s", errno != 0 ? strerror(errno) :
		    "connection closed by peer");
	else
		snprintf(why, whysz, "%s", tls_reason("unknown error"));
	ERR_clear_error();
}

/*
 * Drives the handshake of s on readiness. Returns 1 when it is done (s
 * may have data to read), 0 while it goes on (the events it waits for
 * are set), -1 when s is closing.
 */
int
tls_handshake(struct session *s)
{
	char	 why[300];
	uint8_t	 c;
	ssize_t	 n;
	int	 r, e;

	if (!s->tls->peeked) {
		n = recv(s->fd, &c, 1, MSG_PEEK);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR))
			return 0;
		if (n <= 0) {
			session_close(s, SESSION_CLOSE_NOW, "connection closed "
			    "before the TLS handshake%s%s", n == -1 ? ": " :
			    "", n == -1 ? strerror(errno) : "");
			return -1;
		}
		s->tls->peeked = 1;
		if (c != TLS_HANDSHAKE_BYTE) {
			/* From here on the session is plain TCP. */
			tls_session_free(s);
			session_error(s, 0, ISP_E_PROTOCOL, "this port of ispd "
			    "speaks TLS: connect with TLS (ispctl --tls)");
			session_close(s, SESSION_CLOSE_FLUSH, "plain TCP "
			    "client on a TLS port");
			return -1;
		}
	}
	ERR_clear_error();
	errno = 0;
	r = SSL_accept(s->tls->ssl);
	if (r == 1)
		return tls_accepted(s);
	e = SSL_get_error(s->tls->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		s->tls->want_write = e == SSL_ERROR_WANT_WRITE;
		session_update_io(s);
		return 0;
	}
	tls_handshake_error(s, e, why, sizeof(why));
	s->tls->failed = 1;
	/* OpenSSL has sent its alert; lingering until the peer's EOF
	 * keeps a reset from destroying it before the client reads it. */
	session_close(s, SESSION_CLOSE_FLUSH, "TLS handshake failed: %s", why);
	return -1;
}

/*
 * Reads up to n bytes of s's TLS stream, across records. Returns the
 * bytes read; 0 at the end of the stream; -1 with errno EAGAIN when
 * nothing is there now, or with errno EPROTO (tls_last_error() says why)
 * or another errno when the session is broken.
 */
ssize_t
tls_read(struct session *s, void *p, size_t n)
{
	size_t	 got = 0;
	int	 r, e;

	s->tls->rd_wants_wr = 0;
	while (got < n) {
		ERR_clear_error();
		errno = 0;
		r = SSL_read(s->tls->ssl, (uint8_t *)p + got,
		    n - got > INT32_MAX ? INT32_MAX : (int)(n - got));
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		e = SSL_get_error(s->tls->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_WANT_WRITE) {
			s->tls->rd_wants_wr = 1;
			break;
		}
		/* The bytes first; the error comes again next time. */
		if (got > 0)
			break;
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
			if (errno == 0)
				return 0;
			s->tls->failed = 1;
			return -1;
		}
		s->tls->failed = 1;
		(void)tls_reason("TLS error");
		errno = EPROTO;
		return -1;
	}
	if (got == 0) {
		errno = EAGAIN;
		return -1;
	}
	return (ssize_t)got;
}

/* 1 when OpenSSL may hold bytes of s that epoll will not announce. */
int
tls_pending(struct session *s)
{
	return s->tls != NULL && SSL_has_pending(s->tls->ssl);
}

/*
 * outq_flush() for a TLS session: returns 1 when the queue is empty, 0
 * when the socket is full (or OpenSSL waits for input), -1 on an error
 * with errno set.
 */
int
tls_flush(struct session *s, size_t *written)
{
	size_t	 n;
	int	 r, e;

	if (!s->tls->ready) {
		/* Nothing can be sent before the handshake (session.c
		 * queues nothing then); drop what is there. */
		outq_free(&s->out);
		return 1;
	}
	s->tls->wr_wants_rd = 0;
	while (s->out.bytes > 0) {
		n = s->tls->wlen > 0 ? s->tls->wlen : sizeof(stage);
		n = outq_peek(&s->out, stage, n);
		ERR_clear_error();
		errno = 0;
		r = SSL_write(s->tls->ssl, stage, (int)n);
		if (r > 0) {
			outq_consume(&s->out, (size_t)r);
			*written += (size_t)r;
			s->tls->wlen = 0;
			continue;
		}
		e = SSL_get_error(s->tls->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
			s->tls->wlen = (uint32_t)n;
			s->tls->wr_wants_rd = e == SSL_ERROR_WANT_READ;
			return 0;
		}
		s->tls->failed = 1;
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
			if (errno == 0)
				errno = EPIPE;
			snprintf(last_error, sizeof(last_error), "%s",
			    strerror(errno));
		} else {
			(void)tls_reason("TLS error");
			errno = EPROTO;
		}
		return -1;
	}
	return 1;
}

/* Our close_notify, best effort, before shutdown(SHUT_WR). */
void
tls_shutdown(struct session *s)
{
	if (!tls_ready(s) || s->tls->failed)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(s->tls->ssl);
	ERR_clear_error();
}

/* Keying material of s's TLS session for channel binding (auth.c).
 * Returns 0, or -1 when there is none. */
int
tls_binding(struct session *s, uint8_t *out, size_t len)
{
	if (!tls_ready(s))
		return -1;
	if (SSL_export_keying_material(s->tls->ssl, out, len,
	    PROTO_BINDING_LABEL, sizeof(PROTO_BINDING_LABEL) - 1, NULL, 0,
	    0) != 1) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

void
tls_free(void)
{
	tls_ctx_set(NULL);
}
