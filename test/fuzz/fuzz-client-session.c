/* fuzz-client-session.c -- libFuzzer target for a whole client session as a stranger reaches cc-client: what a
 * console sends (raw, or frames in real TLS), checked against the bounds a hostile peer must not break. */
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

#define MAX_STEPS     256
#define SEND_LIMIT    16384u /* CC_LIMIT_SEND_BUFFER: the smallest allowed, so a flood reaches it */
#define TOKEN_LIMIT   4096u  /* CC_LIMIT_AUTH_TOKEN: NTLM's messages fit */
#define PENDING_BOUND ((size_t)SEND_LIMIT + TOKEN_LIMIT + 65536)
#define LIBRARY_BOUND ((size_t)1 << 20) /* bytes the library may hold for one stranger's session */

static char tmpdir[64];
static cc_context *ctx;
static fz_tls *as_console;
static bool debug;

/* ---- the library's memory, counted ---- */

static size_t lib_live, lib_peak;

static void *count_malloc(size_t n, void *user)
{
    if (n > LIBRARY_BOUND || lib_live + n > LIBRARY_BOUND) { /* also keeps n + 16 from wrapping */
        fprintf(stderr, "fuzz: the library asks for %zu bytes holding %zu, more than %zu together\n", n, lib_live,
                LIBRARY_BOUND);
        abort();
    }
    size_t *b = malloc(n + 16);
    if (!b)
        return NULL;
    b[0] = n;
    lib_live += n;
    if (lib_live > lib_peak)
        lib_peak = lib_live;
    return (uint8_t *)b + 16;
}

static void count_free(void *p, void *user)
{
    if (!p)
        return;
    size_t *b = (size_t *)((uint8_t *)p - 16);
    lib_live -= b[0];
    free(b);
}

static void *count_realloc(void *p, size_t n, void *user)
{
    if (!p)
        return count_malloc(n, user);
    size_t old = ((size_t *)((uint8_t *)p - 16))[0];
    void *d = count_malloc(n, user);
    if (!d)
        return NULL;
    memcpy(d, p, old < n ? old : n);
    count_free(p, user);
    return d;
}

/* ---- "psk": a pre-shared-key mechanism of the harness ----
 * The console sends a name, the client a nonce, the console the nonce XOR the
 * key. The nonce is fixed, not bound to TLS, so that a seed can reach the
 * established state; memcmp (not constant time) lets the fuzzer find it too. */
static const uint8_t psk_key[8] = "fuzz-key", psk_nonce[8] = "cc-nonce";
static bool psk_done; /* this run's psk finished on a token */

struct psk {
    char name[33];
    int round;
};

static int psk_start(void *mech_data, cc_auth *auth, void **state)
{
    *state = calloc(1, sizeof(struct psk));
    return *state ? 0 : CC_ERR_NOMEM;
}

static int psk_step(void *state, cc_auth *auth, const uint8_t *in, size_t len)
{
    struct psk *st = state;
    if (!in)
        return cc_auth_set_error(auth, CC_ERR_AUTH_TOKEN, "psk: the client waits for the console's token");
    if (st->round++ == 0) {
        if (len < 1 || len > 32 || memchr(in, 0, len))
            return cc_auth_set_error(auth, CC_ERR_AUTH_TOKEN, "psk: a name is 1..32 bytes");
        memcpy(st->name, in, len);
        if (strcmp(st->name, "alice") != 0)
            return cc_auth_set_error(auth, CC_ERR_AUTH_UNKNOWN_USER, "psk: no key for this name");
        return cc_auth_set_output(auth, psk_nonce, sizeof psk_nonce) < 0 ? CC_ERR_NOMEM : CC_AUTH_CONTINUE;
    }
    uint8_t want[8];
    for (int i = 0; i < 8; i++)
        want[i] = psk_nonce[i] ^ psk_key[i];
    if (len != 8 || memcmp(in, want, 8) != 0)
        return cc_auth_set_error(auth, CC_ERR_AUTH_BAD_CREDENTIALS, "psk: wrong proof");
    char id[40];
    snprintf(id, sizeof id, "psk:%s", st->name);
    if (cc_auth_set_identity(auth, id) < 0)
        return CC_ERR_NOMEM;
    psk_done = true;
    return CC_AUTH_DONE;
}

static void psk_end(void *state)
{
    free(state);
}

/* ---- set-up, once ---- */

