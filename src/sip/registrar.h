/*
 * registrar: the REGISTER processing of isp-registrar (RFC 3261 §10.3),
 * with Path (RFC 3327), +sip.instance and reg-id (RFC 5626), and digest
 * authentication (RFC 7616/8760, MD5 and SHA-256).
 *
 * The core is free of sockets: reg_handle() takes a parsed request (a
 * sofia-sip sip_t), where it came from, and the time, changes the binding
 * store, calls the publish hooks, and fills a reply that the caller
 * sends. The daemon (registrar_main.c) wires it to nta and libisp; the
 * unit tests and the fuzz target call it directly.
 *
 * Files: reg_core.c (the REGISTER steps), reg_store.c (bindings by AOR,
 * expiry heap), reg_auth.c (credentials, nonces, digest), reg_publish.c
 * (a binding as SIP_REGISTRATION fields).
 */
#ifndef ISP_REGISTRAR_H
#define ISP_REGISTRAR_H

#include <stdint.h>
#include <time.h>

#include <sofia-sip/sip.h>

#include "hash.h"
#include "isp.h"

struct registrar;

/* One binding of an AOR: a contact, with its identity and state. */
struct binding {
	struct aor_entry	*aor;
	struct binding		*next;		/* in aor->bindings */
	size_t			 heap_idx;	/* in the expiry heap */

	char	*key;		/* "AOR|id" */
	size_t	 key_len;
	char	*id;		/* instance[;reg-id=N], else the contact URI */
	char	*contact;	/* contact URI */
	char	*contact_hdr;	/* Contact as registered, without expires */
	char	*q;		/* "" when absent */
	char	*received;	/* "ip:port" the REGISTER came from */
	char	*transport;	/* "udp", "tcp" */
	char	*path;		/* Path values joined by ",", or "" */
	char	*instance;	/* +sip.instance, or "" */
	char	*reg_id;	/* reg-id, or "" */
	char	*user_agent;	/* or "" */
	char	*call_id;
	uint32_t cseq;		/* of the last REGISTER that touched it */
	time_t	 expires_at;	/* absolute */

	/* What was last published: a refresh that changes nothing else
	 * keeps these, so its announce is byte-identical and ispd only
	 * restarts the TTL (no event to subscribers). */
	time_t	 pub_expires;
	uint32_t pub_cseq;
};

struct aor_entry {
	struct hash_node	 node;
	char			*aor;
	size_t			 aor_len;
	struct binding		*bindings;
	unsigned		 nbindings;
};

/* How a binding leaves the store. */
enum reg_gone {
	REG_GONE_REMOVED = 1,	/* Expires 0, Contact: * */
	REG_GONE_EXPIRED = 2,	/* not refreshed in time */
};

/* Publish hooks; NULL members are skipped. announce gets the binding
 * after each change or refresh, with the TTL ispd should give it;
 * withdraw gets it just before it is freed. */
struct reg_hooks {
	void	(*announce)(struct registrar *, const struct binding *,
		    unsigned ttl_s, void *arg);
	void	(*withdraw)(struct registrar *, const struct binding *,
		    enum reg_gone, void *arg);
	void	*arg;
};

#define REG_MAX_ALGS	2

struct reg_config {
	const char	*id;		/* reg_server field */
	unsigned	 min_expires;	/* below: 423 (0: no minimum) */
	unsigned	 max_expires;	/* above: lowered to it */
	unsigned	 default_expires;	/* when the REGISTER says none */
	unsigned	 max_contacts;	/* per AOR; 0: no limit */
	const char	**domains;	/* AOR hosts served; none: any */
	size_t		 ndomains;
	/* Authentication: on when realm is set. */
	const char	*realm;
	const char	*credentials;	/* file: "user:password" lines */
	const char	*algs[REG_MAX_ALGS];	/* "SHA-256", "MD5" in order */
	size_t		 nalgs;
	unsigned	 nonce_ttl_s;
};

/* Where a request came from. */
struct reg_src {
	char		 ip[64];	/* "192.0.2.1" or "2001:db8::1" */
	unsigned	 port;
	const char	*transport;	/* "udp", "tcp" */
};

/* The reply reg_handle() wants sent. Strings and headers are allocated
 * in the home given to reg_handle(). */
