/*
 * conf: the configuration file (--config FILE), its check
 * (--check-config FILE) and what both share with the command line.
 *
 * The file is line-based, in the spirit of bgpd.conf without its
 * grammar: one directive a line, words separated by blanks, '#' starting
 * a comment. docs/CONFIG.md is the reference, examples/ispd.conf an
 * annotated example.
 *
 *	listen 127.0.0.1:7460
 *	listen-tls 0.0.0.0:7461
 *	tls-cert /etc/ispd/server.crt
 *	limit max-sessions 1000
 *	default deny
 *	allow bgw-* announce,create SIP_REGISTRATION
 *	graceful-table SIP_REGISTRATION
 *
 * Every error names its file and line, and parsing goes on after one, so
 * a single run reports them all. The directives are the settings of
 * settings.c that the file may give. The command line is parsed into a
 * struct conf of its own (line 0) and laid over the file's by
 * conf_merge(): a setting given there wins, and listeners and
 * graceful-table patterns given there replace the file's. conf_load() then checks what the settings mean
 * together and loads the files they name (TLS, credentials), so that
 * `ispd --check-config` finds everything starting would.
 */
#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "ispd.h"
#include "acl.h"
#include "tls.h"
#include "prom.h"

#define CONF_LINE_MAX	4096
#define CONF_WORDS_MAX	64
/* A hold time above this is a typo, not a configuration. */
#define CONF_MAX_HOLD_S	86400.0

void
conf_init(struct conf *c)
{
	memset(c, 0, sizeof(*c));
}

void
conf_free(struct conf *c)
{
	int	 i;

	for (i = 0; i < c->nlisten; i++)
		free(c->listen[i].spec);
	for (i = 0; i < c->ngraceful; i++)
		free(c->graceful[i]);
	for (i = 0; i < CONF_NKEYS; i++)
		free(c->item[i].str);
	acl_free(c->acl);
	free(c->file);
	free(c->dir);
	conf_init(c);
}

/* "FILE:LINE", "FILE" (line < 0) or "command line" (line 0). */
const char *
conf_where(const struct conf *c, int line, char *buf, size_t bufsz)
{
	if (line == 0 || c->file == NULL)
		snprintf(buf, bufsz, "command line");
	else if (line < 0)
		snprintf(buf, bufsz, "%s", c->file);
	else
		snprintf(buf, bufsz, "%s:%d", c->file, line);
	return buf;
}

static void
conf_report(struct conf *c, const char *where, const char *msg)
{
	c->nerrors++;
	if (c->to_log)
		log_warnx("%s: %s", where, msg);
	else
		fprintf(stderr, "%s: %s\n", where, msg);
}

/* Reports an error at line of c's file (0: the command line, < 0: the
 * file as a whole) and counts it. */
void
conf_error(struct conf *c, int line, const char *fmt, ...)
{
	char	 msg[1024], where[1100];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line == 0 && !c->to_log)
		snprintf(where, sizeof(where), "ispd: command line");
	else
		conf_where(c, line, where, sizeof(where));
	conf_report(c, where, msg);
}

static int
conf_hold_parse(const char *arg, uint64_t *ms)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno != 0 || end == arg || *end != '\0' || !isfinite(v) ||
	    v <= 0 || v > CONF_MAX_HOLD_S || v * 1000 < 1)
		return -1;
	*ms = (uint64_t)(v * 1000 + 0.5);
	return 0;
}

/* A path as given, or relative to the configuration file's directory. */
static char *
conf_path(const struct conf *c, int line, const char *v)
{
	char	*p;

	if (v[0] == '/' || line == 0 || c->dir == NULL)
		return strdup(v);
	if (asprintf(&p, "%s/%s", c->dir, v) == -1)
		return NULL;
	return p;
}

/*
 * Sets the setting key from text, given at line (0: the command line,
 * where the last one given wins). Returns 0, or -1 after reporting why.
 */
