/*
 * core/control_proto.h — the control socket's requests, parsed and matched: pure (no I/O,
 * no clock), unit-tested (tests/unit/test_control_proto.c). core/control.c serves them.
 *
 * A request is one line `VERB ARG...` (docs/queue.md, "The control socket"); ARGs are
 * tokens without white space. TARGETs of HOLD, RELEASE, DELETE and REQUEUE (FILTERs of
 * FLUSH, which also takes the other TARGETs):
 *   ALL            every message
 *   <queue id>     that message (several ids: any of them)
 *   [!]R<text>     a recipient still to be delivered contains <text> (sendmail's -qR)
 *   [!]S<text>     the sender contains <text> (-qS)
 *   [!]I<text>     the queue id contains <text> (-qI)
 * Texts compare without regard to case; with `!` the test is negated (-q!R...); every
 * filter given must hold. A token that starts with R, S or I (after an optional `!`) is a
 * filter: queue ids begin with a digit for the next few centuries (queue/qid.h).
 *
 * Owns: the request's copy of the line; control_request_free() releases it.
 */
#ifndef RINGMAIL_CORE_CONTROL_PROTO_H
#define RINGMAIL_CORE_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "queue/qid.h"

/* Longest request line, its LF included. */
#define CONTROL_LINE_MAX 4096

enum control_verb {
    CONTROL_FLUSH,
    CONTROL_HOLD,
    CONTROL_RELEASE,
    CONTROL_DELETE,
    CONTROL_REQUEUE,
    CONTROL_HOSTSTAT,
    CONTROL_PURGESTAT,
    CONTROL_WATCH,
};

struct control_filter {
    char kind; /* 'R', 'S' or 'I' */
    bool negate;
    const char *text; /* into the request's copy of the line; never empty */
};

struct control_request {
    enum control_verb verb;
    bool all;          /* ALL given */
    const char **qids; /* bare queue ids (QID_LEN characters each) */
    size_t n_qids;
    struct control_filter *filters; /* all must hold */
    size_t n_filters;
    char *line; /* the copy the pointers above point into */
};

/* Parses one line (without its LF; a CR before it is allowed). 0, or -1 with `err` saying
 * what is wrong in words for the client (the answer is ERR 64 <err>); `req` then holds
 * nothing. */
int control_parse(const char *line, size_t len, struct control_request *req, char *err,
                  size_t errlen);
void control_request_free(struct control_request *req);

/* The verb's name ("FLUSH"), for logs. */
const char *control_verb_name(enum control_verb v);
/* Whether the verb is for privileged callers only (everything but FLUSH and WATCH). */
bool control_verb_privileged(enum control_verb v);
/* Whether matching needs the sender or the recipients (an R or S filter). */
bool control_needs_envelope(const struct control_request *req);
/* Whether the message matches the request's targets. `sender` and `rcpts` (the
 * recipients still to be delivered) are only read when control_needs_envelope(). */
bool control_match(const struct control_request *req, const char *qid, const char *sender,
                   const char *const *rcpts, size_t n_rcpts);

#endif
