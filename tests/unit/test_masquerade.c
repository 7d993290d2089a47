/* Masquerading and genericstable as sendmail's cf rulesets do them (proto.m4 MasqHdr and
 * MasqEnv, the smtp and local mailers' S=/R= sets): one case per rule, then whole header
 * blocks kept byte for byte apart from the addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat/masquerade.h"

static char *local_names[] = {"mail.example.com", "[192.0.2.1]"};
static char *dept[] = {"dept.example.com"};
static char *whole[] = {"example.com"};
static char *except[] = {"mail.example.com"};
static char *root[] = {"root"};
static char *gdomains[] = {"mail.example.com", "dept.example.com"};

static const char generics_text[] = "joe joseph.bloggs@example.org\n"
                                    "jane@mail.example.com jane.doe@example.org\n"
                                    "bob+*@mail.example.com bob+%1@example.org\n"
                                    "@dept.example.com %1@dept.example.org\n"
                                    "ann ann.smith\n"
                                    "pct %0%%x%y%2\n";

static struct masquerade_settings base(void)
{
    return (struct masquerade_settings){
        .as = "example.com",
        .hostname = "mail.example.com",
        .local_domains = {local_names, 2},
    };
}

/* The rewritten header block as a string (the test frees it); *count gets the result. */
static char *headers(const struct masquerade_settings *s, enum masquerade_mailer m, const char *in,
                     int *count)
{
    struct buf out;
    buf_init(&out, 0);
    *count = masquerade_headers(s, m, in, strlen(in), &out);
    buf_append(&out, "", 1);
    return out.data;
}

/* The value of a one-field block "From: VALUE" after rewriting for the SMTP mailer. */
static void assert_field(const struct masquerade_settings *s, enum masquerade_mailer m,
                         const char *field, const char *value, const char *want)
{
    char in[512], expect[512];
    snprintf(in, sizeof(in), "%s: %s\r\n", field, value);
    snprintf(expect, sizeof(expect), "%s: %s\r\n", field, want);
    int count;
    char *got = headers(s, m, in, &count);
    assert_string_equal(got, expect);
    assert_int_equal(count, strcmp(in, expect) != 0);
    free(got);
}

static void assert_from(const struct masquerade_settings *s, const char *value, const char *want)
{
    assert_field(s, MASQUERADE_SMTP, "From", value, want);
}

static void assert_sender(const struct masquerade_settings *s, enum masquerade_mailer m,
                          const char *in, const char *want)
{
    struct buf out;
    buf_init(&out, 0);
    int rc = masquerade_sender(s, m, in, &out);
    buf_append(&out, "", 1);
    assert_string_equal(out.data, want);
    assert_int_equal(rc, strcmp(in, want) != 0);
    buf_free(&out);
}

/* No MASQUERADE_AS: the SMTP mailers only qualify unqualified names with $j. */
static void test_no_masquerade(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    s.as = NULL;
    s.domains = (struct masquerade_class){dept, 1};
    assert_from(&s, "joe", "joe@mail.example.com");
    assert_from(&s, "joe@localhost", "joe@mail.example.com");
    assert_from(&s, "joe@dept.example.com", "joe@dept.example.com");
    assert_field(&s, MASQUERADE_SMTP, "To", "bob", "bob@mail.example.com");
    assert_sender(&s, MASQUERADE_SMTP, "joe", "joe@mail.example.com");
    assert_sender(&s, MASQUERADE_SMTP, "", "");
}

/* MASQUERADE_AS: unqualified and class w senders; recipients and the envelope only with
 * allmasquerade and masquerade_envelope. */