int
conf_set(struct conf *c, enum conf_key key, const char *v, int line)
{
	const struct setting	*d = &settings[key];
	struct conf_item	*it = &c->item[key];
	uint64_t		 num = 0;
	char			*str = NULL;
	const char		*name = d->name, *limit = "";
	int			 level;
	char			*end, why[160];

	if (d->type == SET_LIMIT && line != 0)
		limit = "limit ";
	if (it->set && line > 0 && it->line > 0) {
		conf_error(c, line, "%s%s is given twice (first on line %d)",
		    limit, name, it->line);
		return -1;
	}
	if (*v == '\0') {
		conf_error(c, line, "%s%s needs a value: '%s%s %s'", limit,
		    name, limit, name, d->arg);
		return -1;
	}
	switch (d->type) {
	case SET_PATH:
		if ((str = conf_path(c, line, v)) == NULL) {
			conf_error(c, line, "out of memory");
			return -1;
		}
		break;
	case SET_TEXT:
		if (strlen(v) > PROTO_MAX_STR_BYTES) {
			conf_error(c, line, "%s '%.40s...' is longer than %d "
			    "bytes", name, v, PROTO_MAX_STR_BYTES);
			return -1;
		}
		if ((str = strdup(v)) == NULL) {
			conf_error(c, line, "out of memory");
			return -1;
		}
		break;
	case SET_BOOL:
		if (strcmp(v, "yes") == 0)
			num = 1;
		else if (strcmp(v, "no") != 0) {
			conf_error(c, line, "%s '%s': expected yes or no", name,
			    v);
			return -1;
		}
		break;
	case SET_AUTH:
		if (strcmp(v, "required") == 0)
			num = CONF_AUTH_REQUIRED;
		else if (strcmp(v, "optional") == 0)
			num = CONF_AUTH_OPTIONAL;
		else {
			conf_error(c, line, "%s '%s': expected required or "
			    "optional", name, v);
			return -1;
		}
		break;
	case SET_HOLD:
		if (conf_hold_parse(v, &num) == -1) {
			conf_error(c, line, "%s '%s': expected seconds, more "
			    "than 0 and at most %.0f (decimals such as 0.5 are "
			    "fine)", name, v, CONF_MAX_HOLD_S);
			return -1;
		}
		break;
	case SET_LEVEL:
		if ((level = log_level_parse(v)) == -1) {
			conf_error(c, line, "%s '%s': expected error, warn, "
			    "info or debug", name, v);
			return -1;
		}
		num = (uint64_t)level;
		break;
	case SET_ADDR:
		if (prom_addr_check(v, why, sizeof(why)) == -1) {
			conf_error(c, line, "invalid %s '%s': %s", name, v, why);
			return -1;
		}
		if ((str = strdup(v)) == NULL) {
			conf_error(c, line, "out of memory");
			return -1;
		}
		break;
	case SET_SECONDS:
		errno = 0;
		num = strtoull(v, &end, 10);
		if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 ||
		    num < d->min || num > d->max) {
			conf_error(c, line, "%s '%s': expected a whole number "
			    "of seconds from %" PRIu64 " to %" PRIu64, name, v,
			    d->min, d->max);
			return -1;
		}
		num *= 1000;
		break;
	case SET_LIMIT:
		if (limit_parse_value(d, v, &num) == -1) {
			conf_error(c, line, "%s%s '%s': expected a whole number "
			    "from %" PRIu64 " to %" PRIu64 "%s", limit, name, v,
			    d->min, d->max, strstr(name, "-bytes") ?
			    " (K, M or G suffix allowed)" : "");
			return -1;
		}
		break;
	default:
		fatalx("conf_set: %s is no value", name);
	}
	free(it->str);
	it->str = str;
	it->num = num;
	it->set = 1;
	it->line = line;
	return 0;
}

/* Adds a listener (checked by addr_split()). Returns 0 or -1 after
 * reporting why. */
int
conf_add_listen(struct conf *c, const char *spec, int tls, int line)
{
	char	 host[256], port[8];
	char	*copy;

	if (addr_split(spec, "0.0.0.0", host, sizeof(host), port,
	    sizeof(port)) == -1) {
		conf_error(c, line, "%s '%s': expected HOST:PORT or "
		    "[IPV6]:PORT with a port of 0 to 65535",
		    tls ? "listen-tls" : "listen", spec);
		return -1;
	}
	if (c->nlisten == CONF_MAX_LISTEN) {
		conf_error(c, line, "too many listeners: at most %d",
		    CONF_MAX_LISTEN);
		return -1;
	}
	if ((copy = strdup(spec)) == NULL) {
		conf_error(c, line, "out of memory");
		return -1;
	}
	c->listen[c->nlisten].spec = copy;
	c->listen[c->nlisten].tls = tls;
	c->listen[c->nlisten].line = line;
	c->nlisten++;
	return 0;
}

