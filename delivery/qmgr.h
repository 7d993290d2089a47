/*
 * delivery/qmgr.h — one worker's queue manager: takes committed messages, delivers them,
 * records each recipient's outcome durably, retries, bounces and removes.
 *
 * Share-nothing, as the engine: every worker thread has its own queue manager with its own
 * index of waiting messages (queue/queue_index.h); a message committed on a worker is
 * handed to that worker's manager at once (qmgr_enqueue from the commit's callback), and
 * start-up recovery gives each worker its share. A bounce is made, committed and queued on
 * the worker whose delivery failed.
 *
 * One delivery attempt of a message: load its qf and df (queue/spool.h) → route every
 * pending recipient (delivery/route.h) → one outbound transaction per next hop
 * (delivery/outbound.h), all at once → log each recipient's outcome in sendmail's words →
 * commit the bounce or notice it causes, if any → write the recipients' new states, the
 * attempt count and the next attempt into the qf and fsync it → remove the message when no
 * recipient is pending, else put it back in the index at its next attempt. A recipient
 * marked delivered is never sent again; a crash anywhere before the qf update sends the
 * attempt's recipients again (at least once, as sendmail and Postfix).
 *
 * Settings come from the daemon's current configuration through `hooks`, taken once per
 * delivery attempt and held until it ends (a reload never changes a delivery midway).
 * Everything runs on the worker's thread; nothing here blocks.
 */
#ifndef RINGMAIL_DELIVERY_QMGR_H
#define RINGMAIL_DELIVERY_QMGR_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "delivery/outbound.h"
#include "delivery/route.h"
#include "queue/backoff.h"
#include "queue/qid.h"

struct engine_worker;
struct spool_worker;

struct qmgr_settings {
    const char *hostname; /* ours: Reporting-MTA, the bounce's From: */
    struct queue_retry_settings retry;
    unsigned max_active;         /* messages in delivery at once on this worker */
    struct route_settings route; /* where recipients go */
    const struct outbound_settings *outbound;
    size_t bounce_return_max; /* a bounce returns the whole message only up to this size */
};

struct qmgr_hooks {
    void *arg;
    /* The settings for an attempt that starts now, and a reference (*ref) that keeps them
     * valid until put. */
    const struct qmgr_settings *(*settings_get)(void *arg, void **ref);
    void (*settings_put)(void *ref);
};

struct qmgr;

/* NULL when memory ran out. The spool worker and the outbound worker stay the caller's and
 * must outlive the manager. */
struct qmgr *qmgr_new(struct engine_worker *w, struct spool_worker *sw, struct outbound_worker *ow,
                      const struct qmgr_hooks *hooks);
/* Stops starting deliveries (shutdown): attempts in flight end without writing the qf
 * (their recipients are tried again after the restart). */
void qmgr_stop(struct qmgr *q);
void qmgr_free(struct qmgr *q);

/* A message is in the spool: try it at `due` (Unix seconds; 0 or past = now). Ids already
 * queued are moved to the earlier time. -ENOMEM (logged) when the index cannot grow: the
 * message stays in the spool and is found at the next start. */
int qmgr_enqueue(struct qmgr *q, const char *qid, int64_t due);
/* Reserves room for n messages about to be enqueued (start-up recovery). */
int qmgr_reserve(struct qmgr *q, size_t n);

/* Counts, for logs and tests. */
size_t qmgr_waiting(const struct qmgr *q);
unsigned qmgr_active(const struct qmgr *q);

#endif
