/* auth.c -- hosts authenticator plug-ins: registration on the context, the
 * per-session cc_auth handle the core drives, and the cc_auth_* services. */
#include "auth.h"

#include <string.h>

static const cc__builtin_auth *const builtins[] = {&cc__auth_builtin_kerberos, &cc__auth_builtin_nt};

const cc__builtin_auth *cc__auth_builtin_find(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    return NULL;
}

static bool valid_name(const char *n)
{
    size_t len = n ? strlen(n) : 0;
    if (len < 1 || len > 32)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '-'))
            return false;
    return true;
}

static struct cc__auth_entry *find_entry(cc_context *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->n_auth; i++)
        if (strcmp(ctx->auth[i].vt.name, name) == 0)
            return &ctx->auth[i];
    return NULL;
}

CC_API int cc_context_add_authenticator(cc_context *ctx, const cc_authenticator *a, void *mech_data)
{
    if (!ctx || !a || a->struct_size < offsetof(cc_authenticator, set_option) || !a->start || !a->step || !a->end)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_add_authenticator") < 0)
        return CC_ERR_STATE;
    if (!valid_name(a->name))
        return cc__ctx_error(ctx, CC_ERR_INVALID, "an authenticator name is 1..32 characters of [a-z0-9-]");
    if (find_entry(ctx, a->name))
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "authenticator \"%s\" is already registered", a->name);
    if (ctx->n_auth == CC__MAX_AUTH)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "at most %d authenticators per context", CC__MAX_AUTH);
    struct cc__auth_entry *e = &ctx->auth[ctx->n_auth];
    memset(e, 0, sizeof *e);
    /* Copy only what the caller's version of the struct has. */
    memcpy(&e->vt, a, a->struct_size < sizeof e->vt ? a->struct_size : sizeof e->vt);
    e->vt.struct_size = sizeof e->vt;
    e->mech_data = mech_data;
    ctx->n_auth++;
    return CC_OK;
}

CC_API int cc_context_add_builtin_authenticator(cc_context *ctx, const char *name)
{
    if (!ctx || !name)
        return CC_ERR_INVALID;
    const cc__builtin_auth *b = cc__auth_builtin_find(name);
    if (!b)
        return cc__ctx_error(ctx, CC_ERR_AUTH_UNAVAILABLE,
                             "no built-in authenticator \"%s\"; built-ins are \"kerberos\" and \"nt\"", name);
    if (find_entry(ctx, name))
        return CC_OK;
    void *md = b->create(ctx);
    if (!md)
        return CC_ERR_NOMEM;
    int r = cc_context_add_authenticator(ctx, b->vt, md);
    if (r < 0 && b->vt->destroy)
        b->vt->destroy(md);
    return r;
}

CC_API int cc_context_set_auth_option(cc_context *ctx, const char *mech, const char *key, const char *value)
{
    if (!ctx || !mech || !key)
        return CC_ERR_INVALID;
    if (cc__ctx_writable(ctx, "cc_context_set_auth_option") < 0)
        return CC_ERR_STATE;
    struct cc__auth_entry *e = find_entry(ctx, mech);
    if (!e)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "authenticator \"%s\" is not added to this context", mech);
    if (!e->vt.set_option)
        return cc__ctx_error(ctx, CC_ERR_INVALID, "authenticator \"%s\" takes no options", mech);
    int r = e->vt.set_option(e->mech_data, key, value);
    if (r < 0 && !ctx->errmsg[0])
        cc__ctx_error(ctx, r, "authenticator \"%s\" refused option \"%s\"", mech, key);
    return r;
}

/* ---- the per-session handle ---- */

cc_auth *cc__auth_new(const cc_context *ctx, const struct cc__auth_entry *entry, int role)
{
    cc_auth *a = cc__calloc(ctx, sizeof *a);
    if (!a)
        return NULL;
    a->ctx = ctx;
    a->entry = entry;
    a->role = role;
    a->max_token = ctx->limit[CC_LIMIT_AUTH_TOKEN];
    return a;
}

int cc__auth_step(cc_auth *a, const uint8_t *in, size_t in_len)
{
    int r;
    cc__buf_free(a->ctx, &a->out);
    a->have_out = false;
    a->err = 0;
    a->detail[0] = 0;
    if (in_len > a->max_token) {
        cc__fmt(a->detail, sizeof a->detail, "%s token of %zu bytes exceeds the limit of %u bytes", a->entry->vt.name,
                in_len, a->max_token);
        return a->err = CC_ERR_AUTH_TOKEN;
    }
    if (!a->started) {
        a->started = true;
        r = a->entry->vt.start(a->entry->mech_data, a, &a->state);
        if (r < 0)
            goto fail;
    }
    r = a->entry->vt.step(a->state, a, in, in_len);
    if (r < 0)
        goto fail;
    if (r == CC_AUTH_PENDING && !a->job) {
        cc__fmt(a->detail, sizeof a->detail, "%s returned PENDING without submitting a job", a->entry->vt.name);
        return a->err = CC_ERR_INTERNAL;
    }
    if (r != CC_AUTH_DONE && r != CC_AUTH_CONTINUE && r != CC_AUTH_PENDING) {
        cc__fmt(a->detail, sizeof a->detail, "%s returned %d from step", a->entry->vt.name, r);
        return a->err = CC_ERR_INTERNAL;
    }
    if (r == CC_AUTH_DONE && a->role == CC_ROLE_CLIENT && !a->identity) {
        cc__fmt(a->detail, sizeof a->detail, "%s finished without setting an identity", a->entry->vt.name);
        return a->err = CC_ERR_INTERNAL;
    }
    if (r == CC_AUTH_DONE)
        a->done = true;
    return r;
fail:
    a->err = r;
    if (!a->detail[0])
        cc__fmt(a->detail, sizeof a->detail, "%s: %s", a->entry->vt.name, cc_strerror(r));
    return r;
}

