/*
 * tests/unit/test_engine_connect.c — outbound connections (engine_connect) against real
 * loopback TCP peers (and one unix stream socket).
 *
 * The engine runs one worker; each test hands it a scenario (a function run on the
 * worker's thread through engine_post) that opens connections with the callbacks below,
 * which only record what happened: every assertion is made here, after waiting (with a
 * timeout) for the record. The peer is the test's own: a listener on a random address in
 * 127.0.0.0/8 (never 127.0.0.1, see test_engine.c for why) served by a thread that greets
 * (when asked) and echoes. A connect that stays pending is made reliably on loopback by
 * filling a listener's accept queue (backlog 0, nobody accepting): Linux then drops the
 * SYNs. Skips (77) when the kernel refuses io_uring.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 10000
#include "engine_fixture.h"

#define MANY      200u
#define MAX_EXTRA 16
#define GREETING  "220 peer\r\n"

struct oconn {
    engine_conn_id id;
    int rc; /* engine_connect's */
    int rc_errno;
    bool connected;
    bool closed;
    bool recv_before_connected;
    int err;
    unsigned timer_fires;
    size_t want; /* flush-close once this much was received; 0 = never */
    const char *connected_send;
    size_t rxlen;
    char rx[128];
};

static struct tstate {
    /* the peer */
    int lfd;
    int stop_pipe[2];
    pthread_t peer;
    bool peer_running;
    bool greet;
    struct sockaddr_in peer_addr;
    struct sockaddr_in peer_seen; /* the address of the last connection it accepted */
    unsigned peer_accepted;
    int extra[MAX_EXTRA]; /* other sockets, closed by the teardown; -1 = free */
    /* Everything from here on is cleared by start(). */
    unsigned connected, closed, finis;
    unsigned accepted_conns;            /* engine_worker_connections() seen by a scenario */
    unsigned accepted, accepted_closed; /* by the engine's own listener */
    int accepted_err;
    int stale_send;
    struct oconn c[MANY];
} T;

/* 127.a.b.c with a >= 1: never 127.0.0.1, nor anything else in 127.0.0.0/16. */
static struct sockaddr_in random_address(void)
{
    return (struct sockaddr_in){.sin_family = AF_INET, .sin_addr = engine_fixture_random_address()};
}

static void keep_fd(int fd)
{
    for (unsigned i = 0; i < MAX_EXTRA; i++) {
        if (T.extra[i] < 0) {
            T.extra[i] = fd;
            return;
        }
    }
    close(fd);
    fail_msg("too many extra sockets");
}

/* A socket bound to a fresh random address and a port the kernel picks; listening with
 * `backlog` unless it is negative. */
static int bound_socket(int backlog, struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SYS(fd);
    *addr = random_address();
    socklen_t len = sizeof *addr;
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) < 0 ||
        (backlog >= 0 && listen(fd, backlog) < 0)) {
        int err = errno;
        close(fd);
        fail_msg("listener on %s: %s", inet_ntoa(addr->sin_addr), strerror(err));
    }
    return fd;
}

/* --- the peer: greets (T.greet) and echoes, for every connection it accepts --- */

