/* mailq's formatters on envelopes built in memory: sendmail -bp's exact layout (widths,
 * tabs, the reason line, open recipients only, the held marker, prtstr's cuts and octal
 * escapes), sendmail's priority order, and the JSON document's key pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/mailq.h"

static struct envelope_rcpt rcpts_a[] = {
    {.addr = "bob@example.org", .state = ENV_RCPT_PENDING},
    {.addr = "carol@example.net", .state = ENV_RCPT_DELIVERED},
    {.addr = "dave@example.org", .orcpt = "rfc822;dave@example.org", .state = ENV_RCPT_WARNED},
    {.addr = "erin@example.org", .state = ENV_RCPT_FAILED},
};

/* 1700000000 is Tue Nov 14 22:13:20 2023 UTC. */
static struct envelope msg_a = {
    .qid = "0a1B2c3D4e5F6g7H",
    .sender = "alice@example.com",
    .created = 1700000000,
    .size = 1234,
    .attempts = 2,
    .next_attempt = 1700003600,
    .last_reason = "Deferred: 451 4.3.0 try later",
    .rcpts = rcpts_a,
    .n_rcpts = 4,
};

static struct envelope_rcpt rcpts_b[] = {{.addr = "x@example.org", .state = ENV_RCPT_PENDING}};

static struct envelope msg_b = {
    .qid = "0a1B2c3D4e5F6g7J",
    .sender = "",
    .created = 1700000060,
    .size = 99,
    .body = 8,
    .next_attempt = ENVELOPE_NEXT_HELD,
    .rcpts = rcpts_b,
    .n_rcpts = 1,
};

static int setup_utc(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

static char *capture_text(const struct envelope *const *msgs, size_t n)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    assert_non_null(f);
    mailq_print_text(f, "/var/spool/ringmail", msgs, n);
    fclose(f);
    return s;
}

static char *capture_json(const struct envelope *const *msgs, size_t n)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    assert_non_null(f);
    mailq_print_json(f, msgs, n);
    fclose(f);
    return s;
}

static void test_empty_queue(void **state)
{
    (void)state;
    char *s = capture_text(NULL, 0);
    assert_string_equal(s, "/var/spool/ringmail is empty\n\t\tTotal requests: 0\n");
    free(s);
}

static void test_sendmail_layout(void **state)
{
    (void)state;
    const struct envelope *msgs[] = {&msg_a, &msg_b};
    char *s = capture_text(msgs, 2);
    assert_string_equal(
        s, "\t\t/var/spool/ringmail (2 requests)\n"
           "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"
           /* open recipients only; the reason indented as sendmail's "\n    %10.10s   (" */
           "0a1B2c3D4e5F6g7H     1234 Tue Nov 14 22:13 <alice@example.com>\n"
           "                 (Deferred: 451 4.3.0 try later)\n"
           "\t\t\t\t\t <bob@example.org>\n"
           "\t\t\t\t\t <dave@example.org>\n"
           /* held: 'X'; the null sender as <>; BODY=8BITMIME shown even without a reason */
           "0a1B2c3D4e5F6g7JX      99 Tue Nov 14 22:14 <>\n"
           "      8BITMIME\n"
           "\t\t\t\t\t <x@example.org>\n"
           "\t\tTotal requests: 2\n");
    free(s);
}

static void test_one_request_and_cuts(void **state)
{
    (void)state;
    struct envelope_rcpt r[] = {
        {.addr = "a-very-long-local-part-for-testing@sub.example.org", .state = 'P'}};
    char reason[200];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    struct envelope e = {
        .qid = "0a1B2c3D4e5F6g7K",
        /* 8 + 40 characters in brackets: cut at 39 columns; a backslash doubled, a
         * non-ASCII octet as \ooo */
        .sender = "b\\s\xc3\xa9@example.com",
        .created = 1700000000,
        .size = 123456789,
        .last_reason = reason,
        .rcpts = r,
        .n_rcpts = 1,
    };
    const struct envelope *msgs[] = {&e};
    char want[1024];
    snprintf(want, sizeof(want),
             "\t\t/q (1 request)\n"
             "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"
             "0a1B2c3D4e5F6g7K 123456789 Tue Nov 14 22:13 <b\\\\s\\303\\251@example.com>\n"
             "                 (%.60s)\n"
             "\t\t\t\t\t <a-very-long-local-part-for-testing@su\n"
             "\t\tTotal requests: 1\n",
             reason);
    char *t = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&t, &len);
    mailq_print_text(f, "/q", msgs, 1);
    fclose(f);
    assert_string_equal(t, want);
    free(t);
}

