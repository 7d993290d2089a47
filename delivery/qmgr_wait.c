/*
 * Messages waiting for a slot of a throttled destination (Postfix's queue manager keeps
 * such messages in its in-memory queue and hands them out as the destination's
 * sessions end). A message whose next hop was throttled goes back into the index at the
 * throttle's retry time, and is listed here under the destination's key: when a session
 * of this manager to that destination ends, the first listed message still waiting is
 * made due at once, so the freed slot is used without waiting for the timer. A slot a
 * session of another worker frees is found by that timer (a second at most).
 *
 * Bounded: at most max_active entries per manager (the messages it delivers at once);
 * past that a message waits for its timer alone. An entry whose message started meanwhile
 * (its timer came first) or is gone is dropped when its turn comes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery/qmgr_int.h"
#include "queue/envelope.h"
#include "queue/queue_index.h"

struct qmgr_waiter {
    struct qmgr_waiter *next;
    char qid[QID_LEN + 1];
};

/* The messages waiting for one destination, oldest first. */
struct qmgr_waitq {
    struct qmgr_waitq *next;
    struct qmgr_waiter *head, *tail;
    char key[QMGR_KEY_MAX];
};

static struct qmgr_waitq **qmgr_waitq_find(struct qmgr *q, const char *key)
{
    struct qmgr_waitq **pp = &q->waitqs;
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

void qmgr_wait_add(struct qmgr *q, const char *key, const char *qid, size_t cap)
{
    if (q->n_waiting >= cap)
        return;
    struct qmgr_waitq **pp = qmgr_waitq_find(q, key);
    struct qmgr_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return; /* its timer finds the slot */
    if (!*pp) {
        if (!(*pp = calloc(1, sizeof(**pp)))) {
            free(w);
            return;
        }
        snprintf((*pp)->key, sizeof((*pp)->key), "%s", key);
    }
    memcpy(w->qid, qid, sizeof(w->qid));
    if ((*pp)->tail)
        (*pp)->tail->next = w;
    else
        (*pp)->head = w;
    (*pp)->tail = w;
    q->n_waiting++;
}

bool qmgr_wait_wake(struct qmgr *q, const char *key)
{
    struct qmgr_waitq **pp = qmgr_waitq_find(q, key), *wq = *pp;
    bool woke = false;
    if (!wq)
        return false;
    int64_t now = time(NULL), due;
    while (!woke && wq->head) {
        struct qmgr_waiter *w = wq->head;
        wq->head = w->next;
        q->n_waiting--;
        /* a held message stays held; one due already needs nothing */
        if (queue_index_contains(q->idx, w->qid, &due) && due != ENVELOPE_NEXT_HELD && due > now)
            woke = queue_index_reschedule(q->idx, w->qid, now) == 0;
        free(w);
    }
    if (!wq->head) {
        *pp = wq->next;
        free(wq);
    }
    return woke;
}

void qmgr_wait_free(struct qmgr *q)
{
    while (q->waitqs) {
        struct qmgr_waitq *wq = q->waitqs;
        q->waitqs = wq->next;
        for (struct qmgr_waiter *w = wq->head, *next; w; w = next) {
            next = w->next;
            free(w);
        }
        free(wq);
    }
    q->n_waiting = 0;
}
