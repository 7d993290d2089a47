/*
 * smtp/smtp_server_data.c — DATA and BDAT: where a message starts and where it ends.
 *
 * DATA (RFC 5321 4.1.1.4, 4.5.2): only CRLF "." CRLF ends the message, the first line of
 * the data counting as preceded by CRLF; a leading "." is removed from every other line.
 * The framing is a byte-at-a-time state machine whose state lives in the session, so a
 * CR at the end of one read and the LF at the start of the next frame exactly as if they
 * had come together — the end of a message never depends on how TCP split it. Anything
 * else that looks like an end ("\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r") is
 * content, which the content checks (smtp_server_msg.c) refuse as bare CR/LF: a message
 * cannot smuggle a second one past us, nor past a server behind us.
 *
 * BDAT (RFC 3030): exactly the announced octets, no dot handling. The octets are always
 * read, even for a refused BDAT, or they would be taken as commands.
 *
 * io->check_data has its say before "354" and before a message's first chunk is taken; when
 * it is pending (smtp_server_check.c) a BDAT's octets wait with the rest of the input.
 */
#include "smtp/smtp_server_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum smtp_dot_state {
    SMTP_DOT_BOL,   /* at the start of a line (after CRLF, or the first line) */
    SMTP_DOT_TEXT,  /* inside a line */
    SMTP_DOT_CR,    /* after a CR inside a line */
    SMTP_DOT_DOT,   /* after a "." at the start of a line (not passed on) */
    SMTP_DOT_DOTCR, /* after "." CR at the start of a line (the CR not passed on) */
};

/* Checks shared by DATA and BDAT: 0 to go on, or -1 after the 503. */
static int smtp_server_need_rcpt(struct smtp_server *s)
{
    if (!s->tx.sender) {
        smtp_server_cmd_error(s, 503, "5.0.0", "Need MAIL command");
        return -1;
    }
    if (!s->tx.n_rcpts) {
        smtp_server_cmd_error(s, 503, "5.0.0", "Need RCPT (recipient)");
        return -1;
    }
    return 0;
}

static void smtp_server_message_start(struct smtp_server *s)
{
    smtp_server_msg_begin(s);
    s->in_message = true;
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_DATA_START});
}

/* io->check_data on DATA or a message's first BDAT: the verdict now, or the wait for it. */
static void smtp_server_check_data(struct smtp_server *s, enum smtp_check_step step,
                                   void (*decided)(struct smtp_server *, const char *, size_t))
{
    struct smtp_addr_error err;
    memset(&err, 0, sizeof(err));
    int verdict = s->io->check_data ? s->io->check_data(s->io->arg, &err) : 0;
    if (verdict > 0) {
        smtp_server_check_wait(s, step, NULL);
    } else if (verdict == 0) {
        decided(s, NULL, 0);
    } else {
        char line[SMTP_REPLY_LINE];
        decided(s, line, smtp_server_check_refusal(line, step, &err, NULL));
    }
}

void smtp_cmd_data(struct smtp_server *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    if (smtp_server_need_rcpt(s) < 0)
        return;
    if (s->tx.bdat) { /* RFC 3030 2: DATA and BDAT are not mixed in one transaction */
        smtp_server_cmd_error(s, 503, "5.5.1", "DATA not permitted after BDAT");
        return;
    }
    smtp_server_check_data(s, SMTP_CHECK_DATA, smtp_server_data_decided);
}

void smtp_server_data_decided(struct smtp_server *s, const char *reply, size_t len)
{
    if (reply) { /* policy, not the client's fault; the transaction stays */
        smtp_server_reject(s, false, NULL, 0, reply, len);
        return;
    }
    smtp_server_reply(s, 354, NULL, "Enter mail, end with \".\" on a line by itself");
    s->state = SMTP_SRV_DATA;
    s->dot = SMTP_DOT_BOL;
    smtp_server_message_start(s);
    smtp_server_set_phase(s, SMTP_PH_DATAINIT);
}

size_t smtp_server_data_input(struct smtp_server *s, const char *p, size_t len)
{
    static const char cr = '\r';
    size_t start = 0; /* the content span not yet passed on */

    if (s->phase == SMTP_PH_DATAINIT) /* the first data after 354 */
        smtp_server_data_clock_start(s);
    smtp_server_data_clock_read(s, len);
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        switch (s->dot) {
        case SMTP_DOT_BOL:
            if (c == '.') {
                smtp_server_msg_content(s, p + start, i - start);
                start = i + 1;
                s->dot = SMTP_DOT_DOT;
            } else {
                s->dot = c == '\r' ? SMTP_DOT_CR : SMTP_DOT_TEXT;
            }
            break;
        case SMTP_DOT_TEXT:
            if (c == '\r')
                s->dot = SMTP_DOT_CR;
            break;
        case SMTP_DOT_CR:
            /* a bare LF does not start a line, so "\n.\n" is content */
            s->dot = c == '\n' ? SMTP_DOT_BOL : c == '\r' ? SMTP_DOT_CR : SMTP_DOT_TEXT;
            break;
        case SMTP_DOT_DOT:
            if (c == '\r') {
                start = i + 1; /* held: either the end or a bare CR */
                s->dot = SMTP_DOT_DOTCR;
            } else {
                s->dot = SMTP_DOT_TEXT;
            }
            break;
        case SMTP_DOT_DOTCR:
            if (c == '\n') {
                s->state = SMTP_SRV_CMD;
                smtp_server_msg_end(s);
                return i + 1;
            }
            /* "." CR <not LF>: the held CR is content (a bare one, which refuses it) */
            smtp_server_msg_content(s, &cr, 1);
            s->dot = c == '\r' ? SMTP_DOT_CR : SMTP_DOT_TEXT;
            break;
        }
    }
    smtp_server_msg_content(s, p + start, len - start);
    return len;
}

