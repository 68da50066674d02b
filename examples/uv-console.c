/* uv-console.c -- a console on libuv: the session's socket and timer callbacks drive uv_poll and
 * uv_timer handles, and its jobs run on libuv's thread pool (uv_queue_work). It connects, reaches
 * established, sends one message on channel 1, waits for the client to echo it (cc-client --echo),
 * closes in order and exits 0. Any failure prints the error and the session's detail, exit 1.
 *
 *   uv-console [options] HOST [PORT]
 *     --ca FILE | --pin SHA256HEX     how to trust the client's certificate
 *     --auth psk|nt|kerberos          mechanism (repeatable; default psk with --psk-file)
 *     --psk-file FILE                 the key of the psk example mechanism (examples/psk.c)
 *     --user NAME --domain DOMAIN --password-file FILE    credentials (nt, kerberos; psk: NAME)
 *     --message TEXT                  what to send (default "hello from libuv")
 *     --timeout MS                    handshake deadline, and the most the echo may take (default 10000)
 *     --connect-timeout MS            per address, then the next (default 2000)
 *     --verbose                       print each socket and timer callback
 *
 * Build: cc uv-console.c psk.c common.c $(pkg-config --cflags --libs carboncopy libuv) -lcrypto
 *
 * Everything below runs on the loop's thread except job_work(), which runs on a pool thread and
 * touches nothing but its job. */
#define _GNU_SOURCE
#include "common.h" /* ex_read_secret, ex_show (escapes strings that come from the peer) */
#include "psk.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define PROG "uv-console"

/* One uv_poll handle per socket the session reported. A console has several while it races the
 * addresses of a name (one per connect attempt), one after. Each is its own allocation: uv_close()
 * finishes in a later loop iteration (on_watch_closed), and until then libuv owns the memory. */
struct watch {
    uv_poll_t poll; /* first member: the uv_handle_t * libuv passes back is a struct watch * */
    cc_socket sock;
    int events; /* UV_READABLE | UV_WRITABLE, as the session last asked */
    struct console *c;
    struct watch *next;
};

struct console {
    uv_loop_t *loop;
    cc_context *ctx;
    cc_session *s;         /* NULL once the session has ended and been freed */
    uv_timer_t timer;      /* the session's next deadline */
    struct watch *watches; /* the sockets watched now */
    int host_error;        /* a uv_* call failed inside a callback: end the session with it */
    int verbose;
    const char *message;
    size_t echoed; /* bytes of the echo received so far */
    int result;    /* cc_session_step()'s last result: 0 closed cleanly, < 0 failed */
};

static void drive(struct console *c);

/* ---- sockets: uv_poll, as the socket callback says ---- */

static struct watch **find_watch(struct console *c, cc_socket sock)
{
    struct watch **p = &c->watches;
    while (*p && (*p)->sock != sock)
        p = &(*p)->next;
    return p;
}

static void on_watch_closed(uv_handle_t *h)
{
    free(h); /* the struct watch */
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct watch *w = (struct watch *)p;
    /* On an error condition (a refused connect, a reset) libuv reports status UV_EBADF and stops
     * the handle. Start it again with what the session asked, so libuv keeps watching what the
     * session thinks it watches; the step below reads the error and drops the socket. */
    if (status < 0)
        uv_poll_start(p, w->events, on_poll);
    (void)events; /* the session finds out itself what the socket is ready for */
    drive(w->c);  /* may close w: do not touch it after this */
}

/* The socket callback: runs inside cc_session_*() calls, so it must not step or free the session;
 * it only keeps libuv's handles as the session wants them. */
static void on_socket(void *user, cc_session *s, cc_socket sock, int what)
{
    struct console *c = user;
    struct watch **p = find_watch(c, sock), *w = *p;
    (void)s;
    if (c->verbose)
        printf("socket %lld: %s%s\n", (long long)sock,
               what == CC_POLL_REMOVE               ? "remove"
               : what == (CC_POLL_IN | CC_POLL_OUT) ? "in+out"
               : what & CC_POLL_IN                  ? "in"
                                                    : "out",
               what != CC_POLL_REMOVE && !w ? " (new handle)" : "");
    if (what == CC_POLL_REMOVE) {
        /* The library says REMOVE before it closes the socket (cc_session_set_socket_callback(3)).
         * uv_close() takes the descriptor out of libuv's epoll set at once, so closing it next is
         * safe, and a new socket that gets the same number (the next address of a connect) finds
         * no watch for it and gets a handle of its own, while this one finishes closing. */
        if (w) {
            *p = w->next;
            uv_close((uv_handle_t *)&w->poll, on_watch_closed);
        }
        return;
    }
    if (!w) { /* a socket's first call, or its first after a REMOVE: a new handle */
        int r = UV_ENOMEM;
        if (!(w = calloc(1, sizeof *w)) || (r = uv_poll_init_socket(c->loop, &w->poll, (uv_os_sock_t)sock)) < 0) {
            free(w);
            c->host_error = r; /* a drive() follows every call that reports a socket: it ends the session */
            return;
        }
        w->sock = sock;
        w->c = c;
        w->next = c->watches;
        c->watches = w;
    }
    w->events = (what & CC_POLL_IN ? UV_READABLE : 0) | (what & CC_POLL_OUT ? UV_WRITABLE : 0);
    int r = uv_poll_start(&w->poll, w->events, on_poll); /* replaces the events asked before */
    if (r < 0)
        c->host_error = r;
}

