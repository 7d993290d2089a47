/*
 * policy/clientlimit.h — sendmail's FEATURE(ratecontrol) and FEATURE(conncontrol): how many
 * connections one client may open per window (`ClientRate:` access entries) and hold open
 * at once (`ClientConn:`), before it is let in.
 *
 * Pure functions over the parsed access map; nothing is counted here (policy/clientrate.h
 * counts the rate, core/connlimit.h the open connections). An entry is looked up as sendmail's
 * SearchList <A:client_addr> <E:> does: the address, then its shorter prefixes, then the
 * tag's default (an entry with an empty key, "ClientRate:  10"); with none, the configured
 * default (limits.connection_rate, limits.connections_per_client). 0 is "no limit".
 */
#ifndef RINGMAIL_POLICY_CLIENTLIMIT_H
#define RINGMAIL_POLICY_CLIENTLIMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "compat/map_access.h"

struct clientlimit {
    unsigned rate;  /* connections per window; 0 = no limit */
    unsigned conns; /* open at once; 0 = no limit */
};

/* The limits for the client at `ip` (text, as access_lookup_ip takes it); `defaults` is
 * what applies where the map says nothing. */
void clientlimit_lookup(const struct access_map *m, const char *ip,
                        const struct clientlimit *defaults, struct clientlimit *out);

/* Whether an access entry's value is a limit sendmail's arith would compare: a plain
 * decimal number. Entries that are not are ignored (and named by the config's warnings). */
bool clientlimit_value(const char *value, unsigned *out);

/* How a FEATURE(ratecontrol) or FEATURE(conncontrol) refuses, from its arguments: `nodelay`
 * (the check runs in check_relay even under FEATURE(delay_checks), before the Connect:
 * entries can exempt the client) and `terminate` (421 and close; else 452 to the later
 * commands, sendmail's "nullserver" session). The feature absent ("false" alike) is as
 * `nodelay, terminate`: the limits apply whenever they are set. */
struct clientlimit_mode {
    bool nodelay, terminate;
};

/* Parses the feature's words ("true", "false", "nodelay", "terminate", "" for an empty
 * argument); false on any other word. */
bool clientlimit_mode_parse(const char *const *words, size_t n, struct clientlimit_mode *out);

/* sendmail's replies (proto.m4, with `terminate`) and check_relay rejections. */
#define CLIENTLIMIT_RATE_TEXT  "Connection rate limit exceeded."
#define CLIENTLIMIT_CONNS_TEXT "Too many open connections."

#endif
