#include "delivery/tlspolicy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const tlspolicy_names[] = {
    [TLSPOLICY_MAY] = "may",
    [TLSPOLICY_NONE] = "none",
    [TLSPOLICY_ENCRYPT] = "encrypt",
    [TLSPOLICY_VERIFY] = "verify",
};

const char *tlspolicy_level_name(enum tlspolicy_level l)
{
    return (unsigned)l < sizeof(tlspolicy_names) / sizeof(tlspolicy_names[0]) ? tlspolicy_names[l]
                                                                              : "?";
}

int tlspolicy_level_parse(const char *word, enum tlspolicy_level *out)
{
    for (size_t i = 0; i < sizeof(tlspolicy_names) / sizeof(tlspolicy_names[0]); i++)
        if (strcasecmp(word, tlspolicy_names[i]) == 0) {
            *out = (enum tlspolicy_level)i;
            return 0;
        }
    return -1;
}

/* How strict a level is: none < may < encrypt < verify. */
static int tlspolicy_rank(enum tlspolicy_level l)
{
    switch (l) {
    case TLSPOLICY_NONE:
        return 0;
    case TLSPOLICY_MAY:
        return 1;
    case TLSPOLICY_ENCRYPT:
        return 2;
    case TLSPOLICY_VERIFY:
        return 3;
    }
    return 1;
}

static const struct tlspolicy_entry *tlspolicy_find(const struct tlspolicy_settings *s,
                                                    const char *key)
{
    for (size_t i = 0; i < s->n_entries; i++)
        if (s->entries[i].dest && strcasecmp(s->entries[i].dest, key) == 0)
            return &s->entries[i];
    return NULL;
}

/* The host itself, then ".parent" for each parent domain (Postfix's policy table keys). */
static const struct tlspolicy_entry *tlspolicy_find_domain(const struct tlspolicy_settings *s,
                                                           const char *host)
{
    const struct tlspolicy_entry *e = tlspolicy_find(s, host);
    for (const char *d = strchr(host, '.'); !e && d; d = strchr(d + 1, '.'))
        e = tlspolicy_find(s, d);
    return e;
}

void tlspolicy_for_destination(const struct tlspolicy_settings *s, const char *host, bool mx,
                               uint16_t port, struct tlspolicy *out)
{
    memset(out, 0, sizeof(*out));
    out->level = s ? s->default_level : TLSPOLICY_MAY;
    snprintf(out->source, sizeof(out->source), "default");
    if (!s)
        return;
    const struct tlspolicy_entry *e = NULL;
    char key[TLSPOLICY_NAME_MAX + 16];
    if (!mx) {
        snprintf(key, sizeof(key), "[%s]:%u", host, port ? (unsigned)port : 25u);
        e = tlspolicy_find(s, key);
        if (!e && !port) {
            snprintf(key, sizeof(key), "[%s]", host);
            e = tlspolicy_find(s, key);
        }
    }
    if (!e)
        e = tlspolicy_find_domain(s, host);
    if (!e)
        return;
    out->level = e->level;
    out->min_bits = e->min_bits;
    snprintf(out->match, sizeof(out->match), "%s", e->match ? e->match : "");
    snprintf(out->source, sizeof(out->source), "tls_policy %s", e->dest);
}

/* The access map's value for tag + the server's name (then its parent domains), its
 * address (IPv4: then its 3-, 2- and 1-octet prefixes), then tag alone if `bare`: the
 * order of sendmail's D and A rulesets. */
static const char *tlspolicy_access(const struct tlspolicy_settings *s, const char *tag,
                                    const char *host, const char *addr, bool bare, char *key,
                                    size_t keylen)
{
    const char *v = NULL;
    for (const char *d = host && *host ? host : NULL; !v && d; d = strchr(d, '.')) {
        if (*d == '.')
            d++;
        snprintf(key, keylen, "%s:%s", tag, d);
        v = s->access(s->access_arg, key);
    }
    if (!v && addr && *addr) {
        snprintf(key, keylen, "%s:%s", tag, addr);
        v = s->access(s->access_arg, key);
        size_t n = strlen(key);
        while (!v && !strchr(addr, ':') && n > strlen(tag) + 1) {
            char *dot = strrchr(key, '.');
            if (!dot)
                break;
            *dot = '\0';
            n = strlen(key);
            v = s->access(s->access_arg, key);
        }
    }
    if (!v && bare) {
        snprintf(key, keylen, "%s:", tag);
        v = s->access(s->access_arg, key);
    }
    return v;
}

