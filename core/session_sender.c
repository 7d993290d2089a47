/*
 * core/session_sender.c — the lookup of the sender's domain at MAIL (policy/sender_domain.h)
 * on the worker's resolver: check_mail answers "pending" and the verdict reaches the state
 * machine through session_mail_checked() when the lookup ends. With delay_checks the MAIL
 * is accepted and a refusal kept for the policy's RCPT stage (s->pol.sender_refused), as
 * sendmail's check_rcpt runs check_mail: a Spam: friend still gets the mail.
 *
 * Owns the one lookup a session may have in flight (struct session_sender), cancelled when
 * the connection ends, and the kept refusal (s->sender_refused, reused by later MAILs).
 * With the worker's resolver gone (the worker drains) the sender is not looked up.
 */
#include "core/session_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/localrcpt.h"
#include "policy/sender_domain.h"
#include "util/dns.h"
#include "util/log.h"

struct session_sender {
    struct session *s;
    struct dns_query *q;
    char mailbox[]; /* the sender, for the reply */
};

static void session_sender_answered(void *arg, const struct dns_mx_result *r)
{
    struct session_sender *c = arg;
    struct session *s = c->s;
    struct sender_domain_reply reply;
    bool delay = s->rc->policy.delay_checks;
    s->sender_check = NULL;
    if (sender_domain_verdict(r->status, c->mailbox, delay, &reply) == 0) {
        session_mail_checked(s, NULL);
        free(c);
        return;
    }
    if (r->status == DNS_TEMPFAIL)
        log_debug("%s: sender %s: %s", s->qid, c->mailbox, r->error);
    if (delay && (s->sender_refused || (s->sender_refused = malloc(sizeof(*s->sender_refused))))) {
        *s->sender_refused = reply;
        s->pol.sender_refused = s->sender_refused;
        session_mail_checked(s, NULL);
    } else {
        /* (delay_checks without the memory to keep the refusal: given now, as without) */
        if (delay)
            sender_domain_verdict(r->status, c->mailbox, false, &reply);
        struct smtp_addr_error err = {reply.code, reply.enh, reply.text};
        s->verdict.ruleset = "check_mail";
        session_mail_checked(s, &err);
    }
    free(c);
}

int session_sender_check(struct session *s, const struct smtp_path *sender)
{
    const struct config *cfg = s->rc->cfg;
    const char *domain = sender_domain_to_check(sender->mailbox);
    if (s->local || cfg->checks.accept_unresolvable_domains || !domain || !s->dw->dns ||
        localrcpt_is_local(cfg, sender->mailbox))
        return 0;
    size_t len = strlen(sender->mailbox);
    struct session_sender *c = malloc(sizeof(*c) + len + 1);
    if (!c)
        return 0; /* out of memory: accepted unchecked, as sendmail when its map fails */
    c->s = s;
    memcpy(c->mailbox, sender->mailbox, len + 1);
    if (!(c->q = dns_resolve_exists(s->dw->dns, domain, session_sender_answered, c))) {
        free(c);
        return 0;
    }
    s->sender_check = c;
    return 1;
}

void session_sender_free(struct session *s)
{
    free(s->sender_refused);
    s->sender_refused = NULL;
    s->pol.sender_refused = NULL;
    struct session_sender *c = s->sender_check;
    if (!c)
        return;
    if (s->dw->dns) /* else dns_free has freed the query already */
        dns_cancel(c->q);
    free(c);
    s->sender_check = NULL;
}
