/*
 * util/engine_int.h — what the engine's files share; nothing outside util/engine*.c
 * includes it.
 *
 * engine.c runs the workers (threads, loop, completions, cross-thread messages),
 * engine_conn.c the connections (accept, receive, send, close), engine_connect.c the
 * outbound ones (connect), engine_timer.c the per-worker connection timer heap and the
 * layer's worker timers, and engine_ring.c ring set-up and the kernel probe.
 *
 * Every SQE the engine prepares is counted in worker->inflight until its last CQE (the
 * one without IORING_CQE_F_MORE) comes back, and every connection SQE also in its slot's
 * inflight: a slot is reused only once its count is zero, so no completion ever lands on
 * a slot that belongs to another connection.
 */
#ifndef RINGMAIL_UTIL_ENGINE_INT_H
#define RINGMAIL_UTIL_ENGINE_INT_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/engine.h"

/* user_data: the low bits say what completed. Kind 0 is an engine_op pointer, whose low
 * bits are 0 because it is pointer-aligned. */
enum engine_kind {
    ENGINE_K_OP = 0,
    ENGINE_K_NONE,   /* completion ignored: cancels, engine_sqe(w, NULL) */
    ENGINE_K_ACCEPT, /* payload: position in the worker's listener array */
    ENGINE_K_WAKE,   /* the eventfd read behind engine_post */
    ENGINE_K_RECV,   /* payload: slot; high 32 bits: generation */
    ENGINE_K_SEND,
    ENGINE_K_CLOSE,   /* a connection's socket, closed through the ring */
    ENGINE_K_CONNECT, /* payload: slot; high 32 bits: generation */
};
#define ENGINE_KIND_BITS 3
#define ENGINE_KIND_MASK ((1u << ENGINE_KIND_BITS) - 1)
#define ENGINE_SLOT_MAX  (1u << (32 - ENGINE_KIND_BITS))
#define ENGINE_NO_SLOT   UINT32_MAX

/* One piece of pending output; bytes [start, end) are still to be sent. A chunk being
 * sent never moves: appends go after `end`, never through realloc. */
struct engine_chunk {
    struct engine_chunk *next;
    size_t start;
    size_t end;
    size_t cap;
    char data[];
};

enum engine_slot_state { ENGINE_SLOT_FREE, ENGINE_SLOT_OPEN, ENGINE_SLOT_CLOSING };

enum engine_slot_flag {
    ENGINE_F_RECV_ARMED = 1 << 0,  /* a multishot recv is in flight */
    ENGINE_F_PAUSED = 1 << 1,      /* engine_conn_pause_recv */
    ENGINE_F_SENDING = 1 << 2,     /* a send is in flight */
    ENGINE_F_SEND_QUEUED = 1 << 3, /* on the worker's send list */
    ENGINE_F_FLUSH = 1 << 4,       /* close once the output is written */
    ENGINE_F_CANCELLED = 1 << 5,   /* closing now: ops cancelled, waiting for their CQEs */
    ENGINE_F_REAP_QUEUED = 1 << 6, /* on the worker's reap list */
    ENGINE_F_EOF = 1 << 7,         /* the peer closed its side: do not receive again */
    ENGINE_F_OUT_FULL = 1 << 8,    /* output above max_output: not receiving until it drains */
    ENGINE_F_RESET = 1 << 9,       /* close with RST: output given up on (SO_LINGER 0) */
    ENGINE_F_OUTBOUND = 1 << 10,   /* made by engine_connect: ctx is an engine_outbound */
    ENGINE_F_CONNECTING = 1 << 11, /* the connect is in flight: no recv, no send yet */
    ENGINE_F_HOLD = 1 << 12,       /* engine_conn_hold_output: no send until the next one */
};

/* One connection; kept small because an idle connection costs this and nothing else in
 * the engine. */
