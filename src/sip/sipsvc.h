/*
 * sipsvc: what isp-registrar and isp-locator share. Both are one
 * sofia-sip event loop (su_root) that also drives a libisp client in the
 * application-loop mode (isp_fd/isp_want/isp_process), so every SIP
 * callback and every ispd event runs on one thread and no state needs a
 * lock. The session to ispd is soft: when it ends the service keeps
 * serving SIP, reconnects every second, and on reconnect replays what it
 * owns (the registrar its bindings, both their INSTANCES record).
 *
 * Files: svc.c (the loop, the ispd session, INSTANCES, logging, the
 * listen/port-file plumbing), aor.c (address-of-record and binding keys).
 */
#ifndef ISP_SIPSVC_H
#define ISP_SIPSVC_H

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
	const char	*ispd;		/* HOST:PORT of ispd */
	char		 sip_addr[160];	/* "sip:127.0.0.1:5060" */
	time_t		 started;
	su_root_t	*root;
	su_home_t	 home[1];

	isp_client	*isp;		/* NULL while disconnected */
	su_wait_t	 isp_wait[1];
	int		 isp_fd;	/* dup() of the client's socket */
	int		 isp_index;	/* su_root registration, or -1 */
	int		 isp_events;	/* SU_WAIT_* asked for */
	int		 isp_ready;	/* the socket woke the loop */
	uint64_t	 next_connect_ms;
	uint64_t	 connects;	/* sessions made so far */
	unsigned	 connect_failures;	/* in a row */

	/* Called after each (re)connect: replay what the service owns,
	 * subscribe. Returns 0, or -1 to drop the session and retry. */
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
/* The default ispd address: $ISPD_SERVER, else ISP_DEFAULT_SERVER. */
const char	*svc_default_ispd(void);

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
