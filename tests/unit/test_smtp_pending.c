/*
 * tests/unit/test_smtp_pending.c — checks answered later (smtp/smtp_server_check.c) at
 * HELO, RCPT, DATA and BDAT, and the message refused at its end (commit_refused): the
 * server holds what follows a pending command, answers it as a synchronous hook would
 * have, then runs the held input in order; filters' verbatim replies are sent as they are
 * or replaced when malformed.
 */
#include "smtp_server_harness.h"

#define S(lit) lit, sizeof(lit) - 1

static const char *const FALLBACK = SMTP_SERVER_FALLBACK_REPLY;
static const char *const GO_AHEAD = "354 Enter mail, end with \".\" on a line by itself\r\n";

/* What the hooks answer, and what they were asked, in order. */
static struct {
    int verdict; /* returned by every hook */
    struct smtp_addr_error err;
    char asked[1024];
    size_t asked_len;
} hk;

static void hk_ask(const char *what, const char *arg)
{
    int n =
        snprintf(hk.asked + hk.asked_len, sizeof(hk.asked) - hk.asked_len, "%s %s\n", what, arg);
    assert_true(n > 0 && (size_t)n < sizeof(hk.asked) - hk.asked_len);
    hk.asked_len += (size_t)n;
}

static void hk_expect(const char *asked)
{
    assert_string_equal(hk.asked, asked);
    hk.asked_len = 0;
    hk.asked[0] = '\0';
}

static int hk_answer(struct smtp_addr_error *err)
{
    if (hk.verdict < 0)
        *err = hk.err;
    return hk.verdict;
}

static int hk_rcpt(void *arg, const struct smtp_path *rcpt, const struct smtp_rcpt_params *params,
                   struct smtp_addr_error *err)
{
    (void)arg;
    (void)params;
    hk_ask("rcpt", rcpt->mailbox);
    return hk_answer(err);
}

static int hk_helo(void *arg, const char *name, bool esmtp, struct smtp_addr_error *err)
{
    (void)arg;
    hk_ask(esmtp ? "ehlo" : "helo", name);
    return hk_answer(err);
}

static int hk_data(void *arg, struct smtp_addr_error *err)
{
    (void)arg;
    hk_ask("data", "");
    return hk_answer(err);
}

/* A session whose hooks all say "pending"; `ehlo`: EHLO done (accepted) and cleared. */
static struct h *hp_new(const struct smtp_server_settings *set, bool ehlo)
{
    memset(&hk, 0, sizeof(hk));
    hk.verdict = 1;
    struct h *h = h_new(set);
    h->io.check_rcpt = hk_rcpt;
    h->io.check_helo = hk_helo;
    h->io.check_data = hk_data;
    if (ehlo) {
        h_feed(h, "EHLO client.example\r\n");
        smtp_server_check_done(h->s, NULL, h->now);
        h_clear(h);
        hk_expect("ehlo client.example\n");
    }
    return h;
}

/* EHLO and MAIL accepted, the logs cleared. */
static struct h *hp_mail(const struct smtp_server_settings *set)
{
    struct h *h = hp_new(set, true);
    h_feed(h, "MAIL FROM:<a@b.example>\r\n");
    h_expect(h, "250 2.1.0 <a@b.example>... Sender ok\r\n");
    h_clear(h);
    return h;
}

/* ... and one recipient. */
static struct h *hp_envelope(void)
{
    struct h *h = hp_mail(NULL);
    h_feed(h, "RCPT TO:<u@mx.test>\r\n");
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, "250 2.1.5 <u@mx.test>... Recipient ok\r\n");
    hk_expect("rcpt u@mx.test\n");
    h_clear(h);
    return h;
}

static void test_rcpt_pending_accepted(void **state)
{
    (void)state;
    struct h *h = hp_mail(NULL);
    h_feed(h, "RCPT TO:<u@mx.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u@mx.test\r\n");
    h_expect(h, "");
    h_expect_events(h, "");
    hk_expect("rcpt u@mx.test\n");
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 0);
    /* the phase before the command keeps running: MAIL's */
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1003);
    h->now += 500;
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, "250 2.1.5 <u@mx.test>... Recipient ok\r\n");
    h_expect_events(h, "RCPT u@mx.test\n");
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_int_equal(t->n_rcpts, 1);
    assert_string_equal(t->rcpts[0].mailbox, "u@mx.test");
    assert_int_equal(t->rcpts[0].params.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
    assert_string_equal(t->rcpts[0].params.orcpt, "rfc822;u@mx.test");
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1004);
    /* a second verdict is ignored */
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, "");
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 1);
    h_free(h);
}

