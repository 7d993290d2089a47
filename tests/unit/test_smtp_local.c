/* smtp_server on the local submission socket (settings.local): MAIL's FULLNAME= and
 * XMAILDROP=, and SMTP_EV_HEADER_END wherever and however the header section ends. */
#include "smtp_server_harness.h"

#define S(lit)         lit, sizeof(lit) - 1
#define FIELD_NAME_MAX 998 /* RFC 5322 2.1.1's line limit, the longest field name */

static const char *const GO_AHEAD = "354 Enter mail, end with \".\" on a line by itself\r\n";

static void local_settings(struct smtp_server_settings *set)
{
    h_default_settings(set);
    set->local = true;
}

static struct h *h_local(void)
{
    struct smtp_server_settings set;
    local_settings(&set);
    return h_new(&set);
}

static struct h *h_local_in_data(const struct smtp_server_settings *set)
{
    struct smtp_server_settings def;
    if (!set) {
        local_settings(&def);
        set = &def;
    }
    struct h *h = h_new(set);
    h_envelope(h);
    h_feed(h, "DATA\r\n");
    h_expect(h, GO_AHEAD);
    h_expect_events(h, "DATA_START\n");
    return h;
}

/* ---- MAIL parameters ---- */

static void test_mail_fullname_maildrop(void **state)
{
    (void)state;
    struct h *h = h_local();
    h_feed(h, "EHLO localhost\r\n");
    h_clear(h);
    h_feed(h, "MAIL FROM:<u@h.example> FULLNAME=Smith,+20John+22Q+22+5C+C3+A9 "
              "xmaildrop=1700000000.42.a1b2-c_D\r\n");
    h_expect(h, "250 2.1.0 <u@h.example>... Sender ok\r\n");
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_string_equal(t->mail_params.fullname, "Smith, John\"Q\"\\\xc3\xa9");
    assert_string_equal(t->mail_params.maildrop, "1700000000.42.a1b2-c_D");
    /* freed with the transaction (ASan tells), and absent in the next one */
    h_feed(h, "RSET\r\nMAIL FROM:<u@h.example> SIZE=10\r\n");
    t = smtp_server_transaction(h->s);
    assert_null(t->mail_params.fullname);
    assert_null(t->mail_params.maildrop);
    /* left to smtp_server_free() */
    h_feed(h, "RSET\r\nMAIL FROM:<> FULLNAME=x XMAILDROP=y\r\n");
    assert_string_equal(smtp_server_transaction(h->s)->mail_params.fullname, "x");
    h_free(h);
}

/* Elsewhere they are unknown parameters, as before; and like every parameter they need
 * EHLO. */
static void test_mail_params_not_local(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO client.example\r\nMAIL FROM:<a@b.example> FULLNAME=x\r\n"
              "MAIL FROM:<a@b.example> XMAILDROP=x\r\n");
    assert_non_null(strstr(h->replies, "555 5.5.4 Unsupported parameter\r\n"
                                       "555 5.5.4 Unsupported parameter\r\n"));
    h_free(h);
    h = h_local();
    h_feed(h, "HELO localhost\r\n");
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example> FULLNAME=x\r\n");
    h_expect(h, "555 5.5.4 Unsupported parameter\r\n");
    h_free(h);
}

static void expect_mail_refused(struct h *h, const char *params, const char *reply)
{
    char line[1200];
    snprintf(line, sizeof(line), "MAIL FROM:<a@b.example> %s\r\n", params);
    h_feed(h, line);
    h_expect(h, reply);
    assert_null(smtp_server_transaction(h->s)->sender);
    assert_null(smtp_server_transaction(h->s)->mail_params.fullname);
}

