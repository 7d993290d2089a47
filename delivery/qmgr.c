#include "delivery/qmgr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/qmgr_int.h"
#include "delivery/qmgr_log.h"
#include "queue/bounce.h"
#include "queue/mailstats.h"
#include "queue/queue_index.h"
#include "queue/spool.h"
#include "util/buf.h"
#include "util/engine.h"
#include "util/log.h"
#include "util/metrics.h"

static void qmgr_kick(struct qmgr *q);
static void qmgr_arm(struct qmgr *q);
static void qmgr_admin_again(struct qmgr_admin_job *job, const char *qid);
static void qmgr_admin_stop(struct qmgr *q);
static void qmgr_admin_free_all(struct qmgr *q);
static void qmgr_watch_end_all(struct qmgr *q);
static void qmgr_watch_fire(struct engine_timer *t);
static void qmgr_attempt_over(struct qmgr_msg *m);

/* A session of this worker freed a slot of `key`: one message waiting for it goes. */
static void qmgr_slot_free(void *arg, const char *key)
{
    struct qmgr *q = arg;
    if (qmgr_wait_wake(q, key))
        qmgr_arm(q);
}

static struct qmgr *qmgr_of_timer(struct engine_timer *t)
{
    return (struct qmgr *)((char *)t - offsetof(struct qmgr, timer));
}

static void qmgr_timer_fire(struct engine_timer *t)
{
    struct qmgr *q = qmgr_of_timer(t);
    q->timer_due = 0;
    qmgr_kick(q);
}

struct qmgr *qmgr_new(struct engine_worker *w, struct spool_worker *sw, struct outbound_worker *ow,
                      struct local_worker *lw, const struct qmgr_hooks *hooks)
{
    struct qmgr *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    if (!(q->idx = queue_index_new())) {
        free(q);
        return NULL;
    }
    q->w = w;
    q->sw = sw;
    q->ow = ow;
    q->lw = lw;
    q->hooks = *hooks;
    q->timer.fire = qmgr_timer_fire;
    q->watch_timer.fire = qmgr_watch_fire;
    for (size_t i = 0; i < QMGR_RECENT; i++)
        buf_init(&q->recent[i].lines, QMGR_TRACE_MAX);
    if (ow)
        outbound_on_slot_free(ow, qmgr_slot_free, q);
    return q;
}

/* The gauges of this worker's queue (util/metrics.h), after every change of either count. */
static void qmgr_publish(const struct qmgr *q)
{
    metrics_queue_set(METRICS_QUEUE_ACTIVE, q->n_active);
    metrics_queue_set(METRICS_QUEUE_WAITING, queue_index_count(q->idx));
}

static void qmgr_msg_free(struct qmgr_msg *m)
{
    struct qmgr *q = m->q;
    if (m->prev)
        m->prev->next = m->next;
    else if (q->active == m)
        q->active = m->next;
    if (m->next)
        m->next->prev = m->prev;
    q->n_active--;
    qmgr_publish(q);
    for (size_t i = 0; i < m->n_groups; i++) {
        free(m->groups[i].rcpts);
        free(m->groups[i].to);
    }
    free(m->groups);
    qmgr_local_free(m);
    free(m->r);
    free(m->data);
    buf_free(&m->smtp_data);
    buf_free(&m->smtp_sender);
    buf_free(&m->trace);
    if (m->loaded)
        envelope_free(&m->env);
    if (m->ref)
        q->hooks.settings_put(m->ref);
    free(m);
}

void qmgr_stop(struct qmgr *q)
{
    /* Its sessions end next, and nothing waits for their slots any more. Once only: the
     * outbound worker may be gone at a second call. */
    if (q->ow && !q->stopping)
        outbound_on_slot_free(q->ow, NULL, NULL);
    q->stopping = true;
    engine_timer_disarm(q->w, &q->timer);
    q->timer_due = 0;
    for (struct qmgr_msg *m = q->active; m; m = m->next)
        m->stopped = true;
    qmgr_admin_stop(q);
    qmgr_watch_end_all(q);
}

void qmgr_free(struct qmgr *q)
{
    if (!q)
        return;
    engine_timer_disarm(q->w, &q->timer);
    if (q->ow && !q->stopping) /* after qmgr_stop the outbound worker may be gone */
        outbound_on_slot_free(q->ow, NULL, NULL);
    while (q->active)
        qmgr_msg_free(q->active);
    qmgr_admin_free_all(q);
    qmgr_watch_end_all(q);
    qmgr_wait_free(q);
    for (size_t i = 0; i < QMGR_RECENT; i++)
        buf_free(&q->recent[i].lines);
    queue_index_free(q->idx);
    free(q);
}

size_t qmgr_waiting(const struct qmgr *q)
{
    return queue_index_count(q->idx);
}

unsigned qmgr_active(const struct qmgr *q)
{
    return q->n_active;
}

/* The timer follows the index's first entry. */
static void qmgr_arm(struct qmgr *q)
{
    int64_t due;
    qmgr_publish(q);
    /* Held messages are never due: when the first is held, all are. */
    if (q->stopping || !queue_index_peek(q->idx, NULL, &due) || due >= ENVELOPE_NEXT_HELD)
        return;
    if (q->timer_due && q->timer_due <= due)
        return;
    int64_t now = time(NULL);
    uint64_t at = engine_now_ms(q->w) + (due > now ? (uint64_t)(due - now) * 1000 : 0);
    q->timer_due = due;
    engine_timer_arm(q->w, &q->timer, at);
}

int qmgr_reserve(struct qmgr *q, size_t n)
{
    return queue_index_reserve(q->idx, queue_index_count(q->idx) + n);
}

int qmgr_enqueue(struct qmgr *q, const char *qid, int64_t due)
{
    int64_t was;
    int rc = 0;
    if (queue_index_contains(q->idx, qid, &was)) {
        /* a held message stays held until RELEASE */
        if (due < was && was != ENVELOPE_NEXT_HELD)
            rc = queue_index_reschedule(q->idx, qid, due);
    } else {
        rc = queue_index_push(q->idx, qid, due);
    }
    if (rc == -ENOMEM)
        log_error("%.*s: cannot queue for delivery: out of memory (delivered after a restart)",
                  QID_LEN, qid);
    qmgr_arm(q);
    return rc;
}

static void qmgr_loaded(void *arg, int err, struct envelope *e, char *data, size_t len);
static void qmgr_no_memory(struct qmgr_msg *m);

static void qmgr_start(struct qmgr *q, const char *qid)
{
    struct qmgr_msg *m = calloc(1, sizeof(*m));
    if (!m) {
        queue_index_push(q->idx, qid, (int64_t)time(NULL) + QMGR_RETRY_SOON_S);
        return;
    }
    m->q = q;
    memcpy(m->qid, qid, QID_LEN);
    m->admin = QMGR_ADMIN_NONE;
    buf_init(&m->trace, QMGR_TRACE_MAX);
    m->started = time(NULL);
    m->s = q->hooks.settings_get(q->hooks.arg, &m->ref);
    m->next = q->active;
    if (q->active)
        q->active->prev = m;
    q->active = m;
    q->n_active++;
    qmgr_publish(q);
    if (spool_load(q->sw, m->qid, qmgr_loaded, m) < 0)
        qmgr_no_memory(m);
}

/* Starts every due message while there is room. */
static void qmgr_kick(struct qmgr *q)
{
    if (q->kicking)
        return;
    q->kicking = true;
    char qid[QID_LEN + 1];
    int64_t due, now = time(NULL);
    void *ref;
    unsigned max = q->hooks.settings_get(q->hooks.arg, &ref)->max_active;
    q->hooks.settings_put(ref);
    while (!q->stopping && q->n_active < max && queue_index_peek(q->idx, qid, &due) && due <= now) {
        queue_index_pop(q->idx, qid, NULL);
        qmgr_start(q, qid);
    }
    q->kicking = false;
    /* At the limit, the next attempt to end kicks again: a timer now would only spin. */
    if (q->n_active < max)
        qmgr_arm(q);
}

