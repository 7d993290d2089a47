/* Network prefixes: parsing (CIDR, bracketed IPv6, sendmail's partial IPv4), matching
 * (including IPv4-mapped IPv6 both ways), formatting, ports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "util/netaddr.h"

static struct netaddr_prefix parse_ok(const char *text)
{
    struct netaddr_prefix p;
    const char *why = NULL;
    if (netaddr_prefix_parse(text, &p, &why) != 0)
        fail_msg("%s: refused (%s)", text, why);
    return p;
}

static void check_format(const char *text, const char *expect)
{
    struct netaddr_prefix p = parse_ok(text);
    char out[64];
    netaddr_prefix_format(&p, out, sizeof(out));
    if (strcmp(out, expect) != 0)
        fail_msg("%s: formatted as %s, expected %s", text, out, expect);
}

static void check_bad(const char *text, const char *why_expected)
{
    struct netaddr_prefix p;
    const char *why = NULL;
    if (netaddr_prefix_parse(text, &p, &why) == 0)
        fail_msg("%s: accepted", text);
    assert_non_null(why);
    if (why_expected != NULL && strcmp(why, why_expected) != 0)
        fail_msg("%s: reason \"%s\", expected \"%s\"", text, why, why_expected);
}

static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(2525);
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(25);
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

static bool matches(const char *prefix, const char *ip)
{
    struct netaddr_prefix p = parse_ok(prefix);
    struct sockaddr_storage ss = sa_of(ip);
    return netaddr_prefix_match(&p, (const struct sockaddr *)&ss);
}

static void test_parse_forms(void **state)
{
    (void)state;
    struct netaddr_prefix p = parse_ok("127.0.0.1");
    assert_int_equal(p.family, AF_INET);
    assert_int_equal(p.bits, 32);
    assert_memory_equal(p.addr, "\x7f\x00\x00\x01", 4);

    p = parse_ok("::1");
    assert_int_equal(p.family, AF_INET6);
    assert_int_equal(p.bits, 128);

    check_format("127.0.0.0/8", "127.0.0.0/8");
    check_format("2001:db8::/32", "2001:db8::/32");
    check_format("[::1]/128", "::1/128");
    check_format("[::1]", "::1/128");
    check_format("0.0.0.0/0", "0.0.0.0/0");
    check_format("::/0", "::/0");
    check_format("192.0.2.128/25", "192.0.2.128/25");
}

/* sendmail's relay-domains and access map name networks by their leading octets. */
static void test_parse_partial_ipv4(void **state)
{
    (void)state;
    check_format("10", "10.0.0.0/8");
    check_format("10.1", "10.1.0.0/16");
    check_format("192.168.1", "192.168.1.0/24");
    check_format("10.1/16", "10.1.0.0/16");
    check_bad("10.1/8", "host bits set beyond the prefix length");
    check_bad("10.256", "not an IPv4 address");
    check_bad("10..1", "not an IPv4 address");
    check_bad("10.", "not an IPv4 address");
    check_bad("010.1", "not an IPv4 address");
    check_bad("1000", "not an IPv4 address");
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct netaddr_prefix p;
    assert_int_equal(netaddr_prefix_parse(NULL, &p, NULL), -1);
    check_bad("", "empty address");
    check_bad("127.0.0.1/33", "bad prefix length (0 to 32)");
    check_bad("::1/129", "bad prefix length (0 to 128)");
    check_bad("127.0.0.1/", "bad prefix length (0 to 32)");
    check_bad("127.0.0.1/-1", NULL);
    check_bad("127.0.0.1/08", NULL);
    check_bad("127.0.0.1/8x", NULL);
    check_bad("10.0.0.1/8", "host bits set beyond the prefix length");
    check_bad("2001:db8::1/32", "host bits set beyond the prefix length");
    check_bad("192.0.2.129/25", "host bits set beyond the prefix length");
    check_bad("1.2.3.4.5", NULL);
    check_bad("1:2:3", "not an IPv6 address");
    check_bad("[::1", "unbalanced '[' in address");
    check_bad("[]", NULL);
    check_bad("example.com", NULL);
    check_bad("/8", NULL);
    check_bad("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee", NULL);
}

static void test_match_ipv4(void **state)
{
    (void)state;
    assert_true(matches("127.0.0.0/8", "127.1.2.3"));
    assert_false(matches("127.0.0.0/8", "128.0.0.1"));
    assert_true(matches("192.0.2.128/25", "192.0.2.200"));
    assert_false(matches("192.0.2.128/25", "192.0.2.127"));
    assert_true(matches("10.1", "10.1.255.255"));
    assert_false(matches("10.1", "10.2.0.0"));
    assert_true(matches("0.0.0.0/0", "203.0.113.9"));
    assert_false(matches("0.0.0.0/0", "::1"));
    assert_true(matches("192.0.2.1", "192.0.2.1"));
    assert_false(matches("192.0.2.1", "192.0.2.2"));
}

