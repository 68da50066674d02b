/* test-reconnect.c -- reconnect tickets (doc/RECONNECT.md): a console back in with
 * TLS 1.3 resumption and no licence or auth job, and every ticket that must not work. */
#define _GNU_SOURCE
#include "harness.h"
#include "pair.h"

#include "../examples/psk.h"

#include <carboncopy.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char pskfile[600];
static const uint8_t KEY_A[32] = "host-supplied reconnect key A...";
static const uint8_t KEY_B[32] = "host-supplied reconnect key B...";

/* What the client's jobs were, per CC_JOB_* kind, since the last reset. */
static int jobs_taken[4];
static int tickets_seen;
static char log_text[1 << 20];
static size_t log_len;

static void collect_log(void *user, int level, const char *msg)
{
    (void)user, (void)level;
    size_t n = strlen(msg);
    if (log_len + n + 2 < sizeof log_text) {
        memcpy(log_text + log_len, msg, n);
        log_len += n;
        log_text[log_len++] = '\n';
        log_text[log_len] = 0;
    }
}

static bool count_jobs(struct tp_side *sd, cc_job *job)
{
    int t = cc_job_type(job);
    if (t > 0 && t < 4)
        jobs_taken[t]++;
    if (t == CC_JOB_LICENSE)
        cc_job_license_set_figures(job, sd->lic_count, sd->lic_in_use);
    else
        cc_job_run(job);
    return true;
}

static cc_context *client_ctx(const uint8_t *key, uint32_t lifetime_ms)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!c || cc_context_set_certificate(c, t_cert("client.pem"), t_cert("client.key")) != CC_OK ||
        psk_register(c, pskfile) != CC_OK || cc_context_set_log(c, collect_log, NULL, CC_LOG_DEBUG) != CC_OK ||
        cc_context_set_license_cache_ttl(c, 0) != CC_OK || (key && cc_context_set_reconnect_key(c, key, 32) != CC_OK) ||
        (lifetime_ms != 600000 && cc_context_set_timeout(c, CC_TIMEOUT_RECONNECT_TICKET, lifetime_ms) != CC_OK)) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static cc_context *console_ctx(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    if (!c || cc_context_set_ca_file(c, t_cert("ca.pem")) != CC_OK || psk_register(c, pskfile) != CC_OK ||
        cc_context_set_log(c, collect_log, NULL, CC_LOG_DEBUG) != CC_OK) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    if (ev->type == CC_EVENT_TICKET)
        tickets_seen++;
    tp_on_event(user, s, ev);
}

/* Opens a pair as tp_pair_open does, the console presenting `ticket` (if any) first. */
static int open_pair(struct tp_pair *p, const uint8_t *ticket, size_t len, int flags, int *set_result)
{
    memset(&p->con, 0, sizeof p->con);
    memset(&p->cli, 0, sizeof p->cli);
    p->cli.lic_count = 25;
    p->cli.lic_in_use = 7;
    p->cli.answer = count_jobs;
    p->cli.echo = true;
    memset(jobs_taken, 0, sizeof jobs_taken);
    tickets_seen = 0;
    p->sv[0] = p->sv[1] = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) != 0)
        return -1;
    if (!(p->con.s = cc_session_new(p->cctx, NULL)) || !(p->cli.s = cc_session_new(p->sctx, NULL)))
        return -1;
    cc_session_set_event_callback(p->con.s, on_event, &p->con);
    cc_session_set_event_callback(p->cli.s, on_event, &p->cli);
    if (cc_session_set_credentials(p->con.s, "tester", NULL, NULL) != CC_OK)
        return -1;
    if (ticket) {
        int r = cc_session_set_reconnect_ticket(p->con.s, ticket, len, flags);
        if (set_result)
            *set_result = r;
        if (r != CC_OK)
            return -2;
    }
    if (cc_session_accept_fd(p->cli.s, p->sv[0]) != CC_OK)
        return -1;
    p->con.poll_fd = &p->sv[1];
    return cc_session_set_transport(p->con.s, t_fd_send, t_fd_recv, &p->sv[1], "localhost") == CC_OK ? 0 : -1;
}

