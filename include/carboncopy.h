/* carboncopy.h -- the whole public API of libcarboncopy.
 * Read it top to bottom: versions, errors, contexts, sessions, jobs, authenticators. */
#ifndef CARBONCOPY_H
#define CARBONCOPY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Overview
 *
 * A console (the technician's side) connects to a client (the managed
 * machine) on TCP port 1680. The client checks its licence with the
 * management server, authenticates the console user, and from then on data
 * flows both ways over that one TLS connection.
 *
 * The library never blocks and never creates threads. cc_session_step()
 * advances a session as far as it can and returns what it now waits for
 * (CC_WANT_* bits). Work that could block (name resolution, the licence
 * HTTP fetch, KDC traffic) is handed to the host as a cc_job: the host runs
 * it with cc_job_run() on a thread of its choosing, or answers it itself,
 * and hands it back with cc_session_job_done().
 *
 * Threading: a cc_context is read-only once a session uses it and may be
 * shared by sessions on any threads. A cc_session is used by one thread at a
 * time. cc_job_run() may be called on any thread.
 *
 * Errors: functions return 0 (CC_OK) or a positive value on success and a
 * negative cc_error on failure. cc_strerror() names it in a sentence and
 * cc_session_errmsg() gives the detail of a session's last error.
 * ---------------------------------------------------------------------- */

/* --- Version ------------------------------------------------------------ */

#define CC_VERSION_MAJOR 1
#define CC_VERSION_MINOR 0
#define CC_VERSION_PATCH 0
/* 0xMMmmpp: compare with cc_version() to detect a header/library mismatch. */
#define CC_VERSION_NUM    ((CC_VERSION_MAJOR << 16) | (CC_VERSION_MINOR << 8) | CC_VERSION_PATCH)
#define CC_VERSION_STRING "1.0.0"

/* A socket as the host's poller knows it: a file descriptor on POSIX, and
 * wide enough for a Windows SOCKET. CC_SOCKET_INVALID is none. */
typedef int64_t cc_socket;
#define CC_SOCKET_INVALID ((cc_socket)-1)

/* The TCP port a client listens on unless told otherwise. */
#define CC_DEFAULT_PORT 1680

/* The version of the library actually linked, as CC_VERSION_NUM. */
uint32_t cc_version(void);
/* The same as a string, e.g. "1.0.0". Never NULL, never freed. */
const char *cc_version_string(void);

/* --- Errors ------------------------------------------------------------- */

typedef enum cc_error {
    CC_OK = 0,

    /* usage and resources */
    CC_ERR_NOMEM = -1,     /* an allocation failed */
    CC_ERR_INVALID = -2,   /* an argument is invalid (NULL, out of range, too long) */
    CC_ERR_STATE = -3,     /* not allowed in the session's current state */
    CC_ERR_AGAIN = -4,     /* a buffer or table is full (cc_session_send: retry after CC_EVENT_SEND_READY) */
    CC_ERR_CONFIG = -5,    /* the context's configuration is incomplete or inconsistent */
    CC_ERR_INTERNAL = -6,  /* a bug in libcarboncopy; please report it */
    CC_ERR_CANCELLED = -7, /* the job or session was cancelled by the host */

    /* transport */
    CC_ERR_RESOLVE = -10,      /* the name could not be resolved */
    CC_ERR_CONNECT = -11,      /* no address of the name accepted a connection */
    CC_ERR_IO = -12,           /* the transport failed (socket error, host callback error) */
    CC_ERR_CLOSED = -13,       /* the peer closed the connection before the session ended */
    CC_ERR_TIMEOUT = -14,      /* the handshake deadline passed */
    CC_ERR_IDLE_TIMEOUT = -15, /* nothing was heard from the peer within the idle deadline */

    /* wire protocol */
    CC_ERR_PROTOCOL = -20,        /* the peer broke the protocol (unexpected frame, bad field) */
    CC_ERR_BAD_MAGIC = -21,       /* the peer is not speaking the Carbon Copy protocol */
    CC_ERR_BAD_VERSION = -22,     /* no protocol version both sides support */
    CC_ERR_FRAME_TOO_LARGE = -23, /* a frame is longer than the configured limit */
    CC_ERR_BAD_FRAME = -24,       /* unknown frame type or malformed frame */
    CC_ERR_PEER_ERROR = -25,      /* the peer ended the session with an error of its own */

    /* TLS */
    CC_ERR_TLS = -30,            /* the TLS handshake or a TLS record failed */
    CC_ERR_CERT_UNTRUSTED = -31, /* the client's certificate does not chain to the trusted CA */
    CC_ERR_CERT_MISMATCH = -32,  /* the certificate's name or pinned fingerprint does not match */
    CC_ERR_CERT_REJECTED = -33,  /* the host's verify callback rejected the certificate */
    CC_ERR_TLS_CONFIG = -34,     /* certificate, key or CA file cannot be loaded */

    /* licence */
    CC_ERR_LICENSE_DENIED = -40,      /* no licence free: licences in use >= licence count */
    CC_ERR_LICENSE_EXPIRED = -41,     /* the licence's expiry date has passed */
    CC_ERR_LICENSE_UNREACHABLE = -42, /* the management server could not be reached */
    CC_ERR_LICENSE_TIMEOUT = -43,     /* the licence fetch took longer than its timeout */
    CC_ERR_LICENSE_HTTP = -44,        /* the licence page answered with a non-2xx status */
    CC_ERR_LICENSE_PARSE = -45,       /* the licence page is not well-formed or a figure is invalid */
    CC_ERR_LICENSE_MISSING = -46,     /* the licence page lacks the licence count or in-use figure */
    CC_ERR_LICENSE_TOO_LARGE = -47,   /* the licence page is larger than the configured limit */
    CC_ERR_LICENSE_REDIRECT = -48,    /* too many redirects, or a redirect to a forbidden scheme */
    CC_ERR_LICENSE_TLS = -49,         /* the management server's HTTPS certificate failed */
    CC_ERR_LICENSE_CONFIG = -50,      /* no licence source configured (URL or server name) */

    /* authentication */
    CC_ERR_AUTH = -60,                 /* authentication failed (see the detail) */
    CC_ERR_AUTH_NO_MECHANISM = -61,    /* no authentication mechanism both sides support */
    CC_ERR_AUTH_BAD_CREDENTIALS = -62, /* wrong password or proof */
    CC_ERR_AUTH_UNKNOWN_USER = -63,    /* the account does not exist */
    CC_ERR_AUTH_DISABLED = -64,        /* the account is disabled, locked or revoked */
    CC_ERR_AUTH_REPLAY = -65,          /* a token was replayed */
    CC_ERR_AUTH_CHANNEL_BINDING = -66, /* the token is not bound to this TLS connection */
    CC_ERR_AUTH_TOKEN = -67,           /* a token is malformed, truncated or too large */
    CC_ERR_AUTH_POLICY = -68,          /* the host's policy refused the authenticated account */
    CC_ERR_AUTH_NO_CREDENTIALS = -69,  /* the console has no credentials for the mechanism */
    CC_ERR_AUTH_EXPIRED = -70,         /* the credentials have expired */
    CC_ERR_AUTH_KDC_UNREACHABLE = -71, /* the KDC / domain controller could not be reached */
    CC_ERR_AUTH_CLOCK_SKEW = -72,      /* the clocks differ too much, or a timestamp is outside the window */
    CC_ERR_AUTH_KEYTAB = -73,          /* the service key is missing from the keytab or has the wrong version */
    CC_ERR_AUTH_MUTUAL = -74,          /* the client failed to prove its identity to the console */
    CC_ERR_AUTH_UNAVAILABLE = -75,     /* the mechanism is not built into this library */

    /* reconnection (doc/RECONNECT.md) */
    CC_ERR_RECONNECT_REFUSED = -76, /* the client did not take the reconnect ticket (used, expired, foreign, refused) */
    CC_ERR_RECONNECT_TICKET = -77,  /* the reconnect ticket is malformed, altered or from another library version */
    /* consent of the person at the client (CC_CONSENT_MODE_ASK) */
    CC_ERR_CONSENT_REFUSED = -80, /* the person at the client, or the client's policy, refused the session */
    CC_ERR_CONSENT_TIMEOUT = -81  /* nobody answered the consent question within the consent deadline */
} cc_error;

