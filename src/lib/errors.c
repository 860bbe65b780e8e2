/*
 * errors: the text of each isp_err code, and the library's version.
 */
#include "isp.h"

const char *
isp_strerror(int err)
{
	switch (err) {
	case ISP_OK:			return "no error";
	case ISP_E_PROTOCOL:		return "malformed frame";
	case ISP_E_VERSION:		return "protocol versions differ";
	case ISP_E_FRAME_TOO_LARGE:	return "frame over the size limit";
	case ISP_E_UNKNOWN_TYPE:	return "frame type not known";
	case ISP_E_NOT_READY:		return "request before the handshake";
	case ISP_E_BAD_TABLE:		return "invalid table name";
	case ISP_E_BAD_KEY:		return "key empty or too long";
	case ISP_E_BAD_FIELDS:		return "invalid field name, value or "
					    "count";
	case ISP_E_NOT_OWNER:		return "record owned by another "
					    "session";
	case ISP_E_NOT_FOUND:		return "no such record or table";
	case ISP_E_READONLY:		return "table kept by ispd itself";
	case ISP_E_ALREADY_SUBSCRIBED:	return "already subscribed to the "
					    "table";
	case ISP_E_NOT_SUBSCRIBED:	return "not subscribed to the table";
	case ISP_E_HOLD_EXPIRED:	return "session silent past the hold "
					    "time";
	case ISP_E_SHUTDOWN:		return "server shutting down";
	case ISP_E_LIMIT:		return "a configured limit was hit";
	case ISP_E_BAD_REQUEST:		return "invalid request";
	case ISP_E_AUTH:		return "authentication failed";
	case ISP_E_DENIED:		return "denied by a rule of the server";
	case ISP_E_SYS:			return "system call failed";
	case ISP_E_CONNECT:		return "cannot connect";
	case ISP_E_CLOSED:		return "session ended";
	case ISP_E_TIMEOUT:		return "no answer in time";
	case ISP_E_INVALID:		return "invalid argument";
	case ISP_E_NOMEM:		return "out of memory";
	case ISP_E_STATE:		return "not allowed in this state";
	case ISP_E_TLS:			return "TLS failed";
	default:			return "unknown error";
	}
}

const char *
isp_version(void)
{
	return ISP_VERSION;
}
