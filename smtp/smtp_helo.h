/*
 * smtp/smtp_helo.h — the HELO/EHLO argument: which ones the server accepts, and how one is
 * written into the Received: header's from-clause. Pure functions, no allocation, no state;
 * thread-safe.
 *
 * What sendmail and Postfix do, and what we chose:
 *  - sendmail (srvrsmtp.c) refuses an argument longer than MAXNAME or holding anything but
 *    ASCII letters, digits and "[].-_#:" (white space only at its end) with "501 5.0.0
 *    Invalid domain name", unless AllowBogusHELO is set; what it accepts goes into
 *    Received: ($s) as it is.
 *  - Postfix accepts any printable text (its reject_invalid_helo_hostname is opt-in), turns
 *    control octets into '?' (printable()) and writes the rest into Received: verbatim, so
 *    "EHLO a (b) ) by evil; for <x>" forges the structure of its from-clause.
 * ringmail does what sendmail does: the state machine refuses such arguments at HELO/EHLO
 * (smtp_helo_valid), so a valid domain name or address literal is all that reaches
 * Received:. smtp_helo_received() is the second line for any other path a name may take:
 * an octet outside sendmail's set becomes '?' (as Postfix shows what it cannot print), so
 * no parenthesis, semicolon, angle bracket, white space, line end or control octet can open
 * a comment or a clause, and the length stays bounded. Valid names pass unchanged. A
 * general address literal ("[tag:content]", RFC 5321 4.1.3) with other characters is
 * refused/rewritten too: no such tag is registered besides IPv6.
 */
#ifndef RINGMAIL_SMTP_HELO_H
#define RINGMAIL_SMTP_HELO_H

#include <stdbool.h>
#include <stddef.h>

/* Longest HELO argument accepted (RFC 5321 4.5.3.1.2: a domain name is at most 255 octets). */
#define SMTP_HELO_MAX 255

/* True if the HELO/EHLO argument `arg` (`len` octets, white space around it removed) is
 * one the server accepts: 1..SMTP_HELO_MAX octets, each an ASCII letter or digit or one of
 * "[].-_#:". */
bool smtp_helo_valid(const char *arg, size_t len);

/* Writes `helo` (a C string; NULL is taken as "") into `out` as a token safe for the
 * Received: from-clause: octets as smtp_helo_valid() allows them are copied, every other one
 * becomes '?'; at most SMTP_HELO_MAX octets and what fits in `outlen` with the terminating
 * NUL. Returns the length written; 0 means nothing to show (the caller writes the client's
 * address instead). */
size_t smtp_helo_received(const char *helo, char *out, size_t outlen);

#endif
