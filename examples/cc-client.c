/* cc-client.c -- the managed machine's side: accepts consoles on port 1680
 * and serves many at once on one epoll loop, the reference host of the
 * socket and timer API: each session's socket is registered as its socket
 * callback says, its deadline sits in a timer heap as its timer callback
 * says, and only the sessions that are ready are stepped. Jobs run on a
 * worker pool and find their session again in O(1). */
#define _GNU_SOURCE
#include "common.h"
#include "diag.h"
#include "psk.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "cc-client"
/* Sessions at once (--max-sessions) and from one address (--max-per-source):
 * a console is a technician, a few at a time; many more are an attack. */
#define DEFAULT_MAX_SESSIONS   1024
#define MAX_MAX_SESSIONS       65536
#define DEFAULT_MAX_PER_SOURCE 8
/* Descriptors beyond the sessions': listener, job pipe, stdio, and what the
 * workers' licence fetches and KDC exchanges open. */
#define FD_RESERVE 64
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
    "  --auth-disclosure              tell a refused console why (unknown account, disabled, ...);\n"
    "                                 default: one \"user name or password is incorrect\" for all\n"
    "licence (one of):\n"
    "  --license-url URL              the licence-details page\n"
    "  --ns NAME                      management server: http://NAME/altiris/NS/Agent/GetLicenseDetails.aspx\n"
    "  --license-file FILE            answer licence checks from a saved page (testing)\n"
    "  --license-ca FILE              CA file for an https licence URL\n"
    "  --license-timeout MS           whole licence fetch deadline (default 4000)\n"
    "behaviour:\n"
    "  --echo                         send back the data each console sends\n"
    "  --once                         exit after the first session ends (its exit code)\n"
    "  --timeout MS                   handshake deadline (default 10000)\n"
    "  --consent-command CMD          ask before a console takes over: sh -c CMD with\n"
    "                                 CC_CONSENT_IDENTITY, _MECHANISM, _ADDRESS set; exit 0\n"
    "                                 accepts, 3 says nobody is logged on, others refuse\n"
    "  --consent-timeout MS           how long the command may take (default 60000)\n"
    "  --consent-unattended-ok        nobody logged on (exit 3) lets the console in\n"
    "  --workers N                    threads running jobs (licence, KDC, consent), 1 to 64 (default 4)\n"
    "  --max-sessions N               sessions at once (default 1024): when full, the oldest\n"
    "                                 unauthenticated one makes way for a new console\n"
    "  --max-per-source N             sessions from one IP address (default 8, 0: no limit)\n"
    "  --json                         one JSON object per line per event on stdout\n"
    "  --version                      print the library's version and exit\n";

/* What the command line asks for. */
struct options {
    const char *listen_spec, *cert, *key;
    const char *psk_file, *accounts, *dc_realm, *krb5_conf, *dc_check, *keytab, *service, *realm;
    const char *license_url, *ns, *license_file, *license_ca;
    const char *consent_command;
    unsigned long license_timeout, timeout, workers, max_sessions, max_per_source, consent_timeout;
    bool want_psk, auth_disclosure, echo, json, once, max_per_source_set, consent_unattended_ok;
};

/* A console's IP address, for --max-per-source: IPv4 also when it came as
 * IPv4-mapped IPv6. */
struct source {
    int family;
    unsigned char addr[16];
    char text[INET6_ADDRSTRLEN];
    char peer[INET6_ADDRSTRLEN + 8]; /* "ADDR:PORT", "[V6]:PORT" */
};

struct conn {
    cc_session *s;
    unsigned long long id; /* in order of arrival: the lowest is the oldest */
    bool established;      /* authenticated: never evicted */
    bool registered;       /* its socket is in the epoll set */
    size_t slot;           /* its index in app.conns */
    size_t heap_i;         /* 1 + its index in app.heap, 0 when it has no deadline */
    uint64_t due;          /* its deadline (ms, CLOCK_MONOTONIC) while in the heap */
    struct source src;
};

