/*
 * The SIP cores without sockets: REGISTERs parsed by sofia-sip go
 * straight into reg_handle() with a clock the test sets, and the publish
 * hooks record what would reach ispd. Also: the digests against the
 * vectors of RFC 7616 §3.9.1, SHA-256 digest authentication end to end
 * (no SIP test peer in Debian speaks it), the AOR canonical form, the
 * locator's index, and rendezvous placement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* First: it sets the typed callback arguments sofia-sip reads. */
#include "sipsvc.h"

#include <sofia-sip/msg.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>

#include "isp_place.h"
#include "locator.h"
#include "registrar.h"

#define T0	1800000000	/* the test's clock */

/* What the hooks saw. */
struct seen {
	int		 announces;
	int		 withdraws;
	unsigned	 last_ttl;
	enum reg_gone	 last_gone;
	char		 last_key[SIP_KEY_MAX + 1];
	char		 last_fields[4096];	/* name=value;... */
};

static void
fields_text(const struct registrar *r, const struct binding *b, char *out,
    size_t len)
{
	struct reg_fields	 f;
	size_t			 i, n = 0;

	reg_fields(r, b, &f);
	out[0] = '\0';
	for (i = 0; i < REG_NFIELDS && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s=%.*s;",
		    f.f[i].name, (int)f.f[i].value_len,
		    (const char *)f.f[i].value);
}

static void
hook_announce(struct registrar *r, const struct binding *b, unsigned ttl,
    void *arg)
{
	struct seen	*s = arg;

	s->announces++;
	s->last_ttl = ttl;
	snprintf(s->last_key, sizeof(s->last_key), "%s", b->key);
	fields_text(r, b, s->last_fields, sizeof(s->last_fields));
}

static void
hook_withdraw(struct registrar *r, const struct binding *b,
    enum reg_gone why, void *arg)
{
	struct seen	*s = arg;

	s->withdraws++;
	s->last_gone = why;
	snprintf(s->last_key, sizeof(s->last_key), "%s", b->key);
}

struct fixture {
	struct registrar	 reg;
	struct seen		 seen;
	struct reg_reply	 rep;
	su_home_t		 home[1];
	msg_t			*msg;
	char			 creds[64];
};

static void
fixture_init(struct fixture *f, const char *realm, const char *alg)
{
	struct reg_config	 cfg;
	struct reg_hooks	 hooks;
	char			 err[256];
	FILE			*fp;
	int			 fd;

	memset(f, 0, sizeof(*f));
	su_home_init(f->home);
	memset(&cfg, 0, sizeof(cfg));
	cfg.id = "reg-test";
	cfg.min_expires = 60;
	cfg.max_expires = 3600;
	cfg.default_expires = 1800;
	cfg.max_contacts = 3;
	if (realm != NULL) {
		snprintf(f->creds, sizeof(f->creds), "/tmp/sipcreds.XXXXXX");
		fd = mkstemp(f->creds);
		assert_true(fd >= 0);
		fp = fdopen(fd, "w");
		fprintf(fp, "# users\nalice:secret\n");
		fclose(fp);
		cfg.realm = realm;
		cfg.credentials = f->creds;
		cfg.algs[0] = alg;
		cfg.nalgs = 1;
		cfg.nonce_ttl_s = 300;
	}
	hooks.announce = hook_announce;
	hooks.withdraw = hook_withdraw;
	hooks.arg = &f->seen;
	assert_int_equal(reg_init(&f->reg, &cfg, &hooks, err, sizeof(err)), 0);
}

static void
fixture_free(struct fixture *f)
{
	reg_free(&f->reg);
	if (f->msg != NULL)
		msg_destroy(f->msg);
	su_home_deinit(f->home);
	if (f->creds[0] != '\0')
		unlink(f->creds);
}

/* Parses a REGISTER made of the header lines given (a printf format;
 * lines end in "\r\n") and runs it at time now. Returns the status. */
static int __attribute__((format(printf, 3, 4)))
reg(struct fixture *f, time_t now, const char *fmt, ...)
{
	char		 text[4096], *t;
	struct reg_src	 src;
	va_list		 ap;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	if (f->msg != NULL)
		msg_destroy(f->msg);
	su_home_deinit(f->home);
	su_home_init(f->home);
	t = su_strdup(f->home, text);
	f->msg = msg_make(sip_default_mclass(), 0, t, strlen(t));
	assert_non_null(f->msg);
	memset(&src, 0, sizeof(src));
	snprintf(src.ip, sizeof(src.ip), "198.51.100.7");
	src.port = 40123;
	src.transport = "udp";
	reg_handle(&f->reg, f->home, sip_object(f->msg), &src, now, &f->rep);
	return f->rep.status;
}

