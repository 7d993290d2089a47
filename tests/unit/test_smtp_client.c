/* smtp_client: the outbound client state machine, fed the server's replies whole and byte
 * by byte; every command it writes is checked to the octet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_client.h"
#include "tls/tls_hmac.h"
#include "util/buf.h"

struct t {
    struct smtp_client *c;
    struct smtp_client_settings set;
    struct smtp_client_io io;
    struct buf sent;
    unsigned n_sends;
    size_t max_send;
    struct buf ev;
    uint64_t now;
    bool bytewise;
    const struct smtp_client_msg *send_on_done; /* started again from inside DONE */
    bool quit_on_done;
    bool quit_on_failed; /* and try to send: both ignored once over */
    bool quit_on_rcpt;
    enum smtp_client_phase done_phase; /* of the last DONE */
    bool tls_at_once;                  /* "handshake" inside the STARTTLS event */
};

static void t_on_send(void *arg, const void *data, size_t len)
{
    struct t *t = arg;
    assert_int_equal(buf_append(&t->sent, data, len), 0);
    t->n_sends++;
    if (len > t->max_send)
        t->max_send = len;
}

static void t_reply_text(struct buf *b, const struct smtp_client_reply *r)
{
    buf_printf(b, "%d %s %s%s", r->code, r->enh, r->text, r->local ? " (local)" : "");
}

static void t_rcpts(struct buf *b, const struct smtp_client_event *ev)
{
    for (size_t i = 0; i < ev->n_rcpts; i++) {
        const struct smtp_client_reply *r = &ev->rcpts[i];
        buf_printf(b, " r%zu %c ", i, "OTP"[r->outcome]);
        t_reply_text(b, r);
        buf_printf(b, "\n");
    }
}

static void t_on_event(void *arg, const struct smtp_client_event *ev)
{
    struct t *t = arg;
    struct buf *b = &t->ev;
    switch (ev->type) {
    case SMTP_CLIENT_EV_READY:
        buf_printf(b, "READY");
        if (ev->tls_refused) {
            buf_printf(b, " tls_refused ");
            t_reply_text(b, ev->reply);
        }
        buf_printf(b, "\n");
        break;
    case SMTP_CLIENT_EV_STARTTLS:
        buf_printf(b, "STARTTLS\n");
        if (t->tls_at_once)
            smtp_client_tls_started(t->c, t->now);
        break;
    case SMTP_CLIENT_EV_RCPT:
        buf_printf(b, "RCPT %zu ", ev->rcpt_index);
        t_reply_text(b, ev->reply);
        buf_printf(b, "\n");
        if (t->quit_on_rcpt)
            smtp_client_quit(t->c, t->now);
        break;
    case SMTP_CLIENT_EV_DONE:
        t->done_phase = ev->phase;
        buf_printf(b, "DONE ");
        t_reply_text(b, ev->reply);
        buf_printf(b, " accepted=%zu dsn=%d\n", ev->n_accepted, ev->dsn);
        t_rcpts(b, ev);
        if (t->send_on_done) {
            const struct smtp_client_msg *m = t->send_on_done;
            t->send_on_done = NULL;
            assert_int_equal(smtp_client_send(t->c, m, t->now), 0);
        } else if (t->quit_on_done) {
            smtp_client_quit(t->c, t->now);
        }
        break;
    case SMTP_CLIENT_EV_FAILED:
        buf_printf(b, "FAILED %s %s ", ev->temporary ? "temp" : "perm",
                   smtp_client_phase_name(ev->phase));
        t_reply_text(b, ev->reply);
        buf_printf(b, "\n");
        t_rcpts(b, ev);
        if (t->quit_on_failed) {
            smtp_client_quit(t->c, t->now);
            assert_int_equal(smtp_client_send(t->c, &(struct smtp_client_msg){0}, t->now), -1);
        }
        break;
    case SMTP_CLIENT_EV_CLOSED:
        buf_printf(b, "CLOSED");
        if (ev->reply) {
            buf_printf(b, " ");
            t_reply_text(b, ev->reply);
        }
        buf_printf(b, "\n");
        break;
    }
}

static void t_default_settings(struct smtp_client_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->helo_name = "client.test";
    s->timeouts = (struct smtp_client_timeouts){.initial = 1000,
                                                .helo = 2000,
                                                .mail = 3000,
                                                .rcpt = 4000,
                                                .datainit = 5000,
                                                .datablock = 6000,
                                                .datafinal = 7000,
                                                .rset = 8000,
                                                .quit = 9000,
                                                .misc = 10000,
                                                .starttls = 11000};
}

static struct t *t_new(const struct smtp_client_settings *set, bool bytewise)
{
    struct t *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    if (set)
        t->set = *set;
    else
        t_default_settings(&t->set);
    t->io = (struct smtp_client_io){.arg = t, .send = t_on_send, .event = t_on_event};
    t->now = 100000;
    t->bytewise = bytewise;
    t->c = smtp_client_new(&t->set, &t->io, t->now);
    assert_non_null(t->c);
    return t;
}

static void t_free(struct t *t)
{
    smtp_client_free(t->c);
    buf_free(&t->sent);
    buf_free(&t->ev);
    free(t);
}

static void t_feed(struct t *t, const char *s)
{
    size_t n = strlen(s);
    if (!t->bytewise) {
        smtp_client_feed(t->c, s, n, t->now);
        return;
    }
    for (size_t i = 0; i < n; i++)
        smtp_client_feed(t->c, s + i, 1, t->now);
}

static void t_expect_buf(struct buf *b, const char *want)
{
    size_t n = strlen(want);
    if (b->len != n || (n && memcmp(b->data, want, n) != 0)) {
        print_error("expected:\n%s\ngot (%zu):\n%.*s\n", want, b->len, (int)b->len,
                    b->data ? b->data : "");
        fail();
    }
    buf_free(b);
}

static void t_expect_sent(struct t *t, const char *want)
{
    t_expect_buf(&t->sent, want);
    t->n_sends = 0;
    t->max_send = 0;
}

static void t_expect_events(struct t *t, const char *want)
{
    t_expect_buf(&t->ev, want);
}

#define EHLO_FULL                                                                                  \
    "250-mx.test Hello client.test\r\n"                                                            \
    "250-PIPELINING\r\n"                                                                           \
    "250-SIZE 1000000\r\n"                                                                         \
    "250-8BITMIME\r\n"                                                                             \
    "250-DSN\r\n"                                                                                  \
    "250-ENHANCEDSTATUSCODES\r\n"                                                                  \
    "250-SMTPUTF8\r\n"                                                                             \
    "250 HELP\r\n"
#define EHLO_BARE "250 mx.test\r\n"
#define LHLO_REPLY                                                                                 \
    "250-lmtp.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"               \
    "250 CHUNKING\r\n"

static void t_ready(struct t *t, const char *ehlo_reply)
{
    t_feed(t, "220 mx.test ESMTP\r\n");
    t_expect_sent(t, "EHLO client.test\r\n");
    t_feed(t, ehlo_reply);
    t_expect_events(t, "READY\n");
    assert_int_equal(smtp_client_deadline(t->c), 0);
}

static void t_ready_lmtp(struct t *t)
{
    t_feed(t, "220 lmtp.test\r\n");
    t_expect_sent(t, "LHLO client.test\r\n");
    t_feed(t, LHLO_REPLY);
    t_expect_events(t, "READY\n");
}

static const struct smtp_client_rcpt two_rcpts[] = {
    {.addr = "a@y.test",
     .notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE,
     .orcpt = "rfc822;a@y.test"},
    {.addr = "b@y.test", .notify = SMTP_NOTIFY_NEVER},
};

#define MSG_TWO_DATA "Subject: hi\r\n\r\n.dot\r\nbody\r\n"
static const struct smtp_client_msg msg_two = {
    .sender = "s@x.test",
    .rcpts = two_rcpts,
    .n_rcpts = 2,
    .data = MSG_TWO_DATA,
    .len = sizeof(MSG_TWO_DATA) - 1,
    .body = 8,
    .dsn_ret = 1,
    .envid = "QID+2B1",
};

static const struct smtp_client_rcpt one_rcpt[] = {{.addr = "a@y.test"}};
static const struct smtp_client_msg msg_one = {
    .sender = "", .rcpts = one_rcpt, .n_rcpts = 1, .data = "x\r\n", .len = 3};

/* ---- a whole session with every extension, pipelined ---- */

