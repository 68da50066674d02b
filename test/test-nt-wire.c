/* test-nt-wire.c -- what a hostile console can do to the nt exchange, against the real
 * cc-client over TLS: replayed AUTHENTICATE, wrong channel binding, truncated and oversized tokens. */
#include "auth-peek.h"
#include "harness.h"
#include "pair.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[400], out_path[600], ca[600];
static pid_t client_pid;
static unsigned port;

/* ---- a console-side wrapper around the built-in nt mechanism ---- */
enum mode { M_PASS, M_RECORD, M_REPLAY, M_FLIP_CB, M_TRUNCATE, M_BIG_NEGOTIATE, M_HUGE, M_OEM_ONLY, M_NEITHER };
static int mode;
static uint8_t saved[8192];
static size_t saved_len;
static const cc__builtin_auth *nt;

static int w_start(void *md, cc_auth *auth, void **state)
{
    return nt->vt->start(md, auth, state);
}
static int w_step(void *state, cc_auth *auth, const uint8_t *in, size_t in_len)
{
    uint8_t cb[CC__BINDING_LEN];
    const uint8_t *cbp;
    size_t cbn;
    if (mode == M_FLIP_CB && in && cc_auth_channel_binding(auth, &cbp, &cbn) == CC_OK) {
        memcpy(cb, cbp, sizeof cb);
        cb[5] ^= 0x20; /* the console sees another TLS connection's binding */
        cc__auth_set_binding(auth, cb);
    }
    int r = nt->vt->step(state, auth, in, in_len);
    if (mode == M_FLIP_CB && in) {
        cb[5] ^= 0x20;
        cc__auth_set_binding(auth, cb);
    }
    if (r < 0 || !t_have_out(auth))
        return r;
    size_t n = t_out_len(auth);
    uint8_t *tok = malloc(n + 100000);
    memcpy(tok, t_out(auth), n);
    if (!in && mode == M_BIG_NEGOTIATE) {
        memset(tok + n, 0, 2000 - n);
        cc_auth_set_output(auth, tok, 2000);
    } else if (!in && (mode == M_OEM_ONLY || mode == M_NEITHER)) {
        tok[12] &= (uint8_t)~0x01; /* NTLMSSP_NEGOTIATE_UNICODE off */
        if (mode == M_OEM_ONLY)
            tok[12] |= 0x02; /* NTLMSSP_NEGOTIATE_OEM on, as python3-ntlm-auth sends it */
        cc_auth_set_output(auth, tok, n);
    } else if (!in && mode == M_HUGE) {
        memset(tok + n, 0, 100000 - n);
        cc_auth_set_output(auth, tok, 100000);
    } else if (in && mode == M_RECORD) {
        memcpy(saved, tok, n);
        saved_len = n;
    } else if (in && mode == M_REPLAY) {
        cc_auth_set_output(auth, saved, saved_len);
    } else if (in && mode == M_TRUNCATE) {
        cc_auth_set_output(auth, tok, n - 7);
    }
    free(tok);
    return r;
}
static void w_end(void *state)
{
    nt->vt->end(state);
}
static void w_destroy(void *md)
{
    nt->vt->destroy(md);
}

/* One console session against cc-client; returns cc_session_error (0 = established). */
static int console(int m, const char *password, char *errmsg, size_t errlen)
{
    mode = m;
    cc_context *ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    cc_authenticator vt = {sizeof vt, "nt", w_start, w_step, w_end, NULL, w_destroy, 0};
    cc_context_set_ca_file(ctx, ca);
    if (m == M_HUGE)
        cc_context_set_limit(ctx, CC_LIMIT_AUTH_TOKEN, 120000);
    cc_context_add_authenticator(ctx, &vt, nt->create(ctx));
    cc_session *s = cc_session_new(ctx, NULL);
    cc_session_set_credentials(s, "alice", "WORKGROUP", password);
    cc_session_connect(s, "localhost", (uint16_t)port);
    /* jobs: only the resolve job, run inline (quick on loopback) */
    struct tp_side sd = {.s = s}, none = {.ended = true};
    tp_drive(&sd, &none, tp_both_established, 20000);
    int r = sd.result;
    int err = cc_session_state(s) == CC_STATE_ESTABLISHED ? 0 : cc_session_error(s);
    if (err == 0 && r >= 0 && cc_session_state(s) != CC_STATE_ESTABLISHED)
        err = CC_ERR_TIMEOUT;
    snprintf(errmsg, errlen, "%s", cc_session_errmsg(s));
    if (err == 0) { /* close cleanly */
        cc_session_close(s, 0, "done");
        for (int i = 0; i < 200 && cc_session_step(s) > 0; i++) {
            struct pollfd p = {cc_session_fd(s), POLLIN, 0};
            poll(&p, 1, 10);
        }
    }
    cc_session_free(s);
    cc_context_free(ctx);
    return err;
}

static bool client_said(const char *needle)
{
    return t_file_has(out_path, needle);
}

