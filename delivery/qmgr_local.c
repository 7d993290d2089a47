/*
 * delivery/qmgr_local.c — a queue manager's local recipients (delivery/qmgr.h, "local
 * recipients"): each one's target goes to the privileged parent's agent (delivery/local.h)
 * or, for mailboxes with mailers.lmtp, to the LMTP server like a next hop; a user's
 * .forward and a recipient that still needs expanding make a new message for what leaves
 * this recipient (Postfix's "forwarded as").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "delivery/qmgr_int.h"
#include "queue/spool.h"
#include "util/log.h"
#include "util/xtext.h"

/* A header block longer than this is not searched for an earlier Delivered-To. */
#define QMGR_LOCAL_HEADER_SCAN (256u << 10)

struct qmgr_local_rcpt {
    struct qmgr_msg *m;
    size_t i;
    struct qmgr_local_target target; /* what the envelope's address stands for */
    bool alias;                      /* PROGRAM/FILE from the aliases file */
    bool expand;                     /* not expanded yet: `targets` are its expansion */
    struct qmgr_local_targets targets;
    bool lmtp;    /* a mailbox over LMTP: grouped like a next hop */
    bool relayed; /* luser_relay's host: grouped like a next hop */
    char login[64];
    char lmtp_rcpt[200];
    unsigned open; /* requests and forwards in flight */
    unsigned delivered, deferred, failed;
    unsigned traced; /* outcomes that were .forward targets with a line of their own */
    bool has_ids;    /* uid/gid: the identity of the last delivery that ran (the log's ctladdr) */
    uint32_t uid, gid;
    char status[12], stat[600];
    char mailer[sizeof(((struct route *)0)->mailer)];
};

struct qmgr_local_op {
    struct qmgr_local_rcpt *lr;
    /* A target of the user's .forward: its log line's to= ("\"|prog\"", "/file",
     * "\\user"); "" for the recipient's own delivery, whose line is the queue's. */
    char to[1040];
};

void qmgr_local_targets_free(struct qmgr_local_targets *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].value);
        free(t->v[i].detail);
        free(t->v[i].relay);
        free(t->v[i].sender);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

/* "alice+box@host" → login "alice", detail "box" (sendmail's +detail). */
static void qmgr_local_split(const char *addr, char *login, size_t loginlen, char **detail)
{
    const char *at = strrchr(addr, '@');
    size_t n = at ? (size_t)(at - addr) : strlen(addr);
    const char *plus = memchr(addr, '+', n);
    size_t user = plus ? (size_t)(plus - addr) : n;
    snprintf(login, loginlen, "%.*s", (int)user, addr);
    *detail = plus ? strndup(plus + 1, n - user - 1) : NULL;
}

