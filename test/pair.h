/* pair.h -- shared plumbing for the C tests and the benchmarks: a console and a client session driven
 * side by side in one process (socketpair or loopback TCP, events, jobs, poll), a monotonic clock, the
 * test PKI and psk keys, and the KDC fixture. */
#ifndef CC_TEST_PAIR_H
#define CC_TEST_PAIR_H

#include <carboncopy.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- clock, shell, fixtures ---- */

uint64_t t_now_ms(void); /* CLOCK_MONOTONIC */
uint64_t t_now_us(void);

/* Runs the command made from fmt with system(); returns its exit status (-1 or 128 when it did not exit). */
int t_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Makes the test PKI (test/fixtures/certs.sh, idempotent) in t_tmpdir()/certs; 0 or -1. */
int t_make_certs(void);
/* Path of `name` in that directory (one of four buffers, reused in turn). */
const char *t_cert(const char *name);
/* The SHA-256 fingerprint of client.pem as cc_context_set_pin_sha256 takes it (64 hex digits), or NULL. */
const char *t_cert_pin(void);
/* A pre-shared key file for the example psk mechanism, t_tmpdir()/psk-NAME.key, holding the same key
 * as test/lib.sh's `t_psk NAME`; its path (one of four buffers), or NULL. */
const char *t_psk(const char *name);
/* A context of `role` for the psk example mechanism with the key file `psk`:
 * the client presents the test PKI's client certificate, the console trusts
 * its CA. NULL on any failure. */
cc_context *tp_psk_context(int role, const char *psk);

/* true when the file at path (its first 64 KiB) contains needle. */
bool t_file_has(const char *path, const char *needle);
/* Waits up to ms for the "listening" line of a cc-client --json started with
 * --listen 127.0.0.1:0 to appear in the file at path; 0 with its port, or -1. */
int t_listening_port(const char *path, unsigned *port, int ms);
/* A non-blocking TCP listener on 127.0.0.1, on a port the kernel picks (in *addr); the fd or -1. */
int t_listen(struct sockaddr_in *addr);

/* The KDC fixture test/fixtures/kdc.sh, and its directory t_tmpdir()/kdc. */
const char *t_kdc_script(void);
const char *t_kdc_dir(void);
/* Starts a KDC for `realm` owned by this process (the fixture stops it if we die), loads the
 * fixture's environment (KRB5_CONFIG, KDC_PID, ...) into ours and stops the KDC at exit; 0 or -1. */
int t_kdc_start(const char *realm);
/* Stops the KDC t_kdc_start started, waiting for it to go (SIGKILL if it lingers). */
void t_kdc_stop(void);

/* A KDC for realm SILENT.TEST that never answers: one loopback port, its UDP socket bound and never
 * read, its TCP socket listening and never accepting, named in t_kdc_dir()/silent.conf, which is
 * added to KRB5_CONFIG. t_silent_kdc_stop closes the sockets and puts KRB5_CONFIG back. */
struct t_silent_kdc {
    int udp, tcp;
    char old_config[700];
};
int t_silent_kdc_start(struct t_silent_kdc *k); /* 0 or -1 */
void t_silent_kdc_stop(struct t_silent_kdc *k);

/* A host transport over a non-blocking socket; user points at the fd. */
long t_fd_send(void *user, const uint8_t *data, size_t len);
long t_fd_recv(void *user, uint8_t *buf, size_t len);

/* ---- one session as a test drives it ---- */

struct tp_side;

/* Answers one job taken from sd's session; returns true to hand it back now, false when
 * the test keeps it (in sd->held, say). */
typedef bool (*tp_job_fn)(struct tp_side *sd, cc_job *job);

