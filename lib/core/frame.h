/* frame.h -- the wire format (doc/PROTOCOL.md): the cleartext preamble, the
 * frame header, and bounds-checked readers/writers for frame payloads. */
#ifndef CC_FRAME_H
#define CC_FRAME_H

#include "../base/base.h"

#define CC__PREAMBLE_LEN      8
#define CC__PROTO_MIN         1 /* protocol versions this library speaks */
#define CC__PROTO_MAX         1
#define CC__PREAMBLE_FLAG_TLS 0x0001 /* TLS follows the preamble (always set in version 1) */

#define CC__FRAME_HDR 8

enum cc__frame_type {
    CC__F_HELLO = 1,
    CC__F_LICENSE = 2,
    CC__F_AUTH_TOKEN = 3,
    CC__F_AUTH_RESULT = 4,
    CC__F_DATA = 5,
    CC__F_PING = 6,
    CC__F_PONG = 7,
    CC__F_CLOSE = 8
};

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

/* Payload reader: every read checks bounds; `bad` sticks once set. */
typedef struct cc__rd {
    const uint8_t *p;
    size_t left;
    bool bad;
} cc__rd;
uint8_t cc__rd_u8(cc__rd *r);
uint16_t cc__rd_u16(cc__rd *r);
uint32_t cc__rd_u32(cc__rd *r);
uint64_t cc__rd_u64(cc__rd *r);
/* A u16-length-prefixed string copied into dst (NUL-terminated); bad if it
 * does not fit or holds a NUL. */
void cc__rd_str(cc__rd *r, char *dst, size_t dst_size);
/* A u32-length-prefixed byte string; returns a pointer into the payload. */
const uint8_t *cc__rd_blob(cc__rd *r, size_t *len);

/* Payload writer into a small fixed buffer. */
typedef struct cc__wr {
    uint8_t *p;
    size_t len, cap;
    bool bad;
} cc__wr;
void cc__wr_u8(cc__wr *w, uint8_t v);
void cc__wr_u16(cc__wr *w, uint16_t v);
void cc__wr_u32(cc__wr *w, uint32_t v);
void cc__wr_u64(cc__wr *w, uint64_t v);
void cc__wr_str(cc__wr *w, const char *s);
void cc__wr_blob(cc__wr *w, const uint8_t *p, size_t len);

#endif
