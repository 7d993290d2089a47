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
    .last_reason = "Deferred: 451 4.3.0 try later",
    .maildrop = "1700000000.42.9f3a",
    .rcpts = sample_rcpts,
    .n_rcpts = 2,
};

#define SP10 "          "
/* The reason above, space-padded to ENVELOPE_REASON_WIDTH (29 + 131 octets). */
#define SAMPLE_REASON                                                                              \
    "Deferred: 451 4.3.0 try later" SP10 SP10 SP10 SP10 SP10 SP10 SP10 SP10 SP10 SP10 SP10 SP10    \
        SP10 " "

/* The documented format (docs/queue.md), byte for byte. */
static const char sample_qf[] = "V1\n"
                                "I0a1B2c3D4e5F6g7H\n"
                                "T00000000001700000000\n"
                                "N0000000003\n"
                                "W00000000001700003600\n"
                                "E" SAMPLE_REASON "\n"
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
                                "O1700000000.42.9f3a\n"
                                "RP 00 - alice@example.org\n"
                                "RD 06 rfc822;bob+2B40example.net bob@example.net\n"
                                ".\n";

/* A qf written before the E and O records existed: still read (a queue survives an
 * upgrade). */
static const char old_qf[] = "V1\n"
                             "I0a1B2c3D4e5F6g7H\n"
                             "T00000000001700000000\n"
                             "N0000000003\n"
                             "W00000000001700003600\n"
                             "L00000000000000001024\n"
                             "B8\n"
                             "U1\n"
                             "X2\n"
                             "Ssender@example.com\n"
                             "RP 00 - alice@example.org\n"
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
    assert_str_or_null(a->last_reason, b->last_reason);
    assert_str_or_null(a->maildrop, b->maildrop);
    assert_str_or_null(a->auth, b->auth);
    assert_int_equal(a->n_rcpts, b->n_rcpts);
    for (size_t i = 0; i < a->n_rcpts; i++) {
        assert_string_equal(a->rcpts[i].addr, b->rcpts[i].addr);
        assert_str_or_null(a->rcpts[i].orcpt, b->rcpts[i].orcpt);
        assert_int_equal(a->rcpts[i].notify, b->rcpts[i].notify);
        assert_int_equal(a->rcpts[i].state, b->rcpts[i].state);
        assert_int_equal(a->rcpts[i].expanded, b->rcpts[i].expanded);
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

/* An expanded local target keeps its mark beside its NOTIFY bits, and the mark is the top
 * bit of the notify byte: an older qf (no mark) reads as a client's address. */
static void test_expanded_target(void **state)
{
    (void)state;
    struct envelope_rcpt r[] = {
        {.addr = "|/usr/bin/vacation alice",
         .expanded = true,
         .notify = ENV_NOTIFY_DELAY,
         .state = ENV_RCPT_PENDING},
        {.addr = "alice@example.org", .notify = ENV_NOTIFY_FAILURE, .state = ENV_RCPT_PENDING},
    };
    struct envelope m = sample;
    m.rcpts = r;
    m.n_rcpts = 2;
    struct buf b;
    assert_round_trip(&m, &b);
    assert_non_null(strstr(b.data, "\nRP 88 - |/usr/bin/vacation+20alice\n"));
    assert_non_null(strstr(b.data, "\nRP 04 - alice@example.org\n"));
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
    /* Exactly one line per record: V, 18 fields, 2 recipients, end marker. */
    size_t lines = 0;
    for (size_t i = 0; i < b.len; i++)
        lines += b.data[i] == '\n';
    assert_int_equal(lines, 1 + 18 + 2 + 1);
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
    assert_string_equal(err, "line 22: truncated: no end marker");
    assert_int_equal(envelope_parse(b.data, b.len - 3, &e, err, sizeof(err)), -1);
    assert_string_equal(err, "line 21: truncated: last line has no newline");
    buf_free(&b);
}

/* One file: the end marker "=" and exactly the L record's octets of data after it, any
 * bytes (a "." line or an LF-free tail included); fewer or more is refused. */
static void test_data_inline(void **state)
{
    (void)state;
    static const char data[] = "Subject: x\r\n\r\n.\r\n=\n\0\xff";
    struct envelope m = sample, e;
    struct buf b;
    char err[128];
    m.size = sizeof(data) - 1;
    m.data_inline = true;
    write_env(&m, &b);
    assert_true(b.len > 2 && memcmp(b.data + b.len - 3, "\n=\n", 3) == 0);
    size_t env_len = b.len;
    assert_int_equal(buf_append(&b, data, sizeof(data) - 1), 0);
    parse_ok(&b, &e);
    assert_true(e.data_inline);
    assert_int_equal(e.data_offset, env_len);
    assert_int_equal(e.size, sizeof(data) - 1);
    assert_memory_equal(b.data + e.data_offset, data, e.size);
    envelope_free(&e);
    assert_int_equal(envelope_parse(b.data, b.len - 1, &e, err, sizeof(err)), -1);
    assert_string_equal(err, "line 22: truncated: 20 octets of data, the L record says 21");
    assert_int_equal(buf_append(&b, "x", 1), 0);
    assert_int_equal(envelope_parse(b.data, b.len, &e, err, sizeof(err)), -1);
    assert_string_equal(err, "line 22: damaged: 22 octets of data, the L record says 21");
    buf_free(&b);
    /* the envelope alone, as a df's qf says it: no data offset */
    write_env(&sample, &b);
    parse_ok(&b, &e);
    assert_false(e.data_inline);
    assert_int_equal(e.data_offset, 0);
    envelope_free(&e);
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
    expect_error("B8\n", "B9\n", "line 8: value not allowed");
    expect_error("U1\n", "Ux\n", "line 9: flag must be 0 or 1");
    expect_error("Ssender@", "Ssen der@", "line 11: raw space or control character in a value");
    expect_error("Ssender@", "Ssender+4@", "line 11: bad +XX escape");
    expect_error("Ssender@", "Ssender+00@", "line 11: bad +XX escape");
    expect_error("Hmx", "Hmx\r", "line 12: raw space or control character in a value");
    expect_error("A192", "Q192", "line 13: unknown record");
    expect_error("Cmx.example.com\n", "Cmx.example.com\nCx\n", "line 15: duplicate record");
    expect_error("DMTA\n", "\n", "line 16: empty line");
    expect_error("RP 00", "RQ 00", "line 20: bad recipient state");
    expect_error("RP 00", "RP 0g", "line 20: bad recipient notify field");
    expect_error("RP 00 - alice@example.org", "RP 00 -", "line 20: malformed recipient record");
    expect_error("RD 06 rfc822;bob+2B40example.net bob@example.net",
                 "RD 06 rfc822;bob bob@ex ample.net",
                 "line 21: raw space or control character in a value");
    expect_error("L00000000000000001024\n", "", "line 21: missing the L record");
    expect_error(".\n", ".\nextra\n", "line 23: data after the end marker");
}

/* The reason and maildrop records: their own errors. */
static void test_garbled_new_records(void **state)
{
    (void)state;
    expect_error("Deferred: 451", "Deferred:\t451", "line 6: control character in the reason");
    expect_error("Deferred: 451", "Deferred: 45", "line 6: reason field has the wrong width");
    expect_error("O1700000000.42.9f3a", "O1700000000/42", "line 19: bad maildrop name");
    expect_error("O1700000000.42.9f3a", "O..", "line 19: bad maildrop name");
}

/* An old qf parses: no reason (and no offset to rewrite it at), no maildrop. */
static void test_old_format(void **state)
{
    (void)state;
    struct envelope e;
    char err[128] = "";
    assert_int_equal(envelope_parse(old_qf, strlen(old_qf), &e, err, sizeof(err)), 0);
    assert_null(e.last_reason);
    assert_int_equal(e.last_reason_offset, 0);
    assert_null(e.maildrop);
    assert_int_equal(e.attempts, 3);
    assert_int_equal(e.n_rcpts, 1);
    envelope_free(&e);
}

/* Controls and non-ASCII become '?', long text is cut, the field is always the full width
 * and an in-place rewrite of it parses back trimmed. */
static void test_reason_field(void **state)
{
    (void)state;
    char field[ENVELOPE_REASON_WIDTH];
    char long_text[300];
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';

    envelope_reason_format(field, "a\r\nb\t\xc3\xa9");
    assert_memory_equal(field, "a??b???   ", 10);
    envelope_reason_format(field, long_text);
    assert_memory_equal(field, long_text, ENVELOPE_REASON_WIDTH);
    envelope_reason_format(field, NULL);
    for (size_t i = 0; i < sizeof(field); i++)
        assert_int_equal(field[i], ' ');

    struct envelope m = sample, e, u;
    m.last_reason = NULL;
    m.maildrop = NULL;
    struct buf b;
    write_env(&m, &b);
    parse_ok(&b, &e);
    assert_null(e.last_reason);
    assert_int_not_equal(e.last_reason_offset, 0);
    envelope_reason_format(field, "Deferred: Connection refused by mx.example.org.");
    memcpy(b.data + e.last_reason_offset, field, sizeof(field));
    parse_ok(&b, &u);
    assert_string_equal(u.last_reason, "Deferred: Connection refused by mx.example.org.");
    envelope_free(&u);
    envelope_free(&e);
    buf_free(&b);
}

/* The held marker fits the time field and round-trips. */
static void test_held(void **state)
{
    (void)state;
    struct envelope m = sample, e;
    m.next_attempt = ENVELOPE_NEXT_HELD;
    struct buf b;
    write_env(&m, &b);
    parse_ok(&b, &e);
    assert_true(e.next_attempt == ENVELOPE_NEXT_HELD);
    envelope_free(&e);
    buf_free(&b);
}

/* The quarantine reason is a fixed-width field, written only when set: blanking it in
 * place (a release) leaves a message that is not quarantined. */
static void test_q_record(void **state)
{
    (void)state;
    struct envelope m = sample, e, u;
    struct buf b;
    write_env(&m, &b);
    parse_ok(&b, &e);
    assert_null(e.quarantine);
    assert_int_equal(e.quarantine_offset, 0);
    envelope_free(&e);
    buf_free(&b);
    m.quarantine = "look at it";
    write_env(&m, &b);
    parse_ok(&b, &e);
    assert_string_equal(e.quarantine, "look at it");
    assert_int_not_equal(e.quarantine_offset, 0);
    assert_memory_equal(b.data + e.quarantine_offset, "look at it ", 11);
    char blank[ENVELOPE_REASON_WIDTH];
    envelope_reason_format(blank, NULL);
    memcpy(b.data + e.quarantine_offset, blank, sizeof(blank));
    parse_ok(&b, &u);
    assert_null(u.quarantine);
    envelope_free(&u);
    envelope_free(&e);
    buf_free(&b);
}

static void test_maildrop_names(void **state)
{
    (void)state;
    char name[ENVELOPE_MAILDROP_MAX + 2];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_false(envelope_maildrop_name_valid(name));
    name[ENVELOPE_MAILDROP_MAX] = '\0';
    assert_true(envelope_maildrop_name_valid(name));
    assert_true(envelope_maildrop_name_valid("1700000000.123.AbC-_9"));
    assert_false(envelope_maildrop_name_valid(""));
    assert_false(envelope_maildrop_name_valid("."));
    assert_false(envelope_maildrop_name_valid(".."));
    assert_false(envelope_maildrop_name_valid("a/b"));
    assert_false(envelope_maildrop_name_valid("a b"));

    struct envelope m = sample;
    m.maildrop = "../etc/passwd";
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(envelope_write(&m, &b), -1);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

/* MAIL's AUTH= (the 'a' record): xtext as received, '+' escaped once more like any value,
 * read back unchanged; "<>" too; absent, no record and NULL. */
static void test_auth_record(void **state)
{
    (void)state;
    static const char *const values[] = {"alice+2Bmail@example.com", "<>"};
    static const char *const lines[] = {"\naalice+2B2Bmail@example.com\n", "\na<>\n"};
    for (size_t i = 0; i < 2; i++) {
        struct envelope m = sample;
        m.auth = (char *)values[i];
        struct buf b;
        assert_round_trip(&m, &b);
        assert_true(buf_append(&b, "", 1) == 0 && strstr(b.data, lines[i]));
        buf_free(&b);
    }
    struct buf b;
    write_env(&sample, &b);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_null(strstr(b.data, "\na"));
    buf_free(&b);
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
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_expanded_target),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_injection),
        cmocka_unit_test(test_offsets_in_place),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_garbled),
        cmocka_unit_test(test_data_inline),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_garbled_new_records),
        cmocka_unit_test(test_old_format),
        cmocka_unit_test(test_reason_field),
        cmocka_unit_test(test_held),
        cmocka_unit_test(test_auth_record),
        cmocka_unit_test(test_maildrop_names),
        cmocka_unit_test(test_q_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
