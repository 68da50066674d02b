/* resume.c -- reconnect: the session id, the console's ticket (what the host
 * holds and hands back) and the decisions around a resumed session. */
#include "session.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* The console's ticket: MAGIC, the session id, mutual, the mechanism and the
 * identity the client let in, the TLS session (DER: the resumption secret and
 * the client's sealed ticket), then a SHA-256 of all before it. The checksum
 * catches corruption only; the client's key is what no one can forge. */
static const uint8_t MAGIC[4] = {'C', 'C', 'R', '1'};
#define SUM_LEN 32

static void free_secret_buf(const cc_context *ctx, uint8_t *p, size_t n)
{
    cc__wipe(p, n);
    cc__free(ctx, p);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = 0;
}

static void set_id(cc_session *s, const uint8_t id[CC__SESSION_ID_LEN])
{
    memcpy(s->rs.raw_id, id, CC__SESSION_ID_LEN);
    hex(id, CC__SESSION_ID_LEN, s->rs.id);
}

static bool sum(const uint8_t *p, size_t n, uint8_t out[SUM_LEN])
{
    unsigned len = 0;
    return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 && len == SUM_LEN;
}

/* -------------------------------------------------------------- hooks for ticket.c */

/* Client, during the handshake: the mechanism still configured, then the host. */
static int accept_ticket(cc_session *s, const cc__ticket_info *info)
{
    cc_context *ctx = s->ctx;
    if (!cc__auth_conf_find(&ctx->auth, info->mechanism))
        return CC_ERR_CONFIG;
    if (!ctx->resume_fn)
        return CC_OK;
    char id[2 * CC__SESSION_ID_LEN + 1];
    hex(info->session_id, CC__SESSION_ID_LEN, id);
    return ctx->resume_fn(ctx->resume_user, s, id, info->mechanism, info->identity) != 0 ? CC_ERR_AUTH_POLICY : CC_OK;
}

static void *offer_ticket(cc_session *s)
{
    return s->rs.offer ? s->rs.offer_sess : NULL;
}

void cc__resume_context_init(cc_context *ctx)
{
    cc__ticket_conf_hooks(ctx->tls.tickets, accept_ticket, offer_ticket);
}

/* ------------------------------------------------------------- hooks for session.c */

/* The session is in as `identity` through `mech` without a mechanism run. */
static int establish(cc_session *s, const char *mech, const char *identity, bool mutual)
{
    const struct cc__auth_entry *e = cc__auth_conf_find(&s->ctx->auth, mech);
    if (!e) {
        cc__fmt(s->errmsg, sizeof s->errmsg, "the resumed session's mechanism %s is not configured", mech);
        return CC_ERR_CONFIG;
    }
    if (!(s->auth = cc__auth_new(s->ctx, e, s->role, s->peer_name)) || cc_auth_set_identity(s->auth, identity) < 0)
        return CC_ERR_NOMEM;
    s->mutual = s->role == CC_ROLE_CONSOLE && mutual;
    s->auth_ok = true;
    s->rs.resumed = true;
    cc__log(s->ctx, CC_LOG_INFO, "session %p resumes session %s of %s (%s)", (void *)s, s->rs.id, identity, mech);
    return 1;
}

int cc__resume_tls_up(cc_session *s)
{
    void *ssl = cc__tls_ssl(cc__pipe_tls(s->pipe));
    cc__resume *r = &s->rs;
    if (s->role == CC_ROLE_CLIENT) {
        const cc__ticket_info *in = cc__ticket_resumed(ssl);
        if (in) {
            set_id(s, in->session_id);
            return establish(s, in->mechanism, in->identity, false);
        }
    } else if (r->offer && cc__ticket_reused(ssl)) {
        set_id(s, r->offer_info.session_id);
        return establish(s, r->offer_info.mechanism, r->offer_info.identity, r->offer_info.mutual);
    }
    uint8_t id[CC__SESSION_ID_LEN];
    if (cc__ticket_export_id(ssl, id) < 0)
        return CC_ERR_TLS;
    set_id(s, id);
    if (s->role == CC_ROLE_CONSOLE && r->offer && !(r->offer_flags & CC_RECONNECT_FALLBACK)) {
        char old[2 * CC__SESSION_ID_LEN + 1];
        hex(r->offer_info.session_id, CC__SESSION_ID_LEN, old);
        cc__fmt(s->errmsg, sizeof s->errmsg,
                "the client did not take the reconnect ticket of session %s (used, expired, from another client or "
                "refused; the client's log says which)",
                old);
        return CC_ERR_RECONNECT_REFUSED;
    }
    return 0;
}

int cc__resume_issue(cc_session *s)
{
    cc__ticket_info info;
    memset(&info, 0, sizeof info);
    memcpy(info.session_id, s->rs.raw_id, CC__SESSION_ID_LEN);
    cc__fmt(info.mechanism, sizeof info.mechanism, "%s", cc__auth_name(s->auth));
    cc__fmt(info.identity, sizeof info.identity, "%s", cc__auth_identity(s->auth));
    int r = cc__ticket_issue(cc__tls_ssl(cc__pipe_tls(s->pipe)), &info);
    cc__wipe(&info, sizeof info);
    if (r < 0) /* the session goes on; it just cannot be resumed */
        cc__log(s->ctx, CC_LOG_WARN, "session %p: no reconnect ticket: %s", (void *)s, cc_strerror(r));
    return CC_OK;
}

bool cc__resume_poll(cc_session *s)
{
    cc__resume *r = &s->rs;
    void *ssl = cc__tls_ssl(cc__pipe_tls(s->pipe));
    if (s->role != CC_ROLE_CONSOLE || !s->auth_ok || !ssl || cc__ticket_count(ssl) == r->seen)
        return false;
    r->seen = cc__ticket_count(ssl);
    const char *mech = cc__auth_name(s->auth), *ident = cc__auth_identity(s->auth);
    size_t ml = strlen(mech), il = strlen(ident);
    size_t head = sizeof MAGIC + CC__SESSION_ID_LEN + 1 + 1 + ml + 2 + il + 2;
    uint8_t *b = cc__calloc(s->ctx, CC_RECONNECT_TICKET_MAX);
    if (!b)
        return false;
    size_t dl = 0;
    if (head + SUM_LEN >= CC_RECONNECT_TICKET_MAX ||
        cc__ticket_der(ssl, b + head, CC_RECONNECT_TICKET_MAX - head - SUM_LEN, &dl) < 0 || dl > 0xffff) {
        cc__log(s->ctx, CC_LOG_WARN, "session %p: the client's reconnect ticket does not fit", (void *)s);
        free_secret_buf(s->ctx, b, CC_RECONNECT_TICKET_MAX);
        return false;
    }
    size_t n = 0;
    memcpy(b, MAGIC, sizeof MAGIC);
    n += sizeof MAGIC;
    memcpy(b + n, r->raw_id, CC__SESSION_ID_LEN);
    n += CC__SESSION_ID_LEN;
    b[n++] = s->mutual ? 1 : 0;
    b[n++] = (uint8_t)ml;
    memcpy(b + n, mech, ml);
    n += ml;
    b[n++] = (uint8_t)(il >> 8);
    b[n++] = (uint8_t)il;
    memcpy(b + n, ident, il);
    n += il;
    b[n++] = (uint8_t)(dl >> 8);
    b[n++] = (uint8_t)dl;
    n += dl;
    /* the TLS session is in the ticket now: OpenSSL's copy (with the parsed certificate, some
     * 17 KB) goes, and the ticket is kept in a block of its own size (an idle session's memory) */
    cc__ticket_release(ssl);
    uint8_t *t = sum(b, n, b + n) ? cc__malloc(s->ctx, n + SUM_LEN) : NULL;
    if (t)
        memcpy(t, b, n + SUM_LEN);
    free_secret_buf(s->ctx, b, CC_RECONNECT_TICKET_MAX);
    if (!t)
        return false;
    if (r->ticket)
        free_secret_buf(s->ctx, r->ticket, r->ticket_len);
    r->ticket = t;
    r->ticket_len = n + SUM_LEN;
    return true;
}

void cc__resume_free(cc_session *s)
{
    if (s->rs.offer)
        free_secret_buf(s->ctx, s->rs.offer, s->rs.offer_len);
    cc__ticket_session_free(s->rs.offer_sess);
    if (s->rs.ticket)
        free_secret_buf(s->ctx, s->rs.ticket, s->rs.ticket_len);
    cc__wipe(&s->rs, sizeof s->rs);
}

/* ------------------------------------------------------------------ the public API */

CC_API const char *cc_session_id(const cc_session *s)
{
    return s && s->rs.id[0] ? s->rs.id : NULL;
}

CC_API int cc_session_resumed(const cc_session *s)
{
    if (!s)
        return CC_ERR_INVALID;
    return s->auth_ok ? (s->rs.resumed ? 1 : 0) : CC_ERR_STATE;
}

CC_API int cc_session_reconnect_ticket(const cc_session *s, uint8_t *buf, size_t cap, size_t *len)
{
    if (!s || !len || (!buf && cap))
        return CC_ERR_INVALID;
    if (s->role != CC_ROLE_CONSOLE || !s->rs.ticket)
        return CC_ERR_STATE;
    *len = s->rs.ticket_len;
    if (cap < s->rs.ticket_len)
        return CC_ERR_AGAIN;
    memcpy(buf, s->rs.ticket, s->rs.ticket_len);
    return CC_OK;
}

/* Reads the console's ticket into r (offer_info, der_off, der_len); false when it is not one. */
static bool parse_ticket(const uint8_t *t, size_t len, cc__resume *r)
{
    uint8_t want[SUM_LEN];
    size_t n = sizeof MAGIC + CC__SESSION_ID_LEN + 2;
    if (len < n + 2 + 2 + SUM_LEN || memcmp(t, MAGIC, sizeof MAGIC) != 0 || !sum(t, len - SUM_LEN, want) ||
        CRYPTO_memcmp(want, t + len - SUM_LEN, SUM_LEN) != 0)
        return false;
    size_t end = len - SUM_LEN;
    cc__ticket_info *in = &r->offer_info;
    memset(in, 0, sizeof *in);
    memcpy(in->session_id, t + sizeof MAGIC, CC__SESSION_ID_LEN);
    in->mutual = t[sizeof MAGIC + CC__SESSION_ID_LEN] != 0;
    size_t ml = t[n - 1];
    if (ml == 0 || ml > CC__MECH_MAX || n + ml + 2 > end || memchr(t + n, 0, ml))
        return false;
    memcpy(in->mechanism, t + n, ml);
    n += ml;
    size_t il = (size_t)t[n] << 8 | t[n + 1];
    n += 2;
    if (il == 0 || il > CC__NAME_MAX || n + il + 2 > end || memchr(t + n, 0, il))
        return false;
    memcpy(in->identity, t + n, il);
    n += il;
    size_t dl = (size_t)t[n] << 8 | t[n + 1];
    n += 2;
    if (n + dl != end || !(r->offer_sess = cc__ticket_session_parse(t + n, dl)))
        return false;
    return true;
}

CC_API int cc_session_set_reconnect_ticket(cc_session *s, const uint8_t *ticket, size_t len, int flags)
{
    if (!s || !ticket || !len || len > CC_RECONNECT_TICKET_MAX || (flags & ~CC_RECONNECT_FALLBACK))
        return CC_ERR_INVALID;
    if (s->role != CC_ROLE_CONSOLE || s->state != CC_STATE_NEW)
        return CC_ERR_STATE;
    cc__resume *r = &s->rs;
    if (r->offer)
        free_secret_buf(s->ctx, r->offer, r->offer_len);
    r->offer = NULL;
    cc__ticket_session_free(r->offer_sess);
    r->offer_sess = NULL;
    if (!parse_ticket(ticket, len, r)) {
        cc__wipe(&r->offer_info, sizeof r->offer_info);
        cc__fmt(s->errmsg, sizeof s->errmsg, "%s", cc_strerror(CC_ERR_RECONNECT_TICKET));
        return CC_ERR_RECONNECT_TICKET;
    }
    if (!cc__auth_conf_find(&s->ctx->auth, r->offer_info.mechanism)) {
        cc__fmt(s->errmsg, sizeof s->errmsg, "the reconnect ticket's mechanism %s is not configured here",
                r->offer_info.mechanism);
        return CC_ERR_CONFIG;
    }
    if (!(r->offer = cc__calloc(s->ctx, len)))
        return CC_ERR_NOMEM;
    memcpy(r->offer, ticket, len);
    r->offer_len = len;
    r->offer_flags = flags;
    return CC_OK;
}
