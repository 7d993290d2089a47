#include "core/session.h"
#include "core/session_int.h"
#include "core/session_milter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "core/control.h"
#include "core/localrcpt.h"
#include "core/metrics_http.h"
#include "core/queuerun.h"
#include "core/submission.h"
#include "core/submit_headers.h"
#include "core/version.h"
#include "policy/clientlimit.h"
#include "policy/clientrate.h"
#include "policy/sasl.h"
#include "queue/mailstats.h"
#include "queue/spool.h"
#include "smtp/smtp_helo.h"
#include "smtp/smtp_relay.h"
#include "smtp/smtp_server.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/netaddr.h"

/* Workers find the daemon through this pointer, set once before the engine starts. */
static struct daemon *session_daemon;

/* A client can be refused at will, thousands of times a second: these lines are limited to
 * one per 10 s (per client address for the per-client limit, so that one client cannot hide
 * another's line from fail2ban), then the count of those not written. */
#define SESSION_REFUSAL_LOG_MS 10000
static struct log_limit session_log_total_refusals = LOG_LIMIT_INIT(SESSION_REFUSAL_LOG_MS);
static struct log_limit session_log_client_refusals = LOG_LIMIT_INIT(SESSION_REFUSAL_LOG_MS);
/* A commit this session could not even start (no memory): each one a client can retry. */
static struct log_limit session_log_commit_failures = LOG_LIMIT_INIT(SESSION_REFUSAL_LOG_MS);

void session_set_daemon(struct daemon *d)
{
    session_daemon = d;
}

/* sendmail's spelling of a client's address: [192.0.2.1], and IPv6 clients as address
 * literals, [IPv6:::1]. */
static const char *session_relay_of(const char *addr, char *out, size_t outlen)
{
    snprintf(out, outlen, "[%s%s]", strchr(addr, ':') ? "IPv6:" : "", addr);
    return out;
}

const char *session_relay(const struct session *s, char *out, size_t outlen)
{
    if (s->local) {
        snprintf(out, outlen, "%s@localhost", s->local->user);
        return out;
    }
    if (!s->client_name) /* no PTR record, or its lookup failed or was off */
        return session_relay_of(s->addr, out, outlen);
    char addr[64];
    snprintf(out, outlen, "%s %s%s", s->client_name, session_relay_of(s->addr, addr, sizeof(addr)),
             s->client_forged ? " (may be forged)" : "");
    return out;
}

/* The listener's name in sendmail's lines ("daemon=MTA"); "local" for submission.socket. */
const char *session_daemon_name(const struct session *s)
{
    return s->local ? "local" : session_daemon->listener_names[s->listener];
}

/* The id in front of a session's lines: the connection's own until the first MAIL, then
 * the message's queue id, as sendmail 8.14 and later do, so that every line of one
 * connection can be found with one grep. */
static const char *session_qid(const struct session *s)
{
    return s->qid;
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
    if (s->checks) { /* not greeted yet */
        engine_conn_set_timer(s->dw->w, s->id, session_checks_deadline(s));
        return;
    }
    if (!s->smtp) { /* the filters decide on the greeting: their own timeouts bound it */
        engine_conn_set_timer(s->dw->w, s->id, 0);
        return;
    }
    /* While the handshake runs the state machine has no deadline: timeouts.starttls. */
    uint64_t tls = session_tls_deadline(s);
    engine_conn_set_timer(s->dw->w, s->id, tls ? tls : smtp_server_deadline(s->smtp));
}

/* A commit in flight, for its callback. */
struct session_commit {
    struct session *s; /* NULL once the session has gone */
    struct daemon_worker *dw;
    char qid[QID_LEN + 1];
    /* XMAILDROP: the maildrop file to remove once the message is queued, whose it must be,
     * and the generation that says where the maildrop is; NULL / unused otherwise. */
    char *maildrop;
    uid_t uid;
    struct runconf *rc;
    bool held;           /* quarantined: indexed, never due */
    uint64_t started_ns; /* the request, for ringmail_spool_commit_seconds */
};

static void session_commit_free(struct session_commit *c)
{
    free(c->maildrop);
    if (c->rc)
        runconf_unref(c->rc);
    free(c);
}

static void session_drop_message(struct session *s)
{
    if (!s->msg)
        return;
    if (s->committing)
        s->commit->s = NULL; /* the commit goes on: the message is safe, and delivered */
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
    /* The last replies (and a TLS close_notify) get timeouts.quit to leave; a peer that
     * does not read them is cut off then (the engine's linger when it is 0). */
    uint32_t quit = s->rc->cfg->timeouts.quit;
    engine_conn_set_timer(s->dw->w, s->id, quit ? engine_now_ms(s->dw->w) + quit : 0);
    engine_conn_close(s->dw->w, s->id, true);
}

static void session_io_reply(void *arg, const char *bytes, size_t len)
{
    struct session *s = arg;
    metrics_replies(bytes, len);
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
        return session_auth_proto(s, tls ? "UTF8SMTPS" : "UTF8SMTP");
    return session_auth_proto(s, tls ? "ESMTPS" : "ESMTP");
}

/* What the policy knows of this client (policy/policy.h). */
static void session_policy_client(const struct session *s, struct policy_client *c)
{
    *c = (struct policy_client){.addr = s->addr,
                                .sa = (const struct sockaddr *)&s->peer,
                                .host = s->client_forged ? NULL : s->client_name,
                                .auth_offered = s->rc->cfg->policy.trust_mechanisms.n > 0,
                                .local = s->local != NULL};
    session_auth_client(s, &c->auth_mech, &c->auth_authen);
}

bool session_connect_named(struct session *s)
{
    if (!s->client_name || s->client_forged)
        return false;
    struct policy_client c;
    struct policy_verdict v;
    session_policy_client(s, &c);
    policy_connect(&s->rc->policy, &c, &s->pol, &v);
    if (v.action != POLICY_REJECT)
        return false;
    char reject[400];
    snprintf(reject, sizeof(reject), "%d %s %s", v.code, v.enh, v.text);
    session_refuse_greeting(s, v.code, v.enh, v.text, reject);
    return true;
}

/* sendmail's line for a DISCARD or QUARANTINE: found by a ruleset. `checked`: the address
 * MAIL or RCPT had checked (NULL for the connection's verdict: no sender to count under). */
static void session_policy_log_hold(struct session *s, const char *arg1, const char *checked)
{
    const struct policy_verdict *v = &s->verdict;
    char relay[80];
    session_relay(s, relay, sizeof(relay));
    if (v->action == POLICY_DISCARD) {
        mailstats_msg(MAILSTATS_DISCARD, session_stats_mailer(s, checked), 0);
        log_info("%s: ruleset=%s, arg1=%s, relay=%s, discard", session_qid(s), v->ruleset, arg1,
                 relay);
    } else if (v->action == POLICY_QUARANTINE) {
        mailstats_msg(MAILSTATS_QUARANTINE, session_stats_mailer(s, checked), 0);
        log_info("%s: ruleset=%s, arg1=%s, relay=%s, quarantine=%s", session_qid(s), v->ruleset,
                 arg1, relay, v->text);
    }
}

