/* nt.h -- internal pieces of the "nt" authenticator (NTLMv2, MS-NLMP): crypto,
 * message encoding and parsing, the smbpasswd account store and the KDC probe. */
#ifndef CC_AUTH_NT_H
#define CC_AUTH_NT_H

#include "../auth.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- MS-NLMP constants (section 2.2.2.5, 2.2.2.1) ---- */
#define CC__NTLM_NEGOTIATE_UNICODE                  0x00000001u
#define CC__NTLM_NEGOTIATE_OEM                      0x00000002u
#define CC__NTLM_REQUEST_TARGET                     0x00000004u
#define CC__NTLM_NEGOTIATE_SIGN                     0x00000010u
#define CC__NTLM_NEGOTIATE_SEAL                     0x00000020u
#define CC__NTLM_NEGOTIATE_NTLM                     0x00000200u
#define CC__NTLM_ANONYMOUS                          0x00000800u
#define CC__NTLM_NEGOTIATE_ALWAYS_SIGN              0x00008000u
#define CC__NTLM_TARGET_TYPE_DOMAIN                 0x00010000u
#define CC__NTLM_TARGET_TYPE_SERVER                 0x00020000u
#define CC__NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY 0x00080000u
#define CC__NTLM_NEGOTIATE_TARGET_INFO              0x00800000u
#define CC__NTLM_NEGOTIATE_VERSION                  0x02000000u
#define CC__NTLM_NEGOTIATE_128                      0x20000000u
#define CC__NTLM_NEGOTIATE_KEY_EXCH                 0x40000000u
#define CC__NTLM_NEGOTIATE_56                       0x80000000u

#define CC__AV_EOL               0
#define CC__AV_NB_COMPUTER_NAME  1
#define CC__AV_NB_DOMAIN_NAME    2
#define CC__AV_DNS_COMPUTER_NAME 3
#define CC__AV_DNS_DOMAIN_NAME   4
#define CC__AV_DNS_TREE_NAME     5
#define CC__AV_FLAGS             6
#define CC__AV_TIMESTAMP         7
#define CC__AV_SINGLE_HOST       8
#define CC__AV_TARGET_NAME       9
#define CC__AV_CHANNEL_BINDINGS  10
#define CC__AV_FLAG_MIC_PRESENT  0x2u

/* Bounds on what we accept from a peer (see doc/AUTH-NT.md). */
#define CC__NT_MAX_NEGOTIATE    1024
#define CC__NT_MAX_CHALLENGE    8192
#define CC__NT_MAX_AUTHENTICATE 16384
#define CC__NT_MAX_NAME_UNITS   256 /* UTF-16 code units of a user, domain or workstation name */
#define CC__NT_NAME_BUF         (CC__NT_MAX_NAME_UNITS * 3 + 1) /* the same as UTF-8, NUL included */
#define CC__NT_MAX_NT_RESPONSE  8192
#define CC__NT_MIN_NT_RESPONSE  48 /* NTProofStr 16 + blob header 28 + MsvAvEOL 4 */

/* ---- crypto (ntcrypto.c) ---- */
/* MD4 (RFC 1320), our own: see doc/AUTH-NT.md for why not OpenSSL's legacy provider. */
void cc__nt_md4(const uint8_t *data, size_t len, uint8_t out[16]);
/* HMAC-MD5 over the concatenation of n parts, through OpenSSL 3's EVP_MAC.
 * 0, or CC_ERR_AUTH_UNAVAILABLE when the host's OpenSSL refuses MD5. */
int cc__nt_hmac_md5(const uint8_t *key, size_t key_len, size_t n, const uint8_t *const *parts, const size_t *lens,
                    uint8_t out[16]);
int cc__nt_md5(const uint8_t *data, size_t len, uint8_t out[16]);
/* RC4 in place (only for a peer that negotiated NTLMSSP_NEGOTIATE_KEY_EXCH). */
void cc__nt_rc4(const uint8_t *key, size_t key_len, uint8_t *data, size_t len);

/* UTF-8 -> UTF-16LE. Rejects invalid UTF-8 and more than `max_units` code
 * units. *out is allocated with the context's allocator (len in bytes). */
int cc__nt_utf16_from_utf8(const cc_context *ctx, const char *s, size_t max_units, uint8_t **out, size_t *out_len);
/* UTF-16LE -> UTF-8 into dst (cap bytes, NUL-terminated). Rejects unpaired
 * surrogates, NUL and control characters. 0 or -1. */
int cc__nt_utf8_from_utf16(const uint8_t *s, size_t len, char *dst, size_t cap);
/* Upper-cases UTF-16LE in place the way NTOWFv2's Uppercase() needs it
 * (ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic). */
void cc__nt_utf16_upper(uint8_t *s, size_t len);

