/* diag.c -- certificate and file diagnostics for the tools (see diag.h). */
#define _GNU_SOURCE
#include "diag.h"

#include <carboncopy.h>

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "YYYY-MM-DD HH:MM:SS UTC", as cc-client's expiry warning writes it. */
static void asn1_date(char *out, size_t cap, const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm) || !strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, cap, "an unreadable date");
}

static void name_text(char *out, size_t cap, const X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    int len = 0;
    if (b && X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0)
        len = BIO_read(b, out, (int)cap - 1);
    out[len > 0 ? len : 0] = 0;
    BIO_free(b);
}

/* The subjectAltName entries the name check looks at: DNS names and IP addresses. */
static void alt_names(char *out, size_t cap, X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char one[INET6_ADDRSTRLEN + 64] = "";
        if (g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int l = ASN1_STRING_length(g->d.dNSName);
            snprintf(one, sizeof one, "DNS:%.*s", l > 60 ? 60 : l, (const char *)d);
        } else if (g->type == GEN_IPADD) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            int l = ASN1_STRING_length(g->d.iPAddress);
            char a[INET6_ADDRSTRLEN] = "?";
            if (l == 4 || l == 16)
                inet_ntop(l == 4 ? AF_INET : AF_INET6, d, a, sizeof a);
            snprintf(one, sizeof one, "IP:%s", a);
        } else {
            continue;
        }
        int n = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", one);
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
    GENERAL_NAMES_free(gens);
}

void ex_cert_clear(ex_cert *c)
{
    free(c->der);
    memset(c, 0, sizeof *c);
}

bool ex_cert_load(ex_cert *c, const uint8_t *der, size_t len)
{
    ex_cert_clear(c);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x)
        return false;
    name_text(c->subject, sizeof c->subject, X509_get_subject_name(x));
    name_text(c->issuer, sizeof c->issuer, X509_get_issuer_name(x));
    asn1_date(c->not_before, sizeof c->not_before, X509_get0_notBefore(x));
    asn1_date(c->not_after, sizeof c->not_after, X509_get0_notAfter(x));
    c->expired = X509_cmp_current_time(X509_get0_notAfter(x)) < 0;
    c->not_yet_valid = X509_cmp_current_time(X509_get0_notBefore(x)) > 0;
    alt_names(c->names, sizeof c->names, x);
    unsigned char md[32];
    unsigned mdlen = 0;
    if (EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32)
        for (int i = 0; i < 32; i++)
            snprintf(c->sha256 + 2 * i, 3, "%02x", md[i]);
    X509_free(x);
    c->der = malloc(len);
    if (c->der) {
        memcpy(c->der, der, len);
        c->der_len = len;
    }
    c->have = true;
    return true;
}

/* The reason OpenSSL gives when the leaf alone is checked against the trust
 * anchor the console used (the CA file, or the system store), without the
 * name: the library's callback hands over the leaf, not the chain, so a
 * chain through an intermediate reads as "issuer not found" here too. */
static int own_check(const ex_cert *c, const char *ca_file)
{
    const unsigned char *p = c->der;
    X509 *x = c->der ? d2i_X509(NULL, &p, (long)c->der_len) : NULL;
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *xs = X509_STORE_CTX_new();
    int e = X509_V_ERR_UNSPECIFIED;
    if (x && st && xs && (ca_file ? X509_STORE_load_file(st, ca_file) : X509_STORE_set_default_paths(st)) == 1 &&
        X509_STORE_CTX_init(xs, st, x, NULL) == 1) {
        X509_STORE_CTX_set_purpose(xs, X509_PURPOSE_SSL_SERVER);
        e = X509_verify_cert(xs) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(xs);
    }
    X509_STORE_CTX_free(xs);
    X509_STORE_free(st);
    X509_free(x);
    ERR_clear_error();
    return e;
}

