/* test-socket-api.c -- the socket and timer callbacks, driven by an epoll host written here
 * that does exactly what they say (EPOLL_CTL_ADD on a socket's first report, MOD after, DEL
 * on CC_POLL_REMOVE) and steps only what is ready; and connect racing (RFC 8305) through it.
 * Order of events is asserted; the only clock checks are generous bounds. */
#define _GNU_SOURCE
#include "harness.h"
#include "pair.h"

#include "../examples/psk.h"

#include <carboncopy.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static char pskfile[600];

static cc_context *client_ctx(void)
{
    return tp_psk_context(CC_ROLE_CLIENT, pskfile);
}

static cc_context *console_ctx(void)
{
    return tp_psk_context(CC_ROLE_CONSOLE, pskfile);
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1; /* the directory's own */
}

/* ---- the epoll host ---- */

#define MAX_FD 4096
struct report {
    char who; /* 'c' console, 's' client */
    int fd, what;
    uint64_t at_ms;
};
struct host {
    int ep, lfd;
    struct {
        bool on;
        struct tp_side *side;
    } reg[MAX_FD];
    struct report log[512];
    int n;
    int ctl_failed; /* epoll_ctl refused what a callback asked (ENOENT, EEXIST, EBADF) */
    char ctl_why[200];
    struct tp_side *con, *cli;
    int64_t due[2]; /* the sides' timers: absolute ms, -1 none */
};

static struct host H;

static int side_no(const struct tp_side *sd)
{
    return sd == H.cli;
}

static void on_socket(void *user, cc_session *s, cc_socket sock, int what)
{
    struct host *h = user;
    struct tp_side *sd = cc_session_user_data(s);
    int fd = (int)sock;
    if (h->n < (int)(sizeof h->log / sizeof h->log[0]))
        h->log[h->n++] = (struct report){side_no(sd) ? 's' : 'c', fd, what, t_now_ms()};
    if (fd < 0 || fd >= MAX_FD) {
        h->ctl_failed++;
        return;
    }
    int r;
    if (what == CC_POLL_REMOVE) {
        /* Reported before the close: the socket is still open and registered. */
        r = h->reg[fd].on ? epoll_ctl(h->ep, EPOLL_CTL_DEL, fd, NULL) : (errno = ENOENT, -1);
        h->reg[fd].on = false;
    } else {
        struct epoll_event ev = {0};
        ev.events = (what & CC_POLL_IN ? EPOLLIN : 0) | (what & CC_POLL_OUT ? EPOLLOUT : 0);
        ev.data.fd = fd;
        r = epoll_ctl(h->ep, h->reg[fd].on ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
        h->reg[fd].on = true;
        h->reg[fd].side = sd;
    }
    if (r != 0 && !h->ctl_failed++)
        snprintf(h->ctl_why, sizeof h->ctl_why, "fd %d what %d: %s", fd, what, strerror(errno));
}

static void on_timer(void *user, cc_session *s, int32_t ms)
{
    struct host *h = user;
    struct tp_side *sd = cc_session_user_data(s);
    h->due[side_no(sd)] = ms < 0 ? -1 : (int64_t)(t_now_ms() + (uint64_t)ms);
}

static void host_init(struct tp_side *con, struct tp_side *cli, int lfd)
{
    memset(&H, 0, sizeof H);
    H.ep = epoll_create1(EPOLL_CLOEXEC);
    H.con = con;
    H.cli = cli;
    H.lfd = lfd;
    H.due[0] = H.due[1] = -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(H.ep, EPOLL_CTL_ADD, lfd, &ev);
}

static bool established(void)
{
    return cc_session_state(H.con->s) == CC_STATE_ESTABLISHED && H.cli->s &&
           cc_session_state(H.cli->s) == CC_STATE_ESTABLISHED;
}

/* Runs the loop until both are established, one ends, or ms pass: waits only on what the
 * callbacks registered and the nearest reported deadline, steps only what is ready. */
static void host_run(int ms)
{
    uint64_t end = t_now_ms() + (uint64_t)ms;
    while (t_now_ms() < end && !established() && !H.con->ended && !H.cli->ended) {
        int64_t wait = (int64_t)(end - t_now_ms());
        for (int i = 0; i < 2; i++)
            if (H.due[i] >= 0) {
                int64_t left = H.due[i] - (int64_t)t_now_ms();
                if (left < wait)
                    wait = left < 0 ? 0 : left;
            }
        struct epoll_event evs[16];
        int n = epoll_wait(H.ep, evs, 16, (int)wait);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == H.lfd) {
                int c = accept4(H.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c >= 0 && H.cli->s && cc_session_state(H.cli->s) == CC_STATE_NEW) {
                    T_EQ(cc_session_accept_fd(H.cli->s, c), CC_OK);
                    tp_step(H.cli);
                } else if (c >= 0) {
                    close(c);
                }
            } else if (fd < MAX_FD && H.reg[fd].on) {
                tp_step(H.reg[fd].side);
            }
        }
        for (int i = 0; i < 2; i++)
            if (H.due[i] >= 0 && H.due[i] <= (int64_t)t_now_ms())
                tp_step(i ? H.cli : H.con);
    }
}

