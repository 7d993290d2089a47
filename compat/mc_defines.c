/* compat/mc_defines.c — define(`confX', ...) and sendmail's other defined settings. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat/map_simple.h"
#include "compat/map_text.h"
#include "compat/mc_int.h"
#include "util/fileset.h"

#define KIB 1024ull
#define MIB (1024 * KIB)

enum mc_how {
    HOW_UINT,    /* number in [lo, hi]; 0 allowed when zero_ok */
    HOW_SIZE,    /* bytes, printed as a size */
    HOW_TIME_M,  /* convtime, bare numbers in minutes (sendmail's Timeout.*) */
    HOW_TIME_S,  /* convtime, bare numbers in seconds */
    HOW_TIME_H,  /* convtime, bare numbers in hours (Timeout.queuewarn*) */
    HOW_TIME_D,  /* convtime, bare numbers in days (Timeout.queuereturn*) */
    HOW_DOMAIN,  /* hostname */
    HOW_STRING,  /* kept as written */
    HOW_PATH,    /* a file: the path from a map or class spec */
    HOW_LIST,    /* words separated by commas or spaces */
    HOW_FLAG,    /* True/False */
    HOW_IGNORE,  /* harmless: `note` says why */
    HOW_PERSON,  /* not carried over: `note` says why */
    HOW_CW_FILE, /* confCW_FILE / confCR_FILE: remembered for the end */
    HOW_CR_FILE,
    HOW_PROBE,        /* confDONT_PROBE_INTERFACES */
    HOW_RUN_AS,       /* user[:group] */
    HOW_LOCAL,        /* local delivery: the local mailer, aliases, LUSER_RELAY (mc_local.c) */
    HOW_SETTINGS_DIR, /* MAIL_SETTINGS_DIR: where sendmail's files are by default */
    HOW_NETINET6,     /* _NETINET6_: IPv6 default listeners */
    HOW_TLS_SRV,      /* confTLS_SRV_OPTIONS letters */
    HOW_RELAY_HOST,   /* SMART_HOST, MAIL_HUB: [mailer:]host (mc_relay_host) */
    HOW_ICONNECT,     /* confTO_ICONNECT: 0 is sendmail's "as Timeout.connect" */
    HOW_RELAY_ARGS,   /* RELAY_MAILER_ARGS: TCP $h port */
    HOW_TRUSTED,      /* confTRUSTED_USERS: added to class t, which holds root and daemon */
    HOW_MILTER,       /* confINPUT_MAIL_FILTERS, confMILTER_MACROS_* (mc_milter.c) */
};

struct mc_define_rule {
    const char *name;
    enum mc_how how;
    const char *key;
    bool future, zero_ok;
    uint64_t lo, hi;  /* numbers; times in seconds, hi 0 = any time up to 30d, 0 included */
    const char *note; /* for HOW_IGNORE/HOW_PERSON; for numbers and times, what 0 means
                         otherwise */
};

#define LIVE(n, how, key)                                                                          \
    {                                                                                              \
        n, how, key, false, false, 0, 0, NULL                                                      \
    }
#define LATER(n, how, key)                                                                         \
    {                                                                                              \
        n, how, key, true, false, 0, 0, NULL                                                       \
    }
#define NUMBER(n, how, key, z, lo, hi)                                                             \
    {                                                                                              \
        n, how, key, false, z, lo, hi, NULL                                                        \
    }
#define RANGE(n, how, key, z, lo, hi, note)                                                        \
    {                                                                                              \
        n, how, key, false, z, lo, hi, note                                                        \
    }
#define IGNORE(n, why)                                                                             \
    {                                                                                              \
        n, HOW_IGNORE, NULL, false, false, 0, 0, why                                               \
    }
#define PERSON(n, why)                                                                             \
    {                                                                                              \
        n, HOW_PERSON, NULL, false, false, 0, 0, why                                               \
    }

static const char mc_not_ours[] = "a sendmail file or process setting with no meaning for "
                                  "ringmail";

