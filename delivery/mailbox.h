/*
 * delivery/mailbox.h — the built-in local mailers: append to an mbox file, write into a
 * Maildir, append to a file named by an alias or a .forward.
 *
 * Run by the local-delivery agent (core/local_agent.h) after it has become the recipient:
 * these functions block, check nothing about identity, and never change it. The message
 * is read from `msg->fd` with pread from offset 0 (the spool's df: CRLF lines, headers then
 * body) and written with LF line ends, after a "Return-Path: <sender>" line (sendmail's
 * local mailer, flag P), as mail.local writes it.
 *
 * mbox: the mailbox is locked with fcntl (F_SETLKW, bounded by the timeout) and with a
 * dotlock (path.lock, created O_EXCL, stale after 5 minutes, as mail.local and Debian's
 * liblockfile), created 0600 when missing (never through a symbolic link, never when it is
 * not a regular file owned by the caller), the "From sender date" line written first, body
 * lines starting with "From " quoted as ">From ", a blank line added at the end; on any
 * failed write the file is truncated back to its size before the delivery, and fsync
 * decides success.
 * Maildir: tmp/ → fsync → link into new/ (rename when link is refused) → fsync of new/,
 * with a unique name "time.Pn_Qcount.host" (the maildir spec); the directories are made
 * 0700 when missing.
 * File (an alias's or .forward's "/path"): as mbox without the dotlock, the file must exist
 * or is created 0600; /dev/null is accepted and writes nothing.
 *
 * Results: `r->status` is LOCAL_DELIVERED, LOCAL_DEFERRED (a full disk is 4.2.2, a held
 * lock 4.2.0: tried again later) or LOCAL_FAILED (a mailbox that is a symlink or not a
 * regular file: 5.2.0), with `r->enh` and `r->text` in sendmail's words.
 */
#ifndef RINGMAIL_DELIVERY_MAILBOX_H
#define RINGMAIL_DELIVERY_MAILBOX_H

#include <stdint.h>

#include "delivery/local_proto.h"

struct mailbox_msg {
    int fd;               /* the df, read with pread */
    const char *sender;   /* the envelope sender, "" = <> ("MAILER-DAEMON" in the From line) */
    int64_t arrival;      /* Unix seconds, for the "From " line */
    unsigned timeout_s;   /* how long to wait for a lock */
    const char *hostname; /* Maildir unique names */
};

void mailbox_mbox(const char *path, const struct mailbox_msg *msg, struct local_reply *r);
void mailbox_maildir(const char *dir, const struct mailbox_msg *msg, struct local_reply *r);
void mailbox_file(const char *path, const struct mailbox_msg *msg, struct local_reply *r);

#endif
