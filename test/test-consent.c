/* test-consent.c -- the consent stage (issue 13): the client host asks the person at the
 * machine through a CC_JOB_CONSENT job after authentication; the console is told it waits
 * (CONSENT_WAIT) and then the verdict. A console and a client in one process (test/pair.c). */
#define _GNU_SOURCE
#include "harness.h"
#include "pair.h"

#include "../examples/psk.h"
#include "../lib/core/frame.h"

#include <carboncopy.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char pskfile[600];

/* What one side's consent-related events said, in order. */
struct rec {
    struct tp_side *sd;
    int seq;             /* events seen so far */
    int consent_events;  /* CC_EVENT_CONSENT */
    int consent_seq;     /* seq of the last one */
    int established_seq; /* seq of the state change to established, 0 if none */
    int granted, code, unattended;
    uint64_t value;
    char identity[256], mechanism[64], address[64], detail[600];
    int state_at_consent;
};
static struct rec con_rec, cli_rec;

static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    struct rec *r = user;
    r->seq++;
    if (ev->type == CC_EVENT_CONSENT) {
        r->consent_events++;
        r->consent_seq = r->seq;
        r->granted = ev->granted;
        r->code = ev->code;
        r->value = ev->value;
        r->unattended = ev->unattended;
        r->state_at_consent = ev->state;
        snprintf(r->identity, sizeof r->identity, "%s", ev->text ? ev->text : "");
        snprintf(r->mechanism, sizeof r->mechanism, "%s", ev->mechanism ? ev->mechanism : "");
        snprintf(r->address, sizeof r->address, "%s", ev->address ? ev->address : "");
        snprintf(r->detail, sizeof r->detail, "%s", ev->detail ? ev->detail : "");
    }
    if (ev->type == CC_EVENT_STATE && ev->state == CC_STATE_ESTABLISHED)
        r->established_seq = r->seq;
    tp_on_event(r->sd, s, ev);
}

/* What the test's host does with the consent job. */
static int answer_with = -1; /* CC_CONSENT_*, or -1: keep it (sd->held) */
static int answer_mode;      /* 0 answer, 1 cc_job_run, 2 hand back untouched */
static const char *answer_reason;
static int consent_jobs;
static int answer_errors; /* a call in answer() that did not return what it should */
static char job_identity[256], job_mechanism[64], job_address[64];
static uint32_t job_timeout;
static int job_state; /* the client's state when the job was taken */

static bool answer(struct tp_side *sd, cc_job *j)
{
    if (cc_job_type(j) == CC_JOB_LICENSE) {
        if (cc_job_consent_identity(j) != NULL) /* the accessors check the kind */
            answer_errors++;
        cc_job_license_set_figures(j, 25, 7);
        return true;
    }
    if (cc_job_type(j) != CC_JOB_CONSENT) {
        cc_job_run(j);
        return true;
    }
    consent_jobs++;
    job_state = cc_session_state(sd->s);
    snprintf(job_identity, sizeof job_identity, "%s", cc_job_consent_identity(j));
    snprintf(job_mechanism, sizeof job_mechanism, "%s", cc_job_consent_mechanism(j));
    snprintf(job_address, sizeof job_address, "%s", cc_job_consent_address(j));
    job_timeout = cc_job_consent_timeout_ms(j);
    if (answer_mode == 1) {
        if (cc_job_run(j) != CC_ERR_CONSENT_REFUSED)
            answer_errors++;
        return true;
    }
    if (answer_mode == 2)
        return true;
    if (answer_with < 0) {
        sd->held = j;
        return false;
    }
    char longr[300];
    memset(longr, 'x', sizeof longr - 1);
    longr[sizeof longr - 1] = 0;
    answer_errors += cc_job_consent_answer(j, 3, NULL) != CC_ERR_INVALID;
    answer_errors += cc_job_consent_answer(j, CC_CONSENT_ACCEPT, longr) != CC_ERR_INVALID;
    answer_errors += cc_job_consent_answer(j, answer_with, answer_reason) != CC_OK;
    answer_errors += cc_job_consent_answer(j, CC_CONSENT_ACCEPT, NULL) != CC_ERR_STATE; /* once */
    return true;
}

