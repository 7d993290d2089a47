/*
 * smtp/smtp_client.h — the outbound ESMTP client state machine (RFC 5321 and the
 * extensions PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN, CHUNKING, STARTTLS,
 * ENHANCEDSTATUSCODES). The mirror of smtp_server: pure. The server's bytes go in through
 * smtp_client_feed(), commands come out through io->send, what happened comes out through
 * io->event. No sockets, no clock (every call takes now_ms), no TLS library, no engine.
 *
 * Owns: the protocol state, a partial reply line (at most settings.max_reply_line bytes;
 * none when no line is partial), the reply being read (folded line by line into one
 * struct smtp_client_reply: its text bounded to SMTP_CLIENT_TEXT_MAX), and while a
 * transaction runs the per-recipient outcomes (n_rcpts replies) and, while a DATA body is
 * being sent, a dot-stuffing scratch buffer of about SMTP_CLIENT_PUSH_MAX bytes. The message passed
 * to smtp_client_send() is NOT copied: it (strings, recipient array, data) must stay valid and
 * unchanged until DONE or FAILED for that transaction. `settings` and `io` must outlive the client.
 *
 * Output: every command line or body piece goes out through io->send (the bytes are valid
 * only during the call: the glue copies or sends them). A single API call pushes at most
 * about SMTP_CLIENT_PUSH_MAX bytes of long output (a large pipelined RCPT block, message
 * data); the rest follows when the glue calls smtp_client_drained() (everything sent so far
 * has been written). Calling smtp_client_drained() when nothing waits is harmless.
 *
 * Events: io->event may run from inside any API call. The callback may call
 * smtp_client_send() or smtp_client_quit() (after READY or DONE) but must never free the
 * client; free it after the API call returns. After FAILED or CLOSED every call but
 * smtp_client_free() and the read-only ones is ignored: the glue closes the connection.
 *
 * Replies: a reply line is "ddd" or "ddd text" or "ddd-text" ending in CRLF (a bare LF is
 * accepted as the end too, as Postfix's client does); d1 in 2..5, d2 in 0..5. A line that
 * is not that, a multi-line reply whose lines disagree on the code, a line longer than
 * max_reply_line, a reply of more than max_reply_lines lines, or a reply when none is
 * awaited (unsolicited) ends the session: FAILED, temporary, with the reason. A 421 reply
 * to anything ends the session (FAILED, temporary, with the reply). Replies may arrive
 * split at any byte and several in one feed (pipelining).
 *
 * Enhanced status: taken from the first line of the reply that starts with one whose class
 * matches the code's first digit (and then stripped from every line that repeats it),
 * else derived from the code as sendmail does: "2.0.0", "4.0.0", "5.0.0".
 *
 * Sessions: connected → greeting (220; 4xx/5xx → FAILED so the glue tries the next MX) →
 * EHLO (5xx → HELO; a 4xx → FAILED temporary) → with settings.starttls and STARTTLS
 * offered: STARTTLS → 220 → event STARTTLS (bytes after the 220 are discarded: RFC 3207,
 * never trust pipelined plaintext) → the glue handshakes and calls smtp_client_tls_started()
 * → EHLO again (capabilities from before TLS are forgotten) → READY. A 4xx/5xx to
 * STARTTLS (not 421) → READY with tls_refused set and the reply: the session goes on in
 * plain text with the capabilities already known; a glue whose policy requires TLS calls
 * smtp_client_quit().
 *
 * Transactions (smtp_client_send, after READY or DONE): SIZE and SMTPUTF8 are checked
 * first and refuse locally, without a command: a message larger than the server's SIZE →
 * DONE, every recipient "552 5.3.4 Message is too large; N bytes max" (sendmail's text);
 * msg.smtputf8 and SMTPUTF8 not offered → DONE, every recipient "553 5.6.7" permanent.
 * Then RSET first when the previous transaction stopped midway (MAIL accepted but no
 * final data reply), MAIL FROM:<s> [SIZE=n when offered] [BODY=8BITMIME|7BIT when 8BITMIME
 * is offered; not offered → no BODY=, sent anyway as sendmail's pass8] [SMTPUTF8]
 * [RET= ENVID= when DSN is offered] [AUTH=msg.auth when AUTH is offered: RFC 4954 5 forbids
 * it to a server that did not], RCPT TO:<a> [NOTIFY= ORCPT= when DSN is offered]
 * (ENVID, AUTH and ORCPT are passed as stored: xtext; one that is not valid is left out; a
 * sender or recipient holding a control octet is refused here, 553 5.1.7 / 5.1.3, never
 * written into a command).
 * With PIPELINING, MAIL and every RCPT go in one write; DATA (or BDAT) is sent only after
 * all RCPT replies, when at least one was 2xx. Without it, one command at a time. Body:
 * with CHUNKING "BDAT n [LAST]" chunks of at most SMTP_CLIENT_BDAT_CHUNK octets, the df
 * sent as is, each chunk's reply awaited; otherwise DATA → 354 → the df dot-stuffed
 * (a '.' doubled at the start of every line), bare CR or bare LF written as CRLF (never sent
 * bare: RFC 5321 2.3.8), a missing final CRLF added, then ".\r\n". The final reply is the
 * outcome of every recipient whose RCPT was accepted; a refused RCPT keeps its own reply; a
 * refused MAIL is the outcome of all.
 *
 * LMTP (settings.lmtp, RFC 2033): LHLO instead of EHLO; a 5xx to it fails the session
 * (permanent; there is no HELO to fall back to); STARTTLS as above, only when offered and
 * asked for; DATA always (CHUNKING is not used); after the final dot one reply per accepted
 * recipient, in RCPT order, each that recipient's outcome. When the session breaks among
 * those replies, the recipients already answered keep their reply in FAILED's rcpts[] (a
 * 250 there was a delivery) and only the rest get the failure. DONE's reply is the last one.
 *
 * Timeouts (sendmail's confTO_* seen from the client, ms, 0 = none): initial (greeting),
 * helo (EHLO/HELO reply, and each reply in AUTH), starttls (STARTTLS reply, then the handshake
 * until smtp_client_tls_started), mail, rcpt, datainit (354), datablock (each piece of data until
 * smtp_client_drained), datafinal (reply after the data: final dot or each BDAT chunk), rset, quit.
 * misc is kept for sendmail's confTO_MISC (NOOP, VERB) and not used by any command this client
 * sends. No deadline while idle (after READY or DONE: the connection cache times idle connections
 * out). Past the deadline smtp_client_tick() → FAILED temporary "timeout waiting for <phase>",
 * enhanced 4.4.2; in QUIT it is CLOSED.
 *
 * AUTH (RFC 4954, settings.auth set): after the EHLO that ends the greeting (after STARTTLS
 * when that is done), when the server offers AUTH with a mechanism both sides have (the
 * order is auth->mechs', intersected with the offer), and only in TLS unless
 * auth->allow_plaintext: PLAIN (with its initial response), LOGIN, CRAM-MD5 (when
 * auth->hmac_md5 is given). 235 → READY with caps.authenticated. Anything else ends the
 * session, FAILED in phase AUTH and always temporary (a wrong password is the sender's
 * configuration, not the recipient's address: nothing bounces for it): a 5xx (535) keeps
 * its code and text but its outcome is TEMP; 454 and other 4xx the same; a 334 the
 * mechanism cannot answer (not base64, a step too many) is a local 451 4.7.0. Credentials
 * for a server that offers AUTH on a connection without TLS (plain text not allowed) are
 * never sent: FAILED in phase AUTH, local 451 4.7.0 "AUTH credentials are not sent over a
 * connection without TLS". No AUTH offered, or no mechanism in common: READY without AUTH
 * (the server decides at MAIL), as sendmail does.
 */
