#include "compat/map_list.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Host names as sendmail accepts them in a class: labels of letters, digits, '-' and '_'
 * (seen in real intranet names), dots between; or a bracketed address literal. */
static bool map_list_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (s[0] == '[')
        return n > 2 && s[n - 1] == ']' && strspn(s + 1, "0123456789abcdef.:") == n - 2;
    if (n == 0 || n > 253 || s[0] == '.' || strstr(s, "..") != NULL)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == n;
}

static int map_list_line(void *ctx, struct map_reader *r, char *line, unsigned lineno)
{
    struct map_strings *out = ctx;
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    for (char *tok = strtok(line, " \t"); tok; tok = strtok(NULL, " \t")) {
        for (char *p = tok; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        /* A trailing dot is the same name written absolutely. */
        size_t n = strlen(tok);
        if (n > 1 && tok[n - 1] == '.')
            tok[n - 1] = '\0';
        if (!map_list_name_ok(tok))
            return map_fail(r, lineno, "'%s' is not a host name or [address]", tok);
        if (!map_list_contains(out, tok) && map_strings_add(out, tok) < 0)
            return map_fail(r, lineno, "out of memory");
    }
    return 0;
}

int map_list_parse(const char *file, const char *text, size_t len, struct map_strings *out,
                   char *err, size_t errlen)
{
    return map_each_line(file, text, len, false, err, errlen, map_list_line, out);
}

bool map_list_contains(const struct map_strings *list, const char *name)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcasecmp(list->v[i], name) == 0)
            return true;
    return false;
}

bool map_list_match_domain(const struct map_strings *list, const char *host)
{
    for (const char *d = host; d; d = strchr(d + 1, '.')) {
        if (map_list_contains(list, d[0] == '.' ? d + 1 : d))
            return true;
    }
    return false;
}

void map_list_dump(const struct map_strings *list, struct buf *out)
{
    for (size_t i = 0; i < list->n; i++)
        buf_printf(out, "%s\n", list->v[i]);
}
