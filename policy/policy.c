/*
 * policy/policy.c — the stages: sendmail's check_relay, check_mail and check_rcpt
 * (proto.m4's Basic_check_relay, Basic_check_mail, Rcpt_ok/Relay_ok and, under
 * FEATURE(delay_checks), check_rcpt calling the other two).
 */
#include "policy/policy.h"
#include "policy/policy_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void policy_verdict_init(struct policy_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->action = POLICY_ACCEPT;
}

/* A DISCARD or QUARANTINE: found at any stage holds for the whole transaction. */
static void policy_hold(struct policy_session *ps, const struct access_entry *e,
                        const struct policy_verdict *v)
{
    if (v->action == POLICY_DISCARD)
        ps->discard = true;
    else if (v->action == POLICY_QUARANTINE && !ps->quarantine)
        ps->quarantine = e->value + 11; /* after "QUARANTINE:" */
}

/* An entry's verdict at `ruleset`, remembered for the transaction when it is not a refusal;
 * true when it decided (the stage's checks end). */
static bool policy_apply(struct policy_session *ps, const struct access_entry *e,
                         const char *ruleset, const char *addr, const char *enh, const char *text,
                         struct policy_verdict *v)
{
    if (policy_entry_accepts(e))
        return true;
    if (!policy_entry_verdict(e, ruleset, addr, enh, text, v))
        return false;
    policy_hold(ps, e, v);
    return true;
}

void policy_connect(const struct policy_settings *set, const struct policy_client *c,
                    struct policy_session *ps, struct policy_verdict *v)
{
    policy_verdict_init(v);
    memset(ps, 0, sizeof(*ps));
    if (c->local)
        return;
    const struct access_entry *e = policy_search_client(set->access, c);
    ps->connect = e;
    ps->relay = v->relay = e && e->action == ACCESS_RELAY;
    /* delay_checks: check_rcpt runs check_relay, recipient by recipient */
    if (!set->delay_checks)
        policy_entry_verdict(e, "check_relay", NULL, "5.7.1", "Access denied", v);
}

/* A refusal that is no access entry's (a text longer than the verdict's is cut). */
static void policy_reject(struct policy_verdict *v, const char *ruleset, int code, const char *enh,
                          const char *text)
{
    v->action = POLICY_REJECT;
    v->code = code;
    v->ruleset = ruleset;
    snprintf(v->enh, sizeof(v->enh), "%s", enh);
    snprintf(v->text, sizeof(v->text), "%.*s", (int)sizeof(v->text) - 1, text);
}

/* ratecontrol's or conncontrol's refusal: sendmail's `$#error $@ 4.3.2 $: 452 <text>`. */
static void policy_limit_verdict(int code, const char *text, const char *ruleset,
                                 struct policy_verdict *v)
{
    policy_reject(v, ruleset, code, "4.3.2", text);
}

void policy_client_limited(const struct policy_settings *set, struct policy_session *ps, bool rate,
                           struct policy_verdict *v)
{
    const struct clientlimit_mode *m = rate ? &set->ratecontrol : &set->conncontrol;
    const char *text = rate ? CLIENTLIMIT_RATE_TEXT : CLIENTLIMIT_CONNS_TEXT;
    bool at_rcpt = set->delay_checks && !m->nodelay;
    policy_verdict_init(v);
    if (ps->limited || (!m->nodelay && policy_entry_accepts(ps->connect)))
        return;
    if (m->terminate) { /* at RCPT too, sendmail's 421 ends the session: here at once */
        policy_limit_verdict(421, text, "check_relay", v);
        return;
    }
    ps->limited = text;
    ps->limited_at_rcpt = at_rcpt;
    if (!at_rcpt)
        policy_limit_verdict(452, text, "check_relay", v);
}

void policy_mail(const struct policy_settings *set, const struct policy_client *c,
                 struct policy_session *ps, const char *sender, struct policy_verdict *v)
{
    (void)c; /* every client's sender is checked alike; the stage keeps its client for the
              * checks to come (milters see it) */
    struct policy_verdict connect;
    policy_verdict_init(v);
    ps->mail = NULL;
    ps->sender_refused = NULL;
    ps->discard = false;
    ps->quarantine = NULL;
    if (ps->limited && !ps->limited_at_rcpt) { /* logged at connect (check_relay) */
        policy_limit_verdict(452, ps->limited, NULL, v);
        return;
    }
    /* a connection's DISCARD or QUARANTINE: holds every one of its messages */
    if (!set->delay_checks &&
        policy_entry_verdict(ps->connect, "check_relay", NULL, "5.7.1", "Access denied", &connect))
        policy_hold(ps, ps->connect, &connect);
    if (!sender[0]) /* the null sender is never looked up (proto.m4: R<> $@ <OK>) */
        return;
    const struct access_entry *e = policy_search(set->access, "from", sender, "FUD");
    if (set->delay_checks) {
        ps->mail = e;
        return;
    }
    policy_apply(ps, e, "check_mail", sender, "5.7.1", "Access denied", v);
}

