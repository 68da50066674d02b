/* ntcrypto.c -- the NTLMv2 arithmetic of MS-NLMP 3.3.2: MD4 (our own), HMAC-MD5
 * and MD5 through OpenSSL 3, UTF-16 conversion, NTOWFv2, NTProofStr, MIC, channel binding hash. */
#include "nt.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>
#include <time.h>

/* ---- MD4, RFC 1320 ----
 * Our own rather than OpenSSL's: MD4 lives in OpenSSL 3's legacy provider,
 * which may be missing or forbidden (FIPS builds, minimal containers), and
 * loading it must never touch the host's default library context. MD4 here
 * only turns a password into the NT hash the whole NTLM world agreed on. */
struct md4 {
    uint32_t h[4];
    uint64_t total;
    uint8_t block[64];
    size_t used;
};

static uint32_t rol32(uint32_t x, unsigned s)
{
    return (x << s) | (x >> (32 - s));
}

static void md4_block(struct md4 *m, const uint8_t *p)
{
    uint32_t x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = m->h[0], b = m->h[1], c = m->h[2], d = m->h[3];
    static const unsigned s1[4] = {3, 7, 11, 19}, s2[4] = {3, 5, 9, 13}, s3[4] = {3, 9, 11, 15};
    static const int k2[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
    static const int k3[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
    for (int i = 0; i < 16; i++) {
        uint32_t f = (b & c) | (~b & d);
        uint32_t t = rol32(a + f + x[i], s1[i % 4]);
        a = d, d = c, c = b, b = t;
    }
    for (int i = 0; i < 16; i++) {
        uint32_t g = (b & c) | (b & d) | (c & d);
        uint32_t t = rol32(a + g + x[k2[i]] + 0x5a827999u, s2[i % 4]);
        a = d, d = c, c = b, b = t;
    }
    for (int i = 0; i < 16; i++) {
        uint32_t h = b ^ c ^ d;
        uint32_t t = rol32(a + h + x[k3[i]] + 0x6ed9eba1u, s3[i % 4]);
        a = d, d = c, c = b, b = t;
    }
    m->h[0] += a, m->h[1] += b, m->h[2] += c, m->h[3] += d;
    cc__wipe(x, sizeof x);
}

static void md4_update(struct md4 *m, const uint8_t *p, size_t n)
{
    m->total += n;
    while (n > 0) {
        size_t take = 64 - m->used;
        if (take > n)
            take = n;
        memcpy(m->block + m->used, p, take);
        m->used += take, p += take, n -= take;
        if (m->used == 64) {
            md4_block(m, m->block);
            m->used = 0;
        }
    }
}

void cc__nt_md4(const uint8_t *data, size_t len, uint8_t out[16])
{
    struct md4 m = {{0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u}, 0, {0}, 0};
    md4_update(&m, data, len);
    uint64_t bits = m.total * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (m.used < 56) ? 56 - m.used : 120 - m.used;
    for (int i = 0; i < 8; i++)
        pad[padlen + i] = (uint8_t)(bits >> (8 * i));
    md4_update(&m, pad, padlen + 8);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(m.h[i] >> (8 * j));
    cc__wipe(&m, sizeof m);
}

/* ---- HMAC-MD5 and MD5 through OpenSSL 3 (the default provider) ---- */
int cc__nt_hmac_md5(const uint8_t *key, size_t key_len, size_t n, const uint8_t *const *parts, const size_t *lens,
                    uint8_t out[16])
{
    int rc = CC_ERR_AUTH_UNAVAILABLE;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *mc = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char digest[] = "MD5";
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                            OSSL_PARAM_construct_end()};
    size_t outl = 0;
    if (!mc || EVP_MAC_init(mc, key, key_len, params) != 1)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (lens[i] && EVP_MAC_update(mc, parts[i], lens[i]) != 1)
            goto out;
    if (EVP_MAC_final(mc, out, &outl, 16) != 1 || outl != 16)
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(mc);
    EVP_MAC_free(mac);
    return rc;
}

int cc__nt_md5(const uint8_t *data, size_t len, uint8_t out[16])
{
    EVP_MD *md = EVP_MD_fetch(NULL, "MD5", NULL);
    unsigned int outl = 0;
    int ok = md && EVP_Digest(data, len, out, &outl, md, NULL) == 1 && outl == 16;
    EVP_MD_free(md);
    return ok ? 0 : CC_ERR_AUTH_UNAVAILABLE;
}

void cc__nt_rc4(const uint8_t *key, size_t key_len, uint8_t *data, size_t len)
{
    uint8_t s[256];
    for (int i = 0; i < 256; i++)
        s[i] = (uint8_t)i;
    for (int i = 0, j = 0; i < 256; i++) {
        j = (j + s[i] + key[(size_t)i % key_len]) & 0xff;
        uint8_t t = s[i];
        s[i] = s[j], s[j] = t;
    }
    for (size_t k = 0, i = 0, j = 0; k < len; k++) {
        i = (i + 1) & 0xff;
        j = (j + s[i]) & 0xff;
        uint8_t t = s[i];
        s[i] = s[j], s[j] = t;
        data[k] ^= s[(s[i] + s[j]) & 0xff];
    }
    cc__wipe(s, sizeof s);
}

/* ---- UTF-8 / UTF-16LE ---- */
static int utf8_next(const unsigned char **pp, uint32_t *cp)
{
    const unsigned char *p = *pp;
    uint32_t c = p[0];
    int n;
    if (c < 0x80) {
        *cp = c, *pp = p + 1;
        return 0;
    } else if ((c & 0xe0) == 0xc0)
        n = 1, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        n = 2, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        n = 3, c &= 0x07;
    else
        return -1;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -1;
        c = (c << 6) | (p[i] & 0x3f);
    }
    /* no overlong forms, no surrogates, nothing past U+10FFFF */
    if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) || (n == 3 && c < 0x10000) || c > 0x10ffff ||
        (c >= 0xd800 && c <= 0xdfff))
        return -1;
    *cp = c, *pp = p + n + 1;
    return 0;
}

