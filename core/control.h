/*
 * core/control.h — the control socket (submission.control_socket): the queue tools'
 * requests (ringmail-queue, sendmail -q/-qR/-qI, hoststat, purgestat, sendmail -v's
 * WATCH), answered by the workers' queue managers. One request per connection; the
 * protocol is in docs/queue.md ("The control socket"), its parsing in core/control_proto.h.
 *
 * Each worker's queue manager owns its messages, so a request about messages is posted
 * to every worker (a shared request object with a count of the workers still working on
 * it) and answered by the worker that accepted the connection once all have replied.
 *
 * Owns: each control connection (struct control_conn, freed in its on_closed), the
 * requests in flight (reference-counted: a connection that closes early leaves its
 * request to the workers still on it) and a mutex-guarded inbox per process through which
 * workers hand each other request parts and answers. Everything else runs on the worker
 * threads, never blocking.
 *
 * How the daemon wires it (core/daemon.c, core/session.c):
 *  - on_accept of the control listener: `return control_accept(dw, id, &cred);` with the
 *    peer's SO_PEERCRED. NULL means refused: an "ERR ..." line is already queued with
 *    engine_conn_send; the engine closes the connection after sending it, as for any
 *    refused accept.
 *  - The context control_accept returns starts with a struct daemon_conn whose `cb` is
 *    &control_conn_callbacks: the daemon's dispatch reaches it like a session's.
 *  - on_message: msg == CONTROL_ENGINE_MSG → control_on_message(dw).
 *  - worker_fini: control_worker_fini(dw).
 */
#ifndef RINGMAIL_CORE_CONTROL_H
#define RINGMAIL_CORE_CONTROL_H

#include <sys/socket.h>

#include "core/daemon.h"
#include "util/engine.h"

/* The engine_post message by which workers wake each other for control requests; distinct
 * from every enum daemon_msg value. */
#define CONTROL_ENGINE_MSG 0x43544cu

/* The callbacks of a control connection, reached through the first member of the context
 * control_accept returns. on_connected is unused (accepted connections only). */
extern const struct engine_conn_callbacks control_conn_callbacks;

/* A connection on the control socket from `peer` (SO_PEERCRED). The context, or NULL
 * (refused: the daemon is draining or memory ran out; the reason is queued to be sent). */
void *control_accept(struct daemon_worker *dw, engine_conn_id id, const struct ucred *peer);
/* CONTROL_ENGINE_MSG arrived on this worker: take the parts and answers addressed to it. */
void control_on_message(struct daemon_worker *dw);
/* The worker ends (its connections are closed by then): its parts of requests in flight
 * end as not done, so each request is still answered by its origin if that is up, and
 * freed; nothing is posted to this worker afterwards. */
void control_worker_fini(struct daemon_worker *dw);

#endif
