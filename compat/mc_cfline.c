/* compat/mc_cfline.c — raw sendmail.cf lines in a .mc: LOCAL_CONFIG blocks and text
 * outside any macro. Class, file-class, macro and option lines with a ringmail meaning
 * are translated; everything else (rules, maps, mailers, headers) needs a person. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "compat/mc_int.h"

/* "w" from "Cw..." / "C{w}...", with *rest after it; "" when malformed. */
static void mc_cf_name(const char *s, char *name, size_t namelen, const char **rest)
{
    if (s[0] == '{') {
        const char *close = strchr(s, '}');
        snprintf(name, namelen, "%.*s", close ? (int)(close - s - 1) : 0, s + 1);
        *rest = close ? close + 1 : s + strlen(s);
    } else {
        snprintf(name, namelen, "%.1s", s);
        *rest = *s ? s + 1 : s;
    }
}

static enum mc_verdict mc_cf_class(struct mc_state *st, const char *line, struct mc_loc loc)
{
    char name[32], word[256];
    const char *rest;
    mc_cf_name(line + 1, name, sizeof(name), &rest);
    const char *key = !strcmp(name, "w")   ? "local_domains"
                      : !strcmp(name, "R") ? "relay_domains"
                                           : NULL;
    if (!key) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "'%s': class %s is used by rulesets, which are not translated", line, name);
        return MC_GO_ON;
    }
    if (line[0] == 'F') {
        char path[1024];
        mc_spec_path(rest, path, sizeof(path));
        snprintf(key[0] == 'l' ? st->cw_file : st->cr_file, sizeof(st->cw_file), "%s", path);
        if (key[0] == 'l') {
            st->use_cw_file = true;
            mc_save_loc(&st->cw_at, loc);
        }
        mc_report_add(st->report, loc, MC_TRANSLATED, "'%s': %s is the %s file", line, path,
                      key[0] == 'l' ? "local-host-names" : "relay-domains");
        return MC_GO_ON;
    }
    while (mc_next_word(&rest, word, sizeof(word))) {
        if (mc_domain_ok(word))
            mc_key_add(st, loc, line, key, word, false);
        else
            mc_report_add(st->report, loc, MC_WARNING,
                          "'%s': '%s' is not a domain ringmail accepts in %s; left out", line, word,
                          key);
    }
    return MC_GO_ON;
}

static enum mc_verdict mc_cf_macro(struct mc_state *st, const char *line, struct mc_loc loc)
{
    static const struct {
        const char *macro, *define;
    } macros[] = {{"j", "confDOMAIN_NAME"},
                  {"S", "SMART_HOST"},
                  {"H", "MAIL_HUB"},
                  {"L", "LUSER_RELAY"},
                  {"M", "MASQUERADE"}};
    char name[32];
    const char *rest;
    mc_cf_name(line + 1, name, sizeof(name), &rest);
    while (*rest == ' ' || *rest == '\t')
        rest++;
    for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
        if (strcmp(name, macros[i].macro) != 0)
            continue;
        if (name[0] == 'M')
            mc_key(st, loc, line, "masquerade.as", rest, true);
        else
            mc_define(st, macros[i].define, rest, loc);
        return MC_GO_ON;
    }
    mc_report_add(st->report, loc, MC_PERSON, "'%s': macro %s is not translated", line, name);
    return MC_GO_ON;
}

static enum mc_verdict mc_cf_option(struct mc_state *st, const char *line, struct mc_loc loc)
{
    char option[64];
    const char *p = line + 1;
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "= \t");
    snprintf(option, sizeof(option), "%.*s", (int)n, p);
    p += n;
    while (*p == ' ' || *p == '\t' || *p == '=')
        p++;
    /* cf.m4 writes these after LOCAL_CONFIG every time (the define's value, else its
     * default), and sendmail keeps the last setting: this line never takes effect */
    static const char *const rewritten[] = {
        "AliasFile",      "ConnectionCacheSize", "ConnectionCacheTimeout", "LogLevel",
        "QueueDirectory", "SmtpGreetingMessage", "Timeout.queuereturn",    "Timeout.queuewarn"};
    for (size_t i = 0; i < sizeof(rewritten) / sizeof(rewritten[0]); i++)
        if (strcasecmp(option, rewritten[i]) == 0) {
            const char *define = mc_define_of_option(option);
            mc_report_add(st->report, loc, MC_WARNING,
                          "'%s': sendmail.cf sets %s again after LOCAL_CONFIG (from %s or "
                          "sendmail's default) and the last one wins, so this line has no "
                          "effect in sendmail either; not translated. Use define(`%s', ...)",
                          line, option, define, define);
            return MC_GO_ON;
        }
    if (strcmp(option, "DaemonPortOptions") == 0)
        return mc_daemon_options(st, p, false, loc);
    if (strcmp(option, "ClientPortOptions") == 0)
        return mc_daemon_options(st, p, true, loc);
    const char *define = mc_define_of_option(option);
    if (!define) {
        mc_report_add(st->report, loc, MC_PERSON, "'%s': option %s has no ringmail equivalent yet",
                      line, option);
        return MC_GO_ON;
    }
    return mc_define(st, define, p, loc);
}

enum mc_verdict mc_cf_line(struct mc_state *st, const char *line, struct mc_loc loc)
{
    if (st->section == MC_SEC_RULES || st->section == MC_SEC_MAILERS) {
        mc_report_add(st->report, loc, MC_PERSON, "'%s': %s are not translated", line,
                      st->section == MC_SEC_RULES ? "custom rulesets" : "mailer definitions");
        return MC_GO_ON;
    }
    switch (line[0]) {
    case 'C':
    case 'F':
        return mc_cf_class(st, line, loc);
    case 'D':
        return mc_cf_macro(st, line, loc);
    case 'O':
        return mc_cf_option(st, line, loc);
    case 'V':
        mc_report_add(st->report, loc, MC_IGNORED, "'%s': the sendmail.cf version level", line);
        return MC_GO_ON;
    case '#': /* after cf.m4's changecom() m4 copies it: a sendmail.cf comment */
        mc_report_add(st->report, loc, MC_IGNORED, "'%s': a comment in sendmail.cf", line);
        return MC_GO_ON;
    default:
        mc_report_add(st->report, loc, MC_PERSON, "'%s': %s; not translated", line,
                      line[0] == 'R' || line[0] == 'S' ? "a rewriting rule"
                      : line[0] == 'K'                 ? "a map definition"
                      : line[0] == 'M'                 ? "a mailer definition"
                      : line[0] == 'H'                 ? "a header definition"
                                       : "text that sendmail would copy into sendmail.cf");
        return MC_GO_ON;
    }
}
