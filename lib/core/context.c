/* context.c -- cc_context: one configuration (role, TLS material, deadlines,
 * limits, licence source, authenticators) shared read-only by its sessions. */
#include "core.h"
#include "resume.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

_Static_assert(offsetof(struct cc_context, base) == 0, "the floors below reach the base through cc__base()");
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
    ctx->base.role = role;
    ctx->base.alloc = a;
    for (int i = 1; i < CC__TIMEOUT_COUNT; i++)
        ctx->base.timeout[i] = cc__timeout_range[i].dflt;
    for (int i = 1; i < CC__LIMIT_COUNT; i++)
        ctx->base.limit[i] = cc__limit_range[i].dflt;
    if (cc__license_conf_init(&ctx->license) < 0) {
        a.free(ctx, a.user);
        *err = CC_ERR_NOMEM;
        return NULL;
    }
    if (cc__backoff_init(&ctx->backoff) < 0) {
        cc__license_conf_free(ctx, &ctx->license);
        a.free(ctx, a.user);
        *err = CC_ERR_NOMEM;
        return NULL;
    }
    int r = cc__tls_conf_init(ctx, &ctx->tls);
    if (r < 0) {
        cc__backoff_free(&ctx->backoff);
        cc__license_conf_free(ctx, &ctx->license);
        a.free(ctx, a.user);
        *err = r;
        return NULL;
    }
    cc__resume_context_init(ctx);
    *err = CC_OK;
    return ctx;
}

CC_API void cc_context_free(cc_context *ctx)
{
    if (!ctx)
        return;
    cc__auth_conf_free(&ctx->auth);
    cc__tls_conf_free(ctx, &ctx->tls);
    cc__license_conf_free(ctx, &ctx->license);
    cc__backoff_free(&ctx->backoff);
    cc_allocator a = ctx->base.alloc;
    cc__wipe(ctx, sizeof *ctx);
    a.free(ctx, a.user);
}

CC_API int cc_context_role(const cc_context *ctx)
{
    return ctx ? ctx->base.role : CC_ERR_INVALID;
}
CC_API const char *cc_context_errmsg(const cc_context *ctx)
{
    return ctx ? ctx->base.errmsg : "";
}

CC_API int cc_context_set_log(cc_context *ctx, cc_log_fn fn, void *user, int max_level)
{
    if (!ctx || max_level < 0 || max_level > CC_LOG_DEBUG)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_log") < 0)
        return CC_ERR_STATE;
    ctx->base.log_fn = fn;
    ctx->base.log_user = user;
    ctx->base.log_level = max_level;
    return CC_OK;
}

CC_API int cc_context_set_certificate(cc_context *ctx, const char *cert_file, const char *key_file)
{
    if (!ctx || !cert_file || !key_file)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_certificate") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CLIENT)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the client role presents a certificate");
    return cc__tls_conf_set_certificate(ctx, &ctx->tls, cert_file, key_file);
}

CC_API int cc_context_set_ca_file(cc_context *ctx, const char *ca_file)
{
    if (!ctx || !ca_file)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_ca_file") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CONSOLE)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the console role verifies certificates");
    return cc__tls_conf_set_ca_file(ctx, &ctx->tls, ca_file);
}

CC_API int cc_context_set_pin_sha256(cc_context *ctx, const char *hex)
{
    uint8_t pin[32];
    size_t n = 0;
    if (!ctx || !hex)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_pin_sha256") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CONSOLE)
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
    memcpy(ctx->tls.pin, pin, 32);
    ctx->tls.have_pin = true;
    return CC_OK;
}

CC_API int cc_context_set_verify_callback(cc_context *ctx, cc_verify_fn fn, void *user)
{
    if (!ctx)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_verify_callback") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CONSOLE)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the console role verifies certificates");
    ctx->tls.verify_fn = fn;
    ctx->tls.verify_user = user;
    return CC_OK;
}

static int set_ranged(cc_context *ctx, const char *setter, const cc__range *row, uint32_t *slot, uint32_t v)
{
    if (cc__ctx_writable(ctx, setter) < 0)
        return CC_ERR_STATE;
    if (v < row->min || v > row->max)
        return cc__ctx_error(ctx, CC_ERR_INVALID, "%s must be between %u and %u, not %u", row->name, row->min, row->max,
                             v);
    *slot = v;
    return CC_OK;
}

CC_API int cc_context_set_timeout(cc_context *ctx, int which, uint32_t ms)
{
    if (!ctx || which < 1 || which >= CC__TIMEOUT_COUNT)
        return CC_ERR_INVALID;
    return set_ranged(ctx, "cc_context_set_timeout", &cc__timeout_range[which], &ctx->base.timeout[which], ms);
}

CC_API int cc_context_set_limit(cc_context *ctx, int which, uint32_t v)
{
    if (!ctx || which < 1 || which >= CC__LIMIT_COUNT)
        return CC_ERR_INVALID;
    return set_ranged(ctx, "cc_context_set_limit", &cc__limit_range[which], &ctx->base.limit[which], v);
}

CC_API int cc_context_set_auth_policy(cc_context *ctx, cc_auth_policy_fn fn, void *user)
{
    if (!ctx)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_auth_policy") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CLIENT)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the client role applies an authentication policy");
    ctx->auth.policy_fn = fn;
    ctx->auth.policy_user = user;
    return CC_OK;
}

