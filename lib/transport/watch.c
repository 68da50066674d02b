/* watch.c -- what the host was told to watch: each socket a session reported
 * through its cc_socket_fn and the events last reported, so that only changes
 * are reported and every close is preceded by its CC_POLL_REMOVE. */
#include "transport.h"

#include <string.h>
#include <unistd.h>

static int find(const cc__watch *w, int fd)
{
    for (int i = 0; i < w->n; i++)
        if (w->rep[i].fd == fd)
            return i;
    return -1;
}

static void forget(cc__watch *w, int i)
{
    int fd = w->rep[i].fd;
    w->rep[i] = w->rep[--w->n];
    w->fn(w->user, w->s, (cc_socket)fd, CC_POLL_REMOVE);
}

void cc__watch_set(cc__watch *w, int fd, unsigned events)
{
    if (!w || !w->fn || fd < 0)
        return;
    events &= CC_POLL_IN | CC_POLL_OUT;
    int i = find(w, fd);
    if (!events) {
        if (i >= 0)
            forget(w, i);
        return;
    }
    if (i >= 0 && w->rep[i].events == events)
        return;
    if (i < 0) {
        if (w->n == CC__WATCH_MAX) /* the connector never holds more; nothing to report rather than overflow */
            return;
        i = w->n++;
        w->rep[i].fd = fd;
    }
    w->rep[i].events = (uint8_t)events;
    w->fn(w->user, w->s, (cc_socket)fd, (int)events);
}

void cc__watch_keep_only(cc__watch *w, const int *fds, size_t n)
{
    if (!w || !w->fn)
        return;
    for (int i = w->n - 1; i >= 0; i--) {
        bool keep = false;
        for (size_t k = 0; k < n && !keep; k++)
            keep = fds[k] == w->rep[i].fd;
        if (!keep)
            forget(w, i);
    }
}

void cc__watch_close(cc__watch *w, int fd)
{
    if (fd < 0)
        return;
    if (w && w->fn) {
        int i = find(w, fd);
        if (i >= 0)
            forget(w, i);
    }
    close(fd);
}