/* NT hash = MD4(UTF-16LE(password)). */
int cc__nt_hash_password(const cc_context *ctx, const char *password, uint8_t out[16]);
/* NTOWFv2 = HMAC_MD5(nt_hash, UTF16LE(Uppercase(user)) || UTF16LE(domain)),
 * user and domain given as the UTF-16LE bytes that travel in the messages. */
int cc__nt_ntowfv2_from_hash(const cc_context *ctx, const uint8_t nt_hash[16], const uint8_t *user16, size_t user16_len,
                             const uint8_t *domain16, size_t domain16_len, uint8_t out[16]);
/* The same from UTF-8 strings and a password; everything derived is wiped. */
int cc__nt_ntowfv2(const cc_context *ctx, const char *password, const char *user, const char *domain, uint8_t out[16]);
/* temp of MS-NLMP 3.3.2: 0x01 0x01 Z(6) Time ClientChallenge Z(4) AvPairs Z(4). */
int cc__nt_make_temp(const cc_context *ctx, cc__buf *out, uint64_t filetime, const uint8_t client_challenge[8],
                     const uint8_t *av, size_t av_len);
/* NTProofStr = HMAC_MD5(ntowfv2, ServerChallenge || temp). */
int cc__nt_proof(const uint8_t ntowfv2[16], const uint8_t server_challenge[8], const uint8_t *temp, size_t temp_len,
                 uint8_t proof[16]);
/* SessionBaseKey = HMAC_MD5(ntowfv2, NTProofStr). */
int cc__nt_session_base_key(const uint8_t ntowfv2[16], const uint8_t proof[16], uint8_t out[16]);
/* MD5 of the gss_channel_bindings_struct-style structure around the TLS
 * channel binding: Z(16) || LE32(13 + cb_len) || "tls-exporter:" || cb. */
int cc__nt_channel_binding_hash(const uint8_t *cb, size_t cb_len, uint8_t out[16]);
/* MIC = HMAC_MD5(exported_session_key, NEGOTIATE || CHALLENGE || AUTHENTICATE
 * with its MIC field zeroed); mic_offset is where the MIC sits in auth. */
int cc__nt_mic(const uint8_t key[16], const uint8_t *neg, size_t neg_len, const uint8_t *chal, size_t chal_len,
               const uint8_t *auth, size_t auth_len, size_t mic_offset, uint8_t out[16]);
/* Windows FILETIME (100 ns since 1601) of now. */
uint64_t cc__nt_filetime_now(void);

/* ---- messages (ntmsg.c) ---- */
int cc__nt_build_negotiate(const cc_context *ctx, cc__buf *out);

struct cc__nt_negotiate {
    uint32_t flags;
    /* the character set the CHALLENGE picks (MS-NLMP 2.2.2.5, 3.2.5.1.1):
     * CC__NTLM_NEGOTIATE_UNICODE when offered, else CC__NTLM_NEGOTIATE_OEM */
    uint32_t charset;
};
int cc__nt_parse_negotiate(const uint8_t *msg, size_t len, struct cc__nt_negotiate *n, char *detail, size_t detail_len);

/* Target info of the CHALLENGE: NetBIOS domain and computer, DNS names when
 * given, MsvAvTimestamp, MsvAvEOL. */
int cc__nt_build_target_info(const cc_context *ctx, cc__buf *out, const char *nb_domain, const char *nb_computer,
                             const char *dns_domain, uint64_t filetime);
/* TargetName goes in the character set `flags` pick (OEM: printable ASCII only). */
int cc__nt_build_challenge(const cc_context *ctx, cc__buf *out, uint32_t flags, const uint8_t server_challenge[8],
                           const char *target_name, const uint8_t *target_info, size_t target_info_len);

struct cc__nt_challenge {
    uint32_t flags;
    uint8_t server_challenge[8];
    const uint8_t *target_info; /* points into the message */
    size_t target_info_len;
    bool have_timestamp;
    uint64_t timestamp;
};
int cc__nt_parse_challenge(const uint8_t *msg, size_t len, struct cc__nt_challenge *c, char *detail, size_t detail_len);

/* Builds the AUTHENTICATE the console sends: NTLMv2 response over the
 * server's target info plus MsvAvFlags (MIC present) and
 * MsvAvChannelBindings, and the MIC. */
struct cc__nt_auth_input {
    const uint8_t *ntowfv2;                  /* 16 bytes */
    const char *user, *domain, *workstation; /* UTF-8 */
    const uint8_t *negotiate;                /* the NEGOTIATE we sent */
    size_t negotiate_len;
    const uint8_t *challenge; /* the CHALLENGE we received */
    size_t challenge_len;
    const uint8_t *cb; /* TLS channel binding, NULL for none */
    size_t cb_len;
    const uint8_t *client_challenge; /* 8 bytes; NULL = random */
    uint64_t filetime;               /* 0 = the server's MsvAvTimestamp, else now */
};
int cc__nt_build_authenticate(const cc_context *ctx, cc__buf *out, const struct cc__nt_auth_input *in, char *detail,
                              size_t detail_len);