static bool established_with_ticket(struct tp_side *a, struct tp_side *b)
{
    size_t n;
    if (a->ended || b->ended)
        return true;
    return cc_session_state(a->s) == CC_STATE_ESTABLISHED && cc_session_state(b->s) == CC_STATE_ESTABLISHED &&
           cc_session_reconnect_ticket(a->s, NULL, 0, &n) == CC_ERR_AGAIN;
}

/* Drives the open pair to established with a ticket for the console; copies it out. */
static bool run_to_ticket(struct tp_pair *p, uint8_t *ticket, size_t *len)
{
    if (!tp_drive(&p->con, &p->cli, established_with_ticket, 10000) || p->con.ended || p->cli.ended) {
        printf("# console %s %s: %s; client %s %s: %s\n", cc_state_name(cc_session_state(p->con.s)),
               cc_err_name(cc_session_error(p->con.s)), cc_session_errmsg(p->con.s),
               cc_state_name(cc_session_state(p->cli.s)), cc_err_name(cc_session_error(p->cli.s)),
               cc_session_errmsg(p->cli.s));
        return false;
    }
    return cc_session_reconnect_ticket(p->con.s, ticket, CC_RECONNECT_TICKET_MAX, len) == CC_OK;
}

/* A full connection with the pair's contexts; its ticket. */
static bool full_connection(struct tp_pair *p, uint8_t *ticket, size_t *len, char *id)
{
    if (open_pair(p, NULL, 0, 0, NULL) != 0 || !run_to_ticket(p, ticket, len))
        return false;
    bool ok = cc_session_resumed(p->con.s) == 0 && cc_session_resumed(p->cli.s) == 0 &&
              jobs_taken[CC_JOB_LICENSE] == 1 && cc_session_id(p->con.s) &&
              strcmp(cc_session_id(p->con.s), cc_session_id(p->cli.s)) == 0;
    if (id && cc_session_id(p->con.s))
        snprintf(id, 33, "%s", cc_session_id(p->con.s));
    tp_pair_end(p);
    return ok;
}

static bool both_ended(struct tp_side *a, struct tp_side *b)
{
    return a->ended && b->ended;
}

static bool console_ended(struct tp_side *a, struct tp_side *b)
{
    (void)b;
    return a->ended;
}

static bool both_up_or_ended(struct tp_side *a, struct tp_side *b)
{
    int sa = cc_session_state(a->s), sb = cc_session_state(b->s);
    return (a->ended || sa == CC_STATE_ESTABLISHED) && (b->ended || sb == CC_STATE_ESTABLISHED);
}

/* A refused ticket without fallback: the console fails with CC_ERR_RECONNECT_REFUSED, nobody is in. */
static void expect_refused(struct tp_pair *p, const uint8_t *ticket, size_t len)
{
    T_EQ(open_pair(p, ticket, len, 0, NULL), 0);
    T_ASSERT(tp_drive(&p->con, &p->cli, console_ended, 10000));
    close(p->sv[1]); /* the console's host lets its transport go */
    p->sv[1] = -1;
    T_ASSERT(tp_drive(&p->con, &p->cli, both_ended, 10000));
    T_EQ(cc_session_error(p->con.s), CC_ERR_RECONNECT_REFUSED);
    T_CONTAINS(cc_session_errmsg(p->con.s), "did not take the reconnect ticket");
    T_ASSERT(cc_session_error(p->cli.s) < 0);
    T_ASSERT(cc_session_identity(p->cli.s) == NULL);
    T_ASSERT(cc_session_identity(p->con.s) == NULL);
    T_EQ(jobs_taken[CC_JOB_LICENSE] + jobs_taken[CC_JOB_AUTH], 0);
    tp_pair_end(p);
}

