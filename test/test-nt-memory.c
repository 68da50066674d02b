/* test-nt-memory.c -- secrets at rest: after one account logs on to the real cc-client, no
 * other account's NT hash (raw or hex) is left anywhere in the client's memory (/proc/PID/mem). */
#include "../lib/auth/nt/nt.h"
#include "harness.h"
#include "pair.h"

#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The accounts of the store: the one that logs on sits in the middle, so
 * lines before and after it are both covered. */
#define N_ACCOUNTS 7
#define LOGON      3
static const char *names[N_ACCOUNTS] = {"adam", "berit", "carl", "alice", "dora", "emil", "fanny"};
static uint8_t hashes[N_ACCOUNTS][16];

/* Planted into the client's environment, so the scan must find them there. */
static const uint8_t plant_raw[16] = {0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x97, 0x88,
                                      0x79, 0x6a, 0x5b, 0x4c, 0x3d, 0x2e, 0x1f, 0x90};
static const char plant_hex[] = "5EC2E7A0F1D3B59786A4C2E0F1D3B597";

static char store[600], lic[600], out_path[600], ca[600];
static pid_t client_pid;
static unsigned port;

static void to_hex(const uint8_t *h, char *out, bool upper)
{
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, upper ? "%02X" : "%02x", h[i]);
}

/* ---- the scanner: every readable mapping of pid, through /proc/PID/mem ---- */
#define MAX_NEEDLES 64
struct needle {
    const uint8_t *p;
    size_t len;
    const char *what;
    size_t found;
};

struct scan {
    struct needle n[MAX_NEEDLES];
    size_t count;
    size_t bytes, regions, skipped;
};

/* Larger mappings are address space reserved, not memory a program wrote:
 * AddressSanitizer's shadow (256 MiB and terabytes of zero pages) would take hours. */
#define MAX_REGION (64ul << 20)

static void add_needle(struct scan *sc, const void *p, size_t len, const char *what)
{
    if (sc->count < MAX_NEEDLES)
        sc->n[sc->count++] = (struct needle){p, len, what, 0};
}

/* memchr + memcmp rather than memmem: AddressSanitizer's memmem checks the
 * whole haystack on every call. */
static void search(struct scan *sc, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < sc->count; i++) {
        struct needle *nd = &sc->n[i];
        const uint8_t *p = buf, *end = buf + len;
        while (p + nd->len <= end) {
            const uint8_t *hit = memchr(p, nd->p[0], (size_t)(end - p) - nd->len + 1);
            if (!hit)
                break;
            if (memcmp(hit, nd->p, nd->len) == 0)
                nd->found++;
            p = hit + 1;
        }
    }
}

/* Returns 0 when the maps and memory could be read; regions that refuse
 * (vvar, guard pages) are skipped. needle lengths are at most 32 bytes. */
static int scan_process(pid_t pid, struct scan *sc)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *maps = fopen(path, "r");
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int mem = open(path, O_RDONLY);
    if (!maps || mem < 0) {
        if (maps)
            fclose(maps);
        if (mem >= 0)
            close(mem);
        return -1;
    }
    const size_t chunk = 1 << 20, overlap = 32;
    uint8_t *buf = malloc(chunk + overlap);
    while (buf && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' || strstr(line, "[vvar]") ||
            strstr(line, "[vsyscall]"))
            continue;
        if (hi - lo > MAX_REGION) {
            sc->skipped++;
            continue;
        }
        size_t carry = 0;
        bool any = false;
        for (unsigned long at = lo; at < hi;) {
            size_t want = hi - at < chunk ? hi - at : chunk;
            ssize_t got = pread(mem, buf + carry, want, (off_t)at);
            if (got <= 0)
                break;
            any = true;
            search(sc, buf, carry + (size_t)got);
            sc->bytes += (size_t)got;
            at += (unsigned long)got;
            /* keep the tail so a needle across two reads is seen, once */
            size_t total = carry + (size_t)got, keep = total < overlap - 1 ? total : overlap - 1;
            memmove(buf, buf + total - keep, keep);
            carry = keep;
        }
        if (any)
            sc->regions++;
    }
    free(buf);
    fclose(maps);
    close(mem);
    return 0;
}

