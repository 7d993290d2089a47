/*
 * util/metrics.c — the workers' blocks of values and the counting side (util/metrics.h).
 */
#include "util/metrics.h"
#include "util/metrics_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct metrics_block *metrics_blocks;
unsigned metrics_n_blocks;
char metrics_listener_names[METRICS_LISTENERS_MAX][64];
unsigned metrics_n_listeners;
char metrics_version[64];
double metrics_start_time;

/* The SMTP command table's verbs (smtp/smtp_cmd.c), then those it does not know. */
const char *const metrics_verbs[METRICS_VERBS + 1] = {
    "HELO", "EHLO", "MAIL", "RCPT", "DATA",     "BDAT", "RSET",   "NOOP",
    "QUIT", "HELP", "VRFY", "EXPN", "STARTTLS", "AUTH", "unknown"};
const char *const metrics_tls_versions[METRICS_TLS_VERSIONS] = {"TLSv1", "TLSv1.1", "TLSv1.2",
                                                                "TLSv1.3", "other"};
const char *const metrics_certs[METRICS_CERTS] = {"ECDSA", "RSA", "other", "none"};

/* A handshake costs from ~0.2 ms (X25519 with ECDSA) to tens of ms (RSA-4096, ffdhe8192) of
 * CPU; a commit from well under a millisecond (a fast disk's group commit) to seconds (a
 * saturated one). */
static const uint64_t metrics_cpu_bounds[] = {100000,  250000,   500000,   1000000,  2500000,
                                              5000000, 10000000, 25000000, 50000000, 100000000};
static const uint64_t metrics_commit_bounds[] = {
    250000,   500000,    1000000,   2500000,   5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000};
const struct metrics_hist_def metrics_handshake_cpu_def = {
    "ringmail_tls_handshake_cpu_seconds",
    "Thread CPU time spent in the TLS handshake calls of one inbound session.", metrics_cpu_bounds,
    sizeof(metrics_cpu_bounds) / sizeof(metrics_cpu_bounds[0])};
const struct metrics_hist_def metrics_commit_def = {
    "ringmail_spool_commit_seconds",
    "Time from a message's commit request to its durable completion in the spool.",
    metrics_commit_bounds, sizeof(metrics_commit_bounds) / sizeof(metrics_commit_bounds[0])};

static _Thread_local struct metrics_block *metrics_self;
/* Set before the workers start, read-only after. */
static bool metrics_served;

/* Interned label values; slot 0 is "other", for every name past the table's end. */
static char metrics_labels[METRICS_LABELS_MAX][48] = {"other"};
static _Atomic unsigned metrics_n_labels = 1;
static pthread_mutex_t metrics_labels_lock = PTHREAD_MUTEX_INITIALIZER;

int metrics_setup(unsigned workers, const char *const *listeners, size_t n_listeners,
                  const char *version)
{
    if (!(metrics_blocks = calloc(workers, sizeof(*metrics_blocks))))
        return -1;
    metrics_n_blocks = workers;
    metrics_n_listeners =
        n_listeners < METRICS_LISTENERS_MAX - 1 ? (unsigned)n_listeners : METRICS_LISTENERS_MAX - 1;
    for (unsigned i = 0; i < metrics_n_listeners; i++)
        snprintf(metrics_listener_names[i], sizeof(metrics_listener_names[i]), "%s", listeners[i]);
    snprintf(metrics_listener_names[metrics_n_listeners], sizeof(metrics_listener_names[0]),
             "local");
    snprintf(metrics_version, sizeof(metrics_version), "%s", version);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    metrics_start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    return 0;
}

void metrics_teardown(void)
{
    free(metrics_blocks);
    metrics_blocks = NULL;
    metrics_n_blocks = 0;
}

void metrics_worker_attach(unsigned index)
{
    metrics_self = index < metrics_n_blocks ? &metrics_blocks[index] : NULL;
}

/* Only the owner writes: a plain increment, published with a relaxed store. */
static inline void metrics_add(metrics_value *v, uint64_t n)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

unsigned metrics_labels_count(void)
{
    return atomic_load_explicit(&metrics_n_labels, memory_order_acquire);
}

const char *metrics_label(unsigned i)
{
    return i < metrics_labels_count() ? metrics_labels[i] : metrics_labels[0];
}

/* The index of `name`; a new name is added under the lock (published by the release store
 * of the count, so a reader never sees a half-written name). */
static unsigned metrics_intern(const char *name)
{
    unsigned n = metrics_labels_count();
    for (unsigned i = 1; i < n; i++)
        if (strcmp(metrics_labels[i], name) == 0)
            return i;
    pthread_mutex_lock(&metrics_labels_lock);
    unsigned i = 1;
    n = atomic_load_explicit(&metrics_n_labels, memory_order_relaxed);
    while (i < n && strcmp(metrics_labels[i], name) != 0)
        i++;
    if (i == n && n < METRICS_LABELS_MAX && strlen(name) < sizeof(metrics_labels[0])) {
        memcpy(metrics_labels[n], name, strlen(name) + 1);
        atomic_store_explicit(&metrics_n_labels, n + 1, memory_order_release);
    } else if (i == n) {
        i = 0;
    }
    pthread_mutex_unlock(&metrics_labels_lock);
    return i;
}

