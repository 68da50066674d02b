/* test-hardening.c -- what a hostile peer cannot make a session do: buffer
 * pongs without end, learn why a proof failed, fake a success, guess fast. */
#include "../examples/psk.h"
#include "harness.h"
#include "pair.h"

#include <carboncopy.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char pskfile[600];

/* ---- memory: the library's bytes through its allocator hooks, OpenSSL's
 * through CRYPTO_set_mem_functions (set before OpenSSL allocates anything) */
struct hdr {
    size_t n;
    size_t pad;
};
static atomic_size_t ossl_live, ossl_peak;
static void *o_malloc(size_t n, const char *f, int l)
{
    (void)f, (void)l;
    struct hdr *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->n = n;
    size_t now = atomic_fetch_add(&ossl_live, n) + n;
    size_t pk = atomic_load(&ossl_peak);
    while (now > pk && !atomic_compare_exchange_weak(&ossl_peak, &pk, now))
        ;
    return h + 1;
}
static void o_free(void *p, const char *f, int l)
{
    (void)f, (void)l;
    if (!p)
        return;
    struct hdr *h = (struct hdr *)p - 1;
    atomic_fetch_sub(&ossl_live, h->n);
    free(h);
}
static void *o_realloc(void *p, size_t n, const char *f, int l)
{
    if (!p)
        return o_malloc(n, f, l);
    void *q = o_malloc(n, f, l);
    if (!q)
        return NULL;
    struct hdr *h = (struct hdr *)p - 1;
    memcpy(q, p, h->n < n ? h->n : n);
    o_free(p, f, l);
    return q;
}

static size_t lib_live, lib_peak; /* the client context's sessions run on the test's thread */
static void *l_malloc(size_t n, void *u)
{
    (void)u;
    struct hdr *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->n = n;
    lib_live += n;
    if (lib_live > lib_peak)
        lib_peak = lib_live;
    return h + 1;
}
static void l_free(void *p, void *u)
{
    (void)u;
    if (!p)
        return;
    struct hdr *h = (struct hdr *)p - 1;
    lib_live -= h->n;
    free(h);
}
static void *l_realloc(void *p, size_t n, void *u)
{
    if (!p)
        return l_malloc(n, u);
    void *q = l_malloc(n, u);
    if (!q)
        return NULL;
    struct hdr *h = (struct hdr *)p - 1;
    memcpy(q, p, h->n < n ? h->n : n);
    l_free(p, u);
    return q;
}
static const cc_allocator counting = {sizeof(cc_allocator), NULL, l_malloc, l_realloc, l_free};

