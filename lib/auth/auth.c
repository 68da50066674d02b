/* auth.c -- hosts authenticator plug-ins: registration on the context, the
 * per-session cc_auth handle the core drives, and the cc_auth_* services. */
#include "auth.h"

#include <assert.h>
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
    if (len < 1 || len > CC__MECH_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '-'))
            return false;
    return true;
}

const struct cc__auth_entry *cc__auth_conf_find(const cc__auth_conf *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->entry[i].vt.name, name) == 0)
            return &c->entry[i];
    return NULL;
}

const struct cc__auth_entry *cc__auth_conf_choose(const cc__auth_conf *c, const char (*offered)[CC__MECH_MAX + 1],
                                                  size_t n, char *why, size_t why_len)
{
    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0; j < n; j++)
            if (strcmp(c->entry[i].vt.name, offered[j]) == 0)
                return &c->entry[i];
    char mine[CC__MAX_AUTH * (CC__MECH_MAX + 2)] = "", theirs[CC__MAX_AUTH * (CC__MECH_MAX + 2)] = "";
    for (size_t i = 0; i < c->n; i++)
        cc__fmt(mine + strlen(mine), sizeof mine - strlen(mine), "%s%s", i ? ", " : "", c->entry[i].vt.name);
    for (size_t j = 0; j < n; j++)
        cc__fmt(theirs + strlen(theirs), sizeof theirs - strlen(theirs), "%s%s", j ? ", " : "", offered[j]);
    cc__fmt(why, why_len, "the console offers [%s], this client accepts [%s]; configure a common mechanism", theirs,
            mine);
    return NULL;
}

bool cc__auth_hides_cause(const cc__auth_conf *c, int code)
{
    if (c->disclose)
        return false;
    switch (code) {
    case CC_ERR_AUTH:
    case CC_ERR_AUTH_BAD_CREDENTIALS:
    case CC_ERR_AUTH_UNKNOWN_USER:
    case CC_ERR_AUTH_DISABLED:
    case CC_ERR_AUTH_EXPIRED:
        return true;
    default:
        return false;
    }
}

void *cc__auth_conf_builtin_data(const cc__auth_conf *c, const cc__builtin_auth *b)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->entry[i].vt.start == b->vt->start)
            return c->entry[i].mech_data;
    return NULL;
}

int cc__auth_conf_add(cc_context *ctx, cc__auth_conf *c, const cc_authenticator *a, void *mech_data)
{
    if (!valid_name(a->name))
        return cc__ctx_error(ctx, CC_ERR_INVALID, "an authenticator name is 1..%d characters of [a-z0-9-]",
                             CC__MECH_MAX);
    if (cc__auth_conf_find(c, a->name))
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "authenticator \"%s\" is already registered", a->name);
    if (c->n == CC__MAX_AUTH)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "at most %d authenticators per context", CC__MAX_AUTH);
    struct cc__auth_entry *e = &c->entry[c->n];
    memset(e, 0, sizeof *e);
    /* Copy only what the caller's version of the struct has. */
    memcpy(&e->vt, a, a->struct_size < sizeof e->vt ? a->struct_size : sizeof e->vt);
    e->vt.struct_size = sizeof e->vt;
    e->mech_data = mech_data;
    c->n++;
    return CC_OK;
}

int cc__auth_conf_add_builtin(cc_context *ctx, cc__auth_conf *c, const char *name)
{
    const cc__builtin_auth *b = cc__auth_builtin_find(name);
    if (!b)
        return cc__ctx_error(ctx, CC_ERR_AUTH_UNAVAILABLE,
                             "no built-in authenticator \"%s\"; built-ins are \"kerberos\" and \"nt\"", name);
    if (cc__auth_conf_find(c, name))
        return CC_OK;
    void *md = b->create(ctx);
    if (!md)
        return CC_ERR_NOMEM;
    int r = cc__auth_conf_add(ctx, c, b->vt, md);
    if (r < 0 && b->vt->destroy)
        b->vt->destroy(md);
    return r;
}