static void *peer_main(void *arg)
{
    (void)arg;
    enum { MAXFD = MANY + 2 };
    struct pollfd p[MAXFD];
    unsigned n = 2;
    p[0] = (struct pollfd){.fd = T.stop_pipe[0], .events = POLLIN};
    p[1] = (struct pollfd){.fd = T.lfd, .events = POLLIN};
    for (;;) {
        if (poll(p, n, -1) < 0)
            continue;
        if (p[0].revents)
            break;
        if ((p[1].revents & POLLIN) && n < MAXFD) {
            struct sockaddr_in from;
            socklen_t len = sizeof from;
            int fd = accept4(T.lfd, (struct sockaddr *)&from, &len, SOCK_CLOEXEC);
            if (fd >= 0) {
                if (T.greet)
                    send(fd, GREETING, strlen(GREETING), MSG_NOSIGNAL);
                p[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
                pthread_mutex_lock(&F.lock);
                T.peer_seen = from;
                T.peer_accepted++;
                pthread_cond_broadcast(&F.cond);
                pthread_mutex_unlock(&F.lock);
            }
        }
        for (unsigned i = 2; i < n; i++) {
            if (!p[i].revents)
                continue;
            char buf[512];
            ssize_t got = recv(p[i].fd, buf, sizeof buf, 0);
            if (got > 0 && send(p[i].fd, buf, (size_t)got, MSG_NOSIGNAL) == got)
                continue;
            close(p[i].fd);
            p[i--] = p[--n];
        }
    }
    for (unsigned i = 2; i < n; i++)
        close(p[i].fd);
    return NULL;
}

static void peer_start(bool greet)
{
    T.greet = greet;
    T.lfd = bound_socket(MANY + 50, &T.peer_addr);
    SYS(pipe2(T.stop_pipe, O_CLOEXEC));
    if (pthread_create(&T.peer, NULL, peer_main, NULL) != 0)
        fail_msg("pthread_create");
    T.peer_running = true;
}

static void peer_stop(void)
{
    if (!T.peer_running)
        return;
    (void)!write(T.stop_pipe[1], "x", 1);
    pthread_join(T.peer, NULL);
    close(T.stop_pipe[0]);
    close(T.stop_pipe[1]);
    close(T.lfd);
    T.peer_running = false;
}

/* A listener whose accept queue is full (backlog 0, never accepted from): a connect to it
 * stays pending, its SYNs dropped. Connects until one stays pending for 300 ms. */
static struct sockaddr_in blackhole(void)
{
    struct sockaddr_in addr;
    keep_fd(bound_socket(0, &addr));
    for (unsigned i = 0; i < 8; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        SYS(fd);
        keep_fd(fd);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
            continue;
        if (errno != EINPROGRESS)
            fail_msg("filling a backlog: connect: %s", strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 300) == 0)
            return addr;
    }
    fail_msg("could not fill a listener's accept queue");
    return addr;
}

/* --- the layer: outbound connection callbacks --- */

static void o_on_connected(void *ctx)
{
    struct oconn *c = ctx;
    pthread_mutex_lock(&F.lock);
    c->connected = true;
    T.connected++;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
    if (c->connected_send)
        engine_conn_send(F.w, c->id, c->connected_send, strlen(c->connected_send));
}

static void o_on_recv(void *ctx, const char *data, size_t len)
{
    struct oconn *c = ctx;
    pthread_mutex_lock(&F.lock);
    if (!c->connected)
        c->recv_before_connected = true;
    size_t room = sizeof c->rx - 1 - c->rxlen;
    size_t n = len < room ? len : room;
    memcpy(c->rx + c->rxlen, data, n);
    c->rxlen += n;
    bool done = c->want && c->rxlen >= c->want;
    pthread_mutex_unlock(&F.lock);
    if (done)
        engine_conn_close(F.w, c->id, true);
}

/* The connect timeout, as the layer would handle it. */
static void o_on_timer(void *ctx)
{
    struct oconn *c = ctx;
    pthread_mutex_lock(&F.lock);
    c->timer_fires++;
    pthread_mutex_unlock(&F.lock);
    engine_conn_close(F.w, c->id, false);
}

