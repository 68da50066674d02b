/* cc-console.c -- the technician's side: connects to a client on port 1680
 * through the whole connection process; a diagnostic tool support staff run. */
#define _GNU_SOURCE
#include "common.h"
#include "diag.h"
#include "psk.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROG "cc-console"

static const char usage[] =
    "usage: cc-console HOST[:PORT] [options]\n"
    "  connects to a Carbon Copy client (port 1680 unless given) and reports each step\n"
    "certificate (pick one; default: the system CA store):\n"
    "  --ca FILE              trust client certificates issued by the CAs in FILE\n"
    "  --pin SHA256HEX        trust exactly the certificate with this SHA-256 fingerprint\n"
    "authentication:\n"
    "  --auth MECH            psk, nt or kerberos (repeatable; order = preference)\n"
    "  --psk-file FILE        pre-shared key for psk\n"
    "  --user NAME            user (nt), principal (kerberos) or name (psk)\n"
    "  --domain DOMAIN        NT domain\n"
    "  --password-file FILE   password for nt, or for kerberos instead of the ticket cache\n"
    "  --service PRINCIPAL    kerberos service principal (default host/HOST@REALM)\n"
    "  --require-mutual       offer only mechanisms that prove the client (kerberos, psk)\n"
    "                         and refuse a client that did not prove itself\n"
    "session:\n"
    "  --send FILE            send FILE on channel 1 (bulk) and check that the echo matches\n"
    "  --ping-interval MS     ping every MS while the session runs; print each round trip\n"
    "  --timeout MS           handshake deadline (default 10000)\n"
    "  --reconnect N          once established, drop the connection and come back N times\n"
    "                         with the client's reconnect ticket (no licence, no password)\n"
    "  --consent-timeout MS   most to wait while the client asks its user (default 60000)\n"
    "  --json                 one JSON object per line per event on stdout\n"
    "  --trace                print each step with its duration on stderr\n"
    "  --check                test the connection: one line per step through authentication,\n"
    "                         then close without a data session\n"
    "  --version              print the library's version and exit\n"
    "exit codes: 0 ok, 2 usage, 3 resolve/connect, 4 TLS/certificate, 5 licence,\n"
    "            6 authentication, 7 timeout, 8 protocol, 9 consent refused or not given in time\n";

/* What the command line asks for. */
struct options {
    const char *ca, *pin, *psk_file, *user, *domain, *pw_file, *service, *send_file;
    const char *mechs[8]; /* in order of preference */
    int n_mechs;
    unsigned long timeout, reconnect, consent_timeout, ping_interval;
    bool json, trace, require_mutual, check;
    char *host; /* malloc'd */
    unsigned port;
};

/* The one session and what its events and the loop track. */
struct app {
    cc_context *ctx;
    cc_session *s;
    ex_jobs q;
    bool q_open;
    bool json, trace;
    double t0, t_last;
    FILE *send_f, *check_f; /* --send: the file read to send, and again to check the echo */
    long long send_size, sent, echoed;
    bool send_done, mismatch, closing, blocked;
    /* the client's certificate as the verify callback saw it, for the failure's words */
    ex_cert cert;
    const char *host, *ca;
    bool pinned;
    /* --check: the socket the tool connected itself (-1: the library's), what was reported */
    bool check;
    int fd;
    bool said_preamble, said_tls, said_failure, traced_tls;
    int last_state;
    /* --send progress: when the sending started and progress was last shown; the bar only on a terminal */
    double send_t0, progress_at;
    bool bar;
    /* --reconnect: reconnections still to make, the newest ticket (a credential: wiped) */
    unsigned long reconnect_left, reconnected;
    uint8_t ticket[CC_RECONNECT_TICKET_MAX];
    size_t ticket_len;
    double established_at;
    bool consent_wait; /* the client asked its user (CC_EVENT_CONSENT) */
    /* --ping-interval: every how many ms, and when the next ping is due */
    double ping_interval, next_ping;
};

static bool cert_code(int code)
{
    return code == CC_ERR_CERT_UNTRUSTED || code == CC_ERR_CERT_MISMATCH;
}

/* A failure in one line: the library's detail, after cc_strerror's sentence
 * unless the detail already says it; a certificate failure in the words of
 * ex_cert_explain. Not escaped: it may quote the peer (its certificate's
 * names, its CLOSE reason), so it reaches output only through ex_show or
 * ex_json_string. */
static const char *failure_text(const struct app *a, int code, const char *detail, char *buf, size_t cap)
{
    if (cert_code(code))
        return ex_cert_explain(buf, cap, code, detail, &a->cert, a->host, a->ca, a->pinned);
    const char *what = cc_strerror(code);
    if (!detail || !*detail)
        snprintf(buf, cap, "%s", what);
    else if (strstr(detail, what))
        snprintf(buf, cap, "%s", detail);
    else
        snprintf(buf, cap, "%s: %s", what, detail);
    return buf;
}

static void check_closed(struct app *a, const cc_event *ev);
static void check_license(struct app *a, const cc_event *ev);
static void check_auth(struct app *a, const cc_event *ev);
static void check_state(struct app *a, const cc_event *ev);

/* ---- output: one line per event, JSON on stdout or text on stderr ---- */

/* --trace: what a state change proves, under its line: the address connected to once the
 * preamble starts, the TLS version, cipher and certificate once TLS is done. */
