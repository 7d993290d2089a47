/* AUTH in the server state machine (smtp/smtp_cmd_auth.c): offer, exchange, wait, failures,
 * cancel, AUTH required, AUTH= on MAIL. The SASL side is a fake that records each step. */
#include "smtp_server_harness.h"

struct fake_sasl {
    const char *mechs;     /* offered outside TLS */
    const char *mechs_tls; /* offered in TLS */
    bool required;
    char steps[2048]; /* "start PLAIN [resp]" / "step [resp]" / "abort", one per line */
    size_t len;
};

static struct fake_sasl fake;

static void fake_log(const char *what, const unsigned char *resp, size_t n, bool has)
{
    /* raw bytes: a PLAIN response holds NULs */
    size_t w = strlen(what);
    assert_true(fake.len + w + n + 5 < sizeof(fake.steps));
    memcpy(fake.steps + fake.len, what, w);
    fake.len += w;
    if (has) {
        memcpy(fake.steps + fake.len, " [", 2);
        memcpy(fake.steps + fake.len + 2, resp, n);
        memcpy(fake.steps + fake.len + 2 + n, "]", 1);
        fake.len += n + 3;
    }
    memcpy(fake.steps + fake.len, "\n", 2);
    fake.len++;
}

static void fake_offer(void *arg, bool tls, struct smtp_auth_offer *o)
{
    (void)arg;
    o->mechs = tls ? fake.mechs_tls : fake.mechs;
    o->required = fake.required;
}

static void fake_step(void *arg, const char *mech, const unsigned char *resp, size_t len,
                      bool has_resp)
{
    (void)arg;
    char what[40];
    snprintf(what, sizeof(what), mech ? "start %s" : "step", mech ? mech : "");
    fake_log(what, resp, len, has_resp);
}

static void fake_abort(void *arg)
{
    (void)arg;
    fake_log("abort", (const unsigned char *)"", 0, false);
}

static struct h *auth_new(void)
{
    memset(&fake, 0, sizeof(fake));
    fake.mechs = "PLAIN LOGIN CRAM-MD5";
    fake.mechs_tls = "PLAIN LOGIN CRAM-MD5";
    struct h *h = h_new(NULL);
    h->io.auth_offer = fake_offer;
    h->io.auth_step = fake_step;
    h->io.auth_abort = fake_abort;
    return h;
}

static void expect_steps(const char *steps)
{
    assert_string_equal(fake.steps, steps);
    fake.len = 0;
    fake.steps[0] = '\0';
}

static void auth_done(struct h *h, enum smtp_auth_result r, const char *challenge)
{
    smtp_server_auth_done(h->s, r, (const unsigned char *)challenge,
                          challenge ? strlen(challenge) : 0, h->now);
}

static void test_ehlo_offers_auth(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "EHLO c.example\r\n");
    assert_non_null(strstr(h->replies, "250-AUTH PLAIN LOGIN CRAM-MD5\r\n250-STARTTLS\r\n"));
    h_clear(h);
    /* nothing offered: no AUTH line, and the command is refused */
    fake.mechs = NULL;
    h_feed(h, "EHLO c.example\r\n");
    assert_null(strstr(h->replies, "AUTH"));
    h_clear(h);
    h_feed(h, "AUTH PLAIN\r\n");
    h_expect(h, "503 5.3.3 AUTH not available\r\n");
    h_free(h);
}

static void test_auth_before_ehlo(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "AUTH PLAIN\r\n");
    h_expect(h, "503 5.3.3 AUTH not available\r\n");
    h_feed(h, "HELO c.example\r\n");
    h_clear(h);
    h_feed(h, "AUTH PLAIN\r\n");
    h_expect(h, "503 5.3.3 AUTH not available\r\n");
    expect_steps("");
    h_free(h);
}

/* PLAIN with an initial response: one step, the server waits, then 235. */
static void test_plain_initial_response(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "EHLO c.example\r\n");
    h_clear(h);
    /* "\0u\0p" */
    h_feed(h, "AUTH plain AHUAcA==\r\nMAIL FROM:<a@b.example> AUTH=u@b.example\r\n");
    h_expect(h, "");
    assert_int_equal(fake.len, strlen("start PLAIN [") + 4 + strlen("]\n"));
    assert_memory_equal(fake.steps, "start PLAIN [\0u\0p]\n", fake.len);
    fake.len = 0;
    fake.steps[0] = '\0';
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1010); /* the wait keeps a timeout */
    auth_done(h, SMTP_AUTH_OK, NULL);
    /* the pipelined MAIL runs after the answer, in order */
    h_expect(h, "235 2.0.0 OK Authenticated\r\n250 2.1.0 <a@b.example>... Sender ok\r\n");
    assert_true(smtp_server_authenticated(h->s));
    assert_string_equal(smtp_server_transaction(h->s)->mail_params.auth, "u@b.example");
    h_feed(h, "RSET\r\nAUTH PLAIN AHUAcA==\r\n");
    h_expect(h, "250 2.0.0 Reset state\r\n503 5.5.0 Already Authenticated\r\n");
    h_free(h);
}

