/*
 * core/submit_headers.h — the header fields local submission adds when a message lacks
 * them, as sendmail's MSP (submit.cf) does: Date:, Message-ID:, From: and, when the message
 * names no recipient at all, "To: undisclosed-recipients:;".
 *
 * Pure formatting: the time, names and the fields already seen (SMTP_EV_HEADER_END's
 * headers_seen) are passed in; the lines are appended to the caller's buffer, each ending
 * in CRLF. Never reads the clock, the passwd file or the configuration; the zone is the
 * process's (localtime_r of the given time). Allocates only through the buffer.
 */
#ifndef RINGMAIL_CORE_SUBMIT_HEADERS_H
#define RINGMAIL_CORE_SUBMIT_HEADERS_H

#include <time.h>

#include "util/buf.h"

struct submit_headers_in {
    time_t now;            /* Date: and the Message-ID's stamp */
    const char *qid;       /* the message's queue id (Message-ID: <YYYYMMDDhhmm.QID@host>) */
    const char *hostname;  /* our name */
    const char *sender;    /* envelope sender mailbox, "" for the null sender */
    const char *fullname;  /* display name for From:, UTF-8; NULL or "" for none */
    unsigned headers_seen; /* SMTP_HDR_SEEN_* of the fields the message has */
};

/* Appends the missing lines, in this order (each only when its field was not seen):
 *   Date: Thu, 03 Dec 2026 16:54:41 +0100         (RFC 5322 3.3, local time and zone)
 *   Message-ID: <202612031654.QID@hostname>
 *   From: Full Name <sender>   or   From: sender  (no full name)
 *   To: undisclosed-recipients:;                  (none of To:, Cc:, Bcc: seen)
 * The full name is written as a phrase (RFC 5322 3.2.5): as it is when it is atoms
 * separated by single spaces, else as a quoted-string ('"' and '\' escaped), and as
 * RFC 2047 encoded-words (=?UTF-8?B?...?=, whole characters each, folded between them)
 * when it holds non-ASCII octets. The null sender is shown as MAILER-DAEMON@hostname.
 * Returns 0, or -1 when the buffer refused to grow (it is then left as it was). */
int submit_headers_format(struct buf *out, const struct submit_headers_in *in);

#endif
