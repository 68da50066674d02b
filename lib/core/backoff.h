/* backoff.h -- slows online password guessing without locking anyone out:
 * after failed proofs from a source address, its next connection waits. */
#ifndef CC_BACKOFF_H
#define CC_BACKOFF_H

#include "../base/base.h"

#include <pthread.h>

#define CC__BACKOFF_SLOTS     1024   /* sources remembered per context; the oldest is forgotten */
#define CC__BACKOFF_FIRST_MS  250    /* the wait after the first failure, doubled after each next one */
#define CC__BACKOFF_FORGET_MS 600000 /* a source with no failure for this long starts over */
#define CC__SOURCE_MAX        16     /* an IPv6 address */

typedef struct cc__source {
    uint8_t len; /* 0: unknown (host transport) */
    uint8_t addr[CC__SOURCE_MAX];
} cc__source;

struct cc__backoff_slot {
    cc__source src;
    uint32_t failures;
    uint64_t last_ms;
};

/* Per context; the only state here that sessions of several threads share,
 * so it has its own lock. */
typedef struct cc__backoff {
    pthread_mutex_t lock;
    struct cc__backoff_slot slot[CC__BACKOFF_SLOTS];
    size_t used;
    uint64_t evicted; /* sources forgotten to make room (cc_context_stats) */
} cc__backoff;

int cc__backoff_init(cc__backoff *b);
void cc__backoff_free(cc__backoff *b);
/* Milliseconds a new session from `src` waits before it is served (0: none),
 * at most `max_ms`. */
uint32_t cc__backoff_wait(cc__backoff *b, const cc__source *src, uint32_t max_ms, uint64_t now);
/* Records the outcome of a proof from `src`: a failure lengthens its wait,
 * a success clears it. Sources of length 0 are not tracked. */
void cc__backoff_record(cc__backoff *b, const cc__source *src, bool ok, uint64_t now);

#endif