static void trace_details(struct app *a, const cc_event *ev)
{
    char s1[EX_SHOW_MAX], s2[EX_SHOW_MAX];
    if (ev->state == CC_STATE_PREAMBLE) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char h[NI_MAXHOST], p[NI_MAXSERV];
        cc_socket own = cc_session_fd(a->s);
        int fd = own != CC_SOCKET_INVALID ? (int)own : a->fd;
        if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0 &&
            getnameinfo((struct sockaddr *)&ss, len, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            fprintf(stderr,
                    ss.ss_family == AF_INET6 ? "               connected to [%s]:%s\n"
                                             : "               connected to %s:%s\n",
                    h, p);
    } else if (ev->state > CC_STATE_TLS && ev->state <= CC_STATE_ESTABLISHED && !a->traced_tls) {
        a->traced_tls = true;
        fprintf(stderr, "               %s %s; certificate %s, issued by %s, expires %s\n",
                cc_session_tls_version(a->s) ? cc_session_tls_version(a->s) : "?",
                cc_session_tls_cipher(a->s) ? cc_session_tls_cipher(a->s) : "?", ex_show(s1, a->cert.subject),
                ex_show(s2, a->cert.issuer), a->cert.not_after);
    }
}

static void print_state(struct app *a, const cc_event *ev)
{
    double now = ex_now_ms();
    if (a->trace) {
        fprintf(stderr, "[%9.3f ms] %-15s (+%.3f ms)\n", now - a->t0, cc_state_name(ev->state), now - a->t_last);
        trace_details(a, ev);
    }
    a->t_last = now;
    if (!a->json || a->check) /* --check --json: only the steps */
        return;
    printf("{\"event\":\"state\",\"state\":\"%s\",\"ms\":%.3f}\n", cc_state_name(ev->state), now - a->t0);
    if (ev->state == CC_STATE_ESTABLISHED) {
        printf("{\"event\":\"established\",\"mechanism\":");
        ex_json_string(stdout, cc_session_mechanism(a->s));
        printf(",\"tls\":");
        ex_json_string(stdout, cc_session_tls_version(a->s));
        printf(",\"cipher\":");
        ex_json_string(stdout, cc_session_tls_cipher(a->s));
        printf(",\"mutual\":%s,\"resumed\":%s,\"session_id\":", cc_session_auth_mutual(a->s) == 1 ? "true" : "false",
               cc_session_resumed(a->s) == 1 ? "true" : "false");
        ex_json_string(stdout, cc_session_id(a->s));
        printf(",\"ms\":%.3f}\n", now - a->t0);
    }
}

static void print_license(const struct app *a, const cc_event *ev)
{
    if (a->json)
        ex_json_license(0, ev, true, NULL);
    else if (ev->granted)
        fprintf(stderr, "licence granted: %u of %u in use\n", ev->license_in_use, ev->license_count);
}

/* The human line says whether the mechanism proved the client too, or only its certificate did:
 * a technician typing a password into an "nt" session trusts the certificate alone. */
static void print_auth(const struct app *a, const cc_event *ev)
{
    char mech[EX_SHOW_MAX], text[EX_SHOW_MAX];
    if (a->json)
        ex_json_auth(0, ev, true, NULL);
    else if (!ev->code && ev->resumed)
        fprintf(stderr, "resumed session %s as %s with the reconnect ticket\n", ev->session_id ? ev->session_id : "",
                ex_show(text, ev->text));
    else if (!ev->code)
        fprintf(stderr, "authenticated by %s as %s; %s\n", ex_show(mech, ev->mechanism), ex_show(text, ev->text),
                cc_session_auth_mutual(a->s) == 1 ? "the client proved itself through the mechanism too"
                                                  : "the client proved itself only by its certificate");
}

/* The client asks the person at the machine; its verdict comes with the result. */
static void print_consent_wait(struct app *a, const cc_event *ev)
{
    a->consent_wait = true;
    if (a->json)
        printf("{\"event\":\"consent\",\"waiting\":true,\"client_timeout_ms\":%llu,\"ms\":%.3f}\n",
               (unsigned long long)ev->value, ex_now_ms() - a->t0);
    else
        fprintf(stderr, "waiting for the consent of the person at the client (it waits up to %llu ms)\n",
                (unsigned long long)ev->value);
}

/* Once it was asked: the verdict, given (established) or not (refused, not in time). */
static void print_consent_verdict(const struct app *a, int code)
{
    if (!a->consent_wait || (code && code != CC_ERR_CONSENT_REFUSED && code != CC_ERR_CONSENT_TIMEOUT))
        return;
    const char *v = !code ? "given" : code == CC_ERR_CONSENT_REFUSED ? "refused" : "timeout";
    if (a->json)
        printf("{\"event\":\"consent\",\"waiting\":false,\"verdict\":\"%s\",\"ms\":%.3f}\n", v, ex_now_ms() - a->t0);
    else if (!code)
        fprintf(stderr, "consent given\n");
}

/* Failures in text mode are reported by the loop, with the session's detail. */
static void print_closed(const struct app *a, const cc_event *ev)
{
    if (ev->code)
        print_consent_verdict(a, ev->code);
    char why[1536];
    cc_event e = *ev;
    if (cert_code(ev->code))
        e.text = ex_cert_explain(why, sizeof why, ev->code, ev->text, &a->cert, a->host, a->ca, a->pinned);
    if (a->json)
        ex_json_closed(0, &e, true, NULL);
}

/* ---- events ---- */

/* --send: compares the echo with the file as it arrives. */
static void check_echo(struct app *a, const cc_event *ev)
{
    unsigned char buf[16384];
    size_t n = fread(buf, 1, ev->len, a->check_f);
    if (n != ev->len || memcmp(buf, ev->data, ev->len) != 0)
        a->mismatch = true;
    a->echoed += (long long)ev->len;
}

