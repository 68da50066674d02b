/* priority.c -- input during a bulk transfer (issue 13, doc/PROTOCOL.md 10): a console and a
 * client session over loopback TCP through a shaping relay (a thread of this program: at most
 * CC_BENCH_RATE bytes a second each way, default 2.5 MB/s, reading only as fast as it forwards,
 * SO_SNDBUF and SO_RCVBUF of 16 KiB on its four sockets so it hides no queue). The console sends
 * CC_BENCH_BULK bytes (default 32M) on bulk channel 1, which saturates the link; meanwhile,
 * every 20 ms, a ping and a 16-byte message on interactive channel 0 that the client echoes.
 * Prints the 50th/95th/99th percentile and the largest round trip of both, and the bulk
 * throughput against the link. Usage: priority [RATE_BYTES_PER_S [BULK_BYTES]]; CC_BENCH_SEND_BUFFER
 * sets CC_LIMIT_SEND_BUFFER. The same source builds against a library without send priorities
 * (bench/priority-main.sh: main's behaviour, one FIFO). */
#define _GNU_SOURCE
#define BENCH_NAME "priority"
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>

#define SAMPLE_EVERY_MS 20
#define MAX_SAMPLES     100000
#define RELAY_BUF       16384

static double rate = 2.5e6;
static unsigned long long bulk = 32ull << 20;

/* ---- the relay ---- */

struct relay {
    int lfd;               /* where the console connects */
    struct sockaddr_in to; /* the client's listener */
    atomic_int stop;
};

static void small_buffers(int fd)
{
    int n = RELAY_BUF;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof n);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* One direction: bytes read and not yet written, and the token bucket. */
struct dir {
    int from, to;
    uint8_t buf[RELAY_BUF];
    size_t len, off;
    double tokens, last;
    bool eof;
};

static void dir_move(struct dir *d, double now)
{
    d->tokens += (now - d->last) * rate;
    d->last = now;
    if (d->tokens > RELAY_BUF)
        d->tokens = RELAY_BUF; /* a bucket of one buffer: no bursts beyond it */
    if (d->off == d->len && !d->eof && d->tokens >= 1) {
        size_t want = d->tokens < sizeof d->buf ? (size_t)d->tokens : sizeof d->buf;
        ssize_t r = recv(d->from, d->buf, want, MSG_DONTWAIT);
        if (r == 0) {
            d->eof = true;
            shutdown(d->to, SHUT_WR);
        } else if (r > 0) {
            d->len = (size_t)r;
            d->off = 0;
            d->tokens -= (double)r;
        }
    }
    if (d->off < d->len) {
        ssize_t w = send(d->to, d->buf + d->off, d->len - d->off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0)
            d->off += (size_t)w;
    }
}

static struct dir *relay_up, *relay_down;

static void *relay_main(void *arg)
{
    struct relay *rl = arg;
    int a = -1;
    while (a < 0 && !atomic_load(&rl->stop)) {
        struct pollfd p = {rl->lfd, POLLIN, 0};
        poll(&p, 1, 50);
        a = accept4(rl->lfd, NULL, NULL, SOCK_CLOEXEC);
    }
    if (a < 0)
        return NULL;
    int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    small_buffers(b); /* before connect (and the listener's before accept): the window is set up by the SYN */
    if (connect(b, (const struct sockaddr *)&rl->to, sizeof rl->to) != 0)
        die("relay: connect: %s", strerror(errno));
    static struct dir up, down;
    relay_up = &up;
    relay_down = &down;
    double now = now_s();
    up = (struct dir){.from = a, .to = b, .last = now};
    down = (struct dir){.from = b, .to = a, .last = now};
    while (!atomic_load(&rl->stop) && !(up.eof && down.eof)) {
        struct pollfd p[2] = {{a, 0, 0}, {b, 0, 0}};
        /* wait for what each direction can do now: read when its buffer is empty, else write */
        if (up.off == up.len && !up.eof)
            p[0].events |= POLLIN;
        else if (up.off < up.len)
            p[1].events |= POLLOUT;
        if (down.off == down.len && !down.eof)
            p[1].events |= POLLIN;
        else if (down.off < down.len)
            p[0].events |= POLLOUT;
        poll(p, 2, 1); /* 1 ms: the buckets refill with time */
        now = now_s();
        dir_move(&up, now);
        dir_move(&down, now);
    }
    close(a);
    close(b);
    return NULL;
}

