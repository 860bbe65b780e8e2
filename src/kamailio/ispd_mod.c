/*
 * ispd_mod: the Kamailio module "ispd" (docs/KAMAILIO.md). Parameters,
 * the start (usrloc bound, its callback registered, the socket pair and
 * the shared state made, the client process forked), the script
 * function isp_route() and the RPC commands ispd.status and
 * ispd.instances.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cfg/cfg_struct.h"
#include "core/dprint.h"
#include "core/ip_addr.h"
#include "core/mem/mem.h"
#include "core/mem/shm_mem.h"
#include "core/mod_fix.h"
#include "core/parser/msg_parser.h"
#include "core/pt.h"
#include "core/rpc.h"
#include "core/sr_module.h"

#include "isp.h"
#include "isp_place.h"
#include "isp_kamailio.h"

MODULE_VERSION

struct ispk_conf	 ispk;
struct ispk_shared	*ispk_shm;
usrloc_api_t		 ispk_ul;
udomain_t		*ispk_dom;
int			 ispk_sock[2] = { -1, -1 };
int			 ispk_in_client;

static char		*p_name, *p_table, *p_domain, *p_aor_domain;
static char		*p_secret_file, *p_tls_ca, *p_tls_cert, *p_tls_key;
static int		 p_tls, p_path = 1;

static int	 mod_init(void);
static int	 child_init(int);
static void	 mod_destroy(void);
static int	 w_isp_route(struct sip_msg *, char *, char *);
static int	 w_isp_from(struct sip_msg *, char *, char *);
static int	 set_server(modparam_t, void *);

static cmd_export_t cmds[] = {
	{ "isp_route", (cmd_function)w_isp_route, 2, fixup_spve_spve,
	    fixup_free_spve_spve, REQUEST_ROUTE | FAILURE_ROUTE |
	    BRANCH_ROUTE },
	{ "isp_from", (cmd_function)w_isp_from, 1, fixup_spve_null,
	    fixup_free_spve_null, ANY_ROUTE },
	{ 0, 0, 0, 0, 0, 0 }
};

static param_export_t params[] = {
	{ "server", PARAM_STRING | PARAM_USE_FUNC, (void *)set_server },
	{ "name", PARAM_STRING, &p_name },
	{ "table", PARAM_STRING, &p_table },
	{ "usrloc_domain", PARAM_STRING, &p_domain },
	{ "aor_domain", PARAM_STRING, &p_aor_domain },
	{ "secret_file", PARAM_STRING, &p_secret_file },
	{ "tls", INT_PARAM, &p_tls },
	{ "tls_ca", PARAM_STRING, &p_tls_ca },
	{ "tls_cert", PARAM_STRING, &p_tls_cert },
	{ "tls_key", PARAM_STRING, &p_tls_key },
	{ "path", INT_PARAM, &p_path },
	{ 0, 0, 0 }
};

static const char *rpc_status_doc[] = {
	"Sessions up, records published and withdrawn, remote contacts.", 0
};
static const char *rpc_instances_doc[] = {
	"The live instances of INSTANCES that isp_route() chooses from.", 0
};

static void	 rpc_status(rpc_t *, void *);
static void	 rpc_instances(rpc_t *, void *);

static rpc_export_t rpcs[] = {
	{ "ispd.status", rpc_status, rpc_status_doc, 0 },
	{ "ispd.instances", rpc_instances, rpc_instances_doc, RET_ARRAY },
	{ 0, 0, 0, 0 }
};

struct module_exports exports = {
	"ispd",
	DEFAULT_DLFLAGS,
	cmds,
	params,
	rpcs,
	0,		/* pseudo-variables */
	0,		/* response function */
	mod_init,
	child_init,
	mod_destroy
};

/* modparam("ispd", "server", "HOST:PORT"), once per reflector. */
static int
set_server(modparam_t type, void *val)
{
	char	 host[256], port[16];
	char	*s = (char *)val;

	if (ispk.nservers == ISPK_MAX_SERVERS) {
		LM_ERR("modparam server \"%s\": at most %d servers\n", s,
		    ISPK_MAX_SERVERS);
		return -1;
	}
	/* HOST:PORT or [V6]:PORT, as libisp takes it. */
	if (sscanf(s, "%255[^:]:%15[0-9]", host, port) != 2 &&
	    sscanf(s, "[%255[^]]]:%15[0-9]", host, port) != 2) {
		LM_ERR("modparam server \"%s\": not HOST:PORT\n", s);
		return -1;
	}
	if (atoi(port) < 1 || atoi(port) > 65535) {
		LM_ERR("modparam server \"%s\": port out of 1..65535\n", s);
		return -1;
	}
	ispk.servers[ispk.nservers++] = s;
	return 0;
}

