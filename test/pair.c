/* pair.c -- shared plumbing for the C tests and the benchmarks (see pair.h): two sessions driven side
 * by side, the clock, the test PKI and the KDC fixture, so each file keeps only what it checks. */
#define _GNU_SOURCE /* accept4 */
#include "pair.h"

#include "harness.h"

#include "../examples/psk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- clock, shell, fixtures ---- */

uint64_t t_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t t_now_ms(void)
{
    return t_now_us() / 1000;
}

int t_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int r = system(cmd);
    return r == -1 ? -1 : WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}

static const char *src_dir(void)
{
    return getenv("CC_SRC") ? getenv("CC_SRC") : ".";
}

static char certdir[512];

int t_make_certs(void)
{
    snprintf(certdir, sizeof certdir, "%s/certs", t_tmpdir());
    return t_sh("bash '%s/test/fixtures/certs.sh' '%s' >/dev/null", src_dir(), certdir) == 0 ? 0 : -1;
}

const char *t_cert(const char *name)
{
    static char p[4][700];
    static int i;
    char *s = p[i++ % 4];
    snprintf(s, sizeof p[0], "%s/%s", certdir, name);
    return s;
}

const char *t_cert_pin(void)
{
    static char pin[65];
    FILE *f = fopen(t_cert("client.sha256"), "r");
    if (!f)
        return NULL;
    size_t n = fread(pin, 1, 64, f);
    fclose(f);
    pin[n] = 0;
    return n == 64 ? pin : NULL;
}

const char *t_psk(const char *name)
{
    static char p[4][700];
    static int i;
    char *path = p[i++ % 4];
    snprintf(path, sizeof p[0], "%s/psk-%s.key", t_tmpdir(), name);
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fprintf(f, "%s-0123456789abcdef-secret\n", name);
    return fclose(f) == 0 ? path : NULL;
}

bool t_file_has(const char *path, const char *needle)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

int t_listening_port(const char *path, unsigned *port, int ms)
{
    static const char key[] = "\"address\":\"127.0.0.1:";
    for (int waited = 0; waited <= ms; waited += 25) {
        char buf[4096];
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        char *p = strstr(buf, key);
        if (p && sscanf(p + strlen(key), "%u", port) == 1)
            return 0;
        usleep(25000);
    }
    return -1;
}

int t_listen(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    socklen_t len = sizeof *addr;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)addr, sizeof *addr) == 0 && listen(fd, 128) == 0 &&
        getsockname(fd, (struct sockaddr *)addr, &len) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static char kdc_script[512], kdc_dir[512];
static int kdc_pid;

const char *t_kdc_script(void)
{
    snprintf(kdc_script, sizeof kdc_script, "%s/test/fixtures/kdc.sh", src_dir());
    return kdc_script;
}

const char *t_kdc_dir(void)
{
    if (!kdc_dir[0])
        snprintf(kdc_dir, sizeof kdc_dir, "%s/kdc", t_tmpdir());
    return kdc_dir;
}

/* Loads DIR/env (export NAME=VALUE lines written by kdc.sh start) into our environment. */
static int load_env(void)
{
    char path[600], line[1200];
    snprintf(path, sizeof path, "%s/env", t_kdc_dir());
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        char *eq, *name = line + 7;
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "export ", 7) != 0 || !(eq = strchr(name, '=')))
            continue;
        *eq = 0;
        setenv(name, eq + 1, 1);
        if (strcmp(name, "KDC_PID") == 0)
            kdc_pid = atoi(eq + 1);
    }
    fclose(f);
    return 0;
}

int t_kdc_start(const char *realm)
{
    /* KDC_OWNER_PID: the fixture stops the KDC if this test dies without cleaning up */
    if (t_sh("KDC_OWNER_PID=%d bash '%s' start '%s' %s", (int)getpid(), t_kdc_script(), t_kdc_dir(), realm) != 0 ||
        load_env() != 0)
        return -1;
    atexit(t_kdc_stop);
    return 0;
}

/* True while pid runs; a zombie not yet reaped by init (the KDC is no child of
 * ours) counts as gone. */