static void cleanup(void)
{
    static const char *const files[] = {"cert.pem", "key.pem", "smbpasswd"};
    char p[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    rmdir(tmpdir);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int run_once(const uint8_t *data, size_t size, bool real, bool record, bool *div);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char cert[128], key[128], accounts[128];
    fz_openssl_init();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cc-fuzz.XXXXXX");
    if (!mkdtemp(tmpdir))
        abort();
    atexit(cleanup);
    snprintf(accounts, sizeof accounts, "%s/smbpasswd", tmpdir);
    /* "User" / "Password" is MS-NLMP 4.2.4's account, so its messages reach the
     * proof; the others take each refusal of the store. */
    if (fz_make_cert(tmpdir, cert, key, sizeof cert) < 0 ||
        write_file(
            accounts,
            "# fuzz-client-session\n"
            "User:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:A4F49C406510BDCAB6824EE7C30FD852:[U          ]:LCT-5F5E0C3A:\n"
            "locked:1001:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:A4F49C406510BDCAB6824EE7C30FD852:[UL         "
            "]:LCT-5F5E0C3A:\n"
            "nopw:1002:NO PASSWORDXXXXXXXXXXXXXXXXXXXXX:NO PASSWORDXXXXXXXXXXXXXXXXXXXXX:[NU         ]:LCT-5F5E0C3A:\n"
            "machine$:1003:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:A4F49C406510BDCAB6824EE7C30FD852:[W          "
            "]:LCT-5F5E0C3A:\n") < 0)
        abort();
    static const cc_authenticator psk = {sizeof(cc_authenticator), "psk", psk_start, psk_step, psk_end, NULL, NULL, 0};
    static const cc_allocator alloc = {sizeof(cc_allocator), NULL, count_malloc, count_realloc, count_free};
    int err = 0;
    ctx = cc_context_new(CC_ROLE_CLIENT, &alloc, &err);
    if (!ctx || cc_context_set_certificate(ctx, cert, key) < 0 || cc_context_add_authenticator(ctx, &psk, NULL) < 0 ||
        cc_context_add_builtin_authenticator(ctx, "nt") < 0 ||
        cc_context_set_auth_option(ctx, "nt", "accounts", accounts) < 0 ||
        cc_context_set_auth_option(ctx, "nt", "domain", "DOMAIN") < 0 ||
        cc_context_set_license_url(ctx, "http://127.0.0.1:9/licence") < 0 ||
        cc_context_set_license_cache_ttl(ctx, 0) < 0 || /* every input gets its licence job */
        cc_context_set_limit(ctx, CC_LIMIT_SEND_BUFFER, SEND_LIMIT) < 0 ||
        cc_context_set_limit(ctx, CC_LIMIT_AUTH_TOKEN, TOKEN_LIMIT) < 0) {
        fprintf(stderr, "fuzz: client context: %s\n", ctx ? cc_context_errmsg(ctx) : cc_strerror(err));
        abort();
    }
    debug = getenv("CC_FUZZ_DEBUG") != NULL;
    if (debug)
        fprintf(stderr, "fuzz: the context holds %zu bytes\n", lib_live);
    as_console = fz_tls_new(CC_ROLE_CONSOLE, cert, key);
    if (!as_console)
        abort();
    /* One real handshake to replay; then a replay must get the session past
     * TLS, else every input uses a real SSL end. */
    static const uint8_t hello_mode[2] = {0xf9, 0}; /* TLS, granted, close_notify, 16 KiB */
    bool div = false;
    run_once(hello_mode, 2, true, true, &div);
    if (!fz_tls_replays(as_console))
        fprintf(stderr, "fuzz: no handshake to replay; every run uses a real TLS end\n");
    else if (run_once(hello_mode, 2, false, false, &div) < CC_STATE_HELLO || div) {
        fprintf(stderr,
                "fuzz: the replayed handshake did not get the session past TLS; every run uses a real TLS end\n");
        fz_tls_replay_off(as_console);
    }
    return 0;
}

/* ---- one session ---- */

struct run {
    uint8_t m0, m1;
    const uint8_t *in; /* after the two mode bytes */
    size_t in_len;
    unsigned auth_tokens; /* complete AUTH_TOKEN frames the peer sends (TLS) */
    cc_job *held;         /* a licence job answered late */
    int max_state;
    size_t max_pending;
};
static struct run *cur;

static void fail(const char *what, cc_session *s)
{
    fprintf(stderr, "fuzz: %s (mode %02x %02x; session %s, %s: %s)\n", what, cur->m0, cur->m1,
            cc_state_name(cc_session_state(s)), cc_err_name(cc_session_error(s)), cc_session_errmsg(s));
    abort();
}

static void answer_licence(cc_job *j, int how)
{
    switch (how) {
    case 0:
        cc_job_license_set_figures(j, 10, 1);
        break;
    case 1:
        cc_job_license_set_figures(j, 5, 5); /* none free */
        break;
    case 2:
        cc_job_license_set_status(j, 503); /* an HTTP error and no page */
        break;
    default:
        cc_job_fail(j, CC_ERR_LICENSE_UNREACHABLE, "fuzz harness: no licence server");
    }
}

static void take_jobs(cc_session *s, bool hold)
{
    cc_job *j;
    while ((j = cc_session_take_job(s))) {
        if (cc_job_type(j) != CC_JOB_LICENSE) {
            cc_job_fail(j, CC_ERR_CANCELLED, "fuzz harness"); /* no KDC here */
            cc_session_job_done(s, j);
        } else if (hold && !cur->held) {
            cur->held = j;
        } else {
            answer_licence(j, cur->m0 >> 1 & 3);
            cc_session_job_done(s, j);
        }
    }
}

/* What a stranger must not get: past TLS without TLS, or authenticated
 * (the success event, then the established state) without tokens. */
static void check_auth(cc_session *s, const char *mech, bool established)
{
    if (!cur->auth_tokens || !mech)
        fail("authenticated without an AUTH_TOKEN exchange", s);
    if (strcmp(mech, "psk") == 0 && !psk_done)
        fail("authenticated by psk, which never finished", s);
    if (established && !cc_session_identity(s))
        fail("established without an identity", s);
}

static void check_state(cc_session *s, int state)
{
    if (state > cur->max_state && state <= CC_STATE_ESTABLISHED)
        cur->max_state = state;
    if (!(cur->m0 & 1) && state >= CC_STATE_HELLO && state <= CC_STATE_ESTABLISHED)
        fail("raw bytes got the session past TLS", s);
    if (state == CC_STATE_ESTABLISHED)
        check_auth(s, cc_session_mechanism(s), true);
}

static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    if (debug)
        fprintf(stderr, "fuzz: event %d state %s code %d text \"%s\"\n", ev->type, cc_state_name(ev->state), ev->code,
                ev->text);
    if (ev->type == CC_EVENT_STATE)
        check_state(s, ev->state);
    if (ev->type == CC_EVENT_AUTH && ev->code == 0)
        check_auth(s, ev->mechanism, false);
    /* What a host may do from the callback, as the peer's data asks (mode
     * byte 1, bit 4): send back (n times), ping (n times), close, pause. */
    if (ev->type != CC_EVENT_DATA || !ev->len || !(cur->m1 & 0x10))
        return;
    int n = ev->len > 1 ? ev->data[1] % 16 + 1 : 1;
    switch (ev->data[0]) {
    case 'S':
        for (int i = 0; i < n && cc_session_send(s, (uint16_t)ev->channel, ev->data, ev->len) >= 0; i++)
            ;
        break;
    case 'P':
        for (int i = 0; i < n; i++)
            cc_session_ping(s);
        break;
    case 'C':
        cc_session_close(s, ev->len > 1 ? -ev->data[1] : 0, "fuzz");
        break;
    case 'R':
        cc_session_pause_reading(s, ev->len > 1 && ev->data[1] & 1);
        break;
    }
}