struct app {
    bool echo, json, once;
    const char *license_file;
    const char *consent_command; /* --consent-command: run on a worker for each consent job */
    cc_context *ctx;
    int lfd;
    ex_jobs q;
    bool q_open;
    struct conn *conns; /* max_conns slots; s == NULL when free */
    size_t max_conns;
    unsigned long max_per_source; /* 0: no limit */
    size_t *free_slots;           /* a stack of the free slots' indices */
    size_t n_free;
    struct conn **heap; /* sessions with a deadline, the nearest first (a binary min-heap) */
    size_t heap_n;
    int ep; /* epoll: the listener, the job pipe, each session's socket */
    unsigned long long next_id;
    bool stop; /* --once: the first session ended with exit code rc */
    int rc;
};

/* ---- output: one line per event, JSON on stdout or text on stderr ---- */

static void print_license(const struct app *a, const struct conn *c, const cc_event *ev)
{
    char text[EX_SHOW_MAX];
    if (a->json)
        ex_json_license(c->id, ev, true, c->src.peer);
    else
        fprintf(stderr, "session %llu: licence %s: %s\n", c->id, ev->granted ? "granted" : "denied",
                ev->granted ? "" : ex_show(text, ev->text));
}

static void print_auth(const struct app *a, const struct conn *c, const cc_event *ev)
{
    char mech[EX_SHOW_MAX], text[EX_SHOW_MAX];
    if (a->json)
        ex_json_auth(c->id, ev, true, c->src.peer);
    else if (!ev->code && ev->resumed)
        fprintf(stderr, "session %llu: %s resumed session %s: %s\n", c->id, ex_show(mech, ev->mechanism),
                ev->session_id ? ev->session_id : "", ex_show(text, ev->text));
    else
        fprintf(stderr, "session %llu: %s %s: %s\n", c->id, ex_show(mech, ev->mechanism),
                ev->code ? "refused" : "authenticated", ex_show(text, ev->text));
}

static void print_established(const struct app *a, const struct conn *c)
{
    if (!a->json)
        return;
    ex_json_begin("established", c->id);
    printf(",\"identity\":");
    ex_json_string(stdout, cc_session_identity(c->s));
    /* a resumed session (a reconnect ticket) carries the id of the session it resumes */
    printf(",\"resumed\":%s,\"session_id\":", cc_session_resumed(c->s) == 1 ? "true" : "false");
    ex_json_string(stdout, cc_session_id(c->s));
    ex_json_end(c->src.peer);
}

static void print_closed(const struct app *a, const struct conn *c, const cc_event *ev)
{
    char text[EX_SHOW_MAX];
    if (a->json)
        ex_json_closed(c->id, ev, true, c->src.peer);
    else if (ev->code)
        fprintf(stderr, "session %llu: %s: %s\n", c->id, cc_strerror(ev->code), ex_show(text, ev->text));
}

/* ---- the socket and timer callbacks: the epoll set and the timer heap ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void heap_put(struct app *a, size_t i, struct conn *c)
{
    a->heap[i] = c;
    c->heap_i = i + 1;
}

static void heap_up(struct app *a, size_t i)
{
    struct conn *c = a->heap[i];
    while (i > 0 && a->heap[(i - 1) / 2]->due > c->due) {
        heap_put(a, i, a->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_put(a, i, c);
}

static void heap_down(struct app *a, size_t i)
{
    struct conn *c = a->heap[i];
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= a->heap_n)
            break;
        if (k + 1 < a->heap_n && a->heap[k + 1]->due < a->heap[k]->due)
            k++;
        if (a->heap[k]->due >= c->due)
            break;
        heap_put(a, i, a->heap[k]);
        i = k;
    }
    heap_put(a, i, c);
}

static void heap_remove(struct app *a, struct conn *c)
{
    if (!c->heap_i)
        return;
    size_t i = c->heap_i - 1;
    c->heap_i = 0;
    struct conn *last = a->heap[--a->heap_n];
    if (i == a->heap_n)
        return;
    heap_put(a, i, last);
    heap_up(a, i);
    heap_down(a, last->heap_i - 1);
}

/* The session's next deadline moved: re-key it, or take it out (ms < 0). */
static void on_timer(void *user, cc_session *s, int32_t ms)
{
    struct app *a = user;
    struct conn *c = cc_session_user_data(s);
    if (ms < 0) {
        heap_remove(a, c);
        return;
    }
    c->due = now_ms() + (uint64_t)ms;
    if (!c->heap_i) {
        c->heap_i = ++a->heap_n;
        a->heap[a->heap_n - 1] = c;
    }
    heap_up(a, c->heap_i - 1);
    heap_down(a, c->heap_i - 1);
}

