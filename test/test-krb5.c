/* test-krb5.c -- the "kerberos" authenticator through the plug-in interface against a
 * real MIT KDC (test/fixtures/kdc.sh): every success and error path with its exact code. */
#include "harness.h"
#include "pair.h"

#include "../lib/auth/krb5/krb5_int.h"
#include "auth-peek.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REALM "CC.TEST"

static int kdc(const char *args)
{
    return t_sh("bash '%s' %s >/dev/null", t_kdc_script(), args);
}

static int kdc_start(void)
{
    if (t_kdc_start(REALM) != 0)
        return -1;
    char a[1400];
    /* {command, keytab file under DIR or NULL, the rest} */
    const char *steps[][3] = {
        {"addprinc", NULL, "alice@" REALM " alice-pw"},
        {"addprinc", NULL, "bob@" REALM " bob-pw"},
        {"addprinc", NULL, "host/localhost"},
        {"ktadd", "service.keytab", "host/localhost"},
        {"addprinc", NULL, "cc/other"},
        {"ktadd", "other.keytab", "cc/other"},
        {"addprinc", NULL, "cc/rekey"},
        {"ktadd", "rekey.keytab", "cc/rekey"},
        {"randkey", NULL, "cc/rekey"},
        {"addprinc", NULL, "carol@" REALM " carol-pw"},
        {"admin", NULL, "'modprinc -maxlife 2s carol@" REALM "'"},
        {"admin", NULL, "'addprinc -pw pw -expire 2020-01-01 dora@" REALM "'"},
        {"admin", NULL, "'addprinc -pw pw +needchange ed@" REALM "'"},
        {"admin", NULL, "'addprinc -pw pw -allow_tix fay@" REALM "'"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (steps[i][1])
            snprintf(a, sizeof a, "%s '%s' '%s/%s' %s", steps[i][0], t_kdc_dir(), t_kdc_dir(), steps[i][1],
                     steps[i][2]);
        else
            snprintf(a, sizeof a, "%s '%s' %s", steps[i][0], t_kdc_dir(), steps[i][2]);
        if (kdc(a) != 0) {
            fprintf(stderr, "# fixture step failed: %s\n", a);
            return -1;
        }
    }
    return 0;
}

/* Points KRB5CCNAME at DIR/NAME (the library only reads the environment). */
static const char *use_ccache(const char *name)
{
    static char v[700];
    snprintf(v, sizeof v, "FILE:%s/%s", t_kdc_dir(), name);
    setenv("KRB5CCNAME", v, 1);
    return v;
}

static int kinit(const char *ccache, const char *princ, const char *pw, const char *extra)
{
    return t_sh("bash '%s' kinit '%s' %s %s -c 'FILE:%s/%s' %s >/dev/null 2>&1", t_kdc_script(), t_kdc_dir(), princ, pw,
                t_kdc_dir(), ccache, extra ? extra : "");
}

/* ---- driving two cc_auth handles ---- */

struct pair {
    cc_context *cctx, *sctx;
    cc_auth *con, *cli;
    int con_r, cli_r; /* last results */
};

static uint8_t cb_a[32], cb_b[32];

static cc_context *mk_ctx(int role, const char *const *opts)
{
    int err;
    cc_context *c = cc_context_new(role, NULL, &err);
    if (!c || cc_context_add_builtin_authenticator(c, "kerberos") != 0)
        return NULL;
    for (size_t i = 0; opts && opts[i]; i += 2)
        if (cc_context_set_auth_option(c, "kerberos", opts[i], opts[i + 1]) != 0) {
            fprintf(stderr, "# option %s: %s\n", opts[i], cc_context_errmsg(c));
            cc_context_free(c);
            return NULL;
        }
    return c;
}

static cc_auth *mk_auth(cc_context *c, int role, const uint8_t *cb)
{
    cc_auth *a = cc__auth_new(c, &c->auth.entry[0], role, "localhost");
    if (a && cb)
        cc__auth_set_binding(a, cb);
    return a;
}

static void pair_free(struct pair *p)
{
    cc__auth_free(p->con);
    cc__auth_free(p->cli);
    cc_context_free(p->cctx);
    cc_context_free(p->sctx);
    memset(p, 0, sizeof *p);
}

static int pair_init(struct pair *p, const char *const *copts, const char *const *sopts)
{
    memset(p, 0, sizeof *p);
    p->cctx = mk_ctx(CC_ROLE_CONSOLE, copts);
    p->sctx = mk_ctx(CC_ROLE_CLIENT, sopts);
    if (!p->cctx || !p->sctx)
        return -1;
    p->con = mk_auth(p->cctx, CC_ROLE_CONSOLE, cb_a);
    p->cli = mk_auth(p->sctx, CC_ROLE_CLIENT, cb_a);
    return p->con && p->cli ? 0 : -1;
}

/* The console's first step, running its job like a host's worker would. */
static int console_first(cc_auth *con)
{
    int r = cc__auth_step(con, NULL, 0);
    if (r != CC_AUTH_PENDING)
        return r;
    cc_job *j = cc__auth_take_job(con);
    if (!j)
        return -999;
    cc_job_run(j);
    cc_job_free(j); /* the core frees the job before stepping, as here */
    return cc__auth_step(con, NULL, 0);
}

/* A whole exchange; returns 0 when both sides are DONE, else the first failure
 * (con_r / cli_r say which side). */
static int exchange2(struct pair *p);
static int exchange(struct pair *p)
{
    int r = exchange2(p);
    if (r)
        printf("# %d %s: console \"%s\" client \"%s\"\n", r, cc_err_name(r), cc__auth_detail(p->con),
               cc__auth_detail(p->cli));
    return r;
}

static int exchange2(struct pair *p)
{
    p->cli_r = 1;
    p->con_r = console_first(p->con);
    if (p->con_r != CC_AUTH_CONTINUE)
        return p->con_r < 0 ? p->con_r : -998;
    p->cli_r = cc__auth_step(p->cli, t_out(p->con), t_out_len(p->con));
    if (p->cli_r != CC_AUTH_DONE)
        return p->cli_r < 0 ? p->cli_r : -997;
    if (!t_have_out(p->cli))
        return -996;
    p->con_r = cc__auth_step(p->con, t_out(p->cli), t_out_len(p->cli));
    return p->con_r == CC_AUTH_DONE ? 0 : p->con_r;
}

static const char *attr(const cc_auth *a, const char *key)
{
    return t_attr(a, key);
}

#define SVC_OPTS(kt)                                                                                                   \
    (const char *const[])                                                                                              \
    {                                                                                                                  \
        "keytab", kt, NULL                                                                                             \
    }

static char svc_kt[600], other_kt[600], rekey_kt[600];

/* ---- tests ---- */

static void test_kinit_ticket(void)
{
    struct pair p;
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    int r = exchange(&p);
    if (r)
        t_fail(__FILE__, __LINE__, "exchange %d: console \"%s\" client \"%s\"", r, cc__auth_detail(p.con),
               cc__auth_detail(p.cli));
    T_EQ(r, 0);
    T_STREQ(cc__auth_identity(p.cli), "alice@" REALM);
    /* MIT 1.20 KDCs issue a minimal PAC: client info only. */
    T_STREQ(attr(p.cli, "client-name"), "alice");
    T_STREQ(attr(p.cli, "pac"), "yes");
    T_ASSERT(attr(p.cli, "sid") == NULL);
    pair_free(&p);
}

static void test_password(void)
{
    struct pair p;
    use_ccache("cc_none_pw"); /* no ticket: the password must be used */
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "bob", NULL, "bob-pw");
    T_EQ(exchange(&p), 0);
    T_STREQ(cc__auth_identity(p.cli), "bob@" REALM);
    pair_free(&p);
    /* DOMAIN\user and user + domain name the same principal. */
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "cc.test\\bob", NULL, "bob-pw");
    T_EQ(exchange(&p), 0);
    T_STREQ(cc__auth_identity(p.cli), "bob@" REALM);
    pair_free(&p);
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "bob", "cc.test", "bob-pw");
    T_EQ(exchange(&p), 0);
    pair_free(&p);
}

