#include "compat/map_aliases.h"

#include <stdbool.h>
#include <stdio.h>
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

/* A target that failed to parse, kept as an error so that the list's other targets are still
 * delivered and the bad one bounces with why (sendmail's treatment of a bad .forward line). */
static int alias_target_bad(struct alias_target *t, const char *text)
{
    t->kind = ALIAS_ERROR;
    memcpy(t->code, "550", 4);
    memcpy(t->dsn, "5.1.3", 6);
    return (t->value = strdup(text)) ? 0 : -1;
}

/* Appends the targets of one right-hand side, split at commas outside double quotes, to v.
 * With `where` (lenient), an item that does not parse becomes an ALIAS_ERROR target naming
 * `where`; without it the first bad item fails the list with why. -1 = failed (why set). */
static int alias_items_parse(struct alias_target **v, size_t *n, size_t *cap, char *rhs,
                             const char *where, const char **why)
{
    char *p = rhs;
    while (*p) {
        char *start = p;
        bool quoted = false;
        const char *bad = NULL;
        for (; *p && (quoted || *p != ','); p++)
            if (*p == '"')
                quoted = !quoted;
        if (quoted)
            bad = "unbalanced double quote";
        if (*p)
            *p++ = '\0';
        while (*start == ' ' || *start == '\t')
            start++;
        char *end = start + strlen(start);
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*start) /* "a, , b" and a trailing comma: newaliases skips empty items */
            continue;
        if (map_grow((void **)v, cap, *n, sizeof(**v)) < 0) {
            *why = "out of memory";
            return -1;
        }
        struct alias_target *t = &(*v)[*n];
        memset(t, 0, sizeof(*t));
        char item[512];
        snprintf(item, sizeof(item), "%s", start); /* the parse below cuts quotes in place */
        int rc = bad ? -1 : alias_target_parse(t, start, &bad);
        if (rc < 0 && where) {
            char text[1024];
            snprintf(text, sizeof(text), "%s: %s: %s", where, bad, item);
            free(t->value);
            memset(t, 0, sizeof(*t));
            rc = alias_target_bad(t, text);
            bad = "out of memory";
        }
        if (rc < 0) {
            *why = bad;
            return -1;
        }
        (*n)++;
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
    size_t cap = 0;
    if (!(a->name = map_strdup_lower(line)) ||
        alias_items_parse(&a->targets, &a->n_targets, &cap, colon + 1, NULL, &why) < 0)
        return map_fail(r, lineno, "alias '%s': %s", line, why ? why : "out of memory");
    if (a->n_targets == 0)
        return map_fail(r, lineno, "alias '%s': no targets", line);
    return 0;
}

static int alias_by_name(const void *a, const void *b, void *arg)
{
    const struct alias *v = arg;
    return strcmp(v[*(const size_t *)a].name, v[*(const size_t *)b].name);
}

int aliases_parse(const char *file, const char *text, size_t len, struct alias_map *out, char *err,
                  size_t errlen)
{
    if (map_each_line(file, text, len, true, err, errlen, alias_line, out) < 0)
        return -1;
    if (out->n == 0)
        return 0;
    if (!(out->by_name = malloc(out->n * sizeof(*out->by_name)))) {
        snprintf(err, errlen, "%s: out of memory", file);
        return -1;
    }
    for (size_t i = 0; i < out->n; i++)
        out->by_name[i] = i;
    /* names are unique and lower-cased: strcmp orders them as strcasecmp finds them */
    qsort_r(out->by_name, out->n, sizeof(*out->by_name), alias_by_name, out->v);
    return 0;
}

int aliases_parse_targets(const char *file, const char *text, size_t len, struct alias_list *out)
{
    struct map_reader r;
    struct buf line;
    char err[256], where[300];
    unsigned lineno;
    const char *why = NULL;
    int rc;
    map_reader_init(&r, file, text, len, err, sizeof(err));
    buf_init(&line, 0);
    while ((rc = map_next_line(&r, false, &line, &lineno)) > 0) {
        snprintf(where, sizeof(where), "%s:%u", file, lineno);
        if ((rc = alias_items_parse(&out->v, &out->n, &out->cap, line.data, where, &why)) < 0)
            break;
    }
    buf_free(&line);
    if (rc < 0 && !why) { /* a NUL byte: the rest of the text is not read */
        if (map_grow((void **)&out->v, &out->cap, out->n, sizeof(*out->v)) < 0)
            return -1;
        memset(&out->v[out->n], 0, sizeof(*out->v));
        rc = alias_target_bad(&out->v[out->n], err);
        out->n += rc == 0;
    }
    return rc < 0 ? -1 : 0;
}

static void alias_targets_free(struct alias_target *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].value);
    free(v);
}

void alias_list_free(struct alias_list *l)
{
    alias_targets_free(l->v, l->n);
    memset(l, 0, sizeof(*l));
}

void aliases_free(struct alias_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        alias_targets_free(m->v[i].targets, m->v[i].n_targets);
        free(m->v[i].name);
    }
    free(m->v);
    free(m->by_name);
    memset(m, 0, sizeof(*m));
}

const struct alias *aliases_lookup(const struct alias_map *m, const char *name)
{
    if (!m->by_name) { /* while parsing: the duplicate check */
        for (size_t i = 0; i < m->n; i++)
            if (m->v[i].name && strcasecmp(m->v[i].name, name) == 0)
                return &m->v[i];
        return NULL;
    }
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct alias *a = &m->v[m->by_name[mid]];
        int c = strcasecmp(name, a->name);
        if (c == 0)
            return a;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
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
