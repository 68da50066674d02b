/* pipe.h -- a session's bytes between the transport and whole frames: the
 * preamble both ways, TLS, sealing, flushing, frame reassembly, the read budget. */
#ifndef CC_PIPE_H
#define CC_PIPE_H

#include "../base/base.h"
#include "../tls/tls.h"
#include "../transport/transport.h"
#include "frame.h"

/* The pipe knows bytes, records and frames, never what a frame means or which
 * state the session is in: the session asks it to move bytes and decides. */
typedef struct cc__pipe cc__pipe;

/* Results besides CC_OK and the cc_errors. */
#define CC__PIPE_EOF   (-1100) /* the transport reached end of stream */
#define CC__PIPE_RESET (-1101) /* the peer reset the connection */
#define CC__PIPE_BYE   (-1102) /* the peer's TLS close_notify */

/* `owner` is handed to TLS for the certificate callback. NULL on OOM. */
cc__pipe *cc__pipe_new(const cc_context *ctx, const cc__tls_conf *conf, cc_session *owner);
/* Closes the transport, frees TLS, wipes the buffers. NULL is fine. */
void cc__pipe_free(cc__pipe *p);

/* Takes the transport (its socket is the pipe's to close from now on, even on
 * error). A console queues its preamble and its ClientHello at once; a client
 * queues its preamble only once the console's has arrived (doc/PROTOCOL.md 1).
 * `peer_name` (borrowed, may be NULL) is the name TLS checks. CC_OK, or < 0 a
 * cc_error with a detail (CC_ERR_NOMEM, a TLS set-up error). */
int cc__pipe_start(cc__pipe *p, const cc__transport *t, const char *peer_name, char *detail, size_t dn);
bool cc__pipe_started(const cc__pipe *p);
int cc__pipe_fd(const cc__pipe *p); /* -1 for host transports and once closed */
/* Closes the transport now; buffers and TLS stay for the queries. */
void cc__pipe_close(cc__pipe *p);

/* ---- in ---- */

/* A fresh read budget: each step reads at most 256 KiB, so one busy session
 * cannot starve the others on the same loop. */
void cc__pipe_refill(cc__pipe *p);
/* Reads one chunk from the transport and feeds it through the preamble (the
 * peer's is checked and TLS starts) into TLS. > 0 bytes read; 0 when the
 * transport would block, the budget is spent or reading has ended;
 * CC__PIPE_EOF, CC__PIPE_RESET; or < 0 a cc_error with a detail
 * (CC_ERR_BAD_MAGIC, CC_ERR_BAD_VERSION, CC_ERR_IO, CC_ERR_NOMEM, ...). */
long cc__pipe_recv(cc__pipe *p, char *detail, size_t dn);
/* Reads nothing more (the peer's CLOSE said it is done sending). */
void cc__pipe_stop_reading(cc__pipe *p);
/* true once reading has ended: end of stream, close_notify, or stopped. */
bool cc__pipe_in_done(const cc__pipe *p);

/* true once the peer's preamble has been accepted. */
bool cc__pipe_preamble_ok(const cc__pipe *p);
/* The TLS object: a console's from the start, a client's once the console's
 * preamble has been accepted; NULL before. */
const cc__tls *cc__pipe_tls(const cc__pipe *p);
/* Drives the TLS handshake: 1 once complete, 0 while it goes on (or before
 * the peer's preamble is in), < 0 a cc_error with a detail (the alert has been flushed). */
int cc__pipe_handshake(cc__pipe *p, char *detail, size_t dn);

/* The next complete frame once the handshake is done, decrypting as needed:
 * 1 with *h and *payload (valid until cc__pipe_frame_done), 0 when more bytes
 * are needed, CC__PIPE_BYE, or < 0 a cc_error with a detail (a bad header,
 * a frame over max_len, TLS). */
int cc__pipe_frame(cc__pipe *p, uint32_t max_len, cc__frame_hdr *h, const uint8_t **payload, char *detail, size_t dn);
/* Wipes and drops the frame cc__pipe_frame returned. */
void cc__pipe_frame_done(cc__pipe *p);

