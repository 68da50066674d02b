/* krb5.c -- the built-in "kerberos" authenticator: GSSAPI krb5 mechanism (MIT),
 * mutual authentication, bound to the TLS channel, KDC traffic handed out as jobs. */
#include "krb5_int.h"
#include "../kdc/kdc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Channel-binding application data: this prefix then the 32-byte RFC 9266
 * tls-exporter value (the RFC 5056 / RFC 5929 convention of naming the type). */
#define KRB_CB_PREFIX     "tls-exporter:"
#define KRB_CB_PREFIX_LEN (sizeof KRB_CB_PREFIX - 1)
#define KRB_CB_MAX        32

/* ------------------------------------------------------------------ */
/* mech_data: per-context options                                       */

struct krb_mech {
    cc_context *ctx;
    char *service;            /* console: target principal; client: the only acceptable service */
    char *keytab;             /* client: keytab name (default: libkrb5's default keytab) */
    char *realms;             /* client: comma-separated realms whose principals are accepted */
    char *rcache;             /* client: replay cache name (default: libkrb5's default, never "none") */
    char *ccache;             /* console: credential cache name (default: KRB5CCNAME / libkrb5's default) */
    struct cc__krb_pool pool; /* the context's krb5 contexts and acceptor credential (kpool.c) */
};

static void *krb_create(cc_context *ctx)
{
    struct krb_mech *m = cc__calloc(ctx, sizeof(*m));
    if (!m)
        return NULL;
    m->ctx = ctx;
    if (cc__krb_pool_init(&m->pool, ctx) != 0) {
        cc__free(ctx, m);
        return NULL;
    }
    return m;
}

static void krb_destroy(void *mech_data)
{
    struct krb_mech *m = mech_data;
    if (!m)
        return;
    cc__free(m->ctx, m->service);
    cc__free(m->ctx, m->keytab);
    cc__free(m->ctx, m->realms);
    cc__free(m->ctx, m->rcache);
    cc__free(m->ctx, m->ccache);
    cc__krb_pool_destroy(&m->pool);
    cc__free(m->ctx, m);
}

static int krb_set_option(void *mech_data, const char *key, const char *value)
{
    struct krb_mech *m = mech_data;
    char **slot = NULL;
    if (strcmp(key, "service") == 0)
        slot = &m->service;
    else if (strcmp(key, "keytab") == 0)
        slot = &m->keytab;
    else if (strcmp(key, "realm") == 0)
        slot = &m->realms;
    else if (strcmp(key, "rcache") == 0)
        slot = &m->rcache;
    else if (strcmp(key, "ccache") == 0)
        slot = &m->ccache;
    else
        return cc__ctx_error(m->ctx, CC_ERR_INVALID,
                             "kerberos has no option \"%s\" (service, keytab, realm, rcache, ccache)", key);
    if (value && (!*value || strlen(value) > 1024))
        return cc__ctx_error(m->ctx, CC_ERR_INVALID, "kerberos option \"%s\" must be 1..1024 characters", key);
    if (slot == &m->rcache && value && (strcmp(value, "none") == 0 || strncmp(value, "none:", 5) == 0))
        return cc__ctx_error(m->ctx, CC_ERR_INVALID, "kerberos refuses to turn the replay cache off");
    char *v = NULL;
    if (value && !(v = cc__strdup(m->ctx, value)))
        return CC_ERR_NOMEM;
    cc__free(m->ctx, *slot);
    *slot = v;
    return CC_OK;
}

/* ------------------------------------------------------------------ */
/* The initiator's job: everything that may talk to the KDC.           */

struct krb_job {
    atomic_int refs; /* the session's state and the cc_job each hold one */
    const cc_context *ctx;
    struct cc__krb_pool *pool; /* the context's: the job's krb5 context comes from it */
    /* inputs (copied; the password is wiped as soon as it is used) */
    char *user, *password, *service, *peer, *ccache_name;
    uint8_t cb[KRB_CB_MAX];
    size_t cb_len;
    uint32_t timeout_ms;
    cc__kdc_deadline kdc; /* the job's KDC traffic ends by kdc.at_ms */
    /* outputs */
    bool finished;
    int code;
    char detail[CC__DETAIL_MAX];
    krb5_context kctx; /* from the pool for job_run only */
    uint64_t kborn;
    krb5_ccache ccache;          /* a MEMORY: cache of ours: destroyed at the end of job_run */
    krb5_ccache user_cc;         /* the user's cache, read once into ccache */
    struct cc__krb_icred *icred; /* or the context's copy of it, while the file is unchanged */
    bool any_tgt;                /* what the copy found: a TGT, the latest ending then */
    krb5_timestamp tgt_end;
    gss_cred_id_t cred;
    gss_ctx_id_t gctx; /* the session takes it over */
    gss_buffer_desc token;
    char target[CC__NAME_MAX + 1];
};

/* Ends what job_run holds of libkrb5: the credential, the caches, the krb5 context
 * (back to the pool). */
