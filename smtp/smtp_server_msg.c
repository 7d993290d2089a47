/*
 * smtp/smtp_server_msg.c — the checks every message passes, however it arrived.
 *
 * DATA and BDAT hand over content octets (unstuffed); this file counts them, refuses bare
 * CR, bare LF and NUL (SMTP smuggling: a message that holds them is refused whole, never
 * repaired, since a server behind us might read a bare CR or LF as a line end, or drop a
 * NUL and see "\r\n\0.\r\n" as the end of the message; RFC 5322 2.3 forbids NUL in
 * a message anyway), enforces the size,
 * line and header limits, and picks up the Message-ID for the log. It works one octet at
 * a time with its state in struct smtp_msg, so nothing depends on how the content was cut
 * into reads or chunks, and nothing of the body is ever stored here. On the local
 * submission socket it also reports where the header section ends (SMTP_EV_HEADER_END),
 * for which the start of a line that may be a field is held back (at most
 * SMTP_HDR_NAME_MAX octets, in a buffer allocated with the message) until its first
 * octets tell whether the header goes on.
 *
 * Once a refusal is known nothing more is checked or passed on (the caller discards what
 * it has on DATA_ABORT); the framing layer still reads the message to its real end.
 */
#include "smtp/smtp_server_int.h"

#include <stdlib.h>
#include <string.h>

/* Where the header scanner is in the current line. The header section ends at the first
 * empty line, or at the first line that is not a header field (a message without header,
 * RFC 5322 3.5, must not be charged its body as headers). */
enum smtp_hdr_state {
    SMTP_HDR_LINE,   /* at the start of a line */
    SMTP_HDR_NAME,   /* in a field name */
    SMTP_HDR_WSP,    /* white space between the name and ':' (obsolete syntax, RFC 5322 4.5) */
    SMTP_HDR_VALUE,  /* in a field body, or a folded continuation of it */
    SMTP_HDR_EOH_CR, /* CR at the start of a line: the empty line ending the header */
    SMTP_HDR_BODY,   /* past the header section */
};

/* What an octet of the header section means for the octets around it (settings.local:
 * where SMTP_EV_HEADER_END goes). */
enum smtp_hdr_step {
    SMTP_STEP_NONE,
    SMTP_STEP_HOLD,     /* a line that may be a field starts with this octet */
    SMTP_STEP_FIELD,    /* the held line is a field: it goes on as header */
    SMTP_STEP_END,      /* the header ended before this line, which is not empty */
    SMTP_STEP_END_HELD, /* ... and that line is the one held */
    SMTP_STEP_END_EMPTY /* this octet starts the empty line ending the header */
};

/* The fields whose presence the header-end event reports; bit k of name_cand is entry k.
 * A name is matched up to its NUL, which no field-name character equals. */
static const struct {
    char name[sizeof("message-id")];
    uint8_t bit;
} smtp_msg_fields[] = {
    {"date", SMTP_HDR_SEEN_DATE},
    {"from", SMTP_HDR_SEEN_FROM},
    {"message-id", SMTP_HDR_SEEN_MSGID},
    {"sender", SMTP_HDR_SEEN_SENDER},
    {"to", SMTP_HDR_SEEN_TO},
    {"cc", SMTP_HDR_SEEN_CC},
    {"bcc", SMTP_HDR_SEEN_BCC},
};
#define SMTP_N_FIELDS   (sizeof(smtp_msg_fields) / sizeof(smtp_msg_fields[0]))
#define SMTP_FIELDS_ALL ((uint8_t)((1u << SMTP_N_FIELDS) - 1))

void smtp_server_msg_free(struct smtp_msg *m)
{
    free(m->msgid);
    free(m->hold);
    memset(m, 0, sizeof(*m)); /* SMTP_HDR_LINE, nothing refused */
}

static void smtp_msg_refuse(struct smtp_msg *m, enum smtp_msg_refusal why)
{
    if (m->refusal == SMTP_MSG_OK)
        m->refusal = (uint8_t)why;
}

void smtp_server_msg_begin(struct smtp_server *s)
{
    smtp_server_msg_free(&s->msg);
    if (s->set->local && !(s->msg.hold = malloc(SMTP_HDR_NAME_MAX)))
        smtp_msg_refuse(&s->msg, SMTP_MSG_NOMEM);
}

