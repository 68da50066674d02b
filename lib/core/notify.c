/* notify.c -- the socket and timer callbacks: after every public call that
 * can change what a session waits for, the host hears what changed (which
 * sockets for which events, and the next deadline), so that a host with many
 * sessions touches only the ready ones. */
#include "session.h"

static unsigned poll_bits(int want)
{
    return (want & CC_WANT_READ ? CC_POLL_IN : 0) | (want & CC_WANT_WRITE ? CC_POLL_OUT : 0);
}

static void notify_sockets(cc_session *s)
{
    int fds[CC__WATCH_MAX];
    if (s->state == CC_STATE_CONNECTING && s->conn) {
        size_t n = cc__connector_fds(s->conn, fds, CC__WATCH_MAX);
        for (size_t i = 0; i < n; i++)
            cc__watch_set(&s->watch, fds[i], CC_POLL_OUT);
        cc__watch_keep_only(&s->watch, fds, n);
        return;
    }
    int fd = s->state < CC_STATE_CLOSED ? cc__pipe_fd(s->pipe) : -1;
    fds[0] = fd;
    cc__watch_keep_only(&s->watch, fds, fd >= 0);
    if (fd >= 0)
        cc__watch_set(&s->watch, fd, poll_bits(cc__session_wants(s)));
}

#define CC__TIMER_RETELL_MS 100

static void notify_timer(cc_session *s)
{
    uint64_t now = cc__now_ms();
    uint64_t d = cc__session_deadline(s, now);
    /* A deadline already due, or due within CC__TIMER_RETELL_MS, is told again: a host drops
     * a timer once it fired, and a host whose clock lags ours (libuv reads its clock once per
     * loop iteration) may fire it a little early, find nothing due, and be left with no timer. */
    if (d == s->timer_told && !(d && d <= now + CC__TIMER_RETELL_MS))
        return;
    s->timer_told = d;
    uint64_t left = d > now ? d - now : 0;
    s->timer_fn(s->timer_user, s, !d ? -1 : left > INT32_MAX ? INT32_MAX : (int32_t)left);
}

void cc__session_notify(cc_session *s)
{
    if (s->watch.fn)
        notify_sockets(s);
    if (s->timer_fn)
        notify_timer(s);
}

void cc__session_notify_gone(cc_session *s)
{
    if (s->timer_fn && s->timer_told) {
        s->timer_told = 0;
        s->timer_fn(s->timer_user, s, -1);
    }
}

/* ------------------------------------------------------------- setters */
/* (the context's defaults are set in context.c, with every public context setter) */

CC_API int cc_session_set_socket_callback(cc_session *s, cc_socket_fn fn, void *user)
{
    if (!s)
        return CC_ERR_INVALID;
    if (s->state != CC_STATE_NEW || cc__pipe_started(s->pipe))
        return CC_ERR_STATE;
    s->watch.fn = fn;
    s->watch.user = user;
    return CC_OK;
}

CC_API int cc_session_set_timer_callback(cc_session *s, cc_timer_fn fn, void *user)
{
    if (!s)
        return CC_ERR_INVALID;
    if (s->state != CC_STATE_NEW || cc__pipe_started(s->pipe))
        return CC_ERR_STATE;
    s->timer_fn = fn;
    s->timer_user = user;
    return CC_OK;
}