bool qmgr_local_route(struct qmgr_msg *m, size_t i)
{
    const struct qmgr_local_settings *ls = m->s->local;
    if (!ls)
        return false;
    struct qmgr_rcpt *r = &m->r[i];
    const struct envelope_rcpt *er = &m->env.rcpts[i];
    struct qmgr_local_rcpt *lr = calloc(1, sizeof(*lr));
    if (!lr) {
        r->outcome = QMGR_DEFERRED;
        snprintf(r->status, sizeof(r->status), "4.3.0");
        snprintf(r->stat, sizeof(r->stat), "local delivery: out of memory");
        return true;
    }
    r->local = lr;
    lr->m = m;
    lr->i = i;
    snprintf(r->route.mailer, sizeof(r->route.mailer), "local");
    if (!er->expanded) {
        lr->expand = true;
        if (m->s->local->expand(m->s->local->arg, er->addr, &lr->targets) < 0) {
            r->outcome = QMGR_DEFERRED;
            snprintf(r->status, sizeof(r->status), "4.3.0");
            snprintf(r->stat, sizeof(r->stat), "alias expansion: out of memory");
            return true;
        }
        const struct qmgr_local_target *t = lr->targets.v;
        /* luser_relay's host: the target's address (compat/alias_expand.h) sent there like
         * a mailertable entry */
        if (lr->targets.n == 1 && t->kind == QMGR_LOCAL_REMOTE && t->relay) {
            const char *at = strrchr(er->addr, '@');
            char why[256];
            if (route_parse(t->relay, "relay", at ? at + 1 : m->s->hostname, &r->route, why,
                            sizeof(why)) < 0) {
                r->outcome = QMGR_DEFERRED;
                snprintf(r->status, sizeof(r->status), "4.3.5");
                snprintf(r->stat, sizeof(r->stat), "routing.luser_relay: %s", why);
            }
            lr->expand = false;
            lr->relayed = true;
        }
    } else if (er->addr[0] == '|' || er->addr[0] == '/') {
        lr->alias = true;
        lr->target.kind = er->addr[0] == '|' ? QMGR_LOCAL_PROGRAM : QMGR_LOCAL_FILE;
        lr->target.value = strdup(er->addr[0] == '|' ? er->addr + 1 : er->addr);
        snprintf(r->route.mailer, sizeof(r->route.mailer), "%s",
                 er->addr[0] == '|' ? "prog" : "*file*");
    } else {
        lr->target.kind = QMGR_LOCAL_MAILBOX;
        qmgr_local_split(er->addr, lr->login, sizeof(lr->login), &lr->target.detail);
        lr->target.value = strdup(lr->login);
        if (ls->lmtp) {
            lr->lmtp = true;
            r->route = *ls->lmtp;
            snprintf(lr->lmtp_rcpt, sizeof(lr->lmtp_rcpt), "%s%s%s", lr->login,
                     lr->target.detail ? "+" : "", lr->target.detail ? lr->target.detail : "");
        }
    }
    if (!lr->expand && !lr->relayed && !lr->target.value) {
        r->outcome = QMGR_DEFERRED;
        snprintf(r->status, sizeof(r->status), "4.3.0");
        snprintf(r->stat, sizeof(r->stat), "local delivery: out of memory");
    }
    return true;
}

const char *qmgr_local_lmtp_rcpt(const struct qmgr_msg *m, size_t i)
{
    const struct qmgr_local_rcpt *lr = m->r[i].local;
    if (lr && lr->relayed)
        return lr->targets.v[0].value;
    return lr && lr->lmtp ? lr->lmtp_rcpt : NULL;
}

/* --- outcomes --- */

static void qmgr_local_note(struct qmgr_local_rcpt *lr, enum local_status st, const char *enh,
                            const char *text, const char *mailer)
{
    if (st == LOCAL_DELIVERED) {
        lr->delivered++;
        if (!lr->deferred && !lr->failed) {
            snprintf(lr->status, sizeof(lr->status), "%.11s", enh[0] ? enh : "2.0.0");
            snprintf(lr->stat, sizeof(lr->stat), "%.599s", text[0] ? text : "Sent");
        }
    } else if ((st == LOCAL_DEFERRED && !lr->deferred) ||
               (st == LOCAL_FAILED && !lr->deferred && !lr->failed)) {
        snprintf(lr->status, sizeof(lr->status), "%.11s", enh);
        snprintf(lr->stat, sizeof(lr->stat), "%.599s", text); /* a program's output is cut */
    }
    if (st == LOCAL_DEFERRED)
        lr->deferred++;
    else if (st == LOCAL_FAILED)
        lr->failed++;
    if (mailer && mailer[0])
        snprintf(lr->mailer, sizeof(lr->mailer), "%.15s", mailer);
}

static void qmgr_local_release(struct qmgr_local_rcpt *lr)
{
    if (--lr->open > 0)
        return;
    struct qmgr_msg *m = lr->m;
    struct qmgr_rcpt *r = &m->r[lr->i];
    r->outcome = lr->deferred ? QMGR_DEFERRED : lr->failed ? QMGR_FAILED : QMGR_DELIVERED;
    snprintf(r->status, sizeof(r->status), "%s", lr->status);
    snprintf(r->stat, sizeof(r->stat), "%s", lr->stat);
    /* the bounce's transcript and Diagnostic-Code say what the mailer said, in the reply
     * form sendmail's local errors take */
    if (r->outcome != QMGR_DELIVERED)
        snprintf(r->diagnostic, sizeof(r->diagnostic), "%s %.11s %.500s",
                 r->outcome == QMGR_FAILED ? "550" : "451", lr->status, lr->stat);
    if (lr->mailer[0])
        memcpy(r->route.mailer, lr->mailer, sizeof(lr->mailer));
    qmgr_group_release(m);
}

