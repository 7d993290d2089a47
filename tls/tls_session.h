/*
 * tls/tls_session.h — one TLS connection, server or client side, over the caller's bytes.
 *
 * The engine owns all I/O: ciphertext from the network is fed in, plaintext comes out
 * through a callback; plaintext written is encrypted and handed back through another
 * callback for the engine to send. No blocking call, no socket, no buffer held while the
 * connection is idle (a custom BIO reads straight from the span being fed and writes
 * straight to the send callback; SSL_MODE_RELEASE_BUFFERS), so many handshakes can be in
 * flight on one worker.
 *
 * Owns: the SSL object and a reference to its tls_ctx (a session keeps the context it
 * started with across a reload). Callbacks run synchronously inside feed/write/start;
 * the callee may call tls_session_write() from the plaintext callback, but must not free
 * the session there (mark it and free after feed returns).
 *
 * A failed handshake keeps what the client offered (groups and signature algorithms,
 * from a client-hello callback) so the log can say why there was "no shared cipher".
 */
#ifndef RINGMAIL_TLS_SESSION_H
#define RINGMAIL_TLS_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "tls/tls_ctx.h"

struct tls_session;

struct tls_session_io {
    void *arg;
    void (*send)(void *arg, const void *ciphertext, size_t len);
    void (*plaintext)(void *arg, const char *data, size_t len);
};

enum tls_state {
    TLS_HANDSHAKE, /* in progress */
    TLS_OPEN,      /* established: plaintext flows */
    TLS_CLOSED,    /* peer sent close_notify */
    TLS_FAILED,    /* handshake or record error: see tls_session_error() */
};

/* Server side when `ctx` is a server context; client side (with SNI `server_name`, may be
 * NULL) when it is a client context. `io` must outlive the session. */
struct tls_session *tls_session_new(struct tls_ctx *ctx, const struct tls_session_io *io,
                                    const char *server_name);
void tls_session_free(struct tls_session *t);
/* Client: sends the ClientHello. Server: nothing to do until the first feed. */
enum tls_state tls_session_start(struct tls_session *t);
/* Ciphertext from the peer. Drives the handshake; delivers plaintext. */
enum tls_state tls_session_feed(struct tls_session *t, const char *data, size_t len);
/* Plaintext to the peer (after TLS_OPEN). -1 if the session failed or is closed. */
int tls_session_write(struct tls_session *t, const void *data, size_t len);
/* Sends close_notify. */
void tls_session_shutdown(struct tls_session *t);
enum tls_state tls_session_state(const struct tls_session *t);
/* Why the session failed, e.g. "no shared cipher" (OpenSSL's reason), or "". */
const char *tls_session_error(const struct tls_session *t);

struct tls_session_info {
    char version[16];        /* "TLSv1.3" */
    char cipher[64];         /* "TLS_AES_256_GCM_SHA384" */
    int bits, alg_bits;      /* 256/256 */
    char group[64];          /* negotiated key exchange group, "X25519" */
    char cert[32];           /* our certificate's type, "ECDSA-P384"; "" on the client side */
    char peer_cert[32];      /* client side: the server's certificate type, "RSA-2048"; "" */
    char verify[8];          /* sendmail's verify=: "OK", "FAIL", "NO" (no peer cert), "NONE"
                                (not asked for) */
    char verify_reason[128]; /* for FAIL: X509_verify_cert_error_string() */
    char peer_subject[256];
    char peer_issuer[256];
    char offered_groups[256]; /* from the ClientHello (server side) */
    char offered_sigalgs[512];
    bool resumed; /* an abbreviated handshake (session ticket) */
};
void tls_session_info(const struct tls_session *t, struct tls_session_info *out);
/* sendmail-style fields for the log: "version=TLSv1.3, verify=NO,
 * cipher=TLS_AES_256_GCM_SHA384, bits=256/256, group=X25519, cert=ECDSA-P384" (the client
 * side ends in the server's certificate type instead: "peer_cert=RSA-2048"); after a
 * failure: "reason=..., offered_groups=..., offered_sigalgs=...". Returns `out`. */
const char *tls_session_describe(const struct tls_session *t, char *out, size_t outlen);

/* Whether the handshake resumed an earlier session (SSL_session_reused). */
bool tls_session_resumed(const struct tls_session *t);
/* Whether the session speaks TLS 1.3, where what a server writes after its handshake
 * (session tickets) is nothing the client waits for, unlike TLS 1.2's last flight. */
bool tls_session_is_tls13(const struct tls_session *t);

/* Client-side session resumption, for the delivery engine's per-destination cache: take
 * the resumable state of an established session (NULL if the server sent no ticket;
 * with TLS 1.3 the ticket arrives after the handshake, so ask after the first reply),
 * and offer it on a new session before tls_session_start(). The caller owns what
 * tls_session_resumption() returns; tls_session_resume() takes its own reference.
 * OpenSSL marks a session not resumable when its connection is freed without
 * close_notify: call tls_session_shutdown() before tls_session_free() (after QUIT). */
struct tls_resumption;
struct tls_resumption *tls_session_resumption(const struct tls_session *t);
void tls_resumption_free(struct tls_resumption *r);
bool tls_session_resume(struct tls_session *t, const struct tls_resumption *r);

#endif
