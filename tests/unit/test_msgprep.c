/* Message preparation for local submission: line ends, the dot rule, the mbox From line,
 * the header block and its limits, Bcc removal, -t's recipients from RFC 5322 address
 * lists, and the same result whatever the chunk sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli/msgprep.h"
#include "util/buf.h"

struct result {
    int rc;
    bool done;
    char error[256];
    struct buf header;
    struct buf body;
    struct buf rcpts; /* "a|b|c" */
    int header_calls, body_calls;
    bool body_before_header;
    int header_rc, body_rc; /* what the callbacks answer */
};

static int on_header(void *arg, const struct msgprep *m)
{
    struct result *r = arg;
    r->header_calls++;
    buf_append(&r->header, m->header.data, m->header.len);
    for (size_t i = 0; i < m->n_rcpts; i++) {
        if (i > 0)
            buf_append(&r->rcpts, "|", 1);
        buf_append(&r->rcpts, m->rcpts[i], strlen(m->rcpts[i]));
    }
    return r->header_rc;
}

static int on_body(void *arg, const char *bytes, size_t len)
{
    struct result *r = arg;
    if (r->header_calls == 0)
        r->body_before_header = true;
    r->body_calls++;
    buf_append(&r->body, bytes, len);
    return r->body_rc;
}

static void result_free(struct result *r)
{
    buf_free(&r->header);
    buf_free(&r->body);
    buf_free(&r->rcpts);
}

/* Feeds `in` in chunks of `chunk` octets (0 = all at once). */
static void run(struct result *r, const struct msgprep_settings *base, const char *in, size_t len,
                size_t chunk)
{
    int header_rc = r->header_rc, body_rc = r->body_rc;
    memset(r, 0, sizeof(*r));
    r->header_rc = header_rc;
    r->body_rc = body_rc;
    struct msgprep_settings s = *base;
    s.on_header = on_header;
    s.on_body = on_body;
    s.arg = r;
    struct msgprep m;
    r->rc = msgprep_init(&m, &s);
    for (size_t off = 0; r->rc == 0 && off < len;) {
        size_t n = chunk == 0 || chunk > len - off ? len - off : chunk;
        r->rc = msgprep_feed(&m, in + off, n);
        off += n;
    }
    if (r->rc == 0)
        r->rc = msgprep_finish(&m);
    r->done = m.done;
    memcpy(r->error, m.error, sizeof(r->error));
    msgprep_free(&m);
    buf_append(&r->header, "", 1); /* terminate for string asserts */
    buf_append(&r->body, "", 1);
    buf_append(&r->rcpts, "", 1);
}

static const char *const one_rcpt[] = {"rcpt@example.org"};

static struct msgprep_settings plain(void)
{
    return (struct msgprep_settings){.cmdline_rcpts = one_rcpt, .n_cmdline_rcpts = 1};
}

static struct msgprep_settings with_t(void)
{
    return (struct msgprep_settings){.read_recipients = true};
}

/* Runs `in` with several chunkings; every run must give the same header, body and
 * recipients as expected. */
static void check(const struct msgprep_settings *s, const char *in, const char *header,
                  const char *body, const char *rcpts)
{
    static const size_t chunks[] = {0, 1, 2, 3, 5, 64};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        struct result r = {0};
        run(&r, s, in, strlen(in), chunks[i]);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.header_calls, 1);
        assert_false(r.body_before_header);
        assert_string_equal(r.header.data, header);
        assert_string_equal(r.body.data, body);
        if (rcpts != NULL)
            assert_string_equal(r.rcpts.data, rcpts);
        result_free(&r);
    }
}

static void check_error(const struct msgprep_settings *s, const char *in, size_t len, int code,
                        const char *error)
{
    static const size_t chunks[] = {0, 1, 3};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        struct result r = {0};
        run(&r, s, in, len, chunks[i]);
        assert_int_equal(r.rc, code);
        assert_string_equal(r.error, error);
        result_free(&r);
    }
}

