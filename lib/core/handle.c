/* handle.c -- a session as the host holds it: creation and freeing, callbacks,
 * credentials, jobs, data and pings, queries; the state changes in session.c. */
#include "session.h"

#include <limits.h>
#include <string.h>

#define DATA_FRAME_MAX (16384 - CC__FRAME_HDR) /* one data frame fills one TLS record */

static const char *const state_names[] = {"new",     "resolving",      "connecting",  "preamble", "tls",    "hello",
                                          "license", "authenticating", "established", "closing",  "closed", "failed"};

CC_API const char *cc_state_name(int st)
{
    return st >= 0 && st <= CC_STATE_FAILED ? state_names[st] : "unknown";
}

/* ----------------------------------------------------------- lifecycle */

CC_API cc_session *cc_session_new(cc_context *ctx, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    if (!ctx) {
        *err = CC_ERR_INVALID;
        return NULL;
    }
    if (ctx->base.role == CC_ROLE_CLIENT && !ctx->tls.cert_file) {
        *err = cc__ctx_error(ctx, CC_ERR_CONFIG,
                             "the client role needs a certificate and key: call cc_context_set_certificate()");
        return NULL;
    }
    if (ctx->auth.n == 0) {
        *err = cc__ctx_error(ctx, CC_ERR_CONFIG,
                             "no authenticator configured: call cc_context_add_builtin_authenticator() or "
                             "cc_context_add_authenticator()");
        return NULL;
    }
    bool mutual_one = false;
    for (size_t i = 0; i < ctx->auth.n; i++)
        mutual_one |= (ctx->auth.entry[i].vt.flags & CC_AUTH_FLAG_MUTUAL) != 0;
    if (ctx->auth.require_mutual && !mutual_one) {
        *err = cc__ctx_error(ctx, CC_ERR_CONFIG,
                             "mutual authentication is required but no authenticator proves the client: add "
                             "\"kerberos\" or a mechanism with CC_AUTH_FLAG_MUTUAL");
        return NULL;
    }
    cc_session *s = cc__calloc(ctx, sizeof *s);
    if (s && !(s->pipe = cc__pipe_new(ctx, &ctx->tls, s))) {
        cc__free(ctx, s);
        s = NULL;
    }
    if (!s) {
        *err = CC_ERR_NOMEM;
        return NULL;
    }
    s->ctx = ctx;
    s->watch = (cc__watch){.fn = ctx->hooks.sock_fn, .user = ctx->hooks.sock_user, .s = s};
    s->timer_fn = ctx->hooks.timer_fn;
    s->timer_user = ctx->hooks.timer_user;
    atomic_fetch_add(&ctx->base.sessions, 1);
    cc__stats_new(ctx);
    s->role = ctx->base.role;
    s->state = CC_STATE_NEW;
    *err = CC_OK;
    return s;
}

CC_API void cc_session_free(cc_session *s)
{
    if (!s)
        return;
    const cc_context *ctx = s->ctx;
    cc__connector_free(s->conn);
    cc__pipe_free(s->pipe); /* closes the transport */
    cc__session_notify_gone(s);
    cc__session_wipe_credentials(s);
    cc__resume_free(s);
    cc__free(s->ctx, s->guess_detail);
    cc__free(s->ctx, s->close_reason);
    cc__free(s->ctx, s->offered);
    cc__auth_free(s->auth);
    s->auth = NULL;
    unsigned pending = 0;
    for (cc_job *j = s->queued, *n; j; j = n, pending++) {
        n = j->next;
        cc_job_free(j);
    }
    cc__stats_free(ctx, s->state, pending);
    for (cc_job *j = s->back, *n; j; j = n) {
        n = j->next;
        cc_job_free(j);
    }
    cc__free(ctx, s->peer_name);
    cc__wipe(s, sizeof *s);
    cc__free(ctx, s);
    atomic_fetch_sub(&((cc_context *)ctx)->base.sessions, 1);
}

CC_API int cc_session_set_event_callback(cc_session *s, cc_event_fn fn, void *user)
{
    if (!s)
        return CC_ERR_INVALID;
    s->ev_fn = fn;
    s->ev_user = user;
    return CC_OK;
}

CC_API void cc_session_set_user_data(cc_session *s, void *user)
{
    if (s)
        s->user_data = user;
}

CC_API void *cc_session_user_data(const cc_session *s)
{
    return s ? s->user_data : NULL;
}