/* A refusal given later reads exactly as the synchronous one, event included. */
static void test_rcpt_pending_refused_like_sync(void **state)
{
    (void)state;
    struct h *sync = h_new(NULL);
    h_feed(sync, "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n");
    h_clear(sync);
    h_feed(sync, "RCPT TO: <u@x.test>\r\n");

    struct h *h = hp_mail(NULL);
    h_feed(h, "RCPT TO: <u@x.test>\r\n");
    smtp_server_check_done(h->s, &(struct smtp_addr_error){550, "5.7.1", "Relaying denied"},
                           h->now);
    assert_string_equal(h->replies, sync->replies);
    assert_string_equal(h->events, sync->events);
    h_expect(h, "550 5.7.1 <u@x.test>... Relaying denied\r\n");
    h_expect_events(h, "REJECT RCPT [<u@x.test>] 550 5.7.1 <u@x.test>... Relaying denied\n");
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 0);
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1010); /* misc */

    /* what the hook leaves empty has RCPT's defaults; control octets never reach the reply */
    h_feed(h, "RCPT TO:<v@x.test>\r\n");
    smtp_server_check_done(h->s, &(struct smtp_addr_error){0, NULL, "no\r\nsuch"}, h->now);
    h_expect(h, "550 5.7.1 <v@x.test>... no??such\r\n");
    h_feed(h, "RCPT TO:<w@x.test>\r\n");
    smtp_server_check_done(h->s, &(struct smtp_addr_error){451, "4.7.1", NULL}, h->now);
    h_expect(h, "451 4.7.1 <w@x.test>... Recipient refused\r\n");
    h_free(sync);
    h_free(h);
}

/* Refusals given later count toward bad_rcpt_throttle (3): the 4th RCPT's answer waits 1 s,
 * and no client error is counted. */
static void test_rcpt_pending_refusals_throttle(void **state)
{
    (void)state;
    struct h *h = hp_mail(NULL);
    static const struct smtp_addr_error no = {550, "5.1.1", "User unknown"};
    for (int i = 0; i < 3; i++) {
        h_feed(h, "RCPT TO:<nobody@mx.test>\r\n");
        smtp_server_check_done(h->s, &no, h->now);
        h_expect(h, "550 5.1.1 <nobody@mx.test>... User unknown\r\n");
    }
    h_feed(h, "RCPT TO:<u@mx.test>\r\nNOOP\r\n");
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, ""); /* held by the slow-down, and the NOOP with it */
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1000);
    h->now += 1000;
    smtp_server_tick(h->s, h->now);
    h_expect(h, "250 2.1.5 <u@mx.test>... Recipient ok\r\n250 2.0.0 OK\r\n");
    h_free(h);
}

/* Pipelined RCPTs: the hook sees one at a time; the replies keep the commands' order. */
static void test_rcpt_pipelined_in_order(void **state)
{
    (void)state;
    struct h *h = hp_mail(NULL);
    h_feed(h, "RCPT TO:<a@mx.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@mx.test>\r\nNOOP\r\n");
    hk_expect("rcpt a@mx.test\n");
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, "250 2.1.5 <a@mx.test>... Recipient ok\r\n");
    hk_expect("rcpt b@x.test\n");
    smtp_server_check_done(h->s, &(struct smtp_addr_error){550, "5.7.1", "Relaying denied"},
                           h->now);
    h_expect(h, "550 5.7.1 <b@x.test>... Relaying denied\r\n");
    hk_expect("rcpt c@mx.test\n");
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, "250 2.1.5 <c@mx.test>... Recipient ok\r\n250 2.0.0 OK\r\n");
    hk_expect("");
    h_expect_events(h, "RCPT a@mx.test\n"
                       "REJECT RCPT [<b@x.test>] 550 5.7.1 <b@x.test>... Relaying denied\n"
                       "RCPT c@mx.test\n");
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 2);
    h_free(h);
}

/* max_recipients (5) counts what was accepted after a wait; the 6th is refused without
 * asking the hook, as no error. */
