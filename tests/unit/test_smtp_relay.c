/* The relay decision: local and relay domains for everyone, anything for relay_from
 * clients, and none of the classic relay tricks for anyone else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "smtp/smtp_relay.h"

static const char *const local_domains[] = {"mx.example", "localhost"};
static const char *const relay_domains[] = {"relay.example"};
static struct netaddr_prefix relay_from[2];
static struct smtp_relay_policy policy;

static int setup(void **state)
{
    (void)state;
    assert_int_equal(netaddr_prefix_parse("192.0.2.0/24", &relay_from[0], NULL), 0);
    assert_int_equal(netaddr_prefix_parse("2001:db8::/32", &relay_from[1], NULL), 0);
    policy = (struct smtp_relay_policy){local_domains, 2, relay_domains, 1, relay_from, 2};
    return 0;
}

static struct sockaddr_storage client(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

static const char *const outsiders[] = {"198.51.100.7", "::ffff:198.51.100.7", "2001:db9::1"};
static const char *const insiders[] = {"192.0.2.5", "::ffff:192.0.2.5", "2001:db8::1"};

/* The verdict for RCPT TO:<addr> from `ip` (the path must parse). */
static enum smtp_relay_verdict verdict(const struct smtp_relay_policy *p, const char *ip,
                                       const char *addr)
{
    struct smtp_path path;
    struct smtp_addr_error err;
    size_t used;
    if (smtp_path_parse(addr, strlen(addr), SMTP_PATH_ALLOW_POSTMASTER, &path, &used, &err) != 0)
        fail_msg("%s: refused %d %s %s", addr, err.code, err.enh, err.reason);
    if (ip == NULL)
        return smtp_relay_check(p, NULL, &path);
    struct sockaddr_storage ss = client(ip);
    return smtp_relay_check(p, (const struct sockaddr *)&ss, &path);
}

static void check_verdict(const char *const *ips, size_t n, const char *addr,
                          enum smtp_relay_verdict expect)
{
    for (size_t i = 0; i < n; i++) {
        enum smtp_relay_verdict v = verdict(&policy, ips[i], addr);
        if (v != expect)
            fail_msg("%s from %s: verdict %d, expected %d", addr, ips[i], v, expect);
    }
}

#define FOR_OUTSIDERS(addr, expect) check_verdict(outsiders, 3, addr, expect)
#define FOR_INSIDERS(addr, expect)  check_verdict(insiders, 3, addr, expect)

static void test_local_domains(void **state)
{
    (void)state;
    FOR_OUTSIDERS("<user@mx.example>", SMTP_RELAY_LOCAL);
    FOR_OUTSIDERS("<user@MX.Example>", SMTP_RELAY_LOCAL);
    FOR_OUTSIDERS("<user@mx.example.>", SMTP_RELAY_LOCAL);
    FOR_OUTSIDERS("<user@localhost>", SMTP_RELAY_LOCAL);
    FOR_OUTSIDERS("<\"john doe\"@mx.example>", SMTP_RELAY_LOCAL);
    FOR_OUTSIDERS("<Postmaster>", SMTP_RELAY_LOCAL);
    FOR_INSIDERS("<user@mx.example>", SMTP_RELAY_LOCAL);
    /* local_domains is exact: a subdomain of a local domain is somebody else */
    FOR_OUTSIDERS("<user@sub.mx.example>", SMTP_RELAY_DENIED);
    FOR_OUTSIDERS("<user@example>", SMTP_RELAY_DENIED);
}

static void test_relay_domains(void **state)
{
    (void)state;
    FOR_OUTSIDERS("<user@relay.example>", SMTP_RELAY_DOMAIN);
    FOR_OUTSIDERS("<user@sub.relay.example>", SMTP_RELAY_DOMAIN);
    FOR_OUTSIDERS("<user@a.b.RELAY.example>", SMTP_RELAY_DOMAIN);
    FOR_OUTSIDERS("<user@notrelay.example>", SMTP_RELAY_DENIED);
    FOR_OUTSIDERS("<user@relay.example.org>", SMTP_RELAY_DENIED);
    FOR_INSIDERS("<user@sub.relay.example>", SMTP_RELAY_DOMAIN);
}

static void test_remote(void **state)
{
    (void)state;
    FOR_OUTSIDERS("<user@remote.example>", SMTP_RELAY_DENIED);
    FOR_INSIDERS("<user@remote.example>", SMTP_RELAY_CLIENT);
    assert_int_equal(verdict(&policy, NULL, "<user@remote.example>"), SMTP_RELAY_DENIED);
    assert_int_equal(verdict(&policy, NULL, "<user@mx.example>"), SMTP_RELAY_LOCAL);
}

