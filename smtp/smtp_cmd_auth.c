/*
 * smtp/smtp_cmd_auth.c — AUTH (RFC 4954): the command, the 334 exchange, the wait for each
 * SASL step, failures, and MAIL on a listener that requires AUTH (sendmail's M=a).
 *
 * The SASL work itself is the caller's (io->auth_step, answered by smtp_server_auth_done):
 * it may block on saslauthd, so it runs elsewhere while the server waits here the way it
 * waits for a commit. Replies are sendmail's (srvrsmtp.c), so clients and log watchers
 * see what they know; the base64 error is Postfix's (sendmail's names no reason).
 */
#include "smtp/smtp_server_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/base64.h"

#define SMTP_AUTH_MECH_MAX 20 /* RFC 4422 3.1: a SASL mechanism name is 1 to 20 characters */

static void smtp_auth_offer_now(const struct smtp_server *s, struct smtp_auth_offer *o)
{
    memset(o, 0, sizeof(*o));
    if (s->io->auth_offer)
        s->io->auth_offer(s->io->arg, s->tls, o);
}

bool smtp_auth_offered(const struct smtp_server *s)
{
    struct smtp_auth_offer o;
    if (!s->tx.esmtp)
        return false;
    smtp_auth_offer_now(s, &o);
    return o.mechs && o.mechs[0];
}

size_t smtp_auth_ehlo(struct smtp_server *s, const char **lines, size_t n, char *buf, size_t buflen)
{
    struct smtp_auth_offer o;
    smtp_auth_offer_now(s, &o);
    if (!o.mechs || !o.mechs[0])
        return n;
    size_t len = strlen(o.mechs);
    if (len + 6 > buflen) /* the caller's buffer is sized for any sane list */
        return n;
    memcpy(buf, "AUTH ", 5);
    memcpy(buf + 5, o.mechs, len + 1);
    lines[n] = buf;
    return n + 1;
}

/* Whether `mech` (len octets) is one word of the offered list, case-insensitively. */
static bool smtp_auth_mech_offered(const char *mechs, const char *mech, size_t len)
{
    for (const char *p = mechs; *p;) {
        size_t w = strcspn(p, " ");
        if (w == len && strncasecmp(p, mech, len) == 0)
            return true;
        p += w;
        p += strspn(p, " ");
    }
    return false;
}

/* Decodes a client's base64 into a new buffer (*out, freed by the caller): its length, or
 * -1 after the 501 reply. */
static ssize_t smtp_auth_decode(struct smtp_server *s, const char *in, size_t len,
                                unsigned char **out)
{
    *out = malloc(len / 4 * 3 + 1);
    if (!*out) {
        smtp_server_reply(s, 452, "4.3.1", "Insufficient system storage");
        return -1;
    }
    ssize_t n = base64_decode(in, len, *out, len / 4 * 3 + 1);
    if (n < 0) {
        free(*out);
        *out = NULL;
        smtp_server_cmd_error(s, 501, "5.5.2", "Cannot decode response");
    }
    return n;
}

/* Hands a step to the caller and waits for smtp_server_auth_done(). */
static void smtp_auth_step(struct smtp_server *s, const char *mech, const unsigned char *resp,
                           size_t len, bool has_resp)
{
    s->state = SMTP_SRV_WAIT_AUTH;
    smtp_server_set_phase(s, SMTP_PH_MISC);
    s->io->auth_step(s->io->arg, mech, resp, len, has_resp);
}

void smtp_cmd_auth(struct smtp_server *s, const char *arg, size_t len)
{
    struct smtp_auth_offer o;
    smtp_auth_offer_now(s, &o);
    /* Offered only after EHLO, as sendmail does (and not at all without a list). */
    if (!s->tx.esmtp || !o.mechs || !o.mechs[0] || !s->io->auth_step) {
        smtp_server_cmd_error(s, 503, "5.3.3", "AUTH not available");
        return;
    }
    if (s->authenticated) {
        smtp_server_cmd_error(s, 503, "5.5.0", "Already Authenticated");
        return;
    }
    if (s->tx.sender) { /* RFC 4954 4 */
        smtp_server_cmd_error(s, 503, "5.5.0", "AUTH not permitted during a mail transaction");
        return;
    }
    size_t mlen = 0;
    while (mlen < len && arg[mlen] != ' ' && arg[mlen] != '\t')
        mlen++;
    if (mlen == 0) {
        smtp_server_cmd_error(s, 501, "5.5.2", "AUTH mechanism must be specified");
        return;
    }
    if (mlen > SMTP_AUTH_MECH_MAX || !smtp_auth_mech_offered(o.mechs, arg, mlen)) {
        char echo[SMTP_AUTH_MECH_MAX + 1];
        smtp_server_printable(echo, sizeof(echo), arg, mlen);
        smtp_server_cmd_error(s, 504, "5.3.3", "AUTH mechanism %s not available", echo);
        return;
    }
    char mech[SMTP_AUTH_MECH_MAX + 1];
    for (size_t i = 0; i < mlen; i++) /* SASL mechanism names are upper case */
        mech[i] = (char)(arg[i] >= 'a' && arg[i] <= 'z' ? arg[i] - 'a' + 'A' : arg[i]);
    mech[mlen] = '\0';
    const char *ir = arg + mlen;
    size_t irlen = len - mlen;
    while (irlen && (*ir == ' ' || *ir == '\t')) {
        ir++;
        irlen--;
    }
    if (irlen == 0) {
        smtp_auth_step(s, mech, NULL, 0, false);
        return;
    }
    if (irlen == 1 && ir[0] == '=') { /* RFC 4954 4: an empty initial response */
        smtp_auth_step(s, mech, (const unsigned char *)"", 0, true);
        return;
    }
    unsigned char *resp;
    ssize_t n = smtp_auth_decode(s, ir, irlen, &resp);
    if (n < 0)
        return;
    smtp_auth_step(s, mech, resp, (size_t)n, true);
    free(resp);
}

