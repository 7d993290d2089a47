/* TLS policy per destination: the YAML table by next hop, the access map's TLS_Srv: (the
 * stricter wins) and Try_TLS: NO, in sendmail's lookup order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "delivery/tlspolicy.h"

struct access {
    const char *const *kv;
    char seen[16][80];
    size_t n_seen;
};

static const char *access_lookup(void *arg, const char *key)
{
    struct access *a = arg;
    if (a->n_seen < 16)
        strncpy(a->seen[a->n_seen++], key, 79);
    for (size_t i = 0; a->kv[i]; i += 2)
        if (strcmp(a->kv[i], key) == 0)
            return a->kv[i + 1];
    return NULL;
}

static const struct tlspolicy_entry table[] = {
    {"secure.example", TLSPOLICY_VERIFY, "mx.secure.example", 128},
    {".corp.example", TLSPOLICY_ENCRYPT, NULL, 0},
    {"plain.example", TLSPOLICY_NONE, NULL, 0},
    {"[smart.example]", TLSPOLICY_VERIFY, NULL, 0},
    {"[smart.example]:2525", TLSPOLICY_ENCRYPT, NULL, 0},
    {"[port25.example]:25", TLSPOLICY_ENCRYPT, NULL, 0},
};

static void test_names(void **state)
{
    (void)state;
    enum tlspolicy_level l;
    assert_int_equal(tlspolicy_level_parse("Verify", &l), 0);
    assert_int_equal(l, TLSPOLICY_VERIFY);
    assert_string_equal(tlspolicy_level_name(TLSPOLICY_MAY), "may");
    assert_string_equal(tlspolicy_level_name(TLSPOLICY_NONE), "none");
    assert_int_equal(tlspolicy_level_parse("dane", &l), -1);
}

static void test_table(void **state)
{
    (void)state;
    struct tlspolicy_settings s = {.entries = table, .n_entries = 6};
    struct tlspolicy p;
    tlspolicy_for_destination(NULL, "any.example", true, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_MAY);
    tlspolicy_for_destination(&s, "other.example", true, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_MAY);
    assert_string_equal(p.source, "default");
    tlspolicy_for_destination(&s, "secure.example", true, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_VERIFY);
    assert_string_equal(p.match, "mx.secure.example");
    assert_int_equal(p.min_bits, 128);
    assert_string_equal(p.source, "tls_policy secure.example");
    tlspolicy_for_destination(&s, "a.b.corp.example", true, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_ENCRYPT);
    assert_string_equal(p.match, "");
    /* ".corp.example" does not match corp.example itself */
    tlspolicy_for_destination(&s, "corp.example", true, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_MAY);
    tlspolicy_for_destination(&s, "plain.example", true, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_NONE);
    tlspolicy_for_destination(&s, "smart.example", false, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_VERIFY);
    tlspolicy_for_destination(&s, "smart.example", false, 2525, &p);
    assert_int_equal(p.level, TLSPOLICY_ENCRYPT);
    tlspolicy_for_destination(&s, "port25.example", false, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_ENCRYPT);
    /* a [host] key is not a domain key: smart.example by MX has no entry */
    tlspolicy_for_destination(&s, "smart.example", true, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_MAY);
    s.default_level = TLSPOLICY_ENCRYPT;
    tlspolicy_for_destination(&s, "other.example", true, 0, &p);
    assert_int_equal(p.level, TLSPOLICY_ENCRYPT);
}

