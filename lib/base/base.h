/* base.h -- the ground floor every layer stands on: memory and secret helpers,
 * errors, logging, clocks, buffers, the job base and the context's common part.
 * It knows nothing of the floors above (transport, tls, license, auth, core). */
#ifndef CC_BASE_H
#define CC_BASE_H

#include "carboncopy.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Marks a definition as part of the exported ABI (also listed in lib/carboncopy.map). */
#define CC_API __attribute__((visibility("default")))

#if defined(__GNUC__)
#define CC__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CC__PRINTF(a, b)
#endif

#define CC__DETAIL_MAX   512  /* bytes of an error detail, NUL included */
#define CC__NAME_MAX     255  /* host names, identities, user and domain names */
#define CC__MECH_MAX     32   /* bytes of a mechanism name (name8 on the wire) */
#define CC__MAX_AUTH     8    /* authenticators per context */
#define CC__BINDING_LEN  32   /* RFC 9266 tls-exporter channel binding */
#define CC__PASSWORD_MAX 1024 /* bytes of a console password */
#define CC__REASON_MAX   256  /* bytes of a CLOSE reason, NUL included */

/* ---- the context's common part ----
 * Every struct cc_context begins with this (lib/core/core.h), so the floors
 * below the core reach the allocator, the log and the error detail through
 * cc__base() without knowing the rest of the context. */
#define CC__TIMEOUT_COUNT (CC_TIMEOUT_CONSENT + 1) /* indexed by cc_timeout; [0] unused */
#define CC__LIMIT_COUNT   (CC_LIMIT_REDIRECTS + 1) /* indexed by cc_limit; [0] unused */

/* The context's counters behind cc_context_stats() (lib/core/stats.c): bumped by
 * any floor, from any thread, with relaxed atomics; no lock. */
enum cc__stat {
    CC__ST_CREATED,           /* sessions made */
    CC__ST_ESTABLISHED,       /* sessions that reached established */
    CC__ST_CLOSED,            /* sessions that ended cleanly */
    CC__ST_FAILED,            /* sessions that ended with an error */
    CC__ST_BACKOFF_DELAYED,   /* client sessions held back after failed proofs from their address */
    CC__ST_LICENSE_REFUSED,   /* sessions failed with a licence code */
    CC__ST_AUTH_FAILED,       /* sessions failed with an authentication code */
    CC__ST_NT_REPLAY_EVICTED, /* nt replay-cache entries forgotten by a full cache */
    CC__ST_LICENSE_HITS,      /* licence checks answered by the cached verdict */
    CC__ST_LICENSE_MISSES,    /* licence checks that needed a job */
    CC__ST_LICENSE_SHARED,    /* licence jobs that took a concurrent fetch's verdict */
    CC__ST_JOBS_PENDING,      /* gauge: jobs queued, not yet taken */
    CC__ST_JOBS_OUT,          /* gauge: jobs taken, not yet handed back or freed */
    CC__ST_KRB5_CTX_MADE,     /* krb5_init_context calls of the kerberos pool */
    CC__ST_KRB5_CTX_REUSED,   /* jobs served by a pooled krb5 context */
    CC__ST_KRB5_ACRED_READ,   /* acceptor credentials acquired from a keytab */
    CC__ST_KRB5_ACRED_REUSED, /* sessions served by the cached acceptor credential */
    CC__ST_KRB5_ICRED_READ,   /* console ccaches read into the context's copy */
    CC__ST_KRB5_ICRED_REUSED, /* console jobs served by that copy */
    CC__ST_COUNT
};
#define CC__STATE_SLOTS 16 /* live sessions by cc_state: room for states added later */

struct cc__ctx_base {
    int role;
    cc_allocator alloc;
    cc_log_fn log_fn;
    void *log_user;
    int log_level;
    char errmsg[CC__DETAIL_MAX];
    uint32_t timeout[CC__TIMEOUT_COUNT];
    uint32_t limit[CC__LIMIT_COUNT];
    atomic_uint sessions; /* live sessions: the context is read-only while > 0 */
    _Atomic uint64_t stat[CC__ST_COUNT];
    _Atomic uint64_t in_state[CC__STATE_SLOTS];
};

/* Adds d (may be negative for a gauge) to counter `which` of ctx. */
static inline void cc__stat_add(const cc_context *ctx, int which, int64_t d)
{
    struct cc__ctx_base *b = (struct cc__ctx_base *)(void *)(uintptr_t)ctx;
    atomic_fetch_add_explicit(&b->stat[which], (uint64_t)d, memory_order_relaxed);
}

static inline struct cc__ctx_base *cc__base(cc_context *ctx)
{
    return (struct cc__ctx_base *)(void *)ctx;
}
static inline const struct cc__ctx_base *cc__cbase(const cc_context *ctx)
{
    return (const struct cc__ctx_base *)(const void *)ctx;
}

