/* peer.c -- the harness side of the whole-session fuzz targets: OpenSSL's allocator and random numbers,
 * a throw-away certificate, and the peer (raw bytes, a real SSL end, or a replay of a recorded handshake). */
#define _GNU_SOURCE
#define OPENSSL_SUPPRESS_DEPRECATED /* RAND_set_rand_method: the one way to make all of OpenSSL's randomness ours */
#include "peer.h"

#include "../../lib/core/frame.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sanitizer/asan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- OpenSSL's heap ----
 * Size classes of our own on top of glibc, under ASan's poisoning: a poisoned
 * header and tail around every block, and a freed block stays poisoned, first
 * in a quarantine and then on its class's free list, so an instrumented access
 * (ours, or memcpy & co. from anywhere) out of bounds or after free is still
 * reported; only the allocation stacks of ASan's own allocator are gone
 * (CC_FUZZ_OPENSSL_ASAN=1 brings them back). */
extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);

#define HDR         16 /* also the redzone before a block */
#define RZ          16
#define MIN_CLASS   5  /* 32 bytes */
#define MAX_CLASS   16 /* 64 KiB; larger blocks come from glibc each time */
#define LIVE_MAGIC  0x4f70656e53534c21ull
#define FREED_MAGIC 0x467265656421dead
#define QUARANTINE  4096

struct blk {
    uint32_t magic_lo, cls; /* cls 0: from glibc, of `total` bytes */
    uint64_t size;
};
static size_t os_live;
static uint8_t *quarantine[QUARANTINE];
static size_t q_next;
static uint8_t *free_list[MAX_CLASS + 1]; /* linked through the first word of the (poisoned) header */

static size_t blk_total(size_t n)
{
    return HDR + ((n + 7) & ~(size_t)7) + RZ;
}

static unsigned blk_class(size_t total)
{
    unsigned c = MIN_CLASS;
    while (c <= MAX_CLASS && ((size_t)1 << c) < total)
        c++;
    return c <= MAX_CLASS ? c : 0;
}

__attribute__((no_sanitize("address"))) static void *os_malloc(size_t n, const char *file, int line)
{
    if (n > SIZE_MAX / 2)
        return NULL;
    size_t total = blk_total(n);
    unsigned c = blk_class(total);
    uint8_t *b;
    if (c && free_list[c]) { /* poisoned all through: open the user bytes */
        b = free_list[c];
        free_list[c] = *(uint8_t **)b;
        ASAN_UNPOISON_MEMORY_REGION(b + HDR, n);
    } else { /* fresh from glibc, unpoisoned: close header and tail */
        size_t cap = c ? (size_t)1 << c : total;
        b = __libc_malloc(cap);
        if (!b)
            return NULL;
        ASAN_POISON_MEMORY_REGION(b, HDR);
        ASAN_POISON_MEMORY_REGION(b + HDR + n, cap - HDR - n);
    }
    struct blk *h = (struct blk *)b;
    h->magic_lo = (uint32_t)LIVE_MAGIC;
    h->cls = c;
    h->size = n;
    os_live += n;
    return b + HDR;
}

__attribute__((no_sanitize("address"))) static size_t os_size(void *p)
{
    struct blk *h = (struct blk *)((uint8_t *)p - HDR);
    if (h->magic_lo != (uint32_t)LIVE_MAGIC) {
        fprintf(stderr, "fuzz: OpenSSL frees %p, which is not a live block of its allocator (%s)\n", p,
                h->magic_lo == (uint32_t)FREED_MAGIC ? "freed twice" : "never allocated there");
        abort();
    }
    return (size_t)h->size;
}

__attribute__((no_sanitize("address"))) static void os_free(void *p, const char *file, int line)
{
    if (!p)
        return;
    size_t n = os_size(p);
    uint8_t *b = (uint8_t *)p - HDR;
    ((struct blk *)b)->magic_lo = (uint32_t)FREED_MAGIC;
    os_live -= n;
    ASAN_POISON_MEMORY_REGION(b + HDR, n);
    uint8_t *old = quarantine[q_next];
    quarantine[q_next] = b;
    q_next = (q_next + 1) % QUARANTINE;
    if (!old)
        return;
    struct blk *oh = (struct blk *)old;
    if (oh->cls) {
        unsigned c = oh->cls;
        *(uint8_t **)old = free_list[c];
        free_list[c] = old;
    } else { /* glibc's again: unpoisoned, as it gave it */
        ASAN_UNPOISON_MEMORY_REGION(old, blk_total(oh->size));
        __libc_free(old);
    }
}