static void session_pipelined(bool bytewise)
{
    struct t *t = t_new(NULL, bytewise);
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 1000);
    t_feed(t, "220-mx.test ESMTP\r\n220 second line\r\n");
    t_expect_sent(t, "EHLO client.test\r\n");
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 2000);
    t_feed(t, EHLO_FULL);
    t_expect_events(t, "READY\n");
    const struct smtp_client_caps *caps = smtp_client_caps(t->c);
    assert_true(caps->esmtp && caps->pipelining && caps->size && caps->eightbitmime);
    assert_true(caps->dsn && caps->enhancedstatuscodes && caps->smtputf8);
    assert_false(caps->chunking || caps->starttls || caps->in_tls);
    assert_int_equal(caps->max_size, 1000000);

    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    assert_int_equal(t->n_sends, 1); /* MAIL and every RCPT in one write */
    t_expect_sent(t, "MAIL FROM:<s@x.test> SIZE=27 BODY=8BITMIME RET=FULL ENVID=QID+2B1\r\n"
                     "RCPT TO:<a@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@y.test\r\n"
                     "RCPT TO:<b@y.test> NOTIFY=NEVER\r\n");
    assert_int_equal(smtp_client_phase(t->c), SMTP_CLIENT_PHASE_MAIL);
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 3000);
    t_feed(t, "250 2.1.0 Sender ok\r\n");
    assert_int_equal(smtp_client_phase(t->c), SMTP_CLIENT_PHASE_RCPT);
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 4000);
    t_feed(t, "250 2.1.5 Recipient ok\r\n550 5.1.1 <b@y.test>... User unknown\r\n");
    t_expect_events(t, "RCPT 0 250 2.1.5 Recipient ok\n"
                       "RCPT 1 550 5.1.1 <b@y.test>... User unknown\n");
    t_expect_sent(t, "DATA\r\n");
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 5000);
    t_feed(t, "354 Enter mail, end with \".\" on a line by itself\r\n");
    t_expect_sent(t, "Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n");
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 7000);
    t_feed(t, "250 2.0.0 QID Message accepted for delivery\r\n");
    t_expect_events(t, "DONE 250 2.0.0 QID Message accepted for delivery accepted=1 dsn=1\n"
                       " r0 O 250 2.0.0 QID Message accepted for delivery\n"
                       " r1 P 550 5.1.1 <b@y.test>... User unknown\n");
    assert_int_equal(t->done_phase, SMTP_CLIENT_PHASE_DATAFINAL);
    assert_int_equal(smtp_client_deadline(t->c), 0);
    smtp_client_quit(t->c, t->now);
    t_expect_sent(t, "QUIT\r\n");
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 9000);
    t_feed(t, "221 2.0.0 mx.test closing connection\r\n");
    t_expect_events(t, "CLOSED 221 2.0.0 mx.test closing connection\n");
    t_free(t);
}

static void test_session_pipelined(void **state)
{
    (void)state;
    session_pipelined(false);
}

static void test_session_pipelined_bytewise(void **state)
{
    (void)state;
    session_pipelined(true);
}

/* Every split of one pipelined reply block into two reads gives the same result. */
static void test_every_split(void **state)
{
    (void)state;
    static const char block[] = "250 2.1.0 ok\r\n250-2.1.5 first\r\n250 2.1.5 second\r\n"
                                "550 5.1.1 no\r\n";
    for (size_t cut = 0; cut <= sizeof(block) - 1; cut++) {
        struct t *t = t_new(NULL, false);
        t_ready(t, EHLO_FULL);
        assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
        buf_free(&t->sent);
        smtp_client_feed(t->c, block, cut, t->now);
        smtp_client_feed(t->c, block + cut, sizeof(block) - 1 - cut, t->now);
        t_expect_events(t, "RCPT 0 250 2.1.5 first second\n"
                           "RCPT 1 550 5.1.1 no\n");
        t_expect_sent(t, "DATA\r\n");
        t_free(t);
    }
}

/* ---- no PIPELINING, no DSN, no 8BITMIME: one command at a time, no parameters ---- */

static void session_plain(bool bytewise)
{
    struct t *t = t_new(NULL, bytewise);
    t_ready(t, "250-mx.test\r\n250 SIZE\r\n");
    assert_true(smtp_client_caps(t->c)->size);
    assert_int_equal(smtp_client_caps(t->c)->max_size, 0);
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    /* BODY=8BITMIME left out: sent anyway (sendmail's pass8); no DSN parameters */
    t_expect_sent(t, "MAIL FROM:<s@x.test> SIZE=27\r\n");
    t_feed(t, "250 ok\r\n");
    t_expect_sent(t, "RCPT TO:<a@y.test>\r\n");
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 4000);
    t_feed(t, "250 ok\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\n");
    t_expect_sent(t, "RCPT TO:<b@y.test>\r\n");
    t_feed(t, "250 ok\r\n");
    t_expect_events(t, "RCPT 1 250 2.0.0 ok\n");
    t_expect_sent(t, "DATA\r\n");
    t_feed(t, "354 go\r\n");
    t_expect_sent(t, "Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n");
    t_feed(t, "250 ok\r\n");
    t_expect_events(t, "DONE 250 2.0.0 ok accepted=2 dsn=0\n"
                       " r0 O 250 2.0.0 ok\n"
                       " r1 O 250 2.0.0 ok\n");
    t_free(t);
}

static void test_session_plain(void **state)
{
    (void)state;
    session_plain(false);
}

static void test_session_plain_bytewise(void **state)
{
    (void)state;
    session_plain(true);
}

static void test_lf_only_replies(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_feed(t, "220 mx\n");
    t_expect_sent(t, "EHLO client.test\r\n");
    t_feed(t, "250-mx\n250 PIPELINING\n");
    t_expect_events(t, "READY\n");
    assert_true(smtp_client_caps(t->c)->pipelining);
    t_free(t);
}

/* ---- greeting, EHLO, HELO ---- */

static void test_helo_fallback(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_feed(t, "220 old.test SMTP\r\n");
    t_expect_sent(t, "EHLO client.test\r\n");
    t_feed(t, "502 5.5.1 Command not implemented\r\n");
    t_expect_sent(t, "HELO client.test\r\n");
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 2000);
    t_feed(t, "250 old.test\r\n");
    t_expect_events(t, "READY\n");
    assert_false(smtp_client_caps(t->c)->esmtp);
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<s@x.test>\r\n");
    t_free(t);
}

static void test_helo_refused(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_feed(t, "220 old.test SMTP\r\n");
    t_feed(t, "550 no EHLO\r\n");
    t_feed(t, "550 5.7.1 go away\r\n");
    t_expect_sent(t, "EHLO client.test\r\nHELO client.test\r\n");
    t_expect_events(t, "FAILED perm EHLO 550 5.7.1 go away\n");
    t_free(t);
}

static void test_ehlo_temporary(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_feed(t, "220 mx\r\n451 4.3.2 busy\r\n");
    t_expect_events(t, "FAILED temp EHLO 451 4.3.2 busy\n");
    assert_int_equal(smtp_client_phase(t->c), SMTP_CLIENT_PHASE_OVER);
    smtp_client_quit(t->c, t->now); /* over: ignored */
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), -1);
    t_expect_events(t, "");
    t_free(t);
}

static void test_greeting_refused(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, true);
    t_feed(t, "554-mx.test\r\n554 5.7.1 no SMTP service here\r\n");
    t_expect_sent(t, "");
    t_expect_events(t, "FAILED perm greeting 554 5.7.1 mx.test no SMTP service here\n");
    assert_int_equal(smtp_client_deadline(t->c), 0);
    t_free(t);

    t = t_new(NULL, false);
    t_feed(t, "421 mx.test too busy\r\n");
    t_expect_events(t, "FAILED temp greeting 421 4.0.0 mx.test too busy\n");
    t_free(t);
}

/* ---- STARTTLS ---- */

static void test_starttls(void **state)
{
    (void)state;
    struct smtp_client_settings set;
    t_default_settings(&set);
    set.starttls = true;
    struct t *t = t_new(&set, false);
    t_feed(t, "220 mx\r\n");
    t_expect_sent(t, "EHLO client.test\r\n");
    t_feed(t, "250-mx\r\n250-PIPELINING\r\n250-DSN\r\n250 STARTTLS\r\n");
    t_expect_sent(t, "STARTTLS\r\n");
    t_expect_events(t, "");
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 11000);
    /* a man in the middle's pipelined reply after the 220 is dropped, never read */
    t->now += 5;
    t_feed(t, "220 2.0.0 Ready to start TLS\r\n250 injected\r\n");
    t_expect_events(t, "STARTTLS\n");
    assert_int_equal(smtp_client_phase(t->c), SMTP_CLIENT_PHASE_STARTTLS);
    assert_int_equal(smtp_client_deadline(t->c), 100005 + 11000);
    t_feed(t, "250 more plain text\r\n");
    t_expect_events(t, "");
    smtp_client_tls_started(t->c, t->now);
    t_expect_sent(t, "EHLO client.test\r\n");
    t_feed(t, "250-mx\r\n250 8BITMIME\r\n");
    t_expect_events(t, "READY\n");
    const struct smtp_client_caps *caps = smtp_client_caps(t->c);
    assert_true(caps->in_tls && caps->eightbitmime);
    assert_false(caps->pipelining || caps->dsn || caps->starttls); /* forgotten */
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<s@x.test> BODY=8BITMIME\r\n");
    t_free(t);
}

