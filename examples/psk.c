/* psk.c -- the "psk" example authenticator: how a host writes its own
 * mechanism with nothing but <carboncopy.h> and OpenSSL.
 *
 * Exchange (cn, sn: 32 random bytes each; cb: the TLS channel binding; name: the console's user name):
 *   console -> client   cn || name
 *   client  -> console  sn || HMAC(key, "cc-psk server" || cb || cn || sn || name)
 *   console -> client   HMAC(key, "cc-psk client" || cb || cn || sn || name)
 * Both proofs cover the channel binding, so a proof relayed into another TLS
 * connection fails, and the console checks the client's proof (mutual). */
#include "psk.h"

#include "common.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONCE        32
#define MAC          32
#define NAME_MAX_LEN 64

struct psk_key {
    unsigned char key[256];
    size_t len;
};

struct psk_state {
    struct psk_key *k;
    int step;
    unsigned char cn[NONCE], sn[NONCE];
    char name[NAME_MAX_LEN + 1];
};

static int proof(const struct psk_state *st, const cc_auth *a, const char *label, unsigned char out[MAC])
{
    const uint8_t *cb;
    size_t cb_len;
    if (cc_auth_channel_binding(a, &cb, &cb_len) != CC_OK)
        return -1;
    unsigned char msg[32 + 64 + 2 * NONCE + NAME_MAX_LEN];
    size_t n = 0, ll = strlen(label), nl = strlen(st->name);
    if (cb_len > 64)
        return -1;
    memcpy(msg + n, label, ll), n += ll;
    memcpy(msg + n, cb, cb_len), n += cb_len;
    memcpy(msg + n, st->cn, NONCE), n += NONCE;
    memcpy(msg + n, st->sn, NONCE), n += NONCE;
    memcpy(msg + n, st->name, nl), n += nl;
    unsigned int ol = 0;
    int ok = HMAC(EVP_sha256(), st->k->key, (int)st->k->len, msg, n, out, &ol) != NULL && ol == MAC;
    OPENSSL_cleanse(msg, sizeof msg);
    return ok ? 0 : -1;
}

static int psk_start(void *mech_data, cc_auth *a, void **state)
{
    struct psk_state *st = calloc(1, sizeof *st);
    if (!st)
        return CC_ERR_NOMEM;
    st->k = mech_data;
    *state = st;
    return CC_OK;
}

