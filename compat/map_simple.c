#include "compat/map_simple.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat/map_text.h"

static bool map_simple_domain_ok(const char *s)
{
    return *s && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.[]:") == strlen(s);
}

/* What follows "error:": a reply (5.1.1:550 text) or one of sendmail's named errors
 * (nouser, unavailable, ...: letters first); NULL when good. */
static const char *map_simple_error_bad(const char *after)
{
    const char *why = NULL, *msg;
    char code[4], dsn[16];
    if (isalpha((unsigned char)after[0]))
        return NULL;
    return map_parse_error(after, code, dsn, &msg, &why) < 0 ? why : NULL;
}

/* "mailer:host", "local:" or "error:..." */
static const char *mailertable_value_bad(const char *v)
{
    size_t m = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
    if (m == 0 || v[m] != ':')
        return "expected mailer:host, like smtp:[mx.example.com] or esmtp:relay.example.com";
    const char *host = v + m + 1;
    if (m == 5 && strncasecmp(v, "error", 5) == 0)
        return map_simple_error_bad(host);
    if (m == 5 && strncasecmp(v, "local", 5) == 0)
        return NULL; /* local: or local:user */
    if (*host == '\0')
        return "the mailer needs a host after ':'";
    if (*host == '[') {
        const char *close = strchr(host, ']');
        if (!close)
            return "unbalanced '[' in the host";
        host = close + 1;
        if (*host == ':' && strspn(host + 1, "0123456789") == strlen(host + 1) && host[1])
            return NULL;
        return *host ? "expected [host] or [host]:port" : NULL;
    }
    return strpbrk(host, " \t") ? "white space in the host" : NULL;
}

static const char *map_simple_entry_bad(enum map_simple_kind kind, const char *key,
                                        const char *value)
{
    const char *at = strrchr(key, '@');
    switch (kind) {
    case MAP_MAILERTABLE:
        if (!map_simple_domain_ok(key))
            return "the key must be a domain, .domain or '.'";
        return mailertable_value_bad(value);
    case MAP_VIRTUSERTABLE:
        if (!at || !map_simple_domain_ok(at + 1))
            return "the key must be user@domain or @domain";
        break;
    case MAP_GENERICSTABLE:
        if (at && !map_simple_domain_ok(at + 1))
            return "the key must be user or user@domain";
        break;
    }
    return strncasecmp(value, "error:", 6) == 0 ? map_simple_error_bad(value + 6) : NULL;
}

static int map_simple_line(void *ctx, struct map_reader *r, char *line, unsigned lineno)
{
    struct map_simple *out = ctx;
    char *key, *value;
    map_split(line, &key, &value);
    if (!*value)
        return map_fail(r, lineno, "'%s' has no value", key);
    char *lower = map_strdup_lower(key);
    const char *why = lower ? map_simple_entry_bad(out->kind, lower, value) : "out of memory";
    if (why || map_grow((void **)&out->v, &out->cap, out->n, sizeof(*out->v)) < 0) {
        free(lower);
        return map_fail(r, lineno, "'%s %s': %s", key, value, why ? why : "out of memory");
    }
    struct map_simple_entry *e = &out->v[out->n++];
    e->key = lower;
    e->value = strdup(value);
    e->line = lineno;
    return e->value ? 0 : map_fail(r, lineno, "out of memory");
}

int map_simple_parse(enum map_simple_kind kind, const char *file, const char *text, size_t len,
                     struct map_simple *out, char *err, size_t errlen)
{
    out->kind = kind;
    return map_each_line(file, text, len, false, err, errlen, map_simple_line, out);
}

void map_simple_free(struct map_simple *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        free(m->v[i].value);
    }
    free(m->v);
    m->v = NULL;
    m->n = m->cap = 0;
}

const struct map_simple_entry *map_simple_get(const struct map_simple *m, const char *key)
{
    for (size_t i = m->n; i-- > 0;)
        if (strcasecmp(m->v[i].key, key) == 0)
            return &m->v[i];
    return NULL;
}

const struct map_simple_entry *mailertable_lookup(const struct map_simple *m, const char *host)
{
    const struct map_simple_entry *e = map_simple_get(m, host);
    for (const char *d = strchr(host, '.'); !e && d; d = strchr(d + 1, '.'))
        e = map_simple_get(m, d);
    return e ? e : map_simple_get(m, ".");
}

/* Copies `value` into out with %1 %2 %3 replaced; -1 when it does not fit. */
static int virtuser_expand(const char *value, const char *user, const char *detail, char *out,
                           size_t outlen)
{
    struct buf b;
    buf_init(&b, outlen);
    int rc = 0;
    for (const char *p = value; *p && rc == 0; p++) {
        if (p[0] == '%' && p[1] >= '1' && p[1] <= '3') {
            const char *sub = p[1] == '1' ? user : p[1] == '2' ? detail : NULL;
            rc = sub ? buf_printf(&b, "%s", sub)
                     : buf_printf(&b, "%s%s", *detail ? "+" : "", detail);
            p++;
        } else {
            rc = buf_append(&b, p, 1);
        }
    }
    if (rc == 0)
        rc = buf_append(&b, "", 1);
    if (rc == 0)
        memcpy(out, b.data, b.len);
    buf_free(&b);
    return rc;
}

int virtuser_lookup(const struct map_simple *m, const char *address, char *out, size_t outlen)
{
    const char *at = strrchr(address, '@');
    if (!at)
        return 0;
    char user[256], detail[256], key[768];
    const char *plus = memchr(address, '+', (size_t)(at - address));
    size_t ulen = (size_t)((plus ? plus : at) - address);
    snprintf(user, sizeof(user), "%.*s", (int)ulen, address);
    snprintf(detail, sizeof(detail), "%.*s", plus ? (int)(at - plus - 1) : 0, plus ? plus + 1 : "");
    const struct map_simple_entry *e = map_simple_get(m, address);
    if (!e && plus) {
        snprintf(key, sizeof(key), "%s+*%s", user, at);
        e = map_simple_get(m, key);
    }
    if (!e && plus) {
        snprintf(key, sizeof(key), "%s%s", user, at);
        e = map_simple_get(m, key);
    }
    if (!e)
        e = map_simple_get(m, at);
    if (!e)
        return 0;
    return virtuser_expand(e->value, user, detail, out, outlen) < 0 ? -1 : 1;
}

const struct map_simple_entry *generics_lookup(const struct map_simple *m, const char *address)
{
    const struct map_simple_entry *e = map_simple_get(m, address);
    const char *at = strrchr(address, '@');
    if (e || !at)
        return e;
    char user[256];
    snprintf(user, sizeof(user), "%.*s", (int)(at - address), address);
    return map_simple_get(m, user);
}

void map_simple_dump(const struct map_simple *m, struct buf *out)
{
    for (size_t i = 0; i < m->n; i++)
        buf_printf(out, "%u %s -> %s\n", m->v[i].line, m->v[i].key, m->v[i].value);
}