/*
 * Adds a graceful-table pattern: a table name, or a prefix of one
 * followed by '*' ("*" alone: every table). Returns 0 or -1 after
 * reporting why.
 */
int
conf_add_graceful(struct conf *c, const char *pattern, int line)
{
	size_t	 len = strlen(pattern);
	char	*copy;

	if (len > 0 && pattern[len - 1] == '*')
		len--;
	if ((len == 0 && pattern[0] != '*') || len > PROTO_MAX_TABLE_BYTES ||
	    (len > 0 && !proto_table_valid(pattern, len))) {
		conf_error(c, line, "graceful-table '%s': expected a table name "
		    "(1 to %d of A-Z a-z 0-9 _ . : -), or a prefix of one "
		    "followed by '*'", pattern, PROTO_MAX_TABLE_BYTES);
		return -1;
	}
	if (c->ngraceful == CONF_MAX_GRACEFUL) {
		conf_error(c, line, "too many graceful-table patterns: at most "
		    "%d", CONF_MAX_GRACEFUL);
		return -1;
	}
	if ((copy = strdup(pattern)) == NULL) {
		conf_error(c, line, "out of memory");
		return -1;
	}
	c->graceful[c->ngraceful] = copy;
	c->graceful_line[c->ngraceful] = line;
	c->ngraceful++;
	return 0;
}

static void
conf_limit(struct conf *c, char **w, int nw, int line)
{
	const char	*name;
	int		 i;

	if (nw != 3) {
		conf_error(c, line, "limit takes a name and a value, e.g. "
		    "'limit max-sessions 1000'");
		return;
	}
	name = strncmp(w[1], "--", 2) == 0 ? w[1] + 2 : w[1];
	if ((i = setting_find(name)) == -1 || settings[i].type != SET_LIMIT) {
		conf_error(c, line, "unknown limit '%s' (ispd --help lists "
		    "them: max-sessions, max-queue-bytes, ...)", w[1]);
		return;
	}
	(void)conf_set(c, i, w[2], line);
}

static void
conf_rule(struct conf *c, char **w, int nw, int line)
{
	char	 err[512];

	if (c->acl == NULL && (c->acl = acl_new(c->file)) == NULL) {
		conf_error(c, line, "out of memory");
		return;
	}
	if (strcmp(w[0], "default") == 0) {
		if (nw != 2 || (strcmp(w[1], "allow") != 0 &&
		    strcmp(w[1], "deny") != 0)) {
			conf_error(c, line, "default takes allow or deny");
			return;
		}
		acl_default(c->acl, strcmp(w[1], "deny") == 0, line);
		return;
	}
	if (acl_rule_add(c->acl, strcmp(w[0], "allow") == 0, w + 1, nw - 1,
	    line, err, sizeof(err)) == -1)
		conf_error(c, line, "%s", err);
}

/* Splits line into words at blanks, up to a '#' starting a word.
 * Returns the number of words, or -1 when there are too many. */
static int
conf_words(char *line, char **w)
{
	char	*p = line;
	int	 n = 0;

	for (;;) {
		p += strspn(p, " \t\r\n");
		if (*p == '\0' || *p == '#')
			return n;
		if (n == CONF_WORDS_MAX)
			return -1;
		w[n++] = p;
		p += strcspn(p, " \t\r\n");
		if (*p != '\0')
			*p++ = '\0';
	}
}

/* 1 when settings[i] is named in the list of directives: those the
 * file takes, "limit" once for all the limits. */
static int
conf_listed(int i)
{
	return !(settings[i].flags & SET_NOFILE) &&
	    (settings[i].type != SET_LIMIT || i == CONF_MAX_QUEUE_BYTES);
}

/* "unknown directive" lists the directives. */
static void
conf_unknown(struct conf *c, const char *word, int line)
{
	char	 list[1024];
	size_t	 len = 0;
	int	 i, n = 0, last = -1;

	for (i = 0; i < CONF_NKEYS; i++)
		if (conf_listed(i))
			last = i;
	list[0] = '\0';
	for (i = 0; i <= last && len < sizeof(list); i++) {
		if (!conf_listed(i))
			continue;
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
		    n++ == 0 ? "" : i == last ? " or " : ", ",
		    settings[i].type == SET_LIMIT ? "limit" : settings[i].name);
	}
	conf_error(c, line, "unknown directive '%s' (expected %s; "
	    "docs/CONFIG.md)", word, list);
}