static void o_on_closed(void *ctx, int err)
{
    struct oconn *c = ctx;
    pthread_mutex_lock(&F.lock);
    if (c->closed)
        fail_msg("on_closed twice");
    c->closed = true;
    c->err = err;
    T.closed++;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

static const struct engine_conn_callbacks o_callbacks = {
    .on_recv = o_on_recv,
    .on_timer = o_on_timer,
    .on_closed = o_on_closed,
    .on_connected = o_on_connected,
};

/* Opens T.c[i] to `to` (from `from` if not NULL), recording engine_connect's result. */
static void open_conn(struct engine_worker *w, unsigned i, const struct sockaddr_in *to,
                      const struct sockaddr_in *from)
{
    struct oconn *c = &T.c[i];
    errno = 0;
    c->rc =
        engine_connect(w, (const struct sockaddr *)to, sizeof *to, (const struct sockaddr *)from,
                       from ? sizeof *from : 0, &o_callbacks, c, &c->id);
    c->rc_errno = errno;
}

/* --- the engine: no listener; scenarios arrive as messages --- */

static void t_worker_fini(struct engine_worker *w, void *ctx)
{
    (void)w;
    (void)ctx;
    note(&T.finis);
}

/* The engine's own listener (test_loop_through_own_listener): an echo. */
struct aconn {
    engine_conn_id id;
};

static void *t_on_accept(struct engine_worker *w, engine_conn_id id, unsigned listener,
                         const struct sockaddr *peer, socklen_t peerlen,
                         const struct sockaddr *local, socklen_t locallen)
{
    (void)w, (void)listener, (void)peer, (void)peerlen, (void)local, (void)locallen;
    struct aconn *a = malloc(sizeof *a);
    if (a)
        a->id = id;
    note(&T.accepted);
    return a;
}

static void t_on_recv(void *ctx, const char *data, size_t len)
{
    const struct aconn *a = ctx;
    engine_conn_send(F.w, a->id, data, len);
}

static void t_on_closed(void *ctx, int err)
{
    pthread_mutex_lock(&F.lock);
    T.accepted_closed++;
    T.accepted_err = err;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
    free(ctx);
}

static const struct engine_callbacks callbacks = {
    .worker_init = engine_fixture_worker_init,
    .worker_fini = t_worker_fini,
    .on_accept = t_on_accept,
    .on_recv = t_on_recv,
    .on_closed = t_on_closed,
    .on_message = engine_fixture_on_message,
};

/* The engine, listening on `lfd` unless it is negative. */
static void start_listening(int lfd)
{
    memset(&T.connected, 0, sizeof T - offsetof(struct tstate, connected));
    /* Outbound connections are not limited by max_connections. */
    struct engine_settings s = {.workers = 1, .max_connections = 16};
    engine_fixture_start(&s, &callbacks, &lfd, lfd >= 0);
}

static void start(void)
{
    start_listening(-1);
}

static int setup(void **state)
{
    (void)state;
    for (unsigned i = 0; i < MAX_EXTRA; i++)
        T.extra[i] = -1;
    T.peer_accepted = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    restore_nofile();
    if (F.e)
        engine_fixture_stop();
    peer_stop();
    for (unsigned i = 0; i < MAX_EXTRA; i++) {
        if (T.extra[i] >= 0)
            close(T.extra[i]);
        T.extra[i] = -1;
    }
    return 0;
}

static void assert_rx(const struct oconn *c, const char *text)
{
    if (c->rxlen != strlen(text) || memcmp(c->rx, text, c->rxlen) != 0)
        fail_msg("received \"%.*s\", expected \"%s\"", (int)c->rxlen, c->rx, text);
}

/* --- tests --- */

static struct sockaddr_in target; /* where the next scenario connects */
static struct sockaddr_in source; /* the local address it binds, for from_* */

static void sc_echo(struct engine_worker *w)
{
    T.c[0].connected_send = "ping\r\n";
    T.c[0].want = strlen(GREETING "ping\r\n");
    open_conn(w, 0, &target, NULL);
}

static void sc_stale_send(struct engine_worker *w)
{
    T.stale_send = engine_conn_send(w, T.c[0].id, "x", 1);
}

/* Bytes both ways: the peer speaks first (a greeting), the layer answers once connected,
 * the peer echoes; the layer's flush-close ends it with err 0. */
static void test_connect_echo(void **state)
{
    (void)state;
    peer_start(true);
    target = T.peer_addr;
    start();
    run(sc_echo);
    assert_int_equal(T.c[0].rc, 0);
    assert_true(T.c[0].id != 0);
    WAIT_FOR(T.closed == 1);
    assert_true(T.c[0].connected);
    assert_false(T.c[0].recv_before_connected);
    assert_int_equal(T.c[0].err, 0);
    assert_rx(&T.c[0], GREETING "ping\r\n");
    run(sc_stale_send);
    assert_int_equal(T.stale_send, -1);
    engine_fixture_stop();
    assert_int_equal(T.finis, 1);
}

static void sc_connect_one(struct engine_worker *w)
{
    open_conn(w, 0, &target, NULL);
}

static void sc_connect_send(struct engine_worker *w)
{
    open_conn(w, 0, &target, NULL);
    engine_conn_send(w, T.c[0].id, "queued\r\n", 8);
}

/* A port where nothing listens (bound, so nobody else takes it): ECONNREFUSED, also when
 * output was queued (the connect's error is the one reported, not the send's). */
static void test_connect_refused(void **state)
{
    (void)state;
    int fd = bound_socket(-1, &target);
    keep_fd(fd);
    start();
    run(sc_connect_one);
    assert_int_equal(T.c[0].rc, 0);
    WAIT_FOR(T.closed == 1);
    assert_false(T.c[0].connected);
    assert_int_equal(T.c[0].err, ECONNREFUSED);

    memset(&T.c[0], 0, sizeof T.c[0]);
    run(sc_connect_send);
    WAIT_FOR(T.closed == 2);
    assert_false(T.c[0].connected);
    assert_int_equal(T.c[0].err, ECONNREFUSED);
    engine_fixture_stop();
}

static void sc_connect_timeout(struct engine_worker *w)
{
    open_conn(w, 0, &target, NULL);
    engine_conn_set_timer(w, T.c[0].id, engine_now_ms(w) + 100);
}

/* The layer's connect timeout: the timer fires while the connect is pending, and the
 * close it makes cancels the connect. */
static void test_connect_timeout(void **state)
{
    (void)state;
    target = blackhole();
    start();
    run(sc_connect_timeout);
    assert_int_equal(T.c[0].rc, 0);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.c[0].timer_fires, 1);
    assert_false(T.c[0].connected);
    assert_int_equal(T.c[0].err, 0);
    engine_fixture_stop();
}

