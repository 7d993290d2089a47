/* smtp_server: timeouts per phase, error and bad-recipient throttling, held input. */
#include "smtp_server_harness.h"

static const char *const TIMEOUT_REPLY =
    "421 4.4.2 mx.test Timeout waiting for input; closing connection\r\n";

/* After `input`, the deadline is `ms` away; one ms before it nothing happens, at it the
 * session times out. */
static void check_phase(const char *input, uint32_t ms)
{
    struct h *h = h_new(NULL);
    h_feed(h, input);
    h_clear(h);
    uint64_t start = h->now;
    assert_int_equal(smtp_server_deadline(h->s), start + ms);
    smtp_server_tick(h->s, start + ms - 1);
    h_expect(h, "");
    smtp_server_tick(h->s, start + ms);
    h_expect(h, TIMEOUT_REPLY);
    assert_int_equal(h->n_close, 1);
    assert_non_null(strstr(h->events, "CLOSE timeout\n"));
    assert_int_equal(smtp_server_deadline(h->s), 0);
    h_free(h);
}

static void test_timeouts_per_phase(void **state)
{
    (void)state;
    check_phase("", 1001);
    check_phase("EHLO c.example\r\n", 1002);
    check_phase("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n", 1003);
    check_phase("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\n", 1004);
    check_phase("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n",
                1005);
    check_phase("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n"
                "Subject: x\r\n",
                1006);
    check_phase("EHLO c.example\r\nRSET\r\n", 1008);
    check_phase("EHLO c.example\r\nNOOP\r\n", 1010);
    check_phase("EHLO c.example\r\nXYZZY\r\n", 1010); /* refused commands count as misc */
    check_phase("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\n"
                "BDAT 10\r\nabc",
                1006);
}

static void test_timeout_datafinal_and_quit(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feed(h, "DATA\r\nx\r\n.\r\n");
    h_commit(h, true);
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1007);
    h_feed(h, "QUIT\r\n");
    h_clear(h);
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1009);
    smtp_server_tick(h->s, h->now + 1009);
    h_expect(h, ""); /* after 221 only the close is repeated */
    h_expect_events(h, "CLOSE timeout\n");
    h_free(h);
}

static void test_timeout_inside_message_aborts(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feed(h, "DATA\r\nhalf a message");
    h_clear(h);
    h->now += 500;
    h_feed(h, " and more"); /* data restarts the datablock wait */
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1006);
    smtp_server_tick(h->s, h->now + 1006);
    h_expect(h, TIMEOUT_REPLY);
    h_expect_events(h, "DATA_ABORT 421 4.4.2 mx.test Timeout waiting for input; closing "
                       "connection\nCLOSE timeout\n");
    h_free(h);
}

/* Postfix's smtpd_min_data_rate: inside DATA and BDAT the deadline is not restarted by every
 * read; a read of N octets adds N / min_data_rate seconds to what remained of it, never past
 * now + datablock. */
#define RATE_DATABLOCK 10000
#define RATE_BPS       100 /* 10 ms of credit per octet */

static struct h *h_rate(void)
{
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.timeouts.datablock = RATE_DATABLOCK;
    set.limits.min_data_rate = RATE_BPS;
    set.limits.max_message_size = 0;
    struct h *h = h_new(&set);
    h_envelope(h);
    return h;
}

/* One octet a second, ticking the clock first as the daemon does; returns how long the
 * client held on (0 if it was never cut). */
static uint64_t trickle(struct h *h, const char *octet, unsigned seconds)
{
    uint64_t start = h->now;
    for (unsigned i = 0; i < seconds && !h->n_close; i++) {
        h->now += 1000;
        smtp_server_tick(h->s, h->now);
        if (!h->n_close)
            h_feedn(h, octet, 1);
    }
    return h->n_close ? h->now - start : 0;
}