/* Plain text after the 220 stays dropped even when TLS starts inside the event. */
static void test_starttls_at_once(void **state)
{
    (void)state;
    struct smtp_client_settings set;
    t_default_settings(&set);
    set.starttls = true;
    struct t *t = t_new(&set, false);
    t->tls_at_once = true;
    t_feed(t, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    t_expect_sent(t, "EHLO client.test\r\nSTARTTLS\r\n");
    t_feed(t, "220 go\r\n250 injected\r\n");
    t_expect_sent(t, "EHLO client.test\r\n");
    t_expect_events(t, "STARTTLS\n");
    t_feed(t, "250 mx\r\n");
    t_expect_events(t, "READY\n");
    assert_true(smtp_client_caps(t->c)->in_tls);
    t_free(t);
}

static void test_starttls_refused(void **state)
{
    (void)state;
    struct smtp_client_settings set;
    t_default_settings(&set);
    set.starttls = true;
    struct t *t = t_new(&set, false);
    t_feed(t, "220 mx\r\n250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
    t_expect_sent(t, "EHLO client.test\r\nSTARTTLS\r\n");
    t_feed(t, "454 4.7.0 TLS not available due to temporary reason\r\n");
    t_expect_events(t, "READY tls_refused 454 4.7.0 TLS not available due to temporary reason\n");
    assert_false(smtp_client_caps(t->c)->in_tls);
    assert_true(smtp_client_caps(t->c)->pipelining);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\n");
    t_free(t);
}

static void test_starttls_not_wanted_or_offered(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false); /* settings.starttls false */
    t_ready(t, "250-mx\r\n250 STARTTLS\r\n");
    assert_true(smtp_client_caps(t->c)->starttls);
    t_free(t);

    struct smtp_client_settings set;
    t_default_settings(&set);
    set.starttls = true;
    t = t_new(&set, false);
    t_ready(t, EHLO_FULL);
    t_free(t);
}

/* ---- local refusals ---- */

static void test_size_refused(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, "250-mx\r\n250-DSN\r\n250 SIZE 20\r\n");
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    t_expect_sent(t, "");
    t_expect_events(t, "DONE 552 5.3.4 Message is too large; 20 bytes max (local) accepted=0 "
                       "dsn=1\n"
                       " r0 P 552 5.3.4 Message is too large; 20 bytes max (local)\n"
                       " r1 P 552 5.3.4 Message is too large; 20 bytes max (local)\n");
    assert_int_equal(t->done_phase, SMTP_CLIENT_PHASE_MAIL);
    /* nothing was opened: the next message goes without RSET */
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<> SIZE=3\r\n");
    t_free(t);
}

static void test_smtputf8(void **state)
{
    (void)state;
    struct smtp_client_msg m = msg_one;
    m.smtputf8 = true;
    struct t *t = t_new(NULL, false);
    t_ready(t, "250-mx\r\n250 PIPELINING\r\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_expect_sent(t, "");
    t_expect_events(t, "DONE 553 5.6.7 Remote server does not support SMTPUTF8 (local) "
                       "accepted=0 dsn=0\n"
                       " r0 P 553 5.6.7 Remote server does not support SMTPUTF8 (local)\n");
    t_free(t);

    t = t_new(NULL, false);
    t_ready(t, EHLO_FULL);
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<> SIZE=3 SMTPUTF8\r\nRCPT TO:<a@y.test>\r\n");
    t_free(t);
}

/* RFC 4954 5: AUTH= goes only to a server that offers AUTH, whatever its mechanisms (this
 * client has no credentials here), and only a valid value. */
static void test_auth_param_only_when_offered(void **state)
{
    (void)state;
    static const struct {
        const char *ehlo, *auth, *mail;
    } cases[] = {
        {"250-mx\r\n250 AUTH GSSAPI\r\n", "alice+2Bx@x.test",
         "MAIL FROM:<s@x.test> AUTH=alice+2Bx@x.test\r\n"},
        {"250-mx\r\n250 AUTH=PLAIN\r\n", "<>", "MAIL FROM:<s@x.test> AUTH=<>\r\n"},
        {"250-mx\r\n250 DSN\r\n", "alice@x.test", "MAIL FROM:<s@x.test>\r\n"},
        {"250 mx\r\n", "<>", "MAIL FROM:<s@x.test>\r\n"},
        {"250-mx\r\n250 AUTH PLAIN\r\n", "bad=value", "MAIL FROM:<s@x.test>\r\n"},
        {"250-mx\r\n250 AUTH PLAIN\r\n", NULL, "MAIL FROM:<s@x.test>\r\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtp_client_msg m = msg_one;
        m.sender = "s@x.test";
        m.auth = cases[i].auth;
        struct t *t = t_new(NULL, false);
        t_ready(t, cases[i].ehlo);
        assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
        t_expect_sent(t, cases[i].mail);
        t_free(t);
    }
}

static void test_bad_addresses_not_sent(void **state)
{
    (void)state;
    const struct smtp_client_rcpt rcpts[] = {
        {.addr = "a@y.test\r\nRSET"},
        {.addr = "b@y.test", .orcpt = "rfc822;bad orcpt"},
        {.addr = "c@y.test", .orcpt = "rfc822;c@y.test"},
    };
    struct smtp_client_msg m = {
        .sender = "s@x.test", .rcpts = rcpts, .n_rcpts = 3, .data = "", .envid = "bad=envid"};
    struct t *t = t_new(NULL, false);
    t_ready(t, "250-mx\r\n250-DSN\r\n250 PIPELINING\r\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    /* the broken recipient is refused here; an invalid ORCPT or ENVID is left out */
    t_expect_sent(t, "MAIL FROM:<s@x.test>\r\n"
                     "RCPT TO:<b@y.test>\r\n"
                     "RCPT TO:<c@y.test> ORCPT=rfc822;c@y.test\r\n");
    t_feed(t, "250 ok\r\n550 5.1.1 no b\r\n250 ok c\r\n");
    t_expect_events(t, "RCPT 1 550 5.1.1 no b\nRCPT 2 250 2.0.0 ok c\n");
    t_expect_sent(t, "DATA\r\n");
    t_feed(t, "354 go\r\n");
    t_expect_sent(t, ".\r\n"); /* an empty message */
    t_feed(t, "250 ok\r\n");
    t_expect_events(t, "DONE 250 2.0.0 ok accepted=1 dsn=1\n"
                       " r0 P 553 5.1.3 Bad recipient address syntax (local)\n"
                       " r1 P 550 5.1.1 no b\n"
                       " r2 O 250 2.0.0 ok\n");

    m.sender = "s@x\n";
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_expect_sent(t, "");
    t_expect_events(t, "DONE 553 5.1.7 Bad sender address syntax (local) accepted=0 dsn=1\n"
                       " r0 P 553 5.1.7 Bad sender address syntax (local)\n"
                       " r1 P 553 5.1.7 Bad sender address syntax (local)\n"
                       " r2 P 553 5.1.7 Bad sender address syntax (local)\n");
    m.sender = "";
    m.n_rcpts = 1;
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_expect_sent(t, "");
    t_expect_events(t, "DONE 553 5.1.3 Bad recipient address syntax (local) accepted=0 dsn=1\n"
                       " r0 P 553 5.1.3 Bad recipient address syntax (local)\n");
    t_free(t);
}

/* ---- the body ---- */

static void data_expect(const char *df, size_t len, const char *want)
{
    struct smtp_client_msg m = msg_one;
    m.data = df;
    m.len = len;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_BARE);
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n");
    t_expect_sent(t, "MAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nDATA\r\n");
    t_feed(t, "354 go\r\n");
    t_expect_sent(t, want);
    t_free(t);
}

static void test_dot_stuffing(void **state)
{
    (void)state;
    static const char df[] = ".a\r\n..b\r\nc.\r\n.\r\n. \r\nlast";
    data_expect(df, sizeof(df) - 1, "..a\r\n...b\r\nc.\r\n..\r\n.. \r\nlast\r\n.\r\n");
    data_expect("", 0, ".\r\n");
    data_expect("a\r\n", 3, "a\r\n.\r\n");
    data_expect(".", 1, "..\r\n.\r\n");
    /* bare LF and bare CR are never sent bare, and a dot after either is stuffed: the
     * message cannot end early at a lenient server */
    data_expect("a\n.\r\nb\r.\rc\r", 11, "a\r\n..\r\nb\r\n..\r\nc\r\n.\r\n");
    data_expect("x\r\r\n.y", 6, "x\r\n\r\n..y\r\n.\r\n");
}

static void test_large_body_paced(void **state)
{
    (void)state;
    size_t len = 200000;
    char *df = malloc(len);
    assert_non_null(df);
    for (size_t i = 0; i < len; i++) /* lines of 9 octets and CRLF, one in 7 starts "." */
        df[i] = i % 10 == 9 ? '\n' : i % 10 == 8 ? '\r' : (i % 70 == 0 ? '.' : 'a');
    struct smtp_client_msg m = msg_one;
    m.data = df;
    m.len = len;
    struct t *t = t_new(NULL, false);
    t_ready(t, "250-mx\r\n250 PIPELINING\r\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n");
    buf_free(&t->sent);
    t_feed(t, "354 go\r\n");
    unsigned pushes = 0;
    while (smtp_client_phase(t->c) == SMTP_CLIENT_PHASE_DATABLOCK) {
        assert_int_equal(smtp_client_deadline(t->c), t->now + 6000);
        assert_true(t->max_send <= SMTP_CLIENT_PUSH_MAX + 8);
        t->max_send = 0;
        unsigned before = t->n_sends;
        t->now += 10;
        smtp_client_drained(t->c, t->now);
        assert_true(t->n_sends == before + 1);
        pushes++;
    }
    assert_true(pushes >= 3);
    assert_int_equal(smtp_client_phase(t->c), SMTP_CLIENT_PHASE_DATAFINAL);
    size_t dots = len / 70 + 1;
    assert_int_equal(t->sent.len, len + dots + 3);
    assert_memory_equal(t->sent.data + t->sent.len - 5, "\r\n.\r\n", 5);
    assert_memory_equal(t->sent.data, "..aaaaaaa\r\n", 11);
    buf_free(&t->sent);
    t_feed(t, "250 ok\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\nDONE 250 2.0.0 ok accepted=1 dsn=0\n"
                       " r0 O 250 2.0.0 ok\n");

    /* a peer that stops reading is given up after datablock */
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n354 go\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\n");
    uint64_t d = smtp_client_deadline(t->c);
    smtp_client_tick(t->c, d - 1);
    t_expect_events(t, "");
    smtp_client_tick(t->c, d);
    t_expect_events(t, "FAILED temp data 451 4.4.2 timeout writing message data (local)\n"
                       " r0 T 451 4.4.2 timeout writing message data (local)\n");
    t_free(t);
    free(df);
}

static void test_bdat(void **state)
{
    (void)state;
    static const char df[] = ".a\r\nb\n";
    struct smtp_client_msg m = msg_one;
    m.data = df;
    m.len = sizeof(df) - 1;
    struct t *t = t_new(NULL, true);
    t_ready(t, "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n");
    /* no dot-stuffing, no added CRLF, no terminating dot */
    t_expect_sent(t, "MAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nBDAT 6 LAST\r\n.a\r\nb\n");
    assert_int_equal(smtp_client_deadline(t->c), t->now + 7000);
    t_feed(t, "250 2.0.0 queued\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\nDONE 250 2.0.0 queued accepted=1 dsn=0\n"
                       " r0 O 250 2.0.0 queued\n");
    m.len = 0;
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n");
    t_expect_sent(t, "MAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nBDAT 0 LAST\r\n");
    t_free(t);
}

static void test_bdat_chunks_and_refusal(void **state)
{
    (void)state;
    size_t len = SMTP_CLIENT_BDAT_CHUNK + 10;
    char *df = malloc(len);
    assert_non_null(df);
    memset(df, 'z', len);
    struct smtp_client_msg m = msg_one;
    m.data = df;
    m.len = len;
    struct t *t = t_new(NULL, false);
    t_ready(t, "250-mx\r\n250 CHUNKING\r\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n");
    t_feed(t, "250 ok\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\n");
    char head[64];
    snprintf(head, sizeof(head), "BDAT %d\r\n", SMTP_CLIENT_BDAT_CHUNK);
    size_t cmds = strlen("MAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\n");
    assert_memory_equal(t->sent.data + cmds, head, strlen(head));
    while (smtp_client_phase(t->c) == SMTP_CLIENT_PHASE_DATABLOCK)
        smtp_client_drained(t->c, t->now);
    assert_int_equal(t->sent.len, cmds + strlen(head) + SMTP_CLIENT_BDAT_CHUNK);
    assert_true(t->max_send <= SMTP_CLIENT_PUSH_MAX);
    buf_free(&t->sent);
    t_feed(t, "250 2.0.0 chunk ok\r\n");
    t_expect_sent(t, "BDAT 10 LAST\r\nzzzzzzzzzz");
    t_feed(t, "250 2.0.0 all ok\r\n");
    t_expect_events(t, "DONE 250 2.0.0 all ok accepted=1 dsn=0\n r0 O 250 2.0.0 all ok\n");

    /* a refused first chunk ends the message; the next one starts with RSET */
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n");
    while (smtp_client_phase(t->c) == SMTP_CLIENT_PHASE_DATABLOCK)
        smtp_client_drained(t->c, t->now);
    buf_free(&t->sent);
    t_feed(t, "552 5.3.4 too big\r\n");
    t_expect_sent(t, "");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\nDONE 552 5.3.4 too big accepted=0 dsn=0\n"
                       " r0 P 552 5.3.4 too big\n");
    assert_int_equal(t->done_phase, SMTP_CLIENT_PHASE_DATAFINAL);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_expect_sent(t, "RSET\r\n");
    assert_int_equal(smtp_client_deadline(t->c), t->now + 8000);
    t_feed(t, "250 2.0.0 reset\r\n");
    t_expect_sent(t, "MAIL FROM:<>\r\n");
    t_free(t);
    free(df);
}

static void test_bdat_early_reply(void **state)
{
    (void)state;
    size_t len = SMTP_CLIENT_PUSH_MAX * 2;
    char *df = calloc(1, len);
    assert_non_null(df);
    struct smtp_client_msg m = msg_one;
    m.data = df;
    m.len = len;
    struct t *t = t_new(NULL, false);
    t_ready(t, "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n");
    t_feed(t, "550 early\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\n"
                       "FAILED temp data 451 4.5.0 protocol error: reply before the end of a "
                       "BDAT chunk while waiting for message data to be written: \"early\" "
                       "(local)\n"
                       " r0 T 451 4.5.0 protocol error: reply before the end of a BDAT chunk "
                       "while waiting for message data to be written: \"early\" (local)\n");
    t_free(t);
    free(df);
}

/* ---- transaction outcomes ---- */

static void test_mail_refused_pipelined(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, true);
    t_ready(t, EHLO_FULL);
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    buf_free(&t->sent);
    t_feed(t, "550 5.1.8 bad sender\r\n503 5.5.1 need MAIL\r\n");
    t_expect_events(t, "");
    t_feed(t, "503 5.5.1 need MAIL\r\n");
    t_expect_sent(t, "");
    t_expect_events(t, "DONE 550 5.1.8 bad sender accepted=0 dsn=1\n"
                       " r0 P 550 5.1.8 bad sender\n"
                       " r1 P 550 5.1.8 bad sender\n");
    assert_int_equal(t->done_phase, SMTP_CLIENT_PHASE_MAIL); /* though RCPT replies followed */
    /* the server opened nothing: no RSET */
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<> SIZE=3\r\nRCPT TO:<a@y.test>\r\n");
    t_free(t);
}

