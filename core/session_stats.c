/*
 * core/session_stats.c — which mailer a session's events are counted under in the
 * statistics file (queue/mailstats.h), as sendmail's markstats() counts them under the
 * sender's mailer (e->e_from.q_mailer): the mailer its address resolves to.
 */
#include "core/localrcpt.h"
#include "core/session_int.h"
#include "smtp/smtp_server.h"

const char *session_mailer_of(const struct session *s, const char *addr)
{
    if (!addr)
        return NULL;
    return !addr[0] || localrcpt_is_local(s->rc->cfg, addr) ? "local" : "esmtp";
}

const char *session_stats_mailer(const struct session *s, const char *checked)
{
    const struct smtp_transaction *t = s->smtp ? smtp_server_transaction(s->smtp) : NULL;
    return session_mailer_of(s, t && t->sender ? t->sender : checked);
}
