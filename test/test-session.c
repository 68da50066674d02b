/* test-session.c -- the session core in one process: a console and a client
 * driven side by side over a socketpair, a memory pipe or loopback TCP. */
#define _GNU_SOURCE
#include "harness.h"
#include "pair.h"

#include "../examples/psk.h"
#include "../lib/core/frame.h"

#include <carboncopy.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char pskfile[600], otherpsk[600];

static cc_context *client_ctx(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!c || cc_context_set_certificate(c, t_cert("client.pem"), t_cert("client.key")) != CC_OK ||
        psk_register(c, pskfile) != CC_OK) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static cc_context *console_ctx(const char *key)
{
    cc_context *c = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    if (!c || cc_context_set_ca_file(c, t_cert("ca.pem")) != CC_OK || psk_register(c, key) != CC_OK) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

/* Sessions over a socketpair (the console's end through the host-transport callbacks), with
 * the default contexts and licence figures unless the test set its own. */
static bool pair_start(struct tp_pair *p)
{
    if (!p->cctx)
        p->cctx = console_ctx(pskfile);
    if (!p->sctx)
        p->sctx = client_ctx();
    if (!p->cli.lic_count && !p->cli.lic_fail) {
        p->cli.lic_count = 25;
        p->cli.lic_in_use = 7;
    }
    return tp_pair_open(p, "tester", NULL) == 0;
}

static int raw_frame_result(const unsigned char *frame, size_t len, char *detail, size_t dn);

/* ================================================================= tests */

static void t_version_and_errors(void)
{
    T_EQ(cc_version(), CC_VERSION_NUM);
    T_STREQ(cc_version_string(), CC_VERSION_STRING);
    for (int c = 0; c >= -99; c--) {
        if (strcmp(cc_err_name(c), "CC_ERR_UNKNOWN") == 0)
            continue;
        T_ASSERT(strcmp(cc_strerror(c), "unknown error code") != 0);
    }
    T_STREQ(cc_err_name(CC_ERR_TIMEOUT), "CC_ERR_TIMEOUT");
    T_STREQ(cc_err_name(-9999), "CC_ERR_UNKNOWN");
    T_STREQ(cc_state_name(CC_STATE_ESTABLISHED), "established");
}

static void t_config_errors(void)
{
    int err = 0;
    T_ASSERT(cc_context_new(7, NULL, &err) == NULL);
    T_EQ(err, CC_ERR_INVALID);
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, &err);
    T_ASSERT(c != NULL);
    T_ASSERT(cc_session_new(c, &err) == NULL);
    T_EQ(err, CC_ERR_CONFIG);
    T_CONTAINS(cc_context_errmsg(c), "cc_context_set_certificate");
    T_EQ(cc_context_set_certificate(c, "/nonexistent.pem", t_cert("client.key")), CC_ERR_TLS_CONFIG);
    T_CONTAINS(cc_context_errmsg(c), "/nonexistent.pem");
    T_EQ(cc_context_set_certificate(c, t_cert("client.pem"), t_cert("other.key")), CC_ERR_TLS_CONFIG);
    T_CONTAINS(cc_context_errmsg(c), "does not match");
    T_EQ(cc_context_set_certificate(c, t_cert("client.pem"), t_cert("client.key")), CC_OK);
    T_ASSERT(cc_session_new(c, &err) == NULL);
    T_EQ(err, CC_ERR_CONFIG);
    T_CONTAINS(cc_context_errmsg(c), "no authenticator");
    T_EQ(cc_context_set_pin_sha256(c, "00"), CC_ERR_CONFIG); /* a client does not verify */
    T_EQ(cc_context_set_timeout(c, CC_TIMEOUT_HANDSHAKE, 0), CC_ERR_INVALID);
    T_EQ(cc_context_set_limit(c, CC_LIMIT_FRAME_SIZE, 10), CC_ERR_INVALID);
    T_EQ(cc_context_add_builtin_authenticator(c, "none"), CC_ERR_AUTH_UNAVAILABLE);
    cc_context_free(c);

    c = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    T_EQ(cc_context_set_pin_sha256(c, "abc"), CC_ERR_INVALID);
    T_CONTAINS(cc_context_errmsg(c), "64 hex digits");
    T_EQ(cc_context_set_pin_sha256(c, "e5:3e:f1:85:22:06:81:8a:ca:fd:69:75:17:16:8f:d8:e6:42:2d:5b:e8:cf:bd:12:"
                                      "bc:25:af:08:3f:11:3d:e5"),
         CC_OK);
    T_EQ(cc_context_set_ca_file(c, "/nonexistent-ca.pem"), CC_ERR_TLS_CONFIG);
    T_EQ(psk_register(c, pskfile), CC_OK);
    cc_session *s = cc_session_new(c, &err);
    T_ASSERT(s != NULL);
    T_EQ(cc_session_step(s), CC_ERR_STATE); /* nothing to do before connect */
    T_EQ(cc_session_send(s, 0, "x", 1), CC_ERR_STATE);
    T_EQ(cc_session_accept_fd(s, 0), CC_ERR_STATE); /* a console does not accept */
    T_EQ(cc_session_connect(s, "", 0), CC_ERR_INVALID);
    cc_session_free(s);
    cc_context_free(c);
}