cc_job *cc__auth_take_job(cc_auth *a)
{
    cc_job *j = a->job;
    a->job = NULL;
    return j;
}

void cc__auth_free(cc_auth *a)
{
    if (!a)
        return;
    if (a->started && a->state)
        a->entry->vt.end(a->state);
    if (a->job)
        cc_job_free(a->job);
    cc__buf_free(a->ctx, &a->out);
    cc__free(a->ctx, a->identity);
    for (size_t i = 0; i < a->n_attrs; i++) {
        cc__free(a->ctx, a->attr_key[i]);
        cc__free(a->ctx, a->attr_value[i]);
    }
    cc__wipe(a->cb, sizeof a->cb);
    cc__free(a->ctx, a);
}

/* ---- services for authenticators ---- */

CC_API int cc_auth_role(const cc_auth *a)
{
    return a ? a->role : CC_ERR_INVALID;
}

CC_API int cc_auth_channel_binding(const cc_auth *a, const uint8_t **data, size_t *len)
{
    if (!a || !data || !len)
        return CC_ERR_INVALID;
    if (!a->cb_len)
        return CC_ERR_STATE;
    *data = a->cb;
    *len = a->cb_len;
    return CC_OK;
}

CC_API const char *cc_auth_peer_name(const cc_auth *a)
{
    return a ? a->peer_name : NULL;
}

CC_API int cc_auth_credentials(const cc_auth *a, const char **user, const char **domain, const char **password)
{
    if (!a)
        return CC_ERR_INVALID;
    if (user)
        *user = a->user;
    if (domain)
        *domain = a->domain;
    if (password)
        *password = a->password;
    return CC_OK;
}

CC_API int cc_auth_set_output(cc_auth *a, const void *token, size_t len)
{
    if (!a || (!token && len))
        return CC_ERR_INVALID;
    if (len > a->max_token)
        return cc_auth_set_error(a, CC_ERR_AUTH_TOKEN, "output token larger than the token limit");
    cc__buf_free(a->ctx, &a->out);
    if (cc__buf_append(a->ctx, &a->out, token, len) < 0)
        return CC_ERR_NOMEM;
    a->have_out = true;
    return CC_OK;
}

CC_API int cc_auth_set_identity(cc_auth *a, const char *identity)
{
    if (!a || !identity || !*identity || strlen(identity) > CC__NAME_MAX)
        return CC_ERR_INVALID;
    char *d = cc__strdup(a->ctx, identity);
    if (!d)
        return CC_ERR_NOMEM;
    cc__free(a->ctx, a->identity);
    a->identity = d;
    return CC_OK;
}

CC_API int cc_auth_add_attribute(cc_auth *a, const char *key, const char *value)
{
    if (!a || !key || !value || strlen(key) > 64 || strlen(value) > 4096)
        return CC_ERR_INVALID;
    if (a->n_attrs == CC__AUTH_MAX_ATTRS)
        return CC_ERR_AGAIN;
    char *k = cc__strdup(a->ctx, key), *v = cc__strdup(a->ctx, value);
    if (!k || !v) {
        cc__free(a->ctx, k);
        cc__free(a->ctx, v);
        return CC_ERR_NOMEM;
    }
    a->attr_key[a->n_attrs] = k;
    a->attr_value[a->n_attrs++] = v;
    return CC_OK;
}

CC_API int cc_auth_set_error(cc_auth *a, int code, const char *detail)
{
    if (!a)
        return CC_ERR_INVALID;
    a->err = code;
    cc__fmt(a->detail, sizeof a->detail, "%s", detail ? detail : cc_strerror(code));
    return code;
}

CC_API void cc_auth_log(const cc_auth *a, int level, const char *message)
{
    if (a && message)
        cc__log(a->ctx, level, "auth %s: %s", a->entry->vt.name, message);
}

struct auth_job {
    cc_job base;
    int (*run)(void *);
    void (*free_data)(void *);
    void *data;
};

static int auth_job_run(cc_job *j)
{
    struct auth_job *aj = (struct auth_job *)j;
    int r = aj->run(aj->data);
    return cc__job_set_result(j, r > 0 ? 0 : r, NULL);
}

static void auth_job_destroy(cc_job *j)
{
    struct auth_job *aj = (struct auth_job *)j;
    if (aj->free_data)
        aj->free_data(aj->data);
}

static const struct cc__job_ops auth_job_ops = {auth_job_run, auth_job_destroy};

CC_API int cc_auth_submit_job(cc_auth *a, int (*run)(void *), void (*free_data)(void *), void *data)
{
    if (!a || !run)
        return CC_ERR_INVALID;
    if (a->job)
        return CC_ERR_STATE;
    struct auth_job *j = (struct auth_job *)cc__job_alloc(a->ctx, sizeof *j, CC_JOB_AUTH, &auth_job_ops);
    if (!j) {
        if (free_data)
            free_data(data);
        return CC_ERR_NOMEM;
    }
    j->run = run;
    j->free_data = free_data;
    j->data = data;
    a->job = &j->base;
    return CC_OK;
}

CC_API int cc_auth_job_result(const cc_auth *a, const char **detail)
{
    if (!a)
        return CC_ERR_INVALID;
    if (!a->have_job_result)
        return CC_ERR_STATE;
    if (detail)
        *detail = a->job_detail;
    return a->job_result;
}

CC_API uint32_t cc_auth_job_timeout_ms(const cc_auth *a)
{
    return a ? a->ctx->timeout[CC_TIMEOUT_AUTH_JOB] : 0;
}