static void qmgr_end(struct qmgr_msg *m);

static void qmgr_df_removed(void *arg, int err)
{
    (void)err; /* logged by the spool; recovery removes a df without its qf */
    qmgr_end(arg);
}

static void qmgr_end(struct qmgr_msg *m)
{
    struct qmgr *q = m->q;
    if (m->admin_io) {
        m->resume = QMGR_RESUME_END;
        return;
    }
    if (m->admin == QMGR_ADMIN_DELETE && !m->stopped) {
        /* the qf went when the DELETE was answered; the df was this attempt's to read */
        m->admin = QMGR_ADMIN_NONE;
        m->recording = true; /* a request meanwhile looks again once it is gone */
        if (spool_remove(q->sw, m->qid, m->env.data_inline, qmgr_df_removed, m) == 0)
            return;
        log_error("%s: cannot remove the deleted message's data file: out of memory (removed "
                  "at the next start)",
                  m->qid);
    }
    struct qmgr_admin_job *later = m->admin_later;
    char qid[QID_LEN + 1];
    memcpy(qid, m->qid, sizeof(qid));
    qmgr_attempt_over(m);
    qmgr_msg_free(m);
    qmgr_kick(q);
    if (later)
        qmgr_admin_again(later, qid);
}

/* A delivery log line of this attempt: to the log, and kept for WATCH. */
void qmgr_trace(struct qmgr_msg *m, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_info("%s", line);
    /* past QMGR_TRACE_MAX the watchers miss the rest; the log has it */
    (void)buf_printf(&m->trace, "%s\n", line);
}

void qmgr_trace_line(struct qmgr_msg *m, const char *to, const char *ctladdr, const char *mailer,
                     const char *relay, enum qmgr_log_stat stat, const char *status,
                     const char *text)
{
    char line[2048];
    qmgr_log_format(m->qid, &m->env, to, ctladdr, mailer, relay, stat, status, text, m->started,
                    time(NULL), line, sizeof(line));
    if (stat == QMGR_LOG_SENT) /* every stat=Sent line, remote and local: msgsto */
        mailstats_msg(MAILSTATS_TO, mailer, m->env.size);
    qmgr_trace(m, "%s", line);
    metrics_delivery(stat == QMGR_LOG_SENT       ? METRICS_DELIVERY_SENT
                     : stat == QMGR_LOG_DEFERRED ? METRICS_DELIVERY_DEFERRED
                                                 : METRICS_DELIVERY_BOUNCED,
                     mailer);
}

static void qmgr_trace_rcpt(struct qmgr_msg *m, size_t i, enum qmgr_log_stat stat)
{
    const struct qmgr_rcpt *r = &m->r[i];
    /* a local recipient whose targets each had their line (sendmail logs the targets of a
     * .forward, not the address that led to them) */
    if (stat == QMGR_LOG_SENT && qmgr_local_traced(m, i))
        return;
    char to[1100], ctladdr[700] = "";
    if (!qmgr_local_names(m, i, to, sizeof(to), ctladdr, sizeof(ctladdr)))
        snprintf(to, sizeof(to), "<%s>", m->env.rcpts[i].addr);
    qmgr_trace_line(m, to, ctladdr, r->route.mailer, r->relay, stat, r->status, r->stat);
}

/* --- the outcome, durably --- */

static bool qmgr_any_pending(const struct qmgr_msg *m)
{
    for (size_t i = 0; i < m->env.n_rcpts; i++)
        if (envelope_rcpt_open(m->env.rcpts[i].state))
            return true;
    return false;
}

static void qmgr_updated(void *arg, int err);

static void qmgr_removed(void *arg, int err)
{
    struct qmgr_msg *m = arg;
    if (err == 0 || m->stopped) {
        qmgr_end(m);
        return;
    }
    /* Logged by the spool. The qf may still be there with the states it was loaded with:
     * every recipient's final state goes into it, and its next attempt removes it. */
    size_t *all = calloc(m->env.n_rcpts ? m->env.n_rcpts : 1, sizeof(*all));
    int rc = -ENOMEM;
    if (all) {
        for (size_t i = 0; i < m->env.n_rcpts; i++)
            all[i] = i;
        rc = spool_update(m->q->sw, &m->env, all, m->env.n_rcpts, qmgr_updated, m);
        free(all);
    }
    if (rc < 0) {
        log_error("%s: cannot record the delivery status: %s", m->qid, strerror(-rc));
        qmgr_updated(m, rc);
    }
}

static void qmgr_updated(void *arg, int err)
{
    struct qmgr_msg *m = arg;
    struct qmgr *q = m->q;
    if (m->stopped) {
        qmgr_end(m);
        return;
    }
    if (err < 0) {
        /* Logged by the spool. The qf says what it said before: the attempt's recipients
         * go again later. */
        queue_index_push(q->idx, m->qid, (int64_t)time(NULL) + QMGR_RETRY_SOON_S);
        qmgr_end(m);
        return;
    }
    queue_index_push(q->idx, m->qid, m->env.next_attempt);
    for (size_t g = 0; g < m->n_groups; g++)
        if (m->groups[g].throttled)
            qmgr_wait_add(q, m->groups[g].key, m->qid, m->s->max_active);
    qmgr_end(m);
}

/* The attempt ended; a queue tool's request made during it applies now. A HOLD is in the
 * qf already (written when it was answered): the deferral keeps it. */
static void qmgr_apply_admin(struct qmgr_msg *m, time_t now)
{
    if (m->admin == QMGR_ADMIN_HOLD && qmgr_any_pending(m)) {
        m->env.next_attempt = ENVELOPE_NEXT_HELD;
    } else if (m->admin == QMGR_ADMIN_REQUEUE && qmgr_any_pending(m)) {
        m->env.next_attempt = now;
        log_info("%s: requeued by %s", m->qid, m->admin_by);
    }
}

static void qmgr_record(struct qmgr_msg *m)
{
    if (m->admin_io) {
        m->resume = QMGR_RESUME_RECORD;
        return;
    }
    if (m->stopped || m->admin == QMGR_ADMIN_DELETE) { /* a deleted message has no qf */
        qmgr_end(m);
        return;
    }
    size_t *changed = calloc(m->env.n_rcpts ? m->env.n_rcpts : 1, sizeof(*changed));
    size_t n = 0;
    time_t now = time(NULL);
    if (!changed) {
        log_error("%s: cannot record the delivery status: out of memory", m->qid);
        queue_index_push(m->q->idx, m->qid, (int64_t)now + QMGR_RETRY_SOON_S);
        qmgr_end(m);
        return;
    }
    for (size_t i = 0; i < m->env.n_rcpts; i++) {
        struct envelope_rcpt *er = &m->env.rcpts[i];
        enum envelope_rcpt_state was = er->state;
        if (m->r[i].outcome == QMGR_DELIVERED)
            er->state = ENV_RCPT_DELIVERED;
        else if (m->r[i].outcome == QMGR_FAILED)
            er->state = ENV_RCPT_FAILED;
        else if (m->r[i].warned && er->state == ENV_RCPT_PENDING)
            er->state = ENV_RCPT_WARNED;
        if (er->state != was)
            changed[n++] = i;
    }
    bool counted = m->attempted || m->n_groups == 0;
    if (counted)
        m->env.attempts++;
    m->env.next_attempt = queue_next_attempt(m->env.created, now, m->env.attempts, &m->s->retry);
    /* An attempt that was not one (every next hop throttled) counts no backoff: the
     * throttle says when, else a message never tried would be due again at once. */
    if (m->retry_at && (!counted || m->retry_at < m->env.next_attempt))
        m->env.next_attempt = m->retry_at;
    if (m->reason[0]) {
        char *reason = strdup(m->reason);
        if (reason) { /* without memory the qf keeps the previous reason */
            free(m->env.last_reason);
            m->env.last_reason = reason;
        }
    }
    qmgr_apply_admin(m, now);
    m->recording = true;
    int rc;
    if (!qmgr_any_pending(m)) {
        /* Nothing left to deliver: the states need not be written first. The removal is
         * made durable (a directory fsync, shared with the other messages removed at the
         * same time) before it counts, so a delivered message never comes back. */
        rc = spool_delete(m->q->sw, m->qid, m->env.data_inline, qmgr_removed, m);
    } else if (!counted && n == 0 && !m->reason[0]) {
        /* Only throttled: the qf would say what it says already (its schedule matters
         * only after a crash, which tries everything at once anyway). */
        rc = 0;
        qmgr_updated(m, 0);
    } else if (n == 0 && m->env.next_attempt != ENVELOPE_NEXT_HELD) {
        /* Deferred with every recipient as it was: only the schedule changes, which a
         * power cut may take back (queue/spool.h). A hold must last: below. */
        rc = spool_update_schedule(m->q->sw, &m->env, qmgr_updated, m);
    } else {
        rc = spool_update(m->q->sw, &m->env, changed, n, qmgr_updated, m);
    }
    free(changed);
    if (rc < 0) {
        log_error("%s: cannot record the delivery status: %s", m->qid, strerror(-rc));
        qmgr_updated(m, rc);
    }
}

