/*
 * state: the scenarios about a table held by the server.
 *
 *	snapshot	a new subscriber joins a table of N records: seconds
 *			until the end marker, and MB/s; beside it Redis
 *			answering HGETALL of the same records in one hash,
 *			and the same bytes through a plain socket
 *	memory		the server's RSS per record, against the bytes of
 *			the key and fields themselves
 *	withdraw	the owner of N records is killed: seconds until
 *			every subscriber's mirror is empty (Redis and NATS
 *			have no owner to kill, so ispd stands alone)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "isp.h"
#include "bench.h"

#define STATE_MAX_SUBS	64
#define LOADER_NAME	"bench-loader"

struct state_shm {
	_Atomic int	 loaded;
	_Atomic int	 ready;
	_Atomic int	 stop;
	double		 load_s;
	char		 err[200];
	uint64_t	 t0_ns;
	uint64_t	 snap_ns;
	uint64_t	 snap_count;
	uint64_t	 snap_bytes;
	uint64_t	 done_ns[STATE_MAX_SUBS];
	uint64_t	 wd_count[STATE_MAX_SUBS];
	int		 ok[STATE_MAX_SUBS];
};

struct state_job {
	struct server		*srv;
	struct state_shm	*shm;
	long			 records;
	int			 index;
	int			 mirror;
};

static void
state_err(struct state_shm *shm, const char *what, const char *why)
{
	snprintf(shm->err, sizeof(shm->err), "%s: %s", what, why);
}

static isp_client *
state_connect(struct state_job *job, const char *name)
{
	struct isp_options	 o;
	isp_client		*c;

	isp_options_init(&o);
	o.server = job->srv->addr;
	o.name = name;
	if ((c = isp_new(&o)) == NULL)
		return NULL;
	if (isp_connect(c) != ISP_OK) {
		state_err(job->shm, name, isp_errmsg(c));
		isp_free(c);
		return NULL;
	}
	return c;
}

/* Announces the records, waits until ispd has them, then holds the
 * session (and so the records) until stopped or killed. */
static int
ispd_loader(void *arg)
{
	struct state_job	*job = arg;
	struct isp_field	 f[4];
	struct rec		 r;
	isp_client		*c;
	uint64_t		 t0;
	long			 i;

	if ((c = state_connect(job, LOADER_NAME)) == NULL)
		return 1;
	t0 = now_ns();
	for (i = 0; i < job->records; i++) {
		rec_make(&r, (uint64_t)i, 0);
		rec_stamp(&r, (uint64_t)i, 0);
		f[0].name = "stamp";
		f[0].value = r.stamp;
		f[0].value_len = REC_STAMP_BYTES;
		f[1].name = "contact";
		f[1].value = r.contact;
		f[1].value_len = r.contact_len;
		f[2].name = "expires";
		f[2].value = r.expires;
		f[2].value_len = strlen(r.expires);
		f[3].name = "server";
		f[3].value = r.server;
		f[3].value_len = strlen(r.server);
		if (isp_announce(c, BENCH_TABLE, r.key, r.key_len, f, 4, 0) !=
		    ISP_OK) {
			state_err(job->shm, "announce", isp_errmsg(c));
			return 1;
		}
		if (i % 4096 == 0 && isp_process(c) != ISP_OK) {
			state_err(job->shm, "announce", isp_errmsg(c));
			return 1;
		}
		/* A round trip now and then: libisp sends no PING while
		 * its output is pending, and a load longer than the hold
		 * time would otherwise hear nothing from ispd and give up
		 * on it. */
		if (i % 65536 == 65535 && isp_sync(c, 60000) != ISP_OK) {
			state_err(job->shm, "sync during the load",
			    isp_errmsg(c));
			return 1;
		}
	}
	if (isp_sync(c, 300000) != ISP_OK) {
		state_err(job->shm, "sync after the load", isp_errmsg(c));
		return 1;
	}
	job->shm->load_s = (double)(now_ns() - t0) / 1e9;
	atomic_store(&job->shm->loaded, 1);
	while (!atomic_load(&job->shm->stop))
		if (isp_run(c, 100) != ISP_OK)
			return 1;
	isp_free(c);
	return 0;
}

