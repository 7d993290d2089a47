#include "compat/map_text.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void map_reader_init(struct map_reader *r, const char *file, const char *data, size_t len,
                     char *err, size_t errlen)
{
    r->file = file;
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->line = 0;
    r->err = err;
    r->errlen = errlen;
}

int map_fail(struct map_reader *r, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(r->err, r->errlen, "%s:%u: ", r->file, line);
    if (n >= 0 && (size_t)n < r->errlen) {
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* One physical line appended to `line`; 0 at end of text. */
static int map_physical(struct map_reader *r, struct buf *line)
{
    if (r->pos >= r->len)
        return 0;
    r->line++;
    const char *start = r->data + r->pos;
    const char *nl = memchr(start, '\n', r->len - r->pos);
    size_t n = nl ? (size_t)(nl - start) : r->len - r->pos;
    if (memchr(start, '\0', n) != NULL)
        return map_fail(r, r->line, "NUL byte in the line");
    r->pos += n + (nl != NULL);
    if (n > 0 && start[n - 1] == '\r')
        n--;
    if (buf_append(line, start, n) < 0)
        return map_fail(r, r->line, "out of memory");
    return 1;
}

static bool map_blank(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i == n || s[i] == '#';
}

int map_next_line(struct map_reader *r, bool continuation, struct buf *line, unsigned *lineno)
{
    int rc;
    do {
        line->len = 0;
        if ((rc = map_physical(r, line)) <= 0)
            return rc;
    } while (map_blank(line->data, line->len) ||
             (continuation && (line->data[0] == ' ' || line->data[0] == '\t')));
    *lineno = r->line;
    while (continuation && r->pos < r->len && (r->data[r->pos] == ' ' || r->data[r->pos] == '\t')) {
        size_t before = line->len;
        if ((rc = map_physical(r, line)) < 0)
            return rc;
        /* A comment line inside a continued entry ends nothing; drop it. */
        if (map_blank(line->data + before, line->len - before))
            line->len = before;
    }
    if (buf_append(line, "", 1) < 0)
        return map_fail(r, r->line, "out of memory");
    line->len--;
    return 1;
}

int map_each_line(const char *file, const char *text, size_t len, bool continuation, char *err,
                  size_t errlen, map_line_fn fn, void *ctx)
{
    struct map_reader r;
    struct buf line;
    unsigned lineno;
    int rc;
    map_reader_init(&r, file, text, len, err, errlen);
    buf_init(&line, 0);
    while ((rc = map_next_line(&r, continuation, &line, &lineno)) > 0)
        if ((rc = fn(ctx, &r, line.data, lineno)) < 0)
            break;
    buf_free(&line);
    return rc < 0 ? -1 : 0;
}

void map_split(char *line, char **key, char **value)
{
    char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    *key = p;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    if (*p)
        *p++ = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    *value = p;
    char *end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
}

char *map_strdup_lower(const char *s)
{
    char *d = strdup(s);
    for (char *p = d; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static bool map_is_code(const char *s)
{
    return (s[0] == '4' || s[0] == '5') && isdigit((unsigned char)s[1]) &&
           isdigit((unsigned char)s[2]) && !isdigit((unsigned char)s[3]);
}

/* "5.7.1" and its length, or 0. */
static size_t map_dsn_len(const char *s)
{
    size_t i = 0;
    if (s[i] != '4' && s[i] != '5')
        return 0;
    i++;
    for (int part = 0; part < 2; part++) {
        if (s[i++] != '.' || !isdigit((unsigned char)s[i]))
            return 0;
        size_t digits = 0;
        while (isdigit((unsigned char)s[i]) && digits < 3)
            i++, digits++;
    }
    return isdigit((unsigned char)s[i]) ? 0 : i;
}

int map_parse_error(const char *text, char code[4], char dsn[16], const char **msg,
                    const char **why)
{
    const char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '"')
        p++;
    dsn[0] = '\0';
    size_t d = map_dsn_len(p);
    if (d > 0 && p[d] == ':') { /* 5.7.1:550 text */
        memcpy(dsn, p, d);
        dsn[d] = '\0';
        p += d + 1;
    }
    if (!map_is_code(p)) {
        *why = "expected an SMTP code from 400 to 599, like 550 or 5.7.1:550";
        return -1;
    }
    memcpy(code, p, 3);
    code[3] = '\0';
    p += 3;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!dsn[0] && (d = map_dsn_len(p)) > 0 && (p[d] == ' ' || p[d] == '\0' || p[d] == '"')) {
        memcpy(dsn, p, d); /* 550 5.7.1 text */
        dsn[d] = '\0';
        p += d;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    if (dsn[0] && dsn[0] != code[0]) {
        *why = "the enhanced status code and the reply code disagree (4 vs 5)";
        return -1;
    }
    *msg = p;
    return 0;
}

int map_grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*v, ncap * size);
    if (!p)
        return -1;
    *v = p;
    *cap = ncap;
    return 0;
}

int map_strings_add(struct map_strings *s, const char *str)
{
    if (map_grow((void **)&s->v, &s->cap, s->n, sizeof(*s->v)) < 0)
        return -1;
    if (!(s->v[s->n] = strdup(str)))
        return -1;
    s->n++;
    return 0;
}

void map_strings_free(struct map_strings *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}
