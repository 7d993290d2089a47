/*
 * core/runconf.h — one generation of the running configuration.
 *
 * A runconf owns a loaded struct config and the module settings derived from it (SMTP
 * server settings, relay policy, the TLS server contexts — one per worker), so a session
 * reads everything from one consistent generation. Reference counted: the daemon holds the
 * current one, every session holds the one it started with; SIGHUP builds a new one and
 * sessions in progress keep theirs (and so their TLS context). runconf_ref/unref are
 * thread-safe.
 */
#ifndef RINGMAIL_CORE_RUNCONF_H
#define RINGMAIL_CORE_RUNCONF_H

#include <stdatomic.h>

#include "core/config.h"
#include "core/milterconf.h"
#include "compat/masquerade.h"
#include "delivery/outbound.h"
#include "delivery/qmgr.h"
#include "delivery/tlspolicy.h"
#include "policy/policy.h"
#include "smtp/smtp_relay.h"
#include "smtp/smtp_server.h"
#include "tls/tls_ctx.h"

struct runconf {
    atomic_uint refs;
    unsigned generation;
    struct config *cfg;
    struct smtp_server_settings smtp;          /* listeners that do not offer STARTTLS */
    struct smtp_server_settings smtp_starttls; /* those that do (only with contexts) */
    struct smtp_server_settings smtp_local;    /* submission.socket (settings.local) */
    struct smtp_relay_policy relay;
    struct policy_settings policy; /* reads relay and the access map */
    struct tls_ctx **tls;          /* by worker index; NULL: no certificates, no STARTTLS */
    unsigned n_tls;
    struct tls_ctx **tls_client; /* the delivery side's, by worker index */
    unsigned n_tls_client;
    struct qmgr_settings qmgr;
    struct qmgr_local_settings local;   /* qmgr.local: local recipients (core/localrcpt.h) */
    struct route lmtp;                  /* mailers.lmtp's route, when set */
    struct masquerade_settings masq;    /* qmgr.rewrite\'s (compat/masquerade.h) */
    struct outbound_settings *outbound; /* by worker index (each has its TLS context) */
    struct tlspolicy_settings tls_policy;
    struct tlspolicy_entry *tls_policy_entries;
    /* What AUTH offers outside TLS [0] and in it [1], "" = nothing; SASL_SEC_* flags from
     * auth.options (core/session_auth.c) */
    char auth_mechs[2][256];
    unsigned auth_flags;
    struct milterconf_addr *milter_addrs; /* cfg->milters' addresses (core/milterconf.h) */
    size_t n_milter_addrs;
};

/* Takes ownership of cfg and builds `workers` TLS server and client contexts from it, the i-th on
 * libs[i] (tls_lib_new; NULL: each on its own), reading the certificate files through
 * `files` (util/fileset.h; NULL: from disk). NULL with `err` (cfg is then freed) when a
 * certificate or TLS setting fails, or memory runs out. */
struct runconf *runconf_new(struct config *cfg, unsigned generation, unsigned workers,
                            struct tls_lib **libs, struct fileset *files, char *err, size_t errlen);
struct runconf *runconf_ref(struct runconf *rc);
void runconf_unref(struct runconf *rc);

/* The SMTP settings for sessions on listener `listener` (an index of the listeners bound at
 * start-up; one a reload added or removed gets no STARTTLS). */
const struct smtp_server_settings *runconf_smtp(const struct runconf *rc, unsigned listener);
/* The routing `cfg` asks for (smart host, mail hub, mailertable, local domains): what the
 * queue manager routes by and what sendmail -bv answers from. Points into `cfg`. */
struct route_settings runconf_route_settings(const struct config *cfg);

#endif
