/* smtp_server: DATA framing (dot-stuffing, smuggling, splits), limits, commit, BDAT. */
#include "smtp_server_harness.h"

#define S(lit) lit, sizeof(lit) - 1

static const char *const REFUSED_BARE = "550 5.6.0 Message contains bare CR or LF; refused\r\n";
static const char *const REFUSED_NUL = "554 5.6.1 NUL byte not allowed\r\n";
static const char *const ACCEPTED = "250 2.0.0 QID0001 Message accepted for delivery\r\n";
static const char *const GO_AHEAD = "354 Enter mail, end with \".\" on a line by itself\r\n";

/* A session in DATA: envelope done, 354 seen. */
static struct h *h_in_data(const struct smtp_server_settings *set)
{
    struct h *h = h_new(set);
    h_envelope(h);
    h_feed(h, "DATA\r\n");
    h_expect(h, GO_AHEAD);
    h_expect_events(h, "DATA_START\n");
    return h;
}

static void test_data_simple(void **state)
{
    (void)state;
    struct h *h = h_in_data(NULL);
    h_feed(h, "Subject: hi\r\nMessage-ID:  <a.b@c.example> \r\n\r\nbody\r\n.\r\n");
    h_expect(h, "");
    h_expect_events(h, "DATA_END 52 <a.b@c.example>\n");
    h_expect_body(h, S("Subject: hi\r\nMessage-ID:  <a.b@c.example> \r\n\r\nbody\r\n"));
    assert_int_equal(smtp_server_deadline(h->s), 0); /* the commit is the caller's to time */
    h_commit(h, true);
    h_expect(h, ACCEPTED);
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_null(t->sender);
    assert_int_equal(t->n_rcpts, 0);
    assert_string_equal(t->helo, "client.example");
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1007); /* datafinal */
    h_free(h);
}

static void test_data_commit_failure(void **state)
{
    (void)state;
    struct h *h = h_in_data(NULL);
    h_feed(h, "x\r\n.\r\n");
    h_commit(h, false);
    h_expect(h, "451 4.3.0 Error writing message to queue; try again later\r\n");
    assert_null(smtp_server_transaction(h->s)->sender);
    h_free(h);
}

static void test_data_dot_stuffing(void **state)
{
    (void)state;
    struct h *h = h_in_data(NULL);
    h_feed(h, "..leading\r\n.\r\n");
    h_expect_body(h, S(".leading\r\n"));
    h_expect_events(h, "DATA_END 10 -\n");
    h_commit(h, true);
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
    h_clear(h);
    /* ".." alone, a dot inside a line, a line "." with text after it */
    h_feed(h, "a.b\r\n..\r\n.x\r\n...\r\n.\r\n");
    h_expect_body(h, S("a.b\r\n.\r\nx\r\n..\r\n"));
    h_free(h);
}

static void test_data_empty_message(void **state)
{
    (void)state;
    struct h *h = h_in_data(NULL);
    h_feed(h, ".\r\n"); /* the first line counts as preceded by CRLF */
    h_expect_events(h, "DATA_END 0 -\n");
    assert_int_equal(h->blen, 0);
    h_free(h);
}

/* The same input fed whole, byte by byte and cut at every position must give the same
 * replies, events and body. */
static void check_splits(const char *input, size_t len)
{
    struct h *whole = h_in_data(NULL);
    h_feedn(whole, input, len);
    h_commit(whole, true);

    struct h *bytes = h_in_data(NULL);
    for (size_t i = 0; i < len; i++) {
        h_feedn(bytes, input + i, 1);
        h_commit(bytes, true);
    }
    assert_string_equal(bytes->replies, whole->replies);
    assert_string_equal(bytes->events, whole->events);
    assert_int_equal(bytes->blen, whole->blen);
    assert_memory_equal(bytes->body, whole->body, whole->blen);
    h_free(bytes);

    for (size_t cut = 1; cut < len; cut++) {
        struct h *two = h_in_data(NULL);
        h_feedn(two, input, cut);
        h_commit(two, true);
        h_feedn(two, input + cut, len - cut);
        h_commit(two, true);
        assert_string_equal(two->replies, whole->replies);
        assert_string_equal(two->events, whole->events);
        assert_int_equal(two->blen, whole->blen);
        assert_memory_equal(two->body, whole->body, whole->blen);
        h_free(two);
    }
    h_free(whole);
}

