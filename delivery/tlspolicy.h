/*
 * delivery/tlspolicy.h — how much TLS a delivery requires: none, may (opportunistic, the
 * default), encrypt, or verify (a certificate that chains to the trusted CAs and carries
 * the expected name).
 *
 * Two sources, as an operator migrating from sendmail has them:
 * - the YAML table delivery.tls_policy, keyed by next hop (Postfix's smtp_tls_policy_maps):
 *   "example.com" (a recipient domain routed by MX), ".example.com" (every domain below
 *   it), "[relay.example]" / "[relay.example]:2525" (a host without MX lookup, e.g. the
 *   smart host), each with a level, an optional expected name (verify) and minimum
 *   cipher bits;
 * - the access map's sendmail entries, looked up for the server actually connected to:
 *   TLS_Srv:<name> with the name, then its parent domains, then TLS_Srv:<address> (IPv4
 *   also by its 3-, 2- and 1-octet prefixes), then the bare "TLS_Srv:" default; values
 *   "ENCR:bits", "VERIFY", "VERIFY:bits", each optionally followed by "+CN" (the name
 *   must be the server's host name) or "+CN:name", and prefixed "PERM+" (a failed
 *   requirement fails the recipients instead of deferring them) or "TEMP+"; and
 *   Try_TLS:<name or address> NO (do not even try STARTTLS with that server).
 * The level is the table's (or may), raised by TLS_Srv (the stricter wins), and lowered
 * from may to none by Try_TLS: NO (Try_TLS never weakens encrypt or verify). A TLS_Srv
 * value with a requirement ringmail cannot check (CS:, CI:, ...) makes the policy
 * `unsupported`: the delivery defers, it never ignores a requirement.
 *
 * verify always checks the name (the server's host name — the MX host or the smart host —
 * unless a name is configured): sendmail's VERIFY alone checks the chain only.
 *
 * Pure: no I/O; the access map comes through a callback. Thread-safe if it is.
 */
#ifndef RINGMAIL_DELIVERY_TLSPOLICY_H
#define RINGMAIL_DELIVERY_TLSPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MAY is 0 so that zeroed settings mean sendmail's opportunistic default. */
enum tlspolicy_level { TLSPOLICY_MAY = 0, TLSPOLICY_NONE, TLSPOLICY_ENCRYPT, TLSPOLICY_VERIFY };

struct tlspolicy_entry {
    const char *dest; /* "example.com", ".example.com", "[host]", "[host]:port" */
    enum tlspolicy_level level;
    const char *match; /* verify: the name the certificate must carry; NULL = host name */
    unsigned min_bits; /* cipher strength required; 0 = any */
};

struct tlspolicy_settings {
    enum tlspolicy_level default_level; /* for destinations not in the table: may */
    const struct tlspolicy_entry *entries;
    size_t n_entries;
    /* The access map's value for exactly `key` ("TLS_Srv:mx.example.com",
     * "Try_TLS:192.0.2.1"), or NULL; read before the next call. NULL = no access map. */
    const char *(*access)(void *arg, const char *key);
    void *access_arg;
};

#define TLSPOLICY_NAME_MAX 256

struct tlspolicy {
    enum tlspolicy_level level;
    char match[TLSPOLICY_NAME_MAX]; /* verify: expected name; "" = the server's host name */
    unsigned min_bits;
    bool perm;                            /* TLS_Srv PERM+: a requirement not met fails (5.7.10) */
    bool unsupported;                     /* a TLS_Srv requirement ringmail cannot check: defer */
    char source[TLSPOLICY_NAME_MAX + 16]; /* "tls_policy example.com", "TLS_Srv:mx.x",
                                             "default": what set the level, for the log */
};

/* The policy for a next hop: route host and port, `mx` as in struct route. */
void tlspolicy_for_destination(const struct tlspolicy_settings *s, const char *host, bool mx,
                               uint16_t port, struct tlspolicy *out);
/* Refines `p` for the server connected to (its host name and address text) with the access
 * map's TLS_Srv: and Try_TLS: entries. */
void tlspolicy_for_server(const struct tlspolicy_settings *s, const char *host, const char *addr,
                          struct tlspolicy *p);

/* "none", "may", "encrypt", "verify"; and back (-1 for an unknown word), for the
 * configuration. */
const char *tlspolicy_level_name(enum tlspolicy_level l);
int tlspolicy_level_parse(const char *word, enum tlspolicy_level *out);

#endif