/* One row per timeout and limit: the default and the accepted range. The
 * header's comments state the same numbers; test-context checks they agree. */
typedef struct cc__range {
    const char *name;
    uint32_t dflt, min, max;
} cc__range;
extern const cc__range cc__timeout_range[CC__TIMEOUT_COUNT];
extern const cc__range cc__limit_range[CC__LIMIT_COUNT];

/* Setters call this first: CC_OK while no session uses the context (and the
 * last detail is cleared), else CC_ERR_STATE with a detail. */
int cc__ctx_writable(cc_context *ctx, const char *setter);
/* Records a context-level error detail and returns code. */
int cc__ctx_error(cc_context *ctx, int code, const char *fmt, ...) CC__PRINTF(3, 4);

/* ---- errors ---- */
/* true when code is CC_OK or one of the cc_error codes error.c names. */
bool cc__err_known(int code);

/* ---- memory ---- */
void *cc__malloc(const cc_context *ctx, size_t n);
void *cc__calloc(const cc_context *ctx, size_t n);
void *cc__realloc(const cc_context *ctx, void *p, size_t n);
void cc__free(const cc_context *ctx, void *p);
char *cc__strdup(const cc_context *ctx, const char *s);
char *cc__strndup(const cc_context *ctx, const char *s, size_t n);
/* Wipes memory in a way the compiler cannot drop. */
void cc__wipe(void *p, size_t n);
/* Wipes a NUL-terminated secret and frees it; NULL is fine. */
void cc__free_secret(const cc_context *ctx, char *s);
/* Constant-time comparison; 0 when equal. */
int cc__ct_memcmp(const void *a, const void *b, size_t n);

/* ---- formatting ---- */
/* snprintf that always terminates and never fails; returns dst. */
char *cc__fmt(char *dst, size_t n, const char *fmt, ...) CC__PRINTF(3, 4);
/* Copies up to 64 bytes of untrusted data as printable text ("\x00" escapes). */
void cc__printable(char *dst, size_t n, const uint8_t *src, size_t len);

/* ---- time ---- */
uint64_t cc__now_ms(void); /* CLOCK_MONOTONIC */

/* ---- logging ---- */
void cc__log(const cc_context *ctx, int level, const char *fmt, ...) CC__PRINTF(3, 4);

/* ---- growable byte buffer: bytes [off, len) are live ----
 * Storage starts at 256 bytes and doubles until the reservation fits. */
typedef struct cc__buf {
    uint8_t *data;
    size_t off, len, cap;
} cc__buf;
int cc__buf_append(const cc_context *ctx, cc__buf *b, const void *p, size_t n);
/* Reserves n writable bytes at the end; returns a pointer or NULL. */
uint8_t *cc__buf_reserve(const cc_context *ctx, cc__buf *b, size_t n);
void cc__buf_consume(cc__buf *b, size_t n);
static inline size_t cc__buf_size(const cc__buf *b)
{
    return b->len - b->off;
}
static inline uint8_t *cc__buf_head(const cc__buf *b)
{
    return b->data ? b->data + b->off : NULL; /* never NULL + 0 */
}
/* Wipes and frees. */
void cc__buf_free(const cc_context *ctx, cc__buf *b);
/* Frees the storage of an empty buffer (nothing when bytes are live), so a
 * drained buffer holds no memory until it is used again. It does not wipe:
 * use it for bytes that are no secret (TLS records), or when whoever
 * consumes the buffer wipes what it takes (growing and compacting wipe what
 * they leave behind, so nothing else remains). */
void cc__buf_release_nowipe(const cc_context *ctx, cc__buf *b);

/* ---- jobs ---- */
struct cc__job_ops {
    int (*run)(cc_job *job);      /* the blocking bundled helper */
    void (*destroy)(cc_job *job); /* frees the subtype's fields (not the job itself) */
};

/* Every job type embeds this first. */
struct cc_job {
    int type; /* cc_job_kind */
    const struct cc__job_ops *ops;
    const cc_context *ctx;
    int result;        /* cc_error once run or answered; 0 = success */
    bool answered;     /* run, failed or answered by the host */
    bool out;          /* taken by the host and not yet handed back */
    const void *owner; /* the session that queued it */
    char detail[CC__DETAIL_MAX];
    cc_job *next; /* the session's pending queue */
};
/* Allocates a zeroed job of `size` bytes (size >= sizeof(cc_job)). */
cc_job *cc__job_alloc(const cc_context *ctx, size_t size, int type, const struct cc__job_ops *ops);
/* Records the outcome of a job (used by run helpers and cc_job_fail). */
int cc__job_set_result(cc_job *job, int code, const char *fmt, ...) CC__PRINTF(3, 4);

#endif /* CC_BASE_H */
