/* simple-console.c -- the smallest console, written against <carboncopy.h> alone: the loop an
 * embedder copies. Usage: simple-console HOST PORT CA-FILE USER DOMAIN < password (NT security). */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* explicit_bzero */
#endif
#include <carboncopy.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Jobs (name resolution, the domain controller's account check) may block, so each runs on a
 * thread of its own and comes back through this pipe, which the loop polls with the socket.
 * A host that may block runs them inline instead: cc_job_run(job); cc_session_job_done(s, job). */
static int done_pipe[2];

static void *run_job(void *job)
{
    cc_job_run(job);
    if (write(done_pipe[1], &job, sizeof job) != sizeof job) /* a pointer: atomic on a pipe */
        perror("write");
    return NULL;
}

/* Called from within cc_session_step(); it may send and close, but not free the session. */
static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    (void)user;
    if (ev->type == CC_EVENT_STATE) {
        printf("state: %s\n", cc_state_name(ev->state));
        if (ev->state == CC_STATE_ESTABLISHED) { /* the remote-control session would start here */
            cc_session_send(s, 1, "hello", 5);
            cc_session_close(s, 0, "done");
        }
    } else if (ev->type == CC_EVENT_LICENSE) {
        printf("licence %s: %u of %u in use\n", ev->granted ? "granted" : "denied", ev->license_in_use,
               ev->license_count);
    } else if (ev->type == CC_EVENT_AUTH) {
        printf("%s %s\n", ev->code ? "authentication failed:" : "authenticated as", ev->text);
    } else if (ev->type == CC_EVENT_DATA) {
        printf("%zu bytes on channel %u\n", ev->len, ev->channel);
    } else if (ev->type == CC_EVENT_CLOSED) {
        printf("closed: %s%s%s\n", ev->code ? cc_err_name(ev->code) : "", ev->code ? ": " : "", ev->text);
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT CA-FILE USER DOMAIN < password\n", argv[0]);
        return 2;
    }
    char password[256] = "";
    if (!fgets(password, sizeof password, stdin))
        password[0] = 0;
    password[strcspn(password, "\r\n")] = 0;

    /* A context per configuration, a session per connection. */
    int err = CC_OK;
    cc_context *ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    cc_session *s = NULL;
    if (!ctx || (err = cc_context_set_ca_file(ctx, argv[3])) < 0 ||
        (err = cc_context_add_builtin_authenticator(ctx, "nt")) < 0 || !(s = cc_session_new(ctx, &err)) ||
        (err = cc_session_set_event_callback(s, on_event, NULL)) < 0 ||
        (err = cc_session_set_credentials(s, argv[4], argv[5], password)) < 0 ||
        (err = cc_session_connect(s, argv[1], (uint16_t)atoi(argv[2]))) < 0 || pipe(done_pipe) != 0) {
        fprintf(stderr, "%s: %s\n", cc_err_name(err), s ? cc_session_errmsg(s) : ctx ? cc_context_errmsg(ctx) : "");
        explicit_bzero(password, sizeof password);
        cc_session_free(s);
        cc_context_free(ctx);
        return 1;
    }
    explicit_bzero(password, sizeof password); /* the session keeps its own copy until authenticated */

    /* Step, hand out the jobs, wait for what the step asked for; step never blocks. */
    int r, out = 0; /* jobs on threads */
    cc_job *job;
    while ((r = cc_session_step(s)) > 0) { /* 0: closed cleanly, < 0: failed (a cc_error) */
        while ((job = cc_session_take_job(s)) != NULL) {
            pthread_t t;
            if (pthread_create(&t, NULL, run_job, job) == 0)
                pthread_detach(t);
            else
                run_job(job); /* no thread to spare: run it here; it comes back the same way */
            out++;
        }
        /* a cc_socket is a descriptor on POSIX */
        struct pollfd p[2] = {{(int)cc_session_fd(s), 0, 0}, {done_pipe[0], POLLIN, 0}};
        if (r & CC_WANT_READ)
            p[0].events |= POLLIN;
        if (r & CC_WANT_WRITE)
            p[0].events |= POLLOUT;
        poll(p, 2, cc_session_timeout_ms(s)); /* no socket yet (resolving): fd -1 is ignored */
        if ((p[1].revents & POLLIN) && read(done_pipe[0], &job, sizeof job) == sizeof job) {
            cc_session_job_done(s, job); /* on the session's thread */
            out--;
        }
    }
    if (r < 0)
        fprintf(stderr, "%s: %s\n", cc_err_name(r), cc_session_errmsg(s));
    cc_session_free(s);
    for (; out > 0 && read(done_pipe[0], &job, sizeof job) == sizeof job; out--)
        cc_job_free(job); /* a job still out when the session failed: wait for it, then free it */
    close(done_pipe[0]);
    close(done_pipe[1]);
    cc_context_free(ctx);
    return r == 0 ? 0 : 1;
}
