/* job.h -- the CC_JOB_LICENSE job as lib/license sees it: what it fetches, the
 * limits copied from the context, and the answer (page parse or figures). */
#ifndef CC_LICENSE_JOB_H
#define CC_LICENSE_JOB_H

#include "license.h"
#include "parse.h"

typedef struct cc__license_job {
    struct cc_job base; /* first: the core handles jobs through it */
    /* copied from the context when the job is made, so the worker thread
     * never reads the context's strings */
    char *url;       /* NULL when none is configured */
    char *ca_file;   /* NULL: the system store */
    char shown[208]; /* the URL as details show it: long ones cut to 200 + "..." */
    uint32_t connect_timeout_ms, total_timeout_ms, max_page, max_redirects;
    cc__license_conf *conf; /* the context's licence part: its cache and the fetch in flight */
    uint32_t cache_ttl_ms;  /* copied when made: 0 = neither cache nor coalescing */

    /* the answer */
    int32_t http_status; /* 0 until known */
    bool body_started;   /* cc_job_license_feed called, or the fetch saw a body */
    bool have_figures;   /* cc_job_license_set_figures, or a parsed page */
    bool ran;            /* cc_job_run finished the fetch */
    size_t body_len;
    cc__license_parser *parser; /* made on the first chunk */
    cc__license_page page;      /* figures once known */
    /* run() took the verdict of another job's fetch (or the cache) instead
     * of asking the server itself */
    bool have_verdict;
    cc__license_verdict verdict;
    bool cached_by_run; /* run() already put this job's outcome into the cache */
} cc__license_job;

/* cc_job_license_* helpers shared with the fetch: feed one chunk, counting
 * it against the page limit; returns 0 or the (sticky) error it recorded. */
int cc__license_job_feed(cc__license_job *lj, const void *data, size_t len);
/* Ends the body: parses to the end and records figures or the error. */
int cc__license_job_finish(cc__license_job *lj);

/* The fetch itself (fetch.c); ops->run is license.c's coalescing wrapper. */
int cc__license_fetch(cc_job *job);
/* libcurl's global init, once per process (fetch.c). */
void cc__license_curl_init(void);

#endif
