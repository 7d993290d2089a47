/*
 * core/privsep.h — the channels between the privileged parent and the engine.
 *
 * SOCK_SEQPACKET socketpairs, made before the engine is forked. On the control channel each
 * message is a type and at most one file descriptor (SCM_RIGHTS): the parent sends
 * configurations (a sealed memfd holding the files it read, util/fileset.h); the engine says
 * when it serves, how each configuration it was sent ended (the parent tells the service
 * manager, core/service.h) and asks for a reload when it got a SIGHUP itself. On the local-delivery
 * channel each message is a payload (a struct local_request, delivery/local_proto.h) and up
 * to PRIVSEP_MAX_FDS descriptors. The parent trusts nothing the engine sends beyond the
 * message's shape: a message it does not expect is logged and ignored.
 * Never blocks longer than a message takes to copy; errors are returned, logged by the caller.
 */
#ifndef RINGMAIL_CORE_PRIVSEP_H
#define RINGMAIL_CORE_PRIVSEP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum privsep_msg {
    PRIVSEP_READY = 1,     /* engine → parent: listening and serving */
    PRIVSEP_RELOAD,        /* parent → engine: a configuration to load; fd: its files */
    PRIVSEP_RELOAD_ASK,    /* engine → parent: SIGHUP reached the engine: please reload */
    PRIVSEP_RECOVERED,     /* engine → parent: the spool's envelopes are read (after READY);
                            * its value: the messages queued */
    PRIVSEP_RELOADED,      /* engine → parent: a PRIVSEP_RELOAD's configuration now serves */
    PRIVSEP_RELOAD_FAILED, /* engine → parent: it did not load; the old one still serves */
    /* engine → parent, every few seconds while they change, in this order: the traffic
     * counts the parent reports to the service manager (STATUS=); the parent has none */
    PRIVSEP_ACCEPTED, /* its value: messages accepted since start */
    PRIVSEP_SESSIONS, /* its value: SMTP sessions open now */
    PRIVSEP_QUEUED,   /* its value: messages in the queue now; the last of the three */
};

/* The most descriptors one message carries (the local request's df and reply socket). */
#define PRIVSEP_MAX_FDS 2

/* sv[0] for the parent, sv[1] for the engine; close-on-exec. 0 or -1 (errno). */
int privsep_pair(int sv[2]);
/* Sends `type` and, unless fd is -1, a copy of fd. 0 or -1 (errno). */
int privsep_send(int sock, uint32_t type, int fd);
/* Sends `type` with a number (a count the parent reports, e.g. to the service manager).
 * 0 or -1 (errno). */
int privsep_send_value(int sock, uint32_t type, uint64_t value);
/* Receives one message: 1 with *type, *value (0 when the message carries none) and *fd (-1
 * when none; the caller closes it), 0 when the other side has gone, -1 on error (errno). */
int privsep_recv(int sock, uint32_t *type, uint64_t *value, int *fd);

/* Sends `len` bytes and copies of fds[0..nfds) (nfds <= PRIVSEP_MAX_FDS) as one message.
 * 0 or -1 (errno). */
int privsep_send_payload(int sock, const void *data, size_t len, const int *fds, size_t nfds);
/* Receives one message into data[0..len) and its descriptors into fds (the caller closes
 * fds[0..*nfds), close-on-exec), waiting only when `flags` lacks MSG_DONTWAIT: the bytes
 * received, 0 when the other side has gone, -1 on error (errno; EPROTO for a message longer
 * than `len` or with more than PRIVSEP_MAX_FDS descriptors, whose descriptors are closed). */
ssize_t privsep_recv_payload(int sock, void *data, size_t len, int fds[PRIVSEP_MAX_FDS],
                             size_t *nfds, int flags);

#endif
