/*
 * delivery/qmgr_int.h — the queue manager's own structures, shared by its files: qmgr.c
 * (the attempt, the outcome, the queue tools' requests) and qmgr_local.c (local
 * recipients). Nothing outside delivery/qmgr*.c includes it.
 */
#ifndef RINGMAIL_DELIVERY_QMGR_INT_H
#define RINGMAIL_DELIVERY_QMGR_INT_H

#include <stdbool.h>

#include "delivery/local.h"
#include "delivery/qmgr.h"
#include "delivery/qmgr_log.h"
#include "util/buf.h"
#include "util/engine.h"

/* A waiting message whose attempt could not start for want of memory is tried again after
 * this long instead of at once (the loop would spin). */
#define QMGR_RETRY_SOON_S 60
/* Messages a queue tool's request reads or rewrites at once on one worker: enough to keep
 * the disk busy, few enough that deliveries still get their share of the ring. */
#define QMGR_ADMIN_PARALLEL 16
/* A request on a message in flight: none yet. */
#define QMGR_ADMIN_NONE (-1)
/* Finished attempts whose log lines a WATCH that comes just too late still gets (sendmail
 * -v submits, then watches: a fast delivery may be over by then). */
#define QMGR_RECENT 32
/* What one attempt's lines may hold for the watchers: a message with thousands of
 * recipients keeps its first lines only. */
#define QMGR_TRACE_MAX (64u << 10)

enum qmgr_outcome { QMGR_PENDING, QMGR_DELIVERED, QMGR_DEFERRED, QMGR_FAILED };

struct qmgr_rcpt {
    struct route route;
    enum qmgr_outcome outcome;
    bool relayed;         /* delivered to a next hop that does not offer DSN */
    char status[12];      /* "2.0.0" */
    char stat[600];       /* the log's stat= after "Sent (", "Deferred: " or the failure */
    char diagnostic[600]; /* the next hop's reply "550 5.1.1 ...", for the DSN; "" if ours */
    char relay[400];      /* the log's relay=: "mx.example.com. [192.0.2.1]" */
    char relay_host[256]; /* the DSN's Remote-MTA */
    int in_notice;        /* -1, or the bounce_kind of the notice being made for it */
    bool warned;          /* its delay warning is queued: record W */
    bool saved;           /* its outcome (and log line) went to the qf before the attempt's end */
    struct qmgr_local_rcpt *local; /* a local recipient's deliveries (qmgr_local.c), or NULL */
};

/* A destination's name: route_key() of its route. */
#define QMGR_KEY_MAX (ROUTE_HOST_MAX + 32)

/* One next hop of an attempt: the recipients that share its route key. */
struct qmgr_group {
    struct qmgr_msg *m;
    char key[QMGR_KEY_MAX];
    size_t *rcpts; /* indices into m->env.rcpts */
    struct smtp_client_rcpt *to;
    size_t n;
    bool throttled; /* not tried: the destination was at its limit */
};

struct qmgr_msg {
    struct qmgr *q;
    struct qmgr_msg *next, *prev; /* q->active list */
    char qid[QID_LEN + 1];
    void *ref; /* the settings' reference */
    const struct qmgr_settings *s;
    struct envelope env;
    bool loaded;
    char *data;
    size_t len;
    /* what goes out by SMTP when qmgr_settings.rewrite changed it (else data and sender) */
    struct buf smtp_data, smtp_sender;
    struct qmgr_rcpt *r;
    struct qmgr_group *groups;
    size_t n_groups;
    size_t groups_open;
    size_t bounces_open;
    time_t started;
    bool attempted;   /* a next hop was tried (not only throttled) */
    int64_t retry_at; /* a throttled next hop: try again then (0 = none) */
    bool stopped;     /* the manager stopped: end without writing anything */
    int admin;        /* a queue tool's request for when the attempt ends, or QMGR_ADMIN_NONE */
    char admin_by[64];
    /* A request's write to the qf (HOLD, RELEASE) or its removal (DELETE) is in flight: the
     * attempt waits at `resume` before it writes, bounces or ends, so the two never touch
     * the qf at once and a DELETE is known before any bounce is made. */
    unsigned admin_io;
    enum { QMGR_RESUME_NONE, QMGR_RESUME_DONE, QMGR_RESUME_RECORD, QMGR_RESUME_END } resume;
    bool recording; /* the attempt's own qf update or removal is issued */
    /* The outcomes of next hops that finished while others run are being written
     * (qmgr_save); `save_waits`: the last one ended meanwhile and the attempt goes on once
     * the write is done, so that two writes of the message never overlap. */
    bool saving, save_waits;
    /* A request that met this message while `recording`: it looks at the message again,
     * as a waiting one, once the attempt has ended. */
    struct qmgr_admin_job *admin_later;
    char reason[700]; /* this attempt's deferral, as the log's stat= says it ("" = none) */
    struct buf trace; /* this attempt's log lines, each ending in '\n', for WATCH */
};