/* LOGIN without an initial response: 334 challenges, responses decoded, then a failure. */
static void test_login_exchange_and_failure(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "EHLO c.example\r\nAUTH LOGIN\r\n");
    h_clear(h);
    expect_steps("start LOGIN\n");
    auth_done(h, SMTP_AUTH_CONTINUE, "Username:");
    h_expect(h, "334 VXNlcm5hbWU6\r\n");
    h_feed(h, "dXNlcg==\r\n");
    expect_steps("step [user]\n");
    auth_done(h, SMTP_AUTH_CONTINUE, "Password:");
    h_expect(h, "334 UGFzc3dvcmQ6\r\n");
    h_feed(h, "d3Jvbmc=\r\n");
    expect_steps("step [wrong]\n");
    auth_done(h, SMTP_AUTH_FAIL, NULL);
    h_expect(h, "535 5.7.0 authentication failed\r\n");
    assert_false(smtp_server_authenticated(h->s));
    /* the line after the exchange is a command again */
    h_feed(h, "NOOP\r\n");
    h_expect(h, "250 2.0.0 OK\r\n");
    /* an empty challenge is "334 " */
    h_feed(h, "AUTH LOGIN\r\n");
    auth_done(h, SMTP_AUTH_CONTINUE, "");
    h_expect(h, "334 \r\n");
    h_feed(h, "*\r\n");
    h_free(h);
}

static void test_cancel_and_bad_base64(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "EHLO c.example\r\nAUTH CRAM-MD5\r\n");
    h_clear(h);
    auth_done(h, SMTP_AUTH_CONTINUE, "<1.2@mx.test>");
    h_expect(h, "334 PDEuMkBteC50ZXN0Pg==\r\n");
    h_feed(h, "*\r\n");
    h_expect(h, "501 5.0.0 AUTH aborted\r\n");
    expect_steps("start CRAM-MD5\nabort\n");
    h_feed(h, "AUTH CRAM-MD5\r\n");
    auth_done(h, SMTP_AUTH_CONTINUE, "x");
    h_clear(h);
    h_feed(h, "not base64!\r\n");
    h_expect(h, "501 5.5.2 Cannot decode response\r\n");
    expect_steps("start CRAM-MD5\nabort\n");
    h_feed(h, "AUTH PLAIN %%%%\r\n");
    h_expect(h, "501 5.5.2 Cannot decode response\r\n");
    h_feed(h, "AUTH PLAIN =\r\n");
    expect_steps("start PLAIN []\n");
    auth_done(h, SMTP_AUTH_TEMPFAIL, NULL);
    h_expect(h, "454 4.7.0 Temporary authentication failure\r\n");
    h_free(h);
}

static void test_refusals(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "EHLO c.example\r\nAUTH GSSAPI\r\nAUTH\r\nAUTH ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n");
    assert_non_null(strstr(h->replies, "504 5.3.3 AUTH mechanism GSSAPI not available\r\n"
                                       "501 5.5.2 AUTH mechanism must be specified\r\n"
                                       "504 5.3.3 AUTH mechanism ABCDEFGHIJKLMNOPQRST not "
                                       "available\r\n"));
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example>\r\nAUTH PLAIN\r\n");
    h_expect(h, "250 2.1.0 <a@b.example>... Sender ok\r\n"
                "503 5.5.0 AUTH not permitted during a mail transaction\r\n");
    expect_steps("");
    h_free(h);
}

/* Option p: plaintext mechanisms only in TLS (the offer depends on it). */
static void test_offer_depends_on_tls(void **state)
{
    (void)state;
    struct h *h = auth_new();
    fake.mechs = "CRAM-MD5";
    h_feed(h, "EHLO c.example\r\n");
    assert_non_null(strstr(h->replies, "250-AUTH CRAM-MD5\r\n"));
    h_clear(h);
    h_feed(h, "AUTH PLAIN AHUAcA==\r\n");
    h_expect(h, "504 5.3.3 AUTH mechanism PLAIN not available\r\n");
    h_feed(h, "STARTTLS\r\n");
    h_clear(h);
    smtp_server_tls_started(h->s, h->now);
    h_feed(h, "EHLO c.example\r\n");
    assert_non_null(strstr(h->replies, "250-AUTH PLAIN LOGIN CRAM-MD5\r\n"));
    h_free(h);
}

