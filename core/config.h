/*
 * core/config.h — the daemon's configuration: one YAML file read with libcyaml.
 *
 * Owns: a struct config and everything it points to; config_free() releases it all.
 * A loaded config is immutable and may be shared between threads (the daemon swaps
 * whole configs on SIGHUP with a reference count, core/daemon.c).
 *
 * Defaults are sendmail's defaults where sendmail has one (docs/config.md lists every key,
 * its default and the sendmail option it comes from). Errors: config_load() never exits;
 * it fills `err` with "FILE:LINE:COLUMN: key 'a.b.c': what was expected" and returns NULL.
 * Durations are written "90s", "5m", "1h", "2d" or a number of seconds; sizes "10M", "64K",
 * "1G" or a number of bytes.
 */
#ifndef RINGMAIL_CORE_CONFIG_H
#define RINGMAIL_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "compat/map_access.h"
#include "compat/map_aliases.h"
#include "compat/map_authinfo.h"
#include "compat/map_simple.h"
#include "policy/milter.h"
#include "smtp/smtp_server.h"
#include "util/log.h"
#include "util/netaddr.h"

/* Keys the daemon accepts but does not enforce yet keep their values as written (text), so
 * the issue that enforces them finds them and --check-config prints them back; a start-up
 * warning names each one that is set (config->warnings). */
struct config_words {
    char **v;
    size_t n;
};

struct config_listener {
    char *name;    /* sendmail's DAEMON_OPTIONS Name=, e.g. "MTA" */
    char *address; /* "127.0.0.1", "::1", "0.0.0.0", "::" */
    uint16_t port;
    int family;      /* AF_INET or AF_INET6, from `family` or from the address */
    bool starttls;   /* offer STARTTLS here; false = sendmail's DAEMON_OPTIONS Modifiers=S */
    char *modifiers; /* sendmail's M= flags: kept, not enforced yet */
    /* HAProxy's PROXY protocol (docs/policy-connections.md): every connection must come
     * from one of trusted_proxies and start with a v1 or v2 header naming the client. */
    bool proxy_protocol;
    struct netaddr_prefix *trusted_proxies;
    size_t n_trusted_proxies;

    bool auth;          /* offer AUTH here (auth.mechanisms); false = sendmail's M=A */
    bool auth_required; /* MAIL only after AUTH (530 5.7.0); sendmail's M=a */

    /* sendmail's DAEMON_OPTIONS InputMailFilters=: the filters' names; not given = the
     * top-level input_mail_filters (filled in at load, so printing keeps the meaning) */
    struct config_words input_mail_filters;
    /* What a session on this listener runs (core/config_milter.c): `filters` is an array of
     * this config's (copies of milters[].filter, in input_mail_filters' order; their strings
     * and the macro names are the config's too), freed by config_free(). */
    struct milter_settings milter;
};

struct config_cert {
    char *cert; /* PEM: the certificate, then its chain */
    char *key;  /* PEM private key; default: the cert file (one file holding both) */
};

/* The auth section (docs/auth.md): SMTP AUTH as a server, sendmail's names. */
/* TRUST_AUTH_MECH (auth.trust_mechanisms) is the policy's: `policy` below. */
struct config_auth {
    struct config_words mechanisms; /* confAUTH_MECHANISMS; none = AUTH off */
    struct config_words options;    /* confAUTH_OPTIONS letters */
    char *sasl_config_dir;          /* where Sendmail.conf is; NULL = the library's */
};

/* The tls section (docs/tls.md). Paths are absolute; NULL = not configured. */
struct config_tls {
    struct config_cert *certificates; /* the first is confSERVER_CERT/confSERVER_KEY */
    size_t n_certificates;
    char **providers; /* besides "default" */
    size_t n_providers;
    char **groups; /* none = OpenSSL's defaults */
    size_t n_groups;
    char *min_version; /* "TLSv1.2" or "TLSv1.3" */
    char *max_version;
    char *ciphersuites; /* TLS 1.3 */
    char *cipher_list;  /* TLS 1.2, confCIPHER_LIST */
    char *dh_params;
    char *ca_file;
    char *ca_path;
    bool request_client_cert;
    bool session_tickets;
    uint32_t ticket_rotate_ms;
    char *client_cert; /* the delivery side's certificate (confCLIENT_CERT), or NULL */
    char *client_key;  /* default: the client_cert file */
    /* The built-in default: with no certificates, demo ones are made on first run in
     * <the spool's parent>/tls, so STARTTLS works out of the box. */
    bool demo_certs;
    char *server_ssl_options; /* confSERVER_SSL_OPTIONS: kept, not enforced yet */
    char *client_ssl_options;
};

