/*
 * clientconf: servers, TLS, secret and configuration file of the
 * programs built on libisp (see clientconf.h).
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clientconf.h"

#define CONF_LINE_MAX	4096	/* as ispd's (docs/CONFIG.md) */
#define CONF_WORDS_MAX	8
#define CONF_ARGS_MAX	512

/* Where each argument made from the file came from, for messages. */
static const char	*conf_file;
static int		 conf_lines[CONF_ARGS_MAX + 1];
static int		 conf_nargs;
/* The vector clientconf_args() made: the program's for its whole life. */
static char		**conf_argv;

void
clientconf_init(struct clientconf *cc)
{
	memset(cc, 0, sizeof(*cc));
}

void
clientconf_free(struct clientconf *cc)
{
	size_t	 i;

	for (i = 0; i < cc->nlists; i++)
		free(cc->lists[i]);
	cc->nlists = 0;
	cc->nservers = 0;
	explicit_bzero(cc->secret, sizeof(cc->secret));
}

int
clientconf_add_servers(struct clientconf *cc, const char *list, char *err,
    size_t errlen)
{
	char	*copy, *tok, *save = NULL;
	size_t	 before = cc->nservers;

	if (cc->nlists == ISP_MAX_SERVERS) {
		snprintf(err, errlen, "at most %d servers", ISP_MAX_SERVERS);
		return -1;
	}
	if ((copy = strdup(list)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cc->lists[cc->nlists++] = copy;
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (cc->nservers == ISP_MAX_SERVERS) {
			snprintf(err, errlen, "at most %d servers",
			    ISP_MAX_SERVERS);
			return -1;
		}
		cc->servers[cc->nservers++] = tok;
	}
	if (cc->nservers == before) {
		snprintf(err, errlen, "no server in \"%s\" (use HOST:PORT, "
		    "several separated by commas)", list);
		return -1;
	}
	return 0;
}

void
clientconf_clear_servers(struct clientconf *cc)
{
	size_t	 i;

	for (i = 0; i < cc->nlists; i++)
		free(cc->lists[i]);
	cc->nlists = 0;
	cc->nservers = 0;
}

int
clientconf_finish(struct clientconf *cc, char *err, size_t errlen)
{
	const char	*env = getenv("ISPD_SERVER");
	size_t		 i, off = 0;

	if (cc->nservers == 0 && env != NULL && env[0] != '\0' &&
	    clientconf_add_servers(cc, env, err, errlen) != 0) {
		/* Say where the list came from. */
		size_t	 n = strlen(err);

		snprintf(err + n, errlen > n ? errlen - n : 0,
		    " in $ISPD_SERVER");
		return -1;
	}
	if (cc->nservers == 0)
		cc->servers[cc->nservers++] = ISP_DEFAULT_SERVER;
	cc->names[0] = '\0';
	for (i = 0; i < cc->nservers && off < sizeof(cc->names); i++)
		off += (size_t)snprintf(cc->names + off, sizeof(cc->names) -
		    off, "%s%s", i ? ", " : "", cc->servers[i]);
	return 0;
}

int
clientconf_secret_read(struct clientconf *cc, const char *path, char *err,
    size_t errlen)
{
	struct stat	 st;
	FILE		*f;
	size_t		 n;
	char		*s = cc->secret;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "cannot read the secret file %s: %s",
		    path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & S_IRWXO)) {
		snprintf(err, errlen, "the secret file %s is readable by every "
		    "user (mode %04o); chmod 600 %s", path,
		    (unsigned)(st.st_mode & 07777), path);
		fclose(f);
		return -1;
	}
	if (fgets(s, sizeof(cc->secret), f) == NULL)
		s[0] = '\0';
	fclose(f);
	n = strcspn(s, "\r\n");
	s[n] = '\0';
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	n = strspn(s, " \t");
	memmove(s, s + n, strlen(s + n) + 1);
	if (s[0] == '\0') {
		snprintf(err, errlen, "the secret file %s is empty", path);
		return -1;
	}
	cc->have_secret = 1;
	return 0;
}

static int
conf_readable(const char *what, const char *path, char *err, size_t errlen)
{
	if (path == NULL || access(path, R_OK) == 0)
		return 0;
	snprintf(err, errlen, "cannot read the %s %s: %s", what, path,
	    strerror(errno));
	return -1;
}

int
clientconf_check(const struct clientconf *cc, char *err, size_t errlen)
{
	if ((cc->tls_cert == NULL) != (cc->tls_key == NULL)) {
		snprintf(err, errlen, "--tls-cert and --tls-key go together");
		return -1;
	}
	if (conf_readable("CA file (--tls-ca)", cc->tls_ca, err, errlen) != 0 ||
	    conf_readable("certificate (--tls-cert)", cc->tls_cert, err,
	    errlen) != 0 ||
	    conf_readable("key (--tls-key)", cc->tls_key, err, errlen) != 0)
		return -1;
	return 0;
}