struct engine_slot {
    /* NULL while on_accept runs and for refused connections: no callbacks. An
     * engine_outbound for the connections engine_connect makes. */
    void *ctx;
    struct engine_chunk *out_head;
    struct engine_chunk *out_tail;
    uint64_t deadline;  /* 0 = timer not armed */
    uint32_t gen;       /* bumped when the slot is freed, so old ids go stale */
    uint32_t heap_pos;  /* 1-based position in the timer heap; 0 = not in it */
    uint32_t link;      /* next on the free list or the reap list */
    uint32_t send_link; /* next on the send list */
    uint32_t out_bytes; /* queued output not yet sent */
    int fd;
    int err; /* for on_closed */
    uint16_t flags;
    uint8_t state;
    uint8_t inflight;
};

/* What an outbound connection has beyond a slot: its own callbacks, and the address, which
 * the kernel may read until the connect completes. Freed with the slot. */
struct engine_outbound {
    const struct engine_conn_callbacks *cb;
    void *ctx;
    socklen_t tolen;
    struct sockaddr_storage to;
};

/* Slots live in fixed chunks so a slot pointer stays valid while the table grows. */
#define ENGINE_SLOTS_PER_CHUNK 256u

struct engine_listener {
    int fd; /* -1 once closed */
    unsigned index;
    bool armed;
    /* The address every connection accepted here has as its own, unless the socket is
     * bound to a wildcard address (then each connection is asked). */
    bool local_fixed;
    socklen_t locallen;
    struct sockaddr_storage local;
};

/* A completion set aside while the kernel refused submissions (engine_get_sqe). */
struct engine_cqe {
    uint64_t ud;
    int32_t res;
    uint32_t flags;
};

struct engine_worker {
    struct engine *e;
    unsigned index;
    void *ctx;
    pthread_t thread;
    bool thread_started;

    struct io_uring ring;
    bool ring_ready;
    struct io_uring_sqe dead_sqe; /* handed out once the ring is gone */
    unsigned inflight;
    uint64_t now;
    bool exit_requested;
    bool exiting;

    struct engine_listener *listeners;
    unsigned nlisteners;
    uint64_t accept_retry_at; /* 0, or when to re-arm accepts that failed */
    uint64_t nofile;          /* RLIMIT_NOFILE soft limit: 0 until the first accept; re-read when a
                               * descriptor comes near it, so a raised limit is seen */

    /* Completions taken out of the CQ, in order, to be dispatched before the CQ's next. */
    struct engine_cqe *deferred;
    size_t ndeferred;
    size_t deferred_head;
    size_t deferred_cap;

    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *bufs;
    size_t bufs_bytes;

    struct engine_slot **chunks;
    unsigned nchunks;
    unsigned chunks_cap;
    uint32_t nslots; /* slots ever handed out; the rest of the last chunk is untouched */
    uint32_t free_head;
    unsigned conns;    /* accepted connections */
    unsigned outbound; /* connections made by engine_connect */
    uint32_t reap_head;
    uint32_t send_head;

    uint32_t *heap; /* slot indices, a min-heap on deadline */
    uint32_t heap_len;
    uint32_t heap_cap;

    struct engine_timer *timers; /* the layer's worker timers: root of a pairing heap */
    uint32_t ntimers;
    bool timers_off; /* the loop has ended: arming does nothing */

    int wake_fd;
    uint64_t wake_val;
    pthread_mutex_t mq_lock;
    uint32_t *mq;
    size_t mq_len;
    size_t mq_cap;

    int setup_rc;
    char setup_err[384];
};

struct engine {
    struct engine_settings s; /* s.refuse_reply points to `refuse` */
    char *refuse;             /* the engine's copy of refuse_reply, or NULL */
    size_t refuse_len;
    struct engine_callbacks cb;
    struct engine_conn_callbacks accepted_cb; /* cb's connection callbacks */
    struct engine_worker *workers;
    pthread_mutex_t lock; /* start-up handshake */
    pthread_cond_t cond;
    unsigned ready;
    bool go;
    bool abort_start;
    bool started;
};

/* engine.c */
struct io_uring_sqe *engine_get_sqe(struct engine_worker *w, uint64_t user_data);
void engine_cancel(struct engine_worker *w, uint64_t user_data);
void engine_submit(struct engine_worker *w);