/* The sendmail maps (paths; NULL = not configured). local_host_names, relay_domains_file,
 * trusted_users (its names join trusted_users below at load) and access are enforced; aliases,
 * mailertable, virtusertable and genericstable are parsed at load (errors stop it) and kept for
 * delivery; the others are kept as paths. */
struct config_maps {
    char *access;
    struct config_words aliases;
    char *mailertable, *virtusertable, *genericstable, *domaintable, *authinfo;
    char *local_host_names, *relay_domains_file, *trusted_users;
};

/* The maps' contents, read by config_load() (core/config_maps.c). */
struct config_map_data {
    struct access_map access;
    struct alias_map *aliases; /* one per file of maps.aliases, searched in order */
    size_t n_aliases;
    struct map_simple mailertable, virtusertable, genericstable;
    struct authinfo_map authinfo; /* maps.authinfo, else the access map's AuthInfo: */
    /* The files the aliases' :include: targets name, read now (by the parent, which may
     * read them): `err` is the read's errno, 0 when `text` holds the file. */
    struct config_include {
        char *path, *text;
        size_t len;
        int err;
    } * includes;
    size_t n_includes;
    /* The system's login names (getpwent, in the privileged parent), sorted (strcmp), for
     * local recipients at RCPT; empty for config_load_settings. */
    char **users;
    size_t n_users;
};

/* Local delivery (the `mailers` section, and routing.luser_relay): how the privileged
 * parent's agent writes a local user's mailbox (core/local_agent.h) and what the queue
 * manager expands a local recipient with (compat/alias_expand.h). */
struct config_local {
    char *mailbox;        /* "/var/mail/$u": mbox; ending in '/': Maildir; relative: under home */
    char *local_path;     /* LOCAL_MAILER_PATH: mailboxes through this program; NULL = built-in */
    char *local_args;     /* LOCAL_MAILER_ARGS: its argv, words with $u $h $f */
    char *local_procmail; /* FEATURE(local_procmail): "true" or procmail's path */
    char *lmtp;           /* mailboxes over LMTP: "unix:/path", "/path", "[host]:port"; NULL */
    char *default_user;   /* DefaultUser: alias programs and files, uid-0 recipients */
    char *smrsh;          /* FEATURE(smrsh): "true" or the program's path; NULL = off */
    char *smrsh_dir;      /* the programs smrsh allows; NULL when smrsh is off */
    char **forward_path;  /* confFORWARD_PATH: "$z/.forward" */
    size_t n_forward_path;
    char *luser_relay; /* LUSER_RELAY: unknown local users go there; NULL = 5.1.1 */
    /* FEATURE(preserve_luser_host): a luser_relay host gets the recipient with its own
     * domain, not rewritten to name@host */
    bool preserve_luser_host;
    uint32_t timeout_ms; /* a local mailer's time limit */
    unsigned max_agents; /* local delivery agents at once (more requests wait) */
};

/* Masquerading and the genericstable (the `masquerade` section, maps.genericstable): how
 * sender addresses look as mail leaves by SMTP (compat/masquerade.h). The *_file names are
 * read at load and their names join the lists. */
struct config_masquerade {
    char *as; /* MASQUERADE_AS; NULL = none */
    struct config_words domains, exceptions, exposed_users, generics_domains;
    char *domains_file, *exceptions_file, *exposed_users_file, *generics_domains_file;
    bool envelope, entire_domain, all_headers, limited, not_local, generics_entire_domain;
};

/* One milters[] item: INPUT_MAIL_FILTER or MAIL_FILTER (docs/config.md). */
struct config_milter {
    struct milter_filter filter; /* name and socket are the config's strings */
    char *on_fail;               /* as written: continue, tempfail or reject (filter.on_fail) */
    bool input;                  /* INPUT_MAIL_FILTER: in input_mail_filters' default */
};
struct config_client { /* CLIENT_OPTIONS */
    char *family, *address, *port;
};
struct config_dnsbl { /* FEATURE(dnsbl), FEATURE(enhdnsbl) (policy/dnsbl.h) */
    char *zone, *message;
    char **results; /* enhdnsbl's result patterns; none = any answer lists */
    size_t n_results;
    bool tempfail; /* the FEATURE's third argument `t`: a failed lookup gets 451 4.4.3 */
};

