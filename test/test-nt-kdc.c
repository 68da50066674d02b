/* test-nt-kdc.c -- the nt authenticator's domain-controller account check against a
 * real MIT KDC on loopback (test/fixtures/kdc.sh): only after the proof; exists, unknown, revoked, stopped. */
#include "../lib/auth/nt/nt.h"
#include "auth-peek.h"
#include "harness.h"
#include "pair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char store[600], krb5_conf[700];
static const uint8_t cb[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                               7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
static double probe_ms_total;
static int probes;
static const char *console_domain = "CC"; /* the domain run() logs on to */

static cc_context *client_ctx(const char *mode)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!c || cc_context_add_builtin_authenticator(c, "nt") || cc_context_set_auth_option(c, "nt", "accounts", store) ||
        cc_context_set_auth_option(c, "nt", "realm", "CC.TEST") ||
        cc_context_set_auth_option(c, "nt", "krb5-conf", krb5_conf) ||
        (mode && cc_context_set_auth_option(c, "nt", "dc-check", mode)))
        return NULL;
    return c;
}

struct result {
    int rc;
    char detail[CC__DETAIL_MAX], identity[256], dc[128];
    bool had_job;
};

/* One whole exchange; the KDC job is run inline (or failed by "the host"). */
static void run(cc_context *s, const char *user, const char *pw, bool host_fails_job, struct result *r)
{
    cc_context *c = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    cc_context_add_builtin_authenticator(c, "nt");
    cc_auth *con = cc__auth_new(c, &c->auth.entry[0], CC_ROLE_CONSOLE, NULL),
            *cli = cc__auth_new(s, &s->auth.entry[0], CC_ROLE_CLIENT, NULL);
    cc__auth_set_credentials(con, user, console_domain, pw);
    cc__auth_set_binding(con, cb);
    cc__auth_set_binding(cli, cb);
    uint8_t tok[4096];
    size_t n;
    memset(r, 0, sizeof *r);
    r->rc = cc__auth_step(con, NULL, 0);
    n = t_out_len(con), memcpy(tok, t_out(con), n);
    r->rc = cc__auth_step(cli, tok, n);
    n = t_out_len(cli), memcpy(tok, t_out(cli), n);
    r->rc = cc__auth_step(con, tok, n);
    n = t_out_len(con), memcpy(tok, t_out(con), n);
    r->rc = cc__auth_step(cli, tok, n);
    if (r->rc == CC_AUTH_PENDING) {
        cc_job *j = cc__auth_take_job(cli);
        r->had_job = j && cc_job_type(j) == CC_JOB_AUTH;
        uint64_t t0 = cc__now_ms();
        if (host_fails_job)
            cc_job_fail(j, CC_ERR_CANCELLED, "the host declined");
        else
            cc_job_run(j);
        probe_ms_total += (double)(cc__now_ms() - t0), probes++;
        cc_job_free(j); /* as the session does: before the mechanism reads the result */
        r->rc = cc__auth_step(cli, NULL, 0);
    }
    snprintf(r->detail, sizeof r->detail, "%s", cc__auth_detail(cli));
    snprintf(r->identity, sizeof r->identity, "%s", cc__auth_identity(cli) ? cc__auth_identity(cli) : "");
    if (t_attr(cli, "dc-check"))
        snprintf(r->dc, sizeof r->dc, "%s", t_attr(cli, "dc-check"));
    cc__auth_free(con);
    cc__auth_free(cli);
    cc_context_free(c);
}

static int setup(void)
{
    const char *fixture = t_kdc_script(), *kdc_dir = t_kdc_dir();
    snprintf(krb5_conf, sizeof krb5_conf, "%s/krb5.conf", kdc_dir);
    snprintf(store, sizeof store, "%s/smbpasswd", t_tmpdir());
    if (t_sh("bash '%s' start '%s' CC.TEST", fixture, kdc_dir) != 0)
        return -1;
    if (t_sh("bash '%s' addprinc '%s' alice alice-kdc-pw", fixture, kdc_dir) ||
        t_sh("bash '%s' addprinc '%s' dave dave-kdc-pw", fixture, kdc_dir) ||
        t_sh("bash '%s' addprinc '%s' frank frank-kdc-pw", fixture, kdc_dir) ||
        t_sh("bash '%s' admin '%s' 'modprinc -allow_tix frank'", fixture, kdc_dir) ||
        t_sh("bash '%s' addprinc '%s' gina gina-kdc-pw", fixture, kdc_dir) ||
        t_sh("bash '%s' addprinc '%s' hank hank-kdc-pw", fixture, kdc_dir) ||
        t_sh("bash '%s' addprinc '%s' ivan ivan-kdc-pw", fixture, kdc_dir))
        return -1;
    /* the NT password is the store's business, unrelated to the Kerberos key */
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    uint8_t h[16];
    char hx[33];
    cc__nt_hash_password(ctx, "nt-pw", h);
    cc_context_free(ctx);
    for (int i = 0; i < 16; i++)
        sprintf(hx + 2 * i, "%02X", h[i]);
    FILE *f = fopen(store, "w");
    if (!f)
        return -1;
    /* bob: not in the KDC; dave and ivan: only in the KDC; hank: disabled in the store */
    const char *users[] = {"alice", "bob", "frank", "gina"};
    for (int i = 0; i < 4; i++)
        fprintf(f, "%s:%d:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U          ]:LCT-5F5E1000:\n", users[i], 1000 + i, hx);
    fprintf(f, "hank:1010:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[DU         ]:LCT-5F5E1000:\n", hx);
    fclose(f);
    return 0;
}