static void test_prtstr_drops_what_does_not_fit(void **state)
{
    (void)state;
    /* 37 printable columns then an octet that needs 4: sendmail's prtstr leaves it out */
    struct envelope e = {
        .qid = "0a1B2c3D4e5F6g7L",
        .sender = "abcdefghijklmnopqrstuvwxyz0123456789\x01tail",
        .created = 1700000000,
    };
    const struct envelope *msgs[] = {&e};
    char *s = capture_text(msgs, 1);
    assert_non_null(strstr(s, " <abcdefghijklmnopqrstuvwxyz0123456789\n"));
    free(s);
}

static void test_priority_order(void **state)
{
    (void)state;
    /* msg_a: 1234 + 4 * 30000 + 2 * 90000; msg_b: 99 + 30000 */
    assert_int_equal(mailq_priority(&msg_a), 1234 + 120000 + 180000);
    assert_int_equal(mailq_priority(&msg_b), 30099);
    const struct envelope *msgs[] = {&msg_a, &msg_b};
    mailq_sort(msgs, 2);
    assert_ptr_equal(msgs[0], &msg_b);
    assert_ptr_equal(msgs[1], &msg_a);
    /* equal priority: the older first */
    struct envelope older = msg_b, newer = msg_b;
    older.created = 10;
    newer.created = 20;
    const struct envelope *same[] = {&newer, &older};
    mailq_sort(same, 2);
    assert_ptr_equal(same[0], &older);
}

static void test_json(void **state)
{
    (void)state;
    const struct envelope *msgs[] = {&msg_a, &msg_b};
    char *s = capture_json(msgs, 2);
    assert_true(s[0] == '[');
    assert_non_null(strstr(s, "{\"qid\": \"0a1B2c3D4e5F6g7H\", \"size\": 1234, "
                              "\"created\": \"2023-11-14T22:13:20Z\", "
                              "\"created_unix\": 1700000000, \"sender\": \"alice@example.com\", "
                              "\"held\": false, \"attempts\": 2, "
                              "\"next_attempt\": \"2023-11-14T23:13:20Z\", "
                              "\"next_attempt_unix\": 1700003600, "
                              "\"last_reason\": \"Deferred: 451 4.3.0 try later\", "
                              "\"maildrop\": null, \"recipients\": ["));
    /* every recipient, with its state */
    assert_non_null(strstr(s, "{\"address\": \"carol@example.net\", \"state\": \"delivered\", "
                              "\"orcpt\": null}"));
    assert_non_null(strstr(s, "{\"address\": \"dave@example.org\", \"state\": \"warned\", "
                              "\"orcpt\": \"rfc822;dave@example.org\"}"));
    assert_non_null(strstr(s, "\"erin@example.org\", \"state\": \"failed\""));
    assert_non_null(strstr(s, "\"sender\": \"\", \"held\": true, \"attempts\": 0, "
                              "\"next_attempt\": null, \"next_attempt_unix\": null, "
                              "\"last_reason\": null"));
    assert_string_equal(s + strlen(s) - 4, "}\n]\n");
    free(s);

    struct envelope now = msg_b;
    now.next_attempt = 0;
    const struct envelope *due[] = {&now};
    s = capture_json(due, 1);
    assert_non_null(strstr(s, "\"held\": false, \"attempts\": 0, \"next_attempt\": null, "
                              "\"next_attempt_unix\": 0, "));
    free(s);

    char *empty = capture_json(NULL, 0);
    assert_string_equal(empty, "[]\n");
    free(empty);
}

static void test_json_escapes(void **state)
{
    (void)state;
    struct envelope_rcpt r[] = {{.addr = "\xe7\x94\xb0\xe4\xb8\xad@example.jp", .state = 'P'}};
    struct envelope e = {
        .qid = "0a1B2c3D4e5F6g7M",
        .sender = "q\"b\\s\x01\xff@x",
        .rcpts = r,
        .n_rcpts = 1,
    };
    const struct envelope *msgs[] = {&e};
    char *s = capture_json(msgs, 1);
    /* quote, backslash and control escaped; a stray octet becomes U+FFFD; UTF-8 kept */
    assert_non_null(strstr(s, "\"sender\": \"q\\\"b\\\\s\\u0001\\ufffd@x\""));
    assert_non_null(strstr(s, "\"address\": \"\xe7\x94\xb0\xe4\xb8\xad@example.jp\""));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_queue),
        cmocka_unit_test(test_sendmail_layout),
        cmocka_unit_test(test_one_request_and_cuts),
        cmocka_unit_test(test_prtstr_drops_what_does_not_fit),
        cmocka_unit_test(test_priority_order),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_escapes),
    };
    return cmocka_run_group_tests(tests, setup_utc, NULL);
}
