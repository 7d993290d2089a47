/*
 * cli/qshape.h — Postfix's qshape over ringmail's queue: how many recipients (or, with -s,
 * senders) per domain wait how long, in age buckets of 5, 10, 20, ... minutes.
 *
 * The table is qshape's (Postfix auxiliary/qshape): a heading row "T 5 10 20 40 80 160 320
 * 640 1280 1280+", then TOTAL, then one row per domain, most counted first (then the
 * shorter name, then by name); every column right-aligned as wide as its heading or the
 * TOTAL count needs (at least 3), the domain column filling the rest of `width` (at least
 * 18; a longer name keeps its tail after a '+'). A bucket holds the messages younger than
 * its heading and at least as old as the previous one; the last one has no limit. -p adds
 * parent domains (".example.com") seen with at least min_subdomains children. Only
 * recipients still to be delivered count; in sender mode, a message counts once if it
 * still has one. One difference: TOTAL is always the first row (qshape's sort could put
 * a shorter domain with the same count above it).
 *
 * Pure: qshape_print() reads the envelopes it is given and writes to `out`.
 */
#ifndef RINGMAIL_CLI_QSHAPE_H
#define RINGMAIL_CLI_QSHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "queue/envelope.h"

struct qshape_options {
    bool senders;            /* -s: sender domains instead of recipient domains */
    bool parents;            /* -p: parent domain rows too */
    unsigned min_subdomains; /* -m: parent rows need this many subdomains; default 5 */
    unsigned buckets;        /* -b: age buckets; default 10 */
    unsigned bucket_minutes; /* -t: the first bucket's limit; default 5 */
    bool linear;             /* -l: buckets grow by bucket_minutes, not doubling */
    unsigned width;          /* -w: the table's width (at least 80) */
};

void qshape_defaults(struct qshape_options *o);
/* Parses qshape's flags (-s -p -l -m N -b N -t N -w N) from argv[0..argc); `*used` is set
 * to the index of the first argument that is not a flag. 0, or -1 after a message on
 * `err` naming the bad flag. */
int qshape_parse_args(int argc, char **argv, struct qshape_options *o, int *used, FILE *err);
/* The table over `n` messages, their ages taken at `now`. 0, or -1 if memory ran out. */
int qshape_print(FILE *out, const struct qshape_options *o, const struct envelope *const *msgs,
                 size_t n, time_t now);

#endif
