/*
 * core/milterconf.c — the filters' addresses (core/milterconf.h).
 */
#include "core/milterconf.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "util/log.h"

static void milterconf_one(const struct config_milter *m, struct milterconf_addr *a)
{
    const char *spec = m->filter.socket;
    a->name = m->filter.name;
    const char *path = strncasecmp(spec, "local:", 6) == 0  ? spec + 6
                       : strncasecmp(spec, "unix:", 5) == 0 ? spec + 5
                       : spec[0] == '/'                     ? spec
                                                            : NULL;
    if (path) {
        struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
        un->sun_family = AF_UNIX;
        /* (the configuration refused a path too long for sun_path) */
        strncpy(un->sun_path, path, sizeof(un->sun_path) - 1);
        a->len = sizeof(*un);
        return;
    }
    const char *colon = strchr(spec, ':'), *at = colon ? strchr(colon, '@') : NULL;
    if (!colon || !at) {
        log_error("Milter (%s): cannot use socket %s", a->name, spec);
        return;
    }
    char port[8];
    size_t plen = (size_t)(at - colon - 1);
    if (plen == 0 || plen >= sizeof(port)) {
        log_error("Milter (%s): cannot use socket %s", a->name, spec);
        return;
    }
    memcpy(port, colon + 1, plen);
    port[plen] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    hints.ai_family = strncasecmp(spec, "inet6:", 6) == 0 ? AF_INET6 : AF_INET;
    const char *host = at + 1;
    char bare[256];
    size_t hlen = strlen(host);
    if (host[0] == '[' && hlen >= 2 && hlen - 2 < sizeof(bare) && host[hlen - 1] == ']') {
        memcpy(bare, host + 1, hlen - 2);
        bare[hlen - 2] = '\0';
        host = bare;
    }
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        log_error("Milter (%s): cannot resolve %s: %s", a->name, host,
                  rc ? gai_strerror(rc) : "no address");
        return;
    }
    memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
    a->len = res->ai_addrlen;
    freeaddrinfo(res);
}

int milterconf_resolve(const struct config *cfg, struct milterconf_addr **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!cfg->n_milters)
        return 0;
    struct milterconf_addr *v = calloc(cfg->n_milters, sizeof(*v));
    if (!v)
        return -1;
    for (size_t i = 0; i < cfg->n_milters; i++)
        milterconf_one(&cfg->milters[i], &v[i]);
    *out = v;
    *n = cfg->n_milters;
    return 0;
}

const struct milterconf_addr *milterconf_find(const struct milterconf_addr *v, size_t n,
                                              const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}
