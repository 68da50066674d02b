/* test-nt.c -- the "nt" authenticator: MS-NLMP 4.2.4 test vectors, message parsing,
 * and in-process console<->client exchanges through cc__auth_step for every error path. */
#include "../lib/auth/nt/nt.h"
#include "auth-peek.h"
#include "harness.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const char *h, uint8_t *out)
{
    for (size_t i = 0; h[2 * i]; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

#define T_MEMEQ(a, hexstr)                                                                                             \
    do {                                                                                                               \
        uint8_t want_[64];                                                                                             \
        hex(hexstr, want_);                                                                                            \
        T_ASSERT(memcmp((a), want_, strlen(hexstr) / 2) == 0);                                                         \
    } while (0)

/* ---- vectors ---- */
static void test_md4_rfc1320(void)
{
    uint8_t h[16];
    cc__nt_md4((const uint8_t *)"", 0, h);
    T_MEMEQ(h, "31d6cfe0d16ae931b73c59d7e0c089c0");
    cc__nt_md4((const uint8_t *)"abc", 3, h);
    T_MEMEQ(h, "a448017aaf21d8525fc10ae87aa6729d");
    cc__nt_md4((const uint8_t *)"message digest", 14, h);
    T_MEMEQ(h, "d9130a8164549fe818874806e1c7014b");
    const char *s = "abcdefghijklmnopqrstuvwxyz";
    cc__nt_md4((const uint8_t *)s, strlen(s), h);
    T_MEMEQ(h, "d79e1c308aa5bbcdeea8ed63df412da9");
    const char *d80 = "12345678901234567890123456789012345678901234567890123456789012345678901234567890";
    cc__nt_md4((const uint8_t *)d80, 80, h);
    T_MEMEQ(h, "e33b4ddc9c38f2199c3e7b164fcc0536");
}

/* MS-NLMP 4.2.1 common values: User, Domain, Password, server challenge
 * 0123456789abcdef, client challenge aa*8, Time 0; 4.2.4 NTLMv2 results. */
static const uint8_t ti_4_2_4[36] = {0x02, 0x00, 0x0c, 0x00, 'D',  0,    'o',  0,    'm',  0,    'a',  0,
                                     'i',  0,    'n',  0,    0x01, 0x00, 0x0c, 0x00, 'S',  0,    'e',  0,
                                     'r',  0,    'v',  0,    'e',  0,    'r',  0,    0x00, 0x00, 0x00, 0x00};

static void test_ms_nlmp_4_2_4(void)
{
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    uint8_t h[16], key[16], proof[16], sbk[16], sc[8], cch[8];
    cc__buf temp = {0};
    T_ASSERT(ctx);
    T_EQ(cc__nt_hash_password(ctx, "Password", h), 0);
    T_MEMEQ(h, "a4f49c406510bdcab6824ee7c30fd852"); /* 4.2.2.1.2 NTOWFv1 */
    T_EQ(cc__nt_ntowfv2(ctx, "Password", "User", "Domain", key), 0);
    T_MEMEQ(key, "0c868a403bfd7a93a3001ef22ef02e3f"); /* 4.2.4.1.1 NTOWFv2 */
    hex("0123456789abcdef", sc);
    memset(cch, 0xaa, 8);
    T_EQ(cc__nt_make_temp(ctx, &temp, 0, cch, ti_4_2_4, sizeof ti_4_2_4), 0);
    T_EQ(cc__nt_proof(key, sc, cc__buf_head(&temp), cc__buf_size(&temp), proof), 0);
    T_MEMEQ(proof, "68cd0ab851e51c96aabc927bebef6a1c"); /* 4.2.4.2.2 NTProofStr */
    T_EQ(cc__nt_session_base_key(key, proof, sbk), 0);
    T_MEMEQ(sbk, "8de40ccadbc14a82f15cb0ad0de95ca3"); /* 4.2.4.1.2 SessionBaseKey */
    /* 4.2.4.2.3: EncryptedSessionKey = RC4(KeyExchangeKey = SessionBaseKey, RandomSessionKey 55*16) */
    uint8_t ek[16];
    hex("c5dad2544fc9799094ce1ce90bc9d03e", ek);
    cc__nt_rc4(sbk, 16, ek, 16);
    T_MEMEQ(ek, "55555555555555555555555555555555");
    /* LMv2 response: HMAC_MD5(key, server || client challenge), 4.2.4.2.1 */
    const uint8_t *parts[2] = {sc, cch};
    size_t lens[2] = {8, 8};
    T_EQ(cc__nt_hmac_md5(key, 16, 2, parts, lens, proof), 0);
    T_MEMEQ(proof, "86c35097ac9cec102554764a57cccc19");
    /* The same key through the path the acceptor takes: NT hash + UTF-16 names. */
    static const uint8_t u16[] = {'u', 0, 's', 0, 'e', 0, 'r', 0},
                         d16[] = {'D', 0, 'o', 0, 'm', 0, 'a', 0, 'i', 0, 'n', 0};
    T_EQ(cc__nt_ntowfv2_from_hash(ctx, h, u16, sizeof u16, d16, sizeof d16, key), 0);
    T_MEMEQ(key, "0c868a403bfd7a93a3001ef22ef02e3f"); /* Uppercase(User) makes "user" == "User" */
    cc__buf_free(ctx, &temp);
    cc_context_free(ctx);
}

/* The CHALLENGE and AUTHENTICATE messages of MS-NLMP 4.2.4.3, byte for byte. */
static const char *chal_4_2_4_3 =
    "4e544c4d53535000 02000000 0c000c00 38000000 33828ae2 0123456789abcdef 0000000000000000"
    "24002400 44000000 06007017 0000000f 530065007200760065007200"
    "02000c00 44006f006d00610069006e00 01000c00 530065007200760065007200 00000000";
static const char *auth_4_2_4_3 = "4e544c4d535350000300000018001800"
                                  "6c00000054005400840000000c000c00"
                                  "48000000080008005400000010001000"
                                  "5c00000010001000d8000000358288e2"
                                  "0501280a0000000f44006f006d006100"
                                  "69006e00550073006500720043004f00"
                                  "4d00500055005400450052008 6c35097"
                                  "ac9cec102554764a57cccc19aaaaaaaa"
                                  "aaaaaaaa68cd0ab851e51c96aabc927b"
                                  "ebef6a1c010100000000000000000000"
                                  "00000000aaaaaaaaaaaaaaaa00000000"
                                  "02000c0044006f006d00610069006e00"
                                  "01000c00530065007200760065007200"
                                  "0000000000000000c5dad2544fc97990"
                                  "94ce1ce90bc9d03e";

static size_t unhex_spaced(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int half = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else
            continue;
        if (half < 0)
            half = v;
        else if (n < cap) {
            out[n++] = (uint8_t)(half << 4 | v);
            half = -1;
        }
    }
    return n;
}

static void test_ms_nlmp_4_2_4_3_messages(void)
{
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    uint8_t chal[256], auth[512], h[16], wrong[16];
    char detail[CC__DETAIL_MAX];
    struct cc__nt_challenge c;
    struct cc__nt_authenticate a;
    size_t cl = unhex_spaced(chal_4_2_4_3, chal, sizeof chal);
    size_t al = unhex_spaced(auth_4_2_4_3, auth, sizeof auth);
    T_ASSERT(ctx);
    T_EQ(al, 0xe8);
    T_EQ(cl, 104);
    T_EQ(cc__nt_parse_challenge(chal, cl, &c, detail, sizeof detail), 0);
    T_EQ(c.flags, 0xe28a8233u);
    T_MEMEQ(c.server_challenge, "0123456789abcdef");
    T_EQ(c.target_info_len, sizeof ti_4_2_4);
    T_ASSERT(memcmp(c.target_info, ti_4_2_4, sizeof ti_4_2_4) == 0);
    T_ASSERT(!c.have_timestamp);
    T_EQ(cc__nt_parse_authenticate(auth, al, CC__NTLM_NEGOTIATE_UNICODE, &a, detail, sizeof detail), 0);
    T_STREQ(a.user, "User");
    T_STREQ(a.domain, "Domain");
    T_STREQ(a.workstation, "COMPUTER");
    T_EQ(a.nt_len, 0x54);
    T_EQ(a.mic_offset, 0); /* payload starts at 0x48: this message has no MIC */
    T_EQ(a.flags & CC__NTLM_NEGOTIATE_KEY_EXCH, CC__NTLM_NEGOTIATE_KEY_EXCH);
    T_EQ(a.client_time, 0);
    T_MEMEQ(a.client_challenge, "aaaaaaaaaaaaaaaa");
    T_EQ(cc__nt_hash_password(ctx, "Password", h), 0);
    uint8_t sc[8];
    hex("0123456789abcdef", sc);
    T_EQ(cc__nt_verify_proof(ctx, h, &a, sc, NULL, 0, NULL, 0, auth, al, false, detail, sizeof detail), 0);
    T_EQ(cc__nt_hash_password(ctx, "password", wrong), 0);
    T_EQ(cc__nt_verify_proof(ctx, wrong, &a, sc, NULL, 0, NULL, 0, auth, al, false, detail, sizeof detail),
         CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(detail, "NTProofStr");
    /* the MIC is mandatory for our acceptor */
    T_EQ(cc__nt_verify_proof(ctx, h, &a, sc, NULL, 0, NULL, 0, auth, al, true, detail, sizeof detail),
         CC_ERR_AUTH_TOKEN);
    T_CONTAINS(detail, "MsvAvFlags");
    cc_context_free(ctx);
}

static void test_channel_binding_format(void)
{
    /* Z(16) || LE32(13 + 32) || "tls-exporter:" || cb, hashed with MD5 */
    uint8_t cb[32], buf[20 + 45], want[16], got[16];
    unsigned int wl = 0;
    for (int i = 0; i < 32; i++)
        cb[i] = (uint8_t)i;
    memset(buf, 0, 20);
    buf[16] = 45;
    memcpy(buf + 20, "tls-exporter:", 13);
    memcpy(buf + 33, cb, 32);
    T_EQ(EVP_Digest(buf, sizeof buf, want, &wl, EVP_md5(), NULL), 1);
    T_EQ(cc__nt_channel_binding_hash(cb, 32, got), 0);
    T_ASSERT(memcmp(want, got, 16) == 0);
}

static void test_utf16(void)
{
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    uint8_t *u;
    size_t n;
    char back[64];
    T_ASSERT(ctx);
    T_EQ(cc__nt_utf16_from_utf8(ctx, "J\xc3\xa9r\xc3\xb4me\xf0\x9f\x98\x80", 256, &u, &n), 0);
    T_EQ(n, 16); /* 6 BMP characters + a surrogate pair */
    T_EQ(cc__nt_utf8_from_utf16(u, n, back, sizeof back), 0);
    T_STREQ(back, "J\xc3\xa9r\xc3\xb4me\xf0\x9f\x98\x80");
    cc__nt_utf16_upper(u, n);
    T_EQ(cc__nt_utf8_from_utf16(u, n, back, sizeof back), 0);
    T_STREQ(back, "J\xc3\x89R\xc3\x94ME\xf0\x9f\x98\x80");
    cc__free(ctx, u);
    T_EQ(cc__nt_utf16_from_utf8(ctx, "\xc0\xaf", 256, &u, &n), CC_ERR_INVALID);     /* overlong */
    T_EQ(cc__nt_utf16_from_utf8(ctx, "\xed\xa0\x80", 256, &u, &n), CC_ERR_INVALID); /* surrogate */
    T_EQ(cc__nt_utf16_from_utf8(ctx, "abcd", 3, &u, &n), CC_ERR_INVALID);           /* too long */
    static const uint8_t lone[] = {0x00, 0xd8, 'a', 0}, ctl[] = {0x07, 0};
    T_EQ(cc__nt_utf8_from_utf16(lone, sizeof lone, back, sizeof back), -1);
    T_EQ(cc__nt_utf8_from_utf16(ctl, sizeof ctl, back, sizeof back), -1);
    cc_context_free(ctx);
}

/* ---- the account store ---- */
static const char *store_path;
static const uint8_t cb_a[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void write_store(void)
{
    static char path[512];
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    uint8_t h[16];
    char hx[33];
    snprintf(path, sizeof path, "%s/smbpasswd", t_tmpdir());
    FILE *f = fopen(path, "w");
    cc__nt_hash_password(ctx, "alice-pw", h);
    for (int i = 0; i < 16; i++)
        sprintf(hx + 2 * i, "%02X", h[i]);
    fprintf(f, "# test accounts\n");
    fprintf(f, "alice:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U          ]:LCT-5F5E1000:\n", hx);
    fprintf(f, "carol:1002:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[DU         ]:LCT-5F5E1000:\n", hx);
    fprintf(
        f,
        "nohash:1003:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:[U          ]:LCT-5F5E1000:\n");
    fprintf(f, "host$:1004:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[W          ]:LCT-5F5E1000:\n", hx);
    fprintf(f, "locked:1005:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[LU         ]:LCT-5F5E1000:\n", hx);
    cc__nt_hash_password(ctx, "gina-pw", h);
    for (int i = 0; i < 16; i++)
        sprintf(hx + 2 * i, "%02X", h[i]);
    fprintf(f, "gina:1006:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U          ]:LCT-5F5E1000:\n", hx);
    fclose(f);
    cc_context_free(ctx);
    store_path = path;
}

static void test_store(void)
{
    uint8_t h[16];
    char canon[64], detail[CC__DETAIL_MAX];
    T_EQ(cc__nt_store_lookup(store_path, "ALICE", h, canon, sizeof canon, detail, sizeof detail), 0);
    T_STREQ(canon, "alice");
    T_EQ(cc__nt_store_lookup(store_path, "bob", h, canon, sizeof canon, detail, sizeof detail),
         CC_ERR_AUTH_UNKNOWN_USER);
    T_EQ(cc__nt_store_lookup(store_path, "carol", h, canon, sizeof canon, detail, sizeof detail), CC_ERR_AUTH_DISABLED);
    T_CONTAINS(detail, "D flag");
    T_EQ(cc__nt_store_lookup(store_path, "nohash", h, canon, sizeof canon, detail, sizeof detail),
         CC_ERR_AUTH_DISABLED);
    T_CONTAINS(detail, "no NT hash");
    T_EQ(cc__nt_store_lookup(store_path, "host$", h, canon, sizeof canon, detail, sizeof detail),
         CC_ERR_AUTH_UNKNOWN_USER);
    T_EQ(cc__nt_store_lookup(store_path, "locked", h, canon, sizeof canon, detail, sizeof detail),
         CC_ERR_AUTH_DISABLED);
    T_EQ(cc__nt_store_lookup("/nonexistent/smbpasswd", "alice", h, canon, sizeof canon, detail, sizeof detail),
         CC_ERR_CONFIG);
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad-smbpasswd", t_tmpdir());
    FILE *f = fopen(bad, "w");
    fprintf(f, "alice:1000:XX:not-hex-not-hex-not-hex-not-hex!:[U ]:\n");
    fclose(f);
    T_EQ(cc__nt_store_lookup(bad, "alice", h, canon, sizeof canon, detail, sizeof detail), CC_ERR_CONFIG);
    T_CONTAINS(detail, "NT hash");
}

/* The reader's edges: lines across its 4 KiB reads, CRLF, no final newline,
 * the 1024-byte line limit. */
static void test_store_reader_edges(void)
{
    uint8_t h[16], want[16];
    char canon[64], detail[CC__DETAIL_MAX], path[512];
    const char *hx = "D061EF15E9494B458016FA760CECDD63";
    hex("d061ef15e9494b458016fa760cecdd63", want);
    snprintf(path, sizeof path, "%s/edges-smbpasswd", t_tmpdir());
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 300; i++) /* ~25 KiB: many reads, lines cut between them */
        fprintf(f, "user%03d:%d:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U ]:LCT-5F5E1000:\r\n", i, i, hx);
    fprintf(f, "# %01000d\n", 0); /* a comment of 1002 bytes */
    fprintf(f, "last:1:XX:%s:[U ]:", hx);
    fclose(f);
    T_EQ(cc__nt_store_lookup(path, "user000", h, canon, sizeof canon, detail, sizeof detail), 0);
    T_ASSERT(memcmp(h, want, 16) == 0);
    T_EQ(cc__nt_store_lookup(path, "user299", h, canon, sizeof canon, detail, sizeof detail), 0);
    T_STREQ(canon, "user299");
    T_ASSERT(memcmp(h, want, 16) == 0);
    for (int i = 0; i < 300; i += 7) {
        char u[16];
        snprintf(u, sizeof u, "USER%03d", i);
        T_EQ(cc__nt_store_lookup(path, u, h, canon, sizeof canon, detail, sizeof detail), 0);
    }
    T_EQ(cc__nt_store_lookup(path, "last", h, canon, sizeof canon, detail, sizeof detail), 0); /* no final newline */
    T_ASSERT(memcmp(h, want, 16) == 0);
    T_EQ(cc__nt_store_lookup(path, "absent", h, canon, sizeof canon, detail, sizeof detail), CC_ERR_AUTH_UNKNOWN_USER);
    T_CONTAINS(detail, "not in the local account store");
    /* one byte over the line limit, before the account: a configuration error */
    f = fopen(path, "w");
    fprintf(f, "# %01023d\nlast:1:XX:%s:[U ]:\n", 0, hx);
    fclose(f);
    T_EQ(cc__nt_store_lookup(path, "last", h, canon, sizeof canon, detail, sizeof detail), CC_ERR_CONFIG);
    T_CONTAINS(detail, "line 1 is longer than 1024 bytes");
    /* exactly at the limit is fine */
    f = fopen(path, "w");
    fprintf(f, "# %01022d\nlast:1:XX:%s:[U ]:\n", 0, hx);
    fclose(f);
    T_EQ(cc__nt_store_lookup(path, "last", h, canon, sizeof canon, detail, sizeof detail), 0);
    /* an empty file */
    f = fopen(path, "w");
    fclose(f);
    T_EQ(cc__nt_store_lookup(path, "last", h, canon, sizeof canon, detail, sizeof detail), CC_ERR_AUTH_UNKNOWN_USER);
}

/* ---- in-process exchanges ---- */
struct pair {
    cc_context *cctx, *sctx; /* console, client */
    cc_auth *con, *cli;
    int crc, src; /* last results */
    uint8_t neg[4096], chal[4096], auth[20000];
    size_t neg_len, chal_len, auth_len;
};

static cc_context *client_ctx(void)
{
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!c || cc_context_add_builtin_authenticator(c, "nt") != 0 ||
        cc_context_set_auth_option(c, "nt", "accounts", store_path) != 0 ||
        cc_context_set_auth_option(c, "nt", "domain", "CCTEST") != 0)
        return NULL;
    return c;
}

static void pair_open(struct pair *p, cc_context *sctx, const char *user, const char *domain, const char *password,
                      const uint8_t *ccb, const uint8_t *scb)
{
    memset(p, 0, sizeof *p);
    p->cctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    cc_context_add_builtin_authenticator(p->cctx, "nt");
    p->sctx = sctx;
    p->con = cc__auth_new(p->cctx, &p->cctx->auth.entry[0], CC_ROLE_CONSOLE, NULL);
    p->cli = cc__auth_new(p->sctx, &p->sctx->auth.entry[0], CC_ROLE_CLIENT, NULL);
    cc__auth_set_credentials(p->con, user, domain, password);
    if (ccb)
        cc__auth_set_binding(p->con, ccb);
    if (scb)
        cc__auth_set_binding(p->cli, scb);
}

static void take(cc_auth *a, uint8_t *dst, size_t *len)
{
    *len = t_have_out(a) ? t_out_len(a) : 0;
    if (*len)
        memcpy(dst, t_out(a), *len);
}

/* Runs NEGOTIATE and CHALLENGE; leaves the AUTHENTICATE in p->auth. */
static int pair_to_auth(struct pair *p)
{
    if ((p->crc = cc__auth_step(p->con, NULL, 0)) != CC_AUTH_CONTINUE)
        return p->crc;
    take(p->con, p->neg, &p->neg_len);
    if ((p->src = cc__auth_step(p->cli, p->neg, p->neg_len)) != CC_AUTH_CONTINUE)
        return p->src;
    take(p->cli, p->chal, &p->chal_len);
    if ((p->crc = cc__auth_step(p->con, p->chal, p->chal_len)) != CC_AUTH_DONE)
        return p->crc;
    take(p->con, p->auth, &p->auth_len);
    return 0;
}

static int pair_finish(struct pair *p)
{
    p->src = cc__auth_step(p->cli, p->auth, p->auth_len);
    return p->src;
}

static void pair_close(struct pair *p, bool free_sctx)
{
    cc__auth_free(p->con);
    cc__auth_free(p->cli);
    cc_context_free(p->cctx);
    if (free_sctx)
        cc_context_free(p->sctx);
}

static int exchange_ctx(cc_context *s, const char *user, const char *domain, const char *pw, char *id);

static int exchange(const char *user, const char *domain, const char *password, char *identity, char *detail)
{
    struct pair p;
    pair_open(&p, client_ctx(), user, domain, password, cb_a, cb_a);
    int rc = pair_to_auth(&p);
    if (!rc)
        rc = pair_finish(&p);
    if (identity)
        snprintf(identity, 256, "%s", cc__auth_identity(p.cli) ? cc__auth_identity(p.cli) : "");
    if (detail)
        snprintf(detail, CC__DETAIL_MAX, "%s",
                 cc__auth_detail(p.cli)[0] ? cc__auth_detail(p.cli) : cc__auth_detail(p.con));
    pair_close(&p, true);
    return rc;
}

static void test_exchange_ok(void)
{
    char id[256], d[CC__DETAIL_MAX];
    T_EQ(exchange("alice", "CCTEST", "alice-pw", id, d), CC_AUTH_DONE);
    T_STREQ(id, "CCTEST\\alice");
    T_EQ(exchange("ALICE", "", "alice-pw", id, d), CC_AUTH_DONE); /* empty domain = ours */
    T_STREQ(id, "CCTEST\\alice");
    T_EQ(exchange("Alice", "cctest", "alice-pw", id, d), CC_AUTH_DONE);
}

static void test_exchange_refusals(void)
{
    char d[CC__DETAIL_MAX];
    T_EQ(exchange("alice", "CCTEST", "wrong", NULL, d), CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(d, "NTProofStr");
    T_EQ(exchange("bob", "CCTEST", "x", NULL, d), CC_ERR_AUTH_UNKNOWN_USER);
    T_EQ(exchange("carol", "CCTEST", "alice-pw", NULL, d), CC_ERR_AUTH_DISABLED);
    T_EQ(exchange("nohash", "CCTEST", "", NULL, d), CC_ERR_AUTH_DISABLED);
    T_EQ(exchange("alice", "OTHER", "alice-pw", NULL, d), CC_ERR_AUTH_UNKNOWN_USER);
    T_CONTAINS(d, "not served");
    /* with a realm: a foreign domain is refused before any KDC traffic (no job) */
    cc_context *s = client_ctx();
    T_EQ(cc_context_set_auth_option(s, "nt", "realm", "NOWHERE.TEST"), 0);
    T_EQ(exchange_ctx(s, "alice", "OTHER", "alice-pw", NULL), CC_ERR_AUTH_UNKNOWN_USER);
    cc_context_free(s);
    T_EQ(exchange("", "CCTEST", "alice-pw", NULL, d), CC_ERR_AUTH_NO_CREDENTIALS);
    T_EQ(exchange("alice", "CCTEST", NULL, NULL, d), CC_ERR_AUTH_NO_CREDENTIALS);
}

static void test_channel_binding_mismatch(void)
{
    struct pair p;
    uint8_t other[32];
    memcpy(other, cb_a, 32);
    other[31] ^= 1;
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, other);
    T_EQ(pair_to_auth(&p), 0);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_CHANNEL_BINDING);
    T_CONTAINS(cc__auth_detail(p.cli), "another TLS connection");
    pair_close(&p, true);
    /* the console has no binding to give: it refuses to build an unbound message */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", NULL, cb_a);
    T_EQ(pair_to_auth(&p), CC_ERR_AUTH_CHANNEL_BINDING);
    pair_close(&p, true);
}

