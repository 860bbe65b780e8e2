/*
 * addr: the "HOST:PORT" of every listener (ispd's protocol ports, the
 * metrics endpoints): splitting it, printing a bound address, and
 * telling loopback from the rest.
 */
#ifndef ISP_ADDR_H
#define ISP_ADDR_H

#include <sys/socket.h>

#include <stddef.h>

/*
 * Splits "HOST:PORT" or "[IPV6]:PORT" into host and port text. An empty
 * host means empty_host, "*" every IPv4 address ("0.0.0.0"). Returns 0,
 * or -1 when spec is not of that form, the port is not 0..65535 or the
 * host does not fit hostsz.
 */
int	addr_split(const char *spec, const char *empty_host, char *host,
	    size_t hostsz, char *port, size_t portsz);
/* "127.0.0.1:5555" or "[::1]:5555". */
void	addr_format(const struct sockaddr_storage *, char *dst, size_t dstsz);
/* 1 for 127.0.0.0/8 and ::1. */
int	addr_is_loopback(const struct sockaddr_storage *);

#endif
