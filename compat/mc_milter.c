/* compat/mc_milter.c — sendmail's mail filters: INPUT_MAIL_FILTER and MAIL_FILTER (the X
 * lines, read as milter_setup() reads them), confINPUT_MAIL_FILTERS and a listener's
 * InputMailFilters= (resolved as milter_config() does, once everything is read), and the
 * confMILTER_MACROS_* lists. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat/mc_int.h"
#include "compat/mc_milter_syntax.h"

#define MC_MACROS_PREFIX "confMILTER_MACROS_"

/* The steps of confMILTER_MACROS_<STEP>, and their keys under milter_macros. */
static const char *const mc_macro_steps[] = {"CONNECT", "HELO", "ENVFROM", "ENVRCPT",
                                             "DATA",    "EOH",  "EOM"};

static const char *mc_macro_key(const char *name, char *key, size_t keylen)
{
    if (strncmp(name, MC_MACROS_PREFIX, strlen(MC_MACROS_PREFIX)) != 0)
        return NULL;
    const char *step = name + strlen(MC_MACROS_PREFIX);
    for (size_t i = 0; i < sizeof(mc_macro_steps) / sizeof(mc_macro_steps[0]); i++) {
        if (strcmp(step, mc_macro_steps[i]) != 0)
            continue;
        size_t n = (size_t)snprintf(key, keylen, "milter_macros.");
        for (const char *p = step; *p && n + 1 < keylen; p++)
            key[n++] = (char)tolower((unsigned char)*p);
        key[n] = '\0';
        return key;
    }
    return NULL;
}

static const struct mc_filter *mc_filter_find(const struct mc_state *st, const char *name)
{
    for (size_t i = 0; i < st->n_milters; i++)
        if (strcmp(st->milters[i].name, name) == 0)
            return &st->milters[i];
    return NULL;
}

/* T=C:5m;S:10s;R:10s;E:5m as milter_parse_timeouts() scans it: a field is its first letter,
 * its value runs from the next ':' to the next ';', bare numbers are seconds. */
static void mc_timeouts(struct mc_state *st, struct mc_yaml *item, const char *what,
                        const char *spec, struct mc_loc loc)
{
    static const char codes[] = "CSRE";
    static const char *const keys[] = {"timeouts.connect", "timeouts.send", "timeouts.read",
                                       "timeouts.eom"};
    char value[64], text[32];
    const char *p = spec;
    while (*p) {
        while (*p == ';' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        char field = *p;
        const char *colon = strchr(p, ':'), *code = strchr(codes, field);
        if (!colon) {
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: T=%s: no ':' after '%s'; sendmail stops reading T= there, and so "
                          "does this translation",
                          what, spec, p);
            return;
        }
        if (colon != p + 1)
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: T=%s: '%.*s' is read as %c: (sendmail looks only at the first "
                          "letter)",
                          what, spec, (int)(colon - p + 1), p, field);
        const char *v = colon + 1 + strspn(colon + 1, " \t");
        size_t len = strcspn(v, ";");
        uint64_t secs;
        snprintf(value, sizeof(value), "%.*s", (int)len, v);
        p = v + len;
        if (!code || mc_convtime(value, 's', &secs) < 0 || secs > 30 * 86400) {
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: T=%s: %c:%s is not C:, S:, R: or E: with a time up to 30d; "
                          "ignored",
                          what, spec, field, value);
            continue;
        }
        mc_format_duration(secs, text, sizeof(text));
        mc_yaml_set(item, keys[code - codes], text, false, NULL);
    }
}

/* F=: T wins over 4 over R, as milter.c's MILTER_SET_STATE; no flag is "continue". */
static const char *mc_on_fail(struct mc_state *st, const char *what, const char *flags,
                              struct mc_loc loc)
{
    for (const char *f = flags; *f; f++)
        if (!strchr("TR4 \t", *f))
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: F=%c is no flag sendmail acts on; ignored", what, *f);
    if (strchr(flags, 'T'))
        return "tempfail";
    if (strchr(flags, '4')) {
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s: F=4 (421 and close the connection when the filter fails) -> on_fail "
                      "= tempfail: ringmail answers 451 and keeps the connection",
                      what);
        return "tempfail";
    }
    return strchr(flags, 'R') ? "reject" : NULL;
}

/* The equates of an X line as milter_setup() splits them: a field is named by its first
 * letter, its value runs to the next ',' (quotes around it dropped). False when one has no
 * '=': sendmail then defines no filter at all. */
