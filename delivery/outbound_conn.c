/*
 * delivery/outbound_conn.c — one outbound connection: the engine's callbacks, the
 * smtp_client it drives, STARTTLS through a client tls_session and the TLS policy checks,
 * sendmail's STARTTLS=client log lines, the AUTH credentials and sendmail's AUTH=client lines.
 * The mirror of core/session.c + session_tls.c.
 */
#include "delivery/outbound_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "queue/mailstats.h"
#include "tls/tls_hmac.h"
#include "util/log.h"
#include "util/netaddr.h"

/* How long a closing connection may take to send its last bytes when no quit timeout is
 * configured. */
#define OUTBOUND_CLOSE_MS 10000

static uint64_t outbound_conn_now(const struct outbound_conn *cn)
{
    return engine_now_ms(cn->w);
}

static const char *outbound_conn_qid(const struct outbound_conn *cn)
{
    return cn->run && cn->run->job.qid ? cn->run->job.qid : "NOQUEUE";
}

/* The peer as named in a failure's text: the host, or a unix socket's path. */
static const char *outbound_conn_peer(const struct outbound_conn *cn)
{
    return cn->unix_socket ? cn->addr : cn->host;
}

/* After every call into the client: its deadline (or the idle one) is the timer. */
static void outbound_conn_rearm(struct outbound_conn *cn)
{
    if (cn->closed || cn->state == OUTBOUND_CONNECTING)
        return;
    if (cn->state == OUTBOUND_IDLE)
        engine_conn_set_timer(cn->w, cn->id, cn->idle_until);
    else
        engine_conn_set_timer(cn->w, cn->id, cn->c ? smtp_client_deadline(cn->c) : 0);
}

/* Closes the socket after what is queued (a close_notify when TLS is up and `clean`). */
static void outbound_conn_close(struct outbound_conn *cn, bool clean)
{
    if (cn->closed)
        return;
    cn->closed = true;
    cn->state = OUTBOUND_CLOSING;
    if (clean && cn->tls_open) {
        if (cn->in_tls_feed)
            cn->shutdown_pending = true;
        else
            tls_session_shutdown(cn->tls);
    }
    uint32_t quit = cn->cs.timeouts.quit ? cn->cs.timeouts.quit : OUTBOUND_CLOSE_MS;
    engine_conn_set_timer(cn->w, cn->id, outbound_conn_now(cn) + quit);
    engine_conn_close(cn->w, cn->id, true);
}

void outbound_conn_end(struct outbound_conn *cn, bool quit)
{
    if (cn->ow)
        outbound_cache_remove(cn->ow, cn);
    if (cn->run) {
        cn->run->conn = NULL;
        cn->run = NULL;
    }
    if (cn->closed)
        return;
    if (quit && cn->c && cn->state != OUTBOUND_CLOSING &&
        smtp_client_phase(cn->c) == SMTP_CLIENT_PHASE_IDLE) {
        cn->state = OUTBOUND_CLOSING;
        smtp_client_quit(cn->c, outbound_conn_now(cn)); /* CLOSED follows: then closed */
        outbound_conn_rearm(cn);
        return;
    }
    outbound_conn_close(cn, false);
}

/* The job's destination slot now follows the connection: a session counts until its
 * QUIT is done and the socket closed (or it waits idle in the cache). */
static void outbound_conn_take_slot(struct outbound_conn *cn, struct outbound_run *r)
{
    cn->slot = r->slot;
    r->slot = false;
}

void outbound_conn_release_slot(struct outbound_conn *cn)
{
    if (cn->slot && cn->ow && cn->ow->s.dest)
        outbound_slot_release(cn->ow, cn->key);
    cn->slot = false;
}

void outbound_conn_orphan(struct outbound_conn *cn)
{
    outbound_conn_release_slot(cn);
    /* The client's transaction points into the job, which its worker frees next: nothing
     * may reach it once the connection's close comes (on_closed would settle it). */
    smtp_client_free(cn->c);
    cn->c = NULL;
    cn->ow = NULL;
    cn->run = NULL;
    cn->closed = true;
    engine_conn_close(cn->w, cn->id, false);
}