static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    struct app *a = user;
    (void)s; /* a->s */
    switch (ev->type) {
    case CC_EVENT_STATE:
        if (ev->state == CC_STATE_ESTABLISHED)
            print_consent_verdict(a, 0);
        print_state(a, ev);
        if (a->check)
            check_state(a, ev);
        break;
    case CC_EVENT_CONSENT:
        print_consent_wait(a, ev);
        break;
    case CC_EVENT_LICENSE:
        if (a->check)
            check_license(a, ev);
        else
            print_license(a, ev);
        break;
    case CC_EVENT_AUTH:
        if (a->check)
            check_auth(a, ev);
        else
            print_auth(a, ev);
        break;
    case CC_EVENT_DATA:
        if (a->check_f)
            check_echo(a, ev);
        break;
    case CC_EVENT_SEND_READY:
        if (ev->channel == 1)
            a->blocked = false;
        break;
    case CC_EVENT_PONG:
        if (a->json)
            printf("{\"event\":\"pong\",\"ms\":%llu}\n", (unsigned long long)ev->value);
        else
            printf("pong %llu ms\n", (unsigned long long)ev->value);
        fflush(stdout);
        break;
    case CC_EVENT_CLOSED:
        if (a->check)
            check_closed(a, ev);
        else
            print_closed(a, ev);
        break;
    case CC_EVENT_TICKET: /* --reconnect: keep the newest */
        if (a->reconnect_left && cc_session_reconnect_ticket(s, a->ticket, sizeof a->ticket, &a->ticket_len) < 0)
            a->ticket_len = 0;
        break;
    default:
        break;
    }
    fflush(stdout);
}

/* ---- options ---- */

/* Returns EX_RUN when the options are good, else the exit code (--help: EX_OK). */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option opts[] = {{"ca", required_argument, 0, 'c'},
                                         {"pin", required_argument, 0, 'p'},
                                         {"auth", required_argument, 0, 'a'},
                                         {"psk-file", required_argument, 0, 'k'},
                                         {"user", required_argument, 0, 'u'},
                                         {"domain", required_argument, 0, 'd'},
                                         {"password-file", required_argument, 0, 'w'},
                                         {"service", required_argument, 0, 'S'},
                                         {"require-mutual", no_argument, 0, 'M'},
                                         {"send", required_argument, 0, 's'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"reconnect", required_argument, 0, 'r'},
                                         {"consent-timeout", required_argument, 0, 'C'},
                                         {"ping-interval", required_argument, 0, 'P'},
                                         {"json", no_argument, 0, 'j'},
                                         {"trace", no_argument, 0, 'T'},
                                         {"check", no_argument, 0, 'K'},
                                         {"version", no_argument, 0, 'V'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->ca = optarg;
            break;
        case 'p':
            o->pin = optarg;
            break;
        case 'a':
            if (o->n_mechs == 8 || (strcmp(optarg, "psk") && strcmp(optarg, "nt") && strcmp(optarg, "kerberos"))) {
                fprintf(stderr, PROG ": --auth takes psk, nt or kerberos\n");
                return EX_USAGE;
            }
            o->mechs[o->n_mechs++] = optarg;
            break;
        case 'k':
            o->psk_file = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'd':
            o->domain = optarg;
            break;
        case 'w':
            o->pw_file = optarg;
            break;
        case 'S':
            o->service = optarg;
            break;
        case 'M':
            o->require_mutual = true;
            break;
        case 's':
            o->send_file = optarg;
            break;
        case 't':
            if (!ex_ms_option(PROG, "timeout", optarg, &o->timeout))
                return EX_USAGE;
            break;
        case 'r': {
            char *end;
            errno = 0;
            o->reconnect = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || o->reconnect > 1000) {
                fprintf(stderr, PROG ": --reconnect takes a count from 0 to 1000\n");
                return EX_USAGE;
            }
            break;
        }
        case 'C':
            if (!ex_ms_option(PROG, "consent-timeout", optarg, &o->consent_timeout))
                return EX_USAGE;
            break;
        case 'P':
            if (!ex_ms_option(PROG, "ping-interval", optarg, &o->ping_interval))
                return EX_USAGE;
            break;
        case 'j':
            o->json = true;
            break;
        case 'T':
            o->trace = true;
            break;
        case 'K':
            o->check = true;
            break;
        case 'V':
            printf(PROG " %s\n", cc_version_string());
            return EX_OK;
        case 'h':
            fputs(usage, stdout);
            return EX_OK;
        default:
            fputs(usage, stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc - 1 || (o->ca && o->pin)) {
        fputs(usage, stderr);
        return EX_USAGE;
    }
    if (o->check && o->send_file) {
        fprintf(stderr, PROG ": --check closes without a data session: it does not take --send\n");
        return EX_USAGE;
    }
    if (!ex_split_host_port(argv[optind], &o->host, &o->port) || o->port == 0) {
        fprintf(stderr, PROG ": cannot parse \"%s\" as HOST[:PORT]\n", argv[optind]);
        return EX_USAGE;
    }
    if (o->n_mechs == 0)
        o->mechs[o->n_mechs++] = o->psk_file ? "psk" : "kerberos";
    return EX_RUN;
}

/* ---- --check: the connection tester ----
 * One line per step, as it happens (the order the protocol takes, not one
 * written down here): resolve, connect per address, preamble, tls,
 * certificate, licence, mechanism, identity, close; a failure names its step
 * and the exit code is that step's. The tool resolves and connects itself, so
 * that each address tried has its line, and hands the socket to the session
 * as its transport. Text on stdout, or with --json one object per step:
 * {"event":"check","step":STEP,"ok":BOOL,...}. */

