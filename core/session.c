#include "core/session.h"
#include "core/session_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "core/version.h"
#include "queue/spool.h"
#include "smtp/smtp_relay.h"
#include "smtp/smtp_server.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/netaddr.h"

/* Workers find the daemon through this pointer, set once before the engine starts. */
static struct daemon *session_daemon;

void session_set_daemon(struct daemon *d)
{
    session_daemon = d;
}

const char *session_relay(const struct session *s, char *out, size_t outlen)
{
    /* sendmail's spelling: IPv6 clients are shown as address literals, [IPv6:::1]. */
    snprintf(out, outlen, "[%s%s]", strchr(s->addr, ':') ? "IPv6:" : "", s->addr);
    return out;
}

static const char *session_qid(const struct session *s)
{
    return s->msg ? s->qid : "NOQUEUE";
}

static void session_rfc5322_date(char *out, size_t outlen)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(out, outlen, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

static void session_say_shutdown(struct session *s);

/* After every call into the state machine: its deadline becomes the connection's timer,
 * and a draining worker lets the session go as soon as no transaction is in progress. */
static void session_rearm(struct session *s)
{
    if (s->closing)
        return;
    if (s->dw->draining && !s->msg) {
        session_say_shutdown(s);
        return;
    }
    /* While the handshake runs the state machine has no deadline: timeouts.starttls. */
    uint64_t tls = session_tls_deadline(s);
    engine_conn_set_timer(s->dw->w, s->id, tls ? tls : smtp_server_deadline(s->smtp));
}

static void session_drop_message(struct session *s)
{
    if (!s->msg)
        return;
    if (s->committing)
        spool_msg_detach(s->msg);
    else
        spool_msg_abort(s->msg);
    s->msg = NULL;
    s->committing = false;
}

void session_close(struct session *s)
{
    if (s->closing)
        return;
    s->closing = true;
    s->tp->close(s);
    engine_conn_set_timer(s->dw->w, s->id, 0);
    engine_conn_close(s->dw->w, s->id, true);
}

static void session_io_reply(void *arg, const char *bytes, size_t len)
{
    struct session *s = arg;
    s->tp->send(s, bytes, len);
}

void session_smtp_input(struct session *s, const char *data, size_t len)
{
    if (smtp_server_feed(s->smtp, data, len, engine_now_ms(s->dw->w)))
        engine_conn_pause_recv(s->dw->w, s->id);
}

/* RFC 3848 (and 6531): an "S" for a session in TLS, as sendmail's $r says ESMTPS. */
static const char *session_proto(const struct session *s)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    bool tls = session_tls_active(s);
    if (!t->esmtp)
        return "SMTP";
    if (t->mail_params.smtputf8)
        return tls ? "UTF8SMTPS" : "UTF8SMTP";
    return tls ? "ESMTPS" : "ESMTP";
}

/* The reply an access entry's REJECT or ERROR: asks for: sendmail's "550 5.7.1 Access
 * denied", or the entry's own code, status and text. */
static void session_access_reply(const struct access_entry *a, struct smtp_addr_error *r)
{
    bool error = a->action == ACCESS_ERROR;
    r->code = error && a->code[0] ? atoi(a->code) : 550;
    r->enh = a->dsn[0] ? a->dsn : r->code / 100 == 4 ? "4.7.1" : "5.7.1";
    r->reason = error && a->text && a->text[0] ? a->text : "Access denied";
}

static bool session_access_refuses(const struct access_entry *a)
{
    return a && (a->action == ACCESS_REJECT || a->action == ACCESS_ERROR);
}

/* To:domain RELAY (or a bare domain key) opens that domain as relay_domains does; To:user@domain
 * that one address. Never `user@` (that local part at every domain would be an open relay),
 * and never for a path that asks for further routing (user%host@domain and the other relay
 * tricks, smtp_relay.h), whatever the domain. */
static bool session_access_relays(const struct access_entry *a, const struct smtp_path *rcpt)
{
    size_t len = a ? strlen(a->key) : 0;
    return a && a->action == ACCESS_RELAY && len && a->key[len - 1] != '@' &&
           !smtp_path_has_routing(rcpt) && !rcpt->addr_literal;
}

