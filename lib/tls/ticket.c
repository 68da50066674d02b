/* ticket.c -- the client's reconnect state in TLS 1.3 session tickets: the
 * ticket key, the application data, the decrypt decision, the replay set. */
#include "ticket.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define APPDATA_VERSION 1
#define APPDATA_MAX     (1 + CC__TICKET_ID_LEN + CC__SESSION_ID_LEN + 8 + 8 + 1 + 1 + CC__MECH_MAX + 2 + CC__NAME_MAX)
/* Used tickets remembered at most (each until its expiry); when full, no ticket is taken. */
#define REPLAY_MAX 8192
/* A ticket issued this far in the future (clocks moved) is still taken. */
#define CLOCK_SLACK_MS 60000

struct replay_entry {
    uint8_t id[CC__TICKET_ID_LEN];
    uint64_t expires_ms;
};

struct cc__ticket_conf {
    cc_context *ctx;
    uint8_t key_name[16], aes_key[32], mac_key[32];
    cc__ticket_accept_fn accept;
    cc__ticket_offer_fn offer;
    pthread_mutex_t lock; /* guards the replay set: sessions on any thread decrypt tickets */
    struct replay_entry *replay;
    size_t n_replay;
};

/* Per SSL, as ex_data. */
struct ticket_state {
    cc__ticket_conf *tc;
    cc_session *session;
    bool issue; /* client: the next ticket carries `out` */
    cc__ticket_info out;
    bool resumed; /* client: the handshake resumed the ticket that carried `in` */
    cc__ticket_info in;
    SSL_SESSION *got; /* console: the newest TLS 1.3 session the client sent */
    unsigned n_got;
};

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void state_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    struct ticket_state *ts = ptr;
    if (!ts)
        return;
    SSL_SESSION_free(ts->got);
    OPENSSL_clear_free(ts, sizeof *ts);
}

static void ex_init(void)
{
    ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, state_free);
}

static struct ticket_state *state(SSL *ssl)
{
    return ex_index < 0 ? NULL : SSL_get_ex_data(ssl, ex_index);
}

uint64_t cc__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t lifetime_ms(const cc__ticket_conf *tc)
{
    return cc__cbase(tc->ctx)->timeout[CC_TIMEOUT_RECONNECT_TICKET];
}

/* ---------------------------------------------------------- application data */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static size_t appdata_pack(const cc__ticket_info *in, uint8_t out[APPDATA_MAX])
{
    size_t ml = strlen(in->mechanism), il = strlen(in->identity), n = 0;
    out[n++] = APPDATA_VERSION;
    memcpy(out + n, in->ticket_id, CC__TICKET_ID_LEN);
    n += CC__TICKET_ID_LEN;
    memcpy(out + n, in->session_id, CC__SESSION_ID_LEN);
    n += CC__SESSION_ID_LEN;
    put64(out + n, in->issued_ms);
    put64(out + n + 8, in->expires_ms);
    n += 16;
    out[n++] = in->mutual ? 1 : 0;
    out[n++] = (uint8_t)ml;
    memcpy(out + n, in->mechanism, ml);
    n += ml;
    out[n++] = (uint8_t)(il >> 8);
    out[n++] = (uint8_t)il;
    memcpy(out + n, in->identity, il);
    return n + il;
}

/* false when the data is not ours (the ticket still decrypted: a bug or an old version). */
static bool appdata_parse(const uint8_t *p, size_t len, cc__ticket_info *out)
{
    memset(out, 0, sizeof *out);
    size_t fixed = 1 + CC__TICKET_ID_LEN + CC__SESSION_ID_LEN + 16 + 1 + 1;
    if (len < fixed + 2 || p[0] != APPDATA_VERSION)
        return false;
    size_t n = 1;
    memcpy(out->ticket_id, p + n, CC__TICKET_ID_LEN);
    n += CC__TICKET_ID_LEN;
    memcpy(out->session_id, p + n, CC__SESSION_ID_LEN);
    n += CC__SESSION_ID_LEN;
    out->issued_ms = get64(p + n);
    out->expires_ms = get64(p + n + 8);
    n += 16;
    out->mutual = p[n++] != 0;
    size_t ml = p[n++];
    if (ml == 0 || ml > CC__MECH_MAX || n + ml + 2 > len)
        return false;
    memcpy(out->mechanism, p + n, ml);
    n += ml;
    size_t il = (size_t)p[n] << 8 | p[n + 1];
    n += 2;
    if (il == 0 || il > CC__NAME_MAX || n + il != len || memchr(p + n, 0, il) || memchr(out->mechanism, 0, ml))
        return false;
    memcpy(out->identity, p + n, il);
    return true;
}