/* A MAIL or RCPT verdict: a refusal becomes the state machine's reply (-1, its text stays in
 * s->verdict until sent, and the REJECT event that follows logs its ruleset's line); a
 * DISCARD or QUARANTINE gets sendmail's line; 0 lets the command go on. */
static int session_policy_verdict(struct session *s, const char *mailbox,
                                  struct smtp_addr_error *err)
{
    if (s->verdict.action == POLICY_REJECT) {
        err->code = s->verdict.code;
        err->enh = s->verdict.enh;
        err->reason = s->verdict.text;
        return -1;
    }
    char arg1[SMTP_PATH_MAX + 3];
    snprintf(arg1, sizeof(arg1), "<%s>", mailbox);
    session_policy_log_hold(s, arg1, mailbox);
    s->verdict.ruleset = NULL;
    return 0;
}

/* A recipient in a local domain must reach someone: an alias, a virtual user, a user of
 * the system (no backscatter for names that do not exist). sendmail refuses the others at
 * RCPT with "550 5.1.1 <u@d>... User unknown" and logs that reply. */
static int session_check_local(struct session *s, const struct smtp_path *rcpt,
                               struct smtp_addr_error *err)
{
    if (rcpt->null || !localrcpt_is_local(s->rc->cfg, rcpt->mailbox) ||
        localrcpt_check(s->rc->cfg, rcpt->mailbox, &s->rcpt_refusal))
        return 0;
    err->code = atoi(s->rcpt_refusal.code);
    err->enh = s->rcpt_refusal.dsn;
    err->reason = s->rcpt_refusal.text;
    return -1;
}

