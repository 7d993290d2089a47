/*
 * compat/mc_int.h — what the pieces of the translator share: its state and the entry
 * points of each construct family (defines, FEATUREs, DAEMON_OPTIONS, raw sendmail.cf
 * lines, value conversions). Internal to compat/mc_*.c.
 */
#ifndef RINGMAIL_COMPAT_MC_INT_H
#define RINGMAIL_COMPAT_MC_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "compat/mc_m4.h"
#include "compat/mc_report.h"
#include "compat/mc_translate.h"
#include "compat/mc_yaml.h"

#define MC_MAX_DAEMONS 32
#define MC_MAX_MILTERS 25 /* sendmail's MAXFILTERS; ringmaild's limit too */

/* A location that outlives the reader (which owns the file names of its locations), and
 * stays valid when copied. */
struct mc_saved_loc {
    char file[256];
    unsigned line;
};

/* One DAEMON_OPTIONS listener, as sendmail would open it. */
struct mc_daemon {
    char name[64], addr[64], family[8], modifiers[32];
    unsigned port;
    struct mc_saved_loc at;
    bool has_filters;  /* InputMailFilters= given (empty: no filter on this listener) */
    char filters[256]; /* its names, separated by ';' as in the .mc */
};

/* One INPUT_MAIL_FILTER or MAIL_FILTER carried over (mc_milter.c). */
struct mc_filter {
    char name[64];
    bool input;
};

/* What the raw text lines of the .mc are, after the macro that started the section. */
enum mc_section { MC_SEC_CF, MC_SEC_RULES, MC_SEC_MAILERS };

struct mc_state {
    const struct mc_options *o;
    struct mc_yaml *yaml;
    struct mc_report *report;
    struct mc_m4 *m4; /* the reader, during a call from it */
    enum mc_section section;
    bool saw_ostype, saw_mailer, saw_cf_m4, no_default_msa, use_cw_file, failed;
    bool netinet6;         /* _NETINET6_: sendmail's default listeners are MTA-v4 and MTA-v6 */
    bool saw_local_mailer; /* MAILER(local): the local mailer's program is written */
    struct mc_daemon daemons[MC_MAX_DAEMONS];
    size_t n_daemons;
    struct mc_saved_loc cw_at;         /* FEATURE(use_cw_file), for the finishing entries */
    char cw_file[1024], cr_file[1024]; /* confCW_FILE, confCR_FILE paths */
    char hostname[256];
    char settings_dir[256]; /* MAIL_SETTINGS_DIR, for the default paths of files */
    bool alias_file_set;    /* ALIAS_FILE defined or undefined: its default is not used */
    char ostype[64];        /* OSTYPE(...), "" without one */
    struct mc_saved_loc ostype_at;
    bool msp;                 /* FEATURE(msp): the .mc is a submit.mc, not a daemon's */
    bool iconnect_as_connect; /* confTO_ICONNECT 0: sendmail uses confTO_CONNECT's value */
    struct mc_saved_loc iconnect_at;
    char relay_port[8]; /* RELAY_MAILER_ARGS `TCP $h 587': the relay mailer's port, or "" */
    struct mc_saved_loc relay_args_at;
    /* local delivery (mc_local.c) */
    bool local_lmtp;         /* FEATURE(local_lmtp) stands: the local mailer speaks LMTP */
    char procmail_path[256]; /* PROCMAIL_MAILER_PATH, "" = local_procmail.m4's default */
    char local_mailer[32];   /* confLOCAL_MAILER, "" = local */
    struct mc_saved_loc local_mailer_at;
    char cyrus_args[256];   /* CYRUSV2_MAILER_ARGS as defined now, "" = cyrusv2.m4's */
    char cyrus_socket[256]; /* the arguments MAILER(cyrusv2) took, "" = no MAILER(cyrusv2) */
    struct mc_saved_loc cyrusv2_at;
    /* mail filters (mc_milter.c) */
    struct mc_filter milters[MC_MAX_MILTERS];
    size_t n_milters;
    char input_filters[1024]; /* confINPUT_MAIL_FILTERS as m4 holds it, INPUT_MAIL_FILTERs'd */
    bool input_filters_set;   /* by define() or undefine(), not only INPUT_MAIL_FILTER */
    struct mc_saved_loc input_filters_at;
};

void mc_save_loc(struct mc_saved_loc *s, struct mc_loc loc);
struct mc_loc mc_saved(const struct mc_saved_loc *s);

