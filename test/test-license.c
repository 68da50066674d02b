/* test-license.c -- the licence API without a network: URL and server-name
 * rules, host-answered jobs (figures, status + body), fail-closed, the cache. */
#include "../lib/core/core.h"
#include "harness.h"

#include <stdlib.h>
#include <time.h>

static cc_context *ctx;
static cc__license_verdict v;

/* These tests hand several jobs of one context different answers, so the
 * verdict cache (on by default) is turned off; test_cache tests it. */
static cc_context *client(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (c && cc_context_set_license_cache_ttl(c, 0) != 0) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static cc_job *start(cc_context *c)
{
    cc_job *job = NULL;
    if (cc__license_start(c, &c->license, &job, &v) != 0)
        return NULL;
    return job;
}

static void test_url_rules(void)
{
    T_EQ(cc_context_set_license_url(ctx, "http://ns.example.com/altiris/x.aspx"), 0);
    T_STREQ(ctx->license.url, "http://ns.example.com/altiris/x.aspx");
    T_EQ(cc_context_set_license_url(ctx, "HTTPS://NS:8443/p?q=1#f"), 0);
    T_EQ(cc_context_set_license_url(ctx, "http://[::1]:8080/"), 0);
    T_EQ(cc_context_set_license_url(ctx, "http://10.0.0.1"), 0);
    static const char *bad[] = {
        "",
        "file:///etc/passwd",
        "ftp://ns/x",
        "ns.example.com/x",
        "http://",
        "http:///x",
        "http://user:secret@ns/x",
        "http://ns/a b",
        "http://ns/\x01",
        "http://ns:0/",
        "http://ns:65536/",
        "http://ns:port/",
        "http://[zz::1]/",
        "http://-ns/",
        "http://ns..example/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        T_EQ(cc_context_set_license_url(ctx, bad[i]), CC_ERR_INVALID);
        T_CONTAINS(cc_context_errmsg(ctx), "refused");
    }
    T_CONTAINS((cc_context_set_license_url(ctx, "http://u:pw@ns/"), cc_context_errmsg(ctx)), "passwords");
    /* a refused URL leaves the previous one */
    T_STREQ(ctx->license.url, "http://10.0.0.1");
    char longurl[2100];
    memset(longurl, 'a', sizeof longurl);
    memcpy(longurl, "http://ns/", 10);
    longurl[sizeof longurl - 1] = 0;
    T_EQ(cc_context_set_license_url(ctx, longurl), CC_ERR_INVALID);
    T_EQ(cc_context_set_license_url(ctx, NULL), 0);
    T_ASSERT(ctx->license.url == NULL);
    T_EQ(cc_context_set_license_url(NULL, "http://ns/"), CC_ERR_INVALID);
}

static void test_server_name(void)
{
    T_EQ(cc_context_set_license_server(ctx, "NS-NAME"), 0);
    T_STREQ(ctx->license.url, "http://NS-NAME/altiris/NS/Agent/GetLicenseDetails.aspx");
    T_EQ(cc_context_set_license_server(ctx, "ns.corp.example:8080"), 0);
    T_STREQ(ctx->license.url, "http://ns.corp.example:8080/altiris/NS/Agent/GetLicenseDetails.aspx");
    T_EQ(cc_context_set_license_server(ctx, "192.168.1.5"), 0);
    T_EQ(cc_context_set_license_server(ctx, "fe80::1"), 0);
    T_STREQ(ctx->license.url, "http://[fe80::1]/altiris/NS/Agent/GetLicenseDetails.aspx");
    T_EQ(cc_context_set_license_server(ctx, "[::1]:81"), 0);
    T_STREQ(ctx->license.url, "http://[::1]:81/altiris/NS/Agent/GetLicenseDetails.aspx");
    T_EQ(cc_context_set_license_server(ctx, "ns_01"), 0);
    static const char *bad[] = {"",     "http://ns", "ns/path", "ns name", "user@ns",   "ns:0", "ns:x",
                                "ns?x", "ns#x",      "a..b",    ".ns",     "ns:8080:1", "[::1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        T_EQ(cc_context_set_license_server(ctx, bad[i]), CC_ERR_INVALID);
        T_CONTAINS(cc_context_errmsg(ctx), "management server name");
    }
    char name[300];
    memset(name, 'a', sizeof name);
    name[sizeof name - 1] = 0;
    T_EQ(cc_context_set_license_server(ctx, name), CC_ERR_INVALID);
    T_STREQ(ctx->license.url, "http://ns_01/altiris/NS/Agent/GetLicenseDetails.aspx");
}

static void test_ca_file_and_role(void)
{
    T_EQ(cc_context_set_license_ca_file(ctx, "/nonexistent/ca.pem"), CC_ERR_TLS_CONFIG);
    T_CONTAINS(cc_context_errmsg(ctx), "/nonexistent/ca.pem");
    T_EQ(cc_context_set_license_ca_file(ctx, t_data("license/granted.xml")), CC_ERR_TLS_CONFIG);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "bash '%s/test/fixtures/certs.sh' '%s/certs' >/dev/null",
             getenv("CC_SRC") ? getenv("CC_SRC") : ".", t_tmpdir());
    T_EQ(system(cmd), 0);
    char ca[512];
    snprintf(ca, sizeof ca, "%s/certs/ca.pem", t_tmpdir());
    T_EQ(cc_context_set_license_ca_file(ctx, ca), 0);
    T_STREQ(ctx->license.ca_file, ca);
    T_EQ(cc_context_set_license_ca_file(ctx, NULL), 0);
    T_ASSERT(ctx->license.ca_file == NULL);
    T_EQ(cc_context_set_license_ca_file(ctx, ca), 0); /* freed by cc_context_free */

    cc_context *console = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    T_ASSERT(console);
    T_EQ(cc_context_set_license_url(console, "http://ns/"), CC_ERR_CONFIG);
    T_CONTAINS(cc_context_errmsg(console), "client");
    T_EQ(cc_context_set_license_server(console, "ns"), CC_ERR_CONFIG);
    T_EQ(cc_context_set_license_ca_file(console, ca), CC_ERR_CONFIG);
    T_EQ(cc_context_set_license_cache_ttl(console, 10), CC_ERR_CONFIG);
    cc_context_free(console);
}

