/*
 * res_pjsip_isp: what the module's files share (docs/ASTERISK.md).
 *
 * One Asterisk module, one file per concern:
 *   res_pjsip_isp.c	loading, reloading, unloading; the libisp client and
 *			the thread that connects it
 *   config.c		isp.conf, checked whole with an error per line
 *   contacts.c		SIP_REGISTRATION records → PJSIP contacts, on a
 *			taskprocessor of its own, paced and coalesced per key
 *   backlog.c		how far behind the subscribers of endpoint and device
 *			state messages are, for that pacing
 *   gate.c		a PJSIP module: a stray REGISTER cannot touch mirrored
 *			contacts; only the serving instance sends them MWI
 *   instance.c		this Asterisk in INSTANCES, drain, placement
 *   cli.c		CLI commands, the AMI action, dialplan functions
 *
 * Threads: libisp runs on its own thread (mode 3) and hands each changed
 * key to contacts.c; the contacts taskprocessor applies them; PJSIP's
 * threads run gate.c; the CLI, AMI and dialplan read. The client and its
 * mirrors are replaced only under ispa_lock held for writing; everyone
 * else reads them under it held for reading.
 */
#ifndef ISP_ASTERISK_H
#define ISP_ASTERISK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "isp.h"

/* How a binding's canonical AOR (sip:2001@voip.example.com) names the
 * PJSIP AOR that holds its contact. */
enum ispa_aor_map {
	ISPA_AOR_USER,		/* 2001 (the default) */
	ISPA_AOR_USER_HOST,	/* 2001@voip.example.com */
	ISPA_AOR_FULL,		/* sip:2001@voip.example.com */
};

/* isp.conf, section [general]. Every string is owned. */
struct ispa_conf {
	char			*servers[ISP_MAX_SERVERS];
	size_t			 nservers;
	char			*name;		/* client name, INSTANCES key */
	char			*uri;		/* this Asterisk's SIP URI */
	char			*table;		/* SIP_REGISTRATION */
	enum ispa_aor_map	 aor_map;
	unsigned		 load_pace;	/* contacts applied per second */
	int			 stale_grace_s;
	int			 tls;
	char			*tls_ca_file;
	char			*tls_cert_file;
	char			*tls_key_file;
	char			*tls_server_name;
	char			*secret;	/* read from secret_file */
};

#define ISPA_CONF_FILE		"isp.conf"
#define ISPA_ROLE		"asterisk"
#define ISPA_DEFAULT_PACE	50000
/* The longest field a contact takes from a record (contact, path,
 * received, user_agent, call_id): PJSIP keeps them in string fields,
 * and a record with a longer one is skipped as bad. */
#define ISPA_MAX_FIELD_BYTES	2048

/* The running module. */
struct ispa {
	pthread_rwlock_t	 lock;		/* ispa_lock: the members below */
	struct ispa_conf	*conf;
	isp_client		*client;	/* NULL until connected */
	isp_mirror		*registrations;	/* conf->table */
	isp_mirror		*instances;	/* INSTANCES */
	int			 draining;
	time_t			 started;
};
extern struct ispa ispa;

/* res_pjsip_isp.c */
void	 ispa_rdlock(void);
void	 ispa_wrlock(void);
void	 ispa_unlock(void);
/* A line about each server's session, for the status commands. */
unsigned ispa_servers_up(void);

/* binding.c: what a SIP_REGISTRATION record says, checked; no
 * Asterisk in it, so it is unit-tested and fuzzed on its own. */
#define ISPA_MAX_AOR_BYTES	128
struct binding_fields {
	const char	*aor;
	const char	*contact;	/* not "" */
	size_t		 contact_len;
	const char	*path;		/* NULL when absent */
	const char	*user_agent;
	const char	*call_id;
	char		 aor_name[ISPA_MAX_AOR_BYTES];	/* the PJSIP AOR */
	char		 received_host[64];	/* "" when none */
	int		 received_port;		/* 0 when none */
};
/* Fills f from the record's fields (pointers into it), or says why the
 * record cannot be a contact: a static sentence. */
