/*
 * smtp/smtp_server_int.h — private to the smtp_server_* / smtp_cmd_* files.
 *
 * One concern per file:
 *   smtp_server.c          life cycle, the input loop, waiting (commit, TLS, slow-down),
 *                          deadlines, closing, the transaction
 *   smtp_server_reply.c    reply formatting and sending, error accounting and throttling
 *   smtp_cmd.c             command-line framing, the command table, session verbs
 *   smtp_cmd_envelope.c    MAIL and RCPT (paths, ESMTP parameters, recipient policy)
 *   smtp_server_check.c    commands whose check is answered later (a hook said "pending"):
 *                          what they keep while waiting, the verdict, the refusal's wording
 *   smtp_cmd_auth.c        AUTH (RFC 4954): the exchange, its wait, failures, AUTH required
 *   smtp_server_data.c     DATA and BDAT: the commands, dot framing, chunks, message end
 *   smtp_server_msg.c      the message content checks shared by DATA and BDAT (bare CR/LF,
 *                          NUL, sizes, line and header limits, Message-ID)
 */
#ifndef RINGMAIL_SMTP_SERVER_INT_H
#define RINGMAIL_SMTP_SERVER_INT_H

#include <stdarg.h>

#include "smtp/smtp_server.h"
#include "util/buf.h"

/* Where input goes. Waiting for a commit and slowing down hold input; TLS and CLOSED
 * discard it. */
enum smtp_server_state {
    SMTP_SRV_CMD,         /* command lines */
    SMTP_SRV_DATA,        /* DATA content, up to CRLF.CRLF */
    SMTP_SRV_BDAT,        /* the octets of a BDAT chunk */
    SMTP_SRV_WAIT_COMMIT, /* DATA_END sent, waiting for smtp_server_commit_done() */
    SMTP_SRV_WAIT_CHECK,  /* a check said "pending": waiting for smtp_server_check_done() */
    SMTP_SRV_WAIT_TLS,    /* STARTTLS accepted, waiting for smtp_server_tls_started() */
    SMTP_SRV_WAIT_AUTH,   /* a SASL step asked for, waiting for smtp_server_auth_done() */
    SMTP_SRV_CLOSED,      /* CLOSE sent; input is ignored */
};

/* The timeout that governs the next wait for input (struct smtp_server_timeouts). */
enum smtp_server_phase {
    SMTP_PH_INITIAL,
    SMTP_PH_HELO,
    SMTP_PH_MAIL,
    SMTP_PH_RCPT,
    SMTP_PH_DATAINIT,
    SMTP_PH_DATABLOCK,
    SMTP_PH_DATAFINAL,
    SMTP_PH_RSET,
    SMTP_PH_QUIT,
    SMTP_PH_MISC,
};

/* Why a message will be refused at its end; the first reason found wins. */
enum smtp_msg_refusal {
    SMTP_MSG_OK,
    SMTP_MSG_BARE_CRLF,
    SMTP_MSG_NUL,
    SMTP_MSG_TOO_BIG,
    SMTP_MSG_HEADERS,
    SMTP_MSG_LINE,
    SMTP_MSG_NOMEM, /* no room to hold a header line back (settings.local) */
};

/* What a BDAT chunk's octets are for once read. */
enum smtp_bdat_mode {
    SMTP_BDAT_CHUNK,     /* part of the message, more to come */
    SMTP_BDAT_LAST,      /* the message's last chunk */
    SMTP_BDAT_NEED_MAIL, /* refused: consumed, then 503 */
    SMTP_BDAT_NEED_RCPT,
    SMTP_BDAT_REFUSED, /* refused by io->check_data: consumed, then s->bdat_refusal */
};

/* The command a check is pending for (smtp_server_check.c). */
enum smtp_check_step {
    SMTP_CHECK_HELO,
    SMTP_CHECK_MAIL,
    SMTP_CHECK_RCPT,
    SMTP_CHECK_DATA,
    SMTP_CHECK_BDAT, /* a message's first BDAT; its size and mode are in the session */
};

