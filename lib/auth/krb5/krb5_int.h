/* krb5_int.h -- declarations shared by the files of the "kerberos" authenticator:
 * error mapping (krb5err.c) and MS-PAC decoding (pac.c). */
#ifndef CC_AUTH_KRB5_INT_H
#define CC_AUTH_KRB5_INT_H

#include "../auth.h"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>
#include <pthread.h>
#include <stdatomic.h>

/* Which operation failed: the same libkrb5 code means different things in each
 * (BAD_INTEGRITY is a wrong password when getting a TGT, a wrong key in a keytab
 * when accepting). */
enum krb_op {
    KRB_OP_CONFIG = 1,  /* reading krb5.conf, making a context */
    KRB_OP_CCACHE = 2,  /* opening / reading the user's credential cache */
    KRB_OP_TGT = 3,     /* AS exchange: TGT from a password */
    KRB_OP_TICKET = 4,  /* TGS exchange: service ticket */
    KRB_OP_INIT = 5,    /* building the AP-REQ (gss_init_sec_context) */
    KRB_OP_MUTUAL = 6,  /* checking the AP-REP (initiator's second step) */
    KRB_OP_ACQUIRE = 7, /* acceptor credential from the keytab */
    KRB_OP_ACCEPT = 8   /* gss_accept_sec_context */
};

/* Maps a libkrb5 error code (also the krb5 mechanism's GSS minor status) met in
 * `op` to a cc_error; `text` is libkrb5's message. Writes an actionable detail that
 * names `what` (a principal, a keytab, a ccache) into detail. */
int cc__krb_map(enum krb_op op, long code, const char *text, const char *what, char *detail, size_t detail_len);

/* Maps a GSS failure. minor is the mechanism's status (a krb5 code for krb5). */
int cc__krb_map_gss(enum krb_op op, OM_uint32 major, OM_uint32 minor, const char *what, char *detail,
                    size_t detail_len);

/* Writes gss_display_status text for (major, minor) into buf. */
void cc__krb_gss_text(OM_uint32 major, OM_uint32 minor, char *buf, size_t len);

/* Adds the account details an MS-PAC carries (see doc/AUTH-KERBEROS.md) for the
 * authenticated `name` as attributes of auth; a missing PAC adds nothing. */
int cc__krb_pac_attributes(cc_auth *auth, gss_name_t name);

/* Decoders for single PAC buffers, exposed for the unit tests. Each calls
 * add(user, key, value) per attribute and returns 0 or CC_ERR_AUTH_TOKEN when the
 * buffer is malformed (nothing is trusted: every offset and length is checked). */
typedef int (*cc__krb_attr_fn)(void *user, const char *key, const char *value);
int cc__krb_pac_logon_info(const uint8_t *p, size_t len, cc__krb_attr_fn add, void *user);
int cc__krb_pac_client_info(const uint8_t *p, size_t len, cc__krb_attr_fn add, void *user);
int cc__krb_pac_upn_dns_info(const uint8_t *p, size_t len, cc__krb_attr_fn add, void *user);

/* ---- the context's shared Kerberos caches (kpool.c; doc/AUTH-KERBEROS.md) ----
 * One set per cc_context, in the mechanism's data. A krb5_context is used by one
 * thread at a time (MIT's rule): it is taken out of the pool for one job and given
 * back at its end. The acceptor credential is shared by the sessions of the context
 * (MIT's krb5 credentials carry their own lock) and counted by references. */
#define CC__KRB_POOL_MAX 8 /* idle krb5 contexts kept per cc_context */

struct cc__krb_pooled {
    krb5_context k;
    uint64_t born_ms; /* cc__now_ms() when krb5_init_context made it */
};

/* An acceptor credential and the keytab file it was read from. */
struct cc__krb_acred {
    atomic_int refs; /* the cache's and each session's */
    gss_cred_id_t cred;
    char name[1100]; /* the keytab's name as resolved */
    uint64_t dev, ino;
    int64_t size, mtime_s, mtime_ns;
};

