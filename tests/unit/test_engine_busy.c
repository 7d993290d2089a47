/*
 * tests/unit/test_engine_busy.c — the engine when the kernel refuses submissions.
 *
 * io_uring_enter answers EBUSY (completions overflowed the CQ and must be reaped first)
 * or EAGAIN (no memory for new requests until some finish). A loop that only retries the
 * submission then spins for ever: nothing reaps. This kernel may never say either, so
 * this program puts its own io_uring_submit() in front of liburing's (the executable's
 * definition wins over the shared library's) and, while a test asks for it, refuses every
 * submission as long as the CQ holds a completion — the kernel's EBUSY rule. The engine
 * must set the completions aside (never run a callback from inside engine_sqe) and go on.
 * A spin is detected and ended here, so a failing engine fails the test instead of
 * hanging it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <liburing.h>

#include "engine_usable.h"
#include "util/engine.h"

#define WAIT_MS   10000
#define OPS       512
#define SPIN_STOP 1000000 /* consecutive refusals that count as a spin */

static struct busy_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int refuse; /* 0, -EBUSY or -EAGAIN */
    atomic_uint refused;
    atomic_uint in_a_row;
    atomic_bool spun;
    unsigned inits, finis, done, order_errors, reentered;
    unsigned next; /* the op number expected to complete next */
    bool issuing;
} B = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

int io_uring_submit(struct io_uring *ring)
{
    static int (*real)(struct io_uring *);
    if (!real)
        real = (int (*)(struct io_uring *))dlsym(RTLD_NEXT, "io_uring_submit");
    int refuse = atomic_load(&B.refuse);
    if (refuse && !atomic_load(&B.spun) && io_uring_cq_ready(ring)) {
        atomic_fetch_add(&B.refused, 1);
        if (atomic_fetch_add(&B.in_a_row, 1) + 1 < SPIN_STOP)
            return refuse;
        atomic_store(&B.spun, true); /* give up refusing, so the test ends and says so */
    }
    atomic_store(&B.in_a_row, 0);
    return real(ring);
}

struct nop {
    struct engine_op op;
    unsigned n;
};
static struct nop nops[OPS];

static void note(unsigned *counter)
{
    pthread_mutex_lock(&B.lock);
    (*counter)++;
    pthread_cond_broadcast(&B.cond);
    pthread_mutex_unlock(&B.lock);
}

static bool wait_for(const unsigned *counter, unsigned want)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&B.lock);
    int rc = 0;
    while (*counter < want && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&B.cond, &B.lock, &until);
    bool ok = *counter >= want;
    pthread_mutex_unlock(&B.lock);
    return ok;
}

/* Completions arrive in submission order (NOPs complete inline), and never from inside
 * the engine_sqe call that issues the next one. */
static void nop_complete(struct engine_op *op, int res)
{
    struct nop *p = (struct nop *)op;
    pthread_mutex_lock(&B.lock);
    if (B.issuing)
        B.reentered++;
    if (res != 0 || p->n != B.next)
        B.order_errors++;
    B.next++;
    B.done++;
    pthread_cond_broadcast(&B.cond);
    pthread_mutex_unlock(&B.lock);
}

static void *b_worker_init(struct engine_worker *w, unsigned index)
{
    (void)w;
    (void)index;
    note(&B.inits);
    return NULL;
}

static void b_worker_fini(struct engine_worker *w, void *ctx)
{
    (void)w;
    (void)ctx;
    note(&B.finis);
}

/* Many SQEs from one callback on a ring with a 2-entry SQ: engine_sqe submits every
 * other call, while the CQ fills with their completions. */
static void b_on_message(struct engine_worker *w, void *ctx, uint32_t msg)
{
    (void)ctx;
    if (msg == 2) {
        engine_worker_exit(w);
        return;
    }
    for (unsigned i = 0; i < OPS; i++) {
        pthread_mutex_lock(&B.lock);
        B.issuing = true;
        pthread_mutex_unlock(&B.lock);
        nops[i] = (struct nop){.op.complete = nop_complete, .n = i};
        io_uring_prep_nop(engine_sqe(w, &nops[i].op));
        pthread_mutex_lock(&B.lock);
        B.issuing = false;
        pthread_mutex_unlock(&B.lock);
    }
}

static void *b_on_accept(struct engine_worker *w, engine_conn_id id, unsigned listener,
                         const struct sockaddr *peer, socklen_t peerlen,
                         const struct sockaddr *local, socklen_t locallen)
{
    (void)w;
    (void)id;
    (void)listener;
    (void)peer;
    (void)peerlen;
    (void)local;
    (void)locallen;
    return NULL;
}

static void b_on_recv(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
}

static void b_on_closed(void *ctx, int err)
{
    (void)ctx;
    (void)err;
}

static const struct engine_callbacks callbacks = {
    .worker_init = b_worker_init,
    .worker_fini = b_worker_fini,
    .on_accept = b_on_accept,
    .on_recv = b_on_recv,
    .on_closed = b_on_closed,
    .on_message = b_on_message,
};

static void run_refusing(int refuse)
{
    memset(&B.inits, 0, sizeof B - offsetof(struct busy_state, inits));
    atomic_store(&B.refused, 0);
    atomic_store(&B.in_a_row, 0);
    atomic_store(&B.spun, false);
    atomic_store(&B.refuse, refuse);
    struct engine_settings s = {.workers = 1, .ring_entries = 2, .recv_buffers = 8};
    char err[512];
    struct engine *e = engine_new(&s, &callbacks, err, sizeof err);
    if (!e)
        fail_msg("engine_new: %s", err);
    if (engine_start(e, err, sizeof err) < 0)
        fail_msg("engine_start: %s", err);
    bool started = wait_for(&B.inits, 1);
    if (started)
        engine_post(e, 1);
    bool finished = started && wait_for(&B.done, OPS);
    atomic_store(&B.refuse, 0);
    engine_post(e, 2);
    engine_join(e);
    engine_free(e);
    if (!started)
        fail_msg("the worker did not start");
    if (atomic_load(&B.spun))
        fail_msg("engine_sqe kept retrying a refused submission (%s) %d times without "
                 "reaping a completion",
                 strerror(-refuse), SPIN_STOP);
    if (!finished)
        fail_msg("%u of %d operations completed", B.done, OPS);
    assert_true(atomic_load(&B.refused) > 0); /* the refusal did happen */
    assert_int_equal(B.order_errors, 0);
    assert_int_equal(B.reentered, 0);
    assert_int_equal(B.finis, 1);
}

static void test_submit_ebusy(void **state)
{
    (void)state;
    run_refusing(-EBUSY);
}

static void test_submit_eagain(void **state)
{
    (void)state;
    run_refusing(-EAGAIN);
}

int main(void)
{
    if (!engine_fixture_usable())
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_ebusy),
        cmocka_unit_test(test_submit_eagain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
