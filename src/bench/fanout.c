/*
 * fanout: one publisher, N subscribers, the same SIP-like records
 * through ispd, Redis PUBLISH/SUBSCRIBE and NATS core, and the same
 * bytes through plain loopback sockets.
 *
 * Peak: the publisher runs as fast as the slowest subscriber allows
 * (at most conf.window updates ahead of it), so every system is measured
 * at the rate it can sustain without dropping, coalescing or
 * disconnecting anyone. Deliveries/s = deliveries / (last delivery -
 * first send).
 *
 * Latency: the publisher is paced at lat_fraction of that system's own
 * peak; each delivery's latency is its receive time minus the send time
 * in its stamp.
 *
 * The SIP refresh load lives here too: it is a paced run whose
 * publisher re-sends registrations, 99% unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

struct fan_result {
	int		 ok;
	double		 deliveries;
	double		 seconds;
	double		 per_s;		/* deliveries per second */
	double		 offered;	/* updates published per second */
	double		 srv_cpu;	/* server CPU, % of one core */
	double		 srv_wakeups;	/* per second */
	/* CPU microseconds per delivery: server, all subscribers; and per
	 * update for the publisher */
	double		 srv_us, sub_us, pub_us;
	double		 p50, p99, p999;	/* microseconds */
	uint64_t	 published;
	char		 err[200];
};

/* Per scenario, per system, per subscriber count. */
struct fan_lat {
	double		 rate;		/* updates/s offered */
	double		 p50[64], p99[64], p999[64];
	struct stat3	 s_p50, s_p99, s_p999;
};

/* Columns: the systems, then ispd with the bench's batching publisher. */
#define COL_BATCH	SYS_TCP
#define NCOL		(SYS_TCP + 1)

struct fan_cell {
	int		 batch;		/* the COL_BATCH column */
	double		 thr[64];
	double		 srv_us[64], sub_us[64], pub_us[64];
	struct stat3	 s_thr, s_srv_us, s_sub_us, s_pub_us;
	struct fan_lat	 own;		/* at a fraction of its own peak */
	struct fan_lat	 same;		/* at the same rate for all */
	char		 err[200];
};

static uint64_t
sum_counts(struct fan_shm *shm, int n)
{
	uint64_t	 sum = 0;
	int		 i;

	for (i = 0; i < n; i++)
		sum += atomic_load(&shm->subs[i].count);
	return sum;
}

static int
all_done(struct fan_shm *shm, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (!shm->subs[i].done)
			return 0;
	return 1;
}

static void
first_error(struct fan_job *job, pid_t *pids, char *dst, size_t len)
{
	int	 i;

	if (job->shm->pub_err[0] != '\0') {
		snprintf(dst, len, "publisher: %s", job->shm->pub_err);
		return;
	}
	for (i = 0; i < job->nsubs; i++)
		if (job->shm->subs[i].err[0] != '\0') {
			snprintf(dst, len, "subscriber %d: %s", i,
			    job->shm->subs[i].err);
			return;
		}
	(void)pids;
}

/*
 * One run. job holds the sizes; the result is filled in. measure_s > 0
 * makes it a timed run (refresh): counts and CPU over that many seconds
 * after go; else it ends when every subscriber saw the last update.
 */
