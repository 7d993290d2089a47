/*
 * smtp/smtp_server_reply.c — replies, and what refusals cost the client.
 *
 * Every reply leaves through smtp_server_send(), one io->reply call per complete reply
 * (the caller batches them, which makes PIPELINING cheap). A client that keeps making
 * errors is slowed down and then dropped, as sendmail does: each error past
 * limits.error_throttle holds its reply (and all further input) for a second, and the
 * error that reaches limits.max_errors closes the session with 421 4.7.0. A slow-down
 * costs a timer, not a sleeping thread.
 *
 * A filter's reply is sent verbatim only when it is a well-formed refusal: a milter is
 * another program, and a reply line it gets wrong (a 2xx, a bare LF, a code that changes
 * between lines) would desynchronise a pipelining client or forge a reply.
 */
#include "smtp/smtp_server_int.h"

#include <stdio.h>
#include <string.h>

static const char smtp_server_fallback[] = SMTP_SERVER_FALLBACK_REPLY;

size_t smtp_reply_format(char *out, size_t outlen, int code, const char *enh, const char *text)
{
    if (outlen < 8) { /* "NNN " + CRLF + NUL: nothing useful fits */
        if (outlen)
            out[0] = '\0';
        return 0;
    }
    int n = enh ? snprintf(out, outlen - 2, "%03d %s %s", code, enh, text)
                : snprintf(out, outlen - 2, "%03d %s", code, text);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len > outlen - 3) /* truncated: keep room for CRLF and NUL */
        len = outlen - 3;
    memcpy(out + len, "\r\n", 3);
    return len + 2;
}

void smtp_server_send(struct smtp_server *s, const char *bytes, size_t len)
{
    if (s->slow_until) {
        /* Out of memory only loses the delay, never the reply. */
        if (buf_append(&s->held_reply, bytes, len) == 0)
            return;
        s->slow_until = 0;
    }
    s->io->reply(s->io->arg, bytes, len);
}

void smtp_server_flush_held(struct smtp_server *s)
{
    s->slow_until = 0;
    if (s->held_reply.len)
        s->io->reply(s->io->arg, s->held_reply.data, s->held_reply.len);
    buf_free(&s->held_reply);
}

void smtp_server_slow_down(struct smtp_server *s)
{
    s->slow_until = s->now + 1000;
}

static size_t smtp_server_vformat(char *out, size_t outlen, int code, const char *enh,
                                  const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static size_t smtp_server_vformat(char *out, size_t outlen, int code, const char *enh,
                                  const char *fmt, va_list ap)
{
    char text[SMTP_REPLY_LINE];
    vsnprintf(text, sizeof(text), fmt, ap);
    return smtp_reply_format(out, outlen, code, enh, text);
}

void smtp_server_reply(struct smtp_server *s, int code, const char *enh, const char *fmt, ...)
{
    char line[SMTP_REPLY_LINE];
    va_list ap;
    va_start(ap, fmt);
    size_t n = smtp_server_vformat(line, sizeof(line), code, enh, fmt, ap);
    va_end(ap);
    smtp_server_send(s, line, n);
}

void smtp_server_abort_reply(struct smtp_server *s, int code, const char *enh, const char *fmt, ...)
{
    char line[SMTP_REPLY_LINE];
    va_list ap;
    va_start(ap, fmt);
    size_t n = smtp_server_vformat(line, sizeof(line), code, enh, fmt, ap);
    va_end(ap);
    line[n - 2] = '\0'; /* the event carries the reply without its CRLF */
    smtp_server_abort_message(s, line);
    line[n - 2] = '\r';
    smtp_server_send(s, line, n);
}

void smtp_server_reply_lines(struct smtp_server *s, int code, const char *enh,
                             const char *const *lines, size_t n)
{
    struct buf out;
    buf_init(&out, 0);
    for (size_t i = 0; i < n; i++) {
        char line[SMTP_REPLY_LINE];
        size_t len = smtp_reply_format(line, sizeof(line), code, enh, lines[i]);
        if (i + 1 < n)
            line[3] = '-'; /* RFC 5321 4.2.1: every line but the last has a hyphen */
        if (buf_append(&out, line, len) < 0)
            break;
    }
    if (out.len)
        smtp_server_send(s, out.data, out.len);
    buf_free(&out);
}

void smtp_server_printable(char *out, size_t outlen, const char *in, size_t len)
{
    if (!outlen)
        return;
    size_t n = len < outlen - 1 ? len : outlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        /* never echo control octets into a reply or a log line */
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
}

/* The reply for a log line: printable, the lines of a multi-line reply joined by a space. */
static void smtp_server_reply_text(char *out, size_t outlen, const char *line, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < outlen; i++) {
        if (line[i] == '\r' && i + 1 < len && line[i + 1] == '\n') {
            out[o++] = ' ';
            i++;
        } else {
            unsigned char c = (unsigned char)line[i];
            out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
    }
    out[o] = '\0';
}

void smtp_server_reject(struct smtp_server *s, bool counts, const char *arg, size_t arglen,
                        const char *line, size_t len)
{
    const struct smtp_server_limits *l = &s->set->limits;
    char argtext[SMTP_REPLY_LINE];
    char replytext[SMTP_REPLY_LINE];

    smtp_server_printable(argtext, sizeof(argtext), arg, arglen);
    smtp_server_reply_text(replytext, sizeof(replytext), line, len - 2);
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_REJECT,
                                              .cmd = s->cmd_name ? s->cmd_name : "",
                                              .arg = argtext,
                                              .reply = replytext});
    if (counts) {
        s->errors++;
        if (l->max_errors && s->errors >= l->max_errors) {
            smtp_server_send(s, line, len);
            smtp_server_close(s, 421, "4.7.0", "Too many errors; closing connection",
                              "too many errors");
            return;
        }
        /* sendmail's and Postfix's answer to a dictionary or garbage attack: make every
         * further mistake cost the client a second. */
        if (l->error_throttle && s->errors > l->error_throttle)
            smtp_server_slow_down(s);
    }
    smtp_server_send(s, line, len);
    smtp_server_set_phase(s, SMTP_PH_MISC);
}

