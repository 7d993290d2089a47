/*
 * delivery/outbound.h — outbound SMTP delivery on an engine worker: one job is one message
 * to one next hop (the recipients a route groups), delivered in one transaction.
 *
 * A job: the destination's limits and host status are checked (delivery/dest.h), then a
 * cached idle connection to the same next hop is reused, or the next hop is resolved
 * (util/dns.h: MX, or the host's own addresses for [host]) and each address is tried in
 * turn (MX preference order), each connect bounded by timeouts.iconnect on the message's
 * first delivery attempt (job.first_attempt: sendmail's confTO_ICONNECT, short, so that slow
 * hosts do not hold up a fresh message) and by timeouts.connect otherwise. The next address is
 * tried after a failed connect, a greeting other than 220, a 4xx to EHLO/HELO, a failed or
 * timed-out session before MAIL, or a 4xx to MAIL, as sendmail tries the next MX. STARTTLS follows
 * the destination's TLS policy (delivery/tlspolicy.h): under `may` a failed handshake or a refused
 * STARTTLS goes on in plain text with the same host (and dest_tls_failed() remembers it), under
 * `encrypt`/`verify` the recipients are deferred (failed with PERM+) with the reason. Every
 * handshake logs sendmail's line: "STARTTLS=client, relay=mx.example.com, version=TLSv1.3,
 * verify=OK, cipher=..., bits=256/256, group=...", and a failed one "STARTTLS=client, relay=...,
 * error: <why>".
 *
 * Results: per recipient delivered / deferred / failed with the reply (the next hop's, or
 * a local one saying why: "Connection refused by mx.example.com."), the relay name and
 * address, whether the peer offered DSN and the TLS description. When every address
 * failed, the last one's reason decides: a 5xx greeting or HELO reply fails the recipients
 * (sendmail's "Service unavailable"), anything else defers them. When no address got as
 * far as EHLO the destination's host status is set (dest_failed), and later jobs to it are
 * deferred at once with "<reason> (host status cached)" until
 * delivery.host_status_timeout. DNS: NXDOMAIN fails (5.1.2 Host unknown), a null MX fails
 * (556 5.1.10), a temporary failure defers (4.4.3); an address literal ([192.0.2.1]) is
 * connected to without DNS.
 *
 * Limits (delivery/dest.h): a job takes its destination's slot and a rate token before
 * anything else; a destination at its limit makes the job `throttled` at once (not an
 * attempt). The slot follows the session: it is given back when the connection has closed
 * after QUIT or waits idle in the cache, so the next hop never sees more delivering
 * sessions than the limit.
 *
 * LMTP (route mailer "lmtp", delivery/route.h): the same jobs spoken with LHLO
 * (smtp_client's lmtp setting), each recipient getting its own reply to the data. A route
 * with unix_socket connects to that path (no DNS, one target; never STARTTLS: the socket's
 * permissions are its protection); connection refused or a missing socket defers as a
 * refused TCP connect does, and sets the host status the same way; a full listen queue
 * (EAGAIN: the server is busy with other clients) makes the job `throttled`, to be tried
 * again a second later, without a host status. Cached connections are
 * keyed by route_key ("lmtp:unix:/run/dovecot/lmtp"), so one LMTP session carries message
 * after message.
 *
 * AUTH (RFC 4954): a connection to a server that settings.authinfo has credentials for
 * authenticates after EHLO (smtp/smtp_client.h: PLAIN, LOGIN, CRAM-MD5, only in TLS unless
 * auth_without_tls) and logs sendmail's "AUTH=client, relay=smtp.example.com, mech=PLAIN,
 * bits=0". A refused AUTH ("AUTH=client, relay=..., mech=PLAIN, authentication failed: 535
 * ...", or for a 4xx sendmail's "AUTH=client, relay=..., temporary failure, connection
 * abort") moves on to the next address like a failed EHLO, and at the end defers the
 * recipients with the server's reply (never a bounce: it is our configuration at fault).
 * A cached connection is reused only when the credentials its server has now are the ones
 * it authenticated with.
 *
 * TLS sessions are resumed: each worker keeps the session of the last 64 servers (by host
 * name, address and expected name) and offers it on the next connection to that server.
 *
 * Connection cache (sendmail's MCI cache): after a job its connection, if still good, is
 * kept idle for the next job to the same next hop, at most cache_size connections per
 * worker (the oldest is closed with QUIT when a new one needs room) and cache_timeout
 * idle (then QUIT). An idle connection the peer closes or that fails is dropped quietly.
 *
 * Bounded: every phase has a deadline (smtp_client's timeouts, the connect timeouts, the
 * TLS handshake under timeouts.starttls); output is pushed as the engine drains it; the
 * message is never copied.
 *
 * Threads: one outbound_worker per engine worker, every call on that worker's thread.
 * Ownership: the job and everything it points to (route, message, recipients, data) must
 * stay valid and unchanged until `done` has run. `done` runs exactly once per accepted
 * job, from the engine loop (never from inside outbound_deliver), unless the worker is
 * freed first. The result is valid only during the call.
 */