/* --- requests to the parent's agent --- */

static void qmgr_local_forward(struct qmgr_local_rcpt *lr, const char *text);

/* sendmail's line for one target of a .forward, with the controlling address: the user
 * whose .forward named it, and the identity the agent delivered as. */
static void qmgr_local_trace_target(struct qmgr_local_rcpt *lr, const char *to,
                                    const struct local_reply *rep)
{
    struct qmgr_msg *m = lr->m;
    char ctladdr[400];
    int n = snprintf(ctladdr, sizeof(ctladdr), "<%s@%s>", lr->login, m->s->local->hostname);
    if (rep->has_ids && n > 0 && (size_t)n < sizeof(ctladdr))
        snprintf(ctladdr + n, sizeof(ctladdr) - (size_t)n, " (%u/%u)", rep->uid, rep->gid);
    enum qmgr_log_stat stat = rep->status == LOCAL_DELIVERED ? QMGR_LOG_SENT
                              : rep->status == LOCAL_FAILED  ? QMGR_LOG_FAILED
                                                             : QMGR_LOG_DEFERRED;
    qmgr_trace_line(m, to, ctladdr, rep->mailer[0] ? rep->mailer : "local", NULL, stat, rep->enh,
                    rep->text);
    lr->traced++;
}

static void qmgr_local_replied(void *arg, const struct local_reply *rep)
{
    struct qmgr_local_op *op = arg;
    struct qmgr_local_rcpt *lr = op->lr;
    if (rep->status == LOCAL_FORWARD && !lr->m->stopped)
        qmgr_local_forward(lr, rep->forward);
    else if (rep->status == LOCAL_FORWARD)
        qmgr_local_note(lr, LOCAL_DEFERRED, "4.3.2", "shutting down", NULL);
    else {
        if (rep->has_ids) {
            lr->has_ids = true;
            lr->uid = rep->uid;
            lr->gid = rep->gid;
        }
        if (op->to[0])
            qmgr_local_trace_target(lr, op->to, rep);
        qmgr_local_note(lr, (enum local_status)rep->status, rep->enh, rep->text, rep->mailer);
    }
    free(op);
    qmgr_local_release(lr);
}

bool qmgr_local_traced(const struct qmgr_msg *m, size_t i)
{
    const struct qmgr_local_rcpt *lr = m->r[i].local;
    return lr && lr->traced && lr->traced == lr->delivered + lr->deferred + lr->failed;
}

/* The alias a program or file of the aliases file came from, from the ORCPT its expansion
 * recorded: "<list@host>"; false when it is not a plain address (a client's own ORCPT may
 * hold anything, and the log line must stay one parsable line). */
static bool qmgr_local_alias_of(const struct envelope_rcpt *er, char *out, size_t outlen)
{
    static const char type[] = "rfc822;";
    char addr[600];
    if (!er->orcpt || strncasecmp(er->orcpt, type, sizeof(type) - 1) != 0)
        return false;
    const char *x = er->orcpt + sizeof(type) - 1;
    if (xtext_decode(x, strlen(x), addr, sizeof(addr)) <= 0 || !strchr(addr, '@'))
        return false;
    for (const char *c = addr; *c; c++)
        if (*c <= ' ' || *c >= 127 || strchr("<>,\"()", *c))
            return false;
    return snprintf(out, outlen, "<%s>", addr) < (int)outlen;
}

