/* pipe.c -- moves a session's bytes: preamble out and in, TLS, plaintext
 * sealed into records and flushed, records back into frames. */
#include "pipe.h"

#include <string.h>

#define READ_CHUNK  16384
#define READ_BUDGET (256u * 1024) /* bytes read per step */
/* A record's bytes beyond its plaintext, at most: header 5, TLS 1.2's explicit
 * nonce 8 or TLS 1.3's content type 1, tag 16. */
#define RECORD_OVERHEAD 32
#define FLUSH_SLICE     (64u * 1024) /* plaintext sealed at a time while flushing */

struct cc__pipe {
    const cc_context *ctx;
    const cc__tls_conf *conf;
    cc_session *owner;
    const char *peer_name;

    cc__transport tr;
    bool started, in_done, open, tls_ended, write_shut;
    bool pre_ok; /* the peer's preamble is accepted */
    size_t budget;

    uint8_t pre_in[CC__PREAMBLE_LEN];
    size_t pre_in_len;
    cc__tls *tls;

    /* Each buffer is released as soon as it is drained, so an idle session
     * holds none of them. Unwiped (cc__buf_release_nowipe): rawout holds
     * records, and the plaintext of the other two is wiped as it is taken. */
    cc__buf rawout;    /* our preamble, then TLS's records, for the transport */
    cc__buf plain_in;  /* decrypted bytes not yet taken as frames */
    cc__buf plain_out; /* frames not yet sealed */
    size_t frame_len;  /* the frame cc__pipe_frame returned, to drop */
};

static int seal(cc__pipe *p, char *detail, size_t dn);

cc__pipe *cc__pipe_new(const cc_context *ctx, const cc__tls_conf *conf, cc_session *owner)
{
    cc__pipe *p = cc__calloc(ctx, sizeof *p);
    if (!p)
        return NULL;
    p->ctx = ctx;
    p->conf = conf;
    p->owner = owner;
    p->tr.fd = -1;
    p->budget = READ_BUDGET;
    return p;
}

void cc__pipe_free(cc__pipe *p)
{
    if (!p)
        return;
    const cc_context *ctx = p->ctx;
    cc__transport_close(&p->tr);
    cc__tls_free(p->tls);
    cc__buf_free(ctx, &p->rawout);
    cc__buf_free(ctx, &p->plain_in);
    cc__buf_free(ctx, &p->plain_out);
    cc__wipe(p, sizeof *p);
    cc__free(ctx, p);
}

static int queue_preamble(cc__pipe *p)
{
    uint8_t pre[CC__PREAMBLE_LEN];
    cc__preamble_write(pre);
    return cc__buf_append(p->ctx, &p->rawout, pre, sizeof pre) < 0 ? CC_ERR_NOMEM : CC_OK;
}

static int tls_begin(cc__pipe *p, char *detail, size_t dn)
{
    detail[0] = 0;
    p->tls = cc__tls_new(p->ctx, p->conf, p->owner, p->peer_name, detail, dn);
    if (!p->tls)
        return detail[0] ? CC_ERR_INVALID : CC_ERR_NOMEM;
    cc__tls_set_output(p->tls, &p->rawout);
    return CC_OK;
}

/* Version 2 (doc/PROTOCOL.md 1): the console sends its preamble and its
 * ClientHello in one write, without waiting; the client says nothing until
 * the console's preamble is in, then answers with its preamble and its whole
 * server flight in one write. */
int cc__pipe_start(cc__pipe *p, const cc__transport *t, const char *peer_name, char *detail, size_t dn)
{
    p->tr = *t;
    p->started = true;
    p->peer_name = peer_name;
    if (cc__cbase(p->ctx)->role != CC_ROLE_CONSOLE)
        return CC_OK;
    int r = queue_preamble(p);
    if (r == CC_OK)
        r = tls_begin(p, detail, dn);
    if (r == CC_OK && cc__tls_handshake(p->tls, detail, dn) < 0) /* the ClientHello, queued in TLS */
        r = CC_ERR_TLS;
    return r == CC_OK ? seal(p, detail, dn) : r;
}

bool cc__pipe_started(const cc__pipe *p)
{
    return p->started;
}

int cc__pipe_fd(const cc__pipe *p)
{
    return p->tr.fd;
}

