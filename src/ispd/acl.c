/*
 * acl: authorization. Which identity may subscribe to, announce into or
 * create which tables, by rules from the configuration file
 * (docs/CONFIG.md, docs/SECURITY.md):
 *
 *	default deny
 *	allow bgw-*      announce,create SIP_REGISTRATION
 *	allow asterisk-* subscribe       SIP_REGISTRATION INSTANCES*
 *	deny  *          subscribe       ispd.sessions
 *
 * Rules are tried in the order written; the first whose identity
 * pattern, operation and table pattern all match decides. None matching:
 * the default, "allow" unless the file says "default deny". A pattern is
 * an exact name, a prefix followed by '*', or '*' alone. The identity is
 * the session's verified certificate name or authenticated client name,
 * else "anonymous" (auth.c, tls.c): a client cannot pick the name the
 * rules see.
 *
 * First match, like a packet filter, rather than "most specific wins":
 * an operator reads the file top-down and knows which line decided, and
 * that line is what a denied client is told.
 *
 * Cost: with no rule and the default allow (no configuration file),
 * every check is one test of a flag. Otherwise each session caches its
 * rights on the last table it asked about (struct acl_cache, its member
 * acl), valid until the rules change (a generation number), so a border
 * gateway announcing into one table pays for one walk of the rules per
 * reload, not per ANNOUNCE.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ispd.h"
#include "acl.h"

#define ACL_WORD_MAX	64

struct acl_pat {
	char		*s;
	size_t		 len;
	int		 prefix;	/* written with a trailing '*' */
};

struct acl_rule {
	int		 allow;
	struct acl_pat	 who;
	uint8_t		 ops;
	struct acl_pat	*tables;
	size_t		 ntables;
	int		 line;
	char		*text;		/* as written, for messages */
};

struct acl {
	char		*file;
	struct acl_rule	*rules;
	size_t		 nrules;
	int		 deny;		/* the default */
	int		 default_line;	/* 0: not written */
};

static struct acl	*running;
/* No rule and the default allow: every check passes. */
static int		 open_all = 1;
/* No configuration file: operator requests are allowed too. */
static int		 admin_open = 1;
static uint64_t		 generation = 1;
static struct log_rate	 denied_rate;

