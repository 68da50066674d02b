/* pac.c -- account details from a Microsoft PAC (MS-PAC) in the console's ticket,
 * read through GSSAPI name attributes and decoded with every length checked. */
#include "krb5_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- bounded little-endian reader ---- */

struct rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static uint32_t rd_u32(struct rd *r)
{
    if (r->bad || r->len - r->off < 4 || r->off > r->len) {
        r->bad = true;
        return 0;
    }
    const uint8_t *b = r->p + r->off;
    r->off += 4;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint16_t rd_u16(struct rd *r)
{
    if (r->bad || r->len - r->off < 2 || r->off > r->len) {
        r->bad = true;
        return 0;
    }
    const uint8_t *b = r->p + r->off;
    r->off += 2;
    return (uint16_t)(b[0] | b[1] << 8);
}

static const uint8_t *rd_bytes(struct rd *r, size_t n)
{
    if (r->bad || r->off > r->len || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *b = r->p + r->off;
    r->off += n;
    return b;
}

static void rd_align4(struct rd *r)
{
    size_t pad = (4 - (r->off & 3)) & 3;
    rd_bytes(r, pad);
}

/* UTF-16LE (n bytes) to UTF-8; unpaired surrogates and NULs become '?'. */
static bool utf16_to_utf8(const uint8_t *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    if (n & 1)
        return false;
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint32_t c = (uint32_t)(s[i] | s[i + 1] << 8);
        if (c >= 0xD800 && c < 0xDC00 && i + 3 < n) {
            uint32_t c2 = (uint32_t)(s[i + 2] | s[i + 3] << 8);
            if (c2 >= 0xDC00 && c2 < 0xE000) {
                c = 0x10000 + ((c - 0xD800) << 10) + (c2 - 0xDC00);
                i += 2;
            } else
                c = '?';
        } else if ((c >= 0xD800 && c < 0xE000) || c == 0) {
            c = '?';
        }
        uint8_t b[4];
        size_t k;
        if (c < 0x80) {
            b[0] = (uint8_t)c;
            k = 1;
        } else if (c < 0x800) {
            b[0] = (uint8_t)(0xC0 | c >> 6);
            b[1] = (uint8_t)(0x80 | (c & 0x3F));
            k = 2;
        } else if (c < 0x10000) {
            b[0] = (uint8_t)(0xE0 | c >> 12);
            b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (c & 0x3F));
            k = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | c >> 18);
            b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            b[3] = (uint8_t)(0x80 | (c & 0x3F));
            k = 4;
        }
        if (o + k + 1 > outlen)
            return false;
        memcpy(out + o, b, k);
        o += k;
    }
    out[o] = 0;
    return true;
}

/* A binary SID (revision, count, 6-byte authority, count x 4-byte sub-authorities)
 * as "S-1-5-21-...", optionally with one more RID appended. */
static bool sid_text(uint8_t rev, uint8_t count, const uint8_t *auth6, const uint32_t *subs, bool add_rid, uint32_t rid,
                     char *out, size_t outlen)
{
    uint64_t a = 0;
    for (int i = 0; i < 6; i++)
        a = a << 8 | auth6[i];
    size_t o = (size_t)snprintf(out, outlen, "S-%u-%" PRIu64, rev, a);
    for (uint32_t i = 0; i < count + (add_rid ? 1u : 0u); i++) {
        if (o >= outlen)
            return false;
        o += (size_t)snprintf(out + o, outlen - o, "-%" PRIu32, i < count ? subs[i] : rid);
    }
    return o < outlen;
}

#define SID_MAX_SUBS 15

struct sid {
    uint8_t rev, count, auth[6];
    uint32_t subs[SID_MAX_SUBS];
};

/* An NDR-encoded RPC_SID (conformant: max count first). */
static bool rd_sid(struct rd *r, struct sid *s)
{
    uint32_t max = rd_u32(r);
    const uint8_t *h = rd_bytes(r, 8);
    if (!h || max > SID_MAX_SUBS || h[1] != max || h[0] != 1)
        return false;
    s->rev = h[0];
    s->count = h[1];
    memcpy(s->auth, h + 2, 6);
    for (uint32_t i = 0; i < max; i++)
        s->subs[i] = rd_u32(r);
    return !r->bad;
}