static void test_mail_refused_one_by_one(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_BARE);
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<s@x.test>\r\n");
    t_feed(t, "451 4.3.0 try later\r\n");
    t_expect_sent(t, "");
    t_expect_events(t, "DONE 451 4.3.0 try later accepted=0 dsn=0\n"
                       " r0 T 451 4.3.0 try later\n"
                       " r1 T 451 4.3.0 try later\n");
    assert_int_equal(t->done_phase, SMTP_CLIENT_PHASE_MAIL);
    t_free(t);
}

static void test_no_recipient_accepted_then_rset(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_FULL);
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    buf_free(&t->sent);
    t_feed(t, "250 ok\r\n450 4.2.0 greylisted\r\n550 5.1.1 unknown\r\n");
    t_expect_sent(t, ""); /* no DATA */
    t_expect_events(t, "RCPT 0 450 4.2.0 greylisted\n"
                       "RCPT 1 550 5.1.1 unknown\n"
                       "DONE 550 5.1.1 unknown accepted=0 dsn=1\n"
                       " r0 T 450 4.2.0 greylisted\n"
                       " r1 P 550 5.1.1 unknown\n");
    assert_int_equal(t->done_phase, SMTP_CLIENT_PHASE_RCPT);
    /* MAIL was accepted: the next transaction resets first */
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_expect_sent(t, "RSET\r\n");
    t_feed(t, "250 2.0.0 ok\r\n");
    t_expect_sent(t, "MAIL FROM:<> SIZE=3\r\nRCPT TO:<a@y.test>\r\n");
    t_free(t);
}

static void test_rset_refused(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_BARE);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_feed(t, "250 ok\r\n550 no\r\n");
    t_expect_events(t, "RCPT 0 550 5.0.0 no\nDONE 550 5.0.0 no accepted=0 dsn=0\n"
                       " r0 P 550 5.0.0 no\n");
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    t_feed(t, "500 5.5.1 what\r\n");
    t_expect_events(t, "FAILED temp RSET 500 5.5.1 what\n"
                       " r0 T 500 5.5.1 what\n"
                       " r1 T 500 5.5.1 what\n");
    t_free(t);
}

static void test_data_refused(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_FULL);
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    buf_free(&t->sent);
    t_feed(t, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n");
    t_expect_sent(t, "DATA\r\n");
    t_feed(t, "554 5.5.1 no valid recipients\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\nRCPT 1 550 5.1.1 no\n"
                       "DONE 554 5.5.1 no valid recipients accepted=0 dsn=1\n"
                       " r0 P 554 5.5.1 no valid recipients\n"
                       " r1 P 550 5.1.1 no\n");
    assert_int_equal(t->done_phase, SMTP_CLIENT_PHASE_DATA);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_expect_sent(t, "RSET\r\n");
    t_free(t);
}

static void test_final_reply_temporary(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_FULL);
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    buf_free(&t->sent);
    t_feed(t, "451 4.3.0 queue write failed\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\nRCPT 1 250 2.0.0 ok\n"
                       "DONE 451 4.3.0 queue write failed accepted=0 dsn=1\n"
                       " r0 T 451 4.3.0 queue write failed\n"
                       " r1 T 451 4.3.0 queue write failed\n");
    /* the final reply ended the transaction: no RSET */
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<> SIZE=3\r\nRCPT TO:<a@y.test>\r\n");
    t_free(t);
}

