/* The retry schedule (docs/queue.md, "Retries"): doubling between the bounds, the
 * sendmail floors, the final attempt at expiry, expiry and the delay warning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "queue/backoff.h"

#define T0 ((time_t)1700000000)

static void test_defaults(void **state)
{
    (void)state;
    struct queue_retry_settings s = queue_retry_defaults();
    assert_int_equal(s.interval, 1800);
    assert_int_equal(s.min_queue_age, 0);
    assert_int_equal(s.minimal_backoff, 300);
    assert_int_equal(s.maximal_backoff, 3600);
    assert_int_equal(s.queuewarn, 4 * 3600);
    assert_int_equal(s.queuereturn, 5 * 86400);
}

static void test_doubling_capped(void **state)
{
    (void)state;
    struct queue_retry_settings s = queue_retry_defaults();
    static const uint32_t want[] = {0, 300, 600, 1200, 2400, 3600, 3600};
    for (unsigned a = 0; a < sizeof(want) / sizeof(want[0]); a++)
        assert_int_equal(queue_backoff(a, &s), want[a]);
    /* No overflow however many attempts. */
    assert_int_equal(queue_backoff(64, &s), 3600);
    assert_int_equal(queue_backoff(~0u, &s), 3600);
    s.maximal_backoff = UINT32_MAX;
    s.minimal_backoff = UINT32_MAX / 2;
    assert_int_equal(queue_backoff(3, &s), UINT32_MAX);
}

static void test_floors(void **state)
{
    (void)state;
    struct queue_retry_settings s = queue_retry_defaults();
    /* confMIN_QUEUE_AGE: never sooner than this after an attempt. */
    s.min_queue_age = 1000;
    assert_int_equal(queue_backoff(1, &s), 1000);
    assert_int_equal(queue_backoff(3, &s), 1200);
    /* A maximum below the minimum: the minimum wins. */
    s = queue_retry_defaults();
    s.maximal_backoff = 60;
    assert_int_equal(queue_backoff(4, &s), 300);
    /* No backoff configured: sendmail's fixed queue-run interval. */
    s = queue_retry_defaults();
    s.minimal_backoff = 0;
    assert_int_equal(queue_backoff(1, &s), 1800);
    assert_int_equal(queue_backoff(9, &s), 1800);
    /* Everything zero: still one second, never a tight loop. */
    s = (struct queue_retry_settings){.queuereturn = 100};
    assert_int_equal(queue_backoff(1, &s), 1);
}

static void test_next_attempt_and_expiry(void **state)
{
    (void)state;
    struct queue_retry_settings s = queue_retry_defaults();
    assert_int_equal(queue_next_attempt(T0, T0, 1, &s), T0 + 300);
    assert_int_equal(queue_next_attempt(T0, T0 + 7200, 3, &s), T0 + 7200 + 1200);
    /* Near the end of the lifetime the last attempt is at the expiry itself... */
    time_t expiry = T0 + 5 * 86400;
    assert_int_equal(queue_next_attempt(T0, expiry - 100, 40, &s), expiry);
    assert_false(queue_expired(T0, expiry - 1, &s));
    /* ...and a failure then bounces. */
    assert_true(queue_expired(T0, expiry, &s));
    assert_int_equal(queue_next_attempt(T0, expiry + 50, 41, &s), expiry + 50);
    /* queuereturn 0: the first temporary failure is final (Postfix's lifetime 0). */
    s.queuereturn = 0;
    assert_true(queue_expired(T0, T0, &s));
}

static void test_warn(void **state)
{
    (void)state;
    struct queue_retry_settings s = queue_retry_defaults();
    assert_false(queue_warn_due(T0, T0 + 4 * 3600 - 1, &s));
    assert_true(queue_warn_due(T0, T0 + 4 * 3600, &s));
    assert_true(queue_warn_due(T0, T0 + 86400, &s));
    /* An expired message bounces instead. */
    assert_false(queue_warn_due(T0, T0 + 5 * 86400, &s));
    s.queuewarn = 0;
    assert_false(queue_warn_due(T0, T0 + 86400, &s));
    /* A warning period no shorter than the lifetime never warns. */
    s.queuewarn = 3600;
    s.queuereturn = 3600;
    assert_false(queue_warn_due(T0, T0 + 3599, &s));
    assert_false(queue_warn_due(T0, T0 + 3600, &s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_doubling_capped),
        cmocka_unit_test(test_floors),   cmocka_unit_test(test_next_attempt_and_expiry),
        cmocka_unit_test(test_warn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
