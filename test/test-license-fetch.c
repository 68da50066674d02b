/* test-license-fetch.c -- the licence job against a real nginx on loopback
 * (test/fixtures/nginx.sh): every served case, through cc_job_run + decide. */
#include "../lib/core/core.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char dir[512];
static int started;
static unsigned port_http, port_https, port_rogue, port_wrongname, port_closed;

static void stop_nginx(void)
{
    if (!started)
        return;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "bash '%s/test/fixtures/nginx.sh' stop '%s'", getenv("CC_SRC") ? getenv("CC_SRC") : ".",
             dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# nginx.sh stop failed\n");
    started = 0;
}

static int start_nginx(void)
{
    snprintf(dir, sizeof dir, "%s/nginx", t_tmpdir());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "bash '%s/test/fixtures/nginx.sh' start '%s'", getenv("CC_SRC") ? getenv("CC_SRC") : ".",
             dir);
    if (system(cmd) != 0)
        return -1;
    started = 1;
    atexit(stop_nginx);
    char path[600];
    snprintf(path, sizeof path, "%s/ports", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[64];
    while (fgets(line, sizeof line, f)) {
        unsigned v;
        if (sscanf(line, "HTTP=%u", &v) == 1)
            port_http = v;
        else if (sscanf(line, "HTTPS=%u", &v) == 1)
            port_https = v;
        else if (sscanf(line, "ROGUE=%u", &v) == 1)
            port_rogue = v;
        else if (sscanf(line, "WRONGNAME=%u", &v) == 1)
            port_wrongname = v;
        else if (sscanf(line, "CLOSED=%u", &v) == 1)
            port_closed = v;
    }
    fclose(f);
    return port_http && port_https && port_rogue && port_wrongname && port_closed ? 0 : -1;
}

static const char *cert(const char *name)
{
    static char p[4][600];
    static int i;
    char *s = p[i++ % 4];
    snprintf(s, sizeof p[0], "%s/certs/%s", dir, name);
    return s;
}

static cc__license_verdict v;
static int run_rc;
static uint64_t took_ms;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Fetches `url` with a fresh context; ca may be NULL. Returns the verdict's code. */
static int fetch_with(cc_context *ctx)
{
    cc_job *job = NULL;
    memset(&v, 0x55, sizeof v);
    int rc = cc__license_start(ctx, &ctx->license, &job, &v);
    if (rc != 0)
        return 1000 + rc;
    uint64_t t0 = now_ms();
    run_rc = cc_job_run(job);
    took_ms = now_ms() - t0;
    cc__license_decide(ctx, &ctx->license, job, &v);
    cc_job_free(job);
    return v.code;
}

static int fetch(const char *url, const char *ca)
{
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!ctx)
        return 2000;
    if (cc_context_set_license_url(ctx, url) != 0 || (ca && cc_context_set_license_ca_file(ctx, ca) != 0)) {
        fprintf(stderr, "# %s\n", cc_context_errmsg(ctx));
        cc_context_free(ctx);
        return 3000;
    }
    int code = fetch_with(ctx);
    cc_context_free(ctx);
    return code;
}

static char url_buf[600];
static const char *http(const char *path)
{
    snprintf(url_buf, sizeof url_buf, "http://127.0.0.1:%u/%s", port_http, path);
    return url_buf;
}

static void test_granted(void)
{
    T_EQ(fetch(http("granted.xml"), NULL), 0);
    T_EQ(run_rc, 0);
    T_ASSERT(v.granted);
    T_EQ(v.count, 25);
    T_EQ(v.in_use, 7);
    T_CONTAINS(v.detail, "licence granted: 7 of 25 in use");
    T_CONTAINS(v.detail, url_buf);
}

static void test_denied_equal(void)
{
    T_EQ(fetch(http("denied-equal.xml"), NULL), CC_ERR_LICENSE_DENIED);
    T_ASSERT(!v.granted);
    T_EQ(v.count, 10);
    T_EQ(v.in_use, 10);
    T_CONTAINS(v.detail, "no licence free: 10 of 10 in use");
    T_CONTAINS(v.detail, url_buf);
}

static void test_denied_greater(void)
{
    T_EQ(fetch(http("denied-greater.xml"), NULL), CC_ERR_LICENSE_DENIED);
    T_ASSERT(!v.granted);
    T_CONTAINS(v.detail, "no licence free: 12 of 10 in use");
}

