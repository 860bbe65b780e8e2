/*
 * client: the module's own process, the only ispd session of this
 * Kamailio instance (libisp, run mode 2, reconnect and every server).
 *
 * Publishing: workers' datagrams (publish.c) go into a table of what
 * this instance announced, key by key, and to ispd. A refresh (a new
 * expiry and CSeq, nothing else) re-announces the bytes announced last
 * with the new TTL, as isp-registrar does, so ispd fans nothing out.
 * While no session is up the table fills, and the first session
 * announces it all; later sessions are libisp's business (reconnect).
 *
 * Consuming: a mirror of the table. Each record another instance owns
 * becomes a contact of the local usrloc (ruid "isp-" and a hash of its
 * key), expiring in ten years: ispd's withdraw, not usrloc's timer, ends
 * it. A mirror of INSTANCES is copied into shared memory for
 * isp_route().
 */
#include <sys/prctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/dprint.h"
#include "core/parser/parse_uri.h"
#include "core/qvalue.h"

#include "hash.h"
#include "isp.h"
#include "isp_place.h"
#include "isp_kamailio.h"

#define REMOTE_LIFE_S		(10 * 365 * 24 * 3600)
/* The server_id of a contact another node owns. The registrar gives a
 * contact it saves this node's own (0 by default), so a phone that
 * registers here takes its binding over, and a withdraw of the other
 * node's record leaves it. */
#define REMOTE_SERVER_ID	(-15)
#define RETRY_MS		2000

/* A record this instance announced: its key and its fields, as sent. */
struct pub {
	struct hash_node	 node;
	time_t			 until;	/* when its TTL ends; 0: none */
	uint8_t			 nfields;
	size_t			 key_len;
	size_t			 len;	/* of data: key, then the fields */
	char			 data[];
};

/* A key this process put into usrloc as another node's contact. */
struct rkey {
	struct hash_node	 node;
	size_t			 len;
	char			 key[];
};

static struct hash	 pubs;
/* The keys of other nodes' contacts in usrloc: a change of a record of
 * ours (ispd sends them back too) or a withdraw touches usrloc only
 * for those. */
static struct hash	 remotes;
static isp_client	*cl;
static isp_mirror	*regs, *insts;

static int
pub_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct pub	*p = (const struct pub *)n;

	return p->key_len == len && memcmp(p->data, key, len) == 0;
}

static int
rkey_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct rkey	*k = (const struct rkey *)n;

	return k->len == len && memcmp(k->key, key, len) == 0;
}

static struct rkey *
rkey_find(const void *key, size_t len)
{
	return (struct rkey *)hash_find(&remotes, hash_bytes(key, len), key,
	    len, rkey_eq);
}

static void
rkey_add(const void *key, size_t len)
{
	struct rkey	*k;

	if (rkey_find(key, len) != NULL ||
	    (k = malloc(sizeof(*k) + len)) == NULL)
		return;
	k->len = len;
	memcpy(k->key, key, len);
	if (hash_insert(&remotes, &k->node, hash_bytes(key, len)) != 0)
		free(k);
}

/* Splits a datagram's fields into f[]. Returns how many, or -1. */
static int
fields_of(const char *p, const char *end, unsigned n, struct isp_field *f)
{
	const char	*v, *z;
	unsigned	 i;

	for (i = 0; i < n; i++) {
		if ((z = memchr(p, '\0', (size_t)(end - p))) == NULL)
			return -1;
		v = z + 1;
		if (v >= end || (z = memchr(v, '\0', (size_t)(end - v))) == NULL)
			return -1;
		f[i].name = p;
		f[i].value = v;
		f[i].value_len = (size_t)(z - v);
		p = z + 1;
	}
	return (int)n;
}

/* 1 when two field lists differ in anything but expires and cseq. */
static int
changed(const struct isp_field *a, const struct isp_field *b, unsigned n)
{
	unsigned	 i;

	for (i = 0; i < n; i++) {
		if (strcmp(a[i].name, b[i].name) != 0)
			return 1;
		if (strcmp(a[i].name, "expires") == 0 ||
		    strcmp(a[i].name, "cseq") == 0)
			continue;
		if (a[i].value_len != b[i].value_len ||
		    memcmp(a[i].value, b[i].value, a[i].value_len) != 0)
			return 1;
	}
	return 0;
}

