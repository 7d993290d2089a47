/* compat/mc_translate.c — the event loop of the translation: sendmail's macro calls,
 * what OSTYPE and DOMAIN imply, and the finishing of listeners and class files. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat/mc_int.h"

enum mc_verdict mc_fail(struct mc_state *st, struct mc_loc loc, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    mc_report_add(st->report, loc, MC_ERROR, "%s", text);
    st->failed = true;
    return MC_STOP;
}

void mc_save_loc(struct mc_saved_loc *s, struct mc_loc loc)
{
    snprintf(s->file, sizeof(s->file), "%s", loc.file ? loc.file : "");
    s->line = loc.line;
}

struct mc_loc mc_saved(const struct mc_saved_loc *s)
{
    return (struct mc_loc){s->file, s->line};
}

static bool mc_key_in(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], key) == 0)
            return true;
    return false;
}

/* Keys of the groups kept for later that the daemon already enforces: written live, so that
 * the translated file does what the .mc did (docs/config.md marks the others). */
bool mc_key_live(const char *key)
{
    static const char *const enforced[] = {"maps.access",
                                           "maps.local_host_names",
                                           "maps.relay_domains_file",
                                           "maps.mailertable",
                                           "maps.trusted_users",
                                           "timeouts.starttls",
                                           "maps.virtusertable",
                                           "mailers.smrsh",
                                           "maps.genericstable",
                                           "features.preserve_luser_host",
                                           "maps.authinfo",
                                           "features.greet_pause",
                                           "features.accept_unresolvable_domains",
                                           "features.delay_checks",
                                           "features.blocklist_recipients",
                                           "features.ratecontrol",
                                           "features.conncontrol",
                                           "auth.trust_mechanisms"};
    return strncmp(key, "masquerade.", 11) == 0 ||
           mc_key_in(key, enforced, sizeof(enforced) / sizeof(enforced[0]));
}

enum mc_kind mc_key_kind(bool future)
{
    return future ? MC_KEPT : MC_TRANSLATED;
}

void mc_key(struct mc_state *st, struct mc_loc loc, const char *what, const char *key,
            const char *value, bool future)
{
    future = future && !mc_key_live(key);
    mc_yaml_set(st->yaml, key, value, future, NULL);
    mc_report_add(st->report, loc, mc_key_kind(future), "%s -> %s = %s", what, key, value);
}

void mc_key_add(struct mc_state *st, struct mc_loc loc, const char *what, const char *key,
                const char *value, bool future)
{
    future = future && !mc_key_live(key);
    mc_yaml_add(st->yaml, key, value, future, NULL);
    mc_report_add(st->report, loc, mc_key_kind(future), "%s -> %s += %s", what, key, value);
}

void mc_settings_path(const struct mc_state *st, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%s", st->settings_dir, name);
}

/* What sendmail's own OSTYPE and DOMAIN files set that means something here, as m4 text
 * read at the OSTYPE/DOMAIN line (from cf/ostype and cf/domain of sendmail 8.17, Debian's
 * 8.17.1.9 for debian, debian-mta and debian-msp). */
