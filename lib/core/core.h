/* core.h -- the top floor's own declarations: struct cc_context, composed of
 * the common part (lib/base) and the part each layer below owns. */
#ifndef CC_CORE_H
#define CC_CORE_H

#include "../auth/auth.h"
#include "../base/base.h"
#include "../license/license.h"
#include "../tls/tls.h"
#include "backoff.h"
#include "stats.h"

struct cc_context {
    struct cc__ctx_base base; /* first: the floors below reach it through cc__base() */
    cc__tls_conf tls;
    cc__license_conf license;
    cc__auth_conf auth;
    cc__backoff backoff; /* client: waits after failed proofs, per source address */
    /* what every new session starts with (cc_context_set_socket_callback, lib/core/notify.c) */
    struct {
        cc_socket_fn sock_fn;
        void *sock_user;
        cc_timer_fn timer_fn;
        void *timer_user;
    } hooks;
    cc_resume_fn resume_fn; /* client: the host's say on a reconnect (resume.c) */
    void *resume_user;
    int consent_mode; /* client: cc_consent_mode */
};

#endif /* CC_CORE_H */