void smtp_auth_response(struct smtp_server *s, const char *line, size_t len)
{
    s->auth_reading = false;
    s->cmd_name = "AUTH";
    if (len == 1 && line[0] == '*') { /* RFC 4954 4: the client cancels */
        if (s->io->auth_abort)
            s->io->auth_abort(s->io->arg);
        smtp_server_reply(s, 501, "5.0.0", "AUTH aborted");
        smtp_server_set_phase(s, SMTP_PH_MISC);
        return;
    }
    unsigned char *resp;
    ssize_t n = smtp_auth_decode(s, line, len, &resp);
    if (n < 0) {
        if (s->io->auth_abort)
            s->io->auth_abort(s->io->arg);
        return;
    }
    smtp_auth_step(s, NULL, resp, (size_t)n, true);
    free(resp);
}

static void smtp_auth_failed(struct smtp_server *s)
{
    if (s->auth_failures < UINT8_MAX)
        s->auth_failures++;
    if (s->auth_failures >= SMTP_AUTH_MAX_FAILURES) {
        smtp_server_reply(s, 535, "5.7.0", "authentication failed");
        smtp_server_close(s, 421, "4.7.0", "Too many authentication failures; closing connection",
                          SMTP_AUTH_DROP_REASON);
        return;
    }
    /* Password guessing: from the third failure on, each answer costs the client a second
     * (as sendmail's and Postfix's error sleeps do), on this connection only. */
    if (s->auth_failures >= SMTP_AUTH_THROTTLE)
        smtp_server_slow_down(s);
    smtp_server_reply(s, 535, "5.7.0", "authentication failed");
}

void smtp_server_auth_done(struct smtp_server *s, enum smtp_auth_result r,
                           const unsigned char *challenge, size_t len, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state != SMTP_SRV_WAIT_AUTH)
        return;
    s->state = SMTP_SRV_CMD;
    switch (r) {
    case SMTP_AUTH_CONTINUE: {
        struct buf b;
        buf_init(&b, 0);
        if (buf_append(&b, "334 ", 4) < 0 || base64_append(&b, challenge, len) < 0 ||
            buf_append(&b, "\r\n", 2) < 0) {
            buf_free(&b);
            if (s->io->auth_abort)
                s->io->auth_abort(s->io->arg);
            smtp_server_reply(s, 454, "4.7.0", "Temporary authentication failure");
            break;
        }
        smtp_server_send(s, b.data, b.len);
        buf_free(&b);
        s->auth_reading = true;
        break;
    }
    case SMTP_AUTH_OK:
        s->authenticated = true;
        smtp_server_reply(s, 235, "2.0.0", "OK Authenticated");
        break;
    case SMTP_AUTH_FAIL:
        smtp_auth_failed(s);
        break;
    case SMTP_AUTH_TEMPFAIL:
        smtp_server_reply(s, 454, "4.7.0", "Temporary authentication failure");
        break;
    }
    if (s->state == SMTP_SRV_CLOSED)
        return;
    smtp_server_set_phase(s, SMTP_PH_MISC);
    smtp_server_run_held(s);
}

bool smtp_server_authenticated(const struct smtp_server *s)
{
    return s->authenticated;
}

bool smtp_auth_mail_allowed(struct smtp_server *s)
{
    struct smtp_auth_offer o;
    if (s->authenticated)
        return true;
    smtp_auth_offer_now(s, &o);
    if (!o.required)
        return true;
    smtp_server_cmd_error(s, 530, "5.7.0", "Authentication required");
    return false;
}
