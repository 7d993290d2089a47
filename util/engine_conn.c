/*
 * util/engine_conn.c — connections: the slot table, accept, receive, send and close, the
 * output bound, and the refusals the engine makes itself.
 *
 * A slot goes FREE → OPEN → CLOSING → FREE. A flush-close first drains: it still sends,
 * reads and drops, and has a deadline (the layer's timer or close_linger_ms); once the
 * output is written, or the deadline has passed (then with SO_LINGER 0: a reset), it
 * closes at once. Closing at once cancels the slot's operations and waits for their CQEs;
 * only then is the socket closed (no SQE naming its number is left in the ring, so a
 * reused descriptor number is never hit; the close itself goes through the ring, and the
 * number is not reused before it has run) and the slot put on the reap list. on_closed
 * runs from the loop, never from inside an engine_conn_* call, so a callback that closes
 * its connection does not see on_closed before it returns.
 *
 * Receiving stops for either of two reasons, each with its own flag: the layer's pause
 * and the output above max_output. It resumes when neither holds.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/engine_int.h"
#include "util/log.h"

/* A refused connection has no context and so no timer of its own: this bounds how long
 * its last reply may take to leave. */
#define ENGINE_REFUSED_FLUSH_MS 10000
#define ENGINE_ACCEPT_RETRY_MS  100
#define ENGINE_REFUSAL_LOG_MS   10000
/* Small replies share a chunk; a larger write gets a chunk of its own size. */
#define ENGINE_CHUNK_BYTES 4096
#define ENGINE_SEND_MAX    (1u << 30)

engine_conn_id engine_slot_id(const struct engine_slot *s, uint32_t idx)
{
    return (uint64_t)s->gen << 32 | idx;
}

uint64_t engine_slot_ud(const struct engine_slot *s, uint32_t idx, enum engine_kind kind)
{
    return (uint64_t)s->gen << 32 | (uint64_t)idx << ENGINE_KIND_BITS | kind;
}

struct engine_slot *engine_slot_at(const struct engine_worker *w, uint32_t idx)
{
    if (idx >= w->nslots)
        return NULL;
    return &w->chunks[idx / ENGINE_SLOTS_PER_CHUNK][idx % ENGINE_SLOTS_PER_CHUNK];
}

struct engine_slot *engine_slot_get(const struct engine_worker *w, engine_conn_id id)
{
    struct engine_slot *s = engine_slot_at(w, (uint32_t)id);
    if (!s || s->state == ENGINE_SLOT_FREE || s->gen != (uint32_t)(id >> 32))
        return NULL;
    return s;
}

struct engine_slot *engine_slot_of(struct engine_worker *w, uint64_t ud)
{
    uint32_t idx = (uint32_t)ud >> ENGINE_KIND_BITS;
    struct engine_slot *s = engine_slot_at(w, idx);
    if (!s || s->state == ENGINE_SLOT_FREE || s->gen != (uint32_t)(ud >> 32) || !s->inflight) {
        log_error("engine: worker %u: completion %#llx for a closed connection", w->index,
                  (unsigned long long)ud);
        return NULL;
    }
    return s;
}

const struct engine_conn_callbacks *engine_slot_callbacks(const struct engine_worker *w,
                                                          const struct engine_slot *s, void **ctx)
{
    if (!s->ctx)
        return NULL;
    if (s->flags & ENGINE_F_OUTBOUND) {
        const struct engine_outbound *o = s->ctx;
        *ctx = o->ctx;
        return o->cb;
    }
    *ctx = s->ctx;
    return &w->e->accepted_cb;
}

static void engine_conn_drained(struct engine_worker *w, const struct engine_slot *s)
{
    void *ctx;
    const struct engine_conn_callbacks *cb = engine_slot_callbacks(w, s, &ctx);
    if (cb && cb->on_drained)
        cb->on_drained(ctx);
}

void engine_slots_init(struct engine_worker *w)
{
    w->free_head = w->reap_head = w->send_head = ENGINE_NO_SLOT;
}

static void engine_out_free(struct engine_slot *s)
{
    while (s->out_head) {
        struct engine_chunk *c = s->out_head;
        s->out_head = c->next;
        free(c);
    }
    s->out_tail = NULL;
    s->out_bytes = 0;
}

