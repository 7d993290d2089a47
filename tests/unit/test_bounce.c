/* Delivery status notifications: the report's fields, RET=HDRS vs FULL, the size limit,
 * ENVID and ORCPT carried back, NOTIFY and double-bounce decisions, and the line rules
 * (CRLF only, nothing over 998 octets, no header injection from a reply). The Python
 * test tests/integration/test_bounce_format.py parses the same output as MIME. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/bounce.h"

#define NOW ((time_t)1700003600)

static const char original[] = "Received: from client.example.org ([192.0.2.1])\r\n"
                               "\tby mx.test with ESMTP id 0a1B2c3D4e5F6g7H\r\n"
                               "From: Sender <sender@example.com>\r\n"
                               "To: user@example.net\r\n"
                               "Subject: hello\r\n"
                               "Message-ID: <1@example.com>\r\n"
                               "\r\n"
                               "The body, line one.\r\n"
                               "BODY-MARKER line two.\r\n";

static struct envelope sample_env(void)
{
    return (struct envelope){
        .qid = "0a1B2c3D4e5F6g7H",
        .sender = "sender@example.com",
        .created = 1700000000,
        .helo = "client.example.org",
        .client_addr = "192.0.2.1",
        .client_name = "client.example.org",
        .proto = "ESMTP",
        .daemon = "MTA",
    };
}

static const struct bounce_rcpt failed_rcpt = {
    .addr = "user@example.net",
    .action = 'f',
    .status = "5.1.1",
    .remote_mta = "mx.example.net",
    .diagnostic = "550 5.1.1 <user@example.net>... User unknown",
    .last_attempt = 1700003500,
};

static struct queue_retry_settings retry;

static struct bounce_params sample_params(const struct envelope *e, const struct bounce_rcpt *r,
                                          size_t n)
{
    return (struct bounce_params){
        .kind = BOUNCE_FAILURE,
        .env = e,
        .data = original,
        .len = sizeof(original) - 1,
        .rcpts = r,
        .n_rcpts = n,
        .to = e->sender,
        .hostname = "mx.test",
        .notice_qid = "0a1B2c9Z9Z9Z9Z9Z",
        .retry = &retry,
        .now = NOW,
    };
}

/* Generates into a fresh NUL-terminated string (the caller frees it). */
static char *generate(const struct bounce_params *p, struct bounce_info *info)
{
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(bounce_generate(p, &b, info), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    return b.data;
}

/* CRLF everywhere, no bare CR or LF, no line over 998 octets. */
static void assert_lines_ok(const char *m)
{
    size_t col = 0;
    for (const char *p = m; *p; p++) {
        if (*p == '\r') {
            assert_int_equal(p[1], '\n');
            p++;
            col = 0;
            continue;
        }
        assert_int_not_equal(*p, '\n');
        col++;
        assert_true(col <= 998);
    }
    assert_int_equal(col, 0);
}

/* The header block of the notice (up to the first empty line). */
static bool has_header(const char *m, const char *line)
{
    const char *end = strstr(m, "\r\n\r\n");
    const char *at = strstr(m, line);
    return at && at < end && (at == m || at[-1] == '\n');
}

static void test_failure_fields(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    struct bounce_params p = sample_params(&e, &failed_rcpt, 1);
    struct bounce_info info;
    char *m = generate(&p, &info);
    assert_lines_ok(m);
    assert_true(has_header(m, "Date: Tue, 14 Nov 2023 23:13:20 +0000\r\n"));
    assert_true(has_header(m, "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.test>\r\n"));
    assert_true(has_header(m, "To: <sender@example.com>\r\n"));
    assert_true(has_header(m, "Subject: Returned mail: see transcript for details\r\n"));
    assert_true(has_header(m, "Message-ID: <202311142313.0a1B2c9Z9Z9Z9Z9Z@mx.test>\r\n"));
    assert_true(has_header(m, "Auto-Submitted: auto-replied\r\n"));
    assert_true(has_header(m, "MIME-Version: 1.0\r\n"));
    assert_true(has_header(m, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                              "\tboundary=\"0a1B2c9Z9Z9Z9Z9Z.1700003600/mx.test\"\r\n"));
    /* sendmail's human part. */
    assert_non_null(strstr(m, "The original message was received at Tue, 14 Nov 2023 "
                              "22:13:20 +0000\r\nfrom client.example.org [192.0.2.1]\r\n"));
    assert_non_null(strstr(m, "   ----- The following addresses had permanent fatal errors "
                              "-----\r\n<user@example.net>\r\n    (reason: 550 5.1.1 "
                              "<user@example.net>... User unknown)\r\n"));
    assert_non_null(strstr(m, "... while talking to mx.example.net:\r\n<<< 550 5.1.1"));
    /* The delivery-status part, per message then per recipient. */
    assert_non_null(strstr(m, "Content-Type: message/delivery-status\r\n\r\n"
                              "Reporting-MTA: dns; mx.test\r\n"
                              "Received-From-MTA: dns; client.example.org\r\n"
                              "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                              "\r\n"
                              "Final-Recipient: rfc822; user@example.net\r\n"
                              "Action: failed\r\n"
                              "Status: 5.1.1\r\n"
                              "Remote-MTA: dns; mx.example.net\r\n"
                              "Diagnostic-Code: smtp; 550 5.1.1 <user@example.net>... User "
                              "unknown\r\n"
                              "Last-Attempt-Date: Tue, 14 Nov 2023 23:11:40 +0000\r\n"));
    assert_null(strstr(m, "Original-Envelope-Id"));
    assert_null(strstr(m, "Original-Recipient"));
    assert_null(strstr(m, "Will-Retry-Until"));
    /* No RET: the whole original comes back, byte for byte. */
    assert_non_null(strstr(m, "Content-Type: message/rfc822\r\n\r\n"));
    assert_non_null(strstr(m, original));
    assert_non_null(strstr(m, "BODY-MARKER line two.\r\n\r\n--0a1B2c9Z9Z9Z9Z9Z.1700003600/"
                              "mx.test--\r\n"));
    assert_false(info.headers_only);
    assert_false(info.over_limit);
    assert_false(info.eight_bit);
    free(m);
}

static void test_ret_hdrs(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    e.dsn_ret = 2;
    struct bounce_params p = sample_params(&e, &failed_rcpt, 1);
    struct bounce_info info;
    char *m = generate(&p, &info);
    assert_lines_ok(m);
    assert_true(info.headers_only);
    assert_false(info.over_limit);
    assert_non_null(strstr(m, "Content-Type: text/rfc822-headers\r\n\r\nReceived: from "));
    assert_non_null(strstr(m, "Message-ID: <1@example.com>\r\n\r\n--0a1B2c9Z"));
    assert_null(strstr(m, "BODY-MARKER"));
    assert_null(strstr(m, "message/rfc822"));
    free(m);

    /* RET=FULL is the default made explicit. */
    e.dsn_ret = 1;
    m = generate(&p, &info);
    assert_false(info.headers_only);
    assert_non_null(strstr(m, "BODY-MARKER"));
    free(m);
}

static void test_size_limit(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    struct bounce_params p = sample_params(&e, &failed_rcpt, 1);
    p.max_returned = p.len;
    struct bounce_info info;
    char *m = generate(&p, &info);
    assert_false(info.headers_only);
    assert_non_null(strstr(m, "BODY-MARKER"));
    free(m);

    p.max_returned = p.len - 1;
    m = generate(&p, &info);
    assert_lines_ok(m);
    assert_true(info.headers_only);
    assert_true(info.over_limit);
    assert_null(strstr(m, "BODY-MARKER"));
    assert_non_null(strstr(m, "Content-Type: text/rfc822-headers\r\n"));
    char note[200];
    snprintf(note, sizeof(note),
             "----- The message was %zu octets, more than the %zu returned here: only its "
             "header follows -----",
             p.len, p.max_returned);
    assert_non_null(strstr(m, note));
    free(m);
}

static void test_delay_and_success(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    struct bounce_rcpt r = {
        .addr = "slow@example.net",
        .action = 'd',
        .status = "4.4.1",
        .remote_mta = "mx.example.net",
        .diagnostic = "421 4.4.1 try later",
        .last_attempt = 1700003500,
    };
    struct bounce_params p = sample_params(&e, &r, 1);
    p.kind = BOUNCE_DELAY;
    struct bounce_info info;
    char *m = generate(&p, &info);
    assert_lines_ok(m);
    assert_true(has_header(m, "Subject: Warning: could not send message for past 4 hours\r\n"));
    assert_non_null(strstr(m, "**      THIS IS A WARNING MESSAGE ONLY      **"));
    assert_non_null(strstr(m, "following addresses had transient non-fatal errors"));
    assert_non_null(strstr(m, "<slow@example.net>... Deferred: 421 4.4.1 try later\r\n"));
    assert_non_null(strstr(m, "Warning: message still undelivered after 4 hours\r\n"
                              "Will keep trying until message is 5 days old\r\n"));
    assert_non_null(strstr(m, "Action: delayed\r\nStatus: 4.4.1\r\n"));
    /* created + queuereturn */
    assert_non_null(strstr(m, "Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000\r\n"));
    /* RFC 3461 4.3: a notice that reports no failure returns the header only. */
    assert_true(info.headers_only);
    assert_null(strstr(m, "BODY-MARKER"));
    free(m);

    retry.queuewarn = 90 * 60 + 86400;
    m = generate(&p, &info);
    assert_true(has_header(
        m, "Subject: Warning: could not send message for past 1 day, 1 hour, 30 minutes\r\n"));
    free(m);
    retry = queue_retry_defaults();

    struct bounce_rcpt ok[] = {
        {.addr = "a@example.net", .action = 'D'},
        {.addr = "b@example.net", .action = 'r', .status = "2.0.0", .remote_mta = "old.example"},
    };
    p = sample_params(&e, ok, 2);
    p.kind = BOUNCE_SUCCESS;
    m = generate(&p, &info);
    assert_lines_ok(m);
    assert_true(has_header(m, "Subject: Return receipt\r\n"));
    assert_non_null(strstr(m, "<a@example.net>\r\n    (successfully delivered)\r\n"));
    assert_non_null(strstr(m, "<b@example.net>\r\n    (relayed to non-DSN-aware mailer)\r\n"));
    assert_non_null(strstr(m, "Action: delivered\r\nStatus: 2.0.0\r\n"));
    assert_non_null(strstr(m, "Action: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; old.example"));
    assert_null(strstr(m, "Transcript of session"));
    assert_true(info.headers_only);
    free(m);
}

static void test_envid_orcpt_carried(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    e.envid = "QQ+2B314159";
    struct bounce_rcpt r[] = {failed_rcpt, failed_rcpt, failed_rcpt};
    r[0].orcpt = "rfc822;b+2Bob@example.net";
    /* Decoding would give a line end: kept as received (xtext). */
    r[1].orcpt = "rfc822;evil+0D+0AX-Injected:+201@x";
    /* Malformed xtext: kept as is. */
    r[2].orcpt = "rfc822;bad+ZZ@x";
    r[1].status = "5.1.10000"; /* malformed: the default for a failure */
    struct bounce_params p = sample_params(&e, r, 3);
    char *m = generate(&p, NULL);
    assert_lines_ok(m);
    assert_non_null(strstr(m, "\r\nOriginal-Envelope-Id: QQ+314159\r\nReporting-MTA: dns;"));
    assert_non_null(strstr(m, "\r\n\r\nOriginal-Recipient: rfc822;b+ob@example.net\r\n"
                              "Final-Recipient: rfc822; user@example.net\r\n"));
    assert_non_null(strstr(m, "\r\nOriginal-Recipient: rfc822;evil+0D+0AX-Injected:+201@x\r\n"));
    assert_null(strstr(m, "\nX-Injected"));
    assert_non_null(strstr(m, "\r\nOriginal-Recipient: rfc822;bad+ZZ@x\r\n"));
    assert_non_null(strstr(m, "Action: failed\r\nStatus: 5.0.0\r\n"));
    free(m);
}

static void test_notify(void **state)
{
    (void)state;
    /* Not given: FAILURE,DELAY (sendmail's default), never success. */
    assert_true(bounce_notify_wants(0, 'f'));
    assert_true(bounce_notify_wants(0, 'd'));
    assert_false(bounce_notify_wants(0, 'D'));
    assert_false(bounce_notify_wants(0, 'r'));
    assert_false(bounce_notify_wants(ENV_NOTIFY_NEVER, 'f'));
    assert_false(bounce_notify_wants(ENV_NOTIFY_NEVER, 'd'));
    assert_true(bounce_notify_wants(ENV_NOTIFY_FAILURE, 'f'));
    assert_false(bounce_notify_wants(ENV_NOTIFY_FAILURE, 'd'));
    assert_false(bounce_notify_wants(ENV_NOTIFY_DELAY, 'f'));
    assert_true(bounce_notify_wants(ENV_NOTIFY_DELAY, 'd'));
    assert_true(bounce_notify_wants(ENV_NOTIFY_SUCCESS, 'D'));
    assert_true(bounce_notify_wants(ENV_NOTIFY_SUCCESS, 'r'));
    assert_true(bounce_notify_wants(ENV_NOTIFY_SUCCESS, 'x'));
    assert_false(bounce_notify_wants(ENV_NOTIFY_SUCCESS, 'f'));
    assert_true(bounce_notify_wants(ENV_NOTIFY_SUCCESS | ENV_NOTIFY_FAILURE, 'f'));
    assert_false(bounce_notify_wants(ENV_NOTIFY_FAILURE, '?'));
}

static void test_double_bounce(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    struct bounce_target t = bounce_recipient_for(&e, BOUNCE_FAILURE, "postmaster");
    assert_string_equal(t.to, "sender@example.com");
    assert_false(t.double_bounce);

    /* A failed message from <> (someone's bounce, or ours): once to the postmaster. */
    e.sender = "";
    e.daemon = BOUNCE_DAEMON;
    t = bounce_recipient_for(&e, BOUNCE_FAILURE, "postmaster");
    assert_string_equal(t.to, "postmaster");
    assert_true(t.double_bounce);
    for (int kind = BOUNCE_DELAY; kind <= BOUNCE_SUCCESS; kind++) {
        t = bounce_recipient_for(&e, (enum bounce_kind)kind, "postmaster");
        assert_null(t.to);
        assert_non_null(t.reason);
    }
    /* A failed double bounce is dropped. */
    e.daemon = BOUNCE_DAEMON_DOUBLE;
    t = bounce_recipient_for(&e, BOUNCE_FAILURE, "postmaster");
    assert_null(t.to);
    assert_string_equal(t.reason, "double bounce failed, dropped");

    e.daemon = BOUNCE_DAEMON;
    struct bounce_params p = sample_params(&e, &failed_rcpt, 1);
    p.to = "postmaster";
    p.double_bounce = true;
    char *m = generate(&p, NULL);
    assert_true(has_header(m, "To: <postmaster>\r\n"));
    assert_true(has_header(m, "Subject: Postmaster notify: see transcript for details\r\n"));
    free(m);
}

static void test_long_lines_and_injection(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    char *diag = malloc(3100);
    memcpy(diag, "550 5.7.1 ", 10);
    memset(diag + 10, 'x', 3000);
    strcpy(diag + 3010, " end\r\nX-Evil: 1\r\n\r\n--0a1B2c9Z9Z9Z9Z9Z.1700003600/mx.test");
    struct bounce_rcpt r = failed_rcpt;
    r.diagnostic = diag;
    /* A body with a 2500-octet line, and one without its line end. */
    size_t blen = 2500;
    char *data = malloc(sizeof(original) + blen + 16);
    size_t n = (size_t)sprintf(data, "%s", original);
    memset(data + n, 'y', blen);
    n += blen;
    n += (size_t)sprintf(data + n, "\r\nlast");
    struct bounce_params p = sample_params(&e, &r, 1);
    p.data = data;
    p.len = n;
    char *m = generate(&p, NULL);
    assert_lines_ok(m);
    assert_null(strstr(m, "\nX-Evil"));
    /* The boundary in the reply text made a new one. */
    assert_true(has_header(m, "\tboundary=\"0a1B2c9Z9Z9Z9Z9Z.1700003600/mx.test.1\"\r\n"));
    /* The long line is cut, not lost: 998 + the rest. */
    char *y = strstr(m, "yyyy");
    assert_non_null(y);
    assert_int_equal(strspn(y, "y"), 998);
    assert_int_equal(strspn(y + 1000, "y"), 998);
    assert_int_equal(strspn(y + 2000, "y"), 2500 - 2 * 998);
    assert_non_null(strstr(m, "\r\nlast\r\n\r\n--"));
    free(m);
    free(data);
    free(diag);
}

static void test_boundary_not_in_content(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    static const char tricky[] = "Subject: x\r\n\r\n--0a1B2c9Z9Z9Z9Z9Z.1700003600/mx.test\r\n"
                                 "--0a1B2c9Z9Z9Z9Z9Z.1700003600/mx.test.1--\r\n";
    struct bounce_params p = sample_params(&e, &failed_rcpt, 1);
    p.data = tricky;
    p.len = sizeof(tricky) - 1;
    char *m = generate(&p, NULL);
    assert_true(has_header(m, "\tboundary=\"0a1B2c9Z9Z9Z9Z9Z.1700003600/mx.test.2\"\r\n"));
    assert_non_null(strstr(m, tricky));
    free(m);
}

static void test_buffer_limit(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    struct bounce_params p = sample_params(&e, &failed_rcpt, 1);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(bounce_generate(&p, &b, NULL), 0);
    size_t full = b.len;
    buf_free(&b);
    buf_init(&b, full - 1);
    assert_int_equal(buf_append(&b, "keep", 4), 0);
    assert_int_equal(bounce_generate(&p, &b, NULL), -1);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "keep", 4);
    buf_free(&b);
}

