/* memory.c -- benchmark: the bytes an idle established session holds, per role, counted by the library's
 * allocator hooks and OpenSSL's (CRYPTO_set_mem_functions), idle and after traffic, beside raw OpenSSL. */
#define _GNU_SOURCE
#define BENCH_NAME "memory"
#include "bench.h"

#include <openssl/crypto.h>

/* Every figure is live requested bytes (what malloc was asked for, without
 * its own overhead) and live blocks, from a header in front of each block.
 * A role's share is what freeing all N sessions of that role gives back, so
 * nothing a context or OpenSSL keeps once per process is counted. */

#define HDR     32 /* the size and the allocation site; keeps the caller's block 16-byte aligned */
#define TRAFFIC (64 * 1024)

struct meter {
    long long live, blocks;
};
static struct meter m_con, m_cli, m_ssl; /* the console context, the client context, OpenSSL */

/* OpenSSL's live bytes by the file and line that allocated them (OPENSSL_malloc passes both). */
#define SITES 4096
struct site {
    const char *file;
    int line;
    long long live, blocks;
};
static struct site sites[SITES];

static int site_of(const char *file, int line)
{
    if (!file)
        return -1;
    size_t h = ((size_t)file * 31u + (size_t)line) % SITES;
    for (size_t i = 0; i < SITES; i++, h = (h + 1) % SITES) {
        if (!sites[h].file) {
            sites[h].file = file;
            sites[h].line = line;
        }
        if (sites[h].file == file && sites[h].line == line)
            return (int)h;
    }
    return -1;
}

struct hdr {
    size_t n;
    int site;
};

static void count(struct meter *m, const struct hdr *h, int sign)
{
    m->live += sign * (long long)h->n;
    m->blocks += sign;
    if (h->site >= 0) {
        sites[h->site].live += sign * (long long)h->n;
        sites[h->site].blocks += sign;
    }
}

static void *m_alloc(struct meter *m, size_t n, int site)
{
    unsigned char *p = malloc(n + HDR);
    if (!p)
        return NULL;
    struct hdr h = {n, site};
    memcpy(p, &h, sizeof h);
    count(m, &h, 1);
    return p + HDR;
}

static void *m_realloc(struct meter *m, void *q, size_t n, int site)
{
    if (!q)
        return m_alloc(m, n, site);
    unsigned char *p = (unsigned char *)q - HDR, *np;
    struct hdr h;
    memcpy(&h, p, sizeof h);
    if (!(np = realloc(p, n + HDR)))
        return NULL;
    count(m, &h, -1);
    h.n = n; /* the block stays its first allocation's */
    memcpy(np, &h, sizeof h);
    count(m, &h, 1);
    return np + HDR;
}

static void m_free(struct meter *m, void *q)
{
    if (!q)
        return;
    unsigned char *p = (unsigned char *)q - HDR;
    struct hdr h;
    memcpy(&h, p, sizeof h);
    count(m, &h, -1);
    free(p);
}

static void *cc_m_malloc(size_t n, void *user)
{
    return m_alloc(user, n, -1);
}
static void *cc_m_realloc(void *p, size_t n, void *user)
{
    return m_realloc(user, p, n, -1);
}
static void cc_m_free(void *p, void *user)
{
    m_free(user, p);
}
static void *ssl_m_malloc(size_t n, const char *file, int line)
{
    return m_alloc(&m_ssl, n, site_of(file, line));
}
static void *ssl_m_realloc(void *p, size_t n, const char *file, int line)
{
    return m_realloc(&m_ssl, p, n, site_of(file, line));
}
static void ssl_m_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    m_free(&m_ssl, p);
}

