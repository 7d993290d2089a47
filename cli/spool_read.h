/*
 * cli/spool_read.h — the command-line tools' own view of the spool: every committed
 * message's envelope, read synchronously from its qf file (docs/queue.md).
 *
 * For mailq, qshape and ringmail-queue's offline operations, which run beside (or without)
 * the daemon and never take part in its io_uring file operations. The walk is recovery's:
 * the top of the spool and the one-hex-digit subdirectories down to two levels, whatever
 * hash_depth is now (a message not yet moved after a change of depth is still found);
 * never through a symbolic link; only regular files named "qf<qid>" (O_NOFOLLOW,
 * O_NONBLOCK, then fstat). A qf that vanishes between the listing and the read (delivered
 * meanwhile) is skipped silently; one that does not parse is counted in `damaged` and
 * skipped (the daemon's recovery sets it aside). Never writes, never locks.
 *
 * Ownership: a spool_read_list owns its entries and their envelopes; spool_read_list_free()
 * releases them. Not thread-safe (plain blocking calls).
 */
#ifndef RINGMAIL_CLI_SPOOL_READ_H
#define RINGMAIL_CLI_SPOOL_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "queue/envelope.h"

/* "h/h/qf<qid>" and its NUL, with room to spare. */
#define SPOOL_READ_PATH_MAX 32

struct spool_read_msg {
    struct envelope env;            /* parsed, with its field offsets */
    char path[SPOOL_READ_PATH_MAX]; /* the qf relative to the spool: "7/qf<qid>"; "" for a
                                     * maildrop file (env.maildrop names it) */
};

struct spool_read_list {
    struct spool_read_msg *msgs; /* sorted by queue id, i.e. oldest first */
    size_t n;
    unsigned damaged; /* qf files that did not parse; maildrop files that could not be read
                       * (skipped) */
};

/* Whether `uid` may read the spool: root or the run-as user (`run_as`, a user name), the
 * only ones the spool's mode 0700 lets in. The tools ask first so they refuse with a
 * clear message instead of an EACCES from deep inside the walk. */
bool spool_read_allowed(const char *run_as, uid_t uid);

/* Reads every committed message of the spool directory `dir`. 0, or -1 with errno set
 * (EACCES when the caller may not read the spool, ENOENT when it does not exist) and a
 * reason in `err`; `out` is then empty. */
int spool_read_all(const char *dir, struct spool_read_list *out, char *err, size_t errlen);
void spool_read_list_free(struct spool_read_list *l);

/* Reads every file waiting in the maildrop directory `dir` (cli/maildrop.h) as an envelope
 * for mailq: qid = the name's last QID_LEN characters (its random part), maildrop = the
 * whole name, created = the file's mtime, size = the message after the head, sender as
 * --pickup will make it (maildrop_sender_address() with the owner's login and `hostname`),
 * body and envid from the B and V records, every recipient pending. Same rules as the
 * spool's walk: no links followed, regular files with one link only (the pickup's rule), a
 * file gone meanwhile (picked up) skipped silently; one that cannot be opened (another
 * user's, for the run-as user), is not such a file, or does not parse is counted in
 * `damaged`; names starting with '.' (unfinished) are not looked at.
 * Sorted by name, i.e. oldest first. 0, or -1 with errno (ENOENT: no maildrop) and `err`;
 * `out` is then empty. */
int spool_read_maildrop(const char *dir, const char *hostname, struct spool_read_list *out,
                        char *err, size_t errlen);

/* The path of the message's file of `kind` ("df", "qf") next to its qf: `qf_path` with
 * the kind replaced. */
void spool_read_sibling(const char *qf_path, const char *kind, char out[SPOOL_READ_PATH_MAX]);

#endif
