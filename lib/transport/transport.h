/* transport.h -- how session bytes reach the peer: a non-blocking socket the
 * library opened or was handed, or host send/recv callbacks; and name resolution. */
#ifndef CC_TRANSPORT_H
#define CC_TRANSPORT_H

#include "../base/base.h"

#include <sys/socket.h>

/* ---- what the host was told to watch (watch.c) ----
 * The sockets a session reported through its cc_socket_fn, each with the
 * events last reported. Every socket the library closes goes through
 * cc__watch_close(), which reports CC_POLL_REMOVE before close(): a new
 * socket that gets the same number is then always a fresh add. */
#define CC__WATCH_MAX 16 /* CC__MAX_ADDRS attempts at once, at most */
typedef struct cc__watch {
    cc_socket_fn fn;
    void *user;
    cc_session *s;
    uint8_t n;
    struct {
        int fd;
        uint8_t events; /* CC_POLL_IN | CC_POLL_OUT, never 0 */
    } rep[CC__WATCH_MAX];
} cc__watch;
/* Reports what the session wants of `fd` (events 0 = nothing: CC_POLL_REMOVE)
 * when that differs from what was reported last. w may be NULL. */
void cc__watch_set(cc__watch *w, int fd, unsigned events);
/* Reports CC_POLL_REMOVE for every reported socket not among fds[0..n). */
void cc__watch_keep_only(cc__watch *w, const int *fds, size_t n);
/* CC_POLL_REMOVE if fd was reported, then close(fd). */
void cc__watch_close(cc__watch *w, int fd);

typedef struct cc__transport {
    int fd; /* -1 when callbacks are used */
    cc_send_fn send;
    cc_recv_fn recv;
    void *user;
    cc__watch *watch; /* told before the socket is closed; may be NULL */
} cc__transport;

/* Both return > 0 bytes, CC_IO_WOULD_BLOCK, CC_IO_ERROR (detail filled),
 * CC__IO_RESET when the peer reset the connection; recv also 0 at end of
 * stream. Like the public two, CC__IO_RESET is no cc_error value. */
#define CC__IO_RESET (-1003)
long cc__transport_send(cc__transport *t, const uint8_t *p, size_t n, char *detail, size_t dn);
long cc__transport_recv(cc__transport *t, uint8_t *p, size_t n, char *detail, size_t dn);
/* Half-closes the write side of a socket (nothing for callbacks). */
void cc__transport_shutdown_write(cc__transport *t);
void cc__transport_close(cc__transport *t);

/* Non-blocking, close-on-exec, TCP_NODELAY where it applies. */
int cc__fd_set_nonblock(int fd);
/* "[::1]:1680" or "127.0.0.1:1680". */
void cc__sockaddr_str(const struct sockaddr *sa, char *buf, size_t n);
/* The peer's IP address of a connected socket (4 or 16 bytes, an IPv4-mapped
 * IPv6 address as its 4), copied into addr; returns its length, 0 if unknown. */
size_t cc__fd_peer_addr(int fd, uint8_t addr[16]);

#define CC__MAX_ADDRS 16
cc_job *cc__resolve_job_new(const cc_context *ctx, const char *host, uint16_t port);
size_t cc__resolve_job_count(const cc_job *job);
const struct sockaddr *cc__resolve_job_addr(const cc_job *job, size_t i, socklen_t *len);

/* ---- the console's connection (connect.c) ----
 * Races the addresses of a resolve job (RFC 8305): the first at once, each
 * next one CC_TIMEOUT_CONNECT_STAGGER after the previous (at once when the
 * previous failed), each bounded by CC_TIMEOUT_CONNECT_ATTEMPT; the first
 * connected wins and the others are closed. It owns its sockets until the
 * winner is taken, and closes them through `watch`. */
typedef struct cc__connector cc__connector;
/* Takes the resolve job (freed with the connector); NULL on OOM (the job is
 * then still the caller's). watch may be NULL. */
cc__connector *cc__connector_new(const cc_context *ctx, cc_job *resolved, cc__watch *watch);
/* Moves on without blocking: 1 once a socket is connected (take it), 0 while
 * attempts go on (watch cc__connector_fds for writing until
 * cc__connector_deadline), CC_ERR_CONNECT with "host:port: why" when no
 * address is left. */
int cc__connector_poll(cc__connector *c, uint64_t now, char *detail, size_t dn);
int cc__connector_fd(const cc__connector *c); /* the newest attempt's, -1 when none is in flight */
/* The sockets of the attempts in flight, oldest first (at most max); returns how many. */
size_t cc__connector_fds(const cc__connector *c, int *fds, size_t max);
/* The next attempt's start or the earliest attempt's timeout; 0 when none. */
uint64_t cc__connector_deadline(const cc__connector *c);
/* The connected socket, the caller's from now on. */
int cc__connector_take(cc__connector *c);
/* Closes every socket it still holds. NULL is fine. */
void cc__connector_free(cc__connector *c);

#endif