/* A text line: "STEP: ok: ..." or "STEP: FAILED: ...". */
static void check_say(const char *step, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check_say(const char *step, bool ok, const char *fmt, ...)
{
    va_list ap;
    printf("%-12s %s", step, ok ? "ok" : "FAILED");
    if (fmt && *fmt) {
        printf(": ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
    }
    printf("\n");
    fflush(stdout);
}

static void check_json_begin(const char *step, bool ok)
{
    printf("{\"event\":\"check\",\"step\":\"%s\",\"ok\":%s", step, ok ? "true" : "false");
}

static void check_json_field(const char *key, const char *value)
{
    printf(",\"%s\":", key);
    ex_json_string(stdout, value);
}

static void check_json_end(const struct app *a)
{
    printf(",\"ms\":%.3f}\n", ex_now_ms() - a->t0);
    fflush(stdout);
}

/* "127.0.0.1:1680", "[::1]:1680" */
static void addr_text(const struct addrinfo *ai, char *out, size_t cap)
{
    char h[NI_MAXHOST] = "?", p[NI_MAXSERV] = "?";
    getnameinfo(ai->ai_addr, ai->ai_addrlen, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(out, cap, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, p);
}

/* One connect with a deadline: 0 connected, else the errno (ETIMEDOUT when the deadline passed). */
static int connect_one(const struct addrinfo *ai, int ms, int *fd_out)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno;
    int err = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        double end = ex_now_ms() + ms;
        int r;
        do
            r = poll(&p, 1, (int)(end - ex_now_ms() > 0 ? end - ex_now_ms() : 0));
        while (r < 0 && errno == EINTR);
        socklen_t l = sizeof err;
        if (r == 0)
            err = ETIMEDOUT;
        else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
            err = errno;
    }
    if (err) {
        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

static long fd_send(void *user, const uint8_t *data, size_t len)
{
    ssize_t r = send(*(int *)user, data, len, MSG_NOSIGNAL);
    if (r > 0)
        return (long)r;
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? CC_IO_WOULD_BLOCK : CC_IO_ERROR;
}

static long fd_recv(void *user, uint8_t *buf, size_t len)
{
    ssize_t r = recv(*(int *)user, buf, len, 0);
    if (r >= 0)
        return (long)r;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? CC_IO_WOULD_BLOCK : CC_IO_ERROR;
}

static void check_resolved(const struct app *a, const char *host, const struct addrinfo *res, int n)
{
    char list[1024] = "", one[NI_MAXHOST + 16];
    size_t o = 0;
    if (a->json) {
        check_json_begin("resolve", true);
        check_json_field("host", host);
        printf(",\"addresses\":[");
    }
    int i = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next, i++) {
        char h[NI_MAXHOST] = "?";
        getnameinfo(ai->ai_addr, ai->ai_addrlen, h, sizeof h, NULL, 0, NI_NUMERICHOST);
        if (a->json) {
            printf(i ? "," : "");
            ex_json_string(stdout, h);
        } else {
            snprintf(one, sizeof one, "%s%s", i ? ", " : "", h);
            if (o + strlen(one) < sizeof list - 4) {
                memcpy(list + o, one, strlen(one) + 1);
                o += strlen(one);
            }
        }
    }
    char shown[EX_SHOW_MAX];
    if (a->json) {
        printf("]");
        check_json_end(a);
    } else {
        check_say("resolve", true, "%s has %d address%s: %s", ex_show(shown, host), n, n == 1 ? "" : "es", list);
    }
}

/* The resolve and connect steps; on success the session runs over the socket. */
static int check_connect(struct app *a, const char *host, uint16_t port, unsigned long timeout)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res = NULL;
    char svc[8], shown[EX_SHOW_MAX];
    snprintf(svc, sizeof svc, "%u", port);
    int g = getaddrinfo(host, svc, &hints, &res);
    if (g != 0 || !res) {
        const char *why = g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g);
        if (a->json) {
            check_json_begin("resolve", false);
            check_json_field("host", host);
            printf(",\"code\":\"%s\",\"errno\":%d", cc_err_name(CC_ERR_RESOLVE), CC_ERR_RESOLVE);
            check_json_field("message", why);
            check_json_end(a);
        } else {
            check_say("resolve", false, "%s: %s", ex_show(shown, host), why);
        }
        return EX_CONNECT;
    }
    int n = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n++;
    check_resolved(a, host, res, n);
    /* each address as long as the library gives one (CC_TIMEOUT_CONNECT_ATTEMPT's default) */
    int per = timeout && timeout < 2000 ? (int)timeout : 2000;
    for (const struct addrinfo *ai = res; ai && a->fd < 0; ai = ai->ai_next) {
        char where[NI_MAXHOST + 16];
        addr_text(ai, where, sizeof where);
        int err = connect_one(ai, per, &a->fd);
        const char *result = err == 0              ? "ok"
                             : err == ECONNREFUSED ? "refused"
                             : err == ETIMEDOUT    ? "timeout"
                                                   : strerror(err);
        if (a->json) {
            check_json_begin("connect", err == 0);
            check_json_field("address", where);
            check_json_field("result", result);
            if (err == ETIMEDOUT)
                printf(",\"after_ms\":%d", per);
            check_json_end(a);
        } else if (err == ETIMEDOUT) {
            printf("%-12s %s: timeout (no answer within %d ms)\n", "connect", where, per);
        } else {
            printf("%-12s %s: %s\n", "connect", where, result);
        }
        fflush(stdout);
    }
    freeaddrinfo(res);
    if (a->fd < 0) {
        if (a->json) {
            check_json_begin("connect", false);
            printf(",\"code\":\"%s\",\"errno\":%d", cc_err_name(CC_ERR_CONNECT), CC_ERR_CONNECT);
            check_json_field("message", "no address accepted a connection");
            check_json_end(a);
        } else {
            check_say("connect", false, "no address of %s accepted a connection on port %u", ex_show(shown, host),
                      port);
        }
        return EX_CONNECT;
    }
    EX_CHECK(PROG, a->ctx, cc_session_set_transport(a->s, fd_send, fd_recv, &a->fd, host), EX_USAGE);
    return EX_OK;
}

/* The steps the state changes prove passed: past PREAMBLE the preamble, past TLS the TLS
 * handshake and the certificate check. */
