/*
 * tls/tls_int.h — what the files of tls/ share and nobody else sees: the layout of a
 * context, and the helpers each concern offers the others.
 *
 * A tls_ctx is immutable after creation; the session-ticket keys it uses are the
 * process's (tls_tickets.c).
 */
#ifndef RINGMAIL_TLS_INT_H
#define RINGMAIL_TLS_INT_H

#include <stdatomic.h>

#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/tls_ctx.h"
#include "tls/tls_session.h"

#define TLS_MAX_PROVIDERS 8
#define TLS_MAX_CERTS     8

/* One TLS-GROUP capability entry of a provider. Providers list aliases as separate
 * entries with the same IANA id (secp384r1 and P-384); `display` is the one name per id
 * that ringmail shows and logs. */
struct tls_group {
    char name[64];     /* as the provider spells it: what SSL_CTX_set1_groups_list takes */
    char internal[64]; /* the algorithm's own name: "prime256v1", "X25519", "ffdhe2048" */
    char display[64];  /* "P-256", "X25519", "ffdhe2048" */
    unsigned id;       /* IANA codepoint */
    unsigned secbits;
    int min_tls, max_tls;
};

struct tls_cert {
    char type[32];  /* "ECDSA-P384" */
    char curve[16]; /* "P-384"; "" for RSA and EdDSA */
    char subject[256];
    char issuer[256];
    time_t not_after;
    char *file;
    X509 *x509; /* the leaf, to tell which certificate a handshake used */
};

/* tls_lib.c: a library context and every provider ever loaded into it. */
struct tls_lib {
    OSSL_LIB_CTX *libctx;
    OSSL_PROVIDER *providers[TLS_MAX_PROVIDERS];
    size_t n_providers;
};

struct tls_ctx {
    atomic_uint refs;
    atomic_bool used; /* a session ran on it: a library context of its own must be retired */
    bool server;
    bool request_client_cert;
    struct tls_lib *lib; /* shared (tls_settings.lib) or own_lib */
    bool own_lib;
    OSSL_LIB_CTX *libctx;                        /* lib->libctx */
    OSSL_PROVIDER *providers[TLS_MAX_PROVIDERS]; /* those this context asked for, in lib */
    size_t n_providers;
    SSL_CTX *ssl;
    int min_version, max_version;

    struct tls_group *groups; /* every capability entry of every loaded provider */
    size_t n_groups;
    struct tls_cert certs[TLS_MAX_CERTS];
    size_t n_certs;

    EVP_CIPHER *ticket_cipher; /* session tickets (their keys: tls_tickets.c) */
};

/* One connection (tls_session.c; its info in tls_info.c). */
struct tls_session {
    struct tls_ctx *ctx;
    SSL *ssl;
    const struct tls_session_io *io;
    const char *in; /* the span being fed; the BIO reads from it */
    size_t in_len;
    enum tls_state state;
    char error[128];
    char *offered_groups, *offered_sigalgs; /* server: from the ClientHello */
    char dhe_group[24]; /* server, TLS 1.2 DHE: the parameters' group ("modp_2048") */
};

/* The servers' client-hello callback: keeps what the client offered for the failure log;
 * never refuses the hello. */
int tls_session_hello_cb(SSL *ssl, int *alert, void *arg);

/* The servers' info callback: notes the group of a TLS 1.2 DHE key exchange, which
 * OpenSSL forgets once the key is derived. */
void tls_session_state_cb(const SSL *ssl, int where, int ret);
/* The group of an ephemeral key: "P-384", "X25519", "ffdhe2048", "modp_2048", "DH-2048". */
void tls_key_group(const struct tls_ctx *c, EVP_PKEY *pk, char *out, size_t outlen);

/* Writes "prefix: <OpenSSL's reason>" into err (the first queued error) and clears the
 * queue. */
void tls_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The reason string of the oldest queued OpenSSL error, or `fallback`. */
const char *tls_err_reason(const char *fallback);

/* tls_lib.c */
/* Loads "default" and `names` into the context's library (each once), filling
 * c->providers with them. */
int tls_lib_providers(struct tls_ctx *c, const char *const *names, size_t n, char *err,
                      size_t errlen);
/* The context's own library, freed now or, when sessions ran on it, retired. */
void tls_lib_release(struct tls_ctx *c);

/* tls_groups.c */
int tls_groups_load(struct tls_ctx *c, char *err, size_t errlen);
int tls_groups_apply(struct tls_ctx *c, const char *list, char *err, size_t errlen);
/* The display name of a group named by its provider name, alias or internal name. */
const char *tls_group_display(const struct tls_ctx *c, const char *name);
const char *tls_group_display_by_id(const struct tls_ctx *c, unsigned id);
/* Display names of every group, one per IANA id, into `out` joined by `sep`. */
void tls_groups_join(const struct tls_ctx *c, const char *sep, char *out, size_t outlen);

/* tls_certs.c */
/* A file read whole through the settings' fileset (util/fileset.h), as a memory BIO. */
struct tls_file {
    BIO *bio;
    char *data;
    size_t len;
};
/* 0, or -1 with err "SETTING: FILE: why". tls_file_close wipes the bytes (keys). */
int tls_file_open(struct tls_file *f, struct fileset *files, const char *setting, const char *file,
                  char *err, size_t errlen);
void tls_file_close(struct tls_file *f);
int tls_certs_load(struct tls_ctx *c, const struct tls_settings *s, char *err, size_t errlen);
void tls_certs_free(struct tls_ctx *c);
/* The recorded type of the certificate `x` ("ECDSA-P384"), or "" if it is none of ours. */
const char *tls_certs_type_of(const struct tls_ctx *c, const X509 *x);
/* "RSA-2048", "ECDSA-P384", "Ed25519"; curve gets "P-384" or "". */
void tls_key_type(const EVP_PKEY *pk, char *type, size_t typelen, char *curve, size_t curvelen);

/* tls_tickets.c */
int tls_tickets_init(struct tls_ctx *c, uint32_t rotate, char *err, size_t errlen);
void tls_tickets_free(struct tls_ctx *c);

/* tls_hello.c: what a ClientHello offered (supported_groups and signature_algorithms) as
 * colon-separated names, for the failure log. Unknown codepoints appear in hex. */
void tls_hello_offered(SSL *ssl, const struct tls_ctx *c, char *groups, size_t groupslen,
                       char *sigalgs, size_t sigalgslen);

#endif
