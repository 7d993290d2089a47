#include "core/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* sendmail's default listen backlog (confLISTEN_QUEUE_SIZE is 10 in old releases; the
 * kernel caps this at net.core.somaxconn anyway). Bursts of connections are the norm on a
 * relay, so ask for a large one. */
#define LISTENER_BACKLOG 4096

static int listener_sockaddr(const struct config_listener *l, struct sockaddr_storage *ss,
                             socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (l->family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(l->port);
        *len = sizeof(*sin6);
        return inet_pton(AF_INET6, l->address, &sin6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(l->port);
    *len = sizeof(*sin);
    return inet_pton(AF_INET, l->address, &sin->sin_addr) == 1 ? 0 : -1;
}

static int listener_one(const struct config_listener *l, const struct sockaddr_storage *ss,
                        socklen_t len, char *err, size_t errlen)
{
    static const int on = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listener %s: socket: %s", l->name, strerror(errno));
        return -1;
    }
    const char *what = "setsockopt";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0 ||
        /* An IPv6 listener serves IPv6 only; IPv4 gets its own listener, as in sendmail. */
        (ss->ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0))
        goto fail;
    what = "bind";
    if (bind(fd, (const struct sockaddr *)ss, len) < 0)
        goto fail;
    what = "listen";
    if (listen(fd, LISTENER_BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "listener %s: %s %s port %u: %s", l->name, what, l->address,
             (unsigned)l->port, strerror(errno));
    close(fd);
    return -1;
}

/* SO_REUSEPORT lets a socket join any group of the same user on the same port: a second
 * ringmaild (or anything else of root's) already listening there would silently share the
 * connections. A plain bind first, which anyone bound there refuses, says whether the port
 * is free; the group is bound right after. */
static int listener_free(const struct config_listener *l, const struct sockaddr_storage *ss,
                         socklen_t len, char *err, size_t errlen)
{
    static const int on = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
                     (ss->ss_family == AF_INET6 &&
                      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0) ||
                     bind(fd, (const struct sockaddr *)ss, len) < 0
                 ? -1
                 : 0;
    if (rc < 0 && errno == EADDRINUSE)
        snprintf(err, errlen,
                 "listener %s: %s port %u is in use by another program (another ringmaild?)",
                 l->name, l->address, (unsigned)l->port);
    else if (rc < 0)
        snprintf(err, errlen, "listener %s: bind %s port %u: %s", l->name, l->address,
                 (unsigned)l->port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

int listener_open(const struct config_listener *l, unsigned workers, int *fds, char *err,
                  size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (listener_sockaddr(l, &ss, &len) < 0) {
        snprintf(err, errlen, "listener %s: '%s' is not an IPv%c address", l->name, l->address,
                 l->family == AF_INET6 ? '6' : '4');
        return -1;
    }
    if (listener_free(l, &ss, len, err, errlen) < 0)
        return -1;
    for (unsigned i = 0; i < workers; i++) {
        fds[i] = listener_one(l, &ss, len, err, errlen);
        if (fds[i] < 0) {
            while (i > 0)
                close(fds[--i]);
            return -1;
        }
    }
    return 0;
}

/* Whether a process answers on the socket file at `a`: connect() says (a dead daemon's
 * file refuses). 1 live, 0 stale, -1 with errno. */
static int listener_unix_live(const struct sockaddr_un *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, (const struct sockaddr *)a, sizeof(*a));
    int saved = errno;
    close(fd);
    if (rc == 0)
        return 1;
    errno = saved;
    return errno == ECONNREFUSED || errno == ENOENT ? 0 : -1;
}

/* A path free for the socket: nothing there, or a stale socket file (removed). */
static int listener_unix_clear(const char *what, const struct sockaddr_un *a, char *err,
                               size_t errlen)
{
    struct stat st;
    if (lstat(a->sun_path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s %s: %s", what, a->sun_path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s %s: exists and is not a socket; remove it or choose another path",
                 what, a->sun_path);
        return -1;
    }
    int live = listener_unix_live(a);
    if (live == 1) {
        snprintf(err, errlen, "%s %s is in use by a running daemon (another ringmaild?)", what,
                 a->sun_path);
        return -1;
    }
    if (live < 0) {
        snprintf(err, errlen, "%s %s: cannot tell whether a daemon answers there: %s", what,
                 a->sun_path, strerror(errno));
        return -1;
    }
    if (unlink(a->sun_path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "%s %s: cannot remove the stale socket: %s", what, a->sun_path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int listener_open_unix(const char *what, const char *path, bool set_owner, uid_t owner, gid_t group,
                       struct listener_unix *u, char *err, size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    u->fd = -1;
    if (strlen(path) >= sizeof(a.sun_path)) {
        snprintf(err, errlen, "%s %s: longer than a unix socket path may be (%zu octets)", what,
                 path, sizeof(a.sun_path) - 1);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    if (listener_unix_clear(what, &a, err, errlen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const char *step = "socket";
    struct stat st;
    if (fd < 0)
        goto fail;
    step = "bind";
    if (bind(fd, (const struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    /* The mode of the file, not of the socket: fchmod() on a socket does not reach it. */
    step = "chmod";
    if (chmod(path, 0666) < 0)
        goto fail_bound;
    step = "chown";
    if (set_owner && lchown(path, owner, group) < 0)
        goto fail_bound;
    step = "listen";
    if (listen(fd, LISTENER_BACKLOG) < 0)
        goto fail_bound;
    step = "stat";
    if (lstat(path, &st) < 0)
        goto fail_bound;
    *u = (struct listener_unix){fd, st.st_dev, st.st_ino};
    return 0;
fail_bound:
    snprintf(err, errlen, "%s %s: %s: %s", what, path, step, strerror(errno));
    unlink(path);
    close(fd);
    return -1;
fail:
    snprintf(err, errlen, "%s %s: %s: %s", what, path, step, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

void listener_unix_remove(const char *path, const struct listener_unix *u)
{
    struct stat st;
    if (path && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == u->dev &&
        st.st_ino == u->ino)
        unlink(path);
}