static void t_handshake_data_ping_close(void)
{
    struct tp_pair p = {0};
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_state(p.cli.s), CC_STATE_ESTABLISHED);
    T_STREQ(cc_session_identity(p.cli.s), "psk:tester");
    T_STREQ(cc_session_identity(p.con.s), "psk:tester");
    T_STREQ(cc_session_mechanism(p.con.s), "psk");
    T_STREQ(p.cli.identity, "psk:tester");
    T_EQ(p.con.license_events, 1);
    T_EQ(p.con.license_count, 25);
    T_EQ(p.con.license_in_use, 7);
    T_EQ(p.cli.license_events, 1);
    int granted = 0;
    uint32_t cnt = 0, use = 0;
    T_EQ(cc_session_license(p.con.s, &granted, &cnt, &use), CC_OK);
    T_ASSERT(granted && cnt == 25 && use == 7);
    uint8_t cb1[32], cb2[32];
    T_EQ(cc_session_channel_binding(p.con.s, cb1, sizeof cb1), CC_OK);
    T_EQ(cc_session_channel_binding(p.cli.s, cb2, sizeof cb2), CC_OK);
    T_ASSERT(memcmp(cb1, cb2, 32) == 0);
    T_STREQ(cc_session_tls_version(p.con.s), "TLSv1.3");

    /* data both ways, larger than one frame */
    size_t n = 100000;
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    T_EQ(cc_session_send(p.con.s, 3, buf, n), CC_OK);
    T_EQ(cc_session_send(p.cli.s, 4, buf, 1000), CC_OK);
    T_EQ(cc_session_ping(p.con.s), CC_OK);
    uint64_t end = t_now_ms() + 3000;
    while ((p.cli.rx_len < n || p.con.rx_len < 1000 || !p.con.pongs) && t_now_ms() < end)
        tp_drive(&p.con, &p.cli, tp_both_ended, 5);
    T_EQ(p.cli.rx_len, n);
    T_ASSERT(memcmp(p.cli.rx, buf, n) == 0);
    T_EQ(p.con.rx_len, 1000);
    T_ASSERT(memcmp(p.con.rx, buf, 1000) == 0);
    T_EQ(p.con.pongs, 1);
    free(buf);

    /* orderly close from the console: both end cleanly, the client hears the reason */
    T_EQ(cc_session_close(p.con.s, 0, "bye"), CC_OK);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_EQ(p.con.result, 0);
    T_EQ(p.cli.result, 0);
    T_EQ(cc_session_state(p.cli.s), CC_STATE_CLOSED);
    T_EQ(p.cli.closed_code, 0);
    T_STREQ(p.cli.closed_text, "bye");
    T_EQ(cc_session_send(p.con.s, 0, "x", 1), CC_ERR_STATE);
    tp_pair_free(&p);
}

static void t_close_with_frames_in_flight(void)
{
    /* Data, a ping and the close arrive in one read: the echo and the pong
     * still go out before close_notify, and both sides end cleanly. */
    struct tp_pair p = {0};
    p.cli.echo = true;
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    T_EQ(cc_session_send(p.con.s, 2, "0123456789", 10), CC_OK);
    T_EQ(cc_session_ping(p.con.s), CC_OK);
    T_EQ(cc_session_close(p.con.s, 0, "done"), CC_OK);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_EQ(p.cli.result, 0);
    T_EQ(p.con.result, 0);
    T_EQ(p.cli.rx_len, 10);
    T_EQ(p.con.rx_len, 10);
    T_EQ(p.con.pongs, 1);
    tp_pair_free(&p);

    /* A ping crossing a close: the closing side drops the pong, nobody fails. */
    struct tp_pair q = {0};
    T_ASSERT(pair_start(&q));
    T_ASSERT(tp_drive(&q.con, &q.cli, tp_both_established, 5000));
    T_EQ(cc_session_ping(q.cli.s), CC_OK);
    T_EQ(cc_session_close(q.con.s, 0, "bye"), CC_OK);
    T_ASSERT(tp_drive(&q.con, &q.cli, tp_both_ended, 5000));
    T_EQ(q.con.result, 0);
    T_EQ(q.cli.result, 0);
    T_STREQ(q.cli.closed_text, "bye");
    tp_pair_free(&q);
}

static bool client_in_hello(struct tp_side *a, struct tp_side *b)
{
    return cc_session_state(b->s) >= CC_STATE_HELLO || a->ended || b->ended;
}

static void t_host_closes_with_a_code(void)
{
    /* Before established: the host cancels; the peer is told. */
    struct tp_pair p = {0};
    p.cli.hold_jobs = true; /* the client waits for its licence, past TLS */
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, client_in_hello, 5000));
    tp_drive(&p.con, &p.cli, tp_both_ended, 50);
    T_EQ(cc_session_close(p.con.s, 0, "technician gave up"), CC_OK);
    T_EQ(cc_session_step(p.con.s), CC_ERR_CANCELLED);
    T_CONTAINS(cc_session_errmsg(p.con.s), "cancelled by the host: technician gave up");
    p.con.ended = true;
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 3000));
    T_EQ(p.cli.result, CC_ERR_CANCELLED);
    T_CONTAINS(cc_session_errmsg(p.cli.s), "console: cancelled by the host");
    cc_job *j = cc_session_take_job(p.cli.s);
    T_ASSERT(j == NULL); /* a failed session hands out nothing */
    tp_pair_free(&p);

    /* Established: the client's host ends it with an error code the console receives. */
    struct tp_pair q = {0};
    T_ASSERT(pair_start(&q));
    T_ASSERT(tp_drive(&q.con, &q.cli, tp_both_established, 5000));
    T_EQ(cc_session_close(q.cli.s, 5, "x"), CC_ERR_INVALID);
    T_EQ(cc_session_close(q.cli.s, CC_ERR_AUTH_POLICY, "account revoked"), CC_OK);
    T_ASSERT(tp_drive(&q.con, &q.cli, tp_both_ended, 3000));
    T_EQ(q.cli.result, CC_ERR_AUTH_POLICY);
    T_EQ(q.con.result, CC_ERR_AUTH_POLICY);
    T_CONTAINS(cc_session_errmsg(q.con.s), "client: closed by the host: account revoked");
    tp_pair_free(&q);
}