#ifndef RINGMAIL_DELIVERY_OUTBOUND_H
#define RINGMAIL_DELIVERY_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery/dest.h"
#include "delivery/route.h"
#include "delivery/tlspolicy.h"
#include "smtp/smtp_client.h"

struct engine_worker;
struct dns;
struct tls_ctx;
struct outbound_worker;

struct outbound_settings {
    const char *helo_name; /* our name in EHLO/HELO (copied) */
    /* sendmail's confTO_*: initial, helo, mail, rcpt, datainit, datablock, datafinal, rset,
     * quit, starttls (the STARTTLS reply and the handshake), in ms; 0 = none. */
    struct smtp_client_timeouts timeouts;
    uint32_t iconnect_ms;      /* confTO_ICONNECT: connects of a first attempt; 0 = connect_ms */
    uint32_t connect_ms;       /* confTO_CONNECT: every other connect; 0 = the kernel's own */
    unsigned cache_size;       /* confMCI_CACHE_SIZE: idle connections kept per worker; 0 = none */
    uint32_t cache_timeout_ms; /* confMCI_CACHE_TIMEOUT: idle time before QUIT */
    unsigned max_addresses;    /* addresses tried per job (all MX hosts); 0 = 20 */
    /* sendmail's TryNullMXList: when we are a domain's best MX, its own addresses are tried
     * instead of failing the recipients with 5.3.5 */
    bool try_null_mx_list;
    int family; /* AF_UNSPEC (IPv6 first), AF_INET or AF_INET6 */
    /* The client TLS context (tls_ctx_new_client, with confCLIENT_CERT/KEY if set):
     * referenced by the worker; NULL = never STARTTLS. */
    struct tls_ctx *tls;
    /* Must stay valid until outbound_worker_free or the next outbound_worker_configure;
     * NULL = the defaults (may everywhere; no limits). */
    const struct tlspolicy_settings *tls_policy;
    struct dest_table *dest; /* the global table (all workers) */
    /* SMTP AUTH credentials (sendmail's AuthInfo:) for the server `host` at `addr`, or
     * NULL; read on the worker's thread, copied by each connection. NULL = no AUTH. */
    const struct smtp_client_auth *(*authinfo)(void *arg, const char *host, const char *addr);
    void *authinfo_arg;
    bool auth_without_tls; /* credentials may go over a connection without TLS */
};

enum outbound_outcome { OUTBOUND_DELIVERED, OUTBOUND_DEFERRED, OUTBOUND_FAILED };

struct outbound_rcpt_result {
    enum outbound_outcome outcome;
    /* The next hop's reply to this recipient (RCPT, or the final data reply), or with
     * reply.local a reason of our own (connect failure, timeout, TLS, DNS, host status). */
    struct smtp_client_reply reply;
};

