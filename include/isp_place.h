/*
 * isp_place: which instance serves an account, by rendezvous
 * (highest-random-weight) hashing over the live instances of a role.
 *
 * Every instance (isp-registrar, isp-locator, an Asterisk) announces
 * itself in table INSTANCES under its id, with a field role; the record
 * lives as long as its session. Any node that mirrors INSTANCES computes,
 * for an account, a weight per live instance of the role and picks the
 * highest: all nodes agree without talking to each other, and when an
 * instance dies only the accounts it served move (each to its own
 * runner-up); a new instance takes over about 1/n of the accounts.
 *
 * The weight is specified exactly, so that other implementations agree:
 *   h = FNV-1a-64 over the bytes of the instance id, then one 0x00 byte,
 *       then the bytes of the account
 *       (offset basis 0xcbf29ce484222325, prime 0x100000001b3);
 *   weight = fmix64(h), MurmurHash3's finaliser:
 *       h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33;
 *       h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33.
 * Ties (vanishingly rare) go to the id that sorts last bytewise (a
 * shorter id before a longer one it prefixes).
 *
 * Link with libisp; the functions are thread-safe.
 */
#ifndef ISP_PLACE_H
#define ISP_PLACE_H

#include <stddef.h>
#include <stdint.h>

#include "isp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ISP_INSTANCES_TABLE	"INSTANCES"

/* The rendezvous weight of (instance id, account), as specified above. */
uint64_t	 isp_place_weight(const void *instance, size_t instance_len,
		    const void *account, size_t account_len);

/* The index of the instance that serves account among ids[0..n-1]
 * (lens[i] their lengths, or lens NULL for NUL-terminated ids), or -1
 * when n is 0. */
long		 isp_place_pick(const char *const *ids, const size_t *lens,
		    size_t n, const void *account, size_t account_len);

/*
 * Picks from a mirror of INSTANCES (isp_mirror_new(c, "INSTANCES", ...))
 * the live instance whose field "role" equals role and that serves
 * account. An instance whose field "status" is "draining" (an Asterisk
 * told `isp drain`) serves no account: its accounts go where they would
 * go if it were gone. On ISP_OK, *out is a copy of its record (key: the
 * instance id; fields: role, uri, version, started, and status for an
 * Asterisk); free it with
 * isp_record_free(). Returns ISP_E_NOT_FOUND when no instance of the
 * role is live, ISP_E_STATE before the mirror's snapshot has ended,
 * ISP_E_INVALID for NULL arguments, ISP_E_NOMEM.
 */
int		 isp_place(const isp_mirror *instances, const char *role,
		    const void *account, size_t account_len,
		    struct isp_record **out);

#ifdef __cplusplus
}
#endif

#endif
