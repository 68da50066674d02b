/* test-krb5-session.c -- Kerberos inside real sessions (TLS, licence, auth frames): the
 * auth job runs on a worker thread while cc_session_step keeps returning at once, and
 * the host's policy callback sees the identity and PAC details and can refuse. */
#include "harness.h"
#include "pair.h"

#include "../lib/core/core.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define REALM "CC.TEST"

static char svc_kt[600];

static int setup(void)
{
    char line[1200];
    if (t_make_certs() != 0 || t_kdc_start(REALM) != 0)
        return -1;
    snprintf(svc_kt, sizeof svc_kt, "%s/service.keytab", t_kdc_dir());
    if (t_sh("K='%s'; D='%s'; bash $K addprinc $D alice alice-pw >/dev/null && "
             "bash $K addprinc $D host/localhost >/dev/null && bash $K ktadd $D $D/service.keytab host/localhost "
             ">/dev/null && bash $K kinit $D alice alice-pw -c FILE:$D/alice.cc",
             t_kdc_script(), t_kdc_dir()) != 0)
        return -1;
    snprintf(line, sizeof line, "FILE:%s/alice.cc", t_kdc_dir());
    setenv("KRB5CCNAME", line, 1);
    return 0;
}

/* ---- host policy ---- */

struct policy {
    int calls;
    int verdict;
    char mechanism[40], identity[300], client_name[300];
};

static int on_policy(void *user, cc_session *s, const char *mech, const char *identity)
{
    struct policy *p = user;
    p->calls++;
    snprintf(p->mechanism, sizeof p->mechanism, "%s", mech);
    snprintf(p->identity, sizeof p->identity, "%s", identity);
    const char *k, *v;
    for (uint32_t i = 0; cc_session_auth_attribute(s, i, &k, &v) == 0; i++)
        if (strcmp(k, "client-name") == 0)
            snprintf(p->client_name, sizeof p->client_name, "%s", v);
    return p->verdict;
}

/* ---- two sessions over a socketpair ---- */

struct pair {
    struct tp_pair tp; /* the console's auth job is kept in tp.con.held until the test hands it back */
    struct policy pol;
};

static int pair_open(struct pair *p, const char *user, const char *password, int verdict)
{
    memset(p, 0, sizeof *p);
    p->tp.sv[0] = p->tp.sv[1] = -1;
    p->tp.con.one_step = p->tp.cli.one_step = true;
    p->tp.con.answer = tp_keep_job; /* the auth job stays out for the test to run */
    p->tp.con.keep_type = CC_JOB_AUTH;
    p->tp.cli.lic_count = 25; /* the client's licence job is granted at once */
    p->tp.cli.lic_in_use = 7;
    p->pol.verdict = verdict;
    cc_context *cli = p->tp.sctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    cc_context *con = p->tp.cctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    if (!cli || !con)
        return -1;
    if (cc_context_set_certificate(cli, t_cert("client.pem"), t_cert("client.key")) ||
        cc_context_set_license_url(cli, "http://127.0.0.1:9/GetLicenseDetails.aspx") ||
        cc_context_add_builtin_authenticator(cli, "kerberos") ||
        cc_context_set_auth_option(cli, "kerberos", "keytab", svc_kt) ||
        cc_context_set_auth_policy(cli, on_policy, &p->pol) || cc_context_set_ca_file(con, t_cert("ca.pem")) ||
        cc_context_add_builtin_authenticator(con, "kerberos") || cc_context_set_timeout(con, CC_TIMEOUT_AUTH_JOB, 2000))
        return -1;
    return tp_pair_open(&p->tp, user, password);
}

static bool have_auth_job(struct tp_side *con, struct tp_side *cli)
{
    return con->held != NULL || con->ended;
}

struct worker {
    cc_job *job;
    atomic_int done;
};

static void *run_job(void *arg)
{
    struct worker *w = arg;
    cc_job_run(w->job);
    atomic_store(&w->done, 1);
    return NULL;
}

/* Hands the auth job to a worker thread; steps both sessions until it is back. */
static void run_job_while_stepping(struct pair *p, uint64_t *job_us, int *steps)
{
    pthread_t th;
    uint64_t t0 = t_now_us();
    struct worker w = {p->tp.con.held, 0};
    *steps = 0;
    pthread_create(&th, NULL, run_job, &w);
    p->tp.con.max_step_us = p->tp.cli.max_step_us = 0;
    while (!atomic_load(&w.done)) {
        tp_step_once(&p->tp.con);
        tp_step_once(&p->tp.cli);
        (*steps)++;
        tp_poll(&p->tp.con, &p->tp.cli, 10);
    }
    pthread_join(th, NULL);
    *job_us = t_now_us() - t0;
    cc_session_job_done(p->tp.con.s, p->tp.con.held);
    p->tp.con.held = NULL;
}