static void
fan_run(struct fan_job *job, struct fan_result *res, int want_lat,
    double measure_s)
{
	struct fan_shm	*shm;
	pid_t		 pids[BENCH_MAX_SUBS + 1];
	uint64_t	 last = 0, c, c0 = 0, progress_at;
	long		 w0;
	uint32_t	*all = NULL;
	size_t		 lat_bytes = 0, nall = 0, j;
	double		 deadline, cpu0 = 0, cpu1 = 0, t0, t1, sub_cpu;
	int		 i, np = 0;

	memset(res, 0, sizeof(*res));
	shm = shm_alloc(sizeof(*shm));
	job->shm = shm;
	job->lat = NULL;
	if (want_lat) {
		lat_bytes = (size_t)job->nsubs * job->lat_cap *
		    sizeof(uint32_t);
		job->lat = shm_alloc(lat_bytes);
	}
	for (i = 0; i < job->nsubs; i++) {
		job->sub_index = i;
		if ((pids[np] = child_start(sys_subscriber, job)) > 0)
			np++;
	}
	deadline = now_s() + 60 + (job->preload > 0 ? 240 : 0);
	while (atomic_load(&shm->ready) < job->nsubs && now_s() < deadline &&
	    shm->subs[0].err[0] == '\0')
		sleep_ns(2000000);
	if (atomic_load(&shm->ready) < job->nsubs)
		goto fail;
	if ((pids[np] = child_start(sys_publisher, job)) > 0)
		np++;
	while (!atomic_load(&shm->pub_ready) && now_s() < deadline &&
	    shm->pub_err[0] == '\0')
		sleep_ns(2000000);
	if (!atomic_load(&shm->pub_ready))
		goto fail;

	cpu0 = proc_cpu_s(job->srv->pid);
	t0 = now_s();
	atomic_store(&shm->go, 1);
	if (measure_s > 0) {
		/* Past the start-up, a window of steady state. */
		sleep_ns((uint64_t)(1e9 * (measure_s < 2 ? 0.2 : 1)));
		c0 = sum_counts(shm, job->nsubs);
		cpu0 = proc_cpu_s(job->srv->pid);
		w0 = proc_wakeups(job->srv->pid);
		t0 = now_s();
		sleep_ns((uint64_t)(measure_s * 1e9));
		t1 = now_s();
		cpu1 = proc_cpu_s(job->srv->pid);
		res->srv_wakeups = (double)(proc_wakeups(job->srv->pid) - w0) /
		    (t1 - t0);
		c = sum_counts(shm, job->nsubs);
		res->deliveries = (double)(c - c0);
		res->seconds = t1 - t0;
		res->per_s = res->deliveries / res->seconds;
		res->srv_cpu = 100 * (cpu1 - cpu0) / (t1 - t0);
		atomic_store(&shm->stop, 1);
		res->published = shm->published;
		res->offered = job->rate;
		res->ok = 1;
		goto out;
	}
	/* Until every subscriber saw the last update; a run in which
	 * deliveries stop for 3 s after the publisher finished lost some
	 * and ends there. */
	deadline = now_s() + conf.run_timeout;
	progress_at = now_ns();
	while (!all_done(shm, job->nsubs) && now_s() < deadline) {
		if (shm->pub_err[0] != '\0')
			break;
		c = sum_counts(shm, job->nsubs);
		if (c != last) {
			last = c;
			progress_at = now_ns();
		} else if (shm->pub_end_ns != 0 &&
		    now_ns() - progress_at > 3000000000ULL)
			break;
		sleep_ns(1000000);
	}
	t1 = now_s();
	cpu1 = proc_cpu_s(job->srv->pid);
	atomic_store(&shm->stop, 1);
	if (!all_done(shm, job->nsubs)) {
		first_error(job, pids, res->err, sizeof(res->err));
		if (res->err[0] == '\0')
			snprintf(res->err, sizeof(res->err), "%s", now_s() >
			    deadline ? "timed out" : "updates were lost");
	}
	res->published = shm->published;
	res->deliveries = (double)sum_counts(shm, job->nsubs);
	for (i = 0, last = 0; i < job->nsubs; i++)
		if (shm->subs[i].last_ns > last)
			last = shm->subs[i].last_ns;
	if (last > shm->pub_start_ns && res->err[0] == '\0') {
		res->seconds = (double)(last - shm->pub_start_ns) / 1e9;
		res->per_s = res->deliveries / res->seconds;
		res->offered = (double)res->published / res->seconds;
		res->srv_cpu = 100 * (cpu1 - cpu0) / (t1 - t0);
		res->ok = 1;
	}
	if (want_lat && res->ok) {
		for (i = 0; i < job->nsubs; i++)
			nall += shm->subs[i].nlat;
		if ((all = malloc(nall * sizeof(*all) + 1)) != NULL) {
			for (i = 0, nall = 0; i < job->nsubs; i++)
				for (j = 0; j < shm->subs[i].nlat; j++)
					all[nall++] = job->lat[(size_t)i *
					    job->lat_cap + j];
			sort_u32(all, nall);
			res->p50 = quantile_u32(all, nall, 0.50) / 1e3;
			res->p99 = quantile_u32(all, nall, 0.99) / 1e3;
			res->p999 = quantile_u32(all, nall, 0.999) / 1e3;
			free(all);
		}
	}
	goto out;
fail:
	atomic_store(&shm->stop, 1);
	first_error(job, pids, res->err, sizeof(res->err));
	if (res->err[0] == '\0')
		snprintf(res->err, sizeof(res->err), "clients did not start");
out:
	atomic_store(&shm->stop, 1);
	(void)children_wait(pids, np, now_s() + 30);
	if (res->ok && res->deliveries > 0 && measure_s <= 0) {
		res->srv_us = 1e6 * (cpu1 - cpu0) / res->deliveries;
		for (i = 0, sub_cpu = 0; i < job->nsubs; i++)
			sub_cpu += shm->subs[i].cpu_s;
		res->sub_us = 1e6 * sub_cpu / res->deliveries;
		res->pub_us = res->published > 0 ? 1e6 * shm->pub_cpu_s /
		    (double)res->published : -1;
	}
	shm_free(job->lat, lat_bytes);
	shm_free(shm, sizeof(*shm));
	job->shm = NULL;
	job->lat = NULL;
}