static void test_data_split_everywhere(void **state)
{
    (void)state;
    check_splits(S("Subject: s\r\nMessage-Id: <x@y>\r\n\r\n..dot\r\n.\r\n"
                   "MAIL FROM:<b@b.example>\r\nNOOP\r\n"));
    check_splits(S("Subject: s\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n.\r\nNOOP\r\n"));
    check_splits(S("a\r\n.\rb\r\n.\r\nNOOP\r\n"));
}

/* Each smuggling variant: the fake end is content, the message is refused once at the real
 * end, and the "smuggled" commands never run. */
static void test_smuggling_variants(void **state)
{
    (void)state;
    static const char *const variants[] = {"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r"};
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        char input[512];
        int n = snprintf(input, sizeof(input),
                         "From: good@b.example\r\n\r\nhello%sMAIL FROM:<evil@x>\r\n"
                         "RCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n\r\n.\r\nNOOP\r\n",
                         variants[v]);
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            struct h *h = h_in_data(NULL);
            if (bytewise)
                h_feed_bytes(h, input, (size_t)n);
            else
                h_feedn(h, input, (size_t)n);
            char want[256];
            snprintf(want, sizeof(want), "%s250 2.0.0 OK\r\n", REFUSED_BARE);
            h_expect(h, want);
            assert_int_equal(h->n_data_end, 0);
            assert_int_equal(h->n_abort, 1);
            h_expect_events(h, "DATA_ABORT 550 5.6.0 Message contains bare CR or LF; refused\n");
            assert_null(smtp_server_transaction(h->s)->sender);
            h_free(h);
        }
    }
}

static void test_clean_message_after_refusal(void **state)
{
    (void)state;
    struct h *h = h_in_data(NULL);
    h_feed(h, "Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n.\r\n"
              "MAIL FROM:<good@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n"
              "Subject: b\r\n\r\nclean\r\n.\r\n");
    char want[512];
    snprintf(want, sizeof(want),
             "%s250 2.1.0 <good@b.example>... Sender ok\r\n"
             "250 2.1.5 <u@mx.test>... Recipient ok\r\n%s",
             REFUSED_BARE, GO_AHEAD);
    h_expect(h, want);
    assert_int_equal(h->n_data_end, 1);
    h_commit(h, true);
    h_expect(h, ACCEPTED);
    h_free(h);
}

/* A NUL is refused wherever it is (header or body, DATA or BDAT): a server behind us that
 * drops NULs would read "\r\n\0.\r\n" as the end of the message and the rest as commands.
 * The message is read to its real end and refused once; nothing after the NUL is passed
 * on, and the "smuggled" commands never run. */
static void test_nul_refused(void **state)
{
    (void)state;
    static const char input[] = "Subject: a\r\n\r\nhello\r\n\000.\r\nMAIL FROM:<evil@x>\r\n"
                                "RCPT TO:<victim@mx.test>\r\n.\r\nNOOP\r\n";
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct h *h = h_in_data(NULL);
        if (bytewise)
            h_feed_bytes(h, input, sizeof(input) - 1);
        else
            h_feedn(h, input, sizeof(input) - 1);
        char want[256];
        snprintf(want, sizeof(want), "%s250 2.0.0 OK\r\n", REFUSED_NUL);
        h_expect(h, want);
        assert_int_equal(h->n_data_end, 0);
        h_expect_events(h, "DATA_ABORT 554 5.6.1 NUL byte not allowed\n");
        h_expect_body(h, S("Subject: a\r\n\r\nhello\r\n"));
        assert_null(smtp_server_transaction(h->s)->sender);
        h_free(h);
    }
    /* in a header field (the Message-ID one, too) */
    struct h *h = h_in_data(NULL);
    h_feedn(h, S("Message-ID: <a\000b@x>\r\n\r\nbody\r\n.\r\n"));
    h_expect(h, REFUSED_NUL);
    assert_int_equal(h->n_data_end, 0);
    h_free(h);
}