/* The raw hash and both spellings of its hex. */
static void add_hash(struct scan *sc, const uint8_t h[16], char hexes[2][33], const char *what)
{
    to_hex(h, hexes[0], true);
    to_hex(h, hexes[1], false);
    add_needle(sc, h, 16, what);
    add_needle(sc, hexes[0], 32, what);
    add_needle(sc, hexes[1], 32, what);
}

/* ---- the client and one console logon ---- */
static int setup(void)
{
    snprintf(store, sizeof store, "%s/smbpasswd", t_tmpdir());
    snprintf(lic, sizeof lic, "%s/licence.xml", t_tmpdir());
    snprintf(out_path, sizeof out_path, "%s/client.out", t_tmpdir());
    if (t_make_certs() != 0)
        return -1;
    snprintf(ca, sizeof ca, "%s", t_cert("ca.pem"));
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    FILE *f = fopen(store, "w");
    if (!ctx || !f)
        return -1;
    fprintf(f, "# several accounts, each with its own password\n");
    for (int i = 0; i < N_ACCOUNTS; i++) {
        char pw[64], hx[33];
        snprintf(pw, sizeof pw, "%s-secret-%d", names[i], i * 7919);
        cc__nt_hash_password(ctx, pw, hashes[i]);
        to_hex(hashes[i], hx, true);
        fprintf(f, "%s:%d:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U          ]:LCT-5F5E1000:\n", names[i], 1000 + i, hx);
    }
    fclose(f);
    cc_context_free(ctx);
    f = fopen(lic, "w");
    if (!f)
        return -1;
    fprintf(f, "<LicenseDetails><LicenseCount>5</LicenseCount><LicensesInUse>1</LicensesInUse></LicenseDetails>\n");
    fclose(f);

    /* the environment plus the planted copies */
    static char raw_var[64], hex_var[80];
    memcpy(raw_var, "CC_TEST_PLANT_RAW=", 18);
    memcpy(raw_var + 18, plant_raw, 16);
    raw_var[34] = '\0';
    snprintf(hex_var, sizeof hex_var, "CC_TEST_PLANT_HEX=%s", plant_hex);
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **env = calloc(ne + 3, sizeof *env);
    memcpy(env, environ, ne * sizeof *env);
    env[ne] = raw_var;
    env[ne + 1] = hex_var;
    char cert[700], key[700];
    snprintf(cert, sizeof cert, "%s", t_cert("client.pem"));
    snprintf(key, sizeof key, "%s", t_cert("client.key"));
    client_pid = fork();
    if (client_pid == 0) {
        if (!freopen(out_path, "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(126);
        execle(t_bin("cc-client"), "cc-client", "--listen", "127.0.0.1:0", "--json", "--cert", cert, "--key", key,
               "--license-file", lic, "--accounts", store, (char *)NULL, env);
        _exit(127);
    }
    free(env);
    return t_listening_port(out_path, &port, 5000);
}

static bool client_said(const char *needle)
{
    return t_file_has(out_path, needle);
}

/* One console session against cc-client; 0 once established (then closed). */
static int logon(const char *user, const char *password)
{
    cc_context *ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, NULL);
    cc_context_set_ca_file(ctx, ca);
    cc_context_add_builtin_authenticator(ctx, "nt");
    cc_session *s = cc_session_new(ctx, NULL);
    cc_session_set_credentials(s, user, "WORKGROUP", password);
    cc_session_connect(s, "localhost", (uint16_t)port);
    struct tp_side sd = {.s = s}, none = {.ended = true};
    tp_drive(&sd, &none, tp_both_established, 20000);
    int err = cc_session_state(s) == CC_STATE_ESTABLISHED ? 0 : cc_session_error(s);
    if (err == 0) {
        cc_session_close(s, 0, "done");
        for (int i = 0; i < 200 && cc_session_step(s) > 0; i++) {
            struct pollfd p = {cc_session_fd(s), POLLIN, 0};
            poll(&p, 1, 10);
        }
    } else if (err > 0) {
        err = CC_ERR_TIMEOUT;
    }
    cc_session_free(s);
    cc_context_free(ctx);
    return err;
}

static bool started;

static void test_client_started(void)
{
    T_ASSERT(started);
}

/* The scanner finds what is there: a copy planted in this process's heap, in
 * every form it looks for. */
static void test_scanner_finds_planted_copy(void)
{
    struct scan sc = {0};
    char hexes[2][33];
    uint8_t *heap = malloc(4096), secret[16];
    T_ASSERT(heap);
    for (int i = 0; i < 16; i++)
        secret[i] = (uint8_t)(0x5a ^ (i * 37));
    memcpy(heap + 100, secret, 16);
    to_hex(secret, (char *)heap + 1000, true);
    to_hex(secret, (char *)heap + 2000, false);
    /* the needles live on this stack (found too): count more than those */
    add_hash(&sc, secret, hexes, "planted");
    T_EQ(scan_process(getpid(), &sc), 0);
    T_ASSERT(sc.bytes > 1000000);
    for (size_t i = 0; i < sc.count; i++)
        T_ASSERT(sc.n[i].found >= 2); /* the heap copy and the needle itself */
    cc__wipe(heap, 4096);
    free(heap);
}

static void test_no_other_hash_in_client_memory(void)
{
    T_ASSERT(started);
    char pw[64];
    snprintf(pw, sizeof pw, "%s-secret-%d", names[LOGON], LOGON * 7919);
    T_EQ(logon(names[LOGON], pw), 0);
    T_ASSERT(client_said("\"identity\":\"WORKGROUP\\\\alice\""));
    /* a second logon that fails at the store, and one with a wrong password */
    T_EQ(logon("nobody", pw), CC_ERR_AUTH_BAD_CREDENTIALS); /* the console cannot tell an unknown account */
    T_EQ(logon(names[LOGON], "wrong"), CC_ERR_AUTH_BAD_CREDENTIALS);
    usleep(200000); /* the client finishes its side of the closes */

    struct scan sc = {0};
    static char hexes[N_ACCOUNTS][2][33];
    for (int i = 0; i < N_ACCOUNTS; i++)
        if (i != LOGON)
            add_hash(&sc, hashes[i], hexes[i], names[i]);
    size_t others = sc.count;
    add_needle(&sc, plant_raw, 16, "planted raw");
    add_needle(&sc, plant_hex, 32, "planted hex");
    add_hash(&sc, hashes[LOGON], hexes[LOGON], names[LOGON]);
    T_EQ(scan_process(client_pid, &sc), 0);
    printf("# scanned %zu bytes in %zu regions of cc-client (pid %d); %zu regions over 64 MiB skipped\n", sc.bytes,
           sc.regions, (int)client_pid, sc.skipped);
    T_ASSERT(sc.bytes > 1000000);
    /* the scan sees the client's memory: the planted copies are found there */
    T_ASSERT(sc.n[others].found >= 1);
    T_ASSERT(sc.n[others + 1].found >= 1);
    size_t left = 0;
    for (size_t i = 0; i < others; i++)
        if (sc.n[i].found) {
            printf("# %s's NT hash (%s) found %zu times\n", sc.n[i].what, sc.n[i].len == 16 ? "raw" : "hex",
                   sc.n[i].found);
            left += sc.n[i].found;
        }
    T_EQ(left, 0);
    /* nor the hash of the account that logged on: wiped after use as well */
    for (size_t i = others + 2; i < sc.count; i++) {
        if (sc.n[i].found)
            printf("# %s's own NT hash (%s) found %zu times\n", sc.n[i].what, sc.n[i].len == 16 ? "raw" : "hex",
                   sc.n[i].found);
        T_EQ(sc.n[i].found, 0);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    started = setup() == 0;
    t_run("client_started", test_client_started);
    t_run("scanner_finds_planted_copy", test_scanner_finds_planted_copy);
    t_run("no_other_nt_hash_in_client_memory_after_logon", test_no_other_hash_in_client_memory);
    if (client_pid > 0) {
        kill(client_pid, SIGTERM);
        waitpid(client_pid, NULL, 0);
    }
    return t_done();
}
