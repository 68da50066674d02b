/* test-flights.c -- protocol version 2's flight order (doc/PROTOCOL.md 4.1):
 * both sessions on host transports that log every write, so a test counts the
 * flights each side sends before it is established; the mechanism guess and
 * its fallback; what a version 1 peer is told. Numbers of milliseconds are
 * the benchmark's business (bench/flights.c); here only the order. */
#define _GNU_SOURCE
#include "harness.h"
#include "pair.h"

#include "../examples/psk.h"

#include <carboncopy.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static char pskfile[600];

/* ---- the write log: 'C' for a console write, 'S' for a client write ---- */

#define LOG_MAX 256
static char wlog[LOG_MAX + 1];
static size_t wlog_len[LOG_MAX];
static uint8_t first_bytes[2][32]; /* the first write of each side, its start */
static size_t nlog;

struct logged_fd {
    int fd;
    char who;
};

static long log_send(void *user, const uint8_t *data, size_t len)
{
    struct logged_fd *l = user;
    long w = t_fd_send(&l->fd, data, len);
    if (w > 0 && nlog < LOG_MAX) {
        int side = l->who == 'S';
        bool first = !strchr(wlog, l->who);
        if (first)
            memcpy(first_bytes[side], data, (size_t)w < 32 ? (size_t)w : 32);
        wlog_len[nlog] = (size_t)w;
        wlog[nlog++] = l->who;
        wlog[nlog] = 0;
    }
    return w;
}

static long log_recv(void *user, uint8_t *buf, size_t len)
{
    struct logged_fd *l = user;
    return t_fd_recv(&l->fd, buf, len);
}

/* The log with the writes of one flight collapsed: "CSCS" for two round trips. */
static const char *shape(void)
{
    static char out[LOG_MAX + 1];
    size_t o = 0;
    for (size_t i = 0; i < nlog; i++)
        if (i == 0 || wlog[i] != wlog[i - 1])
            out[o++] = wlog[i];
    out[o] = 0;
    return out;
}

/* ---- test mechanisms ---- */

/* "three": three tokens then the result, the shape of NTLM (NEGOTIATE, CHALLENGE, AUTHENTICATE). */
static int m_start(void *md, cc_auth *a, void **st)
{
    *st = calloc(1, sizeof(int));
    return *st ? CC_OK : CC_ERR_NOMEM;
}
static int three_step(void *st, cc_auth *a, const uint8_t *in, size_t n)
{
    int *step = st;
    if (cc_auth_role(a) == CC_ROLE_CONSOLE) {
        if ((*step)++ == 0)
            return cc_auth_set_output(a, "one", 3) < 0 ? CC_ERR_NOMEM : CC_AUTH_CONTINUE;
        return cc_auth_set_output(a, "three", 5) < 0 ? CC_ERR_NOMEM : CC_AUTH_DONE;
    }
    if ((*step)++ == 0)
        return cc_auth_set_output(a, "two", 3) < 0 ? CC_ERR_NOMEM : CC_AUTH_CONTINUE;
    return cc_auth_set_identity(a, "three:ok") < 0 ? CC_ERR_NOMEM : CC_AUTH_DONE;
}
static void m_end(void *st)
{
    free(st);
}

/* "broken": the console's first step fails, every time it is asked (counted). */
static int broken_calls;
static int broken_step(void *st, cc_auth *a, const uint8_t *in, size_t n)
{
    broken_calls++;
    return cc_auth_set_error(a, CC_ERR_AUTH_KDC_UNREACHABLE, "broken: no server for this mechanism");
}

static const cc_authenticator three = {sizeof three, "three", m_start, three_step, m_end, NULL, NULL, 0};
static const cc_authenticator broken = {sizeof broken, "broken", m_start, broken_step, m_end, NULL, NULL, 0};

/* ---- the pair ---- */

