/* test-krb5-pool.c -- the kerberos mechanism's per-context caches against a real MIT KDC: the pool of
 * krb5 contexts, the console's ccache copy and the acceptor credential, reused in sequence and on two
 * threads, renewed when the ccache or keytab file changes, and clean under allocation failures. */
#include "harness.h"
#include "pair.h"

#include "../lib/auth/krb5/krb5_int.h"
#include "auth-peek.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REALM "CC.TEST"

static char svc_kt[600], other_kt[600], live_kt[600];

static int kdc(const char *args)
{
    return t_sh("bash '%s' %s >/dev/null", t_kdc_script(), args);
}

static int setup(void)
{
    char a[1400];
    if (t_kdc_start(REALM) != 0)
        return -1;
    snprintf(svc_kt, sizeof svc_kt, "%s/service.keytab", t_kdc_dir());
    snprintf(other_kt, sizeof other_kt, "%s/other.keytab", t_kdc_dir());
    snprintf(live_kt, sizeof live_kt, "%s/live.keytab", t_kdc_dir());
    if (t_sh("K='%s'; D='%s'; bash $K addprinc $D alice@" REALM " alice-pw >/dev/null && "
             "bash $K addprinc $D bob@" REALM " bob-pw >/dev/null && bash $K addprinc $D host/localhost >/dev/null && "
             "bash $K ktadd $D $D/service.keytab host/localhost >/dev/null && "
             "bash $K addprinc $D cc/other >/dev/null && bash $K ktadd $D $D/other.keytab cc/other >/dev/null && "
             "bash $K kinit $D alice alice-pw -c FILE:$D/alice.cc",
             t_kdc_script(), t_kdc_dir()) != 0) {
        fprintf(stderr, "# fixture steps failed\n");
        return -1;
    }
    snprintf(a, sizeof a, "FILE:%s/alice.cc", t_kdc_dir());
    setenv("KRB5CCNAME", a, 1);
    return 0;
}

/* ---- two contexts and an exchange between handles made from them ---- */

static uint8_t cb[32] = {1, 2, 3};
static bool quiet; /* no line per failed exchange (the allocation-failure loop) */

