/* peer.h -- what the whole-session fuzz targets share: OpenSSL's heap and randomness under the harness's
 * control, a throw-away certificate, and the peer the harness plays (raw bytes, or a TLS end of its own). */
#ifndef CC_FUZZ_PEER_H
#define CC_FUZZ_PEER_H

#include <carboncopy.h>

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Call first in LLVMFuzzerInitialize, before anything touches OpenSSL: OpenSSL's
 * allocations go to a small poisoning allocator of the harness (a full TLS
 * handshake is ~2800 of them; ASan's allocator made that half the time of a
 * run), unless CC_FUZZ_OPENSSL_ASAN=1 keeps them in ASan's; and its random
 * numbers come from the harness's streams below, so a run can be replayed. */
void fz_openssl_init(void);
/* Bytes OpenSSL holds now (0 when its heap is ASan's). */
size_t fz_openssl_live(void);
/* Before each input: both streams start again from their seeds, so every
 * input's session draws the same random numbers (its TLS handshake is the
 * recorded one; the nt server challenge is the same each time). */
void fz_rng_reset(void);

/* A self-signed P-256 certificate for CN=localhost in `dir`: cert.pem, key.pem. */
int fz_make_cert(const char *dir, char *cert, char *key, size_t n);

/* The TLS end the harness plays, made once per role: its SSL_CTX and, after
 * fz_tls_record_end(), the handshake it had with the library. */
typedef struct fz_tls fz_tls;
/* harness_role CC_ROLE_CONSOLE: the harness is the TLS client (the session a
 * cc-client); CC_ROLE_CLIENT: the TLS server, with this certificate. */
fz_tls *fz_tls_new(int harness_role, const char *cert, const char *key);

/* One input's peer. Fill the first block, then fz_peer_start(); give the
 * session fz_peer_send / fz_peer_recv as its transport; call fz_peer_pump()
 * after each step and fz_peer_end() at the end. */
typedef struct fz_peer {
    const uint8_t *in; /* what the peer sends: raw bytes, or the plaintext of its TLS records */
    size_t in_len;
    fz_tls *tls;       /* NULL: raw bytes, no preamble of ours */
    bool real;         /* TLS with a real SSL object even when a recorded handshake can be replayed */
    bool record;       /* this run records the handshake for fz_tls_record_end() */
    bool close_notify; /* end with a TLS close_notify, else a bare end of stream */
    size_t chunk;      /* largest read handed to the session */
    size_t record_len; /* largest TLS record plaintext, 1..16384 */
    size_t window;     /* session bytes the peer reads once TLS is up, then no more (0 = no limit) */
    bool hold_end;     /* while set, the end (close_notify, end of stream) waits; fz_peer_all_in() */
    size_t pause_at;   /* TLS: the plaintext past this offset, and the end, wait for fz_peer_resume() (0: none) */

    /* The peer's state. */
    uint8_t *q; /* bytes toward the session */
    size_t q_len, q_off, q_cap;
    size_t end_mark; /* replay: where the close_notify starts in q (0: none) */
    bool eof;
    size_t pre_seen;     /* bytes of the session's preamble dropped */
    size_t seg, seg_off; /* replay: the recorded flight being matched */
    bool advance;        /* replay: a flight of the library's is in; ours follows in the pump */
    bool diverged;       /* replay: the session's handshake bytes were not the recorded ones */
    bool up;             /* the handshake is over (replay: every recorded flight matched) */
    size_t after_up;     /* session bytes taken once up (for `window`) */
    uint64_t seq;        /* replay: records sealed */
    size_t in_off;       /* plaintext handed to TLS */
    bool paused;
    SSL *ssl; /* real TLS */
    BIO *to_ssl, *from_ssl;
} fz_peer;

int fz_peer_start(fz_peer *p);
long fz_peer_send(void *user, const uint8_t *data, size_t len);
long fz_peer_recv(void *user, uint8_t *buf, size_t len);
void fz_peer_pump(fz_peer *p);
void fz_peer_end(fz_peer *p);
/* The session has taken everything released so far but the end. */
bool fz_peer_all_in(const fz_peer *p);
/* The plaintext past pause_at goes out too. */
void fz_peer_resume(fz_peer *p);
/* After a run with record set: keep its handshake for replays. 0, or -1 if it
 * did not complete (replays are then off and every run uses a real SSL). */
int fz_tls_record_end(fz_tls *t, fz_peer *p);
/* Where the frames after the first complete HELLO frame start (0: no HELLO):
 * a console sends its first token, or ends, only once the client's HELLO
 * came, so a peer playing one pauses there (pause_at). */
size_t fz_after_first_hello(const uint8_t *p, size_t n);
bool fz_tls_replays(const fz_tls *t);
void fz_tls_replay_off(fz_tls *t);

#endif