/* The complete AUTH_TOKEN frames in what the peer sends, read as the session
 * reads frames (up to the first header it would refuse). */
static unsigned count_auth_tokens(const uint8_t *p, size_t n)
{
    unsigned c = 0;
    size_t off = 0;
    while (n - off >= CC__FRAME_HDR) {
        uint8_t type = p[off];
        uint32_t len = (uint32_t)p[off + 4] << 24 | (uint32_t)p[off + 5] << 16 | (uint32_t)p[off + 6] << 8 | p[off + 7];
        if (type < 1 || type > 8 || len > n - off - CC__FRAME_HDR)
            break;
        c += type == 3;
        off += CC__FRAME_HDR + len;
    }
    return c;
}

/* Input: two mode bytes, then what the console sends.
 * Byte 0: bit 0: raw bytes (0) or frames through TLS (1); bits 1-2: the
 * licence job is granted, denied (5 of 5 in use), HTTP 503, or fails; bit 3:
 * close_notify at the end; bits 4-7: read size (n+1)*97 (65536 for 15) and
 * TLS record size (n+1) KiB.
 * Byte 1: bit 0: the licence job is answered only once the peer has sent
 * everything; bits 1-3: k > 0: once TLS is up the peer reads 2^(k+7) bytes of
 * the session's, then no more; bit 4: the host acts on DATA ('S' send back,
 * 'P' ping, 'C' close, 'R' pause reading); bit 5: the console sends all at
 * once, else what follows its HELLO waits for the client's HELLO. */