/* The secret: the first line of a file only its owner may read. */
static int
read_secret(const char *path)
{
	char	 line[1025];
	FILE	*f;
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL) {
		LM_ERR("modparam secret_file \"%s\": %s\n", path,
		    strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL) {
		fclose(f);
		LM_ERR("modparam secret_file \"%s\": empty\n", path);
		return -1;
	}
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0 || (ispk.secret = strdup(line)) == NULL) {
		LM_ERR("modparam secret_file \"%s\": no secret on its first "
		    "line\n", path);
		return -1;
	}
	return 0;
}

static int
mod_init(void)
{
	bind_usrloc_t	 bind_usrloc;
	static char	 defname[300];
	char		 host[256];
	int		 bufsz = 4 * 1024 * 1024;

	if (ispk.nservers == 0)
		ispk.servers[ispk.nservers++] = ISP_DEFAULT_SERVER;
	if (p_name == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(defname, sizeof(defname), "kamailio@%s", host);
		p_name = defname;
	}
	if (strlen(p_name) == 0 || strlen(p_name) > 64 ||
	    strchr(p_name, ' ') != NULL) {
		LM_ERR("modparam name \"%s\": 1 to 64 characters, no space\n",
		    p_name);
		return -1;
	}
	ispk.name = p_name;
	ispk.table = p_table != NULL ? p_table : "SIP_REGISTRATION";
	ispk.domain = p_domain != NULL ? p_domain : "location";
	ispk.aor_domain = p_aor_domain;
	ispk.tls = p_tls != 0 || p_tls_ca != NULL || p_tls_cert != NULL;
	ispk.tls_ca = p_tls_ca;
	ispk.tls_cert = p_tls_cert;
	ispk.tls_key = p_tls_key;
	ispk.path = p_path != 0;
	if ((p_tls_cert == NULL) != (p_tls_key == NULL)) {
		LM_ERR("modparam tls_cert and tls_key go together\n");
		return -1;
	}
	if (p_secret_file != NULL && read_secret(p_secret_file) != 0)
		return -1;

	if ((bind_usrloc = (bind_usrloc_t)(void *)find_export("ul_bind_usrloc",
	    1, 0)) == NULL || bind_usrloc(&ispk_ul) < 0) {
		LM_ERR("cannot bind usrloc: load the usrloc module before "
		    "ispd\n");
		return -1;
	}
	if (ispk_ul.db_mode != 0)
		LM_WARN("usrloc db_mode is %d: contacts of other instances "
		    "are kept in memory only (usrloc's db_mode 0 is what "
		    "this module is made for)\n", ispk_ul.db_mode);
	if (ispk_ul.register_udomain(ispk.domain, &ispk_dom) < 0) {
		LM_ERR("cannot register usrloc domain \"%s\"\n", ispk.domain);
		return -1;
	}
	if (ispk_ul.register_ulcb(UL_CONTACT_INSERT | UL_CONTACT_UPDATE |
	    UL_CONTACT_DELETE | UL_CONTACT_EXPIRE, ispk_ul_cb, 0) < 0) {
		LM_ERR("cannot register the usrloc callbacks\n");
		return -1;
	}
	if ((ispk_shm = shm_malloc(sizeof(*ispk_shm))) == NULL) {
		SHM_MEM_ERROR;
		return -1;
	}
	memset(ispk_shm, 0, sizeof(*ispk_shm));
	if (lock_init(&ispk_shm->lock) == NULL) {
		LM_ERR("cannot make a lock\n");
		return -1;
	}
	/* Datagrams: each change whole, from any number of workers. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ispk_sock) != 0) {
		LM_ERR("socketpair: %s\n", strerror(errno));
		return -1;
	}
	(void)setsockopt(ispk_sock[1], SOL_SOCKET, SO_SNDBUF, &bufsz,
	    sizeof(bufsz));
	(void)setsockopt(ispk_sock[0], SOL_SOCKET, SO_RCVBUF, &bufsz,
	    sizeof(bufsz));
	register_procs(1);
	cfg_register_child(1);
	LM_INFO("ispd: %d server(s), client name %s, table %s, usrloc "
	    "domain %s\n", ispk.nservers, ispk.name, ispk.table, ispk.domain);
	return 0;
}

static int
child_init(int rank)
{
	int	 pid;

	if (rank != PROC_MAIN)
		return 0;
	if ((pid = fork_process(PROC_NOCHLDINIT, "ispd client", 1)) < 0)
		return -1;
	if (pid == 0) {
		if (cfg_child_init() != 0)
			return -1;
		close(ispk_sock[1]);
		ispk_client_main();	/* never returns */
	}
	return 0;
}

