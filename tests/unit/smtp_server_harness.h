/*
 * tests/unit/smtp_server_harness.h — drives smtp_server in the test_smtp_*.c programs.
 *
 * A harness owns a server with test settings, records every reply byte and every event
 * as one text line ("MAIL a@b.example", "DATA_END 12 <id@x>", ...), gathers DATA events
 * into one body, and lets a test assert on exactly what came out since the last check.
 * Relay policy for the tests: only recipients in mx.test are accepted.
 */
#ifndef RINGMAIL_TEST_SMTP_SERVER_HARNESS_H
#define RINGMAIL_TEST_SMTP_SERVER_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp_server.h"

#define H_LOG 65536

struct h {
    struct smtp_server_settings set;
    struct smtp_server_io io;
    struct smtp_server *s;
    uint64_t now;
    char replies[H_LOG];
    size_t rlen;
    char events[H_LOG];
    size_t elen;
    char body[H_LOG];
    size_t blen;
    unsigned n_data_end, n_abort, n_close, n_reply_calls;
};

static inline void h_append(char *log, size_t *len, const char *p, size_t n)
{
    if (*len + n >= H_LOG)
        n = H_LOG - 1 - *len;
    memcpy(log + *len, p, n);
    *len += n;
    log[*len] = '\0';
}

static inline void h_on_reply(void *arg, const char *bytes, size_t len)
{
    struct h *h = arg;
    h->n_reply_calls++;
    assert_true(len >= 2 && bytes[len - 2] == '\r' && bytes[len - 1] == '\n');
    h_append(h->replies, &h->rlen, bytes, len);
}

