/* job.c -- outside work: the parts common to every job type (resolve,
 * licence, auth). The session queues jobs; the host runs or answers them. */
#include "base.h"

#include <stdio.h>
#include <string.h>

cc_job *cc__job_alloc(const cc_context *ctx, size_t size, int type, const struct cc__job_ops *ops)
{
    cc_job *j = cc__calloc(ctx, size);
    if (!j)
        return NULL;
    j->type = type;
    j->ops = ops;
    j->ctx = ctx;
    return j;
}

int cc__job_set_result(cc_job *job, int code, const char *fmt, ...)
{
    job->result = code;
    job->answered = true;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(job->detail, sizeof job->detail, fmt, ap);
        va_end(ap);
    }
    return code;
}

CC_API int cc_job_type(const cc_job *job)
{
    return job ? job->type : CC_ERR_INVALID;
}

CC_API int cc_job_run(cc_job *job)
{
    if (!job)
        return CC_ERR_INVALID;
    if (job->answered)
        return CC_ERR_STATE;
    int r = job->ops->run(job);
    if (!job->answered)
        cc__job_set_result(job, r, NULL);
    return job->result;
}

CC_API int cc_job_fail(cc_job *job, int code, const char *detail)
{
    if (!job || code >= 0)
        return CC_ERR_INVALID;
    cc__job_set_result(job, code, "%s", detail ? detail : cc_strerror(code));
    return CC_OK;
}

CC_API void cc_job_free(cc_job *job)
{
    if (!job)
        return;
    if (job->out) /* freed by the host instead of handed back */
        cc__stat_add(job->ctx, CC__ST_JOBS_OUT, -1);
    if (job->ops->destroy)
        job->ops->destroy(job);
    cc__free(job->ctx, job);
}