static bool tlspolicy_word(const char *p, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(p, word, len) == 0;
}

/* "[PERM+|TEMP+]ENCR:bits|VERIFY[:bits][+CN[:name]]": 0, or -1 for a requirement ringmail
 * cannot check. */
static int tlspolicy_parse_srv(const char *v, struct tlspolicy *req)
{
    memset(req, 0, sizeof(*req));
    req->level = TLSPOLICY_MAY;
    while (*v == ' ' || *v == '\t' || *v == '"')
        v++;
    while (*v) {
        size_t len = strcspn(v, "+ \t\"");
        const char *colon = memchr(v, ':', len);
        size_t tag = colon ? (size_t)(colon - v) : len;
        const char *arg = colon ? colon + 1 : "";
        size_t arglen = colon ? len - tag - 1 : 0;
        if (tlspolicy_word(v, tag, "PERM") || tlspolicy_word(v, tag, "TEMP")) {
            req->perm = toupper((unsigned char)v[0]) == 'P';
        } else if (tlspolicy_word(v, tag, "ENCR") || tlspolicy_word(v, tag, "VERIFY")) {
            bool verify = toupper((unsigned char)v[0]) == 'V';
            if (tlspolicy_rank(verify ? TLSPOLICY_VERIFY : TLSPOLICY_ENCRYPT) >
                tlspolicy_rank(req->level))
                req->level = verify ? TLSPOLICY_VERIFY : TLSPOLICY_ENCRYPT;
            if (arglen && strspn(arg, "0123456789") != arglen)
                return -1;
            if (arglen)
                req->min_bits = (unsigned)strtoul(arg, NULL, 10);
        } else if (tlspolicy_word(v, tag, "CN")) {
            req->level = TLSPOLICY_VERIFY;
            if (arglen >= sizeof(req->match))
                return -1;
            memcpy(req->match, arg, arglen);
            req->match[arglen] = '\0';
        } else {
            return -1;
        }
        v += len;
        while (*v == '+' || *v == ' ' || *v == '\t' || *v == '"')
            v++;
    }
    return 0;
}

void tlspolicy_for_server(const struct tlspolicy_settings *s, const char *host, const char *addr,
                          struct tlspolicy *p)
{
    if (!s || !s->access)
        return;
    char name[TLSPOLICY_NAME_MAX], key[TLSPOLICY_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s", host ? host : "");
    size_t n = strlen(name);
    if (n > 1 && name[n - 1] == '.')
        name[n - 1] = '\0';
    const char *v = tlspolicy_access(s, "TLS_Srv", name, addr, true, key, sizeof(key));
    if (v) {
        struct tlspolicy req;
        if (tlspolicy_parse_srv(v, &req) < 0) {
            p->unsupported = true;
            snprintf(p->source, sizeof(p->source), "%.*s %.*s", TLSPOLICY_NAME_MAX / 2, key,
                     TLSPOLICY_NAME_MAX / 2, v);
            return;
        }
        if (tlspolicy_rank(req.level) > tlspolicy_rank(p->level)) {
            p->level = req.level;
            snprintf(p->source, sizeof(p->source), "%s", key);
        }
        if (req.min_bits > p->min_bits)
            p->min_bits = req.min_bits;
        if (req.match[0])
            snprintf(p->match, sizeof(p->match), "%s", req.match);
        p->perm = p->perm || req.perm;
    }
    if (p->level != TLSPOLICY_MAY)
        return;
    v = tlspolicy_access(s, "Try_TLS", name, addr, false, key, sizeof(key));
    if (v && strncasecmp(v, "NO", 2) == 0) {
        p->level = TLSPOLICY_NONE;
        snprintf(p->source, sizeof(p->source), "%s", key);
    }
}
