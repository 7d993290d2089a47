/* smtp_server: every command, its replies and events, pipelining and STARTTLS. */
#include "smtp_server_harness.h"

static void test_refuse(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    smtp_server_refuse(h->s, "Too many open connections");
    h_expect(h, "421 4.3.2 mx.test Too many open connections\r\n");
    h_expect_events(h, "CLOSE refused\n");
    h_feed(h, "EHLO x\r\n");
    h_expect(h, "");
    h_free(h);
}

static void test_ehlo_extensions(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO client.example\r\n");
    h_expect(h, "250-mx.test Hello client.example [192.0.2.1], pleased to meet you\r\n"
                "250-ENHANCEDSTATUSCODES\r\n"
                "250-PIPELINING\r\n"
                "250-8BITMIME\r\n"
                "250-SIZE 10000\r\n"
                "250-DSN\r\n"
                "250-SMTPUTF8\r\n"
                "250-CHUNKING\r\n"
                "250-STARTTLS\r\n"
                "250 HELP\r\n");
    assert_int_equal(h->n_reply_calls, 1); /* one multi-line reply, one call */
    h_expect_events(h, "HELO client.example\n");
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_string_equal(t->helo, "client.example");
    assert_true(t->esmtp);
    h_free(h);
}

static void test_ehlo_no_size_limit_no_starttls(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.limits.max_message_size = 0;
    set.starttls = false;
    struct h *h = h_new(&set);
    h_feed(h, "ehlo client.example\r\n");
    h_expect(h, "250-mx.test Hello client.example [192.0.2.1], pleased to meet you\r\n"
                "250-ENHANCEDSTATUSCODES\r\n"
                "250-PIPELINING\r\n"
                "250-8BITMIME\r\n"
                "250-SIZE\r\n"
                "250-DSN\r\n"
                "250-SMTPUTF8\r\n"
                "250-CHUNKING\r\n"
                "250 HELP\r\n");
    h_free(h);
}

static void test_helo(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "HELO\r\nEHLO  \r\nHELO bad\001name\r\nHELO client.example\r\n");
    h_expect(h, "501 5.0.0 HELO requires domain address\r\n"
                "501 5.0.0 EHLO requires domain address\r\n"
                "501 5.0.0 Invalid domain name\r\n"
                "250 mx.test Hello client.example [192.0.2.1], pleased to meet you\r\n");
    h_expect_events(h, "REJECT HELO [] 501 5.0.0 HELO requires domain address\n"
                       "REJECT EHLO [] 501 5.0.0 EHLO requires domain address\n"
                       "REJECT HELO [bad?name] 501 5.0.0 Invalid domain name\n"
                       "HELO client.example\n");
    assert_false(smtp_server_transaction(h->s)->esmtp);
    h_free(h);
}

/* The queue is full for anything larger than 1000 octets. */
static int test_no_room(void *arg, const struct smtp_path *sender,
                        const struct smtp_mail_params *params, struct smtp_addr_error *err)
{
    (void)arg;
    (void)sender;
    if (!params->has_size || params->size <= 1000)
        return 0;
    err->code = 452;
    err->enh = "4.3.1";
    err->reason = "Insufficient system storage";
    return -1;
}

/* A MAIL the queue has no room for is told at once (RFC 1870 6.1), is no client error (no
 * slow-down, no 421), and leaves the session ready for a smaller one. */
static void test_mail_without_room(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h->io.check_mail = test_no_room;
    h_feed(h, "EHLO client.example\r\n");
    h->rlen = 0;
    h->events[0] = '\0';
    h->elen = 0;
    for (int i = 0; i < 12; i++) /* more than max_errors (10) */
        h_feed(h, "MAIL FROM:<a@b.example> SIZE=5000\r\n");
    h_feed(h, "MAIL FROM:<a@b.example> SIZE=500\r\n");
    assert_int_equal(h->n_close, 0);
    assert_non_null(strstr(h->replies, "452 4.3.1 Insufficient system storage\r\n"));
    assert_non_null(strstr(h->replies, "250 2.1.0 <a@b.example>... Sender ok\r\n"));
    assert_null(strstr(h->replies, "421"));
    assert_non_null(
        strstr(h->events, "REJECT MAIL [a@b.example] 452 4.3.1 Insufficient system storage"));
    assert_string_equal(smtp_server_transaction(h->s)->sender, "a@b.example");
    h_free(h);
}