static const struct mc_define_rule mc_define_rules[] = {
    NUMBER("confMAX_DAEMON_CHILDREN", HOW_UINT, "limits.connections", true, 1, 1000000),
    NUMBER("confMAX_MESSAGE_SIZE", HOW_SIZE, "limits.message_size", true, KIB, 1024 * 1024 * MIB),
    {"confMAX_RCPTS_PER_MESSAGE", HOW_UINT, "limits.recipients", false, false, 1, 1000000,
     "sendmail's 0 is 'no limit'; ringmail always bounds recipients (its default, 1000, "
     "stays)"},
    NUMBER("confBAD_RCPT_THROTTLE", HOW_UINT, "limits.bad_rcpt_throttle", true, 1, 1000000),
    NUMBER("confMAX_HEADERS_LENGTH", HOW_SIZE, "limits.header_size", true, KIB, 64 * MIB),
    LIVE("confTO_INITIAL", HOW_TIME_M, "timeouts.initial"),
    LIVE("confTO_HELO", HOW_TIME_M, "timeouts.helo"),
    LIVE("confTO_MAIL", HOW_TIME_M, "timeouts.mail"),
    LIVE("confTO_RCPT", HOW_TIME_M, "timeouts.rcpt"),
    LIVE("confTO_DATAINIT", HOW_TIME_M, "timeouts.datainit"),
    LIVE("confTO_DATABLOCK", HOW_TIME_M, "timeouts.datablock"),
    LIVE("confTO_DATAFINAL", HOW_TIME_M, "timeouts.datafinal"),
    LIVE("confTO_RSET", HOW_TIME_M, "timeouts.rset"),
    LIVE("confTO_QUIT", HOW_TIME_M, "timeouts.quit"),
    LIVE("confTO_MISC", HOW_TIME_M, "timeouts.misc"),
    LIVE("confTO_COMMAND", HOW_TIME_M, "timeouts.command"),
    /* the delivery side's and the queue's; sendmail reads bare numbers of queuewarn in hours,
     * of queuereturn in days, of the resolver's retransmission in seconds (settimeout) */
    LIVE("confTO_ICONNECT", HOW_ICONNECT, "timeouts.iconnect"),
    LIVE("confTO_CONNECT", HOW_TIME_M, "timeouts.connect"),
    LIVE("confTO_HOSTSTATUS", HOW_TIME_M, "timeouts.hoststatus"),
    LIVE("confTO_QUEUEWARN", HOW_TIME_H, "timeouts.queuewarn"),
    RANGE("confTO_QUEUERETURN", HOW_TIME_D, "timeouts.queuereturn", false, 1, 30 * 86400,
          "sendmail then returns every message to its sender at once, without a delivery "
          "attempt; ringmail always tries"),
    /* _res.retrans and _res.retry: the resolver's wait for one try, and its tries */
    RANGE("confTO_RESOLVER_RETRANS", HOW_TIME_S, "dns.timeout", false, 1, 60, NULL),
    RANGE("confTO_RESOLVER_RETRY", HOW_UINT, "dns.tries", false, 1, 10,
          "sendmail then sends no DNS query at all; ringmail's default (2 tries) stays"),
    NUMBER("confMCI_CACHE_SIZE", HOW_UINT, "delivery.connection_cache_size", true, 1, 100000),
    RANGE("confMCI_CACHE_TIMEOUT", HOW_TIME_M, "delivery.connection_cache_timeout", false, 1, 86400,
          "sendmail then closes each cached connection at its next look, so none is reused; "
          "delivery.connection_cache_size: 0 does that here"),
    LIVE("confMIN_QUEUE_AGE", HOW_TIME_M, "queue.min_queue_age"),
    LIVE("confDOMAIN_NAME", HOW_DOMAIN, "hostname"),
    LIVE("confRUN_AS_USER", HOW_RUN_AS, "run_as"),
    LIVE("QUEUE_DIR", HOW_PATH, "spool"),
    LIVE("STATUS_FILE", HOW_PATH, "statistics_file"),
    /* The TLS keys: the TLS issue adds them to the schema. */
    LIVE("confCACERT", HOW_PATH, "tls.ca_file"),
    LIVE("confCACERT_PATH", HOW_PATH, "tls.ca_path"),
    LIVE("confSERVER_CERT", HOW_PATH, "tls.certificates.cert"),
    LIVE("confSERVER_KEY", HOW_PATH, "tls.certificates.key"),
    LIVE("confCLIENT_CERT", HOW_PATH, "tls.client_cert"),
    LIVE("confCLIENT_KEY", HOW_PATH, "tls.client_key"),
    LIVE("confDH_PARAMETERS", HOW_PATH, "tls.dh_params"),
    LIVE("confCIPHER_LIST", HOW_STRING, "tls.cipher_list"),
    LATER("confSERVER_SSL_OPTIONS", HOW_STRING, "tls.server_ssl_options"),
    LATER("confCLIENT_SSL_OPTIONS", HOW_STRING, "tls.client_ssl_options"),
    {"confLOG_LEVEL", HOW_UINT, "log_level", true, true, 1, 99, NULL},
    LATER("confPRIVACY_FLAGS", HOW_LIST, "privacy"),
    LIVE("confDEF_USER_ID", HOW_LOCAL, "mailers.default_user"),
    LIVE("confTRY_NULL_MX_LIST", HOW_FLAG, "routing.try_null_mx_list"),
    LIVE("confAUTH_OPTIONS", HOW_LIST, "auth.options"),
    LIVE("confAUTH_MECHANISMS", HOW_LIST, "auth.mechanisms"),
    /* a rate over all clients per second that delays accepting (sendmail's
     * ConnectionRateThrottle), not ratecontrol's per-client refusal (limits.connection_rate):
     * written to a key of its own, so a busy client is never refused after migrating */
    {"confCONNECTION_RATE_THROTTLE", HOW_UINT, "limits.connection_rate_throttle", false, true, 1,
     1000000, NULL},
    LIVE("confCONNECTION_RATE_WINDOW_SIZE", HOW_TIME_S, "limits.connection_rate_window"),
    {"confQUEUE_LA", HOW_UINT, "limits.queue_load", true, true, 1, 10000, NULL},
    {"confREFUSE_LA", HOW_UINT, "limits.refuse_load", true, true, 1, 10000, NULL},
    LIVE("confCW_FILE", HOW_CW_FILE, "maps.local_host_names"),
    LIVE("confCR_FILE", HOW_CR_FILE, "maps.relay_domains_file"),
    LATER("confCT_FILE", HOW_PATH, "maps.trusted_users"),
    LIVE("confTRUSTED_USERS", HOW_TRUSTED, "submission.trusted_users"),
    LIVE("ALIAS_FILE", HOW_LOCAL, "maps.aliases"),
    LIVE("confFORWARD_PATH", HOW_LOCAL, "mailers.forward_path"),
    LIVE("SMART_HOST", HOW_RELAY_HOST, "routing.smart_host"),
    LIVE("MAIL_HUB", HOW_RELAY_HOST, "routing.mail_hub"),
    LIVE("RELAY_MAILER_ARGS", HOW_RELAY_ARGS, NULL),
    /* sendmail's $R: the host that gets names without @domain, like MAIL_HUB (cf/README) */
    LATER("LOCAL_RELAY", HOW_STRING, "routing.local_relay"),
    LIVE("LUSER_RELAY", HOW_LOCAL, "routing.luser_relay"),
    LATER("RELAY_MAILER", HOW_STRING, "routing.relay_mailer"),
    LATER("confFALLBACK_MX", HOW_STRING, "routing.fallback_mx"),
    LATER("confSMTP_LOGIN_MSG", HOW_STRING, "greeting"),
    LIVE("confDONT_PROBE_INTERFACES", HOW_PROBE, NULL),
    LIVE("LOCAL_MAILER_PATH", HOW_LOCAL, NULL),
    LIVE("LOCAL_MAILER_ARGS", HOW_LOCAL, NULL),
    LIVE("PROCMAIL_MAILER_PATH", HOW_LOCAL, NULL),
    LIVE("confLOCAL_MAILER", HOW_LOCAL, NULL),
    LIVE("CYRUSV2_MAILER_ARGS", HOW_LOCAL, NULL),
    LIVE("MAIL_SETTINGS_DIR", HOW_SETTINGS_DIR, NULL),
    LIVE("_NETINET6_", HOW_NETINET6, NULL),
    LIVE("confTLS_SRV_OPTIONS", HOW_TLS_SRV, "tls.request_client_cert"),
    LIVE("confINPUT_MAIL_FILTERS", HOW_MILTER, NULL),
    LIVE("confMILTER_MACROS_CONNECT", HOW_MILTER, NULL),
    LIVE("confMILTER_MACROS_HELO", HOW_MILTER, NULL),
    LIVE("confMILTER_MACROS_ENVFROM", HOW_MILTER, NULL),
    LIVE("confMILTER_MACROS_ENVRCPT", HOW_MILTER, NULL),
    LIVE("confMILTER_MACROS_DATA", HOW_MILTER, NULL),
    LIVE("confMILTER_MACROS_EOH", HOW_MILTER, NULL),
    LIVE("confMILTER_MACROS_EOM", HOW_MILTER, NULL),
    IGNORE("confMILTER_LOG_LEVEL", "how much sendmail logs about its filters; ringmaild logs "
                                   "each filter's failures and verdicts itself"),
    PERSON("UUCP_RELAY", "a relay for UUCP addresses; ringmail does not route UUCP"),
    PERSON("BITNET_RELAY", "a relay for BITNET addresses; ringmail does not route BITNET"),
    PERSON("DECNET_RELAY", "a relay for DECnet addresses; ringmail does not route DECnet"),
    PERSON("FAX_RELAY", "a relay for fax addresses; ringmail has no fax mailer"),
    PERSON("confUSERDB_SPEC", "user database (userdb) lookups are not supported; move those "
                              "mappings to aliases or the virtusertable"),
    PERSON("confBIND_OPTS", "resolver options are not carried over; ringmail uses the "
                            "system resolver's settings (/etc/resolv.conf)"),
    IGNORE("confCF_VERSION", "a version string for sendmail.cf"),
    IGNORE("confPID_FILE", mc_not_ours),
    IGNORE("confHOST_STATUS_DIRECTORY", mc_not_ours),
    IGNORE("confCONTROL_SOCKET_NAME", mc_not_ours),
    IGNORE("confPROCESS_TITLE_PREFIX", mc_not_ours),
    IGNORE("confSAFE_FILE_ENV", mc_not_ours),
    IGNORE("confSAFE_QUEUE", "ringmail always commits a message to disk before 250"),
    IGNORE("confQUEUE_FILE_MODE", "ringmail's spool files are always private (0600)"),
    IGNORE("confTEMP_FILE_MODE", "ringmail's spool files are always private (0600)"),
    IGNORE("confEBINDIR", mc_not_ours),
    IGNORE("confDEAD_LETTER_DROP", mc_not_ours),
    IGNORE("HELP_FILE", "ringmail answers HELP itself"),
    IGNORE("confME_TOO", "sendmail's default since 8.10; ringmail's behaviour"),
    IGNORE("confRRT_IMPLIES_DSN", mc_not_ours),
    IGNORE("confMAX_HOP", "ringmail's own hop limit applies"),
    IGNORE("confQUEUE_SORT_ORDER", "the order of a queue run; ringmail has no queue runs: each "
                                   "deferred message is tried at its own next attempt, the "
                                   "earliest first"),
    IGNORE("confMAX_QUEUE_RUN_SIZE", "the messages one queue run takes; ringmail has no queue "
                                     "runs (queue.max_active bounds the messages in delivery "
                                     "at once)"),
    IGNORE("confMAX_QUEUE_CHILDREN", "sendmail's queue runner processes; ringmail delivers from "
                                     "its worker threads"),
    IGNORE("confMAX_RUNNERS_PER_QUEUE", "sendmail's queue runner processes; ringmail delivers "
                                        "from its worker threads"),
    IGNORE("confNICE_QUEUE_RUN", "the nice(3) priority of sendmail's queue runner processes"),
};