/* A listener whose accept queue is full: a connect to it is never answered (the SYN is
 * dropped), the way a black-holed address behaves. fill[] are the connections that fill it. */
static int black_hole(struct sockaddr_in *addr, int fill[2])
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof *addr;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof *addr) || listen(fd, 0) ||
        getsockname(fd, (struct sockaddr *)addr, &len))
        return -1;
    for (int i = 0; i < 2; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)addr, sizeof *addr);
        struct pollfd p = {fill[i], POLLOUT, 0};
        poll(&p, 1, i == 0 ? 2000 : 200); /* the first is queued; the second finds the queue full */
    }
    return fd;
}

/* The console's session, its resolve job answered with `first` then `second`. */
static void start_console(struct tp_side *con, cc_context *cctx, const struct sockaddr_in *first,
                          const struct sockaddr_in *second)
{
    con->s = cc_session_new(cctx, NULL);
    cc_session_set_event_callback(con->s, tp_on_event, con);
    cc_session_set_user_data(con->s, con);
    T_EQ(cc_session_connect(con->s, "localhost", ntohs(second->sin_port)), CC_OK);
    cc_job *j = cc_session_take_job(con->s);
    T_ASSERT(j != NULL);
    T_EQ(cc_job_resolve_add_address(j, first, sizeof *first), CC_OK);
    T_EQ(cc_job_resolve_add_address(j, second, sizeof *second), CC_OK);
    T_EQ(cc_session_job_done(con->s, j), CC_OK);
    T_ASSERT(H.due[0] == 0 || H.due[0] <= (int64_t)t_now_ms()); /* a job came back: step now */
}

static struct tp_side *new_client(struct tp_side *cli, cc_context *sctx)
{
    cli->s = cc_session_new(sctx, NULL);
    cc_session_set_event_callback(cli->s, tp_on_event, cli);
    cc_session_set_user_data(cli->s, cli);
    cli->lic_count = 3;
    return cli;
}

/* Index in the log of the first report for `who` matching fd (-1 any) and what (-1 any
 * add or modify, else exactly), from index `from`; -1 if none. */
static int find(char who, int fd, int what, int from)
{
    for (int i = from; i < H.n; i++)
        if (H.log[i].who == who && (fd < 0 || H.log[i].fd == fd) &&
            (what < 0 ? H.log[i].what != CC_POLL_REMOVE : H.log[i].what == what))
            return i;
    return -1;
}