CC_API int cc_session_set_credentials(cc_session *s, const char *user, const char *domain, const char *password)
{
    if (!s || !user || strlen(user) > CC__NAME_MAX || (domain && strlen(domain) > CC__NAME_MAX) ||
        (password && strlen(password) > CC__PASSWORD_MAX))
        return CC_ERR_INVALID;
    if (s->role != CC_ROLE_CONSOLE || s->state >= CC_STATE_AUTHENTICATING)
        return CC_ERR_STATE;
    cc__session_wipe_credentials(s);
    s->cred_user = cc__strdup(s->ctx, user);
    s->cred_domain = domain ? cc__strdup(s->ctx, domain) : NULL;
    s->cred_password = password ? cc__strdup(s->ctx, password) : NULL;
    if (!s->cred_user || (domain && !s->cred_domain) || (password && !s->cred_password)) {
        cc__session_wipe_credentials(s);
        return CC_ERR_NOMEM;
    }
    return CC_OK;
}

void cc__session_wipe_credentials(cc_session *s)
{
    cc__free_secret(s->ctx, s->cred_password);
    cc__free(s->ctx, s->cred_user);
    cc__free(s->ctx, s->cred_domain);
    s->cred_password = s->cred_user = s->cred_domain = NULL;
}

/* ----------------------------------------------------------- starting */

static void start_handshake_clock(cc_session *s)
{
    uint64_t now = cc__now_ms();
    s->handshake_deadline = now + s->ctx->base.timeout[CC_TIMEOUT_HANDSHAKE];
    s->last_rx = now;
}

CC_API int cc_session_connect(cc_session *s, const char *host, uint16_t port)
{
    if (!s || !host || !*host || strlen(host) > CC__NAME_MAX)
        return CC_ERR_INVALID;
    if (s->role != CC_ROLE_CONSOLE || s->state != CC_STATE_NEW || cc__pipe_started(s->pipe))
        return CC_ERR_STATE;
    s->peer_name = cc__strdup(s->ctx, host);
    cc_job *j = s->peer_name ? cc__resolve_job_new(s->ctx, host, port ? port : CC_DEFAULT_PORT) : NULL;
    if (!j)
        return CC_ERR_NOMEM;
    cc__session_queue_job(s, j);
    start_handshake_clock(s);
    cc__session_advance(s);
    cc__session_notify(s);
    return CC_OK;
}

/* Accepted socket or host callbacks: the transport is the pipe's from here
 * on, whatever happens; the session starts once everything is in place. */
static int begin_transport(cc_session *s, const cc__transport *t)
{
    int r = cc__pipe_start(s->pipe, t, s->peer_name, s->errmsg, sizeof s->errmsg);
    if (r < 0)
        return r;
    start_handshake_clock(s);
    if (s->role == CC_ROLE_CLIENT) {
        /* After failed proofs from this address, its next console waits
         * before it is served; the handshake deadline starts after the wait. */
        uint64_t now = cc__now_ms();
        uint32_t wait =
            cc__backoff_wait(&s->ctx->backoff, &s->source, s->ctx->base.timeout[CC_TIMEOUT_AUTH_BACKOFF], now);
        if (wait) {
            cc__stat_add(s->ctx, CC__ST_BACKOFF_DELAYED, 1);
            s->hold_until = now + wait;
            s->handshake_deadline += wait;
            cc__log(s->ctx, CC_LOG_INFO, "session %p: %u ms wait after failed proofs from this address", (void *)s,
                    wait);
        }
    }
    cc__session_advance(s);
    cc__session_notify(s);
    return CC_OK;
}

CC_API int cc_session_accept_fd(cc_session *s, cc_socket sock)
{
    if (!s || sock < 0 || sock > INT_MAX)
        return CC_ERR_INVALID;
    int fd = (int)sock;
    if (s->role != CC_ROLE_CLIENT || s->state != CC_STATE_NEW || cc__pipe_started(s->pipe))
        return CC_ERR_STATE;
    if (cc__fd_set_nonblock(fd) < 0)
        return CC_ERR_IO;
    s->source.len = (uint8_t)cc__fd_peer_addr(fd, s->source.addr);
    cc__transport t = {fd, NULL, NULL, NULL, &s->watch};
    return begin_transport(s, &t);
}