/* A deferred RPC_UNICODE_STRING body: max count, offset, actual count, chars. */
static bool rd_ustr(struct rd *r, uint16_t len_bytes, char *out, size_t outlen)
{
    uint32_t max = rd_u32(r), off = rd_u32(r), actual = rd_u32(r);
    if (r->bad || off != 0 || actual > max || actual * 2u != len_bytes)
        return false;
    const uint8_t *b = rd_bytes(r, (size_t)actual * 2);
    rd_align4(r);
    return b && !r->bad && utf16_to_utf8(b, (size_t)actual * 2, out, outlen);
}

struct ustr_hdr {
    uint16_t len, max;
    uint32_t ptr;
};

static void rd_ustr_hdr(struct rd *r, struct ustr_hdr *h)
{
    h->len = rd_u16(r);
    h->max = rd_u16(r);
    h->ptr = rd_u32(r);
}

#define PAC_MAX_GROUPS 1024

int cc__krb_pac_logon_info(const uint8_t *p, size_t len, cc__krb_attr_fn add, void *user)
{
    struct rd r = {p, len, 0, false};
    char name[1024], text[256];
    /* MS-RPCE type serialisation v1: common header, private header, referent. */
    const uint8_t *ch = rd_bytes(&r, 8);
    if (!ch || ch[0] != 1 || ch[1] != 0x10)
        return CC_ERR_AUTH_TOKEN;
    uint32_t objlen = rd_u32(&r);
    rd_u32(&r);
    if (r.bad || objlen > len - r.off)
        return CC_ERR_AUTH_TOKEN;
    if (rd_u32(&r) == 0)
        return CC_ERR_AUTH_TOKEN;
    rd_bytes(&r, 48);         /* six FILETIMEs */
    struct ustr_hdr names[6]; /* effective, full, script, profile, home dir, home drive */
    for (int i = 0; i < 6; i++)
        rd_ustr_hdr(&r, &names[i]);
    rd_u16(&r); /* logon count */
    rd_u16(&r); /* bad password count */
    uint32_t user_rid = rd_u32(&r), primary_rid = rd_u32(&r);
    uint32_t group_count = rd_u32(&r), group_ptr = rd_u32(&r);
    rd_u32(&r);       /* user flags */
    rd_bytes(&r, 16); /* session key */
    struct ustr_hdr server, domain;
    rd_ustr_hdr(&r, &server);
    rd_ustr_hdr(&r, &domain);
    uint32_t domain_sid_ptr = rd_u32(&r);
    rd_bytes(&r, 8 + 4 + 4 + 8 + 8 + 4 + 4); /* reserved1, uac, subauth, times, count, reserved3 */
    uint32_t sid_count = rd_u32(&r), extra_ptr = rd_u32(&r);
    uint32_t res_sid_ptr = rd_u32(&r), res_count = rd_u32(&r), res_ptr = rd_u32(&r);
    if (r.bad || group_count > PAC_MAX_GROUPS || sid_count > PAC_MAX_GROUPS || res_count > PAC_MAX_GROUPS)
        return CC_ERR_AUTH_TOKEN;

    /* Deferred data, in the order the pointers appeared. */
    char effective[1024] = "", full[1024] = "", dom[1024] = "";
    for (int i = 0; i < 6; i++) {
        if (!names[i].ptr)
            continue;
        char *dst = i == 0 ? effective : i == 1 ? full : name;
        if (!rd_ustr(&r, names[i].len, dst, sizeof name))
            return CC_ERR_AUTH_TOKEN;
    }
    uint32_t groups[PAC_MAX_GROUPS];
    uint32_t ngroups = 0;
    if (group_ptr) {
        if (rd_u32(&r) != group_count)
            return CC_ERR_AUTH_TOKEN;
        for (uint32_t i = 0; i < group_count; i++) {
            groups[ngroups++] = rd_u32(&r);
            rd_u32(&r); /* attributes */
        }
    } else if (group_count) {
        return CC_ERR_AUTH_TOKEN;
    }
    if (server.ptr && !rd_ustr(&r, server.len, name, sizeof name))
        return CC_ERR_AUTH_TOKEN;
    if (domain.ptr && !rd_ustr(&r, domain.len, dom, sizeof dom))
        return CC_ERR_AUTH_TOKEN;
    struct sid dsid;
    bool have_dsid = false;
    if (domain_sid_ptr) {
        if (!rd_sid(&r, &dsid))
            return CC_ERR_AUTH_TOKEN;
        have_dsid = true;
    }
    if (r.bad)
        return CC_ERR_AUTH_TOKEN;

    if (effective[0])
        add(user, "logon-name", effective);
    if (full[0])
        add(user, "full-name", full);
    if (dom[0])
        add(user, "logon-domain", dom);
    if (have_dsid) {
        if (!sid_text(dsid.rev, dsid.count, dsid.auth, dsid.subs, false, 0, text, sizeof text))
            return CC_ERR_AUTH_TOKEN;
        add(user, "domain-sid", text);
        sid_text(dsid.rev, dsid.count, dsid.auth, dsid.subs, dsid.count < SID_MAX_SUBS, user_rid, text, sizeof text);
        add(user, "sid", text);
        sid_text(dsid.rev, dsid.count, dsid.auth, dsid.subs, dsid.count < SID_MAX_SUBS, primary_rid, text, sizeof text);
        add(user, "primary-group-sid", text);
        for (uint32_t i = 0; i < ngroups; i++) {
            sid_text(dsid.rev, dsid.count, dsid.auth, dsid.subs, dsid.count < SID_MAX_SUBS, groups[i], text,
                     sizeof text);
            add(user, "group-sid", text);
        }
    }
    /* Extra SIDs: an array of (pointer, attributes), then each SID. */
    if (extra_ptr) {
        if (rd_u32(&r) != sid_count)
            return CC_ERR_AUTH_TOKEN;
        uint32_t nptr = 0;
        for (uint32_t i = 0; i < sid_count; i++) {
            if (rd_u32(&r))
                nptr++;
            rd_u32(&r);
        }
        for (uint32_t i = 0; i < nptr; i++) {
            struct sid s;
            if (!rd_sid(&r, &s) || !sid_text(s.rev, s.count, s.auth, s.subs, false, 0, text, sizeof text))
                return CC_ERR_AUTH_TOKEN;
            add(user, "group-sid", text);
        }
    } else if (sid_count) {
        return CC_ERR_AUTH_TOKEN;
    }
    /* Resource groups: a domain SID and RIDs in it. */
    struct sid rsid;
    bool have_rsid = false;
    if (res_sid_ptr) {
        if (!rd_sid(&r, &rsid))
            return CC_ERR_AUTH_TOKEN;
        have_rsid = true;
    }
    if (res_ptr) {
        if (rd_u32(&r) != res_count || !have_rsid)
            return CC_ERR_AUTH_TOKEN;
        for (uint32_t i = 0; i < res_count; i++) {
            uint32_t rid = rd_u32(&r);
            rd_u32(&r);
            if (r.bad)
                return CC_ERR_AUTH_TOKEN;
            sid_text(rsid.rev, rsid.count, rsid.auth, rsid.subs, rsid.count < SID_MAX_SUBS, rid, text, sizeof text);
            add(user, "group-sid", text);
        }
    }
    return r.bad ? CC_ERR_AUTH_TOKEN : 0;
}