/* What a pending HELO, MAIL or RCPT is given to keep (smtp_server_check_wait). */
struct smtp_check_args {
    const char *name; /* the HELO name, the sender or the recipient */
    bool esmtp;       /* HELO: it was EHLO */
    const char *raw;  /* RCPT: the path as received (REJECT's arg) */
    size_t rawlen;
    struct smtp_mail_params *mail;       /* MAIL: taken */
    const struct smtp_rcpt_params *rcpt; /* RCPT: copied */
};

/* What a pending HELO, MAIL or RCPT needs once the verdict comes: copies, since what the
 * hook was given is valid only during the call. One allocation, freed with the verdict or
 * the session. */
struct smtp_check {
    bool esmtp; /* HELO: it was EHLO */
    union {
        struct smtp_mail_params mail; /* MAIL: owns its allocated values */
        struct smtp_rcpt_params rcpt;
    } params;
    char *name; /* in text */
    char *raw;  /* in text, after name; "" but for RCPT */
    char text[];
};

#define SMTP_REPLY_LINE 512 /* RFC 5321 4.5.3.1.5: a reply line including CRLF */
#define SMTP_MSGID_MAX  250 /* longer Message-IDs are truncated for the log */
/* Longest field name (with the white space before its ':') a header line may have: RFC
 * 5322 2.1.1's line limit. A line still without ':' past it is no header field. */
#define SMTP_HDR_NAME_MAX 998

/* Per-message content state (smtp_server_msg.c); reset with the transaction. */
struct smtp_msg {
    uint64_t size;       /* octets of content (after dot-unstuffing) */
    uint64_t line_len;   /* octets of the current line so far */
    uint64_t header_len; /* octets of the header section so far */
    char *msgid;         /* the first Message-ID value, NUL-terminated; lazily allocated */
    /* settings.local: a line that may be a field name or the first line after the header
     * is held back until that is known (SMTP_EV_HEADER_END goes before it); what of it
     * came in an earlier call waits here. SMTP_HDR_NAME_MAX octets, allocated with the
     * message. */
    char *hold;
    uint16_t hold_len;
    uint8_t msgid_len;
    uint8_t refusal;   /* enum smtp_msg_refusal */
    uint8_t hdr;       /* header scanner state (smtp_server_msg.c) */
    uint8_t name_pos;  /* characters of this field's name matched against the known ones */
    uint8_t name_cand; /* bits of the known field names still matching (smtp_server_msg.c) */
    uint8_t seen;      /* SMTP_HDR_SEEN_* of the fields seen */
    bool cr;           /* the last content octet was CR */
    bool have_field;   /* a header field was seen: a WSP line start is a continuation */
    bool capturing;    /* inside the (first) Message-ID field's value */
};

struct smtp_server {
    const struct smtp_server_settings *set;
    const struct smtp_server_io *io;
    char *client;
    struct buf in;         /* an incomplete command line, or input held while waiting */
    struct buf held_reply; /* the reply delayed by a slow-down */
    struct smtp_transaction tx;
    struct smtp_msg msg;
    /* While a check is pending (SMTP_SRV_WAIT_CHECK): what the command keeps (NULL for
     * DATA and BDAT, which keep nothing) and which command it is. */
    struct smtp_check *check;
    uint8_t check_step; /* enum smtp_check_step */
    /* The reply to a BDAT that io->check_data refused, sent once its octets are read. */
    struct buf bdat_refusal;
    uint64_t now;           /* the time given with the current call */
    uint64_t timeout_at;    /* absolute; 0 = none */
    uint64_t slow_until;    /* absolute end of a slow-down; 0 = none */
    uint64_t data_deadline; /* the message's data clock (limits.min_data_rate), absolute */
    uint32_t data_credit;   /* ms * rate of credit not yet whole (< min_data_rate) */
    uint64_t bdat_left;     /* octets of the current chunk still to read */
    uint64_t bdat_size;     /* octets of the current chunk */
    unsigned errors;
    unsigned bad_rcpts;
    uint8_t state;     /* enum smtp_server_state */
    uint8_t phase;     /* enum smtp_server_phase */
    uint8_t dot;       /* DATA framing state (smtp_server_data.c) */
    uint8_t bdat_mode; /* enum smtp_bdat_mode */
    bool tls;          /* in TLS: STARTTLS is neither offered nor accepted */
    bool in_message;   /* DATA_START sent and neither DATA_END nor DATA_ABORT yet */
    bool discarding;   /* skipping the rest of an over-long command line */
    bool discard_cr;   /* ... and its last octet so far was CR */
    bool auth_reading; /* 334 sent: the next line is an AUTH response, not a command */
    bool authenticated;
    uint8_t auth_failures;
    /* The command being executed, for REJECT events (valid during dispatch only). */
    const char *cmd_name;
    const char *cmd_arg;
    size_t cmd_arglen;
};

