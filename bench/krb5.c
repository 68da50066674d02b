/* krb5.c -- benchmark: complete kerberos connections per second (TCP, preamble, TLS, licence answered
 * by the host, GSSAPI krb5 against a throw-away KDC) against a raw TLS 1.3 handshake plus a raw GSSAPI
 * exchange with the same ccache and keytab, in sequence. Prints figures only. */
#define _GNU_SOURCE
#define BENCH_NAME "krb5"
#include "bench.h"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

/* One thread drives both ends of each connection over loopback TCP with poll(), one connection at a
 * time; the two phases alternate in short rounds so background load falls on both alike.
 *
 * raw:        TCP connect + accept, TLS 1.3 handshake (as bench/handshake.c), then the GSSAPI exchange
 *             a careful kerberized server does: gss_init_sec_context with the default credential (the
 *             user's file ccache, which holds the service ticket after the first round), mutual, bound
 *             to the TLS connection's tls-exporter value; gss_accept_sec_context with an acceptor
 *             credential acquired once from the keytab (replay cache on); the initiator's second call
 *             checks the AP-REP.
 * carboncopy: cc_session_connect to established on both sides with the built-in "kerberos"
 *             authenticator (console: the same file ccache; client: the same keytab), the auth job run
 *             inline by the host, then cc_session_free on both. */

#define REALM    "CC.TEST"
#define SERVICE  "host/localhost@" REALM
#define ROUND_S  0.25
#define CB_LABEL "EXPORTER-Channel-Binding"

static char keytab[700];

