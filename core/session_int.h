/*
 * core/session_int.h — private to core/session*.c: the session struct and its transport.
 *
 * A session's bytes pass through a small transport table (DESIGN.md, Redis' ConnectionType):
 * the plain one hands received bytes to the state machine and replies to the engine; the
 * TLS one (core/session_tls.c) decrypts into the state machine and encrypts the replies.
 * STARTTLS swaps the table once; nothing above the table knows which one is in use.
 */
#ifndef RINGMAIL_CORE_SESSION_INT_H
#define RINGMAIL_CORE_SESSION_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "compat/alias_expand.h"
#include "core/daemon.h"
#include "queue/spool.h"
#include "smtp/smtp_server.h"
#include "util/buf.h"

struct session;
struct session_tls;
struct submission_caller;

struct session_transport {
    /* Bytes from the network (the caller is inside a call into the state machine). */
    void (*recv)(struct session *s, const char *data, size_t len);
    /* A reply from the state machine to the client. */
    void (*send)(struct session *s, const char *data, size_t len);
    /* STARTTLS was accepted and its 220 queued: what the client sends next is TLS. -1 if
     * TLS cannot start (the session is then closed). */
    int (*start_tls)(struct session *s);
    /* The session is closing: say goodbye at this layer (TLS close_notify). */
    void (*close)(struct session *s);
    /* The connection is gone: release this layer. */
    void (*free)(struct session *s);
};

extern const struct session_transport session_plain, session_tls;

/*
 * Kept small on purpose: with no transaction an idle session is this struct, the
 * smtp_server's own state and the engine's slot — the 4 KiB per idle connection budget.
 * TLS state lives behind `tls`, allocated at STARTTLS.
 */
struct session {
    struct daemon_conn conn;     /* first: this session's callbacks (core/daemon.h) */
    struct session *next, *prev; /* the worker's list, for draining */
    struct daemon_worker *dw;
    engine_conn_id id;
    struct runconf *rc;
    struct smtp_server *smtp;
    struct smtp_server_io io;
    const struct session_transport *tp;
    struct session_tls *tls; /* after STARTTLS */
    struct spool_msg *msg;   /* between MAIL and the end of the transaction */
    /* While a commit is in flight: what its callback gets (it outlives the session, so a
     * message whose client went away still reaches the queue manager). */
    struct session_commit *commit;
    /* On submission.socket: the local caller (core/submission.h); NULL for a TCP client. */
    struct submission_caller *local;
    struct session_auth *auth; /* from the first AUTH (core/session_auth.c) */
    struct sockaddr_storage peer;
    unsigned listener;
    bool access_relay; /* the access map says Connect: RELAY for this client */
    bool committing;   /* spool commit in flight; smtp_server is parked */
    bool closing;
    bool in_smtp;               /* inside a call into smtp_server: defer re-entry */
    bool commit_result_pending; /* a commit finished while in_smtp */
    int commit_result;
    /* What sendmail's end-of-connection lines need to know (only the log reads them). */
    const char *last_cmd; /* sendmail's lower-case name of the last command seen */
    bool issued_mail;     /* MAIL, EXPN, VRFY or ETRN was used: not a "null connection" */
    bool policy_refusal;  /* session_check_rcpt refused the RCPT whose REJECT comes next */
    struct alias_refusal rcpt_refusal; /* a local recipient's refusal: the reply's text */
    bool in_data;                      /* from DATA (or the first BDAT) to the end of the message */
    char *msgid;   /* Message-ID of the message being committed (ours when we added it), for
                    * the log and the envelope */
    uint64_t size; /* octets stored so far: our Received: plus the data */
    char qid[QID_LEN + 1];
    char addr[48]; /* client IP as text, for logs and Received: */
};

/* "[192.0.2.1]" / "[IPv6:::1]", sendmail's spelling of a client without a name; a local
 * caller is "user@localhost". */
const char *session_relay(const struct session *s, char *out, size_t outlen);
void session_close(struct session *s);
/* Plaintext from the client into the state machine; pauses receiving when it is full. */
void session_smtp_input(struct session *s, const char *data, size_t len);

/* Leaving a call into the state machine: deferred results go in, the timer follows. */
void session_after_smtp(struct session *s);

/* SMTP AUTH (core/session_auth.c). */
/* Sets the io's AUTH callbacks when the daemon has SASL. */
void session_auth_io(struct session *s);
void session_auth_free(struct session *s);
/* An authenticated client whose mechanism is in auth.trust_mechanisms (TRUST_AUTH_MECH). */
bool session_auth_may_relay(const struct session *s);
/* The relay refusal's text: sendmail's, with "Proper authentication required." when the
 * configuration trusts AUTH. */
const char *session_auth_relay_denied(const struct session *s);
/* `proto` with RFC 3848's "A" for an authenticated client (ESMTPA, ESMTPSA, ...). */
const char *session_auth_proto(const struct session *s, const char *proto);
/* Received:'s "(authenticated bits=N)" for an authenticated client. */
void session_auth_received(const struct session *s, struct buf *hdr);

/* The TLS side (core/session_tls.c). */
/* The cipher's bits once in TLS, else 0. */
unsigned session_tls_bits(const struct session *s);
/* The handshake's deadline (timeouts.starttls), 0 when none is in progress. */
uint64_t session_tls_deadline(const struct session *s);
/* At or after that deadline: logs the timeout and closes. */
void session_tls_timeout(struct session *s);
/* Whether the connection is in TLS now (handshake done). */
bool session_tls_active(const struct session *s);
/* sendmail's Received: comment, "(version=TLSv1.3 cipher=... bits=256 verify=NO)". */
void session_tls_received(const struct session *s, struct buf *hdr);

#endif