static void
count(uint64_t *what, int64_t delta)
{
	lock_get(&ispk_shm->lock);
	*what += (uint64_t)delta;
	lock_release(&ispk_shm->lock);
}

/* Announces p with what is left of its TTL. */
static void
announce(const struct pub *p)
{
	time_t			 now = time(NULL);
	unsigned		 ttl = p->until == 0 ? 0 : p->until > now ?
				    (unsigned)(p->until - now) : 1;
	struct isp_field	 f[ISPK_NFIELDS];
	int			 rc;

	if (cl == NULL || fields_of(p->data + p->key_len, p->data + p->len,
	    p->nfields, f) < 0)
		return;
	if ((rc = isp_announce(cl, ispk.table, p->data, p->key_len, f,
	    p->nfields, ttl)) != ISP_OK)
		LM_ERR("announce %.*s: %s\n", (int)p->key_len, p->data,
		    isp_errmsg(cl));
	else
		count(&ispk_shm->n.published, 1);
}

/* One datagram of a worker. */
static void
handle(const char *buf, size_t len)
{
	struct ispk_msg_head	 h;
	struct isp_field	 fnew[ISPK_NFIELDS], fold[ISPK_NFIELDS];
	struct pub		*p, *old;
	const char		*key;
	uint64_t		 hv;

	if (len < sizeof(h))
		return;
	memcpy(&h, buf, sizeof(h));
	key = buf + sizeof(h);
	if (h.key_len == 0 || sizeof(h) + h.key_len > len ||
	    h.nfields > ISPK_NFIELDS)
		return;
	hv = hash_bytes(key, h.key_len);
	old = (struct pub *)hash_find(&pubs, hv, key, h.key_len, pub_eq);
	if (h.op == 'W') {
		if (old == NULL)
			return;
		hash_remove(&pubs, &old->node);
		free(old);
		if (cl != NULL && isp_withdraw(cl, ispk.table, key,
		    h.key_len) == ISP_OK)
			count(&ispk_shm->n.withdrawn, 1);
		return;
	}
	if (fields_of(key + h.key_len, buf + len, h.nfields, fnew) < 0)
		return;
	if (old != NULL && old->nfields == h.nfields &&
	    fields_of(old->data + old->key_len, old->data + old->len,
	    old->nfields, fold) >= 0 && !changed(fnew, fold, h.nfields)) {
		/* A refresh: the same bytes, a new TTL. */
		old->until = h.ttl == 0 ? 0 : time(NULL) + h.ttl;
		announce(old);
		return;
	}
	if ((p = malloc(sizeof(*p) + len - sizeof(h))) == NULL) {
		LM_ERR("out of memory: %.*s not published\n", (int)h.key_len,
		    key);
		count(&ispk_shm->n.dropped, 1);
		return;
	}
	p->until = h.ttl == 0 ? 0 : time(NULL) + h.ttl;
	p->nfields = h.nfields;
	p->key_len = h.key_len;
	p->len = len - sizeof(h);
	memcpy(p->data, key, p->len);
	if (old != NULL) {
		hash_remove(&pubs, &old->node);
		free(old);
	}
	if (hash_insert(&pubs, &p->node, hv) != 0) {
		free(p);
		count(&ispk_shm->n.dropped, 1);
		return;
	}
	announce(p);
}

/* Drops a record of ours from the table and from libisp's replay (ispd
 * refuses the withdraw of a record another node owns now; the intent
 * goes all the same). */
static void
forget(const void *key, size_t len)
{
	struct pub	*p;

	p = (struct pub *)hash_find(&pubs, hash_bytes(key, len), key, len,
	    pub_eq);
	if (p == NULL)
		return;
	hash_remove(&pubs, &p->node);
	free(p);
	if (cl != NULL)
		(void)isp_withdraw(cl, ispk.table, key, len);
}