static void test_established_with_ticket(void)
{
    struct pair p;
    int ok = pair_open(&p, NULL, NULL, 0) == 0;
    if (ok)
        tp_drive(&p.tp.con, &p.tp.cli, have_auth_job, 5000);
    int have = p.tp.con.held != NULL;
    int con_state = ok ? cc_session_state(p.tp.con.s) : -1;
    uint64_t job_us = 0;
    int steps = 0;
    if (have) {
        run_job_while_stepping(&p, &job_us, &steps);
        tp_drive(&p.tp.con, &p.tp.cli, tp_both_established, 5000);
    }
    int cs = ok ? cc_session_state(p.tp.con.s) : -1, ss = ok ? cc_session_state(p.tp.cli.s) : -1;
    char ident[300] = "";
    if (ok && cc_session_identity(p.tp.cli.s))
        snprintf(ident, sizeof ident, "%s", cc_session_identity(p.tp.cli.s));
    tp_pair_free(&p.tp);
    T_ASSERT(ok && have);
    /* version 2: the console's first (guessed) mechanism asks the KDC before
     * its HELLO goes out, which then carries the AP-REQ (doc/PROTOCOL.md 4.1) */
    T_EQ(con_state, CC_STATE_HELLO);
    T_EQ(cs, CC_STATE_ESTABLISHED);
    T_EQ(ss, CC_STATE_ESTABLISHED);
    T_STREQ(ident, "alice@" REALM);
    T_EQ(p.pol.calls, 1);
    T_STREQ(p.pol.mechanism, "kerberos");
    T_STREQ(p.pol.identity, "alice@" REALM);
    T_STREQ(p.pol.client_name, "alice"); /* PAC detail readable in the callback */
}

/* A KDC that never answers: the job takes its full 2 s on the worker thread, and
 * meanwhile every cc_session_step returns at once. */
static void test_step_never_waits_for_the_kdc(void)
{
    struct pair p;
    struct t_silent_kdc k;
    T_EQ(t_silent_kdc_start(&k), 0);

    int ok = pair_open(&p, "dave@SILENT.TEST", "dave-pw", 0) == 0;
    if (ok)
        tp_drive(&p.tp.con, &p.tp.cli, have_auth_job, 5000);
    int have = p.tp.con.held != NULL;
    uint64_t job_us = 0, max_step = 0;
    int steps = 0;
    if (have) {
        run_job_while_stepping(&p, &job_us, &steps);
        max_step = p.tp.con.max_step_us > p.tp.cli.max_step_us ? p.tp.con.max_step_us : p.tp.cli.max_step_us;
        tp_drive(&p.tp.con, &p.tp.cli, tp_both_established, 5000);
    }
    int rc_con = p.tp.con.result;
    tp_pair_free(&p.tp);
    t_silent_kdc_stop(&k);
    printf("# the job took %llu ms on its thread; %d rounds of cc_session_step meanwhile, the slowest %llu us\n",
           (unsigned long long)(job_us / 1000), steps, (unsigned long long)max_step);
    T_ASSERT(ok && have);
    T_ASSERT(job_us >= 1500000);
    T_ASSERT(steps >= 20);
    T_ASSERT(max_step < 50000); /* 50 ms: generous for a loaded CI machine */
    T_EQ(rc_con, CC_ERR_AUTH_KDC_UNREACHABLE);
}

static void test_host_policy_refuses(void)
{
    struct pair p;
    int ok = pair_open(&p, NULL, NULL, CC_ERR_AUTH_POLICY) == 0;
    if (ok)
        tp_drive(&p.tp.con, &p.tp.cli, have_auth_job, 5000);
    int have = p.tp.con.held != NULL;
    if (have) {
        cc_job_run(p.tp.con.held);
        cc_session_job_done(p.tp.con.s, p.tp.con.held);
        p.tp.con.held = NULL;
        tp_drive(&p.tp.con, &p.tp.cli, tp_both_established, 5000);
    }
    int rc_con = p.tp.con.result, rc_cli = p.tp.cli.result;
    char con_msg[600];
    snprintf(con_msg, sizeof con_msg, "%s", ok ? cc_session_errmsg(p.tp.con.s) : "");
    const char *cli_ident = ok ? cc_session_identity(p.tp.cli.s) : NULL;
    tp_pair_free(&p.tp);
    T_ASSERT(ok && have);
    T_EQ(p.pol.calls, 1);
    T_STREQ(p.pol.identity, "alice@" REALM);
    T_EQ(rc_cli, CC_ERR_AUTH_POLICY);
    T_EQ(rc_con, CC_ERR_AUTH_POLICY);
    T_CONTAINS(con_msg, "alice@" REALM);
    (void)cli_ident; /* the core still reports the (authenticated, refused) identity */
}