/* Reports a malformed construct: an error entry, and the translation stops. */
enum mc_verdict mc_fail(struct mc_state *st, struct mc_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The report kind of a key: kept for later when it is written commented out (`future`: the
 * daemon accepts it but does not act on it yet), translated otherwise. */
enum mc_kind mc_key_kind(bool future);
/* Whether the daemon acts on `key` although its group is kept for later (features.*,
 * auth.*, maps.*): such a key is written live. */
bool mc_key_live(const char *key);
/* Sets a key and reports it as translated (or kept for later) from `what` ("define(confX)"). */
void mc_key(struct mc_state *st, struct mc_loc loc, const char *what, const char *key,
            const char *value, bool future);
/* Adds to a list key and reports it. */
void mc_key_add(struct mc_state *st, struct mc_loc loc, const char *what, const char *key,
                const char *value, bool future);

/* mc_defines.c: define(name, value) and undefine(name) of sendmail's settings. */
enum mc_verdict mc_define(struct mc_state *st, const char *name, const char *value,
                          struct mc_loc loc);
void mc_undefine(struct mc_state *st, const char *name, struct mc_loc loc);
/* What is decided once the whole .mc is read (confTO_ICONNECT 0, the relay mailer's port). */
void mc_defines_finish(struct mc_state *st);
/* SMART_HOST, MAIL_HUB (and the host of FEATURE(nullclient)): `key` set live to sendmail's
 * form as written, [mailer:]host[:port], which ringmail's routing reads; a warning where
 * sendmail read it otherwise (":587" is a second host there, not a port), and needs a person
 * for what ringmail cannot do (another mailer than SMTP, a list of hosts). Empty = none. */
void mc_relay_host(struct mc_state *st, struct mc_loc loc, const char *what, const char *key,
                   const char *value);
/* The define behind a sendmail.cf option name ("MaxMessageSize" -> confMAX_MESSAGE_SIZE),
 * or NULL. */
const char *mc_define_of_option(const char *option);

/* `name` under MAIL_SETTINGS_DIR, as sendmail's default paths are written. */
void mc_settings_path(const struct mc_state *st, const char *name, char *out, size_t outlen);

/* mc_local.c: local delivery. The local mailer (LOCAL_MAILER_PATH/ARGS,
 * FEATURE(local_procmail/local_lmtp)), each setting replacing what an earlier one made of the
 * mailer, as in sendmail; confDEF_USER_ID, ALIAS_FILE, confFORWARD_PATH, LUSER_RELAY,
 * PROCMAIL_MAILER_PATH, confLOCAL_MAILER and CYRUSV2_MAILER_ARGS (the names of
 * mc_defines.c's HOW_LOCAL rules). mc_local_undefine: false when the name has no state here. */
void mc_local_define(struct mc_state *st, const char *name, const char *value, struct mc_loc loc);
bool mc_local_undefine(struct mc_state *st, const char *name);
void mc_local_feature(struct mc_state *st, const char *name, char **args, size_t nargs,
                      struct mc_loc loc);
/* MAILER(cyrusv2): its arguments now; mailers.lmtp at the end when it is the local mailer. */
void mc_local_cyrusv2(struct mc_state *st, struct mc_loc loc);
void mc_local_finish(struct mc_state *st);

/* mc_features.c: FEATURE(name, args...). */
enum mc_verdict mc_feature(struct mc_state *st, char **args, size_t nargs, struct mc_loc loc);

/* mc_daemon.c: DAEMON_OPTIONS / CLIENT_OPTIONS, and the listeners at the end. */
enum mc_verdict mc_daemon_options(struct mc_state *st, const char *spec, bool client,
                                  struct mc_loc loc);
/* The listeners sendmail would open, written out at the end; none for a submit.mc. */
void mc_daemons_finish(struct mc_state *st, const char *main_file);

/* mc_milter.c: INPUT_MAIL_FILTER and MAIL_FILTER (milters[]), confINPUT_MAIL_FILTERS and
 * confMILTER_MACROS_* (mc_defines.c's HOW_MILTER rules), resolved at the end as sendmail's
 * milter_config() does once the whole sendmail.cf is read, and a listener's InputMailFilters=
 * (`live`: the listener is written live). */
void mc_milter(struct mc_state *st, const struct mc_event *ev);
void mc_milter_define(struct mc_state *st, const char *name, const char *value, struct mc_loc loc);
void mc_milter_undefine(struct mc_state *st, const char *name, struct mc_loc loc);
void mc_milters_finish(struct mc_state *st);
void mc_milter_listener(struct mc_state *st, struct mc_yaml *item, const struct mc_daemon *d,
                        size_t index, bool live);

/* mc_cfline.c: a raw sendmail.cf line of the .mc (LOCAL_CONFIG, or plain text). */
enum mc_verdict mc_cf_line(struct mc_state *st, const char *line, struct mc_loc loc);

/* mc_values.c: sendmail's readings of values. */
/* atoi/atol as sendmail applies them: leading digits, 0 when there are none. *clean says
 * whether the value was digits and nothing else. */
uint64_t mc_atoi(const char *s, bool *clean);
/* sendmail's convtime(): "1h30m", "90" (in `unit`, 's' or 'm'); -1 when malformed. */
int mc_convtime(const char *s, char unit, uint64_t *seconds);
void mc_format_duration(uint64_t seconds, char *out, size_t outlen);
void mc_format_size(uint64_t bytes, char *out, size_t outlen);
/* The file in a sendmail map or class-file spec ("hash -o /etc/mail/access",
 * "-o /etc/mail/relay-domains %[^#]", "hash:/etc/mail/aliases"). */
void mc_spec_path(const char *spec, char *out, size_t outlen);
/* ringmail's domain rule (RFC 1123 labels, no trailing dot). */
bool mc_domain_ok(const char *s);
/* The next word of a list separated by commas and/or white space; NULL at the end. */
const char *mc_next_word(const char **p, char *word, size_t wordlen);
/* Reads a class file (local-host-names, relay-domains) under the root into `key` (a live
 * list), reporting what it found or why it could not. */
void mc_read_class_file(struct mc_state *st, struct mc_loc loc, const char *path, const char *key);

#endif
