/*
 * metrics: ispd's figures for Prometheus (--metrics HOST:PORT, off by
 * default). The endpoint is src/metrics/prom.c; this file puts it into
 * the loop and writes what QUERY STATS tells and more, under the names
 * docs/OPERATIONS.md lists. A scrape runs between two events of the
 * loop, so every figure is read as it stands, without a lock.
 */
#include <sys/epoll.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ispd.h"
#include "feed.h"
#include "prom.h"

static struct prom	*metrics;
static struct loop_io	 metrics_io;
static uint64_t		 metrics_due = UINT64_MAX;

/* Upper bounds of ispd_subscriber_queue_bytes, from one frame's worth to
 * well past the default --max-queue-bytes (8 MiB). */
static const uint64_t	 queue_bounds[] = {
	1024, 16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024,
	4 * 1024 * 1024, 16 * 1024 * 1024, 64 * 1024 * 1024,
};
#define NQUEUE_BOUNDS	(sizeof(queue_bounds) / sizeof(queue_bounds[0]))

struct census {
	uint64_t	 state[4];	/* by enum session_state */
	uint64_t	 queue[NQUEUE_BOUNDS + 1];
	uint64_t	 queue_sum;
	uint64_t	 queue_max;
};

static void
metrics_count(const struct session *s, void *arg)
{
	struct census	*c = arg;
	size_t		 i;

	if ((unsigned)s->state < 4)
		c->state[s->state]++;
	if (s->nsubs == 0)
		return;
	for (i = 0; i < NQUEUE_BOUNDS && s->out.bytes > queue_bounds[i]; i++)
		;
	c->queue[i]++;
	c->queue_sum += s->out.bytes;
	if (s->out.bytes > c->queue_max)
		c->queue_max = s->out.bytes;
}

static void
metrics_counter(struct buf *b, const char *name, const char *help,
    uint64_t v)
{
	prom_family(b, name, "counter", help);
	prom_u64(b, name, v);
}

static void
metrics_gauge(struct buf *b, const char *name, const char *help, uint64_t v)
{
	prom_family(b, name, "gauge", help);
	prom_u64(b, name, v);
}

static void
metrics_tables(struct buf *b)
{
	struct table	**v;
	size_t		  i, n;

	if ((v = table_sorted(&n)) == NULL) {
		b->failed = 1;
		return;
	}
	prom_family(b, "ispd_records", "gauge", "Records in the table.");
	for (i = 0; i < n; i++)
		prom_u64_label(b, "ispd_records", "table", v[i]->name,
		    v[i]->name_len, v[i]->records.count);
	prom_family(b, "ispd_subscribers", "gauge",
	    "Subscriptions to the table (ONCE reads included).");
	for (i = 0; i < n; i++)
		prom_u64_label(b, "ispd_subscribers", "table", v[i]->name,
		    v[i]->name_len, v[i]->nsubs);
	free(v);
}

