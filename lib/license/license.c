/* license.c -- the licence stage: where the page is (context setters), the
 * CC_JOB_LICENSE job and its host answers, the decision, and the verdict cache. */
#include "job.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define URL_MAX      2048
#define DEFAULT_PATH "/altiris/NS/Agent/GetLicenseDetails.aspx"
#define NO_URL       "the page the host supplied (no licence URL configured)"

/* ---- context settings ------------------------------------------------- */

int cc__license_conf_init(cc__license_conf *c)
{
    memset(c, 0, sizeof *c);
    c->cache_ttl_ms = CC__LICENSE_CACHE_TTL_DEFAULT;
    if (pthread_mutex_init(&c->cache_lock, NULL) != 0)
        return CC_ERR_NOMEM;
    /* waits are bounded by deadlines on the monotonic clock, like every other */
    pthread_condattr_t ca;
    int ok = pthread_condattr_init(&ca) == 0;
    if (ok) {
        ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&c->flight_done, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!ok) {
        pthread_mutex_destroy(&c->cache_lock);
        return CC_ERR_NOMEM;
    }
    return CC_OK;
}

void cc__license_conf_free(cc_context *ctx, cc__license_conf *c)
{
    cc__free(ctx, c->url);
    cc__free(ctx, c->ca_file);
    pthread_cond_destroy(&c->flight_done);
    pthread_mutex_destroy(&c->cache_lock);
    cc__wipe(c, sizeof *c);
}

static void cache_clear(cc__license_conf *c)
{
    pthread_mutex_lock(&c->cache_lock);
    c->cache_valid = false;
    pthread_mutex_unlock(&c->cache_lock);
}

static bool port_ok(const char *s, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

/* A host name (labels of letters, digits, '-' and '_'; NetBIOS-style names
 * included) or an IPv4 literal. */
static bool hostname_ok(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '_')
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0;
}

/* The inside of "[...]": hex digits, colons and dots (IPv4-mapped tails). */
static bool ipv6_ok(const char *s, size_t n)
{
    if (n < 2 || n > 45)
        return false;
    int colons = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (c == ':')
            colons++;
        else if (!hex && c != '.')
            return false;
    }
    return colons >= 2;
}

/* host, [v6] or either with :port. */
static bool authority_ok(const char *s, size_t n)
{
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || !ipv6_ok(s + 1, (size_t)(close - s - 1)))
            return false;
        size_t rest = n - (size_t)(close - s) - 1;
        return rest == 0 || (close[1] == ':' && port_ok(close + 2, rest - 1));
    }
    const char *colon = memchr(s, ':', n);
    if (colon)
        return hostname_ok(s, (size_t)(colon - s)) && port_ok(colon + 1, n - (size_t)(colon - s) - 1);
    return hostname_ok(s, n);
}