/* "BDAT" SP chunk-size [SP "LAST"] (RFC 3030 4): 0, or -1 on a syntax error. */
static int smtp_bdat_parse(const char *arg, size_t len, uint64_t *size, bool *last)
{
    size_t i = 0;
    uint64_t n = 0;
    for (; i < len && arg[i] >= '0' && arg[i] <= '9'; i++) {
        unsigned d = (unsigned)(arg[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    if (i == 0 || i > 20)
        return -1;
    *size = n;
    *last = false;
    if (i == len)
        return 0;
    if (len - i == 5 && arg[i] == ' ' && strncasecmp(arg + i + 1, "LAST", 4) == 0) {
        *last = true;
        return 0;
    }
    return -1;
}

/* The chunk's octets have all been read: answer it. */
static void smtp_bdat_chunk_done(struct smtp_server *s)
{
    s->state = SMTP_SRV_CMD;
    s->cmd_name = "BDAT"; /* a REJECT after the octets: the command line is gone */
    s->cmd_arg = NULL;
    s->cmd_arglen = 0;
    switch ((enum smtp_bdat_mode)s->bdat_mode) {
    case SMTP_BDAT_NEED_MAIL:
        smtp_server_cmd_error(s, 503, "5.0.0", "Need MAIL command");
        break;
    case SMTP_BDAT_NEED_RCPT:
        smtp_server_cmd_error(s, 503, "5.0.0", "Need RCPT (recipient)");
        break;
    case SMTP_BDAT_REFUSED: {
        char line[SMTP_REPLY_LINE];
        const char *reply = s->bdat_refusal.data;
        size_t n = s->bdat_refusal.len;
        if (!n) { /* there was no room to keep the refusal */
            reply = line;
            n = smtp_reply_format(line, sizeof(line), 452, "4.3.1", "Insufficient system storage");
        }
        smtp_server_reject(s, false, NULL, 0, reply, n);
        buf_free(&s->bdat_refusal);
        break;
    }
    case SMTP_BDAT_CHUNK:
        smtp_server_reply(s, 250, "2.0.0", "%llu octets received",
                          (unsigned long long)s->bdat_size);
        smtp_server_data_clock_resume(s); /* the next BDAT command is part of the message */
        break;
    case SMTP_BDAT_LAST:
        smtp_server_msg_end(s);
        break;
    }
}

static bool smtp_bdat_accepted(const struct smtp_server *s)
{
    return s->bdat_mode == SMTP_BDAT_CHUNK || s->bdat_mode == SMTP_BDAT_LAST;
}

/* The chunk's octets come next (bdat_size and bdat_mode set). */
static void smtp_bdat_take(struct smtp_server *s)
{
    bool accepted = smtp_bdat_accepted(s);
    s->state = SMTP_SRV_BDAT;
    if (accepted && s->tx.bdat) {
        smtp_server_data_clock_resume(s); /* a later chunk: the message's clock goes on */
    } else {
        if (accepted) {
            s->tx.bdat = true;
            smtp_server_message_start(s);
        }
        smtp_server_data_clock_start(s); /* a message's first chunk, or a refused one */
    }
    if (s->bdat_size == 0)
        smtp_bdat_chunk_done(s);
}

void smtp_cmd_bdat(struct smtp_server *s, const char *arg, size_t len)
{
    uint64_t size;
    bool last;
    if (smtp_bdat_parse(arg, len, &size, &last) < 0) {
        /* The size is unknown, so nothing can be skipped: the octets that follow will be
         * read as commands and (almost surely) refused as such. */
        smtp_server_cmd_error(s, 501, "5.5.4", "Syntax error in BDAT parameters");
        return;
    }
    s->bdat_left = s->bdat_size = size;
    if (!s->tx.sender)
        s->bdat_mode = SMTP_BDAT_NEED_MAIL;
    else if (!s->tx.n_rcpts)
        s->bdat_mode = SMTP_BDAT_NEED_RCPT;
    else
        s->bdat_mode = last ? SMTP_BDAT_LAST : SMTP_BDAT_CHUNK;
    if (smtp_bdat_accepted(s) && !s->tx.bdat)
        smtp_server_check_data(s, SMTP_CHECK_BDAT, smtp_server_bdat_decided);
    else
        smtp_bdat_take(s);
}

void smtp_server_bdat_decided(struct smtp_server *s, const char *reply, size_t len)
{
    if (reply) {
        s->bdat_mode = SMTP_BDAT_REFUSED;
        buf_free(&s->bdat_refusal);
        if (buf_append(&s->bdat_refusal, reply, len) < 0)
            buf_free(&s->bdat_refusal); /* empty: smtp_bdat_chunk_done says 452 4.3.1 */
    }
    smtp_bdat_take(s);
}

size_t smtp_server_bdat_input(struct smtp_server *s, const char *p, size_t len)
{
    size_t n = len < s->bdat_left ? len : (size_t)s->bdat_left;
    if (s->bdat_mode == SMTP_BDAT_CHUNK || s->bdat_mode == SMTP_BDAT_LAST)
        smtp_server_msg_content(s, p, n);
    s->bdat_left -= n;
    smtp_server_data_clock_read(s, n);
    if (s->bdat_left == 0)
        smtp_bdat_chunk_done(s);
    return n;
}