static const struct mc_define_rule *mc_rule(const char *name)
{
    for (size_t i = 0; i < sizeof(mc_define_rules) / sizeof(mc_define_rules[0]); i++)
        if (strcmp(mc_define_rules[i].name, name) == 0)
            return &mc_define_rules[i];
    return NULL;
}

/* sendmail's other Timeout.* options (the per-priority queue timeouts, the resolver's for
 * first and other attempts, ident, ...) are kept for later as timeouts.<name>, with the
 * unit sendmail gives a bare number (settimeout). */
static const struct mc_define_rule *mc_rule_timeout(const char *name, char *key, size_t keylen)
{
    static struct mc_define_rule later = LATER(NULL, HOW_TIME_M, NULL);
    /* Timeout.resolver.retry* is a number of tries, not a time */
    static struct mc_define_rule tries = {NULL, HOW_UINT, NULL, true, true, 1, 100, NULL};
    /* only these become timeouts.<name>, the names the daemon's schema knows; any other
     * confTO_ is no sendmail option (the ones ringmail acts on are in mc_define_rules) */
    static const char *const known[] = {
        "ACONNECT",
        "AUTH",
        "CONTROL",
        "FILEOPEN",
        "IDENT",
        "ITERATIVE",
        "LHLO",
        "QUEUERETURN_DSN",
        "QUEUERETURN_NONURGENT",
        "QUEUERETURN_NORMAL",
        "QUEUERETURN_URGENT",
        "QUEUEWARN_DSN",
        "QUEUEWARN_NONURGENT",
        "QUEUEWARN_NORMAL",
        "QUEUEWARN_URGENT",
        "RESOLVER_RETRANS_FIRST",
        "RESOLVER_RETRANS_NORMAL",
        "RESOLVER_RETRY_FIRST",
        "RESOLVER_RETRY_NORMAL",
        "STARTTLS",
    };
    if (strncmp(name, "confTO_", 7) != 0 || !name[7])
        return NULL;
    size_t k = 0;
    while (k < sizeof(known) / sizeof(known[0]) && strcmp(known[k], name + 7) != 0)
        k++;
    if (k == sizeof(known) / sizeof(known[0]))
        return NULL;
    struct mc_define_rule *r = strncmp(name, "confTO_RESOLVER_RETRY", 21) == 0 ? &tries : &later;
    later.how = strncmp(name, "confTO_QUEUEWARN", 16) == 0          ? HOW_TIME_H
                : strncmp(name, "confTO_QUEUERETURN", 18) == 0      ? HOW_TIME_D
                : strncmp(name, "confTO_RESOLVER_RETRANS", 23) == 0 ? HOW_TIME_S
                                                                    : HOW_TIME_M;
    snprintf(key, keylen, "timeouts.");
    for (size_t i = strlen(key), j = 7; name[j] && i + 1 < keylen; i++, j++)
        key[i] = (char)tolower((unsigned char)name[j]), key[i + 1] = '\0';
    r->name = name;
    r->key = key;
    return r;
}

