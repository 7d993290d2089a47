/*
 * compat/alias_expand.h — what one local recipient expands to, as sendmail's recipient(),
 * alias() and forward() decide it: the virtusertable, then the aliases, then the system's
 * users, then LUSER_RELAY.
 *
 * Order for an address:
 *   - "\user" (a backslash first): that user's mailbox, neither aliased nor forwarded;
 *   - a domain not in local_domains (class w): a REMOTE leaf;
 *   - a local domain: the virtusertable (user+detail@d, user+*@d, user@d, @d with %1 %2 %3;
 *     compat/map_simple.h); its value is expanded again as an address ("error:nouser" and
 *     "error:5.7.1:550 text" give an ERROR leaf);
 *   - the aliases (case-insensitive; every map in order), for "user+detail", "user+*", then
 *     "user" (sendmail's ruleset 5); an alias found for "user" drops the detail, a mailbox
 *     keeps it for $h;
 *   - a system user (user_exists): a MAILBOX leaf, whose .forward the caller then asks for;
 *   - luser_relay, else ERROR 550 5.1.1 "User unknown".
 * Inside an alias: addresses recurse; ":include:/path" reads the file through the include
 * callback (once per call however often it is named; a missing file bounces, a transient
 * error defers, as sendmail's include()); "|cmd" PROGRAM, "/path" FILE, "error:..." ERROR.
 * When an alias NAME has an owner-NAME alias, NAME's leaves carry the envelope sender to
 * use: owner-NAME's value when it is one plain address, else "owner-NAME" (alias.c). An
 * alias that names itself ("root: root, ops") delivers to that user's mailbox without
 * aliasing it again (sendmail's QSELFREF; the .forward is still read). Each alias is
 * expanded once per call: a name met again is a duplicate and dropped; one that names an
 * alias (or file) still being expanded above it is a loop and dropped, and when nothing but
 * loops is left the recipient gets ERROR 554 5.4.6 "aliasing/forwarding loop broken".
 * Deeper than ALIAS_EXPAND_DEPTH_MAX levels (aliases, includes, virtusertable hops and
 * .forward hops together): ERROR 554 5.4.6, as sendmail's MaxAliasRecursion. Identical
 * leaves are kept once (sendmail's sameaddr: kind, value, detail, owner, no_forward), also
 * against the leaves already in `out`.
 *
 * Pure: no I/O of its own; the system's users and :include: files come through callbacks.
 * All policy outcomes are leaves; the functions fail only when memory runs out. Nothing is
 * logged: the caller logs per leaf. Thread-safe if the callbacks are.
 */
#ifndef RINGMAIL_COMPAT_ALIAS_EXPAND_H
#define RINGMAIL_COMPAT_ALIAS_EXPAND_H

#include <stdbool.h>
#include <stddef.h>

#include "compat/map_aliases.h"
#include "compat/map_simple.h"

#define ALIAS_EXPAND_DEPTH_MAX 10 /* sendmail's MaxAliasRecursion */

enum alias_leaf_kind {
    ALIAS_LEAF_MAILBOX, /* value: the login; detail: its +detail */
    ALIAS_LEAF_PROGRAM, /* value: the command line (without '|') */
    ALIAS_LEAF_FILE,    /* value: an absolute path */
    ALIAS_LEAF_REMOTE,  /* value: an address to forward to (or, with relay, to send there) */
    ALIAS_LEAF_ERROR,   /* value: the text; code/dsn: the reply; code 4xx = defer, 5xx = bounce */
};

struct alias_leaf {
    enum alias_leaf_kind kind;
    char *value;
    char *address;   /* the address or target as written that gave this leaf, for the log and
                        the bounce ("bob+x@example.com", "|/usr/bin/vacation bob") */
    char *detail;    /* MAILBOX: the +detail without '+', or NULL */
    char *owner;     /* PROGRAM/FILE/MAILBOX named by a .forward: that login (runs as that
                        user); NULL = from the aliases (runs as the default user: LOCAL_F_ALIAS) */
    char *include;   /* the :include: file that named it, or NULL */
    char *sender;    /* the envelope sender for this leaf (owner-NAME's, unqualified when it has
                        no domain), or NULL = the message's own */
    char *relay;     /* REMOTE from luser_relay "mailer:host" or "host": where to send `value`
                        (route it as a mailertable value); NULL = route the address itself */
    bool no_forward; /* MAILBOX: do not read the user's .forward ("\user", a .forward's own) */
    unsigned depth;  /* levels used so far; pass the leaf to alias_expand_forward() as is */
    char code[4], dsn[16]; /* ERROR */
};

