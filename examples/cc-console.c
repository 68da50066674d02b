/* cc-console.c -- the technician's side: connects to a client on port 1680
 * through the whole connection process; a diagnostic tool support staff run. */
#define _GNU_SOURCE
#include "common.h"
#include "psk.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define PROG "cc-console"

static const char usage[] = "usage: cc-console HOST[:PORT] [options]\n"
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
                            "  --send FILE            send FILE on channel 1 and check that the echo matches\n"
                            "  --timeout MS           handshake deadline (default 10000)\n"
                            "  --json                 one JSON object per line per event on stdout\n"
                            "  --trace                print each step with its duration on stderr\n"
                            "  --version              print the library's version and exit\n"
                            "exit codes: 0 ok, 2 usage, 3 resolve/connect, 4 TLS/certificate, 5 licence,\n"
                            "            6 authentication, 7 timeout, 8 protocol\n";

/* What the command line asks for. */
struct options {
    const char *ca, *pin, *psk_file, *user, *domain, *pw_file, *service, *send_file;
    const char *mechs[8]; /* in order of preference */
    int n_mechs;
    unsigned long timeout;
    bool json, trace, require_mutual;
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
};

/* ---- output: one line per event, JSON on stdout or text on stderr ---- */

static void print_state(struct app *a, const cc_event *ev)
{
    double now = ex_now_ms();
    if (a->trace)
        fprintf(stderr, "[%9.3f ms] %-15s (+%.3f ms)\n", now - a->t0, cc_state_name(ev->state), now - a->t_last);
    a->t_last = now;
    if (!a->json)
        return;
    printf("{\"event\":\"state\",\"state\":\"%s\",\"ms\":%.3f}\n", cc_state_name(ev->state), now - a->t0);
    if (ev->state == CC_STATE_ESTABLISHED) {
        printf("{\"event\":\"established\",\"mechanism\":");
        ex_json_string(stdout, cc_session_mechanism(a->s));
        printf(",\"tls\":");
        ex_json_string(stdout, cc_session_tls_version(a->s));
        printf(",\"cipher\":");
        ex_json_string(stdout, cc_session_tls_cipher(a->s));
        printf(",\"mutual\":%s,\"ms\":%.3f}\n", cc_session_auth_mutual(a->s) == 1 ? "true" : "false", now - a->t0);
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
    else if (!ev->code)
        fprintf(stderr, "authenticated by %s as %s; %s\n", ex_show(mech, ev->mechanism), ex_show(text, ev->text),
                cc_session_auth_mutual(a->s) == 1 ? "the client proved itself through the mechanism too"
                                                  : "the client proved itself only by its certificate");
}

/* Failures in text mode are reported by the loop, with the session's detail. */
static void print_closed(const struct app *a, const cc_event *ev)
{
    if (a->json)
        ex_json_closed(0, ev, true, NULL);
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
        print_state(a, ev);
        break;
    case CC_EVENT_LICENSE:
        print_license(a, ev);
        break;
    case CC_EVENT_AUTH:
        print_auth(a, ev);
        break;
    case CC_EVENT_DATA:
        if (a->check_f)
            check_echo(a, ev);
        break;
    case CC_EVENT_SEND_READY:
        a->blocked = false;
        break;
    case CC_EVENT_CLOSED:
        print_closed(a, ev);
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
                                         {"json", no_argument, 0, 'j'},
                                         {"trace", no_argument, 0, 'T'},
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
        case 'j':
            o->json = true;
            break;
        case 'T':
            o->trace = true;
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
    if (!ex_split_host_port(argv[optind], &o->host, &o->port) || o->port == 0) {
        fprintf(stderr, PROG ": cannot parse \"%s\" as HOST[:PORT]\n", argv[optind]);
        return EX_USAGE;
    }
    if (o->n_mechs == 0)
        o->mechs[o->n_mechs++] = o->psk_file ? "psk" : "kerberos";
    return EX_RUN;
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

static int make_context(struct app *a, const struct options *o)
{
    cc_context *ctx = a->ctx = ex_context_new(PROG, CC_ROLE_CONSOLE);
    if (!ctx)
        return EX_PROTOCOL;
    if (o->ca)
        EX_CHECK(PROG, ctx, cc_context_set_ca_file(ctx, o->ca), EX_TLS);
    if (o->pin)
        EX_CHECK(PROG, ctx, cc_context_set_pin_sha256(ctx, o->pin), EX_USAGE);
    if (o->timeout)
        EX_CHECK(PROG, ctx, cc_context_set_timeout(ctx, CC_TIMEOUT_HANDSHAKE, (uint32_t)o->timeout), EX_USAGE);
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
    EX_CHECK(PROG, a->ctx,
             cc_session_connect(a->s, o->host, o->port == EX_NO_PORT ? CC_DEFAULT_PORT : (uint16_t)o->port), EX_USAGE);
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
    cc_session_free(a->s);
    if (a->q_open) {
        ex_jobs_drain(&a->q);
        ex_jobs_close(&a->q);
    }
    cc_context_free(a->ctx);
    if (a->send_f)
        fclose(a->send_f);
    if (a->check_f)
        fclose(a->check_f);
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
    feed_file(a);
    if (a->mismatch || !a->send_f || echo_complete(a)) {
        a->closing = true;
        if (a->mismatch)
            fprintf(stderr, PROG ": the echo differs from the data sent\n");
        else if (a->send_f && !a->json)
            fprintf(stderr, "sent %lld bytes, echo verified\n", a->sent);
        cc_session_close(a->s, 0, a->mismatch ? "echo mismatch" : "done");
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

/* Waits for what the step asked for (`want`), a finished job or the session's deadline, and
 * hands finished jobs back. False when poll fails. */
static bool wait_for(struct app *a, int want)
{
    struct pollfd p[2] = {{(int)cc_session_fd(a->s), ex_poll_events(want), 0}, {ex_jobs_fd(&a->q), POLLIN, 0}};
    if (p[0].fd < 0)
        p[0].events = 0;
    if (poll(p, 2, cc_session_timeout_ms(a->s)) < 0 && errno != EINTR) {
        perror("poll");
        return false;
    }
    ex_jobs_deliver(&a->q, job_owner, a);
    return true;
}

/* Runs the session to its end; returns the exit code. */
static int run(struct app *a)
{
    for (;;) {
        int r = ex_pump(&a->q, a->s, 1, NULL, NULL);
        if (r <= 0) {
            char text[EX_SHOW_MAX];
            if (r < 0 && !a->json)
                fprintf(stderr, PROG ": %s: %s\n", cc_strerror(r), ex_show(text, cc_session_errmsg(a->s)));
            return r == 0 && a->mismatch ? EX_PROTOCOL : ex_exit_code(r);
        }
        if (cc_session_state(a->s) == CC_STATE_ESTABLISHED && !a->closing && transfer(a, &r))
            continue;
        if (!wait_for(a, r))
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
    struct app a = {.json = o.json, .trace = o.trace};
    rc = start(&a, &o);
    if (rc == EX_OK)
        rc = run(&a);
    finish(&a);
    free(o.host);
    return rc;
}
