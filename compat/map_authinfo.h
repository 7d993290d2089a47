/*
 * compat/map_authinfo.h — sendmail's AuthInfo: entries, the credentials ringmail uses as an
 * SMTP AUTH client: FEATURE(authinfo)'s own map, or the access map's AuthInfo: lines when
 * there is no authinfo map (sendmail's cf/README, "SMTP AUTH").
 *
 * A line: AuthInfo:KEY "U:user" "I:authid" "P:password" "M:MECH1 MECH2" "R:realm".
 * KEY is the server's host name, its address (192.0.2.1, [192.0.2.1] or IPv6:2001:db8::1),
 * or nothing: "AuthInfo:" is the default for every server. Values are quoted or single
 * words; "X=base64" instead of "X:text" gives the value base64-encoded (P=czNjcmV0).
 * U is the authorization id, I the authentication id (each defaults to the other); P is
 * required; M lists the mechanisms to try in order (those ringmail speaks: PLAIN, LOGIN,
 * CRAM-MD5; others are ignored, but at least one must be there); R is accepted and unused
 * (none of these mechanisms has a realm). Errors name file and line and never quote a
 * password.
 *
 * Lookups, as sendmail's authinfo ruleset: the server's name, then its address, then the
 * default. From the access map (sendmail's D and A rulesets) the name's parent domains are
 * tried after the name and the address's shorter IPv4 prefixes after the address. The last
 * of several equal keys wins.
 *
 * Pure: parsed text in, entries out. The map owns every string; a returned credential lives
 * as long as the map. Wipes the passwords when freed.
 */
#ifndef RINGMAIL_COMPAT_MAP_AUTHINFO_H
#define RINGMAIL_COMPAT_MAP_AUTHINFO_H

#include <stdbool.h>
#include <stddef.h>

#include "compat/map_access.h"
#include "smtp/smtp_client.h"

struct authinfo_entry {
    char *key; /* lower-cased, without brackets; "" = the default */
    char *user, *authid, *password, *mechs;
    struct smtp_client_auth cred; /* points at the strings above */
    unsigned line;
};

struct authinfo_map {
    struct authinfo_entry *v;
    size_t n, cap;
    bool access; /* read from the access map: parent domains and address prefixes match */
};

/* Parses an authinfo map's text: 0, or -1 with "file:line: why" in err. Free with
 * authinfo_free() in both cases. */
int authinfo_parse(const char *file, const char *text, size_t len, struct authinfo_map *out,
                   char *err, size_t errlen);
/* Takes the AuthInfo: entries of a parsed access map (read from `file`): 0, or -1 with
 * "file:line: why". */
int authinfo_from_access(const char *file, const struct access_map *m, struct authinfo_map *out,
                         char *err, size_t errlen);
void authinfo_free(struct authinfo_map *m);

/* The credentials for the server `host` at `addr` ("192.0.2.1", "2001:db8::1"; either may
 * be NULL), or NULL. allow_plaintext and hmac_md5 are left unset: the caller's. */
const struct smtp_client_auth *authinfo_lookup(const struct authinfo_map *m, const char *host,
                                               const char *addr);

#endif