static int
redis_loader(void *arg)
{
	struct state_job	*job = arg;
	struct timeval		 tv = { 10, 0 };
	redisContext		*c;
	redisReply		*rep;
	struct rec		 r;
	uint64_t		 t0;
	long			 i, pending = 0;

	c = redisConnectWithTimeout("127.0.0.1", job->srv->port, tv);
	if (c == NULL || c->err) {
		state_err(job->shm, "redis", c ? c->errstr : "no memory");
		return 1;
	}
	t0 = now_ns();
	for (i = 0; i < job->records; i++) {
		rec_make(&r, (uint64_t)i, 0);
		rec_stamp(&r, (uint64_t)i, 0);
		/* The value is the record as text, stamp included, so the
		 * data is the same bytes as ispd's key and fields. */
		redisAppendCommand(c, "HSET %s %b %b", BENCH_TABLE, r.key,
		    r.key_len, r.text + REC_STAMP_BYTES + 1 + r.key_len + 1,
		    r.text_len - REC_STAMP_BYTES - 1 - r.key_len - 1);
		if (++pending == 1024 || i == job->records - 1) {
			while (pending > 0) {
				if (redisGetReply(c, (void **)&rep) !=
				    REDIS_OK) {
					state_err(job->shm, "HSET", c->errstr);
					return 1;
				}
				freeReplyObject(rep);
				pending--;
			}
		}
	}
	job->shm->load_s = (double)(now_ns() - t0) / 1e9;
	atomic_store(&job->shm->loaded, 1);
	redisFree(c);
	return 0;
}

static void
snap_event(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct state_job	*job = arg;
	size_t			 i, b;

	if (ev->type == ISP_EV_END) {
		job->shm->snap_ns = now_ns() - job->shm->t0_ns;
		return;
	}
	/* What ispd sent for it: the EV_ANNOUNCE frame. */
	b = 4 + 1 + 1 + strlen(ev->table) + 8 + 2 + ev->rec.key_len + 8 + 2 +
	    strlen(ev->rec.owner) + 2;
	for (i = 0; i < ev->rec.nfields; i++)
		b += 1 + strlen(ev->rec.fields[i].name) + 4 +
		    ev->rec.fields[i].value_len;
	job->shm->snap_bytes += b;
	job->shm->snap_count++;
}

/* A new subscriber: the time from its SUBSCRIBE to the end marker. */
static int
ispd_snapshot(void *arg)
{
	struct state_job	*job = arg;
	isp_mirror		*m = NULL;
	isp_client		*c;
	double			 deadline = now_s() + conf.run_timeout;

	if ((c = state_connect(job, "bench-snapshot")) == NULL)
		return 1;
	job->shm->t0_ns = now_ns();
	if (job->mirror) {
		if ((m = isp_mirror_new(c, BENCH_TABLE, NULL, 0, NULL,
		    NULL)) == NULL)
			return 1;
		while (!isp_mirror_ready(m) && now_s() < deadline)
			if (isp_run(c, 50) != ISP_OK)
				return 1;
		job->shm->snap_ns = now_ns() - job->shm->t0_ns;
		job->shm->snap_count = isp_mirror_count(m);
	} else {
		if (isp_subscribe(c, BENCH_TABLE, NULL, 0, ISP_SUB_ONCE,
		    snap_event, job) != ISP_OK)
			return 1;
		while (job->shm->snap_ns == 0 && now_s() < deadline)
			if (isp_run(c, 50) != ISP_OK)
				return 1;
	}
	/* Freeing a million-record mirror is not part of the figure. */
	_exit(job->shm->snap_ns > 0 ? 0 : 1);
}

