/* test-memory.c -- what a session holds: its buffers are given back once traffic drains (library and
 * OpenSSL), attributes stay readable once authentication's state is compacted, and every allocation of
 * a client with many attributes failing in turn still ends cleanly. Figures are in bench/memory.c. */
#include "../examples/psk.h"
#include "harness.h"
#include "pair.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdlib.h>

/* Live requested bytes, from a header in front of each block; one chosen allocation can fail. */
#define HDR 16
struct meter {
    long long live, peak;
    long count;   /* allocations so far */
    long fail_at; /* the one allocation that fails (counted from 0); < 0: none */
    long refused; /* allocations failed on purpose */
};
static struct meter m_con, m_cli, m_ssl;

static bool refuse(struct meter *m)
{
    if (m->count++ != m->fail_at)
        return false;
    m->refused++;
    return true;
}

static void *m_alloc(struct meter *m, size_t n)
{
    if (refuse(m))
        return NULL;
    unsigned char *p = malloc(n + HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    m->live += (long long)n;
    if (m->live > m->peak)
        m->peak = m->live;
    return p + HDR;
}

static void *m_realloc(struct meter *m, void *q, size_t n)
{
    if (!q)
        return m_alloc(m, n);
    if (refuse(m))
        return NULL;
    unsigned char *p = (unsigned char *)q - HDR, *np;
    size_t old;
    memcpy(&old, p, sizeof old);
    if (!(np = realloc(p, n + HDR)))
        return NULL;
    memcpy(np, &n, sizeof n);
    m->live += (long long)n - (long long)old;
    if (m->live > m->peak)
        m->peak = m->live;
    return np + HDR;
}

static void m_free(struct meter *m, void *q)
{
    if (!q)
        return;
    unsigned char *p = (unsigned char *)q - HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    m->live -= (long long)n;
    free(p);
}

static void *cc_m_malloc(size_t n, void *user)
{
    return m_alloc(user, n);
}
static void *cc_m_realloc(void *p, size_t n, void *user)
{
    return m_realloc(user, p, n);
}
static void cc_m_free(void *p, void *user)
{
    m_free(user, p);
}
static void *ssl_m_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return m_alloc(&m_ssl, n);
}
static void *ssl_m_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return m_realloc(&m_ssl, p, n);
}
static void ssl_m_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    m_free(&m_ssl, p);
}

static char pskfile[512];

/* ---- an authenticator that gives the console's user many attributes ----
 * The console sends a challenge; the client answers with a final token, sets
 * the identity and adds `n_attrs` attributes; the console takes the answer. */
#define MANY_ATTRS 300
static int n_attrs = MANY_ATTRS;

static void attr_expect(int i, char *key, size_t kn, char *value, size_t vn)
{
    snprintf(key, kn, "group-%d", i);
    if (i % 50 == 7) { /* the longest value allowed, and an empty one */
        memset(value, 'a' + i % 26, 4096);
        value[4096] = 0;
    } else if (i % 50 == 8) {
        value[0] = 0;
    } else {
        snprintf(value, vn, "S-1-5-21-%d-%d", i * 7919, i);
    }
}

static int many_start(void *md, cc_auth *a, void **state)
{
    (void)md, (void)a;
    *state = NULL;
    return CC_OK;
}

static int many_step(void *state, cc_auth *a, const uint8_t *in, size_t in_len)
{
    (void)state;
    if (cc_auth_role(a) == CC_ROLE_CONSOLE) {
        if (!in) {
            int r = cc_auth_set_output(a, "challenge", 9);
            return r < 0 ? r : CC_AUTH_CONTINUE;
        }
        return in_len == 6 && memcmp(in, "answer", 6) == 0 ? CC_AUTH_DONE
                                                           : cc_auth_set_error(a, CC_ERR_AUTH, "bad answer");
    }
    int r = cc_auth_set_identity(a, "many@EXAMPLE");
    static char key[80], value[4100];
    for (int i = 0; r == CC_OK && i < n_attrs; i++) {
        attr_expect(i, key, sizeof key, value, sizeof value);
        r = cc_auth_add_attribute(a, key, value);
    }
    if (r == CC_OK)
        r = cc_auth_set_output(a, "answer", 6);
    return r < 0 ? r : CC_AUTH_DONE;
}