/* RCPT's ESMTP parameters as a filter is given them ("NOTIFY=SUCCESS,FAILURE ORCPT=..."). */
#define SESSION_RCPT_ARGS_MAX (SMTP_ORCPT_MAX + 48)
static void session_rcpt_args(const struct smtp_rcpt_params *p, char *out, size_t outlen)
{
    static const char *const notify[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
    struct buf b;
    buf_init(&b, 0);
    for (unsigned i = 0; i < 4; i++) /* SMTP_NOTIFY_NEVER, SUCCESS, FAILURE, DELAY: bits 0..3 */
        if (p->notify & (1u << i))
            buf_printf(&b, "%s%s", b.len ? "," : "NOTIFY=", notify[i]);
    if (p->orcpt[0])
        buf_printf(&b, "%sORCPT=%s", b.len ? " " : "", p->orcpt);
    snprintf(out, outlen, "%s", b.len ? (const char *)b.data : "");
    buf_free(&b);
}

/* sendmail's check_rcpt (policy/policy.h), then whether a local recipient exists. */
static int session_check_rcpt(void *arg, const struct smtp_path *rcpt,
                              const struct smtp_rcpt_params *params, struct smtp_addr_error *err)
{
    struct session *s = arg;
    struct policy_client c;
    session_policy_client(s, &c);
    policy_rcpt(&s->rc->policy, &c, &s->pol, rcpt, &s->verdict);
    if (session_policy_verdict(s, rcpt->mailbox, err) < 0 || session_check_local(s, rcpt, err) < 0)
        return -1;
    if (!s->milters)
        return 0;
    char path[SMTP_PATH_MAX + 3], args[SESSION_RCPT_ARGS_MAX];
    snprintf(path, sizeof(path), "<%s>", rcpt->mailbox);
    session_rcpt_args(params, args, sizeof(args));
    return session_milter_check_rcpt(s, path, args, err);
}

/* sendmail's enoughdiskspace(): a MAIL whose SIZE= (or any message, below MinFreeBlocks)
 * would not fit is told now, not after its whole body was read (RFC 1870 6.1). Then the
 * sender's domain must resolve (core/session_sender.c), an answer that comes later. */
static void session_new_message(struct session *s)
{
    session_drop_message(s);
    s->msg = spool_msg_new(s->dw->sw, s->qid);
    if (!s->msg)
        log_error("cannot start a queue file: out of memory");
}

/* MAIL's ESMTP parameters as a filter is given them ("SIZE=1024 BODY=8BITMIME"). */
#define SESSION_MAIL_ARGS_MAX (SMTP_ENVID_MAX + SMTP_AUTH_PARAM_MAX + 80)
static void session_mail_args(const struct smtp_mail_params *p, char *out, size_t outlen)
{
    struct buf b;
    buf_init(&b, 0);
    if (p->has_size)
        buf_printf(&b, " SIZE=%llu", (unsigned long long)p->size);
    if (p->body != SMTP_BODY_NONE)
        buf_printf(&b, " BODY=%s", p->body == SMTP_BODY_7BIT ? "7BIT" : "8BITMIME");
    if (p->smtputf8)
        buf_printf(&b, " SMTPUTF8");
    if (p->ret != SMTP_RET_NONE)
        buf_printf(&b, " RET=%s", p->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
    if (p->envid[0])
        buf_printf(&b, " ENVID=%s", p->envid);
    if (p->auth)
        buf_printf(&b, " AUTH=%s", p->auth);
    snprintf(out, outlen, "%s", b.len ? (const char *)b.data + 1 : "");
    buf_free(&b);
}

static int session_check_mail(void *arg, const struct smtp_path *sender,
                              const struct smtp_mail_params *params, struct smtp_addr_error *err)
{
    struct session *s = arg;
    struct policy_client c;
    session_policy_client(s, &c);
    policy_mail(&s->rc->policy, &c, &s->pol, sender->mailbox, &s->verdict);
    if (session_policy_verdict(s, sender->mailbox, err) < 0)
        return -1;
    /* A maildrop file that is gone (already submitted: a second --pickup of it) or is not
     * the caller's is never submitted again, nor on someone else's behalf. */
    if (s->local && params->maildrop &&
        !submission_maildrop_owned(s->rc->cfg, params->maildrop, s->local->uid)) {
        err->code = 550;
        err->enh = "5.7.1";
        err->reason = "Maildrop file not found or not the caller's";
        return -1;
    }
    if (!spool_space_check(s->dw->sw, params->has_size ? params->size : 0)) {
        err->code = 452;
        err->enh = "4.3.1";
        err->reason = "Insufficient system storage";
        return -1;
    }
    /* a From: entry (OK, RELAY, ...) decides for the sender, as in sendmail's check_mail,
     * where a found entry ends the ruleset before the domain's lookup */
    int looked_up = s->pol.mail ? 0 : session_sender_check(s, sender); /* may answer later */
    if (!s->milters)
        return looked_up;
    /* the filters hear of a sender the rulesets accepted, as sendmail's envfrom, with the
     * message's queue id in ${i} */
    session_new_message(s);
    s->msg_for_mail = true;
    char path[SMTP_PATH_MAX + 3], args[SESSION_MAIL_ARGS_MAX];
    snprintf(path, sizeof(path), "<%s>", sender->mailbox);
    session_mail_args(params, args, sizeof(args));
    if (looked_up == 1) {
        size_t plen = strlen(path) + 1, alen = strlen(args) + 1;
        free(s->milter_mail);
        if ((s->milter_mail = malloc(plen + alen))) {
            memcpy(s->milter_mail, path, plen);
            memcpy(s->milter_mail + plen, args, alen);
        }
        return 1;
    }
    return session_milter_check_mail(s, path, args, err);
}

static void session_write_received(struct session *s)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    char date[64];
    struct buf hdr;

    session_rfc5322_date(date, sizeof(date));
    buf_init(&hdr, 0);
    if (s->local) {
        submission_trace(s->rc->cfg, s->local, t->sender, s->qid, RINGMAIL_VERSION, date, &hdr);
        s->size = hdr.len;
        if (hdr.data)
            spool_msg_write(s->msg, hdr.data, hdr.len);
        buf_free(&hdr);
        return;
    }
    /* sendmail's Received: layout, so downstream parsers and operators see the familiar
     * shape; "for <rcpt>" only with exactly one recipient, as sendmail does (privacy). */
    char relay[SESSION_RELAY_MAX], helo[SMTP_HELO_MAX + 1];
    const char *from = smtp_helo_received(t->helo, helo, sizeof(helo)) ? helo : s->addr;
    buf_printf(&hdr, "Received: from %s (%s)", from, session_relay(s, relay, sizeof(relay)));
    session_auth_received(s, &hdr);
    buf_printf(&hdr, "\r\n\tby %s (ringmail/%s) with %s id %s", s->rc->cfg->hostname,
               RINGMAIL_VERSION, session_proto(s), s->qid);
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

static void session_commit_result(struct session *s, int err);

/* The access map's DISCARD: the client hears 250 as for any message, and nothing is queued
 * (sendmail's $#discard); the from= line is written as for an accepted message. */
static bool session_discarded(struct session *s)
{
    struct policy_verdict v;
    policy_data(&s->pol, &v);
    if (v.action != POLICY_DISCARD)
        return false;
    session_drop_message(s);
    session_commit_result(s, 0);
    return true;
}

static void session_commit_done(void *arg, int err);

static int session_commit(struct session *s)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    struct envelope env;
    memset(&env, 0, sizeof(env));

    struct session_milter_envelope filtered; /* what the mail filters changed */
    session_milter_envelope(s, &filtered);
    env.sender = filtered.sender ? (char *)filtered.sender : t->sender;
    env.created = time(NULL);
    env.helo = t->helo;
    char local_name[80];
    if (s->local) /* sendmail's bounce says "received ... from user@localhost" */
        env.client_name = (char *)session_relay(s, local_name, sizeof(local_name));
    else
        env.client_addr = s->addr;
    env.proto = (char *)session_proto(s); /* only read during the commit, as the rest */
    env.daemon = (char *)session_daemon_name(s);
    env.msgid = s->msgid;
    /* Named only when the file is the caller's now: recovery removes it on that word. */
    if (s->local && t->mail_params.maildrop &&
        submission_maildrop_owned(s->rc->cfg, t->mail_params.maildrop, s->local->uid))
        env.maildrop = t->mail_params.maildrop;
    env.body = t->mail_params.body == SMTP_BODY_8BITMIME ? 8
               : t->mail_params.body == SMTP_BODY_7BIT   ? 7
                                                         : 0;
    env.smtputf8 = t->mail_params.smtputf8;
    env.dsn_ret = t->mail_params.ret == SMTP_RET_FULL   ? 1
                  : t->mail_params.ret == SMTP_RET_HDRS ? 2
                                                        : 0;
    env.envid = t->mail_params.envid[0] ? (char *)t->mail_params.envid : NULL;
    char auth[SMTP_AUTH_PARAM_MAX + 1];
    env.auth = (char *)session_auth_param(s, t->mail_params.auth, auth, sizeof(auth));
    struct policy_verdict v;
    policy_data(&s->pol, &v);
    if (v.action == POLICY_QUARANTINE || filtered.quarantine) {
        /* held with its reason until an operator acts */
        env.quarantine =
            (char *)(v.action == POLICY_QUARANTINE ? s->pol.quarantine : filtered.quarantine);
        env.next_attempt = ENVELOPE_NEXT_HELD;
    }
    /* local recipients expanded now, as sendmail's qf holds them (core/localrcpt.h) */
    struct localrcpt_list rl = {0};
    for (size_t i = 0; i < t->n_rcpts + filtered.n_added; i++) {
        const struct smtp_rcpt *r = i < t->n_rcpts ? &t->rcpts[i] : NULL;
        const struct session_milter_rcpt *a = r ? NULL : &filtered.added[i - t->n_rcpts];
        const char *mailbox = r ? r->mailbox : a->mailbox;
        const struct smtp_rcpt_params *params = r ? &r->params : &a->params;
        if (session_milter_removed(&filtered, mailbox))
            continue;
        /* same bit values as ENV_NOTIFY_* */
        if (localrcpt_envelope(s->rc->cfg, mailbox, params->orcpt[0] ? params->orcpt : NULL,
                               params->notify, &rl) < 0) {
            localrcpt_list_free(&rl);
            return -ENOMEM;
        }
    }
    env.rcpts = rl.v;
    env.n_rcpts = rl.n;
    if (!(s->commit = malloc(sizeof(*s->commit)))) {
        localrcpt_list_free(&rl);
        return -ENOMEM;
    }
    *s->commit = (struct session_commit){
        s, s->dw, "", NULL, 0, NULL, env.quarantine != NULL, metrics_monotonic_ns()};
    memcpy(s->commit->qid, s->qid, sizeof(s->commit->qid));
    if (env.maildrop) {
        if (!(s->commit->maildrop = strdup(env.maildrop))) {
            free(s->commit);
            s->commit = NULL;
            localrcpt_list_free(&rl);
            return -ENOMEM;
        }
        s->commit->uid = s->local->uid;
        s->commit->rc = runconf_ref(s->rc);
    }
    s->committing = true;
    /* The envelope is only read during the call; the strings stay owned by the server. */
    spool_msg_commit(s->msg, &env, session_commit_done, s->commit);
    localrcpt_list_free(&rl);
    return 0;
}

static void session_log_accepted(struct session *s)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    char relay[SESSION_RELAY_MAX];
    mailstats_msg(MAILSTATS_FROM, session_mailer_of(s, t->sender ? t->sender : ""), s->size);
    if (s->local) { /* sendmail's MSP line: no proto=, no daemon= */
        log_info("%s: from=<%s>, size=%llu, class=0, nrcpts=%zu, msgid=%s, relay=%s", s->qid,
                 t->sender ? t->sender : "", (unsigned long long)s->size, t->n_rcpts,
                 s->msgid ? s->msgid : "", session_relay(s, relay, sizeof(relay)));
        return;
    }
    log_info("%s: from=<%s>, size=%llu, class=0, nrcpts=%zu, msgid=%s, proto=%s, daemon=%s, "
             "relay=%s",
             s->qid, t->sender ? t->sender : "", (unsigned long long)s->size, t->n_rcpts,
             s->msgid ? s->msgid : "", session_proto(s), session_daemon_name(s),
             session_relay(s, relay, sizeof(relay)));
}