void engine_slots_free(struct engine_worker *w)
{
    for (unsigned i = 0; i < w->nchunks; i++)
        free(w->chunks[i]);
    free(w->chunks);
    free(w->heap);
    w->chunks = NULL;
    w->heap = NULL;
    w->nchunks = w->chunks_cap = 0;
    w->nslots = w->heap_len = w->heap_cap = 0;
}

static int engine_slots_grow(struct engine_worker *w)
{
    if (w->nchunks == w->chunks_cap) {
        unsigned cap = w->chunks_cap ? 2 * w->chunks_cap : 4;
        struct engine_slot **c = realloc(w->chunks, cap * sizeof *c);
        if (!c)
            return -1;
        w->chunks = c;
        w->chunks_cap = cap;
    }
    struct engine_slot *chunk = calloc(ENGINE_SLOTS_PER_CHUNK, sizeof *chunk);
    if (!chunk || engine_timer_reserve(w, (w->nchunks + 1) * ENGINE_SLOTS_PER_CHUNK) < 0) {
        free(chunk);
        return -1;
    }
    w->chunks[w->nchunks++] = chunk;
    return 0;
}

uint32_t engine_slot_alloc(struct engine_worker *w, int fd, uint16_t flags)
{
    uint32_t idx = w->free_head;
    struct engine_slot *s;
    if (idx != ENGINE_NO_SLOT) {
        s = engine_slot_at(w, idx);
        w->free_head = s->link;
    } else {
        if (w->nslots == w->nchunks * ENGINE_SLOTS_PER_CHUNK && engine_slots_grow(w) < 0)
            return ENGINE_NO_SLOT;
        idx = w->nslots++;
        s = engine_slot_at(w, idx);
        s->gen = 1;
    }
    uint32_t gen = s->gen;
    *s = (struct engine_slot){.gen = gen, .fd = fd, .flags = flags, .state = ENGINE_SLOT_OPEN};
    if (flags & ENGINE_F_OUTBOUND)
        w->outbound++;
    else
        w->conns++;
    return idx;
}

static void engine_slot_release(struct engine_worker *w, uint32_t idx, struct engine_slot *s)
{
    engine_out_free(s);
    s->state = ENGINE_SLOT_FREE;
    if (s->flags & ENGINE_F_OUTBOUND) {
        free(s->ctx);
        w->outbound--;
    } else {
        w->conns--;
    }
    s->ctx = NULL;
    if (++s->gen == 0)
        s->gen = 1;
    s->link = w->free_head;
    w->free_head = idx;
}

/* Closed and nothing of it left in the ring (nor on the send list, which links it). */
void engine_slot_settle(struct engine_worker *w, uint32_t idx, struct engine_slot *s)
{
    if (!(s->flags & ENGINE_F_CANCELLED) || s->inflight ||
        (s->flags & (ENGINE_F_REAP_QUEUED | ENGINE_F_SEND_QUEUED)))
        return;
    s->flags |= ENGINE_F_REAP_QUEUED;
    s->link = w->reap_head;
    w->reap_head = idx;
}

void engine_conns_reap(struct engine_worker *w)
{
    while (w->reap_head != ENGINE_NO_SLOT) {
        uint32_t idx = w->reap_head;
        struct engine_slot *s = engine_slot_at(w, idx);
        w->reap_head = s->link;
        /* A peer that stopped reading: without SO_LINGER 0 the kernel would keep the unsent
         * output (megabytes) and keep retrying for minutes after the close. */
        static const struct linger reset = {.l_onoff = 1, .l_linger = 0};
        if ((s->flags & ENGINE_F_RESET) && s->fd >= 0 &&
            setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) < 0)
            log_warn("engine: worker %u: SO_LINGER: %s", w->index, strerror(errno));
        /* Through the ring, submitted with the next wait: one system call less per
         * connection. Once the ring is gone (a stuck exit), directly. An outbound
         * connection whose socket could not be made has none. */
        if (s->fd >= 0 && w->ring_ready)
            io_uring_prep_close(engine_get_sqe(w, ENGINE_K_CLOSE), s->fd);
        else if (s->fd >= 0 && close(s->fd) < 0)
            log_warn("engine: worker %u: close: %s", w->index, strerror(errno));
        void *ctx;
        const struct engine_conn_callbacks *cb = engine_slot_callbacks(w, s, &ctx);
        int err = s->err;
        engine_slot_release(w, idx, s);
        if (cb)
            cb->on_closed(ctx, err);
    }
}

