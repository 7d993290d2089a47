/*
 * tests/unit/test_policy_dns.c — policy/dnsbl.h, policy/greet_pause.h and
 * policy/sender_domain.h: sendmail's dnsbl/enhdnsbl answer matching and reply texts, the
 * greet_pause lookup order, and the sender domain check's replies.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policy/dnsbl.h"
#include "policy/greet_pause.h"
#include "policy/sender_domain.h"

static struct sockaddr_storage v4(const char *text)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, text, &sin->sin_addr);
    return ss;
}

/* dnsbl: any answer lists; enhdnsbl: only the listed results, with sendmail's tokens. */
static void test_listed(void **state)
{
    (void)state;
    struct sockaddr_storage a[2] = {v4("127.0.0.3"), v4("127.0.0.10")};
    assert_false(dnsbl_listed(a, 0, NULL, 0));
    assert_true(dnsbl_listed(a, 1, NULL, 0));
    const char *exact[] = {"127.0.0.2."};
    assert_false(dnsbl_listed(a, 2, exact, 1));
    const char *two[] = {"127.0.0.2.", "127.0.0.10"};
    assert_true(dnsbl_listed(a, 2, two, 2));
    const char *any_octet[] = {"127.0.0.$-."};
    assert_true(dnsbl_listed(a, 1, any_octet, 1));
    const char *prefix[] = {"127.$+"};
    assert_true(dnsbl_listed(a, 1, prefix, 1));
    const char *other[] = {"127.0.1.$-.", "127.0.0"};
    assert_false(dnsbl_listed(a, 2, other, 2));
}

static void test_reply(void **state)
{
    (void)state;
    struct dnsbl_reply r;
    dnsbl_reply(NULL, "bl.example", "192.0.2.1", false, &r);
    assert_int_equal(r.code, 550);
    assert_string_equal(r.enh, "5.7.1");
    assert_string_equal(r.text, "Rejected: 192.0.2.1 listed at bl.example");
    dnsbl_reply("ignored when temporary", "bl.example", "192.0.2.1", true, &r);
    assert_int_equal(r.code, 451);
    assert_string_equal(r.enh, "4.4.3");
    assert_string_equal(r.text, "Temporary lookup failure of 192.0.2.1 at bl.example");
    /* as written in a .mc: quoted strings joined, the macro replaced */
    dnsbl_reply("\"554 Mail from \" $&{client_addr} \" refused - see http://x/\"", "z", "192.0.2.1",
                false, &r);
    assert_int_equal(r.code, 554);
    assert_string_equal(r.enh, "5.7.1");
    assert_string_equal(r.text, "Mail from 192.0.2.1 refused - see http://x/");
    dnsbl_reply("550 5.7.0 go away", "z", "192.0.2.1", false, &r);
    assert_string_equal(r.enh, "5.7.0");
    assert_string_equal(r.text, "go away");
    dnsbl_reply("Listed", "z", "192.0.2.1", false, &r);
    assert_int_equal(r.code, 550);
    assert_string_equal(r.text, "Listed");
}

static void test_greet_pause(void **state)
{
    (void)state;
    static const char map[] = "GreetPause:example.com 3000\n"
                              "GreetPause:192.0.2 0\n"
                              "GreetPause:198.51.100.7 900000\n"
                              "GreetPause:203.0.113.9 soon\n";
    struct access_map m = {0};
    char err[256];
    assert_int_equal(access_parse("access", map, strlen(map), &m, err, sizeof(err)), 0);
    assert_int_equal(greet_pause_for(&m, NULL, "10.0.0.1", 5000), 5000);
    assert_int_equal(greet_pause_for(&m, NULL, "192.0.2.5", 5000), 0);
    /* the name first, then the address */
    assert_int_equal(greet_pause_for(&m, "mx.example.com", "192.0.2.5", 5000), 3000);
    assert_int_equal(greet_pause_for(&m, NULL, "198.51.100.7", 0), GREET_PAUSE_MAX_MS);
    assert_int_equal(greet_pause_for(&m, NULL, "203.0.113.9", 700), 700);
    assert_int_equal(greet_pause_for(&m, NULL, "10.0.0.1", 3600000), GREET_PAUSE_MAX_MS);
    access_free(&m);
}

/* sendmail's check_mail without accept_unresolvable_domains: what is looked up, and the
 * replies (proto.m4's texts). */
static void test_sender_domain(void **state)
{
    (void)state;
    assert_string_equal(sender_domain_to_check("a@b.example"), "b.example");
    assert_null(sender_domain_to_check(""));
    assert_null(sender_domain_to_check("postmaster"));
    assert_null(sender_domain_to_check("a@[192.0.2.1]"));
    struct sender_domain_reply r;
    assert_int_equal(sender_domain_verdict(DNS_OK, "a@b.example", false, &r), 0);
    assert_int_equal(sender_domain_verdict(DNS_NULLMX, "a@b.example", false, &r), 0);
    assert_int_equal(sender_domain_verdict(DNS_NOTFOUND, "a@b.example", false, &r), -1);
    assert_int_equal(r.code, 553);
    assert_string_equal(r.enh, "5.1.8");
    assert_string_equal(r.text,
                        "<a@b.example>... Domain of sender address a@b.example does not exist");
    assert_int_equal(sender_domain_verdict(DNS_TEMPFAIL, "a@b.example", false, &r), -1);
    assert_int_equal(r.code, 451);
    assert_string_equal(r.enh, "4.1.8");
    assert_string_equal(r.text, "Domain of sender address a@b.example does not resolve");
    /* at RCPT (delay_checks) the recipient goes before the text, not the sender */
    assert_int_equal(sender_domain_verdict(DNS_NOTFOUND, "a@b.example", true, &r), -1);
    assert_int_equal(r.code, 553);
    assert_string_equal(r.text, "Domain of sender address a@b.example does not exist");
    assert_int_equal(sender_domain_verdict(DNS_TEMPFAIL, "a@b.example", true, &r), -1);
    assert_string_equal(r.text, "Domain of sender address a@b.example does not resolve");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listed),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_greet_pause),
        cmocka_unit_test(test_sender_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
