/*
 * core/metrics_http.h — the metrics listener's connections (metrics.listen,
 * docs/metrics.md): one HTTP/1.x request each, answered with the exposition of
 * util/metrics.h and closed.
 *
 * Served by the engine like every other connection, on worker 0 (the listener is handed
 * to it alone): no thread of its own, nothing blocks. A client that sends no complete
 * request head within METRICS_HTTP_TIMEOUT_MS is closed; one that sends more than
 * HTTP_REQ_MAX bytes of head, or a malformed one, gets 400 (util/http_req.h).
 *
 * Owns: each connection's context (struct metrics_http, freed in its on_closed).
 *
 * How the daemon wires it (core/session.c): on_accept of DAEMON_LISTENER_METRICS returns
 * metrics_http_accept(dw, id); the context starts with a struct daemon_conn whose `cb` is
 * the connection's callbacks, reached through the daemon's dispatch like a session's.
 */
#ifndef RINGMAIL_CORE_METRICS_HTTP_H
#define RINGMAIL_CORE_METRICS_HTTP_H

#include "core/daemon.h"
#include "util/engine.h"

/* How long a client may take to send its request, and the answer to go out. */
#define METRICS_HTTP_TIMEOUT_MS 5000

/* A connection on the metrics listener: its context, or NULL (out of memory, or the
 * daemon is draining: the engine closes it). */
void *metrics_http_accept(struct daemon_worker *dw, engine_conn_id id);

#endif