static void test_two_transactions_from_done(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_FULL);
    t->send_on_done = &msg_one; /* the next message starts from inside DONE */
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    buf_free(&t->sent);
    t_feed(t, "250 first\r\n");
    t_expect_sent(t, "MAIL FROM:<> SIZE=3\r\nRCPT TO:<a@y.test>\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\nRCPT 1 250 2.0.0 ok\n"
                       "DONE 250 2.0.0 first accepted=2 dsn=1\n"
                       " r0 O 250 2.0.0 first\n"
                       " r1 O 250 2.0.0 first\n");
    t->quit_on_done = true;
    t_feed(t, "250 ok\r\n250 ok\r\n354 go\r\n250 second\r\n");
    t_expect_sent(t, "DATA\r\nx\r\n.\r\nQUIT\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\n"
                       "DONE 250 2.0.0 second accepted=1 dsn=1\n"
                       " r0 O 250 2.0.0 second\n");
    t_feed(t, "221 bye\r\n");
    t_expect_events(t, "CLOSED 221 2.0.0 bye\n");
    t_free(t);
}

static void test_421_in_transaction(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_FULL);
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    t_feed(t, "250 ok\r\n550 5.1.1 no\r\n421 4.3.2 shutting down\r\n");
    t_expect_events(t, "RCPT 0 550 5.1.1 no\n"
                       "FAILED temp RCPT 421 4.3.2 shutting down\n"
                       " r0 P 550 5.1.1 no\n"
                       " r1 T 421 4.3.2 shutting down\n");
    t_feed(t, "250 ignored\r\n");
    smtp_client_eof(t->c, t->now);
    smtp_client_tick(t->c, UINT64_MAX);
    t_expect_events(t, "");
    t_free(t);
}

static void test_calls_from_failed_ignored(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t->quit_on_failed = true;
    t_ready(t, EHLO_BARE);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    buf_free(&t->sent);
    t_feed(t, "421 4.3.2 bye\r\n");
    t_expect_events(t, "FAILED temp MAIL 421 4.3.2 bye\n r0 T 421 4.3.2 bye\n");
    t_expect_sent(t, "");
    t_free(t);
}

/* A refused MAIL stops the pipelined RCPTs not yet written. */
static void test_mail_refused_stops_rcpts(void **state)
{
    (void)state;
    enum { N = 4000 };
    struct smtp_client_rcpt *r = calloc(N, sizeof(*r));
    assert_non_null(r);
    for (size_t i = 0; i < N; i++)
        r[i].addr = "someone-with-a-long-name@some-long-domain.example";
    struct smtp_client_msg m = msg_one;
    m.rcpts = r;
    m.n_rcpts = N;
    struct t *t = t_new(NULL, false);
    t_ready(t, "250-mx\r\n250 PIPELINING\r\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    size_t first = t->sent.len;
    t_feed(t, "550 5.7.1 sender refused\r\n");
    smtp_client_drained(t->c, t->now);
    assert_int_equal(t->sent.len, first);
    free(r);
    t_free(t);
}

static void test_pipelined_rcpts_paced(void **state)
{
    (void)state;
    enum { N = 3000 };
    struct smtp_client_rcpt *r = calloc(N, sizeof(*r));
    char(*addrs)[64] = calloc(N, 64);
    assert_non_null(r);
    assert_non_null(addrs);
    for (size_t i = 0; i < N; i++) {
        snprintf(addrs[i], 64, "recipient-number-%05zu@long-domain.example", i);
        r[i].addr = addrs[i];
    }
    struct smtp_client_msg m = msg_one;
    m.rcpts = r;
    m.n_rcpts = N;
    struct t *t = t_new(NULL, false);
    t_ready(t, "250-mx\r\n250 PIPELINING\r\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    assert_int_equal(t->n_sends, 1);
    assert_true(t->sent.len < SMTP_CLIENT_PUSH_MAX + 100);
    size_t first = t->sent.len;
    /* replies catching up before the write drained push nothing more */
    t_feed(t, "250 ok\r\n250 ok\r\n");
    assert_int_equal(t->n_sends, 1);
    do {
        first = t->sent.len;
        smtp_client_drained(t->c, t->now);
    } while (t->sent.len > first);
    size_t lines = 0;
    for (size_t i = 0; i < t->sent.len; i++)
        lines += t->sent.data[i] == '\n';
    assert_int_equal(lines, N + 1);
    buf_free(&t->sent);
    buf_free(&t->ev);
    for (size_t i = 1; i < N; i++)
        t_feed(t, "250 ok\r\n");
    t_expect_sent(t, "DATA\r\n");
    free(addrs);
    free(r);
    t_free(t);
}

/* ---- timeouts ---- */

/* Runs a script: pieces separated by '|' are fed as replies, except "S" (send msg_two),
 * "T" (TLS started) and "Q" (quit). STARTTLS is wanted. */
static struct t *t_script(const char *script)
{
    struct smtp_client_settings set;
    t_default_settings(&set);
    set.starttls = true;
    struct t *t = t_new(&set, false);
    for (const char *p = script; *p;) {
        const char *end = strchr(p, '|');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 1 && *p == 'S')
            assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
        else if (n == 1 && *p == 'T')
            smtp_client_tls_started(t->c, t->now);
        else if (n == 1 && *p == 'Q')
            smtp_client_quit(t->c, t->now);
        else
            smtp_client_feed(t->c, p, n, t->now);
        p += n + (end != NULL);
    }
    return t;
}

static void timeout_case(const char *script, const char *want)
{
    struct t *t = t_script(script);
    buf_free(&t->ev);
    uint64_t d = smtp_client_deadline(t->c);
    assert_true(d > t->now);
    smtp_client_tick(t->c, d - 1);
    assert_int_equal(t->ev.len, 0);
    smtp_client_tick(t->c, d + 5);
    t_expect_events(t, want);
    assert_int_equal(smtp_client_deadline(t->c), 0);
    t_free(t);
}

static void test_timeouts(void **state)
{
    (void)state;
#define TO(what) "451 4.4.2 timeout waiting for " what " (local)\n"
#define RC(what) " r0 T " TO(what) " r1 T " TO(what)
    timeout_case("", "FAILED temp greeting " TO("greeting"));
    timeout_case("220 mx\r\n", "FAILED temp EHLO " TO("EHLO reply"));
    timeout_case("220 mx\r\n502 no\r\n", "FAILED temp EHLO " TO("HELO reply"));
    timeout_case("220 mx\r\n250-mx\r\n250 STARTTLS\r\n",
                 "FAILED temp STARTTLS " TO("STARTTLS reply"));
    timeout_case("220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n",
                 "FAILED temp STARTTLS " TO("TLS handshake"));
    timeout_case("220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n|T",
                 "FAILED temp EHLO " TO("EHLO reply"));
    timeout_case("220 mx\r\n250-mx\r\n250 PIPELINING\r\n|S",
                 "FAILED temp MAIL " TO("MAIL reply") RC("MAIL reply"));
    timeout_case("220 mx\r\n250-mx\r\n250 PIPELINING\r\n|S|250 ok\r\n",
                 "FAILED temp RCPT " TO("RCPT reply") RC("RCPT reply"));
    timeout_case("220 mx\r\n250 x\r\n|S|250 ok\r\n|250 ok\r\n",
                 "FAILED temp RCPT " TO("RCPT reply") RC("RCPT reply"));
    timeout_case("220 mx\r\n250 x\r\n|S|250 ok\r\n|250 ok\r\n|250 ok\r\n",
                 "FAILED temp DATA " TO("DATA reply") RC("DATA reply"));
    timeout_case("220 mx\r\n250 x\r\n|S|250 ok\r\n|250 ok\r\n|250 ok\r\n|354 go\r\n",
                 "FAILED temp end of data " TO("end of data reply") RC("end of data reply"));
    timeout_case("220 mx\r\n250-mx\r\n250 CHUNKING\r\n|S|250 ok\r\n|250 ok\r\n|250 ok\r\n",
                 "FAILED temp end of data " TO("BDAT reply") RC("BDAT reply"));
    timeout_case("220 mx\r\n250 x\r\n|S|250 ok\r\n|550 no\r\n|550 no\r\n|S",
                 "FAILED temp RSET " TO("RSET reply") RC("RSET reply"));
    timeout_case("220 mx\r\n250 x\r\n|Q", "CLOSED\n");
#undef RC
#undef TO
}

/* How a script's session ended: its FAILED or CLOSED line starts with `want`. */
static void protocol_case(const char *script, const char *want)
{
    struct t *t = t_script(script);
    assert_non_null(t->ev.data);
    const char *end = strstr(t->ev.data, "FAILED");
    if (!end)
        end = strstr(t->ev.data, "CLOSED");
    if (!end || strncmp(end, want, strlen(want)) != 0) {
        print_error("expected: %s\ngot: %s\n", want, t->ev.data);
        fail();
    }
    assert_int_equal(smtp_client_deadline(t->c), 0);
    t_free(t);
}

static void test_unexpected_replies(void **state)
{
    (void)state;
    protocol_case("220 mx\r\n354 x\r\n", "FAILED temp EHLO 451 4.5.0 protocol error: "
                                         "unexpected reply to EHLO while waiting for EHLO "
                                         "reply: \"x\"");
    protocol_case("220 mx\r\n550 x\r\n354 y\r\n",
                  "FAILED temp EHLO 451 4.5.0 protocol error: unexpected reply to HELO");
    protocol_case("220 mx\r\n250-mx\r\n250 STARTTLS\r\n354 y\r\n",
                  "FAILED temp STARTTLS 451 4.5.0 protocol error: unexpected reply to STARTTLS");
    protocol_case("220 mx\r\n250 mx\r\n|S|354 y\r\n",
                  "FAILED temp MAIL 451 4.5.0 protocol error: unexpected reply to MAIL or RCPT");
    protocol_case("220 mx\r\n250 mx\r\n|S|250 a\r\n250 b\r\n250 c\r\n250 d\r\n",
                  "FAILED temp DATA 451 4.5.0 protocol error: unexpected reply to DATA");
    protocol_case("220 mx\r\n250 mx\r\n|S|250 a\r\n250 b\r\n250 c\r\n354 d\r\n354 e\r\n",
                  "FAILED temp end of data 451 4.5.0 protocol error: unexpected reply to the end "
                  "of data");
    protocol_case("220 mx\r\n250-mx\r\n250 CHUNKING\r\n|S|250 a\r\n250 b\r\n250 c\r\n354 d\r\n",
                  "FAILED temp end of data 451 4.5.0 protocol error: unexpected reply to BDAT");
    /* after QUIT whatever comes ends the session the same way */
    protocol_case("220 mx\r\n250 mx\r\n|Q|garbage\r\n",
                  "CLOSED 451 4.5.0 protocol error: malformed reply");
    protocol_case("220 mx\r\n250 mx\r\n|Q|421 4.4.2 bye\r\n", "CLOSED 421 4.4.2 bye\n");
}

static void test_odd_capabilities_and_status(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    /* a SIZE too large to hold is no limit; keywords are case-insensitive */
    t_ready(t, "250-mx\r\n250-size 99999999999999999999999\r\n250-pipelining\r\n250 Dsn\r\n");
    const struct smtp_client_caps *caps = smtp_client_caps(t->c);
    assert_true(caps->size && caps->pipelining && caps->dsn);
    assert_int_equal(caps->max_size, 0);
    const struct smtp_client_rcpt r[] = {{.addr = "a@y", .orcpt = "rfc 822;a@y"},
                                         {.addr = "b@y", .orcpt = ";b@y"},
                                         {.addr = "c@y", .orcpt = "rfc822;c+zz"}};
    struct smtp_client_msg m = msg_one;
    m.rcpts = r;
    m.n_rcpts = 3;
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<> SIZE=3\r\nRCPT TO:<a@y>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\n");
    /* not enhanced statuses: too many digits, a missing part, glued to the text */
    t_feed(t, "250 ok\r\n550 5.1234.1 a\r\n550 5.1 b\r\n550 5.1.1x c\r\n");
    t_expect_events(t, "RCPT 0 550 5.0.0 5.1234.1 a\n"
                       "RCPT 1 550 5.0.0 5.1 b\n"
                       "RCPT 2 550 5.0.0 5.1.1x c\n"
                       "DONE 550 5.0.0 5.1.1x c accepted=0 dsn=1\n"
                       " r0 P 550 5.0.0 5.1234.1 a\n"
                       " r1 P 550 5.0.0 5.1 b\n"
                       " r2 P 550 5.0.0 5.1.1x c\n");
    t_free(t);
}

static void test_quit_from_rcpt_event(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_FULL);
    assert_int_equal(smtp_client_send(t->c, &msg_two, t->now), 0);
    buf_free(&t->sent);
    t->quit_on_rcpt = true;
    t_feed(t, "250 ok\r\n250 ok\r\n250 ok\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\nCLOSED\n");
    t_expect_sent(t, "");
    t_free(t);
}

