/*
 * The control socket's connections and the fan-out of their requests to every worker's
 * queue manager.
 *
 * A request about messages becomes a struct control_req shared by the workers: the worker
 * that accepted the connection (the origin) posts one part per worker through the inbox
 * below and CONTROL_ENGINE_MSG; each worker hands its part to its queue manager
 * (qmgr_admin), appends a "+ <qid> <what>" line per message under the inbox lock, and the
 * last one to finish posts the answer back to the origin, which writes it and closes. The
 * request is reference-counted (one reference for the origin, one per part): a connection
 * that closes early only forgets it.
 */
#include "core/control.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "core/control_proto.h"
#include "core/queuerun.h"
#include "core/submission.h"
#include "delivery/dest.h"
#include "delivery/qmgr.h"
#include "util/buf.h"
#include "util/log.h"

/* How long a client may take to send its request line. */
#define CONTROL_REQUEST_TIMEOUT_MS 30000
/* How long the answer may take to go out once written. */
#define CONTROL_CLOSE_MS 10000

/* An inbox entry: a part of a request for `worker` to do, or the answer to give. Every
 * request has its entries from the start, so handing it on never fails. */
struct control_item {
    struct control_item *next;
    unsigned worker;
    bool answer;
    struct control_req *req;
};

struct control_req {
    struct control_item *items; /* one part per worker, then the answer */
    unsigned refs;              /* under control_lock */
    unsigned pending;           /* workers still on it, under control_lock */
    unsigned n_parts;
    struct control_request parsed;
    char by[64];               /* the caller's login name, for the log */
    struct control_conn *conn; /* NULL once the connection closed (origin's thread only) */
    struct buf out;            /* "+ ..." lines, under control_lock */
    size_t count;              /* under control_lock */
    bool failed;               /* a worker could not do its part, under control_lock */
};

struct control_conn {
    struct daemon_conn conn; /* first: the daemon calls control_conn_callbacks through it */
    struct daemon_worker *dw;
    engine_conn_id id;
    struct submission_caller caller;
    char line[CONTROL_LINE_MAX];
    size_t len;
    bool answered; /* the request is read: input from now on is ignored */
    struct control_req *req;
};

/* The configuration allows at most 256 workers (core/config_keys.c). */
#define CONTROL_WORKERS_MAX 256

static pthread_mutex_t control_lock = PTHREAD_MUTEX_INITIALIZER;
static struct control_item *control_inbox;
/* Workers that have ended (under control_lock): nothing is posted to them any more. */
static bool control_gone[CONTROL_WORKERS_MAX];

static struct control_item *control_part_close(struct control_req *r, size_t n, bool failed);

static void control_req_unref(struct control_req *r)
{
    pthread_mutex_lock(&control_lock);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&control_lock);
    if (!last)
        return;
    control_request_free(&r->parsed);
    buf_free(&r->out);
    free(r->items);
    free(r);
}

/* Hands the item to its worker: false when that worker has ended (nothing posted). */
static bool control_post_to(struct daemon_worker *dw, struct control_item *it)
{
    pthread_mutex_lock(&control_lock);
    bool gone = it->worker < CONTROL_WORKERS_MAX && control_gone[it->worker];
    if (!gone) {
        it->next = control_inbox;
        control_inbox = it;
    }
    pthread_mutex_unlock(&control_lock);
    if (!gone)
        engine_post(dw->d->engine, CONTROL_ENGINE_MSG);
    return !gone;
}

/* Posts the item; one for a worker that has ended (SIGTERM) is settled here: a part is
 * not done (when it was the last, the answer goes to the origin), an answer is dropped
 * (its connection is closed). */
static void control_post(struct daemon_worker *dw, struct control_item *it)
{
    while (it && !control_post_to(dw, it)) {
        if (it->answer) {
            control_req_unref(it->req);
            return;
        }
        it = control_part_close(it->req, 0, true);
    }
}

/* --- answering --- */

static void control_close(struct control_conn *c)
{
    engine_conn_set_timer(c->dw->w, c->id, engine_now_ms(c->dw->w) + CONTROL_CLOSE_MS);
    engine_conn_close(c->dw->w, c->id, true);
}

static void control_send(struct control_conn *c, const char *text, size_t len)
{
    engine_conn_send(c->dw->w, c->id, text, len);
}

