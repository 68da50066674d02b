/* fuzz-preamble-frames.c -- libFuzzer target for what a peer sends a session: the preamble check, the
 * frame header and the typed frame parsers session.c uses (with a pack round trip), and a whole session. */
#define _GNU_SOURCE
#include <carboncopy.h>

#include "../../lib/core/frame.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STEPS 256 /* a session fed a bounded input must end well within this */

/* ---- (a) and (b): the parsers on their own ---- */

static cc_context *client_ctx, *console_ctx;

static void check_text(const char *t, size_t size)
{
    size_t n = strnlen(t, size);
    if (n == size || !cc__utf8_valid((const uint8_t *)t, n))
        abort(); /* a parsed text field is terminated inside its field and UTF-8 */
}

/* What a parser accepted is well-formed by the rules it promises. */
static void check_parsed(int type, const cc__msg *m, const uint8_t *p, size_t len)
{
    switch (type) {
    case CC__F_HELLO:
        if (m->hello.n < 1 || m->hello.n > CC__MAX_AUTH)
            abort();
        for (size_t i = 0; i < m->hello.n; i++) {
            size_t l = strnlen(m->hello.mech[i], CC__MECH_MAX + 1);
            if (l == 0 || l > CC__MECH_MAX || strspn(m->hello.mech[i], "abcdefghijklmnopqrstuvwxyz0123456789-") != l)
                abort();
        }
        break;
    case CC__F_LICENSE:
        check_text(m->license.detail, sizeof m->license.detail);
        break;
    case CC__F_AUTH_RESULT:
        check_text(m->result.text, sizeof m->result.text);
        if (m->result.code > 0)
            abort();
        if (m->result.token_len && (m->result.token < p || m->result.token + m->result.token_len > p + len))
            abort(); /* a blob must point inside the payload */
        break;
    case CC__F_CLOSE:
        check_text(m->close.reason, sizeof m->close.reason);
        break;
    case CC__F_PING:
    case CC__F_PONG:
        if (m->ping.len > 8 || m->ping.len > len)
            abort();
        break;
    }
}

static bool same(int type, const cc__msg *a, const cc__msg *b)
{
    switch (type) {
    case CC__F_HELLO:
        if (a->hello.caps != b->hello.caps || a->hello.n != b->hello.n)
            return false;
        for (size_t i = 0; i < a->hello.n; i++)
            if (strcmp(a->hello.mech[i], b->hello.mech[i]) != 0)
                return false;
        return true;
    case CC__F_LICENSE:
        return a->license.code == b->license.code && a->license.count == b->license.count &&
               a->license.in_use == b->license.in_use && a->license.granted == b->license.granted &&
               strcmp(a->license.detail, b->license.detail) == 0;
    case CC__F_AUTH_TOKEN:
        return a->token.len == b->token.len &&
               (!a->token.len || memcmp(a->token.data, b->token.data, a->token.len) == 0);
    case CC__F_AUTH_RESULT:
        return a->result.code == b->result.code && strcmp(a->result.text, b->result.text) == 0 &&
               a->result.token_len == b->result.token_len &&
               (!a->result.token_len || memcmp(a->result.token, b->result.token, a->result.token_len) == 0);
    case CC__F_DATA:
        return a->data.channel == b->data.channel && a->data.len == b->data.len &&
               (!a->data.len || memcmp(a->data.data, b->data.data, a->data.len) == 0);
    case CC__F_PING:
    case CC__F_PONG:
        return a->ping.len == b->ping.len && memcmp(a->ping.data, b->ping.data, a->ping.len) == 0;
    case CC__F_CLOSE:
        return a->close.code == b->close.code && strcmp(a->close.reason, b->close.reason) == 0;
    }
    return false;
}

/* The session's own parser for `type` (cc__frame_parse); what it accepts must
 * obey its rules and survive a pack/parse round trip unchanged. */
static void read_payload(int type, uint16_t channel, const uint8_t *p, size_t len)
{
    char detail[CC__DETAIL_MAX] = "";
    cc__frame_hdr h = {(uint8_t)type, 0, channel, (uint32_t)len};
    cc__msg m, back;
    int r = cc__frame_parse(&h, p, &m, detail, sizeof detail);
    if (r != CC_OK && r != CC_ERR_BAD_FRAME)
        abort();
    if (r < 0) {
        if (!detail[0])
            abort(); /* every refusal says why */
        return;
    }
    check_parsed(type, &m, p, len);
    cc__buf out = {0};
    r = cc__frame_pack(&out, client_ctx, type, &m);
    if (r == CC_ERR_NOMEM) /* allocator_may_return_null: a huge payload may not fit */
        return;
    cc__frame_hdr h2;
    if (r != CC_OK ||
        cc__frame_hdr_parse(cc__buf_head(&out), cc__buf_size(&out), 0xffffffffu, &h2, detail, sizeof detail) != 1)
        abort();
    if (h2.type != type || cc__buf_size(&out) != CC__FRAME_HDR + (size_t)h2.len ||
        (type == CC__F_DATA && h2.channel != channel))
        abort();
    if (cc__frame_parse(&h2, cc__buf_head(&out) + CC__FRAME_HDR, &back, detail, sizeof detail) != CC_OK ||
        !same(type, &m, &back))
        abort();
    cc__buf_free(client_ctx, &out);
}

