/* consoles.c -- figures (not a test): one process opens N consoles against one cc-client
 * (build/bin/cc-client, psk, a licence file) on loopback and keeps them established; then the
 * ping round trip on one session with the others idle, cc-client's RSS per session and its
 * CPU per connection. The console side is itself an epoll host of the socket and timer API.
 *
 * Usage: build/bench/consoles [N ...]   (default: CC_BENCH_CONSOLES, else "10 1000");
 * CC_BENCH_CLIENT=PATH measures another cc-client (e.g. an older build's).
 * bench/run.sh runs it for N = 10, 1000 and 10000, each in its own bounded run. */
#define _GNU_SOURCE
#include "../examples/psk.h"
#include "../test/harness.h"
#include "../test/pair.h"

#include <carboncopy.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FD     (1 << 16)
#define IN_FLIGHT  64 /* handshakes at once: the client's accept queue and CPU stay sane */
#define PINGS      200
#define SETUP_SECS 100 /* a run that cannot connect its consoles within this gives up */

struct con {
    cc_session *s;
    int64_t due; /* ms, -1 none */
    bool up, dead;
    int pongs;
};

static int ep;
static cc_session *by_fd[MAX_FD];
static bool reg[MAX_FD];
static struct con *cons;
static size_t n_up, n_dead;

static void on_socket(void *user, cc_session *s, cc_socket sock, int what)
{
    int fd = (int)sock;
    if (fd < 0 || fd >= MAX_FD)
        return;
    if (what == CC_POLL_REMOVE) {
        if (reg[fd])
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        reg[fd] = false;
        by_fd[fd] = NULL;
        return;
    }
    struct epoll_event ev = {0};
    ev.events = (what & CC_POLL_IN ? EPOLLIN : 0) | (what & CC_POLL_OUT ? EPOLLOUT : 0);
    ev.data.fd = fd;
    epoll_ctl(ep, reg[fd] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    reg[fd] = true;
    by_fd[fd] = s;
}

static void on_timer(void *user, cc_session *s, int32_t ms)
{
    struct con *c = cc_session_user_data(s);
    c->due = ms < 0 ? -1 : (int64_t)(t_now_ms() + (uint64_t)ms);
}

static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    struct con *c = cc_session_user_data(s);
    if (ev->type == CC_EVENT_STATE && ev->state == CC_STATE_ESTABLISHED) {
        c->up = true;
        n_up++;
    } else if (ev->type == CC_EVENT_CLOSED && !c->dead) {
        c->dead = true;
        n_dead++;
        if (n_dead <= 3)
            fprintf(stderr, "consoles: a session ended: %s: %s\n", cc_err_name(ev->code), ev->text);
    } else if (ev->type == CC_EVENT_PONG) {
        c->pongs++;
    }
}

static void step(struct con *c)
{
    if (!c->s || c->dead)
        return;
    for (int i = 0; i < 4; i++) {
        int r = cc_session_step(c->s);
        if (r <= 0 || !(r & CC_WANT_JOB))
            return;
        cc_job *j;
        while ((j = cc_session_take_job(c->s))) {
            cc_job_run(j); /* none is expected: the resolve job is answered at connect */
            cc_session_job_done(c->s, j);
        }
    }
}

/* One round: what epoll reports, then the deadlines that passed (a scan: the console side's
 * timers matter little here; cc-client's heap is what is measured). */
static void round_once(size_t n, int wait_ms, bool scan_timers)
{
    struct epoll_event evs[256];
    int k = epoll_wait(ep, evs, 256, wait_ms);
    for (int i = 0; i < k; i++) {
        cc_session *s = evs[i].data.fd < MAX_FD ? by_fd[evs[i].data.fd] : NULL;
        if (s)
            step(cc_session_user_data(s));
    }
    if (scan_timers) {
        int64_t now = (int64_t)t_now_ms();
        for (size_t i = 0; i < n; i++)
            if (cons[i].s && cons[i].due >= 0 && cons[i].due <= now)
                step(&cons[i]);
    }
}