static void job_krb_end(struct krb_job *j)
{
    OM_uint32 mn;
    if (j->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&mn, &j->cred);
    if (j->ccache)
        (j->icred ? krb5_cc_close : krb5_cc_destroy)(j->kctx, j->ccache);
    cc__krb_icred_put(j->pool, j->icred, j->kctx);
    j->icred = NULL;
    if (j->user_cc)
        krb5_cc_close(j->kctx, j->user_cc);
    j->ccache = j->user_cc = NULL;
    if (j->kctx)
        cc__krb_pool_give(j->pool, j->kctx, j->kborn);
    j->kctx = NULL;
}

static void job_release(struct krb_job *j)
{
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    OM_uint32 mn;
    const cc_context *ctx = j->ctx;
    cc__free(ctx, j->user);
    cc__free_secret(ctx, j->password);
    cc__free(ctx, j->service);
    cc__free(ctx, j->peer);
    cc__free(ctx, j->ccache_name);
    if (j->gctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&mn, &j->gctx, GSS_C_NO_BUFFER);
    gss_release_buffer(&mn, &j->token);
    job_krb_end(j);
    cc__wipe(j->cb, sizeof j->cb);
    cc__free(ctx, j);
}

static void job_free_data(void *data)
{
    job_release(data);
}

static int job_fail(struct krb_job *j, enum krb_op op, krb5_error_code code, const char *what)
{
    const char *msg = krb5_get_error_message(j->kctx, code);
    if (j->kdc.timed_out)
        code = ETIMEDOUT;
    j->code = cc__krb_map(op, code, msg, what, j->detail, sizeof j->detail);
    if (j->kdc.timed_out)
        cc__fmt(j->detail + strlen(j->detail), sizeof j->detail - strlen(j->detail), " (the job's %u ms were used up)",
                j->timeout_ms);
    krb5_free_error_message(j->kctx, msg);
    return j->code;
}

/* The user principal: "user@REALM" as given, "DOMAIN\user" -> user@DOMAIN,
 * a bare name gets the default realm (krb5_parse_name's rule). */
static krb5_error_code job_user_principal(struct krb_job *j, krb5_principal *out)
{
    char name[CC__NAME_MAX + 1];
    const char *u = j->user, *bs = strchr(u, '\\');
    if (bs && !strchr(u, '@')) {
        int dlen = (int)(bs - u);
        cc__fmt(name, sizeof name, "%s@%.*s", bs + 1, dlen, u);
        for (char *c = strrchr(name, '@'); c && *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 'a' + 'A');
    } else {
        cc__fmt(name, sizeof name, "%s", u);
    }
    return krb5_parse_name(j->kctx, name, out);
}

/* Reads the user's cache (j->user_cc, whose principal is `client`) once, into a private
 * memory cache j->ccache that the rest of the job and GSSAPI use, and checks on the way
 * that it holds a TGT that has not expired, so the console is told "expired" rather
 * than a KDC error. */
static int job_check_tgt(struct krb_job *j, const char *ccname);

static int job_copy_ccache(struct krb_job *j, krb5_principal client, const char *ccname)
{
    krb5_cc_cursor cur;
    krb5_creds c;
    bool any = false;
    krb5_timestamp latest = 0;
    krb5_error_code r;
    if ((r = krb5_cc_new_unique(j->kctx, "MEMORY", NULL, &j->ccache)) != 0 ||
        (r = krb5_cc_initialize(j->kctx, j->ccache, client)) != 0)
        return job_fail(j, KRB_OP_CONFIG, r, NULL);
    if ((r = krb5_cc_start_seq_get(j->kctx, j->user_cc, &cur)) != 0)
        return job_fail(j, KRB_OP_CCACHE, r, ccname);
    while ((r = krb5_cc_next_cred(j->kctx, j->user_cc, &cur, &c)) == 0) {
        krb5_error_code sr = krb5_cc_store_cred(j->kctx, j->ccache, &c);
        if (sr) {
            krb5_free_cred_contents(j->kctx, &c);
            krb5_cc_end_seq_get(j->kctx, j->user_cc, &cur);
            return job_fail(j, KRB_OP_CONFIG, sr, NULL);
        }
        const krb5_data *first = c.server->length >= 1 ? &c.server->data[0] : NULL;
        if (first && first->length == 6 && memcmp(first->data, "krbtgt", 6) == 0) {
            any = true;
            if ((int32_t)(c.times.endtime - latest) > 0)
                latest = c.times.endtime;
        }
        krb5_free_cred_contents(j->kctx, &c);
    }
    krb5_cc_end_seq_get(j->kctx, j->user_cc, &cur);
    j->any_tgt = any;
    j->tgt_end = latest;
    return job_check_tgt(j, ccname);
}

/* The console is told "expired" rather than a KDC error. */
static int job_check_tgt(struct krb_job *j, const char *ccname)
{
    krb5_timestamp now;
    if (krb5_timeofday(j->kctx, &now) != 0)
        return 0; /* let the TGS exchange report it */
    if (j->any_tgt && (int32_t)(j->tgt_end - now) <= 0) {
        time_t t = (time_t)(uint32_t)j->tgt_end;
        struct tm tm;
        char when[40] = "?";
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        cc__fmt(j->detail, sizeof j->detail, "the Kerberos ticket-granting ticket in %s expired at %s; run kinit again",
                ccname, when);
        return j->code = CC_ERR_AUTH_EXPIRED;
    }
    return 0;
}

