/*
 * intent: the records this client holds, kept so that a session that
 * comes back (a restarted reflector, a lost connection) gets them again.
 * Only with reconnect set.
 *
 * One entry per (table, key), the latest announce: its encoded fields
 * block as it went on the wire, the TTL and the request id. A withdraw
 * removes the entry; a TTL that ran out without a new announce does
 * too (the server has withdrawn the record, and announcing it again
 * would bring back what the application let expire). So memory is
 * bounded by the records the application holds, plus expired ones until
 * the next prune.
 */
#include <stdlib.h>
#include <string.h>

#include "lib.h"

/* Prunes expired entries when the table has grown this much since the
 * last prune (or to this size): amortised O(1) per announce. */
#define INTENT_PRUNE_MIN	1024

struct intent {
	struct hash_node	 node;
	uint64_t		 expires_ms;	/* 0: no TTL */
	uint32_t		 ttl_s;
	uint32_t		 req_id;
	size_t			 tkey_len;	/* u8 table length, table, key */
	size_t			 fields_len;
	uint8_t			 data[];	/* tkey, then fields block */
};

static struct intent *
node_intent(const struct hash_node *n)
{
	return (struct intent *)((char *)(uintptr_t)n -
	    offsetof(struct intent, node));
}

static int
intent_eq(const struct hash_node *n, const void *tkey, size_t len)
{
	const struct intent	*in = node_intent(n);

	return in->tkey_len == len && memcmp(in->data, tkey, len) == 0;
}

/* The lookup key: the table's length, the table, the key. */
static size_t
intent_tkey(uint8_t *dst, const char *table, size_t tlen, const void *key,
    size_t key_len)
{
	dst[0] = (uint8_t)tlen;
	memcpy(dst + 1, table, tlen);
	memcpy(dst + 1 + tlen, key, key_len);
	return 1 + tlen + key_len;
}

int
intent_put(struct isp_client *c, const char *table, size_t tlen,
    const void *key, size_t key_len, const uint8_t *fields,
    size_t fields_len, uint32_t ttl_s, uint32_t req_id)
{
	uint8_t			 tkey[1 + PROTO_MAX_TABLE_BYTES +
				    PROTO_MAX_KEY_BYTES];
	struct hash_node	*n;
	struct intent		*in;
	uint64_t		 hv;
	size_t			 len;

	len = intent_tkey(tkey, table, tlen, key, key_len);
	hv = hash_bytes(tkey, len);
	if ((in = malloc(sizeof(*in) + len + fields_len)) == NULL)
		return ISP_E_NOMEM;
	in->expires_ms = ttl_s > 0 ? client_now_ms() + (uint64_t)ttl_s * 1000 :
	    0;
	in->ttl_s = ttl_s;
	in->req_id = req_id;
	in->tkey_len = len;
	in->fields_len = fields_len;
	memcpy(in->data, tkey, len);
	memcpy(in->data + len, fields, fields_len);
	if ((n = hash_find(&c->intents, hv, tkey, len, intent_eq)) != NULL) {
		hash_remove(&c->intents, n);
		free(node_intent(n));
	}
	if (hash_insert(&c->intents, &in->node, hv) == -1) {
		free(in);
		return ISP_E_NOMEM;
	}
	return ISP_OK;
}

void
intent_del(struct isp_client *c, const char *table, size_t tlen,
    const void *key, size_t key_len)
{
	uint8_t			 tkey[1 + PROTO_MAX_TABLE_BYTES +
				    PROTO_MAX_KEY_BYTES];
	struct hash_node	*n;
	size_t			 len;

	len = intent_tkey(tkey, table, tlen, key, key_len);
	n = hash_find(&c->intents, hash_bytes(tkey, len), tkey, len,
	    intent_eq);
	if (n != NULL) {
		hash_remove(&c->intents, n);
		free(node_intent(n));
	}
}

static int
intent_expired(const struct intent *in, uint64_t now)
{
	return in->expires_ms != 0 && in->expires_ms <= now;
}

int
intent_replay(struct conn *cn)
{
	struct isp_client	*c = cn->c;
	struct hash_node	*n, *next;
	struct intent		*in;
	uint64_t		 now = client_now_ms();
	size_t			 pos = 0, mark = cn->out.len, tlen;
	uint32_t		 ttl;

	for (n = hash_next(&c->intents, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&c->intents, &pos, n);
		in = node_intent(n);
		if (intent_expired(in, now)) {
			hash_remove(&c->intents, n);
			free(in);
			continue;
		}
		/* What is left of the TTL, rounded up: the record expires
		 * when the application meant it to, give or take a second. */
		ttl = in->ttl_s == 0 ? 0 :
		    (uint32_t)((in->expires_ms - now + 999) / 1000);
		tlen = in->data[0];
		proto_put_announce(&cn->out, in->req_id,
		    proto_bytes(in->data + 1, tlen), ttl,
		    proto_bytes(in->data + 1 + tlen, in->tkey_len - 1 - tlen),
		    proto_bytes(in->data + in->tkey_len, in->fields_len));
	}
	return wire_queued(cn, mark);
}

void
intent_prune(struct isp_client *c, uint64_t now)
{
	struct hash_node	*n, *next;
	size_t			 pos = 0;

	if (c->intents.count < c->intents_prune_at ||
	    c->intents.count < INTENT_PRUNE_MIN)
		return;
	for (n = hash_next(&c->intents, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&c->intents, &pos, n);
		if (intent_expired(node_intent(n), now)) {
			hash_remove(&c->intents, n);
			free(node_intent(n));
		}
	}
	c->intents_prune_at = 2 * c->intents.count;
}

void
intent_free_all(struct isp_client *c)
{
	struct hash_node	*n, *next;
	size_t			 pos = 0;

	for (n = hash_next(&c->intents, &pos, NULL); n != NULL; n = next) {
		next = hash_next(&c->intents, &pos, n);
		hash_remove(&c->intents, n);
		free(node_intent(n));
	}
	hash_free(&c->intents);
}
