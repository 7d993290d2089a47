/* The control socket's requests: every verb, the TARGET and FILTER syntax, sendmail's -qR
 * matching (case-insensitive substrings, negation, all filters must hold), and the
 * answers to malformed lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/control_proto.h"

#define QID_A "0Tq3kZ9a1b2c0XyZ"
#define QID_B "0Tq3kZ9a1b2d0XyZ"

static void parse_ok(const char *line, struct control_request *req)
{
    char err[256] = "";
    if (control_parse(line, strlen(line), req, err, sizeof(err)) != 0)
        fail_msg("'%s': %s", line, err);
}

static void parse_err(const char *line, size_t len, const char *want)
{
    struct control_request req;
    char err[256] = "";
    assert_int_equal(control_parse(line, len, &req, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    assert_null(req.line);
    assert_null(req.filters);
}

static void test_verbs(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        enum control_verb verb;
        bool privileged;
    } cases[] = {
        {"FLUSH", CONTROL_FLUSH, false},        {"flush Rexample.com", CONTROL_FLUSH, false},
        {"HOLD ALL", CONTROL_HOLD, true},       {"RELEASE " QID_A, CONTROL_RELEASE, true},
        {"DELETE Sspam", CONTROL_DELETE, true}, {"REQUEUE ALL\r", CONTROL_REQUEUE, true},
        {"HOSTSTAT", CONTROL_HOSTSTAT, true},   {"PURGESTAT", CONTROL_PURGESTAT, true},
        {"WATCH " QID_A, CONTROL_WATCH, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct control_request req;
        parse_ok(cases[i].line, &req);
        assert_int_equal(req.verb, cases[i].verb);
        assert_int_equal(control_verb_privileged(req.verb), cases[i].privileged);
        control_request_free(&req);
    }
    assert_string_equal(control_verb_name(CONTROL_REQUEUE), "REQUEUE");
}

static void test_targets(void **state)
{
    (void)state;
    struct control_request req;
    parse_ok("HOLD  " QID_A "\t" QID_B " !Rfoo Sbar Iq3 all", &req);
    assert_true(req.all);
    assert_int_equal(req.n_qids, 2);
    assert_string_equal(req.qids[0], QID_A);
    assert_string_equal(req.qids[1], QID_B);
    assert_int_equal(req.n_filters, 3);
    assert_int_equal(req.filters[0].kind, 'R');
    assert_true(req.filters[0].negate);
    assert_string_equal(req.filters[0].text, "foo");
    assert_int_equal(req.filters[1].kind, 'S');
    assert_false(req.filters[1].negate);
    assert_int_equal(req.filters[2].kind, 'I');
    assert_true(control_needs_envelope(&req));
    control_request_free(&req);

    parse_ok("FLUSH Iabc !I0Tq", &req);
    assert_false(control_needs_envelope(&req));
    control_request_free(&req);
}

static void test_match(void **state)
{
    (void)state;
    const char *rcpts[] = {"alice@Example.COM", "bob@other.org"};
    struct control_request req;

    parse_ok("FLUSH", &req); /* no filter: everything */
    assert_true(control_match(&req, QID_A, "s@x", rcpts, 2));
    control_request_free(&req);

    parse_ok("FLUSH Rexample.com", &req); /* any recipient, any case */
    assert_true(control_match(&req, QID_A, "s@x", rcpts, 2));
    assert_false(control_match(&req, QID_A, "s@x", rcpts + 1, 1));
    control_request_free(&req);

    parse_ok("FLUSH !Rexample.com", &req); /* -q!R: no recipient contains it */
    assert_false(control_match(&req, QID_A, "s@x", rcpts, 2));
    assert_true(control_match(&req, QID_A, "s@x", rcpts + 1, 1));
    control_request_free(&req);

    parse_ok("HOLD SNEWS@ Rbob", &req); /* every filter must hold */
    assert_true(control_match(&req, QID_A, "news@list.example", rcpts, 2));
    assert_false(control_match(&req, QID_A, "other@list.example", rcpts, 2));
    assert_false(control_match(&req, QID_A, "news@list.example", rcpts, 1));
    control_request_free(&req);

    parse_ok("HOLD S@", &req); /* the null sender has no '@' */
    assert_false(control_match(&req, QID_A, "", rcpts, 2));
    control_request_free(&req);

    parse_ok("DELETE " QID_B, &req); /* a queue id: exactly that message */
    assert_false(control_match(&req, QID_A, "s@x", rcpts, 2));
    assert_true(control_match(&req, QID_B, "s@x", rcpts, 2));
    control_request_free(&req);

    parse_ok("DELETE " QID_A " " QID_B " !Sx", &req); /* any listed id, and the filters */
    assert_true(control_match(&req, QID_A, "s@y", rcpts, 2));
    assert_false(control_match(&req, QID_B, "s@x", rcpts, 2));
    control_request_free(&req);

    parse_ok("REQUEUE I9A1B2C", &req); /* -qI: a substring of the id */
    assert_true(control_match(&req, QID_A, NULL, NULL, 0));
    assert_false(control_match(&req, QID_B, NULL, NULL, 0));
    control_request_free(&req);
}

static void test_malformed(void **state)
{
    (void)state;
    char long_line[CONTROL_LINE_MAX + 10];
    memset(long_line, 'x', sizeof(long_line));
    memcpy(long_line, "FLUSH I", 7);

    parse_err("", 0, "empty request");
    parse_err("  \t", 3, "empty request");
    parse_err("FROB ALL", 8, "unknown request: FROB");
    parse_err("FR\x01OB", 5, "unknown request");
    parse_err("HOLD", 4, "HOLD needs a queue id, ALL or a filter");
    parse_err("DELETE", 6, "DELETE needs a queue id, ALL or a filter");
    parse_err("HOLD R", 6, "empty filter: R");
    parse_err("HOLD !S", 7, "empty filter: !S");
    parse_err("HOLD 123", 8, "not a queue id, ALL or a filter (R, S, I, !R, !S, !I): 123");
    parse_err("HOLD ../qf0", 11, "not a queue id, ALL or a filter (R, S, I, !R, !S, !I): ../qf0");
    parse_err("HOSTSTAT now", 12, "HOSTSTAT takes no arguments");
    parse_err("WATCH", 5, "WATCH needs exactly one queue id");
    parse_err("WATCH ALL", 9, "not a queue id: ALL");
    parse_err("WATCH " QID_A " " QID_B, 6 + 2 * QID_LEN + 1, "WATCH needs exactly one queue id");
    parse_err("HOLD Rcaf\xc3\xa9", 11, "control character or non-ASCII octet in an argument");
    parse_err("HOLD R\0x", 8, "NUL in the request");
    parse_err(long_line, sizeof(long_line), "request line too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