static int job_run(void *data)
{
    struct krb_job *j = data;
    krb5_error_code r;
    krb5_principal client = NULL, server = NULL;
    krb5_creds in, *out = NULL;
    char *name = NULL, ccname[CC__NAME_MAX + 1] = "";
    struct stat st;
    bool keyed = false;
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    OM_uint32 maj, mn;
    gss_name_t target = GSS_C_NO_NAME;
    memset(&in, 0, sizeof in);

    j->finished = true;
    j->kdc.at_ms = cc__now_ms() + j->timeout_ms;
    /* A context from the cc_context's pool (used by this job's thread alone until it
     * goes back): no state shared with the host's own libkrb5 use. (MIT 1.20 has no
     * overall request timeout setting; the send hook bounds it.) */
    r = cc__krb_pool_take(j->pool, &j->kctx, &j->kborn);
    if (r) {
        j->kctx = NULL;
        j->code = cc__krb_map(KRB_OP_CONFIG, r, "cannot make a Kerberos context", NULL, j->detail, sizeof j->detail);
        goto done;
    }
    /* Every message to a KDC goes through the library's bounded I/O, so the whole
     * job, retries included, ends by its deadline. */
    cc__kdc_bind(j->kctx, &j->kdc);

    if (j->password) {
        /* TGT from user + password into a private memory cache. */
        if (!j->user) {
            j->code = CC_ERR_AUTH_NO_CREDENTIALS;
            cc__fmt(j->detail, sizeof j->detail, "a password was given without a user principal");
            goto done;
        }
        if ((r = job_user_principal(j, &client)) != 0) {
            job_fail(j, KRB_OP_TGT, r, j->user);
            goto done;
        }
        krb5_unparse_name(j->kctx, client, &name);
        if ((r = krb5_cc_new_unique(j->kctx, "MEMORY", NULL, &j->ccache)) != 0) {
            job_fail(j, KRB_OP_CONFIG, r, NULL);
            goto done;
        }
        krb5_get_init_creds_opt *opt = NULL;
        if ((r = krb5_get_init_creds_opt_alloc(j->kctx, &opt)) != 0) {
            job_fail(j, KRB_OP_CONFIG, r, NULL);
            goto done;
        }
        krb5_get_init_creds_opt_set_forwardable(opt, 0);
        krb5_get_init_creds_opt_set_proxiable(opt, 0);
        krb5_get_init_creds_opt_set_change_password_prompt(opt, 0);
        krb5_get_init_creds_opt_set_out_ccache(j->kctx, opt, j->ccache);
        krb5_creds tgt;
        memset(&tgt, 0, sizeof tgt);
        r = krb5_get_init_creds_password(j->kctx, &tgt, client, j->password, NULL, NULL, 0, NULL, opt);
        cc__free_secret(j->ctx, j->password);
        j->password = NULL;
        krb5_get_init_creds_opt_free(j->kctx, opt);
        krb5_free_cred_contents(j->kctx, &tgt);
        if (r) {
            job_fail(j, KRB_OP_TGT, r, name);
            goto done;
        }
        cc__fmt(ccname, sizeof ccname, "(memory)");
    } else {
        /* The user's credential cache: KRB5CCNAME / default, or the "ccache" option;
         * with a user name, the cache of that principal in the collection. */
        if (j->ccache_name)
            r = krb5_cc_resolve(j->kctx, j->ccache_name, &j->user_cc);
        else if (j->user) {
            if ((r = job_user_principal(j, &client)) == 0)
                r = krb5_cc_cache_match(j->kctx, client, &j->user_cc);
        } else
            r = krb5_cc_default(j->kctx, &j->user_cc);
        if (r) {
            j->user_cc = NULL;
            job_fail(j, KRB_OP_CCACHE, r,
                     j->ccache_name ? j->ccache_name
                     : j->user      ? j->user
                                    : krb5_cc_default_name(j->kctx));
            goto done;
        }
        char *full = NULL;
        if (krb5_cc_get_full_name(j->kctx, j->user_cc, &full) == 0) {
            cc__fmt(ccname, sizeof ccname, "%s", full);
            krb5_free_string(j->kctx, full);
        }
        /* A FILE cache is read only when it changed since the context's last copy. */
        const char *file = cc__krb_file_of(ccname);
        keyed = file && stat(file, &st) == 0;
        if (keyed && (j->icred = cc__krb_icred_find(j->pool, ccname, &st)) != NULL) {
            if (!client && (r = krb5_parse_name(j->kctx, j->icred->princ, &client)) != 0) {
                job_fail(j, KRB_OP_CCACHE, r, ccname);
                goto done;
            }
            krb5_unparse_name(j->kctx, client, &name);
            j->any_tgt = j->icred->any_tgt;
            j->tgt_end = j->icred->tgt_end;
            if (job_check_tgt(j, ccname) < 0)
                goto done;
            if ((r = krb5_cc_resolve(j->kctx, j->icred->memname, &j->ccache)) != 0) {
                j->ccache = NULL;
                job_fail(j, KRB_OP_CONFIG, r, NULL);
                goto done;
            }
        } else {
            if (!client && (r = krb5_cc_get_principal(j->kctx, j->user_cc, &client)) != 0) {
                job_fail(j, KRB_OP_CCACHE, r, ccname);
                goto done;
            }
            krb5_unparse_name(j->kctx, client, &name);
            if (job_copy_ccache(j, client, ccname) < 0)
                goto done;
        }
    }

    /* The service principal: the "service" option, else host/PEER in the realm
     * krb5.conf maps PEER to, else the default realm. */
    if (j->service) {
        r = krb5_parse_name(j->kctx, j->service, &server);
    } else if (j->peer && *j->peer) {
        r = krb5_sname_to_principal(j->kctx, j->peer, "host", KRB5_NT_SRV_HST, &server);
        if (r == 0 && server->realm.length == 0) {
            char *def = NULL;
            if ((r = krb5_get_default_realm(j->kctx, &def)) == 0) {
                r = krb5_set_principal_realm(j->kctx, server, def);
                krb5_free_default_realm(j->kctx, def);
            }
        }
    } else {
        j->code = CC_ERR_CONFIG;
        cc__fmt(j->detail, sizeof j->detail,
                "no service principal: the peer's host name is unknown; set the kerberos option \"service\"");
        goto done;
    }
    if (r) {
        job_fail(j, KRB_OP_TICKET, r, j->service ? j->service : j->peer);
        goto done;
    }
    {
        char *s = NULL;
        if (krb5_unparse_name(j->kctx, server, &s) == 0) {
            cc__fmt(j->target, sizeof j->target, "%s", s);
            krb5_free_unparsed_name(j->kctx, s);
        }
    }
    in.client = client;
    in.server = server;
    /* A service ticket the user's cache held is in the memory copy; one fetched from
     * the KDC is stored back in the user's cache too, as kinit'd tools expect. */
    r = krb5_get_credentials(j->kctx, KRB5_GC_CACHED, j->ccache, &in, &out);
    if (r != 0) {
        r = krb5_get_credentials(j->kctx, 0, j->ccache, &in, &out);
        if (r == 0 && j->user_cc)
            (void)krb5_cc_store_cred(j->kctx, j->user_cc, out); /* best effort: the cache may be read-only */
    }
    if (r != 0) {
        job_fail(j, r == KRB5KRB_AP_ERR_TKT_EXPIRED || r == KRB5_CC_NOTFOUND ? KRB_OP_CCACHE : KRB_OP_TICKET, r,
                 r == KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN ? j->target
                 : name                               ? name
                                                      : ccname);
        goto done;
    }
    krb5_free_creds(j->kctx, out);

    /* Now GSSAPI finds the service ticket in the cache and needs no KDC. */
    if (j->icred) {
        cred = j->icred->cred; /* shared: MIT's credentials carry their own lock */
    } else {
        maj = gss_krb5_import_cred(&mn, j->ccache, client, NULL, &j->cred);
        if (GSS_ERROR(maj)) {
            j->code = cc__krb_map_gss(KRB_OP_INIT, maj, mn, name, j->detail, sizeof j->detail);
            goto done;
        }
        cred = j->cred;
    }
    gss_buffer_desc tn = {strlen(j->target), j->target};
    maj = gss_import_name(&mn, &tn, GSS_KRB5_NT_PRINCIPAL_NAME, &target);
    if (GSS_ERROR(maj)) {
        j->code = cc__krb_map_gss(KRB_OP_INIT, maj, mn, j->target, j->detail, sizeof j->detail);
        goto done;
    }
    uint8_t appdata[KRB_CB_PREFIX_LEN + KRB_CB_MAX];
    memcpy(appdata, KRB_CB_PREFIX, KRB_CB_PREFIX_LEN);
    memcpy(appdata + KRB_CB_PREFIX_LEN, j->cb, j->cb_len);
    struct gss_channel_bindings_struct cb;
    memset(&cb, 0, sizeof cb); /* address types 0 (GSS_C_AF_UNSPEC), no addresses: as Windows does */
    cb.application_data.length = KRB_CB_PREFIX_LEN + j->cb_len;
    cb.application_data.value = appdata;
    OM_uint32 flags = 0;
    maj = gss_init_sec_context(&mn, cred, &j->gctx, target, gss_mech_krb5,
                               GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG |
                                   GSS_C_CONF_FLAG,
                               GSS_C_INDEFINITE, &cb, GSS_C_NO_BUFFER, NULL, &j->token, &flags, NULL);
    cc__wipe(appdata, sizeof appdata);
    if (GSS_ERROR(maj)) {
        j->code = cc__krb_map_gss(KRB_OP_INIT, maj, mn, name, j->detail, sizeof j->detail);
        goto done;
    }
    if (maj != GSS_S_CONTINUE_NEEDED || !(flags & GSS_C_MUTUAL_FLAG) || !j->token.length) {
        j->code = CC_ERR_AUTH_MUTUAL;
        cc__fmt(j->detail, sizeof j->detail, "the krb5 mechanism would not do mutual authentication");
        goto done;
    }
    j->code = 0;
    cc__fmt(j->detail, sizeof j->detail, "%s -> %s", name ? name : "?", j->target);
    if (keyed && !j->icred && name) {
        /* The next jobs of this context use this copy while the file stays as it was. */
        j->icred =
            cc__krb_icred_publish(j->pool, j->kctx, ccname, &st, j->ccache, name, j->any_tgt, j->tgt_end, j->cred);
        j->ccache = NULL;
        j->cred = GSS_C_NO_CREDENTIAL;
    }
done:
    if (j->password) {
        cc__free_secret(j->ctx, j->password);
        j->password = NULL;
    }
    if (target != GSS_C_NO_NAME)
        gss_release_name(&mn, &target);
    if (j->kctx) {
        if (name)
            krb5_free_unparsed_name(j->kctx, name);
        krb5_free_principal(j->kctx, client);
        krb5_free_principal(j->kctx, server);
    }
    /* The AP-REQ is made: the security context holds what the AP-REP check needs, so the
     * credential, the memory cache and the krb5 context are done with. */
    job_krb_end(j);
    return j->code;
}