#ifndef RINGMAIL_SMTP_CLIENT_H
#define RINGMAIL_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/smtp_addr.h" /* SMTP_NOTIFY_* */

#define SMTP_CLIENT_TEXT_MAX        512     /* reply text kept per reply (joined lines) */
#define SMTP_CLIENT_PUSH_MAX        65536   /* long output pushed per call */
#define SMTP_CLIENT_BDAT_CHUNK      1048576 /* octets per BDAT chunk */
#define SMTP_CLIENT_MAX_REPLY_LINE  4096    /* default settings.max_reply_line */
#define SMTP_CLIENT_MAX_REPLY_LINES 100     /* default settings.max_reply_lines */

struct smtp_client;

/* Milliseconds; 0 = no timeout for that phase. Defaults are the glue's (sendmail's). */
struct smtp_client_timeouts {
    uint32_t initial, helo, mail, rcpt, datainit, datablock, datafinal, rset, quit, misc, starttls;
};

/* AUTH mechanisms this client speaks (smtp_client_caps.auth: the server's offer). */
#define SMTP_AUTH_PLAIN    1u
#define SMTP_AUTH_LOGIN    2u
#define SMTP_AUTH_CRAM_MD5 4u
/* A password, user or response longer than this is refused locally (no command sent). */
#define SMTP_CLIENT_AUTH_MAX 512

