/*
 * smtp/smtp_server.h — the ESMTP server state machine. Pure: bytes and time in, replies
 * and events out. No sockets, no clock, no files, no TLS library.
 *
 * Owns: the session's protocol state, its input buffer (at most one command line, or the
 * bytes held back while it waits — see "Waiting" below; freed when empty, so an idle
 * session holds no buffer), and the current transaction (sender, recipients, parameters),
 * which it frees on RSET, at the end of a transaction and in smtp_server_free().
 * Never: allocates per body byte (DATA/BDAT content is passed through as events, with
 * dot-unstuffing done), touches the network, or reads the time itself.
 *
 * Replies are written through io->reply (one call per complete reply, CRLF included);
 * the caller batches them into one send after smtp_server_feed() returns, which is what
 * makes PIPELINING cheap. Events report what happened (for logging and the spool).
 *
 * Waiting: after the end of a message the server emits SMTP_EV_DATA_END and waits for
 * smtp_server_commit_done() or smtp_server_commit_refused*(); after a command whose check
 * is pending (below) it waits for smtp_server_check_done*(); after STARTTLS it waits for
 * smtp_server_tls_started(); when slowing down an abusive client it waits until its
 * deadline. While waiting, fed bytes are kept (up to limits.max_input_buffer) and processed
 * once the wait ends — except after STARTTLS, where they are discarded (RFC 3207: pipelined
 * plaintext is never executed). smtp_server_feed() returns true when the caller should
 * pause receiving (input buffer full), and the caller resumes after the call that ends the
 * wait (commit, check, tick, TLS).
 *
 * Pending checks (a filter or a lookup answers later): check_helo, check_mail, check_rcpt
 * and check_data may return 1. The server then sends nothing for the command, keeps what it
 * needs (its argument and parameters: what the hook got is valid only during the call),
 * holds all later input — for a BDAT its chunk's octets too — as while a commit is in
 * flight, and waits for one smtp_server_check_done() or smtp_server_check_done_reply(). The
 * verdict gives the command the reply the hook would have given it at once (accepted: the
 * usual reply and event; refused: worded and counted exactly like a synchronous refusal),
 * then the held input runs, so replies keep the order of the commands (a pipelined RCPT,
 * RSET or QUIT behind a pending command is answered after it, and checked only then: one
 * check is pending at a time). While a check is pending the deadline is the timeout of the
 * phase before the command, still running: a check that never answers costs the client a
 * 421 "Timeout waiting for input", not a session for ever. A verdict when none is pending
 * (the session ended meanwhile, or a second one) is ignored. Not re-entrant: the caller
 * never calls the server from inside a hook (a verdict known at once is the hook's return
 * value; one given during the hook is ignored, and the command waits to its timeout).
 *
 * Verbatim replies: smtp_server_check_done_reply() and smtp_server_commit_refused_reply()
 * take a filter's complete reply, one or more lines joined by CRLF without the final CRLF
 * ("554-5.7.1 a\r\n554 5.7.1 b"). The server appends CRLF and sends it as it is if every
 * line starts with the same 3-digit code of class 4 or 5, followed by '-' on every line but
 * the last and by ' ' (or nothing) on the last, has at most 510 octets, all printable ASCII
 * or tab, and there are at most SMTP_SERVER_REPLY_LINES lines. Anything else (a 2xx, a
 * bare LF, a final CRLF, mixed codes, NULL) is sent as SMTP_SERVER_FALLBACK_REPLY instead:
 * what a filter gets wrong never reaches the client as broken protocol.
 *
 * Framing (SMTP smuggling): only CRLF.CRLF ends DATA. A bare CR or bare LF in DATA never
 * ends or splits a message: the message is read to the real CRLF.CRLF and then refused
 * with 550 5.6.0; a NUL anywhere in it likewise, with sendmail's "554 5.6.1 NUL byte not
 * allowed" (BDAT content is checked the same way). A command line ends only at CRLF; a
 * bare CR, bare LF or NUL inside it refuses the whole line (500 5.5.2), so a client that
 * ends lines with LF alone gets no answer until the line is too long or it times out.
 * None of this depends on how the bytes were split across smtp_server_feed() calls.
 *
 * Errors: every command refused for the client's fault (syntax, sequence, unknown,
 * over-long lines, bare CR/LF or NUL in them) counts toward limits.error_throttle and
 * limits.max_errors and is reported as SMTP_EV_REJECT. Policy refusals of RCPT count toward
 * limits.bad_rcpt_throttle instead (pending or not); refused messages count toward
 * neither (commit_refused included), nor do check_mail, check_helo and check_data refusals,
 * nor "452 4.5.3 Too many recipients" (RFC 5321 4.5.3.1.10: the client sends the rest in a
 * later transaction; the recipients accepted so far stay valid).
 *
 * Timeouts are sendmail's confTO_* names seen from the server (see docs/config.md): the
 * wait for the next client input after each phase. smtp_server_deadline() tells when the
 * current wait ends; the caller calls smtp_server_tick() at or after that time. No wait can
 * be stretched by trickling: a partial command line never restarts its timeout, and inside
 * a message (DATA content, or from the first BDAT to the last chunk's octets, BDAT command
 * lines between chunks included) limits.min_data_rate applies as Postfix's smtpd_min_data_rate
 * does: the message's data clock starts at datablock with the first data octet after 354
 * (or with the first BDAT), and a read of N octets adds N / min_data_rate seconds to what
 * remains of it, never more than datablock ahead. A client slower than the rate is cut
 * after about datablock; one faster is never cut. A refused BDAT's octets get a clock of
 * their own the same way. What is not bounded: a client repeating complete cheap commands
 * (NOOP, RSET, refused RCPTs) keeps its session at one command per timeout, as with
 * sendmail; that costs a timer and no buffer (Postfix bounds it: smtpd_junk_command_limit).
 */