#define HDRS(user, callid, cseq) \
	"REGISTER sip:example.com SIP/2.0\r\n" \
	"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK" #cseq callid "\r\n" \
	"From: <sip:" user "@example.com>;tag=1\r\n" \
	"To: <sip:" user "@example.com>\r\n" \
	"Call-ID: " callid "\r\n" \
	"CSeq: " #cseq " REGISTER\r\n"
#define END	"Content-Length: 0\r\n\r\n"

static int
contacts(const struct reg_reply *r)
{
	const sip_contact_t	*c;
	int			 n = 0;

	for (c = r->contacts; c != NULL; c = c->m_next)
		n++;
	return n;
}

static void
test_digest_rfc7616(void **state)
{
	char	 hex[65];

	/* RFC 7616 §3.9.1. */
	assert_int_equal(auth_digest("MD5", "Mufasa", "http-auth@example.org",
	    "Circle of Life", "GET", "/dir/index.html",
	    "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
	    "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth", hex), 0);
	assert_string_equal(hex, "8ca523f5e9506fed4657c9700eebdbec");
	assert_int_equal(auth_digest("SHA-256", "Mufasa",
	    "http-auth@example.org", "Circle of Life", "GET",
	    "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
	    "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
	    "auth", hex), 0);
	assert_string_equal(hex, "753927fa0e85d155564e2e272a28d180"
	    "2ca10daf4496794697cf8db5856cb6c1");
	assert_int_equal(auth_digest("SHA-512-256", "a", "b", "c", "d", "e",
	    "f", NULL, NULL, NULL, hex), -1);
}

static void
test_aor_canon(void **state)
{
	su_home_t	 home[1] = { SU_HOME_INIT(home) };
	char		 out[SIP_AOR_MAX];

	assert_true(aor_canon(url_make(home,
	    "sip:Alice@EXAMPLE.com:5070;transport=tcp?subject=x"), out,
	    sizeof(out)) > 0);
	assert_string_equal(out, "sip:Alice@example.com:5070");
	assert_true(aor_canon(url_make(home, "sips:%61lice@Example.COM"), out,
	    sizeof(out)) > 0);
	assert_string_equal(out, "sips:alice@example.com");
	/* '|' separates keys and '%' must stay parseable. */
	assert_true(aor_canon(url_make(home, "sip:a%7cb%25c@x"), out,
	    sizeof(out)) > 0);
	assert_string_equal(out, "sip:a%7Cb%25c@x");
	assert_int_equal(aor_canon(url_make(home, "tel:+15551234"), out,
	    sizeof(out)), -1);
	assert_int_equal(aor_canon(url_make(home, "sip:alice@example.com"),
	    out, 8), -1);
	su_home_deinit(home);
}