/* Credentials for one next hop (sendmail's AuthInfo: U, I, P, M). Strings are read while the
 * client is in AUTH (the glue keeps them valid for the client's life). */
struct smtp_client_auth {
    const char *user;     /* U: the authorization id; NULL or "" = the same as authid */
    const char *authid;   /* I: the authentication id; NULL or "" = user */
    const char *password; /* P: (decoded) */
    const char *mechs;    /* M: "CRAM-MD5 PLAIN": the order to try; NULL = "CRAM-MD5 PLAIN LOGIN" */
    bool allow_plaintext; /* may be sent on a connection without TLS */
    /* HMAC-MD5 (RFC 2104) for CRAM-MD5: 0, or -1; NULL = CRAM-MD5 is never used. The
     * client links no crypto library: the glue passes one in. */
    int (*hmac_md5)(const void *key, size_t keylen, const void *msg, size_t len,
                    unsigned char out[16]);
};

struct smtp_client_settings {
    const char *helo_name;               /* our name in EHLO/HELO */
    const struct smtp_client_auth *auth; /* NULL = never AUTH */
    bool starttls; /* send STARTTLS when offered (the glue has a client TLS ctx) */
    bool lmtp;     /* speak LMTP (RFC 2033), see above */
    struct smtp_client_timeouts timeouts;
    size_t max_reply_line;    /* octets incl. CRLF; 0 = SMTP_CLIENT_MAX_REPLY_LINE */
    unsigned max_reply_lines; /* lines in one reply; 0 = SMTP_CLIENT_MAX_REPLY_LINES */
};

/* What the server offered in its last EHLO reply (all false after HELO). */
struct smtp_client_caps {
    bool esmtp; /* EHLO accepted; false: HELO fallback */
    bool pipelining, size, eightbitmime, smtputf8, dsn, chunking, starttls, enhancedstatuscodes;
    uint64_t max_size;     /* SIZE n; 0 = no limit announced */
    bool auth_offered;     /* "AUTH ..." or "AUTH=..." seen, whatever its mechanisms */
    unsigned auth;         /* SMTP_AUTH_* the server offers ("AUTH ..." or "AUTH=...") */
    bool in_tls;           /* smtp_client_tls_started() was called */
    const char *auth_mech; /* "PLAIN", "LOGIN", "CRAM-MD5": tried (static); NULL = none */
    bool authenticated;    /* 235 to AUTH with auth_mech */
};

