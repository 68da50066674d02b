/* test-krb5-session.c -- Kerberos inside real sessions (TLS, licence, auth frames): the
 * auth job runs on a worker thread while cc_session_step keeps returning at once, and
 * the host's policy callback sees the identity and PAC details and can refuse. */
#include "harness.h"

#include "../lib/core/core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REALM "CC.TEST"

static char certdir[512], kdc_dir[512], fixture[512], svc_kt[600];
static int kdc_pid;

static int sh(const char *cmd)
{
    int r = system(cmd);
    return r == -1 ? -1 : WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}

/* True while pid runs; a zombie not yet reaped by init (the KDC is no child of
 * ours) counts as gone. */
static int alive(int pid)
{
    char path[64], st[512];
    if (kill(pid, 0) != 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(st, 1, sizeof st - 1, f);
    fclose(f);
    st[n] = 0;
    const char *p = strrchr(st, ')');
    return !(p && p[1] == ' ' && p[2] == 'Z');
}

static void stop_kdc(void)
{
    if (kdc_pid > 0) {
        kill(kdc_pid, SIGTERM);
        for (int i = 0; i < 250 && alive(kdc_pid); i++)
            usleep(20000);
        if (alive(kdc_pid))
            kill(kdc_pid, SIGKILL);
        kdc_pid = 0;
    }
}

static int setup(void)
{
    const char *src = getenv("CC_SRC") ? getenv("CC_SRC") : ".";
    char cmd[2400], line[1200], path[700];
    snprintf(certdir, sizeof certdir, "%s/certs", t_tmpdir());
    snprintf(kdc_dir, sizeof kdc_dir, "%s/kdc", t_tmpdir());
    snprintf(fixture, sizeof fixture, "%s/test/fixtures/kdc.sh", src);
    snprintf(svc_kt, sizeof svc_kt, "%s/service.keytab", kdc_dir);
    snprintf(cmd, sizeof cmd, "bash '%s/test/fixtures/certs.sh' '%s' >/dev/null", src, certdir);
    if (sh(cmd) != 0)
        return -1;
    snprintf(cmd, sizeof cmd,
             "K='%s'; D='%s'; KDC_OWNER_PID=%d bash $K start $D " REALM
             " && bash $K addprinc $D alice alice-pw >/dev/null && "
             "bash $K addprinc $D host/localhost >/dev/null && bash $K ktadd $D $D/service.keytab host/localhost "
             ">/dev/null && bash $K kinit $D alice alice-pw -c FILE:$D/alice.cc",
             fixture, kdc_dir, (int)getpid());
    if (sh(cmd) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/env", kdc_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        char *eq, *name = line + 7;
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "export ", 7) != 0 || !(eq = strchr(name, '=')))
            continue;
        *eq = 0;
        setenv(name, eq + 1, 1);
        if (strcmp(name, "KDC_PID") == 0)
            kdc_pid = atoi(eq + 1);
    }
    fclose(f);
    atexit(stop_kdc);
    snprintf(line, sizeof line, "FILE:%s/alice.cc", kdc_dir);
    setenv("KRB5CCNAME", line, 1);
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