/* RFC 2505 2.8/2.9 and DESIGN.md: each names a local domain but routes elsewhere. */
static void test_relay_tricks(void **state)
{
    (void)state;
    static const char *const tricks[] = {
        "<user%host.example@mx.example>",
        "<@mx.example:user@host.example>",
        "<@mx.example,@localhost:user@host.example>",
        "<\"user@host.example\"@mx.example>",
        "<host.example!user@mx.example>",
        "<\"user%host.example\"@mx.example>",
        "<\"host.example!user\"@mx.example>",
        "<\"user\\@host.example\"@mx.example>",
        "<\"host.example:user\"@mx.example>",
        /* a route even to ourselves is still a route */
        "<@mx.example:user@mx.example>",
        "<user%host.example@relay.example>",
        "<user%host.example@sub.relay.example>",
        "<@relay.example:user@host.example>",
    };
    for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
        FOR_OUTSIDERS(tricks[i], SMTP_RELAY_DENIED);
        FOR_INSIDERS(tricks[i], SMTP_RELAY_CLIENT);
    }
}

/* user@host@local is not even a path, so it can never reach the relay check. */
static void test_double_at_does_not_parse(void **state)
{
    (void)state;
    const char *s = "<user@host.example@mx.example>";
    struct smtp_path path;
    struct smtp_addr_error err;
    size_t used;
    assert_int_equal(smtp_path_parse(s, strlen(s), SMTP_PATH_ALLOW_POSTMASTER, &path, &used, &err),
                     -1);
    assert_int_equal(err.code / 100, 5);
    assert_string_equal(path.domain, "");
}

/* An address literal names a host, not one of our domains, even when it is ours. */
static void test_address_literal(void **state)
{
    (void)state;
    static const char *const literal_local[] = {"[192.0.2.1]"};
    struct smtp_relay_policy p = policy;
    p.local_domains = literal_local;
    p.n_local_domains = 1;
    p.relay_domains = literal_local;
    p.n_relay_domains = 1;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(verdict(&p, outsiders[i], "<user@[192.0.2.1]>"), SMTP_RELAY_DENIED);
        assert_int_equal(verdict(&p, insiders[i], "<user@[192.0.2.1]>"), SMTP_RELAY_CLIENT);
    }
    FOR_OUTSIDERS("<user@[IPv6:2001:db8::1]>", SMTP_RELAY_DENIED);
}

static void test_empty_policy(void **state)
{
    (void)state;
    const struct smtp_relay_policy none = {NULL, 0, NULL, 0, NULL, 0};
    assert_int_equal(verdict(&none, "127.0.0.1", "<user@mx.example>"), SMTP_RELAY_DENIED);
    assert_int_equal(verdict(&none, "127.0.0.1", "<Postmaster>"), SMTP_RELAY_LOCAL);
    assert_false(smtp_relay_is_local_domain(&none, "mx.example"));
}

static void test_null_path_is_not_a_recipient(void **state)
{
    (void)state;
    struct smtp_path path;
    struct smtp_addr_error err;
    size_t used;
    struct sockaddr_storage ss = client("192.0.2.5");
    assert_int_equal(smtp_path_parse("<>", 2, SMTP_PATH_ALLOW_NULL, &path, &used, &err), 0);
    assert_int_equal(smtp_relay_check(&policy, (const struct sockaddr *)&ss, &path),
                     SMTP_RELAY_DENIED);
    assert_int_equal(smtp_relay_check(&policy, (const struct sockaddr *)&ss, NULL),
                     SMTP_RELAY_DENIED);
}

static void test_is_local_domain(void **state)
{
    (void)state;
    assert_true(smtp_relay_is_local_domain(&policy, "mx.example"));
    assert_true(smtp_relay_is_local_domain(&policy, "LOCALHOST."));
    assert_false(smtp_relay_is_local_domain(&policy, "sub.mx.example"));
    assert_false(smtp_relay_is_local_domain(&policy, "relay.example"));
    assert_false(smtp_relay_is_local_domain(&policy, ""));
    assert_false(smtp_relay_is_local_domain(&policy, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_domains),
        cmocka_unit_test(test_relay_domains),
        cmocka_unit_test(test_remote),
        cmocka_unit_test(test_relay_tricks),
        cmocka_unit_test(test_double_at_does_not_parse),
        cmocka_unit_test(test_address_literal),
        cmocka_unit_test(test_empty_policy),
        cmocka_unit_test(test_null_path_is_not_a_recipient),
        cmocka_unit_test(test_is_local_domain),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
