/*
 * smtp/smtp_server_check.c — MAIL whose check is answered later: io->check_mail returned
 * "pending" (a DNS lookup of the sender's domain). The server keeps the command, holds the
 * input that follows (as while a commit is in flight) and goes on when the caller calls
 * smtp_server_check_done() with the verdict.
 */
#include "smtp/smtp_server_int.h"

#include <stdlib.h>
#include <string.h>

void smtp_server_check_wait(struct smtp_server *s, const char *mailbox,
                            struct smtp_mail_params *params)
{
    s->check_sender = strdup(mailbox);
    if (!s->check_sender) {
        smtp_mail_params_free(params);
        smtp_server_reply(s, 452, "4.3.1", "Insufficient system storage");
        smtp_server_set_phase(s, SMTP_PH_MISC);
        return;
    }
    s->check_params = *params;
    s->state = SMTP_SRV_WAIT_CHECK;
}

void smtp_server_check_free(struct smtp_server *s)
{
    if (!s->check_sender)
        return;
    free(s->check_sender);
    s->check_sender = NULL;
    smtp_mail_params_free(&s->check_params);
}

void smtp_server_check_done(struct smtp_server *s, const struct smtp_addr_error *err,
                            uint64_t now_ms)
{
    s->now = now_ms;
    if (s->state != SMTP_SRV_WAIT_CHECK)
        return;
    s->state = SMTP_SRV_CMD;
    char *sender = s->check_sender;
    struct smtp_mail_params params = s->check_params;
    s->check_sender = NULL;
    memset(&s->check_params, 0, sizeof(s->check_params));
    s->cmd_name = "MAIL"; /* the REJECT event names the command, as during dispatch */
    smtp_cmd_mail_decided(s, sender, &params, err);
    s->cmd_name = NULL;
    free(sender);
    smtp_server_run_held(s);
}