/* What freeing one role gave back, by site: the largest, per session. */
static long long site_before[SITES], site_blocks_before[SITES];
static void sites_mark(void)
{
    for (size_t i = 0; i < SITES; i++) {
        site_before[i] = sites[i].live;
        site_blocks_before[i] = sites[i].blocks;
    }
}
static void sites_print(const char *role, size_t n, int top)
{
    long long d[SITES];
    for (size_t i = 0; i < SITES; i++)
        d[i] = site_before[i] - sites[i].live;
    printf("  OpenSSL's share of an idle %s session by allocation site (bytes, blocks):\n", role);
    for (int k = 0; k < top; k++) {
        size_t best = 0;
        for (size_t i = 1; i < SITES; i++)
            if (d[i] > d[best])
                best = i;
        if (d[best] <= 0)
            break;
        const char *f = strrchr(sites[best].file, '/');
        printf("    %7.0f %5.1f  %s:%d\n", (double)d[best] / (double)n,
               (double)(site_blocks_before[best] - sites[best].blocks) / (double)n, f ? f + 1 : sites[best].file,
               sites[best].line);
        d[best] = 0;
    }
}

struct snap {
    long long con, cli, ssl, con_blocks, cli_blocks, ssl_blocks;
};
static struct snap snap(void)
{
    return (struct snap){m_con.live, m_cli.live, m_ssl.live, m_con.blocks, m_cli.blocks, m_ssl.blocks};
}

/* One role's figures per session. */
struct fig {
    double lib, ssl, lib_blocks, ssl_blocks;
};

static void print_row(const char *what, const char *role, const struct fig *f, bool has_lib)
{
    if (has_lib)
        printf("  %-34s %-8s %9.0f %9.0f %9.0f   (%.0f + %.0f blocks)\n", what, role, f->lib, f->ssl, f->lib + f->ssl,
               f->lib_blocks, f->ssl_blocks);
    else
        printf("  %-34s %-8s %9s %9.0f %9.0f   (%.0f blocks)\n", what, role, "-", f->ssl, f->ssl, f->ssl_blocks);
}

/* ------------------------------------------------------------ carboncopy */

static cc_context *context(int role, struct meter *m)
{
    cc_allocator a = {sizeof a, m, cc_m_malloc, cc_m_realloc, cc_m_free};
    int err;
    cc_context *ctx = cc_context_new(role, &a, &err);
    if (!ctx)
        die("cc_context_new: %s", cc_strerror(err));
    if (role == CC_ROLE_CONSOLE)
        err = cc_context_set_pin_sha256(ctx, t_cert_pin());
    else
        err = cc_context_set_certificate(ctx, t_cert("client.pem"), t_cert("client.key"));
    if (err < 0 || psk_register(ctx, psk_path) < 0)
        die("context: %s", cc_context_errmsg(ctx));
    return ctx;
}

static bool drained(const struct tp_pair *p)
{
    return cc_session_pending(p->con.s) == 0 && cc_session_pending(p->cli.s) == 0;
}

/* Steps the pair until neither end has bytes to send and a few more steps found nothing to read. */
static void settle(struct tp_pair *p)
{
    double t0 = now_s();
    for (int quiet = 0; quiet < 4;) {
        bench_step(p);
        quiet = drained(p) ? quiet + 1 : 0;
        if (quiet < 4)
            tp_pair_poll(p, quiet ? 0 : 100);
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("a session pair did not settle");
    }
}

/* TRAFFIC bytes each way, received whole, then drained. */
static void traffic(struct tp_pair *p, const uint8_t *data)
{
    size_t c_sent = 0, s_sent = 0;
    double t0 = now_s();
    while (p->con.rx_len < TRAFFIC || p->cli.rx_len < TRAFFIC) {
        if (c_sent < TRAFFIC) {
            int r = cc_session_send(p->con.s, 1, data, TRAFFIC);
            if (r < 0 && r != CC_ERR_AGAIN)
                die("cc_session_send: %s", cc_strerror(r));
            if (r >= 0)
                c_sent = TRAFFIC;
        }
        if (s_sent < TRAFFIC) {
            int r = cc_session_send(p->cli.s, 1, data, TRAFFIC);
            if (r < 0 && r != CC_ERR_AGAIN)
                die("cc_session_send: %s", cc_strerror(r));
            if (r >= 0)
                s_sent = TRAFFIC;
        }
        bench_step(p);
        tp_pair_poll(p, 1);
        if (now_s() - t0 > PHASE_DEADLINE_S)
            die("traffic stalled at %zu / %zu bytes", p->con.rx_len, p->cli.rx_len);
    }
    settle(p);
}