/* The console's credentials read from a user's FILE ccache: a memory copy shared by the
 * jobs of the context, and the GSS initiator credential made from it, valid while the
 * file is the same (device, inode, size, mtime). */
struct cc__krb_icred {
    atomic_int refs;               /* the cache's and each job's */
    char ccname[CC__NAME_MAX + 1]; /* "FILE:/path" */
    char memname[64];              /* the shared copy, "MEMORY:..." */
    char princ[CC__NAME_MAX + 1];  /* its principal */
    bool any_tgt;                  /* it holds a TGT ... */
    int32_t tgt_end;               /* ... that ends then (krb5_timestamp) */
    gss_cred_id_t cred;
    uint64_t dev, ino;
    int64_t size, mtime_s, mtime_ns;
};

struct cc__krb_pool {
    const cc_context *ctx;
    bool ready;
    pthread_mutex_t lock; /* guards idle, n_idle */
    struct cc__krb_pooled idle[CC__KRB_POOL_MAX];
    size_t n_idle;
    pthread_mutex_t acred_lock; /* guards acred */
    struct cc__krb_acred *acred;
    pthread_mutex_t icred_lock; /* guards icred */
    struct cc__krb_icred *icred;
};

int cc__krb_pool_init(struct cc__krb_pool *p, const cc_context *ctx); /* 0, or -1 */
void cc__krb_pool_destroy(struct cc__krb_pool *p);
/* A krb5 context for this thread until cc__krb_pool_give: an idle one (its default
 * ccache name re-read from the environment) or a new one. *born_ms goes back with it. */
krb5_error_code cc__krb_pool_take(struct cc__krb_pool *p, krb5_context *out, uint64_t *born_ms);
/* Gives k back (its KDC send hook removed); frees it when the pool is full or k is
 * older than the pool keeps contexts. NULL is fine. */
void cc__krb_pool_give(struct cc__krb_pool *p, krb5_context k, uint64_t born_ms);
/* krb5.conf's default_realm, without libkrb5's DNS fallbacks; "" if unset. */
void cc__krb_default_realm(struct cc__krb_pool *p, char *out, size_t len);
/* The acceptor credential for keytab (NULL: libkrb5's default keytab) and rcache: the
 * cached one while the keytab file is the same (device, inode, size, mtime), else
 * acquired anew (and cached when the keytab is a file). Returns the GSS major status;
 * on success *out holds a reference for cc__krb_acred_put. */
OM_uint32 cc__krb_acred_get(struct cc__krb_pool *p, const char *keytab, const char *rcache, struct cc__krb_acred **out,
                            OM_uint32 *minor);
void cc__krb_acred_put(struct cc__krb_pool *p, struct cc__krb_acred *a);
/* The path of a FILE ccache or keytab name ("FILE:/x", "WRFILE:/x", "/x"), or NULL. */
const char *cc__krb_file_of(const char *name);
/* The cached console credentials of ccache ccname whose file is st, with a reference,
 * or NULL. */
struct cc__krb_icred *cc__krb_icred_find(struct cc__krb_pool *p, const char *ccname, const void *st);
/* Makes the memory cache `mem` (k's handle, closed here) and `cred` (taken) the cached
 * credentials of ccname as the file was at st (stat before it was read). On failure the
 * memory cache is destroyed and cred released. Returns a reference, or NULL. */
struct cc__krb_icred *cc__krb_icred_publish(struct cc__krb_pool *p, krb5_context k, const char *ccname, const void *st,
                                            krb5_ccache mem, const char *princ, bool any_tgt, int32_t tgt_end,
                                            gss_cred_id_t cred);
/* Drops a reference; the last one destroys the memory cache, with k when given (the
 * caller's context), else with one from the pool. */
void cc__krb_icred_put(struct cc__krb_pool *p, struct cc__krb_icred *ic, krb5_context k);

#endif
