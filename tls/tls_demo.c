/*
 * tls/tls_demo.c — self-signed certificates for a first run with none configured, so
 * STARTTLS works out of the box (as sendmail's packages make a snakeoil certificate).
 * One ECDSA P-256 and one RSA-2048 pair, so both kinds of client get a certificate.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"

#define TLS_DEMO_DAYS 365

static int tls_demo_add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A random positive 127-bit serial, as RFC 5280 asks of every certificate. */
static int tls_demo_serial(X509 *x)
{
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof(serial)) <= 0)
        return 0;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok;
}

static X509 *tls_demo_cert(EVP_PKEY *key, const char *hostname)
{
    X509 *x = X509_new();
    char san[600];
    X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
    snprintf(san, sizeof(san), "DNS:%s,DNS:localhost", hostname);
    int ok = name && tls_demo_serial(x) && X509_set_version(x, 2) &&
             X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 86400L * TLS_DEMO_DAYS) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)hostname,
                                        -1, -1, 0) &&
             X509_set_issuer_name(x, name) && X509_set_pubkey(x, key) &&
             tls_demo_add_ext(x, NID_subject_alt_name, san) &&
             tls_demo_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") &&
             X509_sign(x, key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Creates `path` exclusively with `mode` and writes the PEM into it. */
static int tls_demo_write(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -1;
    }
    int ok =
        key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    if (fclose(f) != 0 || !ok) {
        unlink(path);
        return -1;
    }
    return 0;
}

static int tls_demo_pair(const char *cert_path, const char *key_path, EVP_PKEY *key,
                         const char *hostname, char *err, size_t errlen)
{
    X509 *x = key ? tls_demo_cert(key, hostname) : NULL;
    if (!x) {
        tls_errf(err, errlen, "demo certificate %s", cert_path);
        return -1;
    }
    unlink(cert_path);
    unlink(key_path);
    int rc = 0;
    if (tls_demo_write(key_path, 0600, key, NULL) < 0 ||
        tls_demo_write(cert_path, 0644, NULL, x) < 0) {
        snprintf(err, errlen, "demo certificate: cannot write %s: %s", cert_path, strerror(errno));
        rc = -1;
    }
    X509_free(x);
    return rc;
}

int tls_demo_certs_ensure(const char *dir, const char *hostname, char paths[4][512], char *err,
                          size_t errlen)
{
    static const char *const files[4] = {"ecdsa.pem", "ecdsa.key", "rsa.pem", "rsa.key"};
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "demo certificates: cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < 4; i++)
        snprintf(paths[i], 512, "%s/%s", dir, files[i]);
    for (int pair = 0; pair < 2; pair++) {
        const char *cert = paths[2 * pair], *key = paths[2 * pair + 1];
        if (access(cert, R_OK) == 0 && access(key, R_OK) == 0)
            continue;
        EVP_PKEY *pk = pair == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                                 : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        int rc = tls_demo_pair(cert, key, pk, hostname, err, errlen);
        EVP_PKEY_free(pk);
        if (rc < 0)
            return -1;
    }
    return 0;
}