/* RFC 5322 3.6.8: field names are printable ASCII except ':' */
static bool smtp_msg_ftext(unsigned char c)
{
    return c > ' ' && c < 0x7f && c != ':';
}

static void smtp_msg_name_char(struct smtp_msg *m, unsigned char c)
{
    unsigned char lower = c >= 'A' && c <= 'Z' ? (unsigned char)(c + 'a' - 'A') : c;
    uint8_t still = 0;
    for (size_t k = 0; k < SMTP_N_FIELDS; k++)
        if ((m->name_cand >> k & 1) && (unsigned char)smtp_msg_fields[k].name[m->name_pos] == lower)
            still |= (uint8_t)(1u << k);
    m->name_cand = still;
    if (still)
        m->name_pos++;
}

/* The ':' after a field name: the line so far belongs to the header section. */
static void smtp_msg_field(struct smtp_msg *m)
{
    uint8_t bit = 0;
    for (size_t k = 0; k < SMTP_N_FIELDS; k++)
        if ((m->name_cand >> k & 1) && smtp_msg_fields[k].name[m->name_pos] == '\0')
            bit = smtp_msg_fields[k].bit;
    m->header_len += m->line_len;
    m->have_field = true;
    m->hdr = SMTP_HDR_VALUE;
    m->seen |= bit;
    if (bit == SMTP_HDR_SEEN_MSGID && !m->msgid) {
        m->msgid = malloc(SMTP_MSGID_MAX + 1); /* without it the log just lacks msgid= */
        m->msgid_len = 0;
        m->capturing = m->msgid != NULL;
    }
}

/* The Message-ID goes to the msgid= log line and the queue file, where a control octet
 * (an escape sequence, a line end) could forge or garble what an operator reads: a tab (left
 * by unfolding) becomes a space, any other control octet '?'. 8-bit octets are kept (RFC 6532
 * allows UTF-8 in a msg-id). */
static char smtp_msg_msgid_octet(unsigned char c)
{
    if (c == '\t')
        return ' ';
    return c < 0x20 || c == 0x7f ? '?' : (char)c;
}

/* A line in the name state that turns out to be no field (a character no name has, or
 * too long a name) ends the header section before it. */
static enum smtp_hdr_step smtp_msg_not_field(struct smtp_msg *m)
{
    m->hdr = SMTP_HDR_BODY;
    return SMTP_STEP_END_HELD;
}

static enum smtp_hdr_step smtp_msg_header_octet(struct smtp_msg *m, unsigned char c)
{
    switch ((enum smtp_hdr_state)m->hdr) {
    case SMTP_HDR_LINE:
        if (c == ' ' || c == '\t') {
            /* a folded line continues the field (RFC 5322 2.2.3), if there is one */
            if (!m->have_field) {
                m->hdr = SMTP_HDR_BODY;
                return SMTP_STEP_END;
            }
            m->hdr = SMTP_HDR_VALUE;
            m->header_len += m->line_len;
            break;
        }
        m->capturing = false; /* the Message-ID field ended with the previous line */
        if (c == '\r') {
            m->hdr = SMTP_HDR_EOH_CR;
            return SMTP_STEP_END_EMPTY;
        }
        if (!smtp_msg_ftext(c)) {
            m->hdr = SMTP_HDR_BODY;
            return SMTP_STEP_END;
        }
        m->hdr = SMTP_HDR_NAME;
        m->name_pos = 0;
        m->name_cand = SMTP_FIELDS_ALL;
        smtp_msg_name_char(m, c);
        return SMTP_STEP_HOLD;
    case SMTP_HDR_EOH_CR: /* the LF (a bare CR was refused before we get here) */
        m->header_len += m->line_len;
        m->hdr = SMTP_HDR_BODY;
        return SMTP_STEP_NONE;
    case SMTP_HDR_NAME:
    case SMTP_HDR_WSP:
        if (c == ':') {
            smtp_msg_field(m);
            return SMTP_STEP_FIELD;
        }
        if (m->line_len > SMTP_HDR_NAME_MAX)
            return smtp_msg_not_field(m);
        if (m->hdr == SMTP_HDR_NAME && smtp_msg_ftext(c))
            smtp_msg_name_char(m, c);
        else if (c == ' ' || c == '\t')
            m->hdr = SMTP_HDR_WSP;
        else
            return smtp_msg_not_field(m);
        return SMTP_STEP_NONE;
    case SMTP_HDR_VALUE:
        m->header_len++;
        break;
    case SMTP_HDR_BODY:
        return SMTP_STEP_NONE;
    }
    /* in a field body: unfolding removes only the CRLF (RFC 5322 2.2.3) */
    if (c == '\n')
        m->hdr = SMTP_HDR_LINE;
    else if (m->capturing && c != '\r' && m->msgid_len < SMTP_MSGID_MAX &&
             (m->msgid_len || (c != ' ' && c != '\t'))) /* leading white space is not kept */
        m->msgid[m->msgid_len++] = smtp_msg_msgid_octet(c);
    return SMTP_STEP_NONE;
}

