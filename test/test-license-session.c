/* test-license-session.c -- the licence stage inside real sessions: the job is
 * handed out before TLS, TLS completes while it is out, both sides get the verdict. */
#include "../examples/psk.h"
#include "../lib/license/license.h"
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char certdir[512], psk_file[600];

static int setup(void)
{
    snprintf(certdir, sizeof certdir, "%s/certs", t_tmpdir());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "bash '%s/test/fixtures/certs.sh' '%s' >/dev/null",
             getenv("CC_SRC") ? getenv("CC_SRC") : ".", certdir);
    if (system(cmd) != 0)
        return -1;
    snprintf(psk_file, sizeof psk_file, "%s/psk", t_tmpdir());
    FILE *f = fopen(psk_file, "w");
    if (!f)
        return -1;
    fputs("0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    return 0;
}

static const char *cert(const char *name)
{
    static char p[4][700];
    static int i;
    char *s = p[i++ % 4];
    snprintf(s, sizeof p[0], "%s/%s", certdir, name);
    return s;
}

static cc_context *client_ctx(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!c)
        return NULL;
    if (cc_context_set_certificate(c, cert("client.pem"), cert("client.key")) != 0 || psk_register(c, psk_file) != 0 ||
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
    if (cc_context_set_ca_file(c, cert("ca.pem")) != 0 || psk_register(c, psk_file) != 0) {
        fprintf(stderr, "# console context: %s\n", cc_context_errmsg(c));
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static void test_job_before_tls(void)
{
    cc_context *c = client_ctx();
    T_ASSERT(c);
    int sv[2];
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cc_session *s = cc_session_new(c, NULL);
    T_ASSERT(s);
    T_EQ(cc_session_accept_fd(s, sv[0]), 0);
    int mask = cc_session_step(s);
    int state = cc_session_state(s);
    cc_job *job = cc_session_take_job(s);
    int type = job ? cc_job_type(job) : -1;
    const char *url = job ? cc_job_license_url(job) : NULL;
    int url_ok = url && strcmp(url, "http://127.0.0.1:9/GetLicenseDetails.aspx") == 0;
    cc_session_free(s); /* closes sv[0] */
    cc_job_free(job);
    close(sv[1]);
    cc_context_free(c);
    T_ASSERT(mask > 0);
    T_ASSERT(mask & CC_WANT_JOB);
    T_ASSERT(state == CC_STATE_PREAMBLE || state == CC_STATE_TLS);
    T_EQ(type, CC_JOB_LICENSE);
    T_ASSERT(url_ok);
}

/* Host transport for the console over one end of a socketpair. */
static long tr_send(void *user, const uint8_t *data, size_t len)
{
    ssize_t n = send(*(int *)user, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0)
        return (long)n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? CC_IO_WOULD_BLOCK : CC_IO_ERROR;
}
static long tr_recv(void *user, uint8_t *buf, size_t len)
{
    ssize_t n = recv(*(int *)user, buf, len, MSG_DONTWAIT);
    if (n >= 0)
        return (long)n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? CC_IO_WOULD_BLOCK : CC_IO_ERROR;
}

struct seen {
    int license_events, granted, code;
    uint32_t count, in_use;
    char text[CC__DETAIL_MAX];
};
static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    (void)s;
    struct seen *seen = user;
    if (ev->type != CC_EVENT_LICENSE)
        return;
    seen->license_events++;
    seen->granted = ev->granted;
    seen->code = ev->code;
    seen->count = ev->license_count;
    seen->in_use = ev->license_in_use;
    snprintf(seen->text, sizeof seen->text, "%s", ev->text ? ev->text : "");
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct pair {
    cc_context *cctx, *sctx;
    cc_session *con, *cli;
    int sv[2];
    int rc_con, rc_cli;
    cc_job *license_job;
    struct seen con_seen, cli_seen;
};

/* Steps both sessions until `done` or 5 s; licence jobs are kept out. */
static void drive(struct pair *p, int (*done)(struct pair *))
{
    uint64_t deadline = now_ms() + 5000;
    while (!done(p) && now_ms() < deadline) {
        if (p->rc_con > 0)
            p->rc_con = cc_session_step(p->con);
        if (p->rc_cli > 0)
            p->rc_cli = cc_session_step(p->cli);
        if (p->rc_cli > 0 && (p->rc_cli & CC_WANT_JOB)) {
            cc_job *j;
            while ((j = cc_session_take_job(p->cli)) != NULL) {
                if (cc_job_type(j) == CC_JOB_LICENSE && !p->license_job)
                    p->license_job = j;
                else
                    cc_session_job_done(p->cli, j); /* nothing else expected */
            }
        }
        struct pollfd pf[2] = {{p->sv[0], POLLIN, 0}, {p->sv[1], POLLIN, 0}};
        poll(pf, 2, 5);
    }
}

static int pair_open(struct pair *p)
{
    memset(p, 0, sizeof *p);
    p->sv[0] = p->sv[1] = -1;
    p->rc_con = p->rc_cli = 1;
    if (!(p->sctx = client_ctx()) || !(p->cctx = console_ctx()))
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) != 0)
        return -1;
    if (!(p->cli = cc_session_new(p->sctx, NULL)) || !(p->con = cc_session_new(p->cctx, NULL)))
        return -1;
    cc_session_set_event_callback(p->cli, on_event, &p->cli_seen);
    cc_session_set_event_callback(p->con, on_event, &p->con_seen);
    if (cc_session_set_credentials(p->con, "tester", NULL, NULL) != 0)
        return -1;
    if (cc_session_accept_fd(p->cli, p->sv[0]) != 0)
        return -1;
    p->sv[0] = dup(p->sv[0]); /* the session owns and closes its fd; poll a copy */
    return cc_session_set_transport(p->con, tr_send, tr_recv, &p->sv[1], "localhost");
}