static void
job_init(struct fan_job *job, struct server *srv, int nsubs)
{
	memset(job, 0, sizeof(*job));
	job->srv = srv;
	job->nsubs = nsubs;
	job->keys = conf.keys;
	job->updates = conf.updates;
	job->window = conf.window;
	job->change_every = 100;
	snprintf(job->table, sizeof(job->table), "%s", BENCH_TABLE);
}

static void
fan_peak(struct server *srv, int nsubs, struct fan_cell *cell)
{
	struct fan_job		 job;
	struct fan_result	 res;
	int			 r;

	for (r = 0; r < conf.runs; r++) {
		job_init(&job, srv, nsubs);
		job.batch = cell->batch;
		fan_run(&job, &res, 0, 0);
		cell->thr[r] = res.ok ? res.per_s : -1;
		cell->srv_us[r] = res.ok ? res.srv_us : -1;
		cell->sub_us[r] = res.ok ? res.sub_us : -1;
		cell->pub_us[r] = res.ok ? res.pub_us : -1;
		if (!res.ok)
			snprintf(cell->err, sizeof(cell->err), "%s", res.err);
		say("%-5s %3d subs, peak run %d: %s deliveries/s%s%s",
		    cell->batch ? "ispd-batch" : sys_name(srv->kind), nsubs,
		    r + 1,
		    fmt_si((char[24]){ 0 }, 24, cell->thr[r]),
		    res.ok ? "" : " -- ", res.ok ? "" : res.err);
	}
	stat3_of(&cell->s_thr, cell->thr, conf.runs);
	stat3_of(&cell->s_srv_us, cell->srv_us, conf.runs);
	stat3_of(&cell->s_sub_us, cell->sub_us, conf.runs);
	stat3_of(&cell->s_pub_us, cell->pub_us, conf.runs);
}

static int	sys_enabled(int);

/* Where the CPU of a delivery goes, per process kind: what makes one
 * system faster than another on a machine of two cores. */
static void
fan_cpu_table(struct fan_cell (*cells)[NCOL])
{
	struct tab	 t;
	char		 a[NCOL][96], n[24];
	int		 i, k;

	tab_init(&t, "fan-out CPU at peak, in microseconds: server per "
	    "delivery / subscriber per delivery / publisher per update "
	    "(medians)", 5, "subs", "ispd", "redis", "nats", "ispd-batch*");
	for (i = 0; i < conf.nnsubs; i++) {
		snprintf(n, sizeof(n), "%d", conf.nsubs[i]);
		for (k = 0; k < NCOL; k++) {
			if (!sys_enabled(k) || cells[i][k].s_srv_us.n == 0) {
				snprintf(a[k], sizeof(a[k]), "-");
				continue;
			}
			snprintf(a[k], sizeof(a[k]), "%.2f / %.2f / %.2f",
			    cells[i][k].s_srv_us.med, cells[i][k].s_sub_us.med,
			    cells[i][k].s_pub_us.med);
		}
		tab_row(&t, n, a[0], a[1], a[2], a[3]);
	}
	tab_note(&t, "server: its CPU from go to the last delivery; "
	    "subscribers: getrusage of each subscriber process, summed; "
	    "publisher: getrusage while it sends.");
	tab_print(&t);
	tab_free(&t);
}

/* Latency runs at lat->rate updates/s. */
static void
fan_latency(struct server *srv, int nsubs, struct fan_lat *lat,
    struct fan_cell *cell)
{
	struct fan_job		 job;
	struct fan_result	 res;
	double			 lat_n;
	int			 r;