/* The connection failed its job before MAIL was accepted: the job tries elsewhere. */
static void outbound_conn_lost(struct outbound_conn *cn, const struct smtp_client_reply *why,
                               bool quit)
{
    struct outbound_run *r = cn->run;
    outbound_conn_end(cn, quit);
    if (r)
        outbound_run_next(r, why);
}

static bool outbound_policy_requires_tls(const struct tlspolicy *p)
{
    return p->level == TLSPOLICY_ENCRYPT || p->level == TLSPOLICY_VERIFY;
}

/* A requirement of the policy not met: deferred, or failed under TLS_Srv's PERM+. */
static void outbound_conn_policy_fail(struct outbound_conn *cn, bool quit, const char *text)
{
    struct smtp_client_reply why;
    bool perm = cn->policy.perm;
    outbound_reply_local(&why, perm ? SMTP_CLIENT_PERM : SMTP_CLIENT_TEMP,
                         perm ? "5.7.10" : "4.7.5", "%s", text);
    log_info("%s: STARTTLS=client, relay=%s, error: %s", outbound_conn_qid(cn), cn->host, why.text);
    outbound_conn_lost(cn, &why, quit);
}

/* The handshake failed (or timed out): under may the same host again in plain text. */
static void outbound_conn_tls_failed(struct outbound_conn *cn, const char *reason)
{
    struct outbound_run *r = cn->run;
    char text[1024];
    if (outbound_policy_requires_tls(&cn->policy)) {
        snprintf(text, sizeof(text), "TLS handshake with %s failed: %s", cn->host, reason);
        outbound_conn_policy_fail(cn, false, text);
        return;
    }
    log_info("%s: STARTTLS=client, relay=%s, error: %s; trying again without STARTTLS",
             outbound_conn_qid(cn), cn->host, reason);
    if (cn->ow && cn->ow->s.dest)
        dest_tls_failed(cn->ow->s.dest, cn->key, outbound_conn_now(cn));
    struct smtp_client_reply why;
    outbound_reply_local(&why, SMTP_CLIENT_TEMP, "4.7.5", "TLS handshake with %s failed: %s",
                         cn->host, reason);
    if (r)
        r->plain_retry = true;
    outbound_conn_lost(cn, &why, false);
}

/* The handshake is done: sendmail's log line, then the policy's checks. */
static void outbound_conn_tls_opened(struct outbound_conn *cn)
{
    struct tls_session_info i;
    char text[1024];
    cn->tls_open = true;
    tls_session_info(cn->tls, &i);
    tls_session_describe(cn->tls, cn->tls_desc, sizeof(cn->tls_desc));
    log_info("%s: STARTTLS=client, relay=%s, %s%s%s%s", outbound_conn_qid(cn), cn->host,
             cn->tls_desc, i.verify_reason[0] ? ", verify_reason=" : "", i.verify_reason,
             i.resumed ? ", resumed" : "");
    if (cn->policy.level == TLSPOLICY_VERIFY && strcmp(i.verify, "OK") != 0) {
        snprintf(text, sizeof(text), "TLS verification of %s failed: %s", cn->host,
                 i.verify_reason[0] ? i.verify_reason : "no certificate");
        outbound_conn_policy_fail(cn, false, text);
        return;
    }
    if (cn->policy.min_bits && (unsigned)i.bits < cn->policy.min_bits) {
        /* sendmail's words */
        snprintf(text, sizeof(text), "encryption too weak %d less than %u", i.bits,
                 cn->policy.min_bits);
        outbound_conn_policy_fail(cn, false, text);
        return;
    }
    if (cn->run)
        snprintf(cn->run->result.tls, sizeof(cn->run->result.tls), "%s", cn->tls_desc);
    smtp_client_tls_started(cn->c, outbound_conn_now(cn));
}