void cc__pipe_close(cc__pipe *p)
{
    cc__transport_close(&p->tr);
}

/* ------------------------------------------------------------------- in */

void cc__pipe_refill(cc__pipe *p)
{
    p->budget = READ_BUDGET;
}

/* The peer's preamble first; what follows it in the same read is TLS. */
static int take_bytes(cc__pipe *p, const uint8_t *b, size_t n, char *detail, size_t dn)
{
    if (p->pre_in_len < CC__PREAMBLE_LEN) {
        size_t take = CC__PREAMBLE_LEN - p->pre_in_len;
        if (take > n)
            take = n;
        memcpy(p->pre_in + p->pre_in_len, b, take);
        p->pre_in_len += take;
        b += take;
        n -= take;
        if (p->pre_in_len < CC__PREAMBLE_LEN)
            return CC_OK;
        int v = cc__preamble_check(p->pre_in, detail, dn);
        bool client = cc__cbase(p->ctx)->role != CC_ROLE_CONSOLE;
        if (client && v != CC_ERR_BAD_MAGIC) {
            /* Our preamble goes out now (with the server flight, below), and
             * also before a version refusal: the peer then tells its user
             * which versions each side speaks. Not to a stranger who is not
             * speaking this protocol at all. */
            if (queue_preamble(p) < 0)
                return CC_ERR_NOMEM;
            if (v < 0) {
                char scratch[CC__DETAIL_MAX];
                cc__pipe_flush(p, scratch, sizeof scratch); /* one try: the session is over */
            }
        }
        if (v < 0)
            return v;
        p->pre_ok = true;
        if (client) {
            int r = tls_begin(p, detail, dn);
            if (r < 0)
                return r;
        }
        detail[0] = 0;
    }
    if (n && cc__tls_feed(p->tls, b, n) < 0)
        return CC_ERR_NOMEM;
    return CC_OK;
}

long cc__pipe_recv(cc__pipe *p, char *detail, size_t dn)
{
    uint8_t buf[READ_CHUNK];
    if (p->in_done || !p->budget)
        return 0;
    long got = cc__transport_recv(&p->tr, buf, sizeof buf, detail, dn);
    if (got == CC_IO_WOULD_BLOCK)
        return 0;
    if (got == CC__IO_RESET)
        return CC__PIPE_RESET;
    if (got < 0)
        return CC_ERR_IO;
    if (got == 0) {
        p->in_done = true;
        return CC__PIPE_EOF;
    }
    p->budget = (size_t)got > p->budget ? 0 : p->budget - (size_t)got;
    int r = take_bytes(p, buf, (size_t)got, detail, dn);
    return r < 0 ? r : got;
}

void cc__pipe_stop_reading(cc__pipe *p)
{
    p->in_done = true;
}

bool cc__pipe_in_done(const cc__pipe *p)
{
    return p->in_done;
}

const cc__tls *cc__pipe_tls(const cc__pipe *p)
{
    return p->tls;
}

/* Seals up to `max` bytes of the queued plaintext into records (they go
 * straight to rawout), wiping the plaintext as it goes. */
static int seal_some(cc__pipe *p, size_t max, char *detail, size_t dn)
{
    if (!p->tls)
        return CC_OK;
    size_t n = cc__buf_size(&p->plain_out);
    if (n > max)
        n = max;
    if (n) {
        /* Room for all the records at once: rawout then grows by no copies. */
        if (!cc__buf_reserve(p->ctx, &p->rawout, n + (n / 16384 + 1) * RECORD_OVERHEAD))
            return CC_ERR_NOMEM;
        int r = cc__tls_write(p->tls, cc__buf_head(&p->plain_out), n, detail, dn);
        if (r < 0)
            return r;
        cc__wipe(cc__buf_head(&p->plain_out), n);
        cc__buf_consume(&p->plain_out, n);
        cc__buf_release_nowipe(p->ctx, &p->plain_out); /* wiped as it was sealed */
    }
    return CC_OK;
}

bool cc__pipe_preamble_ok(const cc__pipe *p)
{
    return p->pre_ok;
}

static int seal(cc__pipe *p, char *detail, size_t dn)
{
    return seal_some(p, SIZE_MAX, detail, dn);
}