/* engine_conn.c */
/* Writes the counts of refusals and failed accepts not logged yet (at a worker's exit). */
void engine_refusals_flush(void);
void engine_slots_init(struct engine_worker *w);
void engine_slots_free(struct engine_worker *w);
/* The slot at `idx`, or NULL past the table's end. */
struct engine_slot *engine_slot_at(const struct engine_worker *w, uint32_t idx);
/* The live slot `id` names, or NULL when the id is stale. */
struct engine_slot *engine_slot_get(const struct engine_worker *w, engine_conn_id id);
/* A completion's slot; NULL (logged) would be a broken in-flight count. */
struct engine_slot *engine_slot_of(struct engine_worker *w, uint64_t user_data);
void engine_accepts_arm(struct engine_worker *w);
void engine_accept_complete(struct engine_worker *w, unsigned pos, int res, unsigned flags);
void engine_recv_complete(struct engine_worker *w, uint64_t user_data, int res, unsigned flags);
void engine_send_complete(struct engine_worker *w, uint64_t user_data, int res);
/* End of turn: start the sends queued during it, one per connection. */
void engine_conns_flush(struct engine_worker *w);
/* Frees the closed slots whose operations have all come back and calls on_closed. */
void engine_conns_reap(struct engine_worker *w);
void engine_conns_cancel_all(struct engine_worker *w);
/* Only once the ring is gone: frees every slot whatever is still in flight. */
void engine_conns_force_free(struct engine_worker *w);
void engine_conn_close_now(struct engine_worker *w, uint32_t idx, int err);
/* A closing connection's deadline expired (or a refused one's): reset it, ETIMEDOUT. */
void engine_conn_expire(struct engine_worker *w, uint32_t idx);
/* The callbacks of a slot's connection and, in *ctx, their context; NULL when it has none
 * (on_accept still running, or refused). */
const struct engine_conn_callbacks *engine_slot_callbacks(const struct engine_worker *w,
                                                          const struct engine_slot *s, void **ctx);
engine_conn_id engine_slot_id(const struct engine_slot *s, uint32_t idx);
uint64_t engine_slot_ud(const struct engine_slot *s, uint32_t idx, enum engine_kind kind);
/* A fresh OPEN slot for `fd` (-1: none yet), counted as accepted or, with `flags`
 * ENGINE_F_OUTBOUND, as outbound; ENGINE_NO_SLOT when out of memory. */
uint32_t engine_slot_alloc(struct engine_worker *w, int fd, uint16_t flags);
/* Whether descriptor `fd` is within fd_reserve of RLIMIT_NOFILE. */
bool engine_fd_reserved(struct engine_worker *w, int fd);
/* Queues the slot's output to be sent at the end of the turn (not while connecting). */
void engine_send_queue(struct engine_worker *w, uint32_t idx, struct engine_slot *s);
/* Arms receiving unless something holds it. */
void engine_recv_update(struct engine_worker *w, uint32_t idx, struct engine_slot *s);
/* Puts a closed slot whose operations are all back on the reap list. */
void engine_slot_settle(struct engine_worker *w, uint32_t idx, struct engine_slot *s);

/* engine_connect.c */
void engine_connect_complete(struct engine_worker *w, uint64_t user_data, int res);

/* engine_timer.c */
void engine_timer_set(struct engine_worker *w, uint32_t idx, uint64_t deadline);
void engine_timers_fire(struct engine_worker *w);
uint64_t engine_timer_next(const struct engine_worker *w);
int engine_timer_reserve(struct engine_worker *w, uint32_t nslots);
/* The layer's worker timers: fire the due ones, the nearest deadline (0 = none), and
 * disarm them all for good once the loop has ended. */
void engine_worker_timers_fire(struct engine_worker *w);
uint64_t engine_worker_timer_next(const struct engine_worker *w);
void engine_worker_timers_drop(struct engine_worker *w);

/* engine_ring.c */
int engine_ring_init(struct io_uring *ring, unsigned entries);
void engine_ring_error(int err, char *buf, size_t len);
int engine_bufring_new(struct engine_worker *w, unsigned nbufs, unsigned bufsize);
void engine_bufring_free(struct engine_worker *w);
void engine_bufring_put(struct engine_worker *w, unsigned bid);

#endif