static void check_state(struct app *a, const cc_event *ev)
{
    if (ev->state == CC_STATE_FAILED || ev->state == CC_STATE_CLOSED || ev->state == CC_STATE_CLOSING) {
        a->last_state = a->last_state ? a->last_state : ev->state;
        return;
    }
    a->last_state = ev->state;
    if (ev->state > CC_STATE_PREAMBLE && !a->said_preamble) {
        a->said_preamble = true;
        if (a->json) {
            check_json_begin("preamble", true);
            check_json_end(a);
        } else {
            check_say("preamble", true, "the client speaks the Carbon Copy protocol");
        }
    }
    if (ev->state > CC_STATE_TLS && !a->said_tls) {
        a->said_tls = true;
        const char *v = cc_session_tls_version(a->s), *c = cc_session_tls_cipher(a->s);
        const ex_cert *x = &a->cert;
        if (a->json) {
            check_json_begin("tls", true);
            check_json_field("version", v);
            check_json_field("cipher", c);
            check_json_end(a);
            check_json_begin("certificate", true);
            check_json_field("subject", x->subject);
            check_json_field("issuer", x->issuer);
            check_json_field("not_after", x->not_after);
            check_json_field("names", x->names);
            check_json_field("sha256", x->sha256);
            check_json_field("trusted_by", a->pinned ? "pin" : a->ca ? a->ca : "system store");
            check_json_end(a);
        } else {
            char s1[EX_SHOW_MAX], s2[EX_SHOW_MAX];
            check_say("tls", true, "%s, %s", v ? v : "?", c ? c : "?");
            check_say("certificate", true, "subject %s, issuer %s, expires %s; trusted by %s", ex_show(s1, x->subject),
                      ex_show(s2, x->issuer), x->not_after,
                      a->pinned ? "the pin"
                      : a->ca   ? a->ca
                                : "the system CA store");
        }
    }
}

static void check_license(struct app *a, const cc_event *ev)
{
    char text[EX_SHOW_MAX];
    if (a->json) {
        check_json_begin("licence", ev->granted != 0);
        printf(",\"granted\":%s,\"count\":%u,\"in_use\":%u", ev->granted ? "true" : "false", ev->license_count,
               ev->license_in_use);
        if (!ev->granted) {
            printf(",\"code\":\"%s\",\"errno\":%d", cc_err_name(ev->code), ev->code);
            check_json_field("message", ev->text);
        }
        check_json_end(a);
    } else if (ev->granted) {
        check_say("licence", true, "granted, %u of %u in use", ev->license_in_use, ev->license_count);
    } else {
        char figures[48];
        snprintf(figures, sizeof figures, "%u of %u in use", ev->license_in_use, ev->license_count);
        ex_show(text, ev->text);
        check_say("licence", false, "%s%s%s%s", text, strstr(text, figures) ? "" : " (",
                  strstr(text, figures) ? "" : figures, strstr(text, figures) ? "" : ")");
    }
    if (!ev->granted)
        a->said_failure = true;
}

static void check_auth(struct app *a, const cc_event *ev)
{
    char m[EX_SHOW_MAX], t[EX_SHOW_MAX];
    bool ok = ev->code == 0;
    bool mech_failed = !ev->mechanism || !*ev->mechanism;
    if (a->json) {
        if (!mech_failed) {
            check_json_begin("mechanism", true);
            check_json_field("mechanism", ev->mechanism);
            check_json_end(a);
        }
        check_json_begin(mech_failed ? "mechanism" : "identity", ok);
        if (ok) {
            check_json_field("identity", ev->text);
            printf(",\"mutual\":%s", ev->mutual == 1 ? "true" : "false");
        } else {
            printf(",\"code\":\"%s\",\"errno\":%d", cc_err_name(ev->code), ev->code);
            check_json_field("message", ev->text);
        }
        check_json_end(a);
    } else {
        if (!mech_failed)
            check_say("mechanism", true, "%s", ex_show(m, ev->mechanism));
        if (ok)
            check_say("identity", true, "%s; %s", ex_show(t, ev->text),
                      ev->mutual == 1 ? "the client proved itself through the mechanism too"
                                      : "the client proved itself only by its certificate");
        else
            check_say(mech_failed ? "mechanism" : "identity", false, "%s", ex_show(t, ev->text));
    }
    if (!ok)
        a->said_failure = true;
}

/* The step a failure belongs to: by its code where the code says, else by the state it came in. */
static const char *failed_step(int code, int state)
{
    if (code == CC_ERR_RESOLVE)
        return "resolve";
    if (code == CC_ERR_CONNECT)
        return "connect";
    if (code == CC_ERR_BAD_MAGIC || code == CC_ERR_BAD_VERSION)
        return "preamble";
    if (code <= CC_ERR_CERT_UNTRUSTED && code >= CC_ERR_CERT_REJECTED)
        return "certificate";
    if (code == CC_ERR_TLS || code == CC_ERR_TLS_CONFIG)
        return "tls";
    if (code <= CC_ERR_LICENSE_DENIED && code >= CC_ERR_LICENSE_CONFIG)
        return "licence";
    if (code == CC_ERR_AUTH_NO_MECHANISM || code == CC_ERR_AUTH_UNAVAILABLE || code == CC_ERR_AUTH_NO_CREDENTIALS)
        return "mechanism";
    if (code <= CC_ERR_AUTH && code >= CC_ERR_AUTH_UNAVAILABLE)
        return "identity";
    switch (state) {
    case CC_STATE_NEW:
    case CC_STATE_RESOLVING:
    case CC_STATE_CONNECTING:
        return "connect";
    case CC_STATE_PREAMBLE:
        return "preamble";
    case CC_STATE_TLS:
        return "tls";
    case CC_STATE_HELLO:
        return "hello";
    case CC_STATE_LICENSE:
        return "licence";
    case CC_STATE_AUTHENTICATING:
        return "identity";
    default:
        return "close";
    }
}