/* sendmail's check (srvrsmtp.c): letters, digits and "[].-_#:" only, at most 255 octets, or
 * 501 5.0.0 Invalid domain name. The name goes into Received:, where "(", ";" or white
 * space would forge the structure of the from-clause. */
static void test_helo_invalid_names(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO a (b) ) by evil; for <x>\r\nEHLO a b\r\nHELO user@host\r\nEHLO [IPv6:::1]\r\n");
    static const char want[] = "501 5.0.0 Invalid domain name\r\n501 5.0.0 Invalid domain name\r\n"
                               "501 5.0.0 Invalid domain name\r\n"
                               "250-mx.test Hello [IPv6:::1] [192.0.2.1], pleased to meet you\r\n";
    assert_int_equal(strncmp(h->replies, want, sizeof(want) - 1), 0);
    h_expect_events(h, "REJECT EHLO [a (b) ) by evil; for <x>] 501 5.0.0 Invalid domain name\n"
                       "REJECT EHLO [a b] 501 5.0.0 Invalid domain name\n"
                       "REJECT HELO [user@host] 501 5.0.0 Invalid domain name\n"
                       "HELO [IPv6:::1]\n");
    h_clear(h);
    char line[300] = "HELO ";
    memset(line + 5, 'a', 256);
    strcpy(line + 5 + 256, "\r\n");
    h_feed(h, line);
    h_expect(h, "501 5.0.0 Invalid domain name\r\n");
    strcpy(line + 5 + 255, "\r\n"); /* 255 octets: the longest domain name */
    h_feed(h, line);
    assert_int_equal(strncmp(h->replies, "250 mx.test Hello aaa", 21), 0);
    assert_int_equal(strlen(smtp_server_transaction(h->s)->helo), 255);
    h_free(h);
}

static void test_helo_resets_transaction(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feed(h, "EHLO again.example\r\n");
    h_expect_events(h, "RSET\nHELO again.example\n");
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_null(t->sender);
    assert_int_equal(t->n_rcpts, 0);
    assert_string_equal(t->helo, "again.example");
    h_clear(h);
    /* no transaction: no RSET */
    h_feed(h, "HELO third.example\r\n");
    h_expect_events(h, "HELO third.example\n");
    h_free(h);
}

static void test_mail(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "MAIL FROM:<a@b.example>\r\n");
    h_expect(h, "503 5.0.0 Polite people say HELO first\r\n");
    h_feed(h, "EHLO c.example\r\n");
    h_clear(h);
    h_feed(h, "MAIL TO:<a@b.example>\r\nMAIL\r\n");
    h_expect(h, "501 5.5.2 Syntax error in parameters scanning \"from\"\r\n"
                "501 5.5.2 Syntax error in parameters scanning \"from\"\r\n");
    h_clear(h);
    h_feed(h, "mail from:<a@b.example>\r\n");
    h_expect(h, "250 2.1.0 <a@b.example>... Sender ok\r\n");
    h_expect_events(h, "MAIL a@b.example\n");
    assert_string_equal(smtp_server_transaction(h->s)->sender, "a@b.example");
    h_feed(h, "MAIL FROM:<c@d.example>\r\n");
    h_expect(h, "503 5.5.0 Sender already specified\r\n");
    h_free(h);
}

static void test_mail_null_sender(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\nMAIL FROM:<>\r\n");
    assert_non_null(strstr(h->replies, "\r\n250 2.1.0 <>... Sender ok\r\n"));
    assert_string_equal(smtp_server_transaction(h->s)->sender, "");
    h_free(h);
}

