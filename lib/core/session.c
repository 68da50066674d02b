/* session.c -- the connection process as one state machine, readable start
 * to finish: resolve, connect, preamble, TLS, hello, licence, auth, data, close. */
#include "session.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define CLOSE_LINGER_MS 2000u
/* An orderly close waits this long at most for our last bytes to go out: a
 * peer that stops reading cannot hold a closing session for ever. */
#define CLOSE_DRAIN_MS 10000u
/* Output a peer can make us queue by sending without reading (PONGs) may
 * exceed what the host or the handshake queues by this much, no more. */
#define REPLY_RESERVE (64u * 1024)
/* A console told that the client waits for consent waits this much longer
 * than the wait it was told (or its own cap), for the verdict's round trip. */
#define CONSENT_MARGIN_MS 2000u
/* What every failed proof shows the console unless the client discloses the cause. */
#define AUTH_FAILED_TEXT "the user name or password is incorrect (the client's own log has the cause)"

static void advance(cc_session *s);

void cc__session_advance(cc_session *s)
{
    advance(s);
}

/* ------------------------------------------------------------------ events */

static void emit(cc_session *s, cc_event *ev)
{
    ev->struct_size = sizeof *ev;
    ev->state = s->state;
    if (!ev->text)
        ev->text = "";
    if (s->ev_fn)
        s->ev_fn(s->ev_user, s, ev);
}

/* Only advance() calls this. A host callback may end the session while a
 * step's work is under way; an ended session stays ended. */
static void enter(cc_session *s, int st)
{
    if (s->state == st || s->state >= CC_STATE_CLOSED)
        return;
    cc__log(s->ctx, CC_LOG_DEBUG, "session %p: %s -> %s", (void *)s, cc_state_name(s->state), cc_state_name(st));
    cc__stats_enter(s->ctx, s->state, st);
    s->state = st;
    if (st == CC_STATE_ESTABLISHED) { /* only the handshake reads the peer's HELLO */
        cc__free(s->ctx, s->offered);
        s->offered = NULL;
    }
    cc_event ev = {0};
    ev.type = CC_EVENT_STATE;
    emit(s, &ev);
}

static void closed_event(cc_session *s, int code, const char *text)
{
    cc_event ev = {0};
    ev.type = CC_EVENT_CLOSED;
    ev.code = code;
    ev.text = text;
    emit(s, &ev);
}

/* Ends the running mechanism so its secrets go now, not at cc_session_free. */
static void end_mechanism(cc_session *s)
{
    if (s->auth)
        cc__auth_end(s->auth);
    cc__session_wipe_credentials(s);
}

/* ------------------------------------------------------------ the outputs */

/* Queues one frame (the member of *m for `type`). */
static int send_msg(cc_session *s, int type, const cc__msg *m)
{
    /* PING, PONG and WINDOW go before queued data; the rest (CLOSE too) after
     * it, in order (PROTOCOL.md 10). An error's CLOSE goes first as the data
     * is dropped then (vfail). */
    bool urgent = type == CC__F_PONG || type == CC__F_PING || type == CC__F_WINDOW;
    cc__buf *out = urgent ? cc__pipe_out_urgent(s->pipe) : cc__pipe_out(s->pipe);
    if (!out)
        return CC_OK; /* after close_notify nothing more can reach the peer */
    return cc__frame_pack(out, s->ctx, type, m);
}

static int send_token(cc_session *s, const uint8_t *tok, size_t len)
{
    cc__msg m;
    m.token.data = tok;
    m.token.len = len;
    return send_msg(s, CC__F_AUTH_TOKEN, &m);
}

int cc__session_grant(cc_session *s, uint16_t channel, uint32_t increment)
{
    cc__msg m;
    m.window.channel = channel;
    m.window.increment = increment;
    return send_msg(s, CC__F_WINDOW, &m);
}

static int send_close(cc_session *s, int code, const char *reason, size_t max)
{
    cc__msg m;
    m.close.code = code;
    cc__text_copy(m.close.reason, max, reason);
    return send_msg(s, CC__F_CLOSE, &m);
}

static int end_tls(cc_session *s)
{
    return cc__pipe_end_tls(s->pipe, s->errmsg, sizeof s->errmsg);
}

/* --------------------------------------------------------------- failing */

static void release_transport(cc_session *s)
{
    cc__pipe_close(s->pipe);
    cc__connector_free(s->conn);
    s->conn = NULL;
}

/* Ends the session with `code` and the detail `fmt`. With `tell_peer`, a
 * CLOSE frame goes out first (one non-blocking attempt: the session is over)
 * carrying `peer_code` and `peer_text`, or, when peer_text is NULL, the code
 * and the detail themselves. */
static int vfail(cc_session *s, int code, bool tell_peer, int peer_code, const char *peer_text, const char *fmt,
                 va_list ap) CC__PRINTF(6, 0);
static int vfail(cc_session *s, int code, bool tell_peer, int peer_code, const char *peer_text, const char *fmt,
                 va_list ap)
{
    if (s->state == CC_STATE_FAILED || s->state == CC_STATE_CLOSED)
        return s->error ? s->error : code;
    if (code >= 0) /* a caller's bug; the session still ends with an error */
        code = CC_ERR_INTERNAL;
    if (fmt)
        vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    if (!s->errmsg[0])
        cc__fmt(s->errmsg, sizeof s->errmsg, "%s", cc_strerror(code));
    s->error = code;
    cc__stats_failure(s->ctx, code);
    cc__log(s->ctx, CC_LOG_WARN, "session %p failed in state %s: %s: %s", (void *)s, cc_state_name(s->state),
            cc_err_name(code), s->errmsg);
    if (tell_peer && cc__pipe_tls(s->pipe) && s->state >= CC_STATE_HELLO && !cc__pipe_in_done(s->pipe)) {
        /* Best effort: the session is over whatever happens, and the detail already set is kept. */
        char keep[sizeof s->errmsg];
        memcpy(keep, s->errmsg, sizeof keep);
        cc__pipe_drop_data(s->pipe); /* the error's CLOSE jumps the queue: the data would not be read */
        if (send_close(s, peer_text ? peer_code : code, peer_text ? peer_text : keep, CC__REASON_MAX - 8) == CC_OK &&
            end_tls(s) == CC_OK) /* PROTOCOL.md 4.5 */
            cc__pipe_flush(s->pipe, s->errmsg, sizeof s->errmsg);
        memcpy(s->errmsg, keep, sizeof keep);
    }
    end_mechanism(s);
    release_transport(s);
    advance(s);
    return code;
}

static int fail(cc_session *s, int code, bool tell_peer, const char *fmt, ...) CC__PRINTF(4, 5);
static int fail(cc_session *s, int code, bool tell_peer, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfail(s, code, tell_peer, 0, NULL, fmt, ap);
    va_end(ap);
    return r;
}

