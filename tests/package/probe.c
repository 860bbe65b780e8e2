/*
 * probe: a libisp program built against the installed libisp-dev
 * (scripts/check-package.sh compiles it with pkg-config, shared and
 * static). It announces a record into ispd at HOST:PORT, reads it back
 * through a mirror on a second client, and checks the library's version
 * against the header's. Prints what it found; exits 0 when all is right.
 *
 * Usage: probe HOST:PORT
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <isp.h>
#include <isp_place.h>

#define TABLE	"package.probe"
#define KEY	"probe-key"
#define VALUE	"installed"

static isp_client *
client(const char *server, const char *name)
{
	struct isp_options	 o;
	isp_client		*c;

	isp_options_init(&o);
	o.server = server;
	o.name = name;
	if ((c = isp_new(&o)) == NULL) {
		fprintf(stderr, "probe: isp_new failed\n");
		return NULL;
	}
	if (isp_connect(c) != ISP_OK) {
		fprintf(stderr, "probe: connect %s: %s\n", server,
		    isp_errmsg(c));
		isp_free(c);
		return NULL;
	}
	return c;
}

int
main(int argc, char **argv)
{
	struct isp_field	 f = { "state", VALUE, sizeof(VALUE) - 1 };
	struct isp_record	*r = NULL;
	isp_client		*pub, *sub;
	isp_mirror		*m;
	const char		*id = "probe";
	time_t			 end;
	int			 ok = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: probe HOST:PORT\n");
		return 2;
	}
	if (strcmp(isp_version(), ISP_VERSION) != 0) {
		fprintf(stderr, "probe: library %s, header %s\n", isp_version(),
		    ISP_VERSION);
		return 1;
	}
	/* isp_place.h links too: one id is its own pick. */
	if (isp_place_pick(&id, NULL, 1, "account", 7) != 0) {
		fprintf(stderr, "probe: isp_place_pick failed\n");
		return 1;
	}
	if ((pub = client(argv[1], "probe-pub")) == NULL)
		return 1;
	if (isp_announce(pub, TABLE, KEY, strlen(KEY), &f, 1, 0) != ISP_OK ||
	    isp_sync(pub, 5000) != ISP_OK) {
		fprintf(stderr, "probe: announce: %s\n", isp_errmsg(pub));
		return 1;
	}
	if ((sub = client(argv[1], "probe-sub")) == NULL)
		return 1;
	if ((m = isp_mirror_new(sub, TABLE, NULL, 0, NULL, NULL)) == NULL) {
		fprintf(stderr, "probe: mirror: %s\n", isp_errmsg(sub));
		return 1;
	}
	/* Until the snapshot has ended, 5 s at most. */
	end = time(NULL) + 5;
	while (!isp_mirror_ready(m) && time(NULL) < end)
		if (isp_run(sub, 100) != ISP_OK)
			break;
	if (isp_mirror_ready(m) &&
	    (r = isp_mirror_get(m, KEY, strlen(KEY))) != NULL &&
	    r->nfields == 1 && strcmp(r->fields[0].name, "state") == 0 &&
	    r->fields[0].value_len == strlen(VALUE) &&
	    memcmp(r->fields[0].value, VALUE, strlen(VALUE)) == 0 &&
	    strcmp(r->owner, "probe-pub") == 0)
		ok = 1;
	if (ok)
		printf("probe: libisp %s: announced %s in %s and read it back\n",
		    isp_version(), KEY, TABLE);
	else
		fprintf(stderr, "probe: %s not read back (ready %d, %zu "
		    "records)\n", KEY, isp_mirror_ready(m), isp_mirror_count(m));
	isp_record_free(r);
	isp_mirror_free(m);
	isp_free(sub);
	isp_free(pub);
	return ok ? 0 : 1;
}
