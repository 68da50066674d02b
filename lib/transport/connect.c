/* connect.c -- the console's way to a client: every resolved address in turn,
 * each a non-blocking connect with its own deadline, until one is connected. */
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct cc__connector {
    const cc_context *ctx;
    cc_job *addrs; /* the resolve job: its addresses, host and port */
    size_t next;   /* the next address to try */
    /* The attempt in flight. Racing (RFC 8305) would keep several here, each
     * with its own socket and deadline; the calls stay the same. */
    int fd;
    size_t cur;
    uint64_t deadline;
    char last[CC__DETAIL_MAX]; /* why the last address failed */
};

cc__connector *cc__connector_new(const cc_context *ctx, cc_job *resolved)
{
    cc__connector *c = cc__calloc(ctx, sizeof *c);
    if (!c)
        return NULL;
    c->ctx = ctx;
    c->addrs = resolved;
    c->fd = -1;
    return c;
}

void cc__connector_free(cc__connector *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    cc_job_free(c->addrs);
    cc__free(c->ctx, c);
}

static void drop_attempt(cc__connector *c)
{
    close(c->fd);
    c->fd = -1;
    c->deadline = 0;
}

/* 0 connected, 1 in progress, < 0 failed (c->last says why). */
static int start_attempt(cc__connector *c, uint64_t now)
{
    socklen_t len;
    c->cur = c->next++;
    const struct sockaddr *sa = cc__resolve_job_addr(c->addrs, c->cur, &len);
    char where[64];
    cc__sockaddr_str(sa, where, sizeof where);
    cc__log(c->ctx, CC_LOG_DEBUG, "connecting to %s", where);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        cc__fmt(c->last, sizeof c->last, "cannot create a socket for %s: %s", where, strerror(errno));
        return CC_ERR_CONNECT;
    }
    cc__fd_set_nonblock(fd);
    int r = connect(fd, sa, len);
    if (r != 0 && errno != EINPROGRESS) {
        cc__fmt(c->last, sizeof c->last, "cannot connect to %s: %s", where, strerror(errno));
        close(fd);
        return CC_ERR_CONNECT;
    }
    c->fd = fd;
    c->deadline = now + cc__cbase(c->ctx)->timeout[CC_TIMEOUT_CONNECT_ATTEMPT];
    return r == 0 ? 0 : 1;
}

/* The attempt's socket is writable: did it connect? */
static bool attempt_connected(cc__connector *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (err == 0)
        return true;
    socklen_t len;
    char where[64];
    cc__sockaddr_str(cc__resolve_job_addr(c->addrs, c->cur, &len), where, sizeof where);
    cc__fmt(c->last, sizeof c->last, "cannot connect to %s: %s", where, strerror(err));
    return false;
}

int cc__connector_poll(cc__connector *c, uint64_t now, char *detail, size_t dn)
{
    for (;;) {
        if (c->fd < 0) {
            if (c->next == cc__resolve_job_count(c->addrs)) {
                cc__fmt(detail, dn, "%s:%u: %s", cc_job_resolve_host(c->addrs), cc_job_resolve_port(c->addrs),
                        c->last[0] ? c->last : "no address left to try");
                return CC_ERR_CONNECT;
            }
            int r = start_attempt(c, now);
            if (r < 0)
                continue;
            return r == 0 ? 1 : 0;
        }
        struct pollfd p = {c->fd, POLLOUT, 0};
        if (poll(&p, 1, 0) <= 0) { /* not writable yet (or interrupted): still connecting */
            if (now < c->deadline)
                return 0;
            socklen_t len;
            char where[64];
            cc__sockaddr_str(cc__resolve_job_addr(c->addrs, c->cur, &len), where, sizeof where);
            cc__fmt(c->last, sizeof c->last, "connecting to %s took longer than %u ms", where,
                    cc__cbase(c->ctx)->timeout[CC_TIMEOUT_CONNECT_ATTEMPT]);
        } else if (attempt_connected(c)) {
            return 1;
        }
        drop_attempt(c);
    }
}

int cc__connector_fd(const cc__connector *c)
{
    return c ? c->fd : -1;
}

uint64_t cc__connector_deadline(const cc__connector *c)
{
    return c && c->fd >= 0 ? c->deadline : 0;
}

int cc__connector_take(cc__connector *c)
{
    int fd = c->fd;
    c->fd = -1;
    c->deadline = 0;
    return fd;
}
