/*
 * compat/map_list.h — sendmail's one-name-a-line class files: local-host-names (class w,
 * confCW_FILE) and relay-domains (class R, confCR_FILE).
 *
 * Format: names separated by white space, any number a line; '#' starts a comment that
 * runs to the end of the line (Debian reads these files with the scanf pattern %[^#], so a
 * comment may follow a name). Names are kept lower-cased, in file order, without
 * duplicates. A name must be a host name, a domain, or an address literal in brackets
 * ([192.0.2.1]); anything else is an error naming file and line.
 */
#ifndef RINGMAIL_COMPAT_MAP_LIST_H
#define RINGMAIL_COMPAT_MAP_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "compat/map_text.h"

/* Parses `text` (len bytes; `file` names it in errors) and appends its names to `out`.
 * 0, or -1 with "file:line: why" in err (out keeps what was added before the error; the
 * caller frees it either way with map_strings_free). */
int map_list_parse(const char *file, const char *text, size_t len, struct map_strings *out,
                   char *err, size_t errlen);
/* Is `name` in the list (case-insensitive, exact)? Class w membership. */
bool map_list_contains(const struct map_strings *list, const char *name);
/* Is `host` one of the names or below one of them? sendmail's relay-domains test: an
 * entry example.com lets mail for example.com and a.b.example.com through. */
bool map_list_match_domain(const struct map_strings *list, const char *host);
/* One name a line, for the golden files. */
void map_list_dump(const struct map_strings *list, struct buf *out);

#endif