static void test_masquerade_as(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    assert_from(&s, "joe", "joe@example.com");
    assert_from(&s, "joe@mail.example.com", "joe@example.com");
    assert_from(&s, "joe@LocalHost", "joe@example.com");
    assert_from(&s, "joe@other.org", "joe@other.org");
    assert_from(&s, "joe@sub.mail.example.com", "joe@sub.mail.example.com");
    assert_from(&s, "joe@dept.example.com", "joe@dept.example.com");
    assert_from(&s, "\"joe smith\"@localhost", "\"joe smith\"@example.com");
    assert_from(&s, "\"a@b\"@localhost", "\"a@b\"@example.com");
    assert_field(&s, MASQUERADE_SMTP, "To", "bob", "bob@mail.example.com");
    assert_field(&s, MASQUERADE_SMTP, "Cc", "bob@localhost", "bob@mail.example.com");
    assert_sender(&s, MASQUERADE_SMTP, "joe@localhost", "joe@mail.example.com");
    assert_sender(&s, MASQUERADE_SMTP, "joe", "joe@mail.example.com");

    s.envelope = true;
    assert_sender(&s, MASQUERADE_SMTP, "joe@localhost", "joe@example.com");
    assert_sender(&s, MASQUERADE_SMTP, "joe", "joe@example.com");
    assert_sender(&s, MASQUERADE_SMTP, "", "");

    s.all_headers = true;
    assert_field(&s, MASQUERADE_SMTP, "To", "bob", "bob@example.com");
    assert_field(&s, MASQUERADE_SMTP, "Resent-Cc", "bob@localhost", "bob@example.com");
    assert_field(&s, MASQUERADE_SMTP, "Bcc", "bob@other.org", "bob@other.org");

    s.as = "";
    assert_from(&s, "joe", "joe@mail.example.com");
    assert_from(&s, "joe@mail.example.com", "joe@mail.example.com");
}

/* MASQUERADE_DOMAIN (class M), exactly or with masquerade_entire_domain below it too;
 * MASQUERADE_EXCEPTION (class N) wins, for its subdomains as well. */
static void test_domains_and_exceptions(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    s.domains = (struct masquerade_class){dept, 1};
    assert_from(&s, "joe@dept.example.com", "joe@example.com");
    assert_from(&s, "joe@a.dept.example.com", "joe@a.dept.example.com");
    s.entire_domain = true;
    assert_from(&s, "joe@a.dept.example.com", "joe@example.com");
    assert_from(&s, "joe@xdept.example.com", "joe@xdept.example.com");

    s.domains = (struct masquerade_class){whole, 1};
    s.exceptions = (struct masquerade_class){except, 1};
    assert_from(&s, "joe@b.example.com", "joe@example.com");
    assert_from(&s, "joe@mail.example.com", "joe@mail.example.com");
    assert_from(&s, "joe@x.mail.example.com", "joe@x.mail.example.com");
    assert_from(&s, "joe@localhost", "joe@mail.example.com");
    assert_from(&s, "joe", "joe@example.com");
}

/* EXPOSED_USER (class E): unqualified gets $j, a class M or w domain stays. */
static void test_exposed_users(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    s.domains = (struct masquerade_class){dept, 1};
    s.exposed_users = (struct masquerade_class){root, 1};
    assert_from(&s, "root", "root@mail.example.com");
    assert_from(&s, "ROOT@mail.example.com", "ROOT@mail.example.com");
    assert_from(&s, "root@localhost", "root@mail.example.com");
    assert_from(&s, "root@dept.example.com", "root@dept.example.com");
    assert_from(&s, "root+x@localhost", "root+x@example.com");
    assert_from(&s, "joe@localhost", "joe@example.com");
}

/* limited_masquerade: class w is no longer masqueraded; class M and *LOCAL* still are. */
static void test_limited(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    s.limited = true;
    s.domains = (struct masquerade_class){dept, 1};
    s.exposed_users = (struct masquerade_class){root, 1};
    assert_from(&s, "joe@localhost", "joe@mail.example.com");
    assert_from(&s, "joe@mail.example.com", "joe@mail.example.com");
    assert_from(&s, "joe@dept.example.com", "joe@example.com");
    assert_from(&s, "joe", "joe@example.com");
    assert_from(&s, "root", "root@mail.example.com");
}

/* genericstable with class G: sendmail's lookup order, %1, qualified values final,
 * unqualified ones masqueraded; never for recipients or the envelope unless asked. */
