/*
 * core/milterconf.h — where a configuration's mail filters listen: each declared filter's
 * socket (as the configuration checked it: "local:/path" or "unix:/path", "inet:port@host",
 * "inet6:port@host") turned into an address to connect to, once per configuration, so a
 * session never looks a name up.
 *
 * Owns the array it makes (the caller frees it). A host that does not resolve is
 * logged once here and kept with no address: the sessions then apply that filter's F=.
 */
#ifndef RINGMAIL_CORE_MILTERCONF_H
#define RINGMAIL_CORE_MILTERCONF_H

#include <stddef.h>
#include <sys/socket.h>

#include "core/config.h"

struct milterconf_addr {
    const char *name; /* the filter's (the config's string) */
    struct sockaddr_storage sa;
    socklen_t len; /* 0: no address */
};

/* One entry per cfg->milters[i], in order; NULL (and *n 0) when there are none. -1 when
 * memory runs out. */
int milterconf_resolve(const struct config *cfg, struct milterconf_addr **out, size_t *n);
/* The entry of the filter called `name`, or NULL. */
const struct milterconf_addr *milterconf_find(const struct milterconf_addr *v, size_t n,
                                              const char *name);

#endif