/* Tells the parked state machine how the commit ended. Never called from inside an
 * smtp_server call: the state machine is not re-entrant. */
static void session_deliver_commit_result(struct session *s, int err)
{
    struct engine_worker *w = s->dw->w;

    /* A failed commit was logged where it failed: the spool, or session_commit_failed; a
     * filter's refusal by the filters (core/session_milter.c). */
    if (err == 0)
        session_log_accepted(s);
    if (err == 0 && !s->commit_refusal) /* the client gets its 250 below */
        metrics_message_accepted(s->size);
    else
        metrics_message_rejected(METRICS_REJECT_DATA);
    free(s->msgid);
    s->msgid = NULL;
    s->in_smtp = true;
    if (s->commit_refusal) {
        smtp_server_commit_refused_reply(s->smtp, s->commit_refusal, engine_now_ms(w));
        free(s->commit_refusal);
        s->commit_refusal = NULL;
    } else {
        smtp_server_commit_done(s->smtp, err == 0, s->qid, engine_now_ms(w));
    }
    s->in_smtp = false;
    if (s->commit_shutdown) {
        s->commit_shutdown = false;
        session_close(s);
    }
    /* Held pipelined input was processed above; receiving may resume. */
    engine_conn_resume_recv(w, s->id);
}

/* Leaving a call into the state machine: results that arrived meanwhile go in now (they
 * may start further commits, hence the loop), then the timer follows the new deadline. */
void session_after_smtp(struct session *s)
{
    s->in_smtp = false;
    while (s->commit_result_pending && !s->closing) {
        s->commit_result_pending = false;
        session_deliver_commit_result(s, s->commit_result);
    }
    session_rearm(s);
}

void session_mail_checked(struct session *s, const struct smtp_addr_error *err)
{
    if (s->closing)
        return;
    char *mail = s->milter_mail;
    s->milter_mail = NULL;
    struct smtp_addr_error refused;
    if (!err && mail) { /* the lookup accepted the sender: now the filters */
        int r = session_milter_check_mail(s, mail, mail + strlen(mail) + 1, &refused);
        free(mail);
        if (r == 1)
            return; /* their verdict reaches the state machine later */
        if (r < 0)
            err = &refused;
    } else {
        free(mail);
    }
    s->in_smtp = true;
    smtp_server_check_done(s->smtp, err, engine_now_ms(s->dw->w));
    /* Held pipelined input was processed above; receiving may resume. */
    engine_conn_resume_recv(s->dw->w, s->id);
    session_after_smtp(s);
}

static void session_commit_result(struct session *s, int err)
{
    s->commit = NULL;
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

static void session_commit_done(void *arg, int err)
{
    struct session_commit *c = arg;
    struct session *s = c->s;
    metrics_spool_commit(metrics_monotonic_ns() - c->started_ns);

    /* The file goes once the message is safe and before anything delivers it: a crash in
     * between leaves both, and recovery removes the file (submission_recovered_maildrop).
     * One unlink and one fsync of a directory, on the worker: local submission is rare. */
    if (err == 0 && c->maildrop)
        submission_maildrop_remove(c->rc->cfg, c->maildrop, c->uid);
    if (err == 0)
        queuerun_committed(c->dw, c->qid, c->held);
    session_commit_free(c);
    if (s)
        session_commit_result(s, err);
}

/* sendmail's lower-case command names, as its "lost input channel ... after rcpt" says;
 * and whether the command makes the connection more than a "null connection" (sendmail:
 * MAIL, EXPN, VRFY or ETRN, whatever their answer). */
static void session_note_command(struct session *s, const char *cmd)
{
    static const struct {
        const char *verb, *name;
        bool asks;
    } names[] = {
        {"HELO", "helo", false}, {"EHLO", "ehlo", false}, {"MAIL", "mail", true},
        {"RCPT", "rcpt", false}, {"DATA", "data", false}, {"BDAT", "bdat", false},
        {"RSET", "rset", false}, {"NOOP", "noop", false}, {"HELP", "help", false},
        {"VRFY", "vrfy", true},  {"EXPN", "expn", true},  {"ETRN", "etrn", true},
        {"QUIT", "quit", false}, {"AUTH", "auth", false}, {"STARTTLS", "starttls", false},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(cmd, names[i].verb) == 0) {
            s->last_cmd = names[i].name;
            s->issued_mail |= names[i].asks;
            return;
        }
    }
}

/* A reply's text without its codes: "553 5.1.3 text" -> "text". */
static const char *session_reply_text(const char *reply)
{
    const char *p = reply;
    if (strlen(p) >= 4 && p[3] == ' ')
        p += 4;
    if (p[0] >= '2' && p[0] <= '5' && p[1] == '.') {
        const char *sp = strchr(p, ' ');
        p = sp ? sp + 1 : p + strlen(p);
    }
    return p;
}

/* A refused sender, recipient or message (not a command out of sequence). */
static void session_count_reject(const struct smtp_event *ev)
{
    if (!ev->reply || strncmp(ev->reply, "503", 3) == 0)
        return;
    if (strcmp(ev->cmd, "MAIL") == 0)
        metrics_message_rejected(METRICS_REJECT_MAIL);
    else if (strcmp(ev->cmd, "RCPT") == 0)
        metrics_message_rejected(METRICS_REJECT_RCPT);
    else if (strcmp(ev->cmd, "DATA") == 0 || strcmp(ev->cmd, "BDAT") == 0)
        metrics_message_rejected(METRICS_REJECT_DATA);
}

/* A policy refusal of RCPT is sendmail's check_rcpt line (the one fail2ban's sendmail-reject
 * filter reads); any other refusal of MAIL or RCPT is logged as sendmail's usrerr() logs it,
 * "<qid>: <text of the reply>"; sequence errors and other commands only at debug, as
 * sendmail does not log them. */
static void session_log_reject(struct session *s, const struct smtp_event *ev)
{
    char relay[SESSION_RELAY_MAX];

    session_note_command(s, ev->cmd);
    session_count_reject(ev);
    if (s->reject_logged) { /* a filter's refusal: its own line says it (core/session_milter.c) */
        s->reject_logged = false;
        return;
    }
    if (s->verdict.ruleset) { /* check_mail's arg1 is <addr>, as RCPT's raw path is */
        bool mail = strcmp(ev->cmd, "MAIL") == 0;
        mailstats_msg(MAILSTATS_REJECT, session_stats_mailer(s, mail ? ev->arg : NULL), 0);
        log_info("%s: ruleset=%s, arg1=%s%s%s, relay=%s, reject=%s", session_qid(s),
                 s->verdict.ruleset, mail ? "<" : "", ev->arg ? ev->arg : "", mail ? ">" : "",
                 session_relay(s, relay, sizeof(relay)), ev->reply);
        s->verdict.ruleset = NULL;
        return;
    }
    bool envelope = strcmp(ev->cmd, "MAIL") == 0 || strcmp(ev->cmd, "RCPT") == 0;
    if (envelope && strncmp(ev->reply, "503", 3) != 0) {
        log_info("%s: %s", session_qid(s), session_reply_text(ev->reply));
        return;
    }
    log_debug("%s: %s %s: %s", session_qid(s), ev->cmd, ev->arg ? ev->arg : "", ev->reply);
}