/* Rebuilds the console's AUTHENTICATE with special inputs (no binding, a time). */
static int rebuild(struct pair *p, const uint8_t *cb, uint64_t filetime, const char *password)
{
    cc__buf out = {0};
    uint8_t key[16];
    char detail[CC__DETAIL_MAX];
    cc__nt_ntowfv2(p->cctx, password, "alice", "CCTEST", key);
    struct cc__nt_auth_input in = {key,     "alice",     "CCTEST", "WS1",       p->neg, p->neg_len,
                                   p->chal, p->chal_len, cb,       cb ? 32 : 0, NULL,   filetime};
    int rc = cc__nt_build_authenticate(p->cctx, &out, &in, detail, sizeof detail);
    if (!rc) {
        memcpy(p->auth, cc__buf_head(&out), cc__buf_size(&out));
        p->auth_len = cc__buf_size(&out);
    }
    cc__buf_free(p->cctx, &out);
    return rc;
}

static void test_channel_binding_missing(void)
{
    struct pair p;
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    T_EQ(rebuild(&p, NULL, 0, "alice-pw"), 0); /* MsvAvChannelBindings all zero */
    T_EQ(pair_finish(&p), CC_ERR_AUTH_CHANNEL_BINDING);
    T_CONTAINS(cc__auth_detail(p.cli), "no MsvAvChannelBindings");
    pair_close(&p, true);
}