static void test_no_ticket(void)
{
    struct pair p;
    use_ccache("cc_never_written");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_NO_CREDENTIALS);
    T_CONTAINS(cc__auth_detail(p.con), "kinit");
    pair_free(&p);
}

static void test_expired_ticket(void)
{
    struct pair p;
    /* carol's tickets live 2 s at most (modprinc -maxlife 2s). */
    T_EQ(kinit("cc_carol", "carol", "carol-pw", NULL), 0);
    sleep(3);
    use_ccache("cc_carol");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_EXPIRED);
    T_CONTAINS(cc__auth_detail(p.con), "expired");
    pair_free(&p);
}

static void test_wrong_password(void)
{
    struct pair p;
    use_ccache("cc_none_wrong");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "bob@" REALM, NULL, "not-bobs");
    T_EQ(exchange(&p), CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(cc__auth_detail(p.con), "bob@" REALM);
    T_ASSERT(!strstr(cc__auth_detail(p.con), "not-bobs"));
    pair_free(&p);
}

static void test_unknown_principal(void)
{
    struct pair p;
    use_ccache("cc_none_unknown");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "nobody", NULL, "whatever");
    T_EQ(exchange(&p), CC_ERR_AUTH_UNKNOWN_USER);
    T_CONTAINS(cc__auth_detail(p.con), "nobody@" REALM);
    pair_free(&p);
    /* A service principal the KDC does not know. */
    T_EQ(pair_init(&p, (const char *const[]){"service", "host/nowhere@" REALM, NULL}, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "bob", NULL, "bob-pw");
    T_EQ(exchange(&p), CC_ERR_AUTH_UNKNOWN_USER);
    T_CONTAINS(cc__auth_detail(p.con), "host/nowhere@" REALM);
    pair_free(&p);
}