static void test_rcpt_pending_max_recipients(void **state)
{
    (void)state;
    struct h *h = hp_mail(NULL);
    h_feed(h, "RCPT TO:<r1@mx.test>\r\nRCPT TO:<r2@mx.test>\r\nRCPT TO:<r3@mx.test>\r\n"
              "RCPT TO:<r4@mx.test>\r\nRCPT TO:<r5@mx.test>\r\nRCPT TO:<r6@mx.test>\r\n");
    for (int i = 0; i < 5; i++)
        smtp_server_check_done(h->s, NULL, h->now);
    hk_expect("rcpt r1@mx.test\nrcpt r2@mx.test\nrcpt r3@mx.test\nrcpt r4@mx.test\n"
              "rcpt r5@mx.test\n");
    assert_non_null(strstr(h->replies, "250 2.1.5 <r5@mx.test>... Recipient ok\r\n"
                                       "452 4.5.3 Too many recipients\r\n"));
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 5);
    h_free(h);
}

/* RSET and QUIT behind a pending command run after its verdict, in order. */
static void test_rset_quit_held(void **state)
{
    (void)state;
    struct h *h = hp_mail(NULL);
    h_feed(h, "RCPT TO:<u@mx.test>\r\nRSET\r\nQUIT\r\n");
    h_expect(h, "");
    assert_int_equal(h->n_close, 0);
    assert_non_null(smtp_server_transaction(h->s)->sender);
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, "250 2.1.5 <u@mx.test>... Recipient ok\r\n250 2.0.0 Reset state\r\n"
                "221 2.0.0 mx.test closing connection\r\n");
    h_expect_events(h, "RCPT u@mx.test\nRSET\nCLOSE quit\n");
    h_free(h);
}

/* No verdict: the session's timeout ends it; a late verdict does nothing; nothing leaks. */
static void test_timeout_while_pending(void **state)
{
    (void)state;
    struct h *h = hp_mail(NULL);
    h_feed(h, "RCPT TO:<u@mx.test> ORCPT=rfc822;u@mx.test\r\nDATA\r\n");
    uint64_t deadline = smtp_server_deadline(h->s);
    assert_int_equal(deadline, h->now + 1003);
    smtp_server_tick(h->s, deadline - 1);
    h_expect(h, "");
    h->now = deadline;
    smtp_server_tick(h->s, h->now);
    h_expect(h, "421 4.4.2 mx.test Timeout waiting for input; closing connection\r\n");
    h_expect_events(h, "CLOSE timeout\n");
    smtp_server_check_done(h->s, NULL, h->now);
    smtp_server_check_done_reply(h->s, "550 5.7.1 late", h->now);
    h_expect(h, "");
    h_expect_events(h, "");
    h_free(h);

    /* the client goes away while the HELO check is pending */
    h = hp_new(NULL, false);
    h_feed(h, "EHLO client.example\r\n");
    smtp_server_eof(h->s);
    h_free(h);
}

static void test_helo_pending(void **state)
{
    (void)state;
    struct h *h = hp_new(NULL, false);
    h_feed(h, "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n");
    h_expect(h, "");
    hk_expect("ehlo client.example\n");
    assert_null(smtp_server_transaction(h->s)->helo);
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1001); /* initial */
    smtp_server_check_done(h->s, NULL, h->now);
    assert_true(strncmp(h->replies, "250-mx.test Hello client.example [192.0.2.1]", 44) == 0);
    assert_non_null(strstr(h->replies, "250 HELP\r\n250 2.1.0 <a@b.example>... Sender ok\r\n"));
    h_expect_events(h, "HELO client.example\nMAIL a@b.example\n");
    assert_true(smtp_server_transaction(h->s)->esmtp);
    h_clear(h);

    /* refused (a HELO again, mid-transaction): the transaction and the name are gone, MAIL
     * needs a HELO first; no client error is counted */
    h_feed(h, "HELO other.example\r\nMAIL FROM:<a@b.example>\r\n");
    hk_expect("helo other.example\n");
    smtp_server_check_done(h->s, &(struct smtp_addr_error){550, "5.7.1", "Go away"}, h->now);
    h_expect(h, "550 5.7.1 Go away\r\n503 5.0.0 Polite people say HELO first\r\n");
    h_expect_events(h, "RSET\nREJECT HELO [other.example] 550 5.7.1 Go away\n"
                       "REJECT MAIL [FROM:<a@b.example>] 503 5.0.0 Polite people say HELO first\n");
    const struct smtp_transaction *t = smtp_server_transaction(h->s);
    assert_null(t->helo);
    assert_null(t->sender);
    assert_false(t->esmtp);
    h_free(h);
}