static void t_reconnect_resumes(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL, 600000);
    uint8_t t1[CC_RECONNECT_TICKET_MAX], t2[CC_RECONNECT_TICKET_MAX];
    size_t l1, l2;
    char id[33];
    T_ASSERT(full_connection(&p, t1, &l1, id));
    T_EQ(strlen(id), 32);

    T_EQ(open_pair(&p, t1, l1, 0, NULL), 0);
    T_ASSERT(run_to_ticket(&p, t2, &l2));
    T_EQ(cc_session_resumed(p.con.s), 1);
    T_EQ(cc_session_resumed(p.cli.s), 1);
    T_STREQ(cc_session_id(p.con.s), id);
    T_STREQ(cc_session_id(p.cli.s), id);
    T_STREQ(cc_session_identity(p.cli.s), "psk:tester");
    T_STREQ(cc_session_identity(p.con.s), "psk:tester");
    T_STREQ(cc_session_mechanism(p.cli.s), "psk");
    T_STREQ(p.cli.identity, "psk:tester");
    T_STREQ(p.con.identity, "psk:tester");
    T_STREQ(cc_session_tls_version(p.con.s), "TLSv1.3");
    /* no licence fetch, no mechanism job, no licence frame */
    T_EQ(jobs_taken[CC_JOB_LICENSE], 0);
    T_EQ(jobs_taken[CC_JOB_AUTH], 0);
    T_EQ(p.cli.license_events, 0);
    T_EQ(p.con.license_events, 0);
    T_EQ(tickets_seen, 1);
    /* rotated */
    T_ASSERT(l1 != l2 || memcmp(t1, t2, l1) != 0);
    /* data flows */
    T_EQ(cc_session_send(p.con.s, 3, "hello", 5), 0);
    for (int i = 0; i < 200 && p.con.rx_len < 5; i++) {
        tp_step(&p.con);
        tp_step(&p.cli);
        tp_poll(&p.con, &p.cli, 5);
    }
    T_EQ(p.con.rx_len, 5);
    tp_pair_end(&p);

    /* the rotated ticket works in turn and keeps the id */
    T_EQ(open_pair(&p, t2, l2, 0, NULL), 0);
    T_ASSERT(run_to_ticket(&p, t1, &l1));
    T_EQ(cc_session_resumed(p.cli.s), 1);
    T_STREQ(cc_session_id(p.cli.s), id);
    tp_pair_free(&p);
}

static void t_replay_refused(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL, 600000);
    uint8_t t1[CC_RECONNECT_TICKET_MAX], t2[CC_RECONNECT_TICKET_MAX];
    size_t l1, l2;
    T_ASSERT(full_connection(&p, t1, &l1, NULL));
    T_EQ(open_pair(&p, t1, l1, 0, NULL), 0);
    T_ASSERT(run_to_ticket(&p, t2, &l2));
    T_EQ(cc_session_resumed(p.cli.s), 1);
    tp_pair_end(&p);
    expect_refused(&p, t1, l1);
    if (t_failed_now)
        return;
    T_CONTAINS(log_text, "already used");
    /* with fallback: a full handshake, licence and all */
    T_EQ(open_pair(&p, t1, l1, CC_RECONNECT_FALLBACK, NULL), 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, both_up_or_ended, 10000));
    T_EQ(cc_session_state(p.cli.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_resumed(p.cli.s), 0);
    T_EQ(cc_session_resumed(p.con.s), 0);
    T_EQ(jobs_taken[CC_JOB_LICENSE], 1);
    tp_pair_free(&p);
}

static void t_expired_refused(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL, 1);
    uint8_t t1[CC_RECONNECT_TICKET_MAX];
    size_t l1;
    T_ASSERT(full_connection(&p, t1, &l1, NULL));
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL); /* well past its 1 ms */
    log_len = 0;
    expect_refused(&p, t1, l1);
    if (!t_failed_now)
        T_CONTAINS(log_text, "expired");
    tp_pair_free(&p);
}