static void smtp_msg_pass(struct smtp_server *s, const char *p, size_t len)
{
    if (len)
        smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_DATA, .data = p, .len = len});
}

/* Passes on the held octets of an earlier call; they come before anything of this one. */
static void smtp_msg_release(struct smtp_server *s)
{
    struct smtp_msg *m = &s->msg;
    size_t n = m->hold_len;
    m->hold_len = 0;
    smtp_msg_pass(s, m->hold, n);
}

static void smtp_msg_header_end(struct smtp_server *s, bool need_empty_line)
{
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_HEADER_END,
                                              .len = need_empty_line,
                                              .headers_seen = s->msg.seen});
}

/* Local submission: SMTP_EV_HEADER_END goes exactly where the header section ends, so the
 * line that may end it is held back until its first octets tell. p[*start, i) is what of
 * this call is not yet passed on; the octet at i is the one that took `step`. */
static void smtp_msg_step(struct smtp_server *s, enum smtp_hdr_step step, const char *p,
                          size_t *start, size_t i)
{
    switch (step) {
    case SMTP_STEP_NONE:
        return;
    case SMTP_STEP_HOLD: /* what came before the line is passed: p[*start, i) is the line */
        smtp_msg_pass(s, p + *start, i - *start);
        *start = i;
        return;
    case SMTP_STEP_FIELD:
        smtp_msg_release(s);
        return;
    case SMTP_STEP_END:
    case SMTP_STEP_END_EMPTY:
        smtp_msg_pass(s, p + *start, i - *start);
        *start = i;
        smtp_msg_header_end(s, step == SMTP_STEP_END);
        return;
    case SMTP_STEP_END_HELD:
        smtp_msg_header_end(s, true);
        smtp_msg_release(s);
        return;
    }
}

/* The end of this call's octets: the part of a line still held waits for the next. */
static void smtp_msg_pass_rest(struct smtp_server *s, const char *p, size_t start, size_t end)
{
    struct smtp_msg *m = &s->msg;
    if (m->hold && (m->hdr == SMTP_HDR_NAME || m->hdr == SMTP_HDR_WSP)) {
        /* the held octets are the line so far, at most SMTP_HDR_NAME_MAX */
        memcpy(m->hold + m->hold_len, p + start, end - start);
        m->hold_len = (uint16_t)(m->hold_len + (end - start));
        return;
    }
    smtp_msg_pass(s, p + start, end - start);
}

void smtp_server_msg_content(struct smtp_server *s, const char *p, size_t len)
{
    const struct smtp_server_limits *l = &s->set->limits;
    struct smtp_msg *m = &s->msg;

    if (m->refusal != SMTP_MSG_OK)
        return;
    /* Only the octets within the size limit are looked at; with the refusal found at an
     * exact octet, what is passed on never depends on how the input was split. */
    size_t n = len;
    if (l->max_message_size && len > l->max_message_size - m->size)
        n = (size_t)(l->max_message_size - m->size);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        enum smtp_msg_refusal why = SMTP_MSG_OK;
        m->line_len++;
        /* CR must be followed by LF, and LF preceded by CR (RFC 5321 2.3.8) */
        if (m->cr != (c == '\n'))
            why = SMTP_MSG_BARE_CRLF;
        else if (c == '\0')
            why = SMTP_MSG_NUL;
        else if (l->max_text_line && m->line_len > l->max_text_line)
            why = SMTP_MSG_LINE;
        else if (m->hdr != SMTP_HDR_BODY) {
            enum smtp_hdr_step step = smtp_msg_header_octet(m, c);
            if (m->hold)
                smtp_msg_step(s, step, p, &start, i);
            if (l->max_header_size && m->header_len > l->max_header_size)
                why = SMTP_MSG_HEADERS;
        }
        if (why != SMTP_MSG_OK) {
            /* nothing more is passed on: DATA_ABORT follows at the end */
            smtp_msg_refuse(m, why);
            smtp_msg_pass(s, p + start, i - start);
            return;
        }
        if (c == '\n')
            m->line_len = 0;
        m->cr = c == '\r';
        m->size++;
    }
    smtp_msg_pass_rest(s, p, start, n);
    if (n < len)
        smtp_msg_refuse(m, SMTP_MSG_TOO_BIG);
}