/* Ends the session and tells the peer less than our own detail says. */
static int fail_telling(cc_session *s, int code, int peer_code, const char *peer_text, const char *fmt, ...)
    CC__PRINTF(5, 6);
static int fail_telling(cc_session *s, int code, int peer_code, const char *peer_text, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfail(s, code, true, peer_code, peer_text, fmt, ap);
    va_end(ap);
    return r;
}

/* -------------------------------------------------------------- starting */

/* Client: the licence fetch starts at the console's valid HELLO (never for a
 * stranger who has not got that far) and overlaps authentication. */
static int start_license(cc_session *s)
{
    cc_job *j = NULL;
    int r = cc__license_start(s->ctx, &s->ctx->license, &j, &s->license);
    if (r < 0)
        return r;
    if (r == 1)
        s->license_stage = LIC_KNOWN; /* a cached verdict */
    else
        cc__session_queue_job(s, j);
    return CC_OK;
}

/* ----------------------------------------------------------- connecting */

/* Console: true once an address accepted the connection and the pipe has
 * the socket; false while the connector tries, or when the session failed. */
static bool connected(cc_session *s)
{
    int r = cc__connector_poll(s->conn, cc__now_ms(), s->errmsg, sizeof s->errmsg);
    if (r == 0)
        return false;
    if (r == 1) {
        cc__transport t = {cc__connector_take(s->conn), NULL, NULL, NULL, &s->watch};
        cc__connector_free(s->conn);
        s->conn = NULL;
        if ((r = cc__pipe_start(s->pipe, &t, s->peer_name, s->errmsg, sizeof s->errmsg)) == CC_OK)
            return true;
    }
    fail(s, r, false, NULL);
    return false;
}

/* ------------------------------------------------------ the handshake's work */

/* Console: every mechanism it has, in its order; client: the one it chose. */
static int send_hello(cc_session *s, uint16_t caps)
{
    cc__msg m;
    m.hello.caps = caps;
    if (s->role == CC_ROLE_CONSOLE) {
        const cc__auth_conf *ac = &s->ctx->auth;
        m.hello.n = 0;
        for (size_t i = 0; i < ac->n; i++) /* cc_session_new checked one is left */
            if (!ac->require_mutual || (ac->entry[i].vt.flags & CC_AUTH_FLAG_MUTUAL))
                cc__fmt(m.hello.mech[m.hello.n++], sizeof m.hello.mech[0], "%s", ac->entry[i].vt.name);
    } else {
        m.hello.n = 1;
        cc__fmt(m.hello.mech[0], sizeof m.hello.mech[0], "%s", cc__auth_name(s->auth));
    }
    return send_msg(s, CC__F_HELLO, &m);
}

static int new_auth(cc_session *s, const struct cc__auth_entry *e)
{
    s->auth = cc__auth_new(s->ctx, e, s->role, s->peer_name);
    if (!s->auth)
        return CC_ERR_NOMEM;
    cc__auth_set_binding(s->auth, s->cb);
    cc__auth_set_credentials(s->auth, s->cred_user, s->cred_domain, s->cred_password);
    return CC_OK;
}

static void auth_event(cc_session *s, int code, const char *text)
{
    cc_event ev = {0};
    ev.type = CC_EVENT_AUTH;
    ev.code = code;
    ev.text = text;
    ev.mechanism = s->auth ? cc__auth_name(s->auth) : NULL;
    ev.mutual = s->mutual;
    ev.resumed = s->rs.resumed;
    ev.session_id = cc_session_id(s);
    emit(s, &ev);
}

static int send_auth_result(cc_session *s, int code, const char *text, const uint8_t *tok, size_t tok_len)
{
    cc__msg m;
    m.result.code = code;
    cc__text_copy(m.result.text, sizeof m.result.text, text);
    m.result.token = tok;
    m.result.token_len = tok_len;
    return send_msg(s, CC__F_AUTH_RESULT, &m);
}

static int client_result(cc_session *s);

/* Console: the first mechanism it offers is its guess of the client's
 * choice, and that mechanism's first token rides with the HELLO (and with the
 * TLS Finished), so a right guess costs no round trip of its own; `r` is the
 * guessed mechanism's first step. Whatever goes wrong with the guess, the
 * HELLO still goes out, without it (doc/PROTOCOL.md 4.2). */
static int console_guess(cc_session *s, int r)
{
    cc_auth *a = s->auth;
    if (r == CC_AUTH_PENDING) { /* e.g. a KDC request first: the HELLO waits for the token */
        s->auth_job_out = true;
        cc__session_queue_job(s, cc__auth_take_job(a));
        return CC_OK;
    }
    const uint8_t *tok;
    size_t tok_len;
    bool have_tok = r >= 0 && cc__auth_output(a, &tok, &tok_len) && tok_len > 0;
    uint16_t caps = have_tok ? CC__CAP_GUESS : 0;
    if (!have_tok) {
        cc__log(s->ctx, CC_LOG_INFO, "session %p: no first token from %s (%s); HELLO without a guess", (void *)s,
                cc__auth_name(a), r < 0 ? cc__auth_detail(a) : "it has none");
        if (r < 0) { /* if the client chooses it all the same, this is why the session fails */
            s->guess_error = r;
            cc__free(s->ctx, s->guess_detail);
            s->guess_detail = cc__strdup(s->ctx, cc__auth_detail(a)); /* NULL: the code's own text */
            cc__fmt(s->guess_mech, sizeof s->guess_mech, "%s", cc__auth_name(a));
        }
        cc__auth_free(a);
        s->auth = NULL;
    }
    int w = send_hello(s, caps);
    if (w == CC_OK && have_tok)
        w = send_token(s, tok, tok_len);
    if (w < 0)
        return fail(s, w, false, NULL);
    s->guessed = have_tok;
    s->hello_sent = true;
    return CC_OK;
}