/* What the session wants of its socket changed: add, modify or delete it in the epoll set.
 * The library reports a removal before it closes a socket, so a reused number is always a
 * fresh add. A client session has exactly one socket. */
static void on_socket(void *user, cc_session *s, cc_socket sock, int what)
{
    struct app *a = user;
    struct conn *c = cc_session_user_data(s);
    int fd = (int)sock, r;
    if (what == CC_POLL_REMOVE) {
        r = c->registered ? epoll_ctl(a->ep, EPOLL_CTL_DEL, fd, NULL) : 0;
        c->registered = false;
    } else {
        struct epoll_event ev = {0};
        ev.events = (what & CC_POLL_IN ? EPOLLIN : 0) | (what & CC_POLL_OUT ? EPOLLOUT : 0);
        ev.data.ptr = c;
        r = epoll_ctl(a->ep, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
        c->registered = r == 0;
    }
    if (r != 0)
        fprintf(stderr, PROG ": session %llu: epoll_ctl on descriptor %d: %s\n", c->id, fd, strerror(errno));
}

/* A job carries its session's slot and id: its owner is found in O(1), and a job whose
 * session is gone (the slot empty or another session's) is freed. */
#define SLOT_BITS 17 /* MAX_MAX_SESSIONS slots */
static unsigned long long job_tag(const struct conn *c)
{
    return (c->id << SLOT_BITS) | c->slot;
}

static void print_consent(const struct app *a, const struct conn *c, const cc_event *ev)
{
    char who[EX_SHOW_MAX], why[EX_SHOW_MAX];
    bool has = ev->struct_size >= offsetof(cc_event, unattended) + sizeof ev->unattended;
    const char *detail = has && ev->detail ? ev->detail : "";
    if (a->json) {
        ex_json_begin("consent", c->id);
        printf(",\"granted\":%s,\"identity\":", ev->granted ? "true" : "false");
        ex_json_string(stdout, ev->text);
        printf(",\"mechanism\":");
        ex_json_string(stdout, ev->mechanism);
        printf(",\"unattended\":%s,\"detail\":", has && ev->unattended ? "true" : "false");
        ex_json_string(stdout, detail);
        if (ev->code)
            printf(",\"code\":\"%s\",\"errno\":%d", cc_err_name(ev->code), ev->code);
        ex_json_end(c->src.peer);
    } else {
        fprintf(stderr, "session %llu: consent %s for %s: %s\n", c->id, ev->granted ? "given" : "refused",
                ex_show(who, ev->text), ex_show(why, detail));
    }
}

/* ---- events and jobs ---- */

/* --echo: sends the data back, with back-pressure per channel: a channel whose echo cannot be
 * sent as fast is paused (its credit stops; at most one window, 256 KiB, still arrives, which
 * the 1 MiB echo queue holds), while pings and the other channels are still read; it resumes
 * on CC_EVENT_SEND_READY for that channel. */
static void echo(cc_session *s, const cc_event *ev)
{
    int r = cc_session_send(s, (uint16_t)ev->channel, ev->data, ev->len);
    if (r == CC_SEND_HIGH_WATER)
        cc_session_pause_channel(s, (uint16_t)ev->channel, 1);
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
        cc_session_pause_channel(s, (uint16_t)ev->channel, 0);
        return;
    case CC_EVENT_LICENSE:
        print_license(a, c, ev);
        break;
    case CC_EVENT_AUTH:
        print_auth(a, c, ev);
        break;
    case CC_EVENT_STATE:
        if (ev->state == CC_STATE_ESTABLISHED) {
            c->established = true;
            print_established(a, c);
        }
        break;
    case CC_EVENT_CLOSED:
        print_closed(a, c, ev);
        break;
    case CC_EVENT_CONSENT:
        print_consent(a, c, ev);
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

/* --consent-command, on a worker thread: runs sh -c CMD in a process group of its own with who
 * asks in its environment (never on its command line), polls it without blocking the event
 * loop, kills the group at the consent deadline, and answers from the exit status. */
#define CONSENT_NOBODY_EXIT 3

static char **consent_env(cc_job *job)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CC_CONSENT_", 11) != 0)
            env[k++] = environ[i];
    const char *names[3] = {"CC_CONSENT_IDENTITY", "CC_CONSENT_MECHANISM", "CC_CONSENT_ADDRESS"};
    const char *values[3] = {cc_job_consent_identity(job), cc_job_consent_mechanism(job), cc_job_consent_address(job)};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(names[i]) + strlen(values[i]) + 2;
        if (!(env[k] = malloc(len)))
            break;
        snprintf(env[k++], len, "%s=%s", names[i], values[i]);
    }
    return env;
}