static void t_license_denied(void)
{
    struct tp_pair p = {0};
    p.cli.lic_count = 10;
    p.cli.lic_in_use = 10;
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_EQ(p.cli.result, CC_ERR_LICENSE_DENIED);
    T_EQ(p.con.result, CC_ERR_LICENSE_DENIED);
    T_EQ(p.con.license_events, 1);
    T_EQ(p.con.license_granted, 0);
    T_EQ(p.con.license_count, 10);
    T_CONTAINS(cc_session_errmsg(p.con.s), "10 of 10");
    T_ASSERT(cc_session_identity(p.cli.s) == NULL); /* never authenticated */
    tp_pair_free(&p);
}

static void t_license_job_fails_closed(void)
{
    struct tp_pair p = {0};
    p.cli.lic_fail = CC_ERR_LICENSE_UNREACHABLE;
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_EQ(p.cli.result, CC_ERR_LICENSE_UNREACHABLE);
    T_EQ(p.con.result, CC_ERR_LICENSE_UNREACHABLE);
    /* the client knows why; the console learns the kind of failure, not the server's answer or URL */
    T_CONTAINS(cc_session_errmsg(p.cli.s), "test: management server unreachable");
    T_CONTAINS(cc_session_errmsg(p.con.s), "could not check its licence");
    T_ASSERT(!strstr(cc_session_errmsg(p.con.s), "test: management server unreachable"));
    tp_pair_free(&p);
}

static bool cli_wants_job(struct tp_side *con, struct tp_side *cli)
{
    (void)con;
    return cli->result > 0 && (cli->result & CC_WANT_JOB);
}

static void t_license_job_waits_for_hello(void)
{
    struct tp_pair p = {0};
    p.cli.hold_jobs = true;
    T_ASSERT(pair_start(&p));
    int r = cc_session_step(p.cli.s);
    T_ASSERT(r > 0 && !(r & CC_WANT_JOB)); /* a connection alone costs no licence request */
    T_ASSERT(cc_session_take_job(p.cli.s) == NULL);
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_wants_job, 5000));
    T_ASSERT(cc_session_state(p.cli.s) >= CC_STATE_HELLO); /* TLS is up and the HELLO was valid */
    cc_job *j = cc_session_take_job(p.cli.s);
    T_ASSERT(j != NULL);
    T_EQ(cc_job_type(j), CC_JOB_LICENSE);
    /* The session is freed while the job is out: the host frees the job. */
    cc_session_free(p.cli.s);
    p.cli.s = NULL;
    cc_job_free(j);
    tp_pair_free(&p);
}

static void t_stall_hits_deadline(void)
{
    struct tp_pair p = {0};
    p.sctx = client_ctx();
    T_ASSERT(p.sctx != NULL);
    cc_context_set_timeout(p.sctx, CC_TIMEOUT_HANDSHAKE, 200);
    T_ASSERT(pair_start(&p));
    cc_session_free(p.con.s); /* the console never speaks */
    p.con.s = NULL;
    p.con.ended = true;
    uint64_t t0 = t_now_ms();
    int32_t t = cc_session_timeout_ms(p.cli.s);
    T_ASSERT(t > 0 && t <= 200);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 3000));
    T_EQ(p.cli.result, CC_ERR_TIMEOUT);
    T_ASSERT(t_now_ms() - t0 < 1500);
    T_CONTAINS(cc_session_errmsg(p.cli.s), "handshake deadline of 200 ms");
    tp_pair_free(&p);
}

static void t_idle_timeout_and_keepalive(void)
{
    struct tp_pair p = {0};
    p.sctx = client_ctx();
    cc_context_set_timeout(p.sctx, CC_TIMEOUT_IDLE, 300);
    p.cctx = console_ctx(pskfile);
    cc_context_set_timeout(p.cctx, CC_TIMEOUT_KEEPALIVE, 100);
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    tp_drive(&p.con, &p.cli, tp_both_ended, 900); /* the console's pings keep the client alive */
    T_EQ(cc_session_state(p.cli.s), CC_STATE_ESTABLISHED);
    T_ASSERT(p.con.pongs >= 3);
    tp_pair_free(&p);

    struct tp_pair q = {0};
    q.sctx = client_ctx();
    cc_context_set_timeout(q.sctx, CC_TIMEOUT_IDLE, 200);
    T_ASSERT(pair_start(&q));
    T_ASSERT(tp_drive(&q.con, &q.cli, tp_both_established, 5000));
    T_ASSERT(tp_drive(&q.con, &q.cli, tp_both_ended, 3000));
    T_EQ(q.cli.result, CC_ERR_IDLE_TIMEOUT);
    T_EQ(q.con.result, CC_ERR_IDLE_TIMEOUT); /* told by the client's CLOSE */
    T_CONTAINS(cc_session_errmsg(q.con.s), "client:");
    tp_pair_free(&q);
}

