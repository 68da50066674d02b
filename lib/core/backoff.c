/* backoff.c -- per-source waits after failed proofs: the wait grows with each
 * failure from one address and never refuses, so no account is locked out. */
#include "backoff.h"

#include <string.h>

int cc__backoff_init(cc__backoff *b)
{
    memset(b, 0, sizeof *b);
    return pthread_mutex_init(&b->lock, NULL) == 0 ? CC_OK : CC_ERR_NOMEM;
}

void cc__backoff_free(cc__backoff *b)
{
    pthread_mutex_destroy(&b->lock);
    cc__wipe(b, sizeof *b);
}

static struct cc__backoff_slot *find(cc__backoff *b, const cc__source *src)
{
    for (size_t i = 0; i < b->used; i++)
        if (b->slot[i].src.len == src->len && memcmp(b->slot[i].src.addr, src->addr, src->len) == 0)
            return &b->slot[i];
    return NULL;
}

uint32_t cc__backoff_wait(cc__backoff *b, const cc__source *src, uint32_t max_ms, uint64_t now)
{
    if (!src->len || !max_ms)
        return 0;
    uint32_t wait = 0;
    pthread_mutex_lock(&b->lock);
    struct cc__backoff_slot *e = find(b, src);
    if (e && e->failures && now - e->last_ms < CC__BACKOFF_FORGET_MS) {
        uint64_t w = CC__BACKOFF_FIRST_MS;
        for (uint32_t i = 1; i < e->failures && w < max_ms; i++)
            w *= 2;
        wait = w < max_ms ? (uint32_t)w : max_ms;
    }
    pthread_mutex_unlock(&b->lock);
    return wait;
}

void cc__backoff_record(cc__backoff *b, const cc__source *src, bool ok, uint64_t now)
{
    if (!src->len)
        return;
    pthread_mutex_lock(&b->lock);
    struct cc__backoff_slot *e = find(b, src);
    if (ok) {
        if (e) /* forgotten at once: the slot goes to the end's occupant */
            *e = b->slot[--b->used];
    } else {
        if (!e) {
            if (b->used < CC__BACKOFF_SLOTS) {
                e = &b->slot[b->used++];
            } else { /* full: the source heard from least recently makes room */
                b->evicted++;
                e = &b->slot[0];
                for (size_t i = 1; i < b->used; i++)
                    if (b->slot[i].last_ms < e->last_ms)
                        e = &b->slot[i];
            }
            memset(e, 0, sizeof *e);
            e->src = *src;
        } else if (now - e->last_ms >= CC__BACKOFF_FORGET_MS) {
            e->failures = 0;
        }
        if (e->failures < UINT32_MAX)
            e->failures++;
        e->last_ms = now;
    }
    pthread_mutex_unlock(&b->lock);
}