static void free_consent_env(char **env)
{
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], "CC_CONSENT_", 11) == 0)
            free(env[i]);
    free(env);
}

static void run_consent(void *user, cc_job *job)
{
    const struct app *a = user;
    if (cc_job_type(job) != CC_JOB_CONSENT || !a->consent_command) {
        cc_job_run(job);
        return;
    }
    char **env = consent_env(job);
    char *argv[] = {"sh", "-c", (char *)a->consent_command, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1); /* our stdout carries --json lines */
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid = -1;
    int r = env ? posix_spawn(&pid, "/bin/sh", &fa, &at, argv, env) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (env)
        free_consent_env(env);
    char why[256];
    if (r != 0) {
        snprintf(why, sizeof why, "cannot run the consent command: %s", strerror(r));
        cc_job_fail(job, CC_ERR_CONSENT_REFUSED, why);
        return;
    }
    uint32_t ms = cc_job_consent_timeout_ms(job);
    double deadline = ex_now_ms() + ms;
    int status = 0;
    bool killed = false;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        if (ex_now_ms() >= deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            killed = true;
            break;
        }
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    if (killed) {
        snprintf(why, sizeof why, "the consent command did not answer within %u ms and was killed", ms);
        cc_job_consent_answer(job, CC_CONSENT_REFUSE, why);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        cc_job_consent_answer(job, CC_CONSENT_ACCEPT, "the consent command accepted");
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == CONSENT_NOBODY_EXIT) {
        cc_job_consent_answer(job, CC_CONSENT_NOBODY, "the consent command says nobody is logged on");
    } else {
        if (WIFEXITED(status))
            snprintf(why, sizeof why, "the consent command refused (exit status %d)", WEXITSTATUS(status));
        else
            snprintf(why, sizeof why, "the consent command refused (signal %d)", WTERMSIG(status));
        cc_job_consent_answer(job, CC_CONSENT_REFUSE, why);
    }
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
    const char *orphan = !o->accounts && o->dc_realm                 ? "--dc-realm needs --accounts"
                         : !o->accounts && o->krb5_conf              ? "--krb5-conf needs --accounts"
                         : !o->accounts && o->dc_check               ? "--dc-check needs --accounts"
                         : !o->keytab && o->service                  ? "--service needs --keytab"
                         : !o->keytab && o->realm                    ? "--realm needs --keytab"
                         : !o->want_psk && o->psk_file               ? "--psk-file needs --auth psk"
                         : !o->consent_command && o->consent_timeout ? "--consent-timeout needs --consent-command"
                         : !o->consent_command && o->consent_unattended_ok
                             ? "--consent-unattended-ok needs --consent-command"
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
                                         {"auth-disclosure", no_argument, 0, 'X'},
                                         {"license-url", required_argument, 0, 'u'},
                                         {"ns", required_argument, 0, 'n'},
                                         {"license-file", required_argument, 0, 'f'},
                                         {"license-ca", required_argument, 0, 'C'},
                                         {"license-timeout", required_argument, 0, 'L'},
                                         {"consent-command", required_argument, 0, 'Q'},
                                         {"consent-timeout", required_argument, 0, 'T'},
                                         {"consent-unattended-ok", no_argument, 0, 'U'},
                                         {"echo", no_argument, 0, 'e'},
                                         {"once", no_argument, 0, 'o'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"workers", required_argument, 0, 'W'},
                                         {"max-sessions", required_argument, 0, 'm'},
                                         {"max-per-source", required_argument, 0, 's'},
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
        case 'X':
            o->auth_disclosure = true;
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
        case 'Q':
            o->consent_command = optarg;
            break;
        case 'T':
            if (!ex_ms_option(PROG, "consent-timeout", optarg, &o->consent_timeout))
                return EX_USAGE;
            break;
        case 'U':
            o->consent_unattended_ok = true;
            break;
        case 'W':
            if (!ex_parse_uint(optarg, EX_MAX_WORKERS, &o->workers) || o->workers == 0) {
                fprintf(stderr, PROG ": --workers takes 1 to %d\n", EX_MAX_WORKERS);
                return EX_USAGE;
            }
            break;
        case 'm':
            if (!ex_parse_uint(optarg, MAX_MAX_SESSIONS, &o->max_sessions) || o->max_sessions == 0) {
                fprintf(stderr, PROG ": --max-sessions takes 1 to %d\n", MAX_MAX_SESSIONS);
                return EX_USAGE;
            }
            break;
        case 's':
            if (!ex_parse_uint(optarg, MAX_MAX_SESSIONS, &o->max_per_source)) {
                fprintf(stderr, PROG ": --max-per-source takes 0 (no limit) to %d\n", MAX_MAX_SESSIONS);
                return EX_USAGE;
            }
            o->max_per_source_set = true;
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
    /* a certificate or key file that is missing, unreadable or not PEM is the command line's fault */
    if (!ex_file_readable(PROG, "cert", "certificate file", o->cert) || !ex_file_has_pem_cert(PROG, "cert", o->cert) ||
        !ex_file_readable(PROG, "key", "key file", o->key))
        return EX_USAGE;
    cc_context *ctx = a->ctx = ex_context_new(PROG, CC_ROLE_CLIENT);
    if (!ctx)
        return EX_PROTOCOL;
    EX_CHECK(PROG, ctx, cc_context_set_certificate(ctx, o->cert, o->key), EX_TLS);
    /* every session reports its socket and its deadline (the epoll set and the timer heap) */
    EX_CHECK(PROG, ctx, cc_context_set_socket_callback(ctx, on_socket, a), EX_PROTOCOL);
    EX_CHECK(PROG, ctx, cc_context_set_timer_callback(ctx, on_timer, a), EX_PROTOCOL);
    if (o->echo) /* half of it (the high-water mark) plus the window a paused channel may still get */
        EX_CHECK(PROG, ctx, cc_context_set_limit(ctx, CC_LIMIT_SEND_BUFFER, 1u << 20), EX_PROTOCOL);
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
    /* By default a refused console learns only "user name or password is incorrect", so that a
     * stranger cannot tell which accounts exist; the cause is in this program's own output. */
    if (o->auth_disclosure)
        EX_CHECK(PROG, ctx, cc_context_set_auth_disclosure(ctx, 1), EX_USAGE);
    if (o->consent_command)
        EX_CHECK(
            PROG, ctx,
            cc_context_set_consent(ctx, o->consent_unattended_ok ? CC_CONSENT_MODE_ASK_OR_OK : CC_CONSENT_MODE_ASK),
            EX_USAGE);
    if (o->consent_timeout)
        EX_CHECK(PROG, ctx, cc_context_set_timeout(ctx, CC_TIMEOUT_CONSENT, (uint32_t)o->consent_timeout), EX_USAGE);
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
    int backlog = SOMAXCONN > 64 ? SOMAXCONN : 64;
    free(host);
    if (r != 0) {
        fprintf(stderr, PROG ": cannot resolve %s: %s\n", spec, gai_strerror(r));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
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

/* Every session holds a descriptor: raises the soft limit on open files to the hard limit,
 * and serves fewer sessions than asked, saying so, when even that is too low. */
static void fit_open_files(struct app *a)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur != rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur != want)
            fprintf(stderr, PROG ": cannot raise the limit on open files to its hard limit (%llu): %s\n",
                    (unsigned long long)want, strerror(errno));
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= a->max_conns + FD_RESERVE)
        return;
    size_t fit = rl.rlim_cur > FD_RESERVE + 1 ? (size_t)rl.rlim_cur - FD_RESERVE : 1;
    fprintf(stderr, PROG ": only %llu open files allowed (RLIMIT_NOFILE): serving at most %zu sessions, not %zu\n",
            (unsigned long long)rl.rlim_cur, fit, a->max_conns);
    a->max_conns = fit;
}

