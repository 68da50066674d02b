/* test-license-session.c -- the licence stage inside real sessions: no job for
 * a peer before its HELLO, hello completes while it is out, both sides get the verdict. */
#include "../examples/psk.h"
#include "../lib/license/license.h"
#include "harness.h"
#include "pair.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char psk_file[600];

static int setup(void)
{
    if (t_make_certs() != 0)
        return -1;
    snprintf(psk_file, sizeof psk_file, "%s/psk", t_tmpdir());
    FILE *f = fopen(psk_file, "w");
    if (!f)
        return -1;
    fputs("0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    return 0;
}

static cc_context *client_ctx(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!c)
        return NULL;
    if (cc_context_set_certificate(c, t_cert("client.pem"), t_cert("client.key")) != 0 ||
        psk_register(c, psk_file) != 0 ||
        cc_context_set_license_url(c, "http://127.0.0.1:9/GetLicenseDetails.aspx") != 0) {
        fprintf(stderr, "# client context: %s\n", cc_context_errmsg(c));
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static cc_context *console_ctx(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    if (!c)
        return NULL;
    if (cc_context_set_ca_file(c, t_cert("ca.pem")) != 0 || psk_register(c, psk_file) != 0) {
        fprintf(stderr, "# console context: %s\n", cc_context_errmsg(c));
        cc_context_free(c);
        return NULL;
    }
    return c;
}

/* A stranger who connects and sends nothing (or only a preamble) costs no
 * licence request: the job waits for the console's valid HELLO. */
static void test_no_job_before_hello(void)
{
    cc_context *c = client_ctx();
    T_ASSERT(c);
    int sv[2];
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cc_session *s = cc_session_new(c, NULL);
    T_ASSERT(s);
    T_EQ(cc_session_accept_fd(s, sv[0]), 0);
    int mask = cc_session_step(s);
    cc_job *job = cc_session_take_job(s);
    /* the console's preamble arrives: still no job while TLS has not even started */
    static const uint8_t pre[8] = {'C', 'C', 'P', 'Y', 2, 2, 0, 1};
    T_EQ(write(sv[1], pre, sizeof pre), 8);
    int mask2 = cc_session_step(s);
    cc_job *job2 = cc_session_take_job(s);
    int state = cc_session_state(s);
    cc_session_free(s); /* closes sv[0] */
    cc_job_free(job);
    cc_job_free(job2);
    close(sv[1]);
    cc_context_free(c);
    T_ASSERT(mask > 0 && mask2 > 0);
    T_ASSERT(!(mask & CC_WANT_JOB) && !(mask2 & CC_WANT_JOB));
    T_ASSERT(job == NULL && job2 == NULL);
    T_EQ(state, CC_STATE_TLS);
}

/* Both sessions over a socketpair; the client's licence job stays out (in cli.held) for the test. */
/* ttl_ms: the client context's verdict cache, set before any session exists (0 = off). */
static int pair_open(struct tp_pair *p, uint32_t ttl_ms)
{
    memset(p, 0, sizeof *p);
    p->sv[0] = p->sv[1] = -1;
    p->con.one_step = p->cli.one_step = true;
    p->cli.answer = tp_keep_job;
    p->cli.keep_type = CC_JOB_LICENSE;
    if (!(p->sctx = client_ctx()) || !(p->cctx = console_ctx()))
        return -1;
    if (cc_context_set_license_cache_ttl(p->sctx, ttl_ms) != 0)
        return -1;
    return tp_pair_open(p, "tester", NULL);
}

/* The client authenticates while its licence job is out. */
static bool both_at_licence(struct tp_side *con, struct tp_side *cli)
{
    return cc_session_state(cli->s) == CC_STATE_AUTHENTICATING && cli->held;
}
static bool settled(struct tp_side *con, struct tp_side *cli)
{
    int sc = cc_session_state(con->s);
    return con->ended || sc == CC_STATE_ESTABLISHED || sc == CC_STATE_FAILED;
}

static bool never(struct tp_side *con, struct tp_side *cli)
{
    (void)con, (void)cli;
    return false;
}

static void test_tls_does_not_wait_for_licence(void)
{
    struct tp_pair p;
    int ok = pair_open(&p, 0) == 0;
    if (ok) {
        tp_drive(&p.con, &p.cli, both_at_licence, 5000);
        tp_drive(&p.con, &p.cli, never, 300); /* the whole exchange, as far as it goes without the verdict */
    }
    int cli_state = ok ? cc_session_state(p.cli.s) : -1;
    int con_state = ok ? cc_session_state(p.con.s) : -1;
    const char *tls = ok ? cc_session_tls_version(p.con.s) : NULL;
    int have_job = p.cli.held != NULL;
    const char *url = have_job ? cc_job_license_url(p.cli.held) : NULL;
    int url_ok = url && strcmp(url, "http://127.0.0.1:9/GetLicenseDetails.aspx") == 0;
    int events_before = p.con.license_events;
    int granted = -1;
    uint32_t count = 0, in_use = 0;
    if (ok && have_job) {
        /* the host answers the job; the session takes it back */
        cc_job_license_set_figures(p.cli.held, 25, 7);
        cc_session_job_done(p.cli.s, p.cli.held);
        p.cli.held = NULL;
        tp_drive(&p.con, &p.cli, settled, 5000);
        cc_session_license(p.con.s, &granted, &count, &in_use);
    }
    int con_final = ok ? cc_session_state(p.con.s) : -1;
    tp_pair_free(&p);
    T_ASSERT(ok);
    T_ASSERT(have_job);
    T_ASSERT(url_ok);
    /* TLS, hello and the mechanism's exchange done with the job still out; the
     * result waits for the verdict */
    T_EQ(cli_state, CC_STATE_AUTHENTICATING);
    T_EQ(con_state, CC_STATE_AUTHENTICATING);
    T_ASSERT(tls != NULL);
    T_EQ(events_before, 0);
    T_EQ(p.con.license_events, 1);
    T_EQ(p.con.license_granted, 1);
    T_EQ(p.con.license_count, 25);
    T_EQ(p.con.license_in_use, 7);
    T_EQ(granted, 1);
    T_EQ(count, 25);
    T_EQ(in_use, 7);
    T_EQ(con_final, CC_STATE_ESTABLISHED);
}

/* want_text: the client's own detail; con_text: what the console is told,
 * which never carries the client's detail (no URL, no server answer). */
static void denial_case(uint32_t count, uint32_t in_use, int answer, int want_code, const char *want_text,
                        const char *con_text)
{
    struct tp_pair p;
    int ok = pair_open(&p, 0) == 0;
    if (ok)
        tp_drive(&p.con, &p.cli, both_at_licence, 5000);
    int have_job = p.cli.held != NULL;
    if (ok && have_job) {
        if (answer)
            cc_job_license_set_figures(p.cli.held, count, in_use);
        cc_session_job_done(p.cli.s, p.cli.held); /* answer == 0: handed back unanswered */
        p.cli.held = NULL;
        tp_drive(&p.con, &p.cli, tp_both_ended, 5000);
    }
    int rc_con = p.con.result, rc_cli = p.cli.result;
    int con_err = ok ? cc_session_error(p.con.s) : 0;
    tp_pair_free(&p);
    T_ASSERT(ok && have_job);
    T_EQ(rc_cli, want_code);
    T_EQ(p.cli.license_events, 1);
    T_EQ(p.cli.license_granted, 0);
    T_CONTAINS(p.cli.license_text, want_text);
    /* the console is told the verdict, with the figures */
    T_EQ(p.con.license_events, 1);
    T_EQ(p.con.license_granted, 0);
    T_EQ(p.con.license_code, want_code);
    T_CONTAINS(p.con.license_text, con_text);
    T_ASSERT(!strstr(p.con.license_text, "127.0.0.1:9"));
    T_EQ(rc_con, want_code);
    T_EQ(con_err, want_code);
}

static void test_denied_reaches_console(void)
{
    denial_case(10, 10, 1, CC_ERR_LICENSE_DENIED, "no licence free: 10 of 10 in use",
                "no licence free: 10 of 10 in use");
}

static void test_unanswered_job_denies(void)
{
    denial_case(0, 0, 0, CC_ERR_LICENSE_MISSING, "handed back without being run", "could not check its licence");
}

static void test_cached_verdict_skips_the_job(void)
{
    struct tp_pair p;
    int ok = pair_open(&p, 60000) == 0;
    if (ok)
        tp_drive(&p.con, &p.cli, both_at_licence, 5000);
    int have_job = p.cli.held != NULL;
    if (ok && have_job) {
        cc_job_license_set_figures(p.cli.held, 25, 7);
        cc_session_job_done(p.cli.s, p.cli.held);
        p.cli.held = NULL;
        tp_drive(&p.con, &p.cli, settled, 5000);
    }
    /* a second session on the same context: no licence job, the verdict is known */
    cc_session *s2 = ok ? cc_session_new(p.sctx, NULL) : NULL;
    int sv[2] = {-1, -1};
    int mask = -1;
    cc_job *j2 = NULL;
    if (s2 && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && cc_session_accept_fd(s2, sv[0]) == 0) {
        mask = cc_session_step(s2);
        j2 = cc_session_take_job(s2);
    }
    cc_session_free(s2);
    if (sv[1] >= 0)
        close(sv[1]);
    cc_job_free(j2);
    int con_state = ok ? cc_session_state(p.con.s) : -1;
    tp_pair_free(&p);
    T_ASSERT(ok && have_job);
    T_EQ(con_state, CC_STATE_ESTABLISHED);
    T_ASSERT(mask > 0);
    T_ASSERT(!(mask & CC_WANT_JOB));
    T_ASSERT(j2 == NULL);
}

int main(void)
{
    if (setup() != 0) {
        printf("not ok - test certificates made\n");
        return t_done() | 1;
    }
    t_run("no licence job before the console's HELLO", test_no_job_before_hello);
    t_run("TLS, hello and authentication go on while the licence job is out", test_tls_does_not_wait_for_licence);
    t_run("a denial reaches both sides with its code and figures", test_denied_reaches_console);
    t_run("a licence job handed back unanswered denies", test_unanswered_job_denies);
    t_run("a cached verdict skips the licence job", test_cached_verdict_skips_the_job);
    return t_done();
}