static void outbound_tls_io_send(void *arg, const void *ciphertext, size_t len)
{
    struct outbound_conn *cn = arg;
    engine_conn_send(cn->w, cn->id, ciphertext, len);
}

static void outbound_tls_io_plaintext(void *arg, const char *data, size_t len)
{
    struct outbound_conn *cn = arg;
    if (cn->closed)
        return;
    /* a server's first TLS record may come in the flight that ends the handshake */
    if (!cn->tls_open)
        outbound_conn_tls_opened(cn);
    if (!cn->closed)
        smtp_client_feed(cn->c, data, len, outbound_conn_now(cn));
}

/* A resumed session keeps the verification result of the first one, made against the name
 * that was expected then: that name is part of the key. */
static void outbound_conn_server_id(const struct outbound_conn *cn, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s %s %s", cn->host, cn->addr, cn->policy.match);
}

/* With TLS 1.3 the server's ticket comes after the handshake: by the reply to the EHLO
 * in TLS it has arrived, and the session can be kept for the next connection. */
static void outbound_conn_save_session(struct outbound_conn *cn)
{
    if (!cn->tls_open || cn->tls_saved || !cn->ow || cn->tls_ctx != cn->ow->s.tls ||
        tls_session_resumed(cn->tls))
        return;
    cn->tls_saved = true;
    struct tls_resumption *r = tls_session_resumption(cn->tls);
    char id[sizeof(((struct outbound_resume *)0)->id)];
    outbound_conn_server_id(cn, id, sizeof(id));
    if (r)
        outbound_resume_put(cn->ow, id, r);
}

static void outbound_conn_starttls(struct outbound_conn *cn)
{
    /* SNI and the name checked: the expected name (verify), else the host's own name;
     * an address literal has no name to send or check. */
    const char *name = cn->policy.match[0]       ? cn->policy.match
                       : netaddr_is_ip(cn->host) ? NULL
                                                 : cn->host;
    cn->tls_io = (struct tls_session_io){cn, outbound_tls_io_send, outbound_tls_io_plaintext};
    cn->tls = cn->tls_ctx ? tls_session_new(cn->tls_ctx, &cn->tls_io, name) : NULL;
    if (!cn->tls) {
        outbound_conn_tls_failed(cn, "cannot create a TLS session");
        return;
    }
    /* only a session made with this very context (entries go when the context changes) */
    char id[sizeof(((struct outbound_resume *)0)->id)];
    outbound_conn_server_id(cn, id, sizeof(id));
    const struct tls_resumption *res =
        cn->ow && cn->tls_ctx == cn->ow->s.tls ? outbound_resume_get(cn->ow, id) : NULL;
    if (res)
        tls_session_resume(cn->tls, res);
    if (tls_session_start(cn->tls) == TLS_FAILED)
        outbound_conn_tls_failed(cn, tls_session_error(cn->tls));
}

/* The credentials for the server connected to, copied into the connection: the
 * configuration they come from may be replaced (a reload) while the session runs. 0, or -1
 * when memory ran out. */
static int outbound_conn_auth_take(struct outbound_conn *cn, const struct outbound_settings *s)
{
    const struct smtp_client_auth *a =
        s->authinfo && !cn->unix_socket ? s->authinfo(s->authinfo_arg, cn->host, cn->addr) : NULL;
    if (!a)
        return 0;
    const char *src[] = {a->user, a->authid, a->password, a->mechs};
    const char **dst[] = {&cn->auth.user, &cn->auth.authid, &cn->auth.password, &cn->auth.mechs};
    size_t len = 0;
    for (size_t i = 0; i < 4; i++)
        len += (src[i] ? strlen(src[i]) : 0) + 1;
    char *p = cn->auth_copy = malloc(len);
    if (!p)
        return -1;
    cn->auth_copy_len = len;
    for (size_t i = 0; i < 4; i++) {
        size_t n = src[i] ? strlen(src[i]) + 1 : 0;
        *dst[i] = src[i] ? memcpy(p, src[i], n) : NULL;
        p += n;
    }
    cn->auth.allow_plaintext = s->auth_without_tls;
    cn->auth.hmac_md5 = tls_hmac_md5;
    cn->cs.auth = &cn->auth;
    return 0;
}