static void test_mail_params_bad_values(void **state)
{
    (void)state;
    static const char bad_name[] = "501 5.5.4 Bad FULLNAME parameter\r\n";
    static const char bad_drop[] = "501 5.5.4 Bad XMAILDROP parameter\r\n";
    struct smtp_server_settings set;
    local_settings(&set);
    set.limits.max_command_line = 2000;
    set.limits.max_errors = 100;
    set.limits.error_throttle = 100;
    struct h *h = h_new(&set);
    h_feed(h, "EHLO localhost\r\n");
    h_clear(h);
    expect_mail_refused(h, "FULLNAME=", bad_name);
    expect_mail_refused(h, "FULLNAME", bad_name);
    expect_mail_refused(h, "FULLNAME=a+0Ab", bad_name); /* a line end in a From: header */
    expect_mail_refused(h, "FULLNAME=a+1B[31m", bad_name);
    expect_mail_refused(h, "FULLNAME=a+7F", bad_name);
    expect_mail_refused(h, "FULLNAME=a+00", bad_name);
    expect_mail_refused(h, "FULLNAME=a+C3+28", bad_name);    /* malformed UTF-8 */
    expect_mail_refused(h, "FULLNAME=a+ED+A0+80", bad_name); /* a surrogate */
    expect_mail_refused(h, "FULLNAME=a+2", bad_name);        /* not xtext */
    expect_mail_refused(h, "FULLNAME=a=b", bad_name);
    expect_mail_refused(h, "XMAILDROP=", bad_drop);
    expect_mail_refused(h, "XMAILDROP=a+2Fb", bad_drop); /* '/' */
    expect_mail_refused(h, "XMAILDROP=..", bad_drop);
    expect_mail_refused(h, "XMAILDROP=.tmp-123", bad_drop);
    expect_mail_refused(h, "XMAILDROP=a+20b", bad_drop);
    expect_mail_refused(h, "XMAILDROP=a~b", bad_drop);
    expect_mail_refused(h, "FULLNAME=a FULLNAME=b", "501 5.5.4 Duplicate FULLNAME parameter\r\n");
    expect_mail_refused(h, "XMAILDROP=a FULLNAME=b XMAILDROP=a",
                        "501 5.5.4 Duplicate XMAILDROP parameter\r\n");
    /* a good FULLNAME and a bad parameter after it: nothing is left allocated */
    expect_mail_refused(h, "FULLNAME=ok BODY=bogus", "501 5.5.4 Bad BODY parameter\r\n");

    /* the limits are on the decoded value: 256 and 64 octets */
    char params[1100];
    char name[800] = "";
    for (int i = 0; i < 256; i++)
        strcat(name, i % 2 ? "+41" : "b");
    snprintf(params, sizeof(params), "MAIL FROM:<a@b.example> FULLNAME=%s\r\n", name);
    h_feed(h, params);
    h_expect(h, "250 2.1.0 <a@b.example>... Sender ok\r\n");
    assert_int_equal(strlen(smtp_server_transaction(h->s)->mail_params.fullname), 256);
    h_feed(h, "RSET\r\n");
    h_clear(h);
    snprintf(params, sizeof(params), "FULLNAME=%sx", name);
    expect_mail_refused(h, params, bad_name);

    char drop[70];
    memset(drop, 'd', 64);
    drop[64] = '\0';
    snprintf(params, sizeof(params), "MAIL FROM:<a@b.example> XMAILDROP=%s\r\n", drop);
    h_feed(h, params);
    h_expect(h, "250 2.1.0 <a@b.example>... Sender ok\r\n");
    h_feed(h, "RSET\r\n");
    h_clear(h);
    snprintf(params, sizeof(params), "XMAILDROP=%sd", drop);
    expect_mail_refused(h, params, bad_drop);
    h_free(h);
}

/* A MAIL the server refuses after parsing (no room) does not leak its parameters. */
static int refuse_mail(void *arg, const struct smtp_path *sender,
                       const struct smtp_mail_params *params, struct smtp_addr_error *err)
{
    (void)arg;
    (void)sender;
    assert_string_equal(params->fullname, "N");
    err->code = 452;
    err->enh = "4.3.1";
    err->reason = "Insufficient system storage";
    return -1;
}

