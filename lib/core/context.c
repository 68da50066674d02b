/* context.c -- cc_context: one configuration (role, TLS material, deadlines,
 * limits, licence source, authenticators) shared read-only by its sessions. */
#include "core.h"

#include "../tls/tls.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *std_malloc(size_t n, void *u)
{
    (void)u;
    return malloc(n);
}
static void *std_realloc(void *p, size_t n, void *u)
{
    (void)u;
    return realloc(p, n);
}
static void std_free(void *p, void *u)
{
    (void)u;
    free(p);
}

int cc__ctx_error(cc_context *ctx, int code, const char *fmt, ...)
{
    char tmp[CC__DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(ctx->errmsg, tmp, sizeof tmp);
    cc__log(ctx, CC_LOG_ERROR, "%s: %s", cc_err_name(code), tmp);
    return code;
}

int cc__ctx_writable(cc_context *ctx, const char *setter)
{
    unsigned n = atomic_load(&ctx->sessions);
    ctx->errmsg[0] = 0;
    if (n == 0)
        return CC_OK;
    return cc__ctx_error(ctx, CC_ERR_STATE,
                         "%s: the context is read-only while %u session(s) use it; configure it before "
                         "cc_session_new() or use another context",
                         setter, n);
}

CC_API cc_context *cc_context_new(int role, const cc_allocator *alloc, int *err)
{
    cc_allocator a = {sizeof a, NULL, std_malloc, std_realloc, std_free};
    int dummy;
    if (!err)
        err = &dummy;
    if (role != CC_ROLE_CONSOLE && role != CC_ROLE_CLIENT) {
        *err = CC_ERR_INVALID;
        return NULL;
    }
    if (alloc) {
        /* Accept the 1.0 layout and any later, longer one; copy what both know. */
        size_t v1 = offsetof(cc_allocator, free) + sizeof a.free;
        if (alloc->struct_size < v1 || !alloc->malloc || !alloc->realloc || !alloc->free) {
            *err = CC_ERR_INVALID;
            return NULL;
        }
        memcpy(&a, alloc, alloc->struct_size < sizeof a ? alloc->struct_size : sizeof a);
        a.struct_size = sizeof a;
    }
    cc_context *ctx = a.malloc(sizeof *ctx, a.user);
    if (!ctx) {
        *err = CC_ERR_NOMEM;
        return NULL;
    }
    memset(ctx, 0, sizeof *ctx);
    ctx->role = role;
    ctx->alloc = a;
    ctx->timeout[CC_TIMEOUT_HANDSHAKE] = 30000;
    ctx->timeout[CC_TIMEOUT_IDLE] = 0;
    ctx->timeout[CC_TIMEOUT_CONNECT_ATTEMPT] = 2000;
    ctx->timeout[CC_TIMEOUT_KEEPALIVE] = 0;
    ctx->timeout[CC_TIMEOUT_LICENSE_CONNECT] = 5000;
    ctx->timeout[CC_TIMEOUT_LICENSE] = 10000;
    ctx->timeout[CC_TIMEOUT_AUTH_JOB] = 10000;
    ctx->limit[CC_LIMIT_FRAME_SIZE] = 131072;
    ctx->limit[CC_LIMIT_SEND_BUFFER] = 256u << 10; /* larger buffers fall out of cache (bench/README.md) */
    ctx->limit[CC_LIMIT_LICENSE_PAGE] = 65536;
    ctx->limit[CC_LIMIT_AUTH_TOKEN] = 65536;
    ctx->limit[CC_LIMIT_REDIRECTS] = 3;
    if (pthread_mutex_init(&ctx->license.cache_lock, NULL) != 0) {
        a.free(ctx, a.user);
        *err = CC_ERR_NOMEM;
        return NULL;
    }
    int r = cc__tls_ctx_init(ctx);
    if (r < 0) {
        pthread_mutex_destroy(&ctx->license.cache_lock);
        a.free(ctx, a.user);
        *err = r;
        return NULL;
    }
    *err = CC_OK;
    return ctx;
}

CC_API void cc_context_free(cc_context *ctx)
{
    if (!ctx)
        return;
    for (size_t i = 0; i < ctx->n_auth; i++)
        if (ctx->auth[i].vt.destroy)
            ctx->auth[i].vt.destroy(ctx->auth[i].mech_data);
    cc__tls_ctx_free(ctx);
    cc__free(ctx, ctx->cert_file);
    cc__free(ctx, ctx->key_file);
    cc__free(ctx, ctx->ca_file);
    cc__free(ctx, ctx->license.url);
    cc__free(ctx, ctx->license.ca_file);
    pthread_mutex_destroy(&ctx->license.cache_lock);
    cc_allocator a = ctx->alloc;
    cc__wipe(ctx, sizeof *ctx);
    a.free(ctx, a.user);
}

CC_API int cc_context_role(const cc_context *ctx)
{
    return ctx ? ctx->role : CC_ERR_INVALID;
}
CC_API const char *cc_context_errmsg(const cc_context *ctx)
{
    return ctx ? ctx->errmsg : "";
}

CC_API int cc_context_set_log(cc_context *ctx, cc_log_fn fn, void *user, int max_level)
{
    if (!ctx || max_level < 0 || max_level > CC_LOG_DEBUG)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_log") < 0)
        return CC_ERR_STATE;
    ctx->log_fn = fn;
    ctx->log_user = user;
    ctx->log_level = max_level;
    return CC_OK;
}

static int replace(cc_context *ctx, char **slot, const char *v)
{
    char *d = cc__strdup(ctx, v);
    if (!d)
        return CC_ERR_NOMEM;
    cc__free(ctx, *slot);
    *slot = d;
    return CC_OK;
}

CC_API int cc_context_set_certificate(cc_context *ctx, const char *cert_file, const char *key_file)
{
    if (!ctx || !cert_file || !key_file)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_certificate") < 0)
        return CC_ERR_STATE;
    if (ctx->role != CC_ROLE_CLIENT)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the client role presents a certificate");
    int r = cc__tls_ctx_set_certificate(ctx, cert_file, key_file);
    if (r == CC_OK && (r = replace(ctx, &ctx->cert_file, cert_file)) == CC_OK)
        r = replace(ctx, &ctx->key_file, key_file);
    return r;
}

CC_API int cc_context_set_ca_file(cc_context *ctx, const char *ca_file)
{
    if (!ctx || !ca_file)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_ca_file") < 0)
        return CC_ERR_STATE;
    if (ctx->role != CC_ROLE_CONSOLE)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the console role verifies certificates");
    int r = cc__tls_ctx_set_ca_file(ctx, ca_file);
    return r == CC_OK ? replace(ctx, &ctx->ca_file, ca_file) : r;
}

CC_API int cc_context_set_pin_sha256(cc_context *ctx, const char *hex)
{
    uint8_t pin[32];
    size_t n = 0;
    if (!ctx || !hex)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_pin_sha256") < 0)
        return CC_ERR_STATE;
    if (ctx->role != CC_ROLE_CONSOLE)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the console role verifies certificates");
    for (const char *p = hex; *p; p++) {
        if (*p == ':')
            continue;
        if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || n == 32)
            return cc__ctx_error(ctx, CC_ERR_INVALID,
                                 "the pin must be 64 hex digits (SHA-256 of the certificate), colons allowed");
        char byte[3] = {p[0], p[1], 0};
        pin[n++] = (uint8_t)strtoul(byte, NULL, 16);
        p++;
    }
    if (n != 32)
        return cc__ctx_error(ctx, CC_ERR_INVALID,
                             "the pin must be 64 hex digits (SHA-256 of the certificate), got %zu bytes", n);
    memcpy(ctx->pin, pin, 32);
    ctx->have_pin = true;
    return CC_OK;
}