static void *os_realloc(void *p, size_t n, const char *file, int line)
{
    if (!p)
        return os_malloc(n, file, line);
    if (n == 0) {
        os_free(p, file, line);
        return NULL;
    }
    size_t old = os_size(p);
    void *d = os_malloc(n, file, line);
    if (!d)
        return NULL;
    memcpy(d, p, old < n ? old : n);
    os_free(p, file, line);
    return d;
}

/* ---- OpenSSL's randomness: two streams, the library's and the peer's ----
 * Each draws only on its own, so the library's handshake bytes depend on what
 * the library did alone, and the peer can replay its half. */
static uint64_t rng[2];
static int rng_cur; /* 0: the library (and everything else), 1: the peer */

static int rng_bytes(unsigned char *buf, int num)
{
    for (int i = 0; i < num; i++) {
        uint64_t z = (rng[rng_cur] += 0x9e3779b97f4a7c15ull); /* splitmix64 */
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        buf[i] = (unsigned char)(z ^ (z >> 31));
    }
    return 1;
}
static int rng_status(void)
{
    return 1;
}
static const RAND_METHOD rng_method = {NULL, rng_bytes, NULL, NULL, rng_bytes, rng_status};

void fz_rng_reset(void)
{
    rng[0] = 0x6c6962726172790aull;
    rng[1] = 0x706565720a0a0a0aull;
    rng_cur = 0;
}

void fz_openssl_init(void)
{
    const char *e = getenv("CC_FUZZ_OPENSSL_ASAN");
    if (!(e && *e == '1') && !CRYPTO_set_mem_functions(os_malloc, os_realloc, os_free))
        fprintf(stderr, "fuzz: OpenSSL allocated before fz_openssl_init(); its heap stays ASan's\n");
    fz_rng_reset();
    if (!RAND_set_rand_method(&rng_method)) {
        fprintf(stderr, "fuzz: RAND_set_rand_method failed\n");
        abort();
    }
}

size_t fz_openssl_live(void)
{
    return os_live;
}

/* ---- certificate ---- */

int fz_make_cert(const char *dir, char *cert, char *key, size_t n)
{
    snprintf(cert, n, "%s/cert.pem", dir);
    snprintf(key, n, "%s/key.pem", dir);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!k || !x)
        return -1;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, nm);
    X509_set_pubkey(x, k);
    int ok = X509_sign(x, k, EVP_sha256()) > 0;
    FILE *c = fopen(cert, "w"), *kf = fopen(key, "w");
    ok = ok && c && kf && PEM_write_X509(c, x) == 1 && PEM_write_PrivateKey(kf, k, NULL, NULL, 0, NULL, NULL) == 1;
    if (c)
        fclose(c);
    if (kf)
        fclose(kf);
    X509_free(x);
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

/* ---- the harness's TLS end ----
 * A full handshake costs the peer twice what it costs the library (it parses
 * and verifies the certificate). Randomness being the harness's, the
 * library's handshake bytes are the same on every run, so the peer records
 * one real handshake and afterwards replays its flights and seals its
 * records itself (TLS 1.3, TLS_AES_128_GCM_SHA256, RFC 8446 5.2). It checks
 * every byte the library sends against the recording and, should one differ,
 * the target runs that input again with a real SSL end. */
#define MAX_SEG 8

struct fz_tls {
    int role; /* the harness's */
    SSL_CTX *ctx;
    struct {
        bool ours;
        uint8_t *b;
        size_t len;
    } seg[MAX_SEG];
    size_t nseg;
    bool replay;
    char secret_hex[2 * EVP_MAX_MD_SIZE + 1]; /* our write traffic secret, from the key log */
    uint8_t key[16], iv[12];
    EVP_CIPHER_CTX *aead;
};

static void keylog(const SSL *ssl, const char *line)
{
    fz_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *label = t->role == CC_ROLE_CONSOLE ? "CLIENT_TRAFFIC_SECRET_0 " : "SERVER_TRAFFIC_SECRET_0 ";
    if (strncmp(line, label, strlen(label)) != 0)
        return;
    const char *sp = strchr(line + strlen(label), ' ');
    if (sp && strlen(sp + 1) < sizeof t->secret_hex)
        strcpy(t->secret_hex, sp + 1);
}

fz_tls *fz_tls_new(int harness_role, const char *cert, const char *key)
{
    fz_tls *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->role = harness_role;
    t->ctx = SSL_CTX_new(harness_role == CC_ROLE_CONSOLE ? TLS_client_method() : TLS_server_method());
    if (!t->ctx || SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(t->ctx, "TLS_AES_128_GCM_SHA256") != 1)
        return NULL;
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_num_tickets(t->ctx, 0);
    SSL_CTX_set_app_data(t->ctx, t);
    SSL_CTX_set_keylog_callback(t->ctx, keylog);
    if (harness_role == CC_ROLE_CLIENT && (SSL_CTX_use_certificate_file(t->ctx, cert, SSL_FILETYPE_PEM) != 1 ||
                                           SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1))
        return NULL;
    return t;
}

