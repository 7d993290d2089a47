/*
 * tls/tls_ctx.c — building an SSL_CTX from tls_settings, and its reference count.
 *
 * Each context has its own OSSL_LIB_CTX: on OpenSSL 3.0 threads sharing one library
 * context serialise on its locks during every handshake (openssl/openssl#17627), so the
 * daemon builds one context per worker and no OpenSSL object is shared between them (the
 * session-ticket keys, plain bytes, are the process's: tls_tickets.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/decoder.h>
#include <openssl/err.h>

#include "tls/tls_int.h"
#include "util/log.h"

const char *tls_err_reason(const char *fallback)
{
    const char *r = ERR_reason_error_string(ERR_peek_error());
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

static int tls_load_providers(struct tls_ctx *c, const struct tls_settings *s, char *err,
                              size_t errlen)
{
    if (s->n_providers + 1 > TLS_MAX_PROVIDERS) {
        snprintf(err, errlen, "tls.providers: at most %d providers", TLS_MAX_PROVIDERS - 1);
        return -1;
    }
    for (size_t i = 0; i <= s->n_providers; i++) {
        const char *name = i == 0 ? "default" : s->providers[i - 1];
        OSSL_PROVIDER *p = OSSL_PROVIDER_load(c->libctx, name);
        if (!p) {
            tls_errf(err, errlen, "tls.providers: cannot load provider '%s'", name);
            return -1;
        }
        c->providers[c->n_providers++] = p;
    }
    return 0;
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
static int tls_set_dh(struct tls_ctx *c, const char *file, char *err, size_t errlen)
{
    if (!file) {
        SSL_CTX_set_dh_auto(c->ssl, 1);
        return 0;
    }
    EVP_PKEY *dh = NULL;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(
        &dh, "PEM", NULL, "DH", OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS, c->libctx, NULL);
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "tls.dh_params: cannot open %s: %s", file, strerror(errno));
        OSSL_DECODER_CTX_free(dctx);
        return -1;
    }
    int ok = dctx && OSSL_DECODER_from_fp(dctx, f) && dh;
    fclose(f);
    OSSL_DECODER_CTX_free(dctx);
    if (!ok || !SSL_CTX_set0_tmp_dh_pkey(c->ssl, dh)) {
        tls_errf(err, errlen, "tls.dh_params: no DH parameters in %s", file);
        EVP_PKEY_free(dh);
        return -1;
    }
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
    if (s->ca_file && !SSL_CTX_load_verify_file(c->ssl, s->ca_file)) {
        tls_errf(err, errlen, "tls.ca_file: cannot load %s", s->ca_file);
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
    if (s->ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file_ex(s->ca_file, c->libctx, NULL);
        if (!names) {
            tls_errf(err, errlen, "tls.ca_file: no CA names in %s", s->ca_file);
            return -1;
        }
        SSL_CTX_set_client_CA_list(c->ssl, names);
    }
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
    if (tls_set_dh(c, s->dh_params, err, errlen) < 0)
        return -1;
    if (!s->session_tickets) {
        SSL_CTX_set_options(c->ssl, SSL_OP_NO_TICKET);
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
    c->libctx = OSSL_LIB_CTX_new();
    if (!c->libctx) {
        tls_errf(err, errlen, "cannot create an OpenSSL library context");
        tls_ctx_unref(c);
        return NULL;
    }
    if (tls_load_providers(c, s, err, errlen) < 0) {
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

/*
 * Library contexts of released tls_ctx objects wait here until tls_ctx_retired_free().
 * OpenSSL keeps per-thread state (DRBGs) for every library context a thread used and
 * cleans it up when the thread ends, against a context that must still exist
 * (openssl/openssl#16778). A worker that used a context of an older generation may end
 * long after that generation was released, so a library context is only freed once every
 * worker has ended.
 */
struct tls_retired {
    struct tls_retired *next;
    OSSL_LIB_CTX *libctx;
    OSSL_PROVIDER *providers[TLS_MAX_PROVIDERS];
    size_t n_providers;
};
static pthread_mutex_t tls_retired_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_retired *tls_retired_list;

static void tls_libctx_free(OSSL_LIB_CTX *libctx, OSSL_PROVIDER *const *providers, size_t n)
{
    for (size_t i = 0; i < n; i++)
        OSSL_PROVIDER_unload(providers[i]);
    OSSL_LIB_CTX_free(libctx);
}

static void tls_libctx_retire(struct tls_ctx *c)
{
    struct tls_retired *r = calloc(1, sizeof(*r));
    if (!r) {
        /* Keeping it alive is the safe side of the two; it is only memory. */
        log_warn("tls: out of memory retiring a library context; it stays allocated");
        return;
    }
    r->libctx = c->libctx;
    memcpy(r->providers, c->providers, sizeof(r->providers));
    r->n_providers = c->n_providers;
    pthread_mutex_lock(&tls_retired_lock);
    r->next = tls_retired_list;
    tls_retired_list = r;
    pthread_mutex_unlock(&tls_retired_lock);
}

void tls_ctx_retired_free(void)
{
    pthread_mutex_lock(&tls_retired_lock);
    struct tls_retired *r = tls_retired_list;
    tls_retired_list = NULL;
    pthread_mutex_unlock(&tls_retired_lock);
    while (r) {
        struct tls_retired *next = r->next;
        tls_libctx_free(r->libctx, r->providers, r->n_providers);
        free(r);
        r = next;
    }
}

void tls_ctx_unref(struct tls_ctx *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(c->ssl);
    tls_certs_free(c);
    tls_tickets_free(c);
    free(c->groups);
    if (c->used)
        tls_libctx_retire(c);
    else
        tls_libctx_free(c->libctx, c->providers, c->n_providers);
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
