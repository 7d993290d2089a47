/*
 * tests/unit/test_engine.c — the io_uring engine against real loopback TCP peers.
 *
 * The server side is the engine with the callbacks below, whose behaviour each test picks
 * with `mode`; the client side is plain blocking (or polled) sockets in the test's own
 * thread. Callbacks run on worker threads, so they only record what happened; every
 * assertion is made here, after waiting (with a timeout) for the record. Skips (77) when
 * the kernel refuses io_uring.
 *
 * Each test listens on an address of its own, random in 127.0.0.0/8 and never 127.0.0.1,
 * on a port the kernel picks. A port alone is not enough: any process of the same user
 * that binds it with SO_REUSEPORT (ringmaild does, and ctest -j runs it beside this
 * program) silently joins the listener group, takes some of the connections, and resets
 * the ones it held when it leaves (issue 8: connect() failed with ECONNRESET). Nothing else
 * binds these addresses. The teardown stops a failed test's engine and closes its
 * sockets, so one failure never cascades into the next test.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#define WAIT_MS 10000
#include "engine_fixture.h"

#define FLUSH_BYTES (8 * 1024 * 1024)
#define MAX_CLIENTS 64
#define AMPLIFY     8 /* M_AMPLIFY: bytes of output per byte of input */

enum mode {
    M_ECHO,
    M_TIMER,   /* timer fires three times, then is armed and disarmed */
    M_HEAP,    /* many timers; the fire order is recorded */
    M_PAUSE,   /* pause on the first bytes, resume from a timer */
    M_FLUSH,   /* on the first bytes: a large reply, close with flush, then one more byte */
    M_HARD,    /* on the first bytes: a large reply, then close at once */
    M_BYE,     /* on the first bytes: close with flush, then the reply */
    M_STUCK,   /* on the first bytes: a large reply and a flush-close (T.stuck_timer_ms) */
    M_AMPLIFY, /* AMPLIFY bytes of output per byte of input; resumes receiving each time */
    M_HOLD,    /* pause, a reply above max_output, resume from a timer */
    M_REFUSE,  /* on_accept queues a 421 and refuses */
    M_STALE,   /* records ids so a later connection can use a stale one */
    M_LATER,   /* "t": "ticket" held (engine_conn_hold_output); "e": "reply"; "q": flush-close;
                  "b": more than max_output, then held */
};

enum msg { MSG_STOP_ACCEPTING = ENGINE_FIXTURE_MSG_FREE, MSG_FILE, MSG_COUNT };

struct tconn {
    struct engine_worker *w;
    engine_conn_id id;
    unsigned timer_fires;
    unsigned recv_while_paused;
    bool paused;
    bool resumed;
    uint64_t deadline;
    uint64_t out_off; /* M_AMPLIFY: output bytes queued so far */
};

struct file_op {
    struct engine_op op;
    int res;
    bool done;
};

static struct tstate {
    enum mode mode;
    unsigned workers;
    uint16_t port;
    struct in_addr addr; /* this test's own: random in 127.0.0.0/8 */
    char addr_text[INET_ADDRSTRLEN];
    int fds[MAX_CLIENTS]; /* client sockets, closed by the teardown; -1 = free */
    int saved_stderr;     /* while the log is captured, else -1 */
    char log_path[64];
    unsigned stuck_timer_ms; /* M_STUCK: the timer armed before the close; 0 = none */
    /* Everything from here on is cleared by start(). */
    unsigned accepted, closed, closed_ecanceled, closed_timedout, closed_other, drained;
    unsigned inits, finis, stopped;
    unsigned counted[2], file_workers;
    unsigned recv_after_pause;
    unsigned timer_calls; /* on_timer calls in M_STUCK (a closing connection: none) */
    unsigned early_recv;  /* M_HOLD: input handed over while the layer had paused */
    int send_after_close;
    uint64_t rx; /* M_AMPLIFY: input handed to the layer */
    uint64_t heap_fired[64];
    unsigned nheap_fired;
    bool heap_order_ok;
    uint64_t heap_base;
    engine_conn_id stale_id;
    int stale_send, stale_checked;
    engine_conn_id fresh_id;
    struct file_op write_op, fsync_op;
    char file_path[64];
} T;

