/* cc-client.c -- the managed machine's side: accepts consoles on port 1680
 * and serves many at once on one poll() loop; jobs run on a worker pool. */
#define _GNU_SOURCE
#include "common.h"
#include "psk.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROG      "cc-client"
#define MAX_CONNS 256
/* Jobs (a licence fetch, KDC traffic) block for at most their timeouts; a few
 * workers keep up with consoles arriving, and bound the threads. */
#define DEFAULT_WORKERS 4

static const char usage[] =
    "usage: cc-client --listen HOST:PORT --cert FILE --key FILE [options]\n"
    "  serves Carbon Copy consoles: licence check, authentication, data\n"
    "authentication (at least one):\n"
    "  --auth psk --psk-file FILE     the example pre-shared-key mechanism\n"
    "  --accounts FILE                NT security: smbpasswd-format account store\n"
    "    --dc-realm REALM             ask this realm's KDC whether the account exists\n"
    "    --krb5-conf FILE             krb5.conf locating that KDC\n"
    "    --dc-check MODE              required (default), best-effort or off\n"
    "  --keytab FILE                  Active Directory (Kerberos) with this keytab\n"
    "    --service PRINCIPAL          accept only this service principal\n"
    "    --realm REALM                accept principals of this realm only\n"
    "licence (one of):\n"
    "  --license-url URL              the licence-details page\n"
    "  --ns NAME                      management server: http://NAME/altiris/NS/Agent/GetLicenseDetails.aspx\n"
    "  --license-file FILE            answer licence checks from a saved page (testing)\n"
    "  --license-ca FILE              CA file for an https licence URL\n"
    "  --license-timeout MS           whole licence fetch deadline (default 10000)\n"
    "behaviour:\n"
    "  --echo                         send back the data each console sends\n"
    "  --once                         exit after the first session ends (its exit code)\n"
    "  --timeout MS                   handshake deadline (default 30000)\n"
    "  --workers N                    threads running jobs (licence, KDC), 1 to 64 (default 4)\n"
    "  --json                         one JSON object per line per event on stdout\n"
    "  --version                      print the library's version and exit\n";

/* What the command line asks for. */
struct options {
    const char *listen_spec, *cert, *key;
    const char *psk_file, *accounts, *dc_realm, *krb5_conf, *dc_check, *keytab, *service, *realm;
    const char *license_url, *ns, *license_file, *license_ca;
    unsigned long license_timeout, timeout, workers;
    bool want_psk, echo, json, once;
};

struct conn {
    cc_session *s;
    unsigned long long id;
    int mask; /* the last step's result */
};

struct app {
    bool echo, json, once;
    const char *license_file;
    cc_context *ctx;
    int lfd;
    ex_jobs q;
    bool q_open;
    struct conn conns[MAX_CONNS];
    unsigned long long next_id;
    bool stop; /* --once: the first session ended with exit code rc */
    int rc;
};

/* ---- output: one line per event, JSON on stdout or text on stderr ---- */

static void print_license(const struct app *a, const struct conn *c, const cc_event *ev)
{
    if (a->json)
        ex_json_license(c->id, ev);
    else
        fprintf(stderr, "session %llu: licence %s: %s\n", c->id, ev->granted ? "granted" : "denied",
                ev->granted ? "" : ev->text);
}

static void print_auth(const struct app *a, const struct conn *c, const cc_event *ev)
{
    if (a->json)
        ex_json_auth(c->id, ev, true);
    else
        fprintf(stderr, "session %llu: %s %s: %s\n", c->id, ev->mechanism, ev->code ? "refused" : "authenticated",
                ev->text);
}

static void print_established(const struct app *a, const struct conn *c)
{
    if (!a->json)
        return;
    ex_json_begin("established", c->id);
    printf(",\"identity\":");
    ex_json_string(stdout, cc_session_identity(c->s));
    printf("}\n");
}

static void print_closed(const struct app *a, const struct conn *c, const cc_event *ev)
{
    if (a->json)
        ex_json_closed(c->id, ev);
    else if (ev->code)
        fprintf(stderr, "session %llu: %s: %s\n", c->id, cc_strerror(ev->code), ev->text);
}

