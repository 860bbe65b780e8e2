/*
 * backlog: how far behind Asterisk's subscribers of endpoint and device
 * state messages are, for contacts.c's pacing.
 *
 * Every contact change publishes on the endpoint topics (the contact's
 * status; the endpoint's state when an AOR's first contact comes or its
 * last one goes, and with it the device state PJSIP/<endpoint>). Every
 * subscriber of those topics (AMI's ContactStatus and PeerStatus events,
 * the PBX's hints, ARI) takes each message on a taskprocessor of
 * its own. contacts.c's flight count sees only the contact serializer,
 * upstream of them; a subscriber's queue that reaches its high-water
 * mark (500 tasks) logs a warning and, with Asterisk's default
 * taskprocessor_overload_trigger = global, makes PJSIP answer new
 * requests with 503. Seen on a slow machine: AMI's endpoint subscriber
 * fell behind a load of 100,000 contacts that the contact serializer
 * kept up with.
 *
 * Asterisk gives a module no list of taskprocessors, only a lookup by
 * exact name, and names a subscription's taskprocessor
 * "stasis/<m|p>:<topic name>-<sequence number in 8 hex digits>" (m: a
 * thread of its own, p: the stasis pool). backlog_scan() tries the
 * sequence numbers handed out so far against the watched topics' names
 * and keeps the names that exist; backlog_max() looks each one up again
 * (a subscriber that went away is not found, and forgotten) and returns
 * the longest queue. Only the contacts taskprocessor calls them.
 *
 * The cost stays bounded however long Asterisk has run (every call it
 * places takes a sequence number): one call tries SCAN_STEP numbers at
 * most and goes on from there the next time, and asks for the newest
 * number (which takes one more) once per RESCAN_MS at most, so the
 * module adds nothing that counts towards their wrapping round.
 */
#include "asterisk.h"

#include <stdio.h>
#include <string.h>

#include "asterisk/devicestate.h"
#include "asterisk/logger.h"
#include "asterisk/stasis.h"
#include "asterisk/stasis_endpoints.h"
#include "asterisk/taskprocessor.h"
#include "asterisk/time.h"
#include "asterisk/utils.h"

#include "isp_asterisk.h"

#define BACKLOG_MAX_TPS		32
#define SCAN_STEP		1024
#define RESCAN_MS		1000

static char		 names[BACKLOG_MAX_TPS][AST_TASKPROCESSOR_MAX_NAME + 1];
static size_t		 nnames;
static unsigned int	 scanned;	/* sequence numbers below: tried */
static unsigned int	 newest;	/* the next one, when last asked */
static struct timeval	 asked;		/* when */

/* The topics whose subscribers every contact change reaches. */
static size_t
watched_topics(const char **topic, size_t max)
{
	struct stasis_topic	*t[4];
	size_t			 i, n = 0;

	t[0] = ast_endpoint_topic_all();
	t[1] = ast_endpoint_topic_all_cached();
	t[2] = ast_device_state_topic_all();
	t[3] = ast_device_state_topic_cached();
	for (i = 0; i < ARRAY_LEN(t) && n < max; i++)
		if (t[i] != NULL && stasis_topic_name(t[i]) != NULL)
			topic[n++] = stasis_topic_name(t[i]);
	return n;
}

void
backlog_scan(void)
{
	static const char	 kind[2] = { 'm', 'p' };
	struct ast_taskprocessor *tps;
	const char		*topic[4];
	char			 name[AST_TASKPROCESSOR_MAX_NAME + 1];
	unsigned int		 seq, upto;
	size_t			 ntopics, i, k;
	int			 found;

	if (scanned == newest) {
		if (!ast_tvzero(asked) &&
		    ast_tvdiff_ms(ast_tvnow(), asked) < RESCAN_MS)
			return;
		/* The next number to be handed out (asking takes one). */
		newest = ast_taskprocessor_seq_num();
		asked = ast_tvnow();
	}
	upto = newest - scanned > SCAN_STEP ? scanned + SCAN_STEP : newest;
	ntopics = watched_topics(topic, ARRAY_LEN(topic));
	for (seq = scanned; seq != upto; seq++)
		for (i = 0, found = 0; i < ntopics && !found; i++)
			for (k = 0; k < ARRAY_LEN(kind) && !found; k++) {
				snprintf(name, sizeof(name), "stasis/%c:%s-%08x",
				    kind[k], topic[i], seq);
				if ((tps = ast_taskprocessor_get(name,
				    TPS_REF_IF_EXISTS)) == NULL)
					continue;
				ast_taskprocessor_unreference(tps);
				/* A number names one taskprocessor, and each
				 * is tried once: never a name found twice. */
				found = 1;
				if (nnames < BACKLOG_MAX_TPS) {
					ast_copy_string(names[nnames], name,
					    sizeof(names[nnames]));
					nnames++;
					ast_debug(1, "pacing watches %s\n", name);
				}
			}
	scanned = upto;
}

long
backlog_max(void)
{
	struct ast_taskprocessor *tps;
	long			 size, max = 0;
	size_t			 i;

	for (i = 0; i < nnames;) {
		if ((tps = ast_taskprocessor_get(names[i],
		    TPS_REF_IF_EXISTS)) == NULL) {
			/* Its subscriber went away (an ARI application
			 * stopped): the slot goes to the next one found. */
			if (i != --nnames)
				memcpy(names[i], names[nnames],
				    sizeof(names[i]));
			continue;
		}
		if ((size = ast_taskprocessor_size(tps)) > max)
			max = size;
		ast_taskprocessor_unreference(tps);
		i++;
	}
	return max;
}

size_t
backlog_watched(void)
{
	return nnames;
}

void
backlog_reset(void)
{
	nnames = 0;
	scanned = newest = 0;
	asked = ast_tv(0, 0);
}