static void
mod_destroy(void)
{
	if (ispk_shm != NULL) {
		lock_destroy(&ispk_shm->lock);
		shm_free(ispk_shm);
		ispk_shm = NULL;
	}
}

/*
 * isp_route(role, account): $du set to the instance that serves the
 * account (rendezvous over the live, not draining, instances of the
 * role, as isp_place() picks); 1, or -1 when none is live.
 */
static int
w_isp_route(struct sip_msg *msg, char *p1, char *p2)
{
	const char	*ids[ISPK_MAX_INSTANCES];
	int		 at[ISPK_MAX_INSTANCES];	/* ids[k] is instance at[k] */
	char		 dst[ISPK_URI_MAX];
	str		 role, account, uri;
	long		 pick;
	size_t		 n = 0;
	int		 i;

	if (get_str_fparam(&role, msg, (fparam_t *)p1) != 0 ||
	    get_str_fparam(&account, msg, (fparam_t *)p2) != 0) {
		LM_ERR("isp_route: cannot read its parameters\n");
		return -1;
	}
	lock_get(&ispk_shm->lock);
	for (i = 0; i < ispk_shm->ninstances; i++) {
		struct ispk_instance	*in = &ispk_shm->instances[i];

		if (in->draining || (int)strlen(in->role) != role.len ||
		    memcmp(in->role, role.s, (size_t)role.len) != 0 ||
		    in->uri[0] == '\0')
			continue;
		at[n] = i;
		ids[n++] = in->id;
	}
	pick = isp_place_pick(ids, NULL, n, account.s, (size_t)account.len);
	if (pick >= 0)
		memcpy(dst, ispk_shm->instances[at[pick]].uri, sizeof(dst));
	lock_release(&ispk_shm->lock);
	if (pick < 0)
		return -1;
	uri.s = dst;
	uri.len = (int)strlen(dst);
	if (set_dst_uri(msg, &uri) != 0) {
		LM_ERR("isp_route: cannot set the destination %s\n", uri.s);
		return -1;
	}
	return 1;
}

/*
 * isp_from(role): 1 when the request came from a live instance of the
 * role (its source address is the host and port of the instance's uri),
 * else -1. A BGW tells the pool's requests from the phones' with it.
 */
static int
w_isp_from(struct sip_msg *msg, char *p1, char *p2)
{
	str	 role;
	char	*src;
	int	 i, found = 0;

	if (get_str_fparam(&role, msg, (fparam_t *)p1) != 0) {
		LM_ERR("isp_from: cannot read its parameter\n");
		return -1;
	}
	src = ip_addr2a(&msg->rcv.src_ip);
	lock_get(&ispk_shm->lock);
	for (i = 0; i < ispk_shm->ninstances && !found; i++) {
		struct ispk_instance	*in = &ispk_shm->instances[i];

		found = (int)strlen(in->role) == role.len &&
		    memcmp(in->role, role.s, (size_t)role.len) == 0 &&
		    in->port == msg->rcv.src_port &&
		    strcmp(in->host, src) == 0;
	}
	lock_release(&ispk_shm->lock);
	return found ? 1 : -1;
}

static void
rpc_status(rpc_t *rpc, void *ctx)
{
	struct ispk_counters	 s;
	void			*h;

	lock_get(&ispk_shm->lock);
	s = ispk_shm->n;
	lock_release(&ispk_shm->lock);
	if (rpc->add(ctx, "{", &h) < 0)
		return;
	rpc->struct_add(h, "sddddddd", "name", ispk.name,
	    "servers", ispk.nservers, "up", s.nup,
	    "published", (int)s.published, "withdrawn", (int)s.withdrawn,
	    "remote", (int)s.remote, "events", (int)s.events,
	    "dropped", (int)s.dropped);
}

static void
rpc_instances(rpc_t *rpc, void *ctx)
{
	struct ispk_instance	 v[ISPK_MAX_INSTANCES];
	void			*h;
	int			 n, i;

	lock_get(&ispk_shm->lock);
	n = ispk_shm->ninstances;
	memcpy(v, ispk_shm->instances, sizeof(v[0]) * (size_t)n);
	lock_release(&ispk_shm->lock);
	for (i = 0; i < n; i++) {
		if (rpc->add(ctx, "{", &h) < 0)
			return;
		rpc->struct_add(h, "ssss", "id", v[i].id, "role", v[i].role,
		    "uri", v[i].uri, "status", v[i].draining ? "draining" :
		    "up");
	}
}
