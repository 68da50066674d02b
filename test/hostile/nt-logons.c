/* nt-logons.c -- a good console that logs on N times in a row with NT credentials,
 * one context for all (cc-console's start-up would make 4,100 logons take minutes). */
#define _POSIX_C_SOURCE 200809L
#include <carboncopy.h>

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One session to the end: 0 once it was established and closed, else its error. */
static int logon(cc_context *ctx, const char *host, uint16_t port, const char *user, const char *domain,
                 const char *password, char *why, size_t why_len)
{
    int err, r;
    bool closing = false;
    cc_session *s = cc_session_new(ctx, &err);
    if (!s)
        return err;
    if ((r = cc_session_set_credentials(s, user, domain, password)) < 0 || (r = cc_session_connect(s, host, port)) < 0)
        goto out;
    for (;;) {
        r = cc_session_step(s);
        if (r <= 0)
            break;
        if (r & CC_WANT_JOB) {
            cc_job *j;
            while ((j = cc_session_take_job(s)) != NULL) {
                cc_job_run(j); /* a resolve of an address literal: instant */
                cc_session_job_done(s, j);
            }
            continue;
        }
        if (!closing && cc_session_state(s) == CC_STATE_ESTABLISHED) {
            closing = true;
            cc_session_close(s, 0, "done");
            continue;
        }
        struct pollfd p = {cc_session_fd(s), 0, 0};
        p.events = (short)((r & CC_WANT_READ ? POLLIN : 0) | (r & CC_WANT_WRITE ? POLLOUT : 0));
        if (poll(&p, p.fd >= 0 && p.events ? 1 : 0, cc_session_timeout_ms(s)) < 0 && errno != EINTR) {
            r = CC_ERR_IO;
            break;
        }
    }
    if (r == 0 && !closing)
        r = CC_ERR_PROTOCOL; /* closed without ever being established */
out:
    if (r < 0)
        snprintf(why, why_len, "%s", cc_session_errmsg(s));
    cc_session_free(s);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: nt-logons HOST PORT CA-FILE USER DOMAIN PASSWORD N\n"
                        "  prints \"served K\" and the first failure as \"first_failure I CODE detail\"\n");
        return 2;
    }
    int err;
    long port = strtol(argv[2], NULL, 10), n = strtol(argv[7], NULL, 10);
    cc_context *ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    if (!ctx || cc_context_set_ca_file(ctx, argv[3]) < 0 || cc_context_add_builtin_authenticator(ctx, "nt") < 0) {
        fprintf(stderr, "nt-logons: cannot set up the context: %s\n", ctx ? cc_context_errmsg(ctx) : "no memory");
        cc_context_free(ctx);
        return 1;
    }
    long served = 0;
    bool failed = false;
    for (long i = 1; i <= n; i++) {
        char why[512] = "";
        int r = logon(ctx, argv[1], (uint16_t)port, argv[4], argv[5], argv[6], why, sizeof why);
        if (r == 0) {
            served++;
        } else if (!failed) {
            failed = true;
            printf("first_failure %ld %s %s\n", i, cc_err_name(r), why);
        }
    }
    printf("served %ld\n", served);
    cc_context_free(ctx);
    return 0;
}