/* ------------------------------------------------------------------ */
/* Per-session state                                                    */

enum krb_phase { PH_START, PH_PENDING, PH_REPLY, PH_DONE, PH_FAILED };

struct krb_state {
    const cc_context *ctx;
    struct krb_mech *mech;
    int role;
    enum krb_phase phase;
    /* console */
    struct krb_job *job; /* shared with the cc_job while it is out */
    gss_ctx_id_t gctx;
    char target[CC__NAME_MAX + 1];
    /* client */
    char want_service[CC__NAME_MAX + 1]; /* the "service" option, canonical; "" = any */
    struct cc__krb_acred *acred;         /* a reference to the context's acceptor credential */
    gss_ctx_id_t actx;
};

static int krb_start(void *mech_data, cc_auth *auth, void **statep)
{
    struct krb_mech *m = mech_data;
    struct krb_state *s = cc__calloc(m->ctx, sizeof *s);
    if (!s)
        return CC_ERR_NOMEM;
    s->ctx = m->ctx;
    s->mech = m;
    s->role = cc_auth_role(auth);
    s->gctx = s->actx = GSS_C_NO_CONTEXT;
    *statep = s;
    return CC_OK;
}

static void krb_end(void *state)
{
    struct krb_state *s = state;
    if (!s)
        return;
    OM_uint32 mn;
    if (s->gctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&mn, &s->gctx, GSS_C_NO_BUFFER);
    if (s->actx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&mn, &s->actx, GSS_C_NO_BUFFER);
    cc__krb_acred_put(&s->mech->pool, s->acred);
    job_release(s->job); /* the cc_job may still be out: it keeps its own reference */
    cc__free(s->ctx, s);
}

