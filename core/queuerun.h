/*
 * core/queuerun.h — the daemon's delivery wiring: each worker's resolver, outbound
 * connections and queue manager (delivery/qmgr.h), the messages recovered at start-up
 * handed to the workers, and a committed message handed to its worker's manager.
 *
 * Owns: the recovered-message lists (struct daemon's `backlog`, freed as each worker takes
 * its own), and per worker its struct dns, outbound_worker and qmgr (in struct
 * daemon_worker), made on the worker's thread at its start and freed at its end. A
 * recovered message goes to the worker that a hash of its id names, so the spool's
 * messages spread evenly whatever worker took them.
 */
#ifndef RINGMAIL_CORE_QUEUERUN_H
#define RINGMAIL_CORE_QUEUERUN_H

#include <stddef.h>

#include "core/daemon.h"

/* Start-up, main thread, before the engine starts: recovers the spool (queue/spool.h) and
 * keeps each worker's share for queuerun_worker_start. -1 with `err`. */
int queuerun_recover(struct daemon *d, char *err, size_t errlen);
/* On the worker's thread, before it serves anyone. -1 (logged) when memory ran out or the
 * resolver cannot start: the worker cannot deliver, the daemon stops. */
int queuerun_worker_start(struct daemon_worker *dw, unsigned index);
/* Shutdown begins: no new delivery starts; deliveries in flight are abandoned (their
 * recipients stay pending in the spool and are sent after the restart). */
void queuerun_worker_stop(struct daemon_worker *dw);
/* At the worker's end (worker_fini). */
void queuerun_worker_free(struct daemon_worker *dw);
/* The worker took a new configuration generation (dw->rc): the outbound side follows. */
void queuerun_reconfigure(struct daemon_worker *dw);
/* A message was committed on this worker: deliver it now. */
void queuerun_committed(struct daemon_worker *dw, const char *qid);
/* Frees what workers did not take (a start that failed). */
void queuerun_backlog_free(struct daemon *d);

#endif