static void
conf_line(struct conf *c, char *text, int line)
{
	const struct setting	*d;
	char			*w[CONF_WORDS_MAX];
	int			 nw, i, key;

	if ((nw = conf_words(text, w)) == 0)
		return;
	if (nw == -1) {
		conf_error(c, line, "more than %d words", CONF_WORDS_MAX);
		return;
	}
	if (strcmp(w[0], "limit") == 0) {
		conf_limit(c, w, nw, line);
		return;
	}
	if ((key = setting_find(w[0])) == -1 ||
	    (settings[key].flags & SET_NOFILE) ||
	    settings[key].type == SET_LIMIT) {
		conf_unknown(c, w[0], line);
		return;
	}
	d = &settings[key];
	switch (d->type) {
	case SET_LISTEN:
		if (nw != 2)
			conf_error(c, line, "%s takes one address, e.g. '%s "
			    "127.0.0.1:7460'", w[0], w[0]);
		else
			(void)conf_add_listen(c, w[1], key == CONF_LISTEN_TLS,
			    line);
		return;
	case SET_PATTERN:
		if (nw < 2)
			conf_error(c, line, "graceful-table takes table names "
			    "or prefixes, e.g. 'graceful-table "
			    "SIP_REGISTRATION sip.*'");
		for (i = 1; i < nw; i++)
			(void)conf_add_graceful(c, w[i], line);
		return;
	case SET_RULE:
		conf_rule(c, w, nw, line);
		return;
	default:
		break;
	}
	if (nw != 2) {
		conf_error(c, line, "%s takes one value: '%s %s'", w[0],
		    w[0], d->arg);
		return;
	}
	(void)conf_set(c, key, w[1], line);
}

/*
 * Reads the configuration file at path into c (which must be fresh).
 * Returns the number of errors, each reported with its line.
 */
int
conf_parse_file(struct conf *c, const char *path)
{
	struct stat	 st;
	char		 text[CONF_LINE_MAX], *slash;
	FILE		*f;
	int		 line = 0;

	if ((c->file = strdup(path)) == NULL || (c->dir = strdup(path)) ==
	    NULL) {
		conf_error(c, -1, "out of memory");
		return c->nerrors;
	}
	if ((slash = strrchr(c->dir, '/')) != NULL)
		*slash = '\0';
	else {
		free(c->dir);
		c->dir = NULL;
	}
	if ((f = fopen(path, "r")) == NULL) {
		conf_error(c, -1, "cannot read it: %s", strerror(errno));
		return c->nerrors;
	}
	/* Whoever may write it may grant himself any right. */
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & S_IWOTH))
		conf_error(c, -1, "it is writable by every user (mode %04o); "
		    "ispd refuses it: chmod o-w %s",
		    (unsigned)(st.st_mode & 07777), path);
	while (fgets(text, sizeof(text), f) != NULL) {
		line++;
		if (strchr(text, '\n') == NULL && !feof(f)) {
			conf_error(c, line, "line longer than %d characters",
			    CONF_LINE_MAX - 1);
			while (fgets(text, sizeof(text), f) != NULL &&
			    strchr(text, '\n') == NULL)
				;
			continue;
		}
		conf_line(c, text, line);
	}
	if (ferror(f))
		conf_error(c, -1, "cannot read it: %s", strerror(errno));
	fclose(f);
	return c->nerrors;
}

static void
conf_item_move(struct conf_item *dst, struct conf_item *src)
{
	free(dst->str);
	*dst = *src;
	if (src->str != NULL && (dst->str = strdup(src->str)) == NULL)
		fatal("conf_merge");
}

