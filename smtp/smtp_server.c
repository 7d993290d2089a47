/*
 * smtp/smtp_server.c — the server's life cycle and its input loop.
 *
 * Input is consumed in place whenever possible: complete command lines and message
 * content are processed straight from the caller's bytes, and only an incomplete command
 * line, or input that arrives while the server waits (commit, slow-down), is copied into
 * s->in. Waiting is a state, not a callback: the input loop stops, the rest of the bytes
 * are held, and the call that ends the wait (commit_done, check_done, tick) runs the loop
 * again on them, so replies keep the order of the commands (RFC 2920 pipelining).
 */
#include "smtp/smtp_server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* smtp_server_phase → its field in struct smtp_server_timeouts. */
static const size_t smtp_server_phase_field[] = {
    [SMTP_PH_INITIAL] = offsetof(struct smtp_server_timeouts, initial),
    [SMTP_PH_HELO] = offsetof(struct smtp_server_timeouts, helo),
    [SMTP_PH_MAIL] = offsetof(struct smtp_server_timeouts, mail),
    [SMTP_PH_RCPT] = offsetof(struct smtp_server_timeouts, rcpt),
    [SMTP_PH_DATAINIT] = offsetof(struct smtp_server_timeouts, datainit),
    [SMTP_PH_DATABLOCK] = offsetof(struct smtp_server_timeouts, datablock),
    [SMTP_PH_DATAFINAL] = offsetof(struct smtp_server_timeouts, datafinal),
    [SMTP_PH_RSET] = offsetof(struct smtp_server_timeouts, rset),
    [SMTP_PH_QUIT] = offsetof(struct smtp_server_timeouts, quit),
    [SMTP_PH_MISC] = offsetof(struct smtp_server_timeouts, misc),
};

struct smtp_server *smtp_server_new(const struct smtp_server_settings *settings,
                                    const struct smtp_server_io *io, const char *client,
                                    uint64_t now_ms)
{
    struct smtp_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->client = strdup(client ? client : "");
    if (!s->client) {
        free(s);
        return NULL;
    }
    s->set = settings;
    s->io = io;
    s->now = now_ms;
    s->tls = settings->in_tls;
    /* Held input is bounded by the caller pausing (feed returns true), not by refusing to
     * store bytes the client already sent: those are never dropped. */
    buf_init(&s->in, 0);
    buf_init(&s->held_reply, 0);
    buf_init(&s->bdat_refusal, 0);
    return s;
}

void smtp_server_free(struct smtp_server *s)
{
    if (!s)
        return;
    smtp_server_tx_reset(s);
    smtp_server_check_free(s);
    free(s->tx.helo);
    free(s->client);
    buf_free(&s->in);
    buf_free(&s->held_reply);
    buf_free(&s->bdat_refusal);
    free(s);
}

void smtp_server_event(struct smtp_server *s, const struct smtp_event *ev)
{
    if (s->io->event)
        s->io->event(s->io->arg, ev);
}

/* The phase's timeout in ms; 0 = none. */
static uint32_t smtp_server_phase_ms(const struct smtp_server *s, enum smtp_server_phase phase)
{
    const struct smtp_server_timeouts *t = &s->set->timeouts;
    uint32_t ms;
    memcpy(&ms, (const char *)t + smtp_server_phase_field[phase], sizeof(ms));
    /* `command` caps every phase; either alone applies when the other is 0 (none). */
    if (t->command && (!ms || t->command < ms))
        ms = t->command;
    return ms;
}

void smtp_server_set_phase(struct smtp_server *s, enum smtp_server_phase phase)
{
    uint32_t ms = smtp_server_phase_ms(s, phase);
    s->phase = (uint8_t)phase;
    s->timeout_at = ms ? s->now + ms : 0;
}

/* Slowloris inside a message: were every read to restart datablock, one octet per
 * datablock would hold a session (and its spool files) for ever. Postfix's answer
 * (smtpd_per_record_deadline, smtpd_min_data_rate) is a deadline that only data arriving
 * at the minimum rate keeps ahead of the clock. */
void smtp_server_data_clock_start(struct smtp_server *s)
{
    smtp_server_set_phase(s, SMTP_PH_DATABLOCK);
    s->data_deadline = s->timeout_at;
    s->data_credit = 0;
}

void smtp_server_data_clock_resume(struct smtp_server *s)
{
    if (!s->set->limits.min_data_rate) {
        smtp_server_set_phase(s, SMTP_PH_DATABLOCK);
        return;
    }
    s->phase = SMTP_PH_DATABLOCK;
    s->timeout_at = s->data_deadline;
}