static void test_expired(void)
{
    T_EQ(fetch(http("expired.xml"), NULL), CC_ERR_LICENSE_EXPIRED);
    T_ASSERT(!v.granted);
    T_CONTAINS(v.detail, "2001-01-01");
    T_CONTAINS(v.detail, url_buf);
}

static void test_attribute_form(void)
{
    T_EQ(fetch(http("attributes.xml"), NULL), 0);
    T_ASSERT(v.granted);
    T_EQ(v.count, 25);
    T_EQ(v.in_use, 7);
}

static void test_namespaced(void)
{
    T_EQ(fetch(http("namespaced.xml"), NULL), 0);
    T_ASSERT(v.granted);
    T_EQ(v.count, 25);
    T_EQ(v.in_use, 7);
}

static void test_parse_errors(void)
{
    static const char *pages[] = {"malformed.xml", "non-numeric.xml", "negative.xml", "overflow.xml"};
    for (size_t i = 0; i < sizeof pages / sizeof *pages; i++) {
        T_EQ(fetch(http(pages[i]), NULL), CC_ERR_LICENSE_PARSE);
        T_ASSERT(!v.granted);
        T_CONTAINS(v.detail, url_buf);
    }
    T_EQ(fetch(http("empty"), NULL), CC_ERR_LICENSE_PARSE);
}

static void test_missing(void)
{
    T_EQ(fetch(http("missing.xml"), NULL), CC_ERR_LICENSE_MISSING);
    T_CONTAINS(v.detail, "LicensesInUse");
    T_CONTAINS(v.detail, url_buf);
}

static void test_http_errors(void)
{
    T_EQ(fetch(http("nonexistent.xml"), NULL), CC_ERR_LICENSE_HTTP);
    T_CONTAINS(v.detail, "404");
    T_CONTAINS(v.detail, url_buf);
    T_EQ(fetch(http("error500"), NULL), CC_ERR_LICENSE_HTTP);
    T_CONTAINS(v.detail, "500");
    T_EQ(fetch(http("to-404"), NULL), CC_ERR_LICENSE_HTTP);
}

static void test_redirects(void)
{
    T_EQ(fetch(http("redirect1"), NULL), 0); /* two hops, within the default 3 */
    T_ASSERT(v.granted);
    T_EQ(fetch(http("loop"), NULL), CC_ERR_LICENSE_REDIRECT);
    T_CONTAINS(v.detail, "redirects");
    T_CONTAINS(v.detail, url_buf);
    T_EQ(fetch(http("to-file"), NULL), CC_ERR_LICENSE_REDIRECT);
    T_CONTAINS(v.detail, "redirected to file:///etc/passwd");
    printf("# %s\n", v.detail);
    T_EQ(fetch(http("to-ftp"), NULL), CC_ERR_LICENSE_REDIRECT);
    /* a lower limit */
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(ctx);
    T_EQ(cc_context_set_license_url(ctx, http("redirect1")), 0);
    T_EQ(cc_context_set_limit(ctx, CC_LIMIT_REDIRECTS, 1), 0);
    T_EQ(fetch_with(ctx), CC_ERR_LICENSE_REDIRECT);
    T_EQ(cc_context_set_limit(ctx, CC_LIMIT_REDIRECTS, 0), 0);
    T_EQ(fetch_with(ctx), CC_ERR_LICENSE_REDIRECT);
    T_EQ(cc_context_set_limit(ctx, CC_LIMIT_REDIRECTS, 2), 0);
    T_EQ(fetch_with(ctx), 0);
    cc_context_free(ctx);
}

static void test_too_large(void)
{
    T_EQ(fetch(http("big.xml"), NULL), CC_ERR_LICENSE_TOO_LARGE);
    T_CONTAINS(v.detail, "65536");
    T_CONTAINS(v.detail, url_buf);
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(ctx);
    /* namespaced.xml is 267 bytes: one over a 266-byte limit is refused */
    T_EQ(cc_context_set_license_url(ctx, http("namespaced.xml")), 0);
    T_EQ(cc_context_set_limit(ctx, CC_LIMIT_LICENSE_PAGE, 266), 0);
    T_EQ(fetch_with(ctx), CC_ERR_LICENSE_TOO_LARGE);
    T_CONTAINS(v.detail, "266 bytes");
    T_EQ(cc_context_set_limit(ctx, CC_LIMIT_LICENSE_PAGE, 267), 0);
    T_EQ(fetch_with(ctx), 0);
    cc_context_free(ctx);
}