static cc_context *client_ctx(const cc_allocator *alloc)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, alloc, NULL);
    if (!c || cc_context_set_certificate(c, t_cert("client.pem"), t_cert("client.key")) != CC_OK ||
        psk_register(c, pskfile) != CC_OK) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static cc_context *console_ctx(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    if (!c || cc_context_set_ca_file(c, t_cert("ca.pem")) != CC_OK) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

/* ---- 1. a ping flood from a peer that never reads ---- */

struct flood {
    int fd;
    size_t sent; /* bytes of PING frames written */
};

/* A TLS console that completes the handshake and then only sends PINGs
 * (its own frame bytes, not the library's codec), never reading. */
static void *flooder(void *arg)
{
    struct flood *f = arg;
    static const uint8_t pre[8] = {'C', 'C', 'P', 'Y', 2, 2, 0, 1};
    uint8_t peer[8];
    if (write(f->fd, pre, 8) != 8 || read(f->fd, peer, 8) != 8)
        return NULL;
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(c);
    SSL_set_fd(ssl, f->fd);
    if (SSL_connect(ssl) == 1) {
        uint8_t batch[1024 * 16];
        for (size_t i = 0; i + 16 <= sizeof batch; i += 16) {
            static const uint8_t ping[16] = {6, 0, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
            memcpy(batch + i, ping, 16);
        }
        /* at most 64 MiB; the client cuts us off long before */
        while (f->sent < (64u << 20) && SSL_write(ssl, batch, sizeof batch) > 0)
            f->sent += sizeof batch;
    }
    SSL_free(ssl);
    SSL_CTX_free(c);
    return NULL;
}

static void t_ping_flood_is_cut_off(void)
{
    int sv[2];
    cc_context *ctx = client_ctx(&counting);
    T_ASSERT(ctx && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct tp_side cli = {0};
    cli.lic_count = 2;
    cli.s = cc_session_new(ctx, NULL);
    cc_session_set_event_callback(cli.s, tp_on_event, &cli);
    T_EQ(cc_session_accept_fd(cli.s, sv[0]), 0);
    size_t lib_before = lib_live, ossl_before = atomic_load(&ossl_live);
    lib_peak = lib_live;
    atomic_store(&ossl_peak, ossl_before);
    struct flood f = {sv[1], 0};
    pthread_t t;
    pthread_create(&t, NULL, flooder, &f);
    struct tp_side none = {0};
    none.ended = true;
    tp_drive(&cli, &none, tp_both_ended, 10000);
    int res = cli.result;
    char detail[600];
    snprintf(detail, sizeof detail, "%s", cc_session_errmsg(cli.s));
    cc_session_free(cli.s);
    shutdown(sv[1], SHUT_RDWR); /* the flooder's write fails now */
    pthread_join(t, NULL);
    close(sv[1]);
    cc_context_free(ctx);
    free(cli.rx);
    size_t lib_grew = lib_peak - lib_before, ossl_grew = atomic_load(&ossl_peak) - ossl_before;
    printf("# flood: %zu KiB of pings sent; peak growth: library %zu KiB, OpenSSL %zu KiB\n", f.sent >> 10,
           lib_grew >> 10, ossl_grew >> 10);
    T_EQ(res, CC_ERR_PROTOCOL);
    T_CONTAINS(detail, "pings without reading");
    /* doc/SECURITY.md: an unauthenticated session holds at most 384 KiB of the
     * library's and 256 KiB of OpenSSL's memory, whatever the peer sends */
    T_ASSERT(lib_grew <= 384u << 10);
    T_ASSERT(ossl_grew <= 256u << 10);
}

/* ---- 2. one failure for every cause, unless the client discloses ---- */

static int fail_code;         /* what the client side of "failmech" refuses with */
static int client_set_mutual; /* what cc_auth_set_mutual() said on the client */
static int fm_start(void *md, cc_auth *a, void **st)
{
    (void)md, (void)a;
    *st = NULL;
    return CC_OK;
}
static int fm_step(void *st, cc_auth *a, const uint8_t *in, size_t n)
{
    (void)st, (void)in, (void)n;
    if (cc_auth_role(a) == CC_ROLE_CONSOLE) {
        int r = cc_auth_set_output(a, "hi", 2);
        return r < 0 ? r : CC_AUTH_CONTINUE;
    }
    client_set_mutual = cc_auth_set_mutual(a); /* only a console can say the client proved itself */
    return cc_auth_set_error(a, fail_code, "failmech: account sercret-account-name is known here");
}
static void fm_end(void *st)
{
    (void)st;
}
static const cc_authenticator failmech = {sizeof failmech, "failmech", fm_start, fm_step, fm_end, NULL, NULL, 0};

static void one_failure(int code, int disclose, int *con_code, char *con_text, size_t n, int *cli_code)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL);
    cc_context_add_authenticator(p.cctx, &failmech, NULL);
    cc_context_add_authenticator(p.sctx, &failmech, NULL);
    cc_context_set_auth_disclosure(p.sctx, disclose);
    p.cli.lic_count = 2;
    fail_code = code;
    *con_code = *cli_code = 1;
    if (tp_pair_open(&p, "tester", NULL) == 0 && tp_drive(&p.con, &p.cli, tp_both_ended, 5000)) {
        *con_code = p.con.result;
        *cli_code = p.cli.result;
        snprintf(con_text, n, "%s", cc_session_errmsg(p.con.s));
    }
    tp_pair_free(&p);
}

static void t_one_failure_for_every_cause(void)
{
    static const int hidden[] = {CC_ERR_AUTH_BAD_CREDENTIALS, CC_ERR_AUTH_UNKNOWN_USER, CC_ERR_AUTH_DISABLED,
                                 CC_ERR_AUTH_EXPIRED, CC_ERR_AUTH};
    char first[600] = "", text[600];
    int con, cli;
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
        one_failure(hidden[i], 0, &con, text, sizeof text, &cli);
        T_EQ(cli, hidden[i]); /* the client knows the cause */
        T_EQ(con, CC_ERR_AUTH_BAD_CREDENTIALS);
        T_ASSERT(!strstr(text, "sercret-account-name"));
        if (!first[0])
            snprintf(first, sizeof first, "%s", text);
        T_STREQ(text, first); /* the same text, whatever the cause */
    }
    T_CONTAINS(first, "user name or password is incorrect");
    T_EQ(client_set_mutual, CC_ERR_STATE);
    /* a host that discloses: the console learns the cause */
    one_failure(CC_ERR_AUTH_DISABLED, 1, &con, text, sizeof text, &cli);
    T_EQ(con, CC_ERR_AUTH_DISABLED);
    T_CONTAINS(text, "sercret-account-name");
    /* what does not tell accounts apart still travels as it is */
    one_failure(CC_ERR_AUTH_CHANNEL_BINDING, 0, &con, text, sizeof text, &cli);
    T_EQ(con, CC_ERR_AUTH_CHANNEL_BINDING);
    T_EQ(cc_context_set_auth_disclosure(NULL, 1), CC_ERR_INVALID);
    cc_context *c = console_ctx();
    T_EQ(cc_context_set_auth_disclosure(c, 1), CC_ERR_CONFIG); /* a client setting */
    cc_context_free(c);
}

