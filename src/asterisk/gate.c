/*
 * gate: a PJSIP module that keeps Asterisk's own SIP machinery off the
 * contacts this module mirrors.
 *
 * - A REGISTER for an AOR that holds mirrored contacts is answered 403
 *   before res_pjsip_registrar sees it. In a pool, phones register at
 *   the border gateway; a REGISTER reaching an Asterisk is a stray (a
 *   misrouted phone, a scanner) and must not delete the mirrored
 *   contacts (Contact: *, remove_existing, max_contacts) nor add one
 *   beside them. REGISTERs for AORs with no mirrored contact go on to
 *   the registrar as before.
 * - Unsolicited MWI (a NOTIFY with Event: message-summary outside a
 *   dialog) to a mirrored contact leaves only from the instance that
 *   placement gives the account: every Asterisk holds the contact, and
 *   without this rule a phone would get one NOTIFY per Asterisk.
 *
 * Its priority puts it after the distributor and authentication and
 * before the registrar (PJSIP_MOD_PRIORITY_APPLICATION).
 */
#include "asterisk.h"

#include <ctype.h>
#include <string.h>

#include "asterisk/logger.h"
#include "asterisk/res_pjsip.h"

#include "isp_asterisk.h"

static uint64_t	 registers_refused;
static uint64_t	 notifies_dropped;

uint64_t
gate_registers_refused(void)
{
	return registers_refused;
}

uint64_t
gate_notifies_dropped(void)
{
	return notifies_dropped;
}

/* The PJSIP AOR name a REGISTER's To names, as bindings are named. */
static int
gate_aor_name(pjsip_rx_data *rdata, char *buf, size_t size)
{
	pjsip_sip_uri	*sip;
	pjsip_uri	*uri;
	char		 aor[512];
	enum ispa_aor_map map;
	size_t		 i;
	int		 n;

	if (rdata->msg_info.to == NULL)
		return -1;
	uri = pjsip_uri_get_uri(rdata->msg_info.to->uri);
	if (!PJSIP_URI_SCHEME_IS_SIP(uri) && !PJSIP_URI_SCHEME_IS_SIPS(uri))
		return -1;
	sip = (pjsip_sip_uri *)uri;
	ispa_rdlock();
	map = ispa.conf != NULL ? ispa.conf->aor_map : ISPA_AOR_USER;
	ispa_unlock();
	n = snprintf(aor, sizeof(aor), "sip:%.*s@%.*s", (int)sip->user.slen,
	    sip->user.ptr, (int)sip->host.slen, sip->host.ptr);
	if (n < 0 || (size_t)n >= sizeof(aor))
		return -1;
	/* Canonical, as the registrar writes it: the host in lower case. */
	for (i = 5 + (size_t)sip->user.slen; aor[i] != '\0'; i++)
		aor[i] = (char)tolower((unsigned char)aor[i]);
	if (sip->port != 0 && map == ISPA_AOR_FULL)
		snprintf(aor + n, sizeof(aor) - (size_t)n, ":%d", sip->port);
	return binding_aor_name(map, aor, buf, size);
}

static pj_bool_t
gate_on_rx_request(pjsip_rx_data *rdata)
{
	static const pj_str_t	 reason = { "Registrations for this account "
	    "go through the border gateway", 56 };
	struct ast_sip_endpoint	*endpoint;
	pjsip_tx_data		*tdata;
	char			 name[256];

	if (pjsip_method_cmp(&rdata->msg_info.msg->line.req.method,
	    &pjsip_register_method) != 0)
		return PJ_FALSE;
	if (gate_aor_name(rdata, name, sizeof(name)) == -1 ||
	    !contacts_aor_mirrored(name))
		return PJ_FALSE;
	registers_refused++;
	ast_log(LOG_NOTICE, "REGISTER for AOR %s refused (403): its contacts "
	    "come from ispd\n", name);
	endpoint = ast_pjsip_rdata_get_endpoint(rdata);
	if (endpoint != NULL && ast_sip_create_response(rdata, 403, NULL,
	    &tdata) == PJ_SUCCESS) {
		tdata->msg->line.status.reason = reason;
		ast_sip_send_stateful_response(rdata, tdata, endpoint);
	} else {
		pjsip_endpt_respond_stateless(ast_sip_get_pjsip_endpoint(),
		    rdata, 403, &reason, NULL, NULL);
	}
	ao2_cleanup(endpoint);
	return PJ_TRUE;
}

static pj_status_t
gate_on_tx_request(pjsip_tx_data *tdata)
{
	static const pj_str_t	 event_name = { "Event", 5 };
	pjsip_generic_string_hdr *event;
	pjsip_to_hdr		*to;
	char			 uri[ISPA_MAX_FIELD_BYTES + 64];
	char			 account[256];
	int			 n;

	if (pjsip_method_cmp(&tdata->msg->line.req.method,
	    &pjsip_notify_method) != 0)
		return PJ_SUCCESS;
	/* Inside a dialog (a subscription the phone made) the phone asked
	 * this instance: let it through. */
	to = pjsip_msg_find_hdr(tdata->msg, PJSIP_H_TO, NULL);
	if (to != NULL && to->tag.slen > 0)
		return PJ_SUCCESS;
	event = pjsip_msg_find_hdr_by_name(tdata->msg, &event_name, NULL);
	if (event == NULL || event->hvalue.slen < 15 ||
	    strncasecmp(event->hvalue.ptr, "message-summary", 15) != 0)
		return PJ_SUCCESS;
	n = pjsip_uri_print(PJSIP_URI_IN_REQ_URI, tdata->msg->line.req.uri,
	    uri, sizeof(uri) - 1);
	if (n <= 0)
		return PJ_SUCCESS;
	uri[n] = '\0';
	if (contacts_uri_account(uri, account, sizeof(account)) == -1 ||
	    instance_serves(account))
		return PJ_SUCCESS;
	notifies_dropped++;
	ast_debug(1, "unsolicited MWI to %s not sent: account %s is served by "
	    "another instance\n", uri, account);
	return PJ_EIGNORED;
}

static pjsip_module gate_module = {
	.name = { "ISP Gate", 8 },
	.id = -1,
	.priority = PJSIP_MOD_PRIORITY_APPLICATION - 1,
	.on_rx_request = gate_on_rx_request,
	.on_tx_request = gate_on_tx_request,
};

int
gate_init(void)
{
	return ast_sip_register_service(&gate_module) == 0 ? 0 : -1;
}

void
gate_shutdown(void)
{
	ast_sip_unregister_service(&gate_module);
}
