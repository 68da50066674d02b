/* common.c -- shared plumbing of the example programs (see common.h): worker
 * threads for jobs, the pump around cc_session_step, JSON events, small helpers. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ex_exit_code(int e)
{
    if (e >= 0)
        return EX_OK;
    if (e == CC_ERR_RESOLVE || e == CC_ERR_CONNECT || e == CC_ERR_IO)
        return EX_CONNECT;
    if (e <= CC_ERR_TLS && e >= CC_ERR_TLS_CONFIG)
        return EX_TLS;
    if (e <= CC_ERR_LICENSE_DENIED && e >= CC_ERR_LICENSE_CONFIG)
        return EX_LICENSE;
    if (e <= CC_ERR_AUTH && e >= CC_ERR_AUTH_UNAVAILABLE)
        return EX_AUTH;
    if (e == CC_ERR_TIMEOUT || e == CC_ERR_IDLE_TIMEOUT)
        return EX_TIMEOUT;
    return EX_PROTOCOL;
}

struct msg {
    cc_job *job;
    unsigned long long id;
};

struct work {
    ex_jobs *q;
    struct msg m;
};

int ex_jobs_init(ex_jobs *q)
{
    q->out = 0;
    if (pipe2(q->fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

void ex_jobs_close(ex_jobs *q)
{
    close(q->fds[0]);
    close(q->fds[1]);
}

int ex_jobs_fd(const ex_jobs *q)
{
    return q->fds[0];
}

static void *worker(void *arg)
{
    struct work *w = arg;
    struct msg m = w->m;
    int fd = w->q->fds[1];
    free(w);
    cc_job_run(m.job); /* blocks, bounded by the job's own timeouts */
    /* This detached thread ends now; free OpenSSL's per-thread state (an
     * HTTPS licence fetch leaves some) before the main thread may exit. */
    OPENSSL_thread_stop();
    ssize_t r;
    do
        r = write(fd, &m, sizeof m); /* < PIPE_BUF: atomic */
    while (r < 0 && errno == EINTR);
    return NULL;
}

void ex_jobs_start(ex_jobs *q, cc_job *job, unsigned long long id)
{
    struct work *w = malloc(sizeof *w);
    pthread_t t;
    pthread_attr_t at;
    if (!w) {
        cc_job_fail(job, CC_ERR_NOMEM, "cannot start a worker: out of memory");
        struct msg m = {job, id};
        if (write(q->fds[1], &m, sizeof m) < 0)
            cc_job_free(job);
        else
            q->out++;
        return;
    }
    w->q = q;
    w->m.job = job;
    w->m.id = id;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, worker, w) != 0) {
        cc_job_fail(job, CC_ERR_NOMEM, "cannot start a worker thread");
        free(w);
        struct msg m = {job, id};
        if (write(q->fds[1], &m, sizeof m) < 0)
            cc_job_free(job);
        else
            q->out++;
    } else {
        q->out++;
    }
    pthread_attr_destroy(&at);
}

bool ex_jobs_next(ex_jobs *q, cc_job **job, unsigned long long *id)
{
    struct msg m;
    ssize_t r = read(q->fds[0], &m, sizeof m);
    if (r != (ssize_t)sizeof m)
        return false;
    q->out--;
    *job = m.job;
    *id = m.id;
    return true;
}

void ex_jobs_deliver(ex_jobs *q, ex_owner_fn owner, void *user)
{
    cc_job *j;
    unsigned long long id;
    while (ex_jobs_next(q, &j, &id)) {
        cc_session *s = owner(user, id);
        if (s)
            cc_session_job_done(s, j);
        else
            cc_job_free(j);
    }
}

void ex_jobs_drain(ex_jobs *q)
{
    while (q->out > 0) {
        struct pollfd p = {ex_jobs_fd(q), POLLIN, 0};
        poll(&p, 1, 1000);
        cc_job *j;
        unsigned long long id;
        while (ex_jobs_next(q, &j, &id))
            cc_job_free(j);
    }
}

int ex_pump(ex_jobs *q, cc_session *s, unsigned long long id, ex_answer_fn answer, void *user)
{
    for (;;) {
        int r = cc_session_step(s);
        if (r <= 0 || !(r & CC_WANT_JOB))
            return r;
        bool answered = false;
        cc_job *j;
        while ((j = cc_session_take_job(s)) != NULL) {
            if (answer && answer(user, j)) {
                cc_session_job_done(s, j);
                answered = true;
            } else {
                ex_jobs_start(q, j, id);
            }
        }
        if (!answered)
            return cc_session_step(s);
    }
}