static cc_context *client_ctx(int mode)
{
    cc_context *c = tp_psk_context(CC_ROLE_CLIENT, pskfile);
    if (c && cc_context_set_consent(c, mode) != CC_OK) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static cc_context *console_ctx(void)
{
    return tp_psk_context(CC_ROLE_CONSOLE, pskfile);
}

static void reset(void)
{
    memset(&con_rec, 0, sizeof con_rec);
    memset(&cli_rec, 0, sizeof cli_rec);
    answer_with = -1;
    answer_mode = 0;
    answer_reason = NULL;
    consent_jobs = 0;
    answer_errors = 0;
    job_identity[0] = job_mechanism[0] = job_address[0] = 0;
    job_timeout = 0;
    job_state = -1;
}

/* A pair whose client asks in `mode` (contexts already set in p are kept). */
static bool start(struct tp_pair *p, int mode)
{
    if (!p->cctx)
        p->cctx = console_ctx();
    if (!p->sctx)
        p->sctx = client_ctx(mode);
    if (!p->cctx || !p->sctx)
        return false;
    p->cli.answer = answer;
    p->cli.lic_count = 25;
    p->cli.lic_in_use = 7;
    if (tp_pair_open(p, "tester", NULL) != 0)
        return false;
    con_rec.sd = &p->con;
    cli_rec.sd = &p->cli;
    cc_session_set_event_callback(p->con.s, on_event, &con_rec);
    cc_session_set_event_callback(p->cli.s, on_event, &cli_rec);
    return true;
}

/* Every test ends with this: the pair freed, and every call the answer made returned what it should. */
static void finish(struct tp_pair *p)
{
    tp_pair_free(p);
    T_EQ(answer_errors, 0);
}

static bool console_told(struct tp_side *a, struct tp_side *b)
{
    return con_rec.consent_events > 0 || a->ended || b->ended;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Opens a pair on the contexts in p as start() does, the console presenting `ticket` first. */
static bool start_with_ticket(struct tp_pair *p, const uint8_t *ticket, size_t len)
{
    memset(&p->con, 0, sizeof p->con);
    memset(&p->cli, 0, sizeof p->cli);
    p->cli.answer = answer;
    p->cli.lic_count = 25;
    p->cli.lic_in_use = 7;
    p->sv[0] = p->sv[1] = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) != 0)
        return false;
    if (!(p->con.s = cc_session_new(p->cctx, NULL)) || !(p->cli.s = cc_session_new(p->sctx, NULL)))
        return false;
    con_rec.sd = &p->con;
    cli_rec.sd = &p->cli;
    cc_session_set_event_callback(p->con.s, on_event, &con_rec);
    cc_session_set_event_callback(p->cli.s, on_event, &cli_rec);
    if (cc_session_set_credentials(p->con.s, "tester", NULL, NULL) != CC_OK ||
        cc_session_set_reconnect_ticket(p->con.s, ticket, len, 0) != CC_OK ||
        cc_session_accept_fd(p->cli.s, p->sv[0]) != CC_OK)
        return false;
    p->con.poll_fd = &p->sv[1];
    return cc_session_set_transport(p->con.s, t_fd_send, t_fd_recv, &p->sv[1], "localhost") == CC_OK;
}

static bool established_with_ticket(struct tp_side *a, struct tp_side *b)
{
    size_t n;
    if (a->ended || b->ended)
        return true;
    return cc_session_state(a->s) == CC_STATE_ESTABLISHED && cc_session_state(b->s) == CC_STATE_ESTABLISHED &&
           cc_session_reconnect_ticket(a->s, NULL, 0, &n) == CC_ERR_AGAIN;
}

/* ================================================================= tests */