/* Acts on the result `r` of a mechanism step. */
static int auth_after_step(cc_session *s, int r)
{
    cc_auth *a = s->auth;
    if (s->role == CC_ROLE_CONSOLE && !s->hello_sent)
        return console_guess(s, r);
    const uint8_t *tok;
    size_t tok_len;
    bool have_tok = cc__auth_output(a, &tok, &tok_len);
    if (r == CC_AUTH_PENDING) {
        s->auth_job_out = true;
        cc__session_queue_job(s, cc__auth_take_job(a));
        return CC_OK;
    }
    if (s->role == CC_ROLE_CLIENT) {
        if (r < 0) {
            bool hide = cc__auth_hides_cause(&s->ctx->auth, r);
            int told = hide ? CC_ERR_AUTH_BAD_CREDENTIALS : r;
            const char *text = hide ? AUTH_FAILED_TEXT : cc__auth_detail(a);
            cc__backoff_record(&s->ctx->backoff, &s->source, false, cc__now_ms());
            auth_event(s, r, cc__auth_detail(a));
            send_auth_result(s, told, text, NULL, 0);
            return fail_telling(s, r, told, text, "%s", cc__auth_detail(a));
        }
        if (r == CC_AUTH_CONTINUE)
            return have_tok ? send_token(s, tok, tok_len)
                            : fail(s, CC_ERR_INTERNAL, true, "%s continued without a token", cc__auth_name(a));
        /* DONE: the mechanism is satisfied; now the host's policy. */
        if (s->ctx->auth.policy_fn) {
            int p = s->ctx->auth.policy_fn(s->ctx->auth.policy_user, s, cc__auth_name(a), cc__auth_identity(a));
            if (p != 0) {
                int code = p < 0 ? p : CC_ERR_AUTH_POLICY;
                char d[CC__DETAIL_MAX];
                cc__fmt(d, sizeof d, "the host's policy refused %s", cc__auth_identity(a));
                auth_event(s, code, d);
                send_auth_result(s, code, d, NULL, 0);
                return fail(s, code, true, "%s", d);
            }
        }
        /* The result waits for a granted licence (advance() sends it then). */
        s->result_due = true;
        return s->license_stage == LIC_TOLD ? client_result(s) : CC_OK;
    }
    /* console */
    if (r < 0)
        return fail(s, r, true, "%s", cc__auth_detail(a));
    if (have_tok)
        return send_token(s, tok, tok_len);
    if (r == CC_AUTH_CONTINUE)
        return fail(s, CC_ERR_INTERNAL, true, "%s continued without a token", cc__auth_name(a));
    return CC_OK; /* done on our side; the client's AUTH_RESULT decides */
}

/* Runs the mechanism one step with `in` and acts on the result. */
static int auth_step(cc_session *s, const uint8_t *in, size_t len)
{
    return auth_after_step(s, cc__auth_step(s->auth, in, len));
}

static void license_event(cc_session *s)
{
    const cc__license_verdict *v = &s->license;
    cc_event ev = {0};
    ev.type = CC_EVENT_LICENSE;
    ev.code = v->code;
    ev.granted = v->granted;
    ev.license_count = v->count;
    ev.license_in_use = v->in_use;
    ev.text = v->detail;
    emit(s, &ev);
}

/* Client: tells the console the licence verdict (the LICENSE frame) as soon
 * as it is known, while authentication goes on; a denial ends the session.
 * CC_OK, or the session has failed. */
static int license_tell(cc_session *s)
{
    cc__license_verdict *v = &s->license;
    cc__msg m;
    m.license.code = v->code;
    m.license.count = v->count;
    m.license.in_use = v->in_use;
    m.license.granted = v->granted;
    char told[128];
    cc__license_told(v, told, sizeof told);
    cc__text_copy(m.license.detail, sizeof m.license.detail, told);
    int r = send_msg(s, CC__F_LICENSE, &m);
    if (r < 0)
        return fail(s, r, false, NULL);
    s->license_stage = LIC_TOLD;
    license_event(s);
    if (s->state >= CC_STATE_CLOSED)
        return s->error; /* the host ended the session from its callback */
    if (!v->granted) {
        int code = v->code ? v->code : CC_ERR_LICENSE_DENIED;
        return fail_telling(s, code, code, told, "%s", v->detail);
    }
    return CC_OK;
}

/* Client, with the console's HELLO in: picks the mechanism (its own order of
 * preference decides among what the console offered) and answers with its
 * own HELLO. CC_OK, or the session has failed. */
static int client_choose(cc_session *s)
{
    char why[CC__DETAIL_MAX];
    const struct cc__auth_entry *pick = cc__auth_conf_choose(&s->ctx->auth, s->offered, s->n_offered, why, sizeof why);
    if (!pick)
        return fail(s, CC_ERR_AUTH_NO_MECHANISM, true, "%s", why);
    int r;
    if ((r = new_auth(s, pick)) < 0 || (r = send_hello(s, 0)) < 0)
        return fail(s, r, false, NULL);
    /* A guess the client did not take: the token that follows the HELLO is
     * for another mechanism, and is dropped unread (doc/PROTOCOL.md 4.2). */
    s->drop_guess = s->guessed && strcmp(pick->vt.name, s->offered[0]) != 0;
    return CC_OK;
}

/* ------------------------------------------------------------ consent */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Client: one decision of the consent stage (code 0: let in), for the host's
 * audit trail; the stage is over from here on. */
static void consent_event(cc_session *s, int code, bool unattended, const char *why)
{
    char addr[CC__ADDRESS_MAX];
    cc__source_str(&s->source, addr, sizeof addr);
    const char *who = s->auth && cc__auth_identity(s->auth) ? cc__auth_identity(s->auth) : "";
    s->consent = CONSENT_DECIDED;
    cc__log(s->ctx, code ? CC_LOG_WARN : CC_LOG_INFO, "session %p: consent %s for %s%s%s: %s", (void *)s,
            code ? cc_err_name(code) : "given", who, addr[0] ? " from " : "", addr, why);
    cc_event ev = {0};
    ev.type = CC_EVENT_CONSENT;
    ev.code = code;
    ev.granted = code == 0;
    ev.text = who;
    ev.mechanism = s->auth ? cc__auth_name(s->auth) : NULL;
    ev.address = addr;
    ev.detail = why;
    ev.unattended = unattended;
    ev.value = wall_ms();
    emit(s, &ev);
}

/* Client, the console authenticated and the licence granted: the host is
 * asked (a CC_JOB_CONSENT job) and the console told that it waits; the
 * handshake deadline stops and the consent deadline runs. */
static int consent_start(cc_session *s)
{
    uint32_t t = s->ctx->base.timeout[CC_TIMEOUT_CONSENT];
    char addr[CC__ADDRESS_MAX];
    cc__source_str(&s->source, addr, sizeof addr);
    cc_job *j = cc__consent_job_new(s->ctx, cc__auth_identity(s->auth), cc__auth_name(s->auth), addr, t);
    if (!j)
        return fail(s, CC_ERR_NOMEM, true, NULL);
    cc__msg m;
    m.consent_wait.timeout_ms = t;
    int r = send_msg(s, CC__F_CONSENT_WAIT, &m);
    if (r < 0) {
        cc_job_free(j);
        return fail(s, r, false, NULL);
    }
    cc__session_queue_job(s, j);
    s->consent = CONSENT_ASKING;
    s->consent_deadline = cc__now_ms() + t;
    cc__log(s->ctx, CC_LOG_INFO, "session %p: asking the person at the machine to let %s in (%u ms)", (void *)s,
            cc__auth_identity(s->auth), t);
    return CC_OK;
}

static int client_result(cc_session *s);

/* Client: the consent job came back; a late one (the deadline passed, the
 * console left) was already decided and is ignored. */