static void test_eight_bit(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    static const char utf8[] = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n";
    struct bounce_params p = sample_params(&e, &failed_rcpt, 1);
    p.data = utf8;
    p.len = sizeof(utf8) - 1;
    struct bounce_info info;
    char *m = generate(&p, &info);
    assert_true(info.eight_bit);
    assert_non_null(
        strstr(m, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"));
    assert_non_null(strstr(m, "Content-Type: text/plain; charset=us-ascii\r\n\r\n"));
    free(m);
}

/* A message with no data at all (nothing to return) still makes a well-formed report. */
static void test_empty_original(void **state)
{
    (void)state;
    struct envelope e = sample_env();
    struct bounce_params p = sample_params(&e, &failed_rcpt, 1);
    p.data = NULL;
    p.len = 0;
    char *m = generate(&p, NULL);
    assert_lines_ok(m);
    assert_non_null(strstr(m, "Content-Type: message/rfc822\r\n\r\n\r\n--0a1B2c9Z9Z9Z9Z9Z."
                              "1700003600/mx.test--\r\n"));
    free(m);
}

static int setup(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    retry = queue_retry_defaults();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_fields),
        cmocka_unit_test(test_ret_hdrs),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_delay_and_success),
        cmocka_unit_test(test_envid_orcpt_carried),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_double_bounce),
        cmocka_unit_test(test_long_lines_and_injection),
        cmocka_unit_test(test_boundary_not_in_content),
        cmocka_unit_test(test_buffer_limit),
        cmocka_unit_test(test_eight_bit),
        cmocka_unit_test(test_empty_original),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