CC_API int cc_session_set_transport(cc_session *s, cc_send_fn send, cc_recv_fn recv, void *user, const char *peer_name)
{
    if (!s || !send || !recv || (peer_name && strlen(peer_name) > CC__NAME_MAX))
        return CC_ERR_INVALID;
    if (s->state != CC_STATE_NEW || cc__pipe_started(s->pipe))
        return CC_ERR_STATE;
    if (s->role == CC_ROLE_CONSOLE && !peer_name && !s->ctx->tls.have_pin && !s->ctx->tls.verify_fn) {
        cc__fmt(s->errmsg, sizeof s->errmsg,
                "a console on a host transport needs the client's name to check its certificate "
                "(or a pinned fingerprint or a verify callback)");
        return CC_ERR_CONFIG;
    }
    if (s->role == CC_ROLE_CONSOLE && peer_name && !(s->peer_name = cc__strdup(s->ctx, peer_name)))
        return CC_ERR_NOMEM;
    cc__transport t = {-1, send, recv, user, NULL};
    return begin_transport(s, &t);
}

/* ---------------------------------------------------------------- jobs */

void cc__session_queue_job(cc_session *s, cc_job *j)
{
    cc_job **p = &s->queued;
    while (*p)
        p = &(*p)->next;
    j->next = NULL;
    j->owner = s;
    *p = j;
    cc__stat_add(s->ctx, CC__ST_JOBS_PENDING, 1);
}

CC_API cc_job *cc_session_take_job(cc_session *s)
{
    if (!s || !s->queued || s->state >= CC_STATE_CLOSED)
        return NULL;
    cc_job *j = s->queued;
    s->queued = j->next;
    j->next = NULL;
    j->out = true;
    s->jobs_out++;
    cc__stats_job_taken(s->ctx);
    return j;
}

CC_API int cc_session_job_done(cc_session *s, cc_job *job)
{
    if (!s || !job || !job->out || job->owner != s)
        return CC_ERR_INVALID;
    job->out = false;
    s->jobs_out--;
    cc__stat_add(s->ctx, CC__ST_JOBS_OUT, -1);
    if (s->state >= CC_STATE_CLOSED) {
        cc_job_free(job);
        return CC_OK;
    }
    job->next = s->back;
    s->back = job;
    cc__session_notify(s); /* the timer: step now */
    return CC_OK;
}

/* ------------------------------------------------------ data and pings */

static int send_data(cc_session *s, uint16_t channel, const void *data, size_t len)
{
    if (!s || (!data && len))
        return CC_ERR_INVALID;
    if (s->state != CC_STATE_ESTABLISHED)
        return CC_ERR_STATE;
    size_t limit = s->ctx->base.limit[CC_LIMIT_SEND_BUFFER];
    size_t frames = (len + DATA_FRAME_MAX - 1) / DATA_FRAME_MAX;
    if (len + frames * CC__FRAME_HDR > limit)
        return CC_ERR_INVALID; /* could never fit: waiting would not help */
    size_t queued = cc__pipe_channel_queued(s->pipe, channel);
    if (queued + len + frames * CC__FRAME_HDR > limit) {
        cc__pipe_channel_blocked(s->pipe, channel, 1);
        return CC_ERR_AGAIN;
    }
    int r = cc__pipe_queue_data(s->pipe, channel, data, len, DATA_FRAME_MAX);
    if (r < 0)
        return r;
    if (cc__pipe_channel_queued(s->pipe, channel) > limit / 2) {
        cc__pipe_channel_blocked(s->pipe, channel, 1); /* CC_EVENT_SEND_READY once it drains */
        return CC_SEND_HIGH_WATER;
    }
    return CC_OK;
}

CC_API int cc_session_send(cc_session *s, uint16_t channel, const void *data, size_t len)
{
    int r = send_data(s, channel, data, len);
    if (r >= 0)
        cc__session_notify(s); /* the socket: now also for writing */
    return r;
}

CC_API int cc_session_pause_reading(cc_session *s, int paused)
{
    if (!s)
        return CC_ERR_INVALID;
    if (s->read_paused && !paused)
        s->last_rx = cc__now_ms(); /* the silence was ours: restart the idle clock */
    s->read_paused = paused != 0;
    cc__session_notify(s);
    return CC_OK;
}

CC_API int cc_session_set_channel_priority(cc_session *s, uint16_t channel, int priority)
{
    if (!s || (priority != CC_PRIORITY_BULK && priority != CC_PRIORITY_INTERACTIVE))
        return CC_ERR_INVALID;
    return cc__pipe_set_priority(s->pipe, channel, priority);
}

