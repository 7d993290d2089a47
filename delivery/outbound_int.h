/*
 * delivery/outbound_int.h — private to delivery/outbound*.c: jobs, connections, the cache.
 *
 * A job (outbound_run) owns its results and the list of addresses to try; it is attached
 * to at most one connection at a time. A connection (outbound_conn) owns its smtp_client,
 * its TLS session and a copy of the client settings, and is freed only by the engine's
 * on_closed (never from inside a callback of the client or of TLS), so a connection that
 * outlives its worker (outbound_worker_free before the loop ended) frees itself.
 */
#ifndef RINGMAIL_DELIVERY_OUTBOUND_INT_H
#define RINGMAIL_DELIVERY_OUTBOUND_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "delivery/outbound.h"
#include "tls/tls_session.h"
#include "util/dns.h"
#include "util/engine.h"

#define OUTBOUND_KEY_MAX 300
/* A unix socket whose listen queue was full is tried again after this long: its server is
 * busy for a moment, not down (a host status would hold it back for minutes). */
#define OUTBOUND_BACKLOG_RETRY_MS 1000u

struct outbound_target {
    char host[ROUTE_HOST_MAX];
    struct sockaddr_storage addr;
};

enum outbound_conn_state {
    OUTBOUND_CONNECTING,
    OUTBOUND_SESSION, /* greeting, EHLO, STARTTLS, a transaction */
    OUTBOUND_IDLE,    /* in the cache */
    OUTBOUND_CLOSING, /* QUIT sent or closed: waiting for on_closed */
};

struct outbound_run;

struct outbound_conn {
    struct outbound_conn *next, *prev; /* the worker's list of all, or of the cache */
    struct outbound_worker *ow;        /* NULL once the worker is gone */
    struct outbound_run *run;          /* the job using it; NULL when idle or closing */
    struct engine_worker *w;
    engine_conn_id id;
    enum outbound_conn_state state;
    struct smtp_client *c;
    struct smtp_client_settings cs;
    struct smtp_client_auth auth; /* cs.auth when set: a copy, its strings in auth_copy */
    char *auth_copy;              /* wiped when freed */
    size_t auth_copy_len;
    struct smtp_client_io io;
    struct tls_session *tls;
    struct tls_session_io tls_io;
    struct tls_ctx *tls_ctx; /* referenced while the connection lives */
    struct tlspolicy policy;
    bool tls_open;         /* handshake done and checked */
    bool tls_saved;        /* its session was kept for resumption */
    bool in_tls_feed;      /* no tls_session_shutdown from inside feed */
    bool shutdown_pending; /* close_notify once the feed returns */
    bool cached;           /* in the worker's cache list */
    bool closed;           /* engine_conn_close called (or the engine closed it) */
    bool slot;             /* holds the job's destination slot until closed or idle */
    bool unix_socket;      /* to an LMTP server's unix socket (host "localhost") */
    unsigned rcpt_replies; /* RCPT events in this transaction (none: MAIL was refused) */
    uint64_t idle_until;   /* OUTBOUND_IDLE */
    char key[OUTBOUND_KEY_MAX];
    char host[ROUTE_HOST_MAX];
    char addr[OUTBOUND_ADDR_MAX]; /* for a unix socket, its path */
    char helo[256];
    char tls_desc[512];
};

struct outbound_run {
    struct outbound_run *next, *prev;
    struct outbound_worker *ow;
    struct outbound_job job;
    outbound_done_cb done;
    void *arg;
    char key[OUTBOUND_KEY_MAX];
    struct tlspolicy policy; /* for the destination; each connection refines it */
    struct outbound_conn *conn;
    struct dns_query *q;
    struct outbound_target *targets;
    size_t n_targets, next_target;
    bool slot;          /* a destination slot is held (dest_release at the end) */
    bool sent;          /* the transaction started (the rate token was used) */
    bool plain_retry;   /* may: the last target again, without STARTTLS */
    bool reused;        /* on a cached connection: a failure there falls back to DNS */
    bool any_session;   /* some address got as far as EHLO */
    bool local_trouble; /* a connect failed for a reason of ours (descriptors, memory) */
    bool backlog_full;  /* a unix socket's listen queue was full (EAGAIN): busy, not down */
    bool finished;      /* results final; waiting for the finish timer */
    bool own_addresses; /* TryNullMXList: the domain's own addresses, not its MX hosts */
    struct smtp_client_reply last; /* why the last address failed */
    struct engine_timer finish;
    struct outbound_rcpt_result *rcpts;
    struct outbound_result result;
};