/* A sentence describing the error code, e.g. "the handshake deadline passed".
 * Never NULL, never freed. */
const char *cc_strerror(int code);
/* The constant's name, e.g. "CC_ERR_TIMEOUT"; "CC_ERR_UNKNOWN" if unknown. */
const char *cc_err_name(int code);

/* --- Memory ------------------------------------------------------------- */

/* Allocator hooks for a context and everything made from it. realloc must
 * behave like C's (NULL ptr allocates). Pass to cc_context_new(), or NULL for
 * malloc/realloc/free. OpenSSL, libcurl, expat and libkrb5 use their own. */
typedef struct cc_allocator {
    uint32_t struct_size; /* sizeof(cc_allocator) */
    void *user;
    void *(*malloc)(size_t size, void *user);
    void *(*realloc)(void *ptr, size_t size, void *user);
    void (*free)(void *ptr, void *user);
} cc_allocator;

/* --- Logging ------------------------------------------------------------ */

typedef enum cc_log_level { CC_LOG_ERROR = 1, CC_LOG_WARN = 2, CC_LOG_INFO = 3, CC_LOG_DEBUG = 4 } cc_log_level;

/* Receives one line (no newline) at `level` (cc_log_level). Secrets
 * (passwords, keys, hashes, tokens) are never passed to it. It is also called
 * from cc_job_run() on the host's worker threads, so it must be thread-safe. */
typedef void (*cc_log_fn)(void *user, int level, const char *message);

/* --- Context ------------------------------------------------------------ */

typedef struct cc_context cc_context;
typedef struct cc_session cc_session;
typedef struct cc_job cc_job;
typedef struct cc_auth cc_auth;

typedef enum cc_role {
    CC_ROLE_CONSOLE = 1, /* connects, verifies the client's certificate, offers credentials */
    CC_ROLE_CLIENT = 2   /* accepts, presents a certificate, checks the licence, authenticates */
} cc_role;

/* Creates a context for one role. `alloc` may be NULL. Returns NULL only when
 * memory is exhausted or role is invalid (then *err, if given, says which).
 * Configure it with the cc_context_set_* / _add_* calls before the first
 * cc_session_new(): while sessions use it they return CC_ERR_STATE. */
cc_context *cc_context_new(int role, const cc_allocator *alloc, int *err);
/* Frees the context. Every session made from it must be freed first, and
 * every job taken from those sessions returned or freed. */
void cc_context_free(cc_context *ctx);
int cc_context_role(const cc_context *ctx);
/* Detail of the last error a cc_context_set_* call returned; "" if none. */
const char *cc_context_errmsg(const cc_context *ctx);

/* Log lines at `max_level` and more severe go to `fn`. Default: no logging. */
int cc_context_set_log(cc_context *ctx, cc_log_fn fn, void *user, int max_level);

/* -- TLS material -- */

/* Client role: the certificate chain and private key it presents (PEM files).
 * Required for the client role. */
int cc_context_set_certificate(cc_context *ctx, const char *cert_file, const char *key_file);
/* Console role: trust the client certificates that chain to the CAs in this
 * PEM file; the certificate must also name the host being connected to. */
int cc_context_set_ca_file(cc_context *ctx, const char *ca_file);
/* Console role: trust exactly the certificate whose SHA-256 fingerprint (of
 * its DER encoding) is `hex` (64 hex digits, colons allowed). Replaces CA and
 * name checks. */
int cc_context_set_pin_sha256(cc_context *ctx, const char *hex);
/* Console role: the host decides. `der` is the client's leaf certificate,
 * `preverify_ok` is 1 if it chains to the configured CA file (or the system
 * store when no CA file is set) and names the host. Return 1 to accept, 0 to
 * reject (CC_ERR_CERT_REJECTED). With none of the three set, the console
 * trusts the system CA store. */
typedef int (*cc_verify_fn)(void *user, cc_session *session, const uint8_t *der, size_t der_len, int preverify_ok);
int cc_context_set_verify_callback(cc_context *ctx, cc_verify_fn fn, void *user);

/* -- Deadlines and limits -- */

