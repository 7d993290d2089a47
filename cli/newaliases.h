/*
 * cli/newaliases.h — `newaliases` (sendmail -bi): the aliases files checked as the daemon
 * reads them, counted as sendmail counts them, and the running daemon told to read them.
 *
 * ringmail reads the aliases text itself (no aliases.db): newaliases reads every file of
 * maps.aliases again from disk, parses it with compat/map_aliases.h (errors name file and
 * line) and prints sendmail's line per file, "FILE: N aliases, longest L bytes, T bytes
 * total" (L = the longest right-hand side, T = the sum of every name's and right-hand
 * side's length, continuation lines included, as sendmail's readaliases() counts). With no
 * error and a daemon running (its pid file names a live ringmaild), it sends that daemon
 * SIGHUP when the caller may (root, or the user the daemon runs as) and says so; otherwise
 * it says the change is read at the daemon's next start or reload.
 *
 * Writes only to `out` and `err`; owns nothing once it returns.
 */
#ifndef RINGMAIL_CLI_NEWALIASES_H
#define RINGMAIL_CLI_NEWALIASES_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

struct newaliases_stats {
    size_t aliases;
    size_t longest; /* octets of the longest right-hand side */
    size_t total;   /* octets of every name and right-hand side */
};

/* Parses and counts one aliases file's text (`file` names it in errors). 0, or -1 with
 * "file:line: why" in err. */
int newaliases_count(const char *file, const char *text, size_t len, struct newaliases_stats *st,
                     char *err, size_t errlen);

/* The program: EX_OK, EX_DATAERR when a file has an error, EX_NOINPUT when one cannot be
 * read. */
int newaliases_main(const struct config *cfg, FILE *out, FILE *err);

#endif