static uint8_t out_pattern(uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 12));
}

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
    const struct sockaddr_in *sin = (const struct sockaddr_in *)local;
    if (peer->sa_family != AF_INET || peerlen != sizeof(struct sockaddr_in) ||
        locallen != sizeof(struct sockaddr_in) || sin->sin_port != htons(T.port) ||
        sin->sin_addr.s_addr != T.addr.s_addr)
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
        pthread_mutex_lock(&F.lock);
        unsigned k = T.accepted;
        if (!T.heap_base)
            T.heap_base = now + 200;
        c->deadline = T.heap_base + (k * 37 % 64) * 3;
        pthread_mutex_unlock(&F.lock);
        engine_conn_set_timer(w, id, c->deadline);
    } else if (T.mode == M_STALE) {
        pthread_mutex_lock(&F.lock);
        if (T.stale_id) {
            T.fresh_id = id;
            T.stale_send = engine_conn_send(w, T.stale_id, "stale", 5);
            engine_conn_pause_recv(w, T.stale_id);
            engine_conn_set_timer(w, T.stale_id, now + 1);
            engine_conn_close(w, T.stale_id, false);
            T.stale_checked = 1;
        }
        pthread_mutex_unlock(&F.lock);
    }
    note(&T.accepted);
    return c;
}

static void send_big(struct tconn *c)
{
    enum { N = FLUSH_BYTES };
    char *big = malloc(N);
    for (size_t i = 0; i < N; i++)
        big[i] = (char)(i % 251);
    engine_conn_send(c->w, c->id, big, N);
    free(big);
}

static void record_send_after_close(int rc)
{
    pthread_mutex_lock(&F.lock);
    T.send_after_close = rc;
    pthread_mutex_unlock(&F.lock);
}

/* Output the peer can check: byte `off` of the stream is out_pattern(off). */
static void amplify(struct tconn *c, size_t len)
{
    char buf[4096];
    for (size_t left = len * AMPLIFY; left > 0;) {
        size_t n = left < sizeof buf ? left : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)out_pattern(c->out_off + i);
        engine_conn_send(c->w, c->id, buf, n);
        c->out_off += n;
        left -= n;
    }
    pthread_mutex_lock(&F.lock);
    T.rx += len;
    pthread_mutex_unlock(&F.lock);
    /* What the session does after a commit: it must not lift the engine's own pause. */
    engine_conn_resume_recv(c->w, c->id);
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
        send_big(c);
        engine_conn_close(c->w, c->id, true);
        record_send_after_close(engine_conn_send(c->w, c->id, "x", 1));
        break;
    case M_HARD:
        send_big(c);
        engine_conn_close(c->w, c->id, false);
        record_send_after_close(engine_conn_send(c->w, c->id, "x", 1));
        break;
    case M_BYE:
        engine_conn_close(c->w, c->id, true);
        record_send_after_close(engine_conn_send(c->w, c->id, "bye\n", 4));
        break;
    case M_STUCK:
        if (c->paused)
            break;
        c->paused = true;
        if (T.stuck_timer_ms)
            engine_conn_set_timer(c->w, c->id, engine_now_ms(c->w) + T.stuck_timer_ms);
        send_big(c);
        engine_conn_close(c->w, c->id, true);
        engine_conn_set_timer(c->w, c->id, 0); /* a closing connection keeps its deadline */
        break;
    case M_AMPLIFY:
        amplify(c, len);
        break;
    case M_HOLD:
        if (!c->paused) {
            /* Above max_output and paused by the layer: the output draining must not
             * resume receiving; only the layer's resume does. */
            char reply[64 * 1024];
            memset(reply, 'h', sizeof reply);
            engine_conn_pause_recv(c->w, c->id);
            c->paused = true;
            engine_conn_send(c->w, c->id, reply, sizeof reply);
            engine_conn_set_timer(c->w, c->id, engine_now_ms(c->w) + 300);
            return;
        }
        if (!c->resumed)
            note(&T.early_recv);
        engine_conn_send(c->w, c->id, data, len);
        break;
    case M_TIMER: {
        char reply[16];
        int n = snprintf(reply, sizeof reply, "%u\n", c->timer_fires);
        engine_conn_send(c->w, c->id, reply, (size_t)n);
        break;
    }
    case M_LATER:
        for (size_t i = 0; i < len; i++) {
            if (data[i] == 't' || data[i] == 'b') {
                static char big[64 * 1024];
                memset(big, 'b', sizeof big);
                if (data[i] == 't')
                    engine_conn_send(c->w, c->id, "ticket", 6);
                else
                    engine_conn_send(c->w, c->id, big, sizeof big);
                engine_conn_hold_output(c->w, c->id);
            } else if (data[i] == 'e') {
                engine_conn_send(c->w, c->id, "reply", 5);
            } else if (data[i] == 'q') {
                engine_conn_close(c->w, c->id, true);
            }
        }
        break;
    case M_STALE:
        pthread_mutex_lock(&F.lock);
        if (!T.stale_id)
            T.stale_id = c->id;
        pthread_mutex_unlock(&F.lock);
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
        pthread_mutex_lock(&F.lock);
        if (now < c->deadline || (T.nheap_fired && T.heap_fired[T.nheap_fired - 1] > c->deadline))
            T.heap_order_ok = false;
        T.heap_fired[T.nheap_fired++ % 64] = c->deadline;
        pthread_cond_broadcast(&F.cond);
        pthread_mutex_unlock(&F.lock);
        break;
    case M_PAUSE:
        pthread_mutex_lock(&F.lock);
        T.recv_after_pause = c->recv_while_paused;
        pthread_mutex_unlock(&F.lock);
        c->paused = false;
        engine_conn_resume_recv(c->w, c->id);
        break;
    case M_HOLD:
        c->resumed = true;
        engine_conn_resume_recv(c->w, c->id);
        break;
    case M_STUCK:
        note(&T.timer_calls);
        break;
    default:
        break;
    }
}