static void test_replay(void)
{
    struct pair p, q;
    cc_context *s = client_ctx();
    pair_open(&p, s, "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    T_EQ(pair_finish(&p), CC_AUTH_DONE);
    /* the same AUTHENTICATE into a second session of the same client */
    pair_open(&q, s, "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(q.cli, p.neg, p.neg_len), CC_AUTH_CONTINUE);
    T_EQ(cc__auth_step(q.cli, p.auth, p.auth_len), CC_ERR_AUTH_REPLAY);
    T_CONTAINS(cc__auth_detail(q.cli), "already used");
    /* and a second time into the same session is refused as out of sequence */
    T_EQ(cc__auth_step(p.cli, p.auth, p.auth_len), CC_ERR_AUTH_TOKEN);
    pair_close(&q, false);
    pair_close(&p, true);
}

/* A full cache forgets its oldest entry instead of refusing logons. */
static void test_replay_cache_bounded(void)
{
    struct pair first, last, q;
    cc_context *s = client_ctx();
    T_EQ(cc_context_set_auth_option(s, "nt", "replay-cache-size", "16"), 0);
    for (int i = 0; i < 17; i++) {
        struct pair p;
        pair_open(&p, s, "alice", "CCTEST", "alice-pw", cb_a, cb_a);
        T_EQ(pair_to_auth(&p), 0);
        T_EQ(pair_finish(&p), CC_AUTH_DONE); /* the 17th too: the oldest entry made room */
        if (i == 0)
            first = p;
        else if (i == 16)
            last = p;
        pair_close(&p, false);
    }
    cc_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    T_EQ(cc_context_stats(s, &st), CC_OK);
    T_EQ(st.nt_replay_evicted, 1); /* the 17th made room once (cc_context_stats) */
    /* the newest AUTHENTICATE is still known: a replay is refused as a replay */
    pair_open(&q, s, "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(q.cli, last.neg, last.neg_len), CC_AUTH_CONTINUE);
    T_EQ(cc__auth_step(q.cli, last.auth, last.auth_len), CC_ERR_AUTH_REPLAY);
    pair_close(&q, false);
    /* the oldest was forgotten, and its replay still fails: the proof covers the
     * first session's server challenge, not this one's */
    pair_open(&q, s, "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(q.cli, first.neg, first.neg_len), CC_AUTH_CONTINUE);
    T_EQ(cc__auth_step(q.cli, first.auth, first.auth_len), CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(cc__auth_detail(q.cli), "NTProofStr");
    pair_close(&q, false);
    cc_context_free(s);
}

/* One whole exchange into client context s, with one console context kept
 * for all of them (making an SSL_CTX per logon would cost more than the logon). */
static int quick_exchange(cc_context *s, const char *user, const char *password)
{
    static cc_context *console;
    if (!s) {
        cc_context_free(console);
        console = NULL;
        return 0;
    }
    if (!console && (!(console = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL)) ||
                     cc_context_add_builtin_authenticator(console, "nt") != 0))
        return CC_ERR_NOMEM;
    cc_auth *con = cc__auth_new(console, &console->auth.entry[0], CC_ROLE_CONSOLE, NULL);
    cc_auth *cli = cc__auth_new(s, &s->auth.entry[0], CC_ROLE_CLIENT, NULL);
    cc__auth_set_credentials(con, user, "CCTEST", password);
    cc__auth_set_binding(con, cb_a);
    cc__auth_set_binding(cli, cb_a);
    uint8_t tok[4096];
    size_t n;
    int rc = cc__auth_step(con, NULL, 0);
    for (int round = 0; rc >= 0 && round < 3; round++) {
        cc_auth *from = (round % 2 == 0) ? con : cli, *to = (round % 2 == 0) ? cli : con;
        n = t_out_len(from);
        memcpy(tok, t_out(from), n);
        rc = cc__auth_step(to, tok, n);
    }
    cc__auth_free(con);
    cc__auth_free(cli);
    return rc;
}

/* One account logging on over and over cannot lock anyone out: with the
 * default cache (4096 entries for twice the 300 s window), 5000 logons in a
 * row all pass, another account passes after 4100 of them, and a replay
 * inside the window is still refused. */
static void test_replay_cache_no_lockout(void)
{
    struct pair p, q;
    cc_context *s = client_ctx();
    T_ASSERT(s);
    int refused = 0;
    uint64_t t0 = cc__now_ms();
    for (int i = 0; i < 5000; i++) {
        if (quick_exchange(s, "alice", "alice-pw") != CC_AUTH_DONE)
            refused++;
        if (i == 4099)
            T_EQ(quick_exchange(s, "gina", "gina-pw"), CC_AUTH_DONE);
    }
    T_EQ(refused, 0);
    printf("# 5000 logons of one account in %llu ms, none refused\n", (unsigned long long)(cc__now_ms() - t0));
    pair_open(&p, s, "gina", "CCTEST", "gina-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    T_EQ(pair_finish(&p), CC_AUTH_DONE);
    pair_open(&q, s, "gina", "CCTEST", "gina-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(q.cli, p.neg, p.neg_len), CC_AUTH_CONTINUE);
    T_EQ(cc__auth_step(q.cli, p.auth, p.auth_len), CC_ERR_AUTH_REPLAY);
    T_CONTAINS(cc__auth_detail(q.cli), "already used");
    pair_close(&q, false);
    pair_close(&p, true);
    quick_exchange(NULL, NULL, NULL);
}

static void test_clock_skew(void)
{
    struct pair p;
    cc_context *s = client_ctx();
    pair_open(&p, s, "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    T_EQ(rebuild(&p, cb_a, cc__nt_filetime_now() - 400ull * 10000000ull, "alice-pw"), 0);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_CLOCK_SKEW);
    T_CONTAINS(cc__auth_detail(p.cli), "behind");
    pair_close(&p, false);
    pair_open(&p, s, "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    T_EQ(rebuild(&p, cb_a, cc__nt_filetime_now() + 400ull * 10000000ull, "alice-pw"), 0);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_CLOCK_SKEW);
    T_CONTAINS(cc__auth_detail(p.cli), "ahead");
    pair_close(&p, false);
    /* a wider window accepts it */
    T_EQ(cc_context_set_auth_option(s, "nt", "timestamp-window", "600"), 0);
    pair_open(&p, s, "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    T_EQ(rebuild(&p, cb_a, cc__nt_filetime_now() - 400ull * 10000000ull, "alice-pw"), 0);
    T_EQ(pair_finish(&p), CC_AUTH_DONE);
    pair_close(&p, true);
}

static void test_mic_and_tampering(void)
{
    struct pair p;
    /* a flipped MIC byte */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    p.auth[72] ^= 0x40;
    T_EQ(pair_finish(&p), CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(cc__auth_detail(p.cli), "MIC");
    pair_close(&p, true);
    /* a NEGOTIATE altered on its way (the Version field): only the MIC notices */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(p.con, NULL, 0), CC_AUTH_CONTINUE);
    take(p.con, p.neg, &p.neg_len);
    p.neg[33] ^= 1;
    T_EQ(cc__auth_step(p.cli, p.neg, p.neg_len), CC_AUTH_CONTINUE);
    take(p.cli, p.chal, &p.chal_len);
    T_EQ(cc__auth_step(p.con, p.chal, p.chal_len), CC_AUTH_DONE);
    take(p.con, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(cc__auth_detail(p.cli), "MIC");
    pair_close(&p, true);
    /* the workstation name altered: covered by the MIC too */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    T_EQ(rebuild(&p, cb_a, 0, "alice-pw"), 0);
    p.auth[p.auth_len - 2] = 'X'; /* last UTF-16 unit of "WS1" */
    T_EQ(pair_finish(&p), CC_ERR_AUTH_BAD_CREDENTIALS);
    pair_close(&p, true);
}

static void test_tokens_malformed(void)
{
    struct pair p;
    uint8_t big[20000];
    /* truncated AUTHENTICATE: header cut */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    p.auth_len = 50;
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "AUTHENTICATE message is truncated");
    pair_close(&p, true);
    /* truncated AUTHENTICATE: payload cut, a field runs past the end */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    p.auth_len -= 4;
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "runs past the end");
    pair_close(&p, true);
    /* oversized AUTHENTICATE (our own bound) */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    memset(big, 0, sizeof big);
    memcpy(big, p.auth, p.auth_len);
    T_EQ(cc__auth_step(p.cli, big, sizeof big), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "more than the 16384 allowed");
    pair_close(&p, true);
    /* larger than CC_LIMIT_AUTH_TOKEN: refused before the mechanism sees it */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    uint8_t *huge = calloc(1, 70000);
    T_EQ(cc__auth_step(p.cli, huge, 70000), CC_ERR_AUTH_TOKEN);
    free(huge);
    pair_close(&p, true);
    /* NEGOTIATE: garbage, truncated, oversized, neither UNICODE nor OEM */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(p.cli, (const uint8_t *)"hello, world, this is not NTLM!!!!!", 34), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "signature");
    pair_close(&p, true);
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(p.con, NULL, 0), CC_AUTH_CONTINUE);
    take(p.con, p.neg, &p.neg_len);
    T_EQ(cc__auth_step(p.cli, p.neg, 20), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "NEGOTIATE message is truncated");
    pair_close(&p, true);
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(p.con, NULL, 0), CC_AUTH_CONTINUE);
    take(p.con, p.neg, &p.neg_len);
    memset(big, 0, 2000);
    memcpy(big, p.neg, p.neg_len);
    T_EQ(cc__auth_step(p.cli, big, 2000), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "NEGOTIATE message is 2000 bytes");
    p.neg[12] &= (uint8_t)~1; /* no NTLMSSP_NEGOTIATE_UNICODE */
    pair_close(&p, true);
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(p.con, NULL, 0), CC_AUTH_CONTINUE);
    take(p.con, p.neg, &p.neg_len);
    p.neg[12] &= (uint8_t)~1;
    T_EQ(cc__auth_step(p.cli, p.neg, p.neg_len), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "UNICODE");
    pair_close(&p, true);
    /* CHALLENGE on the console: truncated, a TargetInfo field past the end */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(cc__auth_step(p.con, NULL, 0), CC_AUTH_CONTINUE);
    take(p.con, p.neg, &p.neg_len);
    T_EQ(cc__auth_step(p.cli, p.neg, p.neg_len), CC_AUTH_CONTINUE);
    take(p.cli, p.chal, &p.chal_len);
    T_EQ(cc__auth_step(p.con, p.chal, p.chal_len - 1), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.con), "CHALLENGE TargetInfo");
    pair_close(&p, true);
    /* an NTLMv1-sized NtChallengeResponse */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    p.auth[20] = 24, p.auth[21] = 0, p.auth[22] = 24, p.auth[23] = 0;
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "NTLMv1");
    pair_close(&p, true);
    /* an AV pair whose length runs past the blob */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    p.auth[112 + 16 + 28 + 2] = 0xff, p.auth[112 + 16 + 28 + 3] = 0x7f; /* first AV pair's length */
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "AvPairs");
    pair_close(&p, true);
}

/* ---- the character set (MS-NLMP 2.2.2.5 A/B bits, 3.2.5.1.1) ---- */

/* The NEGOTIATE python3-ntlm-auth 1.4 sends as it ships: OEM, OEM_DOMAIN_SUPPLIED,
 * no UNICODE (0xe2889032), with no domain or workstation in the payload. */
static size_t negotiate_with(uint8_t *m, uint32_t flags)
{
    static const uint8_t sig8[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
    memset(m, 0, 40);
    memcpy(m, sig8, 8);
    m[8] = 1;
    for (int i = 0; i < 4; i++)
        m[12 + i] = (uint8_t)(flags >> (8 * i));
    m[20] = 40, m[28] = 40; /* empty DomainName and Workstation at offset 40 */
    m[32] = 6, m[33] = 1, m[34] = 0xb1, m[35] = 0x1d, m[39] = 15;
    return 40;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_le16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}
static void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, v), put_le16(p + 2, v >> 16);
}

