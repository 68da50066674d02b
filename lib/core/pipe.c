/* pipe.c -- moves a session's bytes: preamble out and in, TLS, plaintext
 * sealed into records and flushed, records back into frames. */
#include "pipe.h"

#include <string.h>

#define READ_CHUNK  16384
#define READ_BUDGET (256u * 1024) /* bytes read per step */
/* A record's bytes beyond its plaintext, at most: header 5, TLS 1.2's explicit
 * nonce 8 or TLS 1.3's content type 1, tag 16. */
#define RECORD_OVERHEAD 32
/* Sealed records kept ahead of the transport: a frame queued now waits
 * behind at most this much (plus the kernel's unsent bytes, which
 * TCP_NOTSENT_LOWAT bounds on our own sockets). Sealing is per frame, so
 * what goes next is chosen when the transport can take it. */
#define SEAL_AHEAD (16u * 1024) /* two records at most: one being written, one behind it */
/* Channels that may hold state (a queue, credit) at once; a peer using
 * more fails the session (doc/PROTOCOL.md 10). */
#define CHANNELS_MAX 1024

/* One channel's send queue and flow-control state. */
typedef struct chan {
    uint16_t id;
    uint8_t prio;       /* CC_PRIORITY_BULK or CC_PRIORITY_INTERACTIVE */
    bool paused;        /* the host paused it: no credit granted */
    bool blocked;       /* the host was told CC_ERR_AGAIN or CC_SEND_HIGH_WATER */
    cc__buf q;          /* whole DATA frames not yet sealed */
    uint32_t send_cred; /* payload bytes the peer still lets us send */
    uint32_t recv_cred; /* payload bytes we still let the peer send */
    uint32_t consumed;  /* payload bytes delivered and not yet granted back */
} chan;

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
    cc__buf plain_out; /* frames not yet sealed: the handshake's, CLOSE (after the data) */
    cc__buf urgent;    /* PING, PONG, WINDOW: sealed before anything else */
    size_t frame_len;  /* the frame cc__pipe_frame returned, to drop */

    chan *ch;                 /* channels with state, unordered */
    size_t nch, capch;        /* in use, allocated */
    size_t rr_bulk, rr_inter; /* round-robin positions */
    size_t queued;            /* bytes in all channel queues */
    bool end_wanted;          /* close_notify goes once every queue is sealed */
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
    cc__buf_free(ctx, &p->urgent);
    for (size_t i = 0; i < p->nch; i++)
        cc__buf_free(ctx, &p->ch[i].q);
    cc__free(ctx, p->ch);
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

/* Seals `n` bytes of `b`'s head into records (they go straight to rawout),
 * wiping the plaintext as it goes. */
static int seal_buf(cc__pipe *p, cc__buf *b, size_t n, char *detail, size_t dn)
{
    if (!n)
        return CC_OK;
    /* Room for all the records at once: rawout then grows by no copies. */
    if (!cc__buf_reserve(p->ctx, &p->rawout, n + (n / 16384 + 1) * RECORD_OVERHEAD))
        return CC_ERR_NOMEM;
    int r = cc__tls_write(p->tls, cc__buf_head(b), n, detail, dn);
    if (r < 0)
        return r;
    cc__wipe(cc__buf_head(b), n);
    cc__buf_consume(b, n);
    cc__buf_release_nowipe(p->ctx, b); /* wiped as it was sealed */
    return CC_OK;
}