#ifndef RINGMAIL_SMTP_SERVER_H
#define RINGMAIL_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/smtp_addr.h"

struct smtp_server;

struct smtp_server_limits {
    uint64_t max_message_size;  /* octets of message data; 0 = no limit. SIZE advertises it */
    unsigned max_recipients;    /* per transaction; more get 452 4.5.3 (not an error) */
    unsigned max_command_line;  /* octets incl. CRLF (RFC 5321: at least 512) */
    unsigned max_text_line;     /* octets incl. CRLF in DATA; 0 = no limit */
    unsigned max_header_size;   /* octets of the header section; 0 = no limit */
    unsigned max_errors;        /* bad commands before "421 4.7.0 Too many errors" */
    unsigned error_throttle;    /* errors after which each error reply waits 1 s */
    unsigned bad_rcpt_throttle; /* refused RCPTs after which each RCPT waits 1 s; 0 = off */
    size_t max_input_buffer;    /* bytes held while waiting before asking for a pause */
    uint32_t min_data_rate;     /* octets/s a message's data must keep up (Postfix's
                                   smtpd_min_data_rate); 0 = off: every read restarts
                                   timeouts.datablock. See "Timeouts" above */
};

/* Milliseconds; 0 = no timeout for that phase. */
struct smtp_server_timeouts {
    uint32_t initial;   /* after the greeting, until the first command */
    uint32_t helo;      /* after HELO/EHLO */
    uint32_t mail;      /* after MAIL */
    uint32_t rcpt;      /* after RCPT */
    uint32_t datainit;  /* after 354, until the first data */
    uint32_t datablock; /* between reads inside DATA or BDAT (see limits.min_data_rate) */
    uint32_t datafinal; /* after the message's final reply */
    uint32_t rset;      /* after RSET */
    uint32_t quit;      /* after 221, until the client has gone (then the caller closes) */
    uint32_t misc;      /* after NOOP, VRFY, EXPN, HELP and refused commands */
    uint32_t command;   /* upper bound for every wait above */
};

