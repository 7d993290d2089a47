/* qshape's table on envelopes built in memory: the bucket edges, the column widths (as
 * wide as the heading or the TOTAL count, at least 3), domain clean-up, open recipients
 * only, sender mode with the null sender, parent domains (-p, -m), the linear scale (-l),
 * long names cut from the left, and the flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/qshape.h"

#define NOW 1700000000

static struct envelope_rcpt r1[] = {
    {.addr = "bob@Example.ORG", .state = ENV_RCPT_PENDING},
    {.addr = "x@example.net", .state = ENV_RCPT_DELIVERED},
};
static struct envelope_rcpt r2[] = {
    {.addr = "a@example.org.", .state = ENV_RCPT_PENDING},
    {.addr = "b@sub..example.org", .state = ENV_RCPT_WARNED},
};
static struct envelope_rcpt r3[] = {{.addr = "c@example.org", .state = ENV_RCPT_PENDING}};
static struct envelope_rcpt r4[] = {{.addr = "d@example.com", .state = ENV_RCPT_FAILED}};

static struct envelope m1 = {.qid = "0a1B2c3D4e5F6g7A",
                             .sender = "alice@Client.test",
                             .created = NOW - 60,
                             .rcpts = r1,
                             .n_rcpts = 2};
/* 7 minutes: the second bucket (5 <= age < 10) */
static struct envelope m2 = {
    .qid = "0a1B2c3D4e5F6g7B", .sender = "", .created = NOW - 7 * 60, .rcpts = r2, .n_rcpts = 2};
/* 1666 minutes: the last bucket (1280+) */
static struct envelope m3 = {.qid = "0a1B2c3D4e5F6g7C",
                             .sender = "bob@client.test",
                             .created = NOW - 100000,
                             .rcpts = r3,
                             .n_rcpts = 1,
                             .next_attempt = ENVELOPE_NEXT_HELD};
/* nothing open: not counted at all */
static struct envelope m4 = {.qid = "0a1B2c3D4e5F6g7D",
                             .sender = "zed@other.test",
                             .created = NOW - 60,
                             .rcpts = r4,
                             .n_rcpts = 1};

static const struct envelope *all[] = {&m1, &m2, &m3, &m4};

static char *shape(const struct qshape_options *o, const struct envelope *const *msgs, size_t n)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    assert_non_null(f);
    assert_int_equal(qshape_print(f, o, msgs, n, NOW), 0);
    fclose(f);
    return s;
}

/* Columns for totals below 100: T..80 three wide, 160..640 four, 1280 five, 1280+ six;
 * the domain gets 80 - 41 = 39. */
#define COLS "%3s%3s%3s%3s%3s%3s%4s%4s%4s%5s%6s\n"

static void test_recipient_domains(void **state)
{
    (void)state;
    struct qshape_options o;
    qshape_defaults(&o);
    char *s = shape(&o, all, 4);
    char want[1024];
    int n = 0;
    n += snprintf(want + n, sizeof(want) - n, "%39s" COLS, "", "T", "5", "10", "20", "40", "80",
                  "160", "320", "640", "1280", "1280+");
    n += snprintf(want + n, sizeof(want) - n, "%39s" COLS, "TOTAL", "4", "1", "2", "0", "0", "0",
                  "0", "0", "0", "0", "1");
    n += snprintf(want + n, sizeof(want) - n, "%39s" COLS, "example.org", "3", "1", "1", "0", "0",
                  "0", "0", "0", "0", "0", "1");
    snprintf(want + n, sizeof(want) - n, "%39s" COLS, "sub.example.org", "1", "0", "1", "0", "0",
             "0", "0", "0", "0", "0", "0");
    assert_string_equal(s, want);
    free(s);
}

static void test_sender_domains(void **state)
{
    (void)state;
    struct qshape_options o;
    qshape_defaults(&o);
    o.senders = true;
    char *s = shape(&o, all, 4);
    /* one per message with something open; the null sender is MAILER-DAEMON */
    assert_non_null(strstr(s, "TOTAL  3  1  1"));
    char row[128];
    snprintf(row, sizeof(row), "%39s" COLS, "client.test", "2", "1", "0", "0", "0", "0", "0", "0",
             "0", "0", "1");
    assert_non_null(strstr(s, row));
    snprintf(row, sizeof(row), "%39s" COLS, "MAILER-DAEMON", "1", "0", "1", "0", "0", "0", "0", "0",
             "0", "0", "0");
    assert_non_null(strstr(s, row));
    assert_null(strstr(s, "other.test"));
    free(s);
}