/* --- bounces and notices --- */

struct qmgr_bounce {
    struct qmgr_msg *m;
    enum bounce_kind kind;
    char qid[QID_LEN + 1];
    char what[160]; /* sendmail's "DSN: User unknown", "DSN: Return receipt", ... */
};

static void qmgr_bounce_committed(void *arg, int err)
{
    struct qmgr_bounce *b = arg;
    struct qmgr_msg *m = b->m;
    if (err == 0) {
        qmgr_trace(m, "%s: %s: DSN: %s", m->qid, b->qid, b->what);
        qmgr_enqueue(m->q, b->qid, 0);
        for (size_t i = 0; i < m->env.n_rcpts; i++)
            if (m->r[i].in_notice == (int)BOUNCE_DELAY && b->kind == BOUNCE_DELAY)
                m->r[i].warned = true;
    } else {
        /* Logged by the spool. The failures are not recorded, so the next attempt makes
         * the notice again (sendmail retries a DSN it could not queue). */
        for (size_t i = 0; i < m->env.n_rcpts; i++)
            if (m->r[i].outcome == QMGR_FAILED)
                m->r[i].outcome = QMGR_DEFERRED;
    }
    free(b);
    if (--m->bounces_open == 0)
        qmgr_record(m);
}

static char qmgr_action(const struct qmgr_rcpt *r)
{
    return r->outcome == QMGR_FAILED      ? 'f'
           : r->outcome == QMGR_DELIVERED ? (r->relayed ? 'r' : 'D')
                                          : 'd';
}

/* Makes the notice of `kind` for this attempt's recipients that want one, commits it as a
 * message of its own and counts it in m->bounces_open. 0 also when none is due. */
static int qmgr_notice(struct qmgr_msg *m, enum bounce_kind kind)
{
    static const char wanted[] = {[BOUNCE_FAILURE] = 'f', [BOUNCE_DELAY] = 'd'};
    struct bounce_rcpt *br = calloc(m->env.n_rcpts ? m->env.n_rcpts : 1, sizeof(*br));
    size_t n = 0, first = 0;
    time_t now = time(NULL);
    if (!br)
        return -ENOMEM;
    for (size_t i = 0; i < m->env.n_rcpts; i++) {
        const struct envelope_rcpt *er = &m->env.rcpts[i];
        const struct qmgr_rcpt *r = &m->r[i];
        char action = qmgr_action(r);
        /* Every delivery here is a relay to SMTP: one to a next hop that offers DSN was
         * given NOTIFY and reports success itself (RFC 3461 5.2.2); otherwise "relayed". */
        bool kind_matches = kind == BOUNCE_SUCCESS ? action == 'r' : wanted[kind] == action;
        /* one delay warning per recipient: W says it was sent */
        if (r->outcome == QMGR_PENDING || !envelope_rcpt_open(er->state) || !kind_matches ||
            (kind == BOUNCE_DELAY && er->state == ENV_RCPT_WARNED))
            continue;
        if (!bounce_notify_wants(er->notify, action)) {
            /* the operator sees why no notice came (sendmail is silent here) */
            if (kind == BOUNCE_FAILURE)
                qmgr_trace(m, "%s: <%s>: DSN not sent: the recipient's NOTIFY does not ask for one",
                           m->qid, er->addr);
            continue;
        }
        m->r[i].in_notice = kind;
        if (n == 0)
            first = i;
        br[n++] = (struct bounce_rcpt){
            .addr = er->addr,
            .orcpt = er->orcpt,
            .action = action,
            .status = r->status,
            .remote_mta = r->relay_host[0] ? r->relay_host : NULL,
            .diagnostic = r->diagnostic[0] ? r->diagnostic : NULL,
            .last_attempt = now,
        };
    }
    if (n == 0) {
        free(br);
        return 0;
    }
    char postmaster[300];
    snprintf(postmaster, sizeof(postmaster), "postmaster@%s", m->s->hostname);
    struct bounce_target t = bounce_recipient_for(&m->env, kind, postmaster);
    if (!t.to) {
        qmgr_trace(m, "%s: DSN not sent: %s", m->qid, t.reason ? t.reason : "no recipient");
        free(br);
        /* a delay warning that cannot go is settled too (W): said once, not at every attempt */
        for (size_t i = 0; kind == BOUNCE_DELAY && i < m->env.n_rcpts; i++)
            if (m->r[i].in_notice == (int)BOUNCE_DELAY)
                m->r[i].warned = true;
        return 0;
    }
    struct qmgr_bounce *b = calloc(1, sizeof(*b));
    struct spool_msg *sm = b ? spool_msg_new(m->q->sw, b->qid) : NULL;
    struct buf out;
    struct bounce_info info;
    buf_init(&out, 0);
    struct bounce_params p = {
        .kind = kind,
        .env = &m->env,
        .data = m->data,
        .len = m->len,
        .rcpts = br,
        .n_rcpts = n,
        .to = t.to,
        .double_bounce = t.double_bounce,
        .hostname = m->s->hostname,
        .notice_qid = b ? b->qid : NULL,
        .max_returned = m->s->bounce_return_max,
        .retry = &m->s->retry,
        .now = now,
    };
    /* bounce_generate fails only when the buffer cannot grow */
    bool made = sm && bounce_generate(&p, &out, &info) == 0;
    free(br);
    if (!made) {
        if (sm)
            spool_msg_abort(sm);
        free(b);
        buf_free(&out);
        return -ENOMEM;
    }
    b->m = m;
    b->kind = kind;
    if (kind == BOUNCE_FAILURE)
        snprintf(b->what, sizeof(b->what), "%s",
                 qmgr_log_failure_text(m->r[first].status, m->r[first].stat));
    else if (kind == BOUNCE_DELAY)
        snprintf(b->what, sizeof(b->what), "Warning: could not send message for past %s",
                 qmgr_log_lifetime(m->s->retry.queuewarn));
    else
        snprintf(b->what, sizeof(b->what), "Return receipt");
    struct envelope_rcpt rcpt = {.addr = (char *)t.to, .state = ENV_RCPT_PENDING};
    struct envelope env = {
        .sender = "",
        .created = now,
        .proto = "ESMTP",
        .daemon = t.double_bounce ? BOUNCE_DAEMON_DOUBLE : BOUNCE_DAEMON,
        .rcpts = &rcpt,
        .n_rcpts = 1,
        .body = info.eight_bit ? 8 : 7,
    };
    spool_msg_write(sm, out.data, out.len);
    buf_free(&out);
    m->bounces_open++;
    spool_msg_commit(sm, &env, qmgr_bounce_committed, b);
    return 0;
}

