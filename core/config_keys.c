/*
 * core/config_keys.c — every configuration key: its type, range, default and where it goes.
 * docs/config.md explains each one and the sendmail option it stands for; test_config checks
 * that it names them all. Defaults are written as they would be in a file and go through the
 * same parsers as a file's values, so a default can never be one a file could not say.
 */
#include "core/config.h"
#include "core/config_int.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SEC          1000ull
#define DAY          (86400ull * SEC)
#define KIB          1024ull
#define MIB          (1024ull * KIB)

/* A number, size or duration stored in struct config at `field`. */
#define NUM(key, type, flags, field, lo, hi, def)                                                  \
    {                                                                                              \
        key, type, flags, offsetof(struct config, field), sizeof(((struct config *)0)->field), 0,  \
            lo, hi, def, NULL, 0, NULL                                                             \
    }
#define TEXT(key, type, field, def)                                                                \
    {                                                                                              \
        key, type, 0, offsetof(struct config, field), 0, 0, 0, 0, def, NULL, 0, NULL               \
    }
#define LIST_AT(key, type, field, count, def)                                                      \
    {                                                                                              \
        key, type, CONFIG_F_LIST, offsetof(struct config, field), 0,                               \
            offsetof(struct config, count), 0, 0, def, NULL, 0, NULL                               \
    }
#define LIST(key, type, field, def) LIST_AT(key, type, field, n_##field, def)
#define BOOL(key, field, def)                                                                      \
    {                                                                                              \
        key, CONFIG_BOOL, 0, offsetof(struct config, field), 0, 0, 0, 0, def, NULL, 0, NULL        \
    }
#define TIMEOUT(key, field, def)                                                                   \
    NUM(key, CONFIG_DURATION, CONFIG_F_ZERO_OFF, field, 1, 30 * DAY, def)

/* Keys kept for later (struct config_later): checked as `type`, stored as written at `field`
 * of `st`, named in a start-up warning with the issue that will enforce them. A number's
 * scratch value is 64 bits wide (config.c). */
#define KEPT_IN(st, key, type, lo, hi, field, issue)                                               \
    {                                                                                              \
        key, type, CONFIG_F_KEEP, offsetof(st, field), sizeof(uint64_t), 0, lo, hi, NULL, NULL, 0, \
            issue                                                                                  \
    }
#define KEPT(key, type, field, issue) KEPT_IN(struct config, key, type, 0, 0, field, issue)
#define KEPT_NUM(key, type, lo, hi, field, issue)                                                  \
    KEPT_IN(struct config, key, type, lo, hi, field, issue)
#define KEPT_FLAG(key, field, issue) KEPT(key, CONFIG_BOOL, field, issue)
#define KEPT_LIST_F(key, type, flags, field, issue)                                                \
    {                                                                                              \
        key, type, CONFIG_F_LIST | CONFIG_F_KEEP | (flags), offsetof(struct config, field.v), 0,   \
            offsetof(struct config, field.n), 0, 0, NULL, NULL, 0, issue                           \
    }
#define KEPT_LIST(key, type, field, issue) KEPT_LIST_F(key, type, 0, field, issue)
#define KEPT_MAPS(key, st, field, count, sub, issue)                                               \
    {                                                                                              \
        key, CONFIG_MAPS, CONFIG_F_LIST, offsetof(struct config, field), sizeof(st),               \
            offsetof(struct config, count), 0, 0, NULL, sub, ARRAY_LEN(sub), issue                 \
    }
#define SECTION(key, sub)                                                                          \
    {                                                                                              \
        key, CONFIG_SECTION, 0, 0, 0, 0, 0, 0, NULL, sub, ARRAY_LEN(sub), NULL                     \
    }
#define ISSUE_DELIVERY "delivery"
#define ISSUE_POLICY   "policy"

/* The default `listen` is one listener of these defaults. A listener written without an
 * address is on loopback too (sendmail's would be on every address): exposure is chosen. */
