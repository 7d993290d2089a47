/* smtp_helo: which HELO arguments are accepted, and the Received: from-clause token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "smtp/smtp_helo.h"

static bool valid(const char *arg)
{
    return smtp_helo_valid(arg, strlen(arg));
}

static void test_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "mx.example.com",
        "MX1.Example.COM.",
        "localhost",
        "[192.0.2.1]",
        "[IPv6:2001:db8::1]",
        "[IPv6:::ffff:192.0.2.1]",
        "host_name.example",
        "a#b",
        "x",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(valid(good[i]));
    /* sendmail's 501 5.0.0 Invalid domain name */
    static const char *const bad[] = {
        "",     "a b",    "a\tb",   "a (b) ) by evil; for <x>",
        "a(b)", "a;b",    "<a>",    "user@host",
        "a,b",  "a\"b",   "a\\b",   "a\rb",
        "a\nb", "a\001b", "a\177b", "j\xc3\xb6rg.example",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(valid(bad[i]));
    assert_false(smtp_helo_valid("a\0b", 3));
}

static void test_valid_length(void **state)
{
    (void)state;
    char name[SMTP_HELO_MAX + 2];
    memset(name, 'a', sizeof(name));
    assert_true(smtp_helo_valid(name, SMTP_HELO_MAX));
    assert_false(smtp_helo_valid(name, SMTP_HELO_MAX + 1));
}

static void check_received(const char *helo, const char *want)
{
    char out[SMTP_HELO_MAX + 10];
    memset(out, 'Z', sizeof(out));
    size_t n = smtp_helo_received(helo, out, sizeof(out));
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_received_valid_unchanged(void **state)
{
    (void)state;
    check_received("mx.example.com", "mx.example.com");
    check_received("[192.0.2.1]", "[192.0.2.1]");
    check_received("[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]");
    check_received("host_name#1", "host_name#1");
}

static void test_received_made_harmless(void **state)
{
    (void)state;
    /* no comment, clause or line can be opened from the HELO name */
    check_received("a (b) ) by evil; for <x>", "a??b????by?evil??for??x?");
    check_received("a\r\n\tby evil", "a???by?evil");
    check_received("j\xc3\xb6rg", "j??rg");
    check_received("a\"b\\c,d@e", "a?b?c?d?e");
    check_received("", "");
    check_received(NULL, "");
}

static void test_received_bounded(void **state)
{
    (void)state;
    char helo[600];
    memset(helo, 'a', sizeof(helo) - 1);
    helo[sizeof(helo) - 1] = '\0';
    char out[700];
    assert_int_equal(smtp_helo_received(helo, out, sizeof(out)), SMTP_HELO_MAX);
    assert_int_equal(strlen(out), SMTP_HELO_MAX);
    /* and never past the caller's buffer */
    char small[8];
    assert_int_equal(smtp_helo_received("mx.example.com", small, sizeof(small)), 7);
    assert_string_equal(small, "mx.exam");
    assert_int_equal(smtp_helo_received("mx", small, 1), 0);
    assert_string_equal(small, "");
    assert_int_equal(smtp_helo_received("mx", NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_valid_length),
        cmocka_unit_test(test_received_valid_unchanged),
        cmocka_unit_test(test_received_made_harmless),
        cmocka_unit_test(test_received_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