/* ---- the deadline: one uv_timer, as the timer callback says ---- */

static void on_timeout(uv_timer_t *t)
{
    struct console *c = t->data;
    /* libuv reads its clock once per loop iteration, so this may run a moment before the
     * library's deadline; the library then reports the same deadline again (it does so for any
     * deadline less than 100 ms away), and on_timer arms the timer anew. */
    drive(c);
}

/* The timer callback: step the session in `ms` milliseconds (0: at once), -1: no deadline. */
static void on_timer(void *user, cc_session *s, int32_t ms)
{
    struct console *c = user;
    (void)s;
    if (c->verbose)
        printf("timer: %d ms\n", (int)ms);
    if (ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0); /* one-shot; starting again replaces it */
}

/* ---- jobs: the thread pool ----
 *
 * A job may block (a console's: resolving the name, kerberos' exchanges with the KDC; a client's:
 * the licence fetch, the KDC or domain controller), so it runs on libuv's thread pool and comes
 * back on the loop's thread in the after-work callback. Mind the pool:
 *  - It has 4 threads unless the environment variable UV_THREADPOOL_SIZE asks for more (at most
 *    1024), read once when the pool first starts (the first uv_queue_work(), uv_fs_* or
 *    uv_getaddrinfo() call): set it before the program runs, or setenv() it first thing in main().
 *    One pool serves every loop of the process: libuv's own file and DNS requests wait behind
 *    the jobs.
 *  - A licence or KDC job holds its pool thread up to its timeout (CC_TIMEOUT_LICENSE and
 *    CC_TIMEOUT_AUTH_JOB, 4 s each by default), a resolve up to the system resolver's own
 *    timeouts (resolv.conf: 5 s per server and attempt), which can be longer. Four stuck jobs
 *    stop the pool. A host with many sessions sizes the pool for the jobs it expects at once, or
 *    runs them on threads of its own and hands them back through a uv_async_t.
 *  - Whatever a job does, the session's handshake deadline (CC_TIMEOUT_HANDSHAKE) still holds:
 *    a session whose job is stuck fails on time with CC_ERR_TIMEOUT, and the job is freed when it
 *    comes back (job_after). */
struct work {
    uv_work_t req;
    cc_job *job;
    struct console *c;
};

static void job_work(uv_work_t *req) /* on a pool thread: blocks */
{
    struct work *w = req->data;
    cc_job_run(w->job);
}

static void job_after(uv_work_t *req, int status) /* on the loop's thread */
{
    struct work *w = req->data;
    struct console *c = w->c;
    (void)status; /* UV_ECANCELED only after uv_cancel(), which this program does not use */
    if (c->s) {
        cc_session_job_done(c->s, w->job); /* reports a 0 timeout: the next step uses the result */
        drive(c);
    } else {
        cc_job_free(w->job); /* the session ended while the job was out */
    }
    free(w);
}

static void start_job(struct console *c, cc_job *job)
{
    struct work *w = malloc(sizeof *w);
    if (w) {
        w->job = job;
        w->c = c;
        w->req.data = w;
        if (uv_queue_work(c->loop, &w->req, job_work, job_after) == 0)
            return;
        free(w);
    }
    cc_job_run(job); /* no way to queue it: run it here (it blocks the loop, but is bounded) */
    cc_session_job_done(c->s, job);
}

/* ---- the session ---- */

/* Steps the session and hands its jobs out; called from each uv callback that means the session
 * has something to do (a socket ready, the deadline, a job back). Never from the session's own
 * callbacks. */