static void test_mail_params(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\n");
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc+2Bd\r\n"
              "RCPT TO:<u@mx.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@mx.test\r\n");
    h_expect(h, "250 2.1.0 <a@b.example>... Sender ok\r\n"
                "250 2.1.5 <u@mx.test>... Recipient ok\r\n");
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_true(t->mail_params.has_size);
    assert_int_equal(t->mail_params.size, 1234);
    assert_int_equal(t->mail_params.body, SMTP_BODY_8BITMIME);
    assert_true(t->mail_params.smtputf8);
    assert_int_equal(t->mail_params.ret, SMTP_RET_HDRS);
    assert_string_equal(t->mail_params.envid, "abc+2Bd");
    assert_int_equal(t->n_rcpts, 1);
    assert_string_equal(t->rcpts[0].mailbox, "u@mx.test");
    assert_int_equal(t->rcpts[0].params.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
    assert_string_equal(t->rcpts[0].params.orcpt, "rfc822;u@mx.test");
    h_free(h);
}

static void test_mail_params_need_ehlo(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "HELO c.example\r\n");
    h_clear(h);
    /* RFC 5321 4.1.1.11: no extension after HELO, so any parameter is unknown */
    h_feed(h, "MAIL FROM:<a@b.example> SIZE=10\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\n");
    assert_int_equal(strncmp(h->replies, "555 5.5.4 ", 10), 0);
    assert_non_null(strstr(h->replies, "\r\n555 5.5.4 "));
    assert_null(smtp_server_transaction(h->s)->sender);
    h_free(h);
}

static void test_mail_size_over_limit(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\n");
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example> SIZE=10001\r\n");
    assert_int_equal(strncmp(h->replies, "552 5.3.4 ", 10), 0);
    h_free(h);
}

static void test_utf8_needs_smtputf8(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\n");
    h_clear(h);
    h_feed(h, "MAIL FROM:<j\xc3\xb6rg@b.example>\r\n");
    assert_int_equal(h->replies[0], '5');
    assert_null(smtp_server_transaction(h->s)->sender);
    h_clear(h);
    h_feed(h, "MAIL FROM:<j\xc3\xb6rg@b.example> SMTPUTF8\r\nRCPT TO:<m\xc3\xbc@mx.test>\r\n");
    h_expect(h, "250 2.1.0 <j\xc3\xb6rg@b.example>... Sender ok\r\n"
                "250 2.1.5 <m\xc3\xbc@mx.test>... Recipient ok\r\n");
    h_free(h);
}

static void test_rcpt(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\nRCPT TO:<u@mx.test>\r\n");
    assert_non_null(strstr(h->replies, "\r\n503 5.0.0 Need MAIL before RCPT\r\n"));
    h_clear(h);
    h_feed(h, "MAIL FROM:<a@b.example>\r\n");
    h_clear(h);
    h_feed(h, "RCPT <u@mx.test>\r\n");
    h_expect(h, "501 5.5.2 Syntax error in parameters scanning \"to\"\r\n");
    h_clear(h);
    h_feed(h, "RCPT TO:<u@mx.test>\r\nrcpt to:<postmaster>\r\n");
    h_expect(h, "250 2.1.5 <u@mx.test>... Recipient ok\r\n"
                "250 2.1.5 <postmaster>... Recipient ok\r\n");
    h_expect_events(h, "RCPT u@mx.test\nRCPT postmaster\n");
    h_free(h);
}

static void test_rcpt_relay_denied(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n");
    h_clear(h);
    h_feed(h, "RCPT TO: <user@other.example>\r\n");
    h_expect(h, "550 5.7.1 <user@other.example>... Relaying denied\r\n");
    h_expect_events(h, "REJECT RCPT [<user@other.example>] 550 5.7.1 <user@other.example>... "
                       "Relaying denied\n");
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 0);
    /* no recipient accepted: DATA is refused */
    h_feed(h, "DATA\r\n");
    h_expect(h, "503 5.0.0 Need RCPT (recipient)\r\n");
    h_free(h);
}

