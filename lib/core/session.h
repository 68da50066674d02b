/* session.h -- a session's fields, shared by the state machine (session.c)
 * and the session handle's set-up, jobs and queries (handle.c). */
#ifndef CC_SESSION_H
#define CC_SESSION_H

#include "../transport/transport.h"
#include "core.h"
#include "frame.h"
#include "pipe.h"
#include "resume.h"

/* How far the consent stage has got (client, cc_context_set_consent). */
enum { CONSENT_NONE, CONSENT_ASKING /* the job is out, CONSENT_WAIT sent */, CONSENT_DECIDED };

#define CC__ADDRESS_MAX 64 /* an IPv6 address as text, NUL included */

/* How far the licence verdict has got. */
enum { LIC_NONE, LIC_KNOWN /* client: decided, not yet told */, LIC_TOLD /* the LICENSE frame went out or came in */ };

/* The state says where the session is; the fields below hold only what the
 * state does not: what has been heard and decided, which advance() turns
 * into the next state. */
struct cc_session {
    cc_context *ctx;
    int role;
    int state;
    int error; /* set by fail(): advance() then ends the session */
    char errmsg[CC__DETAIL_MAX];
    cc_event_fn ev_fn;
    void *ev_user;
    void *user_data;

    /* the way to the peer */
    char *peer_name;     /* console: the name connected to */
    cc__connector *conn; /* console: the resolved addresses, tried in turn (lib/transport/connect.c) */
    cc__pipe *pipe;      /* preamble, TLS and frames (pipe.c) */
    cc__watch watch;     /* the sockets the host was told to watch (notify.c) */
    cc_timer_fn timer_fn;
    void *timer_user;
    uint64_t timer_told; /* the deadline the timer callback last reported; 0 none */

    /* jobs: queued (not taken), out (taken), back (returned, not processed) */
    cc_job *queued, *back;
    unsigned jobs_out;

    /* the handshake */
    uint8_t cb[CC__BINDING_LEN]; /* the TLS channel binding */
    int license_stage;
    cc__license_verdict license;
    char (*offered)[CC__MECH_MAX + 1]; /* the peer's HELLO: n_offered names, freed once established */
    size_t n_offered;                  /* 0 until it arrived */
    cc_auth *auth;
    bool auth_job_out; /* the mechanism waits for its job */
    bool auth_ok;      /* the client sent AUTH_RESULT 0, or the console accepted it */
    bool result_due;   /* client: the console is in; AUTH_RESULT waits for a granted licence */
    bool mutual;       /* console: the mechanism proved the client (cc_auth_set_mutual) */
    bool hello_sent;   /* console: its HELLO is out (it waits for the guessed mechanism's first token) */
    bool guessed;      /* the console's HELLO announced its first mechanism's token (CC__CAP_GUESS) */
    bool drop_guess;   /* client: the next AUTH_TOKEN is that token, for a mechanism not chosen */
    int guess_error;   /* console: the guessed mechanism's first step failed with this (0: it did not) */
    char guess_mech[CC__MECH_MAX + 1];
    char *guess_detail;         /* why the guessed mechanism had no first token (allocated then) */
    cc__source source;          /* client: the console's address, for the backoff after failed proofs */
    uint64_t hold_until;        /* client: served only from then on (doc/SECURITY.md, online guessing) */
    cc__resume rs;              /* the session id and reconnect tickets (resume.c) */
    int consent;                /* client: CONSENT_* */
    uint64_t consent_deadline;  /* client: while CONSENT_ASKING (the handshake deadline is stopped) */
    bool consent_wait;          /* console: the client said it waits for its user (CONSENT_WAIT) */
    uint32_t consent_client_ms; /* console: the wait that CONSENT_WAIT declared */

    /* console credentials, wiped when authentication ends */
    char *cred_user, *cred_domain, *cred_password;

    /* clocks: every deadline is computed from these by next_deadline() */
    uint64_t handshake_deadline; /* 0 until the host started the connection */
    uint64_t last_rx, ping_sent, close_deadline;
    bool ping_outstanding;
    bool close_lingering; /* our bytes are out (or the peer is done): close_deadline is the linger's */

    /* what the host asked for */
    bool read_paused;
    int close_code;
    char *close_reason; /* the orderly close's reason (allocated at the close; NULL: none) */
};

/* session.c: takes the session as far as it can go now (the one place the state changes) */
void cc__session_advance(cc_session *s);
/* session.c: the CC_WANT_* bits a step would return now (a running session) */
int cc__session_wants(cc_session *s);
/* session.c: when the host should step the session next (now when jobs came
 * back), 0 for never */
uint64_t cc__session_deadline(const cc_session *s, uint64_t now);

/* notify.c: tells the host's socket and timer callbacks what changed; called
 * at the end of every public call that can change what the session waits for. */
void cc__session_notify(cc_session *s);
/* Queues a WINDOW of `increment` on `channel` (before queued data). */
int cc__session_grant(cc_session *s, uint16_t channel, uint32_t increment);
/* notify.c: from cc_session_free, after its sockets are closed */
void cc__session_notify_gone(cc_session *s);

/* consent.c: the CC_JOB_CONSENT job, and the verdict of one that came back:
 * CC_OK (let in) or CC_ERR_CONSENT_REFUSED, with why and whether nobody was there. */
cc_job *cc__consent_job_new(const cc_context *ctx, const char *identity, const char *mechanism, const char *address,
                            uint32_t timeout_ms);
int cc__consent_verdict(const cc_job *job, int mode, bool *unattended, char *why, size_t n);
/* The source address as text ("" when unknown). */
void cc__source_str(const cc__source *src, char *buf, size_t n);

/* handle.c */
void cc__session_queue_job(cc_session *s, cc_job *j);
void cc__session_wipe_credentials(cc_session *s);

#endif /* CC_SESSION_H */
