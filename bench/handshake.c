/* handshake.c -- benchmark: complete connections per second (TCP connect, preamble, TLS, licence
 * answered by the host, psk authentication) against raw OpenSSL TLS 1.3 handshakes. Prints figures only. */
#define _GNU_SOURCE
#define BENCH_NAME "handshake"
#include "bench.h"

#include <fcntl.h>

/* Both phases are one thread driving both ends over loopback TCP with poll(),
 * one connection at a time, with the same certificate (EC P-256, checked by
 * its SHA-256 pin), so the ratio compares the cost of a whole connection. */

#define MAX_SAMPLES 200000
#define ROUND_S     0.25 /* the phases alternate in rounds this long, so background load hits both alike */

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
        tls_handshake(c, s, w, r);
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

/* carboncopy for one round: cc_session_connect to established on both sides, then free (the
 * contexts stay). */
static void run_cc(struct tp_pair *p, int lfd, const struct sockaddr_in *addr, double seconds, struct result *res)
{
    double start = now_s();
    while (now_s() - start < seconds) {
        double t0 = now_s();
        bench_connect(p, lfd, addr);
        if (!res->n)
            snprintf(res->tls, sizeof res->tls, "%s %s", cc_session_tls_version(p->con.s),
                     cc_session_tls_cipher(p->con.s));
        no_linger(cc_session_fd(p->con.s));
        no_linger(cc_session_fd(p->cli.s));
        tp_pair_end(p);
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
    bench_setup();
    static struct tp_pair pair;
    static struct result tls, cc;
    struct sockaddr_in addr;
    int lfd = bench_listen(&addr);
    bench_contexts(&pair, 0);
    SSL_CTX *cctx, *sctx;
    tls_ctxs(&cctx, &sctx);
    while (tls.seconds < seconds || cc.seconds < seconds) {
        run_tls(cctx, sctx, lfd, &addr, ROUND_S, &tls);
        run_cc(&pair, lfd, &addr, ROUND_S, &cc);
    }
    summarize(&tls);
    summarize(&cc);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    tp_pair_free(&pair);
    close(lfd);

    printf("handshake: complete connections over loopback TCP, one at a time, one thread drives both ends, "
           "at least %.1f s each (alternating %.2f s rounds)\n",
           seconds, ROUND_S);
    print_result("raw OpenSSL handshake", &tls);
    print_result("carboncopy connection", &cc);
    printf("  ratio carboncopy / raw TLS, connections per second: %.2f\n",
           ((double)cc.n / cc.seconds) / ((double)tls.n / tls.seconds));
    printf("  median latency: carboncopy %.3f ms = %.2f x raw TLS %.3f ms\n", cc.median_ms,
           cc.median_ms / tls.median_ms, tls.median_ms);
    return 0;
}
