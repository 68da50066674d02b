/* bench.h -- what the benchmarks share besides test/pair.h, the session pair the tests use too
 * (header-only: every benchmark is a program of its own): set-up, die(), the raw TCP and TLS baselines. */
#ifndef CC_BENCH_H
#define CC_BENCH_H

#ifndef BENCH_NAME
#error "define BENCH_NAME (the program's name for messages) before including bench.h"
#endif

#include "../examples/psk.h"
#include "../test/harness.h"
#include "../test/pair.h"

#include <carboncopy.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PHASE_DEADLINE_S 60.0 /* a stuck phase or connection aborts instead of hanging */

static const char *psk_path;

static inline void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, BENCH_NAME ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static inline double now_s(void)
{
    return (double)t_now_us() / 1e6;
}

/* ---------------------------------------------------------------- set-up */

/* The test PKI (test/fixtures/certs.sh: client.pem and client.key, EC P-256, and its pin) and a psk
 * key, in the harness's temporary directory, which is removed at exit (after die() too). */
static inline void bench_setup(void)
{
    atexit(t_tmpdir_remove);
    if (t_make_certs() != 0 || !t_cert_pin())
        die("cannot make the test PKI with test/fixtures/certs.sh (run from the source tree, or set CC_SRC)");
    if (!(psk_path = t_psk("bench")))
        die("cannot write a psk key in %s", t_tmpdir());
}

/* A loopback listener for both the baselines and the session pair. */
static inline int bench_listen(struct sockaddr_in *addr)
{
    int fd = t_listen(addr);
    if (fd < 0)
        die("cannot listen on 127.0.0.1: %s", strerror(errno));
    return fd;
}

/* -------------------------------------------------------------- raw TCP */