static void consent_back(cc_session *s, const cc_job *j)
{
    if (s->consent != CONSENT_ASKING)
        return;
    bool unattended;
    char why[CC__DETAIL_MAX];
    int code = cc__consent_verdict(j, s->ctx->consent_mode, &unattended, why, sizeof why);
    consent_event(s, code, unattended, why);
    if (s->state >= CC_STATE_CLOSED)
        return; /* the host ended the session from its callback */
    if (code < 0)
        fail_telling(s, code, code, why, "consent refused: %s", why);
    else
        client_result(s);
}

/* Console: the client asks its user. The handshake deadline moves to the
 * client's declared wait (at most our own CC_TIMEOUT_CONSENT) plus a margin. */
static int on_consent_wait(cc_session *s, const cc__consent_wait_msg *m)
{
    if (s->license_stage != LIC_TOLD)
        return fail(s, CC_ERR_PROTOCOL, true, "the client asked for consent before its licence verdict");
    uint32_t cap = s->ctx->base.timeout[CC_TIMEOUT_CONSENT];
    uint64_t until = cc__now_ms() + (m->timeout_ms < cap ? m->timeout_ms : cap) + CONSENT_MARGIN_MS;
    if (until > s->handshake_deadline)
        s->handshake_deadline = until;
    s->consent_wait = true;
    s->consent_client_ms = m->timeout_ms;
    cc__log(s->ctx, CC_LOG_INFO, "session %p: the client asks its user (it waits %u ms; this console at most %u ms)",
            (void *)s, m->timeout_ms, cap);
    cc_event ev = {0};
    ev.type = CC_EVENT_CONSENT;
    ev.granted = -1;
    ev.value = m->timeout_ms;
    ev.mechanism = s->auth ? cc__auth_name(s->auth) : NULL;
    emit(s, &ev);
    return CC_OK;
}

/* Client: the mechanism and the host's policy let the console in, and the
 * licence is granted: the result (with the mechanism's last token) goes out,
 * after the person at the machine agreed when the context asks for consent. */
static int client_result(cc_session *s)
{
    if (s->ctx->consent_mode != CC_CONSENT_MODE_OFF && s->consent != CONSENT_DECIDED)
        return s->consent == CONSENT_NONE ? consent_start(s) : CC_OK;
    const uint8_t *tok;
    size_t tok_len;
    cc__auth_output(s->auth, &tok, &tok_len);
    cc__resume_issue(s); /* the reconnect ticket goes out just before the result (doc/RECONNECT.md) */
    int r = send_auth_result(s, 0, cc__auth_identity(s->auth), tok, tok_len);
    if (r < 0)
        return fail(s, r, false, NULL);
    cc__backoff_record(&s->ctx->backoff, &s->source, true, cc__now_ms());
    s->auth_ok = true;
    return CC_OK;
}

/* Console, with the client's choice in: a right guess goes on where its first
 * token left it (1); otherwise the chosen mechanism starts and its first token
 * is to be sent (0), one round trip later than a right guess. < 0: failed. */
static int console_start_auth(cc_session *s)
{
    if (s->guessed && s->auth && strcmp(cc__auth_name(s->auth), s->offered[0]) == 0)
        return 1;
    if (s->guessed)
        cc__log(s->ctx, CC_LOG_INFO, "session %p: the client chose %s, not the guess %s: one more round trip",
                (void *)s, s->offered[0], cc__auth_name(s->auth));
    cc__auth_free(s->auth);
    s->auth = NULL;
    if (s->guess_error && strcmp(s->guess_mech, s->offered[0]) == 0) /* failed already: not twice */
        return fail(s, s->guess_error, true, "%s", s->guess_detail ? s->guess_detail : cc_strerror(s->guess_error));
    int r = new_auth(s, cc__auth_conf_find(&s->ctx->auth, s->offered[0])); /* on_hello checked it is ours */
    return r < 0 ? fail(s, r, false, NULL) : 0;
}

/* TLS is up: the channel binding for the mechanisms, a line for the log. */
static int tls_up(cc_session *s)
{
    const cc__tls *tls = cc__pipe_tls(s->pipe);
    int r = cc__tls_channel_binding(tls, s->cb);
    if (r < 0)
        return fail(s, r, false, "cannot derive the TLS channel binding");
    cc__log(s->ctx, CC_LOG_INFO, "TLS established: %s %s", cc__tls_version(tls), cc__tls_cipher(tls));
    return CC_OK;
}

/* Orderly close, once our close_notify is out: everything flushed, then the
 * half-close, then the peer's end or the linger time. true when done; the
 * session has failed when the peer would not take our last bytes in time. */
