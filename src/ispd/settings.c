/*
 * settings: every setting of ispd, described once (name, value, range,
 * default, whether a reload applies it, one line of help, where it is
 * stored), and what is made from that description: the defaults, --help
 * and the table of docs/CONFIG.md (--help-config-markdown, which
 * tests/cli/test_settings.sh compares with the file). main.c builds its
 * options from settings[], conf.c parses the file's directives by it,
 * and a reload (main.c) reports every SET_RESTART setting that changed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ispd.h"

#define KIB	1024ULL
#define GIB	(1024ULL * 1024 * 1024)
/* A column of --help: where the help of an option starts. */
#define HELP_COL	23

/* Put to use by settings_defaults(), then settings_apply(); but for the
 * server id, which main.c makes the host name. */
struct ispd_conf	 ispd_conf = {
	.server_id = "ispd",
};

const struct setting	 settings[CONF_NKEYS] = {
	[CONF_CONFIG] = { "config", SET_RUN, SET_NOFILE, "FILE",
	    .help = "read settings, TLS, credentials and rules from FILE; "
	    "options given here win; SIGHUP reads it again" },
	[CONF_CHECK_CONFIG] = { "check-config", SET_RUN, SET_NOFILE, "FILE",
	    .help = "check FILE and the files it names, report every error "
	    "with its line, exit 0 when there is none" },
	[CONF_LISTEN] = { "listen", SET_LISTEN, SET_RESTART | SET_REPEAT,
	    "HOST:PORT", .def = "127.0.0.1:7460",
	    .def_doc = "127.0.0.1:7460 when no listener is given",
	    .help = "plain TCP listener; [IPV6]:PORT for IPv6, port 0 picks "
	    "a free one; listeners given on the command line replace the "
	    "file's" },
	[CONF_LISTEN_TLS] = { "listen-tls", SET_LISTEN,
	    SET_RESTART | SET_REPEAT, "HOST:PORT",
	    .help = "TLS listener; needs tls-cert and tls-key" },
	[CONF_TLS_CERT] = { "tls-cert", SET_PATH, 0, "FILE",
	    .help = "certificate chain (PEM, leaf first) of the TLS "
	    "listeners" },
	[CONF_TLS_KEY] = { "tls-key", SET_PATH, 0, "FILE",
	    .help = "its private key (PEM, unencrypted), refused when every "
	    "user may read it" },
	[CONF_TLS_CA] = { "tls-ca", SET_PATH, 0, "FILE",
	    .help = "CA certificates (PEM) that sign client certificates; "
	    "with it, TLS clients are asked for one" },
	[CONF_TLS_REQUIRE] = { "tls-require-client-cert", SET_BOOL, 0,
	    "yes|no", .def = "no",
	    .help = "refuse TLS clients without a valid certificate; needs "
	    "tls-ca" },
	[CONF_CREDENTIALS] = { "credentials", SET_PATH, 0, "FILE",
	    .help = "shared secrets, one 'NAME SECRET' a line, refused when "
	    "every user may read it" },
	[CONF_AUTH] = { "auth", SET_AUTH, 0, "required|optional",
	    .def_doc = "required with credentials or client certificates, "
	    "else optional",
	    .help = "required: every session authenticates; optional: one "
	    "that does not is 'anonymous'" },
	[CONF_USER] = { "user", SET_TEXT, SET_RESTART, "NAME",
	    .def_doc = "the user it started as",
	    .help = "run as this user once the listeners are bound; ispd "
	    "must start as root" },
	[CONF_HOLD] = { "hold", SET_HOLD, SET_RESTART, "SECONDS",
	    .def = "9", .value = &ispd_conf.hold_ms,
	    .help = "end a session silent this long; decimals allowed" },
	[CONF_PORT_FILE] = { "port-file", SET_RUN, SET_NOFILE, "PATH",
	    .help = "once the listeners are bound, write their ports there, "
	    "one a line" },
	[CONF_METRICS] = { "metrics", SET_ADDR, SET_RESTART, "HOST:PORT",
	    .def_doc = "off",
	    .help = "serve Prometheus metrics at /metrics and health at "
	    "/healthz over HTTP there (docs/OPERATIONS.md)" },
	[CONF_LOG_LEVEL] = { "log-level", SET_LEVEL, SET_RESTART, "LEVEL",
	    .def = "info", .value = &ispd_conf.log_level,
	    .help = "error, warn, info or debug" },
	[CONF_SERVER_ID] = { "server-id", SET_TEXT, SET_RESTART, "NAME",
	    .def_doc = "the host name",
	    .help = "the name ispd gives itself in WELCOME" },
	[CONF_DRAIN_SECONDS] = { "drain-seconds", SET_SECONDS, SET_NOFILE,
	    "N", 0, 3600, "5", .value = &ispd_conf.drain_ms,
	    .help = "on SIGUSR1, tell clients ispd goes down, close the "
	    "sessions N seconds later and exit" },
	[CONF_GRACEFUL_TABLE] = { "graceful-table", SET_PATTERN,
	    SET_RESTART | SET_REPEAT, "PATTERN",
	    .help = "a table, or a prefix ending in '*', whose records a lost "
	    "session leaves held for its client's next session (docs/HA.md); "
	    "given on the command line, they replace the file's" },
	/* docs/HA.md: a restart plus a reconnect and a replay, with room. */
	[CONF_GRACEFUL_SECONDS] = { "graceful-seconds", SET_SECONDS,
	    SET_RESTART, "N", 1, 3600, "30", .value = &ispd_conf.graceful_ms,
	    .help = "how long they are held" },
	[CONF_DEFAULT] = { "default", SET_RULE, SET_NOCLI, "allow|deny",
	    .def = "allow",
	    .help = "the decision when no rule matches" },
	[CONF_ALLOW] = { "allow", SET_RULE, SET_NOCLI | SET_REPEAT,
	    "WHO OPS TABLE...",
	    .help = "a rule: WHO may do OPS on the tables (Rules, below)" },
	[CONF_DENY] = { "deny", SET_RULE, SET_NOCLI | SET_REPEAT,
	    "WHO OPS TABLE...",
	    .help = "a rule: WHO may not do OPS on the tables" },

	/* Eight frames of the largest size, or tens of thousands of
	 * SIP-sized events: a burst that a live subscriber absorbs. */
	[CONF_MAX_QUEUE_BYTES] = { "max-queue-bytes", SET_LIMIT, 0, "N",
	    16 * KIB, 64 * GIB, "8388608", .value = &ispd_conf.max_queue_bytes,
	    .help = "bytes queued to a session before its events are "
	    "coalesced per key" },
	/* The protocol's own limits. */
	[CONF_MAX_FRAME_BYTES] = { "max-frame-bytes", SET_LIMIT, 0, "N",
	    PROTO_MIN_FRAME_BYTES, PROTO_MAX_FRAME_BYTES, "1048576",
	    .value = &ispd_conf.max_frame_bytes,
	    .help = "length of a frame a client may send" },
	[CONF_MAX_KEY_BYTES] = { "max-key-bytes", SET_LIMIT, 0, "N",
	    1, PROTO_MAX_KEY_BYTES, "1024", .value = &ispd_conf.max_key_bytes,
	    .help = "length of an announced key" },
	[CONF_MAX_VALUE_BYTES] = { "max-value-bytes", SET_LIMIT, 0, "N",
	    0, PROTO_MAX_VALUE_BYTES, "65536",
	    .value = &ispd_conf.max_value_bytes,
	    .help = "length of an announced field value" },
	[CONF_MAX_FIELDS] = { "max-fields", SET_LIMIT, 0, "N",
	    0, PROTO_MAX_FIELDS, "256", .value = &ispd_conf.max_fields,
	    .help = "fields in an announced record" },
	/* About 3 GB of SIP-sized records: more than a large border
	 * gateway registers, less than a runaway client may take. */
	[CONF_MAX_RECORDS_PER_SESSION] = { "max-records-per-session",
	    SET_LIMIT, 0, "N", 1, UINT32_MAX, "10000000",
	    .value = &ispd_conf.max_records_per_session,
	    .help = "records one session may own" },
	/* QUERY tables answers in one ROWS frame; 4096 rows of the largest
	 * size fit in it. */
	[CONF_MAX_TABLES] = { "max-tables", SET_LIMIT, 0, "N",
	    1, 1000000, "4096", .value = &ispd_conf.max_tables,
	    .help = "tables clients may create (ispd.sessions not counted)" },
	[CONF_MAX_SUBSCRIPTIONS] = { "max-subscriptions", SET_LIMIT, 0, "N",
	    1, 1000000, "1024", .value = &ispd_conf.max_subscriptions,
	    .help = "subscriptions of one session (ONCE reads included)" },
	/* Tens of thousands of sessions (docs/LIMITS.md), some hosts (a
	 * benchmark, a NAT) carrying ten thousand of them. */
	[CONF_MAX_SESSIONS_PER_IP] = { "max-sessions-per-ip", SET_LIMIT, 0,
	    "N", 1, 10000000, "16384", .value = &ispd_conf.max_sessions_per_ip,
	    .help = "sessions from one source address" },
	[CONF_MAX_SESSIONS] = { "max-sessions", SET_LIMIT, 0, "N",
	    1, 10000000, "65536", .value = &ispd_conf.max_sessions,
	    .help = "sessions in all" },
	[CONF_MAX_TABLE_CREATES_PER_SEC] = { "max-table-creates-per-sec",
	    SET_LIMIT, 0, "N", 1, 1000000, "100",
	    .value = &ispd_conf.max_table_creates_per_sec,
	    .help = "tables one session may create per second" },
};

