/*
 * tests/unit/test_engine.c — the io_uring engine against real loopback TCP peers.
 *
 * The server side is the engine with the callbacks below, whose behaviour each test picks
 * with `mode`; the client side is plain blocking (or polled) sockets in the test's own
 * thread. Callbacks run on worker threads, so they only record what happened; every
 * assertion is made here, after waiting (with a timeout) for the record. Skips (77) when
 * the kernel refuses io_uring.
 */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include "util/engine.h"

#define WAIT_MS     10000
#define FLUSH_BYTES (8 * 1024 * 1024)

enum mode {
    M_ECHO,
    M_TIMER,  /* timer fires three times, then is armed and disarmed */
    M_HEAP,   /* many timers; the fire order is recorded */
    M_PAUSE,  /* pause on the first bytes, resume from a timer */
    M_FLUSH,  /* on the first bytes: a large reply, then close with flush */
    M_HARD,   /* on the first bytes: a large reply, then close at once */
    M_REFUSE, /* on_accept queues a 421 and refuses */
    M_STALE,  /* records ids so a later connection can use a stale one */
};

enum msg { MSG_EXIT = 1, MSG_STOP_ACCEPTING, MSG_FILE, MSG_COUNT };

struct tconn {
    struct engine_worker *w;
    engine_conn_id id;
    unsigned timer_fires;
    unsigned recv_while_paused;
    bool paused;
    uint64_t deadline;
};

struct file_op {
    struct engine_op op;
    int res;
    bool done;
};

static struct tstate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum mode mode;
    struct engine *e;
    unsigned workers;
    uint16_t port;
    unsigned accepted, closed, closed_ecanceled, closed_other, drained;
    unsigned inits, finis, stopped;
    unsigned counted[2], file_workers;
    unsigned recv_after_pause;
    uint64_t heap_fired[64];
    unsigned nheap_fired;
    bool heap_order_ok;
    uint64_t heap_base;
    engine_conn_id stale_id;
    int stale_send, stale_checked;
    engine_conn_id fresh_id;
    struct file_op write_op, fsync_op;
    char file_path[64];
} T = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void note(unsigned *counter)
{
    pthread_mutex_lock(&T.lock);
    (*counter)++;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
}

