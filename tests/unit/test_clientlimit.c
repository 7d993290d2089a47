/* FEATURE(ratecontrol) and FEATURE(conncontrol): ClientRate:/ClientConn: entries looked up
 * by address, prefix and the tag's default (policy/clientlimit.h), and the per-client
 * connection rate over a sliding window (policy/clientrate.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "policy/clientlimit.h"
#include "policy/clientrate.h"

static void load(const char *text, struct access_map *m)
{
    char err[256] = "";
    if (access_parse("access", text, strlen(text), m, err, sizeof(err)) != 0)
        fail_msg("%s", err);
}

static void test_lookup_order(void **state)
{
    (void)state;
    struct access_map m = {0};
    load("ClientRate:192.0.2.7\t2\n"
         "ClientRate:192.0.2\t5\n"
         "ClientRate:\t10\n"
         "ClientConn:IPv6:2001:db8\t3\n"
         "ClientConn:198.51.100.9\t0\n"
         "ClientRate:203.0.113.1\tplenty\n"
         "Connect:192.0.2.7\tOK\n",
         &m);
    const struct clientlimit dflt = {.rate = 100, .conns = 50};
    struct clientlimit l;
    clientlimit_lookup(&m, "192.0.2.7", &dflt, &l);
    assert_int_equal(l.rate, 2);
    assert_int_equal(l.conns, 50); /* no ClientConn: default entry: the configured one */
    clientlimit_lookup(&m, "192.0.2.8", &dflt, &l);
    assert_int_equal(l.rate, 5);
    clientlimit_lookup(&m, "10.0.0.1", &dflt, &l);
    assert_int_equal(l.rate, 10); /* "ClientRate:" alone: the tag's default */
    clientlimit_lookup(&m, "2001:db8::1", &dflt, &l);
    assert_int_equal(l.conns, 3);
    clientlimit_lookup(&m, "198.51.100.9", &dflt, &l);
    assert_int_equal(l.conns, 0); /* 0: no limit for this client */
    clientlimit_lookup(&m, "203.0.113.1", &dflt, &l);
    assert_int_equal(l.rate, 100); /* not a number: ignored */
    access_free(&m);

    /* Connect:, From:, To: and bare keys still need a key. */
    char err[256];
    struct access_map bad = {0};
    assert_int_not_equal(access_parse("access", "Connect:\tREJECT\n", 16, &bad, err, sizeof(err)),
                         0);
    access_free(&bad);
}

static void test_value(void **state)
{
    (void)state;
    unsigned v = 99;
    assert_true(clientlimit_value("0", &v));
    assert_int_equal(v, 0);
    assert_true(clientlimit_value("1000", &v));
    assert_int_equal(v, 1000);
    assert_false(clientlimit_value("", &v));
    assert_false(clientlimit_value("-1", &v));
    assert_false(clientlimit_value("10 ", &v));
    assert_false(clientlimit_value("9999999999", &v));
}

static void test_mode(void **state)
{
    (void)state;
    struct clientlimit_mode m;
    const char *const absent[] = {"false"}, *const on[] = {"true"},
                      *const both[] = {"nodelay", "terminate"}, *const term[] = {"", "terminate"},
                      *const bad[] = {"nodelay", "close"};
    assert_true(clientlimit_mode_parse(NULL, 0, &m)); /* absent: as nodelay, terminate */
    assert_true(m.nodelay && m.terminate);
    assert_true(clientlimit_mode_parse(absent, 1, &m));
    assert_true(m.nodelay && m.terminate);
    assert_true(clientlimit_mode_parse(on, 1, &m));
    assert_true(!m.nodelay && !m.terminate);
    assert_true(clientlimit_mode_parse(both, 2, &m));
    assert_true(m.nodelay && m.terminate);
    assert_true(clientlimit_mode_parse(term, 2, &m)); /* FEATURE(`ratecontrol', `', `terminate') */
    assert_true(!m.nodelay && m.terminate);
    assert_false(clientlimit_mode_parse(bad, 2, &m));
}

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &sin.sin_addr);
    return sin;
}

static void test_rate_window(void **state)
{
    (void)state;
    struct clientrate *r = clientrate_new();
    assert_non_null(r);
    struct sockaddr_in a = v4("192.0.2.7"), b = v4("192.0.2.8");
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &mapped.sin6_addr);
    const uint64_t w = 80000; /* bins of 10 s */
    uint64_t t = 1000000;
    assert_int_equal(clientrate_hit(r, (struct sockaddr *)&a, t, w), 1);
    assert_int_equal(clientrate_hit(r, (struct sockaddr *)&a, t + 5000, w), 2);
    assert_int_equal(clientrate_hit(r, (struct sockaddr *)&mapped, t + 6000, w), 3);
    assert_int_equal(clientrate_hit(r, (struct sockaddr *)&b, t + 6000, w), 1);
    /* 75 s later the first three are still within 80 s; at 95 s they have left. */
    assert_int_equal(clientrate_hit(r, (struct sockaddr *)&a, t + 75000, w), 4);
    assert_int_equal(clientrate_hit(r, (struct sockaddr *)&a, t + 95000, w), 2);
    /* Long gone: starts again from one. */
    assert_int_equal(clientrate_hit(r, (struct sockaddr *)&a, t + 10 * w, w), 1);
    /* Sweeping a whole table's worth frees stale clients without touching live ones. */
    for (unsigned i = 0; i < 5000; i++) {
        struct sockaddr_in c = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        clientrate_hit(r, (struct sockaddr *)&c, t + 20 * w, w);
    }
    assert_int_equal(clientrate_hit(r, (struct sockaddr *)&b, t + 20 * w, w), 1);
    clientrate_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_order),
        cmocka_unit_test(test_mode),
        cmocka_unit_test(test_value),
        cmocka_unit_test(test_rate_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