static int fail(struct krb_state *s, cc_auth *auth, int code, const char *detail)
{
    s->phase = PH_FAILED;
    cc_auth_log(auth, CC_LOG_INFO, detail);
    return cc_auth_set_error(auth, code, detail);
}

static char *dup_opt(const cc_context *ctx, const char *v, bool *oom)
{
    if (!v)
        return NULL;
    char *d = cc__strdup(ctx, v);
    if (!d)
        *oom = true;
    return d;
}

static int console_start(struct krb_state *s, cc_auth *auth)
{
    const uint8_t *cbd;
    size_t cbl;
    if (cc_auth_channel_binding(auth, &cbd, &cbl) < 0 || cbl == 0 || cbl > KRB_CB_MAX)
        return fail(s, auth, CC_ERR_AUTH_CHANNEL_BINDING,
                    "no TLS channel binding is available; kerberos authenticates only over TLS");
    struct krb_job *j = cc__calloc(s->ctx, sizeof *j);
    if (!j)
        return CC_ERR_NOMEM;
    atomic_init(&j->refs, 1);
    j->ctx = s->ctx;
    j->pool = &s->mech->pool;
    j->cred = GSS_C_NO_CREDENTIAL;
    j->gctx = GSS_C_NO_CONTEXT;
    const char *user = NULL, *domain = NULL, *password = NULL;
    cc_auth_credentials(auth, &user, &domain, &password);
    if (user && !*user)
        user = NULL; /* "" means "none" (cc-console passes it with a password only) */
    if (domain && !*domain)
        domain = NULL;
    bool oom = false;
    if (user && domain && !strchr(user, '@') && !strchr(user, '\\')) {
        char buf[CC__NAME_MAX + 1];
        cc__fmt(buf, sizeof buf, "%s@%s", user, domain);
        for (char *c = strrchr(buf, '@'); *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char)(*c - 'a' + 'A');
        j->user = dup_opt(s->ctx, buf, &oom);
    } else {
        j->user = dup_opt(s->ctx, user, &oom);
    }
    j->password = dup_opt(s->ctx, password, &oom);
    j->service = dup_opt(s->ctx, s->mech->service, &oom);
    j->ccache_name = dup_opt(s->ctx, s->mech->ccache, &oom);
    j->peer = dup_opt(s->ctx, cc_auth_peer_name(auth), &oom);
    memcpy(j->cb, cbd, cbl);
    j->cb_len = cbl;
    j->timeout_ms = cc_auth_job_timeout_ms(auth);
    if (!j->timeout_ms)
        j->timeout_ms = 10000;
    if (oom) {
        job_release(j);
        return CC_ERR_NOMEM;
    }
    atomic_fetch_add(&j->refs, 1); /* one for the cc_job, one for us */
    int r = cc_auth_submit_job(auth, job_run, job_free_data, j);
    if (r < 0) {
        job_release(j); /* submit released the job's reference already */
        s->phase = PH_FAILED;
        return r;
    }
    s->job = j;
    s->phase = PH_PENDING;
    return CC_AUTH_PENDING;
}