static const struct {
    const char *option, *define;
} mc_options_map[] = {
    {"MaxDaemonChildren", "confMAX_DAEMON_CHILDREN"},
    {"MaxMessageSize", "confMAX_MESSAGE_SIZE"},
    {"MaxRecipientsPerMessage", "confMAX_RCPTS_PER_MESSAGE"},
    {"BadRcptThrottle", "confBAD_RCPT_THROTTLE"},
    {"MaxHeadersLength", "confMAX_HEADERS_LENGTH"},
    {"LogLevel", "confLOG_LEVEL"},
    {"PrivacyOptions", "confPRIVACY_FLAGS"},
    {"ConnectionRateThrottle", "confCONNECTION_RATE_THROTTLE"},
    {"ConnectionRateWindowSize", "confCONNECTION_RATE_WINDOW_SIZE"},
    {"QueueLA", "confQUEUE_LA"},
    {"RefuseLA", "confREFUSE_LA"},
    {"CACertFile", "confCACERT"},
    {"CACertPath", "confCACERT_PATH"},
    {"ServerCertFile", "confSERVER_CERT"},
    {"ServerKeyFile", "confSERVER_KEY"},
    {"ClientCertFile", "confCLIENT_CERT"},
    {"ClientKeyFile", "confCLIENT_KEY"},
    {"DHParameters", "confDH_PARAMETERS"},
    {"CipherList", "confCIPHER_LIST"},
    {"TLSSrvOptions", "confTLS_SRV_OPTIONS"},
    {"AuthOptions", "confAUTH_OPTIONS"},
    {"AuthMechanisms", "confAUTH_MECHANISMS"},
    {"AliasFile", "ALIAS_FILE"},
    {"QueueDirectory", "QUEUE_DIR"},
    {"StatusFile", "STATUS_FILE"},
    {"RunAsUser", "confRUN_AS_USER"},
    {"DefaultUser", "confDEF_USER_ID"},
    {"ForwardPath", "confFORWARD_PATH"},
    {"SmtpGreetingMessage", "confSMTP_LOGIN_MSG"},
    {"ConnectionCacheSize", "confMCI_CACHE_SIZE"},
    {"ConnectionCacheTimeout", "confMCI_CACHE_TIMEOUT"},
    {"MinQueueAge", "confMIN_QUEUE_AGE"},
    {"QueueSortOrder", "confQUEUE_SORT_ORDER"},
    {"MaxQueueRunSize", "confMAX_QUEUE_RUN_SIZE"},
    {"MaxQueueChildren", "confMAX_QUEUE_CHILDREN"},
    {"MaxRunnersPerQueue", "confMAX_RUNNERS_PER_QUEUE"},
    {"NiceQueueRun", "confNICE_QUEUE_RUN"},
    {"InputMailFilters", "confINPUT_MAIL_FILTERS"},
    {"Milter.LogLevel", "confMILTER_LOG_LEVEL"},
    {"Milter.macros.connect", "confMILTER_MACROS_CONNECT"},
    {"Milter.macros.helo", "confMILTER_MACROS_HELO"},
    {"Milter.macros.envfrom", "confMILTER_MACROS_ENVFROM"},
    {"Milter.macros.envrcpt", "confMILTER_MACROS_ENVRCPT"},
    {"Milter.macros.data", "confMILTER_MACROS_DATA"},
    {"Milter.macros.eoh", "confMILTER_MACROS_EOH"},
    {"Milter.macros.eom", "confMILTER_MACROS_EOM"},
};

const char *mc_define_of_option(const char *option)
{
    static char timeout[64];
    if (strncasecmp(option, "Timeout.", 8) == 0 && strlen(option) < 48) {
        /* cf.m4's names: Timeout.queuewarn.non-urgent is confTO_QUEUEWARN_NONURGENT */
        char *out = timeout + snprintf(timeout, sizeof(timeout), "confTO_");
        for (const char *p = option + 8; *p; p++)
            if (*p != '-')
                *out++ = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
        *out = '\0';
        return timeout;
    }
    for (size_t i = 0; i < sizeof(mc_options_map) / sizeof(mc_options_map[0]); i++)
        if (strcasecmp(mc_options_map[i].option, option) == 0)
            return mc_options_map[i].define;
    return NULL;
}