static int
redis_snapshot(void *arg)
{
	struct state_job	*job = arg;
	struct timeval		 tv = { 60, 0 };
	redisContext		*c;
	redisReply		*r;
	size_t			 i, b;

	c = redisConnectWithTimeout("127.0.0.1", job->srv->port, tv);
	if (c == NULL || c->err)
		return 1;
	job->shm->t0_ns = now_ns();
	if ((r = redisCommand(c, "HGETALL %s", BENCH_TABLE)) == NULL)
		return 1;
	job->shm->snap_ns = now_ns() - job->shm->t0_ns;
	job->shm->snap_count = r->elements / 2;
	/* RESP: "*N\r\n", then "$LEN\r\nDATA\r\n" per element. */
	for (i = 0, b = 16; i < r->elements; i++)
		b += r->element[i]->len + 5 + (r->element[i]->len >= 100 ? 3 :
		    2);
	job->shm->snap_bytes = b;
	_exit(0);
}

/* Runs fn in a child; returns its exit status, 0 when all went well. */
static int
state_child(int (*fn)(void *), struct state_job *job)
{
	pid_t	 pid;

	if ((pid = child_start(fn, job)) <= 0)
		return 1;
	return children_wait(&pid, 1, now_s() + conf.run_timeout) == 1 ? 0 :
	    1;
}

/* Starts the loader and waits until the server has every record.
 * Returns the loader's pid (to kill or to stop), or -1. */
static pid_t
state_load(struct state_job *job, int (*loader)(void *))
{
	double	 deadline = now_s() + conf.run_timeout;
	pid_t	 pid;

	if ((pid = child_start(loader, job)) <= 0)
		return -1;
	while (!atomic_load(&job->shm->loaded) && now_s() < deadline &&
	    job->shm->err[0] == '\0')
		sleep_ns(5000000);
	if (!atomic_load(&job->shm->loaded)) {
		child_kill(pid);
		if (job->shm->err[0] == '\0')
			state_err(job->shm, "load", "timed out");
		return -1;
	}
	return pid;
}

struct snap_row {
	double	 sec[64];
	double	 rate[64];
	double	 mbps[64];
	double	 bytes;
	long	 count;
};