static inline void h_eventf(struct h *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void h_eventf(struct h *h, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof(line) - 1 ? sizeof(line) - 2 : (size_t)n;
    line[len++] = '\n';
    h_append(h->events, &h->elen, line, len);
}

static inline void h_on_event(void *arg, const struct smtp_event *ev)
{
    struct h *h = arg;
    switch (ev->type) {
    case SMTP_EV_HELO:
        h_eventf(h, "HELO %s", ev->arg);
        break;
    case SMTP_EV_MAIL:
        h_eventf(h, "MAIL %s", ev->arg);
        break;
    case SMTP_EV_RCPT:
        h_eventf(h, "RCPT %s", ev->arg);
        break;
    case SMTP_EV_REJECT:
        assert_non_null(ev->cmd);
        assert_non_null(ev->reply);
        h_eventf(h, "REJECT %s [%s] %s", ev->cmd, ev->arg ? ev->arg : "(null)", ev->reply);
        break;
    case SMTP_EV_DATA_START:
        h_eventf(h, "DATA_START");
        break;
    case SMTP_EV_DATA:
        assert_true(ev->len > 0);
        h_append(h->body, &h->blen, ev->data, ev->len);
        break;
    case SMTP_EV_HEADER_END: /* where it came in the body, the fields seen, the empty line */
        h_eventf(h, "HEADER_END at=%zu seen=%#x len=%zu", h->blen, ev->headers_seen, ev->len);
        break;
    case SMTP_EV_DATA_END:
        h->n_data_end++;
        h_eventf(h, "DATA_END %llu %s", (unsigned long long)ev->size, ev->msgid ? ev->msgid : "-");
        break;
    case SMTP_EV_DATA_ABORT:
        h->n_abort++;
        h_eventf(h, "DATA_ABORT %s", ev->reply ? ev->reply : "-");
        break;
    case SMTP_EV_RSET:
        h_eventf(h, "RSET");
        break;
    case SMTP_EV_STARTTLS:
        h_eventf(h, "STARTTLS");
        break;
    case SMTP_EV_CLOSE:
        h->n_close++;
        h_eventf(h, "CLOSE %s", ev->reason);
        break;
    }
}

/* Relaying is refused for every domain but mx.test. */
static inline int h_check_rcpt(void *arg, const struct smtp_path *rcpt,
                               const struct smtp_rcpt_params *params, struct smtp_addr_error *err)
{
    (void)arg;
    (void)params;
    if (strcasecmp(rcpt->domain, "mx.test") == 0 || strcasecmp(rcpt->mailbox, "postmaster") == 0)
        return 0;
    err->code = 550;
    err->enh = "5.7.1";
    err->reason = "Relaying denied";
    return -1;
}

static inline void h_default_settings(struct smtp_server_settings *set)
{
    memset(set, 0, sizeof(*set));
    set->hostname = "mx.test";
    set->starttls = true;
    set->limits = (struct smtp_server_limits){
        .max_message_size = 10000,
        .max_recipients = 5,
        .max_command_line = 512,
        .max_text_line = 1000,
        .max_header_size = 2000,
        .max_errors = 10,
        .error_throttle = 5,
        .bad_rcpt_throttle = 3,
        .max_input_buffer = 4096,
    };
    /* distinct values so a test can tell which phase's timeout is running */
    set->timeouts = (struct smtp_server_timeouts){
        .initial = 1001,
        .helo = 1002,
        .mail = 1003,
        .rcpt = 1004,
        .datainit = 1005,
        .datablock = 1006,
        .datafinal = 1007,
        .rset = 1008,
        .quit = 1009,
        .misc = 1010,
    };
}

/* A started server whose greeting has been checked and cleared. `set` may be NULL. */
static inline struct h *h_new(const struct smtp_server_settings *set)
{
    struct h *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    if (set)
        h->set = *set;
    else
        h_default_settings(&h->set);
    h->io = (struct smtp_server_io){
        .arg = h, .reply = h_on_reply, .event = h_on_event, .check_rcpt = h_check_rcpt};
    h->now = 100000;
    h->s = smtp_server_new(&h->set, &h->io, "[192.0.2.1]", h->now);
    assert_non_null(h->s);
    smtp_server_start(h->s, "mx.test ESMTP ringmail", h->now);
    assert_string_equal(h->replies, "220 mx.test ESMTP ringmail\r\n");
    h->rlen = 0;
    h->replies[0] = '\0';
    h->n_reply_calls = 0;
    return h;
}

static inline void h_free(struct h *h)
{
    smtp_server_free(h->s);
    free(h);
}

static inline bool h_feedn(struct h *h, const char *p, size_t n)
{
    return smtp_server_feed(h->s, p, n, h->now);
}

static inline bool h_feed(struct h *h, const char *p)
{
    return h_feedn(h, p, strlen(p));
}

/* Feeds one octet per call: framing must not depend on how the input was split. */
static inline void h_feed_bytes(struct h *h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h_feedn(h, p + i, 1);
}

/* The replies since the last call, then forgets them. */
static inline void h_expect(struct h *h, const char *replies)
{
    assert_string_equal(h->replies, replies);
    h->rlen = 0;
    h->replies[0] = '\0';
}

static inline void h_expect_events(struct h *h, const char *events)
{
    assert_string_equal(h->events, events);
    h->elen = 0;
    h->events[0] = '\0';
}

static inline void h_expect_body(struct h *h, const char *p, size_t n)
{
    assert_int_equal(h->blen, n);
    assert_memory_equal(h->body, p, n);
    h->blen = 0;
}

static inline void h_clear(struct h *h)
{
    h->rlen = h->elen = h->blen = 0;
    h->replies[0] = h->events[0] = h->body[0] = '\0';
    h->n_reply_calls = 0;
}

/* EHLO, MAIL, one RCPT, all accepted; logs cleared. */
static inline void h_envelope(struct h *h)
{
    h_feed(h, "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@mx.test>\r\n");
    assert_non_null(strstr(h->replies, "250 2.1.5 <u@mx.test>... Recipient ok\r\n"));
    h_clear(h);
}

/* Ends a wait for the commit the way the daemon does. */
static inline void h_commit(struct h *h, bool ok)
{
    smtp_server_commit_done(h->s, ok, "QID0001", h->now);
}

#endif