/* The sealed TLS ticket's bytes inside the console's ticket. */
static uint8_t *sealed_part(uint8_t *t, size_t len, size_t *n)
{
    size_t off = 4 + 16 + 1;
    off += 1 + t[off];
    off += 2 + ((size_t)t[off] << 8 | t[off + 1]);
    size_t dl = (size_t)t[off] << 8 | t[off + 1];
    const unsigned char *p = t + off + 2;
    SSL_SESSION *s = d2i_SSL_SESSION(NULL, &p, (long)dl);
    if (!s)
        return NULL;
    const unsigned char *tick;
    size_t tl;
    SSL_SESSION_get0_ticket(s, &tick, &tl);
    uint8_t *at = tl ? memmem(t, len, tick, tl) : NULL;
    *n = tl;
    SSL_SESSION_free(s);
    return at;
}

static void reseal(uint8_t *t, size_t len)
{
    unsigned n;
    EVP_Digest(t, len - 32, t + len - 32, &n, EVP_sha256(), NULL);
}

static void t_tampered_refused(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL, 600000);
    uint8_t t1[CC_RECONNECT_TICKET_MAX], bad[CC_RECONNECT_TICKET_MAX];
    size_t l1;
    T_ASSERT(full_connection(&p, t1, &l1, NULL));
    /* a flipped byte anywhere: the console's checksum refuses it at once */
    for (size_t i = 0; i < l1; i += 7) {
        memcpy(bad, t1, l1);
        bad[i] ^= 0x40;
        int r = 0;
        T_EQ(open_pair(&p, bad, l1, 0, &r), -2);
        T_EQ(r, CC_ERR_RECONNECT_TICKET);
        tp_pair_end(&p);
    }
    /* a byte of the client's sealed ticket flipped and the checksum made good: the client's key refuses it */
    memcpy(bad, t1, l1);
    size_t n;
    uint8_t *sealed = sealed_part(bad, l1, &n);
    T_ASSERT(sealed && n > 40);
    sealed[n / 2] ^= 0x01;
    reseal(bad, l1);
    log_len = 0;
    expect_refused(&p, bad, l1);
    if (!t_failed_now)
        T_CONTAINS(log_text, "altered");
    /* the untouched ticket was never spent by that */
    T_EQ(open_pair(&p, t1, l1, 0, NULL), 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, both_up_or_ended, 10000));
    T_EQ(cc_session_resumed(p.cli.s), 1);
    tp_pair_free(&p);
}

static void t_foreign_refused(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL, 600000);
    uint8_t t1[CC_RECONNECT_TICKET_MAX];
    size_t l1;
    T_ASSERT(full_connection(&p, t1, &l1, NULL));
    cc_context_free(p.sctx);
    p.sctx = client_ctx(NULL, 600000); /* another client: another random key */
    log_len = 0;
    expect_refused(&p, t1, l1);
    if (!t_failed_now)
        T_CONTAINS(log_text, "not issued under this client's ticket key");
    tp_pair_free(&p);
}

