/* mailq's formatters on envelopes built in memory: sendmail -bp's exact layout (widths,
 * tabs, the reason line, open recipients only, the held marker, prtstr's cuts and octal
 * escapes, the maildrop's block), sendmail's priority order, and the JSON document's key
 * pieces; and the maildrop's files read as envelopes (spool_read_maildrop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/maildrop.h"
#include "cli/mailq.h"
#include "cli/spool_read.h"

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

static char *capture_blocks(bool json, const struct mailq_block *blocks, size_t n)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    assert_non_null(f);
    if (json)
        mailq_print_json(f, blocks, n);
    else
        mailq_print_text(f, blocks, n);
    fclose(f);
    return s;
}

static char *capture_text(const struct envelope *const *msgs, size_t n)
{
    struct mailq_block b = {.dir = "/var/spool/ringmail", .msgs = msgs, .n = n};
    return capture_blocks(false, &b, 1);
}

static char *capture_json(const struct envelope *const *msgs, size_t n)
{
    struct mailq_block b = {.dir = "/var/spool/ringmail", .msgs = msgs, .n = n};
    return capture_blocks(true, &b, 1);
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
    struct mailq_block b = {.dir = "/q", .msgs = msgs, .n = 1};
    char *t = capture_blocks(false, &b, 1);
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
    assert_non_null(strstr(s, "{\"qid\": \"0a1B2c3D4e5F6g7H\", \"queue\": \"deferred\", "
                              "\"size\": 1234, "
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
    assert_non_null(strstr(s, "\"qid\": \"0a1B2c3D4e5F6g7J\", \"queue\": \"hold\""));
    assert_non_null(strstr(s, "\"sender\": \"\", \"held\": true, \"attempts\": 0, "
                              "\"next_attempt\": null, \"next_attempt_unix\": null, "
                              "\"last_reason\": null"));
    assert_string_equal(s + strlen(s) - 4, "}\n]\n");
    free(s);

    struct envelope now = msg_b;
    now.next_attempt = 0;
    const struct envelope *due[] = {&now};
    s = capture_json(due, 1);
    assert_non_null(strstr(s, "\"queue\": \"active\""));
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

/* The maildrop as sendmail lists a second queue directory: its own block, one total. */
static void test_maildrop_block(void **state)
{
    (void)state;
    struct envelope_rcpt r[] = {{.addr = "root", .state = ENV_RCPT_PENDING}};
    struct envelope dropped = {
        .qid = "0123456789abcdef",
        .sender = "nobody@mx.test",
        .created = 1700000000,
        .size = 42,
        .maildrop = "1700000000.4242.0123456789abcdef",
        .rcpts = r,
        .n_rcpts = 1,
    };
    const struct envelope *spool[] = {&msg_b}, *drop[] = {&dropped};
    struct mailq_block b[] = {
        {.dir = "/var/spool/ringmail", .msgs = spool, .n = 1},
        {.dir = "/var/spool/maildrop", .maildrop = true, .msgs = drop, .n = 1},
    };
    char *s = capture_blocks(false, b, 2);
    assert_string_equal(
        s, "\t\t/var/spool/ringmail (1 request)\n"
           "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"
           "0a1B2c3D4e5F6g7JX      99 Tue Nov 14 22:14 <>\n"
           "      8BITMIME\n"
           "\t\t\t\t\t <x@example.org>\n"
           "\t\t/var/spool/maildrop (1 request)\n"
           "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"
           "0123456789abcdef       42 Tue Nov 14 22:13 <nobody@mx.test>\n"
           "\t\t\t\t\t <root>\n"
           "\t\tTotal requests: 2\n");
    free(s);
    /* an empty spool keeps its "is empty" line */
    b[0].n = 0;
    s = capture_blocks(false, b, 2);
    const char *head = "/var/spool/ringmail is empty\n\t\t/var/spool/maildrop (1 request)\n";
    assert_true(strncmp(s, head, strlen(head)) == 0);
    assert_non_null(strstr(s, "\t\tTotal requests: 1\n"));
    free(s);
    s = capture_blocks(true, b, 2);
    assert_non_null(strstr(s, "{\"qid\": \"0123456789abcdef\", \"queue\": \"maildrop\", "));
    assert_non_null(strstr(s, "\"maildrop\": \"1700000000.4242.0123456789abcdef\""));
    free(s);
}

static void write_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* spool_read_maildrop: the files as --pickup will submit them, the unfinished and the
 * broken ones left out (the broken counted). */
static void test_read_maildrop(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_mailq.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *rcpts[] = {"bob@example.org", "carol"};
    struct maildrop_envelope m = {.sender = "", .body = "8BITMIME", .rcpts = rcpts, .n_rcpts = 2};
    struct buf head;
    buf_init(&head, 0);
    char err[256];
    assert_int_equal(maildrop_format_head(&m, &head, err, sizeof(err)), 0);
    buf_append(&head, "Subject: x\r\n\r\nbody\r\n", 21);
    const char *name = "1700000000.4242.0123456789abcdef";
    write_file(dir, name, head.data, head.len);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct timespec times[2] = {{.tv_sec = 1700000000}, {.tv_sec = 1700000000}};
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
    m.sender = "<>";
    m.body = NULL;
    head.len = 0;
    assert_int_equal(maildrop_format_head(&m, &head, err, sizeof(err)), 0);
    write_file(dir, "1700000001.4243.fedcba9876543210", head.data, head.len);
    write_file(dir, ".tmp-1700000002.4244.0000000000000000", "RINGMAIL", 8);
    write_file(dir, "1700000003.4245.1111111111111111", "not a maildrop file\n", 20);
    /* a second link to a maildrop file: never picked up, so not listed either */
    write_file(dir, ".tmp-linked", head.data, head.len);
    char from[4096], to[4096];
    snprintf(from, sizeof(from), "%s/.tmp-linked", dir);
    snprintf(to, sizeof(to), "%s/1700000004.4246.2222222222222222", dir);
    assert_int_equal(link(from, to), 0);
    buf_free(&head);

    struct spool_read_list l;
    assert_int_equal(spool_read_maildrop(dir, "mx.test", &l, err, sizeof(err)), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.damaged, 2);
    const struct envelope *e = &l.msgs[0].env;
    assert_string_equal(e->qid, "0123456789abcdef");
    assert_string_equal(e->maildrop, name);
    struct passwd *pw = getpwuid(getuid());
    assert_non_null(pw);
    char want[300];
    snprintf(want, sizeof(want), "%s@mx.test", pw->pw_name); /* empty S: the owner's */
    assert_string_equal(e->sender, want);
    assert_int_equal(e->created, 1700000000);
    assert_int_equal(e->size, 21);
    assert_int_equal(e->body, 8);
    assert_int_equal(e->n_rcpts, 2);
    assert_string_equal(e->rcpts[1].addr, "carol");
    assert_int_equal(e->rcpts[1].state, ENV_RCPT_PENDING);
    assert_string_equal(l.msgs[1].env.sender, ""); /* S<>: the null sender */
    assert_int_equal(l.msgs[1].env.size, 0);
    spool_read_list_free(&l);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(spool_read_maildrop(dir, "mx.test", &l, err, sizeof(err)), -1);
    assert_int_equal(errno, ENOENT);
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
        cmocka_unit_test(test_maildrop_block),
        cmocka_unit_test(test_read_maildrop),
    };
    return cmocka_run_group_tests(tests, setup_utc, NULL);
}
