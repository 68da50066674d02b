/* frame.h -- the wire format (doc/PROTOCOL.md): the cleartext preamble, the
 * frame header, and one pack/parse pair per frame type into small typed structs. */
#ifndef CC_FRAME_H
#define CC_FRAME_H

#include "../base/base.h"

#define CC__PREAMBLE_LEN      8
#define CC__PROTO_MIN         2 /* protocol versions this library speaks (version 1 never shipped) */
#define CC__PROTO_MAX         2
#define CC__PREAMBLE_FLAG_TLS 0x0001 /* TLS follows the preamble (always set) */
/* HELLO capability bits (doc/PROTOCOL.md 3.3). */
#define CC__CAP_GUESS 0x0001 /* console: an AUTH_TOKEN of its first mechanism follows, before the client's choice */

#define CC__FRAME_HDR 8

enum cc__frame_type {
    CC__F_HELLO = 1,
    CC__F_LICENSE = 2,
    CC__F_AUTH_TOKEN = 3,
    CC__F_AUTH_RESULT = 4,
    CC__F_DATA = 5,
    CC__F_PING = 6,
    CC__F_PONG = 7,
    CC__F_CLOSE = 8,
    CC__F_CONSENT_WAIT = 9, /* client: its user is asked; the verdict follows (doc/PROTOCOL.md 4.8) */
    CC__F_WINDOW = 10 /* flow-control credit for one channel (doc/PROTOCOL.md 10) */
};
#define CC__F_LAST CC__F_WINDOW

/* Flow control (doc/PROTOCOL.md 10): each direction of each channel starts
 * with this much DATA payload credit; WINDOW frames add to it. */
#define CC__CHANNEL_WINDOW (256u * 1024)
#define CC__WINDOW_MAX     0x7fffffffu /* credit never exceeds 2^31 - 1 */

typedef struct cc__frame_hdr {
    uint8_t type, flags;
    uint16_t channel;
    uint32_t len;
} cc__frame_hdr;

void cc__preamble_write(uint8_t out[CC__PREAMBLE_LEN]);
/* Checks the peer's preamble; returns the agreed version (> 0) or
 * CC_ERR_BAD_MAGIC / CC_ERR_BAD_VERSION with a detail. */
int cc__preamble_check(const uint8_t in[CC__PREAMBLE_LEN], char *detail, size_t n);

void cc__frame_hdr_write(uint8_t out[CC__FRAME_HDR], const cc__frame_hdr *h);
/* 1 with *h filled when a header is available, 0 when more bytes are needed,
 * < 0 (CC_ERR_FRAME_TOO_LARGE, CC_ERR_BAD_FRAME) with a detail. */
int cc__frame_hdr_parse(const uint8_t *p, size_t avail, uint32_t max_len, cc__frame_hdr *h, char *detail, size_t n);
const char *cc__frame_name(int type);

/* ---- typed payloads ----
 * The parsers check every length and field rule of doc/PROTOCOL.md 3.2 (name8
 * is 1..32 of [a-z0-9-]; str16 fits its field and is UTF-8 without NUL) and
 * return CC_OK or CC_ERR_BAD_FRAME with a detail; they never judge whether a
 * frame makes sense now, which is the session's business. Pointers in a parsed
 * struct point into the payload. Bytes after the last field are ignored.
 *
 * The packers append a whole frame (header and payload) to `out` and return
 * CC_OK, CC_ERR_NOMEM, or CC_ERR_INTERNAL when a field cannot be encoded (a
 * bad mechanism name, a blob over 4 GiB); on error `out` is unchanged. Text
 * fields are sent as their parsers accept them: cut at a character boundary
 * to fit the receiver's field, each byte that is not part of valid UTF-8
 * replaced by '?', so a peer never refuses our own details. */

typedef struct cc__hello {
    uint16_t caps; /* CC__CAP_GUESS from the console; other bits sent as 0, ignored */
    uint8_t n;     /* 1..CC__MAX_AUTH mechanisms, in the sender's order */
    char mech[CC__MAX_AUTH][CC__MECH_MAX + 1];
} cc__hello;

typedef struct cc__license_msg {
    int32_t code; /* 0 granted, else the cc_error that denied */
    uint32_t count, in_use;
    bool granted; /* the u8 was 1 */
    char detail[CC__DETAIL_MAX];
} cc__license_msg;

typedef struct cc__auth_token {
    const uint8_t *data; /* the whole payload */
    size_t len;
} cc__auth_token;

typedef struct cc__auth_result {
    int32_t code; /* 0 or a negative cc_error: a positive code is malformed */
    char text[CC__DETAIL_MAX];
    const uint8_t *token; /* final token, token_len 0 when none */
    size_t token_len;
} cc__auth_result;