static void check_closed(struct app *a, const cc_event *ev)
{
    char text[1536];
    if (ev->code == 0) {
        if (a->json) {
            check_json_begin("close", true);
            check_json_field("reason", ev->text);
            check_json_end(a);
        } else {
            check_say("close", true, "closed without a data session");
        }
        return;
    }
    if (a->said_failure) /* the licence or auth line said it already */
        return;
    a->said_failure = true;
    const char *step = failed_step(ev->code, a->last_state);
    const char *mech = cc_session_mechanism(a->s);
    if (strcmp(step, "identity") == 0 && mech) { /* the mechanism ran: no CC_EVENT_AUTH said so */
        if (a->json) {
            check_json_begin("mechanism", true);
            check_json_field("mechanism", mech);
            check_json_end(a);
        } else {
            check_say("mechanism", true, "%s", ex_show(text, mech));
        }
    }
    failure_text(a, ev->code, ev->text, text, sizeof text);
    if (a->json) {
        check_json_begin(step, false);
        printf(",\"code\":\"%s\",\"errno\":%d", cc_err_name(ev->code), ev->code);
        check_json_field("message", text);
        check_json_end(a);
    } else {
        char shown[EX_SHOW_MAX];
        check_say(step, false, "%s", ex_show(shown, text));
    }
}

/* The last line: passed, or the exit code of the step that failed. */
static void check_result(const struct app *a, int rc)
{
    if (a->json) {
        check_json_begin("result", rc == EX_OK);
        printf(",\"exit\":%d", rc);
        check_json_end(a);
    } else if (rc == EX_OK) {
        printf("check passed\n");
    } else {
        printf("check FAILED (exit %d)\n", rc);
    }
    fflush(stdout);
}

/* ---- context and session ---- */

static int add_mechanisms(cc_context *ctx, const struct options *o)
{
    for (int i = 0; i < o->n_mechs; i++) {
        if (strcmp(o->mechs[i], "psk") == 0) {
            if (!o->psk_file) {
                fprintf(stderr, PROG ": --auth psk needs --psk-file\n");
                return EX_USAGE;
            }
            if (psk_register(ctx, o->psk_file) < 0)
                return EX_USAGE;
        } else {
            EX_CHECK(PROG, ctx, cc_context_add_builtin_authenticator(ctx, o->mechs[i]), EX_AUTH);
            if (o->service && strcmp(o->mechs[i], "kerberos") == 0)
                EX_CHECK(PROG, ctx, cc_context_set_auth_option(ctx, "kerberos", "service", o->service), EX_USAGE);
        }
    }
    return EX_OK;
}

/* Only looks: keeps the certificate for the lines that report or explain it, and
 * leaves the decision to the library's checks. */
static int look_at_cert(void *user, cc_session *s, const uint8_t *der, size_t len, int preverify_ok)
{
    (void)s;
    ex_cert_load(&((struct app *)user)->cert, der, len);
    return preverify_ok;
}

static int make_context(struct app *a, const struct options *o)
{
    /* a CA file that is missing, unreadable or not PEM is the command line's fault */
    if (o->ca && (!ex_file_readable(PROG, "ca", "CA file", o->ca) || !ex_file_has_pem_cert(PROG, "ca", o->ca)))
        return EX_USAGE;
    cc_context *ctx = a->ctx = ex_context_new(PROG, CC_ROLE_CONSOLE);
    if (!ctx)
        return EX_PROTOCOL;
    a->host = o->host;
    a->ca = o->ca;
    a->pinned = o->pin != NULL;
    EX_CHECK(PROG, ctx, cc_context_set_verify_callback(ctx, look_at_cert, a), EX_PROTOCOL);
    if (o->ca)
        EX_CHECK(PROG, ctx, cc_context_set_ca_file(ctx, o->ca), EX_USAGE);
    if (o->pin)
        EX_CHECK(PROG, ctx, cc_context_set_pin_sha256(ctx, o->pin), EX_USAGE);
    if (o->timeout)
        EX_CHECK(PROG, ctx, cc_context_set_timeout(ctx, CC_TIMEOUT_HANDSHAKE, (uint32_t)o->timeout), EX_USAGE);
    if (o->consent_timeout)
        EX_CHECK(PROG, ctx, cc_context_set_timeout(ctx, CC_TIMEOUT_CONSENT, (uint32_t)o->consent_timeout), EX_USAGE);
    if (o->require_mutual)
        EX_CHECK(PROG, ctx, cc_context_set_require_mutual(ctx, 1), EX_USAGE);
    return add_mechanisms(ctx, o);
}

/* The session with its credentials; the password is wiped once the session has its copy. */
static int make_session(struct app *a, const struct options *o)
{
    char *password = NULL;
    size_t pw_len = 0;
    int err;
    if (o->pw_file && !(password = ex_read_secret(o->pw_file, &pw_len)))
        return EX_USAGE;
    a->s = cc_session_new(a->ctx, &err);
    int rc = EX_OK;
    if (!a->s) {
        char text[EX_SHOW_MAX];
        fprintf(stderr, PROG ": %s: %s\n", cc_strerror(err), ex_show(text, cc_context_errmsg(a->ctx)));
        /* a configuration the library refuses (--require-mutual with no mechanism that proves the
         * client) is the command line's fault */
        rc = err == CC_ERR_CONFIG ? EX_USAGE : ex_exit_code(err);
    } else if ((o->user || password) &&
               ex_config_failed(PROG, a->ctx,
                                cc_session_set_credentials(a->s, o->user ? o->user : "", o->domain, password))) {
        rc = EX_USAGE;
    }
    ex_wipe_free(password, pw_len);
    return rc;
}

/* --send: the file is opened twice, once to send and once to check the echo. */
static int open_send_file(struct app *a, const char *path)
{
    a->send_f = fopen(path, "rb");
    a->check_f = fopen(path, "rb");
    if (!a->send_f || !a->check_f) {
        fprintf(stderr, PROG ": cannot open %s: %s\n", path, strerror(errno));
        return EX_USAGE;
    }
    fseek(a->send_f, 0, SEEK_END);
    a->send_size = ftell(a->send_f);
    rewind(a->send_f);
    return EX_OK;
}

