/* tls.c -- OpenSSL over a BIO of our own: TLS 1.2+ with forward-secret AEAD
 * ciphers, the client's certificate, and the console's trust decision. */
#include "tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <string.h>

struct cc__tls {
    const cc_context *ctx;
    const cc__tls_conf *conf;
    cc_session *session;
    SSL *ssl;
    BIO *bio;     /* ours, both ways: reads take from `in`, writes append to `out` */
    cc__buf in;   /* network bytes fed and not yet taken by OpenSSL */
    cc__buf *out; /* where records go (cc__tls_set_output) */
    bool nomem;   /* a write to `out` found no memory (in the SSL call now running) */
    bool done;
    int verify_code; /* set when our certificate policy refused */
    char verify_detail[CC__DETAIL_MAX];
};

/* TLS 1.2: ECDHE key exchange with AEAD only. TLS 1.3 suites are all forward secret. */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";

static void openssl_error(char *detail, size_t n, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "no further detail from OpenSSL";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    cc__fmt(detail, n, "%s: %s", what, buf);
}

static int verify_cb(X509_STORE_CTX *xs, void *arg);

int cc__tls_conf_init(cc_context *ctx, cc__tls_conf *conf)
{
    int role = cc__cbase(ctx)->role;
    SSL_CTX *c = SSL_CTX_new(role == CC_ROLE_CONSOLE ? TLS_client_method() : TLS_server_method());
    if (!c)
        return CC_ERR_NOMEM;
    /* Protocol version 2 is TLS 1.3 only (doc/PROTOCOL.md 2): a TLS 1.2 peer gets a protocol_version alert. */
    SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(c, tls12_ciphers) != 1) {
        SSL_CTX_free(c);
        return CC_ERR_INTERNAL;
    }
    SSL_CTX_set_num_tickets(c, 0);
    if (role == CC_ROLE_CONSOLE) {
        /* The system store until a CA file, pin or callback says otherwise. */
        SSL_CTX_set_default_verify_paths(c);
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(c, verify_cb, conf);
    }
    conf->ssl_ctx = c;
    if (!(conf->tickets = cc__ticket_conf_new(ctx, c))) {
        SSL_CTX_free(c);
        conf->ssl_ctx = NULL;
        return CC_ERR_NOMEM;
    }
    return CC_OK;
}

void cc__tls_conf_free(cc_context *ctx, cc__tls_conf *conf)
{
    SSL_CTX_free(conf->ssl_ctx);
    cc__ticket_conf_free(ctx, conf->tickets);
    cc__free(ctx, conf->cert_file);
    cc__free(ctx, conf->key_file);
    cc__free(ctx, conf->ca_file);
    cc__wipe(conf, sizeof *conf);
}

static int replace(cc_context *ctx, char **slot, const char *v)
{
    char *d = cc__strdup(ctx, v);
    if (!d)
        return CC_ERR_NOMEM;
    cc__free(ctx, *slot);
    *slot = d;
    return CC_OK;
}

int cc__tls_conf_set_certificate(cc_context *ctx, cc__tls_conf *conf, const char *cert_file, const char *key_file)
{
    SSL_CTX *c = conf->ssl_ctx;
    char *errmsg = cc__base(ctx)->errmsg;
    size_t errlen = sizeof cc__base(ctx)->errmsg;
    if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1) {
        openssl_error(errmsg, errlen, "cannot load the certificate chain");
        return cc__ctx_error(ctx, CC_ERR_TLS_CONFIG, "%s (file %s)", errmsg, cert_file);
    }
    if (SSL_CTX_use_PrivateKey_file(c, key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            return cc__ctx_error(ctx, CC_ERR_TLS_CONFIG, "the private key in %s does not match the certificate in %s",
                                 key_file, cert_file);
        }
        openssl_error(errmsg, errlen, "cannot load the private key");
        return cc__ctx_error(ctx, CC_ERR_TLS_CONFIG, "%s (file %s)", errmsg, key_file);
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        ERR_clear_error();
        return cc__ctx_error(ctx, CC_ERR_TLS_CONFIG, "the private key in %s does not match the certificate in %s",
                             key_file, cert_file);
    }
    int r = replace(ctx, &conf->cert_file, cert_file);
    return r == CC_OK ? replace(ctx, &conf->key_file, key_file) : r;
}