static void t_configuration(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    T_EQ(cc_context_set_consent(c, CC_CONSENT_MODE_ASK), CC_ERR_CONFIG);
    T_CONTAINS(cc_context_errmsg(c), "client role");
    T_EQ(cc_context_set_timeout(c, CC_TIMEOUT_CONSENT, 1000), CC_OK); /* the console's cap */
    cc_context_free(c);
    c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_EQ(cc_context_set_consent(c, 3), CC_ERR_INVALID);
    T_EQ(cc_context_set_consent(c, -1), CC_ERR_INVALID);
    T_EQ(cc_context_set_consent(c, CC_CONSENT_MODE_ASK_OR_OK), CC_OK);
    T_EQ(cc_context_set_timeout(c, CC_TIMEOUT_CONSENT, 0), CC_ERR_INVALID);
    T_EQ(cc_context_set_timeout(c, CC_TIMEOUT_CONSENT, 86400001), CC_ERR_INVALID);
    T_EQ(cc_context_set_timeout(c, CC_TIMEOUT_CONSENT, 86400000), CC_OK);
    cc_context_free(c);
    T_STREQ(cc_err_name(CC_ERR_CONSENT_REFUSED), "CC_ERR_CONSENT_REFUSED");
    T_STREQ(cc_err_name(CC_ERR_CONSENT_TIMEOUT), "CC_ERR_CONSENT_TIMEOUT");
    T_CONTAINS(cc_strerror(CC_ERR_CONSENT_REFUSED), "refused");
    T_CONTAINS(cc_strerror(CC_ERR_CONSENT_TIMEOUT), "in time");
    T_ASSERT(cc_job_consent_address(NULL) == NULL);
    T_EQ(cc_job_consent_answer(NULL, CC_CONSENT_ACCEPT, NULL), CC_ERR_INVALID);
}

static void t_wait_frame_codec(void)
{
    cc__msg m;
    char d[256];
    const uint8_t ok[4] = {0, 0, 0xea, 0x60};
    T_EQ(cc__f_consent_wait_parse(ok, 4, &m.consent_wait, d, sizeof d), CC_OK);
    T_EQ(m.consent_wait.timeout_ms, 60000);
    const uint8_t zero[4] = {0, 0, 0, 0};
    T_EQ(cc__f_consent_wait_parse(zero, 4, &m.consent_wait, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "timeout");
    const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    T_EQ(cc__f_consent_wait_parse(huge, 4, &m.consent_wait, d, sizeof d), CC_ERR_BAD_FRAME);
    T_EQ(cc__f_consent_wait_parse(ok, 3, &m.consent_wait, d, sizeof d), CC_ERR_BAD_FRAME);
    T_STREQ(cc__frame_name(CC__F_CONSENT_WAIT), "CONSENT_WAIT");
}

static void t_accept(void)
{
    reset();
    answer_with = CC_CONSENT_ACCEPT;
    answer_reason = "alice said yes";
    struct tp_pair p = {0};
    T_ASSERT(start(&p, CC_CONSENT_MODE_ASK));
    uint64_t before = wall_ms();
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 10000));
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_state(p.cli.s), CC_STATE_ESTABLISHED);
    /* the job: asked once, after authentication, with who asks */
    T_EQ(consent_jobs, 1);
    T_EQ(job_state, CC_STATE_AUTHENTICATING);
    T_STREQ(job_identity, "psk:tester");
    T_STREQ(job_mechanism, "psk");
    T_STREQ(job_address, ""); /* a socketpair has no address */
    T_EQ(job_timeout, 60000);
    /* the client's audit record, before it is established */
    T_EQ(cli_rec.consent_events, 1);
    T_EQ(cli_rec.granted, 1);
    T_EQ(cli_rec.code, 0);
    T_EQ(cli_rec.unattended, 0);
    T_STREQ(cli_rec.identity, "psk:tester");
    T_STREQ(cli_rec.mechanism, "psk");
    T_STREQ(cli_rec.detail, "alice said yes");
    T_ASSERT(cli_rec.value >= before && cli_rec.value <= wall_ms());
    T_ASSERT(cli_rec.established_seq > cli_rec.consent_seq);
    /* the console heard that the client waits, then the verdict */
    T_EQ(con_rec.consent_events, 1);
    T_EQ(con_rec.granted, -1);
    T_EQ(con_rec.value, 60000);
    T_EQ(con_rec.state_at_consent, CC_STATE_AUTHENTICATING);
    T_ASSERT(con_rec.established_seq > con_rec.consent_seq);
    T_STREQ(cc_session_identity(p.con.s), "psk:tester");
    /* data flows as without consent */
    T_EQ(cc_session_send(p.con.s, 1, "hello", 5), CC_OK);
    uint64_t end = t_now_ms() + 5000;
    while (p.cli.rx_len < 5 && t_now_ms() < end)
        tp_drive(&p.con, &p.cli, tp_both_ended, 5);
    T_EQ(p.cli.rx_len, 5);
    finish(&p);
}

