/*
 * delivery/local.h — the engine's side of local delivery: one request to the privileged
 * parent per local delivery (delivery/local_proto.h), its reply read on the worker's ring.
 *
 * local_deliver() opens the message (the open function given to local_worker_new), makes
 * a socketpair for the reply, sends the request with the message's descriptor and the
 * reply socket's other end on the local-delivery socket, and reads the one reply with an
 * io_uring recv. It never waits: when the socket is full the request waits in the worker,
 * holding no descriptor, and goes in order once the parent has read the earlier ones. `done` then
 * runs exactly once, from the loop (never from inside local_deliver): with the agent's reply; or
 * with a deferral when the agent ended without one (4.3.0 "local delivery agent died"), when no
 * reply came within the time given (the agent has its own limit; this one is a safety net: 4.4.1),
 * or when the worker stops (local_worker_stop: 4.3.2 "shutting down"; the agent may still finish,
 * so the recipient may be delivered twice, as any delivery in flight at a stop).
 *
 * Threads: one local_worker per engine worker, every call on its thread. The socket is
 * shared by the workers (a SOCK_SEQPACKET send is one message whatever the threads do) and
 * stays the caller's.
 */
#ifndef RINGMAIL_DELIVERY_LOCAL_H
#define RINGMAIL_DELIVERY_LOCAL_H

#include <stdbool.h>
#include <stdint.h>

#include "delivery/local_proto.h"

struct engine_worker;
struct local_worker;

typedef void (*local_done_fn)(void *arg, const struct local_reply *r);

/* The file that holds message `qid`'s data, read-only, for the parent (closed once sent):
 * the qf when `data_inline` (the data starts at the request's data_offset), else the df.
 * Its descriptor, or -errno. */
typedef int (*local_open_fn)(void *arg, const char *qid, bool data_inline);

/* NULL when memory ran out. `sock` -1: no parent to ask (every local_deliver fails). */
struct local_worker *local_worker_new(struct engine_worker *w, int sock, local_open_fn open_msg,
                                      void *open_arg);
/* Ends the requests in flight (their `done` follows from the loop, deferred). */
void local_worker_stop(struct local_worker *lw);
/* After the worker's loop has ended: frees what is left, calling nothing. */
void local_worker_free(struct local_worker *lw);

/* 0 (done follows), or -errno with nothing called: -ENOTCONN (no parent), -ECANCELED
 * (stopped), -ENOMEM, the open's error, or a send's. A request that waited in the worker
 * and then cannot go ends deferred (4.3.0). */
int local_deliver(struct local_worker *lw, const struct local_request *rq, uint32_t timeout_ms,
                  local_done_fn done, void *arg);

#endif