static void sc_close_now(struct engine_worker *w)
{
    engine_conn_close(w, T.c[0].id, false);
}

static void sc_close_flush(struct engine_worker *w)
{
    engine_conn_close(w, T.c[0].id, true);
}

static void sc_connect_close_at_once(struct engine_worker *w)
{
    T.c[0].connected_send = "never\r\n";
    open_conn(w, 0, &target, NULL);
    engine_conn_send(w, T.c[0].id, "queued\r\n", 8);
    engine_conn_close(w, T.c[0].id, true);
}

/* A close while connecting, flush or not, cancels the connect: on_closed(0), and
 * on_connected never runs, whether the connect was already in the kernel (pending) or
 * not even submitted yet (closed in the same call, to a peer that would accept). */
static void test_close_while_connecting(void **state)
{
    (void)state;
    target = blackhole();
    start();
    run(sc_connect_one);
    sleep_ms(50);
    run(sc_close_now);
    WAIT_FOR(T.closed == 1);
    assert_false(T.c[0].connected);
    assert_int_equal(T.c[0].err, 0);

    memset(&T.c[0], 0, sizeof T.c[0]);
    run(sc_connect_one);
    sleep_ms(50);
    run(sc_close_flush);
    WAIT_FOR(T.closed == 2);
    assert_false(T.c[0].connected);
    assert_int_equal(T.c[0].err, 0);

    peer_start(false);
    target = T.peer_addr;
    memset(&T.c[0], 0, sizeof T.c[0]);
    run(sc_connect_close_at_once);
    WAIT_FOR(T.closed == 3);
    assert_false(T.c[0].connected);
    assert_int_equal(T.c[0].err, 0);
    assert_int_equal(T.c[0].rxlen, 0);
    engine_fixture_stop();
}

static char many_lines[MANY][16];

static void sc_many(struct engine_worker *w)
{
    for (unsigned i = 0; i < MANY; i++) {
        snprintf(many_lines[i], sizeof many_lines[i], "conn %03u\r\n", i);
        T.c[i].connected_send = many_lines[i];
        T.c[i].want = strlen(GREETING) + strlen(many_lines[i]);
        open_conn(w, i, &target, NULL);
    }
    T.accepted_conns = engine_worker_connections(w);
}

/* MANY connections opened in one go on one worker whose max_connections is 16: all
 * connect, all exchange their own bytes, none counts as accepted. */