/* ---- the sessions ---- */

static double ping_at, pings[MAX_SAMPLES], echoes[MAX_SAMPLES];
static int n_pings, n_echoes;
static unsigned long long bulk_rx;
static double bulk_t0, bulk_t1;

static void con_event(void *user, cc_session *s, const cc_event *ev)
{
    struct tp_side *sd = user;
    if (ev->type == CC_EVENT_PONG && ping_at > 0) {
        if (n_pings < MAX_SAMPLES)
            pings[n_pings++] = (now_s() - ping_at) * 1000;
        ping_at = 0;
    } else if (ev->type == CC_EVENT_DATA && ev->channel == 0 && ev->len == sizeof(double) * 2) {
        double sent;
        memcpy(&sent, ev->data, sizeof sent);
        if (n_echoes < MAX_SAMPLES)
            echoes[n_echoes++] = (now_s() - sent) * 1000;
        return;
    }
    tp_on_event(sd, s, ev);
}

static void cli_event(void *user, cc_session *s, const cc_event *ev)
{
    struct tp_side *sd = user;
    if (ev->type == CC_EVENT_DATA) {
        if (ev->channel == 0)
            cc_session_send(s, 0, ev->data, ev->len); /* the keystroke's echo */
        else {
            if (!bulk_rx)
                bulk_t0 = now_s();
            bulk_rx += ev->len;
            if (bulk_rx >= bulk)
                bulk_t1 = now_s();
        }
        return;
    }
    tp_on_event(sd, s, ev);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n)
{
    if (!n) {
        printf("%-34s no samples\n", what);
        return;
    }
    qsort(v, (size_t)n, sizeof *v, cmp);
    printf("%-34s n=%-5d p50 %7.1f ms  p95 %7.1f ms  p99 %7.1f ms  max %7.1f ms\n", what, n, v[n / 2],
           v[(int)(n * 0.95)], v[(int)(n * 0.99) < n ? (int)(n * 0.99) : n - 1], v[n - 1]);
}

