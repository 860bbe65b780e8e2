/*
 * cli: what an operator and the dialplan see of the module.
 *
 *   isp show status			sessions, records, contacts, lag
 *   isp show registrations [like RE]	every binding and what it became
 *   isp show instances			INSTANCES, and who serves what
 *   isp drain | isp undrain		this instance's status in INSTANCES
 *   AMI action ISPStatus		the status as fields
 *   ISP_PLACE(role,account)		the instance that serves an account
 *   ISP_SERVES(account)		1 on that instance, else 0
 */
#include "asterisk.h"

#include <regex.h>
#include <string.h>

#include "asterisk/app.h"
#include "asterisk/cli.h"
#include "asterisk/manager.h"
#include "asterisk/module.h"
#include "asterisk/pbx.h"
#include "asterisk/strings.h"

#include "isp_asterisk.h"
#include "isp_place.h"

static const char *
field_text(const struct isp_record *r, const char *name)
{
	size_t	 i;

	for (i = 0; i < r->nfields; i++)
		if (strcmp(r->fields[i].name, name) == 0)
			return r->fields[i].value;
	return "";
}

struct status {
	char			 name[256];
	char			 table[256];
	const char		*aor_map;
	size_t			 nservers;
	unsigned		 up;
	size_t			 records, stale, instances;
	int			 ready, connected, draining;
	struct contacts_stats	 c;
};

static void
status_get(struct status *st)
{
	memset(st, 0, sizeof(*st));
	ispa_rdlock();
	if (ispa.conf != NULL) {
		ast_copy_string(st->name, ispa.conf->name, sizeof(st->name));
		ast_copy_string(st->table, ispa.conf->table, sizeof(st->table));
		st->aor_map = conf_aor_map_name(ispa.conf->aor_map);
		st->nservers = ispa.conf->nservers;
	}
	st->draining = ispa.draining;
	if (ispa.client != NULL) {
		st->connected = 1;
		st->up = isp_servers_up(ispa.client);
		st->records = isp_mirror_count(ispa.registrations);
		st->stale = isp_mirror_stale_count(ispa.registrations);
		st->ready = isp_mirror_ready(ispa.registrations);
		st->instances = isp_mirror_count(ispa.instances);
	}
	ispa_unlock();
	contacts_stats(&st->c);
}