static int session_check_rcpt(void *arg, const struct smtp_path *rcpt, struct smtp_addr_error *err)
{
    struct session *s = arg;
    const struct access_entry *to =
        rcpt->null ? NULL : access_lookup_address(&s->rc->cfg->map.access, "to", rcpt->mailbox);
    if (session_access_refuses(to)) {
        session_access_reply(to, err);
        return -1;
    }
    if (smtp_relay_check(&s->rc->relay, (const struct sockaddr *)&s->peer, rcpt) !=
            SMTP_RELAY_DENIED ||
        s->access_relay || session_access_relays(to, rcpt))
        return 0;
    err->code = 550;
    err->enh = "5.7.1";
    err->reason = "Relaying denied";
    return -1;
}

static void session_write_received(struct session *s)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    char date[64];
    struct buf hdr;

    session_rfc5322_date(date, sizeof(date));
    buf_init(&hdr, 0);
    /* sendmail's Received: layout, so downstream parsers and operators see the familiar
     * shape; "for <rcpt>" only with exactly one recipient, as sendmail does (privacy). */
    char relay[64];
    buf_printf(&hdr, "Received: from %s (%s)\r\n\tby %s (ringmail/%s) with %s id %s",
               t->helo ? t->helo : s->addr, session_relay(s, relay, sizeof(relay)),
               s->rc->cfg->hostname, RINGMAIL_VERSION, session_proto(s), s->qid);
    if (session_tls_active(s))
        session_tls_received(s, &hdr);
    if (t->n_rcpts == 1)
        buf_printf(&hdr, "\r\n\tfor <%s>", t->rcpts[0].mailbox);
    buf_printf(&hdr, "; %s\r\n", date);
    s->size = hdr.len; /* size= in the log counts the stored message, as sendmail's does */
    if (hdr.data)
        spool_msg_write(s->msg, hdr.data, hdr.len);
    buf_free(&hdr);
}

static void session_commit_done(void *arg, int err);

static int session_commit(struct session *s, const struct smtp_event *ev)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    struct envelope env;
    memset(&env, 0, sizeof(env));

    env.rcpts = calloc(t->n_rcpts, sizeof(*env.rcpts));
    if (!env.rcpts)
        return -ENOMEM;
    env.sender = t->sender;
    env.created = time(NULL);
    env.helo = t->helo;
    env.client_addr = s->addr;
    env.proto = (char *)session_proto(s); /* only read during the commit, as the rest */
    env.daemon = session_daemon->listener_names[s->listener];
    env.msgid = (char *)ev->msgid;
    env.body = t->mail_params.body == SMTP_BODY_8BITMIME ? 8
               : t->mail_params.body == SMTP_BODY_7BIT   ? 7
                                                         : 0;
    env.smtputf8 = t->mail_params.smtputf8;
    env.dsn_ret = t->mail_params.ret == SMTP_RET_FULL   ? 1
                  : t->mail_params.ret == SMTP_RET_HDRS ? 2
                                                        : 0;
    env.envid = t->mail_params.envid[0] ? (char *)t->mail_params.envid : NULL;
    env.n_rcpts = t->n_rcpts;
    for (size_t i = 0; i < t->n_rcpts; i++) {
        env.rcpts[i].addr = t->rcpts[i].mailbox;
        env.rcpts[i].orcpt = t->rcpts[i].params.orcpt[0] ? (char *)t->rcpts[i].params.orcpt : NULL;
        env.rcpts[i].notify = t->rcpts[i].params.notify; /* same bit values as ENV_NOTIFY_* */
        env.rcpts[i].state = ENV_RCPT_PENDING;
    }
    s->committing = true;
    /* The envelope is only read during the call; the strings stay owned by the server. */
    spool_msg_commit(s->msg, &env, session_commit_done, s);
    free(env.rcpts);
    return 0;
}

static void session_log_accepted(struct session *s)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    char relay[64];
    log_info("%s: from=<%s>, size=%llu, class=0, nrcpts=%zu, msgid=%s, proto=%s, daemon=%s, "
             "relay=%s",
             s->qid, t->sender ? t->sender : "", (unsigned long long)s->size, t->n_rcpts,
             s->msgid ? s->msgid : "", session_proto(s),
             session_daemon->listener_names[s->listener], session_relay(s, relay, sizeof(relay)));
}

/* Tells the parked state machine how the commit ended. Never called from inside an
 * smtp_server call: the state machine is not re-entrant. */