static int run_once(const uint8_t *data, size_t size, bool real, bool record, bool *div)
{
    struct run r = {data[0], data[1], data + 2, size - 2, 0, NULL, CC_STATE_NEW, 0};
    size_t unit = (size_t)(r.m0 >> 4) + 1;
    int win = r.m1 >> 1 & 7;
    fz_peer p = {.in = r.in,
                 .in_len = r.in_len,
                 .tls = r.m0 & 1 ? as_console : NULL,
                 .real = real,
                 .record = record,
                 .close_notify = r.m0 & 8,
                 .chunk = unit == 16 ? 65536 : unit * 97,
                 .record_len = unit * 1024,
                 .window = win ? (size_t)1 << (win + 7) : 0,
                 .hold_end = r.m1 & 1,
                 .pause_at = r.m1 & 0x20 ? 0 : fz_after_first_hello(r.in, r.in_len)};
    cur = &r;
    psk_done = false;
    if (p.tls)
        r.auth_tokens = count_auth_tokens(r.in, r.in_len);
    fz_rng_reset();
    if (fz_peer_start(&p) < 0)
        abort();
    int err = 0;
    cc_session *s = cc_session_new(ctx, &err);
    if (!s)
        abort();
    cc_session_set_event_callback(s, on_event, NULL);
    if (cc_session_set_transport(s, fz_peer_send, fz_peer_recv, &p, NULL) < 0)
        abort();
    for (int i = 0; i < MAX_STEPS; i++) {
        int w = cc_session_step(s);
        size_t pending = cc_session_pending(s);
        if (pending > r.max_pending)
            r.max_pending = pending;
        if (pending >= PENDING_BOUND) {
            char what[96];
            snprintf(what, sizeof what, "%zu bytes pending, the bound is %zu", pending, PENDING_BOUND);
            fail(what, s);
        }
        check_state(s, cc_session_state(s));
        if (w <= 0)
            break;
        if (w & CC_WANT_JOB)
            take_jobs(s, r.m1 & 1);
        if (p.paused && (cc_session_state(s) >= CC_STATE_AUTHENTICATING || i == MAX_STEPS / 2))
            fz_peer_resume(&p); /* the client's HELLO is out (or it never comes) */
        fz_peer_pump(&p);
        if (r.held && (fz_peer_all_in(&p) || i == MAX_STEPS / 2)) { /* late: all in but the end, or half time */
            answer_licence(r.held, r.m0 >> 1 & 3);
            cc_session_job_done(s, r.held);
            r.held = NULL;
        }
        if (!r.held && fz_peer_all_in(&p))
            p.hold_end = false; /* nothing (more) to answer late: the end may come */
    }
    if (debug)
        fprintf(stderr,
                "fuzz: mode %02x %02x%s: session %s, error %s: %s; at most %zu bytes pending, library peak %zu\n", r.m0,
                r.m1,
                !p.tls  ? ""
                : p.ssl ? " (real TLS end)"
                        : " (replayed handshake)",
                cc_state_name(cc_session_state(s)), cc_err_name(cc_session_error(s)), cc_session_errmsg(s),
                r.max_pending, lib_peak);
    cc_session_free(s);
    if (r.held)
        cc_job_free(r.held);
    if (record && fz_tls_record_end(p.tls, &p) < 0 && debug)
        fprintf(stderr, "fuzz: the recorded handshake is incomplete\n");
    *div = p.diverged;
    fz_peer_end(&p);
    cur = NULL;
    return r.max_state;
}

static void session_run(const uint8_t *data, size_t size)
{
    bool div = false;
    run_once(data, size, false, false, &div);
    if (div) { /* the session did not follow the recorded handshake: the input again, with a real TLS end */
        if (debug)
            fprintf(stderr, "fuzz: replay not followed; again with a real TLS end\n");
        run_once(data, size, true, false, &div);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
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
