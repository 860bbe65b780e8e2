/*
 * ispctl: the command-line client of ispd, built on libisp.
 *
 * Exit codes (ispctl.h): 0 ok, 1 not found, 2 usage, 3 cannot reach
 * ispd, 4 refused by ispd. Every failure prints one line on stderr that
 * says what failed and, where it can, what to do.
 *
 * --json may stand anywhere before a "--": main() takes it out of the
 * arguments before any parser sees them.
 *
 * Several servers (-s A -s B, or ISPD_SERVER=A,B) are redundant
 * reflectors (docs/HA.md): the long-running commands (announce, publish,
 * watch) hold a session with each, reconnect, and watch prints the
 * merged view; the one-shot commands ask the first server that answers.
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clientconf.h"
#include "isp.h"
#include "ispctl.h"
#include "version.h"

#define QUERY_TIMEOUT_MS	10000

int			 cmd_place(int, char **);	/* place.c */
void			 ispctl_options(struct isp_options *);
static const char	*client_name = "ispctl";
/* Servers, TLS and authentication (docs/SECURITY.md), as the SIP
 * services take them (src/common/clientconf.c). */
static struct clientconf	 conn;
int			 json;
static int		 timestamps;	/* watch --timestamps */
static volatile sig_atomic_t	 stop_requested;
/* The client of the command, which die() frees before it exits. */
static isp_client		*live_client;

static void
print_usage(FILE *out)
{
	fprintf(out,
	    "usage: ispctl [-s HOST:PORT]... [--name NAME] [--tls] "
	    "[--tls-ca FILE]\n"
	    "              [--tls-cert FILE --tls-key FILE] "
	    "[--tls-server-name NAME]\n"
	    "              [--secret-file FILE] COMMAND [ARGS]\n"
	    "commands:\n"
	    "  announce TABLE KEY [NAME=VALUE]... [--ttl SECONDS]\n"
	    "  publish TABLE [--ttl SECONDS]      lines from stdin:\n"
	    "                                     announce KEY [NAME=VALUE]...\n"
	    "                                     withdraw KEY\n"
	    "  watch TABLE [--prefix P] [--timestamps] [--json]\n"
	    "  dump TABLE [--prefix P] [--json]\n"
	    "  get TABLE KEY [--json]\n"
	    "  tables [--json]\n"
	    "  sessions [--json]\n"
	    "  stats [--json]\n"
	    "  kick SESSION [--json]             end a live session (operator)\n"
	    "  evict TABLE KEY [--json]          remove a record (operator)\n"
	    "  drop TABLE [--json]               remove a table (operator)\n"
	    "  held [--json]                     list records held for graceful\n"
	    "                                     restart (operator)\n"
	    "  place ROLE ACCOUNT [--json]       the live instance serving it\n"
	    "--json anywhere: JSON Lines output; -V, --version: the version\n"
	    "server: -s (repeat it, or a comma-separated list, for redundant reflectors),\n"
	    "else $ISPD_SERVER (a list too), else %s\n"
	    "--tls: TLS, the server's certificate checked against --tls-ca "
	    "(else the\nsystem's CAs) and its name (the host of -s, or "
	    "--tls-server-name);\n--tls-cert/--tls-key: a client certificate; "
	    "--secret-file: the shared\nsecret of --name, on the first line "
	    "of a file only its owner can read\n", ISP_DEFAULT_SERVER);
}

/* What every client of ispctl is given: its name, TLS, its secret. */
void
ispctl_options(struct isp_options *o)
{
	clientconf_apply(&conn, o);
	/* One-shot clients set their one server after this. */
	o->servers = NULL;
	o->nservers = 0;
	o->name = client_name;
}

/* A usage error: says what is wrong (when fmt is set; getopt has said
 * it otherwise), and where the help is. Exits 2. */
void
usage(const char *fmt, ...)
{
	va_list	 ap;

	if (fmt != NULL) {
		fprintf(stderr, "ispctl: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, "\n");
	}
	fprintf(stderr, "Try 'ispctl --help' for the commands and their "
	    "options.\n");
	exit(EXIT_USAGE);
}

int
exit_for(int err)
{
	switch (err) {
	case ISP_OK:
		return 0;
	case ISP_E_NOT_FOUND:
		return EXIT_NOTFOUND;
	case ISP_E_INVALID:
	case ISP_E_BAD_TABLE:
	case ISP_E_BAD_KEY:
	case ISP_E_BAD_FIELDS:
	case ISP_E_BAD_REQUEST:
		return EXIT_USAGE;
	case ISP_E_NOT_OWNER:
	case ISP_E_READONLY:
	case ISP_E_ALREADY_SUBSCRIBED:
	case ISP_E_LIMIT:
	case ISP_E_AUTH:
	case ISP_E_DENIED:
		return EXIT_REFUSED;
	default:
		return EXIT_UNREACHED;
	}
}

/* libisp names the call its checks failed in ("isp_announce: key
 * is ..."); the user named no call. */
const char *
lib_error(isp_client *c)
{
	const char	*m = isp_errmsg(c), *colon;

	if (strncmp(m, "isp_", 4) == 0 && (colon = strstr(m, ": ")) != NULL &&
	    strcspn(m, " ") > (size_t)(colon - m))
		return colon + 2;
	return m;
}

void
die(int code, const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "ispctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	client_done(live_client);
	exit(code);
}

/* Frees a client of ispctl's (isp_free()), and forgets it. */
void
client_done(isp_client *c)
{
	if (c == live_client)
		live_client = NULL;
	isp_free(c);
}

static void
on_signal(int sig)
{
	stop_requested = 1;
}

static void
catch_signals(void)
{
	struct sigaction	 sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Server errors for requests land here; commands that care look at it. */
struct errstate {
	int	 count;
	int	 code;
	uint32_t req_id;
	char	 reason[512];
};

static void
on_error(isp_client *c, uint32_t req_id, int code, const char *reason,
    void *arg)
{
	struct errstate	*e = arg;

	e->count++;
	e->code = code;
	e->req_id = req_id;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
}

static struct errstate	 errs;

/* Long-running commands say on stderr when a session is lost and when
 * it is back; failed attempts in between stay quiet. */
static void
on_state(isp_client *c, const struct isp_server_event *e, void *arg)
{
	if (e->up)
		fprintf(stderr, "ispctl: session with %s is back (session "
		    "%" PRIu64 ")\n", e->server, e->session_id);
	else if (e->attempt == 0)
		fprintf(stderr, "ispctl: lost the session with %s: %s; "
		    "reconnecting\n", e->server, e->why);
}

/*
 * A client holding a session with every server, reconnecting, for the
 * long-running commands: the records they announce and the view they
 * watch outlive a reflector's restart.
 */
static isp_client *
connect_all_or_die(void)
{
	struct isp_options	 o;
	isp_client		*c;
	int			 rc;

	isp_options_init(&o);
	ispctl_options(&o);
	o.servers = conn.servers;
	o.nservers = conn.nservers;
	o.on_error = on_error;
	o.on_state = on_state;
	o.arg = &errs;
	o.reconnect = 1;
	if ((live_client = c = isp_new(&o)) == NULL)
		die(EXIT_UNREACHED, "out of memory");
	if ((rc = isp_connect(c)) != ISP_OK)
		die(exit_for(rc), "%s", isp_errmsg(c));
	return c;
}

isp_client *
connect_or_die(void)
{
	struct isp_options	 o;
	isp_client		*c = NULL;
	size_t			 i;
	int			 rc = ISP_E_CONNECT;

	for (i = 0; i < conn.nservers; i++) {
		isp_options_init(&o);
		o.server = conn.servers[i];
		ispctl_options(&o);
		o.on_error = on_error;
		o.arg = &errs;
		if ((live_client = c = isp_new(&o)) == NULL)
			die(EXIT_UNREACHED, "out of memory");
		if ((rc = isp_connect(c)) == ISP_OK)
			return c;
		if (i + 1 < conn.nservers) {
			fprintf(stderr, "ispctl: %s; trying %s\n",
			    isp_errmsg(c), conn.servers[i + 1]);
			client_done(c);
		}
	}
	die(exit_for(rc), "%s", isp_errmsg(c));
}

/* Rows of QUERY TABLES, looking for one name. */
struct table_seek {
	const char	*name;
	int		 found;
};

static void
table_seek_cb(const struct isp_field *f, size_t n, void *arg)
{
	struct table_seek	*ts = arg;
	size_t			 i;

	for (i = 0; i < n; i++)
		if (strcmp(f[i].name, "name") == 0 &&
		    strcmp(f[i].value, ts->name) == 0)
			ts->found = 1;
}

int
table_exists(isp_client *c, const char *table)
{
	struct table_seek	 ts = { table, 0 };
	int			 rc;

	if ((rc = isp_query_tables(c, table_seek_cb, &ts, QUERY_TIMEOUT_MS)) !=
	    ISP_OK)
		die(exit_for(rc), "asking ispd for its tables: %s",
		    isp_errmsg(c));
	return ts.found;
}

/*
 * The length of the UTF-8 sequence at s (n bytes there), 0 when it is
 * not valid UTF-8 (RFC 3629: no overlong form, no surrogate, nothing
 * past U+10FFFF); *cp is the code point.
 */
static size_t
utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t	 len, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		*cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		*cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		*cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && *cp < 0x800) || (len == 4 && (*cp < 0x10000 ||
	    *cp > 0x10ffff)) || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return len;
}