int cc__nt_utf16_from_utf8(const cc_context *ctx, const char *s, size_t max_units, uint8_t **out, size_t *out_len)
{
    size_t slen = strlen(s);
    *out = NULL, *out_len = 0;
    if (slen > max_units * 3)
        return CC_ERR_INVALID;
    uint8_t *buf = cc__malloc(ctx, slen * 2 + 2); /* every code point of n bytes needs <= n units */
    if (!buf)
        return CC_ERR_NOMEM;
    const unsigned char *p = (const unsigned char *)s;
    size_t units = 0;
    while (*p) {
        uint32_t c;
        if (utf8_next(&p, &c) != 0 || units + (c >= 0x10000 ? 2 : 1) > max_units) {
            cc__wipe(buf, slen * 2 + 2);
            cc__free(ctx, buf);
            return CC_ERR_INVALID;
        }
        if (c >= 0x10000) {
            c -= 0x10000;
            uint16_t hi = (uint16_t)(0xd800 + (c >> 10)), lo = (uint16_t)(0xdc00 + (c & 0x3ff));
            buf[2 * units] = (uint8_t)hi, buf[2 * units + 1] = (uint8_t)(hi >> 8), units++;
            buf[2 * units] = (uint8_t)lo, buf[2 * units + 1] = (uint8_t)(lo >> 8), units++;
        } else {
            buf[2 * units] = (uint8_t)c, buf[2 * units + 1] = (uint8_t)(c >> 8), units++;
        }
    }
    *out = buf, *out_len = units * 2;
    return 0;
}