static void many_end(void *state)
{
    (void)state;
}

static int add_many(cc_context *ctx)
{
    static const cc_authenticator vt = {sizeof vt, "many", many_start, many_step, many_end, NULL, NULL, 0};
    return cc_context_add_authenticator(ctx, &vt, NULL);
}

/* Checks every attribute against what many_step added; the number of the first wrong one, or -1. */
static int attrs_wrong(const cc_session *s, int n)
{
    static char key[80], value[4100];
    const char *k, *v;
    for (int i = 0; i < n; i++) {
        attr_expect(i, key, sizeof key, value, sizeof value);
        if (cc_session_auth_attribute(s, (uint32_t)i, &k, &v) != CC_OK || strcmp(k, key) != 0 || strcmp(v, value))
            return i;
    }
    return cc_session_auth_attribute(s, (uint32_t)n, &k, &v) == CC_OK ? n : -1;
}

/* The host policy reads the attributes while authentication is still going on. */
static int policy_wrong = -2;
static const char *policy_key0, *policy_value_last; /* must stay valid until the session is freed */
static int on_policy(void *user, cc_session *s, const char *mech, const char *identity)
{
    (void)user, (void)mech, (void)identity;
    policy_wrong = attrs_wrong(s, n_attrs);
    cc_session_auth_attribute(s, 0, &policy_key0, NULL);
    cc_session_auth_attribute(s, (uint32_t)n_attrs - 1, NULL, &policy_value_last);
    return 0;
}

/* ---- contexts and pairs ---- */

