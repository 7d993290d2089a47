/*
 * smtp/smtp_addr.h — RFC 5321 paths and the ESMTP parameters of MAIL and RCPT.
 *
 * Pure parsing into caller-owned structs; nothing is looked up, and nothing is allocated
 * but the two decoded values of local submission's MAIL parameters (smtp_mail_params_free).
 * Every failure returns the SMTP reply to give (code, enhanced code, reason) so the
 * server never has to guess. Lengths follow RFC 5321 4.5.3.1 (local part 64 octets,
 * domain 255, path 256); SMTPUTF8 (RFC 6531) paths are accepted only when asked for.
 */
#ifndef RINGMAIL_SMTP_ADDR_H
#define RINGMAIL_SMTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_LOCAL_MAX  64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX   256

/* A failed parse: the reply the server sends. */
struct smtp_addr_error {
    int code;           /* 501, 553, 555, 552 ... */
    const char *enh;    /* "5.1.3", "5.5.4" ... */
    const char *reason; /* static text, e.g. "Domain name too long" */
};

struct smtp_path {
    bool null;                      /* "<>" */
    bool utf8;                      /* contains octets >= 0x80 (needs SMTPUTF8) */
    bool quoted;                    /* the local part was a quoted-string */
    bool addr_literal;              /* domain is "[1.2.3.4]" or "[IPv6:...]" */
    bool source_route;              /* an "@a,@b:" route was present (and is ignored, RFC 5321 C) */
    char local[SMTP_LOCAL_MAX + 3]; /* as received, quotes included when quoted */
    char domain[SMTP_DOMAIN_MAX + 1]; /* as received (case kept), brackets kept */
    char mailbox[SMTP_PATH_MAX + 1];  /* local@domain, "" for the null path */
};

enum {
    SMTP_PATH_ALLOW_NULL = 1 << 0, /* MAIL FROM:<> */
    SMTP_PATH_ALLOW_UTF8 = 1 << 1, /* SMTPUTF8 was given on MAIL */
    /* Accept "postmaster" with no domain (RFC 5321 4.5.1: RCPT TO:<Postmaster>) */
    SMTP_PATH_ALLOW_POSTMASTER = 1 << 2,
};

/* Parses a path at the start of `s` (the text after "FROM:" or "TO:", optional spaces
 * allowed before '<' as many clients send them). On success returns 0 and sets
 * *consumed to the number of bytes up to and including '>'. A bare address without
 * angle brackets is accepted, ending at the first space, as sendmail and Postfix accept
 * it by default (broken clients send it). Reads exactly `len` bytes; no NUL is needed.
 *
 * On failure returns -1, zeroes *out and fills *err:
 *   501 5.5.2  no path, a '<' without its '>', or text glued to the '>' ("<a@b>x")
 *   553 5.1.3  a mailbox against RFC 5321 4.1.2 or over a 4.5.3.1 limit; the reason
 *              names what is wrong ("Local part too long", "Domain name too long",
 *              "Path too long", "Unquoted '@' in local part", "Bad address literal",
 *              "Malformed UTF-8 in address", "Null path not allowed here", ...)
 *   553 5.6.7  a non-ASCII octet without SMTP_PATH_ALLOW_UTF8
 * The local-part limit counts the local part as received (quotes included); the path
 * limit counts the brackets and any source route (a bare address as if bracketed).
 * One trailing dot on the domain ("example.com.") is accepted and kept. Address
 * literals are IPv4 and "IPv6:" (checked with inet_pton); General-address-literals
 * are refused. */
int smtp_path_parse(const char *s, size_t len, unsigned flags, struct smtp_path *out,
                    size_t *consumed, struct smtp_addr_error *err);

/* True when the path asks for routing beyond its own domain: a source route, or a local
 * part holding '%', '!' or '@' (quoted or not), or ':' from a quoted string. Such a
 * recipient in a local domain must be treated as relaying (the classic relay tricks
 * user%host@local, host!user@local, "user@host"@local, @local:user@host). */
bool smtp_path_has_routing(const struct smtp_path *p);

/* Case-insensitive domain comparison helpers for policy. */
bool smtp_domain_equal(const char *a, const char *b);
/* Is `domain` equal to `parent` or a subdomain of it (sendmail's R class matching)? */
bool smtp_domain_within(const char *domain, const char *parent);