/* An AUTHENTICATE as an independent console that follows the CHALLENGE builds it:
 * flags = the CHALLENGE's, names in the character set the CHALLENGE chose
 * (UTF-16LE widened from the bytes given, or those bytes as they are for OEM),
 * NTLMv2 over the server's pairs + MsvAvFlags + MsvAvChannelBindings, and the MIC.
 * `user` and `domain` are raw bytes; `pw_user` is what NTOWFv2 is computed from. */
static void follower_authenticate(struct pair *p, const char *user, const char *domain, const char *pw_user,
                                  const char *password, uint32_t flags_xor, uint8_t *out, size_t *out_len)
{
    uint8_t key[16], cbh[16], cchal[8] = {8, 7, 6, 5, 4, 3, 2, 1}, proof[16], sbk[16], mic[16];
    uint32_t flags = le32(p->chal + 20) ^ flags_xor;
    bool uni = (le32(p->chal + 20) & CC__NTLM_NEGOTIATE_UNICODE) != 0;
    size_t ti_len = p->chal[40] | (size_t)p->chal[41] << 8, ti_off = le32(p->chal + 44);
    cc__buf av = {0}, temp = {0};
    T_ASSERT(ti_len >= 4 && ti_off + ti_len <= p->chal_len);
    cc__buf_append(p->cctx, &av, p->chal + ti_off, ti_len - 4); /* without MsvAvEOL */
    cc__nt_channel_binding_hash(cb_a, 32, cbh);
    uint8_t pairs[4 + 4 + 4 + 16 + 4] = {6, 0, 4, 0, 2, 0, 0, 0, 10, 0, 16, 0};
    memcpy(pairs + 12, cbh, 16);
    cc__buf_append(p->cctx, &av, pairs, 12 + 16 + 4);
    T_EQ(cc__nt_ntowfv2(p->cctx, password, pw_user, "CCTEST", key), 0);
    T_EQ(cc__nt_make_temp(p->cctx, &temp, cc__nt_filetime_now(), cchal, cc__buf_head(&av), cc__buf_size(&av)), 0);
    T_EQ(cc__nt_proof(key, p->chal + 24, cc__buf_head(&temp), cc__buf_size(&temp), proof), 0);
    T_EQ(cc__nt_session_base_key(key, proof, sbk), 0);
    const char *names[3] = {domain, user, "WS1"};
    size_t at = 88;
    memset(out, 0, 88);
    memcpy(out, "NTLMSSP", 8);
    out[8] = 3;
    for (int i = 0; i < 3; i++) { /* DomainName 28, UserName 36, Workstation 44 */
        size_t n = strlen(names[i]), l = uni ? 2 * n : n;
        put_le16(out + 28 + 8 * i, l), put_le16(out + 30 + 8 * i, l), put_le32(out + 32 + 8 * i, (uint32_t)at);
        for (size_t k = 0; k < n; k++) {
            if (uni)
                out[at++] = (uint8_t)names[i][k], out[at++] = 0;
            else
                out[at++] = (uint8_t)names[i][k];
        }
    }
    put_le16(out + 12, 24), put_le16(out + 14, 24), put_le32(out + 16, (uint32_t)at); /* LmChallengeResponse Z(24) */
    memset(out + at, 0, 24), at += 24;
    size_t nt_len = 16 + cc__buf_size(&temp);
    put_le16(out + 20, nt_len), put_le16(out + 22, nt_len), put_le32(out + 24, (uint32_t)at);
    memcpy(out + at, proof, 16), memcpy(out + at + 16, cc__buf_head(&temp), cc__buf_size(&temp)), at += nt_len;
    put_le32(out + 56, (uint32_t)at); /* no EncryptedRandomSessionKey */
    put_le32(out + 60, flags);
    out[64] = 6, out[65] = 1, out[71] = 15;
    T_EQ(cc__nt_mic(sbk, p->neg, p->neg_len, p->chal, p->chal_len, out, at, 72, mic), 0);
    memcpy(out + 72, mic, 16);
    cc__buf_free(p->cctx, &av);
    cc__buf_free(p->cctx, &temp);
    *out_len = at;
}