static void test_key_not_in_keytab(void)
{
    struct pair p;
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    /* The client's keytab holds only cc/other: no key for host/localhost. */
    T_EQ(pair_init(&p, NULL, SVC_OPTS(other_kt)), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_KEYTAB);
    T_ASSERT(p.con_r == CC_AUTH_CONTINUE);
    T_CONTAINS(cc__auth_detail(p.cli), other_kt);
    pair_free(&p);
    /* No keytab file at all. */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/missing.keytab", t_kdc_dir());
    T_EQ(pair_init(&p, NULL, SVC_OPTS(missing)), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_KEYTAB);
    T_CONTAINS(cc__auth_detail(p.cli), "missing.keytab");
    pair_free(&p);
    /* Restricted to another service principal than the ticket's. */
    T_EQ(pair_init(&p, NULL, (const char *const[]){"keytab", svc_kt, "service", "cc/other@" REALM, NULL}), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_KEYTAB);
    pair_free(&p);
}

static void test_kvno_mismatch(void)
{
    struct pair p;
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    /* cc/rekey was re-keyed at the KDC after its keytab was exported. */
    T_EQ(pair_init(&p, (const char *const[]){"service", "cc/rekey@" REALM, NULL}, SVC_OPTS(rekey_kt)), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_KEYTAB);
    T_ASSERT(p.con_r == CC_AUTH_CONTINUE);
    T_CONTAINS(cc__auth_detail(p.cli), "rekey.keytab");
    pair_free(&p);
}

/* Writes a FILE ccache whose header carries a KDC time offset of `offset` s: libkrb5
 * then stamps every authenticator made from it with its clock + offset, exactly as
 * for a machine whose clock is off by that much. With `service`, the service ticket
 * (fetched with the true time) is cached too, so the skew shows at the acceptor. */
