/*
 * util/dns_io.c — c-ares' sockets and timeouts on the engine's ring.
 *
 * Each socket c-ares opens gets one one-shot io_uring poll at a time (POLLIN, plus POLLOUT
 * while c-ares has TCP data to write), re-armed after c-ares has processed the readiness.
 * c-ares closes its sockets through dns_io_socket_functions: a socket whose poll is still
 * in the kernel is not closed then but its poll cancelled, and the descriptor is closed
 * when that poll completes, so the kernel never polls a number that was reused and the
 * watch (which holds the engine_op) outlives the poll even past dns_free.
 */
#include "util/dns_int.h"

#include "util/log.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define DNS_UDP_RCVBUF (1 << 20)

struct dns_watch {
    struct engine_op op;    /* the poll in flight */
    struct dns *d;          /* NULL once c-ares closed it while polled (closing) */
    struct dns_watch *next; /* d->watches */
    struct engine_worker *w;
    int fd;
    short wanted;  /* events c-ares waits for */
    short polling; /* events of the poll in flight, 0 when none */
    bool cancel_sent;
    bool in_handler; /* ares_process_fd runs for this socket now */
    bool closed;     /* c-ares closed it during that call: freed when the call returns */
};

static struct dns_watch *dns_watch_find(struct dns *d, int fd)
{
    for (struct dns_watch *wa = d->watches; wa; wa = wa->next)
        if (wa->fd == fd)
            return wa;
    return NULL;
}

static void dns_watch_unlink(struct dns *d, struct dns_watch *wa)
{
    for (struct dns_watch **p = &d->watches; *p; p = &(*p)->next) {
        if (*p == wa) {
            *p = wa->next;
            return;
        }
    }
}

static void dns_watch_polled(struct engine_op *op, int res);

static void dns_watch_arm(struct dns_watch *wa)
{
    if (!wa->wanted || wa->polling)
        return;
    wa->op.complete = dns_watch_polled;
    io_uring_prep_poll_add(engine_sqe(wa->w, &wa->op), wa->fd, (unsigned)wa->wanted);
    wa->polling = wa->wanted;
}

/* The poll is cancelled by descriptor: the engine's user_data is its own business. */
static void dns_watch_cancel(struct dns_watch *wa)
{
    if (wa->cancel_sent)
        return;
    io_uring_prep_cancel_fd(engine_sqe(wa->w, NULL), wa->fd, 0);
    wa->cancel_sent = true;
}

static void dns_watch_polled(struct engine_op *op, int res)
{
    struct dns_watch *wa = (struct dns_watch *)((char *)op - offsetof(struct dns_watch, op));
    wa->polling = 0;
    wa->cancel_sent = false;
    struct dns *d = wa->d;
    if (!d) {
        close(wa->fd);
        free(wa);
        return;
    }
    if (res != -ECANCELED) {
        if (res < 0)
            log_error("dns: polling a resolver socket: %s", strerror(-res));
        /* An error is handed to c-ares as readiness: its recv or send then fails and it
         * closes the socket and moves to the next server. */
        unsigned ev = res < 0 ? POLLERR : (unsigned)res;
        ares_socket_t r = ev & (POLLIN | POLLERR | POLLHUP) ? wa->fd : ARES_SOCKET_BAD;
        ares_socket_t wr = ev & (POLLOUT | POLLERR | POLLHUP) ? wa->fd : ARES_SOCKET_BAD;
        wa->in_handler = true;
        ares_process_fd(d->channel, r, wr);
        wa->in_handler = false;
        if (wa->closed) {
            free(wa);
            dns_io_settle(d);
            return;
        }
    }
    dns_watch_arm(wa);
    dns_io_settle(d);
}

void dns_io_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns *d = data;
    short wanted = (short)((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
    struct dns_watch *wa = dns_watch_find(d, fd);
    if (!wa) {
        if (!wanted)
            return;
        wa = calloc(1, sizeof *wa);
        if (!wa) {
            /* Its queries time out (the timer still runs); nothing else to do. */
            log_error("dns: out of memory watching a resolver socket");
            return;
        }
        wa->d = d;
        wa->w = d->w;
        wa->fd = fd;
        wa->next = d->watches;
        d->watches = wa;
    }
    wa->wanted = wanted;
    if (wa->polling && (wanted & ~wa->polling))
        dns_watch_cancel(wa); /* its completion re-arms with the new events */
    else if (!wa->in_handler)
        dns_watch_arm(wa);
}

static ares_socket_t dns_io_socket(int domain, int type, int protocol, void *data)
{
    (void)data;
    /* c-ares leaves sockets it did not make as they come: non-blocking is ours to set. */
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    /* Hundreds of queries go out in one loop turn (one UDP socket per server) before the
     * first answer is read: the default buffer drops most of a burst of answers, which
     * then cost a retry timeout each. The kernel caps this at net.core.rmem_max. */
    int rcvbuf = DNS_UDP_RCVBUF;
    if (fd >= 0 && type == SOCK_DGRAM &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0)
        log_warn("dns: SO_RCVBUF on a resolver socket: %s", strerror(errno));
    return fd;
}

static int dns_io_close(ares_socket_t fd, void *data)
{
    struct dns *d = data;
    struct dns_watch *wa = dns_watch_find(d, fd);
    if (!wa)
        return close(fd);
    dns_watch_unlink(d, wa);
    if (wa->polling) {
        wa->d = NULL;
        dns_watch_cancel(wa);
        return 0;
    }
    int rc = close(fd);
    if (wa->in_handler)
        wa->closed = true;
    else
        free(wa);
    return rc;
}

static int dns_io_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len,
                          void *data)
{
    (void)data;
    return connect(fd, sa, len);
}

static ares_ssize_t dns_io_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
                                    struct sockaddr *from, ares_socklen_t *fromlen, void *data)
{
    (void)data;
    return recvfrom(fd, buf, len, flags, from, fromlen);
}

static ares_ssize_t dns_io_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *data)
{
    (void)data;
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    return sendmsg(fd, &m, MSG_NOSIGNAL);
}

const struct ares_socket_functions dns_io_socket_functions = {
    .asocket = dns_io_socket,
    .aclose = dns_io_close,
    .aconnect = dns_io_connect,
    .arecvfrom = dns_io_recvfrom,
    .asendv = dns_io_sendv,
};

void dns_io_timer_fired(struct engine_timer *t)
{
    struct dns *d = (struct dns *)((char *)t - offsetof(struct dns, timer));
    ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dns_io_settle(d);
}

void dns_io_settle(struct dns *d)
{
    if (d->destroying)
        return;
    if (!d->resolving)
        dns_deliver(d);
    uint64_t now = engine_now_ms(d->w);
    if (d->done_head) {
        engine_timer_arm(d->w, &d->timer, now);
        return;
    }
    struct timeval tv;
    const struct timeval *next = ares_timeout(d->channel, NULL, &tv);
    if (!next) {
        engine_timer_disarm(d->w, &d->timer);
        return;
    }
    /* Rounded up: a timer that fires early finds nothing due and spins. */
    uint64_t ms = (uint64_t)next->tv_sec * 1000 + ((uint64_t)next->tv_usec + 999) / 1000;
    engine_timer_arm(d->w, &d->timer, now + ms);
}