int cc__krb_pac_client_info(const uint8_t *p, size_t len, cc__krb_attr_fn add, void *user)
{
    struct rd r = {p, len, 0, false};
    char name[1024];
    rd_bytes(&r, 8); /* client id (FILETIME) */
    uint16_t n = rd_u16(&r);
    const uint8_t *b = rd_bytes(&r, n);
    if (!b || !utf16_to_utf8(b, n, name, sizeof name))
        return CC_ERR_AUTH_TOKEN;
    if (name[0])
        add(user, "client-name", name);
    return 0;
}

int cc__krb_pac_upn_dns_info(const uint8_t *p, size_t len, cc__krb_attr_fn add, void *user)
{
    struct rd r = {p, len, 0, false};
    char text[1024];
    uint16_t upn_len = rd_u16(&r), upn_off = rd_u16(&r);
    uint16_t dns_len = rd_u16(&r), dns_off = rd_u16(&r);
    uint32_t flags = rd_u32(&r);
    uint16_t sam_len = 0, sam_off = 0, sid_len = 0, sid_off = 0;
    if (flags & 2) { /* S flag: the extended form with SAM name and SID */
        sam_len = rd_u16(&r);
        sam_off = rd_u16(&r);
        sid_len = rd_u16(&r);
        sid_off = rd_u16(&r);
    }
    if (r.bad)
        return CC_ERR_AUTH_TOKEN;
    struct {
        uint16_t l, o;
        const char *key;
    } f[3] = {{upn_len, upn_off, "upn"}, {dns_len, dns_off, "dns-domain"}, {sam_len, sam_off, "sam-name"}};
    for (int i = 0; i < 3; i++) {
        if (!f[i].l)
            continue;
        if ((size_t)f[i].o + f[i].l > len || !utf16_to_utf8(p + f[i].o, f[i].l, text, sizeof text))
            return CC_ERR_AUTH_TOKEN;
        add(user, f[i].key, text);
    }
    if (sid_len) {
        if ((size_t)sid_off + sid_len > len || sid_len < 8)
            return CC_ERR_AUTH_TOKEN;
        const uint8_t *s = p + sid_off;
        uint8_t count = s[1];
        if (s[0] != 1 || count > SID_MAX_SUBS || (size_t)8 + 4u * count != sid_len)
            return CC_ERR_AUTH_TOKEN;
        uint32_t subs[SID_MAX_SUBS];
        for (uint8_t i = 0; i < count; i++) {
            const uint8_t *q = s + 8 + 4 * i;
            subs[i] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        }
        if (!sid_text(s[0], count, s + 2, subs, false, 0, text, sizeof text))
            return CC_ERR_AUTH_TOKEN;
        add(user, "sid", text);
    }
    return 0;
}