struct smtp_server_settings {
    const char *hostname; /* our name in replies */
    struct smtp_server_limits limits;
    struct smtp_server_timeouts timeouts;
    bool starttls; /* advertise STARTTLS (TLS module available on this listener) */
    bool in_tls;   /* the connection is already in TLS (after STARTTLS) */
    /* The listener is ringmail's local submission socket (sendmail's MSP): MAIL also takes
     * FULLNAME= and XMAILDROP= (after EHLO), and SMTP_EV_HEADER_END is emitted. */
    bool local;
};

/* A recipient of the current transaction, as accepted. */
struct smtp_rcpt {
    char *mailbox; /* local@domain as received */
    struct smtp_rcpt_params params;
};

struct smtp_transaction {
    char *helo;   /* the last HELO/EHLO argument; NULL before it */
    bool esmtp;   /* EHLO (true) or HELO */
    char *sender; /* mailbox, "" for <>; NULL before MAIL */
    struct smtp_mail_params mail_params;
    struct smtp_rcpt *rcpts;
    size_t n_rcpts;
    bool bdat; /* data arrives by BDAT, not DATA */
};

enum smtp_event_type {
    SMTP_EV_HELO,       /* HELO/EHLO accepted; arg = name */
    SMTP_EV_MAIL,       /* MAIL accepted; arg = sender mailbox */
    SMTP_EV_RCPT,       /* RCPT accepted; arg = recipient mailbox */
    SMTP_EV_REJECT,     /* a command was refused by policy or syntax: cmd, arg, reply */
    SMTP_EV_DATA_START, /* first byte of message data is about to come (after 354 or BDAT) */
    SMTP_EV_DATA,       /* message data, unstuffed, CRLF line ends as received: data/len */
    SMTP_EV_HEADER_END, /* settings.local only; see "Header end" below */
    SMTP_EV_DATA_END,   /* message complete and acceptable: the caller commits it and then
                           calls smtp_server_commit_done(); size, msgid are set */
    SMTP_EV_DATA_ABORT, /* message refused (size, bare CR/LF, NUL, headers, line length) or the
                           session or transaction ended inside it (RSET, HELO, QUIT, EOF,
                           timeout): the caller discards what it stored; reply is the
                           refusal or 421 sent, NULL when no reply was about the message */
    SMTP_EV_RSET,       /* transaction reset (RSET, HELO/EHLO, or after STARTTLS) */
    SMTP_EV_STARTTLS,   /* "220 Ready to start TLS" queued; start the handshake once it is
                           sent, then call smtp_server_tls_started() */
    SMTP_EV_CLOSE,      /* close after the queued replies are sent (QUIT, too many errors,
                           timeout, refused); reason says why for the log. After QUIT the
                           quit timeout still runs: a caller that waits for the client to
                           close gets CLOSE again ("timeout") when it ends */
};

/* Header end (settings.local): at most once per message, when its header section ends and
 * BEFORE the octets that end it are passed on as SMTP_EV_DATA, so what the caller writes
 * in its handler lands at the end of the header. The section ends at the CR of the first
 * empty line (len 0: the empty line follows), or before the first line that is not a
 * field (the first line of a message without header, a line that starts with white space
 * or a character no field name has, or holds no ':' within its first 998 octets), or
 * at the end of a message that has no body, just before SMTP_EV_DATA_END; in these cases
 * len is 1: the caller must write an empty line after what it adds (even when it adds
 * nothing, if it wants the message to have a well-formed header/body separator). When a
 * message ends inside a field's last line without CRLF (BDAT allows that), a CRLF is
 * passed on before the event (not counted in DATA_END's size). headers_seen has the
 * SMTP_HDR_SEEN_* bits of the fields the header held, names compared case-insensitively
 * (obsolete "Name :" too). The event does not depend on how the input was split; a
 * message refused before its header ended never gets it, and one refused after it gets
 * DATA_ABORT as usual. */
