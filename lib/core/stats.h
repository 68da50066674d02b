/* stats.h -- the one-line hooks the session code calls for cc_context_stats (stats.c);
 * the floors below bump their counters with cc__stat_add (lib/base/base.h). */
#ifndef CC_STATS_H
#define CC_STATS_H

#include "../base/base.h"

/* A session was made (in CC_STATE_NEW). */
void cc__stats_new(const cc_context *ctx);
/* A session moved from state `from` to `to`. */
void cc__stats_enter(const cc_context *ctx, int from, int to);
/* A session fails with `code`: counted as a licence refusal or an authentication
 * failure when it is one. */
void cc__stats_failure(const cc_context *ctx, int code);
/* The host took a queued job. */
void cc__stats_job_taken(const cc_context *ctx);
/* A session in `state` was freed with jobs_pending jobs still queued. */
void cc__stats_free(const cc_context *ctx, int state, unsigned jobs_pending);

#endif