static void test_genericstable(void **state)
{
    (void)state;
    struct map_simple g = {0};
    char err[256];
    assert_int_equal(map_simple_parse(MAP_GENERICSTABLE, "genericstable", generics_text,
                                      strlen(generics_text), &g, err, sizeof(err)),
                     0);
    struct masquerade_settings s = base();
    s.genericstable = &g;
    s.generics_domains = (struct masquerade_class){gdomains, 2};
    assert_from(&s, "joe", "joseph.bloggs@example.org");
    assert_from(&s, "joe@mail.example.com", "joseph.bloggs@example.org");
    assert_from(&s, "joe+list@mail.example.com", "joseph.bloggs@example.org");
    assert_from(&s, "jane@mail.example.com", "jane.doe@example.org");
    assert_from(&s, "jane", "jane.doe@example.org");
    assert_from(&s, "jane@localhost", "jane.doe@example.org");
    assert_from(&s, "jane@[192.0.2.1]", "jane.doe@example.org");
    assert_from(&s, "jane@other.org", "jane@other.org");
    assert_from(&s, "bob+x@mail.example.com", "bob+x@example.org");
    assert_from(&s, "bob@mail.example.com", "bob@example.com");
    assert_from(&s, "sam@dept.example.com", "sam@dept.example.org");
    assert_from(&s, "ann", "ann.smith@example.com");
    assert_from(&s, "pct", "pct%x%y@example.com");
    assert_from(&s, "joe@sub.mail.example.com", "joe@sub.mail.example.com");
    assert_field(&s, MASQUERADE_SMTP, "To", "joe", "joe@mail.example.com");
    assert_sender(&s, MASQUERADE_SMTP, "joe", "joe@mail.example.com");

    s.generics_entire_domain = true;
    assert_from(&s, "joe@sub.mail.example.com", "joseph.bloggs@example.org");
    s.envelope = true;
    assert_sender(&s, MASQUERADE_SMTP, "joe", "joseph.bloggs@example.org");
    s.all_headers = true;
    assert_field(&s, MASQUERADE_SMTP, "To", "joe", "joseph.bloggs@example.org");

    s.as = NULL;
    assert_from(&s, "ann", "ann.smith@mail.example.com");
    map_simple_free(&g);
}

/* The local mailer: unqualified names stay so unless always_add_domain; masquerading
 * unless local_no_masquerade; always_add_domain's own domain is not masqueraded. */
static void test_local_mailer(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    assert_field(&s, MASQUERADE_LOCAL, "From", "joe", "joe");
    assert_field(&s, MASQUERADE_LOCAL, "From", "joe@localhost", "joe@example.com");
    assert_field(&s, MASQUERADE_LOCAL, "To", "bob@localhost", "bob@mail.example.com");
    assert_sender(&s, MASQUERADE_LOCAL, "joe", "joe");
    s.always_add_domain = "";
    assert_field(&s, MASQUERADE_LOCAL, "From", "joe", "joe@example.com");
    assert_field(&s, MASQUERADE_LOCAL, "To", "bob", "bob@mail.example.com");
    assert_sender(&s, MASQUERADE_LOCAL, "joe", "joe@mail.example.com");
    s.not_local = true;
    assert_field(&s, MASQUERADE_LOCAL, "From", "joe", "joe@mail.example.com");
    assert_field(&s, MASQUERADE_LOCAL, "From", "joe@localhost", "joe@mail.example.com");
    assert_from(&s, "joe@localhost", "joe@example.com");
    s.not_local = false;
    s.always_add_domain = "localhost";
    assert_field(&s, MASQUERADE_LOCAL, "From", "joe", "joe@localhost");
}

/* What is not one plain address is copied as written. */
static void test_left_alone(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    assert_from(&s, "Joe Bloggs", "Joe Bloggs");
    assert_from(&s, "joe(comment)@localhost", "joe(comment)@localhost");
    assert_from(&s, "joe @ localhost", "joe @ localhost");
    assert_from(&s, "Joe <joe@localhost", "Joe <joe@localhost");
    assert_from(&s, "<>", "<>");
    assert_from(&s, "@localhost", "@localhost");
    assert_from(&s, "joe@", "joe@");
    assert_from(&s, "\"unclosed@localhost", "\"unclosed@localhost");
    assert_from(&s, "undisclosed-recipients:;", "undisclosed-recipients:;");
    assert_from(&s, "", "");
    assert_from(&s, "joe@[192.0.2.9]", "joe@[192.0.2.9]");
}

/* Ruleset canonify before the mailer's: localhost, localhost.$m and a literal of this
 * host are $j; a source route and the root's trailing dot are dropped. */
