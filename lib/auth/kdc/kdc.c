/* kdc.c -- talks to a realm's KDCs from an auth job with one deadline over everything
 * (MIT 1.20 has no overall request timeout: its own retries take ~30 s), for both mechanisms. */
#include "kdc.h"

#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <profile.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KDC_MAX         16         /* KDC entries tried per exchange */
#define KDC_REPLY_MAX   (1u << 20) /* PACs with many groups are large; 1 MiB is plenty */
#define KDC_UDP_WAIT_MS 1000

struct kdc {
    char host[256];
    char port[8];
};

static int remaining(uint64_t deadline)
{
    uint64_t now = cc__now_ms();
    return now >= deadline ? 0 : (int)(deadline - now > 60000 ? 60000 : deadline - now);
}

/* "host", "host:port", "[v6]:port", optionally "udp/" / "tcp/" / "kkdcp" URLs (skipped). */
static bool parse_kdc(const char *v, struct kdc *k)
{
    if (strncmp(v, "https://", 8) == 0)
        return false; /* MS-KKDCP proxies: left to libkrb5 */
    if (strncmp(v, "tcp/", 4) == 0 || strncmp(v, "udp/", 4) == 0)
        v += 4;
    const char *port = NULL;
    size_t hl;
    if (v[0] == '[') {
        const char *e = strchr(v, ']');
        if (!e)
            return false;
        hl = (size_t)(e - v - 1);
        v++;
        if (e[1] == ':')
            port = e + 2;
    } else {
        const char *c = strchr(v, ':');
        if (c && strchr(c + 1, ':'))
            c = NULL; /* a bare IPv6 address */
        hl = c ? (size_t)(c - v) : strlen(v);
        if (c)
            port = c + 1;
    }
    if (!hl || hl >= sizeof k->host || (port && (strlen(port) >= sizeof k->port || !*port)))
        return false;
    memcpy(k->host, v, hl);
    k->host[hl] = 0;
    cc__fmt(k->port, sizeof k->port, "%s", port ? port : "88");
    return true;
}

/* DNS SRV records _kerberos._tcp.REALM (then _udp), as libkrb5 would with dns_lookup_kdc. */
static size_t srv_lookup(const char *realm, struct kdc *out, size_t max, uint64_t deadline)
{
    size_t n = 0;
    if (remaining(deadline) < 1000)
        return 0; /* not enough time left for a resolver round trip */
    struct __res_state st;
    memset(&st, 0, sizeof st);
    if (res_ninit(&st) != 0)
        return 0;
    /* The resolver's own timeouts, kept within the job's remaining time. */
    st.retrans = remaining(deadline) / 2000 > 2 ? 2 : 1;
    st.retry = 1;
    for (int proto = 0; proto < 2 && n == 0; proto++) {
        char q[300];
        unsigned char ans[4096];
        cc__fmt(q, sizeof q, "_kerberos._%s.%s.", proto ? "udp" : "tcp", realm);
        int len = res_nquery(&st, q, ns_c_in, ns_t_srv, ans, sizeof ans);
        if (len < 12 || len > (int)sizeof ans)
            continue;
        const unsigned char *p = ans + 12, *end = ans + len;
        int qd = ans[4] << 8 | ans[5], an = ans[6] << 8 | ans[7];
        char name[256];
        for (int i = 0; i < qd && p < end; i++) {
            int l = dn_expand(ans, end, p, name, sizeof name);
            if (l < 0 || end - p < l + 4)
                goto next;
            p += l + 4;
        }
        for (int i = 0; i < an && p < end && n < max; i++) {
            int l = dn_expand(ans, end, p, name, sizeof name);
            if (l < 0 || end - p < l + 10)
                break;
            p += l;
            int type = p[0] << 8 | p[1], rdlen = p[8] << 8 | p[9];
            p += 10;
            if (end - p < rdlen)
                break;
            if (type == ns_t_srv && rdlen >= 7) {
                unsigned port = (unsigned)(p[4] << 8 | p[5]);
                if (dn_expand(ans, end, p + 6, name, sizeof name) >= 0 && name[0] && strcmp(name, ".") != 0) {
                    cc__fmt(out[n].host, sizeof out[n].host, "%s", name);
                    cc__fmt(out[n].port, sizeof out[n].port, "%u", port);
                    n++;
                }
            }
            p += rdlen;
        }
    next:;
    }
    res_nclose(&st);
    return n;
}

static int connect_nb(const struct addrinfo *ai, int deadline_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct pollfd pf = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&pf, 1, deadline_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits for fd to be ready for `ev` until the deadline; false on timeout/error. */
static bool wait_fd(int fd, short ev, uint64_t deadline)
{
    for (;;) {
        int ms = remaining(deadline);
        if (ms <= 0)
            return false;
        struct pollfd pf = {fd, ev, 0};
        int r = poll(&pf, 1, ms);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
        if (r == 0)
            return false;
    }
}

static bool send_all(int fd, const uint8_t *p, size_t n, uint64_t deadline)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(fd, POLLOUT, deadline))
                return false;
        } else
            return false;
    }
    return true;
}

static bool recv_all(int fd, uint8_t *p, size_t n, uint64_t deadline)
{
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(fd, POLLIN, deadline))
                return false;
        } else
            return false;
    }
    return true;
}