static void test_hostile_documents(void)
{
    T_EQ(fetch(http("billion-laughs.xml"), NULL), CC_ERR_LICENSE_PARSE);
    T_CONTAINS(v.detail, "DOCTYPE");
    T_ASSERT(took_ms < 2000);
    T_EQ(fetch(http("external-entity.xml"), NULL), CC_ERR_LICENSE_PARSE);
    T_CONTAINS(v.detail, "DOCTYPE");
    /* gzip bytes are not decoded: the bomb is 16 KiB of binary, not 16 MiB of XML */
    T_EQ(fetch(http("bomb.xml"), NULL), CC_ERR_LICENSE_PARSE);
    T_CONTAINS(v.detail, "not well-formed");
}

static void test_timeout(void)
{
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(ctx);
    T_EQ(cc_context_set_license_url(ctx, http("slow.xml")), 0);
    T_EQ(cc_context_set_timeout(ctx, CC_TIMEOUT_LICENSE, 800), 0);
    T_EQ(fetch_with(ctx), CC_ERR_LICENSE_TIMEOUT);
    T_EQ(run_rc, CC_ERR_LICENSE_TIMEOUT);
    T_CONTAINS(v.detail, "timed out");
    T_CONTAINS(v.detail, url_buf);
    printf("# slow server: timed out after %llu ms (limit 800 ms)\n", (unsigned long long)took_ms);
    T_ASSERT(took_ms >= 700 && took_ms < 3000);
    cc_context_free(ctx);
}

/* A listener whose accept queue is full: the kernel drops further SYNs, so a
 * connect hangs until the connect timeout. */
