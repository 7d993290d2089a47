/* AuthInfo: entries (compat/map_authinfo.h): the fields and their base64 form, errors with
 * file and line (never the password), and sendmail's lookup order for the authinfo map
 * (name, address, default) and for the access map (parents and prefixes too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "compat/map_authinfo.h"

static const char authinfo_text[] =
    "# credentials\n"
    "AuthInfo:smtp.gmail.com \"U:me@gmail.com\" \"P:app password\" \"M:PLAIN LOGIN\"\n"
    "AuthInfo:[192.0.2.7] \"U:admin\" \"I:alice\" \"P=czNjcmV0\" \"R:realm.test\"\n"
    "authinfo:IPv6:2001:db8::1 U:six P:v6\n"
    "AuthInfo: \"I:default\" \"P:d\"\n";

static void test_parse_and_lookup(void **state)
{
    (void)state;
    struct authinfo_map m = {0};
    char err[256];
    assert_int_equal(
        authinfo_parse("f", authinfo_text, strlen(authinfo_text), &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 4);
    const struct smtp_client_auth *a = authinfo_lookup(&m, "SMTP.gmail.com", "198.51.100.1");
    assert_non_null(a);
    assert_string_equal(a->user, "me@gmail.com");
    assert_null(a->authid);
    assert_string_equal(a->password, "app password");
    assert_string_equal(a->mechs, "PLAIN LOGIN");
    a = authinfo_lookup(&m, "mx.example", "192.0.2.7"); /* by address; P= is base64 */
    assert_string_equal(a->user, "admin");
    assert_string_equal(a->authid, "alice");
    assert_string_equal(a->password, "s3cret");
    assert_string_equal(authinfo_lookup(&m, NULL, "2001:db8::1")->user, "six");
    /* the authinfo map has no parent domains or prefixes: the default */
    assert_string_equal(authinfo_lookup(&m, "x.smtp.gmail.com", "192.0.2")->authid, "default");
    assert_string_equal(authinfo_lookup(&m, "gmail.com", "192.0.2.70")->authid, "default");
    authinfo_free(&m);

    /* without a default: NULL */
    const char one[] = "AuthInfo:a.test U:u P:p\n";
    assert_int_equal(authinfo_parse("f", one, strlen(one), &m, err, sizeof(err)), 0);
    assert_null(authinfo_lookup(&m, "b.test", "192.0.2.1"));
    authinfo_free(&m);
}

static void test_access_map(void **state)
{
    (void)state;
    static const char text[] = "Connect:10.1 RELAY\n"
                               "AuthInfo:example.com \"U:parent\" \"P:p\"\n"
                               "AuthInfo:192.0.2 \"U:prefix\" \"P:p\"\n"
                               "AuthInfo: \"U:default\" \"P:p\"\n";
    struct access_map am = {0};
    struct authinfo_map m = {0};
    char err[256];
    assert_int_equal(access_parse("access", text, strlen(text), &am, err, sizeof(err)), 0);
    assert_int_equal(authinfo_from_access("access", &am, &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 3);
    assert_string_equal(authinfo_lookup(&m, "mx.example.com", "192.0.2.9")->user, "parent");
    assert_string_equal(authinfo_lookup(&m, "mx.other.test", "192.0.2.9")->user, "prefix");
    assert_string_equal(authinfo_lookup(&m, "mx.other.test", "192.0.20.9")->user, "default");
    authinfo_free(&m);
    access_free(&am);

    static const char bad[] = "AuthInfo:x.test \"U:u\"\n";
    assert_int_equal(access_parse("access", bad, strlen(bad), &am, err, sizeof(err)), 0);
    assert_int_equal(authinfo_from_access("access", &am, &m, err, sizeof(err)), -1);
    assert_string_equal(err, "access:1: AuthInfo:x.test: no password (P:)");
    authinfo_free(&m);
    access_free(&am);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"AuthInfo:a U:u\n", "f:1: AuthInfo:a: no password (P:)"},
        {"AuthInfo:a P:secret\n", "f:1: AuthInfo:a: no user (U: or I:)"},
        {"\nAuthInfo:a \"U:u\" \"P:secret\" \"X:y\"\n",
         "f:2: AuthInfo:a: unknown field (U:, I:, P:, M: and R: are known)"},
        {"AuthInfo:a \"U:u\" \"P:secret\" \"U:v\"\n", "f:1: AuthInfo:a: a field is given twice"},
        {"AuthInfo:a \"U:u\" \"P=!!secret\"\n",
         "f:1: AuthInfo:a: a value after '=' must be base64"},
        {"AuthInfo:a \"U:u\" \"P:secret\n", "f:1: AuthInfo:a: a quoted value has no closing '\"'"},
        {"AuthInfo:a U:u P:secret M:GSSAPI\n",
         "f:1: AuthInfo:a: M: names none of the mechanisms ringmail speaks (PLAIN, LOGIN, "
         "CRAM-MD5)"},
        {"a.test U:u P:secret\n", "f:1: 'a.test': an authinfo key is AuthInfo:host, "
                                  "AuthInfo:address or AuthInfo: (the default)"},
        {"AuthInfo:a U:u P=AHNlY3JldA==\n",
         "f:1: AuthInfo:a: a value holds a NUL, CR or LF, or is too long"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct authinfo_map m = {0};
        char err[256];
        assert_int_equal(
            authinfo_parse("f", cases[i].text, strlen(cases[i].text), &m, err, sizeof(err)), -1);
        assert_string_equal(err, cases[i].err);
        assert_null(strstr(err, "secret"));
        authinfo_free(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_lookup),
        cmocka_unit_test(test_access_map),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
