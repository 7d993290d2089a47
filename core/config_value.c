/*
 * core/config_value.c — the forms a configuration value can take: numbers, sizes,
 * durations, domain names, paths, and the host's own name from /etc/hosts.
 *
 * Parsers are strict (no spaces, no signs, no fractions): a value that could be read two
 * ways is refused rather than guessed at.
 */
#include "core/config_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct config_unit {
    const char *name;
    uint64_t scale;
};

/* Largest first: config_format_unit() picks the first that divides the value. */
static const struct config_unit config_size_units[] = {
    {"T", 1ull << 40}, {"G", 1ull << 30}, {"M", 1ull << 20}, {"K", 1ull << 10}, {"", 1}};
static const struct config_unit config_duration_units[] = {{"w", 604800000ull}, {"d", 86400000ull},
                                                           {"h", 3600000ull},   {"m", 60000ull},
                                                           {"s", 1000ull},      {"ms", 1}};
#define CONFIG_N(a) (sizeof(a) / sizeof((a)[0]))

/* Leading digits of *p into *out, advancing *p. -1 if none or on overflow. */
static int config_digits(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

static int config_scaled(uint64_t v, uint64_t scale, uint64_t *acc)
{
    if (v > UINT64_MAX / scale || *acc > UINT64_MAX - v * scale)
        return -1;
    *acc += v * scale;
    return 0;
}

/* The unit spelt at *p (longest match, case-sensitive unless `fold`), advancing *p. */
static const struct config_unit *config_unit_at(const char **p, const struct config_unit *units,
                                                size_t n, bool fold)
{
    const struct config_unit *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(units[i].name);
        bool same =
            fold ? strncasecmp(*p, units[i].name, len) == 0 : strncmp(*p, units[i].name, len) == 0;
        if (same && len >= best_len && !(len == 0 && best)) {
            best = &units[i];
            best_len = len;
        }
    }
    *p += best_len;
    return best;
}

int config_parse_uint(const char *text, uint64_t *out)
{
    return config_digits(&text, out) == 0 && *text == '\0' ? 0 : -1;
}

int config_parse_size(const char *text, uint64_t *out)
{
    uint64_t v, acc = 0;
    if (config_digits(&text, &v) < 0)
        return -1;
    const struct config_unit *u =
        config_unit_at(&text, config_size_units, CONFIG_N(config_size_units), true);
    if (*text != '\0' || config_scaled(v, u->scale, &acc) < 0)
        return -1;
    *out = acc;
    return 0;
}

/* "1h30m" is a sum of parts, as sendmail's convtime() reads it; a bare number is seconds
 * and stands alone ("1h30" is refused: minutes or seconds?). */
int config_parse_duration(const char *text, uint64_t *out_ms)
{
    uint64_t v, acc = 0;
    if (config_digits(&text, &v) < 0)
        return -1;
    if (*text == '\0') {
        if (config_scaled(v, 1000, &acc) < 0)
            return -1;
        *out_ms = acc;
        return 0;
    }
    for (;;) {
        const struct config_unit *u =
            config_unit_at(&text, config_duration_units, CONFIG_N(config_duration_units), false);
        if (!u || config_scaled(v, u->scale, &acc) < 0)
            return -1;
        if (*text == '\0')
            break;
        if (config_digits(&text, &v) < 0)
            return -1;
    }
    *out_ms = acc;
    return 0;
}

static void config_format_unit(uint64_t v, const struct config_unit *units, size_t n, char *out,
                               size_t outlen)
{
    for (size_t i = 0; v != 0 && i < n; i++) {
        if (v % units[i].scale == 0) {
            snprintf(out, outlen, "%llu%s", (unsigned long long)(v / units[i].scale),
                     units[i].name);
            return;
        }
    }
    snprintf(out, outlen, "0");
}

void config_format_size(uint64_t bytes, char *out, size_t outlen)
{
    config_format_unit(bytes, config_size_units, CONFIG_N(config_size_units), out, outlen);
}

/* Weeks are read but not written: "14d" says more to a reader than "2w". */
void config_format_duration(uint64_t ms, char *out, size_t outlen)
{
    config_format_unit(ms, config_duration_units + 1, CONFIG_N(config_duration_units) - 1, out,
                       outlen);
}

/* RFC 1123 host names: LDH labels of 1..63, no hyphen at either end, 253 in all. */
bool config_domain_valid(const char *text)
{
    size_t total = strlen(text), label = 0;
    if (total == 0 || total > 253)
        return false;
    for (const char *p = text;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > 63 || p[-1] == '-')
                return false;
            if (*p == '\0')
                return true;
            label = 0;
        } else if (isalnum((unsigned char)*p) || (*p == '-' && label > 0)) {
            label++;
        } else {
            return false;
        }
    }
}

char *config_path_join(const char *base, const char *path)
{
    size_t cap = strlen(base) + strlen(path) + 3;
    char *out = malloc(cap), *joined = malloc(cap);
    if (!out || !joined) {
        free(out);
        free(joined);
        return NULL;
    }
    snprintf(joined, cap, "%s/%s", path[0] == '/' ? "" : base, path);
    size_t len = 0;
    out[0] = '\0';
    for (char *save = NULL, *part = strtok_r(joined, "/", &save); part;
         part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0) {
            while (len > 0 && out[len - 1] != '/')
                len--;
            len = len > 0 ? len - 1 : 0; /* "/.." stays "/" */
            out[len] = '\0';
            continue;
        }
        len += (size_t)snprintf(out + len, cap - len, "/%s", part);
    }
    if (len == 0)
        snprintf(out, cap, "/");
    free(joined);
    return out;
}

char *config_hosts_fqdn(const char *hosts_path, const char *name)
{
    FILE *f = fopen(hosts_path, "re");
    if (!f)
        return NULL;
    char line[1024], *found = NULL;
    while (!found && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "#\n")] = '\0';
        char *save = NULL, *addr = strtok_r(line, " \t", &save);
        char *first = addr ? strtok_r(NULL, " \t", &save) : NULL;
        if (!first || !strchr(first, '.'))
            continue;
        for (char *alias = first; alias; alias = strtok_r(NULL, " \t", &save))
            if (strcasecmp(alias, name) == 0) {
                found = strdup(first);
                break;
            }
    }
    fclose(f);
    return found;
}

bool config_key_is_text(const struct config_key *k)
{
    return k->type == CONFIG_STRING || k->type == CONFIG_DOMAIN || k->type == CONFIG_PATH ||
           k->type == CONFIG_ADDRESS || k->type == CONFIG_TLS_VERSION || (k->flags & CONFIG_F_KEEP);
}

void config_uint_put(void *at, size_t width, uint64_t v)
{
    uint16_t v16 = (uint16_t)v;
    uint32_t v32 = (uint32_t)v;
    memcpy(at, width == 2 ? (void *)&v16 : width == 4 ? (void *)&v32 : (void *)&v, width);
}

uint64_t config_uint_get(const void *at, size_t width)
{
    uint16_t v16 = 0;
    uint32_t v32 = 0;
    uint64_t v64 = 0;
    memcpy(width == 2 ? (void *)&v16 : width == 4 ? (void *)&v32 : (void *)&v64, at, width);
    return width == 2 ? v16 : width == 4 ? v32 : v64;
}
