/*
 * delivery/local_proto.h — what the engine asks of the privileged parent for one local
 * delivery, and what comes back (DESIGN.md, "Processes").
 *
 * The engine sends one SOCK_SEQPACKET message on its local-delivery socket: a struct
 * local_request and exactly two descriptors (SCM_RIGHTS), the message (the spool's df or,
 * for a message that is one file, its qf; read-only: the agent reads it with pread from
 * the request's data_offset to the end, CRLF lines as received) and the
 * reply socket (one end of a SOCK_SEQPACKET socketpair the engine made for this request).
 * The parent checks the request (core/local_agent.h), forks an agent that becomes the
 * recipient, and the agent writes exactly one struct local_reply to the reply socket and
 * exits. End of file on the reply socket without a reply means the agent died: the engine
 * defers the recipient (4.3.0). A request the parent refuses gets its reply from the parent
 * itself (LOCAL_FAILED or LOCAL_DEFERRED with the reason).
 *
 * The engine never names a file or a program the recipient did not: a MAILBOX request names
 * only the user (the parent's configuration says where the mailbox is and which mailer
 * writes it); PROGRAM and FILE targets are delivered only when they appear in the aliases
 * the parent itself read (LOCAL_F_ALIAS) or in the user's own .forward, which the agent
 * reads again as that user.
 *
 * Every string is NUL-terminated inside its array; a request with an unterminated field or
 * an unknown op or version is refused. The structs are plain bytes between two processes
 * of the same binary: no byte-order or padding concerns.
 */
#ifndef RINGMAIL_DELIVERY_LOCAL_PROTO_H
#define RINGMAIL_DELIVERY_LOCAL_PROTO_H

#include <stdint.h>

#define LOCAL_PROTO_VERSION 2u

enum local_op {
    LOCAL_OP_MAILBOX = 1, /* `user`'s mailbox, after the user's .forward unless F_NO_FORWARD */
    LOCAL_OP_PROGRAM,     /* run `target` (a command line) as `user`, message on stdin */
    LOCAL_OP_FILE,        /* append the message to the file `target` as `user` */
};

/* MAILBOX: do not read .forward (the address was "\user", or came from the user's own
 * .forward). */
#define LOCAL_F_NO_FORWARD 0x1u
/* PROGRAM/FILE: the target comes from the aliases file, not a .forward: it runs as
 * mailers.default_user (sendmail's DefaultUser) and `user` is empty. */
#define LOCAL_F_ALIAS 0x2u

struct local_request {
    uint32_t version; /* LOCAL_PROTO_VERSION */
    uint32_t op;      /* enum local_op */
    uint32_t flags;   /* LOCAL_F_* */
    uint32_t reserved;
    int64_t arrival;      /* Unix seconds: the date of the mbox "From " line */
    uint64_t data_offset; /* where the data starts in the message's descriptor: 0 for a df,
                           * past the envelope for a qf that holds its data (one file) */
    char qid[32];         /* for the agent's log lines */
    char user[64];        /* the login: whose mailbox, or whose .forward named the target */
    char detail[128];     /* the +detail of the recipient, without '+' ($h for procmail) */
    char sender[512];     /* the envelope sender, "" for <> */
    char recipient[512];  /* the address as delivered (original recipient, for the log) */
    char target[1024];    /* PROGRAM: the command; FILE: an absolute path; MAILBOX: "" */
};

enum local_status {
    LOCAL_DELIVERED = 1,
    LOCAL_DEFERRED,
    LOCAL_FAILED,
    LOCAL_FORWARD, /* MAILBOX: the user has a .forward; `forward` holds its text */
};

#define LOCAL_FORWARD_MAX 4096

struct local_reply {
    uint32_t status; /* enum local_status */
    /* The identity the agent delivered as (sendmail's ctladdr "(uid/gid)" in the log);
     * has_ids is 0 in a reply the parent wrote itself (a refused request). */
    uint32_t has_ids, uid, gid;
    char enh[8];     /* enhanced status code, "2.0.0", "4.2.2", "5.1.1" */
    char text[1024]; /* for the log and the bounce: why, the mailer's output */
    char mailer[32]; /* "local", "prog", "file", "procmail", ... for mailer= in the log */
    char forward[LOCAL_FORWARD_MAX]; /* LOCAL_FORWARD: the .forward, NUL-terminated */
};

/* Fills `r` as a whole (the rest zeroed): the status, the enhanced code, the text from
 * `fmt` (cut to fit), and the mailer's name unless `mailer` is NULL. */
void local_reply_set(struct local_reply *r, enum local_status status, const char *enh,
                     const char *mailer, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
