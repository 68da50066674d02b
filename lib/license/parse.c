/* parse.c -- reads the licence-details page with expat, chunk by chunk, and
 * pulls out the figures; refuses DTDs so no entity is ever expanded. */
#include "parse.h"

#include <expat.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Debian backports some hardening calls into expat 2.5.0 without changing its
 * version macros, so we detect them by symbol: weak references are NULL when
 * the linked libexpat lacks them. */
extern XML_Bool XML_SetReparseDeferralEnabled(XML_Parser parser, XML_Bool enabled) __attribute__((weak));
extern XML_Bool XML_SetBillionLaughsAttackProtectionMaximumAmplification(XML_Parser parser,
                                                                         float maximumAmplificationFactor)
    __attribute__((weak));
extern XML_Bool XML_SetBillionLaughsAttackProtectionActivationThreshold(XML_Parser parser,
                                                                        unsigned long long activationThresholdBytes)
    __attribute__((weak));

#define NS_SEP    '\x01' /* not a legal XML character, so never inside a URI */
#define VALUE_MAX 96     /* longest figure or date text kept, whitespace included */
#define DEPTH_MAX 64     /* deeper nesting is refused: no real page needs it */

enum field { F_NONE = 0, F_COUNT, F_IN_USE, F_EXPIRY };

struct cc__license_parser {
    const cc_context *ctx;
    XML_Parser xp;
    int error; /* sticky cc_error, 0 while fine */
    bool finished;
    unsigned depth;         /* of the element being read, root = 1 */
    unsigned details_depth; /* depth of <LicenseDetails>, 0 outside it */
    bool seen_details;
    enum field capture; /* reading the text of this figure element */
    unsigned capture_depth;
    size_t value_len;
    char value[VALUE_MAX + 1];
    cc__license_page page;
    char detail[CC__DETAIL_MAX];
};

/* The local part of a name as expat reports it with namespaces on. */
static const char *local_name(const XML_Char *name)
{
    const char *sep = strrchr(name, NS_SEP);
    return sep ? sep + 1 : name;
}

static enum field field_of(const char *local)
{
    if (strcasecmp(local, "LicenseCount") == 0)
        return F_COUNT;
    if (strcasecmp(local, "LicensesInUse") == 0)
        return F_IN_USE;
    if (strcasecmp(local, "ExpiryDate") == 0 || strcasecmp(local, "ExpirationDate") == 0)
        return F_EXPIRY;
    return F_NONE;
}

static const char *field_name(enum field f)
{
    switch (f) {
    case F_COUNT:
        return "LicenseCount";
    case F_IN_USE:
        return "LicensesInUse";
    case F_EXPIRY:
        return "ExpiryDate";
    default:
        return "?";
    }
}