void engine_conns_force_free(struct engine_worker *w)
{
    for (uint32_t idx = 0; idx < w->nslots; idx++) {
        struct engine_slot *s = engine_slot_at(w, idx);
        if (s->state == ENGINE_SLOT_FREE)
            continue;
        if (s->state == ENGINE_SLOT_OPEN)
            s->err = ECANCELED;
        s->state = ENGINE_SLOT_CLOSING;
        s->flags = (s->flags & ENGINE_F_OUTBOUND) | ENGINE_F_CANCELLED | ENGINE_F_REAP_QUEUED;
        s->link = w->reap_head;
        w->reap_head = idx;
    }
    w->heap_len = 0;
    engine_conns_reap(w);
}

void engine_conn_close_now(struct engine_worker *w, uint32_t idx, int err)
{
    struct engine_slot *s = engine_slot_at(w, idx);
    if (s->flags & ENGINE_F_CANCELLED)
        return;
    if (s->state == ENGINE_SLOT_OPEN)
        s->err = err;
    s->state = ENGINE_SLOT_CLOSING;
    s->flags |= ENGINE_F_CANCELLED;
    engine_timer_set(w, idx, 0);
    if (s->flags & ENGINE_F_RECV_ARMED)
        engine_cancel(w, engine_slot_ud(s, idx, ENGINE_K_RECV));
    if (s->flags & ENGINE_F_SENDING)
        engine_cancel(w, engine_slot_ud(s, idx, ENGINE_K_SEND));
    if (s->flags & ENGINE_F_CONNECTING)
        engine_cancel(w, engine_slot_ud(s, idx, ENGINE_K_CONNECT));
    engine_slot_settle(w, idx, s);
}

void engine_conn_expire(struct engine_worker *w, uint32_t idx)
{
    struct engine_slot *s = engine_slot_at(w, idx);
    s->err = ETIMEDOUT;
    s->flags |= ENGINE_F_RESET;
    engine_conn_close_now(w, idx, ETIMEDOUT);
}

void engine_send_queue(struct engine_worker *w, uint32_t idx, struct engine_slot *s)
{
    if (s->flags & (ENGINE_F_SENDING | ENGINE_F_SEND_QUEUED | ENGINE_F_CONNECTING))
        return;
    s->flags |= ENGINE_F_SEND_QUEUED;
    s->send_link = w->send_head;
    w->send_head = idx;
}

/* Receiving continues while a flush-close drains, so what the peer still sends is read
 * and dropped: closing a socket with unread input makes the kernel send RST, which can
 * destroy our last reply before the peer reads it. Not when nothing is left to send: the
 * close comes at the end of this turn. */
void engine_recv_update(struct engine_worker *w, uint32_t idx, struct engine_slot *s)
{
    if (s->state == ENGINE_SLOT_FREE ||
        (s->flags & (ENGINE_F_RECV_ARMED | ENGINE_F_PAUSED | ENGINE_F_OUT_FULL |
                     ENGINE_F_CANCELLED | ENGINE_F_EOF | ENGINE_F_CONNECTING)))
        return;
    if ((s->flags & ENGINE_F_FLUSH) && !s->out_head && !(s->flags & ENGINE_F_SENDING))
        return;
    struct io_uring_sqe *sqe = engine_get_sqe(w, engine_slot_ud(s, idx, ENGINE_K_RECV));
    io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    s->flags |= ENGINE_F_RECV_ARMED;
    s->inflight++;
}

/* Stops receiving for one reason (`why`: ENGINE_F_PAUSED, ENGINE_F_OUT_FULL); the recv is
 * cancelled only by the first reason, so each pause lifts independently. */
static void engine_recv_hold(struct engine_worker *w, uint32_t idx, struct engine_slot *s,
                             uint16_t why)
{
    bool held = s->flags & (ENGINE_F_PAUSED | ENGINE_F_OUT_FULL);
    s->flags |= why;
    if (!held && (s->flags & ENGINE_F_RECV_ARMED))
        engine_cancel(w, engine_slot_ud(s, idx, ENGINE_K_RECV));
}

