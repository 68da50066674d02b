/* handshake.c -- benchmark: complete connections per second (TCP connect, preamble, TLS, licence
 * answered by the host, psk authentication) against raw OpenSSL TLS 1.3 handshakes. Prints figures only. */
#define _GNU_SOURCE
#include "../examples/psk.h"

#include <carboncopy.h>
#include <errno.h>
#include <fcntl.h>
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Both phases are one thread driving both ends over loopback TCP with poll(),
 * one connection at a time, with the same certificate (EC P-256, checked by
 * its SHA-256 pin), so the ratio compares the cost of a whole connection. */

#define PHASE_DEADLINE_S 60.0 /* a stuck connection aborts instead of hanging */
#define MAX_SAMPLES 200000
#define ROUND_S 0.25 /* the phases alternate in rounds this long, so background load hits both alike */

static char tmpdir[64], cert_path[96], key_path[96], psk_path[96];
static char pin_hex[65];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "handshake: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "256M", "1G", "65536", "64K" -> bytes; 0 on a bad value. */
/* ------------------------------------------------------------------ PKI */

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

/* A throw-away EC P-256 self-signed certificate (the test PKI's key type),
 * its SHA-256 pin, and a 32-byte psk key, in a private temporary directory. */
static void make_pki(void)
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

static void remove_pki(void)
{
    unlink(cert_path);
    unlink(key_path);
    unlink(psk_path);
    rmdir(tmpdir);
}

/* -------------------------------------------------------------- sockets */

static int listener(struct sockaddr_in *addr)
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
static void tcp_pair(int lfd, const struct sockaddr_in *addr, int *a, int *b)
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

static int pin_verify(X509_STORE_CTX *xs, void *arg)
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
static void tls_ctxs(SSL_CTX **cli, SSL_CTX **srv)
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
static int tls_want(SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    die("TLS error %d", e);
    return -1;
}

/* ------------------------------------------------------------ carboncopy */

struct peer {
    cc_session *s;
    int mask;       /* last step's result */
    int established;
    int blocked;    /* console: wait for CC_EVENT_SEND_READY */
    unsigned long long rx;
};

static void on_event(void *user, cc_session *s, const cc_event *ev)
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
static void answer_jobs(cc_session *s, const struct sockaddr_in *addr)
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

static int step(struct peer *p, const struct sockaddr_in *addr)
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
static void pump_step(struct pair *pr)
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
static void pump_poll(struct pair *pr, int busy)
{
    struct pollfd p[3];
    int n = 0;
    struct peer *peers[2] = {&pr->con, &pr->cli};
    for (int i = 0; i < 2; i++) {
        struct peer *q = peers[i];
        int fd = q->s ? cc_session_fd(q->s) : -1;
        if (fd >= 0 && q->mask > 0)
            p[n++] = (struct pollfd){fd, (short)((q->mask & CC_WANT_READ ? POLLIN : 0) |
                                                 (q->mask & CC_WANT_WRITE ? POLLOUT : 0)), 0};
    }
    if (!pr->cli.s)
        p[n++] = (struct pollfd){pr->lfd, POLLIN, 0};
    if (poll(p, (nfds_t)n, busy ? 0 : 100) < 0 && errno != EINTR)
        die("poll: %s", strerror(errno));
}

static void cc_contexts(struct pair *pr)
{
    int err;
    pr->console_ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    pr->client_ctx = cc_context_new(CC_ROLE_CLIENT, NULL, &err);
    if (!pr->console_ctx || !pr->client_ctx)
        die("cc_context_new: %s", cc_strerror(err));
    if ((err = cc_context_set_pin_sha256(pr->console_ctx, pin_hex)) < 0 ||
        (err = cc_context_set_certificate(pr->client_ctx, cert_path, key_path)) < 0)
        die("context: %s", cc_strerror(err));
    if (psk_register(pr->console_ctx, psk_path) < 0 || psk_register(pr->client_ctx, psk_path) < 0)
        die("psk_register failed");
}


/* Both ends reset instead of lingering in TIME_WAIT, so thousands of
 * connections a second do not run the loopback out of ephemeral ports. */
