/*
 * config: isp.conf, through Asterisk's config framework.
 *
 * The file is checked whole before anything is used: every bad line is
 * logged with its file and line, and one error makes the load (or the
 * reload) fail, so the module never runs on half a configuration. An
 * unknown option is an error, not a warning: a misspelt `sever =` would
 * otherwise leave the module talking to the default reflector.
 */
#include "asterisk.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "asterisk/config.h"
#include "asterisk/logger.h"
#include "asterisk/paths.h"
#include "asterisk/strings.h"
#include "asterisk/utils.h"

#include "isp_asterisk.h"

static const char *const aor_map_names[] = {
	[ISPA_AOR_USER] = "user",
	[ISPA_AOR_USER_HOST] = "user@host",
	[ISPA_AOR_FULL] = "aor",
};

const char *
conf_aor_map_name(enum ispa_aor_map m)
{
	return aor_map_names[m];
}

void
conf_free(struct ispa_conf *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nservers; i++)
		ast_free(c->servers[i]);
	ast_free(c->name);
	ast_free(c->uri);
	ast_free(c->table);
	ast_free(c->tls_ca_file);
	ast_free(c->tls_cert_file);
	ast_free(c->tls_key_file);
	ast_free(c->tls_server_name);
	if (c->secret != NULL) {
		explicit_bzero(c->secret, strlen(c->secret));
		ast_free(c->secret);
	}
	ast_free(c);
}

static int
streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
conf_differs(const struct ispa_conf *a, const struct ispa_conf *b)
{
	size_t	 i;

	if (a->nservers != b->nservers)
		return 1;
	for (i = 0; i < a->nservers; i++)
		if (!streq(a->servers[i], b->servers[i]))
			return 1;
	return !streq(a->name, b->name) || !streq(a->uri, b->uri) ||
	    !streq(a->table, b->table) || a->aor_map != b->aor_map ||
	    a->load_pace != b->load_pace ||
	    a->stale_grace_s != b->stale_grace_s || a->tls != b->tls ||
	    !streq(a->tls_ca_file, b->tls_ca_file) ||
	    !streq(a->tls_cert_file, b->tls_cert_file) ||
	    !streq(a->tls_key_file, b->tls_key_file) ||
	    !streq(a->tls_server_name, b->tls_server_name) ||
	    !streq(a->secret, b->secret);
}

/* Reports one bad line; returns -1 for the caller to count. */
static int __attribute__((format(printf, 2, 3)))
conf_bad(const struct ast_variable *v, const char *fmt, ...)
{
	va_list	 ap;
	char	 what[256];

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* Asterisk leaves file empty for the file it was asked to load. */
	if (!ast_strlen_zero(v->file))
		ast_log(LOG_ERROR, "%s:%d: %s = %s: %s\n", v->file, v->lineno,
		    v->name, v->value, what);
	else
		ast_log(LOG_ERROR, "%s/%s:%d: %s = %s: %s\n",
		    ast_config_AST_CONFIG_DIR, ISPA_CONF_FILE, v->lineno,
		    v->name, v->value, what);
	return -1;
}

static int
conf_str(char **dst, const struct ast_variable *v)
{
	if (ast_strlen_zero(v->value))
		return conf_bad(v, "%s", "needs a value");
	ast_free(*dst);
	if ((*dst = ast_strdup(v->value)) == NULL)
		return -1;
	return 0;
}

static int
conf_uint(unsigned *dst, const struct ast_variable *v, unsigned min,
    unsigned max)
{
	char		*end;
	unsigned long	 n;

	errno = 0;
	n = strtoul(v->value, &end, 10);
	if (!isdigit((unsigned char)v->value[0]) || *end != '\0' ||
	    errno != 0 || n < min || n > max) {
		return conf_bad(v, "must be a whole number from %u to %u",
		    min, max);
	}
	*dst = (unsigned)n;
	return 0;
}

/* A secret file holds one line, readable by its owner only (the same
 * rule ispd and ispctl apply, docs/SECURITY.md). */
static int
conf_secret(struct ispa_conf *c, const struct ast_variable *v)
{
	FILE		*f;
	struct stat	 st;
	char		 line[1024];
	size_t		 len;

	if ((f = fopen(v->value, "r")) == NULL)
		return conf_bad(v, "cannot read it: %s", strerror(errno));
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0) {
		fclose(f);
		return conf_bad(v, "%s", "readable by others: chmod 600 it");
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	len = strcspn(line, "\r\n");
	line[len] = '\0';
	if (len == 0)
		return conf_bad(v, "%s", "the file is empty");
	ast_free(c->secret);
	c->secret = ast_strdup(line);
	explicit_bzero(line, sizeof(line));
	return c->secret != NULL ? 0 : -1;
}

