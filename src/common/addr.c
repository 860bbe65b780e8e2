/*
 * addr: listener addresses (addr.h).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int
addr_split(const char *spec, const char *empty_host, char *host,
    size_t hostsz, char *port, size_t portsz)
{
	const char	*end, *p;
	size_t		 hostlen;
	long		 v;

	if (spec[0] == '[') {
		if ((end = strchr(spec, ']')) == NULL || end[1] != ':')
			return -1;
		hostlen = (size_t)(end - spec - 1);
		if (hostlen == 0)
			return -1;
		spec++;
		p = end + 2;
	} else {
		if ((end = strrchr(spec, ':')) == NULL)
			return -1;
		hostlen = (size_t)(end - spec);
		/* A bare IPv6 address is ambiguous: "::1:80". */
		if (memchr(spec, ':', hostlen) != NULL)
			return -1;
		p = end + 1;
	}
	if (*p == '\0' || strlen(p) > 5 || strspn(p, "0123456789") !=
	    strlen(p))
		return -1;
	v = strtol(p, NULL, 10);
	if (v > 65535 || hostlen + 1 > hostsz || strlen(p) + 1 > portsz)
		return -1;
	memcpy(host, spec, hostlen);
	host[hostlen] = '\0';
	if (hostlen == 0)
		snprintf(host, hostsz, "%s", empty_host);
	else if (strcmp(host, "*") == 0)
		snprintf(host, hostsz, "0.0.0.0");
	snprintf(port, portsz, "%ld", v);
	return 0;
}

void
addr_format(const struct sockaddr_storage *ss, char *dst, size_t dstsz)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;
	char				 a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET &&
	    inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a)) != NULL)
		snprintf(dst, dstsz, "%s:%u", a, ntohs(sin->sin_port));
	else if (ss->ss_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a)) != NULL)
		snprintf(dst, dstsz, "[%s]:%u", a, ntohs(sin6->sin6_port));
	else
		snprintf(dst, dstsz, "unknown");
}

int
addr_is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	return ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
}
