/*
 * util/engine.h — the io_uring engine: worker threads, connections, timers, file ops.
 *
 * Owns: one io_uring per worker thread (SINGLE_ISSUER/DEFER_TASKRUN where the kernel has
 * them), the listening sockets handed to engine_listen() (one SO_REUSEPORT socket per
 * worker per listener), every connection accepted on them, their receive buffers (one
 * provided-buffer ring per worker: an idle connection holds no receive buffer), their
 * pending output, the connections it opens for the layer (engine_connect), a timer heap per
 * worker (one timer per connection) and the layer's worker timers (engine_timer).
 *
 * The layer above never touches a socket: it receives callbacks with bytes and asks the
 * engine to send, close, pause or arm a timer. Connections are named by an engine_conn_id
 * (slot + generation): a completion or a call that arrives after a close finds a stale id
 * and is ignored, never freed memory.
 *
 * Two promises hold for every connection whatever the layer above does:
 * - output is bounded: once more than max_output bytes wait to be sent, the engine stops
 *   receiving from that peer (so the layer gets no input to answer) until the queue has
 *   drained to half of that. This pause is the engine's own: engine_conn_resume_recv()
 *   does not lift it, and lifting it does not undo engine_conn_pause_recv(). Output the
 *   layer makes on its own (a message body it relays) is its to pace, with on_drained.
 * - every connection has a deadline, closing ones too: a flush-close keeps the timer the
 *   layer armed or arms close_linger_ms, and when that expires with output still unsent
 *   the connection is reset (the peer stopped reading).
 * Connections the engine turns away itself (max_connections reached, or the accepted
 * descriptor within fd_reserve of RLIMIT_NOFILE) get refuse_reply and are closed; those
 * refusals and failed accepts are logged at most once per 10 s per worker, with a count.
 *
 * Outbound connections (engine_connect) live in the same slot table as accepted ones and
 * are named by the same kind of id; every engine_conn_* call works on them. They have
 * callbacks of their own (engine_conn_callbacks), do not count against max_connections
 * nor in engine_worker_connections(), and are never refused for it; a descriptor within
 * fd_reserve of RLIMIT_NOFILE fails them with EMFILE through on_closed. The engine puts
 * no timeout on a connect: the layer arms one with engine_conn_set_timer.
 *
 * Worker timers (engine_timer) are the layer's own timers not tied to a connection (queue
 * runs, DNS retries); the engine never allocates for them.
 *
 * Threads: every callback runs on the worker thread that owns the connection, and every
 * engine_conn_* / engine_worker_* / engine_sqe call must be made from that thread. Only
 * engine_new/engine_listen/engine_start/engine_post/engine_join/engine_free are called
 * from the main thread. Cross-thread wake-ups go through an eventfd read by each ring.
 * Callbacks never run from inside an engine call (not even when the kernel makes the
 * engine wait for completions before it accepts more submissions).
 *
 * Errors: engine_probe() and engine_start() fill `err` with a message an operator can act
 * on (for example when a container's seccomp profile refuses io_uring_setup). Per
 * connection errors end that connection (on_closed gets the errno); they never stop the
 * worker.
 */
#ifndef RINGMAIL_UTIL_ENGINE_H
#define RINGMAIL_UTIL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct io_uring_sqe;
struct engine;
struct engine_worker;

typedef uint64_t engine_conn_id; /* 0 is never a valid id */

struct engine_settings {
    unsigned workers;          /* >= 1 */
    unsigned ring_entries;     /* SQ entries per ring; 0 = 1024 */
    unsigned recv_buffers;     /* provided receive buffers per worker; 0 = 1024 (power of 2) */
    unsigned recv_buffer_size; /* bytes per receive buffer; 0 = 4096 */
    unsigned max_connections;  /* connection slots per worker; 0 = 65536 */
    /* Output queued for one connection above which the engine stops receiving from it
     * until half of it has been sent; 0 = 256 KiB, at most 1 GiB. */
    size_t max_output;
    /* How long a flush-close may take when the layer armed no timer; 0 = 30 s. */
    unsigned close_linger_ms;
    /* Descriptors kept free: a connection accepted as descriptor number >= RLIMIT_NOFILE's
     * soft limit - fd_reserve is refused (numbers are handed out lowest first, so that many
     * are open), leaving room for the files the layer above opens; 0 = 64. The limit is
     * read at the first accept and again whenever a descriptor comes near it. */
    unsigned fd_reserve;
    /* Bytes sent to every connection the engine refuses itself, before it closes it
     * (e.g. "421 busy\r\n"); NULL or "" = close without a word. Copied by engine_new. */
    const char *refuse_reply;
};