/* Every next hop answered: log, notify, record. */
static void qmgr_attempt_done(struct qmgr_msg *m)
{
    if (m->admin_io) {
        m->resume = QMGR_RESUME_DONE;
        return;
    }
    time_t now = time(NULL);
    bool expired = queue_expired(m->env.created, now, &m->s->retry);
    for (size_t i = 0; i < m->env.n_rcpts; i++) {
        struct qmgr_rcpt *r = &m->r[i];
        if (!envelope_rcpt_open(m->env.rcpts[i].state) || r->outcome == QMGR_PENDING)
            continue;
        enum qmgr_log_stat stat = r->outcome == QMGR_DELIVERED ? QMGR_LOG_SENT
                                  : r->outcome == QMGR_FAILED  ? QMGR_LOG_FAILED
                                                               : QMGR_LOG_DEFERRED;
        if (!r->saved) /* else logged when it was saved */
            qmgr_trace_rcpt(m, i, stat);
        if (r->outcome == QMGR_DEFERRED) /* the qf's last reason: sendmail's M line */
            qmgr_log_stat_text(QMGR_LOG_DEFERRED, r->status, r->stat, m->reason, sizeof(m->reason));
        if (r->outcome == QMGR_DEFERRED && expired) {
            /* sendmail: the last reason, then "Cannot send message for 5 days" */
            r->outcome = QMGR_FAILED;
            char why[sizeof(r->stat)];
            snprintf(why, sizeof(why), "Cannot send message for %s: %.500s",
                     qmgr_log_lifetime(m->s->retry.queuereturn), r->stat);
            memcpy(r->stat, why, sizeof(why));
            snprintf(r->status, sizeof(r->status), "4.4.7");
            qmgr_trace_rcpt(m, i, QMGR_LOG_FAILED);
        }
    }
    if (m->admin == QMGR_ADMIN_DELETE) { /* postsuper -d: no notice of any kind */
        qmgr_record(m);
        return;
    }
    m->bounces_open = 1; /* held while the notices are made */
    int rc = qmgr_notice(m, BOUNCE_FAILURE);
    if (rc == 0)
        rc = qmgr_notice(m, BOUNCE_SUCCESS);
    if (rc == 0 && !expired && queue_warn_due(m->env.created, now, &m->s->retry))
        rc = qmgr_notice(m, BOUNCE_DELAY);
    if (rc < 0) {
        log_error("%s: cannot make the DSN: %s (made again at the next attempt)", m->qid,
                  strerror(-rc));
        for (size_t i = 0; i < m->env.n_rcpts; i++)
            if (m->r[i].outcome == QMGR_FAILED)
                m->r[i].outcome = QMGR_DEFERRED;
    }
    if (--m->bounces_open == 0)
        qmgr_record(m);
}

/* --- routing and the next hops --- */

static void qmgr_groups_over(struct qmgr_msg *m)
{
    if (m->stopped)
        qmgr_end(m);
    else
        qmgr_attempt_done(m);
}

static void qmgr_save(struct qmgr_msg *m);

static void qmgr_saved(void *arg, int err)
{
    struct qmgr_msg *m = arg;
    (void)err; /* logged by the spool; the attempt's own record writes these states again */
    m->saving = false;
    if (m->save_waits) {
        m->save_waits = false;
        qmgr_groups_over(m);
        return;
    }
    qmgr_save(m);
}

/* Whether the recipient's outcome can be in the qf before its notice is committed: a
 * crash must not lose a notice that is owed. */
static bool qmgr_savable(const struct qmgr_msg *m, size_t i)
{
    const struct qmgr_rcpt *r = &m->r[i];
    char action = qmgr_action(r);
    if (r->saved || (r->outcome != QMGR_DELIVERED && r->outcome != QMGR_FAILED) ||
        !envelope_rcpt_open(m->env.rcpts[i].state))
        return false;
    return (action != 'f' && action != 'r') || !bounce_notify_wants(m->env.rcpts[i].notify, action);
}

/* A next hop or local delivery finished while others of the attempt still run: its
 * delivered (and failed) recipients are made durable now, so that a crash before the
 * attempt's end does not send them again. One write at a time per message; outcomes that
 * come meanwhile go with the next. The attempt's own record writes them again (one fsync
 * it pays anyway), so a save that failed costs nothing but the guarantee's head start. */
static void qmgr_save(struct qmgr_msg *m)
{
    if (m->saving || m->stopped || m->admin == QMGR_ADMIN_DELETE)
        return;
    size_t n = 0;
    for (size_t i = 0; i < m->env.n_rcpts; i++)
        n += qmgr_savable(m, i);
    if (n == 0)
        return;
    size_t *idx = calloc(n, sizeof(*idx));
    char *states = calloc(n, 1);
    int rc = -ENOMEM;
    if (idx && states) {
        n = 0;
        for (size_t i = 0; i < m->env.n_rcpts; i++) {
            if (!qmgr_savable(m, i))
                continue;
            bool sent = m->r[i].outcome == QMGR_DELIVERED;
            /* the log line first: a recipient the qf calls delivered always has its
             * stat=Sent in the log, whatever crash follows */
            qmgr_trace_rcpt(m, i, sent ? QMGR_LOG_SENT : QMGR_LOG_FAILED);
            m->r[i].saved = true;
            idx[n] = i;
            states[n++] = (char)(sent ? ENV_RCPT_DELIVERED : ENV_RCPT_FAILED);
        }
        rc = spool_update_rcpts(m->q->sw, &m->env, idx, states, n, qmgr_saved, m);
    }
    free(idx);
    free(states);
    if (rc < 0) /* written at the attempt's end */
        log_error("%s: cannot record the delivery status yet: %s", m->qid, strerror(-rc));
    else
        m->saving = true;
}

/* One next hop fewer to wait for. A message with a single next hop writes nothing here:
 * its outcome goes with the attempt's record. */
void qmgr_group_release(struct qmgr_msg *m)
{
    if (--m->groups_open > 0) {
        qmgr_save(m);
        return;
    }
    if (m->saving)
        m->save_waits = true;
    else
        qmgr_groups_over(m);
}

static void qmgr_group_done(void *arg, const struct outbound_result *res)
{
    struct qmgr_group *g = arg;
    struct qmgr_msg *m = g->m;
    char relay[sizeof(m->r[0].relay)] = "";
    if (res->relay_host[0] || res->relay_addr[0])
        snprintf(relay, sizeof(relay), "%s. [%s]", res->relay_host, res->relay_addr);
    if (res->throttled) {
        /* no attempt: the destination is at its limit; the recipients wait, unlogged */
        uint64_t now_ms = engine_now_ms(m->q->w);
        uint64_t wait_ms = res->retry_at > now_ms ? res->retry_at - now_ms : 0;
        /* whole seconds, the index's unit, rounded up: never earlier than the throttle */
        int64_t at = (int64_t)time(NULL) + (int64_t)((wait_ms + 999) / 1000);
        if (wait_ms == 0)
            at++; /* not again within the same second */
        if (!m->retry_at || at < m->retry_at)
            m->retry_at = at;
        g->throttled = true;
    } else {
        m->attempted = true;
    }
    for (size_t k = 0; k < g->n && !res->throttled; k++) {
        struct qmgr_rcpt *r = &m->r[g->rcpts[k]];
        const struct outbound_rcpt_result *o = &res->rcpts[k];
        const struct smtp_client_reply *rep = &o->reply;
        r->outcome = o->outcome == OUTBOUND_DELIVERED ? QMGR_DELIVERED
                     : o->outcome == OUTBOUND_FAILED  ? QMGR_FAILED
                                                      : QMGR_DEFERRED;
        /* LMTP is the final delivery itself, DSN or not */
        r->relayed = r->outcome == QMGR_DELIVERED && !res->dsn && strncmp(g->key, "lmtp:", 5) != 0;
        snprintf(r->status, sizeof(r->status), "%s", rep->enh);
        if (rep->local || r->outcome == QMGR_DELIVERED)
            snprintf(r->stat, sizeof(r->stat), "%s", rep->text);
        else
            snprintf(r->stat, sizeof(r->stat), "%d %s %s", rep->code, rep->enh, rep->text);
        if (!rep->local)
            snprintf(r->diagnostic, sizeof(r->diagnostic), "%d %s %s", rep->code, rep->enh,
                     rep->text);
        snprintf(r->relay, sizeof(r->relay), "%s", relay);
        snprintf(r->relay_host, sizeof(r->relay_host), "%s", res->relay_host);
    }
    qmgr_group_release(m);
}

