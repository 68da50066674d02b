/* test-nt-peer.c -- an independent NTLM implementation as the peer: Samba's ntlm_auth
 * (package winbind) as the console against our client code, and as the server against our console. */
#include "../lib/auth/nt/nt.h"
#include "auth-peek.h"
#include "harness.h"

#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char store[600], smbconf[600];
static const uint8_t cb[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4,
                               3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8};

struct helper {
    pid_t pid;
    FILE *to, *from;
};

static int helper_start(struct helper *h, const char *protocol, const char *user, const char *domain,
                        const char *password)
{
    int in[2], out[2];
    char a1[128], a2[128], a3[128], a4[128], a5[700];
    if (pipe(in) || pipe(out))
        return -1;
    snprintf(a1, sizeof a1, "--helper-protocol=%s", protocol);
    snprintf(a2, sizeof a2, "--username=%s", user);
    snprintf(a3, sizeof a3, "--domain=%s", domain);
    snprintf(a4, sizeof a4, "--password=%s", password);
    snprintf(a5, sizeof a5, "--configfile=%s", smbconf);
    h->pid = fork();
    if (h->pid < 0)
        return -1;
    if (h->pid == 0) {
        dup2(in[0], 0), dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execlp("ntlm_auth", "ntlm_auth", a1, a2, a3, a4, a5, (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    h->to = fdopen(in[1], "w");
    h->from = fdopen(out[0], "r");
    return h->to && h->from ? 0 : -1;
}

static void helper_stop(struct helper *h)
{
    if (h->to)
        fclose(h->to);
    if (h->from)
        fclose(h->from);
    kill(h->pid, SIGTERM);
    waitpid(h->pid, NULL, 0);
}

/* Sends "CMD base64(data)" (or just CMD), reads the answer line; returns its
 * two-letter code in code[3] and the decoded payload. */
static int helper_talk(struct helper *h, const char *cmd, const uint8_t *data, size_t len, char code[3], uint8_t *out,
                       size_t *out_len, char *text, size_t text_len)
{
    static char line[16384];
    if (data) {
        char *b64 = malloc(4 * ((len + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
        fprintf(h->to, "%s %s\n", cmd, b64);
        free(b64);
    } else {
        fprintf(h->to, "%s\n", cmd);
    }
    fflush(h->to);
    if (!fgets(line, sizeof line, h->from))
        return -1;
    line[strcspn(line, "\r\n")] = '\0';
    memcpy(code, line, 2), code[2] = '\0';
    if (text && text_len) {
        size_t n = strlen(line) < text_len - 1 ? strlen(line) : text_len - 1;
        memcpy(text, line, n);
        text[n] = '\0';
    }
    if (out && strlen(line) > 3) {
        const char *b = line + 3;
        size_t bl = strlen(b), pad = (bl && b[bl - 1] == '=') + (bl > 1 && b[bl - 2] == '=');
        int n = EVP_DecodeBlock(out, (const unsigned char *)b, (int)bl);
        if (n < 0)
            return -1;
        *out_len = (size_t)n - pad;
    }
    return 0;
}

static cc_context *client_ctx(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!c || cc_context_add_builtin_authenticator(c, "nt") || cc_context_set_auth_option(c, "nt", "accounts", store) ||
        cc_context_set_auth_option(c, "nt", "domain", "CCTEST"))
        return NULL;
    return c;
}

/* Samba's client as the console, our code as the client. */
static void test_samba_console_our_client(void)
{
    struct helper h = {0};
    uint8_t neg[4096], chal[4096], auth[8192], nt_hash[16], wrong[16];
    size_t neg_len = 0, auth_len = 0;
    char code[3], detail[CC__DETAIL_MAX];
    cc_context *s = client_ctx();
    T_ASSERT(s);
    T_EQ(helper_start(&h, "ntlmssp-client-1", "alice", "CCTEST", "alice-pw"), 0);
    /* Samba adds MsvAvFlags and the MIC only when a session key is wanted */
    T_EQ(helper_talk(&h, "SF NTLMSSP_FEATURE_SESSION_KEY", NULL, 0, code, NULL, NULL, NULL, 0), 0);
    T_STREQ(code, "OK");
    T_EQ(helper_talk(&h, "YR", NULL, 0, code, neg, &neg_len, NULL, 0), 0);
    T_STREQ(code, "YR");
    cc_auth *cli = cc__auth_new(s, &s->auth.entry[0], CC_ROLE_CLIENT, NULL);
    cc__auth_set_binding(cli, cb);
    T_EQ(cc__auth_step(cli, neg, neg_len), CC_AUTH_CONTINUE);
    size_t chal_len = t_out_len(cli);
    memcpy(chal, t_out(cli), chal_len);
    T_EQ(helper_talk(&h, "TT", chal, chal_len, code, auth, &auth_len, NULL, 0), 0);
    /* the last token comes as "AF" (done) or "KK", depending on the version */
    T_ASSERT(strcmp(code, "KK") == 0 || strcmp(code, "AF") == 0);
    helper_stop(&h);

    /* ntlm_auth has no way to take our TLS channel binding, so the full
     * acceptor path refuses it for exactly that reason -- and no other. */
    T_EQ(cc__auth_step(cli, auth, auth_len), CC_ERR_AUTH_CHANNEL_BINDING);
    T_CONTAINS(cc__auth_detail(cli), "MsvAvChannelBindings");

    /* What the independent peer does cover: the message layout, NTOWFv2 (user
     * upper-casing, domain), NTProofStr over our challenge and target info,
     * and the MIC over all three messages, checked by our verifier. NOT
     * covered here: the channel-binding hash (see test-nt.c and the end-to-end
     * tests, where both sides are ours). */
    struct cc__nt_challenge c;
    struct cc__nt_authenticate a;
    T_EQ(cc__nt_parse_challenge(chal, chal_len, &c, detail, sizeof detail), 0);
    T_EQ(cc__nt_parse_authenticate(auth, auth_len, CC__NTLM_NEGOTIATE_UNICODE, &a, detail, sizeof detail), 0);
    T_STREQ(a.user, "alice");
    T_STREQ(a.domain, "CCTEST");
    T_ASSERT(a.av_flags & CC__AV_FLAG_MIC_PRESENT); /* Samba sends a MIC: our target info has a timestamp */
    T_ASSERT(a.mic_offset == 72);
    cc__nt_hash_password(s, "alice-pw", nt_hash);
    cc__nt_hash_password(s, "not-alice-pw", wrong);
    T_EQ(cc__nt_verify_proof(s, nt_hash, &a, c.server_challenge, neg, neg_len, chal, chal_len, auth, auth_len, true,
                             detail, sizeof detail),
         0);
    T_EQ(cc__nt_verify_proof(s, wrong, &a, c.server_challenge, neg, neg_len, chal, chal_len, auth, auth_len, true,
                             detail, sizeof detail),
         CC_ERR_AUTH_BAD_CREDENTIALS);
    /* its MIC covers our CHALLENGE: one changed byte in our copy breaks it */
    chal[chal_len - 5] ^= 1;
    T_EQ(cc__nt_verify_proof(s, nt_hash, &a, c.server_challenge, neg, neg_len, chal, chal_len, auth, auth_len, true,
                             detail, sizeof detail),
         CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(detail, "MIC");
    cc__auth_free(cli);
    cc_context_free(s);
}

/* Our console against Samba's server (ntlm_auth checking a local password). */
static int our_console_samba_server(const char *password, char *verdict, size_t vlen)
{
    struct helper h = {0};
    uint8_t tok[8192];
    size_t len = 0;
    char code[3];
    int rc = -1;
    cc_context *c = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    cc_context_add_builtin_authenticator(c, "nt");
    cc_auth *con = cc__auth_new(c, &c->auth.entry[0], CC_ROLE_CONSOLE, NULL);
    cc__auth_set_credentials(con, "alice", "CCTEST", password);
    cc__auth_set_binding(con, cb);
    if (helper_start(&h, "squid-2.5-ntlmssp", "alice", "CCTEST", "alice-pw") != 0)
        goto out;
    if (cc__auth_step(con, NULL, 0) != CC_AUTH_CONTINUE)
        goto out;
    if (helper_talk(&h, "YR", t_out(con), t_out_len(con), code, tok, &len, verdict, vlen) || strcmp(code, "TT") != 0)
        goto out;
    if (cc__auth_step(con, tok, len) != CC_AUTH_DONE)
        goto out;
    if (helper_talk(&h, "KK", t_out(con), t_out_len(con), code, NULL, NULL, verdict, vlen))
        goto out;
    rc = strcmp(code, "AF") == 0 ? 1 : 0;
out:
    if (h.pid > 0)
        helper_stop(&h);
    cc__auth_free(con);
    cc_context_free(c);
    return rc;
}

static void test_our_console_samba_server(void)
{
    char verdict[512] = "";
    T_EQ(our_console_samba_server("alice-pw", verdict, sizeof verdict), 1);
    T_CONTAINS(verdict, "AF");
    T_EQ(our_console_samba_server("wrong-pw", verdict, sizeof verdict), 0);
    T_CONTAINS(verdict, "NA");
}

int main(void)
{
    alarm(60); /* a hung helper must not hang the suite */
    snprintf(store, sizeof store, "%s/smbpasswd", t_tmpdir());
    snprintf(smbconf, sizeof smbconf, "%s/smb.conf", t_tmpdir());
    FILE *f = fopen(smbconf, "w");
    if (f) {
        fprintf(f,
                "[global]\n  workgroup = CCTEST\n  netbios name = CCPEER\n  lock directory = %s\n"
                "  state directory = %s\n  cache directory = %s\n  private dir = %s\n",
                t_tmpdir(), t_tmpdir(), t_tmpdir(), t_tmpdir());
        fclose(f);
    }
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    uint8_t hsh[16];
    cc__nt_hash_password(ctx, "alice-pw", hsh);
    cc_context_free(ctx);
    f = fopen(store, "w");
    if (f) {
        fprintf(f, "alice:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:");
        for (int i = 0; i < 16; i++)
            fprintf(f, "%02X", hsh[i]);
        fprintf(f, ":[U          ]:LCT-5F5E1000:\n");
        fclose(f);
    }
    t_run("samba_console_our_client", test_samba_console_our_client);
    t_run("our_console_samba_server", test_our_console_samba_server);
    return t_done();
}
