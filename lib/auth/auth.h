/* auth.h -- the authenticator plug-in host: built-in registry and the
 * per-session cc_auth handle the core drives. */
#ifndef CC_AUTH_H
#define CC_AUTH_H

#include "../core/core.h"

/* A built-in mechanism: its vtable and how to make its mech_data. */
typedef struct cc__builtin_auth {
    const char *name;
    const cc_authenticator *vt;
    /* Creates the mech_data for a context (freed by vt->destroy). NULL on OOM. */
    void *(*create)(cc_context *ctx);
} cc__builtin_auth;

extern const cc__builtin_auth cc__auth_builtin_kerberos; /* lib/auth/krb5/ */
extern const cc__builtin_auth cc__auth_builtin_nt;       /* lib/auth/nt/ */

#define CC__AUTH_MAX_ATTRS 1024 /* an AD account can be in ~1000 groups */

/* Per-session state of one running mechanism. */
struct cc_auth {
    const cc_context *ctx;
    const struct cc__auth_entry *entry;
    int role;
    void *state;
    bool started, done;
    uint32_t max_token;
    /* inputs */
    uint8_t cb[32];
    size_t cb_len;
    const char *peer_name;
    const char *user, *domain, *password; /* owned by the session */
    /* outputs */
    cc__buf out;
    bool have_out;
    char *identity;
    size_t n_attrs;
    char *attr_key[CC__AUTH_MAX_ATTRS], *attr_value[CC__AUTH_MAX_ATTRS];
    int err;
    char detail[CC__DETAIL_MAX];
    cc_job *job; /* submitted by step, taken by the session */
    bool have_job_result; /* during the step after a job: its outcome */
    int job_result;
    char job_detail[CC__DETAIL_MAX];
};

/* Creates the handle for `entry` in `role`. Channel binding and credentials
 * are filled in by the caller before the first step. */
cc_auth *cc__auth_new(const cc_context *ctx, const struct cc__auth_entry *entry, int role);
/* Calls start (first time) then step. Returns CC_AUTH_DONE, CC_AUTH_CONTINUE,
 * CC_AUTH_PENDING or a negative cc_error (detail in auth->detail). The output
 * token, if any, is in auth->out (have_out). */
int cc__auth_step(cc_auth *auth, const uint8_t *in, size_t in_len);
/* Takes the job submitted by the last step, or NULL. */
cc_job *cc__auth_take_job(cc_auth *auth);
/* Ends the mechanism (vt->end) and frees the handle. */
void cc__auth_free(cc_auth *auth);
/* Looks a built-in up by name; NULL if unknown. */
const cc__builtin_auth *cc__auth_builtin_find(const char *name);

#endif