static void test_no_url(void)
{
    cc_context *c = client();
    T_ASSERT(c);
    cc_job *job = start(c);
    T_ASSERT(job);
    T_EQ(cc_job_type(job), CC_JOB_LICENSE);
    T_ASSERT(cc_job_license_url(job) == NULL);
    T_EQ(cc_job_run(job), CC_ERR_LICENSE_CONFIG);
    cc__license_decide(c, &c->license, job, &v);
    T_EQ(v.code, CC_ERR_LICENSE_CONFIG);
    T_ASSERT(!v.granted);
    T_CONTAINS(v.detail, "cc_context_set_license_url");
    T_CONTAINS(v.detail, "--license-url");
    cc_job_free(job);
    cc_context_free(c);
}

static void test_unanswered_denies(void)
{
    cc_context *c = client();
    T_ASSERT(c);
    T_EQ(cc_context_set_license_url(c, "http://ns/x"), 0);
    cc_job *job = start(c);
    T_ASSERT(job);
    T_STREQ(cc_job_license_url(job), "http://ns/x");
    cc__license_decide(c, &c->license, job, &v);
    T_ASSERT(!v.granted);
    T_EQ(v.code, CC_ERR_LICENSE_MISSING);
    T_CONTAINS(v.detail, "http://ns/x");
    cc_job_free(job);
    /* a host that fails the job: its code and detail, with the URL */
    job = start(c);
    T_ASSERT(job);
    T_EQ(cc_job_fail(job, CC_ERR_LICENSE_UNREACHABLE, "proxy said no"), 0);
    cc__license_decide(c, &c->license, job, &v);
    T_EQ(v.code, CC_ERR_LICENSE_UNREACHABLE);
    T_CONTAINS(v.detail, "proxy said no");
    T_CONTAINS(v.detail, "http://ns/x");
    cc_job_free(job);
    /* not a licence job at all */
    cc__license_decide(c, &c->license, NULL, &v);
    T_ASSERT(!v.granted);
    T_ASSERT(v.code < 0);
    cc_context_free(c);
}