static void engine_recv_release(struct engine_worker *w, uint32_t idx, struct engine_slot *s,
                                uint16_t why)
{
    s->flags &= (uint16_t)~why;
    engine_recv_update(w, idx, s);
}

/* The flush-close's deadline is the layer's timer if it armed one. Nothing the peer sends
 * is answered any more, so neither pause has a purpose: reading (and dropping) it keeps
 * the kernel from resetting the connection at the close. Whether anything is left to
 * send is decided at the end of the turn, so the caller may still queue its last bytes
 * (a TLS close_notify after the reply). */
static void engine_conn_close_flush(struct engine_worker *w, uint32_t idx, struct engine_slot *s)
{
    if (s->flags & ENGINE_F_CANCELLED)
        return;
    if (s->state == ENGINE_SLOT_OPEN)
        s->err = 0;
    s->state = ENGINE_SLOT_CLOSING;
    s->flags = (uint16_t)((s->flags | ENGINE_F_FLUSH) & ~ENGINE_F_HOLD);
    if (!s->deadline)
        engine_timer_set(w, idx, w->now + w->e->s.close_linger_ms);
    engine_send_queue(w, idx, s);
    engine_recv_release(w, idx, s, ENGINE_F_PAUSED | ENGINE_F_OUT_FULL);
}

void engine_recv_complete(struct engine_worker *w, uint64_t ud, int res, unsigned flags)
{
    struct engine_slot *s = engine_slot_of(w, ud);
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        void *ctx;
        const struct engine_conn_callbacks *cb =
            s && res > 0 && s->state == ENGINE_SLOT_OPEN ? engine_slot_callbacks(w, s, &ctx) : NULL;
        if (cb)
            cb->on_recv(ctx, w->bufs + (size_t)bid * w->e->s.recv_buffer_size, (size_t)res);
        engine_bufring_put(w, bid);
    }
    if (!s)
        return;
    uint32_t idx = (uint32_t)ud >> ENGINE_KIND_BITS;
    bool more = flags & IORING_CQE_F_MORE;
    if (!more) {
        s->flags &= ~ENGINE_F_RECV_ARMED;
        s->inflight--;
    }
    if (res == 0) {
        s->flags |= ENGINE_F_EOF;
        if (s->state == ENGINE_SLOT_OPEN)
            engine_conn_close_flush(w, idx, s);
    } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        engine_conn_close_now(w, idx, -res);
    }
    /* -ENOBUFS: every buffer was in CQEs handled this turn and is back in the ring now. */
    if (!more)
        engine_recv_update(w, idx, s);
    engine_slot_settle(w, idx, s);
}

void engine_conns_flush(struct engine_worker *w)
{
    while (w->send_head != ENGINE_NO_SLOT) {
        uint32_t idx = w->send_head;
        struct engine_slot *s = engine_slot_at(w, idx);
        w->send_head = s->send_link;
        s->flags &= (uint16_t)~ENGINE_F_SEND_QUEUED;
        if (s->flags & ENGINE_F_CANCELLED) {
            engine_slot_settle(w, idx, s);
            continue;
        }
        if (s->flags & ENGINE_F_HOLD)
            continue;
        if (!s->out_head) {
            if (s->flags & ENGINE_F_FLUSH)
                engine_conn_close_now(w, idx, 0);
            continue;
        }
        struct engine_chunk *c = s->out_head;
        size_t len = c->end - c->start;
        struct io_uring_sqe *sqe = engine_get_sqe(w, engine_slot_ud(s, idx, ENGINE_K_SEND));
        io_uring_prep_send(sqe, s->fd, c->data + c->start,
                           len > ENGINE_SEND_MAX ? ENGINE_SEND_MAX : len, MSG_NOSIGNAL);
        s->flags |= ENGINE_F_SENDING;
        s->inflight++;
    }
}

