/* policy/sender_domain.c — the sender's domain must resolve (sendmail's check_mail). */
#include "policy/sender_domain.h"

#include <stdio.h>
#include <string.h>

const char *sender_domain_to_check(const char *mailbox)
{
    const char *at = mailbox ? strrchr(mailbox, '@') : NULL;
    if (!at || !at[1] || at[1] == '[')
        return NULL;
    return at + 1;
}

int sender_domain_verdict(enum dns_status status, const char *mailbox, bool at_rcpt,
                          struct sender_domain_reply *out)
{
    switch (status) {
    case DNS_OK:
    case DNS_NULLMX: /* the domain exists; whether it takes mail is not check_mail's say */
        return 0;
    case DNS_NOTFOUND: {
        char named[300] = ""; /* at RCPT the recipient goes there */
        if (!at_rcpt)
            snprintf(named, sizeof(named), "<%.256s>... ", mailbox);
        out->code = 553;
        out->enh = "5.1.8";
        snprintf(out->text, sizeof(out->text), "%sDomain of sender address %s does not exist",
                 named, mailbox);
        return -1;
    }
    case DNS_TEMPFAIL:
        break;
    }
    out->code = 451;
    out->enh = "4.1.8";
    snprintf(out->text, sizeof(out->text), "Domain of sender address %s does not resolve", mailbox);
    return -1;
}