static int skewed_ccache(const char *name, int offset, const char *service)
{
    krb5_context k;
    krb5_ccache mem = NULL, out = NULL;
    krb5_principal me = NULL, svc = NULL;
    krb5_creds creds, in, *got = NULL;
    char path[700];
    int ok = -1;
    memset(&creds, 0, sizeof creds);
    memset(&in, 0, sizeof in);
    if (krb5_init_context(&k))
        return -1;
    if (krb5_parse_name(k, "alice@" REALM, &me) || krb5_cc_new_unique(k, "MEMORY", NULL, &mem) ||
        krb5_get_init_creds_password(k, &creds, me, "alice-pw", NULL, NULL, 0, NULL, NULL) ||
        krb5_cc_initialize(k, mem, me) || krb5_cc_store_cred(k, mem, &creds))
        goto done;
    if (service) {
        in.client = me;
        if (krb5_parse_name(k, service, &svc))
            goto done;
        in.server = svc;
        if (krb5_get_credentials(k, 0, mem, &in, &got))
            goto done;
    }
    krb5_set_real_time(k, (krb5_timestamp)(time(NULL) + offset), 0);
    snprintf(path, sizeof path, "FILE:%s/%s", t_kdc_dir(), name);
    if (krb5_cc_resolve(k, path, &out) || krb5_cc_initialize(k, out, me) || krb5_cc_copy_creds(k, mem, out))
        goto done;
    ok = 0;
done:
    if (got)
        krb5_free_creds(k, got);
    krb5_free_cred_contents(k, &creds);
    if (out)
        krb5_cc_close(k, out);
    if (mem)
        krb5_cc_destroy(k, mem);
    krb5_free_principal(k, me);
    krb5_free_principal(k, svc);
    krb5_free_context(k);
    return ok;
}

static void test_clock_skew(void)
{
    struct pair p;
    /* At the acceptor: the authenticator is an hour in the future. */
    T_EQ(skewed_ccache("cc_skew_svc", 3600, "host/localhost@" REALM), 0);
    use_ccache("cc_skew_svc");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_CLOCK_SKEW);
    T_ASSERT(p.con_r == CC_AUTH_CONTINUE);
    T_CONTAINS(cc__auth_detail(p.cli), "clocks");
    pair_free(&p);
    /* At the KDC: the TGS request is an hour in the future. */
    T_EQ(skewed_ccache("cc_skew_tgs", 3600, NULL), 0);
    use_ccache("cc_skew_tgs");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_CLOCK_SKEW);
    T_CONTAINS(cc__auth_detail(p.con), "KDC");
    pair_free(&p);
}

static void test_replay(void)
{
    struct pair p;
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    T_EQ(console_first(p.con), CC_AUTH_CONTINUE);
    /* Two acceptors (as two connections would) share the replay cache. */
    cc_auth *second = mk_auth(p.sctx, CC_ROLE_CLIENT, cb_a);
    T_EQ(cc__auth_step(p.cli, t_out(p.con), t_out_len(p.con)), CC_AUTH_DONE);
    int r = cc__auth_step(second, t_out(p.con), t_out_len(p.con));
    if (r != CC_ERR_AUTH_REPLAY)
        t_fail(__FILE__, __LINE__, "second accept: %d %s", r, cc__auth_detail(second));
    T_EQ(r, CC_ERR_AUTH_REPLAY);
    T_CONTAINS(cc__auth_detail(second), "replay");
    cc__auth_free(second);
    pair_free(&p);
}

static void test_channel_binding_mismatch(void)
{
    struct pair p;
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_binding(p.cli, cb_b); /* the client sits on another TLS connection */
    T_EQ(exchange(&p), CC_ERR_AUTH_CHANNEL_BINDING);
    T_ASSERT(p.con_r == CC_AUTH_CONTINUE);
    pair_free(&p);
}

/* An initiator written straight against GSSAPI that sends no channel bindings. */
static int raw_token(gss_buffer_desc *tok, gss_ctx_id_t *gctx, OM_uint32 req, gss_channel_bindings_t cb)
{
    OM_uint32 maj, mn;
    gss_name_t target;
    gss_buffer_desc tn = {strlen("host/localhost@" REALM), (void *)"host/localhost@" REALM};
    maj = gss_import_name(&mn, &tn, GSS_KRB5_NT_PRINCIPAL_NAME, &target);
    if (GSS_ERROR(maj))
        return -1;
    maj = gss_init_sec_context(&mn, GSS_C_NO_CREDENTIAL, gctx, target, gss_mech_krb5, req, 0, cb, GSS_C_NO_BUFFER, NULL,
                               tok, NULL, NULL);
    gss_release_name(&mn, &target);
    return GSS_ERROR(maj) ? -1 : 0;
}

static int unbound_token(gss_buffer_desc *tok, gss_ctx_id_t *gctx)
{
    return raw_token(tok, gctx, GSS_C_MUTUAL_FLAG, GSS_C_NO_CHANNEL_BINDINGS);
}