struct tp_side {
    cc_session *s;
    int result;                     /* the last cc_session_step result */
    bool ended;                     /* result <= 0, or no session to step */
    bool one_step;                  /* one step per tp_step (else up to four while jobs come back) */
    tp_job_fn answer;               /* NULL: licence jobs get the figures below, others are run */
    uint32_t lic_count, lic_in_use; /* figures for licence jobs */
    int lic_fail;                   /* or fail licence jobs with this code */
    bool hold_jobs;                 /* leave jobs queued (job lifetime tests) */
    int keep_type;                  /* tp_keep_job keeps the first job of this type (CC_JOB_*) */
    cc_job *held;                   /* a job the test keeps out (tp_pair_free frees it) */
    int *poll_fd;                   /* the host transport's socket to wait on when the session has no fd */
    uint64_t max_step_us;           /* the slowest cc_session_step so far */
    bool echo;                      /* send received data back */
    bool drop_rx;                   /* count received data in rx_len but keep none (benchmarks) */
    bool send_blocked;              /* the host waits for CC_EVENT_SEND_READY, which clears it */
    /* answer resolve jobs with this address instead of running the resolver */
    const struct sockaddr_in *resolve_to;
    /* what tp_on_event saw */
    int license_events, license_granted, license_code;
    uint32_t license_count, license_in_use;
    char license_text[600];
    char identity[256];
    int closed_code;
    char closed_text[600];
    unsigned char *rx; /* all data received (malloc'd) */
    size_t rx_len;
    int pongs, send_ready;
};

/* The event callback; user is the struct tp_side. */
void tp_on_event(void *user, cc_session *s, const cc_event *ev);

/* An answer that keeps the first job of sd->keep_type in sd->held and hands back any other
 * unanswered (none is expected). */
bool tp_keep_job(struct tp_side *sd, cc_job *job);

/* One cc_session_step (timed) unless the side has ended or has no session yet; returns the result. */
int tp_step_once(struct tp_side *sd);
/* Steps the session and answers the jobs it asks for (see one_step). */
void tp_step(struct tp_side *sd);

typedef bool (*tp_done_fn)(struct tp_side *a, struct tp_side *b);
/* Waits up to ms for what the sides' last steps asked for (ended sides, sides without a session and
 * a NULL b are skipped). */
void tp_poll(struct tp_side *a, struct tp_side *b, int ms);
/* Steps both sides (a first) until done(a, b) or ms pass; returns done(a, b). */
bool tp_drive(struct tp_side *a, struct tp_side *b, tp_done_fn done, int ms);

bool tp_both_established(struct tp_side *a, struct tp_side *b); /* each established or ended */
bool tp_both_ended(struct tp_side *a, struct tp_side *b);

/* ---- a console and a client over a socketpair or loopback TCP ---- */

struct tp_pair {
    cc_context *cctx, *sctx; /* the console's and the client's; tp_pair_free frees them */
    struct tp_side con, cli;
    int sv[2]; /* socketpair: the client's session owns sv[0]; sv[1] is the console's host transport */
    /* TCP (tp_pair_connect): the caller's listener, and whether the console's connection is still
     * to be accepted there (the client's session starts then) */
    int lfd;
    struct sockaddr_in addr;
    bool accepting;
};

/* Opens both sessions with p->cctx and p->sctx (the caller makes them): the client on its end of a
 * new socketpair, the console through t_fd_send/t_fd_recv on the other; both report to tp_on_event;
 * the console gets the credentials when user or password is set. Returns 0 or -1. */
int tp_pair_open(struct tp_pair *p, const char *user, const char *password);
/* The same over TCP, the way hosts run: the console's session connects to the caller's listener lfd
 * at addr (t_listen), its resolve job answered with addr; the client's session starts on the
 * connection tp_pair_step accepts. p must stay where it is while the sessions run. Returns 0 or -1. */
int tp_pair_connect(struct tp_pair *p, int lfd, const struct sockaddr_in *addr, const char *user, const char *password);
/* Steps the console, accepts its connection if still due (TCP), steps the client. */
void tp_pair_step(struct tp_pair *p);
/* Waits up to ms for what the last steps asked for, or for the connection still to accept. */
void tp_pair_poll(struct tp_pair *p, int ms);
/* Frees the sessions, the jobs held and the data received, but keeps the contexts, so the pair can
 * open again (reset the sides first); the rest of what the sides saw stays readable. */
void tp_pair_end(struct tp_pair *p);
/* tp_pair_end, and the contexts (the sides stay readable). */
void tp_pair_free(struct tp_pair *p);

#endif
