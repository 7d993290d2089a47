/* The lookups of the sendmail maps, in sendmail's order: access (subdomains, IP prefixes,
 * tagged before bare, user@), mailertable (.parent, '.'), virtusertable (+detail, @domain
 * with %1/%2/%3), genericstable, aliases (case), relay-domains (subdomains). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "compat/map_access.h"
#include "compat/map_aliases.h"
#include "compat/map_list.h"
#include "compat/map_simple.h"

static const char access_text[] = "Connect:example.com REJECT\n"
                                  "example.com OK\n"
                                  "Connect:10.1 RELAY\n"
                                  "Connect:IPv6:2001:db8 RELAY\n"
                                  "To:postmaster@ OK\n"
                                  "To:bad.example ERROR:5.7.1:550 no\n"
                                  "GreetPause:example.com 0\n";

static void test_access(void **state)
{
    (void)state;
    struct access_map m = {0};
    char err[256];
    assert_int_equal(access_parse("a", access_text, strlen(access_text), &m, err, sizeof(err)), 0);
    const struct access_entry *e = access_lookup_host(&m, "connect", "mx.EXAMPLE.com");
    assert_non_null(e);
    assert_int_equal(e->action, ACCESS_REJECT); /* tagged before bare */
    e = access_lookup_host(&m, "from", "a.example.com");
    assert_int_equal(e->action, ACCESS_OK); /* bare serves From */
    assert_null(access_lookup_host(&m, "greetpause", "other.example"));
    assert_null(access_lookup_host(&m, "clientrate", "example.com")); /* no bare for tags */
    assert_int_equal(access_lookup_ip(&m, "connect", "10.1.2.3")->action, ACCESS_RELAY);
    assert_null(access_lookup_ip(&m, "connect", "10.10.2.3"));
    assert_int_equal(access_lookup_ip(&m, "connect", "2001:db8::1")->action, ACCESS_RELAY);
    assert_null(access_lookup_ip(&m, "connect", "2001:db9::1"));
    assert_int_equal(access_lookup_address(&m, "to", "postmaster@x.example")->action, ACCESS_OK);
    e = access_lookup_address(&m, "to", "joe@mail.bad.example");
    assert_int_equal(e->action, ACCESS_ERROR);
    assert_string_equal(e->code, "550");
    assert_string_equal(e->dsn, "5.7.1");
    access_free(&m);
}

static void test_simple(void **state)
{
    (void)state;
    static const char mt[] = ".example.com esmtp:relay\nexample.com smtp:[mx]\n. esmtp:[hub]\n";
    static const char vt[] = "info@example.com alice\nuser+*@example.com %1-%2\n"
                             "@example.com %1%3@catch.example\n";
    static const char gt[] = "alice alice.smith@example.com\n";
    struct map_simple m = {0}, v = {0}, g = {0};
    char err[256], out[128];
    assert_int_equal(map_simple_parse(MAP_MAILERTABLE, "m", mt, strlen(mt), &m, err, 256), 0);
    assert_string_equal(mailertable_lookup(&m, "example.com")->value, "smtp:[mx]");
    assert_string_equal(mailertable_lookup(&m, "a.b.example.com")->value, "esmtp:relay");
    assert_string_equal(mailertable_lookup(&m, "other.org")->value, "esmtp:[hub]");
    assert_int_equal(map_simple_parse(MAP_VIRTUSERTABLE, "v", vt, strlen(vt), &v, err, 256), 0);
    assert_int_equal(virtuser_lookup(&v, "info@example.com", out, sizeof(out)), 1);
    assert_string_equal(out, "alice");
    assert_int_equal(virtuser_lookup(&v, "user+news@example.com", out, sizeof(out)), 1);
    assert_string_equal(out, "user-news");
    assert_int_equal(virtuser_lookup(&v, "bob+x@example.com", out, sizeof(out)), 1);
    assert_string_equal(out, "bob+x@catch.example");
    assert_int_equal(virtuser_lookup(&v, "bob@other.org", out, sizeof(out)), 0);
    assert_int_equal(map_simple_parse(MAP_GENERICSTABLE, "g", gt, strlen(gt), &g, err, 256), 0);
    assert_string_equal(generics_lookup(&g, "alice@host.example.com")->value,
                        "alice.smith@example.com");
    map_simple_free(&m);
    map_simple_free(&v);
    map_simple_free(&g);
}

static void test_aliases_and_lists(void **state)
{
    (void)state;
    static const char al[] = "Root: admin\n";
    static const char rd[] = "example.org # partner\n";
    struct alias_map a = {0};
    struct map_strings l = {0};
    char err[256];
    assert_int_equal(aliases_parse("a", al, strlen(al), &a, err, sizeof(err)), 0);
    assert_non_null(aliases_lookup(&a, "ROOT"));
    assert_int_equal(map_list_parse("r", rd, strlen(rd), &l, err, sizeof(err)), 0);
    assert_true(map_list_match_domain(&l, "a.b.example.org"));
    assert_false(map_list_match_domain(&l, "badexample.org"));
    assert_false(map_list_contains(&l, "a.example.org"));
    aliases_free(&a);
    map_strings_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access),
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_aliases_and_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