/* The defaults of the settings with a value, parsed once. */
static uint64_t		 defaults[CONF_NKEYS];

/* The setting named name (a directive, or an option without "--"), or
 * -1. */
int
setting_find(const char *name)
{
	int	 i;

	for (i = 0; i < CONF_NKEYS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return i;
	return -1;
}

/* Parses every default (a broken one is a bug: fatal) and puts them to
 * use. Before anything reads ispd_conf: main(), and the unit tests. */
void
settings_defaults(void)
{
	struct conf	 c;
	int		 i;

	conf_init(&c);
	for (i = 0; i < CONF_NKEYS; i++) {
		if (settings[i].value == NULL || settings[i].def == NULL)
			continue;
		if (conf_set(&c, i, settings[i].def, 0) == -1)
			fatalx("settings_defaults: %s %s", settings[i].name,
			    settings[i].def);
		defaults[i] = c.item[i].num;
		*settings[i].value = defaults[i];
	}
	conf_free(&c);
}

/* Puts c's settings that have a value to use, a default for those c
 * lacks. A reload (reload 1) leaves those that take a restart. */
void
settings_apply(const struct conf *c, int reload)
{
	int	 i;

	for (i = 0; i < CONF_NKEYS; i++) {
		if (settings[i].value == NULL ||
		    (reload && (settings[i].flags & SET_RESTART)))
			continue;
		*settings[i].value = c->item[i].set ? c->item[i].num :
		    defaults[i];
	}
}

/* Prints text from column col, wrapped before column 80 and continued
 * at column indent. */
static void
usage_wrap(FILE *f, int col, int indent, const char *text)
{
	const char	*p = text;
	int		 n;

	while (*p != '\0') {
		n = (int)strcspn(p, " ");
		if (col > indent && col + 1 + n >= 80) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent || p != text) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", n, p);
		col += n;
		p += n;
		p += strspn(p, " ");
	}
	fputc('\n', f);
}