/* JSON output. */

void
json_str(const void *p, size_t len)
{
	const unsigned char	*s = p;
	size_t			 i, l;
	uint32_t		 cp;

	putchar('"');
	for (i = 0; i < len; i += l) {
		l = 1;
		switch (s[i]) {
		case '"':	fputs("\\\"", stdout); break;
		case '\\':	fputs("\\\\", stdout); break;
		case '\n':	fputs("\\n", stdout); break;
		case '\r':	fputs("\\r", stdout); break;
		case '\t':	fputs("\\t", stdout); break;
		default:
			if (s[i] < 0x20 || s[i] == 0x7f)
				printf("\\u%04x", s[i]);
			else if (s[i] < 0x80)
				putchar(s[i]);
			else if ((l = utf8_seq(s + i, len - i, &cp)) > 0)
				fwrite(s + i, 1, l, stdout);
			else {
				/* JSON is text: a byte that is not
				 * UTF-8 cannot be carried as it is. */
				fputs("\\ufffd", stdout);
				l = 1;
			}
		}
	}
	putchar('"');
}

static void
json_cstr(const char *s)
{
	json_str(s, strlen(s));
}

static void
json_fields(const struct isp_field *f, size_t n)
{
	size_t	 i;

	putchar('{');
	for (i = 0; i < n; i++) {
		if (i > 0)
			putchar(',');
		json_cstr(f[i].name);
		putchar(':');
		json_str(f[i].value, f[i].value_len);
	}
	putchar('}');
}

static const char *
event_name(int type)
{
	switch (type) {
	case ISP_EV_ANNOUNCE:	return "announce";
	case ISP_EV_REPLACE:	return "replace";
	case ISP_EV_WITHDRAW:	return "withdraw";
	case ISP_EV_END:	return "end";
	case ISP_EV_STALE:	return "stale";
	case ISP_EV_FRESH:	return "fresh";
	default:		return "unknown";
	}
}

static const char *
reason_name(int reason)
{
	switch (reason) {
	case ISP_WD_OWNER:	return "withdrawn";
	case ISP_WD_EXPIRED:	return "expired";
	case ISP_WD_SESSION:	return "session ended";
	case ISP_WD_HELD:	return "held, not taken back";
	case ISP_WD_STALE:	return "stale";
	case ISP_WD_EVICTED:	return "evicted";
	default:		return "unknown";
	}
}

/* watch --timestamps: when the event was printed, UTC, to the ms. */
static char	 event_time[48];

static void
event_time_set(void)
{
	struct timespec	 ts;
	struct tm	 tm;
	char		 date[32];

	event_time[0] = '\0';
	if (!timestamps || clock_gettime(CLOCK_REALTIME, &ts) == -1 ||
	    gmtime_r(&ts.tv_sec, &tm) == NULL)
		return;
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(event_time, sizeof(event_time), "%s.%03dZ", date,
	    (int)(ts.tv_nsec / 1000000));
}

/* The start of a JSON line, or the time column of a text line. */
static void
event_start(void)
{
	if (json)
		printf(event_time[0] ? "{\"time\":\"%s\"," : "{", event_time);
	else if (event_time[0])
		printf("%s ", event_time);
}

static void
json_event(const char *table, int type, const struct isp_record *r,
    uint64_t seq, int reason)
{
	event_start();
	printf("\"event\":\"%s\",\"table\":", event_name(type));
	json_cstr(table);
	printf(",\"key\":");
	json_str(r->key, r->key_len);
	if (type != ISP_EV_WITHDRAW) {
		printf(",\"fields\":");
		json_fields(r->fields, r->nfields);
	}
	printf(",\"owner\":");
	json_cstr(r->owner ? r->owner : "");
	printf(",\"seq\":%" PRIu64, seq);
	if (type == ISP_EV_WITHDRAW) {
		printf(",\"reason\":");
		json_cstr(reason_name(reason));
	}
	printf("}\n");
}

/* Human output. A value is printed as is when it is printable ASCII or
 * UTF-8 text, else in C-style escapes (\xNN, and \\ for a backslash),
 * so a line never breaks the terminal. quote: also escape '"' (a quoted value). Returns the
 * columns printed, a code point counting one. */

static size_t
text_put(const void *p, size_t len, int quote, int print)
{
	const unsigned char	*s = p;
	size_t			 i, l, cols = 0;
	uint32_t		 cp;

	for (i = 0; i < len; i += l) {
		l = 1;
		if (s[i] == '\\' || (quote && s[i] == '"')) {
			if (print)
				printf("\\%c", s[i]);
			cols += 2;
		} else if (s[i] >= 0x20 && s[i] < 0x7f) {
			if (print)
				putchar(s[i]);
			cols++;
		} else if (s[i] >= 0x80 && (l = utf8_seq(s + i, len - i,
		    &cp)) > 0 && cp >= 0xa0) {
			/* Text, but not the C1 controls U+0080..U+009F. */
			if (print)
				fwrite(s + i, 1, l, stdout);
			cols++;
		} else {
			if (print)
				printf("\\x%02x", s[i]);
			cols += 4;
			l = 1;
		}
	}
	return cols;
}