static void test_nul_in_bdat(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feedn(h, S("BDAT 4\r\nab\000cBDAT 2 LAST\r\n\r\nNOOP\r\n"));
    char want[256];
    snprintf(want, sizeof(want), "250 2.0.0 4 octets received\r\n%s250 2.0.0 OK\r\n", REFUSED_NUL);
    h_expect(h, want);
    h_expect_events(h, "DATA_START\nDATA_ABORT 554 5.6.1 NUL byte not allowed\n");
    assert_int_equal(h->n_data_end, 0);
    h_free(h);
}

static void test_bare_cr_at_feed_boundary(void **state)
{
    (void)state;
    /* CR ends one read, the next starts with something else: a bare CR */
    struct h *h = h_in_data(NULL);
    h_feed(h, "a\r");
    h_feed(h, "b\r\n.\r\n");
    h_expect(h, REFUSED_BARE);
    h_free(h);
    /* CR ends one read, LF starts the next: a proper line end */
    h = h_in_data(NULL);
    h_feed(h, "a\r");
    h_feed(h, "\n.\r");
    h_feed(h, "\n");
    h_expect(h, "");
    assert_int_equal(h->n_data_end, 1);
    h_expect_body(h, S("a\r\n"));
    h_free(h);
}

static void test_size_limit(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.limits.max_message_size = 100;
    set.limits.max_text_line = 0;
    struct h *h = h_in_data(&set);
    char body[400];
    memset(body, 'x', sizeof(body));
    memcpy(body + 98, "\r\n", 2); /* exactly 100 octets: fine */
    memcpy(body + 100, ".\r\n", 3);
    h_feedn(h, body, 103);
    assert_int_equal(h->n_data_end, 1);
    h_commit(h, true);
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
    h_clear(h);
    memset(body, 'x', sizeof(body));
    memcpy(body + 99, "\r\n.\r\nNOOP\r\n", 11); /* 101 octets */
    h_feedn(h, body, 110);
    h_expect(h, "552 5.3.4 Message size exceeds fixed maximum message size (100)\r\n"
                "250 2.0.0 OK\r\n");
    h_expect_events(h,
                    "DATA_ABORT 552 5.3.4 Message size exceeds fixed maximum message size (100)\n");
    assert_int_equal(h->n_data_end, 1); /* the first message only */
    h_free(h);
}

static void test_header_limit(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.limits.max_header_size = 40;
    struct h *h = h_in_data(&set);
    /* 38 octets of header + the empty line = 40: fine, and the body does not count */
    h_feed(h, "Subject: 0123456789012345678901234\r\n\r\n"
              "a body line that is longer than the header limit\r\n.\r\n");
    assert_int_equal(h->n_data_end, 1);
    h_commit(h, true);
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
    h_clear(h);
    h_feed(h, "Subject: 0123456789\r\n\tfolded 0123456789\r\n\r\nbody\r\n.\r\n");
    h_expect(h, "552 5.6.0 Headers too large (40 max)\r\n");
    h_expect_events(h, "DATA_ABORT 552 5.6.0 Headers too large (40 max)\n");
    h_free(h);
}

static void test_no_header_section(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.limits.max_header_size = 20;
    struct h *h = h_in_data(&set);
    /* a message without header: its first line is not a field, so it is body */
    h_feed(h, "This is just text, no header at all.\r\nMessage-ID: <not@header>\r\n.\r\n");
    h_expect_events(h, "DATA_END 64 -\n");
    h_free(h);
}

static void test_line_limit(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.limits.max_text_line = 10;
    struct h *h = h_in_data(&set);
    h_feed(h, "12345678\r\n.\r\n"); /* 10 with CRLF */
    assert_int_equal(h->n_data_end, 1);
    h_commit(h, true);
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n");
    h_clear(h);
    h_feed(h, "123456789\r\n.\r\n");
    h_expect(h, "550 5.6.0 Line too long (10 max)\r\n");
    h_free(h);
}

