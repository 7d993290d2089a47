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
#include "policy/policy.h"
#include "queue/spool.h"
#include "smtp/smtp_server.h"
#include "util/buf.h"

struct session;
struct session_checks;
struct session_sender;
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
    /* Before the greeting: the client's lookups and greet_pause (core/session_checks.c);
     * NULL once greeted (or when there was nothing to wait for). */
    struct session_checks *checks;
    /* The client's host name from its PTR record, NULL without one; `forged` when the
     * name's addresses do not include the client's (sendmail's "(may be forged)"). Only
     * a name that is not forged is used for access-map host-name keys. */
    char *client_name;
    bool client_forged;
    struct session_auth *auth;       /* from the first AUTH (core/session_auth.c) */
    struct session_milters *milters; /* the listener's mail filters (core/session_milter.h) */
    char *early; /* what the client sent before the greeting, while the filters decide */
    size_t early_len;
    char *milter_mail;    /* "<sender>\0args": MAIL for the filters after the sender's lookup */
    char *commit_refusal; /* a filter's refusal of the message, for the commit's result */
    bool commit_shutdown; /* ... after which the session ends (a filter's 421) */
    bool msg_for_mail;    /* msg was started for the MAIL the filters are asked about */
    bool reject_logged;   /* the refusal the state machine sends next was logged already */
    struct sockaddr_storage peer;
    unsigned listener;
    struct policy_session pol; /* what the policy said so far (policy/policy.h) */
    bool committing;           /* spool commit in flight; smtp_server is parked */
    bool closing;
    bool in_smtp;               /* inside a call into smtp_server: defer re-entry */
    bool commit_result_pending; /* a commit finished while in_smtp */
    int commit_result;
    /* What sendmail's end-of-connection lines need to know (only the log reads them). */
    const char *last_cmd; /* sendmail's lower-case name of the last command seen */
    bool issued_mail;     /* MAIL, EXPN, VRFY or ETRN was used: not a "null connection" */
    /* The policy's last verdict: its reply's text until the state machine sends it, and
     * for the REJECT event that follows, the ruleset its log line names. */
    struct policy_verdict verdict;
    struct session_sender *sender_check;        /* the sender's domain lookup in flight */
    struct sender_domain_reply *sender_refused; /* delay_checks: for pol.sender_refused */
    struct alias_refusal rcpt_refusal;          /* a local recipient's refusal: the reply's text */
    bool in_data;  /* from DATA (or the first BDAT) to the end of the message */
    char *msgid;   /* Message-ID of the message being committed (ours when we added it), for
                    * the log and the envelope */
    uint64_t size; /* octets stored so far: our Received: plus the data */
    char qid[QID_LEN + 1];
    char addr[48]; /* client IP as text, for logs and Received: */
};

/* sendmail's relay=: "[192.0.2.1]" / "[IPv6:::1]" for a client without a name, "name
 * [192.0.2.1]", "name [192.0.2.1] (may be forged)"; a local caller is "user@localhost". */
#define SESSION_RELAY_MAX 400
const char *session_relay(const struct session *s, char *out, size_t outlen);
/* sendmail's check_relay line; name and relay NULL: the client's bracketed address. */
struct log_limit;
void session_log_check_relay(struct log_limit *limit, const char *addr, const char *name,
                             const char *relay, const char *reject);
void session_close(struct session *s);
/* core/session_stats.c. The mailer sendmail would resolve `addr` (a bare mailbox; "" the
 * null sender) to: local for this host's domains and the null sender, esmtp for the rest:
 * ${mail_mailer} for the filters, and the mailer a message is counted under in the
 * statistics (queue/mailstats.h). NULL for NULL. */
const char *session_mailer_of(const struct session *s, const char *addr);
/* The mailer a refusal or hold is counted under: the transaction's sender's, or before MAIL
 * is done the address MAIL checks (`checked`; NULL: none, not counted). */
const char *session_stats_mailer(const struct session *s, const char *checked);
/* sendmail's {daemon_name}: the listener's name. */
const char *session_daemon_name(const struct session *s);
/* Plaintext from the client into the state machine; pauses receiving when it is full. */
void session_smtp_input(struct session *s, const char *data, size_t len);

