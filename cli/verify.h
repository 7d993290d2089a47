/*
 * cli/verify.h — sendmail -bv (what would happen to each address) and a subset of -bt
 * (address test mode), answered from ringmail's own routing (delivery/route.h) with the
 * configuration the daemon reads: local_domains, routing.smart_host / mail_hub, the
 * mailertable, the aliases. No DNS lookup and no connection: a destination found by MX is
 * named as the routing gives it ("host example.com."), as sendmail -bv names it before any
 * lookup.
 *
 * -bv lines, one or more per address, as sendmail's:
 *   bob@example.com... deliverable: mailer esmtp, host example.com., user bob@example.com
 *   bob... deliverable: mailer local, user bob
 *   nobody@mx.test... User unknown
 * Aliases are expanded (the targets are printed, recursively; programs as mailer prog,
 * files as mailer *file*, :include: lists as mailer *include*, not opened).
 *
 * -bt understands: `/parse ADDR`, `/try MAILER ADDR`, `/map MAPNAME KEY` (mailertable,
 * virtusertable, genericstable, aliases), `RULESETS ADDR` with rulesets ending in 0 or
 * parse (e.g. `3,0 bob@example.com`: ruleset 0's $# mailer $@ host $: user), `/quit`, `?`.
 * Nothing else of sendmail.cf's rule engine exists here; other input gets sendmail's
 * "unknown" answers. Reads the whole input; never exits.
 */
#ifndef RINGMAIL_CLI_VERIFY_H
#define RINGMAIL_CLI_VERIFY_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

/* -bv: the lines for every address to `out`. EX_OK when all are deliverable, else the
 * sysexits status of the last failure (EX_NOUSER for an unknown local user). */
int verify_addresses(const struct config *cfg, const char *const *addrs, size_t n, FILE *out);

/* -bt: reads commands from `in` until /quit or the end, answers on `out`. EX_OK. */
int verify_test_mode(const struct config *cfg, FILE *in, FILE *out);

#endif
