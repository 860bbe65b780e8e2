/*
 * contacts: the SIP_REGISTRATION mirror made into PJSIP contacts.
 *
 * The libisp thread only says which key changed (contacts_changed): the
 * key goes into a set of pending keys, and the first key of an empty set
 * wakes our own taskprocessor. The taskprocessor takes keys out of the
 * set, reads each record's *current* value from the mirror and makes the
 * PJSIP contact agree with it: created, updated, deleted, through
 * ast_sorcery_create/update/delete, so Asterisk's own observers run (the
 * contact's status, the endpoint's state, the device state
 * PJSIP/<endpoint>, unsolicited MWI) exactly as when a phone registers
 * here. A key that changes ten times before it is applied is applied
 * once, with its latest value: a table of 100,000 bindings arriving at
 * once costs 100,000 contacts, never a queue of events.
 *
 * Pacing: keys are applied at once, but load_pace per second at most
 * (a budget per window of 20 ms), never more than FLIGHT_MAX changes of
 * ours waiting for Asterisk's contact observers, and no window starts
 * while any Asterisk taskprocessor is over its high-water mark or a
 * subscriber of the endpoint topics is falling behind (backlog.c), so
 * loading a large table goes as fast as Asterisk takes it and never
 * pushes Asterisk into overload (in which PJSIP answers new requests
 * with 503).
 *
 * Validity is ispd's: a mirrored contact lives exactly as long as its
 * record is in the mirror. Its expiration time is set ten years ahead
 * (res_pjsip deletes dynamic contacts whose time has passed, and zero
 * counts as passed), it is never qualified (AORs that qualify are
 * refused, with the fix logged), and prune_on_boot is off.
 *
 * Only this taskprocessor writes the binding state below; readers (CLI,
 * the gate) find immutable objects: a binding that changes is replaced.
 */
#include "asterisk.h"

#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "asterisk/astobj2.h"
#include "asterisk/logger.h"
#include "asterisk/named_locks.h"
#include "asterisk/paths.h"
#include "asterisk/res_pjsip.h"
#include "asterisk/sorcery.h"
#include "asterisk/taskprocessor.h"
#include "asterisk/time.h"
#include "asterisk/utils.h"

#include "isp_asterisk.h"

#define SLICE_MS		20
/* While a taskprocessor is in alert or a subscriber's queue is long
 * (asterisk_behind()), wait this long between looks, and at most this
 * long in all before applying one more slice anyway. */
#define ALERT_POLL_MS		10
#define ALERT_WAIT_MAX_MS	5000
/*
 * Sorcery runs the observers of each contact change (res_pjsip's contact
 * status and endpoint state, unsolicited MWI) as one task on the contact
 * type's serializer, whose high-water mark is 500 tasks; each such task
 * waits on two more serializers, so the observers, not the sorcery
 * writes, bound the rate. Our own observer on that serializer counts
 * the changes whose observers have run: at most FLIGHT_MAX of ours are
 * ever queued there (100: as fast as 200 on this machine, and the less
 * the subscribers downstream of them, stasis's, fall behind). Should the
 * count stop moving for FLIGHT_STUCK_MS (a change whose observers
 * sorcery could not queue), it starts over.
 */
#define FLIGHT_MAX		100
/*
 * An AOR's first mirrored contact, or its last one gone, changes the
 * endpoint's state and the device state PJSIP/<endpoint>: stasis
 * messages whose subscribers (AMI, the PBX's hints) queue them
 * on their own taskprocessors, out of sight of our observer. A load of
 * many AORs at once would flood those: at most FLIPS_PER_SLICE such
 * changes per window (1,250 per second: at 5,000, the last contacts of
 * 1,000 AORs removed at once overflowed stasis's endpoint cache, and at
 * 2,500 so did the first contacts of 1,000 AORs on a busy machine).
 */
#define FLIPS_PER_SLICE		25
/*
 * Downstream of the contact serializer, every subscriber of the endpoint
 * and device state topics queues each message on a taskprocessor of its
 * own (backlog.c): no window starts while one of them holds more than
 * BACKLOG_HIGH tasks, half their high-water mark (500), so that what is
 * already in flight when it stops (FLIGHT_MAX changes, a contact status
 * each, and a window's FLIPS_PER_SLICE endpoint states) still fits
 * below it. At 100, loading 100,000 bindings took 6.0 s instead of 4.3.
 */
