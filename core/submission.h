/*
 * core/submission.h — local submission: who the caller on submission.socket is, what it
 * may say about itself, the lines its message gets, and local submission's files: the
 * maildrop directory and the maildrop files a submission names (MAIL ... XMAILDROP=<name>).
 *
 * The caller is known by SO_PEERCRED, never by what it says: relaying is always allowed
 * (it is a local user, as sendmail's MSP relays through the MTA), and a sender that is not
 * the caller's own address is marked with sendmail's X-Authentication-Warning: unless the
 * caller is trusted (uid 0, run_as, submission.trusted_users: sendmail's class t, or a member
 * of submission.trusted_groups).
 *
 * The maildrop is where ringmail-postdrop leaves messages while the daemon is down
 * (docs/config.md, `submission`). The privileged parent makes it at start; the engine, its
 * owner, removes a file once the message it held is safely queued (after the commit, before
 * delivery), and recovery removes the file of any queued message that still names one, so a
 * crash between the commit and the removal never submits it twice. A file is removed only
 * when it is a regular file owned by the uid that submitted it: nobody can make the daemon
 * remove another user's file. Errors are logged here (the submission itself stands).
 */
#ifndef RINGMAIL_CORE_SUBMISSION_H
#define RINGMAIL_CORE_SUBMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/config.h"
#include "util/buf.h"

/* The process on the other end of submission.socket. */
struct submission_caller {
    uid_t uid;
    gid_t gid;
    pid_t pid;
    bool trusted;       /* may set any sender without a warning */
    char user[64];      /* login name; the uid in decimal when it has none */
    char fullname[128]; /* the GECOS name up to its first comma; "" when none */
};

/* Fills `c` for the peer `uid`/`gid`/`pid` (getpwuid_r; trust from cfg). */
void submission_caller_init(const struct config *cfg, uid_t uid, gid_t gid, pid_t pid,
                            struct submission_caller *c);
/* Whether `sender` is the caller's own address: <user>@<a local domain>, case-insensitive
 * (sendmail compares the sender's local user with the real user). The null sender is not. */
bool submission_own_sender(const struct config *cfg, const struct submission_caller *c,
                           const char *sender);
/* Our trace lines for a local message: sendmail's MSP Received: ("(from user@localhost)",
 * no "with", as submit.cf writes it), then X-Authentication-Warning: when an untrusted
 * caller set a sender that is not its own ("" is written "<>"). `date` is RFC 5322. */
void submission_trace(const struct config *cfg, const struct submission_caller *c,
                      const char *sender, const char *qid, const char *version, const char *date,
                      struct buf *out);

/* The parent, before the engine starts: makes submission.maildrop if missing. As root:
 * owner `owner`, group maildrop_group, mode 1730 (the group cannot list it; the sticky bit
 * keeps each user's files their own); without that group 1733 and a warning. Not root: the
 * invoking user's, 0700, and an existing directory is left as it is. 0, or -1 with `err`. */
int submission_maildrop_prepare(const struct config *cfg, bool root, uid_t owner, char *err,
                                size_t errlen);

/* Whether <maildrop>/<name> is a regular file owned by `uid`: checked before the commit, so
 * a queued message names only a file its submitter owned (recovery trusts that name). */
bool submission_maildrop_owned(const struct config *cfg, const char *name, uid_t uid);

/* Removes <maildrop>/<name> if it is a regular file owned by `uid`, then makes the removal
 * durable (fsync of the directory). `name` was checked by the SMTP layer ([A-Za-z0-9._-],
 * no leading dot); anything else is refused here too. Never blocks long: one directory. */
void submission_maildrop_remove(const struct config *cfg, const char *name, uid_t uid);

/* Recovery found a queued message whose envelope names maildrop file `name`: the file goes,
 * if still there (whoever owns it: the name was checked against its submitter before the
 * commit, submission_maildrop_owned, and names are never reused). */
void submission_recovered_maildrop(const struct config *cfg, const char *name);

#endif
