/* frame.c -- encodes and decodes the preamble, frame headers and every frame
 * type's payload; nothing here trusts a length or a byte it has not checked. */
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
    static const char *const names[] = {"?",    "HELLO", "LICENSE", "AUTH_TOKEN",   "AUTH_RESULT", "DATA",
                                        "PING", "PONG",  "CLOSE",   "CONSENT_WAIT", "WINDOW"};
    return type > 0 && type <= CC__F_LAST ? names[type] : "unknown";
}

int cc__frame_hdr_parse(const uint8_t *p, size_t avail, uint32_t max_len, cc__frame_hdr *h, char *detail, size_t n)
{
    if (avail < CC__FRAME_HDR)
        return 0;
    h->type = p[0];
    h->flags = p[1];
    h->channel = (uint16_t)(p[2] << 8 | p[3]);
    h->len = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    if (h->type < CC__F_HELLO || h->type > CC__F_LAST) {
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

/* ------------------------------------------------------------ text rules */

/* Length of the valid UTF-8 sequence at p (at most `left` bytes), 0 if there is none. */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
    uint8_t c = p[0];
    size_t n;
    uint32_t min, v;
    if (c < 0x80)
        return c ? 1 : 0;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80, v = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800, v = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000, v = c & 0x07;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return n;
}

bool cc__utf8_valid(const uint8_t *p, size_t len)
{
    for (size_t i = 0, n; i < len; i += n)
        if (!(n = utf8_seq(p + i, len - i)))
            return false;
    return true;
}

void cc__text_copy(char *dst, size_t size, const char *src)
{
    const uint8_t *s = (const uint8_t *)(src ? src : "");
    size_t o = 0, left = strlen((const char *)s);
    if (!size)
        return;
    while (left) {
        size_t n = utf8_seq(s, left);
        const uint8_t *from = n ? s : (const uint8_t *)"?";
        size_t out = n ? n : 1;
        if (o + out >= size)
            break;
        memcpy(dst + o, from, out);
        o += out;
        s += n ? n : 1;
        left -= n ? n : 1;
    }
    dst[o] = 0;
}

static bool name8_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* --------------------------------------------------------------- reading */

/* Payload reader: every read checks bounds; `bad` sticks once set. */
typedef struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
    const char *field, *problem; /* the first problem met, for the detail */
} rd;

/* Records the first problem a parser met, for the detail: "<field> <problem>". */
static void rd_fail(rd *r, const char *field, const char *problem)
{
    if (!r->bad) {
        r->field = field;
        r->problem = problem;
    }
    r->bad = true;
}

