/*
 * util/engine.c — the engine's life cycle and each worker's loop.
 *
 * A worker creates its own ring on its own thread (SINGLE_ISSUER wants the submitter to
 * be the creator) and reports the outcome to engine_start(), which lets the workers run
 * only once every one of them is ready, so a failure leaves nothing half-started.
 *
 * One loop turn: fire expired timers, start the sends queued meanwhile, submit
 * everything and wait (bounded by the nearest deadline) in one io_uring_enter, then run
 * the completions. Cross-thread messages arrive through a per-worker eventfd the ring
 * reads; the values travel in a mutex-protected queue beside it, so several posts may
 * share one wake-up and none is lost.
 *
 * Callbacks ask for SQEs (engine_get_sqe), and a full SQ is submitted from there. When the
 * kernel refuses that submission until completions are reaped (EBUSY: completions
 * overflowed the CQ; EAGAIN: no memory for requests until some finish), retrying alone
 * could spin for ever, and running the completions there would call callbacks from inside
 * a callback: they are copied to the worker's deferred list instead, which the loop
 * dispatches before anything newer from the CQ.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/engine_int.h"
#include "util/log.h"

/* How long a stopping worker waits for its operations (a stuck spool write, say) before
 * it closes its connections regardless. */
#define ENGINE_EXIT_GRACE_MS 10000

/* Work done in one batch of completions before queued output is sent anyway. */
#define ENGINE_FLUSH_US 1000

#define ENGINE_MAX_OUTPUT_DEFAULT (256u * 1024)
#define ENGINE_CLOSE_LINGER_MS    30000
#define ENGINE_FD_RESERVE         64
/* How long engine_get_sqe waits for a completion when the kernel refuses submissions and
 * none is there to set aside. */
#define ENGINE_BUSY_WAIT_MS 1

_Static_assert(_Alignof(struct engine_op) >= 1u << ENGINE_KIND_BITS,
               "engine_op pointers need free low bits for the user_data tag");

static uint64_t engine_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t engine_clock_ms(void)
{
    return engine_clock_us() / 1000;
}

/* Moves every completion in the CQ to the deferred list; false if there was none (or no
 * memory to hold them, which leaves them in the CQ). */
static bool engine_defer_cqes(struct engine_worker *w)
{
    size_t before = w->ndeferred;
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&w->ring, &cqe) == 0 && cqe) {
        if (w->ndeferred == w->deferred_cap) {
            size_t cap = w->deferred_cap ? 2 * w->deferred_cap : 64;
            struct engine_cqe *d = realloc(w->deferred, cap * sizeof *d);
            if (!d)
                break;
            w->deferred = d;
            w->deferred_cap = cap;
        }
        w->deferred[w->ndeferred++] =
            (struct engine_cqe){.ud = cqe->user_data, .res = cqe->res, .flags = cqe->flags};
        io_uring_cqe_seen(&w->ring, cqe);
    }
    return w->ndeferred > before;
}

/* The kernel refused a submission until completions are reaped: make room in the CQ (and
 * give the kernel a chance to finish something) without running a callback. */
static void engine_unjam(struct engine_worker *w, int why, unsigned *tries)
{
    if (++*tries == 1000)
        log_warn("engine: worker %u: the kernel refused 1000 submissions in a row: %s", w->index,
                 strerror(-why));
    if (engine_defer_cqes(w))
        return;
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_nsec = ENGINE_BUSY_WAIT_MS * 1000000L};
    if (io_uring_wait_cqe_timeout(&w->ring, &cqe, &ts) == 0)
        engine_defer_cqes(w);
}