/* Everything up to the first step: context, session, connect, the job queue. */
static int start(struct app *a, const struct options *o)
{
    int rc = make_context(a, o);
    if (rc == EX_OK)
        rc = make_session(a, o);
    if (rc == EX_OK && o->send_file)
        rc = open_send_file(a, o->send_file);
    if (rc != EX_OK)
        return rc;
    cc_session_set_event_callback(a->s, on_event, a);
    a->t0 = a->t_last = ex_now_ms();
    uint16_t port = o->port == EX_NO_PORT ? CC_DEFAULT_PORT : (uint16_t)o->port;
    if (a->check) {
        if ((rc = check_connect(a, o->host, port, o->timeout)) != EX_OK)
            return rc;
    } else {
        EX_CHECK(PROG, a->ctx, cc_session_connect(a->s, o->host, port), EX_USAGE);
    }
    /* one session: a resolve, at most a KDC job alongside */
    if (ex_jobs_init(&a->q, 2, 8) < 0) {
        perror(PROG ": the job queue");
        return EX_PROTOCOL;
    }
    a->q_open = true;
    return EX_OK;
}

/* The session first, so jobs still out are freed rather than handed back. */
static void finish(struct app *a)
{
    explicit_bzero(a->ticket, sizeof a->ticket);
    cc_session_free(a->s);
    if (a->q_open) {
        ex_jobs_drain(&a->q);
        ex_jobs_close(&a->q);
    }
    cc_context_free(a->ctx);
    ex_cert_clear(&a->cert);
    if (a->fd >= 0)
        close(a->fd);
    if (a->send_f)
        fclose(a->send_f);
    if (a->check_f)
        fclose(a->check_f);
}

/* ---- --send progress ----
 * On a terminal (stderr, without --json) a bar redrawn at most 10 times a
 * second: bytes sent of the file, the rate and the time left. With --json
 * {"event":"progress","bytes":N,"total":T,"rate":BYTES_PER_S,"ms":M} at most
 * 4 times a second, and a last one once everything is sent. */

static void human_bytes(char *out, size_t cap, double b)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

static void draw_bar(const struct app *a, double rate, bool final)
{
    char done[32], total[32], speed[32], left[32] = "";
    double frac = a->send_size > 0 ? (double)a->sent / (double)a->send_size : 1;
    int width = 30, fill = (int)(frac * width + 0.5);
    char bar[31];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    human_bytes(done, sizeof done, (double)a->sent);
    human_bytes(total, sizeof total, (double)a->send_size);
    human_bytes(speed, sizeof speed, rate);
    if (!final && rate > 0) {
        long s = (long)((double)(a->send_size - a->sent) / rate + 0.5);
        snprintf(left, sizeof left, ", %ld:%02ld left", s / 60, s % 60);
    }
    /* \r back to the line's start, \033[K clears what a longer line left */
    fprintf(stderr, "\r[%s] %3d%% %s of %s, %s/s%s\033[K%s", bar, (int)(frac * 100), done, total, speed, left,
            final ? "\n" : "");
    fflush(stderr);
}

static void show_progress(struct app *a, bool final)
{
    if (!a->send_f || (!a->json && !a->bar))
        return;
    double now = ex_now_ms();
    if (!final && now - a->progress_at < (a->json ? 250 : 100))
        return;
    a->progress_at = now;
    double secs = (now - a->send_t0) / 1000;
    double rate = secs > 0 ? (double)a->sent / secs : 0;
    if (a->json) {
        printf("{\"event\":\"progress\",\"bytes\":%lld,\"total\":%lld,\"rate\":%.0f,\"ms\":%.3f}\n", a->sent,
               a->send_size, rate, now - a->t0);
        fflush(stdout);
    } else {
        draw_bar(a, rate, final);
    }
}

/* ---- the event loop ---- */

/* Queues as much of the file as the send buffer takes. */
static void feed_file(struct app *a)
{
    static unsigned char buf[65536];
    while (a->send_f && !a->send_done && !a->blocked) {
        size_t n = fread(buf, 1, sizeof buf, a->send_f);
        if (n == 0) {
            a->send_done = true;
            break;
        }
        int r = cc_session_send(a->s, 1, buf, n);
        if (r == CC_ERR_AGAIN) {
            fseek(a->send_f, -(long)n, SEEK_CUR);
            a->blocked = true;
            return;
        }
        if (r < 0) {
            fprintf(stderr, "send failed: %s\n", cc_strerror(r));
            a->send_done = true;
            return;
        }
        a->sent += (long long)n;
        if (r == CC_SEND_HIGH_WATER) {
            a->blocked = true; /* until CC_EVENT_SEND_READY */
            return;
        }
    }
}

static bool echo_complete(const struct app *a)
{
    return a->send_done && a->echoed >= a->sent;
}

/* Once established: sends the file, and closes when the echo is complete or differs (at once
 * without --send). Returns true when the loop should step again rather than poll; *r is then
 * the result of the step taken here, if one was. */
static bool transfer(struct app *a, int *r)
{
    if (a->ping_interval > 0 && ex_now_ms() >= a->next_ping) {
        cc_session_ping(a->s); /* the PONG event prints the round trip */
        a->next_ping = ex_now_ms() + a->ping_interval;
    }
    if (a->send_f && a->send_t0 == 0)
        a->send_t0 = a->progress_at = ex_now_ms();
    feed_file(a);
    show_progress(a, false);
    if (a->mismatch || !a->send_f || echo_complete(a)) {
        a->closing = true;
        show_progress(a, true);
        if (a->mismatch)
            fprintf(stderr, PROG ": the echo differs from the data sent\n");
        else if (a->send_f && !a->json)
            fprintf(stderr, "sent %lld bytes, echo verified\n", a->sent);
        cc_session_close(a->s, 0, a->mismatch ? "echo mismatch" : a->check ? "check" : "done");
        return true;
    }
    *r = cc_session_step(a->s);
    /* events of that step may have finished the transfer or freed buffer space */
    return *r <= 0 || a->mismatch || echo_complete(a) || (!a->blocked && !a->send_done);
}