static void test_host_figures(void)
{
    cc_context *c = client();
    T_ASSERT(c);
    T_EQ(cc_context_set_license_server(c, "ns"), 0);
    struct {
        uint32_t count, in_use;
        int code;
    } cases[] = {{25, 7, 0},
                 {10, 10, CC_ERR_LICENSE_DENIED},
                 {10, 12, CC_ERR_LICENSE_DENIED},
                 {0, 0, CC_ERR_LICENSE_DENIED},
                 {UINT32_MAX, UINT32_MAX - 1, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cc_job *job = start(c);
        T_ASSERT(job);
        T_EQ(cc_job_license_set_figures(job, cases[i].count, cases[i].in_use), 0);
        T_EQ(cc_job_run(job), CC_ERR_STATE); /* answered already */
        T_EQ(cc_job_license_feed(job, "<x/>", 4), CC_ERR_STATE);
        T_EQ(cc_job_license_set_status(job, 200), CC_ERR_STATE);
        cc__license_decide(c, &c->license, job, &v);
        T_EQ(v.code, cases[i].code);
        T_EQ(v.granted, cases[i].code == 0);
        T_EQ(v.count, cases[i].count);
        T_EQ(v.in_use, cases[i].in_use);
        cc_job_free(job);
    }
    cc_job *job = start(c);
    T_ASSERT(job);
    T_EQ(cc_job_license_set_figures(job, 10, 10), 0);
    cc__license_decide(c, &c->license, job, &v);
    T_CONTAINS(v.detail, "no licence free: 10 of 10 in use");
    cc_job_free(job);
    T_EQ(cc_job_license_set_figures(NULL, 1, 0), CC_ERR_INVALID);
    T_ASSERT(cc_job_license_url(NULL) == NULL);
    cc_context_free(c);
}

static const char granted_page[] =
    "<LicenseDetails><LicenseCount>25</LicenseCount><LicensesInUse>7</LicensesInUse></LicenseDetails>";

static int feed_page(cc_context *c, int status, const char *page, size_t chunk)
{
    cc_job *job = start(c);
    if (!job)
        return 9999;
    if (status && cc_job_license_set_status(job, status) != 0) {
        cc_job_free(job);
        return 9998;
    }
    size_t len = strlen(page);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (cc_job_license_feed(job, page + off, n) != 0)
            break;
    }
    cc__license_decide(c, &c->license, job, &v);
    cc_job_free(job);
    return v.code;
}

static void test_host_page(void)
{
    cc_context *c = client();
    T_ASSERT(c);
    /* no URL: a host feeding a saved page (cc-client --license-file) */
    T_EQ(feed_page(c, 0, granted_page, 5), 0);
    T_ASSERT(v.granted);
    T_EQ(v.count, 25);
    T_EQ(v.in_use, 7);
    T_EQ(cc_context_set_license_url(c, "http://ns/p"), 0);
    T_EQ(feed_page(c, 200, granted_page, 1), 0);
    T_CONTAINS(v.detail, "7 of 25 in use");
    T_EQ(feed_page(c, 204, granted_page, 100), 0);
    T_EQ(feed_page(c, 404, granted_page, 7), CC_ERR_LICENSE_HTTP);
    T_CONTAINS(v.detail, "404");
    T_CONTAINS(v.detail, "http://ns/p");
    T_EQ(feed_page(c, 302, "", 1), CC_ERR_LICENSE_HTTP);
    T_EQ(feed_page(c, 200, "", 1), CC_ERR_LICENSE_PARSE);
    T_EQ(feed_page(c, 200, "<LicenseDetails LicenseCount='1'/>", 3), CC_ERR_LICENSE_MISSING);
    T_EQ(feed_page(c, 200, "<LicenseDetails LicenseCount='1' LicensesInUse='1'/>", 3), CC_ERR_LICENSE_DENIED);
    T_EQ(feed_page(c, 200, "<LicenseDetails LicenseCount='2' LicensesInUse='1' ExpiryDate='2000-02-29'/>", 9),
         CC_ERR_LICENSE_EXPIRED);
    T_CONTAINS(v.detail, "2000-02-29");
    T_EQ(v.count, 2);
    T_EQ(feed_page(c, 200, "<LicenseDetails LicenseCount='2' LicensesInUse='1' ExpiryDate='2999-01-01'/>", 9), 0);
    T_EQ(feed_page(c, 200, "<LicenseDetails LicenseCount='x' LicensesInUse='1'/>", 9), CC_ERR_LICENSE_PARSE);
    T_CONTAINS(v.detail, "http://ns/p");

    cc_job *job = start(c);
    T_ASSERT(job);
    T_EQ(cc_job_license_set_status(job, 99), CC_ERR_INVALID);
    T_EQ(cc_job_license_set_status(job, 600), CC_ERR_INVALID);
    T_EQ(cc_job_license_feed(job, NULL, 3), CC_ERR_INVALID);
    T_EQ(cc_job_license_feed(job, NULL, 0), 0);
    T_EQ(cc_job_license_feed(job, "<!DOCTYPE x [<!ENTITY a 'b'>]>", 30), CC_ERR_LICENSE_PARSE);
    T_EQ(cc_job_license_feed(job, "<x/>", 4), CC_ERR_LICENSE_PARSE); /* sticky */
    T_EQ(cc_job_license_set_figures(job, 5, 1), CC_ERR_STATE);
    T_EQ(cc_job_run(job), CC_ERR_STATE);
    cc__license_decide(c, &c->license, job, &v);
    T_EQ(v.code, CC_ERR_LICENSE_PARSE);
    T_CONTAINS(v.detail, "DOCTYPE");
    cc_job_free(job);
    cc_context_free(c);
}

