/*
 * tls/tls_tickets.c — stateless session tickets with keys that rotate.
 *
 * OpenSSL's built-in ticket key lives for the life of the SSL_CTX, which on a daemon that
 * runs for months means a key that, once stolen, decrypts every recorded session. Keys
 * here are random, rotate every ticket_rotate seconds, and the previous key still
 * decrypts (and asks for a renewed ticket) for one more period, so a client that resumes
 * across a rotation is not pushed into a full handshake.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/rand.h>

#include "tls/tls_int.h"

#define TLS_TICKET_ROTATE_DEFAULT (12 * 3600)

struct tls_ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

/* The keys belong to the process, not to a context: every worker's context, and every
 * context a reload builds, encrypts and decrypts with them, so a ticket resumes on
 * whichever worker the kernel hands the client's next connection to, and across SIGHUP.
 * The lock is held only to rotate or copy a key, never around OpenSSL calls. */
static struct {
    pthread_mutex_t lock;
    bool ready;
    uint32_t rotate; /* seconds; the newest context's setting */
    time_t rotated_at;
    struct tls_ticket_key cur, prev; /* `cur` encrypts, `prev` still decrypts */
} tls_keys = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool tls_ticket_new_key(struct tls_ticket_key *k)
{
    return RAND_bytes(k->name, sizeof(k->name)) > 0 &&
           RAND_priv_bytes(k->aes, sizeof(k->aes)) > 0 &&
           RAND_priv_bytes(k->hmac, sizeof(k->hmac)) > 0;
}

/* Called with the lock held. A failed rotation keeps the current key. */
static void tls_ticket_rotate(time_t now)
{
    struct tls_ticket_key next;
    if (now - tls_keys.rotated_at < (time_t)tls_keys.rotate || !tls_ticket_new_key(&next))
        return;
    tls_keys.prev = tls_keys.cur;
    tls_keys.cur = next;
    tls_keys.rotated_at = now;
    OPENSSL_cleanse(&next, sizeof(next));
}

/* Copies the key to encrypt with (rotating first if due), or the one named `name` to
 * decrypt with; 0 = current, 1 = previous, -1 = unknown. */
static int tls_ticket_key_get(bool enc, const unsigned char *name, struct tls_ticket_key *out)
{
    int which = -1;
    pthread_mutex_lock(&tls_keys.lock);
    if (enc)
        tls_ticket_rotate(time(NULL));
    if (enc || memcmp(name, tls_keys.cur.name, sizeof(tls_keys.cur.name)) == 0)
        which = 0;
    else if (memcmp(name, tls_keys.prev.name, sizeof(tls_keys.prev.name)) == 0)
        which = 1;
    if (which >= 0)
        *out = which == 0 ? tls_keys.cur : tls_keys.prev;
    pthread_mutex_unlock(&tls_keys.lock);
    return which;
}

static int tls_ticket_mac(EVP_MAC_CTX *hctx, const struct tls_ticket_key *k)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* OpenSSL's contract: on encryption 1 = done; on decryption 0 = unknown key (full
 * handshake), 1 = valid, 2 = valid but issue a new ticket; -1 = error. */
static int tls_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                         EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct tls_ctx *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct tls_ticket_key k;
    int which = tls_ticket_key_get(enc, key_name, &k);
    int rc = -1;
    if (which < 0)
        rc = 0;
    else if (enc) {
        memcpy(key_name, k.name, sizeof(k.name));
        if (RAND_bytes_ex(c->libctx, iv, EVP_CIPHER_get_iv_length(c->ticket_cipher), 0) > 0 &&
            EVP_EncryptInit_ex2(cctx, c->ticket_cipher, k.aes, iv, NULL) &&
            tls_ticket_mac(hctx, &k))
            rc = 1;
    } else if (EVP_DecryptInit_ex2(cctx, c->ticket_cipher, k.aes, iv, NULL) &&
               tls_ticket_mac(hctx, &k))
        rc = which == 0 ? 1 : 2;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

int tls_tickets_init(struct tls_ctx *c, uint32_t rotate, char *err, size_t errlen)
{
    rotate = rotate ? rotate : TLS_TICKET_ROTATE_DEFAULT;
    pthread_mutex_lock(&tls_keys.lock);
    tls_keys.rotate = rotate;
    if (!tls_keys.ready && tls_ticket_new_key(&tls_keys.cur) &&
        tls_ticket_new_key(&tls_keys.prev)) {
        tls_keys.rotated_at = time(NULL);
        tls_keys.ready = true;
    }
    bool ready = tls_keys.ready;
    pthread_mutex_unlock(&tls_keys.lock);
    /* fetched once here, not per ticket (the lock contention of #17627) */
    c->ticket_cipher = EVP_CIPHER_fetch(c->libctx, "AES-256-CBC", NULL);
    if (!ready || !c->ticket_cipher) {
        tls_errf(err, errlen, "tls.session_tickets: cannot make ticket keys");
        return -1;
    }
    /* a ticket is worth nothing once its key is gone: two periods at most */
    SSL_CTX_set_timeout(c->ssl, (long)rotate * 2);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(c->ssl, tls_ticket_cb);
    /* OpenSSL sends two TLS 1.3 tickets by default, for browsers that open parallel
     * connections; an MTA client caches one session per destination (Postfix also sends
     * one), and each ticket costs the server an encryption and a MAC per handshake. */
    SSL_CTX_set_num_tickets(c->ssl, 1);
    return 0;
}

void tls_tickets_free(struct tls_ctx *c)
{
    EVP_CIPHER_free(c->ticket_cipher);
}