/* Waits until `what` holds (checked under T.lock), failing the test after WAIT_MS. */
#define WAIT_FOR(what)                                                                             \
    do {                                                                                           \
        struct timespec until_;                                                                    \
        clock_gettime(CLOCK_REALTIME, &until_);                                                    \
        until_.tv_sec += WAIT_MS / 1000;                                                           \
        pthread_mutex_lock(&T.lock);                                                               \
        int rc_ = 0;                                                                               \
        while (!(what) && rc_ != ETIMEDOUT)                                                        \
            rc_ = pthread_cond_timedwait(&T.cond, &T.lock, &until_);                               \
        bool ok_ = (what);                                                                         \
        pthread_mutex_unlock(&T.lock);                                                             \
        if (!ok_)                                                                                  \
            fail_msg("timed out waiting for %s", #what);                                           \
    } while (0)

/* --- server side: the callbacks --- */

static void *t_worker_init(struct engine_worker *w, unsigned index)
{
    (void)w;
    note(&T.inits);
    return (void *)(uintptr_t)(index + 100);
}

static void t_worker_fini(struct engine_worker *w, void *ctx)
{
    if (ctx == (void *)(uintptr_t)(engine_worker_index(w) + 100))
        note(&T.finis);
}

static void *t_on_accept(struct engine_worker *w, engine_conn_id id, unsigned listener,
                         const struct sockaddr *peer, socklen_t peerlen,
                         const struct sockaddr *local, socklen_t locallen)
{
    (void)listener;
    if (peer->sa_family != AF_INET || peerlen != sizeof(struct sockaddr_in) ||
        locallen != sizeof(struct sockaddr_in) ||
        ((const struct sockaddr_in *)local)->sin_port != htons(T.port))
        return NULL;
    if (T.mode == M_REFUSE) {
        engine_conn_send(w, id, "421 busy\r\n", 10);
        return NULL;
    }
    struct tconn *c = calloc(1, sizeof *c);
    c->w = w;
    c->id = id;
    uint64_t now = engine_now_ms(w);
    if (T.mode == M_TIMER) {
        engine_conn_set_timer(w, id, now + 1000);
        engine_conn_set_timer(w, id, now + 20); /* re-arming moves the deadline */
    } else if (T.mode == M_HEAP) {
        /* A common base: a connection accepted late must not get an earlier deadline
         * than one that has already fired. */
        pthread_mutex_lock(&T.lock);
        unsigned k = T.accepted;
        if (!T.heap_base)
            T.heap_base = now + 200;
        c->deadline = T.heap_base + (k * 37 % 64) * 3;
        pthread_mutex_unlock(&T.lock);
        engine_conn_set_timer(w, id, c->deadline);
    } else if (T.mode == M_STALE) {
        pthread_mutex_lock(&T.lock);
        if (T.stale_id) {
            T.fresh_id = id;
            T.stale_send = engine_conn_send(w, T.stale_id, "stale", 5);
            engine_conn_pause_recv(w, T.stale_id);
            engine_conn_set_timer(w, T.stale_id, now + 1);
            engine_conn_close(w, T.stale_id, false);
            T.stale_checked = 1;
        }
        pthread_mutex_unlock(&T.lock);
    }
    note(&T.accepted);
    return c;
}

static void t_on_recv(void *ctx, const char *data, size_t len)
{
    struct tconn *c = ctx;
    switch (T.mode) {
    case M_PAUSE:
        if (c->paused) {
            c->recv_while_paused++;
        } else if (!c->timer_fires) {
            engine_conn_pause_recv(c->w, c->id);
            c->paused = true;
            engine_conn_set_timer(c->w, c->id, engine_now_ms(c->w) + 50);
            engine_conn_send(c->w, c->id, "P", 1);
            return;
        }
        engine_conn_send(c->w, c->id, data, len);
        break;
    case M_FLUSH:
    case M_HARD: {
        enum { N = FLUSH_BYTES };
        char *big = malloc(N);
        for (size_t i = 0; i < N; i++)
            big[i] = (char)(i % 251);
        engine_conn_send(c->w, c->id, big, N);
        free(big);
        engine_conn_close(c->w, c->id, T.mode == M_FLUSH);
        /* after close: refused */
        if (engine_conn_send(c->w, c->id, "x", 1) != -1)
            engine_conn_send(c->w, c->id, "BUG", 3);
        break;
    }
    case M_TIMER: {
        char reply[16];
        int n = snprintf(reply, sizeof reply, "%u\n", c->timer_fires);
        engine_conn_send(c->w, c->id, reply, (size_t)n);
        break;
    }
    case M_STALE:
        pthread_mutex_lock(&T.lock);
        if (!T.stale_id)
            T.stale_id = c->id;
        pthread_mutex_unlock(&T.lock);
        engine_conn_send(c->w, c->id, data, len);
        break;
    default:
        engine_conn_send(c->w, c->id, data, len);
        break;
    }
}

static void t_on_drained(void *ctx)
{
    (void)ctx;
    note(&T.drained);
}

static void t_on_timer(void *ctx)
{
    struct tconn *c = ctx;
    c->timer_fires++;
    uint64_t now = engine_now_ms(c->w);
    switch (T.mode) {
    case M_TIMER:
        if (c->timer_fires < 3) {
            engine_conn_set_timer(c->w, c->id, now + 20);
        } else {
            engine_conn_send(c->w, c->id, "T3\n", 3);
            engine_conn_set_timer(c->w, c->id, now + 10);
            engine_conn_set_timer(c->w, c->id, 0);
        }
        break;
    case M_HEAP:
        pthread_mutex_lock(&T.lock);
        if (now < c->deadline || (T.nheap_fired && T.heap_fired[T.nheap_fired - 1] > c->deadline))
            T.heap_order_ok = false;
        T.heap_fired[T.nheap_fired++ % 64] = c->deadline;
        pthread_cond_broadcast(&T.cond);
        pthread_mutex_unlock(&T.lock);
        break;
    case M_PAUSE:
        pthread_mutex_lock(&T.lock);
        T.recv_after_pause = c->recv_while_paused;
        pthread_mutex_unlock(&T.lock);
        c->paused = false;
        engine_conn_resume_recv(c->w, c->id);
        break;
    default:
        break;
    }
}

static void t_on_closed(void *ctx, int err)
{
    free(ctx);
    pthread_mutex_lock(&T.lock);
    T.closed++;
    if (err == ECANCELED)
        T.closed_ecanceled++;
    else if (err)
        T.closed_other++;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
}

static void t_file_complete(struct engine_op *op, int res)
{
    struct file_op *f = (struct file_op *)op;
    pthread_mutex_lock(&T.lock);
    f->res = res;
    f->done = true;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
}

/* A write linked to an fsync, as the spool does it. */
static void t_file_ops(struct engine_worker *w)
{
    static const char text[] = "Received: from test\r\n";
    int fd = open(T.file_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    T.write_op.op.complete = t_file_complete;
    T.fsync_op.op.complete = t_file_complete;
    engine_sqe_reserve(w, 3);
    struct io_uring_sqe *sqe = engine_sqe(w, &T.write_op.op);
    io_uring_prep_write(sqe, fd, text, sizeof text - 1, 0);
    sqe->flags |= IOSQE_IO_LINK;
    sqe = engine_sqe(w, &T.fsync_op.op);
    io_uring_prep_fsync(sqe, fd, 0);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_prep_close(engine_sqe(w, NULL), fd);
}

static void t_on_message(struct engine_worker *w, void *wctx, uint32_t msg)
{
    (void)wctx;
    unsigned i = engine_worker_index(w);
    switch (msg) {
    case MSG_EXIT:
        engine_worker_exit(w);
        break;
    case MSG_STOP_ACCEPTING:
        engine_worker_stop_accepting(w);
        note(&T.stopped);
        break;
    case MSG_FILE:
        if (i == 0)
            t_file_ops(w);
        note(&T.file_workers);
        break;
    case MSG_COUNT:
        note(&T.counted[i]);
        break;
    default:
        break;
    }
}

static const struct engine_callbacks callbacks = {
    .worker_init = t_worker_init,
    .worker_fini = t_worker_fini,
    .on_accept = t_on_accept,
    .on_recv = t_on_recv,
    .on_drained = t_on_drained,
    .on_timer = t_on_timer,
    .on_closed = t_on_closed,
    .on_message = t_on_message,
};

/* --- client side and fixtures --- */

static int listener_on(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
    struct sockaddr_in sin = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 128), 0);
    return fd;
}