/* ESMTP parameters. Which extensions are enabled decides which keywords are known:
 * an unknown or disabled keyword is 555 5.5.4, a bad value 501 5.5.4. Keywords are
 * case-insensitive; parameters are separated by one or more spaces; a repeated keyword
 * or a malformed one is 501 5.5.4; BODY=BINARYMIME is 555 5.5.4 (no CHUNKING binary). */
struct smtp_ext {
    bool size, eightbitmime, dsn, smtputf8;
    uint64_t max_size; /* 0 = no limit; a larger SIZE= gets 552 5.3.4 */
    bool auth;         /* AUTH is offered: MAIL takes AUTH= (RFC 4954 5) */
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_dsn_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };
enum {
    SMTP_NOTIFY_NEVER = 1 << 0,
    SMTP_NOTIFY_SUCCESS = 1 << 1,
    SMTP_NOTIFY_FAILURE = 1 << 2,
    SMTP_NOTIFY_DELAY = 1 << 3,
};

#define SMTP_ENVID_MAX    100 /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX    500 /* RFC 3461 4.2: addr-type ";" xtext, bounded by line length */
#define SMTP_FULLNAME_MAX 256 /* octets of FULLNAME= once decoded */
#define SMTP_MAILDROP_MAX 64  /* octets of XMAILDROP= once decoded */

#define SMTP_AUTH_PARAM_MAX 500 /* AUTH= of MAIL: an xtext mailbox or "<>" */

struct smtp_mail_params {
    bool has_size;
    uint64_t size;
    enum smtp_body body;
    bool smtputf8;
    enum smtp_dsn_ret ret;
    char envid[SMTP_ENVID_MAX + 1]; /* xtext as received, "" if absent */
    /* AUTH= as received ("<>" or xtext), NULL if absent; malloc'd, freed by
     * smtp_mail_params_free(). The server drops it for an unauthenticated client. */
    char *auth;
    /* Local submission only (smtp_mail_params_parse_local): the decoded xtext, NULL if
     * absent; malloc'd, freed by smtp_mail_params_free(). A bad value is 501 5.5.4. */
    char *fullname; /* FULLNAME=: the sender's full name (sendmail -F): 1 to 256 octets of
                       printable ASCII or well-formed UTF-8, no control octet */
    char *maildrop; /* XMAILDROP=: the maildrop file the message came from: 1 to 64 of
                       [A-Za-z0-9._-], not starting with '.' (never ".", ".." or a
                       ".tmp-" file), so it is a plain name inside the maildrop */
};

struct smtp_rcpt_params {
    unsigned notify;                /* SMTP_NOTIFY_* bits, 0 if absent */
    char orcpt[SMTP_ORCPT_MAX + 1]; /* "rfc822;xtext" as received, "" if absent */
};

/* `s` is the rest of the line after the path (leading spaces allowed), `len` bytes, no
 * NUL needed. *out is zeroed first; on failure it may hold the parameters before the bad
 * one and must not be used (nothing in it is left allocated). Out of memory is 452 4.3.1. */
int smtp_mail_params_parse(const char *s, size_t len, const struct smtp_ext *ext,
                           struct smtp_mail_params *out, struct smtp_addr_error *err);
/* The same on ringmail's local submission socket, where MAIL also takes FULLNAME= and
 * XMAILDROP= (elsewhere they are unknown parameters). */
int smtp_mail_params_parse_local(const char *s, size_t len, const struct smtp_ext *ext,
                                 struct smtp_mail_params *out, struct smtp_addr_error *err);
int smtp_rcpt_params_parse(const char *s, size_t len, const struct smtp_ext *ext,
                           struct smtp_rcpt_params *out, struct smtp_addr_error *err);
/* Length of the well-formed multi-octet UTF-8 character at `s` (RFC 3629 4), `avail` >= 1
 * octets available; 0 when it is malformed or ASCII. */
size_t smtp_utf8_len(const unsigned char *s, size_t avail);

/* Frees fullname, maildrop and auth and sets them to NULL. */
void smtp_mail_params_free(struct smtp_mail_params *p);
/* Validates RFC 3461 xtext (used by ENVID and ORCPT). */
bool smtp_xtext_valid(const char *s, size_t len);

#endif