CC_API int cc_session_pause_channel(cc_session *s, uint16_t channel, int paused)
{
    if (!s)
        return CC_ERR_INVALID;
    uint32_t grant;
    int r = cc__pipe_pause_channel(s->pipe, channel, paused != 0, &grant);
    if (r == CC_OK && grant)
        r = cc__session_grant(s, channel, grant);
    cc__session_notify(s);
    return r;
}

static int send_ping(cc_session *s)
{
    if (!s)
        return CC_ERR_INVALID;
    if (s->state != CC_STATE_ESTABLISHED)
        return CC_ERR_STATE;
    cc__ping_msg m;
    s->ping_sent = cc__now_ms();
    cc__ping_stamp(&m, s->ping_sent);
    s->ping_outstanding = true;
    return cc__f_ping_pack(cc__pipe_out_urgent(s->pipe), s->ctx, &m); /* established: close_notify is not out */
}

CC_API int cc_session_ping(cc_session *s)
{
    int r = send_ping(s);
    if (r >= 0)
        cc__session_notify(s);
    return r;
}

/* ------------------------------------------------------------- queries */

CC_API int cc_session_state(const cc_session *s)
{
    return s ? s->state : CC_ERR_INVALID;
}

CC_API int cc_session_error(const cc_session *s)
{
    return s ? s->error : CC_ERR_INVALID;
}

CC_API const char *cc_session_errmsg(const cc_session *s)
{
    return s ? s->errmsg : "";
}

CC_API cc_socket cc_session_fd(const cc_session *s)
{
    if (!s)
        return CC_SOCKET_INVALID;
    int fd = s->state == CC_STATE_CONNECTING ? cc__connector_fd(s->conn) : cc__pipe_fd(s->pipe);
    return fd >= 0 ? (cc_socket)fd : CC_SOCKET_INVALID;
}

CC_API size_t cc_session_pending(const cc_session *s)
{
    return s ? cc__pipe_pending(s->pipe) : 0;
}

CC_API int cc_session_license(const cc_session *s, int *granted, uint32_t *count, uint32_t *in_use)
{
    if (!s)
        return CC_ERR_INVALID;
    /* A client's verdict counts once told, or once the session has failed with it in hand. */
    if (s->license_stage == LIC_NONE ||
        (s->role == CC_ROLE_CLIENT && s->license_stage != LIC_TOLD && s->state < CC_STATE_FAILED))
        return CC_ERR_STATE;
    if (granted)
        *granted = s->license.granted;
    if (count)
        *count = s->license.count;
    if (in_use)
        *in_use = s->license.in_use;
    return CC_OK;
}

CC_API int cc_session_auth_mutual(const cc_session *s)
{
    if (!s)
        return CC_ERR_INVALID;
    if (s->role != CC_ROLE_CONSOLE || !s->auth_ok)
        return CC_ERR_STATE;
    return s->mutual ? 1 : 0;
}

CC_API const char *cc_session_mechanism(const cc_session *s)
{
    return s && s->auth ? cc__auth_name(s->auth) : NULL;
}

CC_API const char *cc_session_identity(const cc_session *s)
{
    /* Only an identity that was let in: not one the policy refused. */
    return s && s->auth &&
                   (s->state == CC_STATE_ESTABLISHED || s->state == CC_STATE_CLOSING || s->state == CC_STATE_CLOSED)
               ? cc__auth_identity(s->auth)
               : NULL;
}

CC_API int cc_session_auth_attribute(const cc_session *s, uint32_t i, const char **key, const char **value)
{
    if (!s || !s->auth || i >= cc__auth_attr_count(s->auth))
        return CC_ERR_INVALID;
    const char *k, *v;
    cc__auth_attr(s->auth, i, &k, &v);
    if (key)
        *key = k;
    if (value)
        *value = v;
    return CC_OK;
}

CC_API int cc_session_channel_binding(const cc_session *s, uint8_t *out, size_t out_len)
{
    if (!s || !out || out_len < CC__BINDING_LEN)
        return CC_ERR_INVALID;
    if (!cc__pipe_tls(s->pipe) || s->state < CC_STATE_HELLO)
        return CC_ERR_STATE;
    memcpy(out, s->cb, CC__BINDING_LEN);
    return CC_OK;
}

CC_API const char *cc_session_tls_version(const cc_session *s)
{
    return s ? cc__tls_version(cc__pipe_tls(s->pipe)) : NULL;
}

CC_API const char *cc_session_tls_cipher(const cc_session *s)
{
    return s ? cc__tls_cipher(cc__pipe_tls(s->pipe)) : NULL;
}