static void t_on_closed(void *ctx, int err)
{
    free(ctx);
    pthread_mutex_lock(&F.lock);
    T.closed++;
    if (err == ECANCELED)
        T.closed_ecanceled++;
    else if (err == ETIMEDOUT)
        T.closed_timedout++;
    else if (err)
        T.closed_other++;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

static void t_file_complete(struct engine_op *op, int res)
{
    struct file_op *f = (struct file_op *)op;
    pthread_mutex_lock(&F.lock);
    f->res = res;
    f->done = true;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
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
    case ENGINE_FIXTURE_MSG_EXIT:
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

static struct sockaddr_in test_sockaddr(uint16_t port)
{
    return (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = T.addr};
}

static int listener_on(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    SYS(fd);
    int one = 1;
    SYS(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one));
    struct sockaddr_in sin = test_sockaddr(port);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        fail_msg("bind %s:%u: %s", T.addr_text, (unsigned)port, strerror(errno));
    SYS(listen(fd, 128));
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
    int fds[2];
    fds[0] = listener_on(0);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    SYS(getsockname(fds[0], (struct sockaddr *)&sin, &len));
    T.port = ntohs(sin.sin_port);
    for (unsigned i = 1; i < s.workers; i++)
        fds[i] = listener_on(T.port);
    engine_fixture_start(&s, &callbacks, fds, s.workers);
    WAIT_FOR(T.inits == T.workers);
}

static void stop(void)
{
    engine_fixture_stop();
    assert_int_equal(T.finis, T.workers);
}

/* A connected client socket, or -errno; the teardown closes it unless drop() did. */
static int try_client(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SYS(fd);
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    SYS(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    SYS(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    /* Before connect: the window the peer may fill follows from it. */
    if (rcvbuf)
        SYS(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf));
    struct sockaddr_in sin = test_sockaddr(T.port);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    for (unsigned i = 0; i < MAX_CLIENTS; i++) {
        if (T.fds[i] < 0) {
            T.fds[i] = fd;
            return fd;
        }
    }
    close(fd);
    fail_msg("more than %d client sockets in one test", MAX_CLIENTS);
    return -1;
}

static int client_rcvbuf(int rcvbuf)
{
    int fd = try_client(rcvbuf);
    if (fd < 0)
        fail_msg("connect to %s:%u: %s", T.addr_text, (unsigned)T.port, strerror(-fd));
    return fd;
}

static int client(void)
{
    return client_rcvbuf(0);
}

static void clients(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        fds[i] = client();
}

static void drop(int fd)
{
    for (unsigned i = 0; i < MAX_CLIENTS; i++)
        if (T.fds[i] == fd)
            T.fds[i] = -1;
    close(fd);
}

static void send_all(int fd, const void *data, size_t len)
{
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n != (ssize_t)len)
        fail_msg("sent %zd of %zu bytes: %s", n, len, n < 0 ? strerror(errno) : "short send");
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
    if (memcmp(buf, text, len) != 0)
        fail_msg("expected \"%s\", got \"%.*s\"", text, (int)len, buf);
}

static void expect_eof(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    if (n != 0)
        fail_msg("expected EOF, got %s", n > 0 ? "a byte" : strerror(errno));
}

static bool silent(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = poll(&p, 1, ms);
    SYS(ready);
    return ready == 0;
}

/* 127.a.b.c with a >= 1: never 127.0.0.1, nor anything else in 127.0.0.0/16. */
static void pick_address(void)
{
    T.addr = engine_fixture_random_address();
    inet_ntop(AF_INET, &T.addr, T.addr_text, sizeof T.addr_text);
}

/* The engine logs to stderr: lines are collected in a file until log_capture_end(). */
static void log_capture_begin(void)
{
    snprintf(T.log_path, sizeof T.log_path, "/tmp/test_engine.log.%d", (int)getpid());
    int fd = open(T.log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    SYS(fd);
    fflush(stderr);
    T.saved_stderr = dup(STDERR_FILENO);
    SYS(T.saved_stderr);
    SYS(dup2(fd, STDERR_FILENO));
    close(fd);
}

/* What was logged, also copied to the real stderr; the caller frees it. */
static char *log_capture_end(void)
{
    if (T.saved_stderr < 0)
        return NULL;
    dup2(T.saved_stderr, STDERR_FILENO);
    close(T.saved_stderr);
    T.saved_stderr = -1;
    char *text = NULL;
    FILE *f = fopen(T.log_path, "r");
    if (f) {
        struct stat st;
        if (fstat(fileno(f), &st) == 0 && (text = calloc(1, (size_t)st.st_size + 1)))
            text[fread(text, 1, (size_t)st.st_size, f)] = '\0';
        fclose(f);
    }
    unlink(T.log_path);
    if (text)
        fputs(text, stderr);
    return text ? text : strdup("");
}

static unsigned count_lines(const char *text, const char *needle)
{
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int setup(void **state)
{
    (void)state;
    pick_address();
    for (unsigned i = 0; i < MAX_CLIENTS; i++)
        T.fds[i] = -1;
    T.saved_stderr = -1;
    T.stuck_timer_ms = 0;
    return 0;
}

/* Runs after a failed test too: nothing it started may outlive it. */
static int teardown(void **state)
{
    (void)state;
    free(log_capture_end());
    restore_nofile();
    if (F.e)
        engine_fixture_stop();
    for (unsigned i = 0; i < MAX_CLIENTS; i++)
        if (T.fds[i] >= 0)
            close(T.fds[i]);
    return 0;
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
        SYS(fcntl(cl[c].fd, F_SETFL, O_NONBLOCK));
        cl[c].sent = cl[c].got = 0;
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned done = 0; done < CONNS;) {
        for (unsigned c = 0; c < CONNS; c++) {
            pfd[c].fd = cl[c].got < SIZE ? cl[c].fd : -1;
            pfd[c].events = POLLIN | (cl[c].sent < SIZE ? POLLOUT : 0);
        }
        int ready = poll(pfd, CONNS, WAIT_MS);
        if (ready <= 0)
            fail_msg("poll: %s", ready ? strerror(errno) : "nothing happened for 10 s");
        for (unsigned c = 0; c < CONNS; c++) {
            if (pfd[c].revents & POLLOUT) {
                size_t n = SIZE - cl[c].sent < sizeof out ? SIZE - cl[c].sent : sizeof out;
                for (size_t i = 0; i < n; i++)
                    out[i] = pattern(c, cl[c].sent + i);
                ssize_t k = send(cl[c].fd, out, n, MSG_NOSIGNAL);
                if (k < 0 && errno != EAGAIN)
                    fail_msg("conn %u: send after %zu bytes: %s", c, cl[c].sent, strerror(errno));
                if (k > 0)
                    cl[c].sent += (size_t)k;
            }
            if (pfd[c].revents & (POLLIN | POLLERR | POLLHUP)) {
                ssize_t k = recv(cl[c].fd, in, sizeof in, 0);
                if (k <= 0)
                    fail_msg("conn %u: recv after %zu bytes: %s", c, cl[c].got,
                             k ? strerror(errno) : "EOF");
                for (ssize_t i = 0; i < k; i++)
                    if (in[i] != pattern(c, cl[c].got + (size_t)i))
                        fail_msg("conn %u: byte %zu differs", c, cl[c].got + (size_t)i);
                cl[c].got += (size_t)k;
                if (cl[c].got == SIZE)
                    done++;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec >= WAIT_MS / 1000)
            fail_msg("%u of %u connections echoed after %d s", done, CONNS, WAIT_MS / 1000);
    }
    WAIT_FOR(T.drained > 0);
    for (unsigned c = 0; c < CONNS; c++)
        drop(cl[c].fd);
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
    expect(fd, "T3\n");
    sleep_ms(60); /* the disarmed timer would have fired by now */
    send_all(fd, "?", 1);
    expect(fd, "3\n");
    drop(fd);
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
        drop(fds[i]);
    WAIT_FOR(T.closed == CONNS);
    stop();
}

static void test_pause_resume(void **state)
{
    (void)state;
    start(M_PAUSE, 1, NULL);
    int fd = client();
    send_all(fd, "a", 1);
    expect(fd, "P");
    send_all(fd, "bbbb", 4);
    expect(fd, "bbbb"); /* only after the timer resumed receiving */
    pthread_mutex_lock(&F.lock);
    unsigned late = T.recv_after_pause;
    pthread_mutex_unlock(&F.lock);
    assert_true(late <= 2);
    drop(fd);
    WAIT_FOR(T.closed == 1);
    stop();
}

/* More than the socket buffers hold: the engine sees short sends, and must still write
 * everything before the FIN, including what was sent after the close was asked for (a
 * TLS close_notify after the last reply). */
static void test_close_flush(void **state)
{
    (void)state;
    enum { N = FLUSH_BYTES };
    start(M_FLUSH, 1, NULL);
    int fd = client();
    send_all(fd, "go", 2);
    sleep_ms(30);
    char *buf = malloc(N + 1);
    read_exact(fd, buf, N + 1);
    for (size_t i = 0; i < N; i++)
        if (buf[i] != (char)(i % 251))
            fail_msg("byte %zu differs", i);
    assert_int_equal(buf[N], 'x');
    free(buf);
    expect_eof(fd);
    drop(fd);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.closed_other + T.closed_timedout, 0);
    assert_int_equal(T.send_after_close, 0);
    stop();
}

/* A flush-close with nothing queued yet still takes what the same callback sends next. */
static void test_close_flush_then_send(void **state)
{
    (void)state;
    start(M_BYE, 1, NULL);
    int fd = client();
    send_all(fd, "go", 2);
    expect(fd, "bye\n");
    expect_eof(fd);
    drop(fd);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.send_after_close, 0);
    stop();
}

/* Closing at once cancels the send stuck on a peer that does not read, and refuses more. */
static void test_close_hard(void **state)
{
    (void)state;
    start(M_HARD, 1, NULL);
    int fd = client();
    send_all(fd, "go", 2);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.closed_other, 0);
    assert_int_equal(T.send_after_close, -1);
    char *buf = malloc(FLUSH_BYTES);
    size_t got = 0;
    ssize_t n;
    while ((n = recv(fd, buf, FLUSH_BYTES, 0)) > 0)
        got += (size_t)n;
    free(buf);
    assert_true(got < FLUSH_BYTES);
    drop(fd);
    stop();
}

