/*
 * publish: a local contact's change, in the process that made it (a SIP
 * worker, usrloc's timer), made into a SIP_REGISTRATION record in the
 * schema isp-registrar writes (docs/SIP.md) and handed to the client
 * process as one datagram. Changes the client process made itself
 * (contacts of other instances) are never published again.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/dprint.h"
#include "core/ip_addr.h"
#include "core/parser/parse_uri.h"
#include "core/qvalue.h"

#include "isp_kamailio.h"

struct out {
	char	*buf;
	size_t	 len;
	size_t	 cap;
	int	 failed;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->failed || o->len + n > o->cap) {
		o->failed = 1;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void
put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A field: its name and value, each NUL-terminated. */
static void
field(struct out *o, const char *name, const char *v, size_t n)
{
	put(o, name, strlen(name) + 1);
	put(o, v, n);
	put(o, "", 1);
}

static void
field_s(struct out *o, const char *name, const str *s)
{
	field(o, name, s != NULL && s->s != NULL ? s->s : "",
	    s != NULL && s->s != NULL ? (size_t)s->len : 0);
}

/*
 * The canonical AOR (docs/SIP.md): sip:user@host, the host lower-cased,
 * "|" escaped so that a key's first "|" ends it. usrloc keeps
 * "user@host", or "user" alone without use_domain.
 */
static int
put_aor(struct out *o, const str *aor)
{
	const char	*at;
	size_t		 i;
	char		 ch;

	if (aor == NULL || aor->len <= 0)
		return -1;
	put_str(o, "sip:");
	at = memchr(aor->s, '@', (size_t)aor->len);
	for (i = 0; i < (size_t)aor->len; i++) {
		ch = aor->s[i];
		if (at != NULL && aor->s + i > at && ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch == '|')
			put_str(o, "%7C");
		else
			put(o, &ch, 1);
	}
	if (at == NULL) {
		if (ispk.aor_domain == NULL)
			return -1;
		put_str(o, "@");
		put_str(o, ispk.aor_domain);
	}
	return 0;
}

/* The instance without the quotes the parameter may carry. */
static str
instance_of(const ucontact_t *c)
{
	str	 s = c->instance;

	if (s.s != NULL && s.len >= 2 && s.s[0] == '"' &&
	    s.s[s.len - 1] == '"') {
		s.s++;
		s.len -= 2;
	}
	return s;
}

/* The binding id: the instance (";reg-id=N" for a flow), else the
 * contact URI. */
static void
put_binding(struct out *o, const ucontact_t *c)
{
	str	 inst = instance_of(c);
	char	 rid[32];

	if (inst.s != NULL && inst.len > 0) {
		put(o, inst.s, (size_t)inst.len);
		if (c->reg_id > 0) {
			snprintf(rid, sizeof(rid), ";reg-id=%u", c->reg_id);
			put_str(o, rid);
		}
	} else
		put(o, c->c.s, (size_t)c->c.len);
}

static const char *
proto_name(int proto)
{
	switch (proto) {
	case PROTO_TCP:
		return "tcp";
	case PROTO_TLS:
		return "tls";
	case PROTO_WS:
		return "ws";
	case PROTO_WSS:
		return "wss";
	case PROTO_SCTP:
		return "sctp";
	default:
		return "udp";
	}
}

/*
 * received: "ip:port" the REGISTER came from. usrloc has it as a URI
 * ("sip:ip:port;transport=tcp") when the script saved one (NAT);
 * otherwise the contact's own host and port are where the phone is.
 */
static void
put_received(struct out *o, const ucontact_t *c, char *transport,
    size_t tsize)
{
	struct sip_uri	 u;
	const str	*from = c->received.len > 0 ? &c->received : &c->c;
	char		 port[16];

	snprintf(transport, tsize, "%s", c->sock != NULL ?
	    proto_name(c->sock->proto) : "udp");
	if (parse_uri(from->s, from->len, &u) != 0 || u.host.len == 0) {
		put(o, "", 0);
		return;
	}
	if (u.proto != PROTO_NONE)
		snprintf(transport, tsize, "%s", proto_name(u.proto));
	if (u.host.s[0] != '[' && memchr(u.host.s, ':', (size_t)u.host.len)) {
		put_str(o, "[");
		put(o, u.host.s, (size_t)u.host.len);
		put_str(o, "]");
	} else
		put(o, u.host.s, (size_t)u.host.len);
	snprintf(port, sizeof(port), ":%u", u.port_no != 0 ? u.port_no :
	    (u.proto == PROTO_TLS ? 5061 : 5060));
	put_str(o, port);
}

/*
 * path: the contact's own Path, or, for a phone that registered here
 * directly, one through this node, as the path module writes it
 * (<sip:NODE;lr;received=sip:IP:PORT>): lookup() on another node, and
 * an Asterisk of the pool, then reach the phone through the node that
 * holds its NAT binding or its connection.
 */