/* Returns NULL if fine, else why not. */
static const char *url_problem(const char *url)
{
    size_t n = strlen(url);
    if (n == 0)
        return "it is empty";
    if (n > URL_MAX)
        return "it is longer than 2048 characters";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return "it contains a space, control or non-ASCII character (percent-encode it)";
    size_t skip;
    if (strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else
        return "only http:// and https:// URLs are accepted";
    const char *auth = url + skip;
    size_t alen = strcspn(auth, "/?#");
    if (memchr(auth, '@', alen))
        return "user names and passwords in the URL are refused (they would show in logs)";
    if (!authority_ok(auth, alen))
        return "the host part is not a valid host name, address or port";
    return NULL;
}

static int set_url(cc_context *ctx, cc__license_conf *c, const char *url)
{
    if (url)
        cc__license_curl_init();
    char *copy = NULL;
    if (url && !(copy = cc__strdup(ctx, url)))
        return cc__ctx_error(ctx, CC_ERR_NOMEM, "out of memory");
    cc__free(ctx, c->url);
    c->url = copy;
    cache_clear(c);
    return 0;
}

int cc__license_set_url(cc_context *ctx, cc__license_conf *c, const char *url)
{
    if (url) {
        const char *why = url_problem(url);
        if (why) {
            char shown[80];
            cc__printable(shown, sizeof shown, (const uint8_t *)url, strlen(url));
            return cc__ctx_error(ctx, CC_ERR_INVALID, "licence URL \"%s\" refused: %s", shown, why);
        }
    }
    return set_url(ctx, c, url);
}

int cc__license_set_server(cc_context *ctx, cc__license_conf *c, const char *name)
{
    if (!name)
        return set_url(ctx, c, NULL);
    size_t n = strlen(name);
    char shown[80];
    cc__printable(shown, sizeof shown, (const uint8_t *)name, n);
    char url[URL_MAX + 1];
    if (n > 0 && n <= 45 && ipv6_ok(name, n) && strchr(name, ':')) {
        cc__fmt(url, sizeof url, "http://[%s]" DEFAULT_PATH, name); /* bare IPv6 literal */
    } else if (n > 0 && n <= 260 && authority_ok(name, n)) {
        cc__fmt(url, sizeof url, "http://%s" DEFAULT_PATH, name);
    } else {
        return cc__ctx_error(ctx, CC_ERR_INVALID,
                             "management server name \"%s\" refused: give a host name, an IPv4 "
                             "address or [IPv6] address, optionally with :port",
                             shown);
    }
    return set_url(ctx, c, url);
}

int cc__license_set_ca_file(cc_context *ctx, cc__license_conf *c, const char *ca_file)
{
    char *copy = NULL;
    if (ca_file) {
        /* Load it now so a wrong path is reported here, not at each fetch. */
        BIO *bio = BIO_new_file(ca_file, "r");
        X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        X509_free(cert);
        BIO_free(bio);
        ERR_clear_error();
        if (!cert)
            return cc__ctx_error(ctx, CC_ERR_TLS_CONFIG,
                                 "licence CA file \"%.200s\" cannot be read or holds no PEM "
                                 "certificate",
                                 ca_file);
        if (!(copy = cc__strdup(ctx, ca_file)))
            return cc__ctx_error(ctx, CC_ERR_NOMEM, "out of memory");
    }
    cc__free(ctx, c->ca_file);
    c->ca_file = copy;
    cache_clear(c);
    return 0;
}

void cc__license_set_cache_ttl(cc__license_conf *c, uint32_t ms)
{
    pthread_mutex_lock(&c->cache_lock);
    c->cache_ttl_ms = ms;
    c->cache_valid = false;
    pthread_mutex_unlock(&c->cache_lock);
}

/* ---- the job ------------------------------------------------------------ */

static void license_job_destroy(cc_job *job)
{
    cc__license_job *lj = (cc__license_job *)job;
    cc__license_parser_free(lj->parser);
    lj->parser = NULL;
    cc__free(job->ctx, lj->url);
    cc__free(job->ctx, lj->ca_file);
    lj->url = lj->ca_file = NULL;
}

static int license_run(cc_job *job);

static const struct cc__job_ops license_ops = {
    .run = license_run,
    .destroy = license_job_destroy,
};

static cc__license_job *as_license(const cc_job *job)
{
    if (!job || job->type != CC_JOB_LICENSE || job->ops != &license_ops)
        return NULL;
    return (cc__license_job *)job;
}

static const char *shown_url(const cc__license_job *lj)
{
    return lj->shown;
}

static bool status_ok(int32_t s)
{
    return s >= 200 && s <= 299;
}

static int http_error(cc__license_job *lj)
{
    return cc__job_set_result(&lj->base, CC_ERR_LICENSE_HTTP, "licence page %s answered HTTP status %d, not 2xx",
                              shown_url(lj), (int)lj->http_status);
}

int cc__license_job_feed(cc__license_job *lj, const void *data, size_t len)
{
    if (lj->base.result < 0)
        return lj->base.result;
    lj->body_started = true;
    if (lj->http_status && !status_ok(lj->http_status))
        return http_error(lj);
    if (len > lj->max_page - lj->body_len)
        return cc__job_set_result(&lj->base, CC_ERR_LICENSE_TOO_LARGE,
                                  "licence page %s is larger than the limit of %u bytes "
                                  "(CC_LIMIT_LICENSE_PAGE)",
                                  shown_url(lj), (unsigned)lj->max_page);
    lj->body_len += len;
    if (!lj->parser && !(lj->parser = cc__license_parser_new(lj->base.ctx)))
        return cc__job_set_result(&lj->base, CC_ERR_NOMEM, "out of memory parsing licence page %s", shown_url(lj));
    int rc = cc__license_parser_feed(lj->parser, data, len);
    if (rc)
        return cc__job_set_result(&lj->base, rc, "licence page %s: %s", shown_url(lj),
                                  cc__license_parser_detail(lj->parser));
    return 0;
}

int cc__license_job_finish(cc__license_job *lj)
{
    if (lj->base.result < 0)
        return lj->base.result;
    if (lj->http_status && !status_ok(lj->http_status))
        return http_error(lj);
    if (!lj->parser && !(lj->parser = cc__license_parser_new(lj->base.ctx)))
        return cc__job_set_result(&lj->base, CC_ERR_NOMEM, "out of memory parsing licence page %s", shown_url(lj));
    int rc = cc__license_parser_finish(lj->parser, &lj->page);
    if (rc)
        return cc__job_set_result(&lj->base, rc, "licence page %s: %s", shown_url(lj),
                                  cc__license_parser_detail(lj->parser));
    lj->have_figures = true;
    lj->base.result = 0;
    lj->base.answered = true;
    return 0;
}

CC_API const char *cc_job_license_url(const cc_job *job)
{
    const cc__license_job *lj = as_license(job);
    return lj ? lj->url : NULL;
}

CC_API int cc_job_license_set_status(cc_job *job, int32_t http_status)
{
    cc__license_job *lj = as_license(job);
    if (!lj || http_status < 100 || http_status > 599)
        return CC_ERR_INVALID;
    if (lj->have_figures || lj->ran || lj->body_started)
        return CC_ERR_STATE;
    lj->http_status = http_status;
    lj->base.answered = true;
    return 0;
}

CC_API int cc_job_license_feed(cc_job *job, const void *data, size_t len)
{
    cc__license_job *lj = as_license(job);
    if (!lj || (!data && len > 0))
        return CC_ERR_INVALID;
    if (lj->have_figures || lj->ran)
        return CC_ERR_STATE;
    lj->base.answered = true;
    return cc__license_job_feed(lj, data, len);
}

CC_API int cc_job_license_set_figures(cc_job *job, uint32_t count, uint32_t in_use)
{
    cc__license_job *lj = as_license(job);
    if (!lj)
        return CC_ERR_INVALID;
    if (lj->body_started || lj->ran || lj->http_status || lj->base.result < 0)
        return CC_ERR_STATE;
    memset(&lj->page, 0, sizeof lj->page);
    lj->page.count = count;
    lj->page.in_use = in_use;
    lj->page.have_count = lj->page.have_in_use = true;
    lj->have_figures = true;
    lj->base.result = 0;
    lj->base.answered = true;
    return 0;
}

/* ---- start, decide, cache -------------------------------------------- */

/* A fresh cached verdict into *v (detail saying how old). Lock held. */
static bool cache_take_locked(cc__license_conf *c, cc__license_verdict *v)
{
    uint64_t now = cc__now_ms();
    if (c->cache_ttl_ms == 0 || !c->cache_valid || now - c->cache_at_ms >= c->cache_ttl_ms)
        return false;
    memset(v, 0, sizeof *v);
    v->code = c->cache_code;
    v->granted = c->cache_code == 0;
    v->count = c->cache_count;
    v->in_use = c->cache_in_use;
    cc__fmt(v->detail, sizeof v->detail, "%s (cached verdict, %llu ms old)", c->cache_detail,
            (unsigned long long)(now - c->cache_at_ms));
    return true;
}

int cc__license_start(cc_context *ctx, cc__license_conf *c, cc_job **job, cc__license_verdict *cached)
{
    *job = NULL;
    if (cached)
        memset(cached, 0, sizeof *cached);
    pthread_mutex_lock(&c->cache_lock);
    uint32_t ttl = c->cache_ttl_ms;
    bool hit = cached && cache_take_locked(c, cached);
    pthread_mutex_unlock(&c->cache_lock);
    cc__stat_add(ctx, hit ? CC__ST_LICENSE_HITS : CC__ST_LICENSE_MISSES, 1);
    if (hit) {
        cc__log(ctx, CC_LOG_DEBUG, "licence: %s", cached->detail);
        return 1;
    }
    cc__license_job *lj = (cc__license_job *)cc__job_alloc(ctx, sizeof *lj, CC_JOB_LICENSE, &license_ops);
    if (!lj)
        return CC_ERR_NOMEM;
    if ((c->url && !(lj->url = cc__strdup(ctx, c->url))) ||
        (c->ca_file && !(lj->ca_file = cc__strdup(ctx, c->ca_file)))) {
        cc_job_free(&lj->base); /* the core's free calls license_job_destroy */
        return CC_ERR_NOMEM;
    }
    /* Details are bounded (CC__DETAIL_MAX); a long URL must not crowd out the cause. */
    if (!lj->url)
        cc__fmt(lj->shown, sizeof lj->shown, "%s", NO_URL);
    else if (strlen(lj->url) > 200)
        cc__fmt(lj->shown, sizeof lj->shown, "%.200s...", lj->url);
    else
        cc__fmt(lj->shown, sizeof lj->shown, "%s", lj->url);
    lj->connect_timeout_ms = cc__cbase(ctx)->timeout[CC_TIMEOUT_LICENSE_CONNECT];
    lj->total_timeout_ms = cc__cbase(ctx)->timeout[CC_TIMEOUT_LICENSE];
    lj->max_page = cc__cbase(ctx)->limit[CC_LIMIT_LICENSE_PAGE];
    lj->max_redirects = cc__cbase(ctx)->limit[CC_LIMIT_REDIRECTS];
    if (lj->max_redirects > 10)
        lj->max_redirects = 10;
    lj->conf = c;
    lj->cache_ttl_ms = ttl;
    *job = &lj->base;
    return 0;
}

static int64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* Only what a server (or the host) actually said is worth remembering: a
 * grant, a denial or an expiry. Failures to ask are never cached, so the next
 * session asks again instead of repeating an outage for a whole TTL. Lock held. */
static void cache_update_locked(cc__license_conf *c, const cc__license_verdict *v, bool sound)
{
    if (c->cache_ttl_ms == 0)
        return;
    if (sound) {
        c->cache_valid = true;
        c->cache_at_ms = cc__now_ms();
        c->cache_code = v->code;
        c->cache_count = v->count;
        c->cache_in_use = v->in_use;
        memcpy(c->cache_detail, v->detail, sizeof c->cache_detail);
    } else {
        c->cache_valid = false;
    }
}

/* The verdict of a job that was run or answered (not of one that took
 * another's verdict); *sound tells whether the server or host said it. */
static void verdict_of(const cc__license_job *lj, cc__license_verdict *out, bool *sound)
{
    const cc_job *job = &lj->base;
    memset(out, 0, sizeof *out);
    *sound = false;
    if (job->result < 0) {
        out->code = job->result;
        if (lj->ran || lj->body_started || lj->http_status)
            cc__fmt(out->detail, sizeof out->detail, "%s", job->detail);
        else
            cc__fmt(out->detail, sizeof out->detail, "licence check of %s failed: %s", shown_url(lj),
                    job->detail[0] ? job->detail : cc_strerror(job->result));
    } else if (job->result > 0 || !lj->have_figures) {
        out->code = CC_ERR_LICENSE_MISSING;
        cc__fmt(out->detail, sizeof out->detail,
                "licence check of %s gave no figures: the job was handed back without being run "
                "(cc_job_run) or answered (cc_job_license_feed / cc_job_license_set_figures)",
                shown_url(lj));
    } else {
        const cc__license_page *pg = &lj->page;
        out->count = pg->count;
        out->in_use = pg->in_use;
        *sound = true;
        if (pg->have_expiry && wall_now() >= pg->expires_at) {
            out->code = CC_ERR_LICENSE_EXPIRED;
            cc__fmt(out->detail, sizeof out->detail, "licence expired (expiry date %s) per %s", pg->expiry_text,
                    shown_url(lj));
        } else if (pg->count > pg->in_use) {
            out->code = 0;
            out->granted = true;
            cc__fmt(out->detail, sizeof out->detail, "licence granted: %u of %u in use per %s", (unsigned)pg->in_use,
                    (unsigned)pg->count, shown_url(lj));
        } else {
            out->code = CC_ERR_LICENSE_DENIED;
            cc__fmt(out->detail, sizeof out->detail, "no licence free: %u of %u in use per %s", (unsigned)pg->in_use,
                    (unsigned)pg->count, shown_url(lj));
        }
    }
}

/* ---- coalescing: one request for all the jobs that ask at once ---------- */

/* A job that takes a verdict someone else got is answered by it; how, when
 * not NULL, is added to the detail. */
static int take_verdict(cc__license_job *lj, const cc__license_verdict *v, const char *how)
{
    lj->ran = true;
    lj->have_verdict = true;
    lj->verdict = *v;
    if (how)
        cc__fmt(lj->verdict.detail, sizeof lj->verdict.detail, "%s (%s)", v->detail, how);
    lj->base.answered = true;
    /* a denial is still a successful check: the session decides on the verdict */
    bool asked = v->code == 0 || v->code == CC_ERR_LICENSE_DENIED || v->code == CC_ERR_LICENSE_EXPIRED;
    lj->base.result = asked ? 0 : v->code;
    cc__fmt(lj->base.detail, sizeof lj->base.detail, "%s", lj->verdict.detail);
    return lj->base.result;
}

/* ops->run. With the cache on (TTL > 0) a context asks its server once at a
 * time: the first job to run fetches; jobs that run meanwhile wait, bounded by
 * their own CC_TIMEOUT_LICENSE, and take that fetch's verdict, whatever it is
 * (a failure to ask included: it is theirs too, though it is never cached);
 * a job that runs after it takes the cached verdict. Hosts that answer jobs
 * themselves never get here. */
static int license_run(cc_job *job)
{
    cc__license_job *lj = (cc__license_job *)job;
    cc__license_conf *c = lj->conf;
    if (lj->ran || lj->body_started || lj->have_figures || lj->http_status)
        return CC_ERR_STATE; /* the host answered it already */
    if (!c || lj->cache_ttl_ms == 0 || !lj->url)
        return cc__license_fetch(job);
    uint64_t deadline = cc__now_ms() + lj->total_timeout_ms;
    cc__license_verdict v;
    pthread_mutex_lock(&c->cache_lock);
    while (c->fetching) {
        uint64_t gen = c->flight_gen, now = cc__now_ms();
        if (now >= deadline) {
            pthread_mutex_unlock(&c->cache_lock);
            return cc__job_set_result(job, CC_ERR_LICENSE_TIMEOUT,
                                      "licence check of %s: waited %u ms (CC_TIMEOUT_LICENSE) for the context's "
                                      "fetch of the same page, which did not finish",
                                      shown_url(lj), (unsigned)lj->total_timeout_ms);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (deadline - now) * 1000000ull;
        ts.tv_sec += (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        pthread_cond_timedwait(&c->flight_done, &c->cache_lock, &ts);
        if (c->flight_gen != gen) {
            v = c->flight;
            pthread_mutex_unlock(&c->cache_lock);
            cc__stat_add(job->ctx, CC__ST_LICENSE_SHARED, 1);
            return take_verdict(lj, &v, "from a concurrent fetch of this context");
        }
    }
    if (cache_take_locked(c, &v)) {
        pthread_mutex_unlock(&c->cache_lock);
        cc__stat_add(job->ctx, CC__ST_LICENSE_HITS, 1);
        return take_verdict(lj, &v, NULL); /* the detail says "cached verdict" */
    }
    c->fetching = true;
    pthread_mutex_unlock(&c->cache_lock);

    int rc = cc__license_fetch(job);
    bool sound;
    verdict_of(lj, &v, &sound);
    pthread_mutex_lock(&c->cache_lock);
    cache_update_locked(c, &v, sound);
    lj->cached_by_run = true;
    c->flight = v;
    c->flight_gen++;
    c->fetching = false;
    pthread_cond_broadcast(&c->flight_done);
    pthread_mutex_unlock(&c->cache_lock);
    return rc;
}

void cc__license_decide(cc_context *ctx, cc__license_conf *c, cc_job *job, cc__license_verdict *out)
{
    memset(out, 0, sizeof *out);
    out->code = CC_ERR_INTERNAL;
    cc__license_job *lj = as_license(job);
    if (!lj) {
        cc__fmt(out->detail, sizeof out->detail, "internal error: not a licence job");
        return;
    }
    if (lj->have_verdict) {
        *out = lj->verdict; /* whoever asked the server has cached it */
    } else {
        /* A host that fed a body ends it by handing the job back. */
        if (job->result == 0 && !lj->have_figures && lj->body_started)
            cc__license_job_finish(lj);
        else if (job->result == 0 && !lj->have_figures && lj->http_status)
            cc__license_job_finish(lj); /* a status with an empty body */
        bool sound;
        verdict_of(lj, out, &sound);
        if (!lj->cached_by_run) {
            pthread_mutex_lock(&c->cache_lock);
            cache_update_locked(c, out, sound);
            pthread_mutex_unlock(&c->cache_lock);
        }
    }
    cc__log(ctx, out->granted ? CC_LOG_INFO : CC_LOG_WARN, "licence: %s", out->detail);
}

void cc__license_told(const cc__license_verdict *v, char *buf, size_t n)
{
    if (v->granted)
        cc__fmt(buf, n, "licence granted: %u of %u in use", v->in_use, v->count);
    else if (v->code == CC_ERR_LICENSE_DENIED || v->code == 0)
        cc__fmt(buf, n, "no licence free: %u of %u in use", v->in_use, v->count);
    else if (v->code == CC_ERR_LICENSE_EXPIRED)
        cc__fmt(buf, n, "the licence has expired");
    else
        cc__fmt(buf, n, "the client could not check its licence: %s", cc_strerror(v->code));
}