static void test_long_url_keeps_the_cause(void)
{
    cc_context *c = client();
    T_ASSERT(c);
    char url[2049];
    memset(url, 'a', sizeof url - 1);
    memcpy(url, "http://ns/", 10);
    url[sizeof url - 1] = 0;
    T_EQ(cc_context_set_license_url(c, url), 0);
    T_EQ(feed_page(c, 200, "<LicenseDetails LicenseCount='3' LicensesInUse='3'/>", 50), CC_ERR_LICENSE_DENIED);
    T_CONTAINS(v.detail, "no licence free: 3 of 3 in use per http://ns/aaaa");
    T_CONTAINS(v.detail, "aaa...");
    T_EQ(feed_page(c, 404, "", 1), CC_ERR_LICENSE_HTTP);
    T_CONTAINS(v.detail, "answered HTTP status 404");
    cc_context_free(c);
}

static void test_page_limit(void)
{
    cc_context *c = client();
    T_ASSERT(c);
    T_EQ(cc_context_set_license_url(c, "http://ns/p"), 0);
    T_EQ(cc_context_set_limit(c, CC_LIMIT_LICENSE_PAGE, 1024), 0);
    cc_job *job = start(c);
    T_ASSERT(job);
    char chunk[100];
    memset(chunk, ' ', sizeof chunk);
    int rc = 0, i;
    for (i = 0; i < 20 && rc == 0; i++)
        rc = cc_job_license_feed(job, chunk, sizeof chunk);
    T_EQ(rc, CC_ERR_LICENSE_TOO_LARGE);
    T_EQ(i, 11); /* the chunk that crossed 1024 bytes */
    cc__license_decide(c, &c->license, job, &v);
    T_EQ(v.code, CC_ERR_LICENSE_TOO_LARGE);
    T_CONTAINS(v.detail, "1024 bytes");
    T_CONTAINS(v.detail, "http://ns/p");
    cc_job_free(job);
    cc_context_free(c);
}

static void test_cache(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(c);
    T_EQ(c->license.cache_ttl_ms, 5000); /* the default doc/LICENSE-PAGE.md and the man page give */
    T_EQ(cc_context_set_license_url(c, "http://ns/p"), 0);
    /* on by default: the next session takes the verdict, no job */
    T_EQ(feed_page(c, 200, granted_page, 50), 0);
    cc_job *job = (cc_job *)1;
    T_EQ(cc__license_start(c, &c->license, &job, &v), 1);
    T_ASSERT(job == NULL);
    T_ASSERT(v.granted);
    T_CONTAINS(v.detail, "cached verdict");
    /* 0 turns it off: every session gets a job */
    T_EQ(cc_context_set_license_cache_ttl(c, 0), 0);
    T_EQ(feed_page(c, 200, granted_page, 50), 0);
    job = start(c);
    T_ASSERT(job);
    cc_job_free(job);

    T_EQ(cc_context_set_license_cache_ttl(c, 60000), 0);
    T_EQ(feed_page(c, 200, granted_page, 50), 0);
    job = (cc_job *)1;
    T_EQ(cc__license_start(c, &c->license, &job, &v), 1);
    T_ASSERT(job == NULL);
    T_ASSERT(v.granted);
    T_EQ(v.code, 0);
    T_EQ(v.count, 25);
    T_EQ(v.in_use, 7);
    T_CONTAINS(v.detail, "cached");
    T_CONTAINS(v.detail, "http://ns/p");

    /* setting the TTL forgets the verdict; failures are not cached */
    T_EQ(cc_context_set_license_cache_ttl(c, 60000), 0);
    T_EQ(feed_page(c, 500, "", 1), CC_ERR_LICENSE_HTTP);
    T_EQ(cc__license_start(c, &c->license, &job, &v), 0);
    T_ASSERT(job);
    cc__license_decide(c, &c->license, job, &v); /* unanswered: denied, not cached */
    cc_job_free(job);
    T_EQ(cc__license_start(c, &c->license, &job, &v), 0);
    T_ASSERT(job);
    cc_job_free(job);

    /* a denial is a sound answer and is cached */
    T_EQ(feed_page(c, 200, "<LicenseDetails LicenseCount='3' LicensesInUse='3'/>", 50), CC_ERR_LICENSE_DENIED);
    T_EQ(cc__license_start(c, &c->license, &job, &v), 1);
    T_EQ(v.code, CC_ERR_LICENSE_DENIED);
    T_ASSERT(!v.granted);

    /* changing the source forgets the verdict */
    T_EQ(cc_context_set_license_server(c, "other"), 0);
    T_EQ(cc__license_start(c, &c->license, &job, &v), 0);
    cc_job_free(job);

    /* the TTL runs out */
    T_EQ(cc_context_set_license_cache_ttl(c, 50), 0);
    T_EQ(feed_page(c, 200, granted_page, 50), 0);
    T_EQ(cc__license_start(c, &c->license, &job, &v), 1);
    struct timespec ts = {0, 80 * 1000 * 1000};
    nanosleep(&ts, NULL);
    T_EQ(cc__license_start(c, &c->license, &job, &v), 0);
    T_ASSERT(job);
    cc_job_free(job);
    cc_context_free(c);
}

