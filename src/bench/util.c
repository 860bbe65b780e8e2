/*
 * util: clocks, shared memory, child processes, /proc readers,
 * statistics, the SIP-like records every scenario sends, and the
 * plain-text tables the results are printed in.
 */
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static FILE	*out_file;

uint64_t
now_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double
now_s(void)
{
	return (double)now_ns() / 1e9;
}

double
self_cpu_s(void)
{
	struct rusage	 ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return -1;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

void
sleep_ns(uint64_t ns)
{
	struct timespec	 ts;

	ts.tv_sec = (time_t)(ns / 1000000000ULL);
	ts.tv_nsec = (long)(ns % 1000000000ULL);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void *
shm_alloc(size_t len)
{
	void	*p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "ispd-bench: mmap of %zu bytes: %s\n", len,
		    strerror(errno));
		exit(1);
	}
	return p;
}

void
shm_free(void *p, size_t len)
{
	if (p != NULL)
		munmap(p, len);
}

pid_t
child_start(int (*fn)(void *), void *arg)
{
	pid_t	 pid;

	fflush(NULL);
	if ((pid = fork()) == -1) {
		fprintf(stderr, "ispd-bench: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* The coordinator's exit handlers stop servers; a child
		 * must not run them. */
		_exit(fn(arg));
	}
	return pid;
}

void
child_kill(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

int
children_wait(pid_t *pids, int n, double deadline)
{
	int	 left = 0, ok = 0, i, status;
	pid_t	 r;

	for (i = 0; i < n; i++)
		left += pids[i] > 0;
	while (left > 0) {
		for (i = 0; i < n; i++) {
			if (pids[i] <= 0)
				continue;
			r = waitpid(pids[i], &status, WNOHANG);
			if (r == pids[i]) {
				ok += WIFEXITED(status) &&
				    WEXITSTATUS(status) == 0;
				pids[i] = 0;
				left--;
			}
		}
		if (left == 0)
			break;
		if (now_s() > deadline) {
			for (i = 0; i < n; i++)
				if (pids[i] > 0) {
					child_kill(pids[i]);
					pids[i] = 0;
				}
			break;
		}
		sleep_ns(2000000);
	}
	return ok;
}

/* From /proc/PID/task/TID/schedstat, in nanoseconds, summed over the
 * threads: /proc/PID/stat counts in 10 ms ticks, too coarse for runs of
 * a second. */
double
proc_cpu_s(pid_t pid)
{
	char			 path[300];
	unsigned long long	 ns, sum = 0;
	struct dirent		*de;
	DIR			*d;
	FILE			*f;
	int			 n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.32s/schedstat",
		    (int)pid, de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fscanf(f, "%llu", &ns) == 1) {
			sum += ns;
			n++;
		}
		fclose(f);
	}
	closedir(d);
	return n == 0 ? -1 : (double)sum / 1e9;
}

long
proc_rss(pid_t pid)
{
	char	 path[64], line[256];
	long	 kb = -1;
	FILE	*f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

/* Summed over the process's threads (nats-server has many). */
long
proc_wakeups(pid_t pid)
{
	char		 path[300], line[256];
	long		 n, sum = 0;
	struct dirent	*de;
	DIR		*d;
	FILE		*f;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.32s/status",
		    (int)pid, de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "voluntary_ctxt_switches: %ld",
			    &n) == 1)
				sum += n;
		fclose(f);
	}
	closedir(d);
	return sum;
}

