/* nt.c -- the built-in "nt" authenticator: NTLMv2 (MS-NLMP) between console and
 * client, a local smbpasswd account store and the domain-controller account check. */
#include "nt.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_WINDOW_S    300
#define DEFAULT_REPLAY_SIZE 4096

struct replay_entry {
    uint8_t key[16]; /* client challenge || client timestamp */
    uint64_t expires_ms;
};

/* Per-context data (mech_data). Options are set before sessions start; only
 * the replay cache changes afterwards, under its own lock. */
struct nt_mech {
    cc_context *ctx;
    char *accounts, *realm, *krb5_conf, *domain, *computer;
    int dc_mode; /* -1 = default: required when a realm is set */
    uint32_t window_s;
    cc_nt_lookup_fn lookup;
    void *lookup_user;
    pthread_mutex_t lock;
    /* a ring in acceptance order: replay[replay_head] is the oldest of replay_n */
    struct replay_entry *replay;
    size_t replay_head, replay_n, replay_cap;
};

enum { ST_START, ST_SENT_NEG, ST_DONE, ST_WAIT_NEG, ST_WAIT_AUTH, ST_WAIT_DC };

struct nt_state {
    struct nt_mech *m;
    const cc_context *ctx;
    int role, stage;
    uint8_t ntowfv2[16];
    cc__buf neg, chal, auth; /* the three messages, for the MIC */
    uint8_t server_challenge[8];
    uint32_t charset;             /* what the CHALLENGE chose: CC__NTLM_NEGOTIATE_UNICODE or _OEM */
    struct cc__nt_authenticate a; /* points into auth */
    struct cc__nt_dc_job *dc;
    /* the account once its proof verified: name as the store spells it, domain */
    char canon[CC__NT_NAME_BUF], id_domain[CC__NT_NAME_BUF];
};

static int fail(cc_auth *auth, int code, const char *fmt, ...) CC__PRINTF(3, 4);
static int fail(cc_auth *auth, int code, const char *fmt, ...)
{
    char d[CC__DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d, sizeof d, fmt, ap);
    va_end(ap);
    cc_auth_log(auth, CC_LOG_INFO, d);
    return cc_auth_set_error(auth, code, d);
}

/* ---- names ---- */
static const char *our_domain(const struct nt_mech *m, char *buf, size_t n)
{
    if (m->domain)
        return m->domain;
    if (m->realm) {
        size_t i = 0;
        for (; m->realm[i] && m->realm[i] != '.' && i < 15 && i + 1 < n; i++)
            buf[i] = (char)((m->realm[i] >= 'a' && m->realm[i] <= 'z') ? m->realm[i] - 32 : m->realm[i]);
        buf[i] = '\0';
        if (i)
            return buf;
    }
    return "WORKGROUP";
}

static const char *our_computer(const struct nt_mech *m, char *buf, size_t n)
{
    if (m->computer)
        return m->computer;
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        return "CARBONCOPY";
    host[sizeof host - 1] = '\0';
    size_t i = 0;
    for (; host[i] && host[i] != '.' && i < 15 && i + 1 < n; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            c = '-';
        buf[i] = (char)((c >= 'a' && c <= 'z') ? c - 32 : c);
    }
    buf[i] = '\0';
    return i ? buf : "CARBONCOPY";
}

/* ---- replay cache ---- */
static void replay_key(const struct cc__nt_authenticate *a, uint8_t key[16])
{
    memcpy(key, a->client_challenge, 8);
    for (int i = 0; i < 8; i++)
        key[8 + i] = (uint8_t)(a->client_time >> (8 * i));
}

/* Expired entries out of the head; returns whether key is present and live.
 * Entries expire in acceptance order unless the window changed between them,
 * so the scan still checks each one's own expiry. Lock held. */
static bool replay_seen_locked(struct nt_mech *m, const uint8_t key[16], uint64_t now)
{
    while (m->replay_n && m->replay[m->replay_head].expires_ms <= now) {
        cc__wipe(&m->replay[m->replay_head], sizeof *m->replay);
        m->replay_head = (m->replay_head + 1) % m->replay_cap;
        m->replay_n--;
    }
    for (size_t i = 0; i < m->replay_n; i++) {
        const struct replay_entry *e = &m->replay[(m->replay_head + i) % m->replay_cap];
        if (e->expires_ms > now && memcmp(e->key, key, 16) == 0)
            return true;
    }
    return false;
}

