#include "compat/map_aliases.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat/map_text.h"

static const char *const alias_kind_names[] = {"address", "include", "program", "file", "error"};

static int alias_target_parse(struct alias_target *t, char *s, const char **why)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    const char *v = s;
    t->kind = ALIAS_ADDRESS;
    if (s[0] == '|') {
        t->kind = ALIAS_PROGRAM;
        v = s + 1;
    } else if (s[0] == '/') {
        t->kind = ALIAS_FILE;
    } else if (strncasecmp(s, ":include:", 9) == 0) {
        t->kind = ALIAS_INCLUDE;
        v = s + 9;
        if (v[0] != '/') {
            *why = ":include: needs an absolute path";
            return -1;
        }
    } else if (strncasecmp(s, "error:", 6) == 0) {
        t->kind = ALIAS_ERROR;
        if (map_parse_error(s + 6, t->code, t->dsn, &v, why) < 0)
            return -1;
    } else if (strpbrk(s, " \t") != NULL) {
        *why = "an address with white space (quote a |program that has spaces)";
        return -1;
    }
    if (!*v && t->kind != ALIAS_ERROR) {
        *why = "empty target";
        return -1;
    }
    if (!(t->value = strdup(v))) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

/* Splits the right-hand side at commas outside double quotes. */
static int alias_targets_parse(struct alias *a, char *rhs, const char **why)
{
    size_t cap = 0;
    char *p = rhs;
    while (*p) {
        char *start = p;
        bool quoted = false;
        for (; *p && (quoted || *p != ','); p++)
            if (*p == '"')
                quoted = !quoted;
        if (quoted) {
            *why = "unbalanced double quote";
            return -1;
        }
        if (*p)
            *p++ = '\0';
        while (*start == ' ' || *start == '\t')
            start++;
        char *end = start + strlen(start);
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*start) /* "a, , b" and a trailing comma: newaliases skips empty items */
            continue;
        if (map_grow((void **)&a->targets, &cap, a->n_targets, sizeof(*a->targets)) < 0) {
            *why = "out of memory";
            return -1;
        }
        struct alias_target *t = &a->targets[a->n_targets];
        memset(t, 0, sizeof(*t));
        if (alias_target_parse(t, start, why) < 0)
            return -1;
        a->n_targets++;
    }
    if (a->n_targets == 0) {
        *why = "no targets";
        return -1;
    }
    return 0;
}

static int alias_line(void *ctx, struct map_reader *r, char *line, unsigned lineno)
{
    struct alias_map *out = ctx;
    char *colon = strchr(line, ':');
    const char *why = NULL;
    if (!colon || colon == line)
        return map_fail(r, lineno, "expected 'name: target, ...'");
    char *end = colon;
    while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    const struct alias *dup = aliases_lookup(out, line);
    if (dup)
        return map_fail(r, lineno, "alias '%s' is already defined at line %u", line, dup->line);
    if (map_grow((void **)&out->v, &out->cap, out->n, sizeof(*out->v)) < 0)
        return map_fail(r, lineno, "out of memory");
    struct alias *a = &out->v[out->n++];
    memset(a, 0, sizeof(*a));
    a->line = lineno;
    if (!(a->name = map_strdup_lower(line)) || alias_targets_parse(a, colon + 1, &why) < 0)
        return map_fail(r, lineno, "alias '%s': %s", line, why ? why : "out of memory");
    return 0;
}

int aliases_parse(const char *file, const char *text, size_t len, struct alias_map *out, char *err,
                  size_t errlen)
{
    return map_each_line(file, text, len, true, err, errlen, alias_line, out);
}

void aliases_free(struct alias_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        for (size_t j = 0; j < m->v[i].n_targets; j++)
            free(m->v[i].targets[j].value);
        free(m->v[i].targets);
        free(m->v[i].name);
    }
    free(m->v);
    memset(m, 0, sizeof(*m));
}

const struct alias *aliases_lookup(const struct alias_map *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].name && strcasecmp(m->v[i].name, name) == 0)
            return &m->v[i];
    return NULL;
}

void aliases_dump(const struct alias_map *m, struct buf *out)
{
    for (size_t i = 0; i < m->n; i++) {
        buf_printf(out, "%u %s:", m->v[i].line, m->v[i].name);
        for (size_t j = 0; j < m->v[i].n_targets; j++) {
            const struct alias_target *t = &m->v[i].targets[j];
            buf_printf(out, "%s %s:", j ? "," : "", alias_kind_names[t->kind]);
            if (t->kind == ALIAS_ERROR)
                buf_printf(out, "%s:%s:", t->code, t->dsn);
            buf_printf(out, "%s", t->value);
        }
        buf_printf(out, "\n");
    }
}