/* sendmail's line for a client that never asked to send (or verify) anything: fail2ban's
 * sendmail-reject filter counts it in its "extra" and "aggressive" modes. */
static void session_log_null_connection(struct session *s)
{
    char relay[SESSION_RELAY_MAX];
    if (s->issued_mail || s->local) /* sendmail -bs quitting at once is no probe */
        return;
    log_info("%s: %s did not issue MAIL/EXPN/VRFY/ETRN during connection to %s", session_qid(s),
             session_relay(s, relay, sizeof(relay)), session_daemon_name(s));
}

/* The session ended without QUIT, by a timeout or by the client going away: sendmail says
 * "lost input channel" when a transaction was open (the others only at LogLevel 20). */
static void session_log_lost_input(struct session *s)
{
    const char *cmd = s->last_cmd;
    char relay[SESSION_RELAY_MAX];
    if (s->msg)
        log_info("%s: lost input channel from %s to %s after %s", session_qid(s),
                 session_relay(s, relay, sizeof(relay)), session_daemon_name(s),
                 cmd ? cmd : "startup");
    session_log_null_connection(s);
}

/* The state machine ends the session: sendmail's lines for each way it can end. */
static void session_log_close(struct session *s, const char *reason)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    char relay[SESSION_RELAY_MAX];

    session_relay(s, relay, sizeof(relay));
    if (strcmp(reason, "quit") == 0) {
        session_log_null_connection(s);
    } else if (strcmp(reason, SMTP_AUTH_DROP_REASON) == 0) {
        /* sendmail's checksmtpattack() line, which fail2ban's sendmail-auth filter bans on */
        log_info("%s: %s: possible SMTP attack: command=AUTH, count=%u", session_qid(s), relay,
                 SMTP_AUTH_MAX_FAILURES);
    } else if (strcmp(reason, "timeout") == 0 && s->in_data) {
        /* sendmail's notice form ("collect: <problem> on connection from ..., sender=");
         * sendmail itself reports a timeout here as a SYSERR, which it is not */
        log_info("%s: collect: read timeout on connection from %s, sender=<%s>", session_qid(s),
                 relay, t->sender ? t->sender : "");
    } else if (strcmp(reason, "timeout") == 0) {
        log_info("%s: timeout waiting for input from %s during server cmd read", session_qid(s),
                 relay);
        session_log_lost_input(s);
    } else {
        log_info("%s: closing connection from %s: %s", session_qid(s), relay, reason);
        session_log_null_connection(s);
    }
}

/* The client closed or reset the connection before the session ended. */
static void session_log_peer_gone(struct session *s, bool in_data)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    char relay[SESSION_RELAY_MAX];

    if (!in_data) {
        session_log_lost_input(s);
        return;
    }
    log_info("%s: collect: premature EOM: unexpected close", session_qid(s));
    log_info("%s: collect: unexpected close on connection from %s, sender=<%s>", session_qid(s),
             session_relay(s, relay, sizeof(relay)), t->sender ? t->sender : "");
}

/* sendmail's MSP adds what a local message lacks: Date:, Message-ID:, From: (with the
 * FULLNAME= of MAIL, else the caller's GECOS name when the sender is the caller's own
 * address), To: when no recipient field is there. The Message-ID we add is the one the
 * log's msgid= shows. */
static void session_local_headers(struct session *s, const struct smtp_event *ev)
{
    const struct smtp_transaction *t = smtp_server_transaction(s->smtp);
    const struct config *cfg = s->rc->cfg;
    const char *fullname = t->mail_params.fullname;
    if ((!fullname || !fullname[0]) && submission_own_sender(cfg, s->local, t->sender))
        fullname = s->local->fullname;
    struct submit_headers_in in = {
        time(NULL), s->qid, cfg->hostname, t->sender ? t->sender : "", fullname, ev->headers_seen};
    struct buf b;
    buf_init(&b, 0);
    if (submit_headers_format(&b, &in) < 0 || (b.len && ev->len && buf_append(&b, "\r\n", 2) < 0)) {
        log_error("%s: cannot add the missing header fields: out of memory", s->qid);
        buf_free(&b);
        return;
    }
    static const char tag[] = "Message-ID: ";
    const char *id = b.len ? memmem(b.data, b.len, tag, sizeof(tag) - 1) : NULL;
    if (id && (id == b.data || id[-1] == '\n')) {
        id += sizeof(tag) - 1;
        const char *end = memchr(id, '\r', b.len - (size_t)(id - (const char *)b.data));
        free(s->msgid);
        s->msgid = end ? strndup(id, (size_t)(end - id)) : NULL;
    }
    if (b.len) {
        spool_msg_write(s->msg, b.data, b.len);
        s->size += b.len;
    }
    buf_free(&b);
}

static void session_commit_or_fail(struct session *s)
{
    if (!s->msg || session_commit(s) < 0) {
        log_limited(&session_log_commit_failures, LOG_LVL_ERROR, "memory",
                    "%s: queue commit failed: out of memory", s->qid);
        session_drop_message(s);
        session_commit_result(s, -ENOMEM);
    }
}

/* The filters' verdict on the message (core/session_milter.h): refused (the reply goes to
 * the client as the filter wrote it), discarded (a 250, nothing queued, as the access
 * map's DISCARD) or committed with their changes. */
static void session_filtered(struct session *s, const struct session_milter_outcome *o)
{
    if (o->verdict == SESSION_MILTER_CONTINUE) {
        session_commit_or_fail(s);
        return;
    }
    session_drop_message(s);
    if (o->verdict == SESSION_MILTER_REFUSE) {
        free(s->commit_refusal);
        s->commit_refusal = strdup(o->reply);
        s->commit_shutdown = o->shutdown;
        session_commit_result(s, -EPERM);
        return;
    }
    session_commit_result(s, 0);
}