	for (r = 0; r < conf.runs; r++)
		lat->p50[r] = lat->p99[r] = lat->p999[r] = -1;
	if (lat->rate <= 0)
		goto out;
	lat_n = lat->rate * conf.lat_seconds;
	if (lat_n > conf.updates)
		lat_n = (double)conf.updates;
	if (lat_n < 1000)
		lat_n = 1000;
	for (r = 0; r < conf.runs; r++) {
		job_init(&job, srv, nsubs);
		job.batch = cell->batch;
		job.updates = (long)lat_n;
		job.rate = lat->rate;
		job.lat_cap = (size_t)lat_n;
		fan_run(&job, &res, 1, 0);
		if (res.ok) {
			lat->p50[r] = res.p50;
			lat->p99[r] = res.p99;
			lat->p999[r] = res.p999;
		} else
			snprintf(cell->err, sizeof(cell->err), "%s", res.err);
		say("%-5s %3d subs, latency run %d at %.0f updates/s: p50 %.0f "
		    "us, p99 %.0f us, p99.9 %.0f us%s%s", cell->batch ?
		    "ispd-batch" : sys_name(srv->kind), nsubs, r + 1, lat->rate, res.p50, res.p99, res.p999,
		    res.ok ? "" : " -- ", res.ok ? "" : res.err);
	}
out:
	stat3_of(&lat->s_p50, lat->p50, conf.runs);
	stat3_of(&lat->s_p99, lat->p99, conf.runs);
	stat3_of(&lat->s_p999, lat->p999, conf.runs);
}

static void
fan_targets(struct fan_cell (*cells)[NCOL], struct stat3 *lim)
{
	struct fan_cell	*c;
	char		 what[96], m[96], a[24], b[24];
	int		 i = conf.nnsubs - 1, n = conf.nsubs[conf.nnsubs - 1];

	(void)lim;
	c = cells[i];
	snprintf(what, sizeof(what), "fan-out at %d subs >= NATS core", n);
	snprintf(m, sizeof(m), "ispd %s/s, nats %s/s",
	    fmt_si(a, sizeof(a), c[SYS_ISPD].s_thr.med),
	    fmt_si(b, sizeof(b), c[SYS_NATS].s_thr.med));
	target(what, m, !conf.with_nats || c[SYS_NATS].s_thr.n == 0 ||
	    c[SYS_ISPD].s_thr.n == 0 ? -1 :
	    c[SYS_ISPD].s_thr.med >= c[SYS_NATS].s_thr.med);
	snprintf(what, sizeof(what), "fan-out at %d subs >= 2x Redis pub/sub",
	    n);
	snprintf(m, sizeof(m), "ispd %s/s, redis %s/s",
	    fmt_si(a, sizeof(a), c[SYS_ISPD].s_thr.med),
	    fmt_si(b, sizeof(b), c[SYS_REDIS].s_thr.med));
	target(what, m, !conf.with_redis || c[SYS_REDIS].s_thr.n == 0 ||
	    c[SYS_ISPD].s_thr.n == 0 ? -1 :
	    c[SYS_ISPD].s_thr.med >= 2 * c[SYS_REDIS].s_thr.med);
	for (i = 0; i < conf.nnsubs; i++) {
		c = cells[i];
		snprintf(what, sizeof(what), "p99 < 1 ms at %.0f%% of peak, "
		    "%d subs", conf.lat_fraction * 100, conf.nsubs[i]);
		snprintf(m, sizeof(m), "%.0f us", c[SYS_ISPD].own.s_p99.med);
		target(what, m, c[SYS_ISPD].own.s_p99.n == 0 ? -1 :
		    c[SYS_ISPD].own.s_p99.med < 1000);
	}
}

static int
sys_enabled(int k)
{
	return k == SYS_ISPD || k == COL_BATCH ||
	    (k == SYS_REDIS && conf.with_redis) ||
	    (k == SYS_NATS && conf.with_nats);
}

static struct fan_lat *
cell_lat(struct fan_cell *c, int same)
{
	return same ? &c->same : &c->own;
}

