/* test-krb5-pac.c -- the MS-PAC decoders of the kerberos authenticator on hand-encoded
 * buffers (AD's logon info, UPN/DNS info, client info), and on every truncation of them. */
#include "harness.h"

#include "../lib/auth/krb5/krb5_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- a tiny little-endian NDR writer ---- */

struct w {
    uint8_t b[4096];
    size_t n;
};

static void u8(struct w *w, uint8_t v)
{
    w->b[w->n++] = v;
}
static void u16(struct w *w, uint16_t v)
{
    u8(w, (uint8_t)v);
    u8(w, (uint8_t)(v >> 8));
}
static void u32(struct w *w, uint32_t v)
{
    u16(w, (uint16_t)v);
    u16(w, (uint16_t)(v >> 16));
}
static void zeros(struct w *w, size_t n)
{
    memset(w->b + w->n, 0, n);
    w->n += n;
}
static void align4(struct w *w)
{
    while (w->n & 3)
        u8(w, 0);
}
static void ustr_hdr(struct w *w, const char *s, uint32_t ptr)
{
    u16(w, (uint16_t)(s ? 2 * strlen(s) : 0));
    u16(w, (uint16_t)(s ? 2 * strlen(s) : 0));
    u32(w, s ? ptr : 0);
}
static void ustr_body(struct w *w, const char *s)
{
    u32(w, (uint32_t)strlen(s));
    u32(w, 0);
    u32(w, (uint32_t)strlen(s));
    for (const char *c = s; *c; c++)
        u16(w, (uint8_t)*c);
    align4(w);
}
static void sid(struct w *w, uint8_t authority, const uint32_t *subs, uint8_t n)
{
    u32(w, n); /* conformant max count */
    u8(w, 1);
    u8(w, n);
    zeros(w, 5);
    u8(w, authority);
    for (uint8_t i = 0; i < n; i++)
        u32(w, subs[i]);
}

/* KERB_VALIDATION_INFO as AD writes it (MS-PAC 2.5, MS-RPCE 2.2.6 serialisation). */
static void logon_info(struct w *w)
{
    static const uint32_t dom[] = {21, 1, 2, 3}, res[] = {21, 9, 9, 9}, extra[] = {1};
    w->n = 0;
    u8(w, 1), u8(w, 0x10), u16(w, 8), u32(w, 0xcccccccc); /* common header */
    size_t len_at = w->n;
    u32(w, 0), u32(w, 0); /* private header: object length, filler */
    u32(w, 0x20000);      /* referent of the top-level pointer */
    size_t start = w->n;
    zeros(w, 48);
    ustr_hdr(w, "alice", 0x20004);
    ustr_hdr(w, "Alice Example", 0x20008);
    for (int i = 0; i < 4; i++)
        ustr_hdr(w, NULL, 0);
    u16(w, 3), u16(w, 0);
    u32(w, 1104), u32(w, 513);  /* user RID, primary group RID */
    u32(w, 2), u32(w, 0x2000c); /* groups */
    u32(w, 0x20);               /* user flags: extra SIDs */
    zeros(w, 16);
    ustr_hdr(w, "DC1", 0x20010);
    ustr_hdr(w, "CC", 0x20014);
    u32(w, 0x20018); /* logon domain SID */
    zeros(w, 8 + 4 + 4 + 8 + 8 + 4 + 4);
    u32(w, 1), u32(w, 0x2001c);                  /* extra SIDs */
    u32(w, 0x20020), u32(w, 1), u32(w, 0x20024); /* resource groups */
    /* deferred */
    ustr_body(w, "alice");
    ustr_body(w, "Alice Example");
    u32(w, 2), u32(w, 513), u32(w, 7), u32(w, 1105), u32(w, 7);
    ustr_body(w, "DC1");
    ustr_body(w, "CC");
    sid(w, 5, dom, 4);
    u32(w, 1), u32(w, 0x20028), u32(w, 7);
    sid(w, 18, extra, 1);
    sid(w, 5, res, 4);
    u32(w, 1), u32(w, 700), u32(w, 0x20000007);
    uint32_t len = (uint32_t)(w->n - start + 4);
    memcpy(w->b + len_at, &len, 4); /* little-endian host assumed by the test only */
}

struct attrs {
    int n;
    char key[32][32], value[32][128];
};

