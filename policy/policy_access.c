/*
 * policy/policy_access.c — the access map read in sendmail's order (proto.m4's SearchList,
 * D and A rulesets) and an entry's action turned into a verdict.
 */
#include "policy/policy_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* user+detail@domain, then user@domain (F); user+detail@, then user@ (U): at most two keys. */
static const struct access_entry *policy_search_user(const struct access_map *m, const char *tag,
                                                     const char *address, const char *at,
                                                     bool with_domain)
{
    char key[600];
    size_t ulen = (size_t)(at - address);
    const char *domain = with_domain ? at : "@";
    if (snprintf(key, sizeof(key), "%.*s%s", (int)ulen, address, domain) >= (int)sizeof(key))
        return NULL;
    const struct access_entry *e = access_lookup_key(m, tag, key);
    const char *plus = memchr(address, '+', ulen);
    if (e || !plus)
        return e;
    snprintf(key, sizeof(key), "%.*s%s", (int)(plus - address), address, domain);
    return access_lookup_key(m, tag, key);
}

const struct access_entry *policy_search(const struct access_map *m, const char *tag,
                                         const char *address, const char *order)
{
    const char *at = strrchr(address, '@');
    for (const char *o = order; *o; o++) {
        const struct access_entry *e = NULL;
        if (*o == 'F' && at)
            e = policy_search_user(m, tag, address, at, true);
        else if (*o == 'U')
            e = at ? policy_search_user(m, tag, address, at, false)
                   : policy_search_user(m, tag, address, address + strlen(address), false);
        else if (*o == 'D' && at && at[1])
            e = access_lookup_host(m, tag, at + 1);
        if (e && e->action != ACCESS_SKIP)
            return e;
    }
    return NULL;
}

const struct access_entry *policy_search_client(const struct access_map *m,
                                                const struct policy_client *c)
{
    const struct access_entry *e = c->host ? access_lookup_host(m, "connect", c->host) : NULL;
    if (!e || e->action == ACCESS_SKIP)
        e = access_lookup_ip(m, "connect", c->addr);
    return e && e->action != ACCESS_SKIP ? e : NULL;
}

bool policy_entry_accepts(const struct access_entry *e)
{
    return e && (e->action == ACCESS_OK || e->action == ACCESS_RELAY);
}

static void policy_text(struct policy_verdict *v, const char *addr, const char *text)
{
    if (addr)
        snprintf(v->text, sizeof(v->text), "<%s>... %s", addr, text);
    else
        snprintf(v->text, sizeof(v->text), "%s", text);
}

bool policy_entry_verdict(const struct access_entry *e, const char *ruleset, const char *addr,
                          const char *reject_enh, const char *reject_text, struct policy_verdict *v)
{
    if (!e || e->action == ACCESS_SKIP || policy_entry_accepts(e))
        return false;
    v->ruleset = ruleset;
    switch (e->action) {
    case ACCESS_DISCARD:
        v->action = POLICY_DISCARD;
        return true;
    case ACCESS_REJECT:
        v->action = POLICY_REJECT;
        v->code = 550;
        snprintf(v->enh, sizeof(v->enh), "%s", reject_enh);
        policy_text(v, addr, reject_text);
        return true;
    case ACCESS_ERROR:
        /* no status in the entry: sendmail's 5.7.1 / 4.7.1, as ringmail always answered */
        v->action = POLICY_REJECT;
        v->code = e->code[0] ? atoi(e->code) : 550;
        snprintf(v->enh, sizeof(v->enh), "%s",
                 e->dsn[0]            ? e->dsn
                 : v->code / 100 == 4 ? "4.7.1"
                                      : "5.7.1");
        policy_text(v, addr, e->text && e->text[0] ? e->text : reject_text);
        return true;
    default: /* ACCESS_VALUE: only QUARANTINE:reason gets here for Connect/From/To */
        if (strncasecmp(e->value, "QUARANTINE:", 11) != 0)
            return false;
        v->action = POLICY_QUARANTINE;
        snprintf(v->text, sizeof(v->text), "%s", e->value + 11);
        return true;
    }
}