static void test_eof(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_BARE);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    smtp_client_eof(t->c, t->now);
    t_expect_events(t, "FAILED temp MAIL 421 4.4.2 connection closed by the server while "
                       "waiting for MAIL reply (local)\n"
                       " r0 T 421 4.4.2 connection closed by the server while waiting for MAIL "
                       "reply (local)\n");
    t_free(t);

    t = t_new(NULL, false);
    t_ready(t, EHLO_BARE);
    smtp_client_eof(t->c, t->now); /* a cached connection the server dropped */
    t_expect_events(t, "FAILED temp idle 421 4.4.2 connection closed by the server (local)\n");
    t_free(t);

    t = t_new(NULL, false);
    t_ready(t, EHLO_BARE);
    smtp_client_quit(t->c, t->now);
    smtp_client_eof(t->c, t->now);
    t_expect_events(t, "CLOSED\n");
    t_free(t);
}

static void test_quit_not_idle(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_BARE);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), -1); /* busy */
    buf_free(&t->sent);
    smtp_client_quit(t->c, t->now);
    t_expect_sent(t, "");
    t_expect_events(t, "CLOSED\n");
    t_feed(t, "250 ok\r\n");
    t_expect_events(t, "");
    t_free(t);

    t = t_new(NULL, false);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), -1); /* no greeting yet */
    struct smtp_client_msg none = msg_one;
    none.n_rcpts = 0;
    t_ready(t, EHLO_BARE);
    assert_int_equal(smtp_client_send(t->c, &none, t->now), -1);
    t_expect_sent(t, "");
    t_free(t);
}

/* ---- garbage and bounds ---- */

static void garbage_case(const struct smtp_client_settings *set, const char *input,
                         const char *want)
{
    struct t *t = t_new(set, false);
    t_feed(t, input);
    t_expect_events(t, want);
    assert_int_equal(smtp_client_deadline(t->c), 0);
    t_feed(t, "220 too late\r\n");
    t_expect_events(t, "");
    t_free(t);
}

static void test_garbage(void **state)
{
    (void)state;
#define PE(what, line)                                                                             \
    "FAILED temp greeting 451 4.5.0 protocol error: " what " while waiting for greeting: \"" line  \
    "\" (local)\n"
    garbage_case(NULL, "hello\r\n", PE("malformed reply", "hello"));
    garbage_case(NULL, "2200 x\r\n", PE("malformed reply", "2200 x"));
    garbage_case(NULL, "199 x\r\n", PE("malformed reply", "199 x"));
    garbage_case(NULL, "260 x\r\n", PE("malformed reply", "260 x"));
    garbage_case(NULL, "22\r\n", PE("malformed reply", "22"));
    garbage_case(NULL, "\r\n", PE("malformed reply", ""));
    garbage_case(NULL, "220-a\r\n250 b\r\n",
                 PE("reply code changed within a multi-line reply", "250 b"));
    garbage_case(NULL, "354 x\r\n", PE("unexpected greeting", "x"));
    struct smtp_client_settings set;
    t_default_settings(&set);
    set.max_reply_lines = 3;
    garbage_case(&set, "220-a\r\n220-b\r\n220-c\r\n220 d\r\n",
                 PE("too many lines in a reply", "220 d"));
    set.max_reply_line = 16;
    garbage_case(&set, "220 0123456789ab\r\n", PE("reply line too long", "220 0123456789ab??"));
#undef PE
}

static void test_long_line_bounded(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, true);
    char chunk[1024];
    memset(chunk, 'x', sizeof(chunk) - 1);
    chunk[sizeof(chunk) - 1] = '\0';
    t_feed(t, "220 ");
    for (int i = 0; i < 4; i++)
        t_feed(t, chunk);
    t_expect_events(t, "");
    t_feed(t, chunk); /* passes 4096 octets without a line end */
    assert_true(t->ev.len > 0);
    assert_non_null(strstr(t->ev.data, "reply line too long"));
    buf_free(&t->ev);
    for (int i = 0; i < 100; i++)
        t_feed(t, chunk);
    t_expect_events(t, "");
    t_free(t);

    /* one reply of many lines is bounded too, and its text is cut at SMTP_CLIENT_TEXT_MAX */
    t = t_new(NULL, false);
    for (int i = 0; i < 99; i++)
        t_feed(t, "220-0123456789\r\n");
    t_feed(t, "220 end\r\n");
    t_expect_sent(t, "EHLO client.test\r\n");
    t_feed(t, "250 x\r\n");
    t_expect_events(t, "READY\n");
    t_free(t);
}

static void test_unsolicited(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, true);
    t_ready(t, EHLO_BARE);
    t_feed(t, "250 surprise\r\n");
    t_expect_events(t, "FAILED temp idle 451 4.5.0 protocol error: unsolicited reply while "
                       "waiting for command: \"250 surprise\" (local)\n");
    t_free(t);

    /* a cached connection's server going away says so: its 421 is kept */
    t = t_new(NULL, false);
    t_ready(t, EHLO_BARE);
    t_feed(t, "421 4.4.2 mx.test Timeout waiting for input\r\n");
    t_expect_events(t, "FAILED temp idle 421 4.4.2 mx.test Timeout waiting for input\n");
    t_free(t);

    /* a reply in the middle of DATA content */
    t = t_new(NULL, false);
    struct smtp_client_msg m = msg_one;
    char big[SMTP_CLIENT_PUSH_MAX * 2];
    memset(big, 'q', sizeof(big));
    m.data = big;
    m.len = sizeof(big);
    t_ready(t, EHLO_BARE);
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n250 ok\r\n354 go\r\n");
    buf_free(&t->ev);
    t_feed(t, "250 what\r\n");
    assert_non_null(strstr(t->ev.data, "FAILED temp data 451 4.5.0 protocol error: "
                                       "unsolicited reply"));
    t_free(t);
}

