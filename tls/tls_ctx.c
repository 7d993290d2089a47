/*
 * tls/tls_ctx.c — building an SSL_CTX from tls_settings, and its reference count.
 *
 * Each worker's contexts are built on a library context of that worker's (tls_lib.c): on
 * OpenSSL 3.0 threads sharing one library context serialise on its locks during every
 * handshake (openssl/openssl#17627), so no OpenSSL object is shared between workers (the
 * session-ticket keys, plain bytes, are the process's: tls_tickets.c). Every file is read
 * through the settings' fileset, so the engine can build contexts from keys only the
 * privileged parent may read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "tls/tls_int.h"
#include "util/log.h"

const char *tls_err_reason(const char *fallback)
{
    unsigned long e = ERR_peek_error();
    /* A failed system call (a file OpenSSL opened itself) has an errno, no reason text. */
    if (e && ERR_SYSTEM_ERROR(e))
        return strerror(ERR_GET_REASON(e));
    const char *r = ERR_reason_error_string(e);
    return r ? r : fallback;
}

void tls_errf(char *err, size_t errlen, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s", what, tls_err_reason("unknown OpenSSL error"));
    ERR_clear_error();
}

static int tls_parse_version(const char *setting, const char *v, int dflt, int *out, char *err,
                             size_t errlen)
{
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (strcasecmp(v, "TLSv1.2") == 0) {
        *out = TLS1_2_VERSION;
        return 0;
    }
    if (strcasecmp(v, "TLSv1.3") == 0) {
        *out = TLS1_3_VERSION;
        return 0;
    }
    snprintf(err, errlen, "%s: unknown protocol version '%s' (TLSv1.2 or TLSv1.3)", setting, v);
    return -1;
}

static int tls_set_protocols(struct tls_ctx *c, const struct tls_settings *s, char *err,
                             size_t errlen)
{
    if (tls_parse_version("tls.min_version", s->min_version, TLS1_2_VERSION, &c->min_version, err,
                          errlen) < 0 ||
        tls_parse_version("tls.max_version", s->max_version, TLS1_3_VERSION, &c->max_version, err,
                          errlen) < 0)
        return -1;
    if (c->min_version > c->max_version) {
        snprintf(err, errlen, "tls.min_version %s is above tls.max_version %s", s->min_version,
                 s->max_version);
        return -1;
    }
    if (!SSL_CTX_set_min_proto_version(c->ssl, c->min_version) ||
        !SSL_CTX_set_max_proto_version(c->ssl, c->max_version)) {
        tls_errf(err, errlen, "tls.min_version/max_version");
        return -1;
    }
    if (s->ciphersuites && !SSL_CTX_set_ciphersuites(c->ssl, s->ciphersuites)) {
        tls_errf(err, errlen, "tls.ciphersuites: '%s'", s->ciphersuites);
        return -1;
    }
    if (s->cipher_list && !SSL_CTX_set_cipher_list(c->ssl, s->cipher_list)) {
        tls_errf(err, errlen, "tls.cipher_list: '%s'", s->cipher_list);
        return -1;
    }
    if (s->sigalgs && !SSL_CTX_set1_sigalgs_list(c->ssl, s->sigalgs)) {
        tls_errf(err, errlen, "tls.sigalgs: '%s'", s->sigalgs);
        return -1;
    }
    return 0;
}

/* Automatic ffdhe parameters sized to the certificate, unless confDH_PARAMETERS names a
 * file of "DH PARAMETERS". */
static int tls_set_dh(struct tls_ctx *c, const struct tls_settings *s, char *err, size_t errlen)
{
    if (!s->dh_params) {
        SSL_CTX_set_dh_auto(c->ssl, 1);
        return 0;
    }
    struct tls_file f;
    if (tls_file_open(&f, s->files, "tls.dh_params", s->dh_params, err, errlen) < 0)
        return -1;
    EVP_PKEY *dh = NULL;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(
        &dh, "PEM", NULL, "DH", OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS, c->libctx, NULL);
    int ok = dctx && OSSL_DECODER_from_bio(dctx, f.bio) && dh;
    OSSL_DECODER_CTX_free(dctx);
    tls_file_close(&f);
    if (!ok || !SSL_CTX_set0_tmp_dh_pkey(c->ssl, dh)) {
        tls_errf(err, errlen, "tls.dh_params: no DH parameters in %s", s->dh_params);
        EVP_PKEY_free(dh);
        return -1;
    }
    return 0;
}

