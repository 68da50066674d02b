/* common.c -- shared plumbing of the example programs (see common.h): a worker
 * pool for jobs, the pump around cc_session_step, JSON events, small helpers. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
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
    if (e == CC_ERR_CONSENT_REFUSED || e == CC_ERR_CONSENT_TIMEOUT)
        return EX_CONSENT;
    return EX_PROTOCOL;
}

int ex_jobs_init(ex_jobs *q, unsigned workers, size_t queue_max)
{
    *q = (ex_jobs){.max_workers = workers < 1                ? 1
                                  : workers > EX_MAX_WORKERS ? EX_MAX_WORKERS
                                                             : workers,
                   .cap = queue_max < 1 ? 1 : queue_max};
    q->fifo = calloc(q->cap, sizeof *q->fifo);
    q->threads = calloc(q->max_workers, sizeof *q->threads);
    if (!q->fifo || !q->threads) {
        free(q->fifo);
        free(q->threads);
        errno = ENOMEM;
        return -1;
    }
    /* The loop's end never blocks; a worker's write may, until the loop reads
     * (it always does: the pipe is in every poll). */
    if (pipe2(q->fds, O_CLOEXEC) < 0 || fcntl(q->fds[0], F_SETFL, O_NONBLOCK) < 0) {
        free(q->fifo);
        free(q->threads);
        return -1;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->more, NULL);
    return 0;
}

void ex_jobs_close(ex_jobs *q)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->more);
    pthread_mutex_unlock(&q->mu);
    for (unsigned i = 0; i < q->started; i++)
        pthread_join(q->threads[i], NULL);
    pthread_cond_destroy(&q->more);
    pthread_mutex_destroy(&q->mu);
    close(q->fds[0]);
    close(q->fds[1]);
    free(q->fifo);
    free(q->threads);
}

int ex_jobs_fd(const ex_jobs *q)
{
    return q->fds[0];
}

/* A worker: takes jobs from the FIFO until ex_jobs_close. */
static void *worker(void *arg)
{
    ex_jobs *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        q->idle++;
        while (q->len == 0 && !q->stopping)
            pthread_cond_wait(&q->more, &q->mu);
        q->idle--;
        if (q->len == 0)
            break; /* stopping, and nothing left */
        ex_job_msg m = q->fifo[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        pthread_mutex_unlock(&q->mu);
        if (q->run) /* e.g. cc-client --consent-command: bounded by the consent deadline */
            q->run(q->run_user, m.job);
        else
            cc_job_run(m.job); /* blocks, bounded by the job's own timeouts */
        const char *p = (const char *)&m;
        size_t left = sizeof m; /* < PIPE_BUF: written whole */
        while (left > 0) {
            ssize_t r = write(q->fds[1], p, left);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                break; /* cannot happen while the loop holds the read end */
            p += r;
            left -= (size_t)r;
        }
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    /* Free OpenSSL's per-thread state (an HTTPS licence fetch leaves some)
     * before the main thread may exit. */
    OPENSSL_thread_stop();
    return NULL;
}

bool ex_jobs_start(ex_jobs *q, cc_job *job, unsigned long long id)
{
    pthread_mutex_lock(&q->mu);
    if (q->len == q->cap) {
        pthread_mutex_unlock(&q->mu);
        return false;
    }
    q->fifo[(q->head + q->len) % q->cap] = (ex_job_msg){job, id};
    q->len++;
    /* Another worker only when the queued jobs outnumber the idle ones: a
     * signalled worker may not have woken yet, and counts as idle. */
    if (q->len > q->idle && q->started < q->max_workers &&
        pthread_create(&q->threads[q->started], NULL, worker, q) == 0)
        q->started++;
    bool ok = q->started > 0;
    if (ok)
        pthread_cond_signal(&q->more);
    else
        q->len--; /* no worker at all: the job is the caller's again */
    pthread_mutex_unlock(&q->mu);
    if (ok)
        q->out++;
    return ok;
}

/* Removes the queued jobs of session `id` (every one when `all`) and frees them. */
static void unqueue(ex_jobs *q, unsigned long long id, bool all)
{
    pthread_mutex_lock(&q->mu);
    size_t kept = 0;
    for (size_t i = 0; i < q->len; i++) {
        ex_job_msg m = q->fifo[(q->head + i) % q->cap];
        if (all || m.id == id) {
            cc_job_free(m.job);
            q->out--;
        } else {
            q->fifo[(q->head + kept++) % q->cap] = m;
        }
    }
    q->len = kept;
    pthread_mutex_unlock(&q->mu);
}

void ex_jobs_cancel(ex_jobs *q, unsigned long long id)
{
    unqueue(q, id, false);
}

bool ex_jobs_next(ex_jobs *q, cc_job **job, unsigned long long *id)
{
    ex_job_msg m;
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
    unqueue(q, 0, true);
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
            } else if (!ex_jobs_start(q, j, id)) {
                cc_job_fail(j, CC_ERR_AGAIN, "the host's job queue is full: no worker will take this job");
                cc_session_job_done(s, j);
                answered = true;
            }
        }
        if (!answered)
            return cc_session_step(s);
    }
}

/* The length (1 to 4) of the well-formed UTF-8 character at p, with its code
 * point in *cp; 0 when p does not start one (overlong forms, surrogates and
 * code points past U+10FFFF are not UTF-8). The NUL ends any sequence. */
