/* test-context.c -- the rules around contexts, jobs and host-written
 * mechanisms: read-only contexts, job ownership, an auth job's outcome. */
#include "../lib/base/base.h"
#include "harness.h"
#include "pair.h"

#include <carboncopy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a host-written mechanism whose console side needs one job ---- */
struct jobdata {
    int value;
};
static int jd_run(void *d)
{
    ((struct jobdata *)d)->value = 42;
    return 0;
}
static void jd_free(void *d)
{
    free(d);
}

struct jm_state {
    struct jobdata *jd; /* owned by the job once submitted */
    int seen_result;
    int seen_value;
};
static int jm_start(void *md, cc_auth *a, void **st)
{
    *st = calloc(1, sizeof(struct jm_state));
    return *st ? 0 : CC_ERR_NOMEM;
}
static int jm_step(void *state, cc_auth *a, const uint8_t *in, size_t n)
{
    struct jm_state *st = state;
    if (cc_auth_role(a) == CC_ROLE_CLIENT) {
        if (n != 2 || memcmp(in, "42", 2) != 0)
            return cc_auth_set_error(a, CC_ERR_AUTH_BAD_CREDENTIALS, "jobmech: wrong answer");
        cc_auth_set_identity(a, "job:42");
        return CC_AUTH_DONE;
    }
    if (!st->jd) {
        if (!(st->jd = calloc(1, sizeof *st->jd)))
            return CC_ERR_NOMEM;
        int r = cc_auth_submit_job(a, jd_run, jd_free, st->jd);
        return r < 0 ? r : CC_AUTH_PENDING;
    }
    /* after the job: its data is still valid, and its outcome is known */
    const char *detail = NULL;
    st->seen_result = cc_auth_job_result(a, &detail);
    st->seen_value = st->jd->value;
    if (st->seen_result < 0)
        return cc_auth_set_error(a, st->seen_result, detail);
    char out[3];
    snprintf(out, sizeof out, "%d", st->jd->value);
    cc_auth_set_output(a, out, 2);
    return CC_AUTH_DONE;
}
static int last_result = 1, last_value = -1;
static void jm_end(void *state)
{
    struct jm_state *st = state;
    last_result = st->seen_result;
    last_value = st->seen_value;
    free(st);
}
static const cc_authenticator jobmech = {sizeof jobmech, "jobmech", jm_start, jm_step, jm_end, NULL, NULL, 0};

static cc_context *ctx_for(int role)
{
    cc_context *c = cc_context_new(role, NULL, NULL);
    if (!c)
        return NULL;
    int r = role == CC_ROLE_CLIENT ? cc_context_set_certificate(c, t_cert("client.pem"), t_cert("client.key"))
                                   : cc_context_set_ca_file(c, t_cert("ca.pem"));
    if (r < 0 || cc_context_add_authenticator(c, &jobmech, NULL) < 0) {
        cc_context_free(c);
        return NULL;
    }
    return c;
}

static int job_mode; /* 0 run, 1 fail, 2 hand back untouched */
static bool answer_auth_job(struct tp_side *sd, cc_job *job)
{
    if (cc_job_type(job) != CC_JOB_AUTH)
        return false;
    if (job_mode == 0)
        cc_job_run(job);
    else if (job_mode == 1)
        cc_job_fail(job, CC_ERR_AUTH_KDC_UNREACHABLE, "test: the host's own KDC client gave up");
    return true;
}

static int run_jobmech(int mode, struct tp_pair *p)
{
    job_mode = mode;
    memset(p, 0, sizeof *p);
    p->cctx = ctx_for(CC_ROLE_CONSOLE);
    p->sctx = ctx_for(CC_ROLE_CLIENT);
    p->cli.lic_count = 2;
    p->con.answer = answer_auth_job;
    if (!p->cctx || !p->sctx || tp_pair_open(p, "tester", NULL) != 0)
        return -1;
    tp_drive(&p->con, &p->cli, tp_both_established, 5000);
    if (!p->con.ended && cc_session_state(p->con.s) == CC_STATE_ESTABLISHED)
        return 0;
    tp_drive(&p->con, &p->cli, tp_both_ended, 3000);
    return p->con.result;
}