static void test_msgid(void **state)
{
    (void)state;
    struct h *h = h_in_data(NULL);
    h_feed(h, "From: a\r\nmessage-id :\r\n <folded@x.example>\r\nMessage-ID: <second@x>\r\n"
              "\r\nMessage-ID: <body@x>\r\n.\r\n");
    h_expect_events(h, "DATA_END 92 <folded@x.example>\n");
    h_free(h);
    /* bounded */
    h = h_in_data(NULL);
    char input[700];
    int n = snprintf(input, sizeof(input), "Message-ID: <%0400d>\r\n\r\n.\r\n", 0);
    h_feedn(h, input, (size_t)n);
    assert_int_equal(h->n_data_end, 1);
    const char *id = strstr(h->events, "<");
    assert_non_null(id);
    assert_int_equal(strchr(id, '\n') - id, 250);
    h_free(h);
}

/* The Message-ID goes to the msgid= log line and the queue file: no control octets (an
 * escape sequence would reach an operator's terminal), folding undone (a tab from it is a
 * space), bounded; 8-bit octets (RFC 6532) are kept. */
static void test_msgid_sanitized(void **state)
{
    (void)state;
    struct h *h = h_in_data(NULL);
    h_feed(h, "Message-ID: <a\001b\033[31m\177c@x\xc3\xa9>\r\n\t(folded\tcomment) \r\n\r\n.\r\n");
    h_expect_events(h, "DATA_END 52 <a?b?[31m?c@x\xc3\xa9> (folded comment)\n");
    h_free(h);
}

static void test_held_input_after_commit(void **state)
{
    (void)state;
    struct h *h = h_in_data(NULL);
    h_feed(h, "x\r\n.\r\nMAIL FROM:<c@d.example>\r\nRCPT TO:<v@mx.test>\r\nDATA\r\n"
              "y\r\n.\r\nNOOP\r\nQUIT\r\n");
    h_expect(h, "");
    h_expect_events(h, "DATA_END 3 -\n");
    h_commit(h, true);
    char want[512];
    snprintf(want, sizeof(want),
             "%s250 2.1.0 <c@d.example>... Sender ok\r\n"
             "250 2.1.5 <v@mx.test>... Recipient ok\r\n%s",
             ACCEPTED, GO_AHEAD);
    h_expect(h, want);
    h_expect_events(h, "MAIL c@d.example\nRCPT v@mx.test\nDATA_START\nDATA_END 3 -\n");
    h_commit(h, true);
    snprintf(want, sizeof(want), "%s250 2.0.0 OK\r\n221 2.0.0 mx.test closing connection\r\n",
             ACCEPTED);
    h_expect(h, want);
    h_free(h);
}

static void test_eof_inside_message(void **state)
{
    (void)state;
    struct h *h = h_in_data(NULL);
    h_feed(h, "half a message");
    smtp_server_eof(h->s);
    h_expect_events(h, "DATA_ABORT -\n");
    h_free(h);
}

/* BDAT */

static void test_bdat_chunks(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feed(h, "BDAT 14\r\nSubject: p\r\n\r\nBDAT 7\r\nfirst\r\n");
    h_expect(h, "250 2.0.0 14 octets received\r\n250 2.0.0 7 octets received\r\n");
    assert_true(smtp_server_transaction(h->s)->bdat);
    h_feed(h, "bdat 0 last\r\nNOOP\r\n");
    h_expect(h, "");
    h_expect_events(h, "DATA_START\nDATA_END 21 -\n");
    h_expect_body(h, S("Subject: p\r\n\r\nfirst\r\n"));
    h_commit(h, true);
    h_expect(h, "250 2.0.0 QID0001 Message accepted for delivery\r\n250 2.0.0 OK\r\n");
    h_free(h);
}

static void test_bdat_raw_octets(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    /* no dot handling: "\r\n.\r\n" inside a chunk is content */
    h_feed_bytes(h, S("BDAT 12 LAST\r\nx\r\n.\r\n..\r\n\r\nNOOP\r\n"));
    h_expect_events(h, "DATA_START\nDATA_END 12 -\n");
    h_expect_body(h, S("x\r\n.\r\n..\r\n\r\n"));
    h_commit(h, true);
    h_expect(h, "250 2.0.0 QID0001 Message accepted for delivery\r\n250 2.0.0 OK\r\n");
    h_free(h);
}

