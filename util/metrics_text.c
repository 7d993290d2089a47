/*
 * util/metrics_text.c — the exposition: every worker's block summed into Prometheus' text
 * format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * Each value is read once with a relaxed load while the workers go on counting, so a scrape
 * is not a snapshot of one instant; but every counter it shows is at least what an earlier
 * scrape showed, and a histogram's _count is the sum of the buckets it printed (the +Inf
 * bucket always equals _count). Label values are names from the configuration or the TLS
 * library: they are escaped as the format asks.
 */
#include "util/metrics.h"
#include "util/metrics_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"

static const char *const metrics_conn_results[METRICS_CONN_RESULTS] = {
    "accepted", "max_connections", "per_client", "rate", "access", "shutdown", "proxy", "other"};
static const char *const metrics_reject_stages[METRICS_REJECT_STAGES] = {"mail", "rcpt", "data"};
static const char *const metrics_delivery_results[METRICS_DELIVERY_RESULTS] = {"sent", "deferred",
                                                                               "bounced"};
static const char *const metrics_queue_states[METRICS_QUEUE_STATES] = {"active", "waiting"};
static const char *const metrics_reply_classes[4] = {"2xx", "3xx", "4xx", "5xx"};

/* A label value: backslash, double quote and newline escaped. */
static void metrics_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 3 < outlen; in++) {
        if (*in == '\\' || *in == '"' || *in == '\n')
            out[o++] = '\\';
        out[o++] = *in == '\n' ? 'n' : *in;
    }
    out[o] = '\0';
}

/* The output and whether an append failed (out of memory, or the buffer's limit). */
struct metrics_out {
    struct buf *b;
    bool failed;
};

static void metrics_printf(struct metrics_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_out *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!out->failed && buf_vprintf(out->b, fmt, ap) < 0)
        out->failed = true;
    va_end(ap);
}