static int alive(int pid)
{
    char path[64], st[512];
    if (kill(pid, 0) != 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(st, 1, sizeof st - 1, f);
    fclose(f);
    st[n] = 0;
    const char *p = strrchr(st, ')');
    return !(p && p[1] == ' ' && p[2] == 'Z');
}

void t_kdc_stop(void)
{
    if (kdc_pid > 0) {
        kill(kdc_pid, SIGTERM);
        for (int i = 0; i < 250 && alive(kdc_pid); i++)
            usleep(20000);
        if (alive(kdc_pid))
            kill(kdc_pid, SIGKILL);
        kdc_pid = 0;
    }
}

int t_silent_kdc_start(struct t_silent_kdc *k)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    char conf[700], both[1500];
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(k->old_config, sizeof k->old_config, "%s", getenv("KRB5_CONFIG") ? getenv("KRB5_CONFIG") : "");
    /* The UDP port's number may be taken for TCP, e.g. by one of the thousands of
     * connections in TIME_WAIT the hostile tests leave: then try another port. */
    k->udp = k->tcp = -1;
    for (int attempt = 0; attempt < 50; attempt++) {
        a.sin_port = 0;
        al = sizeof a;
        k->udp = socket(AF_INET, SOCK_DGRAM, 0);
        k->tcp = socket(AF_INET, SOCK_STREAM, 0);
        if (k->udp >= 0 && k->tcp >= 0 && bind(k->udp, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(k->udp, (struct sockaddr *)&a, &al) == 0 &&
            bind(k->tcp, (struct sockaddr *)&a, sizeof a) == 0 && listen(k->tcp, 8) == 0)
            break;
        if (k->udp >= 0)
            close(k->udp);
        if (k->tcp >= 0)
            close(k->tcp);
        k->udp = k->tcp = -1;
    }
    if (k->udp < 0)
        return -1;
    snprintf(conf, sizeof conf, "%s/silent.conf", t_kdc_dir());
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f, "[realms]\n SILENT.TEST = {\n  kdc = 127.0.0.1:%u\n }\n", ntohs(a.sin_port));
    fclose(f);
    snprintf(both, sizeof both, "%s:%s", k->old_config, conf);
    setenv("KRB5_CONFIG", both, 1);
    return 0;
}

void t_silent_kdc_stop(struct t_silent_kdc *k)
{
    setenv("KRB5_CONFIG", k->old_config, 1);
    if (k->udp >= 0)
        close(k->udp);
    if (k->tcp >= 0)
        close(k->tcp);
}

long t_fd_send(void *user, const uint8_t *data, size_t len)
{
    ssize_t n = send(*(int *)user, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0)
        return (long)n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? CC_IO_WOULD_BLOCK : CC_IO_ERROR;
}

long t_fd_recv(void *user, uint8_t *buf, size_t len)
{
    ssize_t n = recv(*(int *)user, buf, len, MSG_DONTWAIT);
    if (n >= 0)
        return (long)n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? CC_IO_WOULD_BLOCK : CC_IO_ERROR;
}

/* ---- one session as a test drives it ---- */

void tp_on_event(void *user, cc_session *s, const cc_event *ev)
{
    struct tp_side *sd = user;
    const char *text = ev->text ? ev->text : "";
    switch (ev->type) {
    case CC_EVENT_LICENSE:
        sd->license_events++;
        sd->license_granted = ev->granted;
        sd->license_code = ev->code;
        sd->license_count = ev->license_count;
        sd->license_in_use = ev->license_in_use;
        snprintf(sd->license_text, sizeof sd->license_text, "%s", text);
        break;
    case CC_EVENT_AUTH:
        if (!ev->code)
            snprintf(sd->identity, sizeof sd->identity, "%s", text);
        break;
    case CC_EVENT_DATA:
        if (sd->echo)
            cc_session_send(s, (uint16_t)ev->channel, ev->data, ev->len);
        if (sd->drop_rx) {
            sd->rx_len += ev->len;
            break;
        }
        sd->rx = realloc(sd->rx, sd->rx_len + ev->len);
        memcpy(sd->rx + sd->rx_len, ev->data, ev->len);
        sd->rx_len += ev->len;
        break;
    case CC_EVENT_CLOSED:
        sd->closed_code = ev->code;
        snprintf(sd->closed_text, sizeof sd->closed_text, "%s", text);
        break;
    case CC_EVENT_PONG:
        sd->pongs++;
        break;
    case CC_EVENT_SEND_READY:
        sd->send_ready++;
        sd->send_blocked = false;
        break;
    }
}