struct io_uring_sqe *engine_get_sqe(struct engine_worker *w, uint64_t user_data)
{
    /* Only when a stuck exit gave up on the ring and on_closed still asks for SQEs: the
     * operation is dropped rather than crashing the process on its way out. */
    if (!w->ring_ready) {
        memset(&w->dead_sqe, 0, sizeof w->dead_sqe);
        return &w->dead_sqe;
    }
    struct io_uring_sqe *sqe;
    unsigned tries = 0;
    while (!(sqe = io_uring_get_sqe(&w->ring))) {
        int ret = io_uring_submit(&w->ring);
        if (ret == -EAGAIN || ret == -EBUSY)
            engine_unjam(w, ret, &tries);
        else if (ret < 0 && ret != -EINTR)
            log_panic("engine: worker %u: the ring refuses submissions: %s", w->index,
                      strerror(-ret));
    }
    io_uring_sqe_set_data64(sqe, user_data);
    w->inflight++;
    return sqe;
}

void engine_cancel(struct engine_worker *w, uint64_t user_data)
{
    io_uring_prep_cancel64(engine_get_sqe(w, ENGINE_K_NONE), user_data, 0);
}

struct io_uring_sqe *engine_sqe(struct engine_worker *w, struct engine_op *op)
{
    return engine_get_sqe(w, op ? (uint64_t)(uintptr_t)op : ENGINE_K_NONE);
}

void engine_submit(struct engine_worker *w)
{
    int ret = w->ring_ready ? io_uring_submit(&w->ring) : 0;
    if (ret < 0)
        log_error("engine: worker %u: submit: %s", w->index, strerror(-ret));
}

void engine_sqe_reserve(struct engine_worker *w, unsigned n)
{
    if (w->ring_ready && io_uring_sq_space_left(&w->ring) < n)
        engine_submit(w);
}

unsigned engine_worker_index(const struct engine_worker *w)
{
    return w->index;
}

void *engine_worker_ctx(const struct engine_worker *w)
{
    return w->ctx;
}

uint64_t engine_now_ms(struct engine_worker *w)
{
    return w->now;
}

unsigned engine_worker_connections(const struct engine_worker *w)
{
    return w->conns;
}

bool engine_worker_exiting(const struct engine_worker *w)
{
    return w->exit_requested;
}

void engine_worker_exit(struct engine_worker *w)
{
    w->exit_requested = true;
}

static void engine_wake_arm(struct engine_worker *w)
{
    io_uring_prep_read(engine_get_sqe(w, ENGINE_K_WAKE), w->wake_fd, &w->wake_val,
                       sizeof w->wake_val, 0);
}

static void engine_wake_complete(struct engine_worker *w, int res)
{
    if (w->exiting)
        return;
    if (res < 0 && res != -EINTR && res != -EAGAIN) {
        log_error("engine: worker %u: reading its wake-up eventfd: %s; messages to it are "
                  "lost from now on",
                  w->index, strerror(-res));
        return;
    }
    pthread_mutex_lock(&w->mq_lock);
    uint32_t *msgs = w->mq;
    size_t n = w->mq_len;
    w->mq = NULL;
    w->mq_len = w->mq_cap = 0;
    pthread_mutex_unlock(&w->mq_lock);
    for (size_t i = 0; i < n && w->e->cb.on_message; i++)
        w->e->cb.on_message(w, w->ctx, msgs[i]);
    free(msgs);
    engine_wake_arm(w);
}

