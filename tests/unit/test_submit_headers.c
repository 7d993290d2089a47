/* submit_headers: the Date:, Message-ID:, From: and To: lines local submission adds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/submit_headers.h"
#include "smtp/smtp_server.h"

#define ALL_SEEN                                                                                   \
    (SMTP_HDR_SEEN_DATE | SMTP_HDR_SEEN_FROM | SMTP_HDR_SEEN_MSGID | SMTP_HDR_SEEN_SENDER |        \
     SMTP_HDR_SEEN_TO | SMTP_HDR_SEEN_CC | SMTP_HDR_SEEN_BCC)
#define NOW 1796316881 /* Thu, 03 Dec 2026 16:54:41 UTC */

static int setup_utc(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

/* The lines for `seen` with `fullname`, as one string (static). */
static const char *format(unsigned seen, const char *sender, const char *fullname)
{
    static char text[4096];
    struct buf b;
    buf_init(&b, 0);
    struct submit_headers_in in = {.now = NOW,
                                   .qid = "0B3GsfT9001234",
                                   .hostname = "host.example",
                                   .sender = sender,
                                   .fullname = fullname,
                                   .headers_seen = seen};
    assert_int_equal(submit_headers_format(&b, &in), 0);
    assert_true(b.len < sizeof(text));
    memcpy(text, b.data ? b.data : "", b.len);
    text[b.len] = '\0';
    buf_free(&b);
    return text;
}

static const char *from_line(const char *fullname)
{
    return format(ALL_SEEN & ~SMTP_HDR_SEEN_FROM, "u@host.example", fullname);
}

static void test_all_missing(void **state)
{
    (void)state;
    assert_string_equal(format(0, "u@host.example", "John Smith"),
                        "Date: Thu, 03 Dec 2026 16:54:41 +0000\r\n"
                        "Message-ID: <202612031654.0B3GsfT9001234@host.example>\r\n"
                        "From: John Smith <u@host.example>\r\n"
                        "To: undisclosed-recipients:;\r\n");
}

static void test_nothing_missing(void **state)
{
    (void)state;
    assert_string_equal(format(ALL_SEEN, "u@host.example", "x"), "");
    /* any one of To/Cc/Bcc names recipients; Sender: is no From: */
    assert_string_equal(format(ALL_SEEN & ~(SMTP_HDR_SEEN_TO | SMTP_HDR_SEEN_CC), "u@h", NULL), "");
    assert_string_equal(
        format(SMTP_HDR_SEEN_DATE | SMTP_HDR_SEEN_MSGID | SMTP_HDR_SEEN_SENDER | SMTP_HDR_SEEN_CC,
               "u@h", NULL),
        "From: u@h\r\n");
}

/* The zone is the process's, as sendmail's Date: is. */
static void test_date_zone(void **state)
{
    (void)state;
    setenv("TZ", "<+0545>-5:45", 1); /* POSIX form, no zone database needed */
    tzset();
    assert_string_equal(format(ALL_SEEN & ~(SMTP_HDR_SEEN_DATE | SMTP_HDR_SEEN_MSGID), "u@h", NULL),
                        "Date: Thu, 03 Dec 2026 22:39:41 +0545\r\n"
                        "Message-ID: <202612032239.0B3GsfT9001234@host.example>\r\n");
    setenv("TZ", "<-0330>3:30", 1);
    tzset();
    assert_string_equal(format(ALL_SEEN & ~SMTP_HDR_SEEN_DATE, "u@h", NULL),
                        "Date: Thu, 03 Dec 2026 13:24:41 -0330\r\n");
    setup_utc(NULL);
}

static void test_from_plain(void **state)
{
    (void)state;
    assert_string_equal(from_line(NULL), "From: u@host.example\r\n");
    assert_string_equal(from_line(""), "From: u@host.example\r\n");
    assert_string_equal(from_line("root"), "From: root <u@host.example>\r\n");
    assert_string_equal(from_line("O'Brien-Smith Jr"),
                        "From: O'Brien-Smith Jr <u@host.example>\r\n");
    assert_string_equal(format(ALL_SEEN & ~SMTP_HDR_SEEN_FROM, "", "Mailer"),
                        "From: Mailer <MAILER-DAEMON@host.example>\r\n");
    assert_string_equal(format(ALL_SEEN & ~SMTP_HDR_SEEN_FROM, "", NULL),
                        "From: MAILER-DAEMON@host.example\r\n");
}

/* Specials, quotes, backslashes and odd spacing make a quoted-string (RFC 5322 3.2.4). */
static void test_from_quoted(void **state)
{
    (void)state;
    assert_string_equal(from_line("Smith, John"), "From: \"Smith, John\" <u@host.example>\r\n");
    assert_string_equal(from_line("John Q. Public"),
                        "From: \"John Q. Public\" <u@host.example>\r\n");
    assert_string_equal(from_line("John \"JJ\" Smith"),
                        "From: \"John \\\"JJ\\\" Smith\" <u@host.example>\r\n");
    assert_string_equal(from_line("back\\slash"), "From: \"back\\\\slash\" <u@host.example>\r\n");
    assert_string_equal(from_line("a (comment) <x@y>"),
                        "From: \"a (comment) <x@y>\" <u@host.example>\r\n");
    assert_string_equal(from_line(" lead"), "From: \" lead\" <u@host.example>\r\n");
    assert_string_equal(from_line("two  spaces"), "From: \"two  spaces\" <u@host.example>\r\n");
    assert_string_equal(from_line("trail "), "From: \"trail \" <u@host.example>\r\n");
    assert_string_equal(from_line("a:b;c@d"), "From: \"a:b;c@d\" <u@host.example>\r\n");
}

/* A GECOS field can hold anything: no octet may start a line of its own. */
static void test_from_control_octets(void **state)
{
    (void)state;
    assert_string_equal(from_line("Eve\r\nBcc: victim@x"),
                        "From: \"Eve??Bcc: victim@x\" <u@host.example>\r\n");
    assert_string_equal(from_line("tab\there\x7f"), "From: tab?here? <u@host.example>\r\n");
}

/* Non-ASCII: RFC 2047 encoded-words, whole characters each, at most 75 characters. */
static void test_from_utf8(void **state)
{
    (void)state;
    /* "José Müller" */
    assert_string_equal(from_line("Jos\xc3\xa9 M\xc3\xbcller"),
                        "From: =?UTF-8?B?Sm9zw6kgTcO8bGxlcg==?= <u@host.example>\r\n");
    /* malformed UTF-8 becomes '?', so the label stays true */
    assert_string_equal(from_line("a\xc3\x28\xe9 \xc3\xa9"),
                        "From: =?UTF-8?B?YT8oPyDDqQ==?= <u@host.example>\r\n");
    /* 30 two-octet characters: 45 octets would cut one, so the first word holds 44 */
    char name[64] = "";
    for (int i = 0; i < 30; i++)
        strcat(name, "\xc3\xa9");
    const char *t = from_line(name);
    const char *nl = strstr(t, "\r\n ");
    assert_non_null(nl);
    assert_int_equal(nl - t, 6 + 12 + 60); /* "From: " and 44 octets -> 60 base64 */
    assert_string_equal(nl, "\r\n =?UTF-8?B?w6nDqcOpw6nDqcOpw6nDqQ==?= <u@host.example>\r\n");
    /* every encoded-word fits RFC 2047's 75 characters, and the longest name folds */
    char big[400] = "";
    for (int i = 0; i < 85; i++)
        strcat(big, "\xe2\x82\xac"); /* 255 octets of euro signs */
    t = from_line(big);
    size_t words = 0;
    for (const char *w = strstr(t, "=?"); w; w = strstr(w + 2, "=?")) {
        const char *end = strstr(w, "?=");
        assert_non_null(end);
        assert_true(end + 2 - w <= 75);
        w = end;
        words++;
    }
    assert_int_equal(words, 6); /* 255 / 45 rounded up, each cut at a character */
}

/* Longer than FULLNAME's 256 octets (a GECOS field): cut at a character boundary. */
static void test_from_long_name(void **state)
{
    (void)state;
    char name[600];
    memset(name, 'a', 300);
    name[300] = '\0';
    const char *t = from_line(name);
    assert_int_equal(strlen(t), 6 + 256 + 19); /* " <u@host.example>\r\n" */
    memset(name, 'a', 255);
    strcpy(name + 255, "\xc3\xa9");
    t = from_line(name);
    assert_null(strstr(t, "w6k")); /* the é did not fit: not half of it either */
}

/* A buffer that may not grow is left as it was. */
static void test_buffer_limit(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 60);
    assert_int_equal(buf_append(&b, "X: y\r\n", 6), 0);
    struct submit_headers_in in = {.now = NOW,
                                   .qid = "Q",
                                   .hostname = "h",
                                   .sender = "u@h",
                                   .fullname = "Name",
                                   .headers_seen = 0};
    assert_int_equal(submit_headers_format(&b, &in), -1);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "X: y\r\n", 6);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_missing),  cmocka_unit_test(test_nothing_missing),
        cmocka_unit_test(test_date_zone),    cmocka_unit_test(test_from_plain),
        cmocka_unit_test(test_from_quoted),  cmocka_unit_test(test_from_control_octets),
        cmocka_unit_test(test_from_utf8),    cmocka_unit_test(test_from_long_name),
        cmocka_unit_test(test_buffer_limit),
    };
    return cmocka_run_group_tests(tests, setup_utc, NULL);
}