/* Every certificate (and CRL) of confCACERT goes into the verification store, and for a
 * server each certificate's subject into the CA names sent with the certificate request,
 * as SSL_CTX_load_verify_file and SSL_load_client_CA_file would do with the file. */
static int tls_load_ca_file(struct tls_ctx *c, const struct tls_settings *s, char *err,
                            size_t errlen)
{
    struct tls_file f;
    if (tls_file_open(&f, s->files, "tls.ca_file", s->ca_file, err, errlen) < 0)
        return -1;
    STACK_OF(X509_INFO) *infos =
        PEM_X509_INFO_read_bio_ex(f.bio, NULL, NULL, NULL, c->libctx, NULL);
    tls_file_close(&f);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    X509_STORE *store = SSL_CTX_get_cert_store(c->ssl);
    int loaded = 0, ok = infos && names;
    for (int i = 0; ok && i < sk_X509_INFO_num(infos); i++) {
        const X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->crl)
            ok = X509_STORE_add_crl(store, xi->crl);
        if (!xi->x509 || !ok)
            continue;
        ok = X509_STORE_add_cert(store, xi->x509);
        loaded++;
        const X509_NAME *subject = X509_get_subject_name(xi->x509);
        bool seen = false;
        for (int j = 0; j < sk_X509_NAME_num(names) && !seen; j++)
            seen = X509_NAME_cmp(sk_X509_NAME_value(names, j), subject) == 0;
        X509_NAME *copy = seen ? NULL : X509_NAME_dup(subject);
        if (!seen && (!copy || !sk_X509_NAME_push(names, copy))) {
            X509_NAME_free(copy);
            ok = 0;
        }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (!ok || !loaded) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        if (ok)
            snprintf(err, errlen, "tls.ca_file: no PEM certificate in %s", s->ca_file);
        else
            tls_errf(err, errlen, "tls.ca_file: cannot load %s", s->ca_file);
        return -1;
    }
    if (c->server && s->request_client_cert)
        SSL_CTX_set_client_CA_list(c->ssl, names);
    else
        sk_X509_NAME_pop_free(names, X509_NAME_free);
    return 0;
}

/* sendmail asks for a client certificate but never requires one: the handshake goes on
 * whatever the chain, and the result is logged as verify=OK/FAIL/NO. The client side is
 * opportunistic in the same way; the delivery engine decides what a FAIL means. */
static int tls_verify_accept(int preverify_ok, X509_STORE_CTX *x)
{
    (void)preverify_ok;
    (void)x;
    return 1;
}

static int tls_set_ca(struct tls_ctx *c, const struct tls_settings *s, char *err, size_t errlen)
{
    if (s->ca_file && tls_load_ca_file(c, s, err, errlen) < 0)
        return -1;
    /* OpenSSL looks into the directory only while it verifies: one that is missing would
     * go unnoticed until every client certificate failed. */
    struct stat st;
    int bad = !s->ca_path                 ? 0
              : stat(s->ca_path, &st) < 0 ? errno
              : !S_ISDIR(st.st_mode)      ? ENOTDIR
                                          : 0;
    if (bad) {
        snprintf(err, errlen, "tls.ca_path: %s: %s", s->ca_path, strerror(bad));
        return -1;
    }
    if (s->ca_path && !SSL_CTX_load_verify_dir(c->ssl, s->ca_path)) {
        tls_errf(err, errlen, "tls.ca_path: cannot use %s", s->ca_path);
        return -1;
    }
    if (!c->server) {
        if (s->verify_system_ca && !SSL_CTX_set_default_verify_paths(c->ssl)) {
            tls_errf(err, errlen, "tls.verify_system_ca: cannot load the system CA store");
            return -1;
        }
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, tls_verify_accept);
        return 0;
    }
    if (!s->request_client_cert)
        return 0;
    SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, tls_verify_accept);
    return 0;
}