void
scen_snapshot_memory(void)
{
	struct snap_row		 rows[4];	/* ispd, ispd mirror, redis,
						 * tcp */
	struct state_job	 job;
	struct server		 srv;
	struct stat3		 s[3];
	struct tab		 t;
	struct rec		 r;
	char			 title[256], a[4][64];
	const char		*names[4] = { "ispd (callback)", "ispd (mirror)",
	    "redis HGETALL", "tcp-limit" };
	double			 rss_per[2] = { -1, -1 }, raw[2] = { 0, 0 };
	double			 load_s[2] = { -1, -1 }, goal_s;
	long			 rss0, rss1;
	pid_t			 loader;
	int			 i, run, ok;

	memset(rows, 0, sizeof(rows));
	for (i = 0; i < 4; i++)
		for (run = 0; run < 64; run++)
			rows[i].sec[run] = rows[i].rate[run] =
			    rows[i].mbps[run] = -1;
	rec_make(&r, 123456, 0);
	raw[0] = (double)rec_raw_bytes(&r);
	raw[1] = (double)(r.key_len + r.text_len - REC_STAMP_BYTES - 1 -
	    r.key_len - 1);

	/* ispd: load, weigh, then new subscribers. */
	memset(&job, 0, sizeof(job));
	job.records = conf.snap_records;
	if (server_start(&srv, SYS_ISPD) == 0) {
		job.srv = &srv;
		job.shm = shm_alloc(sizeof(*job.shm));
		sleep_ns(200000000);
		rss0 = proc_rss(srv.pid);
		if ((loader = state_load(&job, ispd_loader)) > 0) {
			load_s[0] = job.shm->load_s;
			rss1 = proc_rss(srv.pid);
			rss_per[0] = (double)(rss1 - rss0) / job.records;
			say("ispd: %ld records loaded in %.2f s, RSS %ld -> %ld",
			    job.records, job.shm->load_s, rss0, rss1);
			for (run = 0; run < conf.runs * 2; run++) {
				i = run % 2;
				job.mirror = i;
				job.shm->snap_ns = job.shm->snap_count =
				    job.shm->snap_bytes = 0;
				ok = state_child(ispd_snapshot, &job) == 0 &&
				    job.shm->snap_count == (uint64_t)job.records;
				if (i == 1)	/* the mirror counts no bytes */
					job.shm->snap_bytes =
					    (uint64_t)rows[0].bytes;
				rows[i].sec[run / 2] = ok ?
				    job.shm->snap_ns / 1e9 : -1;
				rows[i].rate[run / 2] = ok ? job.records /
				    rows[i].sec[run / 2] : -1;
				rows[i].mbps[run / 2] = ok ?
				    job.shm->snap_bytes / 1e6 /
				    rows[i].sec[run / 2] : -1;
				if (ok && i == 0)
					rows[0].bytes =
					    (double)job.shm->snap_bytes;
				say("%s snapshot run %d: %.3f s, %llu records",
				    names[i], run / 2 + 1, rows[i].sec[run / 2],
				    (unsigned long long)job.shm->snap_count);
			}
			atomic_store(&job.shm->stop, 1);
			(void)children_wait(&loader, 1, now_s() + 30);
		} else
			say("ispd load failed: %s", job.shm->err);
		shm_free(job.shm, sizeof(*job.shm));
		server_stop(&srv);
	}

	if (conf.with_redis && server_start(&srv, SYS_REDIS) == 0) {
		memset(&job, 0, sizeof(job));
		job.records = conf.snap_records;
		job.srv = &srv;
		job.shm = shm_alloc(sizeof(*job.shm));
		sleep_ns(200000000);
		rss0 = proc_rss(srv.pid);
		if ((loader = state_load(&job, redis_loader)) > 0) {
			(void)children_wait(&loader, 1, now_s() + 30);
			load_s[1] = job.shm->load_s;
			rss1 = proc_rss(srv.pid);
			rss_per[1] = (double)(rss1 - rss0) / job.records;
			for (run = 0; run < conf.runs; run++) {
				job.shm->snap_ns = job.shm->snap_count = 0;
				ok = state_child(redis_snapshot, &job) == 0 &&
				    job.shm->snap_count == (uint64_t)job.records;
				rows[2].sec[run] = ok ? job.shm->snap_ns / 1e9 :
				    -1;
				rows[2].rate[run] = ok ? job.records /
				    rows[2].sec[run] : -1;
				rows[2].mbps[run] = ok ? job.shm->snap_bytes /
				    1e6 / rows[2].sec[run] : -1;
				say("redis HGETALL run %d: %.3f s", run + 1,
				    rows[2].sec[run]);
			}
		}
		shm_free(job.shm, sizeof(*job.shm));
		server_stop(&srv);
	}

	if (rows[0].bytes > 0)
		for (run = 0; run < conf.runs; run++) {
			rows[3].sec[run] = limit_stream((size_t)rows[0].bytes);
			if (rows[3].sec[run] > 0) {
				rows[3].rate[run] = conf.snap_records /
				    rows[3].sec[run];
				rows[3].mbps[run] = rows[0].bytes / 1e6 /
				    rows[3].sec[run];
			}
		}

	snprintf(title, sizeof(title), "snapshot: a new subscriber joins a "
	    "table of %ld records; median [min..max] of %d runs",
	    conf.snap_records, conf.runs);
	tab_init(&t, title, 5, "system", "seconds to end marker",
	    "records/s", "MB/s", "target");
	goal_s = conf.snap_records >= 1000000 ? 1.0 :
	    (double)conf.snap_records / 1e6;
	for (i = 0; i < 4; i++) {
		if (i == 2 && !conf.with_redis)
			continue;
		stat3_of(&s[0], rows[i].sec, conf.runs);
		stat3_of(&s[1], rows[i].rate, conf.runs);
		stat3_of(&s[2], rows[i].mbps, conf.runs);
		snprintf(a[3], sizeof(a[3]), "%s", i > 1 ? "" : s[0].n == 0 ?
		    "failed" : s[0].med < goal_s ? "< 1 s per 1M: met" :
		    "< 1 s per 1M: MISSED");
		if (i == 0) {
			snprintf(title, sizeof(title), "%.3f s for %ld "
			    "records", s[0].med, conf.snap_records);
			target("snapshot of 1M records < 1 s", title, s[0].n ==
			    0 ? -1 : s[0].med < goal_s);
		}
		tab_row(&t, names[i], fmt_stat(a[0], sizeof(a[0]), &s[0], " s"),
		    fmt_stat(a[1], sizeof(a[1]), &s[1], ""),
		    fmt_stat(a[2], sizeof(a[2]), &s[2], ""), a[3]);
	}
	tab_note(&t, "ispd (callback): libisp hands each record to a "
	    "callback; (mirror): isp_mirror_new() builds the in-memory copy.");
	tab_note(&t, "redis: the same records as fields of one hash, read "
	    "by one HGETALL; tcp-limit: ispd's snapshot bytes (%.0f MB) "
	    "through one plain socket.", rows[0].bytes / 1e6);
	tab_print(&t);
	tab_free(&t);

	snprintf(title, sizeof(title), "memory: server RSS per record at "
	    "%ld records", conf.snap_records);
	tab_init(&t, title, 6, "system", "RSS per record",
	    "key+fields bytes", "overhead per record", "load time", "target");
	for (i = 0; i < 2; i++) {
		if (i == 1 && !conf.with_redis)
			continue;
		snprintf(a[0], sizeof(a[0]), "%.0f B", rss_per[i]);
		snprintf(a[1], sizeof(a[1]), "%.0f B", raw[i]);
		snprintf(a[2], sizeof(a[2]), "%.0f B", rss_per[i] - raw[i]);
		snprintf(a[3], sizeof(a[3]), "%.2f s", load_s[i]);
		tab_row(&t, i == 0 ? "ispd" : "redis (one hash)",
		    rss_per[i] < 0 ? "failed" : a[0], a[1],
		    rss_per[i] < 0 ? "-" : a[2], a[3], i != 0 ? "" :
		    rss_per[i] < 0 ? "failed" : rss_per[i] - raw[i] < 100 ?
		    "< 100 B: met" : "< 100 B: MISSED");
	}
	snprintf(a[0], sizeof(a[0]), "%.0f B", rss_per[0] - raw[0]);
	target("overhead per record < 100 B", a[0], rss_per[0] < 0 ? -1 :
	    rss_per[0] - raw[0] < 100);
	tab_note(&t, "RSS after the load minus RSS before it, divided by "
	    "the records; load time: one client announcing (HSET) them all.");
	tab_print(&t);
	tab_free(&t);
}