/* Sends NEGOTIATE with `flags` to a client; the CHALLENGE lands in p->chal. */
static int negotiate_as(struct pair *p, uint32_t flags)
{
    pair_open(p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    p->neg_len = negotiate_with(p->neg, flags);
    p->src = cc__auth_step(p->cli, p->neg, p->neg_len);
    take(p->cli, p->chal, &p->chal_len);
    return p->src;
}

#define NTLM_AUTH_PY_FLAGS 0xe2889032u /* python3-ntlm-auth 1.4's NEGOTIATE */

static void test_charset_oem_only(void)
{
    struct pair p;
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS), CC_AUTH_CONTINUE);
    uint32_t cf = le32(p.chal + 20);
    T_EQ(cf & (CC__NTLM_NEGOTIATE_UNICODE | CC__NTLM_NEGOTIATE_OEM), CC__NTLM_NEGOTIATE_OEM);
    /* TargetName in OEM: the NetBIOS domain's ASCII bytes, not UTF-16 */
    T_EQ(p.chal[12], 6);
    T_ASSERT(memcmp(p.chal + le32(p.chal + 16), "CCTEST", 6) == 0);
    /* TargetInfo stays UTF-16 (AV pairs are always Unicode): MsvAvNbDomainName first */
    T_EQ(p.chal[le32(p.chal + 44)], CC__AV_NB_DOMAIN_NAME);
    T_EQ(p.chal[le32(p.chal + 44) + 5], 0);
    follower_authenticate(&p, "alice", "CCTEST", "alice", "alice-pw", 0, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_AUTH_DONE);
    T_STREQ(cc__auth_identity(p.cli), "CCTEST\\alice");
    pair_close(&p, true);
    /* the wrong password is still the wrong password */
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS), CC_AUTH_CONTINUE);
    follower_authenticate(&p, "alice", "CCTEST", "alice", "not-it", 0, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_BAD_CREDENTIALS);
    T_CONTAINS(cc__auth_detail(p.cli), "NTProofStr");
    pair_close(&p, true);
    /* user names compare case-insensitively in OEM too (NTOWFv2 upper-cases the user) */
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS), CC_AUTH_CONTINUE);
    follower_authenticate(&p, "ALICE", "CCTEST", "ALICE", "alice-pw", 0, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_AUTH_DONE);
    pair_close(&p, true);
}

