/* The per-destination table: concurrency never above the limit (also from many threads),
 * the rate's token bucket, host status held with its reason until it expires, the TLS
 * fallback memory, and a bounded table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "delivery/dest.h"

static void test_concurrency(void **state)
{
    (void)state;
    struct dest_table *t = dest_table_new(&(struct dest_settings){.concurrency = 2});
    assert_non_null(t);
    struct dest_check c;
    assert_int_equal(dest_acquire(t, "esmtp:a.example", true, 0, &c), DEST_GO);
    assert_int_equal(dest_acquire(t, "esmtp:a.example", true, 0, &c), DEST_GO);
    assert_int_equal(dest_acquire(t, "esmtp:a.example", true, 5, &c), DEST_BUSY);
    assert_int_equal(c.retry_at, 1005);
    assert_non_null(strstr(c.reason, "concurrency limit (2)"));
    /* another destination is not affected; the next message on a held slot is */
    assert_int_equal(dest_acquire(t, "esmtp:b.example", true, 0, &c), DEST_GO);
    assert_int_equal(dest_acquire(t, "esmtp:a.example", false, 0, &c), DEST_GO);
    assert_int_equal(dest_sessions(t, "esmtp:a.example"), 2);
    dest_release(t, "esmtp:a.example");
    assert_int_equal(dest_acquire(t, "esmtp:a.example", true, 0, &c), DEST_GO);
    /* a lowered limit holds new sessions back until the count is under it */
    dest_table_configure(t, &(struct dest_settings){.concurrency = 1});
    dest_release(t, "esmtp:a.example");
    assert_int_equal(dest_acquire(t, "esmtp:a.example", true, 0, &c), DEST_BUSY);
    dest_release(t, "esmtp:a.example");
    assert_int_equal(dest_acquire(t, "esmtp:a.example", true, 0, &c), DEST_GO);
    /* releasing more than was taken never goes below zero */
    for (int i = 0; i < 4; i++)
        dest_release(t, "esmtp:a.example");
    assert_int_equal(dest_sessions(t, "esmtp:a.example"), 0);
    dest_release(t, "esmtp:never.seen");
    dest_table_free(t);
}

struct worker_arg {
    struct dest_table *t;
    atomic_uint *active;
    atomic_uint *max_seen;
    atomic_uint *went;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    struct dest_check c;
    for (int i = 0; i < 5000; i++) {
        if (dest_acquire(a->t, "relay:[hub.example]", true, 0, &c) != DEST_GO)
            continue;
        unsigned now = atomic_fetch_add(a->active, 1) + 1;
        unsigned seen = atomic_load(a->max_seen);
        while (now > seen && !atomic_compare_exchange_weak(a->max_seen, &seen, now))
            ;
        atomic_fetch_add(a->went, 1);
        sched_yield(); /* hold the slot while the others try */
        atomic_fetch_sub(a->active, 1);
        dest_release(a->t, "relay:[hub.example]");
    }
    return NULL;
}

static void test_concurrency_threads(void **state)
{
    (void)state;
    struct dest_table *t = dest_table_new(&(struct dest_settings){.concurrency = 3});
    atomic_uint active = 0, max_seen = 0, went = 0;
    struct worker_arg a = {t, &active, &max_seen, &went};
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, &a), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    printf("sessions started: %u, most at once: %u (limit 3)\n", atomic_load(&went),
           atomic_load(&max_seen));
    assert_true(atomic_load(&max_seen) <= 3);
    assert_true(atomic_load(&went) < 8 * 5000); /* the limit did refuse some */
    assert_true(atomic_load(&went) > 0);
    assert_int_equal(dest_sessions(t, "relay:[hub.example]"), 0);
    dest_table_free(t);
}

static void test_rate(void **state)
{
    (void)state;
    /* 120 a minute: a burst of 2, then one every 500 ms */
    struct dest_table *t = dest_table_new(&(struct dest_settings){.rate = 120});
    struct dest_check c;
    const char *k = "esmtp:rate.example";
    assert_int_equal(dest_acquire(t, k, true, 1000, &c), DEST_GO);
    assert_int_equal(dest_acquire(t, k, false, 1000, &c), DEST_GO);
    assert_int_equal(dest_acquire(t, k, false, 1000, &c), DEST_BUSY);
    assert_int_equal(c.retry_at, 1500);
    assert_non_null(strstr(c.reason, "rate limit (120 messages a minute)"));
    assert_int_equal(dest_acquire(t, k, false, 1499, &c), DEST_BUSY);
    assert_int_equal(c.retry_at, 1500);
    assert_int_equal(dest_acquire(t, k, false, 1500, &c), DEST_GO);
    assert_int_equal(dest_acquire(t, k, false, 1500, &c), DEST_BUSY);
    /* a message that was never sent gives its token back */
    dest_untake(t, k);
    assert_int_equal(dest_acquire(t, k, false, 1500, &c), DEST_GO);
    /* a long pause refills only up to the burst */
    assert_int_equal(dest_acquire(t, k, false, 100000, &c), DEST_GO);
    assert_int_equal(dest_acquire(t, k, false, 100000, &c), DEST_GO);
    assert_int_equal(dest_acquire(t, k, false, 100000, &c), DEST_BUSY);
    /* a rate below one a second still allows one message */
    dest_table_configure(t, &(struct dest_settings){.rate = 1});
    assert_int_equal(dest_acquire(t, "esmtp:slow.example", true, 0, &c), DEST_GO);
    assert_int_equal(dest_acquire(t, "esmtp:slow.example", false, 59999, &c), DEST_BUSY);
    assert_int_equal(c.retry_at, 60000);
    assert_int_equal(dest_acquire(t, "esmtp:slow.example", false, 60000, &c), DEST_GO);
    /* a slot refused for the rate is not taken */
    assert_int_equal(dest_sessions(t, "esmtp:slow.example"), 1);
    dest_table_free(t);
}

