/*
 * res_sorcery_isp_memory: an in-memory sorcery wizard, "isp_memory", for
 * PJSIP contacts by the hundred thousand.
 *
 * Asterisk's own "memory" wizard keeps every object of a type in one
 * hash of 53 buckets: a lookup by id walks a chain of n/53 objects, and
 * the contacts of one AOR (ast_sip_location_retrieve_aor_contacts(), on
 * every call, registration and device state) are found by walking all
 * of them. With every registration of a pool on every Asterisk, n is
 * large: at 100,000 contacts a create spends ~0.2 ms in that chain.
 *
 * This wizard keeps the same objects in a hash sized for that
 * (BUCKETS, or the number given in sorcery.conf: contact=isp_memory,N),
 * and an index by the part of the id before ";@" (PJSIP names a dynamic
 * contact "<aor>;@<hash>"), so a prefix "<aor>;@" is answered from that
 * AOR's contacts alone. Anything else behaves as "memory" does: create
 * refuses an id that is there, update replaces, retrieval by fields or
 * regex walks everything. Nothing is written anywhere.
 *
 * It has no tie to ispd and loads before res_pjsip (load order
 * REALTIME_DRIVER, like res_sorcery_memory), so sorcery.conf can name it:
 *
 *	[res_pjsip]
 *	contact=isp_memory
 *
 * Locking: one read-write lock per object type (the ao2 lock of struct
 * store) guards both containers, which have no locks of their own.
 */
#include "asterisk.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "asterisk/astobj2.h"
#include "asterisk/config.h"
#include "asterisk/module.h"
#include "asterisk/sorcery.h"
#include "asterisk/strings.h"

#define BUCKETS		65521	/* a prime; ~15 per chain at 1,000,000 */
#define BUCKETS_MAX	16777213
#define GROUP_SEP	";@"

struct store {
	struct ao2_container	*objects;	/* by id */
	struct ao2_container	*groups;	/* struct group, by name */
};

/* The objects whose id starts with "<name>;@". */
struct group {
	struct ao2_container	*members;	/* a list, by id */
	char			 name[];
};

static int
obj_hash(const void *obj, const int flags)
{
	return ast_str_hash((flags & OBJ_SEARCH_MASK) == OBJ_SEARCH_KEY ?
	    (const char *)obj : ast_sorcery_object_get_id(obj));
}

static int
obj_cmp(void *obj, void *arg, int flags)
{
	const char	*id = (flags & OBJ_SEARCH_MASK) == OBJ_SEARCH_KEY ?
			    arg : ast_sorcery_object_get_id(arg);

	return strcmp(ast_sorcery_object_get_id(obj), id) == 0 ?
	    CMP_MATCH | CMP_STOP : 0;
}

static int
group_hash(const void *obj, const int flags)
{
	return ast_str_hash((flags & OBJ_SEARCH_MASK) == OBJ_SEARCH_KEY ?
	    (const char *)obj : ((const struct group *)obj)->name);
}

static int
group_cmp(void *obj, void *arg, int flags)
{
	const char	*name = (flags & OBJ_SEARCH_MASK) == OBJ_SEARCH_KEY ?
			    arg : ((struct group *)arg)->name;

	return strcmp(((struct group *)obj)->name, name) == 0 ?
	    CMP_MATCH | CMP_STOP : 0;
}

static void
group_destroy(void *obj)
{
	ao2_cleanup(((struct group *)obj)->members);
}

static void
store_destroy(void *obj)
{
	struct store	*s = obj;

	ao2_cleanup(s->objects);
	ao2_cleanup(s->groups);
}

/* The length of the group part of an id, or -1 when it has none. */
static ssize_t
group_len(const char *id)
{
	const char	*sep = strstr(id, GROUP_SEP);

	return sep != NULL ? sep - id : -1;
}

/* Indexes obj under its group. Under the write lock. */
static int
group_add(struct store *s, void *obj)
{
	const char	*id = ast_sorcery_object_get_id(obj);
	ssize_t		 len = group_len(id);
	struct group	*g;
	char		*name;

	if (len < 0)
		return 0;
	name = ast_strndup(id, (size_t)len);
	if (name == NULL)
		return -1;
	if ((g = ao2_find(s->groups, name, OBJ_SEARCH_KEY | OBJ_NOLOCK)) == NULL) {
		g = ao2_alloc_options(sizeof(*g) + (size_t)len + 1,
		    group_destroy, AO2_ALLOC_OPT_LOCK_NOLOCK);
		if (g == NULL) {
			ast_free(name);
			return -1;
		}
		memcpy(g->name, name, (size_t)len + 1);
		g->members = ao2_container_alloc_list(AO2_ALLOC_OPT_LOCK_NOLOCK,
		    0, NULL, obj_cmp);
		if (g->members == NULL) {
			ao2_ref(g, -1);
			ast_free(name);
			return -1;
		}
		ao2_link_flags(s->groups, g, OBJ_NOLOCK);
	}
	ast_free(name);
	ao2_link_flags(g->members, obj, OBJ_NOLOCK);
	ao2_ref(g, -1);
	return 0;
}