static void test_mail_params_check_mail_refusal(void **state)
{
    (void)state;
    struct h *h = h_local();
    h->io.check_mail = refuse_mail;
    h_feed(h, "EHLO localhost\r\n");
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example> FULLNAME=N XMAILDROP=m\r\n");
    h_expect(h, "452 4.3.1 Insufficient system storage\r\n");
    /* and a UTF-8 path without SMTPUTF8 */
    h->io.check_mail = NULL;
    h_feed(h, "MAIL FROM:<\xc3\xa9@b.example> FULLNAME=N\r\n");
    assert_non_null(strstr(h->replies, "553 5.6.7"));
    h_free(h);
}

/* ---- SMTP_EV_HEADER_END ---- */

static void test_header_end_blank_line(void **state)
{
    (void)state;
    struct h *h = h_local_in_data(NULL);
    h_feed(h, "From: a@b\r\nTo: c@d\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
    h_expect_events(h, "HEADER_END at=32 seen=0x12 len=0\nDATA_END 40 -\n");
    h_expect_body(h, S("From: a@b\r\nTo: c@d\r\nSubject: x\r\n\r\nbody\r\n"));
    h_free(h);
}

/* Every field the caller cares about, names in any case, obsolete white space before ':',
 * folded values; names that merely start like one are not it. */
static void test_header_end_fields_seen(void **state)
{
    (void)state;
    struct h *h = h_local_in_data(NULL);
    h_feed(h, "DATE: now\r\nfRoM : x\r\n\tfolded\r\nmessage-id:\r\n <a@b>\r\nSender: s\r\n"
              "To:\r\ncC: c\r\nBCC: b\r\n\r\n.\r\n");
    h_expect_events(h, "HEADER_END at=82 seen=0x7f len=0\nDATA_END 84 <a@b>\n");
    h_free(h);

    h = h_local_in_data(NULL);
    h_feed(h, "Fromage: x\r\nResent-From: y\r\nTox: z\r\nBc: q\r\nDates: d\r\nC: c\r\n"
              "X-To: t\r\nMessage-IDs: m\r\nSende: s\r\n\r\n.\r\n");
    h_expect_events(h, "HEADER_END at=94 seen=0 len=0\nDATA_END 96 -\n");
    h_free(h);
}

/* The first line is no field: the event comes before anything, and no empty line follows. */
static void test_header_end_no_header(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "Hello world\r\n",          "  indented\r\n", ":colon\r\n",
        "\xc3\xa9t\xc3\xa9: x\r\n", "NoColon\r\n",    "Name \t x: y\r\n",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct h *h = h_local_in_data(NULL);
        h_feed(h, bodies[i]);
        h_feed(h, ".\r\n");
        char want[100];
        snprintf(want, sizeof(want), "HEADER_END at=0 seen=0 len=1\nDATA_END %zu -\n",
                 strlen(bodies[i]));
        h_expect_events(h, want);
        h_expect_body(h, bodies[i], strlen(bodies[i]));
        h_free(h);
    }
}

/* A body line right after the header, without the empty line. */
static void test_header_end_body_without_separator(void **state)
{
    (void)state;
    struct h *h = h_local_in_data(NULL);
    h_feed(h, "To: x\r\nthis is the body\r\n.\r\n");
    h_expect_events(h, "HEADER_END at=7 seen=0x10 len=1\nDATA_END 25 -\n");
    h_expect_body(h, S("To: x\r\nthis is the body\r\n"));
    h_free(h);
}