void engine_post(struct engine *e, uint32_t msg)
{
    for (unsigned i = 0; i < e->s.workers; i++) {
        struct engine_worker *w = &e->workers[i];
        pthread_mutex_lock(&w->mq_lock);
        if (w->mq_len == w->mq_cap) {
            size_t cap = w->mq_cap ? 2 * w->mq_cap : 16;
            uint32_t *q = realloc(w->mq, cap * sizeof *q);
            if (!q) {
                pthread_mutex_unlock(&w->mq_lock);
                log_error("engine: out of memory: message %u to worker %u dropped", msg, i);
                continue;
            }
            w->mq = q;
            w->mq_cap = cap;
        }
        w->mq[w->mq_len++] = msg;
        pthread_mutex_unlock(&w->mq_lock);
        /* EAGAIN: the counter is nearly full, so a wake-up is pending anyway. */
        uint64_t one = 1;
        if (write(w->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            log_error("engine: waking worker %u: %s", i, strerror(errno));
    }
}

static void engine_dispatch(struct engine_worker *w, uint64_t ud, int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        w->inflight--;
    switch ((enum engine_kind)(ud & ENGINE_KIND_MASK)) {
    case ENGINE_K_OP: {
        struct engine_op *op = (struct engine_op *)(uintptr_t)ud;
        op->complete(op, res);
        break;
    }
    case ENGINE_K_NONE:
        break;
    case ENGINE_K_ACCEPT:
        engine_accept_complete(w, (unsigned)(ud >> ENGINE_KIND_BITS), res, flags);
        break;
    case ENGINE_K_WAKE:
        engine_wake_complete(w, res);
        break;
    case ENGINE_K_RECV:
        engine_recv_complete(w, ud, res, flags);
        break;
    case ENGINE_K_SEND:
        engine_send_complete(w, ud, res);
        break;
    case ENGINE_K_CLOSE:
        if (res < 0)
            log_warn("engine: worker %u: close: %s", w->index, strerror(-res));
        break;
    case ENGINE_K_CONNECT:
        engine_connect_complete(w, ud, res);
        break;
    default:
        log_error("engine: worker %u: completion with unknown user_data %#llx", w->index,
                  (unsigned long long)ud);
        break;
    }
}

/* Replies wait in their connections' queues until the batch of completions has been
 * handled, so that one system call sends them all. A batch of expensive work (a dozen TLS
 * handshakes with the P-384 group take 30 ms) would hold every reply back that long while
 * the peers sit idle, and then hand them all their work at once; past ENGINE_FLUSH_US of
 * work the queued output is sent without waiting for the rest of the batch. */
static void engine_flush_if_slow(struct engine_worker *w, uint64_t *since)
{
    if (w->send_head == ENGINE_NO_SLOT)
        return;
    uint64_t now = engine_clock_us();
    if (now - *since < ENGINE_FLUSH_US)
        return;
    engine_conns_flush(w);
    engine_submit(w);
    *since = now;
}

/* Completions set aside by engine_get_sqe, oldest first (more may be added meanwhile). */
static void engine_run_deferred(struct engine_worker *w, uint64_t *since)
{
    while (w->deferred_head < w->ndeferred) {
        struct engine_cqe c = w->deferred[w->deferred_head++];
        engine_dispatch(w, c.ud, c.res, c.flags);
        engine_flush_if_slow(w, since);
    }
    w->deferred_head = w->ndeferred = 0;
}

/* CQEs are copied out and the CQ advanced before any callback runs: a callback may
 * submit, and the kernel may then need the room. Deferred completions are older than
 * anything still in the CQ (a connection's data must be handed over in order): they go
 * first. */
static void engine_run_completions(struct engine_worker *w)
{
    enum { BATCH = 64 };
    unsigned n;
    uint64_t started = engine_clock_us();
    do {
        engine_run_deferred(w, &started);
        struct io_uring_cqe *cqes[BATCH];
        struct {
            uint64_t ud;
            int res;
            unsigned flags;
        } done[BATCH];
        n = io_uring_peek_batch_cqe(&w->ring, cqes, BATCH);
        for (unsigned i = 0; i < n; i++) {
            done[i].ud = cqes[i]->user_data;
            done[i].res = cqes[i]->res;
            done[i].flags = cqes[i]->flags;
        }
        io_uring_cq_advance(&w->ring, n);
        for (unsigned i = 0; i < n; i++) {
            engine_dispatch(w, done[i].ud, done[i].res, done[i].flags);
            engine_flush_if_slow(w, &started);
        }
    } while (n == BATCH || w->ndeferred);
}

static uint64_t engine_earliest(uint64_t a, uint64_t b)
{
    if (!a)
        return b;
    return b && b < a ? b : a;
}

static void engine_wait(struct engine_worker *w, uint64_t deadline)
{
    struct __kernel_timespec ts, *tsp = NULL;
    if (w->ndeferred) {
        /* Completions set aside this turn are waiting: submit, do not sleep. */
        engine_submit(w);
        return;
    }
    if (deadline) {
        uint64_t ms = deadline > w->now ? deadline - w->now : 0;
        ts.tv_sec = (long long)(ms / 1000);
        ts.tv_nsec = (long long)(ms % 1000) * 1000000;
        tsp = &ts;
    }
    struct io_uring_cqe *cqe;
    int ret = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, tsp, NULL);
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
        log_error("engine: worker %u: io_uring_enter: %s", w->index, strerror(-ret));
}

static void engine_begin_exit(struct engine_worker *w)
{
    w->exiting = true;
    engine_worker_stop_accepting(w);
    engine_conns_cancel_all(w);
    engine_cancel(w, ENGINE_K_WAKE);
}

static void engine_loop(struct engine_worker *w)
{
    uint64_t grace_end = 0;
    for (;;) {
        engine_timers_fire(w);
        engine_worker_timers_fire(w);
        if (w->accept_retry_at && w->now >= w->accept_retry_at) {
            w->accept_retry_at = 0;
            engine_accepts_arm(w);
        }
        /* on_closed may queue output elsewhere; flushing may settle closed slots. */
        do {
            engine_conns_reap(w);
            engine_conns_flush(w);
        } while (w->reap_head != ENGINE_NO_SLOT);
        /* After the reap: an on_closed callback may have asked for the exit. */
        if (w->exit_requested && !w->exiting) {
            engine_begin_exit(w);
            grace_end = w->now + ENGINE_EXIT_GRACE_MS;
            continue;
        }
        if (w->exiting && !w->inflight)
            return;
        if (w->exiting && w->now >= grace_end) {
            log_warn("engine: worker %u: %u operations still unfinished %d ms after exit; "
                     "giving up on them",
                     w->index, w->inflight, ENGINE_EXIT_GRACE_MS);
            return;
        }
        uint64_t deadline = engine_earliest(engine_timer_next(w), w->accept_retry_at);
        deadline = engine_earliest(deadline, engine_worker_timer_next(w));
        engine_wait(w, engine_earliest(deadline, grace_end));
        w->now = engine_clock_ms();
        engine_run_completions(w);
    }
}

static void engine_worker_run(struct engine_worker *w)
{
    const struct engine_callbacks *cb = &w->e->cb;
    w->now = engine_clock_ms();
    w->ctx = cb->worker_init ? cb->worker_init(w, w->index) : NULL;
    engine_accepts_arm(w);
    engine_wake_arm(w);
    engine_loop(w);
    /* Promised to the layer: no timer fires after the loop, and worker_fini may free
     * armed ones. */
    engine_worker_timers_drop(w);
    engine_refusals_flush();
    if (w->inflight || w->conns || w->outbound) {
        /* The grace ran out. Only once the ring is gone may memory the kernel might still
         * use (output chunks here, the callers' engine_op objects after worker_fini) be
         * freed. */
        io_uring_queue_exit(&w->ring);
        w->ring_ready = false;
        engine_conns_force_free(w);
    }
    if (cb->worker_fini)
        cb->worker_fini(w, w->ctx);
}

static int engine_worker_setup(struct engine_worker *w)
{
    const struct engine_settings *s = &w->e->s;
    int ret = engine_ring_init(&w->ring, s->ring_entries);
    if (ret < 0) {
        engine_ring_error(-ret, w->setup_err, sizeof w->setup_err);
        return -1;
    }
    w->ring_ready = true;
    ret = engine_bufring_new(w, s->recv_buffers, s->recv_buffer_size);
    if (ret < 0) {
        snprintf(w->setup_err, sizeof w->setup_err,
                 "worker %u: cannot set up %u receive buffers of %u bytes: %s", w->index,
                 s->recv_buffers, s->recv_buffer_size, strerror(-ret));
        return -1;
    }
    return 0;
}

static void *engine_worker_main(void *arg)
{
    struct engine_worker *w = arg;
    struct engine *e = w->e;
    int rc = engine_worker_setup(w);

    pthread_mutex_lock(&e->lock);
    w->setup_rc = rc;
    e->ready++;
    pthread_cond_broadcast(&e->cond);
    while (!e->go && !e->abort_start)
        pthread_cond_wait(&e->cond, &e->lock);
    bool go = e->go && rc == 0;
    pthread_mutex_unlock(&e->lock);

    if (go)
        engine_worker_run(w);
    if (w->ring_ready)
        io_uring_queue_exit(&w->ring);
    w->ring_ready = false;
    engine_bufring_free(w);
    return NULL;
}

static int engine_settings_check(struct engine_settings *s, char *err, size_t errlen)
{
    if (!s->ring_entries)
        s->ring_entries = 1024;
    if (!s->recv_buffers)
        s->recv_buffers = 1024;
    if (!s->recv_buffer_size)
        s->recv_buffer_size = 4096;
    if (!s->max_connections)
        s->max_connections = 65536;
    if (!s->max_output)
        s->max_output = ENGINE_MAX_OUTPUT_DEFAULT;
    if (!s->close_linger_ms)
        s->close_linger_ms = ENGINE_CLOSE_LINGER_MS;
    if (!s->fd_reserve)
        s->fd_reserve = ENGINE_FD_RESERVE;
    const char *bad = NULL;
    if (s->workers < 1 || s->workers > 1024)
        bad = "workers must be between 1 and 1024";
    else if (s->ring_entries > 16384)
        bad = "ring_entries must be at most 16384";
    else if (s->recv_buffers > 32768 || (s->recv_buffers & (s->recv_buffers - 1)))
        bad = "recv_buffers must be a power of 2, at most 32768";
    else if (s->recv_buffer_size > (1u << 20))
        bad = "recv_buffer_size must be at most 1 MiB";
    else if (s->max_connections >= ENGINE_SLOT_MAX)
        bad = "max_connections is too large";
    else if (s->max_output > (1u << 30))
        bad = "max_output must be at most 1 GiB";
    if (bad) {
        snprintf(err, errlen, "engine: %s", bad);
        return -1;
    }
    return 0;
}

struct engine *engine_new(const struct engine_settings *s, const struct engine_callbacks *cb,
                          char *err, size_t errlen)
{
    struct engine_settings set = *s;
    if (engine_settings_check(&set, err, errlen) < 0)
        return NULL;
    if (!cb->on_accept || !cb->on_recv || !cb->on_closed) {
        snprintf(err, errlen, "engine: on_accept, on_recv and on_closed are required");
        return NULL;
    }
    struct engine *e = calloc(1, sizeof *e);
    struct engine_worker *workers = calloc(set.workers, sizeof *workers);
    char *refuse = set.refuse_reply && set.refuse_reply[0] ? strdup(set.refuse_reply) : NULL;
    if (!e || !workers || (set.refuse_reply && set.refuse_reply[0] && !refuse)) {
        free(e);
        free(workers);
        free(refuse);
        snprintf(err, errlen, "engine: out of memory");
        return NULL;
    }
    set.refuse_reply = refuse;
    e->refuse = refuse;
    e->refuse_len = refuse ? strlen(refuse) : 0;
    e->s = set;
    e->cb = *cb;
    e->accepted_cb = (struct engine_conn_callbacks){.on_recv = cb->on_recv,
                                                    .on_drained = cb->on_drained,
                                                    .on_timer = cb->on_timer,
                                                    .on_closed = cb->on_closed};
    e->workers = workers;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    for (unsigned i = 0; i < set.workers; i++) {
        struct engine_worker *w = &workers[i];
        w->e = e;
        w->index = i;
        engine_slots_init(w);
        pthread_mutex_init(&w->mq_lock, NULL);
        w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->wake_fd < 0) {
            snprintf(err, errlen, "engine: eventfd: %s", strerror(errno));
            e->s.workers = i + 1;
            engine_free(e);
            return NULL;
        }
    }
    return e;
}

