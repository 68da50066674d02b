/* resolve.c -- the CC_JOB_RESOLVE job: getaddrinfo on the host's worker
 * thread, or addresses the host supplies; IPv6 and IPv4 interleaved (RFC 8305). */
#include "transport.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

struct resolve_job {
    cc_job base;
    char host[CC__NAME_MAX + 1];
    uint16_t port;
    size_t n;
    struct sockaddr_storage addr[CC__MAX_ADDRS];
    socklen_t len[CC__MAX_ADDRS];
};

static int add(struct resolve_job *j, const void *sa, socklen_t len)
{
    const struct sockaddr *s = sa;
    if (j->n == CC__MAX_ADDRS)
        return CC_ERR_AGAIN;
    if (!sa || (s->sa_family == AF_INET && len != sizeof(struct sockaddr_in)) ||
        (s->sa_family == AF_INET6 && len != sizeof(struct sockaddr_in6)) ||
        (s->sa_family != AF_INET && s->sa_family != AF_INET6))
        return CC_ERR_INVALID;
    memcpy(&j->addr[j->n], sa, len);
    j->len[j->n++] = len;
    return CC_OK;
}

static int resolve_run(cc_job *job)
{
    struct resolve_job *j = (struct resolve_job *)job;
    struct addrinfo hints = {0}, *res = NULL;
    char port[8];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(port, sizeof port, "%u", j->port);
    int r = getaddrinfo(j->host, port, &hints, &res);
    if (r != 0)
        return cc__job_set_result(job, CC_ERR_RESOLVE, "cannot resolve \"%s\": %s", j->host, gai_strerror(r));
    /* Interleave the families, IPv6 first, keeping the resolver's order within each. */
    struct addrinfo *v6 = res, *v4 = res;
    for (int want6 = 1;; want6 = !want6) {
        struct addrinfo **cur = want6 ? &v6 : &v4;
        int fam = want6 ? AF_INET6 : AF_INET;
        while (*cur && (*cur)->ai_family != fam)
            *cur = (*cur)->ai_next;
        if (*cur) {
            add(j, (*cur)->ai_addr, (*cur)->ai_addrlen);
            *cur = (*cur)->ai_next;
        }
        if ((!v6 && !v4) || j->n == CC__MAX_ADDRS)
            break;
    }
    freeaddrinfo(res);
    if (!j->n)
        return cc__job_set_result(job, CC_ERR_RESOLVE, "\"%s\" has no IPv4 or IPv6 address", j->host);
    return cc__job_set_result(job, CC_OK, NULL);
}

static const struct cc__job_ops resolve_ops = {resolve_run, NULL};

cc_job *cc__resolve_job_new(const cc_context *ctx, const char *host, uint16_t port)
{
    struct resolve_job *j = (struct resolve_job *)cc__job_alloc(ctx, sizeof *j, CC_JOB_RESOLVE, &resolve_ops);
    if (!j)
        return NULL;
    snprintf(j->host, sizeof j->host, "%s", host);
    j->port = port;
    return &j->base;
}

size_t cc__resolve_job_count(const cc_job *job)
{
    return ((const struct resolve_job *)job)->n;
}

const struct sockaddr *cc__resolve_job_addr(const cc_job *job, size_t i, socklen_t *len)
{
    const struct resolve_job *j = (const struct resolve_job *)job;
    *len = j->len[i];
    return (const struct sockaddr *)&j->addr[i];
}

CC_API const char *cc_job_resolve_host(const cc_job *job)
{
    return job && job->type == CC_JOB_RESOLVE ? ((const struct resolve_job *)job)->host : NULL;
}

CC_API uint16_t cc_job_resolve_port(const cc_job *job)
{
    return job && job->type == CC_JOB_RESOLVE ? ((const struct resolve_job *)job)->port : 0;
}

CC_API int cc_job_resolve_add_address(cc_job *job, const void *sa, uint32_t len)
{
    if (!job || job->type != CC_JOB_RESOLVE || job->answered)
        return CC_ERR_INVALID;
    return add((struct resolve_job *)job, sa, (socklen_t)len);
}