void
clientconf_apply(const struct clientconf *cc, struct isp_options *o)
{
	o->servers = cc->servers;
	o->nservers = cc->nservers;
	o->tls = cc->tls;
	o->tls_ca_file = cc->tls_ca;
	o->tls_cert_file = cc->tls_cert;
	o->tls_key_file = cc->tls_key;
	o->tls_server_name = cc->tls_server_name;
	o->secret = cc->have_secret ? cc->secret : NULL;
}

/* The configuration file. */

static int
conf_listed(const char *const *list, const char *name)
{
	for (; list != NULL && *list != NULL; list++)
		if (strcmp(*list, name) == 0)
			return 1;
	return 0;
}

static const struct option *
conf_option(const struct option *opts, const char *name)
{
	for (; opts->name != NULL; opts++)
		if (strcmp(opts->name, name) == 0)
			return opts;
	return NULL;
}

/* Splits line into words at blanks, up to a '#' starting a word, as
 * ispd's configuration does. Returns the number of words, or -1 when
 * there are too many. */
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

static void
conf_expected(const struct option *opts, FILE *out)
{
	const struct option	*o;
	int			 first = 1;

	for (o = opts; o->name != NULL; o++) {
		if (strcmp(o->name, "config") == 0 ||
		    strcmp(o->name, "help") == 0 ||
		    strcmp(o->name, "version") == 0)
			continue;
		fprintf(out, "%s%s", first ? "" : ", ", o->name);
		first = 0;
	}
}

/* One argument from a line of the file: "--keyword=value". */
static char *
conf_arg(const char *dir, const struct option *o, const char *value,
    int is_path)
{
	char	*a;
	int	 r;

	if (o->has_arg == no_argument)
		r = asprintf(&a, "--%s", o->name);
	else if (is_path && value[0] != '/' && dir != NULL)
		r = asprintf(&a, "--%s=%s/%s", o->name, dir, value);
	else
		r = asprintf(&a, "--%s=%s", o->name, value);
	return r == -1 ? NULL : a;
}

static int
conf_read(const char *prog, const char *path, const struct option *opts,
    const char *const *paths, const char *const *repeatable, char **args,
    int *nargs)
{
	const struct option	*o, *seen[CONF_ARGS_MAX];
	struct stat		 st;
	char			 text[CONF_LINE_MAX], *w[CONF_WORDS_MAX];
	char			*dir = NULL, *slash;
	int			 seen_line[CONF_ARGS_MAX];
	int			 line = 0, nw, nerr = 0, nseen = 0, i;
	FILE			*f;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "%s: %s: cannot read it: %s\n", prog, path,
		    strerror(errno));
		return 1;
	}
	/* Whoever may write it may point the program at any file. */
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & S_IWOTH)) {
		fprintf(stderr, "%s: %s: it is writable by every user (mode "
		    "%04o); chmod o-w %s\n", prog, path,
		    (unsigned)(st.st_mode & 07777), path);
		fclose(f);
		return 1;
	}
	if ((slash = strrchr(path, '/')) != NULL &&
	    (dir = strndup(path, (size_t)(slash - path))) == NULL) {
		fclose(f);
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	while (fgets(text, sizeof(text), f) != NULL) {
		line++;
		if (strchr(text, '\n') == NULL && !feof(f)) {
			fprintf(stderr, "%s:%d: line longer than %d "
			    "characters\n", path, line, CONF_LINE_MAX - 1);
			nerr++;
			while (fgets(text, sizeof(text), f) != NULL &&
			    strchr(text, '\n') == NULL)
				;
			continue;
		}
		if ((nw = conf_words(text, w)) == 0)
			continue;
		if (nw == -1) {
			fprintf(stderr, "%s:%d: more than %d words\n", path,
			    line, CONF_WORDS_MAX);
			nerr++;
			continue;
		}
		o = conf_option(opts, w[0]);
		if (o == NULL || strcmp(w[0], "config") == 0 ||
		    strcmp(w[0], "help") == 0 || strcmp(w[0], "version") == 0) {
			fprintf(stderr, "%s:%d: unknown keyword '%s' (expected ",
			    path, line, w[0]);
			conf_expected(opts, stderr);
			fprintf(stderr, ")\n");
			nerr++;
			continue;
		}
		if (nw != 2) {
			fprintf(stderr, "%s:%d: %s takes one value%s\n", path,
			    line, w[0], o->has_arg == no_argument ?
			    ", yes or no" : "");
			nerr++;
			continue;
		}
		if (o->has_arg == no_argument && strcmp(w[1], "yes") != 0 &&
		    strcmp(w[1], "no") != 0) {
			fprintf(stderr, "%s:%d: %s takes yes or no, not '%s'\n",
			    path, line, w[0], w[1]);
			nerr++;
			continue;
		}
		for (i = 0; i < nseen; i++)
			if (seen[i] == o)
				break;
		if (i < nseen && !conf_listed(repeatable, o->name)) {
			fprintf(stderr, "%s:%d: %s given twice (first at line "
			    "%d)\n", path, line, w[0], seen_line[i]);
			nerr++;
			continue;
		}
		if (*nargs == CONF_ARGS_MAX || nseen == CONF_ARGS_MAX) {
			fprintf(stderr, "%s:%d: more than %d settings\n", path,
			    line, CONF_ARGS_MAX);
			nerr++;
			break;
		}
		seen[nseen] = o;
		seen_line[nseen++] = line;
		if (o->has_arg == no_argument && strcmp(w[1], "no") == 0)
			continue;
		if ((args[*nargs] = conf_arg(dir, o, w[1],
		    conf_listed(paths, o->name))) == NULL) {
			fprintf(stderr, "%s: out of memory\n", prog);
			nerr++;
			break;
		}
		conf_lines[1 + *nargs] = line;
		(*nargs)++;
	}
	if (ferror(f)) {
		fprintf(stderr, "%s: %s: cannot read it: %s\n", prog, path,
		    strerror(errno));
		nerr++;
	}
	fclose(f);
	free(dir);
	return nerr;
}

