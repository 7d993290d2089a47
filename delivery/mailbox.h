/*
 * delivery/mailbox.h — the built-in local mailers: append to an mbox file, write into a
 * Maildir, append to a file named by an alias or a .forward.
 *
 * Run by the local-delivery agent (core/local_agent.h) after it has become the recipient:
 * these functions block, check nothing about identity, and never change it. The message
 * is read from `msg->fd` with pread from `msg->data_offset` to the end (the spool's df, or
 * the qf of a message that is one file: CRLF lines, headers then body) and written with LF line
 * ends, after a "Return-Path: <sender>" line (sendmail's local mailer, flag P), as mail.local
 * writes it.
 *
 * mbox: the mailbox is locked with a dotlock (path.lock, created O_EXCL, stale after 5
 * minutes, as mail.local and Debian's liblockfile) and then with fcntl (F_SETLK tried again
 * every 100 ms: both waits together last at most the timeout, 0 = one try). A directory the
 * agent cannot write (a root:mail 2775 spool when the agent was not given group mail) gets
 * no dotlock: fcntl alone locks, as for every file mailer. The mailbox is created 0600 when
 * missing (never through a symbolic link, never when it is not a regular file with one
 * link owned by the caller), the "From sender date" line written first (ctime's date in
 * local time), every line starting with "From " quoted as ">From ", a blank line added at
 * the end; on any failed write the file is truncated back to its size before the
 * delivery, and fsync decides success.
 * Maildir: tmp/ → fsync → link into new/ (rename when link is refused) → fsync of new/,
 * with a unique name "time.Pn_Qcount.host" (the maildir spec); the directories are made
 * 0700 when missing.
 * File (an alias's or .forward's "/path"): as mbox without the dotlock and without the
 * owner check (the kernel's permission check decides), the file must exist or is created
 * 0600; /dev/null is accepted and writes nothing. A file that cannot be opened or created
 * (no permission, no such directory) fails 5.2.0, as sendmail's "Can't create output".
 *
 * Results: `r->status` is LOCAL_DELIVERED, LOCAL_DEFERRED (a full disk, a quota or
 * RLIMIT_FSIZE is 4.2.2, a held lock and other mailbox errors 4.2.0, the df unreadable
 * 4.3.0: tried again later) or LOCAL_FAILED (a mailbox that is a symlink or not a regular
 * file: 5.2.0), with `r->enh` and `r->text` ("path: why"). r->mailer and r->forward are the
 * caller's. Logged here: a stale dotlock removed, a cleanup that failed; the caller logs
 * the result. The caller ignores SIGXFSZ, or RLIMIT_FSIZE kills the agent instead of
 * failing the write.
 *
 * mailbox_copy() is the one writer of the message for these mailers and delivery/pipe.h:
 * the df's CRLF lines as LF lines (a lone CR is kept), a last line without its end given
 * one, after the optional "From " line and Return-Path header; `put` receives consecutive
 * pieces and returns 0 or a negative errno, which stops the copy and is returned; a failed
 * pread returns its negative errno.
 */
#ifndef RINGMAIL_DELIVERY_MAILBOX_H
#define RINGMAIL_DELIVERY_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "delivery/local_proto.h"

struct mailbox_msg {
    int fd;               /* the df (or the qf), read with pread */
    uint64_t data_offset; /* where the data starts in fd */
    const char *sender;   /* the envelope sender, "" = <> ("MAILER-DAEMON" in the From line) */
    int64_t arrival;      /* Unix seconds, for the "From " line */
    unsigned timeout_s;   /* how long to wait for a lock, 0 = one try */
    const char *hostname; /* Maildir unique names; NULL = gethostname() */
};

#define MAILBOX_COPY_FROM_LINE   0x1u /* "From sender date" first */
#define MAILBOX_COPY_RETURN_PATH 0x2u /* "Return-Path: <sender>" */
#define MAILBOX_COPY_QUOTE_FROM  0x4u /* a line starting "From " becomes ">From " */
#define MAILBOX_COPY_BLANK_LINE  0x8u /* an empty line after the message (mbox) */

int mailbox_copy(const struct mailbox_msg *msg, unsigned flags,
                 int (*put)(void *arg, const char *p, size_t n), void *arg);

void mailbox_mbox(const char *path, const struct mailbox_msg *msg, struct local_reply *r);
void mailbox_maildir(const char *dir, const struct mailbox_msg *msg, struct local_reply *r);
void mailbox_file(const char *path, const struct mailbox_msg *msg, struct local_reply *r);

#endif
