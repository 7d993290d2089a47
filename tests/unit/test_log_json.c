/* util/log_json: sendmail's lines become one JSON object with their fields, every other
 * line a message; any bytes give valid JSON; a line too long for the buffer is cut and
 * still valid. The time zone is UTC (TZ=UTC) so the stamps are fixed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_check.h"
#include "util/log_json.h"

static char out[LOG_JSON_MAX];

/* 2026-12-03T12:00:10.042Z */
static const struct log_json_meta meta = {{1796299210, 42000000}, "mx", "sm-mta", 4242, "info"};

#define HEAD                                                                                       \
    "{\"time\":\"2026-12-03T12:00:10.042+00:00\",\"host\":\"mx\",\"ident\":\"sm-mta\",\"pid\":"    \
    "4242,\"level\":\"info\""

static const char *json(const char *line)
{
    size_t n = log_json_format(out, sizeof(out), &meta, line);
    assert_int_equal(n, strlen(out));
    assert_true(json_check_object(out, n));
    return out;
}

static void test_from_line(void **state)
{
    (void)state;
    const char *line = "0EmgQSkz40011aAH: from=<alice@example.com>, size=391, class=0, nrcpts=1, "
                       "msgid=<a,b@c>, proto=ESMTP, daemon=MTA, relay=[192.0.2.7]";
    assert_string_equal(
        json(line),
        HEAD ",\"qid\":\"0EmgQSkz40011aAH\",\"from\":\"<alice@example.com>\","
             "\"size\":\"391\",\"class\":\"0\",\"nrcpts\":\"1\",\"msgid\":"
             "\"<a,b@c>\",\"proto\":\"ESMTP\",\"daemon\":\"MTA\",\"relay\":"
             "\"[192.0.2.7]\",\"msg\":\"0EmgQSkz40011aAH: from=<alice@example.com>, size=391, "
             "class=0, nrcpts=1, msgid=<a,b@c>, proto=ESMTP, daemon=MTA, relay=[192.0.2.7]\"}");
}

/* sendmail's quoting: commas inside <...>, "...", [...] and (...) stay in the value; stat=
 * takes the rest of the line. */
static void test_values_with_commas(void **state)
{
    (void)state;
    json("0EmgQSkz40011aAH: to=\"|/bin/x, y\", ctladdr=<a@b> (1000/1000), delay=00:00:00, "
         "relay=mx.example.com. [192.0.2.25] (may be forged, really), dsn=2.0.0, "
         "stat=Sent (Ok: queued as 4F2A1, 2)");
    assert_non_null(strstr(out, ",\"to\":\"\\\"|/bin/x, y\\\"\","));
    assert_non_null(strstr(out, ",\"ctladdr\":\"<a@b> (1000/1000)\","));
    assert_non_null(
        strstr(out, ",\"relay\":\"mx.example.com. [192.0.2.25] (may be forged, really)\","));
    assert_non_null(strstr(out, ",\"stat\":\"Sent (Ok: queued as 4F2A1, 2)\",\"msg\":"));
    json("ruleset=check_rcpt, arg1=<u@x>, relay=[addr], reject=550 5.7.1 <u@x>... a, b=c");
    assert_non_null(strstr(out, ",\"reject\":\"550 5.7.1 <u@x>... a, b=c\",\"msg\":"));
    assert_null(strstr(out, "\"qid\""));
}

