/*
 * sipsvc: what isp-registrar and isp-locator share. Both are one
 * sofia-sip event loop (su_root) that also drives a libisp client in the
 * application-loop mode (isp_fd/isp_want/isp_process), so every SIP
 * callback and every ispd event runs on one thread and no state needs a
 * lock. The client holds a session with every reflector it was given
 * (docs/HA.md), over TLS and with a secret when told to; the sessions
 * are soft: when one ends the service keeps serving SIP and libisp
 * reconnects, announces again what the service holds (its bindings, its
 * INSTANCES record) and subscribes again; the locator's view is a
 * mirror that libisp merges over the reflectors.
 *
 * Files: svc.c (the loop, the ispd session, INSTANCES, logging, the
 * listen/port-file plumbing), aor.c (address-of-record and binding keys).
 */
#ifndef ISP_SIPSVC_H
#define ISP_SIPSVC_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Typed "magic" pointers for sofia-sip callbacks; set before its
 * headers are included. */
struct svc;
#define SU_ROOT_MAGIC_T		struct svc
#define SU_WAKEUP_ARG_T		struct svc
#define SU_TIMER_ARG_T		struct svc
#define NTA_AGENT_MAGIC_T	void
#define NTA_LEG_MAGIC_T		void

#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/url.h>
#include <sofia-sip/nta.h>

#include "clientconf.h"
#include "isp.h"
#include "version.h"	/* ISP_RELEASE */

/* The tables (see docs/SIP.md for their fields). */
#define SIP_REG_TABLE		"SIP_REGISTRATION"
#define SIP_INSTANCES_TABLE	"INSTANCES"

/* An AOR is the canonical "sip:user@host[:port]"; its binding keys are
 * "AOR|binding-id", so the bindings of one AOR share the key prefix
 * "AOR|". */
#define SIP_KEY_SEP		'|'
#define SIP_AOR_MAX		512
#define SIP_KEY_MAX		1024	/* the wire protocol's key limit */

enum svc_log_level {
	SVC_LOG_ERROR = 0,
	SVC_LOG_WARN,
	SVC_LOG_INFO,
	SVC_LOG_DEBUG,
};

struct svc {
	const char	*prog;		/* "isp-registrar" */
	const char	*role;		/* INSTANCES role: "registrar" */
	char		 id[128];	/* instance id: client name, key */
	struct clientconf conn;		/* the reflectors, TLS, secret */
	char		 sip_addr[160];	/* "sip:127.0.0.1:5060" */
	time_t		 started;
	su_root_t	*root;
	su_home_t	 home[1];

	/* NULL until the first connect succeeded: libisp's client connects
	 * once (isp_connect()); until one server has answered the service
	 * makes a new client every second. From then on libisp
	 * reconnects by itself. */
	isp_client	*isp;
	su_wait_t	 isp_wait[1];
	int		 isp_fd;	/* isp_fd(): stable for the client */
	int		 isp_index;	/* su_root registration, or -1 */
	int		 isp_ready;	/* the descriptor woke the loop */
	uint64_t	 next_connect_ms;
	uint64_t	 connects;	/* sessions made so far, any server */
	unsigned	 connect_failures;	/* first connects, in a row */
	int		 fresh;		/* in on_connect: a new client,
					 * which holds nothing yet */
	unsigned char	 refused[ISP_MAX_SERVERS];	/* said so once */
	int		 exit_code;	/* main's, once svc_run() returned */

	/* Called when a session comes up: with fresh set (the first
	 * session of a new client) the service announces what it holds
	 * and subscribes; otherwise libisp has done it again. Returns 0,
	 * or -1 when the service cannot go on (svc_run() ends, exit 1). */
	int		(*on_connect)(struct svc *, void *);
	/* Called when a session ends. */
	void		(*on_disconnect)(struct svc *, void *);
	void		*arg;
};

/* svc.c */
extern volatile sig_atomic_t	 svc_stop;