/* One TCP exchange (RFC 4120 7.2.2: 4-byte length prefix). */
static krb5_error_code tcp_exchange(const struct addrinfo *ai, const krb5_data *msg, uint64_t deadline,
                                    krb5_data *reply)
{
    int ms = remaining(deadline);
    if (ms <= 0)
        return ETIMEDOUT;
    int fd = connect_nb(ai, ms);
    if (fd < 0)
        return ECONNREFUSED;
    uint8_t hdr[4] = {(uint8_t)(msg->length >> 24), (uint8_t)(msg->length >> 16), (uint8_t)(msg->length >> 8),
                      (uint8_t)msg->length};
    krb5_error_code r = ETIMEDOUT;
    if (!send_all(fd, hdr, 4, deadline) || !send_all(fd, (const uint8_t *)msg->data, msg->length, deadline) ||
        !recv_all(fd, hdr, 4, deadline))
        goto out;
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len == 0 || len > KDC_REPLY_MAX) {
        r = KRB5KRB_ERR_GENERIC;
        goto out;
    }
    reply->data = malloc(len);
    if (!reply->data) {
        r = ENOMEM;
        goto out;
    }
    if (!recv_all(fd, (uint8_t *)reply->data, len, deadline)) {
        free(reply->data);
        reply->data = NULL;
        goto out;
    }
    reply->length = len;
    r = 0;
out:
    close(fd);
    return r;
}

/* UDP: send, wait a second, resend, until an answer or the deadline. */
static krb5_error_code udp_exchange(const struct addrinfo *ai, const krb5_data *msg, uint64_t deadline,
                                    krb5_data *reply)
{
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno;
    krb5_error_code r = ETIMEDOUT;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        r = ECONNREFUSED;
        goto out;
    }
    uint8_t *buf = malloc(65536);
    if (!buf) {
        r = ENOMEM;
        goto out;
    }
    for (int tries = 0; tries < 3 && remaining(deadline) > 0; tries++) {
        if (send(fd, msg->data, msg->length, MSG_NOSIGNAL) < 0) {
            r = ECONNREFUSED;
            break;
        }
        uint64_t wait_until = cc__now_ms() + KDC_UDP_WAIT_MS;
        if (wait_until > deadline)
            wait_until = deadline;
        if (!wait_fd(fd, POLLIN, wait_until))
            continue;
        ssize_t n = recv(fd, buf, 65536, 0);
        if (n < 0 && errno == ECONNREFUSED) {
            r = ECONNREFUSED;
            break;
        }
        if (n > 0) {
            reply->data = (char *)buf;
            reply->length = (unsigned)n;
            buf = NULL;
            r = 0;
            break;
        }
    }
    free(buf);
out:
    close(fd);
    return r;
}

krb5_error_code cc__kdc_exchange(krb5_context k, const krb5_data *realm_d, const krb5_data *msg, uint64_t deadline,
                                 krb5_data **reply_out, bool *handled, bool *timed_out)
{
    *handled = false;
    char realm[256];
    struct kdc kdcs[KDC_MAX];
    size_t n = 0;
    if (realm_d->length == 0 || realm_d->length >= sizeof realm)
        return 0;
    memcpy(realm, realm_d->data, realm_d->length);
    realm[realm_d->length] = 0;

    profile_t prof = NULL;
    if (krb5_get_profile(k, &prof) == 0) {
        const char *names[] = {"realms", realm, "kdc", NULL};
        char **vals = NULL;
        if (profile_get_values(prof, names, &vals) == 0) {
            for (size_t i = 0; vals[i] && n < KDC_MAX; i++)
                if (parse_kdc(vals[i], &kdcs[n]))
                    n++;
            profile_free_list(vals);
        }
        int dns = 1;
        if (n == 0)
            profile_get_boolean(prof, "libdefaults", "dns_lookup_kdc", NULL, 1, &dns);
        profile_abandon(prof);
        if (n == 0 && dns)
            n = srv_lookup(realm, kdcs, KDC_MAX, deadline);
    }
    if (n == 0)
        return 0; /* nothing we can locate: let libkrb5 try its own ways */
    *handled = true;

    krb5_error_code last = KRB5_KDC_UNREACH;
    for (size_t i = 0; i < n; i++) {
        if (remaining(deadline) <= 0)
            break;
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(kdcs[i].host, kdcs[i].port, &hints, &res) != 0)
            continue;
        /* A silent KDC must not use up the time of the ones after it. */
        uint64_t mine = cc__now_ms() + (uint64_t)remaining(deadline) / (n - i);
        if (mine < cc__now_ms() + 1000)
            mine = cc__now_ms() + 1000;
        if (mine > deadline)
            mine = deadline;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            krb5_data rep = {0, 0, NULL};
            krb5_error_code r = tcp_exchange(ai, msg, mine, &rep);
            if (r == ECONNREFUSED)
                r = udp_exchange(ai, msg, mine, &rep);
            if (r == 0) {
                freeaddrinfo(res);
                r = krb5_copy_data(k, &rep, reply_out);
                free(rep.data);
                return r ? r : 0;
            }
            last = r;
            if (remaining(deadline) <= 0)
                break;
        }
        freeaddrinfo(res);
    }
    if (remaining(deadline) <= 0 || last == ETIMEDOUT)
        *timed_out = true;
    return KRB5_KDC_UNREACH;
}

/* libkrb5 calls this before sending each KDC message; a reply set here replaces
 * its own I/O, returning 0 with no reply lets libkrb5 send it its own way. */
static krb5_error_code KRB5_CALLCONV send_hook(krb5_context k, void *data, const krb5_data *realm,
                                               const krb5_data *message, krb5_data **new_message, krb5_data **new_reply)
{
    (void)new_message;
    cc__kdc_deadline *d = data;
    if (cc__now_ms() >= d->at_ms) {
        d->timed_out = true;
        return KRB5_KDC_UNREACH;
    }
    bool handled = false;
    krb5_error_code r = cc__kdc_exchange(k, realm, message, d->at_ms, new_reply, &handled, &d->timed_out);
    return handled ? r : 0;
}

void cc__kdc_bind(krb5_context k, cc__kdc_deadline *d)
{
    krb5_set_kdc_send_hook(k, send_hook, d);
}
