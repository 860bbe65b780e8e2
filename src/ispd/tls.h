/*
 * tls.h: the interface of tls.c, TLS on the listeners' sessions, for
 * session.c, auth.c (channel binding) and the configuration. A
 * session's TLS state, struct tls_conn, is tls.c's alone.
 */
#ifndef ISPD_TLS_H
#define ISPD_TLS_H

#include "ispd.h"

/* Which of the TLS files a problem is about, so that conf.c can name
 * the line that gave it. */
enum tls_file {
	TLS_FILE_CERT,
	TLS_FILE_KEY,
	TLS_FILE_CA,
};
typedef void	 tls_report_fn(enum tls_file, const char *why, void *arg);
struct ssl_ctx_st *tls_ctx_new(const char *cert, const char *key,
		    const char *ca, int require_cert, tls_report_fn *,
		    void *arg);
void		 tls_ctx_free(struct ssl_ctx_st *);
void		 tls_ctx_set(struct ssl_ctx_st *);
int		 tls_session_start(struct session *);
int		 tls_handshake(struct session *);
ssize_t		 tls_read(struct session *, void *, size_t);
int		 tls_flush(struct session *, size_t *written);
int		 tls_pending(struct session *);
void		 tls_shutdown(struct session *);
void		 tls_session_free(struct session *);
int		 tls_ready(const struct session *);
uint32_t	 tls_watch(const struct session *, uint32_t events);
uint32_t	 tls_fired(const struct session *, uint32_t events);
int		 tls_read_wants_write(const struct session *);
int		 tls_binding(struct session *, uint8_t *out, size_t len);
const char	*tls_last_error(void);
void		 tls_free(void);

#endif /* ISPD_TLS_H */
