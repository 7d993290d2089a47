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
 * into reads or chunks, and nothing of the body is ever stored here.
 *
 * Once a refusal is known nothing more is checked or passed on (the caller discards what
 * it has on DATA_ABORT); the framing layer still reads the message to its real end.
 */
#include "smtp/smtp_server_int.h"

#include <ctype.h>
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

static const char smtp_msgid_name[] = "message-id";
#define SMTP_MSGID_NAME_LEN (sizeof(smtp_msgid_name) - 1)
#define SMTP_NAME_NOMATCH   0xff

void smtp_server_msg_free(struct smtp_msg *m)
{
    free(m->msgid);
    memset(m, 0, sizeof(*m)); /* SMTP_HDR_LINE, nothing refused */
}

void smtp_server_msg_begin(struct smtp_server *s)
{
    smtp_server_msg_free(&s->msg);
}

static void smtp_msg_refuse(struct smtp_msg *m, enum smtp_msg_refusal why)
{
    if (m->refusal == SMTP_MSG_OK)
        m->refusal = (uint8_t)why;
}

/* RFC 5322 3.6.8: field names are printable ASCII except ':' */
static bool smtp_msg_ftext(unsigned char c)
{
    return c > ' ' && c < 0x7f && c != ':';
}

static void smtp_msg_name_char(struct smtp_msg *m, unsigned char c)
{
    if (m->name_pos < SMTP_MSGID_NAME_LEN && tolower(c) == smtp_msgid_name[m->name_pos])
        m->name_pos++;
    else
        m->name_pos = SMTP_NAME_NOMATCH;
}

/* The ':' after a field name: the line so far belongs to the header section. */
static void smtp_msg_field(struct smtp_msg *m)
{
    m->header_len += m->line_len;
    m->have_field = true;
    m->hdr = SMTP_HDR_VALUE;
    if (m->name_pos == SMTP_MSGID_NAME_LEN && !m->msgid) {
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

static void smtp_msg_header_octet(struct smtp_msg *m, unsigned char c)
{
    switch ((enum smtp_hdr_state)m->hdr) {
    case SMTP_HDR_LINE:
        if (c == ' ' || c == '\t') {
            /* a folded line continues the field (RFC 5322 2.2.3), if there is one */
            m->hdr = m->have_field ? SMTP_HDR_VALUE : SMTP_HDR_BODY;
            if (m->have_field)
                m->header_len += m->line_len;
            break;
        }
        m->capturing = false; /* the Message-ID field ended with the previous line */
        if (c == '\r') {
            m->hdr = SMTP_HDR_EOH_CR;
        } else if (smtp_msg_ftext(c)) {
            m->hdr = SMTP_HDR_NAME;
            m->name_pos = 0;
            smtp_msg_name_char(m, c);
        } else {
            m->hdr = SMTP_HDR_BODY;
        }
        return;
    case SMTP_HDR_EOH_CR: /* the LF (a bare CR was refused before we get here) */
        m->header_len += m->line_len;
        m->hdr = SMTP_HDR_BODY;
        return;
    case SMTP_HDR_NAME:
        if (smtp_msg_ftext(c))
            smtp_msg_name_char(m, c);
        else if (c == ':')
            smtp_msg_field(m);
        else
            m->hdr = c == ' ' || c == '\t' ? SMTP_HDR_WSP : SMTP_HDR_BODY;
        return;
    case SMTP_HDR_WSP:
        if (c == ':')
            smtp_msg_field(m);
        else if (c != ' ' && c != '\t')
            m->hdr = SMTP_HDR_BODY;
        return;
    case SMTP_HDR_VALUE:
        m->header_len++;
        break;
    case SMTP_HDR_BODY:
        return;
    }
    /* in a field body: unfolding removes only the CRLF (RFC 5322 2.2.3) */
    if (c == '\n')
        m->hdr = SMTP_HDR_LINE;
    else if (m->capturing && c != '\r' && m->msgid_len < SMTP_MSGID_MAX &&
             (m->msgid_len || (c != ' ' && c != '\t'))) /* leading white space is not kept */
        m->msgid[m->msgid_len++] = smtp_msg_msgid_octet(c);
}

static void smtp_msg_pass(struct smtp_server *s, const char *p, size_t len)
{
    if (len)
        smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_DATA, .data = p, .len = len});
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
            smtp_msg_header_octet(m, c);
            if (l->max_header_size && m->header_len > l->max_header_size)
                why = SMTP_MSG_HEADERS;
        }
        if (why != SMTP_MSG_OK) {
            smtp_msg_refuse(m, why);
            smtp_msg_pass(s, p, i);
            return;
        }
        if (c == '\n')
            m->line_len = 0;
        m->cr = c == '\r';
        m->size++;
    }
    smtp_msg_pass(s, p, n);
    if (n < len)
        smtp_msg_refuse(m, SMTP_MSG_TOO_BIG);
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
    }
    /* RFC 5321 4.1.1.4: the final reply ends the transaction, refused or not */
    smtp_server_tx_reset(s);
    smtp_server_set_phase(s, SMTP_PH_DATAFINAL);
}