static void test_match_ipv6(void **state)
{
    (void)state;
    assert_true(matches("2001:db8::/32", "2001:db8:1::5"));
    assert_false(matches("2001:db8::/32", "2001:db9::5"));
    assert_true(matches("::1", "::1"));
    assert_false(matches("::1", "::2"));
    assert_true(matches("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(matches("2001:db8::/33", "2001:db8:8000::1"));
    assert_false(matches("::/0", "127.0.0.1"));
}

/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; relay_from is written in
 * IPv4. Both directions must agree or the listener type decides who may relay. */
static void test_match_v4_mapped(void **state)
{
    (void)state;
    assert_true(matches("127.0.0.0/8", "::ffff:127.0.0.1"));
    assert_false(matches("127.0.0.0/8", "::ffff:128.0.0.1"));
    assert_true(matches("::ffff:10.0.0.0/104", "10.9.9.9"));
    assert_false(matches("::ffff:10.0.0.0/104", "11.9.9.9"));
    assert_true(matches("::ffff:10.0.0.0/104", "::ffff:10.1.1.1"));
    /* ::127.0.0.1 (IPv4-compatible, deprecated) is not mapped */
    assert_false(matches("127.0.0.0/8", "::127.0.0.1"));
}

static void test_match_other_families(void **state)
{
    (void)state;
    struct netaddr_prefix p = parse_ok("0.0.0.0/0");
    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    assert_false(netaddr_prefix_match(&p, (const struct sockaddr *)&un));
    assert_false(netaddr_prefix_match(&p, NULL));
}

static void test_format_sockaddr(void **state)
{
    (void)state;
    char out[INET6_ADDRSTRLEN];
    struct sockaddr_storage ss = sa_of("192.0.2.7");
    netaddr_format((const struct sockaddr *)&ss, out, sizeof(out));
    assert_string_equal(out, "192.0.2.7");
    assert_int_equal(netaddr_port((const struct sockaddr *)&ss), 25);

    ss = sa_of("2001:db8::7");
    netaddr_format((const struct sockaddr *)&ss, out, sizeof(out));
    assert_string_equal(out, "2001:db8::7");
    assert_int_equal(netaddr_port((const struct sockaddr *)&ss), 2525);

    ss = sa_of("::ffff:192.0.2.7");
    netaddr_format((const struct sockaddr *)&ss, out, sizeof(out));
    assert_string_equal(out, "192.0.2.7");

    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    netaddr_format((const struct sockaddr *)&un, out, sizeof(out));
    assert_string_equal(out, "unknown");
    assert_int_equal(netaddr_port((const struct sockaddr *)&un), 0);
    assert_int_equal(netaddr_port(NULL), 0);
}

/* A short buffer is truncated (or left marked unknown), never overrun. */
static void test_format_short_buffer(void **state)
{
    (void)state;
    char out[8];
    struct netaddr_prefix p = parse_ok("2001:db8::/32");
    memset(out, 'x', sizeof(out));
    netaddr_prefix_format(&p, out, 5);
    assert_int_equal(strlen(out), 4);
    assert_int_equal(out[5], 'x');
    netaddr_prefix_format(&p, out, 0);
    assert_int_equal(out[5], 'x');

    struct sockaddr_storage ss = sa_of("2001:db8::7");
    memset(out, 'x', sizeof(out));
    netaddr_format((const struct sockaddr *)&ss, out, 4);
    assert_non_null(memchr(out, '\0', 4));
    assert_int_equal(out[4], 'x');
}

static void test_is_ip(void **state)
{
    (void)state;
    assert_true(netaddr_is_ip("192.0.2.1"));
    assert_true(netaddr_is_ip("::1"));
    assert_true(netaddr_is_ip("::ffff:192.0.2.1"));
    assert_false(netaddr_is_ip("192.0.2"));
    assert_false(netaddr_is_ip("[::1]"));
    assert_false(netaddr_is_ip("::1/128"));
    assert_false(netaddr_is_ip("mx.example"));
    assert_false(netaddr_is_ip(""));
    assert_false(netaddr_is_ip(NULL));
}

/* metrics.listen's form: ADDRESS:PORT, [IPv6]:PORT. */
static void test_hostport(void **state)
{
    (void)state;
    char addr[48];
    uint16_t port;
    int family;
    const char *why = NULL;
    assert_int_equal(
        netaddr_hostport_parse("127.0.0.1:9465", addr, sizeof(addr), &port, &family, &why), 0);
    assert_string_equal(addr, "127.0.0.1");
    assert_int_equal(port, 9465);
    assert_int_equal(family, AF_INET);
    assert_int_equal(
        netaddr_hostport_parse("[::1]:65535", addr, sizeof(addr), &port, &family, &why), 0);
    assert_string_equal(addr, "::1");
    assert_int_equal(port, 65535);
    assert_int_equal(family, AF_INET6);
    static const char *const bad[] = {"127.0.0.1",       "127.0.0.1:",    "127.0.0.1:0",
                                      "127.0.0.1:65536", "127.0.0.1:9x",  "::1:9465",
                                      "[::1:9465",       "[127.0.0.1]:1", "localhost:9465",
                                      ":9465",           "[]:9465",       "127.0.0.1:+9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (netaddr_hostport_parse(bad[i], addr, sizeof(addr), &port, &family, &why) == 0)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(why);
    }
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(netaddr_is_loopback("127.0.0.1"));
    assert_true(netaddr_is_loopback("127.9.8.7"));
    assert_true(netaddr_is_loopback("::1"));
    assert_true(netaddr_is_loopback("::ffff:127.0.0.1"));
    assert_false(netaddr_is_loopback("0.0.0.0"));
    assert_false(netaddr_is_loopback("::"));
    assert_false(netaddr_is_loopback("192.0.2.1"));
    assert_false(netaddr_is_loopback("::2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_partial_ipv4),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_match_ipv4),
        cmocka_unit_test(test_match_ipv6),
        cmocka_unit_test(test_match_v4_mapped),
        cmocka_unit_test(test_match_other_families),
        cmocka_unit_test(test_format_sockaddr),
        cmocka_unit_test(test_format_short_buffer),
        cmocka_unit_test(test_is_ip),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