struct acl *
acl_new(const char *file)
{
	struct acl	*a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	if (file != NULL && (a->file = strdup(file)) == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

void
acl_free(struct acl *a)
{
	size_t	 i, j;

	if (a == NULL)
		return;
	for (i = 0; i < a->nrules; i++) {
		free(a->rules[i].who.s);
		for (j = 0; j < a->rules[i].ntables; j++)
			free(a->rules[i].tables[j].s);
		free(a->rules[i].tables);
		free(a->rules[i].text);
	}
	free(a->rules);
	free(a->file);
	free(a);
}

size_t
acl_nrules(const struct acl *a)
{
	return a == NULL ? 0 : a->nrules;
}

int
acl_default(struct acl *a, int deny, int line)
{
	a->deny = deny;
	a->default_line = line;
	return 0;
}

/* Identities are client names and certificate names: printable, no
 * blank (the file splits words at blanks). Tables: proto.c's rule. */
static int
acl_pat_char_ok(int table, uint8_t c)
{
	if (table)
		return proto_table_valid(&c, 1);
	return c > 0x20 && c < 0x7f;
}

static int
acl_pat_parse(struct acl_pat *p, const char *w, int table, char *err,
    size_t errsz)
{
	size_t	 len = strlen(w), i;

	memset(p, 0, sizeof(*p));
	if (len > 0 && w[len - 1] == '*') {
		p->prefix = 1;
		len--;
	}
	if (len > (table ? PROTO_MAX_TABLE_BYTES : SESSION_NAME_MAX)) {
		snprintf(err, errsz, "%s pattern '%s' is longer than %d "
		    "characters", table ? "table" : "identity", w,
		    table ? PROTO_MAX_TABLE_BYTES : SESSION_NAME_MAX);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (w[i] == '*') {
			snprintf(err, errsz, "%s pattern '%s': '*' may only "
			    "end a pattern (a prefix) or stand alone",
			    table ? "table" : "identity", w);
			return -1;
		}
		if (!acl_pat_char_ok(table, (uint8_t)w[i])) {
			snprintf(err, errsz, "%s pattern '%s' has a character "
			    "a %s cannot have%s", table ? "table" : "identity",
			    w, table ? "table name" : "client name",
			    table ? " (A-Z a-z 0-9 _ . : -)" : "");
			return -1;
		}
	}
	if ((p->s = malloc(len + 1)) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	memcpy(p->s, w, len);
	p->s[len] = '\0';
	p->len = len;
	return 0;
}

static int
acl_ops_parse(const char *w, uint8_t *ops, char *err, size_t errsz)
{
	char		 copy[128], *tok, *save = NULL;

	if (strlen(w) >= sizeof(copy)) {
		snprintf(err, errsz, "operations '%.40s...' too long", w);
		return -1;
	}
	snprintf(copy, sizeof(copy), "%s", w);
	*ops = 0;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "subscribe") == 0)
			*ops |= ACL_SUBSCRIBE;
		else if (strcmp(tok, "announce") == 0)
			*ops |= ACL_ANNOUNCE;
		else if (strcmp(tok, "create") == 0)
			*ops |= ACL_CREATE;
		else if (strcmp(tok, "all") == 0)
			*ops |= ACL_ALL;
		else if (strcmp(tok, "kick") == 0)
			*ops |= ACL_KICK;
		else if (strcmp(tok, "evict") == 0)
			*ops |= ACL_EVICT;
		else if (strcmp(tok, "drop") == 0)
			*ops |= ACL_DROP;
		else if (strcmp(tok, "held") == 0)
			*ops |= ACL_HELD;
		else if (strcmp(tok, "admin") == 0)
			*ops |= ACL_ADMIN;
		else {
			snprintf(err, errsz, "unknown operation '%s': expected "
			    "subscribe, announce, create, all, kick, evict, "
			    "drop, held or admin, or several joined by commas",
			    tok);
			return -1;
		}
	}
	if (*ops == 0) {
		snprintf(err, errsz, "no operation in '%s'", w);
		return -1;
	}
	return 0;
}

/*
 * Adds "allow|deny WHO OPS TABLE..." (words are what follows allow or
 * deny). Returns 0, or -1 with err filled.
 */