/* The recipient's route; the groups are made after every recipient has one. */
static void qmgr_route(struct qmgr_msg *m, size_t i)
{
    struct qmgr_rcpt *r = &m->r[i];
    const struct envelope_rcpt *er = &m->env.rcpts[i];
    /* an aliases' program or file: local whatever an '@' in it says */
    if (er->expanded && (er->addr[0] == '|' || er->addr[0] == '/'))
        r->route = (struct route){.kind = ROUTE_LOCAL, .source = "aliases"};
    else
        route_resolve(&m->s->route, er->addr, &r->route);
    switch (r->route.kind) {
    case ROUTE_SMTP:
        break;
    case ROUTE_LOCAL:
        if (qmgr_local_route(m, i))
            break;
        /* No local mailer configured: the recipient waits in the queue. */
        if (m->env.attempts == 0)
            log_info("%s: to=<%s>, stat=queued: local delivery is not available (the "
                     "message stays in the queue)",
                     m->qid, er->addr);
        r->outcome = QMGR_PENDING;
        break;
    case ROUTE_ERROR:
        r->outcome = r->route.code[0] == '4' ? QMGR_DEFERRED : QMGR_FAILED;
        snprintf(r->status, sizeof(r->status), "%s", r->route.status);
        snprintf(r->stat, sizeof(r->stat), "%s %s %s", r->route.code, r->route.status,
                 r->route.text);
        break;
    }
}

static int qmgr_group(struct qmgr_msg *m)
{
    m->groups = calloc(m->env.n_rcpts ? m->env.n_rcpts : 1, sizeof(*m->groups));
    if (!m->groups)
        return -ENOMEM;
    for (size_t i = 0; i < m->env.n_rcpts; i++) {
        if (!envelope_rcpt_open(m->env.rcpts[i].state) || m->r[i].route.kind != ROUTE_SMTP)
            continue;
        char key[sizeof(m->groups[0].key)];
        route_key(&m->r[i].route, key, sizeof(key));
        size_t g = 0;
        while (g < m->n_groups && strcmp(m->groups[g].key, key) != 0)
            g++;
        if (g == m->n_groups) {
            snprintf(m->groups[g].key, sizeof(m->groups[g].key), "%s", key);
            m->groups[g].m = m;
            if (!(m->groups[g].rcpts = calloc(m->env.n_rcpts, sizeof(size_t))) ||
                !(m->groups[g].to = calloc(m->env.n_rcpts, sizeof(*m->groups[g].to))))
                return -ENOMEM;
            m->n_groups++;
        }
        const struct envelope_rcpt *er = &m->env.rcpts[i];
        const char *lmtp = qmgr_local_lmtp_rcpt(m, i);
        m->groups[g].to[m->groups[g].n] =
            (struct smtp_client_rcpt){lmtp ? lmtp : er->addr, er->notify, er->orcpt};
        m->groups[g].rcpts[m->groups[g].n++] = i;
    }
    return 0;
}

static void qmgr_no_memory(struct qmgr_msg *m)
{
    log_error("%s: cannot deliver: out of memory (tried again in %d s)", m->qid, QMGR_RETRY_SOON_S);
    queue_index_push(m->q->idx, m->qid, (int64_t)time(NULL) + QMGR_RETRY_SOON_S);
    qmgr_end(m);
}

/* The length of the header block: up to the empty line (or all of it). */
static size_t qmgr_header_len(const char *data, size_t len)
{
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t line = nl ? (size_t)(nl - (data + at)) : len - at;
        if (line == 0 || (line == 1 && data[at] == '\r'))
            return at;
        at += line + 1;
    }
    return len;
}

/* Masquerading and the genericstable, once per attempt for every SMTP next hop (the
 * result depends on the mailer, not the recipient). */
static void qmgr_rewrite(struct qmgr_msg *m)
{
    if (!m->s->rewrite || m->n_groups == 0)
        return;
    size_t hl = qmgr_header_len(m->data, m->len);
    struct buf header;
    buf_init(&header, 0);
    int rc = m->s->rewrite(m->s->rewrite_arg, m->env.sender, m->data, hl, &m->smtp_sender, &header);
    if (rc == 0 && m->smtp_sender.len)
        rc = buf_append(&m->smtp_sender, "", 1) < 0 ? -ENOMEM : 0;
    if (rc == 0 && header.len &&
        (buf_append(&m->smtp_data, header.data, header.len) < 0 ||
         buf_append(&m->smtp_data, m->data + hl, m->len - hl) < 0))
        rc = -ENOMEM;
    buf_free(&header);
    if (rc < 0) {
        log_error("%s: masquerading: out of memory (sent as it is)", m->qid);
        buf_free(&m->smtp_sender);
        buf_free(&m->smtp_data);
    }
}

static void qmgr_loaded(void *arg, int err, struct envelope *e, char *data, size_t len)
{
    struct qmgr_msg *m = arg;
    if (m->stopped) {
        if (err == 0) {
            envelope_free(e);
            free(data);
        }
        qmgr_end(m);
        return;
    }
    if (err < 0) {
        /* Logged by the spool. Gone (ENOENT) or set aside as damaged (EBADMSG): nothing to
         * retry; anything else (EMFILE, EIO, ...) may pass. */
        if (err != -ENOENT && err != -EBADMSG)
            queue_index_push(m->q->idx, m->qid, (int64_t)time(NULL) + QMGR_RETRY_SOON_S);
        qmgr_end(m);
        return;
    }
    m->env = *e; /* the struct is the spool's, what it holds is ours */
    m->loaded = true;
    m->data = data;
    m->len = len;
    if (!(m->r = calloc(m->env.n_rcpts ? m->env.n_rcpts : 1, sizeof(*m->r)))) {
        qmgr_no_memory(m);
        return;
    }
    for (size_t i = 0; i < m->env.n_rcpts; i++)
        m->r[i].in_notice = -1;
    for (size_t i = 0; i < m->env.n_rcpts; i++)
        if (envelope_rcpt_open(m->env.rcpts[i].state))
            qmgr_route(m, i);
    if (qmgr_group(m) < 0) {
        qmgr_no_memory(m);
        return;
    }
    qmgr_rewrite(m);
    /* Every next hop and local delivery at once; each answers through qmgr_group_done or
     * the local side's release (never from inside outbound_deliver or local_deliver). */
    m->groups_open = m->n_groups + 1; /* held until every job has started */
    for (size_t g = 0; g < m->n_groups; g++) {
        struct qmgr_group *gr = &m->groups[g];
        /* LMTP delivers to a local mailbox: sendmail's local mailers do not masquerade */
        bool rewritten = strcmp(m->r[gr->rcpts[0]].route.mailer, "lmtp") != 0;
        struct outbound_job job = {
            .qid = m->qid,
            .first_attempt = m->env.attempts == 0,
            .route = &m->r[gr->rcpts[0]].route,
            .msg =
                {
                    .sender = rewritten && m->smtp_sender.len ? m->smtp_sender.data : m->env.sender,
                    .rcpts = gr->to,
                    .n_rcpts = gr->n,
                    .data = rewritten && m->smtp_data.len ? m->smtp_data.data : m->data,
                    .len = rewritten && m->smtp_data.len ? m->smtp_data.len : m->len,
                    .body = m->env.body,
                    .smtputf8 = m->env.smtputf8,
                    .dsn_ret = m->env.dsn_ret,
                    .envid = m->env.envid,
                    .auth = m->env.auth,
                },
        };
        if (outbound_deliver(m->q->ow, &job, qmgr_group_done, gr) == 0)
            continue;
        for (size_t k = 0; k < gr->n; k++) {
            struct qmgr_rcpt *r = &m->r[gr->rcpts[k]];
            r->outcome = QMGR_DEFERRED;
            snprintf(r->status, sizeof(r->status), "4.3.0");
            snprintf(r->stat, sizeof(r->stat), "cannot start the delivery: out of memory");
        }
        m->attempted = true;
        m->groups_open--;
    }
    qmgr_local_start(m);
    qmgr_group_release(m);
}