/* A connected loopback TCP pair, both ends non-blocking with TCP_NODELAY (as the library sets it). */
static inline void tcp_pair(int lfd, const struct sockaddr_in *addr, int *a, int *b)
{
    int one = 1;
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (*a < 0 || (connect(*a, (const struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS))
        die("connect: %s", strerror(errno));
    struct pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1 || (*b = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0)
        die("accept: %s", strerror(errno));
    setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* --------------------------------------------------------------- raw TLS */

static inline int pin_verify(X509_STORE_CTX *xs, void *arg)
{
    (void)arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    unsigned char md[32];
    unsigned len = 0;
    char hex[65];
    if (!leaf || !X509_digest(leaf, EVP_sha256(), md, &len) || len != 32)
        return 0;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return strcmp(hex, t_cert_pin()) == 0;
}

/* TLS 1.3 with TLS_AES_256_GCM_SHA384 only; the client checks the pin the way the console does. */
static inline void tls_ctxs(SSL_CTX **cli, SSL_CTX **srv)
{
    *cli = SSL_CTX_new(TLS_client_method());
    *srv = SSL_CTX_new(TLS_server_method());
    if (!*cli || !*srv)
        die("SSL_CTX_new");
    SSL_CTX *both[2] = {*cli, *srv};
    for (int i = 0; i < 2; i++) {
        SSL_CTX_set_min_proto_version(both[i], TLS1_3_VERSION);
        SSL_CTX_set_ciphersuites(both[i], "TLS_AES_256_GCM_SHA384");
        SSL_CTX_set_mode(both[i], SSL_MODE_ENABLE_PARTIAL_WRITE);
        SSL_CTX_set_num_tickets(both[i], 0);
    }
    if (SSL_CTX_use_certificate_file(*srv, t_cert("client.pem"), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(*srv, t_cert("client.key"), SSL_FILETYPE_PEM) != 1)
        die("cannot load %s / %s", t_cert("client.pem"), t_cert("client.key"));
    SSL_CTX_set_verify(*cli, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(*cli, pin_verify, NULL);
}

/* One poll round for an SSL call that wants I/O. */
static inline int tls_want(SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    die("TLS error %d", e);
    return -1;
}

/* Both ends of a raw TLS connection through their handshakes, polling the sockets. */
static inline void tls_handshake(SSL *c, SSL *s, int w, int r)
{
    int cdone = 0, sdone = 0;
    double t0 = now_s();
    while (!cdone || !sdone) {
        int k;
        if (!cdone && (k = SSL_do_handshake(c)) == 1)
            cdone = 1;
        else if (!cdone)
            tls_want(c, k);
        if (!sdone && (k = SSL_do_handshake(s)) == 1)
            sdone = 1;
        else if (!sdone)
            tls_want(s, k);
        struct pollfd p[2] = {{w, POLLIN, 0}, {r, POLLIN, 0}};
        if (!cdone || !sdone)
            poll(p, 2, 100);
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("raw TLS handshake stalled");
    }
}

/* ------------------------------------------------------------ carboncopy */

/* Console and client contexts: the console pins the certificate, both register the psk key;
 * send_buffer sets CC_LIMIT_SEND_BUFFER of both (0: the library's default). */
static inline void bench_contexts(struct tp_pair *p, uint32_t send_buffer)
{
    int err;
    p->cctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    p->sctx = cc_context_new(CC_ROLE_CLIENT, NULL, &err);
    if (!p->cctx || !p->sctx)
        die("cc_context_new: %s", cc_strerror(err));
    if ((err = cc_context_set_pin_sha256(p->cctx, t_cert_pin())) < 0 ||
        (err = cc_context_set_certificate(p->sctx, t_cert("client.pem"), t_cert("client.key"))) < 0)
        die("context: %s", cc_strerror(err));
    if (send_buffer && ((err = cc_context_set_limit(p->cctx, CC_LIMIT_SEND_BUFFER, send_buffer)) < 0 ||
                        (err = cc_context_set_limit(p->sctx, CC_LIMIT_SEND_BUFFER, send_buffer)) < 0))
        die("CC_LIMIT_SEND_BUFFER %u: %s", send_buffer, cc_context_errmsg(p->cctx));
    if (psk_register(p->cctx, psk_path) < 0 || psk_register(p->sctx, psk_path) < 0)
        die("psk_register failed");
}

/* A side whose session failed ends the benchmark. */
static inline void bench_check(const struct tp_side *sd, const char *who)
{
    if (sd->ended && sd->result < 0)
        die("%s: %s: %s", who, cc_err_name(sd->result), cc_session_errmsg(sd->s));
}

/* Steps both sessions (accepting the console's connection once). */
static inline void bench_step(struct tp_pair *p)
{
    tp_pair_step(p);
    bench_check(&p->con, "console");
    bench_check(&p->cli, "client");
}

static inline bool bench_established(const struct tp_side *sd)
{
    return sd->s && cc_session_state(sd->s) == CC_STATE_ESTABLISHED;
}

/* A new console session connects to the listener, the way hosts run it (tp_pair_connect: the host
 * answers the resolve job with the listener's address and the licence job with figures, no DNS and
 * no HTTP); both sessions are stepped until established. Received data is counted, not kept. */
static inline void bench_connect(struct tp_pair *p, int lfd, const struct sockaddr_in *addr)
{
    memset(&p->con, 0, sizeof p->con);
    memset(&p->cli, 0, sizeof p->cli);
    p->con.drop_rx = p->cli.drop_rx = true;
    p->cli.lic_count = 100;
    p->cli.lic_in_use = 1;
    if (tp_pair_connect(p, lfd, addr, NULL, NULL) != 0)
        die("cannot start a console session: %s", cc_session_errmsg(p->con.s));
    double t0 = now_s();
    for (;;) {
        bench_step(p);
        if (bench_established(&p->con) && bench_established(&p->cli))
            break;
        tp_pair_poll(p, 100);
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("carboncopy connection stalled in state %s / %s", cc_state_name(cc_session_state(p->con.s)),
                p->cli.s ? cc_state_name(cc_session_state(p->cli.s)) : "not accepted");
    }
}

#endif