static cc_context *context(int role, struct meter *m, bool many)
{
    cc_allocator a = {sizeof a, m, cc_m_malloc, cc_m_realloc, cc_m_free};
    cc_context *c = cc_context_new(role, &a, NULL);
    if (!c)
        return NULL;
    int r = role == CC_ROLE_CONSOLE ? cc_context_set_ca_file(c, t_cert("ca.pem"))
                                    : cc_context_set_certificate(c, t_cert("client.pem"), t_cert("client.key"));
    if (r == CC_OK)
        r = many ? add_many(c) : psk_register(c, pskfile);
    if (r == CC_OK && many && role == CC_ROLE_CLIENT)
        r = cc_context_set_auth_policy(c, on_policy, NULL);
    if (r != CC_OK) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static bool pair_start(struct tp_pair *p, bool many)
{
    memset(p, 0, sizeof *p);
    p->sv[0] = p->sv[1] = -1;
    p->cctx = context(CC_ROLE_CONSOLE, &m_con, many);
    p->sctx = context(CC_ROLE_CLIENT, &m_cli, many);
    p->cli.lic_count = 25;
    p->cli.lic_in_use = 7;
    p->con.drop_rx = p->cli.drop_rx = true;
    return p->cctx && p->sctx && tp_pair_open(p, "tester", NULL) == 0;
}

static bool quiet(const struct tp_pair *p)
{
    return cc_session_pending(p->con.s) == 0 && cc_session_pending(p->cli.s) == 0;
}

/* Steps until neither end has bytes to send and a few more steps found nothing to read. */
static bool settle(struct tp_pair *p)
{
    uint64_t end = t_now_ms() + 10000;
    for (int calm = 0; calm < 4;) {
        tp_pair_step(p);
        if (p->con.ended || p->cli.ended || t_now_ms() > end)
            return false;
        calm = quiet(p) ? calm + 1 : 0;
        tp_pair_poll(p, calm ? 1 : 50);
    }
    return true;
}

/* `total` bytes each way, in sends of 64 KiB (retried after CC_ERR_AGAIN), all received. */
static bool transfer(struct tp_pair *p, size_t total)
{
    static uint8_t chunk[65536];
    size_t sent[2] = {0, 0};
    struct tp_side *side[2] = {&p->con, &p->cli};
    memset(chunk, 0x3c, sizeof chunk);
    uint64_t end = t_now_ms() + 30000;
    while (p->con.rx_len < total || p->cli.rx_len < total) {
        for (int i = 0; i < 2; i++) {
            if (sent[i] >= total)
                continue;
            size_t n = total - sent[i] < sizeof chunk ? total - sent[i] : sizeof chunk;
            int r = cc_session_send(side[i]->s, 1, chunk, n);
            if (r >= 0)
                sent[i] += n;
            else if (r != CC_ERR_AGAIN)
                return false;
        }
        tp_pair_step(p);
        if (p->con.ended || p->cli.ended || t_now_ms() > end)
            return false;
        tp_pair_poll(p, 10);
    }
    return settle(p);
}

/* ================================================================= tests */

#define SLACK 64 /* bytes a role may differ from its idle figure once drained */

static void t_buffers_shrink_after_traffic(void)
{
    struct tp_pair p;
    T_ASSERT(pair_start(&p, false));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 10000));
    T_ASSERT(settle(&p));
    /* One small message each way first, so nothing made once on first use is counted as kept. */
    T_ASSERT(transfer(&p, 100));
    p.con.rx_len = p.cli.rx_len = 0;
    long long idle_con = m_con.live, idle_cli = m_cli.live, idle_ssl = m_ssl.live;
    m_con.peak = m_con.live, m_cli.peak = m_cli.live, m_ssl.peak = m_ssl.live;
    printf("#   idle: console %lld bytes, client %lld bytes, OpenSSL (both) %lld bytes\n", idle_con, idle_cli,
           idle_ssl);

    T_ASSERT(transfer(&p, 256 * 1024));
    printf("#   peak during 256 KiB each way: console %lld, client %lld, OpenSSL %lld; drained: %lld, %lld, %lld\n",
           m_con.peak, m_cli.peak, m_ssl.peak, m_con.live, m_cli.live, m_ssl.live);
    /* The buffers did grow (so the meters see them) ... */
    T_ASSERT(m_con.peak > idle_con + 16384 && m_cli.peak > idle_cli + 16384);
    /* ... and were all given back: the library's, and OpenSSL's records and BIO. */
    T_ASSERT(llabs(m_con.live - idle_con) <= SLACK);
    T_ASSERT(llabs(m_cli.live - idle_cli) <= SLACK);
    T_ASSERT(llabs(m_ssl.live - idle_ssl) <= 2 * SLACK);

    /* And again: a second burst returns to the same figure (nothing creeps). */
    p.con.rx_len = p.cli.rx_len = 0;
    T_ASSERT(transfer(&p, 256 * 1024));
    T_ASSERT(llabs(m_con.live - idle_con) <= SLACK);
    T_ASSERT(llabs(m_cli.live - idle_cli) <= SLACK);
    T_ASSERT(llabs(m_ssl.live - idle_ssl) <= 2 * SLACK);
    tp_pair_free(&p);
    T_EQ(m_con.live, 0);
    T_EQ(m_cli.live, 0);
}

static void t_attributes_after_authentication(void)
{
    struct tp_pair p;
    n_attrs = MANY_ATTRS;
    policy_wrong = -2;
    T_ASSERT(pair_start(&p, true));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 10000));
    T_EQ(policy_wrong, -1); /* read during authentication, as they were added */
    T_STREQ(cc_session_identity(p.cli.s), "many@EXAMPLE");
    T_STREQ(p.cli.identity, "many@EXAMPLE");
    T_EQ(attrs_wrong(p.cli.s, MANY_ATTRS), -1); /* read after, from the compacted block */
    const char *k0, *vl;
    T_EQ(cc_session_auth_attribute(p.cli.s, 0, &k0, NULL), CC_OK);
    T_EQ(cc_session_auth_attribute(p.cli.s, MANY_ATTRS - 1, NULL, &vl), CC_OK);
    T_ASSERT(k0 == policy_key0 && vl == policy_value_last); /* what the policy read has not moved */
    const char *k = "x", *v = "y";
    T_EQ(cc_session_auth_attribute(p.cli.s, MANY_ATTRS, &k, &v), CC_ERR_INVALID);
    T_EQ(cc_session_auth_attribute(p.con.s, 0, &k, &v), CC_ERR_INVALID); /* the console has none */
    T_ASSERT(settle(&p));
    tp_pair_free(&p);
}

