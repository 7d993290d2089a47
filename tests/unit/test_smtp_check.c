/*
 * tests/unit/test_smtp_check.c — MAIL answered later (smtp/smtp_server_check.c): check_mail
 * says "pending", the server holds pipelined input until smtp_server_check_done(), then
 * answers MAIL and runs what was held, in order.
 */
#include "smtp_server_harness.h"

static int pending_calls;

static int check_pending(void *arg, const struct smtp_path *sender,
                         const struct smtp_mail_params *params, struct smtp_addr_error *err)
{
    (void)arg;
    (void)sender;
    (void)params;
    (void)err;
    pending_calls++;
    return 1;
}

static struct h *h_pending(void)
{
    struct h *h = h_new(NULL);
    h->io.check_mail = check_pending;
    pending_calls = 0;
    h_feed(h, "EHLO client.example\r\n");
    h_clear(h);
    return h;
}

/* Accepted later: 250 then the held RCPT's reply, in order; the phase timeout runs. */
static void test_pending_then_accepted(void **state)
{
    (void)state;
    struct h *h = h_pending();
    h_feed(h, "MAIL FROM:<a@b.example> SIZE=100\r\nRCPT TO:<u@mx.test>\r\n");
    h_expect(h, "");
    h_expect_events(h, "");
    assert_int_equal(pending_calls, 1);
    assert_null(smtp_server_transaction(h->s)->sender);
    assert_int_not_equal(smtp_server_deadline(h->s), 0);
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, "250 2.1.0 <a@b.example>... Sender ok\r\n"
                "250 2.1.5 <u@mx.test>... Recipient ok\r\n");
    h_expect_events(h, "MAIL a@b.example\nRCPT u@mx.test\n");
    assert_int_equal(smtp_server_transaction(h->s)->mail_params.size, 100);
    /* a second verdict is ignored */
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, "");
    h_free(h);
}

/* Refused later: the refusal as a synchronous check_mail gives it, no client error; the
 * held RCPT then needs MAIL. */
static void test_pending_then_refused(void **state)
{
    (void)state;
    struct h *h = h_pending();
    h_feed(h, "MAIL FROM:<a@nowhere.example>\r\nRCPT TO:<u@mx.test>\r\n");
    struct smtp_addr_error err = {
        553, "5.1.8",
        "<a@nowhere.example>... Domain of sender address a@nowhere.example does not exist"};
    smtp_server_check_done(h->s, &err, h->now);
    h_expect(h, "553 5.1.8 <a@nowhere.example>... Domain of sender address a@nowhere.example "
                "does not exist\r\n"
                "503 5.0.0 Need MAIL before RCPT\r\n");
    assert_non_null(strstr(h->events, "REJECT MAIL [a@nowhere.example] 553 5.1.8 "));
    assert_null(smtp_server_transaction(h->s)->sender);
    h_free(h);
}

/* The client goes away (or the timeout closes) while the check is pending: nothing leaks,
 * a late verdict does nothing. */
static void test_pending_then_gone(void **state)
{
    (void)state;
    struct h *h = h_pending();
    h_feed(h, "MAIL FROM:<a@b.example> ENVID=x\r\n");
    h->now = smtp_server_deadline(h->s);
    smtp_server_tick(h->s, h->now);
    assert_int_equal(h->n_close, 1);
    h_clear(h);
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, "");
    h_free(h);

    h = h_pending();
    h_feed(h, "MAIL FROM:<a@b.example>\r\n");
    smtp_server_eof(h->s);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_then_accepted),
        cmocka_unit_test(test_pending_then_refused),
        cmocka_unit_test(test_pending_then_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