static int start_client(void)
{
    char store[600], lic[600];
    snprintf(dir, sizeof dir, "%s", t_tmpdir());
    if (t_make_certs() != 0)
        return -1;
    snprintf(ca, sizeof ca, "%s", t_cert("ca.pem"));
    snprintf(store, sizeof store, "%s/smbpasswd", dir);
    snprintf(lic, sizeof lic, "%s/licence.xml", dir);
    snprintf(out_path, sizeof out_path, "%s/client.out", dir);
    FILE *f = fopen(lic, "w");
    fprintf(f, "<LicenseDetails><LicenseCount>5</LicenseCount><LicensesInUse>1</LicensesInUse></LicenseDetails>\n");
    fclose(f);
    f = fopen(store, "w"); /* NT hash of "alice-pw" */
    fprintf(
        f,
        "alice:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:D061EF15E9494B458016FA760CECDD63:[U          ]:LCT-5F5E1000:\n");
    fclose(f);
    char cert[700], key[700];
    snprintf(cert, sizeof cert, "%s", t_cert("client.pem"));
    snprintf(key, sizeof key, "%s", t_cert("client.key"));
    client_pid = fork();
    if (client_pid == 0) {
        if (!freopen(out_path, "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(126);
        execl(t_bin("cc-client"), "cc-client", "--listen", "127.0.0.1:0", "--json", "--cert", cert, "--key", key,
              "--license-file", lic, "--accounts", store, (char *)NULL);
        _exit(127);
    }
    return t_listening_port(out_path, &port, 5000);
}

static bool started;
static char em[CC__DETAIL_MAX];

static void test_client_started(void)
{
    T_ASSERT(started);
}

static void test_good_then_replayed(void)
{
    T_ASSERT(started);
    T_EQ(console(M_RECORD, "alice-pw", em, sizeof em), 0);
    T_ASSERT(saved_len > 88);
    /* the same AUTHENTICATE in a new TLS connection, inside the window */
    T_EQ(console(M_REPLAY, "alice-pw", em, sizeof em), CC_ERR_AUTH_REPLAY);
    T_CONTAINS(em, "already used");
    T_ASSERT(client_said("\"code\":\"CC_ERR_AUTH_REPLAY\""));
}

static void test_channel_binding_mismatch(void)
{
    T_ASSERT(started);
    T_EQ(console(M_FLIP_CB, "alice-pw", em, sizeof em), CC_ERR_AUTH_CHANNEL_BINDING);
    T_CONTAINS(em, "another TLS connection");
    T_ASSERT(client_said("\"code\":\"CC_ERR_AUTH_CHANNEL_BINDING\""));
}

static void test_truncated(void)
{
    T_ASSERT(started);
    T_EQ(console(M_TRUNCATE, "alice-pw", em, sizeof em), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(em, "AUTHENTICATE");
    T_ASSERT(client_said("\"code\":\"CC_ERR_AUTH_TOKEN\""));
}

static void test_oversized(void)
{
    T_ASSERT(started);
    T_EQ(console(M_BIG_NEGOTIATE, "alice-pw", em, sizeof em), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(em, "NEGOTIATE message is 2000 bytes");
    T_EQ(console(M_HUGE, "alice-pw", em, sizeof em), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(em, "client: nt token of 100000 bytes exceeds the limit");
}

/* The real cc-client answers an OEM-only NEGOTIATE with an OEM CHALLENGE (MS-NLMP
 * 3.2.5.1.1), which our own console, always Unicode, then refuses; one with neither
 * character set is refused by the client. */
static void test_negotiate_charset(void)
{
    T_ASSERT(started);
    T_EQ(console(M_OEM_ONLY, "alice-pw", em, sizeof em), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(em, "CHALLENGE NegotiateFlags lack NTLMSSP_NEGOTIATE_UNICODE (0xa2898206)");
    T_EQ(console(M_NEITHER, "alice-pw", em, sizeof em), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(em, "client: nt: NEGOTIATE NegotiateFlags (0xa2088204) set neither NTLMSSP_NEGOTIATE_UNICODE nor");
    T_ASSERT(client_said("set neither NTLMSSP_NEGOTIATE_UNICODE nor NTLMSSP_NEGOTIATE_OEM"));
}

static void test_still_serving(void)
{
    T_ASSERT(started);
    T_EQ(console(M_PASS, "alice-pw", em, sizeof em), 0);
    T_EQ(console(M_PASS, "wrong", em, sizeof em), CC_ERR_AUTH_BAD_CREDENTIALS);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    nt = cc__auth_builtin_find("nt");
    started = nt && start_client() == 0;
    t_run("client_started", test_client_started);
    t_run("good_then_replayed_authenticate", test_good_then_replayed);
    t_run("channel_binding_mismatch", test_channel_binding_mismatch);
    t_run("truncated_authenticate", test_truncated);
    t_run("oversized_tokens", test_oversized);
    t_run("negotiate_charset", test_negotiate_charset);
    t_run("client_still_serving", test_still_serving);
    if (client_pid > 0) {
        kill(client_pid, SIGTERM);
        waitpid(client_pid, NULL, 0);
    }
    return t_done();
}