static void metrics_head(struct metrics_out *out, const char *name, const char *type,
                         const char *help)
{
    metrics_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The sum over the workers of the value at byte `offset` of a block. */
static uint64_t metrics_sum(size_t offset)
{
    uint64_t v = 0;
    for (unsigned w = 0; w < metrics_n_blocks; w++)
        v += metrics_get((const metrics_value *)((const char *)&metrics_blocks[w] + offset));
    return v;
}

#define METRICS_SUM(member) metrics_sum(offsetof(struct metrics_block, member))

static void metrics_connections(struct metrics_out *out)
{
    char name[160];
    metrics_head(out, "ringmail_connections_total", "counter",
                 "Connections by listener and what became of them at accept.");
    for (unsigned l = 0; l <= metrics_n_listeners; l++) {
        metrics_escape(metrics_listener_names[l], name, sizeof(name));
        for (unsigned r = 0; r < METRICS_CONN_THROTTLED; r++) {
            uint64_t v = METRICS_SUM(conn[l][r]);
            /* every listener's accepted line, the refusals once there were some */
            if (v || r == METRICS_CONN_ACCEPTED)
                metrics_printf(
                    out, "ringmail_connections_total{listener=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                    name, metrics_conn_results[r], v);
        }
    }
    metrics_head(out, "ringmail_connections_throttled_total", "counter",
                 "Connections accepted whose greeting waited for limits.connection_rate_throttle.");
    for (unsigned l = 0; l <= metrics_n_listeners; l++) {
        metrics_escape(metrics_listener_names[l], name, sizeof(name));
        metrics_printf(out, "ringmail_connections_throttled_total{listener=\"%s\"} %" PRIu64 "\n",
                       name, METRICS_SUM(conn[l][METRICS_CONN_THROTTLED]));
    }
    metrics_head(out, "ringmail_connections_open", "gauge", "SMTP sessions open now.");
    metrics_printf(out, "ringmail_connections_open %" PRIu64 "\n", METRICS_SUM(conn_open));
}

static void metrics_smtp(struct metrics_out *out)
{
    metrics_head(out, "ringmail_smtp_commands_total", "counter",
                 "SMTP command lines received, by verb.");
    for (unsigned i = 0; i <= METRICS_VERBS; i++)
        metrics_printf(out, "ringmail_smtp_commands_total{verb=\"%s\"} %" PRIu64 "\n",
                       metrics_verbs[i], METRICS_SUM(commands[i]));
    metrics_head(out, "ringmail_smtp_replies_total", "counter",
                 "SMTP replies sent, by the class of their code.");
    for (unsigned i = 0; i < 4; i++)
        metrics_printf(out, "ringmail_smtp_replies_total{class=\"%s\"} %" PRIu64 "\n",
                       metrics_reply_classes[i], METRICS_SUM(replies[i]));
    metrics_head(out, "ringmail_messages_accepted_total", "counter",
                 "Messages committed to the spool and answered with 250.");
    metrics_printf(out, "ringmail_messages_accepted_total %" PRIu64 "\n", METRICS_SUM(accepted));
    metrics_head(out, "ringmail_messages_accepted_bytes_total", "counter",
                 "Size of the messages accepted, as stored.");
    metrics_printf(out, "ringmail_messages_accepted_bytes_total %" PRIu64 "\n", METRICS_SUM(bytes));
    metrics_head(out, "ringmail_messages_rejected_total", "counter",
                 "Senders, recipients and messages refused, by the stage of the refusal.");
    for (unsigned i = 0; i < METRICS_REJECT_STAGES; i++)
        metrics_printf(out, "ringmail_messages_rejected_total{stage=\"%s\"} %" PRIu64 "\n",
                       metrics_reject_stages[i], METRICS_SUM(rejected[i]));
}

static void metrics_tls(struct metrics_out *out)
{
    char group[100];
    unsigned labels = metrics_labels_count();
    metrics_head(out, "ringmail_tls_handshakes_total", "counter",
                 "Inbound TLS handshakes by version, key exchange group, certificate key type "
                 "and result.");
    for (unsigned v = 0; v < METRICS_TLS_VERSIONS; v++)
        for (unsigned g = 0; g < labels; g++)
            for (unsigned c = 0; c < METRICS_CERTS; c++)
                for (unsigned ok = 0; ok < 2; ok++) {
                    uint64_t n = METRICS_SUM(tls[v][g][c][ok]);
                    if (!n)
                        continue;
                    metrics_escape(metrics_label(g), group, sizeof(group));
                    metrics_printf(out,
                                   "ringmail_tls_handshakes_total{version=\"%s\",group=\"%s\","
                                   "cert=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                                   metrics_tls_versions[v], group, metrics_certs[c],
                                   ok ? "ok" : "failed", n);
                }
}

static void metrics_histogram(struct metrics_out *out, const struct metrics_hist_def *def,
                              size_t offset)
{
    metrics_head(out, def->name, "histogram", def->help);
    uint64_t cumulative = 0;
    for (unsigned b = 0; b <= def->n; b++) {
        cumulative += metrics_sum(offset + offsetof(struct metrics_hist, buckets) +
                                  b * sizeof(metrics_value));
        if (b < def->n)
            metrics_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", def->name,
                           (double)def->bounds_ns[b] / 1e9, cumulative);
        else
            metrics_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", def->name, cumulative);
    }
    metrics_printf(out, "%s_sum %.9f\n%s_count %" PRIu64 "\n", def->name,
                   (double)metrics_sum(offset + offsetof(struct metrics_hist, sum_ns)) / 1e9,
                   def->name, cumulative);
}

static void metrics_queue(struct metrics_out *out)
{
    char mailer[100];
    unsigned labels = metrics_labels_count();
    metrics_head(out, "ringmail_queue_messages", "gauge",
                 "Messages in the queue: in a delivery attempt (active) or waiting for one.");
    for (unsigned s = 0; s < METRICS_QUEUE_STATES; s++)
        metrics_printf(out, "ringmail_queue_messages{state=\"%s\"} %" PRIu64 "\n",
                       metrics_queue_states[s], METRICS_SUM(queue[s]));
    metrics_head(out, "ringmail_deliveries_total", "counter",
                 "Recipient delivery outcomes by result and mailer (the log's mailer=).");
    for (unsigned r = 0; r < METRICS_DELIVERY_RESULTS; r++)
        for (unsigned m = 0; m < labels; m++) {
            uint64_t n = METRICS_SUM(deliveries[r][m]);
            if (!n)
                continue;
            metrics_escape(metrics_label(m), mailer, sizeof(mailer));
            metrics_printf(out,
                           "ringmail_deliveries_total{result=\"%s\",mailer=\"%s\"} %" PRIu64 "\n",
                           metrics_delivery_results[r], mailer, n);
        }
}

int metrics_render(struct buf *b)
{
    struct metrics_out o = {b, false}, *out = &o;
    char version[140];
    metrics_escape(metrics_version, version, sizeof(version));
    metrics_head(out, "ringmail_build_info", "gauge", "The running ringmaild's version.");
    metrics_printf(out, "ringmail_build_info{version=\"%s\"} 1\n", version);
    metrics_head(out, "ringmail_start_time_seconds", "gauge",
                 "When the engine started, in seconds since the Unix epoch.");
    metrics_printf(out, "ringmail_start_time_seconds %.3f\n", metrics_start_time);
    metrics_connections(out);
    metrics_smtp(out);
    metrics_tls(out);
    metrics_histogram(out, &metrics_handshake_cpu_def,
                      offsetof(struct metrics_block, handshake_cpu));
    metrics_histogram(out, &metrics_commit_def, offsetof(struct metrics_block, commit));
    metrics_queue(out);
    return o.failed ? -1 : 0;
}