/* --- the queue tools' requests --- */

/* A waiting message a request looks at: where it was in the index. */
struct qmgr_admin_entry {
    char qid[QID_LEN + 1];
    int64_t due;
};

struct qmgr_admin_job {
    struct qmgr *q;
    struct qmgr_admin_job *next;
    struct qmgr_admin a;
    char by[64];
    struct engine_timer start; /* begins the request from the loop, never inside qmgr_admin */
    bool begun;
    struct qmgr_admin_entry *work;
    size_t n_work, cap_work, next_work;
    unsigned in_flight;
    size_t count;
};

/* One waiting message being read, rewritten or removed; out of the index meanwhile, so
 * no attempt starts on it. Or a message in flight (`active`) whose qf the request
 * rewrites or removes now; its attempt waits for that (admin_io). */
struct qmgr_admin_msg {
    struct qmgr_admin_job *job;
    struct qmgr_admin_entry entry;
    struct envelope env;
    bool loaded;
    struct qmgr_msg *active;
};

static void qmgr_admin_pump(struct qmgr_admin_job *job);

static void qmgr_admin_readd(struct qmgr *q, const char *qid, int64_t due)
{
    if (queue_index_push(q->idx, qid, due) == -ENOMEM)
        log_error("%s: cannot queue for delivery: out of memory (delivered after a restart)", qid);
    qmgr_publish(q);
}

static const char *qmgr_admin_verb(enum qmgr_admin_op op)
{
    switch (op) {
    case QMGR_ADMIN_HOLD:
        return "held";
    case QMGR_ADMIN_RELEASE:
        return "released";
    case QMGR_ADMIN_REQUEUE:
        return "requeued";
    case QMGR_ADMIN_DELETE:
        return "removed";
    case QMGR_ADMIN_FLUSH:
        break;
    }
    return "scheduled";
}

static void qmgr_admin_counted(struct qmgr_admin_job *job, const char *qid)
{
    job->count++;
    if (job->a.item)
        job->a.item(job->a.arg, qid);
}

static void qmgr_admin_msg_end(struct qmgr_admin_msg *am)
{
    struct qmgr_admin_job *job = am->job;
    if (am->loaded)
        envelope_free(&am->env);
    free(am);
    job->in_flight--;
    qmgr_admin_pump(job);
}

static void qmgr_admin_written(void *arg, int err)
{
    struct qmgr_admin_msg *am = arg;
    struct qmgr_admin_job *job = am->job;
    const char *qid = am->entry.qid;
    if (err < 0) {
        /* Logged by the spool; the qf says what it said before. */
        qmgr_admin_readd(job->q, qid, am->entry.due);
    } else {
        if (job->a.op != QMGR_ADMIN_DELETE)
            qmgr_admin_readd(job->q, qid, am->env.next_attempt);
        log_info("%s: %s by %s", qid, qmgr_admin_verb(job->a.op), job->by);
        qmgr_admin_counted(job, qid);
    }
    qmgr_admin_msg_end(am);
}

/* A released message is no longer quarantined: its q record is blanked in the same
 * write that makes it due (mailq stops calling it quarantined). */
static void qmgr_admin_release(struct envelope *e, time_t now)
{
    e->next_attempt = now;
    free(e->quarantine);
    e->quarantine = NULL;
}

/* What the request does to a waiting message that matched, from its envelope. False when
 * it does nothing to it (FLUSH is done here: nothing to write). */
static bool qmgr_admin_change(struct qmgr_admin_msg *am, time_t now)
{
    struct qmgr_admin_job *job = am->job;
    bool held = am->env.next_attempt == ENVELOPE_NEXT_HELD;
    switch (job->a.op) {
    case QMGR_ADMIN_FLUSH:
        if (!held) {
            am->entry.due = now;
            job->count++;
        }
        return false;
    case QMGR_ADMIN_HOLD:
        am->env.next_attempt = ENVELOPE_NEXT_HELD;
        return !held;
    case QMGR_ADMIN_RELEASE:
        qmgr_admin_release(&am->env, now);
        return held;
    case QMGR_ADMIN_REQUEUE:
        /* postsuper -r: tried now as if new, but the attempts so far still count */
        am->env.next_attempt = now;
        free(am->env.last_reason);
        am->env.last_reason = NULL;
        return !held;
    case QMGR_ADMIN_DELETE:
        return true;
    }
    return false;
}

static void qmgr_admin_loaded(void *arg, int err, struct envelope *e, char *data, size_t len)
{
    struct qmgr_admin_msg *am = arg;
    struct qmgr_admin_job *job = am->job;
    struct qmgr *q = job->q;
    (void)len;
    free(data);
    if (err < 0) {
        /* Gone, or set aside as damaged (logged by the spool): nothing to put back. */
        if (err != -ENOENT && err != -EBADMSG)
            qmgr_admin_readd(q, am->entry.qid, am->entry.due);
        qmgr_admin_msg_end(am);
        return;
    }
    am->env = *e;
    am->loaded = true;
    if (!job->a.match(job->a.arg, am->entry.qid, job->a.needs_envelope ? &am->env : NULL) ||
        !qmgr_admin_change(am, time(NULL))) {
        qmgr_admin_readd(q, am->entry.qid, am->entry.due);
        qmgr_admin_msg_end(am);
        return;
    }
    int rc = job->a.op == QMGR_ADMIN_DELETE
                 ? spool_delete(q->sw, am->entry.qid, am->env.data_inline, qmgr_admin_written, am)
                 : spool_update(q->sw, &am->env, NULL, 0, qmgr_admin_written, am);
    if (rc < 0) {
        log_error("%s: cannot change it: %s", am->entry.qid, strerror(-rc));
        qmgr_admin_written(am, rc);
    }
}

/* A message in flight: the request's write (or the qf's removal) is done; the attempt
 * goes on from where it waited. */