static void test_too_many_recipients(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n");
    h_clear(h);
    h_feed(h, "RCPT TO:<u1@mx.test>\r\nRCPT TO:<u2@mx.test>\r\nRCPT TO:<u3@mx.test>\r\n"
              "RCPT TO:<u4@mx.test>\r\nRCPT TO:<u5@mx.test>\r\nRCPT TO:<u6@mx.test>\r\n");
    assert_non_null(strstr(h->replies, "<u5@mx.test>... Recipient ok\r\n"
                                       "452 4.5.3 Too many recipients\r\n"));
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_int_equal(t->n_rcpts, 5);
    for (size_t i = 0; i < 5; i++) {
        char want[32];
        snprintf(want, sizeof(want), "u%zu@mx.test", i + 1);
        assert_string_equal(t->rcpts[i].mailbox, want);
    }
    h_free(h);
}

static void test_data_sequence_errors(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "DATA\r\nEHLO c.example\r\n");
    h_clear(h);
    h_feed(h, "DATA\r\nMAIL FROM:<a@b.example>\r\nDATA\r\nDATA x\r\n");
    h_expect(h, "503 5.0.0 Need MAIL command\r\n"
                "250 2.1.0 <a@b.example>... Sender ok\r\n"
                "503 5.0.0 Need RCPT (recipient)\r\n"
                "501 5.5.4 Syntax error (no parameters allowed)\r\n");
    h_free(h);
}

static void test_simple_commands(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "NOOP\r\nnoop whatever\r\nVRFY root\r\nEXPN staff\r\nXYZZY plugh\r\n\r\n");
    h_expect(h, "250 2.0.0 OK\r\n"
                "250 2.0.0 OK\r\n"
                "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)\r\n"
                "502 5.7.0 Sorry, we do not allow this operation\r\n"
                "500 5.5.1 Command unrecognized: \"XYZZY plugh\"\r\n"
                "500 5.5.1 Command unrecognized: \"\"\r\n");
    h_feed(h, "HELP\r\n");
    h_expect(h, "214-2.0.0 This is ringmail\r\n"
                "214-2.0.0 Topics: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY EXPN "
                "STARTTLS AUTH\r\n"
                "214-2.0.0 For local information send email to Postmaster at your site.\r\n"
                "214 2.0.0 End of HELP info\r\n");
    h_free(h);
}

static void test_unknown_command_is_printable_and_truncated(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    char line[300];
    memset(line, 'A', sizeof(line));
    line[0] = '\x7f';
    memcpy(line + sizeof(line) - 2, "\r\n", 2);
    h_feedn(h, line, sizeof(line));
    char want[200];
    snprintf(want, sizeof(want), "500 5.5.1 Command unrecognized: \"?%.*s\"\r\n", 99, line + 1);
    h_expect(h, want);
    h_free(h);
}

static void test_rset(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_envelope(h);
    h_feed(h, "RSET\r\n");
    h_expect(h, "250 2.0.0 Reset state\r\n");
    h_expect_events(h, "RSET\n");
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_null(t->sender);
    assert_int_equal(t->n_rcpts, 0);
    assert_string_equal(t->helo, "client.example"); /* HELO survives RSET */
    h_feed(h, "MAIL FROM:<x@y.example>\r\n");
    h_expect(h, "250 2.1.0 <x@y.example>... Sender ok\r\n");
    h_free(h);
}

static void test_quit(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "QUIT\r\nNOOP\r\n");
    h_expect(h, "221 2.0.0 mx.test closing connection\r\n");
    h_expect_events(h, "CLOSE quit\n");
    h_feed(h, "NOOP\r\n");
    h_expect(h, "");
    h_free(h);
}

static void test_bare_cr_lf_in_command(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\n");
    h_clear(h);
    /* the whole line is refused, nothing in it runs */
    h_feed(h, "MAIL FROM:<a@b.example>\nRCPT TO:<u@mx.test>\r\nNOOP\rQUIT\r\n");
    h_expect(h, "500 5.5.2 Bare CR or LF in command line; refused\r\n"
                "500 5.5.2 Bare CR or LF in command line; refused\r\n");
    assert_int_equal(h->n_close, 0);
    h_feed(h, "RCPT TO:<u@mx.test>\r\n");
    h_expect(h, "503 5.0.0 Need MAIL before RCPT\r\n");
    /* an LF alone never ends a line */
    h_feed(h, "NOOP\n");
    h_expect(h, "");
    h_feed(h, "\r\n");
    h_expect(h, "500 5.5.2 Bare CR or LF in command line; refused\r\n");
    h_free(h);
}

