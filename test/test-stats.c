/* test-stats.c -- cc_context_stats() through in-process session pairs: sessions by state, a granted
 * session, a denied licence, a failed proof, a licence cache hit, the job queue and backoff, on both
 * roles; and the struct_size contract (a short struct gets only its prefix). */
#define _GNU_SOURCE
#include "harness.h"
#include "pair.h"

#include "../examples/psk.h"
#include "../lib/core/core.h"

#include <carboncopy.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char pskfile[600], otherpsk[600];

static cc_context *client_ctx(void)
{
    return tp_psk_context(CC_ROLE_CLIENT, pskfile);
}

static cc_context *console_ctx(const char *key)
{
    return tp_psk_context(CC_ROLE_CONSOLE, key);
}

static cc_stats stats(const cc_context *c)
{
    cc_stats s;
    memset(&s, 0xee, sizeof s);
    s.struct_size = sizeof s;
    if (cc_context_stats(c, &s) != CC_OK)
        memset(&s, 0xff, sizeof s);
    return s;
}

static uint64_t live(const cc_stats *s)
{
    uint64_t n = 0;
    for (int i = 0; i < 16; i++)
        n += s->sessions[i];
    return n;
}

/* A fresh pair of sides with licence figures (granted unless in_use >= count). */
static void sides(struct tp_pair *p, uint32_t count, uint32_t in_use)
{
    memset(&p->con, 0, sizeof p->con);
    memset(&p->cli, 0, sizeof p->cli);
    p->cli.lic_count = count;
    p->cli.lic_in_use = in_use;
}

static void t_fresh_context_is_zero(void)
{
    cc_context *c = client_ctx();
    T_ASSERT(c);
    cc_stats s = stats(c);
    T_EQ(s.struct_size, sizeof s);
    T_EQ(s.reserved, 0);
    T_EQ(live(&s), 0);
    T_EQ(s.sessions_created, 0);
    T_EQ(s.jobs_pending + s.jobs_out, 0);
    T_EQ(s.license_cache_hits + s.license_cache_misses, 0);
    cc_context_free(c);
}