/* ------------------------------------------------------------- OpenSSL callbacks */

/* The ticket key: AES-256-CBC with HMAC-SHA256 (what OpenSSL's own keys are), under our name. */
static int key_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct ticket_state *ts = state(ssl);
    if (!ts)
        return -1;
    cc__ticket_conf *tc = ts->tc;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, tc->mac_key, sizeof tc->mac_key),
                           OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (enc) {
        memcpy(name, tc->key_name, 16);
        if (RAND_bytes(iv, 16) != 1 || EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, tc->aes_key, iv) != 1 ||
            EVP_MAC_CTX_set_params(hctx, params) != 1)
            return -1;
        return 1;
    }
    if (CRYPTO_memcmp(name, tc->key_name, 16) != 0)
        return 0; /* another key's ticket: not decrypted, a full handshake */
    if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, tc->aes_key, iv) != 1 ||
        EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    return 1;
}

static int gen_cb(SSL *ssl, void *arg)
{
    (void)arg;
    struct ticket_state *ts = state(ssl);
    if (!ts || !ts->issue || SSL_version(ssl) != TLS1_3_VERSION)
        return 1; /* a ticket without our data: never taken */
    SSL_SESSION *sess = SSL_get0_session(ssl);
    uint8_t buf[APPDATA_MAX];
    size_t n = appdata_pack(&ts->out, buf);
    int ok = SSL_SESSION_set1_ticket_appdata(sess, buf, n);
    OPENSSL_cleanse(buf, sizeof buf);
    uint64_t life = ts->out.expires_ms - ts->out.issued_ms;
    SSL_SESSION_set_timeout(sess, (long)((life + 999) / 1000));
    ts->issue = false;
    OPENSSL_cleanse(&ts->out, sizeof ts->out);
    return ok == 1;
}

/* Records a presented ticket: NULL, or why it cannot be taken (presented before, or no room). */
static const char *replay_record(cc__ticket_conf *tc, const cc__ticket_info *info, uint64_t now)
{
    const char *why = NULL;
    pthread_mutex_lock(&tc->lock);
    if (!tc->replay) /* on the first ticket presented: a client nobody reconnects to pays nothing */
        tc->replay = cc__calloc(tc->ctx, REPLAY_MAX * sizeof *tc->replay);
    if (!tc->replay) {
        pthread_mutex_unlock(&tc->lock);
        return "no memory for the set of used tickets";
    }
    size_t w = 0;
    for (size_t i = 0; i < tc->n_replay; i++) {
        if (tc->replay[i].expires_ms <= now)
            continue; /* expired: its ticket is refused for that anyway */
        if (CRYPTO_memcmp(tc->replay[i].id, info->ticket_id, CC__TICKET_ID_LEN) == 0)
            why = "already used";
        tc->replay[w++] = tc->replay[i];
    }
    tc->n_replay = w;
    if (!why && tc->n_replay == REPLAY_MAX)
        why = "the set of used tickets is full";
    if (!why) {
        memcpy(tc->replay[tc->n_replay].id, info->ticket_id, CC__TICKET_ID_LEN);
        tc->replay[tc->n_replay++].expires_ms = info->expires_ms + CLOCK_SLACK_MS;
    }
    pthread_mutex_unlock(&tc->lock);
    return why;
}

static SSL_TICKET_RETURN refuse(const cc__ticket_conf *tc, const char *why)
{
    cc__log(tc->ctx, CC_LOG_INFO, "reconnect ticket not taken (%s): full handshake", why);
    return SSL_TICKET_RETURN_IGNORE;
}

