/*
 * util/engine_connect.c — outbound connections: the socket, the connect through the ring,
 * and the hand-over to the ordinary connection machinery once it is established.
 *
 * An outbound connection takes a slot at once, flagged OUTBOUND (its ctx is then an
 * engine_outbound: the layer's callbacks and context, and the address the kernel reads)
 * and CONNECTING until the connect's completion: meanwhile it neither receives nor sends
 * (engine_send_queue and engine_recv_update skip it), but its timer, its output queue and
 * its pause work as for any connection. A close while connecting cancels the connect, and
 * the slot is reaped like any other once the completion is back. A failure before the
 * connect (no socket, too near the descriptor limit, bind) closes the slot at once with
 * that errno, so the layer hears of every failure the same way: on_closed, from the loop.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/engine_int.h"
#include "util/log.h"

static bool engine_connect_addr_ok(const struct sockaddr *a, socklen_t len)
{
    if (!a)
        return false;
    if (a->sa_family == AF_INET)
        return len >= sizeof(struct sockaddr_in) && len <= sizeof(struct sockaddr_storage);
    if (a->sa_family == AF_INET6)
        return len >= sizeof(struct sockaddr_in6) && len <= sizeof(struct sockaddr_storage);
    /* a path of at least one octet; an abstract name (sun_path[0] == 0) is not taken */
    if (a->sa_family == AF_UNIX)
        return len > offsetof(struct sockaddr_un, sun_path) + 1 &&
               len <= sizeof(struct sockaddr_un) &&
               ((const struct sockaddr_un *)a)->sun_path[0] != '\0';
    return false;
}

static in_port_t engine_addr_port(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_port;
    return ((const struct sockaddr_in6 *)a)->sin6_port;
}

/* The socket for a connect from `from` (NULL: any), or -errno. A local address without a
 * port gets one only at the connect (IP_BIND_ADDRESS_NO_PORT), so the 4-tuple decides and
 * many connections from one address to many destinations do not exhaust its ports. */
static int engine_connect_socket(struct engine_worker *w, int family, const struct sockaddr *from,
                                 socklen_t fromlen)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (engine_fd_reserved(w, fd)) {
        close(fd);
        return -EMFILE;
    }
    int one = 1;
    if (family != AF_UNIX && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        log_warn("engine: worker %u: TCP_NODELAY on an outbound connection: %s", w->index,
                 strerror(errno));
    if (from) {
        if (engine_addr_port(from) == 0)
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, from, fromlen) < 0) {
            int err = errno;
            close(fd);
            return -err;
        }
    }
    return fd;
}

int engine_connect(struct engine_worker *w, const struct sockaddr *to, socklen_t tolen,
                   const struct sockaddr *from, socklen_t fromlen,
                   const struct engine_conn_callbacks *cb, void *ctx, engine_conn_id *id_out)
{
    if (!engine_connect_addr_ok(to, tolen) || !cb || !cb->on_recv || !cb->on_closed ||
        !cb->on_connected || !id_out ||
        (from && (!engine_connect_addr_ok(from, fromlen) || from->sa_family != to->sa_family ||
                  from->sa_family == AF_UNIX))) {
        errno = EINVAL;
        return -1;
    }
    if (w->exit_requested) {
        errno = ECANCELED;
        return -1;
    }
    struct engine_outbound *o = malloc(sizeof *o);
    if (!o) {
        errno = ENOMEM;
        return -1;
    }
    *o = (struct engine_outbound){.cb = cb, .ctx = ctx, .tolen = tolen};
    memcpy(&o->to, to, tolen);
    int fd = engine_connect_socket(w, to->sa_family, from, fromlen);
    uint32_t idx = engine_slot_alloc(w, fd >= 0 ? fd : -1, ENGINE_F_OUTBOUND);
    if (idx == ENGINE_NO_SLOT) {
        if (fd >= 0)
            close(fd);
        free(o);
        errno = ENOMEM;
        return -1;
    }
    struct engine_slot *s = engine_slot_at(w, idx);
    s->ctx = o;
    *id_out = engine_slot_id(s, idx);
    if (fd < 0) {
        engine_conn_close_now(w, idx, -fd);
        return 0;
    }
    struct io_uring_sqe *sqe = engine_get_sqe(w, engine_slot_ud(s, idx, ENGINE_K_CONNECT));
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&o->to, o->tolen);
    s->flags |= ENGINE_F_CONNECTING;
    s->inflight++;
    return 0;
}

void engine_connect_complete(struct engine_worker *w, uint64_t ud, int res)
{
    struct engine_slot *s = engine_slot_of(w, ud);
    if (!s)
        return;
    uint32_t idx = (uint32_t)ud >> ENGINE_KIND_BITS;
    s->flags &= (uint16_t)~ENGINE_F_CONNECTING;
    s->inflight--;
    if (s->flags & ENGINE_F_CANCELLED) {
        engine_slot_settle(w, idx, s);
        return;
    }
    if (res < 0) {
        engine_conn_close_now(w, idx, -res);
        return;
    }
    void *ctx;
    const struct engine_conn_callbacks *cb = engine_slot_callbacks(w, s, &ctx);
    cb->on_connected(ctx);
    /* The slot stays until the loop reaps it, whatever the callback did. */
    if (s->flags & ENGINE_F_CANCELLED)
        return;
    if (s->out_head)
        engine_send_queue(w, idx, s);
    engine_recv_update(w, idx, s);
}
