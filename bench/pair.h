/* pair.h -- what the benchmarks share (header-only: every benchmark is a program of its own): a throw-away
 * PKI and psk key, loopback sockets, raw TLS set-up, and a console/client session pair driven with poll. */
#ifndef CC_BENCH_PAIR_H
#define CC_BENCH_PAIR_H

#ifndef BENCH_NAME
#error "define BENCH_NAME (the program's name for messages) before including pair.h"
#endif

#include "../examples/psk.h"

#include <carboncopy.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PHASE_DEADLINE_S 60.0 /* a stuck phase or connection aborts instead of hanging */

static char tmpdir[64], cert_path[96], key_path[96], psk_path[96];
static char pin_hex[65];

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
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ PKI */

static inline void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

/* A throw-away EC P-256 self-signed certificate (the test PKI's key type),
 * its SHA-256 pin, and a 32-byte psk key, in a private temporary directory. */
static inline void make_pki(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cc-bench-XXXXXX");
    if (!mkdtemp(tmpdir))
        die("mkdtemp: %s", strerror(errno));
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", tmpdir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", tmpdir);
    snprintf(psk_path, sizeof psk_path, "%s/psk.key", tmpdir);

    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!pk || !x)
        die("cannot make a key");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (!X509_sign(x, pk, EVP_sha256()))
        die("cannot sign the certificate");
    FILE *f = fopen(cert_path, "w");
    if (!f || !PEM_write_X509(f, x) || fclose(f) != 0)
        die("cannot write %s", cert_path);
    f = fopen(key_path, "w");
    if (!f || !PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) || fclose(f) != 0)
        die("cannot write %s", key_path);
    unsigned char md[32];
    unsigned mdlen = 0;
    if (!X509_digest(x, EVP_sha256(), md, &mdlen) || mdlen != 32)
        die("cannot hash the certificate");
    for (int i = 0; i < 32; i++)
        snprintf(pin_hex + 2 * i, 3, "%02x", md[i]);
    X509_free(x);
    EVP_PKEY_free(pk);

    unsigned char key[32];
    if (RAND_bytes(key, sizeof key) != 1)
        die("no randomness");
    write_file(psk_path, key, sizeof key);
}

static inline void remove_pki(void)
{
    unlink(cert_path);
    unlink(key_path);
    unlink(psk_path);
    rmdir(tmpdir);
}

/* -------------------------------------------------------------- sockets */