static int mech_pair(struct tp_pair *p, const cc_authenticator *mech, int require, tp_done_fn done);

/* ---- 3. a client cannot tell the console it succeeded ---- */

/* Console side: like NTLM's initiator, any token makes it answer and finish.
 * Client side (the liar): DONE at once, with a token in AUTH_RESULT. */
static int liar_mutual_flag; /* the console side claims it proved the client */
static int lm_step(void *st, cc_auth *a, const uint8_t *in, size_t n)
{
    (void)st;
    if (cc_auth_role(a) == CC_ROLE_CONSOLE) {
        if (!in) {
            int r = cc_auth_set_output(a, "negotiate", 9);
            return r < 0 ? r : CC_AUTH_CONTINUE;
        }
        if (liar_mutual_flag)
            return CC_AUTH_DONE; /* finished, nothing more to say, but never proved the client */
        int r = cc_auth_set_output(a, "authenticate", 12);
        return r < 0 ? r : CC_AUTH_DONE;
    }
    (void)n;
    int r = cc_auth_set_identity(a, "CORP\\Administrator");
    if (r == CC_OK)
        r = cc_auth_set_output(a, "challenge", 9);
    return r < 0 ? r : CC_AUTH_DONE;
}
static const cc_authenticator liar = {sizeof liar, "liar", fm_start, lm_step, fm_end, NULL, NULL, 0};
static const cc_authenticator liar_m = {sizeof liar_m, "liar", fm_start, lm_step,
                                        fm_end,        NULL,   NULL,     CC_AUTH_FLAG_MUTUAL};

static void t_no_success_without_the_exchange(void)
{
    struct tp_pair p;
    liar_mutual_flag = 0;
    T_EQ(mech_pair(&p, &liar, 0, tp_both_ended), 0);
    T_EQ(p.con.result, CC_ERR_AUTH_MUTUAL);
    T_CONTAINS(cc_session_errmsg(p.con.s), "before liar's exchange was complete");
    T_ASSERT(cc_session_identity(p.con.s) == NULL);
    tp_pair_free(&p);
}

/* ---- 4. mutual authentication: reported, and required on demand ---- */