/* Takes the object of that id out of its group. Under the write lock. */
static void
group_remove(struct store *s, const char *id)
{
	ssize_t		 len = group_len(id);
	struct group	*g;
	char		*name;

	if (len < 0 || (name = ast_strndup(id, (size_t)len)) == NULL)
		return;
	if ((g = ao2_find(s->groups, name, OBJ_SEARCH_KEY | OBJ_NOLOCK)) != NULL) {
		ao2_find(g->members, id, OBJ_SEARCH_KEY | OBJ_UNLINK |
		    OBJ_NODATA | OBJ_NOLOCK);
		if (ao2_container_count(g->members) == 0)
			ao2_unlink_flags(s->groups, g, OBJ_NOLOCK);
		ao2_ref(g, -1);
	}
	ast_free(name);
}

static void *
isp_memory_open(const char *data)
{
	struct store	*s;
	long		 buckets = BUCKETS;
	char		*end;

	if (!ast_strlen_zero(data)) {
		buckets = strtol(data, &end, 10);
		if (*end != '\0' || buckets < 1 || buckets > BUCKETS_MAX) {
			ast_log(LOG_ERROR, "sorcery wizard isp_memory: '%s' is "
			    "not a number of buckets (1 to %d)\n", data,
			    BUCKETS_MAX);
			return NULL;
		}
	}
	if ((s = ao2_alloc_options(sizeof(*s), store_destroy,
	    AO2_ALLOC_OPT_LOCK_RWLOCK)) == NULL)
		return NULL;
	s->objects = ao2_container_alloc_hash(AO2_ALLOC_OPT_LOCK_NOLOCK, 0,
	    (unsigned)buckets, obj_hash, NULL, obj_cmp);
	s->groups = ao2_container_alloc_hash(AO2_ALLOC_OPT_LOCK_NOLOCK, 0,
	    (unsigned)buckets, group_hash, NULL, group_cmp);
	if (s->objects == NULL || s->groups == NULL) {
		ao2_ref(s, -1);
		return NULL;
	}
	return s;
}

static void
isp_memory_close(void *data)
{
	ao2_ref(data, -1);
}

static int
isp_memory_create(const struct ast_sorcery *sorcery, void *data, void *object)
{
	struct store	*s = data;
	const char	*id = ast_sorcery_object_get_id(object);
	void		*there;
	int		 rc = 0;

	ao2_wrlock(s);
	if ((there = ao2_find(s->objects, id, OBJ_SEARCH_KEY | OBJ_NOLOCK)) != NULL) {
		ao2_ref(there, -1);
		rc = -1;
	} else if (group_add(s, object) != 0) {
		rc = -1;
	} else {
		ao2_link_flags(s->objects, object, OBJ_NOLOCK);
	}
	ao2_unlock(s);
	return rc;
}

static int
isp_memory_update(const struct ast_sorcery *sorcery, void *data, void *object)
{
	struct store	*s = data;
	const char	*id = ast_sorcery_object_get_id(object);
	void		*old;
	int		 rc = 0;

	ao2_wrlock(s);
	old = ao2_find(s->objects, id, OBJ_SEARCH_KEY | OBJ_UNLINK | OBJ_NOLOCK);
	if (old == NULL && !ast_sorcery_update_or_create_on_update_miss) {
		rc = -1;
	} else {
		if (old != NULL)
			group_remove(s, id);
		if (group_add(s, object) != 0)
			rc = -1;
		else
			ao2_link_flags(s->objects, object, OBJ_NOLOCK);
	}
	ao2_unlock(s);
	ao2_cleanup(old);
	return rc;
}

static int
isp_memory_delete(const struct ast_sorcery *sorcery, void *data, void *object)
{
	struct store	*s = data;
	const char	*id = ast_sorcery_object_get_id(object);
	void		*old;

	ao2_wrlock(s);
	if ((old = ao2_find(s->objects, id, OBJ_SEARCH_KEY | OBJ_UNLINK |
	    OBJ_NOLOCK)) != NULL)
		group_remove(s, id);
	ao2_unlock(s);
	if (old == NULL)
		return -1;
	ao2_ref(old, -1);
	return 0;
}

static void *
isp_memory_retrieve_id(const struct ast_sorcery *sorcery, void *data,
    const char *type, const char *id)
{
	struct store	*s = data;
	void		*obj;

	ao2_rdlock(s);
	obj = ao2_find(s->objects, id, OBJ_SEARCH_KEY | OBJ_NOLOCK);
	ao2_unlock(s);
	return obj;
}

/* What a walk over every object looks for. */
struct match {
	const struct ast_sorcery	*sorcery;
	const struct ast_variable	*fields;	/* all of them, or NULL */
	regex_t				*regex;
	const char			*prefix;
	size_t				 prefix_len;
	struct ao2_container		*out;		/* NULL: the first */
};

