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

#include "smtp/smtp_server.h"
#include "util/netaddr.h"

struct config_listener {
    char *name;    /* sendmail's DAEMON_OPTIONS Name=, e.g. "MTA" */
    char *address; /* "127.0.0.1", "::1", "0.0.0.0", "::" */
    uint16_t port;
    int family;    /* AF_INET or AF_INET6, from `family` or from the address */
    bool starttls; /* offer STARTTLS here; false = sendmail's DAEMON_OPTIONS Modifiers=S */
};

struct config_cert {
    char *cert; /* PEM: the certificate, then its chain */
    char *key;  /* PEM private key; default: the cert file (one file holding both) */
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
    char *client_cert; /* the delivery side's certificate, confCLIENT_CERT */
    char *client_key;
    /* The built-in default: with no certificates, demo ones are made on first run in
     * <the spool's parent>/tls, so STARTTLS works out of the box. */
    bool demo_certs;
};

struct config {
    char *source;   /* the file read, or "(built-in default)" */
    char *hostname; /* default: gethostname(), fully qualified if it can be */
    struct config_listener *listen;
    size_t n_listen;
    unsigned workers;     /* resolved: `auto` becomes the number of CPUs */
    char *run_as;         /* user name; default "ringmail" */
    char *spool;          /* spool directory */
    char **local_domains; /* default: hostname and "localhost" */
    size_t n_local_domains;
    char **relay_domains; /* default: none */
    size_t n_relay_domains;
    struct netaddr_prefix *relay_from; /* default: 127.0.0.0/8 and ::1/128 */
    size_t n_relay_from;
    struct smtp_server_limits limits;    /* the session limits */
    unsigned max_connections;            /* all clients at once; sendmail MaxDaemonChildren */
    unsigned max_connections_per_client; /* per client address; 0 = no limit */
    struct smtp_server_timeouts timeouts;
    uint32_t shutdown_grace_ms;   /* SIGTERM: time for transactions in flight */
    uint32_t starttls_timeout_ms; /* the TLS handshake after STARTTLS; confTO_STARTTLS */
    struct config_tls tls;
};

/* Reads and validates `path`. NULL with `err` (file, line, column, key) on any problem. */
struct config *config_load(const char *path, char *err, size_t errlen);
/* The built-in default: loopback port 2525, spool under ./state/spool, localhost local. */
struct config *config_default(char *err, size_t errlen);
void config_free(struct config *c);
/* Prints the effective configuration as YAML that config_load() accepts. */
void config_print(const struct config *c, FILE *out);

#endif
