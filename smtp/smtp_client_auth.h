/*
 * smtp/smtp_client_auth.h — the client's side of the SMTP AUTH mechanisms (RFC 4954):
 * reading the server's offer, choosing a mechanism, and the lines of each exchange
 * (PLAIN, RFC 4616; LOGIN, draft-murchison-sasl-login; CRAM-MD5, RFC 2195).
 *
 * Pure: strings in, command lines out; no I/O, no crypto of its own (CRAM-MD5's HMAC-MD5
 * comes through struct smtp_client_auth's callback). smtp_client.c drives it.
 * Owns nothing: every line is appended to the caller's buffer. Lines carry credentials:
 * the caller wipes the buffer (explicit_bzero) once it is sent.
 */
#ifndef RINGMAIL_SMTP_CLIENT_AUTH_H
#define RINGMAIL_SMTP_CLIENT_AUTH_H

#include <stddef.h>

#include "smtp/smtp_client.h"
#include "util/buf.h"

/* The SMTP_AUTH_* bits named in an EHLO AUTH line's parameters ("PLAIN LOGIN XOAUTH2"). */
unsigned smtp_client_auth_offer(const char *params, size_t len);

/* The first mechanism of a->mechs (or "CRAM-MD5 PLAIN LOGIN") that `offered` holds and this
 * client can do (CRAM-MD5 only with a->hmac_md5); 0 = none. */
unsigned smtp_client_auth_choose(const struct smtp_client_auth *a, unsigned offered);

/* "PLAIN", "LOGIN", "CRAM-MD5" (static); "?" for anything else. */
const char *smtp_client_auth_name(unsigned mech);

/* Appends the AUTH command that opens the exchange (with PLAIN's initial response) to
 * `out`, CRLF included: 0, or -1 with why ("out of memory", "credentials too long"). */
int smtp_client_auth_start(const struct smtp_client_auth *a, unsigned mech, struct buf *out,
                           const char **why);

/* Appends the answer to the server's `step`-th 334 (0 = the first) whose text is
 * `challenge` (base64) to `out`, CRLF included: 0, or -1 with why (a challenge that is not
 * base64, a step the mechanism does not have, HMAC failure, out of memory). */
int smtp_client_auth_respond(const struct smtp_client_auth *a, unsigned mech, unsigned step,
                             const char *challenge, struct buf *out, const char **why);

#endif
