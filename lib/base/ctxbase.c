/* ctxbase.c -- the context's common part: the one table of timeout and limit
 * defaults and ranges, and the error detail every setter reports through. */
#include "base.h"

#include <stdio.h>
#include <string.h>

#define DAY_MS (24u * 3600 * 1000)

/* The header documents these numbers next to each enumerator; test-context
 * reads the header and checks it against this table. */
const cc__range cc__timeout_range[CC__TIMEOUT_COUNT] = {
    /* Until authenticated, a stranger holds a session for at most this long
     * (doc/SECURITY.md); the licence and KDC timeouts below fit inside it. */
    [CC_TIMEOUT_HANDSHAKE] = {"CC_TIMEOUT_HANDSHAKE", 10000, 1, DAY_MS},
    [CC_TIMEOUT_IDLE] = {"CC_TIMEOUT_IDLE", 0, 0, DAY_MS},
    [CC_TIMEOUT_CONNECT_ATTEMPT] = {"CC_TIMEOUT_CONNECT_ATTEMPT", 2000, 1, DAY_MS},
    [CC_TIMEOUT_KEEPALIVE] = {"CC_TIMEOUT_KEEPALIVE", 0, 0, DAY_MS},
    [CC_TIMEOUT_LICENSE_CONNECT] = {"CC_TIMEOUT_LICENSE_CONNECT", 2000, 1, DAY_MS},
    [CC_TIMEOUT_LICENSE] = {"CC_TIMEOUT_LICENSE", 4000, 1, DAY_MS},
    [CC_TIMEOUT_AUTH_JOB] = {"CC_TIMEOUT_AUTH_JOB", 4000, 1, DAY_MS},
    /* the longest a source waits after failed proofs (lib/core/backoff.c) */
    [CC_TIMEOUT_AUTH_BACKOFF] = {"CC_TIMEOUT_AUTH_BACKOFF", 4000, 0, 60000},
    /* RFC 8305's "Connection Attempt Delay": 250 ms recommended, 10 ms its floor */
    [CC_TIMEOUT_CONNECT_STAGGER] = {"CC_TIMEOUT_CONNECT_STAGGER", 250, 10, 60000},
    /* 0 = reconnection off (doc/RECONNECT.md) */
    [CC_TIMEOUT_RECONNECT_TICKET] = {"CC_TIMEOUT_RECONNECT_TICKET", 600000, 0, DAY_MS},
    /* a person reads a dialog; the handshake deadline stops meanwhile (client),
     * and on a console this caps how long a client's wait may hold it */
    [CC_TIMEOUT_CONSENT] = {"CC_TIMEOUT_CONSENT", 60000, 1, DAY_MS},
};

const cc__range cc__limit_range[CC__LIMIT_COUNT] = {
    /* a frame must hold a full data frame (16384 bytes) */
    [CC_LIMIT_FRAME_SIZE] = {"CC_LIMIT_FRAME_SIZE", 131072, 16384, 16u << 20},
    /* larger buffers fall out of cache (bench/README.md) */
    [CC_LIMIT_SEND_BUFFER] = {"CC_LIMIT_SEND_BUFFER", 256u << 10, 16384, 1u << 30},
    [CC_LIMIT_LICENSE_PAGE] = {"CC_LIMIT_LICENSE_PAGE", 65536, 256, 16u << 20},
    [CC_LIMIT_AUTH_TOKEN] = {"CC_LIMIT_AUTH_TOKEN", 65536, 1024, 16u << 20},
    [CC_LIMIT_REDIRECTS] = {"CC_LIMIT_REDIRECTS", 3, 0, 10},
};

int cc__ctx_error(cc_context *ctx, int code, const char *fmt, ...)
{
    char tmp[CC__DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(cc__base(ctx)->errmsg, tmp, sizeof tmp);
    cc__log(ctx, CC_LOG_ERROR, "%s: %s", cc_err_name(code), tmp);
    return code;
}

int cc__ctx_writable(cc_context *ctx, const char *setter)
{
    struct cc__ctx_base *b = cc__base(ctx);
    unsigned n = atomic_load(&b->sessions);
    b->errmsg[0] = 0;
    if (n == 0)
        return CC_OK;
    return cc__ctx_error(ctx, CC_ERR_STATE,
                         "%s: the context is read-only while %u session(s) use it; configure it before "
                         "cc_session_new() or use another context",
                         setter, n);
}
