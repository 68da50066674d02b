/* kpool.c -- the kerberos mechanism's shared caches, one set per cc_context: a bounded pool of
 * krb5 contexts and the acceptor credential from the keytab, each behind its own lock. */
#include "krb5_int.h"

#include <errno.h>
#include <profile.h>
#include <string.h>
#include <sys/stat.h>

/* A pooled context is retired after this long, so that a clock offset it learned from a ccache
 * or a KDC (libkrb5 keeps the first one a context sees) cannot outlive a clock correction. */
#define KRB_POOL_AGE_MS 60000

int cc__krb_pool_init(struct cc__krb_pool *p, const cc_context *ctx)
{
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        return -1;
    if (pthread_mutex_init(&p->acred_lock, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        return -1;
    }
    if (pthread_mutex_init(&p->icred_lock, NULL) != 0) {
        pthread_mutex_destroy(&p->acred_lock);
        pthread_mutex_destroy(&p->lock);
        return -1;
    }
    p->ready = true;
    return 0;
}

void cc__krb_pool_destroy(struct cc__krb_pool *p)
{
    if (!p->ready)
        return;
    if (p->icred)
        cc__krb_icred_put(p, p->icred, NULL); /* takes a context from the pool: before it empties */
    p->icred = NULL;
    for (size_t i = 0; i < p->n_idle; i++)
        krb5_free_context(p->idle[i].k);
    p->n_idle = 0;
    if (p->acred)
        cc__krb_acred_put(p, p->acred);
    p->acred = NULL;
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->acred_lock);
    pthread_mutex_destroy(&p->icred_lock);
    p->ready = false;
}

