/*
 * delivery/route.h — where one recipient goes: local delivery, an SMTP next hop, or an
 * error, decided as sendmail's rulesets 0 and 5 decide it.
 *
 * Order (sendmail's Parse1 and Local_localaddr):
 *   1. an address in a local domain (class w: local_domains) — or with no domain — is
 *      local; with mail_hub (MAIL_HUB) it goes to the hub instead, unless its local part
 *      is one of local_users (class L, LOCAL_USER);
 *   2. otherwise the mailertable, the domain itself first, then ".parent" keys from the
 *      most to the least specific, then ".";
 *   3. otherwise smart_host (SMART_HOST);
 *   4. otherwise the domain's MX (mailer esmtp).
 * Values (mailertable, smart_host, mail_hub): "mailer:host" or "host"; host "[name]" or an
 * address literal means no MX lookup; ":port" after it (host:2525, [host]:2525) sets the
 * port. The smtp mailers are smtp, esmtp, smtp8, dsmtp and relay (all speak ESMTP with a
 * HELO fallback). The lmtp mailer (LMTP, RFC 2033; Postfix's lmtp: transport) takes
 * "lmtp:unix:/path" or "lmtp:/path" (a unix socket), "lmtp:inet:host:port", "lmtp:host:port",
 * "lmtp:[host]:port" or "lmtp:host" (port 24), never with an MX lookup; it is a ROUTE_SMTP
 * route with mailer "lmtp" that outbound delivers with LHLO. "local:" and "local:user" are
 * local; "error:5.7.1:550 text",
 * "error:550 text" and sendmail's named errors ("error:nouser", "error:nohost text", ...)
 * are errors; any other mailer defers with 4.3.5 (ringmail has no such mailer).
 * smart_host and mail_hub default to the relay mailer, as sendmail's.
 *
 * Pure: no DNS, no I/O, no allocation; the mailertable reaches it through a callback
 * (delivery/ never sees compat/'s maps). Thread-safe if the callback is.
 */
#ifndef RINGMAIL_DELIVERY_ROUTE_H
#define RINGMAIL_DELIVERY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum route_kind { ROUTE_LOCAL, ROUTE_SMTP, ROUTE_ERROR };

#define ROUTE_HOST_MAX  256
#define ROUTE_LMTP_PORT 24 /* lmtp:host without a port (RFC 2033: lmtp's assigned port) */

struct route {
    enum route_kind kind;
    char mailer[16];           /* "esmtp", "relay", "smtp", ...; "local"; "error" */
    char host[ROUTE_HOST_MAX]; /* SMTP: the domain (mx) or host ([host], without brackets),
                                  or with unix_socket the socket's path;
                                  LOCAL: the user of "local:user", else "" */
    uint16_t port;             /* 0 = 25 */
    bool mx;                   /* look up MX records for host (false for [host] and literals) */
    bool unix_socket;          /* lmtp:unix:/path: host is the path, no DNS, no port */
    /* ROUTE_ERROR: the reply ("550", "5.1.1", "User unknown"); a 4xx code defers. */
    char code[4], status[8], text[256];
    const char *source; /* why: "local_domains", "mail_hub", "mailertable", "smart_host",
                           "mx" (static strings, for the log) */
};

struct route_settings {
    const char *const *local_domains; /* class w, compared without case */
    size_t n_local_domains;
    const char *const *local_users; /* class L: stays local despite mail_hub */
    size_t n_local_users;
    const char *smart_host; /* SMART_HOST; NULL or "" = none */
    const char *mail_hub;   /* MAIL_HUB; NULL or "" = none */
    /* The mailertable's value for exactly `key` (a lower-case domain, ".parent" or "."),
     * or NULL. The returned string is read before the next call. NULL = no mailertable. */
    const char *(*mailertable)(void *arg, const char *key);
    void *mailertable_arg;
};

/* Routes the recipient `rcpt` ("user@domain", "user", "user@[192.0.2.1]"). Always fills
 * `out`; a malformed mailertable value or an over-long domain gives a ROUTE_ERROR (4.3.5
 * for the configuration, so nothing bounces because of a typo). */
void route_resolve(const struct route_settings *s, const char *rcpt, struct route *out);

/* Parses a mailertable / smart_host / mail_hub value (see the top) with `default_mailer`
 * for a value without one ("relay" for smart_host and mail_hub; NULL = a mailer is
 * required). `domain` fills an empty host ("esmtp:"), as sendmail uses the recipient's
 * domain then. 0, or -1 with why in `err` (for the configuration check at start-up). */
int route_parse(const char *value, const char *default_mailer, const char *domain,
                struct route *out, char *err, size_t errlen);

/* The next-hop key that groups recipients into one transaction and names a destination for
 * limits, host status and the connection cache: "esmtp:example.com" (MX),
 * "relay:[relay.example]", "esmtp:[relay.example]:2525", "lmtp:unix:/run/lmtp",
 * "lmtp:[127.0.0.1]:24". Only for ROUTE_SMTP. Returns the
 * length (truncated to outlen like snprintf). */
size_t route_key(const struct route *r, char *out, size_t outlen);

#endif
