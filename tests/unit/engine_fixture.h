/*
 * tests/unit/engine_fixture.h — a real util/engine for the test_engine*.c and test_dns.c
 * programs.
 *
 * One fixture per program (F): the lock and condition every record the worker makes is
 * kept under, the engine, its worker (when worker_init is engine_fixture_worker_init), and
 * the function run() hands to the worker. Callbacks on the worker record under F.lock and
 * wake F.cond (note()); the test's thread waits with WAIT_FOR and makes every assertion
 * itself. A program that defines WAIT_MS before including this header waits that long.
 * engine_fixture_stop() frees F.e (a teardown calls it when a failed test left F.e); the
 * fixture never frees what the test allocated. Failures go through cmocka (fail_msg).
 */
#ifndef RINGMAIL_TEST_ENGINE_FIXTURE_H
#define RINGMAIL_TEST_ENGINE_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "engine_usable.h"
#include "util/engine.h"

#ifndef WAIT_MS
#define WAIT_MS 10000
#endif

/* The messages the fixture posts; a program's own start at ENGINE_FIXTURE_MSG_FREE. */
enum engine_fixture_msg {
    ENGINE_FIXTURE_MSG_EXIT = 1,
    ENGINE_FIXTURE_MSG_RUN,
    ENGINE_FIXTURE_MSG_FREE,
};

static struct engine_fixture {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct engine *e;
    struct engine_worker *w; /* the last worker engine_fixture_worker_init saw */
    void (*run)(struct engine_worker *w);
    unsigned ran; /* functions run() has had run, under lock */
    struct rlimit saved_nofile;
    bool nofile_lowered;
} F = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* Waits until `what` holds (checked under F.lock), failing the test after WAIT_MS. */
#define WAIT_FOR(what)                                                                             \
    do {                                                                                           \
        struct timespec until_;                                                                    \
        clock_gettime(CLOCK_REALTIME, &until_);                                                    \
        until_.tv_sec += WAIT_MS / 1000;                                                           \
        pthread_mutex_lock(&F.lock);                                                               \
        int rc_ = 0;                                                                               \
        while (!(what) && rc_ != ETIMEDOUT)                                                        \
            rc_ = pthread_cond_timedwait(&F.cond, &F.lock, &until_);                               \
        bool ok_ = (what);                                                                         \
        pthread_mutex_unlock(&F.lock);                                                             \
        if (!ok_)                                                                                  \
            fail_msg("timed out waiting for %s", #what);                                           \
    } while (0)

/* A system call that must succeed; the failure names the call and errno. */
#define SYS(call)                                                                                  \
    do {                                                                                           \
        if ((call) < 0)                                                                            \
            fail_msg("%s: %s", #call, strerror(errno));                                            \
    } while (0)

static inline void note(unsigned *counter)
{
    pthread_mutex_lock(&F.lock);
    (*counter)++;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts F.e, listening (listener 0) on the n_lfds sockets of lfds; on failure the test
 * fails and the sockets are closed. */
static inline void engine_fixture_start(const struct engine_settings *s,
                                        const struct engine_callbacks *callbacks, int *lfds,
                                        unsigned n_lfds)
{
    char err[512];
    F.e = engine_new(s, callbacks, err, sizeof err);
    if (!F.e) {
        for (unsigned i = 0; i < n_lfds; i++)
            close(lfds[i]);
        fail_msg("engine_new: %s", err);
    }
    if (n_lfds && engine_listen(F.e, 0, lfds, n_lfds) < 0) {
        for (unsigned i = 0; i < n_lfds; i++)
            close(lfds[i]);
        fail_msg("engine_listen");
    }
    if (engine_start(F.e, err, sizeof err) < 0)
        fail_msg("engine_start: %s", err);
}

/* Ends every worker's loop, waits for the threads and frees F.e. */
static inline void engine_fixture_stop(void)
{
    engine_post(F.e, ENGINE_FIXTURE_MSG_EXIT);
    engine_join(F.e);
    engine_free(F.e);
    F.e = NULL;
}

/* Runs `fn` on a worker's thread and waits for it to return. */
static inline void run(void (*fn)(struct engine_worker *w))
{
    pthread_mutex_lock(&F.lock);
    unsigned before = F.ran;
    F.run = fn;
    pthread_mutex_unlock(&F.lock);
    engine_post(F.e, ENGINE_FIXTURE_MSG_RUN);
    WAIT_FOR(F.ran > before);
}

/* 127.a.b.c with a >= 1: never 127.0.0.1, nor anything else in 127.0.0.0/16 (test_engine.c
 * says why a test needs an address of its own). */
static inline struct in_addr engine_fixture_random_address(void)
{
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint32_t)time(NULL) * 2654435761u ^ (uint32_t)getpid();
    uint32_t a = 1 + r % 254, b = (r >> 8) & 0xff, c = 1 + (r >> 16) % 254;
    return (struct in_addr){.s_addr = htonl(127u << 24 | a << 16 | b << 8 | c)};
}

/* The lowest free descriptor number: the next one the process will be given. */
static inline int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    SYS(fd);
    close(fd);
    return fd;
}

/* Lowers RLIMIT_NOFILE's soft limit until restore_nofile(), which a teardown calls. */
static inline void set_nofile(rlim_t soft)
{
    if (!F.nofile_lowered)
        SYS(getrlimit(RLIMIT_NOFILE, &F.saved_nofile));
    struct rlimit rl = {.rlim_cur = soft, .rlim_max = F.saved_nofile.rlim_max};
    SYS(setrlimit(RLIMIT_NOFILE, &rl));
    F.nofile_lowered = true;
}

static inline void restore_nofile(void)
{
    if (F.nofile_lowered && setrlimit(RLIMIT_NOFILE, &F.saved_nofile) < 0)
        print_error("restoring RLIMIT_NOFILE: %s\n", strerror(errno));
    F.nofile_lowered = false;
}

/* engine_callbacks for a program with one worker and no listener of its own. */

static inline void *engine_fixture_worker_init(struct engine_worker *w, unsigned index)
{
    (void)index;
    F.w = w;
    return NULL;
}

static inline void engine_fixture_on_message(struct engine_worker *w, void *ctx, uint32_t msg)
{
    (void)ctx;
    if (msg == ENGINE_FIXTURE_MSG_EXIT) {
        engine_worker_exit(w);
        return;
    }
    F.run(w);
    note(&F.ran);
}

static inline void *engine_fixture_no_accept(struct engine_worker *w, engine_conn_id id,
                                             unsigned listener, const struct sockaddr *peer,
                                             socklen_t peerlen, const struct sockaddr *local,
                                             socklen_t locallen)
{
    (void)w, (void)id, (void)listener, (void)peer, (void)peerlen, (void)local, (void)locallen;
    return NULL;
}

static inline void engine_fixture_no_recv(void *ctx, const char *data, size_t len)
{
    (void)ctx, (void)data, (void)len;
}

static inline void engine_fixture_no_closed(void *ctx, int err)
{
    (void)ctx, (void)err;
}

#endif