/* A peer that never reads after a flush-close: the close has a deadline of its own (the
 * layer armed no timer), then the connection is reset and on_closed says ETIMEDOUT. */
static void test_close_deadline_linger(void **state)
{
    (void)state;
    struct engine_settings s = {.workers = 1, .recv_buffers = 8, .close_linger_ms = 300};
    start(M_STUCK, 1, &s);
    int fd = client_rcvbuf(64 * 1024);
    send_all(fd, "go", 2);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.closed_timedout, 1);
    assert_int_equal(T.timer_calls, 0);
    /* Reset, not closed with FIN: the kernel does not keep megabytes for a dead peer. */
    char *buf = malloc(FLUSH_BYTES);
    ssize_t n;
    while ((n = recv(fd, buf, FLUSH_BYTES, 0)) > 0)
        continue;
    free(buf);
    if (n == 0 || errno != ECONNRESET)
        fail_msg("expected a reset after the unread output, got %s", n ? strerror(errno) : "EOF");
    drop(fd);
    stop();
}

/* The layer's own timer, armed before the flush-close, stays its deadline (the default
 * linger, 30 s, would outlast WAIT_FOR); on_timer is not called for it. */
static void test_close_deadline_kept(void **state)
{
    (void)state;
    T.stuck_timer_ms = 300;
    start(M_STUCK, 1, NULL);
    int fd = client_rcvbuf(64 * 1024);
    send_all(fd, "go", 2);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.closed_timedout, 1);
    assert_int_equal(T.timer_calls, 0);
    drop(fd);
    stop();
}

