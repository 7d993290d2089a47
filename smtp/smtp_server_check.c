/*
 * smtp/smtp_server_check.c — commands whose check is answered later: a hook (check_helo,
 * check_mail, check_rcpt, check_data) returned "pending" because a lookup or a filter
 * answers asynchronously. The server keeps a copy of what the command needs, holds the
 * input that follows (as while a commit is in flight) and goes on when the caller calls
 * smtp_server_check_done*() with the verdict; the command's own file then answers it
 * exactly as it answers a verdict given at once.
 */
#include "smtp/smtp_server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a refusal says where the hook left it unsaid. */
static const struct smtp_addr_error smtp_check_defaults[] = {
    [SMTP_CHECK_HELO] = {550, "5.7.1", "Command rejected"},
    [SMTP_CHECK_MAIL] = {452, "4.3.1", "Insufficient system storage"},
    [SMTP_CHECK_RCPT] = {550, "5.7.1", "Recipient refused"},
    [SMTP_CHECK_DATA] = {550, "5.7.1", "Command rejected"},
    [SMTP_CHECK_BDAT] = {550, "5.7.1", "Command rejected"},
};

size_t smtp_server_check_refusal(char out[SMTP_REPLY_LINE], enum smtp_check_step step,
                                 const struct smtp_addr_error *err, const char *mailbox)
{
    const struct smtp_addr_error *def = &smtp_check_defaults[step];
    const char *reason = err->reason ? err->reason : def->reason;
    char text[SMTP_REPLY_LINE];
    if (mailbox)
        snprintf(text, sizeof(text), "<%s>... %s", mailbox, reason);
    else
        snprintf(text, sizeof(text), "%s", reason);
    /* A reason may quote what a filter or the client said: no line end may reach the reply.
     * 8-bit octets stay (an SMTPUTF8 mailbox). */
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return smtp_reply_format(out, SMTP_REPLY_LINE, err->code ? err->code : def->code,
                             err->enh ? err->enh : def->enh, text);
}

void smtp_server_check_wait(struct smtp_server *s, enum smtp_check_step step,
                            const struct smtp_check_args *args)
{
    if (args) {
        size_t nlen = strlen(args->name);
        struct smtp_check *c = malloc(sizeof(*c) + nlen + 1 + args->rawlen + 1);
        if (!c) {
            if (args->mail)
                smtp_mail_params_free(args->mail);
            smtp_server_reply(s, 452, "4.3.1", "Insufficient system storage");
            smtp_server_set_phase(s, SMTP_PH_MISC);
            return;
        }
        memset(c, 0, sizeof(*c));
        c->esmtp = args->esmtp;
        c->name = memcpy(c->text, args->name, nlen + 1);
        c->raw = c->name + nlen + 1;
        if (args->rawlen)
            memcpy(c->raw, args->raw, args->rawlen);
        c->raw[args->rawlen] = '\0';
        if (args->mail)
            c->params.mail = *args->mail;
        else if (args->rcpt)
            c->params.rcpt = *args->rcpt;
        s->check = c;
    }
    s->check_step = (uint8_t)step;
    s->state = SMTP_SRV_WAIT_CHECK;
}

void smtp_server_check_free(struct smtp_server *s)
{
    if (!s->check)
        return;
    if (s->check_step == SMTP_CHECK_MAIL)
        smtp_mail_params_free(&s->check->params.mail);
    free(s->check);
    s->check = NULL;
}

/* The verdict (`reply` NULL: accepted) goes to the command, then the held input runs. */
static void smtp_server_check_decide(struct smtp_server *s, const char *reply, size_t len)
{
    struct smtp_check *c = s->check;
    s->check = NULL;
    s->state = SMTP_SRV_CMD;
    /* the REJECT event names the command, as during dispatch */
    switch ((enum smtp_check_step)s->check_step) {
    case SMTP_CHECK_HELO:
        s->cmd_name = c->esmtp ? "EHLO" : "HELO";
        smtp_cmd_hello_decided(s, c->name, c->esmtp, reply, len);
        break;
    case SMTP_CHECK_MAIL:
        s->cmd_name = "MAIL";
        smtp_cmd_mail_decided(s, c->name, &c->params.mail, reply, len);
        break;
    case SMTP_CHECK_RCPT:
        s->cmd_name = "RCPT";
        smtp_cmd_rcpt_decided(s, c->name, c->raw, strlen(c->raw), &c->params.rcpt, reply, len);
        break;
    case SMTP_CHECK_DATA:
        s->cmd_name = "DATA";
        smtp_server_data_decided(s, reply, len);
        break;
    case SMTP_CHECK_BDAT:
        s->cmd_name = "BDAT";
        smtp_server_bdat_decided(s, reply, len);
        break;
    }
    s->cmd_name = NULL;
    free(c);
    smtp_server_run_held(s);
}

void smtp_server_check_done(struct smtp_server *s, const struct smtp_addr_error *err,
                            uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state != SMTP_SRV_WAIT_CHECK)
        return;
    if (!err) {
        smtp_server_check_decide(s, NULL, 0);
        return;
    }
    char line[SMTP_REPLY_LINE];
    enum smtp_check_step step = s->check_step;
    size_t n =
        smtp_server_check_refusal(line, step, err, step == SMTP_CHECK_RCPT ? s->check->name : NULL);
    smtp_server_check_decide(s, line, n);
}

void smtp_server_check_done_reply(struct smtp_server *s, const char *reply, uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state != SMTP_SRV_WAIT_CHECK)
        return;
    struct buf tmp;
    size_t n;
    buf_init(&tmp, 0);
    const char *line = smtp_server_verbatim(&tmp, reply, &n);
    smtp_server_check_decide(s, line, n);
    buf_free(&tmp);
}