enum {
    SMTP_HDR_SEEN_DATE = 1 << 0,
    SMTP_HDR_SEEN_FROM = 1 << 1,
    SMTP_HDR_SEEN_MSGID = 1 << 2,
    SMTP_HDR_SEEN_SENDER = 1 << 3,
    SMTP_HDR_SEEN_TO = 1 << 4,
    SMTP_HDR_SEEN_CC = 1 << 5,
    SMTP_HDR_SEEN_BCC = 1 << 6,
};

struct smtp_event {
    enum smtp_event_type type;
    const char *cmd;       /* REJECT: "MAIL", "RCPT", ... */
    const char *arg;       /* HELO/MAIL/RCPT/REJECT: the argument as received */
    const char *reply;     /* REJECT/DATA_ABORT: the reply text sent, without CRLF (the
                              lines of a multi-line one joined by a space, at most 511
                              octets, control octets as '?') */
    const char *data;      /* DATA: bytes */
    size_t len;            /* DATA: length; HEADER_END: 1 if no empty line follows, else 0 */
    uint64_t size;         /* DATA_END: octets of message data */
    const char *msgid;     /* DATA_END: the first Message-ID value, unfolded, trimmed, at most
                              250 octets, control octets as '?' (a tab as ' '); or NULL */
    const char *reason;    /* CLOSE: "quit", "timeout", "too many errors", ... */
    unsigned headers_seen; /* HEADER_END: SMTP_HDR_SEEN_* bits */
};

/* AUTH (RFC 4954): what a listener offers now, from io->auth_offer. */
struct smtp_auth_offer {
    const char *mechs; /* "PLAIN LOGIN CRAM-MD5": advertised and accepted; NULL or "" = none */
    bool required;     /* sendmail's M=a: MAIL before AUTH gets 530 5.7.0 */
};

/* The outcome of one SASL step (smtp_server_auth_done). */
enum smtp_auth_result {
    SMTP_AUTH_OK,       /* 235 2.0.0 OK Authenticated */
    SMTP_AUTH_CONTINUE, /* 334 with the challenge; the client's next line is its response */
    SMTP_AUTH_FAIL,     /* 535 5.7.0 authentication failed (counted, see "AUTH" below) */
    SMTP_AUTH_TEMPFAIL, /* 454 4.7.0 Temporary authentication failure (not counted) */
};

