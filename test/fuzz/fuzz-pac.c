/* fuzz-pac.c -- libFuzzer target for the MS-PAC decoders of the kerberos authenticator (lib/auth/krb5/pac.c):
 * each buffer decoder on raw input, and the buffers of a whole PAC whose container libkrb5 parsed. */
#include <carboncopy.h>

#include "../../lib/auth/krb5/krb5_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static krb5_context kctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (krb5_init_context(&kctx) != 0)
        abort();
    return 0;
}

struct sink {
    unsigned n, fail_after; /* the callback refuses attribute number fail_after (0 = never) */
};

/* Stands in for cc_auth_add_attribute: checks what the decoders hand out. */
static int add(void *user, const char *key, const char *value)
{
    struct sink *s = user;
    if (!key || !value || !key[0] || strlen(key) > 64 || strlen(value) > 4096)
        abort();
    if (++s->n == s->fail_after)
        return CC_ERR_NOMEM;
    return 0;
}

typedef int (*decoder)(const uint8_t *, size_t, cc__krb_attr_fn, void *);

static void decode(decoder d, const uint8_t *p, size_t len, unsigned fail_after)
{
    struct sink s = {0, fail_after};
    /* An exact-size copy, so ASan sees any read past the buffer. */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, p, len);
    int r = d(copy, len, add, &s);
    free(copy);
    if (r != 0 && r != CC_ERR_AUTH_TOKEN && r != CC_ERR_NOMEM)
        abort();
    if (r == CC_ERR_NOMEM && (fail_after == 0 || s.n < fail_after))
        abort(); /* only the callback's own error comes back */
}

/* Input: a selector byte (low 2 bits: 0 logon info, 1 client info, 2 UPN/DNS
 * info, 3 a whole PAC; high 6 bits: the callback fails at that attribute),
 * then the buffer. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const decoder decoders[3] = {cc__krb_pac_logon_info, cc__krb_pac_client_info, cc__krb_pac_upn_dns_info};
    static const uint32_t types[3] = {1, 10, 12}; /* MS-PAC 2.4 ulType of each */
    if (size < 1)
        return 0;
    unsigned sel = data[0] & 3, fail_after = data[0] >> 2;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    if (sel < 3) {
        decode(decoders[sel], p, len, fail_after);
        return 0;
    }
    krb5_pac pac;
    if (krb5_pac_parse(kctx, p, len, &pac) != 0)
        return 0;
    for (int i = 0; i < 3; i++) {
        krb5_data b;
        if (krb5_pac_get_buffer(kctx, pac, types[i], &b) != 0)
            continue;
        decode(decoders[i], (const uint8_t *)b.data, b.length, fail_after);
        krb5_free_data_contents(kctx, &b);
    }
    krb5_pac_free(kctx, pac);
    return 0;
}