static void test_enhanced_status(void **state)
{
    (void)state;
    struct t *t = t_new(NULL, false);
    t_ready(t, EHLO_BARE);
    struct smtp_client_msg m = msg_one;
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    /* repeated on each line: stripped from each; a control octet is shown as '?' */
    t_feed(t, "250 ok\r\n550-5.7.1 first\r\n550-5.7.1\r\n550 5.7.1 third\ttab\r\n");
    t_expect_events(t, "RCPT 0 550 5.7.1 first third?tab\n"
                       "DONE 550 5.7.1 first third?tab accepted=0 dsn=0\n"
                       " r0 P 550 5.7.1 first third?tab\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n");
    /* a class that does not match the code is text, and the code's is derived */
    t_feed(t, "250 ok\r\n451 5.1.1 mismatch\r\n");
    t_expect_events(t, "RCPT 0 451 4.0.0 5.1.1 mismatch\n"
                       "DONE 451 4.0.0 5.1.1 mismatch accepted=0 dsn=0\n"
                       " r0 T 451 4.0.0 5.1.1 mismatch\n");
    assert_int_equal(smtp_client_send(t->c, &m, t->now), 0);
    t_feed(t, "250 ok\r\n");
    char line[2048];
    memset(line, 'w', sizeof(line));
    memcpy(line, "250 ok\r\n550 ", 12);
    memcpy(line + sizeof(line) - 3, "\r\n", 3);
    t_feed(t, line);
    char *done = strstr(t->ev.data, "DONE 550 5.0.0 ");
    assert_non_null(done);
    assert_int_equal(strchr(done, ' ' + 0) - done, 4);
    size_t ws = strspn(done + 15, "w");
    assert_int_equal(ws, SMTP_CLIENT_TEXT_MAX);
    t_free(t);
}

/* ---- LMTP (RFC 2033) ---- */

static struct t *t_lmtp(void)
{
    struct smtp_client_settings set;
    t_default_settings(&set);
    set.lmtp = true;
    return t_new(&set, false);
}

static const struct smtp_client_rcpt three_rcpts[] = {
    {.addr = "a@y.test"}, {.addr = "b@y.test"}, {.addr = "c@y.test"}};
static const struct smtp_client_msg msg_three = {
    .sender = "s@x.test", .rcpts = three_rcpts, .n_rcpts = 3, .data = ".x\r\n", .len = 4};

/* LMTP: LHLO, DATA although CHUNKING is offered, then one reply per accepted recipient in
 * RCPT order, each that recipient's own outcome; the next transaction needs no RSET. */