struct pair {
    cc_context *cctx, *sctx;
    cc_session *con, *cli;
    int sv[2];
    int rc_con, rc_cli;
    cc_job *auth_job; /* the console's, kept out until the test hands it back */
    uint64_t max_step_us;
    struct policy pol;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int timed_step(struct pair *p, cc_session *s)
{
    uint64_t t0 = now_us();
    int r = cc_session_step(s);
    uint64_t d = now_us() - t0;
    if (d > p->max_step_us)
        p->max_step_us = d;
    return r;
}

/* Steps both until done(p) or `ms`; licence jobs are granted at once, the console's
 * auth job is taken and kept in p->auth_job. */
static void drive(struct pair *p, int (*done)(struct pair *), int ms)
{
    uint64_t deadline = now_us() + (uint64_t)ms * 1000;
    while (!done(p) && now_us() < deadline) {
        if (p->rc_con > 0)
            p->rc_con = timed_step(p, p->con);
        if (p->rc_cli > 0)
            p->rc_cli = timed_step(p, p->cli);
        cc_job *j;
        while (p->rc_cli > 0 && (j = cc_session_take_job(p->cli)) != NULL) {
            if (cc_job_type(j) == CC_JOB_LICENSE)
                cc_job_license_set_figures(j, 25, 7);
            cc_session_job_done(p->cli, j);
        }
        while (p->rc_con > 0 && !p->auth_job && (j = cc_session_take_job(p->con)) != NULL) {
            if (cc_job_type(j) == CC_JOB_AUTH)
                p->auth_job = j;
            else
                cc_session_job_done(p->con, j);
        }
        struct pollfd pf[2] = {{p->sv[0], POLLIN, 0}, {p->sv[1], POLLIN, 0}};
        poll(pf, 2, 5);
    }
}

static int pair_open(struct pair *p, const char *user, const char *password, int verdict)
{
    memset(p, 0, sizeof *p);
    p->sv[0] = p->sv[1] = -1;
    p->rc_con = p->rc_cli = 1;
    p->pol.verdict = verdict;
    p->sctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    p->cctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    if (!p->sctx || !p->cctx)
        return -1;
    if (cc_context_set_certificate(p->sctx, cert("client.pem"), cert("client.key")) ||
        cc_context_set_license_url(p->sctx, "http://127.0.0.1:9/GetLicenseDetails.aspx") ||
        cc_context_add_builtin_authenticator(p->sctx, "kerberos") ||
        cc_context_set_auth_option(p->sctx, "kerberos", "keytab", svc_kt) ||
        cc_context_set_auth_policy(p->sctx, on_policy, &p->pol) || cc_context_set_ca_file(p->cctx, cert("ca.pem")) ||
        cc_context_add_builtin_authenticator(p->cctx, "kerberos") ||
        cc_context_set_timeout(p->cctx, CC_TIMEOUT_AUTH_JOB, 2000))
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) != 0)
        return -1;
    if (!(p->cli = cc_session_new(p->sctx, NULL)) || !(p->con = cc_session_new(p->cctx, NULL)))
        return -1;
    if ((user || password) && cc_session_set_credentials(p->con, user, NULL, password) != 0)
        return -1;
    if (cc_session_accept_fd(p->cli, p->sv[0]) != 0)
        return -1;
    p->sv[0] = dup(p->sv[0]);
    return cc_session_set_transport(p->con, tr_send, tr_recv, &p->sv[1], "localhost");
}

static void pair_close(struct pair *p)
{
    cc_session_free(p->con);
    cc_session_free(p->cli);
    cc_job_free(p->auth_job);
    if (p->sv[0] >= 0)
        close(p->sv[0]);
    if (p->sv[1] >= 0)
        close(p->sv[1]);
    cc_context_free(p->cctx);
    cc_context_free(p->sctx);
}

static int have_auth_job(struct pair *p)
{
    return p->auth_job != NULL || p->rc_con <= 0;
}
static int both_ended_or_up(struct pair *p)
{
    int a = p->rc_con <= 0 || cc_session_state(p->con) == CC_STATE_ESTABLISHED;
    int b = p->rc_cli <= 0 || cc_session_state(p->cli) == CC_STATE_ESTABLISHED;
    return a && b;
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
    uint64_t t0 = now_us();
    struct worker w = {p->auth_job, 0};
    *steps = 0;
    pthread_create(&th, NULL, run_job, &w);
    p->max_step_us = 0;
    while (!atomic_load(&w.done)) {
        if (p->rc_con > 0)
            p->rc_con = timed_step(p, p->con);
        if (p->rc_cli > 0)
            p->rc_cli = timed_step(p, p->cli);
        (*steps)++;
        struct pollfd pf[2] = {{p->sv[0], POLLIN, 0}, {p->sv[1], POLLIN, 0}};
        poll(pf, 2, 10);
    }
    pthread_join(th, NULL);
    *job_us = now_us() - t0;
    cc_session_job_done(p->con, p->auth_job);
    p->auth_job = NULL;
}