bool qmgr_local_names(const struct qmgr_msg *m, size_t i, char *to, size_t tolen, char *ctladdr,
                      size_t ctllen)
{
    const struct qmgr_local_rcpt *lr = m->r[i].local;
    if (!lr || !lr->alias || !lr->target.value)
        return false;
    bool prog = lr->target.kind == QMGR_LOCAL_PROGRAM;
    snprintf(to, tolen, "%s%s%s", prog ? "\"|" : "", lr->target.value, prog ? "\"" : "");
    ctladdr[0] = '\0';
    if (qmgr_local_alias_of(&m->env.rcpts[i], ctladdr, ctllen) && lr->has_ids) {
        size_t n = strlen(ctladdr);
        snprintf(ctladdr + n, ctllen - n, " (%u/%u)", lr->uid, lr->gid);
    }
    return true;
}

/* One request for a target of `lr`: as the aliases' (`alias`), or as `lr->login`'s.
 * `from_forward`: the target is one the user's .forward named (it gets its own log line). */
static void qmgr_local_request(struct qmgr_local_rcpt *lr, const struct qmgr_local_target *t,
                               bool alias, bool no_forward, bool from_forward)
{
    struct qmgr_msg *m = lr->m;
    struct local_request rq = {.version = LOCAL_PROTO_VERSION,
                               .arrival = m->env.created,
                               .data_offset = m->env.data_offset};
    rq.op = t->kind == QMGR_LOCAL_PROGRAM ? LOCAL_OP_PROGRAM
            : t->kind == QMGR_LOCAL_FILE  ? LOCAL_OP_FILE
                                          : LOCAL_OP_MAILBOX;
    rq.flags = (alias ? LOCAL_F_ALIAS : 0) | (no_forward ? LOCAL_F_NO_FORWARD : 0);
    const char *user = t->kind == QMGR_LOCAL_MAILBOX ? t->value : alias ? "" : lr->login;
    const char *target = t->kind == QMGR_LOCAL_MAILBOX ? "" : t->value;
    const char *rcpt = m->env.rcpts[lr->i].addr;
    if (snprintf(rq.qid, sizeof(rq.qid), "%s", m->qid) >= (int)sizeof(rq.qid) ||
        snprintf(rq.user, sizeof(rq.user), "%s", user) >= (int)sizeof(rq.user) ||
        snprintf(rq.detail, sizeof(rq.detail), "%s", t->detail ? t->detail : "") >=
            (int)sizeof(rq.detail) ||
        snprintf(rq.sender, sizeof(rq.sender), "%s", m->env.sender) >= (int)sizeof(rq.sender) ||
        snprintf(rq.recipient, sizeof(rq.recipient), "%s", rcpt) >= (int)sizeof(rq.recipient) ||
        snprintf(rq.target, sizeof(rq.target), "%s", target) >= (int)sizeof(rq.target)) {
        qmgr_local_note(lr, LOCAL_FAILED, "5.3.4", "address or command too long for local delivery",
                        NULL);
        return;
    }
    struct qmgr_local_op *op = calloc(1, sizeof(*op));
    int rc = op ? local_deliver(m->q->lw, &rq, m->s->local->timeout_ms, qmgr_local_replied, op)
                : -ENOMEM;
    if (rc == 0) {
        op->lr = lr;
        if (from_forward) /* sendmail's q_paddr: as the .forward wrote it */
            snprintf(op->to, sizeof(op->to), "%s%.1024s%s",
                     t->kind == QMGR_LOCAL_PROGRAM ? "\"|"
                     : t->kind == QMGR_LOCAL_FILE  ? ""
                                                   : "\\",
                     t->value, t->kind == QMGR_LOCAL_PROGRAM ? "\"" : "");
        lr->open++;
        return;
    }
    free(op);
    char text[200];
    snprintf(text, sizeof(text), "%s",
             rc == -ENOTCONN ? "local delivery is not available" : strerror(-rc));
    qmgr_local_note(lr, LOCAL_DEFERRED, "4.3.0", text, NULL);
}

/* --- forwarding: a new message for what leaves this recipient --- */

struct qmgr_local_fwd {
    struct qmgr_local_rcpt *lr;
    char qid[QID_LEN + 1];
    bool fanout; /* the recipient's whole expansion (else a .forward's addresses) */
};