/* A synchronous refusal of HELO reads the same, with the step's defaults. */
static void test_helo_refused_now(void **state)
{
    (void)state;
    struct h *h = hp_new(NULL, false);
    hk.verdict = -1;
    hk.err = (struct smtp_addr_error){0, NULL, NULL};
    h_feed(h, "HELO client.example\r\n");
    h_expect(h, "550 5.7.1 Command rejected\r\n");
    hk.verdict = 0;
    h_feed(h, "HELO client.example\r\n");
    h_expect(h, "250 mx.test Hello client.example [192.0.2.1], pleased to meet you\r\n");
    h_free(h);
}

static void test_data_pending(void **state)
{
    (void)state;
    struct h *h = hp_envelope();
    /* a client that does not wait for 354: the content is held with the command */
    h_feed(h, "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    h_expect(h, "");
    h_expect_events(h, "");
    hk_expect("data \n");
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1004); /* rcpt */
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, GO_AHEAD);
    h_expect_events(h, "DATA_START\nDATA_END 18 -\n");
    h_expect_body(h, S("Subject: x\r\n\r\nhi\r\n"));
    h_commit(h, true);
    h_expect(h, "250 2.0.0 QID0001 Message accepted for delivery\r\n");
    h_free(h);

    /* refused: the transaction stays, no client error; the next DATA is asked again */
    h = hp_envelope();
    h_feed(h, "DATA\r\n");
    smtp_server_check_done(h->s, &(struct smtp_addr_error){554, "5.7.1", "Not from you"}, h->now);
    h_expect(h, "554 5.7.1 Not from you\r\n");
    h_expect_events(h, "REJECT DATA [] 554 5.7.1 Not from you\n");
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 1);
    hk.verdict = -1;
    hk.err = (struct smtp_addr_error){451, "4.7.1", "Try later"};
    h_feed(h, "DATA\r\n");
    h_expect(h, "451 4.7.1 Try later\r\n");
    hk_expect("data \ndata \n");
    hk.verdict = 0;
    h_feed(h, "DATA\r\n");
    h_expect(h, GO_AHEAD);
    h_free(h);
}

static void test_bdat_pending(void **state)
{
    (void)state;
    struct h *h = hp_envelope();
    h_feed(h, "BDAT 5\r\nhelloBDAT 3 LAST\r\nabcNOOP\r\n");
    h_expect(h, "");
    hk_expect("data \n");
    smtp_server_check_done(h->s, NULL, h->now);
    /* only the first chunk is asked about */
    hk_expect("");
    h_expect(h, "250 2.0.0 5 octets received\r\n");
    h_expect_events(h, "DATA_START\nDATA_END 8 -\n");
    h_expect_body(h, S("helloabc"));
    h_commit(h, true);
    h_expect(h, "250 2.0.0 QID0001 Message accepted for delivery\r\n250 2.0.0 OK\r\n");
    h_free(h);
}

/* A refused BDAT's octets are read and discarded, the refusal follows them; the next
 * BDAT is the message's first again. */
static void test_bdat_pending_refused(void **state)
{
    (void)state;
    struct h *h = hp_envelope();
    h_feed(h, "BDAT 9\r\nRSET\r\nxyzNOOP\r\n");
    smtp_server_check_done_reply(h->s, "550-5.7.1 not\r\n550 5.7.1 this", h->now);
    h_expect(h, "550-5.7.1 not\r\n550 5.7.1 this\r\n250 2.0.0 OK\r\n");
    h_expect_events(h, "REJECT BDAT [] 550-5.7.1 not 550 5.7.1 this\n");
    assert_int_equal(h->blen, 0);
    assert_false(smtp_server_transaction(h->s)->bdat);
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 1);
    hk_expect("data \n");
    /* refused at once, and split across reads, the same */
    hk.verdict = -1;
    hk.err = (struct smtp_addr_error){0, NULL, NULL};
    h_feed_bytes(h, S("BDAT 4 LAST\r\nabcdNOOP\r\n"));
    h_expect(h, "550 5.7.1 Command rejected\r\n250 2.0.0 OK\r\n");
    assert_int_equal(h->n_data_end, 0);
    h_free(h);
}