static void t_frame_too_large(void)
{
    /* The smallest limit still holds a full data frame: data flows. */
    struct tp_pair p = {0};
    p.sctx = client_ctx();
    T_EQ(cc_context_set_limit(p.sctx, CC_LIMIT_FRAME_SIZE, 1024), CC_ERR_INVALID);
    T_EQ(cc_context_set_limit(p.sctx, CC_LIMIT_FRAME_SIZE, 16384), CC_OK);
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    static char big[50000];
    T_EQ(cc_session_send(p.con.s, 1, big, sizeof big), CC_OK);
    uint64_t end = t_now_ms() + 3000;
    while (p.cli.rx_len < sizeof big && t_now_ms() < end)
        tp_drive(&p.con, &p.cli, tp_both_ended, 5);
    T_EQ(p.cli.rx_len, sizeof big);
    tp_pair_free(&p);
    /* One byte over the default limit ends the session (a raw peer's frame header). */
    char d[600];
    const unsigned char over[] = {CC__F_AUTH_TOKEN, 0, 0, 0, 0, 2, 0, 1};
    T_EQ(raw_frame_result(over, sizeof over, d, sizeof d), CC_ERR_FRAME_TOO_LARGE);
    T_CONTAINS(d, "AUTH_TOKEN frame of 131073 bytes exceeds the limit of 131072 bytes");
}

static void t_send_buffer_limit(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx(pskfile);
    T_EQ(cc_context_set_limit(p.cctx, CC_LIMIT_SEND_BUFFER, 65536), CC_OK);
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    static char chunk[20000];
    T_EQ(cc_session_send(p.con.s, 1, chunk, sizeof chunk), CC_OK);
    T_EQ(cc_session_send(p.con.s, 1, chunk, sizeof chunk), CC_SEND_HIGH_WATER);
    T_EQ(cc_session_send(p.con.s, 1, chunk, sizeof chunk), CC_SEND_HIGH_WATER);
    T_EQ(cc_session_send(p.con.s, 1, chunk, sizeof chunk), CC_ERR_AGAIN);
    static char huge[70000];
    T_EQ(cc_session_send(p.con.s, 1, huge, sizeof huge), CC_ERR_INVALID); /* could never fit */
    uint64_t end = t_now_ms() + 3000;
    while ((!p.con.send_ready || p.cli.rx_len < 3 * sizeof chunk) && t_now_ms() < end)
        tp_drive(&p.con, &p.cli, tp_both_ended, 5);
    T_ASSERT(p.con.send_ready >= 1);
    T_EQ(p.cli.rx_len, 3 * sizeof chunk);
    tp_pair_free(&p);
}

static int refuse_policy(void *user, cc_session *s, const char *mech, const char *identity)
{
    snprintf(user, 64, "%s/%s", mech, identity);
    return CC_ERR_AUTH_POLICY;
}

static void t_policy_refuses(void)
{
    char seen[64] = "";
    struct tp_pair p = {0};
    p.sctx = client_ctx();
    cc_context_set_auth_policy(p.sctx, refuse_policy, seen);
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_STREQ(seen, "psk/psk:tester");
    T_EQ(p.cli.result, CC_ERR_AUTH_POLICY);
    T_EQ(p.con.result, CC_ERR_AUTH_POLICY);
    T_CONTAINS(cc_session_errmsg(p.con.s), "policy refused psk:tester");
    tp_pair_free(&p);
}

