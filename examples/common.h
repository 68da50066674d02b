/* common.h -- what cc-console and cc-client share: running jobs on a pool of
 * worker threads, JSON event output, context and option helpers, exit codes. */
#ifndef CC_EXAMPLES_COMMON_H
#define CC_EXAMPLES_COMMON_H

#include <carboncopy.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

/* Exit codes of both programs. */
enum {
    EX_OK = 0,
    EX_USAGE = 2,
    EX_CONNECT = 3,
    EX_TLS = 4,
    EX_LICENSE = 5,
    EX_AUTH = 6,
    EX_TIMEOUT = 7,
    EX_PROTOCOL = 8,
    EX_CONSENT = 9, /* the person at the client refused, or did not answer in time */
    EX_RUN = -1     /* not an exit code: the options are good, go on */
};
/* Maps a cc_error to the exit code above. */
int ex_exit_code(int err);

/* Jobs run on a fixed pool of worker threads, started as work arrives, at
 * most `workers` of them, never one per job: a stranger who connects a
 * thousand times must not cost a thousand threads. Jobs wait for a worker in
 * a bounded FIFO; a job that finds it full is refused (ex_jobs_start returns
 * false) rather than queued without end. A finished job comes back through a
 * pipe the event loop polls, tagged with its session's id so that a job
 * whose session is gone is freed instead of handed back. Everything but the
 * workers' own loop runs on the event loop's thread. */
typedef struct ex_job_msg {
    cc_job *job;
    unsigned long long id;
} ex_job_msg;
typedef struct ex_jobs {
    int fds[2];             /* finished jobs: the workers write, the loop reads */
    int out;                /* jobs taken and not yet read back: queued, running or finished */
    unsigned max_workers;   /* the pool's size */
    unsigned started, idle; /* workers running, and of those the ones waiting for a job */
    ex_job_msg *fifo;       /* jobs waiting for a worker: a ring of `cap` */
    size_t cap, head, len;
    pthread_t *threads;
    pthread_mutex_t mu; /* guards fifo, head, len, idle, stopping */
    pthread_cond_t more;
    bool stopping;
    /* what a worker does with a job: cc_job_run, unless the host set its own */
    void (*run)(void *user, cc_job *job);
    void *run_user;
} ex_jobs;
/* At most EX_MAX_WORKERS workers; the FIFO holds at most `queue_max` jobs.
 * Returns -1 (errno set) when the pipe or the tables cannot be had. */
#define EX_MAX_WORKERS 64
int ex_jobs_init(ex_jobs *q, unsigned workers, size_t queue_max);
/* Once drained: stops and joins the workers, closes the pipe. */
void ex_jobs_close(ex_jobs *q);
int ex_jobs_fd(const ex_jobs *q);
/* Queues the job for a worker. False when the FIFO is full (or no worker can
 * be started at all): the job is still the caller's, to fail and hand back. */
bool ex_jobs_start(ex_jobs *q, cc_job *job, unsigned long long session_id);
/* The session is gone: its jobs still waiting for a worker are freed unrun
 * (one already running finishes, and is freed when it comes back). */
void ex_jobs_cancel(ex_jobs *q, unsigned long long session_id);
/* Reads one finished job; returns false when none is ready. */
bool ex_jobs_next(ex_jobs *q, cc_job **job, unsigned long long *session_id);
/* The session a finished job belongs to, or NULL when it is gone. */
typedef cc_session *(*ex_owner_fn)(void *user, unsigned long long session_id);
/* Hands every finished job back to its session, on the loop's thread; frees
 * the jobs whose session is gone. */
void ex_jobs_deliver(ex_jobs *q, ex_owner_fn owner, void *user);
/* Once the sessions are freed: frees the jobs still queued, waits for the
 * running ones and frees them (a job must not outlive the process's last
 * look at it). */
void ex_jobs_drain(ex_jobs *q);

/* A host may answer some jobs itself (e.g. cc-client --license-file):
 * return true when the job was answered. */
typedef bool (*ex_answer_fn)(void *user, cc_job *job);

/* Steps the session and hands out its jobs (answering what `answer` can, and
 * failing with CC_ERR_AGAIN what the full FIFO refuses) until it waits for
 * I/O, a timer or a worker. Returns step's result. */
int ex_pump(ex_jobs *q, cc_session *s, unsigned long long id, ex_answer_fn answer, void *user);