static void test_canonify(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    s.as = NULL;
    assert_from(&s, "joe@LOCALHOST", "joe@mail.example.com");
    assert_from(&s, "joe@localhost.example.com", "joe@mail.example.com");
    assert_from(&s, "joe@localhost.example.org", "joe@localhost.example.org");
    assert_from(&s, "joe@[192.0.2.1]", "joe@mail.example.com");
    assert_from(&s, "joe@other.org.", "joe@other.org");
    assert_from(&s, "<@a.example,@b.example:joe@other.org>", "<joe@other.org>");
    assert_sender(&s, MASQUERADE_SMTP, "joe@localhost", "joe@mail.example.com");
    s.as = "example.com";
    assert_from(&s, "<@relay.example:joe@localhost>", "<joe@example.com>");
    assert_from(&s, "joe@mail.example.com.", "joe@example.com");
}

/* A whole block: only the addresses of address fields change, everything else (folding,
 * comments, display names, groups, other fields, bare LF) stays byte for byte. */
static void test_block(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    const char *in = "Received: from joe by mail.example.com\r\n\tfor <joe>; Thu, 1 Jan 2026\r\n"
                     "From: \"Joe, Bloggs\" <joe> (home)\r\n"
                     "To: bob, \"Ann\" < ann@localhost >,\r\n carl@elsewhere.org (Carl)\r\n"
                     "CC : Friends: dave, erin@localhost;, undisclosed-recipients:;\r\n"
                     "Reply-To: <@relay.example:joe@localhost>, <>\r\n"
                     "Subject: from joe@localhost\r\n"
                     "X-From: joe\n"
                     "sender: joe (the (boss))";
    int count;
    char *got = headers(&s, MASQUERADE_SMTP, in, &count);
    assert_string_equal(got,
                        "Received: from joe by mail.example.com\r\n\tfor <joe>; Thu, 1 Jan 2026\r\n"
                        "From: \"Joe, Bloggs\" <joe@example.com> (home)\r\n"
                        "To: bob@mail.example.com, \"Ann\" < ann@mail.example.com >,\r\n"
                        " carl@elsewhere.org (Carl)\r\n"
                        "CC : Friends: dave@mail.example.com, erin@mail.example.com;, "
                        "undisclosed-recipients:;\r\n"
                        "Reply-To: <joe@example.com>, <>\r\n"
                        "Subject: from joe@localhost\r\n"
                        "X-From: joe\n"
                        "sender: joe@example.com (the (boss))");
    assert_int_equal(count, 7);
    free(got);

    s.all_headers = true;
    got = headers(&s, MASQUERADE_SMTP, in, &count);
    assert_non_null(strstr(got, "To: bob@example.com, \"Ann\" < ann@example.com >,\r\n carl@"));
    assert_non_null(strstr(got, "CC : Friends: dave@example.com, erin@example.com;, undisc"));
    assert_int_equal(count, 7);
    free(got);

    const char *plain = "Subject: hello\r\nFrom: joe@other.org\r\n";
    got = headers(&s, MASQUERADE_SMTP, plain, &count);
    assert_string_equal(got, plain);
    assert_int_equal(count, 0);
    free(got);
}

/* A full buffer is reported, never a truncated block taken for the whole. */
static void test_buffer_limit(void **state)
{
    (void)state;
    struct masquerade_settings s = base();
    const char *in = "From: joe\r\nSubject: a long enough subject line\r\n";
    struct buf out;
    buf_init(&out, 16);
    assert_int_equal(masquerade_headers(&s, MASQUERADE_SMTP, in, strlen(in), &out), -1);
    buf_free(&out);
    buf_init(&out, 8);
    assert_int_equal(masquerade_sender(&s, MASQUERADE_SMTP, "joe", &out), -1);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_masquerade),
        cmocka_unit_test(test_masquerade_as),
        cmocka_unit_test(test_domains_and_exceptions),
        cmocka_unit_test(test_exposed_users),
        cmocka_unit_test(test_limited),
        cmocka_unit_test(test_genericstable),
        cmocka_unit_test(test_local_mailer),
        cmocka_unit_test(test_left_alone),
        cmocka_unit_test(test_canonify),
        cmocka_unit_test(test_block),
        cmocka_unit_test(test_buffer_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
