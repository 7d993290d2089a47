/*
 * compat/map_aliases.h — sendmail's aliases file (ALIAS_FILE) as newaliases reads it.
 *
 * "name: target, target, ..." with continuation lines that start with a space or tab.
 * Targets are addresses, ":include:/path" (a list kept in another file), "|program" (a
 * pipe; quote it when it holds commas: "|prog a,b"), "/file" (append to a file), or
 * "error:5.1.1:550 text" (refuse with that reply). Names are compared case-insensitively
 * and kept lower-cased; owner-NAME entries are ordinary aliases that the delivery side
 * uses as the envelope sender of NAME's list. A name given twice is an error naming both
 * lines (newaliases only warns; two definitions are always a mistake in a migrated file).
 *
 * The same target forms, one list per line, make a user's .forward and a :include: file:
 * aliases_parse_targets() reads those (alias expansion: compat/alias_expand.h).
 */
#ifndef RINGMAIL_COMPAT_MAP_ALIASES_H
#define RINGMAIL_COMPAT_MAP_ALIASES_H

#include <stddef.h>

#include "util/buf.h"

enum alias_kind { ALIAS_ADDRESS, ALIAS_INCLUDE, ALIAS_PROGRAM, ALIAS_FILE, ALIAS_ERROR };

struct alias_target {
    enum alias_kind kind;
    char *value;           /* the address, path or command (quotes and prefix removed) */
    char code[4], dsn[16]; /* ALIAS_ERROR; value holds the message */
};

struct alias {
    char *name;
    struct alias_target *targets;
    size_t n_targets;
    unsigned line;
};

struct alias_map {
    struct alias *v; /* in file order */
    size_t n, cap;
    size_t *by_name; /* indices into v sorted by name, made by aliases_parse() for lookups */
};

/* 0, or -1 with "file:line: why" in err; free with aliases_free() in both cases. */
int aliases_parse(const char *file, const char *text, size_t len, struct alias_map *out, char *err,
                  size_t errlen);
void aliases_free(struct alias_map *m);
/* The targets of a .forward or :include: file. */
struct alias_list {
    struct alias_target *v;
    size_t n, cap;
};

/* Reads a .forward or :include: file as sendmail does: line by line, blank lines and lines
 * starting with '#' skipped, each line a comma-separated list of targets in the forms of an
 * alias's right-hand side (no continuation lines). It never refuses the text: an item that
 * does not parse becomes an ALIAS_ERROR target (550 5.1.3, "file:line: why: item") so the
 * other targets are still delivered and only the bad one bounces, as sendmail does; a NUL
 * byte ends the text with such a target. Appends to `out`; 0, or -1 when out of memory.
 * The caller frees `out` with alias_list_free() in both cases. */
int aliases_parse_targets(const char *file, const char *text, size_t len, struct alias_list *out);
void alias_list_free(struct alias_list *l);
/* The alias for a local part (case-insensitive), or NULL. O(log n) on a parsed map (the RCPT
 * check runs it for every local recipient); no allocation. */
const struct alias *aliases_lookup(const struct alias_map *m, const char *name);
/* "line name: kind:value, ..." a line, for the golden files. */
void aliases_dump(const struct alias_map *m, struct buf *out);

#endif
