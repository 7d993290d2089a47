/*
 * core/session_tls.c — the TLS transport of a session: STARTTLS on this worker's context,
 * ciphertext into tls_session, plaintext into the state machine, replies encrypted, and
 * sendmail's STARTTLS=server log lines (plus the group and certificate it never logged; a
 * failure logs what the client offered, so "no shared cipher" explains itself).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/session_int.h"
#include "tls/tls_session.h"
#include "util/log.h"
#include "util/metrics.h"

struct session_tls {
    struct tls_session *t;
    struct tls_session_io io;
    uint64_t deadline; /* of the handshake; 0 = none */
    bool opened;       /* smtp_server_tls_started() done and logged */
    bool feeding;      /* inside tls_session_feed: no shutdown from a callback */
    bool replied;      /* the state machine wrote during this feed */
    bool counted;      /* the handshake's outcome is in the metrics */
    uint64_t cpu_ns;   /* thread CPU time of the handshake's calls so far */
};

/* The handshake ended (ok, or failed: the client went away or timed out included). */
static void session_tls_count(struct session_tls *st, bool ok)
{
    if (st->counted)
        return;
    st->counted = true;
    struct tls_session_info i;
    tls_session_info(st->t, &i);
    metrics_tls_handshake(i.version, i.group, i.cert, ok, st->cpu_ns);
}

static void session_plain_recv(struct session *s, const char *data, size_t len)
{
    session_smtp_input(s, data, len);
}

static void session_plain_send(struct session *s, const char *data, size_t len)
{
    engine_conn_send(s->dw->w, s->id, data, len);
}

static void session_plain_nothing(struct session *s)
{
    (void)s;
}

static void session_tls_io_send(void *arg, const void *ciphertext, size_t len)
{
    struct session *s = arg;
    engine_conn_send(s->dw->w, s->id, ciphertext, len);
}

/* The handshake is done: the state machine forgets the plaintext session (RFC 3207 4.2)
 * and the log gets sendmail's line. */
static void session_tls_open(struct session *s)
{
    struct session_tls *st = s->tls;
    char relay[SESSION_RELAY_MAX], desc[512];
    st->opened = true;
    st->deadline = 0;
    smtp_server_tls_started(s->smtp, engine_now_ms(s->dw->w));
    log_info("STARTTLS=server, relay=%s, %s", session_relay(s, relay, sizeof(relay)),
             tls_session_describe(st->t, desc, sizeof(desc)));
}

static void session_tls_io_plaintext(void *arg, const char *data, size_t len)
{
    struct session *s = arg;
    if (s->closing)
        return;
    /* A TLS 1.3 client may send its first command in the flight that ends the handshake:
     * the state machine must have left its STARTTLS wait before it reads that. */
    if (!s->tls->opened)
        session_tls_open(s);
    session_smtp_input(s, data, len);
}

static int session_plain_start_tls(struct session *s)
{
    char relay[64];
    unsigned w = engine_worker_index(s->dw->w);
    struct session_tls *st = calloc(1, sizeof(*st));
    if (!st || w >= s->rc->n_tls) {
        free(st);
        log_error("STARTTLS=server, relay=%s, error: %s", session_relay(s, relay, sizeof(relay)),
                  st ? "no TLS context for this worker" : "out of memory");
        return -1;
    }
    st->io = (struct tls_session_io){s, session_tls_io_send, session_tls_io_plaintext};
    /* This worker's own context, of the generation the session started with. */
    st->t = tls_session_new(s->rc->tls[w], &st->io, NULL);
    if (!st->t) {
        free(st);
        log_error("STARTTLS=server, relay=%s, error: cannot create a TLS session",
                  session_relay(s, relay, sizeof(relay)));
        return -1;
    }
    uint32_t timeout = s->rc->cfg->starttls_timeout_ms;
    st->deadline = timeout ? engine_now_ms(s->dw->w) + timeout : 0;
    s->tls = st;
    s->tp = &session_tls;
    return 0;
}

static void session_tls_fail(struct session *s, const char *why)
{
    char relay[64], desc[1024];
    session_tls_count(s->tls, false);
    log_info("STARTTLS=server, relay=%s, error: %s", session_relay(s, relay, sizeof(relay)),
             why ? why : tls_session_describe(s->tls->t, desc, sizeof(desc)));
    session_close(s);
}