/* smtp_server.c */
void smtp_server_event(struct smtp_server *s, const struct smtp_event *ev);
void smtp_server_set_phase(struct smtp_server *s, enum smtp_server_phase phase);
/* The data clock of a message (limits.min_data_rate, smtp_server.h "Timeouts"): started by
 * its first data (DATA) or its first BDAT, resumed by each later BDAT, and moved on by
 * every read of `n` octets of data. With min_data_rate 0 each of them restarts datablock. */
void smtp_server_data_clock_start(struct smtp_server *s);
void smtp_server_data_clock_resume(struct smtp_server *s);
void smtp_server_data_clock_read(struct smtp_server *s, size_t n);
/* Runs the input loop on what was held while waiting (after the wait ended). */
void smtp_server_run_held(struct smtp_server *s);
/* Ends the transaction (sender, recipients, message state), keeping HELO. */
void smtp_server_tx_reset(struct smtp_server *s);
/* RSET, HELO/EHLO and STARTTLS drop the transaction: DATA_ABORT for a message in
 * progress, the reset, and SMTP_EV_RSET if there was a transaction (or `always`). */
void smtp_server_tx_drop(struct smtp_server *s, bool always);
/* DATA_ABORT for a message in progress; `reply` is what was sent, or NULL. */
void smtp_server_abort_message(struct smtp_server *s, const char *reply);
/* Sends `code enh "<host> text"`, aborts a message in progress, sends CLOSE. */
void smtp_server_close(struct smtp_server *s, int code, const char *enh, const char *text,
                       const char *reason);