static void pair_close(struct pair *p)
{
    cc_session_free(p->con);
    cc_session_free(p->cli);
    cc_job_free(p->license_job);
    if (p->sv[0] >= 0)
        close(p->sv[0]);
    if (p->sv[1] >= 0)
        close(p->sv[1]);
    cc_context_free(p->cctx);
    cc_context_free(p->sctx);
}

static int both_at_licence(struct pair *p)
{
    return cc_session_state(p->cli) == CC_STATE_LICENSE && p->license_job;
}
static int settled(struct pair *p)
{
    int sc = cc_session_state(p->con);
    return p->rc_con <= 0 || sc == CC_STATE_ESTABLISHED || sc == CC_STATE_FAILED;
}
static int both_ended(struct pair *p)
{
    return p->rc_con <= 0 && p->rc_cli <= 0;
}

static void test_tls_does_not_wait_for_licence(void)
{
    struct pair p;
    int ok = pair_open(&p) == 0;
    if (ok)
        drive(&p, both_at_licence);
    int cli_state = ok ? cc_session_state(p.cli) : -1;
    int con_state = ok ? cc_session_state(p.con) : -1;
    const char *tls = ok ? cc_session_tls_version(p.con) : NULL;
    int have_job = p.license_job != NULL;
    int events_before = p.con_seen.license_events;
    int granted = -1;
    uint32_t count = 0, in_use = 0;
    if (ok && have_job) {
        /* the host answers the job; the session takes it back */
        cc_job_license_set_figures(p.license_job, 25, 7);
        cc_session_job_done(p.cli, p.license_job);
        p.license_job = NULL;
        drive(&p, settled);
        cc_session_license(p.con, &granted, &count, &in_use);
    }
    int con_final = ok ? cc_session_state(p.con) : -1;
    pair_close(&p);
    T_ASSERT(ok);
    T_ASSERT(have_job);
    T_EQ(cli_state, CC_STATE_LICENSE); /* TLS and hello done with the job still out */
    T_ASSERT(con_state >= CC_STATE_HELLO && con_state <= CC_STATE_LICENSE);
    T_ASSERT(tls != NULL);
    T_EQ(events_before, 0);
    T_EQ(p.con_seen.license_events, 1);
    T_EQ(p.con_seen.granted, 1);
    T_EQ(p.con_seen.count, 25);
    T_EQ(p.con_seen.in_use, 7);
    T_EQ(granted, 1);
    T_EQ(count, 25);
    T_EQ(in_use, 7);
    T_EQ(con_final, CC_STATE_ESTABLISHED);
}

static void denial_case(uint32_t count, uint32_t in_use, int answer, int want_code, const char *want_text)
{
    struct pair p;
    int ok = pair_open(&p) == 0;
    if (ok)
        drive(&p, both_at_licence);
    int have_job = p.license_job != NULL;
    if (ok && have_job) {
        if (answer)
            cc_job_license_set_figures(p.license_job, count, in_use);
        cc_session_job_done(p.cli, p.license_job); /* answer == 0: handed back unanswered */
        p.license_job = NULL;
        drive(&p, both_ended);
    }
    int rc_con = p.rc_con, rc_cli = p.rc_cli;
    int con_err = ok ? cc_session_error(p.con) : 0;
    pair_close(&p);
    T_ASSERT(ok && have_job);
    T_EQ(rc_cli, want_code);
    T_EQ(p.cli_seen.license_events, 1);
    T_EQ(p.cli_seen.granted, 0);
    T_CONTAINS(p.cli_seen.text, want_text);
    /* the console is told the verdict, with the figures */
    T_EQ(p.con_seen.license_events, 1);
    T_EQ(p.con_seen.granted, 0);
    T_EQ(p.con_seen.code, want_code);
    T_CONTAINS(p.con_seen.text, want_text);
    T_EQ(rc_con, want_code);
    T_EQ(con_err, want_code);
}

static void test_denied_reaches_console(void)
{
    denial_case(10, 10, 1, CC_ERR_LICENSE_DENIED, "no licence free: 10 of 10 in use");
}

static void test_unanswered_job_denies(void)
{
    denial_case(0, 0, 0, CC_ERR_LICENSE_MISSING, "handed back without being run");
}

static void test_cached_verdict_skips_the_job(void)
{
    struct pair p;
    int ok = pair_open(&p) == 0 && cc_context_set_license_cache_ttl(p.sctx, 60000) == 0;
    if (ok)
        drive(&p, both_at_licence);
    int have_job = p.license_job != NULL;
    if (ok && have_job) {
        cc_job_license_set_figures(p.license_job, 25, 7);
        cc_session_job_done(p.cli, p.license_job);
        p.license_job = NULL;
        drive(&p, settled);
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
    int con_state = ok ? cc_session_state(p.con) : -1;
    pair_close(&p);
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
    t_run("licence job handed out before TLS completes", test_job_before_tls);
    t_run("TLS and hello complete while the licence job is out", test_tls_does_not_wait_for_licence);
    t_run("a denial reaches both sides with its code and figures", test_denied_reaches_console);
    t_run("a licence job handed back unanswered denies", test_unanswered_job_denies);
    t_run("a cached verdict skips the licence job", test_cached_verdict_skips_the_job);
    return t_done();
}
