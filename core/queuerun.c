#include "core/queuerun.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/privsep.h"
#include "core/runconf.h"
#include "core/submission.h"
#include "delivery/local.h"
#include "delivery/outbound.h"
#include "delivery/qmgr.h"
#include "queue/spool.h"
#include "util/dns.h"
#include "util/log.h"

/* Messages a worker's box holds before the reading thread waits for that worker: what
 * bounds the memory between them, and the batch a worker enqueues in one turn of its loop
 * (about a millisecond of qmgr_enqueue). */
#define QUEUERUN_BOX_CAP 1024
/* A worker is woken for its box once it holds this many messages, or when the last wake-up
 * is this old: one per message would cost more CPU than reading the envelopes. */
#define QUEUERUN_BATCH    256
#define QUEUERUN_BATCH_MS 20

struct queuerun_entry {
    char qid[QID_LEN];
    int64_t due;
};

/* One worker's recovered messages on their way from the reading thread. */
struct queuerun_box {
    struct queuerun_entry *fill; /* the thread's, under the lock */
    size_t n;
    struct queuerun_entry *spare; /* the worker's: swapped with fill when it takes them */
    size_t listed;                /* of this worker, found by the listing (qmgr_reserve) */
    bool posted;                  /* a QUEUERUN_ENGINE_MSG is on its way to take these */
    bool gone;                    /* the worker has ended: its messages stay in the spool */
};

/* The recovery: the listing's result, then the reading thread and the boxes it fills. */
struct queuerun_backlog {
    struct daemon *d;
    struct spool_pending *pending; /* listed, to read; freed when the pass ends */
    struct spool_recovery rec;
    size_t total;
    atomic_size_t read;  /* messages handed to their workers so far */
    atomic_bool reading; /* from the listing until the pass ends or stops */
    atomic_bool stop;
    pthread_mutex_t lock; /* the boxes */
    pthread_cond_t room;
    struct queuerun_box *box; /* by worker */
    pthread_t thread;
    bool threaded;
    uint64_t posted_ms; /* the reading thread's last wake-up of the workers */
    int parent;         /* told PRIVSEP_RECOVERED when the pass ends */
    struct runconf *rc; /* the maildrop's configuration, for the pass */
};

static void queuerun_listed(void *arg, const char *qid)
{
    struct queuerun_backlog *b = arg;
    b->box[qid_hash(qid) % b->d->workers].listed++;
}

static uint64_t queuerun_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Under the lock, after a message went into box `x`: whether to wake the workers now
 * (engine_post wakes every one of them, so every box with messages counts as posted).
 * `x` NULL: the pass is over, wake them for whatever is left. */
static bool queuerun_post_due(struct queuerun_backlog *b, const struct queuerun_box *x)
{
    uint64_t now = queuerun_now_ms();
    if (x && (x->posted || (x->n < QUEUERUN_BATCH && now - b->posted_ms < QUEUERUN_BATCH_MS)))
        return false;
    bool any = false;
    for (unsigned i = 0; i < b->d->workers; i++)
        if (b->box[i].n && !b->box[i].posted)
            any = b->box[i].posted = true;
    if (any)
        b->posted_ms = now;
    return any;
}

/* On the reading thread: the message goes to its worker's box, waiting while the box is
 * full. A held message is kept like any other (its worker must know it for RELEASE): its
 * next attempt, ENVELOPE_NEXT_HELD, is never due. Non-zero stops the pass (shutdown). */
static int queuerun_collect(void *arg, const struct envelope *e)
{
    struct queuerun_backlog *b = arg;
    /* queued safely: the maildrop file it came from must not be submitted again */
    if (e->maildrop)
        submission_recovered_maildrop(b->rc->cfg, e->maildrop);
    struct queuerun_box *x = &b->box[qid_hash(e->qid) % b->d->workers];
    bool post = false;
    pthread_mutex_lock(&b->lock);
    while (x->n == QUEUERUN_BOX_CAP && !x->gone && !atomic_load(&b->stop))
        pthread_cond_wait(&b->room, &b->lock);
    if (!x->gone && !atomic_load(&b->stop)) {
        memcpy(x->fill[x->n].qid, e->qid, QID_LEN);
        x->fill[x->n++].due = e->next_attempt;
        post = queuerun_post_due(b, x);
    }
    pthread_mutex_unlock(&b->lock);
    if (post)
        engine_post(b->d->engine, QUEUERUN_ENGINE_MSG);
    atomic_fetch_add(&b->read, 1);
    return atomic_load(&b->stop) ? -ECANCELED : 0;
}

/* The pass is over: whatever the boxes hold goes to the workers now. */
static void queuerun_flush(struct queuerun_backlog *b)
{
    pthread_mutex_lock(&b->lock);
    bool post = queuerun_post_due(b, NULL);
    pthread_mutex_unlock(&b->lock);
    if (post)
        engine_post(b->d->engine, QUEUERUN_ENGINE_MSG);
}

