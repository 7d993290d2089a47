/*
 * core/config_print.c — config_print(): the effective configuration as a file.
 *
 * Walks the same key table as the load, so every key is printed, defaults included, in the
 * form the parsers read back: sizes and durations in their shortest exact unit ("10M",
 * "90s"), paths absolute, `workers: auto` as the number it became.
 */
#include "core/config.h"
#include "core/config_int.h"

#include <ctype.h>
#include <string.h>
#include <sys/socket.h>

/* A YAML scalar: plain when it cannot be read as anything but itself, else double-quoted. */
static void config_print_scalar(FILE *out, const char *s)
{
    bool plain = isalnum((unsigned char)s[0]) || s[0] == '/' || s[0] == '.';
    for (const char *p = s; plain && *p; p++)
        plain = isalnum((unsigned char)*p) || strchr("._/-+", *p);
    if (plain) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* One scalar (a key's value or a list item) stored at `at`. */
static void config_print_value(FILE *out, const struct config_key *k, const void *at)
{
    char text[64] = ""; /* gcc -O2 cannot see every case fill it */
    const char *s = text;
    int family;
    if (k->flags & CONFIG_F_KEEP) { /* kept as written */
        memcpy(&s, at, sizeof(s));
        config_print_scalar(out, s ? s : "");
        return;
    }
    switch (k->type) {
    case CONFIG_STRING:
    case CONFIG_DOMAIN:
    case CONFIG_PATH:
    case CONFIG_ADDRESS:
    case CONFIG_TLS_VERSION:
        memcpy(&s, at, sizeof(s));
        break;
    case CONFIG_BOOL:
        s = *(const bool *)at ? "true" : "false";
        break;
    case CONFIG_WORKERS:
    case CONFIG_UINT:
        snprintf(text, sizeof(text), "%llu", (unsigned long long)config_uint_get(at, k->width));
        break;
    case CONFIG_SIZE:
        config_format_size(config_uint_get(at, k->width), text, sizeof(text));
        break;
    case CONFIG_DURATION:
        config_format_duration(config_uint_get(at, k->width), text, sizeof(text));
        break;
    case CONFIG_FAMILY:
        memcpy(&family, at, sizeof(family));
        s = family == AF_INET6 ? "inet6" : "inet";
        break;
    case CONFIG_NETWORK:
        netaddr_prefix_format(at, text, sizeof(text));
        break;
    case CONFIG_SECTION:
    case CONFIG_MAPS:
        return;
    }
    config_print_scalar(out, s ? s : "");
}

/* A key kept for later that the file did not set (or a section of nothing else) is left
 * out: printed, it would read back as set and warn. */
static bool config_print_unset(const struct config_key *k, const void *src)
{
    if (k->type == CONFIG_SECTION) {
        for (size_t i = 0; i < k->n_sub; i++)
            if (!config_print_unset(&k->sub[i], src))
                return false;
        return true;
    }
    if (!k->later && !(k->flags & CONFIG_F_KEEP))
        return false;
    const void *p;
    memcpy(&p, (const char *)src + k->offset, sizeof(p));
    if (k->flags & CONFIG_F_LIST)
        return *(const size_t *)(const void *)((const char *)src + k->count) == 0;
    return p == NULL;
}

/* `item`: the first key opens a list item ("  - name: MTA"). */
static void config_print_map(FILE *out, const struct config_key *keys, size_t n, const void *src,
                             int indent, bool item)
{
    bool first = item;
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        const char *at = (const char *)src + k->offset;
        if (config_print_unset(k, src))
            continue;
        if (first)
            fprintf(out, "%*s- %s:", indent - 2, "", k->name);
        else
            fprintf(out, "%*s%s:", indent, "", k->name);
        first = false;
        if (k->type == CONFIG_SECTION) {
            fputc('\n', out);
            config_print_map(out, k->sub, k->n_sub, src, indent + 2, false);
            continue;
        }
        if (!(k->flags & CONFIG_F_LIST)) {
            fputc(' ', out);
            config_print_value(out, k, at);
            fputc('\n', out);
            continue;
        }
        const char *items;
        memcpy(&items, at, sizeof(items));
        size_t count = *(const size_t *)(const void *)((const char *)src + k->count);
        if (k->type == CONFIG_MAPS && count) {
            fputc('\n', out);
            for (size_t j = 0; j < count; j++)
                config_print_map(out, k->sub, k->n_sub, items + j * k->width, indent + 4, true);
            continue;
        }
        size_t size = k->type == CONFIG_NETWORK ? sizeof(struct netaddr_prefix) : sizeof(char *);
        fputs(" [", out);
        for (size_t j = 0; j < count; j++) {
            fputs(j ? ", " : "", out);
            config_print_value(out, k, items + j * size);
        }
        fputs("]\n", out);
    }
}

void config_print(const struct config *c, FILE *out)
{
    fprintf(out, "# ringmail configuration from %s, every default filled in\n", c->source);
    config_print_map(out, config_keys, config_n_keys, c, 0, false);
}