void metrics_connection(unsigned listener, enum metrics_conn_result r)
{
    if (!metrics_self)
        return;
    unsigned l = listener == METRICS_LISTENER_LOCAL || !metrics_n_listeners ? metrics_n_listeners
                 : listener < metrics_n_listeners                           ? listener
                                                  : metrics_n_listeners - 1;
    metrics_add(&metrics_self->conn[l][r], 1);
}

void metrics_connection_open(int delta)
{
    if (metrics_self)
        metrics_add(&metrics_self->conn_open, (uint64_t)(int64_t)delta);
}

void metrics_command(const char *verb)
{
    if (!metrics_self)
        return;
    unsigned i = 0;
    while (verb && i < METRICS_VERBS && strcmp(metrics_verbs[i], verb) != 0)
        i++;
    metrics_add(&metrics_self->commands[verb ? i : METRICS_VERBS], 1);
}

void metrics_replies(const char *bytes, size_t len)
{
    if (!metrics_self)
        return;
    /* A reply's last line is "ddd" followed by a space or its end; "ddd-" continues it. */
    for (size_t at = 0; at < len;) {
        const char *line = bytes + at;
        const char *nl = memchr(line, '\n', len - at);
        size_t n = nl ? (size_t)(nl - line) : len - at;
        if (n >= 3 && line[0] >= '2' && line[0] <= '5' &&
            (n == 3 || line[3] == ' ' || line[3] == '\r'))
            metrics_add(&metrics_self->replies[line[0] - '2'], 1);
        at += n + 1;
    }
}

void metrics_message_accepted(uint64_t bytes)
{
    if (!metrics_self)
        return;
    metrics_add(&metrics_self->accepted, 1);
    metrics_add(&metrics_self->bytes, bytes);
}

void metrics_message_rejected(enum metrics_reject_stage stage)
{
    if (metrics_self)
        metrics_add(&metrics_self->rejected[stage], 1);
}

static void metrics_observe(struct metrics_hist *h, const struct metrics_hist_def *def, uint64_t ns)
{
    unsigned b = 0;
    while (b < def->n && ns > def->bounds_ns[b])
        b++;
    metrics_add(&h->buckets[b], 1);
    metrics_add(&h->sum_ns, ns);
}

void metrics_tls_handshake(const char *version, const char *group, const char *cert, bool ok,
                           uint64_t cpu_ns)
{
    if (!metrics_self)
        return;
    unsigned v = 0;
    while (v < METRICS_TLS_VERSIONS - 1 && (!version || strcmp(metrics_tls_versions[v], version)))
        v++;
    unsigned c = !cert || !cert[0]                ? 3
                 : strncmp(cert, "ECDSA", 5) == 0 ? 0
                 : strncmp(cert, "RSA", 3) == 0   ? 1
                                                  : 2;
    unsigned g = metrics_intern(group && group[0] ? group : "none");
    metrics_add(&metrics_self->tls[v][g][c][ok ? 1 : 0], 1);
    metrics_observe(&metrics_self->handshake_cpu, &metrics_handshake_cpu_def, cpu_ns);
}

void metrics_spool_commit(uint64_t ns)
{
    if (metrics_self)
        metrics_observe(&metrics_self->commit, &metrics_commit_def, ns);
}

void metrics_delivery(enum metrics_delivery_result r, const char *mailer)
{
    if (metrics_self)
        metrics_add(&metrics_self->deliveries[r][metrics_intern(mailer ? mailer : "none")], 1);
}

void metrics_queue_set(enum metrics_queue_state state, uint64_t messages)
{
    if (metrics_self)
        atomic_store_explicit(&metrics_self->queue[state], messages, memory_order_relaxed);
}

static uint64_t metrics_clock_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_set_served(bool served)
{
    metrics_served = served;
}

uint64_t metrics_thread_cpu_ns(void)
{
    return metrics_served ? metrics_clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
}

uint64_t metrics_monotonic_ns(void)
{
    return metrics_clock_ns(CLOCK_MONOTONIC);
}

void metrics_totals(struct metrics_totals *out)
{
    *out = (struct metrics_totals){0};
    for (unsigned w = 0; w < metrics_n_blocks; w++) {
        const struct metrics_block *b = &metrics_blocks[w];
        out->messages_accepted += metrics_get(&b->accepted);
        out->connections_open += metrics_get(&b->conn_open);
        for (unsigned s = 0; s < METRICS_QUEUE_STATES; s++)
            out->queue_size += metrics_get(&b->queue[s]);
    }
}