enum smtp_client_outcome {
    SMTP_CLIENT_OK,   /* 2xx: accepted / delivered */
    SMTP_CLIENT_TEMP, /* 4xx or a temporary local failure: deferred */
    SMTP_CLIENT_PERM, /* 5xx or a permanent local refusal: failed */
};

struct smtp_client_reply {
    int code;   /* 250, 550, ...; for a local one, the code sendmail would use */
    bool local; /* made by this client (timeout, protocol error, SIZE, SMTPUTF8), not
                   received from the server: no "Diagnostic-Code: smtp;" for it */
    enum smtp_client_outcome outcome;
    char enh[12];                        /* "5.1.1": the reply's own or derived from the code */
    char text[SMTP_CLIENT_TEXT_MAX + 1]; /* lines joined by one space, without code and
                                            enhanced status; control and non-ASCII octets as
                                            '?' */
};

/* A recipient of a transaction. `notify` holds SMTP_NOTIFY_* bits (smtp_addr.h; the same
 * values as queue/envelope.h's ENV_NOTIFY_*), 0 = none given; `orcpt` is "rfc822;xtext" as
 * stored, or NULL. */
struct smtp_client_rcpt {
    const char *addr; /* mailbox without brackets */
    unsigned notify;
    const char *orcpt;
};

struct smtp_client_msg {
    const char *sender; /* "" for <> */
    const struct smtp_client_rcpt *rcpts;
    size_t n_rcpts; /* at least 1 */
    const char *data;
    size_t len;        /* the df: CRLF lines, not dot-stuffed */
    int body;          /* 0 none, 7 = 7BIT, 8 = 8BITMIME (envelope.body) */
    bool smtputf8;     /* needs SMTPUTF8 */
    int dsn_ret;       /* 0 none, 1 FULL, 2 HDRS (envelope.dsn_ret) */
    const char *envid; /* xtext or NULL */
    const char *auth;  /* AUTH= (RFC 4954 5): xtext or "<>" as stored, or NULL = none */
};

enum smtp_client_phase {
    SMTP_CLIENT_PHASE_GREETING,
    SMTP_CLIENT_PHASE_HELO,     /* EHLO or HELO */
    SMTP_CLIENT_PHASE_STARTTLS, /* the reply, then the handshake */
    SMTP_CLIENT_PHASE_AUTH,     /* AUTH and its exchange */
    SMTP_CLIENT_PHASE_IDLE,     /* between transactions */
    SMTP_CLIENT_PHASE_RSET,
    SMTP_CLIENT_PHASE_MAIL,
    SMTP_CLIENT_PHASE_RCPT,
    SMTP_CLIENT_PHASE_DATA,      /* waiting for 354 */
    SMTP_CLIENT_PHASE_DATABLOCK, /* sending the data */
    SMTP_CLIENT_PHASE_DATAFINAL, /* waiting for the reply after the data (or a BDAT chunk) */
    SMTP_CLIENT_PHASE_QUIT,
    SMTP_CLIENT_PHASE_OVER, /* after FAILED or CLOSED (never in an event) */
};

enum smtp_client_event_type {
    SMTP_CLIENT_EV_READY,    /* greeting and EHLO/HELO done: smtp_client_caps() is valid;
                                tls_refused + reply when STARTTLS got 4xx/5xx */
    SMTP_CLIENT_EV_STARTTLS, /* "220" to STARTTLS: start the TLS handshake now, then call
                                smtp_client_tls_started() */
    SMTP_CLIENT_EV_RCPT,     /* a RCPT reply: rcpt_index, reply */
    SMTP_CLIENT_EV_DONE,     /* the transaction ended: reply (the final data reply, the
                                refused MAIL or DATA, the last RCPT refusal when none was
                                accepted, or the local SIZE/SMTPUTF8 refusal), rcpts[] the
                                outcome of every recipient in msg order, dsn */
    SMTP_CLIENT_EV_FAILED,   /* the session is over (close the connection): phase, reply
                                (the server's, or a local one saying why), temporary; in a
                                transaction rcpts[] too: a refused RCPT keeps its reply,
                                the others get this one */
    SMTP_CLIENT_EV_CLOSED,   /* after QUIT: its reply, a timeout or the peer's close */
};

