/* Queue ids: charset and length, uniqueness across threads, and time order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/qid.h"

#define THREADS    4
#define PER_THREAD 20000

static void test_shape(void **state)
{
    (void)state;
    char id[QID_LEN + 1];
    qid_new(id, 3);
    assert_int_equal(strlen(id), QID_LEN);
    assert_true(qid_valid(id));
}

static void test_valid(void **state)
{
    (void)state;
    assert_true(qid_valid("0123456789abcXYZ"));
    assert_false(qid_valid("0123456789abcXY"));   /* short */
    assert_false(qid_valid("0123456789abcXYZ0")); /* long */
    assert_false(qid_valid("0123456789abc/YZ"));  /* path separator */
    assert_false(qid_valid("0123456789abc.YZ"));
    assert_false(qid_valid(""));
}

struct batch {
    unsigned worker;
    char (*ids)[QID_LEN + 1];
};

static void *make_ids(void *arg)
{
    struct batch *b = arg;
    for (unsigned i = 0; i < PER_THREAD; i++)
        qid_new(b->ids[i], b->worker);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Ids made concurrently by several workers, and quickly, never repeat. */
static void test_unique_across_threads(void **state)
{
    (void)state;
    char(*ids)[QID_LEN + 1] = calloc(THREADS * PER_THREAD, QID_LEN + 1);
    pthread_t t[THREADS];
    struct batch b[THREADS];
    assert_non_null(ids);
    for (unsigned i = 0; i < THREADS; i++) {
        b[i] = (struct batch){.worker = i, .ids = ids + i * PER_THREAD};
        assert_int_equal(pthread_create(&t[i], NULL, make_ids, &b[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    qsort(ids, THREADS * PER_THREAD, QID_LEN + 1, cmp_id);
    for (unsigned i = 1; i < THREADS * PER_THREAD; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

/* A later id sorts after an earlier one (ASCII order is time order). */
static void test_time_order(void **state)
{
    (void)state;
    char a[QID_LEN + 1], b[QID_LEN + 1];
    qid_new(a, 61);
    usleep(20000);
    qid_new(b, 0);
    assert_true(strcmp(a, b) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_unique_across_threads),
        cmocka_unit_test(test_time_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