static void *queuerun_read_all(void *arg)
{
    struct queuerun_backlog *b = arg;
    struct spool_recovery *rec = &b->rec;
    char err[512];
    int r = spool_recover_read(b->d->spool, b->pending, queuerun_collect, b, rec, err, sizeof(err));
    queuerun_flush(b);
    if (r == 0) {
        log_info("spool %s: %u message(s) queued, %u partial file(s) removed, %u damaged, %u "
                 "moved",
                 spool_dir(b->d->spool), rec->messages, rec->removed + rec->empty, rec->damaged,
                 rec->moved);
        /* every maildrop file a queued message named is gone: the pickup may scan */
        if (privsep_send_value(b->parent, PRIVSEP_RECOVERED, rec->messages) < 0)
            log_error("cannot tell the privileged parent that the queue is read: %s",
                      strerror(errno));
    } else if (atomic_load(&b->stop)) {
        log_info("spool %s: stopping: %u of %zu queued message(s) read since the start, the "
                 "rest stay in the spool for the next start",
                 spool_dir(b->d->spool), rec->messages + rec->damaged, b->total);
    } else {
        log_error("%s", err);
    }
    spool_pending_free(b->pending);
    b->pending = NULL;
    runconf_unref(b->rc);
    b->rc = NULL;
    atomic_store(&b->reading, false);
    return NULL;
}

int queuerun_recover(struct daemon *d, char *err, size_t errlen)
{
    struct queuerun_backlog *b = calloc(1, sizeof(*b));
    if (!b || !(b->box = calloc(d->workers, sizeof(*b->box)))) {
        free(b);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->backlog = b;
    b->d = d;
    b->parent = -1;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->room, NULL);
    for (unsigned i = 0; i < d->workers; i++)
        if (!(b->box[i].fill = malloc(QUEUERUN_BOX_CAP * sizeof(struct queuerun_entry))) ||
            !(b->box[i].spare = malloc(QUEUERUN_BOX_CAP * sizeof(struct queuerun_entry)))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    if (spool_recover_list(d->spool, queuerun_listed, b, &b->rec, &b->pending, err, errlen) < 0)
        return -1;
    b->total = spool_pending_count(b->pending);
    atomic_store(&b->reading, true);
    log_info("spool %s: %zu message(s) found, their envelopes are read while the daemon serves",
             spool_dir(d->spool), b->total);
    return 0;
}

void queuerun_recover_start(struct daemon *d, int parent)
{
    struct queuerun_backlog *b = d->backlog;
    b->parent = parent;
    b->rc = daemon_current(d);
    int r = pthread_create(&b->thread, NULL, queuerun_read_all, b);
    if (r == 0) {
        b->threaded = true;
        return;
    }
    log_warn("spool %s: no thread to read the queue (%s): reading it now", spool_dir(d->spool),
             strerror(r));
    queuerun_read_all(b);
}

bool queuerun_recovering(const struct daemon *d, size_t *read, size_t *total)
{
    struct queuerun_backlog *b = d->backlog;
    if (!b || !atomic_load(&b->reading))
        return false;
    *read = atomic_load(&b->read);
    *total = b->total;
    return true;
}

void queuerun_recover_stop(struct daemon *d)
{
    struct queuerun_backlog *b = d->backlog;
    if (!b || !b->threaded)
        return;
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->stop, true);
    pthread_cond_broadcast(&b->room);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    b->threaded = false;
}

void queuerun_backlog_free(struct daemon *d)
{
    struct queuerun_backlog *b = d->backlog;
    if (!b)
        return;
    queuerun_recover_stop(d);
    for (unsigned i = 0; b->box && i < d->workers; i++) {
        free(b->box[i].fill);
        free(b->box[i].spare);
    }
    free(b->box);
    spool_pending_free(b->pending);
    if (b->rc)
        runconf_unref(b->rc);
    pthread_cond_destroy(&b->room);
    pthread_mutex_destroy(&b->lock);
    free(b);
    d->backlog = NULL;
}

void queuerun_on_message(struct daemon_worker *dw)
{
    struct queuerun_backlog *b = dw->d->backlog;
    struct queuerun_box *x = &b->box[engine_worker_index(dw->w)];
    pthread_mutex_lock(&b->lock);
    struct queuerun_entry *mine = x->fill;
    size_t n = x->n;
    x->fill = x->spare;
    x->n = 0;
    x->posted = false;
    pthread_cond_broadcast(&b->room);
    pthread_mutex_unlock(&b->lock);
    x->spare = mine;
    for (size_t i = 0; dw->qmgr && i < n; i++)
        qmgr_enqueue(dw->qmgr, mine[i].qid, mine[i].due);
}

static int queuerun_open_data(void *sw, const char *qid, bool data_inline)
{
    return spool_open_data(sw, qid, data_inline);
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
        !(dw->lw = local_worker_new(dw->w, dw->d->local_fd, queuerun_open_data, dw->sw)) ||
        !(dw->qmgr = qmgr_new(dw->w, dw->sw, dw->ow, dw->lw, &hooks))) {
        log_error("worker %u: cannot start the queue manager: out of memory", index);
        return -1;
    }
    size_t listed = dw->d->backlog->box[index].listed;
    if (listed && qmgr_reserve(dw->qmgr, listed) < 0) {
        log_error("worker %u: no memory for the %zu queued messages", index, listed);
        return -1;
    }
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
    struct queuerun_backlog *b = dw->d->backlog;
    pthread_mutex_lock(&b->lock);
    b->box[engine_worker_index(dw->w)].gone = true;
    pthread_cond_broadcast(&b->room);
    pthread_mutex_unlock(&b->lock);
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

void queuerun_committed(struct daemon_worker *dw, const char *qid, bool held)
{
    if (dw->qmgr)
        qmgr_enqueue(dw->qmgr, qid, held ? ENVELOPE_NEXT_HELD : 0);
}