static void
metrics_write(struct buf *b, void *arg)
{
	static const char *const states[4] = {
		"new", "ready", "ending", "linger"
	};
	static const char *const types[4] = {
		"announce", "replace", "withdraw", "end"
	};
	struct census		 c;
	struct feed_stats	 st;
	size_t			 i, nheld_clients, nheld;

	memset(&c, 0, sizeof(c));
	session_foreach(metrics_count, &c);
	feed_stats(&st);
	nheld = graceful_held_records(&nheld_clients);

	prom_family(b, "ispd_build_info", "gauge",
	    "Always 1; the version of ispd in its label.");
	prom_u64_label(b, "ispd_build_info", "version", ISP_RELEASE,
	    strlen(ISP_RELEASE), 1);
	prom_family(b, "ispd_uptime_seconds", "gauge",
	    "Seconds since ispd started.");
	prom_double(b, "ispd_uptime_seconds",
	    (double)(loop_now_ms() - ispd_stats.start_ms) / 1000.0);
	metrics_gauge(b, "ispd_draining", "1 once ispd drains (SIGUSR1): "
	    "the sessions close soon.", ispd_stats.draining != 0);

	prom_family(b, "ispd_sessions", "gauge",
	    "Sessions by state: new (before HELLO), ready, ending, linger "
	    "(flushing their last frames).");
	for (i = 0; i < 4; i++)
		prom_u64_label(b, "ispd_sessions", "state", states[i],
		    strlen(states[i]), c.state[i]);
	metrics_counter(b, "ispd_sessions_opened_total",
	    "Connections taken as sessions.", ispd_stats.sessions_total);
	metrics_counter(b, "ispd_sessions_refused_total",
	    "Connections refused by a session limit.",
	    ispd_stats.sessions_refused);
	metrics_gauge(b, "ispd_sessions_input_paused",
	    "Sessions whose input is paused while their output drains.",
	    session_paused_count());
	metrics_counter(b, "ispd_hold_expired_total",
	    "Sessions ended because they were silent for the hold time.",
	    ispd_stats.hold_expired);

	metrics_gauge(b, "ispd_tables", "Tables, ispd.sessions included.",
	    table_count());
	metrics_tables(b);
	metrics_gauge(b, "ispd_subscriptions",
	    "Subscriptions of every session.", subscr_count());

	metrics_counter(b, "ispd_events_applied_total",
	    "Changes applied to tables (announces, replaces, withdrawals).",
	    ispd_stats.events);
	prom_family(b, "ispd_events_sent_total", "counter",
	    "Events queued to subscribers, by type.");
	for (i = 0; i < 4; i++)
		prom_u64_label(b, "ispd_events_sent_total", "type", types[i],
		    strlen(types[i]), ispd_stats.events_sent[i]);
	metrics_counter(b, "ispd_frames_received_total",
	    "Frames read from sessions.", ispd_stats.frames_in);
	metrics_counter(b, "ispd_frames_sent_total",
	    "Frames queued to sessions.", ispd_stats.frames_out);
	metrics_counter(b, "ispd_received_bytes_total",
	    "Bytes read from sessions.", ispd_stats.bytes_in);
	metrics_counter(b, "ispd_sent_bytes_total",
	    "Bytes written to sessions.", ispd_stats.bytes_out);
	metrics_counter(b, "ispd_errors_sent_total",
	    "ERROR frames sent.", ispd_stats.errors_sent);

	metrics_gauge(b, "ispd_queued_bytes",
	    "Bytes queued to every session, not written yet.",
	    outq_total_bytes());
	metrics_gauge(b, "ispd_subscriber_queue_max_bytes",
	    "The longest output queue of a session with a subscription.",
	    c.queue_max);
	prom_family(b, "ispd_subscriber_queue_bytes", "histogram",
	    "Output queues of the sessions with a subscription, as they "
	    "stand.");
	prom_histogram(b, "ispd_subscriber_queue_bytes", queue_bounds,
	    c.queue, NQUEUE_BOUNDS, c.queue_sum);
	metrics_gauge(b, "ispd_slow_subscriptions",
	    "Subscriptions behind: with changes coalesced per key.", st.slow);
	metrics_gauge(b, "ispd_coalesced_keys",
	    "Keys whose change a subscriber has not been sent yet.",
	    st.dirty_keys);
	metrics_counter(b, "ispd_coalesced_events_total",
	    "Events folded into a key a subscriber is behind on.",
	    ispd_stats.coalesced_events);
	metrics_counter(b, "ispd_catchup_events_total",
	    "Events sent from coalesced keys.", ispd_stats.catchup_events);
	metrics_gauge(b, "ispd_subscriber_max_lag_keys",
	    "Coalesced keys of the subscription furthest behind.",
	    st.max_lag_keys);
	prom_family(b, "ispd_subscriber_max_lag_seconds", "gauge",
	    "How long the subscription furthest behind has been behind.");
	prom_double(b, "ispd_subscriber_max_lag_seconds",
	    (double)st.max_lag_ms / 1000.0);
	metrics_gauge(b, "ispd_snapshots_active",
	    "Subscriptions still sending their snapshot.", st.snapshots);
	metrics_counter(b, "ispd_owner_gone_events_total",
	    "EV_OWNER_GONE sent: an ended owner's records, one event per "
	    "subscription.", ispd_stats.owner_gone_events);
	metrics_counter(b, "ispd_owner_gone_withdrawals_total",
	    "Withdrawals not sent because an EV_OWNER_GONE told them.",
	    ispd_stats.owner_gone_withdrawals);

	metrics_gauge(b, "ispd_withdraw_backlog_records",
	    "Records of ended sessions still to be withdrawn.",
	    table_withdraw_backlog());
	metrics_gauge(b, "ispd_held_records",
	    "Records of lost sessions held for their client's return.",
	    nheld);
	metrics_gauge(b, "ispd_held_clients",
	    "Clients whose records are held.", nheld_clients);

	prom_family(b, "ispd_limit_refusals_total", "counter",
	    "Requests and connections refused by a limit, by its option.");
	for (i = 0; i < CONF_NKEYS; i++)
		if (settings[i].type == SET_LIMIT &&
		    i != CONF_MAX_QUEUE_BYTES)
			prom_u64_label(b, "ispd_limit_refusals_total", "limit",
			    settings[i].name, strlen(settings[i].name),
			    limit_hits(i));
	metrics_counter(b, "ispd_limit_errors_total",
	    "ERROR LIMIT frames sent.", ispd_stats.limit_errors);
	metrics_counter(b, "ispd_auth_failures_total",
	    "Authentications refused: AUTH or a client certificate.",
	    ispd_stats.auth_failures);
	metrics_counter(b, "ispd_requests_denied_total",
	    "Requests the rules refused.", ispd_stats.denied);

	prom_family(b, "ispd_reloads_total", "counter",
	    "Configuration reloads (SIGHUP), by result.");
	prom_u64_label(b, "ispd_reloads_total", "result", "ok", 2,
	    ispd_stats.reloads_ok);
	prom_u64_label(b, "ispd_reloads_total", "result", "failed", 6,
	    ispd_stats.reloads_failed);
	metrics_gauge(b, "ispd_config_last_reload_successful",
	    "0 when the last reload failed (the running configuration is "
	    "kept), else 1.", !ispd_stats.last_reload_failed);
}

