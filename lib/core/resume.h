/* resume.h -- reconnect tickets and session ids for the state machine: the
 * few hooks session.c calls (doc/RECONNECT.md). */
#ifndef CC_RESUME_H
#define CC_RESUME_H

#include "../tls/ticket.h"

/* A session's part (embedded in struct cc_session). */
typedef struct cc__resume {
    uint8_t raw_id[CC__SESSION_ID_LEN];
    char id[2 * CC__SESSION_ID_LEN + 1]; /* hex; "" until TLS is up */
    bool resumed;
    /* console: the ticket presented (copied; the DER part is offered in the ClientHello) */
    uint8_t *offer;
    size_t offer_len;
    int offer_flags;
    cc__ticket_info offer_info; /* what the console's ticket says of the session (the client's copy rules) */
    void *offer_sess;           /* the TLS session parsed from it (ticket.c) */
    /* console: the newest ticket for the host */
    uint8_t *ticket;
    size_t ticket_len;
    unsigned seen; /* tickets from the TLS layer already turned into `ticket` */
} cc__resume;

/* context.c: the ticket hooks of a new context. */
void cc__resume_context_init(cc_context *ctx);
/* session.c, TLS up: sets the session id; 1 when the session resumed (the
 * mechanism handle holds the identity, auth_ok is set: establish it now), 0
 * for a full handshake, < 0 a cc_error (the console's ticket was refused). */
int cc__resume_tls_up(cc_session *s);
/* session.c, client: the console is let in after a full handshake: the
 * ticket goes out before the result. */
int cc__resume_issue(cc_session *s);
/* session.c, console, after I/O: true when a new ticket is ready for the host. */
bool cc__resume_poll(cc_session *s);
/* handle.c: wipes and frees. */
void cc__resume_free(cc_session *s);

#endif