static void test_bdat_zero_last(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feed(h, "BDAT 0 LAST\r\n");
    h_expect_events(h, "DATA_START\nDATA_END 0 -\n");
    h_commit(h, true);
    h_expect(h, ACCEPTED);
    h_free(h);
}

static void test_bdat_refused_consumes_octets(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\n");
    h_clear(h);
    h_feed(h, "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
    h_expect(h, "503 5.0.0 Need MAIL command\r\n250 2.0.0 OK\r\n");
    h_expect_events(h, "REJECT BDAT [] 503 5.0.0 Need MAIL command\n");
    h_feed(h, "MAIL FROM:<a@b.example>\r\nBDAT 6\r\nRSET");
    h_feed(h, "\r\nNOOP\r\n");
    h_expect(h, "250 2.1.0 <a@b.example>... Sender ok\r\n503 5.0.0 Need RCPT (recipient)\r\n"
                "250 2.0.0 OK\r\n");
    assert_int_equal(h->n_close, 0);
    h_free(h);
}

static void test_bdat_syntax(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feed(h, "BDAT xyz\r\nBDAT\r\nBDAT 5 FIRST\r\nBDAT -1\r\nBDAT 99999999999999999999999\r\n");
    h_expect(h, "501 5.5.4 Syntax error in BDAT parameters\r\n"
                "501 5.5.4 Syntax error in BDAT parameters\r\n"
                "501 5.5.4 Syntax error in BDAT parameters\r\n"
                "501 5.5.4 Syntax error in BDAT parameters\r\n"
                "501 5.5.4 Syntax error in BDAT parameters\r\n");
    h_free(h);
}

static void test_data_after_bdat(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feed(h, "BDAT 5\r\nabcdeDATA\r\nRSET\r\n");
    h_expect(h, "250 2.0.0 5 octets received\r\n503 5.5.1 DATA not permitted after BDAT\r\n"
                "250 2.0.0 Reset state\r\n");
    /* RSET inside a BDAT message abandons it */
    h_expect_events(h, "DATA_START\nREJECT DATA [] 503 5.5.1 DATA not permitted after BDAT\n"
                       "DATA_ABORT -\nRSET\n");
    h_free(h);
}

static void test_bdat_bare_lf_and_size(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.limits.max_message_size = 10;
    struct h *h = h_new(&set);
    h_envelope(h);
    h_feed(h, "BDAT 3\r\na\nbBDAT 1 LAST\r\n\r");
    h_expect(h, "250 2.0.0 3 octets received\r\n"
                "550 5.6.0 Message contains bare CR or LF; refused\r\n");
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 8\r\n1234567\r");
    h_feed(h, "BDAT 4 LAST\r\n\n890");
    h_expect(h, "250 2.1.0 <a@b.example>... Sender ok\r\n250 2.1.5 <u@mx.test>... Recipient ok\r\n"
                "250 2.0.0 8 octets received\r\n"
                "552 5.3.4 Message size exceeds fixed maximum message size (10)\r\n");
    assert_int_equal(h->n_data_end, 0);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_simple),
        cmocka_unit_test(test_data_commit_failure),
        cmocka_unit_test(test_data_dot_stuffing),
        cmocka_unit_test(test_data_empty_message),
        cmocka_unit_test(test_data_split_everywhere),
        cmocka_unit_test(test_smuggling_variants),
        cmocka_unit_test(test_clean_message_after_refusal),
        cmocka_unit_test(test_nul_refused),
        cmocka_unit_test(test_nul_in_bdat),
        cmocka_unit_test(test_bare_cr_at_feed_boundary),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_no_header_section),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_msgid),
        cmocka_unit_test(test_msgid_sanitized),
        cmocka_unit_test(test_held_input_after_commit),
        cmocka_unit_test(test_eof_inside_message),
        cmocka_unit_test(test_bdat_chunks),
        cmocka_unit_test(test_bdat_raw_octets),
        cmocka_unit_test(test_bdat_zero_last),
        cmocka_unit_test(test_bdat_refused_consumes_octets),
        cmocka_unit_test(test_bdat_syntax),
        cmocka_unit_test(test_data_after_bdat),
        cmocka_unit_test(test_bdat_bare_lf_and_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
