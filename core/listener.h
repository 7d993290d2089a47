/*
 * core/listener.h — the listening sockets: one SO_REUSEPORT socket per worker per
 * configured listener, so the kernel spreads connections over the workers and no lock is
 * shared at accept (DESIGN.md, "The engine"); and the unix sockets of local submission and
 * queue control (submission.socket, submission.control_socket), one each, accepted on one
 * worker (SO_REUSEPORT does not spread unix sockets).
 *
 * Sockets are created and bound before privileges are dropped (ports below 1024, socket
 * files in root's directories) and handed to the engine, which then owns them. The socket
 * files are the caller's to remove (listener_unix_remove) at exit. Errors name the
 * listener and the address or path.
 */
#ifndef RINGMAIL_CORE_LISTENER_H
#define RINGMAIL_CORE_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/config.h"

/* Fills fds[0..workers-1] with listening sockets for `l`. 0, or -1 with `err` (and no
 * socket left open). */
int listener_open(const struct config_listener *l, unsigned workers, int *fds, char *err,
                  size_t errlen);

/* A unix socket's file, as made: removed at exit only if it is still this one. */
struct listener_unix {
    int fd; /* listening, non-blocking, close-on-exec; -1 when none */
    dev_t dev;
    ino_t ino;
};

/* Binds and listens on a unix stream socket at `path`, mode 0666 (the daemon checks each
 * caller by SO_PEERCRED), owned by owner:group when `set_owner` (root starting the daemon). A
 * socket file that nobody answers on is a dead daemon's and is replaced; one a live
 * process answers on, or a file that is not a socket, is refused. `what` names the key in
 * errors. 0, or -1 with `err` (nothing left open). */
int listener_open_unix(const char *what, const char *path, bool set_owner, uid_t owner, gid_t group,
                       struct listener_unix *u, char *err, size_t errlen);
/* Removes `path` if it is still the socket file `u` made. */
void listener_unix_remove(const char *path, const struct listener_unix *u);

#endif
