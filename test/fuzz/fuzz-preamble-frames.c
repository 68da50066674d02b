/* fuzz-preamble-frames.c -- libFuzzer target for what a peer sends a session: the preamble check, the
 * frame header and the typed frame parsers session.c uses (with a pack round trip), and a whole session. */
#define _GNU_SOURCE
#include <carboncopy.h>

#include "../../lib/core/frame.h"
#include "peer.h"

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
    case CC__F_WINDOW:
        if (m->window.increment == 0 || m->window.increment > CC__WINDOW_MAX)
            abort();
        break;
    case CC__F_CONSENT_WAIT:
        if (m->consent_wait.timeout_ms == 0 || m->consent_wait.timeout_ms > 86400000u)
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
    case CC__F_WINDOW:
        return a->window.channel == b->window.channel && a->window.increment == b->window.increment;
    case CC__F_CONSENT_WAIT:
        return a->consent_wait.timeout_ms == b->consent_wait.timeout_ms;
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
        ((type == CC__F_DATA || type == CC__F_WINDOW) && h2.channel != channel))
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
        if (h.len > max || h.type < CC__F_HELLO || h.type > CC__F_LAST)
            abort();
        if (size - off - CC__FRAME_HDR < h.len)
            break;
        read_payload(h.type, h.channel, data + off + CC__FRAME_HDR, h.len);
        off += CC__FRAME_HDR + h.len;
    }
    /* Every layout over the whole input too, header or not. */
    for (int t = CC__F_HELLO; t <= CC__F_LAST; t++)
        read_payload(t, 7, data, size);
    text_copy(data, size);
}

/* ---- (c): a whole session ---- */
static char tmpdir[64];
static fz_tls *as_console, *as_client; /* the harness's TLS ends */
static bool debug;                     /* CC_FUZZ_DEBUG set: say how each session went, to check the seeds */
static int max_state;                  /* the furthest state this run's session reached */
static unsigned long diverged;         /* runs whose replayed handshake the session did not follow */

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

static int run_once(uint8_t mode, const uint8_t *in, size_t len, bool real, bool record, bool *div);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char cert[128], key[128];
    fz_openssl_init();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cc-fuzz.XXXXXX");
    if (!mkdtemp(tmpdir))
        abort();
    atexit(cleanup);
    if (fz_make_cert(tmpdir, cert, key, sizeof cert) < 0)
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
    /* The CA file is the harness's certificate, so the console's chain check
     * finds it at once instead of reading the system store's directory on
     * every handshake; the callback still has the last word. */
    console_ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    if (!console_ctx || cc_context_set_ca_file(console_ctx, cert) < 0 ||
        cc_context_set_verify_callback(console_ctx, accept_any, NULL) < 0 ||
        cc_context_add_authenticator(console_ctx, &nop, NULL) < 0 ||
        cc_context_add_builtin_authenticator(console_ctx, "nt") < 0) {
        fprintf(stderr, "fuzz: console context: %s\n", console_ctx ? cc_context_errmsg(console_ctx) : "no memory");
        abort();
    }
    debug = getenv("CC_FUZZ_DEBUG") != NULL;
    as_console = fz_tls_new(CC_ROLE_CONSOLE, cert, key);
    as_client = fz_tls_new(CC_ROLE_CLIENT, cert, key);
    if (!as_console || !as_client)
        abort();
    /* One real handshake each way to replay; then a replay must get the
     * session past TLS, else every input uses a real SSL end. */
    static const uint8_t modes[2] = {0x7d, 0xfd}; /* TLS, licence granted, close_notify, 16 KiB; client, console */
    for (int i = 0; i < 2; i++) {
        fz_tls *t = i ? as_client : as_console;
        bool div = false;
        int st = run_once(modes[i], NULL, 0, true, true, &div);
        if (!fz_tls_replays(t)) {
            fprintf(stderr, "fuzz: no handshake to replay (%s); every run uses a real TLS end\n", cc_state_name(st));
            continue;
        }
        st = run_once(modes[i], NULL, 0, false, false, &div);
        if (div || st < CC_STATE_HELLO) {
            fprintf(stderr,
                    "fuzz: the replayed handshake did not get the session past TLS; every run uses a real TLS end\n");
            fz_tls_replay_off(t);
        }
    }
    return 0;
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
    if (ev->type == CC_EVENT_STATE && ev->state > max_state && ev->state <= CC_STATE_ESTABLISHED)
        max_state = ev->state;
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