static void test_min_data_rate_cuts_a_trickle(void **state)
{
    (void)state;
    struct h *h = h_rate();
    h_feed(h, "DATA\r\n");
    h_feed(h, "S"); /* the first data starts the clock: datablock from now */
    assert_int_equal(smtp_server_deadline(h->s), h->now + RATE_DATABLOCK);
    h_clear(h);
    uint64_t held = trickle(h, "x", 3600);
    /* about datablock, plus 10 ms per octet sent */
    assert_true(held >= RATE_DATABLOCK && held <= RATE_DATABLOCK + 1000);
    h_expect(h, "421 4.4.2 mx.test Timeout waiting for input; closing connection\r\n");
    assert_int_equal(h->n_abort, 1);
    h_free(h);
}

static void test_min_data_rate_arithmetic(void **state)
{
    (void)state;
    struct h *h = h_rate();
    h_feed(h, "DATA\r\n");
    uint64_t t0 = h->now += 50;
    h_feed(h, "Subject: x\r\n");
    assert_int_equal(smtp_server_deadline(h->s), t0 + RATE_DATABLOCK);
    h->now += 4000;
    char block[1000];
    memset(block, 'a', sizeof(block));
    h_feedn(h, block, 50); /* 500 ms added to what remained */
    assert_int_equal(smtp_server_deadline(h->s), t0 + RATE_DATABLOCK + 500);
    h_feedn(h, block, 1); /* 10 ms */
    h_feedn(h, block, 1);
    assert_int_equal(smtp_server_deadline(h->s), t0 + RATE_DATABLOCK + 520);
    h->now += 1000;
    h_feedn(h, block, sizeof(block)); /* 10 s of credit, but never past now + datablock */
    assert_int_equal(smtp_server_deadline(h->s), h->now + RATE_DATABLOCK);
    h_free(h);

    /* a rate that does not divide 1000: no credit is lost to rounding */
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.timeouts.datablock = RATE_DATABLOCK;
    set.limits.min_data_rate = 3;
    h = h_new(&set);
    h_envelope(h);
    h_feed(h, "DATA\r\nx");
    t0 = h->now;
    h->now += 5000;
    h_feed(h, "a");
    h_feed(h, "b");
    h_feed(h, "c");
    assert_int_equal(smtp_server_deadline(h->s), t0 + RATE_DATABLOCK + 1000);
    h_free(h);
}

static void test_min_data_rate_fast_client_never_cut(void **state)
{
    (void)state;
    struct h *h = h_rate();
    h_feed(h, "DATA\r\n");
    char block[200]; /* 200 octets a second: twice the minimum rate */
    memset(block, 'a', sizeof(block));
    memcpy(block + sizeof(block) - 2, "\r\n", 2);
    for (int i = 0; i < 3600; i++) {
        h->now += 1000;
        smtp_server_tick(h->s, h->now);
        h_feedn(h, block, sizeof(block));
    }
    assert_int_equal(h->n_close, 0);
    assert_int_equal(smtp_server_deadline(h->s), h->now + RATE_DATABLOCK);
    h_feed(h, ".\r\n");
    assert_int_equal(h->n_data_end, 1);
    h_free(h);
}

/* A BDAT message has one data clock across its chunks: a new BDAT command does not restart
 * it, so one octet per chunk buys no more than one octet per read. */
static void test_min_data_rate_bdat_chunks(void **state)
{
    (void)state;
    struct h *h = h_rate();
    uint64_t start = h->now;
    for (int i = 0; i < 3600 && !h->n_close; i++) {
        h->now += 1000;
        smtp_server_tick(h->s, h->now);
        if (!h->n_close)
            h_feed(h, "BDAT 1\r\nx");
    }
    assert_int_equal(h->n_close, 1);
    assert_true(h->now - start <= RATE_DATABLOCK + 2000);
    assert_non_null(strstr(h->events, "DATA_ABORT 421 4.4.2"));
    h_free(h);
}