/* insert = false: only looks. Returns 0 or CC_ERR_AUTH_REPLAY; *evicted tells
 * that a full cache forgot its oldest entry to make room.
 *
 * A full cache evicts rather than refuses: refusing would let one valid
 * account lock every user out for twice the window. Forgetting is safe
 * because the cache is not what stops a replay from working: the proof covers
 * the per-session server challenge and the MsvAvChannelBindings of this TLS
 * connection, so an AUTHENTICATE replayed into another connection fails the
 * proof anyway (see doc/AUTH-NT.md, "Replay cache"). */
static int replay_check(struct nt_mech *m, const struct cc__nt_authenticate *a, bool insert, bool *evicted)
{
    uint8_t key[16];
    uint64_t now = cc__now_ms();
    int rc = 0;
    if (evicted)
        *evicted = false;
    replay_key(a, key);
    pthread_mutex_lock(&m->lock);
    if (replay_seen_locked(m, key, now)) {
        rc = CC_ERR_AUTH_REPLAY;
    } else if (insert) {
        if (m->replay_n == m->replay_cap) {
            m->replay_head = (m->replay_head + 1) % m->replay_cap;
            m->replay_n--;
            cc__stat_add(m->ctx, CC__ST_NT_REPLAY_EVICTED, 1);
            if (evicted)
                *evicted = true;
        }
        struct replay_entry *e = &m->replay[(m->replay_head + m->replay_n) % m->replay_cap];
        memcpy(e->key, key, 16);
        /* accepted while |now - timestamp| <= window, so it can come back
         * for up to twice the window */
        e->expires_ms = now + 2000ull * m->window_s;
        m->replay_n++;
    }
    pthread_mutex_unlock(&m->lock);
    cc__wipe(key, sizeof key);
    return rc;
}

