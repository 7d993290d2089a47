/*
 * tests/unit/test_engine_timer.c — the layer's worker timers (engine_timer_arm/disarm).
 *
 * The engine runs one worker and no listener; each test hands it a scenario (a function
 * run on the worker's thread through engine_post) that arms and disarms timers embedded in
 * `struct ttimer`. fire() only records (id, deadline, the time it ran) in a log; every
 * assertion is made here, after waiting (with a timeout) for the log. Skips (77) when the
 * kernel refuses io_uring.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define WAIT_MS 20000
#include "engine_fixture.h"

#define MANY   100000u
#define STRESS 10000u

enum action {
    A_RECORD,
    A_AGAIN,     /* re-arm itself at a past deadline until it has fired `again` times */
    A_FOREVER,   /* re-arm itself at a past deadline until T.stop_forever */
    A_DISARM,    /* disarm (and so may free) `other` */
    A_FREE_SELF, /* free the object that holds the timer */
};

struct ttimer {
    struct engine_timer t;
    unsigned id;
    enum action action;
    uint64_t deadline; /* as last armed */
    unsigned fires;
    unsigned again;
    bool armed_in_fire;
    bool expected; /* armed when the scenario ended: must fire once */
    struct ttimer *other;
};

struct fired {
    unsigned id;
    uint64_t deadline;
    uint64_t at;
};

static struct tstate {
    struct ttimer *timers; /* the test's, freed by the teardown */
    /* Everything from here on is cleared by start(). */
    unsigned finis;
    bool in_scenario;
    unsigned fired_in_scenario;
    unsigned expected; /* timers armed when the scenario ended */
    bool armed_at_fini, armed_after_rearm;
    bool stop_forever;
    struct fired *log;
    unsigned nlog, log_cap;
} T;

/* A small deterministic generator: failures reproduce. */
static uint64_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(rng_state >> 33);
}

/* --- the timers --- */

static void t_fire(struct engine_timer *et)
{
    struct ttimer *t = (struct ttimer *)((char *)et - offsetof(struct ttimer, t));
    pthread_mutex_lock(&F.lock);
    if (T.in_scenario)
        T.fired_in_scenario++;
    if (T.nlog < T.log_cap)
        T.log[T.nlog++] =
            (struct fired){.id = t->id, .deadline = t->deadline, .at = engine_now_ms(F.w)};
    t->fires++;
    t->armed_in_fire = engine_timer_armed(&t->t);
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
    switch (t->action) {
    case A_RECORD:
        break;
    case A_AGAIN:
        if (t->fires < t->again) {
            t->deadline = 0;
            engine_timer_arm(F.w, &t->t, 0);
        }
        break;
    case A_FOREVER:
        if (!T.stop_forever)
            engine_timer_arm(F.w, &t->t, 0);
        break;
    case A_DISARM:
        engine_timer_disarm(F.w, &t->other->t);
        break;
    case A_FREE_SELF:
        free(t);
        break;
    }
}

static void arm(struct engine_worker *w, struct ttimer *t, uint64_t deadline)
{
    t->deadline = deadline;
    engine_timer_arm(w, &t->t, deadline);
}

/* Timers 0..n-1 in T.timers, ids = their index, fire = t_fire. */
static void make_timers(unsigned n)
{
    T.timers = calloc(n, sizeof *T.timers);
    assert_non_null(T.timers);
    for (unsigned i = 0; i < n; i++) {
        T.timers[i].id = i;
        T.timers[i].t.fire = t_fire;
    }
}

/* --- the engine: no listener; scenarios arrive as messages --- */

/* The loop has ended: every timer is disarmed, and arming does nothing. */
static void t_worker_fini(struct engine_worker *w, void *ctx)
{
    (void)ctx;
    if (T.timers) {
        T.armed_at_fini = engine_timer_armed(&T.timers[0].t);
        engine_timer_arm(w, &T.timers[0].t, 0);
        T.armed_after_rearm = engine_timer_armed(&T.timers[0].t);
    }
    note(&T.finis);
}