/* "--name ARG", or "--name" for an option that takes no value. */
static const char *
usage_option(const struct setting *s, char *buf, size_t bufsz)
{
	if (s->type == SET_BOOL)
		snprintf(buf, bufsz, "--%s", s->name);
	else
		snprintf(buf, bufsz, "--%s %s", s->name, s->arg);
	return buf;
}

/* The default as the documentation says it. */
static const char *
setting_default_text(const struct setting *s)
{
	return s->def_doc != NULL ? s->def_doc : s->def != NULL ? s->def :
	    "none";
}

/* usage: and, with full, every option and every limit. */
void
settings_usage(FILE *f, int full)
{
	const struct setting	*s;
	char			 opt[96], text[512];
	int			 i, col = 11, n, len, limits = 0;

	fprintf(f, "usage: ispd");
	for (i = 0; i < CONF_NKEYS; i++) {
		s = &settings[i];
		if ((s->flags & SET_NOCLI) || i == CONF_CHECK_CONFIG)
			continue;
		if (s->type == SET_LIMIT && limits++ > 0)
			continue;
		if (s->type == SET_LIMIT)
			n = snprintf(text, sizeof(text), "[--max-LIMIT N]...");
		else
			n = snprintf(text, sizeof(text), "[%s]%s",
			    usage_option(s, opt, sizeof(opt)),
			    s->flags & SET_REPEAT ? "..." : "");
		if (col + 1 + n >= 80) {
			fprintf(f, "\n           ");
			col = 11;
		}
		fprintf(f, " %s", text);
		col += 1 + n;
	}
	fprintf(f, "\n            [--help-config-markdown] [-h|--help] "
	    "[-V|--version]\n       ispd --check-config FILE\n");
	if (!full)
		return;
	fputc('\n', f);
	for (i = 0; i < CONF_NKEYS; i++) {
		s = &settings[i];
		if ((s->flags & SET_NOCLI) || s->type == SET_LIMIT)
			continue;
		n = fprintf(f, "  %s", usage_option(s, opt, sizeof(opt)));
		len = snprintf(text, sizeof(text), "%s%s", s->help,
		    s->flags & SET_REPEAT ? "; repeatable" : "");
		if (s->def != NULL || s->def_doc != NULL)
			len += snprintf(text + len, sizeof(text) - len,
			    " (default: %s", setting_default_text(s));
		if (s->type == SET_SECONDS)
			len += snprintf(text + len, sizeof(text) - len,
			    "; %" PRIu64 " to %" PRIu64, s->min, s->max);
		if (s->def != NULL || s->def_doc != NULL)
			snprintf(text + len, sizeof(text) - len, ")");
		if (n + 1 >= HELP_COL)
			n += fprintf(f, " ");
		else
			n += fprintf(f, "%*s", HELP_COL - n, "");
		usage_wrap(f, n, HELP_COL, text);
	}
	fprintf(f, "\nlimits (docs/LIMITS.md; ERROR LIMIT names the option "
	    "hit; in the configuration\nfile: limit NAME N):\n");
	for (i = 0; i < CONF_NKEYS; i++) {
		s = &settings[i];
		if (s->type != SET_LIMIT)
			continue;
		snprintf(opt, sizeof(opt), "--%s N", s->name);
		fprintf(f, "  %-32s default %" PRIu64 ", %" PRIu64 " to %"
		    PRIu64 "\n        %s\n", opt, defaults[i], s->min, s->max,
		    s->help);
	}
}