/* A peer that pipelines and never reads the replies (issue 8: 39 MB of HELP took the
 * daemon to 1.36 GB): above max_output the engine stops taking its input, so the output
 * queued for it stays bounded. The layer's own resume_recv after every input must not lift
 * that. Once the peer reads, everything arrives, in order. */
static void test_output_bounded(void **state)
{
    (void)state;
    enum { SEND_MAX = 8 << 20, TAKEN_MAX = 3 << 20, STALL_MS = 1000 };
    struct engine_settings s = {.workers = 1, .recv_buffers = 8, .max_output = 64 * 1024};
    start(M_AMPLIFY, 1, &s);
    int fd = client_rcvbuf(64 * 1024);
    SYS(fcntl(fd, F_SETFL, O_NONBLOCK));
    static char in[65536];
    memset(in, 'c', sizeof in);
    size_t sent = 0;
    while (sent < SEND_MAX) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int ready = poll(&p, 1, STALL_MS);
        SYS(ready);
        if (!ready)
            break; /* the engine stopped reading from us */
        ssize_t k = send(fd, in, sizeof in, MSG_NOSIGNAL);
        if (k < 0 && errno != EAGAIN)
            fail_msg("send after %zu bytes: %s", sent, strerror(errno));
        if (k > 0)
            sent += (size_t)k;
    }
    pthread_mutex_lock(&F.lock);
    uint64_t taken = T.rx;
    pthread_mutex_unlock(&F.lock);
    if (taken > TAKEN_MAX)
        fail_msg("the engine took %llu of %zu bytes from a peer that reads nothing and queued "
                 "%llu bytes of output for it",
                 (unsigned long long)taken, sent, (unsigned long long)taken * AMPLIFY);

    SYS(fcntl(fd, F_SETFL, 0));
    static uint8_t buf[65536];
    uint64_t want = (uint64_t)sent * AMPLIFY;
    for (uint64_t got = 0; got < want;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            fail_msg("read %llu of %llu bytes, then %s", (unsigned long long)got,
                     (unsigned long long)want, n ? strerror(errno) : "EOF");
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != out_pattern(got + (uint64_t)i))
                fail_msg("output byte %llu differs", (unsigned long long)(got + (uint64_t)i));
        got += (uint64_t)n;
    }
    assert_int_equal(T.rx, sent);
    drop(fd);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.closed_other, 0);
    stop();
}

