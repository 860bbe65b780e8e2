/*
 * ispd-bench: ispd measured side by side with Redis pub/sub, NATS core
 * and a plain TCP loopback socket pair, on one machine, in one run.
 *
 *	bench.c		options, machine facts, the order of scenarios
 *	util.c		clocks, shared memory, statistics, /proc readers,
 *			child processes, SIP-like records, tables of results
 *	servers.c	starting and stopping ispd, redis-server, nats-server
 *	systems.c	one publisher and one subscriber per system
 *	fanout.c	fan-out (throughput, latency) and the SIP refresh load
 *	state.c		snapshot, memory per record, mass withdraw
 *	sessions.c	idle sessions with keepalives
 *	limit.c		the loopback limit: bytes through plain sockets
 *
 * The coordinator (main) never links a client library into its own
 * state: every publisher and subscriber is a forked child, so each runs
 * on its own scheduler entity, as real clients would, and libraries that
 * start threads (cnats) never cross a fork.
 */
#ifndef ISP_BENCH_H
#define ISP_BENCH_H

#include <sys/types.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_SUBS		512
#define BENCH_MAX_COLS		12
#define BENCH_CELL_BYTES	64
#define BENCH_TABLE		"SIP_REGISTRATION"
#define BENCH_CHANNEL		"SIP_REGISTRATION"

/* Options; defaults in bench.c, "--quick" shrinks every size. */
struct bench_conf {
	const char	*build;		/* where ispd is */
	const char	*outdir;	/* results.txt, fanout.dat, plot */
	int		 quick;
	int		 runs;
	int		 nsubs[8];	/* fan-out subscriber counts */
	int		 nnsubs;
	long		 updates;	/* fan-out updates */
	long		 keys;		/* fan-out distinct keys */
	long		 window;	/* max updates in flight */
	double		 lat_fraction;	/* of the peak rate */
	double		 lat_seconds;	/* cap of a latency run */
	long		 snap_records;
	long		 wd_records;
	int		 wd_subs;
	long		 refresh_regs;
	int		 refresh_subs;
	double		 refresh_period;	/* seconds per full refresh */
	double		 refresh_window;	/* seconds measured */
	long		 sessions;
	double		 sessions_window;
	double		 run_timeout;	/* seconds, per measured run */
	int		 with_redis;
	int		 with_nats;
	const char	*only;		/* comma list of scenarios, or NULL */
	long		 max_queue_bytes;	/* 0: ispd's default */
	double		 wait_quiet;	/* seconds to wait for a quiet machine */
	int		 nice;		/* priority of the bench and servers */
};

extern struct bench_conf	 conf;

/* A running server. */
enum sys_kind {
	SYS_ISPD,
	SYS_REDIS,
	SYS_NATS,
	SYS_TCP,
	SYS_COUNT,
};

struct server {
	enum sys_kind	 kind;
	pid_t		 pid;
	int		 port;
	char		 addr[64];	/* 127.0.0.1:PORT */
	char		 dir[64];	/* its temporary directory */
	char		 log[96];
};

/* servers.c */
int		 server_start(struct server *, enum sys_kind);
void		 server_stop(struct server *);
void		 server_stop_all(void);
int		 ispd_has_option(const char *);
const char	*sys_name(enum sys_kind);
void		 server_versions(char *, size_t);

/* util.c: time */
uint64_t	 now_ns(void);
double		 now_s(void);
/* CPU seconds this process used so far, user + system. */
double		 self_cpu_s(void);
void		 sleep_ns(uint64_t);

/* util.c: shared memory between the coordinator and its children. */
void		*shm_alloc(size_t);
void		 shm_free(void *, size_t);

/* util.c: children. fn runs in the child, whose exit status is what it
 * returns. */
pid_t		 child_start(int (*fn)(void *), void *arg);
/* Waits for the children, killing those still alive at deadline (a
 * now_s() time). Returns how many exited with status 0. */
int		 children_wait(pid_t *, int n, double deadline);
void		 child_kill(pid_t);

/* util.c: /proc */
/* CPU seconds (user + system) the process used so far; -1 on error. */
double		 proc_cpu_s(pid_t);
/* Resident set size in bytes; -1 on error. */
long		 proc_rss(pid_t);
/* Voluntary context switches (the main thread's sleeps); -1 on error. */
long		 proc_wakeups(pid_t);
void		 machine_facts(char *, size_t);
double		 machine_busy(double seconds, double *niced);

/* util.c: statistics */
struct stat3 {
	double	 med, min, max;
	int	 n;
};

void		 stat3_of(struct stat3 *, const double *, int n);
/* The p-quantile (0..1) of n sorted values. */
double		 quantile_u32(const uint32_t *sorted, size_t n, double p);
void		 sort_u32(uint32_t *, size_t);

