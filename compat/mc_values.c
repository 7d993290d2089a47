/* compat/mc_values.c — sendmail's readings of option values, and the class files. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat/map_list.h"
#include "compat/mc_int.h"
#include "util/fileset.h"

uint64_t mc_atoi(const char *s, bool *clean)
{
    const char *p = s;
    while (*p == ' ' || *p == '\t')
        p++;
    uint64_t v = 0;
    const char *digits = p;
    while (isdigit((unsigned char)*p) && v < UINT64_MAX / 100)
        v = v * 10 + (uint64_t)(*p++ - '0');
    *clean = p > digits && *p == '\0';
    return v;
}

int mc_convtime(const char *s, char unit, uint64_t *seconds)
{
    uint64_t total = 0;
    const char *p = s;
    while (*p == ' ')
        p++;
    if (!*p)
        return -1;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -1;
        uint64_t v = 0;
        while (isdigit((unsigned char)*p) && v < 1000000000)
            v = v * 10 + (uint64_t)(*p++ - '0');
        char u = *p ? *p++ : unit;
        static const char units[] = "smhdw";
        static const uint64_t mult[] = {1, 60, 3600, 86400, 604800};
        const char *k = strchr(units, u);
        if (!k || !u)
            return -1;
        total += v * mult[k - units];
    }
    *seconds = total;
    return 0;
}

void mc_format_duration(uint64_t s, char *out, size_t outlen)
{
    static const char units[] = "wdhm";
    static const uint64_t mult[] = {604800, 86400, 3600, 60};
    for (size_t i = 0; i < 4; i++)
        if (s && s % mult[i] == 0) {
            snprintf(out, outlen, "%llu%c", (unsigned long long)(s / mult[i]), units[i]);
            return;
        }
    snprintf(out, outlen, s ? "%llus" : "%llu", (unsigned long long)s);
}

void mc_format_size(uint64_t b, char *out, size_t outlen)
{
    static const char units[] = "TGMK";
    for (int i = 0; i < 4; i++) {
        uint64_t m = 1ull << (10 * (4 - i));
        if (b && b % m == 0) {
            snprintf(out, outlen, "%llu%c", (unsigned long long)(b / m), units[i]);
            return;
        }
    }
    snprintf(out, outlen, "%llu", (unsigned long long)b);
}

void mc_spec_path(const char *spec, char *out, size_t outlen)
{
    char word[1024];
    const char *p = spec, *w;
    out[0] = '\0';
    while ((w = mc_next_word(&p, word, sizeof(word))) != NULL) {
        const char *colon = strchr(w, ':');
        if (w[0] != '/' && colon && colon[1] == '/') /* hash:/etc/mail/aliases */
            w = colon + 1;
        if (w[0] == '/') {
            snprintf(out, outlen, "%s", w);
            return;
        }
        if (w[0] != '-' && w[0] != '%')
            snprintf(out, outlen, "%s", w);
    }
}

bool mc_domain_ok(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return false;
            label = 0;
        } else if (isalnum((unsigned char)s[i]) || s[i] == '-') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

const char *mc_next_word(const char **p, char *word, size_t wordlen)
{
    const char *s = *p;
    while (*s == ',' || isspace((unsigned char)*s))
        s++;
    if (!*s)
        return NULL;
    size_t n = strcspn(s, ", \t\r\n");
    snprintf(word, wordlen, "%.*s", (int)n, s);
    *p = s + n;
    return word;
}

void mc_read_class_file(struct mc_state *st, struct mc_loc loc, const char *path, const char *key)
{
    char full[2048], err[512];
    char *data;
    size_t len;
    struct map_strings names = {0};
    snprintf(full, sizeof(full), "%s%s", st->o->root ? st->o->root : "", path);
    if (fileset_read(NULL, full, MAP_FILE_MAX, &data, &len, err, sizeof(err)) < 0) {
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s not read (%s): its names are not in %s; the daemon will read it "
                      "once maps are enforced",
                      path, strchr(err, ':') ? strrchr(err, ':') + 2 : err, key);
        return;
    }
    if (map_list_parse(full, data, len, &names, err, sizeof(err)) < 0) {
        mc_report_add(st->report, loc, MC_PERSON, "%s", err);
    } else {
        size_t added = 0;
        for (size_t i = 0; i < names.n; i++) {
            if (!mc_domain_ok(names.v[i])) {
                mc_report_add(st->report, loc, MC_WARNING,
                              "%s: '%s' is not a domain ringmail accepts in %s; left out", path,
                              names.v[i], key);
                continue;
            }
            mc_yaml_add(st->yaml, key, names.v[i], false, NULL);
            added++;
        }
        mc_report_add(st->report, loc, MC_TRANSLATED, "%s read: %zu names -> %s", path, added, key);
    }
    map_strings_free(&names);
    free(data);
}
