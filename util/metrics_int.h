/*
 * util/metrics_int.h — private to util/metrics*.c: the layout of a worker's block, the
 * histograms' buckets and the label tables, shared by the counting side (metrics.c) and the
 * exposition (metrics_text.c).
 */
#ifndef RINGMAIL_UTIL_METRICS_INT_H
#define RINGMAIL_UTIL_METRICS_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "util/metrics.h"

#define METRICS_LISTENERS_MAX 33 /* 32 configured + local submission */
#define METRICS_VERBS         14 /* the SMTP verbs, then "unknown" */
#define METRICS_TLS_VERSIONS  5  /* TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, other */
#define METRICS_CERTS         4  /* ECDSA, RSA, other, none */
#define METRICS_BUCKETS_MAX   14

typedef _Atomic uint64_t metrics_value;

struct metrics_hist {
    metrics_value buckets[METRICS_BUCKETS_MAX + 1]; /* not cumulative; the last is +Inf */
    metrics_value sum_ns;
};

struct metrics_block {
    metrics_value conn[METRICS_LISTENERS_MAX][METRICS_CONN_RESULTS];
    metrics_value conn_open; /* a session opens and closes on the same worker: never below 0 */
    metrics_value commands[METRICS_VERBS + 1];
    metrics_value replies[4]; /* 2xx..5xx */
    metrics_value accepted, bytes;
    metrics_value rejected[METRICS_REJECT_STAGES];
    metrics_value tls[METRICS_TLS_VERSIONS][METRICS_LABELS_MAX][METRICS_CERTS][2];
    struct metrics_hist handshake_cpu, commit;
    metrics_value deliveries[METRICS_DELIVERY_RESULTS][METRICS_LABELS_MAX];
    metrics_value queue[METRICS_QUEUE_STATES];
};

struct metrics_hist_def {
    const char *name, *help;
    const uint64_t *bounds_ns; /* ascending, `n` of them (+Inf is implied) */
    unsigned n;
};

extern struct metrics_block *metrics_blocks;
extern unsigned metrics_n_blocks;
extern char metrics_listener_names[METRICS_LISTENERS_MAX][64];
extern unsigned metrics_n_listeners; /* configured ones; local submission is the next */
extern char metrics_version[64];
extern double metrics_start_time;

extern const char *const metrics_verbs[METRICS_VERBS + 1];
extern const char *const metrics_tls_versions[METRICS_TLS_VERSIONS];
extern const char *const metrics_certs[METRICS_CERTS];
extern const struct metrics_hist_def metrics_handshake_cpu_def, metrics_commit_def;

/* The interned label `i` (< metrics_labels_count()); "other" past the table's end. */
unsigned metrics_labels_count(void);
const char *metrics_label(unsigned i);

static inline uint64_t metrics_get(const metrics_value *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

#endif