/* Timeouts in milliseconds; where the range starts at 0, 0 turns the timer off. */
typedef enum cc_timeout {
    CC_TIMEOUT_HANDSHAKE = 1,         /* from start to established; default 10000, 1..86400000 */
    CC_TIMEOUT_IDLE = 2,              /* established, nothing heard; default 0, 0..86400000 */
    CC_TIMEOUT_CONNECT_ATTEMPT = 3,   /* per address, then the next; default 2000, 1..86400000 */
    CC_TIMEOUT_KEEPALIVE = 4,         /* ping after this silence; default 0, 0..86400000 */
    CC_TIMEOUT_LICENSE_CONNECT = 5,   /* licence server connect; default 2000, 1..86400000 */
    CC_TIMEOUT_LICENSE = 6,           /* whole licence fetch; default 4000, 1..86400000 */
    CC_TIMEOUT_AUTH_JOB = 7,          /* each KDC / directory job; default 4000, 1..86400000 */
    CC_TIMEOUT_AUTH_BACKOFF = 8,      /* most wait after failed proofs; default 4000, 0..60000 */
    CC_TIMEOUT_CONNECT_STAGGER = 9,   /* next address's start while one connects; default 250, 10..60000 */
    CC_TIMEOUT_RECONNECT_TICKET = 10, /* client: a reconnect ticket's lifetime; default 600000, 0..86400000 */
    CC_TIMEOUT_CONSENT = 11           /* consent answer (console: most it waits); default 60000, 1..86400000 */
} cc_timeout;
/* The handshake deadline is also the most an unauthenticated peer can hold a
 * session; the licence and KDC timeouts fit inside it. After failed proofs,
 * a client makes the next connection from the same source address wait
 * before it is served: 250 ms after the first failure, doubling up to
 * CC_TIMEOUT_AUTH_BACKOFF (0 turns this off); a success from that address
 * clears it. 0 disables the idle and keep-alive timers and reconnection (no
 * reconnect ticket is issued or taken); the others must be > 0.
 * On a client asking for consent (cc_context_set_consent) the handshake
 * deadline stops once the console is authenticated and CC_TIMEOUT_CONSENT
 * runs instead; a console told that the client waits extends its own
 * handshake deadline by the client's declared wait, at most by its own
 * CC_TIMEOUT_CONSENT (plus a margin for the round trip).
 * CC_ERR_INVALID (with cc_context_errmsg) outside the range above. */
int cc_context_set_timeout(cc_context *ctx, int which, uint32_t ms);

typedef enum cc_limit {
    CC_LIMIT_FRAME_SIZE = 1,   /* largest frame payload accepted; default 131072, 16384..16777216 */
    CC_LIMIT_SEND_BUFFER = 2,  /* bytes cc_session_send may queue; default 262144, 16384..1073741824 */
    CC_LIMIT_LICENSE_PAGE = 3, /* largest licence page; default 65536, 256..16777216 */
    CC_LIMIT_AUTH_TOKEN = 4,   /* largest authentication token; default 65536, 1024..16777216 */
    CC_LIMIT_REDIRECTS = 5     /* licence fetch redirects followed; default 3, 0..10 */
} cc_limit;
/* CC_ERR_INVALID (with cc_context_errmsg) outside the range above. */
int cc_context_set_limit(cc_context *ctx, int which, uint32_t value);

/* -- Licence (client role) -- */

/* The full licence-details URL (http:// or https://). */
int cc_context_set_license_url(cc_context *ctx, const char *url);
/* Or just the management server's name: the URL becomes
 * http://NAME/altiris/NS/Agent/GetLicenseDetails.aspx */
int cc_context_set_license_server(cc_context *ctx, const char *name);
/* CA file for an https licence URL; default: the system store. */
int cc_context_set_license_ca_file(cc_context *ctx, const char *ca_file);
/* Reuse the last granted, denied or expired verdict for this long (per
 * context), and make licence jobs that run at the same time share one fetch.
 * Default 5000 ms; 0 = off (every session asks the server). */
int cc_context_set_license_cache_ttl(cc_context *ctx, uint32_t ms);

/* -- Authentication -- */

/* Adds one of the built-in authenticators: "kerberos" or "nt". Order of
 * adding is order of preference. */
int cc_context_add_builtin_authenticator(cc_context *ctx, const char *name);
/* Sets an option of an added authenticator, e.g. ("nt", "accounts",
 * "/etc/cc/smbpasswd"). Each authenticator documents its keys in doc/. */
int cc_context_set_auth_option(cc_context *ctx, const char *mechanism, const char *key, const char *value);
/* Client role, "nt" authenticator: the host looks accounts up instead of the
 * smbpasswd file of the "accounts" option. Called on the session's thread
 * (sessions on several threads may call it at once) with the domain and user
 * name the console sent (UTF-8). Fill nt_hash (16 bytes: MD4 of the UTF-16LE
 * password) and return 0, or return CC_ERR_AUTH_UNKNOWN_USER or
 * CC_ERR_AUTH_DISABLED. The library wipes the hash after use. */
typedef int (*cc_nt_lookup_fn)(void *user, const char *domain, const char *user_name, uint8_t nt_hash[16]);
/* Requires cc_context_add_builtin_authenticator(ctx, "nt") first (else
 * CC_ERR_STATE). fn = NULL goes back to the "accounts" file. */
int cc_context_set_nt_account_lookup(cc_context *ctx, cc_nt_lookup_fn fn, void *user);
/* Client role: decides whether an authenticated account may connect, after
 * the mechanism's own checks. Return 0 to allow, a negative cc_error (usually
 * CC_ERR_AUTH_POLICY) to refuse. Read details with cc_session_auth_attribute(). */
typedef int (*cc_auth_policy_fn)(void *user, cc_session *session, const char *mechanism, const char *identity);
int cc_context_set_auth_policy(cc_context *ctx, cc_auth_policy_fn fn, void *user);
/* Client role: what a console learns when its proof fails. By default (0)
 * a wrong password, an unknown, disabled or expired account, one missing
 * from the domain and a foreign domain all give the console the same
 * CC_ERR_AUTH_BAD_CREDENTIALS and the same text, so a stranger cannot tell
 * which accounts exist; the cause goes to the client's own CC_EVENT_AUTH and
 * log. 1 sends the console the cause (in-house support: it tells anyone who
 * reaches the port which accounts exist; doc/SECURITY.md). */
int cc_context_set_auth_disclosure(cc_context *ctx, int full);
/* Console role: 1 offers only mechanisms that prove the client to the
 * console (CC_AUTH_FLAG_MUTUAL, e.g. "kerberos"), and fails a session whose
 * mechanism did not (CC_ERR_AUTH_MUTUAL), so a peer holding nothing but a
 * trusted certificate is refused before it sees a credential. Default 0. */
