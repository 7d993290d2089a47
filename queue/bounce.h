/*
 * queue/bounce.h — delivery status notifications: who gets one, and the message itself.
 *
 * The generator writes a complete RFC 3464 report (multipart/report;
 * report-type=delivery-status) in sendmail's wording: a human-readable text/plain part,
 * the message/delivery-status part (RFC 3461 ENVID and ORCPT carried back), then the
 * original as message/rfc822 or only its header as text/rfc822-headers. CRLF line ends,
 * no line over 998 octets, a boundary that occurs nowhere in the content.
 * docs/queue.md, "Bounces", is the operator's reference.
 *
 * Pure: no I/O, no clock (now is passed in; dates are written in local time, as
 * sendmail does). Borrows every input; the output is appended to the caller's buffer.
 * Thread-safe (no shared state).
 */
#ifndef RINGMAIL_QUEUE_BOUNCE_H
#define RINGMAIL_QUEUE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue/backoff.h"
#include "queue/envelope.h"
#include "util/buf.h"

/* The envelope `daemon` of the notices the MTA makes itself: a notice to the sender, and
 * a double bounce (a failed notice reported to the postmaster), which is never reported
 * again. */
#define BOUNCE_DAEMON        "bounce"
#define BOUNCE_DAEMON_DOUBLE "double-bounce"

enum bounce_kind {
    BOUNCE_FAILURE, /* "Returned mail: see transcript for details"; full content */
    BOUNCE_DELAY,   /* "Warning: could not send message for past 4 hours"; headers */
    BOUNCE_SUCCESS, /* "Return receipt"; headers */
};

/* One recipient's line in a notice. */
struct bounce_rcpt {
    const char *addr;       /* the recipient as accepted */
    const char *orcpt;      /* DSN ORCPT as received ("rfc822;a+2Bb@x", xtext) or NULL */
    char action;            /* 'f' failed, 'd' delayed, 'D' delivered, 'r' relayed,
                             * 'x' expanded */
    const char *status;     /* RFC 3463 "5.1.1"; NULL or malformed: 5.0.0, 4.0.0, 2.0.0 */
    const char *remote_mta; /* "mx.example.com" or NULL */
    const char *diagnostic; /* the SMTP reply "550 5.1.1 <u@x>... User unknown" or NULL */
    time_t last_attempt;    /* 0 = unknown */
};

struct bounce_params {
    enum bounce_kind kind;
    const struct envelope *env; /* the original: qid, sender, created, envid, dsn_ret,
                                 * helo, client_addr, client_name */
    const char *data;           /* the original message (the df: CRLF lines) */
    size_t len;
    const struct bounce_rcpt *rcpts; /* the recipients this notice reports */
    size_t n_rcpts;
    const char *to;                           /* the notice's recipient (bounce_recipient_for) */
    bool double_bounce;                       /* to the postmaster about a failed notice */
    const char *hostname;                     /* ours: Reporting-MTA, MAILER-DAEMON@hostname */
    const char *notice_qid;                   /* the notice's own queue id, for its Message-ID */
    size_t max_returned;                      /* an original larger than this comes back as its
                                               * header only (sendmail's MaxMessageSize); 0 = any */
    const struct queue_retry_settings *retry; /* queuewarn, queuereturn for the wording */
    time_t now;
};

/* What the caller needs for the notice's own envelope. */
struct bounce_info {
    bool eight_bit;    /* octets above 127: submit it with BODY=8BITMIME */
    bool headers_only; /* the original came back as text/rfc822-headers */
    bool over_limit;   /* ...because it was larger than max_returned */
};

/* Appends the notice to `out`. 0, or -1 when the buffer's limit is hit or memory ran out
 * (out unchanged). env, to, hostname and retry are required; data may be NULL when len
 * is 0; notice_qid NULL uses the original's id; info may be NULL. */
int bounce_generate(const struct bounce_params *p, struct buf *out, struct bounce_info *info);

/* Whether a recipient with these RFC 3461 NOTIFY bits (ENV_NOTIFY_*; 0 = not given) gets
 * a notice for this action. NEVER: none. Not given: failures and delays (sendmail's
 * default, FAILURE,DELAY). SUCCESS covers delivered, relayed and expanded. */
bool bounce_notify_wants(unsigned notify, char action);

/* Where a notice of this kind about this message goes. */
struct bounce_target {
    const char *to;     /* the sender, the postmaster, or NULL: no notice */
    bool double_bounce; /* give the notice envelope daemon BOUNCE_DAEMON_DOUBLE */
    const char *reason; /* when to is NULL: why, for the log */
};
/* A notice never goes to the null sender: a failed message from <> goes once to
 * `postmaster` (a double bounce); a failed double bounce, and any delay or success
 * notice about a message from <>, is dropped (the caller logs `reason`). */
struct bounce_target bounce_recipient_for(const struct envelope *e, enum bounce_kind kind,
                                          const char *postmaster);

#endif