static int
metrics_health(void *arg)
{
	return !ispd_stats.draining;
}

static void
metrics_log(int level, const char *msg)
{
	switch (level) {
	case PROM_LOG_ERROR:
	case PROM_LOG_WARN:
		log_warnx("%s", msg);
		break;
	case PROM_LOG_INFO:
		log_info("%s", msg);
		break;
	default:
		log_debug("%s", msg);
		break;
	}
}

/* After each run: when the endpoint wants to run again without input
 * (a connection timing out, one with work left). */
static void
metrics_schedule(void)
{
	int	 t;

	t = prom_timeout_ms(metrics);
	metrics_due = t < 0 ? UINT64_MAX : loop_now_ms() + (uint64_t)t;
}

static void
metrics_ready(void *arg, uint32_t events)
{
	prom_run(metrics);
	metrics_schedule();
}

/*
 * Serves the metrics on spec (checked by conf.c). Returns 0, or -1
 * after printing why on stderr: that ends startup.
 */
int
metrics_open(const char *spec)
{
	char	 err[256];

	if ((metrics = prom_open(spec, metrics_write, metrics_health, NULL,
	    metrics_log, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ispd: cannot serve metrics on %s: %s\n", spec,
		    err);
		return -1;
	}
	if (loop_add(&metrics_io, prom_fd(metrics), EPOLLIN, metrics_ready,
	    NULL) == -1) {
		fprintf(stderr, "ispd: cannot serve metrics on %s: epoll: "
		    "%s\n", spec, strerror(errno));
		prom_close(metrics);
		metrics = NULL;
		return -1;
	}
	metrics_schedule();
	return 0;
}

uint64_t
metrics_next_ms(void)
{
	return metrics != NULL ? metrics_due : UINT64_MAX;
}

void
metrics_timers(uint64_t now_ms)
{
	if (metrics == NULL || metrics_due > now_ms)
		return;
	prom_run(metrics);
	metrics_schedule();
}

void
metrics_close(void)
{
	if (metrics == NULL)
		return;
	loop_del(&metrics_io);
	prom_close(metrics);
	metrics = NULL;
	metrics_due = UINT64_MAX;
}