void
machine_facts(char *dst, size_t len)
{
	char		 line[512], model[256] = "unknown", mhz[64] = "?";
	long		 memkb = 0;
	struct utsname	 u;
	FILE		*f;
	char		*p;

	if ((f = fopen("/proc/cpuinfo", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if ((p = strchr(line, ':')) == NULL)
				continue;
			p += 2;
			p[strcspn(p, "\n")] = '\0';
			if (strncmp(line, "model name", 10) == 0 &&
			    strcmp(model, "unknown") == 0)
				snprintf(model, sizeof(model), "%s", p);
			if (strncmp(line, "cpu MHz", 7) == 0 &&
			    strcmp(mhz, "?") == 0)
				snprintf(mhz, sizeof(mhz), "%s", p);
		}
		fclose(f);
	}
	if ((f = fopen("/proc/meminfo", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "MemTotal: %ld kB", &memkb) == 1)
				break;
		fclose(f);
	}
	if (uname(&u) == -1)
		memset(&u, 0, sizeof(u));
	snprintf(dst, len, "cores: %ld online, CPU: %s (%s MHz)\n"
	    "memory: %.1f GiB, kernel: %s %s %s", sysconf(_SC_NPROCESSORS_ONLN),
	    model, mhz, (double)memkb / 1048576.0, u.sysname, u.release,
	    u.machine);
}

static int
cpu_times(unsigned long long *busy, unsigned long long *total)
{
	unsigned long long	 v[10] = { 0 };
	FILE			*f;
	int			 n, i;

	if ((f = fopen("/proc/stat", "r")) == NULL)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
	    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
	    &v[9]);
	fclose(f);
	if (n < 5)
		return -1;
	/* user nice system idle iowait irq softirq steal; guest time is
	 * counted in user already */
	for (i = 0, *total = 0; i < 8; i++)
		*total += v[i];
	*busy = *total - v[3] - v[4];
	return 0;
}

/* CPU ticks (user + system) of every process running niced (nice > 0):
 * /proc/stat counts their system time as anyone's. */
static unsigned long long
niced_ticks(void)
{
	unsigned long long	 sum = 0, ut, st;
	char			 path[300], line[1024], *p;
	struct dirent		*de;
	DIR			*d;
	FILE			*f;
	long			 nice;
	int			 i;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%.32s/stat", de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		p = fgets(line, sizeof(line), f);
		fclose(f);
		if (p == NULL || (p = strrchr(line, ')')) == NULL)
			continue;
		/* field 3 is after ") "; utime 14, stime 15, nice 19 */
		p += 2;
		for (i = 3; i < 14 && p != NULL; i++)
			if ((p = strchr(p, ' ')) != NULL)
				p++;
		if (p == NULL || sscanf(p, "%llu %llu %*s %*s %*s %ld", &ut,
		    &st, &nice) != 3)
			continue;
		if (nice > 0)
			sum += ut + st;
	}
	closedir(d);
	return sum;
}

/* Share of all cores busy over the next `seconds`, 0..1, at normal
 * priority, and niced (*niced); -1 if unknown. The coordinator is idle
 * meanwhile, so this is other processes. */
double
machine_busy(double seconds, double *niced)
{
	unsigned long long	 b0, t0, b1, t1, n0, n1;
	double			 nc;

	*niced = -1;
	n0 = niced_ticks();
	if (cpu_times(&b0, &t0) == -1)
		return -1;
	sleep_ns((uint64_t)(seconds * 1e9));
	n1 = niced_ticks();
	if (cpu_times(&b1, &t1) == -1 || t1 <= t0)
		return -1;
	nc = (double)(n1 - n0) / (double)(t1 - t0);
	if (nc > (double)(b1 - b0) / (double)(t1 - t0))
		nc = (double)(b1 - b0) / (double)(t1 - t0);
	*niced = nc;
	return (double)(b1 - b0) / (double)(t1 - t0) - nc;
}

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void
stat3_of(struct stat3 *s, const double *v, int n)
{
	double	 t[64];
	int	 i, m = 0;

	for (i = 0; i < n && m < 64; i++)
		if (v[i] >= 0)
			t[m++] = v[i];
	s->n = m;
	if (m == 0) {
		s->med = s->min = s->max = -1;
		return;
	}
	qsort(t, (size_t)m, sizeof(t[0]), cmp_double);
	s->min = t[0];
	s->max = t[m - 1];
	s->med = m % 2 ? t[m / 2] : (t[m / 2 - 1] + t[m / 2]) / 2;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void
sort_u32(uint32_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u32);
}

double
quantile_u32(const uint32_t *v, size_t n, double p)
{
	size_t	 i;

	if (n == 0)
		return -1;
	/* Nearest rank: the smallest value with at least p of the
	 * samples at or below it. */
	i = (size_t)(p * (double)n + 0.999999);
	if (i > 0)
		i--;
	if (i >= n)
		i = n - 1;
	return v[i];
}

/*
 * A registration as a SIP registrar would publish it: AOR and contact
 * index as the key, the binding's contact, its expiry and the registrar
 * that took it. About 150 bytes of key and fields.
 */
