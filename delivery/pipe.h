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
 * (SIGTERM, then SIGKILL after 5 s) and the recipient deferred: 4.3.0 "Timeout waiting for
 * <program>". A program that stops reading stdin early is not an error by itself: its exit
 * status decides (the writer ignores SIGPIPE).
 *
 * Exit status → result, as sendmail's sysexits: 0 delivered; EX_TEMPFAIL (75) 4.0.0
 * "Deferred", EX_OSERR (71) 4.0.0, EX_IOERR (74) 4.3.0 are deferred; EX_NOUSER (67) fails
 * 5.1.1 "User unknown", EX_NOHOST (68) 5.1.2 "Host unknown", EX_DATAERR (65) 5.6.0,
 * EX_NOPERM (77) 5.7.0 "Insufficient permission", EX_CONFIG (78) 5.3.5, EX_USAGE (64)
 * 5.5.4, every other status (EX_UNAVAILABLE and unknown ones) 5.3.0 "Service unavailable";
 * killed by a signal: deferred 4.3.0. r->text is the program's output when it wrote any,
 * else sendmail's text for the status.
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
