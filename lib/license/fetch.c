/* fetch.c -- the bundled licence helper: fetches the page with libcurl's easy
 * interface on the host's worker thread and parses it as it arrives. */
#include "job.h"

#include <curl/curl.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

/* curl_global_init is not safe to race; the library creates no threads but
 * hosts may run licence jobs on several at once. */
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Called when a licence source is configured, normally on the host's setup
 * thread: libcurl asks for its global init early, and doing it here keeps
 * OpenSSL's one-time configuration (and the per-thread state it leaves
 * behind) off the host's short-lived worker threads. */
void cc__license_curl_init(void)
{
    pthread_once(&curl_once, curl_init);
}

struct fetch {
    cc__license_job *lj;
    CURL *curl;
    bool https; /* the configured URL is https: redirects must stay https */
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    struct fetch *f = user;
    size_t n = size * nmemb;
    if (!f->lj->http_status) {
        long code = 0;
        curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 300 && code <= 399)
            return n; /* the body of a redirect is not the page */
        f->lj->http_status = (int32_t)code;
    }
    /* Any error (status, size, parse) is recorded in the job; returning a
     * short count makes curl abort the transfer at once. */
    return cc__license_job_feed(f->lj, data, n) == 0 ? n : 0;
}

static bool is_tls_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return true;
    default:
        return false;
    }
}

/* Turns curl's outcome into the job's result when no callback recorded one. */
static void classify(struct fetch *f, CURLcode rc, const char *errbuf)
{
    cc__license_job *lj = f->lj;
    const char *url = lj->shown;
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (lj->base.result < 0)
        return; /* status, size or parse error already said */
    if (rc == CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &code);
        lj->http_status = (int32_t)code;
        cc__license_job_finish(lj);
        return;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        cc__job_set_result(&lj->base, CC_ERR_LICENSE_TIMEOUT,
                           "licence fetch of %s timed out (connect limit %u ms, total limit %u "
                           "ms): %s",
                           url, (unsigned)lj->connect_timeout_ms, (unsigned)lj->total_timeout_ms, why);
        break;
    case CURLE_TOO_MANY_REDIRECTS:
        cc__job_set_result(&lj->base, CC_ERR_LICENSE_REDIRECT,
                           "licence fetch of %s: more than %u redirects (CC_LIMIT_REDIRECTS)", url,
                           (unsigned)lj->max_redirects);
        break;
    case CURLE_UNSUPPORTED_PROTOCOL: {
        /* The URL itself was checked to be http(s), so this is a redirect. */
        char *target = NULL;
        if (curl_easy_getinfo(f->curl, CURLINFO_EFFECTIVE_URL, &target) != CURLE_OK || !target)
            target = "?";
        char shown[80] = "";
        cc__printable(shown, sizeof shown, (const uint8_t *)target, strlen(target));
        if (f->https && strncasecmp(target, "http://", 7) == 0)
            cc__job_set_result(&lj->base, CC_ERR_LICENSE_REDIRECT,
                               "licence fetch of %s was redirected to %s: an https licence URL is never "
                               "followed to plain http, where anyone on the path could forge the verdict",
                               url, shown);
        else
            cc__job_set_result(&lj->base, CC_ERR_LICENSE_REDIRECT,
                               "licence fetch of %s was redirected to %s, which is not %s: %s", url, shown,
                               f->https ? "https" : "http or https", why);
        break;
    }
    case CURLE_FILESIZE_EXCEEDED:
        cc__job_set_result(&lj->base, CC_ERR_LICENSE_TOO_LARGE,
                           "licence page %s is larger than the limit of %u bytes "
                           "(CC_LIMIT_LICENSE_PAGE)",
                           url, (unsigned)lj->max_page);
        break;
    case CURLE_OUT_OF_MEMORY:
        cc__job_set_result(&lj->base, CC_ERR_NOMEM, "out of memory fetching licence page %s", url);
        break;
    case CURLE_URL_MALFORMAT:
        cc__job_set_result(&lj->base, CC_ERR_LICENSE_CONFIG, "licence URL %s is malformed: %s", url, why);
        break;
    default:
        if (is_tls_error(rc))
            cc__job_set_result(
                &lj->base, CC_ERR_LICENSE_TLS, "licence server of %s failed HTTPS verification (%s): %s", url,
                lj->ca_file ? "CA file given with cc_context_set_license_ca_file" : "system CA store", why);
        else
            cc__job_set_result(&lj->base, CC_ERR_LICENSE_UNREACHABLE, "licence server of %s could not be reached: %s",
                               url, why);
        break;
    }
}

#define SET(opt, val)                                                                                                  \
    do {                                                                                                               \
        if (rc == CURLE_OK)                                                                                            \
            rc = curl_easy_setopt(curl, opt, val);                                                                     \
    } while (0)

int cc__license_fetch(cc_job *job)
{
    cc__license_job *lj = (cc__license_job *)job;
    if (lj->ran || lj->body_started || lj->have_figures || lj->http_status)
        return CC_ERR_STATE; /* the host answered it already */
    lj->ran = true;
    if (!lj->url)
        return cc__job_set_result(job, CC_ERR_LICENSE_CONFIG,
                                  "no licence source configured: call cc_context_set_license_url() "
                                  "or cc_context_set_license_server() (cc-client: --license-url URL "
                                  "or --ns NAME)");
    cc__license_curl_init();
    if (curl_init_rc != CURLE_OK)
        return cc__job_set_result(job, CC_ERR_INTERNAL, "libcurl failed to initialise: %s",
                                  curl_easy_strerror(curl_init_rc));
    CURL *curl = curl_easy_init();
    if (!curl)
        return cc__job_set_result(job, CC_ERR_NOMEM, "out of memory starting the licence fetch");

    struct fetch f = {lj, curl, strncasecmp(lj->url, "https://", 8) == 0};
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc = CURLE_OK;
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_URL, lj->url);
    SET(CURLOPT_NOSIGNAL, 1L); /* we run on the host's threads */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    /* Never file:, ftp:, ...; and an https URL never goes down to http, where
     * anyone on the path could answer in the server's name. */
    SET(CURLOPT_REDIR_PROTOCOLS_STR, f.https ? "https" : "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 1L); /* with MAXREDIRS 0 a redirect fails as too many */
    SET(CURLOPT_MAXREDIRS, (long)lj->max_redirects);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)lj->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)lj->total_timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)lj->max_page);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (lj->ca_file) {
        SET(CURLOPT_CAINFO, lj->ca_file);
        SET(CURLOPT_CAPATH, (char *)NULL); /* only the given CA, not the system store too */
    }
    /* No Accept-Encoding and no decoding: what the server sends is what is
     * counted against the page limit, so a compressed bomb cannot expand. */
    SET(CURLOPT_HTTP_CONTENT_DECODING, 0L);
    /* Proxies from the environment are not used: the licence server is
     * normally on the local network, and a host that needs a proxy can fetch
     * the page itself and feed it. */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
    SET(CURLOPT_USERAGENT, "libcarboncopy/" CC_VERSION_STRING);
    SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, &f);
    if (rc != CURLE_OK) {
        curl_easy_cleanup(curl);
        return cc__job_set_result(job, CC_ERR_INTERNAL, "libcurl refused a licence fetch option: %s",
                                  curl_easy_strerror(rc));
    }
    cc__log(job->ctx, CC_LOG_DEBUG, "licence: fetching %s", lj->url);
    rc = curl_easy_perform(curl);
    classify(&f, rc, errbuf);
    curl_easy_cleanup(curl);
    if (lj->base.result == 0)
        lj->base.answered = true;
    return lj->base.result;
}
