/*
 * stats: the answers to QUERY, what ispd tells of itself: a row per
 * table, and the one row of counters (docs/PROTOCOL.md lists both).
 *
 * The counters' row reads every subsystem's figures (sessions, tables,
 * feed, output queues, the counters of struct ispd_stats), so it lives
 * here rather than in one of them. Facts
 * a test or an operator needs to know (a reload applied or refused, a
 * session refused, a request denied) are counted here, not only logged:
 * a counter can be asked for and waited on, a log line cannot.
 *
 * Fields are only ever added at the end, so a reader that looks for
 * names, or counts on the order it knew, keeps working.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isp.h"
#include "ispd.h"
#include "acl.h"
#include "feed.h"

/* Where answers are encoded. */
static struct buf	 qbuf;

struct stats_row {
	struct buf	*b;
	uint16_t	 nfields;
};

static void
stats_text(struct stats_row *row, const char *name, const char *v)
{
	proto_put_field(row->b, name, strlen(name), v, strlen(v));
	row->nfields++;
}

static void
stats_u64(struct stats_row *row, const char *name, uint64_t v)
{
	proto_put_field_u64(row->b, name, v);
	row->nfields++;
}

/* Appends the ROWS frame answering QUERY STATS req_id to b. */
static void
stats_counters(struct buf *b, uint32_t req_id)
{
	struct stats_row	 row = { b, 0 };
	struct feed_stats	 st;
	size_t			 start, fstart, nheld, held;

	start = proto_rows_begin(b, req_id);
	fstart = proto_fields_begin(b);
	stats_text(&row, "version", ISP_RELEASE);
	stats_u64(&row, "uptime_s",
	    (loop_now_ms() - ispd_stats.start_ms) / 1000);
	stats_u64(&row, "sessions", session_count());
	stats_u64(&row, "sessions_total", ispd_stats.sessions_total);
	stats_u64(&row, "tables", table_count());
	stats_u64(&row, "records", table_record_count());
	stats_u64(&row, "subscriptions", subscr_count());
	stats_u64(&row, "events", ispd_stats.events);
	stats_u64(&row, "frames_in", ispd_stats.frames_in);
	stats_u64(&row, "frames_out", ispd_stats.frames_out);
	stats_u64(&row, "bytes_in", ispd_stats.bytes_in);
	stats_u64(&row, "bytes_out", ispd_stats.bytes_out);
	stats_u64(&row, "errors_sent", ispd_stats.errors_sent);
	stats_u64(&row, "hold_expired", ispd_stats.hold_expired);
	feed_stats(&st);
	stats_u64(&row, "bytes_queued", outq_total_bytes());
	stats_u64(&row, "slow_subscribers", st.slow);
	stats_u64(&row, "dirty_keys", st.dirty_keys);
	stats_u64(&row, "max_lag_keys", st.max_lag_keys);
	stats_u64(&row, "max_lag_ms", st.max_lag_ms);
	stats_u64(&row, "coalesced_events", ispd_stats.coalesced_events);
	stats_u64(&row, "catchup_events", ispd_stats.catchup_events);
	stats_u64(&row, "snapshots_active", st.snapshots);
	stats_u64(&row, "withdraw_backlog", table_withdraw_backlog());
	held = graceful_held_records(&nheld);
	stats_u64(&row, "held_records", held);
	stats_u64(&row, "held_clients", nheld);
	stats_u64(&row, "input_paused", session_paused_count());
	stats_u64(&row, "limit_errors", ispd_stats.limit_errors);
	stats_u64(&row, "sessions_refused", ispd_stats.sessions_refused);
	stats_u64(&row, "auth_failures", ispd_stats.auth_failures);
	stats_u64(&row, "denied", ispd_stats.denied);
	/* What the SIGHUPs did, as ispd_reloads_total tells Prometheus. */
	stats_u64(&row, "reloads_ok", ispd_stats.reloads_ok);
	stats_u64(&row, "reloads_failed", ispd_stats.reloads_failed);
	/* An ended owner told as one event (gone.c). */
	stats_u64(&row, "owner_gone_events", ispd_stats.owner_gone_events);
	stats_u64(&row, "owner_gone_withdrawals",
	    ispd_stats.owner_gone_withdrawals);
	proto_fields_end(b, fstart, row.nfields);
	proto_rows_end(b, start, 1);
}

/* A row per table s may subscribe to or announce into (docs/SECURITY.md:
 * the rules also hide the names of the others). */
static int
query_tables(struct session *s, uint32_t req_id, char *why,
    size_t whysz)
{
	struct stats_row  row = { &qbuf, 0 };
	struct table	**v;
	size_t		  i, n, nrows = 0, start, fstart;

	if ((v = table_sorted(&n)) == NULL)
		return -1;
	start = proto_rows_begin(&qbuf, req_id);
	for (i = 0; i < n; i++) {
		if (!acl_may(s, ACL_SUBSCRIBE, v[i]) &&
		    !acl_may(s, ACL_ANNOUNCE, v[i]))
			continue;
		nrows++;
		fstart = proto_fields_begin(&qbuf);
		proto_put_field(&qbuf, "name", 4, v[i]->name, v[i]->name_len);
		row.nfields = 1;
		stats_u64(&row, "records", v[i]->records.count);
		stats_u64(&row, "seq", v[i]->seq);
		stats_u64(&row, "subscribers", v[i]->nsubs);
		proto_fields_end(&qbuf, fstart, row.nfields);
	}
	proto_rows_end(&qbuf, start, (uint32_t)nrows);
	free(v);
	/* One ROWS frame is the protocol's answer; tens of thousands of
	 * tables would not fit it. */
	if (!buf_failed(&qbuf) && qbuf.len - start - 4 > PROTO_MAX_FRAME_BYTES) {
		qbuf.len = start;
		snprintf(why, whysz, "%zu tables do not fit in one ROWS frame",
		    n);
		return ISP_E_LIMIT;
	}
	return 0;
}

/* QUERY from s: one ROWS frame. Returns 0; an ISP_E_* code with why
 * filled; or -1 when out of memory (the caller closes s). */
int
stats_query(struct session *s, const struct proto_msg *m, char *why,
    size_t whysz)
{
	int	 rc;

	qbuf.len = 0;
	buf_clear_failed(&qbuf);
	switch (m->what) {
	case PROTO_QUERY_TABLES:
		if ((rc = query_tables(s, m->req_id, why, whysz)) != 0)
			return rc;
		break;
	case PROTO_QUERY_STATS:
		stats_counters(&qbuf, m->req_id);
		break;
	default:
		snprintf(why, whysz, "unknown QUERY %u: ispd answers %d "
		    "(tables) and %d (stats)", m->what, PROTO_QUERY_TABLES,
		    PROTO_QUERY_STATS);
		return ISP_E_BAD_REQUEST;
	}
	return session_send(s, &qbuf, 1);
}

/* At exit. */
void
stats_free(void)
{
	buf_free(&qbuf);
}