static void
test_register_refresh_expire(void **state)
{
	struct fixture	 f;
	char		 first[4096];

	fixture_init(&f, NULL, NULL);
	assert_int_equal(reg(&f, T0, HDRS("alice", "c1", 1)
	    "Contact: <sip:alice@10.0.0.1>;q=0.5\r\nExpires: 120\r\n"
	    "User-Agent: phone/1\r\n" END), 200);
	assert_int_equal(contacts(&f.rep), 1);
	assert_string_equal(f.rep.contacts->m_expires, "120");
	assert_int_equal(f.seen.announces, 1);
	assert_int_equal(f.seen.last_ttl, 121);
	assert_string_equal(f.seen.last_key,
	    "sip:alice@example.com|sip:alice@10.0.0.1");
	assert_non_null(strstr(f.seen.last_fields,
	    "aor=sip:alice@example.com;contact=sip:alice@10.0.0.1;q=0.5;"
	    "received=198.51.100.7:40123;transport=udp;path=;instance=;"
	    "reg_id=;user_agent=phone/1;expires=1800000120;"
	    "reg_server=reg-test;call_id=c1;cseq=1;"));
	snprintf(first, sizeof(first), "%s", f.seen.last_fields);

	/* A pure refresh, 100 s later: same bytes, new TTL. */
	assert_int_equal(reg(&f, T0 + 100, HDRS("alice", "c1", 2)
	    "Contact: <sip:alice@10.0.0.1>;q=0.5\r\nExpires: 300\r\n"
	    "User-Agent: phone/1\r\n" END), 200);
	assert_int_equal(f.seen.announces, 2);
	assert_int_equal(f.seen.last_ttl, 301);
	assert_string_equal(f.seen.last_fields, first);
	assert_int_equal(f.reg.stats.refreshes, 1);
	assert_string_equal(f.rep.contacts->m_expires, "300");

	/* The same CSeq again, or an older one: refused, nothing changes. */
	assert_int_equal(reg(&f, T0 + 101, HDRS("alice", "c1", 2)
	    "Contact: <sip:alice@10.0.0.1>;q=0.9\r\n" END), 400);
	assert_int_equal(f.seen.announces, 2);
	/* A new Call-ID may use any CSeq; q changed: a real change. */
	assert_int_equal(reg(&f, T0 + 102, HDRS("alice", "c2", 1)
	    "Contact: <sip:alice@10.0.0.1>;q=0.9\r\nExpires: 300\r\n"
	    "User-Agent: phone/1\r\n" END), 200);
	assert_int_equal(f.seen.announces, 3);
	assert_non_null(strstr(f.seen.last_fields, "q=0.9;"));
	assert_non_null(strstr(f.seen.last_fields, "expires=1800000402;"));
	assert_non_null(strstr(f.seen.last_fields, "call_id=c2;cseq=1;"));

	/* Too brief: 423, Min-Expires. */
	assert_int_equal(reg(&f, T0 + 103, HDRS("alice", "c2", 2)
	    "Contact: <sip:alice@10.0.0.1>\r\nExpires: 30\r\n" END), 423);
	assert_int_equal(f.rep.min_expires, 60);
	/* A query lists without changing. */
	assert_int_equal(reg(&f, T0 + 104, HDRS("alice", "c2", 3) END), 200);
	assert_int_equal(contacts(&f.rep), 1);
	assert_int_equal(f.seen.announces, 3);

	/* Expiry. */
	assert_int_equal(reg_expire(&f.reg, T0 + 401), 0);
	assert_int_equal(reg_expire(&f.reg, T0 + 402), 1);
	assert_int_equal(f.seen.withdraws, 1);
	assert_int_equal(f.seen.last_gone, REG_GONE_EXPIRED);
	assert_int_equal(f.reg.nbindings, 0);
	assert_null(store_aor_find(&f.reg, "sip:alice@example.com", 21));
	fixture_free(&f);
}

static void
test_contacts_star_limit(void **state)
{
	struct fixture	 f;

	fixture_init(&f, NULL, NULL);
	assert_int_equal(reg(&f, T0, HDRS("bob", "b1", 1)
	    "Contact: <sip:bob@10.0.0.2>, <sip:bob@10.0.0.3>;expires=90\r\n"
	    "Expires: 600\r\n" END), 200);
	assert_int_equal(contacts(&f.rep), 2);
	assert_int_equal(f.reg.nbindings, 2);
	/* Two more would be four: over the limit of three, all refused. */
	assert_int_equal(reg(&f, T0 + 1, HDRS("bob", "b1", 2)
	    "Contact: <sip:bob@10.0.0.4>, <sip:bob@10.0.0.5>\r\n" END), 503);
	assert_int_equal(f.reg.nbindings, 2);
	/* One in, one out: fine. */
	assert_int_equal(reg(&f, T0 + 2, HDRS("bob", "b1", 3)
	    "Contact: <sip:bob@10.0.0.4>, <sip:bob@10.0.0.2>;expires=0\r\n"
	    END), 200);
	assert_int_equal(f.reg.nbindings, 2);
	assert_int_equal(f.seen.last_gone, REG_GONE_REMOVED);
	/* '*' needs Expires: 0 and no other Contact. */
	assert_int_equal(reg(&f, T0 + 3, HDRS("bob", "b1", 4)
	    "Contact: *\r\nExpires: 60\r\n" END), 400);
	assert_int_equal(reg(&f, T0 + 3, HDRS("bob", "b1", 5)
	    "Contact: *, <sip:bob@10.0.0.9>\r\nExpires: 0\r\n" END), 400);
	/* An older CSeq of the same Call-ID aborts it. */
	assert_int_equal(reg(&f, T0 + 4, HDRS("bob", "b1", 2)
	    "Contact: *\r\nExpires: 0\r\n" END), 400);
	assert_int_equal(f.reg.nbindings, 2);
	assert_int_equal(reg(&f, T0 + 5, HDRS("bob", "b1", 6)
	    "Contact: *\r\nExpires: 0\r\n" END), 200);
	assert_int_equal(contacts(&f.rep), 0);
	assert_int_equal(f.reg.nbindings, 0);
	/* Malformed, and unknown extensions. */
	assert_int_equal(reg(&f, T0 + 6, HDRS("bob", "b2", 1)
	    "Contact: <sip:bob@10.0.0.2\r\n" END), 400);
	assert_int_equal(reg(&f, T0 + 6, HDRS("bob", "b2", 2)
	    "Require: frobnicate\r\nContact: <sip:bob@10.0.0.2>\r\n" END), 420);
	assert_string_equal(f.rep.unsupported, "frobnicate");
	assert_int_equal(f.reg.nbindings, 0);
	fixture_free(&f);
}