static void test_lmtp_session(void **state)
{
    (void)state;
    struct t *t = t_lmtp();
    t_feed(t, "220 lmtp.test LMTP ready\r\n");
    t_expect_sent(t, "LHLO client.test\r\n");
    t_feed(t, LHLO_REPLY);
    t_expect_events(t, "READY\n");
    assert_true(smtp_client_caps(t->c)->esmtp && smtp_client_caps(t->c)->chunking);
    assert_int_equal(smtp_client_send(t->c, &msg_three, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<s@x.test>\r\nRCPT TO:<a@y.test>\r\n"
                     "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n");
    t_feed(t, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n452 4.2.2 b: over quota\r\n250 2.1.5 ok\r\n");
    t_expect_events(t, "RCPT 0 250 2.1.5 ok\nRCPT 1 452 4.2.2 b: over quota\n"
                       "RCPT 2 250 2.1.5 ok\n");
    t_expect_sent(t, "DATA\r\n");
    t_feed(t, "354 go ahead\r\n");
    t_expect_sent(t, "..x\r\n.\r\n");
    t_feed(t, "250 2.0.0 <a@y.test> Saved\r\n");
    t_expect_events(t, ""); /* c's reply is still owed */
    assert_int_equal(smtp_client_phase(t->c), SMTP_CLIENT_PHASE_DATAFINAL);
    assert_int_equal(smtp_client_deadline(t->c), t->now + 7000);
    t_feed(t, "552 5.2.2 <c@y.test> Mailbox full\r\n");
    t_expect_events(t, "DONE 552 5.2.2 <c@y.test> Mailbox full accepted=1 dsn=0\n"
                       " r0 O 250 2.0.0 <a@y.test> Saved\n"
                       " r1 T 452 4.2.2 b: over quota\n"
                       " r2 P 552 5.2.2 <c@y.test> Mailbox full\n");
    assert_int_equal(t->done_phase, SMTP_CLIENT_PHASE_DATAFINAL);
    /* a reply beyond the recipients' is unsolicited */
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\n");
    t_feed(t, "250 ok\r\n250 ok\r\n354 go\r\n");
    t_expect_sent(t, "DATA\r\nx\r\n.\r\n");
    t_feed(t, "250 2.0.0 one\r\n250 2.0.0 two\r\n");
    t_expect_events(t, "RCPT 0 250 2.0.0 ok\nDONE 250 2.0.0 one accepted=1 dsn=0\n"
                       " r0 O 250 2.0.0 one\n"
                       "FAILED temp idle 451 4.5.0 protocol error: unsolicited reply while "
                       "waiting for command: \"250 two\" (local)\n");
    t_free(t);
}

/* No HELO after a refused LHLO (RFC 2033 4.1): the session fails, permanently for a 5xx. */
static void test_lmtp_lhlo_refused(void **state)
{
    (void)state;
    struct t *t = t_lmtp();
    t_feed(t, "220 lmtp.test\r\n500 5.5.1 unknown command\r\n");
    t_expect_sent(t, "LHLO client.test\r\n");
    t_expect_events(t, "FAILED perm EHLO 500 5.5.1 unknown command\n");
    t_free(t);
    t = t_lmtp();
    t_feed(t, "220 lmtp.test\r\n");
    t->now += 2000;
    smtp_client_tick(t->c, t->now);
    t_expect_events(t, "FAILED temp EHLO 451 4.4.2 timeout waiting for LHLO reply (local)\n");
    t_free(t);
}

/* The session breaks among the replies to the data: the recipients already answered keep
 * their reply (a 250 was a delivery, never to be retried), the rest are deferred. */
static void test_lmtp_broken_after_some_replies(void **state)
{
    (void)state;
    for (int how = 0; how < 3; how++) {
        struct t *t = t_lmtp();
        t_ready_lmtp(t);
        assert_int_equal(smtp_client_send(t->c, &msg_three, t->now), 0);
        t_feed(t, "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
        t_feed(t, "250 2.0.0 a saved\r\n");
        buf_free(&t->ev);
        buf_free(&t->sent);
        const char *why;
        if (how == 0) {
            smtp_client_eof(t->c, t->now);
            why = "421 4.4.2 connection closed by the server while waiting for end of data "
                  "reply (local)";
        } else if (how == 1) {
            t_feed(t, "421 4.3.2 shutting down\r\n");
            why = "421 4.3.2 shutting down";
        } else {
            t->now += 7000;
            smtp_client_tick(t->c, t->now);
            why = "451 4.4.2 timeout waiting for end of data reply (local)";
        }
        char want[1024];
        snprintf(want, sizeof(want),
                 "FAILED temp end of data %s\n r0 O 250 2.0.0 a saved\n"
                 " r1 T %s\n r2 T %s\n",
                 why, why, why);
        t_expect_events(t, want);
        t_free(t);
    }
}

static void test_phase_names(void **state)
{
    (void)state;
    assert_string_equal(smtp_client_phase_name(SMTP_CLIENT_PHASE_GREETING), "greeting");
    assert_string_equal(smtp_client_phase_name(SMTP_CLIENT_PHASE_DATAFINAL), "end of data");
    assert_string_equal(smtp_client_phase_name((enum smtp_client_phase)99), "?");
}

/* ---- AUTH as a client ---- */

static const struct smtp_client_auth auth_alice = {.user = "alice", .password = "s3cret"};

/* Greeting, EHLO, STARTTLS, the handshake and the EHLO in TLS whose reply is `ehlo`. */
static struct t *t_auth_new(const struct smtp_client_auth *a, const char *ehlo, bool bytewise)
{
    struct smtp_client_settings set;
    t_default_settings(&set);
    set.auth = a;
    set.starttls = true;
    struct t *t = t_new(&set, bytewise);
    t_feed(t, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n");
    t_expect_sent(t, "EHLO client.test\r\nSTARTTLS\r\n");
    t_expect_events(t, "STARTTLS\n");
    smtp_client_tls_started(t->c, t->now);
    t_expect_sent(t, "EHLO client.test\r\n");
    t_feed(t, ehlo);
    return t;
}

static void test_auth_plain_after_starttls(void **state)
{
    (void)state;
    /* without M: CRAM-MD5 first, but no HMAC here: PLAIN */
    struct t *t =
        t_auth_new(&auth_alice, "250-mx\r\n250-AUTH CRAM-MD5 LOGIN PLAIN\r\n250 DSN\r\n", false);
    t_expect_sent(t, "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n");
    t_expect_events(t, "");
    assert_int_equal(smtp_client_phase(t->c), SMTP_CLIENT_PHASE_AUTH);
    assert_int_equal(smtp_client_deadline(t->c), 100000 + 2000); /* the helo timeout */
    t_feed(t, "235 2.7.0 Authentication successful\r\n");
    t_expect_events(t, "READY\n");
    const struct smtp_client_caps *caps = smtp_client_caps(t->c);
    assert_true(caps->authenticated && caps->in_tls && caps->dsn);
    assert_string_equal(caps->auth_mech, "PLAIN");
    assert_int_equal(caps->auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5);
    assert_int_equal(smtp_client_send(t->c, &msg_one, t->now), 0);
    t_expect_sent(t, "MAIL FROM:<>\r\n");
    t_free(t);

    /* an authorization id other than the authentication id goes first in PLAIN */
    const struct smtp_client_auth as = {.user = "admin", .authid = "alice", .password = "s3cret"};
    t = t_auth_new(&as, "250-mx\r\n250 AUTH PLAIN\r\n", false);
    t_expect_sent(t, "AUTH PLAIN YWRtaW4AYWxpY2UAczNjcmV0\r\n");
    t_free(t);
}

/* M: decides the order among what the server offers; LOGIN's two challenges, byte by byte. */
static void test_auth_login_order(void **state)
{
    (void)state;
    const struct smtp_client_auth a = {
        .user = "alice", .password = "s3cret", .mechs = "XOAUTH2 LOGIN PLAIN"};
    struct t *t = t_auth_new(&a, "250-mx\r\n250 AUTH=PLAIN LOGIN\r\n", true);
    t_expect_sent(t, "AUTH LOGIN\r\n");
    t_feed(t, "334 VXNlcm5hbWU6\r\n");
    t_expect_sent(t, "YWxpY2U=\r\n");
    t_feed(t, "334 UGFzc3dvcmQ6\r\n");
    t_expect_sent(t, "czNjcmV0\r\n");
    t_feed(t, "235 ok\r\n");
    t_expect_events(t, "READY\n");
    assert_string_equal(smtp_client_caps(t->c)->auth_mech, "LOGIN");
    t_free(t);
}

/* RFC 2195's own example, through OpenSSL's HMAC-MD5. */
static void test_auth_cram_md5(void **state)
{
    (void)state;
    const struct smtp_client_auth a = {
        .user = "tim", .password = "tanstaaftanstaaf", .hmac_md5 = tls_hmac_md5};
    struct t *t = t_auth_new(&a, "250-mx\r\n250 AUTH PLAIN CRAM-MD5\r\n", false);
    t_expect_sent(t, "AUTH CRAM-MD5\r\n");
    t_feed(t, "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n");
    t_expect_sent(t, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
    t_feed(t, "235 2.7.0 ok\r\n");
    t_expect_events(t, "READY\n");
    t_free(t);

    /* a challenge that is not base64: nothing more is sent */
    t = t_auth_new(&a, "250-mx\r\n250 AUTH CRAM-MD5\r\n", false);
    t_expect_sent(t, "AUTH CRAM-MD5\r\n");
    t_feed(t, "334 not*base64\r\n");
    t_expect_sent(t, "");
    t_expect_events(t, "FAILED temp AUTH 451 4.7.0 AUTH CRAM-MD5 with the server failed: "
                       "CRAM-MD5 challenge is not base64 (local)\n");
    t_free(t);
}

/* 535 and 454 end the session, temporary either way: nothing bounces for a password. */
static void test_auth_refused(void **state)
{
    (void)state;
    struct t *t = t_auth_new(&auth_alice, "250-mx\r\n250 AUTH PLAIN\r\n", false);
    t_expect_sent(t, "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n");
    t_feed(t, "535 5.7.8 Authentication credentials invalid\r\n");
    t_expect_events(t, "FAILED temp AUTH 535 5.7.8 Authentication credentials invalid\n");
    t_free(t);

    t = t_auth_new(&auth_alice, "250-mx\r\n250 AUTH PLAIN\r\n", false);
    t_expect_sent(t, "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n");
    t_feed(t, "454 4.7.0 Temporary authentication failure\r\n");
    t_expect_events(t, "FAILED temp AUTH 454 4.7.0 Temporary authentication failure\n");
    t_free(t);
}

/* Failure events keep the reply's code; its outcome must still be temporary. */
static void t_on_event_outcome(void *arg, const struct smtp_client_event *ev)
{
    if (ev->type == SMTP_CLIENT_EV_FAILED)
        assert_int_equal(ev->reply->outcome, SMTP_CLIENT_TEMP);
    t_on_event(arg, ev);
}

static void test_auth_refused_outcome(void **state)
{
    (void)state;
    struct t *t = t_auth_new(&auth_alice, "250-mx\r\n250 AUTH PLAIN\r\n", false);
    t->io.event = t_on_event_outcome;
    t_feed(t, "535 5.7.8 no\r\n");
    t_expect_events(t, "FAILED temp AUTH 535 5.7.8 no\n");
    t_free(t);
}

/* Without TLS the credentials are never sent, unless allowed; no AUTH offered or no common
 * mechanism: READY without AUTH. */
static void test_auth_plain_text(void **state)
{
    (void)state;
    struct smtp_client_settings set;
    t_default_settings(&set);
    set.auth = &auth_alice;
    struct t *t = t_new(&set, false);
    t_feed(t, "220 mx\r\n250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
    t_expect_sent(t, "EHLO client.test\r\n");
    t_expect_events(t, "FAILED temp AUTH 451 4.7.0 AUTH credentials are not sent over a "
                       "connection without TLS (local)\n");
    t_free(t);

    /* STARTTLS refused: the same */
    set.starttls = true;
    t = t_new(&set, false);
    t_feed(t, "220 mx\r\n250-mx\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n");
    t_expect_sent(t, "EHLO client.test\r\nSTARTTLS\r\n");
    t_feed(t, "454 4.7.0 TLS not available\r\n");
    t_expect_sent(t, "");
    t_expect_events(t, "FAILED temp AUTH 451 4.7.0 AUTH credentials are not sent over a "
                       "connection without TLS (local)\n");
    t_free(t);

    /* allowed: sent in plain text, and READY still says STARTTLS was refused */
    const struct smtp_client_auth open = {
        .user = "alice", .password = "s3cret", .allow_plaintext = true};
    set.auth = &open;
    t = t_new(&set, false);
    t_feed(t, "220 mx\r\n250-mx\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n454 4.7.0 no TLS\r\n");
    t_expect_sent(t, "EHLO client.test\r\nSTARTTLS\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n");
    t_feed(t, "235 ok\r\n");
    t_expect_events(t, "READY tls_refused 454 4.7.0 no TLS\n");
    t_free(t);

    set.starttls = false;
    set.auth = &auth_alice;
    t = t_new(&set, false);
    t_ready(t, "250-mx\r\n250 AUTH XOAUTH2\r\n");
    t_free(t);
    t = t_new(&set, false);
    t_ready(t, EHLO_FULL);
    assert_null(smtp_client_caps(t->c)->auth_mech);
    t_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_pipelined),
        cmocka_unit_test(test_lmtp_session),
        cmocka_unit_test(test_lmtp_lhlo_refused),
        cmocka_unit_test(test_lmtp_broken_after_some_replies),
        cmocka_unit_test(test_session_pipelined_bytewise),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_session_plain),
        cmocka_unit_test(test_session_plain_bytewise),
        cmocka_unit_test(test_lf_only_replies),
        cmocka_unit_test(test_helo_fallback),
        cmocka_unit_test(test_helo_refused),
        cmocka_unit_test(test_ehlo_temporary),
        cmocka_unit_test(test_greeting_refused),
        cmocka_unit_test(test_starttls),
        cmocka_unit_test(test_starttls_at_once),
        cmocka_unit_test(test_starttls_refused),
        cmocka_unit_test(test_starttls_not_wanted_or_offered),
        cmocka_unit_test(test_size_refused),
        cmocka_unit_test(test_smtputf8),
        cmocka_unit_test(test_bad_addresses_not_sent),
        cmocka_unit_test(test_auth_param_only_when_offered),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_large_body_paced),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_bdat_chunks_and_refusal),
        cmocka_unit_test(test_bdat_early_reply),
        cmocka_unit_test(test_mail_refused_pipelined),
        cmocka_unit_test(test_mail_refused_one_by_one),
        cmocka_unit_test(test_no_recipient_accepted_then_rset),
        cmocka_unit_test(test_rset_refused),
        cmocka_unit_test(test_data_refused),
        cmocka_unit_test(test_final_reply_temporary),
        cmocka_unit_test(test_two_transactions_from_done),
        cmocka_unit_test(test_421_in_transaction),
        cmocka_unit_test(test_pipelined_rcpts_paced),
        cmocka_unit_test(test_calls_from_failed_ignored),
        cmocka_unit_test(test_mail_refused_stops_rcpts),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_unexpected_replies),
        cmocka_unit_test(test_odd_capabilities_and_status),
        cmocka_unit_test(test_quit_from_rcpt_event),
        cmocka_unit_test(test_eof),
        cmocka_unit_test(test_quit_not_idle),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_long_line_bounded),
        cmocka_unit_test(test_unsolicited),
        cmocka_unit_test(test_enhanced_status),
        cmocka_unit_test(test_phase_names),
        cmocka_unit_test(test_auth_plain_after_starttls),
        cmocka_unit_test(test_auth_login_order),
        cmocka_unit_test(test_auth_cram_md5),
        cmocka_unit_test(test_auth_refused),
        cmocka_unit_test(test_auth_refused_outcome),
        cmocka_unit_test(test_auth_plain_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