bool fz_tls_replays(const fz_tls *t)
{
    return t->replay;
}

void fz_tls_replay_off(fz_tls *t)
{
    t->replay = false;
}

static void seg_add(fz_tls *t, bool ours, const uint8_t *b, size_t len)
{
    if (!len)
        return;
    if (!t->nseg || t->seg[t->nseg - 1].ours != ours) {
        if (t->nseg == MAX_SEG)
            abort();
        t->nseg++;
    }
    size_t i = t->nseg - 1;
    t->seg[i].ours = ours;
    t->seg[i].b = realloc(t->seg[i].b, t->seg[i].len + len);
    if (!t->seg[i].b)
        abort();
    memcpy(t->seg[i].b + t->seg[i].len, b, len);
    t->seg[i].len += len;
}

/* HKDF-Expand-Label(secret, label, "", n) with SHA-256 (RFC 8446 7.1), n <= 32. */
static void expand_label(const uint8_t *secret, size_t slen, const char *label, uint8_t *out, size_t n)
{
    uint8_t info[64], t1[EVP_MAX_MD_SIZE];
    size_t ll = strlen(label), i = 0;
    unsigned tl = 0;
    info[i++] = 0;
    info[i++] = (uint8_t)n;
    info[i++] = (uint8_t)(6 + ll);
    memcpy(info + i, "tls13 ", 6);
    memcpy(info + i + 6, label, ll);
    i += 6 + ll;
    info[i++] = 0; /* empty context */
    info[i++] = 1; /* T(1) */
    if (!HMAC(EVP_sha256(), secret, (int)slen, info, i, t1, &tl) || tl < n)
        abort();
    memcpy(out, t1, n);
}

int fz_tls_record_end(fz_tls *t, fz_peer *p)
{
    const char *real = getenv("CC_FUZZ_REAL_TLS");
    if (real && *real == '1')
        return -1; /* asked for: every run with a real SSL end */
    uint8_t secret[32];
    size_t hl = strlen(t->secret_hex);
    const SSL_CIPHER *c = p->ssl ? SSL_get_current_cipher(p->ssl) : NULL;
    bool theirs = false;
    for (size_t i = 0; i < t->nseg; i++)
        theirs |= !t->seg[i].ours;
    if (!p->up || hl != 64 || !c || strcmp(SSL_CIPHER_get_name(c), "TLS_AES_128_GCM_SHA256") != 0 || !theirs)
        return -1; /* the recording must hold a handshake, with bytes of the library to check */
    for (size_t i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(t->secret_hex + 2 * i, "%2x", &v) != 1)
            return -1;
        secret[i] = (uint8_t)v;
    }
    expand_label(secret, 32, "key", t->key, 16);
    expand_label(secret, 32, "iv", t->iv, 12);
    t->aead = EVP_CIPHER_CTX_new();
    if (!t->aead || EVP_EncryptInit_ex(t->aead, EVP_aes_128_gcm(), NULL, t->key, NULL) != 1)
        return -1;
    t->replay = true;
    return 0;
}

/* ---- one input's peer ---- */

static void q_reserve(fz_peer *p, size_t len)
{
    if (p->q_len + len > p->q_cap) {
        size_t cap = p->q_cap ? p->q_cap : 4096;
        while (cap < p->q_len + len)
            cap *= 2;
        p->q = realloc(p->q, cap);
        if (!p->q)
            abort();
        p->q_cap = cap;
    }
}

static void q_add(fz_peer *p, const uint8_t *b, size_t len)
{
    if (!len)
        return;
    q_reserve(p, len);
    memcpy(p->q + p->q_len, b, len);
    p->q_len += len;
}

