/*
 * core/config_milter.c — the mail filter keys (milters, input_mail_filters, milter_macros,
 * listen[].input_mail_filters) checked as sendmail's milter_setup() and milter_config() read
 * their .cf forms, and each listener's struct milter_settings (policy/milter.h) built from
 * them, so that a session finds its filters in order without looking anything up.
 */
#include "core/config.h"
#include "core/config_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat/mc_milter_syntax.h"

/* sendmail's MAXFILTERS and MAXFILTERMACROS: what a sendmail.cf could hold. */
#define CONFIG_MILTERS_MAX       25
#define CONFIG_MILTER_MACROS_MAX 50

static const char *const config_milter_steps[MILTER_MACROS_N] = {
    [MILTER_MACROS_CONNECT] = "connect", [MILTER_MACROS_HELO] = "helo",
    [MILTER_MACROS_ENVFROM] = "envfrom", [MILTER_MACROS_ENVRCPT] = "envrcpt",
    [MILTER_MACROS_DATA] = "data",       [MILTER_MACROS_EOH] = "eoh",
    [MILTER_MACROS_EOM] = "eom",
};

struct config_milter_err {
    char *key, *why;
    size_t keylen, whylen;
};

static int config_milter_fail(const struct config_milter_err *e, const char *key, const char *fmt,
                              ...) __attribute__((format(printf, 3, 4)));

static int config_milter_fail(const struct config_milter_err *e, const char *key, const char *fmt,
                              ...)
{
    va_list ap;
    snprintf(e->key, e->keylen, "%s", key);
    va_start(ap, fmt);
    vsnprintf(e->why, e->whylen, fmt, ap);
    va_end(ap);
    return -1;
}

static int config_milter_oom(const struct config_milter_err *e)
{
    e->why[0] = '\0';
    return -1;
}

/* sendmail ends a name at a comma or a blank, and splits InputMailFilters at ',' and ';'. */
static bool config_milter_name_ok(const char *name)
{
    return name[0] && !name[strcspn(name, ",; \t\r\n")];
}

/* The scheme lower-cased in place, as the session glue compares it; unlike sendmail's S=, a
 * scheme is required (the translator writes a bare path as local:). */
static const char *config_milter_socket(char *socket)
{
    char out[512];
    const char *why;
    if (!strchr(socket, ':') || socket[0] == ':')
        return "expected a scheme: unix:/path, local:/path, inet:port@host or inet6:port@host";
    if (strlen(socket) >= sizeof(out))
        return "longer than any usable socket";
    if ((why = mc_milter_socket(socket, out, sizeof(out))))
        return why;
    memcpy(socket, out, strlen(socket)); /* the same length: only the case changed */
    return NULL;
}

static int config_milter_check(struct config_milter *m, size_t i, const struct config *c,
                               const struct config_milter_err *e)
{
    static const struct {
        const char *word;
        enum milter_on_fail on_fail;
    } on_fail[] = {{"continue", MILTER_FAIL_CONTINUE},
                   {"tempfail", MILTER_FAIL_TEMPFAIL},
                   {"reject", MILTER_FAIL_REJECT}};
    char key[64];
    const char *why;
    snprintf(key, sizeof(key), "milters[%zu].name", i);
    if (!m->filter.name)
        return config_milter_fail(e, key, "expected the filter's name");
    if (!config_milter_name_ok(m->filter.name))
        return config_milter_fail(e, key, "'%s': a name has no blanks, ',' or ';'", m->filter.name);
    for (size_t j = 0; j < i; j++)
        if (strcmp(c->milters[j].filter.name, m->filter.name) == 0)
            return config_milter_fail(e, key, "'%s' is already the name of milters[%zu]",
                                      m->filter.name, j);
    snprintf(key, sizeof(key), "milters[%zu].socket", i);
    if (!m->filter.socket)
        return config_milter_fail(e, key,
                                  "expected where the filter listens, like "
                                  "inet:8891@localhost or unix:/run/filter.sock");
    /* the key table stores a char * there: this config's own string */
    if ((why = config_milter_socket((char *)(uintptr_t)m->filter.socket)))
        return config_milter_fail(e, key, "'%s': %s", m->filter.socket, why);
    for (size_t k = 0; k < sizeof(on_fail) / sizeof(on_fail[0]); k++)
        if (strcmp(m->on_fail, on_fail[k].word) == 0) {
            m->filter.on_fail = on_fail[k].on_fail;
            return 0;
        }
    snprintf(key, sizeof(key), "milters[%zu].on_fail", i);
    return config_milter_fail(e, key, "'%s': expected continue, tempfail or reject", m->on_fail);
}

static const struct config_milter *config_milter_find(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->n_milters; i++)
        if (strcmp(c->milters[i].filter.name, name) == 0)
            return &c->milters[i];
    return NULL;
}

/* Each name declared and named once: sendmail refuses an undeclared one ("InputFilter x not
 * defined"), and one filter asked twice would see every message twice. */
