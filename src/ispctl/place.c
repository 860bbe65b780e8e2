/*
 * ispctl place ROLE ACCOUNT: which live instance of ROLE serves ACCOUNT,
 * by the rendezvous hashing of libisp (include/isp_place.h), from a
 * mirror of the INSTANCES table. Prints "ID SIP-ADDRESS" (or, with
 * --json, the instance's record as one JSON object).
 *
 * Exit codes as the rest of ispctl (ispctl.h): 0 found, 1 no live
 * instance of the role (or no INSTANCES table at all), 2 usage, 3
 * cannot reach ispd, 4 refused.
 *
 * The server is -s HOST:PORT given after the command, else the first of
 * ispctl's servers ($ISPD_SERVER, set by main()), else the default.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isp.h"
#include "isp_place.h"
#include "ispctl.h"

/* ispctl.c: the global options every client of ispctl takes. */
void	ispctl_options(struct isp_options *);

#define PLACE_TIMEOUT_MS	10000

int	 cmd_place(int argc, char **argv);

static const char *
place_field(const struct isp_record *r, const char *name)
{
	size_t	 i;

	for (i = 0; i < r->nfields; i++)
		if (strcmp(r->fields[i].name, name) == 0)
			return r->fields[i].value;
	return "";
}

int
cmd_place(int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct isp_options	 o;
	struct isp_record	*r = NULL;
	isp_client		*c;
	isp_mirror		*m;
	const char		*server;
	size_t			 i;
	int			 ch, rc, waited = 0;

	if ((server = getenv("ISPD_SERVER")) == NULL || *server == '\0')
		server = ISP_DEFAULT_SERVER;
	optind = 0;	/* glibc: start over, permuting: options anywhere */
	while ((ch = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
		if (ch == 's')
			server = optarg;
		else
			usage(NULL);
	}
	if (argc - optind != 2)
		usage("place needs ROLE and ACCOUNT");

	isp_options_init(&o);
	o.server = server;
	o.name = "ispctl";
	ispctl_options(&o);	/* name, TLS, secret (ispctl.c) */
	if ((c = isp_new(&o)) == NULL)
		die(EXIT_UNREACHED, "out of memory");
	if ((rc = isp_connect(c)) != ISP_OK) {
		fprintf(stderr, "ispctl: %s\n", isp_errmsg(c));
		isp_free(c);
		return exit_for(rc);
	}
	/* A mirror would create the table: where no instance ever
	 * announced itself, say so instead. */
	if (!table_exists(c, ISP_INSTANCES_TABLE)) {
		fprintf(stderr, "ispctl: no live instance with role \"%s\": "
		    "ispd has no %s table (no instance has announced "
		    "itself)\n", argv[optind], ISP_INSTANCES_TABLE);
		isp_free(c);
		return EXIT_NOTFOUND;
	}
	if ((m = isp_mirror_new(c, ISP_INSTANCES_TABLE, NULL, 0, NULL,
	    NULL)) == NULL) {
		fprintf(stderr, "ispctl: cannot mirror %s: %s\n",
		    ISP_INSTANCES_TABLE, lib_error(c));
		isp_free(c);
		return EXIT_UNREACHED;
	}
	while (!isp_mirror_ready(m) && waited < PLACE_TIMEOUT_MS) {
		if ((rc = isp_run(c, 100)) != ISP_OK) {
			fprintf(stderr, "ispctl: %s\n", isp_errmsg(c));
			isp_free(c);
			return exit_for(rc);
		}
		waited += 100;
	}
	rc = isp_place(m, argv[optind], argv[optind + 1],
	    strlen(argv[optind + 1]), &r);
	if (rc == ISP_E_STATE) {
		fprintf(stderr, "ispctl: no snapshot of %s from %s within "
		    "%d ms\n", ISP_INSTANCES_TABLE, server, PLACE_TIMEOUT_MS);
		isp_free(c);
		return EXIT_UNREACHED;
	}
	if (rc == ISP_E_NOT_FOUND) {
		fprintf(stderr, "ispctl: no live instance with role \"%s\" "
		    "in %s\n", argv[optind], ISP_INSTANCES_TABLE);
		isp_free(c);
		return EXIT_NOTFOUND;
	}
	if (rc != ISP_OK) {
		fprintf(stderr, "ispctl: place: %s\n", isp_strerror(rc));
		isp_free(c);
		return exit_for(rc);
	}
	if (json) {
		printf("{\"instance\":");
		json_str(r->key, r->key_len);
		printf(",\"account\":");
		json_str(argv[optind + 1], strlen(argv[optind + 1]));
		printf(",\"fields\":{");
		for (i = 0; i < r->nfields; i++) {
			if (i > 0)
				putchar(',');
			json_str(r->fields[i].name, strlen(r->fields[i].name));
			putchar(':');
			json_str(r->fields[i].value, r->fields[i].value_len);
		}
		printf("}}\n");
	} else
		printf("%.*s %s\n", (int)r->key_len, (const char *)r->key,
		    place_field(r, "uri"));
	isp_record_free(r);
	isp_free(c);
	return 0;
}