/* One session, fed `in` as the mode says (see session_run); real: a real SSL
 * end even if a handshake could be replayed; record: keep this handshake.
 * Returns the furthest state reached; *div: the replay was not followed. */
static int run_once(uint8_t mode, const uint8_t *in, size_t len, bool real, bool record, bool *div)
{
    bool console = mode & 0x80;
    size_t unit = (size_t)(mode >> 3 & 15) + 1; /* 1..16 */
    fz_peer p = {.in = in,
                 .in_len = len,
                 .tls = mode & 1 ? (console ? as_client : as_console) : NULL,
                 .real = real,
                 .record = record,
                 .close_notify = mode & 4,
                 .chunk = unit == 16 ? 65536 : unit * 97,
                 .record_len = unit * 1024,
                 .pause_at = console ? 0 : fz_after_first_hello(in, len)};
    max_state = CC_STATE_NEW;
    fz_rng_reset();
    if (fz_peer_start(&p) < 0)
        abort();
    int err = 0;
    cc_session *s = cc_session_new(console ? console_ctx : client_ctx, &err);
    if (!s || (console && cc_session_set_credentials(s, "user", "DOMAIN", "Password") < 0))
        abort();
    cc_session_set_event_callback(s, on_event, NULL);
    if (cc_session_set_transport(s, fz_peer_send, fz_peer_recv, &p, NULL) < 0)
        abort();
    for (int i = 0; i < MAX_STEPS; i++) {
        int r = cc_session_step(s);
        if (r <= 0)
            break;
        if (r & CC_WANT_JOB)
            answer_jobs(s, !(mode & 2));
        if (p.paused && (cc_session_state(s) >= CC_STATE_AUTHENTICATING || i == MAX_STEPS / 2))
            fz_peer_resume(&p); /* as a console, the frames after its HELLO wait for the client's */
        fz_peer_pump(&p);
    }
    if (debug)
        fprintf(stderr, "fuzz: mode 0x%02x%s: session %s, error %s: %s\n", mode,
                !p.tls  ? ""
                : p.ssl ? " (real TLS end)"
                        : " (replayed handshake)",
                cc_state_name(cc_session_state(s)), cc_err_name(cc_session_error(s)), cc_session_errmsg(s));
    cc_session_free(s);
    if (record && fz_tls_record_end(p.tls, &p) < 0 && debug)
        fprintf(stderr, "fuzz: the recorded handshake is incomplete\n");
    *div = p.diverged;
    fz_peer_end(&p);
    return max_state;
}

/* Input: mode byte (bit 0: 0 = raw bytes, 1 = through TLS; bit 1: deny the
 * licence; bit 2: close_notify at the end; bits 3-6: read/record size; bit 7:
 * the session is a console and the harness the client), then what the peer
 * sends. */
static void session_run(const uint8_t *data, size_t size)
{
    bool div = false;
    if (size < 1)
        return;
    run_once(data[0], data + 1, size - 1, false, false, &div);
    if (div) { /* the session did not follow the recorded handshake: the input again, with a real TLS end */
        diverged++;
        if (debug)
            fprintf(stderr, "fuzz: replay not followed (%lu so far); again with a real TLS end\n", diverged);
        run_once(data[0], data + 1, size - 1, true, false, &div);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parsers(data, size);
    /* OpenSSL's heap is outside LeakSanitizer's sight: an input after which
     * it holds more, twice running (the first may fill a cache), leaks. */
    size_t before = fz_openssl_live();
    session_run(data, size);
    size_t after = fz_openssl_live();
    if (after > before) {
        session_run(data, size);
        if (fz_openssl_live() > after) {
            fprintf(stderr,
                    "fuzz: OpenSSL holds %zu more bytes after each run of this input: an OpenSSL object leaks\n",
                    fz_openssl_live() - after);
            abort();
        }
    }
    return 0;
}
