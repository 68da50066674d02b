/* diag.h -- what the tools say about certificates and files, in words that
 * name the cause and the remedy: the client's certificate as cc-console saw
 * it (from the verify callback's DER), why a check of it failed, and whether
 * a file named on the command line can be used at all. */
#ifndef CC_EXAMPLES_DIAG_H
#define CC_EXAMPLES_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The client's leaf certificate, as text. Dates are "YYYY-MM-DD HH:MM:SS UTC". */
typedef struct ex_cert {
    bool have;
    char subject[256], issuer[256]; /* RFC 2253, e.g. "CN=localhost" */
    char not_before[32], not_after[32];
    char names[512]; /* its subjectAltNames, "DNS:a, IP:127.0.0.1"; "" when it has none */
    char sha256[65]; /* fingerprint of the DER, lower-case hex */
    bool expired, not_yet_valid;
    unsigned char *der; /* a copy, for ex_cert_explain's own check (malloc'd) */
    size_t der_len;
} ex_cert;

/* Parses `der` into c (replacing what c held). False when it is not a certificate. */
bool ex_cert_load(ex_cert *c, const uint8_t *der, size_t len);
void ex_cert_clear(ex_cert *c);

/* What to tell support staff when the certificate check failed with `code`
 * (CC_ERR_CERT_*, the library's `detail`): the cause in words and what to do
 * about it, naming the certificate's dates, its names against `host` (the name
 * connected to), and the trust anchor: `ca_file` (--ca), a pin, or neither
 * (the system store: then the advice is --ca FILE or --pin SHA256). One
 * sentence, no phrase twice. Writes into out (cap bytes) and returns it. */
const char *ex_cert_explain(char *out, size_t cap, int code, const char *detail, const ex_cert *c, const char *host,
                            const char *ca_file, bool pinned);

/* An option's file: true when it can be opened for reading; else prints
 * "PROG: cannot read the WHAT FILE (--OPTION): REASON" and returns false. */
bool ex_file_readable(const char *prog, const char *option, const char *what, const char *path);
/* True when the file holds at least one PEM certificate; else prints
 * "PROG: FILE (--OPTION) holds no certificate in PEM form ..." (after
 * ex_file_readable's check). */
bool ex_file_has_pem_cert(const char *prog, const char *option, const char *path);

#endif