static void start(enum mode mode, unsigned workers, const struct engine_settings *over)
{
    struct engine_settings s = {.workers = workers, .recv_buffers = 8, .max_connections = 256};
    if (over)
        s = *over;
    memset(&T.accepted, 0, sizeof T - offsetof(struct tstate, accepted));
    T.heap_order_ok = true;
    T.mode = mode;
    T.workers = s.workers;
    char err[512];
    T.e = engine_new(&s, &callbacks, err, sizeof err);
    if (!T.e)
        fail_msg("engine_new: %s", err);
    int fds[2];
    fds[0] = listener_on(0);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&sin, &len), 0);
    T.port = ntohs(sin.sin_port);
    for (unsigned i = 1; i < s.workers; i++)
        fds[i] = listener_on(T.port);
    assert_int_equal(engine_listen(T.e, 0, fds, s.workers), 0);
    if (engine_start(T.e, err, sizeof err) < 0)
        fail_msg("engine_start: %s", err);
    WAIT_FOR(T.inits == T.workers);
}

static void stop(void)
{
    engine_post(T.e, MSG_EXIT);
    engine_join(T.e);
    engine_free(T.e);
    T.e = NULL;
    assert_int_equal(T.finis, T.workers);
}

static int client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons(T.port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void clients(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        fds[i] = client();
        assert_true(fds[i] >= 0);
    }
}

