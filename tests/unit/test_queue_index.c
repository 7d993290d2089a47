/* The deferred-message index: order (due, then qid), the by-id operations, random
 * interleavings checked against a plain array, and a million entries (memory and time
 * printed, not asserted: machines are noisy). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/queue_index.h"

static const char qi_digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Id number n as QID_LEN base-62 digits: ids sort as their numbers do, like real ones. */
static void make_qid(char out[QID_LEN + 1], uint64_t n)
{
    for (int i = QID_LEN - 1; i >= 0; i--) {
        out[i] = qi_digits[n % 62];
        n /= 62;
    }
    out[QID_LEN] = '\0';
}

/* xorshift64*: reproducible without libc's rand state. */
static uint64_t rng_state = 0x2545f4914f6cdd1du;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_order_due_then_qid(void **state)
{
    (void)state;
    struct queue_index *qi = queue_index_new();
    assert_non_null(qi);
    char id[QID_LEN + 1];
    int64_t due = -1;
    assert_false(queue_index_peek(qi, id, &due));
    assert_false(queue_index_pop(qi, id, &due));

    /* (id number, due): same-second entries come out oldest id first. */
    static const struct {
        uint64_t n;
        int64_t due;
    } in[] = {{5, 200}, {3, 100}, {9, 100}, {1, 300}, {7, 100}, {2, 200}};
    static const uint64_t want[] = {3, 7, 9, 2, 5, 1};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        make_qid(id, in[i].n);
        assert_int_equal(queue_index_push(qi, id, in[i].due), 0);
    }
    assert_int_equal(queue_index_count(qi), 6);
    assert_true(queue_index_peek(qi, id, &due));
    char expect[QID_LEN + 1];
    make_qid(expect, 3);
    assert_string_equal(id, expect);
    assert_int_equal(due, 100);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_true(queue_index_pop(qi, id, NULL));
        make_qid(expect, want[i]);
        assert_string_equal(id, expect);
    }
    assert_int_equal(queue_index_count(qi), 0);
    queue_index_free(qi);
}

static void test_by_id(void **state)
{
    (void)state;
    struct queue_index *qi = queue_index_new();
    char a[QID_LEN + 1], b[QID_LEN + 1], c[QID_LEN + 1], out[QID_LEN + 1];
    make_qid(a, 1);
    make_qid(b, 2);
    make_qid(c, 3);
    assert_int_equal(queue_index_push(qi, a, 50), 0);
    assert_int_equal(queue_index_push(qi, b, 60), 0);
    assert_int_equal(queue_index_push(qi, a, 10), -EEXIST);
    int64_t due = 0;
    assert_true(queue_index_contains(qi, a, &due));
    assert_int_equal(due, 50);
    assert_false(queue_index_contains(qi, c, NULL));
    assert_int_equal(queue_index_remove(qi, c), -ENOENT);
    assert_int_equal(queue_index_reschedule(qi, c, 1), -ENOENT);

    /* -qI: b now first, then later than a again. */
    assert_int_equal(queue_index_reschedule(qi, b, 0), 0);
    assert_true(queue_index_peek(qi, out, &due));
    assert_string_equal(out, b);
    assert_int_equal(due, 0);
    assert_int_equal(queue_index_reschedule(qi, b, 99), 0);
    assert_true(queue_index_peek(qi, out, NULL));
    assert_string_equal(out, a);

    assert_int_equal(queue_index_remove(qi, a), 0);
    assert_false(queue_index_contains(qi, a, NULL));
    assert_true(queue_index_pop(qi, out, &due));
    assert_string_equal(out, b);
    assert_int_equal(due, 99);
    assert_false(queue_index_peek(qi, NULL, NULL));
    /* A removed id may come back. */
    assert_int_equal(queue_index_push(qi, a, 7), 0);
    assert_true(queue_index_contains(qi, a, NULL));
    queue_index_free(qi);
}

/* The model: an unordered array of (id number, due); the minimum found by a scan. */
struct model_entry {
    uint64_t n;
    int64_t due;
};