static void session_io_event(void *arg, const struct smtp_event *ev)
{
    struct session *s = arg;

    switch (ev->type) {
    case SMTP_EV_MAIL:
        session_note_command(s, "MAIL");
        /* The message's queue id from MAIL on, as in sendmail, so reject lines carry it (the
         * filters' MAIL step had it already: session_new_message). */
        if (s->msg_for_mail)
            s->msg_for_mail = false;
        else
            session_new_message(s);
        break;
    case SMTP_EV_REJECT:
        session_log_reject(s, ev);
        break;
    case SMTP_EV_DATA_START:
        session_note_command(s, smtp_server_transaction(s->smtp)->bdat ? "BDAT" : "DATA");
        s->in_data = true;
        free(s->msgid); /* a local message's added one is set at the header's end */
        s->msgid = NULL;
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
        s->in_data = false;
        s->size += ev->size;
        if (ev->msgid) { /* else the one we added to a local message, if any */
            free(s->msgid);
            s->msgid = strdup(ev->msgid);
        }
        if (session_discarded(s))
            break;
        if (s->milters && s->msg) { /* the filters have the message first */
            struct session_milter_outcome now;
            if (!session_milter_eom(s, session_filtered, &now))
                session_filtered(s, &now);
            break;
        }
        session_commit_or_fail(s);
        break;
    case SMTP_EV_DATA_ABORT:
        /* A 421 is the session ending inside DATA: CLOSE follows and says why. The client
         * going away is logged by session_on_closed(); RSET or QUIT between BDAT chunks is
         * no refusal. */
        if (!ev->reply || strncmp(ev->reply, "421", 3) != 0) {
            s->in_data = false;
            if (ev->reply && s->msg)
                log_info("%s: message refused: %s", s->qid, ev->reply);
            if (ev->reply)
                metrics_message_rejected(METRICS_REJECT_DATA);
        }
        session_milter_abort(s);
        session_drop_message(s);
        break;
    case SMTP_EV_RSET:
        session_milter_abort(s);
        session_drop_message(s);
        break;
    case SMTP_EV_CLOSE:
        session_log_close(s, ev->reason ? ev->reason : "quit");
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
        session_note_command(s, smtp_server_transaction(s->smtp)->esmtp ? "EHLO" : "HELO");
        break;
    case SMTP_EV_RCPT:
        session_note_command(s, "RCPT");
        break;
    case SMTP_EV_HEADER_END: /* only on local sessions */
        if (s->msg)
            session_local_headers(s, ev);
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
    metrics_worker_attach(index);
    if (queuerun_worker_start(dw, index) < 0)
        exit(EX_OSERR);
    return dw;
}

static void session_worker_fini(struct engine_worker *w, void *worker_ctx)
{
    (void)w;
    struct daemon_worker *dw = worker_ctx;
    /* no count of lines not logged is lost at shutdown */
    log_limit_flush(&session_log_total_refusals);
    log_limit_flush(&session_log_client_refusals);
    log_limit_flush(&session_log_commit_failures);
    if (!dw)
        return;
    control_worker_fini(dw);
    queuerun_worker_free(dw);
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
    metrics_replies(line, n);
    engine_conn_send(dw->w, id, line, n);
}

/* "421 4.3.2 <host> <text>": the answer to a connection we will not serve. */
static void session_send_421(struct daemon_worker *dw, engine_conn_id id, const char *text)
{
    char reason[320];
    snprintf(reason, sizeof(reason), "%s %s", dw->rc->cfg->hostname, text);
    session_send_reply(dw, id, 421, "4.3.2", reason);
}

void *session_refuse(struct daemon_worker *dw, engine_conn_id id, const char *text)
{
    session_send_421(dw, id, text);
    return NULL;
}

/* sendmail's check_relay line (rscheck() with no queue id): arg1 is the client's name, or
 * its bracketed address when it has none (`name` NULL: not looked up yet, or no PTR), arg2
 * its address as sendmail's anynet_ntoa() writes it; relay= as session_relay() says it.
 * fail2ban's sendmail-reject filter reads it. */
void session_log_check_relay(struct log_limit *limit, const char *addr, const char *name,
                             const char *relay, const char *reject)
{
    char bracketed[64], line[1200];
    session_relay_of(addr, bracketed, sizeof(bracketed));
    snprintf(line, sizeof(line), "ruleset=check_relay, arg1=%s, arg2=%s%s, relay=%s, reject=%s",
             name ? name : bracketed, strchr(addr, ':') ? "IPv6:" : "", addr,
             relay ? relay : bracketed, reject);
    mailstats_conn(MAILSTATS_CONN_REJECT);
    if (limit)
        log_limited(limit, LOG_LVL_INFO, addr, "%s", line);
    else
        log_info("%s", line);
}

/* Connect:address REJECT or ERROR: in the access map. sendmail greets such a client and then
 * refuses every command but QUIT; ringmail answers the greeting itself with the refusal and
 * closes (RFC 5321 3.1 lets a server refuse at connection time): the client learns the same
 * thing at once, and never holds a session slot. "550 5.7.1 <host> Access denied", or the
 * entry's ERROR: reply as written; the log says what sendmail's does, "reject=550 5.7.1
 * Access denied". */
static void *session_refuse_access(struct daemon_worker *dw, engine_conn_id id, const char *addr,
                                   const struct policy_verdict *v)
{
    char text[320], reject[400];
    if (strcmp(v->text, "Access denied") == 0)
        snprintf(text, sizeof(text), "%s %s", dw->rc->cfg->hostname, v->text);
    else
        snprintf(text, sizeof(text), "%s", v->text);
    snprintf(reject, sizeof(reject), "%d %s %s", v->code, v->enh, v->text);
    session_log_check_relay(NULL, addr, NULL, NULL, reject);
    session_send_reply(dw, id, v->code, v->enh, text);
    return NULL;
}

/* A client over its ClientRate: (`rate`) or ClientConn: limit (policy_client_limited): the
 * check_relay line, which fail2ban's sendmail-reject filter counts, and with `terminate`
 * sendmail's reply, exactly (no host name); true when refused (nothing else to do). */
static bool session_limit_client(struct daemon_worker *dw, engine_conn_id id, const char *addr,
                                 struct policy_session *pol, bool rate)
{
    struct policy_verdict v;
    policy_client_limited(&dw->rc->policy, pol, rate, &v);
    if (v.action != POLICY_REJECT)
        return false;
    char reject[300];
    snprintf(reject, sizeof(reject), "%d %s %s", v.code, v.enh, v.text);
    session_log_check_relay(&session_log_client_refusals, addr, NULL, NULL, reject);
    if (v.code != 421)
        return false;
    session_send_reply(dw, id, 421, "4.3.2", v.text);
    return true;
}

static void session_say_shutdown(struct session *s)
{
    session_send_421(s->dw, s->id, "Shutting down");
    session_close(s);
}

static const struct engine_conn_callbacks session_conn_callbacks;

/* The session of a connection let in: NULL (a 421 queued) when memory runs out; the
 * caller then releases what it took for it (`local` is the session's from here). */
static void *session_start(struct daemon_worker *dw, engine_conn_id id, unsigned listener,
                           const struct sockaddr *peer, socklen_t peerlen, const char *addr,
                           const struct policy_session *pol, struct submission_caller *local)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s) {
        free(local);
        return session_refuse(dw, id, "Out of memory");
    }
    s->conn.cb = &session_conn_callbacks;
    s->dw = dw;
    s->id = id;
    s->listener = listener;
    if (pol)
        s->pol = *pol;
    s->local = local;
    s->rc = runconf_ref(dw->rc);
    memcpy(&s->peer, peer, peerlen < sizeof(s->peer) ? peerlen : sizeof(s->peer));
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    s->io.arg = s;
    s->io.reply = session_io_reply;
    s->io.event = session_io_event;
    s->io.check_rcpt = session_check_rcpt;
    s->io.check_mail = session_check_mail;
    session_auth_io(s);
    session_milter_hooks(s);
    s->tp = &session_plain;

    qid_new(s->qid, engine_worker_index(dw->w)); /* the connection's id until MAIL */
    s->next = dw->sessions;
    if (dw->sessions)
        dw->sessions->prev = s;
    dw->sessions = s;
    metrics_connection_open(1);
    if (session_checks_start(s))
        session_rearm(s); /* the greeting waits for the lookups and the pause */
    else
        session_greet(s, NULL, 0);
    return s;
}