static int tls_configure(struct tls_ctx *c, const struct tls_settings *s, char *err, size_t errlen)
{
    SSL_CTX_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_app_data(c->ssl, c);
    if (tls_set_protocols(c, s, err, errlen) < 0 || tls_groups_load(c, err, errlen) < 0 ||
        tls_groups_apply(c, s->groups, err, errlen) < 0 || tls_certs_load(c, s, err, errlen) < 0 ||
        tls_set_ca(c, s, err, errlen) < 0)
        return -1;
    if (!c->server)
        return 0;
    SSL_CTX_set_client_hello_cb(c->ssl, tls_session_hello_cb, NULL);
    SSL_CTX_set_info_callback(c->ssl, tls_session_state_cb);
    /* Session ids never leave this process (no server-side cache: each worker has its
     * own context, and tickets carry the state), but OpenSSL refuses to resume a session
     * with client verification unless the context is named. */
    SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
    static const unsigned char sid_ctx[] = "ringmail";
    SSL_CTX_set_session_id_context(c->ssl, sid_ctx, sizeof(sid_ctx) - 1);
    if (tls_set_dh(c, s, err, errlen) < 0)
        return -1;
    if (!s->session_tickets) {
        /* SSL_OP_NO_TICKET alone makes TLS 1.3 send two stateful tickets instead, which
         * nothing here can resume (no session cache): each would cost the handshake a
         * send for nothing. */
        SSL_CTX_set_options(c->ssl, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(c->ssl, 0);
        return 0;
    }
    return tls_tickets_init(c, s->ticket_rotate, err, errlen);
}

static struct tls_ctx *tls_ctx_new(bool server, const struct tls_settings *s, char *err,
                                   size_t errlen)
{
    struct tls_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->server = server;
    c->request_client_cert = server && s->request_client_cert;
    ERR_clear_error();
    c->own_lib = !s->lib;
    c->lib = s->lib ? s->lib : tls_lib_new(err, errlen);
    if (!c->lib) {
        tls_ctx_unref(c);
        return NULL;
    }
    c->libctx = c->lib->libctx;
    if (tls_lib_providers(c, s->providers, s->n_providers, err, errlen) < 0) {
        tls_ctx_unref(c);
        return NULL;
    }
    c->ssl = SSL_CTX_new_ex(c->libctx, NULL, server ? TLS_server_method() : TLS_client_method());
    if (!c->ssl) {
        tls_errf(err, errlen, "cannot create an SSL context");
        tls_ctx_unref(c);
        return NULL;
    }
    if (tls_configure(c, s, err, errlen) < 0) {
        ERR_clear_error();
        tls_ctx_unref(c);
        return NULL;
    }
    return c;
}

struct tls_ctx *tls_ctx_new_server(const struct tls_settings *s, char *err, size_t errlen)
{
    if (s->n_certs == 0) {
        snprintf(err, errlen, "tls.certificates: a server needs at least one certificate");
        return NULL;
    }
    return tls_ctx_new(true, s, err, errlen);
}

struct tls_ctx *tls_ctx_new_client(const struct tls_settings *s, char *err, size_t errlen)
{
    return tls_ctx_new(false, s, err, errlen);
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void tls_ctx_unref(struct tls_ctx *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(c->ssl);
    tls_certs_free(c);
    tls_tickets_free(c);
    free(c->groups);
    tls_lib_release(c);
    free(c);
}

void tls_ctx_providers(const struct tls_ctx *c, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->n_providers && used < outlen; i++)
        used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? ", " : "",
                                 OSSL_PROVIDER_get0_name(c->providers[i]));
}