typedef struct cc__data_msg {
    uint16_t channel; /* from the header */
    const uint8_t *data;
    size_t len;
} cc__data_msg;

/* PING and PONG: opaque to the receiver, who echoes the first 8 bytes. */
typedef struct cc__ping_msg {
    uint8_t len;
    uint8_t data[8];
} cc__ping_msg;

/* WINDOW: the receiver lets the sender send `increment` more DATA payload
 * bytes on `channel` (1..2^31-1). */
typedef struct cc__window_msg {
    uint16_t channel; /* from the header */
    uint32_t increment;
} cc__window_msg;

typedef struct cc__close_msg {
    int32_t code; /* 0 orderly, < 0 the cc_error that ended the sender */
    char reason[CC__REASON_MAX];
} cc__close_msg;

/* CONSENT_WAIT: how long the client waits for its user's answer. */
typedef struct cc__consent_wait_msg {
    uint32_t timeout_ms; /* 1..86400000; anything else is malformed */
} cc__consent_wait_msg;

/* Any parsed frame: what cc__frame_parse fills, by h->type. */
typedef union cc__msg {
    cc__hello hello;
    cc__license_msg license;
    cc__auth_token token;
    cc__auth_result result;
    cc__data_msg data;
    cc__ping_msg ping; /* PING and PONG */
    cc__close_msg close;
    cc__consent_wait_msg consent_wait;
    cc__window_msg window;
} cc__msg;

int cc__f_hello_parse(const uint8_t *p, size_t len, cc__hello *m, char *detail, size_t dn);
int cc__f_hello_pack(cc__buf *out, const cc_context *ctx, const cc__hello *m);
int cc__f_license_parse(const uint8_t *p, size_t len, cc__license_msg *m, char *detail, size_t dn);
int cc__f_license_pack(cc__buf *out, const cc_context *ctx, const cc__license_msg *m);
int cc__f_auth_token_parse(const uint8_t *p, size_t len, cc__auth_token *m, char *detail, size_t dn);
int cc__f_auth_token_pack(cc__buf *out, const cc_context *ctx, const cc__auth_token *m);
int cc__f_auth_result_parse(const uint8_t *p, size_t len, cc__auth_result *m, char *detail, size_t dn);
int cc__f_auth_result_pack(cc__buf *out, const cc_context *ctx, const cc__auth_result *m);
int cc__f_data_parse(uint16_t channel, const uint8_t *p, size_t len, cc__data_msg *m, char *detail, size_t dn);
int cc__f_data_pack(cc__buf *out, const cc_context *ctx, const cc__data_msg *m);
int cc__f_ping_parse(const uint8_t *p, size_t len, cc__ping_msg *m, char *detail, size_t dn);
int cc__f_ping_pack(cc__buf *out, const cc_context *ctx, const cc__ping_msg *m);
int cc__f_pong_parse(const uint8_t *p, size_t len, cc__ping_msg *m, char *detail, size_t dn);
int cc__f_pong_pack(cc__buf *out, const cc_context *ctx, const cc__ping_msg *m);
int cc__f_close_parse(const uint8_t *p, size_t len, cc__close_msg *m, char *detail, size_t dn);
int cc__f_close_pack(cc__buf *out, const cc_context *ctx, const cc__close_msg *m);
int cc__f_consent_wait_parse(const uint8_t *p, size_t len, cc__consent_wait_msg *m, char *detail, size_t dn);
int cc__f_consent_wait_pack(cc__buf *out, const cc_context *ctx, const cc__consent_wait_msg *m);
int cc__f_window_parse(uint16_t channel, const uint8_t *p, size_t len, cc__window_msg *m, char *detail, size_t dn);
int cc__f_window_pack(cc__buf *out, const cc_context *ctx, const cc__window_msg *m);

/* The parser of h->type over `payload` (h->len bytes) into the member of *m
 * for that type. CC_OK or CC_ERR_BAD_FRAME with a detail. */
int cc__frame_parse(const cc__frame_hdr *h, const uint8_t *payload, cc__msg *m, char *detail, size_t dn);

/* The packer of `type` for the member of *m for that type (DATA takes its
 * channel from m->data). Returns as the packers. */
int cc__frame_pack(cc__buf *out, const cc_context *ctx, int type, const cc__msg *m);

/* A PING payload carrying a millisecond clock (big-endian u64). */
void cc__ping_stamp(cc__ping_msg *m, uint64_t ms);
/* Copies src into dst (n bytes, NUL included) as a packer would send it: cut at
 * a character boundary, invalid UTF-8 bytes replaced by '?'. */
void cc__text_copy(char *dst, size_t n, const char *src);
/* true when p[0..len) is valid UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF) and holds no NUL. */
bool cc__utf8_valid(const uint8_t *p, size_t len);

#endif