static void
fan_lat_table(struct fan_cell (*cells)[NCOL], int same)
{
	struct tab	 t;
	char		 title[256], a[NCOL][64], n[24];
	int		 i, k;

	if (same)
		snprintf(title, sizeof(title), "fan-out latency at the same "
		    "load for all: %.0f%% of the slowest system's peak, in "
		    "microseconds; median [min..max] of %d runs",
		    conf.lat_fraction * 100, conf.runs);
	else
		snprintf(title, sizeof(title), "fan-out latency, announce to "
		    "delivery, at %.0f%% of each system's own peak, in "
		    "microseconds; median [min..max] of %d runs",
		    conf.lat_fraction * 100, conf.runs);
	tab_init(&t, title, 6, "subs", "", "ispd", "redis", "nats",
	    "ispd-batch*");
	for (i = 0; i < conf.nnsubs; i++) {
		snprintf(n, sizeof(n), "%d", conf.nsubs[i]);
		for (k = 0; k < NCOL; k++)
			fmt_si(a[k], sizeof(a[k]), sys_enabled(k) ?
			    cell_lat(&cells[i][k], same)->rate : -1);
		tab_row(&t, n, "updates/s", a[0], a[1], a[2], a[3]);
		for (k = 0; k < NCOL; k++)
			fmt_stat(a[k], sizeof(a[k]),
			    &cell_lat(&cells[i][k], same)->s_p50, "");
		tab_row(&t, "", "p50", a[0], a[1], a[2], a[3]);
		for (k = 0; k < NCOL; k++)
			fmt_stat(a[k], sizeof(a[k]),
			    &cell_lat(&cells[i][k], same)->s_p99, "");
		tab_row(&t, "", "p99", a[0], a[1], a[2], a[3]);
		for (k = 0; k < NCOL; k++)
			fmt_stat(a[k], sizeof(a[k]),
			    &cell_lat(&cells[i][k], same)->s_p999, "");
		tab_row(&t, "", "p99.9", a[0], a[1], a[2], a[3]);
	}
	tab_note(&t, "* ispd-batch: ispd with the bench's own publisher, "
	    "which writes ANNOUNCE frames (libisp's codec) 64 KiB at a time; "
	    "a diagnostic beside libisp, which batches its writes itself.");
	tab_print(&t);
	tab_free(&t);
}

