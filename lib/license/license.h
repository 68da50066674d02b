/* license.h -- the licence stage as the session core sees it: start the
 * CC_JOB_LICENSE job for a client session, then turn its result into a verdict. */
#ifndef CC_LICENSE_H
#define CC_LICENSE_H

#include "../core/core.h"

typedef struct cc__license_verdict {
    int code;     /* 0 when granted, else the cc_error that denied */
    bool granted; /* code == 0 && count > in_use && not expired */
    uint32_t count, in_use;
    char detail[CC__DETAIL_MAX]; /* names the URL and the cause */
} cc__license_verdict;

/* Client sessions call this as soon as the connection is accepted.
 * Returns 0 with *job set to a new CC_JOB_LICENSE job, or 1 with *job NULL and
 * *cached filled when the context's cache holds a fresh verdict, or a
 * negative cc_error (CC_ERR_NOMEM). */
int cc__license_start(cc_context *ctx, cc_job **job, cc__license_verdict *cached);

/* Once the job is back (run, answered or failed): decides, failing closed on
 * any doubt, and updates the cache. Does not free the job. */
void cc__license_decide(cc_context *ctx, cc_job *job, cc__license_verdict *out);

#endif
