/*
 * compat/map_authinfo.c — AuthInfo: entries (compat/map_authinfo.h).
 */
#include "compat/map_authinfo.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat/map_text.h"
#include "smtp/smtp_client_auth.h"
#include "util/base64.h"

#define AUTHINFO_TAG "authinfo:"

static void authinfo_entry_free(struct authinfo_entry *e)
{
    if (e->password)
        explicit_bzero(e->password, strlen(e->password));
    free(e->key);
    free(e->user);
    free(e->authid);
    free(e->password);
    free(e->mechs);
}

void authinfo_free(struct authinfo_map *m)
{
    for (size_t i = 0; i < m->n; i++)
        authinfo_entry_free(&m->v[i]);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

/* One field's value: as written, or decoded from base64 ("X="). NULL with why. */
static char *authinfo_field(const char *p, size_t n, bool b64, const char **why)
{
    if (n > SMTP_CLIENT_AUTH_MAX * 2) {
        *why = "value too long";
        return NULL;
    }
    char *out = malloc(n + 1);
    if (!out) {
        *why = "out of memory";
        return NULL;
    }
    ssize_t len = (ssize_t)n;
    if (b64)
        len = base64_decode(p, n, (unsigned char *)out, n);
    else
        memcpy(out, p, n);
    if (len < 0) {
        free(out);
        *why = "a value after '=' must be base64";
        return NULL;
    }
    out[len] = '\0';
    /* a NUL, CR or LF would cut or split the SMTP exchange */
    if (strlen(out) != (size_t)len || strpbrk(out, "\r\n") || (size_t)len > SMTP_CLIENT_AUTH_MAX) {
        explicit_bzero(out, (size_t)len);
        free(out);
        *why = "a value holds a NUL, CR or LF, or is too long";
        return NULL;
    }
    return out;
}

/* The right-hand side: quoted or bare "X:value" / "X=base64" words. 0, or -1 with why. */
static int authinfo_value(struct authinfo_entry *e, const char *v, const char **why)
{
    while (*v) {
        if (*v == ' ' || *v == '\t') {
            v++;
            continue;
        }
        const char *start = v, *end;
        if (*v == '"') {
            start = ++v;
            if (!(end = strchr(v, '"'))) {
                *why = "a quoted value has no closing '\"'";
                return -1;
            }
            v = end + 1;
        } else {
            end = start + strcspn(start, " \t");
            v = end;
        }
        if (end - start < 2 || (start[1] != ':' && start[1] != '=')) {
            *why = "expected \"U:user\", \"I:authid\", \"P:password\", \"M:mechanisms\" or "
                   "\"R:realm\"";
            return -1;
        }
        /* R: is read and dropped: none of the mechanisms spoken has a realm */
        static const char fields[] = "UIPMR";
        char **slots[] = {&e->user, &e->authid, &e->password, &e->mechs, NULL};
        const char *f = strchr(fields, toupper((unsigned char)start[0]));
        if (!f || !*f) {
            *why = "unknown field (U:, I:, P:, M: and R: are known)";
            return -1;
        }
        char **slot = slots[f - fields];
        char *val = authinfo_field(start + 2, (size_t)(end - start - 2), start[1] == '=', why);
        if (!val)
            return -1;
        if (!slot || *slot) {
            explicit_bzero(val, strlen(val));
            free(val);
            if (!slot)
                continue;
            *why = "a field is given twice";
            return -1;
        }
        *slot = val;
    }
    if (!e->password) {
        *why = "no password (P:)";
        return -1;
    }
    if (!(e->user && *e->user) && !(e->authid && *e->authid)) {
        *why = "no user (U: or I:)";
        return -1;
    }
    if (e->mechs && smtp_client_auth_offer(e->mechs, strlen(e->mechs)) == 0) {
        *why = "M: names none of the mechanisms ringmail speaks (PLAIN, LOGIN, CRAM-MD5)";
        return -1;
    }
    e->cred = (struct smtp_client_auth){
        .user = e->user, .authid = e->authid, .password = e->password, .mechs = e->mechs};
    return 0;
}

/* A key as written after "AuthInfo:", normalised: lower case, no brackets. */
static char *authinfo_key(const char *k)
{
    size_t n = strlen(k);
    if (n >= 2 && k[0] == '[' && k[n - 1] == ']') {
        k++;
        n -= 2;
    }
    char *out = strndup(k, n);
    for (char *p = out; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return out;
}

/* Adds an entry for `key` with the value `value`: 0, or -1 with why. */
static int authinfo_add(struct authinfo_map *m, const char *key, const char *value, unsigned line,
                        const char **why)
{
    if (map_grow((void **)&m->v, &m->cap, m->n, sizeof(*m->v)) < 0) {
        *why = "out of memory";
        return -1;
    }
    struct authinfo_entry *e = &m->v[m->n++];
    memset(e, 0, sizeof(*e));
    e->line = line;
    if (!(e->key = authinfo_key(key))) {
        *why = "out of memory";
        return -1;
    }
    return authinfo_value(e, value, why);
}

static int authinfo_line(void *ctx, struct map_reader *r, char *line, unsigned lineno)
{
    struct authinfo_map *m = ctx;
    char *lhs, *rhs;
    const char *why = NULL;
    map_split(line, &lhs, &rhs);
    if (strncasecmp(lhs, AUTHINFO_TAG, strlen(AUTHINFO_TAG)) != 0)
        return map_fail(r, lineno,
                        "'%s': an authinfo key is AuthInfo:host, AuthInfo:address "
                        "or AuthInfo: (the default)",
                        lhs);
    if (authinfo_add(m, lhs + strlen(AUTHINFO_TAG), rhs, lineno, &why) < 0)
        return map_fail(r, lineno, "%s: %s", lhs, why);
    return 0;
}

int authinfo_parse(const char *file, const char *text, size_t len, struct authinfo_map *out,
                   char *err, size_t errlen)
{
    out->access = false;
    return map_each_line(file, text, len, false, err, errlen, authinfo_line, out);
}

int authinfo_from_access(const char *file, const struct access_map *m, struct authinfo_map *out,
                         char *err, size_t errlen)
{
    out->access = true;
    for (size_t i = 0; i < m->n; i++) {
        const struct access_entry *a = &m->v[i];
        const char *why;
        if (!a->tag || strcmp(a->tag, "authinfo") != 0)
            continue;
        if (authinfo_add(out, a->key, a->value, a->line, &why) < 0) {
            snprintf(err, errlen, "%s:%u: AuthInfo:%s: %s", file, a->line, a->key, why);
            return -1;
        }
    }
    return 0;
}

static const struct smtp_client_auth *authinfo_get(const struct authinfo_map *m, const char *key,
                                                   size_t keylen)
{
    for (size_t i = m->n; i-- > 0;)
        if (strlen(m->v[i].key) == keylen && strncasecmp(m->v[i].key, key, keylen) == 0)
            return &m->v[i].cred;
    return NULL;
}

const struct smtp_client_auth *authinfo_lookup(const struct authinfo_map *m, const char *host,
                                               const char *addr)
{
    const struct smtp_client_auth *a = NULL;
    /* the name, then (access map) its parent domains */
    for (const char *h = host; h && *h && !a;) {
        a = authinfo_get(m, h, strlen(h));
        if ((h = m->access ? strchr(h, '.') : NULL))
            h++;
    }
    if (!a && addr && *addr) {
        char v6[sizeof("ipv6:") + 64];
        const char *k = addr;
        if (strchr(addr, ':')) {
            snprintf(v6, sizeof(v6), "ipv6:%s", addr);
            k = v6;
        }
        a = authinfo_get(m, k, strlen(k));
        /* (access map) 192.0.2, 192.0, 192 */
        for (size_t n = strlen(addr); !a && m->access && !strchr(addr, ':') && n > 0;) {
            while (n > 0 && addr[n - 1] != '.')
                n--;
            if (n > 0)
                a = authinfo_get(m, addr, --n);
        }
    }
    return a ? a : authinfo_get(m, "", 0);
}
