/* stats.c -- a context's counters for hosts at scale (cc_context_stats): sessions by state,
 * refusals, evictions, cache hits and job queue depth; the session code calls in with one line. */
#include "core.h"
#include "stats.h"

#include <stddef.h>
#include <string.h>

static struct cc__ctx_base *mut(const cc_context *ctx)
{
    return (struct cc__ctx_base *)(void *)(uintptr_t)ctx;
}

static void state_add(const cc_context *ctx, int st, int64_t d)
{
    if (st >= 0 && st < CC__STATE_SLOTS)
        atomic_fetch_add_explicit(&mut(ctx)->in_state[st], (uint64_t)d, memory_order_relaxed);
}

void cc__stats_new(const cc_context *ctx)
{
    cc__stat_add(ctx, CC__ST_CREATED, 1);
    state_add(ctx, CC_STATE_NEW, 1);
}

void cc__stats_enter(const cc_context *ctx, int from, int to)
{
    state_add(ctx, from, -1);
    state_add(ctx, to, 1);
    if (to == CC_STATE_ESTABLISHED)
        cc__stat_add(ctx, CC__ST_ESTABLISHED, 1);
    else if (to == CC_STATE_CLOSED)
        cc__stat_add(ctx, CC__ST_CLOSED, 1);
    else if (to == CC_STATE_FAILED)
        cc__stat_add(ctx, CC__ST_FAILED, 1);
}

void cc__stats_failure(const cc_context *ctx, int code)
{
    if (code <= CC_ERR_LICENSE_DENIED && code >= CC_ERR_LICENSE_CONFIG)
        cc__stat_add(ctx, CC__ST_LICENSE_REFUSED, 1);
    else if (code <= CC_ERR_AUTH && code >= CC_ERR_AUTH_UNAVAILABLE)
        cc__stat_add(ctx, CC__ST_AUTH_FAILED, 1);
}

void cc__stats_job_taken(const cc_context *ctx)
{
    cc__stat_add(ctx, CC__ST_JOBS_PENDING, -1);
    cc__stat_add(ctx, CC__ST_JOBS_OUT, 1);
}

void cc__stats_free(const cc_context *ctx, int state, unsigned jobs_pending)
{
    state_add(ctx, state, -1);
    if (jobs_pending)
        cc__stat_add(ctx, CC__ST_JOBS_PENDING, -(int64_t)jobs_pending);
}

static uint64_t get(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

CC_API int cc_context_stats(const cc_context *ctx, cc_stats *out)
{
    if (!ctx || !out || out->struct_size < offsetof(cc_stats, sessions))
        return CC_ERR_INVALID;
    const struct cc__ctx_base *b = cc__cbase(ctx);
    cc_stats st;
    memset(&st, 0, sizeof st);
    for (int i = 0; i < CC__STATE_SLOTS; i++)
        st.sessions[i] = get(&b->in_state[i]);
    st.sessions_created = get(&b->stat[CC__ST_CREATED]);
    st.sessions_established = get(&b->stat[CC__ST_ESTABLISHED]);
    st.sessions_closed = get(&b->stat[CC__ST_CLOSED]);
    st.sessions_failed = get(&b->stat[CC__ST_FAILED]);
    st.backoff_delayed = get(&b->stat[CC__ST_BACKOFF_DELAYED]);
    st.license_refused = get(&b->stat[CC__ST_LICENSE_REFUSED]);
    st.auth_failed = get(&b->stat[CC__ST_AUTH_FAILED]);
    cc__backoff *bo = &((cc_context *)(uintptr_t)ctx)->backoff; /* its own lock guards the count */
    pthread_mutex_lock(&bo->lock);
    st.backoff_evicted = bo->evicted;
    pthread_mutex_unlock(&bo->lock);
    st.nt_replay_evicted = get(&b->stat[CC__ST_NT_REPLAY_EVICTED]);
    st.license_cache_hits = get(&b->stat[CC__ST_LICENSE_HITS]);
    st.license_cache_misses = get(&b->stat[CC__ST_LICENSE_MISSES]);
    st.license_fetch_shared = get(&b->stat[CC__ST_LICENSE_SHARED]);
    st.jobs_pending = get(&b->stat[CC__ST_JOBS_PENDING]);
    st.jobs_out = get(&b->stat[CC__ST_JOBS_OUT]);
    st.krb5_contexts_made = get(&b->stat[CC__ST_KRB5_CTX_MADE]);
    st.krb5_contexts_reused = get(&b->stat[CC__ST_KRB5_CTX_REUSED]);
    st.krb5_acceptor_reads = get(&b->stat[CC__ST_KRB5_ACRED_READ]);
    st.krb5_acceptor_reuses = get(&b->stat[CC__ST_KRB5_ACRED_REUSED]);
    st.krb5_ccache_reads = get(&b->stat[CC__ST_KRB5_ICRED_READ]);
    st.krb5_ccache_reuses = get(&b->stat[CC__ST_KRB5_ICRED_REUSED]);
    size_t n = out->struct_size < sizeof st ? out->struct_size : sizeof st;
    st.struct_size = (uint32_t)n;
    memcpy(out, &st, n);
    return CC_OK;
}