int cc_context_set_require_mutual(cc_context *ctx, int on);

/* -- Consent of the person at the machine (client role) -- */

typedef enum cc_consent_mode {
    CC_CONSENT_MODE_OFF = 0,      /* no consent stage (default) */
    CC_CONSENT_MODE_ASK = 1,      /* ask; when nobody is logged on, refuse */
    CC_CONSENT_MODE_ASK_OR_OK = 2 /* ask; when nobody is logged on, let the console in */
} cc_consent_mode;
/* Client role: after the console is authenticated (and the licence is
 * granted) and before the session is established, the client queues a
 * CC_JOB_CONSENT job that the host answers with cc_job_consent_answer() (for
 * instance after a dialog), within CC_TIMEOUT_CONSENT. The console is told
 * that the client waits (doc/PROTOCOL.md 4.8). Each decision is a
 * CC_EVENT_CONSENT. CC_ERR_CONFIG on a console. */
int cc_context_set_consent(cc_context *ctx, int mode);

/* --- Session ------------------------------------------------------------ */

typedef enum cc_state {
    CC_STATE_NEW = 0,
    CC_STATE_RESOLVING = 1,  /* console: waiting for the resolve job */
    CC_STATE_CONNECTING = 2, /* console: TCP connect in progress */
    CC_STATE_PREAMBLE = 3,   /* exchanging the cleartext preamble */
    CC_STATE_TLS = 4,        /* TLS handshake */
    CC_STATE_HELLO = 5,      /* exchanging hello frames */
    CC_STATE_LICENSE = 6,    /* console: awaiting the client's choice (the licence check overlaps auth) */
    CC_STATE_AUTHENTICATING = 7,
    CC_STATE_ESTABLISHED = 8,
    CC_STATE_CLOSING = 9,
    CC_STATE_CLOSED = 10, /* ended cleanly */
    CC_STATE_FAILED = 11  /* ended with an error: cc_session_error() */
} cc_state;

/* --- Counters ----------------------------------------------------------- */

/* What a context has seen, for hosts that run many sessions: cc_context_stats()
 * fills it. Each field is read on its own (relaxed atomics, no lock), so a
 * snapshot taken while sessions run may be off by the events of that moment
 * (e.g. a session counted in no state, or in two, for an instant). "Since"
 * counts start at 0 when the context is made and only grow. The host allocates
 * the struct and sets struct_size; fields are only ever appended. */
typedef struct cc_stats {
    uint32_t struct_size; /* in: sizeof(cc_stats) as the host was compiled; out: the bytes filled */
    uint32_t reserved;    /* 0 */
    /* Live sessions in each state, indexed by cc_state (sessions[CC_STATE_ESTABLISHED]);
     * a session is counted from cc_session_new() to cc_session_free(), so ended ones
     * not yet freed are in [CC_STATE_CLOSED] and [CC_STATE_FAILED]. 16 slots: room
     * for states added later. */
    uint64_t sessions[16];
    uint64_t sessions_created;     /* since: cc_session_new() calls that made a session */
    uint64_t sessions_established; /* since: sessions that reached CC_STATE_ESTABLISHED */
    uint64_t sessions_closed;      /* since: sessions that ended cleanly (CC_STATE_CLOSED) */
    uint64_t sessions_failed;      /* since: sessions that ended with an error (CC_STATE_FAILED) */
    /* Refusals (since). */
    uint64_t backoff_delayed; /* client: sessions held back (CC_TIMEOUT_AUTH_BACKOFF) after failed proofs from their
                                 address */
    uint64_t license_refused; /* sessions that failed with a licence code (CC_ERR_LICENSE_*: denied, expired,
                                 unreachable server, ...); on a console, what the client told it */
    uint64_t auth_failed;     /* sessions that failed with an authentication code (CC_ERR_AUTH_*), the host's
                                 policy refusals included; on a console, its own failures and the client's verdict */
    /* Evictions (since). */
    uint64_t backoff_evicted;   /* client: source addresses the full table of failed proofs forgot to make room */
    uint64_t nt_replay_evicted; /* client: "nt" replay-cache entries a full cache forgot (option replay-cache-size) */
    /* Caches (since). */
    uint64_t license_cache_hits;   /* client: licence checks answered by the context's cached verdict */
    uint64_t license_cache_misses; /* client: licence checks that queued a CC_JOB_LICENSE job */
    uint64_t license_fetch_shared; /* client: licence jobs that took the verdict of a fetch running at the same time */
    /* Jobs, now (gauges). */
    uint64_t jobs_pending; /* queued by sessions, not yet taken with cc_session_take_job() */
    uint64_t jobs_out;     /* taken, not yet handed back with cc_session_job_done() or freed */
    /* The built-in "kerberos" authenticator (since; doc/AUTH-KERBEROS.md). */
    uint64_t krb5_contexts_made;   /* krb5_init_context() calls: the pool of krb5 contexts had none idle */
    uint64_t krb5_contexts_reused; /* uses of an idle krb5 context from the pool */
    uint64_t krb5_acceptor_reads;  /* client: acceptor credentials acquired from the keytab */
    uint64_t krb5_acceptor_reuses; /* client: sessions that used the cached acceptor credential */
    uint64_t krb5_ccache_reads;    /* console: user ccaches read into the context's copy */
    uint64_t krb5_ccache_reuses;   /* console: jobs that used that copy (the ccache file unchanged) */
} cc_stats;

/* Fills *out with ctx's counters. Set out->struct_size = sizeof(cc_stats)
 * first: the library fills min(struct_size, its own sizeof(cc_stats)) bytes and
 * sets struct_size to that, so a host built against a newer header reads only
 * the fields within it. Callable from any thread at any time while ctx lives.
 * Returns CC_OK, or CC_ERR_INVALID (NULL, or struct_size below 8). */
int cc_context_stats(const cc_context *ctx, cc_stats *out);

/* Bits returned by cc_session_step(). */
#define CC_WANT_READ  0x1 /* call step when the transport is readable */
#define CC_WANT_WRITE 0x2 /* call step when the transport is writable */
#define CC_WANT_JOB   0x4 /* take the job(s) with cc_session_take_job() */
#define CC_WANT_TIMER 0x8 /* call step when cc_session_timeout_ms() has passed */

