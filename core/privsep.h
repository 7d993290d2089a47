/*
 * core/privsep.h — the channel between the privileged parent and the engine.
 *
 * One SOCK_SEQPACKET socketpair, made before the engine is forked: each message is a type
 * and at most one file descriptor (SCM_RIGHTS). The parent sends configurations (a sealed
 * memfd holding the files it read, util/fileset.h); the engine says when it serves and asks
 * for a reload when it got a SIGHUP itself. The parent trusts nothing the engine sends
 * beyond the message type: a message it does not expect is logged and ignored.
 * Never blocks longer than a message takes to copy; errors are returned, logged by the caller.
 */
#ifndef RINGMAIL_CORE_PRIVSEP_H
#define RINGMAIL_CORE_PRIVSEP_H

#include <stdint.h>

enum privsep_msg {
    PRIVSEP_READY = 1,  /* engine → parent: listening and serving */
    PRIVSEP_RELOAD,     /* parent → engine: a configuration to load; fd: its files */
    PRIVSEP_RELOAD_ASK, /* engine → parent: SIGHUP reached the engine: please reload */
};

/* sv[0] for the parent, sv[1] for the engine; close-on-exec. 0 or -1 (errno). */
int privsep_pair(int sv[2]);
/* Sends `type` and, unless fd is -1, a copy of fd. 0 or -1 (errno). */
int privsep_send(int sock, uint32_t type, int fd);
/* Receives one message: 1 with *type and *fd (-1 when none; the caller closes it), 0 when
 * the other side has gone, -1 on error (errno). */
int privsep_recv(int sock, uint32_t *type, int *fd);

#endif