static bool engine_addr_is_wildcard(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

/* What can be done once per listening socket instead of once per connection: Linux copies
 * a listener's TCP options (TCP_NODELAY among them) to every socket it accepts, and a
 * listener bound to one address gives every connection that address. */
static void engine_listener_prepare(struct engine_listener *l)
{
    l->locallen = sizeof l->local;
    if (getsockname(l->fd, (struct sockaddr *)&l->local, &l->locallen) < 0)
        return;
    l->local_fixed = !engine_addr_is_wildcard(&l->local);
    int one = 1;
    if (l->local.ss_family == AF_INET || l->local.ss_family == AF_INET6)
        setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int engine_listen(struct engine *e, unsigned listener, const int *fds, unsigned nfds)
{
    if (e->started || nfds > e->s.workers) {
        log_error("engine: listener %u: %u sockets for %u workers, or the engine already "
                  "runs",
                  listener, nfds, e->s.workers);
        return -1;
    }
    for (unsigned i = 0; i < nfds; i++) {
        struct engine_worker *w = &e->workers[i];
        struct engine_listener *l = realloc(w->listeners, (w->nlisteners + 1) * sizeof *l);
        if (!l) {
            log_error("engine: listener %u: out of memory", listener);
            return -1;
        }
        w->listeners = l;
        l += w->nlisteners++;
        *l = (struct engine_listener){.fd = fds[i], .index = listener};
        engine_listener_prepare(l);
    }
    return 0;
}

/* Lets every worker run (go) or end (abort) once all have reported their set-up. */
static void engine_release(struct engine *e, unsigned created, bool go)
{
    pthread_mutex_lock(&e->lock);
    while (e->ready < created)
        pthread_cond_wait(&e->cond, &e->lock);
    for (unsigned i = 0; i < created && go; i++)
        go = e->workers[i].setup_rc == 0;
    e->go = go;
    e->abort_start = !go;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

int engine_start(struct engine *e, char *err, size_t errlen)
{
    if (e->started) {
        snprintf(err, errlen, "engine: already started");
        return -1;
    }
    e->started = true;
    /* Workers take no signals: the main thread handles them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    unsigned created = 0;
    int cerr = 0;
    for (; created < e->s.workers; created++) {
        struct engine_worker *w = &e->workers[created];
        cerr = pthread_create(&w->thread, NULL, engine_worker_main, w);
        if (cerr)
            break;
        w->thread_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    engine_release(e, created, created == e->s.workers);
    if (e->go)
        return 0;
    engine_join(e);
    if (cerr) {
        snprintf(err, errlen, "engine: cannot start worker thread %u: %s", created, strerror(cerr));
        return -1;
    }
    for (unsigned i = 0; i < created; i++) {
        if (e->workers[i].setup_rc < 0) {
            snprintf(err, errlen, "%s", e->workers[i].setup_err);
            break;
        }
    }
    return -1;
}

void engine_join(struct engine *e)
{
    for (unsigned i = 0; i < e->s.workers; i++) {
        struct engine_worker *w = &e->workers[i];
        if (w->thread_started)
            pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    engine_join(e);
    for (unsigned i = 0; i < e->s.workers; i++) {
        struct engine_worker *w = &e->workers[i];
        for (unsigned j = 0; j < w->nlisteners; j++)
            if (w->listeners[j].fd >= 0)
                close(w->listeners[j].fd);
        free(w->listeners);
        if (w->wake_fd >= 0)
            close(w->wake_fd);
        free(w->mq);
        free(w->deferred);
        pthread_mutex_destroy(&w->mq_lock);
        engine_slots_free(w);
    }
    free(e->refuse);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e->workers);
    free(e);
}