static void test_many_at_once(void **state)
{
    (void)state;
    peer_start(true);
    target = T.peer_addr;
    start();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run(sc_many);
    assert_int_equal(T.accepted_conns, 0);
    WAIT_FOR(T.closed == MANY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%u connections opened, used and closed in %.1f ms\n", MANY,
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    for (unsigned i = 0; i < MANY; i++) {
        char want[64];
        snprintf(want, sizeof want, GREETING "%.15s", many_lines[i]);
        assert_int_equal(T.c[i].rc, 0);
        assert_true(T.c[i].connected);
        assert_int_equal(T.c[i].err, 0);
        assert_rx(&T.c[i], want);
    }
    assert_int_equal(T.peer_accepted, MANY);
    engine_fixture_stop();
}

static void sc_send_early(struct engine_worker *w)
{
    T.c[0].connected_send = "late\r\n";
    T.c[0].want = strlen("early\r\nmore\r\nlate\r\n");
    open_conn(w, 0, &target, NULL);
    engine_conn_send(w, T.c[0].id, "early\r\n", 7);
    engine_conn_send(w, T.c[0].id, "more\r\n", 6);
}

/* Output queued before the connection is established goes out once it is, in order and
 * before what on_connected sends. */
static void test_send_before_connected(void **state)
{
    (void)state;
    peer_start(false);
    target = T.peer_addr;
    start();
    run(sc_send_early);
    WAIT_FOR(T.closed == 1);
    assert_true(T.c[0].connected);
    assert_int_equal(T.c[0].err, 0);
    assert_rx(&T.c[0], "early\r\nmore\r\nlate\r\n");
    engine_fixture_stop();
}

static void sc_from(struct engine_worker *w)
{
    T.c[0].connected_send = "from\r\n";
    T.c[0].want = 6;
    open_conn(w, 0, &target, &source);
}

/* A local address to connect from (port 0: any): the peer sees it; one that is not ours
 * fails through on_closed with the bind's errno. */
static void test_connect_from(void **state)
{
    (void)state;
    peer_start(false);
    target = T.peer_addr;
    source = random_address();
    start();
    run(sc_from);
    WAIT_FOR(T.closed == 1);
    assert_true(T.c[0].connected);
    assert_int_equal(T.c[0].err, 0);
    assert_int_equal(T.peer_seen.sin_addr.s_addr, source.sin_addr.s_addr);

    memset(&T.c[0], 0, sizeof T.c[0]);
    inet_pton(AF_INET, "192.0.2.1", &source.sin_addr); /* TEST-NET-1: not on this host */
    run(sc_from);
    assert_int_equal(T.c[0].rc, 0);
    WAIT_FOR(T.closed == 2);
    assert_false(T.c[0].connected);
    assert_int_equal(T.c[0].err, EADDRNOTAVAIL);
    engine_fixture_stop();
}

/* A descriptor within fd_reserve of RLIMIT_NOFILE: EMFILE through on_closed. */
static void test_fd_reserve(void **state)
{
    (void)state;
    peer_start(false);
    target = T.peer_addr;
    start();
    set_nofile((rlim_t)lowest_free_fd() + 8); /* fd_reserve is 64 */
    run(sc_connect_one);
    assert_int_equal(T.c[0].rc, 0);
    WAIT_FOR(T.closed == 1);
    restore_nofile();
    assert_false(T.c[0].connected);
    assert_int_equal(T.c[0].err, EMFILE);
    assert_int_equal(T.peer_accepted, 0);
    engine_fixture_stop();
}

static void sc_bad_args(struct engine_worker *w)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct sockaddr_in6 six = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    engine_conn_id id = 0;
    errno = 0;
    T.c[0].rc =
        engine_connect(w, (struct sockaddr *)&un, sizeof un, NULL, 0, &o_callbacks, &T.c[0], &id);
    T.c[0].rc_errno = errno;
    errno = 0;
    T.c[1].rc = engine_connect(w, (struct sockaddr *)&target, sizeof target,
                               (struct sockaddr *)&six, sizeof six, &o_callbacks, &T.c[1], &id);
    T.c[1].rc_errno = errno;
    static const struct engine_conn_callbacks no_connected = {.on_recv = o_on_recv,
                                                              .on_closed = o_on_closed};
    errno = 0;
    T.c[2].rc = engine_connect(w, (struct sockaddr *)&target, sizeof target, NULL, 0, &no_connected,
                               &T.c[2], &id);
    T.c[2].rc_errno = errno;
}

/* Arguments refused at once: -1 with EINVAL, and no callback ever. */
static void test_bad_arguments(void **state)
{
    (void)state;
    peer_start(false);
    target = T.peer_addr;
    start();
    run(sc_bad_args);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(T.c[i].rc, -1);
        assert_int_equal(T.c[i].rc_errno, EINVAL);
    }
    engine_fixture_stop();
    assert_int_equal(T.closed, 0);
    assert_int_equal(T.peer_accepted, 0);
}