static void
test_instance_path_outbound(void **state)
{
	struct fixture	 f;

	fixture_init(&f, NULL, NULL);
	assert_int_equal(reg(&f, T0, HDRS("erin", "e1", 1)
	    "Contact: <sip:erin@10.0.0.7>;+sip.instance=\"<urn:uuid:1>\"\r\n"
	    "Path: <sip:edge1.example.com;lr>\r\n"
	    "Path: <sip:edge2.example.com;lr>\r\nSupported: path\r\n" END), 200);
	assert_string_equal(f.seen.last_key, "sip:erin@example.com|<urn:uuid:1>");
	assert_non_null(strstr(f.seen.last_fields, "path=<sip:edge1.example."
	    "com;lr>,<sip:edge2.example.com;lr>;instance=<urn:uuid:1>;"));
	assert_non_null(f.rep.path);
	/* The instance is the binding: a new address replaces it. */
	assert_int_equal(reg(&f, T0 + 5, HDRS("erin", "e2", 1)
	    "Contact: <sip:erin@10.0.0.8>;+sip.instance=\"<urn:uuid:1>\"\r\n"
	    END), 200);
	assert_int_equal(f.reg.nbindings, 1);
	assert_non_null(strstr(f.seen.last_fields,
	    "contact=sip:erin@10.0.0.8;"));
	assert_null(f.rep.path);	/* none this time */
	/* With outbound, reg-id makes a flow of its own (RFC 5626). */
	assert_int_equal(reg(&f, T0 + 6, HDRS("erin", "e3", 1)
	    "Supported: outbound, path\r\n"
	    "Contact: <sip:erin@10.0.0.9>;+sip.instance=\"<urn:uuid:1>\";"
	    "reg-id=2\r\n" END), 200);
	assert_int_equal(f.reg.nbindings, 2);
	assert_string_equal(f.seen.last_key,
	    "sip:erin@example.com|<urn:uuid:1>;reg-id=2");
	assert_true(f.rep.require_outbound);
	/* Two flows in one REGISTER are refused. */
	assert_int_equal(reg(&f, T0 + 7, HDRS("erin", "e4", 1)
	    "Supported: outbound\r\n"
	    "Contact: <sip:erin@10.0.0.9>;+sip.instance=\"<urn:uuid:1>\";"
	    "reg-id=2, <sip:erin@10.0.0.9>;+sip.instance=\"<urn:uuid:1>\";"
	    "reg-id=3\r\n" END), 400);
	fixture_free(&f);
}

/* The nonce of the first challenge. */
static const char *
challenge_nonce(struct fixture *f)
{
	const char	*n;
	size_t		 len;
	char		*v;

	assert_non_null(f->rep.challenges);
	n = msg_params_find(f->rep.challenges->au_params, "nonce=");
	assert_non_null(n);
	len = strlen(n);
	v = su_strndup(NULL, n + 1, len - 2);
	return v;
}

