/*
 * A worker's ring lets io_uring run as many blocking file operations at once as the spool
 * has messages committing (util/engine_ring.c): the kernel's default, 4 io-wq workers per
 * CPU, queued every fsync past the eighth on a two-CPU machine behind a journal commit.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine_usable.h"
#include "util/engine_int.h"

/* The ring's limits, read without changing them (zeros ask). */
static int iowq_limits(struct io_uring *ring, unsigned out[2])
{
    out[0] = out[1] = 0;
    return io_uring_register_iowq_max_workers(ring, out);
}

struct limits {
    int rc;
    unsigned def[2], got[2];
};

/* The limits belong to a thread's io-wq, which all its rings share (engine_probe() in main
 * raised them already for the main thread): a new thread reads the kernel's default, then
 * sets up a ring as a worker does. */
static void *limits_in_new_thread(void *arg)
{
    struct limits *l = arg;
    struct io_uring plain, ours;
    l->rc = -1;
    if (io_uring_queue_init(8, &plain, 0) < 0)
        return NULL;
    if (iowq_limits(&plain, l->def) == 0 && engine_ring_init(&ours, 64) == 0) {
        l->rc = iowq_limits(&ours, l->got);
        io_uring_queue_exit(&ours);
    }
    io_uring_queue_exit(&plain);
    return NULL;
}

static void test_bounded_workers_raised(void **state)
{
    (void)state;
    struct limits l;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, limits_in_new_thread, &l), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(l.rc, 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_true(l.got[0] >= 64);
    if (cpus > 0 && cpus * 4 < 64)
        assert_true(l.def[0] < l.got[0]);
    /* the unbounded workers (sockets, pipes) keep the kernel's limit */
    assert_int_equal(l.got[1], l.def[1]);
}

int main(void)
{
    if (!engine_fixture_usable())
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounded_workers_raised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