static void
text_bytes(const void *p, size_t len)
{
	(void)text_put(p, len, 0, 1);
}

/* Fields as NAME=VALUE words, a value quoted when it holds a blank, a
 * quote or nothing, the way `ispctl publish` reads them back. */
static void
text_fields(const struct isp_field *f, size_t n)
{
	const char	*v;
	size_t		 i, j;
	int		 quote;

	for (i = 0; i < n; i++) {
		printf("%s%s=", i ? " " : "", f[i].name);
		v = f[i].value;
		quote = f[i].value_len == 0;
		for (j = 0; j < f[i].value_len; j++)
			if (v[j] == ' ' || v[j] == '\t' || v[j] == '"' ||
			    v[j] == '#')
				quote = 1;
		if (!quote) {
			text_bytes(v, f[i].value_len);
			continue;
		}
		putchar('"');
		(void)text_put(v, f[i].value_len, 1, 1);
		putchar('"');
	}
}

/* Arguments. */

/* A key as the user gave it: 1 to 1024 bytes (docs/PROTOCOL.md). NULL
 * when it will do, else what is wrong with it. */
static const char *
key_problem(const char *key)
{
	static char	 why[128];
	size_t		 len = strlen(key);

	if (len == 0)
		return "the key is empty: a key is 1 to 1024 bytes";
	if (len > 1024) {
		snprintf(why, sizeof(why), "the key is %zu bytes long: a key "
		    "is 1 to 1024 bytes", len);
		return why;
	}
	return NULL;
}

/* A table name: 1 to 64 of A-Z a-z 0-9 _ . : - (docs/PROTOCOL.md). */
static int
valid_table_arg(const char *t)
{
	size_t	 len = strlen(t);

	return len >= 1 && len <= 64 && strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_.:-") == len;
}

static void
check_key_arg(const char *key)
{
	const char	*why;

	if ((why = key_problem(key)) != NULL)
		usage("%s", why);
}

/*
 * NAME=VALUE fields. Returns NULL with *why set when one is not of that
 * form or a name is given twice: the protocol keeps both (PROTOCOL.md),
 * but one field given twice on a command line is a mistake.
 */
static struct isp_field *
parse_fields(char **argv, int argc, const char **why)
{
	static char		 msg[320];
	struct isp_field	*f;
	char			*eq;
	int			 i, j;

	if ((f = calloc((size_t)argc + 1, sizeof(*f))) == NULL)
		die(EXIT_UNREACHED, "out of memory");
	for (i = 0; i < argc; i++) {
		if ((eq = strchr(argv[i], '=')) == NULL || eq == argv[i]) {
			snprintf(msg, sizeof(msg), "\"%.64s\" is not a field: "
			    "fields are NAME=VALUE", argv[i]);
			*why = msg;
			free(f);
			return NULL;
		}
		*eq = '\0';
		f[i].name = argv[i];
		f[i].value = eq + 1;
		f[i].value_len = strlen(eq + 1);
		for (j = 0; j < i; j++)
			if (strcmp(f[j].name, f[i].name) == 0) {
				snprintf(msg, sizeof(msg), "field \"%.64s\" "
				    "is given twice", f[i].name);
				*why = msg;
				free(f);
				return NULL;
			}
	}
	return f;
}

static unsigned
parse_ttl(const char *s)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || *s == '\0' || *s == '-' ||
	    v > 0xffffffffUL)
		usage("invalid --ttl \"%s\": give whole seconds", s);
	return (unsigned)v;
}

/* Waits until ispd has seen every request so far; a server error for
 * one of them is fatal for commands that announce a single record. */
static void
sync_or_die(isp_client *c)
{
	int	 rc;

	if ((rc = isp_sync(c, QUERY_TIMEOUT_MS)) != ISP_OK)
		die(exit_for(rc), "%s", isp_errmsg(c));
}

/* announce TABLE KEY [NAME=VALUE]... [--ttl SECONDS] */
static int
cmd_announce(int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "ttl", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct isp_field	*f;
	isp_client		*c;
	const char		*why;
	unsigned		 ttl = 0;
	int			 ch, rc;

	optind = 0;	/* glibc: start over, argv[0] is the command */
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (ch == 't')
			ttl = parse_ttl(optarg);
		else
			usage(NULL);
	}
	/* Allow --ttl after the fields too. */
	argc -= optind;
	argv += optind;
	if (argc >= 2 && strcmp(argv[argc - 2], "--ttl") == 0) {
		ttl = parse_ttl(argv[argc - 1]);
		argc -= 2;
	}
	if (argc < 2)
		usage("announce needs TABLE and KEY");
	check_key_arg(argv[1]);
	if ((f = parse_fields(argv + 2, argc - 2, &why)) == NULL)
		usage("%s", why);

	catch_signals();
	c = connect_all_or_die();
	rc = isp_announce(c, argv[0], argv[1], strlen(argv[1]), f,
	    (size_t)argc - 2, ttl);
	free(f);
	if (rc != ISP_OK)
		die(exit_for(rc), "%s", lib_error(c));
	sync_or_die(c);
	if (errs.count > 0)
		die(exit_for(errs.code), "announce %s in %s: %s (%s)", argv[1],
		    argv[0], errs.reason, isp_strerror(errs.code));
	fprintf(stderr, "ispctl: announced %s in %s as session %" PRIu64
	    "; holding it until interrupted\n", argv[1], argv[0],
	    isp_session_id(c));
	if (json) {
		printf("{\"event\":\"announced\",\"table\":");
		json_str(argv[0], strlen(argv[0]));
		printf(",\"key\":");
		json_str(argv[1], strlen(argv[1]));
		printf(",\"session\":%" PRIu64 "}\n", isp_session_id(c));
		fflush(stdout);
	}
	while (!stop_requested) {
		if ((rc = isp_run(c, 200)) != ISP_OK) {
			client_done(c);
			die(EXIT_UNREACHED, "session ended: %s", isp_strerror(rc));
		}
	}
	client_done(c);
	return 0;
}

/*
 * Splits a publish line into words. Words are separated by blanks; a
 * double-quoted part may hold blanks, with \" and \\ inside. Returns the
 * number of words, or -1 for an unterminated quote.
 */
static int
split_words(char *line, char **words, int max)
{
	char	*r = line, *w;
	int	 n = 0, quoted;

	for (;;) {
		while (*r == ' ' || *r == '\t')
			r++;
		if (*r == '\0' || *r == '\n' || *r == '#')
			return n;
		if (n == max)
			return -1;
		words[n++] = w = r;
		quoted = 0;
		for (; *r != '\0' && *r != '\n'; r++) {
			if (*r == '"') {
				quoted = !quoted;
				continue;
			}
			if (!quoted && (*r == ' ' || *r == '\t'))
				break;
			if (quoted && *r == '\\' && (r[1] == '"' ||
			    r[1] == '\\'))
				r++;
			*w++ = *r;
		}
		if (quoted)
			return -1;
		if (*r != '\0')
			r++;
		*w = '\0';
	}
}

#define MAX_LINE_WORDS	(2 + 256)
/* A publish line: a whole frame's worth of text, and some. */
#define PUBLISH_MAX_LINE_BYTES	(2 * 1024 * 1024)

/* publish: the session, and which request came from which input line so
 * a server error can name the line. */