struct reg_reply {
	int			 status;
	const char		*phrase;
	sip_contact_t		*contacts;	/* 200: every current binding */
	sip_path_t		*path;		/* 200: Path, echoed */
	int			 require_outbound;	/* 200 (RFC 5626 §6) */
	unsigned		 min_expires;	/* 423 */
	sip_www_authenticate_t	*challenges;	/* 401 */
	const char		*unsupported;	/* 420 */
	const char		*allow;		/* 405 */
	const char		*why;		/* for the log, or NULL */
};

/* The answers counted by code in reg_stats.by_code (reg_codes[], in
 * reg_core.c); any other code is counted last. */
#define REG_NCODES	9
extern const int	 reg_codes[REG_NCODES];

struct reg_stats {
	uint64_t	 by_code[REG_NCODES + 1];
	uint64_t	 registers;
	uint64_t	 ok;
	uint64_t	 refused;
	uint64_t	 refreshes;	/* pure refreshes: TTL only */
	uint64_t	 changes;	/* announces that change a record */
	uint64_t	 expired;
};

struct registrar {
	struct reg_config	 cfg;
	struct reg_hooks	 hooks;
	struct hash		 aors;
	size_t			 nbindings;
	struct binding		**heap;		/* by expires_at */
	size_t			 heap_len;
	size_t			 heap_cap;
	struct reg_auth		*auth;		/* NULL: no authentication */
	struct reg_stats	 stats;
};

/* reg_core.c */
/* Sets up a registrar. Returns 0, or -1 with a sentence in err (a
 * credentials file that cannot be read, for one). */
int		 reg_init(struct registrar *, const struct reg_config *,
		    const struct reg_hooks *, char *err, size_t errlen);
void		 reg_free(struct registrar *);
/* Processes one REGISTER. Never fails: every outcome is a reply. */
void		 reg_handle(struct registrar *, su_home_t *, const sip_t *,
		    const struct reg_src *, time_t now, struct reg_reply *);
/* Drops every binding whose expiry has passed (withdraw hook with
 * REG_GONE_EXPIRED). Returns how many. */
size_t		 reg_expire(struct registrar *, time_t now);
/* Calls the announce hook for every binding (when a new ispd client
 * is up: libisp replays on its own reconnects). */
void		 reg_replay(struct registrar *, time_t now);

/* reg_store.c */
struct aor_entry *store_aor_find(struct registrar *, const char *aor,
		    size_t len);
struct aor_entry *store_aor_get(struct registrar *, const char *aor,
		    size_t len);
void		 store_aor_maybe_free(struct registrar *, struct aor_entry *);
struct binding	*store_binding_find(struct aor_entry *, const char *id);
struct binding	*store_binding_new(struct registrar *, struct aor_entry *,
		    const char *id);
void		 store_binding_free(struct registrar *, struct binding *);
/* After expires_at changed. */
void		 store_binding_rescheduled(struct registrar *,
		    struct binding *);
/* The binding that expires first, or NULL. */
struct binding	*store_next_expiry(struct registrar *);
void		 store_free_all(struct registrar *);
/* Replaces *dst by a copy of src (NULL: ""). Returns 0 or -1. */
int		 store_set(char **dst, const char *src);

/* reg_auth.c */
struct reg_auth;
struct reg_auth	*auth_new(const struct reg_config *, char *err,
		    size_t errlen);
void		 auth_free(struct reg_auth *);
/* Checks the request's Authorization against the credentials. Returns
 * 0 when authenticated as the user of the AOR aor_user; otherwise fills
 * reply (401 with challenges, 403, 400) and returns -1. */
int		 auth_check(struct reg_auth *, su_home_t *, const sip_t *,
		    const char *aor_user, time_t now, struct reg_reply *);
/* Forgets nonces past their lifetime. */
void		 auth_expire(struct reg_auth *, time_t now);
/* The digest of RFC 7616 §3.4.1 for algorithm "MD5" or "SHA-256" (no
 * -sess), qop "auth" or none, into hex (65 bytes). Returns 0, or -1 for
 * an unknown algorithm. Exposed for the unit tests' RFC vectors. */
int		 auth_digest(const char *alg, const char *user,
		    const char *realm, const char *password,
		    const char *method, const char *uri, const char *nonce,
		    const char *nc, const char *cnonce, const char *qop,
		    char hex[65]);

/* reg_publish.c */
#define REG_NFIELDS	13
/* The SIP_REGISTRATION fields of a binding, in their published order;
 * values point into the binding or into bufs. */
struct reg_fields {
	struct isp_field	 f[REG_NFIELDS];
	char			 expires[24];
	char			 cseq[16];
};
void		 reg_fields(const struct registrar *, const struct binding *,
		    struct reg_fields *);

#endif