static int config_milter_names(const struct config *c, const struct config_words *w,
                               const char *path, const struct config_milter_err *e)
{
    char key[300];
    for (size_t i = 0; i < w->n; i++) {
        snprintf(key, sizeof(key), "%s[%zu]", path, i);
        if (!config_milter_find(c, w->v[i]))
            return config_milter_fail(e, key, "'%s' is not the name of any of milters[]", w->v[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(w->v[j], w->v[i]) == 0)
                return config_milter_fail(e, key, "'%s' is already %s[%zu]", w->v[i], path, j);
    }
    return 0;
}

static int config_milter_copy(struct config_words *to, const struct config_words *from)
{
    if (from->n == 0)
        return 0;
    if (!(to->v = calloc(from->n, sizeof(char *))))
        return -1;
    for (; to->n < from->n; to->n++)
        if (!(to->v[to->n] = strdup(from->v[to->n])))
            return -1;
    return 0;
}

/* Not given: every filter declared with input: true (INPUT_MAIL_FILTER), in order. */
static int config_milter_inputs(struct config *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_milters; i++)
        n += c->milters[i].input;
    if (n == 0)
        return 0;
    if (!(c->input_mail_filters.v = calloc(n, sizeof(char *))))
        return -1;
    for (size_t i = 0; i < c->n_milters; i++)
        if (c->milters[i].input && !(c->input_mail_filters.v[c->input_mail_filters.n++] =
                                         strdup(c->milters[i].filter.name)))
            return -1;
    return 0;
}

static int config_milter_macros(const struct config *c, const struct config_milter_err *e)
{
    char key[64];
    for (size_t s = 0; s < MILTER_MACROS_N; s++) {
        const struct config_words *w = &c->milter_macros[s];
        if (w->n > CONFIG_MILTER_MACROS_MAX) {
            snprintf(key, sizeof(key), "milter_macros.%s", config_milter_steps[s]);
            return config_milter_fail(e, key, "at most %d macros (sendmail's MAXFILTERMACROS)",
                                      CONFIG_MILTER_MACROS_MAX);
        }
        for (size_t i = 0; i < w->n; i++) {
            snprintf(key, sizeof(key), "milter_macros.%s[%zu]", config_milter_steps[s], i);
            if (!mc_milter_macro_ok(w->v[i]))
                return config_milter_fail(e, key,
                                          "'%s': expected a macro name as sendmail writes it: "
                                          "one character (j, _) or {name} (letters, digits, _)",
                                          w->v[i]);
        }
    }
    return 0;
}

/* The listener's filters as values, in its order, and the macro lists (the config's). */
static int config_milter_settings(const struct config *c, struct config_listener *l)
{
    struct milter_settings *ms = &l->milter;
    const struct config_words *w = &l->input_mail_filters;
    struct milter_filter *filters = w->n ? calloc(w->n, sizeof(*filters)) : NULL;
    if (w->n && !filters)
        return -1;
    for (size_t i = 0; i < w->n; i++)
        filters[i] = config_milter_find(c, w->v[i])->filter;
    ms->filters = filters;
    ms->n_filters = w->n;
    for (size_t s = 0; s < MILTER_MACROS_N; s++)
        ms->macros[s] = (struct milter_macro_list){(const char *const *)c->milter_macros[s].v,
                                                   c->milter_macros[s].n};
    return 0;
}

int config_milters_load(struct config *c, const struct config_doc *doc, char *key, size_t keylen,
                        char *why, size_t whylen)
{
    const struct config_milter_err e = {key, why, keylen, whylen};
    char path[64];
    if (c->n_milters > CONFIG_MILTERS_MAX)
        return config_milter_fail(&e, "milters", "at most %d filters (sendmail's MAXFILTERS)",
                                  CONFIG_MILTERS_MAX);
    for (size_t i = 0; i < c->n_milters; i++)
        if (config_milter_check(&c->milters[i], i, c, &e) < 0)
            return -1;
    if (!config_doc_find(doc, "input_mail_filters") && config_milter_inputs(c) < 0)
        return config_milter_oom(&e);
    if (config_milter_names(c, &c->input_mail_filters, "input_mail_filters", &e) < 0 ||
        config_milter_macros(c, &e) < 0)
        return -1;
    for (size_t j = 0; j < c->n_listen; j++) {
        struct config_listener *l = &c->listen[j];
        snprintf(path, sizeof(path), "listen[%zu].input_mail_filters", j);
        if (!config_doc_find(doc, path)) {
            if (config_milter_copy(&l->input_mail_filters, &c->input_mail_filters) < 0)
                return config_milter_oom(&e);
        } else if (config_milter_names(c, &l->input_mail_filters, path, &e) < 0) {
            return -1;
        }
        if (config_milter_settings(c, l) < 0)
            return config_milter_oom(&e);
    }
    return 0;
}

void config_milters_free(struct config *c)
{
    for (size_t j = 0; j < c->n_listen; j++)
        free((void *)(uintptr_t)c->listen[j].milter.filters);
}