static void t_granted_then_cache_hit(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx(pskfile);
    p.sctx = client_ctx();
    T_ASSERT(p.cctx && p.sctx);
    sides(&p, 25, 7);
    T_EQ(tp_pair_open(&p, "tester", NULL), 0);
    cc_stats c = stats(p.cctx), s = stats(p.sctx);
    T_EQ(c.sessions_created, 1);
    T_EQ(s.sessions_created, 1);
    T_EQ(live(&c), 1);
    T_EQ(live(&s), 1);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    c = stats(p.cctx);
    s = stats(p.sctx);
    T_EQ(c.sessions[CC_STATE_ESTABLISHED], 1);
    T_EQ(s.sessions[CC_STATE_ESTABLISHED], 1);
    T_EQ(live(&c), 1);
    T_EQ(c.sessions_established, 1);
    T_EQ(s.sessions_established, 1);
    T_EQ(s.license_cache_misses, 1); /* the first check asks (here: the host answers the job) */
    T_EQ(s.license_cache_hits, 0);
    T_EQ(c.license_cache_misses + c.license_cache_hits, 0); /* consoles check no licence */
    T_EQ(s.jobs_pending + s.jobs_out, 0);
    T_EQ(c.jobs_pending + c.jobs_out, 0);
    T_EQ(s.auth_failed + s.license_refused + s.sessions_failed, 0);
    T_EQ(c.auth_failed + c.license_refused + c.sessions_failed, 0);
    /* An orderly close on both sides. */
    T_EQ(cc_session_close(p.con.s, 0, "done"), CC_OK);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    c = stats(p.cctx);
    s = stats(p.sctx);
    T_EQ(c.sessions_closed, 1);
    T_EQ(s.sessions_closed, 1);
    T_EQ(c.sessions[CC_STATE_CLOSED], 1);
    T_EQ(s.sessions[CC_STATE_CLOSED], 1);
    T_EQ(c.sessions[CC_STATE_ESTABLISHED], 0);
    tp_pair_end(&p);
    T_EQ(live(&(cc_stats){0}), 0);
    c = stats(p.cctx);
    s = stats(p.sctx);
    T_EQ(live(&c), 0);
    T_EQ(live(&s), 0);

    /* The second session of the client context takes the cached verdict: no licence job. */
    sides(&p, 25, 7);
    T_EQ(tp_pair_open(&p, "tester", NULL), 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    s = stats(p.sctx);
    T_EQ(s.license_cache_hits, 1);
    T_EQ(s.license_cache_misses, 1);
    T_EQ(s.sessions_created, 2);
    T_EQ(s.sessions_established, 2);
    T_EQ(s.sessions[CC_STATE_ESTABLISHED], 1);
    tp_pair_free(&p);
}

static void t_license_denied(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx(pskfile);
    p.sctx = client_ctx();
    T_ASSERT(p.cctx && p.sctx);
    sides(&p, 10, 10);
    T_EQ(tp_pair_open(&p, "tester", NULL), 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_EQ(p.cli.result, CC_ERR_LICENSE_DENIED);
    cc_stats c = stats(p.cctx), s = stats(p.sctx);
    T_EQ(s.license_refused, 1);
    T_EQ(c.license_refused, 1); /* what the client told the console */
    T_EQ(s.auth_failed, 0);
    T_EQ(c.auth_failed, 0);
    T_EQ(s.sessions_failed, 1);
    T_EQ(c.sessions_failed, 1);
    T_EQ(s.sessions[CC_STATE_FAILED], 1);
    T_EQ(c.sessions[CC_STATE_FAILED], 1);
    T_EQ(s.sessions_established + c.sessions_established, 0);
    tp_pair_free(&p);
}

static void t_auth_failed(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx(otherpsk);
    p.sctx = client_ctx();
    T_ASSERT(p.cctx && p.sctx);
    sides(&p, 25, 7);
    T_EQ(tp_pair_open(&p, "tester", NULL), 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 5000));
    T_EQ(p.con.result, CC_ERR_AUTH_BAD_CREDENTIALS);
    cc_stats c = stats(p.cctx), s = stats(p.sctx);
    T_EQ(c.auth_failed, 1);
    T_EQ(s.auth_failed, 1);
    T_EQ(c.license_refused + s.license_refused, 0);
    T_EQ(c.sessions_failed, 1);
    T_EQ(s.sessions_failed, 1);
    tp_pair_free(&p);
}

/* Jobs: queued (pending), taken (out), handed back, and one freed by the host after its session. */
static void t_job_queue(void)
{
    struct tp_pair p = {0};
    p.cctx = console_ctx(pskfile);
    p.sctx = client_ctx();
    T_ASSERT(p.cctx && p.sctx);
    sides(&p, 25, 7);
    p.cli.hold_jobs = true; /* the licence job stays queued */
    T_EQ(tp_pair_open(&p, "tester", NULL), 0);
    uint64_t until = t_now_ms() + 5000;
    while (stats(p.sctx).jobs_pending == 0 && t_now_ms() < until) {
        tp_step(&p.con);
        tp_step(&p.cli);
        tp_poll(&p.con, &p.cli, 20);
    }
    cc_stats s = stats(p.sctx);
    T_EQ(s.jobs_pending, 1);
    T_EQ(s.jobs_out, 0);
    cc_job *j = cc_session_take_job(p.cli.s);
    T_ASSERT(j != NULL);
    s = stats(p.sctx);
    T_EQ(s.jobs_pending, 0);
    T_EQ(s.jobs_out, 1);
    /* The session goes while the host still holds its job; the job counts until it is freed. */
    cc_session_free(p.cli.s);
    p.cli.s = NULL;
    p.cli.ended = true;
    s = stats(p.sctx);
    T_EQ(s.jobs_out, 1);
    T_EQ(live(&s), 0);
    cc_job_free(j);
    s = stats(p.sctx);
    T_EQ(s.jobs_out, 0);

    /* A job taken and handed back leaves both gauges at 0; one left queued at free is dropped. */
    tp_pair_end(&p);
    sides(&p, 25, 7);
    p.cli.hold_jobs = true;
    T_EQ(tp_pair_open(&p, "tester", NULL), 0);
    until = t_now_ms() + 5000;
    while (stats(p.sctx).jobs_pending == 0 && t_now_ms() < until) {
        tp_step(&p.con);
        tp_step(&p.cli);
        tp_poll(&p.con, &p.cli, 20);
    }
    T_EQ(stats(p.sctx).jobs_pending, 1);
    j = cc_session_take_job(p.cli.s);
    T_ASSERT(j != NULL);
    T_EQ(cc_job_license_set_figures(j, 25, 7), CC_OK);
    T_EQ(cc_session_job_done(p.cli.s, j), CC_OK);
    s = stats(p.sctx);
    T_EQ(s.jobs_pending + s.jobs_out, 0);
    tp_pair_end(&p);
    s = stats(p.sctx);
    T_EQ(s.jobs_pending + s.jobs_out, 0);
    tp_pair_free(&p);
}

/* A mechanism whose console sends one token and whose client refuses it. */
static int deny_start(void *md, cc_auth *a, void **st)
{
    *st = md;
    return 0;
}
static int deny_step(void *st, cc_auth *a, const uint8_t *in, size_t n)
{
    if (cc_auth_role(a) == CC_ROLE_CONSOLE) {
        int r = cc_auth_set_output(a, "proof", 5);
        return r < 0 ? r : CC_AUTH_CONTINUE;
    }
    return cc_auth_set_error(a, CC_ERR_AUTH_BAD_CREDENTIALS, "the proof is wrong");
}
static void deny_end(void *st) {}
static const cc_authenticator deny = {sizeof deny, "deny", deny_start, deny_step, deny_end, NULL, NULL, 0};

/* Backoff: a failed proof from 127.0.0.1 over TCP holds the next connection from there back. */
static void t_backoff_delayed(void)
{
    struct tp_pair p = {0};
    struct sockaddr_in addr;
    int lfd = t_listen(&addr);
    T_ASSERT(lfd >= 0);
    p.cctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    p.sctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_ASSERT(p.cctx && p.sctx);
    T_EQ(cc_context_set_pin_sha256(p.cctx, t_cert_pin()), CC_OK);
    T_EQ(cc_context_set_certificate(p.sctx, t_cert("client.pem"), t_cert("client.key")), CC_OK);
    T_EQ(cc_context_add_authenticator(p.cctx, &deny, NULL), CC_OK);
    T_EQ(cc_context_add_authenticator(p.sctx, &deny, NULL), CC_OK);
    sides(&p, 25, 7);
    T_EQ(tp_pair_connect(&p, lfd, &addr, "tester", NULL), 0);
    for (uint64_t until = t_now_ms() + 5000; !(p.con.ended && p.cli.ended) && t_now_ms() < until;) {
        tp_pair_step(&p);
        tp_pair_poll(&p, 20);
    }
    T_EQ(p.cli.result, CC_ERR_AUTH_BAD_CREDENTIALS);
    T_EQ(stats(p.sctx).backoff_delayed, 0);
    tp_pair_end(&p);
    sides(&p, 25, 7);
    T_EQ(tp_pair_connect(&p, lfd, &addr, "tester", NULL), 0);
    for (uint64_t until = t_now_ms() + 5000; !(p.con.ended && p.cli.ended) && t_now_ms() < until;) {
        tp_pair_step(&p);
        tp_pair_poll(&p, 20);
    }
    cc_stats s = stats(p.sctx);
    T_EQ(s.backoff_delayed, 1);
    T_EQ(s.auth_failed, 2);
    T_EQ(s.backoff_evicted, 0);
    T_EQ(stats(p.cctx).backoff_delayed, 0);
    tp_pair_free(&p);
    close(lfd);
}

/* Evictions: the backoff table (CC__BACKOFF_SLOTS sources) forgets its oldest source for a new one. */
static void t_backoff_evicted(void)
{
    cc_context *c = client_ctx();
    T_ASSERT(c);
    cc__source src = {4, {10, 0, 0, 0}};
    uint64_t now = 1000000;
    for (unsigned i = 0; i < CC__BACKOFF_SLOTS; i++) {
        src.addr[2] = (uint8_t)(i >> 8);
        src.addr[3] = (uint8_t)i;
        cc__backoff_record(&c->backoff, &src, false, now + i);
    }
    T_EQ(stats(c).backoff_evicted, 0);
    src.addr[1] = 1; /* one more source */
    cc__backoff_record(&c->backoff, &src, false, now + CC__BACKOFF_SLOTS);
    T_EQ(stats(c).backoff_evicted, 1);
    cc__backoff_record(&c->backoff, &src, false, now + CC__BACKOFF_SLOTS + 1); /* known: no eviction */
    T_EQ(stats(c).backoff_evicted, 1);
    cc_context_free(c);
}

static void t_struct_size(void)
{
    cc_context *c = client_ctx();
    T_ASSERT(c);
    cc_session *s = cc_session_new(c, NULL);
    T_ASSERT(s);
    /* A host built against an older header: only its prefix is written, and struct_size says so. */
    unsigned char buf[sizeof(cc_stats) + 64];
    memset(buf, 0xab, sizeof buf);
    cc_stats *st = (cc_stats *)(void *)buf;
    uint32_t short_size = (uint32_t)offsetof(cc_stats, sessions_created);
    st->struct_size = short_size;
    T_EQ(cc_context_stats(c, st), CC_OK);
    T_EQ(st->struct_size, short_size);
    T_EQ(st->sessions[CC_STATE_NEW], 1);
    for (size_t i = short_size; i < sizeof buf; i++)
        if (buf[i] != 0xab) {
            t_fail(__FILE__, __LINE__, "byte %zu past struct_size %u was written", i, short_size);
            return;
        }
    /* Only the header: nothing but struct_size and reserved. */
    memset(buf, 0xab, sizeof buf);
    st->struct_size = 8;
    T_EQ(cc_context_stats(c, st), CC_OK);
    T_EQ(st->struct_size, 8);
    T_EQ(buf[8], 0xab);
    /* A host built against a newer header: the library fills what it has and says how much. */
    memset(buf, 0xab, sizeof buf);
    st->struct_size = (uint32_t)sizeof buf;
    T_EQ(cc_context_stats(c, st), CC_OK);
    T_EQ(st->struct_size, sizeof(cc_stats));
    T_EQ(st->sessions_created, 1);
    T_EQ(buf[sizeof(cc_stats)], 0xab);
    /* Too short or NULL. */
    st->struct_size = 7;
    T_EQ(cc_context_stats(c, st), CC_ERR_INVALID);
    T_EQ(cc_context_stats(c, NULL), CC_ERR_INVALID);
    st->struct_size = sizeof(cc_stats);
    T_EQ(cc_context_stats(NULL, st), CC_ERR_INVALID);
    cc_session_free(s);
    T_EQ(stats(c).sessions[CC_STATE_NEW], 0);
    cc_context_free(c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = t_tmpdir();
    if (t_make_certs() != 0) {
        printf("not ok - cannot make test certificates\n");
        return 1;
    }
    snprintf(pskfile, sizeof pskfile, "%s/psk.key", tmp);
    snprintf(otherpsk, sizeof otherpsk, "%s/other.key", tmp);
    FILE *f = fopen(pskfile, "w");
    fputs("0123456789abcdef-test-key\n", f);
    fclose(f);
    f = fopen(otherpsk, "w");
    fputs("another-key-entirely-0000\n", f);
    fclose(f);
    t_run("stats: a fresh context counts nothing", t_fresh_context_is_zero);
    t_run("stats: a granted session on both roles, an orderly close, then a licence cache hit",
          t_granted_then_cache_hit);
    t_run("stats: a denied licence counts as a licence refusal on both roles", t_license_denied);
    t_run("stats: a failed proof counts as an authentication failure on both roles", t_auth_failed);
    t_run("stats: jobs pending and out, handed back, freed after their session", t_job_queue);
    t_run("stats: a failed proof holds the next connection from that address back", t_backoff_delayed);
    t_run("stats: a full backoff table counts the source it forgets", t_backoff_evicted);
    t_run("stats: struct_size: a short struct gets only its prefix, a long one what the library has", t_struct_size);
    return t_done();
}
