/*
 * tls/tls_tickets.c — stateless session tickets with keys that rotate.
 *
 * OpenSSL's built-in ticket key lives for the life of the SSL_CTX, which on a daemon that
 * runs for months means a key that, once stolen, decrypts every recorded session. Keys
 * here are random, rotate every ticket_rotate seconds, and the previous key still
 * decrypts (and asks for a renewed ticket) for one more period, so a client that resumes
 * across a rotation is not pushed into a full handshake.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/rand.h>

#include "tls/tls_int.h"

#define TLS_TICKET_ROTATE_DEFAULT (12 * 3600)

static int tls_ticket_new_key(struct tls_ctx *c, struct tls_ticket_key *k)
{
    return RAND_bytes_ex(c->libctx, k->name, sizeof(k->name), 0) > 0 &&
           RAND_priv_bytes_ex(c->libctx, k->aes, sizeof(k->aes), 0) > 0 &&
           RAND_priv_bytes_ex(c->libctx, k->hmac, sizeof(k->hmac), 0) > 0;
}

/* Called with ticket_lock held. A failed rotation keeps the current key. */
static void tls_ticket_rotate(struct tls_ctx *c, time_t now)
{
    struct tls_ticket_key next;
    if (now - c->ticket_rotated_at < (time_t)c->ticket_rotate || !tls_ticket_new_key(c, &next))
        return;
    c->ticket_prev = c->ticket_cur;
    c->ticket_cur = next;
    c->ticket_rotated_at = now;
    OPENSSL_cleanse(&next, sizeof(next));
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
    int rc = -1;
    pthread_mutex_lock(&c->ticket_lock);
    if (enc) {
        tls_ticket_rotate(c, time(NULL));
        const struct tls_ticket_key *k = &c->ticket_cur;
        memcpy(key_name, k->name, sizeof(k->name));
        if (RAND_bytes_ex(c->libctx, iv, EVP_CIPHER_get_iv_length(c->ticket_cipher), 0) > 0 &&
            EVP_EncryptInit_ex2(cctx, c->ticket_cipher, k->aes, iv, NULL) &&
            tls_ticket_mac(hctx, k))
            rc = 1;
    } else {
        const struct tls_ticket_key *k =
            memcmp(key_name, c->ticket_cur.name, 16) == 0    ? &c->ticket_cur
            : memcmp(key_name, c->ticket_prev.name, 16) == 0 ? &c->ticket_prev
                                                             : NULL;
        if (!k)
            rc = 0;
        else if (EVP_DecryptInit_ex2(cctx, c->ticket_cipher, k->aes, iv, NULL) &&
                 tls_ticket_mac(hctx, k))
            rc = k == &c->ticket_cur ? 1 : 2;
    }
    pthread_mutex_unlock(&c->ticket_lock);
    return rc;
}

int tls_tickets_init(struct tls_ctx *c, uint32_t rotate, char *err, size_t errlen)
{
    c->ticket_rotate = rotate ? rotate : TLS_TICKET_ROTATE_DEFAULT;
    /* fetched once here, not per ticket (the lock contention of #17627) */
    c->ticket_cipher = EVP_CIPHER_fetch(c->libctx, "AES-256-CBC", NULL);
    if (!c->ticket_cipher || !tls_ticket_new_key(c, &c->ticket_cur) ||
        !tls_ticket_new_key(c, &c->ticket_prev)) {
        tls_errf(err, errlen, "tls.session_tickets: cannot make ticket keys");
        return -1;
    }
    c->ticket_rotated_at = time(NULL);
    c->tickets = true;
    /* a ticket is worth nothing once its key is gone: two periods at most */
    SSL_CTX_set_timeout(c->ssl, (long)c->ticket_rotate * 2);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(c->ssl, tls_ticket_cb);
    return 0;
}

void tls_tickets_free(struct tls_ctx *c)
{
    EVP_CIPHER_free(c->ticket_cipher);
    OPENSSL_cleanse(&c->ticket_cur, sizeof(c->ticket_cur));
    OPENSSL_cleanse(&c->ticket_prev, sizeof(c->ticket_prev));
}