#define BACKLOG_HIGH		250
#define FLIGHT_POLL_MS		1
#define FLIGHT_STUCK_MS		2000
#define CONTACT_LIFE_S		(10 * 365 * 24 * 3600)
#define BUCKETS			8191
#define MAX_AOR_BYTES		ISPA_MAX_AOR_BYTES

enum binding_state {
	B_CONTACT,	/* a PJSIP contact of ours stands for it */
	B_NO_AOR,	/* its AOR is not configured on this Asterisk */
	B_SKIPPED,	/* bad record, or an AOR that qualifies */
};

/* What became of one key. Immutable once linked. */
struct binding {
	enum binding_state	 state;
	char			 aor[MAX_AOR_BYTES];	/* PJSIP AOR name */
	char			 contact_id[MAX_AOR_BYTES + 40];
	struct uri_entry	*uri;		/* B_CONTACT: its index entry */
	char			 reason[240];	/* B_SKIPPED */
	char			 key[];
};

/* Request-URI of a mirrored contact → its account, for the gate. */
struct uri_entry {
	char			 account[MAX_AOR_BYTES];
	char			 uri[];
};

/* Mirrored contacts per PJSIP AOR, for the gate. */
struct aor_count {
	int			 n;
	char			 name[];
};

struct pend {
	char			 key[0];
};

/* The contact a record asks for: its fields, and its URI as PJSIP
 * prints it (for the contact, and as a Request-URI for the gate). */
struct want {
	struct binding_fields	 f;
	char			 uri[ISPA_MAX_FIELD_BYTES + 64];
	char			 uri_key[ISPA_MAX_FIELD_BYTES + 64];
};

static struct ao2_container	*bindings;
static struct ao2_container	*pending;	/* its lock guards scheduled */
static struct ao2_container	*uris;
static struct ao2_container	*aors;
static struct ast_taskprocessor	*tps;
static int			 scheduled;	/* a work task is queued or running */
static volatile int		 stopping;
static size_t			 n_contacts, n_no_aor, n_skipped;
static uint64_t			 n_applied;
static uint64_t			 n_waits;	/* windows held back */
static ast_mutex_t		 flight_lock = AST_MUTEX_INIT_VALUE;
static int			 in_flight;	/* under flight_lock */
static uint64_t			 flight_moved_ms;	/* under flight_lock */
static int			 observing;

static int	work(void *);
static int	remove_one(void *, void *, int);
static uint64_t	now_ms(void);

AO2_STRING_FIELD_HASH_FN(binding, key)
AO2_STRING_FIELD_CMP_FN(binding, key)
AO2_STRING_FIELD_HASH_FN(pend, key)
AO2_STRING_FIELD_CMP_FN(pend, key)
AO2_STRING_FIELD_HASH_FN(uri_entry, uri)
AO2_STRING_FIELD_CMP_FN(uri_entry, uri)
AO2_STRING_FIELD_HASH_FN(aor_count, name)
AO2_STRING_FIELD_CMP_FN(aor_count, name)

static void
binding_destroy(void *obj)
{
	struct binding	*b = obj;

	ao2_cleanup(b->uri);
}

/* pjlib wants every thread that calls it registered; the taskprocessor's
 * thread is Asterisk's, not PJSIP's. */
static void
pj_thread_ensure(void)
{
	static __thread pj_thread_desc	 desc;
	pj_thread_t			*thread;

	if (pj_thread_is_registered())
		return;
	memset(desc, 0, sizeof(desc));
	pj_thread_register("isp-contacts", desc, &thread);
}