static bool outbound_auth_same_str(const char *a, const char *b)
{
    return !a || !*a ? !b || !*b : b && strcmp(a, b) == 0;
}

bool outbound_conn_auth_current(const struct outbound_conn *cn)
{
    const struct outbound_settings *s = cn->ow ? &cn->ow->s : NULL;
    const struct smtp_client_auth *now = s && s->authinfo && !cn->unix_socket
                                             ? s->authinfo(s->authinfo_arg, cn->host, cn->addr)
                                             : NULL;
    const struct smtp_client_auth *then = cn->cs.auth;
    if (!now || !then)
        return !now && !then;
    return outbound_auth_same_str(now->user, then->user) &&
           outbound_auth_same_str(now->authid, then->authid) &&
           outbound_auth_same_str(now->password, then->password) &&
           outbound_auth_same_str(now->mechs, then->mechs) &&
           s->auth_without_tls == then->allow_plaintext;
}

/* sendmail's AUTH=client lines for a refused AUTH: a 5xx is the credentials', anything else
 * (454, a timeout, a lost connection) a temporary failure. */
static void outbound_conn_auth_failed(struct outbound_conn *cn, const struct smtp_client_reply *r)
{
    const char *mech = smtp_client_caps(cn->c)->auth_mech;
    if (r->code >= 500)
        log_info("%s: AUTH=client, relay=%s, mech=%s, authentication failed: %d %s %s",
                 outbound_conn_qid(cn), cn->host, mech ? mech : "?", r->code, r->enh, r->text);
    else
        log_info("%s: AUTH=client, relay=%s, temporary failure, connection abort: %d %s %s",
                 outbound_conn_qid(cn), cn->host, r->code, r->enh, r->text);
}

static void outbound_conn_ready(struct outbound_conn *cn, const struct smtp_client_event *ev)
{
    struct outbound_run *r = cn->run;
    const struct smtp_client_caps *caps = smtp_client_caps(cn->c);
    if (!r) {
        outbound_conn_end(cn, true);
        return;
    }
    r->any_session = true;
    outbound_conn_save_session(cn);
    if (caps->authenticated) /* sendmail's line; these mechanisms have no security layer */
        log_info("%s: AUTH=client, relay=%s, mech=%s, bits=0", outbound_conn_qid(cn), cn->host,
                 caps->auth_mech);
    if (!caps->in_tls && outbound_policy_requires_tls(&cn->policy)) {
        char text[1024];
        if (ev->tls_refused && ev->reply)
            snprintf(text, sizeof(text), "STARTTLS refused by %s: %d %s", cn->host, ev->reply->code,
                     ev->reply->text);
        else
            snprintf(text, sizeof(text), "TLS is required (%s) but %s offers no STARTTLS",
                     cn->policy.source, cn->host);
        outbound_conn_policy_fail(cn, true, text);
        return;
    }
    if (ev->tls_refused) {
        log_info("%s: STARTTLS=client, relay=%s, error: STARTTLS refused: %d %s",
                 outbound_conn_qid(cn), cn->host, ev->reply ? ev->reply->code : 0,
                 ev->reply ? ev->reply->text : "");
        if (cn->ow && cn->ow->s.dest)
            dest_tls_failed(cn->ow->s.dest, cn->key, outbound_conn_now(cn));
    }
    r->sent = true;
    cn->rcpt_replies = 0;
    if (smtp_client_send(cn->c, &r->job.msg, outbound_conn_now(cn)) < 0) {
        struct smtp_client_reply why;
        outbound_reply_local(&why, SMTP_CLIENT_TEMP, "4.3.0", "Cannot start the transaction");
        outbound_run_set_all(r, &why);
        outbound_conn_end(cn, true);
        outbound_run_finish(r);
    }
}