/* Chunk octets held while the check is pending ask for a pause past max_input_buffer. */
static void test_bdat_pending_pause(void **state)
{
    (void)state;
    struct h *h = hp_envelope();
    static char chunk[5000];
    for (size_t i = 0; i < sizeof(chunk); i += 50)
        memcpy(chunk + i, "a line of fifty octets, CRLF included ..........\r\n", 50);
    assert_false(h_feed(h, "BDAT 5000 LAST\r\n"));
    assert_false(h_feedn(h, chunk, 4000));
    assert_true(h_feedn(h, chunk, 1000));
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect_events(h, "DATA_START\nDATA_END 5000 -\n");
    assert_int_equal(h->blen, 5000);
    h_free(h);
}

/* The message refused at its end with code, enh and text: the transaction ends as after
 * a 250, nothing is counted as an error, held input resumes. */
static void test_commit_refused(void **state)
{
    (void)state;
    struct h *h = hp_envelope();
    hk.verdict = 0;
    h_feed(h, "DATA\r\nx\r\n.\r\nMAIL FROM:<c@d.example>\r\n");
    h_clear(h);
    smtp_server_commit_refused(h->s, 554, "5.7.1", "Spam\r\nno", h->now);
    h_expect(h, "554 5.7.1 Spam??no\r\n250 2.1.0 <c@d.example>... Sender ok\r\n");
    h_expect_events(h, "MAIL c@d.example\n");
    assert_int_equal(smtp_server_transaction(h->s)->n_rcpts, 0);
    assert_int_equal(smtp_server_deadline(h->s), h->now + 1003);
    /* ignored once the commit is no longer awaited */
    smtp_server_commit_refused(h->s, 554, "5.7.1", "again", h->now);
    smtp_server_commit_refused_reply(h->s, "554 5.7.1 again", h->now);
    h_expect(h, "");
    h_free(h);

    /* without enh, and with a code or enh the reply cannot carry: the fallback */
    static const struct {
        int code;
        const char *enh;
        const char *reply;
    } cases[] = {
        {451, NULL, "451 Try again\r\n"},
        {250, "2.0.0", SMTP_SERVER_FALLBACK_REPLY},
        {554, "4.7.1", SMTP_SERVER_FALLBACK_REPLY},
        {554, "5.7", SMTP_SERVER_FALLBACK_REPLY},
        {554, "5.7.1\r\n250 ok", SMTP_SERVER_FALLBACK_REPLY},
        {600, "6.0.0", SMTP_SERVER_FALLBACK_REPLY},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h = hp_envelope();
        hk.verdict = 0;
        h_feed(h, "DATA\r\n.\r\n");
        h_clear(h);
        smtp_server_commit_refused(h->s, cases[i].code, cases[i].enh, "Try again", h->now);
        h_expect(h, cases[i].reply);
        h_free(h);
    }
}

static void test_commit_refused_verbatim(void **state)
{
    (void)state;
    struct h *h = hp_envelope();
    hk.verdict = 0;
    h_feed(h, "BDAT 3 LAST\r\nabcQUIT\r\n");
    h_clear(h);
    smtp_server_commit_refused_reply(h->s, "554-5.7.1 a\r\n554-\r\n554 5.7.1 b", h->now);
    h_expect(h, "554-5.7.1 a\r\n554-\r\n554 5.7.1 b\r\n221 2.0.0 mx.test closing connection\r\n");
    h_free(h);
}

/* `n` lines "450-x" ... "450 x", as one verbatim reply. */
static void hp_lines(char *out, size_t outlen, int n)
{
    out[0] = '\0';
    for (int i = 1; i < n; i++)
        strncat(out, "450-x\r\n", outlen - strlen(out) - 1);
    strncat(out, "450 x", outlen - strlen(out) - 1);
}

/* A reply line of `n` octets (CRLF not counted). */
static void hp_long_line(char *out, size_t n)
{
    memset(out, 'x', n);
    memcpy(out, "550 ", 4);
    out[n] = '\0';
}

/* The reply RCPT gets when the pending check is answered with `verbatim`. */
static void hp_verbatim_rcpt(const char *verbatim, const char *expect)
{
    struct h *h = hp_mail(NULL);
    h_feed(h, "RCPT TO:<u@mx.test>\r\n");
    smtp_server_check_done_reply(h->s, verbatim, h->now);
    h_expect(h, expect);
    h_free(h);
}