static void no_linger(int fd)
{
    struct linger l = {1, 0};
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

struct result {
    unsigned long n;
    double seconds;
};

static void gss_die(const char *what, OM_uint32 maj, OM_uint32 mn)
{
    OM_uint32 m2, ctx = 0;
    gss_buffer_desc t = GSS_C_EMPTY_BUFFER;
    gss_display_status(&m2, GSS_ERROR(maj) ? maj : mn, GSS_ERROR(maj) ? GSS_C_GSS_CODE : GSS_C_MECH_CODE, GSS_C_NO_OID,
                       &ctx, &t);
    fprintf(stderr, "krb5: %s: %.*s\n", what, (int)t.length, (const char *)t.value);
    gss_display_status(&m2, mn, GSS_C_MECH_CODE, gss_mech_krb5, &ctx, &t);
    die("%s (minor: %.*s)", what, (int)t.length, (const char *)t.value);
}

/* The raw GSSAPI exchange bound to c's TLS connection. */
static void raw_gss(SSL *c, gss_cred_id_t acred, gss_name_t target)
{
    uint8_t ekm[32], app[13 + 32];
    if (SSL_export_keying_material(c, ekm, sizeof ekm, CB_LABEL, sizeof CB_LABEL - 1, NULL, 0, 0) != 1)
        die("SSL_export_keying_material");
    memcpy(app, "tls-exporter:", 13);
    memcpy(app + 13, ekm, 32);
    struct gss_channel_bindings_struct cb;
    memset(&cb, 0, sizeof cb);
    cb.application_data.length = sizeof app;
    cb.application_data.value = app;
    OM_uint32 maj, mn, flags = 0;
    gss_ctx_id_t ic = GSS_C_NO_CONTEXT, ac = GSS_C_NO_CONTEXT;
    gss_buffer_desc t1 = GSS_C_EMPTY_BUFFER, t2 = GSS_C_EMPTY_BUFFER, t3 = GSS_C_EMPTY_BUFFER;
    maj = gss_init_sec_context(&mn, GSS_C_NO_CREDENTIAL, &ic, target, gss_mech_krb5,
                               GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG |
                                   GSS_C_CONF_FLAG,
                               GSS_C_INDEFINITE, &cb, GSS_C_NO_BUFFER, NULL, &t1, &flags, NULL);
    if (maj != GSS_S_CONTINUE_NEEDED)
        gss_die("gss_init_sec_context", maj, mn);
    gss_name_t src = GSS_C_NO_NAME;
    maj = gss_accept_sec_context(&mn, &ac, acred, &t1, &cb, &src, NULL, &t2, &flags, NULL, NULL);
    if (maj != GSS_S_COMPLETE || !(flags & GSS_C_CHANNEL_BOUND_FLAG))
        gss_die("gss_accept_sec_context", maj, mn);
    gss_buffer_desc dn = GSS_C_EMPTY_BUFFER;
    gss_display_name(&mn, src, &dn, NULL); /* the server wants to know who it is */
    maj = gss_init_sec_context(&mn, GSS_C_NO_CREDENTIAL, &ic, target, gss_mech_krb5, GSS_C_MUTUAL_FLAG,
                               GSS_C_INDEFINITE, GSS_C_NO_CHANNEL_BINDINGS, &t2, NULL, &t3, &flags, NULL);
    if (maj != GSS_S_COMPLETE)
        gss_die("gss_init_sec_context (AP-REP)", maj, mn);
    gss_release_buffer(&mn, &dn);
    gss_release_name(&mn, &src);
    gss_release_buffer(&mn, &t1);
    gss_release_buffer(&mn, &t2);
    gss_release_buffer(&mn, &t3);
    gss_delete_sec_context(&mn, &ic, GSS_C_NO_BUFFER);
    gss_delete_sec_context(&mn, &ac, GSS_C_NO_BUFFER);
}

static void run_raw(SSL_CTX *cctx, SSL_CTX *sctx, gss_cred_id_t acred, gss_name_t target, int lfd,
                    const struct sockaddr_in *addr, double seconds, struct result *res)
{
    double start = now_s();
    while (now_s() - start < seconds) {
        int w, r;
        tcp_pair(lfd, addr, &w, &r);
        SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
        if (!c || !s)
            die("SSL_new");
        SSL_set_fd(c, w);
        SSL_set_fd(s, r);
        SSL_set_connect_state(c);
        SSL_set_accept_state(s);
        tls_handshake(c, s, w, r);
        raw_gss(c, acred, target);
        SSL_free(c);
        SSL_free(s);
        no_linger(w);
        no_linger(r);
        close(w);
        close(r);
        res->n++;
    }
    res->seconds += now_s() - start;
}

static void run_cc(struct tp_pair *p, int lfd, const struct sockaddr_in *addr, double seconds, struct result *res)
{
    double start = now_s();
    while (now_s() - start < seconds) {
        bench_connect(p, lfd, addr);
        if (!cc_session_identity(p->cli.s) || strcmp(cc_session_identity(p->cli.s), "alice@" REALM) != 0)
            die("the client authenticated %s, not alice", cc_session_identity(p->cli.s));
        no_linger(cc_session_fd(p->con.s));
        no_linger(cc_session_fd(p->cli.s));
        tp_pair_end(p);
        res->n++;
    }
    res->seconds += now_s() - start;
}

static void kdc_setup(void)
{
    char cc[800];
    if (t_kdc_start(REALM) != 0)
        die("cannot start a KDC with test/fixtures/kdc.sh (krb5-kdc and krb5-admin-server installed?)");
    snprintf(keytab, sizeof keytab, "%s/service.keytab", t_kdc_dir());
    if (t_sh("K='%s'; D='%s'; bash $K addprinc $D alice alice-pw >/dev/null && "
             "bash $K addprinc $D host/localhost >/dev/null && bash $K ktadd $D $D/service.keytab host/localhost "
             ">/dev/null && bash $K kinit $D alice alice-pw -c FILE:$D/alice.cc",
             t_kdc_script(), t_kdc_dir()) != 0)
        die("cannot make the principals, keytab and ccache");
    snprintf(cc, sizeof cc, "FILE:%s/alice.cc", t_kdc_dir());
    setenv("KRB5CCNAME", cc, 1);
}

static void cc_contexts(struct tp_pair *p)
{
    int err;
    p->cctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    p->sctx = cc_context_new(CC_ROLE_CLIENT, NULL, &err);
    if (!p->cctx || !p->sctx)
        die("cc_context_new: %s", cc_strerror(err));
    if (cc_context_set_pin_sha256(p->cctx, t_cert_pin()) < 0 ||
        cc_context_set_certificate(p->sctx, t_cert("client.pem"), t_cert("client.key")) < 0 ||
        cc_context_add_builtin_authenticator(p->cctx, "kerberos") < 0 ||
        cc_context_set_auth_option(p->cctx, "kerberos", "service", SERVICE) < 0 ||
        cc_context_add_builtin_authenticator(p->sctx, "kerberos") < 0 ||
        cc_context_set_auth_option(p->sctx, "kerberos", "keytab", keytab) < 0)
        die("context: %s / %s", cc_context_errmsg(p->cctx), cc_context_errmsg(p->sctx));
}

static double rate(const struct result *r)
{
    return r->seconds > 0 ? (double)r->n / r->seconds : 0;
}

int main(int argc, char **argv)
{
    const char *sec_s = argc > 1 ? argv[1] : getenv("CC_BENCH_SECONDS");
    double seconds = sec_s ? atof(sec_s) : 3.0;
    if (argc > 2 || !(seconds > 0 && seconds <= 600)) {
        fprintf(stderr, "usage: krb5 [SECONDS]   (or CC_BENCH_SECONDS; default 3 per phase, at least)\n");
        return 2;
    }
    bench_setup();
    kdc_setup();
    static struct tp_pair pair;
    static struct result raw, cc;
    struct sockaddr_in addr;
    int lfd = bench_listen(&addr);
    cc_contexts(&pair);
    SSL_CTX *cctx, *sctx;
    tls_ctxs(&cctx, &sctx);

    OM_uint32 maj, mn;
    gss_key_value_element_desc el[2] = {{"keytab", keytab}, {"rcache", "dfl:"}};
    gss_key_value_set_desc store = {2, el};
    gss_OID_set_desc mechs = {1, gss_mech_krb5};
    gss_cred_id_t acred = GSS_C_NO_CREDENTIAL;
    maj = gss_acquire_cred_from(&mn, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &store, &acred, NULL, NULL);
    if (GSS_ERROR(maj))
        gss_die("gss_acquire_cred_from", maj, mn);
    gss_buffer_desc tn = {strlen(SERVICE), (void *)SERVICE};
    gss_name_t target = GSS_C_NO_NAME;
    if (GSS_ERROR(maj = gss_import_name(&mn, &tn, GSS_KRB5_NT_PRINCIPAL_NAME, &target)))
        gss_die("gss_import_name", maj, mn);

    /* One untimed connection of each kind: the service ticket lands in the ccache. */
    struct result warm = {0, 0};
    run_cc(&pair, lfd, &addr, 0.0001, &warm);
    run_raw(cctx, sctx, acred, target, lfd, &addr, 0.0001, &warm);
    /* CC_BENCH_ONLY=raw or =cc runs one phase alone (for strace -c or perf on one side). */
    const char *only = getenv("CC_BENCH_ONLY");
    bool do_raw = !only || strcmp(only, "cc") != 0, do_cc = !only || strcmp(only, "raw") != 0;
    while ((do_raw && raw.seconds < seconds) || (do_cc && cc.seconds < seconds)) {
        if (do_raw)
            run_raw(cctx, sctx, acred, target, lfd, &addr, ROUND_S, &raw);
        if (do_cc)
            run_cc(&pair, lfd, &addr, ROUND_S, &cc);
    }
    gss_release_name(&mn, &target);
    gss_release_cred(&mn, &acred);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    tp_pair_free(&pair);
    close(lfd);

    printf("krb5: complete connections over loopback TCP with a throw-away KDC, one at a time, one thread drives "
           "both ends, at least %.1f s each (alternating %.2f s rounds)\n",
           seconds, ROUND_S);
    printf("  %-58s %8.0f /s  (%lu in %.2f s)\n", "raw TLS 1.3 handshake + raw GSSAPI krb5 exchange", rate(&raw), raw.n,
           raw.seconds);
    printf("  %-58s %8.0f /s  (%lu in %.2f s)\n", "carboncopy connection, kerberos", rate(&cc), cc.n, cc.seconds);
    printf("  ratio carboncopy kerberos / (raw TLS + raw GSS), connections per second: %.2f\n", rate(&cc) / rate(&raw));
    return 0;
}