void session_greet(struct session *s, const char *early, size_t len)
{
    if (!session_milter_greeting(s, early, len))
        session_greet_now(s, early, len);
}

void session_greet_now(struct session *s, const char *early, size_t len)
{
    char client[SESSION_RELAY_MAX], date[64], greeting[320];
    uint64_t now = engine_now_ms(s->dw->w);
    /* Made now, so the HELO reply names the client as its lookups found it. */
    s->smtp = smtp_server_new(s->local ? &s->rc->smtp_local : runconf_smtp(s->rc, s->listener),
                              &s->io, session_relay(s, client, sizeof(client)), now);
    if (!s->smtp) {
        session_send_421(s->dw, s->id, "Out of memory");
        session_close(s);
        return;
    }
    session_rfc5322_date(date, sizeof(date));
    snprintf(greeting, sizeof(greeting), "%s ESMTP ringmail %s; %s", s->rc->cfg->hostname,
             RINGMAIL_VERSION, date);
    s->in_smtp = true;
    smtp_server_start(s->smtp, greeting, now);
    if (len)
        s->tp->recv(s, early, len);
    session_after_smtp(s);
}

void session_refuse_greeting(struct session *s, int code, const char *enh, const char *text,
                             const char *reject)
{
    char relay[SESSION_RELAY_MAX], reply[600];
    session_log_check_relay(NULL, s->addr, s->client_name, session_relay(s, relay, sizeof(relay)),
                            reject);
    snprintf(reply, sizeof(reply), "%s %s", s->rc->cfg->hostname, text);
    session_send_reply(s->dw, s->id, code, enh, reply);
    session_close(s);
}

/* A process of this host on submission.socket: known by its credentials, never by its
 * address (it has none), and counted in slots of its own (submission.connections, per uid
 * connections_per_user), never against limits.connections: a local flood cannot lock out
 * the TCP clients, nor a TCP flood the local users. */
static void *session_accept_local(struct daemon_worker *dw, engine_conn_id id,
                                  const struct sockaddr *peer, socklen_t peerlen)
{
    const struct config *cfg = dw->rc->cfg;
    struct ucred cred;
    if (engine_conn_peer_cred(dw->w, id, &cred) < 0) {
        log_error("submission.socket: cannot learn the caller (SO_PEERCRED): %s", strerror(errno));
        metrics_connection(METRICS_LISTENER_LOCAL, METRICS_CONN_OTHER);
        return session_refuse(dw, id, "Cannot identify the caller");
    }
    struct submission_caller *local = malloc(sizeof(*local));
    if (!local)
        return session_refuse(dw, id, "Out of memory");
    submission_caller_init(cfg, cred.uid, cred.gid, cred.pid, local);
    enum connlimit_verdict v =
        connlimit_acquire_uid(dw->d->local_conns, cred.uid, cfg->submission_connections,
                              cfg->submission_connections_per_user);
    if (v != CONNLIMIT_OK) {
        log_limited(&session_log_total_refusals, LOG_LVL_INFO, local->user,
                    "rejecting connections on daemon submission: user %s (uid %u) has %u, "
                    "%u in all, max %u per user, %u in all",
                    local->user, (unsigned)cred.uid,
                    connlimit_count_uid(dw->d->local_conns, cred.uid),
                    connlimit_total(dw->d->local_conns), cfg->submission_connections_per_user,
                    cfg->submission_connections);
        free(local);
        metrics_connection(METRICS_LISTENER_LOCAL, v == CONNLIMIT_TOTAL
                                                       ? METRICS_CONN_MAX_CONNECTIONS
                                                       : METRICS_CONN_PER_CLIENT);
        if (v == CONNLIMIT_TOTAL) /* as MaxDaemonChildren: "421 4.3.2 <host> ..." */
            return session_refuse(dw, id, "Too many open connections");
        session_send_reply(dw, id, 421, "4.3.2", CLIENTLIMIT_CONNS_TEXT); /* as ClientConn: */
        return NULL;
    }
    void *s =
        session_start(dw, id, DAEMON_LISTENER_SUBMISSION, peer, peerlen, "localhost", NULL, local);
    metrics_connection(METRICS_LISTENER_LOCAL, s ? METRICS_CONN_ACCEPTED : METRICS_CONN_OTHER);
    if (!s)
        connlimit_release_uid(dw->d->local_conns, cred.uid);
    return s;
}

void *session_accept_client(struct daemon_worker *dw, engine_conn_id id, unsigned listener,
                            const struct sockaddr *peer, socklen_t peerlen)
{
    const struct config *cfg = dw->rc->cfg;
    char addr[48];

    netaddr_format(peer, addr, sizeof(addr));
    struct policy_client c = {.addr = addr, .sa = peer};
    struct policy_session pol;
    struct policy_verdict v;
    policy_connect(&dw->rc->policy, &c, &pol, &v);
    if (v.action == POLICY_REJECT) {
        metrics_connection(listener, METRICS_CONN_ACCESS);
        return session_refuse_access(dw, id, addr, &v);
    }
    /* FEATURE(ratecontrol) and FEATURE(conncontrol): refused now (`terminate`), or greeted
     * and refused at MAIL or RCPT, the slot held as sendmail's child holds it. */
    struct clientlimit lim;
    clientlimit_lookup(&cfg->map.access, addr,
                       &(struct clientlimit){cfg->connection_rate, cfg->max_connections_per_client},
                       &lim);
    if (lim.rate &&
        clientrate_hit(dw->d->rates, peer, engine_now_ms(dw->w), cfg->connection_rate_window_ms) >
            lim.rate &&
        session_limit_client(dw, id, addr, &pol, true)) {
        metrics_connection(listener, METRICS_CONN_RATE);
        return NULL;
    }
    enum connlimit_verdict cv =
        connlimit_acquire(dw->d->conns, peer, cfg->max_connections, lim.conns);
    if (cv == CONNLIMIT_CLIENT) {
        if (session_limit_client(dw, id, addr, &pol, false)) {
            metrics_connection(listener, METRICS_CONN_PER_CLIENT);
            return NULL;
        }
        cv = connlimit_acquire(dw->d->conns, peer, cfg->max_connections, 0);
    }
    switch (cv) {
    case CONNLIMIT_TOTAL:
        /* sendmail's MaxDaemonChildren line: the daemon is full, the client did nothing
         * wrong (no check_relay line, which fail2ban would count against it). */
        mailstats_conn(MAILSTATS_CONN_REJECT);
        log_limited(&session_log_total_refusals, LOG_LVL_INFO, NULL,
                    "rejecting connections on daemon %s: %u children, max %u",
                    session_daemon->listener_names[listener], connlimit_total(dw->d->conns),
                    cfg->max_connections);
        metrics_connection(listener, METRICS_CONN_MAX_CONNECTIONS);
        return session_refuse(dw, id, "Too many open connections");
    case CONNLIMIT_CLIENT: /* not after the second acquire: no per-client limit there */
    case CONNLIMIT_OK:
        break;
    }
    struct session *s = session_start(dw, id, listener, peer, peerlen, addr, &pol, NULL);
    metrics_connection(listener, s ? METRICS_CONN_ACCEPTED : METRICS_CONN_OTHER);
    if (!s) {
        connlimit_release(dw->d->conns, peer);
        return NULL;
    }
    s->verdict = v; /* a DISCARD or QUARANTINE for every message: sendmail's line now */
    char relay[80];
    session_policy_log_hold(s, session_relay(s, relay, sizeof(relay)), NULL);
    s->verdict.ruleset = NULL;
    return s;
}

