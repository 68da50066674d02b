/* throughput.c -- benchmark: bytes per second through an established console/client session pair
 * on loopback TCP, against raw TCP and raw OpenSSL TLS 1.3 moving the same bytes. Prints figures only. */
#define _GNU_SOURCE
#define BENCH_NAME "throughput"
#include "bench.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>

/* By default every measured phase is one thread driving both ends over
 * loopback TCP with poll(), so the figures compare CPU cost per byte on equal
 * terms. With THREADS = 2 the sending end of each phase runs on a second
 * thread (blocking I/O for the raw baselines), which shows what two cores
 * carry; the memory-BIO baseline is single-threaded only. */

#define CHUNK 65536

static unsigned char pattern[CHUNK];
static int threads = 1;
static uint32_t send_buffer;    /* CC_LIMIT_SEND_BUFFER for both sessions; 0 = the library's default */
static size_t cc_chunk = CHUNK; /* bytes per cc_session_send call */

/* "256M", "1G", "65536", "64K" -> bytes; 0 on a bad value. */
static unsigned long long parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return 0;
    if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    else if (*end == 'G' || *end == 'g')
        v <<= 30, end++;
    return *end ? 0 : v;
}

/* -------------------------------------------------------------- sockets */

/* Blocking mode for the two-thread runs, with a timeout so a stuck peer
 * ends the run instead of hanging it. */
static void set_blocking(int fd)
{
    struct timeval tv = {10, 0};
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        die("cannot make a socket blocking: %s", strerror(errno));
}

struct writer {
    int fd;
    SSL *ssl;
    unsigned long long total;
};