void engine_send_complete(struct engine_worker *w, uint64_t ud, int res)
{
    struct engine_slot *s = engine_slot_of(w, ud);
    if (!s)
        return;
    uint32_t idx = (uint32_t)ud >> ENGINE_KIND_BITS;
    s->flags &= (uint16_t)~ENGINE_F_SENDING;
    s->inflight--;
    if (res > 0) {
        struct engine_chunk *c = s->out_head;
        c->start += (size_t)res;
        s->out_bytes -= (uint32_t)res;
        if (c->start == c->end) {
            s->out_head = c->next;
            if (!s->out_head)
                s->out_tail = NULL;
            free(c);
        }
    } else if (res != -EINTR && res != -EAGAIN) {
        /* A send of at least one byte that wrote nothing: the peer is gone. */
        engine_conn_close_now(w, idx, res ? -res : EPIPE);
    }
    if ((s->flags & ENGINE_F_OUT_FULL) && s->out_bytes <= w->e->s.max_output / 2)
        engine_recv_release(w, idx, s, ENGINE_F_OUT_FULL);
    if (s->flags & ENGINE_F_CANCELLED)
        engine_slot_settle(w, idx, s);
    else if (s->out_head)
        engine_send_queue(w, idx, s);
    else if (s->flags & ENGINE_F_FLUSH)
        engine_conn_close_now(w, idx, 0);
    else
        engine_conn_drained(w, s);
}

int engine_conn_set_ctx(struct engine_worker *w, engine_conn_id id, void *ctx)
{
    struct engine_slot *s = engine_slot_get(w, id);
    if (!s || !s->ctx || !ctx || (s->flags & ENGINE_F_OUTBOUND))
        return -1;
    s->ctx = ctx;
    return 0;
}

