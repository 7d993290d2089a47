/*
 * core/listener.h — the listening sockets: one SO_REUSEPORT socket per worker per
 * configured listener, so the kernel spreads connections over the workers and no lock is
 * shared at accept (DESIGN.md, "The engine").
 *
 * Sockets are created and bound before privileges are dropped (ports below 1024) and
 * handed to the engine, which then owns them. Errors name the listener and the address.
 */
#ifndef RINGMAIL_CORE_LISTENER_H
#define RINGMAIL_CORE_LISTENER_H

#include <stddef.h>

#include "core/config.h"

/* Fills fds[0..workers-1] with listening sockets for `l`. 0, or -1 with `err` (and no
 * socket left open). */
int listener_open(const struct config_listener *l, unsigned workers, int *fds, char *err,
                  size_t errlen);

#endif
