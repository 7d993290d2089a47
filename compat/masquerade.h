/*
 * compat/masquerade.h — sendmail's masquerading and genericstable, as its m4 configuration
 * builds them (cf/m4/proto.m4 rulesets MasqHdr/MasqEnv, cf/mailer/smtp.m4 and local.m4):
 * the sender addresses of a message, and with FEATURE(allmasquerade) its recipient
 * headers, are rewritten as the message leaves for a mailer.
 *
 * One address (local part, domain) goes through these steps:
 *  - ruleset canonify: a source route ("@a,@b:") and one trailing dot are dropped;
 *    localhost, localhost.$m ($m: the hostname's parent domain) and an address literal in
 *    class w become the hostname ($j). Other domains are taken as written: no DNS lookup
 *    (as with FEATURE(nocanonify)), no %-hack, no UUCP forms;
 *  - unqualified: "*LOCAL*" (the SMTP mailers always; the local mailer only with
 *    FEATURE(always_add_domain), whose argument, if any, is used as the domain instead
 *    and is then neither looked up nor masqueraded, as in sendmail);
 *  - genericstable (FEATURE(genericstable) = a map given): for *LOCAL* and for domains in
 *    class G (generics_domains; with FEATURE(generics_entire_domain) their subdomains
 *    too), sendmail's lookups in order: user+detail@domain, user+*@domain (%1 = detail),
 *    user@domain, @domain (%1 = user; qualified domains only), then the local part alone:
 *    user+detail, user+* (%1 = detail), user; %0 is the key (sendmail's map_rewrite). A
 *    qualified value is the result (no masquerading after it); an unqualified value
 *    becomes value@*LOCAL* and goes on;
 *  - then the first of these that applies: a domain in class N (exceptions), or below
 *    one, is left alone; with MASQUERADE_AS, a user in class E (exposed_users) keeps his
 *    domain, *LOCAL* becoming the hostname; *LOCAL*, a domain in class M (domains; with
 *    FEATURE(masquerade_entire_domain) also below one) and, unless
 *    FEATURE(limited_masquerade), a domain in class w (local_domains, plus the hostname)
 *    become the MASQUERADE_AS name;
 *  - *LOCAL* left over becomes the hostname.
 * Class matches are case-insensitive and exact except where "below" is said; map lookups
 * are map_simple_get()'s (case-insensitive).
 *
 * Where it applies (sendmail's S= and R= rulesets of each mailer):
 *  - SMTP mailers: envelope sender: qualified, masqueraded only with
 *    FEATURE(masquerade_envelope); header senders (From, Sender, Reply-To, Errors-To,
 *    Resent-From, Resent-Sender, Resent-Reply-To): masqueraded; header recipients (To, Cc,
 *    Bcc, Apparently-To and their Resent- forms): qualified, masqueraded only with
 *    FEATURE(allmasquerade). Envelope recipients are never rewritten.
 *  - the local mailer (prog and file as well): qualified only with always_add_domain,
 *    masqueraded as above unless FEATURE(local_no_masquerade).
 *
 * Header rewriting keeps every byte of the block that is not a rewritten address as it
 * was: other fields, folding, comments, display names, groups, the line ends. An address
 * this module does not understand (one with a comment or space inside it, "<>", an empty
 * group, an unclosed '<' or quote) is copied unchanged.
 *
 * Pure: no I/O, no logging; the settings and the map are only read. Results go into a
 * struct buf the caller owns (appended to, so reset it first if need be).
 */
#ifndef RINGMAIL_COMPAT_MASQUERADE_H
#define RINGMAIL_COMPAT_MASQUERADE_H

#include <stdbool.h>
#include <stddef.h>

#include "compat/map_simple.h"
#include "util/buf.h"

/* A sendmail class: n names (the layout of core's struct config_words). */
struct masquerade_class {
    char *const *v;
    size_t n;
};

struct masquerade_settings {
    const char *as;                  /* MASQUERADE_AS ($M); NULL = not masquerading, "" = no name */
    const char *hostname;            /* $j (required): *LOCAL* not masqueraded, localhost */
    struct masquerade_class domains; /* MASQUERADE_DOMAIN, class M */
    struct masquerade_class exceptions;       /* MASQUERADE_EXCEPTION, class N */
    struct masquerade_class exposed_users;    /* EXPOSED_USER, class E */
    struct masquerade_class generics_domains; /* GENERICS_DOMAIN, class G */
    struct masquerade_class local_domains;    /* local-host-names, class w */
    const struct map_simple *genericstable;   /* NULL = FEATURE(genericstable) off */
    const char *always_add_domain;            /* NULL = off; "" = the hostname; else that domain */
    bool envelope;                            /* FEATURE(masquerade_envelope) */
    bool entire_domain;                       /* FEATURE(masquerade_entire_domain) */
    bool all_headers;                         /* FEATURE(allmasquerade) */
    bool limited;                             /* FEATURE(limited_masquerade) */
    bool not_local;                           /* FEATURE(local_no_masquerade) */
    bool generics_entire_domain;              /* FEATURE(generics_entire_domain) */
};

enum masquerade_mailer {
    MASQUERADE_SMTP,  /* smtp, esmtp, smtp8, dsmtp, relay */
    MASQUERADE_LOCAL, /* local, prog, file */
};

/* The envelope sender (bare, "" = the null sender, which is never rewritten) as mailer `m`
 * sends it, appended to `out`. 1 = rewritten, 0 = copied unchanged, -1 = `out` is full
 * (its limit or memory; `out` may then hold part of the address). */
int masquerade_sender(const struct masquerade_settings *s, enum masquerade_mailer m,
                      const char *sender, struct buf *out);

/* The header block (`len` bytes: the fields before the empty line, CRLF or LF line ends)
 * as mailer `m` sends it, appended to `out`. The number of addresses rewritten (0: `out`
 * got the block byte for byte), or -1 when `out` is full (then use the original block). */
int masquerade_headers(const struct masquerade_settings *s, enum masquerade_mailer m,
                       const char *block, size_t len, struct buf *out);

#endif