/* N pairs established (and with traffic, TRAFFIC bytes each way on every one), then each role's share. */
static void run_cc(cc_context *cctx, cc_context *sctx, int lfd, const struct sockaddr_in *addr, size_t n,
                   bool with_traffic, bool warmup, int where, struct fig *con, struct fig *cli)
{
    struct tp_pair *pairs = calloc(n, sizeof *pairs);
    uint8_t *data = malloc(TRAFFIC);
    if (!pairs || !data)
        die("out of memory");
    memset(data, 0x5a, TRAFFIC);
    struct snap base = snap();
    for (size_t i = 0; i < n; i++) {
        pairs[i].cctx = cctx;
        pairs[i].sctx = sctx;
        bench_connect(&pairs[i], lfd, addr);
        settle(&pairs[i]);
        if (with_traffic)
            traffic(&pairs[i], data);
    }
    for (size_t i = 0; i < n; i++) /* every pair once more, now that all are made */
        settle(&pairs[i]);
    struct snap a = snap();
    sites_mark();
    for (size_t i = 0; i < n; i++) {
        cc_session_free(pairs[i].cli.s);
        pairs[i].cli.s = NULL;
    }
    struct snap b = snap();
    if (where)
        sites_print("client", n, where);
    sites_mark();
    for (size_t i = 0; i < n; i++) {
        cc_session_free(pairs[i].con.s);
        pairs[i].con.s = NULL;
        tp_pair_end(&pairs[i]);
    }
    struct snap c = snap();
    if (where)
        sites_print("console", n, where);
    double dn = (double)n;
    *cli = (struct fig){(double)(a.cli - b.cli) / dn, (double)(a.ssl - b.ssl) / dn,
                        (double)(a.cli_blocks - b.cli_blocks) / dn, (double)(a.ssl_blocks - b.ssl_blocks) / dn};
    *con = (struct fig){(double)(b.con - c.con) / dn, (double)(b.ssl - c.ssl) / dn,
                        (double)(b.con_blocks - c.con_blocks) / dn, (double)(b.ssl_blocks - c.ssl_blocks) / dn};
    /* What freeing gave back must be all the sessions took: else a role's figure hides something. */
    long long kept = (c.con - base.con) + (c.cli - base.cli) + (c.ssl - base.ssl);
    if (!warmup && kept > 4096)
        fprintf(stderr,
                BENCH_NAME
                ": %lld bytes stayed after all sessions were freed (console %lld, client %lld, OpenSSL %lld)\n",
                kept, c.con - base.con, c.cli - base.cli, c.ssl - base.ssl);
    free(pairs);
    free(data);
}

/* --------------------------------------------------------------- raw TLS */

/* The library's SSL_CTX settings (lib/tls/tls.c) on both ends, the same certificate, the pin checked. */
static void raw_ctxs(SSL_CTX **cli, SSL_CTX **srv)
{
    static const char tls12[] = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
    *cli = SSL_CTX_new(TLS_client_method());
    *srv = SSL_CTX_new(TLS_server_method());
    if (!*cli || !*srv)
        die("SSL_CTX_new");
    SSL_CTX *both[2] = {*cli, *srv};
    for (int i = 0; i < 2; i++) {
        SSL_CTX_set_min_proto_version(both[i], TLS1_3_VERSION);
        SSL_CTX_set_options(both[i], SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                         SSL_OP_CIPHER_SERVER_PREFERENCE);
        if (SSL_CTX_set_cipher_list(both[i], tls12) != 1)
            die("SSL_CTX_set_cipher_list");
        SSL_CTX_set_num_tickets(both[i], 0);
    }
    if (SSL_CTX_use_certificate_chain_file(*srv, t_cert("client.pem")) != 1 ||
        SSL_CTX_use_PrivateKey_file(*srv, t_cert("client.key"), SSL_FILETYPE_PEM) != 1)
        die("cannot load %s / %s", t_cert("client.pem"), t_cert("client.key"));
    SSL_CTX_set_verify(*cli, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(*cli, pin_verify, NULL);
}

struct raw {
    SSL *c, *s;
};

static BIO *mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        die("BIO_new");
    BIO_set_mem_eof_return(b, -1);
    return b;
}