static size_t model_min(const struct model_entry *m, size_t len)
{
    size_t best = 0;
    for (size_t i = 1; i < len; i++)
        if (m[i].due < m[best].due || (m[i].due == m[best].due && m[i].n < m[best].n))
            best = i;
    return best;
}

static void check_against_model(struct queue_index *qi, const struct model_entry *m, size_t len)
{
    assert_int_equal(queue_index_count(qi), len);
    char id[QID_LEN + 1], expect[QID_LEN + 1];
    int64_t due;
    if (!len) {
        assert_false(queue_index_peek(qi, id, &due));
        return;
    }
    size_t i = model_min(m, len);
    assert_true(queue_index_peek(qi, id, &due));
    make_qid(expect, m[i].n);
    assert_string_equal(id, expect);
    assert_int_equal(due, m[i].due);
}

/* Random pushes, pops, removals, reschedules and lookups, in phases that grow the index
 * to thousands and drain it (so the storage doubles and halves many times); dues from a
 * small range so ties are frequent. */
struct seen {
    int64_t sum_due;
    size_t n;
    bool held_seen;
};

static void count_entry(void *arg, const char *qid, int64_t due)
{
    struct seen *s = arg;
    (void)qid;
    s->sum_due += due == INT64_C(99999999999999999) ? 0 : due;
    s->held_seen |= due == INT64_C(99999999999999999);
    s->n++;
}

/* foreach visits every entry once, a never-due (held) one too, and an empty index not at
 * all. */
static void test_foreach(void **state)
{
    (void)state;
    struct queue_index *qi = queue_index_new();
    char q[QID_LEN + 1];
    struct seen s = {0};
    queue_index_foreach(qi, count_entry, &s);
    assert_int_equal(s.n, 0);
    for (uint64_t i = 1; i <= 100; i++) {
        make_qid(q, i);
        assert_int_equal(queue_index_push(qi, q, (int64_t)i), 0);
    }
    make_qid(q, 1000);
    assert_int_equal(queue_index_push(qi, q, INT64_C(99999999999999999)), 0);
    queue_index_foreach(qi, count_entry, &s);
    assert_int_equal(s.n, 101);
    assert_int_equal(s.sum_due, 5050);
    assert_true(s.held_seen);
    queue_index_free(qi);
}

static void test_random_against_model(void **state)
{
    (void)state;
    enum { MAX = 2000, OPS = 120000 };
    struct model_entry *m = calloc(MAX, sizeof(*m));
    assert_non_null(m);
    size_t len = 0;
    uint64_t next_n = 1;
    struct queue_index *qi = queue_index_new();
    char id[QID_LEN + 1], expect[QID_LEN + 1];
    int64_t due;
    for (int op = 0; op < OPS; op++) {
        bool growing = (op / 8000) % 2 == 0;
        unsigned r = (unsigned)(rng() % 100);
        if (len < MAX && (r < (growing ? 50u : 10u) || len == 0)) {
            /* Ids are mostly new, sometimes out of order (a recovered older message). */
            uint64_t n = rng() % 8 == 0 ? rng() % (next_n + 1000) + 1 : next_n++;
            int64_t d = (int64_t)(rng() % 64) - 8;
            make_qid(id, n);
            bool present = false;
            for (size_t i = 0; i < len && !present; i++)
                present = m[i].n == n;
            assert_int_equal(queue_index_push(qi, id, d), present ? -EEXIST : 0);
            if (!present)
                m[len++] = (struct model_entry){n, d};
        } else if (r < 70) {
            size_t i = model_min(m, len);
            assert_true(queue_index_pop(qi, id, &due));
            make_qid(expect, m[i].n);
            assert_string_equal(id, expect);
            assert_int_equal(due, m[i].due);
            m[i] = m[--len];
        } else if (r < 82) {
            size_t i = (size_t)(rng() % len);
            make_qid(id, m[i].n);
            assert_int_equal(queue_index_remove(qi, id), 0);
            assert_int_equal(queue_index_remove(qi, id), -ENOENT);
            m[i] = m[--len];
        } else if (r < 92) {
            size_t i = (size_t)(rng() % len);
            make_qid(id, m[i].n);
            m[i].due = (int64_t)(rng() % 64) - 8;
            assert_int_equal(queue_index_reschedule(qi, id, m[i].due), 0);
        } else {
            /* Either a present id (with its due) or, likely, an absent one. */
            uint64_t n = rng() % 2 ? m[rng() % len].n : rng() % (next_n + 10);
            bool present = false;
            int64_t want = 0;
            for (size_t i = 0; i < len; i++)
                if (m[i].n == n) {
                    present = true;
                    want = m[i].due;
                }
            make_qid(id, n);
            due = -100;
            assert_int_equal(queue_index_contains(qi, id, &due), present);
            if (present)
                assert_int_equal(due, want);
        }
        check_against_model(qi, m, len);
    }
    /* Drain: everything in model order, then the index is back to its smallest size. */
    size_t small = 0;
    while (len) {
        size_t i = model_min(m, len);
        assert_true(queue_index_pop(qi, id, &due));
        make_qid(expect, m[i].n);
        assert_string_equal(id, expect);
        m[i] = m[--len];
        if (!small && len == 0)
            small = queue_index_memory(qi);
    }
    struct queue_index *fresh = queue_index_new();
    assert_int_equal(small, queue_index_memory(fresh));
    queue_index_free(fresh);
    queue_index_free(qi);
    free(m);
}