/* ---- events and jobs ---- */

/* --echo: sends the data back, with back-pressure: stop reading while the echo cannot be sent
 * as fast (reading resumes on CC_EVENT_SEND_READY). */
static void echo(cc_session *s, const cc_event *ev)
{
    int r = cc_session_send(s, (uint16_t)ev->channel, ev->data, ev->len);
    if (r == CC_SEND_HIGH_WATER)
        cc_session_pause_reading(s, 1);
    else if (r < 0)
        cc_session_close(s, r, "echo buffer overflow");
}

static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    struct app *a = user;
    struct conn *c = cc_session_user_data(s);
    switch (ev->type) {
    case CC_EVENT_DATA:
        if (a->echo)
            echo(s, ev);
        return;
    case CC_EVENT_SEND_READY:
        cc_session_pause_reading(s, 0);
        return;
    case CC_EVENT_LICENSE:
        print_license(a, c, ev);
        break;
    case CC_EVENT_AUTH:
        print_auth(a, c, ev);
        break;
    case CC_EVENT_STATE:
        if (ev->state == CC_STATE_ESTABLISHED)
            print_established(a, c);
        break;
    case CC_EVENT_CLOSED:
        print_closed(a, c, ev);
        break;
    default:
        return;
    }
    fflush(stdout);
}

/* --license-file: the host answers the licence job itself with a saved page. */
static bool answer_license(void *user, cc_job *job)
{
    struct app *a = user;
    if (!a->license_file || cc_job_type(job) != CC_JOB_LICENSE)
        return false;
    FILE *f = fopen(a->license_file, "rb");
    if (!f) {
        char msg[512];
        snprintf(msg, sizeof msg, "cannot open licence file %s: %s", a->license_file, strerror(errno));
        cc_job_fail(job, CC_ERR_LICENSE_UNREACHABLE, msg);
        return true;
    }
    char buf[4096];
    size_t n;
    cc_job_license_set_status(job, 200);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (cc_job_license_feed(job, buf, n) < 0)
            break;
    fclose(f);
    return true;
}

/* ---- options ---- */

/* Options missing or in conflict, and options that would silently do nothing: mistakes
 * worth saying so. */
static int check_options(const struct options *o)
{
    if (!o->listen_spec || !o->cert || !o->key || (!!o->license_url + !!o->ns + !!o->license_file) > 1 ||
        (o->want_psk && !o->psk_file)) {
        fputs(usage, stderr);
        return EX_USAGE;
    }
    const char *orphan = !o->accounts && o->dc_realm    ? "--dc-realm needs --accounts"
                         : !o->accounts && o->krb5_conf ? "--krb5-conf needs --accounts"
                         : !o->accounts && o->dc_check  ? "--dc-check needs --accounts"
                         : !o->keytab && o->service     ? "--service needs --keytab"
                         : !o->keytab && o->realm       ? "--realm needs --keytab"
                         : !o->want_psk && o->psk_file  ? "--psk-file needs --auth psk"
                         : !o->want_psk && !o->accounts && !o->keytab
                             ? "no authentication configured: give --accounts, --keytab or --auth psk"
                             : NULL;
    if (orphan) {
        fprintf(stderr, PROG ": %s\n", orphan);
        return EX_USAGE;
    }
    char *h = NULL;
    unsigned port;
    if (!ex_split_host_port(o->listen_spec, &h, &port)) {
        fprintf(stderr, PROG ": cannot parse --listen \"%s\" as HOST:PORT\n", o->listen_spec);
        return EX_USAGE;
    }
    free(h);
    return EX_RUN;
}