static void
test_digest_sha256(void **state)
{
	struct fixture	 f;
	char		 resp[65], nonce[128], keep;
	const char	*n;

	fixture_init(&f, "example.com", "SHA-256");
	assert_int_equal(reg(&f, T0, HDRS("alice", "a1", 1)
	    "Contact: <sip:alice@10.0.0.1>\r\n" END), 401);
	assert_non_null(strstr(svc_header_text(f.home,
	    f.rep.challenges), "algorithm=SHA-256"));
	n = challenge_nonce(&f);
	snprintf(nonce, sizeof(nonce), "%s", n);
	su_free(NULL, (void *)n);
	assert_int_equal(f.reg.nbindings, 0);

	assert_int_equal(auth_digest("SHA-256", "alice", "example.com",
	    "secret", "REGISTER", "sip:example.com", nonce, "00000001",
	    "abc", "auth", resp), 0);
#define AUTH(nc, r) "Authorization: Digest username=\"alice\", " \
	"realm=\"example.com\", nonce=\"%s\", uri=\"sip:example.com\", " \
	"response=\"%s\", algorithm=SHA-256, qop=auth, nc=" nc \
	", cnonce=\"abc\"\r\n"
	assert_int_equal(reg(&f, T0 + 1, HDRS("alice", "a1", 2)
	    AUTH("00000001", r) "Contact: <sip:alice@10.0.0.1>\r\n" END,
	    nonce, resp), 200);
	assert_int_equal(f.reg.nbindings, 1);
	/* The same nonce-count again is a replay: 401, stale. */
	assert_int_equal(reg(&f, T0 + 2, HDRS("alice", "a1", 3)
	    AUTH("00000001", r) "Contact: <sip:alice@10.0.0.1>\r\n" END,
	    nonce, resp), 401);
	assert_non_null(strstr(svc_header_text(f.home,
	    f.rep.challenges), "stale=true"));
	/* The next count is fine. */
	assert_int_equal(auth_digest("SHA-256", "alice", "example.com",
	    "secret", "REGISTER", "sip:example.com", nonce, "00000002",
	    "abc", "auth", resp), 0);
	assert_int_equal(reg(&f, T0 + 3, HDRS("alice", "a1", 4)
	    AUTH("00000002", r) "Contact: <sip:alice@10.0.0.1>\r\n" END,
	    nonce, resp), 200);
	/* A wrong password: 403. */
	assert_int_equal(auth_digest("SHA-256", "alice", "example.com",
	    "guess", "REGISTER", "sip:example.com", nonce, "00000003",
	    "abc", "auth", resp), 0);
	assert_int_equal(reg(&f, T0 + 4, HDRS("alice", "a1", 5)
	    AUTH("00000003", r) "Contact: <sip:alice@10.0.0.1>\r\n" END,
	    nonce, resp), 403);
	/* MD5 was not offered: a fresh challenge, not a pass. */
	assert_int_equal(auth_digest("MD5", "alice", "example.com",
	    "secret", "REGISTER", "sip:example.com", nonce, "00000004",
	    "abc", "auth", resp), 0);
	assert_int_equal(reg(&f, T0 + 5, HDRS("alice", "a1", 6)
	    "Authorization: Digest username=\"alice\", realm=\"example.com\", "
	    "nonce=\"%s\", uri=\"sip:example.com\", response=\"%s\", "
	    "algorithm=MD5, qop=auth, nc=00000004, cnonce=\"abc\"\r\n"
	    "Contact: <sip:alice@10.0.0.1>\r\n" END, nonce, resp), 401);
	/* A forged nonce is not ours. */
	keep = nonce[10];
	nonce[10] = keep == '0' ? '1' : '0';
	assert_int_equal(auth_digest("SHA-256", "alice", "example.com",
	    "secret", "REGISTER", "sip:example.com", nonce, "00000001",
	    "abc", "auth", resp), 0);
	assert_int_equal(reg(&f, T0 + 6, HDRS("alice", "a1", 7)
	    AUTH("00000001", r) "Contact: <sip:alice@10.0.0.1>\r\n" END,
	    nonce, resp), 401);
	/* After the nonce's lifetime: stale. */
	nonce[10] = keep;
	assert_int_equal(auth_digest("SHA-256", "alice", "example.com",
	    "secret", "REGISTER", "sip:example.com", nonce, "00000009",
	    "abc", "auth", resp), 0);
	assert_int_equal(reg(&f, T0 + 400, HDRS("alice", "a1", 8)
	    AUTH("00000009", r) "Contact: <sip:alice@10.0.0.1>;expires=0\r\n"
	    END, nonce, resp), 401);
	assert_non_null(strstr(svc_header_text(f.home,
	    f.rep.challenges), "stale=true"));
#undef AUTH
	fixture_free(&f);
}