/* ---- through GSSAPI ---- */

/* Collects attributes and remembers the first failure: the decoders go on
 * regardless, so the caller checks `err` and fails closed (a host policy may
 * rely on a group SID that would otherwise be dropped silently). */
struct attr_sink {
    cc_auth *auth;
    int err;
};

static int add_attr(void *user, const char *key, const char *value)
{
    struct attr_sink *sink = user;
    if (sink->err)
        return sink->err;
    int r = cc_auth_add_attribute(sink->auth, key, value);
    if (r < 0)
        sink->err = r;
    return r;
}

/* Reads one authenticated PAC buffer by its GSS attribute name; 0 with
 * value->length 0 if absent. Unauthenticated (unsigned) data is ignored. */
static int get_attr(gss_name_t name, const char *attr, gss_buffer_desc *value)
{
    OM_uint32 mn;
    int authenticated = 0, complete = 0, more = -1;
    gss_buffer_desc a = {strlen(attr), (void *)attr}, disp = GSS_C_EMPTY_BUFFER;
    OM_uint32 maj = gss_get_name_attribute(&mn, name, &a, &authenticated, &complete, value, &disp, &more);
    gss_release_buffer(&mn, &disp);
    if (GSS_ERROR(maj) || !authenticated) {
        gss_release_buffer(&mn, value);
        value->length = 0;
        value->value = NULL;
    }
    return 0;
}

int cc__krb_pac_attributes(cc_auth *auth, gss_name_t name)
{
    static const struct {
        const char *attr;
        int (*decode)(const uint8_t *, size_t, cc__krb_attr_fn, void *);
    } bufs[] = {
        {"urn:mspac:logon-info", cc__krb_pac_logon_info},
        {"urn:mspac:upn-dns-info", cc__krb_pac_upn_dns_info},
        {"urn:mspac:client-info", cc__krb_pac_client_info},
    };
    OM_uint32 mn;
    bool any = false;
    struct attr_sink sink = {auth, 0};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        gss_buffer_desc v = GSS_C_EMPTY_BUFFER;
        get_attr(name, bufs[i].attr, &v);
        if (!v.length)
            continue;
        any = true;
        int r = bufs[i].decode(v.value, v.length, add_attr, &sink);
        gss_release_buffer(&mn, &v);
        if (r < 0)
            return r;
    }
    if (any)
        add_attr(&sink, "pac", "yes");
    if (sink.err == CC_ERR_AGAIN) {
        cc_auth_set_error(auth, CC_ERR_AUTH_POLICY,
                          "kerberos: the account has more than 1024 PAC details; refused rather than judged on a part");
        return CC_ERR_AUTH_POLICY;
    }
    return sink.err;
}