static void *tcp_writer(void *arg)
{
    struct writer *w = arg;
    unsigned long long sent = 0;
    while (sent < w->total) {
        size_t n = w->total - sent < CHUNK ? (size_t)(w->total - sent) : CHUNK;
        ssize_t k = send(w->fd, pattern, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            die("send: %s", strerror(errno));
        sent += (unsigned long long)k;
    }
    return NULL;
}

static void *tls_writer(void *arg)
{
    struct writer *w = arg;
    unsigned long long sent = 0;
    while (sent < w->total) {
        int n = w->total - sent < CHUNK ? (int)(w->total - sent) : CHUNK;
        int k = SSL_write(w->ssl, pattern, n);
        if (k <= 0)
            die("SSL_write: error %d", SSL_get_error(w->ssl, k));
        sent += (unsigned long long)k;
    }
    return NULL;
}

/* --------------------------------------------------------------- raw TCP */

static double run_tcp(int lfd, const struct sockaddr_in *addr, unsigned long long total)
{
    int w, r;
    tcp_pair(lfd, addr, &w, &r);
    static unsigned char in[CHUNK];
    unsigned long long sent = 0, got = 0;
    double t0 = now_s();
    if (threads == 2) {
        set_blocking(w);
        set_blocking(r);
        struct writer wr = {w, NULL, total};
        pthread_t th;
        t0 = now_s();
        if (pthread_create(&th, NULL, tcp_writer, &wr) != 0)
            die("pthread_create");
        while (got < total) {
            ssize_t k = recv(r, in, sizeof in, 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                die("recv: %s", k ? strerror(errno) : "end of stream");
            got += (unsigned long long)k;
        }
        double t = now_s() - t0;
        pthread_join(th, NULL);
        close(w);
        close(r);
        return t;
    }
    while (got < total) {
        struct pollfd p[2] = {{w, sent < total ? POLLOUT : 0, 0}, {r, POLLIN, 0}};
        if (poll(p, 2, 1000) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        while (sent < total) {
            size_t n = total - sent < CHUNK ? (size_t)(total - sent) : CHUNK;
            ssize_t k = send(w, pattern, n, MSG_NOSIGNAL);
            if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                die("send: %s", strerror(errno));
            }
            sent += (unsigned long long)k;
        }
        for (;;) {
            ssize_t k = recv(r, in, sizeof in, 0);
            if (k < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (k <= 0)
                die("recv: %s", k ? strerror(errno) : "end of stream");
            got += (unsigned long long)k;
        }
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("raw TCP phase stalled");
    }
    double t = now_s() - t0;
    close(w);
    close(r);
    return t;
}

/* --------------------------------------------------------------- raw TLS */

static double run_tls(int lfd, const struct sockaddr_in *addr, unsigned long long total, char *cipher, size_t cn)
{
    SSL_CTX *cctx, *sctx;
    tls_ctxs(&cctx, &sctx);
    int w, r;
    tcp_pair(lfd, addr, &w, &r);
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    SSL_set_fd(c, w);
    SSL_set_fd(s, r);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    tls_handshake(c, s, w, r);
    snprintf(cipher, cn, "%s %s", SSL_get_version(c), SSL_get_cipher_name(c));

    static unsigned char in[16384];
    unsigned long long sent = 0, got = 0;
    pthread_t th;
    struct writer wr = {w, c, total};
    if (threads == 2) {
        set_blocking(w);
        set_blocking(r);
    }
    double t0 = now_s();
    if (threads == 2 && pthread_create(&th, NULL, tls_writer, &wr) != 0)
        die("pthread_create");
    while (threads == 2 && got < total) {
        int k = SSL_read(s, in, sizeof in);
        if (k <= 0)
            die("SSL_read: error %d", SSL_get_error(s, k));
        got += (unsigned long long)k;
    }
    if (threads == 2)
        pthread_join(th, NULL);
    while (got < total) {
        struct pollfd p[2] = {{w, sent < total ? POLLOUT : 0, 0}, {r, POLLIN, 0}};
        if (poll(p, 2, 1000) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        while (sent < total) {
            int n = total - sent < CHUNK ? (int)(total - sent) : CHUNK;
            int k = SSL_write(c, pattern, n);
            if (k <= 0) {
                tls_want(c, k);
                break;
            }
            sent += (unsigned long long)k;
        }
        for (;;) {
            int k = SSL_read(s, in, sizeof in);
            if (k <= 0) {
                tls_want(s, k);
                break;
            }
            got += (unsigned long long)k;
        }
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("raw TLS phase stalled");
    }
    double t = now_s() - t0;
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    close(w);
    close(r);
    return t;
}

/* The same TLS 1.3 through memory BIOs, with the bytes moved between BIO and
 * socket by hand: the library's architecture without its framing and
 * buffering, to tell the two costs apart. */
struct memtls {
    SSL *ssl;
    BIO *rbio, *wbio;
    int fd;
    unsigned char out[1 << 18];
    size_t out_len, out_off;
};

static void memtls_init(struct memtls *m, SSL_CTX *ctx, int fd, int client)
{
    m->ssl = SSL_new(ctx);
    m->rbio = BIO_new(BIO_s_mem());
    m->wbio = BIO_new(BIO_s_mem());
    if (!m->ssl || !m->rbio || !m->wbio)
        die("SSL_new");
    BIO_set_mem_eof_return(m->rbio, -1);
    BIO_set_mem_eof_return(m->wbio, -1);
    SSL_set_bio(m->ssl, m->rbio, m->wbio);
    if (client)
        SSL_set_connect_state(m->ssl);
    else
        SSL_set_accept_state(m->ssl);
    m->fd = fd;
    m->out_len = m->out_off = 0;
}

/* TLS output to the socket until it would block. */
static void memtls_flush(struct memtls *m)
{
    for (;;) {
        if (m->out_off == m->out_len) {
            int n = BIO_read(m->wbio, m->out, sizeof m->out);
            if (n <= 0)
                return;
            m->out_len = (size_t)n;
            m->out_off = 0;
        }
        ssize_t k = send(m->fd, m->out + m->out_off, m->out_len - m->out_off, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            die("send: %s", strerror(errno));
        }
        m->out_off += (size_t)k;
    }
}

/* Socket input into TLS until the socket is empty. */
static void memtls_fill(struct memtls *m)
{
    unsigned char buf[16384];
    for (;;) {
        ssize_t k = recv(m->fd, buf, sizeof buf, 0);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (k <= 0)
            die("recv: %s", k ? strerror(errno) : "end of stream");
        if (BIO_write(m->rbio, buf, (int)k) != (int)k)
            die("BIO_write");
    }
}

static double run_tls_mem(int lfd, const struct sockaddr_in *addr, unsigned long long total)
{
    SSL_CTX *cctx, *sctx;
    tls_ctxs(&cctx, &sctx);
    int w, r;
    tcp_pair(lfd, addr, &w, &r);
    static struct memtls c, s;
    memtls_init(&c, cctx, w, 1);
    memtls_init(&s, sctx, r, 0);
    int cdone = 0, sdone = 0;
    double t0 = now_s();
    while (!cdone || !sdone) {
        int k;
        if (!cdone && (k = SSL_do_handshake(c.ssl)) == 1)
            cdone = 1;
        else if (!cdone)
            tls_want(c.ssl, k);
        if (!sdone && (k = SSL_do_handshake(s.ssl)) == 1)
            sdone = 1;
        else if (!sdone)
            tls_want(s.ssl, k);
        memtls_flush(&c);
        memtls_flush(&s);
        struct pollfd p[2] = {{w, POLLIN, 0}, {r, POLLIN, 0}};
        if (!cdone || !sdone)
            poll(p, 2, 100);
        memtls_fill(&c);
        memtls_fill(&s);
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("memory-BIO TLS handshake stalled");
    }

    static unsigned char in[16384];
    unsigned long long sent = 0, got = 0;
    t0 = now_s();
    while (got < total) {
        /* Encrypt up to one output buffer's worth ahead, as a send buffer would. */
        while (sent < total && BIO_ctrl_pending(c.wbio) < sizeof c.out) {
            int n = total - sent < CHUNK ? (int)(total - sent) : CHUNK;
            int k = SSL_write(c.ssl, pattern, n);
            if (k <= 0)
                die("SSL_write into a memory BIO failed");
            sent += (unsigned long long)k;
        }
        memtls_flush(&c);
        struct pollfd p[2] = {{w, c.out_off < c.out_len || BIO_ctrl_pending(c.wbio) ? POLLOUT : 0, 0}, {r, POLLIN, 0}};
        if (poll(p, 2, 1000) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        memtls_flush(&c);
        memtls_fill(&s);
        for (;;) {
            int k = SSL_read(s.ssl, in, sizeof in);
            if (k <= 0) {
                tls_want(s.ssl, k);
                break;
            }
            got += (unsigned long long)k;
        }
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("memory-BIO TLS phase stalled");
    }
    double t = now_s() - t0;
    SSL_free(c.ssl);
    SSL_free(s.ssl);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    close(w);
    close(r);
    return t;
}

/* ------------------------------------------------------------ carboncopy */

/* Queues data on the console until the send buffer says stop (CC_EVENT_SEND_READY clears
 * send_blocked). */
static void feed(struct tp_side *con, unsigned long long *sent, unsigned long long total)
{
    while (!con->send_blocked && *sent < total) {
        size_t n = total - *sent < cc_chunk ? (size_t)(total - *sent) : cc_chunk;
        int r = cc_session_send(con->s, 1, pattern, n);
        if (r == CC_ERR_AGAIN) {
            con->send_blocked = true;
            break;
        }
        if (r < 0)
            die("cc_session_send: %s", cc_strerror(r));
        *sent += n;
        if (r == CC_SEND_HIGH_WATER)
            con->send_blocked = true;
    }
}

/* Steps one session (two-thread runs). */
static void step_one(struct tp_side *sd, const char *who)
{
    tp_step(sd);
    bench_check(sd, who);
}

/* Waits for what the session's last step asked for (not at all when `busy`). */
static void poll_one(struct tp_side *sd, int busy)
{
    tp_poll(sd, NULL, busy ? 0 : 20);
}

struct console_thread {
    struct tp_side *con;
    unsigned long long total;
    atomic_int stop;
};

static void *console_main(void *arg)
{
    struct console_thread *ct = arg;
    unsigned long long sent = 0;
    while (!atomic_load(&ct->stop)) {
        feed(ct->con, &sent, ct->total);
        step_one(ct->con, "console");
        /* Decided after the step: its CC_EVENT_SEND_READY may have unblocked us. */
        poll_one(ct->con, !ct->con->send_blocked && sent < ct->total);
    }
    return NULL;
}

static double run_cc(int lfd, const struct sockaddr_in *addr, unsigned long long total, char *cipher, size_t cn)
{
    struct tp_pair pr;
    memset(&pr, 0, sizeof pr);
    bench_contexts(&pr, send_buffer);
    bench_connect(&pr, lfd, addr);
    snprintf(cipher, cn, "%s %s", cc_session_tls_version(pr.con.s), cc_session_tls_cipher(pr.con.s));

    unsigned long long sent = 0;
    double t0 = now_s();
    if (threads == 2) {
        /* The console's session belongs to the second thread until it is joined. */
        struct console_thread ct = {&pr.con, total, 0};
        pthread_t th;
        if (pthread_create(&th, NULL, console_main, &ct) != 0)
            die("pthread_create");
        while (pr.cli.rx_len < total) {
            step_one(&pr.cli, "client");
            if (pr.cli.rx_len >= total)
                break;
            poll_one(&pr.cli, 0);
            if (now_s() - t0 > PHASE_DEADLINE_S)
                die("carboncopy phase stalled at %llu of %llu bytes", (unsigned long long)pr.cli.rx_len, total);
        }
        double t = now_s() - t0;
        atomic_store(&ct.stop, 1);
        pthread_join(th, NULL);
        t0 = now_s() - t; /* the close below is not timed */
    }
    while (pr.cli.rx_len < total) {
        feed(&pr.con, &sent, total);
        bench_step(&pr);
        if (pr.cli.rx_len >= total)
            break;
        tp_pair_poll(&pr, !pr.con.send_blocked && sent < total ? 0 : 100);
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("carboncopy phase stalled at %llu of %llu bytes", (unsigned long long)pr.cli.rx_len, total);
    }
    double t = now_s() - t0;

    /* Orderly close (not timed), so the run also shows the close path works. */
    cc_session_close(pr.con.s, 0, "benchmark done");
    tp_drive(&pr.con, &pr.cli, tp_both_ended, 5000);
    if (pr.con.result != 0 || pr.cli.result != 0)
        fprintf(stderr, "throughput: close did not end cleanly (console %s, client %s)\n", cc_err_name(pr.con.result),
                cc_err_name(pr.cli.result));
    tp_pair_free(&pr);
    return t;
}

/* ------------------------------------------------------------------ main */

static double best_of(double a, double b)
{
    return a < b ? a : b;
}

int main(int argc, char **argv)
{
    const char *size_s = argc > 1 ? argv[1] : getenv("CC_BENCH_BYTES");
    const char *rep_s = argc > 2 ? argv[2] : getenv("CC_BENCH_REPEAT");
    const char *thr_s = argc > 3 ? argv[3] : getenv("CC_BENCH_THREADS");
    unsigned long long total = size_s ? parse_size(size_s) : 256ull << 20;
    int reps = rep_s ? atoi(rep_s) : 3;
    threads = thr_s ? atoi(thr_s) : 1;
    const char *sb_s = getenv("CC_BENCH_SEND_BUFFER");
    send_buffer = sb_s ? (uint32_t)parse_size(sb_s) : 0;
    /* A send must fit the buffer with its frame headers, or it is refused for good. */
    if (send_buffer && cc_chunk > send_buffer / 4)
        cc_chunk = send_buffer / 4;
    if (!total || reps < 1 || reps > 100 || (threads != 1 && threads != 2) || argc > 4) {
        fprintf(stderr, "usage: throughput [BYTES[K|M|G] [REPEAT [THREADS]]]\n"
                        "       (or CC_BENCH_BYTES, CC_BENCH_REPEAT, CC_BENCH_THREADS)\n"
                        "  moves BYTES (default 256M) one way, REPEAT times (default 3), reports the best run;\n"
                        "  THREADS 1 (default): one thread drives both ends; 2: the sender has its own thread\n"
                        "  CC_BENCH_SEND_BUFFER=SIZE sets CC_LIMIT_SEND_BUFFER of both sessions\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(i * 131 + 7);
    bench_setup();
    struct sockaddr_in addr;
    int lfd = bench_listen(&addr);
    char tls_cipher[96] = "", cc_cipher[96] = "";
    double t_tcp = 1e9, t_tls = 1e9, t_mem = 1e9, t_cc = 1e9;
    for (int i = 0; i < reps; i++) {
        t_tcp = best_of(t_tcp, run_tcp(lfd, &addr, total));
        t_tls = best_of(t_tls, run_tls(lfd, &addr, total, tls_cipher, sizeof tls_cipher));
        if (threads == 1)
            t_mem = best_of(t_mem, run_tls_mem(lfd, &addr, total));
        t_cc = best_of(t_cc, run_cc(lfd, &addr, total, cc_cipher, sizeof cc_cipher));
    }
    close(lfd);

    double mib = (double)total / (1024.0 * 1024.0);
    printf("throughput: %llu bytes (%.0f MiB) one way over loopback TCP, %s, best of %d\n", total, mib,
           threads == 1 ? "one thread drives both ends" : "sender and receiver on two threads", reps);
    printf("  %-60s %9.1f MiB/s  (%.3f s)\n", "raw TCP", mib / t_tcp, t_tcp);
    char label[160];
    snprintf(label, sizeof label, "raw OpenSSL (%s)", tls_cipher);
    printf("  %-60s %9.1f MiB/s  (%.3f s)\n", label, mib / t_tls, t_tls);
    snprintf(label, sizeof label, "raw OpenSSL, memory BIOs (%s)", tls_cipher);
    if (threads == 1)
        printf("  %-60s %9.1f MiB/s  (%.3f s)\n", label, mib / t_mem, t_mem);
    char sb[64] = "";
    if (send_buffer)
        snprintf(sb, sizeof sb, ", send buffer %uK", send_buffer >> 10);
    snprintf(label, sizeof label, "carboncopy (%s%s)", cc_cipher, sb);
    printf("  %-60s %9.1f MiB/s  (%.3f s)\n", label, mib / t_cc, t_cc);
    printf("  ratio carboncopy / raw TCP: %.2f\n", t_tcp / t_cc);
    printf("  ratio carboncopy / raw TLS: %.2f\n", t_tls / t_cc);
    if (threads == 1)
        printf("  ratio carboncopy / raw TLS over memory BIOs: %.2f\n", t_mem / t_cc);
    return 0;
}