/* A pair whose contexts both carry `mech`; the console requires mutual
 * authentication when `require` is set. Drives it until `done`. */
static int mech_pair(struct tp_pair *p, const cc_authenticator *mech, int require, tp_done_fn done)
{
    memset(p, 0, sizeof *p);
    p->cctx = console_ctx();
    p->sctx = client_ctx(NULL);
    cc_context_add_authenticator(p->cctx, mech, NULL);
    cc_context_add_authenticator(p->sctx, mech, NULL);
    cc_context_set_require_mutual(p->cctx, require);
    p->cli.lic_count = 2;
    if (tp_pair_open(p, "tester", NULL) != 0 || !tp_drive(&p->con, &p->cli, done, 5000))
        return -1;
    return 0;
}

static void t_mutual_reported_and_required(void)
{
    /* psk proves the client: reported as mutual, and accepted when required */
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL);
    T_EQ(psk_register(p.cctx, pskfile), CC_OK);
    T_EQ(cc_context_set_require_mutual(p.cctx, 1), CC_OK);
    p.cli.lic_count = 2;
    T_EQ(tp_pair_open(&p, "tester", NULL), 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_auth_mutual(p.con.s), 1);
    tp_pair_free(&p);

    /* a mechanism that claims CC_AUTH_FLAG_MUTUAL but proves nothing: refused when required */
    liar_mutual_flag = 1;
    T_EQ(mech_pair(&p, &liar_m, 1, tp_both_ended), 0);
    T_EQ(p.con.result, CC_ERR_AUTH_MUTUAL);
    T_CONTAINS(cc_session_errmsg(p.con.s), "requires mutual authentication");
    tp_pair_free(&p);

    /* the same without the requirement: established, reported as not mutual */
    T_EQ(mech_pair(&p, &liar_m, 0, tp_both_established), 0);
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_auth_mutual(p.con.s), 0);
    T_EQ(cc_session_auth_mutual(p.cli.s), CC_ERR_STATE); /* a console's question */
    tp_pair_free(&p);

    /* required, but no mechanism can prove the client: a configuration error at once */
    cc_context *c = console_ctx();
    cc_context_add_authenticator(c, &liar, NULL);
    cc_context_set_require_mutual(c, 1);
    int err = 0;
    T_ASSERT(cc_session_new(c, &err) == NULL);
    T_EQ(err, CC_ERR_CONFIG);
    T_CONTAINS(cc_context_errmsg(c), "no authenticator proves the client");
    cc_context_free(c);
}

/* ---- 5. online guessing: failed proofs make the same source wait ---- */

/* One console over loopback TCP; returns its result (0 established). *held
 * says whether the client's session, right after accepting, asked to wait. */
static int tcp_try(cc_context *cctx, cc_context *sctx, bool *held, int32_t *wait_ms)
{
    struct tp_pair p = {0};
    p.cctx = cctx;
    p.sctx = sctx;
    p.cli.lic_count = 2;
    struct sockaddr_in addr;
    int lfd = t_listen(&addr);
    int r = 1;
    *held = false;
    *wait_ms = -1;
    if (lfd >= 0 && tp_pair_connect(&p, lfd, &addr, "tester", NULL) == 0) {
        bool looked = false;
        for (int i = 0; i < 2000; i++) {
            tp_pair_step(&p);
            if (p.cli.s && !looked) {
                looked = true;
                int m = cc_session_step(p.cli.s);
                *held = m > 0 && !(m & CC_WANT_READ);
                *wait_ms = cc_session_timeout_ms(p.cli.s);
            }
            if (tp_both_established(&p.con, &p.cli) && p.cli.s) {
                r = p.con.ended ? p.con.result : 0;
                break;
            }
            tp_pair_poll(&p, 20);
        }
    }
    p.cctx = p.sctx = NULL; /* the caller's */
    tp_pair_free(&p);
    if (lfd >= 0)
        close(lfd);
    return r;
}

