/*
 * What res_pjsip_isp takes from a SIP_REGISTRATION record before PJSIP
 * sees it (src/asterisk/binding.c, docs/ASTERISK.md "What a binding
 * becomes"): the AOR mapping of each aor_map, received addresses, and
 * every reason a record is skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "isp_asterisk.h"

/* A record from NAME=VALUE strings, as libisp hands one out. */
static struct isp_field	 fields[16];
static struct isp_record *
rec(const char *first, ...)
{
	static struct isp_record r;
	static char		 names[16][32];
	va_list			 ap;
	const char		*kv;
	size_t			 n = 0;

	va_start(ap, first);
	for (kv = first; kv != NULL; kv = va_arg(ap, const char *), n++) {
		const char *eq = strchr(kv, '=');

		memcpy(names[n], kv, (size_t)(eq - kv));
		names[n][eq - kv] = '\0';
		fields[n].name = names[n];
		fields[n].value = eq + 1;
		fields[n].value_len = strlen(eq + 1);
	}
	va_end(ap);
	memset(&r, 0, sizeof(r));
	r.fields = fields;
	r.nfields = n;
	return &r;
}

static void
test_aor_map(void **state)
{
	char	 b[128];

	assert_int_equal(binding_aor_name(ISPA_AOR_USER,
	    "sip:2001@voip.example.com", b, sizeof(b)), 0);
	assert_string_equal(b, "2001");
	assert_int_equal(binding_aor_name(ISPA_AOR_USER_HOST,
	    "sip:2001@voip.example.com:5070", b, sizeof(b)), 0);
	assert_string_equal(b, "2001@voip.example.com:5070");
	assert_int_equal(binding_aor_name(ISPA_AOR_FULL,
	    "sip:2001@voip.example.com", b, sizeof(b)), 0);
	assert_string_equal(b, "sip:2001@voip.example.com");
	assert_int_equal(binding_aor_name(ISPA_AOR_USER, "sips:alice@x", b,
	    sizeof(b)), 0);
	assert_string_equal(b, "alice");
	/* No user, no host, no scheme, too long: no AOR. */
	assert_int_equal(binding_aor_name(ISPA_AOR_USER, "sip:@x", b,
	    sizeof(b)), -1);
	assert_int_equal(binding_aor_name(ISPA_AOR_USER, "sip:2001@", b,
	    sizeof(b)), -1);
	assert_int_equal(binding_aor_name(ISPA_AOR_USER, "tel:2001", b,
	    sizeof(b)), -1);
	assert_int_equal(binding_aor_name(ISPA_AOR_USER, "sip:2001@x", b, 4),
	    -1);
	assert_int_equal(binding_aor_name(ISPA_AOR_FULL, "", b, sizeof(b)), -1);
}

static void
test_hostport(void **state)
{
	char	 h[64];
	int	 port;

	assert_int_equal(binding_hostport("192.0.2.1:5060", h, sizeof(h),
	    &port), 0);
	assert_string_equal(h, "192.0.2.1");
	assert_int_equal(port, 5060);
	assert_int_equal(binding_hostport("[2001:db8::1]:5061", h, sizeof(h),
	    &port), 0);
	assert_string_equal(h, "2001:db8::1");
	assert_int_equal(port, 5061);
	assert_int_equal(binding_hostport("192.0.2.1", h, sizeof(h), &port), -1);
	assert_int_equal(binding_hostport("192.0.2.1:0", h, sizeof(h), &port), -1);
	assert_int_equal(binding_hostport("192.0.2.1:65536", h, sizeof(h),
	    &port), -1);
	assert_int_equal(binding_hostport("192.0.2.1:50x", h, sizeof(h), &port),
	    -1);
	assert_int_equal(binding_hostport("192.0.2.1:-5", h, sizeof(h), &port),
	    -1);
	assert_int_equal(binding_hostport(":5060", h, sizeof(h), &port), -1);
	assert_int_equal(binding_hostport("[::1:5060", h, sizeof(h), &port), -1);
	assert_int_equal(binding_hostport("a>b:5060", h, sizeof(h), &port), -1);
}

static void
test_parse_ok(void **state)
{
	struct binding_fields	 f;

	assert_null(binding_parse(rec("aor=sip:2001@example.com",
	    "contact=sip:2001@10.0.0.5:5060", "q=", "received=192.0.2.7:41000",
	    "transport=udp", "path=", "user_agent=phone/1", "call_id=c1",
	    NULL), ISPA_AOR_USER, &f));
	assert_string_equal(f.aor_name, "2001");
	assert_string_equal(f.contact, "sip:2001@10.0.0.5:5060");
	assert_int_equal(f.contact_len, strlen(f.contact));
	assert_string_equal(f.received_host, "192.0.2.7");
	assert_int_equal(f.received_port, 41000);
	assert_string_equal(f.path, "");
	assert_string_equal(f.user_agent, "phone/1");
	assert_string_equal(f.call_id, "c1");
	/* No received (an older publisher): reached at the contact. */
	assert_null(binding_parse(rec("aor=sip:2001@example.com",
	    "contact=sip:2001@10.0.0.5", NULL), ISPA_AOR_USER, &f));
	assert_int_equal(f.received_port, 0);
	assert_null(f.path);
}

static void
test_parse_skipped(void **state)
{
	struct binding_fields	 f;
	static char		 big[ISPA_MAX_FIELD_BYTES + 20];
	struct isp_record	*r;

	assert_string_equal(binding_parse(rec("contact=sip:x@y", NULL),
	    ISPA_AOR_USER, &f), "it has no aor");
	assert_string_equal(binding_parse(rec("aor=", "contact=sip:x@y", NULL),
	    ISPA_AOR_USER, &f), "it has no aor");
	assert_string_equal(binding_parse(rec("aor=sip:2001@x", NULL),
	    ISPA_AOR_USER, &f), "it has no contact");
	assert_string_equal(binding_parse(rec("aor=2001", "contact=sip:x@y",
	    NULL), ISPA_AOR_USER, &f), "its aor is not sip:USER@HOST");
	assert_string_equal(binding_parse(rec("aor=sip:2001@x",
	    "contact=sip:x@y", "received=somewhere", NULL), ISPA_AOR_USER, &f),
	    "its received is not IP:PORT");
	/* A field over the limit, wherever it is. */
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "user_agent=", 11);
	assert_string_equal(binding_parse(rec("aor=sip:2001@x",
	    "contact=sip:x@y", big, NULL), ISPA_AOR_USER, &f),
	    "a field is longer than 2048 bytes");
	/* A NUL inside a value. */
	r = rec("aor=sip:2001@x", "contact=sip:x@y", NULL);
	fields[1].value = "sip:x\0@y";
	fields[1].value_len = 8;
	assert_string_equal(binding_parse(r, ISPA_AOR_USER, &f),
	    "a field holds a NUL byte");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aor_map),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_skipped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