static void t_attribute_limit(void)
{
    struct tp_pair p;
    n_attrs = 1025; /* one over: the mechanism sees CC_ERR_AGAIN and fails */
    T_ASSERT(pair_start(&p, true));
    tp_drive(&p.con, &p.cli, tp_both_ended, 10000);
    T_ASSERT(p.cli.ended && p.cli.result == CC_ERR_AGAIN);
    tp_pair_free(&p);
    n_attrs = 1024; /* the limit itself is fine, and all of them read back */
    policy_wrong = -2;
    T_ASSERT(pair_start(&p, true));
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 10000));
    T_EQ(policy_wrong, -1);
    T_EQ(attrs_wrong(p.cli.s, 1024), -1);
    tp_pair_free(&p);
    n_attrs = MANY_ATTRS;
}

/* Each allocation of the client's session failing in turn (that one alone), with a mechanism that adds
 * many attributes: each run ends cleanly or gets established with every attribute readable (when
 * compacting them fails they stay where they were). The sanitizer build checks that nothing leaks. */
static void t_client_allocation_failures(void)
{
    long n, established = 0, in_tls = 0;
    n_attrs = 40;
    for (n = 0; n < 2000; n++) {
        struct tp_pair p;
        m_cli.fail_at = -1;
        T_ASSERT(pair_start(&p, true));
        m_cli.count = m_cli.refused = 0;
        m_cli.fail_at = n;
        tp_drive(&p.con, &p.cli, tp_both_established, 5000);
        m_cli.fail_at = -1;
        bool up = p.cli.s && cc_session_state(p.cli.s) == CC_STATE_ESTABLISHED;
        if (up) {
            established++;
            T_EQ(attrs_wrong(p.cli.s, n_attrs), -1);
        } else {
            T_ASSERT(p.cli.ended);            /* failed, did not hang */
            T_EQ(p.cli.result, CC_ERR_NOMEM); /* said as such, also when it was TLS's output (tls.c's BIO) */
            if (strstr(cc_session_errmsg(p.cli.s), "out of memory for the outgoing records"))
                in_tls++;
        }
        tp_pair_free(&p);
        T_EQ(m_cli.live, 0);
        if (!m_cli.refused) { /* every allocation up to established has failed once */
            T_ASSERT(up);
            break;
        }
    }
    n_attrs = MANY_ATTRS;
    printf("#   the client's session makes %ld allocations to get established; with one of them failing, %ld "
           "runs got there anyway\n",
           n, established - 1);
    T_ASSERT(n > 0 && n < 2000);
    T_ASSERT(in_tls > 0);
}

int main(void)
{
    m_con.fail_at = m_cli.fail_at = m_ssl.fail_at = -1;
    /* Before anything allocates through OpenSSL. */
    if (!CRYPTO_set_mem_functions(ssl_m_malloc, ssl_m_realloc, ssl_m_free)) {
        printf("not ok - OpenSSL allocated before CRYPTO_set_mem_functions\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (t_make_certs() != 0) {
        printf("not ok - cannot make test certificates\n");
        return 1;
    }
    snprintf(pskfile, sizeof pskfile, "%s/psk.key", t_tmpdir());
    FILE *f = fopen(pskfile, "w");
    if (!f)
        return 1;
    fputs("0123456789abcdef-test-key\n", f);
    fclose(f);

    t_run("buffers are given back once traffic drains (library and OpenSSL)", t_buffers_shrink_after_traffic);
    t_run("attributes are readable during and after authentication", t_attributes_after_authentication);
    t_run("1024 attributes, and no more", t_attribute_limit);
    t_run("every client allocation failing in turn ends cleanly; attributes stay readable",
          t_client_allocation_failures);
    return t_done();
}
