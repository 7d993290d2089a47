/*
 * cli/submit_client.h — the command line's side of local submission: a blocking SMTP client
 * on the daemon's unix submission socket (submission.socket), one message per session.
 *
 * The session is sendmail's MSP talking to its MTA: greeting, EHLO, MAIL FROM with the
 * envelope parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, and the local-only FULLNAME and
 * XMAILDROP, RFC 3461 xtext), one RCPT TO per recipient (NOTIFY), the message in BDAT
 * chunks of SUBMIT_CHUNK octets (RFC 3030: never dot-stuffed, so the prepared message goes
 * out as it is), QUIT. The daemon learns who we are from SO_PEERCRED, not from anything we
 * send. Also the byte proxy of `sendmail -bs`.
 *
 * Owns: the socket and a chunk buffer (SUBMIT_CHUNK octets) while a client lives;
 * submit_free() closes and frees. Replies are copied into the caller's struct submit_reply.
 * Never exits, never prints except to the transcript sinks, never retries: the caller
 * decides (maildrop when there is no daemon, its -oe error mode otherwise).
 */
#ifndef RINGMAIL_CLI_SUBMIT_CLIENT_H
#define RINGMAIL_CLI_SUBMIT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SUBMIT_CHUNK      65536
#define SUBMIT_REPLY_MAX  1024
#define SUBMIT_TIMEOUT_MS 300000 /* per read or write: sendmail's confTO_DATAFINAL is 1h */

/* sendmail -v prints the exchange (">>> cmd", "<<< reply"); -X FILE appends it with the
 * process id in front. Either may be NULL. */
struct submit_transcript {
    FILE *verbose;
    FILE *xlog;
};

/* One reply: `code` 0 = none came (the text says why: connection lost, timeout); the text
 * is every line without CRLF, joined by '\n', cut at SUBMIT_REPLY_MAX - 1 octets. */
struct submit_reply {
    int code;
    char text[SUBMIT_REPLY_MAX];
};

struct submit_envelope {
    const char *sender;   /* "" = the null sender */
    const char *fullname; /* FULLNAME= (sendmail -F), or NULL */
    const char *maildrop; /* XMAILDROP= (a picked-up maildrop file), or NULL */
    const char *notify;   /* NOTIFY= for every recipient ("never", "success,failure"), or NULL */
    const char *ret;      /* RET= ("full", "hdrs"), or NULL */
    const char *envid;    /* ENVID=, xtext already (sendmail -V takes xtext), or NULL */
    const char *body;     /* BODY= ("7BIT", "8BITMIME"), or NULL */
    uint64_t size;        /* SIZE=, 0 = not known */
    bool smtputf8;
    const char *const *rcpts;
    size_t n_rcpts;
};

struct submit_client;

/* Connects to `path`, reads the greeting and says EHLO `helo`. NULL on failure with
 * `reply` saying why; `*no_daemon` is then true when nothing listens there (no socket,
 * connection refused, not a socket): the caller hands the message to the maildrop. */
struct submit_client *submit_connect(const char *path, const char *helo,
                                     const struct submit_transcript *t, struct submit_reply *reply,
                                     bool *no_daemon);
/* MAIL and the RCPTs; `rcpt_replies` (n_rcpts of them, the caller's) get each RCPT's reply.
 * The number of recipients accepted, or -1 with `reply` holding MAIL's refusal (or why the
 * session broke). With 0 accepted the caller sends no data. */
int submit_envelope(struct submit_client *c, const struct submit_envelope *env,
                    struct submit_reply *reply, struct submit_reply *rcpt_replies);
/* Message octets (CRLF lines, as they go into the queue), any amount at a time; a full chunk
 * is sent as BDAT. 0, or -1 with `reply` holding the refusal. */
int submit_write(struct submit_client *c, const void *data, size_t len, struct submit_reply *reply);
/* The last chunk (BDAT n LAST) and the final reply: 0 with the queue id in `qid` (from
 * "250 2.0.0 <qid> Message accepted"; "" if the reply has none), else -1 with `reply`. */
int submit_finish(struct submit_client *c, char *qid, size_t qidlen, struct submit_reply *reply);
/* QUIT (when the session is still usable), close, free. NULL is fine. */
void submit_free(struct submit_client *c);

/* sendmail -bs: connects to `path` and copies octets both ways (in_fd -> socket, socket ->
 * out_fd) until the daemon closes (the end of input is passed on as a half-close, so the
 * replies to a pipelined QUIT still come back). 0, -1 with `reply` saying why it could not
 * connect (`*no_daemon` as for submit_connect), or -2 when the copying failed. */
int submit_proxy(const char *path, int in_fd, int out_fd, struct submit_reply *reply,
                 bool *no_daemon);

/* The sysexits status sendmail gives a refusal (its dsntoexitstat(): the enhanced status
 * when the reply has one, else 4xx EX_TEMPFAIL, 5xx EX_UNAVAILABLE; no reply EX_TEMPFAIL). */
int submit_exit_status(const struct submit_reply *reply);

#endif
