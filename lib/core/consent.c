/* consent.c -- the CC_JOB_CONSENT job: the client host asks the person at the
 * machine whether the authenticated console may take over, and the verdict
 * the session draws from the answer and the context's consent mode. */
#include "session.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#define REASON_MAX 256 /* bytes of a host's reason, NUL included */

struct consent_job {
    cc_job base;
    char identity[CC__NAME_MAX + 1];
    char mechanism[CC__MECH_MAX + 1];
    char address[CC__ADDRESS_MAX];
    uint32_t timeout_ms;
    int answer; /* CC_CONSENT_*, valid once base.answered with result 0 */
    char reason[REASON_MAX];
};

/* Nobody was asked: the bundled helper has no person to ask, so it refuses. */
static int consent_run(cc_job *job)
{
    return cc__job_set_result(job, CC_ERR_CONSENT_REFUSED,
                              "no host answered the consent job (cc_job_run asks nobody): refused");
}

static const struct cc__job_ops consent_ops = {consent_run, NULL};

cc_job *cc__consent_job_new(const cc_context *ctx, const char *identity, const char *mechanism, const char *address,
                            uint32_t timeout_ms)
{
    struct consent_job *j = (struct consent_job *)cc__job_alloc(ctx, sizeof *j, CC_JOB_CONSENT, &consent_ops);
    if (!j)
        return NULL;
    cc__fmt(j->identity, sizeof j->identity, "%s", identity ? identity : "");
    cc__fmt(j->mechanism, sizeof j->mechanism, "%s", mechanism ? mechanism : "");
    cc__fmt(j->address, sizeof j->address, "%s", address ? address : "");
    j->timeout_ms = timeout_ms;
    j->answer = CC_CONSENT_REFUSE;
    return &j->base;
}

void cc__source_str(const cc__source *src, char *buf, size_t n)
{
    buf[0] = 0;
    if (src->len == 4)
        inet_ntop(AF_INET, src->addr, buf, (socklen_t)n);
    else if (src->len == 16)
        inet_ntop(AF_INET6, src->addr, buf, (socklen_t)n);
}

int cc__consent_verdict(const cc_job *job, int mode, bool *unattended, char *why, size_t n)
{
    const struct consent_job *j = (const struct consent_job *)job;
    *unattended = false;
    if (!job->answered) {
        cc__fmt(why, n, "the consent job came back unanswered: refused");
        return CC_ERR_CONSENT_REFUSED;
    }
    if (job->result < 0) { /* cc_job_run, or the host's cc_job_fail: fail closed */
        cc__fmt(why, n, "%s", job->detail[0] ? job->detail : cc_strerror(job->result));
        return CC_ERR_CONSENT_REFUSED;
    }
    switch (j->answer) {
    case CC_CONSENT_ACCEPT:
        cc__fmt(why, n, "%s", j->reason[0] ? j->reason : "accepted by the person at the machine");
        return CC_OK;
    case CC_CONSENT_NOBODY:
        *unattended = true;
        if (mode == CC_CONSENT_MODE_ASK_OR_OK) {
            cc__fmt(why, n, "nobody is logged on%s%s; the consent policy lets the console in", j->reason[0] ? ": " : "",
                    j->reason);
            return CC_OK;
        }
        cc__fmt(why, n, "nobody is logged on%s%s; the consent policy refuses", j->reason[0] ? ": " : "", j->reason);
        return CC_ERR_CONSENT_REFUSED;
    default:
        cc__fmt(why, n, "%s", j->reason[0] ? j->reason : "refused by the person at the machine");
        return CC_ERR_CONSENT_REFUSED;
    }
}

static const struct consent_job *as_consent(const cc_job *job)
{
    return job && job->type == CC_JOB_CONSENT ? (const struct consent_job *)job : NULL;
}

CC_API const char *cc_job_consent_identity(const cc_job *job)
{
    const struct consent_job *j = as_consent(job);
    return j ? j->identity : NULL;
}

CC_API const char *cc_job_consent_mechanism(const cc_job *job)
{
    const struct consent_job *j = as_consent(job);
    return j ? j->mechanism : NULL;
}

CC_API const char *cc_job_consent_address(const cc_job *job)
{
    const struct consent_job *j = as_consent(job);
    return j ? j->address : NULL;
}

CC_API uint32_t cc_job_consent_timeout_ms(const cc_job *job)
{
    const struct consent_job *j = as_consent(job);
    return j ? j->timeout_ms : 0;
}

CC_API int cc_job_consent_answer(cc_job *job, int answer, const char *reason)
{
    struct consent_job *j = (struct consent_job *)as_consent(job);
    if (!j || answer < CC_CONSENT_REFUSE || answer > CC_CONSENT_NOBODY || (reason && strlen(reason) >= REASON_MAX))
        return CC_ERR_INVALID;
    if (job->answered)
        return CC_ERR_STATE;
    j->answer = answer;
    cc__text_copy(j->reason, sizeof j->reason, reason ? reason : "");
    cc__job_set_result(job, CC_OK, NULL);
    return CC_OK;
}
