/*
 * policy/dnsbl.h — sendmail's FEATURE(dnsbl) and FEATURE(enhdnsbl): what an answer from a
 * DNS blocklist means for a client, and the reply it gets. Pure: the lookups are the
 * caller's (the name is dns_reverse_name(client, zone), asked for A records).
 *
 * Owns nothing; every function works on what it is given. Never does I/O.
 *
 * sendmail's rules (cf/feature/dnsbl.m4, enhdnsbl.m4), checked at connect (check_relay):
 * - an answer (any A record) lists the client; with enhdnsbl result patterns, only an
 *   answer that matches one of them does ("127.0.0.2.", "127.0.0.$-.", "$+": sendmail's
 *   tokens, the trailing dot optional);
 * - no such name (NXDOMAIN, no A record): not listed;
 * - a lookup that failed (timeout, SERVFAIL): the client goes on, unless the zone's
 *   temp-failure option (the FEATURE's third argument `t`) asks for
 *   "451 4.4.3 Temporary lookup failure of <addr> at <zone>";
 * - the reply to a listed client: "550 5.7.1 Rejected: <addr> listed at <zone>", or the
 *   zone's own message, written as in the .mc: sendmail's quoted strings and tokens
 *   ("550 Mail from " $&{client_addr} " refused"), $&{client_addr} replaced by the
 *   address (a message without quotes is taken as plain text); a leading 3-digit code
 *   (and x.y.z status) is the reply's code.
 */
#ifndef RINGMAIL_POLICY_DNSBL_H
#define RINGMAIL_POLICY_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Whether the zone's answer lists the client: n_addrs > 0 and, when results are given,
 * one address matches one of them. */
bool dnsbl_listed(const struct sockaddr_storage *addrs, size_t n_addrs, const char *const *results,
                  size_t n_results);

struct dnsbl_reply {
    int code;       /* 550, 451 or the message's own */
    char enh[16];   /* "5.7.1", "4.4.3" or the message's own */
    char text[400]; /* without code and status */
};

/* The refusal of `client_addr` (as text) by `zone`: `temp` for a failed lookup with the
 * temp-failure option on; `message` NULL or empty for sendmail's default text. */
void dnsbl_reply(const char *message, const char *zone, const char *client_addr, bool temp,
                 struct dnsbl_reply *out);

#endif
