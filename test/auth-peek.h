/* auth-peek.h -- what tests that drive a cc_auth handle directly read of it,
 * through lib/auth's internal API (struct cc_auth is private to auth.c). */
#ifndef CC_TEST_AUTH_PEEK_H
#define CC_TEST_AUTH_PEEK_H

#include "../lib/auth/auth.h"
#include "../lib/core/core.h"

#include <string.h>

/* The last output token (NULL, 0 when none). */
static inline const uint8_t *t_out(const cc_auth *a)
{
    const uint8_t *p;
    size_t n;
    cc__auth_output(a, &p, &n);
    return p;
}
static inline size_t t_out_len(const cc_auth *a)
{
    const uint8_t *p;
    size_t n;
    cc__auth_output(a, &p, &n);
    return n;
}
static inline bool t_have_out(const cc_auth *a)
{
    const uint8_t *p;
    size_t n;
    return cc__auth_output(a, &p, &n);
}
/* The value of attribute `key`, or NULL. */
static inline const char *t_attr(const cc_auth *a, const char *key)
{
    for (size_t i = 0; i < cc__auth_attr_count(a); i++) {
        const char *k, *v;
        cc__auth_attr(a, i, &k, &v);
        if (strcmp(k, key) == 0)
            return v;
    }
    return NULL;
}

#endif