static void outbound_conn_results(struct outbound_run *r, const struct smtp_client_event *ev)
{
    for (size_t i = 0; i < r->job.msg.n_rcpts; i++) {
        const struct smtp_client_reply *p = i < ev->n_rcpts ? &ev->rcpts[i] : ev->reply;
        r->rcpts[i].outcome = p->outcome == SMTP_CLIENT_OK     ? OUTBOUND_DELIVERED
                              : p->outcome == SMTP_CLIENT_PERM ? OUTBOUND_FAILED
                                                               : OUTBOUND_DEFERRED;
        r->rcpts[i].reply = *p;
    }
}

static void outbound_conn_done(struct outbound_conn *cn, const struct smtp_client_event *ev)
{
    struct outbound_run *r = cn->run;
    if (!r)
        return;
    /* a 4xx to MAIL (no RCPT was answered): the next MX may take it, as sendmail tries */
    if (!cn->rcpt_replies && !ev->n_accepted && ev->reply && !ev->reply->local &&
        ev->reply->outcome == SMTP_CLIENT_TEMP) {
        outbound_conn_lost(cn, ev->reply, true);
        return;
    }
    outbound_conn_results(r, ev);
    r->result.dsn = ev->dsn;
    if (cn->ow && cn->ow->s.dest)
        dest_succeeded(cn->ow->s.dest, cn->key);
    outbound_conn_take_slot(cn, r);
    cn->run = NULL;
    r->conn = NULL;
    if (cn->ow)
        outbound_cache_put(cn->ow, cn);
    outbound_run_finish(r);
}

static void outbound_conn_failed(struct outbound_conn *cn, const struct smtp_client_event *ev)
{
    struct outbound_run *r = cn->run;
    if (!r) {
        outbound_conn_end(cn, false);
        return;
    }
    if (ev->phase == SMTP_CLIENT_PHASE_STARTTLS && cn->tls) {
        outbound_conn_tls_failed(cn, ev->reply ? ev->reply->text : "timeout");
        return;
    }
    if (ev->phase == SMTP_CLIENT_PHASE_AUTH) {
        outbound_conn_auth_failed(cn, ev->reply);
        r->any_session = true; /* the host is up: no host status for a refused login */
        outbound_conn_lost(cn, ev->reply, false);
        return;
    }
    switch (ev->phase) {
    case SMTP_CLIENT_PHASE_GREETING:
    case SMTP_CLIENT_PHASE_HELO:
    case SMTP_CLIENT_PHASE_STARTTLS:
    case SMTP_CLIENT_PHASE_IDLE:
    case SMTP_CLIENT_PHASE_RSET:
    case SMTP_CLIENT_PHASE_MAIL:
        /* nothing accepted yet: another address may do better */
        outbound_conn_lost(cn, ev->reply, false);
        return;
    default:
        break;
    }
    /* past MAIL: the recipients' outcomes are final for this attempt */
    if (ev->rcpts)
        outbound_conn_results(r, ev);
    else
        outbound_run_set_all(r, ev->reply);
    outbound_conn_take_slot(cn, r);
    outbound_conn_end(cn, false);
    outbound_run_finish(r);
}

static void outbound_conn_event(void *arg, const struct smtp_client_event *ev)
{
    struct outbound_conn *cn = arg;
    switch (ev->type) {
    case SMTP_CLIENT_EV_READY:
        outbound_conn_ready(cn, ev);
        break;
    case SMTP_CLIENT_EV_STARTTLS:
        outbound_conn_starttls(cn);
        break;
    case SMTP_CLIENT_EV_RCPT:
        cn->rcpt_replies++;
        break;
    case SMTP_CLIENT_EV_DONE:
        outbound_conn_done(cn, ev);
        break;
    case SMTP_CLIENT_EV_FAILED:
        outbound_conn_failed(cn, ev);
        break;
    case SMTP_CLIENT_EV_CLOSED:
        outbound_conn_close(cn, true);
        break;
    }
}

