/*
 * ispctl: what its commands share (ispctl.c, place.c).
 *
 * Exit codes: 0 ok; 1 not found (no such table, key or live instance);
 * 2 usage (bad arguments or input); 3 cannot reach ispd (connect, TLS,
 * timeout, session lost) or failed locally; 4 refused by ispd (a rule,
 * a read-only table, a limit, authentication, another owner's record).
 */
#ifndef ISPCTL_H
#define ISPCTL_H

#include <stddef.h>

#include "isp.h"

#define EXIT_NOTFOUND	1
#define EXIT_USAGE	2
#define EXIT_UNREACHED	3
#define EXIT_REFUSED	4

extern int	 json;		/* --json, anywhere on the command line */

/* Prints "ispctl: " and the message, frees the command's client, exits
 * with code. */
void		 die(int code, const char *fmt, ...)
		    __attribute__((noreturn, format(printf, 2, 3)));
/* A usage error: the message (when fmt is set) and a hint, exit 2. */
void		 usage(const char *fmt, ...)
		    __attribute__((noreturn, format(printf, 1, 2)));
/* The exit code for an ISP_* code, from the library or from ispd. */
int		 exit_for(int err);
/* The library's last error text without the name of the call, so that
 * it speaks of what the user did. */
const char	*lib_error(isp_client *);
/* A one-shot client: the first server of the list that answers. */
isp_client	*connect_or_die(void);
/* Frees a client and forgets it. */
void		 client_done(isp_client *);
/* 1 when ispd has a table of that name, 0 when not; dies when it
 * cannot ask. */
int		 table_exists(isp_client *, const char *table);
/* A JSON string of bytes: valid UTF-8 as it is, other bytes as
 * U+FFFD. */
void		 json_str(const void *, size_t);

#endif
