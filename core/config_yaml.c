/*
 * core/config_yaml.c — the first pass over a configuration file, with libyaml's events.
 *
 * libcyaml reports a problem with the position of the event before it (an unknown key on
 * line 3 is reported on line 2) and without the dotted key path, so this pass walks the
 * same schema first: every problem libcyaml could find in the document's shape is found
 * here, at the right line and column, and the position of every value is kept so that the
 * value checks made after libcyaml has loaded the strings can point at them too.
 */
#include "core/config_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define CONFIG_PATH_MAX 256
#define CONFIG_KEYS_MAX 64 /* keys in one mapping of the schema (config_keys.c) */

struct config_scan {
    const char *file;
    const unsigned char *data;
    yaml_parser_t parser;
    yaml_event_t ev; /* the current event; ev.type is YAML_NO_EVENT when there is none */
    struct config_doc *doc;
    char path[CONFIG_PATH_MAX];
    char *err;
    size_t errlen;
};

static void config_scan_fail(struct config_scan *s, yaml_mark_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void config_scan_fail(struct config_scan *s, yaml_mark_t at, const char *fmt, ...)
{
    int n = snprintf(s->err, s->errlen, "%s:%zu:%zu: ", s->file, at.line + 1, at.column + 1);
    if (n < 0 || (size_t)n >= s->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err + n, s->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* libyaml's reader (bad UTF-8, NUL) gives a byte offset rather than a mark. */
static yaml_mark_t config_scan_offset_mark(const struct config_scan *s, size_t offset)
{
    yaml_mark_t m = {0};
    for (size_t i = 0; i < offset; i++) {
        if (s->data[i] == '\n') {
            m.line++;
            m.column = 0;
        } else {
            m.column++;
        }
    }
    return m;
}

static int config_scan_next(struct config_scan *s)
{
    yaml_event_delete(&s->ev);
    if (yaml_parser_parse(&s->parser, &s->ev))
        return 0;
    s->ev.type = YAML_NO_EVENT;
    const yaml_parser_t *p = &s->parser;
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(s->err, s->errlen, "%s: out of memory", s->file);
        return -1;
    }
    yaml_mark_t at = p->error == YAML_READER_ERROR ? config_scan_offset_mark(s, p->problem_offset)
                                                   : p->problem_mark;
    char where[CONFIG_PATH_MAX + 16] = "";
    if (s->path[0])
        snprintf(where, sizeof(where), " in '%s'", s->path);
    if (p->context)
        config_scan_fail(s, at, "YAML syntax error%s: %s (%s at line %zu column %zu)", where,
                         p->problem ? p->problem : "?", p->context, p->context_mark.line + 1,
                         p->context_mark.column + 1);
    else
        config_scan_fail(s, at, "YAML syntax error%s: %s", where, p->problem ? p->problem : "?");
    return -1;
}

static int config_scan_record(struct config_scan *s)
{
    struct config_doc *d = s->doc;
    struct config_pos *grown = realloc(d->pos, (d->n + 1) * sizeof(*grown));
    if (!grown)
        goto oom;
    d->pos = grown;
    grown[d->n].path = strdup(s->path);
    /* kept for the keys libcyaml skips (CONFIG_F_OR_ONE) */
    grown[d->n].text =
        s->ev.type == YAML_SCALAR_EVENT ? strdup((const char *)s->ev.data.scalar.value) : NULL;
    if (!grown[d->n].path || (s->ev.type == YAML_SCALAR_EVENT && !grown[d->n].text)) {
        free(grown[d->n].path);
        free(grown[d->n].text);
        goto oom;
    }
    grown[d->n].line = (unsigned)s->ev.start_mark.line + 1;
    grown[d->n].column = (unsigned)s->ev.start_mark.column + 1;
    d->n++;
    return 0;
oom:
    snprintf(s->err, s->errlen, "%s: out of memory", s->file);
    return -1;
}

/* Appends ".name" (or "[i]") to the path; returns the old length to cut back to. */
static size_t config_scan_push_key(struct config_scan *s, const char *name)
{
    size_t len = strlen(s->path);
    snprintf(s->path + len, sizeof(s->path) - len, "%s%s", len ? "." : "", name);
    return len;
}

static size_t config_scan_push_index(struct config_scan *s, long index)
{
    size_t len = strlen(s->path);
    snprintf(s->path + len, sizeof(s->path) - len, "[%ld]", index);
    return len;
}

static const char *config_scan_shape(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return "a single value";
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    default:
        return "something else";
    }
}

static int config_scan_wrong(struct config_scan *s, const struct config_key *k, bool item)
{
    char expect[256];
    config_key_expect(k, item, expect, sizeof(expect));
    if (s->ev.type == YAML_ALIAS_EVENT)
        config_scan_fail(s, s->ev.start_mark, "key '%s': aliases (*%s) are not supported", s->path,
                         (const char *)s->ev.data.alias.anchor);
    else
        config_scan_fail(s, s->ev.start_mark, "key '%s': expected %s, got %s", s->path, expect,
                         config_scan_shape(&s->ev));
    return -1;
}

static int config_scan_mapping(struct config_scan *s, const struct config_key *keys, size_t n);

/* The current event starts the value of `k` (or an item of it, when `item`). */
static int config_scan_value(struct config_scan *s, const struct config_key *k, bool item)
{
    bool list = (k->flags & CONFIG_F_LIST) && !item &&
                !((k->flags & CONFIG_F_OR_ONE) && s->ev.type == YAML_SCALAR_EVENT);
    if (list) {
        if (s->ev.type != YAML_SEQUENCE_START_EVENT)
            return config_scan_wrong(s, k, false);
        if (config_scan_record(s) < 0)
            return -1;
        for (long i = 0;; i++) {
            if (config_scan_next(s) < 0)
                return -1;
            if (s->ev.type == YAML_SEQUENCE_END_EVENT)
                return 0;
            size_t cut = config_scan_push_index(s, i);
            int rc = config_scan_value(s, k, true);
            s->path[cut] = '\0';
            if (rc < 0)
                return -1;
        }
    }
    if (k->type == CONFIG_SECTION || k->type == CONFIG_MAPS) {
        if (s->ev.type != YAML_MAPPING_START_EVENT)
            return config_scan_wrong(s, k, item);
        return config_scan_record(s) < 0 ? -1 : config_scan_mapping(s, k->sub, k->n_sub);
    }
    if (s->ev.type != YAML_SCALAR_EVENT)
        return config_scan_wrong(s, k, item);
    return config_scan_record(s);
}

/* An empty value is the same as leaving the key out (libcyaml loads it as NULL). */
static bool config_scan_empty(const yaml_event_t *ev)
{
    return ev->type == YAML_SCALAR_EVENT && ev->data.scalar.length == 0;
}

/* The current event is MAPPING_START; consumes up to its MAPPING_END. */
static int config_scan_mapping(struct config_scan *s, const struct config_key *keys, size_t n)
{
    yaml_mark_t seen[CONFIG_KEYS_MAX];
    bool given[CONFIG_KEYS_MAX] = {false};
    for (;;) {
        if (config_scan_next(s) < 0)
            return -1;
        if (s->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        if (s->ev.type != YAML_SCALAR_EVENT) {
            config_scan_fail(s, s->ev.start_mark, "%s%s%s: a key must be a plain name, got %s",
                             s->path[0] ? "in '" : "at the top", s->path, s->path[0] ? "'" : "",
                             config_scan_shape(&s->ev));
            return -1;
        }
        const char *name = (const char *)s->ev.data.scalar.value;
        const struct config_key *k = config_key_find(keys, n, name);
        size_t cut = config_scan_push_key(s, name);
        if (!k) {
            char known[512];
            config_keys_known(keys, n, known, sizeof(known));
            config_scan_fail(s, s->ev.start_mark, "unknown key '%s' (known: %s)", s->path, known);
            return -1;
        }
        size_t idx = (size_t)(k - keys);
        if (given[idx]) {
            config_scan_fail(s, s->ev.start_mark, "key '%s': given twice (first at line %zu)",
                             s->path, seen[idx].line + 1);
            return -1;
        }
        given[idx] = true;
        seen[idx] = s->ev.start_mark;
        if (config_scan_next(s) < 0)
            return -1;
        if (!config_scan_empty(&s->ev) && config_scan_value(s, k, false) < 0)
            return -1;
        s->path[cut] = '\0';
    }
}

static int config_scan_document(struct config_scan *s)
{
    if (config_scan_next(s) < 0) /* STREAM_START */
        return -1;
    if (config_scan_next(s) < 0)
        return -1;
    if (s->ev.type == YAML_STREAM_END_EVENT) /* nothing but comments */
        return 0;
    if (config_scan_next(s) < 0) /* past DOCUMENT_START */
        return -1;
    if (s->ev.type == YAML_MAPPING_START_EVENT) {
        if (config_scan_mapping(s, config_keys, config_n_keys) < 0)
            return -1;
    } else if (!config_scan_empty(&s->ev)) {
        char known[512];
        config_keys_known(config_keys, config_n_keys, known, sizeof(known));
        config_scan_fail(s, s->ev.start_mark, "expected a mapping of keys (known: %s), got %s",
                         known, config_scan_shape(&s->ev));
        return -1;
    }
    if (config_scan_next(s) < 0 || config_scan_next(s) < 0) /* DOCUMENT_END, then what follows */
        return -1;
    if (s->ev.type != YAML_STREAM_END_EVENT) {
        config_scan_fail(s, s->ev.start_mark,
                         "a second YAML document: the configuration is one document");
        return -1;
    }
    return 0;
}

int config_yaml_scan(const char *file, const unsigned char *data, size_t len,
                     struct config_doc *doc, char *err, size_t errlen)
{
    struct config_scan s = {.file = file, .data = data, .doc = doc, .err = err, .errlen = errlen};
    doc->pos = NULL;
    doc->n = 0;
    if (!yaml_parser_initialize(&s.parser)) {
        snprintf(err, errlen, "%s: out of memory", file);
        return -1;
    }
    yaml_parser_set_input_string(&s.parser, data, len);
    int rc = config_scan_document(&s);
    yaml_event_delete(&s.ev);
    yaml_parser_delete(&s.parser);
    if (rc < 0)
        config_doc_free(doc);
    return rc;
}

const struct config_pos *config_doc_find(const struct config_doc *doc, const char *path)
{
    for (size_t i = 0; i < doc->n; i++)
        if (strcmp(doc->pos[i].path, path) == 0)
            return &doc->pos[i];
    return NULL;
}

void config_doc_free(struct config_doc *doc)
{
    for (size_t i = 0; i < doc->n; i++) {
        free(doc->pos[i].path);
        free(doc->pos[i].text);
    }
    free(doc->pos);
    doc->pos = NULL;
    doc->n = 0;
}
