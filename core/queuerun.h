/*
 * core/queuerun.h — the daemon's delivery wiring: each worker's resolver, outbound
 * connections and queue manager (delivery/qmgr.h), the messages recovered at start-up
 * handed to the workers, and a committed message handed to its worker's manager.
 *
 * Owns: the recovery (struct daemon's `backlog`): the list of messages found at start-up,
 * the thread that reads their envelopes while the daemon serves, and per worker a box of
 * QUEUERUN_BOX_CAP messages on their way to it; and per worker its struct dns,
 * outbound_worker and qmgr (in struct daemon_worker), made on the worker's thread at its
 * start and freed at its end. A recovered message goes to the worker that a hash of its id
 * names, so the spool's messages spread evenly whatever worker took them.
 *
 * Start-up (docs/queue.md, "Recovery"): queuerun_recover lists the spool before the engine
 * starts (directories only, leftovers removed), the daemon says `ready`, then
 * queuerun_recover_start reads every listed envelope on a thread of its own, oldest first:
 * each message is handed to its worker (QUEUERUN_ENGINE_MSG, queuerun_on_message) with its
 * real next attempt as soon as it is read, so none is attempted before its envelope is read
 * and a held one stays held. The thread waits while a worker's box is full: memory stays
 * bounded, and a worker enqueues at most a box per turn of its loop. When the pass ends it
 * logs the summary and tells the parent (PRIVSEP_RECOVERED), which starts the maildrop's
 * pickup only then: every maildrop file a queued message names is gone by that time.
 */
#ifndef RINGMAIL_CORE_QUEUERUN_H
#define RINGMAIL_CORE_QUEUERUN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/daemon.h"

/* The engine message that tells the workers their boxes have messages. */
#define QUEUERUN_ENGINE_MSG 0x51524eu

/* Start-up, main thread, before the engine starts: lists the spool (spool_recover_list)
 * and counts each worker's share for queuerun_worker_start. -1 with `err`. */
int queuerun_recover(struct daemon *d, char *err, size_t errlen);
/* Once the engine serves: starts the thread that reads the listed envelopes; `parent` is
 * the privsep socket it tells when done (a message sent whole: safe beside the main
 * thread's). Without a thread (pthread_create failed, logged) the pass runs here. */
void queuerun_recover_start(struct daemon *d, int parent);
/* Whether the start-up pass still reads the queue; then the messages handed to the
 * workers so far and how many the listing found. Any thread. */
bool queuerun_recovering(const struct daemon *d, size_t *read, size_t *total);
/* Stops the pass (shutdown) and waits for its thread: what it has not read stays in the
 * spool for the next start. Main thread; safe when nothing was started. */
void queuerun_recover_stop(struct daemon *d);
/* QUEUERUN_ENGINE_MSG arrived on this worker: its recovered messages go to its queue
 * manager. */
void queuerun_on_message(struct daemon_worker *dw);
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
/* A message was committed on this worker: deliver it now, or (held: the access map's
 * QUARANTINE:) only index it, never due until released. */
void queuerun_committed(struct daemon_worker *dw, const char *qid, bool held);
/* Stops the pass if it runs and frees the recovery (after engine_join). */
void queuerun_backlog_free(struct daemon *d);

#endif