static void test_parent_domains(void **state)
{
    (void)state;
    struct envelope_rcpt r[] = {
        {.addr = "a@x.example.org", .state = 'P'}, {.addr = "b@y.example.org", .state = 'P'},
        {.addr = "c@example.org", .state = 'P'},   {.addr = "d@z.y.example.org", .state = 'P'},
        {.addr = "e@tld", .state = 'P'},
    };
    struct envelope e = {
        .qid = "0a1B2c3D4e5F6g7E", .sender = "s@t", .created = NOW, .rcpts = r, .n_rcpts = 5};
    const struct envelope *msgs[] = {&e};
    struct qshape_options o;
    qshape_defaults(&o);
    o.parents = true;
    o.min_subdomains = 3;
    char *s = shape(&o, msgs, 1);
    /* .example.org's children: x.example.org, y.example.org, .y.example.org (3); three
     * addresses under it (example.org itself has no parent). .y.example.org has one child: not
     * shown. A top-level domain is never a parent. */
    char row[128];
    snprintf(row, sizeof(row), "%39s" COLS, ".example.org", "3", "3", "0", "0", "0", "0", "0", "0",
             "0", "0", "0");
    assert_non_null(strstr(s, row));
    assert_null(strstr(s, " .y.example.org"));
    assert_non_null(strstr(s, " tld  1"));
    free(s);

    o.min_subdomains = 4;
    s = shape(&o, msgs, 1);
    assert_null(strstr(s, " .example.org"));
    free(s);
}

static void test_linear_and_buckets(void **state)
{
    (void)state;
    struct qshape_options o;
    qshape_defaults(&o);
    o.linear = true;
    o.buckets = 4;
    o.bucket_minutes = 10;
    char *s = shape(&o, all, 4);
    /* headings 10 20 30 30+; 1 min -> first, 7 min -> first, 1666 min -> last; the domain
     * column is 80 - 4 * 3 - 4 = 64 wide */
    char want[512];
    snprintf(want, sizeof(want), "%64s%3s%3s%3s%3s%4s\n%64s%3s%3s%3s%3s%4s\n", "", "T", "10", "20",
             "30", "30+", "TOTAL", "4", "3", "0", "0", "1");
    assert_memory_equal(s, want, strlen(want));
    free(s);
}

static void test_long_names_cut_from_the_left(void **state)
{
    (void)state;
    char addr[] = "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.org";
    struct envelope_rcpt r[] = {{.addr = addr, .state = 'P'}};
    struct envelope e = {
        .qid = "0a1B2c3D4e5F6g7F", .sender = "", .created = NOW, .rcpts = r, .n_rcpts = 1};
    const struct envelope *msgs[] = {&e};
    struct qshape_options o;
    qshape_defaults(&o);
    char *s = shape(&o, msgs, 1);
    const char *dom = strchr(addr, '@') + 1;
    char want[64];
    snprintf(want, sizeof(want), "\n+%s  1", dom + strlen(dom) - 38);
    assert_non_null(strstr(s, want));
    free(s);
}

static void test_empty_queue(void **state)
{
    (void)state;
    struct qshape_options o;
    qshape_defaults(&o);
    char *s = shape(&o, NULL, 0);
    char want[256];
    snprintf(want, sizeof(want), "%39s" COLS "%39s" COLS, "", "T", "5", "10", "20", "40", "80",
             "160", "320", "640", "1280", "1280+", "TOTAL", "0", "0", "0", "0", "0", "0", "0", "0",
             "0", "0", "0");
    assert_string_equal(s, want);
    free(s);
}

static void test_flags(void **state)
{
    (void)state;
    struct qshape_options o;
    qshape_defaults(&o);
    char *argv[] = {"-sp", "-m3", "-b", "12", "-t", "2", "-l", "-w", "120", "hold", NULL};
    int used;
    FILE *err = fopen("/dev/null", "w");
    assert_int_equal(qshape_parse_args(10, argv, &o, &used, err), 0);
    assert_int_equal(used, 9);
    assert_true(o.senders && o.parents && o.linear);
    assert_int_equal(o.min_subdomains, 3);
    assert_int_equal(o.buckets, 12);
    assert_int_equal(o.bucket_minutes, 2);
    assert_int_equal(o.width, 120);

    char *bad1[] = {"-x"};
    assert_int_equal(qshape_parse_args(1, bad1, &o, &used, err), -1);
    char *bad2[] = {"-b", "0"};
    assert_int_equal(qshape_parse_args(2, bad2, &o, &used, err), -1);
    char *bad3[] = {"-t"};
    assert_int_equal(qshape_parse_args(1, bad3, &o, &used, err), -1);
    /* qshape ignores a width under 80 */
    qshape_defaults(&o);
    char *narrow[] = {"-w", "40"};
    assert_int_equal(qshape_parse_args(2, narrow, &o, &used, err), 0);
    assert_int_equal(o.width, 80);
    fclose(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipient_domains),
        cmocka_unit_test(test_sender_domains),
        cmocka_unit_test(test_parent_domains),
        cmocka_unit_test(test_linear_and_buckets),
        cmocka_unit_test(test_long_names_cut_from_the_left),
        cmocka_unit_test(test_empty_queue),
        cmocka_unit_test(test_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