static cc_context *ctx_with(int role, const cc_authenticator *first, const cc_authenticator *second, bool with_psk)
{
    cc_context *c = cc_context_new(role, NULL, NULL);
    if (!c)
        return NULL;
    int r = role == CC_ROLE_CONSOLE ? cc_context_set_ca_file(c, t_cert("ca.pem"))
                                    : cc_context_set_certificate(c, t_cert("client.pem"), t_cert("client.key"));
    if (r == CC_OK && first)
        r = cc_context_add_authenticator(c, first, NULL);
    if (r == CC_OK && second)
        r = cc_context_add_authenticator(c, second, NULL);
    if (r == CC_OK && with_psk)
        r = psk_register(c, pskfile);
    if (r != CC_OK) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static const char *run_user = "tester"; /* the console's user name (kerberos: the cache's principal) */

struct run {
    struct tp_side con, cli;
    struct logged_fd lc, ls;
    bool established;
};

/* Both sessions on logged host transports over a socketpair, driven until both ended or established. */
static bool run_pair(struct run *r, cc_context *cctx, cc_context *sctx)
{
    int sv[2];
    memset(r, 0, sizeof *r);
    nlog = 0;
    wlog[0] = 0;
    memset(first_bytes, 0, sizeof first_bytes);
    if (!cctx || !sctx || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return false;
    r->lc = (struct logged_fd){sv[1], 'C'};
    r->ls = (struct logged_fd){sv[0], 'S'};
    r->cli.lic_count = 25;
    r->cli.lic_in_use = 7;
    r->con.s = cc_session_new(cctx, NULL);
    r->cli.s = cc_session_new(sctx, NULL);
    if (!r->con.s || !r->cli.s)
        return false;
    cc_session_set_event_callback(r->con.s, tp_on_event, &r->con);
    cc_session_set_event_callback(r->cli.s, tp_on_event, &r->cli);
    r->con.poll_fd = &r->lc.fd;
    r->cli.poll_fd = &r->ls.fd;
    if (cc_session_set_credentials(r->con.s, run_user, NULL, NULL) != CC_OK ||
        cc_session_set_transport(r->cli.s, log_send, log_recv, &r->ls, NULL) != CC_OK ||
        cc_session_set_transport(r->con.s, log_send, log_recv, &r->lc, "localhost") != CC_OK)
        return false;
    tp_drive(&r->con, &r->cli, tp_both_established, 10000);
    r->established =
        cc_session_state(r->con.s) == CC_STATE_ESTABLISHED && cc_session_state(r->cli.s) == CC_STATE_ESTABLISHED;
    return true;
}

static void run_free(struct run *r, cc_context *cctx, cc_context *sctx)
{
    cc_session_free(r->con.s);
    cc_session_free(r->cli.s);
    close(r->lc.fd);
    close(r->ls.fd);
    free(r->con.rx);
    free(r->cli.rx);
    cc_context_free(cctx);
    cc_context_free(sctx);
}

/* ---- the tests ---- */

static void t_psk_two_round_trips(void)
{
    struct run r;
    cc_context *cctx = ctx_with(CC_ROLE_CONSOLE, NULL, NULL, true), *sctx = ctx_with(CC_ROLE_CLIENT, NULL, NULL, true);
    bool ok = run_pair(&r, cctx, sctx);
    char sh[LOG_MAX + 1];
    snprintf(sh, sizeof sh, "%s", shape());
    printf("# psk writes: %s (flights %s)\n", wlog, sh);
    bool est = r.established;
    run_free(&r, cctx, sctx);
    T_ASSERT(ok && est);
    /* the console's first write: its preamble and, in the same write, the ClientHello (a TLS handshake record) */
    T_ASSERT(memcmp(first_bytes[0], "CCPY\x02\x02\x00\x01", 8) == 0);
    T_EQ(first_bytes[0][8], 0x16);
    T_ASSERT(wlog_len[0] > 8);
    /* the client's first write: its preamble and the server flight behind it */
    T_ASSERT(memcmp(first_bytes[1], "CCPY\x02\x02\x00\x01", 8) == 0);
    T_EQ(first_bytes[1][8], 0x16);
    /* two data round trips: the console sends twice and the client answers twice, nothing more */
    T_STREQ(sh, "CSCS");
    T_EQ(wlog[0], 'C');
    T_EQ(wlog[1], 'S'); /* preamble + ServerHello .. Finished: one write */
}

static void t_three_tokens_three_round_trips(void)
{
    struct run r;
    cc_context *cctx = ctx_with(CC_ROLE_CONSOLE, &three, NULL, false),
               *sctx = ctx_with(CC_ROLE_CLIENT, &three, NULL, false);
    bool ok = run_pair(&r, cctx, sctx);
    char sh[LOG_MAX + 1];
    snprintf(sh, sizeof sh, "%s", shape());
    printf("# three-token writes: %s\n", wlog);
    bool est = r.established;
    char id[64] = "";
    if (ok && cc_session_identity(r.con.s))
        snprintf(id, sizeof id, "%s", cc_session_identity(r.con.s));
    run_free(&r, cctx, sctx);
    T_ASSERT(ok && est);
    T_STREQ(sh, "CSCSCS"); /* NTLM's shape: three round trips */
    T_STREQ(id, "three:ok");
}

/* The console prefers a mechanism the client lacks: still established, one round trip later. */
static void t_wrong_guess_costs_one_round_trip(void)
{
    struct run r;
    cc_context *cctx = ctx_with(CC_ROLE_CONSOLE, &three, NULL, true),
               *sctx = ctx_with(CC_ROLE_CLIENT, NULL, NULL, true);
    bool ok = run_pair(&r, cctx, sctx);
    char sh[LOG_MAX + 1];
    snprintf(sh, sizeof sh, "%s", shape());
    printf("# wrong-guess writes: %s\n", wlog);
    bool est = r.established;
    char mech[32] = "";
    if (ok && cc_session_mechanism(r.cli.s))
        snprintf(mech, sizeof mech, "%s", cc_session_mechanism(r.cli.s));
    run_free(&r, cctx, sctx);
    T_ASSERT(ok && est);
    T_STREQ(mech, "psk");
    T_STREQ(sh, "CSCSCS"); /* psk's two, plus one for the guess the client did not take */
}

/* The client's own order decides, as in version 1: a guess the client has but ranks lower is not taken. */
static void t_client_order_beats_the_guess(void)
{
    struct run r;
    cc_context *cctx = ctx_with(CC_ROLE_CONSOLE, &three, NULL, true),
               *sctx = ctx_with(CC_ROLE_CLIENT, NULL, NULL, true);
    if (sctx && cc_context_add_authenticator(sctx, &three, NULL) != CC_OK) { /* client: psk, then three */
        cc_context_free(sctx);
        sctx = NULL;
    }
    bool ok = run_pair(&r, cctx, sctx);
    bool est = r.established;
    char mech[32] = "";
    if (ok && cc_session_mechanism(r.con.s))
        snprintf(mech, sizeof mech, "%s", cc_session_mechanism(r.con.s));
    run_free(&r, cctx, sctx);
    T_ASSERT(ok && est);
    T_STREQ(mech, "psk");
}

/* The guessed mechanism cannot produce its first token: the HELLO goes without a guess and the
 * client's choice goes on; if the client chooses it anyway, the session fails with its error, once. */
static void t_failed_guess(void)
{
    struct run r;
    broken_calls = 0;
    cc_context *cctx = ctx_with(CC_ROLE_CONSOLE, &broken, NULL, true),
               *sctx = ctx_with(CC_ROLE_CLIENT, NULL, NULL, true);
    bool ok = run_pair(&r, cctx, sctx);
    bool est = r.established;
    char sh[LOG_MAX + 1];
    snprintf(sh, sizeof sh, "%s", shape());
    run_free(&r, cctx, sctx);
    T_ASSERT(ok && est);
    T_EQ(broken_calls, 1);
    T_STREQ(sh, "CSCSCS"); /* the client's psk starts one round trip later */

    broken_calls = 0;
    cctx = ctx_with(CC_ROLE_CONSOLE, &broken, NULL, true);
    sctx = ctx_with(CC_ROLE_CLIENT, &broken, NULL, false);
    ok = run_pair(&r, cctx, sctx);
    tp_drive(&r.con, &r.cli, tp_both_ended, 5000);
    int rc = r.con.result, rs = r.cli.result;
    char detail[600];
    snprintf(detail, sizeof detail, "%s", ok ? cc_session_errmsg(r.con.s) : "");
    run_free(&r, cctx, sctx);
    T_ASSERT(ok);
    T_EQ(broken_calls, 1);
    T_EQ(rc, CC_ERR_AUTH_KDC_UNREACHABLE);
    T_EQ(rs, CC_ERR_AUTH_KDC_UNREACHABLE); /* told in the console's CLOSE */
    T_CONTAINS(detail, "no server for this mechanism");
}

/* Kerberos against a throw-away KDC: the AP-REQ rides with the HELLO, the AP-REP with AUTH_RESULT. */
static int krb_ready = -1; /* -1 not tried, 0 no KDC, 1 ready */
static bool krb_setup(void)
{
    if (krb_ready >= 0)
        return krb_ready == 1;
    krb_ready = 0;
    char cc[800];
    if (t_kdc_start("CC.TEST") != 0 ||
        t_sh("K='%s'; D='%s'; bash $K addprinc $D alice alice-pw >/dev/null && "
             "bash $K addprinc $D host/localhost >/dev/null && bash $K ktadd $D $D/service.keytab host/localhost "
             ">/dev/null && bash $K kinit $D alice alice-pw -c FILE:$D/alice.cc",
             t_kdc_script(), t_kdc_dir()) != 0)
        return false;
    snprintf(cc, sizeof cc, "FILE:%s/alice.cc", t_kdc_dir());
    setenv("KRB5CCNAME", cc, 1);
    krb_ready = 1;
    return true;
}

static void t_kerberos_two_round_trips(void)
{
    if (!krb_setup()) {
        printf("# skip: no KDC (krb5kdc missing?)\n");
        return;
    }
    char kt[700];
    snprintf(kt, sizeof kt, "%s/service.keytab", t_kdc_dir());
    cc_context *cctx = ctx_with(CC_ROLE_CONSOLE, NULL, NULL, false),
               *sctx = ctx_with(CC_ROLE_CLIENT, NULL, NULL, false);
    if (cctx && cc_context_add_builtin_authenticator(cctx, "kerberos") != CC_OK)
        cctx = (cc_context_free(cctx), NULL);
    if (sctx && (cc_context_add_builtin_authenticator(sctx, "kerberos") != CC_OK ||
                 cc_context_set_auth_option(sctx, "kerberos", "keytab", kt) != CC_OK))
        sctx = (cc_context_free(sctx), NULL);
    struct run r;
    run_user = "alice";
    bool ok = run_pair(&r, cctx, sctx);
    run_user = "tester";
    char sh[LOG_MAX + 1];
    snprintf(sh, sizeof sh, "%s", shape());
    printf("# kerberos writes: %s; console: %s; client: %s\n", wlog, ok ? cc_session_errmsg(r.con.s) : "",
           ok ? cc_session_errmsg(r.cli.s) : "");
    bool est = r.established;
    int mutual = ok ? cc_session_auth_mutual(r.con.s) : -1;
    char id[64] = "";
    if (ok && cc_session_identity(r.cli.s))
        snprintf(id, sizeof id, "%s", cc_session_identity(r.cli.s));
    run_free(&r, cctx, sctx);
    T_ASSERT(ok && est);
    T_STREQ(id, "alice@CC.TEST");
    T_EQ(mutual, 1);     /* the AP-REP in AUTH_RESULT proved the client */
    T_STREQ(sh, "CSCS"); /* two round trips, as psk */
}

/* A version 1 peer gets a clear refusal either way, with both sides' versions in the detail. */
static void t_version_1_peer_refused(void)
{
    static const uint8_t v1[8] = {'C', 'C', 'P', 'Y', 1, 1, 0, 1};
    /* a version 1 console against this client: the client says which versions it speaks, then leaves */
    cc_context *sctx = ctx_with(CC_ROLE_CLIENT, NULL, NULL, true);
    int sv[2];
    T_ASSERT(sctx && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct tp_side cli = {0}, none = {0};
    none.ended = true;
    cli.s = cc_session_new(sctx, NULL);
    cc_session_set_event_callback(cli.s, tp_on_event, &cli);
    T_EQ(cc_session_accept_fd(cli.s, sv[0]), CC_OK);
    T_EQ(write(sv[1], v1, 8), 8);
    tp_drive(&cli, &none, tp_both_ended, 5000);
    uint8_t got[16] = {0};
    struct pollfd pfd = {sv[1], POLLIN, 0};
    ssize_t n = poll(&pfd, 1, 2000) == 1 ? read(sv[1], got, sizeof got) : -1;
    int rc = cli.result;
    char detail[600];
    snprintf(detail, sizeof detail, "%s", cc_session_errmsg(cli.s));
    cc_session_free(cli.s);
    close(sv[1]);
    cc_context_free(sctx);
    free(cli.rx);
    T_EQ(rc, CC_ERR_BAD_VERSION);
    T_CONTAINS(detail, "1..1");
    T_CONTAINS(detail, "2..2");
    T_EQ(n, 8); /* our preamble, then the end: no TLS for a peer we cannot talk to */
    T_ASSERT(memcmp(got, "CCPY\x02\x02\x00\x01", 8) == 0);

    /* this console against a version 1 client */
    cc_context *cctx = ctx_with(CC_ROLE_CONSOLE, NULL, NULL, true);
    T_ASSERT(cctx && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct tp_side con = {0};
    con.s = cc_session_new(cctx, NULL);
    cc_session_set_event_callback(con.s, tp_on_event, &con);
    con.poll_fd = &sv[1];
    T_EQ(cc_session_set_transport(con.s, t_fd_send, t_fd_recv, &sv[1], "localhost"), CC_OK);
    T_EQ(write(sv[0], v1, 8), 8);
    tp_drive(&con, &none, tp_both_ended, 5000);
    rc = con.result;
    snprintf(detail, sizeof detail, "%s", cc_session_errmsg(con.s));
    cc_session_free(con.s);
    close(sv[0]);
    close(sv[1]);
    cc_context_free(cctx);
    free(con.rx);
    T_EQ(rc, CC_ERR_BAD_VERSION);
    T_CONTAINS(detail, "1..1");
}

int main(void)
{
    if (t_make_certs() != 0) {
        printf("not ok - test PKI\n");
        return 1;
    }
    snprintf(pskfile, sizeof pskfile, "%s", t_psk("flights"));
    t_run("psk: established two round trips after TCP (preamble+ClientHello, preamble+server flight)",
          t_psk_two_round_trips);
    t_run("kerberos: established two round trips after TCP (AP-REQ with the HELLO, AP-REP in the result)",
          t_kerberos_two_round_trips);
    t_run("a three-token mechanism (NTLM's shape): three round trips", t_three_tokens_three_round_trips);
    t_run("a wrong mechanism guess costs one round trip, never a failure", t_wrong_guess_costs_one_round_trip);
    t_run("the client's own order decides; the guess only saves a round trip", t_client_order_beats_the_guess);
    t_run("a guessed mechanism that cannot start: fallback, or its error once", t_failed_guess);
    t_run("a version 1 peer is refused clearly, both ways", t_version_1_peer_refused);
    return t_done();
}