/* What is looked at before the greeting (core/session_checks.c, policy/) and of the
 * sender at MAIL (core/session_sender.c). */
struct config_client_checks {
    bool peername_lookup; /* dns.peername_lookup: the client's name, forward-confirmed */
    uint32_t greet_pause; /* features.greet_pause, milliseconds; 0 = none */
    /* features.accept_unresolvable_domains: else a sender's domain must resolve at MAIL */
    bool accept_unresolvable_domains;
    struct config_dnsbl *dnsbl;
    size_t n_dnsbl;
};

/* The FEATUREs kept for later, each `true`, `false` or the FEATURE's arguments (one list,
 * one X-macro so the struct and the key table cannot drift apart; alphabetical, and left as
 * written by clang-format, which reflows such lists differently on each pass). */
/* clang-format off */
#define CONFIG_FEATURES(X)                                                                         \
    X(accept_unqualified_senders) X(always_add_domain) X(badmx)                                    \
    X(bestmx_is_local) X(block_bad_helo) X(check_cert_altnames)                                    \
    X(loose_relay_check) X(lookupdotdomain) X(nocanonify)                                          \
    X(nopercenthack) X(notsticky) X(nullclient) X(preserve_local_plus_detail)                      \
    X(redirect) X(relay_based_on_mx) X(relay_entire_domain) X(relay_hosts_only)                    \
    X(relay_local_from) X(relay_mail_from) X(require_rdns) X(rhsbl) X(stickyhost) X(sts)           \
    X(tls_failures) X(tls_session_features) X(use_client_ptr)

/* sendmail's other confTO_* timeouts (client side, queue, resolver, ...), by their
 * lower-cased names; resolver_retry* are numbers of tries. */
#define CONFIG_LATER_TIMEOUTS(X)                                                                   \
    X(aconnect) X(auth) X(control) X(fileopen) X(ident) X(iterative) X(lhlo) X(queuereturn_dsn)    \
    X(queuereturn_nonurgent) X(queuereturn_normal) X(queuereturn_urgent) X(queuewarn_dsn)          \
    X(queuewarn_nonurgent) X(queuewarn_normal) X(queuewarn_urgent) X(resolver_retrans)             \
    X(resolver_retrans_first) X(resolver_retrans_normal)
#define CONFIG_LATER_TRIES(X) X(resolver_retry) X(resolver_retry_first) X(resolver_retry_normal)
/* clang-format on */

#define CONFIG_TEXT_FIELD(name)  char *name;
#define CONFIG_WORDS_FIELD(name) struct config_words name;

/* Everything accepted but not enforced yet, as written (NULL / empty = not set). */
struct config_later {
    struct {
        char *local_relay, *relay_mailer, *fallback_mx;
        struct config_words local_users;
        char *local_users_file;
    } routing;
    struct {
        struct config_words enabled;
        char *local_lmtp;
    } mailers;
    struct {
        CONFIG_FEATURES(CONFIG_WORDS_FIELD)
    } features;
    struct config_client *client;
    size_t n_client;
    struct config_words privacy;
    char *log_level, *greeting;
    char *queue_load, *refuse_load; /* limits.* */
    struct {
        CONFIG_LATER_TIMEOUTS(CONFIG_TEXT_FIELD)
        CONFIG_LATER_TRIES(CONFIG_TEXT_FIELD)
    } timeouts;
};

/* The queue's schedule (queue/backoff.h); milliseconds as every duration here. */
struct config_queue {
    uint32_t interval;        /* sendmail's -q interval: the longest a deferred message waits */
    uint32_t min_queue_age;   /* confMIN_QUEUE_AGE */
    uint32_t minimal_backoff; /* Postfix's minimal_backoff_time */
    uint32_t maximal_backoff; /* Postfix's maximal_backoff_time */
    uint32_t queuewarn;       /* confTO_QUEUEWARN: delay warning after this long */
    uint32_t queuereturn;     /* confTO_QUEUERETURN: bounce after this long */
    unsigned hash_depth;      /* spool subdirectory levels, Postfix's hash_queue_depth */
    unsigned max_active;      /* messages being delivered at once, per worker */
};