static cc_context *mk_ctx(int role, const cc_allocator *al, const char *k1, const char *v1)
{
    cc_context *c = cc_context_new(role, al, NULL);
    if (!c)
        return NULL;
    if (cc_context_add_builtin_authenticator(c, "kerberos") != 0 ||
        (k1 && cc_context_set_auth_option(c, "kerberos", k1, v1) != 0)) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

/* One whole exchange on fresh handles of con and cli; 0 when both are done, else the first
 * failure. The client's identity goes to ident (may be NULL). */
static int exchange(cc_context *con, cc_context *cli, char *ident, size_t ident_len)
{
    cc_auth *a = cc__auth_new(con, &con->auth.entry[0], CC_ROLE_CONSOLE, "localhost");
    cc_auth *b = cc__auth_new(cli, &cli->auth.entry[0], CC_ROLE_CLIENT, NULL);
    int r = CC_ERR_NOMEM;
    if (!a || !b)
        goto out;
    cc__auth_set_binding(a, cb);
    cc__auth_set_binding(b, cb);
    r = cc__auth_step(a, NULL, 0);
    if (r == CC_AUTH_PENDING) {
        cc_job *j = cc__auth_take_job(a);
        if (!j) {
            r = -999;
            goto out;
        }
        cc_job_run(j);
        cc_job_free(j);
        r = cc__auth_step(a, NULL, 0);
    }
    if (r != CC_AUTH_CONTINUE) {
        r = r < 0 ? r : -998;
        goto out;
    }
    r = cc__auth_step(b, t_out(a), t_out_len(a));
    if (r != CC_AUTH_DONE) {
        r = r < 0 ? r : -997;
        goto out;
    }
    if (ident && cc__auth_identity(b))
        snprintf(ident, ident_len, "%s", cc__auth_identity(b));
    r = cc__auth_step(a, t_out(b), t_out_len(b));
    r = r == CC_AUTH_DONE ? 0 : (r < 0 ? r : -996);
out:
    if (r && a && b && !quiet)
        printf("# exchange %d %s: console \"%s\" client \"%s\"\n", r, cc_err_name(r), cc__auth_detail(a),
               cc__auth_detail(b));
    cc__auth_free(a);
    cc__auth_free(b);
    return r;
}

static cc_stats stats(const cc_context *c)
{
    cc_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    cc_context_stats(c, &s);
    return s;
}

/* ---- tests ---- */

static void test_sequence_reuses(void)
{
    cc_context *con = mk_ctx(CC_ROLE_CONSOLE, NULL, "service", "host/localhost@" REALM);
    cc_context *cli = mk_ctx(CC_ROLE_CLIENT, NULL, "keytab", svc_kt);
    T_ASSERT(con && cli);
    char ident[300];
    for (int i = 0; i < 20; i++) {
        ident[0] = 0;
        T_EQ(exchange(con, cli, ident, sizeof ident), 0);
        T_STREQ(ident, "alice@" REALM);
    }
    cc_stats c = stats(con), s = stats(cli);
    printf("# console: %llu krb5 contexts made, %llu reused; ccache %llu reads, %llu reuses\n",
           (unsigned long long)c.krb5_contexts_made, (unsigned long long)c.krb5_contexts_reused,
           (unsigned long long)c.krb5_ccache_reads, (unsigned long long)c.krb5_ccache_reuses);
    /* One job at a time: one context serves them all. */
    T_EQ(c.krb5_contexts_made, 1);
    T_EQ(c.krb5_contexts_made + c.krb5_contexts_reused, 20);
    /* The ccache is read again only when it changed (once, if the first job stored a new
     * service ticket in it). */
    T_ASSERT(c.krb5_ccache_reads >= 1 && c.krb5_ccache_reads <= 2);
    T_EQ(c.krb5_ccache_reads + c.krb5_ccache_reuses, 20);
    T_EQ(s.krb5_acceptor_reads, 1);
    T_EQ(s.krb5_acceptor_reuses, 19);
    T_EQ(s.krb5_ccache_reads, 0); /* each role counts its own side only */
    T_EQ(c.krb5_acceptor_reads, 0);
    cc_context_free(con);
    cc_context_free(cli);
}

struct worker {
    cc_context *con, *cli;
    atomic_int failures;
};

static void *run_many(void *arg)
{
    struct worker *w = arg;
    char ident[300];
    for (int i = 0; i < 15; i++)
        if (exchange(w->con, w->cli, ident, sizeof ident) != 0 || strcmp(ident, "alice@" REALM) != 0)
            atomic_fetch_add(&w->failures, 1);
    return NULL;
}

static void test_two_threads(void)
{
    struct worker w = {mk_ctx(CC_ROLE_CONSOLE, NULL, "service", "host/localhost@" REALM),
                       mk_ctx(CC_ROLE_CLIENT, NULL, "keytab", svc_kt), 0};
    T_ASSERT(w.con && w.cli);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        T_EQ(pthread_create(&th[i], NULL, run_many, &w), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    T_EQ(atomic_load(&w.failures), 0);
    cc_stats c = stats(w.con), s = stats(w.cli);
    /* At most one context per thread at once; the pool keeps them. */
    T_ASSERT(c.krb5_contexts_made >= 1 && c.krb5_contexts_made <= 4);
    T_EQ(c.krb5_contexts_made + c.krb5_contexts_reused, 30);
    T_EQ(c.krb5_ccache_reads + c.krb5_ccache_reuses, 30);
    T_EQ(s.krb5_acceptor_reads + s.krb5_acceptor_reuses, 30);
    T_ASSERT(s.krb5_acceptor_reads <= 2); /* two threads may both find the cache empty at first */
    cc_context_free(w.con);
    cc_context_free(w.cli);
}

/* Replaces path with a copy of src (a new file renamed over it, as tools do). */
static int replace_file(const char *src, const char *path)
{
    return t_sh("cp '%s' '%s.new' && mv -f '%s.new' '%s'", src, path, path, path);
}

static void test_keytab_replaced(void)
{
    T_EQ(replace_file(svc_kt, live_kt), 0);
    cc_context *con = mk_ctx(CC_ROLE_CONSOLE, NULL, "service", "host/localhost@" REALM);
    cc_context *cli = mk_ctx(CC_ROLE_CLIENT, NULL, "keytab", live_kt);
    T_ASSERT(con && cli);
    T_EQ(exchange(con, cli, NULL, 0), 0);
    T_EQ(exchange(con, cli, NULL, 0), 0);
    T_EQ(stats(cli).krb5_acceptor_reads, 1);
    /* A keytab without host/localhost's key: the next session is refused. */
    T_EQ(replace_file(other_kt, live_kt), 0);
    T_EQ(exchange(con, cli, NULL, 0), CC_ERR_AUTH_KEYTAB);
    T_EQ(stats(cli).krb5_acceptor_reads, 2);
    /* The right keytab again, written in place this time (same inode, new size and mtime). */
    T_EQ(t_sh("cat '%s' > '%s'", svc_kt, live_kt), 0);
    T_EQ(exchange(con, cli, NULL, 0), 0);
    T_EQ(stats(cli).krb5_acceptor_reads, 3);
    T_EQ(exchange(con, cli, NULL, 0), 0);
    T_EQ(stats(cli).krb5_acceptor_reads, 3);
    /* The keytab gone: refused, and nothing stale is used. */
    T_EQ(unlink(live_kt), 0);
    T_EQ(exchange(con, cli, NULL, 0), CC_ERR_AUTH_KEYTAB);
    cc_context_free(con);
    cc_context_free(cli);
}

static void test_ccache_replaced(void)
{
    char a[1400], ident[300];
    cc_context *con = mk_ctx(CC_ROLE_CONSOLE, NULL, "service", "host/localhost@" REALM);
    cc_context *cli = mk_ctx(CC_ROLE_CLIENT, NULL, "keytab", svc_kt);
    T_ASSERT(con && cli);
    snprintf(a, sizeof a, "kinit '%s' alice alice-pw -c 'FILE:%s/swap.cc'", t_kdc_dir(), t_kdc_dir());
    T_EQ(kdc(a), 0);
    snprintf(a, sizeof a, "FILE:%s/swap.cc", t_kdc_dir());
    setenv("KRB5CCNAME", a, 1);
    T_EQ(exchange(con, cli, ident, sizeof ident), 0);
    T_STREQ(ident, "alice@" REALM);
    T_EQ(exchange(con, cli, ident, sizeof ident), 0);
    T_STREQ(ident, "alice@" REALM);
    /* kinit as bob into the same cache: the next job must be bob's. */
    snprintf(a, sizeof a, "kinit '%s' bob bob-pw -c 'FILE:%s/swap.cc'", t_kdc_dir(), t_kdc_dir());
    T_EQ(kdc(a), 0);
    T_EQ(exchange(con, cli, ident, sizeof ident), 0);
    T_STREQ(ident, "bob@" REALM);
    /* KRB5CCNAME pointed elsewhere: that cache. */
    snprintf(a, sizeof a, "FILE:%s/alice.cc", t_kdc_dir());
    setenv("KRB5CCNAME", a, 1);
    T_EQ(exchange(con, cli, ident, sizeof ident), 0);
    T_STREQ(ident, "alice@" REALM);
    /* The cache destroyed: no credentials, not the stale copy. */
    snprintf(a, sizeof a, "FILE:%s/swap.cc", t_kdc_dir());
    setenv("KRB5CCNAME", a, 1);
    T_EQ(exchange(con, cli, ident, sizeof ident), 0);
    snprintf(a, sizeof a, "%s/swap.cc", t_kdc_dir());
    T_EQ(unlink(a), 0);
    T_EQ(exchange(con, cli, NULL, 0), CC_ERR_AUTH_NO_CREDENTIALS);
    snprintf(a, sizeof a, "FILE:%s/alice.cc", t_kdc_dir());
    setenv("KRB5CCNAME", a, 1);
    cc_context_free(con);
    cc_context_free(cli);
}

/* ---- allocation failures ---- */

static long alloc_count, alloc_fail_at;
static void *t_malloc(size_t n, void *u)
{
    (void)u;
    if (++alloc_count == alloc_fail_at)
        return NULL;
    return malloc(n);
}
static void *t_realloc(void *p, size_t n, void *u)
{
    (void)u;
    if (++alloc_count == alloc_fail_at)
        return NULL;
    return realloc(p, n);
}
static void t_free(void *p, void *u)
{
    (void)u;
    free(p);
}

/* Every allocation of the library's own fails in turn, over two exchanges on the same contexts
 * (the second one through the caches): each ends with a clean code, never a crash or a leak. */
static void test_allocation_failures(void)
{
    cc_allocator al = {sizeof al, NULL, t_malloc, t_realloc, t_free};
    int failures = 0;
    quiet = true;
    for (alloc_fail_at = 1; alloc_fail_at < 1000; alloc_fail_at++) {
        alloc_count = 0;
        cc_context *con = mk_ctx(CC_ROLE_CONSOLE, &al, "service", "host/localhost@" REALM);
        cc_context *cli = mk_ctx(CC_ROLE_CLIENT, &al, "keytab", svc_kt);
        int r1 = CC_ERR_NOMEM, r2 = CC_ERR_NOMEM;
        if (con && cli) {
            r1 = exchange(con, cli, NULL, 0);
            r2 = exchange(con, cli, NULL, 0);
        }
        cc_context_free(con);
        cc_context_free(cli);
        if (alloc_count < alloc_fail_at) { /* nothing failed: both exchanges ran */
            T_EQ(r1, 0);
            T_EQ(r2, 0);
            break;
        }
        T_ASSERT(r1 <= 0 && r2 <= 0);
        failures++;
    }
    quiet = false;
    T_ASSERT(failures > 10);
    printf("# %d allocation failures injected, each ended cleanly\n", failures);
}

int main(void)
{
    if (setup() != 0) {
        printf("not ok - cannot start the KDC fixture\n");
        return 1;
    }
    t_run("krb5 pool: 20 exchanges in sequence reuse one krb5 context, the ccache copy and the acceptor credential",
          test_sequence_reuses);
    t_run("krb5 pool: exchanges on two threads share the context's caches", test_two_threads);
    t_run("krb5 pool: a keytab replaced or rewritten between sessions is read again", test_keytab_replaced);
    t_run("krb5 pool: a ccache re-initialised, switched or removed between jobs is read again", test_ccache_replaced);
    t_run("krb5 pool: allocation failures end cleanly", test_allocation_failures);
    return t_done();
}