struct publisher {
	isp_client	*c;
	const char	*table;
	unsigned	 ttl;
	struct pending {
		uint32_t	 req_id;
		unsigned long	 line;
	}		*pend;
	size_t		 npend;
	size_t		 cappend;
	unsigned long	 lineno;
	unsigned long	 bad;		/* lines that failed */
	int		 refused;	/* ispd refused one of them */
	int		 seen_errors;	/* errs.count already reported */
};

/* Handles one input line. Returns -1 when the session is gone. */
static int
publish_line(struct publisher *p, char *line)
{
	struct isp_field	*f;
	char			*words[MAX_LINE_WORDS];
	const char		*why;
	int			 n, rc;

	p->lineno++;
	if ((n = split_words(line, words, MAX_LINE_WORDS)) == 0)
		return 0;
	if (n > 1 && (strcmp(words[0], "announce") == 0 ||
	    strcmp(words[0], "withdraw") == 0) &&
	    (why = key_problem(words[1])) != NULL) {
		fprintf(stderr, "ispctl: line %lu: %s\n", p->lineno, why);
		p->bad++;
		return 0;
	}
	if (n > 1 && strcmp(words[0], "announce") == 0) {
		if ((f = parse_fields(words + 2, n - 2, &why)) == NULL) {
			fprintf(stderr, "ispctl: line %lu: %s\n", p->lineno,
			    why);
			p->bad++;
			return 0;
		}
		rc = isp_announce(p->c, p->table, words[1], strlen(words[1]), f,
		    (size_t)n - 2, p->ttl);
		free(f);
	} else if (n == 2 && strcmp(words[0], "withdraw") == 0) {
		rc = isp_withdraw(p->c, p->table, words[1], strlen(words[1]));
	} else {
		fprintf(stderr, "ispctl: line %lu: expected \"announce KEY "
		    "[NAME=VALUE]...\" or \"withdraw KEY\"\n", p->lineno);
		p->bad++;
		return 0;
	}
	if (rc != ISP_OK) {
		fprintf(stderr, "ispctl: line %lu: %s\n", p->lineno,
		    lib_error(p->c));
		p->bad++;
		return rc == ISP_E_INVALID ? 0 : -1;
	}
	if (p->npend == p->cappend) {
		p->cappend = p->cappend ? p->cappend * 2 : 256;
		p->pend = realloc(p->pend, p->cappend * sizeof(*p->pend));
		if (p->pend == NULL)
			die(EXIT_UNREACHED, "out of memory");
	}
	p->pend[p->npend].req_id = isp_last_req_id(p->c);
	p->pend[p->npend++].line = p->lineno;
	return 0;
}

/* Reports a server error that arrived since the last call, with the
 * line that caused it. Only the latest error is kept by on_error, which
 * is enough: the loop calls this after every isp_process(). */
static void
publish_report(struct publisher *p)
{
	unsigned long	 where = 0;
	size_t		 i;

	if (errs.count == p->seen_errors)
		return;
	p->seen_errors = errs.count;
	for (i = p->npend; i > 0; i--)
		if (p->pend[i - 1].req_id == errs.req_id) {
			where = p->pend[i - 1].line;
			break;
		}
	fprintf(stderr, "ispctl: line %lu: %s (%s)\n", where, errs.reason,
	    isp_strerror(errs.code));
	p->bad++;
	p->refused = 1;
}

/*
 * publish TABLE [--ttl SECONDS]: lines from stdin until EOF, then the
 * session ends (and with it the records). Standard input is read with
 * read(2), not stdio, so every complete line is handled as soon as it
 * arrives, however the writer buffers.
 */
static int
cmd_publish(int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "ttl", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct publisher	 p;
	struct pollfd		 pfd[2];
	char			*in = NULL, *nl, *line;
	size_t			 inlen = 0, incap = 0;
	ssize_t			 r;
	int			 ch, n, eof = 0, gone = 0, skipping = 0;

	memset(&p, 0, sizeof(p));
	optind = 0;	/* glibc: start over, argv[0] is the command */
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (ch == 't')
			p.ttl = parse_ttl(optarg);
		else
			usage(NULL);
	}
	if (argc - optind != 1)
		usage("publish needs TABLE");
	p.table = argv[optind];
	if (!valid_table_arg(p.table))
		usage("invalid table name \"%s\": 1 to 64 characters of A-Z a-z "
		    "0-9 _ . : -", p.table);

	catch_signals();
	p.c = connect_all_or_die();
	while (!eof && !gone && !stop_requested) {
		pfd[0].fd = STDIN_FILENO;
		pfd[0].events = POLLIN;
		pfd[1].fd = isp_fd(p.c);
		pfd[1].events = ((isp_want(p.c) & ISP_WANT_READ) ? POLLIN : 0) |
		    ((isp_want(p.c) & ISP_WANT_WRITE) ? POLLOUT : 0);
		n = poll(pfd, 2, isp_timeout_ms(p.c));
		if (n == -1 && errno != EINTR)
			die(EXIT_UNREACHED, "poll: %s", strerror(errno));
		if (n > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (incap - inlen < 65536) {
				incap = incap ? incap * 2 : 131072;
				if ((in = realloc(in, incap + 1)) == NULL)
					die(EXIT_UNREACHED, "out of memory");
			}
			r = read(STDIN_FILENO, in + inlen, incap - inlen);
			if (r == -1 && errno != EINTR && errno != EAGAIN)
				die(EXIT_UNREACHED, "reading standard input: %s",
				    strerror(errno));
			if (r == 0) {
				eof = 1;
				if (inlen > 0)	/* a last line without \n */
					in[inlen++] = '\n';
			}
			if (r > 0)
				inlen += (size_t)r;
			line = in;
			while (!gone && (nl = memchr(line, '\n',
			    inlen - (size_t)(line - in))) != NULL) {
				*nl = '\0';
				if (skipping) {		/* the rest of a long line */
					skipping = 0;
					p.lineno++;
				} else
					gone = publish_line(&p, line) == -1;
				line = nl + 1;
			}
			inlen -= (size_t)(line - in);
			memmove(in, line, inlen);
			/* A line longer than any frame can carry is an
			 * error, not a reason to grow without end. */
			if (inlen > PUBLISH_MAX_LINE_BYTES) {
				fprintf(stderr, "ispctl: line %lu: longer than %d "
				    "bytes; skipped\n", p.lineno + 1,
				    PUBLISH_MAX_LINE_BYTES);
				p.bad++;
				skipping = 1;
				inlen = 0;
			}
		}
		if (isp_process(p.c) != ISP_OK)
			die(EXIT_UNREACHED, "session ended: %s", isp_errmsg(p.c));
		publish_report(&p);
	}
	free(in);
	if (!stop_requested && !gone) {
		/* Let ispd answer the last lines before the session ends. */
		if (isp_sync(p.c, QUERY_TIMEOUT_MS) != ISP_OK)
			die(EXIT_UNREACHED, "%s", isp_errmsg(p.c));
		publish_report(&p);
	}
	free(p.pend);
	client_done(p.c);
	/* Lines ispd refused, else lines not understood. */
	if (p.bad > 0)
		return p.refused ? EXIT_REFUSED : EXIT_USAGE;
	return 0;
}