static int
conf_option(struct ispa_conf *c, const struct ast_variable *v)
{
	unsigned	 n;
	size_t		 i;

	if (strcasecmp(v->name, "server") == 0) {
		if (c->nservers == ISP_MAX_SERVERS)
			return conf_bad(v, "more than %d servers",
			    ISP_MAX_SERVERS);
		if (ast_strlen_zero(v->value) || strchr(v->value, ':') == NULL)
			return conf_bad(v, "%s", "must be HOST:PORT or "
			    "[IPV6]:PORT");
		if ((c->servers[c->nservers] = ast_strdup(v->value)) == NULL)
			return -1;
		c->nservers++;
		return 0;
	}
	if (strcasecmp(v->name, "name") == 0)
		return conf_str(&c->name, v);
	if (strcasecmp(v->name, "uri") == 0) {
		if (strncmp(v->value, "sip:", 4) != 0 &&
		    strncmp(v->value, "sips:", 5) != 0)
			return conf_bad(v, "%s", "must be a sip: or sips: URI");
		return conf_str(&c->uri, v);
	}
	if (strcasecmp(v->name, "table") == 0)
		return conf_str(&c->table, v);
	if (strcasecmp(v->name, "aor_map") == 0) {
		for (i = 0; i < ARRAY_LEN(aor_map_names); i++)
			if (strcasecmp(v->value, aor_map_names[i]) == 0) {
				c->aor_map = (enum ispa_aor_map)i;
				return 0;
			}
		return conf_bad(v, "%s", "must be user, user@host or aor");
	}
	if (strcasecmp(v->name, "load_pace") == 0)
		return conf_uint(&c->load_pace, v, 100, 1000000);
	if (strcasecmp(v->name, "stale_grace") == 0) {
		if (conf_uint(&n, v, 1, 3600) == -1)
			return -1;
		c->stale_grace_s = (int)n;
		return 0;
	}
	if (strcasecmp(v->name, "tls") == 0) {
		if (!ast_true(v->value) && !ast_false(v->value))
			return conf_bad(v, "%s", "must be yes or no");
		c->tls = ast_true(v->value);
		return 0;
	}
	if (strcasecmp(v->name, "tls_ca_file") == 0)
		return conf_str(&c->tls_ca_file, v);
	if (strcasecmp(v->name, "tls_cert_file") == 0)
		return conf_str(&c->tls_cert_file, v);
	if (strcasecmp(v->name, "tls_key_file") == 0)
		return conf_str(&c->tls_key_file, v);
	if (strcasecmp(v->name, "tls_server_name") == 0)
		return conf_str(&c->tls_server_name, v);
	if (strcasecmp(v->name, "secret_file") == 0)
		return conf_secret(c, v);
	return conf_bad(v, "%s", "unknown option (docs/ASTERISK.md lists "
	    "them)");
}

struct ispa_conf *
conf_load(void)
{
	struct ast_flags	 flags = { 0 };
	struct ast_config	*cfg;
	struct ast_variable	*v;
	struct ispa_conf	*c;
	const char		*cat = NULL;
	char			 host[256];
	int			 errors = 0;

	cfg = ast_config_load2(ISPA_CONF_FILE, "res_pjsip_isp", flags);
	if (cfg == CONFIG_STATUS_FILEMISSING) {
		ast_log(LOG_ERROR, "%s/%s is missing: it names the ispd "
		    "reflectors and this instance's SIP URI "
		    "(docs/ASTERISK.md)\n", ast_config_AST_CONFIG_DIR,
		    ISPA_CONF_FILE);
		return NULL;
	}
	if (cfg == CONFIG_STATUS_FILEINVALID) {
		ast_log(LOG_ERROR, "%s/%s cannot be parsed\n",
		    ast_config_AST_CONFIG_DIR, ISPA_CONF_FILE);
		return NULL;
	}
	if ((c = ast_calloc(1, sizeof(*c))) == NULL) {
		ast_config_destroy(cfg);
		return NULL;
	}
	c->load_pace = ISPA_DEFAULT_PACE;
	c->stale_grace_s = ISP_STALE_GRACE_MS / 1000;
	while ((cat = ast_category_browse(cfg, cat)) != NULL) {
		if (strcasecmp(cat, "general") != 0) {
			ast_log(LOG_ERROR, "%s/%s: unknown section [%s]: "
			    "every option goes in [general]\n",
			    ast_config_AST_CONFIG_DIR, ISPA_CONF_FILE, cat);
			errors++;
			continue;
		}
		for (v = ast_variable_browse(cfg, cat); v != NULL; v = v->next)
			if (conf_option(c, v) == -1)
				errors++;
	}
	ast_config_destroy(cfg);

	if (c->uri == NULL) {
		ast_log(LOG_ERROR, "%s/%s: [general] needs uri = this "
		    "Asterisk's SIP URI (announced in INSTANCES)\n",
		    ast_config_AST_CONFIG_DIR, ISPA_CONF_FILE);
		errors++;
	}
	if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL)) {
		ast_log(LOG_ERROR, "%s/%s: tls_cert_file and tls_key_file "
		    "go together\n", ast_config_AST_CONFIG_DIR,
		    ISPA_CONF_FILE);
		errors++;
	}
	if (errors > 0) {
		ast_log(LOG_ERROR, "%s/%s: %d error%s; res_pjsip_isp not "
		    "(re)configured\n", ast_config_AST_CONFIG_DIR,
		    ISPA_CONF_FILE, errors, errors == 1 ? "" : "s");
		conf_free(c);
		return NULL;
	}
	if (c->nservers == 0 &&
	    (c->servers[c->nservers++] = ast_strdup(ISP_DEFAULT_SERVER)) == NULL)
		goto nomem;
	if (c->table == NULL && (c->table = ast_strdup("SIP_REGISTRATION")) == NULL)
		goto nomem;
	/* The client name: Asterisk's systemname, as contacts' reg_server
	 * is, else the host name. */
	if (c->name == NULL) {
		if (!ast_strlen_zero(ast_config_AST_SYSTEM_NAME))
			c->name = ast_strdup(ast_config_AST_SYSTEM_NAME);
		else if (gethostname(host, sizeof(host)) == 0) {
			host[sizeof(host) - 1] = '\0';
			c->name = ast_strdup(host);
		} else
			c->name = ast_strdup("asterisk");
		if (c->name == NULL)
			goto nomem;
	}
	return c;
nomem:
	conf_free(c);
	return NULL;
}
