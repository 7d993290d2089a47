/*
 * delivery/local.h — the engine's side of local delivery: one request to the privileged
 * parent per local delivery (delivery/local_proto.h), its reply read on the worker's ring.
 *
 * local_deliver() makes a socketpair for the reply, sends the request with the message's
 * descriptor and the reply socket's other end on the local-delivery socket (without
 * waiting: when the socket is full, the request waits in the worker, with a copy of the
 * descriptor, and goes in order once the parent has read the earlier ones), and reads
 * the one reply with an io_uring recv. `done` then runs exactly once, from the loop (never
 * from inside local_deliver): with the agent's reply; or with a deferral when the agent
 * ended without one (4.3.0 "local delivery agent died"), when no reply came within the time
 * given (the agent has its own limit; this one is a safety net: 4.4.1), or when the worker
 * stops (local_worker_stop: 4.3.2 "shutting down"; the agent may still finish, so the
 * recipient may be delivered twice, as any delivery in flight at a stop).
 *
 * Threads: one local_worker per engine worker, every call on its thread. The socket is
 * shared by the workers (a SOCK_SEQPACKET send is one message whatever the threads do) and
 * stays the caller's. The message descriptor stays the caller's (the request carries a
 * copy).
 */
#ifndef RINGMAIL_DELIVERY_LOCAL_H
#define RINGMAIL_DELIVERY_LOCAL_H

#include <stdint.h>

#include "delivery/local_proto.h"

struct engine_worker;
struct local_worker;

typedef void (*local_done_fn)(void *arg, const struct local_reply *r);

/* NULL when memory ran out. `sock` -1: no parent to ask (every local_deliver fails). */
struct local_worker *local_worker_new(struct engine_worker *w, int sock);
/* Ends the requests in flight (their `done` follows from the loop, deferred). */
void local_worker_stop(struct local_worker *lw);
/* After the worker's loop has ended: frees what is left, calling nothing. */
void local_worker_free(struct local_worker *lw);

/* 0 (done follows), or -errno with nothing called: -ENOTCONN (no parent), -ECANCELED
 * (stopped), -ENOMEM, or a send's error. */
int local_deliver(struct local_worker *lw, const struct local_request *rq, int msg_fd,
                  uint32_t timeout_ms, local_done_fn done, void *arg);

#endif