/* A snapshot collected in memory, for dump, get and sessions. */
struct snap {
	struct snaprec {
		char			*key;
		size_t			 key_len;
		char			*owner;
		uint64_t		 owner_session;
		uint64_t		 seq;
		struct isp_field	*fields;
		size_t			 nfields;
		size_t			 order;		/* arrival */
		int			 withdrawn;
	}		*r;
	size_t		 n;
	size_t		 cap;
	int		 done;
	int		 no_table;	/* the table does not exist */
};

static void *
xmemdup(const void *p, size_t len)
{
	char	*d;

	if ((d = malloc(len + 1)) == NULL)
		die(EXIT_UNREACHED, "out of memory");
	memcpy(d, p, len);
	d[len] = '\0';
	return d;
}

static void
snap_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct snap	*s = arg;
	struct snaprec	*r;
	size_t		 i;

	if (ev->type == ISP_EV_END) {
		s->done = 1;
		return;
	}
	/* Before END, ispd may send a key again (a change behind its
	 * snapshot cursor, docs/PROTOCOL.md): every event is kept in arrival
	 * order and snap_settle() keeps the last one per key. */
	if (ev->type != ISP_EV_ANNOUNCE && ev->type != ISP_EV_REPLACE &&
	    ev->type != ISP_EV_WITHDRAW)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		if ((s->r = realloc(s->r, s->cap * sizeof(*s->r))) == NULL)
			die(EXIT_UNREACHED, "out of memory");
	}
	r = &s->r[s->n];
	r->order = s->n++;
	r->withdrawn = ev->type == ISP_EV_WITHDRAW;
	r->key = xmemdup(ev->rec.key, ev->rec.key_len);
	r->key_len = ev->rec.key_len;
	r->owner = xmemdup(ev->rec.owner, strlen(ev->rec.owner));
	r->owner_session = ev->rec.owner_session;
	r->seq = ev->rec.seq;
	r->nfields = r->withdrawn ? 0 : ev->rec.nfields;
	if ((r->fields = calloc(r->nfields + 1, sizeof(*r->fields))) == NULL)
		die(EXIT_UNREACHED, "out of memory");
	for (i = 0; i < r->nfields; i++) {
		r->fields[i].name = xmemdup(ev->rec.fields[i].name,
		    strlen(ev->rec.fields[i].name));
		r->fields[i].value = xmemdup(ev->rec.fields[i].value,
		    ev->rec.fields[i].value_len);
		r->fields[i].value_len = ev->rec.fields[i].value_len;
	}
}

static int
snaprec_cmp(const void *a, const void *b)
{
	const struct snaprec	*x = a, *y = b;
	size_t			 n = x->key_len < y->key_len ? x->key_len :
				    y->key_len;
	int			 c = memcmp(x->key, y->key, n);

	if (c != 0)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void	snaprec_free(struct snaprec *);

/* Sorts by key and keeps, per key, the last event: a record, or nothing
 * when that was a withdrawal. */
static void
snap_settle(struct snap *s)
{
	size_t	 i, out = 0;

	if (s->n > 1)
		qsort(s->r, s->n, sizeof(*s->r), snaprec_cmp);
	for (i = 0; i < s->n; i++) {
		if ((i + 1 < s->n && s->r[i].key_len == s->r[i + 1].key_len &&
		    memcmp(s->r[i].key, s->r[i + 1].key, s->r[i].key_len) ==
		    0) || s->r[i].withdrawn) {
			snaprec_free(&s->r[i]);
			continue;
		}
		s->r[out++] = s->r[i];
	}
	s->n = out;
}

static int
snap_done(void *arg)
{
	return ((struct snap *)arg)->done;
}

/* Reads the records of table under prefix, sorted by key. With nothing
 * found, asks whether the table exists at all (s->no_table). */
static void
snap_fetch(struct snap *s, const char *table, const char *prefix)
{
	isp_client	*c;
	int64_t		 deadline;
	int		 rc;

	memset(s, 0, sizeof(*s));
	c = connect_or_die();
	rc = isp_subscribe(c, table, prefix, prefix ? strlen(prefix) : 0,
	    ISP_SUB_ONCE, snap_cb, s);
	if (rc != ISP_OK)
		die(exit_for(rc), "%s", lib_error(c));
	deadline = (int64_t)time(NULL) + QUERY_TIMEOUT_MS / 1000;
	while (!snap_done(s) && errs.count == 0) {
		if ((rc = isp_run(c, 100)) != ISP_OK)
			die(exit_for(rc), "%s", isp_errmsg(c));
		/* A large table keeps arriving; only silence times out. */
		if (s->n == 0 && time(NULL) > deadline)
			die(EXIT_UNREACHED, "no answer from ispd for %d s",
			    QUERY_TIMEOUT_MS / 1000);
	}
	if (errs.count > 0)
		die(exit_for(errs.code), "%s: %s (%s)", table, errs.reason,
		    isp_strerror(errs.code));
	/* A subscription for its snapshot alone does not create a table:
	 * an empty answer may be a typo. */
	if (s->n == 0)
		s->no_table = !table_exists(c, table);
	client_done(c);
	snap_settle(s);
}

static void
snaprec_free(struct snaprec *r)
{
	size_t	 j;

	for (j = 0; j < r->nfields; j++) {
		free((void *)r->fields[j].name);
		free((void *)r->fields[j].value);
	}
	free(r->fields);
	free(r->key);
	free(r->owner);
}

static void
snap_free(struct snap *s)
{
	size_t	 i;

	for (i = 0; i < s->n; i++)
		snaprec_free(&s->r[i]);
	free(s->r);
}

static struct isp_record
snaprec_record(const struct snaprec *r)
{
	struct isp_record	 rec;

	rec.key = r->key;
	rec.key_len = r->key_len;
	rec.fields = r->fields;
	rec.nfields = r->nfields;
	rec.owner = r->owner;
	rec.owner_session = r->owner_session;
	rec.seq = r->seq;
	return rec;
}

static size_t
printable_len(const void *p, size_t len)
{
	return text_put(p, len, 0, 0);
}

static void
pad(size_t have, size_t width)
{
	while (have++ < width)
		putchar(' ');
}

/* Options shared by dump, get, watch. */
static const char *
parse_view_opts(int argc, char **argv, int nargs, const char *what,
    char ***args)
{
	static const struct option	 opts[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ "timestamps", no_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	const char	*prefix = NULL;
	int		 ch;

	optind = 0;	/* glibc: start over, argv[0] is the command */
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'p' && nargs == 1)
			prefix = optarg;
		else if (ch == 'T' && strcmp(what, "watch") == 0)
			timestamps = 1;
		else if (ch == 'T')
			usage("--timestamps is an option of watch");
		else
			usage(NULL);
	}
	if (argc - optind != nargs)
		usage("%s needs %s", what, nargs == 1 ? "TABLE" :
		    "TABLE and KEY");
	*args = argv + optind;
	return prefix;
}

