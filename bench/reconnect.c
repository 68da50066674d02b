/* reconnect.c -- benchmark: the CPU cost of a reconnection with a reconnect ticket (TLS 1.3
 * resumption, no licence, no mechanism) against a full connection, same pair, same run. */
#define _GNU_SOURCE
#define BENCH_NAME "reconnect"
#include "bench.h"

#include <sys/socket.h>
#include <time.h>

/* One thread drives both ends over a socketpair (the console through the host-transport
 * callbacks), one connection at a time; the phases alternate in short rounds so background
 * load hits both alike. Each connection runs until both ends are established and the console
 * holds its (new) ticket, so both phases include issuing a ticket. CPU time is the process's.
 * Raw OpenSSL does the same two (full handshake, resumption) for the baseline ratio. */

#define MAX_SAMPLES 100000
#define ROUND_S     0.25

struct result {
    unsigned long n;
    double seconds, cpu_s;
    double samples[MAX_SAMPLES]; /* CPU seconds per connection */
    double median_ms, wall_median_ms;
    double wall[MAX_SAMPLES];
};

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double parse_ms; /* CPU ms of one cc_session_new + cc_session_set_reconnect_ticket + free */
static uint8_t ticket[CC_RECONNECT_TICKET_MAX];
static size_t ticket_len;

/* Opens the pair over a socketpair; the console presents the ticket when `resume`. */
static void open_pair(struct tp_pair *p, bool resume)
{
    memset(&p->con, 0, sizeof p->con);
    memset(&p->cli, 0, sizeof p->cli);
    p->cli.lic_count = 100;
    p->cli.lic_in_use = 1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) != 0)
        die("socketpair: %s", strerror(errno));
    if (!(p->con.s = cc_session_new(p->cctx, NULL)) || !(p->cli.s = cc_session_new(p->sctx, NULL)))
        die("cc_session_new");
    cc_session_set_event_callback(p->con.s, tp_on_event, &p->con);
    cc_session_set_event_callback(p->cli.s, tp_on_event, &p->cli);
    if (resume && cc_session_set_reconnect_ticket(p->con.s, ticket, ticket_len, 0) != CC_OK)
        die("cc_session_set_reconnect_ticket");
    if (cc_session_accept_fd(p->cli.s, p->sv[0]) != CC_OK)
        die("cc_session_accept_fd");
    p->con.poll_fd = &p->sv[1];
    if (cc_session_set_transport(p->con.s, t_fd_send, t_fd_recv, &p->sv[1], "localhost") != CC_OK)
        die("cc_session_set_transport");
}

static bool up_with_ticket(struct tp_side *a, struct tp_side *b)
{
    size_t n;
    return a->ended || b->ended ||
           (cc_session_state(a->s) == CC_STATE_ESTABLISHED && cc_session_state(b->s) == CC_STATE_ESTABLISHED &&
            cc_session_reconnect_ticket(a->s, NULL, 0, &n) == CC_ERR_AGAIN);
}

static void one(struct tp_pair *p, bool resume)
{
    open_pair(p, resume);
    if (!tp_drive(&p->con, &p->cli, up_with_ticket, (int)(PHASE_DEADLINE_S * 1000)) || p->con.ended || p->cli.ended)
        die("%s stalled or failed: %s / %s", resume ? "reconnection" : "connection", cc_session_errmsg(p->con.s),
            cc_session_errmsg(p->cli.s));
    if (cc_session_resumed(p->cli.s) != (resume ? 1 : 0))
        die("the %s was %sresumed", resume ? "reconnection" : "full connection", resume ? "not " : "");
    if (cc_session_reconnect_ticket(p->con.s, ticket, sizeof ticket, &ticket_len) != CC_OK)
        die("no ticket");
    tp_pair_end(p);
}

static void run(struct tp_pair *p, bool resume, double seconds, struct result *r)
{
    double start = now_s(), c_start = cpu_s();
    while (now_s() - start < seconds) {
        double t0 = now_s(), c0 = cpu_s();
        one(p, resume);
        if (r->n < MAX_SAMPLES) {
            r->samples[r->n] = cpu_s() - c0;
            r->wall[r->n] = now_s() - t0;
        }
        r->n++;
    }
    r->seconds += now_s() - start;
    r->cpu_s += cpu_s() - c_start;
}

/* ---- the same with raw OpenSSL: a full TLS 1.3 handshake against a resumption with the ticket
 * of the one before (server sends one ticket; the client reads it with the server's first byte) */

static SSL_SESSION *raw_sess;

static int raw_new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    SSL_SESSION_free(raw_sess);
    raw_sess = sess;
    return 1;
}