/* Whatever the text, cc__text_copy makes of it fits and is UTF-8. */
static void text_copy(const uint8_t *data, size_t size)
{
    char src[600], dst[300];
    size_t n = size < sizeof src - 1 ? size : sizeof src - 1;
    memcpy(src, data, n);
    src[n] = 0;
    size_t cap = size ? 1 + data[0] % sizeof dst : sizeof dst;
    cc__text_copy(dst, cap, src);
    size_t l = strnlen(dst, cap);
    if (l == cap || !cc__utf8_valid((const uint8_t *)dst, l))
        abort();
    if (cc__utf8_valid((const uint8_t *)src, strlen(src)) && strlen(src) < cap && strcmp(src, dst) != 0)
        abort(); /* valid text that fits is left alone */
}

static void parsers(const uint8_t *data, size_t size)
{
    char detail[CC__DETAIL_MAX];
    if (size >= CC__PREAMBLE_LEN) {
        int v = cc__preamble_check(data, detail, sizeof detail);
        if (v > CC__PROTO_MAX || v == 0)
            abort();
    }
    /* A stream of frames, as the session reassembles them; the limit comes from the input. */
    uint32_t max = size >= 2 ? 16384u + (uint32_t)(data[0] << 8 | data[1]) * 8u : 16384u;
    size_t off = 0;
    while (off < size) {
        cc__frame_hdr h;
        int r = cc__frame_hdr_parse(data + off, size - off, max, &h, detail, sizeof detail);
        if (r <= 0)
            break;
        if (h.len > max || h.type < CC__F_HELLO || h.type > CC__F_CLOSE)
            abort();
        if (size - off - CC__FRAME_HDR < h.len)
            break;
        read_payload(h.type, h.channel, data + off + CC__FRAME_HDR, h.len);
        off += CC__FRAME_HDR + h.len;
    }
    /* Every layout over the whole input too, header or not. */
    for (int t = CC__F_HELLO; t <= CC__F_CLOSE; t++)
        read_payload(t, 7, data, size);
    text_copy(data, size);
}

/* ---- (c): a client session ---- */
static char tmpdir[64];
static SSL_CTX *peer_as_console, *peer_as_client; /* the harness's own TLS ends */
static bool debug;                                /* CC_FUZZ_DEBUG set: say how each session went, to check the seeds */

static int nop_start(void *mech_data, cc_auth *auth, void **state)
{
    *state = mech_data;
    return 0;
}

/* Client: accepts the token "ok", asks for another token for "more", refuses
 * the rest. Console: sends "ok" and is satisfied by an "ok" back. */
static int nop_step(void *state, cc_auth *auth, const uint8_t *in, size_t len)
{
    if (cc_auth_role(auth) == CC_ROLE_CONSOLE && !in)
        return cc_auth_set_output(auth, "ok", 2) < 0 ? CC_ERR_INTERNAL : CC_AUTH_CONTINUE;
    if (cc_auth_role(auth) == CC_ROLE_CONSOLE)
        return len == 2 && memcmp(in, "ok", 2) == 0 ? CC_AUTH_DONE
                                                    : cc_auth_set_error(auth, CC_ERR_AUTH_MUTUAL, "fuzz: not ok");
    if (len == 2 && memcmp(in, "ok", 2) == 0)
        return cc_auth_set_identity(auth, "fuzz") < 0 ? CC_ERR_INTERNAL : CC_AUTH_DONE;
    if (len == 4 && memcmp(in, "more", 4) == 0)
        return cc_auth_set_output(auth, "again", 5) < 0 ? CC_ERR_INTERNAL : CC_AUTH_CONTINUE;
    return cc_auth_set_error(auth, CC_ERR_AUTH_BAD_CREDENTIALS, "fuzz: not ok");
}

static void nop_end(void *state) {}

static int nt_lookup(void *user, const char *domain, const char *name, uint8_t nt_hash[16])
{
    if (strcmp(name, "user") != 0)
        return CC_ERR_AUTH_UNKNOWN_USER;
    memset(nt_hash, 0x11, 16);
    return 0;
}

static int accept_any(void *user, cc_session *session, const uint8_t *der, size_t der_len, int preverify_ok)
{
    return 1;
}