/* Where the console looked for the issuer, and what to do when it is not there. */
static const char *anchor(char *buf, size_t cap, const char *ca_file)
{
    if (ca_file)
        snprintf(buf, cap, "which is not among the CAs in %s (--ca): give the file of the CA that issued it", ca_file);
    else
        snprintf(buf, cap,
                 "which is not in this machine's CA store (no --ca or --pin was given, so the system store "
                 "was used): give the client's CA with --ca FILE, or pin this certificate with --pin SHA256");
    return buf;
}

const char *ex_cert_explain(char *out, size_t cap, int code, const char *detail, const ex_cert *c, const char *host,
                            const char *ca_file, bool pinned)
{
    char where[512];
    if (!c || !c->have || pinned || (code != CC_ERR_CERT_UNTRUSTED && code != CC_ERR_CERT_MISMATCH)) {
        /* the pin's own text already names the fingerprint and the remedy */
        snprintf(out, cap, "%s", detail && *detail ? detail : cc_strerror(code));
        return out;
    }
    if (code == CC_ERR_CERT_MISMATCH) {
        snprintf(out, cap,
                 "the client's certificate (%s) is for %s, not for %s, the name connected to: connect by one of "
                 "its names, or give the client a certificate that names %s",
                 c->subject, c->names[0] ? c->names : "no name at all (it has no subjectAltName)", host, host);
        return out;
    }
    int e = own_check(c, ca_file);
    const char *fp_hint = ca_file ? "" : " (its SHA-256 is ";
    switch (e) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        snprintf(out, cap,
                 "the client's certificate (%s) expired on %s: the client needs a new one (cc-client --cert), or "
                 "one of the two clocks is wrong",
                 c->subject, c->not_after);
        return out;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        snprintf(out, cap,
                 "the client's certificate (%s) is not valid before %s: the clock of this machine or of the "
                 "client is wrong, or the certificate was issued for later",
                 c->subject, c->not_before);
        return out;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        snprintf(out, cap, "the client's certificate (%s) is self-signed, %s%s%s%s", c->subject,
                 anchor(where, sizeof where, ca_file), fp_hint, ca_file ? "" : c->sha256, ca_file ? "" : ")");
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        snprintf(out, cap, "the client's certificate (%s) was issued by %s, %s%s%s%s", c->subject, c->issuer,
                 anchor(where, sizeof where, ca_file), fp_hint, ca_file ? "" : c->sha256, ca_file ? "" : ")");
        break;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        snprintf(out, cap,
                 "the signature on the client's certificate (%s) does not verify with the key of the CA %s%s%s: "
                 "a different CA of the same name issued it, or the certificate was altered",
                 c->subject, c->issuer, ca_file ? " in " : "", ca_file ? ca_file : "");
        break;
    case X509_V_ERR_INVALID_PURPOSE:
        snprintf(out, cap,
                 "the client's certificate (%s) is not meant for a TLS server (its key usage or extended key "
                 "usage leaves out serverAuth): the client needs a server certificate",
                 c->subject);
        break;
    case X509_V_ERR_CERT_REVOKED:
        snprintf(out, cap, "the client's certificate (%s) has been revoked by its CA: the client needs a new one",
                 c->subject);
        break;
    default:
        /* what OpenSSL said is already in the library's detail */
        snprintf(out, cap, "%s", detail && *detail ? detail : cc_strerror(code));
        return out;
    }
    if (c->expired) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "; it also expired on %s", c->not_after);
    }
    return out;
}

bool ex_file_readable(const char *prog, const char *option, const char *what, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        return true;
    }
    fprintf(stderr, "%s: cannot read the %s %s (--%s): %s\n", prog, what, path, option, strerror(errno));
    return false;
}

bool ex_file_has_pem_cert(const char *prog, const char *option, const char *path)
{
    FILE *f = fopen(path, "rb");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    ERR_clear_error();
    if (x) {
        X509_free(x);
        return true;
    }
    fprintf(stderr, "%s: %s (--%s) holds no certificate in PEM form (\"-----BEGIN CERTIFICATE-----\")\n", prog, path,
            option);
    return false;
}