static void test_failures_throttled_then_dropped(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "EHLO c.example\r\n");
    h_clear(h);
    for (unsigned i = 1; i < SMTP_AUTH_MAX_FAILURES; i++) {
        h_feed(h, "AUTH PLAIN AHUAcA==\r\n");
        auth_done(h, SMTP_AUTH_FAIL, NULL);
        if (i < SMTP_AUTH_THROTTLE) {
            h_expect(h, "535 5.7.0 authentication failed\r\n");
            continue;
        }
        h_expect(h, ""); /* held for a second */
        assert_int_equal(smtp_server_deadline(h->s), h->now + 1000);
        h->now += 1000;
        smtp_server_tick(h->s, h->now);
        h_expect(h, "535 5.7.0 authentication failed\r\n");
    }
    h_feed(h, "AUTH PLAIN AHUAcA==\r\n");
    auth_done(h, SMTP_AUTH_FAIL, NULL);
    h_expect(h, "535 5.7.0 authentication failed\r\n"
                "421 4.7.0 mx.test Too many authentication failures; closing connection\r\n");
    assert_non_null(strstr(h->events, "CLOSE too many authentication failures\n"));
    h_free(h);
}

static void test_auth_required(void **state)
{
    (void)state;
    struct h *h = auth_new();
    fake.required = true;
    h_feed(h, "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n");
    assert_non_null(strstr(h->replies, "530 5.7.0 Authentication required\r\n"));
    h_clear(h);
    h_feed(h, "AUTH PLAIN AHUAcA==\r\n");
    auth_done(h, SMTP_AUTH_OK, NULL);
    h_feed(h, "MAIL FROM:<a@b.example> AUTH=<>\r\n");
    h_expect(h, "235 2.0.0 OK Authenticated\r\n250 2.1.0 <a@b.example>... Sender ok\r\n");
    h_free(h);
}

/* An unauthenticated client's AUTH= is accepted and dropped (RFC 4954 5). */
static void test_mail_auth_param_dropped(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "EHLO c.example\r\nMAIL FROM:<a@b.example> AUTH=a@b.example\r\n");
    assert_non_null(strstr(h->replies, "250 2.1.0 <a@b.example>... Sender ok\r\n"));
    assert_null(smtp_server_transaction(h->s)->mail_params.auth);
    h_free(h);
    /* without AUTH offered it is an unknown parameter */
    h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\nMAIL FROM:<a@b.example> AUTH=<>\r\n");
    assert_non_null(strstr(h->replies, "555 5.5.4 Unsupported parameter\r\n"));
    h_free(h);
}

/* STARTTLS forgets an authentication made in plaintext (RFC 3207 4.2). */
static void test_starttls_forgets(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "EHLO c.example\r\nAUTH PLAIN AHUAcA==\r\n");
    auth_done(h, SMTP_AUTH_OK, NULL);
    assert_true(smtp_server_authenticated(h->s));
    h_feed(h, "STARTTLS\r\n");
    smtp_server_tls_started(h->s, h->now);
    assert_false(smtp_server_authenticated(h->s));
    h_free(h);
}

/* An answer that comes after the session ended (timeout while waiting) is ignored. */
static void test_late_answer_ignored(void **state)
{
    (void)state;
    struct h *h = auth_new();
    h_feed(h, "EHLO c.example\r\nAUTH PLAIN AHUAcA==\r\n");
    h_clear(h);
    h->now += 1010;
    smtp_server_tick(h->s, h->now);
    assert_non_null(strstr(h->replies, "421 4.4.2 mx.test Timeout"));
    h_clear(h);
    auth_done(h, SMTP_AUTH_OK, NULL);
    h_expect(h, "");
    assert_false(smtp_server_authenticated(h->s));
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ehlo_offers_auth),
        cmocka_unit_test(test_auth_before_ehlo),
        cmocka_unit_test(test_plain_initial_response),
        cmocka_unit_test(test_login_exchange_and_failure),
        cmocka_unit_test(test_cancel_and_bad_base64),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_offer_depends_on_tls),
        cmocka_unit_test(test_failures_throttled_then_dropped),
        cmocka_unit_test(test_auth_required),
        cmocka_unit_test(test_mail_auth_param_dropped),
        cmocka_unit_test(test_starttls_forgets),
        cmocka_unit_test(test_late_answer_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