static void mc_number(struct mc_state *st, const struct mc_define_rule *r, const char *what,
                      const char *value, struct mc_loc loc)
{
    bool clean;
    uint64_t v = mc_atoi(value, &clean);
    char text[32];
    if (!clean)
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s: sendmail reads '%s' as %llu (it takes the leading digits, as "
                      "atoi does); so does this translation. Write the number alone",
                      what, value, (unsigned long long)v);
    if (v == 0 && !r->zero_ok) {
        mc_report_add(st->report, loc, MC_IGNORED, "%s = 0: %s", what,
                      r->note ? r->note : "0 means the default");
        return;
    }
    if (v != 0 && (v < r->lo || v > r->hi)) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s = %llu: %s takes %llu to %llu%s; not carried over", what,
                      (unsigned long long)v, r->key, (unsigned long long)r->lo,
                      (unsigned long long)r->hi, r->zero_ok ? " (or 0 for no limit)" : "");
        return;
    }
    if (r->how == HOW_SIZE)
        mc_format_size(v, text, sizeof(text));
    else
        snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
    mc_key(st, loc, what, r->key, text, r->future);
}

static void mc_time(struct mc_state *st, const struct mc_define_rule *r, const char *what,
                    const char *value, struct mc_loc loc)
{
    static const enum mc_how hows[] = {HOW_TIME_S, HOW_TIME_M, HOW_TIME_H, HOW_TIME_D};
    static const char units[] = "smhd";
    char unit = 'm';
    for (size_t i = 0; i < sizeof(hows) / sizeof(hows[0]); i++)
        if (r->how == hows[i])
            unit = units[i];
    /* hi 0: any time up to 30d, 0 included */
    uint64_t s, lo = r->hi ? r->lo : 1, hi = r->hi ? r->hi : 30 * 86400;
    bool zero_ok = !r->hi || r->zero_ok;
    char text[32], from[32], to[32];
    if (mc_convtime(value, unit, &s) < 0) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s: '%s' is not a time sendmail reads (like 90s, 5m, 1h); not carried "
                      "over",
                      what, value);
        return;
    }
    mc_format_duration(s, text, sizeof(text));
    if (s == 0 && !zero_ok && r->note) {
        mc_report_add(st->report, loc, MC_PERSON, "%s = 0: %s; not carried over", what, r->note);
        return;
    }
    if ((s == 0 && !zero_ok) || (s != 0 && (s < lo || s > hi))) {
        mc_format_duration(lo, from, sizeof(from));
        mc_format_duration(hi, to, sizeof(to));
        mc_report_add(st->report, loc, MC_PERSON, "%s = %s: %s takes %s to %s%s; not carried over",
                      what, text, r->key, from, to, zero_ok ? " (or 0)" : "");
        return;
    }
    mc_key(st, loc, what, r->key, text, r->future);
}

/* confTO_ICONNECT: the connect timeout of a message's first attempt. sendmail's 0 means
 * "Timeout.connect for first attempts too" (makeconnection), which is known at the end. */
static void mc_iconnect(struct mc_state *st, const struct mc_define_rule *r, const char *what,
                        const char *value, struct mc_loc loc)
{
    uint64_t s;
    st->iconnect_as_connect = mc_convtime(value, 'm', &s) == 0 && s == 0;
    if (!st->iconnect_as_connect) {
        mc_time(st, r, what, value, loc);
        return;
    }
    mc_save_loc(&st->iconnect_at, loc);
    mc_yaml_remove(st->yaml, r->key);
}

/* One sendmail token (MailerToTriple's $~[): what may name a mailer before a colon. */
static size_t mc_token_len(const char *s)
{
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
}

/* A port: digits alone, 1 to 65535. */
static bool mc_port(const char *s)
{
    bool clean;
    uint64_t v = mc_atoi(s, &clean);
    return clean && s[0] != ' ' && s[0] != '\t' && v >= 1 && v <= 65535;
}

/* A smart host or hub as sendmail and ringmail read it. */
struct mc_relay_form {
    size_t mailer;     /* length of "mailer" in "mailer:host", 0 = none (the relay mailer) */
    bool token_port;   /* "mailhub:2525": a host and a port here, a mailer to sendmail */
    const char *after; /* ":587" after the host: a port here, a second host to sendmail */
    const char *why;   /* what ringmail cannot take, or NULL */
    char text[64];
};

static void mc_relay_parse(const char *value, struct mc_relay_form *f)
{
    static const char *const smtp_mailers[] = {"smtp", "esmtp", "smtp8", "dsmtp", "relay"};
    const char *host = value;
    size_t n = mc_token_len(value), m = 0;
    *f = (struct mc_relay_form){.token_port = n && value[n] == ':' && mc_port(value + n + 1)};
    if (n && value[n] == ':' && !f->token_port) {
        while (m < sizeof(smtp_mailers) / sizeof(smtp_mailers[0]) &&
               (strlen(smtp_mailers[m]) != n || strncmp(smtp_mailers[m], value, n) != 0))
            m++;
        if (m == sizeof(smtp_mailers) / sizeof(smtp_mailers[0])) {
            snprintf(f->text, sizeof(f->text), "the %.*s mailer", (int)(n < 32 ? n : 32), value);
            f->why = f->text;
            return;
        }
        f->mailer = n;
        host = value + n + 1;
    }
    /* after the host, sendmail's deliver.c starts a list of hosts to try in turn at ':' or
     * ','; its port is never there but in the mailer's arguments (TCP $h 587) */
    const char *end = host[0] == '[' ? strchr(host, ']') : host;
    f->after = f->token_port || !end ? NULL : strpbrk(end, ":,");
    if (!end)
        f->why = "no ']' after '['";
    else if (*value && (!*host || *host == ':' || *host == ','))
        f->why = "no host";
    else if (f->after && (f->after[0] != ':' || !mc_port(f->after + 1)))
        f->why = "a list of hosts sendmail tries in turn";
}