/* The two pauses are independent: output drained below the mark does not resume a
 * connection the layer paused. */
static void test_pauses_independent(void **state)
{
    (void)state;
    struct engine_settings s = {.workers = 1, .recv_buffers = 8, .max_output = 16 * 1024};
    start(M_HOLD, 1, &s);
    int fd = client();
    send_all(fd, "go", 2);
    char *buf = malloc(64 * 1024);
    read_exact(fd, buf, 64 * 1024);
    free(buf);
    send_all(fd, "more", 4);
    expect(fd, "more");
    assert_int_equal(T.early_recv, 0);
    drop(fd);
    WAIT_FOR(T.closed == 1);
    stop();
}

/* A peer that resets with output still queued ends the connection with an error. */
static void test_peer_reset(void **state)
{
    (void)state;
    start(M_ECHO, 1, NULL);
    int fd = client();
    char *buf = calloc(1, FLUSH_BYTES);
    int sz = 64 * 1024;
    SYS(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz));
    SYS(fcntl(fd, F_SETFL, O_NONBLOCK));
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
    SYS(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    drop(fd);
    WAIT_FOR(T.closed == 1);
    assert_int_equal(T.closed_other, 1);
    stop();
}

/* Held output waits for the next send, or the flush-close, and goes out with it. */
static void test_hold_output(void **state)
{
    (void)state;
    start(M_LATER, 1, NULL);
    int fd = client();
    send_all(fd, "t", 1);
    assert_true(silent(fd, 200));
    send_all(fd, "e", 1);
    expect(fd, "ticketreply");
    send_all(fd, "t", 1);
    assert_true(silent(fd, 100));
    send_all(fd, "q", 1);
    expect(fd, "ticket");
    expect_eof(fd);
    drop(fd);
    WAIT_FOR(T.closed == 1);
    stop();
}

/* Above max_output receiving waits for the output to drain: holding it then would stall
 * the connection for good, so the hold is refused. */