/* ---- out ---- */

/* Sending (doc/PROTOCOL.md 10). Frames wait in plaintext queues and are
 * sealed into TLS records one at a time, only as the transport takes them,
 * in this order: the urgent queue (PING, PONG, WINDOW); DATA of interactive
 * channels, round robin per frame; DATA of bulk channels, round robin per
 * frame; the ordered queue (handshake frames, an orderly CLOSE) once no DATA
 * is queued before it; close_notify last. A DATA frame goes only within its
 * channel's credit from the peer. */

/* The ordered queue; NULL once the end of TLS is asked for. */
cc__buf *cc__pipe_out(cc__pipe *p);
/* The urgent queue; NULL once close_notify is sealed. */
cc__buf *cc__pipe_out_urgent(cc__pipe *p);
/* Queues `len` bytes on `channel` as DATA frames of at most `frame_max`
 * payload bytes each (one frame when len is 0). CC_OK, CC_ERR_NOMEM (nothing
 * queued), CC_ERR_STATE once the end of TLS is asked for. */
int cc__pipe_queue_data(cc__pipe *p, uint16_t channel, const uint8_t *data, size_t len, size_t frame_max);
/* Bytes queued and not yet sealed on `channel`. */
size_t cc__pipe_channel_queued(const cc__pipe *p, uint16_t channel);
/* CC_PRIORITY_BULK or CC_PRIORITY_INTERACTIVE; CC_ERR_NOMEM. */
int cc__pipe_set_priority(cc__pipe *p, uint16_t channel, int prio);
/* Whether the host was told to wait on `channel`; set >= 0 sets it. */
bool cc__pipe_channel_blocked(cc__pipe *p, uint16_t channel, int set);
/* A blocked channel whose queue is down to `low_water` (now unblocked), or -1. */
int cc__pipe_next_ready(cc__pipe *p, size_t low_water);
/* The peer's WINDOW: `inc` more bytes of credit on `channel`. CC_OK, or
 * CC_ERR_PROTOCOL with a detail (credit past 2^31-1, too many channels). */
int cc__pipe_credit(cc__pipe *p, uint16_t channel, uint32_t inc, char *detail, size_t dn);
/* A DATA frame of `len` payload bytes came in on `channel`, to be delivered:
 * CC_ERR_PROTOCOL with a detail when it exceeds the credit we granted. */
int cc__pipe_received(cc__pipe *p, uint16_t channel, uint32_t len, char *detail, size_t dn);
/* The WINDOW increment owed on `channel` now (0: none): what was delivered
 * since the last grant once it reaches half the window, unless paused. */
uint32_t cc__pipe_grant_due(cc__pipe *p, uint16_t channel);
/* A paused channel is granted nothing more; on resuming, *grant is what is owed. */
int cc__pipe_pause_channel(cc__pipe *p, uint16_t channel, bool paused, uint32_t *grant);
/* Drops the queued DATA (the session is failing: its CLOSE goes first). */
void cc__pipe_drop_data(cc__pipe *p);
/* Bytes not yet handed to the transport, queued plaintext included. */
size_t cc__pipe_pending(const cc__pipe *p);
/* The same without the channels' queued DATA (each bounded by the host's
 * send buffer): what the peer's PINGs could make grow. */
size_t cc__pipe_pending_control(const cc__pipe *p);
/* true while sealed bytes wait for the transport. */
bool cc__pipe_want_write(const cc__pipe *p);
/* Seals frames as above and writes until the transport would block or
 * nothing more can go: CC_OK, CC__PIPE_RESET, or < 0 a cc_error with a detail. */
int cc__pipe_flush(cc__pipe *p, char *detail, size_t dn);
/* Asks for the end of TLS: close_notify follows every frame queued (once). */
int cc__pipe_end_tls(cc__pipe *p, char *detail, size_t dn);
/* true once the end of TLS is asked for. */
bool cc__pipe_tls_ended(const cc__pipe *p);
/* Half-closes the socket's write side, once (host transports cannot). */
void cc__pipe_shutdown_write(cc__pipe *p);

#endif /* CC_PIPE_H */
