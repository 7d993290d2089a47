/*
 * tls/tls_ctx.h — OpenSSL 3 contexts for the server and the client side.
 *
 * Owns: one OSSL_LIB_CTX (with the default provider and any configured extra providers)
 * and one SSL_CTX built from it, fully configured at creation: protocol range, cipher
 * lists, key-exchange groups, every certificate/key pair, DH parameters, CA store, client
 * certificate request, session tickets. Contexts are built once (at start-up and on
 * reload), never per connection; algorithms are fetched at creation. The daemon builds one
 * context per worker thread, because OpenSSL 3.0 loses most of its handshake rate to lock
 * contention when threads share a library context (openssl/openssl#17627).
 *
 * Key-exchange groups are never hard-coded (the sendmail bug in DESIGN.md): with no list
 * configured OpenSSL negotiates from its defaults; a configured list is checked against
 * the TLS-GROUP capabilities of the loaded providers and an unknown name fails creation
 * with the list of available groups. Several certificates are loaded at once (RSA, ECDSA
 * P-256/P-384/P-521, Ed25519) and OpenSSL picks per handshake the one the client's
 * signature algorithms allow.
 *
 * Knows nothing about SMTP. Thread-safety: a tls_ctx is immutable after creation and
 * reference counted (tls_ctx_ref/unref are thread-safe); sessions hold a reference.
 * Errors: creation returns NULL with a message naming the file or setting at fault.
 */
#ifndef RINGMAIL_TLS_CTX_H
#define RINGMAIL_TLS_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct tls_ctx;
struct tls_lib;
struct fileset;

/* The largest certificate, key, CA or DH parameters file read. */
#define TLS_FILE_MAX (16u << 20)

struct tls_cert_pair {
    const char *cert; /* PEM: the certificate first, then its chain */
    const char *key;  /* PEM private key */
};

struct tls_settings {
    const char *const *providers; /* extra providers to load besides "default" */
    size_t n_providers;
    const char *groups; /* "X25519:P-256:..." as OpenSSL spells them; NULL = defaults */
    const struct tls_cert_pair *certs; /* server: at least one; client: optional client cert */
    size_t n_certs;
    const char *min_version;  /* "TLSv1.2" (default) or "TLSv1.3" */
    const char *max_version;  /* "TLSv1.3" (default) or "TLSv1.2" */
    const char *ciphersuites; /* TLS 1.3 suites; NULL = OpenSSL's default */
    const char *cipher_list;  /* TLS 1.2 cipher list; NULL = OpenSSL's default */
    const char *dh_params;    /* PEM file (confDH_PARAMETERS); NULL = automatic ffdhe */
    const char *ca_file;      /* confCACERT; NULL = none */
    const char *ca_path;      /* confCACERT_PATH; NULL = none */
    bool request_client_cert; /* server: ask for (not require) a client cert, as sendmail */
    bool session_tickets;     /* server: stateless tickets with keys rotated every
                                 ticket_rotate seconds */
    uint32_t ticket_rotate;   /* seconds; 0 = 12 hours */
    bool verify_system_ca;    /* client: also trust the system's default CA store */
    const char *sigalgs;      /* signature algorithms to offer/accept ("RSA+SHA256:..."),
                                 SSL_CTX_set1_sigalgs_list; NULL = OpenSSL's default */
    /* Where the certificate, key, CA and DH files are read from (util/fileset.h): NULL =
     * from disk. ca_path is a directory OpenSSL searches at verification time: always
     * from disk, by whoever verifies. */
    struct fileset *files;
    /* The library context to build on (tls_lib_new), kept by the caller; NULL = one of the
     * context's own. */
    struct tls_lib *lib;
};

/* A library context (OSSL_LIB_CTX) and the providers loaded into it, for callers that build
 * contexts again and again (the daemon: one per worker, every generation on it). A library
 * context that carried sessions may only be freed once every thread that used it has ended
 * (openssl/openssl#16778), and each one takes OpenSSL per-thread keys of which a process has
 * about a thousand: one per build would run out after a few hundred reloads. Providers are
 * loaded into it as the contexts built on it ask; one no longer asked for stays loaded (and
 * its groups are not offered) until tls_lib_free. tls_lib_free: once the contexts built on it
 * are freed and every thread that used them has ended. */
struct tls_lib *tls_lib_new(char *err, size_t errlen);
void tls_lib_free(struct tls_lib *l);

/* Creates a server context. NULL with `err` on any problem (unknown group — with the list
 * of available ones —, unreadable or mismatched certificate/key, bad version, ...).
 * Expiry is not an error: tls_ctx_certs() gives not_after for the caller to judge (the
 * daemon's start-up summary warns, core/summary.h). */
struct tls_ctx *tls_ctx_new_server(const struct tls_settings *s, char *err, size_t errlen);
/* Creates a client context (for delivery): same groups/providers/versions; the first
 * certificate pair, if any, is the client certificate (confCLIENT_CERT/KEY). */
struct tls_ctx *tls_ctx_new_client(const struct tls_settings *s, char *err, size_t errlen);
struct tls_ctx *tls_ctx_ref(struct tls_ctx *c);
/* The last unref frees the context; a library context of its own that carried sessions is
 * kept until tls_ctx_retired_free() (see tls_lib_new: OpenSSL's per-thread state). */
void tls_ctx_unref(struct tls_ctx *c);
/* Frees the retired library contexts. Call once every thread that ran sessions has ended. */
void tls_ctx_retired_free(void);

/* The groups the loaded providers offer for TLS, as OpenSSL names them, with their
 * security bits and the protocol versions that may use them. */
struct tls_group_info {
    char name[64];
    unsigned secbits;
    int min_tls, max_tls; /* TLS1_2_VERSION etc.; 0 = no limit */
};
/* Fills up to `max` entries; returns how many the providers offer. */
size_t tls_ctx_groups(const struct tls_ctx *c, struct tls_group_info *out, size_t max);

/* One loaded certificate, for the report and the log. */
struct tls_cert_info {
    char type[32];  /* "RSA-2048", "ECDSA-P384", "Ed25519" — as logged in cert= */
    char curve[16]; /* "P-384" for ECDSA, "" otherwise */
    char subject[256];
    char issuer[256];
    time_t not_after;
    const char *file;
};
size_t tls_ctx_certs(const struct tls_ctx *c, struct tls_cert_info *out, size_t max);
/* Names of the loaded providers, comma-separated. */
void tls_ctx_providers(const struct tls_ctx *c, char *out, size_t outlen);
/* The `ringmaild --tls-info` report: providers, groups (security bits, protocol range),
 * protocol range, and each certificate (type, curve, subject, expiry). */
void tls_ctx_report(const struct tls_ctx *c, FILE *out);

/* Makes sure `dir` holds demo certificates for a first run with no configured ones: a
 * self-signed ECDSA P-256 and an RSA-2048 pair for `hostname` (ecdsa.pem/ecdsa.key,
 * rsa.pem/rsa.key, mode 0600 keys), created only when missing. Fills paths with the
 * ECDSA certificate, its key, the RSA certificate and its key, in that order. */
int tls_demo_certs_ensure(const char *dir, const char *hostname, char paths[4][512], char *err,
                          size_t errlen);

#endif