/* dump TABLE [--prefix P] [--json] */
static int
cmd_dump(int argc, char **argv)
{
	struct isp_record	 rec;
	struct snap		 s;
	char			**args;
	const char		*prefix;
	size_t			 i, kw = 3, ow = 5, w;

	prefix = parse_view_opts(argc, argv, 1, "dump", &args);
	snap_fetch(&s, args[0], prefix);
	if (s.no_table) {
		snap_free(&s);
		die(EXIT_NOTFOUND, "table %s does not exist", args[0]);
	}
	if (json) {
		for (i = 0; i < s.n; i++) {
			rec = snaprec_record(&s.r[i]);
			json_event(args[0], ISP_EV_ANNOUNCE, &rec, rec.seq, 0);
		}
		snap_free(&s);
		return 0;
	}
	for (i = 0; i < s.n; i++) {
		if ((w = printable_len(s.r[i].key, s.r[i].key_len)) > kw)
			kw = w;
		if ((w = strlen(s.r[i].owner)) > ow)
			ow = w;
	}
	printf("KEY");
	pad(3, kw + 2);
	printf("OWNER");
	pad(5, ow + 2);
	printf("%-8s FIELDS\n", "SEQ");
	for (i = 0; i < s.n; i++) {
		text_bytes(s.r[i].key, s.r[i].key_len);
		pad(printable_len(s.r[i].key, s.r[i].key_len), kw + 2);
		printf("%s", s.r[i].owner);
		pad(strlen(s.r[i].owner), ow + 2);
		printf("%-8" PRIu64 " ", s.r[i].seq);
		text_fields(s.r[i].fields, s.r[i].nfields);
		printf("\n");
	}
	printf("%zu record%s\n", s.n, s.n == 1 ? "" : "s");
	snap_free(&s);
	return 0;
}

/* get TABLE KEY [--json]: exit 1 when absent. */
static int
cmd_get(int argc, char **argv)
{
	struct isp_record	 rec;
	struct snap		 s;
	char			**args;
	size_t			 i, j, nw;

	(void)parse_view_opts(argc, argv, 2, "get", &args);
	check_key_arg(args[1]);
	snap_fetch(&s, args[0], args[1]);
	for (i = 0; i < s.n; i++)
		if (strcmp(s.r[i].key, args[1]) == 0 &&
		    s.r[i].key_len == strlen(args[1]))
			break;
	if (i == s.n) {
		snap_free(&s);
		if (s.no_table)
			die(EXIT_NOTFOUND, "table %s does not exist", args[0]);
		die(EXIT_NOTFOUND, "%s not found in %s", args[1], args[0]);
	}
	rec = snaprec_record(&s.r[i]);
	if (json) {
		json_event(args[0], ISP_EV_ANNOUNCE, &rec, rec.seq, 0);
	} else {
		nw = 5;
		for (j = 0; j < rec.nfields; j++)
			if (strlen(rec.fields[j].name) > nw)
				nw = strlen(rec.fields[j].name);
		printf("%-*s  ", (int)nw, "key");
		text_bytes(rec.key, rec.key_len);
		printf("\n%-*s  %s (session %" PRIu64 ")\n", (int)nw, "owner",
		    rec.owner, rec.owner_session);
		printf("%-*s  %" PRIu64 "\n", (int)nw, "seq", rec.seq);
		for (j = 0; j < rec.nfields; j++) {
			printf("%-*s  ", (int)nw, rec.fields[j].name);
			text_bytes(rec.fields[j].value,
			    rec.fields[j].value_len);
			printf("\n");
		}
	}
	snap_free(&s);
	return 0;
}

/* watch TABLE [--prefix P] [--json] */

/* A session carrying the view was lost (stale) or is back and resynced
 * (fresh); count is the number of stale records. */
static void
watch_state_line(const struct isp_event *ev)
{
	const char	*srv = ev->server != NULL ? ev->server : "";

	event_start();
	if (json) {
		printf("\"event\":\"%s\",\"table\":",
		    event_name(ev->type));
		json_cstr(ev->table);
		printf(",\"server\":");
		json_cstr(srv);
		printf(",\"stale\":%" PRIu64 "}\n", ev->count);
	} else if (ev->type == ISP_EV_STALE)
		printf("%-9s server=%s session lost; %" PRIu64 " stale "
		    "record%s kept\n", "stale", srv, ev->count,
		    ev->count == 1 ? "" : "s");
	else
		printf("%-9s server=%s resynced; %" PRIu64 " record%s still "
		    "stale\n", "fresh", srv, ev->count,
		    ev->count == 1 ? "" : "s");
	fflush(stdout);
}

static void
watch_cb(isp_client *c, const struct isp_event *ev, void *arg)
{
	size_t	 w;

	event_time_set();
	if (ev->type == ISP_EV_STALE || ev->type == ISP_EV_FRESH) {
		watch_state_line(ev);
		return;
	}
	if (json) {
		if (ev->type == ISP_EV_END) {
			event_start();
			printf("\"event\":\"end\",\"table\":");
			json_cstr(ev->table);
			printf(",\"count\":%" PRIu64 ",\"seq\":%" PRIu64 "}\n",
			    ev->count, ev->seq);
		} else
			json_event(ev->table, ev->type, &ev->rec, ev->seq,
			    ev->reason);
		fflush(stdout);
		return;
	}
	event_start();
	printf("%-9s seq=%-8" PRIu64 " ", event_name(ev->type), ev->seq);
	if (ev->type == ISP_EV_END) {
		printf("%" PRIu64 " record%s in %s; live events follow\n",
		    ev->count, ev->count == 1 ? "" : "s", ev->table);
		fflush(stdout);
		return;
	}
	text_bytes(ev->rec.key, ev->rec.key_len);
	w = printable_len(ev->rec.key, ev->rec.key_len);
	pad(w, 24);
	printf(" owner=%s", ev->rec.owner);
	if (ev->type == ISP_EV_WITHDRAW)
		printf(" (%s)", reason_name(ev->reason));
	else if (ev->rec.nfields > 0) {
		printf("  ");
		text_fields(ev->rec.fields, ev->rec.nfields);
	}
	printf("\n");
	fflush(stdout);
}

/*
 * The view is a mirror: with several reflectors it is their merge, and
 * across a lost session it stays (stale) instead of flapping, so what
 * watch prints is what an application built on a mirror would see.
 */
static int
cmd_watch(int argc, char **argv)
{
	isp_mirror	*m;
	isp_client	*c;
	char		**args;
	const char	*prefix;
	int		 rc;

	prefix = parse_view_opts(argc, argv, 1, "watch", &args);
	if (!valid_table_arg(args[0]))
		usage("invalid table name \"%s\": 1 to 64 characters of A-Z a-z "
		    "0-9 _ . : -", args[0]);
	catch_signals();
	c = connect_all_or_die();
	/* A live subscription creates its table in ispd; a typo should
	 * not pass unseen. */
	if (!table_exists(c, args[0]))
		fprintf(stderr, "ispctl: table %s does not exist yet: ispd "
		    "creates it, empty, for this watch\n", args[0]);
	m = isp_mirror_new(c, args[0], prefix, prefix ? strlen(prefix) : 0,
	    watch_cb, NULL);
	if (m == NULL)
		die(EXIT_UNREACHED, "%s", lib_error(c));
	while (!stop_requested) {
		if ((rc = isp_run(c, 200)) != ISP_OK)
			die(EXIT_UNREACHED, "session ended: %s", isp_errmsg(c));
		if (errs.count > 0)
			die(exit_for(errs.code), "watch %s: %s (%s)", args[0],
			    errs.reason, isp_strerror(errs.code));
	}
	isp_mirror_free(m);
	client_done(c);
	return 0;
}

