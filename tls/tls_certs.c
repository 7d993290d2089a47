/*
 * tls/tls_certs.c — certificate/key pairs: loading, checking, naming.
 *
 * OpenSSL keeps one certificate per key type in an SSL_CTX (RSA, ECDSA, Ed25519, ...)
 * and picks per handshake the one the client's signature algorithms allow; so an RSA
 * and an ECDSA pair coexist, and a client that cannot use the ECDSA one still gets the
 * RSA one. Two pairs of the same type would silently replace each other: that is an
 * error here. A chain out of order is not fatal: warned about when the context is built.
 * Expiry is the caller's to judge (tls_ctx_certs()).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"
#include "util/fileset.h"
#include "util/log.h"

void tls_key_type(const EVP_PKEY *pk, char *type, size_t typelen, char *curve, size_t curvelen)
{
    static const struct {
        const char *openssl, *nist;
    } curves[] = {
        {"prime256v1", "P-256"},
        {"secp384r1", "P-384"},
        {"secp521r1", "P-521"},
    };
    curve[0] = '\0';
    if (EVP_PKEY_is_a(pk, "RSA") || EVP_PKEY_is_a(pk, "RSA-PSS")) {
        snprintf(type, typelen, "%s-%d", EVP_PKEY_get0_type_name(pk), EVP_PKEY_get_bits(pk));
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64] = "";
        EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL);
        snprintf(curve, curvelen, "%s", group);
        for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
            if (strcmp(group, curves[i].openssl) == 0)
                snprintf(curve, curvelen, "%s", curves[i].nist);
        /* "ECDSA-P384", as sendmail operators read it; other curves keep their name */
        if (strncmp(curve, "P-", 2) == 0)
            snprintf(type, typelen, "ECDSA-P%s", curve + 2);
        else
            snprintf(type, typelen, "ECDSA-%s", curve);
    } else if (EVP_PKEY_is_a(pk, "ED25519")) {
        snprintf(type, typelen, "Ed25519");
    } else if (EVP_PKEY_is_a(pk, "ED448")) {
        snprintf(type, typelen, "Ed448");
    } else {
        snprintf(type, typelen, "%s", EVP_PKEY_get0_type_name(pk));
    }
}

/* OpenSSL's certificate slot: every ECDSA curve shares one. */
static const char *tls_slot(const EVP_PKEY *pk)
{
    static const char *const slots[] = {"RSA-PSS", "RSA", "EC", "ED25519", "ED448", "DSA"};
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
        if (EVP_PKEY_is_a(pk, slots[i]))
            return slots[i];
    return EVP_PKEY_get0_type_name(pk);
}

/* Never prompt on a terminal for an encrypted key: the daemon has none. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int tls_file_open(struct tls_file *f, struct fileset *files, const char *setting, const char *file,
                  char *err, size_t errlen)
{
    char why[512];
    f->bio = NULL;
    if (fileset_read(files, file, TLS_FILE_MAX, &f->data, &f->len, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", setting, why);
        return -1;
    }
    f->bio = f->len <= INT_MAX ? BIO_new_mem_buf(f->data, (int)f->len) : NULL;
    if (!f->bio) {
        tls_errf(err, errlen, "%s: %s", setting, file);
        tls_file_close(f);
        return -1;
    }
    return 0;
}

void tls_file_close(struct tls_file *f)
{
    BIO_free(f->bio);
    f->bio = NULL;
    OPENSSL_cleanse(f->data, f->len); /* it may be a private key */
    free(f->data);
    f->data = NULL;
}

/* Every certificate in a chain file, leaf first. */
static STACK_OF(X509) * tls_read_chain(struct tls_ctx *c, struct fileset *files, const char *file,
                                       char *err, size_t errlen)
{
    struct tls_file f;
    if (tls_file_open(&f, files, "tls.certificates", file, err, errlen) < 0)
        return NULL;
    STACK_OF(X509) *chain = sk_X509_new_null();
    for (;;) {
        X509 *x = X509_new_ex(c->libctx, NULL);
        if (!x || !PEM_read_bio_X509(f.bio, &x, tls_no_passphrase, NULL)) {
            X509_free(x);
            break;
        }
        sk_X509_push(chain, x);
    }
    ERR_clear_error(); /* the end of the file reads as an error */
    tls_file_close(&f);
    if (sk_X509_num(chain) == 0) {
        snprintf(err, errlen, "tls.certificates: no PEM certificate in %s", file);
        sk_X509_pop_free(chain, X509_free);
        return NULL;
    }
    return chain;
}

static EVP_PKEY *tls_read_key(struct tls_ctx *c, struct fileset *files, const char *file, char *err,
                              size_t errlen)
{
    struct tls_file f;
    if (tls_file_open(&f, files, "tls.certificates", file, err, errlen) < 0)
        return NULL;
    EVP_PKEY *pk =
        PEM_read_bio_PrivateKey_ex(f.bio, NULL, tls_no_passphrase, NULL, c->libctx, NULL);
    tls_file_close(&f);
    if (!pk)
        tls_errf(err, errlen, "tls.certificates: no usable private key in %s", file);
    return pk;
}