/* The default answer: licence jobs get the side's figures (or fail), resolve jobs the side's
 * address if it has one, others are run. */
static bool answer_default(struct tp_side *sd, cc_job *j)
{
    if (cc_job_type(j) == CC_JOB_RESOLVE && sd->resolve_to)
        cc_job_resolve_add_address(j, sd->resolve_to, sizeof *sd->resolve_to);
    else if (cc_job_type(j) != CC_JOB_LICENSE)
        cc_job_run(j);
    else if (sd->lic_fail)
        cc_job_fail(j, sd->lic_fail, "test: management server unreachable");
    else
        cc_job_license_set_figures(j, sd->lic_count, sd->lic_in_use);
    return true;
}

bool tp_keep_job(struct tp_side *sd, cc_job *j)
{
    if (cc_job_type(j) != sd->keep_type || sd->held)
        return true;
    sd->held = j;
    return false;
}

/* Takes the queued jobs; returns how many went back to the session. */
static int answer_jobs(struct tp_side *sd)
{
    tp_job_fn answer = sd->answer ? sd->answer : answer_default;
    cc_job *j;
    int back = 0;
    while ((j = cc_session_take_job(sd->s)) != NULL) {
        if (answer(sd, j)) {
            cc_session_job_done(sd->s, j);
            back++;
        }
    }
    return back;
}

int tp_step_once(struct tp_side *sd)
{
    if (sd->ended || !sd->s)
        return sd->result;
    uint64_t t0 = t_now_us();
    sd->result = cc_session_step(sd->s);
    uint64_t d = t_now_us() - t0;
    if (d > sd->max_step_us)
        sd->max_step_us = d;
    if (sd->result <= 0)
        sd->ended = true;
    return sd->result;
}

void tp_step(struct tp_side *sd)
{
    for (int i = 0; i < (sd->one_step ? 1 : 4); i++) {
        if (tp_step_once(sd) <= 0 || !(sd->result & CC_WANT_JOB) || sd->hold_jobs)
            return;
        /* a job answered at once is taken back by the next step without a wait */
        if (answer_jobs(sd) == 0)
            return;
    }
}

void tp_poll(struct tp_side *a, struct tp_side *b, int ms)
{
    struct pollfd p[2];
    int n = 0;
    struct tp_side *sides[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        if (!sides[i] || sides[i]->ended || !sides[i]->s)
            continue;
        int fd = cc_session_fd(sides[i]->s);
        if (fd < 0 && sides[i]->poll_fd)
            fd = *sides[i]->poll_fd;
        if (fd >= 0) {
            p[n].fd = fd;
            p[n].events = (short)((sides[i]->result & CC_WANT_READ ? POLLIN : 0) |
                                  (sides[i]->result & CC_WANT_WRITE ? POLLOUT : 0));
            p[n++].revents = 0;
        }
    }
    poll(p, (nfds_t)n, ms);
}

bool tp_drive(struct tp_side *a, struct tp_side *b, tp_done_fn done, int ms)
{
    uint64_t end = t_now_us() + (uint64_t)ms * 1000;
    while (!done(a, b) && t_now_us() < end) {
        tp_step(a);
        tp_step(b);
        if (done(a, b))
            return true;
        tp_poll(a, b, 5);
    }
    return done(a, b);
}

bool tp_both_established(struct tp_side *a, struct tp_side *b)
{
    return (a->ended || (a->s && cc_session_state(a->s) == CC_STATE_ESTABLISHED)) &&
           (b->ended || (b->s && cc_session_state(b->s) == CC_STATE_ESTABLISHED));
}

bool tp_both_ended(struct tp_side *a, struct tp_side *b)
{
    return a->ended && b->ended;
}

/* ---- a console and a client over a socketpair or loopback TCP ---- */

