/* fuzz-ntlm.c -- libFuzzer target for the nt authenticator's parsers of untrusted input: the NEGOTIATE,
 * CHALLENGE and AUTHENTICATE messages (ntmsg.c, with the proof check) and the smbpasswd account store. */
#define _GNU_SOURCE
#include <carboncopy.h>

#include "../../lib/auth/nt/nt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cc_context *ctx;
static uint8_t nt_hash[16]; /* of "Password", the MS-NLMP 4.2.4 test password */
static int store_fd = -1;   /* a memfd holding the account store of one run */
static char store_path[64];
static const uint8_t server_challenge[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}; /* MS-NLMP 4.2.4 */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ctx = cc_context_new(CC_ROLE_CLIENT, NULL, NULL);
    if (!ctx || cc__nt_hash_password(ctx, "Password", nt_hash) != 0)
        abort();
    store_fd = memfd_create("cc-fuzz-smbpasswd", MFD_CLOEXEC);
    if (store_fd < 0)
        abort();
    snprintf(store_path, sizeof store_path, "/proc/self/fd/%d", store_fd);
    return 0;
}

static void messages(const uint8_t *m, size_t len)
{
    char detail[CC__DETAIL_MAX];
    struct cc__nt_negotiate neg;
    if (cc__nt_parse_negotiate(m, len, &neg, detail, sizeof detail) == 0 &&
        !(neg.charset == CC__NTLM_NEGOTIATE_UNICODE
              ? (neg.flags & CC__NTLM_NEGOTIATE_UNICODE)
              : neg.charset == CC__NTLM_NEGOTIATE_OEM && (neg.flags & CC__NTLM_NEGOTIATE_OEM)))
        abort();

    struct cc__nt_challenge ch;
    if (cc__nt_parse_challenge(m, len, &ch, detail, sizeof detail) == 0 && ch.target_info_len &&
        (ch.target_info < m || ch.target_info + ch.target_info_len > m + len))
        abort();

    struct cc__nt_authenticate *a = malloc(sizeof *a);
    if (!a)
        abort();
    int rc = cc__nt_parse_authenticate(m, len, (len & 2) ? CC__NTLM_NEGOTIATE_OEM : CC__NTLM_NEGOTIATE_UNICODE, a,
                                       detail, sizeof detail);
    if (rc == 0) {
        /* What the acceptor relies on: every field inside the message, names terminated. */
        if (a->nt_len < CC__NT_MIN_NT_RESPONSE || a->nt_len > CC__NT_MAX_NT_RESPONSE || a->nt < m ||
            a->nt + a->nt_len > m + len || a->av < a->nt || a->av + a->av_len > a->nt + a->nt_len ||
            !memchr(a->user, 0, sizeof a->user) || !memchr(a->domain, 0, sizeof a->domain) || !a->user[0] ||
            (a->mic_offset && a->mic_offset + 16 > len))
            abort();
        uint8_t negotiate[40] = {0};
        rc = cc__nt_verify_proof(ctx, nt_hash, a, server_challenge, negotiate, sizeof negotiate, m, len > 64 ? 64 : len,
                                 m, len, (len & 1) != 0, detail, sizeof detail);
        if (rc != 0 && rc != CC_ERR_AUTH_BAD_CREDENTIALS && rc != CC_ERR_AUTH_TOKEN && rc != CC_ERR_AUTH_UNAVAILABLE)
            abort();
    }
    free(a);

    /* The UTF-16 helpers the parsers use, on the raw bytes. */
    char utf8[CC__NT_NAME_BUF];
    size_t n = len > 2 * CC__NT_MAX_NAME_UNITS ? 2 * CC__NT_MAX_NAME_UNITS : len;
    if (cc__nt_utf8_from_utf16(m, n & ~(size_t)1, utf8, sizeof utf8) == 0 && !memchr(utf8, 0, sizeof utf8))
        abort();
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, m, n);
    cc__nt_utf16_upper(copy, n & ~(size_t)1);
    free(copy);
}

/* The account store: the user name (up to the first newline of the input),
 * then the file's content. */
static void store(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ul = nl ? (size_t)(nl - data) : size;
    char user[64];
    if (ul >= sizeof user)
        ul = sizeof user - 1;
    memcpy(user, data, ul);
    user[ul] = 0;
    const uint8_t *file = nl ? nl + 1 : data + size;
    size_t file_len = (size_t)(data + size - file);
    if (ftruncate(store_fd, 0) != 0 || pwrite(store_fd, file, file_len, 0) != (ssize_t)file_len)
        abort();
    uint8_t hash[16];
    char canonical[256], detail[CC__DETAIL_MAX];
    int rc = cc__nt_store_lookup(store_path, user, hash, canonical, sizeof canonical, detail, sizeof detail);
    if (rc != 0 && rc != CC_ERR_AUTH_UNKNOWN_USER && rc != CC_ERR_AUTH_DISABLED && rc != CC_ERR_CONFIG)
        abort();
    if (rc == 0 && strcasecmp(canonical, user) != 0 && strlen(canonical) < sizeof canonical - 1)
        abort();
}

/* Input: a selector byte (even: messages, odd: account store), then the data. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        store(data + 1, size - 1);
    else
        messages(data + 1, size - 1);
    return 0;
}