int
acl_rule_add(struct acl *a, int allow, char **w, int nw, int line, char *err,
    size_t errsz)
{
	struct acl_rule	*v, r;
	size_t		 textlen = 0;
	int		 i;

	if (nw < 3) {
		snprintf(err, errsz, "%s needs an identity, operations and at "
		    "least one table, e.g. '%s bgw-* announce "
		    "SIP_REGISTRATION'", allow ? "allow" : "deny",
		    allow ? "allow" : "deny");
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.allow = allow;
	r.line = line;
	if (acl_pat_parse(&r.who, w[0], 0, err, errsz) == -1)
		return -1;
	if (acl_ops_parse(w[1], &r.ops, err, errsz) == -1)
		goto fail;
	r.ntables = (size_t)(nw - 2);
	if ((r.tables = calloc(r.ntables, sizeof(*r.tables))) == NULL)
		goto nomem;
	for (i = 2; i < nw; i++)
		if (acl_pat_parse(&r.tables[i - 2], w[i], 1, err, errsz) == -1)
			goto fail;
	textlen = strlen(allow ? "allow" : "deny");
	for (i = 0; i < nw; i++)
		textlen += 1 + strlen(w[i]);
	if ((r.text = malloc(textlen + 1)) == NULL)
		goto nomem;
	strcpy(r.text, allow ? "allow" : "deny");
	for (i = 0; i < nw; i++) {
		strcat(r.text, " ");
		strcat(r.text, w[i]);
	}
	if ((v = realloc(a->rules, (a->nrules + 1) * sizeof(*v))) == NULL)
		goto nomem;
	a->rules = v;
	a->rules[a->nrules++] = r;
	return 0;
nomem:
	snprintf(err, errsz, "out of memory");
fail:
	free(r.who.s);
	for (i = 0; r.tables != NULL && (size_t)i < r.ntables; i++)
		free(r.tables[i].s);
	free(r.tables);
	free(r.text);
	return -1;
}

static int
acl_pat_match(const struct acl_pat *p, const void *s, size_t len)
{
	if (p->prefix)
		return len >= p->len && memcmp(s, p->s, p->len) == 0;
	return len == p->len && memcmp(s, p->s, len) == 0;
}

/* The rule that decides op for (who, table), or NULL for the default. */
static const struct acl_rule *
acl_decide(const struct acl *a, const char *who, size_t wlen,
    const void *table, size_t tlen, uint8_t op)
{
	const struct acl_rule	*r;
	size_t			 i, j;

	for (i = 0; i < a->nrules; i++) {
		r = &a->rules[i];
		if (!(r->ops & op) || !acl_pat_match(&r->who, who, wlen))
			continue;
		for (j = 0; j < r->ntables; j++)
			if (acl_pat_match(&r->tables[j], table, tlen))
				return r;
	}
	return NULL;
}

static int
acl_allows(const struct acl *a, const struct acl_rule *r)
{
	return r != NULL ? r->allow : !a->deny;
}

static uint8_t
acl_rights(const struct session *s, const void *table, size_t tlen)
{
	static const uint8_t	 ops[] = { ACL_SUBSCRIBE, ACL_ANNOUNCE,
				    ACL_CREATE };
	uint8_t			 rights = 0;
	size_t			 i;

	for (i = 0; i < sizeof(ops); i++)
		if (acl_allows(running, acl_decide(running, s->owner.ident,
		    s->owner.ident_len, table, tlen, ops[i])))
			rights |= ops[i];
	return rights;
}

/* s's rights on table t (or, when t is NULL, the table of that name). */
static uint8_t
acl_rights_cached(struct session *s, const struct table *t,
    struct proto_bytes name)
{
	if (t == NULL)
		return acl_rights(s, name.p, name.len);
	if (s->acl.table != t || s->acl.gen != generation) {
		s->acl.rights = acl_rights(s, t->name, t->name_len);
		s->acl.table = t;
		s->acl.gen = generation;
	}
	return s->acl.rights;
}

/* 1 when s may do op on t. */
int
acl_may(struct session *s, uint8_t op, const struct table *t)
{
	if (open_all)
		return 1;
	return (acl_rights_cached(s, t, proto_bytes(t->name, t->name_len)) &
	    op) == op;
}

static const char *
acl_op_text(uint8_t op)
{
	switch (op) {
	case ACL_SUBSCRIBE:
		return "subscribe to";
	case ACL_ANNOUNCE:
		return "announce into";
	default:
		return "create";
	}
}

/*
 * May s do every operation of ops on the table t (NULL: not created yet)
 * named name? Returns 0, or ISP_E_DENIED with why naming the rule that
 * decided (or the default); the denial is counted and logged (at most
 * once a second, with the number not logged).
 */
int
acl_check(struct session *s, uint8_t ops, const struct table *t,
    struct proto_bytes name, uint32_t req_id, char *why, size_t whysz)
{
	const struct acl_rule	*r;
	char			 tname[PROTO_MAX_TABLE_BYTES + 16], rule[300];
	uint8_t			 missing, op;
	uint64_t		 unlogged;

	if (open_all)
		return 0;
	if ((missing = ops & ~acl_rights_cached(s, t, name)) == 0)
		return 0;
	op = missing & ACL_SUBSCRIBE ? ACL_SUBSCRIBE :
	    missing & ACL_ANNOUNCE ? ACL_ANNOUNCE : ACL_CREATE;
	r = acl_decide(running, s->owner.ident, s->owner.ident_len, name.p,
	    name.len, op);
	if (r != NULL)
		snprintf(rule, sizeof(rule), "denied by rule %s:%d (%s)",
		    running->file, r->line, r->text);
	else if (running->default_line > 0)
		snprintf(rule, sizeof(rule), "no rule allows it (default deny, "
		    "%s:%d)", running->file, running->default_line);
	else
		snprintf(rule, sizeof(rule), "no rule allows it (default "
		    "deny)");
	log_escape(tname, sizeof(tname), name.p, name.len);
	snprintf(why, whysz, "%s may not %s table %s: %s", s->owner.ident,
	    acl_op_text(op), tname, rule);
	ispd_stats.denied++;
	if (log_rate_ok(&denied_rate, &unlogged))
		log_info("session %" PRIu64 " (%s): request %" PRIu32
		    " refused: %s%s", s->owner.id, s->owner.peer, req_id, why,
		    log_unlogged(unlogged, "refused"));
	return ISP_E_DENIED;
}

/* Whether ispd runs without a configuration file, where every request
 * is allowed, operator requests included. */
void
acl_admin_open(int open)
{
	admin_open = open;
}

/*
 * A table was dropped: its struct is freed and a new one may take its
 * address, so every session's cached rights (acl_rights_cached()) are
 * looked up again.
 */
void
acl_table_dropped(void)
{
	generation++;
}

/*
 * May s do the operator request op (ACL_KICK, ACL_EVICT, ACL_DROP,
 * ACL_HELD) on the table named table ("*" for a kick or a listing of
 * held records, which concern no one table)? Only an allow rule naming
 * op grants it: neither "all" nor "default allow" does, so that rules
 * written before these rights existed give them to nobody. Returns 0,
 * or ISP_E_DENIED with why naming the rule that decided; the refusal is
 * counted and logged.
 */
int
acl_admin_check(struct session *s, uint8_t op, struct proto_bytes table,
    uint32_t req_id, char *why, size_t whysz)
{
	const struct acl_rule	*r = NULL;
	char			 tname[PROTO_MAX_TABLE_BYTES + 16], rule[300];
	const char		*opname;

	if (admin_open)
		return 0;
	if (running != NULL)
		r = acl_decide(running, s->owner.ident, s->owner.ident_len,
		    table.p, table.len, op);
	if (r != NULL && r->allow)
		return 0;
	opname = op == ACL_KICK ? "kick" : op == ACL_EVICT ? "evict" :
	    op == ACL_DROP ? "drop" : "held";
	if (r != NULL)
		snprintf(rule, sizeof(rule), "denied by rule %s:%d (%s)",
		    running->file, r->line, r->text);
	else
		snprintf(rule, sizeof(rule), "no rule allows it (%s needs an "
		    "allow rule naming it)", opname);
	log_escape(tname, sizeof(tname), table.p, table.len);
	switch (op) {
	case ACL_KICK:
		snprintf(why, whysz, "%s may not kick sessions: %s",
		    s->owner.ident, rule);
		break;
	case ACL_EVICT:
		snprintf(why, whysz, "%s may not evict from table %s: %s",
		    s->owner.ident, tname, rule);
		break;
	case ACL_DROP:
		snprintf(why, whysz, "%s may not drop table %s: %s",
		    s->owner.ident, tname, rule);
		break;
	default:
		snprintf(why, whysz, "%s may not list held records: %s",
		    s->owner.ident, rule);
		break;
	}
	ispd_stats.denied++;
	log_warnx("session %" PRIu64 " (%s): ADMIN request %" PRIu32
	    " refused: %s", s->owner.id, s->owner.peer, req_id, why);
	return ISP_E_DENIED;
}

/* Puts a (checked) set of rules to use, NULL for none; takes it. Every
 * session's rights are looked at again (session.c ends what is no longer
 * allowed). */
void
acl_set(struct acl *a)
{
	struct acl	*old = running;

	running = a;
	open_all = a == NULL || (a->nrules == 0 && !a->deny);
	generation++;
	if (old != NULL || a != NULL)
		session_rules_changed();
	acl_free(old);
}

void
acl_free_all(void)
{
	acl_free(running);
	running = NULL;
	open_all = 1;
}