static SSL_TICKET_RETURN dec_cb(SSL *ssl, SSL_SESSION *ss, const unsigned char *kn, size_t knl,
                                SSL_TICKET_STATUS status, void *arg)
{
    (void)kn, (void)knl;
    cc__ticket_conf *tc = arg;
    struct ticket_state *ts = state(ssl);
    if (status == SSL_TICKET_NONE || status == SSL_TICKET_EMPTY)
        return SSL_TICKET_RETURN_IGNORE;
    if (!ts || status == SSL_TICKET_NO_DECRYPT)
        return refuse(tc, "not issued under this client's ticket key, or altered");
    if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
        return refuse(tc, "cannot be decrypted");
    uint32_t life = lifetime_ms(tc);
    if (!life)
        return refuse(tc, "reconnection is turned off");
    void *data = NULL;
    size_t len = 0;
    cc__ticket_info info;
    if (SSL_SESSION_get_protocol_version(ss) != TLS1_3_VERSION ||
        SSL_SESSION_get0_ticket_appdata(ss, &data, &len) != 1 || !appdata_parse(data, len, &info))
        return refuse(tc, "not a reconnect ticket");
    uint64_t now = cc__wall_ms();
    SSL_TICKET_RETURN r = SSL_TICKET_RETURN_IGNORE;
    const char *why = replay_record(tc, &info, now);
    if (why)
        r = refuse(tc, why);
    else if (now >= info.expires_ms || now >= info.issued_ms + life || info.issued_ms > now + CLOCK_SLACK_MS)
        r = refuse(tc, "expired");
    else if (!tc->accept || tc->accept(ts->session, &info) != 0)
        r = refuse(tc, "refused by the client's host or configuration");
    else {
        ts->in = info;
        ts->resumed = true;
        /* Rotated: the one ticket this resumption issues is a new one for the same session. */
        ts->out = info;
        if (RAND_bytes(ts->out.ticket_id, sizeof ts->out.ticket_id) == 1) {
            ts->out.issued_ms = now;
            ts->out.expires_ms = now + life;
            ts->issue = true;
            SSL_set_num_tickets(ssl, 1);
        }
        r = SSL_TICKET_RETURN_USE_RENEW; /* renew: the one ticket after a resumption is sent */
    }
    OPENSSL_cleanse(&info, sizeof info);
    return r;
}

/* Console: keeps the newest TLS 1.3 session the client sent. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct ticket_state *ts = state(ssl);
    if (!ts || SSL_SESSION_get_protocol_version(sess) != TLS1_3_VERSION)
        return 0;
    SSL_SESSION_free(ts->got);
    ts->got = sess;
    ts->n_got++;
    return 1; /* ours now */
}

/* ------------------------------------------------------------------- the conf */

static void derive(const uint8_t *key, size_t len, const char *label, uint8_t *out, size_t out_len)
{
    uint8_t md[32];
    unsigned mdlen = 0;
    HMAC(EVP_sha256(), key, (int)len, (const uint8_t *)label, strlen(label), md, &mdlen);
    memcpy(out, md, out_len);
    OPENSSL_cleanse(md, sizeof md);
}

static int set_key(cc__ticket_conf *tc, const uint8_t *key, size_t len)
{
    derive(key, len, "carboncopy reconnect ticket name", tc->key_name, sizeof tc->key_name);
    derive(key, len, "carboncopy reconnect ticket aes", tc->aes_key, sizeof tc->aes_key);
    derive(key, len, "carboncopy reconnect ticket mac", tc->mac_key, sizeof tc->mac_key);
    return CC_OK;
}

cc__ticket_conf *cc__ticket_conf_new(cc_context *ctx, void *ssl_ctx)
{
    SSL_CTX *c = ssl_ctx;
    pthread_once(&ex_once, ex_init);
    if (ex_index < 0)
        return NULL;
    cc__ticket_conf *tc = cc__calloc(ctx, sizeof *tc);
    if (!tc)
        return NULL;
    tc->ctx = ctx;
    if (pthread_mutex_init(&tc->lock, NULL) != 0) {
        cc__free(ctx, tc);
        return NULL;
    }
    /* Stateless TLS 1.3 tickets (SSL_OP_NO_TICKET would make them session-cache ids). */
    SSL_CTX_clear_options(c, SSL_OP_NO_TICKET);
    if (cc__cbase(ctx)->role == CC_ROLE_CLIENT) {
        uint8_t key[32];
        if (RAND_bytes(key, sizeof key) != 1) {
            cc__ticket_conf_free(ctx, tc);
            return NULL;
        }
        set_key(tc, key, sizeof key);
        OPENSSL_cleanse(key, sizeof key);
        SSL_CTX_set_num_tickets(c, 0); /* none at the handshake: only once the console is let in */
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(c, key_cb);
        SSL_CTX_set_session_ticket_cb(c, gen_cb, dec_cb, tc);
    } else {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c, new_session_cb);
    }
    return tc;
}

