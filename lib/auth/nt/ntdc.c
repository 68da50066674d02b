/* ntdc.c -- the domain-controller account check of the nt authenticator: asks the
 * realm's KDC whether user@REALM exists, without ever sending a password (worker thread). */
#include "nt.h"
#include "../kdc/kdc.h"

#include <krb5/krb5.h>
#include <profile.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* Shared by the session's state and the job (two references), so either may
 * go first: the host can free the session while the job is out. */
struct cc__nt_dc_job {
    const cc_context *ctx;
    atomic_int refs;
    char *user; /* one principal component, never parsed */
    char *realm;
    char *krb5_conf; /* NULL = libkrb5's default configuration */
    uint32_t timeout_ms;
    /* results, written by the run function */
    bool ran;
    int result; /* 0 = the account exists */
    char detail[CC__DETAIL_MAX];
};

static struct cc__nt_dc_job *dc_new(const cc_context *ctx, const char *user, const char *realm, const char *krb5_conf,
                                    uint32_t timeout_ms)
{
    struct cc__nt_dc_job *j = cc__calloc(ctx, sizeof *j);
    if (!j)
        return NULL;
    j->ctx = ctx;
    atomic_init(&j->refs, 2);
    j->user = cc__strdup(ctx, user);
    j->realm = cc__strdup(ctx, realm);
    j->krb5_conf = krb5_conf ? cc__strdup(ctx, krb5_conf) : NULL;
    j->timeout_ms = timeout_ms;
    j->result = CC_ERR_AUTH_KDC_UNREACHABLE;
    cc__fmt(j->detail, sizeof j->detail, "the KDC account check was not run");
    if (!j->user || !j->realm || (krb5_conf && !j->krb5_conf)) {
        atomic_store(&j->refs, 1);
        cc__nt_dc_release(j);
        return NULL;
    }
    return j;
}

void cc__nt_dc_release(void *job_data)
{
    struct cc__nt_dc_job *j = job_data;
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    cc__free(j->ctx, j->user);
    cc__free(j->ctx, j->realm);
    cc__free(j->ctx, j->krb5_conf);
    cc__free(j->ctx, j);
}

/* libkrb5 asks for the password only once the KDC has answered "pre-authentication
 * required" (or sent an AS reply to decrypt): the account exists. Refuse to answer,
 * so nothing derived from any password ever reaches the KDC. */
static krb5_error_code refuse_prompter(krb5_context kctx, void *data, const char *name, const char *banner,
                                       int num_prompts, krb5_prompt prompts[])
{
    bool *asked = data;
    *asked = true;
    return KRB5_LIBOS_CANTREADPWD;
}

static void set_krb5_detail(struct cc__nt_dc_job *j, krb5_context k, krb5_error_code ret, const char *what)
{
    const char *m = k ? krb5_get_error_message(k, ret) : NULL;
    cc__fmt(j->detail, sizeof j->detail, "%s: %s", what, m ? m : "libkrb5 error");
    if (m)
        krb5_free_error_message(k, m);
}

/* The job's run function (worker thread): an AS request with no password and
 * a prompter that stops at the first prompt; never a guessed password. */