/* replay-cache-size: a new ring holding the newest entries that fit. */
static int replay_resize(struct nt_mech *m, size_t cap)
{
    struct replay_entry *r = cc__calloc(m->ctx, cap * sizeof *r);
    if (!r)
        return CC_ERR_NOMEM;
    pthread_mutex_lock(&m->lock);
    size_t keep = m->replay_n < cap ? m->replay_n : cap;
    for (size_t i = 0; i < keep; i++)
        r[i] = m->replay[(m->replay_head + m->replay_n - keep + i) % m->replay_cap];
    cc__wipe(m->replay, m->replay_cap * sizeof *m->replay);
    cc__free(m->ctx, m->replay);
    m->replay = r;
    m->replay_cap = cap;
    m->replay_head = 0;
    m->replay_n = keep;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* ---- console (initiator) ---- */
static int console_step(struct nt_state *st, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    char detail[CC__DETAIL_MAX] = "";
    int rc;
    if (st->stage == ST_START) {
        if (in)
            return fail(auth, CC_ERR_AUTH_TOKEN, "nt: the console expected to speak first");
        if ((rc = cc__nt_build_negotiate(st->ctx, &st->neg)))
            return fail(auth, rc, "nt: cannot build the NEGOTIATE message");
        st->stage = ST_SENT_NEG;
        rc = cc_auth_set_output(auth, cc__buf_head(&st->neg), cc__buf_size(&st->neg));
        return rc < 0 ? rc : CC_AUTH_CONTINUE;
    }
    if (st->stage == ST_SENT_NEG) {
        const char *user = NULL, *domain = NULL;
        const uint8_t *cb = NULL;
        size_t cb_len = 0;
        cc__buf out = {0};
        if (!in)
            return fail(auth, CC_ERR_AUTH_TOKEN, "nt: the CHALLENGE message is missing");
        cc_auth_credentials(auth, &user, &domain, NULL);
        if (cc_auth_channel_binding(auth, &cb, &cb_len) < 0 || cb_len == 0)
            return fail(auth, CC_ERR_AUTH_CHANNEL_BINDING,
                        "nt: this connection has no TLS channel binding to bind the exchange to");
        struct cc__nt_auth_input ai = {
            st->ntowfv2, user,   domain, "", cc__buf_head(&st->neg), cc__buf_size(&st->neg), in, in_len,
            cb,          cb_len, NULL,   0};
        rc = cc__nt_build_authenticate(st->ctx, &out, &ai, detail, sizeof detail);
        cc__wipe(st->ntowfv2, sizeof st->ntowfv2); /* needed no more */
        if (rc) {
            cc__buf_free(st->ctx, &out);
            return fail(auth, rc, "nt: %s", detail[0] ? detail : cc_strerror(rc));
        }
        st->stage = ST_DONE;
        rc = cc_auth_set_output(auth, cc__buf_head(&out), cc__buf_size(&out));
        cc__buf_free(st->ctx, &out);
        return rc < 0 ? rc : CC_AUTH_DONE;
    }
    /* the client has nothing more to say in NTLM; a final token is a protocol error */
    if (in && in_len)
        return fail(auth, CC_ERR_AUTH_TOKEN, "nt: unexpected token after AUTHENTICATE");
    return CC_AUTH_DONE;
}

/* ---- client (acceptor) ---- */
static int lookup_account(struct nt_state *st, cc_auth *auth, uint8_t hash[16], char *canon, size_t canon_len,
                          char *domain_out, size_t domain_len)
{
    struct nt_mech *m = st->m;
    const struct cc__nt_authenticate *a = &st->a;
    char dbuf[32], detail[CC__DETAIL_MAX];
    const char *dom = our_domain(m, dbuf, sizeof dbuf);
    if (m->lookup) {
        int rc = m->lookup(m->lookup_user, a->domain, a->user, hash);
        if (rc == CC_ERR_AUTH_UNKNOWN_USER || rc == CC_ERR_AUTH_DISABLED) {
            cc__wipe(hash, 16);
            return fail(auth, rc, "nt: the host's account lookup %s %s\\%s",
                        rc == CC_ERR_AUTH_DISABLED ? "refuses the disabled account" : "does not know", a->domain,
                        a->user);
        }
        if (rc != 0) {
            cc__wipe(hash, 16);
            return fail(auth, CC_ERR_AUTH, "nt: the host's account lookup failed with %d for %s\\%s", rc, a->domain,
                        a->user);
        }
        cc__fmt(canon, canon_len, "%s", a->user);
        cc__fmt(domain_out, domain_len, "%s", a->domain[0] ? a->domain : dom);
        for (char *p = domain_out; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 32);
        return 0;
    }
    int rc = cc__nt_store_lookup(m->accounts, a->user, hash, canon, canon_len, detail, sizeof detail);
    if (rc)
        return fail(auth, rc, "nt: %s", detail);
    cc__fmt(domain_out, domain_len, "%s", dom);
    return 0;
}

/* The account store and the proof: lookup, NTProofStr and MIC, then the
 * client challenge into the replay cache. Each cause fails with its own code
 * and detail; nothing here leaves the machine. */
static int verify_account(struct nt_state *st, cc_auth *auth)
{
    uint8_t hash[16];
    char detail[CC__DETAIL_MAX] = "";
    int rc = lookup_account(st, auth, hash, st->canon, sizeof st->canon, st->id_domain, sizeof st->id_domain);
    if (rc)
        return rc;
    rc = cc__nt_verify_proof(st->ctx, hash, &st->a, st->server_challenge, cc__buf_head(&st->neg),
                             cc__buf_size(&st->neg), cc__buf_head(&st->chal), cc__buf_size(&st->chal),
                             cc__buf_head(&st->auth), cc__buf_size(&st->auth), true, detail, sizeof detail);
    cc__wipe(hash, sizeof hash);
    if (rc)
        return fail(auth, rc, "nt: %s", detail);
    bool evicted;
    rc = replay_check(st->m, &st->a, true, &evicted);
    if (rc == CC_ERR_AUTH_REPLAY)
        return fail(auth, rc, "nt: this AUTHENTICATE message (client challenge) was already used");
    if (evicted) {
        char note[CC__DETAIL_MAX];
        cc__fmt(note, sizeof note,
                "nt: the replay cache is full (%zu logons within %u s): the oldest entry made room "
                "(option replay-cache-size)",
                st->m->replay_cap, 2 * st->m->window_s);
        cc_auth_log(auth, CC_LOG_DEBUG, note);
    }
    if (strlen(st->id_domain) + 1 + strlen(st->canon) > CC__NAME_MAX)
        return fail(auth, CC_ERR_AUTH_TOKEN, "nt: DOMAIN\\user is longer than %d bytes", CC__NAME_MAX);
    return 0;
}

/* The proof verified and the domain controller (if asked) agreed. */
static int finish_accept(struct nt_state *st, cc_auth *auth, const char *dc_note)
{
    char id[CC__NAME_MAX + 1];
    int rc;
    cc__fmt(id, sizeof id, "%s\\%s", st->id_domain, st->canon);
    if ((rc = cc_auth_set_identity(auth, id)) < 0)
        return rc;
    cc_auth_add_attribute(auth, "nt-domain", st->id_domain);
    cc_auth_add_attribute(auth, "nt-user", st->canon);
    if (st->a.workstation[0])
        cc_auth_add_attribute(auth, "nt-workstation", st->a.workstation);
    cc_auth_add_attribute(auth, "dc-check", dc_note);
    char msg[CC__DETAIL_MAX];
    cc__fmt(msg, sizeof msg, "nt: authenticated %s (dc-check: %s)", id, dc_note);
    cc_auth_log(auth, CC_LOG_INFO, msg);
    st->stage = ST_DONE;
    return CC_AUTH_DONE;
}

static int dc_mode(const struct nt_mech *m)
{
    if (!m->realm)
        return CC__NT_DC_OFF;
    return m->dc_mode < 0 ? CC__NT_DC_REQUIRED : m->dc_mode;
}

static int accept_authenticate(struct nt_state *st, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    struct nt_mech *m = st->m;
    char detail[CC__DETAIL_MAX] = "";
    const uint8_t *cb;
    size_t cb_len;
    uint8_t want[16];
    int rc;
    if (in_len > CC__NT_MAX_AUTHENTICATE)
        return fail(auth, CC_ERR_AUTH_TOKEN, "nt: AUTHENTICATE message is %zu bytes, more than the %d allowed", in_len,
                    CC__NT_MAX_AUTHENTICATE);
    if ((rc = cc__buf_append(st->ctx, &st->auth, in, in_len)))
        return rc;
    rc = cc__nt_parse_authenticate(cc__buf_head(&st->auth), cc__buf_size(&st->auth), st->charset, &st->a, detail,
                                   sizeof detail);
    if (rc)
        return fail(auth, rc, "nt: %s", detail);

    /* freshness: the client's timestamp inside the proof */
    uint64_t now = cc__nt_filetime_now(), t = st->a.client_time, win = 10000000ull * m->window_s;
    if ((t > now ? t - now : now - t) > win)
        return fail(auth, CC_ERR_AUTH_CLOCK_SKEW, "nt: AUTHENTICATE timestamp is %s by %llu s, outside the %u s window",
                    t > now ? "ahead" : "behind", (unsigned long long)((t > now ? t - now : now - t) / 10000000ull),
                    m->window_s);
    if (replay_check(m, &st->a, false, NULL) == CC_ERR_AUTH_REPLAY)
        return fail(auth, CC_ERR_AUTH_REPLAY, "nt: this AUTHENTICATE message (client challenge) was already used");

    /* bound to this TLS connection */
    if (cc_auth_channel_binding(auth, &cb, &cb_len) < 0 || cb_len == 0)
        return fail(auth, CC_ERR_AUTH_CHANNEL_BINDING, "nt: this connection has no TLS channel binding");
    if ((rc = cc__nt_channel_binding_hash(cb, cb_len, want)))
        return fail(auth, rc, "nt: cannot hash the channel binding");
    static const uint8_t zero[16] = {0};
    if (!st->a.have_cb || memcmp(st->a.cb_hash, zero, 16) == 0)
        return fail(auth, CC_ERR_AUTH_CHANNEL_BINDING,
                    "nt: AUTHENTICATE carries no MsvAvChannelBindings; the console must bind to the TLS "
                    "connection (tls-exporter)");
    if (cc__ct_memcmp(st->a.cb_hash, want, 16) != 0)
        return fail(auth, CC_ERR_AUTH_CHANNEL_BINDING,
                    "nt: AUTHENTICATE MsvAvChannelBindings belong to another TLS connection (relayed?)");

    /* The smbpasswd file holds one domain's accounts: ours. */
    char dbuf[32];
    const char *dom = our_domain(m, dbuf, sizeof dbuf);
    if (!m->lookup && st->a.domain[0] && strcasecmp(st->a.domain, dom) != 0 &&
        !(m->realm && strcasecmp(st->a.domain, m->realm) == 0))
        return fail(auth, CC_ERR_AUTH_UNKNOWN_USER,
                    "nt: domain \"%s\" is not served here; this client's accounts are in domain %s", st->a.domain, dom);

    /* The password proof comes before the domain controller is asked, so a
     * stranger's guesses (any name, any password) never reach the KDC: only
     * a console that proved it knows the account's password gets a DC check. */
    if ((rc = verify_account(st, auth)) != 0)
        return rc;

    int mode = dc_mode(m);
    if (mode == CC__NT_DC_OFF)
        return finish_accept(st, auth, m->realm ? "off" : "no realm");
    if ((rc = cc__nt_dc_start(auth, st->ctx, st->a.user, m->realm, m->krb5_conf, &st->dc)) < 0)
        return fail(auth, rc, "nt: cannot hand out the KDC account check");
    st->stage = ST_WAIT_DC;
    return CC_AUTH_PENDING;
}

static int accept_dc_result(struct nt_state *st, cc_auth *auth)
{
    int mode = dc_mode(st->m);
    const char *why;
    int r = cc__nt_dc_outcome(st->dc, &why);
    if (r == 0)
        return finish_accept(st, auth, "passed");
    if (r == CC_ERR_AUTH_KDC_UNREACHABLE && mode == CC__NT_DC_BEST_EFFORT) {
        char msg[CC__DETAIL_MAX];
        cc__fmt(msg, sizeof msg, "nt: KDC account check skipped (best-effort): %s", why);
        cc_auth_log(auth, CC_LOG_WARN, msg);
        return finish_accept(st, auth, "skipped: KDC unreachable");
    }
    return fail(auth, r, "nt: %s", why);
}

static int client_step(struct nt_state *st, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    struct nt_mech *m = st->m;
    char detail[CC__DETAIL_MAX] = "", dbuf[32], cbuf[32];
    int rc;
    switch (st->stage) {
    case ST_WAIT_NEG: {
        struct cc__nt_negotiate n;
        cc__buf ti = {0};
        if (!in)
            return fail(auth, CC_ERR_AUTH_TOKEN, "nt: the NEGOTIATE message is missing");
        if ((rc = cc__nt_parse_negotiate(in, in_len, &n, detail, sizeof detail)))
            return fail(auth, rc, "nt: %s", detail);
        if ((rc = cc__buf_append(st->ctx, &st->neg, in, in_len)))
            return rc;
        if (RAND_bytes(st->server_challenge, 8) != 1)
            return fail(auth, CC_ERR_INTERNAL, "nt: RAND_bytes failed for the server challenge");
        const char *dom = our_domain(m, dbuf, sizeof dbuf);
        rc = cc__nt_build_target_info(st->ctx, &ti, dom, our_computer(m, cbuf, sizeof cbuf), m->realm,
                                      cc__nt_filetime_now());
        /* MS-NLMP 3.2.5.1.1: Unicode if the console offered it, else OEM */
        st->charset = n.charset;
        uint32_t flags = n.charset | CC__NTLM_REQUEST_TARGET | CC__NTLM_NEGOTIATE_NTLM |
                         CC__NTLM_NEGOTIATE_ALWAYS_SIGN | CC__NTLM_TARGET_TYPE_DOMAIN |
                         CC__NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY | CC__NTLM_NEGOTIATE_TARGET_INFO |
                         CC__NTLM_NEGOTIATE_VERSION | (n.flags & (CC__NTLM_NEGOTIATE_128 | CC__NTLM_NEGOTIATE_56));
        if (!rc)
            rc = cc__nt_build_challenge(st->ctx, &st->chal, flags, st->server_challenge, dom, cc__buf_head(&ti),
                                        cc__buf_size(&ti));
        cc__buf_free(st->ctx, &ti);
        if (rc)
            return fail(auth, rc, "nt: cannot build the CHALLENGE message (domain or computer name invalid?)");
        st->stage = ST_WAIT_AUTH;
        rc = cc_auth_set_output(auth, cc__buf_head(&st->chal), cc__buf_size(&st->chal));
        return rc < 0 ? rc : CC_AUTH_CONTINUE;
    }
    case ST_WAIT_AUTH:
        if (!in)
            return fail(auth, CC_ERR_AUTH_TOKEN, "nt: the AUTHENTICATE message is missing");
        st->stage = ST_DONE; /* one attempt per session, whatever happens */
        return accept_authenticate(st, auth, in, in_len);
    case ST_WAIT_DC:
        if (in)
            return fail(auth, CC_ERR_AUTH_TOKEN, "nt: token received while the KDC check runs");
        st->stage = ST_DONE;
        return accept_dc_result(st, auth);
    default:
        return fail(auth, CC_ERR_AUTH_TOKEN, "nt: token received after the exchange ended");
    }
}

/* ---- the vtable ---- */
static int nt_start(void *mech_data, cc_auth *auth, void **state)
{
    struct nt_mech *m = mech_data;
    int role = cc_auth_role(auth);
    *state = NULL;
    if (role == CC_ROLE_CLIENT && !m->lookup && !m->accounts)
        return fail(auth, CC_ERR_CONFIG,
                    "nt: no account store: set the \"accounts\" option or cc_context_set_nt_account_lookup()");
    struct nt_state *st = cc__calloc(m->ctx, sizeof *st);
    if (!st)
        return CC_ERR_NOMEM;
    st->m = m;
    st->ctx = m->ctx;
    st->role = role;
    st->stage = role == CC_ROLE_CONSOLE ? ST_START : ST_WAIT_NEG;
    *state = st;
    if (role == CC_ROLE_CONSOLE) {
        const char *user = NULL, *domain = NULL, *password = NULL;
        cc_auth_credentials(auth, &user, &domain, &password);
        if (!user || !*user || !password)
            return fail(auth, CC_ERR_AUTH_NO_CREDENTIALS,
                        "nt: the console needs a user name and a password (cc_session_set_credentials)");
        /* The password is turned into NTOWFv2 at once; the library keeps only that. */
        int rc = cc__nt_ntowfv2(st->ctx, password, user, domain ? domain : "", st->ntowfv2);
        if (rc == CC_ERR_INVALID)
            return fail(auth, CC_ERR_AUTH_NO_CREDENTIALS,
                        "nt: user, domain or password is not UTF-8 or longer than %d characters",
                        CC__NT_MAX_NAME_UNITS);
        if (rc)
            return fail(auth, rc, "nt: cannot compute NTOWFv2 (OpenSSL refuses HMAC-MD5?)");
    }
    return 0;
}

static int nt_step(void *state, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    struct nt_state *st = state;
    if (!st)
        return fail(auth, CC_ERR_INTERNAL, "nt: step without state");
    return st->role == CC_ROLE_CONSOLE ? console_step(st, auth, in, in_len) : client_step(st, auth, in, in_len);
}

static void nt_end(void *state)
{
    struct nt_state *st = state;
    if (!st)
        return;
    cc__wipe(st->ntowfv2, sizeof st->ntowfv2);
    cc__buf_free(st->ctx, &st->neg);
    cc__buf_free(st->ctx, &st->chal);
    cc__buf_free(st->ctx, &st->auth);
    cc__nt_dc_release(st->dc);
    const cc_context *ctx = st->ctx;
    cc__wipe(st, sizeof *st);
    cc__free(ctx, st);
}

static int set_str(struct nt_mech *m, char **dst, const char *value)
{
    char *v = value ? cc__strdup(m->ctx, value) : NULL;
    if (value && !v)
        return CC_ERR_NOMEM;
    cc__free(m->ctx, *dst);
    *dst = v;
    return 0;
}

static bool valid_nb_name(const char *v)
{
    size_t n = strlen(v);
    if (n < 1 || n > 15)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e || strchr("\\/:*?\"<>|.", v[i]))
            return false;
    return true;
}