int cc__tls_conf_set_ca_file(cc_context *ctx, cc__tls_conf *conf, const char *ca_file)
{
    char *errmsg = cc__base(ctx)->errmsg;
    size_t errlen = sizeof cc__base(ctx)->errmsg;
    X509_STORE *st = X509_STORE_new();
    if (!st)
        return CC_ERR_NOMEM;
    if (X509_STORE_load_file(st, ca_file) != 1) {
        X509_STORE_free(st);
        openssl_error(errmsg, errlen, "cannot load CA certificates");
        return cc__ctx_error(ctx, CC_ERR_TLS_CONFIG, "%s (file %s)", errmsg, ca_file);
    }
    SSL_CTX_set_cert_store(conf->ssl_ctx, st); /* takes ownership, frees the old store */
    return replace(ctx, &conf->ca_file, ca_file);
}

/* The console's whole trust decision, made during the handshake so an
 * untrusted client is refused with an alert before any data flows. */
static int verify_cb(X509_STORE_CTX *xs, void *arg)
{
    const cc__tls_conf *conf = arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    cc__tls *t = SSL_get_app_data(ssl);
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    unsigned char *der = NULL;
    int der_len = leaf ? i2d_X509(leaf, &der) : -1;
    int ok;

    if (der_len <= 0) {
        t->verify_code = CC_ERR_CERT_UNTRUSTED;
        cc__fmt(t->verify_detail, sizeof t->verify_detail, "the client sent no usable certificate");
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    if (conf->have_pin) {
        uint8_t md[32];
        unsigned mdlen = 0;
        ok = EVP_Digest(der, (size_t)der_len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32 &&
             cc__ct_memcmp(md, conf->pin, 32) == 0;
        if (!ok) {
            char hex[65];
            for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
            t->verify_code = CC_ERR_CERT_MISMATCH;
            cc__fmt(t->verify_detail, sizeof t->verify_detail,
                    "the client's certificate has SHA-256 fingerprint %s, not the pinned one; "
                    "if the client's certificate was replaced, update the pin",
                    hex);
        }
    } else {
        ok = X509_verify_cert(xs) == 1;
        if (!ok) {
            int e = X509_STORE_CTX_get_error(xs);
            bool name = e == X509_V_ERR_HOSTNAME_MISMATCH || e == X509_V_ERR_IP_ADDRESS_MISMATCH;
            t->verify_code = name ? CC_ERR_CERT_MISMATCH : CC_ERR_CERT_UNTRUSTED;
            char subj[256] = "";
            X509_NAME_oneline(X509_get_subject_name(leaf), subj, sizeof subj);
            cc__fmt(t->verify_detail, sizeof t->verify_detail,
                    name ? "the client's certificate (%s) does not name the host connected to: %s"
                         : "the client's certificate (%s) is not trusted: %s; check the CA file",
                    subj, X509_verify_cert_error_string(e));
        }
    }
    if (conf->verify_fn) {
        int r = conf->verify_fn(conf->verify_user, t->session, der, (size_t)der_len, ok);
        if (r == 1) {
            ok = 1;
            t->verify_code = 0;
        } else if (ok) { /* a refusal of a certificate that passed; one that failed keeps its cause */
            ok = 0;
            t->verify_code = CC_ERR_CERT_REJECTED;
            cc__fmt(t->verify_detail, sizeof t->verify_detail,
                    "the host's verify callback rejected the client's certificate");
        }
    }
    OPENSSL_free(der);
    if (!ok && X509_STORE_CTX_get_error(xs) == X509_V_OK)
        X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return ok;
}

/* ---- the session's BIO ----
 * A memory BIO keeps the largest buffer it ever held for the connection's
 * life, and the bytes sealed into it were copied once more on their way to
 * the transport. Ours holds nothing: records are appended straight to the
 * pipe's output buffer, and the bytes fed in wait in `in`, which is freed as
 * soon as OpenSSL has taken them all. With SSL_MODE_RELEASE_BUFFERS an idle
 * connection then holds no record buffer at all. */

static BIO_METHOD *bio_method; /* made once per process, on first use; never freed */
static pthread_mutex_t bio_method_lock = PTHREAD_MUTEX_INITIALIZER;

static int bio_write(BIO *b, const char *data, int len)
{
    cc__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (!t->out || cc__buf_append(t->ctx, t->out, data, (size_t)len) < 0) {
        t->nomem = true;
        return -1;
    }
    return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
    cc__tls *t = BIO_get_data(b);
    size_t have = cc__buf_size(&t->in);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (!have) {
        BIO_set_retry_read(b); /* empty means "retry", not end of stream */
        return -1;
    }
    size_t n = (size_t)len < have ? (size_t)len : have;
    memcpy(buf, cc__buf_head(&t->in), n);
    cc__buf_consume(&t->in, n);
    cc__buf_release_nowipe(t->ctx, &t->in);
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    const cc__tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t ? (long)cc__buf_size(&t->in) : 0;
    default:
        return 0; /* WPENDING included: what is written is already the pipe's */
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *session_bio_method(void)
{
    pthread_mutex_lock(&bio_method_lock);
    if (!bio_method) { /* retried on the next session if OpenSSL ran out of memory */
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "carboncopy session");
        if (m && (BIO_meth_set_write(m, bio_write) != 1 || BIO_meth_set_read(m, bio_read) != 1 ||
                  BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1)) {
            BIO_meth_free(m);
            m = NULL;
        }
        bio_method = m;
    }
    BIO_METHOD *m = bio_method;
    pthread_mutex_unlock(&bio_method_lock);
    return m;
}

cc__tls *cc__tls_new(const cc_context *ctx, const cc__tls_conf *conf, cc_session *s, const char *peer_name,
                     char *detail, size_t n)
{
    cc__tls *t = cc__calloc(ctx, sizeof *t);
    if (!t)
        return NULL;
    t->ctx = ctx;
    t->conf = conf;
    t->session = s;
    BIO_METHOD *m = session_bio_method();
    t->ssl = SSL_new(conf->ssl_ctx);
    t->bio = m ? BIO_new(m) : NULL;
    if (!t->ssl || !t->bio) {
        BIO_free(t->bio);
        SSL_free(t->ssl);
        cc__free(ctx, t);
        return NULL;
    }
    BIO_set_data(t->bio, t);
    SSL_set_bio(t->ssl, t->bio, t->bio); /* one BIO both ways: one reference taken */
    SSL_set_app_data(t->ssl, t);
    /* No record buffers while nothing is in flight (an idle session's largest share). */
    SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
    int tr = cc__ticket_attach(conf->tickets, t->ssl, s);
    if (tr < 0) {
        cc__fmt(detail, n, "%s", cc_strerror(tr));
        cc__tls_free(t);
        return NULL;
    }
    if (cc__cbase(ctx)->role == CC_ROLE_CONSOLE) {
        SSL_set_connect_state(t->ssl);
        if (peer_name && !conf->have_pin) {
            unsigned char tmp[16];
            bool is_ip = inet_pton(AF_INET, peer_name, tmp) == 1 || inet_pton(AF_INET6, peer_name, tmp) == 1;
            X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
            int r = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, peer_name) : SSL_set1_host(t->ssl, peer_name);
            if (!is_ip)
                SSL_set_tlsext_host_name(t->ssl, peer_name);
            if (r != 1) {
                cc__fmt(detail, n, "cannot use \"%s\" as the certificate name to check", peer_name);
                cc__tls_free(t);
                return NULL;
            }
        }
    } else {
        SSL_set_accept_state(t->ssl);
    }
    return t;
}

void cc__tls_free(cc__tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl); /* frees the BIO */
    cc__buf_free(t->ctx, &t->in);
    cc__free(t->ctx, t);
}

