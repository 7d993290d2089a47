/*
 * cli/mailq.h — mailq (sendmail -bp): the queue as sendmail prints it, or as JSON.
 *
 * The text is sendmail 8's print_single_queue() exactly (docs/command-line.md, "mailq"):
 * a header naming the spool and the count, the column titles, per message its queue id,
 * a marker, the df size, the creation time as ctime's first 16 characters, the sender in
 * angle brackets (39 characters at most), an indented "(reason)" line for its last
 * deferral (and its BODY type, as sendmail shows it), one indented line per recipient
 * still to be delivered, and the total. Messages come in sendmail's default order
 * (QueueSortOrder=priority), see mailq_sort().
 *
 * The formatters are pure (they write to the FILE they are given and read nothing else,
 * the time zone aside); mailq_main() does the reading: the qf files straight from the
 * spool and the files of the maildrop (cli/spool_read.h), which only root and the run-as
 * user may read.
 */
#ifndef RINGMAIL_CLI_MAILQ_H
#define RINGMAIL_CLI_MAILQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "queue/envelope.h"

/* sendmail's priority with its default factors: the df size, plus WkRecipFactor (30000)
 * per recipient, plus WkTimeFact (90000) per delivery attempt; lower runs (and prints)
 * first. */
uint64_t mailq_priority(const struct envelope *e);
/* Sorts by mailq_priority(), then creation time, then queue id (sendmail leaves ties in
 * directory order; a fixed order is easier to read twice). */
void mailq_sort(const struct envelope **msgs, size_t n);

/* One queue directory's messages, as sendmail lists each of its queue directories. */
struct mailq_block {
    const char *dir;                    /* named in the block's header */
    bool maildrop;                      /* files still in the maildrop, not yet queued */
    const struct envelope *const *msgs; /* already sorted */
    size_t n;
};

/* sendmail -bp's text: each block (its header, "<dir> is empty" for none, its messages),
 * then one "Total requests: N" over them all, as sendmail's printqueue(). */
void mailq_print_text(FILE *out, const struct mailq_block *blocks, size_t n_blocks);
/* One JSON document: an array with one object per message of every block, in order, its
 * "queue" key saying where it waits (docs/command-line.md). */
void mailq_print_json(FILE *out, const struct mailq_block *blocks, size_t n_blocks);

/* mailq / sendmail -bp: reads cfg->spool and prints it to `out`, then, when it holds files,
 * cfg->maildrop as a second block (spool_read_maildrop(): what waits for the daemon's
 * pickup): only the messages `filters` select (queuectl_matches(): sendmail's -qR/-qS/-qI
 * beside -bp), all when `n_filters` is 0, and with `quarantined` (sendmail's -qQ[substr],
 * NULL = no such filter) only quarantined messages whose reason contains it. A maildrop that cannot
 * be read is said on `err` and left out. EX_OK; EX_NOPERM with sendmail's "You are not permitted to
 * see the queue" on `err` for anyone but root and cfg->run_as; EX_IOERR (said on `err`) when the
 * spool cannot be read. A spool that does not exist yet is an empty queue. */
int mailq_main(const struct config *cfg, bool json, const char *const *filters, size_t n_filters,
               const char *quarantined, FILE *out, FILE *err);

#endif