void mc_relay_host(struct mc_state *st, struct mc_loc loc, const char *what, const char *key,
                   const char *value)
{
    struct mc_relay_form f;
    char args[32] = "RELAY_MAILER_ARGS";
    mc_relay_parse(value, &f);
    if (f.why || !*value) {
        mc_yaml_remove(st->yaml, key); /* what an earlier define set no longer holds */
        if (f.why)
            mc_report_add(st->report, loc, MC_PERSON,
                          "%s = %s: %s; ringmail takes one SMTP host ([name] for that host's "
                          "own addresses, name for its MX hosts, :port after it): not carried "
                          "over",
                          what, value, f.why);
        else
            mc_report_add(st->report, loc, MC_TRANSLATED, "%s is empty: no %s, as without it", what,
                          key);
        return;
    }
    mc_key(st, loc, what, key, value, false);
    size_t n = mc_token_len(value);
    if (f.mailer) { /* an SMTP mailer's name: at most 5 letters */
        for (size_t i = 0; i < f.mailer; i++)
            args[i] = (char)toupper((unsigned char)value[i]);
        snprintf(args + f.mailer, sizeof(args) - f.mailer, "_MAILER_ARGS");
    }
    if (f.token_port)
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s: sendmail reads '%.*s' before ':' as the name of a mailer, and has no "
                      "such mailer; ringmail connects to host %.*s, port %s, as the line says",
                      what, (int)n, value, (int)n, value, value + n + 1);
    else if (f.after)
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s: sendmail reads ':%s' after the host as a second host to try, not as a "
                      "port (its port comes from the mailer's arguments, %s `TCP $h %s'), so it "
                      "connected to port 25; ringmail connects to port %s, as the line says",
                      what, f.after + 1, args, f.after + 1, f.after + 1);
}

/* RELAY_MAILER_ARGS `TCP $h 587': sendmail's way to give the relay mailer (the smart host's
 * and the hub's, unless they name another) a port; ringmail writes it after their host at
 * the end, when both are known. */