static void t_refuse(void)
{
    reset();
    answer_with = CC_CONSENT_REFUSE;
    answer_reason = "not now, I am presenting";
    struct tp_pair p = {0};
    T_ASSERT(start(&p, CC_CONSENT_MODE_ASK));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 10000));
    T_EQ(p.cli.result, CC_ERR_CONSENT_REFUSED);
    T_EQ(p.con.result, CC_ERR_CONSENT_REFUSED);
    T_EQ(cc_session_error(p.con.s), CC_ERR_CONSENT_REFUSED);
    T_CONTAINS(cc_session_errmsg(p.con.s), "not now, I am presenting");
    T_CONTAINS(cc_session_errmsg(p.cli.s), "consent refused");
    T_EQ(p.con.closed_code, CC_ERR_CONSENT_REFUSED);
    T_EQ(cli_rec.consent_events, 1);
    T_EQ(cli_rec.granted, 0);
    T_EQ(cli_rec.code, CC_ERR_CONSENT_REFUSED);
    T_STREQ(cli_rec.detail, "not now, I am presenting");
    T_EQ(con_rec.consent_events, 1);
    T_EQ(cli_rec.established_seq, 0);
    T_EQ(con_rec.established_seq, 0);
    T_ASSERT(cc_session_identity(p.con.s) == NULL);
    finish(&p);
}

static void t_timeout(void)
{
    /* The consent deadline runs past the handshake deadline: the handshake clock stopped at
     * authentication, so the session ends with CC_ERR_CONSENT_TIMEOUT, not CC_ERR_TIMEOUT. */
    reset();
    struct tp_pair p = {0};
    p.sctx = client_ctx(CC_CONSENT_MODE_ASK);
    T_EQ(cc_context_set_timeout(p.sctx, CC_TIMEOUT_HANDSHAKE, 1500), CC_OK);
    T_EQ(cc_context_set_timeout(p.sctx, CC_TIMEOUT_CONSENT, 3000), CC_OK);
    T_ASSERT(start(&p, CC_CONSENT_MODE_ASK));
    T_ASSERT(tp_drive(&p.con, &p.cli, console_told, 10000));
    T_EQ(con_rec.value, 3000);
    T_ASSERT(p.cli.held != NULL);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 20000));
    T_EQ(p.cli.result, CC_ERR_CONSENT_TIMEOUT);
    T_EQ(p.con.result, CC_ERR_CONSENT_TIMEOUT);
    T_CONTAINS(cc_session_errmsg(p.cli.s), "consent deadline of 3000 ms");
    T_EQ(cli_rec.consent_events, 1);
    T_EQ(cli_rec.code, CC_ERR_CONSENT_TIMEOUT);
    T_EQ(cli_rec.granted, 0);
    /* the person answers too late: the answer is ignored, the job freed with the hand-back */
    cc_job *j = p.cli.held;
    p.cli.held = NULL;
    T_EQ(cc_job_consent_answer(j, CC_CONSENT_ACCEPT, "too late"), CC_OK);
    T_EQ(cc_session_job_done(p.cli.s, j), CC_OK);
    T_EQ(cc_session_step(p.cli.s), CC_ERR_CONSENT_TIMEOUT);
    T_EQ(cc_session_state(p.cli.s), CC_STATE_FAILED);
    T_EQ(cli_rec.consent_events, 1);
    finish(&p);
}

static void t_console_cap(void)
{
    /* The client would wait 60 s; this console waits at most 300 ms (+ the margin) and ends
     * with CC_ERR_CONSENT_TIMEOUT, telling the client, whose audit record says so. */
    reset();
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    T_EQ(cc_context_set_timeout(p.cctx, CC_TIMEOUT_CONSENT, 300), CC_OK);
    T_ASSERT(start(&p, CC_CONSENT_MODE_ASK));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 20000));
    T_EQ(p.con.result, CC_ERR_CONSENT_TIMEOUT);
    T_CONTAINS(cc_session_errmsg(p.con.s), "at most 300 ms");
    T_EQ(p.cli.result, CC_ERR_CONSENT_TIMEOUT); /* the console's CLOSE carries the code */
    T_EQ(cli_rec.consent_events, 1);
    T_EQ(cli_rec.code, CC_ERR_CONSENT_TIMEOUT);
    finish(&p);
}