static bool mc_equates(const char *p, char *sock, char *flags, char *times, size_t len,
                       char *unknown)
{
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        char code = *p;
        p += strcspn(p, "=,");
        if (*p != '=')
            return false;
        p++;
        while (isspace((unsigned char)*p))
            p++;
        size_t n = strcspn(p, ",");
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        const char *v = p;
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
            v++, n -= 2;
        char *to = code == 'S' ? sock : code == 'F' ? flags : code == 'T' ? times : NULL;
        if (to)
            snprintf(to, len, "%.*s", (int)n, v);
        else if (!*unknown)
            *unknown = code;
        p += strcspn(p, ",");
    }
    return true;
}

void mc_milter(struct mc_state *st, const struct mc_event *ev)
{
    const char *name = ev->nargs ? ev->args[0] : "", *equates = ev->nargs > 1 ? ev->args[1] : "";
    char what[128], sock[256] = "", flags[256] = "", times[256] = "", socket[300], unknown = 0;
    const char *why = NULL;
    bool input = ev->name[0] == 'I';
    snprintf(what, sizeof(what), "%s(%s)", ev->name, name);
    if (!name[0] || name[strcspn(name, ",; \t")]) {
        mc_report_add(st->report, ev->loc, MC_PERSON,
                      "%s: sendmail's filter name ends at a comma or a blank, so it reads "
                      "another name than this; not carried over (name it without them)",
                      what);
        return;
    }
    if (mc_filter_find(st, name)) {
        mc_report_add(st->report, ev->loc, MC_WARNING,
                      "%s: declared before; sendmail keeps the first definition (duplicate "
                      "filter definition), and so does this translation",
                      what);
        return;
    }
    if (st->n_milters == MC_MAX_MILTERS) {
        mc_report_add(st->report, ev->loc, MC_PERSON,
                      "%s: more than %d filters (sendmail's MAXFILTERS); not carried over", what,
                      MC_MAX_MILTERS);
        return;
    }
    if (!mc_equates(equates, sock, flags, times, sizeof(sock), &unknown)) {
        mc_report_add(st->report, ev->loc, MC_PERSON,
                      "%s: '%s' has a field without '=': sendmail defines no filter then "
                      "(`=' expected); not carried over",
                      what, equates);
        return;
    }
    if (!sock[0] || (why = mc_milter_socket(sock, socket, sizeof(socket)))) {
        mc_report_add(st->report, ev->loc, MC_PERSON, "%s: S=%s: %s; not carried over", what, sock,
                      sock[0] ? why : "no socket (sendmail: empty or missing socket information)");
        return;
    }
    if (unknown)
        mc_report_add(st->report, ev->loc, MC_WARNING,
                      "%s: %c= is no filter equate sendmail knows (S=, F=, T=); ignored", what,
                      unknown);
    struct mc_yaml *item = mc_yaml_add_map(st->yaml, "milters", false);
    if (!item)
        return;
    struct mc_filter *f = &st->milters[st->n_milters++];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->input = input;
    mc_yaml_set(item, "name", name, false, NULL);
    mc_yaml_set(item, "socket", socket, false, NULL);
    const char *on_fail = mc_on_fail(st, what, flags, ev->loc);
    if (on_fail)
        mc_yaml_set(item, "on_fail", on_fail, false, NULL);
    if (times[0])
        mc_timeouts(st, item, what, times, ev->loc);
    if (!input)
        mc_yaml_set(item, "input", "false", false, NULL);
    mc_report_add(st->report, ev->loc, MC_TRANSLATED, "%s -> milters[%zu]%s", what,
                  st->n_milters - 1,
                  input ? "" : " (input: false: declared, run where a list names it)");
    if (input) { /* cfhead.m4: INPUT_MAIL_FILTER appends the name to confINPUT_MAIL_FILTERS */
        size_t n = strlen(st->input_filters);
        snprintf(st->input_filters + n, sizeof(st->input_filters) - n, "%s%s", n ? ", " : "", name);
        if (mc_m4_define(st->m4, "confINPUT_MAIL_FILTERS", st->input_filters) < 0)
            mc_report_add(st->report, ev->loc, MC_ERROR, "out of memory");
    }
}