CC_API int cc_context_set_verify_callback(cc_context *ctx, cc_verify_fn fn, void *user)
{
    if (!ctx)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_verify_callback") < 0)
        return CC_ERR_STATE;
    if (ctx->role != CC_ROLE_CONSOLE)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the console role verifies certificates");
    ctx->verify_fn = fn;
    ctx->verify_user = user;
    return CC_OK;
}

CC_API int cc_context_set_timeout(cc_context *ctx, int which, uint32_t ms)
{
    if (!ctx || which < CC_TIMEOUT_HANDSHAKE || which > CC_TIMEOUT_AUTH_JOB)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_timeout") < 0)
        return CC_ERR_STATE;
    if (ms == 0 && which != CC_TIMEOUT_IDLE && which != CC_TIMEOUT_KEEPALIVE)
        return cc__ctx_error(ctx, CC_ERR_INVALID, "this timeout must be greater than 0 ms");
    if (ms > 24u * 3600 * 1000)
        return cc__ctx_error(ctx, CC_ERR_INVALID, "timeouts are limited to 24 hours");
    ctx->timeout[which] = ms;
    return CC_OK;
}

CC_API int cc_context_set_limit(cc_context *ctx, int which, uint32_t v)
{
    static const uint32_t lo[] = {0, 16384, 16384, 256, 1024, 0}; /* a frame must hold a full data frame */
    static const uint32_t hi[] = {0, 16u << 20, 1u << 30, 16u << 20, 16u << 20, 10};
    if (!ctx || which < CC_LIMIT_FRAME_SIZE || which > CC_LIMIT_REDIRECTS)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_limit") < 0)
        return CC_ERR_STATE;
    if (v < lo[which] || v > hi[which])
        return cc__ctx_error(ctx, CC_ERR_INVALID, "limit %d must be between %u and %u", which, lo[which], hi[which]);
    ctx->limit[which] = v;
    return CC_OK;
}

CC_API int cc_context_set_auth_policy(cc_context *ctx, cc_auth_policy_fn fn, void *user)
{
    if (!ctx)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_auth_policy") < 0)
        return CC_ERR_STATE;
    if (ctx->role != CC_ROLE_CLIENT)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the client role applies an authentication policy");
    ctx->policy_fn = fn;
    ctx->policy_user = user;
    return CC_OK;
}