static void t_console_gone(void)
{
    /* The console goes away while the person reads the dialog: the client ends, its audit
     * record says why, and the answer that comes later is ignored (the job is freed). */
    reset();
    struct tp_pair p = {0};
    T_ASSERT(start(&p, CC_CONSENT_MODE_ASK));
    T_ASSERT(tp_drive(&p.con, &p.cli, console_told, 10000));
    T_ASSERT(p.cli.held != NULL);
    cc_session_free(p.con.s);
    p.con.s = NULL;
    p.con.ended = true;
    close(p.sv[1]);
    p.sv[1] = -1;
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 10000));
    T_EQ(p.cli.result, CC_ERR_CLOSED);
    T_EQ(cli_rec.consent_events, 1);
    T_EQ(cli_rec.code, CC_ERR_CLOSED);
    T_EQ(cli_rec.granted, 0);
    T_STREQ(cli_rec.identity, "psk:tester");
    cc_job *j = p.cli.held;
    p.cli.held = NULL;
    T_EQ(cc_job_consent_answer(j, CC_CONSENT_ACCEPT, NULL), CC_OK);
    T_EQ(cc_session_job_done(p.cli.s, j), CC_OK);
    T_EQ(cc_session_step(p.cli.s), CC_ERR_CLOSED);
    T_EQ(cli_rec.consent_events, 1);
    T_EQ(cli_rec.established_seq, 0);
    finish(&p);

    /* The same, but the host frees the session with the job out: it frees the job itself. */
    reset();
    struct tp_pair q = {0};
    T_ASSERT(start(&q, CC_CONSENT_MODE_ASK));
    T_ASSERT(tp_drive(&q.con, &q.cli, console_told, 10000));
    T_ASSERT(q.cli.held != NULL);
    finish(&q); /* frees the held job after its session: no leak under ASan */
}

static void t_nobody_logged_on(void)
{
    /* ASK: nobody there refuses (fail closed). */
    reset();
    answer_with = CC_CONSENT_NOBODY;
    struct tp_pair p = {0};
    T_ASSERT(start(&p, CC_CONSENT_MODE_ASK));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 10000));
    T_EQ(p.cli.result, CC_ERR_CONSENT_REFUSED);
    T_EQ(p.con.result, CC_ERR_CONSENT_REFUSED);
    T_CONTAINS(cc_session_errmsg(p.con.s), "nobody is logged on");
    T_EQ(cli_rec.unattended, 1);
    T_EQ(cli_rec.granted, 0);
    T_CONTAINS(cli_rec.detail, "policy refuses");
    finish(&p);

    /* ASK_OR_OK: nobody there lets the console in, and the record says nobody was asked. */
    reset();
    answer_with = CC_CONSENT_NOBODY;
    answer_reason = "no session on the console";
    struct tp_pair q = {0};
    T_ASSERT(start(&q, CC_CONSENT_MODE_ASK_OR_OK));
    T_ASSERT(tp_drive(&q.con, &q.cli, tp_both_established, 10000));
    T_EQ(cc_session_state(q.con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_state(q.cli.s), CC_STATE_ESTABLISHED);
    T_EQ(cli_rec.unattended, 1);
    T_EQ(cli_rec.granted, 1);
    T_CONTAINS(cli_rec.detail, "no session on the console");
    T_CONTAINS(cli_rec.detail, "lets the console in");
    finish(&q);

    /* ASK_OR_OK still asks a person who is there, and a refusal stands. */
    reset();
    answer_with = CC_CONSENT_REFUSE;
    struct tp_pair r = {0};
    T_ASSERT(start(&r, CC_CONSENT_MODE_ASK_OR_OK));
    T_ASSERT(tp_drive(&r.con, &r.cli, tp_both_ended, 10000));
    T_EQ(r.con.result, CC_ERR_CONSENT_REFUSED);
    T_EQ(cli_rec.unattended, 0);
    finish(&r);
}