int tp_pair_open(struct tp_pair *p, const char *user, const char *password)
{
    p->sv[0] = p->sv[1] = -1;
    if (!p->cctx || !p->sctx || socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) != 0)
        return -1;
    if (!(p->con.s = cc_session_new(p->cctx, NULL)) || !(p->cli.s = cc_session_new(p->sctx, NULL)))
        return -1;
    cc_session_set_event_callback(p->con.s, tp_on_event, &p->con);
    cc_session_set_event_callback(p->cli.s, tp_on_event, &p->cli);
    if ((user || password) && cc_session_set_credentials(p->con.s, user, NULL, password) != CC_OK)
        return -1;
    if (cc_session_accept_fd(p->cli.s, p->sv[0]) != CC_OK)
        return -1;
    p->con.poll_fd = &p->sv[1];
    return cc_session_set_transport(p->con.s, t_fd_send, t_fd_recv, &p->sv[1], "localhost") == CC_OK ? 0 : -1;
}

int tp_pair_connect(struct tp_pair *p, int lfd, const struct sockaddr_in *addr, const char *user, const char *password)
{
    char host[INET_ADDRSTRLEN];
    p->sv[0] = p->sv[1] = -1;
    p->lfd = lfd;
    p->addr = *addr;
    p->accepting = true;
    p->con.resolve_to = &p->addr;
    if (!p->cctx || !p->sctx || !inet_ntop(AF_INET, &addr->sin_addr, host, sizeof host) ||
        !(p->con.s = cc_session_new(p->cctx, NULL)))
        return -1;
    cc_session_set_event_callback(p->con.s, tp_on_event, &p->con);
    if ((user || password) && cc_session_set_credentials(p->con.s, user, NULL, password) != CC_OK)
        return -1;
    return cc_session_connect(p->con.s, host, ntohs(addr->sin_port)) == CC_OK ? 0 : -1;
}

/* TCP: the client's session on the console's connection, once the listener has it. */
static void pair_accept(struct tp_pair *p)
{
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    p->accepting = false;
    int r = CC_ERR_NOMEM;
    if ((p->cli.s = cc_session_new(p->sctx, &r)) != NULL) {
        cc_session_set_event_callback(p->cli.s, tp_on_event, &p->cli);
        r = cc_session_accept_fd(p->cli.s, fd);
    } else {
        close(fd);
    }
    if (r != CC_OK) {
        p->cli.result = r;
        p->cli.ended = true;
    }
}

void tp_pair_step(struct tp_pair *p)
{
    tp_step(&p->con);
    if (p->accepting)
        pair_accept(p);
    tp_step(&p->cli);
}

void tp_pair_poll(struct tp_pair *p, int ms)
{
    if (!p->accepting) {
        tp_poll(&p->con, &p->cli, ms);
        return;
    }
    /* the console's connection is not accepted yet: the listener too */
    struct pollfd fds[2] = {{p->lfd, POLLIN, 0}, {cc_session_fd(p->con.s), 0, 0}};
    if (!p->con.ended)
        fds[1].events =
            (short)((p->con.result & CC_WANT_READ ? POLLIN : 0) | (p->con.result & CC_WANT_WRITE ? POLLOUT : 0));
    poll(fds, 2, ms);
}

void tp_pair_end(struct tp_pair *p)
{
    cc_session_free(p->con.s);
    cc_session_free(p->cli.s); /* closes sv[0], or the accepted connection */
    cc_job_free(p->con.held);
    cc_job_free(p->cli.held);
    if (p->sv[1] >= 0)
        close(p->sv[1]);
    free(p->con.rx);
    free(p->cli.rx);
    p->con.s = p->cli.s = NULL;
    p->con.held = p->cli.held = NULL;
    p->con.rx = p->cli.rx = NULL;
    p->sv[0] = p->sv[1] = -1;
    p->accepting = false;
}

void tp_pair_free(struct tp_pair *p)
{
    tp_pair_end(p);
    cc_context_free(p->cctx);
    cc_context_free(p->sctx);
    p->cctx = p->sctx = NULL;
}

cc_context *tp_psk_context(int role, const char *psk)
{
    cc_context *c = cc_context_new(role, NULL, NULL);
    int r = !c                       ? CC_ERR_NOMEM
            : role == CC_ROLE_CLIENT ? cc_context_set_certificate(c, t_cert("client.pem"), t_cert("client.key"))
                                     : cc_context_set_ca_file(c, t_cert("ca.pem"));
    if (r != CC_OK || psk_register(c, psk) != CC_OK) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}