static void qmgr_local_fwd_committed(void *arg, int err)
{
    struct qmgr_local_fwd *f = arg;
    struct qmgr_local_rcpt *lr = f->lr;
    if (err == 0) {
        char text[64];
        snprintf(text, sizeof(text), "%s as %s", f->fanout ? "expanded" : "forwarded", f->qid);
        qmgr_local_note(lr, LOCAL_DELIVERED, "2.0.0", text, NULL);
        qmgr_enqueue(lr->m->q, f->qid, 0);
    } else {
        qmgr_local_note(lr, LOCAL_DEFERRED, "4.3.0", "cannot queue the forwarded message", NULL);
    }
    free(f);
    qmgr_local_release(lr);
}

/* Whether the message already went through `who`'s forwarding (Postfix's Delivered-To
 * loop check): a Delivered-To header with that address. */
static bool qmgr_local_looped(const struct qmgr_msg *m, const char *who)
{
    size_t n = m->len < QMGR_LOCAL_HEADER_SCAN ? m->len : QMGR_LOCAL_HEADER_SCAN;
    size_t wl = strlen(who);
    static const char tag[] = "Delivered-To:";
    for (size_t at = 0; at < n;) {
        const char *line = m->data + at;
        const char *nl = memchr(line, '\n', n - at);
        size_t len = nl ? (size_t)(nl - line) : n - at;
        if (len == 0 || (len == 1 && line[0] == '\r'))
            break;
        if (len > sizeof(tag) - 1 && strncasecmp(line, tag, sizeof(tag) - 1) == 0) {
            const char *v = line + sizeof(tag) - 1;
            size_t vl = len - (sizeof(tag) - 1);
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            if (vl == wl && strncasecmp(v, who, wl) == 0)
                return true;
        }
        at += len + 1;
    }
    return false;
}

static bool qmgr_local_same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Queues those of `targets` whose envelope sender is `sender` (NULL: the message's own;
 * an owner-NAME alias's otherwise) and that a new message can hold (REMOTE and MAILBOX
 * ones; PROGRAM and FILE too for a fan-out) as one new message. 1 queued, 0 none of them,
 * -1 when out of memory (noted). */