int main(int argc, char **argv)
{
    const char *e;
    if ((e = argc > 1 ? argv[1] : getenv("CC_BENCH_RATE")) && *e)
        rate = atof(e);
    if ((e = argc > 2 ? argv[2] : getenv("CC_BENCH_BULK")) && *e) {
        char *end;
        bulk = strtoull(e, &end, 10);
        if (*end == 'K' || *end == 'k')
            bulk <<= 10;
        else if (*end == 'M' || *end == 'm')
            bulk <<= 20;
    }
    if (rate < 1e4 || bulk < 1)
        die("usage: priority [RATE_BYTES_PER_S >= 10000 [BULK_BYTES]]");
    bench_setup();

    struct sockaddr_in cli_addr, relay_addr;
    int lfd = bench_listen(&cli_addr);
    struct relay rl = {.lfd = bench_listen(&relay_addr), .to = cli_addr};
    small_buffers(rl.lfd); /* inherited by the accepted socket */
    pthread_t th;
    if (pthread_create(&th, NULL, relay_main, &rl) != 0)
        die("pthread_create");

    struct tp_pair pr;
    memset(&pr, 0, sizeof pr);
    /* CC_BENCH_SEND_BUFFER (bytes, suffix K or M): CC_LIMIT_SEND_BUFFER; default the library's */
    uint32_t send_buffer = 0;
    if ((e = getenv("CC_BENCH_SEND_BUFFER")) && *e) {
        char *end;
        send_buffer = (uint32_t)strtoul(e, &end, 10);
        if (*end == 'K' || *end == 'k')
            send_buffer <<= 10;
        else if (*end == 'M' || *end == 'm')
            send_buffer <<= 20;
    }
    bench_contexts(&pr, send_buffer);
    /* bench_connect: the console dials the relay, the pair accepts the relay's connection */
    memset(&pr.con, 0, sizeof pr.con);
    memset(&pr.cli, 0, sizeof pr.cli);
    pr.con.drop_rx = pr.cli.drop_rx = true;
    pr.cli.lic_count = 100;
    pr.cli.lic_in_use = 1;
    if (tp_pair_connect(&pr, lfd, &relay_addr, NULL, NULL) != 0)
        die("cannot start a console session: %s", cc_session_errmsg(pr.con.s));
    double t0 = now_s();
    bool hooked = false;
    while (!bench_established(&pr.con) || !bench_established(&pr.cli)) {
        bench_step(&pr);
        if (pr.cli.s && !hooked) {
            cc_session_set_event_callback(pr.cli.s, cli_event, &pr.cli);
            hooked = true;
        }
        tp_pair_poll(&pr, 20);
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("connection through the relay stalled");
    }
    cc_session_set_event_callback(pr.con.s, con_event, &pr.con);
#ifdef CC_PRIORITY_INTERACTIVE /* absent from a library before the send priorities: one FIFO then */
    if (cc_session_set_channel_priority(pr.con.s, 0, CC_PRIORITY_INTERACTIVE) < 0 ||
        cc_session_set_channel_priority(pr.cli.s, 0, CC_PRIORITY_INTERACTIVE) < 0)
        die("cc_session_set_channel_priority");
#endif

    static uint8_t chunk[65536];
    unsigned long long queued = 0;
    double next = now_s(), deadline = now_s() + bulk / rate * 3 + 30;
    while (bulk_rx < bulk) {
        while (queued < bulk && !pr.con.send_blocked) {
            size_t n = bulk - queued < sizeof chunk ? (size_t)(bulk - queued) : sizeof chunk;
            int r = cc_session_send(pr.con.s, 1, chunk, n);
            if (r == CC_ERR_AGAIN) {
                pr.con.send_blocked = true;
                break;
            }
            if (r < 0)
                die("cc_session_send: %s", cc_strerror(r));
            queued += n;
            if (r == CC_SEND_HIGH_WATER)
                pr.con.send_blocked = true;
        }
        double now = now_s();
        if (now >= next && bulk_rx > 0) {
            if (ping_at == 0 && cc_session_ping(pr.con.s) == CC_OK)
                ping_at = now;
            double msg[2] = {now, 0};
            cc_session_send(pr.con.s, 0, msg, sizeof msg);
            next = now + SAMPLE_EVERY_MS / 1000.0;
        }
        bench_step(&pr);
        tp_pair_poll(&pr, 2);
        if (now > deadline)
            die("pending console %zu client %zu; relay up %zu/%zu eof %d tokens %.0f, down %zu/%zu eof %d; "
                "queued %llu; ",
                cc_session_pending(pr.con.s), cc_session_pending(pr.cli.s), relay_up->off, relay_up->len, relay_up->eof,
                relay_up->tokens, relay_down->off, relay_down->len, relay_down->eof, queued);
        if (now > deadline)
            die("the transfer stalled at %llu of %llu bytes", bulk_rx, bulk);
    }
    double secs = bulk_t1 - bulk_t0;
    atomic_store(&rl.stop, 1);
    pthread_join(th, NULL);
    printf("priority: %.2f MB/s link each way (relay buffers %d bytes), %llu bytes on bulk channel 1, a ping and a "
           "16-byte interactive echo every %d ms, CC_LIMIT_SEND_BUFFER %s\n",
           rate / 1e6, RELAY_BUF, bulk, SAMPLE_EVERY_MS, send_buffer ? getenv("CC_BENCH_SEND_BUFFER") : "default");
    report("ping round trip during the transfer", pings, n_pings);
    report("interactive echo during the transfer", echoes, n_echoes);
    printf("bulk: %.2f MB/s in %.1f s = %.1f %% of the link\n", bulk / secs / 1e6, secs, 100.0 * bulk / secs / rate);
    tp_pair_free(&pr);
    close(lfd);
    close(rl.lfd);
    return 0;
}