/* Returns EX_RUN when the options are good, else the exit code (--help: EX_OK). */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option opts[] = {{"listen", required_argument, 0, 'l'},
                                         {"cert", required_argument, 0, 'c'},
                                         {"key", required_argument, 0, 'k'},
                                         {"auth", required_argument, 0, 'a'},
                                         {"psk-file", required_argument, 0, 'P'},
                                         {"accounts", required_argument, 0, 'A'},
                                         {"dc-realm", required_argument, 0, 'D'},
                                         {"krb5-conf", required_argument, 0, 'K'},
                                         {"dc-check", required_argument, 0, 'M'},
                                         {"keytab", required_argument, 0, 'y'},
                                         {"service", required_argument, 0, 'S'},
                                         {"realm", required_argument, 0, 'R'},
                                         {"license-url", required_argument, 0, 'u'},
                                         {"ns", required_argument, 0, 'n'},
                                         {"license-file", required_argument, 0, 'f'},
                                         {"license-ca", required_argument, 0, 'C'},
                                         {"license-timeout", required_argument, 0, 'L'},
                                         {"echo", no_argument, 0, 'e'},
                                         {"once", no_argument, 0, 'o'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"workers", required_argument, 0, 'W'},
                                         {"json", no_argument, 0, 'j'},
                                         {"version", no_argument, 0, 'V'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->listen_spec = optarg;
            break;
        case 'c':
            o->cert = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'a':
            if (strcmp(optarg, "psk") == 0) {
                o->want_psk = true;
                break;
            }
            fprintf(stderr, PROG ": --auth takes psk (nt and kerberos are enabled by --accounts and --keytab)\n");
            return EX_USAGE;
        case 'P':
            o->psk_file = optarg;
            break;
        case 'A':
            o->accounts = optarg;
            break;
        case 'D':
            o->dc_realm = optarg;
            break;
        case 'K':
            o->krb5_conf = optarg;
            break;
        case 'M':
            o->dc_check = optarg;
            break;
        case 'y':
            o->keytab = optarg;
            break;
        case 'S':
            o->service = optarg;
            break;
        case 'R':
            o->realm = optarg;
            break;
        case 'u':
            o->license_url = optarg;
            break;
        case 'n':
            o->ns = optarg;
            break;
        case 'f':
            o->license_file = optarg;
            break;
        case 'C':
            o->license_ca = optarg;
            break;
        case 'L':
            if (!ex_ms_option(PROG, "license-timeout", optarg, &o->license_timeout))
                return EX_USAGE;
            break;
        case 't':
            if (!ex_ms_option(PROG, "timeout", optarg, &o->timeout))
                return EX_USAGE;
            break;
        case 'W':
            if (!ex_parse_uint(optarg, EX_MAX_WORKERS, &o->workers) || o->workers == 0) {
                fprintf(stderr, PROG ": --workers takes 1 to %d\n", EX_MAX_WORKERS);
                return EX_USAGE;
            }
            break;
        case 'e':
            o->echo = true;
            break;
        case 'o':
            o->once = true;
            break;
        case 'j':
            o->json = true;
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
    if (optind != argc) {
        fputs(usage, stderr);
        return EX_USAGE;
    }
    return check_options(o);
}

/* ---- the context ---- */

/* An option of a built-in mechanism, when the command line gives it. */
static int auth_option(cc_context *ctx, const char *mech, const char *key, const char *value)
{
    if (value)
        EX_CHECK(PROG, ctx, cc_context_set_auth_option(ctx, mech, key, value), EX_USAGE);
    return EX_OK;
}

/* --keytab: Active Directory (Kerberos). */
static int add_kerberos(cc_context *ctx, const struct options *o)
{
    EX_CHECK(PROG, ctx, cc_context_add_builtin_authenticator(ctx, "kerberos"), EX_AUTH);
    int rc = auth_option(ctx, "kerberos", "keytab", o->keytab);
    if (rc == EX_OK)
        rc = auth_option(ctx, "kerberos", "service", o->service);
    if (rc == EX_OK)
        rc = auth_option(ctx, "kerberos", "realm", o->realm);
    return rc;
}

/* --accounts: NT security with the local account store and the KDC check. */
static int add_nt(cc_context *ctx, const struct options *o)
{
    EX_CHECK(PROG, ctx, cc_context_add_builtin_authenticator(ctx, "nt"), EX_AUTH);
    int rc = auth_option(ctx, "nt", "accounts", o->accounts);
    if (rc == EX_OK)
        rc = auth_option(ctx, "nt", "realm", o->dc_realm);
    if (rc == EX_OK)
        rc = auth_option(ctx, "nt", "krb5-conf", o->krb5_conf);
    if (rc == EX_OK)
        rc = auth_option(ctx, "nt", "dc-check", o->dc_check);
    return rc;
}

static int make_context(struct app *a, const struct options *o)
{
    cc_context *ctx = a->ctx = ex_context_new(PROG, CC_ROLE_CLIENT);
    if (!ctx)
        return EX_PROTOCOL;
    EX_CHECK(PROG, ctx, cc_context_set_certificate(ctx, o->cert, o->key), EX_TLS);
    if (o->timeout)
        EX_CHECK(PROG, ctx, cc_context_set_timeout(ctx, CC_TIMEOUT_HANDSHAKE, (uint32_t)o->timeout), EX_USAGE);
    if (o->license_url)
        EX_CHECK(PROG, ctx, cc_context_set_license_url(ctx, o->license_url), EX_USAGE);
    if (o->ns)
        EX_CHECK(PROG, ctx, cc_context_set_license_server(ctx, o->ns), EX_USAGE);
    if (o->license_ca)
        EX_CHECK(PROG, ctx, cc_context_set_license_ca_file(ctx, o->license_ca), EX_USAGE);
    if (o->license_timeout)
        EX_CHECK(PROG, ctx, cc_context_set_timeout(ctx, CC_TIMEOUT_LICENSE, (uint32_t)o->license_timeout), EX_USAGE);
    int rc = EX_OK;
    if (o->keytab)
        rc = add_kerberos(ctx, o);
    if (rc == EX_OK && o->accounts)
        rc = add_nt(ctx, o);
    if (rc == EX_OK && o->want_psk && psk_register(ctx, o->psk_file) < 0)
        rc = EX_USAGE;
    return rc;
}

/* ---- the listener ---- */

/* A non-blocking socket listening on --listen HOST:PORT (1680 without a port), or -1 once said why. */
static int listen_on(const char *spec)
{
    char *host = NULL;
    unsigned port = 0;
    if (!ex_split_host_port(spec, &host, &port)) {
        fprintf(stderr, PROG ": cannot parse --listen \"%s\" as HOST:PORT\n", spec);
        return -1;
    }
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port == EX_NO_PORT ? CC_DEFAULT_PORT : port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int r = getaddrinfo(host, ps, &hints, &res);
    free(host);
    if (r != 0) {
        fprintf(stderr, PROG ": cannot resolve %s: %s\n", spec, gai_strerror(r));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        fprintf(stderr, PROG ": cannot listen on %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* The address actually bound (port 0 picks a free one), e.g. "127.0.0.1:40123". */
static void bound_address(int fd, char *buf, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char h[NI_MAXHOST] = "?", p[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(buf, n, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, p);
}

static void print_listening(const struct app *a)
{
    char where[128];
    bound_address(a->lfd, where, sizeof where);
    if (a->json) {
        printf("{\"event\":\"listening\",\"address\":");
        ex_json_string(stdout, where);
        printf("}\n");
        fflush(stdout);
    } else {
        fprintf(stderr, PROG ": listening on %s\n", where);
    }
}

/* ---- start and finish ---- */

/* Everything before the loop: the context, the listening socket, the job queue. */
static int start(struct app *a, const struct options *o)
{
    int rc = make_context(a, o);
    if (rc != EX_OK)
        return rc;
    if ((a->lfd = listen_on(o->listen_spec)) < 0)
        return EX_CONNECT;
    print_listening(a);
    if (ex_jobs_init(&a->q, o->workers ? (unsigned)o->workers : DEFAULT_WORKERS, 2 * MAX_CONNS) < 0) {
        perror(PROG ": the job queue");
        return EX_PROTOCOL;
    }
    a->q_open = true;
    return EX_OK;
}

/* The sessions first, so jobs still out are freed rather than handed back. */
static void finish(struct app *a)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        cc_session_free(a->conns[i].s);
        a->conns[i].s = NULL;
    }
    if (a->q_open) {
        ex_jobs_drain(&a->q);
        ex_jobs_close(&a->q);
    }
    if (a->lfd >= 0)
        close(a->lfd);
    cc_context_free(a->ctx);
}

/* ---- the event loop ---- */

/* Waits for the listener, finished jobs and what each session asked for, until the nearest
 * deadline. False when poll fails; *incoming says whether consoles are waiting. */
static bool wait_for_any(struct app *a, bool *incoming)
{
    struct pollfd p[MAX_CONNS + 2];
    int n = 0;
    int32_t wait = -1;
    p[n++] = (struct pollfd){a->lfd, POLLIN, 0};
    p[n++] = (struct pollfd){ex_jobs_fd(&a->q), POLLIN, 0};
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *cn = &a->conns[i];
        if (!cn->s)
            continue;
        int32_t t = cc_session_timeout_ms(cn->s);
        if (t >= 0 && (wait < 0 || t < wait))
            wait = t;
        short ev = ex_poll_events(cn->mask);
        int fd = cc_session_fd(cn->s);
        if (fd >= 0 && ev)
            p[n++] = (struct pollfd){fd, ev, 0};
    }
    if (poll(p, (nfds_t)n, wait) < 0 && errno != EINTR) {
        perror("poll");
        return false;
    }
    *incoming = p[0].revents & POLLIN;
    return true;
}

/* A session for each console waiting on the listener, while a slot is free. */
static void accept_consoles(struct app *a)
{
    int fd, err = CC_OK;
    while ((fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        int slot = -1;
        for (int i = 0; i < MAX_CONNS && slot < 0; i++)
            if (!a->conns[i].s)
                slot = i;
        cc_session *s = slot >= 0 ? cc_session_new(a->ctx, &err) : NULL;
        if (!s || (err = cc_session_accept_fd(s, fd)) < 0) {
            fprintf(stderr, PROG ": refusing a console: %s\n", slot < 0 ? "too many sessions" : cc_strerror(err));
            if (s)
                cc_session_free(s);
            else
                close(fd);
            continue;
        }
        struct conn *cn = &a->conns[slot];
        cn->s = s;
        cn->id = ++a->next_id;
        cn->mask = CC_WANT_READ | CC_WANT_WRITE;
        cc_session_set_user_data(s, cn);
        cc_session_set_event_callback(s, on_event, a);
    }
}

/* A finished job goes back to its session, if that still exists. */
static cc_session *job_owner(void *user, unsigned long long id)
{
    struct app *a = user;
    for (int i = 0; i < MAX_CONNS; i++)
        if (a->conns[i].s && a->conns[i].id == id)
            return a->conns[i].s;
    return NULL;
}

/* Steps every session: cheap when nothing is ready, and it enforces deadlines. A session that
 * ended is freed; with --once the program then ends with its exit code. */
static void step_sessions(struct app *a)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *cn = &a->conns[i];
        if (!cn->s)
            continue;
        int r = ex_pump(&a->q, cn->s, cn->id, answer_license, a);
        cn->mask = r;
        if (r <= 0) {
            cc_session_free(cn->s);
            cn->s = NULL;
            ex_jobs_cancel(&a->q, cn->id);
            if (a->once) {
                a->rc = ex_exit_code(r);
                a->stop = true;
            }
        }
    }
}

/* Serves consoles until --once's session ends (or poll fails); returns the exit code. */
static int run(struct app *a)
{
    while (!a->stop) {
        bool incoming;
        if (!wait_for_any(a, &incoming))
            return EX_PROTOCOL;
        if (incoming)
            accept_consoles(a);
        ex_jobs_deliver(&a->q, job_owner, a);
        step_sessions(a);
    }
    return a->rc;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    int rc = parse_options(argc, argv, &o);
    if (rc != EX_RUN)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    static struct app a;
    a.echo = o.echo;
    a.json = o.json;
    a.once = o.once;
    a.license_file = o.license_file;
    a.lfd = -1;
    rc = start(&a, &o);
    if (rc == EX_OK)
        rc = run(&a);
    finish(&a);
    return rc;
}