void cc__tls_set_output(cc__tls *t, cc__buf *out)
{
    t->out = out;
}

int cc__tls_feed(cc__tls *t, const uint8_t *data, size_t len)
{
    return cc__buf_append(t->ctx, &t->in, data, len);
}

static int ssl_failure(cc__tls *t, int r, const char *what, char *detail, size_t n)
{
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
        return CC__TLS_EOF;
    if (t->nomem) {
        ERR_clear_error();
        cc__fmt(detail, n, "%s: out of memory for the outgoing records", what);
        return CC_ERR_NOMEM;
    }
    if (t->verify_code) {
        ERR_clear_error();
        cc__fmt(detail, n, "%s", t->verify_detail);
        return t->verify_code;
    }
    openssl_error(detail, n, what);
    return CC_ERR_TLS;
}

int cc__tls_handshake(cc__tls *t, char *detail, size_t n)
{
    if (t->done)
        return 1;
    t->nomem = false;
    int r = SSL_do_handshake(t->ssl);
    if (r != 1) {
        r = ssl_failure(t, r, "TLS handshake failed", detail, n);
        return r == CC__TLS_EOF ? CC_ERR_TLS : r;
    }
    /* tls-exporter is only a sound channel binding with TLS 1.3 or extended master secret. */
    if (SSL_version(t->ssl) < TLS1_3_VERSION && SSL_get_extms_support(t->ssl) != 1) {
        cc__fmt(detail, n, "the peer negotiated TLS 1.2 without extended master secret (RFC 7627)");
        return CC_ERR_TLS;
    }
    t->done = true;
    return 1;
}