static void drive(struct console *c)
{
    int r = 0;
    cc_job *job;
    while (c->s && (r = cc_session_step(c->s)) > 0) {
        if (c->host_error) { /* a uv_* call failed in a callback: end the session with it */
            cc_session_close(c->s, CC_ERR_IO, uv_strerror(c->host_error));
            c->host_error = 0;
            continue; /* the next step returns CC_ERR_IO */
        }
        if (!(r & CC_WANT_JOB))
            return; /* it waits for a socket, the timer or a job: libuv calls us again */
        while ((job = cc_session_take_job(c->s)) != NULL)
            start_job(c, job);
    }
    if (!c->s)
        return;
    /* The session has ended: 0 closed in order, < 0 failed. Its sockets were removed before they
     * were closed; freeing it stops the timer (the timer callback's -1). */
    c->result = r;
    if (r < 0) {
        char detail[EX_SHOW_MAX];
        fprintf(stderr, PROG ": %s (%s): %s\n", cc_strerror(r), cc_err_name(r),
                ex_show(detail, cc_session_errmsg(c->s)));
    }
    cc_session_free(c->s);
    c->s = NULL;
    uv_close((uv_handle_t *)&c->timer, NULL); /* uv_run() returns once no handle or job is left */
}

/* The event callback: runs inside cc_session_step(); it may send and close, not free. */
static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    struct console *c = user;
    char text[EX_SHOW_MAX];
    size_t len = strlen(c->message);
    switch (ev->type) {
    case CC_EVENT_STATE:
        printf("state: %s\n", cc_state_name(ev->state));
        if (ev->state == CC_STATE_ESTABLISHED) {
            char id[EX_SHOW_MAX];
            printf("established: %s as %s, %s\n", ex_show(text, cc_session_mechanism(s)),
                   ex_show(id, cc_session_identity(s)), cc_session_tls_version(s));
            int r = cc_session_send(s, 1, c->message, len);
            if (r < 0)
                cc_session_close(s, r, "cannot send the message");
            else
                printf("sent %zu bytes on channel 1\n", len);
        }
        break;
    case CC_EVENT_LICENSE:
        printf("licence %s: %u of %u in use\n", ev->granted ? "granted" : "denied", ev->license_in_use,
               ev->license_count);
        break;
    case CC_EVENT_DATA: /* the echo, possibly in pieces */
        if (ev->len > len - c->echoed || memcmp(c->message + c->echoed, ev->data, ev->len) != 0) {
            cc_session_close(s, CC_ERR_PROTOCOL, "the echo does not match the message"); /* ends it at once */
            break;
        }
        c->echoed += ev->len;
        if (c->echoed == len) {
            printf("echo received: %zu bytes, as sent\n", len);
            cc_session_close(s, 0, "done"); /* orderly: the steps that follow flush and end it */
        }
        break;
    case CC_EVENT_CLOSED:
        if (!ev->code)
            printf("closed: %s\n", ex_show(text, ev->text));
        break;
    }
    fflush(stdout);
}

/* ---- setup ---- */

static const char usage[] =
    "usage: " PROG " [--ca FILE | --pin SHA256HEX] [--auth psk|nt|kerberos]... [--psk-file FILE]\n"
    "       [--user NAME] [--domain DOMAIN] [--password-file FILE] [--message TEXT]\n"
    "       [--timeout MS] [--connect-timeout MS] [--verbose] HOST [PORT]\n";

