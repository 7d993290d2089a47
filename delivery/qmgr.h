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
 * (delivery/outbound.h), all at once; when one of several next hops (or local deliveries)
 * answers while others still run, its delivered recipients are written into the qf and
 * fsynced at once → log each recipient's outcome in sendmail's words → commit the bounce
 * or notice it causes, if any → when no recipient is pending, remove the message (qf, df,
 * a directory fsync shared with other commits and removals), else write the recipients'
 * new states, the attempt count and the next attempt into the qf, fsync it and put the
 * message back in the index at its next attempt. A recipient marked delivered is never
 * sent again; a crash sends again only the recipients not yet marked (at least once, as
 * sendmail and Postfix). An attempt whose every next hop was throttled (a destination at
 * its limit) writes nothing: the message waits in the index and on a per-destination
 * list, and a slot this worker's session frees makes it due at once.
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
#include "queue/envelope.h"
#include "queue/qid.h"
#include "util/buf.h"

struct engine_worker;
struct spool_worker;
struct local_worker;

/* --- local recipients ---
 * A local recipient the session expanded (envelope_rcpt.expanded) is one target: the
 * aliases' "|command" or "/file" (run as mailers.default_user by the parent's agent), or a
 * mailbox. A mailbox goes to the parent's agent, which may answer with the user's
 * .forward: its targets are then delivered in the same attempt (the user's programs and
 * files as the user), its addresses forwarded as a new message. A local recipient that was
 * not expanded (a bounce's, an older qf's) is expanded now and its targets forwarded as a
 * new message of expanded recipients. A recipient is delivered when all its targets are,
 * deferred when one is (all are tried again: Postfix's local(8) does the same), failed
 * when one failed and none deferred. */
enum qmgr_local_kind {
    QMGR_LOCAL_MAILBOX,
    QMGR_LOCAL_PROGRAM,
    QMGR_LOCAL_FILE,
    QMGR_LOCAL_REMOTE,
    QMGR_LOCAL_ERROR
};

struct qmgr_local_target {
    enum qmgr_local_kind kind;
    char *value;     /* MAILBOX login, PROGRAM command, FILE path, REMOTE address, ERROR text */
    char *detail;    /* MAILBOX: the +detail without '+', or NULL */
    char *relay;     /* REMOTE from luser_relay: the next hop (a mailertable value), or NULL */
    char *sender;    /* an owner-NAME alias's envelope sender for it, or NULL (the message's) */
    char status[16]; /* ERROR: "5.1.1"; a 4.x.x defers */
    bool no_forward; /* MAILBOX: the user's .forward is not read */
};

struct qmgr_local_targets {
    struct qmgr_local_target *v;
    size_t n;
};
/* Frees the targets' strings and array (those the hooks below made). */
void qmgr_local_targets_free(struct qmgr_local_targets *t);

struct qmgr_local_settings {
    uint32_t timeout_ms;      /* mailers.timeout */
    const struct route *lmtp; /* mailers.lmtp: mailboxes go there; NULL = the agent */
    const char *hostname;     /* the domain of forwarded local addresses */
    /* Expands a local address the engine itself queues (a bounce's recipient) as the
     * session expands a client's: 0 or -ENOMEM. */
    int (*expand)(void *arg, const char *rcpt, struct qmgr_local_targets *out);
    /* A user's .forward (`text`) → its targets: 0 or -ENOMEM. `detail` (or NULL) is the
     * mailbox's +detail. */
    int (*forward)(void *arg, const char *login, const char *detail, const char *text,
                   struct qmgr_local_targets *out);
    void *arg;
};

struct qmgr_settings {
    const char *hostname; /* ours: Reporting-MTA, the bounce's From: */
    struct queue_retry_settings retry;
    unsigned max_active;         /* messages in delivery at once on this worker */
    struct route_settings route; /* where recipients go */
    const struct outbound_settings *outbound;
    size_t bounce_return_max; /* a bounce returns the whole message only up to this size */
    const struct qmgr_local_settings *local; /* NULL: local recipients wait in the queue */
    /* What leaves by SMTP is rewritten (sendmail's masquerading and genericstable): the
     * envelope sender into `sender_out` and the header block (`header`, `len` bytes before
     * the empty line) into `header_out`, each left empty when unchanged. Not for LMTP (a
     * local mailbox). NULL = nothing is rewritten. 0, or -ENOMEM (the message then goes as
     * it is, logged). */
    int (*rewrite)(void *arg, const char *sender, const char *header, size_t len,
                   struct buf *sender_out, struct buf *header_out);
    void *rewrite_arg;
};

struct qmgr_hooks {
    void *arg;
    /* The settings for an attempt that starts now, and a reference (*ref) that keeps them
     * valid until put. */
    const struct qmgr_settings *(*settings_get)(void *arg, void **ref);
    void (*settings_put)(void *ref);
};