static void session_tls_recv(struct session *s, const char *data, size_t len)
{
    struct session_tls *st = s->tls;
    st->feeding = true;
    st->replied = false;
    /* the handshake's cost, by the thread that pays it (docs/metrics.md) */
    bool handshake = !st->opened;
    uint64_t cpu = handshake ? metrics_thread_cpu_ns() : 0;
    enum tls_state state = tls_session_feed(st->t, data, len);
    if (handshake)
        st->cpu_ns += metrics_thread_cpu_ns() - cpu;
    st->feeding = false;
    /* CLOSED is reached only from OPEN: a client may finish the handshake and close_notify
     * in one flight, and that handshake is still logged. */
    if ((state == TLS_OPEN || state == TLS_CLOSED) && !st->opened && !s->closing)
        session_tls_open(s);
    if (handshake && st->opened) { /* its last flight's CPU time counted above */
        session_tls_count(st, true);
        /* TLS 1.3: what this last flight made the server write is its session tickets.
         * The client speaks next (EHLO, RFC 3207), so they go out with the reply to it. */
        if (state == TLS_OPEN && !st->replied && tls_session_is_tls13(st->t))
            engine_conn_hold_output(s->dw->w, s->id);
    }
    if (state == TLS_FAILED && !s->closing)
        session_tls_fail(s, NULL);
    else if (state == TLS_CLOSED && !s->closing)
        session_close(s); /* close_notify: the client is done */
    else if (s->closing)
        tls_session_shutdown(st->t); /* deferred from a callback (session_tls_close) */
}

static void session_tls_send(struct session *s, const char *data, size_t len)
{
    /* A failed write already failed the session; its next read ends it. */
    s->tls->replied = true;
    tls_session_write(s->tls->t, data, len);
}

static int session_tls_start_again(struct session *s)
{
    (void)s;
    return -1; /* smtp_server refuses a second STARTTLS (503) before it gets here */
}

static void session_tls_close(struct session *s)
{
    if (!s->tls->feeding)
        tls_session_shutdown(s->tls->t);
}

static void session_tls_free(struct session *s)
{
    session_tls_count(s->tls, false); /* the client left mid-handshake */
    tls_session_free(s->tls->t);
    free(s->tls);
    s->tls = NULL;
}

const struct session_transport session_plain = {
    .recv = session_plain_recv,
    .send = session_plain_send,
    .start_tls = session_plain_start_tls,
    .close = session_plain_nothing,
    .free = session_plain_nothing,
};

const struct session_transport session_tls = {
    .recv = session_tls_recv,
    .send = session_tls_send,
    .start_tls = session_tls_start_again,
    .close = session_tls_close,
    .free = session_tls_free,
};

uint64_t session_tls_deadline(const struct session *s)
{
    return s->tls ? s->tls->deadline : 0;
}

void session_tls_timeout(struct session *s)
{
    session_tls_fail(s, "timeout waiting for the TLS handshake (timeouts.starttls)");
}

bool session_tls_active(const struct session *s)
{
    return s->tls && s->tls->opened;
}

void session_tls_received(const struct session *s, struct buf *hdr)
{
    struct tls_session_info i;
    tls_session_info(s->tls->t, &i);
    buf_printf(hdr, "\r\n\t(version=%s cipher=%s bits=%d verify=%s)", i.version, i.cipher, i.bits,
               i.verify);
}

const char *session_tls_macro(const struct session *s, const char *name, char *out, size_t outlen)
{
    if (!session_tls_active(s))
        return NULL;
    struct tls_session_info i;
    tls_session_info(s->tls->t, &i);
    const char *v = NULL;
    if (strcmp(name, "{tls_version}") == 0)
        v = i.version;
    else if (strcmp(name, "{cipher}") == 0)
        v = i.cipher;
    else if (strcmp(name, "{verify}") == 0)
        v = i.verify;
    else if (strcmp(name, "{cert_subject}") == 0)
        v = i.peer_subject[0] ? i.peer_subject : NULL;
    else if (strcmp(name, "{cert_issuer}") == 0)
        v = i.peer_issuer[0] ? i.peer_issuer : NULL;
    else if (strcmp(name, "{cipher_bits}") == 0) {
        snprintf(out, outlen, "%d", i.bits);
        return out;
    }
    if (!v)
        return NULL;
    snprintf(out, outlen, "%s", v);
    return out;
}

unsigned session_tls_bits(const struct session *s)
{
    struct tls_session_info i;
    if (!session_tls_active(s))
        return 0;
    tls_session_info(s->tls->t, &i);
    return i.bits > 0 ? (unsigned)i.bits : 0;
}
