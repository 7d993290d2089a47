/*
 * core/daemon.h — the running daemon: what the main thread and the workers share.
 *
 * The main thread owns struct daemon: it loads the configuration, binds the listeners,
 * drops privileges, recovers the spool, starts the engine and then only waits for
 * signals (SIGHUP reload, SIGTERM/SIGINT drain and exit). Workers reach shared state
 * through struct daemon_worker, one per engine worker thread, owned by that thread.
 * The main thread talks to workers only with engine_post() messages.
 */
#ifndef RINGMAIL_CORE_DAEMON_H
#define RINGMAIL_CORE_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/connlimit.h"
#include "core/runconf.h"
#include "queue/spool.h"
#include "util/engine.h"

enum daemon_msg {
    DAEMON_MSG_RELOAD = 1, /* pick up daemon.current for new sessions */
    DAEMON_MSG_DRAIN,      /* stop accepting; close sessions once their transaction ends */
    DAEMON_MSG_EXIT,       /* grace period over: close everything now */
};

struct session;

struct daemon {
    struct engine *engine;
    struct spool *spool;
    struct connlimit *conns;
    pthread_mutex_t current_lock;
    struct runconf *current; /* guarded by current_lock */
    char **listener_names;   /* by listener index; fixed at start-up */
    unsigned workers;        /* fixed at start-up: one TLS context each per generation */
    atomic_uint workers_running;
};

struct daemon_worker {
    struct daemon *d;
    struct engine_worker *w;
    struct spool_worker *sw;
    struct runconf *rc;       /* what new sessions on this worker start with */
    struct session *sessions; /* every open session (for draining) */
    bool draining;
};

/* Returns a new reference to the current configuration generation. */
struct runconf *daemon_current(struct daemon *d);

/* Runs the daemon in the foreground of this process until SIGTERM; returns an exit
 * status (sysexits). `config_path` NULL = built-in default. */
int daemon_run(const char *config_path, bool foreground);

#endif