static const struct {
    const char *call, *name, *implies;
} mc_implied[] = {
    {"OSTYPE", "debian",
     "define(`confDEF_USER_ID', `mail:mail')define(`confSMTP_LOGIN_MSG', `$j Sendmail $v/$Z; "
     "$b; (No UCE/UBE) $?{client_addr}logging access from: ${client_name}(${client_resolve})-"
     "$_$.')define(`confBIND_OPTS', `+WorkAroundBrokenAAAA')"
     "define(`LOCAL_MAILER_PATH', `/usr/sbin/sensible-mda')"
     "define(`LOCAL_MAILER_ARGS', `sensible-mda $g $u $h ${client_addr}')"
     "define(`PROCMAIL_MAILER_PATH', `/usr/bin/procmail')"},
    /* linux.m4 means to keep a PROCMAIL_MAILER_PATH of the .mc, but its define is not
     * quoted inside the ifdef, so m4 runs it either way */
    {"OSTYPE", "linux",
     "define(`PROCMAIL_MAILER_PATH', `/usr/bin/procmail')FEATURE(`local_procmail')"},
    {"OSTYPE", "solaris8", "define(`_NETINET6_')FEATURE(`local_lmtp')"},
    {"OSTYPE", "solaris11", "define(`_NETINET6_')FEATURE(`local_lmtp')"},
    {"DOMAIN", "generic",
     "define(`confFORWARD_PATH', `$z/.forward.$w+$h:$z/.forward+$h:$z/.forward.$w:$z/.forward')"
     "define(`confMAX_HEADERS_LENGTH', `32768')FEATURE(`redirect')FEATURE(`use_cw_file')"
     "EXPOSED_USER(`root')"},
    {"DOMAIN", "debian-mta",
     "define(`confMAX_DAEMON_CHILDREN', `0')define(`confTO_ICONNECT', `2m')"
     "define(`confTO_MAIL', `2m')define(`confTO_DATAINIT', `2m')define(`confTO_RSET', `1m')"
     "define(`confTO_QUIT', `2m')define(`confTO_COMMAND', `5m')define(`confTO_IDENT', `5s')"},
    {"DOMAIN", "debian-msp",
     "define(`MSP_QUEUE_DIR', `/var/spool/mqueue-client')define(`confTO_ICONNECT', `2s')"
     "define(`confTO_MAIL', `2m')define(`confTO_DATAINIT', `2m')define(`confTO_RSET', `1m')"
     "define(`confTO_QUIT', `2m')define(`confTO_COMMAND', `5m')define(`confTO_IDENT', `5s')"
     "define(`confTO_HOSTSTATUS', `0')FEATURE(`no_default_msa')"
     "define(`confRUN_AS_USER', `smmsp')"},
};

static const char mc_ostypes[] =
    " a-ux aix3 aix4 aix5 altos amdahl-uts bsd4.3 bsd4.4 bsdi bsdi1.0 bsdi2.0 darwin debian "
    "dgux domainos dragonfly dynix3.2 freebsd4 freebsd5 freebsd6 gnu hpux10 hpux11 hpux9 irix4 "
    "irix5 irix6 isc4.1 linux maxion mklinux mpeix nextstep openbsd osf1 powerux ptx2 qnx "
    "riscos4.5 sco-uw-2.1 sco3.2 sinix solaris11 solaris2 solaris2.ml solaris2.pre5 solaris8 "
    "sunos3.5 sunos4.1 svr4 ultrix4 unicos unicosmk unicosmp unixware7 unknown uxpds ";

static enum mc_verdict mc_ostype_domain(struct mc_state *st, const struct mc_event *ev)
{
    const char *name = ev->nargs ? ev->args[0] : "";
    bool ostype = ev->name[0] == 'O';
    char word[80];
    snprintf(word, sizeof(word), " %s ", name);
    if (ostype) {
        if (!*name || !strstr(mc_ostypes, word))
            return mc_fail(st, ev->loc,
                           "OSTYPE(%s): sendmail has no such OS type (there is no "
                           "cf/ostype/%s.m4)",
                           name, name);
        st->saw_ostype = true;
        snprintf(st->ostype, sizeof(st->ostype), "%s", name);
        mc_save_loc(&st->ostype_at, ev->loc);
    }
    for (size_t i = 0; i < sizeof(mc_implied) / sizeof(mc_implied[0]); i++) {
        if (strcmp(mc_implied[i].call, ev->name) || strcmp(mc_implied[i].name, name))
            continue;
        mc_report_add(st->report, ev->loc, MC_TRANSLATED,
                      "%s(%s): sendmail's file for it; what it sets that matters here follows",
                      ev->name, name);
        if (*mc_implied[i].implies && mc_m4_push_text(st->m4, mc_implied[i].implies) < 0)
            return mc_fail(st, ev->loc, "out of memory");
        return MC_GO_ON;
    }
    if (ostype)
        mc_report_add(st->report, ev->loc, MC_IGNORED,
                      "OSTYPE(%s): program paths for that system; ringmail has its own", name);
    else
        mc_report_add(st->report, ev->loc, MC_PERSON,
                      "DOMAIN(%s): a site file (cf/domain/%s.m4) the translator cannot see; copy "
                      "its lines into the .mc and translate again",
                      name, name);
    return MC_GO_ON;
}

