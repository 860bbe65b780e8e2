/*
 * acl.h: the interface of acl.c, the rules file's rights
 * (docs/SECURITY.md), for every file that checks a right. A session's
 * cache of rights, struct acl_cache, is in ispd.h only because struct
 * session embeds it.
 */
#ifndef ISPD_ACL_H
#define ISPD_ACL_H

#include "ispd.h"

#define ACL_SUBSCRIBE	0x01
#define ACL_ANNOUNCE	0x02
#define ACL_CREATE	0x04
#define ACL_ALL		(ACL_SUBSCRIBE | ACL_ANNOUNCE | ACL_CREATE)
/* Operator rights: never in ACL_ALL, never given by "default allow". */
#define ACL_KICK	0x08
#define ACL_EVICT	0x10
#define ACL_DROP	0x20
#define ACL_HELD	0x40
#define ACL_ADMIN	(ACL_KICK | ACL_EVICT | ACL_DROP | ACL_HELD)

struct acl	*acl_new(const char *file);
void		 acl_free(struct acl *);
int		 acl_rule_add(struct acl *, int allow, char **words, int nwords,
		    int line, char *err, size_t errsz);
int		 acl_default(struct acl *, int deny, int line);
size_t		 acl_nrules(const struct acl *);
void		 acl_set(struct acl *);
int		 acl_check(struct session *, uint8_t ops, const struct table *,
		    struct proto_bytes name, uint32_t req_id, char *why,
		    size_t whysz);
int		 acl_may(struct session *, uint8_t op, const struct table *);
void		 acl_admin_open(int open);
void		 acl_table_dropped(void);
int		 acl_admin_check(struct session *, uint8_t op,
		    struct proto_bytes table, uint32_t req_id, char *why,
		    size_t whysz);
void		 acl_free_all(void);

#endif /* ISPD_ACL_H */