/* An allocator that fails the n-th allocation from now on (0 = never). */
static long alloc_count, alloc_fail_at, alloc_live;
static void *t_malloc(size_t n, void *u)
{
    (void)u;
    if (alloc_fail_at && ++alloc_count == alloc_fail_at)
        return NULL;
    void *p = malloc(n);
    if (p)
        alloc_live++;
    return p;
}
static void *t_realloc(void *p, size_t n, void *u)
{
    (void)u;
    if (alloc_fail_at && ++alloc_count == alloc_fail_at)
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        alloc_live++;
    return q;
}
static void t_free(void *p, void *u)
{
    (void)u;
    if (p)
        alloc_live--;
    free(p);
}

/* Every allocation of a start + feed + decide fails in turn: the check must
 * end denied (never granted by accident), with no crash and nothing leaked. */
static void test_allocation_failures(void)
{
    cc_allocator a = {sizeof a, NULL, t_malloc, t_realloc, t_free};
    int failures_seen = 0;
    for (long n = 1; n < 200; n++) {
        alloc_fail_at = 0;
        alloc_live = 0;
        cc_context *c = cc_context_new(CC_ROLE_CLIENT, &a, NULL);
        T_ASSERT(c);
        T_EQ(cc_context_set_license_url(c, "http://ns/p"), 0);
        alloc_count = 0;
        alloc_fail_at = n;
        cc_job *job = NULL;
        int rc = cc__license_start(c, &c->license, &job, &v);
        int code;
        if (rc < 0) {
            T_EQ(rc, CC_ERR_NOMEM);
            T_ASSERT(job == NULL);
            code = rc;
        } else {
            T_EQ(rc, 0);
            cc_job_license_set_status(job, 200);
            cc_job_license_feed(job, granted_page, 20);
            cc_job_license_feed(job, granted_page + 20, strlen(granted_page) - 20);
            cc__license_decide(c, &c->license, job, &v);
            cc_job_free(job);
            code = v.code;
            if (code != 0) {
                T_EQ(code, CC_ERR_NOMEM);
                T_ASSERT(!v.granted);
            }
        }
        bool failed = alloc_count >= n;
        alloc_fail_at = 0;
        cc_context_free(c);
        T_EQ(alloc_live, 0);
        if (!failed) { /* every allocation point has been tried */
            printf("# %d allocation points failed in turn\n", failures_seen);
            T_EQ(code, 0);
            T_ASSERT(failures_seen >= 2);
            return;
        }
        T_ASSERT(code != 0);
        failures_seen++;
    }
    T_ASSERT(!"more than 200 allocations for one licence check");
}

int main(void)
{
    ctx = client();
    if (!ctx)
        return 99;
    t_run("licence URL rules", test_url_rules);
    t_run("management server name builds the default URL", test_server_name);
    t_run("CA file checked; client role only", test_ca_file_and_role);
    t_run("no licence source: CC_ERR_LICENSE_CONFIG", test_no_url);
    t_run("a job handed back unanswered denies", test_unanswered_denies);
    t_run("host answers with figures", test_host_figures);
    t_run("host answers with status and page", test_host_page);
    t_run("page size limit while feeding", test_page_limit);
    t_run("a long URL is shortened in details", test_long_url_keeps_the_cause);
    t_run("verdict cache", test_cache);
    t_run("every allocation failure denies, no leak", test_allocation_failures);
    cc_context_free(ctx);
    return t_done();
}