/* Macros whose arguments are a list (or one value) for a key. */
static const struct {
    const char *macro, *key;
    enum { MC_ARG_DOMAINS, MC_ARG_WORDS, MC_ARG_DOMAIN, MC_ARG_FILE } how;
    bool future;
} mc_list_macros[] = {
    {"LOCAL_DOMAIN", "local_domains", MC_ARG_DOMAINS, false},
    {"RELAY_DOMAIN", "relay_domains", MC_ARG_DOMAINS, false},
    {"MASQUERADE_AS", "masquerade.as", MC_ARG_DOMAIN, false},
    {"MASQUERADE_DOMAIN", "masquerade.domains", MC_ARG_DOMAINS, false},
    {"MASQUERADE_EXCEPTION", "masquerade.exceptions", MC_ARG_DOMAINS, false},
    {"EXPOSED_USER", "masquerade.exposed_users", MC_ARG_WORDS, false},
    {"GENERICS_DOMAIN", "masquerade.generics_domains", MC_ARG_DOMAINS, false},
    {"TRUST_AUTH_MECH", "auth.trust_mechanisms", MC_ARG_WORDS, false},
    {"LOCAL_USER", "routing.local_users", MC_ARG_WORDS, true},
    {"MASQUERADE_DOMAIN_FILE", "masquerade.domains_file", MC_ARG_FILE, false},
    {"MASQUERADE_EXCEPTION_FILE", "masquerade.exceptions_file", MC_ARG_FILE, false},
    {"EXPOSED_USER_FILE", "masquerade.exposed_users_file", MC_ARG_FILE, false},
    {"GENERICS_DOMAIN_FILE", "masquerade.generics_domains_file", MC_ARG_FILE, false},
    {"LOCAL_USER_FILE", "routing.local_users_file", MC_ARG_FILE, true},
    {"RELAY_DOMAIN_FILE", "maps.relay_domains_file", MC_ARG_FILE, true},
};

static bool mc_list_macro(struct mc_state *st, const struct mc_event *ev)
{
    char what[128], word[256], path[1024];
    for (size_t i = 0; i < sizeof(mc_list_macros) / sizeof(mc_list_macros[0]); i++) {
        if (strcmp(mc_list_macros[i].macro, ev->name) != 0)
            continue;
        const char *key = mc_list_macros[i].key, *p = ev->nargs ? ev->args[0] : "";
        snprintf(what, sizeof(what), "%s(%s)", ev->name, p);
        if (mc_list_macros[i].how == MC_ARG_FILE) {
            /* the class file's spec as sendmail's F line takes it: "-o /etc/mail/masq" */
            mc_spec_path(p, path, sizeof(path));
            mc_key(st, ev->loc, what, key, path, mc_list_macros[i].future);
            if (strcmp(ev->name, "RELAY_DOMAIN_FILE") == 0)
                snprintf(st->cr_file, sizeof(st->cr_file), "%s", path);
            return true;
        }
        if (mc_list_macros[i].how == MC_ARG_DOMAIN) {
            if (mc_domain_ok(p))
                mc_key(st, ev->loc, what, key, p, mc_list_macros[i].future);
            else
                mc_report_add(st->report, ev->loc, MC_PERSON,
                              "%s: '%s' is not a domain ringmail accepts in %s (sendmail macros "
                              "are not expanded); not carried over",
                              what, p, key);
            return true;
        }
        while (mc_next_word(&p, word, sizeof(word))) {
            if (mc_list_macros[i].how == MC_ARG_DOMAINS && !mc_domain_ok(word))
                mc_report_add(st->report, ev->loc, MC_WARNING,
                              "%s: '%s' is not a domain ringmail accepts in %s; left out", what,
                              word, key);
            else
                mc_key_add(st, ev->loc, ev->name, key, word, mc_list_macros[i].future);
        }
        return true;
    }
    return false;
}