static void t_auth_job_outcome(void)
{
    struct tp_pair p;
    T_EQ(run_jobmech(0, &p), 0);
    T_STREQ(cc_session_identity(p.cli.s), "job:42");
    tp_pair_free(&p);
    T_EQ(last_result, 0);
    T_EQ(last_value, 42); /* job_data read in the step after the job */

    T_EQ(run_jobmech(1, &p), CC_ERR_AUTH_KDC_UNREACHABLE);
    T_CONTAINS(cc_session_errmsg(p.con.s), "the host's own KDC client gave up");
    tp_pair_free(&p);
    T_EQ(last_result, CC_ERR_AUTH_KDC_UNREACHABLE);
    T_EQ(last_value, 0); /* run never ran */

    T_EQ(run_jobmech(2, &p), CC_ERR_CANCELLED);
    T_CONTAINS(cc_session_errmsg(p.con.s), "without running or answering it");
    tp_pair_free(&p);
}

static void t_context_read_only_while_used(void)
{
    cc_context *c = ctx_for(CC_ROLE_CONSOLE), *k = ctx_for(CC_ROLE_CLIENT);
    T_ASSERT(c && k);
    cc_session *s = cc_session_new(c, NULL), *s2 = cc_session_new(c, NULL);
    cc_session *ks = cc_session_new(k, NULL);
    T_ASSERT(s && s2 && ks);
    T_EQ(cc_context_set_ca_file(c, t_cert("ca.pem")), CC_ERR_STATE);
    T_CONTAINS(cc_context_errmsg(c), "read-only while 2 session(s) use it");
    T_EQ(cc_context_set_timeout(c, CC_TIMEOUT_HANDSHAKE, 100), CC_ERR_STATE);
    T_EQ(cc_context_set_limit(c, CC_LIMIT_FRAME_SIZE, 20000), CC_ERR_STATE);
    T_EQ(cc_context_set_pin_sha256(c, "00"), CC_ERR_STATE);
    T_EQ(cc_context_add_builtin_authenticator(c, "nt"), CC_ERR_STATE);
    T_EQ(cc_context_set_log(c, NULL, NULL, 0), CC_ERR_STATE);
    T_EQ(cc_context_set_license_url(k, "http://ns/x"), CC_ERR_STATE);
    T_EQ(cc_context_set_certificate(k, t_cert("client.pem"), t_cert("client.key")), CC_ERR_STATE);
    T_EQ(cc_context_set_auth_option(k, "jobmech", "x", "y"), CC_ERR_STATE);
    cc_session_free(s);
    cc_session_free(s2);
    cc_session_free(ks);
    /* free again: configurable, and the stale detail is gone */
    T_EQ(cc_context_set_timeout(c, CC_TIMEOUT_HANDSHAKE, 100), CC_OK);
    T_STREQ(cc_context_errmsg(c), "");
    T_EQ(cc_context_set_license_url(k, "http://ns/x"), CC_OK);
    T_EQ(cc_context_set_auth_policy(c, NULL, NULL), CC_ERR_CONFIG); /* a console has no policy */
    cc_context_free(c);
    cc_context_free(k);
}

static void t_job_goes_back_to_its_own_session(void)
{
    cc_context *c = ctx_for(CC_ROLE_CONSOLE);
    cc_session *a = cc_session_new(c, NULL), *b = cc_session_new(c, NULL);
    T_ASSERT(a && b);
    T_EQ(cc_session_connect(a, "localhost", 9), CC_OK);
    T_EQ(cc_session_connect(b, "localhost", 9), CC_OK);
    cc_session_step(a);
    cc_job *j = cc_session_take_job(a);
    T_ASSERT(j != NULL);
    T_EQ(cc_session_job_done(b, j), CC_ERR_INVALID); /* not b's */
    T_EQ(cc_session_job_done(a, j), CC_OK);
    T_EQ(cc_session_job_done(a, j), CC_ERR_INVALID);                   /* not out any more */
    T_EQ(cc_session_close(a, -108, "not a cc_error"), CC_ERR_INVALID); /* the peer must understand the code */
    cc_session_free(a);
    cc_session_free(b);
    cc_context_free(c);
}

static void t_paused_reading_is_not_idleness(void)
{
    struct tp_pair p;
    memset(&p, 0, sizeof p);
    job_mode = 0;
    p.cctx = ctx_for(CC_ROLE_CONSOLE);
    p.sctx = ctx_for(CC_ROLE_CLIENT);
    T_ASSERT(p.sctx && cc_context_set_timeout(p.sctx, CC_TIMEOUT_IDLE, 200) == CC_OK);
    p.cli.lic_count = 2;
    p.con.answer = answer_auth_job;
    T_ASSERT(tp_pair_open(&p, "tester", NULL) == 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_established, 5000));
    T_EQ(cc_session_pause_reading(p.cli.s, 1), CC_OK);
    tp_drive(&p.con, &p.cli, tp_both_ended, 600); /* three idle periods, paused */
    T_EQ(cc_session_state(p.cli.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_pause_reading(p.cli.s, 0), CC_OK);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 3000)); /* now silence counts again */
    T_EQ(p.cli.result, CC_ERR_IDLE_TIMEOUT);
    tp_pair_free(&p);
}

