/* The counters (util/metrics.h) and their exposition: what each counting call adds, the
 * sums over workers, cumulative histograms, label escaping and the interned labels' limit,
 * and that a thread with no block counts nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"
#include "util/metrics.h"

static struct buf out;

static int setup(void **state)
{
    (void)state;
    static const char *const names[] = {"MTA", "MSA \"587\""};
    return metrics_setup(2, names, 2, "1.2.3");
}

static int teardown(void **state)
{
    (void)state;
    buf_free(&out);
    metrics_teardown();
    return 0;
}

/* The exposition as a C string. */
static const char *render(void)
{
    buf_free(&out);
    assert_int_equal(metrics_render(&out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    return out.data;
}

static void has(const char *line)
{
    char want[600];
    snprintf(want, sizeof(want), "\n%s\n", line);
    if (!strstr(render(), want))
        fail_msg("no line '%s' in:\n%s", line, out.data);
}

static void *unattached(void *arg)
{
    (void)arg;
    metrics_message_accepted(1000);
    metrics_command("MAIL");
    return NULL;
}

static void test_counts_summed_over_workers(void **state)
{
    (void)state;
    metrics_worker_attach(0);
    metrics_connection(0, METRICS_CONN_ACCEPTED);
    metrics_connection(1, METRICS_CONN_RATE);
    metrics_connection(METRICS_LISTENER_LOCAL, METRICS_CONN_ACCEPTED);
    metrics_connection(0, METRICS_CONN_THROTTLED);
    metrics_connection_open(1);
    metrics_command("EHLO");
    metrics_command(NULL);
    metrics_message_accepted(100);
    metrics_message_rejected(METRICS_REJECT_RCPT);
    metrics_queue_set(METRICS_QUEUE_WAITING, 7);
    metrics_worker_attach(1);
    metrics_connection(0, METRICS_CONN_ACCEPTED);
    metrics_connection_open(1);
    metrics_connection_open(-1);
    metrics_command("EHLO");
    metrics_message_accepted(50);
    metrics_queue_set(METRICS_QUEUE_ACTIVE, 2);
    metrics_queue_set(METRICS_QUEUE_WAITING, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, unattached, NULL), 0);
    pthread_join(t, NULL);

    has("ringmail_build_info{version=\"1.2.3\"} 1");
    has("ringmail_connections_total{listener=\"MTA\",result=\"accepted\"} 2");
    has("ringmail_connections_total{listener=\"MSA \\\"587\\\"\",result=\"accepted\"} 0");
    has("ringmail_connections_total{listener=\"MSA \\\"587\\\"\",result=\"rate\"} 1");
    has("ringmail_connections_total{listener=\"local\",result=\"accepted\"} 1");
    has("ringmail_connections_throttled_total{listener=\"MTA\"} 1");
    assert_null(strstr(render(), "result=\"max_connections\""));
    has("ringmail_connections_open 1");
    has("ringmail_smtp_commands_total{verb=\"EHLO\"} 2");
    has("ringmail_smtp_commands_total{verb=\"unknown\"} 1");
    has("ringmail_smtp_commands_total{verb=\"MAIL\"} 0");
    has("ringmail_messages_accepted_total 2");
    has("ringmail_messages_accepted_bytes_total 150");
    has("ringmail_messages_rejected_total{stage=\"rcpt\"} 1");
    has("ringmail_queue_messages{state=\"waiting\"} 8");
    has("ringmail_queue_messages{state=\"active\"} 2");

    struct metrics_totals t0;
    metrics_totals(&t0);
    assert_int_equal(t0.messages_accepted, 2);
    assert_int_equal(t0.connections_open, 1);
    assert_int_equal(t0.queue_size, 10);
}

static void test_replies_by_last_line(void **state)
{
    (void)state;
    metrics_worker_attach(0);
    const char *ehlo = "250-mx.example Hello\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
    metrics_replies(ehlo, strlen(ehlo));
    const char *pipelined = "250 2.1.0 Ok\r\n550 5.7.1 <x@y>... Relaying denied\r\n354 Go\r\n";
    metrics_replies(pipelined, strlen(pipelined));
    metrics_replies("421 4.3.2 bye\r\n", 15);
    has("ringmail_smtp_replies_total{class=\"2xx\"} 2");
    has("ringmail_smtp_replies_total{class=\"3xx\"} 1");
    has("ringmail_smtp_replies_total{class=\"4xx\"} 1");
    has("ringmail_smtp_replies_total{class=\"5xx\"} 1");
}

static void test_histograms_cumulative(void **state)
{
    (void)state;
    metrics_worker_attach(0);
    metrics_spool_commit(200000);  /* 0.2 ms: the first bucket */
    metrics_spool_commit(3000000); /* 3 ms */
    metrics_worker_attach(1);
    metrics_spool_commit(9000000000); /* 9 s: only +Inf */
    has("ringmail_spool_commit_seconds_bucket{le=\"0.00025\"} 1");
    has("ringmail_spool_commit_seconds_bucket{le=\"0.0025\"} 1");
    has("ringmail_spool_commit_seconds_bucket{le=\"0.005\"} 2");
    has("ringmail_spool_commit_seconds_bucket{le=\"5\"} 2");
    has("ringmail_spool_commit_seconds_bucket{le=\"+Inf\"} 3");
    has("ringmail_spool_commit_seconds_count 3");
    has("ringmail_spool_commit_seconds_sum 9.003200000");
}

static void test_tls_and_deliveries(void **state)
{
    (void)state;
    metrics_worker_attach(1);
    metrics_tls_handshake("TLSv1.3", "X25519", "ECDSA-P256", true, 400000);
    metrics_tls_handshake("TLSv1.2", "secp384r1", "RSA-2048", true, 2000000);
    metrics_tls_handshake(NULL, NULL, NULL, false, 50000);
    metrics_delivery(METRICS_DELIVERY_SENT, "esmtp");
    metrics_delivery(METRICS_DELIVERY_BOUNCED, "local");
    metrics_delivery(METRICS_DELIVERY_SENT, "esmtp");
    has("ringmail_tls_handshakes_total{version=\"TLSv1.3\",group=\"X25519\",cert=\"ECDSA\","
        "result=\"ok\"} 1");
    has("ringmail_tls_handshakes_total{version=\"TLSv1.2\",group=\"secp384r1\",cert=\"RSA\","
        "result=\"ok\"} 1");
    has("ringmail_tls_handshakes_total{version=\"other\",group=\"none\",cert=\"none\","
        "result=\"failed\"} 1");
    has("ringmail_tls_handshake_cpu_seconds_count 3");
    has("ringmail_tls_handshake_cpu_seconds_bucket{le=\"0.0005\"} 2");
    has("ringmail_deliveries_total{result=\"sent\",mailer=\"esmtp\"} 2");
    has("ringmail_deliveries_total{result=\"bounced\",mailer=\"local\"} 1");
    assert_null(strstr(render(), "result=\"deferred\""));

    /* past the table's size, new names are counted as "other" */
    char name[32];
    for (int i = 0; i < 80; i++) {
        snprintf(name, sizeof(name), "mailer%d", i);
        metrics_delivery(METRICS_DELIVERY_DEFERRED, name);
    }
    has("ringmail_deliveries_total{result=\"deferred\",mailer=\"mailer0\"} 1");
    assert_null(strstr(render(), "mailer=\"mailer79\""));
    assert_non_null(strstr(render(), "{result=\"deferred\",mailer=\"other\"}"));
}

/* The thread CPU clock (a system call) is read only while something serves the values. */
static void test_cpu_clock_only_when_served(void **state)
{
    (void)state;
    metrics_set_served(false);
    assert_int_equal(metrics_thread_cpu_ns(), 0);
    metrics_set_served(true);
    assert_true(metrics_thread_cpu_ns() > 0); /* this thread has run already */
    metrics_set_served(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_summed_over_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replies_by_last_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histograms_cumulative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_and_deliveries, setup, teardown),
        cmocka_unit_test(test_cpu_clock_only_when_served),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
