/* kdc.h -- KDC traffic for the built-in mechanisms (kerberos, nt): locating a
 * realm's KDCs and exchanging messages with them, every wait bounded by one deadline. */
#ifndef CC_AUTH_KDC_H
#define CC_AUTH_KDC_H

#include "../../base/base.h"

#include <krb5/krb5.h>

/* Everything here blocks (sockets, DNS): call it only from an auth job's run
 * function, never from a step. */

/* The time the KDC traffic of one krb5_context may take. MIT 1.20 has no
 * overall request timeout (its own retry schedule waits ~30 s for a silent
 * KDC), so the library does the I/O itself and stops at at_ms. */
typedef struct cc__kdc_deadline {
    uint64_t at_ms; /* cc__now_ms() clock */
    bool timed_out; /* set once a wait for a KDC ran into at_ms */
} cc__kdc_deadline;

/* Installs the libkrb5 send hook on k: from then on every KDC message of k
 * goes through cc__kdc_exchange with d's deadline; once it has passed, KDC
 * messages fail at once with KRB5_KDC_UNREACH. d is borrowed: it must outlive
 * every libkrb5 call on k that may talk to a KDC. */
void cc__kdc_bind(krb5_context k, cc__kdc_deadline *d);

/* Sends msg to a KDC of realm (krb5.conf [realms] kdc entries, else DNS SRV
 * when dns_lookup_kdc allows) over TCP, then UDP, and stores its reply in
 * *reply_out; every wait ends by deadline (cc__now_ms clock). *handled is false
 * when no KDC could be located (libkrb5 then tries its own ways); *timed_out is
 * set when the deadline passed. */
krb5_error_code cc__kdc_exchange(krb5_context k, const krb5_data *realm, const krb5_data *msg, uint64_t deadline,
                                 krb5_data **reply_out, bool *handled, bool *timed_out);

#endif
