/* connect.c -- the console's way to a client: the resolved addresses raced
 * as RFC 8305 says. The first starts at once; while it connects, the next
 * starts CC_TIMEOUT_CONNECT_STAGGER later (at once when one fails), each
 * bounded by CC_TIMEOUT_CONNECT_ATTEMPT; the first connected wins and the
 * others are closed. The resolve job already put the families in turn, IPv6
 * first (resolve.c). */
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct attempt {
    int fd;
    uint8_t addr;      /* index into the resolve job's addresses */
    uint64_t deadline; /* CC_TIMEOUT_CONNECT_ATTEMPT after its start */
};

struct cc__connector {
    const cc_context *ctx;
    cc__watch *watch;    /* the host is told before each socket is closed */
    cc_job *addrs;       /* the resolve job: its addresses, host and port */
    size_t next;         /* the next address to try */
    uint64_t next_start; /* when the next address may start while others connect */
    size_t n;            /* attempts in flight, oldest first */
    struct attempt att[CC__MAX_ADDRS];
    int won;                   /* the connected socket, until taken; -1 */
    char last[CC__DETAIL_MAX]; /* why the last address failed */
};

cc__connector *cc__connector_new(const cc_context *ctx, cc_job *resolved, cc__watch *watch)
{
    cc__connector *c = cc__calloc(ctx, sizeof *c);
    if (!c)
        return NULL;
    c->ctx = ctx;
    c->watch = watch;
    c->addrs = resolved;
    c->won = -1;
    return c;
}

void cc__connector_free(cc__connector *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        cc__watch_close(c->watch, c->att[i].fd);
    cc__watch_close(c->watch, c->won);
    cc_job_free(c->addrs);
    cc__free(c->ctx, c);
}

static void where(const cc__connector *c, size_t addr, char *buf, size_t n)
{
    socklen_t len;
    cc__sockaddr_str(cc__resolve_job_addr(c->addrs, addr, &len), buf, n);
}

/* Closes attempt i (the others keep their order). */
static void drop_attempt(cc__connector *c, size_t i)
{
    cc__watch_close(c->watch, c->att[i].fd);
    memmove(&c->att[i], &c->att[i + 1], (c->n - i - 1) * sizeof c->att[0]);
    c->n--;
}

/* Starts the next address: 1 in flight (or connected at once: c->won), < 0 failed (c->last says why). */
static int start_attempt(cc__connector *c, uint64_t now)
{
    socklen_t len;
    size_t i = c->next++;
    const struct sockaddr *sa = cc__resolve_job_addr(c->addrs, i, &len);
    char at[64];
    cc__sockaddr_str(sa, at, sizeof at);
    cc__log(c->ctx, CC_LOG_DEBUG, "connecting to %s (address %zu of %zu, %zu other attempt(s) in flight)", at, i + 1,
            cc__resolve_job_count(c->addrs), c->n);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        cc__fmt(c->last, sizeof c->last, "cannot create a socket for %s: %s", at, strerror(errno));
        return CC_ERR_CONNECT;
    }
    cc__fd_set_nonblock(fd);
    int r = connect(fd, sa, len);
    if (r != 0 && errno != EINPROGRESS) {
        cc__fmt(c->last, sizeof c->last, "cannot connect to %s: %s", at, strerror(errno));
        close(fd); /* never reported to the host */
        return CC_ERR_CONNECT;
    }
    if (r == 0) {
        c->won = fd;
        return 1;
    }
    c->att[c->n].fd = fd;
    c->att[c->n].addr = (uint8_t)i;
    c->att[c->n].deadline = now + cc__cbase(c->ctx)->timeout[CC_TIMEOUT_CONNECT_ATTEMPT];
    c->n++;
    c->next_start = now + cc__cbase(c->ctx)->timeout[CC_TIMEOUT_CONNECT_STAGGER];
    return 1;
}

