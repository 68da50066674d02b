/* fuzz-license-page.c -- libFuzzer target for the licence-details page parser (lib/license/parse.h): the
 * page fed in chunks split where the input says, then finished; plus the figure and date readers alone. */
#include <carboncopy.h>

#include "../../lib/core/core.h"
#include "../../lib/license/parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CUTS 8

static cc_context *ctx, *small_ctx; /* small_ctx: a licence page limit of 2 KiB */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    small_ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!ctx || !small_ctx || cc_context_set_license_url(ctx, "http://licence.example/page") < 0 ||
        cc_context_set_license_url(small_ctx, "https://licence.example/page") < 0 ||
        cc_context_set_limit(small_ctx, CC_LIMIT_LICENSE_PAGE, 2048) < 0)
        abort();
    return 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* The same chunks through the licence job a host answers itself
 * (cc_job_license_set_status / cc_job_license_feed), then the verdict. */
static void through_job(uint8_t mode, const uint8_t *page, const size_t *cut, size_t n)
{
    cc_context *c = mode & 0x10 ? small_ctx : ctx;
    cc_job *job = NULL;
    if (cc__license_start(c, &c->license, &job, NULL) != 0 || !job)
        abort();
    static const int32_t statuses[4] = {0, 200, 204, 503};
    int32_t st = statuses[mode >> 5 & 3];
    if (st && cc_job_license_set_status(job, st) != 0)
        abort();
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        int r = cc_job_license_feed(job, page + at, cut[i] - at);
        if (r > 0)
            abort();
        at = cut[i];
    }
    cc__license_verdict v;
    memset(&v, 0xa5, sizeof v);
    cc__license_decide(c, &c->license, job, &v);
    if (v.granted && (v.code != 0 || v.count <= v.in_use))
        abort(); /* a grant must be one */
    if (!v.granted && v.code >= 0)
        abort();
    if (!memchr(v.detail, 0, sizeof v.detail) || !v.detail[0])
        abort();
    cc_job_free(job);
}

/* Input: n (low 3 bits of the first byte), n cut positions of two bytes each
 * (taken modulo the page length), then the page. Bit 3 of the first byte
 * sends the page through a licence job instead, bit 4 with a 2 KiB limit,
 * bits 5-6 with an HTTP status of none, 200, 204 or 503. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = data[0] & (MAX_CUTS - 1);
    if (size < 1 + 2 * n)
        return 0;
    const uint8_t *page = data + 1 + 2 * n;
    size_t len = size - 1 - 2 * n;
    size_t cut[MAX_CUTS + 1];
    for (size_t i = 0; i < n; i++)
        cut[i] = len ? (size_t)(data[1 + 2 * i] << 8 | data[2 + 2 * i]) % (len + 1) : 0;
    cut[n] = len;
    qsort(cut, n + 1, sizeof cut[0], cmp_size);
    if (data[0] & 8) {
        through_job(data[0], page, cut, n);
        return 0;
    }

    cc__license_parser *p = cc__license_parser_new(ctx);
    if (!p)
        abort();
    size_t at = 0;
    int first_err = 0;
    for (size_t i = 0; i <= n; i++) {
        int r = cc__license_parser_feed(p, page + at, cut[i] - at);
        if (r != 0 && r != CC_ERR_LICENSE_PARSE && r != CC_ERR_NOMEM)
            abort();
        if (first_err && r != first_err) /* errors are sticky */
            abort();
        if (r && !first_err)
            first_err = r;
        at = cut[i];
    }
    cc__license_page out;
    memset(&out, 0xa5, sizeof out);
    int r = cc__license_parser_finish(p, &out);
    if (r != 0 && r != CC_ERR_LICENSE_PARSE && r != CC_ERR_LICENSE_MISSING && r != CC_ERR_NOMEM)
        abort();
    if (first_err && r == 0)
        abort();
    if (r == 0 && (!out.have_count || !out.have_in_use || !memchr(out.expiry_text, 0, sizeof out.expiry_text)))
        abort();
    const char *d = cc__license_parser_detail(p);
    if (!d || (r && !d[0]) || !memchr(d, 0, CC__DETAIL_MAX))
        abort();
    cc__license_parser_free(p);

    /* The figure and date readers on the raw page. */
    uint32_t v;
    int64_t t;
    cc__license_parse_count((const char *)page, len, &v);
    cc__license_parse_date((const char *)page, len, &t);
    return 0;
}
