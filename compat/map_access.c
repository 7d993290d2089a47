#include "compat/map_access.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat/map_text.h"

static const char *const access_action_names[] = {"OK",   "RELAY", "REJECT", "DISCARD",
                                                  "SKIP", "ERROR", "VALUE"};

/* The tags whose values are actions and which bare keys stand for. */
static bool access_tag_is_action(const char *tag)
{
    return !tag || !strcmp(tag, "connect") || !strcmp(tag, "from") || !strcmp(tag, "to");
}

/* Digits and dots only: a (partial) IPv4 key, which must be 1-4 octets of 0-255. */
static bool access_ipv4_bad(const char *key)
{
    if (strspn(key, "0123456789.") != strlen(key))
        return false;
    int parts = 0;
    for (const char *p = key; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v > 255 || ++parts > 4)
            return true;
        if (*end == '.' && end[1] == '\0')
            return true;
        p = *end ? end + 1 : end;
    }
    return false;
}

static int access_parse_value(struct access_entry *e, const char **why)
{
    static const enum access_action simple[] = {ACCESS_OK, ACCESS_RELAY, ACCESS_REJECT,
                                                ACCESS_DISCARD, ACCESS_SKIP};
    e->action = ACCESS_VALUE;
    if (!access_tag_is_action(e->tag))
        return 0;
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
        if (strcasecmp(e->value, access_action_names[simple[i]]) == 0) {
            e->action = simple[i];
            return 0;
        }
    if (strncasecmp(e->value, "QUARANTINE:", 11) == 0)
        return 0;
    /* "550 text" without ERROR: is the old form sendmail still honours. */
    const char *err = strncasecmp(e->value, "ERROR:", 6) == 0 ? e->value + 6 : e->value;
    const char *msg;
    if (map_parse_error(err, e->code, e->dsn, &msg, why) < 0) {
        if (err == e->value)
            *why = "expected OK, RELAY, REJECT, DISCARD, SKIP or ERROR:\"550 text\"";
        return -1;
    }
    size_t n = strlen(msg);
    if (n > 0 && msg[n - 1] == '"')
        n--;
    e->text = strndup(msg, n);
    e->action = ACCESS_ERROR;
    return e->text ? 0 : -1;
}

/* Splits "Tag:key" (a tag is letters and '_' before the first ':'; "IPv6:" is a key). */
static int access_parse_key(struct access_entry *e, const char *lhs, const char **why)
{
    const char *colon = strchr(lhs, ':');
    size_t taglen = colon ? (size_t)(colon - lhs) : 0;
    bool tagged = taglen > 0 && strspn(lhs, "abcdefghijklmnopqrstuvwxyz"
                                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == taglen;
    if (tagged && !(taglen == 4 && strncasecmp(lhs, "ipv6", 4) == 0)) {
        e->tag = strndup(lhs, taglen);
        for (char *p = e->tag; p && *p; p++)
            *p = (char)tolower((unsigned char)*p);
        lhs = colon + 1;
    }
    e->key = map_strdup_lower(lhs);
    if (!e->key || (tagged && !e->tag)) {
        *why = "out of memory";
        return -1;
    }
    /* "ClientRate:" alone is sendmail's default for that tag (proto.m4's <E:> lookup);
     * Connect:, From: and To: have no default. */
    if (e->key[0] == '\0' && (!tagged || access_tag_is_action(e->tag))) {
        *why = "empty key after the tag";
        return -1;
    }
    if (access_ipv4_bad(e->key)) {
        *why = "an IPv4 key is 1 to 4 octets from 0 to 255, like 10.1 or 192.0.2.7";
        return -1;
    }
    if (strncmp(e->key, "ipv6:", 5) == 0 &&
        (e->key[5] == '\0' || strspn(e->key + 5, "0123456789abcdef:.") != strlen(e->key + 5))) {
        *why = "an IPv6 key is IPv6: and hexadecimal groups, like IPv6:2001:db8";
        return -1;
    }
    return 0;
}

static int access_line(void *ctx, struct map_reader *r, char *line, unsigned lineno)
{
    struct access_map *out = ctx;
    char *lhs, *rhs;
    const char *why = NULL;
    map_split(line, &lhs, &rhs);
    if (!*rhs)
        return map_fail(r, lineno, "'%s' has no value", lhs);
    if (map_grow((void **)&out->v, &out->cap, out->n, sizeof(*out->v)) < 0)
        return map_fail(r, lineno, "out of memory");
    struct access_entry *e = &out->v[out->n++];
    memset(e, 0, sizeof(*e));
    e->line = lineno;
    if (!(e->value = strdup(rhs)) || access_parse_key(e, lhs, &why) < 0 ||
        access_parse_value(e, &why) < 0)
        return map_fail(r, lineno, "'%s %s': %s", lhs, rhs, why ? why : "out of memory");
    return 0;
}

/* FNV-1a over the lower-cased key: keys are stored lower-cased, probes may not be. */
static size_t access_hash(const char *key)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ (unsigned char)tolower(*p)) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