void smtp_server_data_clock_read(struct smtp_server *s, size_t n)
{
    uint32_t rate = s->set->limits.min_data_rate;
    uint32_t ms = smtp_server_phase_ms(s, SMTP_PH_DATABLOCK);
    if (!rate || !ms) {
        smtp_server_set_phase(s, SMTP_PH_DATABLOCK);
        return;
    }
    /* n / rate seconds, in ms; what does not make a whole ms waits for the next read */
    uint64_t credit = (uint64_t)n * 1000 + s->data_credit;
    s->data_credit = (uint32_t)(credit % rate);
    uint64_t deadline = s->data_deadline + credit / rate;
    uint64_t cap = s->now + ms;
    s->data_deadline = deadline < cap ? deadline : cap;
    s->phase = SMTP_PH_DATABLOCK;
    s->timeout_at = s->data_deadline;
}

void smtp_server_tx_reset(struct smtp_server *s)
{
    struct smtp_transaction *tx = &s->tx;
    for (size_t i = 0; i < tx->n_rcpts; i++)
        free(tx->rcpts[i].mailbox);
    free(tx->rcpts);
    free(tx->sender);
    tx->rcpts = NULL;
    tx->n_rcpts = 0;
    tx->sender = NULL;
    tx->bdat = false;
    smtp_mail_params_free(&tx->mail_params);
    memset(&tx->mail_params, 0, sizeof(tx->mail_params));
    smtp_server_msg_free(&s->msg);
    s->in_message = false;
}

void smtp_server_tx_drop(struct smtp_server *s, bool always)
{
    bool had_tx = s->tx.sender != NULL;
    smtp_server_abort_message(s, NULL);
    smtp_server_tx_reset(s);
    if (had_tx || always)
        smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_RSET});
}

void smtp_server_abort_message(struct smtp_server *s, const char *reply)
{
    if (!s->in_message)
        return;
    s->in_message = false;
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_DATA_ABORT, .reply = reply});
}

void smtp_server_close(struct smtp_server *s, int code, const char *enh, const char *text,
                       const char *reason)
{
    /* Neither the connection nor a slow-down outlives this: what was held goes out now. */
    smtp_server_flush_held(s);
    smtp_server_abort_reply(s, code, enh, "%s %s", s->set->hostname, text);
    /* s->in is not freed here: the input loop may be reading it; it discards the rest. */
    s->state = SMTP_SRV_CLOSED;
    s->timeout_at = 0;
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_CLOSE, .reason = reason});
}

static bool smtp_server_holding(const struct smtp_server *s)
{
    return s->state == SMTP_SRV_WAIT_COMMIT || s->state == SMTP_SRV_WAIT_CHECK ||
           s->state == SMTP_SRV_WAIT_AUTH || s->slow_until;
}

/* Consumes input until it runs out or the server starts waiting; returns the octets
 * consumed. Input after STARTTLS or the end of the session is consumed unread. */
static size_t smtp_server_run(struct smtp_server *s, const char *p, size_t len)
{
    size_t off = 0;
    while (off < len && !smtp_server_holding(s)) {
        size_t n;
        switch (s->state) {
        case SMTP_SRV_CMD:
            n = smtp_cmd_input(s, p + off, len - off);
            break;
        case SMTP_SRV_DATA:
            n = smtp_server_data_input(s, p + off, len - off);
            break;
        case SMTP_SRV_BDAT:
            n = smtp_server_bdat_input(s, p + off, len - off);
            break;
        default: /* RFC 3207 4.2: plaintext pipelined after STARTTLS is never executed */
            return len;
        }
        if (n == 0) /* an incomplete command line: wait for the rest */
            break;
        off += n;
    }
    return off;
}

/* Runs the loop on what s->in holds (after a wait, or with the rest of a line). */
void smtp_server_run_held(struct smtp_server *s)
{
    if (s->in.len == 0 || smtp_server_holding(s))
        return;
    size_t n = smtp_server_run(s, s->in.data, s->in.len);
    buf_consume(&s->in, n);
}

static void smtp_server_hold(struct smtp_server *s, const char *data, size_t len)
{
    if (buf_append(&s->in, data, len) < 0)
        smtp_server_close(s, 421, "4.3.0", "Out of memory; closing connection", "out of memory");
}

void smtp_server_start(struct smtp_server *s, const char *greeting, uint64_t now_ms)
{
    s->now = now_ms;
    smtp_server_reply(s, 220, NULL, "%s", greeting);
    smtp_server_set_phase(s, SMTP_PH_INITIAL);
}