static int nt_set_option(void *mech_data, const char *key, const char *value)
{
    struct nt_mech *m = mech_data;
    if (strcmp(key, "accounts") == 0) {
        if (value && access(value, R_OK) != 0)
            return cc__ctx_error(m->ctx, CC_ERR_CONFIG, "nt: account store \"%s\" cannot be read", value);
        return set_str(m, &m->accounts, value);
    }
    if (strcmp(key, "realm") == 0) {
        if (value && (!*value || strlen(value) > CC__NAME_MAX || strpbrk(value, "@/\\ ")))
            return cc__ctx_error(m->ctx, CC_ERR_INVALID, "nt: realm \"%s\" is not a realm name", value);
        return set_str(m, &m->realm, value);
    }
    if (strcmp(key, "krb5-conf") == 0) {
        if (value && access(value, R_OK) != 0)
            return cc__ctx_error(m->ctx, CC_ERR_CONFIG, "nt: krb5-conf \"%s\" cannot be read", value);
        return set_str(m, &m->krb5_conf, value);
    }
    if (strcmp(key, "dc-check") == 0) {
        if (!value)
            m->dc_mode = -1;
        else if (strcmp(value, "required") == 0)
            m->dc_mode = CC__NT_DC_REQUIRED;
        else if (strcmp(value, "best-effort") == 0)
            m->dc_mode = CC__NT_DC_BEST_EFFORT;
        else if (strcmp(value, "off") == 0)
            m->dc_mode = CC__NT_DC_OFF;
        else
            return cc__ctx_error(m->ctx, CC_ERR_INVALID,
                                 "nt: dc-check is \"required\", \"best-effort\" or \"off\", not \"%s\"", value);
        return 0;
    }
    if (strcmp(key, "timestamp-window") == 0) {
        char *end = NULL;
        long v = value ? strtol(value, &end, 10) : DEFAULT_WINDOW_S;
        if (value && (!*value || *end || v < 1 || v > 86400))
            return cc__ctx_error(m->ctx, CC_ERR_INVALID, "nt: timestamp-window is 1..86400 seconds");
        m->window_s = (uint32_t)v;
        return 0;
    }
    if (strcmp(key, "domain") == 0 || strcmp(key, "computer") == 0) {
        if (value && !valid_nb_name(value))
            return cc__ctx_error(m->ctx, CC_ERR_INVALID,
                                 "nt: %s must be a NetBIOS name: 1..15 printable ASCII characters without "
                                 "\\/:*?\"<>|. or spaces",
                                 key);
        return set_str(m, key[0] == 'd' ? &m->domain : &m->computer, value);
    }
    if (strcmp(key, "replay-cache-size") == 0) {
        char *end = NULL;
        long v = value ? strtol(value, &end, 10) : DEFAULT_REPLAY_SIZE;
        if (value && (!*value || *end || v < 16 || v > 1000000))
            return cc__ctx_error(m->ctx, CC_ERR_INVALID, "nt: replay-cache-size is 16..1000000 entries");
        return replay_resize(m, (size_t)v);
    }
    return cc__ctx_error(m->ctx, CC_ERR_INVALID,
                         "nt: unknown option \"%s\" (accounts, realm, dc-check, krb5-conf, "
                         "timestamp-window, domain, computer, replay-cache-size)",
                         key);
}

