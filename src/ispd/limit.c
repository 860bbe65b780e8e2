/*
 * limit: the configured limits, the accounting two of them need
 * (sessions per source address, table creations per session and
 * second), and the count of refusals per limit (for the metrics).
 *
 * Every limit is a setting of settings.c (an option, `limit NAME N` in
 * the file, a line of --help) and is documented in docs/LIMITS.md. A
 * request over a limit is answered ERROR LIMIT with a reason naming the limit and its
 * option, so that an operator reading a client's log knows which knob it
 * is; a connection over a session limit gets that ERROR and is closed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isp.h"
#include "ispd.h"

#define KIB	1024ULL
#define MIB	(1024ULL * 1024)
#define GIB	(1024ULL * 1024 * 1024)

/* Refusals by limit, indexed by its setting (CONF_MAX_*). */
static uint64_t		 limit_nhits[CONF_NKEYS];

/* Live sessions per source address ("127.0.0.1", "[::1]"). */
struct addr_count {
	struct hash_node	 node;
	size_t			 count;
	size_t			 len;
	char			 addr[];
};

#define ADDR_OF(n)	((struct addr_count *)((char *)(n) - \
			    offsetof(struct addr_count, node)))

static struct hash	 addrs;

/*
 * Parses arg for the limit def: a decimal integer, for a *-bytes limit
 * optionally followed by K, M or G (times 1024). Puts it in *out and
 * returns 0, or returns -1 when arg is not such a number or is out of
 * def's range.
 */
int
limit_parse_value(const struct setting *def, const char *arg,
    uint64_t *out)
{
	unsigned long long	 v, mul = 1;
	char			*end;

	if (*arg < '0' || *arg > '9')
		return -1;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0' && strstr(def->name, "-bytes") != NULL &&
	    end[1] == '\0') {
		switch (*end) {
		case 'K':
		case 'k':
			mul = KIB;
			break;
		case 'M':
			mul = MIB;
			break;
		case 'G':
			mul = GIB;
			break;
		default:
			return -1;
		}
		end++;
	}
	if (*end != '\0' || v > UINT64_MAX / mul)
		return -1;
	v *= mul;
	if (v < def->min || v > def->max)
		return -1;
	*out = v;
	return 0;
}

static int
addr_eq(const struct hash_node *n, const void *key, size_t len)
{
	const struct addr_count	*a = ADDR_OF(n);

	return a->len == len && memcmp(a->addr, key, len) == 0;
}

/* The source address of s: its peer text without the port. */
static size_t
limit_addr(const struct session *s)
{
	const char	*colon = strrchr(s->owner.peer, ':');

	return colon != NULL ? (size_t)(colon - s->owner.peer) :
	    strlen(s->owner.peer);
}

static struct addr_count *
addr_find(const struct session *s, size_t len, uint64_t *hv)
{
	struct hash_node	*n;

	*hv = hash_bytes(s->owner.peer, len);
	n = hash_find(&addrs, *hv, s->owner.peer, len, addr_eq);
	return n == NULL ? NULL : ADDR_OF(n);
}

/*
 * A new session s (already counted by session_count()): checks
 * --max-sessions and --max-sessions-per-ip and counts s for its address.
 * Returns 0; ISP_E_LIMIT with why filled (s is not counted then); or -1
 * when out of memory.
 */
int
limit_session_open(struct session *s, char *why, size_t whysz)
{
	struct addr_count	*a;
	size_t			 len = limit_addr(s);
	uint64_t		 hv;

	if (session_count() > ispd_conf.max_sessions) {
		limit_hit(CONF_MAX_SESSIONS);
		snprintf(why, whysz, "ispd has %zu sessions, the limit "
		    "(--max-sessions %" PRIu64 ")", session_count() - 1,
		    ispd_conf.max_sessions);
		return ISP_E_LIMIT;
	}
	if ((a = addr_find(s, len, &hv)) != NULL &&
	    a->count >= ispd_conf.max_sessions_per_ip) {
		limit_hit(CONF_MAX_SESSIONS_PER_IP);
		snprintf(why, whysz, "%zu sessions from %.*s, the limit "
		    "(--max-sessions-per-ip %" PRIu64 ")", a->count, (int)len,
		    s->owner.peer, ispd_conf.max_sessions_per_ip);
		return ISP_E_LIMIT;
	}
	if (a == NULL) {
		if ((a = malloc(sizeof(*a) + len)) == NULL)
			return -1;
		a->count = 0;
		a->len = len;
		memcpy(a->addr, s->owner.peer, len);
		if (hash_insert(&addrs, &a->node, hv) == -1) {
			free(a);
			return -1;
		}
	}
	a->count++;
	s->ip_counted = 1;
	return 0;
}