/* A timer that fires while a scenario runs is counted (test_not_inside_calls). */
static void t_on_message(struct engine_worker *w, void *ctx, uint32_t msg)
{
    pthread_mutex_lock(&F.lock);
    T.in_scenario = true;
    pthread_mutex_unlock(&F.lock);
    engine_fixture_on_message(w, ctx, msg);
    pthread_mutex_lock(&F.lock);
    T.in_scenario = false;
    pthread_mutex_unlock(&F.lock);
}

static const struct engine_callbacks callbacks = {
    .worker_init = engine_fixture_worker_init,
    .worker_fini = t_worker_fini,
    .on_accept = engine_fixture_no_accept,
    .on_recv = engine_fixture_no_recv,
    .on_closed = engine_fixture_no_closed,
    .on_message = t_on_message,
};

static void start(unsigned log_cap)
{
    memset(&T.finis, 0, sizeof T - offsetof(struct tstate, finis));
    T.log = calloc(log_cap, sizeof *T.log);
    T.log_cap = log_cap;
    assert_non_null(T.log);
    struct engine_settings s = {.workers = 1};
    engine_fixture_start(&s, &callbacks, NULL, 0);
}

static int setup(void **state)
{
    (void)state;
    rng_state = 0x2545F4914F6CDD1Du;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (F.e)
        engine_fixture_stop();
    free(T.timers);
    T.timers = NULL;
    free(T.log);
    T.log = NULL;
    return 0;
}

/* Each logged firing came at or after its deadline, in deadline order. */
static void assert_log_ordered(void)
{
    for (unsigned i = 0; i < T.nlog; i++) {
        if (T.log[i].at < T.log[i].deadline)
            fail_msg("timer %u fired at %llu, before its deadline %llu", T.log[i].id,
                     (unsigned long long)T.log[i].at, (unsigned long long)T.log[i].deadline);
        if (i && T.log[i].deadline < T.log[i - 1].deadline)
            fail_msg("timer %u (deadline %llu) fired after timer %u (deadline %llu)", T.log[i].id,
                     (unsigned long long)T.log[i].deadline, T.log[i - 1].id,
                     (unsigned long long)T.log[i - 1].deadline);
    }
}

/* At the end of a scenario, on the worker's thread: which of the first n timers must fire. */
static void note_expected(unsigned n)
{
    pthread_mutex_lock(&F.lock);
    for (unsigned i = 0; i < n; i++) {
        T.timers[i].expected = engine_timer_armed(&T.timers[i].t);
        T.expected += T.timers[i].expected;
    }
    pthread_mutex_unlock(&F.lock);
}

/* --- tests --- */

static void sc_order(struct engine_worker *w)
{
    uint64_t base = engine_now_ms(w) + 50;
    /* 0..31, each twice, shuffled by the multiplication: equal deadlines too. */
    for (unsigned i = 0; i < 64; i++)
        arm(w, &T.timers[i], base + (i * 37 % 32) * 3);
}

static void test_order(void **state)
{
    (void)state;
    make_timers(64);
    start(64);
    run(sc_order);
    WAIT_FOR(T.nlog == 64);
    assert_log_ordered();
    for (unsigned i = 0; i < 64; i++) {
        assert_int_equal(T.timers[i].fires, 1);
        assert_false(T.timers[i].armed_in_fire);
    }
    engine_fixture_stop();
}

static void sc_rearm(struct engine_worker *w)
{
    uint64_t now = engine_now_ms(w);
    arm(w, &T.timers[0], now + 3000);
    arm(w, &T.timers[0], now + 20); /* earlier */
    arm(w, &T.timers[1], now + 100);
    arm(w, &T.timers[2], now + 20);
    arm(w, &T.timers[2], now + 200); /* later */
}

/* Re-arming moves a timer, earlier or later, and it fires once. */
static void test_rearm_moves(void **state)
{
    (void)state;
    make_timers(3);
    start(8);
    run(sc_rearm);
    WAIT_FOR(T.nlog == 3);
    sleep_ms(50);
    assert_int_equal(T.nlog, 3);
    assert_int_equal(T.log[0].id, 0);
    assert_int_equal(T.log[1].id, 1);
    assert_int_equal(T.log[2].id, 2);
    assert_log_ordered();
    engine_fixture_stop();
}