struct engine_callbacks {
    /* On the worker's thread before its loop starts; returns the worker context
     * (engine_worker_ctx()). May return NULL. */
    void *(*worker_init)(struct engine_worker *w, unsigned index);
    /* On the worker's thread after its loop ended and all its connections are closed. */
    void (*worker_fini)(struct engine_worker *w, void *worker_ctx);

    /* A connection was accepted on listener `listener` (index given to engine_listen).
     * Returns the connection context, or NULL to refuse: the engine then closes the
     * socket (whatever was queued with engine_conn_send is sent first, for at most 10 s,
     * so a refusal can carry a 421 reply) and calls no other callback for it. */
    void *(*on_accept)(struct engine_worker *w, engine_conn_id id, unsigned listener,
                       const struct sockaddr *peer, socklen_t peerlen, const struct sockaddr *local,
                       socklen_t locallen);
    /* Bytes received; `data` is valid only during the call. May still be called once
     * or twice after engine_conn_pause_recv() for data already in flight. */
    void (*on_recv)(void *conn_ctx, const char *data, size_t len);
    /* Every byte queued with engine_conn_send() has been written. */
    void (*on_drained)(void *conn_ctx);
    /* The connection's timer (engine_conn_set_timer) expired. Never called once the
     * connection is closing: its timer is then the deadline of the close. */
    void (*on_timer)(void *conn_ctx);
    /* The connection ended: peer closed (err 0), error (err = errno), engine_conn_close()
     * (err 0), a flush-close whose deadline expired with output unsent (err ETIMEDOUT; the
     * connection was reset) or the worker shutting down (err ECANCELED). Called exactly
     * once per accepted connection; the socket is already closed; the callee frees
     * conn_ctx. */
    void (*on_closed)(void *conn_ctx, int err);
    /* A message posted with engine_post(), delivered on every worker's thread. */
    void (*on_message)(struct engine_worker *w, void *worker_ctx, uint32_t msg);
};

/* The callbacks of one outbound connection (engine_connect), with the meaning of the
 * same-named members of engine_callbacks; on_recv, on_closed and on_connected are
 * required. The table must outlive the connection (a static const one, typically). */
struct engine_conn_callbacks {
    void (*on_recv)(void *conn_ctx, const char *data, size_t len);
    void (*on_drained)(void *conn_ctx);
    void (*on_timer)(void *conn_ctx);
    /* Exactly once per connection engine_connect returned 0 for: the connect failed (err =
     * its errno: ECONNREFUSED, ENETUNREACH, ETIMEDOUT from the kernel's own SYN retries,
     * EMFILE near the descriptor limit, EADDRNOTAVAIL for a bad `from`...), or the
     * connection ended as an accepted one does. engine_conn_close() while still connecting
     * cancels the connect: err 0, and on_connected never runs. */
    void (*on_closed)(void *conn_ctx, int err);
    /* The connection is established (at most once, always before any on_recv): receiving
     * starts after this returns, and output queued before it is sent from then on. */
    void (*on_connected)(void *conn_ctx);
};

/* A worker timer, embedded in the layer's object. Zero it (or arm it) before use; only
 * `fire` is the layer's to set, the rest is the engine's. */
struct engine_timer {
    /* On the worker's thread, from the loop (never inside an engine call), once per arming
     * at or after its deadline. The timer is disarmed before the call, so `fire` may re-arm
     * it, disarm or free other timers, or free the object that holds it. */
    void (*fire)(struct engine_timer *t);
    struct engine_timer *eng_child, *eng_next, *eng_prev; /* the engine's: pairing heap */
    uint64_t eng_deadline;
};

/* Checks that this kernel lets us use io_uring with everything the engine needs
 * (multishot accept and recv, provided buffer rings). 0, or -1 with `err` saying what is
 * refused and what to change (kernel version, kernel.io_uring_disabled, seccomp). */