void
scen_fanout(void)
{
	static struct fan_cell	 cells[8][NCOL];
	struct stat3		 lim[8];
	struct server		 srv;
	struct rec		 r;
	struct tab		 t;
	char			 title[256], a[NCOL + 1][96], b[3][24];
	char			 path[512];
	double			 v[64], sec, same[8];
	struct fan_cell		*c;
	size_t			 frame;
	enum sys_kind		 k;
	int			 i, run, b1;
	FILE			*f;

	rec_make(&r, 1234, 0);
	frame = rec_frame_bytes(&r, strlen("bench-publisher"));
	memset(cells, 0, sizeof(cells));
	for (k = SYS_ISPD; k < SYS_TCP; k++) {
		if (!sys_enabled(k))
			continue;
		if (server_start(&srv, k) == -1) {
			for (i = 0; i < conf.nnsubs; i++)
				snprintf(cells[i][k].err, sizeof(cells[i][k].err),
				    "server did not start");
			continue;
		}
		for (i = 0; i < conf.nnsubs; i++) {
			for (b1 = 0; b1 < (k == SYS_ISPD ? 2 : 1); b1++) {
				c = &cells[i][b1 ? COL_BATCH : k];
				c->batch = b1;
				fan_peak(&srv, conf.nsubs[i], c);
				/* At a fraction of its own peak. */
				c->own.rate = c->s_thr.n == 0 ? -1 :
				    conf.lat_fraction * c->s_thr.med /
				    conf.nsubs[i];
				fan_latency(&srv, conf.nsubs[i], &c->own, c);
			}
		}
		server_stop(&srv);
	}
	/* The same offered load for every system: the fraction of the
	 * slowest one's peak, so that latencies compare like for like. */
	for (i = 0; i < conf.nnsubs; i++) {
		same[i] = -1;
		for (k = SYS_ISPD; k < SYS_TCP; k++)
			if (sys_enabled(k) && cells[i][k].own.rate > 0 &&
			    (same[i] < 0 || cells[i][k].own.rate < same[i]))
				same[i] = cells[i][k].own.rate;
	}
	for (k = SYS_ISPD; k < SYS_TCP; k++) {
		if (!sys_enabled(k) || server_start(&srv, k) == -1)
			continue;
		for (i = 0; i < conf.nnsubs; i++)
			for (b1 = 0; b1 < (k == SYS_ISPD ? 2 : 1); b1++) {
				c = &cells[i][b1 ? COL_BATCH : k];
				c->same.rate = same[i];
				fan_latency(&srv, conf.nsubs[i], &c->same, c);
			}
		server_stop(&srv);
	}
	for (i = 0; i < conf.nnsubs; i++) {
		for (run = 0; run < conf.runs; run++) {
			sec = limit_fanout(conf.nsubs[i],
			    (size_t)conf.updates * frame);
			v[run] = sec > 0 ? (double)conf.updates *
			    conf.nsubs[i] / sec : -1;
		}
		stat3_of(&lim[i], v, conf.runs);
		say("tcp-limit %3d subs: %s deliveries/s", conf.nsubs[i],
		    fmt_si(b[0], sizeof(b[0]), lim[i].med));
	}

	snprintf(title, sizeof(title), "fan-out peak: deliveries/s, 1 "
	    "publisher, %ld updates of %zu-byte records (key+fields) over "
	    "%ld keys; median [min..max] of %d runs", conf.updates,
	    rec_raw_bytes(&r), conf.keys, conf.runs);
	tab_init(&t, title, 9, "subs", "ispd", "redis", "nats", "tcp-limit",
	    "ispd/redis", "ispd/nats", "ispd/limit", "ispd-batch*");
	for (i = 0; i < conf.nnsubs; i++) {
		snprintf(b[0], sizeof(b[0]), "%d", conf.nsubs[i]);
		for (k = SYS_ISPD; k < SYS_TCP; k++)
			fmt_stat(a[k], sizeof(a[k]), &cells[i][k].s_thr, "");
		fmt_stat(a[SYS_TCP], sizeof(a[SYS_TCP]), &lim[i], "");
		tab_row(&t, b[0], sys_enabled(SYS_ISPD) ? a[SYS_ISPD] : "-",
		    sys_enabled(SYS_REDIS) ? a[SYS_REDIS] : "-",
		    sys_enabled(SYS_NATS) ? a[SYS_NATS] : "-", a[SYS_TCP],
		    fmt_ratio(b[1], sizeof(b[1]), cells[i][SYS_ISPD].s_thr.med,
		    cells[i][SYS_REDIS].s_thr.med),
		    fmt_ratio(b[2], sizeof(b[2]), cells[i][SYS_ISPD].s_thr.med,
		    cells[i][SYS_NATS].s_thr.med),
		    fmt_ratio((char[24]){ 0 }, 24, cells[i][SYS_ISPD].s_thr.med,
		    lim[i].med), fmt_stat(a[NCOL], sizeof(a[NCOL]),
		    &cells[i][COL_BATCH].s_thr, ""));
	}
	tab_note(&t, "* ispd-batch: ispd with the bench's own publisher, "
	    "which writes ANNOUNCE frames (libisp's codec) 64 KiB at a time; "
	    "a diagnostic beside libisp, which batches its writes itself.");
	tab_note(&t, "tcp-limit: the same bytes (%zu per ispd event frame) "
	    "written in 64 KiB chunks by one process to N reader processes "
	    "over TCP loopback.", frame);
	tab_note(&t, "The publisher stays at most %ld updates ahead of the "
	    "slowest subscriber, so no system drops or disconnects anyone.",
	    conf.window);
	for (i = 0; i < conf.nnsubs; i++)
		for (b1 = 0; b1 < NCOL; b1++)
			if (cells[i][b1].err[0] != '\0')
				tab_note(&t, "%s, %d subs: %s", b1 == COL_BATCH ?
				    "ispd-batch" : sys_name(b1), conf.nsubs[i],
				    cells[i][b1].err);
	tab_print(&t);
	tab_free(&t);
	fan_cpu_table(cells);
	fan_targets(cells, lim);

	fan_lat_table(cells, 0);
	fan_lat_table(cells, 1);

	/* For the plot. */
	snprintf(path, sizeof(path), "%s/fanout.dat", conf.outdir);
	if ((f = fopen(path, "w")) != NULL) {
		fprintf(f, "# subs ispd redis nats tcp-limit (deliveries/s) "
		    "p99 (us) at own peak fraction: ispd redis nats; at the "
		    "same load: ispd redis nats; ispd-batch deliveries/s, p99 "
		    "own, p99 same\n");
		for (i = 0; i < conf.nnsubs; i++)
			fprintf(f, "%d %.0f %.0f %.0f %.0f %.1f %.1f %.1f %.1f "
			    "%.1f %.1f %.0f %.1f %.1f\n",
			    conf.nsubs[i], cells[i][SYS_ISPD].s_thr.med,
			    cells[i][SYS_REDIS].s_thr.med,
			    cells[i][SYS_NATS].s_thr.med, lim[i].med,
			    cells[i][SYS_ISPD].own.s_p99.med,
			    cells[i][SYS_REDIS].own.s_p99.med,
			    cells[i][SYS_NATS].own.s_p99.med,
			    cells[i][SYS_ISPD].same.s_p99.med,
			    cells[i][SYS_REDIS].same.s_p99.med,
			    cells[i][SYS_NATS].same.s_p99.med,
			    cells[i][COL_BATCH].s_thr.med,
			    cells[i][COL_BATCH].own.s_p99.med,
			    cells[i][COL_BATCH].same.s_p99.med);
		fclose(f);
	}
}