/* Lines that are not all key=value keep their id and are a message. */
static void test_messages(void **state)
{
    (void)state;
    assert_string_equal(json("listening: name=MTA, address=127.0.0.1, port=25"),
                        HEAD ",\"msg\":\"listening: name=MTA, address=127.0.0.1, port=25\"}");
    assert_string_equal(json("0EmgQSkz40011aAH: 0EmgQSnE80030aAH: DSN: User unknown"),
                        HEAD ",\"qid\":\"0EmgQSkz40011aAH\",\"msg\":\"0EmgQSkz40011aAH: "
                             "0EmgQSnE80030aAH: DSN: User unknown\"}");
    json("0EmgQSkz40011aAH: AUTH failure (PLAIN): authentication failure (-13), relay=[a]");
    assert_null(strstr(out, "\"relay\""));
    /* a repeated or reserved key: no members, nothing lost */
    json("0EmgQSkz40011aAH: to=<a>, to=<b>");
    assert_null(strstr(out, "\"to\""));
    json("a=b, msg=c");
    assert_null(strstr(out, "\"a\""));
    /* a word is no queue id */
    json("configurations: a=b");
    assert_null(strstr(out, "\"qid\""));
    json("");
    assert_string_equal(out, HEAD ",\"msg\":\"\"}");
}

/* Control characters are escaped; bytes that are not UTF-8 become U+FFFD; UTF-8 stays. */
static void test_escaping(void **state)
{
    (void)state;
    json("from=<a\"b\\c\x01\x1b\x7f\t\n>");
    assert_non_null(strstr(out, "\"from\":\"<a\\\"b\\\\c\\u0001\\u001b\\u007f\\t\\n>\""));
    json("x=\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xff\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82");
    assert_non_null(strstr(out, "\"x\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
                                "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"
                                "\\ufffd\\ufffd\\ufffd\""));
}

/* The fixed members: no host, a level, an ident that needs escaping, a negative offset. */
static void test_meta(void **state)
{
    (void)state;
    struct log_json_meta m = {{0, 999999999}, NULL, "a\"b", 1, "warning"};
    setenv("TZ", "EST5", 1);
    tzset();
    log_json_format(out, sizeof(out), &m, "x");
    setenv("TZ", "UTC", 1);
    tzset();
    assert_string_equal(out, "{\"time\":\"1969-12-31T19:00:00.999-05:00\",\"ident\":\"a\\\"b\","
                             "\"pid\":1,\"level\":\"warning\",\"msg\":\"x\"}");
}

/* Too long for the buffer: the fields go, the message is cut at a character, and the
 * object says so; a buffer below LOG_JSON_MIN gets nothing. */
static void test_cut(void **state)
{
    (void)state;
    char line[2048], small[LOG_JSON_MIN + 40];
    memset(line, '\x01', sizeof(line) - 1);
    memcpy(line, "a=", 2);
    line[sizeof(line) - 1] = '\0';
    size_t n = log_json_format(small, sizeof(small), &meta, line);
    assert_true(n < sizeof(small));
    assert_true(json_check_object(small, n));
    assert_null(strstr(small, "\"a\":"));
    assert_non_null(strstr(small, "\\u0001\",\"truncated\":true}"));
    /* every size from the least up, for a line whose members fit where the message that
     * follows them does not (the members go), and for a longer one: always valid */
    char shorter[160];
    memcpy(shorter, line, sizeof(shorter) - 1);
    shorter[sizeof(shorter) - 1] = '\0';
    for (size_t cap = LOG_JSON_MIN; cap < sizeof(small); cap++) {
        n = log_json_format(small, cap, &meta, shorter);
        assert_true(n < cap);
        assert_true(json_check_object(small, n));
        assert_true(strstr(small, "\"a\":") == NULL || strstr(small, "truncated") == NULL);
        n = log_json_format(small, cap, &meta, line);
        assert_true(n < cap);
        assert_true(json_check_object(small, n));
    }
    assert_int_equal(log_json_format(small, LOG_JSON_MIN - 1, &meta, line), 0);
    assert_string_equal(small, "");
    /* the longest line util/log.c writes, all escapes, fits LOG_JSON_MAX whole */
    n = log_json_format(out, sizeof(out), &meta, line);
    assert_null(strstr(out, "truncated"));
    assert_true(json_check_object(out, n));
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_line), cmocka_unit_test(test_values_with_commas),
        cmocka_unit_test(test_messages),  cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_meta),      cmocka_unit_test(test_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