struct smtp_server_io {
    void *arg;
    void (*reply)(void *arg, const char *bytes, size_t len);
    void (*event)(void *arg, const struct smtp_event *ev);
    /* Policy for a syntactically valid recipient. Return 0 to accept, or fill *err with
     * the refusal (for relaying: 550, "5.7.1", "Relaying denied") and return -1. The
     * server formats "550 5.7.1 <mailbox>... Relaying denied" as sendmail does (defaults
     * 550, "5.7.1", "Recipient refused"). Or 1: pending ("Waiting" above; the recipient
     * and its parameters are kept, and limits.max_recipients was checked before the call).
     * May be NULL: every recipient is accepted. `params` are its ESMTP parameters as parsed
     * (a mail filter is given them); valid during the call only. */
    int (*check_rcpt)(void *arg, const struct smtp_path *rcpt,
                      const struct smtp_rcpt_params *params, struct smtp_addr_error *err);
    /* The server's own say on a syntactically valid MAIL (room in the queue for SIZE=):
     * 0 to accept, or fill *err (452, "4.3.1", "Insufficient system storage") and return
     * -1; the reply is "<code> <enh> <reason>" and counts as no client error. Or 1:
     * "pending" (a lookup in flight): the server keeps the MAIL, holds later input as while
     * a commit is in flight, and waits for smtp_server_check_done() (`sender` and `params`
     * are valid only during this call: copy what the lookup needs). May be NULL. */
    int (*check_mail)(void *arg, const struct smtp_path *sender,
                      const struct smtp_mail_params *params, struct smtp_addr_error *err);
    /* The say on a valid HELO/EHLO (`name` as received, `esmtp` for EHLO): 0 accepts, -1
     * refuses with *err filled: "<code> <enh> <reason>" (defaults 550, "5.7.1", "Command
     * rejected"), no client error counted, and the session is as if it had no HELO: the
     * transaction is dropped (SMTP_EV_RSET if there was one) and the name forgotten, so the
     * client must HELO again before MAIL. 1: pending. May be NULL. */
    int (*check_helo)(void *arg, const char *name, bool esmtp, struct smtp_addr_error *err);
    /* The say on DATA, before "354", and on a message's first BDAT, before its octets are
     * taken (the envelope is in smtp_server_transaction()): 0 accepts, -1 refuses with *err
     * filled: "<code> <enh> <reason>" (defaults 550, "5.7.1", "Command rejected"), no client
     * error counted, the transaction kept (the client may RSET); a refused BDAT's octets are
     * still read and discarded, and the refusal follows them. 1: pending. May be NULL. */
    int (*check_data)(void *arg, struct smtp_addr_error *err);
    /* AUTH (may all be NULL: no AUTH). auth_offer fills what is offered now (`tls`: the
     * session is in TLS). auth_step starts an exchange (`mech` set; `has_resp` says whether
     * an initial response came, decoded in resp/len) or continues it (`mech` NULL, the
     * client's decoded response); the caller answers later, never from inside the call,
     * with smtp_server_auth_done(). auth_abort: the client cancelled ('*') or sent a
     * response that is not base64; the exchange is over. */
    void (*auth_offer)(void *arg, bool tls, struct smtp_auth_offer *offer);
    void (*auth_step)(void *arg, const char *mech, const unsigned char *resp, size_t len,
                      bool has_resp);
    void (*auth_abort)(void *arg);
};

/* `settings` and `io` must outlive the server (the caller owns them). `client` is how the
 * client is shown in the HELO/EHLO reply, e.g. "[127.0.0.1]" (copied). */
struct smtp_server *smtp_server_new(const struct smtp_server_settings *settings,
                                    const struct smtp_server_io *io, const char *client,
                                    uint64_t now_ms);
void smtp_server_free(struct smtp_server *s);

/* Sends the greeting "220 <greeting>" (the caller formats it, e.g. "host ESMTP ringmail;
 * <date>") and starts the initial timeout. */
void smtp_server_start(struct smtp_server *s, const char *greeting, uint64_t now_ms);
/* Refuses the session at connect: "421 4.3.2 <hostname> <text>", then SMTP_EV_CLOSE. */
void smtp_server_refuse(struct smtp_server *s, const char *text);

/* Feeds received bytes; every complete command in them runs in this call (PIPELINING).
 * Returns true when the caller should pause receiving: the server is waiting (commit,
 * check, AUTH or slow-down) and holds at least limits.max_input_buffer bytes. Never while
 * it merely holds an incomplete command line (that is bounded by limits.max_command_line).
 * Bytes fed after STARTTLS (until smtp_server_tls_started) or after CLOSE are discarded. */
bool smtp_server_feed(struct smtp_server *s, const char *data, size_t len, uint64_t now_ms);
/* The client closed its side: a message in progress is aborted (SMTP_EV_DATA_ABORT). */
void smtp_server_eof(struct smtp_server *s);

/* Absolute time of the current deadline (timeout or end of a slow-down), 0 = none; always
 * 0 while waiting for smtp_server_commit_done() or smtp_server_tls_started(). */
uint64_t smtp_server_deadline(const struct smtp_server *s);
/* Call at or after the deadline: on a timeout sends "421 4.4.2 <host> Timeout waiting for
 * input; closing connection" and SMTP_EV_CLOSE ("timeout"), after SMTP_EV_DATA_ABORT if a
 * message was in progress; after a slow-down sends the held reply and resumes processing
 * held input. Early calls do nothing. A partial command line does not restart the
 * timeout (a client trickling bytes gains nothing); message data extends it as "Timeouts"
 * above says. */