void
rec_make(struct rec *r, uint64_t key_idx, uint64_t variant)
{
	uint64_t	 num = 4930100000000ULL + key_idx;

	r->key_len = (size_t)snprintf(r->key, sizeof(r->key),
	    "sip:+%" PRIu64 "@voip.example.com|1", num);
	r->contact_len = (size_t)snprintf(r->contact, sizeof(r->contact),
	    "sip:+%" PRIu64 "@198.51.100.%" PRIu64 ":%" PRIu64
	    ";transport=udp", num, key_idx % 250 + 1,
	    (uint64_t)5060 + variant % 1000);
	snprintf(r->expires, sizeof(r->expires), "%" PRIu64,
	    (uint64_t)1790000000 + key_idx % 3600);
	snprintf(r->server, sizeof(r->server), "bgw-%" PRIu64,
	    key_idx % 8 + 1);
	r->text_len = 0;
	rec_stamp(r, 0, 0);
}

static void
digits(char *dst, uint64_t v, int n)
{
	while (n-- > 0) {
		dst[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* The stamp is fixed width, so every update of a run is the same size,
 * and it is written in place: the publisher's hot loop formats nothing
 * else. */
void
rec_stamp(struct rec *r, uint64_t idx, uint64_t ns)
{
	if (r->text_len == 0) {
		memset(r->stamp, '0', REC_STAMP_BYTES);
		r->stamp[10] = ':';
		r->stamp[REC_STAMP_BYTES] = '\0';
		r->text_len = (size_t)snprintf(r->text, sizeof(r->text),
		    "%s %.*s contact=%.*s expires=%s server=%s", r->stamp,
		    (int)r->key_len, r->key, (int)r->contact_len, r->contact,
		    r->expires, r->server);
	}
	digits(r->stamp, idx, 10);
	digits(r->stamp + 11, ns, 20);
	memcpy(r->text, r->stamp, REC_STAMP_BYTES);
}

int
rec_parse_stamp(const void *p, size_t len, uint64_t *idx, uint64_t *ns)
{
	const char	*s = p;
	uint64_t	 a = 0, b = 0;
	size_t		 i;

	if (len < REC_STAMP_BYTES || s[10] != ':')
		return -1;
	for (i = 0; i < 10; i++)
		a = a * 10 + (uint64_t)(s[i] - '0');
	for (i = 11; i < REC_STAMP_BYTES; i++)
		b = b * 10 + (uint64_t)(s[i] - '0');
	*idx = a;
	*ns = b;
	return 0;
}

size_t
rec_raw_bytes(const struct rec *r)
{
	return r->key_len + strlen("contact") + r->contact_len +
	    strlen("expires") + strlen(r->expires) + strlen("server") +
	    strlen(r->server) + strlen("stamp") + REC_STAMP_BYTES;
}

size_t
rec_frame_bytes(const struct rec *r, size_t owner_len)
{
	size_t	 fields = 2 + 4 * (1 + 4) + rec_raw_bytes(r) - r->key_len;

	/* length, type, table, seq, key, owner_session, owner, fields */
	return 4 + 1 + 1 + strlen(BENCH_TABLE) + 8 + 2 + r->key_len + 8 + 2 +
	    owner_len + fields;
}

void
out_open(void)
{
	char	 path[512];

	snprintf(path, sizeof(path), "%s/results.txt", conf.outdir);
	if ((out_file = fopen(path, "w")) == NULL)
		fprintf(stderr, "ispd-bench: cannot write %s: %s\n", path,
		    strerror(errno));
}

void
out_close(void)
{
	if (out_file != NULL)
		fclose(out_file);
	out_file = NULL;
}

/* Results: to stdout and to results.txt. */
void
out_printf(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
	if (out_file != NULL) {
		va_start(ap, fmt);
		vfprintf(out_file, fmt, ap);
		va_end(ap);
		fflush(out_file);
	}
}

/* Progress: to stderr only, so stdout holds the tables. */
void
say(const char *fmt, ...)
{
	va_list	 ap;

	fputs("ispd-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
tab_init(struct tab *t, const char *title, int ncols, ...)
{
	va_list	 ap;
	int	 i;

	memset(t, 0, sizeof(*t));
	snprintf(t->title, sizeof(t->title), "%s", title);
	t->ncols = ncols > BENCH_MAX_COLS ? BENCH_MAX_COLS : ncols;
	va_start(ap, ncols);
	for (i = 0; i < t->ncols; i++)
		snprintf(t->head[i], BENCH_CELL_BYTES, "%s",
		    va_arg(ap, const char *));
	va_end(ap);
}

void
tab_row(struct tab *t, ...)
{
	va_list		 ap;
	const char	*s;
	int		 i;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cell = realloc(t->cell, (size_t)t->cap * sizeof(*t->cell));
		if (t->cell == NULL) {
			fprintf(stderr, "ispd-bench: out of memory\n");
			exit(1);
		}
	}
	va_start(ap, t);
	for (i = 0; i < t->ncols; i++) {
		s = va_arg(ap, const char *);
		snprintf(t->cell[t->nrows][i], BENCH_CELL_BYTES, "%s",
		    s != NULL ? s : "-");
	}
	va_end(ap);
	t->nrows++;
}

void
tab_note(struct tab *t, const char *fmt, ...)
{
	size_t	 off = strlen(t->notes);
	va_list	 ap;

	if (off >= sizeof(t->notes) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(t->notes + off, sizeof(t->notes) - off, fmt, ap);
	va_end(ap);
	off = strlen(t->notes);
	if (off < sizeof(t->notes) - 1) {
		t->notes[off] = '\n';
		t->notes[off + 1] = '\0';
	}
}

void
tab_print(struct tab *t)
{
	int	 w[BENCH_MAX_COLS], i, r;
	size_t	 n;

	for (i = 0; i < t->ncols; i++) {
		w[i] = (int)strlen(t->head[i]);
		for (r = 0; r < t->nrows; r++) {
			n = strlen(t->cell[r][i]);
			if ((int)n > w[i])
				w[i] = (int)n;
		}
	}
	out_printf("\n== %s\n", t->title);
	for (i = 0; i < t->ncols; i++)
		out_printf("%s%-*s", i ? "  " : "", i < t->ncols - 1 ? w[i] :
		    0, t->head[i]);
	out_printf("\n");
	for (i = 0; i < t->ncols; i++) {
		out_printf("%s", i ? "  " : "");
		for (r = 0; r < w[i]; r++)
			out_printf("-");
	}
	out_printf("\n");
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols; i++)
			out_printf("%s%-*s", i ? "  " : "",
			    i < t->ncols - 1 ? w[i] : 0, t->cell[r][i]);
		out_printf("\n");
	}
	if (t->notes[0] != '\0')
		out_printf("%s", t->notes);
}

void
tab_free(struct tab *t)
{
	free(t->cell);
	t->cell = NULL;
	t->nrows = t->cap = 0;
}

char *
fmt_si(char *dst, size_t len, double v)
{
	if (v < 0)
		snprintf(dst, len, "-");
	else if (v >= 1e9)
		snprintf(dst, len, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(dst, len, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(dst, len, "%.1fk", v / 1e3);
	else if (v >= 100)
		snprintf(dst, len, "%.0f", v);
	else if (v >= 10)
		snprintf(dst, len, "%.1f", v);
	else
		snprintf(dst, len, "%.3g", v);
	return dst;
}

/* "median [min..max]unit", or the median alone for one run. */
char *
fmt_stat(char *dst, size_t len, const struct stat3 *s, const char *unit)
{
	char	 a[24], b[24], c[24];

	if (s->n == 0) {
		snprintf(dst, len, "failed");
		return dst;
	}
	if (s->n == 1 || s->min == s->max)
		snprintf(dst, len, "%s%s", fmt_si(a, sizeof(a), s->med), unit);
	else
		snprintf(dst, len, "%s%s [%s..%s]", fmt_si(a, sizeof(a),
		    s->med), unit, fmt_si(b, sizeof(b), s->min),
		    fmt_si(c, sizeof(c), s->max));
	return dst;
}

char *
fmt_ratio(char *dst, size_t len, double a, double b)
{
	if (a <= 0 || b <= 0)
		snprintf(dst, len, "-");
	else if (a / b >= 10)
		snprintf(dst, len, "%.0fx", a / b);
	else
		snprintf(dst, len, "%.2fx", a / b);
	return dst;
}