static int collect(void *user, const char *k, const char *v)
{
    struct attrs *a = user;
    if (a->n < 32) {
        snprintf(a->key[a->n], sizeof a->key[0], "%s", k);
        snprintf(a->value[a->n], sizeof a->value[0], "%s", v);
        a->n++;
    }
    return 0;
}

static const char *get(const struct attrs *a, const char *k, int nth)
{
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->key[i], k) == 0 && nth-- == 0)
            return a->value[i];
    return NULL;
}

static void test_logon_info(void)
{
    struct w w;
    struct attrs a = {0};
    logon_info(&w);
    T_EQ(cc__krb_pac_logon_info(w.b, w.n, collect, &a), 0);
    T_STREQ(get(&a, "logon-name", 0), "alice");
    T_STREQ(get(&a, "full-name", 0), "Alice Example");
    T_STREQ(get(&a, "logon-domain", 0), "CC");
    T_STREQ(get(&a, "domain-sid", 0), "S-1-5-21-1-2-3");
    T_STREQ(get(&a, "sid", 0), "S-1-5-21-1-2-3-1104");
    T_STREQ(get(&a, "primary-group-sid", 0), "S-1-5-21-1-2-3-513");
    T_STREQ(get(&a, "group-sid", 0), "S-1-5-21-1-2-3-513");
    T_STREQ(get(&a, "group-sid", 1), "S-1-5-21-1-2-3-1105");
    T_STREQ(get(&a, "group-sid", 2), "S-1-18-1");
    T_STREQ(get(&a, "group-sid", 3), "S-1-5-21-9-9-9-700");
    T_ASSERT(get(&a, "group-sid", 4) == NULL);
}

/* Every truncation and a corrupted count fail cleanly (ASan watches the reads). */
static void test_logon_info_malformed(void)
{
    struct w w;
    logon_info(&w);
    for (size_t n = 0; n < w.n; n++) {
        struct attrs a = {0};
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, w.b, n);
        int r = cc__krb_pac_logon_info(copy, n, collect, &a);
        free(copy);
        if (r != CC_ERR_AUTH_TOKEN)
            t_fail(__FILE__, __LINE__, "truncated to %zu of %zu bytes: %d", n, w.n, r);
        T_EQ(r, CC_ERR_AUTH_TOKEN);
    }
    struct attrs a = {0};
    w.b[20 + 48 + 48 + 4 + 8] = 0xff; /* group count 255: != the array's count */
    T_EQ(cc__krb_pac_logon_info(w.b, w.n, collect, &a), CC_ERR_AUTH_TOKEN);
    logon_info(&w);
    w.b[0] = 2; /* serialisation version */
    T_EQ(cc__krb_pac_logon_info(w.b, w.n, collect, &a), CC_ERR_AUTH_TOKEN);
}

static void test_upn_dns_info(void)
{
    struct w w = {{0}, 0};
    const char *upn = "alice@cc.test", *dns = "CC.TEST", *sam = "alice";
    u16(&w, (uint16_t)(2 * strlen(upn))), u16(&w, 24);
    u16(&w, (uint16_t)(2 * strlen(dns))), u16(&w, (uint16_t)(24 + 2 * strlen(upn)));
    u32(&w, 2); /* S flag */
    uint16_t sam_off = (uint16_t)(24 + 2 * strlen(upn) + 2 * strlen(dns));
    u16(&w, (uint16_t)(2 * strlen(sam))), u16(&w, sam_off);
    u16(&w, 8 + 4 * 5), u16(&w, (uint16_t)(sam_off + 2 * strlen(sam)));
    zeros(&w, 4); /* AD pads the 20-byte header to 8-byte alignment */
    for (const char *s = upn; *s; s++)
        u16(&w, (uint8_t)*s);
    for (const char *s = dns; *s; s++)
        u16(&w, (uint8_t)*s);
    for (const char *s = sam; *s; s++)
        u16(&w, (uint8_t)*s);
    u8(&w, 1), u8(&w, 5), zeros(&w, 5), u8(&w, 5);
    u32(&w, 21), u32(&w, 1), u32(&w, 2), u32(&w, 3), u32(&w, 1104);
    struct attrs a = {0};
    T_EQ(cc__krb_pac_upn_dns_info(w.b, w.n, collect, &a), 0);
    T_STREQ(get(&a, "upn", 0), "alice@cc.test");
    T_STREQ(get(&a, "dns-domain", 0), "CC.TEST");
    T_STREQ(get(&a, "sam-name", 0), "alice");
    T_STREQ(get(&a, "sid", 0), "S-1-5-21-1-2-3-1104");
    for (size_t n = 0; n < w.n; n++) {
        struct attrs b = {0};
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, w.b, n);
        int r = cc__krb_pac_upn_dns_info(copy, n, collect, &b);
        free(copy);
        T_EQ(r, CC_ERR_AUTH_TOKEN);
    }
}

