/*
 * util/metrics.h — the daemon's counters, gauges and histograms (docs/metrics.md names
 * each one, its labels and where it is counted).
 *
 * Share-nothing, as the engine: every engine worker has its own block of values, written
 * only by that worker's thread (a relaxed load and a relaxed store of the sum: no lock and
 * no atomic read-modify-write on the hot path); the thread that answers a scrape sums the
 * blocks with relaxed loads. A block is the calling thread's once it called
 * metrics_worker_attach(); a thread that did not (the main thread, the parent, the unit
 * tests and fuzzers) counts nothing, so any layer may call the counting functions.
 *
 * Label values that are not known in advance (key exchange groups, mailers) are interned
 * once into a process-wide table of METRICS_LABELS_MAX names (a mutex only for a name never
 * seen before); past that many they are counted as "other".
 *
 * Owns: the blocks (metrics_setup / metrics_teardown, on the main thread, before the
 * workers start and after they ended). Never allocates after metrics_setup.
 */
#ifndef RINGMAIL_UTIL_METRICS_H
#define RINGMAIL_UTIL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* Why a connection ended before its session started, or that it started. */
enum metrics_conn_result {
    METRICS_CONN_ACCEPTED,
    METRICS_CONN_MAX_CONNECTIONS, /* limits.connections (or submission.connections) */
    METRICS_CONN_PER_CLIENT,      /* limits.connections_per_client, ClientConn: */
    METRICS_CONN_RATE,            /* ClientRate: */
    METRICS_CONN_ACCESS,          /* the access map's Connect: REJECT */
    METRICS_CONN_SHUTDOWN,        /* the daemon was draining */
    METRICS_CONN_PROXY,           /* not a trusted proxy, or a bad PROXY protocol header */
    METRICS_CONN_OTHER,           /* out of memory, the caller's credentials unknown */
    /* Not a refusal: an accepted connection whose greeting ConnectionRateThrottle holds
     * (its own family, ringmail_connections_throttled_total). */
    METRICS_CONN_THROTTLED,
    METRICS_CONN_RESULTS
};

/* Where a message (or the recipient of one) was refused. */
enum metrics_reject_stage {
    METRICS_REJECT_MAIL,
    METRICS_REJECT_RCPT,
    METRICS_REJECT_DATA,
    METRICS_REJECT_STAGES
};

enum metrics_delivery_result {
    METRICS_DELIVERY_SENT,
    METRICS_DELIVERY_DEFERRED,
    METRICS_DELIVERY_BOUNCED,
    METRICS_DELIVERY_RESULTS
};

enum metrics_queue_state { METRICS_QUEUE_ACTIVE, METRICS_QUEUE_WAITING, METRICS_QUEUE_STATES };

/* The listener index of local submission (submission.socket) in the connection counts. */
#define METRICS_LISTENER_LOCAL 0xffffffffu
#define METRICS_LABELS_MAX     64

/* On the main thread before any worker starts: `workers` blocks, the listeners' names
 * (copied; at most 32, the rest counted under the last), the version for
 * ringmail_build_info. 0, or -1 when memory ran out. */
int metrics_setup(unsigned workers, const char *const *listeners, size_t n_listeners,
                  const char *version);
/* After every worker ended. */
void metrics_teardown(void);
/* On worker `index`'s thread, before it counts anything. */
void metrics_worker_attach(unsigned index);

/* --- counting, on a worker's thread (nothing happens on another) --- */
void metrics_connection(unsigned listener, enum metrics_conn_result r);
/* A session opened (+1) or closed (-1): ringmail_connections_open. */
void metrics_connection_open(int delta);
/* One SMTP command line; `verb` as the command table names it, NULL for one unrecognised. */
void metrics_command(const char *verb);
/* Replies as sent: every line that ends a reply ("250 ...", not "250-...") counts once by
 * its first digit. */
void metrics_replies(const char *bytes, size_t len);
void metrics_message_accepted(uint64_t bytes);
void metrics_message_rejected(enum metrics_reject_stage stage);
/* A server-side TLS handshake that ended: `version` ("TLSv1.3"), `group` ("X25519"),
 * `cert` (tls/'s type, "ECDSA-P384": its key type is the label) may be NULL or "" when a
 * failed handshake never got that far; `cpu_ns` is the thread CPU time its calls took. */
void metrics_tls_handshake(const char *version, const char *group, const char *cert, bool ok,
                           uint64_t cpu_ns);
/* From a commit's request to its durable completion. */
void metrics_spool_commit(uint64_t ns);
void metrics_delivery(enum metrics_delivery_result r, const char *mailer);
void metrics_queue_set(enum metrics_queue_state state, uint64_t messages);

/* Whether anything serves the values (metrics.listen); set once, before the workers start.
 * A thread's CPU clock is a system call, not a vDSO read: unserved,
 * metrics_thread_cpu_ns() returns 0 without asking it. */
void metrics_set_served(bool served);
/* CLOCK_THREAD_CPUTIME_ID and CLOCK_MONOTONIC in nanoseconds, for the two histograms. */
uint64_t metrics_thread_cpu_ns(void);
uint64_t metrics_monotonic_ns(void);

/* --- reading, from any thread --- */
struct metrics_totals {
    uint64_t messages_accepted; /* since start */
    uint64_t connections_open;  /* SMTP sessions now, TCP and local */
    uint64_t queue_size;        /* messages in the queue now, in delivery or waiting */
};
void metrics_totals(struct metrics_totals *out);

/* The whole exposition (Prometheus text format 0.0.4) appended to `out` (util/metrics_text.c).
 * 0, or -1 when `out` reached its limit. */
int metrics_render(struct buf *out);

#endif