/* Moves what one end wrote into the other end's read BIO. */
static void shuttle(SSL *from, SSL *to)
{
    char buf[16384];
    int k;
    while ((k = BIO_read(SSL_get_wbio(from), buf, sizeof buf)) > 0)
        if (BIO_write(SSL_get_rbio(to), buf, k) != k)
            die("BIO_write");
}

/* Once drained, new empty BIOs in place of the grown ones (a memory BIO never shrinks). */
static void fresh_bios(SSL *ssl)
{
    SSL_set_bio(ssl, mem_bio(), mem_bio());
}

static void raw_open(struct raw *r, SSL_CTX *cctx, SSL_CTX *sctx, long mode)
{
    if (!(r->c = SSL_new(cctx)) || !(r->s = SSL_new(sctx)))
        die("SSL_new");
    SSL_set_mode(r->c, mode);
    SSL_set_mode(r->s, mode);
    SSL_set_bio(r->c, mem_bio(), mem_bio());
    SSL_set_bio(r->s, mem_bio(), mem_bio());
    SSL_set_connect_state(r->c);
    SSL_set_accept_state(r->s);
    int cdone = 0, sdone = 0;
    for (int round = 0; !cdone || !sdone; round++) {
        int k;
        if (!cdone && (k = SSL_do_handshake(r->c)) == 1)
            cdone = 1;
        else if (!cdone)
            tls_want(r->c, k);
        shuttle(r->c, r->s);
        if (!sdone && (k = SSL_do_handshake(r->s)) == 1)
            sdone = 1;
        else if (!sdone)
            tls_want(r->s, k);
        shuttle(r->s, r->c);
        if (round > 100)
            die("raw TLS handshake stalled");
    }
    /* the client reads what the server sent after its Finished (nothing with no tickets, but read anyway) */
    char b[1];
    if (SSL_read(r->c, b, 1) > 0 || SSL_read(r->s, b, 1) > 0)
        die("unexpected application data");
    ERR_clear_error();
}

static void raw_read_all(SSL *ssl, size_t want)
{
    static char buf[16384];
    size_t got = 0;
    while (got < want) {
        int k = SSL_read(ssl, buf, sizeof buf);
        if (k <= 0)
            die("raw TLS read stalled at %zu bytes", got);
        got += (size_t)k;
    }
}

static void raw_traffic(struct raw *r, const uint8_t *data)
{
    for (size_t off = 0; off < TRAFFIC; off += 16384) {
        if (SSL_write(r->c, data + off, 16384) != 16384 || SSL_write(r->s, data + off, 16384) != 16384)
            die("SSL_write");
    }
    shuttle(r->c, r->s);
    shuttle(r->s, r->c);
    raw_read_all(r->s, TRAFFIC);
    raw_read_all(r->c, TRAFFIC);
}

/* N raw connections; `floor`: SSL_MODE_RELEASE_BUFFERS and new BIOs once drained (the least OpenSSL holds). */
static void run_raw(SSL_CTX *cctx, SSL_CTX *sctx, size_t n, bool floor, bool with_traffic, struct fig *con,
                    struct fig *cli)
{
    struct raw *r = calloc(n, sizeof *r);
    uint8_t *data = malloc(TRAFFIC);
    if (!r || !data)
        die("out of memory");
    memset(data, 0x5a, TRAFFIC);
    for (size_t i = 0; i < n; i++) {
        raw_open(&r[i], cctx, sctx, floor ? SSL_MODE_RELEASE_BUFFERS : 0);
        if (with_traffic)
            raw_traffic(&r[i], data);
        if (floor) {
            fresh_bios(r[i].c);
            fresh_bios(r[i].s);
        }
    }
    struct snap a = snap();
    for (size_t i = 0; i < n; i++)
        SSL_free(r[i].s);
    struct snap b = snap();
    for (size_t i = 0; i < n; i++)
        SSL_free(r[i].c);
    struct snap c = snap();
    double dn = (double)n;
    *cli = (struct fig){0, (double)(a.ssl - b.ssl) / dn, 0, (double)(a.ssl_blocks - b.ssl_blocks) / dn};
    *con = (struct fig){0, (double)(b.ssl - c.ssl) / dn, 0, (double)(b.ssl_blocks - c.ssl_blocks) / dn};
    free(r);
    free(data);
}