/* A client whose certificate has expired is refused by every console, so an operator should
 * hear of it when starting the client, not from the technicians: a warning when it has expired
 * or expires within EXPIRY_WARN_DAYS. Only the first certificate in the file (ours; the rest
 * is its chain). Unreadable here is not an error: the library loaded it already. */
#define EXPIRY_WARN_DAYS 30
static void warn_expiry(const struct app *a, const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    const ASN1_TIME *na = x ? X509_get0_notAfter(x) : NULL;
    int days, secs;
    struct tm tm;
    if (!na || !ASN1_TIME_diff(&days, &secs, NULL, na) || !ASN1_TIME_to_tm(na, &tm)) {
        X509_free(x);
        return;
    }
    X509_free(x);
    char date[40], msg[PATH_MAX + 120];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (days < 0 || secs < 0 || (days == 0 && secs == 0))
        snprintf(msg, sizeof msg, "the certificate in %s expired on %s", path, date);
    else if (days < EXPIRY_WARN_DAYS)
        snprintf(msg, sizeof msg, "the certificate in %s expires on %s, in %d day%s", path, date, days,
                 days == 1 ? "" : "s");
    else
        return;
    char text[EX_SHOW_MAX];
    fprintf(stderr, PROG ": warning: %s\n", ex_show(text, msg));
    if (a->json) {
        printf("{\"event\":\"warning\",\"message\":");
        ex_json_string(stdout, msg);
        printf("}\n");
        fflush(stdout);
    }
}