int engine_probe(char *err, size_t errlen);

struct engine *engine_new(const struct engine_settings *s, const struct engine_callbacks *cb,
                          char *err, size_t errlen);
/* Hands over listening sockets for listener index `listener`: fds[i] goes to worker i
 * (each already bound and listening, SO_REUSEPORT, non-blocking; nfds <= workers). Before
 * engine_start. The engine owns the sockets from then on and closes them. */
int engine_listen(struct engine *e, unsigned listener, const int *fds, unsigned nfds);
/* Creates the rings and starts the worker threads. -1 with `err` on failure. */
int engine_start(struct engine *e, char *err, size_t errlen);
/* Thread-safe, async-signal-unsafe: delivers `msg` to on_message on every worker. */
void engine_post(struct engine *e, uint32_t msg);
/* Waits for every worker thread to leave its loop (engine_worker_exit). */
void engine_join(struct engine *e);
/* After engine_join (it joins first, so it blocks while workers still run). */
void engine_free(struct engine *e);

/* --- on a worker's thread --- */
unsigned engine_worker_index(const struct engine_worker *w);
void *engine_worker_ctx(const struct engine_worker *w);
uint64_t engine_now_ms(struct engine_worker *w); /* CLOCK_MONOTONIC, cached per loop turn */
/* Accepted connections open (outbound ones are not counted). */
unsigned engine_worker_connections(const struct engine_worker *w);
/* True from engine_worker_exit() on: engine_connect refuses, connections are closing. */
bool engine_worker_exiting(const struct engine_worker *w);
/* Cancels this worker's accepts and closes its listening sockets. */
void engine_worker_stop_accepting(struct engine_worker *w);
/* Ends the loop after this turn; connections still open get on_closed(ECANCELED). */
void engine_worker_exit(struct engine_worker *w);

/* Queues a copy of `data` for sending. -1 if the id is stale, the connection is closing
 * at once, or its queue would pass 4 GiB. Allowed while a flush-close drains (a TLS
 * close_notify written after the last reply goes out after it). Output is sent in order;
 * buffers are released once written. Never refused for being above max_output: that
 * stops receiving instead. */
int engine_conn_send(struct engine_worker *w, engine_conn_id id, const void *data, size_t len);
/* What is queued and not yet being written waits for the connection's next
 * engine_conn_send() or its flush-close, and goes out with it: for bytes the peer never
 * waits for (a TLS 1.3 session ticket), which then share the next reply's send and segment
 * instead of costing one of their own. Ignored for a stale id, a closing connection, or
 * one whose output is above max_output (its receiving waits for that output to drain). */
void engine_conn_hold_output(struct engine_worker *w, engine_conn_id id);
/* Closes after queued output is written (or at once if `flush` is false). on_closed
 * follows, always from the loop, never from inside this call. Stale ids are ignored.
 * A flush-close keeps the timer armed for the connection (or arms close_linger_ms when
 * none is): when it expires the connection is reset without a call to on_timer. Until
 * then the connection still accepts sends, reads and drops what the peer sends (closing
 * with unread input would make the kernel reset it and destroy the last reply), and a
 * second call with `flush` false closes at once. */
void engine_conn_close(struct engine_worker *w, engine_conn_id id, bool flush);
/* Stops / restarts receiving (backpressure while the layer above is busy). Independent of
 * the engine's own pause for output above max_output: receiving resumes when neither
 * holds it. */
void engine_conn_pause_recv(struct engine_worker *w, engine_conn_id id);
void engine_conn_resume_recv(struct engine_worker *w, engine_conn_id id);
/* Arms the connection's single timer at absolute time `deadline_ms` (engine_now_ms
 * clock); 0 disarms it. On a closing connection the timer is the close's deadline: it
 * may be moved, not disarmed (0 is ignored). */
void engine_conn_set_timer(struct engine_worker *w, engine_conn_id id, uint64_t deadline_ms);

/* Hands an accepted connection to a new context: every callback from now on gets `ctx`
 * (a PROXY protocol header read, then an SMTP session takes over the connection). The old
 * context is the caller's to free. 0, or -1 for a stale id, an outbound connection or one
 * that has no context (refused, or still inside on_accept). */
int engine_conn_set_ctx(struct engine_worker *w, engine_conn_id id, void *ctx);