static void fail(cc__license_parser *p, int code, const char *fmt, ...) CC__PRINTF(3, 4);
static void fail(cc__license_parser *p, int code, const char *fmt, ...)
{
    if (p->error)
        return;
    p->error = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
    XML_StopParser(p->xp, XML_FALSE);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int cc__license_parse_count(const char *s, size_t len, uint32_t *out)
{
    size_t i = 0, end = len;
    while (i < end && is_ws(s[i]))
        i++;
    while (end > i && is_ws(s[end - 1]))
        end--;
    if (i == end)
        return -1;
    uint64_t v = 0;
    for (; i < end; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Reads exactly n digits. */
static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

int cc__license_parse_date(const char *s, size_t len, int64_t *expires_at)
{
    size_t i = 0, end = len;
    while (i < end && is_ws(s[i]))
        i++;
    while (end > i && is_ws(s[end - 1]))
        end--;
    s += i;
    size_t n = end - i;
    int y, mo, d, h = 0, mi = 0, se = 0, off = 0;
    if (n < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d))
        return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -1;
    int64_t day = days_from_civil(y, mo, d);
    if (n == 10) {
        *expires_at = (day + 1) * 86400; /* valid through the whole day, UTC */
        return 0;
    }
    if (n < 19 || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
        s[16] != ':' || digits(s + 17, 2, &se))
        return -1;
    if (h > 23 || mi > 59 || se > 59)
        return -1;
    size_t k = 19;
    if (k < n && s[k] == '.') { /* fractions of a second: truncated */
        size_t f = ++k;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
        if (k == f || k - f > 9)
            return -1;
    }
    if (k < n && (s[k] == 'Z' || s[k] == 'z')) {
        k++;
    } else if (k < n && (s[k] == '+' || s[k] == '-')) {
        int oh, om;
        if (n - k != 6 || digits(s + k + 1, 2, &oh) || s[k + 3] != ':' || digits(s + k + 4, 2, &om) || oh > 23 ||
            om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (s[k] == '-' ? -1 : 1);
        k += 6;
    }
    if (k != n)
        return -1;
    *expires_at = day * 86400 + h * 3600 + mi * 60 + se - off;
    return 0;
}

static void store(cc__license_parser *p, enum field f, const char *v, size_t len)
{
    char shown[80];
    cc__printable(shown, sizeof shown, (const uint8_t *)v, len);
    switch (f) {
    case F_COUNT:
    case F_IN_USE: {
        bool *have = f == F_COUNT ? &p->page.have_count : &p->page.have_in_use;
        uint32_t *dst = f == F_COUNT ? &p->page.count : &p->page.in_use;
        if (*have) {
            fail(p, CC_ERR_LICENSE_PARSE, "%s is given more than once", field_name(f));
            return;
        }
        if (cc__license_parse_count(v, len, dst) != 0) {
            fail(p, CC_ERR_LICENSE_PARSE, "%s is \"%s\", not a whole number from 0 to 4294967295", field_name(f),
                 shown);
            return;
        }
        *have = true;
        break;
    }
    case F_EXPIRY:
        if (p->page.have_expiry) {
            fail(p, CC_ERR_LICENSE_PARSE, "the expiry date is given more than once");
            return;
        }
        if (cc__license_parse_date(v, len, &p->page.expires_at) != 0) {
            fail(p, CC_ERR_LICENSE_PARSE, "expiry date \"%s\" is not YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[Z|+hh:mm]",
                 shown);
            return;
        }
        p->page.have_expiry = true;
        cc__printable(p->page.expiry_text, sizeof p->page.expiry_text, (const uint8_t *)v, len);
        break;
    default:
        break;
    }
}

static void XMLCALL on_start(void *user, const XML_Char *name, const XML_Char **attrs)
{
    cc__license_parser *p = user;
    if (p->error)
        return;
    p->depth++;
    if (p->depth > DEPTH_MAX) {
        fail(p, CC_ERR_LICENSE_PARSE, "elements nest deeper than %d levels", DEPTH_MAX);
        return;
    }
    const char *local = local_name(name);
    if (p->capture != F_NONE) {
        fail(p, CC_ERR_LICENSE_PARSE, "%s contains an element <%.64s>; it must hold only text", field_name(p->capture),
             local);
        return;
    }
    if (strcasecmp(local, "LicenseDetails") == 0) {
        if (p->seen_details) {
            fail(p, CC_ERR_LICENSE_PARSE, "the page has more than one LicenseDetails element");
            return;
        }
        p->seen_details = true;
        p->details_depth = p->depth;
        for (size_t i = 0; attrs[i] && attrs[i + 1]; i += 2) {
            enum field f = field_of(local_name(attrs[i]));
            if (f != F_NONE)
                store(p, f, attrs[i + 1], strlen(attrs[i + 1]));
        }
        return;
    }
    if (p->details_depth && p->depth == p->details_depth + 1) {
        enum field f = field_of(local);
        if (f != F_NONE) {
            p->capture = f;
            p->capture_depth = p->depth;
            p->value_len = 0;
        }
    }
}

static void XMLCALL on_end(void *user, const XML_Char *name)
{
    cc__license_parser *p = user;
    (void)name;
    if (p->error)
        return;
    if (p->capture != F_NONE && p->depth == p->capture_depth) {
        enum field f = p->capture;
        p->capture = F_NONE;
        store(p, f, p->value, p->value_len);
    }
    if (p->depth == p->details_depth)
        p->details_depth = 0;
    p->depth--;
}

static void XMLCALL on_text(void *user, const XML_Char *s, int len)
{
    cc__license_parser *p = user;
    if (p->error || p->capture == F_NONE || len <= 0)
        return;
    size_t n = (size_t)len;
    if (p->value_len == 0) { /* leading whitespace never needs keeping */
        while (n > 0 && is_ws(*s)) {
            s++;
            n--;
        }
    }
    if (n > VALUE_MAX - p->value_len) {
        fail(p, CC_ERR_LICENSE_PARSE, "%s is longer than %d characters", field_name(p->capture), VALUE_MAX);
        return;
    }
    memcpy(p->value + p->value_len, s, n);
    p->value_len += n;
    p->value[p->value_len] = '\0';
}

static void XMLCALL on_doctype(void *user, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    fail(user, CC_ERR_LICENSE_PARSE, "the page has a DOCTYPE declaration; DTDs and entities are refused");
}

static void XMLCALL on_entity_decl(void *user, const XML_Char *name, int is_param, const XML_Char *value, int value_len,
                                   const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid, (void)pubid, (void)notation;
    fail(user, CC_ERR_LICENSE_PARSE, "the page declares an entity; entities are refused");
}

static int XMLCALL on_external_entity(XML_Parser xp, const XML_Char *context, const XML_Char *base,
                                      const XML_Char *sysid, const XML_Char *pubid)
{
    (void)xp, (void)context, (void)base, (void)sysid, (void)pubid;
    return XML_STATUS_ERROR; /* never fetch anything the page points at */
}

cc__license_parser *cc__license_parser_new(const cc_context *ctx)
{
    cc__license_parser *p = cc__calloc(ctx, sizeof *p);
    if (!p)
        return NULL;
    p->ctx = ctx;
    p->xp = XML_ParserCreateNS(NULL, NS_SEP);
    if (!p->xp) {
        cc__free(ctx, p);
        return NULL;
    }
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    XML_SetCharacterDataHandler(p->xp, on_text);
    XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
    XML_SetEntityDeclHandler(p->xp, on_entity_decl);
    XML_SetExternalEntityRefHandler(p->xp, on_external_entity);
#ifdef XML_DTD
    XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
#endif
    /* Belt and braces: a DOCTYPE already stops the parser, but should one
     * slip through, amplification is capped as tightly as expat allows. */
    if (XML_SetBillionLaughsAttackProtectionMaximumAmplification)
        XML_SetBillionLaughsAttackProtectionMaximumAmplification(p->xp, 2.0f);
    if (XML_SetBillionLaughsAttackProtectionActivationThreshold)
        XML_SetBillionLaughsAttackProtectionActivationThreshold(p->xp, 4096);
    /* Deferring the reparse of large tokens avoids quadratic work on pages
     * that arrive in many small chunks. */
    if (XML_SetReparseDeferralEnabled)
        XML_SetReparseDeferralEnabled(p->xp, XML_TRUE);
    return p;
}

unsigned cc__license_parser_hardening(void)
{
    unsigned m = 0;
    if (XML_SetBillionLaughsAttackProtectionMaximumAmplification &&
        XML_SetBillionLaughsAttackProtectionActivationThreshold)
        m |= CC__LIC_HARDEN_AMPLIFICATION;
    if (XML_SetReparseDeferralEnabled)
        m |= CC__LIC_HARDEN_REPARSE;
    return m;
}

static void xml_failed(cc__license_parser *p)
{
    if (p->error)
        return; /* a handler stopped the parser and said why */
    enum XML_Error e = XML_GetErrorCode(p->xp);
    fail(p, e == XML_ERROR_NO_MEMORY ? CC_ERR_NOMEM : CC_ERR_LICENSE_PARSE,
         "not well-formed XML at line %lu, column %lu: %s", (unsigned long)XML_GetCurrentLineNumber(p->xp),
         (unsigned long)XML_GetCurrentColumnNumber(p->xp) + 1, XML_ErrorString(e));
}

int cc__license_parser_feed(cc__license_parser *p, const void *data, size_t len)
{
    if (p->error)
        return p->error;
    if (p->finished)
        return CC_ERR_INTERNAL;
    const char *s = data;
    while (len > 0) { /* XML_Parse takes an int length */
        int n = len > (1u << 30) ? (1 << 30) : (int)len;
        if (XML_Parse(p->xp, s, n, XML_FALSE) != XML_STATUS_OK) {
            xml_failed(p);
            return p->error;
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

int cc__license_parser_finish(cc__license_parser *p, cc__license_page *out)
{
    memset(out, 0, sizeof *out);
    if (!p->error && !p->finished) {
        p->finished = true;
        if (XML_Parse(p->xp, "", 0, XML_TRUE) != XML_STATUS_OK)
            xml_failed(p);
    }
    p->finished = true;
    if (p->error)
        return p->error;
    *out = p->page;
    if (!p->seen_details) {
        fail(p, CC_ERR_LICENSE_MISSING, "the page has no LicenseDetails element");
    } else if (!p->page.have_count || !p->page.have_in_use) {
        fail(p, CC_ERR_LICENSE_MISSING, "LicenseDetails lacks %s",
             !p->page.have_count && !p->page.have_in_use ? "LicenseCount and LicensesInUse"
             : !p->page.have_count                       ? "LicenseCount"
                                                         : "LicensesInUse");
    }
    return p->error;
}

const char *cc__license_parser_detail(const cc__license_parser *p)
{
    return p->detail;
}

void cc__license_parser_free(cc__license_parser *p)
{
    if (!p)
        return;
    XML_ParserFree(p->xp);
    cc__free(p->ctx, p);
}