struct qmgr;

/* NULL when memory ran out. The spool, outbound and local workers stay the caller's and
 * must outlive the manager. */
struct qmgr *qmgr_new(struct engine_worker *w, struct spool_worker *sw, struct outbound_worker *ow,
                      struct local_worker *lw, const struct qmgr_hooks *hooks);
/* Stops starting deliveries (shutdown): attempts in flight end without writing the qf
 * (their recipients are tried again after the restart). */
void qmgr_stop(struct qmgr *q);
/* Every request and watch not yet done gets its done callback here. */
void qmgr_free(struct qmgr *q);

/* A message is in the spool: try it at `due` (Unix seconds; 0 or past = now). Ids already
 * queued are moved to the earlier time. -ENOMEM (logged) when the index cannot grow: the
 * message stays in the spool and is found at the next start. */
int qmgr_enqueue(struct qmgr *q, const char *qid, int64_t due);
/* Reserves room for n messages about to be enqueued (start-up recovery). */
int qmgr_reserve(struct qmgr *q, size_t n);

/* --- the queue tools' requests (core/control.h) ---
 * An operation on this manager's messages that `match` accepts: FLUSH makes the deferred
 * ones due now (held ones never; nothing is written); HOLD writes next_attempt =
 * ENVELOPE_NEXT_HELD in place (never due, at recovery neither); RELEASE makes a held
 * message due now (its quarantine reason, the q record, blanked in the same write);
 * REQUEUE makes a deferred message due now and clears its last reason
 * (the attempt count stays); DELETE removes qf then df and fsyncs the directory (no
 * bounce). Each write is fsynced before its message counts. A message whose attempt is in
 * flight counts once the operator's decision is durable: HOLD writes next_attempt =
 * ENVELOPE_NEXT_HELD into its qf at once and the attempt's end keeps it (the recipients'
 * outcomes are still recorded); RELEASE of a HOLD made during the attempt writes it due
 * again; DELETE removes the qf (and fsyncs the directory) at once, and the attempt then
 * neither writes the qf nor bounces, and removes the df when it ends (a crash first
 * leaves the df alone, which recovery removes); REQUEUE is remembered until the attempt
 * ends (a held message is not requeued, as when waiting). The attempt waits for such a
 * write before it records its outcome. A message whose own outcome is being written is
 * looked at again once that is done. HOLD, RELEASE, REQUEUE and DELETE log "<qid>: held
 * by <by>", "released by", "requeued by", "removed by". Requests run one after the other
 * per manager. */
enum qmgr_admin_op {
    QMGR_ADMIN_FLUSH,
    QMGR_ADMIN_HOLD,
    QMGR_ADMIN_RELEASE,
    QMGR_ADMIN_DELETE,
    QMGR_ADMIN_REQUEUE
};

struct qmgr_admin {
    enum qmgr_admin_op op;
    const char *by; /* who asked, for the log ("root", "uid 1000"); copied */
    /* The message's envelope is needed to decide (sender or recipient filters): `e` is
     * then the envelope, else NULL. A message whose attempt is starting that very moment
     * (its envelope being read) is not matched by such a request. */
    bool needs_envelope;
    bool (*match)(void *arg, const char *qid, const struct envelope *e);
    /* One message acted on (not called for FLUSH). */
    void (*item)(void *arg, const char *qid);
    /* The request is done on this manager: n messages acted on. Exactly once, later, never
     * from inside qmgr_admin; after qmgr_stop, once the operations in flight ended, or at
     * the latest in qmgr_free (the worker gave up on operations that never completed). */
    void (*done)(void *arg, size_t n);
    void *arg;
};

/* 0, or -ENOMEM, or -ECANCELED after qmgr_stop (nothing done, no callback). `a` is
 * copied. */
int qmgr_admin(struct qmgr *q, const struct qmgr_admin *a);

/* --- WATCH (sendmail -v): the delivery log lines of one message's attempt --- */
struct qmgr_watcher {
    /* One log line (no line end), as the log has it; `text` is valid during the call. */
    void (*line)(void *arg, const char *text, size_t len);
    /* No more lines. Exactly once, later, never from inside qmgr_watch. */
    void (*done)(void *arg);
    void *arg;
};
/* Watches the message's attempt in flight, or the one about to start (due now), or, when
 * one of the last 32 attempts on this manager was this message's and none is under way,
 * gives that attempt's lines. 0 (callbacks follow; `watcher` is copied), -ENOENT (not this
 * manager's, or not due now: nothing to watch), -ENOMEM. */
int qmgr_watch(struct qmgr *q, const char *qid, const struct qmgr_watcher *watcher);

/* Counts, for logs and tests. */
size_t qmgr_waiting(const struct qmgr *q);
unsigned qmgr_active(const struct qmgr *q);

#endif
