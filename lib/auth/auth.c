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

/* What the exchange needs only while it runs: allocated with the handle and
 * freed, wiped, by cc__auth_end, so an established session keeps only the
 * small part below. */
struct auth_live {
    void *state; /* the mechanism's, from vt.start */
    bool started;
    uint32_t max_token;
    uint8_t cb[CC__BINDING_LEN];
    bool have_cb;
    const char *user, *domain, *password; /* borrowed from the session */
    cc__buf out;                          /* the last step's token */
    bool have_out;
    char detail[CC__DETAIL_MAX];
    cc_job *job;          /* submitted by step, taken by the session */
    bool have_job_result; /* during the step after a job: its outcome */
    int job_result;
    char job_detail[CC__DETAIL_MAX];
};

/* Attributes: while the mechanism runs, one offset per attribute (uint32_t)
 * in attr_off and its "key\0value\0" in attr_str; when it finishes both are
 * packed into one block sized to fit (the offsets, then the strings), which
 * stays where it is until the handle is freed. */
struct cc_auth {
    const cc_context *ctx;
    const struct cc__auth_entry *entry;
    int role;
    bool done, mutual;
    const char *peer_name;
    char *identity;
    size_t n_attrs;
    cc__buf attr_off, attr_str;
    uint8_t *attrs; /* the packed block, once the mechanism finished */
    struct auth_live *live;
};

/* One block sized to fit; when there is no memory for it the attributes
 * stay where they are, as readable. */
static void pack_attrs(cc_auth *a)
{
    size_t no = cc__buf_size(&a->attr_off), ns = cc__buf_size(&a->attr_str);
    if (a->attrs || !a->n_attrs)
        return;
    uint8_t *blk = cc__malloc(a->ctx, no + ns);
    if (!blk)
        return;
    memcpy(blk, cc__buf_head(&a->attr_off), no);
    memcpy(blk + no, cc__buf_head(&a->attr_str), ns);
    cc__buf_free(a->ctx, &a->attr_off);
    cc__buf_free(a->ctx, &a->attr_str);
    a->attrs = blk;
}

cc_auth *cc__auth_new(const cc_context *ctx, const struct cc__auth_entry *entry, int role, const char *peer_name)
{
    cc_auth *a = cc__calloc(ctx, sizeof *a);
    struct auth_live *l = a ? cc__calloc(ctx, sizeof *l) : NULL;
    if (!l) {
        cc__free(ctx, a);
        return NULL;
    }
    a->ctx = ctx;
    a->entry = entry;
    a->role = role;
    a->peer_name = peer_name;
    a->live = l;
    l->max_token = cc__cbase(ctx)->limit[CC_LIMIT_AUTH_TOKEN];
    return a;
}

void cc__auth_set_binding(cc_auth *a, const uint8_t *cb)
{
    if (!a->live)
        return;
    memcpy(a->live->cb, cb, sizeof a->live->cb);
    a->live->have_cb = true;
}

void cc__auth_set_credentials(cc_auth *a, const char *user, const char *domain, const char *password)
{
    if (!a->live)
        return;
    a->live->user = user;
    a->live->domain = domain;
    a->live->password = password;
}

int cc__auth_step(cc_auth *a, const uint8_t *in, size_t in_len)
{
    struct auth_live *l = a->live;
    int r;
    if (!l)
        return CC_ERR_STATE; /* ended: nothing is left to step */
    cc__buf_free(a->ctx, &l->out);
    l->have_out = false;
    l->detail[0] = 0;
    if (in_len > l->max_token) {
        cc__fmt(l->detail, sizeof l->detail, "%s token of %zu bytes exceeds the limit of %u bytes", a->entry->vt.name,
                in_len, l->max_token);
        return CC_ERR_AUTH_TOKEN;
    }
    if (!l->started) {
        l->started = true;
        r = a->entry->vt.start(a->entry->mech_data, a, &l->state);
        if (r < 0)
            goto fail;
    }
    r = a->entry->vt.step(l->state, a, in, in_len);
    if (r < 0)
        goto fail;
    if (r == CC_AUTH_PENDING && !l->job) {
        cc__fmt(l->detail, sizeof l->detail, "%s returned PENDING without submitting a job", a->entry->vt.name);
        return CC_ERR_INTERNAL;
    }
    if (r != CC_AUTH_DONE && r != CC_AUTH_CONTINUE && r != CC_AUTH_PENDING) {
        cc__fmt(l->detail, sizeof l->detail, "%s returned %d from step", a->entry->vt.name, r);
        return CC_ERR_INTERNAL;
    }
    if (r == CC_AUTH_DONE && a->role == CC_ROLE_CLIENT && !a->identity) {
        cc__fmt(l->detail, sizeof l->detail, "%s finished without setting an identity", a->entry->vt.name);
        return CC_ERR_INTERNAL;
    }
    if (r == CC_AUTH_DONE) {
        a->done = true;
        pack_attrs(a); /* before anyone reads them as final: the policy callback, the host */
    }
    return r;
fail:
    if (!l->detail[0])
        cc__fmt(l->detail, sizeof l->detail, "%s: %s", a->entry->vt.name, cc_strerror(r));
    return r;
}

