/*
 * compat/map_access.h — sendmail's access map (FEATURE(access_db)) from its text source.
 *
 * A line is "[Tag:]key value". Tags Connect:, From:, To: (and any other sendmail tag such
 * as GreetPause:, ClientRate:, ClientConn:, Spam:, kept with its raw value); a key without
 * a tag applies to Connect, From and To alike. Keys: a host or domain (example.com also
 * covers its subdomains), a partial IPv4 address on octet boundaries (10.1 = 10.1.0.0/16),
 * an IPv6 address or prefix written IPv6:2001:db8, user@domain, or user@ (that local part
 * anywhere). Values for Connect/From/To and bare keys: OK, RELAY, REJECT, DISCARD, SKIP,
 * ERROR:"550 text", ERROR:5.7.1:550 text (QUARANTINE:reason is kept as a raw value); any
 * other value there is an error naming file and line. Keys are lower-cased.
 *
 * Lookups follow sendmail's order: the most specific key first, and at each step the
 * tagged key before the bare one. Pure functions over the parsed map. access_parse builds a
 * hash index by key, so one probe costs the same with 100 entries or 100,000 (a real map
 * lists spam senders by the ten thousand, and a MAIL or RCPT probes it several times).
 */
#ifndef RINGMAIL_COMPAT_MAP_ACCESS_H
#define RINGMAIL_COMPAT_MAP_ACCESS_H

#include <stddef.h>

#include "util/buf.h"

enum access_action {
    ACCESS_OK,
    ACCESS_RELAY,
    ACCESS_REJECT,
    ACCESS_DISCARD,
    ACCESS_SKIP,
    ACCESS_ERROR,
    ACCESS_VALUE /* another tag's value, or QUARANTINE: kept as written in `value` */
};

struct access_entry {
    char *tag; /* "connect", "from", "to", "greetpause", ...; NULL for a bare key */
    char *key; /* lower-cased; IPv6 keys keep their "ipv6:" prefix */
    enum access_action action;
    char code[4], dsn[16]; /* ACCESS_ERROR: "550", "5.7.1" or "" */
    char *text;            /* ACCESS_ERROR: the message; else NULL */
    char *value;           /* the right-hand side as written */
    unsigned line;
};

struct access_map {
    struct access_entry *v;
    size_t n, cap;
    /* The index: chains of entry numbers + 1 (0 ends a chain) by the hash of the key, each
     * from the last entry to the first, as the "last entry wins" rule reads them. */
    size_t *head, *next, mask;
};

/* Parses the text source; 0, or -1 with "file:line: why" in err. The map must be freed
 * with access_free() in both cases. */
int access_parse(const char *file, const char *text, size_t len, struct access_map *out, char *err,
                 size_t errlen);
void access_free(struct access_map *m);

/* A client host name or a domain: host, then each parent domain. `tag` is "connect",
 * "from", "to" or another tag (then bare keys do not apply). NULL when nothing matches. */
const struct access_entry *access_lookup_host(const struct access_map *m, const char *tag,
                                              const char *host);
/* A client address as text ("192.0.2.7", "2001:db8::1"): the whole address, then shorter
 * prefixes (192.0.2, 192.0, 192 / ipv6:2001:db8:0:1, ...). NULL when nothing matches.
 * ip "" finds a tag's default: its entry with an empty key ("ClientRate:  10"), which
 * tags other than Connect:, From: and To: may have. */
const struct access_entry *access_lookup_ip(const struct access_map *m, const char *tag,
                                            const char *ip);
/* One key as written (no parents, no prefixes): the tagged entry, else for Connect/From/To
 * the bare one; the last entry for a key wins. NULL when nothing matches. */
const struct access_entry *access_lookup_key(const struct access_map *m, const char *tag,
                                             const char *key);
/* An envelope address: user@domain, then the domain and its parents, then user@. */
const struct access_entry *access_lookup_address(const struct access_map *m, const char *tag,
                                                 const char *address);
/* "line tag:key action [code dsn text]" a line, for the golden files. */
void access_dump(const struct access_map *m, struct buf *out);

#endif
