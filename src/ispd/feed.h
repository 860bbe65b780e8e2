/*
 * feed.h: the interface of feed.c, delivery to subscribers (snapshot,
 * coalescing, catch-up), for subscr.c, table.c, session.c, gone.c and
 * the figures. Its per-subscription state, struct feed_state, is in ispd.h
 * only because struct subscr embeds it.
 */
#ifndef ISPD_FEED_H
#define ISPD_FEED_H

#include "ispd.h"

struct feed_stats {
	size_t		 slow;		/* subscriptions with dirty keys */
	size_t		 dirty_keys;
	size_t		 max_lag_keys;
	uint64_t	 max_lag_ms;
	size_t		 snapshots;	/* cursors walking */
};

void		 feed_start(struct subscr *);
void		 feed_stop(struct subscr *);
int		 feed_drain(struct subscr *);
void		 feed_event(struct subscr *, uint8_t type, const struct record *,
		    uint8_t reason, struct obuf **);
int		 feed_fill(struct session *);
int		 feed_live(const struct subscr *);
void		 feed_record_removed(struct table *, struct record *);
void		 feed_record_moved(struct table *, const struct record *,
		    struct record *);
void		 feed_stats(struct feed_stats *);
void		 feed_free(void);

#endif /* ISPD_FEED_H */