static void *session_on_accept(struct engine_worker *w, engine_conn_id id, unsigned listener,
                               const struct sockaddr *peer, socklen_t peerlen,
                               const struct sockaddr *local, socklen_t locallen)
{
    (void)local;
    (void)locallen;
    struct daemon_worker *dw = engine_worker_ctx(w);
    if (listener == DAEMON_LISTENER_METRICS)
        return metrics_http_accept(dw, id);
    if (dw->draining) {
        if (listener != DAEMON_LISTENER_CONTROL)
            metrics_connection(listener == DAEMON_LISTENER_SUBMISSION ? METRICS_LISTENER_LOCAL
                                                                      : listener,
                               METRICS_CONN_SHUTDOWN);
        return session_refuse(dw, id, "Shutting down");
    }
    if (listener == DAEMON_LISTENER_CONTROL) {
        struct ucred cred;
        if (engine_conn_peer_cred(w, id, &cred) < 0) {
            log_error("submission.control_socket: cannot learn the caller (SO_PEERCRED): %s",
                      strerror(errno));
            return NULL;
        }
        return control_accept(dw, id, &cred);
    }
    if (listener == DAEMON_LISTENER_SUBMISSION)
        return session_accept_local(dw, id, peer, peerlen);
    mailstats_conn(MAILSTATS_CONN_FROM); /* sendmail's STATS_CONNECT: every one accepted */
    if (listener < dw->rc->cfg->n_listen && dw->rc->cfg->listen[listener].proxy_protocol)
        return session_proxy_accept(dw, id, listener, peer); /* the client comes later */
    return session_accept_client(dw, id, listener, peer, peerlen);
}

static void session_on_recv(void *ctx, const char *data, size_t len)
{
    struct session *s = ctx;
    if (s->closing)
        return;
    if (s->checks) {
        session_checks_input(s, data, len);
        return;
    }
    if (!s->smtp) { /* the filters decide on the greeting */
        session_milter_early(s, data, len);
        return;
    }
    s->in_smtp = true;
    s->tp->recv(s, data, len);
    session_after_smtp(s);
}

static void session_on_timer(void *ctx)
{
    struct session *s = ctx;
    if (s->closing)
        return;
    if (s->checks) {
        session_checks_timer(s);
        return;
    }
    if (!s->smtp)
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
    bool peer_first = !s->closing;
    s->closing = true;
    s->in_smtp = true;
    /* sendmail's lines for a client that went away: inside DATA (a message in progress has
     * its own queue id and sender), or between commands. */
    bool in_data = s->in_data;
    session_checks_free(s);
    session_sender_free(s);
    session_milter_free(s);
    free(s->early);
    free(s->milter_mail);
    free(s->commit_refusal);
    if (s->smtp)
        smtp_server_eof(s->smtp); /* aborts a message in progress (DATA_ABORT) */
    if (peer_first)
        session_log_peer_gone(s, in_data);
    session_drop_message(s);
    if (s->smtp)
        smtp_server_free(s->smtp);
    free(s->client_name);
    s->tp->free(s);
    session_auth_free(s);
    free(s->msgid);
    if (s->local) /* every session has a slot: a local one by uid, a TCP one by address */
        connlimit_release_uid(dw->d->local_conns, s->local->uid);
    else
        connlimit_release(dw->d->conns, (const struct sockaddr *)&s->peer);
    free(s->local);
    runconf_unref(s->rc);
    if (s->prev)
        s->prev->next = s->next;
    else
        dw->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
    metrics_connection_open(-1);
    if (dw->draining && !dw->sessions)
        engine_worker_exit(dw->w);
}

/* Sessions with no message in progress are closed at once; the others when their
 * transaction ends (session_commit_done). */
static void session_drain(struct daemon_worker *dw)
{
    dw->draining = true;
    engine_worker_stop_accepting(dw->w);
    queuerun_worker_stop(dw);
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
        queuerun_reconfigure(dw);
        break;
    case DAEMON_MSG_DRAIN:
        session_drain(dw);
        break;
    case DAEMON_MSG_EXIT:
        queuerun_worker_stop(dw); /* its lookups and connections end with the worker */
        engine_worker_exit(w);
        break;
    case CONTROL_ENGINE_MSG:
        control_on_message(dw);
        break;
    case QUEUERUN_ENGINE_MSG:
        queuerun_on_message(dw);
        break;
    case SASL_ENGINE_MSG:
        sasl_pool_on_message(dw->d->sasl, engine_worker_index(w));
        break;
    default:
        log_warn("worker %u: unknown message %u", engine_worker_index(w), msg);
    }
}

static const struct engine_conn_callbacks session_conn_callbacks = {
    .on_recv = session_on_recv,
    .on_timer = session_on_timer,
    .on_closed = session_on_closed,
};

/* Every accepted connection's context starts with its kind's callbacks (struct
 * daemon_conn): an SMTP session's or a control connection's. */
static void session_dispatch_recv(void *ctx, const char *data, size_t len)
{
    ((struct daemon_conn *)ctx)->cb->on_recv(ctx, data, len);
}

static void session_dispatch_drained(void *ctx)
{
    const struct engine_conn_callbacks *cb = ((struct daemon_conn *)ctx)->cb;
    if (cb->on_drained)
        cb->on_drained(ctx);
}

static void session_dispatch_timer(void *ctx)
{
    const struct engine_conn_callbacks *cb = ((struct daemon_conn *)ctx)->cb;
    if (cb->on_timer)
        cb->on_timer(ctx);
}

static void session_dispatch_closed(void *ctx, int err)
{
    ((struct daemon_conn *)ctx)->cb->on_closed(ctx, err);
}

const struct engine_callbacks session_engine_callbacks = {
    .worker_init = session_worker_init,
    .worker_fini = session_worker_fini,
    .on_accept = session_on_accept,
    .on_recv = session_dispatch_recv,
    .on_drained = session_dispatch_drained,
    .on_timer = session_dispatch_timer,
    .on_closed = session_dispatch_closed,
    .on_message = session_on_message,
};
