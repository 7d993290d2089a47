/*
 * policy/policy.h — what a client may do, stage by stage: sendmail's check_relay (connect),
 * check_mail (MAIL), check_rcpt (RCPT) and what the transaction decided for its end (DISCARD,
 * QUARANTINE), from the access map (compat/map_access.h), the relay rules
 * (smtp/smtp_relay.h) and the client's authentication.
 *
 * Pure: no I/O, no clock, no socket, no allocation. The session glue fills a policy_client
 * for its connection, keeps one policy_session per connection, and asks for a verdict at
 * each stage; it sends the reply and writes the log line the verdict describes. Everything
 * here only reads the settings and the client; the session struct points into the access
 * map, which must outlive it (the session holds the configuration it was started with).
 *
 * FEATURE(delay_checks): the connect and MAIL verdicts are kept and applied at RCPT, so a
 * refusal is a RCPT refusal (and a recipient with a `Spam:` FRIEND entry, or without a
 * HATER one, is spared them, as the feature's argument says).
 */
#ifndef RINGMAIL_POLICY_POLICY_H
#define RINGMAIL_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "compat/map_access.h"
#include "policy/clientlimit.h"
#include "policy/sender_domain.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_relay.h"

/* FEATURE(delay_checks)'s argument: none (every recipient gets the checks), `friend`
 * (Spam:addr FRIEND spares that recipient) or `hater` (only Spam:addr HATER gets them). */
enum policy_spam { POLICY_SPAM_ALL, POLICY_SPAM_FRIEND, POLICY_SPAM_HATER };

struct policy_settings {
    const struct access_map *access; /* may be empty */
    const struct smtp_relay_policy *relay;
    const char *const *trust_mechs; /* TRUST_AUTH_MECH: a client that used one may relay */
    size_t n_trust_mechs;
    bool delay_checks;
    enum policy_spam spam;
    bool blocklist_recipients; /* To: entries refuse recipients (sendmail needs the feature) */
    struct clientlimit_mode ratecontrol, conncontrol; /* how ClientRate:/ClientConn: refuse */
};

/* What the glue knows about the client; every pointer is the glue's and only read. */
struct policy_client {
    const char *addr; /* "192.0.2.7", "2001:db8::1" */
    const struct sockaddr *sa;
    const char *host;      /* forward-confirmed host name, or NULL */
    bool auth_offered;     /* AUTH may relay (TRUST_AUTH_MECH): the relay refusal asks for it,
                            * as sendmail's confRELAY_MSG does under _USE_AUTH_ */
    const char *auth_mech; /* NULL unless the client authenticated */
    const char *auth_authen;
    bool local; /* a process of this host (submission socket): no Connect: lookup, and it
                 * may relay, as sendmail's MSP through its MTA; From: and To: still apply */
};

enum policy_action { POLICY_ACCEPT, POLICY_REJECT, POLICY_DISCARD, POLICY_QUARANTINE };

struct policy_verdict {
    enum policy_action action;
    bool relay;          /* connect: the client may relay (Connect: RELAY) */
    int code;            /* REJECT: 550, 553, 451 ... */
    char enh[16];        /* REJECT: "5.7.1" */
    char text[256];      /* REJECT: the reply's text after the codes; QUARANTINE: the reason */
    const char *ruleset; /* for the log line: "check_relay", "check_mail", "check_rcpt";
                          * NULL when the verdict is a plain ACCEPT */
};

/* One connection's state between stages (a few pointers; idle sessions stay small). */
struct policy_session {
    const struct access_entry *connect; /* the Connect: entry, or NULL */
    const struct access_entry *mail;    /* this transaction's From: entry, or NULL */
    bool relay;                         /* Connect: RELAY */
    bool discard;                       /* this transaction is dropped at its end */
    const char *quarantine;             /* this transaction is held, with this reason */
    const char *limited; /* over ClientRate:/ClientConn: without `terminate`: the 452's text */
    /* delay_checks: this transaction's sender domain did not resolve; the glue's, set after
     * policy_mail, refused at RCPT after the From: entry (there is none) */
    const struct sender_domain_reply *sender_refused;
    bool limited_at_rcpt; /* ... given at RCPT (delay_checks without `nodelay`), else at MAIL */
};

/* At connection. REJECT: refuse the connection (the reply's text is sendmail's, the glue
 * puts its host name in front of "Access denied"). DISCARD/QUARANTINE: every message of the
 * connection is (the glue logs the line). With delay_checks a refusal waits for RCPT and
 * the verdict is ACCEPT. */
void policy_connect(const struct policy_settings *set, const struct policy_client *c,
                    struct policy_session *ps, struct policy_verdict *v);

/* At connection, after policy_connect, for a client over its ClientRate: (`rate`) or
 * ClientConn: limit, as the feature's arguments say (policy/clientlimit.h). REJECT 421
 * (`terminate`): refuse the connection. REJECT 452: log its check_relay line and greet; the
 * session's MAIL commands get the 452 (sendmail's nullserver answers every command but
 * HELO, EHLO, NOOP, RSET and QUIT so; here MAIL, which RCPT and DATA need). ACCEPT: nothing
 * now; under delay_checks without `nodelay` each RCPT gets the 452 (ruleset check_rcpt),
 * unless a Connect: or From: entry accepts first, or a Connect: OK/RELAY entry exempts the
 * client (proto.m4 runs the limit after the access lookup unless `nodelay`). A limit already
 * found stays (the rate is checked first). */
void policy_client_limited(const struct policy_settings *set, struct policy_session *ps, bool rate,
                           struct policy_verdict *v);

/* At MAIL, for a syntactically valid sender ("" for <>); starts a transaction. REJECT's
 * text is sendmail's "<addr>... Access denied" (or the entry's ERROR: text after it). */
void policy_mail(const struct policy_settings *set, const struct policy_client *c,
                 struct policy_session *ps, const char *sender, struct policy_verdict *v);

/* At RCPT: the To: entries (blocklist_recipients), relaying, then under delay_checks the kept
 * MAIL verdicts (the From: entry, else the sender's domain) and the connect one. REJECT's text goes
 * after "<rcpt>... " (the state machine puts it there). DISCARD/QUARANTINE: the recipient is
 * accepted and the whole transaction is dropped/held (the glue logs the line). */
void policy_rcpt(const struct policy_settings *set, const struct policy_client *c,
                 struct policy_session *ps, const struct smtp_path *rcpt, struct policy_verdict *v);

/* At the end of the message: ACCEPT, DISCARD (reply 250, never queue) or QUARANTINE (queue
 * and hold, reason in v->text). */
void policy_data(const struct policy_session *ps, struct policy_verdict *v);

#endif
