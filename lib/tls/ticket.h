/* ticket.h -- TLS 1.3 session tickets that carry a client's reconnect state
 * (who was let in, which session) under the context's ticket key; doc/RECONNECT.md. */
#ifndef CC_TICKET_H
#define CC_TICKET_H

#include "../base/base.h"

#define CC__TICKET_ID_LEN  16
#define CC__SESSION_ID_LEN 16

/* What a ticket carries, inside the TLS ticket (encrypted and authenticated
 * under the client's ticket key); the console never sees it in clear. */
typedef struct cc__ticket_info {
    uint8_t ticket_id[CC__TICKET_ID_LEN];   /* random per ticket: the replay set's key */
    uint8_t session_id[CC__SESSION_ID_LEN]; /* the first session of the chain */
    uint64_t issued_ms, expires_ms;         /* wall clock (ms since 1970), so a supplied key survives restarts */
    bool mutual;
    char mechanism[CC__MECH_MAX + 1];
    char identity[CC__NAME_MAX + 1];
} cc__ticket_info;

/* Client: the core's say on a ticket that decrypted, is fresh and unused
 * (the mechanism still configured, the host's callback); 0 lets it in. */
typedef int (*cc__ticket_accept_fn)(cc_session *s, const cc__ticket_info *info);
/* Console: the TLS session (from cc__ticket_session_parse) to offer in the ClientHello, or NULL. */
typedef void *(*cc__ticket_offer_fn)(cc_session *s);

typedef struct cc__ticket_conf cc__ticket_conf;

/* Context level (from cc__tls_conf_init / _free): the SSL_CTX's ticket
 * callbacks, a random ticket key, the replay set. */
cc__ticket_conf *cc__ticket_conf_new(cc_context *ctx, void *ssl_ctx);
void cc__ticket_conf_free(cc_context *ctx, cc__ticket_conf *tc);
void cc__ticket_conf_hooks(cc__ticket_conf *tc, cc__ticket_accept_fn accept, cc__ticket_offer_fn offer);
/* The host's ticket key (32..64 bytes) replaces the random one: tickets then
 * survive a restart of the client. */
int cc__ticket_conf_set_key(cc__ticket_conf *tc, const uint8_t *key, size_t len);

/* Session level, on the SSL of a new cc__tls (void * = SSL *). */
int cc__ticket_attach(cc__ticket_conf *tc, void *ssl, cc_session *s);
/* Client, once the console is let in: the next ticket (sent before the next record) carries `info`. */
int cc__ticket_issue(void *ssl, const cc__ticket_info *info);
/* Client: what the ticket this handshake resumed carried, or NULL (a full handshake). */
const cc__ticket_info *cc__ticket_resumed(void *ssl);
/* Console: whether the client took the offered session; how many tickets
 * have arrived; the newest as DER (CC_ERR_STATE when none, CC_ERR_AGAIN too small). */
bool cc__ticket_reused(void *ssl);
unsigned cc__ticket_count(void *ssl);
/* Console: frees the newest TLS session once it has been copied out (the count stays). */
void cc__ticket_release(void *ssl);
int cc__ticket_der(void *ssl, uint8_t *buf, size_t cap, size_t *len);
/* Console: `der` as a TLS session (SSL_SESSION *) when all of it is a TLS 1.3
 * session with a ticket, else NULL. Parsed once per ticket: decoding its peer
 * certificate is most of what a reconnection costs the console. */
void *cc__ticket_session_parse(const uint8_t *der, size_t len);
void cc__ticket_session_free(void *sess);
/* Both: 16 bytes exported from the TLS connection, the same at both ends (a full handshake's session id). */
int cc__ticket_export_id(void *ssl, uint8_t out[CC__SESSION_ID_LEN]);
/* Wall clock, ms since 1970. */
uint64_t cc__wall_ms(void);

#endif