CC_API int cc_context_set_auth_disclosure(cc_context *ctx, int full)
{
    if (!ctx || (full != 0 && full != 1))
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_auth_disclosure") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CLIENT)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the client role decides what a console learns of a failure");
    ctx->auth.disclose = full == 1;
    return CC_OK;
}

CC_API int cc_context_set_require_mutual(cc_context *ctx, int on)
{
    if (!ctx || (on != 0 && on != 1))
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_require_mutual") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CONSOLE)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the console role requires the client to prove itself");
    ctx->auth.require_mutual = on == 1;
    return CC_OK;
}

CC_API int cc_context_set_consent(cc_context *ctx, int mode)
{
    if (!ctx || mode < CC_CONSENT_MODE_OFF || mode > CC_CONSENT_MODE_ASK_OR_OK)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_consent") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CLIENT)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the client role asks the person at the machine");
    ctx->consent_mode = mode;
    return CC_OK;
}

/* ---- licence settings (lib/license validates) ---- */

static int client_setter(cc_context *ctx, const char *fn)
{
    if (!ctx)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, fn) < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CLIENT)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "%s: licence settings apply to client contexts", fn);
    return CC_OK;
}

CC_API int cc_context_set_license_url(cc_context *ctx, const char *url)
{
    int r = client_setter(ctx, "cc_context_set_license_url");
    return r < 0 ? r : cc__license_set_url(ctx, &ctx->license, url);
}

CC_API int cc_context_set_license_server(cc_context *ctx, const char *name)
{
    int r = client_setter(ctx, "cc_context_set_license_server");
    return r < 0 ? r : cc__license_set_server(ctx, &ctx->license, name);
}

CC_API int cc_context_set_license_ca_file(cc_context *ctx, const char *ca_file)
{
    int r = client_setter(ctx, "cc_context_set_license_ca_file");
    return r < 0 ? r : cc__license_set_ca_file(ctx, &ctx->license, ca_file);
}

CC_API int cc_context_set_license_cache_ttl(cc_context *ctx, uint32_t ms)
{
    int r = client_setter(ctx, "cc_context_set_license_cache_ttl");
    if (r == CC_OK)
        cc__license_set_cache_ttl(&ctx->license, ms);
    return r;
}

/* ---- authenticators (lib/auth keeps the list) ---- */

CC_API int cc_context_add_authenticator(cc_context *ctx, const cc_authenticator *a, void *mech_data)
{
    if (!ctx || !a || a->struct_size < offsetof(cc_authenticator, set_option) || !a->start || !a->step || !a->end)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_add_authenticator") < 0)
        return CC_ERR_STATE;
    return cc__auth_conf_add(ctx, &ctx->auth, a, mech_data);
}

CC_API int cc_context_add_builtin_authenticator(cc_context *ctx, const char *name)
{
    if (!ctx || !name)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_add_builtin_authenticator") < 0)
        return CC_ERR_STATE;
    return cc__auth_conf_add_builtin(ctx, &ctx->auth, name);
}

CC_API int cc_context_set_auth_option(cc_context *ctx, const char *mech, const char *key, const char *value)
{
    if (!ctx || !mech || !key)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_auth_option") < 0)
        return CC_ERR_STATE;
    return cc__auth_conf_set_option(ctx, &ctx->auth, mech, key, value);
}

CC_API int cc_context_set_nt_account_lookup(cc_context *ctx, cc_nt_lookup_fn fn, void *user)
{
    if (!ctx)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_nt_account_lookup") < 0)
        return CC_ERR_STATE;
    void *md = cc__auth_conf_builtin_data(&ctx->auth, &cc__auth_builtin_nt);
    if (!md)
        return cc__ctx_error(ctx, CC_ERR_STATE,
                             "add the \"nt\" authenticator (cc_context_add_builtin_authenticator) before "
                             "setting its account lookup");
    cc__nt_set_lookup(md, fn, user);
    return CC_OK;
}

/* The socket and timer callbacks every new session starts with (lib/core/notify.c). */
CC_API int cc_context_set_socket_callback(cc_context *ctx, cc_socket_fn fn, void *user)
{
    if (!ctx)
        return CC_ERR_INVALID;
    int r = cc__ctx_writable(ctx, "cc_context_set_socket_callback");
    if (r < 0)
        return r;
    ctx->hooks.sock_fn = fn;
    ctx->hooks.sock_user = user;
    return CC_OK;
}

CC_API int cc_context_set_timer_callback(cc_context *ctx, cc_timer_fn fn, void *user)
{
    if (!ctx)
        return CC_ERR_INVALID;
    int r = cc__ctx_writable(ctx, "cc_context_set_timer_callback");
    if (r < 0)
        return r;
    ctx->hooks.timer_fn = fn;
    ctx->hooks.timer_user = user;
    return CC_OK;
}

/* -- Reconnect (client; lib/core/resume.c, lib/tls/ticket.c) -- */

CC_API int cc_context_set_reconnect_key(cc_context *ctx, const uint8_t *key, size_t len)
{
    if (!ctx || !key || len < 32 || len > 64)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_reconnect_key") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CLIENT)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the client role issues reconnect tickets");
    return cc__ticket_conf_set_key(ctx->tls.tickets, key, len);
}

CC_API int cc_context_set_resume_callback(cc_context *ctx, cc_resume_fn fn, void *user)
{
    if (!ctx)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_resume_callback") < 0)
        return CC_ERR_STATE;
    if (ctx->base.role != CC_ROLE_CLIENT)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "only the client role takes reconnect tickets");
    ctx->resume_fn = fn;
    ctx->resume_user = user;
    return CC_OK;
}