static int dc_run(void *job_data)
{
    struct cc__nt_dc_job *j = job_data;
    krb5_context k = NULL;
    krb5_principal princ = NULL;
    krb5_get_init_creds_opt *opt = NULL;
    krb5_creds creds;
    krb5_error_code ret;
    uint64_t t0 = cc__now_ms();
    bool asked = false;
    /* libkrb5 1.20 has no overall request timeout (its own retries take ~30 s), so
     * every KDC message goes through the library's bounded KDC I/O instead. */
    cc__kdc_deadline kdc = {t0 + (j->timeout_ms ? j->timeout_ms : 10000), false};
    memset(&creds, 0, sizeof creds);
    j->ran = true;

    if (j->krb5_conf) {
        /* The configuration comes from the option, never from setenv(). */
        const char *files[2] = {j->krb5_conf, NULL};
        profile_t prof = NULL;
        if (access(j->krb5_conf, R_OK) != 0) {
            j->result = CC_ERR_CONFIG;
            cc__fmt(j->detail, sizeof j->detail, "krb5-conf \"%s\" cannot be read", j->krb5_conf);
            return j->result;
        }
        ret = profile_init(files, &prof);
        if (!ret)
            ret = krb5_init_context_profile(prof, 0, &k);
        if (prof)
            profile_release(prof);
    } else {
        ret = krb5_init_context(&k);
    }
    if (ret) {
        j->result = CC_ERR_CONFIG;
        cc__fmt(j->detail, sizeof j->detail, "libkrb5 cannot load its configuration (%s): error %ld",
                j->krb5_conf ? j->krb5_conf : "default", (long)ret);
        k = NULL;
        goto out;
    }
    /* One component plus the realm: a user name holding '/' or '@' cannot turn
     * into another principal. */
    ret = krb5_build_principal(k, &princ, (unsigned int)strlen(j->realm), j->realm, j->user, (char *)NULL);
    if (!ret)
        ret = krb5_get_init_creds_opt_alloc(k, &opt);
    if (ret) {
        j->result = CC_ERR_NOMEM;
        set_krb5_detail(j, k, ret, "libkrb5");
        goto out;
    }
    cc__kdc_bind(k, &kdc);
    krb5_get_init_creds_opt_set_forwardable(opt, 0);
    krb5_get_init_creds_opt_set_proxiable(opt, 0);
    krb5_get_init_creds_opt_set_tkt_life(opt, 60);

    ret = krb5_get_init_creds_password(k, &creds, princ, NULL, refuse_prompter, &asked, 0, NULL, opt);
    if (asked || ret == 0) {
        j->result = 0;
        cc__fmt(j->detail, sizeof j->detail, "the KDC of %s knows %s", j->realm, j->user);
        if (ret == 0)
            krb5_free_cred_contents(k, &creds);
    } else if (ret == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN) {
        j->result = CC_ERR_AUTH_UNKNOWN_USER;
        cc__fmt(j->detail, sizeof j->detail, "the KDC of %s does not know the account %s", j->realm, j->user);
    } else if (ret == KRB5KDC_ERR_CLIENT_REVOKED || ret == KRB5KDC_ERR_NAME_EXP) {
        j->result = CC_ERR_AUTH_DISABLED;
        set_krb5_detail(j, k, ret, "the KDC refuses the account (disabled, locked or expired)");
    } else if (ret == KRB5KDC_ERR_KEY_EXP) {
        j->result = CC_ERR_AUTH_EXPIRED;
        set_krb5_detail(j, k, ret, "the KDC says the account's password has expired");
    } else if (ret == KRB5_KDC_UNREACH || ret == KRB5_REALM_CANT_RESOLVE || ret == KRB5_REALM_UNKNOWN) {
        j->result = CC_ERR_AUTH_KDC_UNREACHABLE;
        set_krb5_detail(j, k, ret, "the KDC could not be reached");
    } else if (ret == KRB5_CONFIG_BADFORMAT) {
        /* a broken configuration is not an outage: not even best-effort passes it */
        j->result = CC_ERR_CONFIG;
        set_krb5_detail(j, k, ret, "the Kerberos configuration is malformed");
    } else {
        j->result = CC_ERR_AUTH;
        set_krb5_detail(j, k, ret, "the KDC account check failed");
    }
    if (kdc.timed_out && j->result != 0) {
        j->result = CC_ERR_AUTH_KDC_UNREACHABLE;
        cc__fmt(j->detail, sizeof j->detail, "the KDC of %s did not answer within %u ms (%llu ms spent)", j->realm,
                j->timeout_ms, (unsigned long long)(cc__now_ms() - t0));
    }
out:
    if (opt)
        krb5_get_init_creds_opt_free(k, opt);
    if (princ)
        krb5_free_principal(k, princ);
    if (k)
        krb5_free_context(k);
    return j->result;
}

int cc__nt_dc_start(cc_auth *auth, const cc_context *ctx, const char *user, const char *realm, const char *krb5_conf,
                    struct cc__nt_dc_job **out)
{
    *out = NULL;
    struct cc__nt_dc_job *j = dc_new(ctx, user, realm, krb5_conf, cc_auth_job_timeout_ms(auth));
    if (!j)
        return CC_ERR_NOMEM;
    int rc = cc_auth_submit_job(auth, dc_run, cc__nt_dc_release, j);
    if (rc < 0) {
        /* on CC_ERR_NOMEM submit already dropped the job's reference */
        if (rc != CC_ERR_NOMEM)
            cc__nt_dc_release(j);
        cc__nt_dc_release(j);
        return rc;
    }
    *out = j;
    return CC_OK;
}

int cc__nt_dc_outcome(struct cc__nt_dc_job *j, const char **detail)
{
    if (!j->ran)
        cc__fmt(j->detail, sizeof j->detail, "the host answered the KDC job without running it");
    *detail = j->detail;
    return j->ran ? j->result : CC_ERR_AUTH_KDC_UNREACHABLE;
}