/* The header documents each timeout's and limit's default and range next to
 * its enumerator ("default D, MIN..MAX"); the library's one table must agree,
 * and the setters must accept exactly that range. */
static int check_header_row(const char *hdr, const cc__range *row, int which, bool timeout)
{
    char key[64];
    snprintf(key, sizeof key, "%s = %d,", row->name, which);
    const char *p = strstr(hdr, key);
    if (!p) {
        snprintf(key, sizeof key, "%s = %d ", row->name, which);
        p = strstr(hdr, key);
    }
    if (!p) {
        t_fail(__FILE__, __LINE__, "%s = %d not found in the header", row->name, which);
        return -1;
    }
    const char *eol = strchr(p, '\n');
    const char *d = strstr(p, "default ");
    unsigned long dflt, lo, hi;
    if (!d || d > eol || sscanf(d, "default %lu, %lu..%lu", &dflt, &lo, &hi) != 3) {
        t_fail(__FILE__, __LINE__, "%s: the header comment does not say \"default D, MIN..MAX\"", row->name);
        return -1;
    }
    if (dflt != row->dflt || lo != row->min || hi != row->max) {
        t_fail(__FILE__, __LINE__, "%s: header says default %lu, %lu..%lu; the library has %u, %u..%u", row->name, dflt,
               lo, hi, row->dflt, row->min, row->max);
        return -1;
    }
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    int (*set)(cc_context *, int, uint32_t) = timeout ? cc_context_set_timeout : cc_context_set_limit;
    int ok = set(c, which, row->min) == CC_OK && set(c, which, row->max) == CC_OK &&
             (row->min == 0 || set(c, which, row->min - 1) == CC_ERR_INVALID) &&
             set(c, which, row->max + 1) == CC_ERR_INVALID && strstr(cc_context_errmsg(c), row->name);
    cc_context_free(c);
    if (!ok) {
        t_fail(__FILE__, __LINE__, "%s: the setter does not accept exactly %u..%u", row->name, row->min, row->max);
        return -1;
    }
    return 0;
}

static void t_header_documents_the_ranges(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/include/carboncopy.h", getenv("CC_SRC") ? getenv("CC_SRC") : ".");
    FILE *f = fopen(path, "r");
    T_ASSERT(f);
    static char hdr[1 << 17];
    size_t n = fread(hdr, 1, sizeof hdr - 1, f);
    fclose(f);
    hdr[n] = 0;
    for (int i = 1; i < CC__TIMEOUT_COUNT; i++)
        T_EQ(check_header_row(hdr, &cc__timeout_range[i], i, true), 0);
    for (int i = 1; i < CC__LIMIT_COUNT; i++)
        T_EQ(check_header_row(hdr, &cc__limit_range[i], i, false), 0);
    /* and a fresh context starts at the defaults */
    cc_context *c = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    for (int i = 1; i < CC__TIMEOUT_COUNT; i++)
        T_EQ(cc__cbase(c)->timeout[i], cc__timeout_range[i].dflt);
    for (int i = 1; i < CC__LIMIT_COUNT; i++)
        T_EQ(cc__cbase(c)->limit[i], cc__limit_range[i].dflt);
    T_EQ(cc_context_set_timeout(c, 0, 1), CC_ERR_INVALID);
    T_EQ(cc_context_set_limit(c, CC__LIMIT_COUNT, 1), CC_ERR_INVALID);
    cc_context_free(c);
}

int main(void)
{
    if (t_make_certs() != 0) {
        printf("not ok - cannot make test certificates\n");
        return 1;
    }
    t_run("an auth job's data and outcome reach the mechanism's next step", t_auth_job_outcome);
    t_run("a context is read-only while sessions use it", t_context_read_only_while_used);
    t_run("a job goes back only to its own session", t_job_goes_back_to_its_own_session);
    t_run("paused reading does not count as the peer's silence", t_paused_reading_is_not_idleness);
    t_run("the header documents each default and range the library applies", t_header_documents_the_ranges);
    return t_done();
}