static void test_connect_timeout(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    T_ASSERT(l >= 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    int fill[8], nfill = 0;
    int ok = bind(l, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(l, 0) == 0 &&
             getsockname(l, (struct sockaddr *)&sa, &sl) == 0;
    for (int i = 0; ok && i < 8; i++) { /* more than the queue holds */
        int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (c < 0)
            break;
        connect(c, (struct sockaddr *)&sa, sizeof sa);
        fill[nfill++] = c;
    }
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int code = -1;
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (ok && ctx) {
        char u[128];
        snprintf(u, sizeof u, "http://127.0.0.1:%u/granted.xml", (unsigned)ntohs(sa.sin_port));
        cc_context_set_license_url(ctx, u);
        cc_context_set_timeout(ctx, CC_TIMEOUT_LICENSE_CONNECT, 500);
        cc_context_set_timeout(ctx, CC_TIMEOUT_LICENSE, 5000);
        code = fetch_with(ctx);
    }
    cc_context_free(ctx);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(l);
    T_ASSERT(ok);
    T_EQ(code, CC_ERR_LICENSE_TIMEOUT);
    T_CONTAINS(v.detail, "connect limit 500 ms");
    printf("# connect timeout after %llu ms (limit 500 ms)\n", (unsigned long long)took_ms);
    T_ASSERT(took_ms >= 400 && took_ms < 2500);
}

static void test_closed_port(void)
{
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/granted.xml", port_closed);
    T_EQ(fetch(u, NULL), CC_ERR_LICENSE_UNREACHABLE);
    T_CONTAINS(v.detail, u);
    T_ASSERT(!v.granted);
    T_EQ(fetch("http://cc-no-such-host.invalid/x.xml", NULL), CC_ERR_LICENSE_UNREACHABLE);
}

static void test_https(void)
{
    char u[128];
    snprintf(u, sizeof u, "https://localhost:%u/granted.xml", port_https);
    T_EQ(fetch(u, cert("ca.pem")), 0);
    T_ASSERT(v.granted);
    /* the system store does not know the test CA: verification is never skipped */
    T_EQ(fetch(u, NULL), CC_ERR_LICENSE_TLS);
    T_CONTAINS(v.detail, u);
    T_CONTAINS(v.detail, "system CA store");
    T_EQ(fetch(u, cert("other-ca.pem")), CC_ERR_LICENSE_TLS);
    snprintf(u, sizeof u, "https://localhost:%u/granted.xml", port_rogue);
    T_EQ(fetch(u, cert("ca.pem")), CC_ERR_LICENSE_TLS);
    snprintf(u, sizeof u, "https://localhost:%u/granted.xml", port_wrongname);
    T_EQ(fetch(u, cert("ca.pem")), CC_ERR_LICENSE_TLS);
    /* http -> https redirect verifies too */
    T_EQ(fetch(http("to-https"), cert("ca.pem")), 0);
    T_EQ(fetch(http("to-https"), NULL), CC_ERR_LICENSE_TLS);
}

/* An https URL is never followed down to http: whoever sits on the path
 * could answer the plain request with any verdict. https -> https still works. */
static void test_https_never_redirects_to_http(void)
{
    char u[128];
    snprintf(u, sizeof u, "https://localhost:%u/to-http", port_https);
    T_EQ(fetch(u, cert("ca.pem")), CC_ERR_LICENSE_REDIRECT);
    T_ASSERT(!v.granted);
    T_CONTAINS(v.detail, u);
    T_CONTAINS(v.detail, "redirected to http://127.0.0.1:");
    T_CONTAINS(v.detail, "never followed to plain http");
    printf("# %s\n", v.detail);
    /* also when the downgrade comes after an https hop */
    snprintf(u, sizeof u, "https://localhost:%u/to-https-to-http", port_https);
    T_EQ(fetch(u, cert("ca.pem")), CC_ERR_LICENSE_REDIRECT);
    T_CONTAINS(v.detail, "never followed to plain http");
    /* https -> https is followed (denied-equal: a verdict that can only come from the target) */
    snprintf(u, sizeof u, "https://localhost:%u/to-https-self", port_https);
    T_EQ(fetch(u, cert("ca.pem")), CC_ERR_LICENSE_DENIED);
    T_EQ(v.count, 10);
    T_EQ(v.in_use, 10);
    /* the plain-http page itself is fine when asked for as http */
    T_EQ(fetch(http("granted.xml"), NULL), 0);
}

static void test_server_name(void)
{
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(ctx);
    char name[64];
    snprintf(name, sizeof name, "127.0.0.1:%u", port_http);
    T_EQ(cc_context_set_license_server(ctx, name), 0);
    T_EQ(fetch_with(ctx), 0);
    T_CONTAINS(v.detail, "/altiris/NS/Agent/GetLicenseDetails.aspx");
    T_EQ(v.count, 25);
    cc_context_free(ctx);
}

static void test_cache(void)
{
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(ctx);
    T_EQ(cc_context_set_license_url(ctx, http("denied-equal.xml")), 0);
    T_EQ(cc_context_set_license_cache_ttl(ctx, 60000), 0);
    T_EQ(fetch_with(ctx), CC_ERR_LICENSE_DENIED);
    /* the denial was a sound answer: cached */
    cc_job *job = NULL;
    T_EQ(cc__license_start(ctx, &ctx->license, &job, &v), 1);
    T_ASSERT(job == NULL);
    T_EQ(v.code, CC_ERR_LICENSE_DENIED);
    T_EQ(v.in_use, 10);
    T_CONTAINS(v.detail, "cached");
    /* a new URL clears it; a failure is not cached */
    T_EQ(cc_context_set_license_url(ctx, http("error500")), 0);
    T_EQ(fetch_with(ctx), CC_ERR_LICENSE_HTTP);
    T_EQ(cc__license_start(ctx, &ctx->license, &job, &v), 0);
    T_ASSERT(job != NULL);
    cc_job_free(job);
    cc_context_free(ctx);
}

/* ---- coalescing: concurrent jobs of one context, one request ---- */

/* Requests for /path nginx has answered so far (its access log). */
static int requests_for(const char *path)
{
    char log[700], line[1024], needle[128];
    snprintf(log, sizeof log, "%s/logs/access.log", dir);
    snprintf(needle, sizeof needle, "\"GET /%s ", path);
    FILE *f = fopen(log, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* nginx logs a request once it has sent the last byte, which can be just after
 * the client has it: waits (up to 3 s) for `expect` new lines, then a little
 * longer for any more, and returns how many requests came since `before`. */
static int new_requests(const char *path, int before, int expect)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 150 && requests_for(path) - before < expect; i++)
        nanosleep(&ts, NULL);
    ts.tv_nsec = 300 * 1000 * 1000;
    nanosleep(&ts, NULL);
    return requests_for(path) - before;
}

#define N_JOBS 6
struct runner {
    cc_job *job;
    int rc;
    pthread_barrier_t *go;
};

static void *run_job(void *arg)
{
    struct runner *r = arg;
    if (r->go)
        pthread_barrier_wait(r->go);
    r->rc = cc_job_run(r->job);
    return NULL;
}

/* Starts n jobs of ctx, runs them on n threads at once, decides each (as
 * the sessions would, on their own thread) into vs. Returns how many jobs
 * cc__license_start made (n unless the cache answered). */
static int run_concurrently(cc_context *ctx, int n, cc__license_verdict *vs)
{
    struct runner r[N_JOBS];
    pthread_t th[N_JOBS];
    pthread_barrier_t go;
    int made = 0;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        r[i] = (struct runner){NULL, 0, &go};
        if (cc__license_start(ctx, &ctx->license, &r[i].job, &vs[i]) == 0 && r[i].job)
            made++;
    }
    if (made != n) {
        for (int i = 0; i < n; i++)
            cc_job_free(r[i].job);
        pthread_barrier_destroy(&go);
        return made;
    }
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, run_job, &r[i]);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        cc__license_decide(ctx, &ctx->license, r[i].job, &vs[i]);
        cc_job_free(r[i].job);
    }
    pthread_barrier_destroy(&go);
    return made;
}

