#include "core/queuerun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/runconf.h"
#include "core/submission.h"
#include "delivery/local.h"
#include "delivery/outbound.h"
#include "delivery/qmgr.h"
#include "queue/spool.h"
#include "util/dns.h"
#include "util/log.h"

struct queuerun_entry {
    char qid[QID_LEN];
    int64_t due;
};

/* One worker's share of the recovered messages. */
struct queuerun_backlog {
    struct queuerun_entry *v;
    size_t n, cap;
};

/* A held message is kept like any other (its worker must know it for RELEASE): its next
 * attempt, ENVELOPE_NEXT_HELD, is never due. */
static int queuerun_collect(void *arg, const struct envelope *e)
{
    struct daemon *d = arg;
    /* queued safely: the maildrop file it came from must not be submitted again */
    if (e->maildrop)
        submission_recovered_maildrop(d->current->cfg, e->maildrop);
    struct queuerun_backlog *b = &d->backlog[qid_hash(e->qid) % d->workers];
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 1024;
        struct queuerun_entry *v = realloc(b->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        b->v = v;
        b->cap = cap;
    }
    memcpy(b->v[b->n].qid, e->qid, QID_LEN);
    b->v[b->n].due = e->next_attempt;
    b->n++;
    return 0;
}

int queuerun_recover(struct daemon *d, char *err, size_t errlen)
{
    if (!(d->backlog = calloc(d->workers, sizeof(*d->backlog)))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct spool_recovery rec;
    if (spool_recover(d->spool, queuerun_collect, d, &rec, err, errlen) < 0)
        return -1;
    log_info("spool %s: %u message(s) queued, %u partial file(s) removed, %u damaged, %u moved",
             spool_dir(d->spool), rec.messages, rec.removed, rec.damaged, rec.moved);
    return 0;
}

void queuerun_backlog_free(struct daemon *d)
{
    for (unsigned i = 0; d->backlog && i < d->workers; i++)
        free(d->backlog[i].v);
    free(d->backlog);
    d->backlog = NULL;
}

static const struct qmgr_settings *queuerun_settings_get(void *arg, void **ref)
{
    struct daemon_worker *dw = arg;
    struct runconf *rc = runconf_ref(dw->rc);
    *ref = rc;
    return &rc->qmgr;
}

static void queuerun_settings_put(void *ref)
{
    runconf_unref(ref);
}

int queuerun_worker_start(struct daemon_worker *dw, unsigned index)
{
    const struct config *cfg = dw->rc->cfg;
    char err[512];
    struct dns_settings ds = {
        .servers = (const char *const *)cfg->dns.servers,
        .n_servers = cfg->dns.n_servers,
        .timeout_ms = cfg->dns.timeout,
        .tries = cfg->dns.tries,
    };
    if (!(dw->dns = dns_new(dw->w, &ds, err, sizeof(err)))) {
        log_error("worker %u: cannot start the resolver: %s", index, err);
        return -1;
    }
    struct qmgr_hooks hooks = {dw, queuerun_settings_get, queuerun_settings_put};
    if (!(dw->ow = outbound_worker_new(dw->w, dw->dns, &dw->rc->outbound[index])) ||
        !(dw->lw = local_worker_new(dw->w, dw->d->local_fd)) ||
        !(dw->qmgr = qmgr_new(dw->w, dw->sw, dw->ow, dw->lw, &hooks))) {
        log_error("worker %u: cannot start the queue manager: out of memory", index);
        return -1;
    }
    struct queuerun_backlog *b = &dw->d->backlog[index];
    if (b->n && qmgr_reserve(dw->qmgr, b->n) < 0) {
        log_error("worker %u: no memory for the %zu queued messages", index, b->n);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++)
        qmgr_enqueue(dw->qmgr, b->v[i].qid, b->v[i].due);
    free(b->v);
    *b = (struct queuerun_backlog){0};
    return 0;
}

void queuerun_worker_stop(struct daemon_worker *dw)
{
    if (dw->qmgr)
        qmgr_stop(dw->qmgr);
    /* the agents' replies come back deferred while the ring still runs */
    if (dw->lw)
        local_worker_stop(dw->lw);
    outbound_worker_free(dw->ow);
    dw->ow = NULL;
    dns_free(dw->dns);
    dw->dns = NULL;
}

void queuerun_worker_free(struct daemon_worker *dw)
{
    queuerun_worker_stop(dw);
    qmgr_free(dw->qmgr);
    dw->qmgr = NULL;
    local_worker_free(dw->lw);
    dw->lw = NULL;
}

void queuerun_reconfigure(struct daemon_worker *dw)
{
    if (dw->ow)
        outbound_worker_configure(dw->ow, &dw->rc->outbound[engine_worker_index(dw->w)]);
}

void queuerun_committed(struct daemon_worker *dw, const char *qid)
{
    if (dw->qmgr)
        qmgr_enqueue(dw->qmgr, qid, 0);
}