static void send_all(int fd, const void *data, size_t len)
{
    assert_int_equal(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void read_exact(int fd, void *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n <= 0)
            fail_msg("read %zu of %zu bytes, then %s", got, len, n ? strerror(errno) : "EOF");
        got += (size_t)n;
    }
}

static void expect(int fd, const char *text)
{
    char buf[64];
    size_t len = strlen(text);
    read_exact(fd, buf, len);
    assert_memory_equal(buf, text, len);
}

static void expect_eof(int fd)
{
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* --- tests --- */

static uint8_t pattern(unsigned conn, size_t i)
{
    return (uint8_t)(i * 31 + conn * 7 + (i >> 9));
}

/* Many peers at once, each sending more than the socket buffers and the 8 receive
 * buffers hold, before reading: short sends, -ENOBUFS and a growing output queue. */
static void test_echo_many(void **state)
{
    (void)state;
    enum { CONNS = 24, SIZE = 768 * 1024 };
    start(M_ECHO, 2, NULL);
    struct {
        int fd;
        size_t sent, got;
    } cl[CONNS];
    struct pollfd pfd[CONNS];
    static uint8_t out[65536], in[65536];
    for (unsigned c = 0; c < CONNS; c++) {
        cl[c].fd = client();
        assert_true(cl[c].fd >= 0);
        fcntl(cl[c].fd, F_SETFL, O_NONBLOCK);
        cl[c].sent = cl[c].got = 0;
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned done = 0; done < CONNS;) {
        for (unsigned c = 0; c < CONNS; c++) {
            pfd[c].fd = cl[c].got < SIZE ? cl[c].fd : -1;
            pfd[c].events = POLLIN | (cl[c].sent < SIZE ? POLLOUT : 0);
        }
        assert_true(poll(pfd, CONNS, WAIT_MS) > 0);
        for (unsigned c = 0; c < CONNS; c++) {
            if (pfd[c].revents & POLLOUT) {
                size_t n = SIZE - cl[c].sent < sizeof out ? SIZE - cl[c].sent : sizeof out;
                for (size_t i = 0; i < n; i++)
                    out[i] = pattern(c, cl[c].sent + i);
                ssize_t k = send(cl[c].fd, out, n, MSG_NOSIGNAL);
                assert_true(k > 0 || errno == EAGAIN);
                if (k > 0)
                    cl[c].sent += (size_t)k;
            }
            if (pfd[c].revents & (POLLIN | POLLERR | POLLHUP)) {
                ssize_t k = recv(cl[c].fd, in, sizeof in, 0);
                assert_true(k > 0);
                for (ssize_t i = 0; i < k; i++)
                    if (in[i] != pattern(c, cl[c].got + (size_t)i))
                        fail_msg("conn %u: byte %zu differs", c, cl[c].got + (size_t)i);
                cl[c].got += (size_t)k;
                if (cl[c].got == SIZE)
                    done++;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        assert_true(t.tv_sec - t0.tv_sec < WAIT_MS / 1000);
    }
    WAIT_FOR(T.drained > 0);
    for (unsigned c = 0; c < CONNS; c++)
        close(cl[c].fd);
    WAIT_FOR(T.closed == CONNS);
    assert_int_equal(T.accepted, CONNS);
    assert_int_equal(T.closed_other + T.closed_ecanceled, 0);
    stop();
}

static void test_timer_rearm_disarm(void **state)
{
    (void)state;
    start(M_TIMER, 1, NULL);
    int fd = client();
    assert_true(fd >= 0);
    expect(fd, "T3\n");
    sleep_ms(60); /* the disarmed timer would have fired by now */
    send_all(fd, "?", 1);
    expect(fd, "3\n");
    close(fd);
    WAIT_FOR(T.closed == 1);
    stop();
}

static void test_timer_heap_order(void **state)
{
    (void)state;
    enum { CONNS = 40 };
    start(M_HEAP, 1, NULL);
    int fds[CONNS];
    clients(fds, CONNS);
    WAIT_FOR(T.nheap_fired == CONNS);
    assert_true(T.heap_order_ok);
    for (unsigned i = 0; i < CONNS; i++)
        close(fds[i]);
    WAIT_FOR(T.closed == CONNS);
    stop();
}

static void test_pause_resume(void **state)
{
    (void)state;
    start(M_PAUSE, 1, NULL);
    int fd = client();
    assert_true(fd >= 0);
    send_all(fd, "a", 1);
    expect(fd, "P");
    send_all(fd, "bbbb", 4);
    expect(fd, "bbbb"); /* only after the timer resumed receiving */
    pthread_mutex_lock(&T.lock);
    unsigned late = T.recv_after_pause;
    pthread_mutex_unlock(&T.lock);
    assert_true(late <= 2);
    close(fd);
    WAIT_FOR(T.closed == 1);
    stop();
}

/* More than the socket buffers hold: the engine sees short sends, and must still write
 * everything before the FIN. */
static void test_close_flush(void **state)
{
    (void)state;
    enum { N = FLUSH_BYTES };
    start(M_FLUSH, 1, NULL);
    int fd = client();
    assert_true(fd >= 0);
    send_all(fd, "go", 2);
    sleep_ms(30);
    char *buf = malloc(N);
    read_exact(fd, buf, N);
    for (size_t i = 0; i < N; i++)
        if (buf[i] != (char)(i % 251))
            fail_msg("byte %zu differs", i);
    free(buf);
    expect_eof(fd);
    close(fd);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.closed_other, 0);
    stop();
}

/* Closing at once cancels the send stuck on a peer that does not read. */
static void test_close_hard(void **state)
{
    (void)state;
    start(M_HARD, 1, NULL);
    int fd = client();
    assert_true(fd >= 0);
    send_all(fd, "go", 2);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.closed_other, 0);
    char *buf = malloc(FLUSH_BYTES);
    size_t got = 0;
    ssize_t n;
    while ((n = recv(fd, buf, FLUSH_BYTES, 0)) > 0)
        got += (size_t)n;
    free(buf);
    assert_true(got < FLUSH_BYTES);
    close(fd);
    stop();
}

/* A peer that resets with output still queued ends the connection with an error. */
static void test_peer_reset(void **state)
{
    (void)state;
    start(M_ECHO, 1, NULL);
    int fd = client();
    assert_true(fd >= 0);
    char *buf = calloc(1, FLUSH_BYTES);
    int sz = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t sent = 0;
    while (sent < FLUSH_BYTES) {
        ssize_t k = send(fd, buf + sent, FLUSH_BYTES - sent, MSG_NOSIGNAL);
        if (k < 0)
            break;
        sent += (size_t)k;
    }
    free(buf);
    assert_true(sent > 0);
    sleep_ms(20);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.closed_other, 1);
    stop();
}

