/* limits.connection_rate_throttle (core/accept_throttle.h): N greetings per second per
 * listener, the others waiting for the first later second with room, never refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/accept_throttle.h"

static void test_burst_spreads_over_seconds(void **state)
{
    (void)state;
    struct accept_throttle *t = accept_throttle_new(2);
    assert_non_null(t);
    /* 2 per second: a burst of 5 at 10.250 s is greeted at once, once, at 11 s (twice), 12 s */
    assert_int_equal(accept_throttle_wait(t, 0, 10250, 2), 0);
    assert_int_equal(accept_throttle_wait(t, 0, 10250, 2), 0);
    assert_int_equal(accept_throttle_wait(t, 0, 10250, 2), 750);
    assert_int_equal(accept_throttle_wait(t, 0, 10300, 2), 700);
    assert_int_equal(accept_throttle_wait(t, 0, 10300, 2), 1700);
    /* the other listener counts its own */
    assert_int_equal(accept_throttle_wait(t, 1, 10300, 2), 0);
    /* 12 s is taken once: one more place in it, then 13 s */
    assert_int_equal(accept_throttle_wait(t, 0, 11900, 2), 100);
    assert_int_equal(accept_throttle_wait(t, 0, 11900, 2), 1100);
    /* after a quiet spell the current second starts afresh */
    assert_int_equal(accept_throttle_wait(t, 0, 20000, 2), 0);
    /* no limit, or a listener unknown at start-up: never waits, never counted */
    assert_int_equal(accept_throttle_wait(t, 0, 20000, 0), 0);
    assert_int_equal(accept_throttle_wait(t, 7, 20000, 1), 0);
    assert_int_equal(accept_throttle_wait(t, 0, 20000, 2), 0);
    assert_int_equal(accept_throttle_wait(t, 0, 20000, 2), 1000);
    accept_throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_spreads_over_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