int cc__nt_utf8_from_utf16(const uint8_t *s, size_t len, char *dst, size_t cap)
{
    size_t o = 0;
    if (len % 2 != 0 || cap == 0)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        uint32_t c = (uint32_t)s[i] | (uint32_t)s[i + 1] << 8;
        if (c >= 0xd800 && c <= 0xdbff) {
            if (i + 3 >= len)
                return -1;
            uint32_t lo = (uint32_t)s[i + 2] | (uint32_t)s[i + 3] << 8;
            if (lo < 0xdc00 || lo > 0xdfff)
                return -1;
            c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
            i += 2;
        } else if (c >= 0xdc00 && c <= 0xdfff) {
            return -1;
        }
        if (c < 0x20 || c == 0x7f)
            return -1;
        uint8_t tmp[4];
        size_t n;
        if (c < 0x80)
            tmp[0] = (uint8_t)c, n = 1;
        else if (c < 0x800)
            tmp[0] = (uint8_t)(0xc0 | (c >> 6)), tmp[1] = (uint8_t)(0x80 | (c & 0x3f)), n = 2;
        else if (c < 0x10000)
            tmp[0] = (uint8_t)(0xe0 | (c >> 12)), tmp[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)),
            tmp[2] = (uint8_t)(0x80 | (c & 0x3f)), n = 3;
        else
            tmp[0] = (uint8_t)(0xf0 | (c >> 18)), tmp[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f)),
            tmp[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)), tmp[3] = (uint8_t)(0x80 | (c & 0x3f)), n = 4;
        if (o + n + 1 > cap)
            return -1;
        memcpy(dst + o, tmp, n);
        o += n;
    }
    dst[o] = '\0';
    return 0;
}

static uint16_t upper16(uint16_t c)
{
    if (c >= 'a' && c <= 'z')
        return (uint16_t)(c - 0x20);
    if (c < 0x80)
        return c;
    if ((c >= 0xe0 && c <= 0xfe && c != 0xf7) || (c >= 0x3b1 && c <= 0x3cb && c != 0x3c2) || (c >= 0x430 && c <= 0x44f))
        return (uint16_t)(c - 0x20);
    if (c == 0xff)
        return 0x178;
    if (c >= 0x450 && c <= 0x45f)
        return (uint16_t)(c - 0x50);
    /* Latin Extended-A pairs capital/small as even/odd, except 0x138 (kra)
     * and the 0x139..0x148 and 0x179..0x17e runs, which pair odd/even. */
    if (c >= 0x100 && c <= 0x137 && (c & 1))
        return (uint16_t)(c - 1);
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) && !(c & 1))
        return (uint16_t)(c - 1);
    if (c >= 0x14a && c <= 0x177 && (c & 1))
        return (uint16_t)(c - 1);
    return c;
}

void cc__nt_utf16_upper(uint8_t *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        uint16_t c = upper16((uint16_t)(s[i] | s[i + 1] << 8));
        s[i] = (uint8_t)c, s[i + 1] = (uint8_t)(c >> 8);
    }
}

/* ---- NTLMv2 ---- */
int cc__nt_hash_password(const cc_context *ctx, const char *password, uint8_t out[16])
{
    uint8_t *p16;
    size_t p16_len;
    /* 256 code units is Windows' limit on a password too. */
    int rc = cc__nt_utf16_from_utf8(ctx, password, CC__NT_MAX_NAME_UNITS, &p16, &p16_len);
    if (rc)
        return rc;
    cc__nt_md4(p16, p16_len, out);
    cc__wipe(p16, p16_len);
    cc__free(ctx, p16);
    return 0;
}

int cc__nt_ntowfv2_from_hash(const cc_context *ctx, const uint8_t nt_hash[16], const uint8_t *user16, size_t user16_len,
                             const uint8_t *domain16, size_t domain16_len, uint8_t out[16])
{
    uint8_t *up = cc__malloc(ctx, user16_len + 1);
    if (!up)
        return CC_ERR_NOMEM;
    if (user16_len)
        memcpy(up, user16, user16_len);
    cc__nt_utf16_upper(up, user16_len);
    const uint8_t *parts[2] = {up, domain16};
    size_t lens[2] = {user16_len, domain16_len};
    int rc = cc__nt_hmac_md5(nt_hash, 16, 2, parts, lens, out);
    cc__wipe(up, user16_len);
    cc__free(ctx, up);
    return rc;
}