/* Rows from a query, kept for aligned printing. */
struct rows {
	struct row {
		size_t		 n;
		char		**name;		/* n of each, every field */
		char		**value;
	}	*r;
	size_t	 n;
	size_t	 cap;
};

/* Room in r for n fields; r->n counts those filled. */
static void
row_alloc(struct row *r, size_t n)
{
	r->n = 0;
	if ((r->name = calloc(n + 1, sizeof(*r->name))) == NULL ||
	    (r->value = calloc(n + 1, sizeof(*r->value))) == NULL)
		die(EXIT_UNREACHED, "out of memory");
}

static void
rows_cb(const struct isp_field *f, size_t n, void *arg)
{
	struct rows	*rs = arg;
	struct row	*r;
	size_t		 i;

	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 32;
		if ((rs->r = realloc(rs->r, rs->cap * sizeof(*rs->r))) == NULL)
			die(EXIT_UNREACHED, "out of memory");
	}
	r = &rs->r[rs->n++];
	row_alloc(r, n);
	for (i = 0; i < n; i++, r->n++) {
		r->name[i] = xmemdup(f[i].name, strlen(f[i].name));
		r->value[i] = xmemdup(f[i].value, f[i].value_len);
	}
}

static void
rows_free(struct rows *rs)
{
	size_t	 i, j;

	for (i = 0; i < rs->n; i++) {
		for (j = 0; j < rs->r[i].n; j++) {
			free(rs->r[i].name[j]);
			free(rs->r[i].value[j]);
		}
		free(rs->r[i].name);
		free(rs->r[i].value);
	}
	free(rs->r);
}

static const char *
row_get(const struct row *r, const char *name)
{
	size_t	 i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->name[i], name) == 0)
			return r->value[i];
	return "";
}

