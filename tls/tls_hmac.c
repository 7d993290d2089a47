/*
 * tls/tls_hmac.c — HMAC-MD5 through OpenSSL 3's EVP_MAC (tls/tls_hmac.h).
 */
#include "tls/tls_hmac.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

int tls_hmac_md5(const void *key, size_t keylen, const void *msg, size_t len, unsigned char out[16])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "MD5", 0),
                           OSSL_PARAM_construct_end()};
    size_t n = 0;
    /* an empty key is still a key (HMAC pads it); OpenSSL wants a non-NULL pointer */
    int ok = ctx && EVP_MAC_init(ctx, keylen ? key : (const void *)"", keylen, params) == 1 &&
             EVP_MAC_update(ctx, msg, len) == 1 && EVP_MAC_final(ctx, out, &n, 16) == 1 && n == 16;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : -1;
}
