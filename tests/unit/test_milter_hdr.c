/* policy/milter_hdr.c: a header section parsed as sendmail hands it to filters (folded
 * values joined by LF, the leading space kept), the end-of-message edits (add, insert at an
 * index, change or delete the nth field of a name), the edits refused, and the section
 * written back as CRLF lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "policy/milter_hdr.h"

static size_t parse(struct milter_hdrs *h, const char *msg)
{
    size_t body = 12345;
    milter_hdrs_init(h);
    assert_int_equal(milter_hdrs_parse(h, msg, strlen(msg), &body), 0);
    return body;
}

/* The section written back, NUL-terminated in `b`. */
static const char *written(const struct milter_hdrs *h, struct buf *b)
{
    buf_free(b);
    assert_int_equal(milter_hdrs_write(h, b), 0);
    assert_int_equal(buf_append(b, "", 1), 0);
    return b->data;
}

static void assert_field(const struct milter_hdrs *h, size_t i, const char *name, const char *value)
{
    assert_true(i < h->n);
    assert_string_equal(h->v[i].name, name);
    assert_string_equal(h->v[i].value, value);
}

static void test_parse_simple_and_folded(void **state)
{
    (void)state;
    static const char msg[] = "From: <a@x>\r\n"
                              "Subject: a\r\n"
                              "\tb\r\n"
                              "   c\r\n"
                              "X-Empty:\r\n"
                              "Received : obsolete space\r\n"
                              "\r\n"
                              "Body: not a header\r\n";
    struct milter_hdrs h;
    size_t body = parse(&h, msg);
    assert_int_equal(h.n, 4);
    assert_field(&h, 0, "From", " <a@x>");
    assert_field(&h, 1, "Subject", " a\n\tb\n   c");
    assert_field(&h, 2, "X-Empty", "");
    assert_field(&h, 3, "Received", " obsolete space");
    assert_string_equal(msg + body, "Body: not a header\r\n");
    struct buf b = {0};
    assert_string_equal(written(&h, &b), "From: <a@x>\r\nSubject: a\r\n\tb\r\n   c\r\n"
                                         "X-Empty:\r\nReceived: obsolete space\r\n");
    buf_free(&b);
    milter_hdrs_free(&h);
}

static void test_parse_ends(void **state)
{
    (void)state;
    struct milter_hdrs h;
    /* a line that is no field starts the body, as sendmail */
    static const char nofield[] = "A: 1\r\nnot a header\r\nB: 2\r\n";
    assert_string_equal(nofield + parse(&h, nofield), "not a header\r\nB: 2\r\n");
    assert_int_equal(h.n, 1);
    milter_hdrs_free(&h);
    /* a continuation with nothing to continue */
    static const char cont[] = " A: 1\r\n\r\n";
    assert_int_equal(parse(&h, cont), 0);
    assert_int_equal(h.n, 0);
    milter_hdrs_free(&h);
    /* no empty line, last line without its CRLF, LF-only lines */
    static const char eof[] = "A: 1\nB: 2\n\tmore\nC: 3";
    assert_int_equal(parse(&h, eof), strlen(eof));
    assert_int_equal(h.n, 3);
    assert_field(&h, 1, "B", " 2\n\tmore");
    assert_field(&h, 2, "C", " 3");
    struct buf b = {0};
    assert_string_equal(written(&h, &b), "A: 1\r\nB: 2\r\n\tmore\r\nC: 3\r\n");
    buf_free(&b);
    milter_hdrs_free(&h);
    /* an empty message, and one that is all body */
    assert_int_equal(parse(&h, ""), 0);
    milter_hdrs_free(&h);
    assert_int_equal(parse(&h, "\r\nbody"), 2);
    assert_int_equal(h.n, 0);
    milter_hdrs_free(&h);
    assert_int_equal(parse(&h, ":x\r\n"), 0); /* a colon with no name */
    milter_hdrs_free(&h);
}