/* Verbatim replies are sent as they are only when well-formed; else the fallback. */
static void test_verbatim_validation(void **state)
{
    (void)state;
    static char buf[64 * 8], want[64 * 8 + 2];
    static const char *const good[] = {
        "421 4.7.0 closing",
        "599",
        "554-\r\n554",
        "554-5.7.1 a\r\n554", /* a bare code on the last line */
        "550-5.7.1 a\ttab\r\n550 5.7.1 end",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(want, sizeof(want), "%s\r\n", good[i]);
        hp_verbatim_rcpt(good[i], want);
    }
    /* at the limits: SMTP_SERVER_REPLY_LINES lines, a line of 510 octets */
    hp_lines(buf, sizeof(buf), SMTP_SERVER_REPLY_LINES);
    snprintf(want, sizeof(want), "%s\r\n", buf);
    hp_verbatim_rcpt(buf, want);
    hp_long_line(buf, 510);
    snprintf(want, sizeof(want), "%s\r\n", buf);
    hp_verbatim_rcpt(buf, want);

    static const char *const bad[] = {
        "",
        "250 2.0.0 ok",
        "354 go on",
        "554-5.7.1 a\r\n550 5.7.1 b", /* the code changes */
        "554 5.7.1 a\r\n554 5.7.1 b", /* ' ' before the last line */
        "554-5.7.1 a",                /* '-' on the last line */
        "554 5.7.1 a\r\n",            /* the final CRLF is the server's */
        "554 5.7.1 a\nb",             /* bare LF */
        "554 5.7.1 a\rb",             /* bare CR */
        "554\r\n554 x",               /* a bare code on a line but the last */
        "55 x",
        "5a4 x",
        "554x5.7.1",
        "554 \x1b[31m",
        "554 caf\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        hp_verbatim_rcpt(bad[i], FALLBACK);
    hp_lines(buf, sizeof(buf), SMTP_SERVER_REPLY_LINES + 1);
    hp_verbatim_rcpt(buf, FALLBACK);
    hp_long_line(buf, 511);
    hp_verbatim_rcpt(buf, FALLBACK);
    hp_verbatim_rcpt(NULL, FALLBACK);
}

/* A refusal given verbatim is still a refused RCPT: logged with its lines joined, counted
 * toward bad_rcpt_throttle. */
static void test_rcpt_refused_verbatim(void **state)
{
    (void)state;
    struct h *h = hp_mail(NULL);
    for (int i = 0; i < 3; i++) {
        h_feed(h, "RCPT TO:<u@mx.test>\r\n");
        smtp_server_check_done_reply(h->s, "550-5.7.1 one\r\n550 5.7.1 two", h->now);
        h_expect(h, "550-5.7.1 one\r\n550 5.7.1 two\r\n");
    }
    h_expect_events(h, "REJECT RCPT [<u@mx.test>] 550-5.7.1 one 550 5.7.1 two\n"
                       "REJECT RCPT [<u@mx.test>] 550-5.7.1 one 550 5.7.1 two\n"
                       "REJECT RCPT [<u@mx.test>] 550-5.7.1 one 550 5.7.1 two\n");
    h_feed(h, "RCPT TO:<u@mx.test>\r\n");
    smtp_server_check_done(h->s, NULL, h->now);
    h_expect(h, ""); /* slowed down */
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rcpt_pending_accepted),
        cmocka_unit_test(test_rcpt_pending_refused_like_sync),
        cmocka_unit_test(test_rcpt_pending_refusals_throttle),
        cmocka_unit_test(test_rcpt_pipelined_in_order),
        cmocka_unit_test(test_rcpt_pending_max_recipients),
        cmocka_unit_test(test_rset_quit_held),
        cmocka_unit_test(test_timeout_while_pending),
        cmocka_unit_test(test_helo_pending),
        cmocka_unit_test(test_helo_refused_now),
        cmocka_unit_test(test_data_pending),
        cmocka_unit_test(test_bdat_pending),
        cmocka_unit_test(test_bdat_pending_refused),
        cmocka_unit_test(test_bdat_pending_pause),
        cmocka_unit_test(test_commit_refused),
        cmocka_unit_test(test_commit_refused_verbatim),
        cmocka_unit_test(test_verbatim_validation),
        cmocka_unit_test(test_rcpt_refused_verbatim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
