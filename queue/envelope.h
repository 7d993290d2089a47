/*
 * queue/envelope.h — a queued message's envelope (the "qf" file), built for the queue
 * engine that delivers it later.
 *
 * The file is text, one record per line, documented in docs/queue.md. Per-recipient
 * state, the attempt counter and the next-attempt time live in fixed-width fields so the
 * delivery engine can update them in place (pwrite) without rewriting the file or the
 * message data. The data is a separate file ("df"), or, for a message smaller than the
 * spool's write chunk, follows the envelope in the qf itself (its end marker says which):
 * one file to create, fsync, rename and remove instead of two. Owns every string it points to;
 * envelope_free() releases them. Pure: serialisation to and from memory; the spool does
 * the I/O.
 */
#ifndef RINGMAIL_QUEUE_ENVELOPE_H
#define RINGMAIL_QUEUE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "queue/qid.h"
#include "util/buf.h"

enum envelope_rcpt_state {
    ENV_RCPT_PENDING = 'P',   /* not yet delivered */
    ENV_RCPT_WARNED = 'W',    /* not yet delivered, and its delay warning was sent (once) */
    ENV_RCPT_DELIVERED = 'D', /* never delivered again */
    ENV_RCPT_FAILED = 'F',    /* permanent failure, bounce due or sent */
};

/* One of the states above (a qf's byte). */
bool envelope_rcpt_state_valid(int state);
/* Still to be delivered: pending or warned. */
bool envelope_rcpt_open(enum envelope_rcpt_state state);

/* Widths of the fixed-width numeric fields (zero-padded decimal), for in-place updates. */
#define ENVELOPE_TIME_WIDTH  20 /* created, next attempt, size */
#define ENVELOPE_COUNT_WIDTH 10 /* attempts */
/* The last deferral's reason: printable ASCII, space-padded to this width (longer text is
 * cut), so each deferral rewrites it in place like the counters. */
#define ENVELOPE_REASON_WIDTH 160
/* next_attempt of a held message: never due (sendmail's quarantine, postsuper -h).
 * Releasing it sets next_attempt to 0. Fits the 20-digit time field. */
#define ENVELOPE_NEXT_HELD ((time_t)99999999999999999LL)
/* Longest maildrop file name ([A-Za-z0-9._-]). */
#define ENVELOPE_MAILDROP_MAX 64

enum { ENV_NOTIFY_NEVER = 1, ENV_NOTIFY_SUCCESS = 2, ENV_NOTIFY_FAILURE = 4, ENV_NOTIFY_DELAY = 8 };

struct envelope_rcpt {
    char *addr;      /* mailbox as accepted */
    char *orcpt;     /* DSN ORCPT "rfc822;xtext" or NULL */
    unsigned notify; /* ENV_NOTIFY_* bits, 0 = not given */
    /* A local target that alias expansion made (never a client's address): "|command" and
     * "/file" are the aliases file's program and file, any other address a mailbox that is
     * not expanded again. */
    bool expanded;
    enum envelope_rcpt_state state;
    size_t state_offset; /* byte offset of the state field in the qf (set by parse) */
};

struct envelope {
    char qid[QID_LEN + 1];
    char *sender;      /* "" for the null sender */
    time_t created;    /* wall clock seconds */
    uint64_t size;     /* octets in the df file */
    char *helo;        /* client's HELO/EHLO name */
    char *client_addr; /* "127.0.0.1" */
    char *client_name; /* reverse name if known, else NULL */
    char *proto;       /* "SMTP", "ESMTP", ... as in Received: */
    char *daemon;      /* listener name */
    char *msgid;       /* Message-ID header, or NULL */
    int body;          /* 0 none, 7 = 7BIT, 8 = 8BITMIME */
    bool smtputf8;
    int dsn_ret;            /* 0 none, 1 FULL, 2 HDRS */
    char *envid;            /* DSN ENVID xtext or NULL */
    unsigned attempts;      /* delivery attempts so far */
    time_t next_attempt;    /* wall clock seconds; 0 = as soon as possible */
    size_t attempts_offset; /* byte offsets of those two fields in the qf (set by parse) */
    size_t next_attempt_offset;
    char *last_reason;         /* last deferral's reason (sendmail's "Deferred: ..."), or
                                * NULL; parse trims the padding */
    size_t last_reason_offset; /* its field's offset in the qf; 0 = the qf predates the
                                * record (no in-place rewrite possible) */
    char *maildrop;            /* maildrop file name the message came from, or NULL */
    char *quarantine;          /* the access map's QUARANTINE:reason (sendmail's qf 'q' record): the
                                * message is held, never scheduled; NULL otherwise. Written as
                                * a reason field (ENVELOPE_REASON_WIDTH, cut), only when set */
    size_t quarantine_offset;  /* its field's offset in the qf; 0 = no record (a release
                                * blanks the field in place, which parses as NULL) */
    char *auth;                /* MAIL's AUTH= to pass on (RFC 4954 5, sendmail's e_auth_param):
                                * xtext or "<>", recorded only for an authenticated client;
                                * NULL = none (nothing is sent) */
    struct envelope_rcpt *rcpts;
    size_t n_rcpts;
    /* The data follows the envelope in the qf (end marker "=") instead of being the df
     * (end marker "."). Set for the writer; parse sets it and data_offset, the offset of
     * the data's first octet in the qf (0 when the data is in the df). */
    bool data_inline;
    size_t data_offset;
};

/* A maildrop name as the envelope accepts it: 1..ENVELOPE_MAILDROP_MAX octets of
 * [A-Za-z0-9._-], and not "." or "..". */
bool envelope_maildrop_name_valid(const char *name);
/* Formats `text` (NULL = none) as the reason field: octets outside printable ASCII become
 * '?', cut or space-padded to exactly ENVELOPE_REASON_WIDTH octets (not terminated). The
 * one formatter of the field: envelope_write and the in-place rewrite both use it. */
void envelope_reason_format(char out[ENVELOPE_REASON_WIDTH], const char *text);

/* Serialises to `out` (appended), up to and including the end marker: with data_inline
 * the caller appends exactly e->size octets of data after it. -1 only if the buffer's
 * limit is hit (or memory ran out); `out` is then unchanged. NULL strings are omitted records
 * (sender and recipient addresses: written as ""); times before 1970 are written as 0. An invalid
 * maildrop name is refused (-1). */
int envelope_write(const struct envelope *e, struct buf *out);
/* Parses a qf image, the whole file: an envelope with inline data must be followed by
 * exactly e->size octets (fewer or more is refused as truncated or damaged). 0, or -1 with
 * a reason naming the line in `err`. On success `e` owns its strings. Files written before the
 * reason and maildrop records existed parse (last_reason NULL, last_reason_offset 0, maildrop
 * NULL). */
int envelope_parse(const char *data, size_t len, struct envelope *e, char *err, size_t errlen);
void envelope_free(struct envelope *e);

#endif