static struct isp_event
ev_make(enum isp_event_type type, const char *key, struct isp_field *f,
    size_t n)
{
	struct isp_event	 ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.table = SIP_REG_TABLE;
	ev.rec.key = key;
	ev.rec.key_len = key != NULL ? strlen(key) : 0;
	ev.rec.fields = f;
	ev.rec.nfields = n;
	return ev;
}

static void
test_locator_index(void **state)
{
	su_home_t		 home[1] = { SU_HOME_INIT(home) };
	struct locator		 l;
	struct isp_field	 f[4] = {
		{ "contact", "sip:alice@10.0.0.1", 18 },
		{ "q", "0.5", 3 },
		{ "received", "198.51.100.7:40123", 18 },
		{ "transport", "udp", 3 },
	};
	struct isp_event	 ev;
	sip_contact_t		*c;

	loc_init(&l);
	ev = ev_make(ISP_EV_ANNOUNCE, "sip:alice@example.com|a", f, 4);
	loc_event(&l, &ev);
	ev = ev_make(ISP_EV_END, NULL, NULL, 0);
	loc_event(&l, &ev);
	assert_true(l.ready);
	assert_int_equal(loc_lookup(&l, home,
	    url_make(home, "sip:alice@EXAMPLE.com;user=phone"), &c), 1);
	assert_string_equal(svc_header_text(home, c),
	    "<sip:alice@10.0.0.1>;q=0.5;received=\"sip:198.51.100.7:40123\"");
	assert_int_equal(loc_lookup(&l, home,
	    url_make(home, "sip:bob@example.com"), &c), 0);
	assert_int_equal(loc_lookup(&l, home, url_make(home, "tel:+1"), &c),
	    -1);
	/* A reconnect whose snapshot lacks the binding sweeps it. */
	loc_mark_stale(&l);
	assert_int_equal(loc_lookup(&l, home,
	    url_make(home, "sip:alice@example.com"), &c), 1);
	loc_event(&l, &ev);
	assert_int_equal(loc_lookup(&l, home,
	    url_make(home, "sip:alice@example.com"), &c), 0);
	assert_int_equal(l.nbindings, 0);
	/* Withdraw. */
	ev = ev_make(ISP_EV_ANNOUNCE, "sip:alice@example.com|a", f, 4);
	loc_event(&l, &ev);
	ev = ev_make(ISP_EV_WITHDRAW, "sip:alice@example.com|a", NULL, 0);
	loc_event(&l, &ev);
	assert_int_equal(l.nbindings, 0);
	loc_free(&l);
	su_home_deinit(home);
}

static void
test_place(void **state)
{
	const char	*ids[5] = { "reg-a", "reg-b", "reg-c", "reg-d",
			    "reg-e" };
	const char	*four[4] = { "reg-a", "reg-b", "reg-d", "reg-e" };
	char		 acct[64];
	long		 was[2000], now;
	int		 i, count[5] = { 0 };

	assert_int_equal(isp_place_pick(ids, NULL, 0, "x", 1), -1);
	/* The weight is the one isp_place.h specifies. */
	assert_true(isp_place_weight("a", 1, "b", 1) ==
	    isp_place_weight("a", 1, "b", 1));
	assert_true(isp_place_weight("a", 1, "b", 1) !=
	    isp_place_weight("b", 1, "a", 1));
	for (i = 0; i < 2000; i++) {
		snprintf(acct, sizeof(acct), "sip:%d@example.com", i);
		was[i] = isp_place_pick(ids, NULL, 5, acct, strlen(acct));
		assert_true(was[i] >= 0 && was[i] < 5);
		count[was[i]]++;
	}
	/* Spread: each of five gets roughly a fifth. */
	for (i = 0; i < 5; i++)
		assert_true(count[i] > 300 && count[i] < 500);
	/* reg-c dies: only its accounts move. */
	for (i = 0; i < 2000; i++) {
		snprintf(acct, sizeof(acct), "sip:%d@example.com", i);
		now = isp_place_pick(four, NULL, 4, acct, strlen(acct));
		if (was[i] != 2)
			assert_string_equal(four[now], ids[was[i]]);
	}
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test(test_digest_rfc7616),
		cmocka_unit_test(test_aor_canon),
		cmocka_unit_test(test_register_refresh_expire),
		cmocka_unit_test(test_contacts_star_limit),
		cmocka_unit_test(test_instance_path_outbound),
		cmocka_unit_test(test_digest_sha256),
		cmocka_unit_test(test_locator_index),
		cmocka_unit_test(test_place),
	};

	svc_log_init("test_sip_core", SVC_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