/* The credentials of an accepted unix-socket connection's peer, as they were when it
 * connected (SO_PEERCRED: pid, uid, gid); allowed from on_accept on. 0, or -1 with errno
 * (EBADF: a stale id or an outbound connection; EAFNOSUPPORT: not a unix socket). */
int engine_conn_peer_cred(struct engine_worker *w, engine_conn_id id, struct ucred *cred);

/* Opens a TCP connection to `to` (AF_INET or AF_INET6, port set) from `from` (NULL = any
 * address the kernel picks; a port of 0 = any port) on this worker's ring: a non-blocking,
 * close-on-exec socket with TCP_NODELAY. `to` may also be a unix stream socket (AF_UNIX
 * with a path, `from` NULL: a local LMTP server); its path is copied like the rest. Returns 0 and
 * the connection's id in *id_out at once; then on_connected(ctx) when it is established, or
 * on_closed(ctx, errno) when it fails, from the loop, never from inside this call. The id is valid
 * from the start: engine_conn_set_timer arms the connect timeout (on_timer fires while connecting
 * too, and the layer then closes it), engine_conn_send queues output sent once connected,
 * engine_conn_pause_recv holds receiving from the start, engine_conn_close (flush or not)
 * cancels a connect in progress. Returns -1 with errno, and calls nothing, only for bad
 * arguments (EINVAL), no memory for the connection (ENOMEM) or a worker that is exiting
 * (ECANCELED). `to` and `from` are copied. */
int engine_connect(struct engine_worker *w, const struct sockaddr *to, socklen_t tolen,
                   const struct sockaddr *from, socklen_t fromlen,
                   const struct engine_conn_callbacks *cb, void *ctx, engine_conn_id *id_out);

/* Arms `t` to fire at absolute time `deadline_ms` (engine_now_ms clock; a time already
 * past fires on the next loop turn). Arming an armed timer moves it. Arming is O(1),
 * moving, disarming and firing O(log n) amortised (a pairing heap); never allocates, never
 * fails. Timers due in
 * the same turn fire in deadline order; one that fire() re-arms at or before now fires on
 * the next turn, not in the same one. Timers keep firing while the worker exits
 * (engine_worker_exit) until its loop ends; then the engine disarms them all, arming does
 * nothing any more, and none fires again (so not during nor after worker_fini, which may
 * free them without disarming). Everywhere else an armed timer must be disarmed before
 * its memory is freed or reused. */
void engine_timer_arm(struct engine_worker *w, struct engine_timer *t, uint64_t deadline_ms);
/* Disarms `t` if armed (a disarmed or zeroed timer is left alone). */
void engine_timer_disarm(struct engine_worker *w, struct engine_timer *t);
/* Whether `t` is armed (waiting to fire). */
bool engine_timer_armed(const struct engine_timer *t);

/* Generic asynchronous operations for other modules (the spool's write/fsync/rename).
 * The caller embeds an engine_op in its own object and keeps that object alive until
 * `complete` runs; `res` is the CQE result (negative errno on failure). */
struct engine_op {
    void (*complete)(struct engine_op *op, int res);
};
/* Returns an SQE whose completion calls op->complete (op NULL: completion ignored).
 * Never NULL: submits to make room when the SQ is full (and, when the kernel refuses
 * that submission until completions are reaped, sets the completions aside for the loop
 * and waits for one: never a busy loop, never a callback from inside this call). The SQE is
 * submitted at the end of the current loop turn together with everything else, so many file
 * operations from many sessions go to the kernel in one io_uring_enter. Prepare it with an
 * io_uring_prep_* function, then set sqe->flags (prep clears them). One completion per
 * SQE: no multishot operations and no IOSQE_CQE_SKIP_SUCCESS. A worker that exits
 * waits for these completions (up to 10 s, then it tears its ring down and they never
 * run) before it calls worker_fini. */
struct io_uring_sqe *engine_sqe(struct engine_worker *w, struct engine_op *op);
/* Call before a chain of `n` linked SQEs (IOSQE_IO_LINK): makes room for all of them,
 * so the chain is not cut by the submission engine_sqe makes when the SQ is full. */
void engine_sqe_reserve(struct engine_worker *w, unsigned n);

#endif
