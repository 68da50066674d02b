/* license.h -- the licence stage as the session core sees it: start the
 * CC_JOB_LICENSE job for a client session, then turn its result into a verdict. */
#ifndef CC_LICENSE_H
#define CC_LICENSE_H

#include "../base/base.h"

#include <pthread.h>

typedef struct cc__license_verdict {
    int code;     /* 0 when granted, else the cc_error that denied */
    bool granted; /* code == 0 && count > in_use && not expired */
    uint32_t count, in_use;
    char detail[CC__DETAIL_MAX]; /* names the URL and the cause */
} cc__license_verdict;

/* The verdict cache's default lifetime (cc_context_set_license_cache_ttl). */
#define CC__LICENSE_CACHE_TTL_DEFAULT 5000

/* The licence part of a context (embedded in struct cc_context). The cache
 * and the fetch in flight are the only state here that sessions change;
 * cache_lock guards both. */
typedef struct cc__license_conf {
    char *url;
    char *ca_file;
    uint32_t cache_ttl_ms; /* 0: no cache and no coalescing */
    pthread_mutex_t cache_lock;
    bool cache_valid;
    uint64_t cache_at_ms;
    int cache_code;
    uint32_t cache_count, cache_in_use;
    char cache_detail[CC__DETAIL_MAX];
    /* Coalescing: while one job's run() asks the server (fetching), the
     * other jobs' run() wait on flight_done (CLOCK_MONOTONIC) until
     * flight_gen moves on, then take that fetch's verdict from flight. */
    pthread_cond_t flight_done;
    bool fetching;
    uint64_t flight_gen;
    cc__license_verdict flight;
} cc__license_conf;

int cc__license_conf_init(cc__license_conf *c);
void cc__license_conf_free(cc_context *ctx, cc__license_conf *c);
/* Setters behind cc_context_set_license_*: validate, record a context error
 * detail on refusal, and clear the verdict cache. The core checks role and
 * writability first. */
int cc__license_set_url(cc_context *ctx, cc__license_conf *c, const char *url);
int cc__license_set_server(cc_context *ctx, cc__license_conf *c, const char *name);
int cc__license_set_ca_file(cc_context *ctx, cc__license_conf *c, const char *ca_file);
void cc__license_set_cache_ttl(cc__license_conf *c, uint32_t ms);

/* Client sessions call this as soon as the connection is accepted.
 * Returns 0 with *job set to a new CC_JOB_LICENSE job, or 1 with *job NULL and
 * *cached filled when the context's cache holds a fresh verdict, or a
 * negative cc_error (CC_ERR_NOMEM). */
int cc__license_start(cc_context *ctx, cc__license_conf *c, cc_job **job, cc__license_verdict *cached);

/* What the console is told of a verdict: the verdict, the figures and the
 * kind of failure ("server down" or "seats full"), never the management
 * server's URL or what it answered (those stay in v->detail, the client's). */
void cc__license_told(const cc__license_verdict *v, char *buf, size_t n);

/* Once the job is back (run, answered or failed): decides, failing closed on
 * any doubt, and updates the cache. Does not free the job. */
void cc__license_decide(cc_context *ctx, cc__license_conf *c, cc_job *job, cc__license_verdict *out);

#endif