/* The message ends inside its header: the event comes at the end, before DATA_END. */
static void test_header_end_at_message_end(void **state)
{
    (void)state;
    struct h *h = h_local_in_data(NULL);
    h_feed(h, "Subject: only a header\r\n.\r\n");
    h_expect_events(h, "HEADER_END at=24 seen=0 len=1\nDATA_END 24 -\n");
    h_free(h);

    h = h_local_in_data(NULL); /* an empty message */
    h_feed(h, ".\r\n");
    h_expect_events(h, "HEADER_END at=0 seen=0 len=1\nDATA_END 0 -\n");
    h_free(h);

    h = h_local_in_data(NULL); /* the empty line itself ends it, with nothing after */
    h_feed(h, "Date: d\r\n\r\n.\r\n");
    h_expect_events(h, "HEADER_END at=9 seen=0x1 len=0\nDATA_END 11 -\n");
    h_free(h);

    h = h_local_in_data(NULL); /* an empty first line: the body follows at once */
    h_feed(h, "\r\nbody\r\n.\r\n");
    h_expect_events(h, "HEADER_END at=0 seen=0 len=0\nDATA_END 8 -\n");
    h_free(h);
}

/* BDAT may end a message without CRLF. A last field gets one before the event, so what
 * the caller adds starts a line; a last line that is no field is body as it is. */
