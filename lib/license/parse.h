/* parse.h -- the licence-details page parser: an incremental expat reader that
 * extracts the licence count, licences in use and expiry date, rejecting DTDs. */
#ifndef CC_LICENSE_PARSE_H
#define CC_LICENSE_PARSE_H

#include "../base/base.h"

/* What a well-formed page said. */
typedef struct cc__license_page {
    bool have_count, have_in_use, have_expiry;
    uint32_t count, in_use;
    /* Unix seconds from which the licence counts as expired. */
    int64_t expires_at;
    char expiry_text[40]; /* the date as written (printable), for details */
} cc__license_page;

typedef struct cc__license_parser cc__license_parser;

/* Returns NULL when memory is exhausted. */
cc__license_parser *cc__license_parser_new(const cc_context *ctx);
/* Parses the next chunk. Returns 0, or CC_ERR_LICENSE_PARSE (sticky; the
 * detail says why) or CC_ERR_NOMEM. */
int cc__license_parser_feed(cc__license_parser *p, const void *data, size_t len);
/* Ends the document and fills *out. Returns 0 when both figures were found,
 * CC_ERR_LICENSE_PARSE or CC_ERR_LICENSE_MISSING otherwise. Call once. */
int cc__license_parser_finish(cc__license_parser *p, cc__license_page *out);
/* Why the last call failed; "" if it did not. */
const char *cc__license_parser_detail(const cc__license_parser *p);
void cc__license_parser_free(cc__license_parser *p);

/* Parses a non-negative decimal that fits uint32_t, surrounding XML
 * whitespace allowed. Returns 0 or -1. */
int cc__license_parse_count(const char *s, size_t len, uint32_t *out);
/* Parses YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with an optional Z (UTC either
 * way), surrounding XML whitespace allowed. *expires_at is the first second
 * the licence is no longer valid: the next midnight for a date alone, the
 * instant itself with a time. Returns 0 or -1. */
int cc__license_parse_date(const char *s, size_t len, int64_t *expires_at);

/* Which optional expat protections the linked libexpat provides (detected
 * by symbol at run time, see parse.c): a mask of the bits below. */
#define CC__LIC_HARDEN_AMPLIFICATION 0x1 /* XML_SetBillionLaughsAttackProtection* */
#define CC__LIC_HARDEN_REPARSE       0x2 /* XML_SetReparseDeferralEnabled */
unsigned cc__license_parser_hardening(void);

#endif
