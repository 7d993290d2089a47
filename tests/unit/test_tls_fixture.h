/*
 * tests/unit/test_tls_fixture.h — what the TLS tests share: certificates made with the
 * openssl command at test time in a temporary directory, settings with the defaults the
 * daemon uses, and two tls_sessions wired back to back in memory.
 */
#ifndef RINGMAIL_TEST_TLS_FIXTURE_H
#define RINGMAIL_TEST_TLS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_session.h"

static char tls_fx_dir[256];

/* CA; server ECDSA P-256/P-384/P-521 and RSA-2048 signed by it (chain files leaf first);
 * a client certificate signed by the CA, and a foreign self-signed one. */
static inline int tls_fx_make_certs(void)
{
    snprintf(tls_fx_dir, sizeof(tls_fx_dir), "/tmp/ringmail-tls-XXXXXX");
    if (!mkdtemp(tls_fx_dir))
        return -1;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "cd %s && exec >log 2>&1 && set -e\n"
             "req() { openssl req -new -nodes -newkey \"$2\" $3 -keyout $1.key -out $1.csr "
             "-subj \"/CN=$4\"; }\n"
             "sign() { openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-days 365 -extfile ext -out $1.pem; cat $1.pem ca.pem > $1-chain.pem; }\n"
             "printf 'subjectAltName=DNS:localhost\\n' > ext\n"
             "openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-keyout ca.key -out ca.pem -subj '/CN=ringmail test CA' -days 365\n"
             "for c in 256 384 521; do req p$c ec \"-pkeyopt ec_paramgen_curve:P-$c\" "
             "localhost; sign p$c; done\n"
             "req rsa rsa:2048 '' localhost; sign rsa\n"
             "req client ec '-pkeyopt ec_paramgen_curve:P-256' client.example; sign client\n"
             "openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-keyout foreign.key -out foreign.pem -subj /CN=foreign -days 365\n",
             tls_fx_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static inline void tls_fx_remove_certs(void)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_fx_dir);
    if (tls_fx_dir[0] && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tls_fx_dir);
}

/* Path of a file in the certificate directory; NAMES rotate through 16 buffers. */
static inline const char *tls_fx_path(const char *name)
{
    static char paths[16][512];
    static unsigned next;
    char *p = paths[next++ % 16];
    snprintf(p, 512, "%s/%s", tls_fx_dir, name);
    return p;
}

/* Certificate pairs by base name: "p384" → p384-chain.pem + p384.key. */
struct tls_fx_certs {
    struct tls_cert_pair pairs[4];
    char files[4][2][512];
};

static inline void tls_fx_settings(struct tls_settings *s, struct tls_fx_certs *fc,
                                   const char *const *names, size_t n)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        snprintf(fc->files[i][0], 512, "%s/%s-chain.pem", tls_fx_dir, names[i]);
        snprintf(fc->files[i][1], 512, "%s/%s.key", tls_fx_dir, names[i]);
        fc->pairs[i] = (struct tls_cert_pair){fc->files[i][0], fc->files[i][1]};
    }
    s->certs = fc->pairs;
    s->n_certs = n;
    s->session_tickets = true;
}

/* One end of an in-memory connection: ciphertext it sent, waiting for the peer, and
 * plaintext it received. */
struct tls_fx_end {
    struct tls_session *s;
    struct tls_session_io io;
    char *out;
    size_t out_len;
    char plain[4096];
    size_t plain_len;
};

static inline void tls_fx_send(void *arg, const void *data, size_t len)
{
    struct tls_fx_end *e = arg;
    e->out = realloc(e->out, e->out_len + len);
    memcpy(e->out + e->out_len, data, len);
    e->out_len += len;
}

static inline void tls_fx_plaintext(void *arg, const char *data, size_t len)
{
    struct tls_fx_end *e = arg;
    if (len > sizeof(e->plain) - e->plain_len - 1)
        len = sizeof(e->plain) - e->plain_len - 1;
    memcpy(e->plain + e->plain_len, data, len);
    e->plain_len += len;
    e->plain[e->plain_len] = '\0';
}

static inline void tls_fx_end_init(struct tls_fx_end *e, struct tls_ctx *ctx, const char *sni)
{
    memset(e, 0, sizeof(*e));
    e->io = (struct tls_session_io){e, tls_fx_send, tls_fx_plaintext};
    e->s = tls_session_new(ctx, &e->io, sni);
}

static inline void tls_fx_end_free(struct tls_fx_end *e)
{
    tls_session_free(e->s);
    free(e->out);
}

/* Moves what one end sent to the other, synchronously, until neither has anything to
 * say (feeding is never re-entered from a send callback). */
static inline void tls_fx_pump(struct tls_fx_end *a, struct tls_fx_end *b)
{
    for (int round = 0; round < 64 && (a->out_len || b->out_len); round++) {
        struct tls_fx_end *from = a->out_len ? a : b, *to = from == a ? b : a;
        char *data = from->out;
        size_t len = from->out_len;
        from->out = NULL;
        from->out_len = 0;
        tls_session_feed(to->s, data, len);
        free(data);
    }
}

/* Handshake, then one line each way (so TLS 1.3 tickets reach the client). */
static inline void tls_fx_connect(struct tls_fx_end *srv, struct tls_fx_end *cli)
{
    tls_session_start(cli->s);
    tls_fx_pump(srv, cli);
    if (tls_session_state(cli->s) != TLS_OPEN || tls_session_state(srv->s) != TLS_OPEN)
        return;
    tls_session_write(cli->s, "EHLO client\r\n", 13);
    tls_fx_pump(srv, cli);
    tls_session_write(srv->s, "250 ok\r\n", 8);
    tls_fx_pump(srv, cli);
}

#endif