static void session_deliver_commit_result(struct session *s, int err)
{
    struct engine_worker *w = s->dw->w;

    if (err == 0)
        session_log_accepted(s);
    else
        log_error("%s: queue commit failed: %s", s->qid, strerror(-err));
    free(s->msgid);
    s->msgid = NULL;
    s->in_smtp = true;
    smtp_server_commit_done(s->smtp, err == 0, s->qid, engine_now_ms(w));
    s->in_smtp = false;
    /* Held pipelined input was processed above; receiving may resume. */
    engine_conn_resume_recv(w, s->id);
}

/* Leaving a call into the state machine: results that arrived meanwhile go in now (they
 * may start further commits, hence the loop), then the timer follows the new deadline. */
static void session_after_smtp(struct session *s)
{
    s->in_smtp = false;
    while (s->commit_result_pending && !s->closing) {
        s->commit_result_pending = false;
        session_deliver_commit_result(s, s->commit_result);
    }
    session_rearm(s);
}

static void session_commit_done(void *arg, int err)
{
    struct session *s = arg;

    s->committing = false;
    s->msg = NULL; /* the spool frees it after this call */
    if (s->in_smtp) {
        s->commit_result_pending = true;
        s->commit_result = err;
        return;
    }
    session_deliver_commit_result(s, err);
    session_after_smtp(s);
}

static void session_log_reject(struct session *s, const struct smtp_event *ev)
{
    const char *ruleset = NULL;
    char relay[64];

    if (strcmp(ev->cmd, "RCPT") == 0)
        ruleset = "check_rcpt";
    else if (strcmp(ev->cmd, "MAIL") == 0)
        ruleset = "check_mail";
    if (!ruleset) {
        log_debug("%s: %s %s: %s", session_qid(s), ev->cmd, ev->arg ? ev->arg : "", ev->reply);
        return;
    }
    log_info("%s: ruleset=%s, arg1=%s, relay=%s, reject=%s", session_qid(s), ruleset,
             ev->arg ? ev->arg : "", session_relay(s, relay, sizeof(relay)), ev->reply);
}

static void session_io_event(void *arg, const struct smtp_event *ev)
{
    struct session *s = arg;

    switch (ev->type) {
    case SMTP_EV_MAIL:
        /* The queue id exists from MAIL on, as in sendmail, so reject lines carry it. */
        session_drop_message(s);
        s->msg = spool_msg_new(s->dw->sw, s->qid);
        if (!s->msg)
            log_error("cannot start a queue file: out of memory");
        break;
    case SMTP_EV_REJECT:
        session_log_reject(s, ev);
        break;
    case SMTP_EV_DATA_START:
        if (!s->msg)
            s->msg = spool_msg_new(s->dw->sw, s->qid);
        if (s->msg)
            session_write_received(s);
        break;
    case SMTP_EV_DATA:
        if (s->msg)
            spool_msg_write(s->msg, ev->data, ev->len);
        break;
    case SMTP_EV_DATA_END:
        s->size += ev->size;
        s->msgid = ev->msgid ? strdup(ev->msgid) : NULL;
        if (!s->msg || session_commit(s, ev) < 0) {
            session_drop_message(s);
            session_commit_done(s, -ENOMEM);
        }
        break;
    case SMTP_EV_DATA_ABORT:
        if (s->msg)
            log_info("%s: message refused: %s", s->qid, ev->reply ? ev->reply : "aborted");
        session_drop_message(s);
        break;
    case SMTP_EV_RSET:
        session_drop_message(s);
        break;
    case SMTP_EV_CLOSE:
        if (ev->reason && strcmp(ev->reason, "quit") != 0) {
            char relay[64];
            log_info("%s: closing connection from %s: %s", session_qid(s),
                     session_relay(s, relay, sizeof(relay)), ev->reason);
        }
        session_drop_message(s);
        session_close(s);
        break;
    case SMTP_EV_STARTTLS:
        /* The 220 went out in plaintext; the rest of this input is discarded by the state
         * machine, and what arrives next is the client's TLS handshake. */
        if (s->tp->start_tls(s) < 0)
            session_close(s);
        break;
    case SMTP_EV_HELO:
    case SMTP_EV_RCPT:
        break;
    }
}

/* Runs before the worker serves anyone; a worker without its spool could only refuse mail,
 * so failing here stops the daemon (at start-up, with the reason in the log). */
