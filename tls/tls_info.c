/*
 * tls/tls_info.c — what a session negotiated, in sendmail's log words plus what sendmail
 * never said: the key-exchange group and which of our certificates was used, and after
 * a failure what the client offered.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509_vfy.h>

#include "tls/tls_int.h"

void tls_key_group(const struct tls_ctx *c, EVP_PKEY *pk, char *out, size_t outlen)
{
    char name[64] = "";
    if (EVP_PKEY_get_group_name(pk, name, sizeof(name), NULL) && name[0])
        snprintf(out, outlen, "%s", tls_group_display(c, name));
    else if (EVP_PKEY_is_a(pk, "DH"))
        snprintf(out, outlen, "DH-%d", EVP_PKEY_get_bits(pk));
    else
        snprintf(out, outlen, "%s", tls_group_display(c, EVP_PKEY_get0_type_name(pk)));
}

static void tls_negotiated_group(const struct tls_session *t, char *out, size_t outlen)
{
    const struct tls_ctx *c = t->ctx;
    int nid = (int)SSL_get_negotiated_group(t->ssl);
    const char *name = NULL;
    out[0] = '\0';
    if (nid & TLSEXT_nid_unknown)
        name = tls_group_display_by_id(c, (unsigned)nid & 0xffff);
    else if (nid > 0)
        name = tls_group_display(c, OBJ_nid2sn(nid));
    if (name) {
        snprintf(out, outlen, "%s", name);
        return;
    }
    /* TLS 1.2: no group id recorded for every kind of key exchange; the ephemeral key
     * says what it was */
    EVP_PKEY *pk = NULL;
    if (t->dhe_group[0]) {
        snprintf(out, outlen, "%s", t->dhe_group);
    } else if (SSL_get_peer_tmp_key(t->ssl, &pk)) {
        tls_key_group(c, pk, out, outlen);
        EVP_PKEY_free(pk);
    }
}

static void tls_verify_result(const struct tls_session *t, struct tls_session_info *out)
{
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), out->peer_subject,
                          sizeof(out->peer_subject));
        X509_NAME_oneline(X509_get_issuer_name(peer), out->peer_issuer, sizeof(out->peer_issuer));
    }
    if (t->ctx->server && !t->ctx->request_client_cert) {
        snprintf(out->verify, sizeof(out->verify), "NONE");
        return;
    }
    if (!peer) {
        snprintf(out->verify, sizeof(out->verify), "NO");
        return;
    }
    long v = SSL_get_verify_result(t->ssl);
    snprintf(out->verify, sizeof(out->verify), "%s", v == X509_V_OK ? "OK" : "FAIL");
    if (v != X509_V_OK)
        snprintf(out->verify_reason, sizeof(out->verify_reason), "%s",
                 X509_verify_cert_error_string(v));
}

void tls_session_info(const struct tls_session *t, struct tls_session_info *out)
{
    memset(out, 0, sizeof(*out));
    /* "none": a client that offered nothing must read as such in the log, not as "". */
    snprintf(out->offered_groups, sizeof(out->offered_groups), "%s",
             t->offered_groups && *t->offered_groups ? t->offered_groups : "none");
    snprintf(out->offered_sigalgs, sizeof(out->offered_sigalgs), "%s",
             t->offered_sigalgs && *t->offered_sigalgs ? t->offered_sigalgs : "none");
    if (t->state != TLS_OPEN && t->state != TLS_CLOSED)
        return;
    snprintf(out->version, sizeof(out->version), "%s", SSL_get_version(t->ssl));
    const SSL_CIPHER *cipher = SSL_get_current_cipher(t->ssl);
    if (cipher) {
        snprintf(out->cipher, sizeof(out->cipher), "%s", SSL_CIPHER_get_name(cipher));
        out->bits = SSL_CIPHER_get_bits(cipher, &out->alg_bits);
    }
    tls_negotiated_group(t, out->group, sizeof(out->group));
    if (t->ctx->server) {
        snprintf(out->cert, sizeof(out->cert), "%s",
                 tls_certs_type_of(t->ctx, SSL_get_certificate(t->ssl)));
    } else {
        const X509 *peer = SSL_get0_peer_certificate(t->ssl);
        const EVP_PKEY *pk = peer ? X509_get0_pubkey(peer) : NULL;
        char curve[16];
        if (pk)
            tls_key_type(pk, out->peer_cert, sizeof(out->peer_cert), curve, sizeof(curve));
    }
    tls_verify_result(t, out);
    out->resumed = SSL_session_reused(t->ssl) == 1;
}

const char *tls_session_describe(const struct tls_session *t, char *out, size_t outlen)
{
    struct tls_session_info i;
    tls_session_info(t, &i);
    if (t->state == TLS_FAILED) {
        int n = snprintf(out, outlen, "reason=%s", t->error);
        if (t->ctx->server && n >= 0 && (size_t)n < outlen)
            snprintf(out + n, outlen - (size_t)n, ", offered_groups=%s, offered_sigalgs=%s",
                     i.offered_groups, i.offered_sigalgs);
        return out;
    }
    int n =
        snprintf(out, outlen, "version=%s, verify=%s, cipher=%s, bits=%d/%d, group=%s", i.version,
                 i.verify, i.cipher, i.bits, i.alg_bits, i.group[0] ? i.group : "none");
    if (n >= 0 && (size_t)n < outlen)
        snprintf(out + n, outlen - (size_t)n, t->ctx->server ? ", cert=%s" : ", peer_cert=%s",
                 t->ctx->server   ? i.cert
                 : i.peer_cert[0] ? i.peer_cert
                                  : "none");
    return out;
}