/* TLS sessions to resume, per server (host name and address): a full handshake costs the
 * server and us far more than an abbreviated one, and relays reconnect to the same MX
 * all day. Dropped when the settings change (another client context). */
#define OUTBOUND_RESUME_MAX 64

struct outbound_resume {
    /* "mx.example.com 192.0.2.1 <expected name>" */
    char id[ROUTE_HOST_MAX + OUTBOUND_ADDR_MAX + TLSPOLICY_NAME_MAX];
    struct tls_resumption *r;
    uint64_t used; /* for least-recently-used replacement */
};

struct outbound_worker {
    struct engine_worker *w;
    struct dns *dns;
    struct outbound_settings s;
    char helo[256];
    struct outbound_run *runs;
    struct outbound_conn *conns;     /* connections in a session or closing */
    struct outbound_conn *cache;     /* idle, most recently used first */
    struct outbound_conn *cache_old; /* the cache's tail: evicted first */
    unsigned n_runs, n_cached;
    struct outbound_resume resume[OUTBOUND_RESUME_MAX];
    uint64_t resume_clock;
    void (*slot_free)(void *arg, const char *key); /* outbound_on_slot_free */
    void *slot_free_arg;
};

/* outbound.c, for the connection glue */
/* Gives back a destination slot a session held, and says so (outbound_on_slot_free). */
void outbound_slot_release(struct outbound_worker *ow, const char *key);
/* The job's connection failed before MAIL: try the next address (or the same one in
 * plain text when run->plain_retry; or, on a reused cached connection, resolve afresh),
 * or finish with `reply` for every recipient when none is left. */
void outbound_run_next(struct outbound_run *r, const struct smtp_client_reply *reply);
/* Sets every recipient still without a result to `reply` (outcome from reply->outcome). */
void outbound_run_set_all(struct outbound_run *r, const struct smtp_client_reply *reply);
/* The results are final: detach the connection, release the slot, call done soon. */
void outbound_run_finish(struct outbound_run *r);
void outbound_reply_local(struct smtp_client_reply *out, enum smtp_client_outcome o,
                          const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A connection that finished a job cleanly: into the cache (its slot released), or QUIT
 * (its slot released once closed). */
void outbound_cache_put(struct outbound_worker *ow, struct outbound_conn *cn);
void outbound_cache_remove(struct outbound_worker *ow, struct outbound_conn *cn);
/* The session to resume with the server `id`, or NULL. */
const struct tls_resumption *outbound_resume_get(struct outbound_worker *ow, const char *id);
/* Keeps `r` (owned from now on) for the server `id`, replacing its older one. */
void outbound_resume_put(struct outbound_worker *ow, const char *id, struct tls_resumption *r);

/* outbound_conn.c */
/* Connects to r's current target and attaches the connection to r: 0, or -1 with why. */
int outbound_conn_open(struct outbound_run *r, const struct outbound_target *t,
                       struct smtp_client_reply *why);
/* Starts r's transaction on an idle (cached) connection: 0, or -1 (the connection is
 * closed then). */
int outbound_conn_send(struct outbound_conn *cn, struct outbound_run *r);
/* Ends a connection: QUIT when `quit` and the session is idle, else close. */
void outbound_conn_end(struct outbound_conn *cn, bool quit);
/* Whether the credentials the connection's server has now are the ones it was opened with
 * (none and none too): a cached connection is reused only then. */
bool outbound_conn_auth_current(const struct outbound_conn *cn);
/* Gives back the destination slot the connection holds, if any. */
void outbound_conn_release_slot(struct outbound_conn *cn);
/* The connection's worker is going away: close it at once; it frees itself later. */
void outbound_conn_orphan(struct outbound_conn *cn);

#endif