static int console_job_done(struct krb_state *s, cc_auth *auth)
{
    struct krb_job *j = s->job;
    if (!j->finished) {
        s->job = NULL;
        job_release(j);
        return fail(s, auth, CC_ERR_CANCELLED,
                    "the Kerberos job was answered by the host instead of run; run it with cc_job_run()");
    }
    if (j->code < 0) {
        char detail[CC__DETAIL_MAX];
        int code = j->code;
        cc__fmt(detail, sizeof detail, "%s", j->detail);
        s->job = NULL;
        job_release(j);
        return fail(s, auth, code, detail);
    }
    /* Take the security context over; the job keeps nothing the session uses (its
     * krb5 context went back to the pool when it ended). */
    s->gctx = j->gctx;
    j->gctx = GSS_C_NO_CONTEXT;
    memcpy(s->target, j->target, sizeof s->target);
    int r = cc_auth_set_output(auth, j->token.value, j->token.length);
    char line[CC__DETAIL_MAX + 32];
    cc__fmt(line, sizeof line, "sending AP-REQ: %s", j->detail);
    s->job = NULL;
    job_release(j);
    if (r < 0) {
        s->phase = PH_FAILED;
        return r;
    }
    cc_auth_log(auth, CC_LOG_DEBUG, line);
    s->phase = PH_REPLY;
    return CC_AUTH_CONTINUE;
}

static int console_reply(struct krb_state *s, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    char detail[CC__DETAIL_MAX];
    if (!in || !in_len)
        return fail(s, auth, CC_ERR_AUTH_MUTUAL,
                    "the client did not send the Kerberos mutual-authentication reply (AP-REP)");
    OM_uint32 maj, mn, flags = 0;
    gss_buffer_desc it = {in_len, (void *)in}, out = GSS_C_EMPTY_BUFFER;
    gss_name_t target = GSS_C_NO_NAME;
    gss_buffer_desc tn = {strlen(s->target), s->target};
    maj = gss_import_name(&mn, &tn, GSS_KRB5_NT_PRINCIPAL_NAME, &target);
    if (!GSS_ERROR(maj))
        maj = gss_init_sec_context(&mn, GSS_C_NO_CREDENTIAL, &s->gctx, target, gss_mech_krb5, GSS_C_MUTUAL_FLAG,
                                   GSS_C_INDEFINITE, GSS_C_NO_CHANNEL_BINDINGS, &it, NULL, &out, &flags, NULL);
    gss_release_name(&mn, &target);
    gss_release_buffer(&mn, &out);
    if (GSS_ERROR(maj)) {
        int code = cc__krb_map_gss(KRB_OP_MUTUAL, maj, mn, s->target, detail, sizeof detail);
        return fail(s, auth, code, detail);
    }
    if (maj != GSS_S_COMPLETE || !(flags & GSS_C_MUTUAL_FLAG)) {
        cc__fmt(detail, sizeof detail, "the client's reply did not complete mutual authentication as %s", s->target);
        return fail(s, auth, CC_ERR_AUTH_MUTUAL, detail);
    }
    cc__fmt(detail, sizeof detail, "mutual authentication complete: the client is %s", s->target);
    cc_auth_log(auth, CC_LOG_DEBUG, detail);
    cc_auth_set_mutual(auth);
    s->phase = PH_DONE;
    return CC_AUTH_DONE;
}

/* ---- acceptor ---- */

static bool realm_allowed(const char *allowed, const char *realm)
{
    size_t rl = strlen(realm);
    const char *p = allowed;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == rl && rl && memcmp(p, realm, rl) == 0)
            return true;
        p = e;
    }
    return false;
}

/* The default realm as krb5.conf states it, without libkrb5's fallbacks (those look
 * up the local host name in DNS, which must not happen inside step). "" if unset. */
static void profile_default_realm(struct krb_state *s, char *out, size_t len)
{
    cc__krb_default_realm(&s->mech->pool, out, len);
}