static enum mc_verdict mc_mailer(struct mc_state *st, const struct mc_event *ev)
{
    static const char later[] = " local smtp procmail cyrus cyrusv2 lmtp ";
    static const char none[] = " uucp usenet fax pop phquery mail11 qpage xagent ssh ";
    const char *name = ev->nargs ? ev->args[0] : "";
    char word[80];
    snprintf(word, sizeof(word), " %s ", name);
    st->saw_mailer = true;
    st->saw_local_mailer = st->saw_local_mailer || strcmp(name, "local") == 0;
    if (strcmp(name, "cyrusv2") == 0)
        mc_local_cyrusv2(st, ev->loc);
    if (strstr(later, word) && *name)
        mc_key_add(st, ev->loc, "MAILER", "mailers.enabled", name, true);
    else if (strstr(none, word) && *name)
        mc_report_add(st->report, ev->loc, MC_PERSON, "MAILER(%s): not supported by ringmail",
                      name);
    else
        return mc_fail(st, ev->loc,
                       "MAILER(%s): sendmail has no such mailer (there is no "
                       "cf/mailer/%s.m4)",
                       name, name);
    return MC_GO_ON;
}

static bool mc_is_bare_macro(const char *name)
{
    return strcmp(name, "MAILER_DEFINITIONS") == 0 || strncmp(name, "LOCAL_", 6) == 0;
}

static enum mc_verdict mc_call(struct mc_state *st, const struct mc_event *ev)
{
    const char *n = ev->name, *arg = ev->nargs ? ev->args[0] : "";
    if (!strcmp(n, "OSTYPE") || !strcmp(n, "DOMAIN"))
        return mc_ostype_domain(st, ev);
    if (!strcmp(n, "FEATURE"))
        return mc_feature(st, ev->args, ev->nargs, ev->loc);
    if (!strcmp(n, "MAILER"))
        return mc_mailer(st, ev);
    if (!strcmp(n, "DAEMON_OPTIONS") || !strcmp(n, "CLIENT_OPTIONS"))
        return mc_daemon_options(st, arg, n[0] == 'C', ev->loc);
    if (mc_list_macro(st, ev))
        return MC_GO_ON;
    if (!strcmp(n, "INPUT_MAIL_FILTER") || !strcmp(n, "MAIL_FILTER")) {
        mc_milter(st, ev);
    } else if (!strcmp(n, "VERSIONID")) {
        mc_report_add(st->report, ev->loc, MC_IGNORED, "VERSIONID: a version comment");
    } else if (!strcmp(n, "LOCAL_CONFIG")) {
        st->section = MC_SEC_CF;
        mc_report_add(st->report, ev->loc, MC_IGNORED,
                      "LOCAL_CONFIG: the sendmail.cf lines after it are translated one by one");
    } else if (!strcmp(n, "MAILER_DEFINITIONS")) {
        st->section = MC_SEC_MAILERS;
        mc_report_add(st->report, ev->loc, MC_IGNORED,
                      "MAILER_DEFINITIONS: starts sendmail's mailer section");
    } else if (mc_is_bare_macro(n)) {
        st->section = MC_SEC_RULES;
        mc_report_add(st->report, ev->loc, MC_PERSON,
                      "%s: custom rulesets are not translated; what they do must be redone "
                      "with ringmail's settings",
                      n);
    } else if (!strcmp(n, "HACK") || !strcmp(n, "SITECONFIG")) {
        mc_report_add(st->report, ev->loc, MC_PERSON,
                      "%s(%s): a site-specific change of sendmail's rules; not translated", n, arg);
    } else if (!strncmp(n, "conf", 4) || !strcmp(n, "SMART_HOST") || !strcmp(n, "MAIL_HUB") ||
               !strcmp(n, "ALIAS_FILE") || !strcmp(n, "LUSER_RELAY")) {
        mc_report_add(st->report, ev->loc, MC_PERSON,
                      "%s(...): not a macro but a setting; sendmail copies this text into "
                      "sendmail.cf as is. Write define(`%s', `...')",
                      n, n);
    } else {
        mc_report_add(st->report, ev->loc, MC_PERSON,
                      "%s(...): not a sendmail macro; sendmail's m4 copies it into sendmail.cf "
                      "as text",
                      n);
    }
    return MC_GO_ON;
}