static cc_session *job_owner(void *user, unsigned long long id)
{
    (void)id; /* one session */
    return ((struct app *)user)->s;
}

/* Waits for what the step asked for (`want`), a finished job or the session's deadline (or
 * max_ms when >= 0), and hands finished jobs back. False when poll fails. */
static bool wait_for(struct app *a, int want, int max_ms)
{
    cc_socket fd = cc_session_fd(a->s);
    struct pollfd p[2] = {{fd != CC_SOCKET_INVALID ? (int)fd : a->fd, ex_poll_events(want), 0},
                          {ex_jobs_fd(&a->q), POLLIN, 0}};
    if (p[0].fd < 0)
        p[0].events = 0;
    int ms = cc_session_timeout_ms(a->s);
    if (max_ms >= 0 && (ms < 0 || ms > max_ms))
        ms = max_ms;
    if (a->ping_interval > 0 && cc_session_state(a->s) == CC_STATE_ESTABLISHED && !a->closing) {
        double due = a->next_ping - ex_now_ms();
        int d = due > 0 ? (int)due + 1 : 0;
        if (ms < 0 || d < ms)
            ms = d;
    }
    if (poll(p, 2, ms) < 0 && errno != EINTR) {
        perror("poll");
        return false;
    }
    ex_jobs_deliver(&a->q, job_owner, a);
    return true;
}

/* --reconnect: drops the connection (the socket closes with the session, as a network
 * failure would leave it) and starts a new session that presents the ticket. */
static int reconnect(struct app *a, const struct options *o)
{
    cc_session_free(a->s);
    a->s = NULL;
    a->reconnect_left--;
    a->reconnected++;
    int rc = make_session(a, o);
    if (rc != EX_OK)
        return rc;
    int r = cc_session_set_reconnect_ticket(a->s, a->ticket, a->ticket_len, 0);
    explicit_bzero(a->ticket, sizeof a->ticket);
    a->ticket_len = 0;
    if (r < 0) {
        fprintf(stderr, PROG ": the reconnect ticket: %s\n", cc_strerror(r));
        return ex_exit_code(r);
    }
    cc_session_set_event_callback(a->s, on_event, a);
    if (a->trace)
        fprintf(stderr, "reconnect %lu of %lu\n", a->reconnected, a->reconnected + a->reconnect_left);
    a->t0 = a->t_last = ex_now_ms();
    a->established_at = 0;
    a->consent_wait = false; /* a resumed session asks nobody: no verdict line of its own */
    EX_CHECK(PROG, a->ctx,
             cc_session_connect(a->s, o->host, o->port == EX_NO_PORT ? CC_DEFAULT_PORT : (uint16_t)o->port), EX_USAGE);
    return EX_OK;
}

/* --reconnect, established: the ticket is in (reconnect now), or wait for it a while. EX_RUN
 * to go on, else the exit code. */
#define TICKET_WAIT_MS 5000
static int await_ticket(struct app *a, const struct options *o)
{
    if (a->ticket_len) {
        int rc = reconnect(a, o);
        return rc == EX_OK ? EX_RUN : rc;
    }
    if (!a->established_at)
        a->established_at = ex_now_ms();
    if (ex_now_ms() - a->established_at > TICKET_WAIT_MS) {
        fprintf(stderr, PROG ": the client gave no reconnect ticket within %d ms (is reconnection off?)\n",
                TICKET_WAIT_MS);
        return EX_PROTOCOL;
    }
    return EX_RUN;
}

/* Runs the session to its end; returns the exit code. */
static int run(struct app *a, const struct options *o)
{
    for (;;) {
        int r = ex_pump(&a->q, a->s, 1, NULL, NULL);
        if (r <= 0) {
            char text[1536], shown[EX_SHOW_MAX];
            if (r < 0 && !a->json && !a->check)
                fprintf(stderr, PROG ": %s\n",
                        ex_show(shown, failure_text(a, r, cc_session_errmsg(a->s), text, sizeof text)));
            return r == 0 && a->mismatch ? EX_PROTOCOL : ex_exit_code(r);
        }
        if (cc_session_state(a->s) == CC_STATE_ESTABLISHED && !a->closing && a->reconnect_left) {
            int rc = await_ticket(a, o);
            if (rc != EX_RUN)
                return rc;
            if (!a->ticket_len && cc_session_state(a->s) == CC_STATE_ESTABLISHED) {
                /* the ticket follows the handshake: look again soon */
                if (!wait_for(a, r, 50))
                    return EX_PROTOCOL;
            }
            continue;
        }
        if (cc_session_state(a->s) == CC_STATE_ESTABLISHED && !a->closing && transfer(a, &r))
            continue;
        if (!wait_for(a, r, -1))
            return EX_PROTOCOL;
    }
}

int main(int argc, char **argv)
{
    struct options o = {0};
    int rc = parse_options(argc, argv, &o);
    if (rc != EX_RUN) {
        free(o.host);
        return rc;
    }
    struct app a = {.json = o.json,
                    .trace = o.trace,
                    .check = o.check,
                    .fd = -1,
                    .bar = !o.json && isatty(2),
                    .reconnect_left = o.reconnect,
                    .ping_interval = (double)o.ping_interval};
    rc = start(&a, &o);
    if (rc == EX_OK)
        rc = run(&a, &o);
    if (a.check)
        check_result(&a, rc);
    finish(&a);
    free(o.host);
    return rc;
}
