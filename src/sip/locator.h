/*
 * locator: the index behind isp-locator. It is fed the changes of a
 * mirror of SIP_REGISTRATION (merged over the reflectors by libisp) and
 * answers "where is this AOR now" with the contacts of its bindings.
 *
 * It keeps its own index by AOR beside the mirror: a mirror answers a
 * key prefix by walking every record, and a lookup per INVITE must not
 * cost O(registrations).
 */
#ifndef ISP_LOCATOR_H
#define ISP_LOCATOR_H

#include <sofia-sip/sip.h>

#include "hash.h"
#include "isp.h"

struct loc_binding {
	struct loc_binding	*next;
	char			*key;		/* "AOR|id" */
	char			*contact;	/* URI */
	char			*q;		/* "" when none */
	char			*received;	/* "ip:port" */
	char			*transport;
	char			*path;
	int			 stale;		/* not (yet) in this snapshot */
};

struct loc_aor {
	struct hash_node	 node;
	char			*aor;
	size_t			 aor_len;
	struct loc_binding	*bindings;
};

struct locator {
	struct hash	 aors;
	size_t		 nbindings;
	int		 ready;		/* a snapshot has ended at least once */
	uint64_t	 lookups;
	uint64_t	 found;
	uint64_t	 bad_uri;	/* not a sip: AOR (416) */
	uint64_t	 not_ready;	/* before the first snapshot (503) */
};

void		 loc_init(struct locator *);
void		 loc_free(struct locator *);
/* Applies one change of the SIP_REGISTRATION mirror. END after a
 * loc_mark_stale() drops every binding the new snapshot did not
 * mention. */
void		 loc_event(struct locator *, const struct isp_event *);
/* Called when the mirror went with its client and a new one is to come:
 * what the new snapshot does not repeat goes at its end. Until then
 * lookups keep answering from what is known. */
void		 loc_mark_stale(struct locator *);
/* The Contacts for the AOR of uri (q kept, received added for a contact
 * behind NAT) into *out, allocated in home. Returns how many, 0 when
 * none, -1 when uri is no AOR. */
int		 loc_lookup(struct locator *, su_home_t *, const url_t *uri,
		    sip_contact_t **out);

#endif