static enum mc_verdict mc_include(struct mc_state *st, struct mc_m4 *m, const struct mc_event *ev)
{
    const char *base = strrchr(ev->args[0], '/') ? strrchr(ev->args[0], '/') + 1 : ev->args[0];
    if (strcmp(base, "cf.m4") == 0) {
        st->saw_cf_m4 = true;
        mc_m4_no_comments(m);
        mc_report_add(st->report, ev->loc, MC_IGNORED,
                      "%s(%s): sendmail's own macros; their meaning is built into this "
                      "translator",
                      ev->name, ev->args[0]);
        return MC_SKIP;
    }
    if (ev->missing && ev->name[0] == 's')
        mc_report_add(st->report, ev->loc, MC_IGNORED,
                      "sinclude(%s): not found; sendmail skips it silently too", ev->args[0]);
    else if (ev->missing)
        mc_report_add(st->report, ev->loc, MC_WARNING,
                      "include(%s): not found next to the .mc, under the root or in -I "
                      "directories; whatever it sets is missing from this translation (m4 "
                      "would stop with an error)",
                      ev->args[0]);
    else
        mc_report_add(st->report, ev->loc, MC_TRANSLATED, "%s(%s): read; its lines follow",
                      ev->name, ev->args[0]);
    return MC_GO_ON;
}

/* cf.m4's macros hand their arguments on (FEATURE's to _ARG_, DAEMON_OPTIONS' into a
 * define) and m4 reads them again where they are used: the .mc's own macros in them are
 * expanded then and a second level of quotes goes. FEATURE(`access_db', `hash -o MAPS/access')
 * reads MAPS; DAEMON_OPTIONS(``Port=25'') is Port=25. */
static enum mc_verdict mc_call_expanded(struct mc_state *st, struct mc_m4 *m,
                                        const struct mc_event *ev)
{
    char **args = calloc(ev->nargs ? ev->nargs : 1, sizeof(*args));
    enum mc_verdict v = args ? MC_GO_ON : mc_fail(st, ev->loc, "out of memory");
    for (size_t i = 0; v == MC_GO_ON && i < ev->nargs; i++)
        if (!(args[i] = mc_m4_expand_value(m, ev->args[i])))
            v = mc_fail(st, ev->loc, "out of memory");
    if (v == MC_GO_ON) {
        struct mc_event call = *ev;
        call.args = args;
        v = mc_call(st, &call);
    }
    for (size_t i = 0; args && i < ev->nargs; i++)
        free(args[i]);
    free(args);
    return v;
}

static enum mc_verdict mc_on_event(void *ctx, struct mc_m4 *m, const struct mc_event *ev)
{
    struct mc_state *st = ctx;
    st->m4 = m;
    switch (ev->kind) {
    case MC_DEFINE: {
        char *value = mc_m4_expand_value(m, ev->args[0]);
        enum mc_verdict v =
            value ? mc_define(st, ev->name, value, ev->loc) : mc_fail(st, ev->loc, "out of memory");
        free(value);
        return v;
    }
    case MC_UNDEFINE:
        mc_undefine(st, ev->name, ev->loc);
        return MC_GO_ON;
    case MC_INCLUDE:
        return mc_include(st, m, ev);
    case MC_TEXT:
        return mc_cf_line(st, ev->args[0], ev->loc);
    case MC_CALL:
        return mc_call_expanded(st, m, ev);
    }
    return MC_GO_ON;
}