static void sc_exit(struct engine_worker *w)
{
    open_conn(w, 0, &target, NULL);
    engine_worker_exit(w);
    open_conn(w, 1, &target, NULL);
}

/* A worker that exits ends a pending connect with ECANCELED and refuses new ones. */
static void test_exit_while_connecting(void **state)
{
    (void)state;
    target = blackhole();
    start();
    run(sc_exit);
    engine_join(F.e);
    engine_free(F.e);
    F.e = NULL;
    assert_int_equal(T.c[0].rc, 0);
    assert_true(T.c[0].closed);
    assert_int_equal(T.c[0].err, ECANCELED);
    assert_int_equal(T.c[1].rc, -1);
    assert_int_equal(T.c[1].rc_errno, ECANCELED);
    assert_false(T.c[1].closed);
    assert_int_equal(T.finis, 1);
}

static void sc_pause_early(struct engine_worker *w)
{
    T.c[0].connected_send = "held\r\n";
    open_conn(w, 0, &target, NULL);
    engine_conn_pause_recv(w, T.c[0].id);
}

static void sc_resume(struct engine_worker *w)
{
    T.c[0].want = strlen(GREETING "held\r\n");
    engine_conn_resume_recv(w, T.c[0].id);
}

/* A pause made while connecting holds receiving once connected, until resumed. */
static void test_pause_before_connected(void **state)
{
    (void)state;
    peer_start(true);
    target = T.peer_addr;
    start();
    run(sc_pause_early);
    WAIT_FOR(T.connected == 1);
    sleep_ms(100); /* the greeting and the echo have arrived by now: they must wait */
    pthread_mutex_lock(&F.lock);
    size_t early = T.c[0].rxlen;
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(early, 0);
    run(sc_resume);
    WAIT_FOR(T.closed == 1);
    assert_rx(&T.c[0], GREETING "held\r\n");
    engine_fixture_stop();
}

static struct sockaddr_in6 target6;

static void sc_connect6(struct engine_worker *w)
{
    struct oconn *c = &T.c[0];
    c->connected_send = "six\r\n";
    c->want = 6;
    c->rc = engine_connect(w, (struct sockaddr *)&target6, sizeof target6, NULL, 0, &o_callbacks, c,
                           &c->id);
}

/* IPv6: to a listener on ::1 (its port is the kernel's pick, and without SO_REUSEPORT
 * nobody can join it); the test's own thread plays the peer. */
