/* util.c -- small internal services every layer uses: the context's
 * allocator, secret wiping, bounded formatting, the clock, logging, buffers. */
#include "base.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *cc__malloc(const cc_context *ctx, size_t n)
{
    if (n == 0)
        n = 1;
    return cc__cbase(ctx)->alloc.malloc(n, cc__cbase(ctx)->alloc.user);
}

void *cc__calloc(const cc_context *ctx, size_t n)
{
    void *p = cc__malloc(ctx, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *cc__realloc(const cc_context *ctx, void *p, size_t n)
{
    return cc__cbase(ctx)->alloc.realloc(p, n ? n : 1, cc__cbase(ctx)->alloc.user);
}

void cc__free(const cc_context *ctx, void *p)
{
    if (p)
        cc__cbase(ctx)->alloc.free(p, cc__cbase(ctx)->alloc.user);
}

char *cc__strndup(const cc_context *ctx, const char *s, size_t n)
{
    char *d = cc__malloc(ctx, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *cc__strdup(const cc_context *ctx, const char *s)
{
    return s ? cc__strndup(ctx, s, strlen(s)) : NULL;
}

void cc__wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

void cc__free_secret(const cc_context *ctx, char *s)
{
    if (!s)
        return;
    cc__wipe(s, strlen(s));
    cc__free(ctx, s);
}

int cc__ct_memcmp(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) != 0;
}

char *cc__fmt(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    if (!n)
        return dst;
    va_start(ap, fmt);
    int r = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    if (r < 0)
        dst[0] = 0;
    return dst;
}

void cc__printable(char *dst, size_t n, const uint8_t *src, size_t len)
{
    size_t o = 0;
    if (!n)
        return;
    if (len > 64)
        len = 64;
    for (size_t i = 0; i < len && o + 5 < n; i++) {
        uint8_t c = src[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            dst[o++] = (char)c;
        else
            o += (size_t)snprintf(dst + o, n - o, "\\x%02x", c);
    }
    dst[o < n ? o : n - 1] = 0;
}

uint64_t cc__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cc__log(const cc_context *ctx, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (!ctx || !cc__cbase(ctx)->log_fn || level > cc__cbase(ctx)->log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cc__cbase(ctx)->log_fn(cc__cbase(ctx)->log_user, level, line);
}

uint8_t *cc__buf_reserve(const cc_context *ctx, cc__buf *b, size_t n)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->cap - b->len < n) {
        /* Compact first: the live bytes move to the front. */
        if (b->off) {
            size_t live = b->len - b->off;
            memmove(b->data, b->data + b->off, live);
            cc__wipe(b->data + live, b->len - live); /* no stale copy is left behind */
            b->len = live;
            b->off = 0;
        }
        if (b->cap - b->len < n) {
            size_t cap = b->cap ? b->cap : 256; /* small: most buffers hold one frame, then are released */
            while (cap - b->len < n) {
                if (cap > SIZE_MAX / 2)
                    return NULL;
                cap *= 2;
            }
            uint8_t *d = cc__malloc(ctx, cap);
            if (!d)
                return NULL;
            if (b->data) {
                memcpy(d, b->data, b->len);
                cc__wipe(b->data, b->cap);
                cc__free(ctx, b->data);
            }
            b->data = d;
            b->cap = cap;
        }
    }
    if (!b->data) { /* n == 0 on an empty buffer: a valid, empty place to write */
        static uint8_t none[1];
        return none;
    }
    return b->data + b->len;
}

int cc__buf_append(const cc_context *ctx, cc__buf *b, const void *p, size_t n)
{
    uint8_t *d = cc__buf_reserve(ctx, b, n);
    if (!d)
        return CC_ERR_NOMEM;
    if (n)
        memcpy(d, p, n);
    b->len += n;
    return CC_OK;
}

void cc__buf_consume(cc__buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void cc__buf_free(const cc_context *ctx, cc__buf *b)
{
    if (b->data) {
        cc__wipe(b->data, b->cap);
        cc__free(ctx, b->data);
    }
    memset(b, 0, sizeof *b);
}

void cc__buf_release_nowipe(const cc_context *ctx, cc__buf *b)
{
    if (b->data && b->off == b->len) {
        cc__free(ctx, b->data);
        memset(b, 0, sizeof *b);
    }
}