void smtp_server_tick(struct smtp_server *s, uint64_t now_ms);

/* Result of the commit asked for by SMTP_EV_DATA_END: ok → "250 2.0.0 <qid> Message
 * accepted for delivery"; !ok → "451 4.3.0 Error writing message to queue; try again
 * later" (the reason goes to the log, not to the client). Then the held input resumes. */
void smtp_server_commit_done(struct smtp_server *s, bool ok, const char *qid, uint64_t now_ms);
/* The caller refuses the message SMTP_EV_DATA_END announced (a filter's reject or tempfail
 * at the end of the message): "<code> <enh> <text>" (enh may be NULL: none; control octets
 * of text as '?'). A code that is not 4xx/5xx, or an enh that is not "<c>.<n>.<n>" with
 * <c> the code's first digit, gives SMTP_SERVER_FALLBACK_REPLY instead. No error is
 * counted and no event sent (the refusal is the caller's); the transaction ends as after
 * a 250 (MAIL may follow), then the held input resumes. Ignored unless a commit is awaited. */
void smtp_server_commit_refused(struct smtp_server *s, int code, const char *enh, const char *text,
                                uint64_t now_ms);
/* The same with a filter's complete reply ("Verbatim replies" above). */
void smtp_server_commit_refused_reply(struct smtp_server *s, const char *reply, uint64_t now_ms);
/* The verdict on the command whose check is pending ("Waiting" above): NULL accepts it;
 * else the refusal as the hook would have filled *err. Then the held input resumes. */
void smtp_server_check_done(struct smtp_server *s, const struct smtp_addr_error *err,
                            uint64_t now_ms);
/* A refusal of the pending command with a filter's complete reply ("Verbatim replies"),
 * counted as check_done's would be. */
void smtp_server_check_done_reply(struct smtp_server *s, const char *reply, uint64_t now_ms);
/* Verbatim replies: most lines taken, and what a malformed one is replaced by. */
#define SMTP_SERVER_REPLY_LINES    32 /* as libmilter's smfi_setmlreply() */
#define SMTP_SERVER_FALLBACK_REPLY "451 4.3.0 Temporary system failure; try again later\r\n"

/* The TLS handshake after STARTTLS completed: state is reset, EHLO required again,
 * STARTTLS no longer offered. */
void smtp_server_tls_started(struct smtp_server *s, uint64_t now_ms);

/* AUTH: the answer to io->auth_step (challenge/len: the raw challenge for CONTINUE). The
 * server waits for it as for a commit (input held, replies in order) but keeps its timeout
 * running, so a SASL back end that never answers costs the client a 421, not a session for
 * ever. Failures: from the SMTP_AUTH_THROTTLE-th on, each 535 waits one second; at the
 * SMTP_AUTH_MAX_FAILURES-th the session ends with "421 4.7.0 <host> Too many authentication
 * failures". RSET and EHLO keep an authentication; STARTTLS forgets it (RFC 3207 4.2). */
#define SMTP_AUTH_THROTTLE     3
#define SMTP_AUTH_MAX_FAILURES 5
#define SMTP_AUTH_DROP_REASON  "too many authentication failures" /* CLOSE's reason */
void smtp_server_auth_done(struct smtp_server *s, enum smtp_auth_result r,
                           const unsigned char *challenge, size_t len, uint64_t now_ms);
bool smtp_server_authenticated(const struct smtp_server *s);

/* The current transaction (valid until the next feed/commit_done call). */
const struct smtp_transaction *smtp_server_transaction(const struct smtp_server *s);

/* Formats one reply line "<code> <enh> <text>\r\n" (truncating text to fit `outlen`);
 * returns its length. */
size_t smtp_reply_format(char *out, size_t outlen, int code, const char *enh, const char *text);

#endif