static void sc_disarm(struct engine_worker *w)
{
    uint64_t now = engine_now_ms(w);
    engine_timer_disarm(w, &T.timers[2].t); /* zeroed, never armed: nothing happens */
    arm(w, &T.timers[0], now + 30);
    T.timers[0].armed_in_fire = engine_timer_armed(&T.timers[0].t);
    engine_timer_disarm(w, &T.timers[0].t);
    engine_timer_disarm(w, &T.timers[0].t); /* twice: nothing happens */
    arm(w, &T.timers[1], now + 80);
}

static void test_disarm(void **state)
{
    (void)state;
    make_timers(3);
    start(8);
    run(sc_disarm);
    assert_true(T.timers[0].armed_in_fire); /* armed after engine_timer_arm */
    assert_false(engine_timer_armed(&T.timers[0].t));
    WAIT_FOR(T.nlog == 1);
    assert_int_equal(T.log[0].id, 1);
    assert_int_equal(T.timers[0].fires, 0);
    assert_int_equal(T.timers[2].fires, 0);
    engine_fixture_stop();
}

static struct ttimer *freed_by_fire, *self_freeing;

static void sc_side_effects(struct engine_worker *w)
{
    uint64_t now = engine_now_ms(w);
    struct ttimer *t = T.timers;
    t[0].action = A_DISARM; /* disarms 1, due in the same turn */
    t[0].other = &t[1];
    t[2].action = A_DISARM; /* disarms the heap-allocated one, which the test then frees */
    t[2].other = freed_by_fire;
    t[3].action = A_AGAIN;
    t[3].again = 5;
    arm(w, &t[0], now + 30);
    arm(w, &t[1], now + 31);
    arm(w, &t[2], now + 30);
    arm(w, freed_by_fire, now + 32);
    arm(w, &t[3], now + 20);
    arm(w, self_freeing, now + 25);
    arm(w, &t[4], now + 150);
}

/* fire() may disarm a timer due in the same turn, re-arm its own at a past deadline (it
 * fires again on a later turn, never in a loop), or free its own object. */
static void test_fire_side_effects(void **state)
{
    (void)state;
    make_timers(5);
    freed_by_fire = calloc(1, sizeof *freed_by_fire);
    self_freeing = calloc(1, sizeof *self_freeing);
    assert_non_null(freed_by_fire);
    assert_non_null(self_freeing);
    *freed_by_fire = (struct ttimer){.id = 100, .t.fire = t_fire};
    *self_freeing = (struct ttimer){.id = 101, .t.fire = t_fire, .action = A_FREE_SELF};
    start(16);
    run(sc_side_effects);
    WAIT_FOR(T.timers[4].fires == 1);
    assert_int_equal(T.timers[0].fires, 1);
    assert_int_equal(T.timers[1].fires, 0);
    assert_int_equal(T.timers[2].fires, 1);
    assert_int_equal(T.timers[3].fires, 5);
    assert_int_equal(freed_by_fire->fires, 0);
    free(freed_by_fire);
    unsigned self_fired = 0;
    for (unsigned i = 0; i < T.nlog; i++)
        self_fired += T.log[i].id == 101;
    assert_int_equal(self_fired, 1);
    engine_fixture_stop();
}

static void sc_past(struct engine_worker *w)
{
    arm(w, &T.timers[0], 0);
    arm(w, &T.timers[1], engine_now_ms(w) - 1);
}

/* A deadline already past fires from the loop, after the scenario (an engine call's
 * caller) has returned, never from inside engine_timer_arm. */
static void test_not_inside_calls(void **state)
{
    (void)state;
    make_timers(2);
    start(4);
    run(sc_past);
    WAIT_FOR(T.nlog == 2);
    assert_int_equal(T.fired_in_scenario, 0);
    engine_fixture_stop();
}

static void sc_forever(struct engine_worker *w)
{
    T.timers[0].action = A_FOREVER;
    arm(w, &T.timers[0], 0);
}

static void sc_stop_forever(struct engine_worker *w)
{
    (void)w;
    T.stop_forever = true;
}

/* A timer that fire() keeps re-arming in the past fires once per loop turn: the loop
 * still gets to its completions (here the message that stops it). */