void		 svc_log_init(const char *prog, int level);
int		 svc_log_level_parse(const char *);
int		 svc_log_enabled(int level);
void		 svc_log(int level, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
void		 svc_fatalx(const char *fmt, ...)
		    __attribute__((noreturn, format(printf, 1, 2)));
/* A bad command line: "prog: message" and the short usage on stderr,
 * exit 2. */
void		 svc_usage_error(const char *prog,
		    void (*usage)(FILE *, int), const char *fmt, ...)
		    __attribute__((noreturn, format(printf, 3, 4)));
/* Routes sofia-sip's own log lines (malformed messages, transport
 * errors) into ours, at warn level. */
void		 svc_log_sofia(void);
/* Only errors from sofia-sip from now on (before tearing down). */
void		 svc_quiet_sofia(void);

uint64_t	 svc_now_ms(void);

/* Sets up the root; SIGINT/SIGTERM end svc_run(). */
void		 svc_init(struct svc *, const char *prog, const char *role);
/* Runs until a signal: SIP, ispd, timers. Returns when asked to stop. */
void		 svc_run(struct svc *);
/* Closes the ispd session (records are withdrawn by ispd) and frees. */
void		 svc_close(struct svc *);
/* Writes "PORT\n" to path (atomically: temp file, then rename).
 * Returns 0 or -1 with errno. */
int		 svc_write_port_file(const char *path, unsigned port);
/* Opens the SIP transports (UDP and TCP) of url, e.g.
 * "sip:127.0.0.1:5060" (port 0 picks one, the same for both), with a
 * default leg that hands every request to cb. Sets s->sip_addr and
 * writes the port file when one is given. Exits on failure. */
nta_agent_t	*svc_sip_listen(struct svc *, const char *url,
		    nta_request_f *cb, void *magic, const char *port_file,
		    nta_leg_t **leg);
/* Where a request came from: peer address and transport. Returns 0, or
 * -1 when unknown. */
int		 svc_sip_source(nta_agent_t *, nta_incoming_t *, char *ip,
		    size_t iplen, unsigned *port, const char **transport);
/* Sets the instance id: id, or ROLE@HOST:PORT of the SIP address.
 * Returns -1 when it does not fit a client name (1-64 printable). */
int		 svc_set_id(struct svc *, const char *id);
/* Announces this instance into INSTANCES (no TTL: it dies with the
 * session). */
int		 svc_announce_instance(struct svc *);
/*
 * The options of the session to ispd, the same in both services and as
 * ispctl's (src/common/clientconf.c): --ispd (repeatable, each a list
 * "A,B"; default $ISPD_SERVER, else ISP_DEFAULT_SERVER), --tls,
 * --tls-ca, --tls-cert, --tls-key, --tls-server-name, --secret-file.
 * SVC_CONN_OPTIONS goes into the program's struct option table; its
 * getopt loop hands these values to svc_conn_option().
 */
enum {
	SVC_O_ISPD = 1000,
	SVC_O_CONFIG,
};
#define SVC_CONN_OPTIONS \
	{ "ispd", required_argument, NULL, SVC_O_ISPD }, \
	CLIENTCONF_OPTIONS, \
	{ "config", required_argument, NULL, SVC_O_CONFIG }
/* Keywords of the configuration file whose value is a path (relative
 * to the file's directory). */
#define SVC_CONN_PATHS	"port-file", "tls-ca", "tls-cert", "tls-key", \
			"secret-file"
/* The usage lines of these options. */
#define SVC_CONN_USAGE \
	"  --ispd HOST:PORT[,HOST:PORT...]  the reflectors (repeatable; default\n" \
	"                         $ISPD_SERVER, else " ISP_DEFAULT_SERVER ")\n" \
	"  --tls                  TLS to ispd, its certificate checked against\n" \
	"                         --tls-ca (else the system's CAs) and its name\n" \
	"  --tls-ca FILE          CA certificates (PEM) of ispd's certificate\n" \
	"  --tls-cert FILE        a client certificate (PEM), with --tls-key\n" \
	"  --tls-key FILE         its key (PEM, unencrypted)\n" \
	"  --tls-server-name N    the name ispd's certificate must bear\n" \
	"                         (default the host of --ispd)\n" \
	"  --secret-file FILE     the shared secret of --id, on the first line\n" \
	"                         of a file only its owner can read\n" \
	"  --config FILE          every option above as 'keyword value' lines;\n" \
	"                         the command line wins over the file\n"

/* Takes one of SVC_CONN_OPTIONS (ch) into cc; a bad value is a usage
 * error. Returns 1 when ch was one of them, else 0. */
int		 svc_conn_option(const char *prog,
		    void (*usage)(FILE *, int), struct clientconf *cc, int ch,
		    const char *arg);
/* After the option loop: $ISPD_SERVER or the default when no --ispd,
 * and the checks that need no server. Usage errors exit 2. */
void		 svc_conn_finish(const char *prog,
		    void (*usage)(FILE *, int), struct clientconf *cc);
/* Reads --config's file into the argument vector (clientconf_args());
 * exits 2 on an error in it. */
int		 svc_config_args(const char *prog, int argc, char **argv,
		    const struct option *opts, const char *const *paths,
		    const char *const *repeatable, char ***out);

/* Exit codes: 2 for a usage error (as svc_usage_error()), 4 when ispd
 * refused the service (its secret, its certificate), as ispctl's. */
#define SVC_EXIT_USAGE		2
#define SVC_EXIT_REFUSED	4

/* aor.c */
/* Writes the canonical AOR of url (RFC 3261 §10.3 step 5: scheme, user,
 * host (lower case) and port; parameters and headers dropped; escapes
 * undone except for '%' and '|', which stay escaped so the key
 * separator stays unambiguous). Returns its length, or -1 when url has
 * no host, is not sip/sips, or does not fit. */
int		 aor_canon(const url_t *, char *out, size_t outlen);
/* "AOR|" + id into out. Returns the length or -1 when it does not
 * fit SIP_KEY_MAX. */
int		 aor_key(const char *aor, const char *id, char *out,
		    size_t outlen);

/* One header's value (without the name) as text in home; NULL when out
 * of memory. Use instead of sip_header_as_string(). */
char		*svc_header_text(su_home_t *, const void *header);

#endif
