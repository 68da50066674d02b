/* error.c -- the version functions and the table that names every cc_error
 * code and explains it in a sentence a support engineer can act on. */
#include "base.h"

#include <stddef.h>

CC_API uint32_t cc_version(void)
{
    return CC_VERSION_NUM;
}
CC_API const char *cc_version_string(void)
{
    return CC_VERSION_STRING;
}

static const struct {
    int code;
    const char *name, *text;
} errors[] = {
#define E(c, t)                                                                                                        \
    {                                                                                                                  \
        c, #c, t                                                                                                       \
    }
    E(CC_OK, "success"),
    E(CC_ERR_NOMEM, "out of memory"),
    E(CC_ERR_INVALID, "invalid argument"),
    E(CC_ERR_STATE, "not allowed in the session's current state"),
    E(CC_ERR_AGAIN, "send buffer full; wait for CC_EVENT_SEND_READY and retry"),
    E(CC_ERR_CONFIG, "the configuration is incomplete or inconsistent"),
    E(CC_ERR_INTERNAL, "internal error in libcarboncopy (please report it)"),
    E(CC_ERR_CANCELLED, "cancelled by the host"),
    E(CC_ERR_RESOLVE, "the client's name could not be resolved"),
    E(CC_ERR_CONNECT, "could not connect to the client on any of its addresses"),
    E(CC_ERR_IO, "the connection failed"),
    E(CC_ERR_CLOSED, "the peer closed the connection unexpectedly"),
    E(CC_ERR_TIMEOUT, "the connection did not complete within the handshake deadline"),
    E(CC_ERR_IDLE_TIMEOUT, "nothing was heard from the peer within the idle deadline"),
    E(CC_ERR_PROTOCOL, "the peer broke the Carbon Copy protocol"),
    E(CC_ERR_BAD_MAGIC, "the peer does not speak the Carbon Copy protocol"),
    E(CC_ERR_BAD_VERSION, "no protocol version supported by both sides"),
    E(CC_ERR_FRAME_TOO_LARGE, "the peer sent a frame larger than the limit"),
    E(CC_ERR_BAD_FRAME, "the peer sent an unknown or malformed frame"),
    E(CC_ERR_PEER_ERROR, "the peer ended the session with an error"),
    E(CC_ERR_TLS, "the TLS connection failed"),
    E(CC_ERR_CERT_UNTRUSTED, "the client's certificate is not trusted"),
    E(CC_ERR_CERT_MISMATCH, "the client's certificate does not match the expected name or pin"),
    E(CC_ERR_CERT_REJECTED, "the client's certificate was rejected by the host"),
    E(CC_ERR_TLS_CONFIG, "the certificate, key or CA file could not be used"),
    E(CC_ERR_LICENSE_DENIED, "no licence is free"),
    E(CC_ERR_LICENSE_EXPIRED, "the licence has expired"),
    E(CC_ERR_LICENSE_UNREACHABLE, "the management server could not be reached"),
    E(CC_ERR_LICENSE_TIMEOUT, "the licence check timed out"),
    E(CC_ERR_LICENSE_HTTP, "the licence page returned an HTTP error"),
    E(CC_ERR_LICENSE_PARSE, "the licence page could not be parsed"),
    E(CC_ERR_LICENSE_MISSING, "the licence page lacks the licence figures"),
    E(CC_ERR_LICENSE_TOO_LARGE, "the licence page is larger than allowed"),
    E(CC_ERR_LICENSE_REDIRECT, "the licence page redirected too often or to a forbidden scheme"),
    E(CC_ERR_LICENSE_TLS, "the management server's certificate failed verification"),
    E(CC_ERR_LICENSE_CONFIG, "no licence server is configured"),
    E(CC_ERR_AUTH, "authentication failed"),
    E(CC_ERR_AUTH_NO_MECHANISM, "no authentication mechanism is supported by both sides"),
    E(CC_ERR_AUTH_BAD_CREDENTIALS, "wrong user name or password"),
    E(CC_ERR_AUTH_UNKNOWN_USER, "the account does not exist"),
    E(CC_ERR_AUTH_DISABLED, "the account is disabled"),
    E(CC_ERR_AUTH_REPLAY, "an authentication token was replayed"),
    E(CC_ERR_AUTH_CHANNEL_BINDING, "the authentication is not bound to this connection"),
    E(CC_ERR_AUTH_TOKEN, "an authentication token is malformed or too large"),
    E(CC_ERR_AUTH_POLICY, "the account is not allowed to connect"),
    E(CC_ERR_AUTH_NO_CREDENTIALS, "no credentials are available"),
    E(CC_ERR_AUTH_EXPIRED, "the credentials have expired"),
    E(CC_ERR_AUTH_KDC_UNREACHABLE, "the domain controller (KDC) could not be reached"),
    E(CC_ERR_AUTH_CLOCK_SKEW, "the clocks of the machines differ too much"),
    E(CC_ERR_AUTH_KEYTAB, "the service key is missing from the keytab or outdated"),
    E(CC_ERR_AUTH_MUTUAL, "the client could not prove its identity"),
    E(CC_ERR_AUTH_UNAVAILABLE, "the authentication mechanism is not available"),
    E(CC_ERR_RECONNECT_REFUSED, "the client did not take the reconnect ticket (already used, expired, issued by "
                                "another client or refused by its host); connect again with credentials"),
    E(CC_ERR_RECONNECT_TICKET, "the reconnect ticket is malformed or was altered; connect again with credentials"),
    E(CC_ERR_CONSENT_REFUSED, "the person at the client refused the session"),
    E(CC_ERR_CONSENT_TIMEOUT, "nobody at the client answered the consent question in time"),
#undef E
};

static int find(int code)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == code)
            return (int)i;
    return -1;
}

bool cc__err_known(int code)
{
    return find(code) >= 0;
}

CC_API const char *cc_strerror(int code)
{
    int i = find(code);
    return i >= 0 ? errors[i].text : "unknown error code";
}

CC_API const char *cc_err_name(int code)
{
    int i = find(code);
    return i >= 0 ? errors[i].name : "CC_ERR_UNKNOWN";
}