static void nt_destroy(void *mech_data)
{
    struct nt_mech *m = mech_data;
    if (!m)
        return;
    cc__free(m->ctx, m->accounts);
    cc__free(m->ctx, m->realm);
    cc__free(m->ctx, m->krb5_conf);
    cc__free(m->ctx, m->domain);
    cc__free(m->ctx, m->computer);
    if (m->replay)
        cc__wipe(m->replay, m->replay_cap * sizeof *m->replay);
    cc__free(m->ctx, m->replay);
    pthread_mutex_destroy(&m->lock);
    cc__free(m->ctx, m);
}

static void *nt_create(cc_context *ctx)
{
    struct nt_mech *m = cc__calloc(ctx, sizeof *m);
    if (!m)
        return NULL;
    m->ctx = ctx;
    m->dc_mode = -1;
    m->window_s = DEFAULT_WINDOW_S;
    m->replay_cap = DEFAULT_REPLAY_SIZE;
    m->replay = cc__malloc(ctx, m->replay_cap * sizeof *m->replay);
    if (!m->replay || pthread_mutex_init(&m->lock, NULL) != 0) {
        cc__free(ctx, m->replay);
        cc__free(ctx, m);
        return NULL;
    }
    return m;
}

static const cc_authenticator nt_vtable = {
    sizeof(cc_authenticator),
    "nt",
    nt_start,
    nt_step,
    nt_end,
    nt_set_option,
    nt_destroy,
    0, /* NTLM proves the console to the client, never the client to the console */
};

const cc__builtin_auth cc__auth_builtin_nt = {"nt", &nt_vtable, nt_create};

void cc__nt_set_lookup(void *mech_data, cc_nt_lookup_fn fn, void *user)
{
    struct nt_mech *m = mech_data;
    m->lookup = fn;
    m->lookup_user = fn ? user : NULL;
}