void
scen_refresh(void)
{
	struct fan_result	 res;
	struct fan_job		 job;
	struct server		 srv;
	struct stat3		 s_cpu, s_msg, s_wk;
	struct tab		 t;
	char			 title[256], a[64], b[64], c[64], d[64], e[64];
	double			 cpu[64], msg[64], wk[64], rate;
	enum sys_kind		 k;
	int			 r;

	rate = conf.refresh_regs / conf.refresh_period;
	snprintf(title, sizeof(title), "SIP refresh load: %ld registrations "
	    "refreshed every %.0f s (99%% unchanged, 1%% new contact), %d "
	    "subscribers; %.0f s measured, median [min..max] of %d runs",
	    conf.refresh_regs, conf.refresh_period, conf.refresh_subs,
	    conf.refresh_window, conf.runs);
	tab_init(&t, title, 6, "system", "refreshes/s in", "messages/s out",
	    "server wakeups/s", "server CPU, % of a core", "target");
	for (k = SYS_ISPD; k < SYS_TCP; k++) {
		if (!sys_enabled(k))
			continue;
		if (server_start(&srv, k) == -1)
			continue;
		for (r = 0; r < conf.runs; r++) {
			job_init(&job, &srv, conf.refresh_subs);
			job.keys = conf.refresh_regs;
			job.updates = 0;
			job.window = 0;
			job.rate = rate;
			job.refresh = 1;
			job.preload = k == SYS_ISPD ? conf.refresh_regs : 0;
			fan_run(&job, &res, 0, conf.refresh_window);
			cpu[r] = res.ok ? res.srv_cpu : -1;
			msg[r] = res.ok ? res.per_s : -1;
			wk[r] = res.ok ? res.srv_wakeups : -1;
			say("%-5s refresh run %d: %.0f refreshes/s, %.0f "
			    "messages/s, server CPU %.2f%%, %.0f wakeups/s%s%s",
			    sys_name(k), r + 1, rate, msg[r], cpu[r], wk[r],
			    res.ok ? "" : " -- ", res.err);
			if (!res.ok)
				tab_note(&t, "%s: %s", sys_name(k), res.err);
		}
		server_stop(&srv);
		stat3_of(&s_cpu, cpu, conf.runs);
		stat3_of(&s_msg, msg, conf.runs);
		stat3_of(&s_wk, wk, conf.runs);
		snprintf(d, sizeof(d), "%s", k != SYS_ISPD ? "" :
		    s_cpu.med >= 0 && s_cpu.med < 5 ? "< 5%: met" :
		    "< 5%: MISSED");
		tab_row(&t, sys_name(k), fmt_si(a, sizeof(a), rate),
		    fmt_stat(b, sizeof(b), &s_msg, ""),
		    fmt_stat(e, sizeof(e), &s_wk, ""),
		    fmt_stat(c, sizeof(c), &s_cpu, "%"), d);
		if (k == SYS_ISPD) {
			snprintf(d, sizeof(d), "%.2f%% of a core", s_cpu.med);
			target("SIP refresh load < 5% of one core", d,
			    s_cpu.n == 0 ? -1 : s_cpu.med < 5);
		}
	}
	tab_note(&t, "ispd sends only the changed 1%%; Redis and NATS hold no "
	    "state, so every refresh is a message to every subscriber.");
	tab_note(&t, "CPU from /proc/PID/task/*/schedstat, over the "
	    "measured window, after the preload and the snapshots; wakeups: "
	    "voluntary context switches of the server's threads.");
	tab_print(&t);
	tab_free(&t);
}