static void
wd_change(isp_client *c, const struct isp_event *ev, void *arg)
{
	struct state_job	*job = arg;
	uint64_t		 n;

	if (ev->type != ISP_EV_WITHDRAW)
		return;
	n = ++job->shm->wd_count[job->index];
	if (n == (uint64_t)job->records)
		job->shm->done_ns[job->index] = now_ns();
}

/* A subscriber with a mirror: ready once it holds every record, done
 * once it has applied every withdrawal. */
static int
wd_subscriber(void *arg)
{
	struct state_job	*job = arg;
	struct state_shm	*shm = job->shm;
	isp_mirror		*m;
	isp_client		*c;
	double			 deadline = now_s() + conf.run_timeout;

	if ((c = state_connect(job, "bench-mirror")) == NULL)
		return 1;
	if ((m = isp_mirror_new(c, BENCH_TABLE, NULL, 0, wd_change, job)) ==
	    NULL)
		return 1;
	while ((!isp_mirror_ready(m) ||
	    isp_mirror_count(m) < (size_t)job->records) && now_s() < deadline)
		if (isp_run(c, 50) != ISP_OK)
			return 1;
	atomic_fetch_add(&shm->ready, 1);
	while (shm->done_ns[job->index] == 0 && !atomic_load(&shm->stop))
		if (isp_run(c, 20) != ISP_OK)
			return 1;
	shm->ok[job->index] = isp_mirror_count(m) == 0;
	_exit(0);
}