static int
matches(void *obj, void *arg, int flags)
{
	struct match		*m = arg;
	struct ast_variable	*set;
	const char		*id = ast_sorcery_object_get_id(obj);
	int			 ok;

	if (m->regex != NULL)
		ok = regexec(m->regex, id, 0, NULL, 0) == 0;
	else if (m->prefix != NULL)
		ok = strncmp(id, m->prefix, m->prefix_len) == 0;
	else if (m->fields != NULL) {
		set = ast_sorcery_objectset_create(m->sorcery, obj);
		ok = set != NULL && ast_variable_lists_match(set, m->fields, 0);
		ast_variables_destroy(set);
	} else
		ok = 1;
	if (!ok)
		return 0;
	if (m->out == NULL)
		return CMP_MATCH | CMP_STOP;
	ao2_link(m->out, obj);
	return 0;
}

static void
walk(struct store *s, struct ao2_container *c, struct match *m)
{
	ao2_rdlock(s);
	ao2_callback(c, OBJ_NODATA | OBJ_NOLOCK, matches, m);
	ao2_unlock(s);
}

static void *
isp_memory_retrieve_fields(const struct ast_sorcery *sorcery, void *data,
    const char *type, const struct ast_variable *fields)
{
	struct store	*s = data;
	struct match	 m = { .sorcery = sorcery, .fields = fields };
	void		*obj;

	if (fields == NULL)	/* as "memory": something must be asked */
		return NULL;
	ao2_rdlock(s);
	obj = ao2_callback(s->objects, OBJ_NOLOCK, matches, &m);
	ao2_unlock(s);
	return obj;
}

static void
isp_memory_retrieve_multiple(const struct ast_sorcery *sorcery, void *data,
    const char *type, struct ao2_container *objects,
    const struct ast_variable *fields)
{
	struct store	*s = data;
	struct match	 m = { .sorcery = sorcery, .fields = fields,
			    .out = objects };

	walk(s, s->objects, &m);
}

static void
isp_memory_retrieve_regex(const struct ast_sorcery *sorcery, void *data,
    const char *type, struct ao2_container *objects, const char *regex)
{
	struct store	*s = data;
	regex_t		 re;
	struct match	 m = { .sorcery = sorcery, .regex = &re,
			    .out = objects };

	if (regcomp(&re, ast_strlen_zero(regex) ? "." : regex,
	    REG_EXTENDED | REG_NOSUB) != 0)
		return;
	walk(s, s->objects, &m);
	regfree(&re);
}

static void
isp_memory_retrieve_prefix(const struct ast_sorcery *sorcery, void *data,
    const char *type, struct ao2_container *objects, const char *prefix,
    const size_t prefix_len)
{
	struct store	*s = data;
	struct match	 m = { .sorcery = sorcery, .prefix = prefix,
			    .prefix_len = prefix_len, .out = objects };
	struct group	*g;
	ssize_t		 len;
	char		*name;

	/* "<aor>;@": every id it starts has its group there. */
	len = group_len(prefix);
	if (len < 0 || (size_t)len + strlen(GROUP_SEP) != prefix_len) {
		walk(s, s->objects, &m);
		return;
	}
	if ((name = ast_strndup(prefix, (size_t)len)) == NULL)
		return;
	ao2_rdlock(s);
	if ((g = ao2_find(s->groups, name, OBJ_SEARCH_KEY | OBJ_NOLOCK)) != NULL) {
		ao2_callback(g->members, OBJ_NODATA | OBJ_NOLOCK, matches, &m);
		ao2_ref(g, -1);
	}
	ao2_unlock(s);
	ast_free(name);
}

static struct ast_sorcery_wizard isp_memory_wizard = {
	.name = "isp_memory",
	.open = isp_memory_open,
	.close = isp_memory_close,
	.create = isp_memory_create,
	.retrieve_id = isp_memory_retrieve_id,
	.retrieve_fields = isp_memory_retrieve_fields,
	.retrieve_multiple = isp_memory_retrieve_multiple,
	.retrieve_regex = isp_memory_retrieve_regex,
	.retrieve_prefix = isp_memory_retrieve_prefix,
	.update = isp_memory_update,
	.delete = isp_memory_delete,
};

static int
load_module(void)
{
	if (ast_sorcery_wizard_register(&isp_memory_wizard) != 0)
		return AST_MODULE_LOAD_DECLINE;
	return AST_MODULE_LOAD_SUCCESS;
}

static int
unload_module(void)
{
	return ast_sorcery_wizard_unregister(&isp_memory_wizard);
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER,
	"Sorcery in-memory wizard, indexed by AOR",
	.support_level = AST_MODULE_SUPPORT_EXTENDED,
	.load = load_module,
	.unload = unload_module,
	.load_pri = AST_MODPRI_REALTIME_DRIVER,
);