int engine_conn_peer_cred(struct engine_worker *w, engine_conn_id id, struct ucred *cred)
{
    const struct engine_slot *s = engine_slot_get(w, id);
    if (!s || s->fd < 0 || (s->flags & ENGINE_F_OUTBOUND)) {
        errno = EBADF;
        return -1;
    }
    /* Linux answers SO_PEERCRED on a TCP socket too, with the overflow uid (nobody): only a
     * unix socket's answer names a process. */
    int domain = 0;
    socklen_t len = sizeof(domain);
    if (getsockopt(s->fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
        return -1;
    if (domain != AF_UNIX) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    len = sizeof(*cred);
    return getsockopt(s->fd, SOL_SOCKET, SO_PEERCRED, cred, &len);
}

int engine_conn_send(struct engine_worker *w, engine_conn_id id, const void *data, size_t len)
{
    struct engine_slot *s = engine_slot_get(w, id);
    if (!s || (s->flags & ENGINE_F_CANCELLED))
        return -1;
    if (!len)
        return 0;
    if (len > UINT32_MAX - s->out_bytes) {
        log_error("engine: worker %u: %zu bytes more output for a connection that has %u "
                  "unsent: refused",
                  w->index, len, s->out_bytes);
        return -1;
    }
    struct engine_chunk *t = s->out_tail;
    size_t room = t ? t->cap - t->end : 0;
    size_t fit = len < room ? len : room;
    struct engine_chunk *c = NULL;
    if (len > fit) {
        size_t cap = len - fit;
        if (cap < ENGINE_CHUNK_BYTES - sizeof *c)
            cap = ENGINE_CHUNK_BYTES - sizeof *c;
        c = malloc(sizeof *c + cap);
        if (!c) {
            log_error("engine: worker %u: out of memory for %zu bytes of output", w->index, len);
            return -1;
        }
        *c = (struct engine_chunk){.end = len - fit, .cap = cap};
        memcpy(c->data, (const char *)data + fit, len - fit);
    }
    if (fit) {
        memcpy(t->data + t->end, data, fit);
        t->end += fit;
    }
    if (c) {
        if (t)
            t->next = c;
        else
            s->out_head = c;
        s->out_tail = c;
    }
    s->out_bytes += (uint32_t)len;
    if (s->out_bytes > w->e->s.max_output && s->state == ENGINE_SLOT_OPEN &&
        !(s->flags & ENGINE_F_OUT_FULL))
        engine_recv_hold(w, (uint32_t)id, s, ENGINE_F_OUT_FULL);
    s->flags &= (uint16_t)~ENGINE_F_HOLD;
    engine_send_queue(w, (uint32_t)id, s);
    return 0;
}

void engine_conn_hold_output(struct engine_worker *w, engine_conn_id id)
{
    struct engine_slot *s = engine_slot_get(w, id);
    /* Not while receiving waits for the output to drain: nothing would come to end it. */
    if (s && s->state == ENGINE_SLOT_OPEN && !(s->flags & ENGINE_F_OUT_FULL))
        s->flags |= ENGINE_F_HOLD;
}

void engine_conn_close(struct engine_worker *w, engine_conn_id id, bool flush)
{
    struct engine_slot *s = engine_slot_get(w, id);
    if (!s)
        return;
    /* Nothing queued has been sent yet, nor can be without waiting for the connect. */
    if (flush && !(s->flags & ENGINE_F_CONNECTING))
        engine_conn_close_flush(w, (uint32_t)id, s);
    else
        engine_conn_close_now(w, (uint32_t)id, 0);
}

void engine_conn_pause_recv(struct engine_worker *w, engine_conn_id id)
{
    struct engine_slot *s = engine_slot_get(w, id);
    if (!s || s->state != ENGINE_SLOT_OPEN || (s->flags & ENGINE_F_PAUSED))
        return;
    engine_recv_hold(w, (uint32_t)id, s, ENGINE_F_PAUSED);
}

void engine_conn_resume_recv(struct engine_worker *w, engine_conn_id id)
{
    struct engine_slot *s = engine_slot_get(w, id);
    if (!s || s->state != ENGINE_SLOT_OPEN)
        return;
    engine_recv_release(w, (uint32_t)id, s, ENGINE_F_PAUSED);
}

void engine_conns_cancel_all(struct engine_worker *w)
{
    for (uint32_t idx = 0; idx < w->nslots; idx++)
        if (engine_slot_at(w, idx)->state != ENGINE_SLOT_FREE)
            engine_conn_close_now(w, idx, ECANCELED);
}

static void engine_accept_arm(struct engine_worker *w, unsigned pos)
{
    struct io_uring_sqe *sqe =
        engine_get_sqe(w, (uint64_t)pos << ENGINE_KIND_BITS | ENGINE_K_ACCEPT);
    io_uring_prep_multishot_accept(sqe, w->listeners[pos].fd, NULL, NULL, SOCK_CLOEXEC);
    w->listeners[pos].armed = true;
}

void engine_accepts_arm(struct engine_worker *w)
{
    for (unsigned pos = 0; pos < w->nlisteners; pos++)
        if (w->listeners[pos].fd >= 0 && !w->listeners[pos].armed)
            engine_accept_arm(w, pos);
}

void engine_worker_stop_accepting(struct engine_worker *w)
{
    for (unsigned pos = 0; pos < w->nlisteners; pos++)
        if (w->listeners[pos].armed)
            engine_cancel(w, (uint64_t)pos << ENGINE_KIND_BITS | ENGINE_K_ACCEPT);
    /* Every SQE naming a listening socket must reach the kernel before its number is
     * freed for reuse. */
    engine_submit(w);
    for (unsigned pos = 0; pos < w->nlisteners; pos++) {
        if (w->listeners[pos].fd >= 0)
            close(w->listeners[pos].fd);
        w->listeners[pos].fd = -1;
    }
}

static void engine_conn_refuse(struct engine_worker *w, uint32_t idx, struct engine_slot *s)
{
    engine_timer_set(w, idx, w->now + ENGINE_REFUSED_FLUSH_MS);
    engine_conn_close_flush(w, idx, s);
}

/* A peer can make these happen at will (connection floods, a full descriptor table): one
 * line per kind per worker every ENGINE_REFUSAL_LOG_MS, then the count (util/log.h). */
static struct log_limit engine_log_refusals = LOG_LIMIT_INIT(ENGINE_REFUSAL_LOG_MS);
static struct log_limit engine_log_accept_failures = LOG_LIMIT_INIT(ENGINE_REFUSAL_LOG_MS);

void engine_refusals_flush(void)
{
    log_limit_flush(&engine_log_refusals);
    log_limit_flush(&engine_log_accept_failures);
}

/* Descriptor numbers are handed out lowest first: `fd` means every lower one is open. */
bool engine_fd_reserved(struct engine_worker *w, int fd)
{
    uint64_t reserve = w->e->s.fd_reserve;
    if ((uint64_t)fd + reserve < w->nofile)
        return false;
    /* Read lazily, and again before refusing: the limit may have been raised. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        w->nofile = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    return (uint64_t)fd + reserve >= w->nofile;
}

/* A connection the engine will not serve: refuse_reply, then the close, both through the
 * ring with no slot and no timer (the socket is new, so its buffer takes a short reply at
 * once; MSG_DONTWAIT makes sure nothing waits). A hard link runs the close whatever the
 * send did. */
static void engine_turn_away(struct engine_worker *w, int fd)
{
    const struct engine *e = w->e;
    engine_sqe_reserve(w, 2);
    if (e->refuse_len) {
        struct io_uring_sqe *sqe = engine_get_sqe(w, ENGINE_K_NONE);
        io_uring_prep_send(sqe, fd, e->s.refuse_reply, e->refuse_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        sqe->flags |= IOSQE_IO_HARDLINK;
    }
    io_uring_prep_close(engine_get_sqe(w, ENGINE_K_CLOSE), fd);
}

static void engine_conn_new(struct engine_worker *w, const struct engine_listener *l, int fd)
{
    if (w->exiting) {
        close(fd);
        return;
    }
    char key[32];
    if (w->conns >= w->e->s.max_connections) {
        snprintf(key, sizeof key, "%u full", w->index);
        log_limited(&engine_log_refusals, LOG_LVL_WARN, key,
                    "engine: worker %u: refused a connection: %u connections open, the most "
                    "this worker takes",
                    w->index, w->conns);
        engine_turn_away(w, fd);
        return;
    }
    if (engine_fd_reserved(w, fd)) {
        snprintf(key, sizeof key, "%u fds", w->index);
        log_limited(&engine_log_refusals, LOG_LVL_WARN, key,
                    "engine: worker %u: refused a connection: descriptor %d is within %u of the "
                    "open files limit (%llu): kept for the connections already open",
                    w->index, fd, w->e->s.fd_reserve, (unsigned long long)w->nofile);
        engine_turn_away(w, fd);
        return;
    }
    struct sockaddr_storage peer, local;
    socklen_t peerlen = sizeof peer, locallen = sizeof local;
    /* ENOTCONN: the peer already left; nobody needs to hear about it. TCP_NODELAY came
     * from the listener (engine_listener_prepare). */
    if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) < 0 ||
        (!l->local_fixed && getsockname(fd, (struct sockaddr *)&local, &locallen) < 0)) {
        close(fd);
        return;
    }
    if (l->local_fixed) {
        memcpy(&local, &l->local, l->locallen);
        locallen = l->locallen;
    }
    uint32_t idx = engine_slot_alloc(w, fd, 0);
    if (idx == ENGINE_NO_SLOT) {
        log_error("engine: worker %u: out of memory for a connection slot: dropping a "
                  "connection",
                  w->index);
        close(fd);
        return;
    }
    struct engine_slot *s = engine_slot_at(w, idx);
    s->ctx = w->e->cb.on_accept(w, engine_slot_id(s, idx), l->index, (struct sockaddr *)&peer,
                                peerlen, (struct sockaddr *)&local, locallen);
    if (!s->ctx && s->state == ENGINE_SLOT_OPEN)
        engine_conn_refuse(w, idx, s);
    engine_recv_update(w, idx, s);
}

static void engine_accept_failed(struct engine_worker *w, int err)
{
    char key[32];
    snprintf(key, sizeof key, "%u %d", w->index, err);
    log_limited(&engine_log_accept_failures, LOG_LVL_WARN, key,
                "engine: worker %u: accepting a connection failed: %s", w->index, strerror(err));
}

void engine_accept_complete(struct engine_worker *w, unsigned pos, int res, unsigned flags)
{
    struct engine_listener *l = &w->listeners[pos];
    if (!(flags & IORING_CQE_F_MORE))
        l->armed = false;
    if (res >= 0)
        engine_conn_new(w, l, res);
    else if (res != -ECANCELED)
        engine_accept_failed(w, -res);
    if (l->armed || l->fd < 0 || w->exiting)
        return;
    /* An accept error (EMFILE, ENOMEM) would recur at once: wait a little. */
    if (res < 0 && res != -ECANCELED)
        w->accept_retry_at = w->now + ENGINE_ACCEPT_RETRY_MS;
    else
        engine_accept_arm(w, pos);
}