/* The resolver for delivery (util/dns.h). */
struct config_dns {
    char **servers; /* "127.0.0.1", "127.0.0.1:5353", "[::1]:53"; none = /etc/resolv.conf */
    size_t n_servers;
    uint32_t timeout; /* per try */
    unsigned tries;
};

/* One delivery.tls_policy entry: sendmail's TLS_Srv:/Try_TLS: as a table. */
struct config_tls_policy {
    char *destination; /* "example.com", ".example.com" (subdomains), "[10.0.0.1]" */
    char *level;       /* none, may, encrypt, verify */
    char *match;       /* verify: the name the certificate must carry; default the host's */
};

/* Outbound SMTP (delivery/). */
struct config_delivery {
    uint32_t iconnect;         /* confTO_ICONNECT: connect on a message's first attempt */
    uint32_t connect;          /* confTO_CONNECT: every other connect */
    uint32_t host_status;      /* confTO_HOSTSTATUS: a failing host is held back this long */
    unsigned cache_size;       /* confMCI_CACHE_SIZE: idle connections kept per worker */
    uint32_t cache_timeout;    /* confMCI_CACHE_TIMEOUT */
    unsigned dest_concurrency; /* connections at once per destination, all workers */
    unsigned dest_rate;        /* messages per minute per destination; 0 = no limit */
    struct config_tls_policy *tls_policy;
    size_t n_tls_policy;
    char *smart_host; /* SMART_HOST, or NULL */
    char *mail_hub;   /* MAIL_HUB, or NULL */
    /* confTRY_NULL_MX_LIST: when this host is a domain's best MX, deliver to the domain's
     * own addresses instead of bouncing "MX list points back" */
    bool try_null_mx_list;
    /* AuthInfo: credentials may go over a connection without TLS */
    bool auth_without_tls;
};

struct config {
    char *source;   /* the file read, or "(built-in default)" */
    char *hostname; /* default: gethostname(), fully qualified if it can be */
    struct config_listener *listen;
    size_t n_listen;
    unsigned workers; /* resolved: `auto` becomes the number of CPUs */
    char *run_as;     /* user name; default "ringmail" */
    char *log_ident;  /* syslog ident (log.ident); default "ringmaild" */
    char *log_format; /* log.format: "text" or "json" (util/log.h) */
    char *spool;      /* spool directory */
    char *pid_file;   /* default: ringmaild.pid beside the spool directory */
    /* sendmail's StatusFile (queue/mailstats.h): counted into only while it exists;
     * default: "statistics" in the spool directory */
    char *statistics_file;
    /* Local submission (the `submission` section): the two unix sockets the daemon listens
     * on, the directory ringmail-postdrop writes to while the daemon is down, and the users
     * who may set any envelope sender (sendmail's class t). */
    char *submission_socket; /* default: ringmail.sock beside the pid file */
    char *control_socket;    /* default: ringmail.ctl beside the pid file */
    char *maildrop;          /* default: maildrop beside the spool directory */
    char *maildrop_group;    /* ringmail-postdrop's setgid group; default "ringmaildrop" */
    /* submission.socket's callers at once, in all and per uid (0 = no limit): slots of
     * their own, apart from max_connections */
    unsigned submission_connections;
    unsigned submission_connections_per_user;
    /* default: root, daemon (run_as is always trusted too); maps.trusted_users' names are
     * appended at load (config_load, not config_load_settings) */
    char **trusted_users;
    size_t n_trusted_users;
    char **trusted_groups; /* members (primary or supplementary) are trusted; default none */
    size_t n_trusted_groups;
    char **local_domains; /* default: hostname and "localhost" */
    size_t n_local_domains;
    char **relay_domains; /* default: none */
    size_t n_relay_domains;
    struct netaddr_prefix *relay_from; /* default: 127.0.0.0/8 and ::1/128 */
    size_t n_relay_from;
    struct smtp_server_limits limits;    /* the session limits */
    unsigned max_connections;            /* all clients at once; sendmail MaxDaemonChildren */
    unsigned max_connections_per_client; /* per client address; 0 = no limit */
    unsigned connection_rate;            /* per client per window; 0 = no limit; ClientRate: */
    uint32_t connection_rate_window_ms;  /* sendmail's ConnectionRateWindowSize */
    unsigned connection_rate_throttle;   /* per listener per second; 0 = no limit */
    uint64_t min_free_blocks;            /* sendmail's MinFreeBlocks; restart to change */
    struct smtp_server_timeouts timeouts;
    uint32_t shutdown_grace_ms;   /* SIGTERM: time for transactions in flight */
    uint32_t starttls_timeout_ms; /* the TLS handshake after STARTTLS; confTO_STARTTLS */
    struct config_tls tls;
    struct config_queue queue;
    struct config_dns dns;
    struct config_client_checks checks;
    struct config_delivery delivery;
    /* The metrics HTTP listener (docs/metrics.md): `listen` as written, NULL = none; the
     * rest parsed from it at load. */
    struct config_metrics {
        char *listen;
        char address[48];
        uint16_t port;
        int family;
    } metrics;
    struct config_maps maps;
    struct config_map_data map;
    struct config_local local;
    struct config_masquerade masquerade;
    /* The access checks (policy/policy.h): auth.trust_mechanisms, features.delay_checks
     * and features.blocklist_recipients ("true", "false", or delay_checks' argument);
     * features.ratecontrol and conncontrol (their arguments, policy/clientlimit.h). */
    struct {
        struct config_words trust_mechanisms, delay_checks, blocklist_recipients;
        struct config_words ratecontrol, conncontrol;
    } policy;
    struct config_auth auth;
    /* Mail filters (docs/config.md, docs/milter.md): every one declared, in order; the names
     * of those that run (confINPUT_MAIL_FILTERS; default: each with input: true, in order);
     * the macros each step sends (confMILTER_MACROS_*; default: sendmail's). */
    struct config_milter *milters;
    size_t n_milters;
    struct config_words input_mail_filters;
    struct config_words milter_macros[MILTER_MACROS_N];
    struct config_later later;
    /* "FILE:LINE: key 'x' is accepted but not enforced yet (issue: y)" and the like: what
     * this configuration asks for that the daemon does not do; logged at start and reload. */
    char **warnings;
    size_t n_warnings;
};

