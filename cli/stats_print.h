/*
 * cli/stats_print.h — a statistics snapshot (queue/mailstats.h) printed as sendmail's
 * mailstats(8) prints its StatusFile, column for column, so scripts and eyes used to it read
 * ringmail-stats unchanged:
 *
 *   Statistics from Fri Dec  4 19:00:00 2026
 *    M   msgsfr  bytes_from   msgsto    bytes_to  msgsrej msgsdis msgsqur  Mailer
 *    5        3          3K        2          2K        1       0       0  esmtp
 *   =====================================================================
 *    T        3          3K        2          2K        1       0       0
 *    C        4                    1                    2
 *
 * A mailer is shown when it has a message counted in any column. The program-readable form
 * (-p, -P) is "<since> <now>", the same rows without K, the T line and " C from to rejected".
 * Pure: writes to the stream given, nothing else.
 */
#ifndef RINGMAIL_CLI_STATS_PRINT_H
#define RINGMAIL_CLI_STATS_PRINT_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "queue/mailstats.h"

struct stats_print_opts {
    bool names;   /* the Mailer column (mailstats without -o) */
    bool program; /* -p / -P: program-readable */
    time_t now;   /* the program-readable form's second number */
};

void stats_print(FILE *out, const struct mailstats_snapshot *snap,
                 const struct stats_print_opts *o);

#endif