int cc__tls_read(cc__tls *t, uint8_t *buf, size_t len, char *detail, size_t n)
{
    t->nomem = false;
    int r = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (r > 0)
        return r;
    r = ssl_failure(t, r, "TLS record error", detail, n);
    /* Nothing left to read: OpenSSL 3.0 releases its read buffer after application data, but
     * keeps it (16.6 KB) after a post-handshake message such as a NewSessionTicket; an idle
     * session must not hold it. A no-op when the buffers are empty already. */
    if (r == 0 && SSL_pending(t->ssl) == 0)
        SSL_free_buffers(t->ssl);
    return r;
}

int cc__tls_write(cc__tls *t, const uint8_t *data, size_t len, char *detail, size_t n)
{
    while (len) {
        int chunk = len > 16384 ? 16384 : (int)len;
        t->nomem = false;
        int r = SSL_write(t->ssl, data, chunk);
        if (r <= 0) {
            r = ssl_failure(t, r, "TLS write failed", detail, n);
            return r == 0 ? CC_ERR_INTERNAL : r;
        }
        data += r;
        len -= (size_t)r;
    }
    return CC_OK;
}

void cc__tls_shutdown(cc__tls *t)
{
    if (t->done)
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

int cc__tls_channel_binding(const cc__tls *t, uint8_t out[32])
{
    static const char label[] = "EXPORTER-Channel-Binding";
    if (!t->done)
        return CC_ERR_STATE;
    /* RFC 9266: an empty context value (which differs from "no context" in TLS 1.2). */
    return SSL_export_keying_material(t->ssl, out, 32, label, sizeof label - 1, NULL, 0, 1) == 1 ? CC_OK : CC_ERR_TLS;
}

const char *cc__tls_version(const cc__tls *t)
{
    return t && t->done ? SSL_get_version(t->ssl) : NULL;
}
void *cc__tls_ssl(const cc__tls *t)
{
    return t ? t->ssl : NULL;
}
const char *cc__tls_cipher(const cc__tls *t)
{
    return t && t->done ? SSL_get_cipher_name(t->ssl) : NULL;
}