static char *
cli_status(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	struct status	 st;

	switch (cmd) {
	case CLI_INIT:
		e->command = "isp show status";
		e->usage = "Usage: isp show status\n"
		    "       Sessions with ispd, records mirrored, contacts made "
		    "of them.\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc != 3)
		return CLI_SHOWUSAGE;
	status_get(&st);
	ast_cli(a->fd, "Instance:      %s (%s)\n", st.name,
	    st.draining ? "draining" : "up");
	ast_cli(a->fd, "Reflectors:    %u of %zu up%s\n", st.up, st.nservers,
	    st.connected ? "" : " (connecting)");
	ast_cli(a->fd, "Table:         %s (aor_map %s)%s\n", st.table,
	    st.aor_map, st.connected && !st.ready ? ", snapshot loading" : "");
	ast_cli(a->fd, "Records:       %zu (%zu stale)\n", st.records,
	    st.stale);
	ast_cli(a->fd, "Contacts:      %zu\n", st.c.contacts);
	ast_cli(a->fd, "No AOR here:   %zu\n", st.c.no_aor);
	ast_cli(a->fd, "Skipped:       %zu\n", st.c.skipped);
	ast_cli(a->fd, "Pending:       %zu (changes not yet applied)\n",
	    st.c.pending);
	ast_cli(a->fd, "Applied:       %llu\n",
	    (unsigned long long)st.c.applied);
	ast_cli(a->fd, "Paced:         on %zu subscribers' queues, %llu "
	    "windows held back\n", st.c.watched,
	    (unsigned long long)st.c.waits);
	ast_cli(a->fd, "Instances:     %zu\n", st.instances);
	ast_cli(a->fd, "Refused:       %llu stray REGISTERs, %llu MWI NOTIFYs "
	    "held back\n", (unsigned long long)gate_registers_refused(),
	    (unsigned long long)gate_notifies_dropped());
	return CLI_SUCCESS;
}

struct reg_walk {
	int		 fd;
	regex_t		*like;
	size_t		 shown, contacts, no_aor, skipped;
};

static int
reg_row(const struct isp_record *r, void *arg)
{
	struct reg_walk	*w = arg;
	const char	*state;
	char		 buf[256];

	if (w->like != NULL && regexec(w->like, r->key, 0, NULL, 0) != 0)
		return 0;
	if ((state = contacts_state(r->key, buf, sizeof(buf))) == NULL)
		state = "pending";
	else if (strncmp(state, "contact", 7) == 0)
		w->contacts++;
	else if (strncmp(state, "no AOR", 6) == 0)
		w->no_aor++;
	else
		w->skipped++;
	w->shown++;
	ast_cli(w->fd, "%-50.50s %-40.40s %s%s\n", (const char *)r->key,
	    field_text(r, "contact"), state,
	    isp_record_stale(r) ? " (stale)" : "");
	return 0;
}

static char *
cli_registrations(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	struct reg_walk	 w = { 0 };
	regex_t		 re;

	switch (cmd) {
	case CLI_INIT:
		e->command = "isp show registrations";
		e->usage = "Usage: isp show registrations [like <regex>]\n"
		    "       Every binding of the mirror (or those whose key "
		    "matches),\n       with the PJSIP contact it became, or "
		    "why none.\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc != 3 && !(a->argc == 5 && strcasecmp(a->argv[3], "like") == 0))
		return CLI_SHOWUSAGE;
	if (a->argc == 5) {
		if (regcomp(&re, a->argv[4], REG_EXTENDED | REG_NOSUB) != 0) {
			ast_cli(a->fd, "'%s' is not a regular expression\n",
			    a->argv[4]);
			return CLI_FAILURE;
		}
		w.like = &re;
	}
	w.fd = a->fd;
	ast_cli(a->fd, "%-50s %-40s %s\n", "Key", "Contact", "State");
	ispa_rdlock();
	if (ispa.registrations != NULL)
		(void)isp_mirror_foreach(ispa.registrations, NULL, 0, reg_row,
		    &w);
	ispa_unlock();
	ast_cli(a->fd, "%zu bindings: %zu contacts, %zu with no AOR here, "
	    "%zu skipped\n", w.shown, w.contacts, w.no_aor, w.skipped);
	if (w.like != NULL)
		regfree(w.like);
	return CLI_SUCCESS;
}

static int
instance_row(const struct isp_record *r, void *arg)
{
	int		*fd = arg;
	const char	*me;

	me = ispa.conf != NULL && strcmp(r->key, ispa.conf->name) == 0 ?
	    " (this Asterisk)" : "";
	ast_cli(*fd, "%-30.30s %-10.10s %-30.30s %-9.9s%s\n",
	    (const char *)r->key, field_text(r, "role"), field_text(r, "uri"),
	    S_OR(field_text(r, "status"), "up"), me);
	return 0;
}

static char *
cli_instances(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	int	 fd = a->fd;

	switch (cmd) {
	case CLI_INIT:
		e->command = "isp show instances";
		e->usage = "Usage: isp show instances\n"
		    "       The live instances of the pool (table INSTANCES).\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc != 3)
		return CLI_SHOWUSAGE;
	ast_cli(a->fd, "%-30s %-10s %-30s %s\n", "Id", "Role", "SIP", "Status");
	ispa_rdlock();
	if (ispa.instances != NULL)
		(void)isp_mirror_foreach(ispa.instances, NULL, 0, instance_row,
		    &fd);
	ispa_unlock();
	return CLI_SUCCESS;
}

static char *
cli_drain(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	int	 drain, rc;

	switch (cmd) {
	case CLI_INIT:
		e->command = "isp {drain|undrain}";
		e->usage = "Usage: isp drain | isp undrain\n"
		    "       drain: announce this instance as draining, so "
		    "placement gives\n       its accounts to the others; it "
		    "keeps every contact and still\n       takes calls. "
		    "undrain: take accounts again.\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc != 2)
		return CLI_SHOWUSAGE;
	drain = strcasecmp(a->argv[1], "drain") == 0;
	ispa_wrlock();
	ispa.draining = drain;
	rc = instance_announce();
	ispa_unlock();
	if (rc == -1)
		ast_cli(a->fd, "Not connected to ispd: the instance will be "
		    "announced as %s once it is.\n", drain ? "draining" : "up");
	else
		ast_cli(a->fd, "This instance is now %s.\n",
		    drain ? "draining" : "up");
	return CLI_SUCCESS;
}

static struct ast_cli_entry cli_entries[] = {
	AST_CLI_DEFINE(cli_status, "Show the ispd mirror's status"),
	AST_CLI_DEFINE(cli_registrations, "Show mirrored registrations"),
	AST_CLI_DEFINE(cli_instances, "Show the pool's instances"),
	AST_CLI_DEFINE(cli_drain, "Drain this instance, or take it back"),
};

static int
ami_status(struct mansession *s, const struct message *m)
{
	struct status	 st;
	const char	*id = astman_get_header(m, "ActionID");

	status_get(&st);
	astman_append(s, "Response: Success\r\n");
	if (!ast_strlen_zero(id))
		astman_append(s, "ActionID: %s\r\n", id);
	astman_append(s,
	    "Name: %s\r\n"
	    "Status: %s\r\n"
	    "Table: %s\r\n"
	    "Servers: %zu\r\n"
	    "ServersUp: %u\r\n"
	    "Ready: %d\r\n"
	    "Records: %zu\r\n"
	    "Stale: %zu\r\n"
	    "Contacts: %zu\r\n"
	    "NoAor: %zu\r\n"
	    "Skipped: %zu\r\n"
	    "Pending: %zu\r\n"
	    "Applied: %llu\r\n"
	    "Watched: %zu\r\n"
	    "Waits: %llu\r\n"
	    "Instances: %zu\r\n"
	    "RegistersRefused: %llu\r\n"
	    "NotifiesHeldBack: %llu\r\n"
	    "\r\n",
	    st.name, st.draining ? "draining" : "up", st.table, st.nservers,
	    st.up, st.ready, st.records, st.stale, st.c.contacts, st.c.no_aor,
	    st.c.skipped, st.c.pending, (unsigned long long)st.c.applied,
	    st.c.watched, (unsigned long long)st.c.waits, st.instances,
	    (unsigned long long)gate_registers_refused(),
	    (unsigned long long)gate_notifies_dropped());
	return 0;
}

static int
place_read(struct ast_channel *chan, const char *cmd, char *data, char *buf,
    size_t len)
{
	AST_DECLARE_APP_ARGS(args,
		AST_APP_ARG(role);
		AST_APP_ARG(account);
	);
	int	 rc;

	AST_STANDARD_APP_ARGS(args, data);
	if (ast_strlen_zero(args.role) || ast_strlen_zero(args.account)) {
		ast_log(LOG_WARNING, "usage: ISP_PLACE(role,account)\n");
		return -1;
	}
	*buf = '\0';
	ispa_rdlock();
	rc = instance_place(args.role, args.account, buf, len);
	ispa_unlock();
	if (rc == -1)
		*buf = '\0';	/* no live instance of the role */
	return 0;
}

static int
serves_read(struct ast_channel *chan, const char *cmd, char *data, char *buf,
    size_t len)
{
	if (ast_strlen_zero(data)) {
		ast_log(LOG_WARNING, "usage: ISP_SERVES(account)\n");
		return -1;
	}
	ast_copy_string(buf, instance_serves(data) ? "1" : "0", len);
	return 0;
}

static struct ast_custom_function place_function = {
	.name = "ISP_PLACE",
	.read = place_read,
};

static struct ast_custom_function serves_function = {
	.name = "ISP_SERVES",
	.read = serves_read,
};

int
cli_init(void)
{
	if (ast_cli_register_multiple(cli_entries, ARRAY_LEN(cli_entries)) ||
	    ast_manager_register2("ISPStatus", EVENT_FLAG_SYSTEM |
	    EVENT_FLAG_REPORTING, ami_status, AST_MODULE_SELF,
	    "Show the ispd mirror's status", "Sessions with ispd, records "
	    "mirrored and the contacts made of them.") ||
	    ast_custom_function_register(&place_function) ||
	    ast_custom_function_register(&serves_function))
		return -1;
	return 0;
}

void
cli_shutdown(void)
{
	ast_cli_unregister_multiple(cli_entries, ARRAY_LEN(cli_entries));
	ast_manager_unregister("ISPStatus");
	ast_custom_function_unregister(&place_function);
	ast_custom_function_unregister(&serves_function);
}
