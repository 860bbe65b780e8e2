/*
 * fuzz_binding: a SIP_REGISTRATION record as res_pjsip_isp receives it
 * from a reflector (any publisher allowed to write the table made it),
 * through the checks that come before PJSIP sees any field
 * (src/asterisk/binding.c), under each aor_map.
 *
 * Input: fields separated by 0x00; the first byte of each picks its name
 * (byte modulo 11: 11 is aor, 1 contact, 2 received, 3 path, 4
 * user_agent, 5 call_id, the rest others), the rest is its
 * value (binary, NUL-terminated one past its length as libisp hands it
 * out). What a record that passes must satisfy is checked too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "isp_asterisk.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const names[] = {
	"aor", "contact", "received", "path", "user_agent", "call_id",
	"transport", "q", "instance", "expires", "x",
};
#define NNAMES	(sizeof(names) / sizeof(names[0]))
#define MAXF	16

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct isp_field	 f[MAXF];
	char			*vals[MAXF];
	struct isp_record	 r;
	struct binding_fields	 b;
	const uint8_t		*p = data, *end = data + size, *z;
	size_t			 n = 0, len, i;
	int			 m;

	while (p < end && n < MAXF) {
		z = memchr(p, 0, (size_t)(end - p));
		len = (size_t)((z != NULL ? z : end) - p);
		if (len > 0) {
			vals[n] = malloc(len);
			memcpy(vals[n], p + 1, len - 1);
			vals[n][len - 1] = '\0';
			f[n].name = names[p[0] % NNAMES];
			f[n].value = vals[n];
			f[n].value_len = len - 1;
			n++;
		}
		p += len + 1;
	}
	memset(&r, 0, sizeof(r));
	r.key = "k";
	r.key_len = 1;
	r.fields = f;
	r.nfields = n;
	for (m = ISPA_AOR_USER; m <= ISPA_AOR_FULL; m++) {
		if (binding_parse(&r, (enum ispa_aor_map)m, &b) != NULL)
			continue;
		if (b.aor_name[0] == '\0' || strlen(b.aor_name) >=
		    sizeof(b.aor_name) || b.contact_len == 0 ||
		    b.contact_len > ISPA_MAX_FIELD_BYTES ||
		    strlen(b.contact) != b.contact_len)
			abort();
		if (m == ISPA_AOR_USER && strchr(b.aor_name, '@') != NULL)
			abort();
		if (b.received_port != 0 && (b.received_port > 65535 ||
		    b.received_host[0] == '\0' ||
		    strpbrk(b.received_host, "<>\"@; ") != NULL))
			abort();
	}
	for (i = 0; i < n; i++)
		free(vals[i]);
	return 0;
}