/* s stops being a live session. */
void
limit_session_close(struct session *s)
{
	struct addr_count	*a;
	uint64_t		 hv;

	if (!s->ip_counted)
		return;
	s->ip_counted = 0;
	if ((a = addr_find(s, limit_addr(s), &hv)) == NULL)
		fatalx("limit_session_close: session %" PRIu64 " from %s not "
		    "counted", s->owner.id, s->owner.peer);
	if (--a->count == 0) {
		hash_remove(&addrs, &a->node);
		free(a);
	}
}

/*
 * s wants to create a table: a token bucket per session, refilled at
 * --max-table-creates-per-sec and holding as many, counted in
 * thousandths so that the refill is exact to the millisecond. Per
 * session rather than global, so that one runaway client does not keep
 * the others from creating theirs (--max-tables bounds the total).
 * Returns 0 (a token taken) or ISP_E_LIMIT with why filled.
 */
int
limit_table_create(struct session *s, char *why, size_t whysz)
{
	uint64_t	 rate = ispd_conf.max_table_creates_per_sec;
	uint64_t	 now = loop_now_ms();

	if (now > s->create_ms) {
		s->create_tokens += (now - s->create_ms) * rate;
		s->create_ms = now;
	}
	if (s->create_tokens > rate * 1000)
		s->create_tokens = rate * 1000;
	if (s->create_tokens < 1000) {
		limit_hit(CONF_MAX_TABLE_CREATES_PER_SEC);
		snprintf(why, whysz, "this session created tables faster than "
		    "the limit (--max-table-creates-per-sec %" PRIu64 ")",
		    rate);
		return ISP_E_LIMIT;
	}
	s->create_tokens -= 1000;
	return 0;
}

/*
 * The configured limits on an ANNOUNCE's members, tighter than the
 * protocol's (which the codec checked). Returns 0 or ISP_E_LIMIT with
 * why filled.
 */
int
limit_record(const struct proto_msg *m, char *why, size_t whysz)
{
	struct proto_field_iter	 it;
	struct proto_field	 f;
	char			 name[PROTO_MAX_FNAME_BYTES + 1];

	if (m->key.len > ispd_conf.max_key_bytes) {
		limit_hit(CONF_MAX_KEY_BYTES);
		snprintf(why, whysz, "key of %zu bytes is over the limit of %"
		    PRIu64 " bytes (--max-key-bytes)", m->key.len,
		    ispd_conf.max_key_bytes);
		return ISP_E_LIMIT;
	}
	if (m->nfields > ispd_conf.max_fields) {
		limit_hit(CONF_MAX_FIELDS);
		snprintf(why, whysz, "%u fields are over the limit of %" PRIu64
		    " (--max-fields)", m->nfields, ispd_conf.max_fields);
		return ISP_E_LIMIT;
	}
	if (ispd_conf.max_value_bytes >= PROTO_MAX_VALUE_BYTES)
		return 0;
	proto_fields_iter(&it, m->fields);
	while (proto_fields_next(&it, &f)) {
		if (f.value.len <= ispd_conf.max_value_bytes)
			continue;
		limit_hit(CONF_MAX_VALUE_BYTES);
		snprintf(why, whysz, "value of field %s, %zu bytes, is over "
		    "the limit of %" PRIu64 " bytes (--max-value-bytes)",
		    log_escape(name, sizeof(name), f.name.p, f.name.len),
		    f.value.len, ispd_conf.max_value_bytes);
		return ISP_E_LIMIT;
	}
	return 0;
}

/* A request or a connection was refused by the limit settings[key]. */
void
limit_hit(size_t key)
{
	if (key >= CONF_NKEYS || settings[key].type != SET_LIMIT)
		fatalx("limit_hit: setting %zu is not a limit", key);
	limit_nhits[key]++;
}

/* Refusals by the limit settings[key]. */
uint64_t
limit_hits(size_t key)
{
	return key < CONF_NKEYS ? limit_nhits[key] : 0;
}

/* At exit, after every session ended. */
void
limit_free(void)
{
	if (addrs.count != 0)
		fatalx("limit_free: %zu addresses still counted", addrs.count);
	hash_free(&addrs);
}