void
scen_withdraw(void)
{
	struct state_job	 job;
	struct server		 srv;
	struct stat3		 s, sc;
	struct tab		 t;
	pid_t			 pids[STATE_MAX_SUBS], loader;
	char			 title[256], a[64], b[64], note[256] = "";
	double			 sec[64], cpu[64], deadline, c0;
	uint64_t		 last;
	int			 run, i, n, done;

	n = conf.wd_subs > STATE_MAX_SUBS ? STATE_MAX_SUBS : conf.wd_subs;
	for (run = 0; run < conf.runs; run++) {
		sec[run] = cpu[run] = -1;
		if (server_start(&srv, SYS_ISPD) == -1)
			continue;
		memset(&job, 0, sizeof(job));
		job.srv = &srv;
		job.records = conf.wd_records;
		job.shm = shm_alloc(sizeof(*job.shm));
		if ((loader = state_load(&job, ispd_loader)) <= 0) {
			snprintf(note, sizeof(note), "load: %s", job.shm->err);
			goto next;
		}
		for (i = 0; i < n; i++) {
			job.index = i;
			pids[i] = child_start(wd_subscriber, &job);
		}
		deadline = now_s() + conf.run_timeout;
		while (atomic_load(&job.shm->ready) < n && now_s() < deadline)
			sleep_ns(5000000);
		if (atomic_load(&job.shm->ready) < n) {
			snprintf(note, sizeof(note), "subscribers did not get "
			    "their snapshots in time");
			child_kill(loader);
			goto stop;
		}
		c0 = proc_cpu_s(srv.pid);
		job.shm->t0_ns = now_ns();
		kill(loader, SIGKILL);
		deadline = now_s() + conf.run_timeout;
		do {
			sleep_ns(1000000);
			for (i = 0, done = 0; i < n; i++)
				done += job.shm->done_ns[i] != 0;
		} while (done < n && now_s() < deadline);
		child_kill(loader);
		if (done == n) {
			for (i = 0, last = 0; i < n; i++)
				if (job.shm->done_ns[i] > last)
					last = job.shm->done_ns[i];
			sec[run] = (double)(last - job.shm->t0_ns) / 1e9;
			cpu[run] = proc_cpu_s(srv.pid) - c0;
		} else
			snprintf(note, sizeof(note), "only %d of %d "
			    "subscribers applied every withdrawal", done, n);
		say("withdraw run %d: %.3f s, ispd CPU %.2f s", run + 1,
		    sec[run], cpu[run]);
stop:
		atomic_store(&job.shm->stop, 1);
		(void)children_wait(pids, n, now_s() + 60);
next:
		shm_free(job.shm, sizeof(*job.shm));
		server_stop(&srv);
	}
	stat3_of(&s, sec, conf.runs);
	stat3_of(&sc, cpu, conf.runs);
	snprintf(title, sizeof(title), "mass withdraw: the owner of %ld "
	    "records is killed (SIGKILL), %d subscribers with mirrors; "
	    "median [min..max] of %d runs", conf.wd_records, n, conf.runs);
	tab_init(&t, title, 5, "system", "seconds until all mirrors empty",
	    "withdrawals applied/s", "ispd CPU seconds", "target");
	tab_row(&t, "ispd", fmt_stat(a, sizeof(a), &s, " s"),
	    fmt_si((char[24]){ 0 }, 24, s.n ? conf.wd_records * (double)n /
	    s.med : -1), fmt_stat(b, sizeof(b), &sc, " s"),
	    s.n == 0 ? "failed" : s.med < 2.0 * conf.wd_records / 1e6 ?
	    "< 2 s per 1M: met" : "< 2 s per 1M: MISSED");
	snprintf(b, sizeof(b), "%.3f s for %ld records, %d subs", s.med,
	    conf.wd_records, n);
	target("mass withdraw of 1M records, 10 subs < 2 s", b, s.n == 0 ? -1 :
	    s.med < 2.0 * conf.wd_records / 1e6);
	tab_row(&t, "redis, nats", "no owner to kill: no equivalent", "",
	    "", "");
	if (note[0] != '\0')
		tab_note(&t, "%s", note);
	tab_note(&t, "From the SIGKILL to the last mirror applying the last "
	    "withdrawal (the kernel's reset, ispd's teardown, the fan-out, "
	    "libisp).");
	tab_print(&t);
	tab_free(&t);
}