struct outbound_job {
    const char *qid;           /* for the log lines */
    bool first_attempt;        /* the message's first delivery attempt: iconnect_ms applies */
    const struct route *route; /* ROUTE_SMTP */
    /* sender, recipients (addr, notify, orcpt), data (the df, CRLF lines), body,
     * smtputf8, dsn_ret, envid */
    struct smtp_client_msg msg;
};

/* An address as text: an IPv6 one, or a unix socket's path (sun_path: 108). */
#define OUTBOUND_ADDR_MAX 112

struct outbound_result {
    const struct outbound_rcpt_result *rcpts; /* n_rcpts, in the job's order */
    size_t n_rcpts;
    char relay_host[256]; /* the host last talked to ("mx.b.example"; "localhost" for a
                             unix socket); "" if none */
    char relay_addr[OUTBOUND_ADDR_MAX]; /* its address ("127.0.0.2", "::1", or an LMTP
                                           server's socket path); "" if none */
    bool connected;                     /* a session took place (sendmail's xdelay starts) */
    bool dsn;                           /* the peer offered DSN (else a delivered NOTIFY=SUCCESS is
                                           "relayed") */
    char tls[512]; /* "version=TLSv1.3, verify=OK, cipher=..., bits=256/256, group=..." or
                      "" for plain text */
    /* Not attempted: the destination is at its concurrency limit or out of rate tokens, or
     * an LMTP server's socket had its listen queue full.
     * Every recipient is deferred with the reason; this is no delivery attempt (do not
     * count it) and retry_at (engine_now_ms clock) says when to try again. */
    bool throttled;
    uint64_t retry_at;
};

typedef void (*outbound_done_cb)(void *arg, const struct outbound_result *r);

/* NULL when out of memory. `dns` is the worker's resolver (kept, not owned). */
struct outbound_worker *outbound_worker_new(struct engine_worker *w, struct dns *dns,
                                            const struct outbound_settings *s);
/* Takes new settings (a reload): jobs already running finish with what they started with
 * for their TLS context; idle cached connections are closed. */
void outbound_worker_configure(struct outbound_worker *ow, const struct outbound_settings *s);
/* `fn(arg, key)` each time a session of this worker gives back its slot of destination
 * `key` (delivery/dest.h: closed, or idle in the cache), on the worker's thread, from
 * inside the outbound code: fn must not call into it. For the queue manager, to hand the
 * slot to a message waiting for it. One at a time; fn NULL removes it. */
void outbound_on_slot_free(struct outbound_worker *ow, void (*fn)(void *arg, const char *key),
                           void *arg);
/* Ends every job (no `done` after this), closes every connection at once (no QUIT: for a
 * polite end, outbound_worker_configure with cache_size 0 first and give the QUITs a
 * moment), cancels DNS queries. Safe with NULL, and from inside a `done` callback. */
void outbound_worker_free(struct outbound_worker *ow);

/* Starts a job. 0, or -1 when it cannot start (no memory, not a ROUTE_SMTP route, no
 * recipient, a unix socket path longer than a sockaddr_un holds): nothing happens then and
 * `done` is not called. */
int outbound_deliver(struct outbound_worker *ow, const struct outbound_job *job,
                     outbound_done_cb done, void *arg);

/* Jobs in progress and idle cached connections (for tests and the status report). */
unsigned outbound_jobs(const struct outbound_worker *ow);
unsigned outbound_cached(const struct outbound_worker *ow);

/* sendmail's stat= for a recipient's result: "Sent (<reply text>)", "Deferred: 451 4.3.0
 * <text>", "Deferred: Connection refused by mx.b.example.", "550 5.1.1 <text>". */
const char *outbound_stat(const struct outbound_rcpt_result *r, char *out, size_t outlen);

#endif
