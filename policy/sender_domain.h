/*
 * policy/sender_domain.h — sendmail's check of the sender's domain at MAIL: without
 * FEATURE(accept_unresolvable_domains) a domain that does not resolve is refused (proto.m4,
 * check_mail: the `resolve` host map, MX or address records). Pure: the lookup is the
 * caller's (util/dns.h, dns_resolve_exists: an MX record, else the name's addresses).
 *
 * Not looked up: the null sender <>, an address without a domain, an address literal
 * ([192.0.2.1]); the caller also skips local domains and local (submission) callers.
 * Verdicts, sendmail's words:
 * - the domain has records (an MX, a null MX, an address): accepted;
 * - NXDOMAIN, or neither MX nor address: "553 5.1.8 <a@d>... Domain of sender address a@d
 *   does not exist";
 * - the lookup failed (SERVFAIL, timeout): "451 4.1.8 Domain of sender address a@d does
 *   not resolve".
 * With FEATURE(delay_checks) the refusal is a RCPT's (proto.m4's check_rcpt runs
 * check_mail): the text is then without the "<a@d>... ", where the recipient goes.
 */
#ifndef RINGMAIL_POLICY_SENDER_DOMAIN_H
#define RINGMAIL_POLICY_SENDER_DOMAIN_H

#include <stdbool.h>

#include "util/dns.h"

/* The domain of `mailbox` to look up (a pointer into it), or NULL when there is none. */
const char *sender_domain_to_check(const char *mailbox);

struct sender_domain_reply {
    int code;        /* 553 or 451 */
    const char *enh; /* "5.1.8" or "4.1.8" */
    char text[600];
};

/* 0 when the lookup's outcome accepts the sender, else -1 with the refusal in *out, for
 * MAIL (`at_rcpt` false) or for each RCPT. */
int sender_domain_verdict(enum dns_status status, const char *mailbox, bool at_rcpt,
                          struct sender_domain_reply *out);

#endif