static time_t tls_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    return ASN1_TIME_to_tm(t, &tm) ? timegm(&tm) : 0;
}

static void tls_check_chain(const STACK_OF(X509) * chain, const char *file)
{
    for (int i = 0; i + 1 < sk_X509_num(chain); i++)
        if (X509_check_issued(sk_X509_value(chain, i + 1), sk_X509_value(chain, i)) != X509_V_OK) {
            log_warn("tls: %s: certificate %d is not issued by the one after it; the chain "
                     "should be in order, leaf first",
                     file, i + 1);
            return;
        }
}

static void tls_record(struct tls_cert *rc, X509 *leaf, const char *file)
{
    tls_key_type(X509_get0_pubkey(leaf), rc->type, sizeof(rc->type), rc->curve, sizeof(rc->curve));
    X509_NAME_oneline(X509_get_subject_name(leaf), rc->subject, sizeof(rc->subject));
    X509_NAME_oneline(X509_get_issuer_name(leaf), rc->issuer, sizeof(rc->issuer));
    rc->not_after = tls_asn1_time(X509_get0_notAfter(leaf));
    rc->file = strdup(file);
    X509_up_ref(leaf);
    rc->x509 = leaf;
}

static int tls_load_pair(struct tls_ctx *c, struct fileset *files, const struct tls_cert_pair *p,
                         char *err, size_t errlen)
{
    STACK_OF(X509) *chain = tls_read_chain(c, files, p->cert, err, errlen);
    EVP_PKEY *key = chain ? tls_read_key(c, files, p->key, err, errlen) : NULL;
    STACK_OF(X509) *rest = NULL;
    X509 *leaf = chain ? sk_X509_value(chain, 0) : NULL;
    int rc = -1;
    if (!key)
        goto out;
    if (!X509_check_private_key(leaf, key)) {
        ERR_clear_error();
        snprintf(err, errlen, "tls.certificates: key %s does not match certificate %s", p->key,
                 p->cert);
        goto out;
    }
    const char *slot = tls_slot(X509_get0_pubkey(leaf));
    for (size_t i = 0; i < c->n_certs; i++)
        if (strcmp(tls_slot(X509_get0_pubkey(c->certs[i].x509)), slot) == 0) {
            snprintf(err, errlen,
                     "tls.certificates: %s would replace %s (%s): OpenSSL keeps one "
                     "certificate per key type",
                     p->cert, c->certs[i].file, c->certs[i].type);
            goto out;
        }
    if (c->n_certs == TLS_MAX_CERTS) {
        snprintf(err, errlen, "tls.certificates: at most %d pairs", TLS_MAX_CERTS);
        goto out;
    }
    /* The chain goes with its leaf into the leaf's slot (SSL_CTX_use_cert_and_key copies
     * it), so each certificate is sent with its own chain. */
    rest = sk_X509_dup(chain);
    if (!rest || !sk_X509_shift(rest) || !SSL_CTX_use_cert_and_key(c->ssl, leaf, key, rest, 1)) {
        tls_errf(err, errlen, "tls.certificates: key %s and certificate %s", p->key, p->cert);
        goto out;
    }
    struct tls_cert *r = &c->certs[c->n_certs++];
    tls_record(r, leaf, p->cert);
    tls_check_chain(chain, p->cert);
    rc = 0;
out:
    sk_X509_free(rest);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

int tls_certs_load(struct tls_ctx *c, const struct tls_settings *s, char *err, size_t errlen)
{
    /* a client presents at most one certificate: the first pair */
    size_t n = c->server ? s->n_certs : (s->n_certs > 0);
    for (size_t i = 0; i < n; i++)
        if (tls_load_pair(c, s->files, &s->certs[i], err, errlen) < 0)
            return -1;
    return 0;
}

void tls_certs_free(struct tls_ctx *c)
{
    for (size_t i = 0; i < c->n_certs; i++) {
        free(c->certs[i].file);
        X509_free(c->certs[i].x509);
    }
    c->n_certs = 0;
}

const char *tls_certs_type_of(const struct tls_ctx *c, const X509 *x)
{
    for (size_t i = 0; x && i < c->n_certs; i++)
        if (X509_cmp(c->certs[i].x509, x) == 0)
            return c->certs[i].type;
    return "";
}

size_t tls_ctx_certs(const struct tls_ctx *c, struct tls_cert_info *out, size_t max)
{
    for (size_t i = 0; i < c->n_certs && i < max; i++) {
        const struct tls_cert *r = &c->certs[i];
        snprintf(out[i].type, sizeof(out[i].type), "%s", r->type);
        snprintf(out[i].curve, sizeof(out[i].curve), "%s", r->curve);
        snprintf(out[i].subject, sizeof(out[i].subject), "%s", r->subject);
        snprintf(out[i].issuer, sizeof(out[i].issuer), "%s", r->issuer);
        out[i].not_after = r->not_after;
        out[i].file = r->file;
    }
    return c->n_certs;
}
