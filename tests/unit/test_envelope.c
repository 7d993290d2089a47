/* The qf format: exact text, round trips, injection safety, in-place offsets, and the
 * errors for truncated or garbled files (with their line numbers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"

static struct envelope_rcpt sample_rcpts[] = {
    {.addr = "alice@example.org", .state = ENV_RCPT_PENDING},
    {.addr = "bob@example.net",
     .orcpt = "rfc822;bob+40example.net",
     .notify = ENV_NOTIFY_SUCCESS | ENV_NOTIFY_FAILURE,
     .state = ENV_RCPT_DELIVERED},
};

static const struct envelope sample = {
    .qid = "0a1B2c3D4e5F6g7H",
    .sender = "sender@example.com",
    .created = 1700000000,
    .size = 1024,
    .helo = "mx.example.com",
    .client_addr = "192.0.2.1",
    .client_name = "mx.example.com",
    .proto = "ESMTPS",
    .daemon = "MTA",
    .msgid = "<1@example.com>",
    .body = 8,
    .smtputf8 = true,
    .dsn_ret = 2,
    .envid = "QQ314159",
    .attempts = 3,
    .next_attempt = 1700003600,
    .rcpts = sample_rcpts,
    .n_rcpts = 2,
};

/* The documented format (docs/queue.md), byte for byte. */
static const char sample_qf[] = "V1\n"
                                "I0a1B2c3D4e5F6g7H\n"
                                "T00000000001700000000\n"
                                "N0000000003\n"
                                "W00000000001700003600\n"
                                "L00000000000000001024\n"
                                "B8\n"
                                "U1\n"
                                "X2\n"
                                "Ssender@example.com\n"
                                "Hmx.example.com\n"
                                "A192.0.2.1\n"
                                "Cmx.example.com\n"
                                "PESMTPS\n"
                                "DMTA\n"
                                "M<1@example.com>\n"
                                "ZQQ314159\n"
                                "RP 00 - alice@example.org\n"
                                "RD 06 rfc822;bob+2B40example.net bob@example.net\n"
                                ".\n";

static void write_env(const struct envelope *e, struct buf *b)
{
    buf_init(b, 0);
    assert_int_equal(envelope_write(e, b), 0);
}

static void parse_ok(const struct buf *b, struct envelope *out)
{
    char err[128] = "";
    int r = envelope_parse(b->data, b->len, out, err, sizeof(err));
    if (r != 0)
        fail_msg("parse: %s", err);
}

static void assert_str_or_null(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_env_equal(const struct envelope *a, const struct envelope *b)
{
    assert_string_equal(a->qid, b->qid);
    assert_str_or_null(a->sender, b->sender);
    assert_int_equal(a->created, b->created);
    assert_int_equal(a->size, b->size);
    assert_str_or_null(a->helo, b->helo);
    assert_str_or_null(a->client_addr, b->client_addr);
    assert_str_or_null(a->client_name, b->client_name);
    assert_str_or_null(a->proto, b->proto);
    assert_str_or_null(a->daemon, b->daemon);
    assert_str_or_null(a->msgid, b->msgid);
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->smtputf8, b->smtputf8);
    assert_int_equal(a->dsn_ret, b->dsn_ret);
    assert_str_or_null(a->envid, b->envid);
    assert_int_equal(a->attempts, b->attempts);
    assert_int_equal(a->next_attempt, b->next_attempt);
    assert_int_equal(a->n_rcpts, b->n_rcpts);
    for (size_t i = 0; i < a->n_rcpts; i++) {
        assert_string_equal(a->rcpts[i].addr, b->rcpts[i].addr);
        assert_str_or_null(a->rcpts[i].orcpt, b->rcpts[i].orcpt);
        assert_int_equal(a->rcpts[i].notify, b->rcpts[i].notify);
        assert_int_equal(a->rcpts[i].state, b->rcpts[i].state);
    }
}

static void test_golden(void **state)
{
    (void)state;
    struct buf b;
    write_env(&sample, &b);
    assert_int_equal(b.len, strlen(sample_qf));
    assert_memory_equal(b.data, sample_qf, b.len);
    buf_free(&b);
}

/* Writes `m` into `b`, parses it back and compares; `b` stays for inspection. */
static void assert_round_trip(const struct envelope *m, struct buf *b)
{
    struct envelope e;
    write_env(m, b);
    parse_ok(b, &e);
    assert_env_equal(&e, m);
    envelope_free(&e);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct buf b;
    assert_round_trip(&sample, &b);
    buf_free(&b);
}

/* NULL optional strings stay NULL, the null sender stays "", no recipients is fine. */
static void test_minimal(void **state)
{
    (void)state;
    struct envelope m = {.qid = "zzzzzzzzzzzzzzzz", .sender = ""};
    struct buf b;
    assert_round_trip(&m, &b);
    buf_free(&b);
}

/* Line ends, controls, spaces, '+' and a leading '-' cannot forge a record and come back
 * exactly. */
static void test_injection(void **state)
{
    (void)state;
    struct envelope_rcpt r[] = {
        {.addr = "x@y\r\nRP 00 - victim@example.com", .orcpt = "-", .state = ENV_RCPT_PENDING},
        {.addr = "-dash+plus @\x7f\x01", .orcpt = "", .state = ENV_RCPT_FAILED, .notify = 1},
    };
    struct envelope m = sample;
    m.sender = "evil\n.\nRP 00 - x@y";
    m.helo = "h\r\nS";
    m.client_name = "caf\xc3\xa9.example"; /* UTF-8 passes through unescaped */
    m.msgid = "+";
    m.rcpts = r;
    m.n_rcpts = 2;
    struct buf b;
    assert_round_trip(&m, &b);
    /* Exactly one line per record: V, 16 fields, 2 recipients, end marker. */
    size_t lines = 0;
    for (size_t i = 0; i < b.len; i++)
        lines += b.data[i] == '\n';
    assert_int_equal(lines, 1 + 16 + 2 + 1);
    assert_non_null(memmem(b.data, b.len, "Sevil+0A.+0ARP+2000+20-+20x@y\n", 30));
    assert_non_null(memmem(b.data, b.len, "Ccaf\xc3\xa9.example\n", 14));
    assert_non_null(memmem(b.data, b.len, "RF 01  +2Ddash+2Bplus+20@+7F+01\n", 31));
    buf_free(&b);
}

