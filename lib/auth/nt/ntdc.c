/* ntdc.c -- the domain-controller account check of the nt authenticator: asks the
 * realm's KDC whether user@REALM exists, without ever sending a password (worker thread). */
#include "nt.h"
#include "../krb5/krb5_int.h" /* cc__krb_kdc_exchange: KDC I/O with one deadline */

#include <krb5/krb5.h>
#include <profile.h>
#include <string.h>
#include <unistd.h>

struct cc__nt_dc_job *cc__nt_dc_new(const cc_context *ctx, const char *user, const char *realm, const char *krb5_conf,
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

struct prompt_state {
    bool asked;
    uint64_t deadline_ms;
    bool timed_out;
};

/* libkrb5 1.20 has no overall request timeout (its own retries take ~30 s), so
 * every KDC message goes through the library's bounded KDC I/O instead. */
static krb5_error_code KRB5_CALLCONV dc_send_hook(krb5_context kctx, void *data, const krb5_data *realm,
                                                  const krb5_data *message, krb5_data **new_message,
                                                  krb5_data **new_reply)
{
    struct prompt_state *ps = data;
    bool handled = false;
    (void)new_message;
    if (cc__now_ms() >= ps->deadline_ms) {
        ps->timed_out = true;
        return KRB5_KDC_UNREACH;
    }
    krb5_error_code r =
        cc__krb_kdc_exchange(kctx, realm, message, ps->deadline_ms, new_reply, &handled, &ps->timed_out);
    return handled ? r : 0;
}

/* libkrb5 asks for the password only once the KDC has answered "pre-authentication
 * required" (or sent an AS reply to decrypt): the account exists. Refuse to answer,
 * so nothing derived from any password ever reaches the KDC. */
static krb5_error_code refuse_prompter(krb5_context kctx, void *data, const char *name, const char *banner,
                                       int num_prompts, krb5_prompt prompts[])
{
    struct prompt_state *ps = data;
    ps->asked = true;
    return KRB5_LIBOS_CANTREADPWD;
}

static void set_krb5_detail(struct cc__nt_dc_job *j, krb5_context k, krb5_error_code ret, const char *what)
{
    const char *m = k ? krb5_get_error_message(k, ret) : NULL;
    cc__fmt(j->detail, sizeof j->detail, "%s: %s", what, m ? m : "libkrb5 error");
    if (m)
        krb5_free_error_message(k, m);
}

int cc__nt_dc_run(void *job_data)
{
    struct cc__nt_dc_job *j = job_data;
    krb5_context k = NULL;
    krb5_principal princ = NULL;
    krb5_get_init_creds_opt *opt = NULL;
    krb5_creds creds;
    krb5_error_code ret;
    uint64_t t0 = cc__now_ms();
    struct prompt_state ps = {false, t0 + (j->timeout_ms ? j->timeout_ms : 10000), false};
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
    krb5_set_kdc_send_hook(k, dc_send_hook, &ps);
    krb5_get_init_creds_opt_set_forwardable(opt, 0);
    krb5_get_init_creds_opt_set_proxiable(opt, 0);
    krb5_get_init_creds_opt_set_tkt_life(opt, 60);

    ret = krb5_get_init_creds_password(k, &creds, princ, NULL, refuse_prompter, &ps, 0, NULL, opt);
    if (ps.asked || ret == 0) {
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
    if (ps.timed_out && j->result != 0) {
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