struct alias_leaves {
    struct alias_leaf *v;
    size_t n, cap;
};

struct alias_expand_settings {
    const struct alias_map *aliases; /* searched in order; n_aliases 0 = none */
    size_t n_aliases;
    const struct map_simple *virtusertable; /* NULL = none */
    const char *const *local_domains;       /* class w, without case */
    size_t n_local_domains;
    /* LUSER_RELAY: "local:user" (that local name), "user@domain" (forward there), or
     * "mailer:host" / "host" / "[host]" (sent to that host as "user+detail@host", as
     * sendmail's Localaddr ruleset rewrites it; the recipient unchanged with
     * preserve_luser_host, when it has a domain); NULL or "" = unknown users get 5.1.1. */
    const char *luser_relay;
    bool preserve_luser_host;
    /* Is `login` a user of the system? Called with the name as written, then lower-cased. */
    bool (*user_exists)(void *arg, const char *login);
    /* The text of a :include: file, read as `owner` (the .forward's login) or, for the
     * aliases (owner NULL), as the daemon: 0 with *text (malloc'ed, freed here) and *len; or
     * why it cannot be read as an errno value: ENOENT, EACCES, EPERM, ENOTDIR, ELOOP and
     * EISDIR bounce the target (550 5.2.4 "Cannot open path: why", as sendmail), anything
     * else (EIO, EAGAIN, -1, ...) defers it (451 4.2.4). NULL = every :include: is missing.
     * Each file is asked for once per call. */
    int (*include)(void *arg, const char *path, const char *owner, char **text, size_t *len);
    void *arg;
};

/* Expands the local recipient `rcpt` ("user", "user+detail@localdomain", "\user") into
 * leaves appended to `out` (zero-initialised by the caller). No leaves means nothing to
 * deliver (every target was a duplicate or an empty :include: list): the recipient is done.
 * 0, or -1 when out of memory. The caller frees `out` with alias_leaves_free() in both
 * cases; the leaves own their strings. */
int alias_expand(const struct alias_expand_settings *s, const char *rcpt, struct alias_leaves *out);

/* Expands the .forward `text` (len bytes, as the agent read it; `file` names it in errors)
 * of the MAILBOX leaf `from` into leaves appended to `out`: "|cmd" and "/path" belong to
 * from->value (owner); "\user" and from's own login are its mailbox with no_forward (and
 * from's detail); other names are expanded as recipients (aliases, virtusertable, users);
 * from's sender carries on. An empty .forward (no targets) delivers to the mailbox, as
 * sendmail does. Pass `from` as an expansion gave it: its depth counts the hops, so a cycle
 * of .forwards (bob -> alice -> bob) ends in ERROR 5.4.6; and appending into the same `out`
 * that holds the recipient's earlier leaves drops what is already there (a mailbox already
 * forwarded or delivered), as sendmail's one recipient list does: the new leaves are those
 * from the old out->n on. 0, or -1 when out of memory; free `out` with alias_leaves_free(). */
int alias_expand_forward(const struct alias_expand_settings *s, const struct alias_leaf *from,
                         const char *file, const char *text, size_t len, struct alias_leaves *out);

void alias_leaves_free(struct alias_leaves *l);

/* Why alias_known() refused a recipient: the reply for RCPT. */
struct alias_refusal {
    char code[4], dsn[16];
    char text[256];
};

/* The RCPT check: does `rcpt` (in a local domain, or without one) reach anything? True for
 * an alias (without expanding it), a virtusertable entry that leads somewhere, a system
 * user, or any name when luser_relay is set. False with `why` filled: 550 5.1.1 "User
 * unknown", or the error of a virtusertable "error:" value or of an alias that is only an
 * "error:" (sendmail refuses those at RCPT too). No allocation, no :include: read. */
bool alias_known(const struct alias_expand_settings *s, const char *rcpt,
                 struct alias_refusal *why);

#endif