/* The octets of a refused BDAT (no MAIL) are read too: the same clock applies. */
static void test_min_data_rate_refused_bdat(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.timeouts.datablock = RATE_DATABLOCK;
    set.limits.min_data_rate = RATE_BPS;
    struct h *h = h_new(&set);
    h_feed(h, "EHLO c.example\r\nBDAT 1000000\r\n");
    h_clear(h);
    uint64_t held = trickle(h, "x", 3600);
    assert_true(held >= RATE_DATABLOCK && held <= RATE_DATABLOCK + 1000);
    h_free(h);
}

/* min_data_rate 0: the old rule, every read restarts datablock. */
static void test_min_data_rate_off(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.timeouts.datablock = RATE_DATABLOCK;
    struct h *h = h_new(&set);
    h_envelope(h);
    h_feed(h, "DATA\r\n");
    assert_int_equal(trickle(h, "x", 100), 0);
    assert_int_equal(smtp_server_deadline(h->s), h->now + RATE_DATABLOCK);
    h_free(h);
}

static void test_command_timeout_caps(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.timeouts.command = 500;
    set.timeouts.misc = 0;
    struct h *h = h_new(&set);
    assert_int_equal(smtp_server_deadline(h->s), h->now + 500);
    h_feed(h, "NOOP\r\n"); /* misc 0: the command timeout alone */
    assert_int_equal(smtp_server_deadline(h->s), h->now + 500);
    h_free(h);
    set.timeouts.command = 0;
    h = h_new(&set);
    h_feed(h, "NOOP\r\n"); /* both 0: no timeout */
    assert_int_equal(smtp_server_deadline(h->s), 0);
    h_free(h);
}

static void test_partial_line_does_not_extend_timeout(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    uint64_t deadline = smtp_server_deadline(h->s);
    h->now += 900;
    h_feed(h, "NO"); /* a slow client trickling a command gains nothing */
    assert_int_equal(smtp_server_deadline(h->s), deadline);
    h_free(h);
}

static void test_error_throttle_and_drop(void **state)
{
    (void)state;
    struct h *h = h_new(NULL); /* error_throttle 5, max_errors 10 */
    h_feed(h, "X1\r\nX2\r\nX3\r\nX4\r\nX5\r\n");
    assert_int_equal(h->n_reply_calls, 5);
    h_clear(h);
    /* the sixth error's reply waits a second, and so does everything after it */
    h_feed(h, "X6\r\nNOOP\r\n");
    h_expect(h, "");
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1000);
    smtp_server_tick(h->s, h->now + 999);
    h_expect(h, "");
    h->now += 1000;
    smtp_server_tick(h->s, h->now);
    h_expect(h, "500 5.5.1 Command unrecognized: \"X6\"\r\n250 2.0.0 OK\r\n");
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1010);
    for (int i = 7; i <= 9; i++) {
        h_feed(h, "BAD\r\n");
        h->now += 1000;
        smtp_server_tick(h->s, h->now);
    }
    h_clear(h);
    h_feed(h, "BAD\r\nNOOP\r\n"); /* the tenth: answered, then dropped at once */
    h_expect(h, "500 5.5.1 Command unrecognized: \"BAD\"\r\n"
                "421 4.7.0 mx.test Too many errors; closing connection\r\n");
    assert_non_null(strstr(h->events, "CLOSE too many errors\n"));
    h_free(h);
}

/* RFC 5321 4.5.3.1.10: a client over the recipient limit sends the rest in a later
 * transaction. 452 for too many recipients is no error: a pipelining sender with many
 * recipients is neither slowed down nor dropped, and the first batch is delivered. */