static void test_line_ends(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    check(&s, "Subject: x\n\nline 1\nline 2\n", "Subject: x\r\n", "\r\nline 1\r\nline 2\r\n",
          "rcpt@example.org");
    check(&s, "Subject: x\r\n\r\nline\r\n", "Subject: x\r\n", "\r\nline\r\n", NULL);
    check(&s, "Subject: x\n\r\nno end", "Subject: x\r\n", "\r\nno end\r\n", NULL);
    /* a bare CR ends a line; CRs before LF are one line end */
    check(&s, "Subject: x\r\r\n\r\r\na\rb\r\r\nc\r", "Subject: x\r\n", "\r\na\r\nb\r\nc\r\n", NULL);
    check(&s, "", "", "", NULL);
}

static void test_dot_rule(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    check(&s, "Subject: x\n\nbody\n.\nnot read\n", "Subject: x\r\n", "\r\nbody\r\n", NULL);
    check(&s, "Subject: x\n\nbody\n.", "Subject: x\r\n", "\r\nbody\r\n", NULL);
    check(&s, "Subject: x\n\nbody\n.\r\nnot read", "Subject: x\r\n", "\r\nbody\r\n", NULL);
    /* never unstuffed, never stuffed; only a lone dot counts */
    check(&s, "S: x\n\n..\n. \n.x\n", "S: x\r\n", "\r\n..\r\n. \r\n.x\r\n", NULL);
    /* a dot in the header block ends the message there */
    check(&s, "Subject: x\n.\nTo: y\n", "Subject: x\r\n", "", NULL);

    struct result r = {0};
    run(&r, &s, "S: x\n\na\n.\nb\n", 12, 0);
    assert_true(r.done);
    result_free(&r);

    s.ignore_dots = true;
    check(&s, "Subject: x\n\nbody\n.\nstill\n.", "Subject: x\r\n",
          "\r\nbody\r\n.\r\nstill\r\n.\r\n", NULL);
    run(&r, &s, "S: x\n\na\n.\nb\n", 12, 0);
    assert_false(r.done);
    result_free(&r);
}

static void test_mbox_from_line(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    check(&s, "From user@example.org Thu Dec  3 10:00:00 2026\nSubject: x\n\nFrom here\n",
          "Subject: x\r\n", "\r\nFrom here\r\n", NULL);
    check(&s, "From: a@b\n\n", "From: a@b\r\n", "\r\n", NULL);
    check(&s, "Subject: x\nFrom y\n", "Subject: x\r\n", "From y\r\n", NULL);
}

static void test_header_block(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    /* folded fields stay folded; obsolete white space before the colon is a field */
    check(&s, "Subject: a\n  b\nX-Y : z\n\nbody\n", "Subject: a\r\n  b\r\nX-Y : z\r\n",
          "\r\nbody\r\n", NULL);
    /* the first line that is not a field ends the block; nothing is inserted */
    check(&s, "Subject: a\nthis is text\nTo: not a header\n", "Subject: a\r\n",
          "this is text\r\nTo: not a header\r\n", NULL);
    /* no header at all */
    check(&s, "hello world\n", "", "hello world\r\n", NULL);
    check(&s, "  indented first\nX: y\n", "", "  indented first\r\nX: y\r\n", NULL);
    check(&s, ": no name\n", "", ": no name\r\n", NULL);
    /* headers only, no body */
    check(&s, "Subject: a\nX: b", "Subject: a\r\nX: b\r\n", "", NULL);
}

static void test_bcc_removed(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    check(&s, "To: a@b\nBcc: secret@example.org,\n other@example.org\nSubject: s\n\nb\n",
          "To: a@b\r\nSubject: s\r\n", "\r\nb\r\n", "rcpt@example.org");
    check(&s, "bcc:x@y\nRESENT-BCC: z@w\nResent-To: r@s\n\n", "Resent-To: r@s\r\n", "\r\n",
          "rcpt@example.org");
}

