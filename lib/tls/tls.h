/* tls.h -- TLS for a session over a BIO of our own (OpenSSL), so it runs over
 * a socket or a host transport alike; certificate policy for the console. */
#ifndef CC_TLS_H
#define CC_TLS_H

#include "../base/base.h"
#include "ticket.h"

#define CC__TLS_EOF (-1000) /* the peer sent close_notify */

typedef struct cc__tls cc__tls;

/* The TLS part of a context (embedded in struct cc_context). The core sets
 * the pin and the verify callback directly; files go through the setters. */
typedef struct cc__tls_conf {
    void *ssl_ctx; /* SSL_CTX* */
    char *cert_file, *key_file, *ca_file;
    bool have_pin;
    uint8_t pin[32];
    cc_verify_fn verify_fn;
    void *verify_user;
    cc__ticket_conf *tickets; /* reconnect tickets (ticket.c) */
} cc__tls_conf;

/* Context level: called from cc_context_new / setters / cc_context_free.
 * Errors are recorded with cc__ctx_error. */
int cc__tls_conf_init(cc_context *ctx, cc__tls_conf *conf);
void cc__tls_conf_free(cc_context *ctx, cc__tls_conf *conf);
int cc__tls_conf_set_certificate(cc_context *ctx, cc__tls_conf *conf, const char *cert_file, const char *key_file);
int cc__tls_conf_set_ca_file(cc_context *ctx, cc__tls_conf *conf, const char *ca_file);

/* Session level. `peer_name` (console) is the name the certificate must carry;
 * NULL skips the name check (only with a pin or a verify callback). */
cc__tls *cc__tls_new(const cc_context *ctx, const cc__tls_conf *conf, cc_session *s, const char *peer_name,
                     char *detail, size_t detail_len);
void cc__tls_free(cc__tls *t);
/* Where the network bytes for the peer go: every record is appended to `out`
 * (borrowed; it must outlive t) as it is made. Set before any other call. */
void cc__tls_set_output(cc__tls *t, cc__buf *out);
/* Network bytes in from the peer, held only until OpenSSL takes them.
 * CC_OK or CC_ERR_NOMEM. */
int cc__tls_feed(cc__tls *t, const uint8_t *data, size_t len);
/* 1 when the handshake is complete, 0 while it goes on, < 0 cc_error. */
int cc__tls_handshake(cc__tls *t, char *detail, size_t detail_len);
/* Plaintext in: > 0 bytes, 0 when more network bytes are needed, CC__TLS_EOF, < 0 cc_error. */
int cc__tls_read(cc__tls *t, uint8_t *buf, size_t len, char *detail, size_t detail_len);
/* Plaintext out: encrypts all of it into the outgoing network bytes. */
int cc__tls_write(cc__tls *t, const uint8_t *data, size_t len, char *detail, size_t detail_len);
/* Queues close_notify. */
void cc__tls_shutdown(cc__tls *t);
/* RFC 9266 tls-exporter channel binding (32 bytes). */
int cc__tls_channel_binding(const cc__tls *t, uint8_t out[32]);
const char *cc__tls_version(const cc__tls *t);
/* The SSL * (for ticket.c), or NULL. */
void *cc__tls_ssl(const cc__tls *t);
const char *cc__tls_cipher(const cc__tls *t);

#endif