/* A NUL would cut the line short for anything that reads it as a C string: the whole line
 * is refused and nothing in it runs. */
static void test_nul_in_command(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\n");
    h_clear(h);
    h_feedn(h, "NOOP \000x\r\nMAIL FROM:<a@b.example>\000\r\nQUIT\000\r\n", 42);
    h_expect(h, "500 5.5.2 NUL character in command line; refused\r\n"
                "500 5.5.2 NUL character in command line; refused\r\n"
                "500 5.5.2 NUL character in command line; refused\r\n");
    h_expect_events(h, "REJECT  [NOOP ?x] 500 5.5.2 NUL character in command line; refused\n"
                       "REJECT  [MAIL FROM:<a@b.example>?] 500 5.5.2 NUL character in command "
                       "line; refused\n"
                       "REJECT  [QUIT?] 500 5.5.2 NUL character in command line; refused\n");
    assert_null(smtp_server_transaction(h->s)->sender);
    assert_int_equal(h->n_close, 0);
    h_free(h);
}

static void test_line_too_long(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    char line[2000];
    memset(line, 'x', sizeof(line));
    memcpy(line, "NOOP ", 5);
    /* exactly max_command_line (512) octets with CRLF: accepted */
    memcpy(line + 510, "\r\n", 2);
    h_feedn(h, line, 512);
    h_expect(h, "250 2.0.0 OK\r\n");
    /* 513: refused once, after its end, without being stored */
    memcpy(line + 510, "x\r\n", 3);
    h_feedn(h, line, 513);
    h_expect(h, "500 5.5.0 Command line too long\r\n");
    memset(line, 'x', sizeof(line));
    memcpy(line + sizeof(line) - 8, "\r\nNOOP\r\n", 8);
    h_feed_bytes(h, line, sizeof(line));
    h_expect(h, "500 5.5.0 Command line too long\r\n250 2.0.0 OK\r\n");
    /* the CR at the limit and the LF after it */
    memset(line, 'x', sizeof(line));
    memcpy(line + 511, "\r\nNOOP\r\n", 8);
    h_feedn(h, line, 512);
    h_feedn(h, line + 512, 7);
    h_expect(h, "500 5.5.0 Command line too long\r\n250 2.0.0 OK\r\n");
    h_free(h);
}

static void test_pipelining(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\n"
              "RCPT TO:<x@remote.example>\r\nRCPT TO:<v@mx.test>\r\nDATA\r\n"
              "Subject: p\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@b.example>\r\nRCPT TO:<w@mx.test>\r\n"
              "DATA\r\nx\r\n.\r\nQUIT\r\n");
    assert_non_null(strstr(h->replies, "250 HELP\r\n"
                                       "250 2.1.0 <a@b.example>... Sender ok\r\n"
                                       "250 2.1.5 <u@mx.test>... Recipient ok\r\n"
                                       "550 5.7.1 <x@remote.example>... Relaying denied\r\n"
                                       "250 2.1.5 <v@mx.test>... Recipient ok\r\n"
                                       "354 Enter mail, end with \".\" on a line by itself\r\n"));
    assert_true(h->replies[h->rlen - 3] == 'f'); /* nothing after 354 while committing */
    assert_int_equal(h->n_data_end, 1);
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_int_equal(t->n_rcpts, 2);
    h_clear(h);
    h_commit(h, true);
    h_expect(h, "250 2.0.0 QID0001 Message accepted for delivery\r\n"
                "250 2.1.0 <b@b.example>... Sender ok\r\n"
                "250 2.1.5 <w@mx.test>... Recipient ok\r\n"
                "354 Enter mail, end with \".\" on a line by itself\r\n");
    h_commit(h, true);
    h_expect(h, "250 2.0.0 QID0001 Message accepted for delivery\r\n"
                "221 2.0.0 mx.test closing connection\r\n");
    h_free(h);
}