static bool close_done(cc_session *s, uint64_t now)
{
    bool flushed = !cc__pipe_pending(s->pipe), peer_done = cc__pipe_in_done(s->pipe);
    if (flushed)
        cc__pipe_shutdown_write(s->pipe);
    if (!s->close_deadline)
        s->close_deadline = now + CLOSE_DRAIN_MS;
    if ((flushed || peer_done) && !s->close_lingering) {
        s->close_lingering = true;
        if (now + CLOSE_LINGER_MS < s->close_deadline)
            s->close_deadline = now + CLOSE_LINGER_MS;
    }
    if (now < s->close_deadline)
        return flushed && peer_done;
    if (!flushed) {
        fail(s, CC_ERR_TIMEOUT, false, "the peer did not take the last %zu bytes within %u ms of the close",
             cc__pipe_pending(s->pipe), CLOSE_DRAIN_MS);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------- advance() */

/* The one place the state changes. Each case says what moves the session out
 * of that state and does the work of the way in; the loop goes on while the
 * state changes, so one call takes the session as far as it can go now.
 * Whoever changes what the session has heard or decided calls advance(). */
static void advance(cc_session *s)
{
    bool console = s->role == CC_ROLE_CONSOLE;
    for (int from = -1; from != s->state && s->state < CC_STATE_CLOSED;) {
        from = s->state;
        if (s->error) {
            if (s->consent == CONSENT_ASKING) /* the audit trail records how the wait ended */
                consent_event(s, s->error, false, s->errmsg);
            enter(s, CC_STATE_FAILED);
            closed_event(s, s->error, s->errmsg);
            return;
        }
        /* Our close_notify went out (the host closed, or the peer's CLOSE is answered). */
        if (s->state >= CC_STATE_HELLO && s->state <= CC_STATE_ESTABLISHED && cc__pipe_tls_ended(s->pipe)) {
            enter(s, CC_STATE_CLOSING);
            continue;
        }
        switch (s->state) {
        case CC_STATE_NEW: /* the host connected, accepted or handed a transport */
            if (s->handshake_deadline)
                enter(s, cc__pipe_started(s->pipe) ? CC_STATE_PREAMBLE : CC_STATE_RESOLVING);
            break;
        case CC_STATE_RESOLVING: /* the resolve job came back with addresses */
            if (s->conn)
                enter(s, CC_STATE_CONNECTING);
            break;
        case CC_STATE_CONNECTING: /* an address accepted the connection */
            if (connected(s))
                enter(s, CC_STATE_PREAMBLE);
            break;
        case CC_STATE_PREAMBLE: /* the peer's preamble is accepted: TLS goes on */
            if (cc__pipe_preamble_ok(s->pipe))
                enter(s, CC_STATE_TLS);
            break;
        case CC_STATE_TLS: { /* the handshake is complete */
            int r = cc__pipe_handshake(s->pipe, s->errmsg, sizeof s->errmsg);
            if (r < 0)
                fail(s, r, false, NULL);
            else if (r == 1 && tls_up(s) == CC_OK) {
                /* A reconnect ticket the client took: in at once (doc/RECONNECT.md). */
                int res = cc__resume_tls_up(s);
                if (res < 0) {
                    fail(s, res, false, NULL);
                } else if (res == 1) {
                    s->last_rx = cc__now_ms();
                    auth_event(s, 0, cc__auth_identity(s->auth));
                    enter(s, CC_STATE_ESTABLISHED);
                } else {
                    enter(s, CC_STATE_HELLO);
                }
            }
            break;
        }
        case CC_STATE_HELLO:
            if (console) { /* the console speaks first: HELLO and its guessed mechanism's first token */
                if (!s->auth && !s->hello_sent) {
                    const cc__auth_conf *ac = &s->ctx->auth;
                    size_t i = 0;
                    while (ac->require_mutual && !(ac->entry[i].vt.flags & CC_AUTH_FLAG_MUTUAL))
                        i++; /* the first one send_hello offers; cc_session_new checked there is one */
                    int r = new_auth(s, &ac->entry[i]);
                    if (r < 0)
                        fail(s, r, false, NULL);
                    else
                        auth_after_step(s, cc__auth_step(s->auth, NULL, 0));
                }
                if (s->hello_sent)
                    enter(s, CC_STATE_LICENSE);
            } else if (s->n_offered) { /* the console's HELLO: choose at once; the licence check goes on */
                if ((s->license_stage != LIC_KNOWN || license_tell(s) == CC_OK) && client_choose(s) == CC_OK)
                    enter(s, CC_STATE_AUTHENTICATING);
            }
            break;
        case CC_STATE_LICENSE: /* console: the client chose (its licence verdict may follow) */
            if (console && s->n_offered) {
                int r = console_start_auth(s);
                if (r >= 0)
                    enter(s, CC_STATE_AUTHENTICATING);
                if (r == 0 && s->state == CC_STATE_AUTHENTICATING)
                    auth_step(s, NULL, 0);
            }
            break;
        case CC_STATE_AUTHENTICATING: /* the client let the console in */
            if (!console && s->license_stage == LIC_KNOWN && license_tell(s) < 0)
                break;
            if (!console && s->result_due && !s->auth_ok && s->license_stage == LIC_TOLD && client_result(s) < 0)
                break;
            if (s->auth_ok) {
                end_mechanism(s);
                s->last_rx = cc__now_ms();
                auth_event(s, 0, cc__auth_identity(s->auth) ? cc__auth_identity(s->auth) : "");
                enter(s, CC_STATE_ESTABLISHED);
            }
            break;
        case CC_STATE_CLOSING:
            if (close_done(s, cc__now_ms())) {
                release_transport(s);
                end_mechanism(s);
                enter(s, CC_STATE_CLOSED);
                closed_event(s, s->close_code, s->close_reason ? s->close_reason : "");
            }
            break;
        }
    }
}

/* ------------------------------------------------------ frames received */

static int map_peer_code(int code)
{
    return code < 0 && cc__err_known(code) ? code : CC_ERR_PEER_ERROR;
}

static int on_hello(cc_session *s, const cc__hello *m)
{
    if (s->role == CC_ROLE_CONSOLE) {
        if (m->n != 1)
            return fail(s, CC_ERR_BAD_FRAME, true, "HELLO frame names %u mechanisms; the client chooses one", m->n);
        if (!cc__auth_conf_find(&s->ctx->auth, m->mech[0]))
            return fail(s, CC_ERR_AUTH_NO_MECHANISM, true, "the client chose \"%s\", which this console did not offer",
                        m->mech[0]);
    }
    cc__free(s->ctx, s->offered);
    if (!(s->offered = cc__malloc(s->ctx, sizeof m->mech)))
        return fail(s, CC_ERR_NOMEM, true, "no memory for the peer's HELLO");
    memcpy(s->offered, m->mech, sizeof m->mech);
    s->n_offered = m->n;
    if (s->role == CC_ROLE_CLIENT)
        s->guessed = m->n && (m->caps & CC__CAP_GUESS); /* the console's first token follows */
    if (s->role == CC_ROLE_CLIENT && s->license_stage == LIC_NONE) {
        int r = start_license(s); /* a valid HELLO: only now may the peer cost an outbound request */
        if (r < 0)
            return fail(s, r, false, NULL);
    }
    return CC_OK;
}

static int on_license(cc_session *s, const cc__license_msg *m)
{
    cc__license_verdict *v = &s->license;
    v->code = m->code;
    v->count = m->count;
    v->in_use = m->in_use;
    v->granted = m->granted;
    cc__fmt(v->detail, sizeof v->detail, "%s", m->detail);
    /* Trust the figures only as far as they agree with the verdict. */
    if (v->granted && (v->code != 0 || v->count <= v->in_use))
        return fail(s, CC_ERR_PROTOCOL, false, "the client reported a licence grant with %u of %u in use", v->in_use,
                    v->count);
    s->license_stage = LIC_TOLD;
    license_event(s);
    if (!v->granted)
        return fail(s, map_peer_code(v->code ? v->code : CC_ERR_LICENSE_DENIED), false, "client: %s", v->detail);
    return CC_OK;
}

static int on_auth_result(cc_session *s, const cc__auth_result *m)
{
    if (m->code < 0) {
        auth_event(s, map_peer_code(m->code), m->text);
        return fail(s, map_peer_code(m->code), false, "client: %s", m->text);
    }
    if (s->license_stage != LIC_TOLD) /* a success is only ever sent after a granted licence */
        return fail(s, CC_ERR_PROTOCOL, true, "the client reported success before its licence verdict");
    cc_auth *a = s->auth;
    if (!cc__auth_done(a)) {
        /* Only the mechanism says whether its exchange is over: the result's
         * token must finish it (Kerberos' AP-REP), leaving nothing more for
         * the console to say. A token that makes it answer (a CHALLENGE
         * passed off as a result) is a success the console never earned. */
        int r = m->token_len ? cc__auth_step(a, m->token, m->token_len) : CC_ERR_AUTH_MUTUAL;
        const uint8_t *more;
        size_t more_len;
        if (r == CC_AUTH_DONE && cc__auth_output(a, &more, &more_len))
            return fail(s, CC_ERR_AUTH_MUTUAL, true, "the client reported success before %s's exchange was complete",
                        cc__auth_name(a));
        if (r != CC_AUTH_DONE) {
            if (r >= 0)
                r = CC_ERR_AUTH_MUTUAL;
            const char *d = m->token_len ? cc__auth_detail(a) : "";
            return fail(s, r, true, "%s", d[0] ? d : "the client did not complete mutual authentication");
        }
    } else if (m->token_len) {
        return fail(s, CC_ERR_PROTOCOL, true, "AUTH_RESULT carries a token the mechanism did not expect");
    }
    s->mutual = cc__auth_mutual(a);
    if (s->ctx->auth.require_mutual && !s->mutual)
        return fail(s, CC_ERR_AUTH_MUTUAL, true,
                    "%s did not prove the client; this console requires mutual authentication", cc__auth_name(a));
    if (cc_auth_set_identity(a, m->text[0] ? m->text : "(unnamed)") < 0)
        return fail(s, CC_ERR_BAD_FRAME, true, "AUTH_RESULT carries an invalid identity");
    s->auth_ok = true;
    return CC_OK;
}

/* Flow control (PROTOCOL.md 10): DATA past the credit we granted fails the
 * session; what the host has taken is granted back unless it paused the channel. */
static int on_data(cc_session *s, const cc__data_msg *m)
{
    if (cc__pipe_received(s->pipe, m->channel, (uint32_t)m->len, s->errmsg, sizeof s->errmsg) < 0)
        return fail(s, CC_ERR_PROTOCOL, true, NULL);
    cc_event ev = {0};
    ev.type = CC_EVENT_DATA;
    ev.channel = m->channel;
    ev.data = m->data;
    ev.len = m->len;
    emit(s, &ev);
    if (s->state >= CC_STATE_CLOSED)
        return CC_OK;
    uint32_t g = cc__pipe_grant_due(s->pipe, m->channel);
    return g ? cc__session_grant(s, m->channel, g) : CC_OK;
}

static int on_window(cc_session *s, const cc__window_msg *m)
{
    if (cc__pipe_credit(s->pipe, m->channel, m->increment, s->errmsg, sizeof s->errmsg) < 0)
        return fail(s, CC_ERR_PROTOCOL, true, NULL);
    return CC_OK;
}

static int on_pong(cc_session *s)
{
    if (!s->ping_outstanding)
        return CC_OK;
    s->ping_outstanding = false;
    cc_event ev = {0};
    ev.type = CC_EVENT_PONG;
    ev.value = cc__now_ms() - s->ping_sent;
    emit(s, &ev);
    return CC_OK;
}

static int on_close(cc_session *s, const cc__close_msg *m)
{
    if (m->code < 0)
        return fail(s, map_peer_code(m->code), false, "%s: %s", s->role == CC_ROLE_CONSOLE ? "client" : "console",
                    m->reason);
    s->close_code = 0;
    cc__free(s->ctx, s->close_reason);
    s->close_reason = cc__strdup(s->ctx, m->reason); /* NULL (no memory): reported as "" */
    cc__pipe_stop_reading(s->pipe);                  /* the peer sends nothing after its CLOSE */
    /* Answer with our own close_notify (what the host already queued still goes out first). */
    return end_tls(s);
}

/* Whether a frame of `type` may arrive in the session's state (doc/PROTOCOL.md 4.6). */
static bool frame_allowed(const cc_session *s, int type)
{
    bool console = s->role == CC_ROLE_CONSOLE;
    switch (type) {
    case CC__F_HELLO: /* the client's choice, before or after its licence verdict */
        return console ? s->state == CC_STATE_LICENSE : s->state == CC_STATE_HELLO;
    case CC__F_LICENSE: /* once, before the result; it may overtake the client's HELLO or follow it */
        return console && s->license_stage == LIC_NONE &&
               (s->state == CC_STATE_LICENSE || s->state == CC_STATE_AUTHENTICATING);
    case CC__F_AUTH_TOKEN:
        return s->state == CC_STATE_AUTHENTICATING && !s->auth_job_out && !(console && cc__auth_done(s->auth)) &&
               !s->result_due && !s->consent_wait;
    case CC__F_CONSENT_WAIT: /* once, after the licence verdict, before the result */
        return console && s->state == CC_STATE_AUTHENTICATING && !s->consent_wait;
    case CC__F_AUTH_RESULT:
        return console && s->state == CC_STATE_AUTHENTICATING;
    case CC__F_DATA:
    case CC__F_WINDOW:
        return s->state == CC_STATE_ESTABLISHED || s->state == CC_STATE_CLOSING;
    default: /* PING, PONG and CLOSE: in every state after TLS */
        return true;
    }
}

/* A malformed LICENSE, AUTH_RESULT or CLOSE is the peer's report of its own
 * end: nothing is sent back. Any other malformed frame is ours to report. */
static bool tell_peer_malformed(int type)
{
    return type != CC__F_LICENSE && type != CC__F_AUTH_RESULT && type != CC__F_CLOSE;
}

/* One frame: may it come now, is it well-formed, then what it means. */
static int on_frame(cc_session *s, const cc__frame_hdr *h, const uint8_t *p)
{
    if (!frame_allowed(s, h->type))
        return fail(s, CC_ERR_PROTOCOL, true, "unexpected %s frame in state %s", cc__frame_name(h->type),
                    cc_state_name(s->state));
    cc__msg m;
    int r = cc__frame_parse(h, p, &m, s->errmsg, sizeof s->errmsg);
    if (r < 0)
        return fail(s, r, tell_peer_malformed(h->type), NULL);
    switch (h->type) {
    case CC__F_HELLO:
        return on_hello(s, &m.hello);
    case CC__F_LICENSE:
        return on_license(s, &m.license);
    case CC__F_AUTH_TOKEN:
        if (s->drop_guess) { /* the console's guess, for a mechanism this client did not choose */
            s->drop_guess = false;
            return CC_OK;
        }
        return auth_step(s, m.token.data, m.token.len);
    case CC__F_AUTH_RESULT:
        return on_auth_result(s, &m.result);
    case CC__F_DATA:
        return on_data(s, &m.data);
    case CC__F_PING: {
        /* A peer that pings without reading would have us buffer its
         * answers without end (the HTTP/2 ping floods of 2019): beyond what
         * the host or the handshake may queue, it is cut off. */
        size_t pending = cc__pipe_pending_control(s->pipe); /* not the host's data: PONGs overtake it */
        size_t cap = (s->state < CC_STATE_ESTABLISHED ? s->ctx->base.limit[CC_LIMIT_AUTH_TOKEN]
                                                      : s->ctx->base.limit[CC_LIMIT_SEND_BUFFER]) +
                     REPLY_RESERVE;
        if (pending > cap)
            return fail(s, CC_ERR_PROTOCOL, false,
                        "the peer sends pings without reading the answers (%zu bytes wait to be sent)", pending);
        return send_msg(s, CC__F_PONG, &m); /* the same payload, cut to 8 bytes */
    }
    case CC__F_PONG:
        return on_pong(s);
    case CC__F_CLOSE:
        return on_close(s, &m.close);
    case CC__F_CONSENT_WAIT:
        return on_consent_wait(s, &m.consent_wait);
    case CC__F_WINDOW:
        return on_window(s, &m.window);
    }
    return CC_OK;
}

/* ------------------------------------------------------------------- I/O */

/* What the pipe reported, as the session's failure; an end of stream is
 * expected only while closing. */
static int pipe_failed(cc_session *s, int r)
{
    const char *st = cc_state_name(s->state);
    bool closing = s->state == CC_STATE_CLOSING;
    switch (r) {
    case CC__PIPE_RESET:
        return fail(s, CC_ERR_CLOSED, false, "the peer reset the connection during %s", st);
    case CC__PIPE_EOF:
        return closing ? CC_OK : fail(s, CC_ERR_CLOSED, false, "the peer closed the connection during %s", st);
    case CC__PIPE_BYE:
        return closing ? CC_OK
                       : fail(s, CC_ERR_CLOSED, false, "the peer ended TLS during %s without a CLOSE frame", st);
    case CC_ERR_BAD_FRAME:
    case CC_ERR_FRAME_TOO_LARGE:
        return fail(s, r, true, NULL); /* a frame header: ours to report */
    default:
        return fail(s, r, false, NULL);
    }
}

/* Every complete frame the pipe holds, each followed by advance(). */
static int take_frames(cc_session *s)
{
    while (s->state >= CC_STATE_HELLO && s->state < CC_STATE_CLOSED) {
        /* Until established, an authentication token of the largest allowed size always fits. */
        uint32_t max = s->ctx->base.limit[CC_LIMIT_FRAME_SIZE];
        if (max < s->ctx->base.limit[CC_LIMIT_AUTH_TOKEN] + 1024 && s->state < CC_STATE_ESTABLISHED)
            max = s->ctx->base.limit[CC_LIMIT_AUTH_TOKEN] + 1024;
        cc__frame_hdr h;
        const uint8_t *payload;
        int r = cc__pipe_frame(s->pipe, max, &h, &payload, s->errmsg, sizeof s->errmsg);
        if (r == 0)
            break;
        if (r < 0)
            return pipe_failed(s, r);
        r = on_frame(s, &h, payload);
        cc__pipe_frame_done(s->pipe);
        if (r < 0)
            return fail(s, r, false, NULL);
        advance(s);
    }
    return s->state == CC_STATE_FAILED ? s->error : CC_OK;
}

/* Frames already in, then writes what is queued and reads what the transport
 * has (within the step's budget), until neither side can move. */
static int io_round(cc_session *s)
{
    cc__pipe_refill(s->pipe);
    for (;;) {
        int r = take_frames(s);
        if (r < 0 || s->state >= CC_STATE_CLOSED)
            return r;
        if ((r = cc__pipe_flush(s->pipe, s->errmsg, sizeof s->errmsg)) < 0)
            return pipe_failed(s, r);
        if (s->read_paused)
            return CC_OK;
        long got = cc__pipe_recv(s->pipe, s->errmsg, sizeof s->errmsg);
        if (got == 0)
            return CC_OK;
        if (got < 0)
            return pipe_failed(s, (int)got);
        s->last_rx = cc__now_ms();
        advance(s); /* the preamble and the TLS handshake move on bytes */
    }
}

/* ------------------------------------------------------------------ step */

enum { DL_NONE, DL_HANDSHAKE, DL_CONSENT, DL_CONNECT, DL_HOLD, DL_IDLE, DL_KEEPALIVE, DL_LINGER, DL_COUNT };

static void earliest(uint64_t *d, int *what, uint64_t t, int kind)
{
    if (t && (!*d || t < *d)) {
        *d = t;
        *what = kind;
    }
}

/* The session's next deadline (0 when none) and which one it is: the step
 * acts on it once it has passed, and cc_session_timeout_ms() reports it. */
static uint64_t next_deadline(const cc_session *s, uint64_t now, int *what)
{
    const uint32_t *t = s->ctx->base.timeout;
    uint64_t d = 0;
    *what = DL_NONE;
    /* A client asking for consent stops the handshake clock: its own runs. */
    if (s->state < CC_STATE_ESTABLISHED && s->consent == CONSENT_NONE)
        earliest(&d, what, s->handshake_deadline, DL_HANDSHAKE);
    if (s->state < CC_STATE_ESTABLISHED && s->consent != CONSENT_NONE)
        earliest(&d, what, s->consent_deadline, DL_CONSENT);
    if (s->state == CC_STATE_CONNECTING)
        earliest(&d, what, cc__connector_deadline(s->conn), DL_CONNECT);
    if (s->hold_until > now)
        earliest(&d, what, s->hold_until, DL_HOLD);
    if (s->state == CC_STATE_ESTABLISHED) {
        if (t[CC_TIMEOUT_IDLE] && !s->read_paused) /* a paused host's silence is its own */
            earliest(&d, what, s->last_rx + t[CC_TIMEOUT_IDLE], DL_IDLE);
        if (t[CC_TIMEOUT_KEEPALIVE] && !s->ping_outstanding)
            earliest(&d, what, s->last_rx + t[CC_TIMEOUT_KEEPALIVE], DL_KEEPALIVE);
    }
    /* Before the linger starts (our bytes still going out), look again within its time. */
    if (s->state == CC_STATE_CLOSING)
        earliest(&d, what, s->close_deadline ? s->close_deadline : now + CLOSE_LINGER_MS, DL_LINGER);
    return d;
}

/* Acts on every deadline that has passed; each kind expires at most once. */
static void on_deadlines(cc_session *s, uint64_t now)
{
    int what;
    uint64_t d;
    for (int i = 0; i < DL_COUNT && s->state < CC_STATE_CLOSED && (d = next_deadline(s, now, &what)) && now >= d; i++) {
        switch (what) {
        case DL_HANDSHAKE:
            if (s->consent_wait) {
                fail(s, CC_ERR_CONSENT_TIMEOUT, true,
                     "no consent verdict from the client in time (it waits %u ms for its user; this console at most "
                     "%u ms)",
                     s->consent_client_ms, s->ctx->base.timeout[CC_TIMEOUT_CONSENT]);
                break;
            }
            fail(s, CC_ERR_TIMEOUT, true, "no progress past state %s within the handshake deadline of %u ms%s",
                 cc_state_name(s->state), s->ctx->base.timeout[CC_TIMEOUT_HANDSHAKE],
                 s->jobs_out || s->queued ? " (a job handed to the host has not come back)" : "");
            break;
        case DL_CONSENT: {
            char why[CC__DETAIL_MAX];
            cc__fmt(why, sizeof why, "nobody answered within the consent deadline of %u ms",
                    s->ctx->base.timeout[CC_TIMEOUT_CONSENT]);
            if (s->consent == CONSENT_ASKING)
                consent_event(s, CC_ERR_CONSENT_TIMEOUT, false, why);
            fail(s, CC_ERR_CONSENT_TIMEOUT, true, "%s", why);
            break;
        }
        case DL_IDLE:
            fail(s, CC_ERR_IDLE_TIMEOUT, true, "nothing heard from the peer for %u ms",
                 s->ctx->base.timeout[CC_TIMEOUT_IDLE]);
            break;
        case DL_KEEPALIVE:
            cc_session_ping(s);
            break;
        default: /* DL_CONNECT, DL_HOLD, DL_LINGER: the state's own step moves on */
            advance(s);
            break;
        }
    }
}

static void process_returned_jobs(cc_session *s)
{
    while (s->back && s->state < CC_STATE_CLOSED) {
        /* Reverse arrival order does not matter: a session has one job of each kind out at most. */
        cc_job *j = s->back;
        s->back = j->next;
        j->next = NULL;
        if (j->type == CC_JOB_RESOLVE) {
            if (j->result < 0 || cc__resolve_job_count(j) == 0) {
                fail(s, j->result < 0 ? j->result : CC_ERR_RESOLVE, false, "%s",
                     j->detail[0] ? j->detail : "the resolve job returned no address");
                cc_job_free(j);
                continue;
            }
            if (!(s->conn = cc__connector_new(s->ctx, j, &s->watch))) {
                cc_job_free(j);
                fail(s, CC_ERR_NOMEM, false, NULL);
                continue;
            }
        } else if (j->type == CC_JOB_CONSENT) {
            consent_back(s, j);
            cc_job_free(j);
        } else if (j->type == CC_JOB_LICENSE) {
            cc__license_decide(s->ctx, &s->ctx->license, j, &s->license);
            cc_job_free(j);
            s->license_stage = LIC_KNOWN;
        } else {
            /* An auth job: the mechanism reads its results in step (in = NULL). */
            if (!s->auth || !s->auth_job_out) {
                cc_job_free(j);
                fail(s, CC_ERR_INTERNAL, false, "an auth job came back with no mechanism waiting");
                continue;
            }
            s->auth_job_out = false;
            /* The mechanism reads job_data in this step, so the job (and its
             * data) is freed only afterwards. */
            auth_after_step(s, cc__auth_resume(s->auth, j));
            cc_job_free(j);
        }
        advance(s);
    }
}

int cc__session_wants(cc_session *s)
{
    int m = CC_WANT_TIMER;
    if (s->queued)
        m |= CC_WANT_JOB;
    if (s->state == CC_STATE_CONNECTING)
        return m | CC_WANT_WRITE;
    if (!cc__pipe_started(s->pipe) || s->hold_until > cc__now_ms())
        return m;
    if (cc__pipe_want_write(s->pipe))
        m |= CC_WANT_WRITE;
    if (!cc__pipe_in_done(s->pipe) && !s->read_paused)
        m |= CC_WANT_READ;
    return m;
}

static void maybe_send_ready(cc_session *s)
{
    int ch;
    while (s->state == CC_STATE_ESTABLISHED &&
           (ch = cc__pipe_next_ready(s->pipe, s->ctx->base.limit[CC_LIMIT_SEND_BUFFER] / 2)) >= 0) {
        cc_event ev = {0};
        ev.type = CC_EVENT_SEND_READY;
        ev.channel = (uint32_t)ch;
        emit(s, &ev);
    }
}

CC_API int cc_session_step(cc_session *s)
{
    if (!s)
        return CC_ERR_INVALID;
    if (s->state == CC_STATE_NEW)
        return CC_ERR_STATE;
    if (s->state < CC_STATE_CLOSED)
        on_deadlines(s, cc__now_ms());
    if (s->state < CC_STATE_CLOSED)
        process_returned_jobs(s);
    if (s->state < CC_STATE_CLOSED)
        advance(s);
    if (s->state >= CC_STATE_PREAMBLE && s->state < CC_STATE_CLOSED && s->hold_until <= cc__now_ms()) {
        io_round(s);
        if (s->state < CC_STATE_CLOSED && cc__resume_poll(s)) {
            cc_event ev = {0};
            ev.type = CC_EVENT_TICKET;
            emit(s, &ev);
        }
        if (s->state < CC_STATE_CLOSED) {
            maybe_send_ready(s);
            advance(s); /* what the I/O finished, e.g. the orderly close */
        }
    }
    int r = s->state == CC_STATE_CLOSED ? 0 : s->state == CC_STATE_FAILED ? s->error : cc__session_wants(s);
    cc__session_notify(s);
    return r;
}

uint64_t cc__session_deadline(const cc_session *s, uint64_t now)
{
    if (s->state >= CC_STATE_CLOSED || s->state == CC_STATE_NEW)
        return 0;
    if (s->back)
        return now; /* a job came back: the next step uses it */
    int what;
    return next_deadline(s, now, &what);
}

CC_API int32_t cc_session_timeout_ms(const cc_session *s)
{
    if (!s)
        return -1;
    uint64_t now = cc__now_ms();
    uint64_t d = cc__session_deadline(s, now);
    if (!d)
        return -1;
    uint64_t left = d > now ? d - now : 0;
    return left > INT32_MAX ? INT32_MAX : (int32_t)left;
}

/* ---------------------------------------------------------- host requests */

static int close_session(cc_session *s, int code, const char *reason)
{
    if (!s || code > 0 || (reason && strlen(reason) >= CC__REASON_MAX - 8) || !cc__err_known(code))
        return CC_ERR_INVALID; /* the peer is told the code: it must be one of ours */
    if (s->state >= CC_STATE_CLOSING)
        return CC_OK;
    cc__free(s->ctx, s->close_reason);
    s->close_reason = cc__strdup(s->ctx, reason ? reason : "");
    s->close_code = code;
    if (code < 0) {
        fail(s, code, true, "closed by the host: %s", reason ? reason : cc_strerror(code));
        return CC_OK;
    }
    if (s->state != CC_STATE_ESTABLISHED) {
        /* Nothing to close politely before the session is up: just end it. */
        fail(s, CC_ERR_CANCELLED, true, "cancelled by the host%s%s", reason ? ": " : "", reason ? reason : "");
        return CC_OK;
    }
    if (!s->close_reason)
        return CC_ERR_NOMEM; /* nothing queued: the host may try again */
    int r = send_close(s, 0, s->close_reason, CC__REASON_MAX);
    if (r < 0)
        return r; /* nothing queued: the host may try again */
    if ((r = end_tls(s)) < 0)
        return fail(s, r, false, NULL);
    advance(s);
    return CC_OK;
}

CC_API int cc_session_close(cc_session *s, int code, const char *reason)
{
    int r = close_session(s, code, reason);
    if (s)
        cc__session_notify(s);
    return r;
}
