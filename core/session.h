/*
 * core/session.h — one SMTP connection: glue between the engine (bytes, timers), the
 * ESMTP state machine (replies, events) and the spool (durable commit).
 *
 * Owns: the session struct, its smtp_server, its spool message in progress, its reference
 * to the configuration generation it started with, and its connection-limit slot. All of
 * it lives and dies on the worker thread that accepted the connection. The 250 after DATA
 * is sent only when the spool reports the commit durable (the session is visibly parked in
 * between: smtp_server waits for smtp_server_commit_done).
 */
#ifndef RINGMAIL_CORE_SESSION_H
#define RINGMAIL_CORE_SESSION_H

#include "core/daemon.h"
#include "util/engine.h"

/* The engine callbacks for the daemon's workers (worker_init expects the struct daemon
 * to be reachable through daemon_for_engine, set before engine_start). */
extern const struct engine_callbacks session_engine_callbacks;
void session_set_daemon(struct daemon *d);
/* Fills rc's AUTH offer (auth.mechanisms the SASL library has, with and without TLS) from
 * its configuration; SASL is set up (policy/sasl.h). 0, or -1 with `err`. */
int session_auth_configure(struct runconf *rc, char *err, size_t errlen);

#endif