/* Sends the greeting and starts the SMTP state machine (NULL until then); `early` is what
 * the client sent before it (len 0: nothing), read now. */
void session_greet(struct session *s, const char *early, size_t len);
/* The same once the mail filters have had their say on the connection. */
void session_greet_now(struct session *s, const char *early, size_t len);
/* The access map's Connect: entries again, now with the client's forward-confirmed name
 * (sendmail's check_relay looks up the name, then the address): true when they refuse the
 * client, which is then told so in the greeting's place and closed. */
bool session_connect_named(struct session *s);
/* A client refused before its greeting: the reply in the greeting's place, the check_relay
 * line (`reject` as sendmail logs it), then close. */
void session_refuse_greeting(struct session *s, int code, const char *enh, const char *text,
                             const char *reject);

/* Before the greeting (core/session_checks.c): reverse DNS with forward confirmation,
 * DNSBL zones and greet_pause, all at once; the greeting goes out when all are done. */
/* Starts them; false when there is nothing to wait for (the caller greets at once). */
bool session_checks_start(struct session *s);
/* Bytes from a client not greeted yet: with a pause in effect sendmail's refusal of an
 * early talker, else kept for the state machine. */
void session_checks_input(struct session *s, const char *data, size_t len);
/* The connection's deadline while the checks run, and its expiry. */
uint64_t session_checks_deadline(const struct session *s);
void session_checks_timer(struct session *s);
/* Cancels what is in flight (the connection is gone). */
void session_checks_free(struct session *s);

/* The sender's domain at MAIL (core/session_sender.c): 1 when its lookup is started
 * (check_mail's "pending"), 0 when there is nothing to look up. */
int session_sender_check(struct session *s, const struct smtp_path *sender);
void session_sender_free(struct session *s);
/* The verdict on a pending MAIL (NULL: accepted) into the state machine. */
void session_mail_checked(struct session *s, const struct smtp_addr_error *err);
/* Leaving a call into the state machine: deferred results go in, the timer follows. */
void session_after_smtp(struct session *s);

/* SMTP AUTH (core/session_auth.c). */
/* Sets the io's AUTH callbacks when the daemon has SASL. */
void session_auth_io(struct session *s);
void session_auth_free(struct session *s);
/* The mechanism and {auth_authen} of an authenticated client, NULL and NULL before (the
 * policy decides what they allow: TRUST_AUTH_MECH, policy/policy.h). */
void session_auth_client(const struct session *s, const char **mech, const char **authen);
/* `proto` with RFC 3848's "A" for an authenticated client (ESMTPA, ESMTPSA, ...). */
const char *session_auth_proto(const struct session *s, const char *proto);
/* MAIL's AUTH= to record with the message (policy/auth_param.h): `given` as the server kept
 * it, the identity's xtext in `out`, "<>", or NULL for an unauthenticated client. */
const char *session_auth_param(const struct session *s, const char *given, char *out,
                               size_t outlen);
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
/* A TLS macro for the mail filters ({tls_version}, {cipher}, {cipher_bits}, {verify},
 * {cert_subject}, {cert_issuer}) into `out`; NULL outside TLS or for another name. */
const char *session_tls_macro(const struct session *s, const char *name, char *out, size_t outlen);

/* Queues "421 4.3.2 <host> <text>" for a connection that will not be served; NULL. */
void *session_refuse(struct daemon_worker *dw, engine_conn_id id, const char *text);
/* A TCP client at `peer` (its real address: the socket's, or what a PROXY header said): the
 * access map's Connect: check, rate and connection limits, then its session. NULL when it
 * is refused (the refusal is queued: the caller closes with a flush). */
void *session_accept_client(struct daemon_worker *dw, engine_conn_id id, unsigned listener,
                            const struct sockaddr *peer, socklen_t peerlen);
/* A connection to a proxy_protocol listener from `proxy` (core/session_proxy.c): refused
 * unless it is a trusted proxy; else its context until the PROXY header has been read,
 * which then hands the connection to session_accept_client. NULL when refused. */
void *session_proxy_accept(struct daemon_worker *dw, engine_conn_id id, unsigned listener,
                           const struct sockaddr *proxy);

#endif
