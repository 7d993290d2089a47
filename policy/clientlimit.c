#include "policy/clientlimit.h"

#include <stdlib.h>
#include <string.h>

bool clientlimit_value(const char *value, unsigned *out)
{
    size_t n = value ? strlen(value) : 0;
    if (n == 0 || n > 9 || strspn(value, "0123456789") != n)
        return false;
    *out = (unsigned)strtoul(value, NULL, 10);
    return true;
}

/* The client's entry, else the tag's default entry, else `dflt`. */
static unsigned clientlimit_one(const struct access_map *m, const char *tag, const char *ip,
                                unsigned dflt)
{
    const struct access_entry *e = access_lookup_ip(m, tag, ip);
    if (!e)
        e = access_lookup_ip(m, tag, "");
    unsigned v;
    return e && clientlimit_value(e->value, &v) ? v : dflt;
}

void clientlimit_lookup(const struct access_map *m, const char *ip,
                        const struct clientlimit *defaults, struct clientlimit *out)
{
    out->rate = clientlimit_one(m, "clientrate", ip, defaults->rate);
    out->conns = clientlimit_one(m, "clientconn", ip, defaults->conns);
}

bool clientlimit_mode_parse(const char *const *words, size_t n, struct clientlimit_mode *out)
{
    bool on = false;
    *out = (struct clientlimit_mode){.nodelay = false, .terminate = false};
    for (size_t i = 0; i < n; i++) {
        if (strcmp(words[i], "nodelay") == 0)
            out->nodelay = true;
        else if (strcmp(words[i], "terminate") == 0)
            out->terminate = true;
        else if (strcmp(words[i], "false") && strcmp(words[i], "true") && words[i][0])
            return false;
        on = on || strcmp(words[i], "false") != 0;
    }
    if (!on) /* absent or false: the limits still apply, as `nodelay, terminate` */
        *out = (struct clientlimit_mode){.nodelay = true, .terminate = true};
    return true;
}