static void t_garbage_refused(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL, 600000);
    uint8_t junk[600];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    int r = 0;
    T_EQ(open_pair(&p, junk, sizeof junk, 0, &r), -2);
    T_EQ(r, CC_ERR_RECONNECT_TICKET);
    tp_pair_end(&p);
    /* truncated, and bounds */
    uint8_t t1[CC_RECONNECT_TICKET_MAX];
    size_t l1;
    T_ASSERT(full_connection(&p, t1, &l1, NULL));
    for (size_t cut = 1; cut < l1; cut += 13) {
        T_EQ(open_pair(&p, t1, cut, 0, &r), -2);
        T_EQ(r, CC_ERR_RECONNECT_TICKET);
        tp_pair_end(&p);
    }
    cc_session *s = cc_session_new(p.cctx, NULL);
    T_EQ(cc_session_set_reconnect_ticket(s, t1, CC_RECONNECT_TICKET_MAX + 1, 0), CC_ERR_INVALID);
    T_EQ(cc_session_set_reconnect_ticket(s, t1, l1, 2), CC_ERR_INVALID);
    T_EQ(cc_session_set_reconnect_ticket(s, NULL, l1, 0), CC_ERR_INVALID);
    size_t n;
    T_EQ(cc_session_reconnect_ticket(s, NULL, 0, &n), CC_ERR_STATE);
    T_ASSERT(cc_session_id(s) == NULL);
    T_EQ(cc_session_resumed(s), CC_ERR_STATE);
    cc_session_free(s);
    s = cc_session_new(p.sctx, NULL);
    T_EQ(cc_session_set_reconnect_ticket(s, t1, l1, 0), CC_ERR_STATE);
    cc_session_free(s);
    T_EQ(cc_context_set_reconnect_key(p.cctx, KEY_A, 32), CC_ERR_CONFIG);
    T_EQ(cc_context_set_resume_callback(p.cctx, NULL, NULL), CC_ERR_CONFIG);
    tp_pair_free(&p);
    cc_context *c = client_ctx(NULL, 600000);
    T_EQ(cc_context_set_reconnect_key(c, KEY_A, 31), CC_ERR_INVALID);
    T_EQ(cc_context_set_reconnect_key(c, KEY_A, 65), CC_ERR_INVALID);
    cc_context_free(c);
}

static int refusals;
static char seen_id[40], seen_identity[64], seen_mech[40];
static int refuse_resume(void *user, cc_session *s, const char *id, const char *mech, const char *identity)
{
    (void)s;
    refusals++;
    snprintf(seen_id, sizeof seen_id, "%s", id);
    snprintf(seen_mech, sizeof seen_mech, "%s", mech);
    snprintf(seen_identity, sizeof seen_identity, "%s", identity);
    return *(int *)user;
}

static void t_host_refuses(void)
{
    static int answer = 1;
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL, 600000);
    T_EQ(cc_context_set_resume_callback(p.sctx, refuse_resume, &answer), CC_OK);
    uint8_t t1[CC_RECONNECT_TICKET_MAX];
    size_t l1;
    char id[33];
    T_ASSERT(full_connection(&p, t1, &l1, id));
    T_EQ(refusals, 0);
    expect_refused(&p, t1, l1);
    if (t_failed_now)
        return;
    T_EQ(refusals, 1);
    T_STREQ(seen_id, id);
    T_STREQ(seen_identity, "psk:tester");
    T_STREQ(seen_mech, "psk");
    tp_pair_free(&p);
}

static void t_resumption_off(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(KEY_A, 0);
    T_EQ(open_pair(&p, NULL, 0, 0, NULL), 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, both_up_or_ended, 10000));
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    for (int i = 0; i < 20; i++) {
        tp_step(&p.con);
        tp_step(&p.cli);
        tp_poll(&p.con, &p.cli, 5);
    }
    size_t n;
    T_EQ(cc_session_reconnect_ticket(p.con.s, NULL, 0, &n), CC_ERR_STATE);
    T_EQ(tickets_seen, 0);
    tp_pair_free(&p);
    /* a ticket issued with the key while on is refused once the client turned it off */
    p = (struct tp_pair){0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(KEY_A, 600000);
    uint8_t t1[CC_RECONNECT_TICKET_MAX];
    size_t l1;
    T_ASSERT(full_connection(&p, t1, &l1, NULL));
    cc_context_free(p.sctx);
    p.sctx = client_ctx(KEY_A, 0);
    log_len = 0;
    expect_refused(&p, t1, l1);
    if (!t_failed_now)
        T_CONTAINS(log_text, "turned off");
    tp_pair_free(&p);
}

