/* policy/greet_pause.c — the pause before the greeting, from the access map or the default. */
#include "policy/greet_pause.h"

#include <stdlib.h>

static const struct access_entry *greet_pause_entry(const struct access_map *m, const char *host,
                                                    const char *addr)
{
    const struct access_entry *e = host ? access_lookup_host(m, "greetpause", host) : NULL;
    return e ? e : access_lookup_ip(m, "greetpause", addr);
}

uint32_t greet_pause_for(const struct access_map *m, const char *host, const char *addr,
                         uint32_t dflt)
{
    const struct access_entry *e = greet_pause_entry(m, host, addr);
    uint32_t ms = dflt;
    if (e && e->value && e->value[0] >= '0' && e->value[0] <= '9') {
        char *end;
        unsigned long v = strtoul(e->value, &end, 10);
        if (!*end)
            ms = v > GREET_PAUSE_MAX_MS ? GREET_PAUSE_MAX_MS : (uint32_t)v;
    }
    return ms > GREET_PAUSE_MAX_MS ? GREET_PAUSE_MAX_MS : ms;
}