static void print_log(void)
{
    for (int i = 0; i < H.n; i++)
        printf("#   %c fd %d %s%s%s +%llu ms\n", H.log[i].who, H.log[i].fd,
               H.log[i].what == CC_POLL_REMOVE ? "REMOVE" : "", H.log[i].what & CC_POLL_IN ? "IN " : "",
               H.log[i].what & CC_POLL_OUT ? "OUT" : "", (unsigned long long)(H.log[i].at_ms - H.log[0].at_ms));
}

/* ================================================================= tests */

static void t_setters(void)
{
    cc_context *cctx = console_ctx();
    T_EQ(cc_context_set_socket_callback(NULL, on_socket, NULL), CC_ERR_INVALID);
    T_EQ(cc_context_set_timer_callback(NULL, on_timer, NULL), CC_ERR_INVALID);
    T_EQ(cc_session_set_socket_callback(NULL, on_socket, NULL), CC_ERR_INVALID);
    T_EQ(cc_session_set_timer_callback(NULL, on_timer, NULL), CC_ERR_INVALID);
    T_EQ(cc_context_set_socket_callback(cctx, on_socket, &H), CC_OK);
    T_EQ(cc_context_set_timer_callback(cctx, on_timer, &H), CC_OK);
    cc_session *s = cc_session_new(cctx, NULL);
    /* the context is read-only while a session uses it */
    T_EQ(cc_context_set_socket_callback(cctx, NULL, NULL), CC_ERR_STATE);
    T_CONTAINS(cc_context_errmsg(cctx), "cc_context_set_socket_callback");
    T_EQ(cc_context_set_timer_callback(cctx, NULL, NULL), CC_ERR_STATE);
    T_EQ(cc_session_set_socket_callback(s, on_socket, &H), CC_OK); /* in CC_STATE_NEW */
    T_EQ(cc_session_fd(s), CC_SOCKET_INVALID);
    T_EQ(cc_session_connect(s, "127.0.0.1", 1), CC_OK);
    T_EQ(cc_session_set_socket_callback(s, NULL, NULL), CC_ERR_STATE);
    T_EQ(cc_session_set_timer_callback(s, NULL, NULL), CC_ERR_STATE);
    cc_session_free(s);
    cc_context_free(cctx);
    T_EQ(cc_session_accept_fd(NULL, 3), CC_ERR_INVALID);
    /* a cc_socket that is no descriptor here */
    cc_context *sctx = client_ctx();
    cc_session *c = cc_session_new(sctx, NULL);
    T_EQ(cc_session_accept_fd(c, CC_SOCKET_INVALID), CC_ERR_INVALID);
    T_EQ(cc_session_accept_fd(c, (cc_socket)INT_MAX + 1), CC_ERR_INVALID);
    T_EQ(cc_session_state(c), CC_STATE_NEW);
    cc_session_free(c);
    cc_context_free(sctx);
}

/* The first address black-holes and times out; the second socket gets the same number. The
 * host sees add, remove, add for that number and its epoll calls never fail. */