static void cleanup(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/cert.pem", tmpdir);
    unlink(p);
    snprintf(p, sizeof p, "%s/key.pem", tmpdir);
    unlink(p);
    rmdir(tmpdir);
}

/* A throw-away P-256 key and self-signed certificate for the client role. */
static int make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!k || !x)
        return -1;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, k);
    int ok = X509_sign(x, k, EVP_sha256()) > 0;
    FILE *c = fopen(cert_path, "w"), *kf = fopen(key_path, "w");
    ok = ok && c && kf && PEM_write_X509(c, x) == 1 && PEM_write_PrivateKey(kf, k, NULL, NULL, 0, NULL, NULL) == 1;
    if (c)
        fclose(c);
    if (kf)
        fclose(kf);
    X509_free(x);
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char cert[128], key[128];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cc-fuzz.XXXXXX");
    if (!mkdtemp(tmpdir))
        abort();
    atexit(cleanup);
    snprintf(cert, sizeof cert, "%s/cert.pem", tmpdir);
    snprintf(key, sizeof key, "%s/key.pem", tmpdir);
    if (make_cert(cert, key) < 0)
        abort();
    static const cc_authenticator nop = {sizeof(cc_authenticator), "fuzz", nop_start, nop_step, nop_end, NULL, NULL, 0};
    client_ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!client_ctx || cc_context_set_certificate(client_ctx, cert, key) < 0 ||
        cc_context_add_authenticator(client_ctx, &nop, NULL) < 0 ||
        cc_context_add_builtin_authenticator(client_ctx, "nt") < 0 ||
        cc_context_set_nt_account_lookup(client_ctx, nt_lookup, NULL) < 0 ||
        cc_context_set_license_url(client_ctx, "http://127.0.0.1:9/licence") < 0 ||
        cc_context_set_license_cache_ttl(client_ctx, 0) < 0) { /* every input gets its licence job */
        fprintf(stderr, "fuzz: client context: %s\n", client_ctx ? cc_context_errmsg(client_ctx) : "no memory");
        abort();
    }
    console_ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    if (!console_ctx || cc_context_set_verify_callback(console_ctx, accept_any, NULL) < 0 ||
        cc_context_add_authenticator(console_ctx, &nop, NULL) < 0 ||
        cc_context_add_builtin_authenticator(console_ctx, "nt") < 0) {
        fprintf(stderr, "fuzz: console context: %s\n", console_ctx ? cc_context_errmsg(console_ctx) : "no memory");
        abort();
    }
    debug = getenv("CC_FUZZ_DEBUG") != NULL;
    peer_as_console = SSL_CTX_new(TLS_client_method());
    peer_as_client = SSL_CTX_new(TLS_server_method());
    if (!peer_as_console || !peer_as_client ||
        SSL_CTX_use_certificate_file(peer_as_client, cert, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(peer_as_client, key, SSL_FILETYPE_PEM) != 1)
        abort();
    SSL_CTX_set_verify(peer_as_console, SSL_VERIFY_NONE, NULL);
    return 0;
}

/* What the harness plays: the console's bytes toward the session (the input,
 * or a preamble and TLS records carrying the input), then end of stream. */
struct peer {
    const uint8_t *in;
    size_t in_len, in_off;
    size_t chunk; /* largest read handed to the session */
    SSL *ssl;     /* mode 1: our TLS end, NULL in mode 0 */
    BIO *to_ssl, *from_ssl;
    size_t pre_seen; /* bytes of the session's preamble dropped */
    uint8_t pre_out[CC__PREAMBLE_LEN];
    size_t pre_sent;
    bool eof;
};

static long peer_send(void *user, const uint8_t *data, size_t len)
{
    struct peer *p = user;
    if (!p->ssl)
        return (long)len;
    size_t skip = p->pre_seen < CC__PREAMBLE_LEN ? CC__PREAMBLE_LEN - p->pre_seen : 0;
    if (skip > len)
        skip = len;
    p->pre_seen += skip;
    if (len > skip && BIO_write(p->to_ssl, data + skip, (int)(len - skip)) <= 0)
        return CC_IO_ERROR;
    return (long)len;
}

static long peer_recv(void *user, uint8_t *buf, size_t len)
{
    struct peer *p = user;
    if (len > p->chunk)
        len = p->chunk;
    if (!p->ssl) {
        if (p->in_off == p->in_len)
            return 0;
        if (len > p->in_len - p->in_off)
            len = p->in_len - p->in_off;
        memcpy(buf, p->in + p->in_off, len);
        p->in_off += len;
        return (long)len;
    }
    if (p->pre_sent < CC__PREAMBLE_LEN) {
        size_t n = CC__PREAMBLE_LEN - p->pre_sent < len ? CC__PREAMBLE_LEN - p->pre_sent : len;
        memcpy(buf, p->pre_out + p->pre_sent, n);
        p->pre_sent += n;
        return (long)n;
    }
    int n = BIO_read(p->from_ssl, buf, (int)len);
    if (n > 0)
        return n;
    return p->eof ? 0 : CC_IO_WOULD_BLOCK;
}