static void test_edits(void **state)
{
    (void)state;
    struct milter_hdrs h;
    parse(&h, "Received: one\r\nSubject: s\r\nreceived: two\r\nRECEIVED: three\r\n\r\n");
    assert_int_equal(milter_hdrs_add(&h, "X-Add", " added"), 0);
    assert_int_equal(milter_hdrs_insert(&h, 0, "X-Top", " top"), 0);
    assert_int_equal(milter_hdrs_insert(&h, 2, "X-Mid", " mid"), 0);
    assert_int_equal(milter_hdrs_insert(&h, 1000, "X-End", " end"), 0);
    /* nth of a name, case-insensitive; 0 is the first */
    assert_int_equal(milter_hdrs_change(&h, "RECEIVED", 2, " TWO"), 0);
    assert_int_equal(milter_hdrs_change(&h, "subject", 0, " new\r\n\tsubject"), 0);
    assert_int_equal(milter_hdrs_change(&h, "Received", 3, ""), 0);
    /* absent: a value is added, a deletion does nothing */
    assert_int_equal(milter_hdrs_change(&h, "Received", 9, ""), 0);
    assert_int_equal(milter_hdrs_change(&h, "X-New", 1, " fresh"), 0);
    struct buf b = {0};
    assert_string_equal(written(&h, &b), "X-Top: top\r\n"
                                         "Received: one\r\n"
                                         "X-Mid: mid\r\n"
                                         "Subject: new\r\n\tsubject\r\n"
                                         "received: TWO\r\n"
                                         "X-Add: added\r\n"
                                         "X-End: end\r\n"
                                         "X-New: fresh\r\n");
    buf_free(&b);
    milter_hdrs_free(&h);
}

static void test_refused_edits(void **state)
{
    (void)state;
    struct milter_hdrs h;
    parse(&h, "A: 1\r\n\r\n");
    static const char *const names[] = {"", "Bad:Name", "Bad Name", "Bad\x7fName", "B\xc3\xa4"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(milter_hdrs_add(&h, names[i], " v"), -1);
        assert_int_equal(milter_hdrs_insert(&h, 0, names[i], " v"), -1);
    }
    /* line breaks that are not folds: they would end the section or add a field */
    static const char *const values[] = {" a\r\n\r\nbody", " a\nB: smuggled", " a\n", " a\rb",
                                         " a\r"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        assert_int_equal(milter_hdrs_add(&h, "X", values[i]), -1);
        assert_int_equal(milter_hdrs_change(&h, "A", 1, values[i]), -1);
    }
    struct buf b = {0};
    assert_string_equal(written(&h, &b), "A: 1\r\n");
    /* a full output buffer leaves it as it was */
    struct buf small;
    buf_init(&small, 4);
    assert_int_equal(buf_append(&small, "ab", 2), 0);
    assert_int_equal(milter_hdrs_write(&h, &small), -1);
    assert_int_equal(small.len, 2);
    buf_free(&small);
    buf_free(&b);
    milter_hdrs_free(&h);
}

static void test_apply_mods(void **state)
{
    (void)state;
    struct milter_hdrs h;
    parse(&h, "Subject: s\r\nX-Spam: yes\r\n\r\n");
    const struct milter_mod mods[] = {
        {MILTER_MOD_ADDHDR, 0, "X-A", " a"},
        {MILTER_MOD_INSHDR, 0, "DKIM-Signature", " v=1; d=x;\n\tb=abc"},
        {MILTER_MOD_CHGHDR, 1, "x-spam", ""},
        {MILTER_MOD_CHGHDR, 1, "Subject", " [tag] s"},
        {MILTER_MOD_ADDRCPT, 0, "<r@x>", NULL}, /* not a header edit: untouched */
        {MILTER_MOD_QUARANTINE, 0, "why", NULL},
    };
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++)
        assert_int_equal(milter_hdrs_apply(&h, &mods[i]), 0);
    struct buf b = {0};
    assert_string_equal(written(&h, &b), "DKIM-Signature: v=1; d=x;\r\n\tb=abc\r\n"
                                         "Subject: [tag] s\r\n"
                                         "X-A: a\r\n");
    buf_free(&b);
    const struct milter_mod bad = {MILTER_MOD_ADDHDR, 0, "X", " a\nY: b"};
    assert_int_equal(milter_hdrs_apply(&h, &bad), -1);
    assert_int_equal(h.n, 3);
    milter_hdrs_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_simple_and_folded),
        cmocka_unit_test(test_parse_ends),
        cmocka_unit_test(test_edits),
        cmocka_unit_test(test_refused_edits),
        cmocka_unit_test(test_apply_mods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