static void
drain(void)
{
	static char	 buf[ISPK_MSG_MAX];
	ssize_t		 n;

	for (;;) {
		n = recv(ispk_sock[0], buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			handle(buf, (size_t)n);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		return;
	}
}

/* --- other instances' contacts in usrloc -------------------------------- */

static str
fld(const struct isp_record *r, const char *name)
{
	str	 s = { "", 0 };
	size_t	 i;

	for (i = 0; i < r->nfields; i++) {
		if (strcmp(r->fields[i].name, name) == 0) {
			s.s = (char *)r->fields[i].value;
			s.len = (int)r->fields[i].value_len;
			break;
		}
	}
	return s;
}

/* usrloc's AOR of a canonical one: "user@host", or "user" without
 * use_domain. */
static int
ul_aor(const char *aor, size_t len, char *buf, size_t size, str *out)
{
	const char	*at;

	if (len > 4 && strncmp(aor, "sip:", 4) == 0) {
		aor += 4;
		len -= 4;
	} else if (len > 5 && strncmp(aor, "sips:", 5) == 0) {
		aor += 5;
		len -= 5;
	}
	if (!ispk_ul.use_domain && (at = memchr(aor, '@', len)) != NULL)
		len = (size_t)(at - aor);
	if (len == 0 || len >= size)
		return -1;
	memcpy(buf, aor, len);
	buf[len] = '\0';
	out->s = buf;
	out->len = (int)len;
	return 0;
}

static void
ruid_of(const void *key, size_t len, char *buf, size_t size, str *out)
{
	snprintf(buf, size, "isp-%016" PRIx64 "-%zu", hash_bytes(key, len),
	    len);
	out->s = buf;
	out->len = (int)strlen(buf);
}

static ucontact_t *
find_ruid(urecord_t *r, const str *ruid)
{
	ucontact_t	*c;

	for (c = r->contacts; c != NULL; c = c->next)
		if (c->ruid.len == ruid->len &&
		    memcmp(c->ruid.s, ruid->s, (size_t)ruid->len) == 0)
			return c;
	return NULL;
}

static ucontact_t *
find_contact(urecord_t *r, const str *uri)
{
	ucontact_t	*c;

	for (c = r->contacts; c != NULL; c = c->next)
		if (c->c.len == uri->len &&
		    memcmp(c->c.s, uri->s, (size_t)uri->len) == 0)
			return c;
	return NULL;
}

/* "sip:ip:port[;transport=t]" when the phone is not where its contact
 * says (NAT), else empty: lookup() then sends to the contact itself. */
static void
received_uri(const struct isp_record *r, char *buf, size_t size, str *out)
{
	str	 rcv = fld(r, "received"), tr = fld(r, "transport"),
		 ct = fld(r, "contact");
	int	 n;

	out->s = buf;
	out->len = 0;
	if (rcv.len == 0 || (ct.len >= rcv.len + 4 &&
	    memmem(ct.s, (size_t)ct.len, rcv.s, (size_t)rcv.len) != NULL))
		return;
	n = snprintf(buf, size, "sip:%.*s%s%.*s", rcv.len, rcv.s,
	    tr.len > 0 && !(tr.len == 3 && memcmp(tr.s, "udp", 3) == 0) ?
	    ";transport=" : "", tr.len > 0 && !(tr.len == 3 &&
	    memcmp(tr.s, "udp", 3) == 0) ? tr.len : 0, tr.s);
	if (n > 0 && (size_t)n < size)
		out->len = n;
}

static void
remote_put(const struct isp_record *r)
{
	ucontact_info_t	 ci;
	urecord_t	*ur;
	ucontact_t	*uc;
	str		 aor, contact, path, callid, ua, inst, ruid, q, x;
	char		 abuf[1024], rbuf[64], recv[320], qbuf[16];
	int		 isnew = 0;

	x = fld(r, "aor");
	if (ul_aor(x.s, (size_t)x.len, abuf, sizeof(abuf), &aor) != 0 ||
	    (contact = fld(r, "contact")).len == 0) {
		LM_WARN("%s record '%.*s' skipped: no aor or contact\n",
		    ispk.table, (int)r->key_len, (const char *)r->key);
		return;
	}
	ruid_of(r->key, r->key_len, rbuf, sizeof(rbuf), &ruid);
	path = fld(r, "path");
	callid = fld(r, "call_id");
	ua = fld(r, "user_agent");
	inst = fld(r, "instance");
	memset(&ci, 0, sizeof(ci));
	ci.ruid = ruid;
	ci.c = &contact;
	received_uri(r, recv, sizeof(recv), &ci.received);
	ci.path = &path;
	ci.expires = time(NULL) + REMOTE_LIFE_S;
	q = fld(r, "q");
	ci.q = Q_UNSPECIFIED;
	if (q.len > 0 && (size_t)q.len < sizeof(qbuf)) {
		memcpy(qbuf, q.s, (size_t)q.len);
		qbuf[q.len] = '\0';
		ci.q = (qvalue_t)(atof(qbuf) * 1000 + 0.5);
	}
	ci.callid = &callid;
	x = fld(r, "cseq");
	ci.cseq = x.len > 0 ? atoi(x.s) : 1;
	ci.flags = FL_MEM;
	ci.user_agent = &ua;
	ci.methods = 0xFFFFFFFF;
	ci.instance = inst;
	x = fld(r, "reg_id");
	ci.reg_id = x.len > 0 ? (unsigned)atoi(x.s) : 0;
	ci.tcpconn_id = -1;
	ci.server_id = REMOTE_SERVER_ID;
	ci.last_modified = time(NULL);

	ispk_ul.lock_udomain(ispk_dom, &aor);
	if (ispk_ul.get_urecord(ispk_dom, &aor, &ur) != 0) {
		if (ispk_ul.insert_urecord(ispk_dom, &aor, &ur) != 0) {
			ispk_ul.unlock_udomain(ispk_dom, &aor);
			LM_ERR("cannot add AOR %.*s to usrloc\n", aor.len,
			    aor.s);
			return;
		}
	}
	/* The phone registered here before and now elsewhere: this node's
	 * own contact of the binding is stale, the other node's replaces
	 * it. */
	if (find_ruid(ur, &ruid) == NULL && (uc = find_contact(ur,
	    &contact)) != NULL && uc->server_id != REMOTE_SERVER_ID)
		ispk_ul.delete_ucontact(ur, uc);
	if ((uc = find_ruid(ur, &ruid)) != NULL) {
		if (ispk_ul.update_ucontact(ur, uc, &ci) != 0)
			LM_ERR("cannot update contact %.*s\n", contact.len,
			    contact.s);
	} else if (ispk_ul.insert_ucontact(ur, &contact, &ci, &uc) != 0) {
		LM_ERR("cannot add contact %.*s\n", contact.len, contact.s);
	} else
		isnew = 1;
	ispk_ul.release_urecord(ur);
	ispk_ul.unlock_udomain(ispk_dom, &aor);
	rkey_add(r->key, r->key_len);
	if (isnew)
		count(&ispk_shm->n.remote, 1);
}

static void
remote_drop(const void *key, size_t key_len)
{
	const char	*bar = memchr(key, '|', key_len);
	urecord_t	*ur;
	ucontact_t	*uc;
	str		 aor, ruid;
	char		 abuf[1024], rbuf[64];
	int		 gone = 0;
	struct rkey	*k;

	if ((k = rkey_find(key, key_len)) == NULL)
		return;		/* not one we put there */
	hash_remove(&remotes, &k->node);
	free(k);
	if (bar == NULL || ul_aor(key, (size_t)(bar - (const char *)key),
	    abuf, sizeof(abuf), &aor) != 0)
		return;
	ruid_of(key, key_len, rbuf, sizeof(rbuf), &ruid);
	ispk_ul.lock_udomain(ispk_dom, &aor);
	if (ispk_ul.get_urecord(ispk_dom, &aor, &ur) == 0) {
		if ((uc = find_ruid(ur, &ruid)) != NULL &&
		    uc->server_id == REMOTE_SERVER_ID) {
			ispk_ul.delete_ucontact(ur, uc);
			gone = 1;
		}
		ispk_ul.release_urecord(ur);
	}
	ispk_ul.unlock_udomain(ispk_dom, &aor);
	if (gone)
		count(&ispk_shm->n.remote, -1);
}

static void
on_registration(isp_client *c, const struct isp_event *ev, void *arg)
{
	if (ev->type == ISP_EV_ANNOUNCE || ev->type == ISP_EV_REPLACE ||
	    ev->type == ISP_EV_WITHDRAW)
		count(&ispk_shm->n.events, 1);
	switch (ev->type) {
	case ISP_EV_ANNOUNCE:
	case ISP_EV_REPLACE:
		/* Ours are in usrloc already, as the phone registered. */
		if (ev->rec.owner != NULL && strcmp(ev->rec.owner,
		    ispk.name) == 0) {
			remote_drop(ev->rec.key, ev->rec.key_len);
			break;
		}
		/* Another node took a binding of ours over (the phone moved):
		 * it is no longer ours to announce, on a reconnect either. */
		forget(ev->rec.key, ev->rec.key_len);
		remote_put(&ev->rec);
		break;
	case ISP_EV_WITHDRAW:
		remote_drop(ev->rec.key, ev->rec.key_len);
		break;
	default:
		break;
	}
}

/* --- INSTANCES into shared memory ------------------------------------- */

struct inst_copy {
	struct ispk_instance	 v[ISPK_MAX_INSTANCES];
	int			 n;
	int			 over;
};

static void
copy_field(char *dst, size_t size, const struct isp_record *r,
    const char *name)
{
	str	 s = fld(r, name);

	snprintf(dst, size, "%.*s", s.len, s.s);
}

/* The host and port of an instance's uri (5060 when it names none). */
static void
uri_host_port(struct ispk_instance *i)
{
	struct sip_uri	 u;
	int		 n;

	i->host[0] = '\0';
	i->port = 0;
	if (parse_uri(i->uri, (int)strlen(i->uri), &u) != 0)
		return;
	n = u.host.len;
	if (n >= 2 && u.host.s[0] == '[') {
		u.host.s++;
		n -= 2;
	}
	if (n <= 0 || (size_t)n >= sizeof(i->host))
		return;
	memcpy(i->host, u.host.s, (size_t)n);
	i->host[n] = '\0';
	i->port = u.port_no != 0 ? u.port_no : 5060;
}

static int
inst_visit(const struct isp_record *r, void *arg)
{
	struct inst_copy	*ic = arg;
	struct ispk_instance	*i;
	char			 st[16];

	if (ic->n == ISPK_MAX_INSTANCES || r->key_len >= ISPK_ID_MAX) {
		ic->over++;
		return 0;
	}
	i = &ic->v[ic->n++];
	memcpy(i->id, r->key, r->key_len);
	i->id[r->key_len] = '\0';
	copy_field(i->role, sizeof(i->role), r, "role");
	copy_field(i->uri, sizeof(i->uri), r, "uri");
	uri_host_port(i);
	copy_field(st, sizeof(st), r, "status");
	i->draining = strcmp(st, "draining") == 0;
	return 0;
}

static void
on_instances(isp_client *c, const struct isp_event *ev, void *arg)
{
	static struct inst_copy	 ic;

	ic.n = ic.over = 0;
	(void)isp_mirror_foreach(insts, NULL, 0, inst_visit, &ic);
	if (ic.over > 0)
		LM_WARN("INSTANCES has %d instances more than the %d "
		    "isp_route() chooses from\n", ic.over, ISPK_MAX_INSTANCES);
	lock_get(&ispk_shm->lock);
	memcpy(ispk_shm->instances, ic.v, sizeof(ic.v[0]) * (size_t)ic.n);
	ispk_shm->ninstances = ic.n;
	lock_release(&ispk_shm->lock);
}

/* --- the session ------------------------------------------------------ */

static void
on_state(isp_client *c, const struct isp_server_event *e, void *arg)
{
	if (e->up)
		LM_INFO("ispd %s: session %" PRIu64 " up\n", e->server,
		    e->session_id);
	else
		LM_WARN("ispd %s: %s; retrying in %d ms\n", e->server, e->why,
		    e->retry_ms);
	lock_get(&ispk_shm->lock);
	ispk_shm->n.nup = (int)e->nup;
	lock_release(&ispk_shm->lock);
}

/* A client with a session up, its mirrors made, everything this
 * instance holds announced; NULL when no server answers. */
static isp_client *
connect_all(void)
{
	struct isp_options	 o;
	isp_client		*c;
	size_t			 pos = 0;
	struct hash_node	*n = NULL;

	isp_options_init(&o);
	o.servers = (const char *const *)ispk.servers;
	o.nservers = (size_t)ispk.nservers;
	o.name = ispk.name;
	o.reconnect = 1;
	o.on_state = on_state;
	o.tls = ispk.tls;
	o.tls_ca_file = ispk.tls_ca;
	o.tls_cert_file = ispk.tls_cert;
	o.tls_key_file = ispk.tls_key;
	o.secret = ispk.secret;
	if ((c = isp_new(&o)) == NULL)
		return NULL;
	if (isp_connect(c) != ISP_OK) {
		LM_WARN("cannot reach ispd: %s; retrying\n", isp_errmsg(c));
		isp_free(c);
		return NULL;
	}
	lock_get(&ispk_shm->lock);
	ispk_shm->n.nup = (int)isp_servers_up(c);
	lock_release(&ispk_shm->lock);
	regs = isp_mirror_new(c, ispk.table, NULL, 0, on_registration, NULL);
	insts = isp_mirror_new(c, ISP_INSTANCES_TABLE, NULL, 0, on_instances,
	    NULL);
	if (regs == NULL || insts == NULL) {
		LM_ERR("cannot mirror %s and INSTANCES: %s\n", ispk.table,
		    isp_errmsg(c));
		isp_free(c);
		regs = insts = NULL;
		return NULL;
	}
	cl = c;
	while ((n = hash_next(&pubs, &pos, n)) != NULL)
		announce((const struct pub *)n);
	(void)isp_replay_done(c);
	return c;
}

void
ispk_client_main(void)
{
	struct pollfd	 pfd[2];
	int		 ms, rc;
	uint64_t	 now, retry_at = 0;
	struct timespec	 ts;

	pid_t		 parent = getppid();

	ispk_in_client = 1;
	hash_init(&pubs);
	hash_init(&remotes);
	/* Kamailio gone (killed, even): so is this process, and with it the
	 * session, so ispd withdraws what this instance published. */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	for (;;) {
		if (getppid() != parent) {
			LM_ERR("Kamailio's main process is gone: the ispd client "
			    "ends\n");
			exit(0);
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec /
		    1000000;
		if (cl == NULL && now >= retry_at && connect_all() == NULL)
			retry_at = now + RETRY_MS;
		pfd[0].fd = ispk_sock[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = cl != NULL ? isp_fd(cl) : -1;
		pfd[1].events = 0;
		if (cl != NULL) {
			if (isp_want(cl) & ISP_WANT_READ)
				pfd[1].events |= POLLIN;
			if (isp_want(cl) & ISP_WANT_WRITE)
				pfd[1].events |= POLLOUT;
		}
		ms = cl != NULL ? isp_timeout_ms(cl) : RETRY_MS;
		if (ms < 0 || ms > 1000)
			ms = 1000;
		(void)poll(pfd, 2, ms);
		drain();
		if (cl != NULL && (rc = isp_process(cl)) != ISP_OK) {
			LM_ERR("ispd client ended: %s\n", isp_strerror(rc));
			isp_free(cl);
			cl = NULL;
			regs = insts = NULL;
		}
	}
}