/* The final line, and the end of the connection. */
static void control_finish(struct control_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void control_finish(struct control_conn *c, int code, const char *fmt, ...)
{
    char text[512], line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    int n = code ? snprintf(line, sizeof(line), "ERR %d %s\n", code, text)
                 : snprintf(line, sizeof(line), "OK %s\n", text);
    control_send(c, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    c->answered = true;
    control_close(c);
}

/* While the start-up pass still reads the queue, messages it has not reached are not
 * counted: the answer says so. */
static void control_recovery_note(const struct control_conn *c, char *note, size_t len)
{
    size_t read, total;
    note[0] = '\0';
    if (queuerun_recovering(c->dw->d, &read, &total))
        snprintf(note, len,
                 "; the queue is still being read since the start (%zu of %zu messages so "
                 "far): the count is still growing",
                 read, total);
}

static void control_answer(struct control_req *r)
{
    struct control_conn *c = r->conn;
    if (c) {
        char note[160];
        control_recovery_note(c, note, sizeof(note));
        c->req = NULL;
        control_send(c, r->out.data ? r->out.data : "", r->out.len);
        if (r->failed)
            control_finish(c, EX_TEMPFAIL,
                           "%zu messages; the rest could not be done now, "
                           "see the log%s",
                           r->count, note);
        else if (r->parsed.verb == CONTROL_FLUSH)
            control_finish(c, 0, "%zu messages scheduled%s", r->count, note);
        else if (r->parsed.verb == CONTROL_WATCH)
            control_finish(c, 0, "%zu lines", r->count);
        else
            control_finish(c, 0, "%zu%s", r->count, note);
    }
    if (r->parsed.verb == CONTROL_FLUSH)
        log_info("queue run requested by %s: %zu messages scheduled", r->by, r->count);
    control_req_unref(r);
}

/* --- one worker's part --- */

/* What a worker's queue manager calls back with (struct qmgr_admin's arg). */
struct control_part {
    struct daemon_worker *dw;
    struct control_req *r;
};

static bool control_part_match(void *arg, const char *qid, const struct envelope *e)
{
    const struct control_req *r = ((struct control_part *)arg)->r;
    if (!e)
        return control_match(&r->parsed, qid, NULL, NULL, 0);
    const char *few[16] = {NULL}; /* gcc -O2 cannot tell that only rcpts[0..n) is read */
    const char **rcpts = e->n_rcpts <= 16 ? few : calloc(e->n_rcpts, sizeof(*rcpts));
    if (!rcpts) {
        log_error("%s: not matched by the queue request: out of memory", qid);
        return false;
    }
    size_t n = 0;
    for (size_t i = 0; i < e->n_rcpts; i++)
        if (envelope_rcpt_open(e->rcpts[i].state))
            rcpts[n++] = e->rcpts[i].addr;
    bool match = control_match(&r->parsed, qid, e->sender, rcpts, n);
    if (rcpts != few)
        free(rcpts);
    return match;
}

static void control_part_item(void *arg, const char *qid)
{
    static const char *const what[] = {
        [CONTROL_HOLD] = "held",
        [CONTROL_RELEASE] = "released",
        [CONTROL_DELETE] = "deleted",
        [CONTROL_REQUEUE] = "requeued",
    };
    struct control_req *r = ((struct control_part *)arg)->r;
    pthread_mutex_lock(&control_lock);
    if (buf_printf(&r->out, "+ %s %s\n", qid, what[r->parsed.verb]) < 0)
        r->failed = true;
    pthread_mutex_unlock(&control_lock);
}

/* A part is over: the answer item when it was the last one (the origin's to give), else
 * NULL. */
static struct control_item *control_part_close(struct control_req *r, size_t n, bool failed)
{
    pthread_mutex_lock(&control_lock);
    r->count += n;
    r->failed |= failed;
    bool last = --r->pending == 0;
    r->refs--; /* the part's; the origin's keeps the request */
    pthread_mutex_unlock(&control_lock);
    return last ? &r->items[r->n_parts] : NULL;
}

/* This worker is done with its part: the last one hands the request to the origin. */
static void control_part_end(struct daemon_worker *dw, struct control_req *r, size_t n, bool failed)
{
    struct control_item *answer = control_part_close(r, n, failed);
    if (answer)
        control_post(dw, answer);
}

static void control_part_done(void *arg, size_t n)
{
    struct control_part *p = arg;
    control_part_end(p->dw, p->r, n, false);
    free(p);
}

static const enum qmgr_admin_op control_ops[] = {
    [CONTROL_FLUSH] = QMGR_ADMIN_FLUSH,     [CONTROL_HOLD] = QMGR_ADMIN_HOLD,
    [CONTROL_RELEASE] = QMGR_ADMIN_RELEASE, [CONTROL_DELETE] = QMGR_ADMIN_DELETE,
    [CONTROL_REQUEUE] = QMGR_ADMIN_REQUEUE,
};

static void control_watch_line(void *arg, const char *text, size_t len)
{
    struct control_req *r = ((struct control_part *)arg)->r;
    pthread_mutex_lock(&control_lock);
    if (buf_printf(&r->out, "+ %.*s\n", (int)len, text) < 0)
        r->failed = true;
    else
        r->count++;
    pthread_mutex_unlock(&control_lock);
}

static void control_watch_done(void *arg)
{
    struct control_part *p = arg;
    control_part_end(p->dw, p->r, 0, false);
    free(p);
}

/* WATCH: the worker whose queue manager has the message answers with its lines. */
static int control_watch_start(struct daemon_worker *dw, struct control_part *p)
{
    struct qmgr_watcher w = {control_watch_line, control_watch_done, p};
    int rc = qmgr_watch(dw->qmgr, p->r->parsed.qids[0], &w);
    if (rc == -ENOENT) {
        control_part_end(dw, p->r, 0, false);
        free(p);
        return 0;
    }
    return rc;
}

static int control_admin_start(struct daemon_worker *dw, struct control_part *p)
{
    struct qmgr_admin a = {
        .op = control_ops[p->r->parsed.verb],
        .by = p->r->by,
        .needs_envelope = control_needs_envelope(&p->r->parsed),
        .match = control_part_match,
        .item = control_part_item,
        .done = control_part_done,
        .arg = p,
    };
    return qmgr_admin(dw->qmgr, &a);
}

static void control_part_start(struct daemon_worker *dw, struct control_req *r)
{
    struct control_part *p = malloc(sizeof(*p));
    int rc = p ? -ECANCELED : -ENOMEM; /* no queue manager: the worker is ending */
    if (p && dw->qmgr) {
        *p = (struct control_part){dw, r};
        rc = r->parsed.verb == CONTROL_WATCH ? control_watch_start(dw, p)
                                             : control_admin_start(dw, p);
        if (rc == 0)
            return;
    }
    free(p);
    log_error("control: worker %u cannot take a %s request: %s", engine_worker_index(dw->w),
              control_verb_name(r->parsed.verb), strerror(-rc));
    control_part_end(dw, r, 0, true);
}

/* Takes the inbox's items for worker `me`; with `ending`, nothing is posted to it after. */
static struct control_item *control_take(unsigned me, bool ending)
{
    struct control_item *mine = NULL;
    pthread_mutex_lock(&control_lock);
    for (struct control_item **pp = &control_inbox; *pp;) {
        struct control_item *it = *pp;
        if (it->worker == me) {
            *pp = it->next;
            it->next = mine;
            mine = it;
        } else {
            pp = &it->next;
        }
    }
    if (ending && me < CONTROL_WORKERS_MAX)
        control_gone[me] = true;
    pthread_mutex_unlock(&control_lock);
    return mine;
}

void control_on_message(struct daemon_worker *dw)
{
    struct control_item *mine = control_take(engine_worker_index(dw->w), false);
    /* the list is reversed: posting order does not matter between requests */
    for (struct control_item *it = mine, *next; it; it = next) {
        next = it->next;
        if (it->answer)
            control_answer(it->req);
        else
            control_part_start(dw, it->req);
    }
}

/* The worker ends (its connections are closed by now) with requests in flight (SIGTERM):
 * what is addressed to it is settled as if posted to it now, so each request is still
 * answered by its origin if that is up, and freed. */
void control_worker_fini(struct daemon_worker *dw)
{
    struct control_item *mine = control_take(engine_worker_index(dw->w), true);
    for (struct control_item *it = mine, *next; it; it = next) {
        next = it->next;
        control_post(dw, it);
    }
}

/* --- a connection --- */

static void control_start_fanout(struct control_conn *c, struct control_request *parsed)
{
    struct daemon_worker *dw = c->dw;
    unsigned workers = dw->d->workers;
    struct control_req *r = calloc(1, sizeof(*r));
    if (!r || !(r->items = calloc(workers + 1, sizeof(*r->items)))) {
        free(r);
        control_request_free(parsed);
        control_finish(c, EX_OSERR, "out of memory");
        return;
    }
    for (unsigned i = 0; i <= workers; i++)
        r->items[i] = (struct control_item){
            .worker = i < workers ? i : engine_worker_index(dw->w),
            .answer = i == workers,
            .req = r,
        };
    r->parsed = *parsed;
    r->refs = 1 + workers;
    r->pending = workers;
    r->n_parts = workers;
    r->conn = c;
    snprintf(r->by, sizeof(r->by), "%s", c->caller.user);
    buf_init(&r->out, 0);
    c->req = r;
    c->answered = true;
    engine_conn_set_timer(dw->w, c->id, 0); /* a large queue may take a while */
    for (unsigned i = 0; i < workers; i++)
        control_post(dw, &r->items[i]);
}

struct control_hoststat {
    struct buf *out;
    uint64_t now_ms;
    time_t now;
};

/* sendmail's hoststat shows each host's last status; here a line of tab-separated fields
 * a program reads: host, up|down, when (Unix time), reason. */
static void control_hoststat_line(void *arg, const struct dest_status *st)
{
    struct control_hoststat *h = arg;
    uint64_t ago = h->now_ms > st->failed_at ? (h->now_ms - st->failed_at) / 1000 : 0;
    buf_printf(h->out, "+ %s\t%s\t%lld\t%s\n", st->key, st->down ? "down" : "up",
               (long long)(h->now - (time_t)ago), st->reason);
}

static void control_hoststat(struct control_conn *c, bool purge)
{
    struct dest_table *dests = c->dw->d->dests;
    if (purge) {
        size_t n = dest_status_purge(dests);
        log_info("host status purged by %s: %zu destinations", c->caller.user, n);
        control_finish(c, 0, "%zu", n);
        return;
    }
    struct buf out;
    buf_init(&out, 0);
    struct control_hoststat h = {&out, engine_now_ms(c->dw->w), time(NULL)};
    size_t n = dest_status_list(dests, h.now_ms, control_hoststat_line, &h);
    control_send(c, out.data ? out.data : "", out.len);
    buf_free(&out);
    control_finish(c, 0, "%zu", n);
}

static void control_request_line(struct control_conn *c, const char *line, size_t len)
{
    struct control_request parsed;
    char err[256];
    engine_conn_pause_recv(c->dw->w, c->id);
    if (control_parse(line, len, &parsed, err, sizeof(err)) < 0) {
        control_finish(c, EX_USAGE, "%s", err);
        return;
    }
    if (control_verb_privileged(parsed.verb) && !c->caller.trusted) {
        log_info("control: %s refused to %s (uid %u): permission denied",
                 control_verb_name(parsed.verb), c->caller.user, (unsigned)c->caller.uid);
        control_request_free(&parsed);
        control_finish(c, EX_NOPERM, "permission denied");
        return;
    }
    switch (parsed.verb) {
    case CONTROL_HOSTSTAT:
    case CONTROL_PURGESTAT:
        control_hoststat(c, parsed.verb == CONTROL_PURGESTAT);
        control_request_free(&parsed);
        return;
    case CONTROL_WATCH:
    case CONTROL_FLUSH:
    case CONTROL_HOLD:
    case CONTROL_RELEASE:
    case CONTROL_DELETE:
    case CONTROL_REQUEUE:
        control_start_fanout(c, &parsed);
        return;
    }
}

static void control_on_recv(void *ctx, const char *data, size_t len)
{
    struct control_conn *c = ctx;
    if (c->answered)
        return;
    const char *nl = memchr(data, '\n', len);
    size_t take = nl ? (size_t)(nl - data) : len;
    if (c->len + take >= sizeof(c->line)) {
        control_finish(c, EX_USAGE, "request line too long");
        return;
    }
    memcpy(c->line + c->len, data, take);
    c->len += take;
    if (nl)
        control_request_line(c, c->line, c->len);
}

static void control_on_timer(void *ctx)
{
    struct control_conn *c = ctx;
    if (!c->answered)
        control_finish(c, EX_USAGE, "no request within %d seconds",
                       CONTROL_REQUEST_TIMEOUT_MS / 1000);
}

static void control_on_closed(void *ctx, int err)
{
    struct control_conn *c = ctx;
    (void)err;
    if (c->req) /* the workers finish it; nobody hears the answer */
        c->req->conn = NULL;
    free(c);
}

const struct engine_conn_callbacks control_conn_callbacks = {
    .on_recv = control_on_recv,
    .on_timer = control_on_timer,
    .on_closed = control_on_closed,
};

void *control_accept(struct daemon_worker *dw, engine_conn_id id, const struct ucred *peer)
{
    static const char draining[] = "ERR 75 shutting down\n", no_memory[] = "ERR 71 out of memory\n";
    if (dw->draining) {
        engine_conn_send(dw->w, id, draining, sizeof(draining) - 1);
        return NULL;
    }
    struct control_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        engine_conn_send(dw->w, id, no_memory, sizeof(no_memory) - 1);
        return NULL;
    }
    c->conn.cb = &control_conn_callbacks;
    c->dw = dw;
    c->id = id;
    submission_caller_init(dw->rc->cfg, peer->uid, peer->gid, peer->pid, &c->caller);
    engine_conn_set_timer(dw->w, id, engine_now_ms(dw->w) + CONTROL_REQUEST_TIMEOUT_MS);
    return c;
}