/* Bound correctly but without mutual authentication: refused. */
static void test_no_mutual_refused(void)
{
    struct pair p;
    OM_uint32 mn;
    gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
    gss_ctx_id_t g = GSS_C_NO_CONTEXT;
    uint8_t app[13 + 32];
    memcpy(app, "tls-exporter:", 13);
    memcpy(app + 13, cb_a, 32);
    struct gss_channel_bindings_struct cb;
    memset(&cb, 0, sizeof cb);
    cb.application_data.length = sizeof app;
    cb.application_data.value = app;
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    T_EQ(raw_token(&tok, &g, 0, &cb), 0);
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    int r = cc__auth_step(p.cli, tok.value, tok.length);
    gss_release_buffer(&mn, &tok);
    gss_delete_sec_context(&mn, &g, GSS_C_NO_BUFFER);
    T_EQ(r, CC_ERR_AUTH_MUTUAL);
    T_CONTAINS(cc__auth_detail(p.cli), "mutual");
    pair_free(&p);
}

static void test_no_bindings_refused(void)
{
    struct pair p;
    OM_uint32 mn;
    gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
    gss_ctx_id_t g = GSS_C_NO_CONTEXT;
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    T_EQ(unbound_token(&tok, &g), 0);
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    int r = cc__auth_step(p.cli, tok.value, tok.length);
    gss_release_buffer(&mn, &tok);
    gss_delete_sec_context(&mn, &g, GSS_C_NO_BUFFER);
    T_EQ(r, CC_ERR_AUTH_CHANNEL_BINDING);
    T_CONTAINS(cc__auth_detail(p.cli), "no channel bindings");
    T_ASSERT(cc__auth_identity(p.cli) == NULL);
    pair_free(&p);
}

/* The console picks the cache of the named user, or the one the "ccache" option names. */
static void test_cache_selection(void)
{
    struct pair p;
    char opt[700];
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "alice", NULL, NULL);
    T_EQ(exchange(&p), 0);
    pair_free(&p);
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "bob", NULL, NULL); /* no cache of bob's in the collection */
    T_EQ(exchange(&p), CC_ERR_AUTH_NO_CREDENTIALS);
    T_CONTAINS(cc__auth_detail(p.con), "bob");
    pair_free(&p);
    use_ccache("cc_nothing_here");
    snprintf(opt, sizeof opt, "FILE:%s/cc_alice", t_kdc_dir());
    T_EQ(pair_init(&p, (const char *const[]){"ccache", opt, NULL}, SVC_OPTS(svc_kt)), 0);
    T_EQ(exchange(&p), 0);
    T_STREQ(cc__auth_identity(p.cli), "alice@" REALM);
    pair_free(&p);
}

/* A client whose reply does not verify fails mutual authentication; garbage is
 * refused as a token; a job answered by the host without running is reported. */
static void test_mutual_and_tokens(void)
{
    struct pair p;
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    T_EQ(console_first(p.con), CC_AUTH_CONTINUE);
    T_EQ(cc__auth_step(p.cli, t_out(p.con), t_out_len(p.con)), CC_AUTH_DONE);
    uint8_t rep[4096];
    size_t n = t_out_len(p.cli);
    T_ASSERT(n > 20 && n <= sizeof rep);
    memcpy(rep, t_out(p.cli), n);
    rep[n - 5] ^= 0x55; /* inside the encrypted part of the AP-REP */
    int r = cc__auth_step(p.con, rep, n);
    printf("# forged AP-REP: %d %s\n", r, cc__auth_detail(p.con));
    T_EQ(r, CC_ERR_AUTH_MUTUAL);
    pair_free(&p);
    /* no reply at all */
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    T_EQ(console_first(p.con), CC_AUTH_CONTINUE);
    T_EQ(cc__auth_step(p.con, NULL, 0), CC_ERR_AUTH_MUTUAL);
    pair_free(&p);
    /* garbage to the acceptor */
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    static const uint8_t junk[] = "this is not a kerberos token at all";
    T_EQ(cc__auth_step(p.cli, junk, sizeof junk), CC_ERR_AUTH_TOKEN);
    pair_free(&p);
    /* the host answers the job with a failure instead of running it */
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "bob", NULL, "bob-pw");
    T_EQ(cc__auth_step(p.con, NULL, 0), CC_AUTH_PENDING);
    cc_job *j = cc__auth_take_job(p.con);
    T_ASSERT(j != NULL);
    T_EQ(cc_job_type(j), CC_JOB_AUTH);
    T_EQ(cc_job_fail(j, CC_ERR_CANCELLED, "host shutting down"), 0);
    cc_job_free(j);
    T_EQ(cc__auth_step(p.con, NULL, 0), CC_ERR_CANCELLED);
    pair_free(&p);
    /* the session ends while its job is out: the job stays valid and frees itself */
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "bob", NULL, "bob-pw");
    T_EQ(cc__auth_step(p.con, NULL, 0), CC_AUTH_PENDING);
    j = cc__auth_take_job(p.con);
    cc__auth_free(p.con); /* the session's mechanism ends first... */
    p.con = NULL;
    T_EQ(cc_job_run(j), 0); /* ...the job still runs (the context must outlive it) */
    cc_job_free(j);
    pair_free(&p);
}