static void test_refuse(void **state)
{
    (void)state;
    start(M_REFUSE, 1, NULL);
    int fd = client();
    assert_true(fd >= 0);
    expect(fd, "421 busy\r\n");
    expect_eof(fd);
    close(fd);
    stop();
    assert_int_equal(T.closed, 0);
}

static void test_max_connections(void **state)
{
    (void)state;
    struct engine_settings s = {.workers = 1, .max_connections = 2};
    start(M_ECHO, 1, &s);
    int a = client(), b = client(), c = client();
    assert_true(a >= 0 && b >= 0 && c >= 0);
    char x;
    ssize_t n = recv(c, &x, 1, 0);
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
    send_all(a, "a", 1);
    expect(a, "a");
    close(a);
    close(b);
    close(c);
    WAIT_FOR(T.closed == 2);
    stop();
}

static void test_post_each_worker(void **state)
{
    (void)state;
    enum { POSTS = 1000 };
    start(M_ECHO, 2, NULL);
    for (unsigned i = 0; i < POSTS; i++)
        engine_post(T.e, MSG_COUNT);
    WAIT_FOR(T.counted[0] == POSTS && T.counted[1] == POSTS);
    stop();
}

static void test_stale_id(void **state)
{
    (void)state;
    start(M_STALE, 1, NULL);
    int fd = client();
    assert_true(fd >= 0);
    send_all(fd, "one", 3);
    expect(fd, "one");
    close(fd);
    WAIT_FOR(T.closed == 1);
    fd = client(); /* reuses the slot under a new generation */
    assert_true(fd >= 0);
    WAIT_FOR(T.stale_checked);
    assert_int_equal(T.stale_send, -1);
    assert_int_equal((uint32_t)T.fresh_id, (uint32_t)T.stale_id);
    assert_int_not_equal(T.fresh_id, T.stale_id);
    send_all(fd, "two", 3);
    expect(fd, "two"); /* the stale close, pause and timer did not touch it */
    close(fd);
    WAIT_FOR(T.closed == 2);
    assert_int_equal(T.closed_other, 0);
    stop();
}