void smtp_server_refuse(struct smtp_server *s, const char *text)
{
    smtp_server_close(s, 421, "4.3.2", text, "refused");
}

bool smtp_server_feed(struct smtp_server *s, const char *data, size_t len, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state == SMTP_SRV_CLOSED || s->state == SMTP_SRV_WAIT_TLS)
        return false;
    if (s->in.len > 0) {
        smtp_server_hold(s, data, len);
        smtp_server_run_held(s);
    } else {
        size_t n = smtp_server_run(s, data, len);
        if (n < len && s->state != SMTP_SRV_CLOSED)
            smtp_server_hold(s, data + n, len - n);
    }
    /* Only held input asks for a pause: an incomplete line needs more bytes to finish. */
    return smtp_server_holding(s) && s->in.len > 0 && s->in.len >= s->set->limits.max_input_buffer;
}

void smtp_server_eof(struct smtp_server *s)
{
    smtp_server_abort_message(s, NULL);
    s->state = SMTP_SRV_CLOSED;
    s->timeout_at = 0;
    s->slow_until = 0;
    buf_free(&s->in);
}

uint64_t smtp_server_deadline(const struct smtp_server *s)
{
    /* The commit and the TLS handshake are the caller's to time. */
    if (s->state == SMTP_SRV_WAIT_COMMIT || s->state == SMTP_SRV_WAIT_TLS)
        return 0;
    return s->slow_until ? s->slow_until : s->timeout_at;
}

void smtp_server_tick(struct smtp_server *s, uint64_t now_ms)
{
    s->now = now_ms;
    uint64_t deadline = smtp_server_deadline(s);
    if (!deadline || now_ms < deadline)
        return;
    if (s->slow_until) {
        smtp_server_flush_held(s);
        /* The client waited for that reply: its timeout starts now. */
        smtp_server_set_phase(s, s->phase);
        smtp_server_run_held(s);
        return;
    }
    if (s->state == SMTP_SRV_CLOSED) { /* after 221: the client never went away */
        s->timeout_at = 0;
        smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_CLOSE, .reason = "timeout"});
        return;
    }
    smtp_server_close(s, 421, "4.4.2", "Timeout waiting for input; closing connection", "timeout");
}

/* The message's final reply has been sent: RFC 5321 4.1.1.4, the transaction ends whatever
 * it said. */
static void smtp_server_commit_end(struct smtp_server *s)
{
    s->state = SMTP_SRV_CMD;
    smtp_server_tx_reset(s);
    smtp_server_set_phase(s, SMTP_PH_DATAFINAL);
    smtp_server_run_held(s);
}

void smtp_server_commit_done(struct smtp_server *s, bool ok, const char *qid, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state != SMTP_SRV_WAIT_COMMIT)
        return;
    if (ok)
        smtp_server_reply(s, 250, "2.0.0", "%s Message accepted for delivery", qid ? qid : "");
    else
        smtp_server_reply(s, 451, "4.3.0", "Error writing message to queue; try again later");
    smtp_server_commit_end(s);
}

void smtp_server_commit_refused(struct smtp_server *s, int code, const char *enh, const char *text,
                                uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state != SMTP_SRV_WAIT_COMMIT)
        return;
    char line[SMTP_REPLY_LINE];
    smtp_server_send(s, line, smtp_server_refusal_line(line, code, enh, text));
    smtp_server_commit_end(s);
}

void smtp_server_commit_refused_reply(struct smtp_server *s, const char *reply, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state != SMTP_SRV_WAIT_COMMIT)
        return;
    struct buf tmp;
    size_t n;
    buf_init(&tmp, 0);
    const char *line = smtp_server_verbatim(&tmp, reply, &n);
    smtp_server_send(s, line, n);
    buf_free(&tmp);
    smtp_server_commit_end(s);
}

void smtp_server_tls_started(struct smtp_server *s, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state != SMTP_SRV_WAIT_TLS)
        return;
    /* RFC 3207 4.2: forget everything learnt in plaintext, the HELO name included. */
    smtp_server_tx_drop(s, false);
    free(s->tx.helo);
    s->tx.helo = NULL;
    s->tx.esmtp = false;
    s->tls = true;
    s->authenticated = false;
    s->state = SMTP_SRV_CMD;
    buf_free(&s->in);
    smtp_server_set_phase(s, SMTP_PH_INITIAL);
}

const struct smtp_transaction *smtp_server_transaction(const struct smtp_server *s)
{
    return &s->tx;
}