static const uint8_t *take(rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        rd_fail(r, "the payload", "ends inside a field");
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint8_t rd_u8(rd *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

static uint16_t rd_u16(rd *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

static uint32_t rd_u32(rd *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

/* str16 into dst: fits, no NUL, UTF-8. */
static void rd_text(rd *r, char *dst, size_t size, const char *field)
{
    size_t len = rd_u16(r);
    const uint8_t *p = take(r, len);
    if (size)
        dst[0] = 0;
    if (!p)
        return;
    if (len >= size)
        rd_fail(r, field, "is too long");
    else if (memchr(p, 0, len))
        rd_fail(r, field, "holds a NUL byte");
    else if (!cc__utf8_valid(p, len))
        rd_fail(r, field, "is not valid UTF-8");
    if (r->bad)
        return;
    memcpy(dst, p, len);
    dst[len] = 0;
}

static const uint8_t *rd_blob(rd *r, size_t *len)
{
    *len = rd_u32(r);
    const uint8_t *p = take(r, *len);
    if (!p)
        *len = 0;
    return p;
}

/* name8 into dst (CC__MECH_MAX + 1 bytes): 1..32 of [a-z0-9-]. */
static void rd_name8(rd *r, char dst[CC__MECH_MAX + 1])
{
    size_t len = rd_u8(r);
    dst[0] = 0;
    if (!r->bad && (len == 0 || len > CC__MECH_MAX)) {
        rd_fail(r, "a mechanism name", "is not 1..32 bytes long");
        return;
    }
    const uint8_t *p = take(r, len);
    if (!p)
        return;
    for (size_t i = 0; i < len; i++)
        if (!name8_char(p[i])) {
            rd_fail(r, "a mechanism name", "is not made of [a-z0-9-]");
            return;
        }
    memcpy(dst, p, len);
    dst[len] = 0;
}

/* CC_OK, or CC_ERR_BAD_FRAME with "malformed TYPE frame: <field> <problem>". */
static int rd_end(const rd *r, int type, char *detail, size_t dn)
{
    if (!r->bad)
        return CC_OK;
    cc__fmt(detail, dn, "malformed %s frame: %s %s", cc__frame_name(type), r->field, r->problem);
    return CC_ERR_BAD_FRAME;
}

/* --------------------------------------------------------------- writing */

/* Payload writer; with p == NULL it only counts, so a packer runs once to size its frame. */
typedef struct wr {
    uint8_t *p;
    size_t len, cap;
    bool bad;
} wr;

static void put(wr *w, const void *p, size_t n)
{
    if (n == 0 || w->bad)
        return;
    if (w->cap - w->len < n) {
        w->bad = true;
        return;
    }
    if (w->p)
        memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void wr_u8(wr *w, uint8_t v)
{
    put(w, &v, 1);
}
static void wr_u16(wr *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}
static void wr_u32(wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}
static void wr_str(wr *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 0xffff) {
        w->bad = true;
        return;
    }
    wr_u16(w, (uint16_t)n);
    put(w, s, n);
}
static void wr_blob(wr *w, const uint8_t *p, size_t n)
{
    if (n > 0xffffffffu) {
        w->bad = true;
        return;
    }
    wr_u32(w, (uint32_t)n);
    put(w, p, n);
}

/* str16 as the receiver's field of `size` bytes accepts it. */
static void wr_text(wr *w, const char *s, size_t size)
{
    char t[CC__DETAIL_MAX];
    cc__text_copy(t, size < sizeof t ? size : sizeof t, s);
    wr_str(w, t);
}

static void wr_name8(wr *w, const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CC__MECH_MAX) {
        w->bad = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!name8_char((uint8_t)s[i]))
            w->bad = true;
    wr_u8(w, (uint8_t)n);
    put(w, s, n);
}

typedef void (*body_fn)(wr *w, const void *msg);

/* Appends header + body to out: sizes the body, reserves, writes. */
static int pack(cc__buf *out, const cc_context *ctx, int type, uint16_t channel, body_fn body, const void *msg)
{
    wr count = {NULL, 0, 0xffffffffu, false};
    body(&count, msg);
    if (count.bad)
        return CC_ERR_INTERNAL;
    uint8_t *d = cc__buf_reserve(ctx, out, CC__FRAME_HDR + count.len);
    if (!d)
        return CC_ERR_NOMEM;
    cc__frame_hdr h = {(uint8_t)type, 0, channel, (uint32_t)count.len};
    cc__frame_hdr_write(d, &h);
    wr w = {d + CC__FRAME_HDR, 0, count.len, false};
    body(&w, msg);
    out->len += CC__FRAME_HDR + w.len;
    return CC_OK;
}

/* ------------------------------------------------------------ frame types */

int cc__f_hello_parse(const uint8_t *p, size_t len, cc__hello *m, char *detail, size_t dn)
{
    rd r = {p, len, false, "", ""};
    memset(m, 0, sizeof *m);
    m->caps = rd_u16(&r);
    size_t n = rd_u8(&r);
    if (!r.bad && (n < 1 || n > CC__MAX_AUTH)) {
        cc__fmt(detail, dn, "HELLO frame names %zu mechanisms (1..%d allowed)", n, CC__MAX_AUTH);
        return CC_ERR_BAD_FRAME;
    }
    for (size_t i = 0; i < n && !r.bad; i++)
        rd_name8(&r, m->mech[i]);
    m->n = r.bad ? 0 : (uint8_t)n;
    return rd_end(&r, CC__F_HELLO, detail, dn);
}

static void hello_body(wr *w, const void *msg)
{
    const cc__hello *m = msg;
    if (m->n < 1 || m->n > CC__MAX_AUTH)
        w->bad = true;
    wr_u16(w, m->caps);
    wr_u8(w, m->n);
    for (size_t i = 0; i < m->n && !w->bad; i++)
        wr_name8(w, m->mech[i]);
}

int cc__f_hello_pack(cc__buf *out, const cc_context *ctx, const cc__hello *m)
{
    return pack(out, ctx, CC__F_HELLO, 0, hello_body, m);
}

int cc__f_license_parse(const uint8_t *p, size_t len, cc__license_msg *m, char *detail, size_t dn)
{
    rd r = {p, len, false, "", ""};
    m->code = (int32_t)rd_u32(&r);
    m->count = rd_u32(&r);
    m->in_use = rd_u32(&r);
    m->granted = rd_u8(&r) == 1;
    rd_text(&r, m->detail, sizeof m->detail, "the detail");
    return rd_end(&r, CC__F_LICENSE, detail, dn);
}

static void license_body(wr *w, const void *msg)
{
    const cc__license_msg *m = msg;
    wr_u32(w, (uint32_t)m->code);
    wr_u32(w, m->count);
    wr_u32(w, m->in_use);
    wr_u8(w, m->granted ? 1 : 0);
    wr_text(w, m->detail, sizeof m->detail);
}

int cc__f_license_pack(cc__buf *out, const cc_context *ctx, const cc__license_msg *m)
{
    return pack(out, ctx, CC__F_LICENSE, 0, license_body, m);
}

int cc__f_auth_token_parse(const uint8_t *p, size_t len, cc__auth_token *m, char *detail, size_t dn)
{
    m->data = p;
    m->len = len;
    return CC_OK;
}

static void token_body(wr *w, const void *msg)
{
    const cc__auth_token *m = msg;
    put(w, m->data, m->len);
}

int cc__f_auth_token_pack(cc__buf *out, const cc_context *ctx, const cc__auth_token *m)
{
    return pack(out, ctx, CC__F_AUTH_TOKEN, 0, token_body, m);
}

int cc__f_auth_result_parse(const uint8_t *p, size_t len, cc__auth_result *m, char *detail, size_t dn)
{
    rd r = {p, len, false, "", ""};
    m->code = (int32_t)rd_u32(&r);
    if (!r.bad && m->code > 0)
        rd_fail(&r, "the code", "is positive");
    rd_text(&r, m->text, sizeof m->text, "the text");
    m->token = rd_blob(&r, &m->token_len);
    if (r.bad) {
        m->token = NULL;
        m->token_len = 0;
    }
    return rd_end(&r, CC__F_AUTH_RESULT, detail, dn);
}

static void result_body(wr *w, const void *msg)
{
    const cc__auth_result *m = msg;
    if (m->code > 0)
        w->bad = true;
    wr_u32(w, (uint32_t)m->code);
    wr_text(w, m->text, sizeof m->text);
    wr_blob(w, m->token, m->token_len);
}

int cc__f_auth_result_pack(cc__buf *out, const cc_context *ctx, const cc__auth_result *m)
{
    return pack(out, ctx, CC__F_AUTH_RESULT, 0, result_body, m);
}

int cc__f_data_parse(uint16_t channel, const uint8_t *p, size_t len, cc__data_msg *m, char *detail, size_t dn)
{
    m->channel = channel;
    m->data = p;
    m->len = len;
    return CC_OK;
}

static void data_body(wr *w, const void *msg)
{
    const cc__data_msg *m = msg;
    put(w, m->data, m->len);
}

int cc__f_data_pack(cc__buf *out, const cc_context *ctx, const cc__data_msg *m)
{
    return pack(out, ctx, CC__F_DATA, m->channel, data_body, m);
}

void cc__ping_stamp(cc__ping_msg *m, uint64_t ms)
{
    m->len = 8;
    for (int i = 0; i < 8; i++)
        m->data[i] = (uint8_t)(ms >> (56 - 8 * i));
}

int cc__f_ping_parse(const uint8_t *p, size_t len, cc__ping_msg *m, char *detail, size_t dn)
{
    m->len = (uint8_t)(len < sizeof m->data ? len : sizeof m->data);
    if (m->len)
        memcpy(m->data, p, m->len);
    return CC_OK;
}

static void ping_body(wr *w, const void *msg)
{
    const cc__ping_msg *m = msg;
    put(w, m->data, m->len <= sizeof m->data ? m->len : sizeof m->data);
}

int cc__f_ping_pack(cc__buf *out, const cc_context *ctx, const cc__ping_msg *m)
{
    return pack(out, ctx, CC__F_PING, 0, ping_body, m);
}

int cc__f_pong_parse(const uint8_t *p, size_t len, cc__ping_msg *m, char *detail, size_t dn)
{
    return cc__f_ping_parse(p, len, m, detail, dn);
}

int cc__f_pong_pack(cc__buf *out, const cc_context *ctx, const cc__ping_msg *m)
{
    return pack(out, ctx, CC__F_PONG, 0, ping_body, m);
}

int cc__f_close_parse(const uint8_t *p, size_t len, cc__close_msg *m, char *detail, size_t dn)
{
    rd r = {p, len, false, "", ""};
    m->code = (int32_t)rd_u32(&r);
    rd_text(&r, m->reason, sizeof m->reason, "the reason");
    return rd_end(&r, CC__F_CLOSE, detail, dn);
}

static void close_body(wr *w, const void *msg)
{
    const cc__close_msg *m = msg;
    wr_u32(w, (uint32_t)m->code);
    wr_text(w, m->reason, sizeof m->reason);
}

int cc__f_close_pack(cc__buf *out, const cc_context *ctx, const cc__close_msg *m)
{
    return pack(out, ctx, CC__F_CLOSE, 0, close_body, m);
}

#define CONSENT_WAIT_MAX_MS (24u * 3600 * 1000)

int cc__f_consent_wait_parse(const uint8_t *p, size_t len, cc__consent_wait_msg *m, char *detail, size_t dn)
{
    rd r = {p, len, false, "", ""};
    m->timeout_ms = rd_u32(&r);
    if (!r.bad && (m->timeout_ms == 0 || m->timeout_ms > CONSENT_WAIT_MAX_MS))
        rd_fail(&r, "the timeout", "is outside 1..86400000 ms");
    return rd_end(&r, CC__F_CONSENT_WAIT, detail, dn);
}

static void consent_wait_body(wr *w, const void *msg)
{
    const cc__consent_wait_msg *m = msg;
    wr_u32(w, m->timeout_ms);
}

int cc__f_consent_wait_pack(cc__buf *out, const cc_context *ctx, const cc__consent_wait_msg *m)
{
    return pack(out, ctx, CC__F_CONSENT_WAIT, 0, consent_wait_body, m);
}

int cc__f_window_parse(uint16_t channel, const uint8_t *p, size_t len, cc__window_msg *m, char *detail, size_t dn)
{
    rd r = {p, len, false, "", ""};
    m->channel = channel;
    m->increment = rd_u32(&r);
    int e = rd_end(&r, CC__F_WINDOW, detail, dn);
    if (e == CC_OK && (m->increment == 0 || m->increment > CC__WINDOW_MAX)) {
        cc__fmt(detail, dn, "WINDOW increment %u on channel %u is outside 1..2^31-1", m->increment, channel);
        return CC_ERR_BAD_FRAME;
    }
    return e;
}

static void window_body(wr *w, const void *msg)
{
    wr_u32(w, ((const cc__window_msg *)msg)->increment);
}

int cc__f_window_pack(cc__buf *out, const cc_context *ctx, const cc__window_msg *m)
{
    return pack(out, ctx, CC__F_WINDOW, m->channel, window_body, m);
}

int cc__frame_parse(const cc__frame_hdr *h, const uint8_t *p, cc__msg *m, char *detail, size_t dn)
{
    switch (h->type) {
    case CC__F_HELLO:
        return cc__f_hello_parse(p, h->len, &m->hello, detail, dn);
    case CC__F_LICENSE:
        return cc__f_license_parse(p, h->len, &m->license, detail, dn);
    case CC__F_AUTH_TOKEN:
        return cc__f_auth_token_parse(p, h->len, &m->token, detail, dn);
    case CC__F_AUTH_RESULT:
        return cc__f_auth_result_parse(p, h->len, &m->result, detail, dn);
    case CC__F_DATA:
        return cc__f_data_parse(h->channel, p, h->len, &m->data, detail, dn);
    case CC__F_PING:
        return cc__f_ping_parse(p, h->len, &m->ping, detail, dn);
    case CC__F_PONG:
        return cc__f_pong_parse(p, h->len, &m->ping, detail, dn);
    case CC__F_CLOSE:
        return cc__f_close_parse(p, h->len, &m->close, detail, dn);
    case CC__F_CONSENT_WAIT:
        return cc__f_consent_wait_parse(p, h->len, &m->consent_wait, detail, dn);
    case CC__F_WINDOW:
        return cc__f_window_parse(h->channel, p, h->len, &m->window, detail, dn);
    }
    cc__fmt(detail, dn, "unknown frame type %u", h->type);
    return CC_ERR_BAD_FRAME;
}

int cc__frame_pack(cc__buf *out, const cc_context *ctx, int type, const cc__msg *m)
{
    switch (type) {
    case CC__F_HELLO:
        return cc__f_hello_pack(out, ctx, &m->hello);
    case CC__F_LICENSE:
        return cc__f_license_pack(out, ctx, &m->license);
    case CC__F_AUTH_TOKEN:
        return cc__f_auth_token_pack(out, ctx, &m->token);
    case CC__F_AUTH_RESULT:
        return cc__f_auth_result_pack(out, ctx, &m->result);
    case CC__F_DATA:
        return cc__f_data_pack(out, ctx, &m->data);
    case CC__F_PING:
        return cc__f_ping_pack(out, ctx, &m->ping);
    case CC__F_PONG:
        return cc__f_pong_pack(out, ctx, &m->ping);
    case CC__F_CLOSE:
        return cc__f_close_pack(out, ctx, &m->close);
    case CC__F_CONSENT_WAIT:
        return cc__f_consent_wait_pack(out, ctx, &m->consent_wait);
    case CC__F_WINDOW:
        return cc__f_window_pack(out, ctx, &m->window);
    }
    return CC_ERR_INTERNAL;
}