/* smtp_server_reply.c */
void smtp_server_send(struct smtp_server *s, const char *bytes, size_t len);
void smtp_server_reply(struct smtp_server *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A reply that refuses the message in progress: DATA_ABORT carrying it, then the reply. */
void smtp_server_abort_reply(struct smtp_server *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A multi-line reply: "code-enh line" for all but the last, "code enh line" for it. */
void smtp_server_reply_lines(struct smtp_server *s, int code, const char *enh,
                             const char *const *lines, size_t n);
/* A command refused for the client's fault: the reply, a REJECT event for the current
 * command, and the error count with its slow-down and drop. */
void smtp_server_cmd_error(struct smtp_server *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A refusal with an explicit REJECT argument; `counts` adds it to the error count. `line`
 * is the complete reply (CRLF included), possibly of several lines. */
void smtp_server_reject(struct smtp_server *s, bool counts, const char *arg, size_t arglen,
                        const char *line, size_t len);
/* Hold the next reply (and all input) for one second. */
void smtp_server_slow_down(struct smtp_server *s);
/* Ends a slow-down: the held reply goes out. */
void smtp_server_flush_held(struct smtp_server *s);
/* Copies client text for a log or reply: printable ASCII, the rest as '?', truncated. */
void smtp_server_printable(char *out, size_t outlen, const char *in, size_t len);
/* A reply a filter gave verbatim (smtp_server.h "Verbatim replies"): returns it with its CRLF, kept
 * in `tmp` (which the caller frees), or SMTP_SERVER_FALLBACK_REPLY when it is malformed or
 * memory ran out. *len is set to the reply's length. */
const char *smtp_server_verbatim(struct buf *tmp, const char *reply, size_t *len);
/* "<code> <enh> <text>" from a caller that refuses the message: the reply, or the fallback
 * when code or enh is malformed (smtp_server_commit_refused). Returns the length. */
size_t smtp_server_refusal_line(char out[SMTP_REPLY_LINE], int code, const char *enh,
                                const char *text);

/* smtp_cmd.c */
size_t smtp_cmd_input(struct smtp_server *s, const char *p, size_t len);
/* The verdict on a valid HELO/EHLO, at once or after a wait: accepted (`reply` NULL) or
 * refused with the complete reply `reply` (len octets, CRLF included). Either way the
 * transaction is dropped (RFC 5321 4.1.4); refused, the HELO name is forgotten too. */
void smtp_cmd_hello_decided(struct smtp_server *s, const char *name, bool esmtp, const char *reply,
                            size_t len);
/* The ESMTP extensions as smtp_addr sees them (none after HELO). */
void smtp_cmd_ext(const struct smtp_server *s, struct smtp_ext *ext);

/* smtp_cmd_envelope.c */
void smtp_cmd_mail(struct smtp_server *s, const char *arg, size_t len);
/* The server's say on MAIL, at once or after a wait: accepted (`reply` NULL) or refused
 * with the complete reply (no client error). Takes `params`. */
void smtp_cmd_mail_decided(struct smtp_server *s, const char *mailbox,
                           struct smtp_mail_params *params, const char *reply, size_t len);
void smtp_cmd_rcpt(struct smtp_server *s, const char *arg, size_t len);
/* The same for RCPT: accepted, the recipient is added with `params`; refused, the refusal
 * counts toward limits.bad_rcpt_throttle. `raw` is the path as received (REJECT's arg). */
void smtp_cmd_rcpt_decided(struct smtp_server *s, const char *mailbox, const char *raw,
                           size_t rawlen, const struct smtp_rcpt_params *params, const char *reply,
                           size_t len);

/* smtp_server_check.c */
/* A hook said "pending": keeps what the command needs (`args`, NULL for DATA and BDAT) and
 * waits for smtp_server_check_done*(). Out of memory (HELO, MAIL, RCPT) the command gets
 * 452 4.3.1 instead and nothing waits. */
void smtp_server_check_wait(struct smtp_server *s, enum smtp_check_step step,
                            const struct smtp_check_args *args);
void smtp_server_check_free(struct smtp_server *s);
/* The reply refusing `step` as its hook's *err asks, "<code> <enh> <reason>" with the step's
 * defaults for what err leaves empty (RCPT: "<mailbox>... <reason>"), control octets as '?'.
 * Synchronous and later refusals both come from here, so they read alike. */
size_t smtp_server_check_refusal(char out[SMTP_REPLY_LINE], enum smtp_check_step step,
                                 const struct smtp_addr_error *err, const char *mailbox);

/* smtp_cmd_auth.c */
void smtp_cmd_auth(struct smtp_server *s, const char *arg, size_t len);
/* A line read while s->auth_reading (CRLF removed). */
void smtp_auth_response(struct smtp_server *s, const char *line, size_t len);
/* Appends "AUTH <mechs>" to the EHLO lines when offered; returns the new count. */
size_t smtp_auth_ehlo(struct smtp_server *s, const char **lines, size_t n, char *buf,
                      size_t buflen);
/* MAIL on a listener that requires AUTH: false after the 530 reply. */
bool smtp_auth_mail_allowed(struct smtp_server *s);
/* Whether AUTH is offered now (MAIL's AUTH= is a parameter only then). */
bool smtp_auth_offered(const struct smtp_server *s);

/* smtp_server_data.c */
void smtp_cmd_data(struct smtp_server *s, const char *arg, size_t len);
void smtp_cmd_bdat(struct smtp_server *s, const char *arg, size_t len);
/* io->check_data's verdict on DATA / a message's first BDAT (`reply` NULL: accepted). */
void smtp_server_data_decided(struct smtp_server *s, const char *reply, size_t len);
void smtp_server_bdat_decided(struct smtp_server *s, const char *reply, size_t len);
size_t smtp_server_data_input(struct smtp_server *s, const char *p, size_t len);
size_t smtp_server_bdat_input(struct smtp_server *s, const char *p, size_t len);

/* smtp_server_msg.c */
void smtp_server_msg_begin(struct smtp_server *s);
/* Content octets (unstuffed): checked, counted and passed on as DATA events. */
void smtp_server_msg_content(struct smtp_server *s, const char *p, size_t len);
/* The message is complete: DATA_END and the commit wait, or the refusal. */
void smtp_server_msg_end(struct smtp_server *s);
void smtp_server_msg_free(struct smtp_msg *m);

#endif