static void test_header_end_bdat_unterminated(void **state)
{
    (void)state;
    struct h *h = h_local();
    h_envelope(h);
    h_feed(h, "BDAT 7\r\nCc: a@bBDAT 4 LAST\r\n\r\n x");
    h_expect_events(h, "DATA_START\nHEADER_END at=13 seen=0x20 len=1\nDATA_END 11 -\n");
    h_expect_body(h, S("Cc: a@b\r\n x\r\n"));
    h_commit(h, true);
    h_clear(h);

    h_feed(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 7 LAST\r\nSubject");
    h_expect_events(h, "MAIL a@b.example\nRCPT u@mx.test\nDATA_START\n"
                       "HEADER_END at=0 seen=0 len=1\nDATA_END 7 -\n");
    h_expect_body(h, S("Subject"));
    h_commit(h, true);
    h_clear(h);

    /* "Name :" at the end is a name still: no field */
    h_feed(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nBDAT 11 LAST\r\nTo: x\r\nCc  ");
    h_expect_events(h, "MAIL a@b.example\nRCPT u@mx.test\nDATA_START\n"
                       "HEADER_END at=7 seen=0x10 len=1\nDATA_END 11 -\n");
    h_expect_body(h, S("To: x\r\nCc  "));
    h_free(h);
}

/* A field name is at most a line (998 octets); a longer run without ':' is no field. */
static void test_header_end_long_name(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    local_settings(&set);
    set.limits.max_text_line = 0;
    set.limits.max_header_size = 0;
    char msg[2100];
    for (int longer = 0; longer < 2; longer++) {
        size_t name = FIELD_NAME_MAX + (size_t)longer;
        memset(msg, 'N', name - 1);
        msg[name - 1] = ' '; /* white space before ':' counts */
        snprintf(msg + name, sizeof(msg) - name, ": v\r\n\r\n.\r\n");
        struct h *h = h_local_in_data(&set);
        h_feed_bytes(h, msg, strlen(msg)); /* held across a thousand calls */
        char want[100];
        snprintf(want, sizeof(want), "HEADER_END at=%zu seen=0 len=%d\nDATA_END %zu -\n",
                 longer ? 0 : name + 5, longer, name + 7);
        h_expect_events(h, want);
        h_expect_body(h, msg, name + 7);
        h_free(h);
    }
}

/* Not on other listeners. */
static void test_header_end_not_local(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feed(h, "DATA\r\nFrom: a\r\n\r\nb\r\n.\r\n");
    h_expect_events(h, "DATA_START\nDATA_END 14 -\n");
    h_free(h);
}

/* A message refused in its header gets no event; one refused after it, DATA_ABORT. Every
 * message of a session gets its own. */
static void test_header_end_refusals_and_next_message(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    local_settings(&set);
    set.limits.max_header_size = 20;
    struct h *h = h_local_in_data(&set);
    h_feed(h, "Subject: 0123456789012345678901234\r\n\r\nb\r\n.\r\n");
    h_expect_events(h, "DATA_ABORT 552 5.6.0 Headers too large (20 max)\n");
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\n"
              "To: u\r\n\r\nbare\nlf\r\n.\r\n");
    h_expect_events(h, "MAIL a@b.example\nRCPT u@mx.test\nDATA_START\n"
                       "HEADER_END at=7 seen=0x10 len=0\n"
                       "DATA_ABORT 550 5.6.0 Message contains bare CR or LF; refused\n");
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\nFrom: f\r\n\r\n.\r\n");
    h_expect_events(h, "MAIL a@b.example\nRCPT u@mx.test\nDATA_START\n"
                       "HEADER_END at=9 seen=0x2 len=0\nDATA_END 11 -\n");
    h_free(h);
}

/* What the caller sees (events, where HEADER_END falls in the data, the data) must not
 * depend on how the input was split: fed whole, byte by byte, and cut in two everywhere. */
static struct h *run_local(const char *setup, const char *input, size_t len, size_t cut)
{
    struct h *h = h_local();
    h_envelope(h);
    h_feed(h, setup);
    h_clear(h);
    if (cut == 0) {
        for (size_t i = 0; i < len; i++) {
            h_feedn(h, input + i, 1);
            h_commit(h, true);
        }
    } else {
        h_feedn(h, input, cut);
        h_commit(h, true);
        h_feedn(h, input + cut, len - cut);
    }
    h_commit(h, true);
    return h;
}

static void check_local_splits(const char *setup, const char *input, size_t len)
{
    struct h *whole = run_local(setup, input, len, len);
    assert_non_null(strstr(whole->events, "HEADER_END"));
    for (size_t cut = 0; cut < len; cut++) {
        struct h *h = run_local(setup, input, len, cut);
        assert_string_equal(h->replies, whole->replies);
        assert_string_equal(h->events, whole->events);
        assert_int_equal(h->blen, whole->blen);
        assert_memory_equal(h->body, whole->body, whole->blen);
        h_free(h);
    }
    h_free(whole);
}

static void test_header_end_split_everywhere(void **state)
{
    (void)state;
    check_local_splits("DATA\r\n",
                       S("From: a@b\r\nX-Long-Name-Field :\r\n folded\r\n..Dotted: d\r\n"
                         "Message-ID: <x@y>\r\n\r\nBody\r\n..dot\r\n.\r\nNOOP\r\n"));
    check_local_splits("DATA\r\n", S("Subject: s\r\nTo: t\r\nNot a field\r\n.\r\nNOOP\r\n"));
    check_local_splits("DATA\r\n", S("..leading dot body\r\n.\r\n"));
    check_local_splits("DATA\r\n", S("Bcc: b\r\n.\r\nNOOP\r\n"));
    /* BDAT: the chunk boundaries fall inside names, too */
    check_local_splits("", S("BDAT 9\r\nFrom: a\r\nBDAT 3\r\nTo:BDAT 10 LAST\r\n b\r\nbody\r\n"
                             "NOOP\r\n"));
    check_local_splits("", S("BDAT 4\r\nSubjBDAT 7 LAST\r\nect x\r\nNOOP\r\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mail_fullname_maildrop),
        cmocka_unit_test(test_mail_params_not_local),
        cmocka_unit_test(test_mail_params_bad_values),
        cmocka_unit_test(test_mail_params_check_mail_refusal),
        cmocka_unit_test(test_header_end_blank_line),
        cmocka_unit_test(test_header_end_fields_seen),
        cmocka_unit_test(test_header_end_no_header),
        cmocka_unit_test(test_header_end_body_without_separator),
        cmocka_unit_test(test_header_end_at_message_end),
        cmocka_unit_test(test_header_end_bdat_unterminated),
        cmocka_unit_test(test_header_end_long_name),
        cmocka_unit_test(test_header_end_not_local),
        cmocka_unit_test(test_header_end_refusals_and_next_message),
        cmocka_unit_test(test_header_end_split_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
