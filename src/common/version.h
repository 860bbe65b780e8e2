/*
 * version: the one version of this tree. Every program prints it for
 * --version, ispd sends it in QUERY STATS, the SIP services in their
 * Server header and INSTANCES records. The library's own version, which
 * follows its ABI, is ISP_VERSION in isp.h.
 */
#ifndef ISP_RELEASE_H
#define ISP_RELEASE_H

#define ISP_RELEASE	"0.1.0"

#endif