int main(int argc, char **argv)
{
    /* Before anything else allocates through OpenSSL. */
    if (!CRYPTO_set_mem_functions(ssl_m_malloc, ssl_m_realloc, ssl_m_free)) {
        fprintf(stderr, BENCH_NAME ": OpenSSL allocated before CRYPTO_set_mem_functions\n");
        return 1;
    }
    const char *env = getenv("CC_BENCH_SESSIONS");
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : env ? strtoul(env, NULL, 10) : 1000;
    if (n < 1 || n > 5000)
        die("sessions must be 1..5000");
    bench_setup();
    struct sockaddr_in addr;
    int lfd = bench_listen(&addr);
    cc_context *cctx = context(CC_ROLE_CONSOLE, &m_con), *sctx = context(CC_ROLE_CLIENT, &m_cli);
    SSL_CTX *rc, *rs;
    raw_ctxs(&rc, &rs);

    /* Warm-up: what OpenSSL and the contexts make once, on first use, is not any session's. */
    struct fig con, cli, rcon, rcli; /* the warm-up's, not shown */
    run_cc(cctx, sctx, lfd, &addr, 4, true, true, 0, &con, &cli);
    run_raw(rc, rs, 4, false, true, &rcon, &rcli);

    printf("memory: bytes held per established session (N = %zu pairs, TLS 1.3, EC P-256, psk auth), counted by\n"
           "cc_allocator (library) and CRYPTO_set_mem_functions (OpenSSL): requested bytes, not malloc's overhead\n",
           n);
    static const struct {
        const char *what;
        bool traffic;
    } phase[] = {{"carboncopy idle", false}, {"carboncopy after 64 KiB each way", true}};
    static const struct {
        const char *what;
        bool floor, traffic;
    } rphase[] = {{"raw OpenSSL idle", false, false},
                  {"raw OpenSSL after 64 KiB each way", false, true},
                  {"raw floor idle", true, false},
                  {"raw floor after 64 KiB each way", true, true}};
    struct fig f[6][2];            /* [phase][console, client] */
    for (size_t i = 0; i < 2; i++) /* the idle phase also says where OpenSSL's share is */
        run_cc(cctx, sctx, lfd, &addr, n, phase[i].traffic, false, i == 0 ? 10 : 0, &f[i][0], &f[i][1]);
    for (size_t i = 0; i < 4; i++)
        run_raw(rc, rs, n, rphase[i].floor, rphase[i].traffic, &f[2 + i][0], &f[2 + i][1]);
    printf("  %-34s %-8s %9s %9s %9s\n", "", "role", "library", "OpenSSL", "total");
    for (size_t i = 0; i < 6; i++) {
        const char *what = i < 2 ? phase[i].what : rphase[i - 2].what;
        print_row(what, "console", &f[i][0], i < 2);
        print_row(what, "client", &f[i][1], i < 2);
    }
    printf("  (raw: memory BIOs, the library's SSL_CTX settings; floor: SSL_MODE_RELEASE_BUFFERS and new\n"
           "   BIOs once drained; console = TLS client, client = TLS server)\n");
    SSL_CTX_free(rc);
    SSL_CTX_free(rs);
    cc_context_free(cctx);
    cc_context_free(sctx);
    close(lfd);
    return 0;
}
