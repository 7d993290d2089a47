/*
 * policy/sasl.h — SMTP AUTH as a server with Cyrus SASL, the library sendmail uses, under
 * sendmail's application name "Sendmail": an existing /etc/sasl2/Sendmail.conf
 * (pwcheck_method: saslauthd, auxprop with sasldb, mech_list) works unchanged.
 *
 * Owns: the library's global state (sasl_setup/sasl_teardown, once per process), a pool of
 * helper threads with a bounded queue, and each client's exchange (struct sasl_auth, its
 * sasl_conn_t). Why threads: sasl_server_start/step may block (saslauthd's unix socket, a
 * sasldb file, an LDAP auxprop) and a worker serves thousands of sessions; Postfix and
 * sendmail block a whole process instead. A step is queued from the worker, run on a helper
 * thread, and its result handed back to the worker that asked (a box per worker, woken by
 * engine_post(SASL_ENGINE_MSG)), where `done` runs. A full queue refuses the step at once
 * (the caller answers 454): a stuck saslauthd slows AUTH, never mail without it.
 *
 * Threads: sasl_setup, sasl_offer and sasl_pool_new/free on the main thread (or one that
 * is alone to use SASL then); sasl_auth_* and sasl_pool_on_message on the worker whose
 * index the exchange was made with. `done` runs on that worker, never from inside a
 * sasl_auth_* call. Never: logs a password, or keeps a response after its step.
 */
#ifndef RINGMAIL_POLICY_SASL_H
#define RINGMAIL_POLICY_SASL_H

#include <stdbool.h>
#include <stddef.h>

struct engine;
struct sasl_pool;
struct sasl_auth;

/* The engine_post message that wakes workers for their results: distinct from the others. */
#define SASL_ENGINE_MSG   0x5341534cu
#define SASL_POOL_THREADS 4   /* helper threads: saslauthd answers in milliseconds */
#define SASL_POOL_QUEUE   256 /* steps waiting for a thread before new ones get 454 */

/* sendmail's AuthOptions letters that are SASL security properties (the others: 0). */
unsigned sasl_option_flags(const char *options);

/* Loads the library for the application "Sendmail", its configuration read from
 * `config_dir` (SASL_CB_GETCONFPATH; NULL: the library's default, /etc/sasl2 on Debian).
 * 0, or -1 with `err`. Once per process, before any other call. */
int sasl_setup(const char *config_dir, char *err, size_t errlen);
void sasl_teardown(void);

/* The mechanisms to offer, in the order of `want` (NULL-terminated list of names, e.g.
 * confAUTH_MECHANISMS), that the library offers with security flags `flags` (and, when
 * `tls`, the TLS layer counted as a security layer, so SASL_SEC_NOPLAINTEXT allows PLAIN):
 * "PLAIN LOGIN" into `out`, "" when none. 0, or -1 with `err`. */
int sasl_offer(const char *const *want, unsigned flags, bool tls, char *out, size_t outlen,
               char *err, size_t errlen);

struct sasl_pool *sasl_pool_new(struct engine *e, unsigned workers);
/* After every worker has ended and before the engine is freed: stops the threads and
 * frees what is left. */
void sasl_pool_free(struct sasl_pool *p);
/* SASL_ENGINE_MSG arrived on worker `worker`: runs `done` for its finished steps. */
void sasl_pool_on_message(struct sasl_pool *p, unsigned worker);

enum sasl_status { SASL_STATUS_OK, SASL_STATUS_CONTINUE, SASL_STATUS_FAIL, SASL_STATUS_TEMPFAIL };

/* What a step came to; valid during `done` only. */
struct sasl_result {
    enum sasl_status status;
    const unsigned char *out; /* CONTINUE: the challenge */
    size_t outlen;
    const char *authid; /* OK: the authenticated user ({auth_authen}) */
    unsigned ssf;       /* OK: the security layer's strength (sendmail's bits=) */
    const char *error;  /* FAIL/TEMPFAIL: sendmail's text, "authentication failure (-13)
                           SASL(-13): authentication failure: checkpass failed" */
};

struct sasl_auth_settings {
    const char *hostname;      /* our name (the realm's default) */
    const char *local_ipport;  /* "127.0.0.1;25", for mechanisms that bind to addresses */
    const char *remote_ipport; /* "192.0.2.1;40000" */
    unsigned flags;            /* SASL_SEC_* (sasl_option_flags) */
    unsigned tls_bits;         /* the TLS cipher's bits, 0 outside TLS */
};

/* One client's exchange; NULL when memory runs out. `done(arg, result)` answers each step. */
struct sasl_auth *sasl_auth_new(struct sasl_pool *p, unsigned worker,
                                const struct sasl_auth_settings *set,
                                void (*done)(void *arg, const struct sasl_result *r), void *arg);
/* Queues a step: `mech` set starts an exchange (a started one is dropped first), NULL
 * continues it; resp/len the client's decoded response (copied), `has_resp` false when a
 * start came without one. One step at a time. Always answered through `done`: a full
 * queue or no memory is a TEMPFAIL, from the loop like any answer. */
void sasl_auth_step(struct sasl_auth *a, const char *mech, const unsigned char *resp, size_t len,
                    bool has_resp);
/* Ends the exchange: at once, or when a step in flight returns (its `done` never runs). */
void sasl_auth_free(struct sasl_auth *a);

#endif