static bool kdc_running;

static void test_kdc_started(void)
{
    T_ASSERT(kdc_running);
}

static void test_existing_account_passes(void)
{
    struct result r;
    cc_context *s = client_ctx(NULL); /* a realm makes "required" the default */
    T_ASSERT(s && kdc_running);
    run(s, "alice", "nt-pw", false, &r);
    T_ASSERT(r.had_job);
    T_EQ(r.rc, CC_AUTH_DONE);
    T_STREQ(r.identity, "CC\\alice");
    T_STREQ(r.dc, "passed");
    /* the password proof comes first: a wrong one never gets to the KDC */
    run(s, "alice", "wrong", false, &r);
    T_EQ(r.rc, CC_ERR_AUTH_BAD_CREDENTIALS);
    T_ASSERT(!r.had_job);
    run(s, "alice", "nt-pw", false, &r);
    T_EQ(r.rc, CC_AUTH_DONE);
    T_ASSERT(r.had_job);
    cc_context_free(s);
}

/* AS requests the KDC logged for name@CC.TEST so far. */
static int kdc_requests_for(const char *name)
{
    char log[700], line[1024], needle[128];
    snprintf(log, sizeof log, "%s/kdc.log", t_kdc_dir());
    snprintf(needle, sizeof needle, " %s@CC.TEST", name);
    FILE *f = fopen(log, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, "AS_REQ") && strstr(line, needle);
    if (f)
        fclose(f);
    return n;
}

/* Nothing a stranger types reaches the KDC before the password proof has
 * verified, and each refusal keeps its own code and detail. */
