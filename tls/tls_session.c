/*
 * tls/tls_session.c — one TLS connection over the engine's bytes.
 *
 * The SSL object talks to a custom BIO instead of a socket or a pair of memory BIOs: its
 * read hands out what tls_session_feed() is currently holding (and asks to retry when it
 * is used up), its write goes straight to io->send. Nothing is copied into a buffer that
 * would then sit there while the connection is idle; with SSL_MODE_RELEASE_BUFFERS
 * OpenSSL drops its own record buffers too, which is what lets thousands of idle TLS
 * sessions cost little.
 *
 * OpenSSL's error queue is per thread, and one worker runs many sessions: the queue is
 * cleared before every operation and the reason of a failure is copied into the session
 * at once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "tls/tls_int.h"
#include "tls/tls_session.h"

static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

static int tls_bio_read(BIO *b, char *out, int len)
{
    struct tls_session *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = (size_t)len < t->in_len ? (size_t)len : t->in_len;
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static int tls_bio_write(BIO *b, const char *data, int len)
{
    struct tls_session *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    t->io->send(t->io->arg, data, (size_t)len);
    return len;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct tls_session *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return (long)t->in_len;
    default:
        return 0;
    }
}

static int tls_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void tls_bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringmail engine");
    if (m && BIO_meth_set_read(m, tls_bio_read) && BIO_meth_set_write(m, tls_bio_write) &&
        BIO_meth_set_ctrl(m, tls_bio_ctrl) && BIO_meth_set_create(m, tls_bio_create))
        tls_bio_method = m;
    else
        BIO_meth_free(m);
}

static void tls_fail(struct tls_session *t, const char *fallback)
{
    snprintf(t->error, sizeof(t->error), "%s", tls_err_reason(fallback));
    ERR_clear_error();
    t->state = TLS_FAILED;
}

static char *tls_strdup_nonempty(const char *s)
{
    return s[0] ? strdup(s) : NULL;
}

int tls_session_hello_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    struct tls_session *t = SSL_get_app_data(ssl);
    char groups[256], sigalgs[512];
    tls_hello_offered(ssl, t->ctx, groups, sizeof(groups), sigalgs, sizeof(sigalgs));
    free(t->offered_groups);
    free(t->offered_sigalgs);
    t->offered_groups = tls_strdup_nonempty(groups);
    t->offered_sigalgs = tls_strdup_nonempty(sigalgs);
    return SSL_CLIENT_HELLO_SUCCESS;
}

void tls_session_state_cb(const SSL *ssl, int where, int ret)
{
    (void)ret;
    if (!(where & SSL_CB_ACCEPT_LOOP) || SSL_get_state(ssl) != TLS_ST_SW_KEY_EXCH)
        return;
    struct tls_session *t = SSL_get_app_data(ssl);
    EVP_PKEY *pk = NULL;
    if (SSL_get_tmp_key(t->ssl, &pk) && EVP_PKEY_is_a(pk, "DH"))
        tls_key_group(t->ctx, pk, t->dhe_group, sizeof(t->dhe_group));
    EVP_PKEY_free(pk);
}

struct tls_session *tls_session_new(struct tls_ctx *ctx, const struct tls_session_io *io,
                                    const char *server_name)
{
    pthread_once(&tls_bio_once, tls_bio_method_make);
    struct tls_session *t = calloc(1, sizeof(*t));
    if (!t || !tls_bio_method)
        goto fail;
    t->io = io;
    t->ctx = tls_ctx_ref(ctx);
    atomic_store_explicit(&ctx->used, true, memory_order_relaxed);
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl);
    BIO *bio = BIO_new(tls_bio_method);
    if (!t->ssl || !bio) {
        BIO_free(bio);
        goto fail;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_app_data(t->ssl, t);
    if (ctx->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        /* SNI, and the name the certificate is checked against (verify=FAIL on
         * mismatch; the handshake goes on — opportunistic TLS) */
        if (server_name &&
            (!SSL_set_tlsext_host_name(t->ssl, server_name) || !SSL_set1_host(t->ssl, server_name)))
            goto fail;
    }
    t->state = TLS_HANDSHAKE;
    return t;
fail:
    ERR_clear_error();
    tls_session_free(t);
    return NULL;
}

void tls_session_free(struct tls_session *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    if (t->ctx)
        tls_ctx_unref(t->ctx);
    free(t->offered_groups);
    free(t->offered_sigalgs);
    free(t);
}

static void tls_handshake(struct tls_session *t)
{
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->state = TLS_OPEN;
        return;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        tls_fail(t, e == SSL_ERROR_SYSCALL ? "unexpected end of handshake" : "handshake failed");
}

/* Reads records until the fed span is used up, handing each chunk of plaintext over.
 * The callee may write or shut down from the callback; the loop stops when it does. */
static void tls_read_all(struct tls_session *t)
{
    char buf[4096];
    while (t->state == TLS_OPEN) {
        ERR_clear_error();
        int n = SSL_read(t->ssl, buf, sizeof(buf));
        if (n > 0) {
            t->io->plaintext(t->io->arg, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return;
        if (e == SSL_ERROR_ZERO_RETURN)
            t->state = TLS_CLOSED;
        else
            tls_fail(t, "record error");
    }
}

enum tls_state tls_session_start(struct tls_session *t)
{
    if (!t->ctx->server && t->state == TLS_HANDSHAKE)
        tls_handshake(t);
    return t->state;
}

enum tls_state tls_session_feed(struct tls_session *t, const char *data, size_t len)
{
    t->in = data;
    t->in_len = len;
    if (t->state == TLS_HANDSHAKE)
        tls_handshake(t);
    tls_read_all(t);
    t->in = NULL;
    t->in_len = 0;
    return t->state;
}

int tls_session_write(struct tls_session *t, const void *data, size_t len)
{
    if (t->state != TLS_OPEN)
        return -1;
    if (len == 0)
        return 0;
    if (len > INT32_MAX)
        return -1;
    ERR_clear_error();
    int n = SSL_write(t->ssl, data, (int)len);
    if (n <= 0) {
        tls_fail(t, "write failed");
        return -1;
    }
    return n;
}

void tls_session_shutdown(struct tls_session *t)
{
    if (t->state != TLS_OPEN && t->state != TLS_CLOSED)
        return;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

enum tls_state tls_session_state(const struct tls_session *t)
{
    return t->state;
}

const char *tls_session_error(const struct tls_session *t)
{
    return t->error;
}

bool tls_session_resumed(const struct tls_session *t)
{
    return SSL_session_reused(t->ssl) == 1;
}

bool tls_session_is_tls13(const struct tls_session *t)
{
    return SSL_version(t->ssl) == TLS1_3_VERSION;
}

struct tls_resumption *tls_session_resumption(const struct tls_session *t)
{
    SSL_SESSION *s = SSL_get1_session(t->ssl);
    if (s && !SSL_SESSION_is_resumable(s)) {
        SSL_SESSION_free(s);
        s = NULL;
    }
    return (struct tls_resumption *)s;
}

void tls_resumption_free(struct tls_resumption *r)
{
    SSL_SESSION_free((SSL_SESSION *)r);
}

bool tls_session_resume(struct tls_session *t, const struct tls_resumption *r)
{
    return !t->ctx->server && t->state == TLS_HANDSHAKE &&
           SSL_set_session(t->ssl, (SSL_SESSION *)r) == 1;
}