static bool policy_trusted_auth(const struct policy_settings *set, const struct policy_client *c)
{
    for (size_t i = 0; c->auth_mech && i < set->n_trust_mechs; i++)
        if (strcasecmp(set->trust_mechs[i], c->auth_mech) == 0)
            return true;
    return false;
}

/* To:domain RELAY (or a bare domain key) opens that domain as relay_domains does;
 * To:user@domain that one address. Never `user@` (that local part at every domain would be
 * an open relay), and never for a path that asks for further routing (user%host@domain and
 * the other relay tricks, smtp_relay.h), whatever the domain. */
static bool policy_to_relays(const struct policy_settings *set, const struct smtp_path *rcpt)
{
    if (smtp_path_has_routing(rcpt) || rcpt->addr_literal)
        return false;
    const struct access_entry *e = policy_search(set->access, "to", rcpt->mailbox, "FD");
    return e && e->action == ACCESS_RELAY;
}

static bool policy_relays(const struct policy_settings *set, const struct policy_client *c,
                          const struct policy_session *ps, const struct smtp_path *rcpt)
{
    return c->local || policy_trusted_auth(set, c) || ps->relay ||
           smtp_relay_check(set->relay, c->sa, rcpt) != SMTP_RELAY_DENIED ||
           policy_to_relays(set, rcpt);
}

/* delay_checks with friend or hater: whether this recipient is spared the sender's and the
 * client's checks (proto.m4: Spam: entries, tagged only, F D U for local recipients). */
static bool policy_spared(const struct policy_settings *set, const char *rcpt, bool local)
{
    if (set->spam == POLICY_SPAM_ALL)
        return false;
    const struct access_entry *e = policy_search(set->access, "spam", rcpt, local ? "FDU" : "FD");
    const char *want = set->spam == POLICY_SPAM_FRIEND ? "FRIEND" : "HATER";
    bool listed = e && strcasecmp(e->value, want) == 0;
    return set->spam == POLICY_SPAM_FRIEND ? listed : !listed;
}

void policy_rcpt(const struct policy_settings *set, const struct policy_client *c,
                 struct policy_session *ps, const struct smtp_path *rcpt, struct policy_verdict *v)
{
    policy_verdict_init(v);
    if (rcpt->null)
        return;
    const char *addr = rcpt->mailbox, *at = strrchr(addr, '@');
    bool local = !at || smtp_relay_is_local_domain(set->relay, at + 1);
    /* FEATURE(blocklist_recipients): user@ keys only for local recipients */
    if (set->blocklist_recipients &&
        policy_apply(ps, policy_search(set->access, "to", addr, local ? "FUD" : "FD"), "check_rcpt",
                     NULL, "5.2.1", "Mailbox disabled for this recipient", v) &&
        v->action != POLICY_ACCEPT)
        return;
    if (!policy_relays(set, c, ps, rcpt)) {
        policy_reject(v, "check_rcpt", 550, "5.7.1",
                      c->auth_offered ? "Relaying denied. Proper authentication required."
                                      : "Relaying denied");
        return;
    }
    /* an authenticated client ends the checks ($# RELAY in Rcpt_ok) */
    if (!set->delay_checks || policy_trusted_auth(set, c) || policy_spared(set, addr, local))
        return;
    if (policy_apply(ps, ps->mail, "check_rcpt", NULL, "5.7.1", "Access denied", v))
        return;
    if (ps->sender_refused) {
        const struct sender_domain_reply *r = ps->sender_refused;
        policy_reject(v, "check_rcpt", r->code, r->enh, r->text);
        return;
    }
    if (policy_apply(ps, ps->connect, "check_rcpt", NULL, "5.7.1", "Access denied", v))
        return;
    if (ps->limited) /* ratecontrol/conncontrol after the access lookups (Basic_check_relay) */
        policy_limit_verdict(452, ps->limited, "check_rcpt", v);
}

void policy_data(const struct policy_session *ps, struct policy_verdict *v)
{
    policy_verdict_init(v);
    if (ps->discard) {
        v->action = POLICY_DISCARD;
    } else if (ps->quarantine) {
        v->action = POLICY_QUARANTINE;
        snprintf(v->text, sizeof(v->text), "%s", ps->quarantine);
    }
}
