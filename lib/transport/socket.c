/* socket.c -- the default transport: non-blocking TCP sockets, and the
 * host-callback transport behind the same send and recv calls. */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

int cc__fd_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return CC_ERR_IO;
    fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on non-TCP */
#ifdef TCP_NOTSENT_LOWAT
    /* The kernel holds at most this much unsent, so the library chooses what
     * goes next (doc/PROTOCOL.md 10: pings and input overtake bulk). */
    int lowat = 16384;
    setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
#endif
    return CC_OK;
}

size_t cc__fd_peer_addr(int fd, uint8_t addr[16])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        memcpy(addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return 4;
    }
    if (ss.ss_family == AF_INET6) {
        const uint8_t *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            memcpy(addr, a + 12, 4);
            return 4;
        }
        memcpy(addr, a, 16);
        return 16;
    }
    return 0;
}

void cc__sockaddr_str(const struct sockaddr *sa, char *buf, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        cc__fmt(buf, n, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        cc__fmt(buf, n, "%s:%u", ip, ntohs(s4->sin_port));
    } else {
        cc__fmt(buf, n, "(address family %d)", sa->sa_family);
    }
}

/* send() or recv() on the socket, retried on EINTR, mapped to the transport's results. */
static long sock_io(int fd, uint8_t *p, size_t n, bool sending, char *detail, size_t dn)
{
    for (;;) {
        ssize_t r = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r >= 0)
            return (long)r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return CC_IO_WOULD_BLOCK;
        if (errno == ECONNRESET || errno == EPIPE)
            return CC__IO_RESET;
        cc__fmt(detail, dn, "%s failed: %s", sending ? "send" : "recv", strerror(errno));
        return CC_IO_ERROR;
    }
}

/* A host callback's result, checked: anything outside the convention is an error. */
static long host_io(long r, size_t n, bool sending, char *detail, size_t dn)
{
    if (r == CC_IO_WOULD_BLOCK || (r > 0 && r <= (long)n) || (r == 0 && !sending))
        return r;
    cc__fmt(detail, dn, "the host's %s callback reported an error (%ld)", sending ? "send" : "recv", r);
    return CC_IO_ERROR;
}

long cc__transport_send(cc__transport *t, const uint8_t *p, size_t n, char *detail, size_t dn)
{
    if (t->fd < 0)
        return host_io(t->send(t->user, p, n), n, true, detail, dn);
    return sock_io(t->fd, (uint8_t *)p, n, true, detail, dn);
}

long cc__transport_recv(cc__transport *t, uint8_t *p, size_t n, char *detail, size_t dn)
{
    if (t->fd < 0)
        return host_io(t->recv(t->user, p, n), n, false, detail, dn);
    return sock_io(t->fd, p, n, false, detail, dn);
}

void cc__transport_shutdown_write(cc__transport *t)
{
    if (t->fd >= 0)
        shutdown(t->fd, SHUT_WR);
}

void cc__transport_close(cc__transport *t)
{
    cc__watch_close(t->watch, t->fd);
    t->fd = -1;
}
