/* krb5.c -- the built-in "kerberos" authenticator: GSSAPI krb5 mechanism (MIT),
 * mutual authentication, bound to the TLS channel, KDC traffic handed out as jobs. */
#include "../auth.h"

#include <string.h>

/* mech_data: per-context configuration (options); keeps the context for its allocator. */
struct krb_mech {
    cc_context *ctx;
};

static void *krb_create(cc_context *ctx)
{
    struct krb_mech *m = cc__calloc(ctx, sizeof(*m));
    if (m)
        m->ctx = ctx;
    return m;
}

static void krb_destroy(void *mech_data)
{
    struct krb_mech *m = mech_data;
    if (m)
        cc__free(m->ctx, m);
}

static int krb_set_option(void *mech_data, const char *key, const char *value)
{
    (void)mech_data;
    (void)key;
    (void)value;
    return CC_OK;
}

static int krb_start(void *mech_data, cc_auth *auth, void **state)
{
    (void)mech_data;
    *state = NULL;
    return cc_auth_set_error(auth, CC_ERR_AUTH_UNAVAILABLE, "the kerberos authenticator is not finished yet");
}

static int krb_step(void *state, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    (void)state;
    (void)in;
    (void)in_len;
    return cc_auth_set_error(auth, CC_ERR_AUTH_UNAVAILABLE, "the kerberos authenticator is not finished yet");
}

static void krb_end(void *state)
{
    (void)state;
}

static const cc_authenticator krb_vtable = {
    sizeof(cc_authenticator), "kerberos", krb_start, krb_step, krb_end, krb_set_option, krb_destroy,
};

const cc__builtin_auth cc__auth_builtin_kerberos = {"kerberos", &krb_vtable, krb_create};