static int access_index(struct access_map *m)
{
    size_t slots = 16;
    while (slots < 2 * m->n)
        slots *= 2;
    m->head = calloc(slots, sizeof(*m->head));
    m->next = calloc(m->n ? m->n : 1, sizeof(*m->next));
    if (!m->head || !m->next)
        return -1;
    m->mask = slots - 1;
    for (size_t i = 0; i < m->n; i++) { /* later entries go in front: they win */
        size_t *h = &m->head[access_hash(m->v[i].key) & m->mask];
        m->next[i] = *h;
        *h = i + 1;
    }
    return 0;
}

int access_parse(const char *file, const char *text, size_t len, struct access_map *out, char *err,
                 size_t errlen)
{
    if (map_each_line(file, text, len, false, err, errlen, access_line, out) < 0)
        return -1;
    if (access_index(out) < 0) {
        snprintf(err, errlen, "%s: out of memory", file);
        return -1;
    }
    return 0;
}

void access_free(struct access_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].tag);
        free(m->v[i].key);
        free(m->v[i].text);
        free(m->v[i].value);
    }
    free(m->v);
    free(m->head);
    free(m->next);
    memset(m, 0, sizeof(*m));
}

/* The tagged entry for `key`, else (for Connect/From/To) the bare one. The last entry
 * for a key wins, as makemap's replace mode (-r) does. */
static const struct access_entry *access_find(const struct access_map *m, const char *tag,
                                              const char *key)
{
    const struct access_entry *bare = NULL;
    if (!m->head)
        return NULL;
    for (size_t i = m->head[access_hash(key) & m->mask]; i; i = m->next[i - 1]) {
        const struct access_entry *e = &m->v[i - 1];
        if (strcasecmp(e->key, key) != 0)
            continue;
        if (e->tag && strcasecmp(e->tag, tag) == 0)
            return e;
        if (!e->tag && !bare && access_tag_is_action(tag))
            bare = e;
    }
    return bare;
}

const struct access_entry *access_lookup_key(const struct access_map *m, const char *tag,
                                             const char *key)
{
    return access_find(m, tag, key);
}

const struct access_entry *access_lookup_host(const struct access_map *m, const char *tag,
                                              const char *host)
{
    for (const char *d = host; d && *d; d = strchr(d, '.')) {
        if (*d == '.')
            d++;
        const struct access_entry *e = access_find(m, tag, d);
        if (e)
            return e;
    }
    return NULL;
}

const struct access_entry *access_lookup_ip(const struct access_map *m, const char *tag,
                                            const char *ip)
{
    char key[INET6_ADDRSTRLEN + 8];
    char sep = strchr(ip, ':') ? ':' : '.';
    snprintf(key, sizeof(key), "%s%s", sep == ':' ? "ipv6:" : "", ip);
    char *stop = key + (sep == ':' ? 5 : 0);
    for (;;) {
        const struct access_entry *e = access_find(m, tag, key);
        if (e)
            return e;
        char *cut = strrchr(stop, sep);
        if (!cut)
            return NULL;
        *cut = '\0';
        /* "2001:db8::" leaves an empty group; sendmail's lookup steps over it. */
        while (cut > stop && cut[-1] == sep)
            *--cut = '\0';
        if (cut == stop)
            return NULL;
    }
}

const struct access_entry *access_lookup_address(const struct access_map *m, const char *tag,
                                                 const char *address)
{
    const struct access_entry *e = access_find(m, tag, address);
    const char *at = strrchr(address, '@');
    if (e || !at)
        return e;
    if (at[1] && (e = access_lookup_host(m, tag, at + 1)) != NULL)
        return e;
    char user[512];
    snprintf(user, sizeof(user), "%.*s@", (int)(at - address), address);
    return access_find(m, tag, user);
}

void access_dump(const struct access_map *m, struct buf *out)
{
    for (size_t i = 0; i < m->n; i++) {
        const struct access_entry *e = &m->v[i];
        buf_printf(out, "%u %s:%s %s", e->line, e->tag ? e->tag : "*", e->key,
                   access_action_names[e->action]);
        if (e->action == ACCESS_ERROR)
            buf_printf(out, " code=%s dsn=%s text=\"%s\"", e->code, e->dsn, e->text);
        else if (e->action == ACCESS_VALUE)
            buf_printf(out, " \"%s\"", e->value);
        buf_printf(out, "\n");
    }
}