static void t_host_key_survives_restart(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(KEY_A, 600000);
    uint8_t t1[CC_RECONNECT_TICKET_MAX], t2[CC_RECONNECT_TICKET_MAX];
    size_t l1, l2;
    char id[33];
    T_ASSERT(full_connection(&p, t1, &l1, id));
    T_ASSERT(full_connection(&p, t2, &l2, NULL));
    /* "restart": the same key in a new context */
    cc_context_free(p.sctx);
    p.sctx = client_ctx(KEY_A, 600000);
    T_EQ(open_pair(&p, t1, l1, 0, NULL), 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, both_up_or_ended, 10000));
    T_EQ(cc_session_resumed(p.cli.s), 1);
    T_STREQ(cc_session_id(p.cli.s), id);
    T_EQ(jobs_taken[CC_JOB_LICENSE], 0);
    tp_pair_end(&p);
    /* a new context without the key, or with another, refuses */
    cc_context_free(p.sctx);
    p.sctx = client_ctx(NULL, 600000);
    expect_refused(&p, t2, l2);
    if (t_failed_now)
        return;
    cc_context_free(p.sctx);
    p.sctx = client_ctx(KEY_B, 600000);
    expect_refused(&p, t2, l2); /* t2 was spent in the refusal above only in that context's replay set */
    tp_pair_free(&p);
}

/* Every 12-byte stretch of the ticket's secret part, as hex or raw. */
static bool log_has_ticket(const uint8_t *t, size_t len)
{
    char hx[25], HX[25];
    for (size_t i = 21; i + 12 <= len; i++) {
        for (int k = 0; k < 12; k++) {
            snprintf(hx + 2 * k, 3, "%02x", t[i + k]);
            snprintf(HX + 2 * k, 3, "%02X", t[i + k]);
        }
        if (strstr(log_text, hx) || strstr(log_text, HX) || memmem(log_text, log_len, t + i, 12))
            return true;
    }
    return false;
}

static void t_ticket_never_logged(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(NULL, 600000);
    log_len = 0;
    log_text[0] = 0;
    uint8_t t1[CC_RECONNECT_TICKET_MAX], t2[CC_RECONNECT_TICKET_MAX];
    size_t l1, l2;
    T_ASSERT(full_connection(&p, t1, &l1, NULL));
    T_EQ(open_pair(&p, t1, l1, 0, NULL), 0);
    T_ASSERT(run_to_ticket(&p, t2, &l2));
    tp_pair_end(&p);
    expect_refused(&p, t1, l1);
    T_ASSERT(log_len > 200); /* the log did say things, at debug level */
    T_CONTAINS(log_text, "resumes session");
    T_ASSERT(!log_has_ticket(t1, l1));
    T_ASSERT(!log_has_ticket(t2, l2));
    tp_pair_free(&p);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (t_make_certs() != 0) {
        printf("not ok - cannot make test certificates\n");
        return 1;
    }
    snprintf(pskfile, sizeof pskfile, "%s/psk.key", t_tmpdir());
    FILE *f = fopen(pskfile, "w");
    fputs("0123456789abcdef-test-key\n", f);
    fclose(f);
    t_run("a reconnect resumes with no licence or auth job, rotates its ticket, keeps the id", t_reconnect_resumes);
    t_run("a used ticket is refused (or a full handshake with fallback)", t_replay_refused);
    t_run("an expired ticket is refused", t_expired_refused);
    t_run("a tampered ticket is refused", t_tampered_refused);
    t_run("a foreign client's ticket is refused", t_foreign_refused);
    t_run("garbage and truncated tickets, and the API's bounds", t_garbage_refused);
    t_run("the client's host refuses a resumption", t_host_refuses);
    t_run("resumption turned off: no ticket issued, none taken", t_resumption_off);
    t_run("a host-supplied key survives a restart; another context refuses", t_host_key_survives_restart);
    t_run("the ticket never appears in the logs", t_ticket_never_logged);
    return t_done();
}