static void *session_worker_init(struct engine_worker *w, unsigned index)
{
    struct daemon_worker *dw = calloc(1, sizeof(*dw));
    struct spool_worker *sw = dw ? spool_worker_new(session_daemon->spool, w) : NULL;
    if (!sw) {
        log_error("worker %u: cannot set up its spool writer: out of memory", index);
        exit(EX_OSERR);
    }
    dw->d = session_daemon;
    dw->w = w;
    dw->sw = sw;
    dw->rc = daemon_current(session_daemon);
    return dw;
}

static void session_worker_fini(struct engine_worker *w, void *worker_ctx)
{
    (void)w;
    struct daemon_worker *dw = worker_ctx;
    if (!dw)
        return;
    spool_worker_free(dw->sw);
    runconf_unref(dw->rc);
    free(dw);
    atomic_fetch_sub(&session_daemon->workers_running, 1);
}

static void session_send_reply(struct daemon_worker *dw, engine_conn_id id, int code,
                               const char *enh, const char *text)
{
    char line[512];
    size_t n = smtp_reply_format(line, sizeof(line), code, enh, text);
    engine_conn_send(dw->w, id, line, n);
}

/* "421 4.3.2 <host> <text>": the answer to a connection we will not serve. */
static void session_send_421(struct daemon_worker *dw, engine_conn_id id, const char *text)
{
    char reason[320];
    snprintf(reason, sizeof(reason), "%s %s", dw->rc->cfg->hostname, text);
    session_send_reply(dw, id, 421, "4.3.2", reason);
}

static void *session_refuse(struct daemon_worker *dw, engine_conn_id id, const char *text)
{
    session_send_421(dw, id, text);
    return NULL;
}

/* Connect:address REJECT or ERROR: in the access map. sendmail greets such a client and then
 * refuses every command but QUIT; ringmail answers the greeting itself with the refusal and
 * closes (RFC 5321 3.1 lets a server refuse at connection time): the client learns the same
 * thing at once, and never holds a session slot. "550 5.7.1 <host> Access denied", or the
 * entry's ERROR: reply as written. */
static void *session_refuse_access(struct daemon_worker *dw, engine_conn_id id, const char *addr,
                                   const struct access_entry *a)
{
    struct smtp_addr_error r;
    char text[320];
    session_access_reply(a, &r);
    if (a->action == ACCESS_ERROR && a->text && a->text[0])
        snprintf(text, sizeof(text), "%s", r.reason);
    else
        snprintf(text, sizeof(text), "%s %s", dw->rc->cfg->hostname, r.reason);
    log_info("NOQUEUE: ruleset=check_relay, arg1=[%s], arg2=%s, relay=[%s], reject=%d %s %s", addr,
             addr, addr, r.code, r.enh, text);
    session_send_reply(dw, id, r.code, r.enh, text);
    return NULL;
}

static void session_say_shutdown(struct session *s)
{
    session_send_421(s->dw, s->id, "Shutting down");
    session_close(s);
}

static void *session_on_accept(struct engine_worker *w, engine_conn_id id, unsigned listener,
                               const struct sockaddr *peer, socklen_t peerlen,
                               const struct sockaddr *local, socklen_t locallen)
{
    (void)local;
    (void)locallen;
    struct daemon_worker *dw = engine_worker_ctx(w);
    const struct config *cfg = dw->rc->cfg;
    char addr[48];

    netaddr_format(peer, addr, sizeof(addr));
    if (dw->draining)
        return session_refuse(dw, id, "Shutting down");
    /* By address only: the client's host name is never looked up (docs/config.md). */
    const struct access_entry *connect = access_lookup_ip(&cfg->map.access, "connect", addr);
    if (session_access_refuses(connect))
        return session_refuse_access(dw, id, addr, connect);
    switch (connlimit_acquire(dw->d->conns, peer, cfg->max_connections,
                              cfg->max_connections_per_client)) {
    case CONNLIMIT_TOTAL:
        log_warn("rejecting connection from [%s]: %u connections open (limits.connections)", addr,
                 cfg->max_connections);
        return session_refuse(dw, id, "Too many open connections");
    case CONNLIMIT_CLIENT:
        log_warn("rejecting connection from [%s]: too many connections from that address "
                 "(limits.connections_per_client %u)",
                 addr, cfg->max_connections_per_client);
        return session_refuse(dw, id, "Too many connections from your address");
    case CONNLIMIT_OK:
        break;
    }

    struct session *s = calloc(1, sizeof(*s));
    if (!s) {
        connlimit_release(dw->d->conns, peer);
        return session_refuse(dw, id, "Out of memory");
    }
    s->dw = dw;
    s->id = id;
    s->listener = listener;
    s->access_relay = connect && connect->action == ACCESS_RELAY;
    s->rc = runconf_ref(dw->rc);
    memcpy(&s->peer, peer, peerlen < sizeof(s->peer) ? peerlen : sizeof(s->peer));
    memcpy(s->addr, addr, sizeof(s->addr));
    s->io.arg = s;
    s->io.reply = session_io_reply;
    s->io.event = session_io_event;
    s->io.check_rcpt = session_check_rcpt;
    s->tp = &session_plain;

    char client[64];
    uint64_t now = engine_now_ms(w);
    s->smtp = smtp_server_new(runconf_smtp(s->rc, listener), &s->io,
                              session_relay(s, client, sizeof(client)), now);
    if (!s->smtp) {
        connlimit_release(dw->d->conns, peer);
        runconf_unref(s->rc);
        free(s);
        return session_refuse(dw, id, "Out of memory");
    }

    s->next = dw->sessions;
    if (dw->sessions)
        dw->sessions->prev = s;
    dw->sessions = s;

    char date[64], greeting[320];
    session_rfc5322_date(date, sizeof(date));
    snprintf(greeting, sizeof(greeting), "%s ESMTP ringmail %s; %s", cfg->hostname,
             RINGMAIL_VERSION, date);
    s->in_smtp = true;
    smtp_server_start(s->smtp, greeting, now);
    session_after_smtp(s);
    return s;
}