typedef enum cc_event_type {
    CC_EVENT_STATE = 1,      /* state changed: `state` */
    CC_EVENT_LICENSE = 2,    /* licence verdict: granted, count, in_use, code, text = detail */
    CC_EVENT_AUTH = 3,       /* authentication result: code, text = identity or detail, mechanism */
    CC_EVENT_DATA = 4,       /* data received: channel, data, len (valid during the callback) */
    CC_EVENT_CLOSED = 5,     /* the session ended: code (0 = orderly), text = reason */
    CC_EVENT_SEND_READY = 6, /* channel's send queue drained after CC_SEND_HIGH_WATER or CC_ERR_AGAIN */
    CC_EVENT_PONG = 7,       /* a ping was answered: value = round trip in ms */
    CC_EVENT_TICKET = 8,     /* console: a (new) reconnect ticket arrived: cc_session_reconnect_ticket() */
    /* Consent. Client: a decision (an audit record): granted 1 or 0, code 0 or
     * why not (CC_ERR_CONSENT_REFUSED, CC_ERR_CONSENT_TIMEOUT, or the error
     * that ended the session while it waited), text = identity, mechanism,
     * address, detail = the reason, unattended = 1 when the host said nobody
     * is logged on, value = wall-clock time in ms since 1970. Console: the
     * client waits for its user: granted -1, value = the client's deadline
     * in ms; the verdict follows as CC_EVENT_AUTH or CC_EVENT_CLOSED. */
    CC_EVENT_CONSENT = 9
} cc_event_type;

typedef struct cc_event {
    uint32_t struct_size;  /* sizeof(cc_event) of the library; read only fields within it */
    int32_t type;          /* cc_event_type */
    int32_t state;         /* cc_state after the event */
    int32_t code;          /* cc_error, 0 for success */
    const char *text;      /* detail, identity or reason; NUL-terminated; may be "" */
    const char *mechanism; /* CC_EVENT_AUTH: the mechanism's name, else NULL */
    int32_t granted;       /* CC_EVENT_LICENSE: 1 granted, 0 denied */
    uint32_t license_count;
    uint32_t license_in_use;
    uint32_t channel;    /* CC_EVENT_DATA, CC_EVENT_SEND_READY */
    const uint8_t *data; /* CC_EVENT_DATA */
    size_t len;          /* CC_EVENT_DATA */
    uint64_t value;      /* CC_EVENT_PONG */
    int32_t mutual; /* CC_EVENT_AUTH, console, success: 1 the mechanism proved the client, 0 only its certificate */
    /* CC_EVENT_AUTH, success: 1 when the session resumed an earlier one with a
     * reconnect ticket (no licence check, no mechanism ran), else 0 */
    int32_t resumed;
    const char *session_id; /* CC_EVENT_AUTH: cc_session_id() (the resumed session's id when resumed) */
    /* added with the consent stage: read only when struct_size covers them */
    const char *address; /* CC_EVENT_CONSENT, client: the console's address ("" on a host transport) */
    const char *detail;  /* CC_EVENT_CONSENT, client: the reason given or the policy applied */
    int32_t unattended;  /* CC_EVENT_CONSENT, client: 1 the host answered CC_CONSENT_NOBODY */
} cc_event;

/* Called from within cc_session_step() (and cc_session_close()). It may call
 * cc_session_send() and cc_session_close(), but not cc_session_free(). */
typedef void (*cc_event_fn)(void *user, cc_session *session, const cc_event *event);

/* Creates a session in the context's role. */
cc_session *cc_session_new(cc_context *ctx, int *err);
/* Frees the session and closes its socket (if the library opened or was
 * handed one). Jobs still out must then be freed with cc_job_free(). */
void cc_session_free(cc_session *s);

int cc_session_set_event_callback(cc_session *s, cc_event_fn fn, void *user);
/* Host data, for the host's own use. */
void cc_session_set_user_data(cc_session *s, void *user);
void *cc_session_user_data(const cc_session *s);

/* Console: connect to `host` (name or address literal) on `port` (0 means
 * 1680). Queues a resolve job; the addresses are then raced (RFC 8305):
 * IPv6 and IPv4 alternating, IPv6 first, each next one
 * CC_TIMEOUT_CONNECT_STAGGER after the previous started (at once when it
 * failed), so several sockets may be connecting at once; the first connected
 * wins and the others are closed. The name is also what the certificate must
 * carry. */
int cc_session_connect(cc_session *s, const char *host, uint16_t port);
/* Client: serve the console on an accepted socket. The session makes it
 * non-blocking and closes it when freed. */
int cc_session_accept_fd(cc_session *s, cc_socket fd);

/* Host-owned transport for tunnels. send returns bytes written (> 0),
 * CC_IO_WOULD_BLOCK, or CC_IO_ERROR; recv returns bytes read (> 0),
 * 0 at end of stream, CC_IO_WOULD_BLOCK or CC_IO_ERROR. The two lie outside
 * the cc_error range, so a callback's result is never taken for an error code. */
#define CC_IO_WOULD_BLOCK (-1001)
#define CC_IO_ERROR       (-1002)
typedef long (*cc_send_fn)(void *user, const uint8_t *data, size_t len);
typedef long (*cc_recv_fn)(void *user, uint8_t *buf, size_t len);
/* Use host callbacks instead of a socket. Console: call instead of
 * cc_session_connect(), with the peer's name for certificate checks (NULL
 * only with a pin or a verify callback, else CC_ERR_CONFIG). Client: call
 * instead of cc_session_accept_fd(). */
int cc_session_set_transport(cc_session *s, cc_send_fn send, cc_recv_fn recv, void *user, const char *peer_name);

/* Console: the credentials the authenticators offer. The password is copied,
 * wiped from the session as soon as authentication ends, and never logged.
 * `domain` and `password` may be NULL. */
int cc_session_set_credentials(cc_session *s, const char *user, const char *domain, const char *password);

/* Advances the session as far as possible without blocking. Returns a mask of
 * CC_WANT_* bits (> 0) while the session runs, 0 once it has closed cleanly,
 * or a negative cc_error once it has failed (also cc_session_error());
 * CC_ERR_STATE before cc_session_connect/_accept_fd/_set_transport. */