static void test_charset_unicode_and_both(void)
{
    struct pair p;
    /* Unicode only (our own console's flags, Windows'): the CHALLENGE says UNICODE, not OEM */
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    T_EQ(le32(p.chal + 20) & (CC__NTLM_NEGOTIATE_UNICODE | CC__NTLM_NEGOTIATE_OEM), CC__NTLM_NEGOTIATE_UNICODE);
    T_EQ(pair_finish(&p), CC_AUTH_DONE);
    pair_close(&p, true);
    /* both offered: Unicode wins (2.2.2.5: A set means Unicode) */
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS | CC__NTLM_NEGOTIATE_UNICODE), CC_AUTH_CONTINUE);
    T_EQ(le32(p.chal + 20) & (CC__NTLM_NEGOTIATE_UNICODE | CC__NTLM_NEGOTIATE_OEM), CC__NTLM_NEGOTIATE_UNICODE);
    T_EQ(p.chal[12], 12); /* "CCTEST" in UTF-16LE */
    follower_authenticate(&p, "alice", "CCTEST", "alice", "alice-pw", 0, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_AUTH_DONE);
    pair_close(&p, true);
    /* Unicode chosen, but the AUTHENTICATE's flags drop UNICODE (an OEM message): refused */
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS | CC__NTLM_NEGOTIATE_UNICODE), CC_AUTH_CONTINUE);
    follower_authenticate(&p, "alice", "CCTEST", "alice", "alice-pw",
                          CC__NTLM_NEGOTIATE_UNICODE | CC__NTLM_NEGOTIATE_OEM, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "lack NTLMSSP_NEGOTIATE_UNICODE (0x");
    pair_close(&p, true);
}