static int
is_number(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static void
json_value(const char *v)
{
	if (is_number(v))
		fputs(v, stdout);
	else
		json_cstr(v);
}

/* Prints rows as a table with the given columns (field names) and
 * headings, or as JSON Lines with the given keys. */
static void
rows_print(struct rows *rs, const char **cols, const char **heads,
    const char **keys, size_t ncols)
{
	size_t	 w[16], i, j, l;

	if (json) {
		for (i = 0; i < rs->n; i++) {
			putchar('{');
			for (j = 0; j < ncols; j++) {
				printf("%s\"%s\":", j ? "," : "", keys[j]);
				json_value(row_get(&rs->r[i], cols[j]));
			}
			printf("}\n");
		}
		return;
	}
	for (j = 0; j < ncols; j++) {
		w[j] = strlen(heads[j]);
		for (i = 0; i < rs->n; i++)
			if ((l = strlen(row_get(&rs->r[i], cols[j]))) > w[j])
				w[j] = l;
	}
	for (j = 0; j < ncols; j++)
		printf("%-*s%s", j + 1 < ncols ? (int)w[j] : 0, heads[j],
		    j + 1 < ncols ? "  " : "\n");
	for (i = 0; i < rs->n; i++)
		for (j = 0; j < ncols; j++)
			printf("%-*s%s", j + 1 < ncols ? (int)w[j] : 0,
			    row_get(&rs->r[i], cols[j]),
			    j + 1 < ncols ? "  " : "\n");
}

static void
only_json_opt(int argc, char **argv, const char *what)
{
	static const struct option	 opts[] = {
		{ NULL, 0, NULL, 0 },
	};

	optind = 0;	/* glibc: start over, argv[0] is the command */
	if (getopt_long(argc, argv, "", opts, NULL) != -1)
		usage(NULL);
	if (optind != argc)
		usage("%s takes no arguments", what);
}

static int
cmd_tables(int argc, char **argv)
{
	static const char	*cols[] = { "name", "records", "seq",
				    "subscribers" };
	static const char	*heads[] = { "TABLE", "RECORDS", "SEQ",
				    "SUBSCRIBERS" };
	static const char	*keys[] = { "table", "records", "seq",
				    "subscribers" };
	struct rows		 rs = { NULL, 0, 0 };
	isp_client		*c;

	only_json_opt(argc, argv, "tables");
	c = connect_or_die();
	if (isp_query_tables(c, rows_cb, &rs, QUERY_TIMEOUT_MS) != ISP_OK)
		die(EXIT_UNREACHED, "tables: %s", isp_errmsg(c));
	client_done(c);
	rows_print(&rs, cols, heads, keys, 4);
	rows_free(&rs);
	return 0;
}

static int
cmd_stats(int argc, char **argv)
{
	struct rows	 rs = { NULL, 0, 0 };
	isp_client	*c;
	size_t		 i, w = 0;

	only_json_opt(argc, argv, "stats");
	c = connect_or_die();
	if (isp_query_stats(c, rows_cb, &rs, QUERY_TIMEOUT_MS) != ISP_OK)
		die(EXIT_UNREACHED, "stats: %s", isp_errmsg(c));
	client_done(c);
	if (rs.n == 0)
		die(EXIT_UNREACHED, "stats: ispd sent no counters");
	for (i = 0; i < rs.r[0].n; i++)
		if (strlen(rs.r[0].name[i]) > w)
			w = strlen(rs.r[0].name[i]);
	if (json)
		putchar('{');
	for (i = 0; i < rs.r[0].n; i++) {
		if (json) {
			printf("%s", i ? "," : "");
			json_cstr(rs.r[0].name[i]);
			putchar(':');
			json_value(rs.r[0].value[i]);
		} else
			printf("%-*s  %s\n", (int)w, rs.r[0].name[i],
			    rs.r[0].value[i]);
	}
	if (json)
		printf("}\n");
	rows_free(&rs);
	return 0;
}

/* sessions [--json]: the built-in table of live sessions. */
static int
cmd_sessions(int argc, char **argv)
{
	static const char	*cols[] = { "session", "name", "peer", "since",
				    "records" };
	static const char	*heads[] = { "SESSION", "NAME", "PEER",
				    "SINCE", "RECORDS" };
	struct rows		 rs = { NULL, 0, 0 };
	struct snap		 s;
	struct row		*r;
	size_t			 i, j;

	only_json_opt(argc, argv, "sessions");
	snap_fetch(&s, ISP_SESSIONS_TABLE, NULL);
	if ((rs.r = calloc(s.n + 1, sizeof(*rs.r))) == NULL)
		die(EXIT_UNREACHED, "out of memory");
	for (i = 0; i < s.n; i++) {
		r = &rs.r[rs.n++];
		row_alloc(r, 1 + s.r[i].nfields);
		r->name[0] = xmemdup("session", 7);
		r->value[0] = xmemdup(s.r[i].key, s.r[i].key_len);
		r->n = 1;
		for (j = 0; j < s.r[i].nfields; j++, r->n++) {
			r->name[r->n] = xmemdup(s.r[i].fields[j].name,
			    strlen(s.r[i].fields[j].name));
			r->value[r->n] = xmemdup(s.r[i].fields[j].value,
			    s.r[i].fields[j].value_len);
		}
	}
	/* Session ids sort as numbers. */
	for (i = 1; i < rs.n; i++)
		for (j = i; j > 0 && strtoull(rs.r[j - 1].value[0], NULL, 10) >
		    strtoull(rs.r[j].value[0], NULL, 10); j--) {
			struct row	 t = rs.r[j];

			rs.r[j] = rs.r[j - 1];
			rs.r[j - 1] = t;
		}
	rows_print(&rs, cols, heads, cols, 5);
	rows_free(&rs);
	snap_free(&s);
	return 0;
}

/* An operator request's argument words, --json aside. */
static char **
admin_args(int argc, char **argv, int nargs, const char *what,
    const char *synopsis)
{
	static const struct option	 opts[] = {
		{ NULL, 0, NULL, 0 },
	};

	optind = 0;	/* glibc: start over, argv[0] is the command */
	if (getopt_long(argc, argv, "", opts, NULL) != -1)
		usage(NULL);
	if (argc - optind != nargs)
		usage("%s takes %s", what, synopsis);
	return argv + optind;
}

/* What ispd said it did: one row with the field done. */
static void
admin_print(struct rows *rs, const char *what)
{
	const char	*done = rs->n > 0 ? row_get(&rs->r[0], "done") : "";

	if (json) {
		printf("{\"done\":");
		json_cstr(done);
		printf("}\n");
	} else
		printf("%s %s\n", what, done);
	rows_free(rs);
}

/* kick SESSION [--json]: ends a live session (ispctl sessions lists
 * them); exit 1 when there is none of that id. */
static int
cmd_kick(int argc, char **argv)
{
	struct rows	 rs = { NULL, 0, 0 };
	isp_client	*c;
	char		**args, *end;
	unsigned long long	 id;
	int		 rc;

	args = admin_args(argc, argv, 1, "kick", "a session id (ispctl "
	    "sessions lists them)");
	errno = 0;
	id = strtoull(args[0], &end, 10);
	if (args[0][0] < '0' || args[0][0] > '9' || *end != '\0' ||
	    errno != 0)
		usage("kick: '%s' is not a session id (ispctl sessions lists "
		    "them)", args[0]);
	c = connect_or_die();
	if ((rc = isp_kick(c, (uint64_t)id, rows_cb, &rs,
	    QUERY_TIMEOUT_MS)) != ISP_OK)
		die(exit_for(rc), "kick: %s", lib_error(c));
	client_done(c);
	admin_print(&rs, "kicked");
	return 0;
}

/* evict TABLE KEY [--json]: removes a record whoever owns it; exit 1
 * when there is no such record. */
static int
cmd_evict(int argc, char **argv)
{
	struct rows	 rs = { NULL, 0, 0 };
	isp_client	*c;
	char		**args;
	int		 rc;

	args = admin_args(argc, argv, 2, "evict", "a table and a key");
	if (!valid_table_arg(args[0]))
		usage("invalid table name \"%s\": 1 to 64 characters of A-Z "
		    "a-z 0-9 _ . : -", args[0]);
	check_key_arg(args[1]);
	c = connect_or_die();
	if ((rc = isp_evict(c, args[0], args[1], strlen(args[1]), rows_cb,
	    &rs, QUERY_TIMEOUT_MS)) != ISP_OK)
		die(exit_for(rc), "evict: %s", lib_error(c));
	client_done(c);
	admin_print(&rs, "evicted, owned by");
	return 0;
}

/* drop TABLE [--json]: removes a table, its records and its
 * subscriptions; exit 1 when there is no such table. */
static int
cmd_drop(int argc, char **argv)
{
	struct rows	 rs = { NULL, 0, 0 };
	isp_client	*c;
	char		**args;
	int		 rc;

	args = admin_args(argc, argv, 1, "drop", "a table");
	if (!valid_table_arg(args[0]))
		usage("invalid table name \"%s\": 1 to 64 characters of A-Z "
		    "a-z 0-9 _ . : -", args[0]);
	c = connect_or_die();
	if ((rc = isp_drop(c, args[0], rows_cb, &rs, QUERY_TIMEOUT_MS)) !=
	    ISP_OK)
		die(exit_for(rc), "drop: %s", lib_error(c));
	client_done(c);
	admin_print(&rs, "dropped");
	return 0;
}

/* held [--json]: what ispd holds for graceful restart, a line per lost
 * session and table. */
static int
cmd_held(int argc, char **argv)
{
	static const char	*cols[] = { "session", "client", "identity",
				    "table", "records", "expires_ms" };
	static const char	*heads[] = { "SESSION", "CLIENT", "IDENTITY",
				    "TABLE", "RECORDS", "EXPIRES_MS" };
	struct rows		 rs = { NULL, 0, 0 };
	isp_client		*c;
	int			 rc;

	(void)admin_args(argc, argv, 0, "held", "no argument");
	c = connect_or_die();
	if ((rc = isp_held(c, rows_cb, &rs, QUERY_TIMEOUT_MS)) != ISP_OK)
		die(exit_for(rc), "held: %s", lib_error(c));
	client_done(c);
	rows_print(&rs, cols, heads, cols, 6);
	rows_free(&rs);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		CLIENTCONF_OPTIONS,
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct {
		const char	*name;
		int		(*fn)(int, char **);
	} cmds[] = {
		{ "announce", cmd_announce },
		{ "publish", cmd_publish },
		{ "watch", cmd_watch },
		{ "dump", cmd_dump },
		{ "get", cmd_get },
		{ "tables", cmd_tables },
		{ "sessions", cmd_sessions },
		{ "stats", cmd_stats },
		{ "kick", cmd_kick },
		{ "evict", cmd_evict },
		{ "drop", cmd_drop },
		{ "held", cmd_held },
		{ "place", cmd_place },		/* place.c */
	};
	char	 err[512];
	size_t	 i;
	int	 ch, in, out;

	/* getopt's own messages name the program as the others do. */
	argv[0] = "ispctl";
	/* --json, before the command or after it, anywhere up to "--". */
	for (in = out = 1; in < argc; in++) {
		if (strcmp(argv[in], "--") == 0) {
			while (in < argc)
				argv[out++] = argv[in++];
			break;
		}
		if (strcmp(argv[in], "--json") == 0)
			json = 1;
		else
			argv[out++] = argv[in];
	}
	argc = out;
	argv[argc] = NULL;

	/* "+": stop at the command; its own options come after it. */
	while ((ch = getopt_long(argc, argv, "+s:n:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (clientconf_add_servers(&conn, optarg, err,
			    sizeof(err)) != 0)
				usage("%s", err);
			break;
		case 'n':
			client_name = optarg;
			break;
		case 'h':
			print_usage(stdout);
			return 0;
		case 'V':
			printf("ispctl %s (libisp %s)\n", ISP_RELEASE,
			    isp_version());
			return 0;
		default:
			switch (clientconf_option(&conn, ch, optarg, err,
			    sizeof(err))) {
			case 0:
				usage(NULL);
				break;
			case -1:
				die(EXIT_USAGE, "%s", err);
			}
		}
	}
	if ((conn.tls_cert == NULL) != (conn.tls_key == NULL))
		usage("--tls-cert and --tls-key go together");
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage("no command given");
	if (clientconf_finish(&conn, err, sizeof(err)) != 0)
		usage("%s", err);
	/* place.c connects on its own and reads the server from here. */
	if (setenv("ISPD_SERVER", conn.servers[0], 1) == -1)
		die(EXIT_UNREACHED, "setenv: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[0], cmds[i].name) == 0)
			return cmds[i].fn(argc, argv);
	usage("unknown command \"%s\"", argv[0]);
}
