/* nt.c -- the built-in "nt" authenticator: NTLMv2 (MS-NLMP) between console and
 * client, a local smbpasswd account store and the domain-controller account check. */
#include "../auth.h"

#include <pthread.h>
#include <string.h>

/* Per-context data of the mechanism (mech_data). */
struct nt_mech {
    cc_context *ctx;
};

static int nt_start(void *mech_data, cc_auth *auth, void **state)
{
    (void)mech_data;
    *state = NULL;
    return cc_auth_set_error(auth, CC_ERR_AUTH_UNAVAILABLE, "the nt authenticator is not finished yet");
}

static int nt_step(void *state, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    (void)state;
    (void)in;
    (void)in_len;
    return cc_auth_set_error(auth, CC_ERR_AUTH_UNAVAILABLE, "the nt authenticator is not finished yet");
}

static void nt_end(void *state) { (void)state; }

static int nt_set_option(void *mech_data, const char *key, const char *value)
{
    (void)mech_data;
    (void)key;
    (void)value;
    return CC_ERR_INVALID;
}

static void nt_destroy(void *mech_data)
{
    struct nt_mech *m = mech_data;
    if (m)
        cc__free(m->ctx, m);
}

static void *nt_create(cc_context *ctx)
{
    struct nt_mech *m = cc__calloc(ctx, sizeof *m);
    if (!m)
        return NULL;
    m->ctx = ctx;
    return m;
}

static const cc_authenticator nt_vtable = {
    sizeof(cc_authenticator), "nt", nt_start, nt_step, nt_end, nt_set_option, nt_destroy,
};

const cc__builtin_auth cc__auth_builtin_nt = {"nt", &nt_vtable, nt_create};