void smtp_server_cmd_error(struct smtp_server *s, int code, const char *enh, const char *fmt, ...)
{
    char line[SMTP_REPLY_LINE];
    va_list ap;
    va_start(ap, fmt);
    size_t n = smtp_server_vformat(line, sizeof(line), code, enh, fmt, ap);
    va_end(ap);
    smtp_server_reject(s, true, s->cmd_arg, s->cmd_arglen, line, n);
}

/* One line of a verbatim reply, `n` octets from `p` up to its CRLF or the end: the code of
 * the first line, then '-' if more follow or ' ' (or nothing) on the last, then text. */
static bool smtp_verbatim_line(const char *p, size_t n, const char *code, bool last)
{
    if (n < 3 || memcmp(p, code, 3) != 0 || n > SMTP_REPLY_LINE - 2)
        return false;
    if (n == 3)
        return last; /* RFC 5321 4.2: Reply-code [ SP textstring ] on the last line only */
    if (p[3] != (last ? ' ' : '-'))
        return false;
    for (size_t i = 4; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c >= 0x7f)
            return false;
    }
    return true;
}

static bool smtp_verbatim_valid(const char *reply)
{
    if (!reply || (reply[0] != '4' && reply[0] != '5') || reply[1] < '0' || reply[1] > '9' ||
        reply[2] < '0' || reply[2] > '9')
        return false;
    const char *p = reply;
    for (unsigned lines = 1; lines <= SMTP_SERVER_REPLY_LINES; lines++) {
        const char *crlf = strstr(p, "\r\n");
        size_t n = crlf ? (size_t)(crlf - p) : strlen(p);
        if (!smtp_verbatim_line(p, n, reply, crlf == NULL))
            return false;
        if (!crlf)
            return true;
        p = crlf + 2;
    }
    return false;
}

const char *smtp_server_verbatim(struct buf *tmp, const char *reply, size_t *len)
{
    if (smtp_verbatim_valid(reply) && buf_append(tmp, reply, strlen(reply)) == 0 &&
        buf_append(tmp, "\r\n", 2) == 0) {
        *len = tmp->len;
        return tmp->data;
    }
    *len = sizeof(smtp_server_fallback) - 1;
    return smtp_server_fallback;
}

/* RFC 3463 2: class "." subject "." detail, each of 1 to 3 digits, the class the code's. */
static bool smtp_enh_valid(int code, const char *enh)
{
    if (enh[0] != (char)('0' + code / 100) || enh[1] != '.')
        return false;
    const char *p = enh + 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (p[digits] >= '0' && p[digits] <= '9')
            digits++;
        if (digits < 1 || digits > 3 || p[digits] != (part == 0 ? '.' : '\0'))
            return false;
        p += digits + 1;
    }
    return true;
}

size_t smtp_server_refusal_line(char out[SMTP_REPLY_LINE], int code, const char *enh,
                                const char *text)
{
    if (code < 400 || code > 599 || (enh && !smtp_enh_valid(code, enh))) {
        memcpy(out, smtp_server_fallback, sizeof(smtp_server_fallback));
        return sizeof(smtp_server_fallback) - 1;
    }
    char safe[SMTP_REPLY_LINE];
    smtp_server_printable(safe, sizeof(safe), text ? text : "", text ? strlen(text) : 0);
    return smtp_reply_format(out, SMTP_REPLY_LINE, code, enh, safe);
}