static void t_no_host_answer_fails_closed(void)
{
    /* cc_job_run asks nobody: refused, with a detail that says so. */
    reset();
    answer_mode = 1;
    struct tp_pair p = {0};
    T_ASSERT(start(&p, CC_CONSENT_MODE_ASK_OR_OK));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 10000));
    T_EQ(p.con.result, CC_ERR_CONSENT_REFUSED);
    T_EQ(p.cli.result, CC_ERR_CONSENT_REFUSED);
    T_CONTAINS(cli_rec.detail, "cc_job_run");
    T_CONTAINS(cc_session_errmsg(p.con.s), "no host answered");
    finish(&p);

    /* handed back untouched: refused too */
    reset();
    answer_mode = 2;
    struct tp_pair q = {0};
    T_ASSERT(start(&q, CC_CONSENT_MODE_ASK_OR_OK));
    T_ASSERT(tp_drive(&q.con, &q.cli, tp_both_ended, 10000));
    T_EQ(q.con.result, CC_ERR_CONSENT_REFUSED);
    T_CONTAINS(cli_rec.detail, "unanswered");
    finish(&q);
}

static void t_off_has_no_stage(void)
{
    reset();
    answer_with = CC_CONSENT_REFUSE; /* would refuse, were it asked */
    struct tp_pair p = {0};
    T_ASSERT(start(&p, CC_CONSENT_MODE_OFF));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 10000));
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_state(p.cli.s), CC_STATE_ESTABLISHED);
    T_EQ(consent_jobs, 0);
    T_EQ(cli_rec.consent_events, 0);
    T_EQ(con_rec.consent_events, 0);
    finish(&p);
}

static void t_address_over_tcp(void)
{
    /* Over TCP the job and the record carry the console's address. */
    reset();
    answer_with = CC_CONSENT_ACCEPT;
    struct tp_pair p = {0};
    p.cctx = console_ctx();
    p.sctx = client_ctx(CC_CONSENT_MODE_ASK);
    p.cli.answer = answer;
    p.cli.lic_count = 25;
    p.cli.lic_in_use = 7;
    struct sockaddr_in addr;
    int lfd = t_listen(&addr);
    T_ASSERT(lfd >= 0);
    T_EQ(tp_pair_connect(&p, lfd, &addr, "tester", NULL), 0);
    cli_rec.sd = &p.cli;
    bool hooked = false;
    uint64_t end = t_now_ms() + 10000;
    while ((!p.cli.s || cc_session_state(p.cli.s) < CC_STATE_ESTABLISHED) && !p.cli.ended && !p.con.ended &&
           t_now_ms() < end) {
        tp_pair_step(&p);
        if (p.cli.s && !hooked) /* from the accept on, before the consent stage */
            hooked = cc_session_set_event_callback(p.cli.s, on_event, &cli_rec) == CC_OK;
        tp_pair_poll(&p, 5);
    }
    T_EQ(cc_session_state(p.cli.s), CC_STATE_ESTABLISHED);
    T_STREQ(job_address, "127.0.0.1");
    T_STREQ(cli_rec.address, "127.0.0.1");
    finish(&p);
    close(lfd);
}

/* The client's allocations fail in turn from its session's start: each run ends (no hang), never
 * established without consent, and with enough of them consent is asked and given. */
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
    int ok_at = -1, asked_failed = 0;
    for (long n = 0; n < 600 && ok_at < 0; n++) {
        reset();
        answer_with = CC_CONSENT_ACCEPT;
        struct tp_pair p = {0};
        alloc_budget = 1000000;
        p.sctx = cc_context_new(CC_ROLE_CLIENT, &al, NULL);
        T_ASSERT(p.sctx != NULL);
        T_EQ(cc_context_set_certificate(p.sctx, t_cert("client.pem"), t_cert("client.key")), CC_OK);
        T_EQ(psk_register(p.sctx, pskfile), CC_OK);
        T_EQ(cc_context_set_consent(p.sctx, CC_CONSENT_MODE_ASK), CC_OK);
        alloc_budget = n;
        if (start(&p, CC_CONSENT_MODE_ASK)) {
            tp_drive(&p.con, &p.cli, tp_both_established, 5000);
            if (cc_session_state(p.cli.s) == CC_STATE_ESTABLISHED) {
                ok_at = (int)n;
                T_EQ(consent_jobs, 1);
                T_EQ(cli_rec.granted, 1);
            } else {
                T_ASSERT(p.cli.ended); /* failed, did not hang */
                /* the console is in only if the person let it in (the client may fail after
                 * its AUTH_RESULT went out, e.g. allocating once established) */
                if (cc_session_state(p.con.s) == CC_STATE_ESTABLISHED)
                    T_ASSERT(consent_jobs == 1 && cli_rec.consent_events == 1 && cli_rec.granted == 1);
                /* out of memory after the licence verdict went out, before the job was handed out
                 * (the consent job's or CONSENT_WAIT's allocation): the console is not let in */
                if (p.con.license_events == 1 && consent_jobs == 0 && cc_session_error(p.cli.s) == CC_ERR_NOMEM &&
                    cc_session_state(p.con.s) != CC_STATE_ESTABLISHED)
                    asked_failed++;
            }
        }
        alloc_budget = 1000000;
        finish(&p);
    }
    printf("#   the client needs %d allocations to ask and let the console in\n", ok_at);
    T_ASSERT(ok_at > 0);
    printf("#   %d runs failed out of memory before the consent job was handed out\n", asked_failed);
}