static void test_client_info(void)
{
    struct w w = {{0}, 0};
    zeros(&w, 8);
    u16(&w, 2 * 5);
    for (const char *s = "alice"; *s; s++)
        u16(&w, (uint8_t)*s);
    struct attrs a = {0};
    T_EQ(cc__krb_pac_client_info(w.b, w.n, collect, &a), 0);
    T_STREQ(get(&a, "client-name", 0), "alice");
    T_EQ(cc__krb_pac_client_info(w.b, w.n - 1, collect, &a), CC_ERR_AUTH_TOKEN);
    w.b[8] = 11; /* odd UTF-16 length */
    T_EQ(cc__krb_pac_client_info(w.b, w.n, collect, &a), CC_ERR_AUTH_TOKEN);
}

/* A real Windows PAC (test/data/krb5/w2003-pac.hex), its container parsed by
 * libkrb5 (krb5_pac_parse), its buffers by our decoders. */
static void test_windows_pac(void)
{
    uint8_t pac[2048];
    size_t n = 0;
    char line[256];
    FILE *f = fopen(t_data("krb5/w2003-pac.hex"), "r");
    T_ASSERT(f != NULL);
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        for (char *c = line; c[0] && c[1] && c[0] != '\n' && n < sizeof pac; c += 2) {
            unsigned v;
            if (sscanf(c, "%2x", &v) != 1)
                break;
            pac[n++] = (uint8_t)v;
        }
    }
    fclose(f);
    T_EQ(n, 624);
    krb5_context k;
    krb5_pac p;
    krb5_data li, ci;
    T_EQ(krb5_init_context(&k), 0);
    T_EQ(krb5_pac_parse(k, pac, n, &p), 0);
    T_EQ(krb5_pac_get_buffer(k, p, 1, &li), 0);
    T_EQ(krb5_pac_get_buffer(k, p, 10, &ci), 0);
    struct attrs a = {0};
    int r1 = cc__krb_pac_logon_info((const uint8_t *)li.data, li.length, collect, &a);
    int r2 = cc__krb_pac_client_info((const uint8_t *)ci.data, ci.length, collect, &a);
    krb5_free_data_contents(k, &li);
    krb5_free_data_contents(k, &ci);
    krb5_pac_free(k, p);
    krb5_free_context(k);
    for (int i = 0; i < a.n; i++)
        printf("# %s = %s\n", a.key[i], a.value[i]);
    T_EQ(r1, 0);
    T_EQ(r2, 0);
    T_STREQ(get(&a, "logon-name", 0), "W2003FINAL$");
    T_STREQ(get(&a, "logon-domain", 0), "WIN2K3THINK");
    T_STREQ(get(&a, "domain-sid", 0), "S-1-5-21-3048156945-3961193616-3706469200");
    T_STREQ(get(&a, "sid", 0), "S-1-5-21-3048156945-3961193616-3706469200-1005");
    T_STREQ(get(&a, "primary-group-sid", 0), "S-1-5-21-3048156945-3961193616-3706469200-516");
    T_STREQ(get(&a, "group-sid", 0), "S-1-5-21-3048156945-3961193616-3706469200-516");
    T_STREQ(get(&a, "group-sid", 1), "S-1-5-9"); /* extra SID: Enterprise Domain Controllers */
    T_ASSERT(get(&a, "group-sid", 2) == NULL);
    T_STREQ(get(&a, "client-name", 0), "w2003final$");
}

int main(void)
{
    t_run("pac logon info: names, user/group/extra/resource SIDs", test_logon_info);
    t_run("pac logon info: every truncation and bad counts refused", test_logon_info_malformed);
    t_run("pac upn/dns info (extended form)", test_upn_dns_info);
    t_run("pac client info", test_client_info);
    t_run("pac from a real Windows DC (Samba torture sample)", test_windows_pac);
    return t_done();
}