/* Class w and R: sendmail reads local-host-names with use_cw_file, relay-domains always.
 * And the aliases: in MAIL_SETTINGS_DIR unless ALIAS_FILE says otherwise. */
static void mc_class_files(struct mc_state *st, const char *main_file)
{
    struct mc_loc at = {main_file, 0}, cw_at = mc_saved(&st->cw_at);
    char path[1024], rpath[1024], full[2048];
    if (!st->alias_file_set) {
        /* ringmaild reads no aliases unless maps.aliases names them, and refuses to start
         * with one it cannot open; sendmail logs that and runs without */
        mc_settings_path(st, "aliases", path, sizeof(path));
        snprintf(full, sizeof(full), "%s%s", st->o->root ? st->o->root : "", path);
        if (access(full, F_OK) == 0)
            mc_key_add(st, at, "sendmail's default ALIAS_FILE", "maps.aliases", path, false);
        else
            mc_report_add(st->report, at, MC_IGNORED,
                          "sendmail's default ALIAS_FILE, %s, is not there: sendmail runs "
                          "without aliases then, and so does ringmail (no maps.aliases)",
                          path);
    }
    if (st->use_cw_file) {
        if (st->cw_file[0])
            snprintf(path, sizeof(path), "%s", st->cw_file);
        else
            mc_settings_path(st, "local-host-names", path, sizeof(path));
        mc_key(st, cw_at, "use_cw_file", "maps.local_host_names", path, true);
        mc_read_class_file(st, cw_at, path, "local_domains");
    }
    if (st->cr_file[0])
        snprintf(rpath, sizeof(rpath), "%s", st->cr_file);
    else
        mc_settings_path(st, "relay-domains", rpath, sizeof(rpath));
    mc_key(st, at, "sendmail always reads relay-domains", "maps.relay_domains_file", rpath, true);
    snprintf(full, sizeof(full), "%s%s", st->o->root ? st->o->root : "", rpath);
    if (access(full, F_OK) == 0)
        mc_read_class_file(st, at, rpath, "relay_domains");
    /* Setting local_domains replaces ringmail's default [hostname, localhost]; sendmail
     * always has both in class w. */
    if (mc_yaml_get(st->yaml, "local_domains")) {
        mc_yaml_add(st->yaml, "local_domains", "localhost", false, NULL);
        if (st->hostname[0])
            mc_yaml_add(st->yaml, "local_domains", st->hostname, false, NULL);
        else
            mc_report_add(st->report, at, MC_WARNING,
                          "local_domains is set, so ringmail's default [hostname, localhost] "
                          "no longer applies: add this host's own name to it (sendmail adds "
                          "it to class w by itself)");
    }
}

/* The name sendmail's daemon logged as: Debian's init and the BSDs' rc.conf start it with
 * -L sm-mta, everyone else leaves sendmail's own "sendmail". Log watchers match on it
 * (fail2ban's sendmail-reject and sendmail-auth filters take either). */
static void mc_log_ident(struct mc_state *st, const char *main_file)
{
    static const char sm_mta[] = " debian freebsd4 freebsd5 freebsd6 dragonfly openbsd ";
    char word[80];
    snprintf(word, sizeof(word), " %s ", st->ostype);
    bool dash_l = st->ostype[0] && strstr(sm_mta, word);
    const char *ident = dash_l ? "sm-mta" : "sendmail";
    mc_yaml_set(st->yaml, "log.ident", ident, false, NULL);
    if (dash_l)
        mc_report_add(st->report, mc_saved(&st->ostype_at), MC_TRANSLATED,
                      "OSTYPE(%s) -> log.ident = sm-mta: that system starts sendmail with "
                      "-L sm-mta, so its log lines say sm-mta[pid]; log watchers (fail2ban's "
                      "sendmail filters) keep matching",
                      st->ostype);
    else
        mc_report_add(st->report, (struct mc_loc){main_file, 0}, MC_TRANSLATED,
                      "sendmail's own log name -> log.ident = sendmail: its log lines say "
                      "sendmail[pid]; log watchers (fail2ban's sendmail filters) keep matching");
}

