/*
 * The ispd module for Kamailio 5.6: what its files share.
 *
 * Kamailio forks its SIP workers; usrloc's callbacks run in whichever
 * process changed a contact. One process of the module's own (the
 * client process, client.c) holds the only ispd session of this
 * Kamailio instance: workers hand it each change of a local contact as
 * one datagram (publish.c), it announces and withdraws the records in
 * SIP_REGISTRATION, and it writes the contacts other instances published
 * into the local usrloc, so lookup("location") finds them. The live
 * instances of INSTANCES are copied into shared memory for isp_route().
 */
#ifndef ISP_KAMAILIO_H
#define ISP_KAMAILIO_H

#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "core/locking.h"
#include "modules/usrloc/usrloc.h"

#define ISPK_MAX_SERVERS	16
/* A record as workers send it: key and fields, at most this many bytes
 * (a larger one is logged and not published). */
#define ISPK_MSG_MAX		16384
#define ISPK_NFIELDS		13
/* Instances isp_route() chooses from; more are left out, and logged. */
#define ISPK_MAX_INSTANCES	64
#define ISPK_ID_MAX		128
#define ISPK_URI_MAX		256
#define ISPK_ROLE_MAX		32

/* Module parameters, as Kamailio set them (ispd_mod.c). */
struct ispk_conf {
	char		*servers[ISPK_MAX_SERVERS];
	int		 nservers;
	char		*name;		/* client name, reg_server */
	char		*table;
	char		*domain;	/* the usrloc domain, "location" */
	char		*aor_domain;	/* for AORs without a domain */
	char		*secret;
	int		 tls;
	char		*tls_ca;
	char		*tls_cert;
	char		*tls_key;
	int		 path;		/* a Path through this node for
					 * contacts without one */
};

/* One live instance of INSTANCES, for isp_route(). */
struct ispk_instance {
	char		 id[ISPK_ID_MAX];
	char		 role[ISPK_ROLE_MAX];
	char		 uri[ISPK_URI_MAX];
	char		 host[64];	/* of uri, for isp_from() */
	unsigned	 port;
	int		 draining;
};

/* What ispd.status says. */
struct ispk_counters {
	int			 nup;		/* servers with a session */
	uint64_t		 published;	/* records announced */
	uint64_t		 withdrawn;
	uint64_t		 remote;	/* remote contacts in usrloc */
	uint64_t		 dropped;	/* changes not published */
	uint64_t		 events;	/* changes of SIP_REGISTRATION
						 * received from ispd */
};

/* Shared memory, written by the client process under lock (dropped by
 * the workers too). */
struct ispk_shared {
	gen_lock_t		 lock;
	struct ispk_counters	 n;
	int			 ninstances;
	struct ispk_instance	 instances[ISPK_MAX_INSTANCES];
};

extern struct ispk_conf		 ispk;
extern struct ispk_shared	*ispk_shm;
extern usrloc_api_t		 ispk_ul;
extern udomain_t		*ispk_dom;
/* Datagram socket pair: workers write [1], the client process reads [0]. */
extern int			 ispk_sock[2];
/* 1 in the client process: usrloc changes made there are remote. */
extern int			 ispk_in_client;

/* publish.c */
/* The usrloc callback (insert, update, delete, expire). */
void	 ispk_ul_cb(ucontact_t *, int type, void *);

/* client.c: the client process's life; never returns. */
void	 ispk_client_main(void);

/*
 * The message a worker sends: op 'A' (announce, ttl set) or 'W'
 * (withdraw); then the key, then nfields (name NUL value NUL) pairs.
 * Values are SIP header text: no NUL in them.
 */
struct ispk_msg_head {
	uint8_t		 op;
	uint8_t		 nfields;
	uint16_t	 key_len;
	uint32_t	 ttl;
};

#endif