static void test_connect_ipv6(void **state)
{
    (void)state;
    int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SYS(lfd);
    keep_fd(lfd);
    target6 = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t len = sizeof target6;
    if (bind(lfd, (struct sockaddr *)&target6, sizeof target6) < 0) {
        print_message("no ::1 here (%s): skipped\n", strerror(errno));
        skip();
    }
    SYS(getsockname(lfd, (struct sockaddr *)&target6, &len));
    SYS(listen(lfd, 4));
    start();
    run(sc_connect6);
    assert_int_equal(T.c[0].rc, 0);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    SYS(fd);
    keep_fd(fd);
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    SYS(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    char buf[5];
    ssize_t got = recv(fd, buf, sizeof buf, MSG_WAITALL);
    if (got != 5)
        fail_msg("received %zd bytes (%s); connected %d closed %d err %d", got,
                 got < 0 ? strerror(errno) : "", T.c[0].connected, T.c[0].closed, T.c[0].err);
    assert_memory_equal(buf, "six\r\n", 5);
    assert_int_equal(send(fd, "back\r\n", 6, MSG_NOSIGNAL), 6);
    WAIT_FOR(T.closed == 1);
    assert_true(T.c[0].connected);
    assert_int_equal(T.c[0].err, 0);
    assert_rx(&T.c[0], "back\r\n");
    engine_fixture_stop();
}

static struct sockaddr_un target_un;

static void sc_connect_unix(struct engine_worker *w)
{
    struct oconn *c = &T.c[0];
    c->connected_send = "lhlo\r\n";
    c->want = 6;
    c->rc = engine_connect(w, (struct sockaddr *)&target_un, sizeof target_un, NULL, 0,
                           &o_callbacks, c, &c->id);
}

static void sc_connect_unix_bad(struct engine_worker *w)
{
    struct oconn *c = &T.c[1];
    errno = 0;
    /* a unix socket has no source address to bind */
    c->rc =
        engine_connect(w, (struct sockaddr *)&target_un, sizeof target_un,
                       (struct sockaddr *)&target_un, sizeof target_un, &o_callbacks, c, &c->id);
    c->rc_errno = errno;
}

/* A unix stream socket (a local LMTP server's): connected, bytes both ways, closed
 * cleanly; a path nobody listens on is ENOENT through on_closed, as a refused TCP connect
 * is ECONNREFUSED. */
static void test_connect_unix(void **state)
{
    (void)state;
    char dir[] = "/tmp/engine-unix-XXXXXX";
    if (!mkdtemp(dir))
        fail_msg("mkdtemp: %s", strerror(errno));
    target_un = (struct sockaddr_un){.sun_family = AF_UNIX};
    snprintf(target_un.sun_path, sizeof target_un.sun_path, "%s/lmtp", dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SYS(lfd);
    keep_fd(lfd);
    SYS(bind(lfd, (struct sockaddr *)&target_un, sizeof target_un));
    SYS(listen(lfd, 4));
    start();
    run(sc_connect_unix);
    assert_int_equal(T.c[0].rc, 0);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    SYS(fd);
    keep_fd(fd);
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    SYS(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    char buf[6];
    assert_int_equal(recv(fd, buf, sizeof buf, MSG_WAITALL), 6);
    assert_memory_equal(buf, "lhlo\r\n", 6);
    assert_int_equal(send(fd, "220 x\n", 6, MSG_NOSIGNAL), 6);
    WAIT_FOR(T.closed == 1);
    assert_true(T.c[0].connected);
    assert_int_equal(T.c[0].err, 0);
    assert_rx(&T.c[0], "220 x\n");

    run(sc_connect_unix_bad);
    assert_int_equal(T.c[1].rc, -1);
    assert_int_equal(T.c[1].rc_errno, EINVAL);

    SYS(unlink(target_un.sun_path));
    memset(&T.c[0], 0, sizeof T.c[0]);
    run(sc_connect_unix);
    assert_int_equal(T.c[0].rc, 0);
    WAIT_FOR(T.closed == 2);
    assert_false(T.c[0].connected);
    assert_int_equal(T.c[0].err, ENOENT);
    engine_fixture_stop();
    SYS(rmdir(dir));
}

static void sc_loop(struct engine_worker *w)
{
    T.c[0].connected_send = "loop\r\n";
    T.c[0].want = 6;
    open_conn(w, 0, &target, NULL);
}

/* An outbound connection to the engine's own listener, on the same worker: the accepted
 * end (engine_callbacks) and the outbound end (its own callbacks) share the slot table;
 * each gets its own callbacks, and both end cleanly. */
static void test_loop_through_own_listener(void **state)
{
    (void)state;
    int lfd = bound_socket(8, &target);
    int flags = fcntl(lfd, F_GETFL);
    SYS(fcntl(lfd, F_SETFL, flags | O_NONBLOCK));
    start_listening(lfd);
    run(sc_loop);
    WAIT_FOR(T.closed == 1 && T.accepted_closed == 1);
    assert_int_equal(T.accepted, 1);
    assert_true(T.c[0].connected);
    assert_int_equal(T.c[0].err, 0);
    assert_rx(&T.c[0], "loop\r\n");
    assert_int_equal(T.accepted_err, 0);
    engine_fixture_stop();
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    if (!engine_fixture_usable())
        return 77;
    const struct CMUnitTest tests[] = {
        TEST(test_connect_echo),           TEST(test_connect_refused),
        TEST(test_connect_timeout),        TEST(test_close_while_connecting),
        TEST(test_many_at_once),           TEST(test_send_before_connected),
        TEST(test_connect_from),           TEST(test_fd_reserve),
        TEST(test_bad_arguments),          TEST(test_exit_while_connecting),
        TEST(test_pause_before_connected), TEST(test_connect_ipv6),
        TEST(test_connect_unix),           TEST(test_loop_through_own_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