void ex_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void ex_json_begin(const char *event, unsigned long long session)
{
    printf("{\"event\":\"%s\"", event);
    if (session)
        printf(",\"session\":%llu", session);
}

void ex_json_license(unsigned long long session, const cc_event *ev)
{
    ex_json_begin("license", session);
    printf(",\"count\":%u,\"in_use\":%u,\"granted\":%s", ev->license_count, ev->license_in_use,
           ev->granted ? "true" : "false");
    if (!ev->granted) {
        printf(",\"code\":\"%s\",\"message\":", cc_err_name(ev->code));
        ex_json_string(stdout, ev->text);
    }
    printf("}\n");
}

void ex_json_auth(unsigned long long session, const cc_event *ev, bool with_code)
{
    ex_json_begin("auth", session);
    printf(",\"mechanism\":");
    ex_json_string(stdout, ev->mechanism);
    printf(",\"ok\":%s,\"%s\":", ev->code ? "false" : "true", ev->code ? "message" : "identity");
    ex_json_string(stdout, ev->text);
    if (with_code && ev->code)
        printf(",\"code\":\"%s\"", cc_err_name(ev->code));
    printf("}\n");
}

void ex_json_closed(unsigned long long session, const cc_event *ev)
{
    ex_json_begin(ev->code ? "error" : "closed", session);
    if (ev->code)
        printf(",\"code\":\"%s\",\"message\":", cc_err_name(ev->code));
    else
        printf(",\"reason\":");
    ex_json_string(stdout, ev->text);
    printf("}\n");
}

double ex_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

char *ex_read_secret(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, 4097);
    size_t n = buf ? fread(buf, 1, 4097, f) : 0;
    fclose(f);
    if (!buf || n > 4096) {
        fprintf(stderr, "%s: too large for a secret (more than 4096 bytes)\n", path);
        ex_wipe_free(buf, 4097);
        return NULL;
    }
    if (n && buf[n - 1] == '\n')
        buf[--n] = 0;
    if (n && buf[n - 1] == '\r')
        buf[--n] = 0;
    if (len)
        *len = n;
    return buf;
}

void ex_wipe_free(char *p, size_t len)
{
    if (p)
        OPENSSL_cleanse(p, len);
    free(p);
}

bool ex_split_host_port(const char *in, char **host, unsigned *port)
{
    const char *colon;
    size_t hl;
    *port = EX_NO_PORT;
    if (in[0] == '[') {
        const char *end = strchr(in, ']');
        if (!end)
            return false;
        hl = (size_t)(end - in - 1);
        in++;
        colon = end[1] == ':' ? end + 1 : NULL;
        if (!colon && end[1])
            return false;
    } else {
        colon = strrchr(in, ':');
        if (colon && strchr(in, ':') != colon)
            colon = NULL; /* a bare IPv6 address */
        hl = colon ? (size_t)(colon - in) : strlen(in);
    }
    if (colon) {
        unsigned long p;
        if (!ex_parse_uint(colon + 1, 65535, &p))
            return false;
        *port = (unsigned)p;
    }
    if (hl == 0)
        return false;
    *host = strndup(in, hl);
    return *host != NULL;
}

bool ex_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return false;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

bool ex_ms_option(const char *prog, const char *name, const char *arg, unsigned long *out)
{
    if (ex_parse_uint(arg, 86400000, out) && *out > 0)
        return true;
    fprintf(stderr, "%s: --%s takes milliseconds > 0\n", prog, name);
    return false;
}

short ex_poll_events(int want)
{
    return (short)((want & CC_WANT_READ ? POLLIN : 0) | (want & CC_WANT_WRITE ? POLLOUT : 0));
}

cc_context *ex_context_new(const char *prog, int role)
{
    int err;
    cc_context *ctx = cc_context_new(role, NULL, &err);
    if (!ctx)
        fprintf(stderr, "%s: %s\n", prog, cc_strerror(err));
    return ctx;
}

bool ex_config_failed(const char *prog, const cc_context *ctx, int r)
{
    if (r >= 0)
        return false;
    fprintf(stderr, "%s: %s: %s\n", prog, cc_strerror(r), cc_context_errmsg(ctx));
    return true;
}