/* Account states the KDC reports: expired account, password to change, disabled. */
static void test_account_states(void)
{
    static const struct {
        const char *user;
        int code;
        const char *word;
    } cases[] = {
        {"dora", CC_ERR_AUTH_DISABLED, "expired"},
        {"ed", CC_ERR_AUTH_EXPIRED, "password"},
        {"fay", CC_ERR_AUTH_DISABLED, "disabled"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pair p;
        use_ccache("cc_none_states");
        T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
        cc__auth_set_credentials(p.con, cases[i].user, NULL, "pw");
        int r = exchange(&p);
        if (r != cases[i].code)
            t_fail(__FILE__, __LINE__, "%s: %d, expected %d", cases[i].user, r, cases[i].code);
        T_EQ(r, cases[i].code);
        T_CONTAINS(cc__auth_detail(p.con), cases[i].word);
        pair_free(&p);
    }
}

static void test_realm_policy(void)
{
    struct pair p;
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    T_EQ(pair_init(&p, NULL, (const char *const[]){"keytab", svc_kt, "realm", "OTHER.TEST, EXAMPLE.COM", NULL}), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_POLICY);
    T_CONTAINS(cc__auth_detail(p.cli), "alice@" REALM);
    pair_free(&p);
    T_EQ(pair_init(&p, NULL, (const char *const[]){"keytab", svc_kt, "realm", "OTHER.TEST," REALM, NULL}), 0);
    T_EQ(exchange(&p), 0);
    pair_free(&p);
    /* a service restriction without a realm gets krb5.conf's default realm */
    T_EQ(pair_init(&p, NULL, (const char *const[]){"keytab", svc_kt, "service", "host/localhost", NULL}), 0);
    T_EQ(exchange(&p), 0);
    pair_free(&p);
}

static void test_options(void)
{
    cc_context *c = mk_ctx(CC_ROLE_CLIENT, NULL);
    T_ASSERT(c != NULL);
    T_EQ(cc_context_set_auth_option(c, "kerberos", "colour", "blue"), CC_ERR_INVALID);
    T_CONTAINS(cc_context_errmsg(c), "colour");
    T_EQ(cc_context_set_auth_option(c, "kerberos", "rcache", "none:"), CC_ERR_INVALID);
    T_EQ(cc_context_set_auth_option(c, "kerberos", "keytab", ""), CC_ERR_INVALID);
    T_EQ(cc_context_set_auth_option(c, "kerberos", "keytab", "/x"), 0);
    T_EQ(cc_context_set_auth_option(c, "kerberos", "keytab", NULL), 0);
    cc_context_free(c);
}

/* The console's job never blocks step: until it is run, step is not called, and
 * the job is bounded by the auth-job timeout even with the KDC gone. */
static void test_kdc_stopped(void)
{
    struct pair p;
    /* A realm krb5.conf names no KDC for (and DNS lookups are off in the fixture). */
    use_ccache("cc_none_norealm");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc__auth_set_credentials(p.con, "erin@NOWHERE.TEST", NULL, "pw");
    T_EQ(exchange(&p), CC_ERR_AUTH_KDC_UNREACHABLE);
    T_CONTAINS(cc__auth_detail(p.con), "NOWHERE.TEST");
    pair_free(&p);

    T_EQ(kinit("cc_bob_tgt", "bob", "bob-pw", NULL), 0);
    t_kdc_stop();
    use_ccache("cc_none_stopped");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc_context_set_timeout(p.cctx, CC_TIMEOUT_AUTH_JOB, 3000);
    cc__auth_set_credentials(p.con, "bob", NULL, "bob-pw");
    uint64_t t0 = cc__now_ms();
    T_EQ(exchange(&p), CC_ERR_AUTH_KDC_UNREACHABLE);
    uint64_t took = cc__now_ms() - t0;
    printf("# KDC stopped: failed after %llu ms\n", (unsigned long long)took);
    T_ASSERT(took < 8000);
    T_CONTAINS(cc__auth_detail(p.con), "KDC");
    pair_free(&p);
    /* With a TGT: the service ticket cannot be fetched either. */
    use_ccache("cc_bob_tgt");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    T_EQ(exchange(&p), CC_ERR_AUTH_KDC_UNREACHABLE);
    pair_free(&p);
}

/* ---- the independent initiator (python3-gssapi) ---- */

struct py {
    pid_t pid;
    int in, out; /* we write to in, read from out */
};

static int py_start(struct py *py, const char *target, const char *cbhex)
{
    int to[2], from[2];
    char script[700];
    const char *data = getenv("CC_TEST_DATA");
    snprintf(script, sizeof script, "%s/krb5/initiator.py", data ? data : "test/data");
    if (pipe(to) || pipe(from))
        return -1;
    py->pid = fork();
    if (py->pid < 0)
        return -1;
    if (py->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execl("/usr/bin/python3", "python3", script, target, cbhex, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    py->in = to[1];
    py->out = from[0];
    return 0;
}

/* Reads one line with a 10 s deadline. */
static int py_line(struct py *py, char *buf, size_t len)
{
    size_t n = 0;
    while (n + 1 < len) {
        struct pollfd pf = {py->out, POLLIN, 0};
        if (poll(&pf, 1, 10000) <= 0)
            return -1;
        ssize_t r = read(py->out, buf + n, 1);
        if (r <= 0)
            return -1;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = 0;
    return (int)n;
}

static int py_end(struct py *py)
{
    int st = 0;
    close(py->in);
    close(py->out);
    for (int i = 0; i < 500; i++) {
        if (waitpid(py->pid, &st, WNOHANG) == py->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        usleep(20000);
    }
    kill(py->pid, SIGKILL);
    waitpid(py->pid, &st, 0);
    return 128;
}

static size_t unhex(const char *h, uint8_t *out, size_t max)
{
    size_t n = 0;
    while (h[0] && h[1] && n < max) {
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1)
            break;
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

static void tohex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = 0;
}

static void py_case(bool bound)
{
    struct pair p;
    struct py py;
    static char line[40000];
    static uint8_t tok[20000];
    char cbhex[65];
    T_EQ(kinit("cc_alice", "alice", "alice-pw", NULL), 0);
    use_ccache("cc_alice");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    tohex(cb_a, 32, cbhex);
    T_EQ(py_start(&py, "host/localhost@" REALM, bound ? cbhex : "none"), 0);
    int n = py_line(&py, line, sizeof line);
    T_ASSERT(n > 0);
    size_t tl = unhex(line, tok, sizeof tok);
    int r = cc__auth_step(p.cli, tok, tl);
    if (bound) {
        if (r != CC_AUTH_DONE)
            printf("# python initiator refused: %d %s\n", r, cc__auth_detail(p.cli));
        T_EQ(r, CC_AUTH_DONE);
        T_STREQ(cc__auth_identity(p.cli), "alice@" REALM);
        tohex(t_out(p.cli), t_out_len(p.cli), line);
        strcat(line, "\n");
        T_EQ(write(py.in, line, strlen(line)), (long)strlen(line));
        T_ASSERT(py_line(&py, line, sizeof line) > 0);
        T_STREQ(line, "complete"); /* python verified our AP-REP: mutual auth interoperates */
    } else {
        T_EQ(r, CC_ERR_AUTH_CHANNEL_BINDING);
        T_CONTAINS(cc__auth_detail(p.cli), "no channel bindings");
        T_EQ(write(py.in, "\n", 1), 1);
    }
    T_EQ(py_end(&py), 0);
    pair_free(&p);
}

static void test_python_bound(void)
{
    py_case(true);
}
static void test_python_unbound(void)
{
    py_case(false);
}

/* A KDC that never answers: the job must end within the auth-job timeout
 * (libdefaults request_timeout in the job's private context + the send hook). */
static void test_kdc_silent(void)
{
    struct pair p;
    struct t_silent_kdc k;
    T_EQ(t_silent_kdc_start(&k), 0);
    use_ccache("cc_none_silent");
    T_EQ(pair_init(&p, NULL, SVC_OPTS(svc_kt)), 0);
    cc_context_set_timeout(p.cctx, CC_TIMEOUT_AUTH_JOB, 2000);
    cc__auth_set_credentials(p.con, "dave@SILENT.TEST", NULL, "pw");
    uint64_t t0 = cc__now_ms();
    int r = exchange(&p);
    uint64_t took = cc__now_ms() - t0;
    t_silent_kdc_stop(&k);
    printf("# silent KDC: the job gave up after %llu ms (timeout 2000 ms)\n", (unsigned long long)took);
    T_EQ(r, CC_ERR_AUTH_KDC_UNREACHABLE);
    T_ASSERT(took >= 900 && took < 4500);
    pair_free(&p);
}

int main(void)
{
    for (int i = 0; i < 32; i++) {
        cb_a[i] = (uint8_t)(i * 7 + 1);
        cb_b[i] = (uint8_t)(i * 7 + 2);
    }
    if (kdc_start() != 0) {
        printf("not ok - kdc fixture\n");
        return 1;
    }
    snprintf(svc_kt, sizeof svc_kt, "%s/service.keytab", t_kdc_dir());
    snprintf(other_kt, sizeof other_kt, "%s/other.keytab", t_kdc_dir());
    snprintf(rekey_kt, sizeof rekey_kt, "%s/rekey.keytab", t_kdc_dir());
    t_run("krb5 options", test_options);
    t_run("krb5 ticket from kinit, mutual, PAC client info", test_kinit_ticket);
    t_run("krb5 password given to the console", test_password);
    t_run("krb5 no ticket -> NO_CREDENTIALS", test_no_ticket);
    t_run("krb5 wrong password -> BAD_CREDENTIALS", test_wrong_password);
    t_run("krb5 unknown user / service -> UNKNOWN_USER", test_unknown_principal);
    t_run("krb5 key not in keytab -> KEYTAB", test_key_not_in_keytab);
    t_run("krb5 kvno mismatch after re-key -> KEYTAB", test_kvno_mismatch);
    t_run("krb5 clock skew (ccache time offset) -> CLOCK_SKEW", test_clock_skew);
    t_run("krb5 replayed AP-REQ -> REPLAY", test_replay);
    t_run("krb5 channel-binding mismatch -> CHANNEL_BINDING", test_channel_binding_mismatch);
    t_run("krb5 initiator without bindings refused", test_no_bindings_refused);
    t_run("krb5 initiator without mutual authentication refused", test_no_mutual_refused);
    t_run("krb5 expired account / password to change / disabled account", test_account_states);
    t_run("krb5 realm policy", test_realm_policy);
    t_run("krb5 cache chosen by user name or the ccache option", test_cache_selection);
    t_run("krb5 forged/missing AP-REP -> MUTUAL, junk -> TOKEN, unrun job, job outliving its session",
          test_mutual_and_tokens);
    t_run("krb5 python3-gssapi initiator with bindings accepted, our AP-REP verified", test_python_bound);
    t_run("krb5 python3-gssapi initiator without bindings refused", test_python_unbound);
    t_run("krb5 silent KDC: job bounded by the auth-job timeout", test_kdc_silent);
    t_run("krb5 expired ticket -> EXPIRED", test_expired_ticket);
    t_run("krb5 KDC stopped -> KDC_UNREACHABLE", test_kdc_stopped);
    t_kdc_stop();
    return t_done();
}