static void session_on_recv(void *ctx, const char *data, size_t len)
{
    struct session *s = ctx;
    if (s->closing)
        return;
    s->in_smtp = true;
    s->tp->recv(s, data, len);
    session_after_smtp(s);
}

static void session_on_timer(void *ctx)
{
    struct session *s = ctx;
    if (s->closing)
        return;
    uint64_t tls = session_tls_deadline(s), now = engine_now_ms(s->dw->w);
    if (tls && now >= tls) {
        session_tls_timeout(s);
        return;
    }
    s->in_smtp = true;
    smtp_server_tick(s->smtp, now);
    /* A slow-down that ended may have processed held input: receive again. */
    engine_conn_resume_recv(s->dw->w, s->id);
    session_after_smtp(s);
}

static void session_on_closed(void *ctx, int err)
{
    struct session *s = ctx;
    struct daemon_worker *dw = s->dw;

    if (err && err != ECANCELED)
        log_debug("connection from [%s] ended: %s", s->addr, strerror(err));
    s->closing = true;
    s->in_smtp = true;
    smtp_server_eof(s->smtp); /* aborts a message in progress (DATA_ABORT) */
    session_drop_message(s);
    smtp_server_free(s->smtp);
    s->tp->free(s);
    free(s->msgid);
    connlimit_release(dw->d->conns,
                      (const struct sockaddr *)&s->peer); /* every session has a slot */
    runconf_unref(s->rc);
    if (s->prev)
        s->prev->next = s->next;
    else
        dw->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
    if (dw->draining && !dw->sessions)
        engine_worker_exit(dw->w);
}

/* Sessions with no message in progress are closed at once; the others when their
 * transaction ends (session_commit_done). */
static void session_drain(struct daemon_worker *dw)
{
    dw->draining = true;
    engine_worker_stop_accepting(dw->w);
    for (struct session *s = dw->sessions, *next; s; s = next) {
        next = s->next;
        session_rearm(s);
    }
    if (!dw->sessions)
        engine_worker_exit(dw->w);
}

static void session_on_message(struct engine_worker *w, void *worker_ctx, uint32_t msg)
{
    struct daemon_worker *dw = worker_ctx;
    switch (msg) {
    case DAEMON_MSG_RELOAD:
        runconf_unref(dw->rc);
        dw->rc = daemon_current(dw->d);
        break;
    case DAEMON_MSG_DRAIN:
        session_drain(dw);
        break;
    case DAEMON_MSG_EXIT:
        engine_worker_exit(w);
        break;
    default:
        log_warn("worker %u: unknown message %u", engine_worker_index(w), msg);
    }
}

const struct engine_callbacks session_engine_callbacks = {
    .worker_init = session_worker_init,
    .worker_fini = session_worker_fini,
    .on_accept = session_on_accept,
    .on_recv = session_on_recv,
    .on_timer = session_on_timer,
    .on_closed = session_on_closed,
    .on_message = session_on_message,
};