/* One session of the pair's contexts: the auth job run by the host, both sides driven to the end of
 * the handshake. Returns the client's result (0 when established). */
static int one_session(struct pair *p)
{
    memset(&p->tp.con, 0, sizeof p->tp.con);
    memset(&p->tp.cli, 0, sizeof p->tp.cli);
    p->tp.con.one_step = p->tp.cli.one_step = true;
    p->tp.con.answer = tp_keep_job;
    p->tp.con.keep_type = CC_JOB_AUTH;
    p->tp.cli.lic_count = 25;
    p->tp.cli.lic_in_use = 7;
    if (tp_pair_open(&p->tp, NULL, NULL) != 0)
        return -999;
    tp_drive(&p->tp.con, &p->tp.cli, have_auth_job, 5000);
    if (!p->tp.con.held)
        return -998;
    cc_job_run(p->tp.con.held);
    cc_session_job_done(p->tp.con.s, p->tp.con.held);
    p->tp.con.held = NULL;
    tp_drive(&p->tp.con, &p->tp.cli, tp_both_established, 5000);
    int r = cc_session_state(p->tp.cli.s) == CC_STATE_ESTABLISHED ? 0 : p->tp.cli.result;
    tp_pair_end(&p->tp);
    return r;
}

static cc_stats stats_of(const cc_context *c)
{
    cc_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    cc_context_stats(c, &st);
    return st;
}

/* Three sessions in a row on the same contexts reuse the kerberos caches, and cc_context_stats
 * counts them on both roles; then the host's policy refuses one. */
static void test_sessions_in_sequence_counted(void)
{
    struct pair p;
    T_EQ(pair_open(&p, NULL, NULL, 0), 0);
    tp_pair_end(&p.tp); /* pair_open started one; start over with one_session */
    for (int i = 0; i < 3; i++)
        T_EQ(one_session(&p), 0);
    cc_stats c = stats_of(p.tp.cctx), s = stats_of(p.tp.sctx);
    T_EQ(c.sessions_established, 3);
    T_EQ(s.sessions_established, 3);
    T_EQ(c.sessions_created, 4);
    T_EQ(c.krb5_contexts_made, 1);
    T_EQ(c.krb5_contexts_reused, 2);
    T_EQ(c.krb5_ccache_reads + c.krb5_ccache_reuses, 3);
    T_ASSERT(c.krb5_ccache_reuses >= 1);
    T_EQ(s.krb5_acceptor_reads, 1);
    T_EQ(s.krb5_acceptor_reuses, 2);
    T_EQ(s.license_cache_misses, 1); /* pair_open's session never got as far as the licence */
    T_EQ(s.license_cache_hits, 2);
    T_EQ(c.jobs_pending + c.jobs_out + s.jobs_pending + s.jobs_out, 0);
    T_EQ(c.auth_failed + s.auth_failed, 0);
    p.pol.verdict = CC_ERR_AUTH_POLICY;
    T_EQ(one_session(&p), CC_ERR_AUTH_POLICY);
    c = stats_of(p.tp.cctx);
    s = stats_of(p.tp.sctx);
    T_EQ(s.auth_failed, 1);
    T_EQ(c.auth_failed, 1);
    T_EQ(s.sessions_established, 3);
    uint64_t live = 0;
    for (int i = 0; i < 16; i++)
        live += c.sessions[i] + s.sessions[i];
    T_EQ(live, 0);
    tp_pair_free(&p.tp);
}

int main(void)
{
    if (setup() != 0) {
        printf("not ok - fixtures (certificates, KDC)\n");
        t_kdc_stop();
        return t_done() | 1;
    }
    t_run("krb5 session established with a ticket; policy sees identity and PAC", test_established_with_ticket);
    t_run("krb5 session: step never waits for the KDC (job on a thread)", test_step_never_waits_for_the_kdc);
    t_run("krb5 session: the host policy refuses the account", test_host_policy_refuses);
    t_run("krb5 sessions in sequence reuse the context's caches; counters on both roles",
          test_sessions_in_sequence_counted);
    t_kdc_stop();
    return t_done();
}
