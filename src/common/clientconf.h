/*
 * clientconf: what the programs built on libisp (ispctl, isp-registrar,
 * isp-locator) share on their command line: the servers (several
 * redundant reflectors, docs/HA.md), TLS, the shared secret, and for the
 * daemons a configuration file of their own options.
 *
 * Servers are given as a list separated by commas or blanks, in one
 * option or several, or in $ISPD_SERVER when no option gives any (the
 * spelling ispctl has always taken). A secret file's first line is the
 * secret; a file every user may read is refused, as ssh refuses such a
 * private key.
 *
 * The configuration file has the line syntax of ispd's (docs/CONFIG.md):
 * one "keyword value" a line, '#' starting a comment at the start of a
 * word, blank lines ignored. Its keywords are the program's long options
 * without "--"; a flag takes "yes" or "no". clientconf_args() turns it
 * into "--keyword=value" arguments placed before the command line's, so
 * the program's one getopt loop reads both and the command line, read
 * last, wins. Linked into ispctl and the SIP services only (not into
 * libisp, nor ispd).
 */
#ifndef ISP_CLIENTCONF_H
#define ISP_CLIENTCONF_H

#include <getopt.h>
#include <stddef.h>

#include "isp.h"

#define CLIENTCONF_SECRET_MAX	1024

struct clientconf {
	const char	*servers[ISP_MAX_SERVERS];
	size_t		 nservers;
	char		*lists[ISP_MAX_SERVERS];	/* copies the servers
							 * point into */
	size_t		 nlists;
	int		 tls;
	const char	*tls_ca;
	const char	*tls_cert;
	const char	*tls_key;
	const char	*tls_server_name;
	char		 secret[CLIENTCONF_SECRET_MAX + 1];
	int		 have_secret;
	char		 names[512];	/* "A, B" for log lines */
};

void	 clientconf_init(struct clientconf *);
void	 clientconf_free(struct clientconf *);
/* Adds the servers of list ("A,B" or "A B"). Returns 0, or -1 with a
 * sentence in err (too many, none in the list, out of memory). */
int	 clientconf_add_servers(struct clientconf *, const char *list,
	    char *err, size_t errlen);
/* Forgets the servers given so far (the command line replacing the
 * file's). */
void	 clientconf_clear_servers(struct clientconf *);
/* When no server was given: those of $ISPD_SERVER, else
 * ISP_DEFAULT_SERVER. Fills names. Returns 0 or -1 as above. */
int	 clientconf_finish(struct clientconf *, char *err, size_t errlen);
/* Reads the secret from the first line of path (blanks around it
 * dropped). Returns 0, or -1 with a sentence in err: unreadable, empty,
 * or readable by every user. */
int	 clientconf_secret_read(struct clientconf *, const char *path,
	    char *err, size_t errlen);
/* The checks that need no server: a certificate and a key go together;
 * the TLS files can be read. Returns 0 or -1 with a sentence. */
int	 clientconf_check(const struct clientconf *, char *err,
	    size_t errlen);
/*
 * The TLS and secret options every program built on libisp takes, as
 * getopt values: CLIENTCONF_OPTIONS goes into the program's struct
 * option table (with <getopt.h>), and clientconf_option() takes what
 * getopt_long() returned.
 */
enum {
	CLIENTCONF_O_TLS = 2000,
	CLIENTCONF_O_TLS_CA,
	CLIENTCONF_O_TLS_CERT,
	CLIENTCONF_O_TLS_KEY,
	CLIENTCONF_O_TLS_SERVER_NAME,
	CLIENTCONF_O_SECRET_FILE,
};
#define CLIENTCONF_OPTIONS \
	{ "tls", no_argument, NULL, CLIENTCONF_O_TLS }, \
	{ "tls-ca", required_argument, NULL, CLIENTCONF_O_TLS_CA }, \
	{ "tls-cert", required_argument, NULL, CLIENTCONF_O_TLS_CERT }, \
	{ "tls-key", required_argument, NULL, CLIENTCONF_O_TLS_KEY }, \
	{ "tls-server-name", required_argument, NULL, \
	    CLIENTCONF_O_TLS_SERVER_NAME }, \
	{ "secret-file", required_argument, NULL, CLIENTCONF_O_SECRET_FILE }
/* Takes option ch of CLIENTCONF_OPTIONS, with its argument, into cc;
 * each TLS option implies --tls. Returns 1 when ch is one of them, 0
 * when it is not, -1 with a sentence in err for a bad secret file. */
int	 clientconf_option(struct clientconf *, int ch, const char *arg,
	    char *err, size_t errlen);
/* Sets servers, TLS and the secret in o. */
void	 clientconf_apply(const struct clientconf *, struct isp_options *);

/*
 * The configuration file: finds --config FILE (or --config=FILE) in
 * argv, reads FILE and returns in *out a new argument vector: argv[0],
 * the file's settings as "--keyword=value", then argv[1..]. Relative
 * paths of the keywords named in paths (NULL-terminated) are taken from
 * the file's directory. "config", "help" and "version" are refused in
 * the file, as is a keyword given twice unless it is named in
 * repeatable. Returns the new argc (argc itself and *out = argv when
 * there is no --config), or -1 after printing "FILE:LINE: message" (or
 * "PROG: FILE: message") lines on stderr for every error.
 */
int	 clientconf_args(const char *prog, int argc, char **argv,
	    const struct option *opts, const char *const *paths,
	    const char *const *repeatable, char ***out);
/* Frees what clientconf_args() made, once the arguments are no longer
 * used (at the end of the program). */
void	 clientconf_args_free(void);
/* 1 when the option getopt_long() just returned came from the file:
 * call it with optind, inside the loop. */
int	 clientconf_from_file(int optind_now);
/* "FILE:LINE: " for the option just returned when it came from the
 * file, else "" (for messages about its value). */
const char	*clientconf_where(int optind_now);

#endif