static const struct config_key config_listener_keys[] = {
    {"name", CONFIG_STRING, 0, offsetof(struct config_listener, name), 0, 0, 0, 0, "MTA", NULL, 0,
     NULL},
    {"address", CONFIG_ADDRESS, 0, offsetof(struct config_listener, address), 0, 0, 0, 0,
     "127.0.0.1", NULL, 0, NULL},
    {"port", CONFIG_UINT, 0, offsetof(struct config_listener, port), sizeof(uint16_t), 0, 1, 65535,
     "2525", NULL, 0, NULL},
    /* No default: without it the family follows the address. */
    {"family", CONFIG_FAMILY, 0, offsetof(struct config_listener, family), sizeof(int), 0, 0, 0,
     NULL, NULL, 0, NULL},
    {"starttls", CONFIG_BOOL, 0, offsetof(struct config_listener, starttls), 0, 0, 0, 0, "true",
     NULL, 0, NULL},
    {"auth", CONFIG_BOOL, 0, offsetof(struct config_listener, auth), 0, 0, 0, 0, "true", NULL, 0,
     NULL},
    {"auth_required", CONFIG_BOOL, 0, offsetof(struct config_listener, auth_required), 0, 0, 0, 0,
     "false", NULL, 0, NULL},
    KEPT_IN(struct config_listener, "modifiers", CONFIG_STRING, 0, 0, modifiers, ISSUE_POLICY),
    {"proxy_protocol", CONFIG_BOOL, 0, offsetof(struct config_listener, proxy_protocol), 0, 0, 0, 0,
     "false", NULL, 0, NULL},
    {"trusted_proxies", CONFIG_NETWORK, CONFIG_F_LIST,
     offsetof(struct config_listener, trusted_proxies), 0,
     offsetof(struct config_listener, n_trusted_proxies), 0, 0, NULL, NULL, 0, NULL},
    /* No default: the top-level input_mail_filters (core/config_milter.c). */
    {"input_mail_filters", CONFIG_STRING, CONFIG_F_LIST,
     offsetof(struct config_listener, input_mail_filters.v), 0,
     offsetof(struct config_listener, input_mail_filters.n), 0, 0, NULL, NULL, 0, NULL},
};

static const struct config_key config_limit_keys[] = {
    NUM("message_size", CONFIG_SIZE, CONFIG_F_ZERO_OFF, limits.max_message_size, KIB,
        1024 * 1024 * MIB, "10M"),
    NUM("recipients", CONFIG_UINT, 0, limits.max_recipients, 1, 1000000, "1000"),
    NUM("command_line", CONFIG_UINT, 0, limits.max_command_line, 512, 65536, "2048"),
    NUM("text_line", CONFIG_UINT, CONFIG_F_ZERO_OFF, limits.max_text_line, 1000, 1048576, "0"),
    NUM("header_size", CONFIG_SIZE, CONFIG_F_ZERO_OFF, limits.max_header_size, KIB, 64 * MIB,
        "32K"),
    NUM("connections", CONFIG_UINT, CONFIG_F_ZERO_OFF, max_connections, 1, 1000000, "10000"),
    NUM("connections_per_client", CONFIG_UINT, CONFIG_F_ZERO_OFF, max_connections_per_client, 1,
        1000000, "50"),
    NUM("errors", CONFIG_UINT, CONFIG_F_ZERO_OFF, limits.max_errors, 1, 1000000, "25"),
    NUM("error_throttle", CONFIG_UINT, CONFIG_F_ZERO_OFF, limits.error_throttle, 1, 1000000, "10"),
    NUM("bad_rcpt_throttle", CONFIG_UINT, CONFIG_F_ZERO_OFF, limits.bad_rcpt_throttle, 1, 1000000,
        "0"),
    /* config.c also checks it holds at least one command line. */
    NUM("input_buffer", CONFIG_SIZE, 0, limits.max_input_buffer, 4 * KIB, 64 * MIB, "64K"),
    /* sendmail's MinFreeBlocks: below it MAIL gets 452 4.3.1 */
    NUM("min_free_blocks", CONFIG_UINT, CONFIG_F_ZERO_OFF, min_free_blocks, 1, 1ull << 40, "100"),
    /* Postfix's smtpd_min_data_rate: a trickling client is cut after about datablock */
    NUM("min_data_rate", CONFIG_UINT, CONFIG_F_ZERO_OFF, limits.min_data_rate, 1, 1000000000,
        "500"),
    /* FEATURE(ratecontrol)'s default ClientRate: (0, no limit, is sendmail's) and its window */
    NUM("connection_rate", CONFIG_UINT, CONFIG_F_ZERO_OFF, connection_rate, 1, 1000000, "0"),
    NUM("connection_rate_window", CONFIG_DURATION, 0, connection_rate_window_ms, SEC, 30 * DAY,
        "60s"),
    /* sendmail's ConnectionRateThrottle: per listener per second, greetings beyond it wait */
    NUM("connection_rate_throttle", CONFIG_UINT, CONFIG_F_ZERO_OFF, connection_rate_throttle, 1,
        1000000, "0"),
    /* 0 is sendmail's "no limit" for both */
    KEPT_NUM("queue_load", CONFIG_UINT, 0, 10000, later.queue_load, ISSUE_POLICY),
    KEPT_NUM("refuse_load", CONFIG_UINT, 0, 10000, later.refuse_load, ISSUE_POLICY),
};