/* Consent given: the console gets a reconnect ticket, and the session resumed with it asks
 * nobody (the consent holds for the ticket's lifetime, doc/RECONNECT.md). */
static void t_reconnect_inherits_consent(void)
{
    reset();
    answer_with = CC_CONSENT_ACCEPT;
    struct tp_pair p = {0};
    T_ASSERT(start(&p, CC_CONSENT_MODE_ASK));
    T_ASSERT(tp_drive(&p.con, &p.cli, established_with_ticket, 10000));
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    T_EQ(consent_jobs, 1);
    uint8_t ticket[CC_RECONNECT_TICKET_MAX];
    size_t len = 0;
    T_EQ(cc_session_reconnect_ticket(p.con.s, ticket, sizeof ticket, &len), CC_OK);
    tp_pair_end(&p);

    reset();
    answer_with = CC_CONSENT_REFUSE; /* were the person asked again, the resumption would fail */
    T_ASSERT(start_with_ticket(&p, ticket, len));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 10000));
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_state(p.cli.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_resumed(p.con.s), 1);
    T_EQ(cc_session_resumed(p.cli.s), 1);
    T_EQ(consent_jobs, 0);
    T_EQ(cli_rec.consent_events, 0);
    T_EQ(con_rec.consent_events, 0);
    finish(&p);
}

/* Consent refused: the console never gets a reconnect ticket to come back without asking. */
static void t_refused_has_no_ticket(void)
{
    reset();
    answer_with = CC_CONSENT_REFUSE;
    struct tp_pair p = {0};
    T_ASSERT(start(&p, CC_CONSENT_MODE_ASK));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 10000));
    T_EQ(cc_session_error(p.con.s), CC_ERR_CONSENT_REFUSED);
    size_t n = 0;
    T_EQ(cc_session_reconnect_ticket(p.con.s, NULL, 0, &n), CC_ERR_STATE);
    finish(&p);
}

int main(void)
{
    const char *tmp = t_tmpdir();
    if (t_make_certs() != 0) {
        printf("not ok - cannot make test certificates\n");
        return 1;
    }
    snprintf(pskfile, sizeof pskfile, "%s/psk.key", tmp);
    FILE *f = fopen(pskfile, "w");
    fputs("0123456789abcdef-test-key\n", f);
    fclose(f);

    t_run("consent settings, codes and names", t_configuration);
    t_run("the CONSENT_WAIT frame's codec", t_wait_frame_codec);
    t_run("consent given: the job, the audit record, the console told, established", t_accept);
    t_run("consent refused reaches both sides with its code and reason", t_refuse);
    t_run("no answer: the consent deadline, not the handshake's, ends it; a late answer is ignored", t_timeout);
    t_run("the console's own cap on the wait", t_console_cap);
    t_run("the console gone while waiting: the job's answer is ignored, nothing leaks", t_console_gone);
    t_run("nobody logged on: the policy refuses or lets in", t_nobody_logged_on);
    t_run("no host answer fails closed (cc_job_run, handed back untouched)", t_no_host_answer_fails_closed);
    t_run("consent off: no consent stage", t_off_has_no_stage);
    t_run("over TCP the console's address is in the job and the record", t_address_over_tcp);
    t_run("every allocation of the client failing in turn ends cleanly", t_allocation_failures);
    t_run("a session resumed with the reconnect ticket asks nobody again", t_reconnect_inherits_consent);
    t_run("consent refused: no reconnect ticket", t_refused_has_no_ticket);
    return t_done();
}
