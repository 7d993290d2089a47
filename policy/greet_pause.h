/*
 * policy/greet_pause.h — sendmail's FEATURE(greet_pause): how long a client waits for the
 * greeting. Pure (the access map is given); the waiting and the refusal of a client that
 * talks first are the session's (core/session_checks.c).
 *
 * sendmail's greet_pause ruleset: the access map's GreetPause: entry for the client's
 * host name and its parent domains (when the name is known and confirmed), then for its
 * address and the address's prefixes; else the FEATURE's argument. Values are
 * milliseconds; 0 = no pause. The pause is at most 300 s (RFC 5321 4.5.3.2.1: a client
 * waits 5 minutes for the greeting), as sendmail caps it.
 */
#ifndef RINGMAIL_POLICY_GREET_PAUSE_H
#define RINGMAIL_POLICY_GREET_PAUSE_H

#include <stdint.h>

#include "compat/map_access.h"

#define GREET_PAUSE_MAX_MS 300000u

/* The pause in milliseconds for the client at `addr` ("192.0.2.1"), named `host` (NULL when
 * unknown); `dflt` is features.greet_pause. An entry whose value is not a number of
 * milliseconds does not apply (sendmail would pass it on as the pause and fail it). */
uint32_t greet_pause_for(const struct access_map *m, const char *host, const char *addr,
                         uint32_t dflt);

#endif