static void no_linger(int fd)
{
    struct linger l = {1, 0};
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

struct result {
    unsigned long n;
    double seconds, mean_ms, median_ms, p99_ms;
    char tls[96];
    double samples[MAX_SAMPLES]; /* seconds per connection */
};

static void record(struct result *r, double t)
{
    if (r->n < MAX_SAMPLES)
        r->samples[r->n] = t;
    r->n++;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void summarize(struct result *r)
{
    double sum = 0;
    size_t n = r->n < MAX_SAMPLES ? r->n : MAX_SAMPLES;
    for (size_t i = 0; i < n; i++)
        sum += r->samples[i];
    qsort(r->samples, n, sizeof r->samples[0], cmp_double);
    r->mean_ms = n ? sum / (double)n * 1e3 : 0;
    r->median_ms = n ? r->samples[n / 2] * 1e3 : 0;
    r->p99_ms = n ? r->samples[n * 99 / 100] * 1e3 : 0;
}

/* Raw OpenSSL for one round: TCP connect + accept, TLS 1.3 handshake on both ends, free. */
static void run_tls(SSL_CTX *cctx, SSL_CTX *sctx, int lfd, const struct sockaddr_in *addr, double seconds,
                    struct result *res)
{
    double start = now_s();
    while (now_s() - start < seconds) {
        double t0 = now_s();
        int w, r;
        tcp_pair(lfd, addr, &w, &r);
        SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
        if (!c || !s)
            die("SSL_new");
        SSL_set_fd(c, w);
        SSL_set_fd(s, r);
        SSL_set_connect_state(c);
        SSL_set_accept_state(s);
        int cdone = 0, sdone = 0;
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
        if (!res->n)
            snprintf(res->tls, sizeof res->tls, "%s %s", SSL_get_version(c), SSL_get_cipher_name(c));
        SSL_free(c);
        SSL_free(s);
        no_linger(w);
        no_linger(r);
        close(w);
        close(r);
        record(res, now_s() - t0);
    }
    res->seconds += now_s() - start;
}

/* carboncopy for one round: cc_session_connect to established on both sides, then free. */
static void run_cc(struct pair *ctxs, double seconds, struct result *res)
{
    struct pair pr = *ctxs;
    int err;
    double start = now_s();
    while (now_s() - start < seconds) {
        double t0 = now_s();
        memset(&pr.con, 0, sizeof pr.con);
        memset(&pr.cli, 0, sizeof pr.cli);
        if (!(pr.con.s = cc_session_new(pr.console_ctx, &err)))
            die("cc_session_new: %s", cc_strerror(err));
        cc_session_set_event_callback(pr.con.s, on_event, &pr.con);
        if ((err = cc_session_connect(pr.con.s, "127.0.0.1", ntohs(pr.addr.sin_port))) < 0)
            die("cc_session_connect: %s", cc_strerror(err));
        for (;;) {
            pump_step(&pr);
            if (pr.con.established && pr.cli.established)
                break;
            pump_poll(&pr, 0);
            if (now_s() - t0 > PHASE_DEADLINE_S)
                die("carboncopy connection stalled in state %s / %s", cc_state_name(cc_session_state(pr.con.s)),
                    pr.cli.s ? cc_state_name(cc_session_state(pr.cli.s)) : "not accepted");
        }
        if (!res->n)
            snprintf(res->tls, sizeof res->tls, "%s %s", cc_session_tls_version(pr.con.s),
                     cc_session_tls_cipher(pr.con.s));
        no_linger(cc_session_fd(pr.con.s));
        no_linger(cc_session_fd(pr.cli.s));
        cc_session_free(pr.con.s);
        cc_session_free(pr.cli.s);
        record(res, now_s() - t0);
    }
    res->seconds += now_s() - start;
}

static void print_result(const char *name, const struct result *r)
{
    char label[160];
    snprintf(label, sizeof label, "%s (%s)", name, r->tls);
    printf("  %-48s %8.0f /s  (%lu in %.2f s; latency mean %.3f ms, median %.3f ms, p99 %.3f ms)\n", label,
           (double)r->n / r->seconds, r->n, r->seconds, r->mean_ms, r->median_ms, r->p99_ms);
}

int main(int argc, char **argv)
{
    const char *sec_s = argc > 1 ? argv[1] : getenv("CC_BENCH_SECONDS");
    double seconds = sec_s ? atof(sec_s) : 3.0;
    if (argc > 2 || !(seconds > 0 && seconds <= 600)) {
        fprintf(stderr, "usage: handshake [SECONDS]   (or CC_BENCH_SECONDS; default 3 per phase, at least)\n");
        return 2;
    }
    make_pki();
    static struct pair ctxs;
    static struct result tls, cc;
    ctxs.lfd = listener(&ctxs.addr);
    cc_contexts(&ctxs);
    SSL_CTX *cctx, *sctx;
    tls_ctxs(&cctx, &sctx);
    while (tls.seconds < seconds || cc.seconds < seconds) {
        run_tls(cctx, sctx, ctxs.lfd, &ctxs.addr, ROUND_S, &tls);
        run_cc(&ctxs, ROUND_S, &cc);
    }
    summarize(&tls);
    summarize(&cc);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    cc_context_free(ctxs.console_ctx);
    cc_context_free(ctxs.client_ctx);
    close(ctxs.lfd);
    remove_pki();

    printf("handshake: complete connections over loopback TCP, one at a time, one thread drives both ends, "
           "at least %.1f s each (alternating %.2f s rounds)\n", seconds, ROUND_S);
    print_result("raw OpenSSL handshake", &tls);
    print_result("carboncopy connection", &cc);
    printf("  ratio carboncopy / raw TLS, connections per second: %.2f\n",
           ((double)cc.n / cc.seconds) / ((double)tls.n / tls.seconds));
    printf("  median latency: carboncopy %.3f ms = %.2f x raw TLS %.3f ms\n", cc.median_ms,
           cc.median_ms / tls.median_ms, tls.median_ms);
    return 0;
}
