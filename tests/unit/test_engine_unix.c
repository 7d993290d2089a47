/*
 * tests/unit/test_engine_unix.c — the engine accepting on a unix socket (the daemon's local
 * submission and control sockets): one socket handed to worker 0 of two, a peer's bytes
 * arrive, and engine_conn_peer_cred names the connecting process; a TCP connection and a
 * stale id are refused by engine_conn_peer_cred.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "engine_fixture.h"

static struct {
    unsigned accepted, received, closed;
    unsigned worker; /* the index of the worker that accepted */
    unsigned listener;
    int family;
    int cred_rc, cred_errno;
    struct ucred cred;
    engine_conn_id id;
    char data[64];
    size_t len;
} R;

static void *unix_accept(struct engine_worker *w, engine_conn_id id, unsigned listener,
                         const struct sockaddr *peer, socklen_t peerlen,
                         const struct sockaddr *local, socklen_t locallen)
{
    (void)local, (void)locallen;
    pthread_mutex_lock(&F.lock);
    R.worker = engine_worker_index(w);
    R.listener = listener;
    R.id = id;
    R.cred_rc = engine_conn_peer_cred(w, id, &R.cred);
    R.cred_errno = R.cred_rc < 0 ? errno : 0;
    R.family = peerlen >= sizeof(sa_family_t) ? peer->sa_family : -1;
    pthread_mutex_unlock(&F.lock);
    note(&R.accepted);
    return &R;
}

static void unix_recv(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    pthread_mutex_lock(&F.lock);
    if (R.len + len <= sizeof(R.data)) {
        memcpy(R.data + R.len, data, len);
        R.len += len;
    }
    R.received++;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

static void unix_closed(void *ctx, int err)
{
    (void)ctx, (void)err;
    note(&R.closed);
}

static const struct engine_callbacks unix_callbacks = {
    .worker_init = engine_fixture_worker_init,
    .on_accept = unix_accept,
    .on_recv = unix_recv,
    .on_closed = unix_closed,
    .on_message = engine_fixture_on_message,
};

static struct sockaddr_un unix_path(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "/tmp/test_engine_unix.%ld.sock", (long)getpid());
    return a;
}

static int unix_listener(const struct sockaddr_un *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    SYS(fd);
    unlink(a->sun_path);
    SYS(bind(fd, (const struct sockaddr *)a, sizeof(*a)));
    SYS(listen(fd, 16));
    return fd;
}

static engine_conn_id stale_id;
static int stale_rc, stale_errno;

static void ask_stale(struct engine_worker *w)
{
    struct ucred c;
    stale_rc = engine_conn_peer_cred(w, stale_id, &c);
    stale_errno = errno;
}

static void test_unix_accept_and_peer_cred(void **state)
{
    (void)state;
    memset(&R, 0, sizeof(R));
    struct sockaddr_un a = unix_path();
    int lfd = unix_listener(&a);
    /* Two workers, one socket: the daemon's unix sockets are accepted on worker 0 only. */
    struct engine_settings s = {.workers = 2};
    char err[512];
    F.e = engine_new(&s, &unix_callbacks, err, sizeof err);
    if (!F.e)
        fail_msg("engine_new: %s", err);
    assert_int_equal(engine_listen(F.e, 7, &lfd, 1), 0);
    if (engine_start(F.e, err, sizeof err) < 0)
        fail_msg("engine_start: %s", err);

    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SYS(c);
    SYS(connect(c, (const struct sockaddr *)&a, sizeof(a)));
    SYS(write(c, "hello\n", 6));
    WAIT_FOR(R.accepted == 1 && R.len == 6);
    assert_int_equal(R.worker, 0);
    assert_int_equal(R.listener, 7);
    assert_int_equal(R.family, AF_UNIX);
    assert_int_equal(R.cred_rc, 0);
    assert_int_equal(R.cred.pid, getpid());
    assert_int_equal(R.cred.uid, getuid());
    assert_int_equal(R.cred.gid, getgid());
    assert_memory_equal(R.data, "hello\n", 6);

    close(c);
    WAIT_FOR(R.closed == 1);
    stale_id = R.id; /* its slot is free now */
    run(ask_stale);
    assert_int_equal(stale_rc, -1);
    assert_int_equal(stale_errno, EBADF);
    engine_fixture_stop();
    unlink(a.sun_path);
}

/* Linux answers SO_PEERCRED on TCP too (with nobody's uid): the engine refuses instead. */
static void test_tcp_has_no_peer_cred(void **state)
{
    (void)state;
    memset(&R, 0, sizeof(R));
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    SYS(lfd);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr = engine_fixture_random_address()};
    socklen_t len = sizeof(in);
    SYS(bind(lfd, (struct sockaddr *)&in, sizeof(in)));
    SYS(listen(lfd, 16));
    SYS(getsockname(lfd, (struct sockaddr *)&in, &len));
    struct engine_settings s = {.workers = 1};
    engine_fixture_start(&s, &unix_callbacks, &lfd, 1);

    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SYS(c);
    SYS(connect(c, (const struct sockaddr *)&in, sizeof(in)));
    WAIT_FOR(R.accepted == 1);
    assert_int_equal(R.family, AF_INET);
    assert_int_equal(R.cred_rc, -1);
    assert_int_equal(R.cred_errno, EAFNOSUPPORT);
    close(c);
    WAIT_FOR(R.closed == 1);
    engine_fixture_stop();
}

int main(void)
{
    if (!engine_fixture_usable())
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_accept_and_peer_cred),
        cmocka_unit_test(test_tcp_has_no_peer_cred),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