/* Mode 1: once our TLS handshake is done, the input goes out as TLS records
 * (of `record` bytes at most), then close_notify or a bare end of stream. */
static void peer_pump(struct peer *p, size_t record, bool close_notify)
{
    uint8_t sink[16384];
    if (!p->ssl || p->eof)
        return;
    if (!SSL_is_init_finished(p->ssl)) {
        int r = SSL_do_handshake(p->ssl);
        if (r <= 0) {
            int e = SSL_get_error(p->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                p->eof = true; /* the session refused us: nothing more to send */
            return;
        }
    }
    while (SSL_read(p->ssl, sink, sizeof sink) > 0)
        ;
    while (p->in_off < p->in_len) {
        size_t n = p->in_len - p->in_off < record ? p->in_len - p->in_off : record;
        if (SSL_write(p->ssl, p->in + p->in_off, (int)n) <= 0)
            break;
        p->in_off += n;
    }
    if (p->in_off == p->in_len) {
        if (close_notify)
            SSL_shutdown(p->ssl);
        p->eof = true;
    }
}

static void answer_jobs(cc_session *s, bool grant)
{
    cc_job *j;
    while ((j = cc_session_take_job(s))) {
        if (cc_job_type(j) == CC_JOB_LICENSE && grant)
            cc_job_license_set_figures(j, 10, 1);
        else
            cc_job_fail(j, CC_ERR_CANCELLED, "fuzz harness");
        cc_session_job_done(s, j);
    }
}

static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    if (debug)
        fprintf(stderr, "fuzz: event %d state %s code %d text \"%s\"\n", ev->type, cc_state_name(ev->state), ev->code,
                ev->text);
    /* What a host may do from the callback, as the peer's data asks. */
    if (ev->type != CC_EVENT_DATA || !ev->len)
        return;
    switch (ev->data[0]) {
    case 'C':
        cc_session_close(s, ev->len > 1 ? -ev->data[1] : 0, "fuzz");
        break;
    case 'S':
        cc_session_send(s, ev->channel, ev->data, ev->len);
        break;
    case 'P':
        cc_session_ping(s);
        break;
    case 'R':
        cc_session_pause_reading(s, ev->len > 1 && ev->data[1] & 1);
        break;
    }
}

/* Input: mode byte (bit 0: 0 = raw bytes, 1 = through TLS; bit 1: deny the
 * licence; bit 2: close_notify at the end; bits 3-6: read/record size; bit 7:
 * the session is a console and the harness the client), then what the peer
 * sends. */
static void session_run(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    uint8_t mode = data[0];
    struct peer p = {0};
    p.in = data + 1;
    p.in_len = size - 1;
    bool console = mode & 0x80;
    size_t unit = (size_t)(mode >> 3 & 15) + 1; /* 1..16 */
    p.chunk = unit == 16 ? 65536 : unit * 97;
    if (mode & 1) {
        p.ssl = SSL_new(console ? peer_as_client : peer_as_console);
        p.to_ssl = BIO_new(BIO_s_mem());
        p.from_ssl = BIO_new(BIO_s_mem());
        if (!p.ssl || !p.to_ssl || !p.from_ssl)
            abort();
        BIO_set_mem_eof_return(p.to_ssl, -1);
        BIO_set_mem_eof_return(p.from_ssl, -1);
        SSL_set_bio(p.ssl, p.to_ssl, p.from_ssl);
        if (console)
            SSL_set_accept_state(p.ssl);
        else
            SSL_set_connect_state(p.ssl);
        cc__preamble_write(p.pre_out);
    }
    int err = 0;
    cc_session *s = cc_session_new(console ? console_ctx : client_ctx, &err);
    if (!s || (console && cc_session_set_credentials(s, "user", "DOMAIN", "Password") < 0))
        abort();
    cc_session_set_event_callback(s, on_event, NULL);
    if (cc_session_set_transport(s, peer_send, peer_recv, &p, NULL) < 0)
        abort();
    for (int i = 0; i < MAX_STEPS; i++) {
        int r = cc_session_step(s);
        if (r <= 0)
            break;
        if (r & CC_WANT_JOB)
            answer_jobs(s, !(mode & 2));
        peer_pump(&p, unit * 1024, mode & 4);
    }
    if (debug)
        fprintf(stderr, "fuzz: mode 0x%02x: session %s, error %s: %s\n", mode, cc_state_name(cc_session_state(s)),
                cc_err_name(cc_session_error(s)), cc_session_errmsg(s));
    cc_session_free(s);
    SSL_free(p.ssl); /* frees both BIOs */
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parsers(data, size);
    session_run(data, size);
    return 0;
}