static void mc_relay_args(struct mc_state *st, const char *what, const char *value,
                          struct mc_loc loc)
{
    char words[3][64] = {"", "", ""}, extra[8];
    const char *p = value;
    size_t n = 0;
    while (n < 3 && mc_next_word(&p, words[n], sizeof(words[n])))
        n++;
    st->relay_port[0] = '\0';
    if (mc_next_word(&p, extra, sizeof(extra)) || strcmp(words[0], "TCP") != 0 ||
        strcmp(words[1], "$h") != 0 || (n == 3 && !mc_port(words[2]))) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s = %s: only `TCP $h' and a port are carried over (ringmail makes the "
                      "connection itself); not carried over",
                      what, value);
        return;
    }
    if (n < 3 || strcmp(words[2], "25") == 0) {
        mc_report_add(st->report, loc, MC_IGNORED, "%s = %s: the relay mailer's default, port 25",
                      what, value);
        return;
    }
    snprintf(st->relay_port, sizeof(st->relay_port), "%.5s", words[2]); /* mc_port: 5 digits */
    mc_save_loc(&st->relay_args_at, loc);
}

/* The relay mailer's port also applied to the mailertable's relay: entries; ringmail reads
 * a port only after their host, so the ones without are named. */
static void mc_relay_args_mailertable(struct mc_state *st, struct mc_loc at, const char *what,
                                      const char *path)
{
    char full[2048], err[512];
    char *data = NULL;
    size_t len, n = 0;
    struct map_simple m = {0};
    const struct map_simple_entry *first = NULL;
    snprintf(full, sizeof(full), "%s%s", st->o->root ? st->o->root : "", path);
    int rc = fileset_read(NULL, full, MAP_FILE_MAX, &data, &len, err, sizeof(err));
    if (rc == 0)
        rc = map_simple_parse(MAP_MAILERTABLE, path, data, len, &m, err, sizeof(err));
    for (size_t i = 0; rc == 0 && i < m.n; i++) {
        struct mc_relay_form f;
        mc_relay_parse(m.v[i].value, &f);
        if (strncmp(m.v[i].value, "relay:", 6) != 0 || f.after || f.why)
            continue;
        first = first ? first : &m.v[i];
        n++;
    }
    if (rc < 0)
        mc_report_add(st->report, at, MC_WARNING,
                      "%s: sendmail sent the mailertable's relay: entries to that port too, and "
                      "%s could not be checked (%s); ringmail reads a port after their host "
                      "(relay:[host]:%s)",
                      what, path, err, st->relay_port);
    else if (n)
        mc_report_add(st->report, at, MC_WARNING,
                      "%s: sendmail sent the mailertable's relay: entries to that port too; %zu "
                      "in %s have none after their host (the first at line %u, %s), so ringmail "
                      "would use port 25: write relay:[host]:%s there",
                      what, n, path, first->line, first->key, st->relay_port);
    map_simple_free(&m);
    free(data);
}

void mc_defines_finish(struct mc_state *st)
{
    if (st->iconnect_as_connect) {
        const char *connect = mc_yaml_value(mc_yaml_get(st->yaml, "timeouts.connect"));
        mc_key(st, mc_saved(&st->iconnect_at),
               "define(confTO_ICONNECT) = 0, which sendmail reads as confTO_CONNECT's value",
               "timeouts.iconnect", connect ? connect : "0", false);
    }
    if (!st->relay_port[0])
        return;
    static const char *const keys[] = {"routing.smart_host", "routing.mail_hub"};
    struct mc_loc at = mc_saved(&st->relay_args_at);
    char what[64];
    snprintf(what, sizeof(what), "define(RELAY_MAILER_ARGS) port %s", st->relay_port);
    bool used = false;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *host = mc_yaml_value(mc_yaml_get(st->yaml, keys[i]));
        struct mc_relay_form f;
        if (!host)
            continue;
        mc_relay_parse(host, &f);
        if ((f.mailer && strncmp(host, "relay:", 6) != 0) || f.after || f.token_port)
            continue; /* another mailer, or a port ringmail reads there already */
        struct buf value;
        buf_init(&value, 0);
        if (buf_printf(&value, "%s:%s", host, st->relay_port) == 0)
            mc_key(st, at, what, keys[i], value.data, false);
        buf_free(&value);
        used = true;
    }
    if (!used)
        mc_report_add(st->report, at, MC_IGNORED,
                      "%s: no smart host or hub of this .mc goes through the relay mailer", what);
    const char *mailertable = mc_yaml_value(mc_yaml_get(st->yaml, "maps.mailertable"));
    if (mailertable)
        mc_relay_args_mailertable(st, at, what, mailertable);
}

/* tls.certificates is a list of {cert, key}: the server pair is its first item. */
static void mc_cert(struct mc_state *st, const char *key, const char *what, const char *path,
                    struct mc_loc loc)
{
    struct mc_yaml *list = mc_yaml_get(st->yaml, "tls.certificates");
    struct mc_yaml *item = mc_yaml_item(list, 0);
    if (!item)
        item = mc_yaml_add_map(st->yaml, "tls.certificates", false);
    const char *field = strrchr(key, '.') + 1;
    if (item)
        mc_yaml_set(item, field, path, false, NULL);
    mc_report_add(st->report, loc, MC_TRANSLATED, "%s -> tls.certificates[0].%s = %s", what, field,
                  path);
}

/* "hash:/etc/mail/aliases" -> "/etc/mail/aliases"; anything else as it is. */
static const char *mc_unprefixed(const char *word)
{
    const char *colon = strchr(word, ':');
    return word[0] != '/' && colon && colon[1] == '/' ? colon + 1 : word;
}

/* TLSSrvOptions: V = do not ask clients for a certificate; C = no server certificate
 * needed (anonymous ciphers). */
static void mc_tls_srv_options(struct mc_state *st, const char *what, const char *value,
                               struct mc_loc loc)
{
    char word[256];
    for (const char *p = value; mc_next_word(&p, word, sizeof(word));) {
        for (const char *c = word; *c; c++) {
            if (*c == 'V')
                mc_key(st, loc, what, "tls.request_client_cert", "false", false);
            else if (*c == 'C')
                mc_report_add(st->report, loc, MC_PERSON,
                              "%s: C (STARTTLS without a server certificate, anonymous "
                              "ciphers) is not carried over; ringmail offers STARTTLS only "
                              "with tls.certificates",
                              what);
            else
                mc_report_add(st->report, loc, MC_PERSON,
                              "%s: '%c' is not a TLSSrvOptions flag sendmail knows (V, C)", what,
                              *c);
        }
    }
}

static void mc_apply(struct mc_state *st, const struct mc_define_rule *r, const char *what,
                     const char *value, struct mc_loc loc)
{
    char path[1024], word[256];
    const char *p = value;
    switch (r->how) {
    case HOW_UINT:
    case HOW_SIZE:
        mc_number(st, r, what, value, loc);
        break;
    case HOW_TIME_M:
    case HOW_TIME_S:
    case HOW_TIME_H:
    case HOW_TIME_D:
        mc_time(st, r, what, value, loc);
        break;
    case HOW_ICONNECT:
        mc_iconnect(st, r, what, value, loc);
        break;
    case HOW_RELAY_HOST:
        mc_relay_host(st, loc, what, r->key, value);
        break;
    case HOW_RELAY_ARGS:
        mc_relay_args(st, what, value, loc);
        break;
    case HOW_DOMAIN:
        if (!mc_domain_ok(value)) {
            mc_report_add(st->report, loc, MC_PERSON,
                          "%s = '%s': not a plain domain name (sendmail macros like $w are "
                          "not expanded); set hostname yourself",
                          what, value);
            break;
        }
        snprintf(st->hostname, sizeof(st->hostname), "%s", value);
        mc_key(st, loc, what, r->key, value, r->future);
        break;
    case HOW_RUN_AS:
        snprintf(word, sizeof(word), "%.*s", (int)strcspn(value, ":"), value);
        if (strchr(value, ':'))
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: ringmail runs as the user's own group; ':%s' left out", what,
                          strchr(value, ':') + 1);
        mc_key(st, loc, what, r->key, word, r->future);
        break;
    case HOW_PATH:
        mc_spec_path(value, path, sizeof(path));
        if (strchr(path, '*')) {
            mc_report_add(st->report, loc, MC_PERSON,
                          "%s = %s: several queue directories are not supported; one spool", what,
                          value);
        } else if (strncmp(r->key, "tls.certificates.", 17) == 0) {
            mc_cert(st, r->key, what, path, loc);
        } else {
            mc_key(st, loc, what, r->key, path, r->future);
        }
        break;
    case HOW_STRING:
        mc_key(st, loc, what, r->key, value, r->future);
        break;
    case HOW_LIST:
        mc_yaml_remove(st->yaml, r->key); /* a later define replaces the whole list */
        while (mc_next_word(&p, word, sizeof(word)))
            mc_yaml_add(st->yaml, r->key, mc_unprefixed(word), r->future, NULL);
        mc_report_add(st->report, loc, mc_key_kind(r->future), "%s -> %s", what, r->key);
        break;
    case HOW_TRUSTED:
        /* cf/m4/proto.m4 writes "Troot", "Tdaemon", then "T" confTRUSTED_USERS */
        mc_yaml_remove(st->yaml, r->key);
        mc_yaml_add(st->yaml, r->key, "root", false, NULL);
        mc_yaml_add(st->yaml, r->key, "daemon", false, NULL);
        while (mc_next_word(&p, word, sizeof(word)))
            mc_yaml_add(st->yaml, r->key, word, false, NULL);
        mc_report_add(st->report, loc, MC_TRANSLATED, "%s -> %s (with root and daemon)", what,
                      r->key);
        break;
    case HOW_FLAG:
        mc_key(st, loc, what, r->key, strchr("TtYy1", value[0] ? value[0] : 'T') ? "true" : "false",
               r->future);
        break;
    case HOW_IGNORE:
        mc_report_add(st->report, loc, MC_IGNORED, "%s: %s", what, r->note);
        break;
    case HOW_PERSON:
        mc_report_add(st->report, loc, MC_PERSON, "%s: %s", what, r->note);
        break;
    case HOW_CW_FILE:
    case HOW_CR_FILE:
        mc_spec_path(value, path, sizeof(path));
        snprintf(r->how == HOW_CW_FILE ? st->cw_file : st->cr_file, sizeof(st->cw_file), "%s",
                 path);
        mc_report_add(st->report, loc, MC_TRANSLATED, "%s: %s is the %s file", what, path,
                      r->how == HOW_CW_FILE ? "local-host-names" : "relay-domains");
        break;
    case HOW_LOCAL:
        mc_local_define(st, r->name, value, loc);
        break;
    case HOW_MILTER:
        mc_milter_define(st, r->name, value, loc);
        break;
    case HOW_SETTINGS_DIR:
        snprintf(st->settings_dir, sizeof(st->settings_dir), "%s", value);
        mc_report_add(st->report, loc, MC_IGNORED,
                      "%s: the directory of sendmail's files (cf.m4: /etc/mail/); no key of "
                      "its own: expanded where it is used, and the default paths of the maps "
                      "and class files after it are in %s",
                      what, value);
        break;
    case HOW_NETINET6:
        st->netinet6 = true;
        mc_report_add(st->report, loc, MC_IGNORED,
                      "%s: with no DAEMON_OPTIONS, sendmail's default listeners are MTA-v4 and "
                      "MTA-v6 (see the listeners at the end of the report)",
                      what);
        break;
    case HOW_TLS_SRV:
        mc_tls_srv_options(st, what, value, loc);
        break;
    case HOW_PROBE:
        mc_report_add(st->report, loc,
                      strchr("TtYy", value[0] ? value[0] : 'T') ? MC_IGNORED : MC_WARNING,
                      "%s: ringmail never adds its interfaces' names to local_domains; list "
                      "them there if mail for them is local",
                      what);
        break;
    }
}

enum mc_verdict mc_define(struct mc_state *st, const char *name, const char *value,
                          struct mc_loc loc)
{
    char what[128], key[80];
    snprintf(what, sizeof(what), "define(%s)", name);
    st->alias_file_set = st->alias_file_set || strcmp(name, "ALIAS_FILE") == 0;
    const struct mc_define_rule *r = mc_rule(name);
    if (!r)
        r = mc_rule_timeout(name, key, sizeof(key));
    if (r) {
        mc_apply(st, r, what, value, loc);
    } else if (strpbrk(name, "'`\"")) {
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s: the name is not in `...' quotes, so m4 defines a macro with the "
                      "quote marks in its name that sendmail never reads; the setting keeps "
                      "its default, as in sendmail. Write define(`NAME', `value')",
                      what);
    } else if (strncmp(name, "conf", 4) == 0) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s: a sendmail option ringmail has no equivalent for yet", what);
    } else if (strstr(name, "_MAILER_")) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s: mailer programs and flags are not carried over; ringmail delivers "
                      "with its own mailers",
                      what);
    } else {
        mc_report_add(st->report, loc, MC_IGNORED,
                      "%s: a macro for the .mc itself (or a switch of sendmail's own macros); "
                      "expanded where it is used",
                      what);
    }
    return MC_GO_ON;
}

