/*
 * smtp/smtp_relay.h — the relay decision for one recipient (no open relay, DESIGN.md).
 *
 * A recipient is accepted when its domain is a local domain, or equal to or below a relay
 * domain, or when the client address is inside one of the relay_from networks; anything
 * else is "550 5.7.1 <addr>... Relaying denied". A recipient whose path asks for further
 * routing (smtp_path_has_routing) is never accepted on the strength of a local or relay
 * domain: only a relay_from client may use it. Pure; the policy struct is owned by the
 * caller and only read.
 */
#ifndef RINGMAIL_SMTP_RELAY_H
#define RINGMAIL_SMTP_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "smtp/smtp_addr.h"
#include "util/netaddr.h"

struct smtp_relay_policy {
    const char *const *local_domains; /* exact match, case-insensitive */
    size_t n_local_domains;
    const char *const *relay_domains; /* the domain and its subdomains */
    size_t n_relay_domains;
    const struct netaddr_prefix *relay_from;
    size_t n_relay_from;
};

enum smtp_relay_verdict {
    SMTP_RELAY_LOCAL,  /* domain is ours */
    SMTP_RELAY_DOMAIN, /* domain is a relay domain */
    SMTP_RELAY_CLIENT, /* client may relay anywhere */
    SMTP_RELAY_DENIED, /* 550 5.7.1 Relaying denied */
};

enum smtp_relay_verdict smtp_relay_check(const struct smtp_relay_policy *p,
                                         const struct sockaddr *client,
                                         const struct smtp_path *rcpt);
bool smtp_relay_is_local_domain(const struct smtp_relay_policy *p, const char *domain);

#endif