static int qmgr_local_queue_from(struct qmgr_local_rcpt *lr, const struct qmgr_local_targets *t,
                                 bool fanout, const char *sender, const char *who)
{
    struct qmgr_msg *m = lr->m;
    const struct qmgr_local_settings *ls = m->s->local;
    const struct envelope_rcpt *er = &m->env.rcpts[lr->i];
    struct envelope_rcpt *rcpts = calloc(t->n ? t->n : 1, sizeof(*rcpts));
    char **addrs = calloc(t->n ? t->n : 1, sizeof(char *));
    char orcpt[1100] = "";
    if (!er->orcpt) {
        char x[1024];
        xtext_encode(er->addr, x, sizeof(x));
        snprintf(orcpt, sizeof(orcpt), "rfc822;%s", x);
    }
    size_t n = 0;
    bool oom = !rcpts || !addrs;
    for (size_t k = 0; !oom && k < t->n; k++) {
        const struct qmgr_local_target *tg = &t->v[k];
        int len = -1;
        /* a .forward's own mailbox was delivered in this attempt (qmgr_local_forward) */
        if (!qmgr_local_same(tg->sender, sender) ||
            (!fanout && tg->kind == QMGR_LOCAL_MAILBOX && strcmp(tg->value, lr->login) == 0))
            continue;
        if (tg->kind == QMGR_LOCAL_REMOTE)
            len = asprintf(&addrs[n], "%s", tg->value);
        else if (tg->kind == QMGR_LOCAL_MAILBOX)
            len = asprintf(&addrs[n], "%s%s%s@%s", tg->value, tg->detail ? "+" : "",
                           tg->detail ? tg->detail : "", ls->hostname);
        else if (fanout && (tg->kind == QMGR_LOCAL_PROGRAM || tg->kind == QMGR_LOCAL_FILE))
            len = asprintf(&addrs[n], "%s%s", tg->kind == QMGR_LOCAL_PROGRAM ? "|" : "", tg->value);
        else
            continue;
        if (len < 0) {
            addrs[n] = NULL;
            oom = true;
            break;
        }
        rcpts[n] = (struct envelope_rcpt){
            .addr = addrs[n],
            .orcpt = er->orcpt ? er->orcpt : orcpt,
            .notify = er->notify,
            .state = ENV_RCPT_PENDING,
            .expanded = fanout && tg->kind != QMGR_LOCAL_REMOTE,
        };
        n++;
    }
    struct qmgr_local_fwd *f = oom || !n ? NULL : calloc(1, sizeof(*f));
    struct spool_msg *sm = f ? spool_msg_new(m->q->sw, f->qid) : NULL;
    char *owner = NULL;
    /* owner-NAME's value without a domain is a local name: qualified as sendmail does */
    if (sm && sender &&
        asprintf(&owner, "%s%s%s", sender, strchr(sender, '@') ? "" : "@",
                 strchr(sender, '@') ? "" : ls->hostname) < 0)
        owner = NULL;
    if (sm && sender && !owner) {
        spool_msg_abort(sm);
        sm = NULL;
    }
    if (sm) {
        struct envelope env = {
            .sender = owner ? owner : m->env.sender,
            .created = time(NULL),
            .proto = m->env.proto,
            .daemon = m->env.daemon,
            .helo = m->env.helo,
            .client_addr = m->env.client_addr,
            .client_name = m->env.client_name,
            .msgid = m->env.msgid,
            .rcpts = rcpts,
            .n_rcpts = n,
            .body = m->env.body,
            .smtputf8 = m->env.smtputf8,
            .dsn_ret = m->env.dsn_ret,
            .envid = m->env.envid,
            .auth = m->env.auth,
        };
        char hdr[400];
        int hl = fanout ? 0 : snprintf(hdr, sizeof(hdr), "Delivered-To: %s\r\n", who);
        if ((hl > 0 && spool_msg_write(sm, hdr, (size_t)hl) < 0) ||
            spool_msg_write(sm, m->data, m->len) < 0) {
            spool_msg_abort(sm);
            sm = NULL;
        } else {
            f->lr = lr;
            f->fanout = fanout;
            lr->open++;
            spool_msg_commit(sm, &env, qmgr_local_fwd_committed, f);
        }
    }
    free(owner);
    for (size_t k = 0; addrs && k < n; k++)
        free(addrs[k]);
    free(addrs);
    free(rcpts);
    if (sm)
        return 1;
    free(f);
    if (!oom && !n)
        return 0;
    qmgr_local_note(lr, LOCAL_DEFERRED, "4.3.0",
                    "cannot queue the forwarded message: out of memory", NULL);
    return -1;
}

/* Queues `targets` as new messages, one per envelope sender. `fanout`: the recipient's own
 * expansion, whose targets are the aliases' (marked expanded); else a .forward's, whose
 * local names are expanded again when delivered. */
static void qmgr_local_queue(struct qmgr_local_rcpt *lr, const struct qmgr_local_targets *t,
                             bool fanout)
{
    struct qmgr_msg *m = lr->m;
    const struct envelope_rcpt *er = &m->env.rcpts[lr->i];
    char who[300];
    snprintf(who, sizeof(who), "%s@%s", lr->login[0] ? lr->login : er->addr, m->s->local->hostname);
    if (!fanout && qmgr_local_looped(m, who)) {
        char text[400];
        snprintf(text, sizeof(text), "mail forwarding loop for %s", who);
        qmgr_local_note(lr, LOCAL_FAILED, "5.4.6", text, NULL);
        return;
    }
    int queued = 0;
    for (size_t k = 0; k < t->n; k++) {
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = qmgr_local_same(t->v[j].sender, t->v[k].sender);
        int rc = seen ? 0 : qmgr_local_queue_from(lr, t, fanout, t->v[k].sender, who);
        if (rc < 0)
            return;
        queued += rc;
    }
    if (!queued)
        qmgr_local_note(lr, LOCAL_FAILED, "5.1.1", "User unknown", NULL);
}