void mc_undefine(struct mc_state *st, const char *name, struct mc_loc loc)
{
    char key[80];
    st->alias_file_set = st->alias_file_set || strcmp(name, "ALIAS_FILE") == 0;
    const struct mc_define_rule *r = mc_rule(name);
    if (!r)
        r = mc_rule_timeout(name, key, sizeof(key));
    if (r && r->how == HOW_MILTER) {
        mc_milter_undefine(st, name, loc);
    } else if (r && r->how == HOW_LOCAL && mc_local_undefine(st, name)) {
        mc_report_add(st->report, loc, MC_IGNORED, "undefine(%s): sendmail's default applies",
                      name);
    } else if (r && r->how == HOW_RELAY_ARGS) {
        st->relay_port[0] = '\0';
        mc_report_add(st->report, loc, MC_IGNORED,
                      "undefine(%s): the relay mailer's default arguments, port 25", name);
    } else if (r && r->how == HOW_NETINET6) {
        st->netinet6 = false;
        mc_report_add(st->report, loc, MC_IGNORED,
                      "undefine(%s): with no DAEMON_OPTIONS, sendmail's default listener is one "
                      "MTA",
                      name);
    } else if (r && r->key) {
        st->iconnect_as_connect = st->iconnect_as_connect && r->how != HOW_ICONNECT;
        if (strncmp(r->key, "tls.certificates.", 17) == 0)
            mc_yaml_remove(st->yaml, "tls.certificates");
        else
            mc_yaml_remove(st->yaml, r->key);
        mc_report_add(st->report, loc, MC_TRANSLATED,
                      "undefine(%s): %s removed; the default applies", name, r->key);
    } else {
        mc_report_add(st->report, loc, MC_IGNORED, "undefine(%s): nothing to undo", name);
    }
}