/* A million deferred messages with real ids: memory per entry and the time of each
 * phase are printed; every entry comes out, in order. */
static void test_million(void **state)
{
    (void)state;
    enum { N = 1000000 };
    char(*ids)[QID_LEN + 1] = malloc((size_t)N * sizeof(*ids));
    assert_non_null(ids);
    for (size_t i = 0; i < N; i++)
        qid_new(ids[i], (unsigned)(i % 8));

    struct queue_index *qi = queue_index_new();
    double t0 = now_s();
    for (size_t i = 0; i < N; i++)
        assert_int_equal(queue_index_push(qi, ids[i], 1700000000 + (int64_t)(rng() % 432000)), 0);
    double t1 = now_s();
    size_t mem = queue_index_memory(qi);
    for (size_t i = 0; i < N; i += 7)
        assert_true(queue_index_contains(qi, ids[i], NULL));
    for (size_t i = 0; i < N; i += 10)
        assert_int_equal(queue_index_reschedule(qi, ids[i], (int64_t)(rng() % 432000)), 0);
    double t2 = now_s();
    size_t removed = 0;
    for (size_t i = 3; i < N; i += 10, removed++)
        assert_int_equal(queue_index_remove(qi, ids[i]), 0);
    double t3 = now_s();
    int64_t prev = INT64_MIN, due;
    char id[QID_LEN + 1];
    size_t popped = 0;
    while (queue_index_pop(qi, id, &due)) {
        assert_true(due >= prev);
        prev = due;
        popped++;
    }
    double t4 = now_s();
    assert_int_equal(popped + removed, N);
    printf("queue_index: %d entries: %zu bytes, %.1f bytes/entry; push %.0f ns, "
           "contains+reschedule %.0f ns, remove %.0f ns, pop %.0f ns (per operation)\n",
           N, mem, (double)mem / N, (t1 - t0) * 1e9 / N, (t2 - t1) * 1e9 / (N / 7 + N / 10),
           (t3 - t2) * 1e9 / (double)removed, (t4 - t3) * 1e9 / (double)popped);

    /* With the count known up front (recovery), no step-by-step growth. */
    assert_int_equal(queue_index_reserve(qi, N), 0);
    size_t reserved = queue_index_memory(qi);
    t0 = now_s();
    for (size_t i = 0; i < N; i++)
        assert_int_equal(queue_index_push(qi, ids[i], (int64_t)i), 0);
    t1 = now_s();
    assert_int_equal(queue_index_memory(qi), reserved);
    printf("queue_index: reserved for %d: %.1f bytes/entry, push %.0f ns\n", N,
           (double)reserved / N, (t1 - t0) * 1e9 / N);
    fflush(stdout); /* before cmocka's own lines, when the output is a pipe */
    queue_index_free(qi);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_due_then_qid),
        cmocka_unit_test(test_by_id),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_million),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
