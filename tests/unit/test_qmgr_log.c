/* The delivery log line, field by field as sendmail writes it (log analysers parse it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/qmgr_log.h"

static struct envelope test_env(struct envelope_rcpt *r)
{
    struct envelope e;
    memset(&e, 0, sizeof(e));
    e.created = 1000;
    e.size = 1234;
    e.attempts = 2;
    e.rcpts = r;
    e.n_rcpts = 1;
    return e;
}

static void test_delay(void **state)
{
    (void)state;
    char out[32];
    qmgr_log_delay(0, out, sizeof(out));
    assert_string_equal(out, "00:00:00");
    qmgr_log_delay(3725, out, sizeof(out));
    assert_string_equal(out, "01:02:05");
    qmgr_log_delay(2 * 86400 + 3 * 3600 + 4 * 60 + 5, out, sizeof(out));
    assert_string_equal(out, "2+03:04:05");
    qmgr_log_delay(-5, out, sizeof(out));
    assert_string_equal(out, "00:00:00");
}

static void test_lines(void **state)
{
    (void)state;
    struct envelope_rcpt r = {.addr = "bob@example.com"};
    struct envelope e = test_env(&r);
    char out[1024];
    qmgr_log_format("0aB", &e, "<bob@example.com>", NULL, "esmtp", "mx.example.com. [192.0.2.1]",
                    QMGR_LOG_SENT, "2.0.0", "Ok: queued as 4XYZ", 1004, 1005, out, sizeof(out));
    assert_string_equal(out, "0aB: to=<bob@example.com>, delay=00:00:05, xdelay=00:00:01, "
                             "mailer=esmtp, pri=211234, relay=mx.example.com. [192.0.2.1], "
                             "dsn=2.0.0, stat=Sent (Ok: queued as 4XYZ)");
    qmgr_log_format("0aB", &e, "<bob@example.com>", NULL, "esmtp", "", QMGR_LOG_DEFERRED, "4.4.1",
                    "Connection refused by mx.example.com.", 1000, 1000, out, sizeof(out));
    assert_string_equal(out, "0aB: to=<bob@example.com>, delay=00:00:00, xdelay=00:00:00, "
                             "mailer=esmtp, pri=211234, dsn=4.4.1, stat=Deferred: Connection "
                             "refused by mx.example.com.");
    /* a permanent failure in sendmail's words when it has them, else the reply */
    qmgr_log_format("0aB", &e, "<bob@example.com>", NULL, "esmtp", "", QMGR_LOG_FAILED, "5.1.1",
                    "550 5.1.1 <bob@example.com>... no such user", 1000, 1000, out, sizeof(out));
    assert_non_null(strstr(out, ", dsn=5.1.1, stat=User unknown"));
    qmgr_log_format("0aB", &e, "<bob@example.com>", NULL, "esmtp", "", QMGR_LOG_FAILED, "5.9.9",
                    "554 5.9.9 odd", 1000, 1000, out, sizeof(out));
    assert_non_null(strstr(out, ", dsn=5.9.9, stat=554 5.9.9 odd"));
    /* a target of a .forward: sendmail's to= form and its controlling address */
    qmgr_log_format("0aB", &e, "\"|/usr/bin/procmail\"", "<bob@example.com> (1000/100)", "prog",
                    NULL, QMGR_LOG_SENT, "2.0.0", "delivered", 1000, 1000, out, sizeof(out));
    assert_string_equal(out, "0aB: to=\"|/usr/bin/procmail\", ctladdr=<bob@example.com> "
                             "(1000/100), delay=00:00:00, xdelay=00:00:00, mailer=prog, "
                             "pri=211234, dsn=2.0.0, stat=Sent (delivered)");
    /* a local mailer's plain success is sendmail's "stat=Sent" */
    qmgr_log_format("0aB", &e, "\\bob", "<bob@example.com>", "local", NULL, QMGR_LOG_SENT, "2.0.0",
                    "Sent", 1000, 1000, out, sizeof(out));
    assert_non_null(strstr(out, ", dsn=2.0.0, stat=Sent"));
    assert_null(strstr(out, "stat=Sent ("));
}

/* The stat= value alone, as the qf's last reason takes it: the same words as the line. */
static void test_stat_text(void **state)
{
    (void)state;
    char out[256];
    assert_string_equal(qmgr_log_stat_text(QMGR_LOG_DEFERRED, "4.4.1",
                                           "Connection refused by mx.example.com.", out,
                                           sizeof(out)),
                        "Deferred: Connection refused by mx.example.com.");
    assert_string_equal(qmgr_log_stat_text(QMGR_LOG_SENT, "2.0.0", "Ok", out, sizeof(out)),
                        "Sent (Ok)");
    assert_string_equal(qmgr_log_stat_text(QMGR_LOG_FAILED, "5.1.1", "550 x", out, sizeof(out)),
                        "User unknown");
}

static void test_lifetime(void **state)
{
    (void)state;
    assert_string_equal(qmgr_log_lifetime(5 * 86400), "5 days");
    assert_string_equal(qmgr_log_lifetime(4 * 3600), "4 hours");
    assert_string_equal(qmgr_log_lifetime(86400), "1 day");
    assert_string_equal(qmgr_log_lifetime(90), "90 seconds");
    assert_string_equal(qmgr_log_lifetime(120), "2 minutes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_stat_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