static void test_hold_output_above_max(void **state)
{
    (void)state;
    struct engine_settings s = {.workers = 1, .max_output = 16 * 1024};
    start(M_LATER, 1, &s);
    int fd = client();
    send_all(fd, "b", 1);
    char *buf = malloc(64 * 1024);
    read_exact(fd, buf, 64 * 1024);
    assert_int_equal(buf[0], 'b');
    free(buf);
    send_all(fd, "e", 1);
    expect(fd, "reply");
    drop(fd);
    WAIT_FOR(T.closed == 1);
    stop();
}

static void test_refuse(void **state)
{
    (void)state;
    start(M_REFUSE, 1, NULL);
    int fd = client();
    expect(fd, "421 busy\r\n");
    expect_eof(fd);
    drop(fd);
    stop();
    assert_int_equal(T.closed, 0);
}

static void test_max_connections(void **state)
{
    (void)state;
    struct engine_settings s = {.workers = 1, .max_connections = 2};
    start(M_ECHO, 1, &s);
    int a = client(), b = client(), c = client();
    char x;
    ssize_t n = recv(c, &x, 1, 0);
    if (n != 0 && !(n < 0 && errno == ECONNRESET))
        fail_msg("a connection over the limit: expected EOF, got %s",
                 n > 0 ? "a byte" : strerror(errno));
    send_all(a, "a", 1);
    expect(a, "a");
    drop(a);
    drop(b);
    drop(c);
    WAIT_FOR(T.closed == 2);
    stop();
}

/* Over the slot cap the engine answers with refuse_reply itself, and logs once per 10 s
 * with a count, not once per connection (a flood would flood the log). */
static void test_max_connections_reply(void **state)
{
    (void)state;
    enum { OVER = 20 };
    struct engine_settings s = {.workers = 1, .max_connections = 2, .refuse_reply = "421 full\r\n"};
    log_capture_begin();
    start(M_ECHO, 1, &s);
    int a = client(), b = client();
    WAIT_FOR(T.accepted == 2);
    for (unsigned i = 0; i < OVER; i++) {
        int c = client();
        expect(c, "421 full\r\n");
        expect_eof(c);
        drop(c);
    }
    send_all(a, "a", 1);
    expect(a, "a");
    drop(a);
    drop(b);
    WAIT_FOR(T.closed == 2);
    stop();
    char *log = log_capture_end();
    /* the first line, then the others counted (written at the worker's exit, at the latest) */
    assert_int_equal(count_lines(log, "refused a connection: 2 connections open"), 2);
    assert_int_equal(count_lines(log, ": 19 more like this were not logged in "), 1);
    assert_int_equal(count_lines(log, "refused"), 2);
    free(log);
}

/* A connection accepted as a descriptor within fd_reserve of RLIMIT_NOFILE is refused
 * with refuse_reply, before the layer above runs out of descriptors for its files. */
static void test_fd_reserve(void **state)
{
    (void)state;
    struct engine_settings s = {.workers = 1, .fd_reserve = 4, .refuse_reply = "421 full\r\n"};
    start(M_ECHO, 1, &s);
    /* Before the first accept, when the engine reads the limit. Client and server sockets
     * alternate from L: L, L+1 (accepted), L+2, L+3 (within 4 of L+7: refused); one more
     * descriptor taken by something else meanwhile moves neither across the line. */
    set_nofile((rlim_t)lowest_free_fd() + 7);
    int a = client();
    WAIT_FOR(T.accepted == 1);
    int c = client();
    expect(c, "421 full\r\n");
    expect_eof(c);
    restore_nofile();
    send_all(a, "a", 1);
    expect(a, "a");
    drop(a);
    drop(c);
    WAIT_FOR(T.closed == 1);
    stop();
    assert_int_equal(T.accepted, 1);
}

/* accept() failing with EMFILE is retried every 100 ms: logged once, then counted. The
 * limit is lowered before the engine starts: io_uring reads it when the accept is
 * submitted, not when a connection comes. */
