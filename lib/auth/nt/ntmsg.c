/* ntmsg.c -- MS-NLMP NEGOTIATE, CHALLENGE and AUTHENTICATE messages, byte for byte
 * (section 2.2.1), with strict bounds checks; and the NTLMv2 proof and MIC check. */
#include "nt.h"

#include <openssl/rand.h>
#include <string.h>

static const uint8_t sig[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
/* Version structure (2.2.2.10): informational only; NTLMSSP_REVISION_W2K3 = 15. */
static const uint8_t our_version[8] = {10, 0, 0, 0, 0, 0, 0, 15};

#define NEG_FLAGS                                                                                                      \
    (CC__NTLM_NEGOTIATE_UNICODE | CC__NTLM_REQUEST_TARGET | CC__NTLM_NEGOTIATE_NTLM | CC__NTLM_NEGOTIATE_ALWAYS_SIGN | \
     CC__NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY | CC__NTLM_NEGOTIATE_VERSION | CC__NTLM_NEGOTIATE_128 |               \
     CC__NTLM_NEGOTIATE_56)

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static uint32_t get16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}
static uint32_t get32(const uint8_t *p)
{
    return get16(p) | get16(p + 2) << 16;
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Appends n uninitialised bytes to out; returns where they start. */
static uint8_t *grow(const cc_context *ctx, cc__buf *out, size_t n)
{
    uint8_t *p = cc__buf_reserve(ctx, out, n);
    if (p)
        out->len += n;
    return p;
}

/* A field descriptor: Len(2) MaxLen(2) BufferOffset(4). */
static void put_field(uint8_t *p, size_t len, size_t off)
{
    put16(p, (uint32_t)len), put16(p + 2, (uint32_t)len), put32(p + 4, (uint32_t)off);
}

/* Reads a field descriptor and checks the field lies inside the message. */
static int get_field(const uint8_t *msg, size_t msg_len, size_t at, const char *name, const uint8_t **data, size_t *len,
                     size_t *off, char *detail, size_t dl)
{
    size_t l = get16(msg + at), o = get32(msg + at + 4);
    if (l > 0 && (o > msg_len || l > msg_len - o)) {
        cc__fmt(detail, dl, "%s field (%zu bytes at offset %zu) runs past the end of the %zu-byte message", name, l, o,
                msg_len);
        return CC_ERR_AUTH_TOKEN;
    }
    *data = l ? msg + o : NULL;
    *len = l;
    if (off)
        *off = o;
    return 0;
}

static int check_header(const uint8_t *msg, size_t len, uint32_t type, size_t min, size_t max, const char *what,
                        char *detail, size_t dl)
{
    if (len > max) {
        cc__fmt(detail, dl, "%s message is %zu bytes, more than the %zu allowed", what, len, max);
        return CC_ERR_AUTH_TOKEN;
    }
    if (len < min) {
        cc__fmt(detail, dl, "%s message is truncated: %zu bytes, its header alone needs %zu", what, len, min);
        return CC_ERR_AUTH_TOKEN;
    }
    if (memcmp(msg, sig, 8) != 0) {
        cc__fmt(detail, dl, "%s message lacks the NTLMSSP signature", what);
        return CC_ERR_AUTH_TOKEN;
    }
    if (get32(msg + 8) != type) {
        cc__fmt(detail, dl, "MessageType is %u where the %s message (type %u) was expected", (unsigned)get32(msg + 8),
                what, (unsigned)type);
        return CC_ERR_AUTH_TOKEN;
    }
    return 0;
}

/* ---- NEGOTIATE ---- */
int cc__nt_build_negotiate(const cc_context *ctx, cc__buf *out)
{
    uint8_t *p = grow(ctx, out, 40);
    if (!p)
        return CC_ERR_NOMEM;
    memset(p, 0, 40);
    memcpy(p, sig, 8);
    put32(p + 8, 1);
    put32(p + 12, NEG_FLAGS);
    put_field(p + 16, 0, 40); /* DomainNameFields: none */
    put_field(p + 24, 0, 40); /* WorkstationFields: none */
    memcpy(p + 32, our_version, 8);
    return 0;
}

int cc__nt_parse_negotiate(const uint8_t *msg, size_t len, struct cc__nt_negotiate *n, char *detail, size_t dl)
{
    const uint8_t *d;
    size_t l;
    int rc = check_header(msg, len, 1, 32, CC__NT_MAX_NEGOTIATE, "NEGOTIATE", detail, dl);
    if (rc)
        return rc;
    n->flags = get32(msg + 12);
    if ((rc = get_field(msg, len, 16, "NEGOTIATE DomainName", &d, &l, NULL, detail, dl)) ||
        (rc = get_field(msg, len, 24, "NEGOTIATE Workstation", &d, &l, NULL, detail, dl)))
        return rc;
    /* MS-NLMP 2.2.2.5: UNICODE set means Unicode; else OEM set means OEM; neither
     * is SEC_E_INVALID_TOKEN. The CHALLENGE carries the choice (3.2.5.1.1). */
    if (n->flags & CC__NTLM_NEGOTIATE_UNICODE)
        n->charset = CC__NTLM_NEGOTIATE_UNICODE;
    else if (n->flags & CC__NTLM_NEGOTIATE_OEM)
        n->charset = CC__NTLM_NEGOTIATE_OEM;
    else {
        cc__fmt(detail, dl,
                "NEGOTIATE NegotiateFlags (0x%08x) set neither NTLMSSP_NEGOTIATE_UNICODE nor "
                "NTLMSSP_NEGOTIATE_OEM: no character set to answer in (MS-NLMP 2.2.2.5)",
                (unsigned)n->flags);
        return CC_ERR_AUTH_TOKEN;
    }
    return 0;
}

/* ---- AV pairs (2.2.2.1) ---- */
static int av_put(const cc_context *ctx, cc__buf *out, uint16_t id, const void *val, size_t len)
{
    uint8_t *p = grow(ctx, out, 4 + len);
    if (!p)
        return CC_ERR_NOMEM;
    put16(p, id), put16(p + 2, (uint32_t)len);
    if (len)
        memcpy(p + 4, val, len);
    return 0;
}

static int av_put_str(const cc_context *ctx, cc__buf *out, uint16_t id, const char *s)
{
    uint8_t *u16;
    size_t n;
    int rc = cc__nt_utf16_from_utf8(ctx, s, CC__NT_MAX_NAME_UNITS, &u16, &n);
    if (rc)
        return rc;
    rc = av_put(ctx, out, id, u16, n);
    cc__free(ctx, u16);
    return rc;
}

/* Walks AV pairs up to MsvAvEOL; calls fn for each pair before it. The pairs
 * must end with MsvAvEOL inside `len`; *used is the length including it. */
typedef int (*av_fn)(void *u, uint16_t id, const uint8_t *val, size_t len);
static int av_walk(const uint8_t *av, size_t len, const char *where, av_fn fn, void *u, size_t *used, char *detail,
                   size_t dl)
{
    size_t at = 0;
    for (unsigned count = 0;; count++) {
        if (count > 64) {
            cc__fmt(detail, dl, "%s holds more than 64 AV pairs", where);
            return CC_ERR_AUTH_TOKEN;
        }
        if (len - at < 4) {
            cc__fmt(detail, dl, "%s ends without MsvAvEOL", where);
            return CC_ERR_AUTH_TOKEN;
        }
        uint16_t id = (uint16_t)get16(av + at);
        size_t l = get16(av + at + 2);
        if (l > len - at - 4) {
            cc__fmt(detail, dl, "%s: AV pair %u of %zu bytes runs past the end", where, (unsigned)id, l);
            return CC_ERR_AUTH_TOKEN;
        }
        if (id == CC__AV_EOL) {
            if (l != 0) {
                cc__fmt(detail, dl, "%s: MsvAvEOL has a length of %zu", where, l);
                return CC_ERR_AUTH_TOKEN;
            }
            *used = at + 4;
            return 0;
        }
        if (fn) {
            int rc = fn(u, id, av + at + 4, l);
            if (rc) {
                cc__fmt(detail, dl, "%s: AV pair %u has a bad length (%zu) or appears twice", where, (unsigned)id, l);
                return rc;
            }
        }
        at += 4 + l;
    }
}

int cc__nt_build_target_info(const cc_context *ctx, cc__buf *out, const char *nb_domain, const char *nb_computer,
                             const char *dns_domain, uint64_t filetime)
{
    uint8_t ts[8];
    for (int i = 0; i < 8; i++)
        ts[i] = (uint8_t)(filetime >> (8 * i));
    int rc = av_put_str(ctx, out, CC__AV_NB_DOMAIN_NAME, nb_domain);
    if (!rc)
        rc = av_put_str(ctx, out, CC__AV_NB_COMPUTER_NAME, nb_computer);
    if (!rc && dns_domain && *dns_domain)
        rc = av_put_str(ctx, out, CC__AV_DNS_DOMAIN_NAME, dns_domain);
    if (!rc)
        rc = av_put(ctx, out, CC__AV_TIMESTAMP, ts, 8);
    if (!rc)
        rc = av_put(ctx, out, CC__AV_EOL, NULL, 0);
    return rc;
}

/* ---- CHALLENGE ---- */
int cc__nt_build_challenge(const cc_context *ctx, cc__buf *out, uint32_t flags, const uint8_t server_challenge[8],
                           const char *target_name, const uint8_t *target_info, size_t target_info_len)
{
    uint8_t *tn;
    size_t tn_len;
    int rc;
    if (flags & CC__NTLM_NEGOTIATE_UNICODE)
        rc = cc__nt_utf16_from_utf8(ctx, target_name, CC__NT_MAX_NAME_UNITS, &tn, &tn_len);
    else { /* OEM: the name as it is, printable ASCII only (no code page is assumed) */
        tn_len = strlen(target_name);
        for (size_t i = 0; i < tn_len; i++)
            if ((unsigned char)target_name[i] < 0x20 || (unsigned char)target_name[i] > 0x7e)
                return CC_ERR_INVALID;
        if (tn_len > CC__NT_MAX_NAME_UNITS)
            return CC_ERR_INVALID;
        rc = (tn = cc__malloc(ctx, tn_len ? tn_len : 1)) ? 0 : CC_ERR_NOMEM;
        if (!rc && tn_len)
            memcpy(tn, target_name, tn_len);
    }
    if (rc)
        return rc;
    size_t total = 56 + tn_len + target_info_len;
    uint8_t *p = grow(ctx, out, total);
    if (!p) {
        cc__free(ctx, tn);
        return CC_ERR_NOMEM;
    }
    memset(p, 0, 56);
    memcpy(p, sig, 8);
    put32(p + 8, 2);
    put_field(p + 12, tn_len, 56);
    put32(p + 20, flags);
    memcpy(p + 24, server_challenge, 8);
    put_field(p + 40, target_info_len, 56 + tn_len);
    memcpy(p + 48, our_version, 8);
    if (tn_len)
        memcpy(p + 56, tn, tn_len);
    if (target_info_len)
        memcpy(p + 56 + tn_len, target_info, target_info_len);
    cc__free(ctx, tn);
    return 0;
}

static int chal_av_fn(void *u, uint16_t id, const uint8_t *val, size_t len)
{
    struct cc__nt_challenge *c = u;
    if (id == CC__AV_TIMESTAMP) {
        if (len != 8 || c->have_timestamp)
            return CC_ERR_AUTH_TOKEN;
        c->have_timestamp = true;
        c->timestamp = get64(val);
    }
    return 0;
}

int cc__nt_parse_challenge(const uint8_t *msg, size_t len, struct cc__nt_challenge *c, char *detail, size_t dl)
{
    const uint8_t *d;
    size_t l, used;
    memset(c, 0, sizeof *c);
    int rc = check_header(msg, len, 2, 48, CC__NT_MAX_CHALLENGE, "CHALLENGE", detail, dl);
    if (rc)
        return rc;
    c->flags = get32(msg + 20);
    memcpy(c->server_challenge, msg + 24, 8);
    if ((rc = get_field(msg, len, 12, "CHALLENGE TargetName", &d, &l, NULL, detail, dl)) ||
        (rc = get_field(msg, len, 40, "CHALLENGE TargetInfo", &c->target_info, &c->target_info_len, NULL, detail, dl)))
        return rc;
    if (!(c->flags & CC__NTLM_NEGOTIATE_UNICODE)) {
        cc__fmt(detail, dl, "CHALLENGE NegotiateFlags lack NTLMSSP_NEGOTIATE_UNICODE (0x%08x)", (unsigned)c->flags);
        return CC_ERR_AUTH_TOKEN;
    }
    if (c->target_info_len == 0) {
        cc__fmt(detail, dl, "CHALLENGE has no TargetInfo, so the server does not offer NTLMv2");
        return CC_ERR_AUTH_TOKEN;
    }
    rc = av_walk(c->target_info, c->target_info_len, "CHALLENGE TargetInfo", chal_av_fn, c, &used, detail, dl);
    if (rc)
        return rc;
    c->target_info_len = used; /* ignore anything after MsvAvEOL */
    return 0;
}

/* ---- AUTHENTICATE ---- */
struct copy_av {
    const cc_context *ctx;
    cc__buf *out;
};
static int copy_av_fn(void *u, uint16_t id, const uint8_t *val, size_t len)
{
    struct copy_av *cp = u;
    /* ours replace whatever the server put there */
    if (id == CC__AV_FLAGS || id == CC__AV_CHANNEL_BINDINGS || id == CC__AV_TARGET_NAME)
        return 0;
    return av_put(cp->ctx, cp->out, id, val, len) ? CC_ERR_NOMEM : 0;
}

int cc__nt_build_authenticate(const cc_context *ctx, cc__buf *out, const struct cc__nt_auth_input *in, char *detail,
                              size_t dl)
{
    struct cc__nt_challenge c;
    cc__buf av = {0}, temp = {0};
    uint8_t *u16 = NULL, *d16 = NULL, *w16 = NULL;
    size_t u16_len = 0, d16_len = 0, w16_len = 0, used;
    uint8_t cchal[8], proof[16], sbk[16], mic[16], cbh[16] = {0};
    int rc = cc__nt_parse_challenge(in->challenge, in->challenge_len, &c, detail, dl);
    if (rc)
        return rc;
    /* client AV pairs: the server's, then MsvAvFlags (MIC present) and
     * MsvAvChannelBindings, then MsvAvEOL (MS-NLMP 3.1.5.1.2) */
    struct copy_av cp = {ctx, &av};
    rc = av_walk(c.target_info, c.target_info_len, "CHALLENGE TargetInfo", copy_av_fn, &cp, &used, detail, dl);
    if (rc)
        goto out;
    uint8_t flags_val[4];
    put32(flags_val, CC__AV_FLAG_MIC_PRESENT);
    if (in->cb && (rc = cc__nt_channel_binding_hash(in->cb, in->cb_len, cbh)))
        goto out;
    if ((rc = av_put(ctx, &av, CC__AV_FLAGS, flags_val, 4)) ||
        (rc = av_put(ctx, &av, CC__AV_CHANNEL_BINDINGS, cbh, 16)) || (rc = av_put(ctx, &av, CC__AV_EOL, NULL, 0)))
        goto out;
    if (in->client_challenge)
        memcpy(cchal, in->client_challenge, 8);
    else if (RAND_bytes(cchal, 8) != 1) {
        rc = CC_ERR_INTERNAL;
        cc__fmt(detail, dl, "RAND_bytes failed for the client challenge");
        goto out;
    }
    uint64_t ft = in->filetime ? in->filetime : c.have_timestamp ? c.timestamp : cc__nt_filetime_now();
    if ((rc = cc__nt_make_temp(ctx, &temp, ft, cchal, cc__buf_head(&av), cc__buf_size(&av))) ||
        (rc = cc__nt_proof(in->ntowfv2, c.server_challenge, cc__buf_head(&temp), cc__buf_size(&temp), proof)) ||
        (rc = cc__nt_session_base_key(in->ntowfv2, proof, sbk)))
        goto out;
    if ((rc = cc__nt_utf16_from_utf8(ctx, in->user, CC__NT_MAX_NAME_UNITS, &u16, &u16_len)) ||
        (rc = cc__nt_utf16_from_utf8(ctx, in->domain ? in->domain : "", CC__NT_MAX_NAME_UNITS, &d16, &d16_len)) ||
        (rc = cc__nt_utf16_from_utf8(ctx, in->workstation ? in->workstation : "", CC__NT_MAX_NAME_UNITS, &w16,
                                     &w16_len))) {
        cc__fmt(detail, dl, "user, domain or workstation name is not UTF-8 or longer than %d characters",
                CC__NT_MAX_NAME_UNITS);
        goto out;
    }
    size_t nt_len = 16 + cc__buf_size(&temp);
    size_t lm_off = 88, nt_off = lm_off + 24, d_off = nt_off + nt_len, u_off = d_off + d16_len, w_off = u_off + u16_len,
           k_off = w_off + w16_len, total = k_off;
    if (nt_len > 0xffff) {
        rc = CC_ERR_AUTH_TOKEN;
        cc__fmt(detail, dl, "CHALLENGE TargetInfo is too large for an NTLMv2 response");
        goto out;
    }
    size_t start = cc__buf_size(out);
    uint8_t *p = grow(ctx, out, total);
    if (!p) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    memset(p, 0, total);
    memcpy(p, sig, 8);
    put32(p + 8, 3);
    put_field(p + 12, 24, lm_off); /* LmChallengeResponse: Z(24), as the server sent a timestamp */
    put_field(p + 20, nt_len, nt_off);
    put_field(p + 28, d16_len, d_off);
    put_field(p + 36, u16_len, u_off);
    put_field(p + 44, w16_len, w_off);
    put_field(p + 52, 0, k_off);
    uint32_t flags = (c.flags & (NEG_FLAGS | CC__NTLM_NEGOTIATE_TARGET_INFO)) | CC__NTLM_NEGOTIATE_UNICODE |
                     CC__NTLM_NEGOTIATE_VERSION;
    put32(p + 60, flags);
    memcpy(p + 64, our_version, 8);
    memcpy(p + nt_off, proof, 16);
    memcpy(p + nt_off + 16, cc__buf_head(&temp), cc__buf_size(&temp));
    if (d16_len)
        memcpy(p + d_off, d16, d16_len);
    if (u16_len)
        memcpy(p + u_off, u16, u16_len);
    if (w16_len)
        memcpy(p + w_off, w16, w16_len);
    /* no key exchange: ExportedSessionKey = KeyExchangeKey = SessionBaseKey */
    p = cc__buf_head(out) + start;
    rc = cc__nt_mic(sbk, in->negotiate, in->negotiate_len, in->challenge, in->challenge_len, p, total, 72, mic);
    if (!rc)
        memcpy(p + 72, mic, 16);
out:
    cc__wipe(proof, sizeof proof);
    cc__wipe(sbk, sizeof sbk);
    cc__wipe(mic, sizeof mic);
    cc__buf_free(ctx, &av);
    cc__buf_free(ctx, &temp);
    cc__free(ctx, u16);
    cc__free(ctx, d16);
    cc__free(ctx, w16);
    return rc;
}

static int auth_av_fn(void *u, uint16_t id, const uint8_t *val, size_t len)
{
    struct cc__nt_authenticate *a = u;
    switch (id) {
    case CC__AV_FLAGS:
        if (len != 4 || a->have_av_flags)
            return CC_ERR_AUTH_TOKEN;
        a->have_av_flags = true;
        a->av_flags = get32(val);
        return 0;
    case CC__AV_CHANNEL_BINDINGS:
        if (len != 16 || a->have_cb)
            return CC_ERR_AUTH_TOKEN;
        a->have_cb = true;
        memcpy(a->cb_hash, val, 16);
        return 0;
    case CC__AV_TIMESTAMP:
        if (len != 8 || a->have_av_timestamp)
            return CC_ERR_AUTH_TOKEN;
        a->have_av_timestamp = true;
        a->av_timestamp = get64(val);
        return 0;
    default:
        return 0;
    }
}

/* An OEM name (MS-NLMP: "the OEM character set", a code page the peers agree on
 * out of band): printable ASCII only, which every OEM code page encodes alike;
 * widened into wide (UTF-16LE, for NTOWFv2) and copied into dst. */
static int get_oem_name(const uint8_t *msg, size_t len, size_t at, const char *name, const uint8_t **d, size_t *l,
                        uint8_t *wide, char *dst, char *detail, size_t dl)
{
    const uint8_t *o;
    size_t ol;
    int rc = get_field(msg, len, at, name, &o, &ol, NULL, detail, dl);
    if (rc)
        return rc;
    if (ol > CC__NT_MAX_NAME_UNITS) {
        cc__fmt(detail, dl, "%s field is %zu bytes, more than the %d allowed", name, ol, CC__NT_MAX_NAME_UNITS);
        return CC_ERR_AUTH_TOKEN;
    }
    for (size_t i = 0; i < ol; i++) {
        if (o[i] < 0x20 || o[i] > 0x7e) {
            cc__fmt(detail, dl,
                    "%s field is OEM text (the CHALLENGE chose NTLMSSP_NEGOTIATE_OEM) with byte 0x%02x at %zu: "
                    "only printable ASCII is accepted in OEM names, as the code page is not known; "
                    "use a console that offers NTLMSSP_NEGOTIATE_UNICODE",
                    name, o[i], i);
            return CC_ERR_AUTH_TOKEN;
        }
        wide[2 * i] = o[i], wide[2 * i + 1] = 0;
        dst[i] = (char)o[i];
    }
    dst[ol] = '\0';
    *d = ol ? wide : NULL;
    *l = 2 * ol;
    return 0;
}

static int get_name(const uint8_t *msg, size_t len, size_t at, const char *name, const uint8_t **d, size_t *l,
                    char *dst, char *detail, size_t dl)
{
    int rc = get_field(msg, len, at, name, d, l, NULL, detail, dl);
    if (rc)
        return rc;
    if (*l > CC__NT_MAX_NAME_UNITS * 2) {
        cc__fmt(detail, dl, "%s field is %zu bytes, more than the %d allowed", name, *l, CC__NT_MAX_NAME_UNITS * 2);
        return CC_ERR_AUTH_TOKEN;
    }
    if (cc__nt_utf8_from_utf16(*d, *l, dst, CC__NT_NAME_BUF) != 0) {
        cc__fmt(detail, dl,
                "%s field is not valid UTF-16 text (odd length, unpaired surrogate or "
                "control character)",
                name);
        return CC_ERR_AUTH_TOKEN;
    }
    return 0;
}

int cc__nt_parse_authenticate(const uint8_t *msg, size_t len, uint32_t charset, struct cc__nt_authenticate *a,
                              char *detail, size_t dl)
{
    size_t used, min_off = len, off;
    const uint8_t *d;
    size_t l;
    memset(a, 0, sizeof *a);
    int rc = check_header(msg, len, 3, 64, CC__NT_MAX_AUTHENTICATE, "AUTHENTICATE", detail, dl);
    if (rc)
        return rc;
    a->flags = get32(msg + 60);
    static const struct {
        size_t at;
        const char *name;
    } fields[6] = {{12, "AUTHENTICATE LmChallengeResponse"}, {20, "AUTHENTICATE NtChallengeResponse"},
                   {28, "AUTHENTICATE DomainName"},          {36, "AUTHENTICATE UserName"},
                   {44, "AUTHENTICATE Workstation"},         {52, "AUTHENTICATE EncryptedRandomSessionKey"}};
    for (int i = 0; i < 6; i++) {
        if ((rc = get_field(msg, len, fields[i].at, fields[i].name, &d, &l, &off, detail, dl)))
            return rc;
        if (l && off < min_off)
            min_off = off;
        if (l && off < 64) {
            cc__fmt(detail, dl, "%s field overlaps the message header (offset %zu)", fields[i].name, off);
            return CC_ERR_AUTH_TOKEN;
        }
    }
    /* The MIC sits after the Version field when the payload leaves room. */
    a->mic_offset = (min_off >= 88 && len >= 88) ? 72 : 0;
    bool oem = charset != CC__NTLM_NEGOTIATE_UNICODE;
    if (!oem && !(a->flags & CC__NTLM_NEGOTIATE_UNICODE)) {
        cc__fmt(detail, dl,
                "AUTHENTICATE NegotiateFlags lack NTLMSSP_NEGOTIATE_UNICODE (0x%08x), which the CHALLENGE chose",
                (unsigned)a->flags);
        return CC_ERR_AUTH_TOKEN;
    }
    if (oem && (a->flags & (CC__NTLM_NEGOTIATE_UNICODE | CC__NTLM_NEGOTIATE_OEM)) != CC__NTLM_NEGOTIATE_OEM) {
        cc__fmt(detail, dl,
                "AUTHENTICATE NegotiateFlags (0x%08x) do not say NTLMSSP_NEGOTIATE_OEM alone, which the CHALLENGE "
                "chose",
                (unsigned)a->flags);
        return CC_ERR_AUTH_TOKEN;
    }
    get_field(msg, len, 12, "", &a->lm, &a->lm_len, NULL, detail, dl);
    get_field(msg, len, 20, "", &a->nt, &a->nt_len, NULL, detail, dl);
    get_field(msg, len, 52, "", &a->enc_key, &a->enc_key_len, NULL, detail, dl);
    if (oem) {
        if ((rc = get_oem_name(msg, len, 28, "AUTHENTICATE DomainName", &a->domain16, &a->domain16_len, a->oem16[0],
                               a->domain, detail, dl)) ||
            (rc = get_oem_name(msg, len, 36, "AUTHENTICATE UserName", &a->user16, &a->user16_len, a->oem16[1], a->user,
                               detail, dl)) ||
            (rc = get_oem_name(msg, len, 44, "AUTHENTICATE Workstation", &a->workstation16, &a->workstation16_len,
                               a->oem16[2], a->workstation, detail, dl)))
            return rc;
    } else if ((rc = get_name(msg, len, 28, "AUTHENTICATE DomainName", &a->domain16, &a->domain16_len, a->domain,
                              detail, dl)) ||
               (rc =
                    get_name(msg, len, 36, "AUTHENTICATE UserName", &a->user16, &a->user16_len, a->user, detail, dl)) ||
               (rc = get_name(msg, len, 44, "AUTHENTICATE Workstation", &a->workstation16, &a->workstation16_len,
                              a->workstation, detail, dl)))
        return rc;
    if (a->user[0] == '\0') {
        cc__fmt(detail, dl, "AUTHENTICATE UserName is empty (anonymous logon is not accepted)");
        return CC_ERR_AUTH_TOKEN;
    }
    if (strpbrk(a->user, "\\:/") || strpbrk(a->domain, "\\:/")) {
        cc__fmt(detail, dl, "AUTHENTICATE UserName or DomainName contains '\\', ':' or '/'");
        return CC_ERR_AUTH_TOKEN;
    }
    if (a->nt_len > CC__NT_MAX_NT_RESPONSE) {
        cc__fmt(detail, dl, "AUTHENTICATE NtChallengeResponse is %zu bytes, more than the %d allowed", a->nt_len,
                CC__NT_MAX_NT_RESPONSE);
        return CC_ERR_AUTH_TOKEN;
    }
    if (a->nt_len < CC__NT_MIN_NT_RESPONSE) {
        cc__fmt(detail, dl, "AUTHENTICATE NtChallengeResponse is %zu bytes: %s", a->nt_len,
                a->nt_len == 24 ? "an NTLMv1 response, which is not accepted" : "too short for an NTLMv2 response");
        return CC_ERR_AUTH_TOKEN;
    }
    const uint8_t *blob = a->nt + 16;
    if (blob[0] != 1 || blob[1] != 1) {
        cc__fmt(detail, dl, "AUTHENTICATE NtChallengeResponse has RespType %u/HiRespType %u, not 1/1", blob[0],
                blob[1]);
        return CC_ERR_AUTH_TOKEN;
    }
    a->client_time = get64(blob + 8);
    memcpy(a->client_challenge, blob + 16, 8);
    a->av = blob + 28;
    rc = av_walk(a->av, a->nt_len - 16 - 28, "AUTHENTICATE NtChallengeResponse AvPairs", auth_av_fn, a, &used, detail,
                 dl);
    if (rc)
        return rc;
    a->av_len = used;
    return 0;
}

int cc__nt_verify_proof(const cc_context *ctx, const uint8_t nt_hash[16], const struct cc__nt_authenticate *a,
                        const uint8_t server_challenge[8], const uint8_t *neg, size_t neg_len, const uint8_t *chal,
                        size_t chal_len, const uint8_t *auth, size_t auth_len, bool require_mic, char *detail,
                        size_t dl)
{
    uint8_t key[16], proof[16], sbk[16], mic[16];
    bool want_mic = require_mic || (a->av_flags & CC__AV_FLAG_MIC_PRESENT);
    int rc = cc__nt_ntowfv2_from_hash(ctx, nt_hash, a->user16, a->user16_len, a->domain16, a->domain16_len, key);
    if (rc)
        goto out;
    if ((rc = cc__nt_proof(key, server_challenge, a->nt + 16, a->nt_len - 16, proof)))
        goto out;
    if (cc__ct_memcmp(proof, a->nt, 16) != 0) {
        rc = CC_ERR_AUTH_BAD_CREDENTIALS;
        cc__fmt(detail, dl, "NTProofStr does not match: wrong password for %s\\%s", a->domain, a->user);
        goto out;
    }
    if ((rc = cc__nt_session_base_key(key, proof, sbk)))
        goto out;
    if (a->flags & CC__NTLM_NEGOTIATE_KEY_EXCH) {
        if (a->enc_key_len != 16) {
            rc = CC_ERR_AUTH_TOKEN;
            cc__fmt(detail, dl,
                    "AUTHENTICATE EncryptedRandomSessionKey is %zu bytes, not 16, with "
                    "NTLMSSP_NEGOTIATE_KEY_EXCH",
                    a->enc_key_len);
            goto out;
        }
        uint8_t k[16];
        memcpy(k, a->enc_key, 16);
        cc__nt_rc4(sbk, 16, k, 16); /* ExportedSessionKey = RC4(KeyExchangeKey, ...) */
        memcpy(sbk, k, 16);
        cc__wipe(k, sizeof k);
    }
    if (want_mic) {
        if (!(a->av_flags & CC__AV_FLAG_MIC_PRESENT)) {
            rc = CC_ERR_AUTH_TOKEN;
            cc__fmt(detail, dl, "AUTHENTICATE MsvAvFlags do not announce a MIC, which is required");
            goto out;
        }
        if (!a->mic_offset) {
            rc = CC_ERR_AUTH_TOKEN;
            cc__fmt(detail, dl, "AUTHENTICATE MIC: MsvAvFlags announce one but the header has no room");
            goto out;
        }
        if ((rc = cc__nt_mic(sbk, neg, neg_len, chal, chal_len, auth, auth_len, a->mic_offset, mic)))
            goto out;
        if (cc__ct_memcmp(mic, auth + a->mic_offset, 16) != 0) {
            rc = CC_ERR_AUTH_BAD_CREDENTIALS;
            cc__fmt(detail, dl, "AUTHENTICATE MIC does not match: a message of the exchange was altered");
            goto out;
        }
    }
    rc = 0;
out:
    if (rc == CC_ERR_AUTH_UNAVAILABLE)
        cc__fmt(detail, dl, "OpenSSL refuses HMAC-MD5 (a FIPS-only configuration?)");
    cc__wipe(key, sizeof key);
    cc__wipe(proof, sizeof proof);
    cc__wipe(sbk, sizeof sbk);
    cc__wipe(mic, sizeof mic);
    return rc;
}