struct smtp_client_event {
    enum smtp_client_event_type type;
    enum smtp_client_phase phase; /* where it happened; DONE: the command whose reply decided
                                     the outcome (MAIL for a refused MAIL and for the local
                                     SIZE/SMTPUTF8/address refusals, RCPT when no recipient
                                     was accepted, DATA for a refused DATA, DATAFINAL for
                                     the final reply or a refused BDAT chunk) */
    const struct smtp_client_reply *reply; /* READY: only with tls_refused; CLOSED: may be NULL */
    size_t rcpt_index;                     /* RCPT */
    const struct smtp_client_reply *rcpts; /* DONE, FAILED in a transaction: n_rcpts; else NULL */
    size_t n_rcpts;
    size_t n_accepted; /* DONE: recipients whose outcome is SMTP_CLIENT_OK */
    bool dsn;          /* DONE: the peer offered DSN (else OK means "relayed" for NOTIFY) */
    bool temporary;    /* FAILED: a later attempt may succeed (reply->outcome == TEMP) */
    bool tls_refused;  /* READY */
};

struct smtp_client_io {
    void *arg;
    void (*send)(void *arg, const void *data, size_t len);
    void (*event)(void *arg, const struct smtp_client_event *ev);
};

/* A client for a connection just established at now_ms: waits for the greeting. NULL
 * when out of memory. */
struct smtp_client *smtp_client_new(const struct smtp_client_settings *settings,
                                    const struct smtp_client_io *io, uint64_t now_ms);
void smtp_client_free(struct smtp_client *c);

/* The server's bytes (plain text, or decrypted once in TLS). */
void smtp_client_feed(struct smtp_client *c, const char *data, size_t len, uint64_t now_ms);
/* The server closed the connection (or it broke): FAILED temporary, or CLOSED in QUIT. */
void smtp_client_eof(struct smtp_client *c, uint64_t now_ms);
/* Everything sent so far has been written: push more of a long output. */
void smtp_client_drained(struct smtp_client *c, uint64_t now_ms);
/* The TLS handshake asked for by SMTP_CLIENT_EV_STARTTLS succeeded: EHLO again. (A failed
 * handshake is the glue's: it closes and frees.) */
void smtp_client_tls_started(struct smtp_client *c, uint64_t now_ms);

/* Starts a transaction (only after READY or DONE): 0, or -1 when the client is not idle,
 * msg has no recipient, or memory ran out (nothing sent, no event). DONE may come from
 * inside this call (a local SIZE, SMTPUTF8 or address refusal). */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg, uint64_t now_ms);
/* Ends the session: after READY or DONE sends QUIT and CLOSED follows its reply (or its
 * timeout, or the peer's close); in any other state CLOSED comes at once with nothing
 * sent (the glue just closes). */
void smtp_client_quit(struct smtp_client *c, uint64_t now_ms);

/* Absolute time of the current deadline, 0 = none (idle, or over). */
uint64_t smtp_client_deadline(const struct smtp_client *c);
/* Call at or after the deadline (early calls do nothing): FAILED "timeout waiting for
 * <phase>", or CLOSED in QUIT. */
void smtp_client_tick(struct smtp_client *c, uint64_t now_ms);

/* The server's capabilities from the last EHLO (valid from READY on). */
const struct smtp_client_caps *smtp_client_caps(const struct smtp_client *c);
/* The phase the client is in (for logs: "during MAIL"). */
enum smtp_client_phase smtp_client_phase(const struct smtp_client *c);
/* "greeting", "EHLO", "MAIL", ...: a phase's name as used in the timeout reason. */
const char *smtp_client_phase_name(enum smtp_client_phase phase);

#endif