int
contacts_uri_key(const char *text, size_t len, char *buf, size_t size)
{
	pj_pool_t	*pool;
	pjsip_uri	*uri;
	char		*copy;
	int		 n = -1;

	if (len == 0 || len > ISPA_MAX_FIELD_BYTES)
		return -1;
	pj_thread_ensure();
	if ((pool = pjsip_endpt_create_pool(ast_sip_get_pjsip_endpoint(),
	    "isp-uri", 512, 512)) == NULL)
		return -1;
	/* The parser keeps pointers into its input. */
	copy = pj_pool_alloc(pool, len + 1);
	memcpy(copy, text, len);
	copy[len] = '\0';
	uri = pjsip_parse_uri(pool, copy, len, 0);
	if (uri != NULL && (PJSIP_URI_SCHEME_IS_SIP(uri) ||
	    PJSIP_URI_SCHEME_IS_SIPS(uri)))
		n = pjsip_uri_print(PJSIP_URI_IN_REQ_URI, uri, buf, size - 1);
	pjsip_endpt_release_pool(ast_sip_get_pjsip_endpoint(), pool);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/*
 * The contact URI: the registered one, except that a phone reached
 * without a Path is reached where its REGISTER came from (received), as
 * res_pjsip_nat's rewrite_contact does for phones that register here.
 * With a Path the border gateway knows the way: the URI stays.
 */
static const char *
want_uri(struct want *w)
{
	pj_pool_t	*pool;
	pjsip_uri	*uri;
	pjsip_sip_uri	*sip;
	char		*copy;
	int		 n1, n2;
	const char	*why = NULL;

	pj_thread_ensure();
	if ((pool = pjsip_endpt_create_pool(ast_sip_get_pjsip_endpoint(),
	    "isp-contact", 512, 512)) == NULL)
		return "out of memory";
	copy = pj_pool_alloc(pool, w->f.contact_len + 1);
	memcpy(copy, w->f.contact, w->f.contact_len);
	copy[w->f.contact_len] = '\0';
	uri = pjsip_parse_uri(pool, copy, w->f.contact_len, 0);
	if (uri == NULL || !(PJSIP_URI_SCHEME_IS_SIP(uri) ||
	    PJSIP_URI_SCHEME_IS_SIPS(uri))) {
		why = "its contact is not a SIP URI";
		goto out;
	}
	sip = pjsip_uri_get_uri(uri);
	if (ast_strlen_zero(w->f.path) && w->f.received_port != 0) {
		pj_strdup2(pool, &sip->host, w->f.received_host);
		sip->port = w->f.received_port;
	}
	n1 = pjsip_uri_print(PJSIP_URI_IN_CONTACT_HDR, uri, w->uri,
	    sizeof(w->uri) - 1);
	n2 = pjsip_uri_print(PJSIP_URI_IN_REQ_URI, uri, w->uri_key,
	    sizeof(w->uri_key) - 1);
	if (n1 <= 0 || n2 <= 0) {
		why = "its contact URI is too long";
		goto out;
	}
	w->uri[n1] = '\0';
	w->uri_key[n2] = '\0';
out:
	pjsip_endpt_release_pool(ast_sip_get_pjsip_endpoint(), pool);
	return why;
}

static void
aor_count_add(const char *name, int delta)
{
	struct aor_count	*a;
	size_t			 len = strlen(name);

	ao2_lock(aors);
	if ((a = ao2_find(aors, name, OBJ_SEARCH_KEY | OBJ_NOLOCK)) == NULL &&
	    delta > 0 && (a = ao2_alloc_options(sizeof(*a) + len + 1, NULL,
	    AO2_ALLOC_OPT_LOCK_NOLOCK)) != NULL) {
		memcpy(a->name, name, len + 1);
		ao2_link_flags(aors, a, OBJ_NOLOCK);
	}
	if (a != NULL) {
		a->n += delta;
		if (a->n <= 0)
			ao2_unlink_flags(aors, a, OBJ_NOLOCK);
		ao2_ref(a, -1);
	}
	ao2_unlock(aors);
}

/* How many mirrored contacts AOR aor_name has. */
static int
aor_count_get(const char *aor_name)
{
	struct aor_count	*a;
	int			 n;

	if (aors == NULL || (a = ao2_find(aors, aor_name, OBJ_SEARCH_KEY)) == NULL)
		return 0;
	n = a->n;
	ao2_ref(a, -1);
	return n;
}

int
contacts_aor_mirrored(const char *aor_name)
{
	return aor_count_get(aor_name) > 0;
}

int
contacts_uri_account(const char *uri, char *buf, size_t size)
{
	struct uri_entry	*u;

	if (uris == NULL || (u = ao2_find(uris, uri, OBJ_SEARCH_KEY)) == NULL)
		return -1;
	ast_copy_string(buf, u->account, size);
	ao2_ref(u, -1);
	return 0;
}

/*
 * Creates or updates the contact; 0, or -1 when sorcery refused it.
 * known: this binding already has a contact of that id, so look it up
 * and update it; else create it, looking up only when one is there
 * (a lookup in sorcery's memory wizard walks a long hash chain).
 */
/* A change of ours went to sorcery: its observers are queued. */
static void
flight_add(void)
{
	ast_mutex_lock(&flight_lock);
	if (in_flight++ == 0)
		flight_moved_ms = now_ms();
	ast_mutex_unlock(&flight_lock);
}

/* Our observer, last on the contact serializer: the observers of one
 * more change have run (a phone's own REGISTER here counts too, so the
 * count never goes below zero). */
static void
flight_done(const void *obj)
{
	ast_mutex_lock(&flight_lock);
	if (in_flight > 0)
		in_flight--;
	flight_moved_ms = now_ms();
	ast_mutex_unlock(&flight_lock);
}

static const struct ast_sorcery_observer flight_observer = {
	.created = flight_done,
	.updated = flight_done,
	.deleted = flight_done,
};

/* How many more changes may go to sorcery now. */
static int
flight_room(void)
{
	int	 room;

	ast_mutex_lock(&flight_lock);
	if (in_flight > 0 && now_ms() - flight_moved_ms > FLIGHT_STUCK_MS)
		in_flight = 0;
	room = FLIGHT_MAX - in_flight;
	ast_mutex_unlock(&flight_lock);
	return room;
}

static int
contact_put(const struct want *w, struct ast_sip_aor *aor, const char *id,
    int known)
{
	struct ast_sorcery		*sorcery = ast_sip_get_sorcery();
	struct ast_sip_contact		*c, *old;
	struct ast_sip_endpoint		*ep;
	struct ast_named_lock		*lock;
	const char			*path;
	int				 rc = 0;

	/* The registrar changes an AOR's contacts under this lock too. */
	if ((lock = ast_named_lock_get(AST_NAMED_LOCK_TYPE_MUTEX, "aor",
	    w->f.aor_name)) == NULL)
		return -1;
	ao2_lock(lock);
	path = aor->support_path ? S_OR(w->f.path, "") : "";
again:
	old = known ? ast_sorcery_retrieve_by_id(sorcery, "contact", id) : NULL;
	if (old != NULL && strcmp(old->uri, w->uri) == 0 &&
	    strcmp(old->path, path) == 0 &&
	    strcmp(old->user_agent, S_OR(w->f.user_agent, "")) == 0 &&
	    strcmp(old->call_id, S_OR(w->f.call_id, "")) == 0) {
		ao2_ref(old, -1);
		goto out;
	}
	c = old != NULL ? ast_sorcery_copy(sorcery, old) :
	    ast_sorcery_alloc(sorcery, "contact", id);
	if (c == NULL) {
		rc = -1;
		goto out_old;
	}
	ast_string_field_set(c, uri, w->uri);
	ast_string_field_set(c, path, path);
	ast_string_field_set(c, user_agent, S_OR(w->f.user_agent, ""));
	ast_string_field_set(c, call_id, S_OR(w->f.call_id, ""));
	ast_string_field_set(c, reg_server, ispa.conf->name);
	ast_string_field_set(c, outbound_proxy, S_OR(aor->outbound_proxy, ""));
	if (old == NULL)
		c->expiration_time = ast_tvadd(ast_tvnow(),
		    ast_samp2tv(CONTACT_LIFE_S, 1));
	c->qualify_frequency = 0;
	c->qualify_timeout = aor->qualify_timeout;
	c->authenticate_qualify = 0;
	c->prune_on_boot = 0;
	/* The endpoint named like the AOR, the pool's layout: it is whose
	 * mailboxes unsolicited MWI reads. */
	if ((ep = ast_sorcery_retrieve_by_id(sorcery, "endpoint",
	    w->f.aor_name)) != NULL) {
		ast_string_field_set(c, endpoint_name, w->f.aor_name);
		ao2_cleanup(c->endpoint);
		c->endpoint = ep;
	}
	rc = old != NULL ? ast_sorcery_update(sorcery, c) :
	    ast_sorcery_create(sorcery, c);
	ao2_ref(c, -1);
	if (rc == 0)
		flight_add();
	if (rc != 0 && old == NULL && !known) {
		known = 1;	/* it was there after all: update it */
		goto again;
	}
out_old:
	ao2_cleanup(old);
out:
	ao2_unlock(lock);
	ast_named_lock_put(lock);
	return rc;
}

static void
contact_delete(const struct binding *b)
{
	struct ast_sorcery	*sorcery = ast_sip_get_sorcery();
	struct ast_sip_contact	*c;
	struct ast_named_lock	*lock;

	lock = ast_named_lock_get(AST_NAMED_LOCK_TYPE_MUTEX, "aor", b->aor);
	if (lock != NULL)
		ao2_lock(lock);
	if ((c = ast_sorcery_retrieve_by_id(sorcery, "contact",
	    b->contact_id)) != NULL) {
		if (ast_sorcery_delete(sorcery, c) == 0)
			flight_add();
		ao2_ref(c, -1);
	}
	if (lock != NULL) {
		ao2_unlock(lock);
		ast_named_lock_put(lock);
	}
}

/*
 * Creates or updates b's contact, its gate index entry first: the
 * contact's observers run as soon as sorcery holds it (res_pjsip_mwi
 * sends its unsolicited NOTIFY then), and the gate must know whose it
 * is. Returns 0, or -1 with b->reason set and no index entry.
 */
static int
contact_indexed(struct binding *b, const struct want *w,
    struct ast_sip_aor *aor, const struct binding *old)
{
	int	 same = old != NULL && old->state == B_CONTACT &&
		    strcmp(old->contact_id, b->contact_id) == 0;

	if ((b->uri = ao2_alloc_options(sizeof(*b->uri) +
	    strlen(w->uri_key) + 1, NULL, AO2_ALLOC_OPT_LOCK_NOLOCK)) ==
	    NULL) {
		ast_copy_string(b->reason, "out of memory", sizeof(b->reason));
		return -1;
	}
	ast_copy_string(b->uri->account, w->f.aor_name,
	    sizeof(b->uri->account));
	strcpy(b->uri->uri, w->uri_key);
	ao2_link(uris, b->uri);
	if (contact_put(w, aor, b->contact_id, same) == -1) {
		ao2_unlink(uris, b->uri);
		ao2_replace(b->uri, NULL);
		snprintf(b->reason, sizeof(b->reason), "PJSIP refused "
		    "contact %s", b->contact_id);
		return -1;
	}
	return 0;
}

/* Takes a binding out of the counts and indexes (its contact is the
 * caller's business). */
static void
binding_forget(struct binding *b)
{
	switch (b->state) {
	case B_CONTACT:
		n_contacts--;
		aor_count_add(b->aor, -1);
		ao2_unlink(uris, b->uri);	/* linked by apply() */
		break;
	case B_NO_AOR:
		n_no_aor--;
		break;
	case B_SKIPPED:
		n_skipped--;
		break;
	}
}

static void
binding_count(struct binding *b)
{
	switch (b->state) {
	case B_CONTACT:
		n_contacts++;
		aor_count_add(b->aor, 1);	/* its URI: linked by apply() */
		break;
	case B_NO_AOR:
		n_no_aor++;
		break;
	case B_SKIPPED:
		n_skipped++;
		break;
	}
}

/*
 * Makes the contact of key agree with the mirror. Under ispa_lock.
 * Returns 1, having changed nothing, when the change would turn an AOR
 * on or off and *flips (the window's budget for that) is spent; else
 * 0.
 */
static int
apply(const char *key, int *flips)
{
	struct isp_record	*rec = NULL;
	struct binding		*old, *b;
	struct ast_sip_aor	*aor;
	struct want		 w;
	const char		*why;
	char			 hash[33];
	size_t			 klen = strlen(key);

	if (ispa.registrations == NULL)
		return 0;
	rec = isp_mirror_get(ispa.registrations, key, klen);
	old = ao2_find(bindings, key, OBJ_SEARCH_KEY);
	if (rec == NULL) {
		/* Before a new client's snapshot has ended, absent means
		 * not received yet: contacts_resync() decides then. */
		if (old != NULL && isp_mirror_ready(ispa.registrations)) {
			if (old->state == B_CONTACT &&
			    aor_count_get(old->aor) == 1 && (*flips)-- <= 0) {
				ao2_ref(old, -1);
				return 1;
			}
			if (old->state == B_CONTACT)
				contact_delete(old);
			binding_forget(old);
			ao2_unlink(bindings, old);
		}
		ao2_cleanup(old);
		return 0;
	}
	if ((b = ao2_alloc_options(sizeof(*b) + klen + 1, binding_destroy,
	    AO2_ALLOC_OPT_LOCK_NOLOCK)) == NULL)
		goto out;
	memcpy(b->key, key, klen + 1);
	b->state = B_SKIPPED;
	if ((why = binding_parse(rec, ispa.conf->aor_map, &w.f)) != NULL ||
	    (why = want_uri(&w)) != NULL) {
		ast_copy_string(b->reason, why, sizeof(b->reason));
	} else if ((aor = ast_sip_location_retrieve_aor(w.f.aor_name)) == NULL) {
		b->state = B_NO_AOR;
		ast_copy_string(b->aor, w.f.aor_name, sizeof(b->aor));
	} else {
		ast_copy_string(b->aor, w.f.aor_name, sizeof(b->aor));
		if (aor->qualify_frequency != 0) {
			snprintf(b->reason, sizeof(b->reason), "AOR %s "
			    "qualifies (qualify_frequency=%u): mirrored "
			    "contacts are never qualified; set it to 0",
			    w.f.aor_name, aor->qualify_frequency);
		} else if (aor_count_get(w.f.aor_name) == 0 &&
		    (*flips)-- <= 0) {
			ao2_ref(aor, -1);
			ao2_ref(b, -1);
			ao2_cleanup(old);
			isp_record_free(rec);
			return 1;
		} else {
			ast_md5_hash(hash, key);
			snprintf(b->contact_id, sizeof(b->contact_id), "%s;@%s",
			    w.f.aor_name, hash);
			if (contact_indexed(b, &w, aor, old) == 0)
				b->state = B_CONTACT;
		}
		ao2_ref(aor, -1);
	}
	if (b->state == B_SKIPPED && (old == NULL ||
	    old->state != B_SKIPPED || strcmp(old->reason, b->reason) != 0))
		ast_log(LOG_WARNING, "%s record '%.200s' skipped: %s\n",
		    ispa.conf->table, key, b->reason);
	if (old != NULL) {
		/* Gone, or moved to another AOR (a changed aor field). */
		if (old->state == B_CONTACT && (b->state != B_CONTACT ||
		    strcmp(old->contact_id, b->contact_id) != 0))
			contact_delete(old);
		binding_forget(old);
	}
	binding_count(b);
	ao2_link(bindings, b);		/* replaces old */
	ao2_ref(b, -1);
out:
	ao2_cleanup(old);
	isp_record_free(rec);
	return 0;
}

void
contacts_changed(const void *key, size_t key_len)
{
	struct pend	*p;
	char		 k[1024];
	int		 wake;

	if (pending == NULL)
		return;
	/* Keys are text; one with a NUL or over 1 KiB is no binding of
	 * ours (ispd's default key limit is 1024 bytes too). */
	if (key_len == 0 || key_len >= sizeof(k) ||
	    memchr(key, '\0', key_len) != NULL) {
		ast_log(LOG_WARNING, "%s: a record's key is not text of 1 to "
		    "1023 bytes: skipped\n", ispa.conf->table);
		return;
	}
	memcpy(k, key, key_len);
	k[key_len] = '\0';
	ao2_lock(pending);
	if ((p = ao2_find(pending, k, OBJ_SEARCH_KEY | OBJ_NOLOCK)) != NULL) {
		ao2_ref(p, -1);
	} else if ((p = ao2_alloc_options(sizeof(*p) + key_len + 1, NULL,
	    AO2_ALLOC_OPT_LOCK_NOLOCK)) != NULL) {
		memcpy(p->key, k, key_len + 1);
		ao2_link_flags(pending, p, OBJ_NOLOCK);
		ao2_ref(p, -1);
	}
	wake = !scheduled && !stopping;
	if (wake)
		scheduled = 1;
	ao2_unlock(pending);
	if (!wake)
		return;
	if (ast_taskprocessor_push(tps, work, NULL) != 0) {
		ao2_lock(pending);
		scheduled = 0;
		ao2_unlock(pending);
		ast_log(LOG_ERROR, "cannot queue work on taskprocessor "
		    "isp/contacts: changes wait for the next one\n");
	}
}

static int
resync_one(void *obj, void *arg, int flags)
{
	struct binding	*b = obj;

	contacts_changed(b->key, strlen(b->key));
	return 0;
}

void
contacts_resync(void)
{
	ao2_callback(bindings, OBJ_NODATA, resync_one, NULL);
}

struct take {
	int	 left;
};

/* A key taken out of pending goes back, unless it came again. */
static void
pend_again(struct pend *p)
{
	struct pend	*q;

	ao2_lock(pending);
	if ((q = ao2_find(pending, p->key, OBJ_SEARCH_KEY | OBJ_NOLOCK)) != NULL)
		ao2_ref(q, -1);
	else
		ao2_link_flags(pending, p, OBJ_NOLOCK);
	ao2_unlock(pending);
}

static int
take_some(void *obj, void *arg, int flags)
{
	struct take	*t = arg;

	if (t->left <= 0)
		return CMP_STOP;
	t->left--;
	return t->left > 0 ? CMP_MATCH : CMP_MATCH | CMP_STOP;
}

static uint64_t
now_ms(void)
{
	struct timeval	 tv = ast_tvnow();

	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Asterisk is behind: a taskprocessor is over its high-water mark, or a
 * subscriber of the endpoint topics has BACKLOG_HIGH tasks queued. */
static int
asterisk_behind(void)
{
	return ast_taskprocessor_alert_get() > 0 ||
	    backlog_max() > BACKLOG_HIGH;
}

/*
 * The taskprocessor's one task: applies pending keys until none is left,
 * at most load_pace per second. Time is cut into windows of SLICE_MS,
 * each with a budget of load_pace * SLICE_MS / 1000 keys. A key that
 * arrives while the budget lasts is applied at once (a single change
 * waits for nothing); only a window that used its budget sleeps out the
 * rest of it. Within a window, no more keys are taken than
 * flight_room() allows (waiting FLIGHT_POLL_MS for room), and at most
 * FLIPS_PER_SLICE of them turn an AOR on or off (the next one ends the
 * window and waits); between windows, nothing is applied while Asterisk
 * is behind (asterisk_behind(); ALERT_WAIT_MAX_MS at most).
 */
static int
work(void *unused)
{
	struct ao2_iterator	*it;
	struct pend		*p;
	struct take		 t;
	uint64_t		 window, now, waited;
	unsigned		 pace;
	int			 budget, room, used = 0, n, later;
	int			 flips = FLIPS_PER_SLICE;

	window = now_ms();
	for (;;) {
		ispa_rdlock();
		pace = ispa.conf != NULL ? ispa.conf->load_pace :
		    ISPA_DEFAULT_PACE;
		budget = (int)(pace * SLICE_MS / 1000);
		if (budget < 1)
			budget = 1;
		t.left = budget - used;
		if ((room = flight_room()) < t.left)
			t.left = room;
		n = later = 0;
		it = stopping || t.left <= 0 ? NULL : ao2_callback(pending,
		    OBJ_UNLINK | OBJ_MULTIPLE, take_some, &t);
		if (it != NULL) {
			while ((p = ao2_iterator_next(it)) != NULL) {
				if (apply(p->key, &flips) != 0) {
					pend_again(p);
					later++;
				} else
					n++;
				ao2_ref(p, -1);
			}
			ao2_iterator_destroy(it);
		}
		ispa_unlock();
		n_applied += (uint64_t)n;
		used += n;
		/* An AOR to turn on or off waits for the next window; so
		 * does everything while a taskprocessor is in alert (the
		 * subscribers' queues are asked once per window, below). */
		if (later > 0 || ast_taskprocessor_alert_get() > 0)
			used = budget;
		ao2_lock(pending);
		if (stopping || ao2_container_count(pending) == 0) {
			scheduled = 0;
			ao2_unlock(pending);
			return 0;
		}
		ao2_unlock(pending);
		now = now_ms();
		if (used < budget && now - window < SLICE_MS) {
			if (n == 0)	/* no room: the observers are behind */
				usleep(FLIGHT_POLL_MS * 1000);
			continue;	/* keys came meanwhile: within budget */
		}
		if (now - window < SLICE_MS)
			usleep((useconds_t)(SLICE_MS - (now - window)) * 1000);
		for (waited = 0; asterisk_behind() && !stopping &&
		    waited < ALERT_WAIT_MAX_MS; waited += ALERT_POLL_MS) {
			if (waited == 0)
				n_waits++;
			usleep(ALERT_POLL_MS * 1000);
		}
		backlog_scan();
		window = now_ms();
		used = 0;
		flips = FLIPS_PER_SLICE;
	}
}

int
contacts_init(void)
{
	bindings = ao2_container_alloc_hash(AO2_ALLOC_OPT_LOCK_MUTEX,
	    AO2_CONTAINER_ALLOC_OPT_DUPS_REPLACE, BUCKETS, binding_hash_fn,
	    NULL, binding_cmp_fn);
	pending = ao2_container_alloc_hash(AO2_ALLOC_OPT_LOCK_MUTEX, 0,
	    BUCKETS, pend_hash_fn, NULL, pend_cmp_fn);
	uris = ao2_container_alloc_hash(AO2_ALLOC_OPT_LOCK_MUTEX, 0,
	    BUCKETS, uri_entry_hash_fn, NULL, uri_entry_cmp_fn);
	aors = ao2_container_alloc_hash(AO2_ALLOC_OPT_LOCK_MUTEX, 0,
	    BUCKETS, aor_count_hash_fn, NULL, aor_count_cmp_fn);
	tps = ast_taskprocessor_get("isp/contacts", TPS_REF_DEFAULT);
	backlog_reset();
	n_waits = 0;
	stopping = 0;
	scheduled = 0;
	in_flight = 0;
	observing = ast_sorcery_observer_add(ast_sip_get_sorcery(), "contact",
	    &flight_observer) == 0;
	if (bindings == NULL || pending == NULL || uris == NULL ||
	    aors == NULL || tps == NULL || !observing) {
		contacts_shutdown();
		return -1;
	}
	return 0;
}

void
contacts_shutdown(void)
{
	int	 i, busy = 0;

	stopping = 1;
	/* The work task sees stopping within one slice. */
	for (i = 0; i < 1000 && pending != NULL; i++) {
		ao2_lock(pending);
		busy = scheduled;
		ao2_unlock(pending);
		if (!busy)
			break;
		usleep(10000);
	}
	if (tps != NULL)
		tps = ast_taskprocessor_unreference(tps);
	/* Only ours: contacts that phones registered here stay. */
	if (bindings != NULL)
		ao2_callback(bindings, OBJ_NODATA | OBJ_UNLINK | OBJ_MULTIPLE,
		    remove_one, NULL);
	/* Removal waits for an observer call under way. */
	if (observing)
		ast_sorcery_observer_remove(ast_sip_get_sorcery(), "contact",
		    &flight_observer);
	observing = 0;
	ao2_cleanup(pending);
	ao2_cleanup(bindings);
	ao2_cleanup(uris);
	ao2_cleanup(aors);
	pending = bindings = uris = aors = NULL;
}

static int
remove_one(void *obj, void *arg, int flags)
{
	struct binding	*b = obj;

	if (b->state == B_CONTACT)
		contact_delete(b);
	binding_forget(b);
	return CMP_MATCH;
}

void
contacts_stats(struct contacts_stats *s)
{
	s->contacts = n_contacts;
	s->no_aor = n_no_aor;
	s->skipped = n_skipped;
	s->pending = pending != NULL ? (size_t)ao2_container_count(pending) : 0;
	s->applied = n_applied;
	s->watched = backlog_watched();
	s->waits = n_waits;
}

const char *
contacts_state(const char *key, char *buf, size_t size)
{
	struct binding	*b;

	if (bindings == NULL || (b = ao2_find(bindings, key, OBJ_SEARCH_KEY)) == NULL)
		return NULL;
	switch (b->state) {
	case B_CONTACT:
		snprintf(buf, size, "contact %s", b->contact_id);
		break;
	case B_NO_AOR:
		snprintf(buf, size, "no AOR %s here", b->aor);
		break;
	case B_SKIPPED:
		snprintf(buf, size, "skipped: %s", b->reason);
		break;
	}
	ao2_ref(b, -1);
	return buf;
}