const char *binding_parse(const struct isp_record *, enum ispa_aor_map,
	    struct binding_fields *f);
/* "ip:port" or "[v6]:port"; -1 when it is neither. */
int	 binding_hostport(const char *s, char *host, size_t size, int *port);
/* The PJSIP AOR name of a canonical AOR, in buf; -1 when it has no user
 * part or does not fit. */
int	 binding_aor_name(enum ispa_aor_map, const char *aor, char *buf,
	    size_t size);

/* config.c: NULL when the file has an error (each one logged with its
 * line) or is missing. */
struct ispa_conf *conf_load(void);
void	 conf_free(struct ispa_conf *);
/* 1 when a reload from a to b needs a new client. */
int	 conf_differs(const struct ispa_conf *, const struct ispa_conf *);
const char *conf_aor_map_name(enum ispa_aor_map);

/* contacts.c */
struct contacts_stats {
	size_t	 contacts;	/* PJSIP contacts this module made */
	size_t	 no_aor;	/* bindings whose AOR is not configured here */
	size_t	 skipped;	/* bad records, or AORs that qualify */
	size_t	 pending;	/* keys changed and not yet applied */
	uint64_t applied;	/* changes applied since load */
	size_t	 watched;	/* subscribers' taskprocessors paced on */
	uint64_t waits;		/* windows held back: Asterisk was behind */
};
int	 contacts_init(void);
/* Stops applying changes, deletes every contact this module made (and
 * no other), frees. */
void	 contacts_shutdown(void);
/* From the libisp thread: key changed in the mirror (on_change). */
void	 contacts_changed(const void *key, size_t key_len);
/* From the libisp thread: the first snapshot of a new client ended;
 * contacts of keys it does not hold go. */
void	 contacts_resync(void);
void	 contacts_stats(struct contacts_stats *);
/* What became of a binding's key: "contact", "no AOR here", or the
 * reason it was skipped; NULL when not applied yet. Into buf. */
const char *contacts_state(const char *key, char *buf, size_t size);
/* 1 when the PJSIP AOR holds contacts this module made. */
int	 contacts_aor_mirrored(const char *aor_name);
/* The account (PJSIP AOR name) of the mirrored contact whose URI, as a
 * Request-URI, is uri; 0 and the name in buf, or -1. */
int	 contacts_uri_account(const char *uri, char *buf, size_t size);
/* The contact's URI (request-URI form) as contacts_uri_account() keys
 * it, of any SIP URI text; -1 when it does not parse. */
int	 contacts_uri_key(const char *uri, size_t len, char *buf,
	    size_t size);

/* backlog.c: only the contacts taskprocessor calls these. Looks for
 * the taskprocessors of the endpoint and device state topics'
 * subscribers, a bounded step at a time: call it once per window. */
void	 backlog_scan(void);
/* The longest queue among them, in tasks. */
long	 backlog_max(void);
size_t	 backlog_watched(void);
/* Forgets them (at load: contacts_init()). */
void	 backlog_reset(void);

/* gate.c */
int	 gate_init(void);
void	 gate_shutdown(void);
uint64_t gate_registers_refused(void);
uint64_t gate_notifies_dropped(void);

/* instance.c */
/* Announces this instance (again, after a drain change). */
int	 instance_announce(void);
void	 instance_withdraw(void);
/* Placement over the INSTANCES mirror: the id of the live, undrained
 * instance of role that serves account, in buf. 0, or -1 when none (or
 * not known yet). Under ispa_lock held for reading. */
int	 instance_place(const char *role, const char *account, char *buf,
	    size_t size);
/* 1 when this Asterisk serves the account. */
int	 instance_serves(const char *account);

/* cli.c */
int	 cli_init(void);
void	 cli_shutdown(void);

#endif