static void test_t_recipients(void **state)
{
    (void)state;
    struct msgprep_settings s = with_t();
    check(&s,
          "From: me@example.org\n"
          "To: Alice <alice@example.org>, \"Bob, Jr.\" <bob@example.org>\n"
          "Cc: carol@example.org (Carol), team: dave@example.org, <erin@example.org>;\n"
          "Bcc: frank@example.org\n"
          "Subject: hi\n\nbody\n",
          "From: me@example.org\r\n"
          "To: Alice <alice@example.org>, \"Bob, Jr.\" <bob@example.org>\r\n"
          "Cc: carol@example.org (Carol), team: dave@example.org, <erin@example.org>;\r\n"
          "Subject: hi\r\n",
          "\r\nbody\r\n",
          "alice@example.org|bob@example.org|carol@example.org|dave@example.org|"
          "erin@example.org|frank@example.org");
    /* folded lists, duplicates (domain case-insensitive), bare user names */
    check(&s, "To: a@example.org,\n\tb@example.org\ncc: A@EXAMPLE.ORG, root\n\n",
          "To: a@example.org,\r\n\tb@example.org\r\ncc: A@EXAMPLE.ORG, root\r\n", "\r\n",
          "a@example.org|b@example.org|A@EXAMPLE.ORG|root");
    /* a resent message: only the Resent- fields count */
    check(&s, "To: old@example.org\nResent-To: new@example.org\nResent-Bcc: hidden@x.org\n\n",
          "To: old@example.org\r\nResent-To: new@example.org\r\n", "\r\n",
          "new@example.org|hidden@x.org");
}

static void test_t_minus_command_line(void **state)
{
    (void)state;
    static const char *const cmdline[] = {"b@Example.org", "Someone <c@example.org>"};
    struct msgprep_settings s = with_t();
    s.cmdline_rcpts = cmdline;
    s.n_cmdline_rcpts = 2;
    check(&s, "To: a@example.org, b@EXAMPLE.org\nCc: c@example.org, d@example.org\n\n",
          "To: a@example.org, b@EXAMPLE.org\r\nCc: c@example.org, d@example.org\r\n", "\r\n",
          "a@example.org|d@example.org");
    /* local parts are compared exactly */
    check(&s, "To: B@example.org\n\n", "To: B@example.org\r\n", "\r\n", "B@example.org");
    const char *in = "To: b@example.ORG\nSubject: x\n\n";
    check_error(&s, in, strlen(in), EX_USAGE, "No recipient addresses found in header");
}