void mc_milter_define(struct mc_state *st, const char *name, const char *value, struct mc_loc loc)
{
    char key[64], word[128];
    const char *p = value;
    if (strcmp(name, "confINPUT_MAIL_FILTERS") == 0) {
        snprintf(st->input_filters, sizeof(st->input_filters), "%s", value);
        st->input_filters_set = true;
        mc_save_loc(&st->input_filters_at, loc);
        mc_report_add(st->report, loc, MC_TRANSLATED,
                      "define(%s): the filters that run, in order (an INPUT_MAIL_FILTER after "
                      "it adds its own); input_mail_filters at the end of the report",
                      name);
        return;
    }
    if (!mc_macro_key(name, key, sizeof(key)))
        return;
    mc_yaml_set_list(st->yaml, key, false);
    size_t n = 0;
    while (mc_next_word(&p, word, sizeof(word))) {
        if (!mc_milter_macro_ok(word)) {
            mc_report_add(st->report, loc, MC_WARNING,
                          "define(%s): '%s' is not a macro name (x or {name}); sendmail refuses "
                          "it too (Invalid macro/class character); left out",
                          name, word);
            continue;
        }
        mc_yaml_add(st->yaml, key, word, false, NULL);
        n++;
    }
    mc_report_add(st->report, loc, MC_TRANSLATED, "define(%s) -> %s (%zu macro%s)", name, key, n,
                  n == 1 ? "" : "s");
}

void mc_milter_undefine(struct mc_state *st, const char *name, struct mc_loc loc)
{
    char key[64];
    if (strcmp(name, "confINPUT_MAIL_FILTERS") == 0) {
        st->input_filters[0] = '\0';
        st->input_filters_set = true;
        mc_save_loc(&st->input_filters_at, loc);
        mc_report_add(st->report, loc, MC_TRANSLATED,
                      "undefine(%s): no filter runs unless an INPUT_MAIL_FILTER after it adds "
                      "one",
                      name);
        return;
    }
    if (!mc_macro_key(name, key, sizeof(key)))
        return;
    /* proto.m4 then writes the option commented out: sendmail sends no macros at that step */
    mc_yaml_set_list(st->yaml, key, false);
    mc_report_add(st->report, loc, MC_TRANSLATED, "undefine(%s) -> %s = [] (no macros)", name, key);
}

/* The names of `spec` (split at ',', ';' and blanks, as milter_config()) that are declared,
 * once each, into the list at `key` under `node`; the others reported. */
static void mc_filter_list(struct mc_state *st, struct mc_yaml *node, const char *key,
                           const char *spec, const char *what, bool future, struct mc_loc loc)
{
    char copy[1024], *save = NULL, seen[1024] = " ";
    snprintf(copy, sizeof(copy), "%s", spec);
    mc_yaml_set_list(node, key, future);
    for (char *w = strtok_r(copy, ",; \t", &save); w; w = strtok_r(NULL, ",; \t", &save)) {
        char word[80];
        snprintf(word, sizeof(word), " %s ", w);
        if (!mc_filter_find(st, w)) {
            mc_report_add(st->report, loc, MC_PERSON,
                          "%s: '%s' is no filter INPUT_MAIL_FILTER or MAIL_FILTER declared "
                          "(sendmail: InputFilter %s not defined); left out",
                          what, w, w);
        } else if (strstr(seen, word)) {
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: '%s' is named twice; it runs once, at its first place", what, w);
        } else {
            mc_yaml_add(node, key, w, future, NULL);
            snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "%s ", w);
        }
    }
}

void mc_milters_finish(struct mc_state *st)
{
    /* Only INPUT_MAIL_FILTERs: the list is milters[]' input ones, ringmaild's default. */
    if (!st->input_filters_set)
        return;
    struct mc_loc at = mc_saved(&st->input_filters_at);
    mc_filter_list(st, st->yaml, "input_mail_filters", st->input_filters, "confINPUT_MAIL_FILTERS",
                   false, at);
    mc_report_add(st->report, at, MC_TRANSLATED,
                  "confINPUT_MAIL_FILTERS = '%s' -> input_mail_filters", st->input_filters);
}

void mc_milter_listener(struct mc_state *st, struct mc_yaml *item, const struct mc_daemon *d,
                        size_t index, bool live)
{
    char what[sizeof(d->filters) + 64];
    struct mc_loc loc = mc_saved(&d->at);
    if (!d->has_filters)
        return;
    snprintf(what, sizeof(what), "listen[%zu]: InputMailFilters=%s", index, d->filters);
    mc_filter_list(st, item, "input_mail_filters", d->filters, what, !live, loc);
    if (live)
        mc_report_add(st->report, loc, MC_TRANSLATED, "%s -> listen[%zu].input_mail_filters", what,
                      index);
}