/* Everything before the loop: the session table, the context, the listening socket, the job
 * queue. */
static int start(struct app *a, const struct options *o)
{
    a->max_conns = o->max_sessions ? o->max_sessions : DEFAULT_MAX_SESSIONS;
    fit_open_files(a);
    a->conns = calloc(a->max_conns, sizeof *a->conns);
    a->free_slots = calloc(a->max_conns, sizeof *a->free_slots);
    a->heap = calloc(a->max_conns, sizeof *a->heap);
    if (!a->conns || !a->free_slots || !a->heap) {
        fprintf(stderr, PROG ": no memory for %zu sessions\n", a->max_conns);
        return EX_PROTOCOL;
    }
    for (size_t i = 0; i < a->max_conns; i++) {
        a->conns[i].slot = i;
        a->free_slots[a->n_free++] = a->max_conns - 1 - i; /* slot 0 first */
    }
    if ((a->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        perror(PROG ": epoll_create1");
        return EX_PROTOCOL;
    }
    int rc = make_context(a, o);
    if (rc != EX_OK)
        return rc;
    warn_expiry(a, o->cert);
    if ((a->lfd = listen_on(o->listen_spec)) < 0)
        return EX_CONNECT;
    print_listening(a);
    if (ex_jobs_init(&a->q, o->workers ? (unsigned)o->workers : DEFAULT_WORKERS, 2 * a->max_conns) < 0) {
        perror(PROG ": the job queue");
        return EX_PROTOCOL;
    }
    a->q_open = true;
    struct epoll_event l = {.events = EPOLLIN, .data.ptr = &a->lfd}, q = {.events = EPOLLIN, .data.ptr = &a->q};
    if (epoll_ctl(a->ep, EPOLL_CTL_ADD, a->lfd, &l) < 0 || epoll_ctl(a->ep, EPOLL_CTL_ADD, ex_jobs_fd(&a->q), &q) < 0) {
        perror(PROG ": epoll_ctl");
        return EX_PROTOCOL;
    }
    a->consent_command = o->consent_command;
    a->q.run = run_consent;
    a->q.run_user = a;
    return EX_OK;
}

/* The sessions first, so jobs still out are freed rather than handed back. */
static void finish(struct app *a)
{
    for (size_t i = 0; a->conns && i < a->max_conns; i++) {
        cc_session_free(a->conns[i].s);
        a->conns[i].s = NULL;
    }
    if (a->q_open) {
        ex_jobs_drain(&a->q);
        ex_jobs_close(&a->q);
    }
    if (a->lfd >= 0)
        close(a->lfd);
    if (a->ep >= 0)
        close(a->ep);
    cc_context_free(a->ctx);
    free(a->conns);
    free(a->free_slots);
    free(a->heap);
}

/* ---- the event loop ---- */

/* ---- admission: session slots and sources ---- */

static struct source source_of(const struct sockaddr_storage *ss)
{
    struct source src = {.family = ss->ss_family};
    if (ss->ss_family == AF_INET) {
        memcpy(src.addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            src.family = AF_INET;
            memcpy(src.addr, a6->s6_addr + 12, 4);
        } else {
            memcpy(src.addr, a6->s6_addr, 16);
        }
    }
    if (!inet_ntop(src.family, src.addr, src.text, sizeof src.text))
        strcpy(src.text, "?");
    unsigned port = ss->ss_family == AF_INET    ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                    : ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
                                                : 0;
    snprintf(src.peer, sizeof src.peer, src.family == AF_INET6 ? "[%s]:%u" : "%s:%u", src.text, port);
    return src;
}

static bool same_source(const struct source *x, const struct source *y)
{
    return x->family == y->family && memcmp(x->addr, y->addr, x->family == AF_INET ? 4 : 16) == 0;
}

/* The session `victim` gives way to a console from `newcomer`, because of `limit`. */
static void print_evicted(const struct app *a, const struct conn *victim, const struct source *newcomer,
                          const char *limit)
{
    const char *state = cc_state_name(cc_session_state(victim->s));
    if (a->json) {
        ex_json_begin("evicted", victim->id);
        printf(",\"address\":");
        ex_json_string(stdout, victim->src.text);
        printf(",\"state\":");
        ex_json_string(stdout, state);
        printf(",\"limit\":\"%s\",\"for\":", limit);
        ex_json_string(stdout, newcomer->text);
        ex_json_end(NULL); /* it has its "address"; scripts match the line whole */
        fflush(stdout);
    } else {
        fprintf(stderr,
                "session %llu: evicted (from %s, still in %s): --%s reached, a console from %s takes its place\n",
                victim->id, victim->src.text, state, limit, newcomer->text);
    }
}

/* A console from `src` is turned away: `why`, and the library's error `code` if one. */
static void print_refused(const struct app *a, const struct source *src, int code, const char *why)
{
    if (a->json) {
        printf("{\"event\":\"refused\",\"address\":");
        ex_json_string(stdout, src->text);
        if (code)
            printf(",\"code\":\"%s\"", cc_err_name(code));
        printf(",\"message\":");
        ex_json_string(stdout, why);
        if (code)
            printf(",\"errno\":%d", code);
        ex_json_end(NULL); /* no session yet: its "address" says who */
        fflush(stdout);
    } else {
        char text[EX_SHOW_MAX];
        fprintf(stderr, PROG ": refusing a console from %s: %s\n", src->text, ex_show(text, why));
    }
}

/* Frees the session (its callbacks take its socket out of the epoll set and its deadline out of
 * the heap) and its jobs still waiting; the slot is free again. */
static void release(struct app *a, struct conn *c)
{
    ex_jobs_cancel(&a->q, job_tag(c));
    cc_session_free(c->s);
    c->s = NULL;
    heap_remove(a, c);
    a->free_slots[a->n_free++] = c->slot;
}

static void evict(struct app *a, struct conn *victim, const struct source *newcomer, const char *limit)
{
    print_evicted(a, victim, newcomer, limit);
    release(a, victim);
}

/* The oldest session not yet authenticated, among those from `src` (all when NULL); *n counts
 * the sessions looked at. */
static struct conn *oldest_unauthenticated(struct app *a, const struct source *src, size_t *n)
{
    struct conn *oldest = NULL;
    *n = 0;
    for (size_t i = 0; i < a->max_conns; i++) {
        struct conn *c = &a->conns[i];
        if (!c->s || (src && !same_source(&c->src, src)))
            continue;
        ++*n;
        if (!c->established && (!oldest || c->id < oldest->id))
            oldest = c;
    }
    return oldest;
}

/* A free slot for a console from `src`, making room as the limits say: a source at
 * --max-per-source loses its own oldest unauthenticated session, a full table its oldest
 * unauthenticated one; authenticated sessions are never evicted, so with only those the new
 * console is refused (NULL). */
static struct conn *make_room(struct app *a, const struct source *src)
{
    char why[160];
    size_t n;
    struct conn *victim;
    if (a->max_per_source) {
        victim = oldest_unauthenticated(a, src, &n);
        if (n >= a->max_per_source && !victim) {
            snprintf(why, sizeof why, "its %zu sessions are all authenticated (--max-per-source %lu)", n,
                     a->max_per_source);
            print_refused(a, src, 0, why);
            return NULL;
        }
        if (n >= a->max_per_source)
            evict(a, victim, src, "max-per-source");
    }
    if (!a->n_free) {
        victim = oldest_unauthenticated(a, NULL, &n);
        if (!victim) {
            snprintf(why, sizeof why, "all %zu sessions are authenticated (--max-sessions %zu)", n, a->max_conns);
            print_refused(a, src, 0, why);
            return NULL;
        }
        evict(a, victim, src, "max-sessions");
    }
    return &a->conns[a->free_slots[--a->n_free]];
}

/* A session for each console waiting on the listener, as the limits allow. */
static void accept_consoles(struct app *a)
{
    int fd, err = CC_OK;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    while ((fd = accept4(a->lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        struct source src = source_of(&ss);
        len = sizeof ss;
        struct conn *cn = make_room(a, &src);
        if (!cn) {
            close(fd);
            continue;
        }
        cc_session *s = cc_session_new(a->ctx, &err);
        *cn = (struct conn){.s = s, .id = ++a->next_id, .slot = cn->slot, .src = src};
        if (s) { /* before the accept: its callbacks report the socket and the deadline */
            cc_session_set_user_data(s, cn);
            cc_session_set_event_callback(s, on_event, a);
        }
        if (!s || (err = cc_session_accept_fd(s, fd)) < 0) {
            print_refused(a, &src, err, cc_strerror(err));
            if (s)
                release(a, cn); /* the session owns fd now */
            else {
                close(fd);
                a->free_slots[a->n_free++] = cn->slot;
            }
            continue;
        }
    }
}

/* A finished job goes back to its session, if that still exists. */
static cc_session *job_owner(void *user, unsigned long long tag)
{
    struct app *a = user;
    size_t slot = tag & ((1u << SLOT_BITS) - 1);
    struct conn *c = slot < a->max_conns ? &a->conns[slot] : NULL;
    return c && c->s && c->id == tag >> SLOT_BITS ? c->s : NULL;
}

/* Steps one session that is ready (its socket, or its deadline) and hands out its jobs. A
 * session that ended is freed; with --once the program then ends with its exit code. */
static void serve(struct app *a, struct conn *c)
{
    int r = ex_pump(&a->q, c->s, job_tag(c), answer_license, a);
    if (r > 0)
        return;
    release(a, c);
    if (a->once) {
        a->rc = ex_exit_code(r);
        a->stop = true;
    }
}

/* Milliseconds until the nearest deadline, -1 for none. */
static int heap_wait(const struct app *a)
{
    if (!a->heap_n)
        return -1;
    uint64_t now = now_ms(), due = a->heap[0]->due;
    return due <= now ? 0 : due - now > INT_MAX ? INT_MAX : (int)(due - now);
}

/* Serves consoles until --once's session ends (or epoll fails); returns the exit code. Each
 * round touches only what is ready: the sockets epoll reports and the deadlines that passed. */
#define EVENTS_PER_ROUND 256
static int run(struct app *a)
{
    struct epoll_event evs[EVENTS_PER_ROUND];
    while (!a->stop) {
        int n = epoll_wait(a->ep, evs, EVENTS_PER_ROUND, heap_wait(a));
        if (n < 0 && errno != EINTR) {
            perror(PROG ": epoll_wait");
            return EX_PROTOCOL;
        }
        for (int i = 0; i < n && !a->stop; i++) {
            void *p = evs[i].data.ptr;
            if (p == &a->lfd) {
                accept_consoles(a);
            } else if (p == &a->q) {
                ex_jobs_deliver(&a->q, job_owner, a); /* each one's timer callback says: step now */
            } else {
                struct conn *c = p;
                if (c->s) /* else freed earlier in this round */
                    serve(a, c);
            }
        }
        /* The deadlines that have passed, each session once a round (a step may set a new
         * deadline that is due at once, e.g. a job answered in place). */
        uint64_t now = now_ms();
        for (size_t k = a->heap_n; k > 0 && a->heap_n && a->heap[0]->due <= now && !a->stop; k--) {
            struct conn *c = a->heap[0];
            heap_remove(a, c);
            serve(a, c);
        }
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
    a.max_per_source = o.max_per_source_set ? o.max_per_source : DEFAULT_MAX_PER_SOURCE;
    a.lfd = -1;
    a.ep = -1;
    rc = start(&a, &o);
    if (rc == EX_OK)
        rc = run(&a);
    finish(&a);
    return rc;
}