/* The file read when none is named: RINGMAIL_CONFIG_FILE, which the build sets from the
 * CMake cache variable of that name (the same default); also where `cmake --install` puts
 * the installed configuration. */
#ifndef RINGMAIL_CONFIG_FILE
#define RINGMAIL_CONFIG_FILE "/etc/ringmail/ringmail.yaml"
#endif
/* The environment variable that names the file instead. */
#define CONFIG_ENV "RINGMAIL_CONFIG"

/* Which configuration to read, as sendmail's programs find sendmail.cf: `named` (a
 * --config or -C value) when given, else $RINGMAIL_CONFIG, else RINGMAIL_CONFIG_FILE when
 * it exists, else NULL: the built-in default. The daemon and every command-line program use
 * this one rule. The result points into `named`, the environment or a constant. */
const char *config_find(const char *named);

struct fileset;
/* Reads and validates `path`, or with `path` NULL the built-in default (loopback port
 * 2525, spool under ./state/spool, localhost local). The file and the maps it names are
 * read through `files` (util/fileset.h: NULL = from disk; a recording set keeps what was
 * read for the engine; a replayed one answers from what the privileged parent read). NULL
 * with `err` (file, line, column, key) on any problem. */
struct config *config_load(const char *path, struct fileset *files, char *err, size_t errlen);
/* The same from disk without reading the maps (their contents stay empty): for programs
 * that need only the settings (socket paths, hostname, spool) and may run as any user,
 * while a map such as the access map may be readable by root only. */
struct config *config_load_settings(const char *path, char *err, size_t errlen);
void config_free(struct config *c);
/* log.format as util/log.h's: what log_set_format() is given at start-up and reload. */
enum log_format config_log_format(const struct config *c);
/* Whether `login` is one of cfg->map.users. */
bool config_user_exists(const struct config *c, const char *login);
/* The :include: file `path` as the configuration read it: 0 with *text (not a copy) and
 * *len, or -errno (not read: it is not named by the aliases, or the read failed). */
int config_include_text(const struct config *c, const char *path, const char **text, size_t *len);
/* The command line's queue interval (ringmaild --queue-interval, sendmail's -q30m beside
 * -bd): every configuration this process and the processes it forks load afterwards has
 * it as queue.interval, whatever the file says, reloads included. -1 when `text` is not a
 * duration from 1s to 30d. */
int config_override_queue_interval(const char *text);
/* Prints the effective configuration as YAML that config_load() accepts. */
void config_print(const struct config *c, FILE *out);

#endif