/* One TLS 1.3 record of `type` around `len` bytes, in our next sequence number. */
static void seal(fz_peer *p, uint8_t type, const uint8_t *data, size_t len)
{
    fz_tls *t = p->tls;
    size_t clen = len + 1 + 16;
    uint8_t hdr[5] = {23, 3, 3, (uint8_t)(clen >> 8), (uint8_t)clen}, nonce[12];
    memcpy(nonce, t->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] ^= (uint8_t)(p->seq >> (56 - 8 * i));
    p->seq++;
    q_add(p, hdr, 5);
    q_reserve(p, clen);
    uint8_t *o = p->q + p->q_len;
    int l;
    if (EVP_EncryptInit_ex(t->aead, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(t->aead, NULL, &l, hdr, 5) != 1 ||
        (len && EVP_EncryptUpdate(t->aead, o, &l, data, (int)len) != 1) ||
        EVP_EncryptUpdate(t->aead, o + len, &l, &type, 1) != 1 || EVP_EncryptFinal_ex(t->aead, o + len + 1, &l) != 1 ||
        EVP_CIPHER_CTX_ctrl(t->aead, EVP_CTRL_AEAD_GET_TAG, 16, o + len + 1) != 1)
        abort();
    p->q_len += clen;
}

/* Replay: our flights up to the next one of the library's; once every one of
 * them has matched, the input as records and the end. Called at the start and
 * after the step in which the library's flight came in, as a real end would
 * answer it in its pump. */
static size_t avail(const fz_peer *p)
{
    return p->paused ? p->pause_at : p->in_len;
}

/* Replay, once up: the input so far released as records, then the end. */
static void replay_data(fz_peer *p)
{
    while (p->in_off < avail(p)) {
        size_t n = avail(p) - p->in_off < p->record_len ? avail(p) - p->in_off : p->record_len;
        seal(p, 23, p->in + p->in_off, n);
        p->in_off += n;
    }
    if (p->in_off < p->in_len || p->eof || p->paused)
        return;
    if (p->close_notify) {
        p->end_mark = p->q_len;
        seal(p, 21, (const uint8_t[]){1, 0}, 2);
    }
    p->eof = true;
}

static void replay_advance(fz_peer *p)
{
    fz_tls *t = p->tls;
    p->advance = false;
    while (p->seg < t->nseg && t->seg[p->seg].ours)
        q_add(p, t->seg[p->seg].b, t->seg[p->seg].len), p->seg++;
    if (p->up)
        replay_data(p);
}

static bool theirs_left(const fz_peer *p)
{
    for (size_t i = p->seg; i < p->tls->nseg; i++)
        if (!p->tls->seg[i].ours)
            return true;
    return false;
}

int fz_peer_start(fz_peer *p)
{
    uint8_t pre[CC__PREAMBLE_LEN];
    if (!p->record_len || p->record_len > 16384)
        p->record_len = 16384;
    if (!p->tls) {
        q_add(p, p->in, p->in_len);
        p->eof = true;
        return 0;
    }
    p->paused = p->pause_at && p->pause_at <= p->in_len;
    cc__preamble_write(pre);
    q_add(p, pre, sizeof pre);
    if (p->record) {
        for (size_t i = 0; i < p->tls->nseg; i++)
            free(p->tls->seg[i].b);
        memset(p->tls->seg, 0, sizeof p->tls->seg);
        p->tls->nseg = 0;
        p->tls->replay = false;
        p->tls->secret_hex[0] = 0;
    }
    if (p->tls->replay && !p->real && !p->record) {
        p->up = !theirs_left(p);
        replay_advance(p);
        return 0;
    }
    p->ssl = SSL_new(p->tls->ctx);
    p->to_ssl = BIO_new(BIO_s_mem());
    p->from_ssl = BIO_new(BIO_s_mem());
    if (!p->ssl || !p->to_ssl || !p->from_ssl)
        return -1;
    BIO_set_mem_eof_return(p->to_ssl, -1);
    BIO_set_mem_eof_return(p->from_ssl, -1);
    SSL_set_bio(p->ssl, p->to_ssl, p->from_ssl);
    if (p->tls->role == CC_ROLE_CONSOLE)
        SSL_set_connect_state(p->ssl);
    else
        SSL_set_accept_state(p->ssl);
    return 0;
}

long fz_peer_send(void *user, const uint8_t *data, size_t len)
{
    fz_peer *p = user;
    size_t n = len;
    if (p->tls) {
        size_t skip = p->pre_seen < CC__PREAMBLE_LEN ? CC__PREAMBLE_LEN - p->pre_seen : 0;
        if (skip > n)
            skip = n;
        p->pre_seen += skip;
        data += skip;
        n -= skip;
    }
    if (p->ssl && !p->up) {
        if (p->record)
            seg_add(p->tls, false, data, n);
    } else if (p->tls && !p->ssl) {
        fz_tls *t = p->tls;
        while (n && !p->up && !p->diverged) { /* the library's handshake bytes: the recorded ones? */
            size_t m = t->seg[p->seg].len - p->seg_off;
            if (m > n)
                m = n;
            if (t->seg[p->seg].ours || memcmp(data, t->seg[p->seg].b + p->seg_off, m) != 0) {
                p->diverged = p->eof = true; /* other bytes, or bytes before our flight went out */
                return (long)len;
            }
            data += m, n -= m, p->seg_off += m;
            if (p->seg_off == t->seg[p->seg].len) {
                p->seg++, p->seg_off = 0;
                p->advance = true;
                p->up = !theirs_left(p);
            }
        }
    }
    size_t accepted = n;
    if ((p->up || !p->tls) && p->window) {
        size_t room = p->window > p->after_up ? p->window - p->after_up : 0;
        if (accepted > room)
            accepted = room;
        if (!accepted && n == len)
            return CC_IO_WOULD_BLOCK; /* the peer no longer reads */
    }
    if (p->ssl && accepted && BIO_write(p->to_ssl, data, (int)accepted) <= 0)
        return CC_IO_ERROR;
    if (p->up || !p->tls)
        p->after_up += accepted;
    return (long)((len - n) + accepted);
}

long fz_peer_recv(void *user, uint8_t *buf, size_t len)
{
    fz_peer *p = user;
    size_t end = p->hold_end && p->end_mark ? p->end_mark : p->q_len;
    if (len > p->chunk)
        len = p->chunk;
    if (p->q_off == end)
        return p->eof && !p->hold_end ? 0 : CC_IO_WOULD_BLOCK;
    if (len > end - p->q_off)
        len = end - p->q_off;
    memcpy(buf, p->q + p->q_off, len);
    p->q_off += len;
    return (long)len;
}

/* What the real SSL end wrote, toward the session (and into the recording while
 * the handshake lasts). */
static void ssl_out(fz_peer *p, bool handshake)
{
    uint8_t b[16384];
    int n;
    while ((n = BIO_read(p->from_ssl, b, sizeof b)) > 0) {
        q_add(p, b, (size_t)n);
        if (p->record && handshake)
            seg_add(p->tls, true, b, (size_t)n);
    }
}

void fz_peer_pump(fz_peer *p)
{
    uint8_t sink[16384];
    if (!p->ssl) {
        if (p->advance && !p->diverged)
            replay_advance(p);
        return;
    }
    if (p->eof)
        return;
    rng_cur = 1;
    if (!p->up) {
        int r = SSL_do_handshake(p->ssl);
        if (r <= 0) {
            int e = SSL_get_error(p->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                p->eof = true; /* the session refused us: nothing more to send */
            ssl_out(p, true);
            rng_cur = 0;
            return;
        }
        if (p->record) { /* what the library sent past its handshake is not part of the recording */
            fz_tls *t = p->tls;
            size_t extra = (size_t)BIO_pending(p->to_ssl);
            if (t->nseg && !t->seg[t->nseg - 1].ours && extra <= t->seg[t->nseg - 1].len)
                t->seg[t->nseg - 1].len -= extra;
        }
        ssl_out(p, true);
        p->up = true;
    }
    while (SSL_read(p->ssl, sink, sizeof sink) > 0)
        ;
    while (p->in_off < avail(p)) {
        size_t n = avail(p) - p->in_off < p->record_len ? avail(p) - p->in_off : p->record_len;
        if (SSL_write(p->ssl, p->in + p->in_off, (int)n) <= 0)
            break;
        p->in_off += n;
    }
    if (p->in_off == p->in_len && !p->hold_end && !p->paused) {
        if (p->close_notify)
            SSL_shutdown(p->ssl);
        p->eof = true;
    }
    ssl_out(p, false);
    rng_cur = 0;
}

bool fz_peer_all_in(const fz_peer *p)
{
    size_t end = p->end_mark ? p->end_mark : p->q_len;
    return p->q_off >= end && (!p->tls || (p->up && p->in_off == avail(p)));
}

void fz_peer_resume(fz_peer *p)
{
    if (!p->paused)
        return;
    p->paused = false;
    if (p->tls && !p->ssl && p->up && !p->diverged)
        replay_data(p);
}

size_t fz_after_first_hello(const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= CC__FRAME_HDR) {
        uint32_t len = (uint32_t)p[off + 4] << 24 | (uint32_t)p[off + 5] << 16 | (uint32_t)p[off + 6] << 8 | p[off + 7];
        if (len > n - off - CC__FRAME_HDR)
            break;
        off += CC__FRAME_HDR + len;
        if (p[off - CC__FRAME_HDR - len] == 1)
            return off;
    }
    return 0;
}

void fz_peer_end(fz_peer *p)
{
    SSL_free(p->ssl); /* frees both BIOs */
    free(p->q);
    p->ssl = NULL;
    p->q = NULL;
    ERR_clear_error();
}