static long proc_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key)))
            v = strtol(line + strlen(key), NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (p)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int run(size_t n, const char *client_bin, const char *keyfile, const char *page)
{
    char out[600];
    snprintf(out, sizeof out, "%s/consoles-client.out", t_tmpdir());
    unlink(out);
    char maxs[32];
    snprintf(maxs, sizeof maxs, "%zu", n + 16);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_WRONLY);
        dup2(o, 1);
        dup2(nul, 2); /* one line per session otherwise */
        execl(client_bin, client_bin, "--listen", "127.0.0.1:0", "--cert", t_cert("client.pem"), "--key",
              t_cert("client.key"), "--auth", "psk", "--psk-file", keyfile, "--license-file", page, "--max-sessions",
              maxs, "--max-per-source", "0", "--json", "--timeout", "60000", (char *)NULL);
        _exit(127);
    }
    unsigned port;
    if (t_listening_port(out, &port, 10000) != 0) {
        fprintf(stderr, "consoles: cc-client did not start (%s)\n", client_bin);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    usleep(100000);
    long rss0 = proc_kb(pid, "VmRSS:");
    double cpu0 = proc_cpu_s(pid);

    cc_context *ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    cc_context_set_ca_file(ctx, t_cert("ca.pem"));
    psk_register(ctx, keyfile);
    cc_context_set_timeout(ctx, CC_TIMEOUT_HANDSHAKE, 60000);
    cc_context_set_socket_callback(ctx, on_socket, NULL);
    cc_context_set_timer_callback(ctx, on_timer, NULL);
    ep = epoll_create1(EPOLL_CLOEXEC);
    cons = calloc(n, sizeof *cons);
    n_up = n_dead = 0;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);

    uint64_t t0 = t_now_ms(), end = t0 + SETUP_SECS * 1000;
    size_t started = 0;
    while (n_up + n_dead < n && t_now_ms() < end) {
        while (started < n && started - n_up - n_dead < IN_FLIGHT) {
            struct con *c = &cons[started++];
            c->due = -1;
            c->s = cc_session_new(ctx, NULL);
            cc_session_set_user_data(c->s, c);
            cc_session_set_event_callback(c->s, on_event, NULL);
            cc_session_set_credentials(c->s, "bench", NULL, NULL);
            cc_session_connect(c->s, "localhost", (uint16_t)port);
            cc_job *j = cc_session_take_job(c->s);
            cc_job_resolve_add_address(j, &sa, sizeof sa);
            cc_session_job_done(c->s, j);
            step(c);
        }
        /* the console side's own deadlines (only the handshake's here) need no hurry */
        static uint64_t last_scan;
        bool scan = t_now_ms() - last_scan >= 200;
        if (scan)
            last_scan = t_now_ms();
        round_once(started, 5, scan);
    }
    double setup_s = (double)(t_now_ms() - t0) / 1000.0;
    int rc = 0;
    if (n_up < n) {
        fprintf(stderr, "consoles: only %zu of %zu consoles established in %.0f s (%zu ended)\n", n_up, n, setup_s,
                n_dead);
        rc = 1;
    }
    /* let cc-client settle, then its figures with every console idle */
    for (uint64_t settle = t_now_ms() + 300; t_now_ms() < settle;)
        round_once(n, 10, true);
    long rss1 = proc_kb(pid, "VmRSS:");
    double cpu1 = proc_cpu_s(pid);

    /* ping round trips on one session, the others idle */
    uint64_t rtt[PINGS];
    int got = 0;
    /* the newest session: a host that walks its table in order reaches it last */
    struct con *c = &cons[n - 1];
    for (int i = 0; i < PINGS && rc == 0 && c->up && !c->dead; i++) {
        int before = c->pongs;
        uint64_t s0 = t_now_us();
        if (cc_session_ping(c->s) < 0)
            break;
        step(c);
        uint64_t give_up = t_now_ms() + 2000;
        while (c->pongs == before && !c->dead && t_now_ms() < give_up)
            round_once(1, 100, false);
        if (c->pongs == before)
            break;
        rtt[got++] = t_now_us() - s0;
    }
    qsort(rtt, (size_t)got, sizeof rtt[0], cmp_u64);
    printf("consoles %6zu: %6zu established in %5.1f s; ping rtt median %5llu us (p90 %5llu us, %d pings); "
           "cc-client RSS %6.1f KB/session (%ld -> %ld KB); CPU %5.2f ms/connection\n",
           n, n_up, setup_s, got ? (unsigned long long)rtt[got / 2] : 0ULL,
           got ? (unsigned long long)rtt[got * 9 / 10] : 0ULL, got, n_up ? (double)(rss1 - rss0) / (double)n_up : 0.0,
           rss0, rss1, n_up ? (cpu1 - cpu0) * 1000.0 / (double)n_up : 0.0);
    fflush(stdout);
    if (got < PINGS)
        rc = 1;

    for (size_t i = 0; i < n; i++)
        cc_session_free(cons[i].s);
    free(cons);
    close(ep);
    cc_context_free(ctx);
    kill(pid, SIGTERM);
    for (int i = 0; i < 50 && waitpid(pid, NULL, WNOHANG) == 0; i++)
        usleep(100000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* cc-client raises its own */
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (t_make_certs() != 0) {
        fprintf(stderr, "consoles: cannot make the test certificates\n");
        return 1;
    }
    const char *keyfile = t_psk("bench");
    char page[600], client_bin[600];
    snprintf(page, sizeof page, "%s/consoles-license.xml", t_tmpdir());
    FILE *f = fopen(page, "w");
    if (!f || !keyfile)
        return 1;
    fputs("<LicenseDetails><LicenseCount>100000</LicenseCount><LicensesInUse>1</LicensesInUse></LicenseDetails>\n", f);
    fclose(f);
    /* the build directory's cc-client, next to this binary: BUILD/bench/consoles -> BUILD/bin/cc-client */
    char self[512];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    self[l > 0 ? l : 0] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(client_bin, sizeof client_bin, "%s/../bin/cc-client", self);
    const char *other = getenv("CC_BENCH_CLIENT"); /* another build's, to compare */
    if (other && *other)
        snprintf(client_bin, sizeof client_bin, "%s", other);

    const char *env = getenv("CC_BENCH_CONSOLES");
    char list[256];
    snprintf(list, sizeof list, "%s", env && *env ? env : "10 1000");
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("# consoles: N consoles in this process against one cc-client (psk, licence file), loopback; "
           "open files limit %llu\n",
           (unsigned long long)rl.rlim_cur);
    int rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            rc |= run(strtoul(argv[i], NULL, 10), client_bin, keyfile, page);
    } else {
        for (char *tok = strtok(list, " ,"); tok; tok = strtok(NULL, " ,"))
            rc |= run(strtoul(tok, NULL, 10), client_bin, keyfile, page);
    }
    return rc;
}