int cc__nt_ntowfv2(const cc_context *ctx, const char *password, const char *user, const char *domain, uint8_t out[16])
{
    uint8_t h[16], *u16 = NULL, *d16 = NULL;
    size_t u16_len = 0, d16_len = 0;
    int rc = cc__nt_hash_password(ctx, password, h);
    if (!rc)
        rc = cc__nt_utf16_from_utf8(ctx, user, CC__NT_MAX_NAME_UNITS, &u16, &u16_len);
    if (!rc)
        rc = cc__nt_utf16_from_utf8(ctx, domain ? domain : "", CC__NT_MAX_NAME_UNITS, &d16, &d16_len);
    if (!rc)
        rc = cc__nt_ntowfv2_from_hash(ctx, h, u16, u16_len, d16, d16_len, out);
    cc__wipe(h, sizeof h);
    cc__free(ctx, u16);
    cc__free(ctx, d16);
    return rc;
}

int cc__nt_make_temp(const cc_context *ctx, cc__buf *out, uint64_t filetime, const uint8_t client_challenge[8],
                     const uint8_t *av, size_t av_len)
{
    uint8_t head[28] = {1, 1};
    for (int i = 0; i < 8; i++)
        head[8 + i] = (uint8_t)(filetime >> (8 * i));
    memcpy(head + 16, client_challenge, 8);
    static const uint8_t z4[4] = {0};
    int rc = cc__buf_append(ctx, out, head, sizeof head);
    if (!rc && av_len)
        rc = cc__buf_append(ctx, out, av, av_len);
    if (!rc)
        rc = cc__buf_append(ctx, out, z4, 4);
    return rc;
}

int cc__nt_proof(const uint8_t ntowfv2[16], const uint8_t server_challenge[8], const uint8_t *temp, size_t temp_len,
                 uint8_t proof[16])
{
    const uint8_t *parts[2] = {server_challenge, temp};
    size_t lens[2] = {8, temp_len};
    return cc__nt_hmac_md5(ntowfv2, 16, 2, parts, lens, proof);
}

int cc__nt_session_base_key(const uint8_t ntowfv2[16], const uint8_t proof[16], uint8_t out[16])
{
    const uint8_t *parts[1] = {proof};
    size_t lens[1] = {16};
    return cc__nt_hmac_md5(ntowfv2, 16, 1, parts, lens, out);
}

int cc__nt_channel_binding_hash(const uint8_t *cb, size_t cb_len, uint8_t out[16])
{
    static const char prefix[] = "tls-exporter:";
    uint8_t buf[20 + 13 + 64];
    size_t app_len = 13 + cb_len;
    if (cb_len > 64)
        return CC_ERR_INVALID;
    memset(buf, 0, 16); /* initiator and acceptor address types and lengths: none */
    for (int i = 0; i < 4; i++)
        buf[16 + i] = (uint8_t)(app_len >> (8 * i));
    memcpy(buf + 20, prefix, 13);
    memcpy(buf + 33, cb, cb_len);
    return cc__nt_md5(buf, 20 + app_len, out);
}

int cc__nt_mic(const uint8_t key[16], const uint8_t *neg, size_t neg_len, const uint8_t *chal, size_t chal_len,
               const uint8_t *auth, size_t auth_len, size_t mic_offset, uint8_t out[16])
{
    static const uint8_t z16[16] = {0};
    if (mic_offset + 16 > auth_len)
        return CC_ERR_INVALID;
    const uint8_t *parts[5] = {neg, chal, auth, z16, auth + mic_offset + 16};
    size_t lens[5] = {neg_len, chal_len, mic_offset, 16, auth_len - mic_offset - 16};
    return cc__nt_hmac_md5(key, 16, 5, parts, lens, out);
}

uint64_t cc__nt_filetime_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec + 11644473600ull) * 10000000ull + (uint64_t)ts.tv_nsec / 100;
}
