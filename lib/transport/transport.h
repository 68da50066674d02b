/* transport.h -- how session bytes reach the peer: a non-blocking socket the
 * library opened or was handed, or host send/recv callbacks; and name resolution. */
#ifndef CC_TRANSPORT_H
#define CC_TRANSPORT_H

#include "../base/base.h"

#include <sys/socket.h>

typedef struct cc__transport {
    int fd; /* -1 when callbacks are used */
    cc_send_fn send;
    cc_recv_fn recv;
    void *user;
} cc__transport;

/* Both return > 0 bytes, CC_IO_WOULD_BLOCK, CC_IO_ERROR (detail filled),
 * CC__IO_RESET when the peer reset the connection; recv also 0 at end of stream. */
#define CC__IO_RESET (-3)
long cc__transport_send(cc__transport *t, const uint8_t *p, size_t n, char *detail, size_t dn);
long cc__transport_recv(cc__transport *t, uint8_t *p, size_t n, char *detail, size_t dn);
/* Half-closes the write side of a socket (nothing for callbacks). */
void cc__transport_shutdown_write(cc__transport *t);
void cc__transport_close(cc__transport *t);

int cc__fd_set_nonblock(int fd);
/* 0 connected, 1 in progress, < 0 CC_ERR_CONNECT with detail. */
int cc__tcp_connect_start(const struct sockaddr *sa, socklen_t len, int *fd, char *detail, size_t dn);
/* true while the connect cc__tcp_connect_start began is still under way (fd
 * not writable yet); never waits. */
bool cc__tcp_connect_pending(int fd);
/* 0 connected, < 0 CC_ERR_CONNECT with detail (call when writable). */
int cc__tcp_connect_finish(int fd, char *detail, size_t dn);
/* "[::1]:1680" or "127.0.0.1:1680". */
void cc__sockaddr_str(const struct sockaddr *sa, char *buf, size_t n);

#define CC__MAX_ADDRS 16
cc_job *cc__resolve_job_new(const cc_context *ctx, const char *host, uint16_t port);
size_t cc__resolve_job_count(const cc_job *job);
const struct sockaddr *cc__resolve_job_addr(const cc_job *job, size_t i, socklen_t *len);

#endif