/* The acceptor credential: the context's cached one while its keytab file is unchanged
 * (kpool.c), so a session reads neither the keytab nor krb5.conf to get it. */
static int client_acquire(struct krb_state *s, cc_auth *auth)
{
    char detail[CC__DETAIL_MAX];
    const char *kt = s->mech->keytab;
    OM_uint32 maj, mn;
    if (s->mech->service) {
        /* The restriction is checked after accepting (see client_step): asking
         * gss_acquire_cred_from for a name the keytab lacks leaks in MIT 1.20.
         * A name without a realm gets krb5.conf's default realm. */
        const char *svc = s->mech->service;
        bool has_realm = false;
        for (const char *c = svc; *c; c++) {
            if (*c == '\\' && c[1])
                c++;
            else if (*c == '@')
                has_realm = true;
        }
        char def[CC__NAME_MAX + 1] = "";
        if (!has_realm)
            profile_default_realm(s, def, sizeof def);
        if (!has_realm && !def[0])
            return fail(s, auth, CC_ERR_CONFIG,
                        "the kerberos option service has no realm and krb5.conf sets no default_realm");
        cc__fmt(s->want_service, sizeof s->want_service, "%s%s%s", svc, has_realm ? "" : "@", def);
    }
    maj = cc__krb_acred_get(&s->mech->pool, kt, s->mech->rcache, &s->acred, &mn);
    if (GSS_ERROR(maj) && maj == GSS_S_FAILURE && mn == ENOMEM) {
        s->phase = PH_FAILED;
        return cc_auth_set_error(auth, CC_ERR_NOMEM, "out of memory for the acceptor credential");
    }
    if (GSS_ERROR(maj)) {
        cc__krb_map_gss(KRB_OP_ACQUIRE, maj, mn, kt ? kt : "(default keytab)", detail, sizeof detail);
        return fail(s, auth, CC_ERR_AUTH_KEYTAB, detail);
    }
    return CC_OK;
}

