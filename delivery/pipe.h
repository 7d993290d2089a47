/*
 * delivery/pipe.h — sendmail's program mailers: the message on a program's stdin.
 *
 * Run by the local-delivery agent (core/local_agent.h) as the recipient: forks and execs
 * argv (argv[0] the path; no shell unless the caller's argv is "/bin/sh", "-c", cmd), in
 * `dir` (the user's home, "/" when it is missing), with the environment replaced by
 * `env` (the agent builds HOME, USER, LOGNAME, SHELL, PATH=/usr/bin:/bin; nothing of the
 * daemon's passes), stdin the message with LF line ends after the optional "From " line
 * and "Return-Path:" header, stdout and stderr captured together (the first 1000 bytes go
 * into r->text for the log and the bounce). A program that outlives `timeout_s` is killed
 * (SIGTERM to its process group, then SIGKILL after 5 s) and the recipient deferred: 4.3.0
 * "Timeout waiting for <command>" (argv[2] of a "sh -c", else argv[0]). A program that
 * stops reading stdin early is not an error by itself: its exit status decides (SIGPIPE is
 * ignored while writing and the caller's disposition restored; the program gets every
 * signal at its default and an empty signal mask). A df that cannot be read kills the
 * program before its stdin is closed (a partial message must not look complete): deferred
 * 4.3.0. A program that exits stops the wait even if its children keep the pipes open.
 *
 * Exit status → result, as sendmail's sysexits with its texts: 0 delivered "Sent";
 * EX_TEMPFAIL (75) 4.0.0 "Deferred", EX_OSERR (71) 4.0.0, EX_IOERR (74) 4.3.0 are deferred;
 * EX_NOUSER (67) fails 5.1.1 "User unknown", EX_NOHOST (68) 5.1.2 "Host unknown",
 * EX_DATAERR (65) 5.6.0, EX_NOPERM (77) 5.7.0 "Insufficient permission", EX_CONFIG (78)
 * 5.3.5, EX_USAGE (64) 5.5.4, the other sysexits (EX_UNAVAILABLE "Service unavailable"...)
 * 5.3.0, a status outside sysexits 5.3.0 "unknown mailer error N"; killed by a signal:
 * deferred 4.3.0 "program died with signal N". r->text is the program's output when it
 * wrote any (control characters as spaces, runs of spaces as one), else that text. An exec
 * that fails is the child's output "Cannot exec <path>: <why>" with EX_TEMPFAIL for a
 * transient errno, else EX_UNAVAILABLE; an argv[0] that is not an absolute path fails
 * 5.3.5 without a fork. r->mailer and r->forward are the caller's.
 */
#ifndef RINGMAIL_DELIVERY_PIPE_H
#define RINGMAIL_DELIVERY_PIPE_H

#include <stdbool.h>

#include "delivery/local_proto.h"
#include "delivery/mailbox.h"

struct pipe_job {
    const char *const *argv; /* argv[0] the program's path; NULL-terminated */
    const char *const *env;  /* NULL-terminated, the whole environment */
    const char *dir;         /* working directory */
    bool from_line;          /* write the mbox "From " line first (mailer flag not 'n') */
    bool return_path;        /* write "Return-Path: <sender>" first (mailer flag P) */
    unsigned timeout_s;      /* 0 = none */
};

void pipe_deliver(const struct pipe_job *job, const struct mailbox_msg *msg, struct local_reply *r);

#endif