static void test_established_with_ticket(void)
{
    struct pair p;
    int ok = pair_open(&p, NULL, NULL, 0) == 0;
    if (ok)
        drive(&p, have_auth_job, 5000);
    int have = p.auth_job != NULL;
    int con_state = ok ? cc_session_state(p.con) : -1;
    uint64_t job_us = 0;
    int steps = 0;
    if (have) {
        run_job_while_stepping(&p, &job_us, &steps);
        drive(&p, both_ended_or_up, 5000);
    }
    int cs = ok ? cc_session_state(p.con) : -1, ss = ok ? cc_session_state(p.cli) : -1;
    char ident[300] = "";
    if (ok && cc_session_identity(p.cli))
        snprintf(ident, sizeof ident, "%s", cc_session_identity(p.cli));
    pair_close(&p);
    T_ASSERT(ok && have);
    T_EQ(con_state, CC_STATE_AUTHENTICATING);
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
    int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_ASSERT(u >= 0 && t >= 0);
    T_EQ(bind(u, (struct sockaddr *)&a, sizeof a), 0);
    T_EQ(getsockname(u, (struct sockaddr *)&a, &al), 0);
    T_EQ(bind(t, (struct sockaddr *)&a, sizeof a), 0);
    T_EQ(listen(t, 8), 0);
    char conf[700], old[700], both[1500];
    snprintf(conf, sizeof conf, "%s/silent.conf", kdc_dir);
    FILE *f = fopen(conf, "w");
    T_ASSERT(f != NULL);
    fprintf(f, "[realms]\n SILENT.TEST = {\n  kdc = 127.0.0.1:%u\n }\n", ntohs(a.sin_port));
    fclose(f);
    snprintf(old, sizeof old, "%s", getenv("KRB5_CONFIG"));
    snprintf(both, sizeof both, "%s:%s", old, conf);
    setenv("KRB5_CONFIG", both, 1);

    int ok = pair_open(&p, "dave@SILENT.TEST", "dave-pw", 0) == 0;
    if (ok)
        drive(&p, have_auth_job, 5000);
    int have = p.auth_job != NULL;
    uint64_t job_us = 0, max_step = 0;
    int steps = 0;
    if (have) {
        run_job_while_stepping(&p, &job_us, &steps);
        max_step = p.max_step_us;
        drive(&p, both_ended_or_up, 5000);
    }
    int rc_con = p.rc_con;
    pair_close(&p);
    setenv("KRB5_CONFIG", old, 1);
    close(u);
    close(t);
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
        drive(&p, have_auth_job, 5000);
    int have = p.auth_job != NULL;
    if (have) {
        cc_job_run(p.auth_job);
        cc_session_job_done(p.con, p.auth_job);
        p.auth_job = NULL;
        drive(&p, both_ended_or_up, 5000);
    }
    int rc_con = p.rc_con, rc_cli = p.rc_cli;
    char con_msg[600];
    snprintf(con_msg, sizeof con_msg, "%s", ok ? cc_session_errmsg(p.con) : "");
    const char *cli_ident = ok ? cc_session_identity(p.cli) : NULL;
    pair_close(&p);
    T_ASSERT(ok && have);
    T_EQ(p.pol.calls, 1);
    T_STREQ(p.pol.identity, "alice@" REALM);
    T_EQ(rc_cli, CC_ERR_AUTH_POLICY);
    T_EQ(rc_con, CC_ERR_AUTH_POLICY);
    T_CONTAINS(con_msg, "alice@" REALM);
    (void)cli_ident; /* the core still reports the (authenticated, refused) identity */
}

int main(void)
{
    if (setup() != 0) {
        printf("not ok - fixtures (certificates, KDC)\n");
        stop_kdc();
        return t_done() | 1;
    }
    t_run("krb5 session established with a ticket; policy sees identity and PAC", test_established_with_ticket);
    t_run("krb5 session: step never waits for the KDC (job on a thread)", test_step_never_waits_for_the_kdc);
    t_run("krb5 session: the host policy refuses the account", test_host_policy_refuses);
    stop_kdc();
    return t_done();
}