/* Attempt i's socket is writable or in error: did it connect? */
static bool attempt_connected(cc__connector *c, size_t i)
{
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(c->att[i].fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (err == 0)
        return true;
    char at[64];
    where(c, c->att[i].addr, at, sizeof at);
    cc__fmt(c->last, sizeof c->last, "cannot connect to %s: %s", at, strerror(err));
    return false;
}

/* `fd` connected: it wins, every other attempt is closed. */
static int win(cc__connector *c, int fd)
{
    c->won = fd;
    for (size_t k = 0; k < c->n; k++)
        if (c->att[k].fd != fd)
            cc__watch_close(c->watch, c->att[k].fd);
    c->n = 0;
    return 1;
}

int cc__connector_poll(cc__connector *c, uint64_t now, char *detail, size_t dn)
{
    if (c->won >= 0)
        return 1;
    size_t total = cc__resolve_job_count(c->addrs);
    for (;;) {
        /* Start what is due: the first address, the next after the stagger, or at once after a failure. */
        while (c->next < total && c->n < CC__MAX_ADDRS && (c->n == 0 || now >= c->next_start)) {
            if (start_attempt(c, now) < 0)
                continue;
            if (c->won >= 0)
                return win(c, c->won); /* connected at once: every attempt in flight loses */
        }
        if (c->n == 0) {
            const char *host = cc_job_resolve_host(c->addrs);
            /* the name and port first, unless the last failure names them already (an address
             * literal); an IPv6 literal in brackets */
            if (c->last[0] && strstr(c->last, host))
                cc__fmt(detail, dn, "%s", c->last);
            else
                cc__fmt(detail, dn, strchr(host, ':') ? "[%s]:%u: %s" : "%s:%u: %s", host,
                        cc_job_resolve_port(c->addrs), c->last[0] ? c->last : "no address left to try");
            return CC_ERR_CONNECT;
        }
        struct pollfd p[CC__MAX_ADDRS];
        for (size_t i = 0; i < c->n; i++)
            p[i] = (struct pollfd){c->att[i].fd, POLLOUT, 0};
        if (poll(p, (nfds_t)c->n, 0) < 0)
            for (size_t i = 0; i < c->n; i++)
                p[i].revents = 0; /* interrupted: look again at the next step */
        bool dropped = false;
        for (size_t i = c->n; i-- > 0;) {
            if (p[i].revents) {
                if (attempt_connected(c, i))
                    return win(c, c->att[i].fd);
            } else if (now >= c->att[i].deadline) {
                char at[64];
                where(c, c->att[i].addr, at, sizeof at);
                cc__fmt(c->last, sizeof c->last, "connecting to %s took longer than %u ms", at,
                        cc__cbase(c->ctx)->timeout[CC_TIMEOUT_CONNECT_ATTEMPT]);
            } else {
                continue;
            }
            drop_attempt(c, i);
            dropped = true;
        }
        if (!dropped)
            return 0;
        c->next_start = now; /* a failure starts the next address at once */
    }
}

int cc__connector_fd(const cc__connector *c)
{
    if (!c)
        return -1;
    if (c->won >= 0)
        return c->won;
    return c->n ? c->att[c->n - 1].fd : -1;
}

size_t cc__connector_fds(const cc__connector *c, int *fds, size_t max)
{
    size_t k = 0;
    if (!c)
        return 0;
    if (c->won >= 0 && max)
        fds[k++] = c->won;
    for (size_t i = 0; i < c->n && k < max; i++)
        fds[k++] = c->att[i].fd;
    return k;
}

uint64_t cc__connector_deadline(const cc__connector *c)
{
    if (!c || c->won >= 0 || !c->n)
        return 0;
    uint64_t d = c->next < cc__resolve_job_count(c->addrs) ? c->next_start : 0;
    for (size_t i = 0; i < c->n; i++)
        if (!d || c->att[i].deadline < d)
            d = c->att[i].deadline;
    return d;
}

int cc__connector_take(cc__connector *c)
{
    int fd = c->won;
    c->won = -1;
    return fd;
}