int
clientconf_args(const char *prog, int argc, char **argv,
    const struct option *opts, const char *const *paths,
    const char *const *repeatable, char ***out)
{
	static char	*args[CONF_ARGS_MAX];
	const char	*path = NULL;
	char		**v;
	int		 i, n = 0, nerr;

	const struct option	*co;
	int			 ch, err_was = opterr;

	*out = argv;
	conf_nargs = 0;
	if ((co = conf_option(opts, "config")) == NULL)
		return argc;
	/* getopt_long() itself finds --config, however it is spelled
	 * (--config=FILE, an abbreviation); the real pass, with its
	 * messages, comes later over the whole vector. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (ch == co->val && optarg != NULL)
			path = optarg;
	opterr = err_was;
	optind = 0;	/* glibc: start afresh */
	if (path == NULL)
		return argc;
	if ((nerr = conf_read(prog, path, opts, paths, repeatable, args,
	    &n)) > 0) {
		fprintf(stderr, "%s: %d error%s in %s\n", prog, nerr,
		    nerr == 1 ? "" : "s", path);
		return -1;
	}
	if ((v = calloc((size_t)(argc + n + 1), sizeof(*v))) == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	v[0] = argv[0];
	for (i = 0; i < n; i++)
		v[1 + i] = args[i];
	for (i = 1; i < argc; i++)
		v[n + i] = argv[i];
	conf_file = path;
	conf_nargs = n;
	conf_argv = v;
	*out = v;
	return argc + n;
}

void
clientconf_args_free(void)
{
	int	 i;

	for (i = 0; i < conf_nargs; i++)
		free(conf_argv[1 + i]);
	free(conf_argv);
	conf_argv = NULL;
	conf_nargs = 0;
}

int
clientconf_from_file(int optind_now)
{
	/* A file argument is one word ("--kw=value"): getopt_long() has
	 * moved optind just past it. */
	return optind_now - 1 >= 1 && optind_now - 1 <= conf_nargs;
}

const char *
clientconf_where(int optind_now)
{
	static char	 where[4096 + 32];

	if (!clientconf_from_file(optind_now))
		return "";
	snprintf(where, sizeof(where), "%s:%d: ", conf_file,
	    conf_lines[optind_now - 1]);
	return where;
}

int
clientconf_option(struct clientconf *cc, int ch, const char *arg, char *err,
    size_t errlen)
{
	switch (ch) {
	case CLIENTCONF_O_TLS:
		break;
	case CLIENTCONF_O_TLS_CA:
		cc->tls_ca = arg;
		break;
	case CLIENTCONF_O_TLS_CERT:
		cc->tls_cert = arg;
		break;
	case CLIENTCONF_O_TLS_KEY:
		cc->tls_key = arg;
		break;
	case CLIENTCONF_O_TLS_SERVER_NAME:
		cc->tls_server_name = arg;
		break;
	case CLIENTCONF_O_SECRET_FILE:
		return clientconf_secret_read(cc, arg, err, errlen) == 0 ?
		    1 : -1;
	default:
		return 0;
	}
	cc->tls = 1;
	return 1;
}