static void test_too_many_recipients_is_not_an_error(void **state)
{
    (void)state;
    struct h *h = h_new(NULL); /* max_recipients 5, error_throttle 5, max_errors 10 */
    char input[2048] = "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n";
    for (int i = 1; i <= 20; i++) {
        size_t used = strlen(input);
        snprintf(input + used, sizeof(input) - used, "RCPT TO:<u%d@mx.test>\r\n", i);
    }
    strcat(input, "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
    h_feed(h, input);
    assert_int_equal(h->n_close, 0);
    assert_int_equal(h->n_data_end, 1);
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 5);
    const char *p = h->replies;
    for (int i = 0; i < 15; i++) {
        p = strstr(p, "\r\n452 4.5.3 Too many recipients\r\n");
        assert_non_null(p);
        p++;
    }
    assert_non_null(strstr(h->replies, "452 4.5.3 Too many recipients\r\n354 "));
    assert_non_null(
        strstr(h->events, "REJECT RCPT [<u20@mx.test>] 452 4.5.3 Too many recipients\n"));
    h_commit(h, true);
    assert_non_null(strstr(h->replies, "250 2.0.0 QID0001 Message accepted for delivery\r\n"));
    /* and the error count is untouched: five errors still go unpunished */
    h_clear(h);
    h_feed(h, "X1\r\nX2\r\nX3\r\nX4\r\nX5\r\nNOOP\r\n");
    assert_int_equal(h->n_reply_calls, 6);
    assert_int_equal(h->n_close, 0);
    h_free(h);
}

static void test_bad_rcpt_throttle(void **state)
{
    (void)state;
    struct h *h = h_new(NULL); /* bad_rcpt_throttle 3 */
    h_feed(h, "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<a@x.example>\r\n"
              "RCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\n");
    assert_non_null(strstr(h->replies, "<c@x.example>... Relaying denied\r\n"));
    h_clear(h);
    h_feed(h, "RCPT TO:<u@mx.test>\r\n");
    h_expect(h, "");
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1000);
    h->now += 1000;
    smtp_server_tick(h->s, h->now);
    h_expect(h, "250 2.1.5 <u@mx.test>... Recipient ok\r\n");
    h_free(h);
}

static void test_input_buffer_full_pauses(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.limits.max_input_buffer = 64;
    struct h *h = h_new(&set);
    h_envelope(h);
    assert_false(h_feed(h, "DATA\r\nx\r\n.\r\nNOOP\r\n"));
    /* waiting for the commit: held bytes ask for a pause at the limit, nothing dropped */
    char noop[6 * 20 + 1] = "";
    for (int i = 0; i < 20; i++)
        strcat(noop, "NOOP\r\n");
    assert_true(h_feed(h, noop));
    h_clear(h);
    h_commit(h, true);
    assert_int_equal(h->n_reply_calls, 22); /* 250 for the message, 21 NOOPs */
    h_free(h);
}

static void test_partial_line_never_pauses(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.limits.max_input_buffer = 4;
    struct h *h = h_new(&set);
    assert_false(h_feed(h, "NOOP nearly a whole line"));
    assert_false(h_feed(h, "\r"));
    h_feed(h, "\n");
    h_expect(h, "250 2.0.0 OK\r\n");
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeouts_per_phase),
        cmocka_unit_test(test_timeout_datafinal_and_quit),
        cmocka_unit_test(test_timeout_inside_message_aborts),
        cmocka_unit_test(test_min_data_rate_cuts_a_trickle),
        cmocka_unit_test(test_min_data_rate_arithmetic),
        cmocka_unit_test(test_min_data_rate_fast_client_never_cut),
        cmocka_unit_test(test_min_data_rate_bdat_chunks),
        cmocka_unit_test(test_min_data_rate_refused_bdat),
        cmocka_unit_test(test_min_data_rate_off),
        cmocka_unit_test(test_command_timeout_caps),
        cmocka_unit_test(test_partial_line_does_not_extend_timeout),
        cmocka_unit_test(test_error_throttle_and_drop),
        cmocka_unit_test(test_too_many_recipients_is_not_an_error),
        cmocka_unit_test(test_bad_rcpt_throttle),
        cmocka_unit_test(test_input_buffer_full_pauses),
        cmocka_unit_test(test_partial_line_never_pauses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