/* Local submission: a message that ends inside its header section still gets its
 * header-end event, before DATA_END. A last line without CRLF (BDAT allows it) that is
 * a field gets one, so that what the caller adds starts on a line of its own. */
static void smtp_msg_end_header(struct smtp_server *s)
{
    static const char crlf[] = "\r\n";
    struct smtp_msg *m = &s->msg;
    switch ((enum smtp_hdr_state)m->hdr) {
    case SMTP_HDR_NAME:
    case SMTP_HDR_WSP: /* a last line that is no field */
        m->hdr = SMTP_HDR_BODY;
        smtp_msg_header_end(s, true);
        smtp_msg_release(s);
        return;
    case SMTP_HDR_VALUE: /* always inside a line: its LF would have made it SMTP_HDR_LINE */
        smtp_msg_pass(s, crlf, 2);
        /* fall through */
    case SMTP_HDR_LINE:
        m->hdr = SMTP_HDR_BODY;
        smtp_msg_header_end(s, true);
        return;
    case SMTP_HDR_EOH_CR: /* refused as a bare CR */
    case SMTP_HDR_BODY:
        return;
    }
}

/* The Message-ID value without the white space after it. */
static const char *smtp_msg_msgid(struct smtp_msg *m)
{
    if (!m->msgid)
        return NULL;
    size_t end = m->msgid_len;
    while (end > 0 && (m->msgid[end - 1] == ' ' || m->msgid[end - 1] == '\t'))
        end--;
    m->msgid[end] = '\0';
    return m->msgid;
}

void smtp_server_msg_end(struct smtp_server *s)
{
    const struct smtp_server_limits *l = &s->set->limits;
    struct smtp_msg *m = &s->msg;

    if (m->cr) /* BDAT content may end in a CR that no LF followed */
        smtp_msg_refuse(m, SMTP_MSG_BARE_CRLF);
    switch ((enum smtp_msg_refusal)m->refusal) {
    case SMTP_MSG_OK:
        if (m->hold)
            smtp_msg_end_header(s);
        s->in_message = false;
        s->state = SMTP_SRV_WAIT_COMMIT; /* before the event: the caller may commit at once */
        smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_DATA_END,
                                                  .size = m->size,
                                                  .msgid = smtp_msg_msgid(m)});
        return;
    case SMTP_MSG_BARE_CRLF:
        smtp_server_abort_reply(s, 550, "5.6.0", "Message contains bare CR or LF; refused");
        break;
    case SMTP_MSG_NUL: /* sendmail's reply with RejectNUL */
        smtp_server_abort_reply(s, 554, "5.6.1", "NUL byte not allowed");
        break;
    case SMTP_MSG_TOO_BIG:
        smtp_server_abort_reply(s, 552, "5.3.4",
                                "Message size exceeds fixed maximum message size (%llu)",
                                (unsigned long long)l->max_message_size);
        break;
    case SMTP_MSG_HEADERS:
        smtp_server_abort_reply(s, 552, "5.6.0", "Headers too large (%u max)", l->max_header_size);
        break;
    case SMTP_MSG_LINE:
        smtp_server_abort_reply(s, 550, "5.6.0", "Line too long (%u max)", l->max_text_line);
        break;
    case SMTP_MSG_NOMEM:
        smtp_server_abort_reply(s, 452, "4.3.1", "Insufficient system storage");
        break;
    }
    /* RFC 5321 4.1.1.4: the final reply ends the transaction, refused or not */
    smtp_server_tx_reset(s);
    smtp_server_set_phase(s, SMTP_PH_DATAFINAL);
}