static void test_t_without_recipients(void **state)
{
    (void)state;
    struct msgprep_settings s = with_t();
    static const char *const inputs[] = {
        "Subject: none\n\nbody\n",
        "To: undisclosed-recipients:;\n\n",
        "",
        "To:\n\n",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
        check_error(&s, inputs[i], strlen(inputs[i]), EX_USAGE,
                    "No recipient addresses found in header");
    /* the recipient fields are not read without -t */
    struct msgprep_settings p = plain();
    check(&p, "To: other@example.org\n\n", "To: other@example.org\r\n", "\r\n", "rcpt@example.org");
}

static void test_command_line_recipients(void **state)
{
    (void)state;
    static const char *const cmdline[] = {"a@example.org, b@example.org", "a@EXAMPLE.ORG",
                                          "Name <c@example.org>"};
    struct msgprep_settings s = {.cmdline_rcpts = cmdline, .n_cmdline_rcpts = 3};
    check(&s, "S: x\n\n", "S: x\r\n", "\r\n", "a@example.org|b@example.org|c@example.org");

    struct msgprep m;
    s.n_cmdline_rcpts = 0;
    assert_int_equal(msgprep_init(&m, &s), EX_USAGE);
    assert_string_equal(m.error, "Recipient names must be specified");
    msgprep_free(&m);

    static const char *const bad[] = {"<unclosed@example.org"};
    s.cmdline_rcpts = bad;
    s.n_cmdline_rcpts = 1;
    assert_int_equal(msgprep_init(&m, &s), EX_DATAERR);
    assert_string_equal(m.error, "<unclosed@example.org... unbalanced '<'");
    msgprep_free(&m);
}

static void test_bad_header_address(void **state)
{
    (void)state;
    struct msgprep_settings s = with_t();
    const char *in = "To: ok@example.org\nCc: \"unclosed@example.org\n\n";
    check_error(&s, in, strlen(in), EX_DATAERR, "bad address in the Cc: header: unbalanced '\"'");
}

static void test_nul(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    check_error(&s, "S: x\n\nab\0c\n", 11, EX_DATAERR, "message contains a NUL octet");
    check_error(&s, "S: \0x\n\n", 7, EX_DATAERR, "message contains a NUL octet");
}

static void test_long_lines(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    s.max_line = 10;
    check(&s, "S: 4567890\n\n1234567890\n", "S: 4567890\r\n", "\r\n1234567890\r\n", NULL);
    const char *body = "S: x\n\n12345678901\n";
    check_error(&s, body, strlen(body), EX_DATAERR, "line longer than 10 octets");
    const char *header = "Subject: 901\n\n";
    check_error(&s, header, strlen(header), EX_DATAERR, "line longer than 10 octets");
}

static void test_header_limit(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    s.max_header = 32;
    const char *in = "Subject: aaaaaaaaaa\nX-Other: bbbbbbbbbb\n\n";
    check_error(&s, in, strlen(in), EX_DATAERR, "header longer than 32 octets");
    const char *folded = "Subject: a\n bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n\n";
    check_error(&s, folded, strlen(folded), EX_DATAERR, "header longer than 32 octets");
    /* a long first line that is plain text is body, and streams */
    check(&s, "this line is longer than the header limit of the test\n.\n", "",
          "this line is longer than the header limit of the test\r\n", NULL);
    check(&s, "S: x\nthis line is longer than the header limit of the test\n", "S: x\r\n",
          "this line is longer than the header limit of the test\r\n", NULL);
}

static void test_size_limit(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    s.max_size = 16; /* "S: x\r\n" + "\r\n" + "12345\r\n" = 15 */
    check(&s, "S: x\n\n12345\n", "S: x\r\n", "\r\n12345\r\n", NULL);
    check(&s, "S: x\n\n123456\n", "S: x\r\n", "\r\n123456\r\n", NULL); /* 16 */
    const char *in = "S: x\n\n1234567\n";
    check_error(&s, in, strlen(in), EX_DATAERR, "message too large (more than 16 octets)");
    s.max_size = 4;
    check_error(&s, in, strlen(in), EX_DATAERR, "message too large (more than 4 octets)");
}

static void test_large_body_streams(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    size_t lines = 20000;
    char *in = malloc(lines * 10 + 8);
    assert_non_null(in);
    size_t len = (size_t)sprintf(in, "S: x\n\n");
    for (size_t i = 0; i < lines; i++)
        len += (size_t)sprintf(in + len, "%08zu\n", i);
    struct result r = {0};
    run(&r, &s, in, len, 4096);
    assert_int_equal(r.rc, 0);
    assert_true(r.body_calls > 1); /* passed on while reading, not at the end */
    assert_int_equal(r.body.len - 1, 2 + lines * 10);
    assert_memory_equal(r.body.data + 2, "00000000\r\n00000001\r\n", 20);
    result_free(&r);
    free(in);
}

static void test_callbacks_stop(void **state)
{
    (void)state;
    struct msgprep_settings s = plain();
    struct result r = {.header_rc = EX_TEMPFAIL};
    run(&r, &s, "S: x\n\nbody\n", 11, 0);
    assert_int_equal(r.rc, EX_TEMPFAIL);
    assert_int_equal(r.body_calls, 0);
    result_free(&r);
    r = (struct result){.body_rc = EX_IOERR};
    run(&r, &s, "S: x\n\nbody\n", 11, 1);
    assert_int_equal(r.rc, EX_IOERR);
    result_free(&r);
}

/* msgprep_address_list: input -> "a|b|c", or "!why" */
static void check_list(const char *in, const char *want)
{
    char **list = NULL;
    size_t n = 0;
    const char *why = NULL;
    char got[512] = "";
    if (msgprep_address_list(in, strlen(in), &list, &n, &why) != 0) {
        snprintf(got, sizeof(got), "!%s", why);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                strcat(got, "|");
            strcat(got, list[i]);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got %s, want %s", in, got, want);
}

static void test_address_lists(void **state)
{
    (void)state;
    check_list("a@example.org", "a@example.org");
    check_list("  a@example.org  ,b@example.org", "a@example.org|b@example.org");
    check_list("John Doe <jd@example.org>", "jd@example.org");
    check_list("\"Doe, John\" <jd@example.org>, x@y", "jd@example.org|x@y");
    check_list("John Q. Public <jqp@example.org>", "jqp@example.org"); /* obs-phrase */
    check_list("=?UTF-8?Q?J=C3=B6rg?= <j@example.org>", "j@example.org");
    check_list("(comment) a(in)@(the)example.org (middle) , (x) b@c", "a@example.org|b@c");
    check_list("a@b (nested (comment) here)", "a@b");
    check_list("a@b (escaped \\) paren)", "a@b");
    check_list("\"quoted local\"@example.org", "\"quoted local\"@example.org");
    check_list("\"a\\\"b\"@example.org", "\"a\\\"b\"@example.org");
    check_list("a . b @ example . org", "a.b@example.org"); /* obs CFWS around dots */
    check_list("user@[192.0.2.1]", "user@[192.0.2.1]");
    check_list("<@relay1.example,@relay2.example:user@example.org>", "user@example.org");
    check_list("Friends: a@b, C <c@d>;, e@f", "a@b|c@d|e@f");
    check_list("undisclosed-recipients:;", "");
    check_list("empty group:;, a@b", "a@b");
    check_list("g: a@b", "a@b");      /* missing ';' at the end tolerated */
    check_list(",, a@b ,, ,", "a@b"); /* obs-addr-list's empty members */
    check_list("", "");
    check_list("   ", "");
    check_list("root", "root");
    check_list("root, postmaster (boss)", "root|postmaster");
    check_list("a@b,\r\n\tc@d", "a@b|c@d"); /* folded */
    check_list("\\root@example.org", "\\root@example.org");
    check_list("j\xc3\xb6rg@b\xc3\xbc"
               "cher.example",
               "j\xc3\xb6rg@b\xc3\xbc"
               "cher.example");

    check_list("a@b c@d", "!',' expected between addresses");
    check_list("John Doe", "!',' expected between addresses");
    check_list("<a@b", "!unbalanced '<'");
    check_list("a@b>", "!',' expected between addresses");
    check_list("<>", "!empty '<>'");
    check_list("\"open@b", "!unbalanced '\"'");
    check_list("a@b (open", "!unbalanced '('");
    check_list("a@b)", "!unbalanced ')'");
    check_list("a@[1.2.3.4", "!unbalanced '['");
    check_list("a@", "!domain expected after '@'");
    check_list("@b", "!address expected");
    check_list("a..b@c", "!bad local part");
    check_list("a@b..c", "!bad domain");
    check_list("a@b;", "!',' expected between addresses");
    check_list("g: h: a@b;;", "!group inside a group");
    check_list(": a@b;", "!group without a name");
    check_list("<@relay a@b>", "!bad route in '<...>'");
    check_list("a\x01@b", "!control character");
    check_list("\"a\x07"
               "b\"@c",
               "!control character");
    check_list("\"a\\\r\n b\"@c", "!control character"); /* quoted-pair of a line end */
    check_list("\"a\r\n b\"@c", "\"a b\"@c");            /* folded quoted string */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_dot_rule),
        cmocka_unit_test(test_mbox_from_line),
        cmocka_unit_test(test_header_block),
        cmocka_unit_test(test_bcc_removed),
        cmocka_unit_test(test_t_recipients),
        cmocka_unit_test(test_t_minus_command_line),
        cmocka_unit_test(test_t_without_recipients),
        cmocka_unit_test(test_command_line_recipients),
        cmocka_unit_test(test_bad_header_address),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_large_body_streams),
        cmocka_unit_test(test_callbacks_stop),
        cmocka_unit_test(test_address_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
