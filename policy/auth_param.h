/*
 * policy/auth_param.h — what MAIL's AUTH= (RFC 4954 5) becomes for the queue: the value
 * recorded with the message and passed on to a next hop that offers AUTH. Pure; owns
 * nothing (the result points at `given` or at the caller's `out`).
 *
 * sendmail's rules: an unauthenticated client's AUTH= is dropped and nothing is recorded
 * (sendmail then sends no AUTH= at all). An authenticated client's AUTH= is kept when it is
 * "<>" or names the authenticated identity itself ({auth_authen}, bare or in brackets:
 * proto.m4's default trust_auth ruleset); any other mailbox is not trusted and becomes
 * "<>". An authenticated client that sent no AUTH= gets its identity as the value
 * (sendmail's _FFR_AUTH_PASSING default), as xtext; one too long for AUTH= gets "<>".
 */
#ifndef RINGMAIL_POLICY_AUTH_PARAM_H
#define RINGMAIL_POLICY_AUTH_PARAM_H

#include <stddef.h>

/* `given`: the client's AUTH= as received (xtext or "<>"), NULL when none; `authen`: the
 * authenticated identity, NULL for an unauthenticated client. Returns the value to record
 * (`given`, "<>", or `out` holding the identity's xtext), or NULL: record nothing. `out`
 * should hold SMTP_AUTH_PARAM_MAX + 1 octets. */
const char *auth_param_record(const char *given, const char *authen, char *out, size_t outlen);

#endif