static void test_coalesced(void)
{
    cc__license_verdict vs[N_JOBS];
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL); /* the default cache TTL */
    T_ASSERT(ctx);
    T_EQ(cc_context_set_license_url(ctx, http("coalesce.xml")), 0);
    int before = requests_for("coalesce.xml");
    uint64_t t0 = now_ms();
    T_EQ(run_concurrently(ctx, N_JOBS, vs), N_JOBS);
    uint64_t took = now_ms() - t0;
    T_EQ(new_requests("coalesce.xml", before, 1), 1); /* one request for all six */
    int leaders = 0, waited = 0;
    for (int i = 0; i < N_JOBS; i++) {
        T_EQ(vs[i].code, 0);
        T_ASSERT(vs[i].granted);
        T_EQ(vs[i].count, 25);
        T_EQ(vs[i].in_use, 7);
        T_CONTAINS(vs[i].detail, "licence granted: 7 of 25 in use per");
        if (strstr(vs[i].detail, "from a concurrent fetch of this context"))
            waited++;
        else if (!strstr(vs[i].detail, "cached verdict"))
            leaders++;
    }
    printf("# %d jobs, 1 request in %llu ms: %d fetched, %d waited for it\n", N_JOBS, (unsigned long long)took, leaders,
           waited);
    T_EQ(leaders, 1);
    T_EQ(waited, N_JOBS - 1); /* they all ran while the ~1 s fetch was out */
    /* the next session takes the cached verdict without a job */
    cc_job *job = NULL;
    T_EQ(cc__license_start(ctx, &ctx->license, &job, &v), 1);
    T_ASSERT(job == NULL && v.granted);
    T_EQ(new_requests("coalesce.xml", before, 1), 1);
    cc_context_free(ctx);
}

static void test_not_coalesced_with_ttl_0(void)
{
    cc__license_verdict vs[N_JOBS];
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(ctx);
    T_EQ(cc_context_set_license_url(ctx, http("coalesce.xml")), 0);
    T_EQ(cc_context_set_license_cache_ttl(ctx, 0), 0);
    int before = requests_for("coalesce.xml");
    T_EQ(run_concurrently(ctx, N_JOBS, vs), N_JOBS);
    T_EQ(new_requests("coalesce.xml", before, N_JOBS), N_JOBS); /* each its own */
    for (int i = 0; i < N_JOBS; i++) {
        T_ASSERT(vs[i].granted);
        T_ASSERT(!strstr(vs[i].detail, "concurrent") && !strstr(vs[i].detail, "cached"));
    }
    cc_context_free(ctx);
}

/* A failed fetch is every waiter's answer, and is still not cached. */
static void test_coalesced_failure_not_cached(void)
{
    cc__license_verdict vs[4];
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(ctx);
    T_EQ(cc_context_set_license_url(ctx, http("coalesce-bad.xml")), 0);
    int before = requests_for("coalesce-bad.xml");
    T_EQ(run_concurrently(ctx, 4, vs), 4);
    T_EQ(new_requests("coalesce-bad.xml", before, 1), 1);
    int waited = 0;
    for (int i = 0; i < 4; i++) {
        T_EQ(vs[i].code, CC_ERR_LICENSE_PARSE);
        T_ASSERT(!vs[i].granted);
        waited += strstr(vs[i].detail, "from a concurrent fetch") != NULL;
    }
    T_EQ(waited, 3);
    /* not cached: the next session asks again */
    T_EQ(fetch_with(ctx), CC_ERR_LICENSE_PARSE);
    T_EQ(new_requests("coalesce-bad.xml", before, 2), 2);
    cc_context_free(ctx);
}