static void raw_one(SSL_CTX *cctx, SSL_CTX *sctx, bool resume)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        die("socketpair");
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    SSL_set_fd(c, sv[0]);
    SSL_set_fd(s, sv[1]);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (resume && (!raw_sess || SSL_set_session(c, raw_sess) != 1))
        die("raw: no session to resume");
    tls_handshake(c, s, sv[0], sv[1]);
    if (SSL_session_reused(c) != (resume ? 1 : 0))
        die("raw: the handshake was %sresumed", resume ? "not " : "");
    unsigned char b = 1;
    if (SSL_write(s, &b, 1) != 1)
        die("raw: SSL_write");
    double t0 = now_s();
    while (SSL_read(c, &b, 1) != 1) {
        struct pollfd p = {sv[0], POLLIN, 0};
        poll(&p, 1, 100);
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("raw: no byte after the handshake");
    }
    /* as if closed in order: OpenSSL marks the session of a connection freed without it not resumable */
    SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c);
    SSL_free(s);
    close(sv[0]);
    close(sv[1]);
}

static void raw_run(SSL_CTX *cctx, SSL_CTX *sctx, bool resume, double seconds, struct result *r)
{
    double start = now_s(), c_start = cpu_s();
    while (now_s() - start < seconds) {
        double t0 = now_s(), c0 = cpu_s();
        raw_one(cctx, sctx, resume);
        if (r->n < MAX_SAMPLES) {
            r->samples[r->n] = cpu_s() - c0;
            r->wall[r->n] = now_s() - t0;
        }
        r->n++;
    }
    r->seconds += now_s() - start;
    r->cpu_s += cpu_s() - c_start;
}

static void summarize(struct result *r)
{
    size_t n = r->n < MAX_SAMPLES ? r->n : MAX_SAMPLES;
    qsort(r->samples, n, sizeof r->samples[0], cmp_double);
    qsort(r->wall, n, sizeof r->wall[0], cmp_double);
    r->median_ms = n ? r->samples[n / 2] * 1e3 : 0;
    r->wall_median_ms = n ? r->wall[n / 2] * 1e3 : 0;
}

static void print_result(const char *name, const struct result *r)
{
    printf("  %-44s %6lu in %.2f s; CPU per connection mean %.3f ms, median %.3f ms; wall median %.3f ms\n", name, r->n,
           r->seconds, r->cpu_s / (double)r->n * 1e3, r->median_ms, r->wall_median_ms);
}

int main(int argc, char **argv)
{
    const char *sec_s = argc > 1 ? argv[1] : getenv("CC_BENCH_SECONDS");
    double seconds = sec_s ? atof(sec_s) : 3.0;
    if (argc > 2 || !(seconds > 0 && seconds <= 600)) {
        fprintf(stderr, "usage: reconnect [SECONDS]   (or CC_BENCH_SECONDS; default 3 per phase, at least)\n");
        return 2;
    }
    bench_setup();
    static struct tp_pair pair;
    static struct result full, resumed, raw_full, raw_resumed;
    bench_contexts(&pair, 0);
    SSL_CTX *cctx, *sctx;
    tls_ctxs(&cctx, &sctx);
    SSL_CTX_set_num_tickets(sctx, 1);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(cctx, raw_new_session);
    one(&pair, false); /* the first ticket */
    {
        /* the console's part alone: taking a ticket (parsing the TLS session in it) */
        double c0 = cpu_s();
        for (int i = 0; i < 1000; i++) {
            cc_session *t = cc_session_new(pair.cctx, NULL);
            if (cc_session_set_reconnect_ticket(t, ticket, ticket_len, 0) != CC_OK)
                die("cc_session_set_reconnect_ticket");
            cc_session_free(t);
        }
        parse_ms = (cpu_s() - c0);
    }
    while (full.seconds < seconds || resumed.seconds < seconds) {
        run(&pair, false, ROUND_S, &full);
        one(&pair, false); /* a fresh chain: the reconnect phase starts from a full connection's ticket */
        run(&pair, true, ROUND_S, &resumed);
        raw_run(cctx, sctx, false, ROUND_S, &raw_full);
        raw_run(cctx, sctx, true, ROUND_S, &raw_resumed);
    }
    summarize(&full);
    summarize(&resumed);
    summarize(&raw_full);
    summarize(&raw_resumed);
    SSL_SESSION_free(raw_sess);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    explicit_bzero(ticket, sizeof ticket);
    tp_pair_free(&pair);
    printf("reconnect: connections over a socketpair, one at a time, one thread drives both ends, until both are "
           "established and the console holds its ticket, at least %.1f s each (alternating %.2f s rounds)\n",
           seconds, ROUND_S);
    print_result("full connection (psk, licence answered)", &full);
    print_result("reconnection (TLS 1.3 resumption, ticket)", &resumed);
    printf("  ratio reconnection / full connection, CPU per connection: %.2f (median %.2f)\n",
           (resumed.cpu_s / (double)resumed.n) / (full.cpu_s / (double)full.n), resumed.median_ms / full.median_ms);
    printf(
        "  of which the console taking the ticket (cc_session_new, cc_session_set_reconnect_ticket, free): %.3f ms\n",
        parse_ms);
    print_result("raw OpenSSL full handshake + ticket", &raw_full);
    print_result("raw OpenSSL resumption + ticket", &raw_resumed);
    printf("  ratio raw resumption / raw full handshake, CPU per connection: %.2f (median %.2f)\n",
           (raw_resumed.cpu_s / (double)raw_resumed.n) / (raw_full.cpu_s / (double)raw_full.n),
           raw_resumed.median_ms / raw_full.median_ms);
    return 0;
}