static void test_sqe_file_ops(void **state)
{
    (void)state;
    start(M_ECHO, 2, NULL);
    snprintf(T.file_path, sizeof T.file_path, "/tmp/test_engine.%d", (int)getpid());
    engine_post(T.e, MSG_FILE);
    WAIT_FOR(T.write_op.done && T.fsync_op.done);
    assert_int_equal(T.write_op.res, 21);
    assert_int_equal(T.fsync_op.res, 0);
    stop(); /* the close completes before the worker ends */
    char buf[64] = {0};
    int fd = open(T.file_path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf), 21);
    close(fd);
    unlink(T.file_path);
    assert_string_equal(buf, "Received: from test\r\n");
}

static void test_stop_accepting(void **state)
{
    (void)state;
    start(M_ECHO, 2, NULL);
    int before = client();
    assert_true(before >= 0);
    engine_post(T.e, MSG_STOP_ACCEPTING);
    WAIT_FOR(T.stopped == 2);
    /* The kernel drops its last reference to a listening socket on the worker's next
     * io_uring_enter, a moment after the close. */
    int fd = 0;
    for (unsigned tries = 0; tries < 200 && fd != -ECONNREFUSED; tries++) {
        fd = client();
        if (fd >= 0) {
            close(fd);
            sleep_ms(5);
        }
    }
    assert_int_equal(fd, -ECONNREFUSED);
    send_all(before, "still", 5);
    expect(before, "still");
    close(before);
    WAIT_FOR(T.closed >= 1);
    stop();
}

static void test_exit_closes_connections(void **state)
{
    (void)state;
    enum { CONNS = 6 };
    start(M_ECHO, 2, NULL);
    int fds[CONNS];
    clients(fds, CONNS);
    WAIT_FOR(T.accepted == CONNS);
    stop();
    assert_int_equal(T.closed, CONNS);
    assert_int_equal(T.closed_ecanceled, CONNS);
    for (unsigned i = 0; i < CONNS; i++) {
        expect_eof(fds[i]);
        close(fds[i]);
    }
}

static void test_bad_settings(void **state)
{
    (void)state;
    char err[256];
    struct engine_settings s = {.workers = 1, .recv_buffers = 100};
    assert_null(engine_new(&s, &callbacks, err, sizeof err));
    assert_non_null(strstr(err, "power of 2"));
    s = (struct engine_settings){.workers = 0};
    assert_null(engine_new(&s, &callbacks, err, sizeof err));
}

int main(void)
{
    char err[512];
    if (engine_probe(err, sizeof err) < 0) {
        fprintf(stderr, "skipped: %s\n", err);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_many),        cmocka_unit_test(test_timer_rearm_disarm),
        cmocka_unit_test(test_timer_heap_order), cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_close_flush),      cmocka_unit_test(test_close_hard),
        cmocka_unit_test(test_peer_reset),       cmocka_unit_test(test_refuse),
        cmocka_unit_test(test_max_connections),  cmocka_unit_test(test_post_each_worker),
        cmocka_unit_test(test_stale_id),         cmocka_unit_test(test_sqe_file_ops),
        cmocka_unit_test(test_stop_accepting),   cmocka_unit_test(test_exit_closes_connections),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