void cc__ticket_conf_free(cc_context *ctx, cc__ticket_conf *tc)
{
    if (!tc)
        return;
    if (tc->replay)
        cc__free(ctx, tc->replay);
    pthread_mutex_destroy(&tc->lock);
    cc__wipe(tc, sizeof *tc);
    cc__free(ctx, tc);
}

void cc__ticket_conf_hooks(cc__ticket_conf *tc, cc__ticket_accept_fn accept, cc__ticket_offer_fn offer)
{
    tc->accept = accept;
    tc->offer = offer;
}

int cc__ticket_conf_set_key(cc__ticket_conf *tc, const uint8_t *key, size_t len)
{
    return set_key(tc, key, len);
}

/* ------------------------------------------------------------------ sessions */

int cc__ticket_attach(cc__ticket_conf *tc, void *ssl_, cc_session *s)
{
    SSL *ssl = ssl_;
    struct ticket_state *ts = OPENSSL_zalloc(sizeof *ts);
    if (!ts)
        return CC_ERR_NOMEM;
    ts->tc = tc;
    ts->session = s;
    if (SSL_set_ex_data(ssl, ex_index, ts) != 1) {
        OPENSSL_free(ts);
        return CC_ERR_NOMEM;
    }
    void *sess = cc__cbase(tc->ctx)->role == CC_ROLE_CONSOLE && tc->offer ? tc->offer(s) : NULL;
    if (sess && SSL_set_session(ssl, sess) != 1) /* takes its own reference */
        return CC_ERR_RECONNECT_TICKET;
    return CC_OK;
}

int cc__ticket_issue(void *ssl_, const cc__ticket_info *info)
{
    SSL *ssl = ssl_;
    struct ticket_state *ts = state(ssl);
    uint32_t life = ts ? lifetime_ms(ts->tc) : 0;
    if (!ts || !life || SSL_version(ssl) != TLS1_3_VERSION)
        return CC_OK; /* no reconnection: nothing to issue */
    ts->out = *info;
    if (RAND_bytes(ts->out.ticket_id, sizeof ts->out.ticket_id) != 1)
        return CC_ERR_INTERNAL;
    ts->out.issued_ms = cc__wall_ms();
    ts->out.expires_ms = ts->out.issued_ms + life;
    ts->issue = true;
    return SSL_new_session_ticket(ssl) == 1 ? CC_OK : CC_ERR_INTERNAL;
}

const cc__ticket_info *cc__ticket_resumed(void *ssl)
{
    struct ticket_state *ts = state(ssl);
    return ts && ts->resumed && SSL_session_reused(ssl) ? &ts->in : NULL;
}

bool cc__ticket_reused(void *ssl)
{
    return SSL_session_reused(ssl) == 1;
}

unsigned cc__ticket_count(void *ssl)
{
    struct ticket_state *ts = state(ssl);
    return ts ? ts->n_got : 0;
}

int cc__ticket_der(void *ssl, uint8_t *buf, size_t cap, size_t *len)
{
    struct ticket_state *ts = state(ssl);
    if (!ts || !ts->got)
        return CC_ERR_STATE;
    int n = i2d_SSL_SESSION(ts->got, NULL);
    if (n <= 0)
        return CC_ERR_INTERNAL;
    *len = (size_t)n;
    if ((size_t)n > cap)
        return CC_ERR_AGAIN;
    unsigned char *p = buf;
    return i2d_SSL_SESSION(ts->got, &p) == n ? CC_OK : CC_ERR_INTERNAL;
}

void cc__ticket_release(void *ssl)
{
    struct ticket_state *ts = state(ssl);
    if (ts) {
        SSL_SESSION_free(ts->got);
        ts->got = NULL;
    }
}

int cc__ticket_export_id(void *ssl, uint8_t out[CC__SESSION_ID_LEN])
{
    static const char label[] = "EXPORTER-carboncopy-session-id";
    return SSL_export_keying_material(ssl, out, CC__SESSION_ID_LEN, label, sizeof label - 1, NULL, 0, 1) == 1
               ? CC_OK
               : CC_ERR_TLS;
}

void *cc__ticket_session_parse(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    SSL_SESSION *sess = d2i_SSL_SESSION(NULL, &p, (long)len);
    if (sess && p == der + len && SSL_SESSION_get_protocol_version(sess) == TLS1_3_VERSION &&
        SSL_SESSION_has_ticket(sess))
        return sess;
    SSL_SESSION_free(sess);
    return NULL;
}

void cc__ticket_session_free(void *sess)
{
    SSL_SESSION_free(sess);
}