struct qmgr_watch {
    struct qmgr_watch *next;
    char qid[QID_LEN + 1];
    struct qmgr_watcher w;
    bool recent; /* answered from q->recent at the next turn of the loop */
};

struct qmgr_recent {
    char qid[QID_LEN + 1];
    struct buf lines;
};

struct qmgr_admin_job;
struct qmgr_waitq;

struct qmgr {
    struct engine_worker *w;
    struct spool_worker *sw;
    struct outbound_worker *ow;
    struct local_worker *lw;
    struct qmgr_hooks hooks;
    struct queue_index *idx;
    struct engine_timer timer;
    int64_t timer_due; /* 0 = not armed */
    struct qmgr_msg *active;
    unsigned n_active;
    bool stopping;
    bool kicking;
    struct qmgr_admin_job *admin_head, *admin_tail; /* the queue tools' requests, in order */
    struct qmgr_watch *watches;
    struct engine_timer watch_timer; /* answers the watches of recent attempts */
    struct qmgr_recent recent[QMGR_RECENT];
    unsigned recent_next;
    struct qmgr_waitq *waitqs; /* messages waiting for a throttled destination (qmgr_wait.c) */
    size_t n_waiting;
};

/* A delivery log line of this attempt: to the log, and kept for WATCH. */
void qmgr_trace(struct qmgr_msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One delivery line (delivery/qmgr_log.h) of this attempt through qmgr_trace. */
void qmgr_trace_line(struct qmgr_msg *m, const char *to, const char *ctladdr, const char *mailer,
                     const char *relay, enum qmgr_log_stat stat, const char *status,
                     const char *text);
/* One next hop (or local delivery) of the attempt fewer to wait for; the outcomes it set
 * are written to the qf at once when others are still under way. */
void qmgr_group_release(struct qmgr_msg *m);

/* qmgr_wait.c. The message `qid`, back in the index, waits for a slot of destination
 * `key`; nothing is listed past `cap` entries (the manager's max_active). */
void qmgr_wait_add(struct qmgr *q, const char *key, const char *qid, size_t cap);
/* A session of this manager to `key` ended: the first message listed for it that still
 * waits in the index is made due now. Whether one was (the caller arms the timer). */
bool qmgr_wait_wake(struct qmgr *q, const char *key);
void qmgr_wait_free(struct qmgr *q);

/* qmgr_local.c. Whether recipient i (routed local) is taken care of by local delivery: its
 * target is set up for qmgr_local_start or, with mailers.lmtp, its route is the LMTP
 * server's (grouped like any next hop). False when local delivery is not configured (the
 * recipient waits in the queue). */
bool qmgr_local_route(struct qmgr_msg *m, size_t i);
/* Starts the local deliveries qmgr_local_route set up; each is counted in m->groups_open
 * and released when its outcome is known. */
void qmgr_local_start(struct qmgr_msg *m);
/* The address LMTP or luser_relay's host gets for recipient i, or NULL (the envelope's). */
const char *qmgr_local_lmtp_rcpt(const struct qmgr_msg *m, size_t i);
/* Whether every outcome of local recipient i in this attempt was a target of its .forward
 * that had its own log line (then the recipient itself gets none, as with sendmail). */
bool qmgr_local_traced(const struct qmgr_msg *m, size_t i);
/* A program or file of the aliases file (recipient i) as sendmail's log line names it:
 * to= "\"|prog\"" or "/file", and ctladdr= the alias it came from with the ids it ran as
 * ("" when not known). False for any other recipient (the line says to=<addr>). */
bool qmgr_local_names(const struct qmgr_msg *m, size_t i, char *to, size_t tolen, char *ctladdr,
                      size_t ctllen);
/* Frees what local delivery kept for the attempt. */
void qmgr_local_free(struct qmgr_msg *m);

#endif