/* The poll() events a cc_session_step() result asks for. */
short ex_poll_events(int want);

/* A new context of `role`, or NULL after printing "PROG: reason". */
cc_context *ex_context_new(const char *prog, int role);
/* Reports a failed cc_context_* call as "PROG: error: detail"; true if r < 0. */
bool ex_config_failed(const char *prog, const cc_context *ctx, int r);
/* In a function returning an exit code: a failed configuration call is
 * reported and returns `code`. */
#define EX_CHECK(prog, ctx, call, code)                                                                                \
    do {                                                                                                               \
        if (ex_config_failed((prog), (ctx), (call)))                                                                   \
            return (code);                                                                                             \
    } while (0)

/* JSON event lines on stdout, one object each, as both programs print them:
 * {"event":NAME, then "session":ID unless session is 0 (the console has one). */
void ex_json_begin(const char *event, unsigned long long session);
/* Closes the object: with a peer (cc-client's per-session events), first
 * "peer":ADDR:PORT and "ts", the UTC time to the millisecond, so that a log
 * of many sessions says who and when without a second source. */
void ex_json_end(const char *peer);
/* With with_errno (with_code for auth), a failure's "code" (the name) is
 * followed at the end by "errno" (the negative cc_error number), for scripts
 * that compare numbers; both tools pass true. `peer` as for ex_json_end
 * (NULL: none). */
/* The licence verdict with its figures (and code and message when denied). */
void ex_json_license(unsigned long long session, const cc_event *ev, bool with_errno, const char *peer);
/* The authentication result: mechanism, ok, identity or message (and the
 * code of a failure when with_code). */
void ex_json_auth(unsigned long long session, const cc_event *ev, bool with_code, const char *peer);
/* The end: "closed" with its reason, or "error" with code and message. */
void ex_json_closed(unsigned long long session, const cc_event *ev, bool with_errno, const char *peer);

/* Strings from outside -- a peer's CLOSE reason, identity or mechanism name,
 * a licence page's detail, an error detail quoting any of them -- reach the
 * output only through ex_escape, so that none can move the cursor, rewrite a
 * terminal, forge a log line or break a JSON line:
 *   EX_ESC_TEXT (human lines): printable ASCII and well-formed UTF-8 as they
 *     are; control bytes (ESC, BEL, CR, LF, ...), DEL and bytes that are
 *     not UTF-8 as \xNN, the backslash as \\ (so an escape cannot be forged
 *     either); C1 controls, bidirectional overrides and marks, and the line
 *     separators U+2028/9 as \uXXXX;
 *   EX_ESC_JSON (the inside of a JSON string): '"' and '\' escaped, control
 *     characters and the same code points as \uXXXX, each byte that is not
 *     UTF-8 as \ufffd (U+FFFD), so every line is valid JSON.
 * Writes at most cap - 1 bytes and a NUL into out (cap > 0); a string too
 * long is cut at a character and ends in "...". Returns out. */
enum ex_esc { EX_ESC_TEXT, EX_ESC_JSON };
char *ex_escape(char *out, size_t cap, const char *s, enum ex_esc mode);
/* For human lines: `s` escaped into buf (EX_SHOW_MAX bytes), NULL as "". */
#define EX_SHOW_MAX 1024
const char *ex_show(char buf[EX_SHOW_MAX], const char *s);
/* `s` as a JSON string, quotes included, escaped (whole, however long). */
void ex_json_string(FILE *f, const char *s);

/* Output helpers. */
double ex_now_ms(void);
/* Reads a whole small file (secrets: password, key); strips one trailing
 * newline. Returns a malloc'd NUL-terminated buffer or NULL (message printed). */
char *ex_read_secret(const char *path, size_t *len);
void ex_wipe_free(char *p, size_t len);
/* "host", "host:port", "[v6]:port" -> host (malloc'd) and port (EX_NO_PORT if none). */
#define EX_NO_PORT 65536u
bool ex_split_host_port(const char *in, char **host, unsigned *port);
/* Applies the generic options both programs accept to the context:
 * --timeout MS (handshake). Returns false on a bad value. */
bool ex_parse_uint(const char *s, unsigned long max, unsigned long *out);
/* An option taking milliseconds > 0 (at most a day); prints "PROG: --NAME
 * takes milliseconds > 0" and returns false when `arg` is not one. */
bool ex_ms_option(const char *prog, const char *name, const char *arg, unsigned long *out);

#endif