static const struct config_key config_timeout_keys[] = {
    TIMEOUT("initial", timeouts.initial, "5m"), TIMEOUT("helo", timeouts.helo, "5m"),
    TIMEOUT("mail", timeouts.mail, "10m"), TIMEOUT("rcpt", timeouts.rcpt, "1h"),
    TIMEOUT("datainit", timeouts.datainit, "5m"), TIMEOUT("datablock", timeouts.datablock, "1h"),
    TIMEOUT("datafinal", timeouts.datafinal, "1h"), TIMEOUT("rset", timeouts.rset, "5m"),
    TIMEOUT("quit", timeouts.quit, "2m"), TIMEOUT("misc", timeouts.misc, "2m"),
    TIMEOUT("command", timeouts.command, "1h"), TIMEOUT("shutdown_grace", shutdown_grace_ms, "30s"),
    TIMEOUT("starttls", starttls_timeout_ms, "5m"),
    /* the queue's and the delivery side's (sendmail: Timeout.queuewarn, ...) */
    NUM("queuewarn", CONFIG_DURATION, CONFIG_F_ZERO_OFF, queue.queuewarn, 1 * SEC, 30 * DAY, "4h"),
    NUM("queuereturn", CONFIG_DURATION, 0, queue.queuereturn, 1 * SEC, 30 * DAY, "5d"),
    TIMEOUT("iconnect", delivery.iconnect, "5m"), TIMEOUT("connect", delivery.connect, "5m"),
    NUM("hoststatus", CONFIG_DURATION, CONFIG_F_ZERO_OFF, delivery.host_status, 1 * SEC, 30 * DAY,
        "30m"),
#define LATER_TIMEOUT(name)                                                                        \
    KEPT_NUM(#name, CONFIG_DURATION, 0, 30 * DAY, later.timeouts.name, ISSUE_DELIVERY),
#define LATER_TRIES(name) KEPT_NUM(#name, CONFIG_UINT, 0, 100, later.timeouts.name, ISSUE_DELIVERY),
    CONFIG_LATER_TIMEOUTS(LATER_TIMEOUT) CONFIG_LATER_TRIES(LATER_TRIES)};

/* No default key: a pair written without `key` has both in the cert file (config.c). */
static const struct config_key config_cert_keys[] = {
    {"cert", CONFIG_PATH, 0, offsetof(struct config_cert, cert), 0, 0, 0, 0, NULL, NULL, 0, NULL},
    {"key", CONFIG_PATH, 0, offsetof(struct config_cert, key), 0, 0, 0, 0, NULL, NULL, 0, NULL},
};

/* NULL text defaults are OpenSSL's own choices (groups, suites, automatic ffdhe). */
static const struct config_key config_tls_keys[] = {
    {"certificates", CONFIG_MAPS, CONFIG_F_LIST, offsetof(struct config, tls.certificates),
     sizeof(struct config_cert), offsetof(struct config, tls.n_certificates), 0, 0, NULL,
     config_cert_keys, ARRAY_LEN(config_cert_keys), NULL},
    LIST_AT("providers", CONFIG_STRING, tls.providers, tls.n_providers, ""),
    LIST_AT("groups", CONFIG_STRING, tls.groups, tls.n_groups, ""),
    TEXT("min_version", CONFIG_TLS_VERSION, tls.min_version, "TLSv1.2"),
    TEXT("max_version", CONFIG_TLS_VERSION, tls.max_version, "TLSv1.3"),
    TEXT("ciphersuites", CONFIG_STRING, tls.ciphersuites, NULL),
    TEXT("cipher_list", CONFIG_STRING, tls.cipher_list, NULL),
    TEXT("dh_params", CONFIG_PATH, tls.dh_params, NULL),
    TEXT("ca_file", CONFIG_PATH, tls.ca_file, NULL),
    TEXT("ca_path", CONFIG_PATH, tls.ca_path, NULL),
    BOOL("request_client_cert", tls.request_client_cert, "true"),
    BOOL("session_tickets", tls.session_tickets, "true"),
    NUM("ticket_rotate", CONFIG_DURATION, 0, tls.ticket_rotate_ms, 60 * SEC, 7 * DAY, "12h"),
    TEXT("client_cert", CONFIG_PATH, tls.client_cert, NULL),
    TEXT("client_key", CONFIG_PATH, tls.client_key, NULL),
    KEPT("server_ssl_options", CONFIG_STRING, tls.server_ssl_options, ISSUE_POLICY),
    KEPT("client_ssl_options", CONFIG_STRING, tls.client_ssl_options, ISSUE_DELIVERY),
};

/* local_host_names, relay_domains_file, trusted_users and access are enforced; the parsed
 * maps kept for delivery still stop the load when they are malformed (config_maps.c). */
static const struct config_key config_map_keys[] = {
    TEXT("access", CONFIG_PATH, maps.access, NULL),
    LIST_AT("aliases", CONFIG_PATH, maps.aliases.v, maps.aliases.n, ""),
    TEXT("mailertable", CONFIG_PATH, maps.mailertable, NULL),
    TEXT("virtusertable", CONFIG_PATH, maps.virtusertable, NULL),
    TEXT("genericstable", CONFIG_PATH, maps.genericstable, NULL),
    KEPT("domaintable", CONFIG_PATH, maps.domaintable, ISSUE_DELIVERY),
    TEXT("authinfo", CONFIG_PATH, maps.authinfo, NULL),
    TEXT("local_host_names", CONFIG_PATH, maps.local_host_names, NULL),
    TEXT("relay_domains_file", CONFIG_PATH, maps.relay_domains_file, NULL),
    TEXT("trusted_users", CONFIG_PATH, maps.trusted_users, NULL),
};

static const struct config_key config_routing_keys[] = {
    TEXT("smart_host", CONFIG_STRING, delivery.smart_host, NULL),
    TEXT("mail_hub", CONFIG_STRING, delivery.mail_hub, NULL),
    TEXT("luser_relay", CONFIG_STRING, local.luser_relay, NULL),
    KEPT("local_relay", CONFIG_STRING, later.routing.local_relay, ISSUE_DELIVERY),
    KEPT("relay_mailer", CONFIG_STRING, later.routing.relay_mailer, ISSUE_DELIVERY),
    KEPT("fallback_mx", CONFIG_STRING, later.routing.fallback_mx, ISSUE_DELIVERY),
    BOOL("try_null_mx_list", delivery.try_null_mx_list, "false"),
    KEPT_LIST("local_users", CONFIG_STRING, later.routing.local_users, ISSUE_DELIVERY),
    KEPT("local_users_file", CONFIG_PATH, later.routing.local_users_file, ISSUE_DELIVERY),
};

#define WORDS(key, type, field) LIST_AT(key, type, field.v, field.n, "")
static const struct config_key config_masquerade_keys[] = {
    TEXT("as", CONFIG_DOMAIN, masquerade.as, NULL),
    WORDS("domains", CONFIG_DOMAIN, masquerade.domains),
    WORDS("exceptions", CONFIG_DOMAIN, masquerade.exceptions),
    WORDS("exposed_users", CONFIG_STRING, masquerade.exposed_users),
    WORDS("generics_domains", CONFIG_DOMAIN, masquerade.generics_domains),
    TEXT("domains_file", CONFIG_PATH, masquerade.domains_file, NULL),
    TEXT("exceptions_file", CONFIG_PATH, masquerade.exceptions_file, NULL),
    TEXT("exposed_users_file", CONFIG_PATH, masquerade.exposed_users_file, NULL),
    TEXT("generics_domains_file", CONFIG_PATH, masquerade.generics_domains_file, NULL),
    BOOL("envelope", masquerade.envelope, "false"),
    BOOL("entire_domain", masquerade.entire_domain, "false"),
    BOOL("all_headers", masquerade.all_headers, "false"),
    BOOL("limited", masquerade.limited, "false"),
    BOOL("not_local", masquerade.not_local, "false"),
    BOOL("generics_entire_domain", masquerade.generics_entire_domain, "false"),
};

static const struct config_key config_queue_keys[] = {
    NUM("interval", CONFIG_DURATION, 0, queue.interval, 1 * SEC, 30 * DAY, "30m"),
    NUM("min_queue_age", CONFIG_DURATION, CONFIG_F_ZERO_OFF, queue.min_queue_age, 1 * SEC, 30 * DAY,
        "0"),
    NUM("minimal_backoff", CONFIG_DURATION, CONFIG_F_ZERO_OFF, queue.minimal_backoff, 1 * SEC,
        30 * DAY, "5m"),
    NUM("maximal_backoff", CONFIG_DURATION, 0, queue.maximal_backoff, 1 * SEC, 30 * DAY, "1h"),
    NUM("hash_depth", CONFIG_UINT, CONFIG_F_ZERO_OFF, queue.hash_depth, 1, 2, "1"),
    NUM("max_active", CONFIG_UINT, 0, queue.max_active, 1, 1000000, "1000"),
};

static const struct config_key config_dns_keys[] = {
    LIST_AT("servers", CONFIG_STRING, dns.servers, dns.n_servers, ""),
    NUM("timeout", CONFIG_DURATION, 0, dns.timeout, 100, 60 * SEC, "5s"),
    NUM("tries", CONFIG_UINT, 0, dns.tries, 1, 10, "2"),
    /* Postfix's smtpd_peername_lookup: sendmail always looks the client up */
    BOOL("peername_lookup", checks.peername_lookup, "true"),
};

static const struct config_key config_tls_policy_keys[] = {
    {"destination", CONFIG_STRING, 0, offsetof(struct config_tls_policy, destination), 0, 0, 0, 0,
     NULL, NULL, 0, NULL},
    {"level", CONFIG_STRING, 0, offsetof(struct config_tls_policy, level), 0, 0, 0, 0, "may", NULL,
     0, NULL},
    {"match", CONFIG_STRING, 0, offsetof(struct config_tls_policy, match), 0, 0, 0, 0, NULL, NULL,
     0, NULL},
};

static const struct config_key config_delivery_keys[] = {
    NUM("connection_cache_size", CONFIG_UINT, CONFIG_F_ZERO_OFF, delivery.cache_size, 1, 100000,
        "32"),
    NUM("connection_cache_timeout", CONFIG_DURATION, 0, delivery.cache_timeout, 1 * SEC, DAY, "5m"),
    NUM("destination_concurrency", CONFIG_UINT, 0, delivery.dest_concurrency, 1, 100000, "20"),
    NUM("destination_rate", CONFIG_UINT, CONFIG_F_ZERO_OFF, delivery.dest_rate, 1, 1000000, "0"),
    BOOL("auth_without_tls", delivery.auth_without_tls, "false"),
    {"tls_policy", CONFIG_MAPS, CONFIG_F_LIST, offsetof(struct config, delivery.tls_policy),
     sizeof(struct config_tls_policy), offsetof(struct config, delivery.n_tls_policy), 0, 0, NULL,
     config_tls_policy_keys, ARRAY_LEN(config_tls_policy_keys), NULL},
};

/* A milter's T= equates; 0 = no timeout, as in sendmail. */
#define MILTER_TIMEOUT(key, field, def)                                                            \
    {                                                                                              \
        key, CONFIG_DURATION, CONFIG_F_ZERO_OFF, offsetof(struct config_milter, filter.field),     \
            sizeof(uint32_t), 0, 1 * SEC, 30 * DAY, def, NULL, 0, NULL                             \
    }
static const struct config_key config_milter_timeout_keys[] = {
    MILTER_TIMEOUT("connect", timeout_connect, "5m"),
    MILTER_TIMEOUT("send", timeout_send, "10s"),
    MILTER_TIMEOUT("read", timeout_read, "10s"),
    MILTER_TIMEOUT("eom", timeout_eom, "5m"),
};

/* name and socket have no default: core/config_milter.c asks for them. */
static const struct config_key config_milter_keys[] = {
    {"name", CONFIG_STRING, 0, offsetof(struct config_milter, filter.name), 0, 0, 0, 0, NULL, NULL,
     0, NULL},
    {"socket", CONFIG_STRING, 0, offsetof(struct config_milter, filter.socket), 0, 0, 0, 0, NULL,
     NULL, 0, NULL},
    {"on_fail", CONFIG_STRING, 0, offsetof(struct config_milter, on_fail), 0, 0, 0, 0, "continue",
     NULL, 0, NULL},
    SECTION("timeouts", config_milter_timeout_keys),
    {"input", CONFIG_BOOL, 0, offsetof(struct config_milter, input), 0, 0, 0, 0, "true", NULL, 0,
     NULL},
};

/* cf/m4/cfhead.m4's confMILTER_MACROS_* (data and eoh: none). */
#define MILTER_MACROS(key, step, def)                                                              \
    LIST_AT(key, CONFIG_STRING, milter_macros[step].v, milter_macros[step].n, def)
static const struct config_key config_milter_macro_keys[] = {
    MILTER_MACROS("connect", MILTER_MACROS_CONNECT, "j _ {daemon_name} {if_name} {if_addr}"),
    MILTER_MACROS("helo", MILTER_MACROS_HELO,
                  "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}"),
    MILTER_MACROS("envfrom", MILTER_MACROS_ENVFROM,
                  "i {auth_type} {auth_authen} {auth_ssf} {auth_author} {mail_mailer} {mail_host} "
                  "{mail_addr}"),
    MILTER_MACROS("envrcpt", MILTER_MACROS_ENVRCPT, "{rcpt_mailer} {rcpt_host} {rcpt_addr}"),
    MILTER_MACROS("data", MILTER_MACROS_DATA, ""),
    MILTER_MACROS("eoh", MILTER_MACROS_EOH, ""),
    MILTER_MACROS("eom", MILTER_MACROS_EOM, "{msg_id}"),
};

static const struct config_key config_client_keys[] = {
    KEPT_IN(struct config_client, "family", CONFIG_FAMILY, 0, 0, family, NULL),
    KEPT_IN(struct config_client, "address", CONFIG_ADDRESS, 0, 0, address, NULL),
    KEPT_IN(struct config_client, "port", CONFIG_UINT, 1, 65535, port, NULL),
};

static const struct config_key config_dnsbl_keys[] = {
    {"zone", CONFIG_DOMAIN, 0, offsetof(struct config_dnsbl, zone), 0, 0, 0, 0, NULL, NULL, 0,
     NULL},
    {"message", CONFIG_STRING, 0, offsetof(struct config_dnsbl, message), 0, 0, 0, 0, NULL, NULL, 0,
     NULL},
    {"results", CONFIG_STRING, CONFIG_F_LIST, offsetof(struct config_dnsbl, results), 0,
     offsetof(struct config_dnsbl, n_results), 0, 0, NULL, NULL, 0, NULL},
    {"tempfail", CONFIG_BOOL, 0, offsetof(struct config_dnsbl, tempfail), 0, 0, 0, 0, "false", NULL,
     0, NULL},
};

static const struct config_key config_auth_keys[] = {
    WORDS("mechanisms", CONFIG_STRING, auth.mechanisms),
    LIST_AT("trust_mechanisms", CONFIG_STRING, policy.trust_mechanisms.v, policy.trust_mechanisms.n,
            ""),
    WORDS("options", CONFIG_STRING, auth.options),
    TEXT("sasl_config_dir", CONFIG_PATH, auth.sasl_config_dir, NULL),
};

static const struct config_key config_mailer_keys[] = {
    KEPT_LIST("enabled", CONFIG_STRING, later.mailers.enabled, ISSUE_DELIVERY),
    TEXT("mailbox", CONFIG_STRING, local.mailbox, "/var/mail/$u"),
    TEXT("local_path", CONFIG_PATH, local.local_path, NULL),
    TEXT("local_args", CONFIG_STRING, local.local_args, NULL),
    /* `true`, or procmail's path: local_path and local_args then default to procmail's */
    TEXT("local_procmail", CONFIG_STRING, local.local_procmail, NULL),
    /* mail.local -l speaks LMTP over a pipe: not done; mailers.lmtp takes a socket */
    KEPT("local_lmtp", CONFIG_STRING, later.mailers.local_lmtp, ISSUE_DELIVERY),
    TEXT("lmtp", CONFIG_STRING, local.lmtp, NULL),
    TEXT("default_user", CONFIG_STRING, local.default_user, "daemon"),
    /* `true`, or the program FEATURE(smrsh, /usr/sbin/smrsh) names */
    TEXT("smrsh", CONFIG_STRING, local.smrsh, NULL),
    TEXT("smrsh_dir", CONFIG_PATH, local.smrsh_dir, NULL),
    LIST_AT("forward_path", CONFIG_STRING, local.forward_path, local.n_forward_path, "$z/.forward"),
    NUM("timeout", CONFIG_DURATION, 0, local.timeout_ms, 1 * SEC, DAY, "10m"),
    NUM("max_agents", CONFIG_UINT, 0, local.max_agents, 1, 10000, "100"),
};

/* Paths without a default are computed beside pid_file and the spool (config.c). */
static const struct config_key config_submission_keys[] = {
    TEXT("socket", CONFIG_PATH, submission_socket, NULL),
    TEXT("control_socket", CONFIG_PATH, control_socket, NULL),
    TEXT("maildrop", CONFIG_PATH, maildrop, NULL),
    TEXT("maildrop_group", CONFIG_STRING, maildrop_group, "ringmaildrop"),
    LIST("trusted_users", CONFIG_STRING, trusted_users, "root daemon"),
    LIST("trusted_groups", CONFIG_STRING, trusted_groups, ""),
    /* slots of their own, apart from limits.connections (docs/config.md) */
    NUM("connections", CONFIG_UINT, CONFIG_F_ZERO_OFF, submission_connections, 1, 1000000, "500"),
    NUM("connections_per_user", CONFIG_UINT, CONFIG_F_ZERO_OFF, submission_connections_per_user, 1,
        1000000, "50"),
};

/* The syslog ident: sendmail's daemon logs as "sm-mta" on Debian (-L sm-mta) and as
 * "sendmail" elsewhere, and log watchers (fail2ban's sendmail filters) match on it. */
static const struct config_key config_log_keys[] = {
    TEXT("ident", CONFIG_STRING, log_ident, "ringmaild"),
    /* one JSON object per line for log pipelines (docs/logs.md); sendmail has none */
    TEXT("format", CONFIG_STRING, log_format, "text"),
};

/* Off unless set: the counters are for whoever may reach the port (docs/metrics.md). */
static const struct config_key config_metrics_keys[] = {
    TEXT("listen", CONFIG_STRING, metrics.listen, NULL),
};

#define FEATURE_KEY(name)                                                                          \
    KEPT_LIST_F(#name, CONFIG_STRING, CONFIG_F_OR_ONE, later.features.name, ISSUE_POLICY),

/* A live FEATURE: `true`, `false`, or its arguments (one value or a list). */
#define POLICY_FEATURE(key, field)                                                                 \
    {                                                                                              \
        key, CONFIG_STRING, CONFIG_F_LIST | CONFIG_F_OR_ONE, offsetof(struct config, field.v), 0,  \
            offsetof(struct config, field.n), 0, 0, NULL, NULL, 0, NULL                            \
    }

static const struct config_key config_feature_keys[] = {
    NUM("greet_pause", CONFIG_DURATION, CONFIG_F_ZERO_OFF, checks.greet_pause, 1, 30 * DAY, "0"),
    {"dnsbl", CONFIG_MAPS, CONFIG_F_LIST, offsetof(struct config, checks.dnsbl),
     sizeof(struct config_dnsbl), offsetof(struct config, checks.n_dnsbl), 0, 0, NULL,
     config_dnsbl_keys, ARRAY_LEN(config_dnsbl_keys), NULL},
    BOOL("preserve_luser_host", local.preserve_luser_host, "false"),
    BOOL("accept_unresolvable_domains", checks.accept_unresolvable_domains, "false"),
    POLICY_FEATURE("delay_checks", policy.delay_checks),
    POLICY_FEATURE("blocklist_recipients", policy.blocklist_recipients),
    POLICY_FEATURE("ratecontrol", policy.ratecontrol),
    POLICY_FEATURE("conncontrol", policy.conncontrol),
    CONFIG_FEATURES(FEATURE_KEY)};

const struct config_key config_keys[] = {
    TEXT("hostname", CONFIG_DOMAIN, hostname, NULL), /* gethostname(), qualified */
    {"listen", CONFIG_MAPS, CONFIG_F_LIST | CONFIG_F_ONE_ITEM, offsetof(struct config, listen),
     sizeof(struct config_listener), offsetof(struct config, n_listen), 0, 0, NULL,
     config_listener_keys, ARRAY_LEN(config_listener_keys), NULL},
    NUM("workers", CONFIG_WORKERS, 0, workers, 1, 256, "auto"),
    TEXT("run_as", CONFIG_STRING, run_as, "ringmail"),
    TEXT("spool", CONFIG_PATH, spool, "state/spool"),
    /* default: in the spool (config.c) */
    TEXT("statistics_file", CONFIG_PATH, statistics_file, NULL),
    TEXT("pid_file", CONFIG_PATH, pid_file, NULL),             /* beside the spool (config.c) */
    LIST("local_domains", CONFIG_DOMAIN, local_domains, NULL), /* hostname, localhost */
    LIST("relay_domains", CONFIG_DOMAIN, relay_domains, ""),
    LIST("relay_from", CONFIG_NETWORK, relay_from, "127.0.0.0/8 ::1/128"),
    {"limits", CONFIG_SECTION, 0, 0, 0, 0, 0, 0, NULL, config_limit_keys,
     ARRAY_LEN(config_limit_keys), NULL},
    {"timeouts", CONFIG_SECTION, 0, 0, 0, 0, 0, 0, NULL, config_timeout_keys,
     ARRAY_LEN(config_timeout_keys), NULL},
    {"tls", CONFIG_SECTION, 0, 0, 0, 0, 0, 0, NULL, config_tls_keys, ARRAY_LEN(config_tls_keys),
     NULL},
    SECTION("queue", config_queue_keys),
    SECTION("submission", config_submission_keys),
    SECTION("dns", config_dns_keys),
    SECTION("delivery", config_delivery_keys),
    SECTION("maps", config_map_keys),
    SECTION("routing", config_routing_keys),
    SECTION("masquerade", config_masquerade_keys),
    {"milters", CONFIG_MAPS, CONFIG_F_LIST, offsetof(struct config, milters),
     sizeof(struct config_milter), offsetof(struct config, n_milters), 0, 0, NULL,
     config_milter_keys, ARRAY_LEN(config_milter_keys), NULL},
    /* No default: computed from milters[].input (core/config_milter.c). */
    LIST_AT("input_mail_filters", CONFIG_STRING, input_mail_filters.v, input_mail_filters.n, NULL),
    SECTION("milter_macros", config_milter_macro_keys),
    SECTION("auth", config_auth_keys),
    SECTION("mailers", config_mailer_keys),
    SECTION("features", config_feature_keys),
    KEPT_MAPS("client", struct config_client, later.client, later.n_client, config_client_keys,
              ISSUE_DELIVERY),
    KEPT_LIST("privacy", CONFIG_STRING, later.privacy, ISSUE_POLICY),
    SECTION("log", config_log_keys),
    SECTION("metrics", config_metrics_keys),
    KEPT_NUM("log_level", CONFIG_UINT, 0, 99, later.log_level, "logging"),
    KEPT("greeting", CONFIG_STRING, later.greeting, ISSUE_POLICY),
};

const size_t config_n_keys = ARRAY_LEN(config_keys);

const struct config_key *config_key_find(const struct config_key *keys, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

void config_keys_known(const struct config_key *keys, size_t n, char *out, size_t outlen)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < outlen; i++)
        len += (size_t)snprintf(out + len, outlen - len, "%s%s", i ? ", " : "", keys[i].name);
}

/* "from 1K to 1T" in the key's own units. */
static void config_key_range(const struct config_key *k, char *out, size_t outlen)
{
    char lo[32], hi[32];
    void (*fmt)(uint64_t, char *, size_t) = k->type == CONFIG_SIZE       ? config_format_size
                                            : k->type == CONFIG_DURATION ? config_format_duration
                                                                         : NULL;
    if (fmt) {
        fmt(k->min, lo, sizeof(lo));
        fmt(k->max, hi, sizeof(hi));
    } else {
        snprintf(lo, sizeof(lo), "%llu", (unsigned long long)k->min);
        snprintf(hi, sizeof(hi), "%llu", (unsigned long long)k->max);
    }
    snprintf(out, outlen, "from %s to %s", lo, hi);
}

void config_key_expect(const struct config_key *k, bool item, char *out, size_t outlen)
{
    char range[80], inner[400];
    if ((k->flags & CONFIG_F_LIST) && !item) {
        config_key_expect(k, true, inner, sizeof(inner));
        snprintf(out, outlen, "%s, each %s",
                 k->flags & CONFIG_F_OR_ONE ? "one value or a list of values" : "a list of values",
                 inner);
        return;
    }
    config_key_range(k, range, sizeof(range));
    const char *zero = !(k->flags & CONFIG_F_ZERO_OFF) ? ""
                       : k->type == CONFIG_DURATION    ? "0 (no timeout) or "
                                                       : "0 (no limit) or ";
    switch (k->type) {
    case CONFIG_SECTION:
    case CONFIG_MAPS:
        config_keys_known(k->sub, k->n_sub, inner, sizeof(inner));
        snprintf(out, outlen, "a mapping of '%s' keys (%s)", k->name, inner);
        break;
    case CONFIG_STRING:
        snprintf(out, outlen, "a non-empty string");
        break;
    case CONFIG_DOMAIN:
        snprintf(out, outlen, "a domain name like mail.example.com");
        break;
    case CONFIG_PATH:
        snprintf(out, outlen, "a path");
        break;
    case CONFIG_BOOL:
        snprintf(out, outlen, "true or false");
        break;
    case CONFIG_TLS_VERSION:
        snprintf(out, outlen, "TLSv1.2 or TLSv1.3");
        break;
    case CONFIG_WORKERS:
        snprintf(out, outlen, "'auto' or a number %s", range);
        break;
    case CONFIG_UINT:
        snprintf(out, outlen, "%sa number %s", zero, range);
        break;
    case CONFIG_SIZE:
        snprintf(out, outlen, "%sa size like 10M or 64K %s", zero, range);
        break;
    case CONFIG_DURATION:
        snprintf(out, outlen, "%sa duration like 90s, 5m or 1h %s", zero, range);
        break;
    case CONFIG_FAMILY:
        snprintf(out, outlen, "inet or inet6");
        break;
    case CONFIG_ADDRESS:
        snprintf(out, outlen, "an IPv4 or IPv6 address like 127.0.0.1 or ::1");
        break;
    case CONFIG_NETWORK:
        snprintf(out, outlen, "a network like 127.0.0.0/8, 10.1 or ::1");
        break;
    }
}