static void outbound_conn_io_send(void *arg, const void *data, size_t len)
{
    struct outbound_conn *cn = arg;
    if (cn->tls)
        tls_session_write(cn->tls, data, len); /* a failed write fails the next read */
    else
        engine_conn_send(cn->w, cn->id, data, len);
}

static void outbound_on_connected(void *ctx)
{
    struct outbound_conn *cn = ctx;
    if (!cn->run) {
        outbound_conn_close(cn, false);
        return;
    }
    cn->state = OUTBOUND_SESSION;
    cn->run->result.connected = true;
    cn->c = smtp_client_new(&cn->cs, &cn->io, outbound_conn_now(cn));
    if (!cn->c) {
        struct smtp_client_reply why;
        outbound_reply_local(&why, SMTP_CLIENT_TEMP, "4.3.0", "Out of memory");
        outbound_conn_lost(cn, &why, false);
        return;
    }
    log_debug("%s: connected to %s [%s]", outbound_conn_qid(cn), cn->host, cn->addr);
    mailstats_conn(MAILSTATS_CONN_TO);
    outbound_conn_rearm(cn);
}

static void outbound_on_recv(void *ctx, const char *data, size_t len)
{
    struct outbound_conn *cn = ctx;
    if (!cn->c || cn->closed)
        return;
    if (!cn->tls) {
        smtp_client_feed(cn->c, data, len, outbound_conn_now(cn));
        outbound_conn_rearm(cn);
        return;
    }
    cn->in_tls_feed = true;
    enum tls_state st = tls_session_feed(cn->tls, data, len);
    cn->in_tls_feed = false;
    if (cn->shutdown_pending) {
        cn->shutdown_pending = false;
        tls_session_shutdown(cn->tls);
    }
    if (cn->closed)
        return;
    if ((st == TLS_OPEN || st == TLS_CLOSED) && !cn->tls_open)
        outbound_conn_tls_opened(cn);
    if (cn->closed)
        return;
    if (st == TLS_FAILED) {
        char desc[512];
        if (cn->tls_open) /* a record error in the session: the peer is gone for us */
            smtp_client_eof(cn->c, outbound_conn_now(cn));
        else
            outbound_conn_tls_failed(cn, tls_session_describe(cn->tls, desc, sizeof(desc)));
    } else if (st == TLS_CLOSED) {
        smtp_client_eof(cn->c, outbound_conn_now(cn));
    }
    outbound_conn_rearm(cn);
}

static void outbound_on_drained(void *ctx)
{
    struct outbound_conn *cn = ctx;
    if (!cn->c || cn->closed)
        return;
    smtp_client_drained(cn->c, outbound_conn_now(cn));
    outbound_conn_rearm(cn);
}

static void outbound_on_timer(void *ctx)
{
    struct outbound_conn *cn = ctx;
    struct smtp_client_reply why;
    if (cn->closed)
        return;
    switch (cn->state) {
    case OUTBOUND_CONNECTING:
        outbound_reply_local(&why, SMTP_CLIENT_TEMP, "4.4.1", "Connection timed out with %s.",
                             outbound_conn_peer(cn));
        outbound_conn_lost(cn, &why, false);
        return;
    case OUTBOUND_IDLE:
        outbound_conn_end(cn, true); /* confMCI_CACHE_TIMEOUT */
        return;
    case OUTBOUND_SESSION:
    case OUTBOUND_CLOSING:
        smtp_client_tick(cn->c, outbound_conn_now(cn));
        outbound_conn_rearm(cn);
        return;
    }
}

/* A connect that failed for want of something here, not because of the destination. */
static bool outbound_errno_is_local(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM || err == ECANCELED ||
           err == EADDRNOTAVAIL;
}

static void outbound_conn_free(struct outbound_conn *cn)
{
    if (cn->auth_copy)
        explicit_bzero(cn->auth_copy, cn->auth_copy_len);
    free(cn->auth_copy);
    smtp_client_free(cn->c);
    tls_session_free(cn->tls);
    if (cn->tls_ctx)
        tls_ctx_unref(cn->tls_ctx);
    free(cn);
}