int cc__pipe_handshake(cc__pipe *p, char *detail, size_t dn)
{
    if (!p->tls || !p->pre_ok)
        return 0;
    if (p->open)
        return 1;
    int r = cc__tls_handshake(p->tls, detail, dn);
    if (r < 0) {
        char scratch[CC__DETAIL_MAX]; /* the handshake's reason is the one to keep */
        if (seal(p, scratch, sizeof scratch) == CC_OK)
            cc__pipe_flush(p, scratch, sizeof scratch); /* let the alert out */
        return r;
    }
    p->open = r == 1;
    return r;
}

int cc__pipe_frame(cc__pipe *p, uint32_t max_len, cc__frame_hdr *h, const uint8_t **payload, char *detail, size_t dn)
{
    for (;;) {
        size_t avail = cc__buf_size(&p->plain_in);
        int r = cc__frame_hdr_parse(cc__buf_head(&p->plain_in), avail, max_len, h, detail, dn);
        if (r < 0)
            return r;
        if (r == 1 && avail - CC__FRAME_HDR >= h->len) {
            *payload = cc__buf_head(&p->plain_in) + CC__FRAME_HDR;
            p->frame_len = CC__FRAME_HDR + h->len;
            return 1;
        }
        if (p->in_done || !p->open) {
            cc__buf_release_nowipe(p->ctx, &p->plain_in); /* frames are wiped as they are taken */
            return 0;
        }
        uint8_t *d = cc__buf_reserve(p->ctx, &p->plain_in, READ_CHUNK);
        if (!d)
            return CC_ERR_NOMEM;
        r = cc__tls_read(p->tls, d, READ_CHUNK, detail, dn);
        if (r == 0) {
            cc__buf_release_nowipe(p->ctx, &p->plain_in);
            return 0;
        }
        if (r == CC__TLS_EOF) {
            p->in_done = true;
            return CC__PIPE_BYE;
        }
        if (r < 0)
            return r;
        p->plain_in.len += (size_t)r;
    }
}

void cc__pipe_frame_done(cc__pipe *p)
{
    cc__wipe(cc__buf_head(&p->plain_in), p->frame_len);
    cc__buf_consume(&p->plain_in, p->frame_len);
    cc__buf_release_nowipe(p->ctx, &p->plain_in);
    p->frame_len = 0;
}

/* ------------------------------------------------------------------ out */

cc__buf *cc__pipe_out(cc__pipe *p)
{
    return p->tls_ended ? NULL : &p->plain_out;
}

size_t cc__pipe_pending(const cc__pipe *p)
{
    return cc__buf_size(&p->rawout) + cc__buf_size(&p->plain_out);
}

bool cc__pipe_want_write(const cc__pipe *p)
{
    return cc__buf_size(&p->rawout) > 0;
}

int cc__pipe_flush(cc__pipe *p, char *detail, size_t dn)
{
    /* A slice at a time, so rawout stays small however much is queued. */
    for (;;) {
        if (!cc__buf_size(&p->rawout)) {
            int r = seal_some(p, FLUSH_SLICE, detail, dn);
            if (r < 0)
                return r;
            if (!cc__buf_size(&p->rawout))
                break;
        }
        long w = cc__transport_send(&p->tr, cc__buf_head(&p->rawout), cc__buf_size(&p->rawout), detail, dn);
        if (w == CC_IO_WOULD_BLOCK)
            return CC_OK;
        if (w == CC__IO_RESET)
            return CC__PIPE_RESET;
        if (w < 0)
            return CC_ERR_IO;
        cc__buf_consume(&p->rawout, (size_t)w);
    }
    cc__buf_release_nowipe(p->ctx, &p->rawout);
    return CC_OK;
}

int cc__pipe_end_tls(cc__pipe *p, char *detail, size_t dn)
{
    int r = seal(p, detail, dn);
    if (r < 0 || !p->tls || p->tls_ended)
        return r;
    cc__tls_shutdown(p->tls);
    p->tls_ended = true;
    return seal(p, detail, dn);
}

bool cc__pipe_tls_ended(const cc__pipe *p)
{
    return p->tls_ended;
}

void cc__pipe_shutdown_write(cc__pipe *p)
{
    if (p->write_shut)
        return;
    cc__transport_shutdown_write(&p->tr);
    p->write_shut = true;
}
