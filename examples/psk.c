/* psk.c -- the "psk" example authenticator: how a host writes its own
 * mechanism with nothing but <carboncopy.h> and OpenSSL.
 *
 * Exchange, one message each way (cb: the TLS channel binding; name: the console's user name):
 *   console -> client   HMAC(key, "cc-psk2 console" || cb || name) || name     (AUTH_TOKEN)
 *   client  -> console  HMAC(key, "cc-psk2 client" || cb || name)              (in AUTH_RESULT)
 * The channel binding is unique to the TLS connection, so no nonces are needed:
 * a proof relayed into another connection fails, and neither can be replayed.
 * The console checks the client's proof (mutual). */
#include "psk.h"

#include "common.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAC          32
#define NAME_MAX_LEN 64

struct psk_key {
    unsigned char key[256];
    size_t len;
};

struct psk_state {
    struct psk_key *k;
    int step;
    char name[NAME_MAX_LEN + 1];
};

static int proof(const struct psk_state *st, const cc_auth *a, const char *label, unsigned char out[MAC])
{
    const uint8_t *cb;
    size_t cb_len;
    if (cc_auth_channel_binding(a, &cb, &cb_len) != CC_OK)
        return -1;
    unsigned char msg[32 + 64 + NAME_MAX_LEN];
    size_t n = 0, ll = strlen(label), nl = strlen(st->name);
    if (cb_len > 64 || ll > 32)
        return -1;
    memcpy(msg + n, label, ll), n += ll;
    memcpy(msg + n, cb, cb_len), n += cb_len;
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
        if (st->step == 0) { /* the first token: our proof and the name */
            const char *user = NULL;
            cc_auth_credentials(a, &user, NULL, NULL);
            snprintf(st->name, sizeof st->name, "%s", user && *user ? user : "console");
            unsigned char out[MAC + NAME_MAX_LEN];
            size_t nl = strlen(st->name);
            if (proof(st, a, "cc-psk2 console", out) < 0)
                return cc_auth_set_error(a, CC_ERR_AUTH, "psk: HMAC failed");
            memcpy(out + MAC, st->name, nl);
            st->step = 1;
            int r = cc_auth_set_output(a, out, MAC + nl);
            OPENSSL_cleanse(out, sizeof out);
            return r < 0 ? r : CC_AUTH_CONTINUE;
        }
        if (st->step == 1) { /* the token of the client's AUTH_RESULT: its proof */
            if (in_len != MAC)
                return cc_auth_set_error(a, CC_ERR_AUTH_MUTUAL, "psk: the client's proof must be 32 bytes");
            if (proof(st, a, "cc-psk2 client", mac) < 0 || CRYPTO_memcmp(mac, in, MAC) != 0)
                return cc_auth_set_error(a, CC_ERR_AUTH_MUTUAL,
                                         "psk: the client does not know the key (or the connection is relayed)");
            cc_auth_set_mutual(a); /* the client proved it knows the key */
            st->step = 2;
            return CC_AUTH_DONE;
        }
        return cc_auth_set_error(a, CC_ERR_PROTOCOL, "psk: unexpected token");
    }

    /* client: one token in, the result (with our proof) out */
    if (st->step == 0) {
        if (in_len <= MAC || in_len > MAC + NAME_MAX_LEN)
            return cc_auth_set_error(a, CC_ERR_AUTH_TOKEN, "psk: the console's token has a bad length");
        memcpy(st->name, in + MAC, in_len - MAC);
        st->name[in_len - MAC] = 0;
        for (const char *p = st->name; *p; p++)
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
                return cc_auth_set_error(a, CC_ERR_AUTH_TOKEN, "psk: the user name must be printable ASCII");
        if (proof(st, a, "cc-psk2 console", mac) < 0 || CRYPTO_memcmp(mac, in, MAC) != 0)
            return cc_auth_set_error(a, CC_ERR_AUTH_BAD_CREDENTIALS, "psk: the console's key is wrong");
        if (proof(st, a, "cc-psk2 client", mac) < 0)
            return cc_auth_set_error(a, CC_ERR_AUTH, "psk: HMAC failed");
        char id[NAME_MAX_LEN + 8];
        snprintf(id, sizeof id, "psk:%s", st->name);
        st->step = 1;
        int r = cc_auth_set_identity(a, id);
        if (r == CC_OK)
            r = cc_auth_set_output(a, mac, MAC); /* goes out in AUTH_RESULT */
        OPENSSL_cleanse(mac, sizeof mac);
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