int cc_session_step(cc_session *s);
/* The socket to poll for CC_WANT_READ / CC_WANT_WRITE, or CC_SOCKET_INVALID
 * (host transport, not started, ended). While connecting (several attempts
 * may be in flight) it is the newest attempt's: a host that polls only it
 * learns of an older attempt's success at the next cc_session_timeout_ms();
 * the socket callback below reports every one. It can change at each
 * cc_session_step() until the state is past CC_STATE_CONNECTING, and
 * becomes invalid when the session ends. */
cc_socket cc_session_fd(const cc_session *s);
/* Milliseconds until the session's next deadline (0 = now), or -1 for none. */
int32_t cc_session_timeout_ms(const cc_session *s);

/* --- Sockets and timers: a host that touches only the ready sessions ---
 *
 * Instead of asking every session for cc_session_fd() and
 * cc_session_timeout_ms() after each step (fine for a few sessions), a host
 * with many registers two callbacks, in the manner of curl's
 * CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION and c-ares'
 * sock_state_cb, and keeps its poller (epoll, kqueue, libuv) and a timer
 * queue as the session tells it. On readiness of a socket, or when the
 * session's timer expires, it calls cc_session_step() as before (and takes
 * jobs while the result has CC_WANT_JOB). */

#define CC_POLL_IN     0x1 /* watch the socket for reading */
#define CC_POLL_OUT    0x2 /* watch the socket for writing */
#define CC_POLL_REMOVE 0x4 /* stop watching the socket: alone, never with the two above */

/**
 * @functypedef
 *
 * Tells the host what `session` wants of `sock`: `what` is CC_POLL_IN,
 * CC_POLL_OUT or both (watch for that, replacing what was asked of this
 * socket before), or CC_POLL_REMOVE (stop watching it). A socket's first
 * call, or its first after a CC_POLL_REMOVE, is an add (EPOLL_CTL_ADD); the
 * others modify. It is called when what the session wants changes, at the
 * end of cc_session_step(), cc_session_connect(), cc_session_accept_fd(),
 * cc_session_job_done(), cc_session_send(), cc_session_ping(),
 * cc_session_pause_reading() and cc_session_close(); and with
 * CC_POLL_REMOVE for each watched socket from cc_session_free(). A session
 * may have several sockets while it connects (one per attempt), one after.
 *
 * The library reports CC_POLL_REMOVE *before* it closes a socket it
 * reported, so when a new socket gets the number of a closed one (a connect
 * falling back to the next address) the host always sees a remove and then
 * an add. CC_POLL_REMOVE also comes while the socket stays open when the
 * session wants nothing of it for a while (a paused reader with nothing to
 * send; a client's wait after failed proofs); an add follows when it wants
 * something again.
 *
 * The callback must not call cc_session_step() or cc_session_free() on the
 * session; it may call cc_session_user_data().
 */
typedef void (*cc_socket_fn)(void *user, cc_session *session, cc_socket sock, int what);

/**
 * @functypedef
 *
 * Tells the host the session's next deadline changed: call
 * cc_session_step() in `timeout_ms` milliseconds (0: as soon as possible,
 * e.g. a job was handed back), or -1: the session has no deadline now
 * (cancel the timer). The new value replaces the last; a timer is one-shot
 * (once it fired, the host may forget it). Called at the same points as the
 * socket callback when the deadline moved or is due within 100 ms (a timer that fired a
 * little early is armed again), and with -1
 * from cc_session_free() if a deadline was reported. Same restrictions.
 */
typedef void (*cc_timer_fn)(void *user, cc_session *session, int32_t timeout_ms);

/**
 * Sets the session's socket callback (NULL: none). Only in CC_STATE_NEW,
 * i.e. before cc_session_connect(), cc_session_accept_fd() or
 * cc_session_set_transport() (else CC_ERR_STATE). A session on a host
 * transport (cc_session_set_transport) reports no socket.
 */
int cc_session_set_socket_callback(cc_session *s, cc_socket_fn fn, void *user);
/** Sets the session's timer callback (NULL: none); only in CC_STATE_NEW. */
int cc_session_set_timer_callback(cc_session *s, cc_timer_fn fn, void *user);
/**
 * The callbacks every new session of the context starts with, so a host
 * sets them once; cc_session_set_socket_callback() and
 * cc_session_set_timer_callback() override them per session. Like every
 * context setter, only while no session uses the context.
 */
int cc_context_set_socket_callback(cc_context *ctx, cc_socket_fn fn, void *user);
int cc_context_set_timer_callback(cc_context *ctx, cc_timer_fn fn, void *user);

int cc_session_state(const cc_session *s);
/* Name of a cc_state, e.g. "established". */
const char *cc_state_name(int state);
/* The error that ended the session, 0 if none. */
int cc_session_error(const cc_session *s);
/* Human-readable detail of the session's last error; "" if none. */
const char *cc_session_errmsg(const cc_session *s);

/* Queues `len` bytes on data `channel` (0..65535), cut into frames of at
 * most 16 KiB. Only once established (else CC_ERR_STATE). Each channel has
 * its own send queue of CC_LIMIT_SEND_BUFFER bytes. Returns 0, or
 * CC_SEND_HIGH_WATER when the data was queued but the channel's queue is now
 * more than half full: produce no more on it (e.g. pause reading what you
 * forward) until CC_EVENT_SEND_READY for that channel. Returns CC_ERR_AGAIN,
 * queuing nothing, if the data does not fit in the channel's queue now, and
 * CC_ERR_INVALID if it could never fit (send it in smaller pieces). */
#define CC_SEND_HIGH_WATER 1
int cc_session_send(cc_session *s, uint16_t channel, const void *data, size_t len);
/* Stops (paused = 1) or resumes (0) reading from the peer, so a host that
 * forwards received data can apply back-pressure. Reading is on by default. */
int cc_session_pause_reading(cc_session *s, int paused);
/* Send priority of a channel (doc/PROTOCOL.md 10). Pings go before data;
 * an interactive channel's frames overtake queued bulk frames; channels of
 * one class share the link round robin per frame. Every channel is bulk
 * until set. CC_ERR_INVALID for another value, CC_ERR_NOMEM. */
#define CC_PRIORITY_BULK        0
#define CC_PRIORITY_INTERACTIVE 1
int cc_session_set_channel_priority(cc_session *s, uint16_t channel, int priority);
/* Stops (paused = 1) or resumes (0) granting the peer flow-control credit
 * on one channel, without stopping reading: pings and other channels still
 * flow. At most the channel's window (256 KiB) may still arrive once paused. */