static void test_starttls(void **state)
{
    (void)state;
    struct h *h = h_new(NULL);
    h_feed(h, "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n");
    h_clear(h);
    /* RFC 3207 4.2 / CVE-2011-0411: what follows STARTTLS in plaintext never runs */
    h_feed(h, "STARTTLS\r\nRCPT TO:<u@mx.test>\r\n");
    h_feed(h, "DATA\r\n");
    h_expect(h, "220 2.0.0 Ready to start TLS\r\n");
    h_expect_events(h, "STARTTLS\n");
    assert_int_equal(smtp_server_deadline(h->s), 0);
    smtp_server_tls_started(h->s, h->now);
    h_expect(h, "");
    h_expect_events(h, "RSET\n");
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_null(t->helo);
    assert_null(t->sender);
    h_feed(h, "MAIL FROM:<a@b.example>\r\n");
    h_expect(h, "503 5.0.0 Polite people say HELO first\r\n");
    h_feed(h, "EHLO c.example\r\n");
    assert_null(strstr(h->replies, "STARTTLS"));
    h_clear(h);
    h_feed(h, "STARTTLS\r\n");
    h_expect(h, "503 5.5.1 TLS already active\r\n");
    h_free(h);
}

static void test_starttls_refused(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.starttls = false;
    struct h *h = h_new(&set);
    h_feed(h, "STARTTLS\r\nSTARTTLS now\r\nNOOP\r\n");
    h_expect(h, "454 4.7.0 TLS not available\r\n"
                "501 5.5.4 Syntax error (no parameters allowed)\r\n"
                "250 2.0.0 OK\r\n");
    h_free(h);
    h = h_new(NULL);
    h_feed(h, "STARTTLS x\r\n");
    h_expect(h, "501 5.5.4 Syntax error (no parameters allowed)\r\n");
    h_free(h);
}

static void test_in_tls_from_start(void **state)
{
    (void)state;
    struct smtp_server_settings set;
    h_default_settings(&set);
    set.in_tls = true;
    struct h *h = h_new(&set);
    h_feed(h, "EHLO c.example\r\n");
    assert_null(strstr(h->replies, "STARTTLS"));
    h_free(h);
}

static void test_reply_format(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(smtp_reply_format(out, sizeof(out), 250, "2.0.0", "OK"), 14);
    assert_string_equal(out, "250 2.0.0 OK\r\n");
    assert_int_equal(smtp_reply_format(out, sizeof(out), 354, NULL, "Go"), 8);
    assert_string_equal(out, "354 Go\r\n");
    size_t n = smtp_reply_format(out, 16, 550, "5.7.1", "a long reason text");
    assert_int_equal(n, 15);
    assert_string_equal(out, "550 5.7.1 a l\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuse),
        cmocka_unit_test(test_ehlo_extensions),
        cmocka_unit_test(test_ehlo_no_size_limit_no_starttls),
        cmocka_unit_test(test_helo),
        cmocka_unit_test(test_helo_invalid_names),
        cmocka_unit_test(test_helo_resets_transaction),
        cmocka_unit_test(test_mail),
        cmocka_unit_test(test_mail_null_sender),
        cmocka_unit_test(test_mail_params),
        cmocka_unit_test(test_mail_params_need_ehlo),
        cmocka_unit_test(test_mail_size_over_limit),
        cmocka_unit_test(test_utf8_needs_smtputf8),
        cmocka_unit_test(test_rcpt),
        cmocka_unit_test(test_rcpt_relay_denied),
        cmocka_unit_test(test_too_many_recipients),
        cmocka_unit_test(test_data_sequence_errors),
        cmocka_unit_test(test_simple_commands),
        cmocka_unit_test(test_unknown_command_is_printable_and_truncated),
        cmocka_unit_test(test_rset),
        cmocka_unit_test(test_quit),
        cmocka_unit_test(test_bare_cr_lf_in_command),
        cmocka_unit_test(test_nul_in_command),
        cmocka_unit_test(test_line_too_long),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_starttls),
        cmocka_unit_test(test_starttls_refused),
        cmocka_unit_test(test_in_tls_from_start),
        cmocka_unit_test(test_reply_format),
        cmocka_unit_test(test_mail_without_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
