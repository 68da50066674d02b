/* tls-early.c -- not a benchmark but an experiment whose answer decides protocol version 2's flights
 * (doc/PROTOCOL.md section 2): on memory BIOs with OpenSSL 3.0 and TLS 1.3, (1) can the TLS server
 * write application data after its Finished, before the client's Finished (0.5-RTT), with SSL_write
 * or SSL_write_early_data; (2) can the TLS client write application data in the same flight as its
 * Finished. Prints what OpenSSL did; `make bench` runs it. */
#include "../test/harness.h"
#include "../test/pair.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

/* Moves what `from` wrote into `to`'s read BIO; returns the byte count. */
static size_t move(BIO *from, BIO *to)
{
    char buf[65536];
    size_t total = 0;
    int n;
    while ((n = BIO_read(from, buf, sizeof buf)) > 0) {
        BIO_write(to, buf, n);
        total += (size_t)n;
    }
    return total;
}

static const char *err_name(SSL *s, int r)
{
    switch (SSL_get_error(s, r)) {
    case SSL_ERROR_NONE:
        return "ok";
    case SSL_ERROR_WANT_READ:
        return "SSL_ERROR_WANT_READ";
    case SSL_ERROR_WANT_WRITE:
        return "SSL_ERROR_WANT_WRITE";
    case SSL_ERROR_SSL:
        return "SSL_ERROR_SSL";
    default:
        return "another error";
    }
}

int main(void)
{
    if (t_make_certs() != 0) {
        fprintf(stderr, "tls-early: no test PKI\n");
        return 1;
    }
    SSL_CTX *cc = SSL_CTX_new(TLS_client_method()), *sc = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(cc, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(sc, 0);
    if (SSL_CTX_use_certificate_chain_file(sc, t_cert("client.pem")) != 1 ||
        SSL_CTX_use_PrivateKey_file(sc, t_cert("client.key"), SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "tls-early: cannot load the certificate\n");
        return 1;
    }
    SSL *c = SSL_new(cc), *s = SSL_new(sc);
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(c_in, -1);
    BIO_set_mem_eof_return(s_in, -1);
    SSL_set_bio(c, c_in, c_out);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);

    printf("# tls-early: %s, TLS 1.3 over memory BIOs\n", OpenSSL_version(OPENSSL_VERSION));
    int r = SSL_do_handshake(c);
    printf("client hello: do_handshake %s, %zu bytes\n", err_name(c, r), move(c_out, s_in));
    r = SSL_do_handshake(s);
    size_t flight = BIO_ctrl_pending(s_out);
    printf("server flight: do_handshake %s, %zu bytes (ServerHello .. Finished)\n", err_name(s, r), flight);

    /* (1) 0.5-RTT: the server writes before the client's Finished */
    r = SSL_write(s, "half", 4);
    printf("server SSL_write before the client's Finished: %s, %zu more bytes queued\n", err_name(s, r),
           BIO_ctrl_pending(s_out) - flight);
    ERR_clear_error();
    size_t w = 0;
    r = SSL_write_early_data(s, "half", 4, &w);
    printf("server SSL_write_early_data (no early-data read in progress): %s\n",
           r == 1 ? "accepted" : "refused (only while reading early data)");
    ERR_clear_error();
    move(s_out, c_in);

    /* (2) the client's Finished and its first data in one flight */
    r = SSL_do_handshake(c);
    size_t fin = BIO_ctrl_pending(c_out);
    printf("client: do_handshake %s with the server flight in; its Finished: %zu bytes queued\n", err_name(c, r), fin);
    r = SSL_write(c, "HELLO and the first token", 25);
    size_t both = BIO_ctrl_pending(c_out);
    printf("client SSL_write right after: %s; %zu bytes queued = Finished + %zu bytes of data, one flight\n",
           r > 0 ? "ok" : err_name(c, r), both, both - fin);
    move(c_out, s_in);
    char got[64] = "";
    r = SSL_read(s, got, sizeof got - 1);
    if (r > 0)
        got[r] = 0;
    printf("server reads, in the same step as the Finished: %s \"%s\"\n", r > 0 ? "ok" : err_name(s, r), got);
    r = SSL_write(s, "after", 5);
    printf("server SSL_write after the client's Finished: %s\n", r > 0 ? "ok" : err_name(s, r));

    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cc);
    SSL_CTX_free(sc);
    t_tmpdir_remove();
    return 0;
}
