/* limits.connection_rate_throttle (core/accept_throttle.h): N greetings per second per
 * listener, the others waiting for the first later second with room, never refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/accept_throttle.h"

/* One connection: on `listener` at `now` with `per_sec`, and the wait it gets. */
struct step {
    size_t listener;
    uint64_t now;
    unsigned per_sec;
    uint64_t wait;
};

static void test_burst_spreads_over_seconds(void **state)
{
    (void)state;
    static const struct step steps[] = {
        /* 2 per second: a burst of 5 at 10.25 s: two at once, two at 11 s, one at 12 s */
        {0, 10250, 2, 0},    {0, 10250, 2, 0},    {0, 10250, 2, 750}, {0, 10300, 2, 700},
        {0, 10300, 2, 1700}, {1, 10300, 2, 0},    /* the other listener counts its own */
        {0, 11900, 2, 100},  {0, 11900, 2, 1100}, /* 12 s has one place left, then 13 s */
        {0, 20000, 2, 0},                         /* after a quiet spell: afresh */
        {0, 20000, 0, 0},    {7, 20000, 1, 0},    /* no limit, unknown listener: uncounted */
        {0, 20000, 2, 0},    {0, 20000, 2, 1000},
    };
    struct accept_throttle *t = accept_throttle_new(2);
    assert_non_null(t);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        const struct step *st = &steps[i];
        uint64_t wait = accept_throttle_wait(t, st->listener, st->now, st->per_sec);
        if (wait != st->wait)
            fail_msg("step %zu: waits %llu ms, want %llu", i, (unsigned long long)wait,
                     (unsigned long long)st->wait);
    }
    accept_throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_spreads_over_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