krb5_error_code cc__krb_pool_take(struct cc__krb_pool *p, krb5_context *out, uint64_t *born_ms)
{
    krb5_context k = NULL;
    uint64_t now = cc__now_ms();
    *born_ms = now;
    pthread_mutex_lock(&p->lock);
    while (p->n_idle && !k) {
        struct cc__krb_pooled e = p->idle[--p->n_idle];
        if (now - e.born_ms < KRB_POOL_AGE_MS) {
            k = e.k;
            *born_ms = e.born_ms;
            cc__stat_add(p->ctx, CC__ST_KRB5_CTX_REUSED, 1);
        } else {
            pthread_mutex_unlock(&p->lock);
            krb5_free_context(e.k);
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (!k)
        cc__stat_add(p->ctx, CC__ST_KRB5_CTX_MADE, 1);
    if (k) {
        /* As fresh as a new context where it matters: the default ccache name is read from
         * KRB5CCNAME again, no error message is left over. */
        krb5_cc_set_default_name(k, NULL);
        krb5_clear_error_message(k);
        *out = k;
        return 0;
    }
    krb5_error_code r = krb5_init_context(&k);
    if (r)
        return r;
    *out = k;
    return 0;
}

void cc__krb_pool_give(struct cc__krb_pool *p, krb5_context k, uint64_t born_ms)
{
    if (!k)
        return;
    krb5_set_kdc_send_hook(k, NULL, NULL); /* the hook's data belonged to the job */
    krb5_clear_error_message(k);
    pthread_mutex_lock(&p->lock);
    if (p->n_idle < CC__KRB_POOL_MAX && cc__now_ms() - born_ms < KRB_POOL_AGE_MS) {
        p->idle[p->n_idle].k = k;
        p->idle[p->n_idle].born_ms = born_ms;
        p->n_idle++;
        k = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (k)
        krb5_free_context(k);
}

void cc__krb_default_realm(struct cc__krb_pool *p, char *out, size_t len)
{
    krb5_context k = NULL;
    profile_t prof = NULL;
    char *v = NULL;
    out[0] = 0;
    uint64_t born;
    if (cc__krb_pool_take(p, &k, &born) != 0)
        return;
    if (krb5_get_profile(k, &prof) == 0) {
        if (profile_get_string(prof, "libdefaults", "default_realm", NULL, NULL, &v) == 0 && v)
            cc__fmt(out, len, "%s", v);
        profile_release_string(v);
        profile_abandon(prof);
    }
    cc__krb_pool_give(p, k, born);
}

/* ---- the acceptor credential ---- */

const char *cc__krb_file_of(const char *name)
{
    if (strncmp(name, "FILE:", 5) == 0)
        return name + 5;
    if (strncmp(name, "WRFILE:", 7) == 0)
        return name + 7;
    if (name[0] == '/')
        return name;
    return NULL;
}

static bool same_file(const struct cc__krb_acred *a, const struct stat *st)
{
    return a->dev == st->st_dev && a->ino == st->st_ino && a->size == st->st_size && a->mtime_s == st->st_mtim.tv_sec &&
           a->mtime_ns == st->st_mtim.tv_nsec;
}

OM_uint32 cc__krb_acred_get(struct cc__krb_pool *p, const char *keytab, const char *rcache, struct cc__krb_acred **out,
                            OM_uint32 *minor)
{
    char name[1100];
    struct stat st;
    bool keyed = false;
    *out = NULL;
    *minor = 0;
    if (keytab) {
        cc__fmt(name, sizeof name, "%s", keytab);
    } else {
        krb5_context k = NULL;
        uint64_t born;
        name[0] = 0;
        if (cc__krb_pool_take(p, &k, &born) == 0) {
            if (krb5_kt_default_name(k, name, sizeof name) != 0)
                name[0] = 0;
            cc__krb_pool_give(p, k, born);
        }
    }
    const char *file = name[0] ? cc__krb_file_of(name) : NULL;
    if (file && stat(file, &st) == 0)
        keyed = true;

    pthread_mutex_lock(&p->acred_lock);
    if (keyed && p->acred && strcmp(p->acred->name, name) == 0 && same_file(p->acred, &st)) {
        atomic_fetch_add(&p->acred->refs, 1);
        *out = p->acred;
        pthread_mutex_unlock(&p->acred_lock);
        cc__stat_add(p->ctx, CC__ST_KRB5_ACRED_REUSED, 1);
        return GSS_S_COMPLETE;
    }
    struct cc__krb_acred *a = cc__calloc(p->ctx, sizeof *a);
    if (!a) {
        pthread_mutex_unlock(&p->acred_lock);
        *minor = ENOMEM;
        return GSS_S_FAILURE;
    }
    atomic_init(&a->refs, 1);
    a->cred = GSS_C_NO_CREDENTIAL;
    cc__fmt(a->name, sizeof a->name, "%s", name);
    gss_key_value_element_desc el[2];
    gss_key_value_set_desc store = {0, el};
    if (keytab) {
        el[store.count].key = "keytab";
        el[store.count++].value = keytab;
    }
    /* The replay cache is always on: the default one unless configured, even when the
     * environment (KRB5RCACHETYPE=none) would turn it off. */
    el[store.count].key = "rcache";
    el[store.count++].value = rcache ? rcache : "dfl:";
    gss_OID_set_desc mechs = {1, gss_mech_krb5};
    OM_uint32 maj = gss_acquire_cred_from(minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &store,
                                          &a->cred, NULL, NULL);
    if (GSS_ERROR(maj)) {
        pthread_mutex_unlock(&p->acred_lock);
        cc__free(p->ctx, a);
        return maj;
    }
    cc__stat_add(p->ctx, CC__ST_KRB5_ACRED_READ, 1);
    if (keyed) {
        a->dev = st.st_dev;
        a->ino = st.st_ino;
        a->size = st.st_size;
        a->mtime_s = st.st_mtim.tv_sec;
        a->mtime_ns = st.st_mtim.tv_nsec;
        struct cc__krb_acred *old = p->acred;
        atomic_fetch_add(&a->refs, 1); /* the cache's reference */
        p->acred = a;
        pthread_mutex_unlock(&p->acred_lock);
        if (old)
            cc__krb_acred_put(p, old);
    } else {
        pthread_mutex_unlock(&p->acred_lock); /* not a file we can watch: this session's only */
    }
    *out = a;
    return GSS_S_COMPLETE;
}

void cc__krb_acred_put(struct cc__krb_pool *p, struct cc__krb_acred *a)
{
    if (!a || atomic_fetch_sub(&a->refs, 1) != 1)
        return;
    OM_uint32 mn;
    if (a->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&mn, &a->cred);
    cc__free(p->ctx, a);
}

/* ---- the console's credentials ---- */

static void key_of(const struct stat *st, uint64_t *dev, uint64_t *ino, int64_t *size, int64_t *ms, int64_t *mns)
{
    *dev = st->st_dev;
    *ino = st->st_ino;
    *size = st->st_size;
    *ms = st->st_mtim.tv_sec;
    *mns = st->st_mtim.tv_nsec;
}

struct cc__krb_icred *cc__krb_icred_find(struct cc__krb_pool *p, const char *ccname, const void *stp)
{
    uint64_t dev, ino;
    int64_t size, ms, mns;
    key_of(stp, &dev, &ino, &size, &ms, &mns);
    struct cc__krb_icred *ic = NULL;
    pthread_mutex_lock(&p->icred_lock);
    if (p->icred && strcmp(p->icred->ccname, ccname) == 0 && p->icred->dev == dev && p->icred->ino == ino &&
        p->icred->size == size && p->icred->mtime_s == ms && p->icred->mtime_ns == mns) {
        ic = p->icred;
        atomic_fetch_add(&ic->refs, 1);
    }
    pthread_mutex_unlock(&p->icred_lock);
    if (ic)
        cc__stat_add(p->ctx, CC__ST_KRB5_ICRED_REUSED, 1);
    return ic;
}

struct cc__krb_icred *cc__krb_icred_publish(struct cc__krb_pool *p, krb5_context k, const char *ccname, const void *stp,
                                            krb5_ccache mem, const char *princ, bool any_tgt, int32_t tgt_end,
                                            gss_cred_id_t cred)
{
    OM_uint32 mn;
    const char *type = krb5_cc_get_type(k, mem), *res = krb5_cc_get_name(k, mem);
    struct cc__krb_icred *ic = cc__calloc(p->ctx, sizeof *ic);
    if (!ic || !type || !res || strlen(type) + strlen(res) + 2 > sizeof ic->memname ||
        strlen(ccname) >= sizeof ic->ccname || strlen(princ) >= sizeof ic->princ) {
        cc__free(p->ctx, ic);
        krb5_cc_destroy(k, mem);
        gss_release_cred(&mn, &cred);
        return NULL;
    }
    atomic_init(&ic->refs, 2); /* the cache's and the caller's */
    cc__fmt(ic->ccname, sizeof ic->ccname, "%s", ccname);
    cc__fmt(ic->memname, sizeof ic->memname, "%s:%s", type, res);
    cc__fmt(ic->princ, sizeof ic->princ, "%s", princ);
    ic->any_tgt = any_tgt;
    ic->tgt_end = tgt_end;
    ic->cred = cred;
    key_of(stp, &ic->dev, &ic->ino, &ic->size, &ic->mtime_s, &ic->mtime_ns);
    /* MIT keeps a handle of its own in the credential (krb5_cc_dup); the memory cache lives
     * on until cc__krb_icred_put destroys it. */
    krb5_cc_close(k, mem);
    pthread_mutex_lock(&p->icred_lock);
    struct cc__krb_icred *old = p->icred;
    p->icred = ic;
    pthread_mutex_unlock(&p->icred_lock);
    cc__stat_add(p->ctx, CC__ST_KRB5_ICRED_READ, 1);
    if (old)
        cc__krb_icred_put(p, old, k);
    return ic;
}

void cc__krb_icred_put(struct cc__krb_pool *p, struct cc__krb_icred *ic, krb5_context k)
{
    if (!ic || atomic_fetch_sub(&ic->refs, 1) != 1)
        return;
    OM_uint32 mn;
    if (ic->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&mn, &ic->cred);
    krb5_ccache mem = NULL;
    uint64_t born;
    if (k) {
        if (krb5_cc_resolve(k, ic->memname, &mem) == 0)
            krb5_cc_destroy(k, mem);
    } else if (cc__krb_pool_take(p, &k, &born) == 0) {
        if (krb5_cc_resolve(k, ic->memname, &mem) == 0)
            krb5_cc_destroy(k, mem);
        cc__krb_pool_give(p, k, born);
    }
    cc__free(p->ctx, ic);
}
