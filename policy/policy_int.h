/*
 * policy/policy_int.h — the access map as sendmail's rulesets read it, shared by the stages
 * (policy.c). Pure.
 */
#ifndef RINGMAIL_POLICY_POLICY_INT_H
#define RINGMAIL_POLICY_POLICY_INT_H

#include <stdbool.h>

#include "compat/map_access.h"
#include "policy/policy.h"

/* sendmail's SearchList over an address: `order` names the steps, 'F' (user+detail@domain,
 * then user@domain), 'U' (user+detail@, then user@) and 'D' (the domain, then each parent).
 * A SKIP entry ends its step with no match and the next step goes on, as proto.m4's D and A
 * rulesets return their default on SKIP. `tag` "spam" finds tagged entries only. */
const struct access_entry *policy_search(const struct access_map *m, const char *tag,
                                         const char *address, const char *order);

/* sendmail's reading of a Connect: client: its host name and parents, then its address and
 * shorter prefixes (each SKIP ends its own step). */
const struct access_entry *policy_search_client(const struct access_map *m,
                                                const struct policy_client *c);

/* What an entry found at `ruleset` asks for: false for none, SKIP, OK or RELAY (nothing more
 * to refuse; *v untouched), else true with *v filled. A REJECT is 550, `reject_enh`,
 * `reject_text`; ERROR: the entry's code, status and text; with `addr` (at MAIL) the text
 * is "<addr>... text", as sendmail's usrerr() writes it. */
bool policy_entry_verdict(const struct access_entry *e, const char *ruleset, const char *addr,
                          const char *reject_enh, const char *reject_text,
                          struct policy_verdict *v);

/* OK and RELAY: sendmail's {Accept} class, which ends the stage's checks. */
bool policy_entry_accepts(const struct access_entry *e);

#endif