static void test_rearm_past_no_starvation(void **state)
{
    (void)state;
    make_timers(1);
    start(8);
    run(sc_forever);
    WAIT_FOR(T.nlog >= 3);
    run(sc_stop_forever);
    engine_fixture_stop();
    assert_true(T.timers[0].fires >= 3);
}

static void sc_many(struct engine_worker *w)
{
    uint64_t base = engine_now_ms(w) + 100;
    for (unsigned i = 0; i < MANY; i++)
        arm(w, &T.timers[i], base + rng() % 500);
    for (unsigned i = 0; i < MANY; i++) {
        unsigned op = rng() % 3;
        if (op == 0)
            engine_timer_disarm(w, &T.timers[i].t);
        else if (op == 1)
            arm(w, &T.timers[rng() % MANY], base + rng() % 500);
    }
    note_expected(MANY);
}

/* MANY timers armed, a third disarmed, others moved: the rest all fire once, in order. */
static void test_many(void **state)
{
    (void)state;
    make_timers(MANY);
    start(MANY);
    run(sc_many);
    unsigned want = T.expected;
    assert_true(want > MANY / 2);
    WAIT_FOR(T.nlog == want);
    sleep_ms(50);
    assert_int_equal(T.nlog, want);
    assert_log_ordered();
    for (unsigned i = 0; i < MANY; i++)
        if (T.timers[i].fires != (T.timers[i].expected ? 1u : 0u))
            fail_msg("timer %u fired %u times", i, T.timers[i].fires);
    printf("%u timers armed, %u fired in deadline order; %zu bytes per timer\n", MANY, want,
           sizeof(struct engine_timer));
    engine_fixture_stop();
}

/* Random arming, moving and disarming with deadlines all in the past (small absolute
 * values): nothing fires meanwhile, then everything still armed fires on the next turn,
 * so the fire log is the heap's whole content, popped in order. */
static uint64_t stress_ns;

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sc_stress(struct engine_worker *w)
{
    uint64_t t0 = clock_ns();
    for (unsigned i = 0; i < 30 * STRESS; i++) {
        struct ttimer *t = &T.timers[rng() % STRESS];
        if (rng() % 4 == 0)
            engine_timer_disarm(w, &t->t);
        else
            arm(w, t, 1 + rng() % 5000);
    }
    stress_ns = clock_ns() - t0;
    note_expected(STRESS);
}

static void test_heap_stress(void **state)
{
    (void)state;
    make_timers(STRESS);
    start(STRESS);
    run(sc_stress);
    WAIT_FOR(T.nlog == T.expected);
    assert_log_ordered();
    for (unsigned i = 0; i < STRESS; i++)
        if (T.timers[i].fires != (T.timers[i].expected ? 1u : 0u))
            fail_msg("timer %u fired %u times", i, T.timers[i].fires);
    printf("%u random arms, moves and disarms among %u timers: %.0f ns each\n", 30 * STRESS, STRESS,
           (double)stress_ns / (30 * STRESS));
    engine_fixture_stop();
}

static void sc_far(struct engine_worker *w)
{
    arm(w, &T.timers[0], engine_now_ms(w) + 60000);
    arm(w, &T.timers[1], engine_now_ms(w) + 60000);
}

/* A worker that exits with timers armed: none fires, all are disarmed before worker_fini,
 * and arming from worker_fini does nothing. */
static void test_exit(void **state)
{
    (void)state;
    make_timers(2);
    start(4);
    run(sc_far);
    engine_fixture_stop();
    assert_int_equal(T.finis, 1);
    assert_int_equal(T.nlog, 0);
    assert_false(T.armed_at_fini);
    assert_false(T.armed_after_rearm);
    assert_false(engine_timer_armed(&T.timers[1].t));
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    if (!engine_fixture_usable())
        return 77;
    const struct CMUnitTest tests[] = {
        TEST(test_order),
        TEST(test_rearm_moves),
        TEST(test_disarm),
        TEST(test_fire_side_effects),
        TEST(test_not_inside_calls),
        TEST(test_rearm_past_no_starvation),
        TEST(test_many),
        TEST(test_heap_stress),
        TEST(test_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