static void t_wrong_key(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx(otherpsk);
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    /* Version 2's psk sends the console's proof first (with its HELLO): the
     * client refuses it, and the console is told the uniform failure. */
    T_EQ(p.cli.result, CC_ERR_AUTH_BAD_CREDENTIALS);
    T_EQ(p.con.result, CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(cc_session_errmsg(p.cli.s), "console's key is wrong");
    tp_pair_free(&p);
}

static int d_start(void *md, cc_auth *a, void **st)
{
    *st = md;
    return 0;
}
static int d_step(void *st, cc_auth *a, const uint8_t *in, size_t n)
{
    return CC_ERR_AUTH;
}
static void d_end(void *st) {}

static void t_no_common_mechanism(void)
{
    static const cc_authenticator other = {sizeof other, "other-mech", d_start, d_step, d_end, NULL, NULL, 0};
    struct tp_pair p = {0};
    p.sctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    cc_context_set_certificate(p.sctx, t_cert("client.pem"), t_cert("client.key"));
    T_EQ(cc_context_add_authenticator(p.sctx, &other, NULL), CC_OK);
    T_EQ(cc_context_add_authenticator(p.sctx, &other, NULL), CC_ERR_CONFIG); /* twice */
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_EQ(p.cli.result, CC_ERR_AUTH_NO_MECHANISM);
    T_EQ(p.con.result, CC_ERR_AUTH_NO_MECHANISM);
    T_CONTAINS(cc_session_errmsg(p.con.s), "the console offers [psk], this client accepts [other-mech]");
    tp_pair_free(&p);
}

static int reject_cert(void *user, cc_session *s, const uint8_t *der, size_t len, int preverify_ok)
{
    *(int *)user = preverify_ok + 10;
    return 0;
}

static void t_verify_callback_rejects(void)
{
    int seen = 0;
    struct tp_pair p = {0};
    p.cctx = console_ctx(pskfile);
    cc_context_set_verify_callback(p.cctx, reject_cert, &seen);
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_EQ(seen, 11); /* called, and the chain was fine */
    T_EQ(p.con.result, CC_ERR_CERT_REJECTED);
    T_EQ(p.cli.result, CC_ERR_TLS); /* the client hears an alert */
    tp_pair_free(&p);
}

/* A callback that only looks (returns preverify_ok) changes nothing: a failed check keeps its cause. */
static int look_at_cert(void *user, cc_session *s, const uint8_t *der, size_t len, int preverify_ok)
{
    *(int *)user = preverify_ok + 10;
    return preverify_ok;
}

static void t_verify_callback_keeps_cause(void)
{
    int seen = 0;
    struct tp_pair p = {0};
    p.cctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    T_EQ(cc_context_set_ca_file(p.cctx, t_cert("other-ca.pem")), CC_OK);
    T_EQ(psk_register(p.cctx, pskfile), CC_OK);
    cc_context_set_verify_callback(p.cctx, look_at_cert, &seen);
    T_ASSERT(pair_start(&p));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_EQ(seen, 10); /* called, and the chain failed */
    T_EQ(p.con.result, CC_ERR_CERT_UNTRUSTED);
    T_CONTAINS(cc_session_errmsg(p.con.s), "is not trusted");
    tp_pair_free(&p);
}

/* ---- a connection cut after N bytes at every point of the handshake ---- */
struct mem {
    unsigned char q[2][65536];
    size_t len[2];
    size_t passed, budget;
};
struct memend {
    struct mem *m;
    int me;
};
static long mem_send(void *u, const uint8_t *d, size_t n)
{
    struct memend *e = u;
    struct mem *m = e->m;
    int to = !e->me;
    if (m->passed >= m->budget)
        return (long)n; /* swallowed: the wire is cut */
    size_t room = sizeof m->q[0] - m->len[to];
    if (n > room)
        n = room;
    if (n > m->budget - m->passed)
        n = m->budget - m->passed;
    memcpy(m->q[to] + m->len[to], d, n);
    m->len[to] += n;
    m->passed += n;
    return n ? (long)n : CC_IO_WOULD_BLOCK;
}
static long mem_recv(void *u, uint8_t *d, size_t n)
{
    struct memend *e = u;
    struct mem *m = e->m;
    size_t have = m->len[e->me];
    if (!have)
        return m->passed >= m->budget ? 0 : CC_IO_WOULD_BLOCK;
    if (n > have)
        n = have;
    memcpy(d, m->q[e->me], n);
    memmove(m->q[e->me], m->q[e->me] + n, have - n);
    m->len[e->me] -= n;
    return (long)n;
}

static void t_cut_at_every_point(void)
{
    size_t total = 0;
    int cuts = 0, bad = 0;
    for (size_t budget = 0;; budget += 61) {
        static struct mem m;
        memset(&m, 0, sizeof m);
        m.budget = budget ? budget : 1;
        struct memend ec = {&m, 0}, es = {&m, 1};
        struct tp_pair p = {0};
        p.cctx = console_ctx(pskfile);
        p.sctx = client_ctx();
        p.cli.lic_count = 5;
        p.cli.lic_in_use = 1;
        p.con.s = cc_session_new(p.cctx, NULL);
        p.cli.s = cc_session_new(p.sctx, NULL);
        cc_session_set_event_callback(p.con.s, tp_on_event, &p.con);
        cc_session_set_event_callback(p.cli.s, tp_on_event, &p.cli);
        cc_session_set_transport(p.con.s, mem_send, mem_recv, &ec, "localhost");
        cc_session_set_transport(p.cli.s, mem_send, mem_recv, &es, NULL);
        p.sv[1] = -1;
        tp_drive(&p.con, &p.cli, tp_both_ended, 2000);
        bool up =
            cc_session_state(p.con.s) == CC_STATE_ESTABLISHED && cc_session_state(p.cli.s) == CC_STATE_ESTABLISHED;
        if (up) {
            total = m.passed;
            tp_pair_free(&p);
            break;
        }
        cuts++;
        if (!(p.con.ended && p.cli.ended && p.con.result == CC_ERR_CLOSED && p.cli.result == CC_ERR_CLOSED)) {
            printf("#   cut after %zu bytes: console %s (%s), client %s (%s)\n", m.passed, cc_err_name(p.con.result),
                   cc_session_errmsg(p.con.s), cc_err_name(p.cli.result), cc_session_errmsg(p.cli.s));
            bad++;
        }
        tp_pair_free(&p);
        if (budget > 100000)
            break;
    }
    printf("#   %d cut points below %zu handshake bytes\n", cuts, total);
    T_ASSERT(total > 1000);
    T_ASSERT(cuts > 10);
    T_EQ(bad, 0);
}

/* ---- a raw TLS console that sends hand-made frames ---- */
struct raw {
    int fd;
    unsigned char frame[64];
    size_t frame_len;
};

static void *raw_console(void *arg)
{
    struct raw *r = arg;
    uint8_t pre[8];
    cc__preamble_write(pre);
    if (write(r->fd, pre, sizeof pre) != sizeof pre)
        return NULL;
    uint8_t peer[8];
    if (read(r->fd, peer, sizeof peer) != sizeof peer)
        return NULL;
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(c);
    SSL_set_fd(ssl, r->fd);
    if (SSL_connect(ssl) == 1) {
        SSL_write(ssl, r->frame, (int)r->frame_len);
        char tmp[256];
        while (SSL_read(ssl, tmp, sizeof tmp) > 0)
            ;
    }
    SSL_free(ssl);
    SSL_CTX_free(c);
    return NULL;
}

static int raw_frame_result(const unsigned char *frame, size_t len, char *detail, size_t dn)
{
    int sv[2];
    struct tp_side cli = {0};
    cc_context *ctx = client_ctx();
    if (!ctx || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    cli.lic_count = 2;
    cli.s = cc_session_new(ctx, NULL);
    cc_session_set_event_callback(cli.s, tp_on_event, &cli);
    cc_session_accept_fd(cli.s, sv[0]);
    struct raw r = {sv[1], {0}, len};
    memcpy(r.frame, frame, len);
    pthread_t t;
    pthread_create(&t, NULL, raw_console, &r);
    struct tp_side none = {0};
    none.ended = true;
    tp_drive(&cli, &none, tp_both_ended, 3000);
    int res = cli.result;
    snprintf(detail, dn, "%s", cc_session_errmsg(cli.s));
    cc_session_free(cli.s); /* closes sv[0]: the raw console's read ends */
    pthread_join(t, NULL);
    close(sv[1]);
    cc_context_free(ctx);
    free(cli.rx);
    return res;
}

static void t_bad_frames(void)
{
    char d[600];
    /* DATA before the session is established */
    const unsigned char data[] = {CC__F_DATA, 0, 0, 1, 0, 0, 0, 3, 'a', 'b', 'c'};
    T_EQ(raw_frame_result(data, sizeof data, d, sizeof d), CC_ERR_PROTOCOL);
    T_CONTAINS(d, "unexpected DATA frame");
    /* CONSENT_WAIT is the client's to send: a console's is a protocol error (doc/PROTOCOL.md 4.6) */
    const unsigned char wait[] = {CC__F_CONSENT_WAIT, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0x03, 0xe8};
    T_EQ(raw_frame_result(wait, sizeof wait, d, sizeof d), CC_ERR_PROTOCOL);
    T_CONTAINS(d, "unexpected CONSENT_WAIT frame");
    /* an unknown frame type */
    const unsigned char unknown[] = {0x42, 0, 0, 0, 0, 0, 0, 0};
    T_EQ(raw_frame_result(unknown, sizeof unknown, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "unknown frame type 66");
    /* a frame longer than any limit */
    const unsigned char huge[] = {CC__F_HELLO, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    T_EQ(raw_frame_result(huge, sizeof huge, d, sizeof d), CC_ERR_FRAME_TOO_LARGE);
    T_CONTAINS(d, "4294967295 bytes exceeds the limit");
    /* a HELLO that lies about its contents */
    const unsigned char lying[] = {CC__F_HELLO, 0, 0, 0, 0, 0, 0, 4, 0, 0, 3, 9};
    T_EQ(raw_frame_result(lying, sizeof lying, d, sizeof d), CC_ERR_BAD_FRAME);
}

static void t_bad_names_and_text(void)
{
    char d[600];
    /* a mechanism name outside [a-z0-9-] */
    const unsigned char upper[] = {CC__F_HELLO, 0, 0, 0, 0, 0, 0, 7, 0, 0, 1, 3, 'P', 's', 'k'};
    T_EQ(raw_frame_result(upper, sizeof upper, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "malformed HELLO frame: a mechanism name is not made of [a-z0-9-]");
    const unsigned char space[] = {CC__F_HELLO, 0, 0, 0, 0, 0, 0, 7, 0, 0, 1, 3, 'p', ' ', 'k'};
    T_EQ(raw_frame_result(space, sizeof space, d, sizeof d), CC_ERR_BAD_FRAME);
    const unsigned char empty[] = {CC__F_HELLO, 0, 0, 0, 0, 0, 0, 4, 0, 0, 1, 0};
    T_EQ(raw_frame_result(empty, sizeof empty, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "a mechanism name is not 1..32 bytes long");
    const unsigned char none[] = {CC__F_HELLO, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0};
    T_EQ(raw_frame_result(none, sizeof none, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "HELLO frame names 0 mechanisms");
    /* str16 must be UTF-8: a stray byte, an overlong '/', a surrogate, a NUL */
    const unsigned char stray[] = {CC__F_CLOSE, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 3, 'a', 0xff, 'b'};
    T_EQ(raw_frame_result(stray, sizeof stray, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "malformed CLOSE frame: the reason is not valid UTF-8");
    const unsigned char overlong[] = {CC__F_CLOSE, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 2, 0xc0, 0xaf};
    T_EQ(raw_frame_result(overlong, sizeof overlong, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "not valid UTF-8");
    const unsigned char surrogate[] = {CC__F_CLOSE, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 3, 0xed, 0xa0, 0x80};
    T_EQ(raw_frame_result(surrogate, sizeof surrogate, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "not valid UTF-8");
    const unsigned char cut[] = {CC__F_CLOSE, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 2, 'a', 0xc3};
    T_EQ(raw_frame_result(cut, sizeof cut, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "not valid UTF-8");
    const unsigned char nul[] = {CC__F_CLOSE, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 3, 'a', 0, 'b'};
    T_EQ(raw_frame_result(nul, sizeof nul, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "the reason holds a NUL byte");
    /* valid UTF-8 (two, three and four byte forms) is an orderly close */
    const unsigned char fine[] = {CC__F_CLOSE, 0, 0,    0,    0,    0,    0,    15,   0,    0,    0,   0,
                                  0,           9, 0xc3, 0xbc, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80};
    T_EQ(raw_frame_result(fine, sizeof fine, d, sizeof d), 0);

    /* What we send is what a peer accepts: cut at a character, stray bytes as '?'. */
    char t[8];
    cc__text_copy(t, sizeof t,
                  "a\xff"
                  "b");
    T_STREQ(t, "a?b");
    cc__text_copy(t, 5, "ab\xc3\xbc!");
    T_STREQ(t, "ab\xc3\xbc");
    cc__text_copy(t, 4, "ab\xc3\xbc");
    T_STREQ(t, "ab");
    cc__close_msg cm = {-5, "x\xc3(\xed\xa0\x80y"}, back;
    cc__buf b = {0};
    cc_context *ctx = client_ctx();
    T_EQ(cc__f_close_pack(&b, ctx, &cm), CC_OK);
    cc__frame_hdr h;
    T_EQ(cc__frame_hdr_parse(cc__buf_head(&b), cc__buf_size(&b), 1024, &h, d, sizeof d), 1);
    T_EQ(h.type, CC__F_CLOSE);
    T_EQ(cc__f_close_parse(cc__buf_head(&b) + CC__FRAME_HDR, h.len, &back, d, sizeof d), CC_OK);
    T_EQ(back.code, -5);
    T_STREQ(back.reason, "x?(???y");
    cc__buf_free(ctx, &b);
    cc_context_free(ctx);
}

/* ---- the console resolves, skips a dead address, connects over TCP ---- */
static void t_tcp_connect_tries_each_address(void)
{
    struct sockaddr_in a, dead;
    int lfd = t_listen(&a);
    T_ASSERT(lfd >= 0);
    dead = a;
    dead.sin_port = htons(1); /* refused */

    struct tp_side con = {0}, cli = {0};
    cc_context *cctx = console_ctx(pskfile), *sctx = client_ctx();
    con.s = cc_session_new(cctx, NULL);
    cc_session_set_event_callback(con.s, tp_on_event, &con);
    T_EQ(cc_session_connect(con.s, "localhost", ntohs(a.sin_port)), CC_OK);
    T_EQ(cc_session_state(con.s), CC_STATE_RESOLVING);
    int r = cc_session_step(con.s);
    T_ASSERT(r & CC_WANT_JOB);
    cc_job *j = cc_session_take_job(con.s);
    T_EQ(cc_job_type(j), CC_JOB_RESOLVE);
    T_STREQ(cc_job_resolve_host(j), "localhost");
    T_EQ(cc_job_resolve_port(j), ntohs(a.sin_port));
    /* The host answers with its own resolver: a dead address first. */
    T_EQ(cc_job_resolve_add_address(j, &dead, sizeof dead), CC_OK);
    T_EQ(cc_job_resolve_add_address(j, &a, sizeof a), CC_OK);
    T_EQ(cc_job_resolve_add_address(j, &a, 3), CC_ERR_INVALID);
    T_EQ(cc_session_job_done(con.s, j), CC_OK);
    cli.s = cc_session_new(sctx, NULL);
    cc_session_set_event_callback(cli.s, tp_on_event, &cli);
    cli.lic_count = 3;
    uint64_t end = t_now_ms() + 5000;
    bool accepted = false;
    while (t_now_ms() < end && !tp_both_established(&con, &cli)) {
        tp_step(&con);
        if (!accepted) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
            if (fd >= 0) {
                T_EQ(cc_session_accept_fd(cli.s, fd), CC_OK);
                accepted = true;
            }
        } else {
            tp_step(&cli);
        }
        usleep(1000);
    }
    T_EQ(cc_session_state(con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_state(cli.s), CC_STATE_ESTABLISHED);
    cc_session_free(con.s);
    cc_session_free(cli.s);
    cc_context_free(cctx);
    cc_context_free(sctx);
    close(lfd);
}

static void t_resolve_failure_and_refused(void)
{
    cc_context *cctx = console_ctx(pskfile);
    struct tp_side con = {0}, none = {0};
    none.ended = true;
    con.s = cc_session_new(cctx, NULL);
    cc_session_connect(con.s, "127.0.0.1", 1);
    tp_drive(&con, &none, tp_both_ended, 3000);
    T_EQ(con.result, CC_ERR_CONNECT);
    T_CONTAINS(cc_session_errmsg(con.s), "127.0.0.1:1");
    cc_session_free(con.s);

    struct tp_side c2 = {0};
    c2.s = cc_session_new(cctx, NULL);
    cc_session_connect(c2.s, "name.invalid", 0);
    cc_session_step(c2.s);
    cc_job *j = cc_session_take_job(c2.s);
    T_EQ(cc_job_fail(j, CC_ERR_RESOLVE, "test resolver: no such name"), CC_OK);
    cc_session_job_done(c2.s, j);
    T_EQ(cc_session_step(c2.s), CC_ERR_RESOLVE);
    T_STREQ(cc_session_errmsg(c2.s), "test resolver: no such name");
    cc_session_free(c2.s);
    cc_context_free(cctx);
}

/* ---- logging: useful lines, never a secret ---- */
struct logbuf {
    char text[65536];
    size_t len;
    int lines;
};
static void collect_log(void *user, int level, const char *msg)
{
    struct logbuf *b = user;
    b->lines++;
    size_t n = strlen(msg);
    if (b->len + n + 2 < sizeof b->text) {
        memcpy(b->text + b->len, msg, n);
        b->len += n;
        b->text[b->len++] = '\n';
        b->text[b->len] = 0;
    }
}

static void t_log_never_has_secrets(void)
{
    static struct logbuf lc, ls;
    memset(&lc, 0, sizeof lc);
    memset(&ls, 0, sizeof ls);
    struct tp_pair p = {0};
    p.cctx = console_ctx(pskfile);
    p.sctx = client_ctx();
    T_EQ(cc_context_set_log(p.cctx, collect_log, &lc, CC_LOG_DEBUG), CC_OK);
    T_EQ(cc_context_set_log(p.sctx, collect_log, &ls, CC_LOG_DEBUG), CC_OK);
    T_EQ(cc_context_set_log(p.sctx, collect_log, &ls, 9), CC_ERR_INVALID);
    T_ASSERT(pair_start(&p));
    T_EQ(cc_session_set_credentials(p.con.s, "tester", "DOM", "hunter2-password"), CC_OK);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    cc_session_close(p.con.s, 0, "bye");
    tp_drive(&p.con, &p.cli, tp_both_ended, 3000);
    T_ASSERT(lc.lines > 5 && ls.lines > 5);
    T_CONTAINS(lc.text, "TLS established: TLSv1.3");
    T_CONTAINS(ls.text, "-> established");
    T_ASSERT(!strstr(lc.text, "hunter2") && !strstr(ls.text, "hunter2"));
    T_ASSERT(!strstr(lc.text, "0123456789abcdef") && !strstr(ls.text, "0123456789abcdef"));
    tp_pair_free(&p);
}

/* ---- every allocation failing in turn ends cleanly ---- */
static long alloc_budget;
static void *fail_malloc(size_t n, void *u)
{
    return alloc_budget-- > 0 ? malloc(n) : NULL;
}
static void *fail_realloc(void *p, size_t n, void *u)
{
    return alloc_budget-- > 0 ? realloc(p, n) : NULL;
}
static void fail_free(void *p, void *u)
{
    free(p);
}

static void t_allocation_failures(void)
{
    cc_allocator al = {sizeof al, NULL, fail_malloc, fail_realloc, fail_free};
    int ok_at = -1;
    for (long n = 0; n < 400 && ok_at < 0; n++) {
        struct tp_pair p = {0};
        alloc_budget = 1000000;
        p.sctx = client_ctx();
        alloc_budget = n;
        int err = 0;
        p.cctx = cc_context_new(CC_ROLE_CONSOLE, &al, &err);
        if (!p.cctx) {
            T_EQ(err, CC_ERR_NOMEM);
            cc_context_free(p.sctx);
            continue;
        }
        cc_context_set_ca_file(p.cctx, t_cert("ca.pem"));
        psk_register(p.cctx, pskfile);
        if (pair_start(&p)) {
            tp_drive(&p.con, &p.cli, tp_both_established, 3000);
            if (cc_session_state(p.con.s) == CC_STATE_ESTABLISHED)
                ok_at = (int)n;
            else
                T_ASSERT(p.con.ended); /* failed, did not hang */
        }
        tp_pair_free(&p);
    }
    printf("#   the console needs %d allocations to connect\n", ok_at);
    T_ASSERT(ok_at > 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the raw TLS peer may write to a session that already hung up */
    const char *tmp = t_tmpdir();
    if (t_make_certs() != 0) {
        printf("not ok - cannot make test certificates\n");
        return 1;
    }
    snprintf(pskfile, sizeof pskfile, "%s/psk.key", tmp);
    snprintf(otherpsk, sizeof otherpsk, "%s/other.key", tmp);
    FILE *f = fopen(pskfile, "w");
    fputs("0123456789abcdef-test-key\n", f);
    fclose(f);
    f = fopen(otherpsk, "w");
    fputs("another-key-of-sufficient-length\n", f);
    fclose(f);

    t_run("version and error names", t_version_and_errors);
    t_run("configuration errors are specific", t_config_errors);
    t_run("handshake, data both ways, ping, orderly close", t_handshake_data_ping_close);
    t_run("frames in flight at close still go out; a ping crossing a close", t_close_with_frames_in_flight);
    t_run("the host closes with a code, before and after established", t_host_closes_with_a_code);
    t_run("licence denied reaches both sides with the figures", t_license_denied);
    t_run("a failed licence job denies (fail closed)", t_license_job_fails_closed);
    t_run("the licence job waits for the console's valid HELLO", t_license_job_waits_for_hello);
    t_run("a silent console hits the handshake deadline", t_stall_hits_deadline);
    t_run("idle timeout, and keep-alive pings prevent it", t_idle_timeout_and_keepalive);
    t_run("a frame over the limit ends the session", t_frame_too_large);
    t_run("send buffer: high-water mark, CC_ERR_AGAIN, SEND_READY", t_send_buffer_limit);
    t_run("the host policy refuses an account", t_policy_refuses);
    t_run("a wrong pre-shared key fails authentication", t_wrong_key);
    t_run("no common mechanism", t_no_common_mechanism);
    t_run("the verify callback rejects a good certificate", t_verify_callback_rejects);
    t_run("a verify callback that returns preverify_ok keeps a failed check's cause", t_verify_callback_keeps_cause);
    t_run("a connection cut at any point of the handshake", t_cut_at_every_point);
    t_run("bad frames from a raw TLS peer", t_bad_frames);
    t_run("mechanism names and text fields are checked (name8, UTF-8)", t_bad_names_and_text);
    t_run("TCP connect skips a dead address from a host-answered resolve job", t_tcp_connect_tries_each_address);
    t_run("connection refused and a failed resolve job", t_resolve_failure_and_refused);
    t_run("log lines are useful and never carry a secret", t_log_never_has_secrets);
    t_run("every allocation failing in turn ends cleanly", t_allocation_failures);
    return t_done();
}
