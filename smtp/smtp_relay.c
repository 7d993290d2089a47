/*
 * smtp/smtp_relay.c — the relay decision for one recipient.
 *
 * Order matters: the domain checks come first so that a relay_from client sending to a
 * local domain is still delivered locally, and they are skipped for any path that asks
 * for routing, because the classic relay tricks (user%host@local, host!user@local,
 * "user@host"@local, @local:user@host) all name a local domain while meaning another
 * host (RFC 5321 3.6.1 and Appendix C; RFC 2505 2.8, 2.9).
 */
#include "smtp/smtp_relay.h"

#include <stddef.h>

bool smtp_relay_is_local_domain(const struct smtp_relay_policy *p, const char *domain)
{
    if (domain == NULL || domain[0] == '\0')
        return false;
    for (size_t i = 0; i < p->n_local_domains; i++)
        if (smtp_domain_equal(domain, p->local_domains[i]))
            return true;
    return false;
}

static bool relay_is_relay_domain(const struct smtp_relay_policy *p, const char *domain)
{
    for (size_t i = 0; i < p->n_relay_domains; i++)
        if (smtp_domain_within(domain, p->relay_domains[i]))
            return true;
    return false;
}

static bool relay_client_allowed(const struct smtp_relay_policy *p, const struct sockaddr *client)
{
    if (client == NULL)
        return false;
    for (size_t i = 0; i < p->n_relay_from; i++)
        if (netaddr_prefix_match(&p->relay_from[i], client))
            return true;
    return false;
}

enum smtp_relay_verdict smtp_relay_check(const struct smtp_relay_policy *p,
                                         const struct sockaddr *client,
                                         const struct smtp_path *rcpt)
{
    if (rcpt == NULL || rcpt->null)
        return SMTP_RELAY_DENIED;
    /* An address literal names a host, not a domain we serve: the lists hold domain
     * names, and "[192.0.2.1]" must not match an entry by accident. */
    if (!smtp_path_has_routing(rcpt) && !rcpt->addr_literal) {
        /* RFC 5321 4.5.1: <Postmaster> without a domain is this host's postmaster */
        if (rcpt->domain[0] == '\0')
            return SMTP_RELAY_LOCAL;
        if (smtp_relay_is_local_domain(p, rcpt->domain))
            return SMTP_RELAY_LOCAL;
        if (relay_is_relay_domain(p, rcpt->domain))
            return SMTP_RELAY_DOMAIN;
    }
    if (relay_client_allowed(p, client))
        return SMTP_RELAY_CLIENT;
    return SMTP_RELAY_DENIED;
}