static int utf8_char(const unsigned char *p, uint32_t *cp)
{
    unsigned char c = p[0];
    int n;
    uint32_t v, lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    *cp = v;
    return n;
}

/* Code points that are well-formed but change how a line reads: C1 controls
 * (U+009B is a CSI to some terminals), bidirectional overrides and isolates,
 * the line and paragraph separators. */
static bool deceptive(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F || cp == 0x061C;
}

char *ex_escape(char *out, size_t cap, const char *s, enum ex_esc mode)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t o = 0, mark = 0; /* mark: the end of the last piece that leaves room for "..." */
    bool cut = false;
    while (*p) {
        char piece[16];
        uint32_t cp = 0;
        int n = utf8_char(p, &cp);
        int len;
        if (n == 0) /* not UTF-8: one byte at a time */
            len = mode == EX_ESC_JSON ? snprintf(piece, sizeof piece, "\\ufffd")
                                      : snprintf(piece, sizeof piece, "\\x%02x", *p);
        else if (cp == '\\' || (mode == EX_ESC_JSON && cp == '"'))
            len = snprintf(piece, sizeof piece, "\\%c", (char)cp);
        else if (cp < 0x20 || cp == 0x7F)
            len = mode == EX_ESC_JSON ? snprintf(piece, sizeof piece, "\\u%04x", (unsigned)cp)
                                      : snprintf(piece, sizeof piece, "\\x%02x", (unsigned)cp);
        else if (deceptive(cp))
            len = snprintf(piece, sizeof piece, "\\u%04x", (unsigned)cp);
        else
            memcpy(piece, p, (size_t)(len = n));
        if (o + (size_t)len > cap - 1) {
            cut = true;
            break;
        }
        memcpy(out + o, piece, (size_t)len);
        o += (size_t)len;
        if (o + 3 <= cap - 1)
            mark = o;
        p += n ? n : 1;
    }
    if (cut) {
        o = mark;
        if (o + 3 <= cap - 1) {
            memcpy(out + o, "...", 3);
            o += 3;
        }
    }
    out[o] = 0;
    return out;
}

const char *ex_show(char buf[EX_SHOW_MAX], const char *s)
{
    return ex_escape(buf, EX_SHOW_MAX, s, EX_ESC_TEXT);
}

void ex_json_string(FILE *f, const char *s)
{
    char small[512];
    size_t need = 6 * strlen(s ? s : "") + 1; /* each byte at most "\u00XX" */
    char *buf = need <= sizeof small ? small : malloc(need);
    if (!buf) /* out of memory: cut short, still valid */
        ex_escape(small, sizeof small, s, EX_ESC_JSON);
    else
        ex_escape(buf, need, s, EX_ESC_JSON);
    fprintf(f, "\"%s\"", buf ? buf : small);
    if (buf != small)
        free(buf);
}

void ex_json_begin(const char *event, unsigned long long session)
{
    printf("{\"event\":\"%s\"", event);
    if (session)
        printf(",\"session\":%llu", session);
}

void ex_json_end(const char *peer)
{
    if (peer) {
        struct timespec ts;
        struct tm tm;
        char when[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        printf(",\"peer\":");
        ex_json_string(stdout, peer);
        printf(",\"ts\":\"%s.%03ldZ\"", when, ts.tv_nsec / 1000000);
    }
    printf("}\n");
}

void ex_json_license(unsigned long long session, const cc_event *ev, bool with_errno, const char *peer)
{
    ex_json_begin("license", session);
    printf(",\"count\":%u,\"in_use\":%u,\"granted\":%s", ev->license_count, ev->license_in_use,
           ev->granted ? "true" : "false");
    if (!ev->granted) {
        printf(",\"code\":\"%s\",\"message\":", cc_err_name(ev->code));
        ex_json_string(stdout, ev->text);
        if (with_errno)
            printf(",\"errno\":%d", ev->code);
    }
    ex_json_end(peer);
}

void ex_json_auth(unsigned long long session, const cc_event *ev, bool with_code, const char *peer)
{
    ex_json_begin("auth", session);
    printf(",\"mechanism\":");
    ex_json_string(stdout, ev->mechanism);
    printf(",\"ok\":%s,\"%s\":", ev->code ? "false" : "true", ev->code ? "message" : "identity");
    ex_json_string(stdout, ev->text);
    if (with_code && ev->code)
        printf(",\"code\":\"%s\",\"errno\":%d", cc_err_name(ev->code), ev->code);
    ex_json_end(peer);
}

void ex_json_closed(unsigned long long session, const cc_event *ev, bool with_errno, const char *peer)
{
    ex_json_begin(ev->code ? "error" : "closed", session);
    if (ev->code)
        printf(",\"code\":\"%s\",\"message\":", cc_err_name(ev->code));
    else
        printf(",\"reason\":");
    ex_json_string(stdout, ev->text);
    if (ev->code && with_errno)
        printf(",\"errno\":%d", ev->code);
    ex_json_end(peer);
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
    char text[EX_SHOW_MAX];
    fprintf(stderr, "%s: %s: %s\n", prog, cc_strerror(r), ex_show(text, cc_context_errmsg(ctx)));
    return true;
}