/* A waiting job is bounded by its own CC_TIMEOUT_LICENSE, and a job the host
 * answers itself decides at once while a fetch is out. */
static void test_waiter_deadline_and_host_answer(void)
{
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(ctx);
    T_EQ(cc_context_set_license_url(ctx, http("slow.xml")), 0);
    T_EQ(cc_context_set_timeout(ctx, CC_TIMEOUT_LICENSE, 1500), 0);
    struct runner a = {NULL, 0, NULL};
    T_EQ(cc__license_start(ctx, &ctx->license, &a.job, &v), 0);
    T_EQ(cc_context_set_timeout(ctx, CC_TIMEOUT_LICENSE, 300), 0); /* the jobs made from now on */
    cc_job *b = NULL, *c = NULL;
    T_EQ(cc__license_start(ctx, &ctx->license, &b, &v), 0);
    T_EQ(cc__license_start(ctx, &ctx->license, &c, &v), 0);
    pthread_t th;
    pthread_create(&th, NULL, run_job, &a);
    struct timespec ts = {0, 150 * 1000 * 1000};
    nanosleep(&ts, NULL); /* a's fetch is out */
    /* the host answers c itself */
    T_EQ(cc_job_license_set_figures(c, 10, 3), 0);
    cc__license_decide(ctx, &ctx->license, c, &v);
    T_ASSERT(v.granted);
    T_EQ(v.in_use, 3);
    cc_job_free(c);
    /* b waits for a's fetch, until its own 300 ms run out */
    uint64_t t0 = now_ms();
    T_EQ(cc_job_run(b), CC_ERR_LICENSE_TIMEOUT);
    uint64_t took = now_ms() - t0;
    cc__license_decide(ctx, &ctx->license, b, &v);
    T_EQ(v.code, CC_ERR_LICENSE_TIMEOUT);
    T_CONTAINS(v.detail, "waited 300 ms");
    printf("# waiting job gave up after %llu ms (its limit 300 ms)\n", (unsigned long long)took);
    T_ASSERT(took >= 250 && took < 1200);
    cc_job_free(b);
    pthread_join(th, NULL);
    T_EQ(a.rc, CC_ERR_LICENSE_TIMEOUT); /* slow.xml: a's own 1500 ms */
    cc_job_free(a.job);
    cc_context_free(ctx);
}

int main(void)
{
    if (start_nginx() != 0) {
        printf("not ok - nginx fixture started (see test/fixtures/nginx.sh; needs nginx-light)\n");
        stop_nginx();
        t_done();
        return 1;
    }
    t_run("granted", test_granted);
    t_run("denied: in use equals count", test_denied_equal);
    t_run("denied: in use exceeds count", test_denied_greater);
    t_run("expired", test_expired);
    t_run("attribute form", test_attribute_form);
    t_run("namespaced and mixed case", test_namespaced);
    t_run("malformed, non-numeric, negative, overflowing, empty", test_parse_errors);
    t_run("missing figures", test_missing);
    t_run("404 and 500", test_http_errors);
    t_run("redirects: followed, loop, file:, ftp:, limit", test_redirects);
    t_run("page over the size limit", test_too_large);
    t_run("billion laughs, external entity, gzip bomb", test_hostile_documents);
    t_run("slow server trips the timeout", test_timeout);
    t_run("connect timeout (accept queue full)", test_connect_timeout);
    t_run("closed port and unknown host", test_closed_port);
    t_run("https: verified, untrusted, wrong name, redirect", test_https);
    t_run("https never redirects to http; https to https does", test_https_never_redirects_to_http);
    t_run("server name builds the default URL", test_server_name);
    t_run("verdict cache", test_cache);
    t_run("concurrent jobs of one context: one request, every job gets the verdict", test_coalesced);
    t_run("cache TTL 0: each job makes its own request", test_not_coalesced_with_ttl_0);
    t_run("a coalesced failure reaches every job and is not cached", test_coalesced_failure_not_cached);
    t_run("a waiting job keeps its own deadline; host answers decide at once", test_waiter_deadline_and_host_answer);
    stop_nginx();
    return t_done();
}