static void test_charset_neither(void)
{
    struct pair p;
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS & ~CC__NTLM_NEGOTIATE_OEM), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "set neither NTLMSSP_NEGOTIATE_UNICODE nor NTLMSSP_NEGOTIATE_OEM");
    T_CONTAINS(cc__auth_detail(p.cli), "0xe2889030");
    T_EQ(p.chal_len, 0); /* no CHALLENGE goes out */
    pair_close(&p, true);
}

static void test_charset_oem_refusals(void)
{
    struct pair p;
    /* a non-ASCII byte in an OEM user name (Latin-1/CP850 'é'): refused, no code-page guess */
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS), CC_AUTH_CONTINUE);
    follower_authenticate(&p, "al\xe9ice", "CCTEST", "alice", "alice-pw", 0, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "AUTHENTICATE UserName field is OEM text");
    T_CONTAINS(cc__auth_detail(p.cli), "byte 0xe9 at 2");
    T_CONTAINS(cc__auth_detail(p.cli), "only printable ASCII");
    pair_close(&p, true);
    /* in the domain; and a control character */
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS), CC_AUTH_CONTINUE);
    follower_authenticate(&p, "alice", "CC\x8eTEST", "alice", "alice-pw", 0, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "AUTHENTICATE DomainName field is OEM text");
    T_CONTAINS(cc__auth_detail(p.cli), "with byte 0x8e at 2");
    pair_close(&p, true);
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS), CC_AUTH_CONTINUE);
    follower_authenticate(&p, "ali\tce", "CCTEST", "alice", "alice-pw", 0, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "byte 0x09");
    pair_close(&p, true);
    /* UTF-8 bytes are not ASCII either */
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS), CC_AUTH_CONTINUE);
    follower_authenticate(&p, "al\xc3\xa9", "CCTEST", "alice", "alice-pw", 0, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "byte 0xc3 at 2");
    pair_close(&p, true);
    /* OEM chosen, but the AUTHENTICATE claims UNICODE: refused */
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS), CC_AUTH_CONTINUE);
    follower_authenticate(&p, "alice", "CCTEST", "alice", "alice-pw", CC__NTLM_NEGOTIATE_UNICODE, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "do not say NTLMSSP_NEGOTIATE_OEM alone");
    pair_close(&p, true);
    /* an OEM name longer than 256 bytes */
    char longname[300];
    memset(longname, 'a', 299);
    longname[299] = 0;
    T_EQ(negotiate_as(&p, NTLM_AUTH_PY_FLAGS), CC_AUTH_CONTINUE);
    follower_authenticate(&p, longname, "CCTEST", "alice", "alice-pw", 0, p.auth, &p.auth_len);
    T_EQ(pair_finish(&p), CC_ERR_AUTH_TOKEN);
    T_CONTAINS(cc__auth_detail(p.cli), "UserName field is 299 bytes, more than the 256 allowed");
    pair_close(&p, true);
    /* an OEM TargetName must be ASCII too: a CHALLENGE is never built from other bytes */
    cc_context *c = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    cc__buf out = {0};
    uint8_t sc[8] = {0}, ti[4] = {0};
    T_EQ(cc__nt_build_challenge(c, &out, CC__NTLM_NEGOTIATE_OEM, sc, "D\xc3\xa9V", ti, 4), CC_ERR_INVALID);
    T_EQ(cc__nt_build_challenge(c, &out, CC__NTLM_NEGOTIATE_OEM, sc, "DEV", ti, 4), 0);
    cc__buf_free(c, &out);
    cc_context_free(c);
}

/* Cuts every prefix and flips every byte of a good AUTHENTICATE: never a crash,
 * never success, always a cc_error (run under ASan/valgrind by make check). */
static void test_authenticate_mutations(void)
{
    struct pair p;
    pair_open(&p, client_ctx(), "alice", "CCTEST", "alice-pw", cb_a, cb_a);
    T_EQ(pair_to_auth(&p), 0);
    size_t len = p.auth_len;
    uint8_t orig[4096];
    memcpy(orig, p.auth, len);
    pair_close(&p, true);
    char detail[CC__DETAIL_MAX];
    struct cc__nt_authenticate a;
    for (size_t cut = 0; cut < len; cut++) {
        int rc = cc__nt_parse_authenticate(orig, cut, CC__NTLM_NEGOTIATE_UNICODE, &a, detail, sizeof detail);
        if (rc == 0) { /* only cuts inside unparsed trailing bytes can parse */
            T_ASSERT(cut >= 88);
        } else
            T_EQ(rc, CC_ERR_AUTH_TOKEN);
    }
    for (size_t i = 0; i < len; i += 3) {
        uint8_t m[4096];
        memcpy(m, orig, len);
        m[i] ^= 0x5a;
        int rc = cc__nt_parse_authenticate(m, len, CC__NTLM_NEGOTIATE_UNICODE, &a, detail, sizeof detail);
        T_ASSERT(rc == 0 || rc == CC_ERR_AUTH_TOKEN);
    }
}

/* ---- configuration ---- */
static uint8_t cb_hash_alice[16];
static int lookups;
static int lookup_cb(void *user, const char *domain, const char *name, uint8_t nt_hash[16])
{
    __atomic_add_fetch(&lookups, 1, __ATOMIC_SEQ_CST);
    if (strcmp(name, "dave") == 0)
        return CC_ERR_AUTH_DISABLED;
    if (strcmp(name, "eve") != 0)
        return CC_ERR_AUTH_UNKNOWN_USER;
    memcpy(nt_hash, cb_hash_alice, 16);
    return 0;
}

static int exchange_ctx(cc_context *s, const char *user, const char *domain, const char *pw, char *id)
{
    struct pair p;
    pair_open(&p, s, user, domain, pw, cb_a, cb_a);
    int rc = pair_to_auth(&p);
    if (!rc)
        rc = pair_finish(&p);
    if (id)
        snprintf(id, 256, "%s", cc__auth_identity(p.cli) ? cc__auth_identity(p.cli) : "");
    pair_close(&p, false);
    return rc;
}

static void test_lookup_callback(void)
{
    cc_context *s = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    char id[256];
    T_EQ(cc_context_set_nt_account_lookup(s, lookup_cb, NULL), CC_ERR_STATE);
    T_EQ(cc_context_add_builtin_authenticator(s, "nt"), 0);
    /* neither file nor callback */
    T_EQ(exchange_ctx(s, "eve", "LAB", "alice-pw", NULL), CC_ERR_CONFIG);
    T_EQ(cc_context_set_nt_account_lookup(s, lookup_cb, NULL), 0);
    cc__nt_hash_password(s, "alice-pw", cb_hash_alice);
    T_EQ(exchange_ctx(s, "eve", "lab", "alice-pw", id), CC_AUTH_DONE);
    T_STREQ(id, "LAB\\eve");
    T_EQ(exchange_ctx(s, "eve", "lab", "nope", NULL), CC_ERR_AUTH_BAD_CREDENTIALS);
    T_EQ(exchange_ctx(s, "dave", "lab", "alice-pw", NULL), CC_ERR_AUTH_DISABLED);
    T_EQ(exchange_ctx(s, "zed", "lab", "alice-pw", NULL), CC_ERR_AUTH_UNKNOWN_USER);
    T_ASSERT(lookups >= 4);
    cc_context_free(s);
}

