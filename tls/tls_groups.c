/*
 * tls/tls_groups.c — key-exchange groups as the loaded providers offer them.
 *
 * sendmail once hard-coded prime256v1 as the ECDH curve and every server with a P-384 or
 * P-521 certificate failed with "no shared cipher" (DESIGN.md). Here the groups come from
 * the providers' TLS-GROUP capabilities: with no configured list nothing is set and
 * OpenSSL negotiates from its defaults; a configured list is checked name by name so a
 * typo stops start-up with the list of what is available, and a provider added in
 * tls.providers brings its groups with no code change.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "tls/tls_int.h"

struct tls_groups_acc {
    struct tls_ctx *c;
    size_t cap;
    int failed;
};

static void tls_param_str(const OSSL_PARAM *params, const char *key, char *out, size_t outlen)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, key);
    const char *v = NULL;
    out[0] = '\0';
    if (p && OSSL_PARAM_get_utf8_string_ptr(p, &v))
        snprintf(out, outlen, "%s", v);
}

static unsigned tls_param_uint(const OSSL_PARAM *params, const char *key)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, key);
    unsigned v = 0;
    return p && OSSL_PARAM_get_uint(p, &v) ? v : 0;
}

static int tls_param_int(const OSSL_PARAM *params, const char *key)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, key);
    int v = 0;
    return p && OSSL_PARAM_get_int(p, &v) ? v : 0;
}

static int tls_group_cb(const OSSL_PARAM params[], void *arg)
{
    struct tls_groups_acc *acc = arg;
    struct tls_ctx *c = acc->c;
    if (c->n_groups == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 64;
        struct tls_group *g = realloc(c->groups, cap * sizeof(*g));
        if (!g) {
            acc->failed = 1;
            return 0;
        }
        c->groups = g;
        acc->cap = cap;
    }
    struct tls_group *g = &c->groups[c->n_groups];
    memset(g, 0, sizeof(*g));
    tls_param_str(params, OSSL_CAPABILITY_TLS_GROUP_NAME, g->name, sizeof(g->name));
    tls_param_str(params, OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL, g->internal,
                  sizeof(g->internal));
    g->id = tls_param_uint(params, OSSL_CAPABILITY_TLS_GROUP_ID);
    g->secbits = tls_param_uint(params, OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS);
    g->min_tls = tls_param_int(params, OSSL_CAPABILITY_TLS_GROUP_MIN_TLS);
    g->max_tls = tls_param_int(params, OSSL_CAPABILITY_TLS_GROUP_MAX_TLS);
    if (g->name[0])
        c->n_groups++;
    return 1;
}

/* One name per IANA id: the provider lists the SECG name first and the NIST alias after
 * it ("secp384r1", then "P-384"), so the last entry wins; where the provider's name is a
 * lower-case spelling of the algorithm ("x25519"), the algorithm's name ("X25519"). */
static void tls_groups_name_displays(struct tls_ctx *c)
{
    for (size_t i = 0; i < c->n_groups; i++) {
        struct tls_group *g = &c->groups[i];
        const struct tls_group *last = g;
        for (size_t j = i + 1; j < c->n_groups; j++)
            if (c->groups[j].id == g->id)
                last = &c->groups[j];
        const char *pick =
            strcasecmp(last->name, last->internal) == 0 ? last->internal : last->name;
        snprintf(g->display, sizeof(g->display), "%s", pick);
    }
}

int tls_groups_load(struct tls_ctx *c, char *err, size_t errlen)
{
    struct tls_groups_acc acc = {.c = c};
    for (size_t i = 0; i < c->n_providers && !acc.failed; i++)
        OSSL_PROVIDER_get_capabilities(c->providers[i], "TLS-GROUP", tls_group_cb, &acc);
    if (acc.failed) {
        snprintf(err, errlen, "tls.groups: out of memory");
        return -1;
    }
    tls_groups_name_displays(c);
    return 0;
}

static const struct tls_group *tls_group_find(const struct tls_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->n_groups; i++)
        if (strcasecmp(c->groups[i].name, name) == 0)
            return &c->groups[i];
    for (size_t i = 0; i < c->n_groups; i++)
        if (strcasecmp(c->groups[i].internal, name) == 0)
            return &c->groups[i];
    return NULL;
}

const char *tls_group_display(const struct tls_ctx *c, const char *name)
{
    const struct tls_group *g = tls_group_find(c, name);
    return g ? g->display : name;
}

const char *tls_group_display_by_id(const struct tls_ctx *c, unsigned id)
{
    for (size_t i = 0; i < c->n_groups; i++)
        if (c->groups[i].id == id)
            return c->groups[i].display;
    return NULL;
}

/* Whether entry i is the first one with its id (the one listed). */
static bool tls_group_first_of_id(const struct tls_ctx *c, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (c->groups[j].id == c->groups[i].id)
            return false;
    return true;
}

void tls_groups_join(const struct tls_ctx *c, const char *sep, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->n_groups && used < outlen; i++)
        if (tls_group_first_of_id(c, i))
            used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? sep : "",
                                     c->groups[i].display);
}

size_t tls_ctx_groups(const struct tls_ctx *c, struct tls_group_info *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_groups; i++) {
        if (!tls_group_first_of_id(c, i))
            continue;
        if (n < max) {
            const struct tls_group *g = &c->groups[i];
            snprintf(out[n].name, sizeof(out[n].name), "%s", g->display);
            out[n].secbits = g->secbits;
            out[n].min_tls = g->min_tls;
            out[n].max_tls = g->max_tls;
        }
        n++;
    }
    return n;
}

/* Each configured name is replaced by the provider's own spelling, so aliases the
 * providers know under another name ("prime256v1", "secp384r1") and any case work. */
int tls_groups_apply(struct tls_ctx *c, const char *list, char *err, size_t errlen)
{
    if (!list)
        return 0;
    size_t len = strlen(list);
    char *copy = strdup(list), *canon = malloc(len * 2 + 128);
    char *save = NULL;
    size_t used = 0;
    int rc = 0;
    if (!copy || !canon) {
        snprintf(err, errlen, "tls.groups: out of memory");
        rc = -1;
    }
    for (char *name = copy && canon ? strtok_r(copy, ":, ", &save) : NULL; name && rc == 0;
         name = strtok_r(NULL, ":, ", &save)) {
        const struct tls_group *g = tls_group_find(c, name);
        if (!g) {
            char avail[2048];
            tls_groups_join(c, ", ", avail, sizeof(avail));
            snprintf(err, errlen, "tls.groups: unknown group '%s': available: %s", name, avail);
            rc = -1;
        } else if (used + strlen(g->name) + 2 > len * 2 + 128) {
            snprintf(err, errlen, "tls.groups: list too long");
            rc = -1;
        } else {
            used += (size_t)sprintf(canon + used, "%s%s", used ? ":" : "", g->name);
        }
    }
    if (rc == 0 && used == 0) {
        snprintf(err, errlen, "tls.groups: empty list");
        rc = -1;
    }
    if (rc == 0 && !SSL_CTX_set1_groups_list(c->ssl, canon)) {
        tls_errf(err, errlen, "tls.groups: '%s'", list);
        rc = -1;
    }
    free(copy);
    free(canon);
    return rc;
}
