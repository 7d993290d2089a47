/*
 * compat/map_simple.h — sendmail's key/value routing maps from their text sources:
 * mailertable, virtusertable and genericstable. One "key value" pair a line; keys are
 * lower-cased; errors name file and line.
 *
 * mailertable: key "example.com", ".example.com" (every host below it) or "." (all
 * else); value "mailer:host" — smtp:[mx.example.com]:2525 (brackets: no MX lookup),
 * esmtp:relay.example.com, local:user, error:5.1.1:550 text.
 * virtusertable: key "user@domain", "user+detail@domain" or "@domain" (the catch-all);
 * value an address, a local user, or error:...; %1 in the value is the user part of the
 * looked-up address, %2 its +detail without the '+', %3 the detail with it.
 * genericstable: key "user" or "user@domain"; value the address to rewrite to.
 */
#ifndef RINGMAIL_COMPAT_MAP_SIMPLE_H
#define RINGMAIL_COMPAT_MAP_SIMPLE_H

#include <stddef.h>

#include "util/buf.h"

enum map_simple_kind { MAP_MAILERTABLE, MAP_VIRTUSERTABLE, MAP_GENERICSTABLE };

struct map_simple_entry {
    char *key;   /* lower-cased */
    char *value; /* as written */
    unsigned line;
};

struct map_simple {
    enum map_simple_kind kind;
    struct map_simple_entry *v;
    size_t n, cap;
};

/* Parses a map of `kind` into `out` (zero-initialised by the caller, kind set here).
 * 0, or -1 with "file:line: why" in err; free with map_simple_free() in both cases. */
int map_simple_parse(enum map_simple_kind kind, const char *file, const char *text, size_t len,
                     struct map_simple *out, char *err, size_t errlen);
void map_simple_free(struct map_simple *m);
/* The entry for exactly `key` (case-insensitive; the last one wins), or NULL. */
const struct map_simple_entry *map_simple_get(const struct map_simple *m, const char *key);

/* mailertable: the host itself, then ".parent" for each parent domain, then ".". */
const struct map_simple_entry *mailertable_lookup(const struct map_simple *m, const char *host);
/* virtusertable: user+detail@domain, user+*@domain, user@domain, then @domain; the value
 * with %1/%2/%3 substituted goes into `out`. 1 = found, 0 = not, -1 = out too small. */
int virtuser_lookup(const struct map_simple *m, const char *address, char *out, size_t outlen);
/* genericstable: user@domain, then user. */
const struct map_simple_entry *generics_lookup(const struct map_simple *m, const char *address);
/* "line key -> value" a line, for the golden files. */
void map_simple_dump(const struct map_simple *m, struct buf *out);

#endif