static void test_tls_srv(void **state)
{
    (void)state;
    static const char *const kv[] = {"TLS_Srv:secure.example",
                                     "ENCR:112",
                                     "TLS_Srv:mx.verify.example",
                                     "PERM+VERIFY:128",
                                     "TLS_Srv:10.1.2",
                                     "VERIFY+CN:relay.example",
                                     "TLS_Srv:cn.example",
                                     "CN",
                                     "TLS_Srv:odd.example",
                                     "VERIFY+CS:Some Subject",
                                     "TLS_Srv:bad.example",
                                     "ENCR:lots",
                                     NULL};
    struct access a = {.kv = kv};
    struct tlspolicy_settings s = {
        .entries = table, .n_entries = 6, .access = access_lookup, .access_arg = &a};
    struct tlspolicy p;

    /* parent domain of the server's name; the order: name, parents, address, prefixes, bare */
    tlspolicy_for_destination(&s, "x.example", true, 0, &p);
    tlspolicy_for_server(&s, "mx1.secure.example.", "192.0.2.1", &p);
    assert_int_equal(p.level, TLSPOLICY_ENCRYPT);
    assert_int_equal(p.min_bits, 112);
    assert_string_equal(p.source, "TLS_Srv:secure.example");
    assert_false(p.perm);

    a.n_seen = 0;
    tlspolicy_for_destination(&s, "x.example", true, 0, &p);
    tlspolicy_for_server(&s, "mx.other.example", "192.0.2.1", &p);
    assert_int_equal(p.level, TLSPOLICY_MAY);
    static const char *const order[] = {
        "TLS_Srv:mx.other.example", "TLS_Srv:other.example", "TLS_Srv:example", "TLS_Srv:192.0.2.1",
        "TLS_Srv:192.0.2",          "TLS_Srv:192.0",         "TLS_Srv:192",     "TLS_Srv:",
        "Try_TLS:mx.other.example",
    };
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        assert_string_equal(a.seen[i], order[i]);

    tlspolicy_for_destination(&s, "x.example", true, 0, &p);
    tlspolicy_for_server(&s, "mx.verify.example", "192.0.2.1", &p);
    assert_int_equal(p.level, TLSPOLICY_VERIFY);
    assert_int_equal(p.min_bits, 128);
    assert_true(p.perm);
    assert_string_equal(p.match, "");

    tlspolicy_for_destination(&s, "x.example", true, 0, &p);
    tlspolicy_for_server(&s, "", "10.1.2.3", &p);
    assert_int_equal(p.level, TLSPOLICY_VERIFY);
    assert_string_equal(p.match, "relay.example");
    assert_string_equal(p.source, "TLS_Srv:10.1.2");

    tlspolicy_for_destination(&s, "x.example", true, 0, &p);
    tlspolicy_for_server(&s, "cn.example", "::1", &p);
    assert_int_equal(p.level, TLSPOLICY_VERIFY);

    /* the stricter wins: a table's verify is not lowered by TLS_Srv ENCR */
    tlspolicy_for_destination(&s, "secure.example", true, 0, &p);
    tlspolicy_for_server(&s, "secure.example", "192.0.2.9", &p);
    assert_int_equal(p.level, TLSPOLICY_VERIFY);
    assert_int_equal(p.min_bits, 128);
    assert_string_equal(p.match, "mx.secure.example");
    /* but raises a table's none */
    tlspolicy_for_destination(&s, "plain.example", true, 0, &p);
    tlspolicy_for_server(&s, "secure.example", "192.0.2.9", &p);
    assert_int_equal(p.level, TLSPOLICY_ENCRYPT);

    /* requirements that cannot be checked are never ignored */
    static const char *const odd[] = {"odd.example", "bad.example"};
    for (size_t i = 0; i < 2; i++) {
        tlspolicy_for_destination(&s, "x.example", true, 0, &p);
        tlspolicy_for_server(&s, odd[i], "192.0.2.9", &p);
        assert_true(p.unsupported);
        assert_non_null(strstr(p.source, odd[i]));
    }
}

static void test_try_tls(void **state)
{
    (void)state;
    static const char *const kv[] = {"Try_TLS:broken.example",
                                     "NO",
                                     "Try_TLS:192.0.2",
                                     "NO",
                                     "Try_TLS:fine.example",
                                     "YES",
                                     NULL};
    struct access a = {.kv = kv};
    struct tlspolicy_settings s = {
        .entries = table, .n_entries = 6, .access = access_lookup, .access_arg = &a};
    struct tlspolicy p;
    tlspolicy_for_destination(&s, "x.example", true, 0, &p);
    tlspolicy_for_server(&s, "mx.broken.example", "198.51.100.1", &p);
    assert_int_equal(p.level, TLSPOLICY_NONE);
    assert_string_equal(p.source, "Try_TLS:broken.example");
    tlspolicy_for_destination(&s, "x.example", true, 0, &p);
    tlspolicy_for_server(&s, "mx.x.example", "192.0.2.55", &p);
    assert_int_equal(p.level, TLSPOLICY_NONE);
    tlspolicy_for_destination(&s, "x.example", true, 0, &p);
    tlspolicy_for_server(&s, "fine.example", "198.51.100.1", &p);
    assert_int_equal(p.level, TLSPOLICY_MAY);
    /* Try_TLS never weakens a required level */
    tlspolicy_for_destination(&s, "a.corp.example", true, 0, &p);
    tlspolicy_for_server(&s, "mx.broken.example", "198.51.100.1", &p);
    assert_int_equal(p.level, TLSPOLICY_ENCRYPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_tls_srv),
        cmocka_unit_test(test_try_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