/* Reports a failed setup call (cc_context_errmsg says why); returns 1 when it failed. */
static int failed(const cc_context *ctx, int r, const char *what)
{
    if (r >= 0)
        return 0;
    char detail[EX_SHOW_MAX];
    fprintf(stderr, PROG ": %s: %s (%s): %s\n", what, cc_strerror(r), cc_err_name(r),
            ex_show(detail, cc_context_errmsg(ctx)));
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"ca", required_argument, 0, 'c'},
        {"pin", required_argument, 0, 'P'},
        {"auth", required_argument, 0, 'a'},
        {"psk-file", required_argument, 0, 'k'},
        {"user", required_argument, 0, 'u'},
        {"domain", required_argument, 0, 'd'},
        {"password-file", required_argument, 0, 'w'},
        {"message", required_argument, 0, 'm'},
        {"timeout", required_argument, 0, 't'},
        {"connect-timeout", required_argument, 0, 'T'},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *ca = NULL, *pin = NULL, *psk_file = NULL, *user = NULL, *domain = NULL, *pw_file = NULL;
    const char *mechs[8];
    int n_mechs = 0, opt;
    unsigned long timeout = 10000, connect_timeout = 0, port = CC_DEFAULT_PORT;
    struct console c = {.message = "hello from libuv"};
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            ca = optarg;
            break;
        case 'P':
            pin = optarg;
            break;
        case 'a':
            if (n_mechs == 8)
                goto bad_usage;
            mechs[n_mechs++] = optarg;
            break;
        case 'k':
            psk_file = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'd':
            domain = optarg;
            break;
        case 'w':
            pw_file = optarg;
            break;
        case 'm':
            c.message = optarg;
            break;
        case 't':
            if (!ex_ms_option(PROG, "timeout", optarg, &timeout))
                return 2;
            break;
        case 'T':
            if (!ex_ms_option(PROG, "connect-timeout", optarg, &connect_timeout))
                return 2;
            break;
        case 'v':
            c.verbose = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            goto bad_usage;
        }
    }
    if (optind == argc || argc - optind > 2 || !*c.message ||
        (argc - optind == 2 && (!ex_parse_uint(argv[optind + 1], 65535, &port) || port == 0)))
        goto bad_usage;
    if (n_mechs == 0 && psk_file)
        mechs[n_mechs++] = "psk";

    /* The context: trust, mechanisms, deadlines, and the two callbacks every session starts with. */
    int err = 0, r = 0;
    if (!(c.ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err))) {
        fprintf(stderr, PROG ": %s\n", cc_strerror(err));
        return 1;
    }
    if ((ca && failed(c.ctx, cc_context_set_ca_file(c.ctx, ca), "--ca")) ||
        (pin && failed(c.ctx, cc_context_set_pin_sha256(c.ctx, pin), "--pin")))
        goto out; /* with neither, the system's CA store is trusted */
    for (int i = 0; i < n_mechs; i++) {
        if (strcmp(mechs[i], "psk") == 0) {
            if (!psk_file) {
                fprintf(stderr, PROG ": --auth psk needs --psk-file\n");
                goto out;
            }
            if (psk_register(c.ctx, psk_file) < 0) /* prints why */
                goto out;
        } else if (failed(c.ctx, cc_context_add_builtin_authenticator(c.ctx, mechs[i]), mechs[i])) {
            goto out;
        }
    }
    /* The handshake deadline bounds everything up to established; the idle deadline (nothing heard
     * for that long) bounds the wait for the echo after it. */
    if (failed(c.ctx, cc_context_set_timeout(c.ctx, CC_TIMEOUT_HANDSHAKE, (uint32_t)timeout), "--timeout") ||
        failed(c.ctx, cc_context_set_timeout(c.ctx, CC_TIMEOUT_IDLE, (uint32_t)timeout), "--timeout") ||
        (connect_timeout &&
         failed(c.ctx, cc_context_set_timeout(c.ctx, CC_TIMEOUT_CONNECT_ATTEMPT, (uint32_t)connect_timeout),
                "--connect-timeout")) ||
        failed(c.ctx, cc_context_set_socket_callback(c.ctx, on_socket, &c), "socket callback") ||
        failed(c.ctx, cc_context_set_timer_callback(c.ctx, on_timer, &c), "timer callback"))
        goto out;

    /* The loop and the session's timer, then the session. */
    c.loop = uv_default_loop();
    uv_timer_init(c.loop, &c.timer);
    c.timer.data = &c;
    if (!(c.s = cc_session_new(c.ctx, &err))) {
        failed(c.ctx, err, "session");
        goto out_loop;
    }
    cc_session_set_event_callback(c.s, on_event, &c);
    if (user || pw_file) {
        size_t pw_len = 0;
        char *password = NULL;
        if (pw_file && !(password = ex_read_secret(pw_file, &pw_len))) /* prints why */
            goto out_session;
        r = cc_session_set_credentials(c.s, user ? user : "", domain, password);
        ex_wipe_free(password, pw_len); /* the session keeps its own copy until authenticated */
        if (r < 0) {
            fprintf(stderr, PROG ": credentials: %s (%s)\n", cc_strerror(r), cc_err_name(r));
            goto out_session;
        }
    }
    /* Connecting queues the resolve job; drive() hands it to the pool, and from then on the
     * loop's callbacks step the session until it ends. */
    if ((r = cc_session_connect(c.s, argv[optind], (uint16_t)port)) < 0) {
        char detail[EX_SHOW_MAX];
        fprintf(stderr, PROG ": %s (%s): %s\n", cc_strerror(r), cc_err_name(r),
                ex_show(detail, cc_session_errmsg(c.s)));
        goto out_session;
    }
    c.result = CC_ERR_INTERNAL;
    drive(&c);
    uv_run(c.loop, UV_RUN_DEFAULT); /* returns when the session has ended and every job is back */
    uv_loop_close(c.loop);
    cc_context_free(c.ctx);
    if (c.result == 0 && c.echoed != strlen(c.message))
        fprintf(stderr, PROG ": the session closed before the echo came back (is the client run with --echo?)\n");
    return c.result == 0 && c.echoed == strlen(c.message) ? 0 : 1;

out_session:
    cc_session_free(c.s);
out_loop:
    uv_close((uv_handle_t *)&c.timer, NULL);
    uv_run(c.loop, UV_RUN_DEFAULT); /* finishes the closes */
    uv_loop_close(c.loop);
out:
    cc_context_free(c.ctx);
    return 1;
bad_usage:
    fputs(usage, stderr);
    return 2;
}