static void t_failed_proofs_slow_the_source(void)
{
    /* "bad" consoles offer only failmech, whose client side refuses every proof */
    cc_context *good = console_ctx(), *bad = console_ctx(), *sctx = client_ctx(NULL);
    T_ASSERT(good && bad && sctx);
    psk_register(good, pskfile);
    cc_context_add_authenticator(bad, &failmech, NULL);
    cc_context_add_authenticator(sctx, &failmech, NULL);
    fail_code = CC_ERR_AUTH_BAD_CREDENTIALS;
    bool held;
    int32_t wait_ms;
    /* a clean source is served at once */
    T_EQ(tcp_try(good, sctx, &held, &wait_ms), 0);
    T_ASSERT(!held);
    /* two failed proofs from 127.0.0.1 */
    T_ASSERT(tcp_try(bad, sctx, &held, &wait_ms) != 0);
    T_ASSERT(tcp_try(bad, sctx, &held, &wait_ms) != 0);
    T_ASSERT(held); /* the second already waited 250 ms */
    /* the next console from there waits (500 ms now), then is served: slowed, not locked out */
    T_EQ(tcp_try(good, sctx, &held, &wait_ms), 0);
    T_ASSERT(held);
    T_ASSERT(wait_ms > 250 && wait_ms <= 500);
    /* its success cleared the source */
    T_EQ(tcp_try(good, sctx, &held, &wait_ms), 0);
    T_ASSERT(!held);
    cc_context_free(good);
    cc_context_free(bad);
    cc_context_free(sctx);
}

/* ---- 6. a peer that stops reading cannot hold a closing session ---- */

static bool cli_ended(struct tp_side *con, struct tp_side *cli)
{
    (void)con;
    return cli->ended;
}

static void t_close_has_a_deadline(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL);
    psk_register(p.cctx, pskfile);
    p.cli.lic_count = 2;
    T_EQ(tp_pair_open(&p, "tester", NULL), 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    T_EQ(cc_session_pause_reading(p.con.s, 1), CC_OK); /* the console reads nothing more */
    static uint8_t chunk[16384];
    int r = CC_OK;
    /* fill the client's send buffer and the socket's */
    for (int i = 0; i < 400 && r != CC_ERR_AGAIN; i++) {
        r = cc_session_send(p.cli.s, 1, chunk, sizeof chunk);
        tp_step(&p.cli);
    }
    T_EQ(r, CC_ERR_AGAIN);
    T_EQ(cc_session_close(p.cli.s, 0, "done"), CC_OK);
    uint64_t t0 = t_now_ms();
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_ended, 20000));
    T_EQ(p.cli.result, CC_ERR_TIMEOUT);
    T_CONTAINS(cc_session_errmsg(p.cli.s), "did not take the last");
    T_ASSERT(t_now_ms() - t0 >= 9000); /* it waited its drain time, not less */
    tp_pair_free(&p);
}

int main(void)
{
    /* before OpenSSL allocates anything */
    CRYPTO_set_mem_functions(o_malloc, o_realloc, o_free);
    signal(SIGPIPE, SIG_IGN); /* the flooder writes on after the client has hung up */
    if (t_make_certs() != 0) {
        printf("not ok - cannot make test certificates\n");
        return 1;
    }
    snprintf(pskfile, sizeof pskfile, "%s/psk", t_tmpdir());
    FILE *f = fopen(pskfile, "w");
    if (!f)
        return 1;
    fputs("0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    t_run("a ping flood from a peer that never reads is cut off, in bounded memory", t_ping_flood_is_cut_off);
    t_run("a console learns one failure for every cause, unless the client discloses", t_one_failure_for_every_cause);
    t_run("a client cannot report success before the console's exchange is complete",
          t_no_success_without_the_exchange);
    t_run("mutual authentication is reported, and refused when required but absent", t_mutual_reported_and_required);
    t_run("failed proofs make the next console from that address wait; a success clears it",
          t_failed_proofs_slow_the_source);
    t_run("a closing session gives a peer that stops reading 10 s, then fails", t_close_has_a_deadline);
    return t_done();
}