/* Lays the settings of over (the command line) over c's. */
void
conf_merge(struct conf *c, const struct conf *over)
{
	struct conf_item	 tmp;
	int			 i;

	if (over->nlisten > 0) {
		for (i = 0; i < c->nlisten; i++)
			free(c->listen[i].spec);
		c->nlisten = 0;
		for (i = 0; i < over->nlisten; i++) {
			c->listen[i] = over->listen[i];
			if ((c->listen[i].spec = strdup(over->listen[i].spec))
			    == NULL)
				fatal("conf_merge");
		}
		c->nlisten = over->nlisten;
	}
	if (over->ngraceful > 0) {
		for (i = 0; i < c->ngraceful; i++)
			free(c->graceful[i]);
		for (i = 0; i < over->ngraceful; i++) {
			if ((c->graceful[i] = strdup(over->graceful[i])) ==
			    NULL)
				fatal("conf_merge");
			c->graceful_line[i] = over->graceful_line[i];
		}
		c->ngraceful = over->ngraceful;
	}
	for (i = 0; i < CONF_NKEYS; i++)
		if (over->item[i].set) {
			tmp = over->item[i];
			conf_item_move(&c->item[i], &tmp);
		}
}

struct creds_report {
	struct conf	*c;
	const char	*file;
};

static void
conf_creds_report(void *arg, int line, const char *msg)
{
	struct creds_report	*r = arg;
	char			 where[1100];

	snprintf(where, sizeof(where), "%s:%d", r->file, line);
	conf_report(r->c, where, msg);
}

/* A TLS file's problem, at the line that named that file. */
static void
conf_tls_report(enum tls_file f, const char *why, void *arg)
{
	struct conf	*c = arg;
	int		 item = f == TLS_FILE_CERT ? CONF_TLS_CERT :
			    f == TLS_FILE_KEY ? CONF_TLS_KEY : CONF_TLS_CA;

	conf_error(c, c->item[item].line, "%s", why);
}

/*
 * Checks what c's settings mean together and loads what they name: the
 * TLS certificate, key and CA, the credentials, the user. Fills out
 * (which the caller frees with conf_loaded_free()) and returns c's
 * number of errors, every one reported.
 */
int
conf_load(struct conf *c, struct conf_loaded *out)
{
	struct conf_item	*cert = &c->item[CONF_TLS_CERT];
	struct conf_item	*key = &c->item[CONF_TLS_KEY];
	struct conf_item	*ca = &c->item[CONF_TLS_CA];
	struct conf_item	*req = &c->item[CONF_TLS_REQUIRE];
	struct conf_item	*cred = &c->item[CONF_CREDENTIALS];
	struct conf_item	*auth = &c->item[CONF_AUTH];
	struct conf_item	*user = &c->item[CONF_USER];
	struct creds_report	 rep;
	char			 err[1024];
	int			 i, tls_line = -2;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < c->nlisten; i++)
		if (c->listen[i].tls && tls_line == -2)
			tls_line = c->listen[i].line;
	if (tls_line != -2 && (!cert->set || !key->set))
		conf_error(c, tls_line, "listen-tls needs a certificate and "
		    "its key (tls-cert and tls-key)");
	if (cert->set != key->set)
		conf_error(c, cert->set ? cert->line : key->line, "%s without "
		    "%s: give both", cert->set ? "tls-cert" : "tls-key",
		    cert->set ? "tls-key" : "tls-cert");
	if (req->set && req->num && !ca->set)
		conf_error(c, req->line, "tls-require-client-cert needs the CA "
		    "that signs client certificates (tls-ca)");
	if (auth->set && auth->num == CONF_AUTH_REQUIRED && !cred->set &&
	    !(req->set && req->num))
		conf_error(c, auth->line, "auth required needs a way to "
		    "authenticate: credentials, or tls-require-client-cert "
		    "yes");
	if (cert->set && key->set)
		out->tls = tls_ctx_new(cert->str, key->str,
		    ca->set ? ca->str : NULL, req->set && req->num,
		    conf_tls_report, c);
	if (cred->set) {
		rep.c = c;
		rep.file = cred->str;
		out->creds = creds_load(cred->str, conf_creds_report, &rep,
		    err, sizeof(err));
		if (out->creds == NULL && err[0] != '\0')
			conf_error(c, cred->line, "%s", err);
	}
	if (user->set && getpwnam(user->str) == NULL)
		conf_error(c, user->line, "user %s: no such user", user->str);
	if (auth->set)
		out->auth_required = auth->num == CONF_AUTH_REQUIRED;
	else
		out->auth_required = cred->set || (req->set && req->num);
	out->acl = c->acl;
	c->acl = NULL;
	return c->nerrors;
}

void
conf_loaded_free(struct conf_loaded *l)
{
	tls_ctx_free(l->tls);
	creds_free(l->creds);
	acl_free(l->acl);
	memset(l, 0, sizeof(*l));
}