int cc__auth_conf_set_option(cc_context *ctx, cc__auth_conf *c, const char *mech, const char *key, const char *value)
{
    const struct cc__auth_entry *e = cc__auth_conf_find(c, mech);
    if (!e)
        return cc__ctx_error(ctx, CC_ERR_CONFIG, "authenticator \"%s\" is not added to this context", mech);
    if (!e->vt.set_option)
        return cc__ctx_error(ctx, CC_ERR_INVALID, "authenticator \"%s\" takes no options", mech);
    int r = e->vt.set_option(e->mech_data, key, value);
    if (r < 0 && !cc__cbase(ctx)->errmsg[0])
        cc__ctx_error(ctx, r, "authenticator \"%s\" refused option \"%s\"", mech, key);
    return r;
}

void cc__auth_conf_free(cc__auth_conf *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->entry[i].vt.destroy)
            c->entry[i].vt.destroy(c->entry[i].mech_data);
    c->n = 0;
}

/* ---- the per-session handle ---- */

struct cc_auth {
    const cc_context *ctx;
    const struct cc__auth_entry *entry;
    int role;
    void *state; /* the mechanism's, from vt.start */
    bool started, done, mutual;
    uint32_t max_token;
    /* inputs */
    uint8_t cb[CC__BINDING_LEN];
    bool have_cb;
    const char *peer_name;
    const char *user, *domain, *password; /* borrowed from the session */
    /* outputs */
    cc__buf out;
    bool have_out;
    char *identity;
    size_t n_attrs, cap_attrs;
    char **attrs; /* key, value, key, value, ... grown on demand */
    char detail[CC__DETAIL_MAX];
    cc_job *job;          /* submitted by step, taken by the session */
    bool have_job_result; /* during the step after a job: its outcome */
    int job_result;
    char job_detail[CC__DETAIL_MAX];
};

cc_auth *cc__auth_new(const cc_context *ctx, const struct cc__auth_entry *entry, int role, const char *peer_name)
{
    cc_auth *a = cc__calloc(ctx, sizeof *a);
    if (!a)
        return NULL;
    a->ctx = ctx;
    a->entry = entry;
    a->role = role;
    a->max_token = cc__cbase(ctx)->limit[CC_LIMIT_AUTH_TOKEN];
    a->peer_name = peer_name;
    return a;
}

void cc__auth_set_binding(cc_auth *a, const uint8_t *cb)
{
    memcpy(a->cb, cb, sizeof a->cb);
    a->have_cb = true;
}

void cc__auth_set_credentials(cc_auth *a, const char *user, const char *domain, const char *password)
{
    a->user = user;
    a->domain = domain;
    a->password = password;
}