static void test_accept_failure_logged_once(void **state)
{
    (void)state;
    struct engine_settings s = {.workers = 1, .recv_buffers = 8, .fd_reserve = 1};
    log_capture_begin();
    set_nofile((rlim_t)lowest_free_fd() + 16);
    start(M_ECHO, 1, &s);
    int filler[16], nfill = 0, fd;
    while (nfill < 16 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        filler[nfill++] = fd;
    if (nfill == 16 || errno != EMFILE)
        fail_msg("filling the descriptor table: %s", nfill == 16 ? "no limit" : strerror(errno));
    close(filler[--nfill]); /* the client's socket takes the last descriptor */
    int a = client();
    sleep_ms(1000);
    while (nfill > 0)
        close(filler[--nfill]);
    send_all(a, "a", 1);
    expect(a, "a"); /* accepted once descriptors are back */
    drop(a);
    WAIT_FOR(T.closed == 1);
    restore_nofile();
    stop();
    char *log = log_capture_end();
    /* once, and perhaps once more with the count of the retries not logged */
    unsigned counted = count_lines(log, "more like this were not logged");
    assert_in_range(counted, 0, 1);
    assert_int_equal(count_lines(log, "accepting a connection failed: Too many open files"),
                     1 + counted);
    assert_int_equal(count_lines(log, "accepting a connection failed"), 1 + counted);
    free(log);
}

static void test_post_each_worker(void **state)
{
    (void)state;
    enum { POSTS = 1000 };
    start(M_ECHO, 2, NULL);
    for (unsigned i = 0; i < POSTS; i++)
        engine_post(F.e, MSG_COUNT);
    WAIT_FOR(T.counted[0] == POSTS && T.counted[1] == POSTS);
    stop();
}

static void test_stale_id(void **state)
{
    (void)state;
    start(M_STALE, 1, NULL);
    int fd = client();
    send_all(fd, "one", 3);
    expect(fd, "one");
    drop(fd);
    WAIT_FOR(T.closed == 1);
    fd = client(); /* reuses the slot under a new generation */
    WAIT_FOR(T.stale_checked);
    assert_int_equal(T.stale_send, -1);
    assert_int_equal((uint32_t)T.fresh_id, (uint32_t)T.stale_id);
    assert_int_not_equal(T.fresh_id, T.stale_id);
    send_all(fd, "two", 3);
    expect(fd, "two"); /* the stale close, pause and timer did not touch it */
    drop(fd);
    WAIT_FOR(T.closed == 2);
    assert_int_equal(T.closed_other, 0);
    stop();
}

static void test_sqe_file_ops(void **state)
{
    (void)state;
    start(M_ECHO, 2, NULL);
    snprintf(T.file_path, sizeof T.file_path, "/tmp/test_engine.%d", (int)getpid());
    engine_post(F.e, MSG_FILE);
    WAIT_FOR(T.write_op.done && T.fsync_op.done);
    assert_int_equal(T.write_op.res, 21);
    assert_int_equal(T.fsync_op.res, 0);
    stop(); /* the close completes before the worker ends */
    char buf[64] = {0};
    int fd = open(T.file_path, O_RDONLY);
    SYS(fd);
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
    engine_post(F.e, MSG_STOP_ACCEPTING);
    WAIT_FOR(T.stopped == 2);
    /* The kernel drops its last reference to a listening socket on the worker's next
     * io_uring_enter, a moment after the close. */
    int fd = 0;
    for (unsigned tries = 0; tries < 200 && fd != -ECONNREFUSED; tries++) {
        fd = try_client(0);
        if (fd >= 0) {
            drop(fd);
            sleep_ms(5);
        }
    }
    if (fd != -ECONNREFUSED)
        fail_msg("connecting after stop_accepting: %s", fd < 0 ? strerror(-fd) : "accepted");
    send_all(before, "still", 5);
    expect(before, "still");
    drop(before);
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
        drop(fds[i]);
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
    s = (struct engine_settings){.workers = 1, .max_output = (size_t)2 << 30};
    assert_null(engine_new(&s, &callbacks, err, sizeof err));
    assert_non_null(strstr(err, "max_output"));
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    if (!engine_fixture_usable())
        return 77;
    const struct CMUnitTest tests[] = {
        TEST(test_echo_many),
        TEST(test_timer_rearm_disarm),
        TEST(test_timer_heap_order),
        TEST(test_pause_resume),
        TEST(test_close_flush),
        TEST(test_close_flush_then_send),
        TEST(test_close_hard),
        TEST(test_close_deadline_linger),
        TEST(test_close_deadline_kept),
        TEST(test_output_bounded),
        TEST(test_pauses_independent),
        TEST(test_peer_reset),
        TEST(test_hold_output),
        TEST(test_hold_output_above_max),
        TEST(test_refuse),
        TEST(test_max_connections),
        TEST(test_max_connections_reply),
        TEST(test_fd_reserve),
        TEST(test_accept_failure_logged_once),
        TEST(test_post_each_worker),
        TEST(test_stale_id),
        TEST(test_sqe_file_ops),
        TEST(test_stop_accepting),
        TEST(test_exit_closes_connections),
        TEST(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