static void outbound_on_closed(void *ctx, int err)
{
    struct outbound_conn *cn = ctx;
    struct outbound_worker *ow = cn->ow;
    if (ow) {
        outbound_cache_remove(ow, cn);
        if (cn->prev)
            cn->prev->next = cn->next;
        else
            ow->conns = cn->next;
        if (cn->next)
            cn->next->prev = cn->prev;
    }
    cn->closed = true;
    outbound_conn_release_slot(cn);
    struct outbound_run *r = cn->run;
    if (r && cn->state == OUTBOUND_CONNECTING) {
        struct smtp_client_reply why;
        r->local_trouble = r->local_trouble || outbound_errno_is_local(err);
        /* a local server's listen queue is full: it is busy with its other clients */
        r->backlog_full = r->backlog_full || (cn->unix_socket && err == EAGAIN);
        if (err == ECONNREFUSED)
            outbound_reply_local(&why, SMTP_CLIENT_TEMP, "4.4.1", "Connection refused by %s.",
                                 outbound_conn_peer(cn));
        else if (err == ETIMEDOUT)
            outbound_reply_local(&why, SMTP_CLIENT_TEMP, "4.4.1", "Connection timed out with %s.",
                                 outbound_conn_peer(cn));
        else
            outbound_reply_local(&why, SMTP_CLIENT_TEMP, "4.4.1", "%s with %s.",
                                 err ? strerror(err) : "Connection closed", outbound_conn_peer(cn));
        cn->run = NULL;
        r->conn = NULL;
        outbound_run_next(r, &why);
    } else if (cn->c) {
        /* the peer closed: FAILED (or CLOSED after QUIT) decides for the job */
        smtp_client_eof(cn->c, engine_now_ms(cn->w));
        if (cn->run) { /* an event that did not detach it: defer what is left */
            struct smtp_client_reply why;
            outbound_reply_local(&why, SMTP_CLIENT_TEMP, "4.4.2", "Connection to %s lost",
                                 outbound_conn_peer(cn));
            r = cn->run;
            cn->run = NULL;
            r->conn = NULL;
            outbound_run_next(r, &why);
        }
    }
    outbound_conn_free(cn);
}

static const struct engine_conn_callbacks outbound_conn_callbacks = {
    .on_recv = outbound_on_recv,
    .on_drained = outbound_on_drained,
    .on_timer = outbound_on_timer,
    .on_closed = outbound_on_closed,
    .on_connected = outbound_on_connected,
};