static int psk_step(void *state, cc_auth *a, const uint8_t *in, size_t in_len)
{
    struct psk_state *st = state;
    unsigned char mac[MAC];

    if (cc_auth_role(a) == CC_ROLE_CONSOLE) {
        if (st->step == 0) {
            const char *user = NULL;
            cc_auth_credentials(a, &user, NULL, NULL);
            snprintf(st->name, sizeof st->name, "%s", user && *user ? user : "console");
            unsigned char out[NONCE + NAME_MAX_LEN];
            if (RAND_bytes(st->cn, NONCE) != 1)
                return cc_auth_set_error(a, CC_ERR_AUTH, "no randomness available");
            memcpy(out, st->cn, NONCE);
            memcpy(out + NONCE, st->name, strlen(st->name));
            st->step = 1;
            int r = cc_auth_set_output(a, out, NONCE + strlen(st->name));
            return r < 0 ? r : CC_AUTH_CONTINUE;
        }
        if (st->step == 1) {
            if (in_len != NONCE + MAC)
                return cc_auth_set_error(a, CC_ERR_AUTH_TOKEN, "psk: the client's reply must be 64 bytes");
            memcpy(st->sn, in, NONCE);
            if (proof(st, a, "cc-psk server", mac) < 0 || CRYPTO_memcmp(mac, in + NONCE, MAC) != 0)
                return cc_auth_set_error(a, CC_ERR_AUTH_MUTUAL,
                                         "psk: the client does not know the key (or the connection is relayed)");
            if (proof(st, a, "cc-psk client", mac) < 0)
                return cc_auth_set_error(a, CC_ERR_AUTH, "psk: HMAC failed");
            cc_auth_set_mutual(a); /* the client proved it knows the key */
            st->step = 2;
            int r = cc_auth_set_output(a, mac, MAC);
            return r < 0 ? r : CC_AUTH_DONE;
        }
        return cc_auth_set_error(a, CC_ERR_PROTOCOL, "psk: unexpected token");
    }

    /* client */
    if (st->step == 0) {
        if (in_len <= NONCE || in_len > NONCE + NAME_MAX_LEN)
            return cc_auth_set_error(a, CC_ERR_AUTH_TOKEN, "psk: the console's first token has a bad length");
        memcpy(st->cn, in, NONCE);
        memcpy(st->name, in + NONCE, in_len - NONCE);
        st->name[in_len - NONCE] = 0;
        for (const char *p = st->name; *p; p++)
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
                return cc_auth_set_error(a, CC_ERR_AUTH_TOKEN, "psk: the user name must be printable ASCII");
        unsigned char out[NONCE + MAC];
        if (RAND_bytes(st->sn, NONCE) != 1 || proof(st, a, "cc-psk server", mac) < 0)
            return cc_auth_set_error(a, CC_ERR_AUTH, "psk: no randomness or HMAC failed");
        memcpy(out, st->sn, NONCE);
        memcpy(out + NONCE, mac, MAC);
        st->step = 1;
        int r = cc_auth_set_output(a, out, sizeof out);
        return r < 0 ? r : CC_AUTH_CONTINUE;
    }
    if (st->step == 1) {
        if (in_len != MAC)
            return cc_auth_set_error(a, CC_ERR_AUTH_TOKEN, "psk: the console's proof must be 32 bytes");
        if (proof(st, a, "cc-psk client", mac) < 0 || CRYPTO_memcmp(mac, in, MAC) != 0)
            return cc_auth_set_error(a, CC_ERR_AUTH_BAD_CREDENTIALS, "psk: the console's key is wrong");
        char id[NAME_MAX_LEN + 8];
        snprintf(id, sizeof id, "psk:%s", st->name);
        st->step = 2;
        int r = cc_auth_set_identity(a, id);
        return r < 0 ? r : CC_AUTH_DONE;
    }
    return cc_auth_set_error(a, CC_ERR_PROTOCOL, "psk: unexpected token");
}

static void psk_end(void *state)
{
    if (state)
        OPENSSL_cleanse(state, sizeof(struct psk_state));
    free(state);
}

static void psk_destroy(void *mech_data)
{
    if (mech_data)
        OPENSSL_cleanse(mech_data, sizeof(struct psk_key));
    free(mech_data);
}

int psk_register(cc_context *ctx, const char *key_file)
{
    static const cc_authenticator vt = {
        sizeof(cc_authenticator), "psk", psk_start, psk_step, psk_end, NULL, psk_destroy, CC_AUTH_FLAG_MUTUAL,
    };
    size_t len = 0;
    char *secret = ex_read_secret(key_file, &len);
    if (!secret)
        return CC_ERR_CONFIG;
    if (len < 16 || len > sizeof(((struct psk_key *)0)->key)) {
        fprintf(stderr, "%s: a pre-shared key must be 16..256 bytes, this one has %zu\n", key_file, len);
        ex_wipe_free(secret, len);
        return CC_ERR_CONFIG;
    }
    struct psk_key *k = calloc(1, sizeof *k);
    if (!k) {
        ex_wipe_free(secret, len);
        return CC_ERR_NOMEM;
    }
    memcpy(k->key, secret, len);
    k->len = len;
    ex_wipe_free(secret, len);
    int r = cc_context_add_authenticator(ctx, &vt, k);
    if (r < 0) {
        psk_destroy(k);
        fprintf(stderr, "cannot register psk: %s\n", cc_context_errmsg(ctx));
    }
    return r;
}