static void qmgr_admin_active_written(void *arg, int err)
{
    struct qmgr_admin_msg *am = arg;
    struct qmgr_admin_job *job = am->job;
    struct qmgr_msg *m = am->active;
    if (err == 0) {
        m->admin = job->a.op == QMGR_ADMIN_RELEASE ? QMGR_ADMIN_NONE : (int)job->a.op;
        snprintf(m->admin_by, sizeof(m->admin_by), "%s", job->by);
        log_info("%s: %s by %s", m->qid, qmgr_admin_verb(job->a.op), job->by);
        qmgr_admin_counted(job, m->qid);
    } else if (err == -ENOENT) { /* the spool logs every other failure */
        log_error("%s: not %s: its queue file is gone", m->qid, qmgr_admin_verb(job->a.op));
    }
    /* the request first (it may end here), then the attempt, which may end too */
    qmgr_admin_msg_end(am);
    if (--m->admin_io > 0)
        return;
    int resume = m->resume;
    m->resume = QMGR_RESUME_NONE;
    if (resume == QMGR_RESUME_DONE)
        qmgr_attempt_done(m);
    else if (resume == QMGR_RESUME_RECORD)
        qmgr_record(m);
    else if (resume == QMGR_RESUME_END)
        qmgr_end(m);
}

static void qmgr_admin_active_loaded(void *arg, int err, struct envelope *e, char *data, size_t len)
{
    struct qmgr_admin_msg *am = arg;
    (void)len;
    free(data);
    if (err < 0) {
        qmgr_admin_active_written(am, err);
        return;
    }
    /* what the qf says now, the schedule alone changed: the attempt's own update comes
     * after this one and keeps a HOLD */
    am->env = *e;
    am->loaded = true;
    if (am->job->a.op == QMGR_ADMIN_HOLD)
        am->env.next_attempt = ENVELOPE_NEXT_HELD;
    else
        qmgr_admin_release(&am->env, time(NULL));
    int rc = spool_update(am->job->q->sw, &am->env, NULL, 0, qmgr_admin_active_written, am);
    if (rc < 0) {
        log_error("%s: cannot change it: %s", am->entry.qid, strerror(-rc));
        qmgr_admin_active_written(am, rc);
    }
}

/* HOLD, RELEASE and DELETE of a message in flight are durable when answered: the qf is
 * rewritten (HOLD: never due; RELEASE of a HOLD made during the attempt: due) or removed
 * (DELETE; the attempt may still read the df, removed when it ends) before the message
 * counts. */
static void qmgr_admin_active_start(struct qmgr_admin_job *job, struct qmgr_msg *m)
{
    struct qmgr_admin_msg *am = calloc(1, sizeof(*am));
    int rc = -ENOMEM;
    if (am) {
        am->job = job;
        am->active = m;
        memcpy(am->entry.qid, m->qid, sizeof(am->entry.qid));
        rc = job->a.op == QMGR_ADMIN_DELETE
                 ? spool_withdraw(job->q->sw, m->qid, qmgr_admin_active_written, am)
                 : spool_load_envelope(job->q->sw, m->qid, qmgr_admin_active_loaded, am);
    }
    if (rc < 0) {
        log_error("%s: not %s: %s", m->qid, qmgr_admin_verb(job->a.op), strerror(-rc));
        free(am);
        return;
    }
    m->admin_io++;
    job->in_flight++;
}

/* A message in flight that the request matches. */
static void qmgr_admin_mark(struct qmgr_admin_job *job, struct qmgr_msg *m)
{
    const struct envelope *e = m->loaded ? &m->env : NULL;
    if (m->stopped || m->admin_later == job || (job->a.needs_envelope && !e) ||
        !job->a.match(job->a.arg, m->qid, job->a.needs_envelope ? e : NULL))
        return;
    if (m->admin == QMGR_ADMIN_DELETE)
        return; /* going anyway */
    if (m->recording) {
        /* its own update is under way: once it ends the message waits in the index (or is
         * gone) and the request looks at it there (a FLUSH too: this attempt is over) */
        m->admin_later = job;
        job->in_flight++;
        return;
    }
    switch (job->a.op) {
    case QMGR_ADMIN_FLUSH: /* being tried already */
        return;
    case QMGR_ADMIN_RELEASE: /* only a HOLD made during this attempt can be undone */
        if (m->admin == QMGR_ADMIN_HOLD)
            qmgr_admin_active_start(job, m);
        return;
    case QMGR_ADMIN_HOLD:
        if (m->admin != QMGR_ADMIN_HOLD)
            qmgr_admin_active_start(job, m);
        return;
    case QMGR_ADMIN_DELETE:
        qmgr_admin_active_start(job, m);
        return;
    case QMGR_ADMIN_REQUEUE: /* in memory: lost with a crash, the message is tried then anyway */
        if (m->admin == QMGR_ADMIN_HOLD) /* a held message is not requeued, as when waiting */
            return;
        m->admin = QMGR_ADMIN_REQUEUE;
        snprintf(m->admin_by, sizeof(m->admin_by), "%s", job->by);
        qmgr_admin_counted(job, m->qid);
        return;
    }
}

static struct qmgr_msg *qmgr_find_active(struct qmgr *q, const char *qid)
{
    for (struct qmgr_msg *m = q->active; m; m = m->next)
        if (strcmp(m->qid, qid) == 0)
            return m;
    return NULL;
}

/* Whether a waiting message may concern the request, from what the index knows. */
static bool qmgr_admin_candidate(const struct qmgr_admin_job *job, const char *qid, int64_t due)
{
    bool held = due == ENVELOPE_NEXT_HELD;
    if ((job->a.op == QMGR_ADMIN_RELEASE && !held) ||
        (job->a.op != QMGR_ADMIN_RELEASE && job->a.op != QMGR_ADMIN_DELETE && held))
        return false;
    return job->a.needs_envelope || job->a.match(job->a.arg, qid, NULL);
}

static void qmgr_admin_collect(void *arg, const char *qid, int64_t due)
{
    struct qmgr_admin_job *job = arg;
    char id[QID_LEN + 1];
    memcpy(id, qid, QID_LEN);
    id[QID_LEN] = '\0';
    if (!qmgr_admin_candidate(job, id, due))
        return;
    if (job->n_work == job->cap_work) {
        size_t cap = job->cap_work ? 2 * job->cap_work : 64;
        struct qmgr_admin_entry *v = realloc(job->work, cap * sizeof(*v));
        if (!v) {
            log_error("%s: not looked at by the queue request: out of memory", id);
            return;
        }
        job->work = v;
        job->cap_work = cap;
    }
    memcpy(job->work[job->n_work].qid, id, sizeof(id));
    job->work[job->n_work++].due = due;
}

/* A message the request met while its attempt was recording its outcome: the attempt
 * ended, the message is looked at again where it is now. */
static void qmgr_admin_again(struct qmgr_admin_job *job, const char *qid)
{
    int64_t due;
    struct qmgr_msg *m;
    job->in_flight--;
    if (queue_index_contains(job->q->idx, qid, &due))
        qmgr_admin_collect(job, qid, due);
    else if ((m = qmgr_find_active(job->q, qid))) /* started again at once */
        qmgr_admin_mark(job, m);
    qmgr_admin_pump(job);
}

static void qmgr_admin_finish(struct qmgr_admin_job *job)
{
    struct qmgr *q = job->q;
    q->admin_head = job->next;
    if (!q->admin_head)
        q->admin_tail = NULL;
    job->a.done(job->a.arg, job->count);
    free(job->work);
    free(job);
    if (q->admin_head && !q->stopping)
        engine_timer_arm(q->w, &q->admin_head->start, 0);
    if (!q->stopping)
        qmgr_kick(q);
}

