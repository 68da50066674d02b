/* auth.h -- the authenticator plug-in host: the authenticators of a context,
 * and the per-session cc_auth handle the core drives through a narrow API. */
#ifndef CC_AUTH_H
#define CC_AUTH_H

#include "../base/base.h"

/* A built-in mechanism: its vtable and how to make its mech_data. */
typedef struct cc__builtin_auth {
    const char *name;
    const cc_authenticator *vt;
    /* Creates the mech_data for a context (freed by vt->destroy). NULL on OOM. */
    void *(*create)(cc_context *ctx);
} cc__builtin_auth;

extern const cc__builtin_auth cc__auth_builtin_kerberos; /* lib/auth/krb5/ */
extern const cc__builtin_auth cc__auth_builtin_nt;       /* lib/auth/nt/ */

/* The nt mechanism's host lookup (cc_context_set_nt_account_lookup), set on
 * the mech_data that cc__auth_builtin_nt.create made. */
void cc__nt_set_lookup(void *mech_data, cc_nt_lookup_fn fn, void *user);

#define CC__AUTH_MAX_ATTRS 1024 /* an AD account can be in ~1000 groups */

/* ---- the authenticators of a context (embedded in struct cc_context) ---- */
struct cc__auth_entry {
    cc_authenticator vt;
    void *mech_data;
};

typedef struct cc__auth_conf {
    struct cc__auth_entry entry[CC__MAX_AUTH]; /* in preference order */
    size_t n;
    cc_auth_policy_fn policy_fn;
    void *policy_user;
    bool disclose;       /* client: the console learns why its proof failed */
    bool require_mutual; /* console: only mechanisms that prove the client */
} cc__auth_conf;

/* Behind cc_context_add_authenticator / _add_builtin_authenticator /
 * _set_auth_option; errors are recorded with cc__ctx_error. The core checks
 * writability first. */
int cc__auth_conf_add(cc_context *ctx, cc__auth_conf *c, const cc_authenticator *a, void *mech_data);
int cc__auth_conf_add_builtin(cc_context *ctx, cc__auth_conf *c, const char *name);
int cc__auth_conf_set_option(cc_context *ctx, cc__auth_conf *c, const char *mech, const char *key, const char *value);
/* Calls every vt.destroy. */
void cc__auth_conf_free(cc__auth_conf *c);
/* The entry named `name`, or NULL. */
const struct cc__auth_entry *cc__auth_conf_find(const cc__auth_conf *c, const char *name);
/* The mech_data of built-in `b` when it was added (found by its vtable, not
 * just its name, so a host mechanism of the same name is never mistaken). */
void *cc__auth_conf_builtin_data(const cc__auth_conf *c, const cc__builtin_auth *b);
/* Client: the entry chosen among the console's offer (n names) in this
 * context's order of preference, or NULL with a detail naming both lists. */
const struct cc__auth_entry *cc__auth_conf_choose(const cc__auth_conf *c, const char (*offered)[CC__MECH_MAX + 1],
                                                  size_t n, char *why, size_t why_len);
/* Client: whether a failed proof with `code` shows the console only the
 * uniform failure: the causes that tell which accounts exist look alike,
 * unless the host discloses them (cc_context_set_auth_disclosure). */
bool cc__auth_hides_cause(const cc__auth_conf *c, int code);
/* Looks a built-in up by name; NULL if unknown. */
const cc__builtin_auth *cc__auth_builtin_find(const char *name);

/* ---- the per-session handle (struct cc_auth is private to auth.c) ---- */

/* Creates the handle for `entry` in `role`; on a console, `peer_name` is the
 * name connected to (borrowed: it must outlive the handle). NULL on OOM. */
cc_auth *cc__auth_new(const cc_context *ctx, const struct cc__auth_entry *entry, int role, const char *peer_name);
/* Binds the exchange to the TLS channel: CC__BINDING_LEN bytes, copied. */
void cc__auth_set_binding(cc_auth *a, const uint8_t *cb);
/* The console's credentials, borrowed until cc__auth_end (NULLs drop them). */
void cc__auth_set_credentials(cc_auth *a, const char *user, const char *domain, const char *password);
/* Calls start (first time) then step. Returns CC_AUTH_DONE, CC_AUTH_CONTINUE,
 * CC_AUTH_PENDING or a negative cc_error (cc__auth_detail says why). */
int cc__auth_step(cc_auth *a, const uint8_t *in, size_t in_len);
/* Takes the job submitted by the last step (after CC_AUTH_PENDING), or NULL. */
cc_job *cc__auth_take_job(cc_auth *a);
/* Hands the mechanism the outcome of its job and steps it (in = NULL); the
 * outcome is readable through cc_auth_job_result() during that step only.
 * The caller frees the job afterwards. Returns as cc__auth_step. */
int cc__auth_resume(cc_auth *a, const cc_job *job);

const char *cc__auth_name(const cc_auth *a);
/* true once the mechanism returned CC_AUTH_DONE. */
bool cc__auth_done(const cc_auth *a);
/* Console: true once the mechanism verified the client's proof (cc_auth_set_mutual). */
bool cc__auth_mutual(const cc_auth *a);
/* The token the last step produced: true with *p and *len set (len may be 0), or
 * false when the step produced none. */
bool cc__auth_output(const cc_auth *a, const uint8_t **p, size_t *len);
const char *cc__auth_detail(const cc_auth *a);
const char *cc__auth_identity(const cc_auth *a); /* NULL until set */
size_t cc__auth_attr_count(const cc_auth *a);
/* The strings stay where they are from the mechanism's CC_AUTH_DONE on (its
 * attributes are packed then) until the handle is freed. */
void cc__auth_attr(const cc_auth *a, size_t i, const char **key, const char **value);

/* Ends the mechanism (vt->end wipes its secrets) and frees, wiped, all that
 * only the exchange needed (the borrowed credentials, the binding, the last
 * token, the details); keeps name, identity and attributes. */
void cc__auth_end(cc_auth *a);
/* cc__auth_end, then frees the handle. NULL is fine. */
void cc__auth_free(cc_auth *a);

#endif