static void t_fallback_reused_fd(void)
{
    struct sockaddr_in good, hole;
    int fill[2], hfd = black_hole(&hole, fill), lfd = t_listen(&good);
    T_ASSERT(hfd >= 0 && lfd >= 0);
    struct tp_side con = {0}, cli = {0};
    cc_context *cctx = console_ctx(), *sctx = client_ctx();
    host_init(&con, &cli, lfd);
    int before = open_fds();
    T_EQ(cc_context_set_socket_callback(cctx, on_socket, &H), CC_OK);
    T_EQ(cc_context_set_timer_callback(cctx, on_timer, &H), CC_OK);
    T_EQ(cc_context_set_socket_callback(sctx, on_socket, &H), CC_OK);
    T_EQ(cc_context_set_timer_callback(sctx, on_timer, &H), CC_OK);
    /* Sequential: the per-address timeout (300 ms) comes long before the stagger (60 s). */
    T_EQ(cc_context_set_timeout(cctx, CC_TIMEOUT_CONNECT_ATTEMPT, 300), CC_OK);
    T_EQ(cc_context_set_timeout(cctx, CC_TIMEOUT_CONNECT_STAGGER, 60000), CC_OK);
    new_client(&cli, sctx);
    start_console(&con, cctx, &hole, &good);
    host_run(8000);
    print_log();
    T_EQ(H.ctl_failed, 0);
    if (H.ctl_failed)
        printf("#   %s\n", H.ctl_why);
    T_EQ(cc_session_state(con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_state(cli.s), CC_STATE_ESTABLISHED);
    int a = find('c', -1, CC_POLL_OUT, 0);
    T_ASSERT(a >= 0);
    int rm = find('c', H.log[a].fd, CC_POLL_REMOVE, a + 1);
    T_ASSERT(rm > a);
    int b = find('c', -1, -1, rm + 1); /* the next socket's add (loopback may connect at once: IN) */
    T_ASSERT(b > rm);
    /* Linux gives the lowest free number: the second attempt's socket reuses the first's. */
    T_EQ(H.log[b].fd, H.log[a].fd);
    T_EQ(cc_session_fd(con.s), (cc_socket)H.log[b].fd);
    /* Established: each side reads (at least) its one socket. */
    int last = -1;
    for (int i = 0; i < H.n; i++)
        if (H.log[i].who == 'c')
            last = i;
    T_ASSERT(last >= 0 && H.log[last].fd == H.log[b].fd && (H.log[last].what & CC_POLL_IN));
    /* Freed: a remove for each socket, before it is closed; no descriptor left behind. */
    int n0 = H.n;
    cc_session_free(con.s);
    cc_session_free(cli.s);
    T_ASSERT(find('c', H.log[b].fd, CC_POLL_REMOVE, n0) >= n0);
    T_ASSERT(find('s', -1, CC_POLL_REMOVE, n0) >= n0);
    T_EQ(H.ctl_failed, 0);
    T_EQ(H.due[0], -1);
    T_EQ(H.due[1], -1);
    T_EQ(open_fds(), before);
    close(H.ep);
    cc_context_free(cctx);
    cc_context_free(sctx);
    close(lfd);
    close(hfd);
    close(fill[0]);
    close(fill[1]);
}

/* RFC 8305: the first address black-holes, the second starts after the stagger while the
 * first is still in flight, wins, and the first is closed; well before the per-address timeout. */
static void t_racing(void)
{
    struct sockaddr_in good, hole;
    int fill[2], hfd = black_hole(&hole, fill), lfd = t_listen(&good);
    T_ASSERT(hfd >= 0 && lfd >= 0);
    struct tp_side con = {0}, cli = {0};
    cc_context *cctx = console_ctx(), *sctx = client_ctx();
    host_init(&con, &cli, lfd);
    int before = open_fds();
    T_EQ(cc_context_set_socket_callback(cctx, on_socket, &H), CC_OK);
    T_EQ(cc_context_set_timer_callback(cctx, on_timer, &H), CC_OK);
    T_EQ(cc_context_set_socket_callback(sctx, on_socket, &H), CC_OK);
    T_EQ(cc_context_set_timer_callback(sctx, on_timer, &H), CC_OK);
    /* The defaults: 250 ms stagger, 2000 ms per address. */
    new_client(&cli, sctx);
    uint64_t t0 = t_now_ms();
    start_console(&con, cctx, &hole, &good);
    host_run(10000);
    uint64_t took = t_now_ms() - t0;
    print_log();
    printf("#   established after %llu ms\n", (unsigned long long)took);
    T_EQ(H.ctl_failed, 0);
    T_EQ(cc_session_state(con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_state(cli.s), CC_STATE_ESTABLISHED);
    int a = find('c', -1, CC_POLL_OUT, 0);
    T_ASSERT(a >= 0);
    int fa = H.log[a].fd;
    /* The second attempt: another socket (loopback may connect it at once, so its first
     * report can already be IN) ... */
    int b = -1;
    for (int i = a + 1; i < H.n && b < 0; i++)
        if (H.log[i].who == 'c' && H.log[i].fd != fa && H.log[i].what != CC_POLL_REMOVE)
            b = i;
    T_ASSERT(b > a);
    int rm = find('c', fa, CC_POLL_REMOVE, a + 1);
    T_ASSERT(rm > a);
    /* ... started no earlier than the stagger (a lower bound: the clocks only run forward),
     * while the first was still in flight: the first was removed no earlier either ... */
    T_ASSERT(H.log[b].at_ms - H.log[a].at_ms >= 240);
    T_ASSERT(H.log[rm].at_ms - H.log[a].at_ms >= 240);
    /* ... and the first lost before its own timeout (2000 ms): closed when the second won,
     * nothing else came in between */
    T_ASSERT(H.log[rm].at_ms - H.log[a].at_ms < 2000);
    T_ASSERT(took < 2000);
    for (int i = a + 1; i < rm; i++)
        T_ASSERT(H.log[i].who != 'c' || H.log[i].fd != fa);
    T_EQ(cc_session_fd(con.s), (cc_socket)H.log[b].fd);
    T_EQ(fcntl(fa, F_GETFD) == -1 || fa == (int)cc_session_fd(cli.s), true); /* the loser is closed */
    cc_session_free(con.s);
    cc_session_free(cli.s);
    T_EQ(open_fds(), before); /* no descriptor left behind */
    close(H.ep);
    cc_context_free(cctx);
    cc_context_free(sctx);
    close(lfd);
    close(hfd);
    close(fill[0]);
    close(fill[1]);
}

/* A refused first address fails at once and the next starts at once, without the stagger;
 * every address failing ends the session with the last reason, every socket removed. */
static void t_all_fail(void)
{
    struct sockaddr_in dead = {0};
    dead.sin_family = AF_INET;
    dead.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dead.sin_port = htons(1);
    struct tp_side con = {0}, cli = {0};
    cli.ended = true;
    cc_context *cctx = console_ctx();
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    host_init(&con, &cli, lfd);
    int before = open_fds();
    T_EQ(cc_context_set_socket_callback(cctx, on_socket, &H), CC_OK);
    T_EQ(cc_context_set_timer_callback(cctx, on_timer, &H), CC_OK);
    T_EQ(cc_context_set_timeout(cctx, CC_TIMEOUT_CONNECT_STAGGER, 60000), CC_OK);
    start_console(&con, cctx, &dead, &dead);
    uint64_t end = t_now_ms() + 5000;
    while (!con.ended && t_now_ms() < end) {
        tp_step(&con);
        usleep(2000);
    }
    T_EQ(con.result, CC_ERR_CONNECT);
    T_CONTAINS(cc_session_errmsg(con.s), "127.0.0.1:1");
    for (int fd = 0; fd < MAX_FD; fd++)
        T_ASSERT(!H.reg[fd].on); /* every socket reported was removed */
    T_EQ(H.ctl_failed, 0);
    T_EQ(H.due[0], -1); /* ended: no deadline */
    cc_session_free(con.s);
    T_EQ(open_fds(), before); /* no descriptor left behind */
    close(H.ep);
    close(lfd);
    cc_context_free(cctx);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (t_make_certs() != 0) {
        printf("not ok - cannot make test certificates\n");
        return 1;
    }
    snprintf(pskfile, sizeof pskfile, "%s/psk.key", t_tmpdir());
    FILE *f = fopen(pskfile, "w");
    fputs("0123456789abcdef-test-key\n", f);
    fclose(f);
    t_run("socket and timer callbacks: setters, context defaults, states", t_setters);
    t_run("fallback: a new socket with the first's number is a remove then an add; epoll never stalls",
          t_fallback_reused_fd);
    t_run("racing: the second address starts after the stagger and wins; the loser is closed", t_racing);
    t_run("every address refused: one error, every socket removed", t_all_fail);
    return t_done();
}