int outbound_conn_open(struct outbound_run *r, const struct outbound_target *t,
                       struct smtp_client_reply *why)
{
    struct outbound_worker *ow = r->ow;
    uint64_t now = engine_now_ms(ow->w);
    struct outbound_conn *cn = calloc(1, sizeof(*cn));
    if (!cn) {
        outbound_reply_local(why, SMTP_CLIENT_TEMP, "4.3.0", "Out of memory");
        return -1;
    }
    cn->w = ow->w;
    cn->ow = ow;
    snprintf(cn->key, sizeof(cn->key), "%s", r->key);
    snprintf(cn->host, sizeof(cn->host), "%s", t->host);
    cn->unix_socket = t->addr.ss_family == AF_UNIX;
    if (cn->unix_socket)
        snprintf(cn->addr, sizeof(cn->addr), "%s",
                 ((const struct sockaddr_un *)&t->addr)->sun_path);
    else
        netaddr_format((const struct sockaddr *)&t->addr, cn->addr, sizeof(cn->addr));
    snprintf(r->result.relay_host, sizeof(r->result.relay_host), "%s", cn->host);
    snprintf(r->result.relay_addr, sizeof(r->result.relay_addr), "%s", cn->addr);
    r->result.tls[0] = '\0';
    cn->policy = r->policy;
    if (!cn->unix_socket)
        tlspolicy_for_server(ow->s.tls_policy, cn->host, cn->addr, &cn->policy);
    bool required = outbound_policy_requires_tls(&cn->policy);
    if (cn->policy.unsupported || (required && !ow->s.tls)) {
        r->local_trouble = true; /* our configuration, not the destination */
        enum smtp_client_outcome o = cn->policy.perm ? SMTP_CLIENT_PERM : SMTP_CLIENT_TEMP;
        const char *enh = cn->policy.perm ? "5.7.10" : "4.7.5";
        if (cn->policy.unsupported)
            outbound_reply_local(why, o, enh, "TLS requirement that ringmail cannot check: %s",
                                 cn->policy.source);
        else
            outbound_reply_local(why, o, enh,
                                 "TLS is required (%s) but no client TLS context is set up",
                                 cn->policy.source);
        free(cn);
        return -1;
    }
    bool starttls = ow->s.tls && cn->policy.level != TLSPOLICY_NONE && !r->plain_retry &&
                    !(cn->policy.level == TLSPOLICY_MAY && ow->s.dest &&
                      dest_tls_broken(ow->s.dest, r->key, now));
    snprintf(cn->helo, sizeof(cn->helo), "%s", ow->s.helo_name);
    cn->cs = (struct smtp_client_settings){.helo_name = cn->helo,
                                           .starttls = starttls,
                                           .lmtp = strcmp(r->job.route->mailer, "lmtp") == 0,
                                           .timeouts = ow->s.timeouts};
    cn->io = (struct smtp_client_io){cn, outbound_conn_io_send, outbound_conn_event};
    if (outbound_conn_auth_take(cn, &ow->s) < 0) {
        outbound_reply_local(why, SMTP_CLIENT_TEMP, "4.3.0", "Out of memory");
        outbound_conn_free(cn);
        return -1;
    }
    cn->tls_ctx = starttls ? tls_ctx_ref(ow->s.tls) : NULL;
    socklen_t len = t->addr.ss_family == AF_INET6  ? sizeof(struct sockaddr_in6)
                    : t->addr.ss_family == AF_UNIX ? sizeof(struct sockaddr_un)
                                                   : sizeof(struct sockaddr_in);
    if (engine_connect(ow->w, (const struct sockaddr *)&t->addr, len, NULL, 0,
                       &outbound_conn_callbacks, cn, &cn->id) < 0) {
        r->local_trouble = true; /* EINVAL, ENOMEM, ECANCELED: never the host's doing */
        outbound_reply_local(why, SMTP_CLIENT_TEMP, "4.4.1", "%s with %s.", strerror(errno),
                             cn->host);
        outbound_conn_free(cn);
        return -1;
    }
    uint32_t timeout =
        r->job.first_attempt && ow->s.iconnect_ms ? ow->s.iconnect_ms : ow->s.connect_ms;
    if (timeout)
        engine_conn_set_timer(ow->w, cn->id, now + timeout);
    cn->state = OUTBOUND_CONNECTING;
    cn->run = r;
    r->conn = cn;
    cn->next = ow->conns;
    if (ow->conns)
        ow->conns->prev = cn;
    ow->conns = cn;
    return 0;
}

int outbound_conn_send(struct outbound_conn *cn, struct outbound_run *r)
{
    cn->run = r;
    r->conn = cn;
    cn->state = OUTBOUND_SESSION;
    snprintf(r->result.relay_host, sizeof(r->result.relay_host), "%s", cn->host);
    snprintf(r->result.relay_addr, sizeof(r->result.relay_addr), "%s", cn->addr);
    snprintf(r->result.tls, sizeof(r->result.tls), "%s", cn->tls_open ? cn->tls_desc : "");
    r->result.connected = true;
    r->any_session = true;
    r->sent = true;
    cn->rcpt_replies = 0;
    if (smtp_client_send(cn->c, &r->job.msg, outbound_conn_now(cn)) < 0) {
        r->sent = false;
        outbound_conn_end(cn, false);
        return -1;
    }
    outbound_conn_rearm(cn);
    return 0;
}