static void test_options(void)
{
    cc_context *s = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    T_EQ(cc_context_add_builtin_authenticator(s, "nt"), 0);
    T_EQ(cc_context_set_auth_option(s, "nt", "accounts", "/nonexistent/smbpasswd"), CC_ERR_CONFIG);
    T_CONTAINS(cc_context_errmsg(s), "cannot be read");
    T_EQ(cc_context_set_auth_option(s, "nt", "krb5-conf", "/nonexistent/krb5.conf"), CC_ERR_CONFIG);
    T_EQ(cc_context_set_auth_option(s, "nt", "dc-check", "sometimes"), CC_ERR_INVALID);
    T_EQ(cc_context_set_auth_option(s, "nt", "dc-check", "best-effort"), 0);
    T_EQ(cc_context_set_auth_option(s, "nt", "timestamp-window", "0"), CC_ERR_INVALID);
    T_EQ(cc_context_set_auth_option(s, "nt", "timestamp-window", "12x"), CC_ERR_INVALID);
    T_EQ(cc_context_set_auth_option(s, "nt", "timestamp-window", "60"), 0);
    T_EQ(cc_context_set_auth_option(s, "nt", "domain", "A.B"), CC_ERR_INVALID);
    T_EQ(cc_context_set_auth_option(s, "nt", "domain", "WAY-TOO-LONG-A-NAME"), CC_ERR_INVALID);
    T_EQ(cc_context_set_auth_option(s, "nt", "realm", "bad realm"), CC_ERR_INVALID);
    T_EQ(cc_context_set_auth_option(s, "nt", "realm", "CC.TEST"), 0);
    T_EQ(cc_context_set_auth_option(s, "nt", "replay-cache-size", "1"), CC_ERR_INVALID);
    T_EQ(cc_context_set_auth_option(s, "nt", "colour", "blue"), CC_ERR_INVALID);
    T_CONTAINS(cc_context_errmsg(s), "unknown option");
    cc_context_free(s);
}

/* Sessions on several threads share one context (and its replay cache). */
static cc_context *shared;
static int thread_fail;
static void *worker(void *arg)
{
    for (int i = 0; i < 40; i++)
        if (exchange_ctx(shared, "alice", "CCTEST", "alice-pw", NULL) != CC_AUTH_DONE)
            __atomic_add_fetch(&thread_fail, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[4];
    shared = client_ctx();
    T_ASSERT(shared);
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    T_EQ(thread_fail, 0);
    cc_context_free(shared);
}

/* Every allocation of an exchange fails in turn: a clean cc_error each time,
 * never a crash or a leak (ASan/valgrind run this too). */
static long alloc_count, alloc_fail_at;
static void *t_malloc(size_t n, void *u)
{
    (void)u;
    if (++alloc_count == alloc_fail_at)
        return NULL;
    return malloc(n);
}
static void *t_realloc(void *p, size_t n, void *u)
{
    (void)u;
    if (++alloc_count == alloc_fail_at)
        return NULL;
    return realloc(p, n);
}
static void t_free(void *p, void *u)
{
    (void)u;
    free(p);
}

static void test_allocation_failures(void)
{
    cc_allocator al = {sizeof al, NULL, t_malloc, t_realloc, t_free};
    int failures = 0;
    for (alloc_fail_at = 1; alloc_fail_at < 2000; alloc_fail_at++) {
        alloc_count = 0;
        cc_context *c = cc_context_new(CC_ROLE_CONSOLE, &al, NULL), *s = cc_context_new(CC_ROLE_CLIENT, &al, NULL);
        int rc = CC_ERR_NOMEM;
        if (c && s && cc_context_add_builtin_authenticator(c, "nt") == 0 &&
            cc_context_add_builtin_authenticator(s, "nt") == 0 &&
            cc_context_set_auth_option(s, "nt", "accounts", store_path) == 0) {
            cc_auth *con = cc__auth_new(c, &c->auth.entry[0], CC_ROLE_CONSOLE, NULL);
            cc_auth *cli = cc__auth_new(s, &s->auth.entry[0], CC_ROLE_CLIENT, NULL);
            if (con && cli) {
                cc__auth_set_credentials(con, "alice", "", "alice-pw");
                cc__auth_set_binding(con, cb_a);
                cc__auth_set_binding(cli, cb_a);
                uint8_t tok[4096];
                size_t n;
                rc = cc__auth_step(con, NULL, 0);
                for (int round = 0; rc >= 0 && round < 3; round++) {
                    cc_auth *from = (round % 2 == 0) ? con : cli, *to = (round % 2 == 0) ? cli : con;
                    n = t_out_len(from);
                    memcpy(tok, t_out(from), n);
                    rc = cc__auth_step(to, tok, n);
                }
            }
            cc__auth_free(con);
            cc__auth_free(cli);
        }
        cc_context_free(c);
        cc_context_free(s);
        if (alloc_count < alloc_fail_at) { /* nothing failed: the whole exchange ran */
            T_EQ(rc, CC_AUTH_DONE);
            break;
        }
        T_ASSERT(rc == CC_AUTH_DONE || rc < 0);
        failures++;
    }
    T_ASSERT(failures > 10);
    printf("# %d allocation failures injected, each ended cleanly\n", failures);
}

int main(void)
{
    write_store();
    t_run("md4_rfc1320", test_md4_rfc1320);
    t_run("ms_nlmp_4_2_4_ntowfv2_ntproofstr_session_base_key", test_ms_nlmp_4_2_4);
    t_run("ms_nlmp_4_2_4_3_authenticate_message", test_ms_nlmp_4_2_4_3_messages);
    t_run("channel_binding_format", test_channel_binding_format);
    t_run("utf16", test_utf16);
    t_run("smbpasswd_store", test_store);
    t_run("smbpasswd_reader_edges", test_store_reader_edges);
    t_run("exchange_ok", test_exchange_ok);
    t_run("exchange_refusals", test_exchange_refusals);
    t_run("channel_binding_mismatch", test_channel_binding_mismatch);
    t_run("channel_binding_missing", test_channel_binding_missing);
    t_run("replay", test_replay);
    t_run("replay_cache_bounded", test_replay_cache_bounded);
    t_run("replay_cache_no_lockout", test_replay_cache_no_lockout);
    t_run("clock_skew", test_clock_skew);
    t_run("mic_and_tampering", test_mic_and_tampering);
    t_run("tokens_malformed", test_tokens_malformed);
    t_run("authenticate_mutations", test_authenticate_mutations);
    t_run("charset_oem_only", test_charset_oem_only);
    t_run("charset_unicode_and_both", test_charset_unicode_and_both);
    t_run("charset_neither", test_charset_neither);
    t_run("charset_oem_refusals", test_charset_oem_refusals);
    t_run("lookup_callback", test_lookup_callback);
    t_run("options", test_options);
    t_run("threads", test_threads);
    t_run("allocation_failures", test_allocation_failures);
    return t_done();
}