static void
put_path(struct out *o, const ucontact_t *c, const char *received,
    size_t rlen, const char *transport)
{
	const struct socket_info	*si = c->sock;
	const str			*host, *port;

	if (c->path.len > 0) {
		put(o, c->path.s, (size_t)c->path.len);
		return;
	}
	if (!ispk.path || si == NULL || rlen == 0)
		return;
	host = si->useinfo.name.len > 0 ? &si->useinfo.name :
	    &si->address_str;
	port = si->useinfo.port_no_str.len > 0 ? &si->useinfo.port_no_str :
	    &si->port_no_str;
	put_str(o, "<sip:");
	if (si->address.af == AF_INET6 && host->s[0] != '[') {
		put_str(o, "[");
		put(o, host->s, (size_t)host->len);
		put_str(o, "]");
	} else
		put(o, host->s, (size_t)host->len);
	put_str(o, ":");
	put(o, port->s, (size_t)port->len);
	put_str(o, ";lr;received=sip:");
	put(o, received, rlen);
	if (strcmp(transport, "udp") != 0) {
		put_str(o, "%3Btransport%3D");
		put_str(o, transport);
	}
	put_str(o, ">");
}

static void
send_msg(const char *buf, size_t len)
{
	ssize_t	 n;

	do {
		n = send(ispk_sock[1], buf, len, 0);
	} while (n == -1 && errno == EINTR);
	if (n == (ssize_t)len)
		return;
	LM_ERR("cannot hand a change to the ispd client process: %s\n",
	    n == -1 ? strerror(errno) : "short write");
	lock_get(&ispk_shm->lock);
	ispk_shm->n.dropped++;
	lock_release(&ispk_shm->lock);
}

/* Encodes c's record (withdraw: its key only) and sends it. */
static void
publish(const ucontact_t *c, int withdraw)
{
	static char		 buf[ISPK_MSG_MAX];
	struct ispk_msg_head	 h;
	struct out		 o = { buf, sizeof(h), sizeof(buf), 0 };
	char			 num[32], transport[8];
	const char		*q;
	size_t			 key0, aor0, aor1, rcv0, rcv1;
	time_t			 now = time(NULL);
	int			 qlen;

	memset(&h, 0, sizeof(h));
	h.op = withdraw ? 'W' : 'A';
	key0 = o.len;
	if (put_aor(&o, c->aor) != 0) {
		LM_ERR("contact <%.*s>: its AOR \"%.*s\" has no domain and "
		    "aor_domain is not set: not published\n", c->c.len,
		    c->c.s, c->aor != NULL ? c->aor->len : 0,
		    c->aor != NULL ? c->aor->s : "");
		return;
	}
	aor0 = key0;
	aor1 = o.len;
	put_str(&o, "|");
	put_binding(&o, c);
	h.key_len = (uint16_t)(o.len - key0);
	if (!withdraw) {
		h.nfields = ISPK_NFIELDS;
		/* aor: the key's part before "|" (copied from the buffer). */
		put(&o, "aor", 4);
		if (!o.failed) {
			put(&o, buf + aor0, aor1 - aor0);
			put(&o, "", 1);
		}
		field_s(&o, "contact", &c->c);
		q = c->q == Q_UNSPECIFIED ? "" : q2str(c->q, (unsigned *)&qlen);
		field(&o, "q", q, strlen(q));
		put(&o, "received", 9);
		rcv0 = o.len;
		put_received(&o, c, transport, sizeof(transport));
		rcv1 = o.len;
		put(&o, "", 1);
		field(&o, "transport", transport, strlen(transport));
		put(&o, "path", 5);
		if (!o.failed)
			put_path(&o, c, buf + rcv0, rcv1 - rcv0, transport);
		put(&o, "", 1);
		{
			str	 inst = instance_of(c);

			field_s(&o, "instance", &inst);
		}
		if (c->reg_id > 0)
			snprintf(num, sizeof(num), "%u", c->reg_id);
		else
			num[0] = '\0';
		field(&o, "reg_id", num, strlen(num));
		field_s(&o, "user_agent", &c->user_agent);
		snprintf(num, sizeof(num), "%lld", (long long)c->expires);
		field(&o, "expires", num, strlen(num));
		field(&o, "reg_server", ispk.name, strlen(ispk.name));
		field_s(&o, "call_id", &c->callid);
		snprintf(num, sizeof(num), "%d", c->cseq);
		field(&o, "cseq", num, strlen(num));
		/* The TTL: until expiry, and a second of grace (as the
		 * registrar); none for a permanent contact. */
		h.ttl = c->expires == 0 ? 0 : c->expires > now ?
		    (uint32_t)(c->expires - now + 1) : 1;
	}
	if (o.failed || o.len - key0 > ISPK_MSG_MAX - sizeof(h)) {
		LM_ERR("contact <%.*s>: its record is over %d bytes: not "
		    "published\n", c->c.len, c->c.s, ISPK_MSG_MAX);
		lock_get(&ispk_shm->lock);
		ispk_shm->n.dropped++;
		lock_release(&ispk_shm->lock);
		return;
	}
	memcpy(buf, &h, sizeof(h));
	send_msg(buf, o.len);
}

void
ispk_ul_cb(ucontact_t *c, int type, void *param)
{
	/* The client process writes other instances' contacts: theirs. */
	if (ispk_in_client || c == NULL)
		return;
	switch (type) {
	case UL_CONTACT_INSERT:
	case UL_CONTACT_UPDATE:
		publish(c, 0);
		break;
	case UL_CONTACT_DELETE:
	case UL_CONTACT_EXPIRE:
		publish(c, 1);
		break;
	}
}