/* The offsets point at the fields, and a same-width overwrite parses back as the update. */
static void test_offsets_in_place(void **state)
{
    (void)state;
    struct buf b;
    struct envelope e, u;
    write_env(&sample, &b);
    parse_ok(&b, &e);
    assert_int_equal(b.data[e.rcpts[0].state_offset], 'P');
    assert_int_equal(b.data[e.rcpts[1].state_offset], 'D');
    assert_memory_equal(b.data + e.attempts_offset, "0000000003", ENVELOPE_COUNT_WIDTH);
    assert_memory_equal(b.data + e.next_attempt_offset, "00000000001700003600",
                        ENVELOPE_TIME_WIDTH);
    b.data[e.rcpts[0].state_offset] = ENV_RCPT_FAILED;
    memcpy(b.data + e.attempts_offset, "0000000004", ENVELOPE_COUNT_WIDTH);
    memcpy(b.data + e.next_attempt_offset, "00000000001700007200", ENVELOPE_TIME_WIDTH);
    parse_ok(&b, &u);
    assert_int_equal(u.rcpts[0].state, ENV_RCPT_FAILED);
    assert_int_equal(u.attempts, 4);
    assert_int_equal(u.next_attempt, 1700007200);
    envelope_free(&u);
    envelope_free(&e);
    buf_free(&b);
}

/* Every proper prefix of a qf is refused: a crash mid-write is never a smaller message. */
static void test_truncated(void **state)
{
    (void)state;
    struct buf b;
    struct envelope e;
    char err[128];
    write_env(&sample, &b);
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(envelope_parse(b.data, n, &e, err, sizeof(err)), -1);
    assert_int_equal(envelope_parse(b.data, b.len - 2, &e, err, sizeof(err)), -1);
    assert_string_equal(err, "line 20: truncated: no end marker");
    assert_int_equal(envelope_parse(b.data, b.len - 3, &e, err, sizeof(err)), -1);
    assert_string_equal(err, "line 19: truncated: last line has no newline");
    buf_free(&b);
}

/* Replaces the first occurrence of `from` in the sample and expects `msg`. */
static void expect_error(const char *from, const char *to, const char *msg)
{
    char text[sizeof(sample_qf) + 64];
    char err[128] = "";
    struct envelope e;
    const char *at = strstr(sample_qf, from);
    assert_non_null(at);
    int n = snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - sample_qf), sample_qf, to,
                     at + strlen(from));
    assert_int_equal(envelope_parse(text, (size_t)n, &e, err, sizeof(err)), -1);
    assert_string_equal(err, msg);
    assert_null(e.sender);
    assert_null(e.rcpts);
}

static void test_garbled(void **state)
{
    (void)state;
    expect_error("V1\n", "V2\n", "line 1: not a version 1 queue file");
    expect_error("I0a1B2c3D4e5F6g7H\n", "I0a1B2c3D4e5F6g7\n", "line 2: bad queue id");
    expect_error("T00000000001700000000", "T0000000001700000000",
                 "line 3: fixed-width number has the wrong width");
    expect_error("N0000000003", "N00000000x3", "line 4: not a number");
    expect_error("N0000000003", "N9999999999", "line 4: number out of range");
    expect_error("W00000000001700003600", "W99999999999999999999", "line 5: number out of range");
    expect_error("B8\n", "B9\n", "line 7: value not allowed");
    expect_error("U1\n", "Ux\n", "line 8: flag must be 0 or 1");
    expect_error("Ssender@", "Ssen der@", "line 10: raw space or control character in a value");
    expect_error("Ssender@", "Ssender+4@", "line 10: bad +XX escape");
    expect_error("Ssender@", "Ssender+00@", "line 10: bad +XX escape");
    expect_error("Hmx", "Hmx\r", "line 11: raw space or control character in a value");
    expect_error("A192", "Q192", "line 12: unknown record");
    expect_error("Cmx.example.com\n", "Cmx.example.com\nCx\n", "line 14: duplicate record");
    expect_error("DMTA\n", "\n", "line 15: empty line");
    expect_error("RP 00", "RQ 00", "line 18: bad recipient state");
    expect_error("RP 00", "RP 0g", "line 18: bad recipient notify field");
    expect_error("RP 00 - alice@example.org", "RP 00 -", "line 18: malformed recipient record");
    expect_error("RD 06 rfc822;bob+2B40example.net bob@example.net",
                 "RD 06 rfc822;bob bob@ex ample.net",
                 "line 19: raw space or control character in a value");
    expect_error("L00000000000000001024\n", "", "line 19: missing the L record");
    expect_error(".\n", ".\nextra\n", "line 21: data after the end marker");
}

/* A buffer limit makes envelope_write fail and leaves the buffer as it was. */
static void test_limit(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 64);
    assert_int_equal(buf_append(&b, "keep", 4), 0);
    assert_int_equal(envelope_write(&sample, &b), -1);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "keep", 4);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),           cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_minimal),          cmocka_unit_test(test_injection),
        cmocka_unit_test(test_offsets_in_place), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_garbled),          cmocka_unit_test(test_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