int cc__auth_step(cc_auth *a, const uint8_t *in, size_t in_len)
{
    int r;
    cc__buf_free(a->ctx, &a->out);
    a->have_out = false;
    a->detail[0] = 0;
    if (in_len > a->max_token) {
        cc__fmt(a->detail, sizeof a->detail, "%s token of %zu bytes exceeds the limit of %u bytes", a->entry->vt.name,
                in_len, a->max_token);
        return CC_ERR_AUTH_TOKEN;
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
        return CC_ERR_INTERNAL;
    }
    if (r != CC_AUTH_DONE && r != CC_AUTH_CONTINUE && r != CC_AUTH_PENDING) {
        cc__fmt(a->detail, sizeof a->detail, "%s returned %d from step", a->entry->vt.name, r);
        return CC_ERR_INTERNAL;
    }
    if (r == CC_AUTH_DONE && a->role == CC_ROLE_CLIENT && !a->identity) {
        cc__fmt(a->detail, sizeof a->detail, "%s finished without setting an identity", a->entry->vt.name);
        return CC_ERR_INTERNAL;
    }
    if (r == CC_AUTH_DONE)
        a->done = true;
    return r;
fail:
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

int cc__auth_resume(cc_auth *a, const cc_job *j)
{
    a->have_job_result = true;
    a->job_result = j->answered ? j->result : CC_ERR_CANCELLED;
    cc__fmt(a->job_detail, sizeof a->job_detail, "%s",
            j->answered ? j->detail : "the host handed the job back without running or answering it");
    int r = cc__auth_step(a, NULL, 0);
    a->have_job_result = false;
    return r;
}

const char *cc__auth_name(const cc_auth *a)
{
    return a->entry->vt.name;
}
bool cc__auth_done(const cc_auth *a)
{
    return a->done;
}
bool cc__auth_mutual(const cc_auth *a)
{
    return a->mutual;
}
bool cc__auth_output(const cc_auth *a, const uint8_t **p, size_t *len)
{
    *p = a->have_out ? cc__buf_head(&a->out) : NULL;
    *len = a->have_out ? cc__buf_size(&a->out) : 0;
    return a->have_out;
}
const char *cc__auth_detail(const cc_auth *a)
{
    return a->detail;
}
const char *cc__auth_identity(const cc_auth *a)
{
    return a->identity;
}
size_t cc__auth_attr_count(const cc_auth *a)
{
    return a->n_attrs;
}
void cc__auth_attr(const cc_auth *a, size_t i, const char **key, const char **value)
{
    assert(i < a->n_attrs);
    *key = a->attrs[2 * i];
    *value = a->attrs[2 * i + 1];
}

void cc__auth_end(cc_auth *a)
{
    if (a->started && a->state)
        a->entry->vt.end(a->state);
    a->state = NULL;
    if (a->job)
        cc_job_free(a->job);
    a->job = NULL;
    cc__buf_free(a->ctx, &a->out);
    a->have_out = false;
    a->user = a->domain = a->password = NULL;
    cc__wipe(a->cb, sizeof a->cb);
    cc__wipe(a->job_detail, sizeof a->job_detail);
}

void cc__auth_free(cc_auth *a)
{
    if (!a)
        return;
    cc__auth_end(a);
    cc__free(a->ctx, a->identity);
    for (size_t i = 0; i < 2 * a->n_attrs; i++)
        cc__free(a->ctx, a->attrs[i]);
    cc__free(a->ctx, a->attrs);
    const cc_context *ctx = a->ctx;
    cc__wipe(a, sizeof *a);
    cc__free(ctx, a);
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
    if (!a->have_cb)
        return CC_ERR_STATE;
    *data = a->cb;
    *len = sizeof a->cb;
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
    if (a->n_attrs == a->cap_attrs) {
        size_t cap = a->cap_attrs ? 2 * a->cap_attrs : 8;
        if (cap > CC__AUTH_MAX_ATTRS)
            cap = CC__AUTH_MAX_ATTRS;
        char **grown = cc__malloc(a->ctx, 2 * cap * sizeof *grown);
        if (!grown)
            return CC_ERR_NOMEM;
        if (a->n_attrs)
            memcpy(grown, a->attrs, 2 * a->n_attrs * sizeof *grown);
        cc__free(a->ctx, a->attrs);
        a->attrs = grown;
        a->cap_attrs = cap;
    }
    char *k = cc__strdup(a->ctx, key), *v = cc__strdup(a->ctx, value);
    if (!k || !v) {
        cc__free(a->ctx, k);
        cc__free(a->ctx, v);
        return CC_ERR_NOMEM;
    }
    a->attrs[2 * a->n_attrs] = k;
    a->attrs[2 * a->n_attrs + 1] = v;
    a->n_attrs++;
    return CC_OK;
}

CC_API int cc_auth_set_mutual(cc_auth *a)
{
    if (!a)
        return CC_ERR_INVALID;
    if (a->role != CC_ROLE_CONSOLE)
        return CC_ERR_STATE;
    a->mutual = true;
    return CC_OK;
}

CC_API int cc_auth_set_error(cc_auth *a, int code, const char *detail)
{
    if (!a)
        return CC_ERR_INVALID;
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
    return a ? cc__cbase(a->ctx)->timeout[CC_TIMEOUT_AUTH_JOB] : 0;
}