struct cc__nt_authenticate {
    uint32_t flags;
    const uint8_t *lm, *nt, *domain16, *user16, *workstation16, *enc_key;
    size_t lm_len, nt_len, domain16_len, user16_len, workstation16_len, enc_key_len;
    size_t mic_offset; /* 0 when the header has no room for a MIC */
    /* OEM (ASCII) names widened to UTF-16LE, where user16 etc. point then */
    uint8_t oem16[3][CC__NT_MAX_NAME_UNITS * 2];
    char user[CC__NT_NAME_BUF], domain[CC__NT_NAME_BUF], workstation[CC__NT_NAME_BUF];
    /* from the NTLMv2 response */
    uint64_t client_time;
    uint8_t client_challenge[8];
    const uint8_t *av; /* AV pairs of the client's blob */
    size_t av_len;
    bool have_av_flags;
    uint32_t av_flags;
    bool have_cb;
    uint8_t cb_hash[16];
    bool have_av_timestamp;
    uint64_t av_timestamp;
};
/* charset: what the CHALLENGE picked (CC__NTLM_NEGOTIATE_UNICODE or _OEM);
 * the names are read in it, and the AUTHENTICATE's flags must say the same.
 * OEM names must be printable ASCII (0x20..0x7e): the code page is unknown. */
int cc__nt_parse_authenticate(const uint8_t *msg, size_t len, uint32_t charset, struct cc__nt_authenticate *a,
                              char *detail, size_t detail_len);
/* Checks NTProofStr (from the NT hash, user and domain of the message) and,
 * when require_mic or the MsvAvFlags say one is present, the MIC. Returns 0,
 * CC_ERR_AUTH_BAD_CREDENTIALS (wrong proof or MIC) or CC_ERR_AUTH_TOKEN. */
int cc__nt_verify_proof(const cc_context *ctx, const uint8_t nt_hash[16], const struct cc__nt_authenticate *a,
                        const uint8_t server_challenge[8], const uint8_t *neg, size_t neg_len, const uint8_t *chal,
                        size_t chal_len, const uint8_t *auth, size_t auth_len, bool require_mic, char *detail,
                        size_t detail_len);

/* ---- account store (ntstore.c) ---- */
/* Looks `user` up in a Samba smbpasswd file (names compare case-insensitively
 * in ASCII). 0 and the NT hash and canonical name; CC_ERR_AUTH_UNKNOWN_USER,
 * CC_ERR_AUTH_DISABLED (D or L flag, or no NT hash), CC_ERR_CONFIG (file
 * unreadable or a malformed line), with a detail. */
int cc__nt_store_lookup(const char *path, const char *user, uint8_t nt_hash[16], char *canonical, size_t canonical_len,
                        char *detail, size_t detail_len);

/* ---- domain-controller account check (ntdc.c) ---- */
enum cc__nt_dc_mode { CC__NT_DC_OFF = 0, CC__NT_DC_REQUIRED = 1, CC__NT_DC_BEST_EFFORT = 2 };

/* The check is one job, self-contained (it copies what it needs), so the
 * exchange may start it from any step:
 *   cc__nt_dc_start(auth, ...) -> return CC_AUTH_PENDING from that step;
 *   the next step (in = NULL)  -> cc__nt_dc_outcome();
 *   when the state ends        -> cc__nt_dc_release() (NULL is fine). */
struct cc__nt_dc_job;
/* Hands out, as the job of the current step, the question whether the KDC of
 * realm knows user@realm (an AS request with no password; krb5_conf NULL =
 * libkrb5's default configuration), bounded by CC_TIMEOUT_AUTH_JOB. *out is
 * the caller's reference. CC_OK, CC_ERR_NOMEM, or cc_auth_submit_job's error
 * (CC_ERR_STATE when the step already has a job); *out is NULL on error. */
int cc__nt_dc_start(cc_auth *auth, const cc_context *ctx, const char *user, const char *realm, const char *krb5_conf,
                    struct cc__nt_dc_job **out);
/* In the step after the job came back: 0 when the account exists, else
 * CC_ERR_AUTH_UNKNOWN_USER, CC_ERR_AUTH_DISABLED, CC_ERR_AUTH_EXPIRED,
 * CC_ERR_AUTH_KDC_UNREACHABLE (also when the host answered the job without
 * running it), CC_ERR_CONFIG or CC_ERR_AUTH; *detail (owned by j) says why. */
int cc__nt_dc_outcome(struct cc__nt_dc_job *j, const char **detail);
/* Drops one reference (the job's free_job_data, and the state's). */
void cc__nt_dc_release(void *job_data);

/* ---- the mechanism (nt.c) ---- */
/* The mech_data of the nt authenticator of ctx, or NULL if not added. */
struct nt_mech;

#endif
