/* frame.c -- encodes and decodes the preamble, frame headers and payload
 * fields; nothing here trusts a length it has not checked. */
#include "frame.h"

#include <string.h>

static const uint8_t magic[4] = {'C', 'C', 'P', 'Y'};

void cc__preamble_write(uint8_t out[CC__PREAMBLE_LEN])
{
    memcpy(out, magic, 4);
    out[4] = CC__PROTO_MIN;
    out[5] = CC__PROTO_MAX;
    out[6] = 0;
    out[7] = CC__PREAMBLE_FLAG_TLS;
}

int cc__preamble_check(const uint8_t in[CC__PREAMBLE_LEN], char *detail, size_t n)
{
    if (memcmp(in, magic, 4) != 0) {
        char seen[80];
        cc__printable(seen, sizeof seen, in, CC__PREAMBLE_LEN);
        cc__fmt(detail, n,
                "expected the Carbon Copy preamble \"CCPY\", got \"%s\"; is something else "
                "listening on this port?",
                seen);
        return CC_ERR_BAD_MAGIC;
    }
    int lo = in[4], hi = in[5];
    int v = hi < CC__PROTO_MAX ? hi : CC__PROTO_MAX;
    if (lo > hi || v < lo || v < CC__PROTO_MIN) {
        cc__fmt(detail, n, "the peer speaks protocol versions %d..%d, this library %d..%d; upgrade the older side", lo,
                hi, CC__PROTO_MIN, CC__PROTO_MAX);
        return CC_ERR_BAD_VERSION;
    }
    if (!(in[7] & CC__PREAMBLE_FLAG_TLS)) {
        cc__fmt(detail, n, "the peer does not offer TLS (preamble flags 0x%02x%02x)", in[6], in[7]);
        return CC_ERR_BAD_VERSION;
    }
    return v;
}

void cc__frame_hdr_write(uint8_t o[CC__FRAME_HDR], const cc__frame_hdr *h)
{
    o[0] = h->type;
    o[1] = h->flags;
    o[2] = (uint8_t)(h->channel >> 8);
    o[3] = (uint8_t)h->channel;
    o[4] = (uint8_t)(h->len >> 24);
    o[5] = (uint8_t)(h->len >> 16);
    o[6] = (uint8_t)(h->len >> 8);
    o[7] = (uint8_t)h->len;
}

const char *cc__frame_name(int type)
{
    static const char *const names[] = {"?",    "HELLO", "LICENSE", "AUTH_TOKEN", "AUTH_RESULT",
                                        "DATA", "PING",  "PONG",    "CLOSE"};
    return type > 0 && type <= CC__F_CLOSE ? names[type] : "unknown";
}

int cc__frame_hdr_parse(const uint8_t *p, size_t avail, uint32_t max_len, cc__frame_hdr *h, char *detail, size_t n)
{
    if (avail < CC__FRAME_HDR)
        return 0;
    h->type = p[0];
    h->flags = p[1];
    h->channel = (uint16_t)(p[2] << 8 | p[3]);
    h->len = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    if (h->type < CC__F_HELLO || h->type > CC__F_CLOSE) {
        cc__fmt(detail, n, "unknown frame type %u", h->type);
        return CC_ERR_BAD_FRAME;
    }
    if (h->len > max_len) {
        cc__fmt(detail, n, "%s frame of %u bytes exceeds the limit of %u bytes", cc__frame_name(h->type), h->len,
                max_len);
        return CC_ERR_FRAME_TOO_LARGE;
    }
    return 1;
}

static const uint8_t *take(cc__rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint8_t cc__rd_u8(cc__rd *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t cc__rd_u16(cc__rd *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t cc__rd_u32(cc__rd *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

uint64_t cc__rd_u64(cc__rd *r)
{
    uint64_t hi = cc__rd_u32(r);
    return hi << 32 | cc__rd_u32(r);
}

void cc__rd_str(cc__rd *r, char *dst, size_t size)
{
    size_t len = cc__rd_u16(r);
    const uint8_t *p = take(r, len);
    if (!p || len >= size || memchr(p, 0, len)) {
        r->bad = true;
        if (size)
            dst[0] = 0;
        return;
    }
    memcpy(dst, p, len);
    dst[len] = 0;
}

const uint8_t *cc__rd_blob(cc__rd *r, size_t *len)
{
    *len = cc__rd_u32(r);
    const uint8_t *p = take(r, *len);
    if (!p)
        *len = 0;
    return p;
}

static void put(cc__wr *w, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (w->bad || w->cap - w->len < n) {
        w->bad = true;
        return;
    }
    memcpy(w->p + w->len, p, n);
    w->len += n;
}

void cc__wr_u8(cc__wr *w, uint8_t v)
{
    put(w, &v, 1);
}
void cc__wr_u16(cc__wr *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}
void cc__wr_u32(cc__wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}
void cc__wr_u64(cc__wr *w, uint64_t v)
{
    cc__wr_u32(w, (uint32_t)(v >> 32));
    cc__wr_u32(w, (uint32_t)v);
}
void cc__wr_str(cc__wr *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 0xffff) {
        w->bad = true;
        return;
    }
    cc__wr_u16(w, (uint16_t)n);
    put(w, s, n);
}
void cc__wr_blob(cc__wr *w, const uint8_t *p, size_t n)
{
    if (n > 0xffffffffu) {
        w->bad = true;
        return;
    }
    cc__wr_u32(w, (uint32_t)n);
    put(w, p, n);
}
