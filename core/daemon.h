/*
 * core/daemon.h — the engine process: what its main thread and its workers share.
 *
 * The engine is the unprivileged half of ringmaild (DESIGN.md, "Processes"): forked by the
 * privileged parent (core/parent.h) with the listening sockets, the locked spool, the
 * configuration the parent loaded and the files it read for it. It drops to run_as, builds
 * the TLS contexts from those files, recovers the spool and starts the workers; its main
 * thread then only waits — for signals (SIGTERM/SIGINT drain and exit, SIGHUP asks the
 * parent for a reload) and for configurations from the parent, each a fileset it never
 * could read itself. Workers reach shared state through struct daemon_worker, one per
 * engine worker thread, owned by that thread; the main thread talks to them only with
 * engine_post() messages.
 */
#ifndef RINGMAIL_CORE_DAEMON_H
#define RINGMAIL_CORE_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/connlimit.h"
#include "core/privdrop.h"
#include "core/runconf.h"
#include "queue/spool.h"
#include "util/engine.h"
#include "util/fileset.h"

enum daemon_msg {
    DAEMON_MSG_RELOAD = 1, /* pick up daemon.current for new sessions */
    DAEMON_MSG_DRAIN,      /* stop accepting; close sessions once their transaction ends */
    DAEMON_MSG_EXIT,       /* grace period over: close everything now */
};

/* The engine listener indexes of the unix sockets, accepted on worker 0 (the TCP listeners
 * are 0..n_listen-1 at start-up). */
#define DAEMON_LISTENER_SUBMISSION 0x10000u /* submission.socket: local SMTP sessions */
#define DAEMON_LISTENER_CONTROL    0x10001u /* submission.control_socket */
#define DAEMON_LISTENER_METRICS    0x10002u /* metrics.listen: HTTP, on worker 0 alone */

/* What every accepted connection's context starts with: the callbacks of its kind (an SMTP
 * session, a control connection), which session_engine_callbacks call. */
struct daemon_conn {
    const struct engine_conn_callbacks *cb;
};

struct session;
struct clientrate;
struct accept_throttle;
struct dns;
struct dest_table;
struct outbound_worker;
struct qmgr;
struct queuerun_backlog;

struct daemon {
    struct engine *engine;
    struct spool *spool;
    struct connlimit *conns;          /* TCP clients, by address (limits.connections...) */
    struct connlimit *local_conns;    /* submission.socket's callers, by uid: slots of their own */
    struct clientrate *rates;         /* connections per client lately (policy/clientrate.h) */
    struct accept_throttle *throttle; /* new connections per listener per second */
    pthread_mutex_t current_lock;
    struct runconf *current;   /* guarded by current_lock */
    char **listener_names;     /* by listener index; fixed at start-up */
    unsigned workers;          /* fixed at start-up: one TLS context each per generation */
    struct tls_lib **tls_libs; /* by worker: every generation's contexts are built on them */
    atomic_uint workers_running;
    struct queuerun_backlog *backlog; /* the start-up recovery (core/queuerun.h) */
    struct dest_table *dests;         /* per-destination limits, all workers (delivery/dest.h) */
    int local_fd; /* local deliveries' requests to the parent (delivery/local.h); -1 = none */
    struct sasl_pool *sasl; /* SMTP AUTH's helper threads (policy/sasl.h); NULL = no AUTH */
};

struct daemon_worker {
    struct daemon *d;
    struct engine_worker *w;
    struct spool_worker *sw;
    struct dns *dns; /* the delivery side (core/queuerun.h) */
    struct outbound_worker *ow;
    struct local_worker *lw; /* local deliveries through the parent (delivery/local.h) */
    struct qmgr *qmgr;
    struct runconf *rc;       /* what new sessions on this worker start with */
    struct session *sessions; /* every open session (for draining) */
    bool draining;
};

/* What the parent hands the engine when it forks it; the engine takes ownership of cfg,
 * files, the sockets and the spool. */
struct daemon_start {
    const char *config_path; /* absolute; NULL = the built-in default */
    struct config *cfg;      /* loaded by the parent from `files` */
    struct fileset *files;   /* what the parent read for cfg (keys, maps, certificates) */
    int **listen_fds;        /* [listener][worker], bound and listening */
    int submission_fd;       /* the unix sockets, listening; -1 when none */
    int control_fd;
    int metrics_fd;      /* metrics.listen, listening; -1 when none */
    struct spool *spool; /* opened and locked by the parent */
    struct privdrop_user user;
    int parent;   /* the privsep socket (core/privsep.h) */
    int local_fd; /* the local delivery requests' socket (core/local_agent.h); -1 when none */
    bool foreground;
};

/* Returns a new reference to the current configuration generation. */
struct runconf *daemon_current(struct daemon *d);

/* Detached, once serving: the terminal that started the daemon is let go (stdin, stdout and
 * stderr to /dev/null) and the log goes to syslog only. Both processes call it. */
void daemon_leave_terminal(void);

/* Runs the engine until it is stopped; returns an exit status (sysexits). Start-up errors
 * are logged here. */
int daemon_run(struct daemon_start *st);

#endif
