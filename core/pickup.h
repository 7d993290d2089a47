/*
 * core/pickup.h — the maildrop's pickup (Postfix's pickup): hands every file that
 * ringmail-postdrop left in submission.maildrop while the daemon was down to the running
 * daemon, as the user who wrote it.
 *
 * A process of its own, forked by the privileged parent and running as the parent does
 * (root in production), so the parent's loop stays as it is and nothing in either parses
 * what a user wrote: the pickup looks only at directory entries and file metadata. It scans
 * the maildrop at once, whenever a file is renamed into it (inotify), and every
 * queue.interval (a file that failed is tried again then). For each regular file with one
 * link, opened without following links, it runs `ringmail-sendmail --pickup NAME [-C config]`
 * (the program beside ringmaild) with the open file as standard input, a scrubbed environment
 * and, as root, the file owner's uid and primary gid and no supplementary groups; without
 * root only the parent's own files are taken. One child at a time, each bounded by
 * PICKUP_CHILD_TIMEOUT. The child submits over submission.socket with XMAILDROP=NAME, and the
 * engine removes the file once the message is queued (core/submission.h). A file that fails
 * is left where it is and logged at every scan with the child's status; unfinished `.tmp-`
 * files older than PICKUP_TMP_MAX_AGE (a killed ringmail-postdrop) are removed.
 *
 * Forked twice, so the engine stays the parent's only child; the pickup watches the parent
 * (a pidfd) and ends when it does. It reads the maildrop path and the interval once:
 * changing them needs a restart.
 */
#ifndef RINGMAIL_CORE_PICKUP_H
#define RINGMAIL_CORE_PICKUP_H

#define PICKUP_CHILD_TIMEOUT 600         /* seconds for one file's submission */
#define PICKUP_TMP_MAX_AGE   (24 * 3600) /* seconds */

/* Forks the pickup process, which reads the configuration `config_path` (NULL = the
 * built-in default) itself and passes the path on to its children (-C). Call it once the
 * engine has read the whole spool at start-up (PRIVSEP_RECOVERED, after PRIVSEP_READY: a
 * file whose message recovery found queued is gone before the first scan, and the sockets
 * are served) and the parent has left the terminal if it detaches: the pickup keeps the
 * parent's log targets and standard error.
 * 0, or -1 (logged). */
int pickup_start(const char *config_path);

#endif