static enum mc_status mc_run(const char *name, const char *data, size_t len,
                             const struct mc_options *o, struct mc_result *res)
{
    struct mc_state st = {.o = o, .report = &res->report, .settings_dir = "/etc/mail/"};
    struct mc_m4_error err;
    /* cfhead.m4 defines these before the .mc's lines (MAIL_SETTINGS_DIR unless the .mc did
     * first); a define of the .mc replaces them, or appends to them by naming them
     * (define(`confMILTER_MACROS_CONNECT', confMILTER_MACROS_CONNECT`, {client_port}')) */
    static const char *const predefined[] = {
        "MAIL_SETTINGS_DIR",
        "/etc/mail/",
        "confMILTER_MACROS_CONNECT",
        "`j, _, {daemon_name}, {if_name}, {if_addr}'",
        "confMILTER_MACROS_HELO",
        "`{tls_version}, {cipher}, {cipher_bits}, {cert_subject}, {cert_issuer}'",
        "confMILTER_MACROS_ENVFROM",
        "`i, {auth_type}, {auth_authen}, {auth_ssf}, {auth_author}, {mail_mailer}, {mail_host}, "
        "{mail_addr}'",
        "confMILTER_MACROS_ENVRCPT",
        "`{rcpt_mailer}, {rcpt_host}, {rcpt_addr}'",
        "confMILTER_MACROS_EOM",
        "{msg_id}",
        NULL};
    struct mc_m4_options mo = {.include_dirs = o->include_dirs,
                               .n_include_dirs = o->n_include_dirs,
                               .root = o->root,
                               .predefined = predefined,
                               .is_bare_macro = mc_is_bare_macro,
                               .on_event = mc_on_event,
                               .ctx = &st};
    buf_init(&res->yaml, 0);
    if (!(st.yaml = mc_yaml_new()))
        return res->status = MC_STATUS_ERROR;
    int rc = data ? mc_m4_read_mem(name, data, len, &mo, &err) : mc_m4_read_file(name, &mo, &err);
    if (rc < 0 && err.msg[0])
        mc_report_add(&res->report, (struct mc_loc){err.file, err.line}, MC_ERROR, "%s", err.msg);
    if (rc == 0 && !st.saw_ostype)
        mc_report_add(&res->report, (struct mc_loc){name, 0}, MC_WARNING,
                      "no OSTYPE: sendmail's m4 prints '*** ERROR: No system type defined (use "
                      "OSTYPE macro)' and still builds sendmail.cf with generic paths; ringmail "
                      "needs no OS type");
    if (rc == 0) {
        mc_defines_finish(&st);
        mc_local_finish(&st);
        mc_milters_finish(&st);
        mc_daemons_finish(&st, name);
        mc_class_files(&st, name);
        mc_log_ident(&st, name);
        buf_printf(&res->yaml,
                   "# ringmail configuration translated from %s by "
                   "ringmail-mc2yaml.\n# The migration report says where each key "
                   "comes from and what did not carry over.\n",
                   name);
        mc_yaml_print(st.yaml, o->future_keys, &res->yaml);
    }
    mc_yaml_free(st.yaml);
    res->status = rc < 0 || res->report.count[MC_ERROR] ? MC_STATUS_ERROR
                  : res->report.count[MC_PERSON]        ? MC_STATUS_PERSON
                                                        : MC_STATUS_OK;
    if (res->status == MC_STATUS_ERROR)
        res->yaml.len = 0;
    return res->status;
}

enum mc_status mc_translate_file(const char *path, const struct mc_options *o,
                                 struct mc_result *res)
{
    return mc_run(path, NULL, 0, o, res);
}

enum mc_status mc_translate_mem(const char *name, const char *data, size_t len,
                                const struct mc_options *o, struct mc_result *res)
{
    return mc_run(name, data, len, o, res);
}

void mc_result_free(struct mc_result *res)
{
    buf_free(&res->yaml);
    mc_report_free(&res->report);
}
