/*
 * cli/maildrop.h — the maildrop: where a submission waits while the daemon is down (Postfix's
 * maildrop and postdrop, sendmail's MSP queue).
 *
 * One file per submission, named <unix time>.<pid>.<16 hex digits> (MAILDROP_NAME_MAX octets
 * at most, [0-9a-f.] only, so it passes as MAIL ... XMAILDROP=<name>). Format, version 1:
 *
 *   RINGMAIL-MAILDROP 1\n
 *   S<sender as given to -f/-r; empty = the caller's own; <> = null>\n exactly once, first
 *   F<full name>\n N<notify>\n T<ret>\n V<envid>\n B<body type>\n      each at most once
 *   R<recipient>\n                                                       one or more
 *   \n
 *   the prepared message: CRLF lines, never dot-stuffed (it goes out with BDAT)
 *
 * A record value is 1..MAILDROP_RECORD_MAX octets (S may be empty) without control octets
 * (0x00-0x1f, 0x7f); anything else in the head (a missing or repeated record, an unknown
 * letter, a line without its LF) is an error naming the line.
 *
 * Who writes: ringmail-sendmail, when the daemon's socket is not there, pipes the file's image
 * to ringmail-postdrop (maildrop_postdrop_start/finish), the setgid helper that alone may
 * create files in the maildrop directory (maildrop_create/commit). Who reads: the daemon's
 * pickup (core/pickup.h) runs `ringmail-sendmail --pickup NAME` as the file's owner, which
 * reads it (maildrop_read_head) and submits it over the socket (maildrop_submit_file); the
 * daemon removes the file once the message is committed to its queue, and at recovery, so
 * a submission is never lost and never accepted twice.
 *
 * Everything returned is the caller's (maildrop_envelope_free). Not thread-safe; no function
 * here logs: errors are returned as text for the program to print.
 */
#ifndef RINGMAIL_CLI_MAILDROP_H
#define RINGMAIL_CLI_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "util/buf.h"

#define MAILDROP_MAGIC      "RINGMAIL-MAILDROP 1"
#define MAILDROP_NAME_MAX   64
#define MAILDROP_RECORD_MAX 4096
/* Recipients in one file: more than any SMTP transaction takes (limits.max_recipients is
 * checked by the daemon when the file is submitted). */
#define MAILDROP_RCPTS_MAX 100000u

struct config;

struct maildrop_envelope {
    char *sender; /* as given to -f; "" = the caller's own address, "<>" = the null sender */
    char *fullname, *notify, *ret, *envid, *body; /* NULL = not given */
    char **rcpts;
    size_t n_rcpts;
};

void maildrop_envelope_free(struct maildrop_envelope *e);

/* Appends the head (magic line, records, empty line) for `e` to `out`; -1 with `err` when a
 * value cannot be stored (control octet, too long) or there is no recipient. */
int maildrop_format_head(const struct maildrop_envelope *e, struct buf *out, char *err,
                         size_t errlen);
/* Reads the head from `in`, which is left at the message's first octet. 0, or -1 with
 * "line N: why" in err (e zeroed first, freed by the caller either way). */
int maildrop_read_head(FILE *in, struct maildrop_envelope *e, char *err, size_t errlen);

/* MAIL FROM's address for an S record, as sendmail makes it: `login`@`hostname` (the file
 * owner's own address) for "", the null sender ("") for "<>", an unqualified name qualified
 * with `hostname`. Malloc'd; NULL when out of memory or, for "", when `login` is NULL. The
 * one rule for --pickup and for mailq's listing of the maildrop. */
char *maildrop_sender_address(const char *given, const char *login, const char *hostname);

/* Is `name` a maildrop file name (what XMAILDROP= may carry)? */
bool maildrop_name_valid(const char *name);

/* A file being written: `.tmp-<name>` in the directory until maildrop_commit(). */
struct maildrop_file {
    int dirfd, fd;
    char name[MAILDROP_NAME_MAX + 1];
    char tmp[MAILDROP_NAME_MAX + 8];
};

/* Creates a new file in `dir` (an absolute path; symbolic links are never followed, the
 * file is created O_EXCL, mode 0600). 0, or -1 with err. */
int maildrop_create(const char *dir, struct maildrop_file *f, char *err, size_t errlen);
int maildrop_write(struct maildrop_file *f, const void *data, size_t len, char *err, size_t errlen);
/* fsync, rename into place, then make the rename durable (the directory is fsynced when it
 * may be read; otherwise the file is fsynced again, which commits the file system's journal
 * with the rename on ext4 and XFS). Closes everything; on error the file is removed. */
int maildrop_commit(struct maildrop_file *f, char *err, size_t errlen);
/* Removes the unfinished file and closes everything (nothing to do after a commit). */
void maildrop_abort(struct maildrop_file *f);

/* For ringmail-sendmail when the daemon is down: starts ringmail-postdrop (the program beside
 * the running one, /proc/self/exe's directory) with `-C config_path` when not NULL. Returns
 * the descriptor to write the file's image to (head, then message) and the child in *pid;
 * -1 with err. */
int maildrop_postdrop_start(const char *config_path, pid_t *pid, char *err, size_t errlen);
/* Closes `fd`, waits for the child: its exit status (EX_OK = the file is in the maildrop);
 * a child killed by a signal is EX_TEMPFAIL with err set. */
int maildrop_postdrop_finish(int fd, pid_t pid, char *err, size_t errlen);

/* `ringmail-sendmail --pickup NAME`: reads the maildrop file (from standard input when it is
 * a regular file, as the pickup passes it, else `path`, or NAME in cfg->maildrop) and
 * submits it over the daemon's socket with MAIL ... XMAILDROP=<name>. The file must be owned
 * by the caller's uid. Errors go to `err`. EX_OK once the daemon has the message,
 * EX_TEMPFAIL to try again later, EX_DATAERR for a file that is not a maildrop file or that
 * the daemon refused for good, EX_NOPERM for someone else's file. */
int maildrop_submit_file(const struct config *cfg, const char *path, FILE *err);

#endif
