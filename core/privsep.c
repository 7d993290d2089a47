#include "core/privsep.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int privsep_pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

int privsep_send_payload(int sock, const void *data, size_t len, const int *fds, size_t nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(PRIVSEP_MAX_FDS * sizeof(int))];
    } ctl;
    if (nfds > PRIVSEP_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov = {(void *)data, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        memset(&ctl, 0, sizeof(ctl));
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -1;
}

ssize_t privsep_recv_payload(int sock, void *data, size_t len, int fds[PRIVSEP_MAX_FDS],
                             size_t *nfds, int flags)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(PRIVSEP_MAX_FDS * sizeof(int))];
    } ctl;
    struct iovec iov = {data, len};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.buf,
                       .msg_controllen = sizeof(ctl.buf)};
    *nfds = 0;
    ssize_t n;
    do
        n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | flags);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < got; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*nfds < PRIVSEP_MAX_FDS)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
    if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        for (size_t i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        errno = EPROTO;
        return -1;
    }
    return n;
}

/* A control message with a value; one without is the type alone (its first four bytes). */
struct privsep_valued {
    uint32_t type;
    uint32_t zero;
    uint64_t value;
};

int privsep_send(int sock, uint32_t type, int fd)
{
    return privsep_send_payload(sock, &type, sizeof(type), &fd, fd >= 0 ? 1 : 0);
}

int privsep_send_value(int sock, uint32_t type, uint64_t value)
{
    struct privsep_valued m = {type, 0, value};
    return privsep_send_payload(sock, &m, sizeof(m), NULL, 0);
}

int privsep_recv(int sock, uint32_t *type, uint64_t *value, int *fd)
{
    int fds[PRIVSEP_MAX_FDS];
    size_t nfds;
    struct privsep_valued m = {0};
    ssize_t n = privsep_recv_payload(sock, &m, sizeof(m), fds, &nfds, 0);
    *fd = -1;
    *type = m.type;
    *value = n == (ssize_t)sizeof(m) ? m.value : 0;
    if ((n == (ssize_t)sizeof(m.type) || n == (ssize_t)sizeof(m)) && nfds <= 1) {
        *fd = nfds ? fds[0] : -1;
        return 1;
    }
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    if (n <= 0)
        return (int)n;
    errno = EPROTO;
    return -1;
}