/* The errors among `t` are noted; says whether anything else is left. */
static bool qmgr_local_errors(struct qmgr_local_rcpt *lr, const struct qmgr_local_targets *t)
{
    bool rest = false;
    for (size_t k = 0; k < t->n; k++) {
        if (t->v[k].kind != QMGR_LOCAL_ERROR) {
            rest = true;
            continue;
        }
        qmgr_local_note(lr, t->v[k].status[0] == '4' ? LOCAL_DEFERRED : LOCAL_FAILED,
                        t->v[k].status, t->v[k].value, NULL);
    }
    return rest;
}

/* The agent found the user's .forward: its own mailbox, programs and files in this attempt,
 * its addresses in a new message. An empty one is ignored, as sendmail does. */
static void qmgr_local_forward(struct qmgr_local_rcpt *lr, const char *text)
{
    struct qmgr_msg *m = lr->m;
    struct qmgr_local_targets t = {0};
    if (m->s->local->forward(m->s->local->arg, lr->login, lr->target.detail, text, &t) < 0) {
        qmgr_local_note(lr, LOCAL_DEFERRED, "4.3.0", "reading the .forward: out of memory", NULL);
        qmgr_local_targets_free(&t);
        return;
    }
    bool others = false;
    struct qmgr_local_target self = {.kind = QMGR_LOCAL_MAILBOX, .value = lr->login};
    if (t.n == 0)
        qmgr_local_request(lr, &self, false, true, false);
    qmgr_local_errors(lr, &t);
    for (size_t k = 0; k < t.n; k++) {
        struct qmgr_local_target *tg = &t.v[k];
        bool own = tg->kind == QMGR_LOCAL_MAILBOX && strcmp(tg->value, lr->login) == 0;
        if (own || tg->kind == QMGR_LOCAL_PROGRAM || tg->kind == QMGR_LOCAL_FILE)
            qmgr_local_request(lr, tg, false, true, true);
        else if (tg->kind != QMGR_LOCAL_ERROR)
            others = true;
    }
    if (others)
        qmgr_local_queue(lr, &t, false);
    qmgr_local_targets_free(&t);
}

/* A recipient that was queued without expansion: expanded now. One target of its own
 * kind is delivered at once; more go out as a new message of expanded recipients. */
static void qmgr_local_expand(struct qmgr_local_rcpt *lr)
{
    struct qmgr_local_targets t = lr->targets;
    bool rest = qmgr_local_errors(lr, &t);
    if (t.n == 0)
        qmgr_local_note(lr, LOCAL_FAILED, "5.1.1", "User unknown", NULL);
    else if (rest && (t.n > 1 || t.v[0].kind == QMGR_LOCAL_REMOTE || t.v[0].sender))
        qmgr_local_queue(lr, &t, true);
    else if (rest) {
        snprintf(lr->login, sizeof(lr->login), "%s",
                 t.v[0].kind == QMGR_LOCAL_MAILBOX ? t.v[0].value : "");
        qmgr_local_request(lr, &t.v[0], t.v[0].kind != QMGR_LOCAL_MAILBOX, t.v[0].no_forward,
                           false);
    }
}

void qmgr_local_start(struct qmgr_msg *m)
{
    for (size_t i = 0; i < m->env.n_rcpts; i++) {
        struct qmgr_local_rcpt *lr = m->r[i].local;
        if (!lr || lr->lmtp || lr->relayed || m->r[i].outcome != QMGR_PENDING)
            continue;
        m->groups_open++;
        lr->open = 1; /* held while the requests start */
        if (lr->expand)
            qmgr_local_expand(lr);
        else
            qmgr_local_request(lr, &lr->target, lr->alias, lr->target.no_forward, false);
        m->attempted = true;
        qmgr_local_release(lr);
    }
}

void qmgr_local_free(struct qmgr_msg *m)
{
    for (size_t i = 0; m->r && i < m->env.n_rcpts; i++) {
        struct qmgr_local_rcpt *lr = m->r[i].local;
        if (!lr)
            continue;
        free(lr->target.value);
        free(lr->target.detail);
        qmgr_local_targets_free(&lr->targets);
        free(lr);
        m->r[i].local = NULL;
    }
}