static int client_step(struct krb_state *s, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    char detail[CC__DETAIL_MAX];
    if (!in || !in_len)
        return fail(s, auth, CC_ERR_AUTH_TOKEN, "the console sent an empty Kerberos token");
    const uint8_t *cbd;
    size_t cbl;
    if (cc_auth_channel_binding(auth, &cbd, &cbl) < 0 || cbl == 0 || cbl > KRB_CB_MAX)
        return fail(s, auth, CC_ERR_AUTH_CHANNEL_BINDING,
                    "no TLS channel binding is available; kerberos authenticates only over TLS");
    if (!s->acred) {
        int r = client_acquire(s, auth);
        if (r < 0)
            return r;
    }
    uint8_t appdata[KRB_CB_PREFIX_LEN + KRB_CB_MAX];
    memcpy(appdata, KRB_CB_PREFIX, KRB_CB_PREFIX_LEN);
    memcpy(appdata + KRB_CB_PREFIX_LEN, cbd, cbl);
    struct gss_channel_bindings_struct cb;
    memset(&cb, 0, sizeof cb); /* address types 0 (GSS_C_AF_UNSPEC), no addresses: as Windows does */
    cb.application_data.length = KRB_CB_PREFIX_LEN + cbl;
    cb.application_data.value = appdata;
    OM_uint32 maj, mn, flags = 0;
    gss_buffer_desc it = {in_len, (void *)in}, out = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    maj = gss_accept_sec_context(&mn, &s->actx, s->acred->cred, &it, &cb, &src, NULL, &out, &flags, NULL, NULL);
    cc__wipe(appdata, sizeof appdata);
    int code = 0;
    const char *kt = s->mech->keytab ? s->mech->keytab : "(default keytab)";
    if (GSS_ERROR(maj)) {
        code = cc__krb_map_gss(KRB_OP_ACCEPT, maj, mn, kt, detail, sizeof detail);
        goto out;
    }
    if (maj == GSS_S_CONTINUE_NEEDED) {
        /* Not for krb5 with our flags, but follow the protocol if it happens. */
        code = cc_auth_set_output(auth, out.value, out.length);
        gss_release_buffer(&mn, &out);
        gss_release_name(&mn, &src);
        if (code < 0) {
            s->phase = PH_FAILED;
            return code;
        }
        return CC_AUTH_CONTINUE;
    }
    /* MIT krb5 accepts a token without bindings even though we gave some and only
     * leaves out this flag, so its absence is a refusal. */
    if (!(flags & GSS_C_CHANNEL_BOUND_FLAG)) {
        code = CC_ERR_AUTH_CHANNEL_BINDING;
        cc__fmt(detail, sizeof detail,
                "the console's Kerberos token carries no channel bindings; the console must bind its token "
                "to this TLS connection (application data \"" KRB_CB_PREFIX "\" + tls-exporter)");
        goto out;
    }
    if (!(flags & GSS_C_MUTUAL_FLAG)) {
        code = CC_ERR_AUTH_MUTUAL;
        cc__fmt(detail, sizeof detail, "the console did not ask for mutual authentication; refused");
        goto out;
    }
    if (s->want_service[0]) {
        gss_name_t acc = GSS_C_NO_NAME;
        gss_buffer_desc an = GSS_C_EMPTY_BUFFER;
        maj = gss_inquire_context(&mn, s->actx, NULL, &acc, NULL, NULL, NULL, NULL, NULL);
        if (!GSS_ERROR(maj))
            maj = gss_display_name(&mn, acc, &an, NULL);
        bool same = !GSS_ERROR(maj) && an.length == strlen(s->want_service) &&
                    memcmp(an.value, s->want_service, an.length) == 0;
        if (!same)
            cc__fmt(detail, sizeof detail,
                    "the console's ticket is for %.*s but this client accepts only %s (kerberos option "
                    "\"service\"); the console must ask for %s",
                    GSS_ERROR(maj) ? 1 : (int)an.length, GSS_ERROR(maj) ? "?" : (const char *)an.value, s->want_service,
                    s->want_service);
        gss_release_buffer(&mn, &an);
        gss_release_name(&mn, &acc);
        if (!same) {
            code = CC_ERR_AUTH_KEYTAB;
            goto out;
        }
    }
    gss_buffer_desc dn = GSS_C_EMPTY_BUFFER;
    maj = gss_display_name(&mn, src, &dn, NULL);
    if (GSS_ERROR(maj) || !dn.length || dn.length > CC__NAME_MAX) {
        gss_release_buffer(&mn, &dn);
        code = CC_ERR_AUTH;
        cc__fmt(detail, sizeof detail, "the console's principal name cannot be displayed");
        goto out;
    }
    char ident[CC__NAME_MAX + 1];
    memcpy(ident, dn.value, dn.length);
    ident[dn.length] = 0;
    gss_release_buffer(&mn, &dn);

    /* Default policy: principals of the configured realm(s) only. */
    const char *at = NULL;
    for (const char *c = ident; *c; c++) {
        if (*c == '\\' && c[1])
            c++;
        else if (*c == '@')
            at = c;
    }
    const char *realm = at ? at + 1 : "";
    char def[CC__NAME_MAX + 1] = "";
    const char *allowed = s->mech->realms;
    if (!allowed) {
        profile_default_realm(s, def, sizeof def);
        allowed = def[0] ? def : NULL;
    }
    bool ok = allowed && realm_allowed(allowed, realm);
    if (!ok)
        cc__fmt(detail, sizeof detail,
                "principal %s is not of an accepted realm (%s); set the kerberos option \"realm\" to allow its "
                "realm",
                ident, allowed ? allowed : "none configured");
    if (!ok) {
        code = CC_ERR_AUTH_POLICY;
        goto out;
    }
    if ((code = cc_auth_set_identity(auth, ident)) < 0) {
        cc__fmt(detail, sizeof detail, "cannot record the identity %s", ident);
        goto out;
    }
    if ((code = cc__krb_pac_attributes(auth, src)) < 0) {
        cc__fmt(detail, sizeof detail,
                code == CC_ERR_AUTH_POLICY ? "the PAC in the ticket of %s has more than 1024 details; refused"
                : code == CC_ERR_NOMEM     ? "out of memory reading the PAC in the ticket of %s"
                                           : "the PAC in the ticket of %s is malformed",
                ident);
        goto out;
    }
    if (out.length && (code = cc_auth_set_output(auth, out.value, out.length)) < 0) {
        cc__fmt(detail, sizeof detail, "cannot queue the mutual-authentication reply");
        goto out;
    }
    cc__fmt(detail, sizeof detail, "accepted %s", ident);
    cc_auth_log(auth, CC_LOG_DEBUG, detail);
out:
    gss_release_buffer(&mn, &out);
    gss_release_name(&mn, &src);
    if (code < 0)
        return fail(s, auth, code, detail);
    s->phase = PH_DONE;
    return CC_AUTH_DONE;
}

static int krb_step(void *state, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    struct krb_state *s = state;
    if (s->phase == PH_FAILED || s->phase == PH_DONE)
        return cc_auth_set_error(auth, CC_ERR_STATE, "kerberos: step called after the exchange ended");
    if (s->role == CC_ROLE_CLIENT)
        return client_step(s, auth, in, in_len);
    switch (s->phase) {
    case PH_START:
        return console_start(s, auth);
    case PH_PENDING:
        if (in)
            return fail(s, auth, CC_ERR_PROTOCOL, "a Kerberos token arrived before the console sent its own");
        return console_job_done(s, auth);
    case PH_REPLY:
        return console_reply(s, auth, in, in_len);
    default:
        return cc_auth_set_error(auth, CC_ERR_INTERNAL, "kerberos: bad phase");
    }
}

static const cc_authenticator krb_vtable = {
    sizeof(cc_authenticator), "kerberos",  krb_start,           krb_step, krb_end,
    krb_set_option,           krb_destroy, CC_AUTH_FLAG_MUTUAL,
};

const cc__builtin_auth cc__auth_builtin_kerberos = {"kerberos", &krb_vtable, krb_create};