/* The payload length of the whole frame at b's head (queues hold whole frames). */
static uint32_t head_payload(const cc__buf *b)
{
    const uint8_t *h = cc__buf_head(b);
    return (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
}

/* The channel whose head frame goes next in class `prio` (round robin per
 * frame among those with a frame and the credit for it), or NULL. */
static chan *pick(cc__pipe *p, uint8_t prio, size_t *rr)
{
    for (size_t k = 0; k < p->nch; k++) {
        size_t i = (*rr + k) % p->nch;
        chan *c = &p->ch[i];
        if (c->prio == prio && cc__buf_size(&c->q) && head_payload(&c->q) <= c->send_cred) {
            *rr = i + 1;
            return c;
        }
    }
    return NULL;
}

/* Seals the frame that should go next: PING, PONG and WINDOW first, then
 * interactive channels, then bulk ones, then the ordered queue once no data
 * waits before it; close_notify last. 1 when something was sealed, 0 when
 * nothing can go now. */
static int seal_next(cc__pipe *p, char *detail, size_t dn)
{
    if (!p->tls)
        return 0;
    int r;
    if (cc__buf_size(&p->urgent))
        return (r = seal_buf(p, &p->urgent, cc__buf_size(&p->urgent), detail, dn)) < 0 ? r : 1;
    chan *c = pick(p, CC_PRIORITY_INTERACTIVE, &p->rr_inter);
    if (!c)
        c = pick(p, CC_PRIORITY_BULK, &p->rr_bulk);
    if (c) {
        uint32_t n = head_payload(&c->q);
        c->send_cred -= n;
        p->queued -= CC__FRAME_HDR + n;
        return (r = seal_buf(p, &c->q, CC__FRAME_HDR + n, detail, dn)) < 0 ? r : 1;
    }
    if (p->queued)
        return 0; /* data waits for credit: what was queued after it waits too */
    if (cc__buf_size(&p->plain_out))
        return (r = seal_buf(p, &p->plain_out, cc__buf_size(&p->plain_out), detail, dn)) < 0 ? r : 1;
    if (p->end_wanted && !p->tls_ended) {
        cc__tls_shutdown(p->tls);
        p->tls_ended = true;
        return 1;
    }
    return 0;
}

/* Seals everything that can go now (the handshake's flights, an alert). */
static int seal(cc__pipe *p, char *detail, size_t dn)
{
    int r;
    while ((r = seal_next(p, detail, dn)) == 1)
        ;
    return r;
}

bool cc__pipe_preamble_ok(const cc__pipe *p)
{
    return p->pre_ok;
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
    return p->end_wanted ? NULL : &p->plain_out;
}

cc__buf *cc__pipe_out_urgent(cc__pipe *p)
{
    return p->tls_ended ? NULL : &p->urgent;
}

static chan *find(cc__pipe *p, uint16_t id)
{
    for (size_t i = 0; i < p->nch; i++)
        if (p->ch[i].id == id)
            return &p->ch[i];
    return NULL;
}

static chan *get(cc__pipe *p, uint16_t id)
{
    chan *c = find(p, id);
    if (c)
        return c;
    if (p->nch == CHANNELS_MAX)
        return NULL;
    if (p->nch == p->capch) {
        size_t cap = p->capch ? p->capch * 2 : 1; /* most sessions use one or two channels */
        chan *n = cc__calloc(p->ctx, cap * sizeof *n);
        if (!n)
            return NULL;
        if (p->nch)
            memcpy(n, p->ch, p->nch * sizeof *n);
        cc__free(p->ctx, p->ch);
        p->ch = n;
        p->capch = cap;
    }
    c = &p->ch[p->nch++];
    memset(c, 0, sizeof *c);
    c->id = id;
    c->prio = CC_PRIORITY_BULK;
    c->send_cred = CC__CHANNEL_WINDOW;
    c->recv_cred = CC__CHANNEL_WINDOW;
    return c;
}

int cc__pipe_queue_data(cc__pipe *p, uint16_t channel, const uint8_t *data, size_t len, size_t frame_max)
{
    if (p->end_wanted)
        return CC_ERR_STATE;
    chan *c = get(p, channel);
    if (!c)
        return CC_ERR_NOMEM;
    size_t frames = len ? (len + frame_max - 1) / frame_max : 1;
    /* Reserve the whole message first, so running out of memory queues nothing. */
    if (!cc__buf_reserve(p->ctx, &c->q, len + frames * CC__FRAME_HDR))
        return CC_ERR_NOMEM;
    cc__data_msg m = {channel, data, 0};
    do {
        m.len = len > frame_max ? frame_max : len;
        int r = cc__f_data_pack(&c->q, p->ctx, &m);
        if (r < 0)
            return r;
        p->queued += CC__FRAME_HDR + m.len;
        len -= m.len;
        if (len)
            m.data += m.len;
    } while (len);
    return CC_OK;
}

size_t cc__pipe_channel_queued(const cc__pipe *p, uint16_t channel)
{
    const chan *c = find((cc__pipe *)p, channel);
    return c ? cc__buf_size(&c->q) : 0;
}

int cc__pipe_set_priority(cc__pipe *p, uint16_t channel, int prio)
{
    chan *c = get(p, channel);
    if (!c)
        return CC_ERR_NOMEM;
    c->prio = (uint8_t)prio;
    return CC_OK;
}

bool cc__pipe_channel_blocked(cc__pipe *p, uint16_t channel, int set)
{
    chan *c = set > 0 ? get(p, channel) : find(p, channel);
    if (!c)
        return false;
    bool was = c->blocked;
    if (set >= 0)
        c->blocked = set != 0;
    return was;
}

int cc__pipe_next_ready(cc__pipe *p, size_t low_water)
{
    for (size_t i = 0; i < p->nch; i++) {
        chan *c = &p->ch[i];
        if (c->blocked && cc__buf_size(&c->q) <= low_water) {
            c->blocked = false;
            return c->id;
        }
    }
    return -1;
}

int cc__pipe_credit(cc__pipe *p, uint16_t channel, uint32_t inc, char *detail, size_t dn)
{
    chan *c = get(p, channel);
    if (!c) {
        cc__fmt(detail, dn, "the peer uses more than %u channels at once", CHANNELS_MAX);
        return CC_ERR_PROTOCOL;
    }
    if (inc > CC__WINDOW_MAX - c->send_cred) {
        cc__fmt(detail, dn, "WINDOW on channel %u takes its credit past 2^31-1", channel);
        return CC_ERR_PROTOCOL;
    }
    c->send_cred += inc;
    return CC_OK;
}

int cc__pipe_received(cc__pipe *p, uint16_t channel, uint32_t len, char *detail, size_t dn)
{
    chan *c = get(p, channel);
    if (!c) {
        cc__fmt(detail, dn, "the peer uses more than %u channels at once", CHANNELS_MAX);
        return CC_ERR_PROTOCOL;
    }
    if (len > c->recv_cred) {
        cc__fmt(detail, dn, "DATA of %u bytes on channel %u exceeds the window granted (%u bytes left)", len, channel,
                c->recv_cred);
        return CC_ERR_PROTOCOL;
    }
    c->recv_cred -= len;
    c->consumed += len;
    return CC_OK;
}

uint32_t cc__pipe_grant_due(cc__pipe *p, uint16_t channel)
{
    chan *c = find(p, channel);
    if (!c || c->paused || c->consumed < CC__CHANNEL_WINDOW / 2)
        return 0;
    uint32_t g = c->consumed;
    c->recv_cred += g;
    c->consumed = 0;
    return g;
}

int cc__pipe_pause_channel(cc__pipe *p, uint16_t channel, bool paused, uint32_t *grant)
{
    *grant = 0;
    chan *c = get(p, channel);
    if (!c)
        return CC_ERR_NOMEM;
    c->paused = paused;
    if (!paused && c->consumed) {
        *grant = c->consumed;
        c->recv_cred += c->consumed;
        c->consumed = 0;
    }
    return CC_OK;
}

void cc__pipe_drop_data(cc__pipe *p)
{
    for (size_t i = 0; i < p->nch; i++) {
        cc__buf_free(p->ctx, &p->ch[i].q);
    }
    p->queued = 0;
}

size_t cc__pipe_pending(const cc__pipe *p)
{
    return cc__buf_size(&p->rawout) + cc__buf_size(&p->plain_out) + cc__buf_size(&p->urgent) + p->queued;
}

size_t cc__pipe_pending_control(const cc__pipe *p)
{
    return cc__buf_size(&p->rawout) + cc__buf_size(&p->plain_out) + cc__buf_size(&p->urgent);
}

bool cc__pipe_want_write(const cc__pipe *p)
{
    return cc__buf_size(&p->rawout) > 0;
}

int cc__pipe_flush(cc__pipe *p, char *detail, size_t dn)
{
    /* A frame at a time, chosen when the transport can take it, so no more
     * than SEAL_AHEAD is ever sealed in an order fixed too early. */
    for (;;) {
        while (cc__buf_size(&p->rawout) < SEAL_AHEAD) {
            int r = seal_next(p, detail, dn);
            if (r < 0)
                return r;
            if (r == 0)
                break;
        }
        if (!cc__buf_size(&p->rawout))
            break;
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
    if (!p->tls || p->end_wanted)
        return CC_OK;
    (void)detail;
    (void)dn;
    p->end_wanted = true; /* close_notify follows the last queued frame (seal_next, as the transport takes them) */
    return CC_OK;
}

bool cc__pipe_tls_ended(const cc__pipe *p)
{
    return p->end_wanted;
}

void cc__pipe_shutdown_write(cc__pipe *p)
{
    if (p->write_shut)
        return;
    cc__transport_shutdown_write(&p->tr);
    p->write_shut = true;
}