/* Starts reads while there is room; ends the request when nothing is left. */
static void qmgr_admin_pump(struct qmgr_admin_job *job)
{
    struct qmgr *q = job->q;
    while (!q->stopping && job->in_flight < QMGR_ADMIN_PARALLEL && job->next_work < job->n_work) {
        struct qmgr_admin_entry *en = &job->work[job->next_work++];
        if (queue_index_remove(q->idx, en->qid) < 0) {
            /* its attempt started since the request began (or it is gone) */
            struct qmgr_msg *m = qmgr_find_active(q, en->qid);
            if (m)
                qmgr_admin_mark(job, m);
            continue;
        }
        struct qmgr_admin_msg *am = calloc(1, sizeof(*am));
        if (am) {
            am->job = job;
            am->entry = *en;
        }
        if (!am || spool_load_envelope(q->sw, en->qid, qmgr_admin_loaded, am) < 0) {
            log_error("%s: not looked at by the queue request: out of memory", en->qid);
            free(am);
            qmgr_admin_readd(q, en->qid, en->due);
            continue;
        }
        job->in_flight++;
    }
    qmgr_publish(q); /* the messages it took out of the index */
    if (job->in_flight == 0 && (q->stopping || job->next_work == job->n_work))
        qmgr_admin_finish(job);
}

static void qmgr_admin_begin(struct engine_timer *t)
{
    struct qmgr_admin_job *job =
        (struct qmgr_admin_job *)((char *)t - offsetof(struct qmgr_admin_job, start));
    struct qmgr *q = job->q;
    job->begun = true;
    for (struct qmgr_msg *m = q->active; m; m = m->next)
        qmgr_admin_mark(job, m);
    queue_index_foreach(q->idx, qmgr_admin_collect, job);
    if (job->a.op == QMGR_ADMIN_FLUSH && !job->a.needs_envelope) {
        /* decided by the queue id alone: nothing to read or write */
        int64_t now = time(NULL);
        for (size_t i = 0; i < job->n_work; i++)
            if (queue_index_reschedule(q->idx, job->work[i].qid, now) == 0)
                job->count++;
        job->n_work = 0;
    }
    qmgr_admin_pump(job);
}

int qmgr_admin(struct qmgr *q, const struct qmgr_admin *a)
{
    if (q->stopping) /* its worker is ending: a job queued now might never run */
        return -ECANCELED;
    struct qmgr_admin_job *job = calloc(1, sizeof(*job));
    if (!job)
        return -ENOMEM;
    job->q = q;
    job->a = *a;
    snprintf(job->by, sizeof(job->by), "%s", a->by ? a->by : "?");
    job->a.by = job->by;
    job->start.fire = qmgr_admin_begin;
    if (q->admin_tail)
        q->admin_tail->next = job;
    else
        q->admin_head = job;
    q->admin_tail = job;
    if (q->admin_head == job)
        engine_timer_arm(q->w, &job->start, 0);
    return 0;
}

/* Shutdown: requests not begun end at once with nothing done; one under way ends when its
 * reads and writes in flight have. */
static void qmgr_admin_stop(struct qmgr *q)
{
    struct qmgr_admin_job *head = q->admin_head;
    if (head && head->begun && head->in_flight > 0)
        head = head->next;
    while (head) {
        struct qmgr_admin_job *next = head->next;
        engine_timer_disarm(q->w, &head->start);
        if (q->admin_head == head) {
            qmgr_admin_finish(head);
        } else {
            head->a.done(head->a.arg, 0);
            if (q->admin_head)
                q->admin_head->next = next;
            if (q->admin_tail == head)
                q->admin_tail = q->admin_head;
            free(head->work);
            free(head);
        }
        head = next;
    }
}

/* The worker gave up on operations that never completed (its exit grace ran out): the
 * requests they belonged to still end, with what was done. */
static void qmgr_admin_free_all(struct qmgr *q)
{
    while (q->admin_head) {
        struct qmgr_admin_job *job = q->admin_head;
        q->admin_head = job->next;
        engine_timer_disarm(q->w, &job->start);
        job->a.done(job->a.arg, job->count);
        free(job->work);
        free(job);
    }
    q->admin_tail = NULL;
}

/* --- WATCH: an attempt's log lines for sendmail -v --- */

static void qmgr_watch_emit(const struct qmgr_watch *w, const struct buf *lines)
{
    for (size_t pos = 0; pos < lines->len;) {
        const char *start = lines->data + pos;
        const char *nl = memchr(start, '\n', lines->len - pos);
        size_t len = nl ? (size_t)(nl - start) : lines->len - pos;
        w->w.line(w->w.arg, start, len);
        pos += len + 1;
    }
}

static const struct qmgr_recent *qmgr_recent_find(const struct qmgr *q, const char *qid)
{
    /* newest first: a message tried twice lately shows its last attempt */
    for (unsigned k = 1; k <= QMGR_RECENT; k++) {
        const struct qmgr_recent *r = &q->recent[(q->recent_next + QMGR_RECENT - k) % QMGR_RECENT];
        if (strcmp(r->qid, qid) == 0)
            return r;
    }
    return NULL;
}

/* Removes and answers the watches that `pick` selects (lines from `lines`, may be NULL). */
static void qmgr_watch_answer(struct qmgr *q, bool (*pick)(const struct qmgr_watch *, const void *),
                              const void *arg, const struct buf *lines)
{
    struct qmgr_watch *done = NULL;
    for (struct qmgr_watch **pp = &q->watches; *pp;) {
        struct qmgr_watch *w = *pp;
        if (pick(w, arg)) {
            *pp = w->next;
            w->next = done;
            done = w;
        } else {
            pp = &w->next;
        }
    }
    for (struct qmgr_watch *w = done, *next; w; w = next) {
        next = w->next;
        const struct qmgr_recent *r = w->recent ? qmgr_recent_find(q, w->qid) : NULL;
        const struct buf *b = r ? &r->lines : lines;
        if (b)
            qmgr_watch_emit(w, b);
        w->w.done(w->w.arg);
        free(w);
    }
}

static bool qmgr_watch_of_msg(const struct qmgr_watch *w, const void *qid)
{
    return !w->recent && strcmp(w->qid, qid) == 0;
}

static bool qmgr_watch_of_recent(const struct qmgr_watch *w, const void *arg)
{
    (void)arg;
    return w->recent;
}

static bool qmgr_watch_any(const struct qmgr_watch *w, const void *arg)
{
    (void)w;
    (void)arg;
    return true;
}

/* The attempt ended: its watchers get its lines, and the lines are kept a while. */
static void qmgr_attempt_over(struct qmgr_msg *m)
{
    struct qmgr *q = m->q;
    if (q->watches)
        qmgr_watch_answer(q, qmgr_watch_of_msg, m->qid, &m->trace);
    if (!m->trace.len)
        return;
    struct qmgr_recent *r = &q->recent[q->recent_next];
    q->recent_next = (q->recent_next + 1) % QMGR_RECENT;
    memcpy(r->qid, m->qid, sizeof(r->qid));
    buf_free(&r->lines);
    r->lines = m->trace;
    buf_init(&m->trace, QMGR_TRACE_MAX);
}

static void qmgr_watch_fire(struct engine_timer *t)
{
    struct qmgr *q = (struct qmgr *)((char *)t - offsetof(struct qmgr, watch_timer));
    qmgr_watch_answer(q, qmgr_watch_of_recent, NULL, NULL);
}

static void qmgr_watch_end_all(struct qmgr *q)
{
    engine_timer_disarm(q->w, &q->watch_timer);
    qmgr_watch_answer(q, qmgr_watch_any, NULL, NULL);
}

int qmgr_watch(struct qmgr *q, const char *qid, const struct qmgr_watcher *watcher)
{
    int64_t due;
    bool now = qmgr_find_active(q, qid) ||
               (queue_index_contains(q->idx, qid, &due) && due <= (int64_t)time(NULL));
    bool recent = !now && qmgr_recent_find(q, qid);
    if (q->stopping || (!now && !recent))
        return -ENOENT;
    struct qmgr_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    snprintf(w->qid, sizeof(w->qid), "%s", qid);
    w->w = *watcher;
    w->recent = recent;
    w->next = q->watches;
    q->watches = w;
    if (recent)
        engine_timer_arm(q->w, &q->watch_timer, 0);
    return 0;
}
