/*
 * cli/msgprep.h — the message a program pipes to sendmail, made ready for SMTP with BDAT
 * (pure: no I/O; the caller reads stdin and talks to the daemon).
 *
 * Input is fed in chunks of any size; the result never depends on where they split.
 * Rules (sendmail 8's for a message read from a program, except where noted):
 *  - line ends: LF and CRLF both become CRLF; a bare CR (or a run of CRs) not followed by
 *    LF ends the line too, and CRs before an LF are one line end ("a\r\r\n" is "a\r\n",
 *    what double conversion makes of a CRLF). sendmail would pass a bare CR on; the
 *    daemon refuses it, so none ever reaches the output. A last line without a line end
 *    gets one.
 *  - without ignore_dots (-i/-oi), a line holding only "." ends the message; what follows
 *    is not read (msgprep.done is set). Other lines are never dot-stuffed or unstuffed.
 *  - a first line starting with "From " (an mbox separator) is dropped.
 *  - the header block runs up to the first empty line, or up to the first line that is
 *    neither a header field ("name:") nor a continuation of one: that line starts the
 *    body (nothing is inserted; the daemon handles it). It is kept in memory, bounded by
 *    max_header; everything after it is streamed to the body callback, never held.
 *  - Bcc: and Resent-Bcc: are removed from the header, with or without -t (sendmail never
 *    passes them on; a message left without To/Cc gets "To: undisclosed-recipients:;"
 *    from the daemon, as sendmail's MSP adds).
 *  - recipients: with read_recipients (-t), the addresses of To:, Cc: and Bcc: (only the
 *    Resent-To/Cc/Bcc ones when any Resent- field is present, as sendmail does), minus the
 *    command-line recipients (sendmail 8: "any addresses in the argument list will be
 *    suppressed"); without -t, the command-line recipients. Both are parsed as RFC 5322
 *    address lists (so "a@b, c@d" in one argument is two recipients) and de-duplicated
 *    (local part exact, domain case-insensitive). An address without '@' (cron's
 *    "To: root") is kept as is; qualifying it is the caller's business.
 *
 * Errors: the functions return 0 or a sysexits code, with msgprep.error saying what is
 * wrong in a line sendmail could have printed; after an error the object only accepts
 * msgprep_free(). Ownership: msgprep owns header, rcpts and their strings until
 * msgprep_free(). Not thread-safe.
 */
#ifndef RINGMAIL_CLI_MSGPREP_H
#define RINGMAIL_CLI_MSGPREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define MSGPREP_HEADER_DEFAULT (1024 * 1024) /* max_header when 0 */

struct msgprep;

/* Called once when the header block is complete, before any body octet (from
 * msgprep_finish for a message without body): m->header and m->rcpts are final, so the
 * caller can send MAIL, RCPT and the header. Non-zero (a sysexits code) stops the run
 * and is returned by msgprep_feed/msgprep_finish. */
typedef int (*msgprep_header_fn)(void *arg, const struct msgprep *m);
/* Body octets in order (CRLF lines, starting with the empty line that ended the header
 * when there was one): header + body is the message. Non-zero stops the run. */
typedef int (*msgprep_body_fn)(void *arg, const char *bytes, size_t len);

struct msgprep_settings {
    bool read_recipients;             /* -t */
    bool ignore_dots;                 /* -i, -oi */
    uint64_t max_size;                /* 0 = no limit: octets of header + body as output (CRLF) */
    size_t max_header;                /* 0 = MSGPREP_HEADER_DEFAULT: octets of the header block */
    size_t max_line;                  /* 0 = no limit: octets of one line without its CRLF (RFC 5322
                                         says 998; pass the daemon's limit) */
    const char *const *cmdline_rcpts; /* the command-line recipients (sendmail_args) */
    size_t n_cmdline_rcpts;
    msgprep_header_fn on_header;
    msgprep_body_fn on_body;
    void *arg;
};

struct msgprep {
    struct buf header; /* CRLF lines, Bcc removed, without the empty line that ends it */
    char **rcpts;      /* the envelope recipients, malloc'd strings (addr-specs) */
    size_t n_rcpts;
    uint64_t size;   /* octets output so far (header + body) */
    bool done;       /* a "." line ended the message: stop reading */
    char error[256]; /* why the last call failed, "" if it did not */
    /* private */
    struct msgprep_settings set;
    char **cmdline; /* the command-line recipients, parsed (sendmail drops them with -t) */
    size_t n_cmdline;
    struct buf line;      /* the header line being read */
    struct buf out;       /* body octets not yet passed on */
    int state;            /* enum in msgprep.c */
    int failed;           /* the sysexits code once an error happened */
    bool cr_pending;      /* a CR was read; a following LF belongs to it */
    bool first_line;      /* for the mbox "From " line */
    bool dot_pending;     /* a body line so far holds only "." */
    size_t body_line_len; /* octets of the current body line */
};

/* Settings are copied; the cmdline_rcpts strings are parsed here and not kept. Parses the
 * command-line recipients: EX_DATAERR for a bad address, EX_USAGE "Recipient names must
 * be specified" without -t and without recipients, EX_OSERR without memory. */
int msgprep_init(struct msgprep *m, const struct msgprep_settings *s);
/* EX_DATAERR: "message contains a NUL octet", "line longer than N octets", "header
 * longer than N octets", "message too large (more than N octets)", a bad address in a
 * recipient field; EX_USAGE: "No recipient addresses found in header" (-t); EX_OSERR. */
int msgprep_feed(struct msgprep *m, const void *data, size_t len);
/* End of input: completes the last line, ends the header if still open (calling
 * on_header) and passes on the remaining body. */
int msgprep_finish(struct msgprep *m);
void msgprep_free(struct msgprep *m);

/* An RFC 5322 address-list (obsolete syntax included: empty members, source routes,
 * CFWS around dots, comments anywhere, folded lines) -> the addr-specs it names,
 * appended to *list (malloc'd strings, growing *list; the caller frees both). Groups
 * give their members ("undisclosed-recipients:;" gives none). An addr-spec is output
 * without comments or white space, its quoted local part kept quoted. 0, or -1 with
 * *why set (a static string) for bad syntax or no memory (*why "out of memory"). */
int msgprep_address_list(const char *s, size_t len, char ***list, size_t *n, const char **why);

#endif