static void test_dc_check_only_after_the_proof(void)
{
    struct result r;
    cc_context *s = client_ctx("required");
    T_ASSERT(s && kdc_running);
    T_EQ(kdc_requests_for("gina"), 0);
    /* a wrong password for an account the store and the KDC both know */
    run(s, "gina", "guess-1", false, &r);
    T_EQ(r.rc, CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(r.detail, "NTProofStr does not match");
    T_ASSERT(!r.had_job);
    run(s, "gina", "guess-2", false, &r);
    T_EQ(r.rc, CC_ERR_AUTH_BAD_CREDENTIALS);
    /* unknown to the store (though the KDC knows ivan), disabled in the store */
    run(s, "ivan", "nt-pw", false, &r);
    T_EQ(r.rc, CC_ERR_AUTH_UNKNOWN_USER);
    T_CONTAINS(r.detail, "not in the local account store");
    T_ASSERT(!r.had_job);
    run(s, "hank", "nt-pw", false, &r);
    T_EQ(r.rc, CC_ERR_AUTH_DISABLED);
    T_CONTAINS(r.detail, "disabled (D flag)");
    T_ASSERT(!r.had_job);
    /* a foreign domain */
    console_domain = "ELSEWHERE";
    run(s, "gina", "nt-pw", false, &r);
    console_domain = "CC";
    T_EQ(r.rc, CC_ERR_AUTH_UNKNOWN_USER);
    T_CONTAINS(r.detail, "not served here");
    T_ASSERT(!r.had_job);
    T_EQ(kdc_requests_for("gina"), 0);
    T_EQ(kdc_requests_for("ivan"), 0);
    T_EQ(kdc_requests_for("hank"), 0);
    /* the right password: now the KDC is asked (libkrb5 may send its AS-REQ more than once) */
    run(s, "gina", "nt-pw", false, &r);
    T_EQ(r.rc, CC_AUTH_DONE);
    T_ASSERT(r.had_job);
    T_STREQ(r.dc, "passed");
    T_ASSERT(kdc_requests_for("gina") >= 1);
    /* an account missing from the domain is refused by the KDC, after its proof */
    run(s, "bob", "nt-pw", false, &r);
    T_EQ(r.rc, CC_ERR_AUTH_UNKNOWN_USER);
    T_ASSERT(r.had_job);
    T_CONTAINS(r.detail, "KDC of CC.TEST does not know the account bob");
    cc_context_free(s);
}

static void test_unknown_in_kdc(void)
{
    struct result r;
    cc_context *s = client_ctx("required");
    T_ASSERT(s && kdc_running);
    run(s, "bob", "nt-pw", false, &r); /* in the store, not in the KDC */
    T_EQ(r.rc, CC_ERR_AUTH_UNKNOWN_USER);
    T_CONTAINS(r.detail, "KDC of CC.TEST does not know");
    cc_context_free(s);
}

static void test_revoked_in_kdc(void)
{
    struct result r;
    cc_context *s = client_ctx("required");
    T_ASSERT(s && kdc_running);
    run(s, "frank", "nt-pw", false, &r); /* -allow_tix: KDC_ERR_CLIENT_REVOKED */
    T_EQ(r.rc, CC_ERR_AUTH_DISABLED);
    T_CONTAINS(r.detail, "KDC refuses");
    cc_context_free(s);
}

static void test_missing_from_store(void)
{
    struct result r;
    cc_context *s = client_ctx("required");
    T_ASSERT(s && kdc_running);
    run(s, "dave", "nt-pw", false, &r); /* in the KDC, not in the store */
    T_EQ(r.rc, CC_ERR_AUTH_UNKNOWN_USER);
    T_CONTAINS(r.detail, "not in the local account store");
    cc_context_free(s);
}

static void test_no_password_guessing(void)
{
    char log[700], cmd[1000], line[1024];
    int needed = 0, failed = 0, other = 0;
    T_ASSERT(kdc_running);
    snprintf(log, sizeof log, "%s/kdc.log", t_kdc_dir());
    snprintf(cmd, sizeof cmd, "grep -E 'AS_REQ' '%s'", log);
    FILE *p = popen(cmd, "r");
    T_ASSERT(p);
    while (fgets(line, sizeof line, p)) {
        if (strstr(line, "PREAUTH_FAILED") || strstr(line, "Preauthentication failed"))
            failed++;
        else if (strstr(line, "NEEDED_PREAUTH") && strstr(line, "alice@CC.TEST"))
            needed++;
        else
            other++;
    }
    pclose(p);
    T_EQ(failed, 0);       /* the probe never sent anything derived from a password */
    T_ASSERT(needed >= 2); /* and it did reach the KDC for alice's two good logons above */
    (void)other;
}

static void test_host_fails_job(void)
{
    struct result r;
    cc_context *s = client_ctx("required");
    T_ASSERT(s && kdc_running);
    run(s, "alice", "nt-pw", true, &r);
    T_EQ(r.rc, CC_ERR_AUTH_KDC_UNREACHABLE);
    T_CONTAINS(r.detail, "without running it");
    cc_context_free(s);
}

static void test_dc_check_off(void)
{
    struct result r;
    cc_context *s = client_ctx("off");
    T_ASSERT(s);
    run(s, "bob", "nt-pw", false, &r); /* unknown to the KDC, but nobody asks */
    T_ASSERT(!r.had_job);
    T_EQ(r.rc, CC_AUTH_DONE);
    T_STREQ(r.dc, "off");
    cc_context_free(s);
}

static void test_stopped_kdc(void)
{
    struct result r;
    T_ASSERT(kdc_running);
    T_EQ(t_sh("bash '%s' stop '%s'", t_kdc_script(), t_kdc_dir()), 0);
    kdc_running = false;
    cc_context *s = client_ctx("required");
    run(s, "alice", "nt-pw", false, &r);
    T_EQ(r.rc, CC_ERR_AUTH_KDC_UNREACHABLE);
    T_CONTAINS(r.detail, "could not be reached");
    cc_context_free(s);
    s = client_ctx("best-effort");
    run(s, "alice", "nt-pw", false, &r);
    T_EQ(r.rc, CC_AUTH_DONE);
    T_STREQ(r.dc, "skipped: KDC unreachable");
    /* best effort passes only an unreachable KDC, never a wrong password */
    run(s, "alice", "wrong", false, &r);
    T_EQ(r.rc, CC_ERR_AUTH_BAD_CREDENTIALS);
    cc_context_free(s);
}

/* The host frees the session while the KDC job is out on a worker: the job
 * still runs and frees cleanly (ASan/valgrind watch this one). */
static void test_session_freed_while_job_out(void)
{
    cc_context *s = client_ctx("required"), *c = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    T_ASSERT(s && c && kdc_running);
    cc_context_add_builtin_authenticator(c, "nt");
    cc_auth *con = cc__auth_new(c, &c->auth.entry[0], CC_ROLE_CONSOLE, NULL),
            *cli = cc__auth_new(s, &s->auth.entry[0], CC_ROLE_CLIENT, NULL);
    cc__auth_set_credentials(con, "alice", "CC", "nt-pw");
    cc__auth_set_binding(con, cb);
    cc__auth_set_binding(cli, cb);
    T_EQ(cc__auth_step(con, NULL, 0), CC_AUTH_CONTINUE);
    T_EQ(cc__auth_step(cli, t_out(con), t_out_len(con)), CC_AUTH_CONTINUE);
    T_EQ(cc__auth_step(con, t_out(cli), t_out_len(cli)), CC_AUTH_DONE);
    T_EQ(cc__auth_step(cli, t_out(con), t_out_len(con)), CC_AUTH_PENDING);
    cc_job *j = cc__auth_take_job(cli);
    T_ASSERT(j);
    cc__auth_free(cli); /* the session goes first */
    cc__auth_free(con);
    T_EQ(cc_job_run(j), 0);
    cc_job_free(j);
    cc_context_free(c);
    cc_context_free(s);
}

/* A malformed krb5.conf is a configuration error, refused even in best-effort mode. */
static void test_malformed_krb5_conf(void)
{
    char conf[800];
    snprintf(conf, sizeof conf, "%s/broken-krb5.conf", t_tmpdir());
    FILE *f = fopen(conf, "w");
    fprintf(f, "[libdefaults\n default_realm = CC.TEST\n = = {\n");
    fclose(f);
    cc_context *s = client_ctx("best-effort");
    T_ASSERT(s);
    T_EQ(cc_context_set_auth_option(s, "nt", "krb5-conf", conf), 0);
    struct result r;
    run(s, "alice", "nt-pw", false, &r);
    T_EQ(r.rc, CC_ERR_CONFIG);
    T_CONTAINS(r.detail, "broken-krb5.conf");
    cc_context_free(s);
}

/* A KDC that takes the connection (and the datagram) and never answers: the
 * job ends by its own deadline (CC_TIMEOUT_AUTH_JOB), not libkrb5's ~30 s. */
static void test_silent_kdc(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_ASSERT(bind(t, (struct sockaddr *)&a, sizeof a) == 0 && listen(t, 8) == 0);
    T_ASSERT(getsockname(t, (struct sockaddr *)&a, &al) == 0);
    T_ASSERT(bind(u, (struct sockaddr *)&a, sizeof a) == 0);
    char conf[800];
    snprintf(conf, sizeof conf, "%s/silent-krb5.conf", t_tmpdir());
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "[libdefaults]\n default_realm = CC.TEST\n dns_lookup_kdc = false\n"
            "[realms]\n CC.TEST = {\n  kdc = 127.0.0.1:%u\n }\n",
            ntohs(a.sin_port));
    fclose(f);
    cc_context *s = client_ctx("required");
    T_ASSERT(s);
    T_EQ(cc_context_set_auth_option(s, "nt", "krb5-conf", conf), 0);
    T_EQ(cc_context_set_timeout(s, CC_TIMEOUT_AUTH_JOB, 1500), 0);
    struct result r;
    uint64_t t0 = cc__now_ms();
    run(s, "alice", "nt-pw", false, &r);
    uint64_t took = cc__now_ms() - t0;
    T_EQ(r.rc, CC_ERR_AUTH_KDC_UNREACHABLE);
    T_CONTAINS(r.detail, "did not answer within 1500 ms");
    T_ASSERT(took >= 1400 && took < 4000);
    printf("# silent KDC: job ended after %llu ms (timeout 1500 ms)\n", (unsigned long long)took);
    T_EQ(cc_context_set_auth_option(s, "nt", "dc-check", "best-effort"), 0);
    run(s, "alice", "nt-pw", false, &r);
    T_EQ(r.rc, CC_AUTH_DONE);
    cc_context_free(s);
    close(t);
    close(u);
}

int main(void)
{
    kdc_running = setup() == 0;
    t_run("kdc_started", test_kdc_started);
    t_run("existing_account_passes", test_existing_account_passes);
    t_run("unknown_in_kdc", test_unknown_in_kdc);
    t_run("revoked_in_kdc", test_revoked_in_kdc);
    t_run("missing_from_store_present_in_kdc", test_missing_from_store);
    t_run("kdc_log_has_no_failed_preauth", test_no_password_guessing);
    t_run("dc_check_only_after_the_proof", test_dc_check_only_after_the_proof);
    t_run("host_fails_job", test_host_fails_job);
    t_run("session_freed_while_job_out", test_session_freed_while_job_out);
    t_run("dc_check_off", test_dc_check_off);
    t_run("malformed_krb5_conf", test_malformed_krb5_conf);
    t_run("silent_kdc_bounded_by_job_timeout", test_silent_kdc);
    t_run("stopped_kdc_required_denies_best_effort_passes", test_stopped_kdc);
    if (kdc_running)
        t_sh("bash '%s' stop '%s'", t_kdc_script(), t_kdc_dir());
    if (probes)
        printf("# KDC probe: %d jobs, mean %.1f ms\n", probes, probe_ms_total / probes);
    return t_done();
}