cc_job *cc__auth_take_job(cc_auth *a)
{
    if (!a->live)
        return NULL;
    cc_job *j = a->live->job;
    a->live->job = NULL;
    return j;
}

int cc__auth_resume(cc_auth *a, const cc_job *j)
{
    struct auth_live *l = a->live;
    if (!l)
        return CC_ERR_STATE;
    l->have_job_result = true;
    l->job_result = j->answered ? j->result : CC_ERR_CANCELLED;
    cc__fmt(l->job_detail, sizeof l->job_detail, "%s",
            j->answered ? j->detail : "the host handed the job back without running or answering it");
    int r = cc__auth_step(a, NULL, 0);
    l->have_job_result = false;
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
    bool have = a->live && a->live->have_out;
    *p = have ? cc__buf_head(&a->live->out) : NULL;
    *len = have ? cc__buf_size(&a->live->out) : 0;
    return have;
}
const char *cc__auth_detail(const cc_auth *a)
{
    return a->live ? a->live->detail : "";
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
    const uint8_t *off = a->attrs ? a->attrs : cc__buf_head(&a->attr_off);
    const char *str =
        a->attrs ? (const char *)a->attrs + a->n_attrs * sizeof(uint32_t) : (const char *)cc__buf_head(&a->attr_str);
    uint32_t o;
    memcpy(&o, off + i * sizeof o, sizeof o);
    *key = str + o;
    *value = *key + strlen(*key) + 1;
}

void cc__auth_end(cc_auth *a)
{
    struct auth_live *l = a->live;
    if (!l)
        return;
    if (l->started && l->state)
        a->entry->vt.end(l->state);
    l->state = NULL;
    if (l->job)
        cc_job_free(l->job);
    l->job = NULL;
    cc__buf_free(a->ctx, &l->out);
    cc__wipe(l, sizeof *l); /* the binding, the credentials' pointers, the job's detail */
    cc__free(a->ctx, l);
    a->live = NULL;
}

void cc__auth_free(cc_auth *a)
{
    if (!a)
        return;
    cc__auth_end(a);
    cc__free(a->ctx, a->identity);
    cc__buf_free(a->ctx, &a->attr_off);
    cc__buf_free(a->ctx, &a->attr_str);
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
    if (!a->live || !a->live->have_cb)
        return CC_ERR_STATE;
    *data = a->live->cb;
    *len = sizeof a->live->cb;
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
    const struct auth_live *l = a->live;
    if (user)
        *user = l ? l->user : NULL;
    if (domain)
        *domain = l ? l->domain : NULL;
    if (password)
        *password = l ? l->password : NULL;
    return CC_OK;
}

CC_API int cc_auth_set_output(cc_auth *a, const void *token, size_t len)
{
    if (!a || (!token && len))
        return CC_ERR_INVALID;
    struct auth_live *l = a->live;
    if (!l)
        return CC_ERR_STATE;
    if (len > l->max_token)
        return cc_auth_set_error(a, CC_ERR_AUTH_TOKEN, "output token larger than the token limit");
    cc__buf_free(a->ctx, &l->out);
    if (cc__buf_append(a->ctx, &l->out, token, len) < 0)
        return CC_ERR_NOMEM;
    l->have_out = true;
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
    size_t kl = key ? strlen(key) : 0, vl = value ? strlen(value) : 0;
    if (!a || !key || !value || kl > 64 || vl > 4096)
        return CC_ERR_INVALID;
    if (!a->live || a->done)
        return CC_ERR_STATE; /* packed once the mechanism finished */
    if (a->n_attrs == CC__AUTH_MAX_ATTRS)
        return CC_ERR_AGAIN;
    /* Both reservations first, so running out of memory adds nothing. */
    size_t at = cc__buf_size(&a->attr_str);
    uint32_t o = (uint32_t)at; /* at most 1024 * (64 + 4096 + 2) bytes */
    if (!cc__buf_reserve(a->ctx, &a->attr_off, sizeof o) || !cc__buf_reserve(a->ctx, &a->attr_str, kl + vl + 2))
        return CC_ERR_NOMEM;
    cc__buf_append(a->ctx, &a->attr_off, &o, sizeof o);
    cc__buf_append(a->ctx, &a->attr_str, key, kl + 1);
    cc__buf_append(a->ctx, &a->attr_str, value, vl + 1);
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
    if (a->live)
        cc__fmt(a->live->detail, sizeof a->live->detail, "%s", detail ? detail : cc_strerror(code));
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
    if (!a->live || a->live->job)
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
    a->live->job = &j->base;
    return CC_OK;
}

CC_API int cc_auth_job_result(const cc_auth *a, const char **detail)
{
    if (!a)
        return CC_ERR_INVALID;
    if (!a->live || !a->live->have_job_result)
        return CC_ERR_STATE;
    if (detail)
        *detail = a->live->job_detail;
    return a->live->job_result;
}

CC_API uint32_t cc_auth_job_timeout_ms(const cc_auth *a)
{
    return a ? cc__cbase(a->ctx)->timeout[CC_TIMEOUT_AUTH_JOB] : 0;
}