/* text, with the '|' that would end a cell of a Markdown table escaped. */
static void
md_text(FILE *f, const char *text)
{
	for (; *text != '\0'; text++) {
		if (*text == '|')
			fputc('\\', f);
		fputc(*text, f);
	}
}

/* The table of the directives and options of docs/CONFIG.md. */
void
settings_markdown(FILE *f)
{
	const struct setting	*s;
	char			 opt[96];
	int			 i;

	fprintf(f, "| directive | command line | value | default | "
	    "on reload |\n|---|---|---|---|---|\n");
	for (i = 0; i < CONF_NKEYS; i++) {
		s = &settings[i];
		fputs("| ", f);
		if (s->flags & SET_NOFILE)
			fputs("—", f);
		else {
			fprintf(f, "`%s", s->type == SET_LIMIT ? "limit " : "");
			md_text(f, s->name);
			fputc(' ', f);
			md_text(f, s->type == SET_PATTERN ? "PATTERN..." :
			    s->arg);
			fputc('`', f);
		}
		fputs(" | ", f);
		if (s->flags & SET_NOCLI)
			fputs("—", f);
		else {
			fputc('`', f);
			md_text(f, usage_option(s, opt, sizeof(opt)));
			fputc('`', f);
		}
		fputs(" | ", f);
		md_text(f, s->help);
		if (s->type == SET_SECONDS || s->type == SET_LIMIT)
			fprintf(f, "; %" PRIu64 " to %" PRIu64, s->min, s->max);
		if (s->flags & SET_REPEAT)
			fputs("; repeatable", f);
		fputs(" | ", f);
		if (s->def_doc != NULL)
			md_text(f, s->def_doc);
		else if (s->def != NULL) {
			fputc('`', f);
			md_text(f, s->def);
			fputc('`', f);
		} else
			fputs("none", f);
		fprintf(f, " | %s |\n", s->flags & SET_NOFILE ? "—" :
		    s->flags & SET_RESTART ? "takes a restart" : "applied");
	}
}