int cc_session_pause_channel(cc_session *s, uint16_t channel, int paused);
/* Bytes queued and not yet written to the transport. */
size_t cc_session_pending(const cc_session *s);
/* Sends a ping; the answer arrives as CC_EVENT_PONG. */
int cc_session_ping(cc_session *s);
/* Orderly close: flushes queued data, tells the peer `code` and `reason`
 * (may be NULL), then ends. Keep calling step until it returns 0. A negative
 * `code` (a cc_error; others are CC_ERR_INVALID) ends the session at once
 * with that error, as does any close before the session is established. */
int cc_session_close(cc_session *s, int code, const char *reason);

/* After the licence stage: the verdict and figures. Returns CC_ERR_STATE
 * before the verdict is known. */
int cc_session_license(const cc_session *s, int *granted, uint32_t *count, uint32_t *in_use);
/* After authentication: the mechanism and the authenticated identity
 * (e.g. "DOMAIN\\user", "user@REALM"), NULL before. */
const char *cc_session_mechanism(const cc_session *s);
const char *cc_session_identity(const cc_session *s);
/* Console, once established: 1 when the mechanism proved the client, 0 when
 * only its certificate did; CC_ERR_STATE before. */
int cc_session_auth_mutual(const cc_session *s);
/* Account details from the authenticator, by index from 0; returns
 * CC_ERR_INVALID past the last. Keys are documented per mechanism. */
int cc_session_auth_attribute(const cc_session *s, uint32_t index, const char **key, const char **value);
/* The TLS channel binding (RFC 9266 tls-exporter, 32 bytes) once TLS is up. */
int cc_session_channel_binding(const cc_session *s, uint8_t *out, size_t out_len);
/* The negotiated TLS version and cipher, e.g. "TLSv1.3", "TLS_AES_256_GCM_SHA384". */
const char *cc_session_tls_version(const cc_session *s);
const char *cc_session_tls_cipher(const cc_session *s);

/* --- Reconnect: back in after a dropped connection (doc/RECONNECT.md) ---- */

/* The session's id, 32 lowercase hex digits, the same at both ends: from the
 * TLS connection for a full handshake, and the id of the session it resumes
 * for a resumed one (so a chain of reconnections keeps one id). NULL before
 * TLS is up. For audit logs and for re-attaching state. */
const char *cc_session_id(const cc_session *s);
/* 1 when the session resumed an earlier one with a reconnect ticket, 0 when
 * it made a full handshake; CC_ERR_STATE before it is established. */
int cc_session_resumed(const cc_session *s);

/* Console: the newest reconnect ticket the client gave this session, copied
 * into buf (at most CC_RECONNECT_TICKET_MAX bytes); *len is set to its size.
 * Available once the session is established (CC_EVENT_TICKET says when one
 * arrives or is rotated) and after it ended. The ticket is a credential: it
 * lets its holder in as the same user without a password until it expires
 * or is used. Keep it in memory, wipe it, never log it. CC_ERR_STATE when
 * there is none, CC_ERR_AGAIN when cap is too small. */
#define CC_RECONNECT_TICKET_MAX 4096
int cc_session_reconnect_ticket(const cc_session *s, uint8_t *buf, size_t cap, size_t *len);
/* Console, before connecting: present `ticket` (copied, wiped when the
 * session is freed) so the session resumes the one it came from. If the
 * client does not take it, the session fails with CC_ERR_RECONNECT_REFUSED,
 * or with CC_RECONNECT_FALLBACK goes on with a full handshake (credentials
 * and licence as usual). CC_ERR_RECONNECT_TICKET when the bytes are not a
 * ticket of this library (or were altered), CC_ERR_CONFIG when its mechanism
 * is not configured here. */
#define CC_RECONNECT_FALLBACK 1
int cc_session_set_reconnect_ticket(cc_session *s, const uint8_t *ticket, size_t len, int flags);

/* Client: the key tickets are sealed with (32..64 bytes, copied and wiped).
 * Without it each context makes a random one, so no ticket survives a
 * restart of the client; with the same key a new process takes them. */
int cc_context_set_reconnect_key(cc_context *ctx, const uint8_t *key, size_t len);
/* Client: asked, during the TLS handshake, before a session resumes the
 * session `session_id` of `identity` (authenticated by `mechanism`). Return 0
 * to let it in, anything else to refuse: the ticket is then spent and the
 * console makes a full handshake (or fails with CC_ERR_RECONNECT_REFUSED). */
typedef int (*cc_resume_fn)(void *user, cc_session *session, const char *session_id, const char *mechanism,
                            const char *identity);
int cc_context_set_resume_callback(cc_context *ctx, cc_resume_fn fn, void *user);

/* --- Jobs: work that may block, run or answered by the host -------------- */

typedef enum cc_job_kind {
    CC_JOB_RESOLVE = 1, /* resolve a host name (console) */
    CC_JOB_LICENSE = 2, /* fetch and parse the licence page (client) */
    CC_JOB_AUTH = 3,    /* authenticator work that talks to a KDC or directory */
    CC_JOB_CONSENT = 4  /* ask the person at the client (client, cc_context_set_consent) */
} cc_job_kind;

/* Takes the next pending job, or NULL. From now until it is handed back the
 * session does not touch the job, and the host may use it on any thread. */
cc_job *cc_session_take_job(cc_session *s);
int cc_job_type(const cc_job *job);
/* Runs the job with the bundled helper (getaddrinfo, libcurl, libkrb5). It
 * blocks, bounded by the job's timeout (name resolution: by the system
 * resolver's own timeouts); call it on a worker thread. Whatever a job does,
 * the session's handshake deadline still ends the session on time. */
int cc_job_run(cc_job *job);
/* Hands a job back to its session on the session's thread; step then uses
 * the result. The session takes ownership of the job again. */
int cc_session_job_done(cc_session *s, cc_job *job);
/* Frees a job whose session was freed while the job was out. */
void cc_job_free(cc_job *job);
/* Answers a job with a failure instead of running it. */
int cc_job_fail(cc_job *job, int code, const char *detail);

/* Answering a resolve job yourself: the name and port to resolve, then the
 * addresses in order of preference (struct sockaddr_in / sockaddr_in6; at
 * most 16, then CC_ERR_AGAIN). */
