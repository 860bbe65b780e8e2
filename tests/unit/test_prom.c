/*
 * The exposition helpers and the address check of src/metrics/prom.c,
 * without a socket: label values escaped as the text format 0.0.4 wants
 * (a table name or a version cannot break a line), histogram buckets
 * cumulative with +Inf, _sum and _count, and which addresses --metrics
 * takes. tests/cli/test_metrics.sh runs the endpoints for real, with
 * promtool and Prometheus.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "prom.h"

/* b's bytes as a string (the helpers never write a NUL). */
static const char *
text(struct buf *b)
{
	buf_put_u8(b, '\0');
	assert_false(buf_failed(b));
	b->len--;
	return (const char *)b->data;
}

static void
test_family_and_samples(void **state)
{
	struct buf	 b;

	buf_init(&b);
	prom_family(&b, "x_total", "counter", "Things.");
	prom_u64(&b, "x_total", UINT64_MAX);
	prom_double(&b, "x_seconds", 1.5);
	assert_string_equal(text(&b), "# HELP x_total Things.\n"
	    "# TYPE x_total counter\nx_total 18446744073709551615\n"
	    "x_seconds 1.500\n");
	buf_free(&b);
}

static void
test_label_escaping(void **state)
{
	static const char	 v[] = "a\\b\"c\nd\te\x01\x80z";
	struct buf		 b;

	buf_init(&b);
	prom_u64_label(&b, "m", "table", v, sizeof(v) - 1, 7);
	/* Backslash, quote and line feed escaped; other control bytes and
	 * bytes beyond ASCII become '?'. */
	assert_string_equal(text(&b), "m{table=\"a\\\\b\\\"c\\nd?e??z\"} 7\n");
	buf_free(&b);
	/* A value with a NUL inside is taken by its length. */
	buf_init(&b);
	prom_u64_label(&b, "m", "k", "ab\0cd", 5, 0);
	assert_string_equal(text(&b), "m{k=\"ab?cd\"} 0\n");
	buf_free(&b);
}

static void
test_histogram(void **state)
{
	static const uint64_t	 bounds[] = { 10, 100 };
	static const uint64_t	 counts[] = { 2, 0, 3 };
	struct buf		 b;

	buf_init(&b);
	prom_histogram(&b, "q_bytes", bounds, counts, 2, 1234);
	assert_string_equal(text(&b),
	    "q_bytes_bucket{le=\"10\"} 2\n"
	    "q_bytes_bucket{le=\"100\"} 2\n"
	    "q_bytes_bucket{le=\"+Inf\"} 5\n"
	    "q_bytes_sum 1234\n"
	    "q_bytes_count 5\n");
	buf_free(&b);
}

static void
test_addresses(void **state)
{
	static const char *const good[] = {
		"127.0.0.1:9464", "127.0.0.1:0", ":9464", "*:9464",
		"0.0.0.0:65535", "[::1]:9464", "localhost:9464",
	};
	static const char *const bad[] = {
		"", "9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
		"127.0.0.1:-1", "127.0.0.1:94a4", "::1:9464", "[]:9464",
		"[::1]9464", "[::1]:", "127.0.0.1:123456",
	};
	char	 err[160];
	size_t	 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (prom_addr_check(good[i], err, sizeof(err)) != 0)
			fail_msg("'%s' refused: %s", good[i], err);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (prom_addr_check(bad[i], err, sizeof(err)) != -1)
			fail_msg("'%s' taken", bad[i]);
		assert_non_null(strstr(err, "expected HOST:PORT"));
	}
}

int
main(void)
{
	const struct CMUnitTest	 tests[] = {
		cmocka_unit_test(test_family_and_samples),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