/* util.c: SIP-like records. A registration's key and fields; the
 * "stamp" field carries the update's index and its send time, so a
 * subscriber can tell progress and latency. */
#define REC_STAMP_BYTES	31
struct rec {
	char	 key[64];
	size_t	 key_len;
	char	 contact[96];
	size_t	 contact_len;
	char	 expires[16];
	char	 server[16];
	char	 stamp[REC_STAMP_BYTES + 1];
	/* The same record as one text line for Redis and NATS. */
	char	 text[256];
	size_t	 text_len;
};

void		 rec_make(struct rec *, uint64_t key_idx, uint64_t variant);
void		 rec_stamp(struct rec *, uint64_t idx, uint64_t ns);
int		 rec_parse_stamp(const void *, size_t, uint64_t *idx,
		    uint64_t *ns);
/* Bytes of key plus field names and values: the data itself. */
size_t		 rec_raw_bytes(const struct rec *);
/* Bytes of the EV_ANNOUNCE frame ispd sends for it. */
size_t		 rec_frame_bytes(const struct rec *, size_t owner_len);

/* util.c: tables of results */
struct tab {
	char	 title[256];
	int	 ncols;
	int	 nrows;
	char	 head[BENCH_MAX_COLS][BENCH_CELL_BYTES];
	char	 (*cell)[BENCH_MAX_COLS][BENCH_CELL_BYTES];
	int	 cap;
	char	 notes[1024];
};

void		 tab_init(struct tab *, const char *title, int ncols, ...);
void		 tab_row(struct tab *, ...);
void		 tab_note(struct tab *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 tab_print(struct tab *);
void		 tab_free(struct tab *);
/* "1.23M [1.20M..1.25M]" and friends. */
char		*fmt_si(char *, size_t, double);
char		*fmt_stat(char *, size_t, const struct stat3 *,
		    const char *unit);
char		*fmt_ratio(char *, size_t, double, double);
/* Lines of results also go to outdir/results.txt. */
void		 out_printf(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 out_open(void);
void		 out_close(void);
void		 say(const char *, ...) __attribute__((format(printf, 1, 2)));

/* systems.c: one publisher and one subscriber per system, for fan-out
 * and the refresh load. */
struct sub_slot {
	_Atomic uint64_t progress;	/* highest update index seen + 1 */
	_Atomic uint64_t count;		/* deliveries */
	uint64_t	 first_ns;
	uint64_t	 last_ns;
	uint64_t	 nlat;
	int		 ready;
	int		 done;
	double		 cpu_s;		/* its CPU, user + system */
	char		 err[120];
	char		 pad[64];
};

struct fan_shm {
	_Atomic int	 ready;		/* subscribers subscribed */
	_Atomic int	 pub_ready;
	_Atomic int	 go;
	_Atomic int	 stop;		/* coordinator: give up */
	uint64_t	 pub_start_ns;
	uint64_t	 pub_end_ns;
	uint64_t	 published;
	double		 pub_cpu_s;	/* from go to its last update */
	char		 pub_err[160];
	struct sub_slot	 subs[BENCH_MAX_SUBS];
};

/* What one fan-out or refresh run asks of its children. */
struct fan_job {
	struct server	*srv;
	struct fan_shm	*shm;
	uint32_t	*lat;		/* nsubs * lat_cap samples, ns */
	size_t		 lat_cap;
	int		 nsubs;
	int		 sub_index;	/* set per child */
	long		 updates;	/* 0: run until stop */
	long		 keys;
	long		 window;	/* 0: no flow control */
	double		 rate;		/* updates/s; 0: as fast as allowed */
	char		 table[64];
	/* refresh: ispd re-announces every record, 1 in change_every with
	 * another contact; the peers publish every refresh */
	int		 refresh;
	long		 change_every;
	long		 preload;	/* records announced before go */
	int		 batch;		/* ispd: the bench's batching publisher */
};

int		 sys_publisher(void *job);
int		 sys_subscriber(void *job);

/* bench.c: a target of the issue, met or not, for the summary. met < 0:
 * not measured. */
void		 target(const char *what, const char *measured, int met);

/* Scenarios; each prints its tables. */
void		 scen_fanout(void);
void		 scen_refresh(void);
void		 scen_snapshot_memory(void);
void		 scen_withdraw(void);
void		 scen_sessions(void);

/* limit.c: the same bytes through plain loopback sockets. Returns the
 * seconds it took, or -1. */
double		 limit_fanout(int nsubs, size_t bytes_per_sub);
double		 limit_stream(size_t bytes);

#endif