const char *cc_job_resolve_host(const cc_job *job);
uint16_t cc_job_resolve_port(const cc_job *job);
int cc_job_resolve_add_address(cc_job *job, const void *sockaddr, uint32_t sockaddr_len);

/* Answering a licence job yourself: the URL to fetch (NULL when the context
 * has none), then either the HTTP status (optional) and the page body (in
 * chunks, as it arrives; feed returns the first error found so far) or the
 * figures. Hand the job back with cc_session_job_done(). See doc/LICENSE-PAGE.md. */
const char *cc_job_license_url(const cc_job *job);
int cc_job_license_set_status(cc_job *job, int32_t http_status);
int cc_job_license_feed(cc_job *job, const void *data, size_t len);
int cc_job_license_set_figures(cc_job *job, uint32_t count, uint32_t in_use);

/* Answering a consent job (the host's own answer; cc_job_run() refuses, as
 * nobody was asked): who asks, through which mechanism, from where ("" on a
 * host transport), and how long the client waits; then the answer with an
 * optional reason for the audit trail (at most 255 bytes, else CC_ERR_INVALID).
 * A job handed back unanswered refuses; one handed back after the deadline,
 * or after the console left, is ignored. */
#define CC_CONSENT_REFUSE 0 /* the person said no */
#define CC_CONSENT_ACCEPT 1 /* the person said yes */
#define CC_CONSENT_NOBODY 2 /* nobody is logged on: the consent mode decides */
const char *cc_job_consent_identity(const cc_job *job);
const char *cc_job_consent_mechanism(const cc_job *job);
const char *cc_job_consent_address(const cc_job *job);
uint32_t cc_job_consent_timeout_ms(const cc_job *job);
int cc_job_consent_answer(cc_job *job, int answer, const char *reason);

/* --- Authenticators: the plug-in interface -------------------------------- */

/* step() return values (negative values are cc_error failures). */
#define CC_AUTH_DONE     0 /* this side is satisfied */
#define CC_AUTH_CONTINUE 1 /* an output token was set; more tokens are expected */
#define CC_AUTH_PENDING  2 /* a job was submitted; step is called again (in = NULL) when it is done */

/* One mechanism. The console (initiator) calls step first with in = NULL;
 * the client (acceptor) calls step with each token the console sends. On the
 * client, DONE means the account is authenticated (cc_auth_set_identity()
 * must have been called); a final output token set then is sent to the
 * console with the result (e.g. Kerberos' mutual-authentication reply). */
typedef struct cc_authenticator {
    uint32_t struct_size; /* sizeof(cc_authenticator) */
    const char *name;     /* 1..32 characters of [a-z0-9-] */
    /* Per-session start; set *state. `mech_data` is what was registered. */
    int (*start)(void *mech_data, cc_auth *auth, void **state);
    int (*step)(void *state, cc_auth *auth, const uint8_t *in, size_t in_len);
    /* Frees the per-session state (wipe secrets). */
    void (*end)(void *state);
    /* Optional: cc_context_set_auth_option() for this mechanism. */
    int (*set_option)(void *mech_data, const char *key, const char *value);
    /* Optional: frees mech_data when the context is freed. */
    void (*destroy)(void *mech_data);
    /* cc_auth_flag bits (added after 1.0's first draft; a shorter struct means 0). */
    uint32_t flags;
} cc_authenticator;

typedef enum cc_auth_flag {
    /* The console side verifies a proof from the client and then calls
     * cc_auth_set_mutual() (Kerberos' AP-REP, the psk example's proof). */
    CC_AUTH_FLAG_MUTUAL = 1
} cc_auth_flag;

/* Registers a host-written authenticator (the struct is copied). */
int cc_context_add_authenticator(cc_context *ctx, const cc_authenticator *auth, void *mech_data);

/* For authenticators, valid during start/step: */
int cc_auth_role(const cc_auth *auth);
/* The TLS channel binding of this connection (32 bytes). */
int cc_auth_channel_binding(const cc_auth *auth, const uint8_t **data, size_t *len);
/* Console: the host name connected to (for service principal names). */
const char *cc_auth_peer_name(const cc_auth *auth);
/* Console: the credentials given with cc_session_set_credentials(); any may be
 * NULL. The password stays owned by the session, which wipes it. */
int cc_auth_credentials(const cc_auth *auth, const char **user, const char **domain, const char **password);
/* Sets the token to send to the peer (copied). */
int cc_auth_set_output(cc_auth *auth, const void *token, size_t len);
/* Client: the authenticated identity, and account details. */
int cc_auth_set_identity(cc_auth *auth, const char *identity);
int cc_auth_add_attribute(cc_auth *auth, const char *key, const char *value); /* at most 1024, then CC_ERR_AGAIN */
/* Records why step failed; return the same code from step. */
int cc_auth_set_error(cc_auth *auth, int code, const char *detail);
/* Console: the client proved itself through this mechanism (not only by its
 * certificate). CC_ERR_STATE on the client. */
int cc_auth_set_mutual(cc_auth *auth);
/* Log through the context's log callback; never pass secrets. */
void cc_auth_log(const cc_auth *auth, int level, const char *message);
/* Hands blocking work out as a CC_JOB_AUTH job; return CC_AUTH_PENDING from
 * step. `run` executes on the host's worker thread and must touch only
 * `job_data`; its return value (a cc_error) is passed on by cc_job_run(). The
 * authenticator reads its results from job_data when step is called again.
 * `free_job_data` is called when the job is freed, after that step (may be NULL). */
int cc_auth_submit_job(cc_auth *auth, int (*run)(void *job_data), void (*free_job_data)(void *job_data),
                       void *job_data);
/* In the step that follows a job (in = NULL): the job's outcome — 0, the
 * run function's error, the code given to cc_job_fail(), or CC_ERR_CANCELLED
 * if the host handed it back untouched — and its detail. job_data is still
 * valid in that step and freed after it. CC_ERR_STATE at other times. */
int cc_auth_job_result(const cc_auth *auth, const char **detail);
/* Milliseconds allowed for each auth job (CC_TIMEOUT_AUTH_JOB). */
uint32_t cc_auth_job_timeout_ms(const cc_auth *auth);

#ifdef __cplusplus
}
#endif

#endif /* CARBONCOPY_H */