static void test_host_status(void **state)
{
    (void)state;
    struct dest_table *t =
        dest_table_new(&(struct dest_settings){.host_status_timeout = 30 * 60 * 1000});
    struct dest_check c;
    const char *k = "esmtp:down.example";
    dest_failed(t, k, "Connection refused by mx.down.example.", 1000);
    assert_int_equal(dest_acquire(t, k, true, 2000, &c), DEST_HELD);
    assert_string_equal(c.reason, "Connection refused by mx.down.example.");
    assert_int_equal(c.retry_at, 1000 + 30 * 60 * 1000);
    assert_int_equal(dest_sessions(t, k), 0);
    assert_int_equal(dest_acquire(t, k, true, 1000 + 30 * 60 * 1000, &c), DEST_GO);
    dest_release(t, k);
    /* a success forgets the failure at once */
    dest_failed(t, k, "timeout", 5000);
    dest_succeeded(t, k);
    assert_int_equal(dest_acquire(t, k, true, 5001, &c), DEST_GO);
    dest_release(t, k);
    /* with no timeout configured nothing is held */
    dest_table_configure(t, &(struct dest_settings){0});
    dest_failed(t, "esmtp:other.example", "refused", 0);
    assert_int_equal(dest_acquire(t, "esmtp:other.example", true, 1, &c), DEST_GO);
    dest_table_free(t);
}

struct listed {
    size_t n, down;
    char text[512];
};

static void list_one(void *arg, const struct dest_status *st)
{
    struct listed *l = arg;
    size_t len = strlen(l->text);
    snprintf(l->text + len, sizeof(l->text) - len, "%s %s %llu %s;", st->key,
             st->down ? "down" : "up", (unsigned long long)st->failed_at, st->reason);
    l->n++;
    l->down += st->down;
}

/* hoststat lists failures on record (held or expired but not forgotten), purgestat
 * forgets them all and the destinations go at once. */
static void test_status_list_purge(void **state)
{
    (void)state;
    struct dest_table *t = dest_table_new(&(struct dest_settings){.host_status_timeout = 10000});
    struct dest_check c;
    struct listed l = {0};
    assert_int_equal(dest_status_list(t, 0, list_one, &l), 0);
    dest_failed(t, "esmtp:a.example", "Connection refused by a.example.", 1000);
    dest_acquire(t, "esmtp:b.example", true, 1000, &c); /* a destination without a status */
    dest_failed(t, "esmtp:c.example", "timeout", 1000);
    dest_succeeded(t, "esmtp:c.example");
    assert_int_equal(dest_status_list(t, 2000, list_one, &l), 1);
    assert_string_equal(l.text, "esmtp:a.example down 1000 Connection refused by a.example.;");
    l = (struct listed){0};
    assert_int_equal(dest_status_list(t, 20000, list_one, &l), 1); /* expired, still known */
    assert_int_equal(l.down, 0);

    assert_int_equal(dest_acquire(t, "esmtp:a.example", true, 3000, &c), DEST_HELD);
    assert_int_equal(dest_status_purge(t), 1);
    l = (struct listed){0};
    assert_int_equal(dest_status_list(t, 3000, list_one, &l), 0);
    assert_int_equal(dest_acquire(t, "esmtp:a.example", true, 3000, &c), DEST_GO);
    dest_release(t, "esmtp:a.example");
    dest_release(t, "esmtp:b.example");
    dest_table_free(t);
}

static void test_tls_memory(void **state)
{
    (void)state;
    struct dest_table *t = dest_table_new(&(struct dest_settings){.host_status_timeout = 1000});
    assert_false(dest_tls_broken(t, "esmtp:x", 0));
    dest_tls_failed(t, "esmtp:x", 10);
    assert_true(dest_tls_broken(t, "esmtp:x", 1009));
    assert_false(dest_tls_broken(t, "esmtp:x", 1010));
    assert_false(dest_tls_broken(t, "esmtp:y", 20));
    dest_table_free(t);
}

static void test_bounded(void **state)
{
    (void)state;
    struct dest_table *t = dest_table_new(
        &(struct dest_settings){.max_entries = 100, .rate = 6000, .host_status_timeout = 100});
    struct dest_check c;
    char key[64];
    /* ten destinations stay in use throughout: never dropped */
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "esmtp:busy%d.example", i);
        assert_int_equal(dest_acquire(t, key, true, 0, &c), DEST_GO);
    }
    dest_failed(t, "esmtp:held.example", "refused", 0);
    size_t most = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "esmtp:d%d.example", i);
        uint64_t now = 10 + (uint64_t)i; /* buckets refill within 10 ms at 6000/min */
        assert_int_equal(dest_acquire(t, key, true, now, &c), DEST_GO);
        dest_release(t, key);
        if (dest_entries(t) > most)
            most = dest_entries(t);
        if (i == 50)
            assert_int_equal(dest_acquire(t, "esmtp:held.example", true, now, &c), DEST_HELD);
    }
    printf("most entries at once: %zu (max_entries 100)\n", most);
    assert_true(most <= 101);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "esmtp:busy%d.example", i);
        assert_int_equal(dest_sessions(t, key), 1);
    }
    dest_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_concurrency_threads),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_host_status),
        cmocka_unit_test(test_tls_memory),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_status_list_purge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