static inline int listener(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    socklen_t len = sizeof *addr;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) < 0)
        die("cannot listen on 127.0.0.1: %s", strerror(errno));
    return fd;
}

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
    return strcmp(hex, pin_hex) == 0;
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
    if (SSL_CTX_use_certificate_file(*srv, cert_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(*srv, key_path, SSL_FILETYPE_PEM) != 1)
        die("cannot load %s / %s", cert_path, key_path);
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

struct peer {
    cc_session *s;
    int mask; /* last step's result */
    int established;
    int blocked; /* console: wait for CC_EVENT_SEND_READY */
    unsigned long long rx;
};

static inline void on_event(void *user, cc_session *s, const cc_event *ev)
{
    struct peer *p = user;
    (void)s;
    if (ev->type == CC_EVENT_STATE && ev->state == CC_STATE_ESTABLISHED)
        p->established = 1;
    else if (ev->type == CC_EVENT_DATA)
        p->rx += ev->len;
    else if (ev->type == CC_EVENT_SEND_READY)
        p->blocked = 0;
}

/* The host's side of jobs: the resolve job gets the listener's address, the
 * licence job is answered with figures (no HTTP), anything else is run. */
static inline void answer_jobs(cc_session *s, const struct sockaddr_in *addr)
{
    cc_job *j;
    while ((j = cc_session_take_job(s)) != NULL) {
        if (cc_job_type(j) == CC_JOB_RESOLVE)
            cc_job_resolve_add_address(j, addr, sizeof *addr);
        else if (cc_job_type(j) == CC_JOB_LICENSE)
            cc_job_license_set_figures(j, 100, 1);
        else
            cc_job_run(j);
        cc_session_job_done(s, j);
    }
}

static inline int step(struct peer *p, const struct sockaddr_in *addr)
{
    for (;;) {
        int r = cc_session_step(p->s);
        if (r > 0 && (r & CC_WANT_JOB)) {
            answer_jobs(p->s, addr);
            continue;
        }
        return p->mask = r;
    }
}

struct pair {
    cc_context *console_ctx, *client_ctx;
    struct peer con, cli;
    int lfd;
    struct sockaddr_in addr;
};

/* Steps both sessions (accepting the console's connection once). */
static inline void pump_step(struct pair *pr)
{
    int err;
    if (step(&pr->con, &pr->addr) < 0)
        die("console: %s: %s", cc_err_name(pr->con.mask), cc_session_errmsg(pr->con.s));
    if (!pr->cli.s) {
        int fd = accept4(pr->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            if (!(pr->cli.s = cc_session_new(pr->client_ctx, &err)))
                die("cc_session_new: %s", cc_strerror(err));
            cc_session_set_event_callback(pr->cli.s, on_event, &pr->cli);
            if ((err = cc_session_accept_fd(pr->cli.s, fd)) < 0)
                die("cc_session_accept_fd: %s", cc_strerror(err));
        }
    }
    if (pr->cli.s && step(&pr->cli, &pr->addr) < 0)
        die("client: %s: %s", cc_err_name(pr->cli.mask), cc_session_errmsg(pr->cli.s));
}

/* Waits for what the last steps asked for (not at all when `busy`). */
static inline void pump_poll(struct pair *pr, int busy)
{
    struct pollfd p[3];
    int n = 0;
    struct peer *peers[2] = {&pr->con, &pr->cli};
    for (int i = 0; i < 2; i++) {
        struct peer *q = peers[i];
        int fd = q->s ? cc_session_fd(q->s) : -1;
        if (fd >= 0 && q->mask > 0)
            p[n++] = (struct pollfd){
                fd, (short)((q->mask & CC_WANT_READ ? POLLIN : 0) | (q->mask & CC_WANT_WRITE ? POLLOUT : 0)), 0};
    }
    if (!pr->cli.s)
        p[n++] = (struct pollfd){pr->lfd, POLLIN, 0};
    if (poll(p, (nfds_t)n, busy ? 0 : 100) < 0 && errno != EINTR)
        die("poll: %s", strerror(errno));
}

/* Console and client contexts: the console pins the certificate, both register the psk key;
 * send_buffer sets CC_LIMIT_SEND_BUFFER of both (0: the library's default). */
static inline void cc_contexts(struct pair *pr, uint32_t send_buffer)
{
    int err;
    pr->console_ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    pr->client_ctx = cc_context_new(CC_ROLE_CLIENT, NULL, &err);
    if (!pr->console_ctx || !pr->client_ctx)
        die("cc_context_new: %s", cc_strerror(err));
    if ((err = cc_context_set_pin_sha256(pr->console_ctx, pin_hex)) < 0 ||
        (err = cc_context_set_certificate(pr->client_ctx, cert_path, key_path)) < 0)
        die("context: %s", cc_strerror(err));
    if (send_buffer && ((err = cc_context_set_limit(pr->console_ctx, CC_LIMIT_SEND_BUFFER, send_buffer)) < 0 ||
                        (err = cc_context_set_limit(pr->client_ctx, CC_LIMIT_SEND_BUFFER, send_buffer)) < 0))
        die("CC_LIMIT_SEND_BUFFER %u: %s", send_buffer, cc_context_errmsg(pr->console_ctx));
    if (psk_register(pr->console_ctx, psk_path) < 0 || psk_register(pr->client_ctx, psk_path) < 0)
        die("psk_register failed");
}

/* A new console session connects to the listener; both sessions are stepped until established. */
static inline void pair_connect(struct pair *pr)
{
    int err;
    memset(&pr->con, 0, sizeof pr->con);
    memset(&pr->cli, 0, sizeof pr->cli);
    if (!(pr->con.s = cc_session_new(pr->console_ctx, &err)))
        die("cc_session_new: %s", cc_strerror(err));
    cc_session_set_event_callback(pr->con.s, on_event, &pr->con);
    if ((err = cc_session_connect(pr->con.s, "127.0.0.1", ntohs(pr->addr.sin_port))) < 0)
        die("cc_session_connect: %s", cc_strerror(err));
    double t0 = now_s();
    for (;;) {
        pump_step(pr);
        if (pr->con.established && pr->cli.established)
            break;
        pump_poll(pr, 0);
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("carboncopy connection stalled in state %s / %s", cc_state_name(cc_session_state(pr->con.s)),
                pr->cli.s ? cc_state_name(cc_session_state(pr->cli.s)) : "not accepted");
    }
}

#endif
